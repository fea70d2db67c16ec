//! `arca journal`: list, filter and compact the operations journal.

use super::output::{escape_str, plural};
use super::{duration_str, human, Global};
use anyhow::Result;
use arca::localtime;
use arca::ops::journal::{self, Op, Query, Record};
use arca::ops::Outcome;
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct JournalArgs {
    /// Only these operations (comma-separated or repeated): backup, check, drill, restore, dump,
    /// copy-from, copy-to, forget, prune, verify, tag.
    #[arg(long = "op", value_name = "OP", value_delimiter = ',', value_parser = parse_op)]
    ops: Vec<Op>,
    /// Only records that did not succeed (any outcome but ok).
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

/// `arca journal` (with --profile: the records of its selected components).
pub fn run(g: &Global, a: JournalArgs) -> Result<u8> {
    let q = Query {
        ops: a.ops,
        failed: a.failed,
        since: a.since,
        host: a.host,
        snapshot: a.snapshot,
        last: a.last,
        compact: a.compact,
    };
    let j = journal::query(&g.scope, &q)?;
    if let (Some(c), true) = (&j.compaction, g.talk()) {
        eprintln!(
            "compacted the journal: {} read, {} written, {} removed, {}",
            plural(c.files_read, "file", "files"),
            c.files_written,
            c.files_removed,
            plural(c.records, "record", "records")
        );
    }
    for (name, e) in &j.damaged {
        eprintln!("warning: journal file {name} skipped: {}", escape_str(&e.to_string()));
    }
    if g.json {
        g.print_json(&j.records.iter().map(record_json).collect::<Vec<_>>())?;
    } else {
        print_table(&j.records);
    }
    Ok(if j.damaged.is_empty() { Outcome::Ok } else { Outcome::Damage }.exit_code())
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

fn print_table(rows: &[Record]) {
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
