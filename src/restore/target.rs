//! The only code that touches the restore target. Every operation names one validated entry
//! relative to a directory descriptor, so no path is ever re-resolved and a symlink or rename
//! swapped into the target by another user cannot redirect a write outside it.
//!
//! Rules (README, "What restore touches"):
//! - a directory is entered with `openat(O_DIRECTORY|O_NOFOLLOW)`, so a symlink in its place is a
//!   conflict, never followed; a directory restore created is made `0700` and owned by the
//!   restoring user until its metadata is set last, so nobody else can add entries while the
//!   restore writes into it; root takes an existing directory over the same way when another
//!   user could write into it, and leaves alone one only root, it or the snapshot's owner can;
//! - a file is created with `O_CREAT|O_EXCL|O_NOFOLLOW` and everything after that goes through
//!   its descriptor; an existing inode is never written into;
//! - only non-directories are unlinked to make room; a directory in the way is a conflict unless
//!   `--delete` asked for what is not in the snapshot to go, and then it is removed through
//!   descriptors as well;
//! - symlinks and special files are checked through an `O_PATH` descriptor before their owner is
//!   set, so a hard link swapped in under the same name is not chowned.

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// What is at a name in the target.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Existing {
    Nothing,
    Dir,
    Other,
}

/// A NUL-free entry name (tree names are validated at decode: no `/`, NUL, `.` or `..`).
pub(crate) fn cname(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
}

/// Open (and with `create`, make) the target directory one component at a time. A symlink on
/// the way is followed only where it stands in a directory no other user can change (owned by us
/// or root, not group- or world-writable), and its target is walked the same way, never by the
/// kernel: `--target /home/alice/restored` must not become `/etc` because alice put a symlink
/// there, swapped one in while the path was being made, or re-pointed a link a trusted one leads
/// through.
pub(crate) fn open_path(path: &std::path::Path, create: bool) -> io::Result<OwnedFd> {
    use crate::trusted_path::{open, Rule, Want};
    Ok(open(path, Rule::Target { create }, Want::Dir, true)?.0)
}

/// What `name` is, without following it.
pub(crate) fn existing(dir: impl AsFd, name: &CString) -> io::Result<Existing> {
    match rfs::statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => Ok(Existing::Dir),
        Ok(_) => Ok(Existing::Other),
        Err(rustix::io::Errno::NOENT) => Ok(Existing::Nothing),
        Err(e) => Err(e.into()),
    }
}

/// Open an existing directory entry without following a symlink.
pub(crate) fn open_dir(dir: impl AsFd, name: &CString) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rfs::openat(dir, name.as_c_str(), flags, Mode::empty())?)
}

/// A directory restore made or found, opened.
pub(crate) struct Made {
    pub fd: OwnedFd,
    /// Restore created it.
    pub created: bool,
    /// It existed and restore took it over: what it was before.
    pub before: Option<Before>,
}

/// A directory's owner, mode and ACLs before restore took it over, to put back on a directory
/// that is not the snapshot's own (an ancestor of its paths).
pub(crate) struct Before {
    uid: u32,
    gid: u32,
    mode: u32,
    acls: Vec<(&'static std::ffi::CStr, Vec<u8>)>,
}

const ACL_NAMES: [&std::ffi::CStr; 2] = [c"system.posix_acl_access", c"system.posix_acl_default"];

/// Create the directory `name`, or open the one there, and make sure no other user can add or
/// swap entries in it while restore writes into it. A new directory is `0700`. An existing one
/// is left as it is when only root, we or `owner` (the snapshot's owner of it) can write it (or
/// it is sticky, as `/tmp` is) and it has no default ACL (which new entries would inherit) —
/// `/etc` stays `0755` during a restore to `/`, even if the restore is killed; otherwise (group-
/// or world-writable, or someone else's) it is taken over like a new one: owned by us, `0700`,
/// ACLs removed, and what it was is returned so that restore can put it back where the
/// snapshot's own metadata does not apply.
pub(crate) fn make_dir(dir: impl AsFd, name: &CString, owner: u32) -> io::Result<Made> {
    let d = dir.as_fd();
    let created = match rfs::mkdirat(d, name.as_c_str(), Mode::from_raw_mode(0o700)) {
        Ok(()) => true,
        Err(rustix::io::Errno::EXIST) => false,
        Err(e) => return Err(e.into()),
    };
    let fd = open_dir(d, name).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => conflict("a non-directory is in the way of a directory"),
        _ => e,
    })?;
    let st = rfs::fstat(&fd)?;
    let (uid, _) = crate::sys::ids();
    // What was made is opened by name: a directory someone renamed over it meanwhile (they can
    // write the parent) is not ours, and is treated as one that was there before.
    let created = created && st.st_uid == uid && st.st_mode & 0o077 == 0;
    // Others cannot replace what is in a sticky directory (`/tmp`) either. A default ACL is a
    // grant to whoever it names on everything created inside.
    let closed = st.st_mode & 0o022 == 0 || st.st_mode & 0o1000 != 0;
    let trusted = [0, uid, owner].contains(&st.st_uid) && closed && !has_default_acl(&fd);
    // Root writes whatever the mode says; another user only into a directory it may write.
    let writable = uid == 0 || (st.st_uid == uid && st.st_mode & 0o300 == 0o300);
    if !created && trusted && writable {
        return Ok(Made { fd, created, before: None });
    }
    // Root takes over a directory someone else owns; an unprivileged user cannot, and can only
    // restore into it as far as its permissions allow.
    let owned = st.st_uid == uid;
    if !owned && uid != 0 {
        return Ok(Made { fd, created, before: None });
    }
    let before = (!created).then(|| Before {
        uid: st.st_uid,
        gid: st.st_gid,
        mode: st.st_mode & 0o7777,
        acls: ACL_NAMES.iter().filter_map(|n| read_xattr(&fd, n).map(|v| (*n, v))).collect(),
    });
    if !owned {
        // A directory root cannot take over (root-squashed NFS) stays writable by its owner.
        rfs::fchown(&fd, Some(rfs::Uid::from_raw(uid)), None)?;
    }
    strip_acls(&fd)?;
    if st.st_mode & 0o7777 != 0o700 {
        rfs::fchmod(&fd, Mode::from_raw_mode(0o700))?;
    }
    Ok(Made { fd, created, before })
}

/// Put back what [`make_dir`] took over.
pub(crate) fn put_back(fd: &OwnedFd, b: &Before) -> io::Result<()> {
    if crate::sys::ids().0 == 0 {
        rfs::fchown(fd, Some(rfs::Uid::from_raw(b.uid)), Some(rfs::Gid::from_raw(b.gid)))?;
    }
    for (name, value) in &b.acls {
        match rfs::fsetxattr(fd, *name, value, rfs::XattrFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOTSUP) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Mode after owner: chown clears set-ID bits.
    rfs::fchmod(fd, Mode::from_raw_mode(b.mode))?;
    Ok(())
}

/// An extended attribute's value, `None` when absent (or unreadable).
fn read_xattr(fd: &OwnedFd, name: &std::ffi::CStr) -> Option<Vec<u8>> {
    let len = rfs::fgetxattr(fd, name, &mut [0u8; 0][..]).ok()?;
    let mut buf = vec![0u8; len];
    let n = rfs::fgetxattr(fd, name, &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// A conflict: something restore will not remove is in the way.
pub(crate) fn conflict(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::AlreadyExists, format!("conflict: {what}"))
}

/// Whether an error is a [`conflict`].
pub(crate) fn is_conflict(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::AlreadyExists && e.to_string().starts_with("conflict:")
}

/// Remove a non-directory; a directory in the way is removed only with `delete_dirs`.
pub(crate) fn remove(dir: impl AsFd, name: &CString, delete_dirs: bool) -> io::Result<()> {
    let d = dir.as_fd();
    match rfs::unlinkat(d, name.as_c_str(), AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(rustix::io::Errno::ISDIR) if delete_dirs => remove_tree(d, name),
        Err(rustix::io::Errno::ISDIR) => Err(conflict("a directory is in the way (use --delete to replace it)")),
        Err(e) => Err(e.into()),
    }
}

/// Unlink the non-directory `name` in `dir`; returns true, removing nothing, when it is a
/// directory. A directory whose (restored) mode denies us writing is made `0700` through its
/// descriptor first: it is being emptied anyway.
pub(crate) fn unlink_entry(dir: impl AsFd, name: &CString) -> io::Result<bool> {
    let d = dir.as_fd();
    let mut opened_up = false;
    loop {
        match rfs::unlinkat(d, name.as_c_str(), AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => return Ok(false),
            Err(rustix::io::Errno::ISDIR) => return Ok(true),
            Err(rustix::io::Errno::ACCESS) if !opened_up => {
                rfs::fchmod(d, Mode::from_raw_mode(0o700))?;
                opened_up = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Remove the directory `name` and everything below it, through descriptors only: iterative,
/// never following a symlink (they are unlinked as names).
pub(crate) fn remove_tree(dir: impl AsFd, name: &CString) -> io::Result<()> {
    // Stack of (parent fd, name, opened dir fd) from `name` down to the current directory.
    let root = open_dir(dir.as_fd(), name)?;
    let mut stack: Vec<(OwnedFd, CString)> = vec![(root, name.clone())];
    // Entries can be added behind the scan by whoever else writes here: rescan a few times.
    let mut rescans = 0;
    while let Some((fd, _)) = stack.last() {
        let mut sub = None;
        for entry in rfs::Dir::read_from(fd)? {
            let entry = entry?;
            let n = entry.file_name();
            if n.to_bytes() == b"." || n.to_bytes() == b".." {
                continue;
            }
            let n = n.to_owned();
            if unlink_entry(fd, &n)? {
                sub = Some(n);
                break;
            }
        }
        match sub {
            Some(n) => {
                let child = open_dir(fd, &n)?;
                stack.push((child, n));
            }
            None => {
                let (_, n) = stack.pop().expect("non-empty");
                let parent = match stack.last() {
                    Some((p, _)) => p.as_fd(),
                    None => dir.as_fd(),
                };
                match rfs::unlinkat(parent, n.as_c_str(), AtFlags::REMOVEDIR) {
                    Err(rustix::io::Errno::NOTEMPTY) if rescans < 8 => {
                        rescans += 1;
                        let again = open_dir(parent, &n)?;
                        stack.push((again, n));
                    }
                    r => r?,
                }
            }
        }
    }
    Ok(())
}

/// Create a new regular file (never an existing one, never through a symlink), readable too so
/// that `--verify` can re-read it through the same descriptor.
pub(crate) fn create_file(dir: impl AsFd, name: &CString) -> io::Result<File> {
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(File::from(rfs::openat(dir, name.as_c_str(), flags, Mode::from_raw_mode(0o600))?))
}

/// Open an existing regular file for reading, not through a symlink. `None` if what is there is
/// not a regular file. The entry is first held by an `O_PATH` descriptor and only a regular file
/// is then opened (through that descriptor), so a device node or FIFO in its place is never
/// really opened (no tape rewinds, no watchdog starts).
pub(crate) fn open_existing_file(dir: impl AsFd, name: &CString) -> io::Result<Option<File>> {
    let path = match rfs::openat(dir, name.as_c_str(), OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
    {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let st = rfs::fstat(&path)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Ok(None);
    }
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = rfs::open(proc_path(&path).as_str(), flags, Mode::empty())?;
    let again = rfs::fstat(&fd)?;
    if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino) {
        return Err(io::Error::other("the entry changed while it was being opened"));
    }
    Ok(Some(File::from(fd)))
}

/// The `/proc` magic link naming exactly the inode behind a descriptor.
pub(crate) fn proc_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// An `O_PATH` descriptor on `name` itself (a symlink or special file), checked to be of the
/// type just created, owned by us, with a single link, so that metadata set through it lands on
/// the inode restore made and not on one swapped in under its name.
pub(crate) fn open_created(dir: impl AsFd, name: &CString, want: FileType) -> io::Result<OwnedFd> {
    let fd = rfs::openat(dir, name.as_c_str(), OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
    let st = rfs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != want || st.st_nlink != 1 || st.st_uid != crate::sys::ids().0 {
        return Err(io::Error::other("the entry was replaced while it was being restored"));
    }
    Ok(fd)
}

/// Names in a directory, read through its descriptor.
pub(crate) fn list(dir: impl AsFd) -> io::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for e in rfs::Dir::read_from(dir)? {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(n.to_vec());
        }
    }
    Ok(out)
}

/// Remove POSIX ACLs (access and default) so that a named entry another user set, or one a new
/// entry inherited from a parent's default ACL, cannot grant them access once the mode is set.
pub(crate) fn strip_acls(fd: impl AsFd) -> io::Result<()> {
    for name in [c"system.posix_acl_access", c"system.posix_acl_default"] {
        match rfs::fremovexattr(fd.as_fd(), name) {
            Ok(()) | Err(rustix::io::Errno::NODATA) | Err(rustix::io::Errno::NOTSUP) => {}
            Err(rustix::io::Errno::ACCESS) | Err(rustix::io::Errno::PERM) if crate::sys::ids().0 != 0 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Whether a directory has a default ACL (which new entries in it inherit).
pub(crate) fn has_default_acl(fd: impl AsFd) -> bool {
    let mut buf = [0u8; 0];
    rfs::fgetxattr(fd, c"system.posix_acl_default", &mut buf).is_ok()
}
