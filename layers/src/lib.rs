//! The tower layers of the switchyard gateway, one module per concern.
//!
//! This crate knows nothing of the gateway's configuration or state: each layer takes a small
//! settings value and talks to its neighbours only through the typed extensions in [`ext`].
//! That keeps the dependency arrow one way (the app composes layers; layers never reach into
//! the app) and lets every layer be tested alone with `tower-test`.
//!
//! Where each layer sits is decided in one place, the app's `stack.rs`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod body_end;
pub mod call;
pub mod credentials;
pub mod ext;
pub mod fallback;
pub mod guard;
pub mod metrics;
pub mod rate_limit;
pub mod request_log;
pub mod rescue;
pub mod retry;
pub mod route;
pub mod secret;
pub mod timeout;
pub mod trace_context;

pub use request_log::{RequestLog, RequestLogLayer};
pub use secret::Secret;
