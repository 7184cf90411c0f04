//! The AWS adapters against the mock's wire formats: Bedrock's Converse API and SageMaker
//! endpoints (both SigV4-signed, both streaming in AWS's binary event-stream framing).
//!
//! AWS credentials come from the process environment, so these tests run the real binary as a
//! child process with its own environment rather than an in-process gateway (setting variables
//! in this process would race with the other tests).

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};
use switchyard_mock::MockProvider;

use crate::harness::{GatewayProcess, Reply, inference, last_request, send};

const ACCESS_KEY_ID: &str = "AKIDMOCKBEDROCK";
const SECRET: &str = "bedrock-secret-never-logged";
const SESSION_TOKEN: &str = "bedrock-session-token-never-logged";

/// The binary, logging at debug level to a file (read by the tests that check what the log
/// never holds).
struct Gateway {
    process: GatewayProcess,
    url: String,
    _dir: tempfile::TempDir,
}

impl Gateway {
    async fn post(&self, body: &Value) -> Reply {
        send(
            Method::POST,
            &format!("{}/inference", self.url),
            Bytes::from(body.to_string()),
            &[("content-type", "application/json")],
        )
        .await
    }

    /// Stops the gateway and returns everything it logged.
    fn logs(self) -> String {
        self.process.stop()
    }

    /// Whether the process still runs.
    fn is_running(&mut self) -> bool {
        self.process.child.try_wait().unwrap().is_none()
    }
}

/// Starts the binary with one Bedrock model per `(name, model_id)`, all pointed at the mock.
async fn start(mock: &MockProvider, models: &[(&str, &str)], credentials: bool) -> Gateway {
    start_with(mock, models, credentials, "").await
}

/// [`start`], with `extra` appended to the configuration (`{mock}` standing for the mock's URL).
async fn start_with(
    mock: &MockProvider,
    models: &[(&str, &str)],
    credentials: bool,
    extra: &str,
) -> Gateway {
    let mut config = String::new();
    for (name, id) in models {
        config.push_str(&format!(
            "[models.{name}]\nrouting = [\"b\"]\n[models.{name}.providers.b]\ntype = \"aws_bedrock\"\n\
             model_id = \"{id}\"\nregion = \"eu-west-3\"\nendpoint_url = \"{}\"\n\n",
            mock.api_base().trim_end_matches('/').trim_end_matches("/v1")
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("provider.key");
    std::fs::write(&key, crate::harness::PROVIDER_KEY).unwrap();
    config.push_str(
        &extra
            .replace("{mock}", &mock.api_base())
            .replace("{key}", &format!("path::{}", key.display())),
    );
    let path = dir.path().join("tensorzero.toml");
    std::fs::write(&path, config).unwrap();
    let mut env = vec![("RUST_LOG", "debug")];
    if credentials {
        env.extend([
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_SESSION_TOKEN", SESSION_TOKEN),
        ]);
    }
    let process = GatewayProcess::start(&path, &[], &env, dir.path().join("gateway.log")).await;
    Gateway {
        url: process.url.clone(),
        process,
        _dir: dir,
    }
}

#[tokio::test]
async fn converse_requests_are_signed_and_answers_read() {
    let mock = MockProvider::start().await.unwrap();
    let gw = start(
        &mock,
        &[
            ("claude", "anthropic.claude-3-haiku-20240307-v1:0"),
            ("tools", "think-tool"),
            ("json_tool", "tool"),
        ],
        true,
    )
    .await;
    let body = json!({
        "model_name": "claude",
        "input": {
            "system": "be brief",
            "messages": [
                { "role": "user", "content": "weather?" },
                { "role": "assistant", "content": [{ "type": "tool_call", "id": "c1", "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}" }] },
                { "role": "user", "content": [{ "type": "tool_result", "id": "c1", "name": "get_weather", "result": "cold" }, { "type": "text", "text": "thanks" }] }
            ]
        },
        "params": { "chat_completion": { "temperature": 0.3, "max_tokens": 64, "stop_sequences": ["END"] } },
        "additional_tools": [{ "name": "get_weather", "description": "w", "parameters": { "type": "object" } }],
        "tool_choice": "required"
    });
    let r = gw.post(&body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["content"][0]["text"], "mock reply to: thanks");
    assert_eq!(v["finish_reason"], "stop");
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);

    let sent = last_request(&mock);
    // The model id is one path segment: its `:` is percent-encoded.
    assert_eq!(
        sent.path,
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    );
    let authorization = sent.header("authorization").unwrap();
    let date = sent.header("x-amz-date").unwrap();
    assert!(
        authorization.starts_with(&format!(
            "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/{}/eu-west-3/bedrock/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=",
            &date[..8]
        )),
        "{authorization}"
    );
    assert_eq!(sent.header("x-amz-security-token"), Some(SESSION_TOKEN));
    assert!(
        !sent.headers.iter().any(|(_, v)| v.contains(SECRET)),
        "the secret key itself is never sent"
    );
    let b = &sent.body;
    assert_eq!(b["system"], json!([{ "text": "be brief" }]));
    assert_eq!(
        b["messages"][1],
        json!({ "role": "assistant", "content": [{ "toolUse": { "toolUseId": "c1", "name": "get_weather", "input": { "city": "Oslo" } } }] })
    );
    assert_eq!(
        b["messages"][2]["content"],
        json!([{ "toolResult": { "toolUseId": "c1", "content": [{ "text": "cold" }] } }, { "text": "thanks" }])
    );
    assert_eq!(
        b["inferenceConfig"],
        json!({ "maxTokens": 64, "temperature": 0.3, "stopSequences": ["END"] })
    );
    assert_eq!(b["toolConfig"]["toolChoice"], json!({ "any": {} }));
    assert_eq!(
        b["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "get_weather"
    );

    // JSON mode: Converse has no JSON switch, so the instruction goes in the system prompt.
    let mut body = inference("claude", "x");
    body["params"] = json!({ "chat_completion": { "json_mode": "strict" } });
    body["output_schema"] =
        json!({ "type": "object", "properties": { "answer": { "type": "integer" } } });
    let r = gw.post(&body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let system = last_request(&mock).body["system"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        system.contains("JSON Schema") && system.contains("answer"),
        "{system}"
    );

    // `implicit_tool`: Bedrock is made to call `respond`, and its arguments are the answer.
    let mut body = inference("json_tool", "x");
    body["params"] = json!({ "chat_completion": { "json_mode": "implicit_tool" } });
    let v = gw.post(&body).await.json();
    assert_eq!(v["content"][0]["text"], "{\"city\":\"Paris\"}", "{v}");
    assert_eq!(
        last_request(&mock).body["toolConfig"]["toolChoice"],
        json!({ "tool": { "name": "respond" } })
    );

    // Tool calls and reasoning, whole and streamed.
    let v = gw.post(&inference("tools", "weather?")).await.json();
    assert_eq!(
        v["content"][0],
        json!({ "type": "thought", "text": "let me think", "signature": "sig-mock" })
    );
    assert_eq!(v["content"][1]["name"], "get_weather");
    assert_eq!(v["content"][1]["arguments"], json!({ "city": "Paris" }));
    assert_eq!(v["finish_reason"], "tool_call");

    let mut body = inference("tools", "weather?");
    body["stream"] = json!(true);
    let events = gw.post(&body).await.json_events();
    let arguments: String = events
        .iter()
        .flat_map(|e| e["content"].as_array().cloned().unwrap_or_default())
        .filter(|b| b["type"] == "tool_call")
        .filter_map(|b| b["raw_arguments"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(arguments, "{\"city\":\"Paris\"}");
    assert_eq!(events.last().unwrap()["finish_reason"], "tool_call");

    let logs = gw.logs();
    assert!(!logs.contains(SECRET), "the secret key reached the log");
    assert!(
        !logs.contains(SESSION_TOKEN),
        "the session token reached the log"
    );
}

#[tokio::test]
async fn event_streams_are_decoded_and_failures_reported() {
    let mock = MockProvider::start().await.unwrap();
    let gw = start(
        &mock,
        &[
            ("plain", "mock-model"),
            ("down", "error-503"),
            ("throttled", "rate-limited"),
            ("fails", "stream-error"),
            ("broken", "break"),
        ],
        true,
    )
    .await;
    let mut body = inference("plain", "stream it");
    body["stream"] = json!(true);
    let r = gw.post(&body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let events = r.json_events();
    let text: String = events
        .iter()
        .flat_map(|e| e["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "mock reply to: stream it");
    let last = events.last().unwrap();
    assert_eq!(last["finish_reason"], "stop");
    assert_eq!(last["usage"]["output_tokens"], 5);
    let sent = last_request(&mock);
    assert_eq!(sent.path, "/model/mock-model/converse-stream");
    assert_eq!(
        sent.header("accept"),
        Some("application/vnd.amazon.eventstream")
    );

    let e = gw.post(&inference("down", "x")).await;
    assert_eq!(e.status, 502);
    assert!(
        e.error()
            .contains("aws_bedrock provider `b` (HTTP 503): mock provider error 503"),
        "{}",
        e.error()
    );
    let e = gw.post(&inference("throttled", "x")).await;
    assert!(e.error().contains("Too many requests"), "{}", e.error());

    for (model, expected) in [
        ("fails", "modelStreamErrorException"),
        ("broken", "the stream broke off"),
    ] {
        let mut body = inference(model, "x");
        body["stream"] = json!(true);
        let r = gw.post(&body).await;
        let text = String::from_utf8_lossy(&r.body).into_owned();
        assert!(text.contains(expected), "{model}: {text}");
    }
}

#[tokio::test]
async fn missing_aws_credentials_are_named() {
    let mock = MockProvider::start().await.unwrap();
    let gw = start(&mock, &[("claude", "anthropic.claude")], false).await;
    let r = gw.post(&inference("claude", "x")).await;
    // The same status as any other missing provider key.
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.error().contains("AWS_ACCESS_KEY_ID"),
        "the error says what to set: {}",
        r.error()
    );
    assert!(mock.requests().is_empty(), "nothing unsigned is sent");
    let logs = gw.logs();
    assert!(
        logs.contains("has no AWS credentials"),
        "start-up warns: {logs}"
    );
}

#[tokio::test]
async fn falls_back_across_three_provider_types_on_the_openai_route() {
    let mock = MockProvider::start().await.unwrap();
    let bedrock_base = mock.api_base();
    let bedrock_base = bedrock_base.trim_end_matches('/').trim_end_matches("/v1");
    let chain = format!(
        "[models.chain]\nrouting = [\"claude\", \"gemini\", \"bedrock\"]\n\
         [models.chain.providers.claude]\ntype = \"anthropic\"\napi_base = \"{{mock}}\"\nmodel_name = \"error-503\"\napi_key_location = \"{{key}}\"\n\
         [models.chain.providers.gemini]\ntype = \"google_ai_studio_gemini\"\napi_base = \"{{mock}}\"\nmodel_name = \"error-500\"\napi_key_location = \"{{key}}\"\n\
         [models.chain.providers.bedrock]\ntype = \"aws_bedrock\"\nmodel_id = \"tool\"\nregion = \"us-east-1\"\nendpoint_url = \"{bedrock_base}\"\n"
    );
    let gw = start_with(&mock, &[], true, &chain).await;
    let url = format!("{}/openai/v1/chat/completions", gw.url);
    let request = |stream: bool| {
        json!({
            "model": "tensorzero::model_name::chain",
            "messages": [{ "role": "user", "content": "weather in Paris?" }],
            "tools": [{ "type": "function", "function": { "name": "get_weather", "parameters": { "type": "object" } } }],
            "stream": stream
        })
    };
    let r = send(
        Method::POST,
        &url,
        Bytes::from(request(false).to_string()),
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let paths: Vec<String> = mock.requests().iter().map(|r| r.path.clone()).collect();
    assert!(paths[0].ends_with("/messages"), "{paths:?}");
    assert!(
        paths[1].ends_with("/models/error-500:generateContent"),
        "{paths:?}"
    );
    assert_eq!(paths[2], "/model/tool/converse", "{paths:?}");

    let r = send(
        Method::POST,
        &url,
        Bytes::from(request(true).to_string()),
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let events = r.json_events();
    let arguments: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(arguments, "{\"city\":\"Paris\"}");
    assert_eq!(
        mock.requests().last().unwrap().path,
        "/model/tool/converse-stream"
    );
}

/// A SageMaker provider section for the endpoint `endpoint`, its container running `model`.
fn sagemaker(name: &str, endpoint: &str, hosted: &str, model: &str, mock: &MockProvider) -> String {
    let base = mock.api_base();
    format!(
        "[models.{name}]\nrouting = [\"s\"]\n[models.{name}.providers.s]\ntype = \"aws_sagemaker\"\n\
         endpoint_name = \"{endpoint}\"\nhosted_provider = \"{hosted}\"\nmodel_name = \"{model}\"\n\
         region = \"ap-south-1\"\nendpoint_url = \"{}\"\n\n",
        base.trim_end_matches('/').trim_end_matches("/v1")
    )
}

#[tokio::test]
async fn sagemaker_endpoints_are_invoked_signed_and_streamed() {
    let mock = MockProvider::start().await.unwrap();
    let config = [
        sagemaker("sm", "my-endpoint", "openai", "mock-model", &mock),
        sagemaker("sm_tools", "tools-endpoint", "openai", "tool", &mock),
        sagemaker("sm_tgi", "tgi-endpoint", "tgi", "ignored", &mock),
        sagemaker("sm_down", "down", "openai", "error-503", &mock),
        sagemaker("sm_broken", "broken", "openai", "break", &mock),
        sagemaker(
            "sm_exception",
            "exception",
            "openai",
            "stream-exception",
            &mock,
        ),
    ]
    .concat();
    let gw = start_with(&mock, &[], true, &config).await;

    let r = gw.post(&inference("sm", "hello")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["content"][0]["text"], "mock reply to: hello");
    let sent = last_request(&mock);
    assert_eq!(sent.path, "/endpoints/my-endpoint/invocations");
    assert_eq!(sent.body["model"], "mock-model");
    let authorization = sent.header("authorization").unwrap();
    assert!(
        authorization.contains("/ap-south-1/sagemaker/aws4_request"),
        "{authorization}"
    );

    // TGI containers take the OpenAI chat format with the model named `tgi`.
    let r = gw.post(&inference("sm_tgi", "hi")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(last_request(&mock).body["model"], "tgi");

    // Streams arrive as PayloadPart messages carrying the container's SSE.
    let mut body = inference("sm_tools", "weather?");
    body["stream"] = json!(true);
    let r = gw.post(&body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let events = r.json_events();
    let arguments: String = events
        .iter()
        .flat_map(|e| e["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["raw_arguments"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(arguments, "{\"city\":\"Paris\"}");
    assert_eq!(events.last().unwrap()["finish_reason"], "tool_call");
    let sent = last_request(&mock);
    assert_eq!(
        sent.path,
        "/endpoints/tools-endpoint/invocations-response-stream"
    );
    assert_eq!(sent.body["stream"], true);

    // Through the OpenAI-compatible route too.
    let r = send(
        Method::POST,
        &format!("{}/openai/v1/chat/completions", gw.url),
        Bytes::from(
            json!({ "model": "tensorzero::model_name::sm", "messages": [{ "role": "user", "content": "hey" }] })
                .to_string(),
        ),
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "mock reply to: hey"
    );

    // A container error is SageMaker's 424 ModelError, and names the container's status.
    let e = gw.post(&inference("sm_down", "x")).await;
    assert_eq!(e.status, 502);
    assert!(
        e.error().contains("aws_sagemaker provider `s` (HTTP 424)")
            && e.error().contains("Received server error (503)"),
        "{}",
        e.error()
    );

    for (model, expected) in [
        ("sm_broken", "the stream broke off"),
        ("sm_exception", "`ModelStreamError` mid-stream"),
    ] {
        let mut body = inference(model, "x");
        body["stream"] = json!(true);
        let r = gw.post(&body).await;
        let text = String::from_utf8_lossy(&r.body).into_owned();
        assert!(text.contains(expected), "{model}: {text}");
    }

    let logs = gw.logs();
    assert!(!logs.contains(SECRET) && !logs.contains(SESSION_TOKEN));
}

#[tokio::test]
async fn hostile_event_streams_become_errors_and_the_gateway_lives_on() {
    let mock = MockProvider::start().await.unwrap();
    let models = [
        ("index", "hostile-index"),
        ("truncated", "hostile-truncated"),
        ("huge", "hostile-huge-frame"),
        ("fine", "fine"),
    ];
    let mut gw = start(&mock, &models, true).await;
    for (name, _) in &models[..3] {
        let mut body = inference(name, "hi");
        body["stream"] = json!(true);
        let r = gw.post(&body).await;
        let what = format!("{name}: {} {}", r.status, r.text());
        assert!(!r.body.is_empty(), "empty reply: {what}");
        if r.status.is_success() {
            let last = r.json_events().pop().unwrap_or_default();
            let message = last["error"].as_str().unwrap_or_default().to_owned();
            assert!(
                !message.is_empty(),
                "the stream must end with an error event: {what}"
            );
            match *name {
                "index" => assert!(message.contains("index"), "{what}"),
                "truncated" => assert!(
                    message.contains("cut")
                        || message.contains("ended")
                        || message.contains("truncated"),
                    "{what}"
                ),
                _ => assert!(message.contains("16777216"), "the limit is named: {what}"),
            }
        } else {
            assert_eq!(r.status, 502, "{what}");
        }
        assert!(gw.is_running(), "the gateway died on {name}");
    }
    let r = gw.post(&inference("fine", "hi")).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// `region` as TensorZero 2026 reads it: a literal, `sdk` (AWS_REGION), or a location such as
/// `env::VAR`; each signs with the region it names.
#[tokio::test]
async fn regions_come_from_sdk_and_locations() {
    let mock = MockProvider::start().await.unwrap();
    let base = mock.api_base();
    let endpoint = base.trim_end_matches('/').trim_end_matches("/v1");
    let dir = tempfile::tempdir().unwrap();
    let mut config = String::new();
    for (name, region) in [("by_sdk", "sdk"), ("by_env", "env::TEAM_REGION")] {
        config.push_str(&format!(
            "[models.{name}]\nrouting = [\"b\"]\n[models.{name}.providers.b]\ntype = \"aws_bedrock\"\n\
             model_id = \"m\"\nregion = \"{region}\"\nendpoint_url = \"{endpoint}\"\n\n"
        ));
    }
    let path = dir.path().join("tensorzero.toml");
    std::fs::write(&path, config).unwrap();
    let env = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_REGION", "ap-northeast-2"),
        ("TEAM_REGION", "eu-north-1"),
    ];
    let process = GatewayProcess::start(&path, &[], &env, dir.path().join("gw.log")).await;
    let gw = Gateway {
        url: process.url.clone(),
        process,
        _dir: dir,
    };
    for (model, region) in [("by_sdk", "ap-northeast-2"), ("by_env", "eu-north-1")] {
        let r = gw.post(&inference(model, "hi")).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let authorization = last_request(&mock)
            .header("authorization")
            .unwrap()
            .to_owned();
        assert!(
            authorization.contains(&format!("/{region}/bedrock/aws4_request")),
            "{model}: {authorization}"
        );
    }
}

/// The credentials of TensorZero 2026: a Bedrock `api_key` (sent as a bearer token, from the
/// environment or the request), explicit IAM keys (from the environment or the request, signing
/// in place of the process's own), `AWS_BEARER_TOKEN_BEDROCK` before the SDK chain, and an
/// `endpoint_url` read from the environment. No key reaches the log.
#[tokio::test]
async fn credentials_come_from_keys_tokens_and_requests() {
    let mock = MockProvider::start().await.unwrap();
    let endpoint = mock
        .api_base()
        .trim_end_matches('/')
        .trim_end_matches("/v1")
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let provider = |name: &str, extra: &str| {
        format!(
            "[models.{name}]\nrouting = [\"b\"]\n[models.{name}.providers.b]\ntype = \"aws_bedrock\"\n\
             model_id = \"m\"\nregion = \"eu-west-3\"\nendpoint_url = \"env::BEDROCK_ENDPOINT\"\n{extra}\n"
        )
    };
    let config = [
        provider("key_env", "api_key = \"env::TEAM_BEDROCK_KEY\""),
        provider("key_dynamic", "api_key = \"dynamic::bedrock_key\""),
        provider(
            "iam_env",
            "access_key_id = \"env::TEAM_KEY_ID\"\nsecret_access_key = \"env::TEAM_SECRET\"",
        ),
        provider(
            "iam_dynamic",
            "access_key_id = \"dynamic::key_id\"\nsecret_access_key = \"dynamic::secret\"\nsession_token = \"dynamic::token\"",
        ),
        provider("default_chain", ""),
    ]
    .concat();
    let path = dir.path().join("tensorzero.toml");
    std::fs::write(&path, config).unwrap();
    let env = [
        ("BEDROCK_ENDPOINT", endpoint.as_str()),
        ("TEAM_BEDROCK_KEY", "bedrock-api-key-from-env"),
        ("TEAM_KEY_ID", "AKIDTEAMKEY"),
        ("TEAM_SECRET", "team-secret-never-logged"),
        (
            "AWS_BEARER_TOKEN_BEDROCK",
            "bedrock-token-from-the-sdk-variable",
        ),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
    ];
    let process = GatewayProcess::start(&path, &[], &env, dir.path().join("gw.log")).await;
    let gw = Gateway {
        url: process.url.clone(),
        process,
        _dir: dir,
    };
    let authorization = |model: &str| {
        let r = last_request(&mock);
        assert!(r.path.contains("/model/m/converse"), "{model}: {}", r.path);
        r.header("authorization").unwrap_or_default().to_owned()
    };
    let ask = |model: &str, credentials: Value| {
        let mut body = inference(model, "hi");
        body["credentials"] = credentials;
        body
    };

    let r = gw.post(&ask("key_env", json!({}))).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(authorization("key_env"), "Bearer bedrock-api-key-from-env");

    let r = gw
        .post(&ask(
            "key_dynamic",
            json!({"bedrock_key": "per-request-key"}),
        ))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(authorization("key_dynamic"), "Bearer per-request-key");
    let r = gw.post(&ask("key_dynamic", json!({}))).await;
    assert_eq!(
        r.status, 400,
        "a missing dynamic key is the client's mistake"
    );
    assert!(
        String::from_utf8_lossy(&r.body).contains("bedrock_key"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    let r = gw.post(&ask("iam_env", json!({}))).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        authorization("iam_env").starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEAMKEY/"),
        "{}",
        authorization("iam_env")
    );

    let r = gw
        .post(&ask(
            "iam_dynamic",
            json!({"key_id": "AKIDCUSTOMER", "secret": "customer-secret", "token": "customer-token"}),
        ))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(authorization("iam_dynamic").starts_with("AWS4-HMAC-SHA256 Credential=AKIDCUSTOMER/"));
    assert_eq!(
        last_request(&mock).header("x-amz-security-token"),
        Some("customer-token")
    );

    // Neither a key nor IAM keys: AWS_BEARER_TOKEN_BEDROCK comes before the SDK chain.
    let r = gw.post(&ask("default_chain", json!({}))).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        authorization("default_chain"),
        "Bearer bedrock-token-from-the-sdk-variable"
    );

    let logs = gw.logs();
    for secret in [
        "bedrock-api-key-from-env",
        "per-request-key",
        "team-secret-never-logged",
        "customer-secret",
        "customer-token",
        "bedrock-token-from-the-sdk-variable",
    ] {
        assert!(!logs.contains(secret), "`{secret}` reached the log");
    }
}

/// What TensorZero refuses in AWS credentials and regions, refused with the key named.
#[test]
fn aws_credential_mistakes_are_config_errors() {
    let load = |extra: &str| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tensorzero.toml");
        std::fs::write(
            &path,
            format!("[models.m]\nrouting = [\"b\"]\n[models.m.providers.b]\ntype = \"aws_bedrock\"\nmodel_id = \"x\"\n{extra}\n"),
        )
        .unwrap();
        switchyard::config::LoadedConfig::from_files(path.to_str().unwrap())
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    load("region = \"us-east-1\"\naccess_key_id = \"sdk\"\nsecret_access_key = \"sdk\"").unwrap();
    for (extra, expected) in [
        ("", "`models.m.providers.b.region`: is required"),
        (
            "region = \"us-east-1\"\napi_key = \"env::K\"\naccess_key_id = \"env::A\"\nsecret_access_key = \"env::S\"",
            "cannot be combined",
        ),
        (
            "region = \"us-east-1\"\naccess_key_id = \"env::A\"",
            "go together",
        ),
        (
            "region = \"us-east-1\"\naccess_key_id = \"env::A\"\nsecret_access_key = \"dynamic::s\"",
            "one kind of source",
        ),
        (
            "region = \"us-east-1\"\napi_key = \"path::/k\"",
            "must be `env::VAR` or `dynamic::NAME`",
        ),
        (
            "region = \"us-east-1\"\nsession_token = \"env::T\"",
            "needs `access_key_id` and `secret_access_key`",
        ),
    ] {
        let e = load(extra).unwrap_err();
        assert!(e.contains(expected), "{extra}: {e}");
    }
}
