//! `arca mount`: the repository's snapshots as a read-only FUSE filesystem (through `fuser`,
//! which mounts with the `mount` system call as root and through `fusermount3` otherwise).
//!
//! Layout (restic's): `snapshots/<time>/`, `ids/<short id>/`, `hosts/<host>/<time>/`,
//! `tags/<tag>/<time>/`, each snapshot's tree below its directory; `latest` links in
//! `snapshots/`, in each host and tag directory and at the top (`latest → snapshots/<time>`).
//! Times are the caller's calendar with its UTC offset, `2026-12-04T19:06:00+01:00`; snapshots
//! taken in the same second get `-1`, `-2` … in order. Host and tag names become file names
//! with `/` and NUL replaced by `_` (and `_` before an empty name, `.` or `..`).
//!
//! **Lazy inodes.** Nothing below a snapshot is read at mount time: a directory's tree is read
//! the first time it is looked into, and only then are its entries given inode numbers (a
//! table from inode to the entry's tree record). A snapshot of millions of files mounts at once,
//! and memory grows with what is browsed; entries are kept until unmount (at most
//! [`MAX_INODES`], then ENOMEM), since the kernel may ask for any inode it was given. Each
//! appearance of a snapshot in the layout is its own *view* with its own inodes, so that every
//! directory has one parent.
//!
//! **Hard links.** Within a view, non-directories whose record has `links > 1` and the same
//! `(device, inode)` share one inode number, and `nlink` is the recorded count: `cp -a` and
//! `rsync -H` rebuild the links. (Two such records with different content, which only a forged
//! tree has, show the first one met.) Directories report `nlink` 1 ("unknown").
//!
//! **Reading.** A read finds the chunk holding its offset by binary search over the chunks'
//! start offsets, reads blobs through the index, checks each blob's plaintext length against
//! the tree's record, and copies out. Decrypted blobs are kept in one LRU cache bounded by
//! bytes ([`DEFAULT_CACHE_BYTES`], 64 MiB), and a read starts loading the next 8 MiB of chunks of
//! its file on the thread pool, so that a sequential reader rarely waits for a pack. Damage
//! (a missing blob, a failed authentication, a wrong length) fails that read with EIO and is
//! reported once per failed read through the caller's reporter; the mount goes on.
//!
//! **Hostile trees.** Names come from validated trees (`Tree::decode`: no `/`, NUL, `.` or
//! `..`) and are passed as bytes. A directory whose tree is one of its own ancestors, or whose
//! entries would lie deeper than [`crate::repo::walk::MAX_DEPTH`], fails with EIO (reported
//! when it is first listed), so a `find` over a looping or endless chain ends. A tree bomb (a
//! few trees naming each other many times) is browsed path by path like any tree; only what is
//! looked at costs memory. Nothing recorded in a snapshot is
//! followed on the host: symlinks are returned as their bytes, and the mount is `nosuid` and
//! `nodev`, so recorded set-user-ID bits and device nodes have no effect.
//!
//! **Not supported.** Writing (every change is EROFS; the mount is read-only as well), seeing
//! snapshots written after the mount (mount again), `atime` (shown as the mtime), sockets
//! beyond their type, file locks.

mod cache;
mod fs;

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::id::Id;
use crate::lifecycle::policy::{days_from_civil, Calendar};
use crate::repo::index::Index;
use crate::repo::Repository;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use fs::MAX_INODES;

/// Bytes of decrypted chunks a mount keeps by default.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// Receives a message about damage met while serving (the library does not print).
pub type Report = Arc<dyn Fn(&str) + Send + Sync>;

/// How to mount.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// Let other users than the mounting one in (`allow_other`; for a non-root user this needs
    /// `user_allow_other` in /etc/fuse.conf).
    pub allow_other: bool,
    /// Let the kernel check the recorded permission bits (`default_permissions`). Without it
    /// everyone let in reads everything: the mounting user owns the backup anyway.
    pub default_permissions: bool,
    /// Bound of the chunk cache, bytes.
    pub cache_bytes: usize,
    /// Threads serving requests.
    pub threads: usize,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions { allow_other: false, default_permissions: false, cache_bytes: DEFAULT_CACHE_BYTES, threads: 4 }
    }
}

/// A mounted filesystem, served by background threads until it is unmounted.
pub struct Mounted {
    session: Option<fuser::BackgroundSession>,
    mountpoint: PathBuf,
}

/// Mount `snapshots` (any order) of `repo` at `mountpoint`. The caller holds a lock on the
/// repository for as long as the mount lives. Snapshot directories are named by `calendar`.
pub fn mount(
    repo: Arc<Repository>,
    index: Arc<Index>,
    snapshots: &[(Id, Snapshot)],
    mountpoint: &Path,
    opts: &MountOptions,
    calendar: &dyn Calendar,
    report: Report,
) -> Result<Mounted> {
    let placed = place(snapshots, calendar);
    let fs = fs::Fs::new(repo, index, &placed, opts.cache_bytes, report);
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName("arca".into()),
        fuser::MountOption::Subtype("arca".into()),
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoAtime,
    ];
    if opts.default_permissions {
        config.mount_options.push(fuser::MountOption::DefaultPermissions);
    }
    if opts.allow_other {
        config.acl = fuser::SessionACL::All;
    }
    config.n_threads = Some(opts.threads.clamp(1, 64));
    let session = fuser::spawn_mount(fs, mountpoint, &config)
        .map_err(|source| Error::Io { path: mountpoint.to_path_buf(), source })?;
    Ok(Mounted { session: Some(session), mountpoint: mountpoint.to_path_buf() })
}

impl Mounted {
    /// Whether the filesystem is gone: unmounted from outside (`fusermount3 -u`, `umount`).
    pub fn finished(&self) -> bool {
        self.session.as_ref().is_none_or(|s| s.guard.is_finished())
    }

    /// Unmount and wait (up to `patience`) for the serving threads to end. A busy mount point
    /// (a shell inside it, an open file) is detached lazily: it disappears from the namespace
    /// now and the kernel ends the filesystem when the last user lets go, or when this process
    /// exits. Returns whether the mount was busy.
    pub fn unmount(mut self, patience: Duration) -> Result<bool> {
        let Some(session) = self.session.take() else { return Ok(false) };
        let mut busy = false;
        if !session.guard.is_finished() {
            busy = detach(&self.mountpoint)?;
        }
        let deadline = Instant::now() + patience;
        while !session.guard.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if session.guard.is_finished() {
            session.join().map_err(|source| Error::Io { path: self.mountpoint.clone(), source })?;
        } else {
            // Still held open after a lazy detach: the kernel ends it when this process exits.
            std::mem::forget(session);
        }
        Ok(busy)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.session.is_some() {
            let _ = detach(&self.mountpoint);
        }
    }
}

/// Unmount `path`, lazily if it is busy. Returns whether it was busy.
fn detach(path: &Path) -> Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::InvalidArgument("mount point contains NUL".into()))?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return Ok(false);
    }
    match std::io::Error::last_os_error().raw_os_error() {
        // Already gone (unmounted from outside meanwhile).
        Some(libc::EINVAL) | Some(libc::ENOENT) => Ok(false),
        Some(libc::EBUSY) => {
            // SAFETY: as above.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
                Ok(true)
            } else {
                Err(io(std::io::Error::last_os_error()))
            }
        }
        // Not root: the set-user-ID helper unmounts what this user mounted.
        Some(libc::EPERM) => {
            let status = std::process::Command::new("fusermount3")
                .args([std::ffi::OsStr::new("-u"), std::ffi::OsStr::new("-z"), std::ffi::OsStr::new("--")])
                .arg(path)
                .stdout(std::process::Stdio::null())
                .status()
                .map_err(io)?;
            if status.success() {
                Ok(false)
            } else {
                Err(io(std::io::Error::other(format!("fusermount3 -u -z failed ({status})"))))
            }
        }
        _ => Err(io(std::io::Error::last_os_error())),
    }
}

/// The names each snapshot appears under, oldest first.
fn place(snapshots: &[(Id, Snapshot)], calendar: &dyn Calendar) -> Vec<fs::Placed> {
    let mut snaps: Vec<&(Id, Snapshot)> = snapshots.iter().collect();
    snaps.sort_by_key(|(id, s)| (s.time, *id));
    let mut times = Unique::default();
    let mut shorts: HashMap<String, usize> = HashMap::new();
    for (id, _) in &snaps {
        *shorts.entry(id.short()).or_default() += 1;
    }
    let (mut hosts, mut tags) = (Names::default(), Names::default());
    snaps
        .iter()
        .map(|(id, s)| {
            let short = id.short();
            let id_name = if shorts[&short] > 1 { id.to_hex() } else { short };
            fs::Placed {
                time: s.time,
                tree: s.tree,
                time_name: times.name(time_name(s.time, calendar).into_bytes()),
                id_name: id_name.into_bytes(),
                host: hosts.name(&s.hostname),
                tags: s.tags.iter().map(|t| tags.name(t)).collect(),
            }
        })
        .collect()
}

/// `2026-12-04T19:06:00+01:00`: the calendar's reading of Unix nanoseconds `ns`, with its
/// offset from UTC (RFC 3339, as restic names snapshot directories).
pub fn time_name(ns: i64, calendar: &dyn Calendar) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let c = calendar.civil(secs);
    let wall = days_from_civil(c.year, c.month, c.day) * 86_400 + c.hour * 3600 + c.minute * 60 + c.second;
    let off = (wall - secs) / 60;
    let sign = if off < 0 { '-' } else { '+' };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        off.abs() / 60,
        off.abs() % 60
    )
}

/// Names made unique by a `-1`, `-2` … suffix on repeats, in the order asked.
#[derive(Default)]
struct Unique(HashMap<Vec<u8>, usize>);

impl Unique {
    fn name(&mut self, base: Vec<u8>) -> Vec<u8> {
        let n = self.0.entry(base.clone()).or_default();
        *n += 1;
        if *n == 1 {
            return base;
        }
        let mut name = base;
        name.extend_from_slice(format!("-{}", *n - 1).as_bytes());
        name
    }
}

/// File names for host and tag strings: the same string gets the same name, two strings that
/// clean up to the same name get different ones.
#[derive(Default)]
struct Names {
    seen: HashMap<String, Vec<u8>>,
    unique: Unique,
}

impl Names {
    fn name(&mut self, s: &str) -> Vec<u8> {
        if let Some(n) = self.seen.get(s) {
            return n.clone();
        }
        let n = self.unique.name(file_name(s));
        self.seen.insert(s.to_string(), n.clone());
        n
    }
}

/// `s` as one valid file name: `/` and NUL become `_`, an empty name, `.` and `..` get a
/// leading `_`, and it is cut to 240 bytes (room for a suffix) at a character boundary.
fn file_name(s: &str) -> Vec<u8> {
    let mut n: String = s.chars().map(|c| if c == '/' || c == '\0' { '_' } else { c }).collect();
    if n.is_empty() || n == "." || n == ".." {
        n.insert(0, '_');
    }
    let mut cut = n.len().min(240);
    while !n.is_char_boundary(cut) {
        cut -= 1;
    }
    n.truncate(cut);
    n.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::policy::Utc;

    #[test]
    fn names() {
        assert_eq!(time_name(1_780_000_000_123_456_789, &Utc), "2026-05-28T20:26:40+00:00");
        assert_eq!(time_name(-1, &Utc), "1969-12-31T23:59:59+00:00");
        assert_eq!(file_name("a/b\0c"), b"a_b_c");
        assert_eq!(file_name(""), b"_");
        assert_eq!(file_name(".."), b"_..");
        assert!(file_name(&"é".repeat(200)).len() <= 240);
        let mut n = Names::default();
        assert_eq!(n.name("a/b"), b"a_b");
        assert_eq!(n.name("a_b"), b"a_b-1");
        assert_eq!(n.name("a/b"), b"a_b");
    }

    /// A fixed zone one hour and a half east of UTC.
    struct Plus90;
    impl Calendar for Plus90 {
        fn civil(&self, secs: i64) -> crate::lifecycle::policy::Civil {
            Utc.civil(secs + 5400)
        }
        fn instant(&self, _: &crate::lifecycle::policy::Civil) -> Option<i64> {
            None
        }
    }

    #[test]
    fn offsets_and_repeated_seconds() {
        assert_eq!(time_name(0, &Plus90), "1970-01-01T01:30:00+01:30");
        let snap = |time: i64, tree: u8| Snapshot {
            time,
            tree: Id([tree; 32]),
            paths: vec![],
            hostname: "h".into(),
            username: String::new(),
            uid: 0,
            gid: 0,
            tags: vec![],
            parent: None,
            program: String::new(),
            summary: Default::default(),
            original: None,
        };
        let s = [(Id([2; 32]), snap(5, 1)), (Id([1; 32]), snap(7, 2)), (Id([3; 32]), snap(2_000_000_000, 3))];
        let p = place(&s, &Utc);
        let names: Vec<_> = p.iter().map(|p| String::from_utf8(p.time_name.clone()).unwrap()).collect();
        assert_eq!(names, ["1970-01-01T00:00:00+00:00", "1970-01-01T00:00:00+00:00-1", "1970-01-01T00:00:02+00:00"]);
        assert_eq!(p[0].tree, Id([1; 32]));
    }
}
