//! The inode table and the FUSE operations (see the module documentation in `mod.rs`).

use super::cache::{Blob, ChunkCache};
use super::Report;
use crate::error::{Error, Result};
use crate::format::blob::BlobType;
use crate::format::tree::{ChunkRef, Node, NodeKind};
use crate::id::Id;
use crate::repo::index::Index;
use crate::repo::walk::MAX_DEPTH;
use crate::repo::Repository;
use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, OpenAccMode, OpenFlags,
    ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyXattr, Request,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the kernel may cache names and attributes: nothing in a mount ever changes.
const TTL: Duration = Duration::from_secs(300);

/// Most inodes one mount hands out (each is an entry looked up or listed, kept until unmount):
/// about 2 GiB of table at the most. A `find` over a tree bomb stops here with ENOMEM.
pub const MAX_INODES: usize = 1 << 23;

/// Prefetch the chunks after the one a read ends in, up to this many bytes.
const PREFETCH_BYTES: u64 = 8 << 20;

/// A directory's entries: name and inode, sorted by name.
type Children = Arc<Vec<(Vec<u8>, u64)>>;

/// What an inode is.
enum Body {
    /// A directory of the layout (`/`, `snapshots/`, `hosts/HOST/` …), fixed at mount time.
    Virtual(Children),
    /// A symbolic link of the layout (`latest`).
    Link(Vec<u8>),
    /// An entry of a snapshot, or a snapshot's root.
    Entry(Box<Entry>),
}

struct Entry {
    /// The tree's record (its name is kept in [`Inode::name`]).
    node: Node,
    /// Which appearance of a snapshot this entry belongs to (hard links are grouped per view).
    view: u32,
    /// Files: where each chunk starts.
    starts: Vec<u64>,
    /// Directories: depth below the snapshot root (the root is 0).
    depth: u32,
    /// Directories: entries, once the tree was read.
    children: Option<Children>,
    /// Directories that must not be read: the tree is its own ancestor, or nests too deep.
    broken: bool,
}

struct Inode {
    name: Vec<u8>,
    /// The directory it was first found in (the root is its own parent).
    parent: u64,
    body: Body,
}

struct Table {
    /// Inode `n` is `inodes[n - 1]`.
    inodes: Vec<Inode>,
    /// Hard-link groups: (view, device, inode) → the inode handed out for the first name.
    hard: HashMap<(u32, u64, u64), u64>,
    views: u32,
    full_reported: bool,
}

impl Table {
    fn get(&self, ino: u64) -> std::result::Result<&Inode, Errno> {
        usize::try_from(ino).ok().and_then(|i| i.checked_sub(1)).and_then(|i| self.inodes.get(i)).ok_or(Errno::ENOENT)
    }

    fn push(&mut self, inode: Inode) -> u64 {
        self.inodes.push(inode);
        self.inodes.len() as u64
    }

    /// `/`-joined names from the root down to `ino`, for messages.
    fn path(&self, mut ino: u64) -> String {
        let mut parts = Vec::new();
        while ino != 1 {
            let Ok(i) = self.get(ino) else { break };
            parts.push(String::from_utf8_lossy(&i.name).into_owned());
            ino = i.parent;
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    /// Add `node`, found in directory `parent` (an entry of `view` at `depth`), unless it is a
    /// further name of a hard-link group already handed out.
    fn add_node(&mut self, parent: u64, node: Node, view: u32, depth: u32, report: &Report) -> u64 {
        let dir = node.subtree();
        let key = (dir.is_none() && node.links > 1).then_some((view, node.device, node.inode));
        if let Some(&ino) = key.as_ref().and_then(|k| self.hard.get(k)) {
            return ino;
        }
        let starts = match &node.kind {
            NodeKind::File { content, .. } => content
                .iter()
                .scan(0u64, |at, c| {
                    let start = *at;
                    *at += u64::from(c.len);
                    Some(start)
                })
                .collect(),
            _ => Vec::new(),
        };
        let broken = dir.is_some_and(|tree| {
            // Its entries would lie deeper than the limit (the root's entries are at depth 1).
            let why = if depth >= MAX_DEPTH {
                Some(format!("directories nested deeper than {MAX_DEPTH} levels"))
            } else {
                self.is_ancestor(parent, &tree).then(|| "the directory's tree is its own ancestor (a loop)".to_string())
            };
            if let Some(why) = &why {
                let path = format!("{}/{}", self.path(parent), String::from_utf8_lossy(&node.name));
                let e = Error::integrity(crate::format::blob::describe(BlobType::Tree, &tree), why.clone());
                report(&format!("{path}: {e}; reading it fails with EIO"));
            }
            why.is_some()
        });
        let name = node.name.clone();
        let entry = Entry { node, view, starts, depth, children: None, broken };
        let ino = self.push(Inode { name, parent, body: Body::Entry(Box::new(entry)) });
        if let Some(k) = key {
            self.hard.insert(k, ino);
        }
        ino
    }

    /// Whether directory `ino` or one above it, up to its snapshot's root, has tree `tree`.
    fn is_ancestor(&self, mut ino: u64, tree: &Id) -> bool {
        loop {
            let Ok(Inode { body: Body::Entry(e), parent, .. }) = self.get(ino) else { return false };
            if e.node.subtree().as_ref() == Some(tree) {
                return true;
            }
            if e.depth == 0 {
                return false;
            }
            ino = *parent;
        }
    }
}

/// The filesystem handed to fuser.
pub(crate) struct Fs {
    repo: Arc<Repository>,
    index: Arc<Index>,
    table: RwLock<Table>,
    cache: Arc<ChunkCache>,
    report: Report,
    /// Owner of the layout's own directories and links: the mounting user.
    owner: (u32, u32),
    /// Times of the layout's own directories and links.
    mounted: SystemTime,
}

/// One snapshot's place in the layout: the names it appears under.
pub(crate) struct Placed {
    pub time: i64,
    pub tree: Id,
    /// `snapshots/<time>`: unique.
    pub time_name: Vec<u8>,
    /// `ids/<id>`: unique.
    pub id_name: Vec<u8>,
    /// `hosts/<host>/`.
    pub host: Vec<u8>,
    /// `tags/<tag>/`, one per tag.
    pub tags: Vec<Vec<u8>>,
}

impl Fs {
    /// The layout for `snaps` (oldest first).
    pub(crate) fn new(
        repo: Arc<Repository>,
        index: Arc<Index>,
        snaps: &[Placed],
        cache_bytes: usize,
        report: Report,
    ) -> Fs {
        let owner = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
        let mut t = Table { inodes: Vec::new(), hard: HashMap::new(), views: 0, full_reported: false };
        let mut b = Builder { t: &mut t, pending: HashMap::new() };
        let root = b.dir(0, b"");
        let snapshots = b.dir(root, b"snapshots");
        let ids = b.dir(root, b"ids");
        let hosts = b.dir(root, b"hosts");
        let tags = b.dir(root, b"tags");
        let mut host_dirs: HashMap<&[u8], (u64, &Placed)> = HashMap::new();
        let mut tag_dirs: HashMap<&[u8], (u64, &Placed)> = HashMap::new();
        for s in snaps {
            b.snapshot(snapshots, &s.time_name, s);
            b.snapshot(ids, &s.id_name, s);
            let h = host_dirs.entry(&s.host).or_insert_with(|| (b.dir(hosts, &s.host), s));
            h.1 = s;
            b.snapshot(h.0, &s.time_name, s);
            for tag in &s.tags {
                let d = tag_dirs.entry(tag).or_insert_with(|| (b.dir(tags, tag), s));
                d.1 = s;
                b.snapshot(d.0, &s.time_name, s);
            }
        }
        if let Some(newest) = snaps.last() {
            b.link(snapshots, b"latest", newest.time_name.clone());
            let mut target = b"snapshots/".to_vec();
            target.extend_from_slice(&newest.time_name);
            b.link(root, b"latest", target);
        }
        for (dir, newest) in host_dirs.values().chain(tag_dirs.values()) {
            b.link(*dir, b"latest", newest.time_name.clone());
        }
        b.finish();
        Fs {
            repo,
            index,
            table: RwLock::new(t),
            cache: Arc::new(ChunkCache::new(cache_bytes)),
            report,
            owner,
            mounted: SystemTime::now(),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Table> {
        // Updates of the table never span a panic point; a poisoned lock holds a usable table.
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The entries of directory `ino`, reading its tree the first time.
    fn children(&self, ino: u64) -> std::result::Result<Children, Errno> {
        let (tree, view, depth) = {
            let t = self.read();
            match &t.get(ino)?.body {
                Body::Virtual(c) => return Ok(c.clone()),
                Body::Link(_) => return Err(Errno::ENOTDIR),
                Body::Entry(e) => match (&e.children, e.node.subtree()) {
                    (Some(c), _) => return Ok(c.clone()),
                    (None, Some(_)) if e.broken => return Err(Errno::EIO),
                    (None, Some(tree)) => (tree, e.view, e.depth),
                    (None, None) => return Err(Errno::ENOTDIR),
                },
            }
        };
        // Read without holding the table: other requests go on meanwhile.
        let nodes = match self.repo.read_tree(&self.index, &tree) {
            Ok(tree) => tree.nodes,
            Err(e) => {
                let path = self.read().path(ino);
                (self.report)(&format!("{path}: {e}"));
                return Err(Errno::EIO);
            }
        };
        let mut t = self.write();
        if let Body::Entry(e) = &t.get(ino)?.body {
            if let Some(c) = &e.children {
                return Ok(c.clone()); // read by another request meanwhile
            }
        }
        if t.inodes.len().saturating_add(nodes.len()) > MAX_INODES {
            if !std::mem::replace(&mut t.full_reported, true) {
                (self.report)(&format!(
                    "{}: this mount has handed out {MAX_INODES} inodes, its limit; unmount and mount again \
                     to browse further",
                    t.path(ino)
                ));
            }
            return Err(Errno::ENOMEM);
        }
        let mut kids = Vec::with_capacity(nodes.len());
        for node in nodes {
            let name = node.name.clone();
            let child = t.add_node(ino, node, view, depth + 1, &self.report);
            kids.push((name, child));
        }
        let kids = Arc::new(kids);
        // `t.get(ino)` succeeded above: `ino - 1` is an index of the table.
        if let Body::Entry(e) = &mut t.inodes[ino as usize - 1].body {
            e.children = Some(kids.clone());
        }
        Ok(kids)
    }

    fn attr(&self, ino: u64, i: &Inode) -> FileAttr {
        let (uid, gid) = self.owner;
        let mut a = FileAttr {
            ino: INodeNo(ino),
            size: 0,
            blocks: 0,
            atime: self.mounted,
            mtime: self.mounted,
            ctime: self.mounted,
            crtime: self.mounted,
            kind: FileType::Directory,
            perm: 0o555,
            nlink: 1,
            uid,
            gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        };
        match &i.body {
            Body::Virtual(_) => {}
            Body::Link(target) => {
                a.kind = FileType::Symlink;
                a.perm = 0o777;
                a.size = target.len() as u64;
            }
            Body::Entry(e) => {
                let n = &e.node;
                let (kind, size, rdev) = match &n.kind {
                    NodeKind::File { size, .. } => (FileType::RegularFile, *size, 0),
                    NodeKind::Dir { .. } => (FileType::Directory, 0, 0),
                    NodeKind::Symlink { target } => (FileType::Symlink, target.len() as u64, 0),
                    NodeKind::Fifo => (FileType::NamedPipe, 0, 0),
                    NodeKind::CharDevice { rdev } => (FileType::CharDevice, 0, *rdev),
                    NodeKind::BlockDevice { rdev } => (FileType::BlockDevice, 0, *rdev),
                    NodeKind::Socket => (FileType::Socket, 0, 0),
                };
                a.kind = kind;
                a.size = size;
                a.blocks = size.div_ceil(512);
                a.rdev = fuse_rdev(rdev);
                a.perm = (n.mode & 0o7777) as u16;
                // Directories: 1 says "unknown" to tools that count subdirectories by links.
                a.nlink = if kind == FileType::Directory { 1 } else { n.links.clamp(1, u64::from(u32::MAX)) as u32 };
                a.uid = n.uid;
                a.gid = n.gid;
                a.mtime = time(n.mtime);
                a.ctime = time(n.ctime);
                a.atime = a.mtime;
            }
        }
        a
    }

    fn reply_attr(&self, ino: u64) -> std::result::Result<FileAttr, Errno> {
        let t = self.read();
        Ok(self.attr(ino, t.get(ino)?))
    }

    /// Read `size` bytes at `offset` of file `ino`.
    fn read_file(&self, ino: u64, offset: u64, size: u32) -> std::result::Result<Vec<u8>, Errno> {
        let end = offset.saturating_add(u64::from(size));
        let (wanted, ahead) = {
            let t = self.read();
            let Body::Entry(e) = &t.get(ino)?.body else { return Err(Errno::EISDIR) };
            let NodeKind::File { content, size: file_size } = &e.node.kind else { return Err(Errno::EINVAL) };
            if offset >= *file_size {
                return Ok(Vec::new());
            }
            // The chunk holding `offset`: the last one that starts at or before it.
            let first = e.starts.partition_point(|&s| s <= offset).saturating_sub(1);
            let mut wanted: Vec<(u64, ChunkRef)> = Vec::new();
            let mut i = first;
            while i < content.len() && e.starts[i] < end {
                wanted.push((e.starts[i], content[i]));
                i += 1;
            }
            let mut ahead = Vec::new();
            let mut bytes = 0u64;
            while i < content.len() && bytes < PREFETCH_BYTES {
                ahead.push(content[i]);
                bytes += u64::from(content[i].len);
                i += 1;
            }
            (wanted, ahead)
        };
        self.prefetch(ahead);
        let mut out = Vec::with_capacity(size as usize);
        for (start, c) in wanted {
            let blob = self.fetch(ino, &c)?;
            let from = offset.saturating_sub(start) as usize;
            let to = (end - start).min(u64::from(c.len)) as usize;
            // `fetch` checked the length; `get` keeps a miscounted range from panicking all the same.
            out.extend_from_slice(blob.get(from..to).unwrap_or_default());
        }
        Ok(out)
    }

    /// Chunk `c` of file `ino`, from the cache or the repository, of the length the tree says.
    fn fetch(&self, ino: u64, c: &ChunkRef) -> std::result::Result<Blob, Errno> {
        let r = self.cache.get(&c.id, || load(&self.repo, &self.index, c)).and_then(|b| {
            // Cached under the same ID for another file whose tree may say another length.
            if b.len() == c.len as usize {
                Ok(b)
            } else {
                Err(length_error(c, b.len()))
            }
        });
        r.map_err(|e| {
            let path = self.read().path(ino);
            (self.report)(&format!("{path}: {e}"));
            Errno::EIO
        })
    }

    /// Start loading chunks a sequential reader will want next (errors are left for it to meet).
    fn prefetch(&self, chunks: Vec<ChunkRef>) {
        for c in chunks {
            if self.cache.claim(&c.id) {
                continue;
            }
            let (repo, index, cache) = (self.repo.clone(), self.index.clone(), self.cache.clone());
            rayon::spawn(move || {
                let blob = load(&repo, &index, &c).ok().map(Arc::new);
                cache.finish(&c.id, blob);
            });
        }
    }

    fn xattrs(&self, ino: u64) -> std::result::Result<Vec<crate::format::tree::Xattr>, Errno> {
        let t = self.read();
        Ok(match &t.get(ino)?.body {
            Body::Entry(e) => e.node.xattrs.clone(),
            _ => Vec::new(),
        })
    }
}

/// Read data blob `c` and check its length against the tree's record.
fn load(repo: &Repository, index: &Index, c: &ChunkRef) -> Result<Vec<u8>> {
    let b = repo.read_blob(index, BlobType::Data, &c.id)?;
    if b.len() != c.len as usize {
        return Err(length_error(c, b.len()));
    }
    Ok(b)
}

fn length_error(c: &ChunkRef, len: usize) -> Error {
    Error::integrity(
        crate::format::blob::describe(BlobType::Data, &c.id),
        format!("plaintext is {len} bytes, the tree records {}", c.len),
    )
}

/// Unix nanoseconds as a time (before 1970 too).
fn time(ns: i64) -> SystemTime {
    let d = Duration::from_nanos(ns.unsigned_abs());
    if ns >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    }
}

/// A device number as FUSE passes it (the kernel's `new_encode_dev`).
fn fuse_rdev(rdev: u64) -> u32 {
    let (major, minor) = (libc::major(rdev as libc::dev_t), libc::minor(rdev as libc::dev_t));
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

/// Builds the layout's directories and links; each directory's entries are sorted at the end.
struct Builder<'a> {
    t: &'a mut Table,
    pending: HashMap<u64, Vec<(Vec<u8>, u64)>>,
}

impl Builder<'_> {
    fn add(&mut self, parent: u64, name: &[u8], body: Body) -> u64 {
        let ino = self.t.push(Inode { name: name.to_vec(), parent: parent.max(1), body });
        if parent != 0 {
            self.pending.entry(parent).or_default().push((name.to_vec(), ino));
        }
        ino
    }

    fn dir(&mut self, parent: u64, name: &[u8]) -> u64 {
        let ino = self.add(parent, name, Body::Virtual(Arc::default()));
        self.pending.entry(ino).or_default();
        ino
    }

    fn link(&mut self, parent: u64, name: &[u8], target: Vec<u8>) {
        self.add(parent, name, Body::Link(target));
    }

    /// A snapshot's root: a view of its own, so that its inodes are not shared with the same
    /// snapshot elsewhere in the layout (a directory has one parent).
    fn snapshot(&mut self, parent: u64, name: &[u8], s: &Placed) {
        let mut node = Node::bare_dir(name, s.tree);
        node.mtime = s.time;
        node.ctime = s.time;
        node.mode = 0o555;
        let (uid, gid) = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
        (node.uid, node.gid) = (uid, gid);
        self.t.views += 1;
        let entry = Entry { node, view: self.t.views, starts: vec![], depth: 0, children: None, broken: false };
        self.add(parent, name, Body::Entry(Box::new(entry)));
    }

    fn finish(self) {
        for (dir, mut kids) in self.pending {
            kids.sort_by(|a, b| a.0.cmp(&b.0));
            if let Some(Inode { body: Body::Virtual(c), .. }) = self.t.inodes.get_mut(dir as usize - 1) {
                *c = Arc::new(kids);
            }
        }
    }
}

fn kind_of(i: &Inode) -> FileType {
    match &i.body {
        Body::Virtual(_) => FileType::Directory,
        Body::Link(_) => FileType::Symlink,
        Body::Entry(e) => match e.node.kind {
            NodeKind::File { .. } => FileType::RegularFile,
            NodeKind::Dir { .. } => FileType::Directory,
            NodeKind::Symlink { .. } => FileType::Symlink,
            NodeKind::Fifo => FileType::NamedPipe,
            NodeKind::CharDevice { .. } => FileType::CharDevice,
            NodeKind::BlockDevice { .. } => FileType::BlockDevice,
            NodeKind::Socket => FileType::Socket,
        },
    }
}

impl fuser::Filesystem for Fs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let kids = match self.children(parent.0) {
            Ok(k) => k,
            Err(e) => return reply.error(e),
        };
        let name = name.as_bytes();
        match kids.binary_search_by(|(n, _)| n.as_slice().cmp(name)) {
            Ok(i) => match self.reply_attr(kids[i].1) {
                Ok(a) => reply.entry(&TTL, &a, Generation(0)),
                Err(e) => reply.error(e),
            },
            Err(_) => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.reply_attr(ino.0) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let t = self.read();
        match t.get(ino.0).map(|i| &i.body) {
            Ok(Body::Link(target)) => reply.data(target),
            Ok(Body::Entry(e)) => match &e.node.kind {
                NodeKind::Symlink { target } => reply.data(target),
                _ => reply.error(Errno::EINVAL),
            },
            Ok(_) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        match self.reply_attr(ino.0) {
            // The content never changes: the kernel may keep its pages across opens.
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        match self.read_file(ino.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _owner: fuser::LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let kids = match self.children(ino.0) {
            Ok(k) => k,
            Err(e) => return reply.error(e),
        };
        let t = self.read();
        let parent = t.get(ino.0).map_or(1, |i| i.parent);
        // Offsets: 1 after ".", 2 after "..", 3 + i after child i.
        let dots = [(ino.0, &b"."[..]), (parent, &b".."[..])];
        for (i, (child, name)) in dots.iter().copied().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, FileType::Directory, OsStr::from_bytes(name)) {
                return reply.ok();
            }
        }
        let skip = (offset as usize).saturating_sub(2);
        for (i, (name, child)) in kids.iter().enumerate().skip(skip) {
            let kind = t.get(*child).map_or(FileType::RegularFile, kind_of);
            if reply.add(INodeNo(*child), i as u64 + 3, kind, OsStr::from_bytes(name)) {
                break;
            }
        }
        reply.ok();
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let xattrs = match self.xattrs(ino.0) {
            Ok(x) => x,
            Err(e) => return reply.error(e),
        };
        match xattrs.iter().find(|x| x.name == name.as_bytes()) {
            None => reply.error(Errno::NO_XATTR),
            Some(x) if size == 0 => reply.size(x.value.len() as u32),
            Some(x) if x.value.len() > size as usize => reply.error(Errno::ERANGE),
            Some(x) => reply.data(&x.value),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let xattrs = match self.xattrs(ino.0) {
            Ok(x) => x,
            Err(e) => return reply.error(e),
        };
        let mut list = Vec::new();
        for x in &xattrs {
            list.extend_from_slice(&x.name);
            list.push(0);
        }
        if size == 0 {
            reply.size(list.len() as u32);
        } else if list.len() > size as usize {
            reply.error(Errno::ERANGE);
        } else {
            reply.data(&list);
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        match self.reply_attr(ino.0) {
            Ok(_) if mask.contains(AccessFlags::W_OK) => reply.error(Errno::EROFS),
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    // ---- every change is refused (the mount is read-only as well) ----------------------------

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, _mode: u32, _umask: u32, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, _target: &std::path::Path, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(&self, _req: &Request, _ino: INodeNo, _newparent: INodeNo, _newname: &OsStr, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: fuser::ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: fuser::ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_as_the_kernel_decodes_them() {
        // new_decode_dev: major = (dev & 0xfff00) >> 8, minor = (dev & 0xff) | ((dev >> 12) & 0xfff00).
        for (major, minor) in [(8u32, 1u32), (259, 0x12345), (1, 3)] {
            let dev = fuse_rdev(libc::makedev(major, minor) as u64);
            assert_eq!((dev & 0xfff00) >> 8, major);
            assert_eq!((dev & 0xff) | ((dev >> 12) & 0xfff00), minor);
        }
    }

    #[test]
    fn times_before_1970() {
        assert_eq!(time(-1_500_000_000), UNIX_EPOCH - Duration::from_millis(1500));
        assert_eq!(time(2_000_000_001), UNIX_EPOCH + Duration::new(2, 1));
    }
}
