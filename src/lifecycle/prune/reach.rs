//! Reachability: the blobs snapshots use, found breadth-first, each tree read once.

use super::Progress;
use crate::error::{Error, Result};
use crate::format::blob::{self, BlobType};
use crate::format::tree::{NodeKind, Tree};
use crate::id::Id;
use rayon::prelude::*;
use std::sync::atomic::Ordering::Relaxed;

/// One bit per indexed blob: 1 B per 8 blobs.
pub(crate) struct Bitset(Vec<u64>);

impl Bitset {
    pub(crate) fn new(n: usize) -> Bitset {
        Bitset(vec![0; n.div_ceil(64)])
    }

    pub(crate) fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    /// Set bit `i`; true if it was clear.
    pub(crate) fn set(&mut self, i: usize) -> bool {
        let (w, b) = (i / 64, 1u64 << (i % 64));
        let was_clear = self.0[w] & b == 0;
        self.0[w] |= b;
        was_clear
    }

    pub(crate) fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.0.len() * 8
    }
}

/// Trees read in parallel at a time: bounds the decoded trees held in memory.
const TREES_AT_ONCE: usize = 256;

/// Walk the trees below `root` breadth-first. `visit` is called for the root tree and every
/// blob reached; for a tree it answers whether to read it and go below (false once it was
/// seen, which keeps shared subtrees and tree bombs linear).
pub(crate) fn walk(
    root: Id,
    read: &(dyn Fn(&Id) -> Result<Tree> + Sync),
    visit: &mut dyn FnMut(BlobType, &Id) -> Result<bool>,
    progress: &Progress,
) -> Result<()> {
    if !visit(BlobType::Tree, &root)? {
        return Ok(());
    }
    let mut frontier = vec![root];
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for batch in frontier.chunks(TREES_AT_ONCE) {
            let trees: Vec<Result<Tree>> = batch.par_iter().map(read).collect();
            progress.trees.fetch_add(batch.len() as u64, Relaxed);
            for tree in trees {
                for node in tree?.nodes {
                    match node.kind {
                        NodeKind::File { content, .. } => {
                            for c in &content {
                                visit(BlobType::Data, &c.id)?;
                            }
                        }
                        NodeKind::Dir { subtree } if visit(BlobType::Tree, &subtree)? => next.push(subtree),
                        _ => {}
                    }
                }
            }
        }
        frontier = next;
    }
    Ok(())
}

/// A snapshot needs a blob that no index lists: prune must stop before deleting anything.
pub(crate) fn missing(snapshot: &Id, t: BlobType, id: &Id) -> Error {
    Error::integrity(
        format!("snapshot {}", snapshot.short()),
        format!(
            "needs {}, which no index lists; prune deleted nothing (run `arca check`, then \
             `arca repair index` or `arca repair snapshots`)",
            blob::describe(t, id)
        ),
    )
}

/// A tree of `snapshot` could not be read: name the snapshot too.
pub(crate) fn unreadable(snapshot: &Id, e: Error) -> Error {
    match e {
        Error::Integrity { object, reason } => Error::integrity(
            format!("snapshot {}", snapshot.short()),
            format!("{object}: {reason}; prune deleted nothing (run `arca check`)"),
        ),
        e => e,
    }
}
