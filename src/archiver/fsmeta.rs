//! Reading file metadata into tree nodes.

use crate::format::tree::{Node, NodeKind, Xattr};
use rustix::fs::FileType;
use std::path::Path;

/// Nanoseconds since the epoch from a seconds/nanoseconds pair.
pub(crate) fn nanos(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// The metadata a node records, from `fstatat(…, AT_SYMLINK_NOFOLLOW)` or `fstat`: the walk
/// stats entries relative to their directory's descriptor, which `std::fs::Metadata` cannot.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Meta {
    /// `st_mode`: type and permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub ctime: i64,
    pub ctime_nsec: i64,
    pub ino: u64,
    pub dev: u64,
    pub nlink: u64,
    pub rdev: u64,
}

impl Meta {
    /// From a `struct stat`, whose field widths differ between architectures (hence the casts).
    #[allow(clippy::unnecessary_cast)]
    pub(crate) fn from_stat(st: &rustix::fs::Stat) -> Meta {
        Meta {
            mode: st.st_mode as u32,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            size: st.st_size as u64,
            mtime: st.st_mtime as i64,
            mtime_nsec: st.st_mtime_nsec as i64,
            ctime: st.st_ctime as i64,
            ctime_nsec: st.st_ctime_nsec as i64,
            ino: st.st_ino as u64,
            dev: st.st_dev as u64,
            nlink: st.st_nlink as u64,
            rdev: st.st_rdev as u64,
        }
    }

    /// The file type.
    pub(crate) fn file_type(&self) -> FileType {
        FileType::from_raw_mode(self.mode as _)
    }

    /// Whether `other` is the same file (device and inode).
    pub(crate) fn same_file(&self, other: &Meta) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// A node for `name` with the metadata of `meta` and the given kind and extended attributes.
pub(crate) fn node(name: Vec<u8>, meta: &Meta, kind: NodeKind, xattrs: Vec<Xattr>) -> Node {
    Node {
        name,
        kind,
        mode: meta.mode & 0o7777,
        uid: meta.uid,
        gid: meta.gid,
        user: crate::sys::user_name(meta.uid),
        group: crate::sys::group_name(meta.gid),
        mtime: nanos(meta.mtime, meta.mtime_nsec),
        ctime: nanos(meta.ctime, meta.ctime_nsec),
        inode: meta.ino,
        device: meta.dev,
        links: meta.nlink,
        xattrs,
    }
}

/// Extended attributes of `path` (not following a symlink in its last component), sorted by
/// name. Filesystems without xattr support yield none; other failures are returned for the
/// caller to report.
pub(crate) fn xattrs(path: &Path) -> std::io::Result<Vec<Xattr>> {
    collect_xattrs(xattr::list(path), |name| xattr::get(path, name))
}

/// [`xattrs`] of what `path` resolves to, following a symlink in its last component too (the
/// directories above a backup path, format-spec/11-snapshot.md §11.3).
pub(crate) fn xattrs_deref(path: &Path) -> std::io::Result<Vec<Xattr>> {
    collect_xattrs(xattr::list_deref(path), |name| xattr::get_deref(path, name))
}

fn collect_xattrs(
    names: std::io::Result<xattr::XAttrs>,
    get: impl Fn(&std::ffi::OsStr) -> std::io::Result<Option<Vec<u8>>>,
) -> std::io::Result<Vec<Xattr>> {
    let names = match names {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        if let Some(value) = get(&name)? {
            out.push(Xattr { name: name.as_encoded_bytes().to_vec(), value });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// [`xattrs`] through an open descriptor (no path lookup).
pub(crate) fn xattrs_fd(file: &std::fs::File) -> std::io::Result<Vec<Xattr>> {
    use xattr::FileExt;
    let names = match file.list_xattr() {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        if let Some(value) = file.get_xattr(&name)? {
            out.push(Xattr { name: name.as_encoded_bytes().to_vec(), value });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Whether a file is unchanged since `parent` was recorded: same size, mtime, ctime and inode.
/// A parent node with inode 0 never is (format-spec/11-snapshot.md §11.3: a writer that cannot
/// record a file's identity exactly writes inode 0, which opts the node out of carry-forward).
pub(crate) fn unchanged(meta: &Meta, parent: &Node) -> bool {
    parent.inode != 0
        && matches!(parent.kind, NodeKind::File { size, .. } if size == meta.size)
        && parent.mtime == nanos(meta.mtime, meta.mtime_nsec)
        && parent.ctime == nanos(meta.ctime, meta.ctime_nsec)
        && parent.inode == meta.ino
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(ino: u64) -> Meta {
        Meta {
            mode: 0o100644,
            uid: 1000,
            gid: 1000,
            size: 5,
            mtime: 1_795_305_600,
            mtime_nsec: 7,
            ctime: 1_795_305_601,
            ctime_nsec: 9,
            ino,
            dev: 2049,
            nlink: 1,
            rdev: 0,
        }
    }

    fn parent_of(m: &Meta) -> Node {
        node(b"f".to_vec(), m, NodeKind::File { size: m.size, content: vec![] }, vec![])
    }

    #[test]
    fn a_matching_parent_node_is_unchanged() {
        let m = meta(12345);
        assert!(unchanged(&m, &parent_of(&m)));
        let mut other = parent_of(&m);
        other.ctime += 1;
        assert!(!unchanged(&m, &other), "ctime differs");
        other = parent_of(&m);
        other.inode += 1;
        assert!(!unchanged(&m, &other), "inode differs");
    }

    /// Inode 0 opts a node out of carry-forward, even against a file system that reports inode 0.
    #[test]
    fn a_parent_node_with_inode_0_is_never_unchanged() {
        let m = meta(0);
        let p = parent_of(&m);
        assert_eq!(p.inode, 0);
        assert!(!unchanged(&m, &p));
    }
}
