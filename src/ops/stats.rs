//! `stats`: what the selected snapshots hold, counted in restic's four modes
//! (`restic stats --mode …`, cmd/restic/cmd_stats.go), with restic's field names.
//!
//! - **restore-size** (default): what restores of the snapshots write — every entry counted,
//!   file bytes summed, each snapshot on its own; a hard-linked file (links ≠ 1, inode ≠ 0)
//!   counts once per snapshot by (device, inode).
//! - **files-by-contents**: distinct file contents (a content is its chunk list) across the
//!   selection, and their size.
//! - **raw-data**: distinct blobs (data and tree) the selection references: their stored size
//!   from the index, their size stored uncompressed, compression ratio and space saving.
//! - **blobs-per-file**: for each distinct content, at the path it is first met, its distinct
//!   data blobs, counted per path (a path whose content changed adds only its new blobs).
//!
//! Every distinct tree is read once for the whole selection (a depth-first walk that skips
//! trees already visited: nothing below one can be new), iteratively. What stays in memory is
//! per distinct tree (its entry count, subdirectories and hard-linked files), plus what the
//! mode itself must remember: 32 bytes per distinct content, a bit per indexed blob, or 16
//! bytes per (path, blob) reference — never the expanded snapshots. Sums over expanded
//! snapshots are memoised per tree, so ten identical snapshots cost one walk, and each root
//! is held to the expansion limits of format-spec 19.1 like every other command that walks.

use super::context::READERS;
use super::locate;
use super::outcome::{HasOutcome, Outcome};
use super::scope::Scope;
use crate::error::{Error, Result};
use crate::format::blob::{self, BlobType};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{ChunkRef, Node, NodeKind, Tree};
use crate::id::Id;
use crate::repo::index::Index;
use crate::repo::select::SnapshotFilter;
use crate::repo::walk::{self, MAX_DEPTH};
use crate::repo::Repository;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// How `stats` counts (restic's `--mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// What restores of the snapshots write.
    #[default]
    RestoreSize,
    /// Distinct file contents and their size.
    FilesByContents,
    /// Distinct blobs, stored and uncompressed.
    RawData,
    /// Distinct blobs of each distinct file, per path.
    BlobsPerFile,
}

impl Mode {
    /// restic's name for the mode.
    pub fn name(self) -> &'static str {
        match self {
            Mode::RestoreSize => "restore-size",
            Mode::FilesByContents => "files-by-contents",
            Mode::RawData => "raw-data",
            Mode::BlobsPerFile => "blobs-per-file",
        }
    }
}

/// What to count over which snapshots.
#[derive(Clone, Debug, Default)]
pub struct StatsRequest {
    /// The counting mode.
    pub mode: Mode,
    /// Snapshot references (`latest`, `latest~N`, `latest-verified`, ID prefixes); none: every
    /// snapshot the filter selects.
    pub snapshots: Vec<String>,
    /// The filters.
    pub filter: SnapshotFilter,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_f(n: &f64) -> bool {
    *n == 0.0
}

/// The figures, serialised with restic's field names; as restic's, a zero is left out except
/// `total_size` and `snapshots_count`.
#[derive(Debug, Default, Serialize)]
pub struct Stats {
    /// The mode counted in.
    #[serde(skip)]
    pub mode: Mode,
    /// Bytes: restored (restore-size), of distinct contents (files-by-contents), stored
    /// (raw-data), of each file's distinct blobs (blobs-per-file).
    pub total_size: u64,
    /// raw-data: what the blobs would take stored without compression (plaintext and envelope).
    #[serde(skip_serializing_if = "is_zero")]
    pub total_uncompressed_size: u64,
    /// raw-data: uncompressed over stored size.
    #[serde(skip_serializing_if = "is_zero_f")]
    pub compression_ratio: f64,
    /// raw-data: the percentage of the uncompressed size that compression saved.
    #[serde(skip_serializing_if = "is_zero_f")]
    pub compression_space_saving: f64,
    /// Entries (restore-size), distinct contents (files-by-contents), paths (blobs-per-file).
    #[serde(skip_serializing_if = "is_zero")]
    pub total_file_count: u64,
    /// Distinct blobs (raw-data), per-file blob references (blobs-per-file).
    #[serde(skip_serializing_if = "is_zero")]
    pub total_blob_count: u64,
    /// Snapshots counted.
    pub snapshots_count: usize,
    /// Their IDs, oldest first.
    #[serde(skip)]
    pub snapshots: Vec<Id>,
    /// Snapshot files that could not be read (not counted).
    #[serde(skip)]
    pub damaged: Vec<String>,
}

impl HasOutcome for Stats {
    fn outcome(&self) -> Outcome {
        if self.damaged.is_empty() {
            Outcome::Ok
        } else {
            Outcome::Damage
        }
    }
}

/// `stats`: count the selected snapshots in `req.mode`. A snapshot file that cannot be read is
/// reported in [`Stats::damaged`] and the rest counted; a tree or blob that cannot be read (or
/// a snapshot beyond the limits of format-spec 19.1) fails the whole count.
pub fn stats(scope: &Scope, req: &StatsRequest) -> Result<Stats> {
    let ctx = &scope.ctx;
    let repo = ctx.open_for(READERS, "compute statistics")?;
    let _lock = ctx.lock_for_reading(&repo)?;
    let filter = scope.filter(&req.filter, None);
    let mut damaged = Vec::new();
    // Snapshots before the index: a backup publishes its index first.
    let snaps: Vec<(Id, Snapshot)> = if req.snapshots.is_empty() {
        let (all, bad) = repo.list_snapshots_and_damage()?;
        damaged.extend(bad.iter().map(|(name, e)| format!("snapshot {name}: {e}")));
        all.into_iter().filter(|(_, s)| filter.matches(s)).collect()
    } else {
        let mut chosen: Vec<(Id, Snapshot)> = Vec::new();
        for r in &req.snapshots {
            let (id, s) = locate::resolve(&repo, r, &filter, &|m| ctx.notices.warn(m))?;
            if !chosen.iter().any(|(c, _)| *c == id) {
                chosen.push((id, s));
            }
        }
        chosen
    };
    let index = ctx.load_index(&repo)?;
    let mut counter = Counter::new(&repo, &index, req.mode);
    for (_, s) in &snaps {
        counter.snapshot(s.tree)?;
    }
    let mut stats = counter.finish();
    stats.snapshots_count = snaps.len();
    stats.snapshots = snaps.iter().map(|(id, _)| *id).collect();
    stats.damaged = damaged;
    Ok(stats)
}

/// What one distinct tree contributes to the sums over every snapshot that reaches it.
struct TreeInfo {
    /// Its own entries.
    entries: u64,
    /// Bytes of its own files that are not hard-linked.
    plain_size: u64,
    /// Its subdirectories and hard-linked files, in stored order.
    items: Vec<Item>,
}

impl TreeInfo {
    fn subtrees(&self) -> Vec<Id> {
        self.items.iter().filter_map(|i| if let Item::Dir(id) = i { Some(*id) } else { None }).collect()
    }

    fn links(&self) -> u64 {
        self.items.iter().filter(|i| matches!(i, Item::Link { .. })).count() as u64
    }
}

/// A subdirectory, or a file restic's restore-size counts once per (device, inode).
enum Item {
    Dir(Id),
    Link { device: u64, inode: u64, size: u64 },
}

/// One directory being walked: its remaining entries and the length of its path.
struct Frame {
    nodes: std::vec::IntoIter<Node>,
    path_len: usize,
}

/// The state of one count.
struct Counter<'a> {
    repo: &'a Repository,
    index: &'a Index,
    mode: Mode,
    stats: Stats,
    /// Every distinct tree visited.
    trees: HashMap<Id, TreeInfo>,
    /// Expansion limits, memoised per tree (format-spec 19.1).
    measured: HashMap<Id, (u64, u32)>,
    /// restore-size: file bytes below a tree (hard links aside), memoised per tree.
    sizes: HashMap<Id, u64>,
    /// restore-size: hard-linked files below a tree, per path, memoised per tree.
    links_below: HashMap<Id, u64>,
    /// restore-size: hard-linked bytes per snapshot root.
    linked: HashMap<Id, u64>,
    /// files-by-contents and blobs-per-file: the distinct contents met (BLAKE3 of the chunk IDs).
    contents: HashSet<[u8; 32]>,
    /// blobs-per-file: each path met, by the BLAKE3 of its bytes (first 16), numbered.
    paths: HashMap<[u8; 16], usize>,
    /// blobs-per-file: (path number, blob position in the index) counted.
    refs: HashSet<(usize, usize)>,
    /// raw-data: one bit per indexed blob, set when counted.
    used: Vec<u64>,
}

impl<'a> Counter<'a> {
    fn new(repo: &'a Repository, index: &'a Index, mode: Mode) -> Counter<'a> {
        let bits = if mode == Mode::RawData { index.len().div_ceil(64) } else { 0 };
        Counter {
            repo,
            index,
            mode,
            stats: Stats { mode, ..Stats::default() },
            trees: HashMap::new(),
            measured: HashMap::new(),
            sizes: HashMap::new(),
            links_below: HashMap::new(),
            linked: HashMap::new(),
            contents: HashSet::new(),
            paths: HashMap::new(),
            refs: HashSet::new(),
            used: vec![0; bits],
        }
    }

    /// Count the snapshot whose root tree is `root`.
    fn snapshot(&mut self, root: Id) -> Result<()> {
        self.visit(root)?;
        let trees = &self.trees;
        let m = walk::measure_with(root, &mut self.measured, &mut |id| match trees.get(id) {
            Some(t) => (t.entries, t.subtrees()),
            None => (0, vec![]),
        })?;
        if self.mode == Mode::RestoreSize {
            let own = |id: &Id| trees.get(id).map_or((0, vec![]), |t| (t.plain_size, t.subtrees()));
            let plain = walk::memo_sum(root, own, &mut self.sizes);
            let linked = self.linked_size(root);
            let s = &mut self.stats;
            s.total_file_count = s.total_file_count.saturating_add(m.entries);
            s.total_size = s.total_size.saturating_add(plain).saturating_add(linked);
        }
        Ok(())
    }

    /// Bytes of the hard-linked files below `root`, each (device, inode) once, at its first
    /// place in walk order (restic's restore-size). Visits each distinct tree that has such
    /// files below it once, from trees already read; memoised per root.
    fn linked_size(&mut self, root: Id) -> u64 {
        if let Some(&n) = self.linked.get(&root) {
            return n;
        }
        let trees = &self.trees;
        let count = |id: &Id| trees.get(id).map_or((0, vec![]), |t| (t.links(), t.subtrees()));
        if walk::memo_sum(root, count, &mut self.links_below) == 0 {
            self.linked.insert(root, 0);
            return 0;
        }
        let (mut seen_trees, mut seen_inodes, mut total) = (HashSet::from([root]), HashSet::new(), 0u64);
        let mut stack: Vec<(Id, usize)> = vec![(root, 0)];
        while let Some((id, at)) = stack.last_mut() {
            let Some(item) = trees.get(id).and_then(|t| t.items.get(*at)) else {
                stack.pop();
                continue;
            };
            *at += 1;
            match *item {
                Item::Link { device, inode, size } => {
                    if seen_inodes.insert((device, inode)) {
                        total = total.saturating_add(size);
                    }
                }
                Item::Dir(sub) => {
                    if self.links_below.get(&sub).copied().unwrap_or(0) > 0 && seen_trees.insert(sub) {
                        stack.push((sub, 0));
                    }
                }
            }
        }
        self.linked.insert(root, total);
        total
    }

    /// Walk the trees below `root` not visited yet, depth first in stored order, counting
    /// their files in the mode's own way.
    fn visit(&mut self, root: Id) -> Result<()> {
        if self.trees.contains_key(&root) {
            return Ok(());
        }
        let mut path: Vec<u8> = Vec::new();
        let mut stack = vec![Frame { nodes: self.read(root)?.into_iter(), path_len: 0 }];
        while let Some(top) = stack.last_mut() {
            let Some(node) = top.nodes.next() else {
                stack.pop();
                continue;
            };
            path.truncate(top.path_len);
            path.push(b'/');
            path.extend_from_slice(&node.name);
            match &node.kind {
                NodeKind::File { size, content } => self.file(&path, *size, content)?,
                NodeKind::Dir { subtree } if !self.trees.contains_key(subtree) => {
                    let nodes = self.read(*subtree)?;
                    // Entries of the new frame sit at depth `stack.len() + 1`.
                    if !nodes.is_empty() && stack.len() as u32 >= MAX_DEPTH {
                        return Err(Error::integrity(
                            blob::describe(BlobType::Tree, &root),
                            format!("directories nested deeper than {MAX_DEPTH} levels (format-spec 19)"),
                        ));
                    }
                    stack.push(Frame { nodes: nodes.into_iter(), path_len: path.len() });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Read tree `id` and keep what the sums need of it.
    fn read(&mut self, id: Id) -> Result<Vec<Node>> {
        let plain = self.repo.read_blob(self.index, BlobType::Tree, &id)?;
        let tree = Tree::decode(&plain, &blob::describe(BlobType::Tree, &id))?;
        if self.mode == Mode::RawData {
            self.count_blob(BlobType::Tree, &id, plain.len() as u64)?;
        }
        let mut info = TreeInfo { entries: tree.nodes.len() as u64, plain_size: 0, items: Vec::new() };
        for n in &tree.nodes {
            match n.kind {
                NodeKind::Dir { subtree } => info.items.push(Item::Dir(subtree)),
                // restic's test: a file with one link, or without an inode, is counted each time.
                NodeKind::File { size, .. } if n.links == 1 || n.inode == 0 || self.mode != Mode::RestoreSize => {
                    info.plain_size = info.plain_size.saturating_add(size)
                }
                NodeKind::File { size, .. } => info.items.push(Item::Link { device: n.device, inode: n.inode, size }),
                _ => {}
            }
        }
        self.trees.insert(id, info);
        Ok(tree.nodes)
    }

    /// A file met for the first time in the walk (its tree was not visited before).
    fn file(&mut self, path: &[u8], size: u64, content: &[ChunkRef]) -> Result<()> {
        match self.mode {
            Mode::RestoreSize => {}
            Mode::RawData => {
                for c in content {
                    self.count_blob(BlobType::Data, &c.id, c.len as u64)?;
                }
            }
            Mode::FilesByContents | Mode::BlobsPerFile => {
                let mut h = blake3::Hasher::new();
                for c in content {
                    h.update(&c.id.0);
                }
                if !self.contents.insert(*h.finalize().as_bytes()) {
                    return Ok(());
                }
                let s = &mut self.stats;
                if self.mode == Mode::FilesByContents {
                    s.total_file_count += 1;
                    s.total_size = s.total_size.saturating_add(size);
                    return Ok(());
                }
                let key: [u8; 16] = blake3::hash(path).as_bytes()[..16].try_into().expect("16 of 32 bytes");
                for c in content {
                    let pos = position(self.index, BlobType::Data, &c.id)?;
                    let next = self.paths.len();
                    let number = *self.paths.entry(key).or_insert_with(|| {
                        s.total_file_count += 1;
                        next
                    });
                    if self.refs.insert((number, pos)) {
                        s.total_blob_count += 1;
                        s.total_size = s.total_size.saturating_add(c.len as u64);
                    }
                }
            }
        }
        Ok(())
    }

    /// raw-data: count blob `id` (of `plain` bytes) unless it was counted already.
    fn count_blob(&mut self, t: BlobType, id: &Id, plain: u64) -> Result<()> {
        let pos = position(self.index, t, id)?;
        let (word, bit) = (pos / 64, 1u64 << (pos % 64));
        if self.used[word] & bit != 0 {
            return Ok(());
        }
        self.used[word] |= bit;
        let stored = self.index.at(pos).2 as u64;
        let s = &mut self.stats;
        s.total_blob_count += 1;
        s.total_size = s.total_size.saturating_add(stored);
        // Stored without compression: the envelope (nonce, method byte, tag) around the plaintext.
        let envelope = crate::format::SEAL_OVERHEAD as u64 + 1;
        s.total_uncompressed_size = s.total_uncompressed_size.saturating_add(plain + envelope);
        Ok(())
    }

    fn finish(mut self) -> Stats {
        let s = &mut self.stats;
        if self.mode == Mode::RawData && s.total_size > 0 && s.total_uncompressed_size > 0 {
            s.compression_ratio = s.total_uncompressed_size as f64 / s.total_size as f64;
            s.compression_space_saving = (1.0 - s.total_size as f64 / s.total_uncompressed_size as f64) * 100.0;
        }
        self.stats
    }
}

/// The position of a blob in the index; one no index lists is damage.
fn position(index: &Index, t: BlobType, id: &Id) -> Result<usize> {
    index.position(t, id).ok_or_else(|| Error::integrity(blob::describe(t, id), "missing: not in any index"))
}
