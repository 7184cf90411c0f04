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

/// Turns arbitrary byte chunks into events; keeps partial lines between calls.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buffer: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
}

impl SseDecoder {
    /// Adds bytes from the wire.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete event, if one has arrived.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            let newline = self.buffer.iter().position(|&b| b == b'\n')?;
            let mut line: Vec<u8> = self.buffer.drain(..=newline).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    return Some(SseEvent {
                        event: self.event.take(),
                        data,
                    });
                }
                self.event = None;
                continue;
            }
            if line.starts_with(':') {
                continue; // a comment (keep-alive)
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f.to_owned(), v.strip_prefix(' ').unwrap_or(v).to_owned()),
                None => (line.into_owned(), String::new()),
            };
            match field.as_str() {
                "data" => match &mut self.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(&value);
                    }
                    None => self.data = Some(value),
                },
                "event" => self.event = Some(value),
                _ => {}
            }
        }
    }

    /// Whether bytes of an unfinished event are still buffered.
    pub fn has_partial(&self) -> bool {
        !self.buffer.is_empty() || self.data.is_some()
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
            while let Some(e) = d.next_event() {
                events.push(e);
            }
            d.push(&wire[split..]);
            while let Some(e) = d.next_event() {
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
}
