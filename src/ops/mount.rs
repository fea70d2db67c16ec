//! `mount`: the selected snapshots as a read-only FUSE filesystem, with a shared lock held for
//! as long as it is mounted.
//!
//! The mount point is checked before anything is mounted on it: mounting as root over a
//! symlink another user planted (`~alice/mnt -> /etc`) would hide `/etc`. So the directory,
//! every directory above it and every symlink on the way must belong to root or the mounting
//! user, and none may be writable by others (a sticky directory such as `/tmp` may be: others
//! cannot rename what is not theirs there). Then no one else can change the path between the
//! check and the mount.

use super::scope::Scope;
use crate::error::{Error, Result};
use crate::mount::{MountOptions, Mounted, Report};
use crate::repo::lock::LockGuard;
use crate::repo::select::SnapshotFilter;
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
    let repo = ctx.open_for(crate::ops::context::READERS, "mount snapshots")?;
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
/// change, reached through directories and symlinks only they can change (sticky directories
/// aside); a usage error naming what is wrong. The path is walked without the kernel following
/// any symlink, so `~alice/mnt/` (a trailing slash) or `~alice/mnt/x` cannot lead elsewhere.
pub fn check_mountpoint(path: &Path) -> Result<PathBuf> {
    use crate::trusted_path::{open, Refusal, Rule, Want};
    match open(path, Rule::Owned, Want::Dir, false) {
        Ok((_, at)) => Ok(at),
        Err(Refusal::Io { path: at, source }) => Err(Error::Io { path: at, source }),
        Err(unsafe_) => Err(Error::InvalidArgument(format!(
            "mount point {}: {unsafe_} (another user could swap it for a symlink)",
            path.display()
        ))),
    }
}
