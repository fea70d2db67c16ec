//! `s3:` — S3-compatible object storage (AWS S3, MinIO, Garage, Ceph RGW, Backblaze B2,
//! Wasabi, Cloudflare R2) through OpenDAL's S3 service. Listing is strongly consistent on the
//! stores named above (AWS since 2020); a PUT is atomic ([`Publish::Put`]).

use super::remote::signed::{self, MakeRoot};
use super::remote::{Publish, Service};
use super::retention::{Mode, ObjectState, Policy};
use crate::error::{Error, Result};
use bytes::Bytes;
use std::time::SystemTime;

/// A parsed `s3:` repository location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    /// `https://host:port` (or `http://` for a local test server).
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// The prefix inside the bucket, without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl S3Location {
    /// Parse `s3:https://host[:port]/bucket[/prefix]` (restic's form); `s3:host/bucket` means
    /// `https://host/bucket`.
    pub fn parse(s: &str) -> Result<S3Location> {
        let rest = s.strip_prefix("s3:").ok_or_else(|| bad(s, "does not start with s3:"))?;
        let (scheme, rest) = match rest.split_once("://") {
            Some((sc @ ("http" | "https"), r)) => (sc, r),
            Some(_) => return Err(bad(s, "the scheme must be http or https")),
            None => ("https", rest),
        };
        let mut parts = rest.splitn(3, '/');
        let host = parts.next().filter(|h| !h.is_empty()).ok_or_else(|| bad(s, "no host"))?;
        let bucket = parts.next().filter(|b| !b.is_empty()).ok_or_else(|| bad(s, "no bucket"))?;
        let prefix = parts.next().unwrap_or("").trim_matches('/').to_string();
        Ok(S3Location { endpoint: format!("{scheme}://{host}"), bucket: bucket.into(), prefix })
    }
}

fn bad(s: &str, why: &str) -> Error {
    Error::InvalidArgument(format!("{s}: not an S3 location ({why}); use s3:https://host:port/bucket/prefix"))
}

/// The service for `loc`. Credentials and region come from the usual AWS environment variables
/// and files (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
/// `~/.aws/credentials`); the region defaults to `us-east-1`, which S3-compatible servers
/// accept.
pub fn service(loc: &S3Location) -> Result<Service> {
    let region = std::env::var("AWS_REGION").or_else(|_| std::env::var("AWS_DEFAULT_REGION"));
    let region = region.as_deref().unwrap_or("us-east-1").to_string();
    let builder = opendal::services::S3::default()
        .endpoint(&loc.endpoint)
        .bucket(&loc.bucket)
        .root(&format!("/{}", loc.prefix))
        .region(&region)
        .checksum_algorithm("md5");
    let location = format!("s3:{}/{}/{}", loc.endpoint, loc.bucket, loc.prefix).trim_end_matches('/').to_string();
    let op = opendal::Operator::new(builder).map_err(|e| super::remote::io_err(&location, e))?.finish();
    let make_root = make_bucket(loc.clone(), region.clone(), location.clone());
    let object_lock = Some(std::sync::Arc::new(S3ObjectLock::new(loc.clone(), &region, &location)?));
    Ok(Service {
        op,
        location,
        publish: Publish::Put,
        guard: None,
        make_root: Some(make_root),
        range_reader: None,
        object_lock,
    })
}

/// `init` on a bucket that does not exist creates it (in the region of `AWS_REGION`), as restic
/// does; a bucket that exists, or whose existence the credentials may not ask about, is left
/// to the requests that follow.
fn make_bucket(loc: S3Location, region: String, location: String) -> MakeRoot {
    Box::new(move || {
        let (loc, region, location) = (loc.clone(), region.clone(), location.clone());
        Box::pin(async move {
            ensure_bucket(&signer(&location, &region)?, &loc, &region, &location, false).await.map(|_| ())
        })
    })
}

type S3Signer = reqsign_core::Signer<reqsign_aws_v4::Credential>;

/// A signer with the credential chain OpenDAL's S3 service uses.
fn signer(location: &str, region: &str) -> Result<S3Signer> {
    Ok(reqsign_core::Signer::new(
        signed::context(location)?,
        reqsign_aws_v4::DefaultCredentialProvider::new(),
        reqsign_aws_v4::RequestSigner::new("s3", region),
    ))
}

/// Bodies are not hashed into the signature (as OpenDAL's own requests).
const UNSIGNED: (&str, &str) = ("x-amz-content-sha256", "UNSIGNED-PAYLOAD");

/// Create the bucket if it does not exist (then `true`); `object_lock`: with Object Lock
/// enabled (which S3 turns on for new buckets, with versioning).
async fn ensure_bucket(
    signer: &S3Signer,
    loc: &S3Location,
    region: &str,
    location: &str,
    object_lock: bool,
) -> Result<bool> {
    // Path-style, as the object requests are.
    let url = format!("{}/{}", loc.endpoint, loc.bucket);
    let head = signed::send(signer, location, http::Method::HEAD, &url, &[UNSIGNED], Bytes::new()).await?;
    if head.status != 404 {
        return Ok(false);
    }
    let mut headers = vec![UNSIGNED];
    if object_lock {
        headers.push(("x-amz-bucket-object-lock-enabled", "true"));
    }
    // Outside us-east-1, AWS wants the region named in the body.
    let body = match region {
        "us-east-1" => Bytes::new(),
        r => Bytes::from(format!(
            "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <LocationConstraint>{r}</LocationConstraint></CreateBucketConfiguration>"
        )),
    };
    let made = signed::send(signer, location, http::Method::PUT, &url, &headers, body).await?;
    match made.status {
        200..=299 => Ok(true),
        // Made meanwhile by someone else with these credentials: what was wanted.
        409 if signed::error_code(&made.body) == "BucketAlreadyOwnedByYou" => Ok(false),
        status => Err(Error::Io {
            path: location.into(),
            source: std::io::Error::other(format!(
                "the bucket {} does not exist and creating it failed (HTTP {status} {}): create it with \
                 the storage's own tools, or use credentials that may",
                loc.bucket,
                signed::error_code(&made.body)
            )),
        }),
    }
}

/// S3 Object Lock of one repository's bucket ([`crate::backend::retention`]): bucket
/// configuration and per-object retention, by signed requests of their own (OpenDAL makes none
/// of them). The remote backend runs them on its runtime.
pub struct S3ObjectLock {
    loc: S3Location,
    region: String,
    location: String,
    signer: S3Signer,
}

/// S3's XML namespace.
const XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

impl S3ObjectLock {
    fn new(loc: S3Location, region: &str, location: &str) -> Result<S3ObjectLock> {
        let signer = signer(location, region)?;
        Ok(S3ObjectLock { loc, region: region.into(), location: location.into(), signer })
    }

    fn bucket_url(&self, query: &str) -> String {
        format!("{}/{}?{query}", self.loc.endpoint, self.loc.bucket)
    }

    /// The URL of object `key` (relative to the repository's prefix), with `query`.
    fn object_url(&self, key: &str, query: &str) -> String {
        let full = if self.loc.prefix.is_empty() { key.to_string() } else { format!("{}/{key}", self.loc.prefix) };
        let q = if query.is_empty() { String::new() } else { format!("?{query}") };
        format!("{}/{}/{}{q}", self.loc.endpoint, self.loc.bucket, encode(&full, false))
    }

    async fn send(
        &self,
        method: http::Method,
        url: &str,
        extra: &[(&'static str, &str)],
        body: Bytes,
    ) -> Result<signed::Answer> {
        let md5 = opendal::raw::format_content_md5(&body);
        let mut headers = vec![UNSIGNED];
        if !body.is_empty() {
            // S3 wants the body's MD5 on Object Lock configuration and retention requests.
            headers.push(("content-md5", md5.as_str()));
        }
        headers.extend_from_slice(extra);
        // Retried like OpenDAL's own requests (prune and check send one per file): a dropped
        // connection, throttling or a 5xx is tried again, back-off doubling from 250 ms.
        let mut delay = std::time::Duration::from_millis(250);
        for _ in 1..super::remote::RETRIES {
            match signed::send(&self.signer, &self.location, method.clone(), url, &headers, body.clone()).await {
                // 501 (an S3 server without Object Lock) is an answer, not a failure.
                Ok(a) if !matches!(a.status, 429 | 500 | 502 | 503 | 504) => return Ok(a),
                _ => tokio::time::sleep(delay).await,
            }
            delay = (delay * 2).min(std::time::Duration::from_secs(8));
        }
        signed::send(&self.signer, &self.location, method, url, &headers, body).await
    }

    /// The error for an answer that is not a success: "not found" and "access denied" stay
    /// recognisable (a retained version is refused with 403).
    fn refused(&self, what: &str, a: &signed::Answer) -> Error {
        let kind = match a.status {
            403 => std::io::ErrorKind::PermissionDenied,
            404 => std::io::ErrorKind::NotFound,
            _ => std::io::ErrorKind::Other,
        };
        let code = signed::error_code(&a.body);
        Error::Io {
            path: self.location.clone().into(),
            source: std::io::Error::new(kind, format!("{what}: HTTP {} {code}", a.status)),
        }
    }

    /// `init --object-lock`: the bucket (made with Object Lock if missing), refused without it.
    pub(crate) async fn ensure_lockable_bucket(&self) -> Result<Option<Policy>> {
        let created = ensure_bucket(&self.signer, &self.loc, &self.region, &self.location, true).await?;
        let enabled = self.configuration().await?;
        if !enabled.0 && created {
            return Err(Error::ObjectLock(format!(
                "this storage made the bucket {} without Object Lock: it does not offer it, so it cannot refuse \
                 deletions (use storage that does: AWS S3, MinIO, Ceph RGW, Wasabi, Backblaze B2); nothing was \
                 written into the bucket",
                self.loc.bucket
            )));
        }
        if !enabled.0 {
            return Err(Error::ObjectLock(format!(
                "the bucket {} has no Object Lock, so the storage cannot refuse deletions: name a bucket that \
                 does not exist (init creates it with Object Lock), or enable Object Lock on this one (a \
                 versioned bucket: `aws s3api put-object-lock-configuration`), then run init again; nothing \
                 was written",
                self.loc.bucket
            )));
        }
        Ok(enabled.1)
    }

    /// Set the bucket's default retention.
    pub(crate) async fn set_default(&self, p: &Policy) -> Result<()> {
        let body = format!(
            "<ObjectLockConfiguration xmlns=\"{XMLNS}\"><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule>\
             <DefaultRetention><Mode>{}</Mode><Days>{}</Days></DefaultRetention></Rule></ObjectLockConfiguration>",
            p.mode.s3_name(),
            p.days
        );
        let a = self.send(http::Method::PUT, &self.bucket_url("object-lock"), &[], Bytes::from(body)).await?;
        match a.status {
            200..=299 => Ok(()),
            _ => Err(self.refused("setting the bucket's default retention (PutObjectLockConfiguration)", &a)),
        }
    }

    /// Whether the bucket has Object Lock, and its default retention.
    async fn configuration(&self) -> Result<(bool, Option<Policy>)> {
        let a = self.send(http::Method::GET, &self.bucket_url("object-lock"), &[], Bytes::new()).await?;
        if signed::error_code(&a.body) == "NotImplemented" {
            return Ok((false, None));
        }
        match a.status {
            200..=299 => Ok(parse_lock_configuration(&a.body)),
            // ObjectLockConfigurationNotFoundError: no Object Lock on this bucket; 501: a server
            // without Object Lock at all (s3s-fs); 403: credentials that may not ask, which
            // cannot tell (prune and check then see no retention; the store still enforces it).
            403 | 404 | 501 => Ok((false, None)),
            _ => Err(self.refused("reading the bucket's Object Lock configuration (GetObjectLockConfiguration)", &a)),
        }
    }

    /// The bucket's default retention, if it has Object Lock and one.
    pub(crate) async fn policy(&self) -> Result<Option<Policy>> {
        Ok(self.configuration().await?.1)
    }

    /// The current version of `key` and its retention (HEAD).
    pub(crate) async fn state(&self, key: &str) -> Result<Option<ObjectState>> {
        let a = self.send(http::Method::HEAD, &self.object_url(key, ""), &[], Bytes::new()).await?;
        match a.status {
            200..=299 => Ok(Some(object_state(&a))),
            404 => Ok(None),
            _ => Err(self.refused(&format!("reading the retention of {key}"), &a)),
        }
    }

    /// Retain `version` of `key` until `until` (PutObjectRetention).
    pub(crate) async fn extend(&self, key: &str, version: Option<&str>, mode: Mode, until: SystemTime) -> Result<()> {
        let body = format!(
            "<Retention xmlns=\"{XMLNS}\"><Mode>{}</Mode><RetainUntilDate>{}</RetainUntilDate></Retention>",
            mode.s3_name(),
            humantime::format_rfc3339_seconds(until)
        );
        let query = match version {
            Some(v) => format!("retention&versionId={}", encode(v, true)),
            None => "retention".into(),
        };
        let a = self.send(http::Method::PUT, &self.object_url(key, &query), &[], Bytes::from(body)).await?;
        match a.status {
            200..=299 => Ok(()),
            _ => Err(self.refused(&format!("extending the retention of {key} (PutObjectRetention)"), &a)),
        }
    }

    /// Destroy `version` of `key` (refused with 403 while it is retained).
    pub(crate) async fn delete_version(&self, key: &str, version: &str) -> Result<()> {
        let url = self.object_url(key, &format!("versionId={}", encode(version, true)));
        let a = self.send(http::Method::DELETE, &url, &[], Bytes::new()).await?;
        match a.status {
            200..=299 | 404 => Ok(()),
            _ => Err(self.refused(&format!("deleting version {version} of {key}"), &a)),
        }
    }
}

/// `(enabled, default retention)` of a GetObjectLockConfiguration answer. AWS states the
/// default in `Days` or `Years`; some servers send both (one of them 0).
fn parse_lock_configuration(xml: &str) -> (bool, Option<Policy>) {
    let enabled = tag(xml, "ObjectLockEnabled") == Some("Enabled");
    let mode = tag(xml, "Mode").and_then(Mode::from_s3);
    let number = |t| tag(xml, t).and_then(|n| n.trim().parse::<u32>().ok()).unwrap_or(0);
    let days = number("Days").saturating_add(number("Years").saturating_mul(365));
    let policy = mode.filter(|_| enabled && days > 0).map(|mode| Policy { mode, days });
    (enabled, policy)
}

/// The text of the first `<name>…</name>` in `xml`.
fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let (_, rest) = xml.split_once(&format!("<{name}>"))?;
    rest.split_once(&format!("</{name}>")).map(|(v, _)| v)
}

/// The retention headers of a HEAD answer, dated by the store's clock.
fn object_state(a: &signed::Answer) -> ObjectState {
    let http_date = |h| a.header(h).and_then(|d| opendal::raw::Timestamp::parse_rfc2822(d).ok()).map(SystemTime::from);
    ObjectState {
        version: a.header("x-amz-version-id").filter(|v| *v != "null").map(str::to_string),
        mode: a.header("x-amz-object-lock-mode").and_then(Mode::from_s3),
        until: a
            .header("x-amz-object-lock-retain-until-date")
            .and_then(|d| d.parse::<opendal::raw::Timestamp>().ok())
            .map(SystemTime::from),
        written: http_date("last-modified"),
        store_now: http_date("date").unwrap_or_else(SystemTime::now),
    }
}

/// Percent-encode for a URL path (`/` kept unless `query`) or a query value: everything but
/// the unreserved characters, as SigV4's canonical form has them.
fn encode(s: &str, query: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b'/' if !query => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{remote::RemoteBackend, FileType};

    #[test]
    fn locations_parse_like_restic_and_bad_ones_are_usage_errors() {
        let l = S3Location::parse("s3:https://minio.example:9000/bkt/team/repo/").unwrap();
        assert_eq!(
            (l.endpoint.as_str(), l.bucket.as_str(), l.prefix.as_str()),
            ("https://minio.example:9000", "bkt", "team/repo")
        );
        let l = S3Location::parse("s3:s3.amazonaws.com/bkt").unwrap();
        assert_eq!(
            (l.endpoint.as_str(), l.bucket.as_str(), l.prefix.as_str()),
            ("https://s3.amazonaws.com", "bkt", "")
        );
        for bad in ["s3:", "s3:https://host", "s3:https:///bkt", "s3:ftp://h/b", "/tmp/repo"] {
            assert!(matches!(S3Location::parse(bad), Err(Error::InvalidArgument(_))), "{bad}");
        }
        assert_eq!(RemoteBackend::key(FileType::Pack, "3fab"), "data/3f/3fab");
        assert_eq!(RemoteBackend::key(FileType::ParityPolicy, "policy"), "parity/policy");
    }

    #[test]
    fn lock_configurations_and_object_headers_parse() {
        let moto = "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention>\
                    <Mode>COMPLIANCE</Mode><Days>30</Days><Years>0</Years></DefaultRetention></Rule></ObjectLockConfiguration>";
        assert_eq!(parse_lock_configuration(moto), (true, Some(Policy { mode: Mode::Compliance, days: 30 })));
        let years = "<ObjectLockEnabled>Enabled</ObjectLockEnabled><Mode>GOVERNANCE</Mode><Years>1</Years>";
        assert_eq!(parse_lock_configuration(years).1.map(|p| p.days), Some(365));
        assert_eq!(parse_lock_configuration("<ObjectLockEnabled>Enabled</ObjectLockEnabled>"), (true, None));
        let mut headers = http::HeaderMap::new();
        headers.insert("date", "Mon, 07 Dec 2026 10:00:00 GMT".parse().unwrap());
        headers.insert("x-amz-object-lock-retain-until-date", "2027-01-06T10:00:00.000Z".parse().unwrap());
        headers.insert("x-amz-object-lock-mode", "GOVERNANCE".parse().unwrap());
        headers.insert("x-amz-version-id", "3/L4kqtJl40Nr8X8gdRQBpUMLUo".parse().unwrap());
        let s = object_state(&signed::Answer { status: 200, body: String::new(), headers });
        assert_eq!(s.until.unwrap().duration_since(s.store_now).unwrap().as_secs(), 30 * 86_400);
        assert_eq!(
            (s.mode, s.version.as_deref(), s.written),
            (Some(Mode::Governance), Some("3/L4kqtJl40Nr8X8gdRQBpUMLUo"), None)
        );
        assert_eq!(encode("3/L+k=", true), "3%2FL%2Bk%3D");
        assert_eq!(encode("team x/data/ab", false), "team%20x/data/ab");
    }
}
