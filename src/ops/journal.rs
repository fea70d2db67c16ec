//! Journal records as operations make them, and the questions asked of the journal
//! (format-spec/21-journal.md). Storage (append, load, compact) is [`crate::repo::journal`].
//!
//! An operation records itself through a [`Recorder`]: started before the repository is
//! opened (so the time covers everything), attached once it is open, filled as the operation
//! learns things, and finished with the operation's [`Outcome`] — the same value the exit code
//! comes from. A failure to write the record is a warning: the journal never turns a good
//! backup into a failed one.

pub use crate::format::journal::{Op, Outcome, Record};
pub use crate::repo::journal::{append, compact, load, Appender, Compaction, Journal};

use crate::format::snapshot::Snapshot;
use crate::id::Id;
use crate::ops::outcome::Outcome as Result_;
use crate::repo::Repository;
use std::collections::{HashMap, HashSet};

/// A record for `op` starting now: fresh random ID, the local host and user.
pub fn start(op: Op) -> Record {
    Record {
        // A failing CSPRNG would already have stopped the command; time and pid keep IDs distinct.
        id: crate::crypto::random_array().unwrap_or_else(|_| fallback_id()),
        time: crate::sys::now_nanos(),
        duration: 0,
        op,
        outcome: Outcome::Ok,
        exit_code: 0,
        hostname: crate::sys::hostname(),
        username: crate::sys::username(),
        snapshots: Vec::new(),
        bytes: 0,
        files: 0,
        errors: Vec::new(),
        labels: Vec::new(),
        metrics: Vec::new(),
    }
}

fn fallback_id() -> [u8; 16] {
    let seed = format!("{} {}", crate::sys::now_nanos(), std::process::id());
    blake3::hash(seed.as_bytes()).as_bytes()[..16].try_into().expect("16 bytes")
}

/// Set the duration (from `time` to now), exit code and outcome.
pub fn finish(r: &mut Record, outcome: Result_) {
    r.duration = u64::try_from(crate::sys::now_nanos().saturating_sub(r.time)).unwrap_or(0);
    r.exit_code = outcome.exit_code();
    r.outcome = outcome.recorded();
}

/// Set a label, replacing an earlier one of the same key.
pub fn set_label(r: &mut Record, key: &str, value: impl Into<String>) {
    r.labels.retain(|(k, _)| k != key);
    r.labels.push((key.to_string(), value.into()));
}

/// Set a metric, replacing an earlier one of the same key.
pub fn set_metric(r: &mut Record, key: &str, value: u64) {
    r.metrics.retain(|(k, _)| k != key);
    r.metrics.push((key.to_string(), value));
}

/// One operation's record on its way to the journal.
pub struct Recorder {
    /// The record being filled (`None`: this run records nothing, e.g. a dry run).
    record: Option<Record>,
    /// Where it goes, once the repository is open.
    appender: Option<Appender>,
}

impl Recorder {
    /// A record of `op` starting now; `None` records nothing.
    pub fn start(op: Option<Op>) -> Recorder {
        Recorder { record: op.map(start), appender: None }
    }

    /// Write the record to `repo` (the first repository attached wins).
    pub fn attach(&mut self, repo: &Repository) {
        if self.record.is_some() && self.appender.is_none() {
            self.appender = Some(repo.journal_appender());
        }
    }

    /// Add to the record.
    pub fn fill(&mut self, f: impl FnOnce(&mut Record)) {
        if let Some(r) = self.record.as_mut() {
            f(r);
        }
    }

    /// Label the record with the profile and component it is about.
    pub fn component(&mut self, profile: &str, component: &str) {
        self.fill(|r| {
            set_label(r, "profile", profile);
            set_label(r, "component", component);
        });
    }

    /// Finish with `outcome` (and `error`'s text, for a failure) and write the record if a
    /// repository was attached. Returns the warning to show when writing failed.
    pub fn finish(self, outcome: Result_, error: Option<&crate::Error>) -> Option<String> {
        let (Some(mut r), Some(appender)) = (self.record, self.appender) else { return None };
        if let Some(e) = error {
            r.errors.push(e.to_string());
        }
        finish(&mut r, outcome);
        appender.append(&r).err().map(|e| format!("could not write the journal record of this {}: {e}", r.op.name()))
    }
}

/// Whether a record is of a drill of whole snapshots (not a sample, not a path in them).
pub fn is_whole_drill(r: &Record) -> bool {
    r.op == Op::Drill && r.label("sample").is_none() && r.label("path").is_none_or(|p| p == "/")
}

/// Whether a record verifies the snapshots it names: a whole drill that restored and matched
/// everything (outcome ok, or missed: only slower than its objective), or a full check.
pub fn is_verification(r: &Record) -> bool {
    (matches!(r.outcome, Outcome::Ok | Outcome::Missed) && is_whole_drill(r)) || is_full_verification(r)
}

/// Whether a record verified every byte of the repository: a successful check that read all
/// data (label `read_data` = `all`).
pub fn is_full_verification(r: &Record) -> bool {
    r.op == Op::Check && r.outcome == Outcome::Ok && r.label("read_data") == Some("all")
}

/// Snapshot IDs that name the same content: a snapshot and its `original` (a tag change
/// replaces a snapshot by one with the same tree, format-spec 11), and the pairs `tag` records
/// list (format-spec 21.2). Repaired snapshots (tagged `repaired`) lost content, so they are
/// not joined to what they were repaired from.
pub struct Lineage {
    parent: HashMap<Id, Id>,
}

impl Lineage {
    /// The lineage of `snapshots` (the repository's, as read now) and the journal's `records`.
    pub fn new(records: &[Record], snapshots: &[(Id, Snapshot)]) -> Lineage {
        let mut l = Lineage { parent: HashMap::new() };
        for r in records.iter().filter(|r| r.op == Op::Tag && r.outcome == Outcome::Ok) {
            for pair in r.snapshots.chunks_exact(2) {
                l.join(pair[0], pair[1]);
            }
        }
        let repaired = crate::lifecycle::repair::REPAIRED_TAG;
        for (id, s) in snapshots {
            if let (Some(o), false) = (s.original, s.tags.iter().any(|t| t == repaired)) {
                l.join(*id, o);
            }
        }
        l
    }

    /// The representative of `id`'s family.
    pub fn root(&self, mut id: Id) -> Id {
        // Paths are short (one link per tag change) and joined without cycles.
        for _ in 0..self.parent.len() + 1 {
            match self.parent.get(&id) {
                Some(p) => id = *p,
                None => break,
            }
        }
        id
    }

    fn join(&mut self, a: Id, b: Id) {
        let (ra, rb) = (self.root(a), self.root(b));
        if ra != rb {
            self.parent.insert(ra, rb);
        }
    }
}

/// Of `snapshots`, those with a verification on record (format-spec 21.6): a successful whole
/// drill, or a successful full `check --read-data` whose record names it — or names another
/// snapshot of the same content (see [`Lineage`]: a tag change keeps a snapshot verified).
/// Times are not compared: a backup that committed while a check ran, or a snapshot with an
/// imported or copied time, is verified only by a check or drill that actually read it.
pub fn verified(records: &[Record], snapshots: &[(Id, Snapshot)]) -> HashSet<Id> {
    let lineage = Lineage::new(records, snapshots);
    let mut roots = HashSet::new();
    for r in records.iter().filter(|r| is_verification(r)) {
        roots.extend(r.snapshots.iter().map(|id| lineage.root(*id)));
    }
    snapshots.iter().map(|(id, _)| *id).filter(|id| roots.contains(&lineage.root(*id))).collect()
}

/// Which records `journal` lists.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Only these operations (none: all).
    pub ops: Vec<Op>,
    /// Only records that did not succeed.
    pub failed: bool,
    /// Only records that started at or after this time (Unix ns).
    pub since: Option<i64>,
    /// Only records from this host.
    pub host: Option<String>,
    /// Only records naming a snapshot whose ID starts with this prefix.
    pub snapshot: Option<String>,
    /// Only the newest N (after filtering).
    pub last: Option<usize>,
    /// Merge the journal's files first (under the exclusive lock).
    pub compact: bool,
}

/// What `journal` found.
pub struct Listed {
    /// The records, oldest first.
    pub records: Vec<Record>,
    /// Journal files that could not be read.
    pub damaged: Vec<(String, crate::Error)>,
    /// What compaction did, when asked for.
    pub compaction: Option<Compaction>,
}

/// `journal`: the records `q` selects; with a profile, those of its selected components.
pub fn query(scope: &super::scope::Scope, q: &Query) -> crate::Result<Listed> {
    let repo = scope.ctx.open_for(crate::ops::context::READERS, "read the journal")?;
    let compaction = match q.compact {
        true => {
            let _lock = scope.ctx.lock(&repo, true)?;
            Some(compact(&repo)?)
        }
        false => None,
    };
    let j = load(&repo)?;
    let prefix = q.snapshot.as_deref().map(str::to_ascii_lowercase);
    let profile = scope.profile.as_ref().map(|p| p.name.as_str());
    let components: Vec<&str> = scope.targets.iter().map(|t| t.name.as_str()).collect();
    let mut records: Vec<Record> = j
        .records
        .into_iter()
        .filter(|r| q.ops.is_empty() || q.ops.contains(&r.op))
        .filter(|r| !q.failed || r.outcome != Outcome::Ok)
        .filter(|r| q.since.is_none_or(|t| r.time >= t))
        .filter(|r| q.host.as_deref().is_none_or(|h| r.hostname == h))
        .filter(|r| prefix.as_deref().is_none_or(|p| r.snapshots.iter().any(|s| s.to_hex().starts_with(p))))
        .filter(|r| profile.is_none_or(|p| r.label("profile") == Some(p)))
        .filter(|r| profile.is_none() || r.label("component").is_some_and(|c| components.contains(&c)))
        .collect();
    if let Some(n) = q.last {
        records.drain(..records.len().saturating_sub(n));
    }
    Ok(Listed { records, damaged: j.damaged, compaction })
}
