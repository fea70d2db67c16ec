//! Restore: recreate a snapshot (or part of it) under a target directory.
//!
//! 1. Walk the selected trees, creating directories (owner-only permissions for now), symlinks
//!    and special files, and collecting the regular files to write.
//! 2. Write files in parallel, ordered by where their first chunk is stored so that packs are
//!    read front to back. Every chunk is authenticated and re-hashed before it is written at its
//!    offset; all-zero chunks are skipped, leaving holes (sparse files stay sparse).
//! 3. Link hard links, then give directories their metadata deepest first (so writing into
//!    them does not disturb their times).
//!
//! Safety: tree names are validated at decode time (no `/`, NUL, `.` or `..`), paths are built
//! only by joining such names under the target, and nothing that already exists is followed if
//! it is a symlink — so a hostile snapshot, or a hostile target, cannot redirect a write outside
//! the target.

use crate::archiver::Excludes;
use crate::error::{Error, IoContext, Result};
use crate::format::blob::BlobType;
use crate::format::tree::{Node, NodeKind};
use crate::id::Id;
use crate::repo::index::Index;
use crate::repo::Repository;
use rayon::prelude::*;
use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::{self, File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// What to do with a file that already exists at the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Overwrite {
    /// Leave any existing file alone.
    Never,
    /// Rewrite unless size and modification time already match (the default: a re-run of an
    /// interrupted restore skips what is done, because times are set only after content).
    #[default]
    IfChanged,
    /// Always rewrite.
    Always,
}

/// Restore options.
#[derive(Default)]
pub struct RestoreOptions {
    /// Directory to restore into (created if missing).
    pub target: PathBuf,
    /// Restore only entries matching these patterns (and what is below them).
    pub include: Option<Excludes>,
    /// Skip entries matching these patterns.
    pub exclude: Option<Excludes>,
    /// Policy for existing files.
    pub overwrite: Overwrite,
    /// Count what would be restored; write nothing.
    pub dry_run: bool,
    /// Re-read every restored file afterwards and compare with the snapshot.
    pub verify: bool,
}

/// What a restore did.
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
    /// Content bytes written.
    pub bytes: u64,
    /// Problems: path and message. Integrity problems name the blob.
    pub errors: Vec<String>,
    /// How many of those are integrity errors (damaged or missing data).
    pub damaged: u64,
}

/// A regular file to write.
struct FileJob {
    target: PathBuf,
    node: Node,
    order: (Id, u32),
}

#[derive(Default)]
struct Plan {
    dirs: Vec<(PathBuf, Node)>,
    files: Vec<FileJob>,
    others: Vec<(PathBuf, Node)>,
    /// Directories whose tree could not be read: reported, and their contents skipped.
    damaged: Vec<(PathBuf, Error)>,
}

/// What happened to one file.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    /// Written, this many bytes.
    Written(u64),
    /// Already had the snapshot's size and mtime (`if-changed`).
    UpToDate,
    /// Left as it was by `--overwrite never`.
    Kept,
}

/// Problems found while restoring.
#[derive(Default)]
struct Report {
    errors: Mutex<Vec<String>>,
    damaged: AtomicU64,
}

impl Report {
    fn add(&self, p: &Path, e: &dyn std::fmt::Display, integrity: bool) {
        self.errors.lock().unwrap().push(format!("{}: {e}", p.display()));
        if integrity {
            self.damaged.fetch_add(1, Relaxed);
        }
    }
}

/// Whether two hard-linked nodes really have the same content.
fn same_content(a: &Node, b: &Node) -> bool {
    matches!((&a.kind, &b.kind), (NodeKind::File { content: x, size: s }, NodeKind::File { content: y, size: t }) if x == y && s == t)
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
/// the target; a file or other entry is restored as `target/<name>`.
pub fn restore(
    repo: &Repository,
    index: &Index,
    node: &Node,
    snap_path: &str,
    opts: &RestoreOptions,
) -> Result<RestoreStats> {
    let mut plan = Plan::default();
    let base = PathBuf::from(if snap_path.is_empty() { "/" } else { snap_path });
    match node.kind {
        NodeKind::Dir { subtree } => {
            walk(repo, index, subtree, &base, &opts.target, false, opts, &mut plan)?;
        }
        _ => {
            let t = opts.target.join(OsStr::from_bytes(&node.name));
            add_entry(node.clone(), t, &mut plan, index);
        }
    }
    let mut stats =
        RestoreStats { dirs: plan.dirs.len() as u64, others: plan.others.len() as u64, ..Default::default() };
    if opts.dry_run {
        stats.files = plan.files.len() as u64;
        stats.bytes = plan.files.iter().map(|f| file_size(&f.node)).sum();
        stats.errors = plan.damaged.iter().map(|(p, e)| format!("{}: {e}", p.display())).collect();
        stats.damaged = plan.damaged.len() as u64;
        return Ok(stats);
    }
    fs::create_dir_all(&opts.target).at(&opts.target)?;
    let report = Report::default();
    let err = |p: &Path, e: &dyn std::fmt::Display| report.add(p, e, false);
    for (p, e) in &plan.damaged {
        report.add(p, e, true);
    }
    // A directory that could not be made (e.g. `--overwrite never` keeps a symlink in its place)
    // must never be written through: everything below it is skipped.
    let mut failed: Vec<PathBuf> = Vec::new();
    let below_failed = |p: &Path, failed: &[PathBuf]| failed.iter().any(|d| p.starts_with(d));
    for (p, _) in &plan.dirs {
        if below_failed(p, &failed) {
            failed.push(p.clone());
        } else if let Err(e) = make_dir(p, opts.overwrite) {
            err(p, &e);
            failed.push(p.clone());
        }
    }
    plan.others.retain(|(p, _)| !below_failed(p, &failed));
    plan.files.retain(|f| !below_failed(&f.target, &failed));
    for (p, n) in &plan.others {
        if let Err(e) = make_other(p, n, opts.overwrite) {
            err(p, &e);
        }
    }
    // Hard links: the first file of each (device, inode) group is written, the rest linked to it
    // — but only to a first file that now has the snapshot's content and the same chunk list.
    let mut seen: HashMap<(u64, u64), usize> = HashMap::new();
    let mut links: Vec<(usize, FileJob)> = Vec::new();
    let mut files: Vec<FileJob> = Vec::new();
    for f in plan.files {
        if f.node.links > 1 && f.node.inode != 0 {
            if let Some(&first) = seen.get(&(f.node.device, f.node.inode)) {
                links.push((first, f));
                continue;
            }
            seen.insert((f.node.device, f.node.inode), files.len());
        }
        files.push(f);
    }
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by_key(|&i| files[i].order);
    let outcomes: Vec<Option<Outcome>> = {
        let mut by_file = vec![None; files.len()];
        let done: Vec<(usize, Option<Outcome>)> = order
            .par_iter()
            .map(|&i| match restore_file(repo, index, &files[i], opts.overwrite) {
                Ok(o) => (i, Some(o)),
                Err(e) => {
                    report.add(&files[i].target, &e, e.is_integrity());
                    (i, None)
                }
            })
            .collect();
        for (i, o) in done {
            by_file[i] = o;
        }
        by_file
    };
    let mut linked = 0;
    let mut extra: Vec<(FileJob, Option<Outcome>)> = Vec::new();
    for (first, f) in links {
        let good = matches!(outcomes[first], Some(Outcome::Written(_) | Outcome::UpToDate));
        if good && same_content(&files[first].node, &f.node) {
            match make_hardlink(&files[first].target, &f.target, opts.overwrite) {
                Ok(()) => linked += 1,
                Err(e) => err(&f.target, &e),
            }
        } else {
            // Restore it as a file of its own rather than share an inode with other bytes.
            match restore_file(repo, index, &f, opts.overwrite) {
                Ok(o) => extra.push((f, Some(o))),
                Err(e) => report.add(&f.target, &e, e.is_integrity()),
            }
        }
    }
    let all: Vec<(&FileJob, &Option<Outcome>)> =
        files.iter().zip(outcomes.iter()).chain(extra.iter().map(|(f, o)| (f, o))).collect();
    if opts.verify {
        // Only what this restore vouches for: files it wrote or found already correct.
        all.par_iter().filter(|(_, o)| matches!(o, Some(Outcome::Written(_) | Outcome::UpToDate))).for_each(
            |(f, _)| {
                if let Err(e) = verify_file(repo, &f.target, &f.node) {
                    report.add(&f.target, &e, e.is_integrity());
                }
            },
        );
    }
    for (p, n) in plan.dirs.iter().rev().filter(|(p, _)| !below_failed(p, &failed)) {
        if let Err(e) = apply_meta(p, n, false) {
            err(p, &e);
        }
    }
    if let NodeKind::Dir { .. } = node.kind {
        if !snap_path.is_empty() && snap_path != "/" && node.mtime != 0 {
            let _ = apply_meta(&opts.target, node, false);
        }
    }
    for (_, o) in &all {
        match o {
            Some(Outcome::Written(n)) => {
                stats.files += 1;
                stats.bytes += n;
            }
            Some(Outcome::UpToDate | Outcome::Kept) => stats.files_skipped += 1,
            None => {}
        }
    }
    stats.others += linked;
    stats.errors = report.errors.into_inner().unwrap();
    stats.damaged = report.damaged.into_inner();
    Ok(stats)
}

fn file_size(n: &Node) -> u64 {
    match &n.kind {
        NodeKind::File { size, .. } => *size,
        _ => 0,
    }
}

fn add_entry(node: Node, target: PathBuf, plan: &mut Plan, index: &Index) {
    match &node.kind {
        NodeKind::File { content, .. } => {
            let order = content
                .first()
                .and_then(|c| index.lookup(BlobType::Data, &c.id))
                .map(|l| (l.pack, l.offset))
                .unwrap_or_default();
            plan.files.push(FileJob { target, node, order });
        }
        NodeKind::Dir { .. } => plan.dirs.push((target, node)),
        _ => plan.others.push((target, node)),
    }
}

#[allow(clippy::too_many_arguments)]
fn walk(
    repo: &Repository,
    index: &Index,
    tree: Id,
    snap: &Path,
    target: &Path,
    included: bool,
    opts: &RestoreOptions,
    plan: &mut Plan,
) -> Result<bool> {
    let tree = match repo.read_tree(index, &tree) {
        Ok(t) => t,
        Err(e) => {
            // One damaged directory must not stop the rest of a disaster recovery.
            plan.damaged.push((target.to_path_buf(), e));
            return Ok(false);
        }
    };
    let mut any = false;
    for node in tree.nodes {
        let name = OsStr::from_bytes(&node.name);
        let sp = snap.join(name);
        if opts.exclude.as_ref().is_some_and(|e| e.matches(&sp, name)) {
            continue;
        }
        let inc = included || opts.include.as_ref().is_none_or(|i| i.matches(&sp, name));
        let tp = target.join(name);
        if let NodeKind::Dir { subtree } = node.kind {
            let at = plan.dirs.len();
            plan.dirs.push((tp.clone(), node));
            let below = walk(repo, index, subtree, &sp, &tp, inc, opts, plan)?;
            if !(inc || below) {
                // Nothing selected in here: drop this directory again.
                plan.dirs.remove(at);
                continue;
            }
            any = true;
        } else if inc {
            add_entry(node, tp, plan, index);
            any = true;
        }
    }
    Ok(any)
}

/// Create a directory; an existing directory is reused, anything else in the way (including a
/// symlink, which must never be followed) is replaced only if the policy allows.
fn make_dir(p: &Path, policy: Overwrite) -> std::io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) if policy == Overwrite::Never => {
            return Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "exists and is not a directory"))
        }
        Ok(_) => fs::remove_file(p)?,
        Err(_) => {}
    }
    fs::DirBuilder::new().mode(0o700).create(p)
}

/// Make room for a new non-directory entry. Returns false if the policy says to keep what is there.
fn clear_for(p: &Path, policy: Overwrite) -> std::io::Result<bool> {
    match fs::symlink_metadata(p) {
        Err(_) => Ok(true),
        Ok(_) if policy == Overwrite::Never => Ok(false),
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).map(|_| true),
        Ok(_) => fs::remove_file(p).map(|_| true),
    }
}

fn make_other(p: &Path, n: &Node, policy: Overwrite) -> std::io::Result<()> {
    if !clear_for(p, policy)? {
        return Ok(());
    }
    let c = CString::new(p.as_os_str().as_bytes())?;
    let rc = match &n.kind {
        NodeKind::Symlink { target } => {
            std::os::unix::fs::symlink(OsStr::from_bytes(target), p)?;
            0
        }
        // SAFETY: `c` is a valid NUL-terminated path.
        NodeKind::Fifo => unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        NodeKind::CharDevice { rdev } => unsafe {
            libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, *rdev as libc::dev_t)
        },
        NodeKind::BlockDevice { rdev } => unsafe {
            libc::mknod(c.as_ptr(), libc::S_IFBLK | 0o600, *rdev as libc::dev_t)
        },
        _ => return Ok(()), // sockets are recorded, not recreated
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    apply_meta(p, n, matches!(n.kind, NodeKind::Symlink { .. }))
}

fn make_hardlink(first: &Path, other: &Path, policy: Overwrite) -> std::io::Result<()> {
    if let (Ok(a), Ok(b)) = (fs::symlink_metadata(first), fs::symlink_metadata(other)) {
        if a.ino() == b.ino() && a.dev() == b.dev() {
            return Ok(());
        }
    }
    if !clear_for(other, policy)? {
        return Ok(());
    }
    fs::hard_link(first, other)
}

/// Whether an existing file already has the node's size and modification time.
fn already_restored(p: &Path, n: &Node) -> bool {
    fs::symlink_metadata(p)
        .is_ok_and(|m| m.is_file() && m.len() == file_size(n) && crate::archiver::nanos_of(&m) == n.mtime)
}

/// Write one file. `Ok(None)` when skipped by the overwrite policy.
fn restore_file(repo: &Repository, index: &Index, f: &FileJob, policy: Overwrite) -> Result<Outcome> {
    let p = &f.target;
    // Create first, and consult the overwrite policy only if something is already there: a
    // fresh restore then costs one path lookup per file. O_NOFOLLOW with O_CREAT|O_EXCL never
    // follows a symlink in the final component.
    let create = || OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(p);
    let file = match create() {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match policy {
            Overwrite::Never => return Ok(Outcome::Kept),
            Overwrite::IfChanged if already_restored(p, &f.node) => return Ok(Outcome::UpToDate),
            _ => {
                clear_for(p, policy).at(p)?;
                create().at(p)?
            }
        },
        Err(e) => return Err(Error::Io { path: p.clone(), source: e }),
    };
    let NodeKind::File { size, content } = &f.node.kind else { unreachable!("only files are queued") };
    let mut offset = 0u64;
    let mut data_end = 0u64;
    for c in content {
        let data = repo.read_blob(index, BlobType::Data, &c.id).map_err(|e| match e {
            Error::Integrity { object, reason } => {
                Error::integrity(object, format!("{reason} (needed by {})", p.display()))
            }
            e => e,
        })?;
        if data.len() != c.len as usize {
            return Err(Error::integrity(
                format!("data blob {}", c.id),
                format!("length differs from the tree's record (needed by {})", p.display()),
            ));
        }
        if data.iter().any(|&b| b != 0) {
            file.write_all_at(&data, offset).at(p)?;
            data_end = offset + c.len as u64;
        }
        offset += c.len as u64;
    }
    // Only a file that ends in a hole needs its length set. Extending with ftruncate would make
    // the full size durable before delayed-allocation data: after a power cut the file could
    // have the right size and time but zeros, and `if-changed` would then skip it on a re-run.
    if data_end < *size {
        file.set_len(*size).at(p)?;
    }
    apply_file_meta(&file, &f.node).at(p)?;
    Ok(Outcome::Written(*size))
}

/// Re-read a restored file and check every chunk's hash.
fn verify_file(repo: &Repository, p: &Path, n: &Node) -> Result<()> {
    let NodeKind::File { content, .. } = &n.kind else { return Ok(()) };
    let f = File::open(p).at(p)?;
    let mut offset = 0u64;
    for c in content {
        let mut buf = vec![0u8; c.len as usize];
        f.read_exact_at(&mut buf, offset).at(p)?;
        if repo.keys().blob_id(&buf) != c.id {
            return Err(Error::integrity(
                p.display().to_string(),
                format!("restored bytes at offset {offset} differ from the snapshot"),
            ));
        }
        offset += c.len as u64;
    }
    if f.metadata().at(p)?.len() != offset {
        return Err(Error::integrity(p.display().to_string(), "restored file has the wrong length"));
    }
    Ok(())
}

/// Owner (when permitted), mode, extended attributes and times. Ownership is attempted only as
/// root, as tar does; other failures are returned.
fn apply_meta(p: &Path, n: &Node, symlink: bool) -> std::io::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::lchown(p, Some(n.uid), Some(n.gid))?;
    }
    for x in &n.xattrs {
        if let Err(e) = xattr::set(p, OsStr::from_bytes(&x.name), &x.value) {
            if e.raw_os_error() != Some(libc::ENOTSUP) && e.raw_os_error() != Some(libc::EPERM) {
                return Err(e);
            }
        }
    }
    if !symlink {
        fs::set_permissions(p, fs::Permissions::from_mode(n.mode))?;
    }
    set_times(p, n.mtime)
}

/// [`apply_meta`] for a regular file through its open descriptor (no path lookups).
fn apply_file_meta(file: &File, n: &Node) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use xattr::FileExt as _;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::fchown(file, Some(n.uid), Some(n.gid))?;
    }
    for x in &n.xattrs {
        if let Err(e) = file.set_xattr(OsStr::from_bytes(&x.name), &x.value) {
            if e.raw_os_error() != Some(libc::ENOTSUP) && e.raw_os_error() != Some(libc::EPERM) {
                return Err(e);
            }
        }
    }
    file.set_permissions(fs::Permissions::from_mode(n.mode))?;
    let times = [timespec(n.mtime), timespec(n.mtime)];
    // SAFETY: a valid open descriptor and a two-element timespec array.
    if unsafe { libc::futimens(file.as_raw_fd(), times.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn timespec(ns: i64) -> libc::timespec {
    libc::timespec { tv_sec: ns.div_euclid(1_000_000_000) as libc::time_t, tv_nsec: ns.rem_euclid(1_000_000_000) as _ }
}

fn set_times(p: &Path, mtime: i64) -> std::io::Result<()> {
    let times = [timespec(mtime), timespec(mtime)];
    let c = CString::new(p.as_os_str().as_bytes())?;
    // SAFETY: valid path and a two-element timespec array; AT_SYMLINK_NOFOLLOW sets a link's own times.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
