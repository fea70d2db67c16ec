//! Replacing a snapshot by a rewritten copy (format-spec/17-consistency.md §17.8), shared by
//! `tag`, `repair snapshots` and `rewrite`; and `rewrite` itself: snapshots without the paths
//! that restic's exclude patterns ([`crate::filter`]) match.
//!
//! Snapshots are content-addressed and never modified: a "changed" snapshot is a new file with
//! the changed fields and `original` naming the snapshot it replaces (the first one, across any
//! number of rewrites), and the old file is removed only after the new one is durable. A crash
//! in between leaves both; they differ only in what the rewrite changed, and a rerun finds the
//! copy it already wrote ([`Existing::save`]) instead of writing a duplicate, then removes the
//! old file.
//!
//! **rewrite** walks each selected snapshot's trees depth first (iteratively, memoised by path
//! and tree, since a pattern's verdict depends on the path), drops every entry whose absolute
//! path a pattern excludes (a directory with everything below it), and stores the trees that
//! changed through the [`Packer`]; its `finish` (packs, then index) completes before any new
//! snapshot is written, and every new snapshot is written before any original is removed
//! (`--forget`). Without `--forget` the copy is tagged `rewrite`, as restic tags it. The data
//! only the removed entries used stays in the repository until `prune` deletes it.

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::filter::Excluder;
use crate::format::blob::BlobType;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{NodeKind, Tree};
use crate::id::Id;
use crate::repo::index::Index;
use crate::repo::packer::Packer;
use crate::repo::walk::MAX_DEPTH;
use crate::repo::Repository;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// `old` as the base of a rewrite: every field kept, and `original` set to the snapshot it
/// descends from — `old`'s own original if it is itself a rewrite, else `old_id`.
pub fn derived(old_id: &Id, old: &Snapshot) -> Snapshot {
    Snapshot { original: Some(old.original.unwrap_or(*old_id)), ..old.clone() }
}

/// The snapshots of the repository by content (BLAKE3 of the body), so that a rewrite that an
/// interrupted earlier run already wrote is found instead of written twice. Removals go through
/// it too, so it never hands out a snapshot this run removed.
#[derive(Debug, Default)]
pub struct Existing {
    by_body: HashMap<Id, Id>,
    /// IDs this run returned as replacements: never removed by it.
    produced: HashSet<Id>,
}

impl Existing {
    /// Index `snapshots` (every readable one, to find copies written by an earlier run).
    pub fn new(snapshots: &[(Id, Snapshot)]) -> Existing {
        let by_body = snapshots.iter().map(|(id, s)| (body_key(s), *id)).collect();
        Existing { by_body, produced: HashSet::new() }
    }

    /// Write `s` durably unless an equal snapshot exists; returns the ID that holds it.
    pub fn save(&mut self, repo: &Repository, s: &Snapshot) -> Result<Id> {
        let key = body_key(s);
        let id = match self.by_body.get(&key) {
            Some(id) => *id,
            None => {
                let id = repo.save_snapshot(s)?;
                self.by_body.insert(key, id);
                id
            }
        };
        self.produced.insert(id);
        Ok(id)
    }

    /// Whether `id` was returned by [`Existing::save`] in this run: it already is a final
    /// result and must not be rewritten or removed again.
    pub fn produced(&self, id: &Id) -> bool {
        self.produced.contains(id)
    }

    /// Remove snapshot `id`, whose replacement is durable; returns whether it is gone. One
    /// already gone (removed by an earlier, interrupted run) counts as removed; a replacement
    /// of this run is never removed (false).
    pub fn remove(&mut self, repo: &Repository, id: &Id) -> Result<bool> {
        if self.produced(id) {
            return Ok(false);
        }
        self.by_body.retain(|_, v| v != id);
        repo.ensure_locks_fresh()?;
        match repo.remove_file(FileType::Snapshot, &id.to_hex()) {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(true),
            r => r.map(|()| true),
        }
    }
}

fn body_key(s: &Snapshot) -> Id {
    Id::of_file_bytes(&s.encode())
}

// ---- rewrite --------------------------------------------------------------------------------

/// The tag restic gives a rewritten copy that is kept beside its original.
pub const REWRITE_TAG: &str = "rewrite";

/// How [`rewrite_snapshots`] runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct RewriteOptions {
    /// Work out what would go, write and remove nothing.
    pub dry_run: bool,
    /// Remove each original once every copy is durable (no `rewrite` tag is added then).
    pub forget: bool,
}

/// One snapshot that loses entries.
#[derive(Clone, Debug, Serialize)]
pub struct RewrittenSnapshot {
    /// The snapshot rewritten.
    pub old: Id,
    /// Its copy without the excluded entries (None in a dry run).
    pub new: Option<Id>,
    /// The absolute paths removed (a directory stands for everything below it), sorted.
    #[serde(serialize_with = "lossy_paths")]
    pub removed: Vec<Vec<u8>>,
    /// Whether the original was removed (`--forget`).
    pub forgotten: bool,
}

fn lossy_paths<S: serde::Serializer>(paths: &[Vec<u8>], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(paths.iter().map(|p| String::from_utf8_lossy(p)))
}

/// What [`rewrite_snapshots`] did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RewriteReport {
    /// Snapshots that lost entries, in the order given.
    pub rewritten: Vec<RewrittenSnapshot>,
    /// Selected snapshots no pattern touched (left as they are).
    pub unchanged: usize,
}

/// Rewrite `targets` without the entries `excluder` matches. The caller holds a lock: exclusive
/// with `forget`; `all` is every readable snapshot, to find copies an interrupted earlier run
/// wrote.
pub fn rewrite_snapshots(
    repo: &Repository,
    all: &[(Id, Snapshot)],
    targets: &[(Id, Snapshot)],
    excluder: &Excluder,
    opts: RewriteOptions,
) -> Result<RewriteReport> {
    repo.refuse_during_rotation("rewrite snapshots")?;
    let index = repo.load_index()?;
    let packer = Packer::new(repo);
    let mut filter =
        TreeFilter { repo, index: &index, packer: &packer, excluder, store: !opts.dry_run, memo: HashMap::new() };
    let mut report = RewriteReport::default();
    let mut planned = Vec::new();
    for (id, s) in targets {
        let (root, removed) = filter.filter(s.tree)?;
        if root == s.tree {
            report.unchanged += 1;
            continue;
        }
        let mut removed = removed.to_vec();
        removed.sort();
        planned.push((id, s, root));
        report.rewritten.push(RewrittenSnapshot { old: *id, new: None, removed, forgotten: false });
    }
    if opts.dry_run {
        return Ok(report);
    }
    // Packs and their index are durable before any snapshot names the new trees.
    packer.finish()?;
    let mut existing = Existing::new(all);
    for ((id, s, root), r) in planned.iter().zip(&mut report.rewritten) {
        let mut tags = s.tags.clone();
        if !opts.forget {
            tags.push(REWRITE_TAG.to_string());
            tags.sort();
            tags.dedup();
        }
        let new = Snapshot { tree: *root, tags, ..derived(id, s) };
        r.new = Some(existing.save(repo, &new)?);
    }
    if opts.forget {
        // Every copy is durable: the originals may go.
        for r in &mut report.rewritten {
            r.forgotten = existing.remove(repo, &r.old)?;
        }
    }
    Ok(report)
}

/// Paths removed below a tree, shared between the snapshots that hold it.
type Removed = Arc<[Vec<u8>]>;

/// Filters trees, each (path, tree) once.
struct TreeFilter<'a> {
    repo: &'a Repository,
    index: &'a Index,
    packer: &'a Packer<'a>,
    excluder: &'a Excluder,
    /// Whether changed trees are stored (not in a dry run: their IDs are still computed).
    store: bool,
    memo: HashMap<(Vec<u8>, Id), (Id, Removed)>,
}

/// A tree being filtered: its path, its entries, the next entry to look at, and what was
/// removed below it so far.
struct Frame {
    path: Vec<u8>,
    id: Id,
    tree: Tree,
    next: usize,
    keep: Vec<bool>,
    removed: Vec<Vec<u8>>,
}

impl TreeFilter<'_> {
    /// The root tree `root` without the excluded entries: its new ID and what was removed.
    /// Depth first and iterative, so a deep tree needs no deep stack.
    fn filter(&mut self, root: Id) -> Result<(Id, Removed)> {
        let mut stack = vec![self.frame(Vec::new(), root)?];
        loop {
            let top = stack.last_mut().expect("popped only when done");
            if top.next == top.tree.nodes.len() {
                let done = stack.pop().expect("checked above");
                let key = (done.path.clone(), done.id);
                let result = self.finish(done)?;
                self.memo.insert(key, result.clone());
                match stack.last_mut() {
                    Some(parent) => adopt(parent, result),
                    None => return Ok(result),
                }
                continue;
            }
            let node = &top.tree.nodes[top.next];
            let path = [top.path.as_slice(), b"/", node.name.as_slice()].concat();
            if self.excluder.excludes(&path) {
                top.keep[top.next] = false;
                top.removed.push(path);
                top.next += 1;
                continue;
            }
            let NodeKind::Dir { subtree } = node.kind else {
                top.next += 1;
                continue;
            };
            if let Some(result) = self.memo.get(&(path.clone(), subtree)).cloned() {
                adopt(top, result);
                continue;
            }
            if stack.len() > MAX_DEPTH as usize {
                return Err(Error::InvalidArgument(format!(
                    "{}: nested deeper than {MAX_DEPTH} directories (format-spec 19.1)",
                    String::from_utf8_lossy(&path)
                )));
            }
            stack.push(self.frame(path, subtree)?);
        }
    }

    fn frame(&self, path: Vec<u8>, id: Id) -> Result<Frame> {
        let tree = self.repo.read_tree(self.index, &id)?;
        let keep = vec![true; tree.nodes.len()];
        Ok(Frame { path, id, tree, next: 0, keep, removed: Vec::new() })
    }

    /// The filtered tree of a finished frame: its own ID if nothing below it changed, else the
    /// new tree's (stored unless a dry run).
    fn finish(&self, f: Frame) -> Result<(Id, Removed)> {
        let removed: Removed = f.removed.into();
        if removed.is_empty() {
            return Ok((f.id, removed));
        }
        let nodes = f.tree.nodes.into_iter().zip(f.keep).filter_map(|(n, k)| k.then_some(n)).collect();
        let plain = Tree { nodes }.encode();
        let id = self.repo.keys().blob_id(&plain);
        if self.store {
            self.packer.store(self.index, BlobType::Tree, &id, &plain)?;
        }
        Ok((id, removed))
    }
}

/// Put a filtered subtree into the entry of `parent` being looked at, and move on.
fn adopt(parent: &mut Frame, (id, removed): (Id, Removed)) {
    if let NodeKind::Dir { subtree } = &mut parent.tree.nodes[parent.next].kind {
        *subtree = id;
    }
    parent.removed.extend(removed.iter().cloned());
    parent.next += 1;
}
