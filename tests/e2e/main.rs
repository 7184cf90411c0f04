//! End-to-end tests: a real gateway and a real (mock) provider, over HTTP on 127.0.0.1.

mod anthropic;
mod auth;
mod aws;
mod bad_input;
mod cli;
mod config_errors;
mod configs_2026;
mod embeddings;
mod functions;
mod gemini;
mod hardening;
mod harness;
mod hostile_provider;
mod inference;
mod lifecycle;
mod metrics;
mod openai;
mod pg;
mod providers;
mod rate_limits;
mod redis;
mod relay;
mod secrets;
mod stream_failures;
mod traces;
mod vertex;
