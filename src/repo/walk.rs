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
use crate::format::tree::{Node, NodeKind, Tree};
use crate::id::Id;
use crate::repo::index::Index;
use crate::repo::Repository;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

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
    Trees::new(repo, index).measure(root)
}

/// Decoded trees for one operation, each read from storage once while they fit a memory
/// budget: a restore measures a snapshot (format-spec 19) and then walks it, a drill takes a
/// census and then restores in passes, and all of them read the same trees. Trees beyond the
/// budget ([`TREE_CACHE_BYTES`], counted by their plaintext size) are read again when needed,
/// so memory stays bounded whatever the snapshot's size.
pub struct Trees<'a> {
    repo: &'a Repository,
    index: &'a Index,
    cache: Mutex<HashMap<Id, Arc<Tree>>>,
    /// Roots measured already: a drill restores the same snapshot in several passes.
    measured: Mutex<HashMap<Id, Measure>>,
    used: AtomicUsize,
    budget: usize,
}

/// Plaintext bytes of trees a [`Trees`] keeps.
pub const TREE_CACHE_BYTES: usize = 64 << 20;

/// Bytes of decoded trees a [`SharedTrees`] keeps (estimated: plaintext plus entry structs).
pub const SHARED_TREE_BYTES: usize = 256 << 20;

/// Decoded trees and measured roots kept across operations by a long-running front end (`arca
/// ui`): every page walks the same snapshots. Trees are named by their content, so a kept one
/// never goes stale; it is filled until its budget is spent, then only read from. It belongs to
/// one set of keys (see [`Repository::share_trees`]).
#[derive(Default)]
pub struct SharedTrees {
    trees: Mutex<HashMap<Id, Arc<Tree>>>,
    measured: Mutex<HashMap<Id, Measure>>,
    used: AtomicUsize,
}

impl SharedTrees {
    fn get(&self, id: &Id) -> Option<Arc<Tree>> {
        self.trees.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    fn keep(&self, id: &Id, tree: &Arc<Tree>, len: usize) {
        if self.used.fetch_add(len, Relaxed) + len <= SHARED_TREE_BYTES {
            self.trees.lock().unwrap_or_else(|p| p.into_inner()).insert(*id, tree.clone());
        } else {
            self.used.fetch_sub(len, Relaxed);
        }
    }
}

impl<'a> Trees<'a> {
    /// An empty cache over `repo`'s trees, as `index` finds them.
    pub fn new(repo: &'a Repository, index: &'a Index) -> Trees<'a> {
        Trees {
            repo,
            index,
            cache: Mutex::new(HashMap::new()),
            measured: Mutex::new(HashMap::new()),
            used: AtomicUsize::new(0),
            budget: TREE_CACHE_BYTES,
        }
    }

    /// The repository.
    pub fn repo(&self) -> &'a Repository {
        self.repo
    }

    /// The index.
    pub fn index(&self) -> &'a Index {
        self.index
    }

    /// The tree `id`, from the cache or read (and kept, while the budget allows).
    pub fn get(&self, id: &Id) -> Result<Arc<Tree>> {
        if let Some(t) = self.cache.lock().unwrap().get(id) {
            return Ok(t.clone());
        }
        let shared = self.repo.shared_trees();
        if let Some(t) = shared.and_then(|s| s.get(id)) {
            return Ok(t);
        }
        let plain = self.repo.read_blob(self.index, BlobType::Tree, id)?;
        let tree = Arc::new(Tree::decode(&plain, &blob::describe(BlobType::Tree, id))?);
        if let Some(s) = shared {
            // Counted decoded: the entries' structs besides their names (the plaintext).
            s.keep(id, &tree, plain.len() + tree.nodes.len() * std::mem::size_of::<Node>());
            return Ok(tree);
        }
        if self.used.fetch_add(plain.len(), Relaxed) + plain.len() <= self.budget {
            self.cache.lock().unwrap().insert(*id, tree.clone());
        } else {
            self.used.fetch_sub(plain.len(), Relaxed);
        }
        Ok(tree)
    }

    /// The entries of tree `id`, owned.
    pub fn nodes(&self, id: &Id) -> Result<Vec<Node>> {
        Ok(match Arc::try_unwrap(self.get(id)?) {
            Ok(t) => t.nodes,
            Err(shared) => shared.nodes.clone(),
        })
    }

    /// [`measure`] through this cache.
    pub fn measure(&self, root: Id) -> Result<Measure> {
        if let Some(m) = self.measured.lock().unwrap().get(&root) {
            return Ok(*m);
        }
        let shared = self.repo.shared_trees();
        if let Some(m) = shared.and_then(|s| s.measured.lock().unwrap_or_else(|p| p.into_inner()).get(&root).copied()) {
            return Ok(m);
        }
        let mut memo = HashMap::new();
        let mut whole = true;
        let m = measure_with(root, &mut memo, &mut |id| match self.get(id) {
            Ok(tree) => {
                let dirs = tree.nodes.iter().filter_map(|n| n.subtree()).collect();
                (tree.nodes.len() as u64, dirs)
            }
            Err(_) => {
                whole = false;
                (0, vec![])
            }
        })?;
        self.measured.lock().unwrap().insert(root, m);
        // Kept across operations only when every tree read: a passing error is not remembered.
        if let (Some(s), true) = (shared, whole) {
            s.measured.lock().unwrap_or_else(|p| p.into_inner()).insert(root, m);
        }
        Ok(m)
    }

    /// Regular files and their bytes below `node` (itself, if a file), counted once per path:
    /// a restore's progress totals. Memoised per distinct tree, so call it after [`Trees::measure`]
    /// has bounded the expansion; an unreadable tree counts as empty (the walk reports it).
    pub fn content(&self, node: &Node) -> Result<(u64, u64)> {
        let root = match &node.kind {
            NodeKind::File { size, .. } => return Ok((1, *size)),
            NodeKind::Dir { subtree } => *subtree,
            _ => return Ok((0, 0)),
        };
        let mut memo: HashMap<Id, (u64, u64)> = HashMap::new();
        // Each frame: a tree, its subtrees still to count, and its own files so far.
        let open = |id: Id| {
            let tree = self.get(&id).map(|t| t.nodes.clone()).unwrap_or_default();
            let (mut files, mut bytes, mut subs) = (0u64, 0u64, Vec::new());
            for n in &tree {
                match &n.kind {
                    NodeKind::File { size, .. } => (files, bytes) = (files + 1, bytes.saturating_add(*size)),
                    NodeKind::Dir { subtree } => subs.push(*subtree),
                    _ => {}
                }
            }
            (id, subs, files, bytes)
        };
        let mut stack = vec![open(root)];
        while let Some(top) = stack.last_mut() {
            if let Some(next) = top.1.pop() {
                match memo.get(&next) {
                    Some(&(f, b)) => (top.2, top.3) = (top.2 + f, top.3.saturating_add(b)),
                    None => stack.push(open(next)),
                }
                continue;
            }
            let (id, _, f, b) = stack.pop().expect("non-empty");
            memo.insert(id, (f, b));
            if let Some(parent) = stack.last_mut() {
                (parent.2, parent.3) = (parent.2 + f, parent.3.saturating_add(b));
            }
        }
        Ok(memo[&root])
    }

    /// [`walk`] through this cache.
    pub fn walk(&self, root: Id, prefix: &[u8], f: &mut dyn FnMut(&[u8], &Node) -> Result<bool>) -> Result<()> {
        let mut path = prefix.to_vec();
        while path.last() == Some(&b'/') {
            path.pop();
        }
        let mut stack = vec![WalkFrame { nodes: self.nodes(&root)?.into_iter(), path_len: path.len() }];
        while let Some(top) = stack.last_mut() {
            let Some(node) = top.nodes.next() else {
                stack.pop();
                continue;
            };
            path.truncate(top.path_len);
            path.push(b'/');
            path.extend_from_slice(&node.name);
            let descend = f(&path, &node)?;
            if let (true, NodeKind::Dir { subtree }) = (descend, &node.kind) {
                let nodes = self.nodes(subtree)?;
                // Entries of the new frame sit at depth `stack.len() + 1`.
                if !nodes.is_empty() && stack.len() as u32 >= MAX_DEPTH {
                    return Err(too_deep(root));
                }
                stack.push(WalkFrame { nodes: nodes.into_iter(), path_len: path.len() });
            }
        }
        Ok(())
    }
}

/// [`measure`] over trees the caller has already read: `children(id)` gives a tree's number of
/// entries and its subtrees (an unreadable tree: 0 and none). `memo` keeps each measured
/// tree's (entries, depth) between calls, so measuring many snapshots that share subtrees costs
/// O(distinct trees) in all; [`Measure::trees`] is then the number of trees in `memo`.
pub fn measure_with(
    root: Id,
    memo: &mut HashMap<Id, (u64, u32)>,
    children: &mut dyn FnMut(&Id) -> (u64, Vec<Id>),
) -> Result<Measure> {
    if let Some(&(entries, depth)) = memo.get(&root) {
        return Ok(Measure { entries, depth, trees: memo.len() as u64 });
    }
    let mut open = |id: Id| {
        let (entries, pending) = children(&id);
        Frame { id, pending, entries, depth: u32::from(entries > 0) }
    };
    let mut stack = vec![open(root)];
    loop {
        let top = stack.last_mut().expect("the stack holds the root until it returns");
        if let Some(next) = top.pending.pop() {
            if let Some(&(entries, depth)) = memo.get(&next) {
                add_child(top, entries, depth, root)?;
            } else if stack.len() as u32 > MAX_DEPTH {
                return Err(too_deep(root));
            } else {
                stack.push(open(next));
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

/// One directory being walked: its remaining entries and the length of its path.
struct WalkFrame {
    nodes: std::vec::IntoIter<Node>,
    path_len: usize,
}

/// Call `f(path, node)` for every entry below the tree `root`, depth first, in stored (sorted)
/// name order, a directory before its contents. `prefix` is the root's own path (e.g. `/` or
/// `/home/me`); paths are raw bytes, `/`-separated. `f` returns whether to descend into the
/// entry when it is a directory.
///
/// The walk is iterative (an explicit stack, one path buffer), so its stack use does not grow
/// with depth and its memory grows linearly with it. It refuses to go deeper than [`MAX_DEPTH`];
/// callers that print or write what they meet call [`measure`] on the root first (through the
/// same [`Trees`], so each tree is read once), so that an oversized tree is refused before
/// anything is produced.
pub fn walk(
    repo: &Repository,
    index: &Index,
    root: Id,
    prefix: &[u8],
    f: &mut dyn FnMut(&[u8], &Node) -> Result<bool>,
) -> Result<()> {
    Trees::new(repo, index).walk(root, prefix, f)
}

/// A tree read for sizing: its own files' bytes and its subtrees (`None`: unreadable).
type SizedTree = Option<(u64, Vec<Id>)>;

/// Bytes of file content below each of `roots`, counted once per path (what a restore of it
/// writes). Every distinct tree is read once for all roots, level by level and in parallel, then
/// the figures are summed bottom-up with a memo, so shared subtrees cost nothing more. `None`
/// for a root when a tree below it cannot be read or it nests deeper than [`MAX_DEPTH`].
pub fn content_sizes(repo: &Repository, index: &Index, roots: &[Id]) -> Vec<Option<u64>> {
    use rayon::prelude::*;
    let mut trees: HashMap<Id, SizedTree> = HashMap::new();
    let mut level: Vec<Id> = roots.to_vec();
    for _ in 0..=MAX_DEPTH {
        level.sort_unstable();
        level.dedup();
        level.retain(|id| !trees.contains_key(id));
        if level.is_empty() {
            break;
        }
        let read: Vec<(Id, SizedTree)> =
            level.par_iter().map(|id| (*id, repo.read_tree(index, id).ok().map(|t| size_of(&t)))).collect();
        level = read.iter().flat_map(|(_, t)| t.iter().flat_map(|(_, dirs)| dirs.iter().copied())).collect();
        trees.extend(read);
    }
    let mut memo: HashMap<Id, Option<u64>> = HashMap::new();
    roots.iter().map(|root| sum_size(&trees, *root, &mut memo)).collect()
}

/// A tree's own file bytes and its subtrees.
fn size_of(tree: &crate::format::tree::Tree) -> (u64, Vec<Id>) {
    let mut files = 0u64;
    let mut dirs = Vec::new();
    for n in &tree.nodes {
        match n.kind {
            NodeKind::File { size, .. } => files = files.saturating_add(size),
            NodeKind::Dir { subtree } => dirs.push(subtree),
            _ => {}
        }
    }
    (files, dirs)
}

/// Sum the sizes below `root` from trees already read (a tree not read, because it lies deeper
/// than [`MAX_DEPTH`], or unreadable, makes the sum unknown). Iterative.
fn sum_size(trees: &HashMap<Id, SizedTree>, root: Id, memo: &mut HashMap<Id, Option<u64>>) -> Option<u64> {
    let open = |id: Id| match trees.get(&id) {
        Some(Some((files, dirs))) => (id, dirs.clone(), Some(*files)),
        _ => (id, vec![], None),
    };
    if let Some(&known) = memo.get(&root) {
        return known;
    }
    let mut stack = vec![open(root)];
    loop {
        let top = stack.last_mut().expect("the stack holds the root until it returns");
        if let Some(sub) = top.1.pop() {
            if let Some(&known) = memo.get(&sub) {
                top.2 = top.2.zip(known).map(|(a, b)| a.saturating_add(b));
            } else {
                stack.push(open(sub));
            }
            continue;
        }
        let (id, _, size) = stack.pop().expect("checked above");
        memo.insert(id, size);
        match stack.last_mut() {
            Some(parent) => parent.2 = parent.2.zip(size).map(|(a, b)| a.saturating_add(b)),
            None => return size,
        }
    }
}

/// Sum of `own(tree).0` over `root` and everything below it, counting a subtree once per path
/// that reaches it (saturating), memoised per tree in `counts`. `own` gives a tree's own count
/// and its subtrees. Iterative: the stack is as deep as the tree, which callers have measured
/// ([`MAX_DEPTH`]).
pub fn memo_sum(root: Id, own: impl Fn(&Id) -> (u64, Vec<Id>), counts: &mut std::collections::HashMap<Id, u64>) -> u64 {
    if let Some(&n) = counts.get(&root) {
        return n;
    }
    let (n, subs) = own(&root);
    let mut stack = vec![(root, subs, n)];
    loop {
        let top = stack.last_mut().expect("the stack holds the root until it returns");
        if let Some(sub) = top.1.pop() {
            match counts.get(&sub) {
                Some(&n) => top.2 = top.2.saturating_add(n),
                None => {
                    let (n, subs) = own(&sub);
                    stack.push((sub, subs, n));
                }
            }
            continue;
        }
        let (id, _, n) = stack.pop().expect("checked above");
        counts.insert(id, n);
        match stack.last_mut() {
            Some(parent) => parent.2 = parent.2.saturating_add(n),
            None => return n,
        }
    }
}
