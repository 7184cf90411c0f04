//! The composition of the inbound HTTP stack: the one place that decides the order of layers.
//!
//! Per request, outermost first:
//!
//! 1. `RequestLogLayer` (layers crate): assigns the request id (writes the `RequestId`
//!    request extension, echoes `x-request-id`), continues or starts the W3C trace (writes
//!    `TraceContext`, which model calls carry on as `traceparent`), and writes one log line when
//!    the response body ends (reads the `InferenceInfo` response extension).
//!    Right inside it, `MetricsLayer` (layers `metrics`) counts requests by route (the
//!    `RouteName` the router sets), method and status, times them until the body ends, and
//!    tracks those in flight.
//!    Right inside those, `RescueLayer` (layers `rescue`): a panic anywhere below becomes a
//!    500 JSON error (logged and counted as one), never a connection closed with no reply.
//! 2. `SetSensitiveRequestHeadersLayer` (tower-http): marks `authorization`, `x-api-key`,
//!    `proxy-authorization` and `api-key` sensitive, so no debug output can show them.
//! 3. `RequestDecompressionLayer` (tower-http): gzip, br and zstd request bodies (lazily: the
//!    body is not read until a handler reads it).
//!
//! Stages 4 and 5 are built per configuration. A reload (`reload`) swaps them atomically
//! between requests through [`swappable::Swappable`]: a request runs to its end on the configuration it
//! started with, and the next one, even on the same connection, gets the new one.
//!
//! 4. `AuthLayer` (layers `auth`): with `gateway.auth.enabled`, checks the API key before any
//!    body is read; writes `ApiKeyPublicId`, reads `ClientAddr` (set per connection by the
//!    server) for the brute-force shield. Refusals become `Error::Unauthorized` and
//!    go through the same rescue point as every other error.
//! 5. `Router` (`api`): matches the route under `gateway.base_path`, reads the body under the
//!    size limit, runs the handler, and turns every error into the route's JSON error body
//!    (the one rescue point, `Error::into_response` in `error.rs`: also auth refusals, 404s
//!    and 405s). Handlers write `InferenceInfo`.
//!
//! # The model-call stack
//!
//! After the router has resolved the function and variant and built the typed model request
//! (`inference`), each model call goes through, outermost first:
//!
//! 6. `RateLimit` (layers `rate_limit`): one reservation per model inference in every bucket
//!    the matching rules name (reads `Tags`, `ApiKeyPublicId`); settles with the usage the
//!    answer reports. A denial is final: no retry, no fallback.
//! 7. variant `Timeout` (layers `timeout`, scope variant): bounds all attempts together.
//! 8. `Retry` (layers `retry`): the variant's `retries`, backoff with jitter, `Retry-After`
//!    (errors classify themselves, `error.rs`).
//! 9. model `Timeout` (scope model): the model's `timeouts`; it also covers relayed calls.
//! 10. `RelayOrSkip` (layers `route`): to the relay, unless there is none or the model sets
//!     `skip_relay = true`.
//!     - relay: stages 13 to 15 with the relay key over the `RelayClient` (`providers::relay`;
//!       reads `ProviderKey`, `DynamicCredentials`, `Tags`).
//! 11. `Fallback` (layers `fallback`): the model's `routing`, in order, on any error.
//! 12. provider `Timeout` (scope provider): one attempt.
//! 13. `Credentials` (layers `credentials`): resolves the provider's key; writes `ProviderKey`,
//!     reads `DynamicCredentials`.
//! 14. `AttemptMetrics` (`metrics`): counts and times the wire call, the relay's too, and adds
//!     its wait to the inference's `ProviderWait` for the overhead histogram.
//! 15. `Deadline` ([`deadline`]): `gateway.global_outbound_http_timeout_ms` over the whole
//!     exchange; a miss is the peer's `NoAnswer` failure.
//!
//! Below the stages, the codec of the target's wire format (`ProviderService` in `providers`,
//! reading `ProviderKey`; `RelayClient`; the embeddings client) over the one upstream leaf
//! (`upstream::Upstream`: sends with `traceparent`, types unreachable and error-status answers,
//! bounds what it reads) and the pooled hyper client (`http_client`).
//!
//! Stages 9 to 15 are built once per model at start-up ([`model::model`], over the generic
//! [`model::calls`] and [`model::attempt`]); 6 to 8 per request, from the variant's settings
//! ([`model::variant`]).
//!
//! Embedding calls (`embeddings`) go through the same builder: 6 (no tags), 9 (the embedding
//! model's `timeout_ms`), 10 (always relayed when a relay is configured), 11, 12 (each
//! provider's `timeout_ms`) and 13 to 15, over the OpenAI `/embeddings` codec.
//!
//! Before stage 6, `inference` resolves what the edge owns: the function, its variant (sampled
//! by weight, or pinned), the input checked against the function's schemas and rendered through
//! the variant's templates, the tools offered; best-of-n and mixture-of-n variants make one
//! model call per candidate plus the evaluator or fuser, each through stages 6 to 15.
//!
//! # Modules
//!
//! - [`inbound`]: stages 1 to 5 (depends on the routes, `api`).
//! - [`model`]: stages 6 to 15 (depends on the providers, never on `api` or `inference`'s
//!   request handling), so the inference engine can build model stacks without a cycle.
//! - [`deadline`]: stage 15.
//! - [`swappable`]: the atomic swap a reload goes through.

pub mod deadline;
pub mod inbound;
pub mod model;
pub mod swappable;
