//! AWS SageMaker endpoints: `POST {endpoint}/endpoints/{name}/invocations` (streaming:
//! `/invocations-response-stream`, whose event stream carries the container's own output in
//! `PayloadPart` messages), signed with SigV4 for the `sagemaker` service. The body is the
//! container's format: both `hosted_provider`s switchyard knows (`openai`, and `tgi` through
//! its OpenAI-compatible Messages API) take OpenAI chat requests, so the OpenAI adapter builds
//! and reads them.

use super::bedrock::{AwsAuth, AwsSigner};
use super::openai::{OpenAiAdapter, parse_completion};
use super::{CallContext, Edits, ProviderSpec, SseReader};
use crate::aws::uri_encode;
use crate::config::models::{AwsSagemakerProvider, SagemakerHostedProvider};
use crate::error::Error;
use crate::model_call::{ModelRequest, ProviderOutput};

/// Calls one SageMaker endpoint.
#[derive(Debug)]
pub struct SagemakerAdapter {
    format: OpenAiAdapter,
    /// `{endpoint}/endpoints/{name}`.
    endpoint_url: String,
    signer: AwsSigner,
}

impl SagemakerAdapter {
    /// `endpoint_url` defaults to `https://runtime.sagemaker.{region}.amazonaws.com`.
    pub fn new(
        p: &AwsSagemakerProvider,
        endpoint_url: Option<String>,
        region: String,
        auth: AwsAuth,
    ) -> Self {
        let base = endpoint_url
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
            signer: AwsSigner {
                service: "sagemaker",
                region,
                auth,
            },
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
        let body = self.format.request_body(request)?;
        let url = if request.stream {
            format!("{}/invocations-response-stream", self.endpoint_url)
        } else {
            format!("{}/invocations", self.endpoint_url)
        };
        let response = self
            .signer
            .post(&url, body, request.stream, provider, edits, cx)
            .await?;
        if request.stream {
            self.format
                .read_stream(
                    provider,
                    SseReader::in_event_stream(response.into_body()).tapped(cx),
                )
                .await
        } else {
            let bytes = cx.read_answer(provider, response.into_body()).await?;
            parse_completion(&bytes)
                .map(ProviderOutput::Complete)
                .map_err(|m| provider.failure(m))
        }
    }
}
