//! The restore walk: one iterative pre-order pass over the snapshot's trees, a stack of open
//! directories, files queued in batches ([`super::write`]), hard links after them
//! ([`super::links`]), directory metadata last, deepest first.

use super::links::{HardSource, LinkJob};
use super::target::{self, Before};
use super::{meta, Mode, Overwrite, RestoreOptions, RestoreStats, TargetChange, BATCH_FILES, MAX_DIR_BUDGET};
use crate::archiver::{Excludes, Progress};
use crate::browse::Change;
use crate::error::{Error, Result};
use crate::format::blob::BlobType;
use crate::format::tree::{Node, NodeKind};
use crate::id::Id;
use crate::repo::walk::Trees;
use rayon::prelude::*;
use rustix::fs::{self as rfs, FileType, Mode as Perm};
use std::collections::{HashMap, HashSet};
use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// A directory on the walk's stack.
struct Frame {
    /// Where it stands in the target: not created yet, open, absent (not writing), or failed.
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
    /// Whether it is one of the snapshot's paths or below one (else an ancestor, passed through).
    within: bool,
    /// Whether restore made it (rather than finding it there).
    created: bool,
    /// What it was before restore took it over, to be put back on an ancestor.
    before: Option<Before>,
}

#[derive(Clone)]
pub(super) enum DirState {
    Pending,
    Open(Arc<OwnedFd>),
    Absent,
    Failed,
}

/// A regular file to write.
pub(super) struct FileJob {
    pub(super) dir: Option<Arc<OwnedFd>>,
    /// Its directory has a default ACL the new file inherits (only the target itself can).
    pub(super) inherits_acl: bool,
    pub(super) name: CString,
    pub(super) rel: PathBuf,
    pub(super) node: Node,
    pub(super) order: (Id, u32),
    /// First file of a hard-link group: its (device, inode) in the snapshot.
    pub(super) hard_key: Option<(u64, u64)>,
}

/// What a finished directory gets.
enum Finish {
    /// The snapshot's metadata (ACLs stripped first when restore did not already).
    Apply(Node, bool),
    /// An ancestor restore took over: its owner, mode and ACLs as they were.
    PutBack(Before),
}

/// Problems and findings, gathered from the parallel workers.
#[derive(Default)]
pub(super) struct Report {
    mismatched: Mutex<Vec<TargetChange>>,
    verify_ns: AtomicU64,
    pub(super) discard_ns: AtomicU64,
    pub(super) file_ns: AtomicU64,
    errors: Mutex<Vec<String>>,
    damaged: AtomicU64,
    conflicts: AtomicU64,
    changes: Mutex<Vec<TargetChange>>,
    /// Entries not restored once the target's file system was full (the first is in `errors`).
    pub(super) no_space: AtomicU64,
}

impl Report {
    pub(super) fn mismatch(&self, change: Change, path: PathBuf) {
        self.mismatched.lock().unwrap().push(TargetChange { change, path });
    }

    /// Run `f`, adding its duration to the verification time.
    pub(super) fn timed<T>(&self, f: impl FnOnce() -> T) -> T {
        let t = std::time::Instant::now();
        let r = f();
        self.verify_ns.fetch_add(t.elapsed().as_nanos() as u64, Relaxed);
        r
    }

    /// Unlink `name` in `dir` (a verified file a drill no longer needs), timed apart.
    pub(super) fn discard(&self, dir: &OwnedFd, name: &CString) {
        let t = std::time::Instant::now();
        // A file that cannot be removed now is removed with its directory at the end.
        let _ = rfs::unlinkat(dir, name.as_c_str(), rustix::fs::AtFlags::empty());
        self.discard_ns.fetch_add(t.elapsed().as_nanos() as u64, Relaxed);
    }

    fn add(&self, p: &Path, e: &dyn std::fmt::Display, integrity: bool) {
        self.errors.lock().unwrap().push(format!("{}: {e}", p.display()));
        if integrity {
            self.damaged.fetch_add(1, Relaxed);
        }
    }

    /// Whether the target's file system ran out of space (or quota): restore stops writing.
    pub(super) fn disk_full(&self) -> bool {
        self.no_space.load(Relaxed) > 0
    }

    pub(super) fn io(&self, p: &Path, e: &std::io::Error) {
        if matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
            // One message, then a count: every later entry would fail the same way.
            if self.no_space.fetch_add(1, Relaxed) > 0 {
                return;
            }
        }
        if target::is_conflict(e) {
            self.conflicts.fetch_add(1, Relaxed);
        }
        self.add(p, e, false);
    }

    pub(super) fn error(&self, p: &Path, e: &Error) {
        match e {
            // The path is already in the message: name it once.
            Error::Io { source, .. } => self.io(p, source),
            _ => self.add(p, e, e.is_integrity()),
        }
    }
}

/// One restore run.
pub(super) struct Restorer<'a> {
    pub(super) trees: &'a Trees<'a>,
    pub(super) opts: &'a RestoreOptions,
    pub(super) progress: &'a Progress,
    exclude: Option<Excludes>,
    includes: Vec<(Excludes, String)>,
    matched: Vec<bool>,
    pub(super) report: Report,
    pub(super) stats: RestoreStats,
    /// The directory the walk starts in: the target, or the parent of a single restored file.
    base: PathBuf,
    /// The name a single restored entry is created under, when `--target` names it.
    rename: Option<Vec<u8>>,
    /// The target directory has a default ACL (which restore leaves alone there).
    root_default_acl: bool,
    /// The snapshot path of the restored node (`/srv/app`; empty for the whole snapshot).
    snap_path: Vec<u8>,
    stack: Vec<Frame>,
    pub(super) files: Vec<FileJob>,
    pub(super) links: Vec<LinkJob>,
    /// Directories whose entries are all queued: their metadata once the batch is written.
    finished: Vec<(Arc<OwnedFd>, Finish, PathBuf)>,
    pub(super) hard: HashMap<(u64, u64), HardSource>,
    /// Finished directories (and hard-link source directories) held open before a flush.
    pub(super) dir_budget: usize,
    /// Directories held open for hard-link sources (bounded by `dir_budget`).
    pub(super) hard_dirs: HashSet<usize>,
}

impl<'a> Restorer<'a> {
    pub(super) fn new(trees: &'a Trees<'a>, opts: &'a RestoreOptions, progress: &'a Progress) -> Result<Restorer<'a>> {
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
        Ok(Restorer {
            trees,
            opts,
            progress,
            exclude,
            matched: vec![false; includes.len()],
            includes,
            report: Report::default(),
            stats: RestoreStats::default(),
            base: opts.target.clone(),
            rename: None,
            root_default_acl: false,
            snap_path: Vec::new(),
            stack: Vec::new(),
            files: Vec::new(),
            links: Vec::new(),
            finished: Vec::new(),
            hard: HashMap::new(),
            dir_budget: dir_budget as usize,
            hard_dirs: HashSet::new(),
        })
    }

    /// Record a difference for `arca verify` ([`Mode::Compare`]).
    pub(super) fn note(&self, change: Change, rel: &Path) {
        if self.opts.mode.lists() {
            self.report.changes.lock().unwrap().push(TargetChange { change, path: self.full(rel) });
        }
    }

    pub(super) fn full(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.base.clone()
        } else {
            self.base.join(rel)
        }
    }

    /// Whether the directory at `rel` (below the restored node) is one of the snapshot's paths
    /// or lies below one; otherwise it is an ancestor of them.
    fn within(&self, rel: &Path) -> bool {
        if self.opts.snapshot_paths.is_empty() {
            return true;
        }
        let mut abs = self.snap_path.clone();
        for c in rel.components() {
            abs.push(b'/');
            abs.extend_from_slice(c.as_os_str().as_bytes());
        }
        self.opts.snapshot_paths.iter().any(|p| {
            let p = p.strip_suffix(b"/").unwrap_or(p);
            p.is_empty() || abs == p || (abs.starts_with(p) && abs.get(p.len()) == Some(&b'/'))
        })
    }

    /// Set up the root frame: the target directory, or the parent of a single restored file.
    pub(super) fn start(&mut self, node: &Node, snap_path: &str) -> Result<()> {
        self.snap_path = snap_path.trim_end_matches('/').as_bytes().to_vec();
        let t = &self.opts.target;
        if let NodeKind::Dir { subtree } = node.kind {
            self.trees.measure(subtree)?;
            let nodes = self.trees.nodes(&subtree)?;
            let state = self.open_target(t)?;
            let within = self.within(Path::new(""));
            let meta = (!snap_path.is_empty() && snap_path != "/" && node.mtime != 0 && within).then(|| node.clone());
            let names = (self.opts.delete && within).then(|| nodes.iter().map(|n| n.name.clone()).collect());
            self.stack.push(Frame {
                state,
                name: Vec::new(),
                node: meta,
                rel: PathBuf::new(),
                entries: nodes.into_iter(),
                names,
                included: self.includes.is_empty(),
                within,
                created: false,
                before: None,
            });
            self.delete_extra(0);
            return Ok(());
        }
        // A single entry: into `target` if that is a directory, else as `target` itself.
        if target::open_path(t, false).is_err() {
            let name =
                t.file_name().ok_or_else(|| Error::InvalidArgument(format!("{}: not a file name", t.display())))?;
            // Patterns still match the snapshot's name; the entry is created under this one.
            self.rename = Some(name.as_bytes().to_vec());
            self.base = t.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        }
        let state = self.open_target(&self.base.clone())?;
        self.stack.push(Frame {
            state,
            name: Vec::new(),
            node: None,
            rel: PathBuf::new(),
            entries: vec![node.clone()].into_iter(),
            names: None,
            included: self.includes.is_empty(),
            within: false,
            created: false,
            before: None,
        });
        Ok(())
    }

    fn open_target(&mut self, dir: &Path) -> Result<DirState> {
        match target::open_path(dir, self.opts.mode.writes()) {
            Ok(fd) => {
                self.root_default_acl = target::has_default_acl(&fd);
                Ok(DirState::Open(Arc::new(fd)))
            }
            // A dry run into a directory that does not exist yet: everything would be new. But
            // `verify` of a missing directory is an error, never "matches".
            Err(e) if self.opts.mode == Mode::Plan && e.raw_os_error() == Some(libc::ENOENT) => Ok(DirState::Absent),
            Err(e) => Err(Error::Io { path: dir.to_path_buf(), source: e }),
        }
    }

    pub(super) fn run(&mut self) {
        while let Some(top) = self.stack.last_mut() {
            if self.report.disk_full() {
                // Stop visiting; the directories made so far still get their metadata.
                let done = self.stack.pop().expect("non-empty");
                self.finish_dir(done);
                continue;
            }
            let Some(node) = top.entries.next() else {
                let done = self.stack.pop().expect("non-empty");
                self.finish_dir(done);
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

    /// Queue what a directory whose entries are all visited gets, once its batch is written.
    fn finish_dir(&mut self, done: Frame) {
        let DirState::Open(fd) = done.state else { return };
        // ACLs not from the snapshot go before its metadata is set, unless taking the directory
        // over already removed them (the target itself keeps its own, as new files inherit them).
        let strip = !done.created && done.before.is_none() && !done.name.is_empty();
        let finish = match (done.node, done.before) {
            // Restore made it, or it is the snapshot's: the snapshot's metadata.
            (Some(n), _) if done.created || done.within => Finish::Apply(n, strip),
            // An ancestor restore had to take over: as it was.
            (_, Some(before)) => Finish::PutBack(before),
            _ => return,
        };
        self.finished.push((fd, finish, done.rel));
    }

    fn visit(&mut self, node: Node, rel: PathBuf, inc: bool) {
        if let NodeKind::Dir { subtree } = node.kind {
            let within = self.within(&rel);
            let (nodes, names) = match self.trees.nodes(&subtree) {
                Ok(nodes) => {
                    let names = (self.opts.delete && within).then(|| nodes.iter().map(|n| n.name.clone()).collect());
                    (nodes, names)
                }
                Err(e) => {
                    // One damaged directory must not stop the rest of a disaster recovery; and
                    // since what belongs in it is unknown, `--delete` removes nothing there.
                    self.report.error(&self.full(&rel), &e);
                    (Vec::new(), None)
                }
            };
            self.stack.push(Frame {
                state: DirState::Pending,
                name: node.name.clone(),
                node: Some(node),
                rel,
                entries: nodes.into_iter(),
                names,
                included: inc,
                within,
                created: false,
                before: None,
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
                    .and_then(|c| self.trees.index().lookup(BlobType::Data, &c.id))
                    .map(|l| (l.pack, l.offset))
                    .unwrap_or_default();
                let inherits_acl = self.stack.len() == 1 && self.root_default_acl;
                let job = FileJob { dir, inherits_acl, name, rel, node, order, hard_key: None };
                self.queue_file(job);
            }
            _ => self.make_other(dir.as_deref(), &name, &rel, &node),
        }
    }

    /// Create (or, not writing, look up) every directory on the stack not made yet. Returns the
    /// innermost one's descriptor (`None` where, not writing, it does not exist), or nothing
    /// when a directory could not be made — then its whole subtree is skipped.
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
    /// policy allows; not writing, only look it up.
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
        let never = self.opts.overwrite == Overwrite::Never;
        if !self.opts.mode.writes() {
            return match existing {
                Ok(target::Existing::Dir) => match target::open_dir(parent.as_fd(), &name) {
                    Ok(fd) => DirState::Open(Arc::new(fd)),
                    Err(e) => {
                        self.report.io(&full, &e);
                        DirState::Failed
                    }
                },
                Ok(target::Existing::Other) if never => {
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
        let owner = self.stack[i].node.as_ref().map_or(u32::MAX, |n| n.uid);
        let made = match existing {
            Ok(target::Existing::Other) if never => {
                Err(target::conflict("a non-directory is in the way of a directory (--overwrite never)"))
            }
            Ok(target::Existing::Other) => target::remove(parent.as_fd(), &name, false)
                .and_then(|_| target::make_dir(parent.as_fd(), &name, owner)),
            _ => target::make_dir(parent.as_fd(), &name, owner),
        };
        match made {
            Ok(m) => {
                self.stack[i].created = m.created;
                self.stack[i].before = m.before;
                DirState::Open(Arc::new(m.fd))
            }
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
            let res = match self.opts.mode.writes() {
                false => Ok(()),
                true => target::cname(&n).and_then(|c| target::remove(fd.as_fd(), &c, true)),
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
        let Some(dir) = dir else { return Ok(true) }; // not writing, directory absent
        let writes = self.opts.mode.writes();
        match target::existing(dir, name)? {
            target::Existing::Nothing => {}
            target::Existing::Dir if !self.opts.delete => {
                return Err(target::conflict("a directory is in the way (use --delete to replace it)"))
            }
            _ if self.opts.overwrite == Overwrite::Never => return Ok(false),
            _ if !writes => {
                if !super::compare::same_special(dir, name, n) {
                    self.note(Change::Modified, rel);
                }
                return Ok(true);
            }
            _ => target::remove(dir, name, self.opts.delete)?,
        }
        if !writes {
            self.note(Change::Added, rel);
            return Ok(true);
        }
        let private = Perm::from_raw_mode(0o600);
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
        if self.opts.mode.verifies() {
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
        let outcomes: Vec<_> = self.trees.repo().io_scope(|| files.par_iter().map(|f| me.file(f)).collect());
        for (f, o) in files.iter().zip(&outcomes) {
            self.count(o);
            self.source_done(f, o);
        }
        for l in std::mem::take(&mut self.links) {
            self.link(l);
        }
        for (fd, finish, rel) in std::mem::take(&mut self.finished) {
            self.finish_meta(&fd, finish, &rel);
        }
    }

    /// Give a finished directory its metadata (or, not writing, compare it).
    fn finish_meta(&self, fd: &OwnedFd, finish: Finish, rel: &Path) {
        let n = match finish {
            Finish::PutBack(before) => {
                if let Err(e) = target::put_back(fd, &before) {
                    self.report.io(&self.full(rel), &e);
                }
                return;
            }
            Finish::Apply(n, _) if !self.opts.mode.writes() => {
                if rfs::fstat(fd).is_ok_and(|st| meta::differs(&st, &n, &self.opts.meta)) {
                    self.note(Change::Metadata, rel);
                }
                return;
            }
            Finish::Apply(n, strip) => match meta::apply_fd(fd.as_fd(), &n, &self.opts.meta, strip) {
                Ok(()) => n,
                Err(e) => return self.report.io(&self.full(rel), &e),
            },
        };
        if self.opts.mode.verifies() {
            let differs = self.report.timed(|| rfs::fstat(fd).map(|st| meta::differs(&st, &n, &self.opts.meta)));
            if differs.unwrap_or(true) {
                self.report.mismatch(Change::Metadata, self.full(rel));
            }
        }
    }

    pub(super) fn finish(mut self) -> RestoreStats {
        for (i, (_, p)) in self.includes.iter().enumerate() {
            if !self.matched[i] {
                self.stats.unmatched.push(p.clone());
                self.report.add(
                    &self.opts.target,
                    &format!("include pattern {p:?} matched nothing (patterns are relative to the restored path)"),
                    false,
                );
            }
        }
        let mut s = std::mem::take(&mut self.stats);
        let r = self.report;
        s.changes = r.changes.into_inner().unwrap();
        s.changes.sort_by(|a, b| a.path.cmp(&b.path));
        s.mismatched = r.mismatched.into_inner().unwrap();
        s.mismatched.sort_by(|a, b| a.path.cmp(&b.path));
        s.verify_ns = r.verify_ns.into_inner();
        s.discard_ns = r.discard_ns.into_inner();
        s.file_ns = r.file_ns.into_inner();
        s.errors = r.errors.into_inner().unwrap();
        s.damaged = r.damaged.into_inner();
        s.conflicts = r.conflicts.into_inner();
        s.no_space = r.no_space.into_inner();
        s
    }
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
