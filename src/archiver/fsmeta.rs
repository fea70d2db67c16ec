//! Reading file metadata into tree nodes.

use crate::format::tree::{Node, NodeKind, Xattr};
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Nanoseconds since the epoch from a seconds/nanoseconds pair.
pub(crate) fn nanos(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// A node for `name` with the metadata of `meta` and the given kind and extended attributes.
pub(crate) fn node(name: Vec<u8>, meta: &Metadata, kind: NodeKind, xattrs: Vec<Xattr>) -> Node {
    Node {
        name,
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        user: crate::sys::user_name(meta.uid()),
        group: crate::sys::group_name(meta.gid()),
        mtime: nanos(meta.mtime(), meta.mtime_nsec()),
        ctime: nanos(meta.ctime(), meta.ctime_nsec()),
        inode: meta.ino(),
        device: meta.dev(),
        links: meta.nlink(),
        xattrs,
    }
}

/// Extended attributes of `path` (not following symlinks), sorted by name. Filesystems without
/// xattr support yield none; other failures are returned for the caller to report.
pub(crate) fn xattrs(path: &Path) -> std::io::Result<Vec<Xattr>> {
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        if let Some(value) = xattr::get(path, &name)? {
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
pub(crate) fn unchanged(meta: &Metadata, parent: &Node) -> bool {
    matches!(parent.kind, NodeKind::File { size, .. } if size == meta.len())
        && parent.mtime == nanos(meta.mtime(), meta.mtime_nsec())
        && parent.ctime == nanos(meta.ctime(), meta.ctime_nsec())
        && parent.inode == meta.ino()
}
