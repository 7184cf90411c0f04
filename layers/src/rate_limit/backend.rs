//! What a bucket store does: take charges all or nothing, settle them later, and the bucket
//! arithmetic every store shares.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::rules::{Bucket, Limit};

/// An amount to take from (or, negative, give back to) a bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct Charge {
    /// The bucket.
    pub bucket: Bucket,
    /// How much.
    pub amount: i64,
}

/// A backend's answer to a reservation.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Taken; the balances after taking.
    Allowed {
        /// One per charge.
        balances: Vec<f64>,
    },
    /// Nothing taken; the balances that were too low (and the others), before taking.
    Denied {
        /// One per charge.
        balances: Vec<f64>,
    },
}

/// The backend could not answer, or could not take one more bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimiterUnavailable {
    /// The store did not answer.
    Unreachable {
        /// Which store, where and why (never a password): for the log, never for clients.
        detail: String,
    },
    /// The in-process table holds `max_buckets` buckets and none of them can be forgotten
    /// without handing a drained scope a fresh allowance.
    Full {
        /// The cap (`gateway.limits.max_rate_limit_buckets`).
        max_buckets: usize,
    },
}

impl fmt::Display for LimiterUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The client sees this text: the store's name, address and error stay in the log.
        match self {
            LimiterUnavailable::Unreachable { .. } => f.write_str(
                "the rate-limit store is unavailable, so the request was refused; retry shortly",
            ),
            LimiterUnavailable::Full { max_buckets } => write!(
                f,
                "the gateway already tracks {max_buckets} rate-limit buckets (one per distinct scope value), none of them idle and refilled, so the request was refused rather than a limit bypassed; retry shortly, or raise `gateway.limits.max_rate_limit_buckets`"
            ),
        }
    }
}

impl std::error::Error for LimiterUnavailable {}

pub(super) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where bucket balances live.
pub trait LimiterBackend: Send + Sync + 'static {
    /// Takes every charge, or none if any bucket is short.
    fn reserve<'a>(
        &'a self,
        charges: &'a [Charge],
    ) -> BoxFuture<'a, Result<Verdict, LimiterUnavailable>>;
    /// Adds `-amount` to each bucket (refunds are negative charges), capped at capacity; never
    /// refused.
    fn settle<'a>(&'a self, charges: &'a [Charge])
    -> BoxFuture<'a, Result<(), LimiterUnavailable>>;
}

/// The bucket arithmetic every backend shares: the balance at `now`.
pub fn refilled(balance: f64, last: f64, now: f64, limit: &Limit) -> f64 {
    if now <= last || balance >= limit.capacity as f64 {
        return balance.min(limit.capacity as f64).max(balance.min(0.0));
    }
    (balance + (now - last) * limit.rate_per_second()).min(limit.capacity as f64)
}

/// How long until `amount` fits in a bucket holding `balance`; `None` if it never can.
pub fn wait_for(amount: i64, balance: f64, limit: &Limit) -> Option<Duration> {
    if amount as f64 > limit.capacity as f64 || limit.refill_rate == 0 {
        return (amount as f64 <= balance).then_some(Duration::ZERO);
    }
    let short = amount as f64 - balance;
    Some(if short <= 0.0 {
        Duration::ZERO
    } else {
        seconds(short / limit.rate_per_second())
    })
}

/// A wait in seconds as a `Duration`, saturating instead of panicking when a rule's numbers
/// (a huge capacity over a long interval) make it larger than a `Duration` holds.
pub(super) fn seconds(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(if secs > 0.0 {
        Duration::MAX
    } else {
        Duration::ZERO
    })
}
