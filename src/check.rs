//! Verification: is everything the snapshots need present, consistent and (optionally) intact?
//!
//! Structure (always): every index file decodes; every indexed pack exists with the indexed size;
//! no two blobs of a pack overlap; every snapshot decodes; every tree is readable and every blob
//! it references is indexed. Data (`--read-data`, or a subset of packs): every selected pack
//! hashes to its name, its TOC decrypts and agrees with the index, and every blob authenticates,
//! decompresses and hashes to its ID. Each damaged object is reported by name, together with the
//! snapshots and file paths that need it.

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::blob::describe;
use crate::format::blob::BlobType;
use crate::format::header::HEADER_LEN;
use crate::format::index::{IndexBlob, IndexPack};
use crate::format::pack::{self, TRAILER_LEN};
use crate::format::tree::NodeKind;
use crate::id::Id;
use crate::repo::index::Index;
use crate::repo::walk;
use crate::repo::Repository;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

/// Which packs `--read-data-subset` selects.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Subset {
    /// Every pack.
    All,
    /// Part `n` of `m` (1-based): packs whose ID's first byte modulo `m` is `n - 1`.
    Part(u32, u32),
    /// A random sample of about this percentage of packs.
    Percent(f64),
}

impl Subset {
    /// Parse `N/M` or `P%`.
    pub fn parse(s: &str) -> Result<Subset> {
        let bad = || Error::InvalidArgument(format!("subset {s:?}: expected N/M or P%"));
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(bad());
            }
            return Ok(Subset::Percent(p));
        }
        let (n, m) = s.split_once('/').ok_or_else(bad)?;
        let (n, m): (u32, u32) = (n.trim().parse().map_err(|_| bad())?, m.trim().parse().map_err(|_| bad())?);
        if m == 0 || n == 0 || n > m || m > 256 {
            return Err(bad());
        }
        Ok(Subset::Part(n, m))
    }

    fn selects(&self, id: &Id) -> bool {
        match *self {
            Subset::All => true,
            Subset::Part(n, m) => u32::from(id.0[0]) % m == n - 1,
            Subset::Percent(p) => {
                let r: [u8; 4] = crate::crypto::random_array().unwrap_or([0; 4]);
                (u32::from_le_bytes(r) as f64 / u32::MAX as f64) * 100.0 < p
            }
        }
    }
}

/// Check options.
#[derive(Clone, Copy, Debug)]
pub struct CheckOptions<'a> {
    /// Read and verify blob data of these packs (None: structure only).
    pub read_data: Option<Subset>,
    /// Bytes of packs read, of those selected, while reading data.
    pub progress: Option<&'a crate::progress::Meter>,
}

/// A damaged or missing pack, index file or snapshot, and whether its parity rebuilds it, or a
/// damaged parity file (always repairable: rewritten from the intact file) (format-spec/22).
#[derive(Clone, Debug, Serialize)]
pub struct DamagedFile {
    /// `pack 3fa2…`, `index …`, `snapshot …`.
    pub object: String,
    /// Whether `arca repair packs` rebuilds it byte-identically from its parity file.
    pub repairable: bool,
    /// The damage found, or why it cannot be rebuilt.
    pub detail: String,
}

/// One problem found.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// The damaged or missing object, e.g. `pack 3fa2…`.
    pub object: String,
    /// What is wrong.
    pub message: String,
}

/// The outcome of a check.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckReport {
    /// Index files read.
    pub index_files: usize,
    /// Packs listed in the index.
    pub packs: usize,
    /// Packs whose data was read.
    pub packs_read: usize,
    /// Bytes of pack data read.
    pub bytes_read: u64,
    /// Blobs whose data was verified.
    pub blobs_read: u64,
    /// Snapshots checked.
    pub snapshots: usize,
    /// Distinct trees walked.
    pub trees: usize,
    /// Problems: damaged or missing objects.
    pub errors: Vec<Problem>,
    /// Harmless findings (e.g. packs no index names, left by an interrupted backup).
    pub warnings: Vec<Problem>,
    /// For each damaged snapshot: the paths whose data or metadata is affected.
    pub affected: BTreeMap<String, Vec<String>>,
    /// Each damaged or missing pack, index file and snapshot, repairable from parity or not.
    pub damaged_files: Vec<DamagedFile>,
    /// The snapshots that were read and walked (for the journal record).
    #[serde(skip)]
    pub snapshot_ids: Vec<Id>,
}

impl CheckReport {
    /// True when nothing is wrong: no error, and no damaged file (a damaged parity file is one).
    pub fn ok(&self) -> bool {
        self.errors.is_empty() && self.damaged_files.is_empty()
    }

    /// True when something is damaged and `arca repair packs` rebuilds all of it: every damaged
    /// file is repairable and every error is about one of them.
    pub fn repairable_only(&self) -> bool {
        !self.ok() && self.damaged_files.iter().all(|d| d.repairable) && self.errors.iter().all(|e| self.explained(e))
    }

    /// Whether an error is about a file that `arca repair packs` rebuilds: the file itself, or
    /// something in it (`data blob … in pack 3fa2c1…`, named by the pack's first 16 digits).
    fn explained(&self, e: &Problem) -> bool {
        self.damaged_files.iter().any(|d| {
            let id = d.object.rsplit(' ').next().unwrap_or_default();
            d.repairable
                && (e.object == d.object || id.get(..16).is_some_and(|short| e.object.ends_with(&format!(" {short}"))))
        })
    }

    /// Damaged files that `arca repair packs` rebuilds (parity files included).
    pub fn repairable_files(&self) -> usize {
        self.damaged_files.iter().filter(|d| d.repairable).count()
    }

    /// Problems `arca repair packs` does not fix: damaged files it cannot rebuild, and errors
    /// about anything else.
    pub fn unrepairable_problems(&self) -> usize {
        self.damaged_files.iter().filter(|d| !d.repairable).count()
            + self.errors.iter().filter(|e| !self.explained(e)).count()
    }

    /// Add the findings and counts of another part of the same check.
    fn absorb(&mut self, o: CheckReport) {
        self.index_files += o.index_files;
        self.packs += o.packs;
        self.packs_read += o.packs_read;
        self.bytes_read += o.bytes_read;
        self.blobs_read += o.blobs_read;
        self.snapshots += o.snapshots;
        self.trees += o.trees;
        self.errors.extend(o.errors);
        self.warnings.extend(o.warnings);
        self.affected.extend(o.affected);
        self.damaged_files.extend(o.damaged_files);
        self.snapshot_ids.extend(o.snapshot_ids);
    }

    fn error(&mut self, object: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Problem { object: object.into(), message: message.into() });
    }
}

/// Run a check.
pub fn check(repo: &Repository, opts: &CheckOptions) -> Result<CheckReport> {
    let subset = opts.read_data;
    // The parts are independent reads: run at once, on remote storage their round trips
    // overlap instead of adding up. Findings are reported in the same order as one by one.
    let all = subset == Some(Subset::All);
    let (reading, (journal, (parity, metadata))) = rayon::join(
        || check_reading(repo, subset.is_some(), &|id| subset.is_some_and(|s| s.selects(id)), opts.progress),
        || {
            rayon::join(
                || part(|r| check_journal(repo, r)),
                || {
                    rayon::join(
                        || part(|r| check_parity(repo, r)),
                        || {
                            rayon::join(
                                || part(|r| if all { verify_metadata_parity(repo, r) } else { Ok(()) }),
                                || part(|r| check_retention(repo, r)),
                            )
                        },
                    )
                },
            )
        },
    );
    let (metadata, retention) = metadata;
    let mut r = reading?;
    for other in [journal?, parity?, metadata?, retention?] {
        r.absorb(other);
    }
    if repo.rotation_unfinished() {
        // Everything still reads (the previous keys open what is not yet rewritten), but the
        // old keys are not yet retired: an operator must know (format-spec/25).
        r.warnings.push(Problem {
            object: "config".into(),
            message: "a key rotation is unfinished: the previous keys still open what is not yet rewritten; \
                      run `arca key rotate` to finish it"
                .into(),
        });
    }
    assess_damage(repo, &mut r)?;
    Ok(r)
}

/// Storage retention (S3 Object Lock, format-spec/17 §17.12): every file a restore needs (the
/// config, key files, snapshots, index files and packs) is retained at least the bucket's
/// default period after it was written; a warning for each that is not (none, or shorter: the
/// storage would let it be destroyed early). Nothing on a storage without retention.
fn check_retention(repo: &Repository, r: &mut CheckReport) -> Result<()> {
    let Some(lock) = repo.backend().object_lock() else { return Ok(()) };
    let Some(policy) = lock.policy()? else { return Ok(()) };
    let mut files = vec![(FileType::Config, "config".to_string())];
    for t in [FileType::Key, FileType::Snapshot, FileType::Index, FileType::Pack] {
        files.extend(repo.list_objects(t)?.into_iter().map(|(name, _)| (t, name)));
    }
    let found: Vec<Option<Problem>> = files
        .par_iter()
        .map(|(t, name)| {
            let short = lock.state(*t, name)?.and_then(|s| policy.shortfall(&s));
            Ok(short.map(|message| Problem { object: t.describe(name), message }))
        })
        .collect::<Result<_>>()?;
    r.warnings.extend(found.into_iter().flatten());
    Ok(())
}

/// One part of a check, on a report of its own.
fn part(f: impl FnOnce(&mut CheckReport) -> Result<()>) -> Result<CheckReport> {
    let mut r = CheckReport::default();
    f(&mut r)?;
    Ok(r)
}

/// The snapshot paths that need blobs of these packs, as far as the packs are damaged or
/// missing: a check that reads exactly them (for `arca repair packs` to name what it could not
/// rebuild).
pub fn affected_by_packs(repo: &Repository, packs: &HashSet<Id>) -> Result<BTreeMap<String, Vec<String>>> {
    Ok(check_reading(repo, true, &|id| packs.contains(id), None)?.affected)
}

fn check_reading(
    repo: &Repository,
    read: bool,
    select: &(dyn Fn(&Id) -> bool + Sync),
    meter: Option<&crate::progress::Meter>,
) -> Result<CheckReport> {
    let mut r = CheckReport::default();
    let mut ri = CheckReport::default();
    let (snaps, packs) = rayon::join(|| load_snapshots(repo, &mut r), || check_indexes(repo, &mut ri));
    let (snaps, (packs, misfits)) = (snaps?, packs?);
    r.absorb(ri);
    let index = Index::from_packs(packs.values().cloned());
    // A pack whose stored size is not the index's is damaged (reported above) and not read: its
    // size is whatever the storage says, up to the 4 GiB a pack may be.
    let wanted = |id: &Id| select(id) && !misfits.contains(id);
    let (mut damaged, seen) = if read { read_data(repo, &packs, &wanted, &mut r, meter) } else { Default::default() };
    if read {
        let unread = misfits.iter().filter(|id| select(id)).filter_map(|id| packs.get(id));
        damaged.extend(unread.flat_map(|p| p.blobs.iter().map(|b| (b.blob_type, b.id))));
    }
    check_snapshots(repo, &index, &Known { damaged, trees: seen.into_inner().unwrap().trees }, snaps, &mut r)?;
    Ok(r)
}

/// Parity (format-spec/22-parity.md): a damaged policy, files without parity while the policy
/// asks for it (one warning), and parity files whose file is missing — lost, since writers
/// remove parity first (errors; [`assess_damage`] says whether parity restores them).
fn check_parity(repo: &Repository, r: &mut CheckReport) -> Result<()> {
    let bp = match repo.load_parity_policy() {
        Ok(bp) => bp.unwrap_or(0),
        Err(e) => {
            r.warnings.push(Problem {
                object: "parity/policy".into(),
                message: format!("{e}; writers use the default overhead until `arca parity set` rewrites it"),
            });
            crate::format::parity::DEFAULT_OVERHEAD
        }
    };
    let (files, parity) = repo.parity_listing()?;
    let unprotected = files.iter().filter(|(_, id, _)| !parity.contains(id)).count();
    if bp > 0 && unprotected > 0 {
        r.warnings.push(Problem {
            object: "parity".into(),
            message: format!(
                "{unprotected} of {} packs, index files and snapshots have no parity file; `arca parity build` writes them",
                files.len()
            ),
        });
    }
    for (kind, id) in repo.lost_among(&files, &parity) {
        let object = match kind {
            Some(k) => format!("{} {id}", k.name()),
            None => format!("parity file {id}"),
        };
        r.error(
            object,
            "missing from the repository, but its parity file is there: it was lost (writers remove \
             parity first), or removed by a writer that does not know parity (format-spec 16.6), which \
             `arca parity build --drop-orphans` acknowledges",
        );
    }
    Ok(())
}

/// For each pack, index file or snapshot an error names: whether `arca repair packs` rebuilds
/// it. A missing file must also be still wanted, judged as the repair judges it (format-spec/22
/// §22.7): index files first, then packs and snapshots against the index with every index file
/// that parity rebuilds.
fn assess_damage(repo: &Repository, r: &mut CheckReport) -> Result<()> {
    use crate::format::header::FileKind;
    use crate::repo::parity::Assessment;
    let mut files = std::collections::BTreeSet::new();
    for p in &r.errors {
        let Some((kind, hex)) = p.object.split_once(' ') else { continue };
        // Index files sort first (the order of `repair packs`).
        let kind = match kind {
            "index" => FileKind::Index,
            "pack" => FileKind::Pack,
            "snapshot" => FileKind::Snapshot,
            _ => continue,
        };
        if let Some(id) = Id::from_hex(hex) {
            files.insert((kind != FileKind::Index, kind as u8, id, p.object.clone()));
        }
    }
    let assessed: Vec<(FileKind, Id, String, Result<Assessment>)> = files
        .into_par_iter()
        .map(|(_, k, id, object)| {
            let kind = FileKind::from_u8(k).expect("a protected kind");
            (kind, id, object, repo.assess(kind, &id))
        })
        .collect();
    let mut rebuilt_index = Vec::new();
    let mut index = None;
    for (kind, id, object, a) in assessed {
        let (repairable, detail) = match a? {
            // An error about it, yet it hashes to its name: the damage is elsewhere (the index).
            Assessment::Healthy => continue,
            Assessment::Repairable { damage, missing: true, bytes } => {
                if kind != FileKind::Index && index.is_none() {
                    index = Some(crate::lifecycle::heal::index_after(repo, &rebuilt_index)?);
                }
                match missing_unwanted(repo, index.as_ref(), kind, &id, &bytes) {
                    Some(why) => (false, format!("missing; {why}")),
                    None => {
                        if kind == FileKind::Index {
                            rebuilt_index.push(bytes);
                        }
                        (true, format!("missing; its parity restores it whole ({} shards)", damage.data_shards))
                    }
                }
            }
            Assessment::Repairable { damage, bytes, .. } => {
                if kind == FileKind::Index {
                    rebuilt_index.push(bytes);
                }
                (
                    true,
                    format!(
                        "{} damaged data shards, at most {} in one segment: its parity rebuilds it",
                        damage.data_shards, damage.worst_segment
                    ),
                )
            }
            Assessment::Unrepairable(why) => (false, why),
        };
        r.damaged_files.push(DamagedFile { object, repairable, detail });
    }
    Ok(())
}

/// Why `arca repair packs` would not restore a missing file that its parity rebuilds, if it
/// would not: it is not wanted any more, or it does not decrypt.
fn missing_unwanted(
    repo: &Repository,
    index: Option<&Index>,
    kind: crate::format::header::FileKind,
    id: &Id,
    bytes: &[u8],
) -> Option<String> {
    use crate::lifecycle::heal::{unwanted, unwanted_detail};
    match unwanted(repo, index, kind, id, bytes) {
        Ok(None) => None,
        Ok(Some(why)) => Some(unwanted_detail(&why)),
        Err(e) => Some(format!("its parity rebuilds bytes that hash to its name, but they cannot be read: {e}")),
    }
}

/// Journal files that cannot be read lose their records, never data: warnings, not errors
/// (format-spec/21-journal.md §21.3).
fn check_journal(repo: &Repository, r: &mut CheckReport) -> Result<()> {
    let listed = repo.backend().list(crate::backend::FileType::Journal);
    let damaged = match listed.and_then(|names| Ok((names, crate::repo::journal::load(repo)?))) {
        Ok((names, j)) => {
            for (n, _) in names.into_iter().filter(|(n, _)| !crate::backend::is_object_name(n)) {
                let message = "stray file (not a repository file name); ignored".into();
                r.warnings.push(Problem { object: format!("journal/{n}"), message });
            }
            j.damaged
        }
        Err(e) => vec![("(the directory)".to_string(), e)],
    };
    for (name, e) in damaged {
        r.warnings.push(Problem {
            object: format!("journal file {name}"),
            message: format!("cannot be read, its records are lost: {e}"),
        });
    }
    Ok(())
}

/// Decode all index files, check packs exist with the right size and blobs do not overlap.
/// Also returns the packs whose stored size differs from the index's.
fn check_indexes(repo: &Repository, r: &mut CheckReport) -> Result<(HashMap<Id, IndexPack>, HashSet<Id>)> {
    let ids = repo.index_ids()?;
    r.index_files = ids.len();
    // Stray names, the index files and the packs' listing at once (independent reads).
    let load = || -> Vec<(Id, Result<Vec<IndexPack>>)> {
        repo.io_scope(|| ids.par_iter().map(|id| (*id, repo.load_index_file(id))).collect())
    };
    let (strays, (loaded, on_disk)) =
        rayon::join(|| repo.stray_files(), || rayon::join(load, || repo.list_objects(FileType::Pack)));
    // Names that are not object names are not repository files: readers ignore them (spec 4.2).
    for name in strays? {
        r.warnings.push(Problem { object: name, message: "stray file (not a repository file name); ignored".into() });
    }
    let mut packs: HashMap<Id, IndexPack> = HashMap::new();
    for (id, res) in loaded {
        match res {
            Ok(ps) => {
                // A pack may be named by several records (format-spec/10 §10.3), each listing some
                // of its entries: the pack is what their union says.
                for p in ps {
                    match packs.entry(p.id) {
                        std::collections::hash_map::Entry::Vacant(v) => {
                            v.insert(p);
                        }
                        std::collections::hash_map::Entry::Occupied(mut o) => {
                            let known: HashSet<_> =
                                o.get().blobs.iter().map(|b| (b.blob_type, b.id, b.offset)).collect();
                            let more: Vec<_> = p
                                .blobs
                                .into_iter()
                                .filter(|b| !known.contains(&(b.blob_type, b.id, b.offset)))
                                .collect();
                            o.get_mut().blobs.extend(more);
                        }
                    }
                }
            }
            Err(e) => r.error(format!("index {id}"), e.to_string()),
        }
    }
    r.packs = packs.len();
    let on_disk: HashMap<String, u64> = on_disk?.into_iter().collect();
    let mut misfits = HashSet::new();
    for p in packs.values() {
        let name = p.id.to_hex();
        match on_disk.get(&name) {
            None => r.error(format!("pack {name}"), "missing: listed in the index but not in the repository"),
            Some(&len) if len != p.size as u64 => {
                misfits.insert(p.id);
                r.error(
                    format!("pack {name}"),
                    format!("size {len} bytes, the index says {}; its data is not read", p.size),
                )
            }
            _ => {}
        }
        let mut blobs: Vec<_> = p.blobs.iter().collect();
        blobs.sort_by_key(|b| b.offset);
        let mut end = HEADER_LEN as u64;
        for b in blobs {
            if (b.offset as u64) < end {
                r.error(format!("pack {name}"), format!("blob {} overlaps the blob before it", b.id));
            }
            end = b.offset as u64 + b.stored_len as u64;
        }
        if end + (TRAILER_LEN + crate::format::SEAL_OVERHEAD + 4) as u64 > p.size as u64 {
            r.error(format!("pack {name}"), "blobs extend into the table of contents");
        }
    }
    let referenced: HashSet<String> = packs.keys().map(|i| i.to_hex()).collect();
    for name in on_disk.keys().filter(|n| !referenced.contains(*n)) {
        r.warnings.push(Problem {
            object: format!("pack {name}"),
            message: "not in any index (left by an interrupted backup or prune): harmless; the next \
                      backup adopts it, or `arca prune` deletes it"
                .into(),
        });
    }
    Ok((packs, misfits))
}

/// Read and verify selected packs; returns the IDs of damaged or missing blobs.
fn read_data(
    repo: &Repository,
    packs: &HashMap<Id, IndexPack>,
    select: &(dyn Fn(&Id) -> bool + Sync),
    r: &mut CheckReport,
    meter: Option<&crate::progress::Meter>,
) -> (HashSet<(BlobType, Id)>, Mutex<SeenTrees>) {
    let selected: Vec<&IndexPack> = packs.values().filter(|p| select(&p.id)).collect();
    if let Some(m) = meter {
        m.start(selected.iter().map(|p| u64::from(p.size)).sum());
    }
    r.packs_read = selected.len();
    let damaged = Mutex::new(HashSet::new());
    let problems = Mutex::new(Vec::new());
    let damaged_parity = Mutex::new(Vec::new());
    let blobs_read = std::sync::atomic::AtomicU64::new(0);
    let bytes_read = std::sync::atomic::AtomicU64::new(0);
    let seen = Mutex::new(SeenTrees::default());
    repo.io_scope(|| {
        selected.par_iter().for_each(|p| {
            // The parity file is fetched while the pack is: on remote storage, one round trip.
            let ((bad, n, errs), parity) = rayon::join(
                || verify_pack(repo, p, &bytes_read, &seen),
                || verify_parity(repo, crate::format::header::FileKind::Pack, &p.id.to_hex()),
            );
            blobs_read.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            if let Some(m) = meter {
                m.add(u64::from(p.size));
            }
            damaged.lock().unwrap().extend(bad);
            problems.lock().unwrap().extend(errs);
            if let Some(d) = parity {
                damaged_parity.lock().unwrap().push(d);
            }
        })
    });
    r.damaged_files.extend(damaged_parity.into_inner().unwrap());
    r.blobs_read = blobs_read.into_inner();
    r.bytes_read = bytes_read.into_inner();
    r.errors.extend(problems.into_inner().unwrap());
    (damaged.into_inner().unwrap(), seen)
}

/// Tree blobs decrypted and verified while their packs were read, kept (up to
/// [`SEEN_TREES_MAX`] bytes) so that the walk of the snapshots does not fetch them again.
#[derive(Default)]
struct SeenTrees {
    trees: HashMap<Id, Vec<u8>>,
    bytes: usize,
}

/// Most bytes of tree plaintext a check keeps from reading data.
const SEEN_TREES_MAX: usize = 256 << 20;

impl SeenTrees {
    fn keep(&mut self, id: Id, plain: Vec<u8>) {
        if self.bytes + plain.len() <= SEEN_TREES_MAX {
            self.bytes += plain.len();
            self.trees.insert(id, plain);
        }
    }
}

/// What the walk knows before it reads: blobs found damaged, and trees already read.
struct Known {
    damaged: HashSet<(BlobType, Id)>,
    trees: HashMap<Id, Vec<u8>>,
}

/// With all data read: the parity files of index files and snapshots too (those of packs are
/// read with their packs).
fn verify_metadata_parity(repo: &Repository, r: &mut CheckReport) -> Result<()> {
    use crate::format::header::FileKind;
    let mut files = Vec::new();
    for (t, kind) in [(FileType::Index, FileKind::Index), (FileType::Snapshot, FileKind::Snapshot)] {
        files.extend(repo.list_objects(t)?.into_iter().map(|(n, _)| (kind, n)));
    }
    let damaged: Vec<DamagedFile> =
        repo.io_scope(|| files.par_iter().filter_map(|(k, n)| verify_parity(repo, *k, n)).collect());
    r.damaged_files.extend(damaged);
    Ok(())
}

/// A file's parity file, read whole: damaged, it is a repairable problem (the data is intact,
/// but the parity cannot be relied on; `arca repair packs` rewrites it from the healthy file).
fn verify_parity(repo: &Repository, kind: crate::format::header::FileKind, name: &str) -> Option<DamagedFile> {
    use crate::repo::parity::{parity_intact, ParityFile};
    let message = match repo.parity_of(kind, name) {
        Ok(ParityFile::Present(b)) if parity_intact(&b) => return None,
        Ok(ParityFile::Absent) => return None,
        Ok(ParityFile::Present(_)) => "recovery shards do not match their checksums".to_string(),
        Ok(ParityFile::Damaged(why)) => why,
        Err(e) => e.to_string(),
    };
    Some(DamagedFile {
        object: format!("parity file {name}"),
        repairable: true,
        detail: format!("{message}; `arca repair packs` rewrites it from the intact file"),
    })
}

/// Verify one pack: returns damaged blobs, blobs verified, problems.
fn verify_pack(
    repo: &Repository,
    p: &IndexPack,
    bytes_read: &std::sync::atomic::AtomicU64,
    seen: &Mutex<SeenTrees>,
) -> (Vec<(BlobType, Id)>, u64, Vec<Problem>) {
    let name = p.id.to_hex();
    let obj = format!("pack {name}");
    let all_bad = || p.blobs.iter().map(|b| (b.blob_type, b.id)).collect::<Vec<_>>();
    let bytes = match repo.backend().read(FileType::Pack, &name) {
        Ok(b) => b,
        Err(e) => return (all_bad(), 0, vec![Problem { object: obj, message: e.to_string() }]),
    };
    bytes_read.fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let mut problems = Vec::new();
    if Id::of_file_bytes(&bytes) != p.id {
        problems.push(Problem {
            object: obj.clone(),
            message: "content does not match its name (storage corruption)".into(),
        });
    }
    if let Err(e) = check_toc(repo, &bytes, p, &obj) {
        problems.push(Problem { object: obj.clone(), message: e.to_string() });
    }
    let results: Vec<Option<((BlobType, Id), Problem)>> =
        p.blobs.par_iter().map(|b| verify_blob(repo, &bytes, p.ephemeral.as_ref(), b, &name, seen)).collect();
    let n = p.blobs.len() as u64;
    let mut bad = Vec::new();
    for (blob, problem) in results.into_iter().flatten() {
        bad.push(blob);
        problems.push(problem);
    }
    (bad, n, problems)
}

/// Verify one blob of a pack read into memory; the damage, if any.
fn verify_blob(
    repo: &Repository,
    bytes: &[u8],
    ephemeral: Option<&[u8; 32]>,
    b: &IndexBlob,
    pack: &str,
    seen: &Mutex<SeenTrees>,
) -> Option<((BlobType, Id), Problem)> {
    let what = || describe(b.blob_type, &b.id);
    let range = b.offset as usize..(b.offset as usize + b.stored_len as usize);
    let res = match bytes.get(range) {
        Some(env) => repo.open_blob(ephemeral, b.blob_type, &b.id, env).and_then(|plain| {
            if plain.len() == b.plain_len as usize {
                if b.blob_type == BlobType::Tree {
                    seen.lock().unwrap().keep(b.id, plain);
                }
                Ok(())
            } else {
                Err(Error::integrity(what(), "plaintext length differs from the index"))
            }
        }),
        None => Err(Error::integrity(what(), "lies beyond the end of the pack")),
    };
    let object = format!("{} in pack {}", what(), &pack[..16]);
    res.err().map(|e| ((b.blob_type, b.id), Problem { object, message: e.to_string() }))
}

/// The pack's own TOC must decrypt and list exactly what the index says.
fn check_toc(repo: &Repository, bytes: &[u8], p: &IndexPack, obj: &str) -> Result<()> {
    let (_, ephemeral) = pack::check_header_sealing(bytes, repo.has_roles(), obj)?;
    if ephemeral != p.ephemeral {
        return Err(Error::integrity(obj, "its ephemeral key is not the one the index gives"));
    }
    let first = pack::first_blob_at(ephemeral.as_ref());
    let trailer: [u8; TRAILER_LEN] =
        bytes[bytes.len().saturating_sub(TRAILER_LEN)..].try_into().map_err(|_| Error::integrity(obj, "truncated"))?;
    let (at, len) = pack::locate_toc_after(bytes.len() as u64, trailer, first as u64, obj)?;
    let sealed = &bytes[at as usize..at as usize + len as usize];
    let toc = repo.open_toc(ephemeral.as_ref(), sealed, obj)?;
    let entries = pack::decode_toc(&toc, at - first as u64, obj)?;
    let mut from_toc: Vec<_> = pack::locate_blobs_from(&entries, first)
        .iter()
        .map(|b| (b.blob_type, b.id, b.offset, b.stored_len, b.plain_len))
        .collect();
    let mut from_index: Vec<_> =
        p.blobs.iter().map(|b| (b.blob_type, b.id, b.offset, b.stored_len, b.plain_len)).collect();
    from_toc.sort();
    from_index.sort();
    if from_toc != from_index {
        return Err(Error::integrity(obj, "table of contents disagrees with the index"));
    }
    Ok(())
}

/// What the snapshot walk needs to know about one tree.
enum TreeSummary {
    /// The tree could not be read or is damaged: why.
    Unreadable(String),
    /// Its number of entries, its subdirectories and its files that need a missing or damaged blob.
    Read { entries: u64, dirs: Vec<(String, Id)>, hit_files: Vec<String> },
}

/// Read every tree reachable from `roots`, level by level, each level in parallel.
fn load_trees(
    repo: &Repository,
    index: &Index,
    known: &Known,
    roots: Vec<Id>,
    r: &mut CheckReport,
) -> HashMap<Id, TreeSummary> {
    let mut trees: HashMap<Id, TreeSummary> = HashMap::new();
    let mut frontier: Vec<Id> = roots;
    while !frontier.is_empty() {
        frontier.sort_unstable();
        frontier.dedup();
        frontier.retain(|id| !trees.contains_key(id));
        let loaded: Vec<(Id, TreeSummary, Vec<Problem>)> =
            repo.io_scope(|| frontier.par_iter().map(|id| summarize(repo, index, known, *id)).collect());
        frontier = Vec::new();
        for (id, summary, problems) in loaded {
            if let TreeSummary::Read { dirs, .. } = &summary {
                frontier.extend(dirs.iter().map(|(_, sub)| *sub));
            }
            r.errors.extend(problems);
            trees.insert(id, summary);
        }
    }
    trees
}

fn summarize(repo: &Repository, index: &Index, known: &Known, id: Id) -> (Id, TreeSummary, Vec<Problem>) {
    let mut problems = Vec::new();
    if known.damaged.contains(&(BlobType::Tree, id)) {
        return (id, TreeSummary::Unreadable("damaged".into()), problems);
    }
    let read = match known.trees.get(&id) {
        Some(plain) => crate::format::tree::Tree::decode(plain, &describe(BlobType::Tree, &id)),
        None => repo.read_tree(index, &id),
    };
    let tree = match read {
        Ok(t) => t,
        Err(e) => {
            problems.push(Problem { object: describe(BlobType::Tree, &id), message: e.to_string() });
            return (id, TreeSummary::Unreadable("unreadable".into()), problems);
        }
    };
    let (mut dirs, mut hit_files) = (Vec::new(), Vec::new());
    for n in &tree.nodes {
        let name = String::from_utf8_lossy(&n.name).into_owned();
        match &n.kind {
            NodeKind::Dir { subtree } => dirs.push((name, *subtree)),
            NodeKind::File { content, .. } => {
                let mut hit = false;
                for c in content {
                    if !index.contains(BlobType::Data, &c.id) {
                        problems.push(Problem {
                            object: describe(BlobType::Data, &c.id),
                            message: "missing from the index".into(),
                        });
                        hit = true;
                    } else if known.damaged.contains(&(BlobType::Data, c.id)) {
                        hit = true;
                    }
                }
                if hit {
                    hit_files.push(name);
                }
            }
            _ => {}
        }
    }
    (id, TreeSummary::Read { entries: tree.nodes.len() as u64, dirs, hit_files }, problems)
}

/// Snapshots, read before the index: a backup publishes its index before its snapshot, so
/// every snapshot seen here has its index files in place by the time they are listed.
fn load_snapshots(repo: &Repository, r: &mut CheckReport) -> Result<Vec<(Id, crate::format::snapshot::Snapshot)>> {
    let names = repo.list_objects(FileType::Snapshot)?;
    r.snapshots = names.len();
    let loaded: Vec<(String, Result<(Id, crate::format::snapshot::Snapshot)>)> = repo.io_scope(|| {
        names
            .par_iter()
            .map(|(name, _)| {
                let id = Id::from_hex(name).ok_or_else(|| Error::integrity(format!("snapshot {name}"), "bad name"));
                (name.clone(), id.and_then(|id| repo.load_snapshot(&id).map(|s| (id, s))))
            })
            .collect()
    });
    let mut snaps = Vec::new();
    for (name, res) in loaded {
        match res {
            Ok(v) => {
                r.snapshot_ids.push(v.0);
                snaps.push(v)
            }
            Err(e) => r.error(format!("snapshot {name}"), e.to_string()),
        }
    }
    Ok(snaps)
}

/// Walk every snapshot; report missing/damaged trees and blobs with the paths they affect, and
/// snapshots whose trees break the expansion limits (format-spec 19.1).
fn check_snapshots(
    repo: &Repository,
    index: &Index,
    known: &Known,
    snaps: Vec<(Id, crate::format::snapshot::Snapshot)>,
    r: &mut CheckReport,
) -> Result<()> {
    let trees = load_trees(repo, index, known, snaps.iter().map(|(_, s)| s.tree).collect(), r);
    r.trees = trees.len();
    let mut sizes = HashMap::new();
    let mut counts = HashMap::new();
    for (id, s) in &snaps {
        if let Err(e) = walk::measure_with(s.tree, &mut sizes, &mut |t| children(&trees, t)) {
            // Its paths cannot be listed either: the expansion is what is wrong.
            r.error(format!("snapshot {id}"), format!("cannot be expanded: {e}"));
            continue;
        }
        let paths = affected(&trees, s.tree, &mut counts);
        if !paths.is_empty() {
            r.affected.insert(id.to_hex(), paths);
        }
    }
    r.errors.sort_by(|a, b| (&a.object, &a.message).cmp(&(&b.object, &b.message)));
    r.errors.dedup_by(|a, b| a.object == b.object && a.message == b.message);
    Ok(())
}

/// A read tree's entry count and subtrees, for [`walk::measure_with`].
fn children(trees: &HashMap<Id, TreeSummary>, id: &Id) -> (u64, Vec<Id>) {
    match trees.get(id) {
        Some(TreeSummary::Read { entries, dirs, .. }) => (*entries, dirs.iter().map(|(_, sub)| *sub).collect()),
        _ => (0, vec![]),
    }
}

/// Most affected paths listed per snapshot; the rest are counted.
pub const MAX_AFFECTED_PATHS: usize = 10_000;

/// Affected paths below `tree` (each starting with `/`), in path order, at most
/// [`MAX_AFFECTED_PATHS`] of them followed by a line counting the rest. `counts` memoises how
/// many affected paths each tree holds, so subtrees without damage are never entered and a
/// shared damaged subtree is counted, not listed, beyond the limit. Iterative.
fn affected(trees: &HashMap<Id, TreeSummary>, tree: Id, counts: &mut HashMap<Id, u64>) -> Vec<String> {
    let total = affected_count(trees, tree, counts);
    let mut out = Vec::new();
    if total == 0 {
        return out;
    }
    // Pre-order over (path, tree) pairs whose count is non-zero; the stack is pushed in
    // reverse name order so that paths come out sorted by directory.
    let mut stack = vec![(String::new(), tree)];
    while let Some((prefix, id)) = stack.pop() {
        if out.len() >= MAX_AFFECTED_PATHS {
            break;
        }
        match trees.get(&id) {
            Some(TreeSummary::Unreadable(why)) => out.push(format!("{prefix}/ (directory listing {why})")),
            Some(TreeSummary::Read { dirs, hit_files, .. }) => {
                out.extend(hit_files.iter().map(|f| format!("{prefix}/{f}")));
                for (name, sub) in dirs.iter().rev() {
                    if counts.get(sub).copied().unwrap_or(0) > 0 {
                        stack.push((format!("{prefix}/{name}"), *sub));
                    }
                }
            }
            None => {}
        }
    }
    let listed = out.len().min(MAX_AFFECTED_PATHS);
    out.truncate(listed);
    if total > listed as u64 {
        out.push(format!("… and {} more", total - listed as u64));
    }
    out
}

/// Number of affected paths below `tree` (saturating), memoised per tree. Iterative.
fn affected_count(trees: &HashMap<Id, TreeSummary>, tree: Id, counts: &mut HashMap<Id, u64>) -> u64 {
    let own = |id: &Id| match trees.get(id) {
        Some(TreeSummary::Unreadable(_)) => (1, vec![]),
        Some(TreeSummary::Read { dirs, hit_files, .. }) => {
            (hit_files.len() as u64, dirs.iter().map(|(_, sub)| *sub).collect::<Vec<_>>())
        }
        None => (0, vec![]),
    };
    crate::repo::walk::memo_sum(tree, own, counts)
}
