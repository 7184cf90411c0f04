//! Rate limits end to end: denials are 429s with their headers, tokens are settled with real
//! usage, both backends agree on one scenario table, and replicas sharing Redis hold one limit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::json;
use switchyard::config::LoadedConfig;
use switchyard::{Environment, RunningGateway};
use switchyard_mock::MockProvider;

use crate::harness::{GatewayProcess, Reply, get_until, inference, metric, send};
use crate::redis::Redis;

const MODEL: &str = r#"
[models.mock]
routing = ["p"]
[models.mock.providers.p]
type = "openai"
api_base = "{mock}"
model_name = "mock-model"
api_key_location = "none"
"#;

async fn gateway(
    rules: &str,
    mock: &MockProvider,
    valkey: Option<&Redis>,
) -> (RunningGateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tensorzero.toml");
    let text = format!("{}\n{rules}", MODEL.replace("{mock}", &mock.api_base()));
    // Without a shared store, rules need the in-process one asked for by name.
    let text = if valkey.is_none() {
        in_process(&text)
    } else {
        text
    };
    std::fs::write(&path, text).unwrap();
    let loaded = LoadedConfig::from_files(path.to_str().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    let env = Environment {
        valkey_url: valkey.map(|r| switchyard::Secret::new(r.url())),
        ..Environment::default()
    };
    let gw = switchyard::start_with(&loaded, SocketAddr::from(([127, 0, 0, 1], 0)), &env)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (gw, dir)
}

/// Writes `tensorzero.toml` in `dir`: the mock model and `rules`.
fn write_config(dir: &tempfile::TempDir, mock: &MockProvider, rules: &str) -> std::path::PathBuf {
    let path = dir.path().join("tensorzero.toml");
    std::fs::write(
        &path,
        format!("{}\n{rules}", MODEL.replace("{mock}", &mock.api_base())),
    )
    .unwrap();
    path
}

/// `toml` with `[rate_limiting] backend = "memory"` (buckets in this process), which rules need
/// when no shared store is configured.
fn in_process(toml: &str) -> String {
    if toml.contains("[rate_limiting]\n") {
        toml.replacen(
            "[rate_limiting]\n",
            "[rate_limiting]\nbackend = \"memory\"\n",
            1,
        )
    } else {
        format!("{toml}\n[rate_limiting]\nbackend = \"memory\"\n")
    }
}

async fn ask(gw: &RunningGateway, tags: &[(&str, &str)], max_tokens: Option<u32>) -> Reply {
    let mut body = inference("mock", "hi");
    body["tags"] = json!(
        tags.iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect::<serde_json::Map<_, _>>()
    );
    if let Some(m) = max_tokens {
        body["params"] = json!({ "chat_completion": { "max_tokens": m } });
    }
    send(
        Method::POST,
        &format!("{}/inference", gw.url()),
        Bytes::from(body.to_string()),
        &[],
    )
    .await
}

/// Waits until `gw` has applied `n` rate-limit settlements (they run after the answer, off the
/// request's path), as its `/metrics` counts them.
async fn settled(gw: &RunningGateway, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let count = metric(&gw.url(), "switchyard_rate_limit_settlements_total").await;
        if count >= n as f64 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{count} of {n} settlements applied after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_denial_is_a_429_with_its_scope_and_openai_style_headers() {
    let mock = MockProvider::start().await.unwrap();
    let rules = r#"
[[rate_limiting.rules]]
model_inferences_per_hour = 2
priority = 1
scope = [{ tag_key = "user_id", tag_value = "tensorzero::each" }]
"#;
    let (gw, _d) = gateway(rules, &mock, None).await;
    for _ in 0..2 {
        assert_eq!(ask(&gw, &[("user_id", "ann")], None).await.status, 200);
    }
    let r = ask(&gw, &[("user_id", "ann")], None).await;
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
    let e = r.error();
    assert!(
        e.starts_with("TensorZero rate limit exceeded for `model_inferences` resource."),
        "{e}"
    );
    assert!(e.contains("Rule: rate_limiting.rules[0]"), "{e}");
    assert!(
        e.contains(r#"Scope: tag_key="user_id", tag_value="tensorzero::each" (matched: "ann")"#),
        "{e}"
    );
    assert!(e.contains("Requested: 1\nAvailable: 0"), "{e}");
    let retry_after: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(
        (1700..=1800).contains(&retry_after),
        "half an hour until one more fits: {retry_after}"
    );
    assert_eq!(r.headers["x-ratelimit-limit-requests"], "2");
    assert_eq!(r.headers["x-ratelimit-remaining-requests"], "0");
    assert!(
        r.headers["x-ratelimit-reset-requests"]
            .to_str()
            .unwrap()
            .ends_with('s')
    );
    // Another user has a bucket of their own; a request without the tag matches no rule.
    assert_eq!(ask(&gw, &[("user_id", "bob")], None).await.status, 200);
    assert_eq!(ask(&gw, &[], None).await.status, 200);
    assert_eq!(
        mock.requests().len(),
        4,
        "the denied request never reached the provider"
    );

    // The OpenAI route: the same 429, in its error shape.
    let r = send(
        Method::POST,
        &format!("{}/openai/v1/chat/completions", gw.url()),
        Bytes::from(json!({ "model": "tensorzero::model_name::mock", "messages": [{ "role": "user", "content": "x" }], "tensorzero::tags": { "user_id": "ann" } }).to_string()),
        &[],
    )
    .await;
    assert_eq!(r.status, 429);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rate limit exceeded")
    );
}

#[tokio::test]
async fn token_limits_reserve_an_estimate_and_settle_with_real_usage() {
    token_settlement(None).await;
}

#[tokio::test]
async fn token_limits_settle_with_real_usage_in_redis_too() {
    let redis = Redis::start().await;
    token_settlement(Some(&redis)).await;
    // Every bucket key expires once idle: twice its refill time, at least a minute (100 a day
    // refills in a day: two days).
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("switchyard_ratelimit:*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut c)
        .await
        .unwrap();
    let two_days = 2 * 24 * 3_600_000;
    assert!(
        (two_days - 60_000..=two_days).contains(&ttl_ms),
        "the idle expiry is twice the refill time: {ttl_ms} ms"
    );
}

#[tokio::test]
async fn an_expired_redis_bucket_is_a_full_one() {
    let redis = Redis::start().await;
    let mock = MockProvider::start().await.unwrap();
    let rules = "[[rate_limiting.rules]]\nmodel_inferences_per_hour = 1\nalways = true\n";
    let (gw, _d) = gateway(rules, &mock, Some(&redis)).await;
    assert_eq!(ask(&gw, &[], None).await.status, 200);
    assert_eq!(ask(&gw, &[], None).await.status, 429);
    // Expire the bucket now (as idleness would, after two hours).
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("switchyard_ratelimit:*")
        .query_async(&mut c)
        .await
        .unwrap();
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        (7_100_000..=7_200_000).contains(&ttl_ms),
        "one an hour refills in an hour: the key lives two: {ttl_ms} ms"
    );
    let _: () = redis::cmd("DEL")
        .arg(&keys[0])
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(ask(&gw, &[], None).await.status, 200);
    assert_eq!(ask(&gw, &[], None).await.status, 429);
}

async fn token_settlement(valkey: Option<&Redis>) {
    let mock = MockProvider::start().await.unwrap();
    // 100 tokens a day. A call reserves input/4 + max_tokens (or the default of 50 here);
    // the mock's answers really use about 10.
    let rules = r#"
[rate_limiting]
default_max_tokens = 50
[[rate_limiting.rules]]
tokens_per_day = 100
always = true
"#;
    let (gw, _d) = gateway(rules, &mock, valkey).await;
    // Without max_tokens, 51 are reserved (1 for "hi" + the default 50); only one such call
    // would fit in 100 if nothing were settled. Each call really uses about 13, so after
    // settlement four fit (100 - 3 * 13 = 61 >= 51), and the fifth does not (48 < 51).
    for i in 0..4 {
        let r = ask(&gw, &[], None).await;
        assert_eq!(r.status, 200, "call {i}: {}", r.error());
        settled(&gw, i + 1).await;
    }
    let r = ask(&gw, &[], None).await;
    assert_eq!(r.status, 429);
    assert!(r.error().contains("Requested: 51"), "{}", r.error());
    // A call whose max_tokens alone exceeds what is left is refused.
    let r = ask(&gw, &[], Some(90)).await;
    assert_eq!(r.status, 429);
    assert!(r.error().contains("`tokens` resource"), "{}", r.error());
    // More than the capacity can never fit: said so, and no Retry-After to wait for.
    let r = ask(&gw, &[], Some(1000)).await;
    assert_eq!(r.status, 429);
    assert!(r.error().contains("can never fit"), "{}", r.error());
    assert!(!r.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn a_failed_call_gives_its_reservation_back() {
    refunds(None).await;
}

#[tokio::test]
async fn a_failed_call_gives_its_reservation_back_in_redis_too() {
    let redis = Redis::start().await;
    refunds(Some(&redis)).await;
}

async fn refunds(valkey: Option<&Redis>) {
    let mock = MockProvider::start().await.unwrap();
    let rules = r#"
[[rate_limiting.rules]]
model_inferences_per_day = 1
always = true
"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tensorzero.toml");
    let cfg = MODEL
        .replace("mock-model", "error-400")
        .replace("{mock}", &mock.api_base());
    let text = format!("{cfg}\n{rules}");
    let text = if valkey.is_none() {
        in_process(&text)
    } else {
        text
    };
    std::fs::write(&path, text).unwrap();
    let loaded = LoadedConfig::from_files(path.to_str().unwrap()).unwrap();
    let env = Environment {
        valkey_url: valkey.map(|r| switchyard::Secret::new(r.url())),
        ..Environment::default()
    };
    let gw = switchyard::start_with(&loaded, SocketAddr::from(([127, 0, 0, 1], 0)), &env)
        .await
        .unwrap();
    for i in 0..3 {
        let r = ask(&gw, &[], None).await;
        assert!(
            r.error().contains("HTTP 400"),
            "the provider refused, so nothing was spent: {}",
            r.error()
        );
        settled(&gw, i + 1).await; // the refund
    }
}

/// One table of rules and requests, run against both backends: they cannot drift apart.
async fn scenario(valkey: Option<&Redis>) {
    let mock = MockProvider::start().await.unwrap();
    let rules = r#"
[[rate_limiting.rules]]
model_inferences_per_hour = 3
priority = 1
scope = [{ tag_key = "team", tag_value = "tensorzero::total" }]

[[rate_limiting.rules]]
model_inferences_per_hour = { capacity = 1, refill_rate = 1 }
priority = 2
scope = [{ tag_key = "user", tag_value = "vip" }]

[[rate_limiting.rules]]
model_inferences_per_day = 5
always = true
"#;
    let (gw, _d) = gateway(rules, &mock, valkey).await;
    let steps: [(&[(&str, &str)], u16); 9] = [
        (&[("team", "a")], 200),                  // team total 3→2, global 5→4
        (&[("team", "b")], 200),                  // team total is shared: 2→1, global 3
        (&[("team", "a"), ("user", "vip")], 200), // priority 2 wins over 1: vip 1→0, global 2
        (&[("team", "a"), ("user", "vip")], 429), // vip empty (team untouched), global stays 2
        (&[("team", "c")], 200),                  // team 1→0, global 1
        (&[("team", "a")], 429),                  // team empty
        (&[], 200),                               // only the global rule: 1→0
        (&[], 429),                               // global empty
        (&[("user", "vip")], 429),                // vip and global both empty
    ];
    for (i, (tags, expected)) in steps.iter().enumerate() {
        let r = ask(&gw, tags, None).await;
        assert_eq!(
            r.status.as_u16(),
            *expected,
            "step {i} {tags:?}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
}

#[tokio::test]
async fn the_scenario_table_in_process() {
    scenario(None).await;
}

#[tokio::test]
async fn the_scenario_table_with_redis() {
    let redis = Redis::start().await;
    scenario(Some(&redis)).await;
}

/// Sends 200 inferences at once, alternating between `a` and `b`: how many got each status.
async fn statuses_of_200_concurrent(
    a: &RunningGateway,
    b: &RunningGateway,
) -> std::collections::BTreeMap<u16, u32> {
    let urls = Arc::new([a.url(), b.url()]);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let urls = urls.clone();
            tokio::spawn(async move {
                let body = Bytes::from(inference("mock", "x").to_string());
                send(
                    Method::POST,
                    &format!("{}/inference", urls[i % 2]),
                    body,
                    &[],
                )
                .await
                .status
                .as_u16()
            })
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::new();
    for t in tasks {
        *statuses.entry(t.await.unwrap()).or_default() += 1;
    }
    statuses
}

#[tokio::test]
async fn two_replicas_sharing_redis_hold_one_global_limit_exactly() {
    let redis = Redis::start().await;
    let mock = MockProvider::start().await.unwrap();
    let rules = "[[rate_limiting.rules]]\nmodel_inferences_per_hour = 50\nalways = true\n";
    let (a, _d1) = gateway(rules, &mock, Some(&redis)).await;
    let (b, _d2) = gateway(rules, &mock, Some(&redis)).await;
    assert_eq!(
        statuses_of_200_concurrent(&a, &b).await,
        [(200, 50), (429, 150)].into_iter().collect(),
        "exactly the limit got through, across both replicas"
    );
    assert_eq!(mock.requests().len(), 50);
}

/// Reads redis-server's count of script calls (`INFO commandstats`).
async fn script_calls(redis: &Redis) -> u64 {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut c)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

/// Of 120 concurrent reservations on a bucket of 30, exactly 30 are taken; settlements in
/// flight at the same time take exactly what they say. `backend` starts empty.
async fn concurrent_decisions_stay_exact(
    backend: Arc<dyn switchyard_layers::rate_limit::LimiterBackend>,
) {
    use switchyard_layers::rate_limit::{Bucket, Charge, Limit, Resource, Verdict, Window};

    let bucket = |key: &str, capacity| Bucket {
        key: key.into(),
        rule: "rate_limiting.rules[0]".into(),
        scope: "(no scope: every request)".into(),
        limit: Limit {
            resource: Resource::ModelInferences,
            window: Window::Day,
            capacity,
            refill_rate: 0,
        },
    };
    // 120 reservations of one from `a` (30) together with one from `b` (1,000); and 20
    // settlements taking 2 more from `b` each (usage beyond the estimate), all at once.
    let reservations: Vec<_> = (0..120)
        .map(|_| {
            let backend = backend.clone();
            let charges = vec![
                Charge {
                    bucket: bucket("a", 30),
                    amount: 1,
                },
                Charge {
                    bucket: bucket("b", 1000),
                    amount: 1,
                },
            ];
            tokio::spawn(async move { backend.reserve(&charges).await.unwrap() })
        })
        .collect();
    let settlements: Vec<_> = (0..20)
        .map(|_| {
            let backend = backend.clone();
            let charges = vec![Charge {
                bucket: bucket("b", 1000),
                amount: 2,
            }];
            tokio::spawn(async move { backend.settle(&charges).await.unwrap() })
        })
        .collect();
    let mut allowed = 0;
    for r in reservations {
        match r.await.unwrap() {
            Verdict::Allowed { balances } => {
                allowed += 1;
                assert!(balances[0] >= 0.0, "{balances:?}");
            }
            Verdict::Denied { balances } => assert!(balances[0] < 1.0, "{balances:?}"),
        }
    }
    for s in settlements {
        s.await.unwrap();
    }
    assert_eq!(allowed, 30, "exactly the bucket's capacity was taken");
    // `b` gave 1 to each of the 30 taken reservations (none to the refused ones: all or
    // nothing) and 2 to each settlement: 930 are left, whatever the order.
    let b = |amount| {
        [Charge {
            bucket: bucket("b", 1000),
            amount,
        }]
    };
    match backend.reserve(&b(931)).await.unwrap() {
        Verdict::Denied { balances } => assert_eq!(balances, [930.0]),
        other => panic!("{other:?}"),
    }
    match backend.reserve(&b(930)).await.unwrap() {
        Verdict::Allowed { balances } => assert_eq!(balances, [0.0]),
        other => panic!("{other:?}"),
    }
}

/// Concurrent decisions of one process share script calls (the batcher), and a batch decides
/// exactly what the same decisions one by one would.
#[tokio::test]
async fn concurrent_redis_decisions_share_script_calls_and_stay_exact() {
    let redis = Redis::start().await;
    let backend = switchyard::rate_limit_store::RedisBackend::connect(&redis.url())
        .await
        .unwrap();
    let calls_before = script_calls(&redis).await;
    concurrent_decisions_stay_exact(Arc::new(backend)).await;
    let calls = script_calls(&redis).await - calls_before;
    assert!(
        calls < 140,
        "140 concurrent decisions took {calls} script calls: they were not batched"
    );
}

/// The same in Postgres: one statement per batch, the same exact outcome.
#[tokio::test]
async fn concurrent_postgres_decisions_stay_exact() {
    let pg = crate::pg::Postgres::start();
    migrate(&pg);
    let store = switchyard::api_keys::PostgresKeyStore::connect(&pg.url()).unwrap();
    let backend = switchyard::rate_limit_store::PostgresBackend::connect(store.pool().clone())
        .await
        .unwrap();
    concurrent_decisions_stay_exact(Arc::new(backend)).await;
}

/// Settlements wait briefly in the batcher to share a script call; a clean shutdown sends them
/// before the process exits, so the last requests' real usage is not lost with it.
#[tokio::test]
async fn a_clean_shutdown_sends_the_settlements_that_wait() {
    let redis = Redis::start().await;
    let mock = MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A call reserves about 1 + 500 tokens and really uses about 13.
    let config = write_config(
        &dir,
        &mock,
        "[[rate_limiting.rules]]\ntokens_per_day = 10000\nalways = true\n",
    );
    let url = redis.url();
    let env = [("TENSORZERO_VALKEY_URL", url.as_str())];
    let mut gw = GatewayProcess::start(&config, &[], &env, dir.path().join("gw.log")).await;
    let mut body = inference("mock", "hi");
    body["params"] = json!({ "chat_completion": { "max_tokens": 500 } });
    let r = gw.infer(&body).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    gw.signal("TERM");
    assert!(gw.wait_exit(Duration::from_secs(10)).await, "{}", gw.logs());
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("switchyard_ratelimit:*")
        .query_async(&mut c)
        .await
        .unwrap();
    let balance: String = redis::cmd("HGET")
        .arg(&keys[0])
        .arg("b")
        .query_async(&mut c)
        .await
        .unwrap();
    let balance: f64 = balance.parse().unwrap();
    assert!(
        (9_950.0..10_000.0).contains(&balance),
        "the reservation of ~501 was settled to the real usage before exit: {balance}"
    );
}

#[tokio::test]
async fn redis_down_fails_closed_with_503_and_recovers() {
    let mut redis = Redis::start().await;
    let mock = MockProvider::start().await.unwrap();
    let rules = "[[rate_limiting.rules]]\nmodel_inferences_per_hour = 100\nalways = true\n";
    let (gw, _d) = gateway(rules, &mock, Some(&redis)).await;
    assert_eq!(ask(&gw, &[], None).await.status, 200);
    redis.stop();
    let r = ask(&gw, &[], None).await;
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        // The client learns that the store is down, not where it is nor what it said.
        r.error().contains("rate-limit store is unavailable")
            && !r.error().contains(&redis.url())
            && !r.error().contains("127.0.0.1"),
        "{}",
        r.error()
    );
    assert!(r.headers.contains_key("retry-after"));
    // The background check sees the outage within a few seconds.
    let health = get_until(
        &format!("{}/health", gw.url()),
        503,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(health.json()["valkey"], "error");
    let ready = send(
        Method::GET,
        &format!("{}/ready", gw.url()),
        Bytes::new(),
        &[],
    )
    .await;
    assert_eq!(ready.status, 503);
    assert!(
        ready.json()["reasons"][0]
            .as_str()
            .unwrap()
            .contains("Valkey/Redis"),
        "{}",
        ready.json()
    );
    assert_eq!(
        mock.requests().len(),
        1,
        "nothing reaches a provider while limits cannot be checked"
    );

    redis.restart().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut status = 0;
    while tokio::time::Instant::now() < deadline {
        status = ask(&gw, &[], None).await.status.as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status, 200,
        "the gateway recovers by itself once Redis is back"
    );
}

#[tokio::test]
async fn edge_and_relay_each_enforce_their_own_rules() {
    let mock = MockProvider::start().await.unwrap();
    // The relay holds the organisation's limit per user tag; the edge holds a team limit.
    let relay_rules = "[[rate_limiting.rules]]\nmodel_inferences_per_hour = 2\npriority = 0\nscope = [{ tag_key = \"user\", tag_value = \"tensorzero::each\" }]\n";
    let (relay, _d1) = gateway(relay_rules, &mock, None).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::write(
        &path,
        format!(
            "[gateway.relay]\ngateway_url = \"{}\"\n[models.mock]\nrouting = [\"p\"]\n[models.mock.providers.p]\ntype = \"openai\"\nmodel_name = \"x\"\n\n[[rate_limiting.rules]]\nmodel_inferences_per_hour = 3\nalways = true\n[rate_limiting]\nbackend = \"memory\"\n",
            relay.url()
        ),
    )
    .unwrap();
    let loaded = LoadedConfig::from_files(path.to_str().unwrap()).unwrap();
    let edge = switchyard::start(&loaded, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    assert_eq!(ask(&edge, &[("user", "ann")], None).await.status, 200);
    assert_eq!(ask(&edge, &[("user", "ann")], None).await.status, 200);
    // The relay's per-user limit, reached through the edge with the user's forwarded tag.
    let r = ask(&edge, &[("user", "ann")], None).await;
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.error()
            .contains("Error forwarding request in relay mode: HTTP Error (status code 429)"),
        "{}",
        r.error()
    );
    assert!(
        r.headers.contains_key("retry-after"),
        "the relay's Retry-After reaches the client"
    );
    // The edge's own limit: 3 an hour. Ann's third call was refused by the relay without any
    // provider charging for it, so the edge gave that reservation back: Bob gets the third.
    settled(&edge, 1).await;
    assert_eq!(ask(&edge, &[("user", "bob")], None).await.status, 200);
    let r = ask(&edge, &[("user", "carl")], None).await;
    assert_eq!(r.status, 429);
    assert!(
        r.error().starts_with("TensorZero rate limit exceeded"),
        "{}",
        r.error()
    );
}

/// Reads `events` frames of a streamed inference of `model`, then hangs up.
async fn read_then_hang_up(gw: &RunningGateway, model: &str, events: usize) {
    let mut body = inference(model, "hi");
    body["stream"] = json!(true);
    let client = switchyard::http_client::build();
    let req = http::Request::post(format!("{}/inference", gw.url()))
        .body(http_body_util::Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut res_body = res.into_body();
    crate::harness::read_frames(&mut res_body, events).await;
}

#[tokio::test]
async fn a_dropped_stream_is_charged_the_tokens_it_produced() {
    dropped_stream(None).await;
}

#[tokio::test]
async fn a_dropped_stream_is_charged_the_tokens_it_produced_in_redis_too() {
    let redis = Redis::start().await;
    dropped_stream(Some(&redis)).await;
}

async fn dropped_stream(valkey: Option<&Redis>) {
    let mock = MockProvider::start().await.unwrap();
    // 400 tokens a day. A call without max_tokens reserves 1 + 10. The drip model streams 200
    // words of 3 to 5 bytes ("w0 " … "w199 "), about 220 tokens by the gateway's 4-bytes
    // estimate.
    let rules = format!(
        r#"
[models.drip]
routing = ["p"]
[models.drip.providers.p]
type = "openai"
api_base = "{}"
model_name = "drip-5"
api_key_location = "none"

[rate_limiting]
default_max_tokens = 10
[[rate_limiting.rules]]
tokens_per_day = 400
always = true
"#,
        mock.api_base()
    );
    let (gw, _d) = gateway(&rules, &mock, valkey).await;
    // Read 150 of the 200 words, then go away before the provider reports usage.
    read_then_hang_up(&gw, "drip", 150).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while mock.aborted_streams() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mock.aborted_streams(), 1, "the client hung up mid-stream");
    settled(&gw, 1).await;
    // Charged only the reservation (11), 389 would be left and a call reserving 1 + 300 would
    // fit. Charged what went by (about 150 words of ~4.4 bytes: over 150 tokens), it cannot.
    let r = ask(&gw, &[], Some(300)).await;
    assert_eq!(
        r.status,
        429,
        "a dropped stream was charged less than it produced: {}",
        String::from_utf8_lossy(&r.body)
    );
    let remaining: u64 = r.headers["x-ratelimit-remaining-tokens"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (150..=260).contains(&(400 - remaining)),
        "charged {} for about 165 tokens seen",
        400 - remaining
    );
}

#[tokio::test]
async fn a_flood_of_distinct_tag_values_is_bounded_and_never_resets_a_drained_bucket() {
    let mock = MockProvider::start().await.unwrap();
    let rules = r#"
[gateway.limits]
max_rate_limit_buckets = 200
[[rate_limiting.rules]]
model_inferences_per_day = 2
priority = 1
scope = [{ tag_key = "user", tag_value = "tensorzero::each" }]
"#;
    let (gw, _d) = gateway(rules, &mock, None).await;
    // One user drains their daily allowance.
    for _ in 0..2 {
        assert_eq!(ask(&gw, &[("user", "victim")], None).await.status, 200);
    }
    assert_eq!(ask(&gw, &[("user", "victim")], None).await.status, 429);
    // A flood of new users, each with a tag value of the longest allowed length: every bucket
    // is drained by one call, so none can be forgotten; once the table is full, new users get
    // a 503 naming the setting.
    let mut refused = None;
    for i in 0..400 {
        let user = format!("{i:0>512}");
        let r = ask(&gw, &[("user", &user)], None).await;
        match r.status.as_u16() {
            200 => {}
            503 => {
                refused = Some((i, r));
                break;
            }
            s => panic!("user {i}: {s} {}", r.error()),
        }
    }
    let (i, r) = refused.expect("the bucket table never filled");
    assert!(
        (190..=200).contains(&i),
        "refused at user {i}, with a cap of 200"
    );
    let e = r.error();
    assert!(
        e.contains("gateway.limits.max_rate_limit_buckets"),
        "the error names the setting: {e}"
    );
    assert_eq!(r.headers["retry-after"], "1");
    // The drained bucket was not dropped to make room: the victim is still limited.
    assert_eq!(ask(&gw, &[("user", "victim")], None).await.status, 429);
    // A tag value past the cap on length is a 400 naming it.
    let r = ask(&gw, &[("user", &"x".repeat(513))], None).await;
    assert_eq!(r.status, 400);
    assert!(
        r.error().contains("gateway.limits.max_tag_value_bytes"),
        "{}",
        r.error()
    );
}

/// How many PING commands `redis` has answered.
async fn pings(redis: &Redis) -> u64 {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut c)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_ping:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test]
async fn probes_read_the_background_check_and_never_query_the_store() {
    let redis = Redis::start().await;
    let mock = MockProvider::start().await.unwrap();
    let rules = "[[rate_limiting.rules]]\nmodel_inferences_per_hour = 50\nalways = true\n";
    let (gw, _d) = gateway(rules, &mock, Some(&redis)).await;
    let before = pings(&redis).await;
    let started = tokio::time::Instant::now();
    for _ in 0..200 {
        for path in ["/ready", "/health"] {
            let r = send(
                Method::GET,
                &format!("{}{path}", gw.url()),
                Bytes::new(),
                &[],
            )
            .await;
            assert_eq!(
                r.status,
                200,
                "{path}: {}",
                String::from_utf8_lossy(&r.body)
            );
        }
    }
    let after = pings(&redis).await;
    // The background check pings once every 2 s; 400 probes add nothing to that.
    let checks = started.elapsed().as_secs() / 2 + 2;
    assert!(
        after - before <= checks,
        "{} pings for 400 probes in {:?}: the probes query the store",
        after - before,
        started.elapsed()
    );
}

#[tokio::test]
async fn the_edge_never_retries_the_relays_429() {
    let mock = MockProvider::start().await.unwrap();
    // One a second: the relay's Retry-After (1 s) fits within the edge's `max_delay_s`, so an
    // edge that treated the 429 as retryable would wait and get through.
    let relay_rules = "[[rate_limiting.rules]]\nmodel_inferences_per_second = 1\nalways = true\n";
    let (relay, _d1) = gateway(relay_rules, &mock, None).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::write(
        &path,
        format!(
            "[gateway.relay]\ngateway_url = \"{}\"\n[models.mock]\nrouting = [\"p\"]\n[models.mock.providers.p]\ntype = \"openai\"\nmodel_name = \"x\"\n\n\
             [functions.f]\ntype = \"chat\"\n[functions.f.variants.v]\ntype = \"chat_completion\"\nmodel = \"mock\"\n\
             retries = {{ num_retries = 3, max_delay_s = 5 }}\n",
            relay.url()
        ),
    )
    .unwrap();
    let loaded = LoadedConfig::from_files(path.to_str().unwrap()).unwrap();
    let edge = switchyard::start(&loaded, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let call = json!({ "function_name": "f", "input": { "messages": [{ "role": "user", "content": "hi" }] } });
    let url = format!("{}/inference", edge.url());
    let post = || send(Method::POST, &url, Bytes::from(call.to_string()), &[]);
    assert_eq!(post().await.status, 200);
    let r = post().await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.error().contains("(status code 429)"), "{}", r.error());
    // A limit's refusal is final: the relay was asked once, not four times.
    assert_eq!(
        metric(&relay.url(), "switchyard_rate_limit_denied_total").await,
        1.0
    );
    assert_eq!(
        metric(&edge.url(), "switchyard_model_retries_total").await,
        0.0
    );
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn two_binaries_given_tensorzero_valkey_url_share_one_limit() {
    // The real binary reads TENSORZERO_VALKEY_URL itself (a wiring bug there would quietly
    // keep buckets per process, and two replicas would let twice the limit through).
    let redis = Redis::start().await;
    let mock = MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        &dir,
        &mock,
        "[[rate_limiting.rules]]\nmodel_inferences_per_hour = 10\nalways = true\n",
    );
    let url = redis.url();
    let env = [("TENSORZERO_VALKEY_URL", url.as_str())];
    let a = GatewayProcess::start(&config, &[], &env, dir.path().join("a.log")).await;
    let b = GatewayProcess::start(&config, &[], &env, dir.path().join("b.log")).await;
    let mut ok = 0;
    for i in 0..30 {
        let gw = if i % 2 == 0 { &a } else { &b };
        let r = gw.infer(&inference("mock", "x")).await;
        match r.status.as_u16() {
            200 => ok += 1,
            429 => {}
            s => panic!("{s}: {}", r.text()),
        }
    }
    assert_eq!(ok, 10, "one limit of 10 across both replicas");
    assert_eq!(mock.requests().len(), 10);
    let logs = a.stop();
    assert!(logs.contains(&format!("buckets in {url}")), "{logs}");
}

/// The gateway's schema in `pg`, as `switchyard --run-postgres-migrations` writes it.
fn migrate(pg: &crate::pg::Postgres) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("--run-postgres-migrations")
        .env("TENSORZERO_POSTGRES_URL", pg.url())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn gateway_on_postgres(
    rules: &str,
    mock: &MockProvider,
    pg: &crate::pg::Postgres,
) -> (RunningGateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, mock, rules);
    let loaded = LoadedConfig::from_files(path.to_str().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    let env = Environment {
        postgres_url: Some(switchyard::Secret::new(pg.url())),
        ..Environment::default()
    };
    let gw = switchyard::start_with(&loaded, SocketAddr::from(([127, 0, 0, 1], 0)), &env)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (gw, dir)
}

/// With only TENSORZERO_POSTGRES_URL set, buckets live in Postgres (as in TensorZero): two
/// replicas hold one limit exactly under concurrency, token usage is settled, and a dead
/// Postgres fails closed with a 503, recovering when it is back.
#[tokio::test]
async fn two_replicas_sharing_postgres_hold_one_limit_exactly_and_fail_closed() {
    let pg = crate::pg::Postgres::start();
    migrate(&pg);
    let mock = MockProvider::start().await.unwrap();
    let rules = "[[rate_limiting.rules]]\nmodel_inferences_per_hour = 50\nalways = true\n";
    let (a, _d1) = gateway_on_postgres(rules, &mock, &pg).await;
    let (b, _d2) = gateway_on_postgres(rules, &mock, &pg).await;
    assert_eq!(
        statuses_of_200_concurrent(&a, &b).await,
        [(200, 50), (429, 150)].into_iter().collect(),
        "exactly the limit got through, across both replicas"
    );
    assert_eq!(mock.requests().len(), 50);

    // Postgres goes away: refused with 503 (fail closed), without the database's address.
    pg.stop();
    let r = ask(&a, &[], None).await;
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.error().contains("rate-limit store is unavailable") && !r.error().contains("127.0.0.1"),
        "{}",
        r.error()
    );
    pg.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        // The bucket is still drained, so the answer once Postgres is back is a 429.
        let r = ask(&a, &[], None).await;
        if r.status == 429 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no recovery: {}",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn token_limits_settle_with_real_usage_in_postgres_too() {
    let pg = crate::pg::Postgres::start();
    migrate(&pg);
    let mock = MockProvider::start().await.unwrap();
    let rules = "[rate_limiting]\ndefault_max_tokens = 50\n[[rate_limiting.rules]]\ntokens_per_day = 100\nalways = true\n";
    let (gw, _d) = gateway_on_postgres(rules, &mock, &pg).await;
    // As in `token_settlement`: 51 reserved a call, about 13 really used; four fit, not five.
    for i in 0..4 {
        let r = ask(&gw, &[], None).await;
        assert_eq!(r.status, 200, "call {i}: {}", r.error());
        settled(&gw, i + 1).await;
    }
    let r = ask(&gw, &[], None).await;
    assert_eq!(r.status, 429, "{}", r.error());
    assert!(r.error().contains("Requested: 51"), "{}", r.error());
}

/// Rules without a shared store stop start-up as in TensorZero, saying how to keep buckets in
/// the process if that is what is wanted.
#[tokio::test]
async fn rules_without_a_store_stop_start_up_with_the_way_out() {
    let mock = MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tensorzero.toml");
    std::fs::write(
        &path,
        format!(
            "{}\n[[rate_limiting.rules]]\nmodel_inferences_per_hour = 5\nalways = true\n",
            MODEL.replace("{mock}", &mock.api_base())
        ),
    )
    .unwrap();
    let loaded = LoadedConfig::from_files(path.to_str().unwrap()).unwrap();
    let e = match switchyard::start(&loaded, SocketAddr::from(([127, 0, 0, 1], 0))).await {
        Ok(_) => panic!("started without a store for its rules"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("TENSORZERO_VALKEY_URL")
            && e.contains("TENSORZERO_POSTGRES_URL")
            && e.contains("backend = \"memory\""),
        "{e}"
    );
}
