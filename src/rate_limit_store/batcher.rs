//! One batcher per shared store: every reservation and settlement of this process goes through
//! one task, which hands whatever has queued up to the store as one call, and makes the next
//! call as soon as the previous one has answered.
//!
//! A call per decision is what made a shared store cost far more than the in-process one: each
//! call pays a round trip, the server's turn (Redis's event loop, a Postgres transaction that
//! holds the hot buckets' row locks) and the script's start, several times what the bucket
//! arithmetic costs. Nothing waits for a tick: an idle gateway sends a lone reservation at once,
//! a busy one sends many in one call. The store decides the jobs of a call one after the other,
//! atomically, so a batch decides exactly what the same jobs sent one by one in that order
//! would have: reservations stay all or nothing, and counts across replicas stay exact.
//!
//! Settlements are on no request's path (the answer has gone out before usage is known), so
//! they wait for the next reservation to ride along with, up to [`SETTLE_LINGER`]: under steady
//! load a request costs one call, not two. Until its settlement lands, a bucket holds the
//! reservation's estimate, which is what it held while the call ran.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use switchyard_layers::rate_limit::{Charge, LimiterBackend, LimiterUnavailable, Verdict};
use tokio::sync::{mpsc, oneshot};

/// The most jobs the batcher takes from its queue for one call (settlements that waited ride
/// along on top): bounds the call's size and how long the store holds its locks.
const MAX_BATCH: usize = 256;

/// Jobs queued for the batcher. When it is full, callers wait for room (backpressure): a job is
/// never dropped.
const QUEUE_CAPACITY: usize = 4096;

/// The longest a settlement waits for a reservation to share a call with.
const SETTLE_LINGER: Duration = Duration::from_millis(10);

pub(super) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One charge, ready for a store.
pub(super) struct Encoded {
    /// The bucket's identity (the store adds its own prefix or table).
    pub key: String,
    pub capacity: u64,
    pub rate_per_second: f64,
    /// What to take (negative: give back).
    pub amount: i64,
    /// How long the bucket is kept once idle.
    pub idle_ttl_ms: u64,
}

impl Encoded {
    fn new(charge: &Charge) -> Self {
        let limit = &charge.bucket.limit;
        Self {
            key: charge.bucket.key.clone(),
            capacity: limit.capacity,
            rate_per_second: limit.rate_per_second(),
            amount: charge.amount,
            idle_ttl_ms: super::idle_ttl_ms(limit),
        }
    }
}

/// A reservation or a settlement waiting for the batcher, with where its answer goes.
pub(super) struct Job {
    pub charges: Vec<Encoded>,
    reply: Reply,
}

enum Reply {
    Reserve(oneshot::Sender<Result<Verdict, LimiterUnavailable>>),
    Settle(oneshot::Sender<Result<(), LimiterUnavailable>>),
    /// Not sent to the store: asks the batcher to send the settlements that wait, and answers
    /// once they are applied (at shutdown).
    Flush(oneshot::Sender<()>),
}

/// A store's answer to one job.
pub(super) enum Outcome {
    /// A reservation's verdict.
    Reserved(Verdict),
    /// A settlement, applied.
    Settled,
}

impl Job {
    /// Whether this is a settlement (take or give back, never refused) rather than a
    /// reservation (all or nothing).
    pub fn is_settlement(&self) -> bool {
        matches!(self.reply, Reply::Settle(_))
    }

    fn is_flush(&self) -> bool {
        matches!(self.reply, Reply::Flush(_))
    }

    /// Hands the store's answer (or the call's failure) to whoever waits. A caller that has
    /// gone (its request was cancelled) is no error: its job was decided all the same.
    fn answer(self, answer: Result<Outcome, LimiterUnavailable>) {
        match self.reply {
            Reply::Reserve(tx) => {
                let _ =
                    tx.send(
                        answer.and_then(|o| match o {
                            Outcome::Reserved(v) => Ok(v),
                            Outcome::Settled => Err(LimiterUnavailable::Unreachable {
                                detail:
                                    "the rate-limit store answered a reservation as a settlement"
                                        .into(),
                            }),
                        }),
                    );
            }
            Reply::Settle(tx) => {
                let _ = tx.send(answer.map(|_| ()));
            }
            Reply::Flush(tx) => {
                let _ = tx.send(());
            }
        }
    }
}

/// A shared store that decides a batch of jobs in one call.
pub(super) trait BatchStore: Send + 'static {
    /// Decides `jobs` (never flushes) in order, atomically: one outcome per job, or the
    /// call's failure (which fails every job of the batch).
    fn decide<'a>(
        &'a mut self,
        jobs: &'a [Job],
    ) -> BoxFuture<'a, Result<Vec<Outcome>, LimiterUnavailable>>;
}

/// The batcher's front: a [`LimiterBackend`] that queues jobs for it. Cheap to clone; the
/// batcher stops once every clone is gone, after sending the settlements that wait.
#[derive(Clone)]
pub(super) struct Batched {
    jobs: mpsc::Sender<Job>,
    /// The store, for messages (never a password).
    label: Arc<str>,
}

impl Batched {
    /// Starts the batcher for `store` on the current runtime.
    pub fn start(store: impl BatchStore, label: Arc<str>) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(store, queue));
        Self { jobs, label }
    }

    /// Sends the settlements that wait for a reservation to ride along with, and returns once
    /// they are applied (or failed).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        let job = Job {
            charges: Vec::new(),
            reply: Reply::Flush(tx),
        };
        if self.jobs.send(job).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Queues a job; fails only if the batcher has stopped (the runtime is shutting down).
    async fn submit(&self, charges: &[Charge], reply: Reply) -> Result<(), LimiterUnavailable> {
        let job = Job {
            charges: charges.iter().map(Encoded::new).collect(),
            reply,
        };
        self.jobs
            .send(job)
            .await
            .map_err(|_| LimiterUnavailable::Unreachable {
                detail: format!(
                    "the rate-limit batcher for {} has stopped (shutting down)",
                    self.label
                ),
            })
    }

    fn gone(&self) -> LimiterUnavailable {
        LimiterUnavailable::Unreachable {
            detail: format!(
                "the rate-limit batcher for {} stopped before answering",
                self.label
            ),
        }
    }
}

impl LimiterBackend for Batched {
    fn reserve<'a>(
        &'a self,
        charges: &'a [Charge],
    ) -> BoxFuture<'a, Result<Verdict, LimiterUnavailable>> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            self.submit(charges, Reply::Reserve(tx)).await?;
            rx.await.unwrap_or_else(|_| Err(self.gone()))
        })
    }

    fn settle<'a>(
        &'a self,
        charges: &'a [Charge],
    ) -> BoxFuture<'a, Result<(), LimiterUnavailable>> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            self.submit(charges, Reply::Settle(tx)).await?;
            rx.await.unwrap_or_else(|_| Err(self.gone()))
        })
    }
}

/// The batcher: one store call at a time, as many jobs per call as have queued.
async fn run(mut store: impl BatchStore, mut queue: mpsc::Receiver<Job>) {
    let mut incoming = Vec::with_capacity(MAX_BATCH);
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut settlements: Vec<Job> = Vec::new();
    let mut flushes: Vec<Job> = Vec::new();
    let linger = tokio::time::sleep(SETTLE_LINGER);
    tokio::pin!(linger);
    loop {
        tokio::select! {
            biased;
            received = queue.recv_many(&mut incoming, MAX_BATCH) => {
                if received == 0 {
                    // Every sender is gone: settle what waits, then stop.
                    if !settlements.is_empty() {
                        call(&mut store, &mut settlements).await;
                    }
                    return;
                }
                for job in incoming.drain(..) {
                    if job.is_flush() {
                        flushes.push(job);
                    } else if !job.is_settlement() {
                        batch.push(job);
                    } else {
                        if settlements.is_empty() {
                            linger.as_mut().reset(tokio::time::Instant::now() + SETTLE_LINGER);
                        }
                        settlements.push(job);
                    }
                }
            }
            () = &mut linger, if !settlements.is_empty() => {}
        }
        let settle_now = settlements.len() >= MAX_BATCH
            || (!settlements.is_empty() && (linger.is_elapsed() || !flushes.is_empty()));
        if !batch.is_empty() || settle_now {
            // Settlements first: a reservation in the same call sees the balances they give
            // back.
            settlements.append(&mut batch);
            call(&mut store, &mut settlements).await;
        }
        for flush in flushes.drain(..) {
            flush.answer(Ok(Outcome::Settled));
        }
    }
}

/// One store call for `jobs`, answering (and draining) every one of them.
async fn call(store: &mut impl BatchStore, jobs: &mut Vec<Job>) {
    match store.decide(jobs).await {
        Ok(outcomes) if outcomes.len() == jobs.len() => {
            for (job, outcome) in jobs.drain(..).zip(outcomes) {
                job.answer(Ok(outcome));
            }
        }
        Ok(outcomes) => {
            let unexpected = LimiterUnavailable::Unreachable {
                detail: format!(
                    "the rate-limit store answered {} jobs of {}",
                    outcomes.len(),
                    jobs.len()
                ),
            };
            for job in jobs.drain(..) {
                job.answer(Err(unexpected.clone()));
            }
        }
        Err(unavailable) => {
            for job in jobs.drain(..) {
                job.answer(Err(unavailable.clone()));
            }
        }
    }
}
