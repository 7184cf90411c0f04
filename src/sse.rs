//! Server-sent events: an incremental decoder for provider streams and the encoder for ours.

use bytes::Bytes;

/// One decoded event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines, joined by newlines.
    pub data: String,
}

/// The largest event (or line) a provider may send: chat chunks are a few hundred bytes, and a
/// generated image inlined in one chunk stays well under this.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Why a byte stream is not an acceptable SSE stream.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line or an event grew past the limit (a provider that never sends a newline).
    #[error("a stream event grew past {limit} bytes without ending")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
}

/// Turns arbitrary byte chunks into events; keeps partial lines between calls.
///
/// Bounded: no line and no event may exceed the limit, and each byte is scanned for a newline
/// once (a partial line is not rescanned when more of it arrives).
#[derive(Debug)]
pub struct SseDecoder {
    buffer: Vec<u8>,
    /// Where the unconsumed bytes start in `buffer`.
    start: usize,
    /// How far past `start` is known to hold no newline.
    scanned: usize,
    event: Option<String>,
    data: Option<String>,
    /// Lines that are no SSE field (kept, bounded, since the last event): a provider may end
    /// a stream with a bare JSON error instead of an event, and that is worth reporting.
    stray: Vec<u8>,
    limit: usize,
}

/// The most stray bytes kept for reporting.
const MAX_STRAY_BYTES: usize = 64 * 1024;

impl Default for SseDecoder {
    fn default() -> Self {
        Self::with_limit(MAX_EVENT_BYTES)
    }
}

impl SseDecoder {
    /// A decoder refusing lines and events longer than `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            buffer: Vec::new(),
            start: 0,
            scanned: 0,
            event: None,
            data: None,
            stray: Vec::new(),
            limit,
        }
    }

    /// Adds bytes from the wire.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            // Only the unfinished line is left; move it to the front before growing.
            self.buffer.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete event, if one has arrived; an error once a line or an event is over
    /// the limit (the stream cannot be trusted after that).
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, SseError> {
        loop {
            let Some(offset) = self.buffer[self.scanned..].iter().position(|&b| b == b'\n') else {
                self.scanned = self.buffer.len();
                if self.buffer.len() - self.start > self.limit {
                    return Err(SseError::TooLarge { limit: self.limit });
                }
                return Ok(None);
            };
            let newline = self.scanned + offset;
            if newline - self.start > self.limit {
                // A whole over-long line can arrive in one push, newline included.
                return Err(SseError::TooLarge { limit: self.limit });
            }
            let mut line = &self.buffer[self.start..newline];
            self.start = newline + 1;
            self.scanned = self.start;
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            if line.is_empty() {
                self.stray.clear();
                if let Some(data) = self.data.take() {
                    return Ok(Some(SseEvent {
                        event: self.event.take(),
                        data,
                    }));
                }
                self.event = None;
                continue;
            }
            if line.starts_with(b":") {
                continue; // a comment (keep-alive)
            }
            let (field, value) = match line.iter().position(|&b| b == b':') {
                Some(colon) => {
                    let value = &line[colon + 1..];
                    (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
                }
                None => (line, &b""[..]),
            };
            let value = String::from_utf8_lossy(value);
            match field {
                b"data" => match &mut self.data {
                    Some(d) => {
                        if d.len() + 1 + value.len() > self.limit {
                            return Err(SseError::TooLarge { limit: self.limit });
                        }
                        d.push('\n');
                        d.push_str(&value);
                    }
                    None => self.data = Some(value.into_owned()),
                },
                b"event" => self.event = Some(value.into_owned()),
                b"id" | b"retry" => {}
                _ => {
                    if self.stray.len() + line.len() < MAX_STRAY_BYTES {
                        self.stray.extend_from_slice(line);
                        self.stray.push(b'\n');
                    }
                }
            }
        }
    }

    /// Whether bytes of an unfinished event are still buffered.
    pub fn has_partial(&self) -> bool {
        self.buffer.len() > self.start || self.data.is_some() || !self.stray.is_empty()
    }

    /// What a body that ended mid-event left: the lines since the last event that were no SSE
    /// field, then the bytes after the last complete line.
    pub fn leftover(&self) -> Vec<u8> {
        let mut out = self.stray.clone();
        out.extend_from_slice(&self.buffer[self.start..]);
        out
    }
}

/// Encodes one `data:` event.
pub fn data_event(json: &str) -> Bytes {
    let mut out = String::with_capacity(json.len() + 8);
    out.push_str("data: ");
    out.push_str(json);
    out.push_str("\n\n");
    Bytes::from(out)
}

/// The stream terminator both APIs send last.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_events_split_anywhere() {
        let wire = b"data: {\"a\":1}\r\n\r\n: keep-alive\n\nevent: x\ndata: one\ndata: two\n\ndata: [DONE]\n\n";
        for split in 0..wire.len() {
            let mut d = SseDecoder::default();
            d.push(&wire[..split]);
            let mut events = Vec::new();
            while let Some(e) = d.next_event().unwrap() {
                events.push(e);
            }
            d.push(&wire[split..]);
            while let Some(e) = d.next_event().unwrap() {
                events.push(e);
            }
            assert_eq!(events.len(), 3, "split at {split}");
            assert_eq!(events[0].data, "{\"a\":1}");
            assert_eq!(events[1].event.as_deref(), Some("x"));
            assert_eq!(events[1].data, "one\ntwo");
            assert_eq!(events[2].data, "[DONE]");
            assert!(!d.has_partial());
        }
    }

    #[test]
    fn a_line_that_never_ends_is_refused_at_the_limit() {
        let mut d = SseDecoder::with_limit(1000);
        d.push(b"data: ");
        for _ in 0..9 {
            d.push(&[b'x'; 100]);
            assert_eq!(d.next_event(), Ok(None));
        }
        d.push(&[b'x'; 100]);
        assert_eq!(d.next_event(), Err(SseError::TooLarge { limit: 1000 }));
    }

    #[test]
    fn an_event_of_many_lines_is_bounded_too() {
        let mut d = SseDecoder::with_limit(100);
        for _ in 0..20 {
            d.push(b"data: 0123456789\n");
        }
        assert_eq!(d.next_event(), Err(SseError::TooLarge { limit: 100 }));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let mut d = SseDecoder::default();
        d.push(b"data: \xff\xfe ok\n\n");
        let e = d.next_event().unwrap().unwrap();
        assert!(e.data.ends_with(" ok"), "{:?}", e.data);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Decodes `chunks` in order; the events, or the first error.
    fn decode(chunks: &[Vec<u8>], limit: usize) -> Result<Vec<SseEvent>, SseError> {
        let mut decoder = SseDecoder::with_limit(limit);
        let mut events = Vec::new();
        for chunk in chunks {
            decoder.push(chunk);
            while let Some(event) = decoder.next_event()? {
                events.push(event);
            }
            // Bounded: what stays buffered is one unfinished line within the limit.
            assert!(decoder.buffer.len() - decoder.start <= limit);
        }
        Ok(events)
    }

    /// Bytes that look like SSE often enough to reach every branch.
    fn wire() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![
                Just(b"data: ".to_vec()),
                Just(b"event: x\n".to_vec()),
                Just(b"\n".to_vec()),
                Just(b"\r\n".to_vec()),
                Just(b": ping\n".to_vec()),
                Just(b"data:{\"a\":1}\n\n".to_vec()),
                prop::collection::vec(any::<u8>(), 0..40),
            ],
            0..40,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn no_panic_and_every_event_within_the_limit(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20),
            limit in 1usize..256,
        ) {
            if let Ok(events) = decode(&chunks, limit) {
                for e in events {
                    prop_assert!(e.data.len() <= limit);
                }
            }
        }

        #[test]
        fn how_the_bytes_are_split_changes_nothing(
            bytes in wire(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let whole = decode(std::slice::from_ref(&bytes), 1 << 20);
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut pieces = Vec::new();
            let mut from = 0;
            for p in points {
                pieces.push(bytes[from..p].to_vec());
                from = p;
            }
            pieces.push(bytes[from..].to_vec());
            prop_assert_eq!(whole, decode(&pieces, 1 << 20));
        }
    }
}
