//! Status against recovery objectives: for each backup group, its newest snapshot and age
//! against a maximum age (the recovery point objective), the size change from the previous
//! snapshot with an anomaly flag, the last drill's restore time against a maximum (the
//! recovery time objective), the storage's free space — and what the operations journal says
//! about it, read by the rules of format-spec 21.6 so that status neither cries wolf nor goes
//! green after a failure:
//!
//! - a group is **failing** when its newest backup record did not succeed and no backup of it
//!   has succeeded since (a failed `after` hook is a failed backup); a restore, dump or verify
//!   that failed, or a typo in one, is not a backup failure;
//! - **damage** found by a check stays until a later check that read at least as much
//!   passes; damage found reading a snapshot stays until that snapshot is drilled whole or
//!   fully checked (or is gone); a drill whose `verify-command` failed stays until a later
//!   drill of the group passes. A `verify` that finds live files differing is not damage;
//! - a snapshot is **verified** by a successful whole drill or full `check --read-data` of it
//!   or of a snapshot of the same content ([`super::journal::Lineage`]: tag changes keep it).
//!
//! The cost is bounded for monitoring that runs every few minutes: snapshot files and journal
//! files are read in parallel (and both at once), and only the newest two snapshots of each
//! group have their trees read, each distinct tree once ([`crate::repo::walk::content_sizes`]).
//! The journal is scanned once, with records matched to groups through hash maps, so 10 000
//! snapshots and 10 000 records take well under a second.
//!
//! Objectives are per group: an [`Objective`] (from a profile's component, or the command line)
//! selects snapshots with a filter and gives them a maximum age and restore time; snapshots no
//! objective selects fall back to the defaults. An objective that selects no snapshot at all is
//! reported as a group without a snapshot, and missed.

use super::journal::{Lineage, Op, Outcome as Recorded, Record};
use super::outcome::Outcome;
use super::profile::FreeSpace;
use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::id::Id;
use crate::lifecycle::group::{self, GroupBy, GroupKey};
use crate::repo::select::SnapshotFilter;
use crate::repo::Repository;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Tag prefix naming a snapshot's component (`component=db`), as profiles tag them.
pub const COMPONENT_TAG: &str = "component=";

/// Recovery objectives for some snapshots.
#[derive(Clone, Debug, Default)]
pub struct Objective {
    /// The component's name (shown, and the `component` label in Prometheus output).
    pub name: String,
    /// Which snapshots it covers (for a component: tagged `component=NAME`).
    pub filter: SnapshotFilter,
    /// How old the newest of them may be; `None` takes the default.
    pub max_age: Option<Duration>,
    /// How long a full restore of them may take, as the last drill measured it; `None`: no
    /// restore time objective.
    pub max_rto: Option<Duration>,
}

/// What `status` reports on.
#[derive(Clone, Debug)]
pub struct StatusOptions {
    /// How snapshots form groups (as `forget --group-by`).
    pub group_by: GroupBy,
    /// Only snapshots this selects are considered.
    pub filter: SnapshotFilter,
    /// Objectives, first match wins for a snapshot.
    pub objectives: Vec<Objective>,
    /// The maximum age of groups no objective names (and of objectives without one); `None`:
    /// no objective.
    pub default_max_age: Option<Duration>,
    /// Report only the groups of objectives (a profile's components), not other snapshots.
    pub only_objectives: bool,
    /// A snapshot whose size fell by more than this percentage of the previous one is an
    /// anomaly (1 ..= 100; 100 disables the check).
    pub shrink_percent: u8,
    /// Free space the repository's storage must keep.
    pub min_free: Option<FreeSpace>,
    /// "Now", Unix nanoseconds.
    pub now: i64,
}

impl Default for StatusOptions {
    fn default() -> Self {
        StatusOptions {
            group_by: GroupBy { host: true, paths: true, tags: true },
            filter: SnapshotFilter::default(),
            objectives: Vec::new(),
            default_max_age: None,
            only_objectives: false,
            shrink_percent: 50,
            min_free: None,
            now: crate::sys::now_nanos(),
        }
    }
}

/// One snapshot as status shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    /// Its ID.
    pub id: Id,
    /// Its time, Unix nanoseconds.
    pub time_ns: i64,
    /// Bytes of file content (what a restore writes); `None` when a tree cannot be read.
    pub size: Option<u64>,
    /// Whether it holds a stream (`backup --stdin`) rather than files.
    pub stream: bool,
}

/// A size that looks wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Anomaly {
    /// The newest snapshot is smaller than the previous one by more than the threshold.
    Shrank {
        /// Previous size.
        from: u64,
        /// Newest size.
        to: u64,
        /// How much smaller, percent of the previous size (rounded down).
        percent: u8,
    },
    /// The newest snapshot is a stream of zero bytes.
    EmptyStream,
}

/// The newest successful check of the repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckInfo {
    /// When it started, Unix nanoseconds.
    pub time_ns: i64,
    /// Its `read_data` label: `none`, `all` or a subset such as `1/10`.
    pub read_data: Option<String>,
    /// Whether it read every byte (`read_data` = `all`).
    pub read_all_data: bool,
}

/// The newest drill of a snapshot of the group that restored everything it tried.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DrillInfo {
    /// When it started, Unix nanoseconds.
    pub time_ns: i64,
    /// The snapshot drilled.
    pub snapshot: Option<Id>,
    /// Measured restore time of what it restored (`rto_ns`).
    pub rto_ns: Option<u64>,
    /// Restore time extrapolated to the whole snapshot (`rto_full_ns`): the last measured RTO.
    pub rto_full_ns: Option<u64>,
    /// Its `sample` label, when it restored a sample.
    pub sample: Option<String>,
    /// Its `path` label, when it restored part of the snapshot.
    pub path: Option<String>,
}

/// A failed operation (a backup, or one that found damage) that nothing has resolved yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailureInfo {
    /// When it started, Unix nanoseconds.
    pub time_ns: i64,
    /// The operation (`backup`, `drill`, `check`, ...).
    pub op: String,
    /// Its outcome (`failed` or `damage`).
    pub outcome: String,
    /// Its exit code.
    pub exit_code: u8,
    /// Its first error, if recorded.
    pub error: Option<String>,
    /// The snapshot it found damaged, if it names one.
    pub snapshot: Option<Id>,
    /// Only a drill's `verify-command` failed (the dump did not load): cleared by any later
    /// drill of the group that passes, not by a check.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub verify_command: bool,
}

impl FailureInfo {
    fn of(r: &Record, snapshot: Option<Id>) -> FailureInfo {
        FailureInfo {
            time_ns: r.time,
            op: r.op.name(),
            outcome: r.outcome.name(),
            exit_code: r.exit_code,
            error: r.errors.first().cloned(),
            snapshot,
            verify_command: false,
        }
    }
}

/// One group's status.
#[derive(Clone, Debug, Serialize)]
pub struct GroupStatus {
    /// What its snapshots share.
    pub key: GroupKey,
    /// The objective's component name, or the newest snapshot's `component=` tag.
    pub component: Option<String>,
    /// Number of snapshots.
    pub snapshots: usize,
    /// The newest snapshot (none for an objective without snapshots).
    pub newest: Option<SnapshotInfo>,
    /// The one before it.
    pub previous: Option<SnapshotInfo>,
    /// Age of the newest snapshot, nanoseconds (0 for one dated in the future).
    pub age_ns: Option<u64>,
    /// The recovery point objective: maximum age, nanoseconds.
    pub max_age_ns: Option<u64>,
    /// Whether the recovery point objective is met; `None` without one.
    pub objective_met: Option<bool>,
    /// The recovery time objective, nanoseconds.
    pub max_rto_ns: Option<u64>,
    /// Whether the last drill's full-restore time is within it (`false` when no drill is on
    /// record); `None` without one.
    pub rto_met: Option<bool>,
    /// Newest size minus previous size, bytes.
    pub size_change: Option<i64>,
    /// A size that looks wrong.
    pub anomaly: Option<Anomaly>,
    /// Whether the newest snapshot is verified (a whole drill or a full `check --read-data` of
    /// it, or of a snapshot of the same content).
    pub newest_verified: bool,
    /// The repository's newest successful check.
    pub last_check: Option<CheckInfo>,
    /// The newest drill of a snapshot of this group that restored everything.
    pub last_drill: Option<DrillInfo>,
    /// The newest backup of this group that failed, when none has succeeded since.
    pub last_failure: Option<FailureInfo>,
    /// Damage found in a snapshot of this group that nothing has cleared.
    pub damage: Option<FailureInfo>,
}

impl GroupStatus {
    /// Objectives met (or none), no anomaly, no unresolved failure or damage.
    pub fn ok(&self) -> bool {
        self.objective_met != Some(false)
            && self.rto_met != Some(false)
            && self.anomaly.is_none()
            && self.last_failure.is_none()
            && self.damage.is_none()
    }
}

/// Where the repository lives: its size and the room left there.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Storage {
    /// Bytes of every repository file (`None`: a listing failed, so the sum would be short).
    pub repository_bytes: Option<u64>,
    /// Bytes free for the repository's writer on its filesystem (`None`: not known, e.g. S3).
    pub free_bytes: Option<u64>,
    /// Size of that filesystem.
    pub total_bytes: Option<u64>,
    /// The free-space threshold.
    pub min_free: Option<FreeSpace>,
    /// Whether the threshold is met (`None` without a threshold or a free-space figure).
    pub free_ok: Option<bool>,
}

/// The status of every group.
#[derive(Debug)]
pub struct Status {
    /// "Now" as used for ages.
    pub now: i64,
    /// How snapshots were grouped.
    pub group_by: GroupBy,
    /// Groups: objectives first (in their order), then the rest by key.
    pub groups: Vec<GroupStatus>,
    /// Damage a check found that no later check covering it has cleared.
    pub repository_damage: Option<FailureInfo>,
    /// Damage a check found that `arca repair packs` rebuilds, all of it, not cleared since
    /// (format-spec 21.6: metrics `repairable` > 0 and `unrepairable` = 0), and how many files.
    pub repository_repairable: Option<(FailureInfo, u64)>,
    /// Snapshot files that do not read but that their parity rebuilds.
    pub repairable_snapshots: Vec<String>,
    /// The repository's newest successful check.
    pub last_check: Option<CheckInfo>,
    /// Snapshot files that could not be read.
    pub damaged_snapshots: Vec<(String, Error)>,
    /// Journal files that could not be read (or the journal could not be listed: name `journal/`).
    pub damaged_journal: Vec<(String, Error)>,
    /// Size and free space.
    pub storage: Storage,
}

impl Status {
    /// Some group misses an objective, or the storage its free-space threshold.
    pub fn objective_missed(&self) -> bool {
        self.groups.iter().any(|g| g.objective_met == Some(false) || g.rto_met == Some(false))
            || self.storage.free_ok == Some(false)
    }

    /// Some group has a size anomaly.
    pub fn anomaly(&self) -> bool {
        self.groups.iter().any(|g| g.anomaly.is_some())
    }

    /// Damaged files on record, or snapshot files found now, that `arca repair packs` rebuilds
    /// (0 when none).
    pub fn repairable_files(&self) -> u64 {
        let recorded = self.repository_repairable.as_ref().map_or(0, |(_, n)| *n);
        recorded.max(self.repairable_snapshots.len() as u64)
    }

    /// Damage on record, or a snapshot or journal file that cannot be read.
    pub fn damaged(&self) -> bool {
        !self.damaged_snapshots.is_empty()
            || !self.damaged_journal.is_empty()
            || self.repository_damage.is_some()
            || self.groups.iter().any(|g| g.damage.is_some())
    }

    /// Some group's last backup failed and none has succeeded since.
    pub fn failed(&self) -> bool {
        self.groups.iter().any(|g| g.last_failure.is_some())
    }

    /// What the status stands for, first match: a missed objective or a failing group
    /// (without damage) [`Outcome::Missed`], damage, repairable damage, an anomaly, else ok.
    pub fn outcome(&self) -> Outcome {
        if self.objective_missed() || self.failed() && !self.damaged() {
            Outcome::Missed
        } else if self.damaged() {
            Outcome::Damage
        } else if self.repairable_files() > 0 {
            Outcome::Repairable
        } else if self.anomaly() {
            Outcome::Anomaly
        } else {
            Outcome::Ok
        }
    }
}

/// `base` turned to a profile's components: one objective per component (its `max-age`, else
/// `base.default_max_age`; its `max-rto`), grouped by host only, other snapshots left out.
pub fn for_components(targets: &[super::profile::Target], base: StatusOptions) -> StatusOptions {
    StatusOptions {
        objectives: targets
            .iter()
            .map(|t| Objective {
                name: t.name.clone(),
                filter: t.filter.clone(),
                max_age: t.max_age,
                max_rto: t.max_rto,
            })
            .collect(),
        group_by: GroupBy { host: true, paths: false, tags: false },
        only_objectives: true,
        ..base
    }
}

/// Parse a shrink threshold: `50%` or `50`, from 1 to 100.
pub fn parse_percent(s: &str) -> std::result::Result<u8, String> {
    let n = s.trim().trim_end_matches('%').trim();
    match n.parse::<u8>() {
        Ok(p) if (1..=100).contains(&p) => Ok(p),
        _ => Err(format!("{s:?}: expected a percentage from 1% to 100%")),
    }
}

/// Whether a snapshot holds a stream: `backup --stdin` records one relative name as its path,
/// where a backup of files records absolute paths.
pub fn is_stream(s: &Snapshot) -> bool {
    matches!(s.paths.as_slice(), [p] if !p.starts_with(b"/"))
}

/// Compute the status of `repo`. Only failing to list snapshots is an error; unreadable
/// snapshot and journal files are reported in the result.
pub fn status(repo: &Repository, opts: &StatusOptions) -> Result<Status> {
    let (listing, (journal, (index, storage))) = rayon::join(
        || repo.list_snapshots_and_damage(),
        || {
            rayon::join(
                || crate::repo::journal::load(repo),
                || rayon::join(|| repo.load_index(), || storage(repo, opts)),
            )
        },
    );
    let (all, damaged_snapshots) = listing?;
    // A snapshot file that does not read but that its parity rebuilds is repairable damage.
    let (repairable_snapshots, mut damaged_snapshots): (Vec<_>, Vec<_>) =
        damaged_snapshots.into_iter().partition(|(name, e)| rebuilt_by_parity(repo, name, e));
    let repairable_snapshots: Vec<String> = repairable_snapshots.into_iter().map(|(n, _)| n).collect();
    let (records, damaged_journal) = match journal {
        Ok(j) => (j.records, j.damaged),
        Err(e) => (Vec::new(), vec![("journal/".to_string(), e)]),
    };
    let lineage = Lineage::new(&records, &all);
    let mut groups = build_groups(all, opts);
    let index = index.map_err(|e| damaged_snapshots.push(("index".to_string(), e))).ok();
    fill_sizes(repo, index.as_ref(), &mut groups);
    // A newest snapshot that cannot be sized cannot be judged for anomalies: that is damage,
    // not a pass.
    for g in &groups {
        if let (Some((id, _)), None) = (g.snapshots.last(), g.sizes[0]) {
            let e = Error::integrity(format!("snapshot {id}"), "its trees could not be read to measure its size");
            damaged_snapshots.push((id.to_hex(), e));
        }
    }
    let mut out: Vec<GroupStatus> = groups.iter().map(|g| judge(g, opts)).collect();
    let (last_check, check_damage) = apply_journal(&mut out, &groups, &records, opts.group_by, &lineage);
    let (repository_damage, repository_repairable) = match check_damage {
        Some((f, Some(n))) => (None, Some((f, n))),
        Some((f, None)) => (Some(f), None),
        None => (None, None),
    };
    for (g, b) in out.iter_mut().zip(&groups) {
        let max = b.max_rto.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        g.max_rto_ns = max;
        g.rto_met = max.map(|m| g.last_drill.as_ref().and_then(|d| d.rto_full_ns).is_some_and(|t| t <= m));
    }
    Ok(Status {
        now: opts.now,
        group_by: opts.group_by,
        groups: out,
        repository_damage,
        repository_repairable,
        repairable_snapshots,
        last_check,
        damaged_snapshots,
        damaged_journal,
        storage,
    })
}

/// The repository's size (every file listed) and the free space where it lives.
fn storage(repo: &Repository, opts: &StatusOptions) -> Storage {
    use crate::backend::FileType::*;
    let kinds = [Config, Key, Pack, Index, Snapshot, Lock, Journal, Parity];
    let sizes = |t| repo.backend().list(t).map(|l| l.iter().map(|(_, len)| len).sum::<u64>());
    let repository_bytes = kinds.into_iter().map(sizes).sum::<Result<u64>>().ok();
    let space = repo.backend().free_space().ok().flatten();
    let free_ok = match (opts.min_free, space) {
        (Some(FreeSpace::Bytes(b)), Some((free, _))) => Some(free >= b),
        (Some(FreeSpace::Percent(p)), Some((free, total))) => {
            Some(u128::from(free) * 100 >= u128::from(total) * u128::from(p))
        }
        _ => None,
    };
    Storage {
        repository_bytes,
        free_bytes: space.map(|s| s.0),
        total_bytes: space.map(|s| s.1),
        min_free: opts.min_free,
        free_ok,
    }
}

/// A group while it is being judged: its snapshots oldest first, sizes of the newest two.
struct Bucket {
    key: GroupKey,
    component: Option<String>,
    max_age: Option<Duration>,
    max_rto: Option<Duration>,
    snapshots: Vec<(Id, Snapshot)>,
    sizes: [Option<u64>; 2],
}

/// Split the selected snapshots among objectives (first match) and the rest, then group each.
fn build_groups(all: Vec<(Id, Snapshot)>, opts: &StatusOptions) -> Vec<Bucket> {
    let mut per_objective: Vec<Vec<(Id, Snapshot)>> = vec![Vec::new(); opts.objectives.len()];
    let mut rest = Vec::new();
    for (id, s) in all.into_iter().filter(|(_, s)| opts.filter.matches(s)) {
        match opts.objectives.iter().position(|o| o.filter.matches(&s)) {
            Some(i) => per_objective[i].push((id, s)),
            None => rest.push((id, s)),
        }
    }
    let mut out = Vec::new();
    for (o, snaps) in opts.objectives.iter().zip(per_objective) {
        let max_age = o.max_age.or(opts.default_max_age);
        if snaps.is_empty() {
            out.push(bucket(GroupKey::default(), Some(o.name.clone()), max_age, o.max_rto, vec![]));
        }
        for (key, s) in group::group(snaps, opts.group_by) {
            out.push(bucket(key, Some(o.name.clone()), max_age, o.max_rto, s));
        }
    }
    if !opts.only_objectives {
        for (key, s) in group::group(rest, opts.group_by) {
            let component = s.iter().max_by_key(|(_, s)| s.time).and_then(|(_, s)| component_of(s));
            out.push(bucket(key, component, opts.default_max_age, None, s));
        }
    }
    out
}

fn bucket(
    key: GroupKey,
    component: Option<String>,
    max_age: Option<Duration>,
    max_rto: Option<Duration>,
    mut s: Vec<(Id, Snapshot)>,
) -> Bucket {
    s.sort_by_key(|(id, s)| (s.time, *id));
    Bucket { key, component, max_age, max_rto, snapshots: s, sizes: [None; 2] }
}

fn component_of(s: &Snapshot) -> Option<String> {
    s.tags.iter().find_map(|t| t.strip_prefix(COMPONENT_TAG)).map(String::from)
}

/// Sizes of the newest two snapshots of every group, their trees read once in all.
fn fill_sizes(repo: &Repository, index: Option<&crate::repo::index::Index>, groups: &mut [Bucket]) {
    let Some(index) = index else { return };
    let roots: Vec<Id> = groups.iter().flat_map(|g| g.snapshots.iter().rev().take(2).map(|(_, s)| s.tree)).collect();
    let mut sizes = crate::repo::walk::content_sizes(repo, index, &roots).into_iter();
    for g in groups.iter_mut() {
        for slot in g.sizes.iter_mut().take(g.snapshots.len().min(2)) {
            *slot = sizes.next().flatten();
        }
    }
}

/// Age, objective and sizes of one group (the journal comes later).
fn judge(g: &Bucket, opts: &StatusOptions) -> GroupStatus {
    let info = |i: usize| {
        let (id, s) = &g.snapshots[g.snapshots.len() - 1 - i];
        SnapshotInfo { id: *id, time_ns: s.time, size: g.sizes[i], stream: is_stream(s) }
    };
    let newest = (!g.snapshots.is_empty()).then(|| info(0));
    let previous = (g.snapshots.len() >= 2).then(|| info(1));
    let age_ns = newest.as_ref().map(|n| u64::try_from(opts.now.saturating_sub(n.time_ns)).unwrap_or(0));
    let max_age_ns = g.max_age.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let objective_met = max_age_ns.map(|m| age_ns.is_some_and(|a| a <= m));
    let (size_change, anomaly) = compare(newest.as_ref(), previous.as_ref(), opts.shrink_percent);
    GroupStatus {
        key: g.key.clone(),
        component: g.component.clone(),
        snapshots: g.snapshots.len(),
        newest,
        previous,
        age_ns,
        max_age_ns,
        objective_met,
        max_rto_ns: None,
        rto_met: None,
        size_change,
        anomaly,
        newest_verified: false,
        last_check: None,
        last_drill: None,
        last_failure: None,
        damage: None,
    }
}

/// Size change and anomaly of the newest snapshot against the previous one.
fn compare(
    newest: Option<&SnapshotInfo>,
    previous: Option<&SnapshotInfo>,
    shrink_percent: u8,
) -> (Option<i64>, Option<Anomaly>) {
    let Some(n) = newest else { return (None, None) };
    if n.stream && n.size == Some(0) {
        let change = previous.and_then(|p| p.size).map(|p| -(i64::try_from(p).unwrap_or(i64::MAX)));
        return (change, Some(Anomaly::EmptyStream));
    }
    let (Some(to), Some(from)) = (n.size, previous.and_then(|p| p.size)) else { return (None, None) };
    let change = i128::from(to) - i128::from(from);
    let change = i64::try_from(change).unwrap_or(if change < 0 { i64::MIN } else { i64::MAX });
    // Shrank by more than p%: to < from × (100 − p) / 100, in integers.
    let shrank = u128::from(to) * 100 < u128::from(from) * u128::from(100 - shrink_percent.min(100));
    let anomaly = (shrink_percent < 100 && shrank).then(|| Anomaly::Shrank {
        from,
        to,
        percent: u8::try_from((u128::from(from - to.min(from)) * 100) / u128::from(from)).unwrap_or(100),
    });
    (Some(change), anomaly)
}

/// How much of the data a check read, ordered: `none` < a subset < `all` (format-spec 21.6).
fn read_rank(r: &Record) -> u8 {
    match r.label("read_data") {
        Some("all") => 2,
        Some("none") | None => 0,
        Some(_) => 1,
    }
}

/// Whether a record reports damage (format-spec 21.6): outcome `damage`, except a `verify`
/// written before outcome `differs` existed, which recorded a difference as damage with exit
/// code 5.
fn is_damage(r: &Record) -> bool {
    r.outcome == Recorded::Damage && !(r.op == Op::Verify && r.exit_code == 5)
}

/// Whether a drill's damage is only its `verify-command` failing (the bytes matched).
fn only_command_failed(r: &Record) -> bool {
    r.op == Op::Drill && r.label("verify_command") == Some("failed") && r.metric("problems") == Some(0)
}

/// One pass over the journal (oldest first): the repository's last check and unresolved check
/// damage, each group's last drill, whether its newest snapshot is verified, its last
/// unresolved backup failure and damage. Returns the last check and the repository's damage.
fn apply_journal(
    out: &mut [GroupStatus],
    groups: &[Bucket],
    records: &[Record],
    by: GroupBy,
    lineage: &Lineage,
) -> (Option<CheckInfo>, Option<(FailureInfo, Option<u64>)>) {
    let mut of_snapshot: HashMap<Id, usize> = HashMap::new();
    let mut of_key: HashMap<GroupKey, Vec<usize>> = HashMap::new();
    for (i, g) in groups.iter().enumerate() {
        of_snapshot.extend(g.snapshots.iter().map(|(id, _)| (lineage.root(*id), i)));
        if !g.snapshots.is_empty() {
            of_key.entry(g.key.clone()).or_default().push(i);
        }
    }
    let mut of_component: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, g) in out.iter().enumerate() {
        if let Some(c) = &g.component {
            of_component.entry(c.clone()).or_default().push(i);
        }
    }
    let mut last_check: Option<&Record> = None;
    let mut check_damage: Option<&Record> = None;
    let mut verified: HashSet<Id> = HashSet::new();
    for r in records {
        match r.op {
            Op::Check if r.outcome == Recorded::Ok => {
                last_check = Some(r);
                if check_damage.is_some_and(|d| read_rank(r) >= read_rank(d)) {
                    check_damage = None;
                }
            }
            Op::Check if is_damage(r) => check_damage = Some(r),
            _ => {}
        }
        let verifies = super::journal::is_verification(r);
        if verifies {
            verified.extend(r.snapshots.iter().map(|id| lineage.root(*id)));
        }
        let mut targets: Vec<(usize, Option<Id>)> =
            r.snapshots.iter().filter_map(|id| of_snapshot.get(&lineage.root(*id)).map(|&g| (g, Some(*id)))).collect();
        if r.op == Op::Backup {
            targets.extend(backup_groups(r, by, out, &of_key, &of_component).into_iter().map(|g| (g, None)));
        }
        targets.sort_unstable();
        targets.dedup_by_key(|t| t.0);
        for (g, snapshot) in targets {
            note(&mut out[g], r, snapshot, lineage);
        }
    }
    let check = last_check.map(|r| CheckInfo {
        time_ns: r.time,
        read_data: r.label("read_data").map(String::from),
        read_all_data: super::journal::is_full_verification(r),
    });
    for g in out.iter_mut() {
        g.last_check = check.clone();
        if let Some(n) = &g.newest {
            g.newest_verified = verified.contains(&lineage.root(n.id));
            // A backup failure before the newest snapshot is resolved by it.
            if g.last_failure.as_ref().is_some_and(|f| f.time_ns < n.time_ns) {
                g.last_failure = None;
            }
        }
    }
    (check, check_damage.map(|r| (FailureInfo::of(r, None), repairable_only(r))))
}

/// Whether the snapshot file `name`, unreadable with `e`, is damage its parity file rebuilds.
fn rebuilt_by_parity(repo: &Repository, name: &str, e: &Error) -> bool {
    use crate::repo::parity::Assessment;
    let Some(id) = Id::from_hex(name) else { return false };
    e.is_integrity()
        && matches!(repo.assess(crate::format::header::FileKind::Snapshot, &id), Ok(Assessment::Repairable { .. }))
}

/// For a check record that found damage: the number of damaged files, when `arca repair packs`
/// rebuilds all of it (format-spec 21.6: metric `repairable` above 0, `unrepairable` 0).
fn repairable_only(r: &Record) -> Option<u64> {
    let n = r.metric("repairable").filter(|n| *n > 0)?;
    (r.metric("unrepairable") == Some(0)).then_some(n)
}

/// The groups a backup record is about: a profile's backup names its component (which may have
/// no snapshot yet), another is found by the host, paths and tags its labels give.
fn backup_groups(
    r: &Record,
    by: GroupBy,
    out: &[GroupStatus],
    of_key: &HashMap<GroupKey, Vec<usize>>,
    of_component: &HashMap<String, Vec<usize>>,
) -> Vec<usize> {
    if let Some(c) = r.label("component") {
        let same_host = |i: &&usize| out[**i].key.host.as_ref().is_none_or(|h| *h == r.hostname);
        return of_component.get(c).into_iter().flatten().filter(same_host).copied().collect();
    }
    backup_key(r, by).and_then(|k| of_key.get(&k)).cloned().unwrap_or_default()
}

/// Record `r`, which concerns group `g` (and its `snapshot`, when the record names one), in its
/// status, by the rules of format-spec 21.6.
fn note(g: &mut GroupStatus, r: &Record, snapshot: Option<Id>, lineage: &Lineage) {
    let same = |a: Option<Id>, b: Option<Id>| match (a, b) {
        (Some(a), Some(b)) => lineage.root(a) == lineage.root(b),
        _ => false,
    };
    match r.op {
        // Any backup that did not save its snapshot fails the group, refused ones too: a
        // scheduled backup whose path vanished or whose options are wrong saved nothing.
        Op::Backup => match r.outcome {
            Recorded::Ok | Recorded::Partial => g.last_failure = None,
            _ => g.last_failure = Some(FailureInfo::of(r, None)),
        },
        // A check's damage is the repository's (see `apply_journal`); a full check that
        // passed clears damage found in a snapshot it read.
        Op::Check => {
            let covers = |d: &FailureInfo| r.snapshots.iter().any(|id| same(Some(*id), d.snapshot));
            if super::journal::is_full_verification(r)
                && g.damage.as_ref().is_some_and(|d| !d.verify_command && covers(d))
            {
                g.damage = None;
            }
        }
        Op::Drill if r.outcome == Recorded::Ok || r.outcome == Recorded::Missed => {
            let whole = super::journal::is_whole_drill(r);
            // A dump that did not load is cleared by any later drill of the group that passes.
            let clears = g.damage.as_ref().is_some_and(|d| d.verify_command || (whole && same(d.snapshot, snapshot)));
            if clears {
                g.damage = None;
            }
            g.last_drill = Some(DrillInfo {
                time_ns: r.time,
                snapshot,
                rto_ns: r.metric("rto_ns"),
                rto_full_ns: r.metric("rto_full_ns"),
                sample: r.label("sample").map(String::from),
                path: r.label("path").map(String::from),
            });
        }
        _ if is_damage(r) => {
            let verify_command = only_command_failed(r);
            g.damage = Some(FailureInfo { verify_command, ..FailureInfo::of(r, snapshot) });
        }
        _ => {}
    }
}

/// The group key a backup record's labels describe (`paths` newline-separated, `tags`
/// comma-separated, host the record's), under grouping `by`; `None` when the grouping needs paths
/// and the record has none.
fn backup_key(r: &Record, by: GroupBy) -> Option<GroupKey> {
    let paths = match by.paths {
        true => {
            let mut p: Vec<Vec<u8>> = r.label("paths")?.split('\n').map(|p| p.as_bytes().to_vec()).collect();
            p.sort();
            Some(p)
        }
        false => None,
    };
    let tags = by.tags.then(|| {
        let mut t: Vec<String> =
            r.label("tags").unwrap_or("").split(',').filter(|t| !t.is_empty()).map(String::from).collect();
        t.sort();
        t.dedup();
        t
    });
    Some(GroupKey { host: by.host.then(|| r.hostname.clone()), paths, tags })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(size: u64, stream: bool) -> SnapshotInfo {
        SnapshotInfo { id: Id([0; 32]), time_ns: 0, size: Some(size), stream }
    }

    #[test]
    fn shrinking_by_more_than_the_threshold_is_an_anomaly() {
        let (c, a) = compare(Some(&info(49, false)), Some(&info(100, false)), 50);
        assert_eq!(c, Some(-51));
        assert_eq!(a, Some(Anomaly::Shrank { from: 100, to: 49, percent: 51 }));
        assert_eq!(compare(Some(&info(50, false)), Some(&info(100, false)), 50).1, None);
        assert_eq!(compare(Some(&info(200, false)), Some(&info(100, false)), 50), (Some(100), None));
        assert_eq!(compare(Some(&info(0, false)), Some(&info(100, false)), 100).1, None);
        assert_eq!(compare(Some(&info(0, true)), None, 50).1, Some(Anomaly::EmptyStream));
        assert_eq!(compare(Some(&info(0, false)), None, 50), (None, None));
    }

    #[test]
    fn percentages_parse_within_range() {
        assert_eq!(parse_percent("50%"), Ok(50));
        assert_eq!(parse_percent("100"), Ok(100));
        assert!(parse_percent("0%").is_err());
        assert!(parse_percent("101%").is_err());
        assert!(parse_percent("half").is_err());
    }
}
