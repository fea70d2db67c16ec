//! Self-healing (format-spec/22-parity.md §22.7–22.9): `arca repair packs` rebuilds damaged or
//! lost packs, index files and snapshots from their parity files; `arca parity build` brings
//! parity in step with the policy; `arca parity status` says how much is protected.
//!
//! **repair packs** reads every pack, index file and snapshot whole (in parallel, one file per
//! worker, so memory is a few packs) and hashes it. A file that does not hash to its name is
//! rebuilt in memory from its parity file (damaged shards are located by their checksums, each
//! damaged segment decoded), accepted only if the result hashes to the name, and published over
//! the damaged file atomically (tmp, fsync, rename, fsync dir), then read back and hashed again.
//! A parity file whose own shards or table are damaged is rewritten from its (healthy or healed)
//! file. A parity file whose file is missing restores the file when it holds enough shards
//! (snapshots always do: they get as many recovery shards as data shards; small files do by the
//! one-sector minimum) and the file is still wanted: an index file whose packs all exist, then a
//! pack the index names, a snapshot whose root tree is indexed — "the index" being the one this
//! run leaves, damaged index files repaired and missing ones restored (§22.7, order), so one run
//! restores what a second run would. Anything else was most likely removed by a writer that does
//! not know parity (§16.6), and restoring it would bring back references to deleted data. What
//! cannot be rebuilt is named, and for packs the snapshot paths that need them are found by a
//! check that reads exactly those packs. A failure that concerns one file (it cannot be
//! replaced, say) is reported for that file; the run goes on.
//!
//! **parity build** writes parity for every file that has none, or whose parity has another
//! geometry than the policy gives now (after `parity set`), or is damaged; with the policy off it
//! removes parity files. A file that does not hash to its name gets no parity (that would
//! protect the damage): it is named, for `repair packs`.

use crate::backend::{is_object_name, FileType};
use crate::error::{Error, Result};
use crate::format::header::FileKind;
use crate::format::parity::Geometry;
use crate::id::Id;
use crate::repo::parity::{parity_intact, protected_type, Assessment, ParityFile, PROTECTED_KINDS};
use crate::repo::Repository;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A protected file and what happened to it.
#[derive(Clone, Debug, Serialize)]
pub struct FileNote {
    /// `pack 3fa2…`, `index …`, `snapshot …`.
    pub file: String,
    /// What was found or done.
    pub detail: String,
}

/// Options of [`repair_files`].
#[derive(Clone, Copy, Debug, Default)]
pub struct HealOptions {
    /// Find and rebuild in memory, but write nothing.
    pub dry_run: bool,
}

/// What [`repair_files`] did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HealReport {
    /// Files read and hashed.
    pub files_checked: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Files rebuilt from parity (in a dry run: that would be).
    pub repaired: Vec<FileNote>,
    /// Damaged or missing files that parity cannot rebuild.
    pub unrepairable: Vec<FileNote>,
    /// Parity files rewritten because their own shards were damaged (or would be).
    pub parity_rewritten: Vec<FileNote>,
    /// Healthy files without parity (`arca parity build` adds it).
    pub unprotected: u64,
    /// For each snapshot that needs an unrepairable pack: the paths affected.
    pub affected: BTreeMap<String, Vec<String>>,
}

impl HealReport {
    /// True when nothing is left damaged.
    pub fn ok(&self) -> bool {
        self.unrepairable.is_empty()
    }
}

enum Heal {
    Healthy {
        parity: ParityState,
    },
    /// Rebuilt; for an index file, with its bytes: missing files are judged by the index this
    /// run leaves, which a dry run has not published.
    Repaired(FileNote, Option<Vec<u8>>),
    Unrepairable(FileNote),
}

/// A missing file rebuilt from its parity (and, unless in a dry run, published).
struct Restored {
    note: String,
    bytes: Vec<u8>,
}

enum ParityState {
    Intact,
    Absent,
    Rewritten(FileNote),
}

/// `arca repair packs`: see the module documentation.
pub fn repair_files(repo: &Repository, opts: HealOptions) -> Result<HealReport> {
    repo.refuse_during_rotation("repair packs")?;
    let (files, parity) = repo.parity_listing()?;
    let bytes_read = AtomicU64::new(0);
    let outcomes: Vec<Result<Heal>> = files
        .par_iter()
        .map(|(kind, id, _)| heal_one(repo, *kind, id, parity.contains(id), opts, &bytes_read))
        .collect();
    let mut r = HealReport { files_checked: files.len() as u64, ..Default::default() };
    let mut lost_packs = HashSet::new();
    let mut rebuilt_index = Vec::new();
    let policy_on = repo.parity_overhead() > 0;
    for (o, (kind, id, _)) in outcomes.into_iter().zip(&files) {
        match per_file(o, &format!("{} {id}", kind.name()))? {
            Heal::Healthy { parity: ParityState::Intact } => {}
            Heal::Healthy { parity: ParityState::Absent } => r.unprotected += u64::from(policy_on),
            Heal::Healthy { parity: ParityState::Rewritten(n) } => r.parity_rewritten.push(n),
            Heal::Repaired(n, bytes) => {
                r.repaired.push(n);
                rebuilt_index.extend(bytes);
            }
            Heal::Unrepairable(n) => {
                if *kind == FileKind::Pack {
                    lost_packs.insert(*id);
                }
                r.unrepairable.push(n)
            }
        }
    }
    // Parity files whose file is gone: the file was lost (writers remove parity first).
    let lost = repo.lost_among(&files, &parity);
    restore_lost(repo, lost, rebuilt_index, opts, &mut r, &mut lost_packs)?;
    r.bytes_read = bytes_read.into_inner();
    if !lost_packs.is_empty() {
        r.affected = crate::check::affected_by_packs(repo, &lost_packs)?;
    }
    Ok(r)
}

/// Restore the missing files `lost` that their parity rebuilds and that are still wanted (§22.7,
/// order): index files first, then packs and snapshots, judged by the index as this run leaves
/// it (`rebuilt_index`: the bytes of the index files it repaired). Packs that an index names but
/// that stay lost go to `lost_packs`.
fn restore_lost(
    repo: &Repository,
    lost: Vec<(Option<FileKind>, Id)>,
    mut rebuilt_index: Vec<Vec<u8>>,
    opts: HealOptions,
    r: &mut HealReport,
    lost_packs: &mut HashSet<Id>,
) -> Result<()> {
    let (lost_index, lost_rest): (Vec<_>, Vec<_>) =
        lost.into_iter().partition(|(kind, _)| *kind == Some(FileKind::Index));
    for (_, id) in &lost_index {
        let file = format!("index {id}");
        let restored =
            restore_missing(repo, FileKind::Index, id, None, |b| unwanted(repo, None, FileKind::Index, id, b), opts);
        match per_file(restored, &file)? {
            Ok(done) => {
                r.repaired.push(FileNote { file, detail: done.note });
                rebuilt_index.push(done.bytes);
            }
            Err(why) => r.unrepairable.push(FileNote { file, detail: format!("missing; {why}") }),
        }
    }
    let index = if lost_rest.is_empty() { Default::default() } else { index_after(repo, &rebuilt_index)? };
    for (kind, id) in &lost_rest {
        let Some(kind) = *kind else {
            r.unrepairable.push(FileNote {
                file: format!("parity file {id}"),
                detail: "protects a missing file, and its own fixed part is damaged".into(),
            });
            continue;
        };
        let file = format!("{} {id}", kind.name());
        let named = index.packs().iter().find(|p| p.id == *id).map(|p| u64::from(p.size));
        let restored = match (kind, named) {
            // Only a pack an index names is rebuilt, at the length the index gives: its parity is
            // not even read otherwise (a planted parity file must not cost memory).
            (FileKind::Pack, None) => Ok(Err("no index file names it; its parity was not read".to_string())),
            _ => restore_missing(repo, kind, id, named, |b| unwanted(repo, Some(&index), kind, id, b), opts),
        };
        match per_file(restored, &file)? {
            Ok(done) => r.repaired.push(FileNote { file, detail: done.note }),
            Err(why) => {
                if kind == FileKind::Pack && named.is_some() {
                    lost_packs.insert(*id);
                }
                r.unrepairable.push(FileNote { file, detail: format!("missing; {why}") });
            }
        }
    }
    Ok(())
}

/// One file's failure (it cannot be replaced, its parity cannot be read) is reported for that
/// file and the run goes on; a lost lock stops everything.
fn per_file<T: From<FileNote>>(r: Result<T>, file: &str) -> Result<T> {
    match r {
        Err(e @ Error::Locked(_)) => Err(e),
        Err(e) => Ok(T::from(FileNote { file: file.to_string(), detail: format!("could not be repaired: {e}") })),
        ok => ok,
    }
}

impl From<FileNote> for Heal {
    fn from(n: FileNote) -> Heal {
        Heal::Unrepairable(n)
    }
}

impl From<FileNote> for std::result::Result<Restored, String> {
    fn from(n: FileNote) -> Self {
        Err(n.detail)
    }
}

/// Restore the missing file `id` of `kind` from its parity, if it can be rebuilt whole and
/// `unwanted` has no objection to the rebuilt bytes: `Ok(restored)` or `Err(why not)`.
/// `expected` is its length as the index records it (packs).
fn restore_missing(
    repo: &Repository,
    kind: FileKind,
    id: &Id,
    expected: Option<u64>,
    unwanted: impl FnOnce(&[u8]) -> Result<Option<String>>,
    opts: HealOptions,
) -> Result<std::result::Result<Restored, String>> {
    let (bytes, damage) = match repo.rebuild_expecting(kind, id, &[], true, expected)? {
        Assessment::Repairable { bytes, damage, .. } => (bytes, damage),
        Assessment::Unrepairable(why) => return Ok(Err(format!("its parity cannot restore it: {why}"))),
        Assessment::Healthy => return Ok(Ok(Restored { note: "present after all".into(), bytes: Vec::new() })),
    };
    if let Some(why) = unwanted(&bytes)? {
        return Ok(Err(unwanted_detail(&why)));
    }
    if !opts.dry_run {
        publish_verified(repo, kind, id, &bytes)?;
        if damage.recovery_shards > 0 || damage.table_damaged {
            rewrite_parity(repo, kind, id, &bytes)?;
        }
    }
    Ok(Ok(Restored { note: "was missing; restored whole from its parity".into(), bytes }))
}

/// Why a missing file that its parity restores is not restored, and the way out.
pub(crate) fn unwanted_detail(why: &str) -> String {
    format!(
        "its parity could restore it, but {why}: it was most likely removed by a writer that does not know \
         parity (format-spec 16.6); `arca parity build --drop-orphans` acknowledges such removals"
    )
}

/// The index that missing packs and snapshots are judged by (§22.7): every index file that reads
/// now, and the index files this run rebuilt (`rebuilt`, their bytes: a dry run has not
/// published them). A rebuilt file that does not decrypt names nothing.
pub(crate) fn index_after(repo: &Repository, rebuilt: &[Vec<u8>]) -> Result<crate::repo::index::Index> {
    let (mut index, _damaged) = repo.load_index_reporting()?;
    let what = "rebuilt index file";
    let records = rebuilt
        .iter()
        .filter_map(|b| repo.decrypt_file(FileKind::Index, b, what).ok())
        .filter_map(|body| crate::format::index::decode(&body, what).ok());
    index.add_packs(records.flatten());
    Ok(index)
}

/// Why a missing file rebuilt from parity (`bytes`) is not wanted any more, if it is not
/// (§22.7): an index file that names a pack which is gone; a pack that `index` does not name at
/// this length; a snapshot whose root tree `index` does not hold. `index` is [`index_after`]'s
/// (not needed for an index file; without one, a pack or snapshot is not wanted).
pub(crate) fn unwanted(
    repo: &Repository,
    index: Option<&crate::repo::index::Index>,
    kind: FileKind,
    id: &Id,
    bytes: &[u8],
) -> Result<Option<String>> {
    use crate::format::blob::BlobType;
    let indexed = |test: &dyn Fn(&crate::repo::index::Index) -> bool| index.is_some_and(test);
    Ok(match kind {
        FileKind::Pack => (!indexed(&|i| i.packs().iter().any(|p| p.id == *id && p.size as usize == bytes.len())))
            .then(|| "no index file names it".to_string()),
        FileKind::Snapshot => {
            let what = format!("snapshot {id}");
            let body = repo.decrypt_file(kind, bytes, &what)?;
            let snap = crate::format::snapshot::Snapshot::decode(&body, &what)?;
            (!indexed(&|i| i.contains(BlobType::Tree, &snap.tree)))
                .then(|| "its root tree is not in the index".to_string())
        }
        _ => {
            let what = format!("index {id}");
            let packs = crate::format::index::decode(&repo.decrypt_file(kind, bytes, &what)?, &what)?;
            let present: HashSet<String> = repo.list_objects(FileType::Pack)?.into_iter().map(|(n, _)| n).collect();
            packs
                .iter()
                .find(|p| !present.contains(&p.id.to_hex()))
                .map(|p| format!("it names pack {}, which is gone", p.id))
        }
    })
}

fn heal_one(
    repo: &Repository,
    kind: FileKind,
    id: &Id,
    has_parity: bool,
    opts: HealOptions,
    bytes_read: &AtomicU64,
) -> Result<Heal> {
    let file = format!("{} {id}", kind.name());
    let (bytes, missing) = match repo.backend().read(protected_type(kind), &id.to_hex()) {
        Ok(b) => (b, false),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => (Vec::new(), true),
        Err(Error::Integrity { .. }) => (Vec::new(), false),
        Err(e) => return Err(e),
    };
    bytes_read.fetch_add(bytes.len() as u64, Relaxed);
    if !missing && Id::of_file_bytes(&bytes) == *id {
        if !has_parity {
            return Ok(Heal::Healthy { parity: ParityState::Absent });
        }
        let intact = match repo.parity_of(kind, &id.to_hex())? {
            ParityFile::Present(p) => parity_intact(&p),
            ParityFile::Absent => return Ok(Heal::Healthy { parity: ParityState::Absent }),
            ParityFile::Damaged(_) => false,
        };
        if intact {
            return Ok(Heal::Healthy { parity: ParityState::Intact });
        }
        if !opts.dry_run {
            rewrite_parity(repo, kind, id, &bytes)?;
        }
        let verb = if opts.dry_run { "to rewrite" } else { "rewritten" };
        let note = FileNote { file: format!("parity file {id}"), detail: format!("damaged; {verb} from {file}") };
        return Ok(Heal::Healthy { parity: ParityState::Rewritten(note) });
    }
    match repo.rebuild(kind, id, &bytes, missing)? {
        Assessment::Repairable { bytes: good, damage, .. } => {
            let parity_damaged = damage.recovery_shards > 0 || damage.table_damaged;
            if !opts.dry_run {
                publish_verified(repo, kind, id, &good)?;
                if parity_damaged {
                    rewrite_parity(repo, kind, id, &good)?;
                }
            }
            let detail = format!(
                "rebuilt from parity: {} damaged data shards{}",
                damage.data_shards,
                match (parity_damaged, opts.dry_run) {
                    (false, _) => String::new(),
                    (true, false) => format!(" ({} damaged recovery shards; parity rewritten)", damage.recovery_shards),
                    (true, true) => format!(" ({} damaged recovery shards; parity to rewrite)", damage.recovery_shards),
                }
            );
            Ok(Heal::Repaired(FileNote { file, detail }, (kind == FileKind::Index).then_some(good)))
        }
        Assessment::Unrepairable(why) => Ok(Heal::Unrepairable(FileNote { file, detail: why })),
        Assessment::Healthy => Ok(Heal::Healthy { parity: ParityState::Intact }),
    }
}

/// Parity for a file: at the policy's overhead, or, with the policy off, at the default (a
/// parity file that exists is kept whole).
fn rewrite_parity(repo: &Repository, kind: FileKind, id: &Id, bytes: &[u8]) -> Result<()> {
    let bp = match (repo.parity_overhead_for(kind), kind) {
        (0, FileKind::Snapshot) => crate::format::parity::FULL,
        (0, _) => crate::format::parity::DEFAULT_OVERHEAD,
        (bp, _) => bp,
    };
    repo.ensure_locks_fresh()?;
    let p = crate::format::parity::encode_file(kind, id, bytes, bp);
    repo.backend().replace(FileType::Parity, &id.to_hex(), &p)
}

/// Publish rebuilt bytes over the damaged file, then read them back: the repair counts only if
/// storage now returns bytes that hash to the name.
fn publish_verified(repo: &Repository, kind: FileKind, id: &Id, bytes: &[u8]) -> Result<()> {
    debug_assert_eq!(Id::of_file_bytes(bytes), *id);
    let t = protected_type(kind);
    repo.ensure_locks_fresh()?;
    repo.backend().replace(t, &id.to_hex(), bytes)?;
    let back = repo.backend().read(t, &id.to_hex())?;
    if Id::of_file_bytes(&back) != *id {
        return Err(Error::integrity(
            format!("{} {id}", kind.name()),
            "still damaged after it was rewritten: the storage is failing",
        ));
    }
    Ok(())
}

/// After `repair index`: remove the parity files of missing files that are superseded — every
/// lost index file (the rebuilt index replaces them all) and any lost file its parity cannot
/// restore. Parity that restores a lost pack or snapshot is kept for `repair packs`.
pub fn drop_superseded_parity(repo: &Repository) -> Result<usize> {
    let mut removed = 0;
    for (kind, id) in repo.lost_files()? {
        let drop = match kind {
            Some(FileKind::Index) | None => true,
            Some(k) => !matches!(repo.rebuild(k, &id, &[], true)?, Assessment::Repairable { .. }),
        };
        if drop {
            repo.ensure_locks_fresh()?;
            match repo.backend().remove(FileType::Parity, &id.to_hex()) {
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                r => r?,
            }
            removed += 1;
        }
    }
    Ok(removed)
}

// ---- parity build -------------------------------------------------------------------------------

/// Options of [`build_parity`].
#[derive(Clone, Copy, Debug, Default)]
pub struct BuildOptions<'a> {
    /// Also remove parity files whose file is missing (removed on purpose by a writer that does
    /// not know parity); otherwise they are kept for `repair packs` and reported.
    pub drop_orphans: bool,
    /// Report only; write and remove nothing.
    pub dry_run: bool,
    /// Bytes of files read, of all the protected files.
    pub progress: Option<&'a crate::progress::Meter>,
}

/// What [`build_parity`] did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BuildReport {
    /// The policy's pack overhead, basis points.
    pub overhead: u16,
    /// Parity files written for files that had none.
    pub written: u64,
    /// Parity files rewritten: another geometry than the policy's, or damaged.
    pub rewritten: u64,
    /// Files whose parity was already as the policy asks.
    pub up_to_date: u64,
    /// Parity files removed (policy off, or orphans with `drop_orphans`).
    pub removed: u64,
    /// Bytes of parity written.
    pub bytes_written: u64,
    /// Files that do not hash to their names: no parity is made of damage.
    pub damaged: Vec<FileNote>,
    /// Parity files whose file is missing, kept.
    pub orphans: Vec<FileNote>,
}

/// `arca parity build`: see the module documentation.
pub fn build_parity(repo: &Repository, opts: BuildOptions) -> Result<BuildReport> {
    let (files, parity) = repo.parity_listing()?;
    let mut r = BuildReport { overhead: repo.parity_overhead(), ..Default::default() };
    let remove = |id: &Id| -> Result<()> {
        repo.ensure_locks_fresh()?;
        match repo.backend().remove(FileType::Parity, &id.to_hex()) {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    };
    for (kind, id) in repo.lost_among(&files, &parity) {
        let drop = opts.drop_orphans || r.overhead == 0;
        if drop {
            if !opts.dry_run {
                remove(&id)?;
            }
            r.removed += 1;
        }
        r.orphans.push(FileNote {
            file: format!("{} {id}", kind.map(|k| k.name()).unwrap_or("file")),
            detail: if drop {
                "missing; its parity file is removed, so it can no longer be restored".into()
            } else {
                "missing, but its parity file is there: `arca repair packs` restores it if it can; \
                 `arca parity build --drop-orphans` removes the parity of files removed on purpose"
                    .into()
            },
        });
    }
    if r.overhead == 0 {
        for (_, id, _) in files.iter().filter(|(_, id, _)| parity.contains(id)) {
            if !opts.dry_run {
                remove(id)?;
            }
            r.removed += 1;
        }
        return Ok(r);
    }
    let written = AtomicU64::new(0);
    if let Some(m) = opts.progress {
        m.start(files.iter().map(|f| f.2).sum());
    }
    let outcomes: Vec<Result<Built>> = files
        .par_iter()
        .map(|(kind, id, len)| {
            let built = build_one(repo, *kind, id, *len, parity.contains(id), opts, &written);
            if let Some(m) = opts.progress {
                m.add(*len);
            }
            built
        })
        .collect();
    for (o, (kind, id, _)) in outcomes.into_iter().zip(&files) {
        match o? {
            Built::UpToDate => r.up_to_date += 1,
            Built::Written => r.written += 1,
            Built::Rewritten => r.rewritten += 1,
            Built::Damaged => r.damaged.push(FileNote {
                file: format!("{} {id}", kind.name()),
                detail: "does not hash to its name: no parity made of it; run `arca repair packs`".into(),
            }),
            Built::Gone => {}
        }
    }
    r.bytes_written = written.into_inner();
    Ok(r)
}

enum Built {
    UpToDate,
    Written,
    Rewritten,
    Damaged,
    Gone,
}

fn build_one(
    repo: &Repository,
    kind: FileKind,
    id: &Id,
    len: u64,
    has_parity: bool,
    opts: BuildOptions,
    written: &AtomicU64,
) -> Result<Built> {
    let t = protected_type(kind);
    let name = id.to_hex();
    let bp = repo.parity_overhead_for(kind);
    if has_parity {
        // Cheap: the fixed part says whether the geometry is the policy's; the table hash and
        // shards are checked by `check --read-data` and `repair packs`.
        if let Some(f) = repo.parity_fixed(id) {
            if f.kind == kind && f.id == *id && f.geometry.len == len && f.geometry == Geometry::plan(len, bp) {
                return Ok(Built::UpToDate);
            }
        }
    }
    let bytes = match repo.backend().read(t, &name) {
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Ok(Built::Gone),
        Err(Error::Integrity { .. }) => return Ok(Built::Damaged),
        r => r?,
    };
    if Id::of_file_bytes(&bytes) != *id {
        return Ok(Built::Damaged);
    }
    if !opts.dry_run {
        repo.ensure_locks_fresh()?;
        // A concurrent writer's file may be renamed but its directory not yet flushed: parity
        // made durable first would outlive the file in a crash and read as "lost".
        repo.backend().sync_name(t, &name)?;
        let p = crate::format::parity::encode_file(kind, id, &bytes, bp);
        written.fetch_add(p.len() as u64, Relaxed);
        repo.backend().replace(FileType::Parity, &name, &p)?;
    }
    Ok(if has_parity { Built::Rewritten } else { Built::Written })
}

// ---- parity status ------------------------------------------------------------------------------

/// Protection of one kind of file.
#[derive(Clone, Debug, Default, Serialize)]
pub struct KindStatus {
    /// Files of this kind.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files with a parity file.
    pub protected: u64,
    /// Bytes of their parity files.
    pub parity_bytes: u64,
    /// Protected files whose parity has another geometry than the policy gives now.
    pub stale: u64,
}

/// What [`parity_status`] found (from listings and parity files' fixed parts; nothing is
/// verified).
#[derive(Clone, Debug, Default, Serialize)]
pub struct StatusReport {
    /// The policy's pack overhead, basis points (0: off); `None` if the policy file is damaged.
    pub overhead: Option<u16>,
    /// Whether the repository has a policy file at all.
    pub policy_file: bool,
    /// Packs, index files, snapshots.
    pub packs: KindStatus,
    /// Index files.
    pub index: KindStatus,
    /// Snapshots.
    pub snapshots: KindStatus,
    /// Parity files whose file is missing.
    pub orphans: u64,
    /// Entries of `parity/` that are not parity files.
    pub stray: Vec<String>,
}

/// `arca parity status`.
pub fn parity_status(repo: &Repository) -> Result<StatusReport> {
    let policy = repo.load_parity_policy();
    let mut r = StatusReport {
        overhead: policy.as_ref().ok().map(|p| p.unwrap_or(0)),
        policy_file: !matches!(policy, Ok(None)),
        ..Default::default()
    };
    let parity: BTreeMap<String, u64> = repo.backend().list(FileType::Parity)?.into_iter().collect();
    r.stray = parity.keys().filter(|n| !is_object_name(n)).map(|n| format!("parity/{n}")).collect();
    let mut present = HashSet::new();
    for kind in PROTECTED_KINDS {
        let listed = repo.list_objects(protected_type(kind))?;
        let checks: Vec<(u64, Option<u64>, bool)> = listed
            .par_iter()
            .map(|(name, len)| {
                let Some(&plen) = parity.get(name) else { return (*len, None, false) };
                let bp = repo.parity_overhead_for(kind);
                let stale = bp > 0
                    && Id::from_hex(name)
                        .and_then(|id| repo.parity_fixed(&id))
                        .is_none_or(|f| f.geometry != Geometry::plan(*len, bp));
                (*len, Some(plen), stale)
            })
            .collect();
        let s = match kind {
            FileKind::Pack => &mut r.packs,
            FileKind::Index => &mut r.index,
            _ => &mut r.snapshots,
        };
        for (len, plen, stale) in checks {
            s.files += 1;
            s.bytes += len;
            if let Some(p) = plen {
                s.protected += 1;
                s.parity_bytes += p;
                s.stale += u64::from(stale);
            }
        }
        present.extend(listed.into_iter().map(|(n, _)| n));
    }
    r.orphans = parity.keys().filter(|n| is_object_name(n) && !present.contains(*n)).count() as u64;
    Ok(r)
}
