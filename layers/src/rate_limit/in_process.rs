//! The in-process bucket store: bounded, sharded, forgetting only refilled buckets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::backend::{BoxFuture, Charge, LimiterBackend, LimiterUnavailable, Verdict, refilled};
use super::rules::{Bucket, Limit};

/// The in-process backend: balances in memory, in shards, each bucket behind its own lock; a
/// reservation locks its buckets in key order, so concurrent calls never deadlock and never
/// wait on a global lock.
///
/// # Bounds
///
/// Clients choose tag values, and a `tensorzero::each` rule makes a bucket per value, so the
/// table is capped (`max_buckets`). A bucket may be forgotten only when nobody holds it and its
/// refilled balance is back at its own capacity: a full bucket and a missing one are the same,
/// so forgetting it changes no decision. When the table is full of buckets that are not full,
/// a new bucket is refused ([`LimiterUnavailable::Full`]) rather than a drained one dropped
/// (which would hand its scope a fresh allowance). Shards are chosen with a per-process random
/// hasher, so nobody can aim keys at one shard.
pub struct InProcessBackend {
    shards: Vec<Mutex<HashMap<String, Arc<Mutex<State>>>>>,
    hasher: std::collections::hash_map::RandomState,
    /// Buckets in every shard together.
    count: AtomicUsize,
    /// The cap on `count`; settable because reloads may change it while balances live on.
    max_buckets: AtomicUsize,
    /// When the last sweep for forgettable buckets ran (ms from `epoch`, +1 so 0 means never):
    /// a full table sweeps at most once per [`SWEEP_INTERVAL`], so a flood of new keys costs
    /// each request a lookup, not a scan.
    last_sweep_ms: AtomicU64,
    epoch: Instant,
}

#[derive(Debug)]
struct State {
    balance: f64,
    last: f64,
    /// The bucket's own limit: what "full again" means for it.
    limit: Limit,
}

impl State {
    /// Whether forgetting this bucket would change nothing: its balance has refilled to its
    /// capacity.
    fn is_full(&self, now: f64) -> bool {
        refilled(self.balance, self.last, now, &self.limit) >= self.limit.capacity as f64
    }
}

const SHARDS: usize = 64;
/// The default for `max_buckets`.
pub const DEFAULT_MAX_BUCKETS: usize = 100_000;
pub(super) const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

impl Default for InProcessBackend {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_BUCKETS)
    }
}

impl InProcessBackend {
    /// An empty table that holds at most `max_buckets` buckets.
    pub fn new(max_buckets: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            count: AtomicUsize::new(0),
            max_buckets: AtomicUsize::new(max_buckets.max(1)),
            last_sweep_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Changes the cap (a reload); buckets above a lowered cap are forgotten as they fill.
    pub fn set_max_buckets(&self, max_buckets: usize) {
        self.max_buckets
            .store(max_buckets.max(1), Ordering::Relaxed);
    }

    /// How many buckets the table holds.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether the table holds no bucket.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Arc<Mutex<State>>>> {
        use std::hash::BuildHasher;
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    fn bucket(&self, bucket: &Bucket, now: f64) -> Result<Arc<Mutex<State>>, LimiterUnavailable> {
        let shard = self.shard(&bucket.key);
        if let Some(state) = shard.lock().expect("rate-limit shard").get(&bucket.key) {
            return Ok(state.clone());
        }
        let max = self.max_buckets.load(Ordering::Relaxed);
        if self.count.load(Ordering::Relaxed) >= max {
            self.sweep(now);
            if self.count.load(Ordering::Relaxed) >= max {
                return Err(LimiterUnavailable::Full { max_buckets: max });
            }
        }
        let mut map = shard.lock().expect("rate-limit shard");
        let state = map.entry(bucket.key.clone()).or_insert_with(|| {
            self.count.fetch_add(1, Ordering::Relaxed);
            Arc::new(Mutex::new(State {
                balance: bucket.limit.capacity as f64,
                last: now,
                limit: bucket.limit,
            }))
        });
        Ok(state.clone())
    }

    /// Forgets every bucket nobody holds whose balance has refilled to capacity, unless a sweep
    /// ran less than [`SWEEP_INTERVAL`] ago.
    fn sweep(&self, now: f64) {
        let now_ms = (now * 1000.0) as u64 + 1;
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms < last + SWEEP_INTERVAL.as_millis() as u64 {
            return;
        }
        if self
            .last_sweep_ms
            .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return; // another caller is sweeping
        }
        for shard in &self.shards {
            let mut map = shard.lock().expect("rate-limit shard");
            let before = map.len();
            map.retain(|_, state| {
                Arc::strong_count(state) > 1
                    || !state.lock().map(|s| s.is_full(now)).unwrap_or(false)
            });
            self.count.fetch_sub(before - map.len(), Ordering::Relaxed);
        }
    }

    fn locked<R>(
        &self,
        charges: &[Charge],
        f: impl FnOnce(&mut [std::sync::MutexGuard<'_, State>], f64) -> R,
    ) -> Result<R, LimiterUnavailable> {
        let now = self.now();
        let mut order: Vec<usize> = (0..charges.len()).collect();
        order.sort_by(|a, b| charges[*a].bucket.key.cmp(&charges[*b].bucket.key));
        let cells = charges
            .iter()
            .map(|c| self.bucket(&c.bucket, now))
            .collect::<Result<Vec<_>, _>>()?;
        let mut guards: Vec<Option<std::sync::MutexGuard<'_, State>>> =
            (0..charges.len()).map(|_| None).collect();
        for i in order {
            guards[i] = Some(cells[i].lock().expect("rate-limit bucket"));
        }
        let mut guards: Vec<std::sync::MutexGuard<'_, State>> =
            guards.into_iter().map(|g| g.expect("locked")).collect();
        Ok(f(&mut guards, now))
    }
}

impl LimiterBackend for InProcessBackend {
    fn reserve<'a>(
        &'a self,
        charges: &'a [Charge],
    ) -> BoxFuture<'a, Result<Verdict, LimiterUnavailable>> {
        let verdict = self.locked(charges, |states, now| {
            let balances: Vec<f64> = states
                .iter()
                .zip(charges)
                .map(|(s, c)| refilled(s.balance, s.last, now, &c.bucket.limit))
                .collect();
            if balances
                .iter()
                .zip(charges)
                .any(|(b, c)| *b < c.amount as f64)
            {
                return Verdict::Denied { balances };
            }
            let mut after = Vec::with_capacity(charges.len());
            for ((state, balance), charge) in states.iter_mut().zip(&balances).zip(charges) {
                state.balance = balance - charge.amount as f64;
                state.last = now;
                state.limit = charge.bucket.limit;
                after.push(state.balance);
            }
            Verdict::Allowed { balances: after }
        });
        Box::pin(async move { verdict })
    }

    fn settle<'a>(
        &'a self,
        charges: &'a [Charge],
    ) -> BoxFuture<'a, Result<(), LimiterUnavailable>> {
        let settled = self.locked(charges, |states, now| {
            for (state, charge) in states.iter_mut().zip(charges) {
                let balance = refilled(state.balance, state.last, now, &charge.bucket.limit);
                state.balance =
                    (balance - charge.amount as f64).min(charge.bucket.limit.capacity as f64);
                state.last = now;
                state.limit = charge.bucket.limit;
            }
        });
        Box::pin(async move { settled })
    }
}
