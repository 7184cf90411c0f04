//! `[object_storage]`: where the bytes of input files go when inferences are stored.
//!
//! A stored inference holds each file as a pointer (`storage_path`: the storage's kind and a
//! path), never the bytes, as TensorZero stores them. With `type = "filesystem"` the bytes of
//! every inline (base64) file are written under the configured directory at that path, once
//! per distinct file, so the pointer leads back to them: `previous_response_id` continues a
//! conversation with its images, and TensorZero's tools find them where its own gateway would
//! have put them. Without object storage (`disabled`, or no section) the pointer says
//! `disabled` and nothing is written. `s3_compatible` is not supported yet (start-up says so;
//! its pointers say `disabled`).
//!
//! Writes happen beside the inference, never in its way: a file that cannot be written is
//! logged (once a second at most) and counted, and the inference goes on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};
use switchyard_layers::metrics::Counter;

use crate::config::gateway::ObjectStorageConfig;
use crate::logging::WarnThrottle;
use crate::model_call::FileInput;

/// Where stored files go, and the pointers that say so.
#[derive(Debug)]
pub struct Files {
    /// The directory of `type = "filesystem"`; `None`: the bytes are not kept.
    root: Option<PathBuf>,
    /// `storage_path.kind` in every pointer.
    kind: Value,
    written: Option<Arc<Counter>>,
    failed: Option<Arc<Counter>>,
    failure_warning: WarnThrottle,
}

impl Default for Files {
    fn default() -> Self {
        Self::disabled()
    }
}

impl Files {
    /// No object storage: pointers say `disabled`.
    pub fn disabled() -> Self {
        Self {
            root: None,
            kind: json!({"type": "disabled"}),
            written: None,
            failed: None,
            failure_warning: WarnThrottle::new(),
        }
    }

    /// The storage `[object_storage]` describes. A filesystem directory that does not exist
    /// is a start-up error, as in TensorZero.
    pub fn from_config(
        config: Option<&ObjectStorageConfig>,
        metrics: &crate::metrics::GatewayMetrics,
    ) -> Result<Self, String> {
        let Some(ObjectStorageConfig::Filesystem(fs)) = config else {
            return Ok(Self::disabled());
        };
        if !fs.path.is_dir() {
            return Err(format!(
                "`object_storage.path` = {:?} is not a directory: create it (the gateway stores input files under it), or set `object_storage.type = \"disabled\"`",
                fs.path
            ));
        }
        Ok(Self {
            kind: json!({"type": "filesystem", "path": fs.path.to_string_lossy()}),
            root: Some(fs.path.clone()),
            written: Some(metrics.object_storage_writes.with(&["ok"])),
            failed: Some(metrics.object_storage_writes.with(&["error"])),
            failure_warning: WarnThrottle::new(),
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
        let (Some(root), FileInput::Base64 { mime_type, data }) = (&self.root, file) else {
            return;
        };
        let path = root.join(stored_path(file, mime_type));
        let data = data.clone();
        let files = self.clone();
        tokio::spawn(async move {
            match write_once(&path, &data).await {
                Ok(()) => {
                    if let Some(c) = &files.written {
                        c.inc();
                    }
                }
                Err(e) => {
                    if let Some(c) = &files.failed {
                        c.inc();
                    }
                    if files.failure_warning.due() {
                        tracing::warn!(path = %path.display(), error = %e, "object storage: an input file could not be written (logged once a second at most)");
                    }
                }
            }
        });
    }

    /// The bytes behind a stored pointer's `storage_path`, when this storage kept them.
    pub async fn read(&self, storage_path: &Value) -> Result<Vec<u8>, String> {
        let Some(root) = &self.root else {
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
        tokio::fs::read(root.join(relative))
            .await
            .map_err(|e| format!("reading the stored file {relative}: {e}"))
    }
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
async fn write_once(path: &Path, data: &str) -> Result<(), String> {
    if tokio::fs::try_exists(path).await.unwrap_or(false) {
        return Ok(());
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| format!("the file is not valid base64: {e}"))?;
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
