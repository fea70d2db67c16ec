//! Journal records as operations make them, and the questions asked of the journal
//! (format-spec/21-journal.md). Storage (append, load, compact) is [`crate::repo::journal`].

pub use crate::format::journal::{Op, Outcome, Record};
pub use crate::repo::journal::{append, compact, load, Appender, Compaction, Journal};

use crate::id::Id;

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

/// The outcome the CLI's exit code stands for: 0 ok, 3 partial, 4 and 5 damage or mismatch,
/// anything else failed.
pub fn outcome_of_exit(code: u8) -> Outcome {
    match code {
        0 => Outcome::Ok,
        3 => Outcome::Partial,
        4 | 5 => Outcome::Damage,
        _ => Outcome::Failed,
    }
}

/// Set the duration (from `time` to now), exit code and outcome.
pub fn finish(r: &mut Record, exit_code: u8) {
    r.duration = u64::try_from(crate::sys::now_nanos().saturating_sub(r.time)).unwrap_or(0);
    r.exit_code = exit_code;
    r.outcome = outcome_of_exit(exit_code);
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

/// Whether a record is of a drill of whole snapshots (not a sample, not a path in them).
pub fn is_whole_drill(r: &Record) -> bool {
    r.op == Op::Drill && r.label("sample").is_none() && r.label("path").is_none_or(|p| p == "/")
}

/// Whether a record verified every byte of the repository: a successful check that read all
/// data (label `read_data` = `all`).
pub fn is_full_verification(r: &Record) -> bool {
    r.op == Op::Check && r.outcome == Outcome::Ok && r.label("read_data") == Some("all")
}

/// Of `snapshots`, those with a verification on record: a successful drill of that snapshot
/// (whole, not a sample or a path), or a successful full `check --read-data` whose record names
/// it (a check records every snapshot it checked). Times are not compared: a backup that
/// committed while a check ran, or a snapshot with an imported or copied time, is verified only
/// by a check or drill that actually read it.
pub fn verified(records: &[Record], snapshots: &[Id]) -> Vec<Id> {
    let mut seen = std::collections::HashSet::new();
    for r in records {
        if (r.outcome == Outcome::Ok && is_whole_drill(r)) || is_full_verification(r) {
            seen.extend(r.snapshots.iter().copied());
        }
    }
    snapshots.iter().filter(|id| seen.contains(id)).copied().collect()
}
