//! AWS SageMaker endpoints: `POST {endpoint}/endpoints/{name}/invocations` (streaming:
//! `/invocations-response-stream`, whose event stream carries the container's own output in
//! `PayloadPart` messages), signed with SigV4 for the `sagemaker` service. The body is the
//! container's format: both `hosted_provider`s switchyard knows (`openai`, and `tgi` through
//! its OpenAI-compatible Messages API) take OpenAI chat requests, so the OpenAI adapter builds
//! and reads them.

use bytes::Bytes;
use http::Request;
use http::header::{ACCEPT, CONTENT_TYPE};
use http_body_util::Full;

use super::bedrock::{AwsCredentials, signing_headers, uri_encode};
use super::openai::{OpenAiAdapter, parse_completion};
use super::{
    CallContext, Edits, ProviderSpec, SseReader, apply_body_edit, apply_header_edits,
    provider_error_message, read_limited, sensitive_header,
};
use crate::config::models::{AwsSagemakerProvider, SagemakerHostedProvider};
use crate::error::{Error, error_chain};
use crate::inference::types::{ModelRequest, ProviderOutput};

const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// Calls one SageMaker endpoint.
#[derive(Debug)]
pub struct SagemakerAdapter {
    format: OpenAiAdapter,
    /// `{endpoint}/endpoints/{name}`.
    endpoint_url: String,
    region: String,
    credentials: Option<AwsCredentials>,
}

impl SagemakerAdapter {
    /// `endpoint_url` defaults to `https://runtime.sagemaker.{region}.amazonaws.com`.
    pub fn new(
        p: &AwsSagemakerProvider,
        detected_region: Option<String>,
        credentials: Option<AwsCredentials>,
    ) -> Self {
        let region = p
            .region
            .clone()
            .or(detected_region)
            .unwrap_or_else(|| "us-east-1".into());
        let base = p
            .endpoint_url
            .clone()
            .unwrap_or_else(|| format!("https://runtime.sagemaker.{region}.amazonaws.com"));
        let model = match p.hosted_provider {
            SagemakerHostedProvider::Openai => p.model_name.as_str(),
            // TGI serves one model and expects this name in OpenAI-style requests.
            SagemakerHostedProvider::Tgi => "tgi",
        };
        Self {
            format: OpenAiAdapter::for_sagemaker(model),
            endpoint_url: format!(
                "{}/endpoints/{}",
                base.trim_end_matches('/'),
                uri_encode(&p.endpoint_name)
            ),
            region,
            credentials,
        }
    }

    /// Makes one call.
    pub async fn infer(
        &self,
        provider: &ProviderSpec,
        request: &ModelRequest,
        edits: &Edits<'_>,
        cx: &CallContext<'_>,
    ) -> Result<ProviderOutput, Error> {
        let credentials = self.credentials.as_ref().ok_or_else(|| {
            Error::ApiKeyMissing(switchyard_layers::credentials::MissingCredential {
                provider: provider.label().into(),
                reason:
                    "AWS credentials are missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                        .into(),
            })
        })?;
        let mut body = self.format.request_body(request)?;
        for edit in &edits.body {
            apply_body_edit(&mut body, edit);
        }
        let payload = body.to_string();
        let url = if request.stream {
            format!("{}/invocations-response-stream", self.endpoint_url)
        } else {
            format!("{}/invocations", self.endpoint_url)
        };
        url.parse::<http::Uri>()
            .map_err(|e| failure(provider, format!("`{url}` is not a URL: {e}")))?;
        let signature = signing_headers(
            "sagemaker",
            &url,
            &[("content-type", "application/json")],
            payload.as_bytes(),
            &self.region,
            credentials,
            std::time::SystemTime::now(),
        )
        .map_err(|m| failure(provider, m))?;
        let mut builder = Request::post(&url).header(CONTENT_TYPE, "application/json");
        for (name, value) in &signature {
            builder = builder.header(name.as_str(), sensitive_header(value)?);
        }
        if request.stream {
            builder = builder.header(ACCEPT, "application/vnd.amazon.eventstream");
        }
        let mut http_request = builder
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| failure(provider, format!("cannot build a request to `{url}`: {e}")))?;
        apply_header_edits(http_request.headers_mut(), &edits.headers)?;
        let response = cx.client.request(http_request).await.map_err(|e| {
            failure(
                provider,
                format!("could not reach `{url}`: {}", error_chain(&e)),
            )
        })?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = crate::error::retry_after(response.headers());
            let body = read_limited(response.into_body(), MAX_ERROR_BYTES)
                .await
                .unwrap_or_default();
            return Err(Error::ProviderHttp {
                provider_type: provider.provider_type.as_str(),
                provider: provider.name.to_string(),
                status: status.as_u16(),
                message: provider_error_message(&body),
                retry_after,
            });
        }
        if request.stream {
            self.format
                .read_stream(provider, SseReader::in_event_stream(response.into_body()))
                .await
        } else {
            let bytes = read_limited(response.into_body(), MAX_RESPONSE_BYTES)
                .await
                .map_err(|e| failure(provider, format!("the response broke off: {e}")))?;
            parse_completion(&bytes)
                .map(ProviderOutput::Complete)
                .map_err(|m| failure(provider, m))
        }
    }
}

fn failure(provider: &ProviderSpec, message: String) -> Error {
    Error::ProviderFailure {
        provider_type: provider.provider_type.as_str(),
        provider: provider.name.to_string(),
        message,
    }
}
