//! Status against recovery objectives: for each backup group, its newest snapshot and age
//! against a maximum age (the recovery point objective), the size change from the previous
//! snapshot with an anomaly flag, and what the operations journal says about it (last check,
//! last drill and its measured RTO, last failure).
//!
//! The cost is bounded for monitoring that runs every few minutes: snapshot files and journal
//! files are read in parallel (and both at once), and only the newest two snapshots of each group
//! have their trees read, each distinct tree once ([`crate::repo::walk::content_sizes`]). The
//! journal is scanned once, with records matched to groups through hash maps, so 10 000
//! snapshots and 10 000 records take well under a second.
//!
//! Objectives are per group: an [`Objective`] (from a profile's component, or the command line)
//! selects snapshots with a filter and gives them a maximum age; snapshots no objective selects
//! fall back to [`StatusOptions::default_max_age`]. An objective that selects no snapshot at all
//! is reported as a group without a snapshot, and missed.
//!
//! A profile's components become objectives one to one ([`for_components`]): grouped by host
//! only, as `forget --profile` does, so an edited path list does not start a second history, and
//! without snapshots of no component.

use crate::error::{Error, Result};
use crate::format::journal::{Op, Outcome, Record};
use crate::format::snapshot::Snapshot;
use crate::id::Id;
use crate::lifecycle::group::{self, GroupBy, GroupKey};
use crate::repo::select::SnapshotFilter;
use crate::repo::Repository;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

/// Tag prefix naming a snapshot's component (`component=db`), as profiles tag them.
pub const COMPONENT_TAG: &str = "component=";

/// A recovery point objective for some snapshots.
#[derive(Clone, Debug, Default)]
pub struct Objective {
    /// The component's name (shown, and the `component` label in Prometheus output).
    pub name: String,
    /// Which snapshots it covers (for a component: tagged `component=NAME`).
    pub filter: SnapshotFilter,
    /// How old the newest of them may be; `None` takes the default.
    pub max_age: Option<Duration>,
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

/// The newest successful drill of a snapshot of the group.
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

/// The newest failed operation of the group, when no success of the same operation followed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailureInfo {
    /// When it started, Unix nanoseconds.
    pub time_ns: i64,
    /// The operation (`backup`, `drill`, ...).
    pub op: String,
    /// Its outcome (`failed` or `damage`).
    pub outcome: String,
    /// Its exit code.
    pub exit_code: u8,
    /// Its first error, if recorded.
    pub error: Option<String>,
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
    /// The objective: maximum age, nanoseconds.
    pub max_age_ns: Option<u64>,
    /// Whether the objective is met; `None` without an objective.
    pub objective_met: Option<bool>,
    /// Newest size minus previous size, bytes.
    pub size_change: Option<i64>,
    /// A size that looks wrong.
    pub anomaly: Option<Anomaly>,
    /// Whether the newest snapshot is verified: a whole-snapshot drill of it, or a full
    /// `check --read-data` after it was written.
    pub newest_verified: bool,
    /// The repository's newest successful check.
    pub last_check: Option<CheckInfo>,
    /// The newest successful drill of a snapshot of this group.
    pub last_drill: Option<DrillInfo>,
    /// The newest failure of an operation on this group that no success has followed.
    pub last_failure: Option<FailureInfo>,
}

impl GroupStatus {
    /// Objective met (or none), no anomaly, and no unresolved failure.
    pub fn ok(&self) -> bool {
        self.objective_met != Some(false) && self.anomaly.is_none() && self.last_failure.is_none()
    }

    /// The unresolved failure found damage or a mismatch (a drill or check that exited 4 or 5).
    pub fn failure_is_damage(&self) -> bool {
        self.last_failure.as_ref().is_some_and(|f| f.outcome == Outcome::Damage.name())
    }
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
    /// Snapshot files that could not be read.
    pub damaged_snapshots: Vec<(String, Error)>,
    /// Journal files that could not be read (or the journal could not be listed: name `journal/`).
    pub damaged_journal: Vec<(String, Error)>,
}

impl Status {
    /// Some group misses its objective.
    pub fn objective_missed(&self) -> bool {
        self.groups.iter().any(|g| g.objective_met == Some(false))
    }

    /// Some group has a size anomaly.
    pub fn anomaly(&self) -> bool {
        self.groups.iter().any(|g| g.anomaly.is_some())
    }

    /// Some snapshot or journal file could not be read.
    pub fn damaged(&self) -> bool {
        !self.damaged_snapshots.is_empty()
            || !self.damaged_journal.is_empty()
            || self.groups.iter().any(GroupStatus::failure_is_damage)
    }

    /// Some group's last backup, drill or other operation failed and nothing has succeeded since.
    pub fn failed(&self) -> bool {
        self.groups.iter().any(|g| g.last_failure.is_some())
    }
}

/// `base` turned to a profile's components: one objective per component (its `max-age`, else
/// `base.default_max_age`), grouped by host only, other snapshots left out.
pub fn for_components(targets: &[crate::ops::profile::Target], base: StatusOptions) -> StatusOptions {
    StatusOptions {
        objectives: targets
            .iter()
            .map(|t| Objective { name: t.name.clone(), filter: t.filter.clone(), max_age: t.max_age })
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
    let (listing, (journal, index)) = rayon::join(
        || repo.list_snapshots_and_damage(),
        || rayon::join(|| crate::repo::journal::load(repo), || repo.load_index()),
    );
    let (all, mut damaged_snapshots) = listing?;
    let (records, damaged_journal) = match journal {
        Ok(j) => (j.records, j.damaged),
        Err(e) => (Vec::new(), vec![("journal/".to_string(), e)]),
    };
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
    apply_journal(&mut out, &groups, &records, opts.group_by);
    Ok(Status { now: opts.now, group_by: opts.group_by, groups: out, damaged_snapshots, damaged_journal })
}

/// A group while it is being judged: its snapshots oldest first, sizes of the newest two.
struct Bucket {
    key: GroupKey,
    component: Option<String>,
    max_age: Option<Duration>,
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
            out.push(Bucket {
                key: GroupKey::default(),
                component: Some(o.name.clone()),
                max_age,
                snapshots: vec![],
                sizes: [None; 2],
            });
        }
        for (key, s) in group::group(snaps, opts.group_by) {
            out.push(bucket(key, Some(o.name.clone()), max_age, s));
        }
    }
    if !opts.only_objectives {
        for (key, s) in group::group(rest, opts.group_by) {
            let component = s.iter().max_by_key(|(_, s)| s.time).and_then(|(_, s)| component_of(s));
            out.push(bucket(key, component, opts.default_max_age, s));
        }
    }
    out
}

fn bucket(key: GroupKey, component: Option<String>, max_age: Option<Duration>, mut s: Vec<(Id, Snapshot)>) -> Bucket {
    s.sort_by_key(|(id, s)| (s.time, *id));
    Bucket { key, component, max_age, snapshots: s, sizes: [None; 2] }
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
        size_change,
        anomaly,
        newest_verified: false,
        last_check: None,
        last_drill: None,
        last_failure: None,
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

/// One pass over the journal (oldest first): the repository's last check, each group's last
/// drill, whether its newest snapshot is verified, and its last unresolved failure.
fn apply_journal(out: &mut [GroupStatus], groups: &[Bucket], records: &[Record], by: GroupBy) {
    let mut of_snapshot: HashMap<Id, usize> = HashMap::new();
    let mut of_key: HashMap<GroupKey, Vec<usize>> = HashMap::new();
    for (i, g) in groups.iter().enumerate() {
        of_snapshot.extend(g.snapshots.iter().map(|(id, _)| (*id, i)));
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
    let mut fully_checked: std::collections::HashSet<Id> = std::collections::HashSet::new();
    let mut drilled_whole: HashMap<Id, ()> = HashMap::new();
    for r in records {
        if r.op == Op::Check && r.outcome == Outcome::Ok {
            last_check = Some(r);
            if crate::ops::journal::is_full_verification(r) {
                fully_checked.extend(r.snapshots.iter().copied());
            }
        }
        let mut targets: Vec<usize> = r.snapshots.iter().filter_map(|id| of_snapshot.get(id).copied()).collect();
        if r.op == Op::Backup {
            targets.extend(backup_groups(r, by, out, &of_key, &of_component));
        }
        targets.sort_unstable();
        targets.dedup();
        for &i in &targets {
            note(&mut out[i], r, &mut drilled_whole);
        }
    }
    let check = last_check.map(|r| CheckInfo {
        time_ns: r.time,
        read_data: r.label("read_data").map(String::from),
        read_all_data: crate::ops::journal::is_full_verification(r),
    });
    for g in out.iter_mut() {
        g.last_check = check.clone();
        if let Some(n) = &g.newest {
            g.newest_verified = drilled_whole.contains_key(&n.id) || fully_checked.contains(&n.id);
            // A backup failure before the newest snapshot is resolved by it.
            if g.last_failure.as_ref().is_some_and(|f| f.op == Op::Backup.name() && f.time_ns < n.time_ns) {
                g.last_failure = None;
            }
        }
    }
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

/// Record `r`, which concerns group `g`, in its status.
fn note(g: &mut GroupStatus, r: &Record, drilled_whole: &mut HashMap<Id, ()>) {
    let failed = matches!(r.outcome, Outcome::Failed | Outcome::Damage);
    if failed {
        g.last_failure = Some(FailureInfo {
            time_ns: r.time,
            op: r.op.name(),
            outcome: r.outcome.name(),
            exit_code: r.exit_code,
            error: r.errors.first().cloned(),
        });
        return;
    }
    if r.outcome != Outcome::Ok {
        return;
    }
    if g.last_failure.as_ref().is_some_and(|f| f.op == r.op.name()) {
        g.last_failure = None;
    }
    if r.op == Op::Drill {
        if crate::ops::journal::is_whole_drill(r) {
            drilled_whole.extend(r.snapshots.iter().map(|id| (*id, ())));
        }
        g.last_drill = Some(DrillInfo {
            time_ns: r.time,
            snapshot: r.snapshots.first().copied(),
            rto_ns: r.metric("rto_ns"),
            rto_full_ns: r.metric("rto_full_ns"),
            sample: r.label("sample").map(String::from),
            path: r.label("path").map(String::from),
        });
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
