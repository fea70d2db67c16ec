//! A local cache of a remote repository's key files, index files, snapshots and tree blobs
//! (restic's `--cache-dir`): a second `snapshots` costs a listing, not a download of every
//! snapshot and root tree.
//!
//! Only files named by the hash of their bytes are kept (format-spec/04 §4.2), each under its
//! name, and a cached file is used only if its bytes still hash to that name and the storage's
//! own listing, taken by this process, still lists it. So a stale cache (a snapshot forgotten
//! by another host) or a tampered one (someone with write access to the cache directory) can
//! never change a result: it costs a download, nothing else. Files the storage no longer lists
//! are dropped from the cache when a listing shows it. Tree blobs are kept as their encrypted
//! envelopes under their blob IDs, used only for a tree the index lists and only if the envelope
//! authenticates as that blob (the repository checks, and reads the pack otherwise).
//!
//! The cache of one repository is the directory named by the BLAKE3 hash of the repository's
//! `config` file (the config is written once, at `init`, and holds the repository ID), under
//! `$XDG_CACHE_HOME/arca` or `~/.cache/arca` (`--cache-dir`, `ARCA_CACHE_DIR`), private to the
//! user (0700 directories, 0600 files), with a `CACHEDIR.TAG` so backup tools skip it.
//! Commands that must see the storage as it is — `check`, `repair` — never read the cache.

use super::{Backend, FileType, StagedFile};
use crate::error::Result;
use crate::id::Id;
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// The types kept: content-addressed files read whole and small enough to keep.
const CACHED: [FileType; 3] = [FileType::Key, FileType::Index, FileType::Snapshot];

/// The directory of tree blob envelopes.
const TREES: &str = "trees";

/// `CACHEDIR.TAG` (https://bford.info/cachedir/): backup tools skip the directory.
const TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n# This directory is arca's cache of remote \
                   repositories; it can be removed at any time.\n";

/// The default cache directory: `$XDG_CACHE_HOME/arca`, else `$HOME/.cache/arca`.
pub fn default_dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()).map(PathBuf::from);
    let home = || std::env::var_os("HOME").filter(|d| !d.is_empty()).map(|h| PathBuf::from(h).join(".cache"));
    xdg.filter(|d| d.is_absolute()).or_else(home).map(|d| d.join("arca"))
}

/// What is cached, and what the storage listed.
#[derive(Default)]
struct State {
    /// Names the storage listed in this process, per type: the only names served from the cache.
    listed: HashMap<u8, HashSet<String>>,
}

/// A backend that keeps copies of key files, index files and snapshots in a local directory.
pub struct CachedBackend {
    inner: Arc<dyn Backend>,
    root: PathBuf,
    /// This repository's directory in the cache, once the config was read.
    dir: OnceLock<PathBuf>,
    state: Mutex<State>,
}

impl CachedBackend {
    /// A cache in `root` (one directory per repository) in front of `inner`.
    pub fn new(inner: Arc<dyn Backend>, root: PathBuf) -> CachedBackend {
        CachedBackend { inner, root, dir: OnceLock::new(), state: Mutex::default() }
    }

    fn path(&self, t: FileType, name: &str) -> Option<PathBuf> {
        let dir = self.dir.get()?;
        (CACHED.contains(&t) && super::is_object_name(name)).then(|| dir.join(t.dir()).join(name))
    }

    /// The cached copy of `name`, if the storage listed it in this process and the copy hashes
    /// to its name; a copy that does not is removed.
    fn hit(&self, t: FileType, name: &str) -> Option<Vec<u8>> {
        let path = self.path(t, name)?;
        let listed = self.state.lock().unwrap().listed.get(&(t as u8)).is_some_and(|l| l.contains(name));
        if !listed {
            return None;
        }
        let bytes = read_bounded(&path, t.max_len())?;
        if Id::of_file_bytes(&bytes).to_hex() == name {
            return Some(bytes);
        }
        let _ = std::fs::remove_file(&path);
        None
    }

    /// Keep `bytes` as `name` if they hash to it (best effort: a cache that cannot be written
    /// only costs downloads).
    fn keep(&self, t: FileType, name: &str, bytes: &[u8]) {
        let Some(path) = self.path(t, name) else { return };
        if Id::of_file_bytes(bytes).to_hex() != name {
            return;
        }
        let _ = write_private(&path, bytes);
    }

    /// After a listing: remember the names, and drop cached files the storage no longer has.
    fn listed(&self, t: FileType, names: &[(String, u64)]) {
        if !CACHED.contains(&t) {
            return;
        }
        let set: HashSet<String> = names.iter().map(|(n, _)| n.clone()).collect();
        if let Some(dir) = self.dir.get() {
            if let Ok(rd) = std::fs::read_dir(dir.join(t.dir())) {
                for e in rd.flatten() {
                    if !e.file_name().to_str().is_some_and(|n| set.contains(n)) {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        }
        self.state.lock().unwrap().listed.insert(t as u8, set);
    }

    /// The config was read: this repository's directory is the hash of its bytes.
    fn found_config(&self, bytes: &[u8]) {
        let dir = self.root.join(Id::of_file_bytes(bytes).to_hex());
        if make_private_dirs(&self.root, &dir).is_ok() {
            let _ = self.dir.set(dir);
        }
    }
}

/// Create `root` (with its `CACHEDIR.TAG`) and `dir` with its type directories, all 0700.
fn make_private_dirs(root: &Path, dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true).mode(0o700);
    b.create(root)?;
    let tag = root.join("CACHEDIR.TAG");
    if !tag.exists() {
        let _ = write_private(&tag, TAG.as_bytes());
    }
    for t in CACHED {
        b.create(dir.join(t.dir()))?;
    }
    b.create(dir.join(TREES))?;
    // The directory's time says when the repository was last used (`arca cache`).
    let _ = std::fs::File::open(dir).and_then(|d| d.set_modified(std::time::SystemTime::now()));
    Ok(())
}

/// At most `max` bytes of a regular file (not through a symlink), or `None`.
fn read_bounded(path: &Path, max: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).ok()?;
    let m = f.metadata().ok()?;
    if !m.is_file() || m.len() > max {
        return None;
    }
    let mut buf = Vec::with_capacity(m.len() as usize);
    f.take(max).read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// Write a 0600 file through a temporary name and a rename (not fsynced: a cache file lost in a
/// crash only costs a download, and every cached file is checked before use).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::sys::write_atomically(path, bytes, 0o600, false)
}

impl Backend for CachedBackend {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<()> {
        self.inner.create()
    }
    fn exists(&self, t: FileType, name: &str) -> Result<bool> {
        self.inner.exists(t, name)
    }
    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        if let Some(bytes) = self.hit(t, name) {
            return Ok(bytes);
        }
        let bytes = self.inner.read(t, name)?;
        if t == FileType::Config {
            self.found_config(&bytes);
        } else {
            self.keep(t, name, &bytes);
        }
        Ok(bytes)
    }
    fn read_at(&self, t: FileType, name: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.inner.read_at(t, name, offset, len)
    }
    fn write(&self, t: FileType, name: &str, bytes: &[u8]) -> Result<()> {
        self.inner.write(t, name, bytes)?;
        self.keep(t, name, bytes);
        Ok(())
    }
    fn replace(&self, t: FileType, name: &str, bytes: &[u8]) -> Result<()> {
        self.inner.replace(t, name, bytes)
    }
    fn sync_name(&self, t: FileType, name: &str) -> Result<()> {
        self.inner.sync_name(t, name)
    }
    fn stage(&self, t: FileType) -> Result<Box<dyn StagedFile>> {
        self.inner.stage(t)
    }
    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        let names = self.inner.list(t)?;
        self.listed(t, &names);
        Ok(names)
    }
    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        if let Some(p) = self.path(t, name) {
            let _ = std::fs::remove_file(p);
        }
        self.inner.remove(t, name)
    }
    fn stray_entries(&self) -> Result<Vec<String>> {
        self.inner.stray_entries()
    }
    fn read_parallelism(&self) -> usize {
        self.inner.read_parallelism()
    }
    fn settle(&self) -> Result<()> {
        self.inner.settle()
    }
    fn size_hint(&self, t: FileType, name: &str, len: u64) {
        self.inner.size_hint(t, name, len)
    }
    fn clean_tmp(&self, max_age: std::time::Duration) -> Result<usize> {
        self.inner.clean_tmp(max_age)
    }
    fn free_space(&self) -> Result<Option<(u64, u64)>> {
        self.inner.free_space()
    }
    fn object_lock(&self) -> Option<&dyn super::retention::ObjectLock> {
        self.inner.object_lock()
    }
    fn cached_blob(&self, id: &Id) -> Option<Vec<u8>> {
        let max = (crate::format::SEAL_OVERHEAD + 1 + crate::format::tree::MAX_TREE_LEN) as u64;
        read_bounded(&self.dir.get()?.join(TREES).join(id.to_hex()), max)
    }
    fn caches_blobs(&self) -> bool {
        self.dir.get().is_some()
    }
    fn keep_blob(&self, id: &Id, envelope: &[u8]) {
        if let Some(dir) = self.dir.get() {
            let _ = write_private(&dir.join(TREES).join(id.to_hex()), envelope);
        }
    }
    fn forget_blob(&self, id: &Id) {
        if let Some(dir) = self.dir.get() {
            let _ = std::fs::remove_file(dir.join(TREES).join(id.to_hex()));
        }
    }
}

/// One repository's directory in the cache, for `arca cache`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CacheEntry {
    /// The directory.
    pub path: PathBuf,
    /// Bytes of the files in it.
    pub bytes: u64,
    /// Files in it.
    pub files: u64,
    /// When a command last used it, Unix seconds.
    pub used: u64,
}

/// The repositories cached under `root`, most recently used first.
pub fn entries(root: &Path) -> std::io::Result<Vec<CacheEntry>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in rd.flatten() {
        let path = e.path();
        let is_repo = e.file_name().to_str().is_some_and(super::is_object_name);
        let Ok(m) = std::fs::symlink_metadata(&path) else { continue };
        if !is_repo || !m.is_dir() {
            continue;
        }
        let (mut bytes, mut files) = (0, 0);
        for sub in CACHED.map(FileType::dir).into_iter().chain([TREES]) {
            for f in std::fs::read_dir(path.join(sub)).into_iter().flatten().flatten() {
                if let Ok(fm) = f.metadata() {
                    bytes += fm.len();
                    files += 1;
                }
            }
        }
        let used = m.modified()?.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        out.push(CacheEntry { used, path, bytes, files });
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.used));
    Ok(out)
}

/// Remove the cached repositories not used for `max_age` (all of them for zero); returns them.
pub fn cleanup(root: &Path, max_age: std::time::Duration) -> std::io::Result<Vec<CacheEntry>> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut removed = Vec::new();
    for e in entries(root)? {
        if now.saturating_sub(e.used) >= max_age.as_secs() {
            std::fs::remove_dir_all(&e.path)?;
            removed.push(e);
        }
    }
    Ok(removed)
}
