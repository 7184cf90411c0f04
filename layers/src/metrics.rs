//! Prometheus metrics: counters, gauges and histograms in labelled families, rendered in the
//! Prometheus text format, and the inbound layer that counts HTTP requests.
//!
//! Recording is lock-free once a series exists (atomic adds); finding a series takes a read lock
//! on its family. Each family holds at most [`MAX_SERIES`] label combinations: past that, new
//! combinations are counted under the value `other`, so a label fed by clients cannot grow the
//! registry without bound. Label values that come from requests are meant to be bounded anyway
//! (routes, configured function and model names, status codes); ids never become labels. A
//! client may still name a shorthand model (`openai::<anything>`), so label values are also
//! cut to [`MAX_LABEL_BYTES`].
//!
//! A registry belongs to one gateway instance, not the process, so several gateways in one
//! process (the tests) keep separate counts, and a configuration reload keeps them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::body_end::{BodyEnd, EndGuard, OnBodyEnd, WatchedBody};
use crate::ext::RouteName;

/// The most label combinations one family keeps.
pub const MAX_SERIES: usize = 1000;

/// The longest label value kept; longer ones are cut (at a character boundary), so names that
/// share their first 128 bytes share a series.
pub const MAX_LABEL_BYTES: usize = 128;

/// `value`, cut to at most [`MAX_LABEL_BYTES`].
fn clip(value: &str) -> &str {
    if value.len() <= MAX_LABEL_BYTES {
        return value;
    }
    let mut end = MAX_LABEL_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// Latency buckets in seconds, for request and provider durations.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// A value that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// An amount of money that only goes up, counted exactly in nano-dollars and rendered in
/// dollars (Prometheus' base unit).
#[derive(Debug, Default)]
pub struct MoneyCounter(AtomicU64);

impl MoneyCounter {
    /// Adds `nanodollars`.
    pub fn add_nanodollars(&self, nanodollars: u64) {
        self.0.fetch_add(nanodollars, Ordering::Relaxed);
    }

    /// The total in nano-dollars.
    pub fn nanodollars(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Series for MoneyCounter {
    fn write(&self, name: &str, labels: &str, out: &mut String) {
        let n = self.nanodollars();
        let (whole, fraction) = (n / 1_000_000_000, n % 1_000_000_000);
        if fraction == 0 {
            let _ = writeln!(out, "{name}{labels} {whole}");
        } else {
            let digits = format!("{fraction:09}");
            let _ = writeln!(
                out,
                "{name}{labels} {whole}.{}",
                digits.trim_end_matches('0')
            );
        }
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Adds `n` (which may be negative).
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets the value.
    pub fn set(&self, n: i64) {
        self.0.store(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Observations counted into buckets (cumulative when rendered), with their sum and count.
#[derive(Debug)]
pub struct Histogram {
    bounds: Arc<[f64]>,
    buckets: Box<[AtomicU64]>,
    /// The sum, in millionths of the unit, so it can be an atomic integer.
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// An empty histogram with these upper bounds (ascending; `+Inf` is implied).
    pub fn new(bounds: Arc<[f64]>) -> Self {
        let buckets = (0..bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Self {
            bounds,
            buckets,
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records `value` (negative values count as 0).
    pub fn observe(&self, value: f64) {
        let value = value.max(0.0);
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros
            .fetch_add((value * 1e6).round() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// How many values were observed.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The sum of the observed values.
    pub fn sum(&self) -> f64 {
        self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
    }
}

/// What a family's series are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric in the text format: a series knows how to write its sample lines.
trait Series: Send + Sync {
    fn write(&self, name: &str, labels: &str, out: &mut String);
}

impl Series for Counter {
    fn write(&self, name: &str, labels: &str, out: &mut String) {
        let _ = writeln!(out, "{name}{labels} {}", self.get());
    }
}

impl Series for Gauge {
    fn write(&self, name: &str, labels: &str, out: &mut String) {
        let _ = writeln!(out, "{name}{labels} {}", self.get());
    }
}

impl Series for Histogram {
    fn write(&self, name: &str, labels: &str, out: &mut String) {
        let inner = labels.trim_start_matches('{').trim_end_matches('}');
        let sep = if inner.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in self.bounds.iter().zip(self.buckets.iter()) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{inner}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{inner}{sep}le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum{labels} {}", self.sum());
        let _ = writeln!(out, "{name}_count{labels} {count}");
    }
}

/// A metric and its series, one per combination of label values.
pub struct Family<M> {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    make: Box<dyn Fn() -> M + Send + Sync>,
    series: RwLock<SeriesMap<M>>,
}

/// Series by a hash of their label values (colliding hashes share a list). The key is already
/// a hash, so the map uses it as is rather than hashing it again.
type SeriesMap<M> = HashMap<u64, Vec<(Box<[String]>, Arc<M>)>, BuildHasherDefault<PreHashed>>;

/// The hasher of a map whose `u64` keys are hashes already.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; any other input still gets a usable hash.
        self.0 = fnv1a(self.0, bytes);
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

impl<M> std::fmt::Debug for Family<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Family").field("name", &self.name).finish()
    }
}

impl<M> Family<M> {
    /// The series for these label values (in the order of the family's label names), created
    /// on first use.
    pub fn with(&self, values: &[&str]) -> Arc<M> {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        let clipped: Vec<&str>;
        let values = if values.iter().any(|v| v.len() > MAX_LABEL_BYTES) {
            clipped = values.iter().map(|v| clip(v)).collect();
            &clipped[..]
        } else {
            values
        };
        {
            let series = self.series.read().expect("metrics lock");
            if let Some(m) = lookup(&series, values) {
                return m.clone();
            }
        }
        let mut series = self.series.write().expect("metrics lock");
        if let Some(m) = lookup(&series, values) {
            return m.clone();
        }
        let count: usize = series.values().map(Vec::len).sum();
        let other: Vec<&str>;
        let values = if count >= MAX_SERIES {
            other = values.iter().map(|_| "other").collect();
            if let Some(m) = lookup(&series, &other) {
                return m.clone();
            }
            &other[..]
        } else {
            values
        };
        let metric = Arc::new((self.make)());
        series.entry(hash(values)).or_default().push((
            values.iter().map(|v| (*v).to_owned()).collect(),
            metric.clone(),
        ));
        metric
    }
}

/// The series with these label values; found without allocating, so recording stays cheap.
fn lookup<'a, M>(series: &'a SeriesMap<M>, values: &[&str]) -> Option<&'a Arc<M>> {
    series
        .get(&hash(values))?
        .iter()
        .find(|(k, _)| k.iter().zip(values).all(|(a, b)| a == b))
        .map(|(_, m)| m)
}

/// A hash of label values: FNV-1a, a few instructions per byte where SipHash spends many
/// (every request looks up about a dozen series). Flooding is not a concern: the number of
/// series is capped (`MAX_SERIES`), and colliding ones only share a short list.
fn hash(values: &[&str]) -> u64 {
    values.iter().fold(FNV_OFFSET, |h, v| {
        // A separator after each value, so `["ab", "c"]` and `["a", "bc"]` differ.
        fnv1a(fnv1a(h, v.as_bytes()), &[0xff])
    })
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Anything the registry can render.
trait Render: Send + Sync {
    fn render(&self, out: &mut String);
}

impl<M: Series> Render for Family<M> {
    fn render(&self, out: &mut String) {
        let kind = match self.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {kind}", self.name);
        let series = self.series.read().expect("metrics lock");
        let mut entries: Vec<_> = series.values().flatten().map(|(k, m)| (k, m)).collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (values, metric) in entries {
            let labels = if self.labels.is_empty() {
                String::new()
            } else {
                let pairs: Vec<String> = self
                    .labels
                    .iter()
                    .zip(values.iter())
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                if pairs.is_empty() {
                    String::new()
                } else {
                    format!("{{{}}}", pairs.join(","))
                }
            };
            metric.write(self.name, &labels, out);
        }
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics of one gateway instance.
#[derive(Default)]
pub struct Registry {
    families: RwLock<Vec<Arc<dyn Render>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn add<M: Series + 'static>(
        &self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &'static [&'static str],
        make: Box<dyn Fn() -> M + Send + Sync>,
    ) -> Arc<Family<M>> {
        let family = Arc::new(Family {
            name,
            help,
            kind,
            labels,
            make,
            series: RwLock::new(HashMap::default()),
        });
        self.families
            .write()
            .expect("metrics lock")
            .push(family.clone());
        family
    }

    /// A counter family. A label whose value is empty is left out of the rendered series.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Arc<Family<Counter>> {
        self.add(
            name,
            help,
            Kind::Counter,
            labels,
            Box::new(Counter::default),
        )
    }

    /// A family of money counters (rendered as a counter, in dollars).
    pub fn money_counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Arc<Family<MoneyCounter>> {
        self.add(
            name,
            help,
            Kind::Counter,
            labels,
            Box::new(MoneyCounter::default),
        )
    }

    /// A gauge family.
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Arc<Family<Gauge>> {
        self.add(name, help, Kind::Gauge, labels, Box::new(Gauge::default))
    }

    /// A histogram family with these bucket bounds.
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &[f64],
    ) -> Arc<Family<Histogram>> {
        let bounds: Arc<[f64]> = bounds.into();
        self.add(
            name,
            help,
            Kind::Histogram,
            labels,
            Box::new(move || Histogram::new(bounds.clone())),
        )
    }

    /// Everything, in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for family in self.families.read().expect("metrics lock").iter() {
            family.render(&mut out);
        }
        out
    }
}

/// The HTTP request metrics the inbound layer records.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    /// Requests by route, method and status.
    pub requests: Arc<Family<Counter>>,
    /// Request durations (until the last body byte) by route and status.
    pub duration: Arc<Family<Histogram>>,
    /// Requests whose response has not ended yet, by route.
    pub in_flight: Arc<Family<Gauge>>,
}

impl HttpMetrics {
    /// Registers the families in `registry`.
    pub fn new(registry: &Registry) -> Self {
        Self {
            requests: registry.counter(
                "switchyard_http_requests_total",
                "HTTP requests by route, method and status.",
                &["route", "method", "status"],
            ),
            duration: registry.histogram(
                "switchyard_http_request_duration_seconds",
                "HTTP request duration, until the last byte of the response body, by route and status.",
                &["route", "status"],
                LATENCY_BUCKETS,
            ),
            in_flight: registry.gauge(
                "switchyard_http_requests_in_flight",
                "HTTP requests whose response has not ended (streams included), by route.",
                &["route"],
            ),
        }
    }
}

/// Builds [`Metrics`] services.
#[derive(Clone, Debug)]
pub struct MetricsLayer {
    metrics: HttpMetrics,
}

impl MetricsLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: HttpMetrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// Counts requests, times them until their body ends, and tracks those in flight. The route
/// label is the [`RouteName`] the router puts on the response (`unmatched` when none did), so
/// arbitrary paths never become labels.
#[derive(Clone, Debug)]
pub struct Metrics<S> {
    inner: S,
    metrics: HttpMetrics,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Metrics<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<MeteredBody<ResB>>;
    type Error = S::Error;
    type Future = MeteredFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let method = match *req.method() {
            http::Method::GET => "GET",
            http::Method::POST => "POST",
            http::Method::HEAD => "HEAD",
            _ => "other",
        };
        MeteredFuture {
            inner: self.inner.call(req),
            pending: Some((self.metrics.clone(), method, Instant::now())),
        }
    }
}

pin_project! {
    /// The future of [`Metrics`].
    pub struct MeteredFuture<F> {
        #[pin]
        inner: F,
        pending: Option<(HttpMetrics, &'static str, Instant)>,
    }
}

impl<F, ResB, E> Future for MeteredFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<MeteredBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let (metrics, method, started) = this.pending.take().expect("polled after completion");
        Poll::Ready(result.map(|response| {
            let (parts, body) = response.into_parts();
            let route = parts
                .extensions
                .get::<RouteName>()
                .map_or("unmatched", |r| r.0);
            let status = parts.status.as_u16();
            metrics.in_flight.with(&[route]).add(1);
            Response::from_parts(
                parts,
                WatchedBody::new(
                    body,
                    EndGuard::new(Ended {
                        metrics,
                        route,
                        method,
                        status,
                        started,
                    }),
                ),
            )
        }))
    }
}

/// A response body that records its request when it ends or is dropped.
pub type MeteredBody<B> = WatchedBody<B, Ended>;

/// A request whose body has not ended yet (what [`MeteredBody`] records at its end).
pub struct Ended {
    metrics: HttpMetrics,
    route: &'static str,
    method: &'static str,
    status: u16,
    started: Instant,
}

impl OnBodyEnd for Ended {
    fn on_end(self, _how: BodyEnd) {
        let status = status_label(self.status);
        self.metrics.in_flight.with(&[self.route]).add(-1);
        self.metrics
            .requests
            .with(&[self.route, self.method, status])
            .inc();
        self.metrics
            .duration
            .with(&[self.route, status])
            .observe(self.started.elapsed().as_secs_f64());
    }
}

/// A status code as a label value without allocating.
pub fn status_label(status: u16) -> &'static str {
    const CODES: &[(u16, &str)] = &[
        (200, "200"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (408, "408"),
        (413, "413"),
        (422, "422"),
        (429, "429"),
        (500, "500"),
        (501, "501"),
        (502, "502"),
        (503, "503"),
        (504, "504"),
    ];
    CODES.iter().find(|(c, _)| *c == status).map_or(
        match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        },
        |(_, s)| s,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let r = Registry::new();
        let c = r.counter("t_requests_total", "Requests.", &["route", "model"]);
        c.with(&["/inference", "m"]).add(2);
        c.with(&["/inference", ""]).inc();
        let h = r.histogram("t_seconds", "Time.", &[], &[0.1, 1.0]);
        h.with(&[]).observe(0.05);
        h.with(&[]).observe(0.5);
        h.with(&[]).observe(5.0);
        let text = r.render();
        assert!(text.contains("# TYPE t_requests_total counter\n"), "{text}");
        assert!(
            text.contains("t_requests_total{route=\"/inference\",model=\"m\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("t_requests_total{route=\"/inference\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("t_seconds_bucket{le=\"0.1\"} 1\n"), "{text}");
        assert!(text.contains("t_seconds_bucket{le=\"1\"} 2\n"), "{text}");
        assert!(text.contains("t_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("t_seconds_sum 5.55\n"), "{text}");
        assert!(text.contains("t_seconds_count 3\n"), "{text}");
    }

    #[test]
    fn label_values_split_differently_are_different_series() {
        let r = Registry::new();
        let c = r.counter("t_total", "T.", &["a", "b"]);
        c.with(&["ab", "c"]).inc();
        c.with(&["a", "bc"]).add(2);
        c.with(&["ab", "c"]).inc();
        let text = r.render();
        assert!(text.contains("t_total{a=\"ab\",b=\"c\"} 2\n"), "{text}");
        assert!(text.contains("t_total{a=\"a\",b=\"bc\"} 2\n"), "{text}");
        assert_ne!(hash(&["ab", "c"]), hash(&["a", "bc"]));
    }

    #[test]
    fn label_values_are_cut_to_a_bounded_length() {
        let r = Registry::new();
        let c = r.counter("t_total", "T.", &["model"]);
        let long = format!("openai::{}", "é".repeat(50_000));
        c.with(&[&long]).inc();
        c.with(&[&format!("{long}x")]).inc();
        let text = r.render();
        let line = text
            .lines()
            .find(|l| l.starts_with("t_total{"))
            .expect("a series");
        assert!(line.len() < MAX_LABEL_BYTES + 40, "{line}");
        assert!(
            line.ends_with(" 2"),
            "names alike up to the cut share a series: {line}"
        );
    }

    #[test]
    fn label_values_are_escaped_and_series_are_bounded() {
        let r = Registry::new();
        let c = r.counter("t_total", "T.", &["name"]);
        c.with(&["a\"b\\c\nd"]).inc();
        assert!(r.render().contains(r#"t_total{name="a\"b\\c\nd"} 1"#));
        for i in 0..(MAX_SERIES + 10) {
            c.with(&[&i.to_string()]).inc();
        }
        let text = r.render();
        assert_eq!(
            text.lines().filter(|l| l.starts_with("t_total{")).count(),
            MAX_SERIES + 1
        );
        assert!(text.contains("t_total{name=\"other\"} 11"), "{text}");
    }

    #[tokio::test]
    async fn the_layer_counts_when_the_body_ends() {
        use http_body_util::{BodyExt, Full};
        use tower::ServiceExt;

        let registry = Registry::new();
        let metrics = HttpMetrics::new(&registry);
        let svc = MetricsLayer::new(metrics.clone()).layer(tower::service_fn(
            |_req: Request<Full<bytes::Bytes>>| async {
                let mut res = Response::new(Full::new(bytes::Bytes::from_static(b"hi")));
                res.extensions_mut().insert(RouteName("/inference"));
                Ok::<_, std::convert::Infallible>(res)
            },
        ));
        let res = svc
            .oneshot(Request::post("/inference").body(Full::default()).unwrap())
            .await
            .unwrap();
        assert_eq!(metrics.in_flight.with(&["/inference"]).get(), 1);
        let _ = res.into_body().collect().await.unwrap();
        assert_eq!(metrics.in_flight.with(&["/inference"]).get(), 0);
        assert_eq!(
            metrics.requests.with(&["/inference", "POST", "200"]).get(),
            1
        );
        assert_eq!(metrics.duration.with(&["/inference", "200"]).count(), 1);
    }
}
