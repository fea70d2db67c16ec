//! Backup: walk paths, chunk, hash, deduplicate, compress and encrypt in parallel, write packs,
//! one tree blob per directory, then the snapshot as the single commit point.
//!
//! Parallelism comes from rayon at two levels: the entries of a directory are processed in
//! parallel (subdirectories recurse inside the same pool, so work spreads across the whole
//! tree), and the chunks of one large file are sealed in parallel batches. Memory is bounded by
//! what is in flight — at most a batch of chunks per busy worker plus one open pack per blob
//! type — never by the size of the input.
//!
//! Reading is decoupled from the CPU work: rayon has one thread per core, and a second pool of
//! [`BackupOptions::io_threads`] threads stats entries and opens files ahead of the workers,
//! asking the storage for their data so that it is in the page cache when a worker gets there
//! (see `prefetch`). On a cold disk that keeps many requests in flight; on a warm one it costs
//! a few system calls per file.
//!
//! Change detection: a file whose size, mtime, ctime and inode equal its node in the parent
//! snapshot, and whose chunks are all indexed, keeps the parent's chunk list without being read.

mod command;
pub(crate) mod fsmeta;
pub mod parents;
mod prefetch;
mod scan;
mod select;
mod walk;

use crate::chunker::Chunker;
use crate::error::{Error, Result};
use crate::format::blob::BlobType;
use crate::format::snapshot::{Snapshot, Summary};
use crate::format::tree::{ChunkRef, Node, NodeKind, Tree};
use crate::id::Id;
use crate::repo::index::Index;
use crate::repo::packer::Packer;
use crate::repo::Repository;
use rayon::prelude::*;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

pub use crate::progress::Progress;
pub use command::{backup_command, command_line};
pub use select::{FilesFrom, Selection, SelectionOptions, CACHEDIR_TAG};
pub use walk::Excludes;

/// A file's modification time in Unix nanoseconds.
pub fn nanos_of(m: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    fsmeta::nanos(m.mtime(), m.mtime_nsec())
}

/// A test hook called with a directory's path (see [`BackupOptions::before_dir_open`]).
#[doc(hidden)]
pub type DirHook = Box<dyn Fn(&std::path::Path) + Send + Sync>;

/// A callback told why a backup waits for a lock.
pub type LockNotice = Box<dyn Fn(&Error) + Send + Sync>;

/// What to back up and how.
#[derive(Default)]
pub struct BackupOptions {
    /// Paths to back up (made absolute).
    pub paths: Vec<PathBuf>,
    /// Tags for the snapshot.
    pub tags: Vec<String>,
    /// Host name to record (default: this host).
    pub host: Option<String>,
    /// What to leave out (restic's `--exclude*` options; [`Selection`]).
    pub excludes: Selection,
    /// Do not cross filesystem boundaries below each path.
    pub one_file_system: bool,
    /// Read and chunk everything, but write nothing.
    pub dry_run: bool,
    /// Read every file, even those the parent shows unchanged (they are then counted by content).
    pub force: bool,
    /// Write no snapshot when its tree is the parent's (restic's `--skip-if-unchanged`).
    pub skip_if_unchanged: bool,
    /// Explicit parent snapshot (ID prefix or `latest`); default: the latest with the same host and paths.
    pub parent: Option<String>,
    /// Snapshot time to record (Unix ns) instead of the start time, e.g. to import old backups.
    pub time: Option<i64>,
    /// Save a stream backup (`backup_stdin`, `backup_command`) even when the stream is empty;
    /// by default an empty stream is refused, since a dump that produced nothing is a failure.
    pub allow_empty: bool,
    /// Threads that stat and open files ahead of the CPU workers (`None`: [`DEFAULT_IO_THREADS`];
    /// 0: none, every worker reads for itself).
    pub io_threads: Option<usize>,
    /// How long to wait for a conflicting lock (an exclusive prune commit, forget, tag).
    pub retry_lock: std::time::Duration,
    /// Told once when the backup has to wait for a lock, and why.
    pub on_lock_wait: Option<LockNotice>,
    /// The cache directory where a backup key keeps its last snapshot's trees for change
    /// detection ([`parents`]); `None`: a backup key reads every file.
    pub parent_cache: Option<PathBuf>,
    /// Test hook, not a stable API: called with a directory's path after its parent's listing
    /// stat'ed it and before it is opened, so a test can swap it at the worst moment.
    #[doc(hidden)]
    pub before_dir_open: Option<DirHook>,
    /// Test knob, not a stable API: most entries a directory may have to be saved (default and
    /// upper bound: the format's tree limit, 2^21), so tests need not create millions of files.
    #[doc(hidden)]
    pub max_dir_entries: Option<usize>,
}

/// A problem that did not stop the backup.
#[derive(Clone, Debug)]
pub struct Warning {
    /// The path concerned.
    pub path: PathBuf,
    /// What happened.
    pub message: String,
    /// True when the entry is missing from the snapshot (this makes the backup partial, exit 3);
    /// false for notes about something that was saved (changed while read, xattrs left out).
    pub not_saved: bool,
}

/// The outcome of a backup.
pub struct BackupResult {
    /// The new snapshot's ID (None for a dry run).
    pub id: Option<Id>,
    /// The snapshot as written (or as it would have been).
    pub snapshot: Snapshot,
    /// Files that could not be read or changed while read.
    pub warnings: Vec<Warning>,
    /// Packs left unindexed by an interrupted backup or prune that this backup adopted
    /// (format-spec/17-consistency.md §17.6).
    pub adopted_packs: usize,
    /// No snapshot was written because nothing changed against the parent
    /// ([`BackupOptions::skip_if_unchanged`]).
    pub skipped_unchanged: bool,
}

/// State shared by all workers of one backup.
pub(crate) struct Ctx<'r> {
    repo: &'r Repository,
    index: Index,
    packer: Packer<'r>,
    chunker: Chunker,
    opts: &'r BackupOptions,
    progress: &'r Progress,
    summary: Mutex<Summary>,
    warnings: Mutex<Vec<Warning>>,
    /// Directory descriptors the walk holds now (see `walk::DirSlot`).
    open_dirs: AtomicU64,
    /// The I/O pool of a walk (None for streams, or with `io_threads` 0).
    io: Option<crate::iopool::IoPool>,
    /// Whether reading ahead pays lately (see `prefetch::Gauge`).
    gauge: std::sync::Arc<prefetch::Gauge>,
    /// A backup key's parent trees, from its local cache (it cannot read the repository's).
    parent_trees: Option<HashMap<Id, Vec<u8>>>,
    /// The trees of this snapshot, kept for a backup key's local cache.
    new_trees: Option<Mutex<HashMap<Id, Vec<u8>>>>,
    /// The snapshot's paths (absolute), each a root of its own filesystem under `-x`.
    roots: std::collections::HashSet<Vec<u8>>,
}

impl Ctx<'_> {
    /// Whether `path` is one of the paths given to the backup.
    fn is_root(&self, path: &Path) -> bool {
        self.roots.contains(path.as_os_str().as_encoded_bytes())
    }

    /// Record an entry that is missing from the snapshot.
    fn warn(&self, path: impl Into<PathBuf>, message: impl Into<String>) {
        self.warnings.lock().unwrap().push(Warning { path: path.into(), message: message.into(), not_saved: true });
    }

    /// Record something worth knowing about an entry that was saved.
    fn note(&self, path: impl Into<PathBuf>, message: impl Into<String>) {
        self.warnings.lock().unwrap().push(Warning { path: path.into(), message: message.into(), not_saved: false });
    }

    fn count(&self, f: impl FnOnce(&mut Summary)) {
        f(&mut self.summary.lock().unwrap());
    }

    /// Store a blob unless it is already there.
    fn store(&self, t: BlobType, id: &Id, plain: &[u8]) -> Result<()> {
        if self.opts.dry_run {
            if self.packer.reserve(&self.index, t, id) {
                self.count(|s| s.bytes_added += plain.len() as u64);
            }
            return Ok(());
        }
        if self.packer.store(&self.index, t, id, plain)? {
            self.count(|s| s.bytes_added += plain.len() as u64);
        }
        Ok(())
    }

    /// Hash and store one chunk.
    fn store_chunk(&self, c: &[u8]) -> Result<ChunkRef> {
        let id = self.repo.keys().blob_id(c);
        self.store(BlobType::Data, &id, c)?;
        Ok(ChunkRef { id, len: c.len() as u32 })
    }

    /// Hash and store chunks of an in-memory buffer in parallel; returns references in order.
    fn store_chunks(&self, chunks: &[&[u8]]) -> Result<Vec<ChunkRef>> {
        chunks.par_iter().map(|c| self.store_chunk(c)).collect()
    }

    /// Chunk and store a stream of any length. The calling thread reads and cuts; each chunk is
    /// sealed by a task in the rayon pool, with at most [`INFLIGHT_BYTES`] of chunks in flight.
    /// While waiting for room the reader runs pool work itself (`yield_now`), so a pool whose
    /// every thread is reading cannot deadlock.
    pub(crate) fn store_stream(&self, reader: impl Read) -> std::io::Result<Result<(u64, Vec<ChunkRef>)>> {
        let inflight = AtomicU64::new(0);
        let results: Mutex<Vec<(usize, Result<ChunkRef>)>> = Mutex::new(Vec::new());
        let mut size = 0u64;
        let mut io_err = None;
        rayon::in_place_scope(|s| {
            for (i, chunk) in self.chunker.stream(reader).enumerate() {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        io_err = Some(e);
                        break;
                    }
                };
                let len = chunk.len() as u64;
                size += len;
                self.progress.bytes.fetch_add(len, Relaxed);
                while inflight.load(Relaxed) >= INFLIGHT_BYTES {
                    match rayon::yield_now() {
                        Some(rayon::Yield::Executed) => {}
                        Some(rayon::Yield::Idle) => std::thread::yield_now(),
                        // Outside the pool (e.g. `--stdin` on the main thread): nothing to run here.
                        None => std::thread::sleep(std::time::Duration::from_micros(200)),
                    }
                }
                inflight.fetch_add(len, Relaxed);
                let (inflight, results) = (&inflight, &results);
                s.spawn(move |_| {
                    let r = self.store_chunk(&chunk);
                    drop(chunk);
                    results.lock().unwrap().push((i, r));
                    inflight.fetch_sub(len, Relaxed);
                });
            }
        });
        let mut results = results.into_inner().unwrap();
        // A repository error is fatal and must not be masked by a read error of the same file.
        if let Some(pos) = results.iter().position(|(_, r)| r.is_err()) {
            return Ok(Err(results.swap_remove(pos).1.unwrap_err()));
        }
        if let Some(e) = io_err {
            return Err(e);
        }
        results.sort_unstable_by_key(|(i, _)| *i);
        self.count(|s| s.bytes_read += size);
        Ok(results.into_iter().map(|(_, r)| r).collect::<Result<Vec<_>>>().map(|refs| (size, refs)))
    }

    /// Encode and store a tree; returns its ID, or why it exceeds the format's tree limits
    /// (format-spec 12.2; nothing is stored then). `dir` names the directory in errors. A tree
    /// readers would reject is never written.
    fn store_tree(&self, tree: &Tree, dir: &std::path::Path) -> Result<std::result::Result<Id, String>> {
        let bytes = tree.encode();
        if bytes.len() > crate::format::tree::MAX_TREE_LEN || tree.nodes.len() > crate::format::tree::MAX_TREE_NODES {
            return Ok(Err(format!(
                "a directory listing of {} bytes ({} entries) exceeds the format's tree limit",
                bytes.len(),
                tree.nodes.len()
            )));
        }
        tree.validate().map_err(|e| Error::InvalidArgument(format!("{}: cannot be stored: {e}", dir.display())))?;
        let id = self.repo.keys().blob_id(&bytes);
        self.store(BlobType::Tree, &id, &bytes)?;
        if let Some(keep) = &self.new_trees {
            keep.lock().unwrap().insert(id, bytes);
        }
        Ok(Ok(id))
    }

    /// [`Ctx::store_tree`] where a tree over the limits cannot be left out (the snapshot's root
    /// and the directories above the backed-up paths): the backup fails.
    fn store_tree_or_fail(&self, tree: &Tree, dir: &std::path::Path) -> Result<Id> {
        self.store_tree(tree, dir)?.map_err(|why| Error::InvalidArgument(format!("{}: {why}", dir.display())))
    }

    /// Most entries a directory may have to be saved: the format's tree limit, or less in tests.
    fn max_dir_entries(&self) -> usize {
        let max = crate::format::tree::MAX_TREE_NODES;
        self.opts.max_dir_entries.map_or(max, |n| n.min(max))
    }

    /// Load a tree of the parent snapshot; a parent that cannot be read is only a warning
    /// (the backup then reads everything below it).
    fn parent_tree(&self, id: Option<Id>) -> Option<Tree> {
        let id = id?;
        let read = match &self.parent_trees {
            Some(trees) => trees
                .get(&id)
                .ok_or_else(|| Error::integrity("backup parent cache", format!("tree {id} is missing")))
                .and_then(|plain| Tree::decode(plain, &crate::format::blob::describe(BlobType::Tree, &id))),
            None => self.repo.read_tree(&self.index, &id),
        };
        match read {
            Ok(t) => Some(t),
            Err(e) => {
                self.note(
                    "(parent snapshot)",
                    format!("cannot use parent tree {id}: {e}; reading everything below it"),
                );
                None
            }
        }
    }
}

fn username_ids() -> (String, u32, u32) {
    let (uid, gid) = crate::sys::ids();
    (crate::sys::username(), uid, gid)
}

/// `p` as a backup records it in the snapshot: absolute, with `.` and `..` resolved lexically.
pub fn make_absolute(p: &std::path::Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p).map_err(|e| Error::InvalidArgument(format!("{}: {e}", p.display())))?;
    // Normalise `.` and `..` lexically, as restic does; symlinks in the path are kept.
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    Ok(out)
}

/// The snapshot to compare against: explicit, or the latest with the same host and paths, as
/// (snapshot ID, root tree).
fn choose_parent(repo: &Repository, opts: &BackupOptions, host: &str, paths: &[Vec<u8>]) -> Result<Option<(Id, Id)>> {
    // `--force` still has a parent: it reads every file, but counts against it and records it.
    let chosen = match &opts.parent {
        Some(r) => Some(repo.find_snapshot(r).map(|(id, s)| (id, s.tree))?),
        None => {
            let mut sorted = paths.to_vec();
            sorted.sort();
            repo.list_snapshots()?
                .into_iter()
                .rev()
                .filter(|(_, s)| {
                    let mut p = s.paths.clone();
                    p.sort();
                    s.hostname == host && p == sorted
                })
                .find(|(id, _)| current_generation(repo, id))
                .map(|(id, s)| (id, s.tree))
        }
    };
    Ok(chosen.filter(|(id, _)| current_generation(repo, id)))
}

/// Whether snapshot `id` may be a parent: during an unfinished key rotation, one not yet
/// rewritten names its blobs by the previous blob-ID key, which is going away, and the new
/// snapshot must not reuse them (format-spec/25 §25.4); its rewritten copy may.
fn current_generation(repo: &Repository, id: &Id) -> bool {
    repo.keys().previous().is_none() || repo.sealed_by_current_keys(crate::format::header::FileKind::Snapshot, id)
}

/// Where a backup key keeps its parent trees for `host` and `paths`, if it has a cache.
fn parent_cache_file(repo: &Repository, opts: &BackupOptions, host: &str, paths: &[Vec<u8>]) -> Option<PathBuf> {
    let (root, key) = (opts.parent_cache.as_ref()?, repo.backup_cache_key()?);
    let mut sorted = paths.to_vec();
    sorted.sort();
    Some(parents::path_of(root, key, host, &sorted))
}

/// A backup key's parent, from its local cache: the repository's own snapshots are sealed to
/// the read key. A missing cache only means every file is read; an unreadable one says why.
fn cached_parent(repo: &Repository, file: &Path) -> Result<Option<parents::Parent>> {
    let Some(key) = repo.backup_cache_key() else { return Ok(None) };
    let key = crate::crypto::SymKey::from_bytes(*key);
    parents::read(file)?.map(|b| parents::open(&key, file, &b, &|t| repo.keys().blob_id(t))).transpose()
}

/// Keep this snapshot's trees in a backup key's local cache for the next backup.
fn save_parent_cache(repo: &Repository, file: &Path, snapshot: Id, tree: Id, packed: &[u8]) -> Result<()> {
    let key = repo.backup_cache_key().ok_or_else(|| Error::InvalidArgument("not a backup key".into()))?;
    let bytes = parents::seal(&crate::crypto::SymKey::from_bytes(*key), file, snapshot, tree, packed)?;
    parents::write(file, &bytes)
}

/// Back up `opts.paths` into `repo`.
pub fn backup(repo: &Repository, opts: &BackupOptions, progress: &Progress) -> Result<BackupResult> {
    if opts.paths.is_empty() {
        return Err(Error::InvalidArgument("no paths to back up".into()));
    }
    let paths = opts.paths.iter().map(|p| make_absolute(p)).collect::<Result<Vec<_>>>()?;
    // As restic: a path that cannot be found is skipped with a warning (the backup is then
    // partial), and only when none is left is there nothing to back up.
    let mut missing = Vec::new();
    let paths: Vec<PathBuf> = paths
        .into_iter()
        .filter(|p| match std::fs::symlink_metadata(p) {
            Ok(_) => true,
            Err(e) => {
                missing.push((p.clone(), e));
                false
            }
        })
        .collect();
    if paths.is_empty() {
        let (p, e) = &missing[0];
        return Err(Error::InvalidArgument(format!("nothing to back up: {}: {e}", p.display())));
    }
    walk::raise_open_file_limit();
    let io = match opts.io_threads.unwrap_or(DEFAULT_IO_THREADS) {
        0 => None,
        n => {
            // Opened-ahead files share the open-file limit with the walk's directories.
            let room = crate::iopool::Room {
                bytes: prefetch::ROOM_BYTES,
                files: prefetch::ROOM_FILES.min(walk::dir_fd_budget()),
            };
            let pool = crate::iopool::IoPool::new(n, room);
            Some(pool.map_err(|e| Error::Io { path: "(I/O threads)".into(), source: e })?)
        }
    };
    run(
        repo,
        opts,
        progress,
        paths.iter().map(|p| p.as_os_str().as_encoded_bytes().to_vec()).collect(),
        io,
        |ctx, parent| {
            for (p, e) in &missing {
                ctx.warn(p, format!("cannot be backed up, skipping: {e}"));
            }
            with_scan_ahead(ctx, &paths, || walk::backup_roots(ctx, &paths, parent))
        },
    )
}

/// Run `backup` with, when someone watches the progress, the scan-ahead counting its totals
/// on a thread of its own (stopped if the backup finishes first).
fn with_scan_ahead<T: Send>(ctx: &Ctx, paths: &[PathBuf], backup: impl FnOnce() -> T) -> T {
    if !ctx.progress.watched {
        return backup();
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| scan::scan(ctx, paths, &stop));
        let r = backup();
        stop.store(true, Relaxed);
        r
    })
}

/// Back up one stream (e.g. a database dump) as the file `name` at the root of the snapshot.
/// The stream is always read in full: there is no way to know it is unchanged. An empty stream
/// is refused ([`Error::StreamRejected`], nothing written) unless `opts.allow_empty`.
pub fn backup_stdin(
    repo: &Repository,
    opts: &BackupOptions,
    progress: &Progress,
    reader: impl Read,
    name: &str,
) -> Result<BackupResult> {
    backup_stream(repo, opts, progress, reader, name, "standard input", || Ok(()))
}

/// [`backup_stdin`] with a last word: `finish` runs after the whole stream is stored and before
/// the snapshot (the commit point) is written; an error from it, or an empty stream without
/// `opts.allow_empty`, leaves no snapshot. `source` names the stream in messages.
pub(crate) fn backup_stream(
    repo: &Repository,
    opts: &BackupOptions,
    progress: &Progress,
    reader: impl Read,
    name: &str,
    source: &str,
    finish: impl FnOnce() -> Result<()>,
) -> Result<BackupResult> {
    crate::format::tree::validate_name(name.as_bytes())
        .map_err(|e| Error::InvalidArgument(format!("--stdin-filename {name:?}: {e}")))?;
    run(repo, opts, progress, vec![name.as_bytes().to_vec()], None, |ctx, _parent| {
        // `reader` is dropped when this returns, so a source still writing sees its pipe close.
        let stored = ctx.store_stream(reader);
        let verdict = finish();
        let (size, content) = match stored {
            // A repository error stopped the reading: the source's failure is only its echo.
            Ok(Err(e)) => return Err(e),
            // Otherwise a failed source explains a short or broken stream, so it is reported.
            Ok(Ok(v)) => verdict.map(|()| v)?,
            Err(e) => return Err(verdict.err().unwrap_or(Error::Io { path: "<stdin>".into(), source: e })),
        };
        if size == 0 && !opts.allow_empty {
            return Err(Error::StreamRejected(format!("{source} was empty (use --allow-empty to save it anyway)")));
        }
        let now = crate::sys::now_nanos();
        let (user, uid, gid) = username_ids();
        let node = Node {
            name: name.as_bytes().to_vec(),
            kind: NodeKind::File { size, content },
            mode: 0o644,
            uid,
            gid,
            user,
            group: crate::sys::group_name(gid),
            mtime: now,
            ctime: now,
            inode: 0,
            device: 0,
            links: 1,
            xattrs: vec![],
        };
        ctx.count(|s| s.files_new += 1);
        ctx.progress.files.fetch_add(1, Relaxed);
        ctx.store_tree_or_fail(&Tree { nodes: vec![node] }, std::path::Path::new("<stdin>"))
    })
}

fn run(
    repo: &Repository,
    opts: &BackupOptions,
    progress: &Progress,
    snap_paths: Vec<Vec<u8>>,
    io: Option<crate::iopool::IoPool>,
    body: impl FnOnce(&Ctx, Option<Id>) -> Result<Id>,
) -> Result<BackupResult> {
    let started = crate::sys::now_nanos();
    if opts.parent.is_some() && repo.role() == crate::crypto::Role::Backup {
        // A backup key cannot read the snapshot it would name: refuse before locking.
        repo.require(&[crate::crypto::Role::Admin], "choose a parent snapshot (--parent)")?;
    }
    let lock = if opts.dry_run {
        None
    } else {
        Some(repo.lock_wait(false, opts.retry_lock, &|e| {
            if let Some(f) = &opts.on_lock_wait {
                f(e)
            }
        })?)
    };
    // Leftovers of crashed writers are only touched when no other process holds a lock: a
    // long-running backup's staged pack may legitimately be older than the threshold, and its
    // published packs are indexed by that backup. Failure is harmless.
    // A backup key removes nothing but its own lock, and cannot read the packs it would adopt.
    let backup_key = repo.role() == crate::crypto::Role::Backup;
    let alone = !opts.dry_run && !backup_key && repo.alone_in_repository().unwrap_or(false);
    if alone {
        let _ = repo.backend().clean_tmp(crate::backend::local::TMP_MAX_AGE);
    }
    let host = opts.host.clone().unwrap_or_else(crate::sys::hostname);
    let cache_file = if backup_key { parent_cache_file(repo, opts, &host, &snap_paths) } else { None };
    let mut cache_note = None;
    let (parent, parent_trees) = match &cache_file {
        Some(file) if opts.parent.is_none() => match cached_parent(repo, file) {
            Ok(Some(p)) => (Some((p.snapshot, p.tree)), Some(p.trees)),
            Ok(None) => (None, None),
            Err(e) => {
                cache_note = Some(format!("{}: {e}; reading every file", file.display()));
                (None, None)
            }
        },
        _ if backup_key && opts.parent.is_none() => (None, None),
        _ => (choose_parent(repo, opts, &host, &snap_paths)?, None),
    };
    let mut index = repo.load_index()?;
    let packer = Packer::new(repo);
    let adopted_packs = if alone { adopt_unindexed(repo, &mut index, &packer)? } else { 0 };
    let mut ctx = Ctx {
        repo,
        chunker: Chunker::new(&repo.config().chunker, repo.keys().gear()?),
        packer,
        index,
        opts,
        progress,
        summary: Mutex::new(Summary { started, ..Summary::default() }),
        warnings: Mutex::new(Vec::new()),
        open_dirs: AtomicU64::new(0),
        io,
        gauge: Default::default(),
        parent_trees,
        new_trees: cache_file.as_ref().map(|_| Mutex::default()),
        roots: snap_paths.iter().cloned().collect(),
    };
    if let Some(n) = cache_note {
        ctx.note("(backup parent cache)", n);
    }
    let tree = body(&ctx, parent.as_ref().map(|p| p.1))?;
    drop(ctx.io.take());
    // Commit order: packs and the index file are durable before the snapshot names them.
    if !opts.dry_run {
        ctx.packer.finish()?;
    }
    let stats = ctx.packer.stats();
    let new_trees = ctx.new_trees.take().map(|m| m.into_inner().unwrap());
    let mut warnings = ctx.warnings.into_inner().unwrap();
    let mut summary = ctx.summary.into_inner().unwrap();
    summary.blobs_added = stats.blobs;
    summary.bytes_stored = stats.stored_bytes;
    summary.errors = warnings.iter().filter(|w| w.not_saved).count() as u64;
    summary.finished = crate::sys::now_nanos();
    let (username, uid, gid) = username_ids();
    let mut tags = opts.tags.clone();
    tags.sort();
    tags.dedup();
    let snapshot = Snapshot {
        time: opts.time.unwrap_or(started),
        tree,
        paths: snap_paths,
        hostname: host,
        username,
        uid,
        gid,
        tags,
        parent: parent.map(|p| p.0),
        program: format!("arca {}", env!("CARGO_PKG_VERSION")),
        summary,
        original: None,
    };
    if opts.skip_if_unchanged && parent.is_some_and(|p| p.1 == snapshot.tree) {
        return Ok(BackupResult { id: None, snapshot, warnings, adopted_packs, skipped_unchanged: true });
    }
    if let Some(l) = &lock {
        l.ensure_fresh()?;
    }
    // A backup key's trees are packed for its cache while the snapshot is written.
    let (id, packed) = rayon::join(
        || if opts.dry_run { Ok(None) } else { repo.save_snapshot(&snapshot).map(Some) },
        || new_trees.map(|t| parents::pack_trees(&t)),
    );
    let id = id?;
    if let (Some(id), Some(file), Some(packed)) = (id, &cache_file, packed) {
        // The snapshot is committed: a cache that cannot be written only costs the next backup time.
        if let Err(e) = packed.and_then(|p| save_parent_cache(repo, file, id, snapshot.tree, &p)) {
            let message = format!("{e}; the next backup reads every file");
            warnings.push(Warning { path: file.clone(), message, not_saved: false });
        }
    }
    Ok(BackupResult { id, snapshot, warnings, adopted_packs, skipped_unchanged: false })
}

/// Adopt the packs no index names (format-spec/17-consistency.md §17.6): their blobs join the
/// in-memory index, so they are not stored again, and the packer indexes them with its own.
/// Each is read whole and must hash to its name (a pack `repair index --read-all-packs` left
/// out as damaged stays out); one that fails, or lists more blobs than a pack may, is left
/// alone (prune deletes it).
pub(crate) fn adopt_unindexed(repo: &Repository, index: &mut Index, packer: &Packer) -> Result<usize> {
    // During an unfinished rotation an unindexed pack may be sealed under the previous keys;
    // an index file of the new ones must never list it (format-spec/25 §25.4).
    if repo.keys().previous().is_some() {
        return Ok(0);
    }
    let candidates = repo.unindexed_packs(index)?;
    let adopted: Vec<_> = candidates
        .par_iter()
        .filter_map(|(id, _)| repo.read_pack_toc_verified(id).ok())
        .filter(|p| p.blobs.len() <= crate::repo::packer::MAX_PACK_BLOBS)
        .collect();
    let n = adopted.len();
    index.add_packs(adopted.iter().cloned());
    packer.adopt(adopted);
    Ok(n)
}

/// I/O threads of a backup unless set: measured on a virtual disk, where a cold kernel tree's
/// backup time fell until about this many (README, "Backup on a cold cache").
pub const DEFAULT_IO_THREADS: usize = 16;

/// Bytes of chunks read from one stream but not yet sealed: enough to keep every core busy.
const INFLIGHT_BYTES: u64 = 8 << 20;

/// Warnings that start with this are "changed while read" (the file is stored, but may be torn).
pub const CHANGED_PREFIX: &str = "changed while being read";
