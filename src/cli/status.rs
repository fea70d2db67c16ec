//! `arca status`: one line per backup group against its recovery objectives, as a table, JSON
//! or Prometheus text (for node_exporter's textfile collector); and the alert path. Not
//! journaled: it only reads. Its exit code is [`arca::ops::status::Status::outcome`]'s.

use super::output::escape_str;
use super::select::SelectArgs;
use super::{duration_str, human, Global};
use anyhow::Result;
use arca::lifecycle::group::GroupBy;
use arca::localtime;
use arca::ops::alert::{self, AlertRequest};
use arca::ops::metrics::{self, group_name, verdict};
use arca::ops::profile::FreeSpace;
use arca::ops::status::{self, GroupStatus, Status, StatusOptions};
use std::fmt::Write as _;
use std::path::PathBuf;

const ABOUT: &str = "\
Each group (--group-by, default host,paths,tags; with --profile one per component, by host)
shows its newest snapshot, its age against --max-age (the recovery point objective), the sizes
of the newest two snapshots (an anomaly when the newest shrank by more than --shrink-threshold,
or is an empty stream), the last check and drill from the journal with the drill's RTO against
the component's max-rto, a backup that failed with none succeeding since, and damage no check
or drill has cleared (format-spec 21.6).

Exit codes: 6 an objective missed (RPO, RTO, free space) or a group failing; 4 damage, or a
snapshot or journal file that cannot be read (the rest is reported); 7 a size anomaly; 0
otherwise. The first that applies in that order wins.";

/// Options of `arca status`.
#[derive(clap::Args, Debug)]
#[command(after_help = ABOUT)]
pub struct StatusArgs {
    #[command(flatten)]
    select: SelectArgs,
    /// Group snapshots by these fields: host, paths, tags (comma-separated), or none.
    #[arg(short = 'g', long, value_name = "FIELDS", default_value = "host,paths,tags")]
    group_by: GroupBy,
    /// Recovery point objective: the newest snapshot of each group may be at most this old
    /// (e.g. 1h, 26h, 7d; with --profile, for components without a max-age).
    #[arg(long, value_name = "DURATION", value_parser = super::parse_duration)]
    max_age: Option<std::time::Duration>,
    /// Flag a snapshot that is smaller than the previous one by more than this (1%..100%;
    /// 100% turns the check off).
    #[arg(long, value_name = "PERCENT", default_value = "50%", value_parser = status::parse_percent)]
    shrink_threshold: u8,
    /// The storage must keep at least this free (a size such as 20G, or a percentage of the
    /// filesystem such as 10%); default: the profile's min-free.
    #[arg(long, value_name = "SIZE|P%")]
    min_free: Option<FreeSpace>,
    /// Print Prometheus text exposition format (0.0.4) instead of the table (or --json).
    #[arg(long)]
    prometheus: bool,
    /// Also write the Prometheus text to this file, atomically (for node_exporter's textfile
    /// collector: the file name must end in .prom).
    #[arg(long, value_name = "FILE")]
    prometheus_file: Option<PathBuf>,
    /// With --profile: when something is wrong (or --failed-unit is given), run the profile's
    /// alert command with the status as JSON on its standard input.
    #[arg(long, requires = "profile")]
    alert: bool,
    /// With --alert: the systemd unit that failed (the generated OnFailure= template gives it).
    #[arg(long, value_name = "UNIT", requires = "alert")]
    failed_unit: Option<String>,
    /// With --profile: fire the alert command once, its payload marked as a test, whatever the
    /// status (exit 0 when the command succeeded).
    #[arg(long, requires = "profile", conflicts_with = "alert")]
    test_alert: bool,
}

/// Run `arca status`.
pub fn run(g: &Global, a: StatusArgs) -> Result<u8> {
    let mut opts = StatusOptions {
        group_by: a.group_by,
        filter: a.select.filter(),
        default_max_age: a.max_age,
        shrink_percent: a.shrink_threshold,
        min_free: a.min_free.or(g.scope.profile.as_ref().and_then(|p| p.min_free)),
        ..StatusOptions::default()
    };
    if g.scope.has_profile() {
        opts = status::for_components(&g.scope.targets, opts);
    }
    let repo = g.scope.ctx.open_for(arca::ops::context::READERS, "report status")?;
    let st = status::status(&repo, &opts)?;
    g.scope.ctx.warn_index_problems(&repo);
    for (name, e) in &st.damaged_snapshots {
        eprintln!("warning: snapshot {} cannot be read: {}", escape_str(name), escape_str(&e.to_string()));
    }
    for (name, e) in &st.damaged_journal {
        eprintln!("warning: journal file {} skipped: {}", escape_str(name), escape_str(&e.to_string()));
    }
    if a.alert || a.test_alert {
        let req = AlertRequest { failed_unit: a.failed_unit.clone(), test: a.test_alert };
        let fired = alert::alert(&g.scope, &st, &req)?;
        if g.talk() {
            let s = alert::summary(&st, req.failed_unit.as_deref());
            match fired {
                true => println!("alert sent{}: {s}", if req.test { " (test)" } else { "" }),
                false => println!("no alert: {s}"),
            }
        }
        if a.test_alert {
            return Ok(0);
        }
    }
    if let Some(path) = &a.prometheus_file {
        super::output::write_atomically(path, &metrics::prometheus(&st), "--prometheus-file")?;
    }
    if a.prometheus {
        print!("{}", metrics::prometheus(&st));
    } else if g.json {
        g.print_json(&metrics::status_json(&st))?;
    } else if !g.quiet && !a.alert {
        print_table(&st);
    }
    Ok(st.outcome().exit_code())
}

/// How long before `now` a time was: `3h05m ago`.
fn ago(now: i64, t: i64) -> String {
    duration_str(u64::try_from(now.saturating_sub(t)).unwrap_or(0))
}

fn print_table(st: &Status) {
    if st.groups.is_empty() {
        println!("no snapshots");
    }
    let header = ["snapshot", "age", "max-age", "count", "size", "change", "checked", "drilled", "RTO", "status"];
    let rows: Vec<Vec<String>> = st.groups.iter().map(|g| row(st.now, g)).collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let _ = match matches!(i, 1..=5 | 8) {
                true => write!(s, "{c:>w$}  ", w = widths[i]),
                false => write!(s, "{c:<w$}  ", w = widths[i]),
            };
        }
        s
    };
    if !st.groups.is_empty() {
        println!("{}group", line(&header.map(String::from)));
    }
    for (g, r) in st.groups.iter().zip(&rows) {
        println!("{}{}", line(r), escape_str(&group_name(g)));
        let err =
            |f: &status::FailureInfo| f.error.as_deref().map(|e| format!(": {}", escape_str(e))).unwrap_or_default();
        if let Some(f) = &g.last_failure {
            println!("  last {} {} {} ago (exit {}){}", f.op, f.outcome, ago(st.now, f.time_ns), f.exit_code, err(f));
        }
        if let Some(f) = &g.damage {
            println!("  damage found by {} {} ago (exit {}){}", f.op, ago(st.now, f.time_ns), f.exit_code, err(f));
        }
        if let (Some(m), Some(false)) = (g.max_rto_ns, g.rto_met) {
            let measured =
                g.last_drill.as_ref().and_then(|d| d.rto_full_ns).map_or("no drill on record".into(), duration_str);
            println!("  RTO objective {} missed: {measured}", duration_str(m));
        }
    }
    if let Some(f) = &st.repository_damage {
        let err = f.error.as_deref().map(|e| format!(": {}", escape_str(e))).unwrap_or_default();
        println!("repository DAMAGE: {} found damage {} ago{err}", f.op, ago(st.now, f.time_ns));
    }
    if st.repairable_files() > 0 {
        let found = match &st.repository_repairable {
            Some((f, _)) => format!("found by {} {} ago", f.op, ago(st.now, f.time_ns)),
            None => format!("{} snapshot files", st.repairable_snapshots.len()),
        };
        let files = super::output::plural(st.repairable_files(), "file", "files");
        println!("repository: repairable damage: {files}, run `arca repair packs` ({found})");
    }
    match &st.last_check {
        Some(c) => println!(
            "last check: {} ({} ago), read data: {}",
            localtime::format(c.time_ns),
            ago(st.now, c.time_ns),
            escape_str(c.read_data.as_deref().unwrap_or("none"))
        ),
        None => println!("last check: never"),
    }
    let s = &st.storage;
    let free = match (s.free_bytes, s.total_bytes) {
        (Some(f), Some(t)) => format!(", {} free of {}", human(f), human(t)),
        _ => String::new(),
    };
    let low = if s.free_ok == Some(false) { " — BELOW min-free" } else { "" };
    let size = s.repository_bytes.map_or_else(|| "size unknown (a listing failed)".into(), human);
    println!("storage: repository {size}{free}{low}");
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
