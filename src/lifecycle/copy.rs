//! `arca copy`: copy snapshots into another repository, which has its own keys
//! (format-spec/17-consistency.md §17.10).
//!
//! Blob IDs are keyed per repository (format-spec/03 §3.3), so a source blob's ID means nothing
//! in the destination: every blob of a snapshot being copied is decrypted, its destination ID
//! computed with the destination's key, and it is stored only if the destination lacks it. Trees
//! name their children by ID, so each tree is decoded, its child IDs mapped, re-encoded and
//! identified again, after all its children (each distinct tree once per run, memoised).
//!
//! The caller holds a shared lock on the source and, unless dry-running, a shared (backup)
//! lock on the destination; each snapshot is committed as a backup is: packs, then index
//! files, then the snapshot.

use crate::error::{Error, Result};
use crate::format::blob::{self, BlobType};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{ChunkRef, NodeKind, Tree};
use crate::id::Id;
use crate::repo::index::Index;
use crate::repo::packer::Packer;
use crate::repo::walk::MAX_DEPTH;
use crate::repo::Repository;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Whether `dst` is a copy of `src` (§17.10): every field a copy keeps unchanged is equal —
/// time, host, user name and IDs, paths, tags, writer and summary (whose start and end times in
/// nanoseconds make an accidental match implausible). Tree, parent and original are IDs of one
/// repository and differ by nature.
pub fn is_copy_of(dst: &Snapshot, src: &Snapshot) -> bool {
    dst.time == src.time
        && dst.hostname == src.hostname
        && dst.username == src.username
        && dst.uid == src.uid
        && dst.gid == src.gid
        && dst.paths == src.paths
        && dst.tags == src.tags
        && dst.program == src.program
        && dst.summary == src.summary
}

/// What happened to one source snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Copied (or, in a dry run, would be).
    Copied,
    /// The destination already holds a copy.
    Skipped,
    /// The source snapshot is damaged (a tree or blob it needs cannot be read): nothing of it
    /// was committed, and the run went on with the others.
    Damaged,
}

/// One source snapshot and its destination counterpart.
#[derive(Clone, Debug, Serialize)]
pub struct CopiedSnapshot {
    /// The source snapshot.
    pub source: Id,
    /// Its copy in the destination: the one found, or the one written (`None` in a dry run).
    pub destination: Option<Id>,
    /// Copied or skipped.
    pub outcome: Outcome,
    /// Blobs stored in the destination for this snapshot (would be, in a dry run).
    pub blobs: u64,
    /// Their plaintext bytes.
    pub bytes: u64,
    /// Why a damaged snapshot was not copied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The result of a copy run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CopyReport {
    /// Each selected snapshot, in the order processed (oldest first).
    pub snapshots: Vec<CopiedSnapshot>,
    /// Blobs stored in the destination (would be, in a dry run).
    pub blobs: u64,
    /// Their plaintext bytes.
    pub bytes: u64,
    /// Bytes written to destination packs (after compression and encryption; 0 in a dry run).
    pub stored_bytes: u64,
    /// Packs written.
    pub packs: u64,
    /// Packs an interrupted earlier run (or backup) left unindexed that this run adopted.
    pub adopted_packs: usize,
    /// Nothing was written.
    pub dry_run: bool,
}

/// Copy options.
#[derive(Clone, Copy, Debug, Default)]
pub struct CopyOptions<'a> {
    /// Decide and count, but write nothing to the destination.
    pub dry_run: bool,
    /// Source and destination are two key generations of one repository (a key rotation,
    /// format-spec/25): the same repository ID is expected, not refused.
    pub within: bool,
    /// Bytes of data blobs read, of those found to copy so far (each snapshot's are found
    /// before they are copied).
    pub progress: Option<&'a crate::progress::Meter>,
}

/// Copy `chosen` (source snapshots; copied oldest first) from `src` into `dst`, skipping those the
/// destination already has a copy of. `all` is every readable source snapshot (to map parents).
/// `on_done` is told about each snapshot as soon as it is committed or skipped.
pub fn copy(
    src: &Repository,
    dst: &Repository,
    all: &[(Id, Snapshot)],
    chosen: &[(Id, Snapshot)],
    opts: CopyOptions,
    on_done: &mut dyn FnMut(&CopiedSnapshot),
) -> Result<CopyReport> {
    if src.repo_id() == dst.repo_id() && !opts.within {
        return Err(Error::InvalidArgument(
            "the source and destination are the same repository (same repository ID)".into(),
        ));
    }
    let mut report = CopyReport { dry_run: opts.dry_run, ..CopyReport::default() };
    let mut existing = Copies::new(opts.within);
    for (id, d) in dst.list_snapshots()? {
        existing.add(id, d);
    }
    let by_id: HashMap<Id, &Snapshot> = all.iter().map(|(id, s)| (*id, s)).collect();
    // Oldest first, as listed: a parent is copied before its children and can be named.
    let mut chosen = chosen.to_vec();
    chosen.sort_by_key(|(id, s)| (s.time, *id));
    let chosen = &chosen[..];
    // Indexes are loaded only when there is something to copy: a repeated copy stays cheap.
    let mut copier = match chosen.iter().all(|(id, s)| existing.find(id, s).is_some()) {
        true => None,
        false => Some(Copier::new(src, dst, opts)?),
    };
    if let Some(c) = &copier {
        report.adopted_packs = c.adopted;
    }
    for (id, s) in chosen {
        if let Some(d) = existing.find(id, s) {
            let done = CopiedSnapshot {
                source: *id,
                destination: Some(d),
                outcome: Outcome::Skipped,
                blobs: 0,
                bytes: 0,
                error: None,
            };
            on_done(&done);
            report.snapshots.push(done);
            continue;
        }
        let c = copier.as_mut().expect("created when a snapshot needs copying");
        let (blobs, bytes) = (c.blobs.load(Relaxed), c.bytes.load(Relaxed));
        let tree = match c.copy_tree(&s.tree) {
            Ok(tree) => tree,
            // One damaged snapshot must not keep every later one from reaching the destination:
            // it is reported and the run goes on. Other errors (I/O, locks) stop the run.
            Err(e @ Error::Integrity { .. }) => {
                let error = Some(in_snapshot(e, id).to_string());
                let done = CopiedSnapshot {
                    source: *id,
                    destination: None,
                    outcome: Outcome::Damaged,
                    blobs: 0,
                    bytes: 0,
                    error,
                };
                on_done(&done);
                report.snapshots.push(done);
                continue;
            }
            Err(e) => return Err(e),
        };
        // The parent, if its copy is known, keeps its meaning in the destination; else none.
        let parent = s.parent.and_then(|p| existing.find(&p, by_id.get(&p)?));
        // Within one repository (a key rotation) the copy names its source, so that a rerun
        // finds exactly it, never another snapshot with the same fields (format-spec/25 §25.5).
        let original = opts.within.then_some(*id);
        let new = Snapshot { tree, parent, original, ..s.clone() };
        let destination = match opts.dry_run {
            true => None,
            false => {
                // Commit order (§17.2): packs and index files are durable before the snapshot.
                c.packer.finish()?;
                Some(dst.save_snapshot(&new)?)
            }
        };
        if let Some(d) = destination {
            existing.add(d, new);
        }
        let done = CopiedSnapshot {
            source: *id,
            destination,
            outcome: Outcome::Copied,
            blobs: c.blobs.load(Relaxed) - blobs,
            bytes: c.bytes.load(Relaxed) - bytes,
            error: None,
        };
        on_done(&done);
        report.snapshots.push(done);
    }
    if let Some(c) = copier {
        report.blobs = c.blobs.load(Relaxed);
        report.bytes = c.bytes.load(Relaxed);
        let stats = c.packer.stats();
        report.stored_bytes = stats.stored_bytes;
        report.packs = stats.packs;
    }
    Ok(report)
}

/// Destination snapshots by time, to find copies without comparing every pair; within one
/// repository, by the source each names as its `original`.
struct Copies {
    by_time: HashMap<i64, Vec<(Id, Snapshot)>>,
    by_source: Option<HashMap<Id, Id>>,
}

impl Copies {
    fn new(within: bool) -> Copies {
        Copies { by_time: HashMap::new(), by_source: within.then(HashMap::new) }
    }

    fn add(&mut self, id: Id, s: Snapshot) {
        if let (Some(m), Some(source)) = (&mut self.by_source, s.original) {
            m.insert(source, id);
        }
        self.by_time.entry(s.time).or_default().push((id, s));
    }

    /// The destination copy of source snapshot `source_id` (`s`), if any.
    fn find(&self, source_id: &Id, s: &Snapshot) -> Option<Id> {
        if let Some(m) = &self.by_source {
            return m.get(source_id).copied();
        }
        self.by_time.get(&s.time)?.iter().find(|(_, d)| is_copy_of(d, s)).map(|(id, _)| *id)
    }
}

fn in_snapshot(e: Error, id: &Id) -> Error {
    match e {
        Error::Integrity { object, reason } => {
            Error::integrity(object, format!("{reason} (copying snapshot {}; nothing of it was committed)", id.short()))
        }
        e => e,
    }
}

/// The state of one run: both repositories, the destination's packer and the memo of source
/// blobs already mapped to destination blobs.
struct Copier<'r> {
    src: &'r Repository,
    src_index: Index,
    dst: &'r Repository,
    dst_index: Index,
    packer: Packer<'r>,
    dry_run: bool,
    /// Source data blob -> destination chunk(s): one, or several when the source chunk is larger
    /// than the destination's largest chunk.
    data: HashMap<Id, Mapped>,
    /// Source tree -> destination tree.
    trees: HashMap<Id, Id>,
    blobs: AtomicU64,
    bytes: AtomicU64,
    adopted: usize,
    meter: Option<&'r crate::progress::Meter>,
}

/// Source trees still to copy, each with its distinct subtrees still to copy.
type TreeGraph = HashMap<Id, Vec<Id>>;

/// Where a source data blob went.
enum Mapped {
    One(Id, u32),
    Split(Vec<ChunkRef>),
}

impl<'r> Copier<'r> {
    fn new(src: &'r Repository, dst: &'r Repository, opts: CopyOptions<'r>) -> Result<Copier<'r>> {
        let src_index = src.load_index()?;
        // As a backup does (§17.6): leftovers of crashed writers are only touched when alone.
        let alone = !opts.dry_run && dst.alone_in_repository().unwrap_or(false);
        if alone {
            let _ = dst.backend().clean_tmp(crate::backend::local::TMP_MAX_AGE);
        }
        let mut dst_index = dst.load_index()?;
        let packer = Packer::new(dst);
        let adopted = match alone {
            true => crate::archiver::adopt_unindexed(dst, &mut dst_index, &packer)?,
            false => 0,
        };
        Ok(Copier {
            src,
            src_index,
            dst,
            dst_index,
            packer,
            dry_run: opts.dry_run,
            data: HashMap::new(),
            trees: HashMap::new(),
            blobs: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            adopted,
            meter: opts.progress,
        })
    }

    /// Store a blob in the destination unless it is there already (or, dry-running, count it).
    fn store(&self, t: BlobType, id: &Id, plain: &[u8]) -> Result<()> {
        let added = match self.dry_run {
            true => self.packer.reserve(&self.dst_index, t, id),
            false => self.packer.store(&self.dst_index, t, id, plain)?,
        };
        if added {
            self.blobs.fetch_add(1, Relaxed);
            self.bytes.fetch_add(plain.len() as u64, Relaxed);
        }
        Ok(())
    }

    /// Copy the tree `root` and everything below it; returns the destination root.
    fn copy_tree(&mut self, root: &Id) -> Result<Id> {
        if let Some(d) = self.trees.get(root) {
            return Ok(*d);
        }
        let (graph, data) = self.discover(*root)?;
        self.copy_data(data)?;
        self.copy_trees(graph)?;
        Ok(self.trees[root])
    }

    /// Every tree below `root` not yet copied in this run (with its distinct unmapped subtrees),
    /// and the data blobs they name that are not mapped yet. Read level by level, in parallel,
    /// each distinct tree once; no deeper than the format allows (format-spec 19).
    fn discover(&self, root: Id) -> Result<(TreeGraph, Vec<Id>)> {
        let mut graph: HashMap<Id, Vec<Id>> = HashMap::new();
        let mut data: HashSet<Id> = HashSet::new();
        let mut level = vec![root];
        let mut depth = 0u32;
        while !level.is_empty() {
            if depth > MAX_DEPTH + 1 {
                return Err(Error::integrity(
                    blob::describe(BlobType::Tree, &root),
                    format!("directories nested deeper than {MAX_DEPTH} levels (format-spec 19)"),
                ));
            }
            let read: Vec<(Id, Vec<Id>, Vec<Id>)> = level
                .par_iter()
                .map(|id| {
                    let tree = self.src.read_tree(&self.src_index, id)?;
                    let (mut subs, mut chunks) = (Vec::new(), Vec::new());
                    for n in &tree.nodes {
                        match &n.kind {
                            NodeKind::Dir { subtree } if !self.trees.contains_key(subtree) => subs.push(*subtree),
                            NodeKind::File { content, .. } => {
                                chunks.extend(content.iter().map(|c| c.id).filter(|c| !self.data.contains_key(c)))
                            }
                            _ => {}
                        }
                    }
                    subs.sort_unstable();
                    subs.dedup();
                    Ok((*id, subs, chunks))
                })
                .collect::<Result<_>>()?;
            let mut next = Vec::new();
            for (id, subs, chunks) in read {
                data.extend(chunks);
                next.extend(subs.iter().copied());
                graph.insert(id, subs);
            }
            next.sort_unstable();
            next.dedup();
            next.retain(|id| !graph.contains_key(id));
            level = next;
            depth += 1;
        }
        Ok((graph, data.into_iter().collect()))
    }

    /// Re-identify and store data blobs, in parallel, read in source pack order.
    fn copy_data(&mut self, mut ids: Vec<Id>) -> Result<()> {
        let src_index = &self.src_index;
        ids.sort_by_cached_key(|id| src_index.lookup(BlobType::Data, id).map(|l| (l.pack, l.offset)));
        // Progress in stored (envelope) bytes: known from the index before anything is read.
        let stored = |id: &Id| src_index.lookup(BlobType::Data, id).map_or(0, |l| u64::from(l.len));
        if let Some(m) = self.meter {
            m.more(ids.iter().map(stored).sum());
        }
        let this = &*self;
        let copy_one = |id: &Id| {
            let mapped = this.copy_data_blob(id)?;
            if let Some(m) = this.meter {
                m.add(stored(id));
            }
            Ok((*id, mapped))
        };
        let mapped: Vec<(Id, Mapped)> = ids.par_iter().map(copy_one).collect::<Result<_>>()?;
        self.data.extend(mapped);
        Ok(())
    }

    /// One data blob: decrypt, and store under its destination ID. With equal compression
    /// levels the source's framing is sealed as it is (no second compression). A chunk larger
    /// than the destination's largest chunk (its readers refuse those) is split into pieces.
    fn copy_data_blob(&self, id: &Id) -> Result<Mapped> {
        let (framed, plain) = self.src.read_blob_framed(&self.src_index, BlobType::Data, id)?;
        let max = self.dst.config().chunker.max_size as usize;
        if plain.len() <= max {
            let did = self.dst.keys().blob_id(&plain);
            match self.src.config().compression_level == self.dst.config().compression_level {
                true => self.store_framed(&did, &framed, plain.len())?,
                false => self.store(BlobType::Data, &did, &plain)?,
            }
            return Ok(Mapped::One(did, plain.len() as u32));
        }
        let mut refs = Vec::new();
        for piece in plain.chunks(max) {
            let did = self.dst.keys().blob_id(piece);
            self.store(BlobType::Data, &did, piece)?;
            refs.push(ChunkRef { id: did, len: piece.len() as u32 });
        }
        Ok(Mapped::Split(refs))
    }

    /// [`Copier::store`] for a data blob whose framed plaintext is at hand.
    fn store_framed(&self, id: &Id, framed: &[u8], plain_len: usize) -> Result<()> {
        if !self.packer.reserve(&self.dst_index, BlobType::Data, id) {
            return Ok(());
        }
        if !self.dry_run {
            let env = self.dst.seal_framed_blob(BlobType::Data, id, framed)?;
            self.packer.add_sealed(BlobType::Data, *id, plain_len as u32, &env)?;
        }
        self.blobs.fetch_add(1, Relaxed);
        self.bytes.fetch_add(plain_len as u64, Relaxed);
        Ok(())
    }

    /// Copy the trees of `graph` children first: in rounds, each the trees whose subtrees are
    /// all copied (in parallel), so no recursion and each tree once.
    fn copy_trees(&mut self, graph: TreeGraph) -> Result<()> {
        let mut waiting: HashMap<Id, usize> = HashMap::with_capacity(graph.len());
        let mut parents: HashMap<Id, Vec<Id>> = HashMap::new();
        let mut ready = Vec::new();
        for (id, subs) in &graph {
            waiting.insert(*id, subs.len());
            if subs.is_empty() {
                ready.push(*id);
            }
            for s in subs {
                parents.entry(*s).or_default().push(*id);
            }
        }
        while !ready.is_empty() {
            let this = &*self;
            let done: Vec<(Id, Id)> =
                ready.par_iter().map(|id| Ok((*id, this.copy_one_tree(id)?))).collect::<Result<_>>()?;
            let mut next = Vec::new();
            for (id, _) in &done {
                for p in parents.get(id).into_iter().flatten() {
                    let n = waiting.get_mut(p).expect("every parent is in the graph");
                    *n -= 1;
                    if *n == 0 {
                        next.push(*p);
                    }
                }
            }
            self.trees.extend(done);
            ready = next;
        }
        Ok(())
    }

    /// Read one source tree, map its child IDs, store it; returns its destination ID.
    fn copy_one_tree(&self, id: &Id) -> Result<Id> {
        let mut tree: Tree = self.src.read_tree(&self.src_index, id)?;
        let what = || blob::describe(BlobType::Tree, id);
        for node in &mut tree.nodes {
            match &mut node.kind {
                NodeKind::Dir { subtree } => {
                    *subtree =
                        *self.trees.get(subtree).ok_or_else(|| Error::integrity(what(), "subtree not copied"))?;
                }
                NodeKind::File { content, .. } => {
                    let mut mapped = Vec::with_capacity(content.len());
                    for c in content.iter() {
                        match self.data.get(&c.id) {
                            Some(Mapped::One(d, len)) if *len == c.len => mapped.push(ChunkRef { id: *d, len: *len }),
                            Some(Mapped::Split(refs))
                                if refs.iter().map(|r| r.len as u64).sum::<u64>() == c.len as u64 =>
                            {
                                mapped.extend_from_slice(refs)
                            }
                            Some(_) => {
                                return Err(Error::integrity(
                                    what(),
                                    format!(
                                        "a chunk of {} bytes differs from the tree's length {}",
                                        c.id.short(),
                                        c.len
                                    ),
                                ))
                            }
                            None => return Err(Error::integrity(what(), "chunk not copied")),
                        }
                    }
                    *content = mapped;
                }
                _ => {}
            }
        }
        let bytes = tree.encode();
        if bytes.len() > crate::format::tree::MAX_TREE_LEN {
            return Err(Error::InvalidArgument(format!(
                "{} would exceed the format's tree limit in the destination ({} bytes)",
                what(),
                bytes.len()
            )));
        }
        let did = self.dst.keys().blob_id(&bytes);
        self.store(BlobType::Tree, &did, &bytes)?;
        Ok(did)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::snapshot::Summary;

    fn snap() -> Snapshot {
        Snapshot {
            time: 1_700_000_000_123_456_789,
            tree: Id([1; 32]),
            paths: vec![b"/srv".to_vec()],
            hostname: "h".into(),
            username: "u".into(),
            uid: 1,
            gid: 2,
            tags: vec!["db".into()],
            parent: None,
            program: "arca 0.1.0".into(),
            summary: Summary { started: 5, finished: 9, ..Summary::default() },
            original: None,
        }
    }

    #[test]
    fn a_copy_differs_only_in_its_ids() {
        let s = snap();
        let copy = Snapshot { tree: Id([7; 32]), parent: Some(Id([8; 32])), original: Some(Id([9; 32])), ..snap() };
        assert!(is_copy_of(&copy, &s));
        assert!(!is_copy_of(&Snapshot { tags: vec![], ..snap() }, &s));
        assert!(!is_copy_of(&Snapshot { time: s.time + 1, ..snap() }, &s));
        assert!(!is_copy_of(&Snapshot { hostname: "other".into(), ..snap() }, &s));
        let summary = Summary { finished: 10, ..s.summary.clone() };
        assert!(!is_copy_of(&Snapshot { summary, ..snap() }, &s));
    }
}
