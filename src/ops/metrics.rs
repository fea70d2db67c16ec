//! The status as monitoring reads it: JSON, and Prometheus text exposition format 0.0.4 (for
//! node_exporter's textfile collector, or an HTTP endpoint).
//!
//! A Prometheus scrape that holds two samples with the same name and labels is rejected whole
//! — every alert goes quiet — so label sets are unique by construction: a group's labels are
//! its full key (host, paths, tags) and component, each list written with [`label_list`], an
//! injective encoding (bytes that are not UTF-8, commas and backslashes escaped), so paths
//! `/a,/b` and `/a` + `/b`, or two paths differing in one invalid byte, never meet.

use super::status::{Anomaly, GroupStatus, Status};
use crate::lifecycle::group::GroupKey;
use serde_json::{json, Value};
use std::fmt::Write;

/// What a group is, for a person: `component db` for a component, else its key.
pub fn group_name(g: &GroupStatus) -> String {
    let key = g.key.to_string();
    match (&g.component, g.key.is_everything()) {
        (Some(c), true) => format!("component {c}"),
        (Some(c), false) => format!("component {c}: {key}"),
        (None, _) => key,
    }
}

/// The one-word verdict of a group (the table's last column; `ok` when nothing is wrong).
pub fn verdict(g: &GroupStatus) -> String {
    match (&g.objective_met, &g.anomaly) {
        (Some(false), _) if g.newest.is_none() => "MISSED (no snapshot)".into(),
        (Some(false), _) => "MISSED".into(),
        _ if g.rto_met == Some(false) && g.last_drill.is_none() => "MISSED (no drill for max-rto)".into(),
        _ if g.rto_met == Some(false) => "MISSED (RTO)".into(),
        (_, Some(Anomaly::EmptyStream)) => "ANOMALY (empty stream)".into(),
        (_, Some(Anomaly::Shrank { percent, .. })) => format!("ANOMALY (shrank {percent}%)"),
        _ if g.damage.is_some() => "DAMAGE (see below)".into(),
        _ if g.last_failure.is_some() => "FAILING (see below)".into(),
        (Some(true), None) => "ok".into(),
        (None, None) => "ok (no objective)".into(),
    }
}

/// The status as JSON: every field of every group, with `ok`, `group` and `verdict`.
pub fn status_json(st: &Status) -> Value {
    let groups: Vec<Value> = st
        .groups
        .iter()
        .map(|g| {
            let mut v = serde_json::to_value(g).unwrap_or_default();
            v["ok"] = json!(g.ok());
            v["group"] = json!(group_name(g));
            v["verdict"] = json!(verdict(g));
            if let Some(n) = &g.newest {
                v["newest"]["short_id"] = json!(n.id.short());
                v["newest"]["time"] = json!(crate::localtime::format(n.time_ns));
            }
            v
        })
        .collect();
    let damaged = |list: &[(String, crate::Error)]| -> Vec<Value> {
        list.iter().map(|(n, e)| json!({"name": n, "error": e.to_string()})).collect()
    };
    json!({
        "now_ns": st.now,
        "group_by": st.group_by.to_string(),
        "groups": groups,
        "objective_missed": st.objective_missed(),
        "anomaly": st.anomaly(),
        "repository_damage": st.repository_damage,
        "repository_repairable": st.repository_repairable.as_ref().map(|(f, n)| json!({"found": f, "files": n})),
        "repairable_snapshots": st.repairable_snapshots,
        "repairable_files": st.repairable_files(),
        "last_check": st.last_check,
        "storage": st.storage,
        "damaged_snapshots": damaged(&st.damaged_snapshots),
        "damaged_journal": damaged(&st.damaged_journal),
        "outcome": st.outcome().name(),
        "exit_code": st.outcome().exit_code(),
    })
}

/// A Prometheus label value: backslash, double quote and newline escaped (format 0.0.4).
pub fn prom_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A list of byte strings as one label value, injectively: each item escaped with
/// [`crate::text::escape`] (which doubles backslashes and writes invalid bytes as `\xNN`), its
/// commas as `\x2c`, the items joined by commas.
pub fn label_list<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> String {
    let parts: Vec<String> = items.into_iter().map(|i| crate::text::escape(i).replace(',', "\\x2c")).collect();
    parts.join(",")
}

/// The labels of a group: host, paths, tags, component (empty when not grouped by it).
fn prom_labels(g: &GroupStatus) -> String {
    let GroupKey { host, paths, tags } = &g.key;
    let pairs = [
        ("host", host.clone().unwrap_or_default()),
        ("paths", label_list(paths.iter().flatten().map(Vec::as_slice))),
        ("tags", label_list(tags.iter().flatten().map(|t| t.as_bytes()))),
        ("component", g.component.clone().unwrap_or_default()),
    ];
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{}\"", prom_escape(v))).collect();
    inner.join(",")
}

/// One metric family: HELP, TYPE, then a sample per labelled value.
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn gauge(&mut self, name: &str, help: &str, samples: impl IntoIterator<Item = (String, f64)>) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, v) in samples {
            let _ = match labels.is_empty() {
                true => writeln!(self.out, "{name} {v}"),
                false => writeln!(self.out, "{name}{{{labels}}} {v}"),
            };
        }
    }
}

fn secs(ns: i64) -> f64 {
    ns as f64 / 1e9
}

/// The status in Prometheus text exposition format 0.0.4.
pub fn prometheus(st: &Status) -> String {
    let mut out = String::new();
    let mut f = Family { out: &mut out };
    let gs: Vec<(String, &GroupStatus)> = st.groups.iter().map(|g| (prom_labels(g), g)).collect();
    let per = |pick: &dyn Fn(&GroupStatus) -> Option<f64>| -> Vec<(String, f64)> {
        gs.iter().filter_map(|(l, g)| pick(g).map(|v| (l.clone(), v))).collect()
    };
    let b = |x: bool| if x { 1.0 } else { 0.0 };
    let ns = |n: u64| n as f64 / 1e9;
    f.gauge(
        "arca_snapshot_newest_timestamp_seconds",
        "Time of the newest snapshot of the group, Unix seconds.",
        per(&|g| g.newest.as_ref().map(|n| secs(n.time_ns))),
    );
    f.gauge("arca_snapshot_age_seconds", "Age of the newest snapshot of the group.", per(&|g| g.age_ns.map(ns)));
    f.gauge(
        "arca_rpo_objective_seconds",
        "Maximum age allowed for the newest snapshot (recovery point objective).",
        per(&|g| g.max_age_ns.map(ns)),
    );
    f.gauge(
        "arca_rpo_met",
        "1 if the group's newest snapshot is within its objective.",
        per(&|g| g.objective_met.map(b)),
    );
    f.gauge(
        "arca_rto_objective_seconds",
        "Longest a full restore of the group may take (recovery time objective).",
        per(&|g| g.max_rto_ns.map(ns)),
    );
    f.gauge(
        "arca_rto_met",
        "1 if the last drill of the group restored within its recovery time objective (0 without a drill).",
        per(&|g| g.rto_met.map(b)),
    );
    f.gauge("arca_snapshots", "Number of snapshots in the group.", per(&|g| Some(g.snapshots as f64)));
    let mut sizes = Vec::new();
    for (l, g) in &gs {
        for (which, s) in [("newest", &g.newest), ("previous", &g.previous)] {
            if let Some(size) = s.as_ref().and_then(|s| s.size) {
                sizes.push((format!("{l},snapshot=\"{which}\""), size as f64));
            }
        }
    }
    f.gauge("arca_snapshot_size_bytes", "File content bytes of the newest and previous snapshot.", sizes);
    f.gauge(
        "arca_snapshot_size_anomaly",
        "1 if the newest snapshot shrank by more than the threshold or is an empty stream.",
        per(&|g| Some(b(g.anomaly.is_some()))),
    );
    f.gauge(
        "arca_snapshot_verified",
        "1 if the newest snapshot was drilled whole or fully read by a check since it was written.",
        per(&|g| g.newest.as_ref().map(|_| b(g.newest_verified))),
    );
    let check = st.last_check.as_ref();
    f.gauge(
        "arca_last_check_timestamp_seconds",
        "Time of the repository's last successful check, Unix seconds.",
        check.map(|c| (String::new(), secs(c.time_ns))),
    );
    f.gauge(
        "arca_last_check_read_all_data",
        "1 if the last successful check read all data.",
        check.map(|c| (String::new(), b(c.read_all_data))),
    );
    f.gauge(
        "arca_last_drill_timestamp_seconds",
        "Time of the last drill of a snapshot of the group that restored everything, Unix seconds.",
        per(&|g| g.last_drill.as_ref().map(|d| secs(d.time_ns))),
    );
    f.gauge(
        "arca_drill_rto_seconds",
        "Full-restore time measured (extrapolated) by the group's last drill.",
        per(&|g| g.last_drill.as_ref().and_then(|d| d.rto_full_ns).map(ns)),
    );
    f.gauge(
        "arca_last_failure_timestamp_seconds",
        "Time of the group's last failed backup not followed by a successful one, Unix seconds.",
        per(&|g| g.last_failure.as_ref().map(|x| secs(x.time_ns))),
    );
    f.gauge(
        "arca_damage",
        "1 if damage found in the group (or, without labels, by a check) has not been cleared.",
        per(&|g| Some(b(g.damage.is_some()))).into_iter().chain([(String::new(), b(st.repository_damage.is_some()))]),
    );
    f.gauge(
        "arca_repairable_files",
        "Damaged files a check found that `arca repair packs` rebuilds from parity, with nothing worse (0 when none): rot in parity files, or packs, index files and snapshots their parity restores.",
        [(String::new(), st.repairable_files() as f64)],
    );
    f.gauge(
        "arca_status_ok",
        "1 if the group meets its objectives, has no size anomaly, failure or damage.",
        per(&|g| Some(b(g.ok()))),
    );
    f.gauge(
        "arca_status_damaged_files",
        "Snapshot and journal files that could not be read.",
        [
            ("kind=\"snapshot\"".to_string(), st.damaged_snapshots.len() as f64),
            ("kind=\"journal\"".to_string(), st.damaged_journal.len() as f64),
        ],
    );
    let s = &st.storage;
    f.gauge(
        "arca_repository_size_bytes",
        "Bytes of every file of the repository.",
        s.repository_bytes.map(|v| (String::new(), v as f64)),
    );
    f.gauge(
        "arca_storage_free_bytes",
        "Bytes free where the repository lives (local filesystems).",
        s.free_bytes.map(|v| (String::new(), v as f64)),
    );
    f.gauge(
        "arca_storage_size_bytes",
        "Size of the filesystem the repository lives on.",
        s.total_bytes.map(|v| (String::new(), v as f64)),
    );
    f.gauge(
        "arca_storage_free_ok",
        "1 if the free space is above the threshold (min-free).",
        s.free_ok.map(|v| (String::new(), b(v))),
    );
    let exit = st.outcome().exit_code();
    f.gauge("arca_status_exit_code", "The exit code of arca status.", [(String::new(), f64::from(exit))]);
    f.gauge(
        "arca_status_timestamp_seconds",
        "When this status was computed, Unix seconds.",
        [(String::new(), secs(st.now))],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_escape_backslash_quote_newline() {
        assert_eq!(prom_escape("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }

    #[test]
    fn lists_are_encoded_injectively() {
        let l = |v: &[&[u8]]| label_list(v.iter().copied());
        assert_ne!(l(&[b"/a,/b"]), l(&[b"/a", b"/b"]));
        assert_ne!(l(&[b"/x\xff"]), l(&[b"/x\xfe"]));
        assert_ne!(l(&[b"/x\\x2c"]), l(&[b"/x,"]));
        assert_eq!(l(&[b"/srv", b"/etc"]), "/srv,/etc");
    }
}
