//! Restore drills: restore a snapshot (whole, a path in it, or a random sample of its files) into
//! a scratch directory, read every restored byte back and compare it and the metadata with the
//! snapshot, and measure how long a full restore takes (RTO) and how old the snapshot is (RPO).
//!
//! The restore is [`crate::restore::restore`]; the verification is the same dry run with change
//! listing that `arca verify` does (every chunk of every file re-read from the scratch directory
//! and hashed with the repository's key, in parallel while the page cache is warm; mode, owner
//! as root, mtime, type and symlink targets compared), plus what that dry run does not look at:
//! hard links (members of a group must be one inode) and the times, modes and owners of symlinks
//! and special files. No data pack is read twice.
//!
//! A sample drill restores in four timed passes, so that the full-restore time can be
//! extrapolated from costs fitted on the sample (see [`Model`]): the tree walk alone, the
//! directory skeleton, the sample's smaller half of files, its larger half.

use crate::archiver::Progress;
use crate::browse::Change;
use crate::error::{Error, IoContext, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind};
use crate::id::Id;
use crate::repo::index::Index;
use crate::repo::Repository;
use crate::restore::{self, MetaOptions, Overwrite, RestoreOptions, RestoreStats, Selector};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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

/// What a drill does besides restoring into the scratch directory.
#[derive(Default)]
pub struct DrillOptions {
    /// The scratch directory (it exists, is empty, and is the caller's to remove).
    pub scratch: PathBuf,
    /// Drill a random sample instead of everything.
    pub sample: Option<Sample>,
    /// Which metadata to restore and compare (ownership only as root, unless `no_owner`).
    pub meta: MetaOptions,
    /// Called with the scratch directory between restore and verification (for tests that
    /// must prove a difference is found).
    pub before_verify: Option<Box<dyn Fn(&Path)>>,
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

impl Counts {
    fn add(&mut self, n: &Node) {
        match &n.kind {
            NodeKind::File { size, .. } => {
                self.files += 1;
                self.bytes += size;
            }
            NodeKind::Dir { .. } => self.dirs += 1,
            _ => self.others += 1,
        }
    }

    fn entries(&self) -> u64 {
        self.files + self.others
    }
}

/// How the full-restore time was obtained.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Model {
    /// `measured` (a full drill: nothing extrapolated), `per-entry+per-byte` (costs fitted on the
    /// sample's two halves), or `per-entry` (the fit was degenerate: the sample's time per entry).
    pub kind: &'static str,
    /// Time that does not grow with the files restored: the tree walk and the directories.
    pub fixed_ns: u64,
    /// Fitted cost of one file, symlink or special file.
    pub per_entry_ns: f64,
    /// Fitted cost of one content byte.
    pub per_byte_ns: f64,
}

/// One difference between what was restored and the snapshot.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Mismatch {
    /// `missing`, `extra`, `content` (content or type), `metadata` (mode, owner, times),
    /// `hardlink`.
    pub kind: &'static str,
    /// Path in the scratch directory.
    pub path: PathBuf,
    /// Details, where there are any.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
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
    /// Time to restore what was drilled.
    pub restore_ns: u64,
    /// Time to verify it.
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
            .tempdir_in(parent).map_err(|e| {
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

/// Remove a directory tree even where a restored directory's mode denies writing to it.
pub fn remove_tree(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            open_up(path);
            std::fs::remove_dir_all(path).at(path)
        }
    }
}

/// Give the owner full access to every directory below `path` (not following symlinks).
fn open_up(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![path.to_path_buf()];
    while let Some(d) = stack.pop() {
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700));
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
    }
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

/// A random seed for a drill that was not given one.
pub fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::getrandom(&mut b).is_err() {
        // No entropy source: the clock still varies from drill to drill.
        return crate::sys::now_nanos() as u64;
    }
    u64::from_le_bytes(b)
}

/// An entry of the drilled scope, as the census saw it.
struct Entry {
    rel: PathBuf,
    size: u64,
    /// A regular file (not a symlink or special file).
    file: bool,
}

/// What the census walk learns: the scope's counts, its non-directory entries (kept only for a
/// sample), and what the extra checks need (hard-link groups, symlinks and special files).
#[derive(Default)]
struct Census {
    scope: Counts,
    entries: Vec<Entry>,
    /// Hard-link groups by (device, inode): members' paths and content identity.
    hard: HashMap<(u64, u64), Vec<(PathBuf, u64)>>,
    /// Symlinks and special files, with their nodes.
    specials: Vec<(PathBuf, Node)>,
}

/// Walk the scope once: `node` is what `SNAP[:PATH]` names; paths are relative to the restore
/// target (a directory's contents go into it, anything else is restored under its name).
fn census(repo: &Repository, index: &Index, node: &Node, keep_entries: bool) -> Result<Census> {
    let mut c = Census::default();
    let mut visit = |rel: PathBuf, n: &Node| {
        c.scope.add(n);
        match &n.kind {
            NodeKind::Dir { .. } => return,
            NodeKind::File { size, .. } => {
                if n.links > 1 && n.inode != 0 {
                    c.hard.entry((n.device, n.inode)).or_default().push((rel.clone(), *size));
                }
            }
            _ => c.specials.push((rel.clone(), n.clone())),
        }
        if keep_entries {
            let (size, file) = if let NodeKind::File { size, .. } = n.kind { (size, true) } else { (0, false) };
            c.entries.push(Entry { rel, size, file });
        }
    };
    match node.kind {
        NodeKind::Dir { subtree } => crate::browse::walk(repo, index, subtree, b"", true, &mut |p, n| {
            visit(PathBuf::from(OsStr::from_bytes(p.strip_prefix(b"/").unwrap_or(p))), n);
            Ok(())
        })?,
        _ => visit(PathBuf::from(OsStr::from_bytes(&node.name)), node),
    }
    c.hard.retain(|_, members| members.len() > 1);
    Ok(c)
}

/// Choose the sample: a seeded shuffle of the entries, cut where the share of entries (or of
/// bytes) is reached; at least one entry when there is any.
fn choose(entries: &[Entry], total_bytes: u64, s: &Sample) -> Vec<usize> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    let mut rng = SplitMix(s.seed);
    for i in (1..order.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    let take = match s.by {
        SampleBy::Files => ((entries.len() as f64 * s.share).ceil() as usize).max(1),
        SampleBy::Bytes => {
            let want = (total_bytes as f64 * s.share).ceil() as u64;
            let mut sum = 0u64;
            let mut n = 0;
            while n < order.len() && (n == 0 || sum < want) {
                sum += entries[order[n]].size;
                n += 1;
            }
            n
        }
    };
    order.truncate(take.min(entries.len()));
    order
}

/// One timed restore pass.
struct Pass {
    ns: u64,
    stats: RestoreStats,
}

fn restore_pass(
    repo: &Repository,
    index: &Index,
    node: &Node,
    snap_path: &str,
    opts: &DrillOptions,
    only: Option<Selector>,
    progress: &Progress,
) -> Result<Pass> {
    let ropts = RestoreOptions {
        target: opts.scratch.clone(),
        overwrite: Overwrite::IfChanged,
        meta: opts.meta.clone(),
        only,
        ..Default::default()
    };
    let t = Instant::now();
    let stats = restore::restore(repo, index, node, snap_path, &ropts, progress)?;
    Ok(Pass { ns: t.elapsed().as_nanos() as u64, stats })
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
    let age_ns = (crate::sys::now_nanos() - snapshot.time).max(0) as u64;
    let snap_path = if path == "/" { "" } else { path };
    let census = census(repo, index, node, opts.sample.is_some())?;
    let mut report = DrillReport {
        snapshot: id,
        snapshot_time: snapshot.time,
        path: path.to_string(),
        sample: opts.sample,
        scope: census.scope,
        drilled: census.scope,
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
    // The chosen entries (all of them for a full drill).
    let chosen: Option<Arc<HashSet<PathBuf>>> = match &opts.sample {
        None => {
            let pass = restore_pass(repo, index, node, snap_path, opts, None, progress)?;
            report.restore_ns = pass.ns;
            report.model = Model { kind: "measured", fixed_ns: 0, per_entry_ns: 0.0, per_byte_ns: 0.0 };
            report.rto_extrapolated_ns = pass.ns;
            take_errors(&mut report, pass.stats);
            None
        }
        Some(s) => {
            let picked = choose(&census.entries, census.scope.bytes, s);
            let set = sample_passes(repo, index, node, snap_path, opts, &census, &picked, &mut report, progress)?;
            Some(set)
        }
    };
    report.rto_measured_ns = report.restore_ns;
    report.bytes_per_sec = per_sec(report.drilled.bytes, report.restore_ns);
    if let Some(hook) = &opts.before_verify {
        hook(&opts.scratch);
    }
    let t = Instant::now();
    verify(repo, index, node, snap_path, opts, chosen.clone(), &mut report)?;
    check_links_and_specials(opts, &census, chosen.as_deref(), &mut report);
    report.verify_ns = t.elapsed().as_nanos() as u64;
    Ok(report)
}

fn per_sec(bytes: u64, ns: u64) -> u64 {
    if ns == 0 {
        0
    } else {
        (bytes as u128 * 1_000_000_000 / ns as u128) as u64
    }
}

/// Move a pass's errors into the report: damage apart from the rest.
fn take_errors(report: &mut DrillReport, stats: RestoreStats) {
    // `RestoreStats` counts integrity errors but does not mark them; their text does.
    for e in stats.errors {
        if report.damage.contains(&e) || report.errors.contains(&e) {
            continue; // the same damaged tree, met again by a later pass
        }
        if stats.damaged > 0 && e.contains("integrity error") {
            report.damage.push(e);
        } else {
            report.errors.push(e);
        }
    }
}

/// Restore a sample in four timed passes and extrapolate the full-restore time (see [`Model`]).
#[allow(clippy::too_many_arguments)]
fn sample_passes(
    repo: &Repository,
    index: &Index,
    node: &Node,
    snap_path: &str,
    opts: &DrillOptions,
    census: &Census,
    picked: &[usize],
    report: &mut DrillReport,
    progress: &Progress,
) -> Result<Arc<HashSet<PathBuf>>> {
    // Split the sample at its median size: the halves' different mixes of entries and bytes
    // separate the per-entry cost from the per-byte cost.
    let mut by_size: Vec<usize> = picked.to_vec();
    by_size.sort_by_key(|&i| (census.entries[i].size, i));
    let mid = by_size.len() / 2;
    let half = |ix: &[usize]| -> (Arc<HashSet<PathBuf>>, u64, u64) {
        let set: HashSet<PathBuf> = ix.iter().map(|&i| census.entries[i].rel.clone()).collect();
        let bytes = ix.iter().map(|&i| census.entries[i].size).sum();
        (Arc::new(set), ix.len() as u64, bytes)
    };
    let (small, n_a, b_a) = half(&by_size[..mid]);
    let (large, n_b, b_b) = half(&by_size[mid..]);
    let walk = restore_pass(repo, index, node, snap_path, opts, Some(Box::new(|_, _| false)), progress)?;
    let dirs: Selector = Box::new(|_, n| matches!(n.kind, NodeKind::Dir { .. }));
    let skeleton = restore_pass(repo, index, node, snap_path, opts, Some(dirs), progress)?;
    let mut times = Vec::new();
    for set in [&small, &large] {
        let s = set.clone();
        let only: Selector = Box::new(move |rel, _| s.contains(rel));
        let pass = restore_pass(repo, index, node, snap_path, opts, Some(only), progress)?;
        times.push(pass.ns);
        take_errors(report, pass.stats);
    }
    take_errors(report, skeleton.stats);
    report.restore_ns = walk.ns + skeleton.ns + times.iter().sum::<u64>();
    let mut chosen: HashSet<PathBuf> = Arc::unwrap_or_clone(small);
    chosen.extend(Arc::unwrap_or_clone(large));
    let files = picked.iter().filter(|&&i| census.entries[i].file).count() as u64;
    let others = picked.len() as u64 - files;
    report.drilled = Counts { files, dirs: census.scope.dirs, others, bytes: b_a + b_b };
    let a = Obs { entries: n_a, bytes: b_a, ns: times[0].saturating_sub(walk.ns) };
    let b = Obs { entries: n_b, bytes: b_b, ns: times[1].saturating_sub(walk.ns) };
    report.model = fit(skeleton.ns, a, b);
    let full = report.model.fixed_ns as f64
        + report.model.per_entry_ns * census.scope.entries() as f64
        + report.model.per_byte_ns * census.scope.bytes as f64;
    report.rto_extrapolated_ns = full.round() as u64;
    Ok(Arc::new(chosen))
}

/// One pass's work and time (less the tree walk).
#[derive(Clone, Copy)]
struct Obs {
    entries: u64,
    bytes: u64,
    ns: u64,
}

/// Fit `ns = per_entry × entries + per_byte × bytes` exactly through the two halves; when that
/// is degenerate (equal mixes, or a negative cost from noise), fall back to the sample's time
/// per entry, which is unbiased for a sample drawn uniformly over entries.
fn fit(fixed_ns: u64, a: Obs, b: Obs) -> Model {
    let (na, nb, ba, bb) = (a.entries as f64, b.entries as f64, a.bytes as f64, b.bytes as f64);
    let (ta, tb) = (a.ns as f64, b.ns as f64);
    let det = na * bb - nb * ba;
    if det.abs() > f64::EPSILON * (na * bb).abs().max(1.0) * 1e3 {
        let per_entry = (ta * bb - tb * ba) / det;
        let per_byte = (na * tb - nb * ta) / det;
        if per_entry >= 0.0 && per_byte >= 0.0 {
            return Model { kind: "per-entry+per-byte", fixed_ns, per_entry_ns: per_entry, per_byte_ns: per_byte };
        }
    }
    let n = na + nb;
    let per_entry = if n > 0.0 { (ta + tb) / n } else { 0.0 };
    Model { kind: "per-entry", fixed_ns, per_entry_ns: per_entry, per_byte_ns: 0.0 }
}

/// Compare the scratch directory with the snapshot: the dry run of `arca verify`, limited to
/// the chosen entries (and every directory) for a sample.
fn verify(
    repo: &Repository,
    index: &Index,
    node: &Node,
    snap_path: &str,
    opts: &DrillOptions,
    chosen: Option<Arc<HashSet<PathBuf>>>,
    report: &mut DrillReport,
) -> Result<()> {
    let only: Option<Selector> = chosen.map(|set| {
        Box::new(move |rel: &Path, n: &Node| matches!(n.kind, NodeKind::Dir { .. }) || set.contains(rel)) as Selector
    });
    let ropts = RestoreOptions {
        target: opts.scratch.clone(),
        overwrite: Overwrite::IfChanged,
        dry_run: true,
        delete: true,
        list_changes: true,
        meta: opts.meta.clone(),
        only,
        ..Default::default()
    };
    let stats = restore::restore(repo, index, node, snap_path, &ropts, &Progress::default())?;
    for c in &stats.changes {
        let kind = match c.change {
            Change::Added => "missing",
            Change::Removed => "extra",
            Change::Modified => "content",
            Change::Metadata => "metadata",
        };
        report.mismatches.push(Mismatch { kind, path: c.path.clone(), detail: String::new() });
    }
    // An error reading back is a failed verification: keep it, but do not repeat what the
    // restore already reported for the same path.
    for e in stats.errors {
        if !report.damage.iter().chain(&report.errors).any(|r| *r == e) {
            report.errors.push(e);
        }
    }
    Ok(())
}

/// What the verification dry run does not compare: hard links (one inode per group) and the
/// times, modes and owners of symlinks and special files.
fn check_links_and_specials(
    opts: &DrillOptions,
    census: &Census,
    chosen: Option<&HashSet<PathBuf>>,
    report: &mut DrillReport,
) {
    let wanted = |rel: &Path| chosen.is_none_or(|c| c.contains(rel));
    let root = &opts.scratch;
    let mut groups: Vec<_> = census.hard.values().collect();
    groups.sort_by(|a, b| a[0].0.cmp(&b[0].0));
    for members in groups {
        let mut first: Option<(&Path, (u64, u64))> = None;
        for (rel, size) in members.iter().filter(|(rel, _)| wanted(rel)) {
            let Ok(md) = std::fs::symlink_metadata(root.join(rel)) else { continue }; // reported as missing
            let ino = (md.dev(), md.ino());
            match first {
                None => first = Some((rel, ino)),
                Some((p, i)) if i != ino && members[0].1 == *size => report.mismatches.push(Mismatch {
                    kind: "hardlink",
                    path: root.join(rel),
                    detail: format!("not a hard link to {}", root.join(p).display()),
                }),
                Some(_) => {}
            }
        }
    }
    let chown = opts.meta.chown_wanted();
    for (rel, n) in census.specials.iter().filter(|(rel, _)| wanted(rel)) {
        let Ok(md) = std::fs::symlink_metadata(root.join(rel)) else { continue };
        let mut bad = Vec::new();
        if md.mtime() * 1_000_000_000 + md.mtime_nsec() != n.mtime {
            bad.push("mtime");
        }
        let is_link = matches!(n.kind, NodeKind::Symlink { .. });
        let skipped = matches!(n.kind, NodeKind::Socket);
        if !is_link && md.mode() & 0o777 != n.mode & 0o777 {
            bad.push("mode");
        }
        if chown && (md.uid(), md.gid()) != (n.uid, n.gid) {
            bad.push("owner");
        }
        if !bad.is_empty() && !skipped {
            report.mismatches.push(Mismatch { kind: "metadata", path: root.join(rel), detail: bad.join(", ") });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(sizes: &[u64]) -> Vec<Entry> {
        sizes.iter().enumerate().map(|(i, &size)| Entry { rel: PathBuf::from(format!("f{i}")), size, file: true }).collect()
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
    fn choice_is_seeded_and_sized() {
        let e = entries(&(0..1000).collect::<Vec<_>>());
        let s = Sample { share: 0.05, by: SampleBy::Files, seed: 7 };
        let a = choose(&e, 0, &s);
        assert_eq!(a.len(), 50);
        assert_eq!(a, choose(&e, 0, &s));
        assert_ne!(a, choose(&e, 0, &Sample { seed: 8, ..s }));
        let total: u64 = e.iter().map(|x| x.size).sum();
        let b = choose(&e, total, &Sample { by: SampleBy::Bytes, ..s });
        let got: u64 = b.iter().map(|&i| e[i].size).sum();
        assert!(got >= total / 20 && got < total / 20 + 1000, "{got} of {total}");
    }

    #[test]
    fn fit_recovers_costs_and_falls_back() {
        // 10 µs per entry, 1 ns per byte.
        let obs = |entries: u64, bytes: u64| Obs { entries, bytes, ns: entries * 10_000 + bytes };
        let m = fit(5, obs(100, 10_000), obs(100, 10_000_000));
        assert_eq!(m.kind, "per-entry+per-byte");
        assert!((m.per_entry_ns - 10_000.0).abs() < 1e-3 && (m.per_byte_ns - 1.0).abs() < 1e-9);
        let same = fit(5, obs(100, 1000), obs(100, 1000));
        assert_eq!(same.kind, "per-entry");
        assert!((same.per_entry_ns - 10_010.0).abs() < 1e-6);
    }
}
