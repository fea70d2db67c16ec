//! Snapshot references as users write them — `latest`, `latest~2`, `latest-verified`, an ID
//! prefix, each optionally `:PATH` — resolved among the snapshots a filter selects (host, tag,
//! path, `--as-of`/`--before`, a profile's component), down to the node the path names.

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::Node;
use crate::id::Id;
use crate::repo::index::Index;
use crate::repo::select::SnapshotFilter;
use crate::repo::Repository;

/// The reference naming the newest snapshot with a verification on record.
pub const LATEST_VERIFIED: &str = "latest-verified";

/// Split `SNAP[:PATH]` into the snapshot reference and the path (empty when none).
pub fn split(reference: &str) -> (&str, &str) {
    reference.split_once(':').unwrap_or((reference, ""))
}

/// Resolve a snapshot reference (no path) among the snapshots `filter` selects: `latest`,
/// `latest~N`, `latest-verified[~N]`, or an ID prefix. Warnings (journal files skipped while
/// looking for verifications) go to `warn`.
pub fn resolve(
    repo: &Repository,
    reference: &str,
    filter: &SnapshotFilter,
    warn: &dyn Fn(&str),
) -> Result<(Id, Snapshot)> {
    let (head, back) = match reference.split_once('~') {
        Some((h, n)) => (h, Some(n)),
        None => (reference, None),
    };
    if !head.eq_ignore_ascii_case(LATEST_VERIFIED) {
        return crate::repo::select::resolve(repo, reference, filter);
    }
    let back: usize = match back {
        None => 0,
        Some(n) => {
            n.parse().map_err(|_| Error::InvalidArgument(format!("{reference:?}: expected latest-verified~N")))?
        }
    };
    latest_verified(repo, filter, back, warn)
}

/// The `back`-th newest selected snapshot that the journal shows verified (a successful whole
/// drill of it or of a snapshot of the same content, or a full `check --read-data` naming it).
fn latest_verified(
    repo: &Repository,
    filter: &SnapshotFilter,
    back: usize,
    warn: &dyn Fn(&str),
) -> Result<(Id, Snapshot)> {
    let all = repo.list_snapshots()?;
    let journal = super::journal::load(repo)?;
    for (name, e) in &journal.damaged {
        warn(&format!("journal file {name} skipped: {e}"));
    }
    let verified = super::journal::verified(&journal.records, &all);
    all.into_iter().rev().filter(|(id, s)| filter.matches(s) && verified.contains(id)).nth(back).ok_or_else(|| {
        Error::NotFound(
            "no selected snapshot has a verification on record (a successful whole `arca drill` of it, or a \
             full `arca check --read-data` after it); see `arca journal`"
                .into(),
        )
    })
}

/// A snapshot and the node a path names in it.
pub struct Located {
    /// The snapshot's ID.
    pub id: Id,
    /// The snapshot.
    pub snapshot: Snapshot,
    /// The node at the path (a directory node for the snapshot's root).
    pub node: Node,
    /// The path, `/` for the root.
    pub path: String,
}

impl Located {
    /// The path as a restore takes it: empty for the root.
    pub fn snap_path(&self) -> &str {
        if self.path == "/" {
            ""
        } else {
            &self.path
        }
    }
}

/// Resolve `SNAP[:PATH]` among the snapshots `filter` selects, and the node at PATH.
pub fn locate(
    repo: &Repository,
    index: &Index,
    reference: &str,
    filter: &SnapshotFilter,
    warn: &dyn Fn(&str),
) -> Result<Located> {
    let (snap, path) = split(reference);
    let (id, snapshot) = resolve(repo, snap, filter, warn)?;
    let path = format!("/{}", path.trim_matches('/'));
    let node = crate::restore::resolve(repo, index, snapshot.tree, &path)?;
    Ok(Located { id, snapshot, node, path })
}
