//! Bounds on walking snapshot trees (format-spec/19-limits, "Snapshot expansion").
//!
//! A tree names its subdirectories by ID, so a snapshot is a DAG: a key holder can write 41
//! tiny tree blobs that each name the next one twice and describe 2^40 paths in 11 KB (a "tree
//! bomb"), or nest trees 30,000 levels deep. Every command that expands a snapshot first calls
//! [`measure`], which visits each *distinct* tree once (memoised, iterative, explicit stack), so
//! its cost is O(distinct trees) whatever the expansion, and refuses a tree that breaks
//! [`MAX_DEPTH`] or [`MAX_ENTRIES`] before anything is printed or written.
//!
//! Legitimate snapshots do reuse subtrees (two identical directories share one tree blob); the
//! limits are on the expanded result, which is what a restore or a listing has to produce.

use crate::error::{Error, Result};
use crate::format::blob::{self, BlobType};
use crate::format::tree::NodeKind;
use crate::id::Id;
use crate::repo::index::Index;
use crate::repo::Repository;
use std::collections::HashMap;

/// Deepest directory nesting below a snapshot root (the root's entries are at depth 1).
pub const MAX_DEPTH: u32 = 4096;

/// Most entries (at every depth, counted once per path) below one snapshot root.
pub const MAX_ENTRIES: u64 = 1 << 32;

/// The expanded size of a tree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Measure {
    /// Entries below the root, counted once per path they are reachable by.
    pub entries: u64,
    /// Nesting depth: 0 for an empty tree, 1 for a tree of files, and so on.
    pub depth: u32,
    /// Distinct tree blobs below and including the root.
    pub trees: u64,
}

/// One directory being measured: the subtrees still to visit and what its entries add up to.
struct Frame {
    id: Id,
    pending: Vec<Id>,
    entries: u64,
    depth: u32,
}

/// Measure the tree `root`, refusing one that breaks [`MAX_DEPTH`] or [`MAX_ENTRIES`] with an
/// integrity error naming the root. A tree that cannot be read counts as empty here: the walk
/// that follows meets it again and reports it where it is.
pub fn measure(repo: &Repository, index: &Index, root: Id) -> Result<Measure> {
    let mut memo: HashMap<Id, (u64, u32)> = HashMap::new();
    let mut stack = vec![open_frame(repo, index, root)];
    loop {
        let top = stack.last_mut().expect("the stack holds the root until it returns");
        if let Some(next) = top.pending.pop() {
            if let Some(&(entries, depth)) = memo.get(&next) {
                add_child(top, entries, depth, root)?;
            } else if stack.len() as u32 > MAX_DEPTH {
                return Err(too_deep(root));
            } else {
                stack.push(open_frame(repo, index, next));
            }
            continue;
        }
        let done = stack.pop().expect("checked above");
        memo.insert(done.id, (done.entries, done.depth));
        match stack.last_mut() {
            Some(parent) => add_child(parent, done.entries, done.depth, root)?,
            None => return Ok(Measure { entries: done.entries, depth: done.depth, trees: memo.len() as u64 }),
        }
    }
}

fn open_frame(repo: &Repository, index: &Index, id: Id) -> Frame {
    let Ok(tree) = repo.read_tree(index, &id) else {
        return Frame { id, pending: vec![], entries: 0, depth: 0 };
    };
    let depth = u32::from(!tree.nodes.is_empty());
    let pending = tree
        .nodes
        .iter()
        .filter_map(|n| match n.kind {
            NodeKind::Dir { subtree } => Some(subtree),
            _ => None,
        })
        .collect();
    Frame { id, pending, entries: tree.nodes.len() as u64, depth }
}

fn add_child(parent: &mut Frame, entries: u64, depth: u32, root: Id) -> Result<()> {
    parent.entries = parent.entries.saturating_add(entries);
    parent.depth = parent.depth.max(depth + 1);
    if parent.entries > MAX_ENTRIES {
        return Err(Error::integrity(
            blob::describe(BlobType::Tree, &root),
            format!("expands to more than {MAX_ENTRIES} entries (format-spec 19)"),
        ));
    }
    if parent.depth > MAX_DEPTH {
        return Err(too_deep(root));
    }
    Ok(())
}

fn too_deep(root: Id) -> Error {
    Error::integrity(
        blob::describe(BlobType::Tree, &root),
        format!("directories nested deeper than {MAX_DEPTH} levels (format-spec 19)"),
    )
}
