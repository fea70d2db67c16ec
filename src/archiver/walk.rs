//! Walking the filesystem into trees.
//!
//! Below each backup root the walk goes by directory descriptors, never by path: a directory is
//! opened with `openat(parent, name, O_DIRECTORY|O_NOFOLLOW)` and must be the (device, inode)
//! its parent's listing stat'ed; its entries are stat'ed with `fstatat(dir, name,
//! AT_SYMLINK_NOFOLLOW)` and files opened with `openat(dir, name, O_NOFOLLOW|O_NONBLOCK)`, again
//! checked against the stat. A directory renamed away and replaced by a symlink mid-walk is
//! therefore never followed: the entry is reported as not saved instead. One descriptor is held
//! per directory being walked (the chains of ancestors of the directories in progress), and a
//! second one while it is being listed. The walk
//! raises the soft open-file limit to the hard one, and once it holds a quarter of that many
//! directories it walks further entries of a directory one by one instead of in parallel: a
//! thread that is not waiting for parallel work does not pick up other directories' work on top
//! of its own, so the count then grows only with depth.
//!
//! A directory is read in a stream and its names kept only up to the format's tree limit
//! (2^21 entries, format-spec 12.2): a larger one is skipped with a warning (the backup is then
//! partial, exit 3), so memory stays bounded by the limit, not by the directory.

use super::fsmeta::{self, node, unchanged, Meta};
use super::prefetch::{self, Opens, ReadAhead};
use super::{Ctx, CHANGED_PREFIX};
use crate::error::{Error, Result};
use crate::format::blob::BlobType;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::id::Id;
use crate::progress::FileChange;
use globset::{GlobSet, GlobSetBuilder};
use rayon::prelude::*;
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, CWD};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Globs of `restore --include/--exclude` and `find` (backups use restic's patterns instead,
/// [`super::Selection`]).
///
/// A pattern containing `/` is matched against the whole absolute path; one without is matched
/// against the entry's name, at any depth. `*` does not cross `/`; `**` does. `if_present`
/// names marker files, kept for callers that ask for them ([`Excludes::markers`]).
#[derive(Default)]
pub struct Excludes {
    paths: GlobSet,
    names: GlobSet,
    if_present: Vec<String>,
}

impl Excludes {
    /// Compile patterns and marker names.
    pub fn new(patterns: &[String], if_present: Vec<String>) -> Result<Excludes> {
        let mut paths = GlobSetBuilder::new();
        let mut names = GlobSetBuilder::new();
        for p in patterns {
            let trimmed = p.trim_end_matches('/');
            let g = globset::GlobBuilder::new(trimmed)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::InvalidArgument(format!("exclude pattern {p:?}: {e}")))?;
            // `node_modules/` means the name `node_modules`; only an inner `/` makes a path pattern.
            if trimmed.contains('/') {
                paths.add(g);
            } else {
                names.add(g);
            }
        }
        let build = |b: GlobSetBuilder| b.build().map_err(|e| Error::InvalidArgument(e.to_string()));
        Ok(Excludes { paths: build(paths)?, names: build(names)?, if_present })
    }

    /// Whether an entry at `path` (absolute, in the snapshot) named `name` matches.
    pub fn matches(&self, path: &Path, name: &OsStr) -> bool {
        self.excluded(path, name)
    }

    fn excluded(&self, path: &Path, name: &OsStr) -> bool {
        self.names.is_match(name) || self.paths.is_match(path)
    }

    /// The marker file names given to [`Excludes::new`].
    pub fn markers(&self) -> &[String] {
        &self.if_present
    }

    /// Convenience for tests: patterns only.
    pub fn patterns(patterns: &[&str]) -> Result<Excludes> {
        Excludes::new(&patterns.iter().map(|s| s.to_string()).collect::<Vec<_>>(), vec![])
    }
}

/// The directories above the backed-up paths, as a prefix tree: `/home/a` and `/home/b` become
/// `home` → {`a`, `b`}. Inner directories take their metadata from the real directory.
#[derive(Default)]
struct Virtual {
    children: BTreeMap<Vec<u8>, VEntry>,
}

enum VEntry {
    Leaf(PathBuf),
    Inner(Virtual, PathBuf),
}

/// The paths not inside another of them, sorted: a path inside another is covered by it.
pub(super) fn outermost(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut sorted = paths.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut kept: Vec<PathBuf> = Vec::new();
    for p in sorted {
        if !kept.iter().any(|k| p.starts_with(k)) {
            kept.push(p);
        }
    }
    kept
}

fn build_virtual(paths: &[PathBuf]) -> Virtual {
    let mut root = Virtual::default();
    for p in outermost(paths) {
        let comps: Vec<&OsStr> = p.iter().skip(1).collect();
        let mut dir = &mut root;
        let mut real = PathBuf::from("/");
        for (i, c) in comps.iter().enumerate() {
            real.push(c);
            let key = c.as_bytes().to_vec();
            if i + 1 == comps.len() {
                dir.children.insert(key, VEntry::Leaf(real.clone()));
                break;
            }
            let e = dir.children.entry(key).or_insert_with(|| VEntry::Inner(Virtual::default(), real.clone()));
            dir = match e {
                VEntry::Inner(v, _) => v,
                VEntry::Leaf(_) => unreachable!("covered paths were skipped"),
            };
        }
    }
    root
}

/// Where an entry is: `name` in the directory open as `dir`. A backup root is its absolute path
/// under `CWD`; every entry below it is one name under its parent's descriptor.
/// The I/O pool (`prefetch`) stats and opens through this too: one place for the flags.
#[derive(Clone, Copy)]
pub(super) struct At<'a> {
    pub(super) dir: BorrowedFd<'a>,
    pub(super) name: &'a OsStr,
}

impl At<'_> {
    /// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`.
    pub(super) fn stat(&self) -> std::io::Result<Meta> {
        Ok(Meta::from_stat(&rustix::fs::statat(self.dir, self.name, AtFlags::SYMLINK_NOFOLLOW)?))
    }

    /// Open read-only, never following a symlink in the last component, and never taking a
    /// terminal swapped in since the stat as controlling terminal.
    pub(super) fn open(&self, flags: OFlags) -> std::io::Result<OwnedFd> {
        let flags = flags | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC;
        Ok(rustix::fs::openat(self.dir, self.name, flags, Mode::empty())?)
    }

    /// A path for calls that have no `*at` form (extended attributes of symlinks and special
    /// files): `/proc/self/fd/N/name` resolves `name` in the held directory, not by `full` path.
    fn lookup_path(&self, full: &Path) -> PathBuf {
        static PROC: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        if self.dir.as_raw_fd() == CWD.as_raw_fd() || !*PROC.get_or_init(|| Path::new("/proc/self/fd").is_dir()) {
            return full.to_path_buf();
        }
        Path::new(&format!("/proc/self/fd/{}", self.dir.as_raw_fd())).join(self.name)
    }
}

/// Back up all roots; returns the root tree ID.
pub(crate) fn backup_roots(ctx: &Ctx, paths: &[PathBuf], parent_root: Option<Id>) -> Result<Id> {
    for p in paths {
        fs::symlink_metadata(p).map_err(|e| Error::InvalidArgument(format!("{}: {e}", p.display())))?;
    }
    if paths.iter().any(|p| p.parent().is_none()) {
        return virtual_dir_root(ctx, parent_root);
    }
    backup_virtual(ctx, &build_virtual(paths), Path::new("/"), parent_root)
}

/// The walk holds a descriptor per directory in progress; the soft limit (often 1024) is an
/// accident of history, the hard limit the administrator's actual choice.
pub(super) fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    if let (Some(cur), Some(max)) = (lim.current, lim.maximum) {
        if cur < max {
            let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(max), maximum: Some(max) });
        }
    }
}

/// Directory descriptors the walk may hold before it stops starting parallel work: a quarter of
/// the (raised) soft open-file limit, leaving the rest for files being read and packs.
pub(super) fn dir_fd_budget() -> u64 {
    static BUDGET: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| {
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(1 << 20);
        (soft / 4).max(8)
    })
}

/// One held directory descriptor, counted in `ctx.open_dirs` while it lives.
struct DirSlot<'c>(&'c std::sync::atomic::AtomicU64);

impl<'c> DirSlot<'c> {
    fn take(ctx: &'c Ctx) -> DirSlot<'c> {
        ctx.open_dirs.fetch_add(1, Relaxed);
        DirSlot(&ctx.open_dirs)
    }

    /// Whether the walk holds so many directories that this one should not start parallel work.
    fn crowded(&self) -> bool {
        self.0.load(Relaxed) > dir_fd_budget()
    }
}

impl Drop for DirSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Backing up `/` itself: the root tree is the real root directory's tree.
fn virtual_dir_root(ctx: &Ctx, parent_root: Option<Id>) -> Result<Id> {
    let root = Path::new("/");
    let at = At { dir: CWD, name: root.as_os_str() };
    let meta = at.stat().map_err(|e| Error::Io { path: root.into(), source: e })?;
    let parent = parent_root.map(|subtree| Node::bare_dir(b"", subtree));
    match backup_dir(ctx, at, root, b"root".to_vec(), &meta, parent.as_ref(), meta.dev)? {
        Some(Node { kind: NodeKind::Dir { subtree }, .. }) => Ok(subtree),
        _ => Err(Error::InvalidArgument("cannot read /".into())),
    }
}

fn backup_virtual(ctx: &Ctx, v: &Virtual, dir: &Path, parent: Option<Id>) -> Result<Id> {
    let parent_tree = ctx.parent_tree(parent);
    let find = |name: &[u8]| parent_tree.as_ref().and_then(|t| t.nodes.iter().find(|n| n.name == name));
    // Collecting into one Result stops the walk at the first fatal (repository) error.
    let nodes: Vec<Option<Node>> = v
        .children
        .par_iter()
        .map(|(name, e)| match e {
            VEntry::Leaf(path) => {
                let at = At { dir: CWD, name: path.as_os_str() };
                let meta = match at.stat() {
                    Ok(m) => m,
                    Err(err) => {
                        ctx.warn(path, err.to_string());
                        return Ok(None);
                    }
                };
                backup_entry(ctx, at, path, name.clone(), &meta, find(name), meta.dev, None)
            }
            VEntry::Inner(sub, path) => {
                // A directory above a backup path records the directory the path resolves
                // through (`stat`, following a symlinked component), never a symlink's own
                // lstat: its 0777 would be restored as a world-writable directory (spec 11.3).
                let io = |e: std::io::Error| Error::Io { path: path.clone(), source: e };
                let meta = Meta::from_stat(&rustix::fs::stat(path).map_err(|e| io(e.into()))?);
                if meta.file_type() != FileType::Directory {
                    return Err(io(std::io::Error::other("not a directory (changed during the backup?)")));
                }
                let psub = find(name).and_then(Node::subtree);
                let subtree = backup_virtual(ctx, sub, path, psub)?;
                let x = fsmeta::xattrs_deref(path).unwrap_or_else(|e| {
                    ctx.note(path, format!("extended attributes not saved: {e}"));
                    vec![]
                });
                Ok(Some(node(name.clone(), &meta, NodeKind::Dir { subtree }, x)))
            }
        })
        .collect::<Result<_>>()?;
    ctx.store_tree_or_fail(&Tree { nodes: nodes.into_iter().flatten().collect() }, dir)
}

/// Extended attributes of `lookup` (see [`At::lookup_path`]), reported under `path`.
fn read_xattrs(ctx: &Ctx, lookup: &Path, path: &Path) -> Vec<crate::format::tree::Xattr> {
    fsmeta::xattrs(lookup).unwrap_or_else(|e| {
        ctx.note(path, format!("extended attributes not saved: {e}"));
        vec![]
    })
}

/// Back up one entry of any type. `None` means excluded or unreadable (a warning is recorded).
#[allow(clippy::too_many_arguments)]
fn backup_entry(
    ctx: &Ctx,
    at: At,
    path: &Path,
    name: Vec<u8>,
    meta: &Meta,
    parent: Option<&Node>,
    root_dev: u64,
    ahead: Ahead,
) -> Result<Option<Node>> {
    let kind = match meta.file_type() {
        FileType::Directory => {
            // Entered now: the pool need not read it through any more.
            drop(ahead.and_then(|(o, i)| o.take(i)));
            return backup_dir(ctx, at, path, name, meta, parent, root_dev);
        }
        FileType::RegularFile => return backup_file(ctx, at, path, name, meta, parent, ahead),
        FileType::Symlink => match rustix::fs::readlinkat(at.dir, at.name, Vec::new()) {
            Ok(t) => NodeKind::Symlink { target: t.into_bytes() },
            Err(e) => {
                ctx.warn(path, std::io::Error::from(e).to_string());
                return Ok(None);
            }
        },
        FileType::Fifo => NodeKind::Fifo,
        FileType::CharacterDevice => NodeKind::CharDevice { rdev: meta.rdev },
        FileType::BlockDevice => NodeKind::BlockDevice { rdev: meta.rdev },
        _ => NodeKind::Socket,
    };
    ctx.progress.files.fetch_add(1, Relaxed);
    Ok(Some(node(name, meta, kind, read_xattrs(ctx, &at.lookup_path(path), path))))
}

/// A directory opened for the walk: its descriptor (shared with the I/O pool's work on it) and
/// its extended attributes, read through the descriptor.
struct OpenDir {
    fd: Arc<OwnedFd>,
    xattrs: std::io::Result<Vec<crate::format::tree::Xattr>>,
}

/// Open the directory `at` without following a symlink, and insist it is the one stat'ed as
/// `meta` (not another directory renamed into its place since).
fn open_dir(at: At, meta: &Meta) -> std::io::Result<OpenDir> {
    let fd = at.open(OFlags::DIRECTORY)?;
    let opened = Meta::from_stat(&rustix::fs::fstat(&fd)?);
    if !opened.same_file(meta) {
        return Err(std::io::Error::other("replaced by another directory while being backed up"));
    }
    let file = File::from(fd);
    let xattrs = fsmeta::xattrs_fd(&file);
    Ok(OpenDir { fd: Arc::new(OwnedFd::from(file)), xattrs })
}

/// What reading a directory gave.
pub(super) enum Listing {
    /// The names to back up (excluded ones left out), unsorted.
    Names(Vec<Vec<u8>>),
    /// More entries than a tree may hold.
    TooMany,
    /// It could not be read at all (a warning is recorded).
    Failed,
}

/// Read a directory through a stream on a duplicate of its descriptor (closed on return; the
/// shared offset is harmless, as the walk uses the descriptor only for `*at` calls, `fstat`
/// and extended attributes), keeping at most `ctx.max_dir_entries()` names. Names excluded by
/// a pattern are left out; a directory with a marker file keeps only that file. Problems are
/// recorded only if `report` (the scan-ahead, which only counts, leaves them to the backup).
pub(super) fn list_dir(ctx: &Ctx, fd: &OwnedFd, path: &Path, report: bool) -> Listing {
    let warn = |e: std::io::Error| {
        if report {
            ctx.warn(path, format!("reading directory: {e}"))
        }
    };
    let mut dir = match rustix::io::fcntl_dupfd_cloexec(fd, 0).and_then(Dir::new) {
        Ok(d) => d,
        Err(e) => {
            warn(e.into());
            return Listing::Failed;
        }
    };
    let sel = &ctx.opts.excludes;
    let limit = ctx.max_dir_entries();
    let mut names = Vec::new();
    let mut present = vec![false; sel.markers.len()];
    let mut too_many = false;
    while let Some(entry) = dir.read() {
        let entry = match entry {
            Ok(e) => e,
            Err(err) => {
                warn(err.into());
                break;
            }
        };
        let n = entry.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        for (seen, m) in present.iter_mut().zip(&sel.markers) {
            *seen |= m.name == n;
        }
        // Past the limit only a marker could still matter; no more names are kept.
        if too_many || sel.excludes_path(&path.join(OsStr::from_bytes(n))) {
            continue;
        }
        if names.len() == limit {
            too_many = true;
            names = Vec::new();
            if sel.markers.is_empty() {
                break;
            }
            continue;
        }
        names.push(n.to_vec());
    }
    let marked: Vec<&[u8]> = sel
        .markers
        .iter()
        .zip(present)
        .filter(|(m, seen)| *seen && marker_applies(ctx, fd, path, m, report))
        .map(|(m, _)| m.name.as_slice())
        .collect();
    if marked.is_empty() {
        return if too_many { Listing::TooMany } else { Listing::Names(names) };
    }
    // Each marker keeps only itself: a name survives if every marker present is that name.
    let keep = |n: &[u8]| marked.iter().all(|m| *m == n);
    let mut kept: Vec<Vec<u8>> = marked.iter().filter(|m| keep(m)).map(|m| m.to_vec()).collect();
    kept.dedup();
    kept.retain(|m| !sel.excludes_path(&path.join(OsStr::from_bytes(m))));
    Listing::Names(kept)
}

/// Whether the marker file `m`, present in the directory `dir` at `path`, excludes the
/// directory's contents: with a header, only a readable file starting with it does (as in
/// restic, the name is followed if it is a symlink; only a regular file is opened). A file that
/// does not qualify is named in a note (if `report`), and the directory is backed up.
fn marker_applies(ctx: &Ctx, dir: &OwnedFd, path: &Path, m: &super::select::Marker, report: bool) -> bool {
    let Some(header) = &m.header else { return true };
    let file = path.join(OsStr::from_bytes(&m.name));
    let note = |why: String| {
        if report {
            ctx.note(&file, why)
        }
    };
    let read = || -> std::io::Result<Vec<u8>> {
        let name = OsStr::from_bytes(&m.name);
        if rustix::fs::statat(dir, name, AtFlags::empty())?.st_mode & 0o170000 != 0o100000 {
            return Err(std::io::Error::other("not a regular file"));
        }
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(dir, name, flags, Mode::empty())?;
        // What was opened decides, not what was looked at: the name may have been swapped for a
        // FIFO or a device in between (the look only spares opening one in the common case).
        if rustix::fs::fstat(&fd)?.st_mode & 0o170000 != 0o100000 {
            return Err(std::io::Error::other("not a regular file"));
        }
        let f = File::from(fd);
        let mut buf = Vec::with_capacity(header.len());
        f.take(header.len() as u64).read_to_end(&mut buf)?;
        Ok(buf)
    };
    match read() {
        Ok(b) if b == *header => true,
        Ok(b) if b.len() < header.len() => {
            note("exclusion marker has a too short signature; directory backed up".into());
            false
        }
        Ok(_) => {
            note("exclusion marker has an invalid signature; directory backed up".into());
            false
        }
        Err(e) => {
            note(format!("cannot read exclusion marker: {e}; directory backed up"));
            false
        }
    }
}

/// A read of a file (at most one chunk long) that took longer than this waited for storage.
const SLOW_READ: std::time::Duration = std::time::Duration::from_millis(1);

/// A regular file's batch of opened-ahead files and its index in the directory, if any.
type Ahead<'a> = Option<(&'a Opens, usize)>;

/// Entries of a directory looked ahead at a time (see `look_ahead`).
const LOOK_AHEAD_ENTRIES: usize = 4096;

/// What the I/O pool did ahead for a slice of one directory: every entry's stat, and its files
/// to read being opened. Dropping it abandons the files not taken.
struct LookAhead {
    /// Stats of the slice's entries, from its first.
    stats: Vec<std::io::Result<Meta>>,
    opens: Arc<Opens>,
}

impl Drop for LookAhead {
    fn drop(&mut self) {
        self.opens.close();
    }
}

/// Stat the entries `names[range]` of the directory `dir` (the pool helps if the disk looks
/// cold, see `prefetch::stat_all`), and queue the regular
/// files for which `will_read(index, stat)` holds to be opened ahead, and the subdirectories to
/// be read through. None without a pool (the
/// workers then stat and open each entry themselves).
fn look_ahead(
    ctx: &Ctx,
    dir: &Arc<OwnedFd>,
    names: &Arc<Vec<Vec<u8>>>,
    range: std::ops::Range<usize>,
    root_dev: u64,
    will_read: impl Fn(usize, &Meta) -> bool,
) -> Option<LookAhead> {
    let io = ctx.io.as_ref()?.handle();
    let (stats, cold) = prefetch::stat_all(io, dir, names, range.clone());
    let files = stats
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.as_ref().ok().map(|m| (range.start + i, *m)))
        .filter(|(i, m)| match m.file_type() {
            FileType::RegularFile => will_read(*i, m),
            // Read through ahead of the walk when the disk is cold (not across filesystems
            // under --one-file-system): on a warm one that only lists each directory twice.
            FileType::Directory => cold && (!ctx.opts.one_file_system || m.dev == root_dev),
            _ => false,
        })
        .collect();
    let opens = Opens::start(io, &ctx.gauge, dir, names, files);
    Some(LookAhead { stats, opens })
}

fn backup_dir(
    ctx: &Ctx,
    at: At,
    path: &Path,
    name: Vec<u8>,
    meta: &Meta,
    parent: Option<&Node>,
    root_dev: u64,
) -> Result<Option<Node>> {
    // A path given to the backup that lies on another filesystem below another one is allowed
    // its own (`-x / /media/usb`); any other directory on another filesystem is a mount point,
    // kept empty, as restic keeps it.
    let root_dev = if meta.dev != root_dev && ctx.is_root(path) { meta.dev } else { root_dev };
    let mount_point = ctx.opts.one_file_system && meta.dev != root_dev;
    if let Some(hook) = &ctx.opts.before_dir_open {
        hook(path);
    }
    let slot = DirSlot::take(ctx);
    let open = match open_dir(at, meta) {
        Ok(d) => d,
        Err(e) => {
            ctx.warn(path, format!("cannot read directory: {e}"));
            return Ok(None);
        }
    };
    let listing = if mount_point { Listing::Names(vec![]) } else { list_dir(ctx, &open.fd, path, true) };
    let mut names = match listing {
        Listing::Names(n) => n,
        Listing::Failed => return Ok(None),
        Listing::TooMany => {
            let limit = ctx.max_dir_entries();
            ctx.warn(path, format!("directory not saved: it has more than {limit} entries (the tree limit)"));
            return Ok(None);
        }
    };
    names.sort_unstable();
    let dir_fd = open.fd.as_fd();
    let psub = parent.and_then(Node::subtree);
    let parent_tree = ctx.parent_tree(psub);
    let pnodes: &[Node] = parent_tree.as_ref().map(|t| t.nodes.as_slice()).unwrap_or(&[]);
    let pnode = |n: &[u8]| pnodes.binary_search_by(|x| x.name.as_slice().cmp(n)).ok().map(|i| &pnodes[i]);
    let names = Arc::new(names);
    let will_read = |i: usize, m: &Meta| !left_out(ctx, m, root_dev) && !reusable(ctx, m, pnode(&names[i]));
    let mut nodes: Vec<Option<Node>> = Vec::with_capacity(names.len());
    // Looked ahead a slice at a time: what the pool holds per entry stays bounded however
    // large the directory.
    // Without a pool, one slice: no pause at slice ends.
    let slice = if ctx.io.is_some() { LOOK_AHEAD_ENTRIES } else { names.len().max(1) };
    for start in (0..names.len()).step_by(slice) {
        let range = start..names.len().min(start + slice);
        let ahead = look_ahead(ctx, &open.fd, &names, range.clone(), root_dev, will_read);
        let entry = |i: usize| {
            let n = &names[i];
            let child = At { dir: dir_fd, name: OsStr::from_bytes(n) };
            let p = path.join(child.name);
            let stat = match &ahead {
                Some(a) => a.stats[i - range.start].as_ref().map(|m| *m).map_err(|e| e.to_string()),
                None => child.stat().map_err(|e| e.to_string()),
            };
            let m = match stat {
                Ok(m) => m,
                Err(e) => {
                    ctx.warn(&p, e);
                    return Ok(None);
                }
            };
            if left_out(ctx, &m, root_dev) {
                return Ok(None);
            }
            let opens = ahead.as_ref().map(|a| (&*a.opens, i));
            backup_entry(ctx, child, &p, n.clone(), &m, pnode(n), root_dev, opens)
        };
        let part: Vec<Option<Node>> = if slot.crowded() {
            range.clone().map(entry).collect::<Result<_>>()?
        } else {
            range.clone().into_par_iter().map(entry).collect::<Result<_>>()?
        };
        nodes.extend(part);
    }
    drop(names);
    let tree = Tree { nodes: nodes.into_iter().flatten().collect() };
    let subtree = match ctx.store_tree(&tree, path)? {
        Ok(id) => id,
        Err(why) => {
            ctx.warn(path, format!("directory not saved: {why}"));
            return Ok(None);
        }
    };
    match psub {
        None => ctx.count(|s| s.dirs_new += 1),
        Some(p) if p == subtree => ctx.count(|s| s.dirs_unchanged += 1),
        Some(_) => ctx.count(|s| s.dirs_changed += 1),
    }
    ctx.progress.dirs.fetch_add(1, Relaxed);
    let x = open.xattrs.unwrap_or_else(|e| {
        ctx.note(path, format!("extended attributes not saved: {e}"));
        vec![]
    });
    drop(open.fd);
    drop(slot);
    Ok(Some(node(name, meta, NodeKind::Dir { subtree }, x)))
}

/// Whether an entry below a backup path is left out once stat'ed: a non-directory larger than
/// `--exclude-larger-than`, or on another filesystem under `--one-file-system` (a directory
/// there is a mount point, kept empty by `backup_dir`).
pub(super) fn left_out(ctx: &Ctx, m: &Meta, root_dev: u64) -> bool {
    m.file_type() != FileType::Directory
        && (ctx.opts.excludes.too_large(m.size) || (ctx.opts.one_file_system && m.dev != root_dev))
}

/// Whether the parent's node of a file can stand for it without reading it: not `--force`d,
/// size, times and inode match, and all its chunks are indexed.
fn reusable(ctx: &Ctx, meta: &Meta, parent: Option<&Node>) -> bool {
    match parent {
        Some(p) if !ctx.opts.force && unchanged(meta, p) => match &p.kind {
            NodeKind::File { content, .. } => content.iter().all(|c| ctx.index.contains(BlobType::Data, &c.id)),
            _ => false,
        },
        _ => false,
    }
}

fn backup_file(
    ctx: &Ctx,
    at: At,
    path: &Path,
    name: Vec<u8>,
    meta: &Meta,
    parent: Option<&Node>,
    ahead: Ahead,
) -> Result<Option<Node>> {
    if let Some(p) = parent.filter(|p| reusable(ctx, meta, Some(p))) {
        // Size, times and inode match: content, mode, owner and xattrs are as recorded.
        let mut n = p.clone();
        n.name = name;
        n.device = meta.dev;
        n.links = meta.nlink;
        let size = match &p.kind {
            NodeKind::File { size, .. } => *size,
            _ => 0,
        };
        ctx.count(|s| s.files_unchanged += 1);
        ctx.progress.files.fetch_add(1, Relaxed);
        ctx.progress.bytes.fetch_add(size, Relaxed);
        ctx.progress.file_saved(path, FileChange::Unchanged, size);
        return Ok(Some(n));
    }
    let opened = ahead.and_then(|(o, i)| o.take(i));
    let reading = ctx.progress.reading(path);
    let stored = read_and_store(ctx, at, meta, opened);
    drop(reading);
    let stored = match stored {
        Ok(r) => r?,
        Err(e) => {
            ctx.warn(path, format!("not saved: {e}"));
            return Ok(None);
        }
    };
    let (size, content, after, xattrs) = stored;
    let moved = after.len() != meta.size
        || after.mtime_nsec() != meta.mtime_nsec
        || after.mtime() != meta.mtime
        || after.ctime() != meta.ctime
        || after.ctime_nsec() != meta.ctime_nsec;
    if moved || size != meta.size {
        ctx.note(path, format!("{CHANGED_PREFIX}: the saved copy may mix old and new content"));
        ctx.count(|s| s.changed_during_read += 1);
    }
    // Under --force every file is read: one whose content matches the parent's is unchanged.
    let same = matches!(parent.map(|p| &p.kind), Some(NodeKind::File { content: c, .. }) if *c == content);
    let change = match parent {
        None => FileChange::New,
        Some(_) if ctx.opts.force && same => FileChange::Unchanged,
        Some(_) => FileChange::Modified,
    };
    ctx.count(|s| match change {
        FileChange::New => s.files_new += 1,
        FileChange::Unchanged => s.files_unchanged += 1,
        FileChange::Modified => s.files_changed += 1,
    });
    ctx.progress.files.fetch_add(1, Relaxed);
    ctx.progress.file_saved(path, change, size);
    let x = xattrs.unwrap_or_else(|e| {
        ctx.note(path, format!("extended attributes not saved: {e}"));
        vec![]
    });
    // The recorded size is what was read; the other metadata is from before the read.
    Ok(Some(node(name, meta, NodeKind::File { size, content }, x)))
}

/// Size read, chunks, metadata after the read, extended attributes (read through the descriptor).
type Stored = (u64, Vec<crate::format::tree::ChunkRef>, Metadata, std::io::Result<Vec<crate::format::tree::Xattr>>);

/// Read a file and store its chunks. I/O errors are the outer result (a warning); repository
/// errors the inner one (fatal).
fn read_and_store(ctx: &Ctx, at: At, meta: &Meta, opened: Option<File>) -> std::io::Result<Result<Stored>> {
    // Never follow a symlink swapped in since the stat, never block on a FIFO, and insist on
    // the very file that was stat'ed. A file the I/O pool opened ahead was opened the same way.
    let asked = if opened.is_some() { prefetch::AHEAD_PER_FILE } else { 0 };
    let mut f = match opened {
        Some(f) => f,
        None => File::from(at.open(OFlags::NONBLOCK)?),
    };
    let opened = f.metadata()?;
    if !opened.is_file() || opened.ino() != meta.ino || opened.dev() != meta.dev {
        return Err(std::io::Error::other("replaced by another file while being backed up"));
    }
    // Files up to one maximal chunk are read whole (no copy); longer ones, and files that grew
    // past that while being read, are streamed.
    let max = ctx.chunker.max_size();
    let stored = if opened.len() <= max as u64 {
        let mut buf = Vec::with_capacity(opened.len() as usize + 1);
        let read_started = std::time::Instant::now();
        (&mut f).take(max as u64 + 1).read_to_end(&mut buf)?;
        if buf.len() > max {
            ctx.store_stream(std::io::Cursor::new(buf).chain(&mut f))?
        } else {
            if asked == 0 && read_started.elapsed() > SLOW_READ {
                ctx.gauge.slow_read();
            }
            ctx.progress.bytes.fetch_add(buf.len() as u64, Relaxed);
            ctx.count(|s| s.bytes_read += buf.len() as u64);
            let mut chunks = Vec::new();
            let mut pos = 0;
            for n in ctx.chunker.lengths(&buf) {
                chunks.push(&buf[pos..pos + n]);
                pos += n;
            }
            ctx.store_chunks(&chunks).map(|refs| (buf.len() as u64, refs))
        }
    } else if ctx.io.is_some() {
        ctx.store_stream(ReadAhead::new(&f, asked))?
    } else {
        ctx.store_stream(&mut f)?
    };
    let stored = match stored {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let after = f.metadata()?;
    let xattrs = fsmeta::xattrs_fd(&f);
    Ok(Ok((stored.0, stored.1, after, xattrs)))
}
