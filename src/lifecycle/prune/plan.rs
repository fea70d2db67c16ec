//! Step 1 of prune (§17.7): read the index and the snapshots, mark the used blobs, classify
//! every pack. Writes nothing; the result is a value `--dry-run` prints.

use super::reach::{self, Bitset};
use super::{Progress, PruneOptions, Step};
use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::blob::BlobType;
use crate::format::index::IndexPack;
use crate::format::snapshot::Snapshot;
use crate::id::Id;
use crate::repo::index::Index;
use crate::repo::Repository;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

/// What prune does with a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackAction {
    /// Every blob in it is used (or it is partly used and within the unused allowance).
    Keep,
    /// Partly used: its used blobs are copied into new packs, then it is removed.
    Repack,
    /// No used blob (or missing from `data/`): removed.
    Delete,
}

/// One pack of the index and the decision about it.
#[derive(Clone, Debug, Serialize)]
pub struct PackPlan {
    /// Pack ID.
    pub id: Id,
    /// Length in bytes (as the index records it).
    pub size: u64,
    /// Blob entries its index record lists.
    pub blobs: u32,
    /// Used blobs whose chosen copy it holds.
    pub used_blobs: u32,
    /// Envelope bytes of those blobs.
    pub used_bytes: u64,
    /// Whether the file is missing from `data/` (only possible for an unused pack).
    pub missing: bool,
    /// The decision.
    pub action: PackAction,
}

impl PackPlan {
    fn unused_bytes(&self) -> u64 {
        self.size.saturating_sub(self.used_bytes)
    }
}

/// Totals of a plan (what `--dry-run` reports).
#[derive(Clone, Debug, Default, Serialize)]
pub struct PlanStats {
    /// Snapshots read.
    pub snapshots: usize,
    /// Index files read.
    pub index_files: usize,
    /// Distinct blobs indexed.
    pub blobs: usize,
    /// Of those, used by a snapshot.
    pub blobs_used: usize,
    /// Packs the index names, and their bytes.
    pub packs: usize,
    /// Bytes of those packs.
    pub pack_bytes: u64,
    /// Packs kept as they are.
    pub keep_packs: usize,
    /// Bytes of kept packs.
    pub keep_bytes: u64,
    /// Packs deleted (no used blob).
    pub delete_packs: usize,
    /// Bytes of deleted packs.
    pub delete_bytes: u64,
    /// Packs repacked.
    pub repack_packs: usize,
    /// Bytes of repacked packs (read).
    pub repack_bytes: u64,
    /// Bytes of used blobs in repacked packs (written again).
    pub repack_used_bytes: u64,
    /// Packs no index names (deleted), and their bytes.
    pub unindexed_packs: usize,
    /// Bytes of unindexed packs.
    pub unindexed_bytes: u64,
    /// Packs the index names that are not in `data/` (no used blob in them; dropped).
    pub missing_packs: usize,
    /// Unused bytes in packs before prune.
    pub unused_before: u64,
    /// Unused bytes left in kept packs after prune.
    pub unused_after: u64,
    /// Bytes prune frees (removed minus rewritten).
    pub freed_bytes: u64,
    /// Memory of the used-blob set, bytes.
    pub used_set_bytes: usize,
    /// What the storage's retention (S3 Object Lock) defers, where it has one.
    pub retention: Option<super::retention::RetentionStats>,
}

/// A prune's decisions, made under a shared lock; [`Plan::execute`] carries them out.
pub struct Plan {
    pub(super) index: Index,
    pub(super) used: Bitset,
    pub(super) index_files: Vec<Id>,
    pub(super) snapshots: Vec<Id>,
    pub(super) pack_of: HashMap<Id, usize>,
    /// Every pack the index names, with its decision.
    pub packs: Vec<PackPlan>,
    /// Packs in `data/` that no index names (left by interrupted writers): removed at commit if
    /// still unindexed then.
    pub unindexed: Vec<(Id, u64)>,
    /// Totals.
    pub stats: PlanStats,
    pub(super) opts: PruneOptions,
    /// What the storage's retention keeps from being removed yet (S3 Object Lock).
    pub(super) retention: Option<super::retention::Hold>,
}

/// Read the repository and decide what to delete and repack (§17.7 step 1). The caller holds a
/// shared lock.
pub fn plan(repo: &Repository, opts: &PruneOptions, progress: &Progress) -> Result<Plan> {
    // Repacking would move blobs of both key generations into one (format-spec/25 §25.4).
    repo.refuse_during_rotation("prune")?;
    progress.phase("reading the index");
    // Snapshots first: a snapshot's index files are durable before it is (§17.2), so every
    // snapshot listed here finds its blobs in the index listed next, even while backups run.
    let snapshots = load_snapshots_strict(repo)?;
    refuse_lost_files(repo)?;
    let (index_files, index, shadowed) = load_index_strict(repo)?;
    progress.phase("finding used blobs");
    let used = mark_used(repo, &index, &snapshots, progress)?;
    let (mut packs, pack_of) = pack_usage(&index, &used);
    let on_disk: HashMap<Id, u64> = repo
        .list_objects(FileType::Pack)?
        .into_iter()
        .filter_map(|(n, len)| Id::from_hex(&n).map(|id| (id, len)))
        .collect();
    check_present(&mut packs, &on_disk)?;
    let unindexed: Vec<(Id, u64)> = {
        let mut u: Vec<_> = on_disk.iter().filter(|(id, _)| !pack_of.contains_key(id)).map(|(i, l)| (*i, *l)).collect();
        u.sort();
        u
    };
    choose_repacks(&mut packs, opts);
    verify_standing_copies(repo, &index, &used, &packs, &shadowed)?;
    let mut plan = Plan {
        index,
        used,
        index_files,
        snapshots: snapshots.iter().map(|(id, _)| *id).collect(),
        pack_of,
        packs,
        unindexed,
        stats: PlanStats::default(),
        opts: opts.clone(),
        retention: None,
    };
    let retention = super::retention::apply(repo, &mut plan)?;
    plan.stats = PlanStats { retention, ..plan.totals() };
    opts.reached(Step::Plan)?;
    Ok(plan)
}

/// A lost index file or snapshot (its parity file remains) may hold the only reference to data
/// prune would delete: stop until it is restored or its removal acknowledged (format-spec/22
/// §22.8). A writer that does not know parity removes files and leaves their parity (§16.6):
/// the message names the way out.
fn refuse_lost_files(repo: &Repository) -> Result<()> {
    use crate::format::header::FileKind;
    let lost: Vec<String> = repo
        .lost_files()?
        .into_iter()
        .filter_map(|(kind, id)| match kind {
            Some(k @ (FileKind::Index | FileKind::Snapshot)) => Some(format!("{} {id}", k.name())),
            _ => None,
        })
        .collect();
    let Some(first) = lost.first() else { return Ok(()) };
    let more = match lost.len() {
        1 => String::new(),
        n => format!(" (and {} more index files or snapshots)", n - 1),
    };
    Err(Error::integrity(
        first.clone(),
        format!(
            "missing, but its parity file is there{more}: it was lost, and may be all that keeps data in use; \
             prune deleted nothing (`arca repair packs` restores what its parity can, `arca repair index` \
             replaces a lost index file; if a writer that does not know parity removed them on purpose, \
             `arca parity build --drop-orphans` acknowledges that, format-spec 16.6)"
        ),
    ))
}

/// Every index file, or an error: prune must not decide on a partial index (§10.3).
/// For each pack, the blobs it lists whose canonical copy the index puts in another pack.
pub(super) type Shadowed = HashMap<Id, Vec<(BlobType, Id)>>;

fn load_index_strict(repo: &Repository) -> Result<(Vec<Id>, Index, Shadowed)> {
    let ids = repo.index_ids()?;
    let loaded: Vec<Result<Vec<IndexPack>>> = ids.par_iter().map(|id| repo.load_index_file(id)).collect();
    let mut records = Vec::new();
    for (id, r) in ids.iter().zip(loaded) {
        match r {
            Ok(p) => records.push(p),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Locked(format!(
                    "index file {} vanished while prune read it (another prune or repair ran); \
                     nothing was deleted",
                    id.short()
                )))
            }
            Err(e) => return Err(stop_damaged(e, "run `arca repair index`")),
        }
    }
    let index = Index::from_packs(records.iter().flatten().cloned());
    let shadowed = shadowed_copies(records.iter().flatten(), &index);
    Ok((ids, index, shadowed))
}

/// The blobs each pack lists whose canonical copy is in another pack (duplicates).
fn shadowed_copies<'a>(records: impl Iterator<Item = &'a IndexPack>, index: &Index) -> Shadowed {
    let mut out = Shadowed::new();
    for p in records {
        for b in &p.blobs {
            if index.lookup(b.blob_type, &b.id).is_some_and(|loc| loc.pack != p.id) {
                out.entry(p.id).or_default().push((b.blob_type, b.id));
            }
        }
    }
    out
}

/// Before a pack goes, the copies that stand in for its used blobs must be good. The index's
/// canonical copy of a blob is wherever an index file says — damage, or an index file a backup
/// key wrote to point blobs at a pack of its own (format-spec/24 §24.9) — and removing the pack
/// would lose the only good copy. Each such copy is read and checked against its ID; one that
/// fails stops prune before anything is deleted.
fn verify_standing_copies(
    repo: &Repository,
    index: &Index,
    used: &Bitset,
    packs: &[PackPlan],
    shadowed: &Shadowed,
) -> Result<()> {
    let wanted: std::collections::BTreeSet<(BlobType, Id)> = packs
        .iter()
        .filter(|p| p.action != PackAction::Keep)
        .filter_map(|p| shadowed.get(&p.id))
        .flatten()
        .filter(|(t, id)| index.position(*t, id).is_some_and(|pos| used.get(pos)))
        .copied()
        .collect();
    let wanted: Vec<(BlobType, Id)> = wanted.into_iter().collect();
    let failed: Vec<(BlobType, Id, Error)> = repo.io_scope(|| {
        wanted.par_iter().filter_map(|(t, id)| repo.read_blob(index, *t, id).err().map(|e| (*t, *id, e))).collect()
    });
    match failed.into_iter().next() {
        None => Ok(()),
        Some((t, id, e)) => Err(Error::integrity(
            crate::format::blob::describe(t, &id),
            format!(
                "the index's chosen copy does not read ({e}), while a pack prune would remove holds another \
                 copy: a damaged or hostile index file; prune deleted nothing (run `arca repair index`)"
            ),
        )),
    }
}

/// Every snapshot, or an error: a snapshot that cannot be read may use any blob.
pub(super) fn load_snapshots_strict(repo: &Repository) -> Result<Vec<(Id, Snapshot)>> {
    let (good, bad) = repo.list_snapshots_and_damage()?;
    if let Some((_, e)) = bad.into_iter().next() {
        return Err(stop_damaged(e, "remove it with `arca forget ID` if it cannot be recovered"));
    }
    Ok(good)
}

fn stop_damaged(e: Error, hint: &str) -> Error {
    match e {
        Error::Integrity { object, reason } => {
            Error::integrity(object, format!("{reason}; prune deleted nothing ({hint})"))
        }
        e => e,
    }
}

/// The used set: one bit per indexed blob, set for everything a snapshot reaches.
fn mark_used(repo: &Repository, index: &Index, snapshots: &[(Id, Snapshot)], progress: &Progress) -> Result<Bitset> {
    let mut used = Bitset::new(index.len());
    for (sid, snap) in snapshots {
        let read = |id: &Id| repo.read_tree(index, id).map_err(|e| reach::unreadable(sid, e));
        let mut visit = |t: BlobType, id: &Id| match index.position(t, id) {
            Some(pos) => Ok(used.set(pos)),
            None => Err(reach::missing(sid, t, id)),
        };
        reach::walk(snap.tree, &read, &mut visit, progress)?;
        progress.snapshots.fetch_add(1, Relaxed);
    }
    Ok(used)
}

/// One plan per distinct pack ID, with its used blobs counted from the chosen copies.
fn pack_usage(index: &Index, used: &Bitset) -> (Vec<PackPlan>, HashMap<Id, usize>) {
    let mut packs: Vec<PackPlan> = Vec::new();
    let mut pack_of: HashMap<Id, usize> = HashMap::new();
    // A pack named by several index files has several numbers; all map to one plan.
    let number_to_plan: Vec<usize> = index
        .packs()
        .iter()
        .map(|p| {
            *pack_of.entry(p.id).or_insert_with(|| {
                packs.push(PackPlan {
                    id: p.id,
                    size: p.size as u64,
                    blobs: p.blobs,
                    used_blobs: 0,
                    used_bytes: 0,
                    missing: false,
                    action: PackAction::Keep,
                });
                packs.len() - 1
            })
        })
        .collect();
    for pos in (0..index.len()).filter(|&p| used.get(p)) {
        let (n, _, len) = index.at(pos);
        let plan = &mut packs[number_to_plan[n]];
        plan.used_blobs += 1;
        plan.used_bytes += len as u64;
    }
    for p in &mut packs {
        p.action = if p.used_blobs == 0 {
            PackAction::Delete
        } else if p.used_blobs == p.blobs {
            PackAction::Keep
        } else {
            // Partly used: a repack candidate; [`choose_repacks`] decides.
            PackAction::Repack
        };
    }
    (packs, pack_of)
}

/// A pack holding used blobs must exist with the recorded length; an unused one that is gone
/// is simply dropped from the index.
fn check_present(packs: &mut [PackPlan], on_disk: &HashMap<Id, u64>) -> Result<()> {
    for p in packs.iter_mut() {
        let ok = on_disk.get(&p.id) == Some(&p.size);
        if ok {
            continue;
        }
        if p.used_blobs > 0 {
            let what = match on_disk.get(&p.id) {
                None => "is missing".to_string(),
                Some(len) => format!("is {len} bytes, the index says {}", p.size),
            };
            return Err(Error::integrity(
                format!("pack {}", p.id),
                format!(
                    "{what}, and snapshots use {} of its blobs; prune deleted nothing (run `arca check`)",
                    p.used_blobs
                ),
            ));
        }
        p.missing = on_disk.get(&p.id).is_none();
    }
    Ok(())
}

/// Repack partly used packs, most unused first, until the unused space left is within the
/// allowance or the repack budget is spent; keep the rest.
fn choose_repacks(packs: &mut [PackPlan], opts: &PruneOptions) {
    let used: u64 = packs.iter().map(|p| p.used_bytes).sum();
    let mut unused: u64 = packs.iter().filter(|p| p.action != PackAction::Delete).map(|p| p.unused_bytes()).sum();
    let allowed = opts.max_unused.allowed(used);
    let mut candidates: Vec<usize> = (0..packs.len()).filter(|&i| packs[i].action == PackAction::Repack).collect();
    candidates.sort_by_key(|&i| (std::cmp::Reverse(packs[i].unused_bytes()), packs[i].id));
    let mut budget = opts.max_repack_bytes.unwrap_or(u64::MAX);
    for i in candidates {
        let p = &mut packs[i];
        if unused <= allowed || p.size > budget {
            p.action = PackAction::Keep;
            continue;
        }
        budget -= p.size;
        unused -= p.unused_bytes();
    }
}

impl Plan {
    fn totals(&self) -> PlanStats {
        let mut s = PlanStats {
            snapshots: self.snapshots.len(),
            index_files: self.index_files.len(),
            blobs: self.index.len(),
            blobs_used: self.used.count(),
            packs: self.packs.len(),
            unindexed_packs: self.unindexed.len(),
            unindexed_bytes: self.unindexed.iter().map(|(_, l)| l).sum(),
            used_set_bytes: self.used.bytes(),
            ..PlanStats::default()
        };
        for p in &self.packs {
            s.pack_bytes += p.size;
            s.unused_before += p.unused_bytes();
            match p.action {
                PackAction::Keep => {
                    s.keep_packs += 1;
                    s.keep_bytes += p.size;
                    s.unused_after += p.unused_bytes();
                }
                PackAction::Repack => {
                    s.repack_packs += 1;
                    s.repack_bytes += p.size;
                    s.repack_used_bytes += p.used_bytes;
                }
                PackAction::Delete => {
                    s.delete_packs += 1;
                    if p.missing {
                        s.missing_packs += 1;
                    } else {
                        s.delete_bytes += p.size;
                    }
                }
            }
        }
        s.freed_bytes = (s.delete_bytes + s.unindexed_bytes + s.repack_bytes).saturating_sub(s.repack_used_bytes);
        s
    }

    /// Whether running the plan would change nothing.
    pub fn is_noop(&self) -> bool {
        self.packs.iter().all(|p| p.action == PackAction::Keep) && self.unindexed.is_empty()
    }
}
