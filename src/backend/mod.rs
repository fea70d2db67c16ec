//! Storage backends: where repository files live (format-spec/04-repository-layout.md).
//!
//! The trait is deliberately small — whole-file writes that are atomic and write-once, whole or
//! ranged reads, listing and removal — so that an object store can implement it later.

pub mod azure;
pub mod cache;
pub mod limit;
pub mod local;
pub mod rclone;
pub mod remote;
pub mod retention;
pub mod s3;
pub mod sftp;
pub mod ssh;

use crate::error::Result;
use std::io::Write;

/// The kinds of files a repository stores, each in its own directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    /// The single `config` file.
    Config,
    /// `keys/`.
    Key,
    /// `data/xx/` (packs).
    Pack,
    /// `index/`.
    Index,
    /// `snapshots/`.
    Snapshot,
    /// `locks/`.
    Lock,
    /// `journal/`.
    Journal,
    /// `parity/xx/` (parity files, named after the file they protect).
    Parity,
    /// `parity/policy`.
    ParityPolicy,
}

impl FileType {
    /// The directory name for this type.
    pub fn dir(self) -> &'static str {
        match self {
            FileType::Config => "",
            FileType::Key => "keys",
            FileType::Pack => "data",
            FileType::Index => "index",
            FileType::Snapshot => "snapshots",
            FileType::Lock => "locks",
            FileType::Journal => "journal",
            FileType::Parity | FileType::ParityPolicy => "parity",
        }
    }

    /// How errors name a file of this type, e.g. `index 3fa2…` (the words the library uses elsewhere).
    pub fn describe(self, name: &str) -> String {
        match self {
            FileType::Config => "config".into(),
            FileType::Key => format!("key file {name}"),
            FileType::Pack => format!("pack {name}"),
            FileType::Index => format!("index {name}"),
            FileType::Snapshot => format!("snapshot {name}"),
            FileType::Lock => format!("lock {name}"),
            FileType::Journal => format!("journal file {name}"),
            FileType::Parity => format!("parity file {name}"),
            FileType::ParityPolicy => "parity policy".into(),
        }
    }

    /// The longest file of this type a reader accepts (format-spec/19-limits.md): the body limit
    /// plus header, sealed-box overhead and method byte for encrypted files; checked on the file's
    /// length before anything is allocated, so a huge or sparse file cannot exhaust memory.
    pub fn max_len(self) -> u64 {
        use crate::format::key::{BACKUP_SECRET_FIXED, LABEL_AT, MAX_BACKUP_CONFIG_LEN, MAX_LABEL_LEN};
        use crate::format::{header::HEADER_LEN, NONCE_LEN, SEAL_OVERHEAD, TAG_LEN};
        let sealed = |body: usize| (HEADER_LEN + SEAL_OVERHEAD + 1 + body) as u64;
        // Snapshots and journal files sealed to the read key carry a 32-byte ephemeral key.
        let to_reader = |body: usize| sealed(body) + 32;
        match self {
            FileType::Config => sealed(crate::format::config::MAX_CONFIG_LEN),
            // The largest key file: a backup key (format-spec/24 §24.3) with the longest label.
            FileType::Key => {
                (LABEL_AT + 4 + NONCE_LEN + BACKUP_SECRET_FIXED + MAX_BACKUP_CONFIG_LEN + TAG_LEN + MAX_LABEL_LEN)
                    as u64
            }
            FileType::Pack => u32::MAX as u64,
            FileType::Index => sealed(crate::format::index::MAX_INDEX_LEN),
            FileType::Snapshot => to_reader(crate::format::snapshot::MAX_SNAPSHOT_LEN),
            FileType::Lock => sealed(crate::format::lock::MAX_LOCK_LEN),
            FileType::Journal => to_reader(crate::format::journal::MAX_JOURNAL_LEN),
            FileType::Parity => crate::format::parity::MAX_FILE_LEN,
            FileType::ParityPolicy => sealed(crate::format::parity::POLICY_BODY_LEN),
        }
    }
}

/// Most entries one listing of a file type may have (format-spec/19): a storage that lists more
/// (one that never ends its listing, or a planted flood of names) is refused with an error
/// instead of growing memory until the allocator aborts. 2^22 packs of the default 16 MiB are
/// 64 TiB.
pub const MAX_LISTED: usize = 1 << 22;

/// The error for a listing past [`MAX_LISTED`] entries.
pub fn too_many_listed(location: &str, t: FileType) -> crate::Error {
    crate::Error::integrity(
        format!("{location}: {}/", t.dir()),
        format!("the storage lists more than {MAX_LISTED} entries; stopped reading the listing"),
    )
}

/// Whether `name` can name a content-addressed repository file: 64 lowercase hex digits
/// (format-spec/04 §4.2). Readers ignore other names (`.DS_Store`, sync-conflict copies).
pub fn is_object_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The backend for a repository location: `s3:https://host/bucket/prefix`,
/// `azure:container/prefix`, `sftp:user@host:/path`, `rclone:remote:path` for remote
/// storage (tuned by `opts`), `ssh://user@host/path` for `arca serve`, anything else a local
/// directory; with `opts`' upload and download limits, if any.
pub fn open(location: &std::path::Path, opts: remote::RemoteOptions) -> Result<std::sync::Arc<dyn Backend>> {
    let backend = open_unlimited(location, opts)?;
    Ok(match (opts.limit_upload, opts.limit_download) {
        (None, None) => backend,
        (up, down) => std::sync::Arc::new(limit::LimitedBackend::new(backend, up, down)),
    })
}

fn open_unlimited(location: &std::path::Path, opts: remote::RemoteOptions) -> Result<std::sync::Arc<dyn Backend>> {
    use remote::RemoteBackend;
    let remote = |make: &dyn Fn() -> Result<remote::Service>| -> Result<std::sync::Arc<dyn Backend>> {
        Ok(std::sync::Arc::new(RemoteBackend::new(make, opts)?))
    };
    let Some(scheme) = scheme_of(location) else {
        return Ok(std::sync::Arc::new(local::LocalBackend::new(location.to_path_buf())));
    };
    let s = location.to_str().unwrap_or_default();
    match scheme {
        "s3" => {
            let loc = s3::S3Location::parse(s)?;
            remote(&|| s3::service(&loc))
        }
        "azure" => {
            let loc = azure::AzureLocation::parse(s)?;
            remote(&|| azure::service(&loc))
        }
        "sftp" => {
            let loc = sftp::SftpLocation::parse(s)?;
            remote(&|| sftp::service(&loc))
        }
        "rclone" => remote(&|| rclone::service(s)),
        "ssh" => Ok(std::sync::Arc::new(ssh::SshBackend::new(ssh::SshLocation::parse(s)?, opts.connections))),
        _ => Err(crate::Error::InvalidArgument(format!(
            "{}: repositories of kind `{scheme}:` are not supported; arca stores repositories in a local \
             directory, in S3-compatible object storage (`s3:https://host/bucket/prefix`), in Azure \
             (`azure:container/prefix`), over SFTP (`sftp:user@host:/path`), in any rclone remote \
             (`rclone:remote:path`) or on a host running `arca serve` (`ssh://user@host/path`). A local directory whose name holds a colon is written `./{}`",
            location.display(),
            location.display()
        ))),
    }
}

/// The `word` of a location written `word:…` (a URL-like scheme: a letter, then letters,
/// digits, `+`, `-` or `.`); `None` for paths (`/srv/repo`, `./sftp:x`, `repo`).
pub fn scheme_of(location: &std::path::Path) -> Option<&str> {
    let s = location.to_str()?;
    let (word, _) = s.split_once(':')?;
    let mut chars = word.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    ok.then_some(word)
}

/// A file being written that becomes visible only when published.
pub trait StagedFile: std::io::Write + Send {
    /// Make the bytes durable and publish them atomically under `name`. Dropping a staged file
    /// without publishing discards it.
    fn publish(self: Box<Self>, name: &str) -> Result<()>;
}

/// A place that stores repository files.
pub trait Backend: Send + Sync {
    /// Human-readable location, for messages.
    fn location(&self) -> String;
    /// Create the directory structure of a new, empty repository; fails if one exists.
    fn create(&self) -> Result<()>;
    /// Whether the file exists.
    fn exists(&self, t: FileType, name: &str) -> Result<bool>;
    /// The whole file. A file that is not a regular file (symlink, FIFO, device, directory) or
    /// is longer than [`FileType::max_len`] is refused before it is read (format-spec/04 §4.1):
    /// `config` as not-a-repository, any other file as an integrity error naming it.
    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>>;
    /// `len` bytes at `offset`. A missing file, or one that ends before the range, is an integrity
    /// error naming it (the caller was told it exists); other failures are I/O errors.
    fn read_at(&self, t: FileType, name: &str, offset: u64, len: usize) -> Result<Vec<u8>>;
    /// Durably publish a file: afterwards it is complete under `name` or absent, never partial.
    /// Writing a name that already exists fails unless `t` is content-addressed (then it is a no-op).
    fn write(&self, t: FileType, name: &str, bytes: &[u8]) -> Result<()>;
    /// Durably publish `bytes` under `name`, atomically replacing a file already there (tmp,
    /// fsync, rename over it, fsync the directory): for parity files and the parity policy,
    /// which are rewritten, and for a damaged content-addressed file being repaired with bytes
    /// that hash to its name (format-spec/22 §22.7). Readers never see a partial file.
    fn replace(&self, t: FileType, name: &str, bytes: &[u8]) -> Result<()>;
    /// Make the existence of a published file durable (the local backend flushes its
    /// directory), before writing something that must not outlive it after a crash: another
    /// process's file can be seen between its rename and its writer's directory flush. Object
    /// stores have nothing to do.
    fn sync_name(&self, _t: FileType, _name: &str) -> Result<()> {
        Ok(())
    }
    /// Start a file of type `t` whose name is known only at the end (packs are named by their
    /// hash); see [`StagedFile`].
    fn stage(&self, t: FileType) -> Result<Box<dyn StagedFile>>;
    /// Names and sizes of all files of a type. For packs (and parity files), an entry of a shard
    /// directory `data/xx/` (`parity/xx/`) that is not an object name beginning with `xx` is listed as `xx/name` (so it is
    /// not an object name either: readers skip it, `check` reports it as stray).
    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>>;
    /// Remove a file. A file that is already gone is an I/O error of kind `NotFound` where the
    /// storage can tell (a directory), or success where it cannot (S3 deletes are idempotent):
    /// callers treat both as "removed".
    fn remove(&self, t: FileType, name: &str) -> Result<()>;
    /// Entries that are no repository file and that [`Backend::list`] never returns: at the top
    /// level, names other than `config` and the repository's directories; in `data/`, names
    /// other than the shard directories `00` … `ff`; in `parity/`, also other than `policy`. As `name`, `data/name` or `parity/name`, sorted. Readers
    /// ignore them; `check` reports them (format-spec/04 §4.2).
    fn stray_entries(&self) -> Result<Vec<String>> {
        Ok(vec![])
    }
    /// How many reads of packs a caller should keep in flight to use this storage well: 0 for
    /// "as many as there are CPU threads" (a local disk), the connection count for a remote store.
    fn read_parallelism(&self) -> usize {
        0
    }
    /// Wait until everything published so far is durable, and fail if any of it could not be
    /// stored. Backends that publish in the background (S3 uploads packs while the next ones are
    /// filled) do this themselves before writing any file that can name a pack; the repository
    /// also calls it before it checks its locks ahead of an index file, a snapshot or a removal.
    fn settle(&self) -> Result<()> {
        Ok(())
    }
    /// The length a file is said to have (a pack's, by the index that lists it), so that a
    /// remote store can read ranges of it without asking for its length first. Only a hint:
    /// a store that finds the file shorter or longer reports the read as failed, and a listing's
    /// length wins. Local directories ignore it.
    fn size_hint(&self, _t: FileType, _name: &str, _len: u64) {}
    /// Remove temporary files left behind by crashed writers; returns how many.
    fn clean_tmp(&self, _max_age: std::time::Duration) -> Result<usize> {
        Ok(0)
    }
    /// A tree blob's envelope kept by a local cache ([`cache`]), if there is one; the caller
    /// authenticates it (and reads the pack instead, and calls [`Backend::forget_blob`], if it
    /// does not open).
    fn cached_blob(&self, _id: &crate::id::Id) -> Option<Vec<u8>> {
        None
    }
    /// Whether [`Backend::keep_blob`] keeps anything (the caller then keeps a copy to give it).
    fn caches_blobs(&self) -> bool {
        false
    }
    /// Keep a tree blob's envelope that authenticated, for [`Backend::cached_blob`].
    fn keep_blob(&self, _id: &crate::id::Id, _envelope: &[u8]) {}
    /// Drop a cached envelope that did not authenticate.
    fn forget_blob(&self, _id: &crate::id::Id) {}
    /// Bytes free for writing and the size of the storage the repository is on, where that is
    /// known (a local filesystem); `None` for object stores, whose room is a bill.
    fn free_space(&self) -> Result<Option<(u64, u64)>> {
        Ok(None)
    }
    /// The storage's own retention (S3 Object Lock, [`retention`]), where it has one: `None`
    /// for storages that cannot refuse a deletion.
    fn object_lock(&self) -> Option<&dyn retention::ObjectLock> {
        None
    }
}

/// Size of every write a staged file issues except its last (format-spec/18-security.md §18.3).
pub const STAGING_BLOCK: usize = 256 << 10;

/// A writer that hands its inner writer only blocks of exactly [`STAGING_BLOCK`] bytes, and at
/// [`BlockWriter::finish`] one final shorter block: the sizes of the writes, and so the file
/// lengths an observer polling `tmp/` sees, depend only on how many bytes were written, never on
/// where one envelope ended and the next began (a `BufWriter` passes large writes through whole).
///
/// [`Write::flush`] only flushes the inner writer: emitting a partial block there would reveal a
/// boundary again.
pub struct BlockWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> BlockWriter<W> {
    /// A block writer over `inner`.
    pub fn new(inner: W) -> BlockWriter<W> {
        BlockWriter { inner, buf: Vec::with_capacity(STAGING_BLOCK) }
    }

    /// Write the last, partial block and return the inner writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        if !self.buf.is_empty() {
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for BlockWriter<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.is_empty() && data.len() >= STAGING_BLOCK {
            // A whole block straight from the caller's slice: no copy, same write size.
            self.inner.write_all(&data[..STAGING_BLOCK])?;
            return Ok(STAGING_BLOCK);
        }
        let n = data.len().min(STAGING_BLOCK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == STAGING_BLOCK {
            // A failed write leaves the staged file unusable: the packer then discards the pack.
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
