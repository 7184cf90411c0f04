//! What the gateway reads from a provider's raw answer beside the answer itself: its cost.
//!
//! The codecs read the raw bytes (a whole answer, or a stream's events) and hand each one to
//! the call's [`AnswerTap`] before parsing it into the typed answer, so that pointers into the
//! provider's own format (`cost` entries) see exactly what the provider sent, whatever the
//! codec keeps. A call gets a tap only when its provider has something to read: most calls
//! pay nothing.

use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::cost::{CostTable, Dollars, StreamMeter};

/// One provider call's reader of raw answers.
#[derive(Debug)]
pub struct AnswerTap {
    table: Arc<CostTable>,
    state: Mutex<Observed>,
}

#[derive(Debug, Default)]
enum Observed {
    /// Nothing yet.
    #[default]
    Nothing,
    /// A whole answer, and its cost.
    Answer(Option<Dollars>),
    /// Stream events so far.
    Stream(StreamMeter),
}

impl AnswerTap {
    /// A tap pricing the answer with `table`.
    pub fn pricing(table: Arc<CostTable>) -> Arc<Self> {
        Arc::new(Self {
            table,
            state: Mutex::new(Observed::Nothing),
        })
    }

    /// Reads a whole (non-streamed) answer. One that is not JSON has no cost to read.
    pub fn answer(&self, bytes: &[u8]) {
        let cost = serde_json::from_slice::<Value>(bytes)
            .ok()
            .and_then(|v| self.table.of_answer(&v));
        *self.lock() = Observed::Answer(cost);
    }

    /// Reads one streamed event's data (JSON; anything else carries nothing to read).
    pub fn event(&self, data: &[u8]) {
        let Ok(event) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        let mut state = self.lock();
        if !matches!(*state, Observed::Stream(_)) {
            *state = Observed::Stream(self.table.meter());
        }
        if let Observed::Stream(meter) = &mut *state {
            meter.observe(&event);
        }
    }

    /// The cost of what was read so far (`None`: unknown).
    pub fn cost(&self) -> Option<Dollars> {
        match &*self.lock() {
            Observed::Nothing => None,
            Observed::Answer(cost) => *cost,
            Observed::Stream(meter) => meter.total(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Observed> {
        // Nothing panics while holding it; a poisoned lock still holds consistent figures.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
