//! The backup's scan-ahead: counts the files and bytes the backup will save, so progress can
//! say "of how much" (restic's scanner). It walks the same selection as the backup, through
//! the walk's own listing and rules (`walk::list_dir`, `walk::left_out`: patterns, markers,
//! sizes, `--one-file-system`), but only lists and stats: one `getdents` per directory and one
//! `fstatat` per entry, on one thread beside the backup's pool, never reading a file. What it
//! cannot read it skips silently: the backup meets the same entry and reports it.
//!
//! Iterative, with a stack of directories still to list, each holding its parent's descriptor:
//! the descriptors held are those of the directories on the way down, as in the walk.

use super::fsmeta::Meta;
use super::walk::{self, At, Listing};
use super::Ctx;
use rustix::fs::{FileType, OFlags, CWD};
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

/// A directory still to list: `name` in `parent` (a backup path itself: its path under `CWD`).
struct Pending {
    parent: Option<Arc<OwnedFd>>,
    name: OsString,
    path: PathBuf,
    meta: Meta,
    root_dev: u64,
}

/// Count what the backup of `paths` will save into `ctx.progress`'s totals, until done or
/// until `stop` is set (the backup finished first).
pub(super) fn scan(ctx: &Ctx, paths: &[PathBuf], stop: &AtomicBool) {
    ctx.progress.counting_started();
    let mut stack = Vec::new();
    for root in walk::outermost(paths) {
        if let Ok(meta) = (At { dir: CWD, name: root.as_os_str() }).stat() {
            let name = root.clone().into_os_string();
            let p = Pending { parent: None, name, path: root, meta, root_dev: meta.dev };
            count_entry(ctx, p, &mut stack);
        }
    }
    while let Some(d) = stack.pop() {
        if stop.load(Relaxed) {
            break;
        }
        scan_dir(ctx, d, &mut stack);
    }
    ctx.progress.counting_finished();
}

/// Count a non-directory into the totals; queue a directory.
fn count_entry(ctx: &Ctx, p: Pending, stack: &mut Vec<Pending>) {
    match p.meta.file_type() {
        FileType::Directory => stack.push(p),
        FileType::RegularFile => ctx.progress.expect(1, p.meta.size),
        _ => ctx.progress.expect(1, 0),
    }
}

/// List one directory as the backup will, count its files, queue its subdirectories.
fn scan_dir(ctx: &Ctx, d: Pending, stack: &mut Vec<Pending>) {
    // As `walk::backup_dir`: a backup path on its own filesystem starts a new one; any other
    // directory on another filesystem is a mount point, kept empty under `-x`.
    let root_dev = if d.meta.dev != d.root_dev && ctx.is_root(&d.path) { d.meta.dev } else { d.root_dev };
    if ctx.opts.one_file_system && d.meta.dev != root_dev {
        return;
    }
    let dir = d.parent.as_ref().map_or(CWD, |f| f.as_fd());
    let Ok(fd) = (At { dir, name: &d.name }).open(OFlags::DIRECTORY) else { return };
    let Listing::Names(names) = walk::list_dir(ctx, &fd, &d.path, false) else { return };
    let fd = Arc::new(fd);
    let (mut files, mut bytes) = (0, 0);
    for n in names {
        let name = OsStr::from_bytes(&n);
        let Ok(meta) = (At { dir: fd.as_fd(), name }).stat() else { continue };
        if walk::left_out(ctx, &meta, root_dev) {
            continue;
        }
        match meta.file_type() {
            FileType::Directory => {
                let path = Path::join(&d.path, name);
                stack.push(Pending { parent: Some(fd.clone()), name: name.to_owned(), path, meta, root_dev });
            }
            FileType::RegularFile => (files, bytes) = (files + 1, bytes + meta.size),
            _ => files += 1,
        }
    }
    // Once per directory: the counters are shared with the workers.
    ctx.progress.expect(files, bytes);
}
