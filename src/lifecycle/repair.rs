//! Recovery from damage: `arca repair index` rebuilds the index from the packs' own tables of
//! contents (format-spec/10-index.md §10.4, 17-consistency.md §17.9); `arca repair snapshots`
//! rewrites damaged snapshots without what they lost (§17.8).
//!
//! **repair index** lists the old index files first, reads every pack's TOC (in parallel; with
//! `read_all_packs` the whole pack, verified), writes the new index files durably, and only then
//! removes every old index file. A pack whose TOC cannot be read is left out and named; its blobs
//! become missing, which `repair snapshots` then cuts from the snapshots that need them.
//!
//! **repair snapshots** needs an index that matches the packs (run `repair index` first; it
//! refuses otherwise, so that it never cuts data a rebuilt index would find). It reads each
//! distinct tree of the selected snapshots once (level by level, in parallel), notes what is
//! damaged, and rewrites bottom-up only the trees on a path to damage (iteratively, memoised by
//! tree ID), so unchanged subtrees keep their IDs:
//!
//! - a directory whose tree is missing or does not read or decode becomes an empty directory
//!   (its own metadata kept), as in restic;
//! - a file whose content names data blobs missing from the index keeps its other chunks, in
//!   order, and its size becomes their sum — restic's documented "removed missing content": the
//!   file restores shorter, the lost ranges closed up, rather than vanishing with everything
//!   that survived. Data blobs are not read: one that is indexed but corrupt in its pack is
//!   found by `check --read-data`, not here.
//!
//! New trees go through the [`Packer`]; its `finish` (packs, then index) completes before any new
//! snapshot is written, each new snapshot (tag `repaired`, `original` set) is written before any
//! old one is removed (`forget`).

use super::rewrite::{self, Existing};
use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::blob::{describe, BlobType};
use crate::format::index::IndexPack;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{NodeKind, Tree};
use crate::id::Id;
use crate::repo::index::Index;
use crate::repo::packer::{Packer, INDEX_FILE_BLOBS};
use crate::repo::{walk, Repository};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

// ---- repair index -------------------------------------------------------------------------------

/// Options of [`repair_index`].
#[derive(Clone, Copy, Debug, Default)]
pub struct IndexRepairOptions {
    /// Read every pack whole and verify it (its hash, every blob) before indexing it, instead of
    /// reading only its table of contents.
    pub read_all_packs: bool,
}

/// A pack left out of the rebuilt index.
#[derive(Clone, Debug, Serialize)]
pub struct BadPack {
    /// The pack.
    pub pack: Id,
    /// Why it could not be indexed.
    pub error: String,
    /// Blobs a readable old index file listed in it: they are missing now.
    pub blobs_lost: usize,
}

/// What [`repair_index`] did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IndexRepairReport {
    /// Packs in the new index.
    pub packs: usize,
    /// Blob entries in the new index.
    pub blobs: usize,
    /// Packs that no readable old index file named (left by an interrupted backup, or listed
    /// only in a damaged or deleted index file), now indexed.
    pub adopted: Vec<Id>,
    /// Packs an old index file named that do not exist: their entries are gone.
    pub dropped: Vec<Id>,
    /// Packs that could not be indexed.
    pub unreadable: Vec<BadPack>,
    /// Old index files that could not be read (each error names its file); removed.
    pub damaged_index_files: Vec<String>,
    /// Parity files of lost files removed as superseded (format-spec/22 §22.8).
    pub parity_removed: usize,
    /// New index files.
    pub written: Vec<Id>,
    /// Old index files removed.
    pub removed: usize,
}

/// Rebuild the index from the packs (the caller holds an exclusive lock). Idempotent: a second
/// run indexes the same packs and blobs.
pub fn repair_index(repo: &Repository, opts: IndexRepairOptions) -> Result<IndexRepairReport> {
    repo.refuse_during_rotation("repair the index")?;
    let mut r = IndexRepairReport::default();
    // Listed before anything is written: exactly these files are replaced.
    let old_files = repo.index_ids()?;
    let old_packs = old_index(repo, &old_files, &mut r)?;
    let mut packs: Vec<(Id, u64)> = repo
        .list_objects(FileType::Pack)?
        .into_iter()
        .filter_map(|(name, len)| Id::from_hex(&name).map(|id| (id, len)))
        .collect();
    packs.sort();
    let on_disk: HashSet<Id> = packs.iter().map(|(id, _)| *id).collect();
    r.dropped = old_packs.keys().filter(|id| !on_disk.contains(id)).copied().collect();
    r.dropped.sort();
    for id in &r.dropped {
        stop_if_parity_repairs(repo, id)?;
    }
    let mut runs = IndexRuns::default();
    // Bounded batches: at most this many packs' records are in memory besides the current run.
    for batch in packs.chunks(256) {
        let read: Vec<(Id, Result<IndexPack>)> = batch
            .par_iter()
            .map(|(id, len)| {
                let res = if opts.read_all_packs { repo.verify_pack(id) } else { repo.read_pack_toc(id, *len) };
                (*id, res)
            })
            .collect();
        for (id, res) in read {
            match res {
                Ok(record) => {
                    if !old_packs.contains_key(&id) {
                        r.adopted.push(id);
                    }
                    r.packs += 1;
                    r.blobs += record.blobs.len();
                    runs.push(repo, record, &mut r.written)?;
                }
                // A file under a pack's name without the ARCA magic is no pack: damage too
                // (planted garbage must not stop the rebuild).
                Err(e @ (Error::Integrity { .. } | Error::NotARepository(_))) => {
                    stop_if_parity_repairs(repo, &id)?;
                    let blobs_lost = old_packs.get(&id).copied().unwrap_or(0);
                    r.unreadable.push(BadPack { pack: id, error: e.to_string(), blobs_lost });
                }
                // Not damage (permissions, I/O): stop before anything is removed.
                Err(e) => return Err(e),
            }
        }
    }
    runs.finish(repo, &mut r.written)?;
    // Every new index file is durable: now the old ones may go (§17.9).
    let written: HashSet<Id> = r.written.iter().copied().collect();
    for id in old_files.iter().filter(|id| !written.contains(id)) {
        repo.ensure_locks_fresh()?;
        match repo.remove_file(FileType::Index, &id.to_hex()) {
            Ok(()) => r.removed += 1,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    // Lost index files are superseded too: their parity must not bring them back.
    r.parity_removed = super::heal::drop_superseded_parity(repo)?;
    Ok(r)
}

/// A damaged or missing pack that its parity rebuilds must not be left out of the index (its
/// data would then be cut from snapshots and pruned): stop, and say to run `repair packs`. The
/// index files written so far are complete and valid; the old ones are all still there.
fn stop_if_parity_repairs(repo: &Repository, id: &Id) -> Result<()> {
    match repo.assess(crate::format::header::FileKind::Pack, id)? {
        crate::repo::parity::Assessment::Repairable { .. } => Err(Error::integrity(
            format!("pack {id}"),
            "damaged or missing, but its parity rebuilds it: run `arca repair packs` first; repair index stopped and removed nothing",
        )),
        _ => Ok(()),
    }
}

/// Blob counts per pack from the old index files that can be read; the others are recorded as
/// damaged (they are replaced like the rest). I/O errors stop the repair.
fn old_index(repo: &Repository, files: &[Id], r: &mut IndexRepairReport) -> Result<HashMap<Id, usize>> {
    let loaded: Vec<Result<Vec<IndexPack>>> = files.par_iter().map(|id| repo.load_index_file(id)).collect();
    let mut packs = HashMap::new();
    for res in loaded {
        match res {
            Ok(records) => {
                for p in records {
                    let n = packs.entry(p.id).or_insert(0);
                    *n = p.blobs.len().max(*n);
                }
            }
            Err(e @ Error::Integrity { .. }) => r.damaged_index_files.push(e.to_string()),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(packs)
}

/// Index records written as they come, in consecutive runs of at most [`INDEX_FILE_BLOBS`]
/// blobs, never splitting a pack (section 10.1), so a rebuild never holds the whole index.
#[derive(Default)]
struct IndexRuns {
    run: Vec<IndexPack>,
    blobs: usize,
}

impl IndexRuns {
    fn push(&mut self, repo: &Repository, p: IndexPack, written: &mut Vec<Id>) -> Result<()> {
        if !self.run.is_empty() && self.blobs + p.blobs.len() > INDEX_FILE_BLOBS {
            self.finish(repo, written)?;
        }
        self.blobs += p.blobs.len();
        self.run.push(p);
        Ok(())
    }

    fn finish(&mut self, repo: &Repository, written: &mut Vec<Id>) -> Result<()> {
        if !self.run.is_empty() {
            written.push(repo.save_index(&self.run)?);
        }
        self.run.clear();
        self.blobs = 0;
        Ok(())
    }
}

// ---- repair snapshots ---------------------------------------------------------------------------

/// The tag every repaired snapshot gets.
pub const REPAIRED_TAG: &str = "repaired";

/// Most cut paths listed per snapshot; the rest are counted.
pub const MAX_CUT_PATHS: usize = 10_000;

/// Options of [`repair_snapshots`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SnapshotRepairOptions {
    /// Work out and report what would be cut; write and remove nothing.
    pub dry_run: bool,
    /// Remove each damaged snapshot once its replacement is written.
    pub forget: bool,
}

/// What a repair cut at one path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cut {
    /// A directory whose tree is missing or cannot be read or decoded: now an empty directory.
    EmptiedDir {
        /// Why the tree could not be used.
        error: String,
    },
    /// A file whose content named data blobs missing from the index: those chunks are dropped.
    FileContent {
        /// Chunks dropped.
        missing: u64,
        /// Chunks the file had.
        chunks: u64,
        /// Bytes of content dropped.
        lost_bytes: u64,
    },
}

/// One path of a snapshot and what was cut there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CutPath {
    /// Absolute path in the snapshot, raw bytes (`/` for the root).
    pub path: Vec<u8>,
    /// What was cut.
    pub cut: Cut,
}

/// A damaged snapshot and its replacement.
#[derive(Clone, Debug)]
pub struct RepairedSnapshot {
    /// The damaged snapshot.
    pub old: Id,
    /// Its replacement (None on a dry run).
    pub new: Option<Id>,
    /// What was cut, in path order, at most [`MAX_CUT_PATHS`].
    pub cuts: Vec<CutPath>,
    /// Cut paths beyond those listed.
    pub more_cuts: u64,
    /// Whether the damaged snapshot was removed (`forget`).
    pub forgotten: bool,
}

/// What [`repair_snapshots`] did (or would do).
#[derive(Clone, Debug, Default)]
pub struct SnapshotRepairReport {
    /// Damaged snapshots, in the order given.
    pub repaired: Vec<RepairedSnapshot>,
    /// Selected snapshots that needed nothing.
    pub intact: usize,
    /// Selected snapshots that cannot be repaired, and why (e.g. nested past the limits of
    /// format-spec 19); left as they are.
    pub failed: Vec<(Id, String)>,
}

/// Rewrite the damaged snapshots among `targets` (the caller holds an exclusive lock; `all` is
/// every readable snapshot, to find replacements an interrupted earlier run wrote).
pub fn repair_snapshots(
    repo: &Repository,
    all: &[(Id, Snapshot)],
    targets: &[(Id, Snapshot)],
    opts: SnapshotRepairOptions,
) -> Result<SnapshotRepairReport> {
    repo.refuse_during_rotation("repair snapshots")?;
    let index = consistent_index(repo)?;
    let scan = scan_trees(repo, &index, targets.iter().map(|(_, s)| s.tree).collect())?;
    let mut report = SnapshotRepairReport::default();
    let mut sizes = HashMap::new();
    let mut counts = HashMap::new();
    let mut damaged = Vec::new();
    for (id, s) in targets {
        if let Err(e) = walk::measure_with(s.tree, &mut sizes, &mut |t| scan.children(t)) {
            report.failed.push((*id, e.to_string()));
        } else if scan.cut_count(s.tree, &mut counts) == 0 {
            report.intact += 1;
        } else {
            damaged.push((id, s));
        }
    }
    let packer = Packer::new(repo);
    let mut rewriter =
        Rewriter { repo, index: &index, scan: &scan, counts: &counts, packer: &packer, new: HashMap::new() };
    let mut planned = Vec::new();
    for (id, s) in damaged {
        let (cuts, more_cuts) = scan.list_cuts(s.tree, &counts);
        let root = if opts.dry_run { None } else { Some(rewriter.rewrite(s.tree)?) };
        planned.push((*id, s, root));
        report.repaired.push(RepairedSnapshot { old: *id, new: None, cuts, more_cuts, forgotten: false });
    }
    if opts.dry_run {
        return Ok(report);
    }
    // Packs and their index are durable before any snapshot names the new trees.
    packer.finish()?;
    let mut existing = Existing::new(all);
    for ((id, s, root), r) in planned.iter().zip(&mut report.repaired) {
        let mut tags = s.tags.clone();
        tags.push(REPAIRED_TAG.to_string());
        tags.sort();
        tags.dedup();
        let root = root.expect("rewritten unless a dry run");
        let new = Snapshot { tree: root, tags, ..rewrite::derived(id, s) };
        r.new = Some(existing.save(repo, &new)?);
    }
    if opts.forget {
        // Every replacement is durable: the damaged originals may go.
        for r in &mut report.repaired {
            r.forgotten = existing.remove(repo, &r.old)?;
        }
    }
    Ok(report)
}

/// The index, provided it matches the packs: no damaged index file, no pack it names missing
/// or of another length, no pack it does not name. Otherwise blobs would be cut that a rebuilt
/// index finds, or kept where their pack is gone: `repair index` must run first.
fn consistent_index(repo: &Repository) -> Result<Index> {
    let (index, problems) = repo.load_index_reporting()?;
    let mut wrong = problems.iter().map(|e| e.to_string()).collect::<Vec<_>>();
    let on_disk: HashMap<Id, u64> =
        repo.list_objects(FileType::Pack)?.into_iter().filter_map(|(n, len)| Some((Id::from_hex(&n)?, len))).collect();
    let named: HashMap<Id, u64> = index.packs().iter().map(|p| (p.id, p.size as u64)).collect();
    let missing = named.iter().filter(|(id, size)| on_disk.get(id) != Some(size)).count();
    if missing > 0 {
        wrong.push(format!("{missing} packs it names are missing or of another length"));
    }
    // An unindexed pack that is intact could hold what the snapshots need: index it first. One
    // that fails verification was left out by `repair index` on purpose and changes nothing.
    let unindexed = on_disk
        .keys()
        .filter(|id| !named.contains_key(id))
        .filter(|id| repo.read_pack_toc_verified(id).is_ok())
        .count();
    if unindexed > 0 {
        wrong.push(format!("{unindexed} packs are not in it"));
    }
    if !wrong.is_empty() {
        return Err(Error::integrity(
            "index",
            format!("it does not match the packs ({}): run `arca repair index` first", wrong.join("; ")),
        ));
    }
    Ok(index)
}

/// What the repair needs to know about one tree.
enum Scanned {
    /// The tree is missing or does not read or decode: the error.
    Unreadable(String),
    /// Its number of entries, its subdirectories and its files that lost content.
    Read { entries: u64, dirs: Vec<(Vec<u8>, Id)>, files: Vec<(Vec<u8>, Cut)> },
}

/// Every tree reachable from the roots, each read once.
struct Scan {
    trees: HashMap<Id, Scanned>,
}

/// Read every tree reachable from `roots`, level by level, each level in parallel.
fn scan_trees(repo: &Repository, index: &Index, roots: Vec<Id>) -> Result<Scan> {
    let mut trees = HashMap::new();
    let mut level = roots;
    while !level.is_empty() {
        level.sort_unstable();
        level.dedup();
        level.retain(|id| !trees.contains_key(id));
        let read: Vec<(Id, Result<Scanned>)> = level.par_iter().map(|id| (*id, scan_tree(repo, index, id))).collect();
        level = Vec::new();
        for (id, scanned) in read {
            let scanned = scanned?;
            if let Scanned::Read { dirs, .. } = &scanned {
                level.extend(dirs.iter().map(|(_, sub)| *sub));
            }
            trees.insert(id, scanned);
        }
    }
    Ok(Scan { trees })
}

fn scan_tree(repo: &Repository, index: &Index, id: &Id) -> Result<Scanned> {
    let tree = match repo.read_tree(index, id) {
        Ok(t) => t,
        Err(e @ Error::Integrity { .. }) => return Ok(Scanned::Unreadable(e.to_string())),
        // Not damage (I/O): stop rather than cut what may be intact.
        Err(e) => return Err(e),
    };
    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    for n in &tree.nodes {
        match &n.kind {
            NodeKind::Dir { subtree } => dirs.push((n.name.clone(), *subtree)),
            NodeKind::File { content, .. } => {
                let lost: Vec<u64> =
                    content.iter().filter(|c| !index.contains(BlobType::Data, &c.id)).map(|c| c.len as u64).collect();
                if !lost.is_empty() {
                    let cut = Cut::FileContent {
                        missing: lost.len() as u64,
                        chunks: content.len() as u64,
                        lost_bytes: lost.iter().sum(),
                    };
                    files.push((n.name.clone(), cut));
                }
            }
            _ => {}
        }
    }
    Ok(Scanned::Read { entries: tree.nodes.len() as u64, dirs, files })
}

impl Scan {
    /// A tree's entry count and subtrees, for [`walk::measure_with`].
    fn children(&self, id: &Id) -> (u64, Vec<Id>) {
        match self.trees.get(id) {
            Some(Scanned::Read { entries, dirs, .. }) => (*entries, dirs.iter().map(|(_, sub)| *sub).collect()),
            _ => (0, vec![]),
        }
    }

    /// Cuts in `id` itself, and its subtrees.
    fn own(&self, id: &Id) -> (u64, Vec<Id>) {
        match self.trees.get(id) {
            Some(Scanned::Unreadable(_)) => (1, vec![]),
            Some(Scanned::Read { dirs, files, .. }) => (files.len() as u64, dirs.iter().map(|(_, s)| *s).collect()),
            None => (0, vec![]),
        }
    }

    /// Cut paths below `root` (saturating), memoised per tree in `counts`. Iterative; the
    /// caller has measured `root`, so the stack is at most [`walk::MAX_DEPTH`] deep.
    fn cut_count(&self, root: Id, counts: &mut HashMap<Id, u64>) -> u64 {
        walk::memo_sum(root, |id| self.own(id), counts)
    }

    /// The cut paths below `root` in path order (a directory's files before its
    /// subdirectories), at most [`MAX_CUT_PATHS`], and how many more there are. Only subtrees
    /// with cuts are entered, so a shared damaged subtree is listed at each of its paths until
    /// the limit, then counted.
    fn list_cuts(&self, root: Id, counts: &HashMap<Id, u64>) -> (Vec<CutPath>, u64) {
        let total = counts.get(&root).copied().unwrap_or(0);
        let mut out = Vec::new();
        let mut stack = vec![(Vec::new(), root)];
        while let Some((prefix, id)) = stack.pop() {
            if out.len() >= MAX_CUT_PATHS {
                break;
            }
            match self.trees.get(&id) {
                Some(Scanned::Unreadable(error)) => {
                    let path = if prefix.is_empty() { b"/".to_vec() } else { prefix };
                    out.push(CutPath { path, cut: Cut::EmptiedDir { error: error.clone() } });
                }
                Some(Scanned::Read { dirs, files, .. }) => {
                    out.extend(files.iter().map(|(name, cut)| CutPath { path: join(&prefix, name), cut: cut.clone() }));
                    for (name, sub) in dirs.iter().rev() {
                        if counts.get(sub).copied().unwrap_or(0) > 0 {
                            stack.push((join(&prefix, name), *sub));
                        }
                    }
                }
                None => {}
            }
        }
        out.truncate(MAX_CUT_PATHS);
        let more = total.saturating_sub(out.len() as u64);
        (out, more)
    }
}

/// `prefix/name`.
fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    [prefix, b"/", name].concat()
}

/// Rewrites damaged trees bottom-up, each distinct tree once.
struct Rewriter<'a> {
    repo: &'a Repository,
    index: &'a Index,
    scan: &'a Scan,
    counts: &'a HashMap<Id, u64>,
    packer: &'a Packer<'a>,
    /// Old tree ID → its rewritten ID (trees without cuts are never entered: they keep theirs).
    new: HashMap<Id, Id>,
}

impl Rewriter<'_> {
    /// The rewritten `root`: post-order over the trees with cuts, iterative, memoised.
    fn rewrite(&mut self, root: Id) -> Result<Id> {
        if let Some(new) = self.new.get(&root) {
            return Ok(*new);
        }
        let mut stack = vec![(root, self.damaged_children(&root))];
        while let Some((_, pending)) = stack.last_mut() {
            if let Some(child) = pending.pop() {
                if !self.new.contains_key(&child) {
                    let grandchildren = self.damaged_children(&child);
                    stack.push((child, grandchildren));
                }
                continue;
            }
            let (id, _) = stack.pop().expect("checked above");
            if !self.new.contains_key(&id) {
                let new = self.rebuild(&id)?;
                self.new.insert(id, new);
            }
        }
        Ok(self.new[&root])
    }

    fn damaged_children(&self, id: &Id) -> Vec<Id> {
        let mut subs = self.scan.own(id).1;
        subs.retain(|s| self.counts.get(s).copied().unwrap_or(0) > 0);
        subs.sort_unstable();
        subs.dedup();
        subs
    }

    /// The tree `id` with its cuts made and its damaged subtrees replaced, stored.
    fn rebuild(&self, id: &Id) -> Result<Id> {
        let mut tree = match self.scan.trees.get(id) {
            Some(Scanned::Read { .. }) => self.repo.read_tree(self.index, id)?,
            _ => Tree::default(),
        };
        for n in &mut tree.nodes {
            match &mut n.kind {
                NodeKind::Dir { subtree } => {
                    if let Some(new) = self.new.get(subtree) {
                        *subtree = *new;
                    }
                }
                NodeKind::File { size, content } => {
                    content.retain(|c| self.index.contains(BlobType::Data, &c.id));
                    *size = content.iter().map(|c| c.len as u64).sum();
                }
                _ => {}
            }
        }
        self.store(&tree)
    }

    /// Store a rewritten tree. One that is already indexed (an empty directory, say) is reused
    /// only if it reads: the index lists one copy per blob, so a damaged one cannot be shadowed.
    fn store(&self, tree: &Tree) -> Result<Id> {
        let plain = tree.encode();
        let id = self.repo.keys().blob_id(&plain);
        if self.index.contains(BlobType::Tree, &id) {
            self.repo.read_tree(self.index, &id).map_err(|e| {
                Error::integrity(describe(BlobType::Tree, &id), format!("needed by the repair, but unreadable: {e}"))
            })?;
            return Ok(id);
        }
        self.packer.store(self.index, BlobType::Tree, &id, &plain)?;
        Ok(id)
    }
}
