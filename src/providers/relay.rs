//! The relay client: sends a model call to a relay gateway as a native `POST /inference`
//! (reference §1.5), and reads its answer (JSON or SSE) back as a model output.
//!
//! The relay sees a default-function call: `function_name: null`, the edge's model name, the
//! rendered input, the merged parameters (`json_mode` always set), the user's tags (no
//! `tensorzero::` keys), the whole `credentials` map, every tool as `additional_tools`, and the
//! `extra_body`/`extra_headers` entries that apply (variant entries as unconditional ones,
//! model/provider-targeted ones unchanged, so the relay applies them to its own providers).
//! The key comes from the credentials layer as [`ProviderKey`], sent as `Authorization: Bearer`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Value, json};
use switchyard_layers::call::Call;
use switchyard_layers::ext::{DynamicCredentials, ProviderKey, Tags};
use switchyard_layers::trace_context::TraceContext;

use super::{ChunkSource, SseReader, bearer, peek_stream};
use crate::config::JsonMode;
use crate::error::{Error, FailureKind, Fault};
use crate::model_call::{
    ContentBlock, EditTarget, FileInput, InferenceParams, ModelChunk, ModelOutput, ModelRequest,
    ModelResponse, ProviderOutput,
};
use crate::native_wire::{
    InferenceChunk, InferenceRequestBody, InferenceResponse, InputBody, InputContentBlock,
    MessageBody, ParamsBody,
};
use crate::upstream::{Peer, Upstream, error_text, read_answer, snippet};

/// The provider name relayed calls are recorded under.
pub const RELAY_PROVIDER: &str = switchyard_layers::ext::RELAY_PROVIDER;

/// Where relayed calls go, from `[gateway.relay]`.
#[derive(Clone, Debug)]
pub struct RelaySettings {
    /// The relay's base URL.
    pub gateway_url: String,
    /// Where the relay key comes from.
    pub key: switchyard_layers::credentials::CredentialSource,
}
/// Sends one model's calls to the relay.
#[derive(Clone, Debug)]
pub struct RelayClient {
    inner: Arc<RelayTarget>,
    upstream: Upstream,
}

#[derive(Debug)]
struct RelayTarget {
    /// `{gateway_url}/inference`, keeping any path prefix.
    url: Arc<str>,
    /// The edge's name for the model; the relay must know it too.
    model_name: Arc<str>,
}

/// The inference URL of a relay: a path prefix in `gateway_url` is kept.
pub fn inference_url(gateway_url: &str) -> String {
    format!("{}/inference", gateway_url.trim_end_matches('/'))
}

impl RelayClient {
    /// A client for calls of `model_name` to the relay at `gateway_url`.
    pub fn new(gateway_url: &str, model_name: Arc<str>, upstream: Upstream) -> Self {
        Self {
            inner: Arc::new(RelayTarget {
                url: inference_url(gateway_url).into(),
                model_name,
            }),
            upstream,
        }
    }

    /// Who this client's exchanges are with.
    pub fn peer(&self) -> Peer {
        Peer::Relay {
            url: self.inner.url.clone(),
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send>>;

impl tower::Service<Call<ModelRequest>> for RelayClient {
    type Response = ModelOutput;
    type Error = Error;
    type Future = BoxFuture<ModelOutput>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call<ModelRequest>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let target = &this.inner;
            let body = relay_body(&target.model_name, &call);
            let mut builder = Request::post(&*target.url).header(CONTENT_TYPE, "application/json");
            if call.payload.stream {
                builder = builder.header(ACCEPT, "text/event-stream");
            }
            if let Some(key) = call
                .extensions
                .get::<ProviderKey>()
                .and_then(|k| k.0.as_ref())
            {
                builder = builder.header(AUTHORIZATION, bearer(key)?);
            }
            let body = crate::upstream::json_body(&body);
            // The observability store keeps what went to the relay and what came back.
            let tap = call
                .extensions
                .get::<crate::model_call::ExchangeLog>()
                .map(|log| {
                    let tap = super::tap::AnswerTap::new(
                        None,
                        Default::default(),
                        &["/usage"],
                        Some(log.attempt(&Arc::from(RELAY_PROVIDER))),
                    );
                    tap.request(&body);
                    tap
                });
            let request = builder.body(Full::new(body)).map_err(|e| {
                Error::relay_failure(Fault::new(
                    FailureKind::Unreachable,
                    format!("cannot build a request to `{}`: {e}", target.url),
                ))
            })?;
            let response = this
                .upstream
                .exchange(request, call.extensions.get::<TraceContext>())
                .await
                .map_err(|refused| this.peer().refused(refused))?;
            let is_sse = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            let output = if is_sse {
                stream(response.into_body(), tap).await?
            } else {
                let bytes = read_answer(response.into_body()).await.map_err(|e| {
                    Error::relay_failure(Fault::new(e.kind, format!("the relay's answer: {e}")))
                })?;
                if let Some(tap) = &tap {
                    tap.answer(&bytes);
                }
                ProviderOutput::Complete(parse_response(&bytes).map_err(Error::relay_failure)?)
            };
            Ok(ModelOutput {
                provider: RELAY_PROVIDER.into(),
                output,
            })
        })
    }
}

/// The body of `POST {gateway_url}/inference` (reference §1.5).
pub fn relay_body(model_name: &str, call: &Call<ModelRequest>) -> Value {
    let request = &call.payload;
    let params = InferenceParams {
        // Unset parameters are left out, as the TensorZero Gateway's own edge does; the JSON
        // mode is always said.
        json_mode: Some(request.params.json_mode.unwrap_or(JsonMode::Off)),
        ..request.params.clone()
    };
    let messages = request
        .messages
        .iter()
        .map(|m| MessageBody {
            role: m.role,
            content: serde_json::to_value(m.content.iter().map(input_block).collect::<Vec<_>>())
                .expect("input blocks serialize"),
        })
        .collect();
    let tags = call
        .extensions
        .get::<Tags>()
        .map(|t| {
            t.0.iter()
                .filter(|(k, _)| !k.starts_with("tensorzero::"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let credentials = call
        .extensions
        .get::<DynamicCredentials>()
        .map(|d| (*d.0).clone())
        .unwrap_or_default();
    let tools = request.tools.as_ref();
    let raw_wanted = call
        .extensions
        .get::<crate::model_call::RawWanted>()
        .copied()
        .unwrap_or_default();
    let body = InferenceRequestBody {
        model_name: Some(model_name.to_owned()),
        input: InputBody {
            system: request.system.clone().map(Value::String),
            messages,
        },
        stream: Some(request.stream),
        params: ParamsBody {
            chat_completion: Some(params),
        },
        tags,
        credentials,
        output_schema: request.output_schema.clone(),
        additional_tools: tools.map(|t| t.tools.clone()).unwrap_or_default(),
        tool_choice: tools.map(|t| t.tool_choice.clone()),
        parallel_tool_calls: tools.and_then(|t| t.parallel_tool_calls),
        extra_body: request
            .extra_body
            .variant
            .iter()
            .map(|e| (EditTarget::Always, e))
            .chain(
                request
                    .extra_body
                    .request
                    .iter()
                    .map(|t| (t.target.clone(), &t.edit)),
            )
            .map(|(target, e)| {
                let mut entry = match &e.value {
                    Some(v) => json!({ "pointer": e.pointer, "value": v }),
                    None => json!({ "pointer": e.pointer, "delete": true }),
                };
                add_target(&mut entry, &target);
                entry
            })
            .collect(),
        extra_headers: request
            .extra_headers
            .variant
            .iter()
            .map(|e| (EditTarget::Always, e))
            .chain(
                request
                    .extra_headers
                    .request
                    .iter()
                    .map(|t| (t.target.clone(), &t.edit)),
            )
            .map(|(target, e)| {
                let mut entry = match &e.value {
                    Some(v) => json!({ "name": e.name, "value": v }),
                    None => json!({ "name": e.name, "delete": true }),
                };
                add_target(&mut entry, &target);
                entry
            })
            .collect(),
        // The relay's own records of the call are the ones the client asked for.
        include_raw_usage: raw_wanted.usage.then_some(true),
        include_raw_response: raw_wanted.response.then_some(true),
        ..InferenceRequestBody::default()
    };
    serde_json::to_value(body).expect("a native request serializes")
}

fn add_target(entry: &mut Value, target: &EditTarget) {
    if let EditTarget::ModelProvider { model, provider } = target {
        entry["model_name"] = json!(model);
        if let Some(p) = provider {
            entry["provider_name"] = json!(p);
        }
    }
}

fn input_block(block: &ContentBlock) -> InputContentBlock {
    match block {
        ContentBlock::Text(text) => InputContentBlock::Text {
            text: Some(text.clone()),
            arguments: None,
        },
        ContentBlock::ToolCall(c) => InputContentBlock::ToolCall {
            id: c.id.clone(),
            name: Some(c.name.clone()),
            arguments: Some(Value::String(c.arguments.clone())),
            raw_name: None,
            raw_arguments: None,
        },
        ContentBlock::ToolResult(r) => InputContentBlock::ToolResult {
            id: r.id.clone(),
            name: r.name.clone(),
            result: r.result.clone(),
        },
        ContentBlock::File(FileInput::Url { url, mime_type }) => InputContentBlock::File {
            file_type: Some("url".into()),
            url: Some(url.clone()),
            mime_type: mime_type.clone(),
            data: None,
            detail: None,
            filename: None,
        },
        ContentBlock::File(FileInput::Base64 { mime_type, data }) => InputContentBlock::File {
            file_type: Some("base64".into()),
            url: None,
            mime_type: Some(mime_type.clone()),
            data: Some(data.clone()),
            detail: None,
            filename: None,
        },
        ContentBlock::Thought(t) => InputContentBlock::Thought {
            text: t.text.clone(),
            signature: t.signature.clone(),
            summary: None,
        },
        ContentBlock::Unknown { data } => InputContentBlock::Unknown {
            data: data.clone(),
            model_name: None,
            provider_name: None,
        },
    }
}

/// A native `/inference` response as a model response.
fn parse_response(bytes: &[u8]) -> Result<ModelResponse, String> {
    let response: InferenceResponse = serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "the relay's answer is not a native inference response ({e}): {}",
            snippet(bytes)
        )
    })?;
    response
        .into_model_response()
        .map_err(|why| format!("{why}: {}", snippet(bytes)))
}

async fn stream(
    body: Incoming,
    tap: Option<Arc<super::tap::AnswerTap>>,
) -> Result<ProviderOutput, Error> {
    let state = RelayStream {
        reader: SseReader::new(body).with_tap(tap),
        finished: false,
    };
    peek_stream(state, || {
        Error::relay_failure(Fault::new(
            FailureKind::BrokeOff,
            "the relay's stream ended before any data arrived",
        ))
    })
    .await
}

struct RelayStream {
    reader: SseReader,
    finished: bool,
}

impl RelayStream {
    fn fail(&mut self, fault: impl Into<Fault>) -> Option<Result<ModelChunk, Error>> {
        self.finished = true;
        Some(Err(Error::relay_failure(fault)))
    }
}

impl ChunkSource for RelayStream {
    async fn next_chunk(&mut self) -> Option<Result<ModelChunk, Error>> {
        if self.finished {
            return None;
        }
        let event = match self.reader.next().await {
            Ok(Some(event)) => event,
            Ok(None) => {
                return self.fail(Fault::new(
                    FailureKind::BrokeOff,
                    "the relay's stream ended without `[DONE]`",
                ));
            }
            Err(fault) => {
                return self.fail(Fault::new(
                    fault.kind,
                    format!("the relay's {}", fault.message.trim_start_matches("the ")),
                ));
            }
        };
        if event.data.trim() == "[DONE]" {
            self.finished = true;
            return None;
        }
        let v: Value = match serde_json::from_str(&event.data) {
            Ok(v) => v,
            Err(e) => return self.fail(format!("a relay stream event is not JSON ({e})")),
        };
        if let Some(error) = v.get("error") {
            return self.fail(format!(
                "the relay reported an error mid-stream: {}",
                error_text(error)
            ));
        }
        match serde_json::from_value::<InferenceChunk>(v) {
            Ok(chunk) => Some(Ok(chunk.into_model_chunk())),
            Err(e) => self.fail(format!("a relay stream event is not a native chunk ({e})")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_call::{
        BodyEdit, ExtraEdits, InferenceParams, Message, Role, Targeted, ToolChoice, ToolConfig,
        ToolDef,
    };
    use std::collections::BTreeMap;
    use switchyard_layers::Secret;

    #[test]
    fn prefixes_are_kept() {
        assert_eq!(
            inference_url("http://relay:3000"),
            "http://relay:3000/inference"
        );
        assert_eq!(
            inference_url("http://gw/team-a/"),
            "http://gw/team-a/inference"
        );
    }

    #[test]
    fn the_body_is_a_default_function_call() {
        let request = ModelRequest {
            system: Some("sys".into()),
            messages: vec![Message {
                role: Role::User,
                content: vec![ContentBlock::Text("hi".into())],
            }],
            params: InferenceParams {
                temperature: Some(0.5),
                ..Default::default()
            },
            tools: Some(ToolConfig {
                tools: vec![ToolDef {
                    name: "t".into(),
                    description: "d".into(),
                    parameters: json!({}),
                    strict: false,
                }],
                tool_choice: ToolChoice::Specific("t".into()),
                parallel_tool_calls: None,
            }),
            stream: true,
            extra_body: ExtraEdits {
                variant: vec![BodyEdit {
                    pointer: "/a".into(),
                    value: Some(json!(1)),
                }],
                request: vec![Targeted {
                    target: EditTarget::ModelProvider {
                        model: "m".into(),
                        provider: Some("p".into()),
                    },
                    edit: BodyEdit {
                        pointer: "/b".into(),
                        value: None,
                    },
                }],
            },
            ..Default::default()
        };
        let mut call = Call::new(request);
        let tags: BTreeMap<String, String> = [
            ("team".to_owned(), "x".to_owned()),
            ("tensorzero::internal".to_owned(), "y".to_owned()),
        ]
        .into();
        call.extensions.insert(Tags(Arc::new(tags)));
        let creds: BTreeMap<String, Secret> = [("k".to_owned(), Secret::new("v"))].into();
        call.extensions.insert(DynamicCredentials(Arc::new(creds)));
        let body = relay_body("openai::gpt", &call);
        assert_eq!(body["function_name"], Value::Null);
        assert_eq!(body["model_name"], "openai::gpt");
        assert_eq!(body["input"]["system"], "sys");
        assert_eq!(
            body["input"]["messages"][0]["content"][0],
            json!({ "type": "text", "text": "hi" })
        );
        assert_eq!(body["params"]["chat_completion"]["json_mode"], "off");
        assert_eq!(body["params"]["chat_completion"]["temperature"], 0.5);
        assert_eq!(body["tags"], json!({ "team": "x" }));
        assert_eq!(body["credentials"], json!({ "k": "v" }));
        assert_eq!(body["additional_tools"][0]["name"], "t");
        assert_eq!(body["tool_choice"], json!({ "specific": "t" }));
        assert_eq!(body["stream"], true);
        assert_eq!(
            body["extra_body"],
            json!([{ "pointer": "/a", "value": 1 }, { "pointer": "/b", "delete": true, "model_name": "m", "provider_name": "p" }])
        );
        assert_eq!(body["additional_tools"][0]["type"], "function");
        assert!(
            body.get("namespace").is_none(),
            "unset fields are left out: {body}"
        );
        assert_eq!(
            body["params"]["chat_completion"].as_object().unwrap().len(),
            2,
            "only the set parameters and the JSON mode: {body}"
        );
        // What an edge sends, a relay parses (with `deny_unknown_fields`): one set of types.
        let parsed: InferenceRequestBody = serde_json::from_value(body).unwrap();
        assert_eq!(parsed.model_name.as_deref(), Some("openai::gpt"));
        assert_eq!(parsed.credentials["k"].expose(), "v");
    }

    #[test]
    fn native_answers_parse() {
        use crate::model_call::{ChunkBlock, FinishReason};
        let r = parse_response(br#"{"content":[{"type":"text","text":"hi"},{"type":"tool_call","id":"c","name":"f","arguments":{"a":1},"raw_name":"f","raw_arguments":"{\"a\":1}"},{"type":"future_block"}],"usage":{"input_tokens":3,"output_tokens":4,"cost":null},"finish_reason":"tool_call","original_response":"ignored"}"#).unwrap();
        assert_eq!(r.content.len(), 2, "an unknown block type is skipped");
        assert_eq!(r.finish_reason, Some(FinishReason::ToolCall));
        assert_eq!(r.usage.output_tokens, Some(4));
        // Counts that are not counts are dropped, not fatal.
        let r =
            parse_response(br#"{"content":[],"usage":{"input_tokens":-1,"output_tokens":1e20}}"#)
                .unwrap();
        assert_eq!(r.usage.input_tokens, None);
        let c: InferenceChunk =
            serde_json::from_value(json!({"content":[{"type":"text","id":"0","text":"a"}]}))
                .unwrap();
        assert_eq!(
            c.into_model_chunk().content,
            vec![ChunkBlock::Text {
                id: "0".into(),
                text: "a".into()
            }]
        );
        assert!(parse_response(b"{}").unwrap_err().contains("no `content`"));
    }
}
