//! The journal from the command line: every journaled command gets a record that the
//! dispatcher writes when the command ends (whatever its outcome), and `arca journal` lists,
//! filters and compacts the records.
//!
//! A command adds what it knows (snapshots, bytes, labels) with [`Global::journal`]; the
//! repository it opens through [`Global::open`] is where the record goes. Failing to write the
//! record is a warning: the journal must never turn a good backup into a failed one.
//!
//! To journal a new command: map its `Command` variant to an [`Op`] in `Command::journal_op`
//! (src/cli/mod.rs); open the repository with `g.open()`; fill the record with
//! `g.journal(|r| { r.snapshots.push(id); r.bytes = …; set_label(r, "k", v); set_metric(r, "k", n) })`
//! (`arca::ops::journal::{set_label, set_metric}`); call `g.journal_skip()` for a dry run. The
//! dispatcher sets time, duration, exit code, outcome and the error text. A record for another
//! repository (copy's destination): `arca::ops::journal::start(op)`, fill it,
//! `arca::ops::journal::finish(&mut r, exit_code)`, `arca::ops::journal::append(&repo, &r)` and
//! warn on error.

use super::output::escape_str;
use super::{code, human, localtime, Global};
use anyhow::Result;
use arca::ops::journal::{self, Op, Outcome, Record};
use arca::repo::journal::Appender;
use serde_json::json;
use std::cell::RefCell;

/// The record of the running command, and where to write it once a repository is open.
#[derive(Default)]
pub struct Pending {
    record: Option<Record>,
    appender: Option<Appender>,
}

/// The dispatcher's per-command journal state.
pub type Slot = RefCell<Pending>;

/// Begin a record for `op` (none for commands that are not journaled or write nothing).
pub fn begin(op: Option<Op>) -> Slot {
    RefCell::new(Pending { record: op.map(journal::start), appender: None })
}

impl Global {
    /// Add to the running command's record (nothing when the command is not journaled).
    pub fn journal(&self, f: impl FnOnce(&mut Record)) {
        if let Some(r) = self.journal.borrow_mut().record.as_mut() {
            f(r);
        }
    }

    /// Write the record to `repo` rather than the repository opened first (for `copy`'s
    /// destination side the command writes its own record).
    pub(super) fn journal_attach(&self, repo: &arca::repo::Repository) {
        let mut p = self.journal.borrow_mut();
        if p.record.is_some() && p.appender.is_none() {
            p.appender = Some(repo.journal_appender());
        }
    }

    /// Do not write a record for this run (a dry run writes nothing).
    pub fn journal_skip(&self) {
        self.journal.borrow_mut().record = None;
    }
}

/// Finish and write the record of a command that ended with `result`.
pub fn end(g: &Global, result: &Result<u8>) {
    let mut p = g.journal.borrow_mut();
    let (Some(mut r), Some(appender)) = (p.record.take(), p.appender.take()) else { return };
    let exit = match result {
        Ok(c) => *c,
        Err(e) => {
            r.errors.push(super::error_text(e));
            super::exit_code(e)
        }
    };
    journal::finish(&mut r, exit);
    if let Err(e) = appender.append(&r) {
        eprintln!("warning: could not write the journal record of this {}: {e}", r.op.name());
    }
}

#[derive(clap::Args, Debug)]
pub struct JournalArgs {
    /// Only these operations (comma-separated or repeated): backup, check, drill, restore, dump,
    /// copy-from, copy-to, forget, prune, verify.
    #[arg(long = "op", value_name = "OP", value_delimiter = ',', value_parser = parse_op)]
    ops: Vec<Op>,
    /// Only records that did not succeed (outcome partial, failed or damage).
    #[arg(long)]
    failed: bool,
    /// Only records that started at or after TIME ('YYYY-MM-DD[ HH:MM:SS]', RFC 3339) or within
    /// DURATION before now ('7d', '12h').
    #[arg(long, value_name = "TIME|DURATION", value_parser = parse_since)]
    since: Option<i64>,
    /// Only records from this host.
    #[arg(long)]
    host: Option<String>,
    /// Only records naming a snapshot whose ID starts with this prefix.
    #[arg(long, value_name = "ID")]
    snapshot: Option<String>,
    /// Only the newest N records (after filtering).
    #[arg(long, value_name = "N")]
    last: Option<usize>,
    /// Merge the journal's files into as few as possible (takes the exclusive lock), then list.
    #[arg(long)]
    compact: bool,
}

fn parse_op(s: &str) -> std::result::Result<Op, String> {
    if s == "copy" {
        return Err("use copy-from or copy-to".into());
    }
    Op::from_name(s)
        .ok_or_else(|| format!("unknown operation {s:?} (one of {})", Op::names().collect::<Vec<_>>().join(", ")))
}

fn parse_since(s: &str) -> std::result::Result<i64, String> {
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(arca::sys::now_nanos().saturating_sub(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)));
    }
    localtime::parse_time(s).map_err(|e| format!("{e}, or a duration such as 7d or 12h"))
}

/// `arca journal`.
pub fn run(g: &Global, a: JournalArgs) -> Result<u8> {
    let repo = g.open()?;
    if a.compact {
        let lock = g.lock(&repo, true)?;
        let c = journal::compact(&repo)?;
        drop(lock);
        if !g.quiet && !g.json {
            eprintln!(
                "compacted the journal: {} files read, {} written, {} removed, {} records",
                c.files_read, c.files_written, c.files_removed, c.records
            );
        }
    }
    let j = journal::load(&repo)?;
    for (name, e) in &j.damaged {
        eprintln!("warning: journal file {name} skipped: {e}");
    }
    let prefix = a.snapshot.as_deref().map(str::to_ascii_lowercase);
    let mut rows: Vec<&Record> = j
        .records
        .iter()
        .filter(|r| a.ops.is_empty() || a.ops.contains(&r.op))
        .filter(|r| !a.failed || r.outcome != Outcome::Ok)
        .filter(|r| a.since.is_none_or(|t| r.time >= t))
        .filter(|r| a.host.as_deref().is_none_or(|h| r.hostname == h))
        .filter(|r| prefix.as_deref().is_none_or(|p| r.snapshots.iter().any(|s| s.to_hex().starts_with(p))))
        .collect();
    if let Some(n) = a.last {
        rows.drain(..rows.len().saturating_sub(n));
    }
    if g.json {
        g.print_json(&rows.iter().map(|r| record_json(r)).collect::<Vec<_>>())?;
    } else {
        print_table(&rows);
    }
    Ok(if j.damaged.is_empty() { code::OK } else { code::INTEGRITY })
}

/// A record as JSON.
fn record_json(r: &Record) -> serde_json::Value {
    json!({
        "id": arca::id::hex(&r.id),
        "time": localtime::format(r.time),
        "time_ns": r.time,
        "duration_ns": r.duration,
        "op": r.op.name(),
        "outcome": r.outcome.name(),
        "exit_code": r.exit_code,
        "hostname": r.hostname,
        "username": r.username,
        "snapshots": r.snapshots.iter().map(|s| s.to_hex()).collect::<Vec<_>>(),
        "bytes": r.bytes,
        "files": r.files,
        "errors": r.errors,
        "labels": first_wins(r.labels.iter().map(|(k, v)| (k, json!(v)))),
        "metrics": first_wins(r.metrics.iter().map(|(k, v)| (k, json!(v)))),
    })
}

/// A JSON object of key/value pairs where, as in format-spec 21.2, the first of equal keys counts.
fn first_wins<'a>(pairs: impl Iterator<Item = (&'a String, serde_json::Value)>) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (k, v) in pairs {
        m.entry(k.clone()).or_insert(v);
    }
    serde_json::Value::Object(m)
}

fn print_table(rows: &[&Record]) {
    if rows.is_empty() {
        println!("no journal records");
        return;
    }
    println!(
        "{:<19}  {:<9}  {:<7}  {:>9}  {:<16}  {:<8}  {:>10}  {:>8}  note",
        "time", "op", "result", "duration", "host", "snapshot", "bytes", "files"
    );
    for r in rows {
        let snap = match r.snapshots.as_slice() {
            [] => String::new(),
            [one] => one.to_hex()[..8].to_string(),
            many => format!("{} snaps", many.len()),
        };
        println!(
            "{:<19}  {:<9}  {:<7}  {:>9}  {:<16}  {:<8}  {:>10}  {:>8}  {}",
            localtime::format(r.time),
            r.op.name(),
            r.outcome.name(),
            duration_str(r.duration),
            escape_str(&r.hostname),
            snap,
            human(r.bytes),
            r.files,
            escape_str(&note(r)),
        );
    }
}

/// A short duration: `850ms`, `12.3s`, `4m05s`, `2h10m`.
pub fn duration_str(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    match s {
        0 => format!("{}ms", ns / 1_000_000),
        1..=59 => format!("{:.1}s", ns as f64 / 1e9),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// The first error, or what the labels and metrics say that matters most.
fn note(r: &Record) -> String {
    if let Some(e) = r.errors.first() {
        return e.clone();
    }
    let mut parts = Vec::new();
    if let Some(c) = r.label("component") {
        parts.push(format!("component {c}"));
    }
    if let Some(s) = r.label("read_data") {
        parts.push(format!("read-data {s}"));
    }
    if let Some(s) = r.label("sample") {
        parts.push(format!("sample {s}"));
    }
    if let Some(t) = r.metric("rto_full_ns") {
        parts.push(format!("RTO {}", duration_str(t)));
    }
    parts.join(", ")
}
