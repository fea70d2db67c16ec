//! Steps 2–8 of prune (§17.7): repack under the shared lock, then commit under the exclusive
//! one. Every step that removes something runs only after what replaces it is durable.

use super::plan::{load_snapshots_strict, PackAction, Plan};
use super::reach;
use super::{Progress, Step};
use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::blob::BlobType;
use crate::format::index::IndexPack;
use crate::id::Id;
use crate::repo::index::Index;
use crate::repo::lock::LockGuard;
use crate::repo::packer::{self, Packer};
use crate::repo::Repository;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;

/// What a prune did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PruneReport {
    /// Packs removed (unused, repacked and unindexed).
    pub packs_removed: usize,
    /// Bytes of the packs removed.
    pub bytes_removed: u64,
    /// New packs written by repacking.
    pub packs_written: u64,
    /// Bytes of those new packs.
    pub bytes_written: u64,
    /// Blobs copied by repacking.
    pub blobs_repacked: u64,
    /// Index files written (repacks and the new index).
    pub index_files_written: usize,
    /// Old index files removed.
    pub index_files_removed: usize,
    /// Snapshots written by backups while prune ran, accounted for at commit.
    pub snapshots_added_meanwhile: usize,
    /// Packs planned for removal that those snapshots needed, and that were kept.
    pub packs_rescued: usize,
    /// The journal compaction at the end of the commit (format-spec/21-journal.md §21.4).
    pub journal: Option<crate::repo::journal::Compaction>,
    /// Why that compaction failed, if it did (the prune itself succeeded).
    pub journal_error: Option<String>,
    /// Live files whose storage retention (S3 Object Lock) was extended.
    pub retention: Option<super::Extended>,
    /// Why extending retention failed, if it did (what prune removed is removed).
    pub retention_error: Option<String>,
}

/// What the commit learned about files written since the plan.
struct Meanwhile {
    /// Index built from the index files written since the plan.
    index: Index,
    /// Snapshots written since the plan.
    snapshots: usize,
    /// Packs the plan would remove that they use.
    rescued: usize,
}

impl Plan {
    /// Carry out the plan. `shared` is the lock the plan was made under; it is released after
    /// the repacks are indexed, and the commit takes an exclusive lock (waiting up to the
    /// options' retry time for running backups to finish).
    pub fn execute(mut self, repo: &Repository, shared: LockGuard, progress: &Progress) -> Result<PruneReport> {
        let mut report = PruneReport::default();
        progress.phase("repacking");
        let repacked = self.repack(repo, progress, &mut report)?;
        self.opts.reached(Step::IndexRepacks)?;
        drop(shared);
        progress.phase("waiting for the exclusive lock");
        let lock = repo.lock_wait(true, self.opts.retry_lock, &|_| {})?;
        self.opts.reached(Step::Lock)?;
        progress.phase("reconciling with backups that ran meanwhile");
        let meanwhile = self.reconcile(repo, progress)?;
        report.snapshots_added_meanwhile = meanwhile.snapshots;
        report.packs_rescued = meanwhile.rescued;
        self.opts.reached(Step::Reconcile)?;
        progress.phase("writing the new index");
        report.index_files_written += self.write_index(repo, &repacked)?;
        lock.ensure_fresh()?;
        self.opts.reached(Step::WriteIndex)?;
        progress.phase("removing the old index");
        let old_index = self.rewritten_index_files();
        report.index_files_removed = self.remove_all(repo, FileType::Index, &old_index, progress)?;
        self.opts.reached(Step::RemoveIndex)?;
        progress.phase("removing packs");
        let doomed = self.doomed_packs(&meanwhile.index);
        lock.ensure_fresh()?;
        let names: Vec<Id> = doomed.iter().map(|(id, _)| *id).collect();
        report.packs_removed = self.remove_all(repo, FileType::Pack, &names, progress)?;
        report.bytes_removed = doomed.iter().map(|(_, l)| l).sum();
        self.opts.reached(Step::RemovePacks)?;
        progress.phase("extending the retention of live files");
        self.extend_retention(repo, &mut report);
        // Still under the exclusive lock; a failure here loses nothing and is only reported.
        progress.phase("compacting the journal");
        match crate::repo::journal::compact(repo) {
            Ok(c) => report.journal = Some(c),
            Err(e) => report.journal_error = Some(e.to_string()),
        }
        drop(lock);
        Ok(report)
    }

    /// What a plan that removes nothing still does: on storage with retention, extend that
    /// of live files ([`super::retention::extend_live`]); `None` elsewhere (nothing to do).
    pub fn finish_noop(&self, repo: &Repository) -> Option<PruneReport> {
        self.retention.as_ref()?;
        let mut report = PruneReport::default();
        self.extend_retention(repo, &mut report);
        Some(report)
    }

    /// Extend the retention of live files, if the storage retains them; a failure is reported,
    /// not raised: what prune removed is removed.
    fn extend_retention(&self, repo: &Repository, report: &mut PruneReport) {
        let Some(hold) = &self.retention else { return };
        match super::retention::extend_live(repo, self, hold) {
            Ok(x) => report.retention = Some(x),
            Err(e) => report.retention_error = Some(e.to_string()),
        }
    }

    /// Steps 2–3: copy the used blobs of the packs chosen for repacking into new packs, then
    /// index them. Returns the packs whose every used blob now has a copy in a new pack.
    fn repack(&self, repo: &Repository, progress: &Progress, report: &mut PruneReport) -> Result<HashSet<Id>> {
        let todo: Vec<&super::PackPlan> = self.packs.iter().filter(|p| p.action == PackAction::Repack).collect();
        progress.repack.start(todo.iter().map(|p| p.size).sum());
        let packer = Packer::new(repo);
        let copied: Vec<u64> =
            todo.par_iter().map(|p| self.repack_one(repo, &packer, p, progress)).collect::<Result<_>>()?;
        let mut done = HashSet::new();
        for (p, n) in todo.iter().zip(copied) {
            if n != p.used_blobs as u64 {
                return Err(Error::integrity(
                    format!("pack {}", p.id.short()),
                    format!("repacking found {n} of its {} used blobs; prune deleted nothing", p.used_blobs),
                ));
            }
            done.insert(p.id);
        }
        self.opts.reached(Step::Repack)?;
        report.index_files_written += packer.finish()?.len();
        let stats = packer.stats();
        report.packs_written = stats.packs;
        report.bytes_written = stats.stored_bytes;
        report.blobs_repacked = stats.blobs;
        Ok(done)
    }

    /// Copy one pack's used blobs, each authenticated first; returns how many were copied.
    fn repack_one(&self, repo: &Repository, packer: &Packer, p: &super::PackPlan, progress: &Progress) -> Result<u64> {
        let name = p.id.to_hex();
        let bytes = repo.backend().read_at(FileType::Pack, &name, 0, p.size as usize)?;
        progress.repack.add(bytes.len() as u64);
        let record = repo.toc_of_bytes(&p.id, &bytes)?;
        let mut copied = 0;
        for b in record.blobs {
            if !self.is_chosen_used(b.blob_type, &b.id, &p.id, b.offset) {
                continue;
            }
            let env = &bytes[b.offset as usize..b.offset as usize + b.stored_len as usize];
            let plain = repo.open_blob(record.ephemeral.as_ref(), b.blob_type, &b.id, env).map_err(|e| match e {
                Error::Integrity { object, reason } => Error::integrity(
                    format!("{object} in pack {}", p.id.short()),
                    format!("{reason}; it is used by a snapshot, so prune stopped before deleting anything"),
                ),
                e => e,
            })?;
            if record.ephemeral.is_some() {
                // Sealed by a backup key to the read key: prune's packs are sealed under K_enc.
                packer.store_again(b.blob_type, b.id, &plain)?;
            } else {
                packer.add_sealed(b.blob_type, b.id, plain.len() as u32, env)?;
            }
            copied += 1;
        }
        Ok(copied)
    }

    /// Whether this copy (pack, offset) of a blob is the chosen copy of a used blob.
    fn is_chosen_used(&self, t: BlobType, id: &Id, pack: &Id, offset: u32) -> bool {
        let Some(pos) = self.index.position(t, id) else { return false };
        if !self.used.get(pos) {
            return false;
        }
        let (n, off, _) = self.index.at(pos);
        self.index.packs()[n].id == *pack && off == offset
    }

    fn action_of(&self, pack: &Id) -> Option<PackAction> {
        self.pack_of.get(pack).map(|&i| self.packs[i].action)
    }

    /// Step 5: account for what backups wrote since the plan. Stops if another deleting
    /// operation changed the index; rescues planned removals that new snapshots need.
    fn reconcile(&mut self, repo: &Repository, progress: &Progress) -> Result<Meanwhile> {
        let now: HashSet<Id> = repo.index_ids()?.into_iter().collect();
        if let Some(gone) = self.index_files.iter().find(|id| !now.contains(id)) {
            return Err(Error::Locked(format!(
                "index file {} was removed since prune started (another prune or repair ran); \
                 nothing was deleted, run prune again",
                gone.short()
            )));
        }
        let old: HashSet<Id> = self.index_files.iter().copied().collect();
        let mut records = Vec::new();
        for id in now.iter().filter(|id| !old.contains(id)) {
            records.extend(repo.load_index_file(id).map_err(|e| stop(e, "a new index file"))?);
        }
        let new_index = Index::from_packs(records);
        // A pack a new index file names stays, whatever the plan said: that file (a backup's,
        // or one an interrupted prune or repair left) is not removed, and must not name a
        // removed pack. It also makes every blob such a file lists safe to rely on below.
        let mut rescued = 0;
        for p in new_index.packs() {
            if let Some(&i) = self.pack_of.get(&p.id) {
                if self.packs[i].action != PackAction::Keep && !self.packs[i].missing {
                    self.packs[i].action = PackAction::Keep;
                    rescued += 1;
                }
            }
        }
        let known: HashSet<Id> = self.snapshots.iter().copied().collect();
        let fresh: Vec<_> = load_snapshots_strict(repo)?.into_iter().filter(|(id, _)| !known.contains(id)).collect();
        for (sid, snap) in &fresh {
            rescued += self.walk_new_snapshot(repo, &new_index, sid, snap.tree, progress)?;
        }
        Ok(Meanwhile { index: new_index, snapshots: fresh.len(), rescued })
    }

    /// Walk a snapshot written since the plan; keep every planned removal it needs.
    fn walk_new_snapshot(
        &mut self,
        repo: &Repository,
        new: &Index,
        sid: &Id,
        root: Id,
        progress: &Progress,
    ) -> Result<usize> {
        let mut seen: HashSet<Id> = HashSet::new();
        let mut rescue: HashSet<Id> = HashSet::new();
        {
            let this = &*self;
            let read = |id: &Id| {
                let index = if this.index.contains(BlobType::Tree, id) { &this.index } else { new };
                repo.read_tree(index, id).map_err(|e| reach::unreadable(sid, e))
            };
            let mut visit = |t: BlobType, id: &Id| -> Result<bool> {
                if let Some(pos) = this.index.position(t, id) {
                    if this.used.get(pos) {
                        // Used at plan time: kept or repacked, and everything below it too.
                        return Ok(false);
                    }
                    let (n, _, _) = this.index.at(pos);
                    let pack = this.index.packs()[n].id;
                    if this.action_of(&pack) != Some(PackAction::Keep) && !new.contains(t, id) {
                        rescue.insert(pack);
                    }
                } else if !new.contains(t, id) {
                    return Err(reach::missing(sid, t, id));
                }
                Ok(t == BlobType::Tree && seen.insert(*id))
            };
            reach::walk(root, &read, &mut visit, progress)?;
        }
        let mut n = 0;
        for pack in rescue {
            let i = self.pack_of[&pack];
            if self.packs[i].missing {
                return Err(Error::integrity(
                    format!("snapshot {}", sid.short()),
                    format!("needs pack {}, which is missing; prune deleted nothing", pack.short()),
                ));
            }
            if self.packs[i].action != PackAction::Keep {
                self.packs[i].action = PackAction::Keep;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Step 6: index files holding the records of every kept pack, written one old index file
    /// at a time so no second copy of the whole index is held. A pack whose entries are split
    /// over several records keeps all of them; identical records are written once.
    fn write_index(&self, repo: &Repository, repacked: &HashSet<Id>) -> Result<usize> {
        let mut done: HashSet<(Id, [u8; 32])> = HashSet::new();
        let mut in_k: HashSet<Id> = HashSet::new();
        let mut batch: Vec<IndexPack> = Vec::new();
        let mut blobs = 0;
        let mut files = 0;
        for id in &self.rewritten_index_files() {
            let records = repo.load_index_file(id).map_err(|e| stop(e, "an index file read before"))?;
            for r in records {
                if self.action_of(&r.id) != Some(PackAction::Keep) {
                    continue;
                }
                let fingerprint = *blake3::hash(&crate::format::index::encode(std::slice::from_ref(&r))).as_bytes();
                if !done.insert((r.id, fingerprint)) {
                    continue;
                }
                if blobs + r.blobs.len() > packer::INDEX_FILE_BLOBS && !batch.is_empty() {
                    repo.save_index(&batch)?;
                    files += 1;
                    (batch, blobs) = (Vec::new(), 0);
                }
                blobs += r.blobs.len();
                in_k.insert(r.id);
                batch.push(r);
            }
        }
        if !batch.is_empty() {
            repo.save_index(&batch)?;
            files += 1;
        }
        self.verify_coverage(&in_k, repacked)?;
        Ok(files)
    }

    /// The invariant step 7 relies on, checked blob by blob against what was written: the
    /// chosen copy of every used blob lies in a pack the new index files name, or was copied
    /// into a new pack. (Blobs reached only by snapshots written meanwhile were checked while
    /// walking them: in a kept pack, or in a pack a new index file names, which is kept.)
    fn verify_coverage(&self, in_k: &HashSet<Id>, repacked: &HashSet<Id>) -> Result<()> {
        for pos in (0..self.index.len()).filter(|&p| self.used.get(p)) {
            let (n, _, _) = self.index.at(pos);
            let pack = self.index.packs()[n].id;
            let copied = repacked.contains(&pack) && self.action_of(&pack) == Some(PackAction::Repack);
            let held = self.retention.as_ref().is_some_and(|h| h.packs.contains(&pack));
            if !in_k.contains(&pack) && !copied && !held {
                return Err(Error::integrity(
                    format!("pack {}", pack.short()),
                    "a used blob in it would not be in the new index; prune stopped before removing anything",
                ));
            }
        }
        Ok(())
    }

    /// The index files the new index replaces: all those of the plan but the ones the
    /// storage still retains (which stay as they are, with the packs they name).
    fn rewritten_index_files(&self) -> Vec<Id> {
        let held = |id: &Id| self.retention.as_ref().is_some_and(|h| h.index.contains(id));
        self.index_files.iter().filter(|id| !held(id)).copied().collect()
    }

    /// Remove files, in parallel; one already gone counts as removed. Returns how many.
    fn remove_all(&self, repo: &Repository, t: FileType, ids: &[Id], progress: &Progress) -> Result<usize> {
        let remove = |id: &Id| match &self.retention {
            Some(hold) => super::retention::remove(repo, hold, t, id),
            None => repo.remove_file(t, &id.to_hex()),
        };
        ids.par_iter()
            .map(|id| match repo.ensure_locks_fresh().and_then(|()| remove(id)) {
                Ok(()) => Ok(()),
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            })
            .inspect(|_| {
                progress.removed.fetch_add(1, Relaxed);
            })
            .collect::<Result<Vec<()>>>()
            .map(|v| v.len())
    }

    /// Step 8's list: packs planned for removal, and unindexed packs still unindexed now.
    fn doomed_packs(&self, new: &Index) -> Vec<(Id, u64)> {
        let named_now: HashSet<Id> = new.packs().iter().map(|p| p.id).collect();
        let planned = self.packs.iter().filter(|p| p.action != PackAction::Keep && !p.missing).map(|p| (p.id, p.size));
        let stray = self.unindexed.iter().filter(|(id, _)| !named_now.contains(id)).copied();
        planned.chain(stray).collect()
    }
}

fn stop(e: Error, what: &str) -> Error {
    match e {
        Error::Integrity { object, reason } => {
            Error::integrity(object, format!("{reason} ({what}); prune deleted nothing"))
        }
        e => e,
    }
}
