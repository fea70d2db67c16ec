//! `mount`: the selected snapshots as a read-only FUSE filesystem, with a shared lock held for
//! as long as it is mounted.
//!
//! The mount point is checked before anything is mounted on it: mounting as root over a
//! symlink another user planted (`~alice/mnt -> /etc`) would hide `/etc`. So the directory and
//! every directory above it must belong to root or the mounting user, and none may be
//! writable by others (a sticky directory such as `/tmp` may be: others cannot rename what is
//! not theirs there). Then no one else can change the path between the check and the mount.

use super::scope::Scope;
use crate::error::{Error, Result};
use crate::mount::{MountOptions, Mounted, Report};
use crate::repo::lock::LockGuard;
use crate::repo::select::SnapshotFilter;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A running mount and what keeps it safe.
pub struct Mount {
    /// The mounted filesystem.
    pub mounted: Mounted,
    /// How many snapshots it shows.
    pub snapshots: usize,
    /// The mount point, resolved.
    pub at: PathBuf,
    /// The shared lock (none on read-only media).
    _lock: Option<LockGuard>,
}

/// Check the mount point and mount the snapshots `filter` selects on it. Snapshot files that
/// cannot be read are left out with a warning; damage met while serving goes to `report`.
pub fn mount(
    scope: &Scope,
    mountpoint: &Path,
    filter: &SnapshotFilter,
    opts: &MountOptions,
    report: Report,
) -> Result<Mount> {
    let ctx = &scope.ctx;
    let at = check_mountpoint(mountpoint)?;
    let repo = ctx.open()?;
    let lock = ctx.lock_for_reading(&repo)?;
    let index = ctx.load_index(&repo)?;
    let (mut snaps, damaged) = repo.list_snapshots_and_damage()?;
    for (name, e) in &damaged {
        ctx.notices.warn(&format!("snapshot {name} left out: {e}"));
    }
    let filter = scope.filter(filter, None);
    snaps.retain(|(_, s)| filter.matches(s));
    let count = snaps.len();
    let mounted =
        crate::mount::mount(Arc::new(repo), Arc::new(index), &snaps, &at, opts, &crate::localtime::Local, report)?;
    Ok(Mount { mounted, snapshots: count, at, _lock: lock })
}

/// The mount point, resolved, once it is a directory that only root or the mounting user can
/// change, below directories only they can change; a usage error naming what is wrong.
pub fn check_mountpoint(path: &Path) -> Result<PathBuf> {
    let bad = |why: String| Error::InvalidArgument(format!("mount point {}: {why}", path.display()));
    let md = std::fs::symlink_metadata(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    if md.file_type().is_symlink() {
        return Err(bad("is a symlink: give the directory itself".into()));
    }
    if !md.is_dir() {
        return Err(bad("is not a directory".into()));
    }
    let real = path.canonicalize().map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    let (uid, _) = crate::sys::ids();
    let ours = |owner: u32| owner == 0 || owner == uid;
    let md = std::fs::symlink_metadata(&real).map_err(|e| Error::Io { path: real.clone(), source: e })?;
    if !ours(md.uid()) {
        return Err(bad(format!("belongs to user {}, not to you or root", md.uid())));
    }
    if md.mode() & 0o022 != 0 {
        return Err(bad("is writable by group or others".into()));
    }
    for dir in real.ancestors().skip(1) {
        let m = std::fs::symlink_metadata(dir).map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })?;
        let sticky = m.mode() & 0o1000 != 0;
        if !ours(m.uid()) || (m.mode() & 0o022 != 0 && !sticky) {
            return Err(bad(format!(
                "{} can be changed by another user, who could swap the mount point for a symlink",
                dir.display()
            )));
        }
    }
    Ok(real)
}
