//! One signed HTTP request outside OpenDAL's object API, for the calls it does not make: creating
//! the bucket or container a new repository goes into (`arca init`, as restic does), and S3
//! Object Lock's bucket configuration and per-object retention ([`crate::backend::retention`]). Signed by
//! the same reqsign crates, with the same credential chain, as OpenDAL's own requests.

use crate::error::{Error, Result};
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;

/// Makes the bucket or container of a repository when it is missing; called by `init` only.
pub type MakeRoot = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<()>> + Send>> + Send + Sync>;

/// A request's answer: status and body (as text, for messages).
pub(crate) struct Answer {
    pub status: u16,
    pub body: String,
    /// The response's headers (retention dates, version IDs, the store's `Date`).
    pub headers: http::HeaderMap,
}

impl Answer {
    /// A header's value as text, if present and printable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The context every signer gets: files (`~/.aws/credentials`), HTTP (instance metadata,
/// STS) and the environment, as OpenDAL's services build it.
pub(crate) fn context(location: &str) -> Result<reqsign_core::Context> {
    let http = opendal::raw::HttpClient::new().map_err(|e| super::io_err(location, e))?;
    Ok(reqsign_core::Context::new()
        .with_file_read(reqsign_file_read_tokio::TokioFileRead)
        .with_http_send(http)
        .with_env(reqsign_core::OsEnv))
}

/// Send `method url` with `headers` and `body`, signed by `signer`.
pub(crate) async fn send<K: reqsign_core::SigningCredential>(
    signer: &reqsign_core::Signer<K>,
    location: &str,
    method: http::Method,
    url: &str,
    headers: &[(&'static str, &str)],
    body: Bytes,
) -> Result<Answer> {
    let failed = |what: String| Error::Io { path: location.into(), source: std::io::Error::other(what) };
    let mut req = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(()).map_err(|e| failed(format!("bad request to {url}: {e}")))?;
    let (mut parts, ()) = req.into_parts();
    signer.sign(&mut parts, None).await.map_err(|e| failed(format!("signing the request failed: {e}")))?;
    let req = http::Request::from_parts(parts, opendal::Buffer::from(body));
    let client = opendal::raw::HttpClient::new().map_err(|e| super::io_err(location, e))?;
    let resp = client.fetch(req).await.map_err(|e| super::io_err(location, e))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    // Only the start of the answer is kept (for its error code): a store may send any length.
    let mut body = resp.into_body();
    let mut kept = Vec::new();
    while kept.len() < ANSWER_MAX {
        match opendal::raw::oio::Read::read(&mut body).await {
            Ok(chunk) if !chunk.is_empty() => {
                let chunk = chunk.to_bytes();
                kept.extend_from_slice(&chunk[..chunk.len().min(ANSWER_MAX - kept.len())]);
            }
            _ => break,
        }
    }
    Ok(Answer { status, body: String::from_utf8_lossy(&kept).into_owned(), headers })
}

/// Most bytes of an answer's body kept.
const ANSWER_MAX: usize = 64 << 10;

/// The first `<Code>` of an S3 or Azure XML error body (`BucketAlreadyExists`, …), for messages.
pub(crate) fn error_code(body: &str) -> &str {
    body.split_once("<Code>").and_then(|(_, rest)| rest.split_once("</Code>")).map_or("", |(code, _)| code)
}
