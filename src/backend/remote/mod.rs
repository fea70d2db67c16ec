//! Repositories on remote storage, reached through Apache OpenDAL on a private tokio runtime:
//! S3-compatible object stores ([`super::s3`]), Azure Blob Storage ([`super::azure`]), SFTP
//! servers ([`super::sftp`]) and every rclone remote ([`super::rclone`]). Each of those only
//! builds an [`opendal::Operator`]; this module is the one [`Backend`] over all of them.
//!
//! Files mirror the local layout under a root: `config`, `keys/<id>`, `data/xx/<id>`,
//! `index/<id>`, …, `parity/xx/<id>`, `parity/policy`. A file is published complete or not at
//! all, in the way the service allows ([`Publish`]): object stores by one PUT of the whole
//! bytes (atomic; S3 also sends their MD5 so the store rejects a body damaged on the way);
//! file servers (SFTP, WebDAV) by writing `tmp/<random>` and renaming it into place, as the
//! local backend does. Transient failures (5xx, throttling, dropped connections, timeouts) are
//! retried by OpenDAL's retry layer: [`RETRIES`] attempts, back-off doubling from 250 ms
//! (about 8 s in all), with jitter; a request that gets no answer ends after
//! [`RemoteOptions::timeout`] and counts as transient.
//!
//! Round trips are what a remote store costs, so both directions are pipelined, with at most
//! `connections` requests of each kind in flight ([`RemoteOptions`]):
//! - packs are uploaded in the background ([`uploads`]), and every write of a file that can name
//!   a pack (index, snapshot, …) first waits for all of them to be confirmed;
//! - ranged pack reads go through a read-ahead window cache ([`readahead`]).

mod readahead;
pub(crate) mod signed;
mod uploads;

use super::retention::{Mode, ObjectLock, ObjectState, Policy};
use super::{is_object_name, Backend, FileType, StagedFile};
use crate::error::{Error, Result};
use bytes::Bytes;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub use readahead::{Failure, WINDOW};

/// Reads a byte range of an object by other means than OpenDAL's reader: for a protocol whose
/// reads OpenDAL sends one after another (SFTP), all of a window's reads at once.
pub trait RangeReader: Send + Sync {
    /// The bytes of `range` of the object `key` (relative to the repository's root).
    fn read_range(
        self: Arc<Self>,
        key: String,
        range: std::ops::Range<u64>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<Bytes, Failure>> + Send>>;
}

/// Attempts the retry layer makes for one request before the error reaches the caller.
pub const RETRIES: usize = 6;

/// Tuning of a remote backend.
#[derive(Clone, Copy, Debug)]
pub struct RemoteOptions {
    /// Requests in flight at once in each direction: pack uploads, and read-ahead windows.
    pub connections: usize,
    /// How long one request (or, while data flows, one read or write of its body) may go
    /// without progress before it is abandoned and retried (`--timeout`).
    pub timeout: Duration,
    /// Uploads held to this many KiB/s (`--limit-upload`; any backend).
    pub limit_upload: Option<u64>,
    /// Downloads held to this many KiB/s (`--limit-download`; any backend).
    pub limit_download: Option<u64>,
}

impl Default for RemoteOptions {
    fn default() -> RemoteOptions {
        RemoteOptions {
            connections: DEFAULT_CONNECTIONS,
            timeout: DEFAULT_TIMEOUT,
            limit_upload: None,
            limit_download: None,
        }
    }
}

/// Default of [`RemoteOptions::connections`] (`--connections`).
pub const DEFAULT_CONNECTIONS: usize = 8;

/// Most connections `--connections` accepts.
pub const MAX_CONNECTIONS: usize = 128;

/// Largest pack read whole through a service's [`RangeReader`] (its parts are all asked for,
/// and their buffers made, at once); a larger one (a pack target over 128 MiB, or a store's
/// claim) is streamed.
const WHOLE_READ_MAX: u64 = 128 << 20;

/// Default of [`RemoteOptions::timeout`] (`--timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How a service makes a file appear whole or not at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Publish {
    /// One PUT of the complete bytes is atomic (object stores).
    Put,
    /// Write `tmp/<random>`, then rename it over the name (file servers, whose writes are not).
    Rename,
}

/// What a service module hands over: its operator and how to use it.
pub struct Service {
    /// The operator, rooted at the repository, without layers (the backend adds them).
    pub op: opendal::Operator,
    /// The location as the user writes it, for messages.
    pub location: String,
    /// How files are published.
    pub publish: Publish,
    /// Kept alive as long as the backend (the `rclone serve` process it talks to).
    pub guard: Option<Box<dyn Send + Sync>>,
    /// Makes the bucket or container when `init` finds it missing (object stores).
    pub make_root: Option<signed::MakeRoot>,
    /// Reads read-ahead windows instead of OpenDAL (see [`RangeReader`]).
    pub range_reader: Option<Arc<dyn RangeReader>>,
    /// Object Lock requests, for a store that has them (S3).
    pub object_lock: Option<Arc<super::s3::S3ObjectLock>>,
}

/// The remote backend.
pub struct RemoteBackend {
    // Dropped before the runtime they run on.
    op: opendal::blocking::Operator,
    uploads: Arc<uploads::Uploads>,
    ahead: Arc<readahead::ReadAhead>,
    /// Lengths of packs already asked for (packs never change length; dropped on replace).
    sizes: Mutex<HashMap<String, u64>>,
    connections: usize,
    publish: Publish,
    location: String,
    make_root: Option<signed::MakeRoot>,
    range_reader: Option<Arc<dyn RangeReader>>,
    object_lock: Option<Arc<super::s3::S3ObjectLock>>,
    _rt: tokio::runtime::Runtime,
    // After the runtime: a server process outlives the requests to it.
    _guard: Option<Box<dyn Send + Sync>>,
}

impl RemoteBackend {
    /// The backend over the service `make` builds. Nothing is sent before the first request.
    pub fn new(make: impl FnOnce() -> Result<Service>, opts: RemoteOptions) -> Result<RemoteBackend> {
        let connections = opts.connections.clamp(1, MAX_CONNECTIONS);
        quiet_runtime_panics();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .thread_name(RUNTIME_THREAD)
            .enable_all()
            .build()
            .map_err(|e| Error::Io { path: "tokio runtime".into(), source: e })?;
        let service = {
            let _guard = rt.enter();
            make()?
        };
        let timeout = opts.timeout.max(Duration::from_secs(1));
        let aop = service
            .op
            .layer(opendal::layers::TimeoutLayer::new().with_timeout(timeout).with_io_timeout(timeout))
            .layer(
                opendal::layers::RetryLayer::new()
                    .with_max_times(RETRIES - 1)
                    .with_min_delay(Duration::from_millis(250))
                    .with_max_delay(Duration::from_secs(8))
                    .with_jitter(),
            );
        let op = {
            let _guard = rt.enter();
            opendal::blocking::Operator::new(aop.clone()).map_err(|e| io_err(&service.location, e))?
        };
        let uploads = uploads::Uploads::new(aop.clone(), rt.handle().clone(), connections, service.publish);
        let ahead = readahead::ReadAhead::new(aop, rt.handle().clone(), connections, service.range_reader.clone());
        Ok(RemoteBackend {
            op,
            uploads,
            ahead,
            sizes: Mutex::default(),
            connections,
            publish: service.publish,
            location: service.location,
            make_root: service.make_root,
            range_reader: service.range_reader,
            object_lock: service.object_lock,
            _rt: rt,
            _guard: service.guard,
        })
    }

    /// The object key of a repository file.
    pub(crate) fn key(t: FileType, name: &str) -> String {
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

    /// A whole pack through the service's own [`RangeReader`] (SFTP: its reads all at once, not
    /// one after another), when its length is known and at most [`WHOLE_READ_MAX`]; `None` to
    /// stream it instead. The length is what the store claims: a larger claim is streamed,
    /// which holds only what actually arrives.
    fn read_whole_pack(&self, t: FileType, key: &str, max: u64) -> Result<Option<Vec<u8>>> {
        let Some(reader) = self.range_reader.clone().filter(|_| t == FileType::Pack) else { return Ok(None) };
        let bound = max.min(WHOLE_READ_MAX);
        let Some(len) = self.len_cached(key)?.filter(|&n| n <= bound) else { return Ok(None) };
        let read = self._rt.block_on(reader.read_range(key.to_string(), 0..len));
        match read {
            Ok(b) if b.len() as u64 == len => Ok(Some(b.to_vec())),
            // Not the length listed (packs never change): the streamed read judges the file.
            Ok(_) => {
                self.sizes.lock().unwrap().remove(key);
                Ok(None)
            }
            Err((kind, message)) => Err(io_err(key, opendal::Error::new(kind, message))),
        }
    }

    /// A missing `config` may be a missing bucket or container, which some stores (and AWS, for
    /// a GET) report as a missing key: one listing tells, so that the user reads about the
    /// bucket rather than "not a repository".
    fn why_no_config(&self, t: FileType, e: Error) -> Error {
        let not_found = matches!(&e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound);
        if t != FileType::Config || !not_found {
            return e;
        }
        match self.op.list("") {
            Err(listing) if root_missing(&listing) => io_err(&self.location, listing),
            _ => e,
        }
    }

    /// `init` on a prefix that already holds a repository, or anything else, is refused.
    fn refuse_existing(&self) -> Result<()> {
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

    fn len_of(&self, key: &str) -> Result<Option<u64>> {
        match self.op.stat(key) {
            Ok(m) if m.is_dir() => Ok(None),
            Ok(m) => Ok(Some(m.content_length())),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(key, e)),
        }
    }
}

/// Name of the remote runtime's threads.
const RUNTIME_THREAD: &str = "arca-remote";

/// Keep the default panic message off stderr for the remote runtime's threads. A panic there is in
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

/// Publish `bytes` as `key` the way the service allows (see [`Publish`]).
async fn put(op: &opendal::Operator, publish: Publish, key: &str, bytes: Bytes) -> opendal::Result<()> {
    if publish == Publish::Put {
        return op.write(key, bytes).await.map(|_| ());
    }
    let tmp = format!("tmp/{}", tmp_name());
    let published = match op.write(&tmp, bytes).await {
        Ok(_) => op.rename(&tmp, key).await,
        Err(e) => Err(e),
    };
    if published.is_err() {
        // Best effort: `clean_tmp` of a later command removes what is left.
        let _ = op.delete(&tmp).await;
    }
    published
}

/// A random name for a file being written (the crypto's randomness; the clock and a counter
/// if the system has none to give, which only has to be unique).
fn tmp_name() -> String {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    match crate::crypto::random_array::<16>() {
        Ok(b) => crate::id::hex(&b),
        Err(_) => {
            let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            format!("{}-{}-{n}", t.as_nanos(), std::process::id())
        }
    }
}

/// Why a runtime task ended without a result, in words for the user.
fn task_failure(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return "the request was cancelled".into();
    }
    let payload = e.into_panic();
    let what = payload.downcast_ref::<&str>().copied().or_else(|| payload.downcast_ref::<String>().map(String::as_str));
    format!("the storage client failed on the store's answer ({})", what.unwrap_or("no message"))
}

/// An OpenDAL error as an I/O error on `what`, keeping "not found" recognisable, in one line
/// of words ([`words`]) rather than the client's request dump.
pub(crate) fn io_err(what: &str, e: opendal::Error) -> Error {
    let kind = match e.kind() {
        // A missing bucket is not a missing file: "not a repository" would hide the typo.
        opendal::ErrorKind::NotFound if root_missing(&e) => std::io::ErrorKind::Other,
        opendal::ErrorKind::NotFound => std::io::ErrorKind::NotFound,
        opendal::ErrorKind::PermissionDenied => std::io::ErrorKind::PermissionDenied,
        _ => std::io::ErrorKind::Other,
    };
    Error::Io { path: what.into(), source: std::io::Error::new(kind, words(&e)) }
}

/// An error from a body being streamed: the request's error in words where the stream carries
/// one (OpenDAL wraps its errors in `std::io::Error`), else the I/O error as it is.
fn stream_err(what: &str, e: std::io::Error) -> Error {
    let inner = e.get_ref().and_then(|inner| inner.downcast_ref::<opendal::Error>());
    match inner {
        Some(inner) => {
            let kind = if root_missing(inner) { std::io::ErrorKind::Other } else { e.kind() };
            Error::Io { path: what.into(), source: std::io::Error::new(kind, words(inner)) }
        }
        None => Error::Io { path: what.into(), source: e },
    }
}

/// Whether the store said the bucket or container itself is missing.
fn root_missing(e: &opendal::Error) -> bool {
    let all = format!("{e:?}");
    all.contains("NoSuchBucket") || all.contains("ContainerNotFound")
}

/// What went wrong with a request, and what to do about it where that is known.
pub(crate) fn words(e: &opendal::Error) -> String {
    let mut inner = String::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        inner = s.to_string();
        src = s.source();
    }
    let all = format!("{} {inner}", e.message());
    let has = |w: &str| all.contains(w);
    let said = if has("failed to load signing credential") || has("credential") && has("load") {
        "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE with \
         ~/.aws/credentials)"
            .to_string()
    } else if has("NoSuchBucket") || has("ContainerNotFound") {
        "the bucket or container does not exist: check the name, or create it (`arca init` does)".into()
    } else if e.kind() == opendal::ErrorKind::PermissionDenied || has("AuthorizationFailure") {
        "access denied by the storage: check the credentials (AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY; AZURE_ACCOUNT_KEY or AZURE_ACCOUNT_SAS) and what they may do"
            .into()
    } else if has("timeout reached") {
        format!("the storage did not answer in time ({RETRIES} attempts; raise --timeout for slow storage)")
    } else if has("ssh error") || has("failed to connect to the remote host") {
        "ssh could not connect (try `ssh HOST` to see why: unknown host key, authentication or \
         network)"
            .into()
    } else if has("error sending request") || has("send http request") {
        format!("cannot reach the storage ({})", if inner.is_empty() { e.message() } else { &inner })
    } else if inner.is_empty() {
        e.message().to_string()
    } else {
        format!("{}: {inner}", e.message())
    };
    said.lines().next().unwrap_or_default().to_string()
}

fn content_addressed(t: FileType) -> bool {
    matches!(t, FileType::Pack | FileType::Index | FileType::Snapshot | FileType::Key)
}

/// A file collected in memory and uploaded whole (one atomic PUT) when published.
struct RemoteStaged {
    uploads: Arc<uploads::Uploads>,
    t: FileType,
    buf: Vec<u8>,
}

impl Write for RemoteStaged {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl StagedFile for RemoteStaged {
    fn publish(self: Box<Self>, name: &str) -> Result<()> {
        // In the background: see `uploads` for what waits for it. Only packs: anything else
        // may name packs, so it goes after every upload and is confirmed before this returns.
        let key = RemoteBackend::key(self.t, name);
        if self.t == FileType::Pack {
            return self.uploads.start(key, Bytes::from(self.buf));
        }
        self.uploads.settle()?;
        self.uploads.start(key, Bytes::from(self.buf))?;
        self.uploads.settle()
    }
}

impl Backend for RemoteBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn create(&self) -> Result<()> {
        if let Some(make) = &self.make_root {
            self._rt.block_on(make())?;
        }
        self.refuse_existing()
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
        if let Some(bytes) = self.read_whole_pack(t, &key, max)? {
            return Ok(bytes);
        }
        let mut buf = Vec::new();
        let parts = self.op.reader(&key).and_then(|r| r.into_bytes_iterator(0..)).map_err(|e| io_err(&key, e));
        let parts = parts.map_err(|e| self.why_no_config(t, e))?;
        for part in parts {
            let part = part.map_err(|e| self.why_no_config(t, stream_err(&key, e)))?;
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
        let (op, publish) = (self.uploads.operator(), self.publish);
        let bytes = Bytes::copy_from_slice(bytes);
        self._rt.block_on(put(&op, publish, &key, bytes)).map_err(|e| io_err(&key, e))
    }

    fn stage(&self, t: FileType) -> Result<Box<dyn StagedFile>> {
        Ok(Box::new(RemoteStaged { uploads: self.uploads.clone(), t, buf: Vec::new() }))
    }

    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        let dir = match t {
            FileType::Config | FileType::ParityPolicy => return Ok(vec![]),
            _ => format!("{}/", t.dir()),
        };
        let sharded = matches!(t, FileType::Pack | FileType::Parity);
        let opts = opendal::options::ListOptions { recursive: true, ..Default::default() };
        // Entry by entry, so that a listing that never ends is stopped at the limit.
        let entries = match self.op.lister_options(&dir, opts) {
            Ok(e) => e,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io_err(&dir, e)),
        };
        let mut out = Vec::new();
        for (i, e) in entries.enumerate() {
            if i >= super::MAX_LISTED {
                return Err(super::too_many_listed(&self.location, t));
            }
            let e = match e {
                Ok(e) => e,
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => break,
                Err(e) => return Err(io_err(&dir, e)),
            };
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
        // One request: stores answer a delete of a missing object with success (OpenDAL makes
        // file servers do the same), which every caller treats like "not found" anyway.
        let key = Self::key(t, name);
        self.forget(&key);
        self.op.delete(&key).map_err(|e| io_err(&key, e))
    }

    fn read_parallelism(&self) -> usize {
        self.connections
    }

    fn clean_tmp(&self, max_age: Duration) -> Result<usize> {
        if self.publish == Publish::Put {
            return Ok(0);
        }
        let entries = match self.op.list("tmp/") {
            Ok(e) => e,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err("tmp/", e)),
        };
        let now = std::time::SystemTime::now();
        let mut removed = 0;
        for e in entries {
            // Only files whose age the server states: a writer may still be sending the others.
            let old = e
                .metadata()
                .last_modified()
                .is_some_and(|m| now.duration_since(std::time::SystemTime::from(m)).is_ok_and(|age| age > max_age));
            if e.metadata().is_file() && old && self.op.delete(e.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn settle(&self) -> Result<()> {
        self.uploads.settle()
    }

    fn size_hint(&self, t: FileType, name: &str, len: u64) {
        self.sizes.lock().unwrap().entry(Self::key(t, name)).or_insert(len);
    }

    fn object_lock(&self) -> Option<&dyn ObjectLock> {
        self.object_lock.as_ref().map(|_| self as &dyn ObjectLock)
    }
}

impl RemoteBackend {
    /// The store's Object Lock requests (only called through [`Backend::object_lock`], which
    /// offers them only when there are some).
    fn lock_requests(&self) -> Result<&super::s3::S3ObjectLock> {
        let none = || Error::InvalidArgument(format!("{}: this storage has no Object Lock", self.location));
        self.object_lock.as_deref().ok_or_else(none)
    }
}

impl ObjectLock for RemoteBackend {
    fn set_up(&self, policy: &Policy) -> Result<()> {
        let lock = self.lock_requests()?;
        let existing = self._rt.block_on(lock.ensure_lockable_bucket())?;
        // Before the bucket's default changes: only for a prefix init will accept.
        self.refuse_existing()?;
        match existing {
            Some(p) if p == *policy => Ok(()),
            // The default retention is the bucket's, shared by every prefix in it.
            Some(p) => Err(Error::ObjectLock(format!(
                "the bucket already retains every new object by its default ({}), not {}: give that, or \
                 change the bucket's default retention with the storage's own tools; nothing was written",
                p.describe(),
                policy.describe()
            ))),
            None => self._rt.block_on(lock.set_default(policy)),
        }
    }

    fn policy(&self) -> Result<Option<Policy>> {
        self._rt.block_on(self.lock_requests()?.policy())
    }

    fn state(&self, t: FileType, name: &str) -> Result<Option<ObjectState>> {
        self._rt.block_on(self.lock_requests()?.state(&Self::key(t, name)))
    }

    fn extend(&self, t: FileType, name: &str, version: Option<&str>, mode: Mode, until: SystemTime) -> Result<()> {
        self._rt.block_on(self.lock_requests()?.extend(&Self::key(t, name), version, mode, until))
    }

    fn delete_version(&self, t: FileType, name: &str, version: &str) -> Result<()> {
        let key = Self::key(t, name);
        self.forget(&key);
        self._rt.block_on(self.lock_requests()?.delete_version(&key, version))
    }
}

impl Drop for RemoteBackend {
    /// Uploads still running are finished, not cancelled with the runtime: a command that ends
    /// early has already reported why, and what it sent is then complete.
    fn drop(&mut self) {
        let _ = self.uploads.settle();
    }
}
