//! What the gateway reads from a provider's raw answer beside the answer itself: its cost, and
//! what a client asked to see verbatim (its usage object, its answer or stream chunks).
//!
//! The codecs read the raw bytes (a whole answer, or a stream's events) and hand each one to
//! the call's [`AnswerTap`] before parsing it into the typed answer, so that pointers into the
//! provider's own format (`cost` entries) see exactly what the provider sent, whatever the
//! codec keeps. A call gets a tap only when there is something to read: most calls pay nothing.

use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::cost::{CostTable, Dollars, StreamMeter};
use crate::model_call::{ExchangeText, RawWanted};

/// One provider call's reader of raw answers.
#[derive(Debug)]
pub struct AnswerTap {
    prices: Option<Arc<CostTable>>,
    wanted: RawWanted,
    /// Where the provider's format keeps its usage object (in a whole answer or in events).
    usage_at: &'static [&'static str],
    state: Mutex<Observed>,
    /// The observability store's copy of the request and answer, when it records the call.
    exchange: Option<Arc<Mutex<ExchangeText>>>,
}

#[derive(Debug, Default)]
struct Observed {
    /// Whether a whole answer was read (else stream events, or nothing yet).
    whole: bool,
    /// A whole answer's cost.
    answer_cost: Option<Dollars>,
    /// A stream's priced fields so far.
    meter: Option<StreamMeter>,
    /// The usage object: a whole answer's, or the stream's reports merged key by key (each
    /// event carries running totals of the keys it has).
    usage: Option<serde_json::Map<String, Value>>,
    /// A whole answer's text.
    text: Option<String>,
    /// Stream events not yet handed on with a chunk.
    pending: Vec<String>,
}

impl AnswerTap {
    /// A tap for a call with these prices, for a client that wants `wanted`, of a provider
    /// whose usage object is at the first of `usage_at` that an answer or event has.
    /// `exchange` receives the request and answer verbatim when the store records the call.
    pub fn new(
        prices: Option<Arc<CostTable>>,
        wanted: RawWanted,
        usage_at: &'static [&'static str],
        exchange: Option<Arc<Mutex<ExchangeText>>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            prices,
            wanted,
            usage_at,
            state: Mutex::new(Observed::default()),
            exchange,
        })
    }

    /// Whether the request body is wanted (the store records the call).
    pub fn records(&self) -> bool {
        self.exchange.is_some()
    }

    /// Reads the request body sent.
    pub fn request(&self, bytes: &[u8]) {
        if let Some(exchange) = &self.exchange {
            let mut e = exchange.lock().unwrap_or_else(|e| e.into_inner());
            e.request = String::from_utf8_lossy(bytes).into_owned();
        }
    }

    /// Adds answer text to the store's copy: a whole answer, or one more stream event.
    fn record_answer(&self, bytes: &[u8]) {
        if let Some(exchange) = &self.exchange {
            let mut e = exchange.lock().unwrap_or_else(|e| e.into_inner());
            if !e.response.is_empty() {
                e.response.push('\n');
            }
            e.response.push_str(&String::from_utf8_lossy(bytes));
        }
    }

    /// Reads a whole (non-streamed) answer. One that is not JSON has no cost or usage to read.
    pub fn answer(&self, bytes: &[u8]) {
        self.record_answer(bytes);
        let mut state = self.lock();
        state.whole = true;
        if self.prices.is_some() || self.wanted.usage {
            if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
                state.answer_cost = self.prices.as_ref().and_then(|t| t.of_answer(&v));
                state.usage = self.usage_of(&v).cloned();
            }
        }
        if self.wanted.response {
            state.text = Some(String::from_utf8_lossy(bytes).into_owned());
        }
    }

    /// Reads one streamed event's data.
    pub fn event(&self, data: &[u8]) {
        if !data.is_empty() && data != b"[DONE]" {
            self.record_answer(data);
        }
        let mut state = self.lock();
        if self.wanted.response {
            state
                .pending
                .push(String::from_utf8_lossy(data).into_owned());
        }
        if self.prices.is_none() && !self.wanted.usage {
            return;
        }
        let Ok(event) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        if let Some(table) = &self.prices {
            state
                .meter
                .get_or_insert_with(|| table.meter())
                .observe(&event);
        }
        if self.wanted.usage
            && let Some(usage) = self.usage_of(&event)
        {
            let merged = state.usage.get_or_insert_with(Default::default);
            for (k, v) in usage {
                merged.insert(k.clone(), v.clone());
            }
        }
    }

    fn usage_of<'v>(&self, v: &'v Value) -> Option<&'v serde_json::Map<String, Value>> {
        self.usage_at
            .iter()
            .find_map(|p| v.pointer(p).and_then(Value::as_object))
    }

    /// The cost of what was read so far (`None`: unknown, or no prices).
    pub fn cost(&self) -> Option<Dollars> {
        let state = self.lock();
        if state.whole {
            state.answer_cost
        } else {
            state.meter.as_ref().and_then(StreamMeter::total)
        }
    }

    /// The usage object read so far (null when there was none), if the client wants it.
    pub fn usage(&self) -> Option<Value> {
        self.wanted
            .usage
            .then(|| self.lock().usage.clone().map_or(Value::Null, Value::Object))
    }

    /// The whole answer's text, if the client wants it.
    pub fn text(&self) -> Option<String> {
        self.lock().text.clone()
    }

    /// The stream events read since the last call, joined by newlines, if the client wants
    /// them and there are any.
    pub fn take_events(&self) -> Option<String> {
        let mut state = self.lock();
        (!state.pending.is_empty()).then(|| std::mem::take(&mut state.pending).join("\n"))
    }

    /// What the client asked for.
    pub fn wanted(&self) -> RawWanted {
        self.wanted
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Observed> {
        // Nothing panics while holding it; a poisoned lock still holds consistent figures.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
