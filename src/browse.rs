//! Browsing snapshots: listing, finding, comparing and dumping entries.

use crate::error::{Error, Result};
use crate::format::blob::BlobType;
use crate::format::tree::{ChunkRef, Node, NodeKind};
use crate::id::Id;
use crate::repo::index::Index;
use crate::repo::Repository;
use std::io::{Read, Write};

/// Call `f(path, node)` for every entry below `tree` in depth-first order (names sorted).
/// `prefix` is the path of `tree` itself, e.g. `/home/me`.
pub fn walk(
    repo: &Repository,
    index: &Index,
    tree: Id,
    prefix: &str,
    recursive: bool,
    f: &mut dyn FnMut(&str, &Node) -> Result<()>,
) -> Result<()> {
    for n in repo.read_tree(index, &tree)?.nodes {
        let path = format!("{}/{}", prefix.trim_end_matches('/'), String::from_utf8_lossy(&n.name));
        f(&path, &n)?;
        if let (true, NodeKind::Dir { subtree }) = (recursive, &n.kind) {
            walk(repo, index, *subtree, &path, true, f)?;
        }
    }
    Ok(())
}

/// How an entry differs between two snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only in the second.
    Added,
    /// Only in the first.
    Removed,
    /// Content or type differs.
    Modified,
    /// Same content, different metadata (mode, owner, times, xattrs).
    Metadata,
}

impl Change {
    /// One-character marker: `+`, `-`, `M`, `U`.
    pub fn marker(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => 'M',
            Change::Metadata => 'U',
        }
    }
}

/// Differences between trees `a` and `b`; identical subtrees are skipped without reading them.
pub fn diff(
    repo: &Repository,
    index: &Index,
    a: Option<Id>,
    b: Option<Id>,
    prefix: &str,
    out: &mut Vec<(Change, String)>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let load = |t: Option<Id>| -> Result<Vec<Node>> {
        Ok(match t {
            Some(t) => repo.read_tree(index, &t)?.nodes,
            None => vec![],
        })
    };
    let (na, nb) = (load(a)?, load(b)?);
    let (mut i, mut j) = (0, 0);
    while i < na.len() || j < nb.len() {
        let order = match (na.get(i), nb.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        let (x, y) = match order {
            std::cmp::Ordering::Less => {
                i += 1;
                (na.get(i - 1), None)
            }
            std::cmp::Ordering::Greater => {
                j += 1;
                (None, nb.get(j - 1))
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
                (na.get(i - 1), nb.get(j - 1))
            }
        };
        let name = String::from_utf8_lossy(&x.or(y).unwrap().name).into_owned();
        let path = format!("{}/{}", prefix.trim_end_matches('/'), name);
        let sub = |n: Option<&Node>| n.and_then(Node::subtree);
        match (x, y) {
            (Some(_), None) => out.push((Change::Removed, path.clone())),
            (None, Some(_)) => out.push((Change::Added, path.clone())),
            (Some(x), Some(y)) => {
                let same_kind = std::mem::discriminant(&x.kind) == std::mem::discriminant(&y.kind);
                let content_same = match (&x.kind, &y.kind) {
                    (NodeKind::Dir { .. }, NodeKind::Dir { .. }) => true,
                    _ => x.kind == y.kind,
                };
                let meta_same =
                    x.mode == y.mode && x.uid == y.uid && x.gid == y.gid && x.mtime == y.mtime && x.xattrs == y.xattrs;
                if !same_kind || !content_same {
                    out.push((Change::Modified, path.clone()));
                } else if !meta_same {
                    out.push((Change::Metadata, path.clone()));
                }
                if !same_kind {
                    // A directory replaced by a file (or the reverse): list what went or came.
                    if sub(Some(x)).is_some() || sub(Some(y)).is_some() {
                        diff(repo, index, sub(Some(x)), sub(Some(y)), &path, out)?;
                    }
                    continue;
                }
            }
            (None, None) => unreachable!(),
        }
        if sub(x).is_some() || sub(y).is_some() {
            diff(repo, index, sub(x), sub(y), &path, out)?;
        }
    }
    Ok(())
}

/// Turn an I/O error back into the library error it carries (e.g. an integrity error raised
/// inside a reader), or wrap it with `path`.
pub fn from_io(e: std::io::Error, path: &str) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        if let Some(Ok(inner)) = e.into_inner().map(|b| b.downcast::<Error>()) {
            return *inner;
        }
        unreachable!("checked above");
    }
    Error::Io { path: path.into(), source: e }
}

/// A reader over a file's content, fetching (and verifying) one blob at a time.
pub struct ContentReader<'a> {
    repo: &'a Repository,
    index: &'a Index,
    chunks: std::slice::Iter<'a, ChunkRef>,
    name: &'a [u8],
    buf: Vec<u8>,
    pos: usize,
}

impl<'a> ContentReader<'a> {
    /// Read the content of a file node.
    pub fn new(repo: &'a Repository, index: &'a Index, node: &'a Node) -> Result<ContentReader<'a>> {
        match &node.kind {
            NodeKind::File { content, .. } => {
                Ok(ContentReader { repo, index, chunks: content.iter(), name: &node.name, buf: vec![], pos: 0 })
            }
            _ => Err(Error::InvalidArgument(format!("{} is not a regular file", String::from_utf8_lossy(&node.name)))),
        }
    }
}

impl Read for ContentReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            let Some(c) = self.chunks.next() else { return Ok(0) };
            self.buf = self.repo.read_blob(self.index, BlobType::Data, &c.id).map_err(std::io::Error::other)?;
            if self.buf.len() != c.len as usize {
                let e = crate::Error::integrity(
                    format!("data blob {}", c.id),
                    format!("length differs from the tree's record (needed by {})", String::from_utf8_lossy(self.name)),
                );
                return Err(std::io::Error::other(e));
            }
            self.pos = 0;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Write a tar archive of `node` (a directory or a single entry) to `w`, named `name` inside.
pub fn dump_tar(repo: &Repository, index: &Index, node: &Node, name: &str, w: &mut dyn Write) -> Result<()> {
    let mut tar = tar::Builder::new(w);
    tar.mode(tar::HeaderMode::Complete);
    tar.follow_symlinks(false);
    append_tar(repo, index, node, name.as_bytes(), &mut tar)?;
    if let NodeKind::Dir { subtree } = node.kind {
        tar_tree(repo, index, subtree, name.as_bytes(), &mut tar)?;
    }
    tar.finish().map_err(|e| Error::Io { path: "<tar>".into(), source: e })
}

/// Append everything below `tree` under `prefix`. Names are raw bytes: a name or link target
/// that is not UTF-8 goes into the archive unchanged.
fn tar_tree(
    repo: &Repository,
    index: &Index,
    tree: Id,
    prefix: &[u8],
    tar: &mut tar::Builder<&mut dyn Write>,
) -> Result<()> {
    for n in repo.read_tree(index, &tree)?.nodes {
        let mut path = prefix.to_vec();
        path.push(b'/');
        path.extend_from_slice(&n.name);
        append_tar(repo, index, &n, &path, tar)?;
        if let NodeKind::Dir { subtree } = n.kind {
            tar_tree(repo, index, subtree, &path, tar)?;
        }
    }
    Ok(())
}

fn append_tar(
    repo: &Repository,
    index: &Index,
    n: &Node,
    path: &[u8],
    tar: &mut tar::Builder<&mut dyn Write>,
) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(if path.is_empty() { b"." } else { path }));
    let shown = path.display().to_string();
    let io = |e: std::io::Error| from_io(e, &shown);
    let mut h = tar::Header::new_gnu();
    h.set_mode(n.mode);
    h.set_uid(n.uid as u64);
    h.set_gid(n.gid as u64);
    h.set_mtime(n.mtime.div_euclid(1_000_000_000).max(0) as u64);
    let _ = h.set_username(&n.user);
    let _ = h.set_groupname(&n.group);
    match &n.kind {
        NodeKind::File { size, .. } => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(*size);
            tar.append_data(&mut h, path, ContentReader::new(repo, index, n)?).map_err(io)
        }
        NodeKind::Dir { .. } => {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            tar.append_data(&mut h, path.join(""), std::io::empty()).map_err(io)
        }
        NodeKind::Symlink { target } => {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            tar.append_link(&mut h, path, std::ffi::OsStr::from_bytes(target)).map_err(io)
        }
        NodeKind::Fifo => {
            h.set_entry_type(tar::EntryType::Fifo);
            h.set_size(0);
            tar.append_data(&mut h, path, std::io::empty()).map_err(io)
        }
        // Devices and sockets are not put into archives (tar needs major/minor split by platform).
        _ => Ok(()),
    }
}
