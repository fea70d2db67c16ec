//! Requests as pages see them (method, path, decoded query and form values), and responses with
//! the headers every answer carries: a strict Content-Security-Policy, `nosniff`, no framing,
//! no referrer, no caching.

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};

/// A response body: whole, or streamed (downloads).
pub type Body = BoxBody<Bytes, std::io::Error>;

/// The policy of every page: nothing but this server's style sheet and images, no script at
/// all, forms only to this server, never framed.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                            frame-ancestors 'none'; base-uri 'none'";

/// The policy of a file's bytes (downloads, image previews): a document that a browser renders
/// anyway (an HTML file opened from the downloads bar) runs in a sandbox, without script.
pub const FILE_CSP: &str = "default-src 'none'; img-src 'self'; style-src 'none'; sandbox";

/// Most bytes a form body may have.
pub const MAX_FORM: usize = 64 << 10;

/// A request, decoded.
pub struct Req {
    /// GET, POST, …
    pub method: Method,
    /// The path, without the query (percent-decoding is left to the routes, which are ASCII).
    pub path: String,
    /// Query pairs, decoded (`+` is a space).
    pub query: Vec<(String, String)>,
    /// Form pairs of a POST, decoded.
    pub form: Vec<(String, String)>,
}

impl Req {
    /// The first query value named `key`, if it is not empty.
    pub fn q(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, v)| k == key && !v.is_empty()).map(|(_, v)| v.as_str())
    }

    /// The first form value named `key`.
    pub fn f(&self, key: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// `a=1&b=x%20y` as pairs; a value that is not UTF-8 after decoding is dropped with its key
/// (every value the pages take is UTF-8: paths, IDs, patterns).
pub fn pairs(s: &[u8]) -> Vec<(String, String)> {
    s.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = match p.iter().position(|b| *b == b'=') {
                Some(i) => (&p[..i], &p[i + 1..]),
                None => (p, &b""[..]),
            };
            Some((decode(k)?, decode(v)?))
        })
        .take(256)
        .collect()
}

fn decode(s: &[u8]) -> Option<String> {
    let plus: Vec<u8> = s.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
    String::from_utf8(percent_encoding::percent_decode(&plus).collect()).ok()
}

/// A whole body.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// A response of `status` with `content_type` and a whole body.
pub fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// An HTML page.
pub fn html(status: StatusCode, body: String) -> Response<Body> {
    respond(status, "text/html; charset=utf-8", body)
}

/// `303 See Other` to a path of this server.
pub fn redirect(to: &str) -> Response<Body> {
    let mut r = respond(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The headers every response carries; a page's policy unless the route set another.
pub fn harden(h: &mut HeaderMap) {
    h.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(PAGE_CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // `same-origin`, not `no-referrer`: under `no-referrer` a browser sends `Origin: null` with a
    // form, which the CSRF check cannot tell from a foreign one; paths still never leave the site.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
}

/// The cookies of a request: `(name, value)`.
pub fn cookies(h: &HeaderMap) -> Vec<(String, String)> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_and_bad_utf8_is_dropped() {
        let p = pairs(b"path=%2Fa+b%2F%3Cx%3E&after=&x=%ff&k");
        assert_eq!(p, vec![("path".into(), "/a b/<x>".into()), ("after".into(), "".into()), ("k".into(), "".into())]);
    }

    #[test]
    fn cookies_split() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; arca_session=xyz"));
        assert_eq!(cookies(&h)[1], ("arca_session".to_string(), "xyz".to_string()));
    }
}
