//! `gateway.fetch_and_encode_input_files_before_inference = true`: input files given by URL are
//! fetched by the gateway before the inference and sent to the model inline (base64), so the
//! provider and the stored inference see the same bytes. (Off, the default since TensorZero
//! 2025.10: URLs go to providers as they are.)
//!
//! The URL is the client's, so the fetch is bounded like everything from outside: http(s) only,
//! no redirects, a time limit, at most the request body limit in bytes, and never to a
//! link-local, unspecified, multicast or broadcast address (a cloud's instance-metadata service
//! lives at 169.254.169.254). Egress beyond that is the network's to restrict.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use http_body_util::{BodyExt, Full, Limited};

use super::input::{Input, InputBlock};
use crate::error::Error;
use crate::http_client::HttpClient;
use crate::model_call::{ContentBlock, FileInput};

/// How long one file may take to arrive.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Fetches the input's URL files.
#[derive(Clone, Debug)]
pub struct UrlFiles {
    client: HttpClient,
    /// The largest file, in bytes.
    max_bytes: usize,
}

impl UrlFiles {
    /// Fetching with `client`, files of at most `max_bytes`.
    pub fn new(client: HttpClient, max_bytes: usize) -> Self {
        Self { client, max_bytes }
    }

    /// Replaces every URL file in `input` by its bytes, inline. A file that cannot be fetched
    /// fails the request (400, naming the URL and why): the client sent it.
    pub async fn inline(&self, input: &mut Input) -> Result<(), Error> {
        for message in &mut input.messages {
            for block in &mut message.content {
                if let InputBlock::Other(ContentBlock::File(file)) = block
                    && let FileInput::Url { url, mime_type } = file
                {
                    let (mime_type, data) =
                        self.fetch(url, mime_type.as_deref()).await.map_err(|why| {
                            Error::InvalidRequest(format!(
                                "the input file {url} could not be fetched (`gateway.fetch_and_encode_input_files_before_inference` is on): {why}"
                            ))
                        })?;
                    *file = FileInput::Base64 { mime_type, data };
                }
            }
        }
        Ok(())
    }

    /// The file at `url`: its MIME type (the client's, else the answer's) and its bytes in
    /// base64.
    async fn fetch(&self, url: &str, mime_type: Option<&str>) -> Result<(String, String), String> {
        let uri: http::Uri = url.parse().map_err(|_| "not a URL".to_owned())?;
        let port = match uri.scheme_str() {
            Some("https") => 443,
            Some("http") => 80,
            _ => return Err("only http and https URLs are fetched".into()),
        };
        let host = uri.host().ok_or("the URL has no host")?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(port);
        let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| format!("{host} does not resolve: {e}"))?
                .map(|a| a.ip())
                .collect(),
        };
        if let Some(ip) = addresses.iter().find(|ip| forbidden(**ip)) {
            return Err(format!(
                "{host} is {ip}, an address the gateway does not fetch from (link-local, unspecified, multicast or broadcast)"
            ));
        }
        let request = http::Request::get(uri)
            .body(Full::default())
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(FETCH_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| "no answer within 10 s".to_owned())?
            .map_err(|e| format!("the request failed: {}", crate::error::error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!(
                "it answered {status}{}",
                if status.is_redirection() {
                    " (redirects are not followed)"
                } else {
                    ""
                }
            ));
        }
        let answered_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
            .filter(|v| v.contains('/'));
        let body = tokio::time::timeout(
            FETCH_TIMEOUT,
            Limited::new(response.into_body(), self.max_bytes).collect(),
        )
        .await
        .map_err(|_| "the file did not arrive within 10 s".to_owned())?
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                format!(
                    "it is larger than {} bytes (`gateway.limits.max_request_body_bytes`)",
                    self.max_bytes
                )
            } else {
                format!("it broke off: {e}")
            }
        })?
        .to_bytes();
        let mime_type = mime_type
            .map(str::to_owned)
            .or(answered_type)
            .ok_or("its MIME type is unknown: send `mime_type` with the file")?;
        Ok((
            mime_type,
            base64::engine::general_purpose::STANDARD.encode(body),
        ))
    }
}

/// Addresses a client's URL must not make the gateway fetch from.
fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_link_local() || v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| forbidden(IpAddr::V4(v4)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_unroutable_addresses_are_refused() {
        for ip in [
            "169.254.169.254",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "fe80::1",
            "::",
            "::ffff:169.254.169.254",
        ] {
            assert!(forbidden(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["127.0.0.1", "10.1.2.3", "93.184.216.34", "2001:db8::1"] {
            assert!(!forbidden(ip.parse().unwrap()), "{ip}");
        }
    }
}
