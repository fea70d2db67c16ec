//! Opening a path so that no other user can redirect it. The path is resolved one component at
//! a time with `openat(O_NOFOLLOW)`; a symlink is followed by reading it and resolving its
//! target the same way, never by the kernel, so every directory the walk passes through is
//! one it has looked at. What must be trusted on the way depends on the caller ([`Rule`]).
//!
//! Checking a path and then using it by name is a race against whoever can change a directory
//! on it; here the caller gets the descriptor that was checked (a configuration file is read
//! from it), or a path through directories only root or the caller can change (a mount point).

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::ffi::{CString, OsStr};
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Symlinks followed at most in one walk (the kernel's own limit).
const MAX_LINKS: u32 = 40;

/// What the walk requires of what it passes through.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Rule {
    /// Every directory on the way, every symlink followed and what the path names belong to
    /// root or to us and are not writable by group or others; a sticky directory on the way
    /// (`/tmp`) may be, since no one can replace another's entry there. For what decides which
    /// commands run (the configuration) and for mount points.
    Owned,
    /// Directories on the way may be anyone's (root restores into users' homes), but a symlink
    /// is followed only where it stands in a directory only root or we can change. With
    /// `create`, a missing directory is made (mode 0700).
    Target {
        /// Make missing directories.
        create: bool,
    },
}

/// What the path must name.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Want {
    /// A directory.
    Dir,
    /// A regular file, opened for reading (never blocking on a FIFO).
    File,
}

/// Why a walk stopped.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The system refused (missing, not a directory, permission, too many links).
    Io {
        /// Where the walk was.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Someone other than root or us could change what `path` names.
    Unsafe {
        /// What is unsafe, as resolved so far.
        path: PathBuf,
        /// Why.
        why: Why,
    },
}

/// What makes a step unsafe.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Why {
    /// It belongs to this user, neither root nor us.
    Owner(u32),
    /// Group or others may write it.
    Writable,
    /// The path names a symlink where the caller wants the thing itself.
    Symlink,
    /// A symlink in a directory other users can change.
    OpenSymlink,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Owner(uid) => write!(f, "belongs to user {uid}, not to you or root"),
            Why::Writable => f.write_str("is writable by group or others"),
            Why::Symlink => f.write_str("is a symlink: give the directory itself"),
            Why::OpenSymlink => f.write_str("is a symlink in a directory other users can write, not followed"),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Refusal::Unsafe { path, why } => write!(f, "{} {why}", path.display()),
        }
    }
}

impl From<Refusal> for io::Error {
    /// The system's error as it was (callers test `ENOENT`); an unsafe step as `PermissionDenied`
    /// with the message.
    fn from(r: Refusal) -> io::Error {
        match r {
            Refusal::Io { source, .. } => source,
            u => io::Error::new(io::ErrorKind::PermissionDenied, u.to_string()),
        }
    }
}

/// Open `path` under `rule`. `follow_last`: a symlink as the last component is followed (under
/// the same rule) instead of refused. Returns the descriptor and the path it was reached by,
/// symlinks resolved (absolute under [`Rule::Owned`]).
pub(crate) fn open(path: &Path, rule: Rule, want: Want, follow_last: bool) -> Result<(OwnedFd, PathBuf), Refusal> {
    let start = match rule {
        // Everything from `/` down is checked, so the walk starts there.
        Rule::Owned => std::path::absolute(path).map_err(|e| io_at(path, e))?,
        Rule::Target { .. } => path.to_path_buf(),
    };
    let bytes = start.as_os_str().as_bytes();
    let mut w = Walk { rule, at: PathBuf::new(), fd: root_or_cwd(bytes, rule)?, todo: Vec::new() };
    w.at = if bytes.starts_with(b"/") { PathBuf::from("/") } else { PathBuf::new() };
    w.push_front(bytes);
    let mut links = 0;
    // Directories made for the current component (it can vanish again before it is opened).
    let mut made = 0;
    while let Some(name) = w.todo.pop() {
        let last = w.todo.is_empty();
        if name == b".." {
            let next = rfs::openat(&w.fd, c"..", dir_flags(), Mode::empty()).map_err(|e| w.io(e))?;
            w.at.pop();
            w.step(next, last && want == Want::File, last)?;
            continue;
        }
        w.at.push(OsStr::from_bytes(&name));
        let c = CString::new(name.clone()).map_err(|_| w.io(Errno::INVAL))?;
        let file = last && want == Want::File;
        let flags =
            if file { OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC } else { dir_flags() };
        match rfs::openat(&w.fd, c.as_c_str(), flags, Mode::empty()) {
            Ok(next) => {
                w.step(next, file, last)?;
                made = 0;
            }
            Err(e @ (Errno::LOOP | Errno::NOTDIR)) => {
                if !is_symlink(&w.fd, &c) {
                    return Err(w.io(e));
                }
                if last && !follow_last {
                    return Err(w.unsafe_(Why::Symlink));
                }
                w.may_follow(&c)?;
                links += 1;
                if links > MAX_LINKS {
                    return Err(w.io(Errno::LOOP));
                }
                let target = rfs::readlinkat(&w.fd, c.as_c_str(), Vec::new()).map_err(|e| w.io(e))?;
                w.at.pop();
                let target = target.into_bytes();
                if target.starts_with(b"/") {
                    w.fd = root_or_cwd(b"/", rule)?;
                    w.at = PathBuf::from("/");
                }
                w.push_front(&target);
            }
            Err(Errno::NOENT) if matches!(rule, Rule::Target { create: true }) && !file && made < MAX_LINKS => {
                match rfs::mkdirat(&w.fd, c.as_c_str(), Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(w.io(e)),
                }
                // Opened like any other entry next: it may have been swapped meanwhile.
                made += 1;
                w.at.pop();
                w.todo.push(name);
            }
            Err(e) => return Err(w.io(e)),
        }
    }
    // A path of only `/`, `.` or `..` names a directory, whatever was wanted.
    if want == Want::File
        && FileType::from_raw_mode(rfs::fstat(&w.fd).map_err(|e| w.io(e))?.st_mode) != FileType::RegularFile
    {
        return Err(w.io(Errno::ISDIR));
    }
    Ok((w.fd, w.at))
}

/// Open a regular file under [`Rule::Owned`] (symlinks followed where they are safe) and read
/// it whole, up to `limit` bytes.
pub(crate) fn read_owned(path: &Path, limit: u64) -> Result<Vec<u8>, Refusal> {
    use std::io::Read;
    let (fd, at) = open(path, Rule::Owned, Want::File, true)?;
    let mut f = std::fs::File::from(fd);
    let mut buf = Vec::new();
    (&mut f).take(limit + 1).read_to_end(&mut buf).map_err(|e| io_at(&at, e))?;
    if buf.len() as u64 > limit {
        return Err(io_at(&at, io::Error::new(io::ErrorKind::InvalidData, format!("larger than {limit} bytes"))));
    }
    Ok(buf)
}

struct Walk {
    rule: Rule,
    /// Where the walk is (the path of `fd` as resolved).
    at: PathBuf,
    fd: OwnedFd,
    /// Components still to resolve, the next one last.
    todo: Vec<Vec<u8>>,
}

impl Walk {
    /// Queue `path`'s components ahead of what is left (a symlink's target).
    fn push_front(&mut self, path: &[u8]) {
        let parts = path.split(|&b| b == b'/').filter(|p| !p.is_empty() && *p != b".");
        let parts: Vec<Vec<u8>> = parts.map(<[u8]>::to_vec).collect();
        self.todo.extend(parts.into_iter().rev());
    }

    /// Move to `next` once it passes the rule.
    fn step(&mut self, next: OwnedFd, file: bool, last: bool) -> Result<(), Refusal> {
        if self.rule == Rule::Owned {
            let st = rfs::fstat(&next).map_err(|e| self.io(e))?;
            let kind = FileType::from_raw_mode(st.st_mode);
            if file && kind != FileType::RegularFile {
                return Err(self.io(Errno::INVAL));
            }
            // A sticky directory on the way protects our entry in it; the end itself must be closed.
            let sticky = kind == FileType::Directory && st.st_mode & 0o1000 != 0 && !last;
            check_owned(st.st_uid, st.st_mode, sticky).map_err(|why| self.unsafe_(why))?;
        } else if file {
            let st = rfs::fstat(&next).map_err(|e| self.io(e))?;
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                return Err(self.io(Errno::INVAL));
            }
        }
        self.fd = next;
        Ok(())
    }

    /// Whether the symlink `name` in the current directory may be followed.
    fn may_follow(&self, name: &CString) -> Result<(), Refusal> {
        match self.rule {
            Rule::Owned => {
                // The directory passed already; in a sticky one the link's owner could still swap it.
                let st = rfs::statat(&self.fd, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW).map_err(|e| self.io(e))?;
                check_owned(st.st_uid, 0, false).map_err(|why| self.unsafe_(why))
            }
            Rule::Target { .. } => {
                let st = rfs::fstat(&self.fd).map_err(|e| self.io(e))?;
                match check_owned(st.st_uid, st.st_mode, false) {
                    Ok(()) => Ok(()),
                    Err(_) => Err(self.unsafe_(Why::OpenSymlink)),
                }
            }
        }
    }

    fn io(&self, e: impl Into<io::Error>) -> Refusal {
        io_at(&self.at, e.into())
    }

    fn unsafe_(&self, why: Why) -> Refusal {
        Refusal::Unsafe { path: self.at.clone(), why }
    }
}

/// Owned by root or us, and not writable by group or others (unless `sticky` excuses it).
fn check_owned(uid: u32, mode: u32, sticky: bool) -> Result<(), Why> {
    let me = crate::sys::ids().0;
    if uid != 0 && uid != me {
        return Err(Why::Owner(uid));
    }
    if mode & 0o022 != 0 && !sticky {
        return Err(Why::Writable);
    }
    Ok(())
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// The directory a walk starts from: `/` (checked under [`Rule::Owned`]) or the working directory.
fn root_or_cwd(path: &[u8], rule: Rule) -> Result<OwnedFd, Refusal> {
    let (name, shown) = if path.starts_with(b"/") { (c"/", "/") } else { (c".", ".") };
    let fd = rfs::open(name, dir_flags(), Mode::empty()).map_err(|e| io_at(Path::new(shown), e.into()))?;
    if rule == Rule::Owned {
        let st = rfs::fstat(&fd).map_err(|e| io_at(Path::new(shown), e.into()))?;
        check_owned(st.st_uid, st.st_mode, st.st_mode & 0o1000 != 0)
            .map_err(|why| Refusal::Unsafe { path: shown.into(), why })?;
    }
    Ok(fd)
}

fn is_symlink(dir: &OwnedFd, name: &CString) -> bool {
    rfs::statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
}

fn io_at(path: &Path, source: io::Error) -> Refusal {
    Refusal::Io { path: path.to_path_buf(), source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn tmp() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    }

    #[test]
    fn a_symlink_is_followed_only_through_closed_directories() {
        let d = tmp();
        let real = d.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("cfg"), b"x").unwrap();
        symlink("real", d.path().join("link")).unwrap();
        let (_, at) = open(&d.path().join("link/cfg"), Rule::Owned, Want::File, true).unwrap();
        assert_eq!(at, d.path().canonicalize().unwrap().join("real/cfg"));
        assert_eq!(read_owned(&d.path().join("link/./cfg"), 10).unwrap(), b"x");
        // The same link as the last component, where the caller wants the thing itself.
        let r = open(&d.path().join("link"), Rule::Owned, Want::Dir, false).unwrap_err();
        assert!(matches!(r, Refusal::Unsafe { why: Why::Symlink, .. }), "{r:?}");
        let r = open(&d.path().join("link/"), Rule::Owned, Want::Dir, false).unwrap_err();
        assert!(matches!(r, Refusal::Unsafe { why: Why::Symlink, .. }), "{r:?}");
        // Once the directory holding it is open to others, nothing below it is trusted.
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let r = open(&d.path().join("link/cfg"), Rule::Owned, Want::File, true).unwrap_err();
        assert!(matches!(r, Refusal::Unsafe { why: Why::Writable, .. }), "{r:?}");
        let r = open(&d.path().join("link"), Rule::Target { create: false }, Want::Dir, true).unwrap_err();
        assert!(matches!(r, Refusal::Unsafe { why: Why::OpenSymlink, .. }), "{r:?}");
        // A plain directory in an open one is fine for a restore target.
        open(&d.path().join("real"), Rule::Target { create: false }, Want::Dir, true).unwrap();
    }

    #[test]
    fn a_symlink_loop_and_a_fifo_are_errors() {
        let d = tmp();
        symlink("b", d.path().join("a")).unwrap();
        symlink("a", d.path().join("b")).unwrap();
        let r = open(&d.path().join("a"), Rule::Owned, Want::File, true).unwrap_err();
        assert!(matches!(&r, Refusal::Io { source, .. } if source.raw_os_error() == Some(libc::ELOOP)), "{r:?}");
        let fifo = CString::new(d.path().join("fifo").as_os_str().as_bytes()).unwrap();
        rustix::fs::mknodat(rustix::fs::CWD, fifo.as_c_str(), FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
        assert!(read_owned(&d.path().join("fifo"), 10).is_err());
        let r = read_owned(&d.path().join("missing"), 10).unwrap_err();
        assert!(matches!(&r, Refusal::Io { source, .. } if source.kind() == io::ErrorKind::NotFound), "{r:?}");
    }

    #[test]
    fn a_target_is_made_as_it_is_walked() {
        let d = tmp();
        let deep: PathBuf = (0..60).map(|i| format!("d{i}")).collect();
        open(&d.path().join(&deep), Rule::Target { create: true }, Want::Dir, true).unwrap();
        assert!(d.path().join(&deep).is_dir());
        let (_, at) = open(&d.path().join("x/../y/z"), Rule::Target { create: true }, Want::Dir, true).unwrap();
        assert!(at.ends_with("y/z"));
        assert!(d.path().join("y/z").is_dir() && d.path().join("x").is_dir());
    }
}
