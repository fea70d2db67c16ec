//! `arca status`: one line per backup group against its recovery objectives, as a table, JSON
//! or Prometheus text (for node_exporter's textfile collector). Not journaled: it only reads.
//!
//! Exit codes (README "Exit codes"): 0 all objectives met and no anomaly; 6 an objective missed;
//! 4 a snapshot or journal file could not be read (the rest is still reported); 7 a size
//! anomaly. When several apply, the first in that order wins.

use super::journal::duration_str;
use super::output::{escape, escape_str};
use super::select::SelectArgs;
use super::{code, human, localtime, Global};
use anyhow::{Context, Result};
use arca::lifecycle::group::{GroupBy, GroupKey};
use arca::ops::status::{self, Anomaly, GroupStatus, Status, StatusOptions};
use serde_json::json;
use std::fmt::Write as _;
use std::path::PathBuf;

const ABOUT: &str = "\
Each group (--group-by, default host,paths,tags) shows its newest snapshot, its age against
--max-age, the sizes of the newest two snapshots (an anomaly when the newest shrank by more than
--shrink-threshold, or is an empty stream), the last successful check and drill from the
journal with the drill's measured RTO, and the last failure not followed by a success.

Exit codes: 0 every objective met, no anomaly; 6 an objective missed (a group older than
--max-age); 4 a snapshot or journal file cannot be read (the rest is reported); 7 a size
anomaly. The first that applies in that order wins.";

/// Options of `arca status`.
#[derive(clap::Args, Debug)]
#[command(after_help = ABOUT)]
pub struct StatusArgs {
    #[command(flatten)]
    select: SelectArgs,
    /// With --profile: one line per component of the profile, each against its `max-age`
    /// (--max-age gives the default), grouped by host.
    #[command(flatten)]
    profile: super::profile::ProfileArgs,
    /// Group snapshots by these fields: host, paths, tags (comma-separated), or none.
    #[arg(short = 'g', long, value_name = "FIELDS", default_value = "host,paths,tags")]
    group_by: GroupBy,
    /// Recovery point objective: the newest snapshot of each group may be at most this old
    /// (e.g. 1h, 26h, 7d).
    #[arg(long, value_name = "DURATION", value_parser = super::parse_duration)]
    max_age: Option<std::time::Duration>,
    /// Flag a snapshot that is smaller than the previous one by more than this (1%..100%;
    /// 100% turns the check off).
    #[arg(long, value_name = "PERCENT", default_value = "50%", value_parser = status::parse_percent)]
    shrink_threshold: u8,
    /// Print Prometheus text exposition format (0.0.4) instead of the table (or --json).
    #[arg(long)]
    prometheus: bool,
    /// Also write the Prometheus text to this file, atomically (for node_exporter's textfile
    /// collector: the file name must end in .prom).
    #[arg(long, value_name = "FILE")]
    prometheus_file: Option<PathBuf>,
}

/// Run `arca status`.
pub fn run(g: &Global, a: StatusArgs) -> Result<u8> {
    let mut opts = StatusOptions {
        group_by: a.group_by,
        filter: a.select.filter(),
        default_max_age: a.max_age,
        shrink_percent: a.shrink_threshold,
        ..StatusOptions::default()
    };
    let profile_context;
    let g = match a.profile.is_set() {
        true => {
            let (r, pg) = super::profile::resolve(g, &a.profile)?;
            opts = status::for_components(&r.targets, opts);
            profile_context = pg;
            &profile_context
        }
        false => g,
    };
    let repo = g.open()?;
    let st = status::status(&repo, &opts)?;
    super::warn_index_problems(&repo);
    for (name, e) in &st.damaged_snapshots {
        eprintln!("warning: snapshot {} cannot be read: {}", escape_str(name), escape_str(&e.to_string()));
    }
    for (name, e) in &st.damaged_journal {
        eprintln!("warning: journal file {} skipped: {}", escape_str(name), escape_str(&e.to_string()));
    }
    let exit = exit_code(&st);
    if let Some(path) = &a.prometheus_file {
        write_atomically(path, &prometheus(&st, exit))?;
    }
    if a.prometheus {
        print!("{}", prometheus(&st, exit));
    } else if g.json {
        g.print_json(&status_json(&st, exit))?;
    } else if !g.quiet {
        print_table(&st);
    }
    Ok(exit)
}

/// The exit code `st` stands for.
fn exit_code(st: &Status) -> u8 {
    if st.objective_missed() || st.failed() && !st.damaged() {
        code::OBJECTIVE_MISSED
    } else if st.damaged() {
        code::INTEGRITY
    } else if st.anomaly() {
        code::ANOMALY
    } else {
        code::OK
    }
}

/// What a group is, for a person: `db (host h)` for a component, else its key.
fn group_name(g: &GroupStatus) -> String {
    let key = g.key.to_string();
    match (&g.component, g.key.is_everything()) {
        (Some(c), true) => format!("component {c}"),
        (Some(c), false) => format!("component {c}: {key}"),
        (None, _) => key,
    }
}

fn verdict(g: &GroupStatus) -> String {
    match (&g.objective_met, &g.anomaly) {
        (Some(false), _) if g.newest.is_none() => "MISSED (no snapshot)".into(),
        (Some(false), _) => "MISSED".into(),
        (_, Some(Anomaly::EmptyStream)) => "ANOMALY (empty stream)".into(),
        (_, Some(Anomaly::Shrank { percent, .. })) => format!("ANOMALY (shrank {percent}%)"),
        _ if g.failure_is_damage() => "DAMAGE (see last failure)".into(),
        _ if g.last_failure.is_some() => "FAILING (see last failure)".into(),
        (Some(true), None) => "ok".into(),
        (None, None) => "ok (no objective)".into(),
    }
}

/// How long before `now` a time was: `3h05m ago`.
fn ago(now: i64, t: i64) -> String {
    duration_str(u64::try_from(now.saturating_sub(t)).unwrap_or(0))
}

fn print_table(st: &Status) {
    if st.groups.is_empty() {
        println!("no snapshots");
        return;
    }
    let header = ["snapshot", "age", "max-age", "count", "size", "change", "checked", "drilled", "RTO", "status"];
    let rows: Vec<Vec<String>> = st.groups.iter().map(|g| row(st.now, g)).collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let right = matches!(i, 1..=5 | 8);
            let _ = match right {
                true => write!(s, "{c:>w$}  ", w = widths[i]),
                false => write!(s, "{c:<w$}  ", w = widths[i]),
            };
        }
        s
    };
    println!("{}group", line(&header.map(String::from)));
    for (g, r) in st.groups.iter().zip(&rows) {
        println!("{}{}", line(r), escape_str(&group_name(g)));
        if let Some(f) = &g.last_failure {
            let err = f.error.as_deref().map(|e| format!(": {}", escape_str(e))).unwrap_or_default();
            println!("  last {} {} {} ago (exit {}){err}", f.op, f.outcome, ago(st.now, f.time_ns), f.exit_code);
        }
    }
    let check = st.groups.iter().find_map(|g| g.last_check.as_ref());
    match check {
        Some(c) => println!(
            "last check: {} ({} ago), read data: {}",
            localtime::format(c.time_ns),
            ago(st.now, c.time_ns),
            escape_str(c.read_data.as_deref().unwrap_or("none"))
        ),
        None => println!("last check: never"),
    }
}

fn row(now: i64, g: &GroupStatus) -> Vec<String> {
    let dash = || "-".to_string();
    let size = |s: Option<u64>| s.map_or_else(|| "?".into(), human);
    let change = match (g.size_change, g.previous.is_some()) {
        (Some(c), _) if c < 0 => format!("-{}", human(c.unsigned_abs())),
        (Some(c), _) => format!("+{}", human(c.unsigned_abs())),
        (None, true) => "?".into(),
        (None, false) => dash(),
    };
    vec![
        g.newest.as_ref().map_or_else(dash, |n| n.id.short()),
        g.age_ns.map_or_else(dash, duration_str),
        g.max_age_ns.map_or_else(dash, duration_str),
        g.snapshots.to_string(),
        g.newest.as_ref().map_or_else(dash, |n| size(n.size)),
        change,
        g.last_check.as_ref().map_or_else(dash, |c| ago(now, c.time_ns) + if c.read_all_data { " (data)" } else { "" }),
        g.last_drill.as_ref().map_or_else(dash, |d| ago(now, d.time_ns)),
        g.last_drill.as_ref().and_then(|d| d.rto_full_ns).map_or_else(dash, duration_str),
        verdict(g),
    ]
}

fn status_json(st: &Status, exit: u8) -> serde_json::Value {
    let groups: Vec<serde_json::Value> = st
        .groups
        .iter()
        .map(|g| {
            let mut v = serde_json::to_value(g).unwrap_or_default();
            v["ok"] = json!(g.ok());
            v["group"] = json!(group_name(g));
            if let Some(n) = &g.newest {
                v["newest"]["short_id"] = json!(n.id.short());
                v["newest"]["time"] = json!(localtime::format(n.time_ns));
            }
            v
        })
        .collect();
    let damaged = |list: &[(String, arca::Error)]| -> Vec<serde_json::Value> {
        list.iter().map(|(n, e)| json!({"name": n, "error": e.to_string()})).collect()
    };
    json!({
        "now_ns": st.now,
        "group_by": st.group_by.to_string(),
        "groups": groups,
        "objective_missed": st.objective_missed(),
        "anomaly": st.anomaly(),
        "damaged_snapshots": damaged(&st.damaged_snapshots),
        "damaged_journal": damaged(&st.damaged_journal),
        "exit_code": exit,
    })
}

/// A Prometheus label value: backslash, double quote and newline escaped (format 0.0.4).
pub fn prom_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The labels of a group: host, paths, tags, component (empty when not grouped by it).
fn prom_labels(g: &GroupStatus) -> String {
    let GroupKey { host, paths, tags } = &g.key;
    let paths: Vec<String> = paths.iter().flatten().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    let pairs = [
        ("host", host.clone().unwrap_or_default()),
        ("paths", paths.join(",")),
        ("tags", tags.as_ref().map(|t| t.join(",")).unwrap_or_default()),
        ("component", g.component.clone().unwrap_or_default()),
    ];
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{}\"", prom_escape(v))).collect();
    inner.join(",")
}

/// One metric family: HELP, TYPE, then a sample per group that has a value.
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
fn prometheus(st: &Status, exit: u8) -> String {
    let mut out = String::new();
    let mut f = Family { out: &mut out };
    let gs: Vec<(String, &GroupStatus)> = st.groups.iter().map(|g| (prom_labels(g), g)).collect();
    let per = |pick: &dyn Fn(&GroupStatus) -> Option<f64>| -> Vec<(String, f64)> {
        gs.iter().filter_map(|(l, g)| pick(g).map(|v| (l.clone(), v))).collect()
    };
    let b = |x: bool| if x { 1.0 } else { 0.0 };
    f.gauge(
        "arca_snapshot_newest_timestamp_seconds",
        "Time of the newest snapshot of the group, Unix seconds.",
        per(&|g| g.newest.as_ref().map(|n| secs(n.time_ns))),
    );
    f.gauge(
        "arca_snapshot_age_seconds",
        "Age of the newest snapshot of the group.",
        per(&|g| g.age_ns.map(|a| a as f64 / 1e9)),
    );
    f.gauge(
        "arca_rpo_objective_seconds",
        "Maximum age allowed for the newest snapshot (recovery point objective).",
        per(&|g| g.max_age_ns.map(|a| a as f64 / 1e9)),
    );
    f.gauge(
        "arca_rpo_met",
        "1 if the group's newest snapshot is within its objective.",
        per(&|g| g.objective_met.map(b)),
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
    let check = st.groups.iter().find_map(|g| g.last_check.as_ref());
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
        "Time of the last successful drill of a snapshot of the group, Unix seconds.",
        per(&|g| g.last_drill.as_ref().map(|d| secs(d.time_ns))),
    );
    f.gauge(
        "arca_drill_rto_seconds",
        "Full-restore time measured (extrapolated) by the group's last drill.",
        per(&|g| g.last_drill.as_ref().and_then(|d| d.rto_full_ns).map(|n| n as f64 / 1e9)),
    );
    f.gauge(
        "arca_last_failure_timestamp_seconds",
        "Time of the group's last failed operation not followed by a success, Unix seconds.",
        per(&|g| g.last_failure.as_ref().map(|x| secs(x.time_ns))),
    );
    f.gauge(
        "arca_status_ok",
        "1 if the group meets its objective, has no size anomaly and no unresolved failure.",
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
    f.gauge("arca_status_exit_code", "The exit code of arca status.", [(String::new(), f64::from(exit))]);
    f.gauge(
        "arca_status_timestamp_seconds",
        "When this status was computed, Unix seconds.",
        [(String::new(), secs(st.now))],
    );
    out
}

/// Write `text` to `path` through a temporary file in the same directory and a rename, so the
/// textfile collector never reads half a file; readable by others (node_exporter's user).
fn write_atomically(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let shown = escape(path.as_os_str().as_encoded_bytes());
    let name = path.file_name().with_context(|| format!("--prometheus-file {shown}: not a file name"))?;
    // Hidden and not ending in .prom, so the collector never reads it; the pid and time keep
    // concurrent runs apart, O_EXCL keeps them from sharing a file.
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.{}.tmp", std::process::id(), arca::sys::now_nanos()));
    let tmp = path.with_file_name(tmp_name);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {shown}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::prom_escape;

    #[test]
    fn label_values_escape_backslash_quote_newline() {
        assert_eq!(prom_escape("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }
}
