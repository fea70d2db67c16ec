//! A repository on S3-compatible object storage (AWS S3, MinIO, Garage, Ceph RGW, B2, Wasabi),
//! through Apache OpenDAL's S3 service on a private tokio runtime.
//!
//! Objects mirror the local layout under a prefix: `config`, `keys/<id>`, `data/xx/<id>`,
//! `index/<id>`, …, `parity/xx/<id>`, `parity/policy`. An object store has no rename and no
//! directories: a PUT is atomic (the object appears whole or not at all), so a file is published
//! by one PUT of its complete bytes, sent with its MD5 so the store rejects a body damaged on the
//! way, and there is no `tmp/`. Listing is strongly consistent on the stores named above (AWS
//! since 2020). Transient failures (5xx, throttling, dropped connections) are retried by
//! OpenDAL's retry layer: [`RETRIES`] attempts, back-off doubling from 250 ms (about 8 s in
//! all), with jitter.
//!
//! Round trips are what a remote store costs, so both directions are pipelined, with at most
//! `connections` requests of each kind in flight ([`S3Options`]):
//! - packs are uploaded in the background ([`uploads`]), and every write of a file that can name
//!   a pack (index, snapshot, …) first waits for all of them to be confirmed;
//! - ranged pack reads go through a read-ahead window cache ([`readahead`]).

mod readahead;
mod uploads;

use super::{is_object_name, Backend, FileType, StagedFile};
use crate::error::{Error, Result};
use bytes::Bytes;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

pub use readahead::WINDOW;

/// Attempts the retry layer makes for one request before the error reaches the caller.
pub const RETRIES: usize = 6;

/// Tuning of the S3 backend.
#[derive(Clone, Copy, Debug)]
pub struct S3Options {
    /// Requests in flight at once in each direction: pack uploads, and read-ahead windows.
    pub connections: usize,
}

impl Default for S3Options {
    fn default() -> S3Options {
        S3Options { connections: DEFAULT_CONNECTIONS }
    }
}

/// Default of [`S3Options::connections`] (`--connections`).
pub const DEFAULT_CONNECTIONS: usize = 8;

/// Most connections `--connections` accepts.
pub const MAX_CONNECTIONS: usize = 128;

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
    // Dropped before the runtime they run on.
    op: opendal::blocking::Operator,
    uploads: Arc<uploads::Uploads>,
    ahead: Arc<readahead::ReadAhead>,
    /// Lengths of packs already asked for (packs never change length; dropped on replace).
    sizes: Mutex<HashMap<String, u64>>,
    connections: usize,
    _rt: tokio::runtime::Runtime,
    loc: S3Location,
}

impl S3Backend {
    /// Connect (lazily: nothing is sent before the first request). Credentials and region come
    /// from the usual AWS environment variables and files (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `~/.aws/credentials`); the region defaults to
    /// `us-east-1`, which S3-compatible servers accept.
    pub fn new(loc: S3Location, opts: S3Options) -> Result<S3Backend> {
        let connections = opts.connections.clamp(1, MAX_CONNECTIONS);
        quiet_runtime_panics();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .thread_name(RUNTIME_THREAD)
            .enable_all()
            .build()
            .map_err(|e| Error::Io { path: "tokio runtime".into(), source: e })?;
        let region = std::env::var("AWS_REGION").or_else(|_| std::env::var("AWS_DEFAULT_REGION"));
        let builder = opendal::services::S3::default()
            .endpoint(&loc.endpoint)
            .bucket(&loc.bucket)
            .root(&format!("/{}", loc.prefix))
            .region(region.as_deref().unwrap_or("us-east-1"))
            .checksum_algorithm("md5");
        let aop = opendal::Operator::new(builder)
            .map_err(|e| io_err(&loc.endpoint, e))?
            .layer(
                opendal::layers::RetryLayer::new()
                    .with_max_times(RETRIES - 1)
                    .with_min_delay(std::time::Duration::from_millis(250))
                    .with_max_delay(std::time::Duration::from_secs(8))
                    .with_jitter(),
            )
            .finish();
        let op = {
            let _guard = rt.enter();
            opendal::blocking::Operator::new(aop.clone()).map_err(|e| io_err(&loc.endpoint, e))?
        };
        let uploads = uploads::Uploads::new(aop.clone(), rt.handle().clone(), connections);
        let ahead = readahead::ReadAhead::new(aop, rt.handle().clone(), connections);
        Ok(S3Backend { op, uploads, ahead, sizes: Mutex::default(), connections, _rt: rt, loc })
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

    /// The length of file `key`, asked of the store once (or known from a listing).
    fn len_cached(&self, key: &str) -> Result<Option<u64>> {
        if let Some(n) = self.sizes.lock().unwrap().get(key) {
            return Ok(Some(*n));
        }
        let n = self.len_of(key)?;
        if let Some(n) = n {
            self.sizes.lock().unwrap().insert(key.to_string(), n);
        }
        Ok(n)
    }

    /// Before `key` is replaced or removed: let its upload finish and forget what is cached.
    fn forget(&self, key: &str) {
        self.uploads.wait_for(key);
        self.sizes.lock().unwrap().remove(key);
        self.ahead.forget(key);
    }

    /// Before writing a file of type `t`: a file that can name packs waits until every pack
    /// uploaded so far is confirmed (and fails if one was not).
    fn order_after_uploads(&self, t: FileType) -> Result<()> {
        match t {
            FileType::Lock | FileType::Parity => Ok(()),
            _ => self.uploads.settle(),
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

/// Name of the S3 runtime's threads.
const RUNTIME_THREAD: &str = "arca-s3";

/// Keep the default panic message off stderr for the S3 runtime's threads. A panic there is in
/// OpenDAL, reached by what a store sent (0.57 panics on a body longer than the range asked
/// for); the task's watcher turns it into an error naming the object, which is what the user
/// should see, not a backtrace. Panics anywhere else print as before.
fn quiet_runtime_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() != Some(RUNTIME_THREAD) {
                previous(info);
            }
        }));
    });
}

/// Why a runtime task ended without a result, in words for the user.
fn task_failure(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return "the request was cancelled".into();
    }
    let payload = e.into_panic();
    let what = payload.downcast_ref::<&str>().copied().or_else(|| payload.downcast_ref::<String>().map(String::as_str));
    format!("the S3 client failed on the store's answer ({})", what.unwrap_or("no message"))
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
    uploads: Arc<uploads::Uploads>,
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
        // In the background: see `uploads` for what waits for it. Only packs: anything else
        // may name packs, so it goes after every upload and is confirmed before this returns.
        let key = S3Backend::key(self.t, name);
        if self.t == FileType::Pack {
            return self.uploads.start(key, Bytes::from(self.buf));
        }
        self.uploads.settle()?;
        self.uploads.start(key, Bytes::from(self.buf))?;
        self.uploads.settle()
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
        let key = Self::key(t, name);
        Ok(self.uploads.in_flight(&key).is_some() || self.len_of(&key)?.is_some())
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        let key = Self::key(t, name);
        if let Some(b) = self.uploads.in_flight(&key) {
            return Ok(b.to_vec());
        }
        // One request, streamed (unlike OpenDAL's reader, a bytes stream sends no stat first)
        // and cut after `max_len + 1` bytes: bounded whatever length the store claims, and a
        // longer file is still recognised.
        let max = t.max_len();
        let mut buf = Vec::new();
        let parts = self.op.reader(&key).and_then(|r| r.into_bytes_iterator(0..)).map_err(|e| io_err(&key, e))?;
        for part in parts {
            let part = part.map_err(|e| Error::Io { path: key.clone().into(), source: e })?;
            buf.extend_from_slice(&part[..part.len().min((max + 1) as usize - buf.len())]);
            if buf.len() as u64 > max {
                break;
            }
        }
        if buf.len() as u64 > max {
            return Err(Error::integrity(t.describe(name), format!("longer than the {max} bytes allowed")));
        }
        Ok(buf)
    }

    fn read_at(&self, t: FileType, name: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        let key = Self::key(t, name);
        let truncated = |have: u64| {
            Error::integrity(t.describe(name), format!("truncated: {have} bytes, {len} wanted at offset {offset}"))
        };
        if let Some(b) = self.uploads.in_flight(&key) {
            let at = usize::try_from(offset).unwrap_or(usize::MAX);
            return b.get(at..at.saturating_add(len)).map(<[u8]>::to_vec).ok_or_else(|| truncated(b.len() as u64));
        }
        // Every ranged read goes through the read-ahead windows: packs and parity files are
        // read piece by piece, mostly front to back (blobs; parity header, then shards), and
        // a fetch runs on the runtime, where a failure of any kind comes back as an error.
        let missing = || Error::integrity(t.describe(name), "missing from the repository");
        let mut size = self.len_cached(&key)?.ok_or_else(missing)?;
        let mut asked = false;
        loop {
            if offset.saturating_add(len as u64) > size {
                return Err(truncated(size.saturating_sub(offset)));
            }
            let msg = match self.ahead.read(&key, size, offset, len) {
                Ok(b) => return Ok(b),
                Err((opendal::ErrorKind::NotFound, _)) => return Err(missing()),
                Err((_, msg)) => msg,
            };
            // The length came from a hint or an earlier listing: if the store now says otherwise,
            // the file is damaged (truncated) or was replaced; ask once.
            if !asked {
                asked = true;
                self.sizes.lock().unwrap().remove(&key);
                let now = self.len_cached(&key)?.ok_or_else(missing)?;
                if now != size {
                    self.ahead.forget(&key);
                    size = now;
                    continue;
                }
            }
            return Err(Error::Io { path: key.clone().into(), source: std::io::Error::other(msg) });
        }
    }

    fn write(&self, t: FileType, name: &str, bytes: &[u8]) -> Result<()> {
        // A file named by the hash of its bytes (format-spec/04 §4.2: keys, index files,
        // snapshots, locks, journal files) can only exist with these very bytes: write it without
        // asking first (a round trip saved; an overwrite changes nothing). Parity files and the
        // fixed names are not hashed for nothing.
        let hash_named = content_addressed(t) || matches!(t, FileType::Lock | FileType::Journal);
        if hash_named && crate::id::Id::of_file_bytes(bytes).to_hex() == name {
            return self.replace(t, name, bytes);
        }
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
        if t == FileType::Parity {
            // Behind the upload of the file it protects, if that is still in flight (only packs
            // are uploaded in the background).
            if self.uploads.after(&Self::key(FileType::Pack, name), key.clone(), Bytes::copy_from_slice(bytes))? {
                return Ok(());
            }
        }
        self.order_after_uploads(t)?;
        self.forget(&key);
        self.op.write(&key, bytes.to_vec()).map(|_| ()).map_err(|e| io_err(&key, e))
    }

    fn stage(&self, t: FileType) -> Result<Box<dyn StagedFile>> {
        Ok(Box::new(S3Staged { uploads: self.uploads.clone(), t, buf: Vec::new() }))
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
        if sharded {
            // Packs and parity files are read by range after a listing (check, prune, repair):
            // their lengths are known now, not worth a HEAD each (replace and remove forget them).
            let mut sizes = self.sizes.lock().unwrap();
            for (name, len) in &out {
                sizes.insert(Self::key(t, name), *len);
            }
        }
        Ok(out)
    }

    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        // One request: S3 answers a delete of a missing object with success, which every caller
        // treats like "not found" anyway (already gone).
        let key = Self::key(t, name);
        self.forget(&key);
        self.op.delete(&key).map_err(|e| io_err(&key, e))
    }

    fn read_parallelism(&self) -> usize {
        self.connections
    }

    fn settle(&self) -> Result<()> {
        self.uploads.settle()
    }

    fn size_hint(&self, t: FileType, name: &str, len: u64) {
        self.sizes.lock().unwrap().entry(Self::key(t, name)).or_insert(len);
    }
}

impl Drop for S3Backend {
    /// Uploads still running are finished, not cancelled with the runtime: a command that ends
    /// early has already reported why, and what it sent is then complete.
    fn drop(&mut self) {
        let _ = self.uploads.settle();
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
