//! A SageMaker endpoint in front of an OpenAI-format container.

use super::*;
use crate::openai::complete;

/// A SageMaker endpoint in front of an OpenAI-format container.
pub(crate) async fn sagemaker(state: Arc<MockState>, body: Value, stream: bool) -> Response<Body> {
    use crate::eventstream::frame as encode_message;
    let exception = body["model"]
        .as_str()
        .is_some_and(|m| m.contains("stream-exception"));
    let container = complete(state, body).await;
    let status = container.status();
    if !status.is_success() {
        let text = container
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let message = format!(
            "Received server error ({}) from primary with message \"{}\".",
            status.as_u16(),
            String::from_utf8_lossy(&text)
        );
        let mut res = json_response(
            StatusCode::FAILED_DEPENDENCY,
            &json!({ "ErrorCode": "CLIENT_ERROR_FROM_MODEL", "Message": message, "OriginalStatusCode": status.as_u16() }),
        );
        res.headers_mut().insert(
            "x-amzn-errortype",
            http::HeaderValue::from_static("ModelError"),
        );
        return res;
    }
    if !stream {
        return container;
    }
    let payload_part = |bytes: &[u8]| {
        encode_message(
            &[
                (":event-type", "PayloadPart"),
                (":content-type", "application/octet-stream"),
                (":message-type", "event"),
            ],
            bytes,
        )
    };
    let parts = container
        .into_body()
        .into_data_stream()
        .map(move |piece| piece.map(|bytes| Frame::data(payload_part(&bytes))));
    // `stream-exception`: SageMaker itself fails the stream after two parts.
    let parts = if exception {
        let failure = encode_message(
            &[
                (":exception-type", "ModelStreamError"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            json!({ "Message": "The model took too long", "ErrorCode": "ModelInvocationTimeExceeded" })
                .to_string()
                .as_bytes(),
        );
        parts
            .take(2)
            .chain(futures_util::stream::once(async move {
                Ok(Frame::data(failure))
            }))
            .boxed()
    } else {
        parts.boxed()
    };
    streamed(parts, "application/vnd.amazon.eventstream")
}
