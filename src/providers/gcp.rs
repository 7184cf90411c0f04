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

use super::read_limited;
use crate::error::{Error, error_chain};
use crate::http_client::HttpClient;
use crate::secret::Secret;

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
    pub async fn access_token(
        &self,
        credentials: &Secret,
        client: &HttpClient,
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
        let assertion = sign_jwt(&account, &token_uri, SystemTime::now())?;
        let form = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
        );
        let request = Request::post(&token_uri)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| format!("cannot build the token request to `{token_uri}`: {e}"))?;
        let response = client.request(request).await.map_err(|e| {
            format!(
                "could not reach the GCP token endpoint `{token_uri}`: {}",
                error_chain(&e)
            )
        })?;
        let status = response.status();
        let body = read_limited(response.into_body(), 64 * 1024)
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
    Ok(crate::config::models::GcpVertexProvider {
        model_id,
        endpoint_id,
        location: segments[3].to_owned(),
        project_id: segments[1].to_owned(),
        credential_location: None,
        api_base: None,
    })
}

/// The Vertex base URL: `api_base`, or `https://{location}-aiplatform.googleapis.com/v1`.
pub fn vertex_base(p: &crate::config::models::GcpVertexProvider) -> String {
    match &p.api_base {
        Some(base) => base.trim_end_matches('/').to_owned(),
        None => format!("https://{}-aiplatform.googleapis.com/v1", p.location),
    }
}

/// The model's resource path: a publisher model (`model_id`) or a deployed endpoint
/// (`endpoint_id`; validation guarantees exactly one is set).
pub fn vertex_target(p: &crate::config::models::GcpVertexProvider, publisher: &str) -> String {
    let scope = format!("projects/{}/locations/{}", p.project_id, p.location);
    match (&p.model_id, &p.endpoint_id) {
        (Some(model), _) => format!("{scope}/publishers/{publisher}/models/{model}"),
        (None, Some(endpoint)) => format!("{scope}/endpoints/{endpoint}"),
        (None, None) => format!("{scope}/publishers/{publisher}/models/unset"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorthand_resource_paths_become_vertex_targets() {
        let p = parse_resource_path(
            "projects/acme/locations/europe-west4/publishers/google/models/gemini-2.5-flash",
            "google",
        )
        .unwrap();
        assert_eq!(
            vertex_base(&p),
            "https://europe-west4-aiplatform.googleapis.com/v1"
        );
        assert_eq!(
            vertex_target(&p, "google"),
            "projects/acme/locations/europe-west4/publishers/google/models/gemini-2.5-flash"
        );
        let p = parse_resource_path(
            "projects/acme/locations/us-east5/endpoints/123",
            "anthropic",
        )
        .unwrap();
        assert_eq!(
            vertex_target(&p, "anthropic"),
            "projects/acme/locations/us-east5/endpoints/123"
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
}
