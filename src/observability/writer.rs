//! Writing rows to Postgres off the request path: a bounded queue, one background writer
//! that flushes in multi-row statements, and a flush on shutdown.
//!
//! Requests never wait on the store (unless `async_writes = false` without batching, which
//! asks for exactly that). When the queue is full a row is dropped, counted and logged:
//! slowing requests to save rows would turn a slow database into a slow gateway. A batch that
//! fails is retried briefly (Postgres restarting), then dropped and counted; inferences never
//! fail because of the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::rows::{FeedbackRow, InferenceKind, InferenceRow, ModelRow};
use crate::config::gateway::ObservabilityConfig;
use crate::metrics::GatewayMetrics;

/// Rows queued at most unless `batch_writes.write_queue_capacity` says otherwise.
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
/// Rows per statement unless `batch_writes.max_rows(_postgres)` says otherwise.
pub const DEFAULT_MAX_ROWS: usize = 1_000;
/// The most bytes (roughly: text and JSON content) queued and in the batch being written. Rows
/// carry whole provider requests and answers, so a queue bounded only in rows could hold
/// gigabytes while Postgres is down.
pub const MAX_QUEUED_BYTES: usize = 256 << 20;
/// The most bytes one batch gathers (one transaction's worth).
const MAX_BATCH_BYTES: usize = 32 << 20;
/// How long a batch waits for more rows with `batch_writes` (TensorZero's default).
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// How long an async batch waits for more rows. Requests never wait for it; it saves Postgres a
/// commit per inference when inferences come a few milliseconds apart.
pub const ASYNC_LINGER: Duration = Duration::from_millis(20);
/// The pauses between attempts at a failing batch, before it is dropped.
const RETRY_PAUSES: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(2),
];

/// One row (or row pair) for the store.
#[derive(Debug)]
pub enum Row {
    /// An inference with its model calls (written together, metadata before data).
    Inference(Box<InferenceRow>, Vec<ModelRow>),
    /// A feedback.
    Feedback(Box<FeedbackRow>),
}

impl Row {
    /// Rows it puts in the database's tables (metadata and data count once).
    fn count(&self) -> usize {
        match self {
            Row::Inference(_, models) => 1 + models.len(),
            Row::Feedback(_) => 1,
        }
    }

    /// About how much memory it holds.
    fn bytes(&self) -> usize {
        const FIXED: usize = 256;
        match self {
            Row::Inference(i, models) => {
                let kind = match &i.kind {
                    InferenceKind::Chat {
                        dynamic_tools,
                        dynamic_provider_tools,
                        allowed_tools,
                        tool_choice,
                        ..
                    } => {
                        json_bytes(dynamic_tools)
                            + json_bytes(dynamic_provider_tools)
                            + allowed_tools.as_ref().map_or(0, json_bytes)
                            + tool_choice.as_ref().map_or(0, json_bytes)
                    }
                    InferenceKind::Json {
                        output_schema,
                        auxiliary_content,
                    } => json_bytes(output_schema) + json_bytes(auxiliary_content),
                };
                FIXED
                    + json_bytes(&i.input)
                    + json_bytes(&i.output)
                    + json_bytes(&i.inference_params)
                    + json_bytes(&i.extra_body)
                    + json_bytes(&i.tags)
                    + kind
                    + models
                        .iter()
                        .map(|m| {
                            FIXED
                                + m.raw_request.len()
                                + m.raw_response.len()
                                + m.system.as_ref().map_or(0, String::len)
                                + json_bytes(&m.input_messages)
                                + json_bytes(&m.output)
                        })
                        .sum::<usize>()
            }
            Row::Feedback(f) => {
                FIXED
                    + match f.as_ref() {
                        FeedbackRow::Comment { value, tags, .. } => value.len() + json_bytes(tags),
                        FeedbackRow::Demonstration { value, tags, .. } => {
                            json_bytes(value) + json_bytes(tags)
                        }
                        FeedbackRow::Boolean { tags, .. } | FeedbackRow::Float { tags, .. } => {
                            json_bytes(tags)
                        }
                    }
            }
        }
    }
}

/// About how much memory a JSON value holds.
fn json_bytes(v: &Value) -> usize {
    16 + match v {
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(json_bytes).sum(),
        Value::Object(map) => map.iter().map(|(k, v)| k.len() + json_bytes(v)).sum(),
        _ => 0,
    }
}

/// How rows reach the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The request waits for its rows to be written (`async_writes = false`).
    Sync,
    /// Queued and written by the background writer within [`ASYNC_LINGER`] (the default).
    Async,
    /// Queued and written every `flush_interval` or `max_rows` (`batch_writes`).
    Batch,
}

/// The settings of `[gateway.observability]` the writer follows.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Sync, async or batched.
    pub mode: Mode,
    /// Rows per statement.
    pub max_rows: usize,
    /// How long a batch waits for more rows.
    pub flush_interval: Duration,
    /// Rows queued at most.
    pub queue_capacity: usize,
    /// Bytes queued (and being written) at most.
    pub max_queued_bytes: usize,
}

impl Settings {
    /// From `[gateway.observability]`.
    pub fn from_config(config: &ObservabilityConfig) -> Self {
        let batch = config.batch_writes.as_ref().filter(|b| b.enabled);
        let mode = match (batch.is_some(), config.async_writes) {
            (true, _) => Mode::Batch,
            (false, true) => Mode::Async,
            (false, false) => Mode::Sync,
        };
        let as_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX).max(1);
        Self {
            mode,
            max_rows: batch
                .and_then(|b| b.max_rows_postgres.or(b.max_rows))
                .map_or(DEFAULT_MAX_ROWS, as_usize),
            flush_interval: match mode {
                Mode::Batch => batch
                    .and_then(|b| b.flush_interval_ms)
                    .map_or(DEFAULT_FLUSH_INTERVAL, Duration::from_millis),
                Mode::Async | Mode::Sync => ASYNC_LINGER,
            },
            queue_capacity: config
                .batch_writes
                .as_ref()
                .and_then(|b| b.write_queue_capacity)
                .map_or(DEFAULT_QUEUE_CAPACITY, as_usize),
            max_queued_bytes: MAX_QUEUED_BYTES,
        }
    }
}

/// The store's writer: the queue's sending end and the background task.
#[derive(Debug)]
pub struct Writer {
    pool: Pool,
    settings: Settings,
    queue: mpsc::Sender<(Row, usize)>,
    /// Bytes queued or in the batch being written.
    queued_bytes: Arc<AtomicUsize>,
    closing: watch::Sender<bool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    metrics: Arc<GatewayMetrics>,
    /// Drops since the last warning (the log says how many, once a second at most).
    unreported_drops: Arc<AtomicU64>,
    drop_warning: crate::logging::WarnThrottle,
}

impl Writer {
    /// Starts the background writer on `pool`.
    pub fn start(pool: Pool, settings: Settings, metrics: Arc<GatewayMetrics>) -> Arc<Self> {
        let (queue, receiver) = mpsc::channel(settings.queue_capacity);
        let (closing, closed) = watch::channel(false);
        let queued_bytes = Arc::<AtomicUsize>::default();
        let task = tokio::spawn(run(
            pool.clone(),
            settings,
            Queue {
                receiver,
                bytes: queued_bytes.clone(),
            },
            closed,
            metrics.clone(),
        ));
        Arc::new(Self {
            pool,
            settings,
            queue,
            queued_bytes,
            closing,
            task: std::sync::Mutex::new(Some(task)),
            metrics,
            unreported_drops: Arc::default(),
            drop_warning: crate::logging::WarnThrottle::new(),
        })
    }

    /// The database pool (reads and the feedback target check use it too).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Hands `row` to the store: queued (async, batch), or written now (sync).
    pub async fn write(&self, row: Row) {
        if self.settings.mode == Mode::Sync {
            write_with_retries(&self.pool, vec![row], &self.metrics).await;
            return;
        }
        self.enqueue(row);
    }

    /// Queues `row` without waiting; a full queue drops it (counted, and logged at most once a
    /// second).
    pub fn enqueue(&self, row: Row) {
        let rows = row.count() as u64;
        let bytes = row.bytes();
        let queued = self.queued_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let sent = if queued > self.settings.max_queued_bytes {
            Err(())
        } else {
            self.queue.try_send((row, bytes)).map_err(|_| ())
        };
        match sent {
            Ok(()) => self.metrics.store_queue_depth.with(&[]).add(1),
            Err(()) => {
                self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
                self.metrics
                    .store_rows_dropped
                    .with(&["queue_full"])
                    .add(rows);
                let dropped = self.unreported_drops.fetch_add(rows, Ordering::Relaxed) + rows;
                if self.drop_warning.due() {
                    self.unreported_drops.store(0, Ordering::Relaxed);
                    tracing::warn!(
                        dropped_rows = dropped,
                        capacity = self.settings.queue_capacity,
                        max_bytes = self.settings.max_queued_bytes,
                        "observability: the write queue is full, rows dropped (raise `gateway.observability.batch_writes.write_queue_capacity`, or check that Postgres keeps up)"
                    );
                }
            }
        }
    }

    /// Writes what is queued and stops the writer, waiting at most `within`.
    pub async fn close(&self, within: Duration) {
        let _ = self.closing.send(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task
            && tokio::time::timeout(within, task).await.is_err()
        {
            tracing::warn!(
                "observability: the write queue was not flushed within {} ms; rows still queued are lost",
                within.as_millis()
            );
        }
    }
}

/// The queue's receiving end, with the bytes it (and the batch being written) holds.
struct Queue {
    receiver: mpsc::Receiver<(Row, usize)>,
    bytes: Arc<AtomicUsize>,
}

/// A batch being gathered.
#[derive(Default)]
struct Batch {
    rows: Vec<Row>,
    /// Database rows in it.
    count: usize,
    bytes: usize,
}

impl Batch {
    fn push(&mut self, (row, bytes): (Row, usize)) {
        self.count += row.count();
        self.bytes += bytes;
        self.rows.push(row);
    }

    fn is_full(&self, settings: &Settings) -> bool {
        self.count >= settings.max_rows || self.bytes >= MAX_BATCH_BYTES
    }

    /// Writes it, then gives its bytes back to the queue's budget.
    async fn write(self, pool: &Pool, queue: &Queue, metrics: &GatewayMetrics) {
        metrics
            .store_queue_depth
            .with(&[])
            .add(-(self.rows.len() as i64));
        let bytes = self.bytes;
        write_with_retries(pool, self.rows, metrics).await;
        queue.bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// The background writer: takes batches off the queue and writes them.
async fn run(
    pool: Pool,
    settings: Settings,
    mut queue: Queue,
    mut closed: watch::Receiver<bool>,
    metrics: Arc<GatewayMetrics>,
) {
    loop {
        let first = tokio::select! {
            row = queue.receiver.recv() => row,
            _ = closed.wait_for(|c| *c) => None,
        };
        let Some(first) = first else { break };
        let mut batch = Batch::default();
        batch.push(first);
        // Gather what arrives within the flush interval into one transaction.
        let deadline = tokio::time::Instant::now() + settings.flush_interval;
        while !batch.is_full(&settings) {
            tokio::select! {
                row = queue.receiver.recv() => match row {
                    Some(row) => batch.push(row),
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => break,
                _ = closed.wait_for(|c| *c) => break,
            }
        }
        batch.write(&pool, &queue, &metrics).await;
    }
    // Shutting down: what is still queued goes out now, in full batches.
    queue.receiver.close();
    let mut batch = Batch::default();
    while let Ok(row) = queue.receiver.try_recv() {
        batch.push(row);
        if batch.is_full(&settings) {
            std::mem::take(&mut batch)
                .write(&pool, &queue, &metrics)
                .await;
        }
    }
    if !batch.rows.is_empty() {
        batch.write(&pool, &queue, &metrics).await;
    }
}

/// Writes `batch`, retrying a failing one briefly; drops it (counted) when Postgres stays
/// unavailable.
async fn write_with_retries(pool: &Pool, batch: Vec<Row>, metrics: &GatewayMetrics) {
    let tables = Tables::of(batch);
    let mut pauses = RETRY_PAUSES.iter();
    loop {
        match tables.write(pool).await {
            Ok(()) => {
                tables.count_written(metrics);
                return;
            }
            Err(e) => {
                metrics.store_write_errors.with(&[]).inc();
                match pauses.next() {
                    Some(pause) => {
                        tracing::debug!(error = %e, "observability: writing rows failed; retrying");
                        tokio::time::sleep(*pause).await;
                    }
                    None => {
                        let rows = tables.rows() as u64;
                        metrics.store_rows_dropped.with(&["write_failed"]).add(rows);
                        tracing::warn!(error = %e, rows, "observability: rows dropped after repeated write failures");
                        return;
                    }
                }
            }
        }
    }
}

/// A batch sorted by table.
#[derive(Default)]
struct Tables {
    chat: Vec<InferenceRow>,
    json: Vec<InferenceRow>,
    models: Vec<ModelRow>,
    feedback: Vec<FeedbackRow>,
}

impl Tables {
    fn of(batch: Vec<Row>) -> Self {
        let mut t = Self::default();
        for row in batch {
            match row {
                Row::Inference(inference, models) => {
                    if inference.is_json() {
                        t.json.push(*inference);
                    } else {
                        t.chat.push(*inference);
                    }
                    t.models.extend(models);
                }
                Row::Feedback(f) => t.feedback.push(*f),
            }
        }
        t
    }

    fn rows(&self) -> usize {
        self.chat.len() + self.json.len() + self.models.len() + self.feedback.len()
    }

    fn count_written(&self, metrics: &GatewayMetrics) {
        let written = &metrics.store_rows_written;
        for (table, n) in [
            ("chat_inferences", self.chat.len()),
            ("json_inferences", self.json.len()),
            ("model_inferences", self.models.len()),
        ] {
            if n > 0 {
                written.with(&[table]).add(n as u64);
            }
        }
        for f in &self.feedback {
            written.with(&[f.table()]).inc();
        }
    }

    /// One transaction: every table's metadata rows, then their data rows (ids repeat on a
    /// retried batch, and `ON CONFLICT DO NOTHING` makes the retry harmless).
    async fn write(&self, pool: &Pool) -> Result<(), String> {
        let mut client = pool.get().await.map_err(|e| e.to_string())?;
        let tx = client.transaction().await.map_err(|e| e.to_string())?;
        for (rows, json) in [(&self.chat, false), (&self.json, true)] {
            if rows.is_empty() {
                continue;
            }
            write_inferences(&tx, rows, json).await?;
        }
        if !self.models.is_empty() {
            write_models(&tx, &self.models).await?;
        }
        for f in &self.feedback {
            write_feedback(&tx, f).await?;
        }
        tx.commit().await.map_err(|e| e.to_string())
    }
}

fn sql_error(e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

async fn write_inferences(
    tx: &tokio_postgres::Transaction<'_>,
    rows: &[InferenceRow],
    json: bool,
) -> Result<(), String> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let functions: Vec<&str> = rows.iter().map(|r| r.function_name.as_str()).collect();
    let variants: Vec<&str> = rows.iter().map(|r| r.variant_name.as_str()).collect();
    let episodes: Vec<Uuid> = rows.iter().map(|r| r.episode_id).collect();
    let processing: Vec<Option<i32>> = rows.iter().map(|r| r.processing_time_ms).collect();
    let ttft: Vec<Option<i32>> = rows.iter().map(|r| r.ttft_ms).collect();
    let tags: Vec<&Value> = rows.iter().map(|r| &r.tags).collect();
    let hashes: Vec<Option<&[u8]>> = rows.iter().map(|r| r.snapshot_hash.as_deref()).collect();
    let table = if json {
        "json_inferences"
    } else {
        "chat_inferences"
    };
    tx.execute(
        &format!(
            "INSERT INTO tensorzero.{table} (id, function_name, variant_name, episode_id, processing_time_ms, ttft_ms, tags, snapshot_hash, created_at)
             SELECT r.id, r.f, r.v, r.e, r.p, r.t, r.tags, r.h, tensorzero.uuid_v7_to_timestamp(r.id)
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::int4[], $6::int4[], $7::jsonb[], $8::bytea[])
               AS r(id, f, v, e, p, t, tags, h)
             ON CONFLICT DO NOTHING"
        ),
        &[&ids, &functions, &variants, &episodes, &processing, &ttft, &tags, &hashes],
    )
    .await
    .map_err(sql_error)?;
    let inputs: Vec<&Value> = rows.iter().map(|r| &r.input).collect();
    let outputs: Vec<&Value> = rows.iter().map(|r| &r.output).collect();
    let params: Vec<&Value> = rows.iter().map(|r| &r.inference_params).collect();
    let extra_body: Vec<&Value> = rows.iter().map(|r| &r.extra_body).collect();
    if json {
        let empty = Value::Array(Vec::new());
        let (schemas, auxiliary): (Vec<&Value>, Vec<&Value>) = rows
            .iter()
            .map(|r| match &r.kind {
                InferenceKind::Json {
                    output_schema,
                    auxiliary_content,
                } => (output_schema, auxiliary_content),
                InferenceKind::Chat { .. } => (&empty, &empty),
            })
            .unzip();
        tx.execute(
            "INSERT INTO tensorzero.json_inference_data (id, input, output, output_schema, inference_params, extra_body, auxiliary_content, created_at)
             SELECT r.id, r.i, r.o, r.s, r.p, r.x, r.a, tensorzero.uuid_v7_to_timestamp(r.id)
             FROM UNNEST($1::uuid[], $2::jsonb[], $3::jsonb[], $4::jsonb[], $5::jsonb[], $6::jsonb[], $7::jsonb[])
               AS r(id, i, o, s, p, x, a)
             ON CONFLICT DO NOTHING",
            &[&ids, &inputs, &outputs, &schemas, &params, &extra_body, &auxiliary],
        )
        .await
        .map_err(sql_error)?;
    } else {
        let mut dynamic_tools = Vec::with_capacity(rows.len());
        let mut provider_tools = Vec::with_capacity(rows.len());
        let mut allowed = Vec::with_capacity(rows.len());
        let mut choice = Vec::with_capacity(rows.len());
        let mut parallel = Vec::with_capacity(rows.len());
        let empty = Value::Array(Vec::new());
        for r in rows {
            match &r.kind {
                InferenceKind::Chat {
                    dynamic_tools: d,
                    dynamic_provider_tools: p,
                    allowed_tools: a,
                    tool_choice: c,
                    parallel_tool_calls: pc,
                } => {
                    dynamic_tools.push(d);
                    provider_tools.push(p);
                    allowed.push(a.as_ref());
                    choice.push(c.as_ref());
                    parallel.push(*pc);
                }
                InferenceKind::Json { .. } => {
                    dynamic_tools.push(&empty);
                    provider_tools.push(&empty);
                    allowed.push(None);
                    choice.push(None);
                    parallel.push(None);
                }
            }
        }
        tx.execute(
            "INSERT INTO tensorzero.chat_inference_data (id, input, output, inference_params, extra_body, dynamic_tools, dynamic_provider_tools, allowed_tools, tool_choice, parallel_tool_calls, created_at)
             SELECT r.id, r.i, r.o, r.p, r.x, r.dt, r.dp, r.a, r.c, r.pc, tensorzero.uuid_v7_to_timestamp(r.id)
             FROM UNNEST($1::uuid[], $2::jsonb[], $3::jsonb[], $4::jsonb[], $5::jsonb[], $6::jsonb[], $7::jsonb[], $8::jsonb[], $9::jsonb[], $10::bool[])
               AS r(id, i, o, p, x, dt, dp, a, c, pc)
             ON CONFLICT DO NOTHING",
            &[
                &ids,
                &inputs,
                &outputs,
                &params,
                &extra_body,
                &dynamic_tools,
                &provider_tools,
                &allowed,
                &choice,
                &parallel,
            ],
        )
        .await
        .map_err(sql_error)?;
    }
    Ok(())
}

async fn write_models(
    tx: &tokio_postgres::Transaction<'_>,
    rows: &[ModelRow],
) -> Result<(), String> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let inferences: Vec<Uuid> = rows.iter().map(|r| r.inference_id).collect();
    let input_tokens: Vec<Option<i32>> = rows.iter().map(|r| r.input_tokens).collect();
    let output_tokens: Vec<Option<i32>> = rows.iter().map(|r| r.output_tokens).collect();
    let response_time: Vec<Option<i32>> = rows.iter().map(|r| r.response_time_ms).collect();
    let models: Vec<&str> = rows.iter().map(|r| r.model_name.as_str()).collect();
    let providers: Vec<&str> = rows
        .iter()
        .map(|r| r.model_provider_name.as_str())
        .collect();
    let ttft: Vec<Option<i32>> = rows.iter().map(|r| r.ttft_ms).collect();
    let finish: Vec<Option<&str>> = rows.iter().map(|r| r.finish_reason).collect();
    let hashes: Vec<Option<&[u8]>> = rows.iter().map(|r| r.snapshot_hash.as_deref()).collect();
    let costs: Vec<Option<&str>> = rows.iter().map(|r| r.cost.as_deref()).collect();
    tx.execute(
        "INSERT INTO tensorzero.model_inferences (id, inference_id, input_tokens, output_tokens, response_time_ms, model_name, model_provider_name, ttft_ms, cached, finish_reason, snapshot_hash, cost, created_at)
         SELECT r.id, r.inf, r.it, r.ot, r.rt, r.m, r.p, r.t, false, r.f, r.h, r.c::numeric, tensorzero.uuid_v7_to_timestamp(r.id)
         FROM UNNEST($1::uuid[], $2::uuid[], $3::int4[], $4::int4[], $5::int4[], $6::text[], $7::text[], $8::int4[], $9::text[], $10::bytea[], $11::text[])
           AS r(id, inf, it, ot, rt, m, p, t, f, h, c)
         ON CONFLICT DO NOTHING",
        &[
            &ids,
            &inferences,
            &input_tokens,
            &output_tokens,
            &response_time,
            &models,
            &providers,
            &ttft,
            &finish,
            &hashes,
            &costs,
        ],
    )
    .await
    .map_err(sql_error)?;
    let requests: Vec<&str> = rows.iter().map(|r| r.raw_request.as_str()).collect();
    let responses: Vec<&str> = rows.iter().map(|r| r.raw_response.as_str()).collect();
    let systems: Vec<Option<&str>> = rows.iter().map(|r| r.system.as_deref()).collect();
    let messages: Vec<&Value> = rows.iter().map(|r| &r.input_messages).collect();
    let outputs: Vec<&Value> = rows.iter().map(|r| &r.output).collect();
    tx.execute(
        "INSERT INTO tensorzero.model_inference_data (id, raw_request, raw_response, system, input_messages, output, created_at)
         SELECT r.id, r.q, r.a, r.s, r.m, r.o, tensorzero.uuid_v7_to_timestamp(r.id)
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[])
           AS r(id, q, a, s, m, o)
         ON CONFLICT DO NOTHING",
        &[&ids, &requests, &responses, &systems, &messages, &outputs],
    )
    .await
    .map_err(sql_error)?;
    Ok(())
}

async fn write_feedback(
    tx: &tokio_postgres::Transaction<'_>,
    row: &FeedbackRow,
) -> Result<(), String> {
    let result = match row {
        FeedbackRow::Boolean {
            id,
            target_id,
            metric_name,
            value,
            tags,
            snapshot_hash,
        } => {
            tx.execute(
                "INSERT INTO tensorzero.boolean_metric_feedback (id, target_id, metric_name, value, tags, snapshot_hash)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                &[id, target_id, metric_name, value, tags, snapshot_hash],
            )
            .await
        }
        FeedbackRow::Float {
            id,
            target_id,
            metric_name,
            value,
            tags,
            snapshot_hash,
        } => {
            tx.execute(
                "INSERT INTO tensorzero.float_metric_feedback (id, target_id, metric_name, value, tags, snapshot_hash)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                &[id, target_id, metric_name, value, tags, snapshot_hash],
            )
            .await
        }
        FeedbackRow::Comment {
            id,
            target_id,
            target_type,
            value,
            tags,
            snapshot_hash,
        } => {
            tx.execute(
                "INSERT INTO tensorzero.comment_feedback (id, target_id, target_type, value, tags, snapshot_hash)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                &[id, target_id, target_type, value, tags, snapshot_hash],
            )
            .await
        }
        FeedbackRow::Demonstration {
            id,
            inference_id,
            value,
            tags,
            snapshot_hash,
        } => {
            tx.execute(
                "INSERT INTO tensorzero.demonstration_feedback (id, inference_id, value, tags, snapshot_hash)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[id, inference_id, value, tags, snapshot_hash],
            )
            .await
        }
    };
    result.map(|_| ()).map_err(sql_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observability::rows::FeedbackRow;

    fn comment(bytes: usize) -> Row {
        Row::Feedback(Box::new(FeedbackRow::Comment {
            id: Uuid::now_v7(),
            target_id: Uuid::now_v7(),
            target_type: "inference",
            value: "x".repeat(bytes),
            tags: Value::Object(Default::default()),
            snapshot_hash: None,
        }))
    }

    #[tokio::test]
    async fn the_queue_is_bounded_in_bytes_as_well_as_rows() {
        // Nothing listens on port 1: every write fails (and is retried), so rows stay queued.
        let pool = crate::api_keys::PostgresKeyStore::connect("postgres://nobody@127.0.0.1:1/none")
            .unwrap()
            .pool()
            .clone();
        let metrics = Arc::new(GatewayMetrics::default());
        let settings = Settings {
            mode: Mode::Async,
            max_rows: 1000,
            flush_interval: Duration::from_millis(1),
            queue_capacity: 1000,
            max_queued_bytes: 10 << 20,
        };
        let writer = Writer::start(pool, settings, metrics.clone());
        for _ in 0..20 {
            writer.enqueue(comment(1 << 20));
        }
        let dropped = metrics.store_rows_dropped.with(&["queue_full"]).get();
        assert_eq!(
            dropped, 11,
            "a 10 MiB budget holds 9 rows of 1 MiB (and their overhead)"
        );
        assert!(writer.queued_bytes.load(Ordering::Relaxed) <= 10 << 20);
    }
}
