//! The log output: one line per event on stderr, as JSON (`--log-format json`) or as text.
//!
//! Text lines read as `tracing-subscriber`'s compact format does (`2026-12-01T00:59:51.480378Z
//! INFO switchyard::request: request method=GET status=200 outcome="complete"`). For a person
//! at a terminal that formatter writes them, in colour. For files and collectors,
//! [`PlainLine`] writes the same text at a fraction of the cost: every request writes one
//! line of some twenty fields, and the general formatter spent about a tenth of a request's
//! instructions on it (field values through `Debug`, the timestamp through `core::fmt`).

use std::cell::RefCell;
use std::fmt::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// Installs the global subscriber: the level from `RUST_LOG` (default `info`), lines on stderr.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text if ansi => builder.compact().init(),
        LogFormat::Text => builder.event_format(PlainLine).init(),
    }
}

/// Writes an event as one line of plain text (no colour codes), in the compact layout.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlainLine;

impl<S, N> FormatEvent<S, N> for PlainLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write_timestamp(&mut writer, SystemTime::now())?;
        // An event from the `log` crate carries its real target and level in `log.*` fields.
        let normalized = event.normalized_metadata();
        let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let level = metadata.level().as_str();
        // Levels are right-aligned in five columns, as the compact format has them.
        writer.write_str(&"     "[level.len()..])?;
        writer.write_str(level)?;
        writer.write_char(' ')?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                writer.write_str(span.name())?;
                writer.write_char(':')?;
            }
            writer.write_char(' ')?;
        }
        writer.write_str(metadata.target())?;
        writer.write_str(": ")?;
        let mut fields = PlainFields {
            writer: &mut writer,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// Writes each field as `name=value`, values as the compact format shows them: the message
/// bare, strings quoted and escaped as `Debug` does, numbers plain, the rest through `Debug`.
struct PlainFields<'a, 'w> {
    writer: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl PlainFields<'_, '_> {
    fn name(&mut self, field: &Field) -> fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.writer.write_char(' ')?;
        }
        if field.name() != "message" {
            let name = field.name();
            // `r#type` names the field `type` (a prefix check, not a substring search).
            self.writer
                .write_str(name.strip_prefix("r#").unwrap_or(name))?;
            self.writer.write_char('=')?;
        }
        Ok(())
    }

    fn write(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        // A `log` record's metadata fields: already written as the target and level.
        if field.name().starts_with("log.") {
            return;
        }
        if self.result.is_ok() {
            self.result = self.name(field).and_then(|()| value(self.writer));
        }
    }
}

impl Visit for PlainFields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let message = field.name() == "message";
        self.write(field, |w| {
            if message {
                Escaping(w).write_str(value)
            } else if value
                .bytes()
                .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
            {
                // Printable ASCII with nothing to escape: what `Debug` would write, quoted.
                w.write_char('"')?;
                w.write_str(value)?;
                w.write_char('"')
            } else {
                write!(w, "{value:?}")
            }
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.write(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.write(field, |w| {
            // In this range `Debug` writes the shortest round-trip decimal, as ryu does, and
            // neither switches to an exponent; outside it, `Debug` itself.
            if (1e-3..1e15).contains(&value.abs()) {
                w.write_str(ryu::Buffer::new().format_finite(value))
            } else {
                write!(w, "{value:?}")
            }
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.write(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.write(field, |w| write!(Escaping(w), "{value:?}"));
        } else {
            self.write(field, |w| write!(w, "{value:?}"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let name = field.name();
        self.write(field, |w| {
            write!(Escaping(w), "{value}")?;
            let Some(mut source) = value.source() else {
                return Ok(());
            };
            write!(w, " {name}.sources=[")?;
            loop {
                write!(Escaping(w), "{source}")?;
                match source.source() {
                    Some(next) => {
                        w.write_str(", ")?;
                        source = next;
                    }
                    None => return w.write_char(']'),
                }
            }
        });
    }
}

/// Writes text with the terminal control characters a message could carry (ESC, BEL, BS, FF,
/// DEL and the C1 controls) spelled out, so that text from a client cannot drive the terminal
/// of whoever reads the log. The same characters the compact format escapes, the same way.
struct Escaping<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaping<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let needs = |c: char| {
            matches!(
                c,
                '\x1b' | '\x07' | '\x08' | '\x0c' | '\x7f' | '\u{80}'..='\u{9f}'
            )
        };
        if !text.contains(needs) {
            return self.0.write_str(text);
        }
        for c in text.chars() {
            match c {
                '\x1b' => self.0.write_str("\\x1b")?,
                '\x07' => self.0.write_str("\\x07")?,
                '\x08' => self.0.write_str("\\x08")?,
                '\x0c' => self.0.write_str("\\x0c")?,
                '\x7f' => self.0.write_str("\\x7f")?,
                '\u{80}'..='\u{9f}' => write!(self.0, "\\u{{{:x}}}", c as u32)?,
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// The civil date and time of the last second a timestamp was written in, per thread: most
/// lines share their second with the one before.
struct SecondText {
    unix_second: u64,
    text: [u8; 19],
}

thread_local! {
    static LAST_SECOND: RefCell<Option<SecondText>> = const { RefCell::new(None) };
}

/// Writes `time` as RFC 3339 in UTC with microseconds (`2026-12-01T00:59:51.480378Z`).
fn write_timestamp(w: &mut impl Write, time: SystemTime) -> fmt::Result {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let second = since_epoch.as_secs();
    LAST_SECOND.with(|cell| {
        let mut last = cell.borrow_mut();
        let text = match &*last {
            Some(cached) if cached.unix_second == second => cached.text,
            _ => {
                let text = civil_text(second);
                *last = Some(SecondText {
                    unix_second: second,
                    text,
                });
                text
            }
        };
        w.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    })?;
    let micros = since_epoch.subsec_micros();
    let mut digits = *b".000000Z ";
    let mut rest = micros;
    for slot in digits[1..7].iter_mut().rev() {
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    w.write_str(std::str::from_utf8(&digits).map_err(|_| fmt::Error)?)
}

/// `YYYY-MM-DDTHH:MM:SS` for a second since the Unix epoch (UTC, proleptic Gregorian).
fn civil_text(unix_second: u64) -> [u8; 19] {
    let days = (unix_second / 86_400) as i64;
    let in_day = unix_second % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"0000-00-00T00:00:00";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year as u64);
    put(5, 2, u64::from(month));
    put(8, 2, u64::from(day));
    put(11, 2, in_day / 3600);
    put(14, 2, in_day % 3600 / 60);
    put(17, 2, in_day % 60);
    out
}

/// The Gregorian date of a day number counted from 1970-01-01 (Howard Hinnant's published
/// `civil_from_days` algorithm: eras of 400 years, years starting in March).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A warning that a flood of events would repeat (a full queue, an unreachable store): logged
/// at most once per second, however often it happens.
#[derive(Debug)]
pub struct WarnThrottle {
    last: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl WarnThrottle {
    /// A throttle that has not warned yet (usable in a `static`).
    pub const fn new() -> Self {
        Self {
            last: std::sync::Mutex::new(None),
        }
    }

    /// Whether the warning is due now; if so, the next one is due in a second.
    pub fn due(&self) -> bool {
        let now = tokio::time::Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| now.duration_since(t) < std::time::Duration::from_secs(1)) {
            return false;
        }
        *last = Some(now);
        true
    }
}

impl Default for WarnThrottle {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_in_utc_with_microseconds() {
        let cases = [
            (0, 0, "1970-01-01T00:00:00.000000Z "),
            (951_782_400, 5, "2000-02-29T00:00:00.000005Z "),
            (1_796_086_791, 480_378, "2026-12-01T00:59:51.480378Z "),
            (4_107_542_399, 999_999, "2100-02-28T23:59:59.999999Z "),
        ];
        for (seconds, micros, expected) in cases {
            let time = UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_micros(micros);
            let mut text = String::new();
            write_timestamp(&mut text, time).unwrap();
            assert_eq!(text, expected);
        }
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[derive(Debug)]
    struct Failure(&'static str, Option<Box<Failure>>);

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Failure {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    /// What `emit` made `format` write, past the timestamp.
    fn written(plain: bool, emit: impl FnOnce()) -> String {
        let captured = Captured::default();
        let writer = {
            let captured = captured.clone();
            move || captured.clone()
        };
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(writer)
            .with_max_level(tracing::Level::INFO);
        if plain {
            tracing::subscriber::with_default(builder.event_format(PlainLine).finish(), emit);
        } else {
            tracing::subscriber::with_default(builder.compact().finish(), emit);
        }
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        text.split_once("Z ").unwrap().1.to_owned()
    }

    #[test]
    fn records_from_the_log_crate_read_with_their_own_target() {
        let record = || {
            tracing_log::format_trace(
                &log::Record::builder()
                    .level(log::Level::Warn)
                    .target("tokio_postgres::connection")
                    .module_path(Some("tokio_postgres::connection"))
                    .file(Some("src/connection.rs"))
                    .line(Some(7))
                    .args(format_args!("NOTICE: {}", "relation exists"))
                    .build(),
            )
            .unwrap()
        };
        let plain = written(true, record);
        assert_eq!(plain, written(false, record));
        assert_eq!(
            plain,
            " WARN tokio_postgres::connection: NOTICE: relation exists\n"
        );
    }

    /// The line `format` writes for one event with every kind of field.
    fn line(plain: bool) -> String {
        let failure = Failure(
            "outer \x1b",
            Some(Box::new(Failure(
                "middle",
                Some(Box::new(Failure("inner", None))),
            ))),
        );
        let emit = || {
            tracing::info!(
                target: "switchyard::request",
                method = %"POST",
                status = 200u16,
                latency_ms = 1.5f64,
                whole_ms = 2.0f64,
                tiny = 0.000_012_5f64,
                zero = 0.0f64,
                huge = 1.0e300f64,
                precise = 58.254_000_000_000_01f64,
                delta = -3i64,
                relayed = false,
                outcome = "complete",
                quoted = "say \"hi\"\n",
                unicode = "naïve",
                missing = None::<&str>,
                r#type = "chat",
                failure = &failure as &(dyn std::error::Error + 'static),
                "request \x1b[31mred\x07 \u{85}"
            )
        };
        written(plain, emit)
    }

    #[test]
    fn plain_lines_read_as_the_compact_format_writes_them() {
        assert_eq!(line(true), line(false));
        assert_eq!(
            line(true),
            " INFO switchyard::request: request \\x1b[31mred\\x07 \\u{85} method=POST status=200 latency_ms=1.5 \
             whole_ms=2.0 tiny=1.25e-5 zero=0.0 huge=1e300 precise=58.25400000000001 delta=-3 relayed=false outcome=\"complete\" \
             quoted=\"say \\\"hi\\\"\\n\" unicode=\"naïve\" type=\"chat\" \
             failure=outer \\x1b failure.sources=[middle, inner]\n"
        );
    }
}
