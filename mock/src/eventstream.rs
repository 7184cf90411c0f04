//! AWS's binary event-stream framing, written from the published layout (the mock's own code,
//! so a framing bug in the gateway's decoder is not mirrored here): a 12-byte prelude (total
//! length, header length, CRC32 of those 8 bytes), the headers, the payload, then the CRC32 of
//! everything before it. Headers here are all strings (type 7).

use bytes::{BufMut, Bytes, BytesMut};

/// One message with string `headers` and `payload`.
pub fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let mut encoded = BytesMut::new();
    for (name, value) in headers {
        let name_len = u8::try_from(name.len()).expect("a header name fits in 255 bytes");
        let value_len = u16::try_from(value.len()).expect("a header value fits in 64 KiB");
        encoded.put_u8(name_len);
        encoded.put_slice(name.as_bytes());
        encoded.put_u8(7);
        encoded.put_u16(value_len);
        encoded.put_slice(value.as_bytes());
    }
    let total = 12 + encoded.len() + payload.len() + 4;
    let mut message = BytesMut::with_capacity(total);
    message.put_u32(u32::try_from(total).expect("a message fits in 4 GiB"));
    message.put_u32(u32::try_from(encoded.len()).expect("headers fit in 4 GiB"));
    let prelude_crc = crc32fast::hash(&message);
    message.put_u32(prelude_crc);
    message.put_slice(&encoded);
    message.put_slice(payload);
    let crc = crc32fast::hash(&message);
    message.put_u32(crc);
    message.freeze()
}
