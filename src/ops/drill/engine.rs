//! Restore drills: restore a snapshot (whole, a path in it, or a random sample of its files) into
//! a scratch directory, read every restored byte back and compare it and the metadata with the
//! snapshot, and measure how long a full restore takes (RTO) and how old the snapshot is (RPO).
//!
//! The restore is [`crate::restore::restore`] with `verify`: each file is read back through its
//! descriptor right after it is written (in the restore's parallel workers, while the page cache
//! is warm), every chunk hashed with the repository's key and compared with the snapshot's
//! chunk IDs, the length checked; the metadata set on every file, directory, symlink and special
//! file is read back and compared (mode, mtime, owner as root, symlink targets), and each hard
//! link is checked to be the group's inode. No data pack is read twice.
//!
//! A sample drill is stratified: small entries (below [`LARGE_FILE`]) and large files are drawn
//! apart, and restored in four timed passes — the tree walk alone, the directory skeleton, the
//! small entries, the large files — so that the full-restore time can be extrapolated (see
//! [`Model`]).

use crate::archiver::Progress;
use crate::browse::Change;
use crate::error::{Error, IoContext, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind};
use crate::id::Id;
use crate::repo::index::Index;
use crate::repo::walk::Trees;
use crate::repo::Repository;
use crate::restore::{self, MetaOptions, Mode, Overwrite, RestoreOptions, RestoreStats, Selector};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How a sample's share is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleBy {
    /// A share of the entries (files, symlinks, special files).
    #[default]
    Files,
    /// A share of the content bytes.
    Bytes,
}

/// A random sample to drill instead of the whole snapshot.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Sample {
    /// The share to restore, as a fraction in (0, 1].
    pub share: f64,
    /// What the share is of.
    pub by: SampleBy,
    /// Seed of the random choice; the same seed chooses the same entries of the same snapshot.
    pub seed: u64,
}

impl Sample {
    /// Parse a share such as `5%` or `0.5%` (more than 0, at most 100).
    pub fn parse_share(s: &str) -> Result<f64> {
        let bad = || Error::InvalidArgument(format!("--sample {s:?}: give a percentage such as 5% (0 < P <= 100)"));
        let pct: f64 = s.trim().strip_suffix('%').ok_or_else(bad)?.trim().parse().map_err(|_| bad())?;
        if !(pct > 0.0 && pct <= 100.0) {
            return Err(bad());
        }
        Ok(pct / 100.0)
    }

    /// The share in thousandths (for the journal's metrics).
    pub fn permille(&self) -> u64 {
        (self.share * 1000.0).round() as u64
    }
}

/// [`DrillOptions::after_restore`]: called with the scratch directory.
pub type AfterRestore = Box<dyn Fn(&Path)>;

/// What a drill does besides restoring into the scratch directory.
#[derive(Default)]
pub struct DrillOptions {
    /// The scratch directory (it exists, is empty, and is the caller's to remove).
    pub scratch: PathBuf,
    /// Drill a random sample instead of everything.
    pub sample: Option<Sample>,
    /// Which metadata to restore and compare (ownership only as root, unless `no_owner`).
    pub meta: MetaOptions,
    /// Called with each restored file before it is read back (a test hook, see
    /// [`RestoreOptions::before_verify`]).
    pub before_verify: Option<restore::VerifyHook>,
    /// Called with each restored file once its metadata is applied (a test hook, see
    /// [`RestoreOptions::before_verify_meta`]).
    pub before_verify_meta: Option<restore::VerifyHook>,
    /// Called with the scratch directory once everything is restored and verified (a test
    /// hook: a drill in progress, to be interrupted).
    pub after_restore: Option<AfterRestore>,
    /// Unlink each file once verified (see [`RestoreOptions::discard`]): the scratch directory
    /// empties while the restore runs. Off when the scratch directory is kept.
    pub discard: bool,
}

/// Entry counts and content bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Regular files (each member of a hard-link group counted).
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symlinks and special files.
    pub others: u64,
    /// Content bytes of the regular files.
    pub bytes: u64,
}

/// How the full-restore time was obtained.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Model {
    /// `measured` (a full drill: nothing extrapolated) or `stratified` (a sample drill:
    /// `fixed_ns + per_entry_ns × small entries + per_byte_ns × bytes of large files`).
    pub kind: &'static str,
    /// Time that does not grow with the files restored: one tree walk and every directory.
    pub fixed_ns: u64,
    /// Time of one small entry (a file below [`LARGE_FILE`], symlink or special file), measured
    /// on the sample's small entries.
    pub per_entry_ns: f64,
    /// Time of one byte of a large file, measured on the sample's large files.
    pub per_byte_ns: f64,
    /// What the model was made from (a sample drill): the tree census (reading every tree),
    /// the walk and skeleton passes, and the two strata's passes.
    pub observed: Option<Observed>,
}

/// The measurements of a sample drill's passes.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Observed {
    /// Reading every tree of the scope and counting its entries, ns.
    pub census_ns: u64,
    /// The pass that walks the trees and restores nothing, ns.
    pub walk_ns: u64,
    /// The pass that makes every directory, ns.
    pub skeleton_ns: u64,
    /// Small entries: the pass's entries, bytes, wall time (less walk and directories) and
    /// summed worker time.
    pub small: Obs,
    /// Large files, likewise.
    pub large: Obs,
    /// Worker threads.
    pub threads: usize,
}

/// One difference between what was restored and the snapshot.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Mismatch {
    /// `content` (content, length, type or symlink target) or `metadata` (mode, owner, mtime,
    /// or a hard link that is not one).
    pub kind: &'static str,
    /// Path in the scratch directory.
    pub path: PathBuf,
}

/// The result of a drill: what was drilled, what was found, what it took.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DrillReport {
    /// The snapshot drilled.
    pub snapshot: Id,
    /// Its time (Unix nanoseconds).
    pub snapshot_time: i64,
    /// The path in it that was drilled (`/` for all of it).
    pub path: String,
    /// The sample, for a sample drill.
    pub sample: Option<Sample>,
    /// Everything at `path` in the snapshot.
    pub scope: Counts,
    /// What was restored and verified (all of `scope`, or the sample).
    pub drilled: Counts,
    /// Time to restore what was drilled (the verification's share taken out).
    pub restore_ns: u64,
    /// Time to verify it (its share of the restore's workers' time).
    pub verify_ns: u64,
    /// Content bytes restored per second.
    pub bytes_per_sec: u64,
    /// Measured restore time (the RTO for `drilled`).
    pub rto_measured_ns: u64,
    /// Full-restore time of `scope`: measured for a full drill, extrapolated for a sample.
    pub rto_extrapolated_ns: u64,
    /// How the extrapolation was made.
    pub model: Model,
    /// The snapshot's age when the drill started (the RPO it offers).
    pub age_ns: u64,
    /// Damaged or missing data found while restoring (each names the object and the path).
    pub damage: Vec<String>,
    /// Other problems while restoring or verifying (each names the path).
    pub errors: Vec<String>,
    /// Differences between the restored files and the snapshot.
    pub mismatches: Vec<Mismatch>,
}

impl DrillReport {
    /// Whether everything was restored and matched.
    pub fn ok(&self) -> bool {
        self.damage.is_empty() && self.errors.is_empty() && self.mismatches.is_empty()
    }
}

/// The subdirectory of the scratch directory that a drill restores into.
pub const RESTORE_DIR: &str = "restore";

/// A scratch directory for a drill: created 0700 under a random name, removed when dropped
/// unless kept.
pub struct Scratch {
    path: PathBuf,
    keep: bool,
}

impl Scratch {
    /// Make a new directory `arca-drill-XXXXXX` in `parent` (which must exist).
    pub fn create(parent: &Path) -> Result<Scratch> {
        let dir = tempfile::Builder::new()
            .prefix("arca-drill-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir_in(parent)
            .map_err(|e| {
                // tempfile's message repeats the random path; the OS error and the parent suffice.
                let source = e.raw_os_error().map_or(e, std::io::Error::from_raw_os_error);
                Error::Io { path: parent.to_path_buf(), source }
            })?;
        Ok(Scratch { path: dir.keep(), keep: false })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leave it in place when dropped.
    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// Remove it now (what dropping does), reporting a failure.
    pub fn remove(mut self) -> Result<()> {
        self.keep = true;
        remove_tree(&self.path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = remove_tree(&self.path);
        }
    }
}

/// Remove a directory tree through descriptors only (`openat` with `O_NOFOLLOW`, `unlinkat`):
/// nothing is resolved by path below `path`'s parent, so a directory swapped for a symlink is
/// unlinked as a name, never followed. Directories whose restored mode denies writing are made
/// `0700` through their descriptor. The top levels are emptied in parallel on the worker pool:
/// removal is part of every drill's time.
pub fn remove_tree(path: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::InvalidArgument(format!("cannot remove {}", path.display())));
    };
    let name = std::ffi::CString::new(name.as_bytes())
        .map_err(|_| Error::InvalidArgument(format!("cannot remove {}", path.display())))?;
    let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC;
    let run = || -> std::io::Result<()> {
        let parent = rustix::fs::open(parent, flags, rustix::fs::Mode::empty())?;
        remove_parallel(parent.as_fd(), &name, 0)
    };
    match run() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r.at(path),
    }
}

/// Levels below the scratch directory whose subdirectories are removed in parallel; deeper
/// ones are removed by the restore's iterative remover (one descriptor per level).
const PARALLEL_LEVELS: u32 = 3;

fn remove_parallel(parent: std::os::fd::BorrowedFd, name: &std::ffi::CString, level: u32) -> std::io::Result<()> {
    use crate::restore::target;
    use rayon::prelude::*;
    if level >= PARALLEL_LEVELS {
        return target::remove_tree(parent, name);
    }
    let fd = target::open_dir(parent, name)?;
    let mut subdirs = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd)? {
        let entry = entry?;
        let n = entry.file_name();
        if n.to_bytes() == b"." || n.to_bytes() == b".." {
            continue;
        }
        let n = n.to_owned();
        if target::unlink_entry(&fd, &n)? {
            subdirs.push(n);
        }
    }
    subdirs.par_iter().try_for_each(|n| remove_parallel(fd.as_fd(), n, level + 1))?;
    Ok(rustix::fs::unlinkat(parent, name.as_c_str(), rustix::fs::AtFlags::REMOVEDIR)?)
}

/// A small seeded generator (SplitMix64): reproducible samples need no external crate.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        // Multiply-shift: unbiased enough for shuffling (n is far below 2^64).
        ((self.next() as u128 * n as u128) >> 64) as u64
    }
}

/// A random seed for a drill that was not given one: below 2^53, so that it survives a JSON
/// reader that holds numbers as doubles (jq, JavaScript) and the drill can be repeated from it.
pub fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    let raw = match getrandom::getrandom(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        // No entropy source: the clock still varies from drill to drill.
        Err(_) => crate::sys::now_nanos() as u64,
    };
    raw & ((1 << 53) - 1)
}

/// Files of at least this size are extrapolated by their bytes, smaller ones by their count.
pub const LARGE_FILE: u64 = 64 << 10;

/// An entry of the drilled scope, as the census saw it.
struct Entry {
    rel: PathBuf,
    size: u64,
}

/// The scope's counts and non-directory entries (counted as a restore counts them: a hard link
/// after a group's first name is an "other" entry).
#[derive(Default)]
struct Census {
    scope: Counts,
    entries: Vec<Entry>,
}

/// Walk the scope once: `node` is what `SNAP[:PATH]` names; paths are relative to the restore
/// target (a directory's contents go into it, anything else is restored under its name).
fn census(trees: &Trees, node: &Node) -> Result<Census> {
    let mut c = Census::default();
    let mut groups = HashSet::new();
    let mut visit = |rel: PathBuf, n: &Node| {
        match &n.kind {
            NodeKind::Dir { .. } => return c.scope.dirs += 1,
            NodeKind::File { .. } if n.links > 1 && n.inode != 0 && !groups.insert((n.device, n.inode)) => {
                c.scope.others += 1
            }
            NodeKind::File { size, .. } => {
                c.scope.files += 1;
                c.scope.bytes = c.scope.bytes.saturating_add(*size);
            }
            _ => c.scope.others += 1,
        }
        let size = if let NodeKind::File { size, .. } = n.kind { size } else { 0 };
        c.entries.push(Entry { rel, size });
    };
    match node.kind {
        NodeKind::Dir { subtree } => {
            trees.measure(subtree)?;
            trees.walk(subtree, b"", &mut |p, n| {
                visit(PathBuf::from(OsStr::from_bytes(p.strip_prefix(b"/").unwrap_or(p))), n);
                Ok(true)
            })?
        }
        _ => visit(PathBuf::from(OsStr::from_bytes(&node.name)), node),
    }
    Ok(c)
}

/// Choose the sample among `ix` (indices into `entries`): a seeded shuffle, cut where the share
/// of entries (or of bytes) is reached; at least one entry when there is any.
fn choose(entries: &[Entry], mut ix: Vec<usize>, s: &Sample, rng: &mut SplitMix) -> Vec<usize> {
    for i in (1..ix.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        ix.swap(i, j);
    }
    let take = match s.by {
        SampleBy::Files => (ix.len() as f64 * s.share).ceil() as usize,
        SampleBy::Bytes => {
            let total: u64 = ix.iter().fold(0u64, |t, &i| t.saturating_add(entries[i].size));
            let want = (total as f64 * s.share).ceil() as u64;
            let mut sum = 0u64;
            let mut n = 0;
            while n < ix.len() && (n == 0 || sum < want) {
                sum = sum.saturating_add(entries[ix[n]].size);
                n += 1;
            }
            n
        }
    };
    ix.truncate(take.clamp(1, ix.len().max(1)).min(ix.len()));
    ix
}

/// The sample, stratified: (small entries, large files), each drawn separately so that both
/// are represented in their share.
fn choose_strata(entries: &[Entry], s: &Sample) -> [Vec<usize>; 2] {
    let mut rng = SplitMix(s.seed);
    let (large, small): (Vec<usize>, Vec<usize>) = (0..entries.len()).partition(|&i| entries[i].size >= LARGE_FILE);
    [choose(entries, small, s, &mut rng), choose(entries, large, s, &mut rng)]
}

/// One timed restore pass, its verification's share of the time taken apart.
struct Pass {
    /// Wall time less the verification's share.
    restore_ns: u64,
    verify_ns: u64,
    stats: RestoreStats,
}

fn restore_pass(
    trees: &Trees,
    node: &Node,
    snap_path: &str,
    opts: &DrillOptions,
    only: Option<Selector>,
    progress: &Progress,
) -> Result<Pass> {
    let ropts = RestoreOptions {
        // A subdirectory: the snapshot's metadata (owner, mode) is applied to it, never to the
        // scratch directory, which stays ours and 0700, so no other user can reach into it and
        // swap a directory for a symlink before the tree is removed.
        target: opts.scratch.join(RESTORE_DIR),
        overwrite: Overwrite::IfChanged,
        meta: opts.meta.clone(),
        mode: Mode::WriteVerified,
        before_verify: opts.before_verify.clone(),
        before_verify_meta: opts.before_verify_meta.clone(),
        only,
        discard: opts.discard,
        ..Default::default()
    };
    let t = Instant::now();
    let stats = restore::restore_with(trees, node, snap_path, &ropts, progress)?;
    let wall = t.elapsed().as_nanos() as u64;
    // Verification (and unlinking what was verified) runs on the restore's worker threads,
    // interleaved with writing: its share of the wall time is its summed thread time spread
    // over the pool.
    let threads = rayon::current_num_threads().max(1) as u64;
    let verify_ns = (stats.verify_ns / threads).min(wall);
    let discard_ns = (stats.discard_ns / threads).min(wall - verify_ns);
    Ok(Pass { restore_ns: wall - verify_ns - discard_ns, verify_ns, stats })
}

/// Run a drill of `node` (what `path` names in snapshot `id`) into `opts.scratch`.
#[allow(clippy::too_many_arguments)]
pub fn drill(
    repo: &Repository,
    index: &Index,
    id: Id,
    snapshot: &Snapshot,
    node: &Node,
    path: &str,
    opts: &DrillOptions,
    progress: &Progress,
) -> Result<DrillReport> {
    let age_ns = crate::sys::now_nanos().saturating_sub(snapshot.time).max(0) as u64;
    let snap_path = if path == "/" { "" } else { path };
    let trees = Trees::new(repo, index);
    let mut report = DrillReport {
        snapshot: id,
        snapshot_time: snapshot.time,
        path: path.to_string(),
        sample: opts.sample,
        scope: Counts::default(),
        drilled: Counts::default(),
        restore_ns: 0,
        verify_ns: 0,
        bytes_per_sec: 0,
        rto_measured_ns: 0,
        rto_extrapolated_ns: 0,
        model: Model::default(),
        age_ns,
        damage: Vec::new(),
        errors: Vec::new(),
        mismatches: Vec::new(),
    };
    match &opts.sample {
        None => {
            let pass = restore_pass(&trees, node, snap_path, opts, None, progress)?;
            report.restore_ns = pass.restore_ns;
            report.verify_ns = pass.verify_ns;
            report.drilled = counts(&pass.stats);
            report.scope = report.drilled;
            report.model = Model { kind: "measured", ..Model::default() };
            report.rto_extrapolated_ns = pass.restore_ns;
            take_problems(&mut report, pass.stats);
        }
        Some(s) => sample_passes(&trees, node, snap_path, opts, s, &mut report, progress)?,
    }
    report.rto_measured_ns = report.restore_ns;
    report.bytes_per_sec = per_sec(report.drilled.bytes, report.restore_ns);
    if let Some(hook) = &opts.after_restore {
        hook(&opts.scratch);
    }
    Ok(report)
}

/// What a restore pass restored.
fn counts(s: &RestoreStats) -> Counts {
    Counts { files: s.files + s.files_skipped, dirs: s.dirs, others: s.others, bytes: s.bytes }
}

fn per_sec(bytes: u64, ns: u64) -> u64 {
    if ns == 0 {
        0
    } else {
        (bytes as u128 * 1_000_000_000 / ns as u128) as u64
    }
}

/// Move a pass's problems into the report: damage apart from other errors, and mismatches.
fn take_problems(report: &mut DrillReport, stats: RestoreStats) {
    for e in stats.errors {
        if report.damage.contains(&e) || report.errors.contains(&e) {
            continue; // the same damaged tree, met again by a later pass
        }
        // `RestoreStats` counts integrity errors but does not mark them; their text does.
        if stats.damaged > 0 && e.contains("integrity error") {
            report.damage.push(e);
        } else {
            report.errors.push(e);
        }
    }
    for m in stats.mismatched {
        let kind = if m.change == Change::Metadata { "metadata" } else { "content" };
        report.mismatches.push(Mismatch { kind, path: m.path });
    }
}

/// Restore a sample in four timed passes and extrapolate the full-restore time (see [`Model`]).
#[allow(clippy::too_many_arguments)]
fn sample_passes(
    trees: &Trees,
    node: &Node,
    snap_path: &str,
    opts: &DrillOptions,
    sample: &Sample,
    report: &mut DrillReport,
    progress: &Progress,
) -> Result<()> {
    let started = Instant::now();
    let census = census(trees, node)?;
    let census_ns = started.elapsed().as_nanos() as u64;
    report.scope = census.scope;
    let strata = choose_strata(&census.entries, sample);
    let walk = restore_pass(trees, node, snap_path, opts, Some(Box::new(|_, _| false)), progress)?;
    let dirs: Selector = Box::new(|_, n| matches!(n.kind, NodeKind::Dir { .. }));
    let skeleton = restore_pass(trees, node, snap_path, opts, Some(dirs), progress)?;
    report.drilled.dirs = skeleton.stats.dirs;
    // A pass re-opens (and re-finishes) the directories on its files' paths: measured on the
    // skeleton, that cost is taken out of the pass, as the fixed cost already holds it.
    let per_dir = skeleton.restore_ns.saturating_sub(walk.restore_ns) / skeleton.stats.dirs.max(1);
    let mut total = (walk.restore_ns + skeleton.restore_ns, walk.verify_ns + skeleton.verify_ns);
    take_problems(report, skeleton.stats);
    let mut obs = Vec::new();
    for ix in &strata {
        let set: HashSet<PathBuf> = ix.iter().map(|&i| census.entries[i].rel.clone()).collect();
        let only: Selector = Box::new(move |rel, _| set.contains(rel));
        let pass = restore_pass(trees, node, snap_path, opts, Some(only), progress)?;
        let c = counts(&pass.stats);
        report.drilled.files += c.files;
        report.drilled.others += c.others;
        report.drilled.bytes += c.bytes;
        total = (total.0 + pass.restore_ns, total.1 + pass.verify_ns);
        obs.push(Obs {
            entries: ix.len() as u64,
            bytes: c.bytes,
            ns: pass.restore_ns.saturating_sub(walk.restore_ns + per_dir * pass.stats.dirs),
            work_ns: pass.stats.file_ns.saturating_sub(pass.stats.verify_ns + pass.stats.discard_ns),
        });
        take_problems(report, pass.stats);
    }
    (report.restore_ns, report.verify_ns) = total;
    let (large_n, large_bytes) =
        census.entries.iter().filter(|e| e.size >= LARGE_FILE).fold((0u64, 0u64), |(n, b), e| (n + 1, b + e.size));
    let small_n = census.entries.len() as u64 - large_n;
    // The workers a full restore has: the CPU's, or as many as the storage wants reads in flight.
    let threads = rayon::current_num_threads().max(trees.repo().backend().read_parallelism());
    // A full restore reads every tree cold (the census did), then makes every directory.
    let fixed = census_ns + skeleton.restore_ns.saturating_sub(walk.restore_ns);
    report.model = extrapolate(fixed, obs[0], obs[1], threads);
    report.model.observed = Some(Observed {
        census_ns,
        walk_ns: walk.restore_ns,
        skeleton_ns: skeleton.restore_ns,
        small: obs[0],
        large: obs[1],
        threads,
    });
    let full = report.model.fixed_ns as f64
        + report.model.per_entry_ns * small_n as f64
        + report.model.per_byte_ns * large_bytes as f64;
    report.rto_extrapolated_ns = full.round() as u64;
    Ok(())
}

/// One pass's work and time (less the tree walk and the verification).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Obs {
    /// Entries restored.
    pub entries: u64,
    /// Content bytes restored.
    pub bytes: u64,
    /// Wall time, ns.
    pub ns: u64,
    /// Time spent restoring files, summed over the worker threads, ns.
    pub work_ns: u64,
}

/// The stratified model: a full restore keeps every worker busy with files (tens of thousands
/// of them, in batches), so its file time is the files' summed worker time spread over the
/// workers. Small entries cost their sample's worker time per entry, large files their
/// sample's worker time per byte — worker time, not wall time, because a sample's few large
/// files restore with less parallelism than they get in a full restore, and a pass's wall time
/// also holds reopening directories that a full restore makes once. Reading the trees, walking
/// them and making the directories are a fixed cost (`fixed_ns`).
fn extrapolate(fixed_ns: u64, small: Obs, large: Obs, threads: usize) -> Model {
    let t = threads.max(1) as f64;
    let per = |work: u64, n: u64| if n > 0 { work as f64 / n as f64 / t } else { 0.0 };
    Model {
        kind: "stratified",
        fixed_ns,
        per_entry_ns: per(small.work_ns, small.entries),
        per_byte_ns: per(large.work_ns, large.bytes),
        observed: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(sizes: &[u64]) -> Vec<Entry> {
        sizes.iter().enumerate().map(|(i, &size)| Entry { rel: PathBuf::from(format!("f{i}")), size }).collect()
    }

    #[test]
    fn share_parses_percentages_only() {
        assert_eq!(Sample::parse_share("5%").unwrap(), 0.05);
        assert_eq!(Sample::parse_share("100%").unwrap(), 1.0);
        for bad in ["5", "0%", "-1%", "101%", "x%", "", "nan%"] {
            assert!(Sample::parse_share(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_sample_is_seeded_stratified_and_sized() {
        // 1000 small files and 100 large ones.
        let sizes: Vec<u64> = (0..1100).map(|i| if i < 1000 { i } else { LARGE_FILE + i }).collect();
        let e = entries(&sizes);
        let s = Sample { share: 0.05, by: SampleBy::Files, seed: 7 };
        let [small, large] = choose_strata(&e, &s);
        assert_eq!((small.len(), large.len()), (50, 5));
        assert!(small.iter().all(|&i| i < 1000) && large.iter().all(|&i| i >= 1000));
        assert_eq!([small.clone(), large], choose_strata(&e, &s));
        assert_ne!(small, choose_strata(&e, &Sample { seed: 8, ..s })[0]);
        let [small, large] = choose_strata(&e, &Sample { by: SampleBy::Bytes, ..s });
        for (ix, range) in [(small, 0..1000), (large, 1000..1100)] {
            let total: u64 = range.clone().map(|i| sizes[i]).sum();
            let got: u64 = ix.iter().map(|&i| sizes[i]).sum();
            assert!(got >= total / 20 && got < total / 20 + LARGE_FILE + 1100, "{got} of {total}");
        }
        assert_eq!(choose_strata(&[], &s), [Vec::<usize>::new(), Vec::new()]);
    }

    #[test]
    fn the_model_spreads_worker_time_over_the_workers() {
        // Worker time per small entry and per large byte, over two workers, whatever the
        // passes' wall times were.
        let small = Obs { entries: 100, bytes: 1000, ns: 2000, work_ns: 4000 };
        let large = Obs { entries: 3, bytes: 1 << 20, ns: 1 << 22, work_ns: 3 << 20 };
        let m = extrapolate(5, small, large, 2);
        assert_eq!(m.kind, "stratified");
        assert_eq!((m.fixed_ns, m.per_entry_ns, m.per_byte_ns), (5, 20.0, 1.5));
        assert_eq!(extrapolate(5, Obs { ns: 1, ..small }, large, 2).per_entry_ns, 20.0);
        assert_eq!(extrapolate(5, small, large, 4).per_byte_ns, 0.75);
        let none = Obs { entries: 0, bytes: 0, ns: 9, work_ns: 0 };
        let empty = extrapolate(5, none, none, 2);
        assert_eq!((empty.per_entry_ns, empty.per_byte_ns), (0.0, 0.0));
    }
}
