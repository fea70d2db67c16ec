//! Browsing snapshots: listing, finding, comparing and dumping entries.

use crate::error::{Error, Result};
use crate::format::blob::BlobType;
use crate::format::tree::{ChunkRef, Node, NodeKind};
use crate::id::Id;
use crate::repo::index::Index;
use crate::repo::walk;
use crate::repo::Repository;
use std::io::{Read, Write};

mod zip;

/// Call `f(path, node)` for every entry below `tree` in depth-first order (names sorted), or
/// only for its own entries when `recursive` is false. `prefix` is the path of `tree` itself,
/// e.g. `/home/me`; paths are raw bytes. A recursive walk measures the tree first (format-spec
/// 19.1): one that nests too deep or expands to too many entries is refused before `f` sees
/// anything; a listing of one directory reads that one tree only.
pub fn walk(
    repo: &Repository,
    index: &Index,
    tree: Id,
    prefix: &[u8],
    recursive: bool,
    f: &mut dyn FnMut(&[u8], &Node) -> Result<()>,
) -> Result<()> {
    let trees = walk::Trees::new(repo, index);
    if recursive {
        trees.measure(tree)?;
    }
    trees.walk(tree, prefix, &mut |p, n| f(p, n).map(|()| recursive))
}

/// `ls -l`'s mode column: type and permission bits as `ls` shows them (`-rw-r--r--`,
/// `drwxr-xr-x`, `lrwxrwxrwx`; set-ID and sticky bits as `s`/`S` and `t`/`T`).
pub fn mode_string(n: &Node) -> String {
    let m = n.mode;
    let mut s = String::with_capacity(10);
    s.push(kind_char(n));
    for (shift, special, set) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (m >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (bits & 1 != 0, m & special != 0) {
            (true, true) => set,
            (false, true) => set.to_ascii_uppercase(),
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// The type letter `ls -l` shows first: `-`, `d`, `l`, `p`, `c`, `b`, `s`.
pub fn kind_char(n: &Node) -> char {
    match n.kind {
        NodeKind::File { .. } => '-',
        NodeKind::Dir { .. } => 'd',
        NodeKind::Symlink { .. } => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::CharDevice { .. } => 'c',
        NodeKind::BlockDevice { .. } => 'b',
        NodeKind::Socket => 's',
    }
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

/// Differences between trees `a` and `b`, reported to `f(change, path)` in depth-first order;
/// identical subtrees are skipped without reading them. Both roots are measured first
/// (format-spec 19.1). Iterative: stack use does not grow with depth.
pub fn diff(
    repo: &Repository,
    index: &Index,
    a: Option<Id>,
    b: Option<Id>,
    prefix: &[u8],
    f: &mut dyn FnMut(Change, &[u8]) -> Result<()>,
) -> Result<()> {
    diff_counted(repo, index, a, b, prefix, f, &mut DiffCounter::default())
}

/// [`diff`], also counting into `counter` what came and went (restic's diff summary).
pub fn diff_counted(
    repo: &Repository,
    index: &Index,
    a: Option<Id>,
    b: Option<Id>,
    prefix: &[u8],
    f: &mut dyn FnMut(Change, &[u8]) -> Result<()>,
    counter: &mut DiffCounter,
) -> Result<()> {
    let trees = walk::Trees::new(repo, index);
    for root in [a, b].into_iter().flatten() {
        trees.measure(root)?;
    }
    if a == b {
        return Ok(());
    }
    counter.trees(a, b);
    let pairs = pair_up(&trees, a, b)?;
    diff_pairs(&trees, pairs, prefix, a.or(b), &mut |c, p, x, y| {
        counter.visit(c, x, y);
        c.map_or(Ok(()), |c| f(c, p))
    })
}

/// Differences between two entries — `SNAP:PATH` of each side, which may be files or
/// directories and need not have the same name —, reported as [`diff`] does, the entries
/// themselves under `prefix` (their own names are not added).
pub fn diff_nodes(
    repo: &Repository,
    index: &Index,
    a: &Node,
    b: &Node,
    prefix: &[u8],
    f: &mut dyn FnMut(Change, &[u8]) -> Result<()>,
    counter: &mut DiffCounter,
) -> Result<()> {
    if let (Some(sa), Some(sb)) = (a.subtree(), b.subtree()) {
        if let Some(change) = classify(Some(a), Some(&Node { name: a.name.clone(), ..b.clone() })) {
            f(change, prefix)?;
        }
        return diff_counted(repo, index, Some(sa), Some(sb), prefix, f, counter);
    }
    let trees = walk::Trees::new(repo, index);
    for root in [a.subtree(), b.subtree()].into_iter().flatten() {
        trees.measure(root)?;
    }
    // One side is not a directory: the entry itself changed, and what was below a directory
    // went or came. Both are named by the last component of `prefix`.
    let mut path = prefix.to_vec();
    while path.last() == Some(&b'/') {
        path.pop();
    }
    let cut = path.iter().rposition(|&c| c == b'/').unwrap_or(0);
    let name = path[(cut + 1).min(path.len())..].to_vec();
    let pair = (Some(Node { name: name.clone(), ..a.clone() }), Some(Node { name, ..b.clone() }));
    diff_pairs(&trees, vec![pair], &path[..cut], a.subtree().or(b.subtree()), &mut |c, p, x, y| {
        counter.visit(c, x, y);
        c.map_or(Ok(()), |c| f(c, p))
    })
}

/// Entry and blob counts of one side of a diff: what came (or went).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DiffSide {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symlinks, devices, FIFOs, sockets.
    pub others: u64,
    /// Distinct data blobs.
    pub data_blobs: u64,
    /// Distinct tree blobs.
    pub tree_blobs: u64,
    /// Plaintext bytes of those data blobs.
    pub bytes: u64,
}

/// restic's diff statistics: files whose content changed, and what came and went.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DiffStats {
    /// Files in both whose content differs (`M`).
    pub changed_files: u64,
    /// In the second only.
    pub added: DiffSide,
    /// In the first only.
    pub removed: DiffSide,
}

/// Gathers [`DiffStats`] as a diff walks: entries by change, and the blobs each side refers to
/// in the parts that differ (identical subtrees are skipped by both sides alike).
#[derive(Default)]
pub struct DiffCounter {
    stats: DiffStats,
    data: [std::collections::HashMap<Id, u32>; 2],
    trees: [std::collections::HashSet<Id>; 2],
}

impl DiffCounter {
    fn trees(&mut self, a: Option<Id>, b: Option<Id>) {
        for (side, t) in [(0, a), (1, b)] {
            self.trees[side].extend(t);
        }
    }

    fn visit(&mut self, change: Option<Change>, x: Option<&Node>, y: Option<&Node>) {
        let kind_of = |s: &mut DiffSide, n: &Node| match n.kind {
            NodeKind::File { .. } => s.files += 1,
            NodeKind::Dir { .. } => s.dirs += 1,
            _ => s.others += 1,
        };
        let same_kind = matches!((x, y), (Some(x), Some(y))
            if std::mem::discriminant(&x.kind) == std::mem::discriminant(&y.kind));
        let is_file = |n: &Node| matches!(n.kind, NodeKind::File { .. });
        match change {
            Some(Change::Modified) if same_kind => self.stats.changed_files += u64::from(x.is_some_and(is_file)),
            Some(Change::Added | Change::Modified | Change::Removed) => {
                x.inspect(|n| kind_of(&mut self.stats.removed, n));
                y.inspect(|n| kind_of(&mut self.stats.added, n));
            }
            _ => {}
        }
        let skip = x.and_then(Node::subtree).is_some() && x.and_then(Node::subtree) == y.and_then(Node::subtree);
        for (side, n) in [(0, x), (1, y)] {
            match n.map(|n| &n.kind) {
                Some(NodeKind::File { content, .. }) => self.data[side].extend(content.iter().map(|c| (c.id, c.len))),
                Some(NodeKind::Dir { subtree }) if !skip => {
                    self.trees[side].insert(*subtree);
                }
                _ => {}
            }
        }
    }

    /// The statistics: blobs only one side refers to are added (second) or removed (first).
    pub fn finish(mut self) -> DiffStats {
        let [a, b] = &self.data;
        for (side, mine, other) in [(&mut self.stats.added, b, a), (&mut self.stats.removed, a, b)] {
            for (_, len) in mine.iter().filter(|(id, _)| !other.contains_key(id)) {
                side.data_blobs += 1;
                side.bytes += u64::from(*len);
            }
        }
        let [ta, tb] = &self.trees;
        self.stats.added.tree_blobs = tb.difference(ta).count() as u64;
        self.stats.removed.tree_blobs = ta.difference(tb).count() as u64;
        self.stats
    }
}

/// The walk of [`diff`] from matched pairs of entries below `prefix`; `root` names the tree
/// in a depth error.
/// What [`diff_pairs`] reports for each pair visited: `(change, path, first, second)`.
type PairVisit<'a> = dyn FnMut(Option<Change>, &[u8], Option<&Node>, Option<&Node>) -> Result<()> + 'a;

/// `f(change, path, first, second)` is called for every pair visited, changed or not.
fn diff_pairs(
    trees: &walk::Trees,
    pairs: Vec<(Option<Node>, Option<Node>)>,
    prefix: &[u8],
    root: Option<Id>,
    f: &mut PairVisit,
) -> Result<()> {
    let mut path = prefix.to_vec();
    while path.last() == Some(&b'/') {
        path.pop();
    }
    let mut stack = vec![DiffFrame { pairs: pairs.into_iter(), path_len: path.len() }];
    while let Some(top) = stack.last_mut() {
        let Some((x, y)) = top.pairs.next() else {
            stack.pop();
            continue;
        };
        path.truncate(top.path_len);
        path.push(b'/');
        path.extend_from_slice(&x.as_ref().or(y.as_ref()).expect("pair_up yields at least one side").name);
        f(classify(x.as_ref(), y.as_ref()), &path, x.as_ref(), y.as_ref())?;
        // Below a directory that came, went, changed, or was replaced by a file (or the reverse).
        let (sa, sb) = (x.as_ref().and_then(Node::subtree), y.as_ref().and_then(Node::subtree));
        if (sa.is_some() || sb.is_some()) && sa != sb {
            let pairs = pair_up(trees, sa, sb)?;
            // Both roots were measured; this only guards the stack if a caller skipped that.
            if !pairs.is_empty() && stack.len() as u32 >= walk::MAX_DEPTH {
                let root = crate::format::blob::describe(BlobType::Tree, &root.or(sa).or(sb).expect("they differ"));
                return Err(Error::integrity(
                    root,
                    format!("directories nested deeper than {} levels", walk::MAX_DEPTH),
                ));
            }
            stack.push(DiffFrame { pairs: pairs.into_iter(), path_len: path.len() });
        }
    }
    Ok(())
}

/// One pair of directories being compared: their remaining entries, matched by name.
struct DiffFrame {
    pairs: std::vec::IntoIter<(Option<Node>, Option<Node>)>,
    path_len: usize,
}

/// The entries of trees `a` and `b` matched by name (both are sorted by name).
fn pair_up(trees: &walk::Trees, a: Option<Id>, b: Option<Id>) -> Result<Vec<(Option<Node>, Option<Node>)>> {
    let load = |t: Option<Id>| -> Result<Vec<Node>> {
        Ok(match t {
            Some(t) => trees.nodes(&t)?,
            None => vec![],
        })
    };
    let (mut na, mut nb) = (load(a)?.into_iter().peekable(), load(b)?.into_iter().peekable());
    let mut out = Vec::new();
    loop {
        let order = match (na.peek(), nb.peek()) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => return Ok(out),
        };
        out.push(match order {
            std::cmp::Ordering::Less => (na.next(), None),
            std::cmp::Ordering::Greater => (None, nb.next()),
            std::cmp::Ordering::Equal => (na.next(), nb.next()),
        });
    }
}

/// How entry `x` (first snapshot) became `y` (second), if it changed.
fn classify(x: Option<&Node>, y: Option<&Node>) -> Option<Change> {
    let (x, y) = match (x, y) {
        (Some(_), None) => return Some(Change::Removed),
        (None, Some(_)) => return Some(Change::Added),
        (Some(x), Some(y)) => (x, y),
        (None, None) => return None,
    };
    let same_kind = std::mem::discriminant(&x.kind) == std::mem::discriminant(&y.kind);
    let content_same = match (&x.kind, &y.kind) {
        (NodeKind::Dir { .. }, NodeKind::Dir { .. }) => true,
        _ => x.kind == y.kind,
    };
    let meta_same = x.mode == y.mode && x.uid == y.uid && x.gid == y.gid && x.mtime == y.mtime && x.xattrs == y.xattrs;
    if !same_kind || !content_same {
        Some(Change::Modified)
    } else if !meta_same {
        Some(Change::Metadata)
    } else {
        None
    }
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
/// Names are raw bytes: a name or link target that is not UTF-8 goes into the archive unchanged.
/// A directory is measured first (format-spec 19.1) and walked iteratively.
pub fn dump_tar(repo: &Repository, index: &Index, node: &Node, name: &[u8], w: &mut dyn Write) -> Result<()> {
    let trees = walk::Trees::new(repo, index);
    if let NodeKind::Dir { subtree } = node.kind {
        trees.measure(subtree)?;
    }
    let mut tar = tar::Builder::new(w);
    tar.mode(tar::HeaderMode::Complete);
    tar.follow_symlinks(false);
    append_tar(repo, index, node, name, &mut tar)?;
    if let NodeKind::Dir { subtree } = node.kind {
        trees.walk(subtree, name, &mut |path, n| {
            append_tar(repo, index, n, path, &mut tar)?;
            Ok(true)
        })?;
    }
    tar.finish().map_err(|e| Error::Io { path: "<tar>".into(), source: e })
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

/// Most entries a ZIP archive is written with: its central directory is held in memory until
/// the end (tar streams without one).
pub const MAX_ZIP_ENTRIES: u64 = 4_000_000;

/// Write a ZIP archive of `node` (a directory or a single entry) to `w`, named `name` inside:
/// the entries [`dump_tar`] writes, in its order and under its names (directories end in `/`).
/// Regular files (hard links each in full, as in tar), directories, symlinks (the target as
/// content, Info-ZIP's convention) and FIFOs (empty, their type in the Unix mode) go in;
/// devices and sockets, which tar leaves out too, do not. Streamed to a writer that is never
/// sought (see `browse/zip.rs`): the same entry gives the same bytes every time.
pub fn dump_zip(repo: &Repository, index: &Index, node: &Node, name: &[u8], w: &mut dyn Write) -> Result<()> {
    let trees = walk::Trees::new(repo, index);
    if let NodeKind::Dir { subtree } = node.kind {
        // The central directory is kept until the end (about 60 bytes and the name per entry).
        let m = trees.measure(subtree)?;
        if m.entries > MAX_ZIP_ENTRIES {
            return Err(Error::InvalidArgument(format!(
                "{} entries are more than a ZIP archive is written with ({MAX_ZIP_ENTRIES}): use tar",
                m.entries
            )));
        }
    }
    let mut zip = zip::ZipWriter::new(w);
    append_zip(repo, index, node, name, &mut zip)?;
    if let NodeKind::Dir { subtree } = node.kind {
        trees.walk(subtree, name, &mut |path, n| {
            append_zip(repo, index, n, path, &mut zip)?;
            Ok(true)
        })?;
    }
    zip.finish().map_err(|e| from_io(e, "<zip>"))
}

fn append_zip(repo: &Repository, index: &Index, n: &Node, path: &[u8], zip: &mut zip::ZipWriter) -> Result<()> {
    let path = if path.is_empty() { b"." } else { path };
    let io = |e: std::io::Error| from_io(e, &String::from_utf8_lossy(path));
    let meta = zip::Meta { perm: n.mode & 0o7777, mtime: n.mtime.div_euclid(1_000_000_000) };
    match &n.kind {
        NodeKind::File { size, .. } => {
            zip.file(path, meta, *size, &mut ContentReader::new(repo, index, n)?).map_err(io)
        }
        NodeKind::Dir { .. } => {
            let mut dir = path.to_vec();
            if dir.last() != Some(&b'/') {
                dir.push(b'/');
            }
            zip.dir(&dir, meta).map_err(io)
        }
        NodeKind::Symlink { target } => zip.symlink(path, meta, target).map_err(io),
        NodeKind::Fifo => zip.fifo(path, meta).map_err(io),
        // As in tar: no devices or sockets.
        _ => Ok(()),
    }
}

/// What `find` matches entries by.
pub enum FindBy {
    /// Globs ([`NameGlobs`]).
    Names(NameGlobs),
    /// Entries referring to an object whose ID starts with one of these lowercase hex
    /// prefixes (restic's `find --blob/--tree/--pack`).
    Ids(IdKind, Vec<String>),
}

/// The kind of object `find` looks for by ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    /// A data blob: files whose content holds it.
    Blob,
    /// A tree: the directories it is the listing of.
    Tree,
    /// A pack: files and directories whose blobs it stores (as the index says).
    Pack,
}

impl FindBy {
    /// ID prefixes, checked to be hex (any case).
    pub fn ids(kind: IdKind, prefixes: &[String]) -> Result<FindBy> {
        let mut out = Vec::new();
        for p in prefixes {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::InvalidArgument(format!("{p:?} is not an ID (hex digits, a prefix will do)")));
            }
            out.push(p.to_ascii_lowercase());
        }
        Ok(FindBy::Ids(kind, out))
    }

    /// Whether `node` at `path` is a hit: `Some(None)` for a name match, `Some(Some(id))` for
    /// the object an ID search found in it.
    pub fn hit(&self, index: &Index, path: &[u8], node: &Node) -> Option<Option<Id>> {
        match self {
            FindBy::Names(g) => g.matches(path, &node.name).then_some(None),
            FindBy::Ids(kind, prefixes) => {
                let wanted = |id: &Id| prefixes.iter().any(|p| id.to_hex().starts_with(p.as_str()));
                let in_pack = |t: BlobType, id: &Id| index.lookup(t, id).is_some_and(|l| wanted(&l.pack));
                let found = match (&node.kind, kind) {
                    (NodeKind::File { content, .. }, IdKind::Blob) => {
                        content.iter().map(|c| c.id).find(|id| wanted(id))
                    }
                    (NodeKind::File { content, .. }, IdKind::Pack) => {
                        content.iter().map(|c| c.id).find(|id| in_pack(BlobType::Data, id))
                    }
                    (NodeKind::Dir { subtree }, IdKind::Tree) => Some(*subtree).filter(|id| wanted(id)),
                    (NodeKind::Dir { subtree }, IdKind::Pack) => {
                        Some(*subtree).filter(|id| in_pack(BlobType::Tree, id))
                    }
                    _ => None,
                };
                found.map(Some)
            }
        }
    }
}

/// `find`'s globs: a pattern containing `/` is matched against the whole absolute path, one
/// without against the entry's name, at any depth; `*` does not cross `/`, `**` does. With
/// `ignore_case`, letters match in either case (restic's `--ignore-case`).
pub struct NameGlobs {
    names: globset::GlobSet,
    paths: globset::GlobSet,
}

impl NameGlobs {
    /// Compile the patterns (an entry matching any of them is a hit).
    pub fn new(patterns: &[String], ignore_case: bool) -> Result<NameGlobs> {
        let (mut names, mut paths) = (globset::GlobSetBuilder::new(), globset::GlobSetBuilder::new());
        for p in patterns {
            let trimmed = p.trim_end_matches('/');
            let g = globset::GlobBuilder::new(trimmed)
                .literal_separator(true)
                .backslash_escape(true)
                .case_insensitive(ignore_case)
                .build()
                .map_err(|e| Error::InvalidArgument(format!("pattern {p:?}: {e}")))?;
            // `node_modules/` means the name; only an inner `/` makes a path pattern.
            match trimmed.contains('/') {
                true => paths.add(g),
                false => names.add(g),
            };
        }
        let build = |b: globset::GlobSetBuilder| b.build().map_err(|e| Error::InvalidArgument(e.to_string()));
        Ok(NameGlobs { names: build(names)?, paths: build(paths)? })
    }

    /// Whether the entry at `path` named `name` matches.
    pub fn matches(&self, path: &[u8], name: &[u8]) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let os = |b| std::path::Path::new(std::ffi::OsStr::from_bytes(b));
        self.names.is_match(os(name)) || self.paths.is_match(os(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_as_ls_shows_them() {
        let mut n = Node::bare_dir(b"d", Id::of_file_bytes(b"t"));
        n.mode = 0o1777;
        assert_eq!(mode_string(&n), "drwxrwxrwt");
        n.kind = NodeKind::Symlink { target: b"x".to_vec() };
        n.mode = 0o777;
        assert_eq!(mode_string(&n), "lrwxrwxrwx");
        n.kind = NodeKind::File { size: 0, content: vec![] };
        n.mode = 0o4644;
        assert_eq!(mode_string(&n), "-rwSr--r--");
        n.mode = 0o2755;
        assert_eq!(mode_string(&n), "-rwxr-sr-x");
    }
}
