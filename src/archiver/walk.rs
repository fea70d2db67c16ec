//! Walking the filesystem into trees.

use super::fsmeta::{self, node, unchanged};
use super::{Ctx, CHANGED_PREFIX};
use crate::error::{Error, Result};
use crate::format::blob::BlobType;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::id::Id;
use globset::{GlobSet, GlobSetBuilder};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;

/// Exclusion rules: glob patterns and marker files.
///
/// A pattern containing `/` is matched against the whole absolute path; one without is matched
/// against the entry's name, at any depth. `*` does not cross `/`; `**` does. An excluded
/// directory is not descended into. A directory holding a file named in `if_present` is excluded.
#[derive(Default)]
pub struct Excludes {
    paths: GlobSet,
    names: GlobSet,
    if_present: Vec<String>,
}

impl Excludes {
    /// Compile patterns and marker names.
    pub fn new(patterns: &[String], if_present: Vec<String>) -> Result<Excludes> {
        let mut paths = GlobSetBuilder::new();
        let mut names = GlobSetBuilder::new();
        for p in patterns {
            let trimmed = p.trim_end_matches('/');
            let g = globset::GlobBuilder::new(trimmed)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::InvalidArgument(format!("exclude pattern {p:?}: {e}")))?;
            // `node_modules/` means the name `node_modules`; only an inner `/` makes a path pattern.
            if trimmed.contains('/') {
                paths.add(g);
            } else {
                names.add(g);
            }
        }
        let build = |b: GlobSetBuilder| b.build().map_err(|e| Error::InvalidArgument(e.to_string()));
        Ok(Excludes { paths: build(paths)?, names: build(names)?, if_present })
    }

    /// Whether an entry at `path` (absolute, in the snapshot) named `name` matches.
    pub fn matches(&self, path: &Path, name: &OsStr) -> bool {
        self.excluded(path, name)
    }

    fn excluded(&self, path: &Path, name: &OsStr) -> bool {
        self.names.is_match(name) || self.paths.is_match(path)
    }

    /// Convenience for tests: patterns only.
    pub fn patterns(patterns: &[&str]) -> Result<Excludes> {
        Excludes::new(&patterns.iter().map(|s| s.to_string()).collect::<Vec<_>>(), vec![])
    }
}

/// The directories above the backed-up paths, as a prefix tree: `/home/a` and `/home/b` become
/// `home` → {`a`, `b`}. Inner directories take their metadata from the real directory.
#[derive(Default)]
struct Virtual {
    children: BTreeMap<Vec<u8>, VEntry>,
}

enum VEntry {
    Leaf(PathBuf),
    Inner(Virtual, PathBuf),
}

fn build_virtual(paths: &[PathBuf]) -> Virtual {
    let mut sorted = paths.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut root = Virtual::default();
    let mut kept: Vec<PathBuf> = Vec::new();
    for p in sorted {
        // A path inside another backed-up path is already covered by it.
        if kept.iter().any(|k| p.starts_with(k)) {
            continue;
        }
        kept.push(p.clone());
        let comps: Vec<&OsStr> = p.iter().skip(1).collect();
        let mut dir = &mut root;
        let mut real = PathBuf::from("/");
        for (i, c) in comps.iter().enumerate() {
            real.push(c);
            let key = c.as_bytes().to_vec();
            if i + 1 == comps.len() {
                dir.children.insert(key, VEntry::Leaf(real.clone()));
                break;
            }
            let e = dir.children.entry(key).or_insert_with(|| VEntry::Inner(Virtual::default(), real.clone()));
            dir = match e {
                VEntry::Inner(v, _) => v,
                VEntry::Leaf(_) => unreachable!("covered paths were skipped"),
            };
        }
    }
    root
}

/// Back up all roots; returns the root tree ID.
pub(crate) fn backup_roots(ctx: &Ctx, paths: &[PathBuf], parent_root: Option<Id>) -> Result<Id> {
    for p in paths {
        fs::symlink_metadata(p).map_err(|e| Error::InvalidArgument(format!("{}: {e}", p.display())))?;
    }
    if paths.iter().any(|p| p.parent().is_none()) {
        return virtual_dir_root(ctx, paths, parent_root);
    }
    backup_virtual(ctx, &build_virtual(paths), Path::new("/"), parent_root)
}

/// Backing up `/` itself: the root tree is the real root directory's tree.
fn virtual_dir_root(ctx: &Ctx, _paths: &[PathBuf], parent_root: Option<Id>) -> Result<Id> {
    let root = Path::new("/");
    let meta = fs::symlink_metadata(root).map_err(|e| Error::Io { path: root.into(), source: e })?;
    let parent = parent_root.map(|subtree| Node::bare_dir(b"", subtree));
    match backup_dir(ctx, root, b"root".to_vec(), &meta, parent.as_ref(), meta.dev())? {
        Some(Node { kind: NodeKind::Dir { subtree }, .. }) => Ok(subtree),
        _ => Err(Error::InvalidArgument("cannot read /".into())),
    }
}

fn backup_virtual(ctx: &Ctx, v: &Virtual, dir: &Path, parent: Option<Id>) -> Result<Id> {
    let parent_tree = ctx.parent_tree(parent);
    let find = |name: &[u8]| parent_tree.as_ref().and_then(|t| t.nodes.iter().find(|n| n.name == name));
    // Collecting into one Result stops the walk at the first fatal (repository) error.
    let nodes: Vec<Option<Node>> = v
        .children
        .par_iter()
        .map(|(name, e)| match e {
            VEntry::Leaf(path) => {
                let meta = match fs::symlink_metadata(path) {
                    Ok(m) => m,
                    Err(err) => {
                        ctx.warn(path, err.to_string());
                        return Ok(None);
                    }
                };
                backup_entry(ctx, path, name.clone(), &meta, find(name), meta.dev())
            }
            VEntry::Inner(sub, path) => {
                let meta = fs::symlink_metadata(path).map_err(|e| Error::Io { path: path.clone(), source: e })?;
                let psub = find(name).and_then(Node::subtree);
                let subtree = backup_virtual(ctx, sub, path, psub)?;
                let x = read_xattrs(ctx, path);
                Ok(Some(node(name.clone(), &meta, NodeKind::Dir { subtree }, x)))
            }
        })
        .collect::<Result<_>>()?;
    ctx.store_tree(&Tree { nodes: nodes.into_iter().flatten().collect() }, dir)
}

fn read_xattrs(ctx: &Ctx, path: &Path) -> Vec<crate::format::tree::Xattr> {
    fsmeta::xattrs(path).unwrap_or_else(|e| {
        ctx.note(path, format!("extended attributes not saved: {e}"));
        vec![]
    })
}

/// Back up one entry of any type. `None` means excluded or unreadable (a warning is recorded).
fn backup_entry(
    ctx: &Ctx,
    path: &Path,
    name: Vec<u8>,
    meta: &Metadata,
    parent: Option<&Node>,
    root_dev: u64,
) -> Result<Option<Node>> {
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        return backup_dir(ctx, path, name, meta, parent, root_dev);
    } else if ft.is_file() {
        return backup_file(ctx, path, name, meta, parent);
    } else if ft.is_symlink() {
        match fs::read_link(path) {
            Ok(t) => NodeKind::Symlink { target: t.into_os_string().into_encoded_bytes() },
            Err(e) => {
                ctx.warn(path, e.to_string());
                return Ok(None);
            }
        }
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_char_device() {
        NodeKind::CharDevice { rdev: meta.rdev() }
    } else if ft.is_block_device() {
        NodeKind::BlockDevice { rdev: meta.rdev() }
    } else {
        NodeKind::Socket
    };
    ctx.progress.files.fetch_add(1, Relaxed);
    Ok(Some(node(name, meta, kind, read_xattrs(ctx, path))))
}

fn backup_dir(
    ctx: &Ctx,
    path: &Path,
    name: Vec<u8>,
    meta: &Metadata,
    parent: Option<&Node>,
    root_dev: u64,
) -> Result<Option<Node>> {
    if ctx.opts.one_file_system && meta.dev() != root_dev {
        return Ok(None);
    }
    let mut entries: Vec<(Vec<u8>, PathBuf)> = match fs::read_dir(path) {
        Ok(rd) => rd
            .filter_map(|e| match e {
                Ok(e) => Some((e.file_name().as_bytes().to_vec(), e.path())),
                Err(err) => {
                    ctx.warn(path, format!("reading directory: {err}"));
                    None
                }
            })
            .collect(),
        Err(e) => {
            ctx.warn(path, format!("cannot read directory: {e}"));
            return Ok(None);
        }
    };
    let ex = &ctx.opts.excludes;
    if ex.if_present.iter().any(|m| entries.iter().any(|(n, _)| n == m.as_bytes())) {
        return Ok(None);
    }
    entries.retain(|(n, p)| !ex.excluded(p, OsStr::from_bytes(n)));
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let psub = parent.and_then(Node::subtree);
    let parent_tree = ctx.parent_tree(psub);
    let pnodes: &[Node] = parent_tree.as_ref().map(|t| t.nodes.as_slice()).unwrap_or(&[]);
    let nodes: Vec<Option<Node>> = entries
        .par_iter()
        .map(|(n, p)| {
            let m = match fs::symlink_metadata(p) {
                Ok(m) => m,
                Err(e) => {
                    ctx.warn(p, e.to_string());
                    return Ok(None);
                }
            };
            let pn = pnodes.binary_search_by(|x| x.name.as_slice().cmp(n)).ok().map(|i| &pnodes[i]);
            backup_entry(ctx, p, n.clone(), &m, pn, root_dev)
        })
        .collect::<Result<_>>()?;
    let subtree = ctx.store_tree(&Tree { nodes: nodes.into_iter().flatten().collect() }, path)?;
    match psub {
        None => ctx.count(|s| s.dirs_new += 1),
        Some(p) if p == subtree => ctx.count(|s| s.dirs_unchanged += 1),
        Some(_) => ctx.count(|s| s.dirs_changed += 1),
    }
    ctx.progress.dirs.fetch_add(1, Relaxed);
    Ok(Some(node(name, meta, NodeKind::Dir { subtree }, read_xattrs(ctx, path))))
}

fn backup_file(ctx: &Ctx, path: &Path, name: Vec<u8>, meta: &Metadata, parent: Option<&Node>) -> Result<Option<Node>> {
    if let Some(p) = parent.filter(|p| !ctx.opts.force && unchanged(meta, p)) {
        if let NodeKind::File { content, size } = &p.kind {
            if content.iter().all(|c| ctx.index.contains(BlobType::Data, &c.id)) {
                // Size, times and inode match: content, mode, owner and xattrs are as recorded.
                let mut n = p.clone();
                n.name = name;
                n.device = meta.dev();
                n.links = meta.nlink();
                ctx.count(|s| s.files_unchanged += 1);
                ctx.progress.files.fetch_add(1, Relaxed);
                ctx.progress.bytes.fetch_add(*size, Relaxed);
                return Ok(Some(n));
            }
        }
    }
    let stored = match read_and_store(ctx, path, meta) {
        Ok(r) => r?,
        Err(e) => {
            ctx.warn(path, format!("not saved: {e}"));
            return Ok(None);
        }
    };
    let (size, content, after, xattrs) = stored;
    let moved = after.len() != meta.len()
        || after.mtime_nsec() != meta.mtime_nsec()
        || after.mtime() != meta.mtime()
        || after.ctime() != meta.ctime()
        || after.ctime_nsec() != meta.ctime_nsec();
    if moved || size != meta.len() {
        ctx.note(path, format!("{CHANGED_PREFIX}: the saved copy may mix old and new content"));
        ctx.count(|s| s.changed_during_read += 1);
    }
    // Under --force every file is read: one whose content matches the parent's is unchanged.
    let same = matches!(parent.map(|p| &p.kind), Some(NodeKind::File { content: c, .. }) if *c == content);
    ctx.count(|s| match parent {
        None => s.files_new += 1,
        Some(_) if ctx.opts.force && same => s.files_unchanged += 1,
        Some(_) => s.files_changed += 1,
    });
    ctx.progress.files.fetch_add(1, Relaxed);
    let x = xattrs.unwrap_or_else(|e| {
        ctx.note(path, format!("extended attributes not saved: {e}"));
        vec![]
    });
    // The recorded size is what was read; the other metadata is from before the read.
    Ok(Some(node(name, meta, NodeKind::File { size, content }, x)))
}

/// Size read, chunks, metadata after the read, extended attributes (read through the descriptor).
type Stored = (u64, Vec<crate::format::tree::ChunkRef>, Metadata, std::io::Result<Vec<crate::format::tree::Xattr>>);

/// Read a file and store its chunks. I/O errors are the outer result (a warning); repository
/// errors the inner one (fatal).
fn read_and_store(ctx: &Ctx, path: &Path, meta: &Metadata) -> std::io::Result<Result<Stored>> {
    // Never follow a symlink swapped in since the lstat, never block on a FIFO, and insist on
    // the very file that was stat'ed.
    let mut f = fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)?;
    let opened = f.metadata()?;
    if !opened.is_file() || opened.ino() != meta.ino() || opened.dev() != meta.dev() {
        return Err(std::io::Error::other("replaced by another file while being backed up"));
    }
    // Files up to one maximal chunk are read whole (no copy); longer ones, and files that grew
    // past that while being read, are streamed.
    let max = ctx.chunker.max_size();
    let stored = if opened.len() <= max as u64 {
        let mut buf = Vec::with_capacity(opened.len() as usize + 1);
        (&mut f).take(max as u64 + 1).read_to_end(&mut buf)?;
        if buf.len() > max {
            ctx.store_stream(std::io::Cursor::new(buf).chain(&mut f))?
        } else {
            ctx.progress.bytes.fetch_add(buf.len() as u64, Relaxed);
            ctx.count(|s| s.bytes_read += buf.len() as u64);
            let mut chunks = Vec::new();
            let mut pos = 0;
            for n in ctx.chunker.lengths(&buf) {
                chunks.push(&buf[pos..pos + n]);
                pos += n;
            }
            ctx.store_chunks(&chunks).map(|refs| (buf.len() as u64, refs))
        }
    } else {
        ctx.store_stream(&mut f)?
    };
    let stored = match stored {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let after = f.metadata()?;
    let xattrs = fsmeta::xattrs_fd(&f);
    Ok(Ok((stored.0, stored.1, after, xattrs)))
}
