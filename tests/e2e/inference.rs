//! `POST /inference`, non-streaming and streaming.

use serde_json::json;

use crate::harness::{BASIC, Harness, inference, last_request};

#[tokio::test]
async fn model_name_answers_with_the_native_shape() {
    let h = Harness::start(BASIC).await;
    let r = h
        .post("/inference", &inference("mock", "Write a haiku"))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["variant_name"], "mock");
    assert_eq!(
        v["content"],
        json!([{ "type": "text", "text": "mock reply to: Write a haiku" }])
    );
    assert_eq!(v["finish_reason"], "stop");
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(v["usage"]["output_tokens"], 6);
    assert!(v["usage"].as_object().unwrap().contains_key("cost"));
    let episode = uuid::Uuid::parse_str(v["episode_id"].as_str().unwrap()).unwrap();
    assert_eq!(episode.get_version_num(), 7);
    // What reached the provider: the model's provider-side name and the message.
    let sent = last_request(&h.mock);
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.body["model"], "mock-model");
    assert_eq!(
        sent.body["messages"],
        json!([{ "role": "user", "content": "Write a haiku" }])
    );
    assert!(sent.body.get("stream").is_none());
}

#[tokio::test]
async fn streaming_sends_chunks_then_usage_then_done() {
    let h = Harness::start(BASIC).await;
    let mut body = inference("mock", "tell me");
    body["stream"] = json!(true);
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "text/event-stream");
    let events = r.json_events();
    let text: String = events
        .iter()
        .flat_map(|e| e["content"].as_array().cloned().unwrap_or_default())
        .map(|b| b["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "mock reply to: tell me");
    // Usage and finish reason come once, in the closing chunk only.
    let (last, rest) = events.split_last().unwrap();
    assert_eq!(last["finish_reason"], "stop");
    assert_eq!(last["usage"]["output_tokens"], 5);
    assert!(
        rest.iter()
            .all(|e| e.get("usage").is_none() && e.get("finish_reason").is_none())
    );
    let ids: std::collections::BTreeSet<_> = events
        .iter()
        .map(|e| e["inference_id"].to_string())
        .collect();
    assert_eq!(ids.len(), 1, "every chunk carries the same inference id");
    let sent = last_request(&h.mock);
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["stream_options"]["include_usage"], true);
}

const FUNCTIONS: &str = r#"
[models.mock]
routing = ["mock"]
[models.mock.providers.mock]
type = "openai"
api_base = "{mock}"
model_name = "mock-model"
api_key_location = "none"

[functions.greet]
type = "chat"
[functions.greet.variants.only]
type = "chat_completion"
model = "mock"
temperature = 0.3
max_tokens = 50
stop_sequences = ["END"]

[functions.extract]
type = "json"
[functions.extract.variants.v]
type = "chat_completion"
model = "openai::mock-json"
json_mode = "on"
"#;

#[tokio::test]
async fn function_name_uses_the_variant_and_its_parameters() {
    let h = Harness::start(FUNCTIONS).await;
    let body = json!({
        "function_name": "greet",
        "input": { "system": "be brief", "messages": [{ "role": "user", "content": [{ "type": "text", "text": "hello" }] }] },
        "params": { "chat_completion": { "temperature": 0.9 } },
        "tags": { "team": "search" }
    });
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["variant_name"], "only");
    let sent = last_request(&h.mock);
    // The request's temperature wins over the variant's; the variant fills the rest.
    assert_eq!(sent.body["temperature"], 0.9);
    assert_eq!(sent.body["max_completion_tokens"], 50);
    assert_eq!(sent.body["stop"], json!(["END"]));
    assert_eq!(
        sent.body["messages"][0],
        json!({ "role": "system", "content": "be brief" })
    );
}

#[tokio::test]
async fn pinned_variant_must_exist() {
    let h = Harness::start(FUNCTIONS).await;
    let mut body =
        json!({ "function_name": "greet", "variant_name": "nope", "input": { "messages": [] } });
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 404);
    assert!(r.error().contains("nope"), "{}", r.error());
    body["variant_name"] = json!("only");
    assert_eq!(h.post("/inference", &body).await.status, 200);
}

#[tokio::test]
async fn tool_calls_come_back_parsed_and_raw() {
    let h = Harness::start(BASIC.replace("mock-model", "mock-tool").as_str()).await;
    let mut body = inference("mock", "weather in Paris?");
    body["additional_tools"] = json!([{
        "name": "get_weather", "description": "Weather for a city",
        "parameters": { "type": "object", "properties": { "city": { "type": "string" } } }
    }]);
    body["tool_choice"] = json!("required");
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["finish_reason"], "tool_call");
    let call = &v["content"][0];
    assert_eq!(call["type"], "tool_call");
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["arguments"], json!({ "city": "Paris" }));
    assert_eq!(call["raw_arguments"], "{\"city\":\"Paris\"}");
    let sent = last_request(&h.mock);
    assert_eq!(sent.body["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(sent.body["tool_choice"], "required");

    body["stream"] = json!(true);
    let r = h.post("/inference", &body).await;
    let events = r.json_events();
    let args: String = events
        .iter()
        .flat_map(|e| e["content"].as_array().cloned().unwrap_or_default())
        .filter(|b| b["type"] == "tool_call")
        .map(|b| {
            assert_eq!(b["id"], "call_mock_1");
            b["raw_arguments"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(args, "{\"city\":\"Paris\"}");
    assert_eq!(events.last().unwrap()["finish_reason"], "tool_call");
}

#[tokio::test]
async fn multi_turn_tool_results_reach_the_provider() {
    let h = Harness::start(BASIC).await;
    let body = json!({
        "model_name": "mock",
        "input": { "messages": [
            { "role": "user", "content": "weather?" },
            { "role": "assistant", "content": [{ "type": "tool_call", "id": "c1", "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}" }] },
            { "role": "user", "content": [{ "type": "tool_result", "id": "c1", "name": "get_weather", "result": "cold" }] }
        ]}
    });
    assert_eq!(h.post("/inference", &body).await.status, 200);
    let sent = last_request(&h.mock);
    let messages = sent.body["messages"].as_array().unwrap().clone();
    assert_eq!(messages[1]["tool_calls"][0]["id"], "c1");
    assert_eq!(
        messages[2],
        json!({ "role": "tool", "tool_call_id": "c1", "content": "cold" })
    );
}

#[tokio::test]
async fn json_functions_return_raw_and_parsed() {
    let h = Harness::start(&FUNCTIONS.replace("openai::mock-json", "mockjson")
        .replace("[functions.extract]", "[models.mockjson]\nrouting = [\"m\"]\n[models.mockjson.providers.m]\ntype = \"openai\"\napi_base = \"{mock}\"\nmodel_name = \"json\"\napi_key_location = \"none\"\n\n[functions.extract]")).await;
    let r = h.post("/inference", &json!({ "function_name": "extract", "input": { "messages": [{ "role": "user", "content": "x" }] } })).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["output"]["raw"], "{\"answer\":42}");
    assert_eq!(v["output"]["parsed"], json!({ "answer": 42 }));
    assert!(v.get("content").is_none());
    assert_eq!(
        last_request(&h.mock).body["response_format"],
        json!({ "type": "json_object" })
    );
}

#[tokio::test]
async fn status_health_version_and_request_id() {
    let h = Harness::start(BASIC).await;
    let r = h.get("/status").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["config_hash"].as_str().unwrap().len(), 64);
    assert!(r.headers.contains_key("x-tensorzero-gateway-version"));
    assert_eq!(r.headers["x-switchyard-version"], env!("CARGO_PKG_VERSION"));
    assert!(r.headers.contains_key("x-request-id"));
    assert_eq!(h.get("/health").await.json()["gateway"], "ok");

    let r = crate::harness::send(
        http::Method::GET,
        &h.url("/status"),
        bytes::Bytes::new(),
        &[("x-request-id", "trace-me-42")],
    )
    .await;
    assert_eq!(r.headers["x-request-id"], "trace-me-42");
}

#[tokio::test]
async fn base_path_prefixes_every_route() {
    let h = Harness::start(&format!(
        "[gateway]\nbase_path = \"/custom/prefix/\"\n{BASIC}"
    ))
    .await;
    assert_eq!(h.get("/custom/prefix/status").await.status, 200);
    assert_eq!(
        h.post("/custom/prefix/inference", &inference("mock", "hi"))
            .await
            .status,
        200
    );
    assert_eq!(h.post("/custom/prefix/openai/v1/chat/completions", &json!({
        "model": "tensorzero::model_name::mock", "messages": [{ "role": "user", "content": "hi" }]
    })).await.status, 200);
    let r = h.post("/inference", &inference("mock", "hi")).await;
    assert_eq!(r.status, 404);
    assert!(
        r.error().contains("Route not found: POST /inference"),
        "{}",
        r.error()
    );
}

#[tokio::test]
async fn gzip_request_bodies_are_accepted() {
    use std::io::Write;
    let h = Harness::start(BASIC).await;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(inference("mock", "zipped").to_string().as_bytes())
        .unwrap();
    let body = enc.finish().unwrap();
    let r = crate::harness::send(
        http::Method::POST,
        &h.url("/inference"),
        body.into(),
        &[("content-encoding", "gzip")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["content"][0]["text"], "mock reply to: zipped");
}

/// A file server for the fetch tests: `/pixel.png` (a PNG, no MIME type asked of the client),
/// `/big` (larger than the test's body limit), `/moved` (a redirect).
async fn file_server() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let path = String::from_utf8_lossy(&request)
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .to_owned();
                let (head, body): (&str, Vec<u8>) = match path.as_str() {
                    "/pixel.png" => ("200 OK\r\nContent-Type: image/png", PIXEL_BYTES.to_vec()),
                    "/big" => ("200 OK\r\nContent-Type: image/png", vec![7u8; 10_000]),
                    "/moved" => ("302 Found\r\nLocation: http://169.254.169.254/", Vec::new()),
                    _ => ("404 Not Found", Vec::new()),
                };
                let head = format!(
                    "HTTP/1.1 {head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
            });
        }
    });
    format!("http://{addr}")
}

const PIXEL_BYTES: &[u8] = b"\x89PNG\r\n\x1a\n-a-stand-in-for-an-image";

#[tokio::test]
async fn url_files_are_fetched_and_sent_inline_when_the_gateway_is_asked_to() {
    use base64::Engine as _;
    let files = file_server().await;
    let config = format!(
        "[gateway]\nfetch_and_encode_input_files_before_inference = true\n[gateway.limits]\nmax_request_body_bytes = 4096\n{BASIC}"
    );
    let h = Harness::start(&config).await;
    let ask = |url: String| {
        json!({"model_name": "mock", "input": {"messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "file", "url": url},
        ]}]}})
    };
    let r = h
        .post("/inference", &ask(format!("{files}/pixel.png")))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = last_request(&h.mock).body.to_string();
    let inline = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(PIXEL_BYTES)
    );
    assert!(sent.contains(&inline), "{sent}");
    assert!(
        !sent.contains("/pixel.png"),
        "the URL itself is not sent: {sent}"
    );

    // What cannot be fetched is the client's to fix, and says why.
    for (url, why) in [
        (format!("{files}/big"), "larger than 4096 bytes"),
        (format!("{files}/moved"), "redirects are not followed"),
        (format!("{files}/missing"), "answered 404"),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "an address the gateway does not fetch from",
        ),
        ("ftp://example.com/x.png".to_owned(), "only http and https"),
    ] {
        let r = h.post("/inference", &ask(url.clone())).await;
        assert_eq!(r.status, 400, "{url}: {}", r.text());
        assert!(r.error().contains(why), "{url}: {}", r.text());
    }
}

#[tokio::test]
async fn url_files_are_passed_through_by_default() {
    let h = Harness::start(BASIC).await;
    let body = json!({"model_name": "mock", "input": {"messages": [{"role": "user", "content": [
        {"type": "file", "url": "https://example.com/cat.png", "mime_type": "image/png"},
    ]}]}});
    let r = h.post("/inference", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        last_request(&h.mock)
            .body
            .to_string()
            .contains("https://example.com/cat.png")
    );
}
