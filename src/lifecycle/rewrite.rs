//! Replacing a snapshot by a rewritten copy (format-spec/17-consistency.md §17.8), shared by
//! `tag` and `repair snapshots`.
//!
//! Snapshots are content-addressed and never modified: a "changed" snapshot is a new file with
//! the changed fields and `original` naming the snapshot it replaces (the first one, across any
//! number of rewrites), and the old file is removed only after the new one is durable. A crash
//! in between leaves both; they differ only in what the rewrite changed, and a rerun finds the
//! copy it already wrote ([`Existing::save`]) instead of writing a duplicate, then removes the
//! old file.

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::id::Id;
use crate::repo::Repository;
use std::collections::{HashMap, HashSet};

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
