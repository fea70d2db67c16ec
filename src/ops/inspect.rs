//! What a browsing front end (`arca ui`) needs beyond `ls`, `find`, `diff` and `dump`: the
//! versions of one path across snapshots, snapshot sizes by root tree, and the first bytes of a
//! file for a preview. Read-only, and not journaled: nothing leaves the repository whole
//! (downloads go through [`super::browse::dump`], which is).

use super::context::READERS;
use super::scope::Scope;
use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind};
use crate::id::Id;
use crate::repo::select::SnapshotFilter;
use std::io::Read;

/// A path in one snapshot.
#[derive(Debug)]
pub struct Version {
    /// The snapshot.
    pub id: Id,
    /// Its metadata.
    pub snapshot: Snapshot,
    /// The entry at the path; `None` where the snapshot does not have it.
    pub node: Option<Node>,
    /// Whether the content (or, for a non-file, the entry) differs from the previous snapshot
    /// that had the path; true for the first.
    pub changed: bool,
}

/// Most snapshots [`versions`] looks into (the newest are kept).
pub const MAX_VERSIONS: usize = 10_000;

/// Every version of `path` in the snapshots `filter` selects, oldest first ("show me every
/// version of config.yaml"). A snapshot whose trees cannot be read is an error naming it: a
/// history with a hole must not look complete.
pub fn versions(scope: &Scope, path: &str, filter: &SnapshotFilter) -> Result<Vec<Version>> {
    let repo = scope.ctx.open_for(READERS, "read snapshots")?;
    let filter = scope.filter(filter, None);
    let mut snaps: Vec<(Id, Snapshot)> =
        repo.list_snapshots()?.into_iter().filter(|(_, s)| filter.matches(s)).collect();
    snaps.drain(..snaps.len().saturating_sub(MAX_VERSIONS));
    let index = scope.ctx.load_index(&repo)?;
    let mut out: Vec<Version> = Vec::with_capacity(snaps.len());
    let mut last: Option<Node> = None;
    for (id, snapshot) in snaps {
        let node = match crate::restore::resolve(&repo, &index, snapshot.tree, path) {
            Ok(n) => Some(n),
            Err(Error::NotFound(_)) => None,
            Err(e) if e.is_integrity() => {
                return Err(Error::integrity(format!("snapshot {}", id.short()), e.to_string()))
            }
            Err(e) => return Err(e),
        };
        let changed = match (&node, &last) {
            (Some(n), Some(l)) => !same_version(n, l),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if node.is_some() {
            last.clone_from(&node);
        }
        out.push(Version { id, snapshot, node, changed });
    }
    Ok(out)
}

/// Same content (files: the same chunks; others: same kind and target), whatever the times.
fn same_version(a: &Node, b: &Node) -> bool {
    match (&a.kind, &b.kind) {
        (NodeKind::File { size: sa, content: ca }, NodeKind::File { size: sb, content: cb }) => sa == sb && ca == cb,
        (x, y) => x == y,
    }
}

/// The bytes of file content below each root tree (what a restore of it writes); `None` for a
/// root whose trees cannot be read. Shared subtrees are read once.
pub fn tree_sizes(scope: &Scope, roots: &[Id]) -> Result<Vec<Option<u64>>> {
    let repo = scope.ctx.open_for(READERS, "read snapshots")?;
    let index = scope.ctx.load_index(&repo)?;
    Ok(crate::repo::walk::content_sizes(&repo, &index, roots))
}

/// The entry `SNAP:PATH` names and, for a regular file, its first `max` bytes (a preview).
pub fn head(scope: &Scope, reference: &str, max: usize) -> Result<(super::locate::Located, Vec<u8>)> {
    let o = super::browse::open_at(scope, reference, &SnapshotFilter::default())?;
    let mut buf = Vec::new();
    if let NodeKind::File { .. } = o.at.node.kind {
        let r = crate::browse::ContentReader::new(&o.repo, &o.index, &o.at.node)?;
        r.take(max as u64).read_to_end(&mut buf).map_err(|e| crate::browse::from_io(e, "preview"))?;
    }
    Ok((o.at, buf))
}
