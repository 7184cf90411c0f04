//! A denial: which buckets were short, by how much, and when the request would fit.

use std::fmt;
use std::time::Duration;

use super::rules::Resource;

/// A limit was hit: what, by how much, and when the request would fit.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimited {
    /// The buckets that were short.
    pub short: Vec<Shortfall>,
    /// Every bucket of the request, for the `x-ratelimit-*` headers.
    pub buckets: Vec<BucketStatus>,
}

/// A bucket that could not cover the request.
#[derive(Clone, Debug, PartialEq)]
pub struct Shortfall {
    /// The rule.
    pub rule: String,
    /// Its scope, with the matched values.
    pub scope: String,
    /// What it counts.
    pub resource: Resource,
    /// What the request needed.
    pub requested: i64,
    /// What was there.
    pub available: i64,
    /// When it would fit; `None` if never (more than the capacity).
    pub retry_after: Option<Duration>,
}

/// One bucket's state, for response headers.
#[derive(Clone, Debug, PartialEq)]
pub struct BucketStatus {
    /// What it counts.
    pub resource: Resource,
    /// Its capacity.
    pub limit: u64,
    /// What is left (floored at 0).
    pub remaining: u64,
    /// Until it is full again.
    pub reset: Duration,
}

impl RateLimited {
    /// When the request would fit: the longest wait over the short buckets (`None` if one can
    /// never hold it).
    pub fn retry_after(&self) -> Option<Duration> {
        self.short
            .iter()
            .try_fold(Duration::ZERO, |acc, s| s.retry_after.map(|r| acc.max(r)))
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [one] = self.short.as_slice() {
            write!(
                f,
                "TensorZero rate limit exceeded for `{}` resource.\nRule: {}\nScope: {}\nRequested: {}\nAvailable: {}",
                one.resource.as_str(),
                one.rule,
                one.scope,
                one.resource.amount(one.requested),
                one.resource.amount(one.available)
            )?;
        } else {
            write!(
                f,
                "TensorZero rate limits exceeded for {} rules:",
                self.short.len()
            )?;
            for s in &self.short {
                write!(
                    f,
                    "\n- `{}` resource, rule {}, scope {}: requested {}, available {}",
                    s.resource.as_str(),
                    s.rule,
                    s.scope,
                    s.resource.amount(s.requested),
                    s.resource.amount(s.available)
                )?;
            }
        }
        match self.retry_after() {
            Some(wait) => write!(f, "\nRetry after: {} s", wait.as_secs_f64().ceil().max(1.0)),
            None => write!(
                f,
                "\nThe request needs more than the limit's capacity; it can never fit as sent (lower `max_tokens`)"
            ),
        }
    }
}

impl std::error::Error for RateLimited {}
