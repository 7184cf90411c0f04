//! Google Cloud service-account credentials for the Vertex providers: the credential is the
//! service account's JSON key (a file, or a dynamic credential); calls carry an OAuth access
//! token obtained by signing a JWT (RS256, with the `jsonwebtoken` crate) with the account's
//! key and exchanging it at the account's `token_uri`. Tokens are cached until a minute before
//! they expire.
//!
//! Neither the key nor the token ever reaches a log line or an error message.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::Request;
use http::header::CONTENT_TYPE;
use http_body_util::Full;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::url::{BaseUrl, encode_segment};
use crate::error::Error;
use crate::upstream::{MAX_ERROR_BYTES, Upstream, read_limited};
use switchyard_layers::Secret;
use switchyard_layers::credentials::KeyOrigin;

const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Tokens are renewed this long before they expire.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: String,
    #[serde(default)]
    token_uri: Option<String>,
}

struct Cached {
    fingerprint: [u8; 32],
    token: Secret,
    renew_at: Instant,
}

/// Turns service-account keys into access tokens, with a cache.
#[derive(Default)]
pub struct GcpAuth {
    cached: Mutex<Option<Cached>>,
}

impl std::fmt::Debug for GcpAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GcpAuth")
    }
}

impl GcpAuth {
    /// An access token for the service account whose JSON key is `credentials`.
    ///
    /// A key sent with the request (`dynamic::`) may only be exchanged at Google's own token
    /// endpoint: its `token_uri` is the request's to choose, and the signed assertion (and the
    /// answer we would relay) must not go to a host the request picks.
    pub async fn access_token(
        &self,
        credentials: &Secret,
        origin: KeyOrigin,
        upstream: &Upstream,
    ) -> Result<Secret, String> {
        let fingerprint: [u8; 32] = Sha256::digest(credentials.expose().as_bytes()).into();
        if let Some(c) = self.cached.lock().expect("token cache").as_ref() {
            if c.fingerprint == fingerprint && Instant::now() < c.renew_at {
                return Ok(c.token.clone());
            }
        }
        let account: ServiceAccount = serde_json::from_str(credentials.expose())
            .map_err(|e| format!("the GCP credentials are not a service-account JSON key ({e})"))?;
        let token_uri = account
            .token_uri
            .clone()
            .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned());
        if origin == KeyOrigin::Request && token_uri != DEFAULT_TOKEN_URI {
            return Err(format!(
                "the service-account key sent with the request names `token_uri` = `{token_uri}`; \
                 keys sent with a request may only use Google's `{DEFAULT_TOKEN_URI}`"
            ));
        }
        let assertion = sign_jwt(&account, &token_uri, SystemTime::now())?;
        let form = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
        );
        let request = Request::post(&token_uri)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| format!("cannot build the token request to `{token_uri}`: {e}"))?;
        let response = upstream
            .send(request, None)
            .await
            .map_err(|unreachable| unreachable.fault_naming("the GCP token endpoint").message)?;
        let status = response.status();
        let body = read_limited(response.into_body(), MAX_ERROR_BYTES)
            .await
            .unwrap_or_default();
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            let why = v
                .get("error_description")
                .or_else(|| v.get("error"))
                .and_then(Value::as_str)
                .unwrap_or("no reason given");
            return Err(format!(
                "the GCP token endpoint refused the service account `{}` (HTTP {status}): {why}",
                account.client_email
            ));
        }
        let token = v
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| "the GCP token endpoint's answer has no `access_token`".to_owned())?;
        // Google's tokens live an hour; a longer claim is not trusted (nor allowed to overflow
        // the clock arithmetic below).
        let lifetime = Duration::from_secs(
            v.get("expires_in")
                .and_then(Value::as_u64)
                .unwrap_or(3600)
                .min(3600),
        );
        let token = Secret::new(token);
        *self.cached.lock().expect("token cache") = Some(Cached {
            fingerprint,
            token: token.clone(),
            renew_at: Instant::now() + lifetime.saturating_sub(RENEW_BEFORE),
        });
        Ok(token)
    }
}

/// A JWT asserting the service account, signed with its RSA key (RS256).
fn sign_jwt(account: &ServiceAccount, audience: &str, now: SystemTime) -> Result<String, String> {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let iat = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = json!({ "iss": account.client_email, "scope": SCOPE, "aud": audience, "iat": iat, "exp": iat + 3600 });
    let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes())
        .map_err(|_| "the service account's `private_key` is not a PEM RSA key".to_owned())?;
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key)
        .map_err(|e| format!("could not sign the service-account assertion: {e}"))
}

/// The provider a Vertex shorthand model names by its resource path:
/// `projects/P/locations/L/publishers/{publisher}/models/M` or `projects/P/locations/L/endpoints/E`.
/// Every segment must match its documented character set (see [`check_resource`]): the location
/// becomes part of a host name, and the path reaches Google with the service account's token.
pub fn parse_resource_path(
    path: &str,
    publisher: &str,
) -> Result<crate::config::models::GcpVertexProvider, Error> {
    let segments: Vec<&str> = path.split('/').collect();
    let (model_id, endpoint_id) = match segments.as_slice() {
        ["projects", _, "locations", _, "publishers", p, "models", m]
            if *p == publisher && !m.is_empty() =>
        {
            (Some(m.to_string()), None)
        }
        ["projects", _, "locations", _, "endpoints", e] if !e.is_empty() => {
            (None, Some(e.to_string()))
        }
        _ => {
            return Err(Error::InvalidInferenceTarget(format!(
                "`{path}` is not a Vertex resource path: write \
                 `projects/PROJECT/locations/LOCATION/publishers/{publisher}/models/MODEL` or \
                 `projects/PROJECT/locations/LOCATION/endpoints/ENDPOINT` after the `::`"
            )));
        }
    };
    if segments[1].is_empty() || segments[3].is_empty() {
        return Err(Error::InvalidInferenceTarget(format!(
            "`{path}` names no project or location"
        )));
    }
    let provider = crate::config::models::GcpVertexProvider {
        model_id,
        endpoint_id,
        location: segments[3].to_owned(),
        project_id: segments[1].to_owned(),
        credential_location: None,
        api_base: None,
        provider_tools: Vec::new(),
    };
    check_resource(&provider)
        .map_err(|why| Error::InvalidInferenceTarget(format!("`{path}`: {why}")))?;
    Ok(provider)
}

/// Checks a Vertex provider's project, location, model and endpoint ids against the character
/// sets Google documents: project ids (and numbers) `[a-z0-9-]`, locations `[a-z0-9-]`, model
/// ids letters, digits and `-._@`, endpoint ids letters, digits, `-` and `_`.
pub fn check_resource(p: &crate::config::models::GcpVertexProvider) -> Result<(), String> {
    use super::url::{is_region, is_token};
    let lower = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    if !is_token(&p.project_id, 63, lower) {
        return Err(format!(
            "the project `{}` is not a GCP project id (lowercase letters, digits and `-`)",
            p.project_id
        ));
    }
    if !is_region(&p.location) {
        return Err(format!(
            "the location `{}` is not a GCP location such as `us-central1` (lowercase letters, \
             digits and `-`)",
            p.location
        ));
    }
    if let Some(m) = &p.model_id {
        if !is_token(m, 128, |b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'@')
        }) {
            return Err(format!(
                "the model id `{m}` is not a Vertex model id (letters, digits and `-._@`)"
            ));
        }
    }
    if let Some(e) = &p.endpoint_id {
        if !is_token(e, 128, |b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')
        }) {
            return Err(format!(
                "the endpoint id `{e}` is not a Vertex endpoint id (letters, digits, `-` and `_`)"
            ));
        }
    }
    Ok(())
}

/// The Vertex base URL: `api_base`, or `https://{location}-aiplatform.googleapis.com/v1`, whose
/// host is checked to be that one.
pub fn vertex_base(p: &crate::config::models::GcpVertexProvider) -> Result<BaseUrl, String> {
    check_resource(p)?;
    match &p.api_base {
        Some(base) => BaseUrl::parse(base),
        None => {
            let host = format!("{}-aiplatform.googleapis.com", p.location);
            BaseUrl::parse(&format!("https://{host}/v1"))?.expect_host(&host)
        }
    }
}

/// The URL of `method` (`generateContent`, `rawPredict`, ...) on the model's resource path: a
/// publisher model (`model_id`) or a deployed endpoint (`endpoint_id`; validation guarantees
/// exactly one is set), each segment encoded.
pub fn vertex_url(
    p: &crate::config::models::GcpVertexProvider,
    publisher: &str,
    method: &str,
    query: Option<&str>,
) -> Result<String, String> {
    let base = vertex_base(p)?;
    let scope = format!(
        "projects/{}/locations/{}",
        encode_segment(&p.project_id),
        encode_segment(&p.location)
    );
    let target = match (&p.model_id, &p.endpoint_id) {
        (Some(model), _) => format!(
            "{scope}/publishers/{}/models/{}",
            encode_segment(publisher),
            encode_segment(model)
        ),
        (None, Some(endpoint)) => format!("{scope}/endpoints/{}", encode_segment(endpoint)),
        (None, None) => return Err("names neither `model_id` nor `endpoint_id`".into()),
    };
    base.join(&format!("{target}:{method}"), query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorthand_resource_paths_become_vertex_urls() {
        let p = parse_resource_path(
            "projects/acme/locations/europe-west4/publishers/google/models/gemini-2.5-flash",
            "google",
        )
        .unwrap();
        assert_eq!(
            vertex_url(&p, "google", "generateContent", None).unwrap(),
            "https://europe-west4-aiplatform.googleapis.com/v1/projects/acme/locations/\
             europe-west4/publishers/google/models/gemini-2.5-flash:generateContent"
        );
        let p = parse_resource_path(
            "projects/acme/locations/us-east5/endpoints/123",
            "anthropic",
        )
        .unwrap();
        assert_eq!(
            vertex_url(&p, "anthropic", "rawPredict", None).unwrap(),
            "https://us-east5-aiplatform.googleapis.com/v1/projects/acme/locations/us-east5/\
             endpoints/123:rawPredict"
        );
        for bad in [
            "gemini-2.5-flash",
            "projects/acme/locations/us/publishers/anthropic/models/claude",
            "projects//locations/us/endpoints/1",
            "projects/acme/locations/us/endpoints/",
        ] {
            let e = parse_resource_path(bad, "google").unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn no_segment_can_smuggle_a_host() {
        for bad in [
            "projects/p/locations/evil.example#/publishers/google/models/m",
            "projects/p/locations/127.0.0.1:9#/publishers/google/models/m",
            "projects/p/locations/evil.example?/publishers/google/models/m",
            "projects/p/locations/us@evil.example/publishers/google/models/m",
            "projects/p#/locations/us/publishers/google/models/m",
            "projects/p/locations/us/publishers/google/models/m#x",
            "projects/p/locations/us/publishers/google/models/m?x",
            "projects/p/locations/us/endpoints/1%2F..",
        ] {
            let e = parse_resource_path(bad, "google").unwrap_err().to_string();
            assert!(e.contains("is not a"), "{bad}: {e}");
        }
    }
}
