//! `s3:` — S3-compatible object storage (AWS S3, MinIO, Garage, Ceph RGW, Backblaze B2,
//! Wasabi, Cloudflare R2) through OpenDAL's S3 service. Listing is strongly consistent on the
//! stores named above (AWS since 2020); a PUT is atomic ([`Publish::Put`]).

use super::remote::signed::{self, MakeRoot};
use super::remote::{Publish, Service};
use crate::error::{Error, Result};
use bytes::Bytes;

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
    let make_root = make_bucket(loc.clone(), region, location.clone());
    Ok(Service { op, location, publish: Publish::Put, guard: None, make_root: Some(make_root), range_reader: None })
}

/// `init` on a bucket that does not exist creates it (in the region of `AWS_REGION`), as restic
/// does; a bucket that exists, or whose existence the credentials may not ask about, is left
/// to the requests that follow.
fn make_bucket(loc: S3Location, region: String, location: String) -> MakeRoot {
    Box::new(move || {
        let (loc, region, location) = (loc.clone(), region.clone(), location.clone());
        Box::pin(async move { ensure_bucket(&loc, &region, &location).await })
    })
}

async fn ensure_bucket(loc: &S3Location, region: &str, location: &str) -> Result<()> {
    let signer = reqsign_core::Signer::new(
        signed::context(location)?,
        reqsign_aws_v4::DefaultCredentialProvider::new(),
        reqsign_aws_v4::RequestSigner::new("s3", region),
    );
    // Path-style, as the object requests are.
    let url = format!("{}/{}", loc.endpoint, loc.bucket);
    let unsigned = [("x-amz-content-sha256", "UNSIGNED-PAYLOAD")];
    let head = signed::send(&signer, location, http::Method::HEAD, &url, &unsigned, Bytes::new()).await?;
    if head.status != 404 {
        return Ok(());
    }
    // Outside us-east-1, AWS wants the region named in the body.
    let body = match region {
        "us-east-1" => Bytes::new(),
        r => Bytes::from(format!(
            "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <LocationConstraint>{r}</LocationConstraint></CreateBucketConfiguration>"
        )),
    };
    let made = signed::send(&signer, location, http::Method::PUT, &url, &unsigned, body).await?;
    match made.status {
        200..=299 => Ok(()),
        // Made meanwhile by someone else with these credentials: what was wanted.
        409 if signed::error_code(&made.body) == "BucketAlreadyOwnedByYou" => Ok(()),
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
}
