//! `[object_storage]`: where the bytes of input files go when inferences are stored.
//!
//! A stored inference holds each file as a pointer (`storage_path`: the storage's kind and a
//! path), never the bytes, as TensorZero stores them. With `type = "filesystem"` the bytes of
//! every inline (base64) file are written under the configured directory at that path; with
//! `type = "s3_compatible"` they are PUT to the bucket under that key (SigV4-signed). Either
//! way the pointer leads back to them: `previous_response_id` continues a conversation with its
//! images, and TensorZero's tools find them where its own gateway would have put them. Without
//! object storage (`disabled`, or no section) the pointer says `disabled` and nothing is
//! written.
//!
//! Writes happen beside the inference, never in its way: a file that cannot be written is
//! logged (once a second at most) and counted, and the inference goes on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use serde_json::{Value, json};
use switchyard_layers::metrics::Counter;

use crate::config::gateway::ObjectStorageConfig;
use crate::logging::WarnThrottle;
use crate::model_call::FileInput;

/// Where stored files go, and the pointers that say so.
#[derive(Debug)]
pub struct Files {
    /// Where the bytes go; `None`: they are not kept.
    backend: Option<Backend>,
    /// `storage_path.kind` in every pointer.
    kind: Value,
    written: Option<Arc<Counter>>,
    failed: Option<Arc<Counter>>,
    failure_warning: WarnThrottle,
    /// Paths written lately (a conversation sends its images again every turn): not
    /// written again. Cleared when full.
    recent: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Writes in flight at once.
    writes: Arc<tokio::sync::Semaphore>,
    /// Bytes of files waiting to be written or being written.
    pending_bytes: AtomicUsize,
}

/// The storage behind `[object_storage]`.
#[derive(Debug)]
enum Backend {
    /// A directory.
    Filesystem(PathBuf),
    /// A bucket of an S3-compatible service.
    S3(Box<S3Bucket>),
}

/// An S3-compatible bucket: objects at `{base}/{key}`, requests signed with SigV4.
#[derive(Debug)]
struct S3Bucket {
    client: crate::http_client::HttpClient,
    /// `{endpoint}/{bucket}` (path style) or `https://{bucket}.s3.{region}.amazonaws.com`.
    base: String,
    region: String,
    credentials: crate::aws::AwsCredentials,
}

/// Recently written paths remembered at most.
const RECENT_PATHS: usize = 10_000;
/// Writes to the storage at once; more wait their turn (in the background).
const CONCURRENT_WRITES: usize = 32;
/// How long one read or write may take.
const STORAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// File bytes (base64) waiting for the storage at most; past it, files are not kept (counted
/// and logged) until the storage catches up.
const MAX_PENDING_BYTES: usize = 256 * 1024 * 1024;
/// The largest stored file read back (inputs are bounded by the request body limit anyway).
const MAX_FILE_BYTES: usize = 64 * 1024 * 1024;

impl Default for Files {
    fn default() -> Self {
        Self::disabled()
    }
}

impl Files {
    /// No object storage: pointers say `disabled`.
    pub fn disabled() -> Self {
        Self {
            backend: None,
            kind: json!({"type": "disabled"}),
            written: None,
            failed: None,
            failure_warning: WarnThrottle::new(),
            recent: Default::default(),
            writes: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_WRITES)),
            pending_bytes: AtomicUsize::new(0),
        }
    }

    /// The storage `[object_storage]` describes, checked at start-up: a filesystem directory
    /// must exist; a bucket needs its name, and a plain-HTTP endpoint `allow_http`. A bucket
    /// without credentials (`S3_ACCESS_KEY_ID` / `S3_SECRET_ACCESS_KEY`, else the AWS
    /// environment variables) keeps nothing, with a warning.
    pub fn from_config(
        config: Option<&ObjectStorageConfig>,
        metrics: &crate::metrics::GatewayMetrics,
        client: &crate::http_client::HttpClient,
    ) -> Result<Self, String> {
        let (backend, kind) = match config {
            None | Some(ObjectStorageConfig::Disabled(_)) => return Ok(Self::disabled()),
            Some(ObjectStorageConfig::Filesystem(fs)) => {
                if !fs.path.is_dir() {
                    return Err(format!(
                        "`object_storage.path` = {:?} is not a directory: create it (the gateway stores input files under it), or set `object_storage.type = \"disabled\"`",
                        fs.path
                    ));
                }
                (
                    Backend::Filesystem(fs.path.clone()),
                    json!({"type": "filesystem", "path": fs.path.to_string_lossy()}),
                )
            }
            Some(ObjectStorageConfig::S3Compatible(s3)) => {
                // Without credentials the gateway serves, keeping no file bytes, and says so
                // (as a store that cannot start does): the AWS credentials switchyard reads are
                // the environment's only, not an IAM role's.
                let Some(bucket) = S3Bucket::from_config(s3, client.clone())? else {
                    tracing::warn!(
                        "object storage: `s3_compatible` has no credentials (set S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; IAM roles are not read): input files are stored as pointers without their bytes"
                    );
                    return Ok(Self::disabled());
                };
                let kind = json!({
                    "type": "s3_compatible",
                    "bucket_name": s3.bucket_name,
                    "region": s3.region,
                    "endpoint": s3.endpoint,
                    "allow_http": s3.allow_http,
                });
                (Backend::S3(Box::new(bucket)), kind)
            }
        };
        Ok(Self {
            backend: Some(backend),
            kind,
            written: Some(metrics.object_storage_writes.with(&["ok"])),
            failed: Some(metrics.object_storage_writes.with(&["error"])),
            failure_warning: WarnThrottle::new(),
            recent: Default::default(),
            writes: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_WRITES)),
            pending_bytes: AtomicUsize::new(0),
        })
    }

    /// A file as TensorZero stores it: an object-storage pointer (`source_url` for a URL,
    /// `storage_path` naming the data by its hash).
    pub fn pointer(&self, file: &FileInput) -> Value {
        let (source_url, mime_type) = match file {
            FileInput::Url { url, mime_type } => (
                Value::String(url.clone()),
                mime_type
                    .clone()
                    .unwrap_or_else(|| "application/octet-stream".into()),
            ),
            FileInput::Base64 { mime_type, .. } => (Value::Null, mime_type.clone()),
        };
        json!({
            "type": "file",
            "source_url": source_url,
            "mime_type": mime_type,
            "storage_path": {
                "kind": self.kind_of(file),
                "path": stored_path(file, &mime_type),
            }
        })
    }

    /// The kind a file's pointer names: this storage's for the files it keeps (inline ones),
    /// `disabled` for URLs (their bytes are the URL's host's).
    fn kind_of(&self, file: &FileInput) -> Value {
        match file {
            FileInput::Base64 { .. } => self.kind.clone(),
            FileInput::Url { .. } => json!({"type": "disabled"}),
        }
    }

    /// Keeps an inline file's bytes at its pointer's path, in the background (a file already
    /// there is not written again: the path is its hash).
    pub fn keep(self: &Arc<Self>, file: &FileInput) {
        let (Some(_), FileInput::Base64 { mime_type, data }) = (&self.backend, file) else {
            return;
        };
        let path = stored_path(file, mime_type);
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if recent.contains(&path) {
                return;
            }
            if recent.len() >= RECENT_PATHS {
                recent.clear();
            }
            recent.insert(path.clone());
        }
        // Files waiting for a slow storage are held in memory: bounded, like the row queue.
        let size = data.len();
        let pending = self.pending_bytes.fetch_add(size, Ordering::Relaxed) + size;
        if pending > MAX_PENDING_BYTES {
            self.pending_bytes.fetch_sub(size, Ordering::Relaxed);
            self.forget(&path);
            self.failed("the storage is behind: too many file bytes are waiting to be written");
            return;
        }
        let (data, mime_type) = (data.clone(), mime_type.clone());
        let files = self.clone();
        tokio::spawn(async move {
            let written = {
                let _turn = files.writes.acquire().await;
                match files.backend.as_ref() {
                    Some(backend) => backend.write(&path, &data, &mime_type).await,
                    None => Ok(()),
                }
            };
            files.pending_bytes.fetch_sub(size, Ordering::Relaxed);
            match written {
                Ok(()) => {
                    if let Some(c) = &files.written {
                        c.inc();
                    }
                }
                Err(e) => {
                    files.forget(&path);
                    files.failed(&format!("{path}: {e}"));
                }
            }
        });
    }

    /// `path` was not written: the next inference with the file tries again.
    fn forget(&self, path: &str) {
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(path);
    }

    /// Counts a file not written and says why (once a second at most).
    fn failed(&self, why: &str) {
        if let Some(c) = &self.failed {
            c.inc();
        }
        if self.failure_warning.due() {
            tracing::warn!(
                error = %why,
                "object storage: an input file could not be written (logged once a second at most)"
            );
        }
    }

    /// The bytes behind a stored pointer's `storage_path`, when this storage kept them.
    pub async fn read(&self, storage_path: &Value) -> Result<Vec<u8>, String> {
        let Some(backend) = &self.backend else {
            return Err("object storage is off, so the file's bytes were not kept".into());
        };
        if storage_path.get("kind") != Some(&self.kind) {
            return Err(format!(
                "the file was stored under another object storage ({})",
                storage_path.get("kind").unwrap_or(&Value::Null)
            ));
        }
        let relative = storage_path
            .get("path")
            .and_then(Value::as_str)
            .filter(|p| is_stored_path(p))
            .ok_or("the stored file's path is not one this gateway writes")?;
        backend
            .read(relative)
            .await
            .map_err(|e| format!("reading the stored file {relative}: {e}"))
    }
}

impl Backend {
    /// Writes `data` (base64) at `path`.
    async fn write(&self, path: &str, data: &str, mime_type: &str) -> Result<(), String> {
        let bytes = || {
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| format!("the file is not valid base64: {e}"))
        };
        match self {
            Backend::Filesystem(root) => write_once(&root.join(path), bytes).await,
            Backend::S3(bucket) => {
                let bytes = bytes()?;
                tokio::time::timeout(STORAGE_TIMEOUT, bucket.put(path, bytes, mime_type))
                    .await
                    .map_err(|_| "no answer within 30 s".to_owned())?
            }
        }
    }

    /// The bytes at `path`.
    async fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        match self {
            Backend::Filesystem(root) => tokio::fs::read(root.join(path))
                .await
                .map_err(|e| e.to_string()),
            Backend::S3(bucket) => tokio::time::timeout(STORAGE_TIMEOUT, bucket.get(path))
                .await
                .map_err(|_| "no answer within 30 s".to_owned())?,
        }
    }
}

impl S3Bucket {
    /// The bucket `s3` describes; `None` without credentials in the environment.
    fn from_config(
        s3: &crate::config::gateway::S3Config,
        client: crate::http_client::HttpClient,
    ) -> Result<Option<Self>, String> {
        let bucket =
            s3.bucket_name.as_deref().filter(|b| !b.is_empty()).ok_or(
                "`object_storage.bucket_name` is required with `type = \"s3_compatible\"`",
            )?;
        let region = s3
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = match s3.endpoint.as_deref() {
            Some(e) => Some(match e.strip_prefix("env::") {
                Some(var) => std::env::var(var).map_err(|_| {
                    format!("`object_storage.endpoint` reads {var}, which is not set")
                })?,
                None => e.to_owned(),
            }),
            None => None,
        };
        let base = match &endpoint {
            Some(e) => {
                if e.starts_with("http://") && !s3.allow_http {
                    return Err(format!(
                        "`object_storage.endpoint` {e} is plain HTTP: use https, or set `allow_http = true` (local development only)"
                    ));
                }
                if !e.starts_with("http://") && !e.starts_with("https://") {
                    return Err(format!(
                        "`object_storage.endpoint` {e} is not an http(s) URL"
                    ));
                }
                format!(
                    "{}/{}",
                    e.trim_end_matches('/'),
                    crate::aws::uri_encode(bucket)
                )
            }
            None => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        };
        let Some(credentials) = s3_credentials() else {
            return Ok(None);
        };
        Ok(Some(Self {
            client,
            base,
            region,
            credentials,
        }))
    }

    /// A signed request for the object at `key`.
    fn request(
        &self,
        method: &str,
        key: &str,
        content_type: Option<&str>,
        body: bytes::Bytes,
    ) -> Result<http::Request<http_body_util::Full<bytes::Bytes>>, String> {
        let url = format!("{}/{key}", self.base);
        let headers: Vec<(&str, &str)> = content_type
            .map(|c| vec![("content-type", c)])
            .unwrap_or_default();
        let signature = crate::aws::signing_headers(
            method,
            "s3",
            &url,
            &headers,
            &body,
            &self.region,
            &self.credentials,
            std::time::SystemTime::now(),
        )?;
        let mut builder = http::Request::builder().method(method).uri(&url);
        for (name, value) in headers.iter().copied() {
            builder = builder.header(name, value);
        }
        for (name, value) in &signature {
            let mut value = http::HeaderValue::from_str(value)
                .map_err(|_| format!("the signature's {name} header is not a valid header"))?;
            value.set_sensitive(true);
            builder = builder.header(name.as_str(), value);
        }
        builder
            .body(http_body_util::Full::new(body))
            .map_err(|e| e.to_string())
    }

    /// Sends a signed request for `key`; a GET's body (at most `limit` bytes) on a 2xx.
    async fn send(
        &self,
        method: &str,
        key: &str,
        content_type: Option<&str>,
        body: bytes::Bytes,
        limit: usize,
    ) -> Result<Vec<u8>, String> {
        let request = self.request(method, key, content_type, body)?;
        let response = self.client.request(request).await.map_err(|e| {
            format!(
                "the bucket did not answer: {}",
                crate::error::error_chain(&e)
            )
        })?;
        let status = response.status();
        if status.is_success() && method != "GET" {
            // Only a GET's body is wanted; whatever else answered success is done.
            return Ok(Vec::new());
        }
        let body = read_bounded(response.into_body(), limit).await;
        if status.is_success() {
            return body;
        }
        Err(format!(
            "{method} answered {status}: {}",
            crate::upstream::snippet(&body.unwrap_or_default())
        ))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, mime_type: &str) -> Result<(), String> {
        self.send("PUT", key, Some(mime_type), bytes.into(), 4096)
            .await
            .map(drop)
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, String> {
        self.send("GET", key, None, bytes::Bytes::new(), MAX_FILE_BYTES)
            .await
    }
}

/// `S3_ACCESS_KEY_ID` / `S3_SECRET_ACCESS_KEY` (with `S3_SESSION_TOKEN`), else the AWS
/// environment variables.
fn s3_credentials() -> Option<crate::aws::AwsCredentials> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (var("S3_ACCESS_KEY_ID"), var("S3_SECRET_ACCESS_KEY")) {
        (Some(access_key_id), Some(secret)) => Some(crate::aws::AwsCredentials {
            access_key_id,
            secret_access_key: switchyard_layers::Secret::new(secret),
            session_token: var("S3_SESSION_TOKEN").map(switchyard_layers::Secret::new),
        }),
        _ => crate::aws::AwsCredentials::from_env(),
    }
}

/// A response body, at most `limit` bytes.
async fn read_bounded(body: hyper::body::Incoming, limit: usize) -> Result<Vec<u8>, String> {
    use http_body_util::BodyExt;
    http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map(|c| c.to_bytes().to_vec())
        .map_err(|e| format!("reading the answer: {e}"))
}

/// `observability/files/<sha-256 of the data or URL>.<extension from the MIME type>`.
fn stored_path(file: &FileInput, mime_type: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest_of = match file {
        FileInput::Url { url, .. } => url.as_bytes(),
        FileInput::Base64 { data, .. } => data.as_bytes(),
    };
    let digest = Sha256::digest(digest_of);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("observability/files/{hex}.{}", extension(mime_type))
}

/// The file extension of a MIME type: its subtype, when it is a plain token (a stored path
/// must never reach outside its directory, whatever the client called its file).
fn extension(mime_type: &str) -> &str {
    let subtype = mime_type.rsplit('/').next().unwrap_or("");
    let plain = !subtype.is_empty()
        && subtype.len() <= 32
        && subtype
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'+');
    if plain { subtype } else { "bin" }
}

/// Whether `path` has the shape [`stored_path`] gives (it is read from the database, so it is
/// checked before it names a file).
fn is_stored_path(path: &str) -> bool {
    let Some(name) = path.strip_prefix("observability/files/") else {
        return false;
    };
    let Some((hash, ext)) = name.split_once('.') else {
        return false;
    };
    hash.len() == 64
        && hash.bytes().all(|b| b.is_ascii_hexdigit())
        && extension(&format!("x/{ext}")) == ext
}

/// Writes the decoded `data` to `path` unless a file is there: to a temporary name first, then
/// renamed, so a reader never sees half a file.
async fn write_once(
    path: &Path,
    bytes: impl FnOnce() -> Result<Vec<u8>, String>,
) -> Result<(), String> {
    if tokio::fs::try_exists(path).await.unwrap_or(false) {
        return Ok(());
    }
    let bytes = bytes()?;
    let dir = path.parent().ok_or("no parent directory")?;
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| e.to_string())?;
    let temporary = path.with_extension(format!("partial-{}", uuid::Uuid::now_v7()));
    tokio::fs::write(&temporary, &bytes)
        .await
        .map_err(|e| e.to_string())?;
    tokio::fs::rename(&temporary, path).await.map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        e.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_without_a_name_or_with_plain_http_stops_start_up() {
        let config = |bucket: Option<&str>, endpoint: Option<&str>, allow_http| {
            crate::config::gateway::S3Config {
                endpoint: endpoint.map(str::to_owned),
                bucket_name: bucket.map(str::to_owned),
                region: Some("eu-west-1".into()),
                allow_http,
            }
        };
        let client = crate::http_client::build();
        let e = S3Bucket::from_config(&config(None, None, false), client.clone()).unwrap_err();
        assert!(e.contains("bucket_name` is required"), "{e}");
        let e = S3Bucket::from_config(
            &config(Some("b"), Some("http://127.0.0.1:9000"), false),
            client.clone(),
        )
        .unwrap_err();
        assert!(e.contains("allow_http = true"), "{e}");
        let e =
            S3Bucket::from_config(&config(Some("b"), Some("ftp://x"), true), client).unwrap_err();
        assert!(e.contains("not an http(s) URL"), "{e}");
    }

    #[tokio::test]
    async fn files_waiting_for_a_slow_storage_are_bounded_in_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = crate::metrics::GatewayMetrics::new(None);
        let config =
            ObjectStorageConfig::Filesystem(crate::config::gateway::FilesystemStorageConfig {
                path: dir.path().to_owned(),
            });
        let files = Arc::new(
            Files::from_config(Some(&config), &metrics, &crate::http_client::build()).unwrap(),
        );
        let file = |data: &str| FileInput::Base64 {
            mime_type: "image/png".into(),
            data: data.into(),
        };
        // The storage is behind by almost the whole budget: a file that does not fit is not
        // kept, counted, and tried again next time (not remembered as written).
        files
            .pending_bytes
            .store(MAX_PENDING_BYTES - 2, Ordering::Relaxed);
        files.keep(&file("aGVsbG8="));
        assert_eq!(metrics.object_storage_writes.with(&["error"]).get(), 1);
        // Once it has caught up, the same file is written.
        files.pending_bytes.store(0, Ordering::Relaxed);
        files.keep(&file("aGVsbG8="));
        let path = dir.path().join(stored_path(&file("aGVsbG8="), "image/png"));
        for _ in 0..200 {
            if path.exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
        assert_eq!(files.pending_bytes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn stored_paths_stay_in_their_directory() {
        let file = |mime: &str| FileInput::Base64 {
            mime_type: mime.into(),
            data: "aGk=".into(),
        };
        let path = stored_path(&file("image/png"), "image/png");
        assert!(path.starts_with("observability/files/") && path.ends_with(".png"));
        assert!(is_stored_path(&path));
        // Only the last segment of a MIME type is used, and only when it is a plain token.
        assert!(!stored_path(&file("image/../../etc"), "image/../../etc").contains(".."));
        assert!(stored_path(&file("image/x y"), "image/x y").ends_with(".bin"));
        assert!(stored_path(&file("image/..%2f"), "image/..%2f").ends_with(".bin"));
        assert!(stored_path(&file("weird"), "weird").ends_with(".weird"));
        for hostile in [
            "observability/files/../../etc/passwd",
            "/etc/passwd",
            "observability/files/abc.png",
            &format!("observability/files/{}.png/../x", "a".repeat(64)),
            &format!("observability/files/{}.p g", "a".repeat(64)),
        ] {
            assert!(!is_stored_path(hostile), "{hostile}");
        }
    }
}
