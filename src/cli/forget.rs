//! `arca forget`: remove snapshots by ID or by a retention policy (restic's rules), then
//! optionally `prune`.

use super::localtime::{self, Local};
use super::output::{escape, escape_str};
use super::select::SelectArgs;
use super::{code, time_str, Global};
use anyhow::Result;
use arca::lifecycle::forget::{self, Decision, Entry, ForgetOptions, GroupBy, Kept};
use arca::lifecycle::policy::{Count, KeepPolicy, Span};
use serde_json::{json, Value};

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
    prune_opts: super::prune::PruneOpts,
    /// With --profile: apply each component's retention (its keep-* keys) to its snapshots only,
    /// grouped by host.
    #[command(flatten)]
    profile: super::profile::ProfileArgs,
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

/// Run `arca forget`.
pub fn forget(g: &Global, a: ForgetArgs) -> Result<u8> {
    if a.profile.is_set() {
        return forget_profile(g, a);
    }
    let opts = a.options();
    // Usage errors before a password is asked for.
    forget::validate(&opts)?;
    if a.dry_run {
        g.journal_skip();
    }
    let repo = g.open()?;
    let (status, doc, removed) = decide_and_remove(g, &a, &opts, &repo)?;
    if let Some(doc) = doc {
        g.print_json(&doc)?;
    }
    prune_after(g, &a, &repo, status, removed)
}

/// `forget --profile`: each selected component's retention on its own snapshots, then one prune.
fn forget_profile(g: &Global, a: ForgetArgs) -> Result<u8> {
    if !a.ids.is_empty() || !a.options().policy.is_empty() {
        let msg = "--profile takes each component's retention from the configuration: give no IDs or --keep-* rules";
        return Err(arca::Error::InvalidArgument(msg.into()).into());
    }
    let (_, pg) = super::profile::resolve(g, &a.profile)?;
    let repo = pg.open()?;
    let mut removed = 0;
    let op = (!a.dry_run).then_some(arca::ops::journal::Op::Forget);
    let status = super::profile::each_component(g, &a.profile, op, |g, t| {
        if t.component.retention.is_empty() {
            if !g.quiet && !g.json {
                println!("no keep-* rules: every snapshot kept");
            }
            return Ok((code::OK, json!({"skipped": "no retention rules"})));
        }
        let mut opts = a.options();
        opts.policy = t.component.retention.clone();
        opts.group_by = "host".parse().expect("a valid grouping");
        opts.filter.tags = t.filter.tags.clone();
        g.journal_attach(&repo);
        let (status, doc, n) = decide_and_remove(g, &a, &opts, &repo)?;
        removed += n;
        Ok((status, doc.unwrap_or(Value::Null)))
    })?;
    prune_after(&pg, &a, &repo, status, removed)
}

/// Plan, refuse an emptied group, remove, print the text report; returns the exit status, the
/// JSON report (with `--json`) and how many snapshots were removed.
fn decide_and_remove(
    g: &Global,
    a: &ForgetArgs,
    opts: &ForgetOptions,
    repo: &arca::repo::Repository,
) -> Result<(u8, Option<Value>, usize)> {
    // Exclusive, and taken before listing: no backup may add a snapshot the decision did not see.
    let guard = if a.dry_run { None } else { Some(g.lock(repo, true)?) };
    let decision = forget::plan(repo, opts, &Local)?;
    decision.check()?;
    for d in &decision.damaged {
        eprintln!("warning: snapshot {} cannot be read ({}); left alone", escape_str(&d.name), escape_str(&d.error));
    }
    let outcome = match a.dry_run {
        true => None,
        false => Some(forget::execute(repo, &decision)?),
    };
    drop(guard);
    let removed = outcome.as_ref().map_or(Vec::new(), |o| o.removed.clone());
    g.journal(|r| r.snapshots.extend(removed.iter().copied()));
    let doc = if g.json { Some(decision_json(&decision, a.dry_run, &removed)?) } else { None };
    if !g.json && !g.quiet {
        print_decision(&decision, &opts.policy, a.dry_run);
    }
    if let Some(o) = outcome.as_ref().filter(|o| !o.failed.is_empty()) {
        for (id, e) in &o.failed {
            eprintln!("arca: could not remove snapshot {}: {}", id.short(), escape_str(&e.to_string()));
        }
        anyhow::bail!("{} of {} snapshots could not be removed", o.failed.len(), o.failed.len() + o.removed.len());
    }
    let status = if decision.damaged.is_empty() { code::OK } else { code::INTEGRITY };
    Ok((status, doc, decision.to_remove().len()))
}

/// `--prune`: run prune if snapshots were (or, dry, would be) removed.
fn prune_after(g: &Global, a: &ForgetArgs, repo: &arca::repo::Repository, status: u8, removed: usize) -> Result<u8> {
    if !a.prune {
        return Ok(status);
    }
    if removed == 0 {
        if !g.quiet && !g.json {
            println!("no snapshots removed: prune not run");
        }
        return Ok(status);
    }
    Ok(status.max(super::prune::run(g, repo, &a.prune_opts, a.dry_run)?))
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
            println!("keep {} snapshots:", grp.keep.len());
            print_table(grp.keep.iter().map(|k| (&k.snapshot, Some(k))));
        }
        if !grp.remove.is_empty() {
            println!("remove {} snapshots:", grp.remove.len());
            print_table(grp.remove.iter().map(|e| (e, None)));
        }
    }
    let n = d.to_remove().len();
    println!();
    println!("times in {}; {verb} {n} snapshots", localtime::zone_name());
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
