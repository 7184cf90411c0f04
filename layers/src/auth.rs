//! API-key authentication (`Authorization: Bearer sk-t0-...`, or `x-api-key: sk-t0-...` as
//! Anthropic clients send it), with a lookup cache and a brute-force shield.
//!
//! # Layer placement
//!
//! In the inbound stack, after the request log (so rejected requests are logged too) and the
//! lazy request decompression, and before routing: a request without a valid key is refused
//! before its body is read, so malformed bodies and unknown routes cost an attacker a 401 like
//! anything else. The paths in [`AuthSettings::open_paths`] (the gateway opens `/health`,
//! `/status`, `/live` and `/ready` under `base_path`) need no key.
//!
//! On success it writes [`ApiKeyPublicId`] into the request extensions; handlers turn it into
//! the `tensorzero::api_key_public_id` tag and the rate-limit scope.
//!
//! # Keys
//!
//! `sk-t0-<public_id>-<long_key>`: 12 and 48 ASCII alphanumerics. The store holds the public id
//! and the SHA-256 (lowercase hex) of the long key only; the layer hashes the presented long key
//! and compares the hashes in constant time.
//!
//! # Failures
//!
//! A bad or unknown key is a 401; a store that cannot answer (Postgres down) is a 503 for keys
//! not in the cache (the client should retry; cached keys keep working until their TTL). Each
//! 401 counts against the client's address (the connection's peer, or the last entry of a
//! trusted forwarded-for header): past the shield's quota, a key that is not valid is answered
//! 429 with `Retry-After` until the quota refills, so keys cannot be guessed through the
//! gateway. A valid key is never refused because of other callers' failures from the same
//! address (a mesh sidecar or NAT puts many clients behind one).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures_util::future::Either;
use governor::{DefaultKeyedRateLimiter, Quota};
use http::header::AUTHORIZATION;

/// The header Anthropic clients send their key in.
const X_API_KEY: &str = "x-api-key";
use http::{Request, Response, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::ext::{ApiKeyPublicId, AuthDuration, ClientAddr};
use crate::metrics::{Counter, Family, Histogram};

/// The length of a key's public id.
pub const PUBLIC_ID_LEN: usize = 12;
/// The length of a key's secret part.
pub const LONG_KEY_LEN: usize = 48;

/// A well-formed key, split into its parts.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    public_id: String,
    long_key: String,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}-[redacted])", self.public_id)
    }
}

impl ApiKey {
    /// Parses `sk-t0-<public_id>-<long_key>`; the error says which rule failed.
    pub fn parse(key: &str) -> Result<Self, &'static str> {
        let parts: Vec<&str> = key.split('-').collect();
        let [sk, t0, public_id, long_key] = parts.as_slice() else {
            return Err("API key must be of the form `sk-t0-<public_id>-<long_key>`");
        };
        if *sk != "sk" || *t0 != "t0" {
            return Err("API key must start with `sk-t0-`");
        }
        if public_id.chars().count() != PUBLIC_ID_LEN {
            return Err("Public ID must be 12 characters");
        }
        if long_key.chars().count() != LONG_KEY_LEN {
            return Err("Long key must be 48 characters");
        }
        if !public_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err("Public ID must be alphanumeric");
        }
        if !long_key.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err("Long key must be alphanumeric");
        }
        Ok(Self {
            public_id: (*public_id).to_owned(),
            long_key: (*long_key).to_owned(),
        })
    }

    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        use rand::TryRngCore;
        use rand::distr::{Alphanumeric, SampleString};
        // Straight from the operating system: a key must never come from a seeded generator.
        let mut rng = rand::rngs::OsRng.unwrap_err();
        Self {
            public_id: Alphanumeric.sample_string(&mut rng, PUBLIC_ID_LEN),
            long_key: Alphanumeric.sample_string(&mut rng, LONG_KEY_LEN),
        }
    }

    /// The public id (safe to log and store).
    pub fn public_id(&self) -> &str {
        &self.public_id
    }

    /// The SHA-256 of the long key, lowercase hex: what the store holds.
    pub fn hash(&self) -> String {
        hash_hex(&self.long_key)
    }

    /// The whole key, to print once when it is created.
    pub fn expose(&self) -> String {
        format!("sk-t0-{}-{}", self.public_id, self.long_key)
    }
}

fn hash_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What the store knows about a public id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRecord {
    /// No key has this public id.
    Missing,
    /// The key's stored hash and state.
    Found {
        /// SHA-256 of the long key, lowercase hex.
        hash: String,
        /// When it was disabled (display form), if it was.
        disabled_at: Option<String>,
        /// When it expires, if ever.
        expires_at: Option<Expiry>,
    },
}

/// A key's expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expiry {
    /// The instant.
    pub at: SystemTime,
    /// How to show it in messages.
    pub display: String,
}

/// The store could not answer (a database error); the message names the cause, never a key.
#[derive(Clone, Debug)]
pub struct StoreUnavailable(pub String);

/// Where keys are looked up.
pub trait KeyStore: Send + Sync + 'static {
    /// The record for a public id.
    fn lookup<'a>(
        &'a self,
        public_id: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<KeyRecord, StoreUnavailable>> + Send + 'a>>;
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization` header.
    MissingHeader,
    /// The header is not `Bearer <key>`.
    NotBearer,
    /// The key is malformed.
    BadFormat(&'static str),
    /// No such key (or the secret part does not match).
    Unknown,
    /// The key was disabled.
    Disabled(String),
    /// The key has expired.
    Expired(String),
    /// The store could not answer.
    Unavailable(String),
    /// Too many failed attempts from this address.
    TooManyFailures {
        /// When to try again.
        retry_after: Duration,
    },
}

impl AuthFailure {
    /// 401, 503 or 429.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthFailure::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AuthFailure::TooManyFailures { .. } => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const PREFIX: &str = "TensorZero authentication error";
        const PERFORMING: &str = "Error performing authentication";
        match self {
            AuthFailure::MissingHeader => write!(
                f,
                "{PREFIX}: {PERFORMING}: Authorization header is required"
            ),
            AuthFailure::NotBearer => write!(
                f,
                "{PREFIX}: {PERFORMING}: Authorization header must start with 'Bearer '"
            ),
            AuthFailure::BadFormat(why) => {
                write!(f, "{PREFIX}: Invalid format for TensorZero API key: {why}")
            }
            AuthFailure::Unknown => write!(
                f,
                "{PREFIX}: {PERFORMING}: Provided API key does not exist in the database"
            ),
            AuthFailure::Disabled(at) => {
                write!(f, "{PREFIX}: {PERFORMING}: API key was disabled at: {at}")
            }
            AuthFailure::Expired(at) => {
                write!(f, "{PREFIX}: {PERFORMING}: API key expired at: {at}")
            }
            // The client sees this text; the store's error is logged (see `Auth::call`).
            AuthFailure::Unavailable(_) => write!(
                f,
                "{PREFIX}: the API key store is unavailable; retry shortly"
            ),
            AuthFailure::TooManyFailures { retry_after } => write!(
                f,
                "{PREFIX}: too many failed authentication attempts from this address; retry after {} s",
                retry_after.as_secs().max(1)
            ),
        }
    }
}

/// How a refusal becomes a response (the app decides the body shape per route).
pub type Responder<B> =
    Arc<dyn Fn(&AuthFailure, &http::request::Parts) -> Response<B> + Send + Sync>;

/// Failed-attempt limits per client address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShieldSettings {
    /// Sustained failures allowed per minute.
    pub failures_per_minute: NonZeroU32,
    /// Failures allowed in a burst.
    pub burst: NonZeroU32,
    /// A header set by a trusted proxy in front of the gateway (an ingress, a mesh sidecar)
    /// that names the client's address, e.g. `x-forwarded-for`; its last entry (the address
    /// the nearest proxy saw) counts instead of the connection's peer. `None`: the peer.
    pub client_ip_header: Option<http::HeaderName>,
}

impl ShieldSettings {
    /// The address failures are counted against: the last entry of the trusted header when it
    /// is set and parses, else the connection's peer.
    fn client(&self, parts: &http::request::Parts) -> Option<IpAddr> {
        let forwarded = self.client_ip_header.as_ref().and_then(|name| {
            let last = parts.headers.get_all(name).iter().next_back()?;
            let entry = last.to_str().ok()?.rsplit(',').next()?.trim();
            entry.parse::<IpAddr>().ok().or_else(|| {
                // `1.2.3.4:567` or `[::1]:567`, as some proxies write it.
                entry.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
            })
        });
        forwarded.or_else(|| parts.extensions.get::<ClientAddr>().map(|c| c.0))
    }
}

/// The layer's settings.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// Paths that need no key (the gateway passes `/health`, `/status`, `/live` and `/ready`
    /// under `base_path`).
    pub open_paths: Vec<String>,
    /// How long lookups are trusted; `None` disables the cache.
    pub cache_ttl: Option<Duration>,
    /// The brute-force shield; `None` disables it.
    pub shield: Option<ShieldSettings>,
    /// Where refusals are counted, by reason (`missing_header`, `unknown_key`, ...).
    pub failures: Option<Arc<Family<Counter>>>,
    /// Where the time each check takes is observed, in seconds.
    pub timing: Option<Arc<Histogram>>,
}

/// The most cached lookups: enough for every real key many times over, bounded so that random
/// guesses cannot grow it without limit.
const MAX_CACHED: usize = 100_000;
/// The most addresses remembered as blocked.
const MAX_BLOCKED: usize = 100_000;

struct Shared<B> {
    store: Arc<dyn KeyStore>,
    settings: AuthSettings,
    responder: Responder<B>,
    cache: Mutex<HashMap<String, (KeyRecord, Instant)>>,
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

/// Builds [`Auth`] services.
pub struct AuthLayer<B> {
    shared: Option<Arc<Shared<B>>>,
}

impl<B> Clone for AuthLayer<B> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<B> AuthLayer<B> {
    /// Authentication against `store`; refusals are rendered by `responder`.
    pub fn new(store: Arc<dyn KeyStore>, settings: AuthSettings, responder: Responder<B>) -> Self
    where
        B: 'static,
    {
        let limiter = settings.shield.as_ref().map(|s| {
            DefaultKeyedRateLimiter::keyed(
                Quota::per_minute(s.failures_per_minute).allow_burst(s.burst),
            )
        });
        let shared = Arc::new(Shared {
            store,
            settings,
            responder,
            cache: Mutex::new(HashMap::new()),
            limiter,
            blocked: Mutex::new(HashMap::new()),
        });
        if shared.limiter.is_some() {
            prune_on_a_timer(Arc::downgrade(&shared));
        }
        Self {
            shared: Some(shared),
        }
    }

    /// No authentication: every request passes.
    pub fn disabled() -> Self {
        Self { shared: None }
    }
}

/// How often the shield forgets addresses whose block has ended and quotas that have refilled.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Prunes the shield's maps every [`PRUNE_EVERY`] until the layer is dropped (a reload drops
/// it), so addresses that failed once do not stay in memory for ever.
fn prune_on_a_timer<B: 'static>(shared: std::sync::Weak<Shared<B>>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let now = Instant::now();
            shared
                .blocked
                .lock()
                .expect("auth shield")
                .retain(|_, until| *until > now);
            if let Some(limiter) = &shared.limiter {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
    });
}

impl<S, B> Layer<S> for AuthLayer<B> {
    type Service = Auth<S, B>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Checks the API key of every request but the open ones.
pub struct Auth<S, B> {
    inner: S,
    shared: Option<Arc<Shared<B>>>,
}

impl<S: Clone, B> Clone for Auth<S, B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, ReqB, B> Service<Request<ReqB>> for Auth<S, B>
where
    S: Service<Request<ReqB>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    ReqB: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<Response<B>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let Some(shared) = self.shared.clone() else {
            return Either::Left(self.inner.call(req));
        };
        if shared
            .settings
            .open_paths
            .iter()
            .any(|p| p == req.uri().path())
        {
            return Either::Left(self.inner.call(req));
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Either::Right(Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let client = match &shared.settings.shield {
                Some(shield) => shield.client(&parts),
                None => parts.extensions.get::<ClientAddr>().map(|c| c.0),
            };
            let started_at = std::time::SystemTime::now();
            let checking = tokio::time::Instant::now();
            let verdict = shared.authenticate(&parts, client).await;
            let took = checking.elapsed();
            if let Some(timing) = &shared.settings.timing {
                timing.observe(took.as_secs_f64());
            }
            match verdict {
                Ok(public_id) => {
                    parts.extensions.insert(ApiKeyPublicId(public_id.into()));
                    parts.extensions.insert(AuthDuration { started_at, took });
                    inner.call(Request::from_parts(parts, body)).await
                }
                Err(failure) => {
                    if let Some(failures) = &shared.settings.failures {
                        failures.with(&[failure_kind(&failure)]).inc();
                    }
                    if let AuthFailure::Unavailable(detail) = &failure {
                        tracing::warn!(
                            target: "switchyard::auth",
                            detail = %detail,
                            "the API key store did not answer; request refused"
                        );
                    }
                    tracing::info!(
                        target: "switchyard::auth",
                        reason = %failure_kind(&failure),
                        client = ?client,
                        "request refused"
                    );
                    Ok((shared.responder)(&failure, &parts))
                }
            }
        }))
    }
}

fn failure_kind(f: &AuthFailure) -> &'static str {
    match f {
        AuthFailure::MissingHeader => "missing_header",
        AuthFailure::NotBearer => "not_bearer",
        AuthFailure::BadFormat(_) => "bad_format",
        AuthFailure::Unknown => "unknown_key",
        AuthFailure::Disabled(_) => "disabled_key",
        AuthFailure::Expired(_) => "expired_key",
        AuthFailure::Unavailable(_) => "store_unavailable",
        AuthFailure::TooManyFailures { .. } => "too_many_failures",
    }
}

impl<B> Shared<B> {
    async fn authenticate(
        &self,
        parts: &http::request::Parts,
        client: Option<IpAddr>,
    ) -> Result<String, AuthFailure> {
        // The key is checked first: a valid key is never refused because of other callers'
        // failures from the same address (behind an ingress, a mesh sidecar or NAT, thousands
        // of clients share one). Only failed attempts are throttled.
        let result = self.check(parts).await;
        match (&result, client) {
            (Err(AuthFailure::Unavailable(_)), _) | (Ok(_), _) | (Err(_), None) => {}
            (Err(_), Some(ip)) => {
                if let Some(retry_after) = self.blocked_for(ip) {
                    return Err(AuthFailure::TooManyFailures { retry_after });
                }
                if let Some(retry_after) = self.record_failure(ip) {
                    return Err(AuthFailure::TooManyFailures { retry_after });
                }
            }
        }
        result
    }

    async fn check(&self, parts: &http::request::Parts) -> Result<String, AuthFailure> {
        // `Authorization: Bearer KEY`, or (what Anthropic clients send) `x-api-key: KEY`.
        let token = match (
            parts.headers.get(AUTHORIZATION),
            parts.headers.get(X_API_KEY),
        ) {
            (Some(header), _) => header
                .to_str()
                .map_err(|_| AuthFailure::NotBearer)?
                .strip_prefix("Bearer ")
                .ok_or(AuthFailure::NotBearer)?,
            (None, Some(key)) => key.to_str().map_err(|_| AuthFailure::NotBearer)?,
            (None, None) => return Err(AuthFailure::MissingHeader),
        };
        let key = ApiKey::parse(token).map_err(AuthFailure::BadFormat)?;
        let record = self.record(key.public_id()).await?;
        evaluate(&key, &record)?;
        Ok(key.public_id.clone())
    }

    async fn record(&self, public_id: &str) -> Result<KeyRecord, AuthFailure> {
        if let Some(ttl) = self.settings.cache_ttl {
            let now = Instant::now();
            if let Some((record, at)) = self.cache.lock().expect("auth cache").get(public_id) {
                if now.duration_since(*at) < ttl {
                    return Ok(record.clone());
                }
            }
            let record = self
                .store
                .lookup(public_id)
                .await
                .map_err(|e| AuthFailure::Unavailable(e.0))?;
            let mut cache = self.cache.lock().expect("auth cache");
            if cache.len() >= MAX_CACHED {
                cache.retain(|_, (_, at)| now.duration_since(*at) < ttl);
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
            }
            cache.insert(public_id.to_owned(), (record.clone(), now));
            Ok(record)
        } else {
            self.store
                .lookup(public_id)
                .await
                .map_err(|e| AuthFailure::Unavailable(e.0))
        }
    }

    fn blocked_for(&self, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let mut blocked = self.blocked.lock().expect("auth shield");
        match blocked.get(&ip) {
            Some(until) if *until > now => Some(*until - now),
            Some(_) => {
                blocked.remove(&ip);
                None
            }
            None => None,
        }
    }

    /// Counts a failure; past the quota, blocks the address and says for how long.
    fn record_failure(&self, ip: IpAddr) -> Option<Duration> {
        let limiter = self.limiter.as_ref()?;
        match limiter.check_key(&ip) {
            Ok(()) => None,
            Err(not_until) => {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(limiter.clock()));
                let wait = wait.max(Duration::from_secs(1));
                let now = Instant::now();
                let mut blocked = self.blocked.lock().expect("auth shield");
                if blocked.len() >= MAX_BLOCKED {
                    blocked.retain(|_, until| *until > now);
                    limiter.retain_recent();
                }
                blocked.insert(ip, now + wait);
                Some(wait)
            }
        }
    }
}

/// Whether a presented key matches its record and is usable now.
fn evaluate(key: &ApiKey, record: &KeyRecord) -> Result<(), AuthFailure> {
    let KeyRecord::Found {
        hash,
        disabled_at,
        expires_at,
    } = record
    else {
        return Err(AuthFailure::Unknown);
    };
    let presented = key.hash();
    let matches: bool = presented.as_bytes().ct_eq(hash.as_bytes()).into();
    if !matches {
        return Err(AuthFailure::Unknown);
    }
    if let Some(at) = disabled_at {
        return Err(AuthFailure::Disabled(at.clone()));
    }
    if let Some(expiry) = expires_at {
        if expiry.at <= SystemTime::now() {
            return Err(AuthFailure::Expired(expiry.display.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::ServiceExt;

    const PUBLIC: &str = "abcdefABCDEF";

    fn key() -> ApiKey {
        ApiKey::parse(&format!("sk-t0-{PUBLIC}-{}", "x".repeat(48))).unwrap()
    }

    struct Store {
        record: Mutex<Result<KeyRecord, String>>,
        lookups: AtomicUsize,
    }

    impl KeyStore for Store {
        fn lookup<'a>(
            &'a self,
            _id: &'a str,
        ) -> Pin<Box<dyn Future<Output = Result<KeyRecord, StoreUnavailable>> + Send + 'a>>
        {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            let r = self
                .record
                .lock()
                .unwrap()
                .clone()
                .map_err(StoreUnavailable);
            Box::pin(async move { r })
        }
    }

    fn store(record: Result<KeyRecord, String>) -> Arc<Store> {
        Arc::new(Store {
            record: Mutex::new(record),
            lookups: AtomicUsize::new(0),
        })
    }

    fn found() -> KeyRecord {
        KeyRecord::Found {
            hash: key().hash(),
            disabled_at: None,
            expires_at: None,
        }
    }

    fn layer(store: Arc<Store>, shield: Option<ShieldSettings>) -> AuthLayer<String> {
        let responder: Responder<String> =
            Arc::new(|f: &AuthFailure, _p: &http::request::Parts| {
                let mut r = Response::new(f.to_string());
                *r.status_mut() = f.status();
                r
            });
        AuthLayer::new(
            store,
            AuthSettings {
                open_paths: vec!["/health".into()],
                failures: None,
                timing: None,
                cache_ttl: Some(Duration::from_secs(1)),
                shield,
            },
            responder,
        )
    }

    fn ok_service() -> impl Service<
        Request<()>,
        Response = Response<String>,
        Error = std::convert::Infallible,
        Future = impl Send,
    > + Clone
    + Send
    + 'static {
        tower::service_fn(|req: Request<()>| async move {
            let id = req
                .extensions()
                .get::<ApiKeyPublicId>()
                .map(|i| i.0.to_string())
                .unwrap_or_default();
            Ok(Response::new(format!("ok {id}")))
        })
    }

    fn req(auth: Option<&str>, path: &str) -> Request<()> {
        let mut b = Request::builder().uri(path);
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        let mut r = b.body(()).unwrap();
        r.extensions_mut()
            .insert(ClientAddr("10.0.0.1".parse().unwrap()));
        r
    }

    async fn call(l: &AuthLayer<String>, r: Request<()>) -> Response<String> {
        l.layer(ok_service()).oneshot(r).await.unwrap()
    }

    #[test]
    fn key_format_errors_name_the_rule() {
        let long = "a".repeat(48);
        assert_eq!(
            ApiKey::parse("sk-t0-abc").unwrap_err(),
            "API key must be of the form `sk-t0-<public_id>-<long_key>`"
        );
        assert_eq!(
            ApiKey::parse(&format!("sk-t1-{PUBLIC}-{long}")).unwrap_err(),
            "API key must start with `sk-t0-`"
        );
        assert_eq!(
            ApiKey::parse(&format!("sk-t0-short-{long}")).unwrap_err(),
            "Public ID must be 12 characters"
        );
        assert_eq!(
            ApiKey::parse(&format!("sk-t0-{PUBLIC}-short")).unwrap_err(),
            "Long key must be 48 characters"
        );
        assert_eq!(
            ApiKey::parse(&format!("sk-t0-abcdefABCDE!-{long}")).unwrap_err(),
            "Public ID must be alphanumeric"
        );
        assert_eq!(
            ApiKey::parse(&format!("sk-t0-{PUBLIC}-{}!", "a".repeat(47))).unwrap_err(),
            "Long key must be alphanumeric"
        );
    }

    #[test]
    fn generated_keys_parse_and_hash_only_the_long_part() {
        let k = ApiKey::generate();
        let text = k.expose();
        assert_eq!(text.len(), 67);
        let parsed = ApiKey::parse(&text).unwrap();
        assert_eq!(parsed.hash(), hash_hex(&text[19..]));
        assert_ne!(ApiKey::generate().expose(), text);
        assert!(
            !format!("{k:?}").contains(&text[19..]),
            "Debug must not show the secret"
        );
    }

    #[tokio::test]
    async fn valid_keys_pass_with_their_public_id_and_open_paths_need_none() {
        let s = store(Ok(found()));
        let l = layer(s.clone(), None);
        let r = call(
            &l,
            req(Some(&format!("Bearer {}", key().expose())), "/inference"),
        )
        .await;
        assert_eq!(r.body(), &format!("ok {PUBLIC}"));
        let r = call(&l, req(None, "/health")).await;
        assert_eq!(r.status(), 200);
    }

    #[tokio::test]
    async fn every_failure_is_a_401_that_says_why() {
        let s = store(Ok(found()));
        let l = layer(s, None);
        let cases = [
            (None, "Authorization header is required"),
            (Some("Basic abc"), "must start with 'Bearer '"),
            (
                Some("Bearer sk-t0-nope"),
                "Invalid format for TensorZero API key",
            ),
        ];
        for (header, expected) in cases {
            let r = call(&l, req(header, "/inference")).await;
            assert_eq!(r.status(), 401);
            assert!(r.body().contains(expected), "{}", r.body());
        }
        let wrong_secret = format!("Bearer sk-t0-{PUBLIC}-{}", "y".repeat(48));
        let r = call(&l, req(Some(&wrong_secret), "/inference")).await;
        assert!(r.body().contains("does not exist"), "{}", r.body());
        assert!(
            !r.body().contains(&"y".repeat(48)),
            "the key is never echoed"
        );
    }

    #[tokio::test]
    async fn disabled_and_expired_keys_are_refused() {
        let auth = format!("Bearer {}", key().expose());
        let s = store(Ok(KeyRecord::Found {
            hash: key().hash(),
            disabled_at: Some("2026-01-01T00:00:00Z".into()),
            expires_at: None,
        }));
        let r = call(&layer(s, None), req(Some(&auth), "/x")).await;
        assert!(
            r.body()
                .contains("API key was disabled at: 2026-01-01T00:00:00Z"),
            "{}",
            r.body()
        );
        let past = Expiry {
            at: SystemTime::now() - Duration::from_secs(1),
            display: "then".into(),
        };
        let s = store(Ok(KeyRecord::Found {
            hash: key().hash(),
            disabled_at: None,
            expires_at: Some(past),
        }));
        let r = call(&layer(s, None), req(Some(&auth), "/x")).await;
        assert!(
            r.body().contains("API key expired at: then"),
            "{}",
            r.body()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn lookups_are_cached_for_the_ttl_including_negative_ones() {
        let auth = format!("Bearer {}", key().expose());
        let s = store(Ok(KeyRecord::Missing));
        let l = layer(s.clone(), None);
        assert_eq!(call(&l, req(Some(&auth), "/x")).await.status(), 401);
        *s.record.lock().unwrap() = Ok(found());
        assert_eq!(
            call(&l, req(Some(&auth), "/x")).await.status(),
            401,
            "the negative result is cached"
        );
        assert_eq!(s.lookups.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert_eq!(call(&l, req(Some(&auth), "/x")).await.status(), 200);
        assert_eq!(s.lookups.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_outage_is_a_503_for_uncached_keys_only() {
        let auth = format!("Bearer {}", key().expose());
        let s = store(Ok(found()));
        let l = layer(s.clone(), None);
        assert_eq!(call(&l, req(Some(&auth), "/x")).await.status(), 200);
        *s.record.lock().unwrap() = Err("connection refused".into());
        assert_eq!(
            call(&l, req(Some(&auth), "/x")).await.status(),
            200,
            "cached keys keep working"
        );
        tokio::time::advance(Duration::from_millis(1001)).await;
        let r = call(&l, req(Some(&auth), "/x")).await;
        assert_eq!(r.status(), 503);
        // The store's error is for the log, not for an unauthenticated client.
        assert!(!r.body().contains("connection refused"), "{}", r.body());
        assert!(r.body().contains("unavailable"), "{}", r.body());
    }

    #[tokio::test]
    async fn the_shield_blocks_an_address_after_too_many_failures() {
        let s = store(Ok(found()));
        let shield = ShieldSettings {
            failures_per_minute: NonZeroU32::new(1).unwrap(),
            burst: NonZeroU32::new(3).unwrap(),
            client_ip_header: None,
        };
        let l = layer(s.clone(), Some(shield));
        let bad = "Bearer sk-t0-wrong";
        for _ in 0..3 {
            assert_eq!(call(&l, req(Some(bad), "/x")).await.status(), 401);
        }
        let r = call(&l, req(Some(bad), "/x")).await;
        assert_eq!(r.status(), 429);
        assert!(
            r.body().contains("too many failed authentication attempts"),
            "{}",
            r.body()
        );
        // The right key is never refused because of someone else's failures from that address
        // (a mesh sidecar or NAT puts many clients behind one)...
        let good = format!("Bearer {}", key().expose());
        assert_eq!(call(&l, req(Some(&good), "/x")).await.status(), 200);
        // ...while wrong keys from it stay blocked, and other addresses are unaffected.
        assert_eq!(call(&l, req(Some(bad), "/x")).await.status(), 429);
        let mut other = req(Some(&good), "/x");
        other
            .extensions_mut()
            .insert(ClientAddr("10.0.0.2".parse().unwrap()));
        assert_eq!(call(&l, other).await.status(), 200);
    }

    #[tokio::test]
    async fn behind_a_trusted_proxy_the_shield_counts_the_forwarded_address() {
        let s = store(Ok(found()));
        let shield = ShieldSettings {
            failures_per_minute: NonZeroU32::new(1).unwrap(),
            burst: NonZeroU32::new(2).unwrap(),
            client_ip_header: Some(http::HeaderName::from_static("x-forwarded-for")),
        };
        let l = layer(s.clone(), Some(shield));
        // Every request arrives from the same sidecar address; the proxy appends the client's.
        let from = |xff: &str, key: &str| {
            let mut r = req(Some(key), "/x");
            r.headers_mut()
                .insert("x-forwarded-for", http::HeaderValue::from_str(xff).unwrap());
            r
        };
        let bad = "Bearer sk-t0-wrong";
        for _ in 0..2 {
            assert_eq!(call(&l, from("9.9.9.9, 10.1.1.1", bad)).await.status(), 401);
        }
        assert_eq!(call(&l, from("9.9.9.9, 10.1.1.1", bad)).await.status(), 429);
        // A client that writes its own first entry cannot escape: the last one counts.
        assert_eq!(call(&l, from("1.2.3.4, 10.1.1.1", bad)).await.status(), 429);
        // Another client behind the same sidecar is not blocked.
        assert_eq!(call(&l, from("10.1.1.2", bad)).await.status(), 401);
        // A header that does not parse falls back to the peer address.
        assert_eq!(call(&l, from("garbage", bad)).await.status(), 401);
    }

    #[tokio::test]
    async fn waits_for_its_inner_service_and_calls_the_one_made_ready() {
        use tower_test::mock;
        let (mut svc, mut handle) =
            mock::spawn_layer::<Request<()>, Response<String>, _>(layer(store(Ok(found())), None));
        // Not ready while the inner service is not.
        handle.allow(0);
        tokio_test::assert_pending!(svc.poll_ready());
        handle.allow(1);
        tokio_test::assert_ready_ok!(svc.poll_ready());
        let good = format!("Bearer {}", key().expose());
        let call = svc.call(req(Some(&good), "/x"));
        let answer = async {
            let (request, send) = handle.next_request().await.expect("the call arrives");
            assert_eq!(request.uri().path(), "/x");
            assert!(request.extensions().get::<ApiKeyPublicId>().is_some());
            send.send_response(Response::new("ok".to_owned()));
        };
        let (response, ()) = tokio::join!(call, answer);
        assert_eq!(response.unwrap().body(), "ok");
        // An open path goes straight through, once the inner service is ready again.
        handle.allow(1);
        tokio_test::assert_ready_ok!(svc.poll_ready());
        let call = svc.call(req(None, "/health"));
        let answer = async {
            let (request, send) = handle.next_request().await.expect("the call arrives");
            assert_eq!(request.uri().path(), "/health");
            send.send_response(Response::new("open".to_owned()));
        };
        let (response, ()) = tokio::join!(call, answer);
        assert_eq!(response.unwrap().body(), "open");
    }
}
