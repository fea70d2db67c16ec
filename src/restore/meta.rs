//! Metadata of restored entries, always through a descriptor of the entry itself: owner (as
//! root, unless `--no-owner`), extended attributes (less `--exclude-xattr`), mode (less the
//! set-ID bits with `--no-setuid`) and times.

use super::target;
use crate::format::tree::{Node, NodeKind};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, Timespec, Timestamps};
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

/// Which metadata a restore applies.
#[derive(Clone, Debug, Default)]
pub struct MetaOptions {
    /// Never change ownership, even as root.
    pub no_owner: bool,
    /// Clear set-user-ID, set-group-ID (and sticky on files) from restored modes.
    pub no_setuid: bool,
    /// Extended attributes whose names match one of these globs are not restored.
    pub exclude_xattrs: Option<globset::GlobSet>,
}

impl MetaOptions {
    pub(crate) fn chown_wanted(&self) -> bool {
        !self.no_owner && crate::sys::ids().0 == 0
    }

    fn mode(&self, n: &Node) -> u32 {
        if self.no_setuid {
            n.mode & 0o1777 & !(if matches!(n.kind, NodeKind::Dir { .. }) { 0 } else { 0o1000 })
        } else {
            n.mode
        }
    }

    fn xattr_wanted(&self, name: &[u8]) -> bool {
        self.exclude_xattrs.as_ref().is_none_or(|g| !g.is_match(OsStr::from_bytes(name)))
    }
}

/// Whether an existing entry's mode, owner (where restore would set it) or mtime differ from the
/// node's, as `arca verify` reports them.
pub(crate) fn differs(st: &rfs::Stat, n: &Node, o: &MetaOptions) -> bool {
    let mtime = crate::archiver::fsmeta::nanos(st.st_mtime, st.st_mtime_nsec as i64);
    st.st_mode & 0o7777 != o.mode(n)
        || (o.chown_wanted() && (st.st_uid, st.st_gid) != (n.uid, n.gid))
        || mtime != n.mtime
}

pub(crate) fn times(mtime: i64) -> Timestamps {
    let t = Timespec { tv_sec: mtime.div_euclid(1_000_000_000) as _, tv_nsec: mtime.rem_euclid(1_000_000_000) as _ };
    Timestamps { last_access: t, last_modification: t }
}

/// Owner, xattrs, mode and times of a file or directory, through its open descriptor.
/// `strip_acls`: remove ACLs first — for a kept inode, or a new one whose directory had a
/// default ACL (directories restore makes or takes over have none, see [`target::make_dir`]).
pub(crate) fn apply_fd(fd: BorrowedFd<'_>, n: &Node, o: &MetaOptions, strip_acls: bool) -> io::Result<()> {
    if o.chown_wanted() {
        rfs::fchown(fd, Some(rfs::Uid::from_raw(n.uid)), Some(rfs::Gid::from_raw(n.gid)))?;
    }
    // ACLs not from the snapshot (inherited from a parent's default ACL, or on a kept inode)
    // would otherwise be opened up by the chmod below; the snapshot's own are set again next.
    if strip_acls {
        target::strip_acls(fd)?;
    }
    for x in n.xattrs.iter().filter(|x| o.xattr_wanted(&x.name)) {
        let name = target::cname(&x.name)?;
        match rfs::fsetxattr(fd, name.as_c_str(), &x.value, rfs::XattrFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOTSUP) | Err(rustix::io::Errno::PERM) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Mode after owner: chown clears set-ID bits.
    rfs::fchmod(fd, Mode::from_raw_mode(o.mode(n)))?;
    rfs::futimens(fd, &times(n.mtime))?;
    Ok(())
}

/// Owner and times of a symlink or special file just created as `name` in `dir`. The owner is
/// set through an `O_PATH` descriptor checked to be that new inode; times by name (a swapped
/// inode would only get a timestamp). Extended attributes of such entries are not restored.
pub(crate) fn apply_special(dir: BorrowedFd<'_>, name: &CString, n: &Node, o: &MetaOptions) -> io::Result<()> {
    let want = match n.kind {
        NodeKind::Symlink { .. } => FileType::Symlink,
        NodeKind::Fifo => FileType::Fifo,
        NodeKind::CharDevice { .. } => FileType::CharacterDevice,
        NodeKind::BlockDevice { .. } => FileType::BlockDevice,
        _ => return Ok(()),
    };
    let fd = target::open_created(dir, name, want)?;
    if o.chown_wanted() {
        let (u, g) = (Some(rfs::Uid::from_raw(n.uid)), Some(rfs::Gid::from_raw(n.gid)));
        rfs::chownat(fd.as_fd(), c"", u, g, AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW)?;
    }
    if want == FileType::Symlink {
        // No descriptor form sets a symlink's own times; a swapped entry would get only a time.
        rfs::utimensat(dir, name.as_c_str(), &times(n.mtime), AtFlags::SYMLINK_NOFOLLOW)?;
    } else {
        // chmod and utimensat have no O_PATH form; the /proc magic link names exactly the
        // checked inode. Set-ID bits are never given to special files.
        let magic = target::proc_path(&fd);
        rfs::chmodat(rfs::CWD, magic.as_str(), Mode::from_raw_mode(n.mode & 0o777), AtFlags::empty())?;
        rfs::utimensat(rfs::CWD, magic.as_str(), &times(n.mtime), AtFlags::empty())?;
    }
    Ok(())
}
