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
use crate::format::blob::BlobType;
use crate::format::header::HEADER_LEN;
use crate::format::index::IndexPack;
use crate::format::pack::{self, TRAILER_LEN};
use crate::format::tree::NodeKind;
use crate::id::Id;
use crate::repo::index::Index;
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
pub struct CheckOptions {
    /// Read and verify blob data of these packs (None: structure only).
    pub read_data: Option<Subset>,
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
}

impl CheckReport {
    /// True when no error was found.
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }

    fn error(&mut self, object: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Problem { object: object.into(), message: message.into() });
    }
}

/// Run a check.
pub fn check(repo: &Repository, opts: &CheckOptions) -> Result<CheckReport> {
    let mut r = CheckReport::default();
    let packs = check_indexes(repo, &mut r)?;
    let index = Index::from_packs(packs.values().cloned());
    let damaged = match opts.read_data {
        Some(subset) => read_data(repo, &packs, subset, &mut r),
        None => HashSet::new(),
    };
    check_snapshots(repo, &index, &damaged, &mut r)?;
    Ok(r)
}

/// Decode all index files, check packs exist with the right size and blobs do not overlap.
fn check_indexes(repo: &Repository, r: &mut CheckReport) -> Result<HashMap<Id, IndexPack>> {
    let ids = repo.index_ids()?;
    r.index_files = ids.len();
    let loaded: Vec<(Id, Result<Vec<IndexPack>>)> = ids.par_iter().map(|id| (*id, repo.load_index_file(id))).collect();
    let mut packs: HashMap<Id, IndexPack> = HashMap::new();
    for (id, res) in loaded {
        match res {
            Ok(ps) => {
                for p in ps {
                    packs.entry(p.id).or_insert(p);
                }
            }
            Err(e) => r.error(format!("index {id}"), e.to_string()),
        }
    }
    r.packs = packs.len();
    let on_disk: HashMap<String, u64> = repo.backend().list(FileType::Pack)?.into_iter().collect();
    for p in packs.values() {
        let name = p.id.to_hex();
        match on_disk.get(&name) {
            None => r.error(format!("pack {name}"), "missing: listed in the index but not in the repository"),
            Some(&len) if len != p.size as u64 => {
                r.error(format!("pack {name}"), format!("size {len} bytes, the index says {}", p.size))
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
        r.warnings.push(Problem { object: format!("pack {name}"), message: "not in any index (left by an interrupted backup?)".into() });
    }
    Ok(packs)
}

/// Read and verify selected packs; returns the IDs of damaged or missing blobs.
fn read_data(repo: &Repository, packs: &HashMap<Id, IndexPack>, subset: Subset, r: &mut CheckReport) -> HashSet<(BlobType, Id)> {
    let selected: Vec<&IndexPack> = packs.values().filter(|p| subset.selects(&p.id)).collect();
    r.packs_read = selected.len();
    let damaged = Mutex::new(HashSet::new());
    let problems = Mutex::new(Vec::new());
    let blobs_read = std::sync::atomic::AtomicU64::new(0);
    selected.par_iter().for_each(|p| {
        let (bad, n, errs) = verify_pack(repo, p);
        blobs_read.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        damaged.lock().unwrap().extend(bad);
        problems.lock().unwrap().extend(errs);
    });
    r.blobs_read = blobs_read.into_inner();
    r.errors.extend(problems.into_inner().unwrap());
    damaged.into_inner().unwrap()
}

/// Verify one pack: returns damaged blobs, blobs verified, problems.
fn verify_pack(repo: &Repository, p: &IndexPack) -> (Vec<(BlobType, Id)>, u64, Vec<Problem>) {
    let name = p.id.to_hex();
    let obj = format!("pack {name}");
    let all_bad = || p.blobs.iter().map(|b| (b.blob_type, b.id)).collect::<Vec<_>>();
    let bytes = match repo.backend().read(FileType::Pack, &name) {
        Ok(b) => b,
        Err(e) => return (all_bad(), 0, vec![Problem { object: obj, message: e.to_string() }]),
    };
    let mut problems = Vec::new();
    if Id::of_file_bytes(&bytes) != p.id {
        problems.push(Problem { object: obj.clone(), message: "content does not match its name (storage corruption)".into() });
    }
    if let Err(e) = check_toc(repo, &bytes, p, &obj) {
        problems.push(Problem { object: obj.clone(), message: e.to_string() });
    }
    let mut bad = Vec::new();
    let mut n = 0;
    for b in &p.blobs {
        let range = b.offset as usize..(b.offset as usize + b.stored_len as usize);
        let res = match bytes.get(range) {
            Some(env) => repo.open_blob(b.blob_type, &b.id, env).and_then(|plain| {
                if plain.len() != b.plain_len as usize {
                    Err(Error::integrity(crate::format::blob::describe(b.blob_type, &b.id), "plaintext length differs from the index"))
                } else {
                    Ok(())
                }
            }),
            None => Err(Error::integrity(crate::format::blob::describe(b.blob_type, &b.id), "lies beyond the end of the pack")),
        };
        n += 1;
        if let Err(e) = res {
            bad.push((b.blob_type, b.id));
            problems.push(Problem { object: format!("{} in pack {}", crate::format::blob::describe(b.blob_type, &b.id), &name[..16]), message: e.to_string() });
        }
    }
    (bad, n, problems)
}

/// The pack's own TOC must decrypt and list exactly what the index says.
fn check_toc(repo: &Repository, bytes: &[u8], p: &IndexPack, obj: &str) -> Result<()> {
    pack::check_header(bytes, obj)?;
    let trailer: [u8; TRAILER_LEN] = bytes[bytes.len().saturating_sub(TRAILER_LEN)..]
        .try_into()
        .map_err(|_| Error::integrity(obj, "truncated"))?;
    let (at, len) = pack::locate_toc(bytes.len() as u64, trailer, obj)?;
    let sealed = &bytes[at as usize..at as usize + len as usize];
    let toc = repo.keys().open(sealed, &pack::toc_ad(repo.repo_id()), &format!("{obj} TOC"))?;
    let entries = pack::decode_toc(&toc, at - HEADER_LEN as u64, obj)?;
    let mut offset = HEADER_LEN as u32;
    let mut from_toc: Vec<_> = entries
        .iter()
        .map(|e| {
            let o = offset;
            offset += e.stored_len;
            (e.blob_type, e.id, o, e.stored_len, e.plain_len)
        })
        .collect();
    let mut from_index: Vec<_> = p.blobs.iter().map(|b| (b.blob_type, b.id, b.offset, b.stored_len, b.plain_len)).collect();
    from_toc.sort();
    from_index.sort();
    if from_toc != from_index {
        return Err(Error::integrity(obj, "table of contents disagrees with the index"));
    }
    Ok(())
}

/// Walk every snapshot; report missing/damaged trees and blobs with the paths they affect.
fn check_snapshots(repo: &Repository, index: &Index, damaged: &HashSet<(BlobType, Id)>, r: &mut CheckReport) -> Result<()> {
    let names = repo.backend().list(FileType::Snapshot)?;
    r.snapshots = names.len();
    let mut memo: HashMap<Id, Vec<String>> = HashMap::new();
    for (name, _) in names {
        let snap = Id::from_hex(&name).ok_or_else(|| Error::integrity(format!("snapshot {name}"), "bad name"));
        let snap = snap.and_then(|id| repo.load_snapshot(&id).map(|s| (id, s)));
        let (id, s) = match snap {
            Ok(v) => v,
            Err(e) => {
                r.error(format!("snapshot {name}"), e.to_string());
                continue;
            }
        };
        let mut problems = Vec::new();
        let paths = walk_tree(repo, index, damaged, s.tree, "", &mut memo, &mut problems);
        for (obj, msg) in problems {
            r.error(obj, msg);
        }
        if !paths.is_empty() {
            r.affected.insert(id.to_hex(), paths);
        }
    }
    r.trees = memo.len();
    r.errors.sort_by(|a, b| (&a.object, &a.message).cmp(&(&b.object, &b.message)));
    r.errors.dedup_by(|a, b| a.object == b.object && a.message == b.message);
    Ok(())
}

/// Affected paths below `tree` (relative, starting with `/`), memoised per tree.
fn walk_tree(
    repo: &Repository,
    index: &Index,
    damaged: &HashSet<(BlobType, Id)>,
    tree: Id,
    prefix: &str,
    memo: &mut HashMap<Id, Vec<String>>,
    problems: &mut Vec<(String, String)>,
) -> Vec<String> {
    if let Some(rel) = memo.get(&tree) {
        return rel.iter().map(|p| format!("{prefix}{p}")).collect();
    }
    let obj = crate::format::blob::describe(BlobType::Tree, &tree);
    let mut rel = Vec::new();
    let unusable = !index.contains(BlobType::Tree, &tree) || damaged.contains(&(BlobType::Tree, tree));
    match repo.read_tree(index, &tree) {
        Ok(t) if !unusable => {
            for n in &t.nodes {
                let name = format!("/{}", String::from_utf8_lossy(&n.name));
                match &n.kind {
                    NodeKind::Dir { subtree } => {
                        rel.extend(walk_tree(repo, index, damaged, *subtree, &name, memo, problems));
                    }
                    NodeKind::File { content, .. } => {
                        let mut hit = false;
                        for c in content {
                            if !index.contains(BlobType::Data, &c.id) {
                                problems.push((crate::format::blob::describe(BlobType::Data, &c.id), "missing from the index".into()));
                                hit = true;
                            } else if damaged.contains(&(BlobType::Data, c.id)) {
                                hit = true;
                            }
                        }
                        if hit {
                            rel.push(name);
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(_) => rel.push("/ (directory listing damaged)".to_string()),
        Err(e) => {
            problems.push((obj, e.to_string()));
            rel.push("/ (directory listing unreadable)".to_string());
        }
    }
    let out = rel.iter().map(|p| format!("{prefix}{p}")).collect();
    memo.insert(tree, rel);
    out
}
