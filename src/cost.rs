//! What a model call costs, read from the provider's own answer.
//!
//! A provider's `cost` entries each name a JSON Pointer into its raw answer (a separate one for
//! streamed events where the shapes differ) and a price: dollars per unit or per million units.
//! The call's cost is the sum of value x price over the entries. A missing value counts as
//! zero, unless its entry is `required`, in which case the whole cost is unknown (`null`).
//!
//! Money is exact here: prices and values are decimals, [`Dollars`] is a fixed-point count of
//! 10^-18 dollars, and floating point appears only when a figure is written out as JSON (as
//! the nearest `f64` to the exact decimal, so `0.0001851` prints as `0.0001851`).
//!
//! In a stream, each entry's value is the last one any event carried: providers that report
//! usage more than once (Anthropic's `message_start` then `message_delta`, Gemini's running
//! `usageMetadata`) send running totals, never increments.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::config::common::CostEntry;

/// Fractional digits of [`Dollars`]: one unit is 10^-18 dollars.
const SCALE: u32 = 18;
const ONE_DOLLAR: i128 = 10i128.pow(SCALE);

/// An exact amount of money, positive or negative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dollars(i128);

impl Dollars {
    /// Nothing.
    pub const ZERO: Dollars = Dollars(0);

    /// An amount written as a decimal (`0.15`, `-2`, `1.5e-7`); `None` when it is not one or
    /// is too large (beyond about 10^20 dollars).
    pub fn parse(text: &str) -> Option<Dollars> {
        Decimal::parse(text)?.rescale(SCALE).map(Dollars)
    }

    /// The amount a JSON or TOML number means: its shortest decimal form, so `0.15` is exactly
    /// fifteen cents rather than the binary fraction nearest to it.
    pub fn from_f64(value: f64) -> Option<Dollars> {
        if !value.is_finite() {
            return None;
        }
        Dollars::parse(ryu::Buffer::new().format_finite(value))
    }

    /// The nearest `f64`, for JSON.
    pub fn to_f64(self) -> f64 {
        self.to_string().parse().unwrap_or(f64::NAN)
    }

    /// The amount in nano-dollars (the unit of cost rate-limit buckets), rounded up so that a
    /// reservation is never smaller than the cost; saturating.
    pub fn nanodollars_ceil(self) -> i64 {
        let per_nano = 10i128.pow(SCALE - 9);
        let nanos = self.0.div_euclid(per_nano) + i128::from(self.0.rem_euclid(per_nano) != 0);
        i64::try_from(nanos).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
    }

    /// A whole number of nano-dollars.
    pub fn from_nanodollars(nanos: i64) -> Dollars {
        Dollars(i128::from(nanos) * 10i128.pow(SCALE - 9))
    }

    /// The sum, unless it overflows.
    pub fn checked_add(self, other: Dollars) -> Option<Dollars> {
        self.0.checked_add(other.0).map(Dollars)
    }

    /// True below zero.
    pub fn is_negative(self) -> bool {
        self.0 < 0
    }
}

impl fmt::Display for Dollars {
    /// The exact decimal, without trailing zeros: `0.0001851`, `-3`, `0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        let whole = magnitude / ONE_DOLLAR as u128;
        let fraction = magnitude % ONE_DOLLAR as u128;
        if fraction == 0 {
            return write!(f, "{sign}{whole}");
        }
        let digits = format!("{fraction:018}");
        write!(f, "{sign}{whole}.{}", digits.trim_end_matches('0'))
    }
}

impl Serialize for Dollars {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.to_f64())
    }
}

impl<'de> Deserialize<'de> for Dollars {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(d)?;
        Dollars::from_f64(value)
            .ok_or_else(|| serde::de::Error::custom("a cost must be a finite number of dollars"))
    }
}

/// A decimal number: `mantissa` x 10^-`scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Decimal {
    mantissa: i128,
    scale: i32,
}

impl Decimal {
    /// Reads `[-]digits[.digits][e[+-]digits]`, as JSON and TOML write numbers.
    fn parse(text: &str) -> Option<Decimal> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (number, exponent) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], rest[at + 1..].parse::<i32>().ok()?),
            None => (rest, 0),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        let mut mantissa: i128 = 0;
        for c in whole.chars().chain(fraction.chars()) {
            let digit = c.to_digit(10)?;
            mantissa = mantissa.checked_mul(10)?.checked_add(i128::from(digit))?;
        }
        let scale = i32::try_from(fraction.len()).ok()?.checked_sub(exponent)?;
        Some(Decimal {
            mantissa: if negative { -mantissa } else { mantissa },
            scale,
        })
    }

    /// The mantissa at `scale` fractional digits (truncated toward zero when finer).
    fn rescale(self, scale: u32) -> Option<i128> {
        let shift = i64::from(scale) - i64::from(self.scale);
        let power = |n: i64| 10i128.checked_pow(u32::try_from(n).ok()?);
        if shift >= 0 {
            self.mantissa.checked_mul(power(shift)?)
        } else {
            // More digits than the scale keeps: a divisor beyond i128 means the value is 0.
            Some(power(-shift).map_or(0, |p| self.mantissa / p))
        }
    }

    /// A JSON number's exact decimal (serde_json writes floats in their shortest form).
    fn of_json(value: &Value) -> Option<Decimal> {
        match value {
            Value::Number(n) => Decimal::parse(&n.to_string()),
            _ => None,
        }
    }
}

/// One priced field of a provider's answer.
#[derive(Clone, Debug)]
struct PricedField {
    /// Where the value is in a whole (non-streamed) answer.
    answer_pointer: String,
    /// Where it is in a streamed event.
    event_pointer: String,
    /// Dollars per unit, or per million units.
    rate: Dollars,
    per_million: bool,
    required: bool,
}

impl PricedField {
    /// The value's cost; `None` on overflow (a value no real answer has).
    fn cost_of(&self, value: Decimal) -> Option<Dollars> {
        let divisor_digits = value.scale + if self.per_million { 6 } else { 0 };
        let product = Decimal {
            mantissa: value.mantissa.checked_mul(self.rate.0)?,
            scale: divisor_digits,
        };
        product.rescale(0).map(Dollars)
    }
}

/// A provider's prices: its `cost` (or an embedding provider's) entries, checked at load.
#[derive(Clone, Debug)]
pub struct CostTable {
    fields: Vec<PricedField>,
}

impl CostTable {
    /// The table of `entries`; `None` when there are none (the provider's cost is unknown).
    /// Entries were checked when the configuration loaded; one that is still unusable (no
    /// pointer, no rate) is left out.
    pub fn new(entries: &[CostEntry]) -> Option<Arc<CostTable>> {
        let fields: Vec<PricedField> = entries
            .iter()
            .filter_map(|e| {
                let (answer_pointer, event_pointer) =
                    match (&e.pointer, &e.pointer_nonstreaming, &e.pointer_streaming) {
                        (Some(p), _, _) => (p.clone(), p.clone()),
                        (None, Some(a), Some(s)) => (a.clone(), s.clone()),
                        _ => return None,
                    };
                let (rate, per_million) = match (e.cost_per_million, e.cost_per_unit) {
                    (Some(r), None) => (r, true),
                    (None, Some(r)) => (r, false),
                    _ => return None,
                };
                Some(PricedField {
                    answer_pointer,
                    event_pointer,
                    rate: Dollars::from_f64(rate)?,
                    per_million,
                    required: e.required,
                })
            })
            .collect();
        (!fields.is_empty()).then(|| Arc::new(CostTable { fields }))
    }

    /// The cost of a whole answer.
    pub fn of_answer(&self, answer: &Value) -> Option<Dollars> {
        self.total(|_, f| answer.pointer(&f.answer_pointer).and_then(Decimal::of_json))
    }

    /// A meter for a streamed answer.
    pub fn meter(self: &Arc<Self>) -> StreamMeter {
        StreamMeter {
            seen: vec![None; self.fields.len()],
            table: self.clone(),
        }
    }

    fn total(&self, value: impl Fn(usize, &PricedField) -> Option<Decimal>) -> Option<Dollars> {
        let mut sum = Dollars::ZERO;
        for (i, field) in self.fields.iter().enumerate() {
            match value(i, field) {
                Some(v) => sum = sum.checked_add(field.cost_of(v)?)?,
                None if field.required => return None,
                None => {}
            }
        }
        Some(sum)
    }

    /// What a call of `input_tokens` in and at most `output_tokens` out may cost, for a cost
    /// reservation; `None` when the prices do not say which fields are output tokens.
    ///
    /// The rule: an entry whose pointer names `prompt` or `input` prices input tokens, one that
    /// names `completion`, `output` or `candidates` prices output tokens; entries for cached
    /// tokens (`cache`), reasoning tokens (`reason`, a part of the output already counted) and
    /// anything else are left out, and so are negative prices (discounts). The most expensive
    /// input and output prices are used.
    pub fn estimate(&self, input_tokens: u64, output_tokens: u64) -> Option<Dollars> {
        let mut input_rate: Option<&PricedField> = None;
        let mut output_rate: Option<&PricedField> = None;
        let per_token = |f: &PricedField| {
            f.cost_of(Decimal {
                mantissa: 1_000_000,
                scale: 6,
            })
        };
        for field in &self.fields {
            if field.rate.is_negative() {
                continue;
            }
            let pointer = field.answer_pointer.to_ascii_lowercase();
            if pointer.contains("cache") || pointer.contains("reason") {
                continue;
            }
            let slot = if pointer.contains("prompt") || pointer.contains("input") {
                &mut input_rate
            } else if ["completion", "output", "candidates"]
                .iter()
                .any(|w| pointer.contains(w))
            {
                &mut output_rate
            } else {
                continue;
            };
            if slot.is_none_or(|best| per_token(field) > per_token(best)) {
                *slot = Some(field);
            }
        }
        let output = output_rate?;
        let tokens = |n: u64| Decimal {
            mantissa: i128::from(n),
            scale: 0,
        };
        let input_cost = match input_rate {
            Some(f) => f.cost_of(tokens(input_tokens))?,
            None => Dollars::ZERO,
        };
        input_cost.checked_add(output.cost_of(tokens(output_tokens))?)
    }
}

/// Keeps the last value each priced field had in a stream's events.
#[derive(Debug)]
pub struct StreamMeter {
    table: Arc<CostTable>,
    seen: Vec<Option<Decimal>>,
}

impl StreamMeter {
    /// Reads one event.
    pub fn observe(&mut self, event: &Value) {
        for (slot, field) in self.seen.iter_mut().zip(&self.table.fields) {
            if let Some(v) = event
                .pointer(&field.event_pointer)
                .and_then(Decimal::of_json)
            {
                *slot = Some(v);
            }
        }
    }

    /// The cost so far.
    pub fn total(&self) -> Option<Dollars> {
        self.table.total(|i, _| self.seen[i])
    }
}

/// Sums the costs of several model calls: unknown if any of them is.
pub fn sum(costs: impl IntoIterator<Item = Option<Dollars>>) -> Option<Dollars> {
    costs
        .into_iter()
        .try_fold(Dollars::ZERO, |total, c| total.checked_add(c?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(pointer: &str, per_million: Option<f64>, per_unit: Option<f64>) -> CostEntry {
        CostEntry {
            pointer: Some(pointer.into()),
            pointer_nonstreaming: None,
            pointer_streaming: None,
            cost_per_million: per_million,
            cost_per_unit: per_unit,
            required: false,
        }
    }

    #[test]
    fn decimals_are_exact_and_print_as_written() {
        for text in [
            "0.15",
            "-2",
            "0.0001851",
            "1234.5",
            "0",
            "0.000000000000000001",
        ] {
            assert_eq!(Dollars::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(Dollars::parse("1.5e-7").unwrap().to_string(), "0.00000015");
        assert_eq!(Dollars::parse("2E3").unwrap().to_string(), "2000");
        assert_eq!(Dollars::from_f64(0.1).unwrap().to_string(), "0.1");
        assert_eq!(Dollars::parse("0.0001851").unwrap().to_f64(), 0.0001851);
        for bad in ["", "-", ".", "1.2.3", "abc", "1e", "1e99999999999"] {
            assert_eq!(Dollars::parse(bad), None, "{bad}");
        }
        assert_eq!(Dollars::from_f64(f64::NAN), None);
        assert_eq!(Dollars::from_f64(1e300), None, "too large to hold");
        assert_eq!(
            Dollars::parse("0.0000000015").unwrap().nanodollars_ceil(),
            2
        );
        assert_eq!(
            Dollars::parse("-0.0000000015").unwrap().nanodollars_ceil(),
            -1
        );
        assert_eq!(
            Dollars::parse("3").unwrap().nanodollars_ceil(),
            3_000_000_000
        );
    }

    #[test]
    fn an_answer_is_priced_to_the_last_digit() {
        let table = CostTable::new(&[
            entry("/usage/prompt_tokens", Some(0.15), None),
            entry("/usage/completion_tokens", Some(0.6), None),
            entry(
                "/usage/prompt_tokens_details/cached_tokens",
                Some(-0.075),
                None,
            ),
            entry("/usage/web_searches", None, Some(0.01)),
        ])
        .unwrap();
        let answer = json!({"usage": {"prompt_tokens": 1234, "completion_tokens": 56,
            "prompt_tokens_details": {"cached_tokens": 1000}}});
        // 1234*0.15e-6 + 56*0.6e-6 - 1000*0.075e-6 = 0.0001851 + 0.0000336 - 0.000075
        assert_eq!(table.of_answer(&answer).unwrap().to_string(), "0.0001437");
        assert_eq!(table.of_answer(&json!({})).unwrap(), Dollars::ZERO);
    }

    #[test]
    fn a_missing_required_value_makes_the_cost_unknown() {
        let mut e = entry("/usage/output_tokens", Some(1.0), None);
        e.required = true;
        let table = CostTable::new(&[entry("/usage/input_tokens", Some(1.0), None), e]).unwrap();
        assert_eq!(
            table.of_answer(&json!({"usage": {"input_tokens": 5}})),
            None
        );
        assert_eq!(
            table.of_answer(&json!({"usage": {"output_tokens": "5"}})),
            None,
            "a value that is not a number is missing"
        );
    }

    #[test]
    fn a_stream_keeps_the_last_value_of_each_field() {
        let table = CostTable::new(&[
            CostEntry {
                pointer: None,
                pointer_nonstreaming: Some("/usage/input_tokens".into()),
                pointer_streaming: Some("/message/usage/input_tokens".into()),
                cost_per_million: Some(3.0),
                cost_per_unit: None,
                required: false,
            },
            entry("/usage/output_tokens", Some(15.0), None),
        ])
        .unwrap();
        let mut meter = table.meter();
        meter.observe(&json!({"type": "message_start", "message": {"usage": {"input_tokens": 10, "output_tokens": 1}}}));
        meter.observe(&json!({"type": "content_block_delta"}));
        meter.observe(&json!({"type": "message_delta", "usage": {"output_tokens": 20}}));
        assert_eq!(meter.total().unwrap().to_string(), "0.00033");
    }

    #[test]
    fn hostile_values_never_overflow_into_a_wrong_figure() {
        let table = CostTable::new(&[entry("/n", Some(1000.0), None)]).unwrap();
        assert_eq!(table.of_answer(&json!({"n": 1e300})), None);
        assert_eq!(table.of_answer(&json!({"n": u64::MAX})), None);
        assert_eq!(
            table
                .of_answer(&json!({"n": 1_000_000_000_000u64}))
                .unwrap()
                .to_string(),
            "1000000000"
        );
        let cheap = CostTable::new(&[entry("/n", Some(0.001), None)]).unwrap();
        assert_eq!(
            cheap
                .of_answer(&json!({"n": u64::MAX}))
                .unwrap()
                .to_string(),
            "18446744073.709551615"
        );
    }

    #[test]
    fn estimates_use_the_input_and_output_prices() {
        let table = CostTable::new(&[
            entry("/usage/prompt_tokens", Some(2.5), None),
            entry("/usage/completion_tokens", Some(10.0), None),
            entry(
                "/usage/prompt_tokens_details/cached_tokens",
                Some(-1.25),
                None,
            ),
        ])
        .unwrap();
        assert_eq!(table.estimate(1000, 100).unwrap().to_string(), "0.0035");
        let no_output = CostTable::new(&[entry("/usage/prompt_tokens", Some(2.5), None)]).unwrap();
        assert_eq!(no_output.estimate(1000, 100), None);
        assert_eq!(sum([Some(Dollars::parse("1").unwrap()), None]), None);
    }
}
