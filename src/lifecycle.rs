//! The process's lifecycle: whether it is draining, and how long shutdown may take.
//!
//! Shutdown runs in three steps, so that an orchestrator can move traffic away before the
//! process stops listening:
//!
//! 1. On SIGTERM (or Ctrl-C) readiness (`GET /ready`) starts answering 503 at once.
//! 2. For the *shutdown delay* the gateway keeps accepting and serving as usual: load balancers
//!    that have not yet seen the failed probe (or the endpoint removal) still get answers.
//! 3. Then it stops accepting connections, lets in-flight requests and streams finish for up to
//!    the *drain timeout*, closes what is left, and the process exits 0.
//!
//! In Kubernetes the delay is usually spent in a `preStop` hook instead (the pod is removed from
//! its Service's endpoints when termination starts); `terminationGracePeriodSeconds` must cover
//! preStop + delay + drain, or the kubelet kills streams that were still finishing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long in-flight requests may run after shutdown begins, unless configured.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The timings of a graceful shutdown.
#[derive(Clone, Copy, Debug)]
pub struct ShutdownTimings {
    /// Serving on (not ready) before the listener closes.
    pub delay: Duration,
    /// How long in-flight requests may take once the listener has closed.
    pub drain: Duration,
}

impl Default for ShutdownTimings {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            drain: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

/// State that belongs to the process, not to a configuration: it survives reloads.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
}

impl Lifecycle {
    /// Marks the process as shutting down: readiness fails from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}
