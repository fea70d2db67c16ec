//! Restore: recreate a snapshot (or part of it) under a target directory.
//!
//! The snapshot is first measured ([`crate::repo::walk::measure`]): a tree that nests too deep
//! or expands too far is refused before anything is written. Then one iterative pre-order walk
//! (an explicit stack of directories, each held by an open descriptor) creates directories,
//! symlinks and special files as it meets them and queues regular files in a batch. A batch —
//! at most [`BATCH_FILES`] files, or as many open directories as the descriptor budget allows
//! (a share of `RLIMIT_NOFILE`, at most [`MAX_DIR_BUDGET`]) — is written in
//! parallel, ordered by where each file's first chunk is stored; then its hard links are made and
//! the directories finished so far get their metadata, deepest first. Memory therefore follows
//! the batch and the current directory path, not the size of the snapshot.
//!
//! Every chunk is authenticated and re-hashed before it is written at its offset; all-zero chunks
//! are left as holes. What restore will and will not touch is set out in [`target`] and in the
//! README ("What restore touches"): every file operation is relative to a directory descriptor,
//! nothing is followed, an existing inode is never written into, and a directory in the way is a
//! conflict unless `--delete` is given.

mod meta;
mod policy;
pub(crate) mod target;

pub use meta::MetaOptions;

use crate::archiver::{Excludes, Progress};
use crate::browse::Change;
use crate::error::{Error, IoContext, Result};
use crate::format::blob::BlobType;
use crate::format::tree::{Node, NodeKind};
use crate::id::Id;
use crate::repo::index::Index;
use crate::repo::Repository;
use rayon::prelude::*;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use std::collections::{HashMap, HashSet};
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Files written per batch: bounds the restore plan's memory (a few hundred bytes each).
pub const BATCH_FILES: usize = 32768;
/// Most finished directories (each an open descriptor) held before a batch is written.
pub const MAX_DIR_BUDGET: usize = 8192;

/// What to do with a file that already exists at the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Overwrite {
    /// Leave anything already there alone.
    Never,
    /// Compare the existing file's content with the snapshot chunk by chunk and rewrite it only
    /// if it differs; owner, mode and times are corrected either way (the default).
    #[default]
    IfChanged,
    /// Rewrite unless size and modification time match (fast, trusts metadata); owner, mode and
    /// times are corrected either way.
    IfSizeOrMtimeDiffer,
    /// Always rewrite.
    Always,
}

/// Restore options.
#[derive(Default)]
pub struct RestoreOptions {
    /// Directory to restore into (created if missing). When a single non-directory is restored
    /// and this is not an existing directory, it is the path of the restored file itself.
    pub target: PathBuf,
    /// Restore only entries matching these patterns (and what is below them). Patterns with a
    /// `/` match the path relative to the restored directory (`/config`); others match names.
    pub include: Vec<String>,
    /// Skip entries matching these patterns (same matching as `include`).
    pub exclude: Vec<String>,
    /// Policy for existing files.
    pub overwrite: Overwrite,
    /// Decide everything (including the overwrite policy's comparisons) but write nothing.
    pub dry_run: bool,
    /// Re-read every restored file right after writing it (through its descriptor, while the
    /// page cache is warm) and compare every chunk's hash and the length with the snapshot; also
    /// compare the metadata set on files, directories, symlinks, special files and hard links.
    /// Differences go to [`RestoreStats::mismatched`].
    pub verify: bool,
    /// With `verify`: called with each restored file and its path before it is read back (a
    /// test hook: lets a test change what was written).
    pub before_verify: Option<VerifyHook>,
    /// Remove what is in restored directories but not in the snapshot (and directories in the
    /// way of other entries). Not with `include`.
    pub delete: bool,
    /// Do not create character or block devices.
    pub no_devices: bool,
    /// Do not create FIFOs.
    pub no_specials: bool,
    /// Which metadata to apply.
    pub meta: MetaOptions,
    /// With `dry_run`: list every entry that differs from the snapshot in
    /// [`RestoreStats::changes`] (content, type, mode, owner, mtime; with `delete`, extra entries).
    /// This is `arca verify`.
    pub list_changes: bool,
    /// Restore only the entries this chooses, by path relative to the restored path and node
    /// (what is below a chosen directory is not implied; directories leading to a chosen entry
    /// are made). Instead of `include`'s inheritance; `arca drill`'s samples use it.
    pub only: Option<Selector>,
}

/// [`RestoreOptions::before_verify`]: called with a restored file and its path.
pub type VerifyHook = Arc<dyn Fn(&File, &Path) + Send + Sync>;

/// A per-entry choice for [`RestoreOptions::only`].
pub type Selector = Box<dyn Fn(&Path, &Node) -> bool + Send + Sync>;

/// One difference between the target and the snapshot, found by a dry run with `list_changes`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetChange {
    /// `added`: missing from the target; `removed`: only in the target; `modified`: content or
    /// type differs; `metadata`: mode, owner or mtime differ.
    pub change: crate::browse::Change,
    /// Path in the target.
    pub path: PathBuf,
}

/// What a restore did (or, with `dry_run`, would do).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RestoreStats {
    /// Files written.
    pub files: u64,
    /// Files left as they were (already correct, or `--overwrite never`).
    pub files_skipped: u64,
    /// Directories restored.
    pub dirs: u64,
    /// Symlinks, hard links and special files.
    pub others: u64,
    /// Entries not created by choice (`--no-devices`, `--no-specials`, sockets).
    pub others_skipped: u64,
    /// Entries removed by `--delete`.
    pub deleted: u64,
    /// Content bytes written.
    pub bytes: u64,
    /// Entries not restored because something restore does not remove is in the way.
    pub conflicts: u64,
    /// Problems: path and message. Integrity problems name the blob.
    pub errors: Vec<String>,
    /// How many of those are integrity errors (damaged or missing data).
    pub damaged: u64,
    /// Differences found by a dry run with `list_changes`, sorted by path.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<TargetChange>,
    /// With `verify`: restored entries whose content or metadata, read back, differ from the
    /// snapshot (`modified`: content, length, type or symlink target; `metadata`: mode, owner,
    /// mtime, or a hard link that is not one), sorted by path.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mismatched: Vec<TargetChange>,
    /// With `verify`: time spent verifying, summed over the threads that did it.
    pub verify_ns: u64,
    /// Time spent restoring regular files (verification included), summed over the threads.
    pub file_ns: u64,
}

/// A file's (device, inode) on the target.
type Ino = (u64, u64);

/// What happened to one file (with the inode it now is, where one was made or kept).
#[derive(Clone, Copy, Debug)]
enum Outcome {
    /// Written (or would be), this many bytes.
    Written(u64, Option<Ino>),
    /// Already had the snapshot's content (or size and mtime, by policy).
    UpToDate(Option<Ino>),
    /// Left as it was by `--overwrite never`.
    Kept,
}

/// The node at `path` inside the tree `root` (path components separated by `/`).
pub fn resolve(repo: &Repository, index: &Index, root: Id, path: &str) -> Result<Node> {
    let mut node = Node::bare_dir(b"", root);
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        let subtree = match node.kind {
            NodeKind::Dir { subtree } => subtree,
            _ => return Err(Error::NotFound(format!("{path}: {comp:?} is below a non-directory"))),
        };
        let tree = repo.read_tree(index, &subtree)?;
        node = tree
            .nodes
            .into_iter()
            .find(|n| n.name == comp.as_bytes())
            .ok_or_else(|| Error::NotFound(format!("{path}: no entry {comp:?} in the snapshot")))?;
    }
    Ok(node)
}

/// Restore `node` (found at snapshot path `snap_path`): a directory's contents go directly into
/// the target; a file or other entry is restored as `target/<name>`, or as `target` itself when
/// `target` is not an existing directory.
pub fn restore(
    repo: &Repository,
    index: &Index,
    node: &Node,
    snap_path: &str,
    opts: &RestoreOptions,
    progress: &Progress,
) -> Result<RestoreStats> {
    if opts.delete && !opts.include.is_empty() {
        return Err(Error::InvalidArgument("--delete cannot be combined with --include".into()));
    }
    let includes = opts
        .include
        .iter()
        .map(|p| Ok((Excludes::new(&[anchored(p)], vec![])?, p.clone())))
        .collect::<Result<Vec<_>>>()?;
    let excludes: Vec<String> = opts.exclude.iter().map(|p| anchored(p)).collect();
    let exclude = if excludes.is_empty() { None } else { Some(Excludes::new(&excludes, vec![])?) };
    // Descriptors: the walk's stack (≤ MAX_DEPTH), finished directories and hard-link sources.
    let limit = raise_fd_limit();
    let dir_budget =
        (limit.saturating_sub(crate::repo::walk::MAX_DEPTH as u64 + 256) / 3).clamp(64, MAX_DIR_BUDGET as u64);
    let mut r = Restorer {
        dir_budget: dir_budget as usize,
        repo,
        index,
        opts,
        progress,
        exclude,
        includes,
        matched: vec![false; opts.include.len()],
        report: Report::default(),
        stats: RestoreStats::default(),
        base: opts.target.clone(),
        rename: None,
        root_default_acl: false,
        stack: Vec::new(),
        files: Vec::new(),
        links: Vec::new(),
        finished: Vec::new(),
        hard: HashMap::new(),
        hard_dirs: HashSet::new(),
    };
    r.start(node, snap_path)?;
    r.run();
    Ok(r.finish())
}

/// A path pattern (one with an inner `/`) is relative to the restored path: `config/app.yaml`
/// means `/config/app.yaml` there. Name patterns and patterns starting with `/` or `*` stay.
fn anchored(p: &str) -> String {
    let inner = p.trim_end_matches('/').contains('/');
    if inner && !p.starts_with('/') && !p.starts_with('*') {
        format!("/{p}")
    } else {
        p.to_string()
    }
}

/// Whether the existing non-directory `name` already is the snapshot's symlink or special file.
fn same_special(dir: &OwnedFd, name: &CString, n: &Node) -> bool {
    let Ok(st) = rfs::statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) else { return false };
    let ft = FileType::from_raw_mode(st.st_mode);
    match &n.kind {
        NodeKind::Symlink { target } => {
            ft == FileType::Symlink
                && rfs::readlinkat(dir, name.as_c_str(), Vec::new()).is_ok_and(|t| t.as_bytes() == target.as_slice())
        }
        NodeKind::Fifo => ft == FileType::Fifo,
        NodeKind::CharDevice { rdev } => ft == FileType::CharacterDevice && st.st_rdev == *rdev,
        NodeKind::BlockDevice { rdev } => ft == FileType::BlockDevice && st.st_rdev == *rdev,
        _ => true,
    }
}

/// Allow as many open descriptors as the hard limit does (the walk holds one per directory
/// level); returns the limit in force.
fn raise_fd_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let l = getrlimit(Resource::Nofile);
    // `None` is unlimited.
    let raised = rustix::process::Rlimit { current: l.maximum, maximum: l.maximum };
    if l.current != l.maximum && setrlimit(Resource::Nofile, raised).is_ok() {
        return l.maximum.unwrap_or(u64::MAX);
    }
    l.current.unwrap_or(u64::MAX)
}

/// A directory on the walk's stack.
struct Frame {
    /// Where it stands in the target: not created yet, open, absent (dry run), or failed.
    state: DirState,
    /// Its name in the parent (empty for the target itself).
    name: Vec<u8>,
    /// Metadata to give it when it is finished (none for the target of a whole-snapshot restore).
    node: Option<Node>,
    /// Path relative to the target, for messages and patterns.
    rel: PathBuf,
    /// Entries still to visit.
    entries: std::vec::IntoIter<Node>,
    /// Names the snapshot has here, sorted (for `--delete`; `None` where nothing may be deleted).
    names: Option<Vec<Vec<u8>>>,
    /// Whether everything below is selected by an include pattern (or there are none).
    included: bool,
}

#[derive(Clone)]
enum DirState {
    Pending,
    Open(Arc<OwnedFd>),
    Absent,
    Failed,
}

/// A regular file to write.
struct FileJob {
    dir: Option<Arc<OwnedFd>>,
    /// Its directory has a default ACL the new file inherits (only the target itself can).
    inherits_acl: bool,
    name: CString,
    rel: PathBuf,
    node: Node,
    order: (Id, u32),
    /// First file of a hard-link group: its (device, inode) in the snapshot.
    hard_key: Option<(u64, u64)>,
}

/// A hard link to make once the batch's files are written.
struct LinkJob {
    file: FileJob,
    key: (u64, u64),
}

/// The first file of a hard-link group. Later members are linked to the very inode restore made
/// or kept for it (checked by device and inode, linked through its descriptor), never to
/// whatever bears its name by then.
struct HardSource {
    dir: Option<Arc<OwnedFd>>,
    name: CString,
    /// Content identity: size and chunk list (a member with other content is restored apart).
    digest: [u8; 32],
    /// The inode once the file is restored (and known good).
    ino: Option<Ino>,
    ok: bool,
    /// Members still to come; the entry is dropped at zero, so memory follows open groups.
    remaining: u64,
}

fn content_digest(n: &Node) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    if let NodeKind::File { size, content } = &n.kind {
        h.update(&size.to_le_bytes());
        for c in content {
            h.update(&c.id.0);
            h.update(&c.len.to_le_bytes());
        }
    }
    *h.finalize().as_bytes()
}

#[derive(Default)]
struct Report {
    mismatched: Mutex<Vec<TargetChange>>,
    verify_ns: AtomicU64,
    file_ns: AtomicU64,
    errors: Mutex<Vec<String>>,
    damaged: AtomicU64,
    conflicts: AtomicU64,
    changes: Mutex<Vec<TargetChange>>,
}

impl Report {
    fn mismatch(&self, change: crate::browse::Change, path: PathBuf) {
        self.mismatched.lock().unwrap().push(TargetChange { change, path });
    }

    /// Run `f`, adding its duration to the verification time.
    fn timed<T>(&self, f: impl FnOnce() -> T) -> T {
        let t = std::time::Instant::now();
        let r = f();
        self.verify_ns.fetch_add(t.elapsed().as_nanos() as u64, Relaxed);
        r
    }

    fn change(&self, change: crate::browse::Change, path: PathBuf) {
        self.changes.lock().unwrap().push(TargetChange { change, path });
    }

    fn add(&self, p: &Path, e: &dyn std::fmt::Display, integrity: bool) {
        self.errors.lock().unwrap().push(format!("{}: {e}", p.display()));
        if integrity {
            self.damaged.fetch_add(1, Relaxed);
        }
    }

    fn io(&self, p: &Path, e: &std::io::Error) {
        if target::is_conflict(e) {
            self.conflicts.fetch_add(1, Relaxed);
        }
        self.add(p, e, false);
    }

    fn error(&self, p: &Path, e: &Error) {
        match e {
            // The path is already in the message: name it once.
            Error::Io { source, .. } => self.io(p, source),
            _ => self.add(p, e, e.is_integrity()),
        }
    }
}

struct Restorer<'a> {
    repo: &'a Repository,
    index: &'a Index,
    opts: &'a RestoreOptions,
    progress: &'a Progress,
    exclude: Option<Excludes>,
    includes: Vec<(Excludes, String)>,
    matched: Vec<bool>,
    report: Report,
    stats: RestoreStats,
    /// The directory the walk starts in: the target, or the parent of a single restored file.
    base: PathBuf,
    /// The name a single restored entry is created under, when `--target` names it.
    rename: Option<Vec<u8>>,
    /// The target directory has a default ACL (which restore leaves alone there).
    root_default_acl: bool,
    stack: Vec<Frame>,
    files: Vec<FileJob>,
    links: Vec<LinkJob>,
    /// Directories whose entries are all queued: metadata once the batch is written.
    finished: Vec<(Arc<OwnedFd>, Node, PathBuf)>,
    hard: HashMap<(u64, u64), HardSource>,
    /// Finished directories (and hard-link source directories) held open before a flush.
    dir_budget: usize,
    /// Directories held open for hard-link sources (bounded by `dir_budget`).
    hard_dirs: HashSet<usize>,
}

impl Restorer<'_> {
    /// Record a difference for `arca verify` (dry run with `list_changes`).
    fn note(&self, change: crate::browse::Change, rel: &Path) {
        if self.opts.list_changes {
            self.report.change(change, self.full(rel));
        }
    }

    fn full(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.base.clone()
        } else {
            self.base.join(rel)
        }
    }

    /// Set up the root frame: the target directory, or the parent of a single restored file.
    fn start(&mut self, node: &Node, snap_path: &str) -> Result<()> {
        let t = &self.opts.target;
        if let NodeKind::Dir { subtree } = node.kind {
            crate::repo::walk::measure(self.repo, self.index, subtree)?;
            let tree = self.repo.read_tree(self.index, &subtree)?;
            let state = self.open_target(t)?;
            let meta = (!snap_path.is_empty() && snap_path != "/" && node.mtime != 0).then(|| node.clone());
            let names = self.opts.delete.then(|| tree.nodes.iter().map(|n| n.name.clone()).collect());
            let included = self.includes.is_empty();
            self.stack.push(Frame {
                state,
                name: Vec::new(),
                node: meta,
                rel: PathBuf::new(),
                entries: tree.nodes.into_iter(),
                names,
                included,
            });
            self.delete_extra(0);
            return Ok(());
        }
        // A single entry: into `target` if that is a directory, else as `target` itself.
        let entry = node.clone();
        if target::open_path(t, false).is_err() {
            let name =
                t.file_name().ok_or_else(|| Error::InvalidArgument(format!("{}: not a file name", t.display())))?;
            // Patterns still match the snapshot's name; the entry is created under this one.
            self.rename = Some(name.as_bytes().to_vec());
            self.base = t.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        }
        let state = self.open_target(&self.base.clone())?;
        let included = self.includes.is_empty();
        let frame = Frame {
            state,
            name: Vec::new(),
            node: None,
            rel: PathBuf::new(),
            entries: vec![entry].into_iter(),
            names: None,
            included,
        };
        self.stack.push(frame);
        Ok(())
    }

    fn open_target(&mut self, dir: &Path) -> Result<DirState> {
        match target::open_path(dir, !self.opts.dry_run) {
            Ok(fd) => {
                self.root_default_acl = target::has_default_acl(&fd);
                Ok(DirState::Open(Arc::new(fd)))
            }
            // A dry run into a directory that does not exist yet: everything would be new. But
            // `verify` of a missing directory is an error, never "matches".
            Err(e) if self.opts.dry_run && !self.opts.list_changes && e.raw_os_error() == Some(libc::ENOENT) => {
                Ok(DirState::Absent)
            }
            Err(e) => Err(Error::Io { path: dir.to_path_buf(), source: e }),
        }
    }

    fn run(&mut self) {
        while let Some(top) = self.stack.last_mut() {
            let Some(node) = top.entries.next() else {
                let done = self.stack.pop().expect("non-empty");
                if let (DirState::Open(fd), Some(n)) = (done.state, done.node) {
                    self.finished.push((fd, n, done.rel));
                }
                self.flush_if_full();
                continue;
            };
            let rel = top.rel.join(OsStr::from_bytes(&node.name));
            let parent_included = top.included;
            let pattern_path = Path::new("/").join(&rel);
            let name = OsStr::from_bytes(&node.name);
            if self.exclude.as_ref().is_some_and(|e| e.matches(&pattern_path, name)) {
                continue;
            }
            let mut inc = match &self.opts.only {
                Some(only) => only(&rel, &node),
                None => parent_included,
            };
            for (i, (p, _)) in self.includes.iter().enumerate() {
                if p.matches(&pattern_path, name) {
                    self.matched[i] = true;
                    inc = true;
                }
            }
            let (node, rel) = match self.rename.take() {
                Some(to) => (Node { name: to.clone(), ..node }, PathBuf::from(OsStr::from_bytes(&to))),
                None => (node, rel),
            };
            self.visit(node, rel, inc);
            self.flush_if_full();
        }
        self.flush();
    }

    fn visit(&mut self, node: Node, rel: PathBuf, inc: bool) {
        if let NodeKind::Dir { subtree } = node.kind {
            let (nodes, names) = match self.repo.read_tree(self.index, &subtree) {
                Ok(t) => {
                    let names = self.opts.delete.then(|| t.nodes.iter().map(|n| n.name.clone()).collect());
                    (t.nodes, names)
                }
                Err(e) => {
                    // One damaged directory must not stop the rest of a disaster recovery; and
                    // since what belongs in it is unknown, `--delete` removes nothing there.
                    self.report.error(&self.full(&rel), &e);
                    (Vec::new(), None)
                }
            };
            let name = node.name.clone();
            let entries = nodes.into_iter();
            self.stack.push(Frame {
                state: DirState::Pending,
                name,
                node: Some(node),
                rel,
                entries,
                names,
                included: inc,
            });
            if inc {
                self.ensure_dirs();
            }
            return;
        }
        if !inc {
            return;
        }
        let Some(dir) = self.ensure_dirs() else { return };
        let name = match target::cname(&node.name) {
            Ok(n) => n,
            Err(e) => return self.report.io(&self.full(&rel), &e),
        };
        match &node.kind {
            NodeKind::File { content, .. } => {
                let order = content
                    .first()
                    .and_then(|c| self.index.lookup(BlobType::Data, &c.id))
                    .map(|l| (l.pack, l.offset))
                    .unwrap_or_default();
                let inherits_acl = self.stack.len() == 1 && self.root_default_acl;
                let job = FileJob { dir, inherits_acl, name, rel, node, order, hard_key: None };
                self.queue_file(job);
            }
            _ => self.make_other(dir.as_deref(), &name, &rel, &node),
        }
    }

    /// Queue a file, or a link to an earlier file of the same hard-link group.
    fn queue_file(&mut self, mut job: FileJob) {
        let n = &job.node;
        if n.links > 1 && n.inode != 0 {
            let key = (n.device, n.inode);
            if self.hard.contains_key(&key) {
                self.links.push(LinkJob { file: job, key });
                return;
            }
            let dir_key = job.dir.as_ref().map_or(0, |d| Arc::as_ptr(d) as usize);
            if self.hard_dirs.len() < self.dir_budget || self.hard_dirs.contains(&dir_key) {
                self.hard_dirs.insert(dir_key);
                let src = HardSource {
                    dir: job.dir.clone(),
                    name: job.name.clone(),
                    digest: content_digest(n),
                    ino: None,
                    ok: false,
                    remaining: n.links - 1,
                };
                self.hard.insert(key, src);
                job.hard_key = Some(key);
            }
        }
        self.files.push(job);
    }

    /// Create (or, in a dry run, look up) every directory on the stack not made yet. Returns the
    /// innermost one's descriptor (`None` in a dry run where it does not exist), or nothing when a
    /// directory could not be made — then its whole subtree is skipped.
    fn ensure_dirs(&mut self) -> Option<Option<Arc<OwnedFd>>> {
        // Frames are made top-down, so the pending ones are a suffix of the stack: each is visited
        // once, whatever the depth.
        let first = self.stack.iter().rposition(|f| !matches!(f.state, DirState::Pending)).map_or(0, |i| i + 1);
        for i in first..self.stack.len() {
            let parent = self.stack[i - 1].state.clone();
            let state = match parent {
                DirState::Open(p) => self.make_dir(&p, i),
                DirState::Absent => DirState::Absent,
                DirState::Failed | DirState::Pending => DirState::Failed,
            };
            if matches!(state, DirState::Failed) {
                // Skip everything below in O(1): empty the iterators of it and its descendants.
                for f in &mut self.stack[i..] {
                    f.state = DirState::Failed;
                    f.entries = Vec::new().into_iter();
                }
                return None;
            }
            self.stats.dirs += 1;
            self.progress.dirs.fetch_add(1, Relaxed);
            self.stack[i].state = state;
            self.delete_extra(i);
        }
        match &self.stack.last()?.state {
            DirState::Open(fd) => Some(Some(fd.clone())),
            DirState::Absent => Some(None),
            _ => None,
        }
    }

    /// Make the directory of frame `i` under `parent`, clearing a non-directory in its way if the
    /// policy allows.
    fn make_dir(&mut self, parent: &Arc<OwnedFd>, i: usize) -> DirState {
        let rel = self.stack[i].rel.clone();
        let full = self.full(&rel);
        let name = match target::cname(&self.stack[i].name) {
            Ok(n) => n,
            Err(e) => {
                self.report.io(&full, &e);
                return DirState::Failed;
            }
        };
        let existing = target::existing(parent.as_fd(), &name);
        if self.opts.dry_run {
            return match existing {
                Ok(target::Existing::Dir) => match target::open_dir(parent.as_fd(), &name) {
                    Ok(fd) => DirState::Open(Arc::new(fd)),
                    Err(e) => {
                        self.report.io(&full, &e);
                        DirState::Failed
                    }
                },
                Ok(target::Existing::Other) if self.opts.overwrite == Overwrite::Never => {
                    self.report.io(&full, &target::conflict("a non-directory is in the way of a directory"));
                    DirState::Failed
                }
                Ok(target::Existing::Other) => {
                    self.note(Change::Modified, &rel);
                    DirState::Absent
                }
                _ => {
                    self.note(Change::Added, &rel);
                    DirState::Absent
                }
            };
        }
        let made = match existing {
            Ok(target::Existing::Other) if self.opts.overwrite == Overwrite::Never => {
                Err(target::conflict("a non-directory is in the way of a directory (--overwrite never)"))
            }
            Ok(target::Existing::Other) => {
                target::remove(parent.as_fd(), &name, false).and_then(|_| target::make_dir(parent.as_fd(), &name))
            }
            _ => target::make_dir(parent.as_fd(), &name),
        };
        match made {
            Ok(fd) => DirState::Open(Arc::new(fd)),
            Err(e) => {
                self.report.io(&full, &e);
                DirState::Failed
            }
        }
    }

    /// `--delete`: remove what directory `i` of the stack holds but the snapshot does not.
    fn delete_extra(&mut self, i: usize) {
        let f = &self.stack[i];
        let (DirState::Open(fd), Some(keep)) = (&f.state, &f.names) else { return };
        let (fd, rel) = (fd.clone(), f.rel.clone());
        let names = match target::list(fd.as_fd()) {
            Ok(n) => n,
            Err(e) => return self.report.io(&self.full(&rel), &e),
        };
        let extra: Vec<Vec<u8>> = names.into_iter().filter(|n| keep.binary_search(n).is_err()).collect();
        for n in extra {
            let r = rel.join(OsStr::from_bytes(&n));
            if self.exclude.as_ref().is_some_and(|e| e.matches(&Path::new("/").join(&r), OsStr::from_bytes(&n))) {
                continue;
            }
            let res = if self.opts.dry_run {
                Ok(())
            } else {
                target::cname(&n).and_then(|c| target::remove(fd.as_fd(), &c, true))
            };
            match res {
                Ok(()) => {
                    self.stats.deleted += 1;
                    self.note(Change::Removed, &r);
                }
                Err(e) => self.report.io(&self.full(&r), &e),
            }
        }
    }

    /// A symlink, FIFO or device node.
    fn make_other(&mut self, dir: Option<&OwnedFd>, name: &CString, rel: &Path, n: &Node) {
        let skip = match n.kind {
            NodeKind::CharDevice { .. } | NodeKind::BlockDevice { .. } => self.opts.no_devices,
            NodeKind::Fifo => self.opts.no_specials,
            NodeKind::Socket => true,
            _ => false,
        };
        if skip {
            self.stats.others_skipped += 1;
            return;
        }
        match self.try_make_other(dir, name, rel, n) {
            Ok(true) => self.stats.others += 1,
            Ok(false) => {}
            Err(e) => self.report.io(&self.full(rel), &e),
        }
    }

    fn try_make_other(&self, dir: Option<&OwnedFd>, name: &CString, rel: &Path, n: &Node) -> std::io::Result<bool> {
        let Some(dir) = dir else { return Ok(true) }; // dry run, directory absent
        match target::existing(dir, name)? {
            target::Existing::Nothing => {}
            target::Existing::Dir if !self.opts.delete => {
                return Err(target::conflict("a directory is in the way (use --delete to replace it)"))
            }
            _ if self.opts.overwrite == Overwrite::Never => return Ok(false),
            _ if self.opts.dry_run => {
                if !same_special(dir, name, n) {
                    self.note(Change::Modified, rel);
                }
                return Ok(true);
            }
            _ => target::remove(dir, name, self.opts.delete)?,
        }
        if self.opts.dry_run {
            self.note(Change::Added, rel);
            return Ok(true);
        }
        let private = Mode::from_raw_mode(0o600);
        match &n.kind {
            NodeKind::Symlink { target } => rfs::symlinkat(OsStr::from_bytes(target), dir, name.as_c_str())?,
            NodeKind::Fifo => rfs::mknodat(dir, name.as_c_str(), FileType::Fifo, private, 0)?,
            NodeKind::CharDevice { rdev } => {
                rfs::mknodat(dir, name.as_c_str(), FileType::CharacterDevice, private, *rdev as _)?
            }
            NodeKind::BlockDevice { rdev } => {
                rfs::mknodat(dir, name.as_c_str(), FileType::BlockDevice, private, *rdev as _)?
            }
            _ => return Ok(false),
        }
        meta::apply_special(dir.as_fd(), name, n, &self.opts.meta)?;
        if self.opts.verify {
            self.report.timed(|| self.verify_special(dir, name, rel, n))?;
        }
        Ok(true)
    }

    fn flush_if_full(&mut self) {
        if self.files.len() + self.links.len() >= BATCH_FILES || self.finished.len() >= self.dir_budget {
            self.flush();
        }
    }

    /// Write the queued files (in pack order, in parallel), make their hard links, then give the
    /// finished directories their metadata, deepest first.
    fn flush(&mut self) {
        let mut files = std::mem::take(&mut self.files);
        files.sort_by_key(|f| f.order);
        let me = &*self;
        let outcomes: Vec<Option<Outcome>> = self.repo.io_scope(|| files.par_iter().map(|f| me.file(f)).collect());
        for (f, o) in files.iter().zip(&outcomes) {
            self.count(o);
            if let (Some(key), Some(Outcome::Written(_, ino) | Outcome::UpToDate(ino))) = (f.hard_key, o) {
                if let Some(src) = self.hard.get_mut(&key) {
                    src.ok = true;
                    src.ino = *ino;
                }
            }
        }
        for l in std::mem::take(&mut self.links) {
            self.link(l);
        }
        for (fd, n, rel) in std::mem::take(&mut self.finished) {
            if self.opts.dry_run {
                if rfs::fstat(&fd).is_ok_and(|st| meta::differs(&st, &n, &self.opts.meta)) {
                    self.note(Change::Metadata, &rel);
                }
            } else if let Err(e) = meta::apply_fd(fd.as_fd(), &n, &self.opts.meta, false) {
                self.report.io(&self.full(&rel), &e);
            } else if self.opts.verify {
                let differs = self.report.timed(|| rfs::fstat(&fd).map(|st| meta::differs(&st, &n, &self.opts.meta)));
                if differs.unwrap_or(true) {
                    self.report.mismatch(Change::Metadata, self.full(&rel));
                }
            }
        }
    }

    fn count(&mut self, o: &Option<Outcome>) {
        match o {
            Some(Outcome::Written(n, _)) => {
                self.stats.files += 1;
                self.stats.bytes += n;
            }
            Some(Outcome::UpToDate(_) | Outcome::Kept) => self.stats.files_skipped += 1,
            None => {}
        }
    }

    /// Restore one file, reporting a failure.
    fn file(&self, f: &FileJob) -> Option<Outcome> {
        let t = std::time::Instant::now();
        let r = self.restore_file(f);
        self.report.file_ns.fetch_add(t.elapsed().as_nanos() as u64, Relaxed);
        if let Ok(o) = &r {
            self.progress.files.fetch_add(1, Relaxed);
            if let Outcome::Written(n, _) = o {
                self.progress.bytes.fetch_add(*n, Relaxed);
            }
        }
        r.map_err(|e| self.report.error(&self.full(&f.rel), &e)).ok()
    }

    fn restore_file(&self, f: &FileJob) -> Result<Outcome> {
        let full = || self.full(&f.rel);
        let NodeKind::File { size, content } = &f.node.kind else { unreachable!("only files are queued") };
        let Some(dir) = &f.dir else { return Ok(Outcome::Written(*size, None)) }; // dry run, absent dir
        if self.opts.dry_run {
            return self.decide_existing(dir, f).map(|o| o.unwrap_or(Outcome::Written(*size, None)));
        }
        let file = match target::create_file(dir.as_fd(), &f.name) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if let Some(o) = self.decide_existing(dir, f)? {
                    return Ok(o);
                }
                target::remove(dir.as_fd(), &f.name, self.opts.delete).at(full())?;
                target::create_file(dir.as_fd(), &f.name).at(full())?
            }
            Err(e) => return Err(Error::Io { path: full(), source: e }),
        };
        self.write_content(&file, f, content, *size)?;
        meta::apply_fd(file.as_fd(), &f.node, &self.opts.meta, f.inherits_acl).at(full())?;
        if self.opts.verify {
            self.report.timed(|| self.verify_written(&file, f))?;
        }
        // Only the first file of a hard-link group needs its inode recorded.
        let ino = match f.hard_key {
            Some(_) => rfs::fstat(&file).ok().map(|st| (st.st_dev, st.st_ino)),
            None => None,
        };
        Ok(Outcome::Written(*size, ino))
    }

    /// The overwrite policy for an existing entry: `Some` outcome to leave it (with its owner,
    /// mode and times corrected), `None` to replace it. An existing inode is only ever kept
    /// whole, never written into, and only if it is a regular file with a single link.
    fn decide_existing(&self, dir: &OwnedFd, f: &FileJob) -> Result<Option<Outcome>> {
        let full = || self.full(&f.rel);
        let NodeKind::File { size, content } = &f.node.kind else { unreachable!("only files are queued") };
        let what = target::existing(dir, &f.name).at(full())?;
        match (&what, self.opts.overwrite) {
            (target::Existing::Nothing, _) => {
                self.note(Change::Added, &f.rel);
                return Ok(None);
            }
            (target::Existing::Dir, _) if !self.opts.delete => {
                return Err(target::conflict("a directory is in the way (use --delete to replace it)")).at(full())
            }
            (_, Overwrite::Never) => return Ok(Some(Outcome::Kept)),
            (target::Existing::Dir, _) => {
                self.note(Change::Modified, &f.rel);
                return Ok(None);
            }
            (_, Overwrite::Always) => return Ok(None),
            _ => {}
        }
        let Some(file) = target::open_existing_file(dir, &f.name).at(full())? else {
            self.note(Change::Modified, &f.rel);
            return Ok(None);
        };
        let st = rfs::fstat(&file).map_err(std::io::Error::from).at(full())?;
        // Keep an inode only if nobody else can still be writing to it: a single link, owned by
        // us or already by the snapshot's owner (someone else's file with the right bytes may be
        // mapped writable by them; made root's and set-ID, it would be theirs to change).
        let (euid, _) = crate::sys::ids();
        let trusted =
            st.st_nlink == 1 && (st.st_uid == euid || (self.opts.meta.chown_wanted() && st.st_uid == f.node.uid));
        if !trusted && !self.opts.list_changes {
            return Ok(None);
        }
        let same = match self.opts.overwrite {
            Overwrite::IfSizeOrMtimeDiffer => {
                st.st_size as u64 == *size
                    && st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64 == f.node.mtime
                    && !(self.opts.verify && !self.opts.dry_run && self.verify(&file, f).is_err())
            }
            _ => policy::content_matches(self.repo.keys(), &file, content, *size).at(full())?,
        };
        if !same {
            self.note(Change::Modified, &f.rel);
            return Ok(None);
        }
        if self.opts.dry_run {
            if meta::differs(&st, &f.node, &self.opts.meta) {
                self.note(Change::Metadata, &f.rel);
            }
        } else {
            meta::apply_fd(file.as_fd(), &f.node, &self.opts.meta, true).at(full())?;
        }
        Ok(Some(Outcome::UpToDate(Some((st.st_dev, st.st_ino)))))
    }

    fn write_content(
        &self,
        file: &File,
        f: &FileJob,
        content: &[crate::format::tree::ChunkRef],
        size: u64,
    ) -> Result<()> {
        let full = || self.full(&f.rel);
        let mut offset = 0u64;
        let mut data_end = 0u64;
        for c in content {
            let data = self.repo.read_blob(self.index, BlobType::Data, &c.id).map_err(|e| match e {
                Error::Integrity { object, reason } => {
                    Error::integrity(object, format!("{reason} (needed by {})", full().display()))
                }
                e => e,
            })?;
            if data.len() != c.len as usize {
                return Err(Error::integrity(
                    format!("data blob {}", c.id),
                    format!("length differs from the tree's record (needed by {})", full().display()),
                ));
            }
            if data.iter().any(|&b| b != 0) {
                file.write_all_at(&data, offset).at(full())?;
                data_end = offset + c.len as u64;
            }
            offset += c.len as u64;
        }
        // Only a file that ends in a hole needs its length set. Extending with ftruncate would make
        // the full size durable before delayed-allocation data: after a power cut the file could
        // have the right size and time but zeros.
        if data_end < size {
            file.set_len(size).at(full())?;
        }
        Ok(())
    }

    /// `verify` for a file just written: its content and metadata, read back.
    fn verify_written(&self, file: &File, f: &FileJob) -> Result<()> {
        if let Some(hook) = &self.opts.before_verify {
            hook(file, &self.full(&f.rel));
        }
        match self.verify(file, f) {
            Err(Error::Integrity { .. }) => self.report.mismatch(Change::Modified, self.full(&f.rel)),
            r => r?,
        }
        let st = rfs::fstat(file).map_err(std::io::Error::from).at(self.full(&f.rel))?;
        if meta::differs(&st, &f.node, &self.opts.meta) {
            self.report.mismatch(Change::Metadata, self.full(&f.rel));
        }
        Ok(())
    }

    /// `verify` for a symlink or special file just made: type, target, and what
    /// [`meta::apply_special`] sets (owner, mtime, and the permission bits of special files).
    fn verify_special(&self, dir: &OwnedFd, name: &CString, rel: &Path, n: &Node) -> std::io::Result<()> {
        if !same_special(dir, name, n) {
            self.report.mismatch(Change::Modified, self.full(rel));
            return Ok(());
        }
        let st = rfs::statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)?;
        let mtime = st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64;
        let symlink = matches!(n.kind, NodeKind::Symlink { .. });
        if mtime != n.mtime
            || (!symlink && st.st_mode & 0o777 != n.mode & 0o777)
            || (self.opts.meta.chown_wanted() && (st.st_uid, st.st_gid) != (n.uid, n.gid))
        {
            self.report.mismatch(Change::Metadata, self.full(rel));
        }
        Ok(())
    }

    /// Re-read a restored file through its descriptor and check every chunk's hash and the length.
    fn verify(&self, file: &File, f: &FileJob) -> Result<()> {
        let NodeKind::File { size, content } = &f.node.kind else { return Ok(()) };
        let full = self.full(&f.rel);
        let shown = full.display().to_string();
        if let Some(at) = policy::first_difference(self.repo.keys(), file, content).at(&full)? {
            return Err(Error::integrity(shown, format!("restored bytes at offset {at} differ from the snapshot")));
        }
        if file.metadata().at(&full)?.len() != *size {
            return Err(Error::integrity(shown, "restored file has the wrong length"));
        }
        Ok(())
    }

    /// Link a later member of a hard-link group to its first file — only if that file now has the
    /// snapshot's content and the same chunk list; otherwise restore it as a file of its own.
    fn link(&mut self, l: LinkJob) {
        let src = self.hard.get_mut(&l.key).expect("queued with its source");
        src.remaining = src.remaining.saturating_sub(1);
        let (ok, digest, ino, sdir, sname) = (src.ok, src.digest, src.ino, src.dir.clone(), src.name.clone());
        if src.remaining == 0 {
            self.hard.remove(&l.key);
        }
        if !(ok && digest == content_digest(&l.file.node)) || self.opts.list_changes {
            let o = self.file(&l.file);
            return self.count(&o);
        }
        let (Some(sdir), Some(ddir), Some(ino), false) = (sdir, &l.file.dir, ino, self.opts.dry_run) else {
            self.stats.others += 1; // dry run
            return;
        };
        match self.link_to(&sdir, &sname, ino, ddir, &l.file.name) {
            Ok(true) => {
                self.stats.others += 1;
                if self.opts.verify {
                    let st = self.report.timed(|| rfs::statat(ddir, l.file.name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW));
                    if !st.is_ok_and(|st| (st.st_dev, st.st_ino) == ino) {
                        self.report.mismatch(Change::Metadata, self.full(&l.file.rel));
                    }
                }
            }
            Ok(false) => self.stats.files_skipped += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESTALE) => {
                // The first file is gone or replaced: restore this member on its own.
                let o = self.file(&l.file);
                self.count(&o);
            }
            Err(e) => self.report.io(&self.full(&l.file.rel), &e),
        }
    }

    /// Make `name` in `ddir` a link to inode `ino`, reached as `sname` in `sdir`.
    fn link_to(
        &self,
        sdir: &OwnedFd,
        sname: &CString,
        ino: Ino,
        ddir: &OwnedFd,
        name: &CString,
    ) -> std::io::Result<bool> {
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let src = rfs::openat(sdir, sname.as_c_str(), flags, Mode::empty())?;
        let st = rfs::fstat(&src)?;
        if (st.st_dev, st.st_ino) != ino {
            return Err(std::io::Error::from_raw_os_error(libc::ESTALE));
        }
        match rfs::statat(ddir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(b) if (b.st_dev, b.st_ino) == ino => return Ok(true),
            Ok(_) if self.opts.overwrite == Overwrite::Never => return Ok(false),
            Ok(_) => target::remove(ddir.as_fd(), name, self.opts.delete)?,
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        // Link the checked inode itself, through its descriptor.
        let magic = target::proc_path(&src);
        rfs::linkat(rfs::CWD, magic.as_str(), ddir, name.as_c_str(), AtFlags::SYMLINK_FOLLOW)?;
        Ok(true)
    }

    fn finish(mut self) -> RestoreStats {
        for (i, (_, p)) in self.includes.iter().enumerate() {
            if !self.matched[i] {
                self.report.add(
                    &self.opts.target,
                    &format!("include pattern {p:?} matched nothing (patterns are relative to the restored path)"),
                    false,
                );
            }
        }
        let mut s = std::mem::take(&mut self.stats);
        s.changes = self.report.changes.into_inner().unwrap();
        s.changes.sort_by(|a, b| a.path.cmp(&b.path));
        s.mismatched = self.report.mismatched.into_inner().unwrap();
        s.mismatched.sort_by(|a, b| a.path.cmp(&b.path));
        s.verify_ns = self.report.verify_ns.into_inner();
        s.file_ns = self.report.file_ns.into_inner();
        s.errors = self.report.errors.into_inner().unwrap();
        s.damaged = self.report.damaged.into_inner();
        s.conflicts = self.report.conflicts.into_inner();
        s
    }
}
