//! Prune on storage that retains objects (S3 Object Lock; format-spec/17-consistency.md
//! §17.12, [`crate::backend::retention`]).
//!
//! Nothing under retention is removed, or even asked to be: the store would refuse to destroy
//! it, and a DELETE without a version would only hide it behind a delete marker while it stays
//! billed. So the plan is narrowed before anything is written:
//! - an index file still retained is *held*: it is neither rewritten nor removed, and every pack
//!   it names stays (removing one would leave it naming a missing pack);
//! - a pack planned for removal or repacking that is retained (or whose parity file is, or that
//!   a held index file names) is *deferred*: kept as it is, its record carried into the new
//!   index, so the repository stays whole; a later prune removes it once nothing retains it.
//!
//! What is removed is destroyed by version (`DELETE ?versionId=`): prune's "removed" means gone
//! from the store, not hidden. Afterwards every kept pack, live snapshot, key file and the config
//! whose retention ends within half the period (or that has none) is retained a full period
//! again, from the store's clock, so live data never falls out of protection while prune runs
//! often enough (at least once per half period).

use super::plan::{PackAction, Plan};
use crate::backend::retention::{date_str, ObjectLock, ObjectState, Policy};
use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::repo::Repository;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

/// What the storage's retention changed in a plan.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RetentionStats {
    /// The bucket's default retention.
    pub policy: Option<Policy>,
    /// Packs prune would remove (or repack) that stay until their retention ends.
    pub deferred_packs: usize,
    /// Bytes of those packs.
    pub deferred_bytes: u64,
    /// Index files that stay until their retention ends (with the packs they name).
    pub deferred_index_files: usize,
    /// When the first of them may go (RFC 3339, the store's clock).
    pub deferred_from: Option<String>,
    /// When the last of them may go: a prune after this removes all of them.
    pub deferred_until: Option<String>,
}

/// A plan's view of the storage's retention.
pub struct Hold {
    policy: Policy,
    /// Index files still retained: neither rewritten nor removed.
    pub(super) index: HashSet<Id>,
    /// Packs those index files name: they stay indexed by them.
    pub(super) packs: HashSet<Id>,
    /// Current versions of the files prune may remove, and of their parity files.
    versions: HashMap<(FileType, Id), String>,
    /// The earliest and latest retain-until dates of what was deferred.
    span: Option<(SystemTime, SystemTime)>,
}

impl Hold {
    fn defer_until(&mut self, until: Option<SystemTime>) {
        let Some(u) = until else { return };
        self.span = Some(match self.span {
            None => (u, u),
            Some((a, b)) => (a.min(u), b.max(u)),
        });
    }
}

/// The current states of files `ids` of type `t`, and of their parity files, asked in parallel.
fn states(lock: &dyn ObjectLock, t: FileType, ids: &[Id]) -> Result<Vec<(Option<ObjectState>, Option<ObjectState>)>> {
    ids.par_iter()
        .map(|id| {
            let name = id.to_hex();
            Ok((lock.state(t, &name)?, lock.state(FileType::Parity, &name)?))
        })
        .collect()
}

/// The later retain-until date of a file and its parity file, if either is still retained.
fn retained_until(file: &Option<ObjectState>, parity: &Option<ObjectState>) -> Option<SystemTime> {
    [file, parity].into_iter().flatten().filter(|s| s.retained()).filter_map(|s| s.until).max()
}

/// Narrow `plan` to what the storage lets prune remove (see the module's text), and say what
/// was deferred; nothing on a storage without retention. Reads only.
pub(super) fn apply(repo: &Repository, plan: &mut Plan) -> Result<Option<RetentionStats>> {
    let Some(lock) = repo.backend().object_lock() else { return Ok(None) };
    let Some(policy) = lock.policy()? else { return Ok(None) };
    let mut hold = Hold { policy, index: HashSet::new(), packs: HashSet::new(), versions: HashMap::new(), span: None };
    let index_files = plan.index_files.clone();
    for (id, (file, parity)) in index_files.iter().zip(states(lock, FileType::Index, &index_files)?) {
        match retained_until(&file, &parity) {
            Some(until) => {
                hold.index.insert(*id);
                hold.defer_until(Some(until));
            }
            None => hold.remember(FileType::Index, id, &file, &parity),
        }
    }
    for id in &hold.index.clone() {
        hold.packs.extend(repo.load_index_file(id)?.into_iter().map(|r| r.id));
    }
    let mut deferred = (0, 0);
    defer_packs(lock, plan, &mut hold, &mut deferred)?;
    defer_unindexed(lock, plan, &mut hold, &mut deferred)?;
    let stats = RetentionStats {
        policy: Some(policy),
        deferred_packs: deferred.0,
        deferred_bytes: deferred.1,
        deferred_index_files: hold.index.len(),
        deferred_from: hold.span.map(|(a, _)| rfc3339(a)),
        deferred_until: hold.span.map(|(_, b)| rfc3339(b)),
    };
    plan.retention = Some(hold);
    Ok(Some(stats))
}

impl Hold {
    /// Keep the versions of a file prune may destroy.
    fn remember(&mut self, t: FileType, id: &Id, file: &Option<ObjectState>, parity: &Option<ObjectState>) {
        for (kind, s) in [(t, file), (FileType::Parity, parity)] {
            if let Some(v) = s.as_ref().and_then(|s| s.version.clone()) {
                self.versions.insert((kind, *id), v);
            }
        }
    }
}

/// Packs planned for removal or repacking that a held index file names, or that are retained
/// themselves: kept.
fn defer_packs(lock: &dyn ObjectLock, plan: &mut Plan, hold: &mut Hold, deferred: &mut (usize, u64)) -> Result<()> {
    let doomed: Vec<usize> =
        (0..plan.packs.len()).filter(|&i| plan.packs[i].action != PackAction::Keep && !plan.packs[i].missing).collect();
    let ids: Vec<Id> = doomed.iter().map(|&i| plan.packs[i].id).collect();
    for (&i, (file, parity)) in doomed.iter().zip(states(lock, FileType::Pack, &ids)?) {
        let p = &mut plan.packs[i];
        let until = retained_until(&file, &parity);
        if until.is_none() && !hold.packs.contains(&p.id) {
            hold.remember(FileType::Pack, &p.id, &file, &parity);
            continue;
        }
        hold.defer_until(until);
        p.action = PackAction::Keep;
        deferred.0 += 1;
        deferred.1 += p.size;
    }
    Ok(())
}

/// Packs no index names that are retained: left for a later prune.
fn defer_unindexed(lock: &dyn ObjectLock, plan: &mut Plan, hold: &mut Hold, deferred: &mut (usize, u64)) -> Result<()> {
    let ids: Vec<Id> = plan.unindexed.iter().map(|(id, _)| *id).collect();
    let mut keep = Vec::new();
    for ((id, len), (file, parity)) in plan.unindexed.iter().zip(states(lock, FileType::Pack, &ids)?) {
        match retained_until(&file, &parity) {
            Some(until) => {
                hold.defer_until(Some(until));
                deferred.0 += 1;
                deferred.1 += len;
            }
            None => {
                hold.remember(FileType::Pack, id, &file, &parity);
                keep.push((*id, *len));
            }
        }
    }
    plan.unindexed = keep;
    Ok(())
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Remove a file prune may remove: its parity file first, then the file (format-spec/22 §22.8),
/// each by destroying the version seen when the plan was made; a file that had none (gone
/// since) by an ordinary removal.
pub(super) fn remove(repo: &Repository, hold: &Hold, t: FileType, id: &Id) -> Result<()> {
    let Some(lock) = repo.backend().object_lock() else { return repo.remove_file(t, &id.to_hex()) };
    let name = id.to_hex();
    for kind in [FileType::Parity, t] {
        if let Some(v) = hold.versions.get(&(kind, *id)) {
            lock.delete_version(kind, &name, v).map_err(|e| refused(e, kind, &name))?;
        }
    }
    if !hold.versions.contains_key(&(t, *id)) {
        repo.remove_file(t, &name)?;
    }
    Ok(())
}

fn refused(e: Error, t: FileType, name: &str) -> Error {
    if !crate::backend::retention::is_refusal(&e) {
        return e;
    }
    Error::ObjectLock(format!(
        "the storage refused to destroy {} ({e}): prune needs s3:DeleteObjectVersion (the admin role of \
         `arca generate s3-policy`); the repository is whole, run prune again with those credentials",
        t.describe(name)
    ))
}

/// What extending retention did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Extended {
    /// Files whose retention was extended (or set, where they had none).
    pub extended: usize,
    /// Files looked at.
    pub checked: usize,
    /// The new retain-until date of the last one extended (the store's clock).
    pub until: Option<String>,
}

/// Retain live files a full period again where less than half of it is left: kept packs, the
/// snapshots, key files and the config.
pub(super) fn extend_live(repo: &Repository, plan: &Plan, hold: &Hold) -> Result<Extended> {
    let Some(lock) = repo.backend().object_lock() else { return Ok(Extended::default()) };
    let mut files: Vec<(FileType, String)> = vec![(FileType::Config, "config".into())];
    files.extend(repo.list_objects(FileType::Key)?.into_iter().map(|(n, _)| (FileType::Key, n)));
    files.extend(plan.snapshots.iter().map(|id| (FileType::Snapshot, id.to_hex())));
    // Index files too: a restore needs them, and a prune that removes nothing rewrites none.
    files.extend(repo.list_objects(FileType::Index)?.into_iter().map(|(n, _)| (FileType::Index, n)));
    let live = plan.packs.iter().filter(|p| p.action == PackAction::Keep && p.used_blobs > 0);
    files.extend(live.map(|p| (FileType::Pack, p.id.to_hex())));
    let done: Vec<Option<SystemTime>> =
        files.par_iter().map(|(t, name)| extend_one(lock, &hold.policy, *t, name)).collect::<Result<_>>()?;
    let until = done.iter().flatten().max().copied();
    Ok(Extended { extended: done.iter().flatten().count(), checked: files.len(), until: until.map(rfc3339) })
}

/// Extend one file if it needs it; its new retain-until date if it was extended.
fn extend_one(lock: &dyn ObjectLock, policy: &Policy, t: FileType, name: &str) -> Result<Option<SystemTime>> {
    // Gone meanwhile (a snapshot forgotten by another host): nothing to protect.
    let Some(s) = lock.state(t, name)? else { return Ok(None) };
    if !policy.wants_extension(s.until, s.store_now) {
        return Ok(None);
    }
    let until = s.store_now + policy.duration();
    let mode = policy.extension_mode(s.mode);
    lock.extend(t, name, s.version.as_deref(), mode, until)
        .map_err(|e| e.within(format!("extending the retention of {} to {}", t.describe(name), date_str(until))))?;
    Ok(Some(until))
}
