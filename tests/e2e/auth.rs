//! API keys in a real Postgres: the admin commands, the auth layer end to end, the cache TTL,
//! Postgres going away and coming back, the brute-force shield, and a relay with auth on.

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};
use switchyard::config::LoadedConfig;
use switchyard::{Environment, RunningGateway};
use switchyard_mock::MockProvider;

use crate::harness::{GatewayProcess, get_until, inference, send};
use crate::pg::Postgres;

fn admin(pg: &Postgres, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .env("TENSORZERO_POSTGRES_URL", pg.url())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn create_key(pg: &Postgres, extra: &[&str]) -> String {
    let mut args = vec!["--create-api-key"];
    args.extend_from_slice(extra);
    let o = admin(pg, &args);
    assert!(o.status.success(), "{}", out(&o));
    let key = String::from_utf8(o.stdout).unwrap().trim().to_owned();
    assert!(
        key.starts_with("sk-t0-") && key.len() == 67,
        "stdout must hold only the key: {key:?}"
    );
    key
}

fn public_id(key: &str) -> &str {
    &key[6..18]
}

const AUTH_CONFIG: &str = r#"
[gateway]
auth.enabled = true
auth.cache = { ttl_ms = 300 }

[models.mock]
routing = ["p"]
[models.mock.providers.p]
type = "openai"
api_base = "{mock}"
model_name = "mock-model"
api_key_location = "none"
"#;

async fn gateway_with(
    pg: &Postgres,
    toml: &str,
    mock: &MockProvider,
) -> (RunningGateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tensorzero.toml");
    std::fs::write(&path, toml.replace("{mock}", &mock.api_base())).unwrap();
    let loaded = LoadedConfig::from_files(path.to_str().unwrap()).unwrap();
    let env = Environment {
        postgres_url: Some(switchyard::Secret::new(pg.url())),
        ..Environment::default()
    };
    let gw = switchyard::start_with(&loaded, SocketAddr::from(([127, 0, 0, 1], 0)), &env)
        .await
        .unwrap();
    (gw, dir)
}

async fn call(gw: &RunningGateway, path: &str, key: Option<&str>) -> crate::harness::Reply {
    let auth = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    let body = if path.contains("openai") {
        json!({ "model": "tensorzero::model_name::mock", "messages": [{ "role": "user", "content": "x" }] })
    } else {
        inference("mock", "x")
    };
    send(
        Method::POST,
        &format!("{}{path}", gw.url()),
        Bytes::from(body.to_string()),
        &headers,
    )
    .await
}

#[test]
fn admin_commands_create_list_disable_and_expire_keys() {
    let pg = Postgres::start();
    for _ in 0..2 {
        let o = admin(&pg, &["--run-postgres-migrations"]);
        assert!(
            o.status.success(),
            "migrations must be idempotent: {}",
            out(&o)
        );
    }
    let key = create_key(&pg, &["--description", "team search"]);
    let later = create_key(&pg, &["--expiration", "2099-01-01T00:00:00Z"]);
    let o = admin(&pg, &["--list-api-keys"]);
    let listing = out(&o);
    assert!(
        listing.contains(public_id(&key)) && listing.contains("team search"),
        "{listing}"
    );
    assert!(listing.contains("2099-01-01T00:00:00.000000Z"), "{listing}");
    assert!(
        !listing.contains(&key[19..]) && !listing.contains(&later[19..]),
        "a listing never shows a secret"
    );

    let o = admin(&pg, &["--disable-api-key", public_id(&key)]);
    assert!(
        o.status.success() && out(&o).contains("disabled"),
        "{}",
        out(&o)
    );
    let o = admin(&pg, &["--list-api-keys"]);
    let line = out(&o)
        .lines()
        .find(|l| l.starts_with(public_id(&key)))
        .unwrap()
        .to_owned();
    assert!(
        line.split_whitespace().nth(3).is_some_and(|d| d != "-"),
        "disabled time shown: {line}"
    );
    let o = admin(&pg, &["--disable-api-key", "nosuchkey123"]);
    assert!(
        !o.status.success() && out(&o).contains("no API key has the public id"),
        "{}",
        out(&o)
    );

    let o = admin(
        &pg,
        &["--create-api-key", "--expiration", "2001-01-01T00:00:00Z"],
    );
    assert!(
        !o.status.success() && out(&o).contains("in the past"),
        "{}",
        out(&o)
    );
    let o = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("--list-api-keys")
        .env_remove("TENSORZERO_POSTGRES_URL")
        .output()
        .unwrap();
    assert!(
        !o.status.success() && out(&o).contains("TENSORZERO_POSTGRES_URL"),
        "{}",
        out(&o)
    );
}

#[tokio::test]
async fn start_up_refuses_without_a_usable_key_store() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[gateway]\nauth.enabled = true\n").unwrap();
    let loaded = LoadedConfig::from_files(path.to_str().unwrap()).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let e = switchyard::start_with(&loaded, addr, &Environment::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("Authentication is enabled") && e.contains("TENSORZERO_POSTGRES_URL"),
        "{e}"
    );
    let env = Environment {
        postgres_url: Some(switchyard::Secret::new(pg.url())),
        ..Environment::default()
    };
    let e = switchyard::start_with(&loaded, addr, &env)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("--run-postgres-migrations"), "{e}");
    pg.stop();
    let e = switchyard::start_with(&loaded, addr, &env)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("cannot connect to Postgres"), "{e}");
}

#[tokio::test]
async fn keys_are_checked_on_every_route_but_health_and_status() {
    let pg = Postgres::start();
    assert!(admin(&pg, &["--run-postgres-migrations"]).status.success());
    let key = create_key(&pg, &[]);
    let mock = MockProvider::start().await.unwrap();
    // This test fails on purpose more often than the default shield allows.
    let cfg = AUTH_CONFIG.replace(
        "auth.cache = { ttl_ms = 300 }",
        "auth.cache = { ttl_ms = 300 }\nauth.shield = { burst = 100 }",
    );
    let (gw, _d) = gateway_with(&pg, &cfg, &mock).await;

    let r = call(&gw, "/inference", Some(&key)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = call(&gw, "/openai/v1/chat/completions", Some(&key)).await;
    assert_eq!(r.status, 200);
    assert!(
        mock.requests()
            .iter()
            .all(|r| r.header("authorization").is_none()),
        "the client's key never reaches a provider"
    );

    let cases: [(Option<&str>, &str); 5] = [
        (None, "Authorization header is required"),
        (
            Some("sk-t0-abc"),
            "Invalid format for TensorZero API key: API key must be of the form",
        ),
        (
            Some("sk-t1-abcdefabcdef-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            "must start with `sk-t0-`",
        ),
        (
            Some("sk-t0-abcdefabcdef-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            "does not exist in the database",
        ),
        (
            // The real key with its last character changed (to one it is not already).
            Some(&format!(
                "{}{}",
                &key[..66],
                if key.ends_with('x') { 'y' } else { 'x' }
            )),
            "does not exist in the database",
        ),
    ];
    for (k, expected) in cases {
        let r = call(&gw, "/inference", k).await;
        assert_eq!(r.status, 401);
        assert!(
            r.error().starts_with("TensorZero authentication error:")
                && r.error().contains(expected),
            "{}",
            r.error()
        );
        if let Some(k) = k {
            assert!(
                !String::from_utf8_lossy(&r.body).contains(&k[6.min(k.len())..]),
                "the key is never echoed"
            );
        }
        let r = call(&gw, "/openai/v1/chat/completions", k).await;
        assert_eq!(r.status, 401);
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(expected)
        );
    }
    let r = send(
        Method::POST,
        &format!("{}/inference", gw.url()),
        Bytes::new(),
        &[("authorization", "Basic abc")],
    )
    .await;
    assert!(
        r.error().contains("must start with 'Bearer '"),
        "{}",
        r.error()
    );
    // Open routes, and everything else closed (even unknown routes and malformed bodies).
    for path in ["/health", "/status", "/live", "/ready"] {
        assert_eq!(
            send(
                Method::GET,
                &format!("{}{path}", gw.url()),
                Bytes::new(),
                &[]
            )
            .await
            .status,
            200
        );
    }
    assert_eq!(
        send(
            Method::GET,
            &format!("{}/metrics", gw.url()),
            Bytes::new(),
            &[]
        )
        .await
        .status,
        401
    );
    // With a key, Prometheus can scrape it.
    let bearer = format!("Bearer {key}");
    let r = send(
        Method::GET,
        &format!("{}/metrics", gw.url()),
        Bytes::new(),
        &[("authorization", bearer.as_str())],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("tensorzero_requests_total{"),
        "{}",
        r.text()
    );
    assert_eq!(
        send(
            Method::GET,
            &format!("{}/nope", gw.url()),
            Bytes::new(),
            &[]
        )
        .await
        .status,
        401
    );
    let r = send(
        Method::POST,
        &format!("{}/inference", gw.url()),
        Bytes::from_static(b"{not json"),
        &[],
    )
    .await;
    assert_eq!(r.status, 401, "auth runs before the body is read");
}

#[tokio::test]
async fn open_routes_follow_base_path() {
    let pg = Postgres::start();
    assert!(admin(&pg, &["--run-postgres-migrations"]).status.success());
    let mock = MockProvider::start().await.unwrap();
    let (gw, _d) = gateway_with(
        &pg,
        &AUTH_CONFIG.replace("[gateway]\n", "[gateway]\nbase_path = \"/gw\"\n"),
        &mock,
    )
    .await;
    assert_eq!(
        send(
            Method::GET,
            &format!("{}/gw/health", gw.url()),
            Bytes::new(),
            &[]
        )
        .await
        .status,
        200
    );
    assert_eq!(
        send(
            Method::GET,
            &format!("{}/gw/status", gw.url()),
            Bytes::new(),
            &[]
        )
        .await
        .status,
        200
    );
    assert_eq!(call(&gw, "/gw/inference", None).await.status, 401);
}

#[tokio::test]
async fn a_disabled_key_stops_working_after_the_cache_ttl_and_expired_keys_fail() {
    let pg = Postgres::start();
    assert!(admin(&pg, &["--run-postgres-migrations"]).status.success());
    let key = create_key(&pg, &[]);
    let mock = MockProvider::start().await.unwrap();
    let (gw, _d) = gateway_with(&pg, AUTH_CONFIG, &mock).await;
    assert_eq!(call(&gw, "/inference", Some(&key)).await.status, 200);
    assert!(
        admin(&pg, &["--disable-api-key", public_id(&key)])
            .status
            .success()
    );
    // Within the 300 ms TTL the cached result may still hold; once it has passed, the key is
    // refused.
    let disabled_at = tokio::time::Instant::now();
    let r = loop {
        let r = call(&gw, "/inference", Some(&key)).await;
        if r.status == 401 {
            break r;
        }
        assert!(
            disabled_at.elapsed() < Duration::from_secs(10),
            "the disabled key still works: {}",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        r.error().contains("API key was disabled at:"),
        "{}",
        r.error()
    );

    let soon = create_key(&pg, &["--expiration", "2099-01-01T00:00:00Z"]);
    pg.sql(&format!("UPDATE tensorzero_auth_api_key SET expires_at = now() - interval '1 second' WHERE public_id = '{}'", public_id(&soon)))
        .await;
    let r = call(&gw, "/inference", Some(&soon)).await;
    assert_eq!(r.status, 401);
    assert!(r.error().contains("API key expired at:"), "{}", r.error());
}

#[tokio::test]
async fn postgres_down_means_503_for_uncached_keys_and_recovery_after_restart() {
    let pg = Postgres::start();
    assert!(admin(&pg, &["--run-postgres-migrations"]).status.success());
    let cached = create_key(&pg, &[]);
    let uncached = create_key(&pg, &[]);
    let mock = MockProvider::start().await.unwrap();
    let (gw, _d) = gateway_with(
        &pg,
        &AUTH_CONFIG.replace("ttl_ms = 300", "ttl_ms = 30000"),
        &mock,
    )
    .await;
    assert_eq!(call(&gw, "/inference", Some(&cached)).await.status, 200);

    pg.stop();
    assert_eq!(
        call(&gw, "/inference", Some(&cached)).await.status,
        200,
        "cached keys keep working"
    );
    let r = call(&gw, "/inference", Some(&uncached)).await;
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.headers.contains_key("retry-after"));
    assert!(r.error().contains("unavailable"), "{}", r.error());
    // The background check sees the outage within a few seconds.
    let health = get_until(
        &format!("{}/health", gw.url()),
        503,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(health.json()["postgres"], "error");
    let get = |path: &'static str| {
        let url = format!("{}{path}", gw.url());
        async move { send(Method::GET, &url, Bytes::new(), &[]).await }
    };
    let ready = get("/ready").await;
    assert_eq!(ready.status, 503, "not ready while the key store is down");
    assert!(
        ready.json()["reasons"][0]
            .as_str()
            .unwrap()
            .contains("Postgres"),
        "{}",
        ready.json()
    );
    assert_eq!(
        get("/live").await.status,
        200,
        "but alive: no restart for an outage"
    );

    pg.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut status = 0;
    while tokio::time::Instant::now() < deadline {
        status = call(&gw, "/inference", Some(&uncached))
            .await
            .status
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "the gateway reconnects once Postgres is back");
    get_until(
        &format!("{}/health", gw.url()),
        200,
        Duration::from_secs(10),
    )
    .await;
}

#[tokio::test]
async fn the_shield_answers_429_after_repeated_failures() {
    let pg = Postgres::start();
    assert!(admin(&pg, &["--run-postgres-migrations"]).status.success());
    let key = create_key(&pg, &[]);
    let mock = MockProvider::start().await.unwrap();
    let cfg = AUTH_CONFIG.replace(
        "auth.cache = { ttl_ms = 300 }",
        "auth.cache = { ttl_ms = 300 }\nauth.shield = { failures_per_minute = 1, burst = 3 }",
    );
    let (gw, _d) = gateway_with(&pg, &cfg, &mock).await;
    let guess = "sk-t0-abcdefabcdef-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for _ in 0..3 {
        assert_eq!(call(&gw, "/inference", Some(guess)).await.status, 401);
    }
    let r = call(&gw, "/inference", Some(guess)).await;
    assert_eq!(r.status, 429);
    let retry_after: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        call(&gw, "/inference", Some(guess)).await.status,
        429,
        "no guess gets through while blocked"
    );
    assert!(mock.requests().is_empty());
    // A flood of wrong keys from the same address (a mesh sidecar, an ingress, NAT)...
    let flood: Vec<_> = (0..200)
        .map(|i| {
            let url = format!("{}/inference", gw.url());
            tokio::spawn(async move {
                let auth = format!("Bearer sk-t0-abcdefabcdef-{i:0>64}");
                let body = Bytes::from(inference("mock", "x").to_string());
                send(Method::POST, &url, body, &[("authorization", &auth)])
                    .await
                    .status
                    .as_u16()
            })
        })
        .collect();
    for task in flood {
        assert_eq!(task.await.unwrap(), 429);
    }
    // ...and a valid key from it is still never refused because of someone else's failures.
    assert_eq!(call(&gw, "/inference", Some(&key)).await.status, 200);
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_shield_blocks_the_forwarded_client_only() {
    let pg = Postgres::start();
    assert!(admin(&pg, &["--run-postgres-migrations"]).status.success());
    let mock = MockProvider::start().await.unwrap();
    let cfg = AUTH_CONFIG.replace(
        "auth.cache = { ttl_ms = 300 }",
        "auth.cache = { ttl_ms = 300 }\nauth.shield = { failures_per_minute = 1, burst = 3, client_ip_header = \"x-forwarded-for\" }",
    );
    let (gw, _d) = gateway_with(&pg, &cfg, &mock).await;
    // Every request comes from 127.0.0.1 (the proxy); the proxy appends the client's address.
    let guess = "Bearer sk-t0-abcdefabcdef-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let from = |xff: &'static str| {
        let url = format!("{}/inference", gw.url());
        async move {
            let body = Bytes::from(inference("mock", "x").to_string());
            send(
                Method::POST,
                &url,
                body,
                &[("authorization", guess), ("x-forwarded-for", xff)],
            )
            .await
            .status
            .as_u16()
        }
    };
    for _ in 0..3 {
        assert_eq!(from("203.0.113.9").await, 401);
    }
    assert_eq!(from("203.0.113.9").await, 429);
    assert_eq!(
        from("198.51.100.1, 203.0.113.9").await,
        429,
        "a client cannot pick its address by writing its own first entry"
    );
    assert_eq!(
        from("203.0.113.10").await,
        401,
        "another client behind the same proxy is not blocked"
    );
}

/// The seed's relay guide with auth on the relay: the edge's relay key comes from
/// `env::TENSORZERO_RELAY_API_KEY`; both gateways run as processes so their logs can be read.
#[tokio::test]
async fn an_edge_with_a_relay_key_talks_to_a_relay_with_auth_on() {
    let pg = Postgres::start();
    assert!(admin(&pg, &["--run-postgres-migrations"]).status.success());
    let key = create_key(&pg, &[]);
    let mock = MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let provider_key = dir.path().join("provider.key");
    std::fs::write(&provider_key, "sk-provider-secret-1").unwrap();
    let relay_cfg = dir.path().join("relay.toml");
    std::fs::write(
        &relay_cfg,
        AUTH_CONFIG.replace("{mock}", &mock.api_base()).replace(
            "api_key_location = \"none\"",
            &format!("api_key_location = \"path::{}\"", provider_key.display()),
        ),
    )
    .unwrap();
    let relay = GatewayProcess::start(
        &relay_cfg,
        &[],
        &[
            ("TENSORZERO_POSTGRES_URL", pg.url().as_str()),
            ("RUST_LOG", "trace"),
        ],
        dir.path().join("relay.log"),
    )
    .await;
    let edge_cfg = dir.path().join("edge.toml");
    std::fs::write(
        &edge_cfg,
        format!(
            "[gateway.relay]\ngateway_url = \"{}\"\napi_key_location = \"env::TENSORZERO_RELAY_API_KEY\"\n\n[models.mock]\nrouting = [\"p\"]\n[models.mock.providers.p]\ntype = \"openai\"\nmodel_name = \"x\"\n",
            relay.url
        ),
    )
    .unwrap();
    let edge = GatewayProcess::start(
        &edge_cfg,
        &[],
        &[
            ("TENSORZERO_RELAY_API_KEY", key.as_str()),
            ("RUST_LOG", "trace"),
        ],
        dir.path().join("edge.log"),
    )
    .await;
    let r = send(
        Method::POST,
        &format!("{}/inference", edge.url),
        Bytes::from(inference("mock", "hi").to_string()),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        mock.requests()[0].header("authorization"),
        Some("Bearer sk-provider-secret-1")
    );

    let wrong = GatewayProcess::start(
        &edge_cfg,
        &[],
        &[
            (
                "TENSORZERO_RELAY_API_KEY",
                "sk-t0-abcdefabcdef-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            ),
            ("RUST_LOG", "trace"),
        ],
        dir.path().join("wrong.log"),
    )
    .await;
    let r = send(
        Method::POST,
        &format!("{}/inference", wrong.url),
        Bytes::from(inference("mock", "hi").to_string()),
        &[],
    )
    .await;
    assert_eq!(
        r.status,
        401,
        "the relay's 401 reaches the client: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(
        r.error().contains("does not exist in the database"),
        "{}",
        r.error()
    );

    let logs: String = [relay.stop(), edge.stop(), wrong.stop()].concat();
    assert!(
        logs.contains("switchyard::request"),
        "request lines are logged"
    );
    for secret in [
        &key[19..],
        "sk-provider-secret-1",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ] {
        assert!(!logs.contains(secret), "a secret reached a log line");
    }
}

#[tokio::test]
async fn the_key_check_is_a_span_inside_the_request() {
    let pg = Postgres::start();
    assert!(admin(&pg, &["--run-postgres-migrations"]).status.success());
    let key = create_key(&pg, &[]);
    let mock = MockProvider::start().await.unwrap();
    let collector = crate::traces::Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tensorzero.toml");
    let config = format!("{AUTH_CONFIG}\n[gateway.export.otlp.traces]\nenabled = true\n")
        .replace("{mock}", &mock.api_base());
    std::fs::write(&path, config).unwrap();
    let loaded = LoadedConfig::from_files(path.to_str().unwrap()).unwrap();
    let env = Environment {
        postgres_url: Some(switchyard::Secret::new(pg.url())),
        otlp_traces_endpoint: Some(collector.url.clone()),
        otlp_traces_protocol: Some("http/json".into()),
        ..Environment::default()
    };
    let gw = switchyard::start_with(&loaded, SocketAddr::from(([127, 0, 0, 1], 0)), &env)
        .await
        .unwrap();
    let r = call(&gw, "/inference", Some(&key)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let spans = collector.wait_for_spans(3).await;
    let request = spans
        .iter()
        .find(|s| s["kind"] == 2)
        .expect("the request span");
    let auth = spans
        .iter()
        .find(|s| s["name"] == "auth")
        .expect("the auth span");
    assert_eq!(auth["kind"], 1);
    assert_eq!(auth["parentSpanId"], request["spanId"]);
    assert_eq!(auth["traceId"], request["traceId"]);
    // The key never reaches the collector.
    assert!(!spans.iter().any(|s| s.to_string().contains(&key)));
}

/// Anthropic clients send their key in `x-api-key`; OpenAI ones in `Authorization: Bearer`.
/// Either works on every route, and a refusal comes in the route family's error shape.
#[tokio::test]
async fn agents_authenticate_with_x_api_key_or_bearer() {
    let pg = Postgres::start();
    assert!(admin(&pg, &["--run-postgres-migrations"]).status.success());
    let key = create_key(&pg, &[]);
    let mock = MockProvider::start().await.unwrap();
    let (gw, _d) = gateway_with(&pg, AUTH_CONFIG, &mock).await;
    let messages =
        json!({"model": "mock", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]});
    let post = |path: &str, body: &Value, headers: Vec<(&'static str, String)>| {
        let url = format!("{}{path}", gw.url());
        let body = Bytes::from(body.to_string());
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            send(Method::POST, &url, body, &headers).await
        }
    };
    let r = post(
        "/anthropic/v1/messages",
        &messages,
        vec![("x-api-key", key.clone())],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = post("/anthropic/v1/messages", &messages, vec![]).await;
    assert_eq!(r.status, 401);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error");
    let r = post(
        "/anthropic/v1/messages",
        &messages,
        vec![("x-api-key", "sk-t0-wrong".into())],
    )
    .await;
    assert_eq!(r.status, 401);
    let responses = json!({"model": "mock", "input": "x"});
    let r = post(
        "/openai/v1/responses",
        &responses,
        vec![("authorization", format!("Bearer {key}"))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = post("/openai/v1/responses", &responses, vec![]).await;
    assert_eq!(r.status, 401);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");
    assert!(
        mock.requests()
            .iter()
            .all(|r| r.header("x-api-key").is_none() && r.header("authorization").is_none()),
        "the client's key never reaches a provider"
    );
}
