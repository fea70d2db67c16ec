//! `arca forget`: remove snapshots by ID or by a retention policy (restic's rules), then
//! optionally `prune`; and `arca prune`.

use super::output::{escape, escape_str, plural};
use super::select::SelectArgs;
use super::{human, time_str, Global, Spinner};
use anyhow::Result;
use arca::lifecycle::forget::{Decision, Entry, ForgetOptions, GroupBy, Kept};
use arca::lifecycle::policy::{Count, KeepPolicy, Span};
use arca::lifecycle::prune::{self, MaxUnused, PlanStats, PruneReport, Step};
use arca::localtime;
use arca::ops::forget::{self, ForgetRequest, Forgotten, PruneRequest, Pruned};
use arca::ops::HasOutcome;
use serde_json::{json, Value};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

const RULES: &str = "\
Snapshots are grouped (--group-by, default host,paths) and the policy is applied to each group on
its own. A snapshot is kept if any rule keeps it:
  --keep-last N        the N newest snapshots
  --keep-hourly N …    the newest snapshot of each of the N newest hours (days, ISO weeks Monday to
  --keep-yearly N      Sunday, months, years) that have a snapshot; 'unlimited' (or -1) for all
  --keep-within D      every snapshot within D of the group's newest snapshot (not of now)
  --keep-within-daily D …  the newest snapshot of each day (hour, …) within D of the newest
  --keep-tag a,b       snapshots with all of these tags; repeat for either; '' for untagged
Each rule counts on its own, and one that still has counts left also keeps the group's oldest
snapshot. D is like 1y6m, 7d or 12h (years, months, days, hours). Hours, days, weeks, months and
years are those of the local time zone (TZ). Snapshots dated after now do not count as the newest.

A policy that would remove every snapshot of a group is refused (exit 1, nothing removed) unless
--allow-remove-all is given. Snapshots named by ID are removed whatever a policy says; an unknown
ID removes nothing. forget deletes snapshot files only: run `arca prune` (or add --prune) to free
the space their data used.";

/// Options of `arca forget`.
#[derive(clap::Args, Debug)]
#[command(after_help = RULES)]
pub struct ForgetArgs {
    /// Snapshots to remove (ID prefixes or `latest`), instead of a policy.
    #[arg(value_name = "SNAPSHOT")]
    ids: Vec<String>,
    /// Keep the N newest snapshots.
    #[arg(short = 'l', long, value_name = "N", allow_hyphen_values = true)]
    keep_last: Option<Count>,
    /// Keep the newest snapshot of each of the N newest hours that have one.
    #[arg(short = 'H', long, value_name = "N", allow_hyphen_values = true)]
    keep_hourly: Option<Count>,
    /// Keep the newest snapshot of each of the N newest days that have one.
    #[arg(short = 'd', long, value_name = "N", allow_hyphen_values = true)]
    keep_daily: Option<Count>,
    /// Keep the newest snapshot of each of the N newest ISO weeks that have one.
    #[arg(short = 'w', long, value_name = "N", allow_hyphen_values = true)]
    keep_weekly: Option<Count>,
    /// Keep the newest snapshot of each of the N newest months that have one.
    #[arg(short = 'm', long, value_name = "N", allow_hyphen_values = true)]
    keep_monthly: Option<Count>,
    /// Keep the newest snapshot of each of the N newest years that have one.
    #[arg(short = 'y', long, value_name = "N", allow_hyphen_values = true)]
    keep_yearly: Option<Count>,
    /// Keep every snapshot within this duration (e.g. 1y6m7d12h) of the group's newest.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    keep_within: Option<Span>,
    /// Keep the newest snapshot of each hour within this duration of the newest.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    keep_within_hourly: Option<Span>,
    /// Keep the newest snapshot of each day within this duration of the newest.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    keep_within_daily: Option<Span>,
    /// Keep the newest snapshot of each ISO week within this duration of the newest.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    keep_within_weekly: Option<Span>,
    /// Keep the newest snapshot of each month within this duration of the newest.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    keep_within_monthly: Option<Span>,
    /// Keep the newest snapshot of each year within this duration of the newest.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    keep_within_yearly: Option<Span>,
    /// Keep snapshots that have all these tags (repeat for either list; '' for untagged).
    #[arg(long = "keep-tag", value_name = "TAG[,TAG...]")]
    keep_tags: Vec<String>,
    /// Apply the policy to each group of snapshots with the same host, paths and/or tags
    /// (comma-separated), or to all together (`none` or '').
    #[arg(short = 'g', long, value_name = "FIELDS", default_value = "host,paths")]
    group_by: GroupBy,
    #[command(flatten)]
    select: SelectArgs,
    /// Show what would be removed; remove nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Let the policy remove every snapshot of a group; without a policy, remove every snapshot
    /// that --host/--tag/--path select.
    #[arg(long)]
    allow_remove_all: bool,
    /// Run `arca prune` afterwards if snapshots were removed.
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    prune_opts: PruneOpts,
}

impl ForgetArgs {
    /// The library options these arguments describe.
    fn options(&self) -> ForgetOptions {
        let count = |c: Option<Count>| c.unwrap_or_default();
        let span = |s: Option<Span>| s.unwrap_or_default();
        let policy = KeepPolicy {
            last: count(self.keep_last),
            hourly: count(self.keep_hourly),
            daily: count(self.keep_daily),
            weekly: count(self.keep_weekly),
            monthly: count(self.keep_monthly),
            yearly: count(self.keep_yearly),
            within: span(self.keep_within),
            within_hourly: span(self.keep_within_hourly),
            within_daily: span(self.keep_within_daily),
            within_weekly: span(self.keep_within_weekly),
            within_monthly: span(self.keep_within_monthly),
            within_yearly: span(self.keep_within_yearly),
            tags: self
                .keep_tags
                .iter()
                .map(|l| l.split(',').filter(|t| !t.is_empty()).map(String::from).collect())
                .collect(),
        };
        ForgetOptions {
            policy,
            group_by: self.group_by,
            filter: self.select.filter(),
            ids: self.ids.clone(),
            allow_remove_all: self.allow_remove_all,
            now: Some(arca::sys::now_nanos()),
        }
    }
}

/// How much to repack; shared by `arca prune` and `arca forget --prune`.
#[derive(clap::Args, Debug, Clone)]
pub struct PruneOpts {
    /// Unused space to tolerate after prune: a percentage of the repository (`5%`), a size
    /// (`200M`), `0` to repack every partly used pack, or `unlimited` to repack nothing.
    #[arg(long, value_name = "LIMIT", default_value = "5%", value_parser = parse_max_unused)]
    max_unused: MaxUnused,
    /// Read at most this much of partly used packs for repacking (e.g. `2G`).
    #[arg(long, value_name = "SIZE", value_parser = prune::parse_size)]
    max_repack_size: Option<u64>,
}

fn parse_max_unused(s: &str) -> std::result::Result<MaxUnused, String> {
    MaxUnused::parse(s).map_err(|e| e.to_string())
}

impl PruneOpts {
    fn request(&self) -> PruneRequest {
        PruneRequest { max_unused: self.max_unused, max_repack_size: self.max_repack_size, after_step: crash_hook() }
    }
}

/// Test hook: `ARCA_TEST_PRUNE_CRASH_AFTER=<step>` aborts the process right after that step,
/// leaving what a crash (kill -9, power loss after fsync) would leave, lock file included.
fn crash_hook() -> Option<prune::StepHook> {
    let step = Step::from_name(&std::env::var("ARCA_TEST_PRUNE_CRASH_AFTER").ok()?)?;
    Some(Arc::new(move |s| {
        if s == step {
            std::process::abort();
        }
        Ok(())
    }))
}

/// Options of `arca prune`.
#[derive(clap::Args, Debug, Clone)]
pub struct PruneArgs {
    #[command(flatten)]
    opts: PruneOpts,
    /// Show what would be deleted and repacked; change nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
}

/// Run `arca prune`.
pub fn prune(g: &Global, a: PruneArgs) -> Result<u8> {
    let progress = Arc::new(prune::Progress::default());
    let p = progress.clone();
    let bar = Spinner::new(g, move || {
        let phase = *p.phase.lock().unwrap();
        format!(
            "{phase}: {} snapshots, {} trees, repacked {}, {} files removed",
            p.snapshots.load(Relaxed),
            p.trees.load(Relaxed),
            super::progress::meter(&p.repack),
            p.removed.load(Relaxed)
        )
    });
    let pruned = forget::prune(&g.scope, &a.opts.request(), a.dry_run, &progress);
    drop(bar);
    let pruned = pruned?;
    show_pruned(g, &pruned)?;
    Ok(pruned.outcome().exit_code())
}

fn show_pruned(g: &Global, p: &Pruned) -> Result<()> {
    if g.json {
        return g.print_json(&json!({"dry_run": p.dry_run, "plan": p.stats, "done": p.report}));
    }
    if !g.quiet {
        print_plan(&p.stats, p.dry_run);
        if let Some(r) = &p.report {
            print_report(r);
        }
    }
    Ok(())
}

fn print_plan(s: &PlanStats, dry_run: bool) {
    println!(
        "{}, {}, {} indexed, {} used",
        plural(s.snapshots, "snapshot", "snapshots"),
        plural(s.index_files, "index file", "index files"),
        plural(s.blobs, "blob", "blobs"),
        s.blobs_used
    );
    println!(
        "packs: {} ({}): keep {} ({}), repack {} ({}, {} of it used), delete {} ({}), unindexed {} ({})",
        s.packs,
        human(s.pack_bytes),
        s.keep_packs,
        human(s.keep_bytes),
        s.repack_packs,
        human(s.repack_bytes),
        human(s.repack_used_bytes),
        s.delete_packs,
        human(s.delete_bytes),
        s.unindexed_packs,
        human(s.unindexed_bytes)
    );
    println!(
        "unused space: {} before, {} after; {} {}",
        human(s.unused_before),
        human(s.unused_after),
        if dry_run { "would free" } else { "frees" },
        human(s.freed_bytes)
    );
    if let Some(r) = &s.retention {
        print_deferred(r, dry_run);
    }
    if dry_run {
        println!("dry run: nothing changed");
    }
}

/// What the storage's retention keeps prune from removing yet, and until when.
fn print_deferred(r: &arca::lifecycle::prune::RetentionStats, dry_run: bool) {
    let policy = r.policy.map(|p| p.describe()).unwrap_or_default();
    if r.deferred_packs == 0 && r.deferred_index_files == 0 {
        println!("storage retention ({policy}): nothing prune would remove is retained");
        return;
    }
    let date =
        |d: &Option<String>| d.as_deref().map(|d| d.replacen('T', " ", 1).replace('Z', " UTC")).unwrap_or_default();
    println!(
        "storage retention ({policy}): {} {} pack(s) ({}) and {} index file(s) until they may go: from {} until {}",
        if dry_run { "would defer" } else { "deferred" },
        r.deferred_packs,
        human(r.deferred_bytes),
        r.deferred_index_files,
        date(&r.deferred_from),
        date(&r.deferred_until)
    );
}

fn print_report(r: &PruneReport) {
    if let Some(x) = &r.retention {
        let until = x.until.as_deref().map(|d| format!(", until {}", d.replacen('T', " ", 1).replace('Z', " UTC")));
        println!(
            "storage retention extended on {} of {} live files{}",
            x.extended,
            x.checked,
            until.unwrap_or_default()
        );
    }
    if r.snapshots_added_meanwhile > 0 {
        println!(
            "{} snapshot(s) were written meanwhile; {} pack(s) they need were kept",
            r.snapshots_added_meanwhile, r.packs_rescued
        );
    }
    let nothing =
        r.packs_removed == 0 && r.packs_written == 0 && r.index_files_written == 0 && r.index_files_removed == 0;
    if nothing && r.retention.is_some() {
        // Only retention was extended (everything prune would remove is still retained).
        return;
    }
    println!(
        "removed {} pack(s) ({}), wrote {} ({}) with {} repacked blobs; index files: {} written, {} removed",
        r.packs_removed,
        human(r.bytes_removed),
        r.packs_written,
        human(r.bytes_written),
        r.blobs_repacked,
        r.index_files_written,
        r.index_files_removed
    );
}

/// Run `arca forget` (with --profile: each component's retention, its keep-* keys, on its own
/// snapshots, grouped by host).
pub fn forget(g: &Global, a: ForgetArgs) -> Result<u8> {
    let req =
        ForgetRequest { options: a.options(), dry_run: a.dry_run, prune: a.prune.then(|| a.prune_opts.request()) };
    let report = forget::forget(&g.scope, &req)?;
    let code = report.outcome().exit_code();
    let mut docs = Vec::new();
    for run in report.runs {
        if let (Some(c), true) = (&run.component, g.talk()) {
            println!("component {c}:");
        }
        let f = match run.result {
            Ok(f) => f,
            Err(e) if !g.scope.has_profile() => return Err(e.into()),
            Err(e) => {
                let mut doc = super::component_error(g, run.component.as_deref(), &e);
                doc["component"] = json!(run.component);
                docs.push(doc);
                continue;
            }
        };
        docs.push(show_forgotten(g, &f, run.component.as_deref(), &req.options.policy)?);
    }
    if a.prune && g.talk() && report.prune.is_none() {
        println!("no snapshots removed: prune not run");
    }
    if let Some(p) = &report.prune {
        match p {
            Ok(p) => show_pruned(g, p)?,
            Err(e) => eprintln!("arca: prune: {}", escape_str(&e.to_string())),
        }
    }
    if g.json {
        match (&g.scope.profile, &docs[..]) {
            (None, [doc]) => g.print_json(doc)?,
            (p, _) => g.print_json(&json!({"profile": p.as_ref().map(|p| &p.name), "components": docs}))?,
        }
    }
    Ok(code)
}

/// Print one decision and what was removed; its JSON document.
fn show_forgotten(g: &Global, f: &Forgotten, component: Option<&str>, policy: &KeepPolicy) -> Result<Value> {
    if let Some(why) = f.skipped {
        if g.talk() {
            println!("{why}");
        }
        return Ok(json!({"component": component, "skipped": why}));
    }
    for d in &f.decision.damaged {
        eprintln!("warning: snapshot {} cannot be read ({}); left alone", escape_str(&d.name), escape_str(&d.error));
    }
    for (id, e) in &f.failed {
        eprintln!("arca: could not remove snapshot {}: {}", id.short(), escape_str(e));
    }
    if g.talk() {
        print_decision(&f.decision, policy, f.dry_run);
    }
    let mut doc = decision_json(&f.decision, f.dry_run, &f.removed)?;
    if component.is_some() {
        doc["component"] = json!(component);
    }
    Ok(doc)
}

/// The decision as JSON, each snapshot with its short ID and UTC time (as `snapshots --json`
/// shows them), plus what was done.
fn decision_json(d: &Decision, dry_run: bool, removed: &[arca::Id]) -> Result<Value> {
    let mut v = serde_json::to_value(d)?;
    let decorate = |list: &mut Value| {
        for e in list.as_array_mut().into_iter().flatten() {
            let ns = e["time_ns"].as_i64().unwrap_or(0);
            e["time"] = json!(time_str(ns));
            e["short_id"] = json!(e["id"].as_str().map(|s| &s[..8.min(s.len())]));
        }
    };
    for grp in v["groups"].as_array_mut().into_iter().flatten() {
        decorate(&mut grp["keep"]);
        decorate(&mut grp["remove"]);
    }
    decorate(&mut v["named"]);
    v["dry_run"] = json!(dry_run);
    v["removed"] = json!(removed);
    Ok(v)
}

fn print_decision(d: &Decision, policy: &KeepPolicy, dry_run: bool) {
    let verb = if dry_run { "would remove" } else { "removed" };
    if !d.named.is_empty() {
        for e in &d.named {
            println!("{verb} snapshot {} ({})", e.id.short(), localtime::format(e.time));
        }
        return;
    }
    println!("applying policy: {}", escape_str(&policy.to_string()));
    for grp in &d.groups {
        println!();
        if !grp.key.is_everything() {
            println!("snapshots of {}:", escape_str(&grp.key.to_string()));
        }
        if !grp.keep.is_empty() {
            println!("keep {}:", plural(grp.keep.len() as u64, "snapshot", "snapshots"));
            print_table(grp.keep.iter().map(|k| (&k.snapshot, Some(k))));
        }
        if !grp.remove.is_empty() {
            println!("remove {}:", plural(grp.remove.len() as u64, "snapshot", "snapshots"));
            print_table(grp.remove.iter().map(|e| (e, None)));
        }
    }
    let n = d.to_remove().len();
    println!();
    println!("times in {}; {verb} {}", localtime::zone_name(), plural(n as u64, "snapshot", "snapshots"));
}

/// Oldest first, as `arca snapshots` lists them; columns as wide as their widest cell.
fn print_table<'a>(rows: impl DoubleEndedIterator<Item = (&'a Entry, Option<&'a Kept>)>) {
    let cells: Vec<[String; 6]> = rows
        .rev()
        .map(|(e, kept)| {
            let tags: Vec<String> = e.tags.iter().map(|t| escape_str(t)).collect();
            let paths: Vec<String> = e.paths.iter().map(|p| escape(p)).collect();
            let reasons: Vec<String> =
                kept.iter().flat_map(|k| &k.reasons).map(|r| escape_str(&r.to_string())).collect();
            [
                e.id.short(),
                localtime::format(e.time),
                escape_str(&e.host),
                tags.join(","),
                reasons.join(", "),
                paths.join(" "),
            ]
        })
        .collect();
    let with_reasons = cells.iter().any(|c| !c[4].is_empty());
    let header = ["ID", "time", "host", "tags", "reasons", "paths"].map(String::from);
    let width = |i: usize| cells.iter().chain([&header]).map(|c| c[i].chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..6).map(width).collect();
    for row in [&header].into_iter().chain(&cells) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate().take(5) {
            if i == 4 && !with_reasons {
                continue;
            }
            line += &format!("{cell:<w$}  ", w = widths[i]);
        }
        println!("{line}{}", row[5]);
    }
}
