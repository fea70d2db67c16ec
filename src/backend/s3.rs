//! A repository on S3-compatible object storage (AWS S3, MinIO, Garage, Ceph RGW, B2, Wasabi),
//! through Apache OpenDAL's S3 service driven by its blocking API on a private tokio runtime.
//!
//! Objects mirror the local layout under a prefix: `config`, `keys/<id>`, `data/xx/<id>`,
//! `index/<id>`, …, `parity/xx/<id>`, `parity/policy`. An object store has no rename and no
//! directories: a PUT is atomic (the object appears whole or not at all), so a file is published
//! by one PUT of its complete bytes, and there is no `tmp/` (a failed upload leaves nothing, or a
//! multipart upload the store expires). Listing is strongly consistent on the stores named
//! above (AWS since 2020).
//!
//! Status: a first cut (branch `s3`): every `Backend` method, no retries tuned, no upload
//! pipelining beyond what callers already run in parallel.

use super::{is_object_name, Backend, FileType, StagedFile};
use crate::error::{Error, Result};
use std::io::Write;

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

/// The S3 backend.
pub struct S3Backend {
    // Dropped before the runtime it runs on.
    op: opendal::blocking::Operator,
    _rt: tokio::runtime::Runtime,
    loc: S3Location,
}

impl S3Backend {
    /// Connect (lazily: nothing is sent before the first request). Credentials and region come
    /// from the usual AWS environment variables and files (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `~/.aws/credentials`); the region defaults to
    /// `us-east-1`, which S3-compatible servers accept.
    pub fn new(loc: S3Location) -> Result<S3Backend> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .map_err(|e| Error::Io { path: "tokio runtime".into(), source: e })?;
        let region = std::env::var("AWS_REGION").or_else(|_| std::env::var("AWS_DEFAULT_REGION"));
        let builder = opendal::services::S3::default()
            .endpoint(&loc.endpoint)
            .bucket(&loc.bucket)
            .root(&format!("/{}", loc.prefix))
            .region(region.as_deref().unwrap_or("us-east-1"));
        let op = opendal::Operator::new(builder)
            .map_err(|e| io_err(&loc.endpoint, e))?
            .layer(opendal::layers::RetryLayer::new().with_max_times(5).with_jitter())
            .finish();
        let op = {
            let _guard = rt.enter();
            opendal::blocking::Operator::new(op).map_err(|e| io_err(&loc.endpoint, e))?
        };
        Ok(S3Backend { op, _rt: rt, loc })
    }

    /// The object key of a repository file.
    fn key(t: FileType, name: &str) -> String {
        match t {
            FileType::Config => "config".into(),
            FileType::Pack | FileType::Parity => format!("{}/{}/{name}", t.dir(), name.get(..2).unwrap_or("00")),
            FileType::ParityPolicy => "parity/policy".into(),
            _ => format!("{}/{name}", t.dir()),
        }
    }

    fn len_of(&self, key: &str) -> Result<Option<u64>> {
        match self.op.stat(key) {
            Ok(m) => Ok(Some(m.content_length())),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(key, e)),
        }
    }
}

/// An OpenDAL error as an I/O error on `what`, keeping "not found" recognisable.
fn io_err(what: &str, e: opendal::Error) -> Error {
    let kind = match e.kind() {
        opendal::ErrorKind::NotFound => std::io::ErrorKind::NotFound,
        opendal::ErrorKind::PermissionDenied => std::io::ErrorKind::PermissionDenied,
        _ => std::io::ErrorKind::Other,
    };
    Error::Io { path: what.into(), source: std::io::Error::new(kind, e.to_string()) }
}

fn content_addressed(t: FileType) -> bool {
    matches!(t, FileType::Pack | FileType::Index | FileType::Snapshot | FileType::Key)
}

/// A file collected in memory and uploaded whole (one atomic PUT) when published.
struct S3Staged {
    op: opendal::blocking::Operator,
    t: FileType,
    buf: Vec<u8>,
}

impl Write for S3Staged {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl StagedFile for S3Staged {
    fn publish(self: Box<Self>, name: &str) -> Result<()> {
        let key = S3Backend::key(self.t, name);
        self.op.write(&key, self.buf).map(|_| ()).map_err(|e| io_err(&key, e))
    }
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        let l = &self.loc;
        format!("s3:{}/{}/{}", l.endpoint, l.bucket, l.prefix).trim_end_matches('/').to_string()
    }

    fn create(&self) -> Result<()> {
        if self.len_of("config")?.is_some() {
            return Err(Error::InvalidArgument(format!("{}: a repository already exists here", self.location())));
        }
        let any = self.op.list("").map_err(|e| io_err(&self.location(), e))?;
        if any.iter().any(|e| !e.path().is_empty() && e.path() != "/") {
            return Err(Error::InvalidArgument(format!(
                "{}: the prefix is not empty (and not an arca repository); choose an empty one",
                self.location()
            )));
        }
        Ok(())
    }

    fn exists(&self, t: FileType, name: &str) -> Result<bool> {
        Ok(self.len_of(&Self::key(t, name))?.is_some())
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        let key = Self::key(t, name);
        let len = self.len_of(&key)?.ok_or_else(|| Error::Io {
            path: key.clone().into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such object"),
        })?;
        if len > t.max_len() {
            return Err(Error::integrity(
                t.describe(name),
                format!("{len} bytes, longer than the {} allowed", t.max_len()),
            ));
        }
        // Bounded even if the object is replaced by a longer one between stat and read.
        let opts = opendal::options::ReadOptions { range: (0..len).into(), ..Default::default() };
        let buf = self.op.read_options(&key, opts).map_err(|e| io_err(&key, e))?;
        Ok(buf.to_vec())
    }

    fn read_at(&self, t: FileType, name: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        let key = Self::key(t, name);
        let opts = opendal::options::ReadOptions { range: (offset..offset + len as u64).into(), ..Default::default() };
        let buf = match self.op.read_options(&key, opts) {
            Ok(b) => b.to_vec(),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => {
                return Err(Error::integrity(t.describe(name), "missing from the repository"))
            }
            Err(e) if e.kind() == opendal::ErrorKind::RangeNotSatisfied => Vec::new(),
            Err(e) => return Err(io_err(&key, e)),
        };
        if buf.len() != len {
            return Err(Error::integrity(
                t.describe(name),
                format!("truncated: {} bytes where {len} are wanted at offset {offset}", buf.len()),
            ));
        }
        Ok(buf)
    }

    fn write(&self, t: FileType, name: &str, bytes: &[u8]) -> Result<()> {
        if self.exists(t, name)? {
            if content_addressed(t) {
                return Ok(());
            }
            return Err(Error::InvalidArgument(format!("{} already exists", Self::key(t, name))));
        }
        self.replace(t, name, bytes)
    }

    fn replace(&self, t: FileType, name: &str, bytes: &[u8]) -> Result<()> {
        let key = Self::key(t, name);
        self.op.write(&key, bytes.to_vec()).map(|_| ()).map_err(|e| io_err(&key, e))
    }

    fn stage(&self, t: FileType) -> Result<Box<dyn StagedFile>> {
        Ok(Box::new(S3Staged { op: self.op.clone(), t, buf: Vec::new() }))
    }

    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        let dir = match t {
            FileType::Config | FileType::ParityPolicy => return Ok(vec![]),
            _ => format!("{}/", t.dir()),
        };
        let sharded = matches!(t, FileType::Pack | FileType::Parity);
        let opts = opendal::options::ListOptions { recursive: true, ..Default::default() };
        let entries = match self.op.list_options(&dir, opts) {
            Ok(e) => e,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io_err(&dir, e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let Some(rel) = e.path().strip_prefix(&dir) else { continue };
            if rel.is_empty() || rel.ends_with('/') {
                continue;
            }
            let len = e.metadata().content_length();
            if sharded {
                match rel.split_once('/') {
                    Some((shard, n)) if is_object_name(n) && n.starts_with(shard) => out.push((n.to_string(), len)),
                    Some((shard, n)) => out.push((format!("{shard}/{n}"), len)),
                    None => {}
                }
            } else if !rel.contains('/') {
                out.push((rel.to_string(), len));
            }
        }
        out.sort();
        Ok(out)
    }

    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        // One request: S3 answers a delete of a missing object with success, which every caller
        // treats like "not found" anyway (already gone).
        let key = Self::key(t, name);
        self.op.delete(&key).map_err(|e| io_err(&key, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(S3Backend::key(FileType::Pack, "3fab"), "data/3f/3fab");
        assert_eq!(S3Backend::key(FileType::ParityPolicy, "policy"), "parity/policy");
    }
}
