//! Provider URLs, built so that no part of them (a model id from a shorthand, a Vertex location,
//! a dynamic Azure endpoint) can move a call, and the key it carries, to another host.
//!
//! A base URL is parsed once into a [`BaseUrl`] (http or https, a host, no user info, query or
//! fragment). Variable parts go into a path only through [`encode_segment`], and every URL built
//! under a base is parsed back and must still name the base's scheme and host: text such as
//! `evil.example#` in a location can no longer end the host part.

use std::borrow::Cow;

use http::Uri;

/// An http(s) base URL: scheme, host (and port), and a path prefix without a trailing `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrl {
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    path: String,
}

impl BaseUrl {
    /// Parses `text`, refusing what a base URL must not have.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("`{text}` is not a usable base URL: {why}");
        if text.contains(['#', '?']) {
            return Err(bad("it may not have a query or a fragment"));
        }
        let uri: Uri = text
            .parse()
            .map_err(|_| bad("write it like `https://host:port/path`"))?;
        let scheme = uri
            .scheme()
            .filter(|s| matches!(s.as_str(), "http" | "https"))
            .cloned()
            .ok_or_else(|| bad("it must start with http:// or https://"))?;
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| bad("it names no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("it may not carry user information (`user@`)"));
        }
        if authority.host().is_empty() {
            return Err(bad("it names no host"));
        }
        Ok(Self {
            scheme,
            authority,
            path: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// The host the base names.
    pub fn host(&self) -> &str {
        self.authority.host()
    }

    /// `{base}/{path}` (and `?{query}`): `path` must be made of literal text and
    /// [`encode_segment`]ed parts. The result is checked to name the base's scheme and host.
    pub fn join(&self, path: &str, query: Option<&str>) -> Result<String, String> {
        let mut url = format!("{}://{}{}/{path}", self.scheme, self.authority, self.path);
        if let Some(q) = query {
            url.push('?');
            url.push_str(q);
        }
        let uri: Uri = url
            .parse()
            .map_err(|_| format!("`{url}` is not a valid URL"))?;
        if uri.scheme() != Some(&self.scheme) || uri.authority() != Some(&self.authority) {
            return Err(format!(
                "the URL built for `{}` would go to another host; refused",
                self.host()
            ));
        }
        Ok(url)
    }

    /// Checks that the base names `expected` as its host (the provider's own domain).
    pub fn expect_host(self, expected: &str) -> Result<Self, String> {
        if self.host().eq_ignore_ascii_case(expected) {
            Ok(self)
        } else {
            Err(format!(
                "the URL's host is `{}`, not the provider's `{expected}`",
                self.host()
            ))
        }
    }
}

impl std::fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.path)
    }
}

/// `segment` percent-encoded so it stays one path segment: everything but ASCII letters, digits
/// and `-._~:@` is escaped (so `/`, `?`, `#` and `%` cannot change the URL's shape).
pub fn encode_segment(segment: &str) -> Cow<'_, str> {
    let keep =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'@');
    if segment.bytes().all(keep) && segment != "." && segment != ".." {
        return Cow::Borrowed(segment);
    }
    let mut out = String::with_capacity(segment.len() * 3);
    for b in segment.bytes() {
        if keep(b) && b != b'.' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Cow::Owned(out)
}

/// Whether `s` is non-empty, at most `max` bytes, and made only of bytes `allowed` accepts.
pub fn is_token(s: &str, max: usize, allowed: impl Fn(u8) -> bool) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(allowed)
}

/// A cloud region or location: `[a-z0-9-]+` (AWS `eu-west-3`, GCP `europe-west4`, `global`).
pub fn is_region(s: &str) -> bool {
    is_token(s, 64, |b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_refuse_what_could_redirect() {
        assert_eq!(
            BaseUrl::parse("https://api.example.com/v1/")
                .unwrap()
                .to_string(),
            "https://api.example.com/v1"
        );
        for bad in [
            "https://evil.example#.googleapis.com/v1",
            "https://a.example/v1?x=1",
            "https://user@evil.example/v1",
            "ftp://a.example",
            "a.example/v1",
            "",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn segments_cannot_leave_their_place() {
        let base = BaseUrl::parse("https://h.example/v1").unwrap();
        for hostile in [
            "m#x",
            "m?key=1",
            "../../admin",
            "a/b",
            "..",
            "%2e%2e",
            "x@evil.example",
        ] {
            let url = base
                .join(
                    &format!("models/{}:generateContent", encode_segment(hostile)),
                    None,
                )
                .unwrap();
            let uri: Uri = url.parse().unwrap();
            assert_eq!(uri.host(), Some("h.example"), "{hostile}: {url}");
            assert!(uri.query().is_none(), "{hostile}: {url}");
            assert!(uri.path().starts_with("/v1/models/"), "{hostile}: {url}");
            assert_eq!(uri.path().matches('/').count(), 3, "{hostile}: {url}");
        }
        assert_eq!(encode_segment("gemini-2.5-flash"), "gemini-2.5-flash");
        assert_eq!(encode_segment("claude@2024"), "claude@2024");
    }

    #[test]
    fn hosts_are_checked() {
        let base = BaseUrl::parse("https://europe-west4-aiplatform.googleapis.com/v1").unwrap();
        assert!(
            base.clone()
                .expect_host("europe-west4-aiplatform.googleapis.com")
                .is_ok()
        );
        assert!(base.expect_host("evil.example").is_err());
        assert!(is_region("eu-west-3") && !is_region("evil.example#") && !is_region(""));
    }
}
