//! `snapshots`, `ls`, `find`, `diff`, `dump`.

use super::output::{escape, escape_str};
use super::select::SelectArgs;
use super::{human, time_str, Global};
use anyhow::Result;
use arca::format::tree::{Node, NodeKind};
use arca::ops::browse::{self, ListRequest, Side};
use arca::ops::HasOutcome;
use serde_json::json;
use std::io::Write;

#[derive(clap::Args, Debug)]
pub struct SnapshotsArgs {
    /// Only the newest N snapshots of each component (with --profile: the backup set) or of
    /// each host and paths.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "1")]
    latest: Option<usize>,
    #[command(flatten)]
    select: SelectArgs,
}

pub fn snapshots(g: &Global, a: SnapshotsArgs) -> Result<u8> {
    let quiet_ids = g.quiet && !g.json;
    let req = ListRequest { filter: a.select.filter(), latest: a.latest, sizes: !quiet_ids };
    let list = browse::snapshots(&g.scope, &req)?;
    for (_, e) in &list.damaged {
        eprintln!("warning: {}", escape_str(&e.to_string()));
    }
    let code = list.outcome().exit_code();
    if quiet_ids {
        // -q: full IDs only, one per line, for scripts.
        for l in &list.snapshots {
            println!("{}", l.id);
        }
        return Ok(code);
    }
    if g.json {
        let v: Vec<_> = list
            .snapshots
            .iter()
            .map(|l| {
                let s = &l.snapshot;
                json!({
                    "id": l.id, "short_id": l.id.short(), "time": time_str(s.time), "time_ns": s.time, "tree": s.tree,
                    "paths": s.paths.iter().map(|p| String::from_utf8_lossy(p)).collect::<Vec<_>>(),
                    "hostname": s.hostname, "username": s.username, "tags": s.tags, "parent": s.parent,
                    "original": s.original, "program": s.program, "summary": s.summary, "size": l.size,
                })
            })
            .collect();
        return g.print_json(&v).map(|_| code);
    }
    println!("{:<9} {:<20} {:<16} {:<16} {:>10}  paths", "ID", "time", "host", "tags", "size");
    for l in &list.snapshots {
        let s = &l.snapshot;
        let paths: Vec<_> = s.paths.iter().map(|p| escape(p)).collect();
        let tags: Vec<_> = s.tags.iter().map(|t| escape_str(t)).collect();
        println!(
            "{:<9} {:<20} {:<16} {:<16} {:>10}  {}",
            l.id.short(),
            time_str(s.time),
            escape_str(&s.hostname),
            tags.join(","),
            l.size.map_or_else(|| "?".to_string(), human),
            paths.join(" ")
        );
    }
    println!("{} snapshots", list.snapshots.len());
    Ok(code)
}

fn kind_char(n: &Node) -> char {
    match n.kind {
        NodeKind::File { .. } => '-',
        NodeKind::Dir { .. } => 'd',
        NodeKind::Symlink { .. } => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::CharDevice { .. } => 'c',
        NodeKind::BlockDevice { .. } => 'b',
        NodeKind::Socket => 's',
    }
}

fn node_json(path: &[u8], n: &Node) -> serde_json::Value {
    let (kind, size, target) = match &n.kind {
        NodeKind::File { size, .. } => ("file", *size, None),
        NodeKind::Dir { .. } => ("dir", 0, None),
        NodeKind::Symlink { target } => ("symlink", 0, Some(String::from_utf8_lossy(target).into_owned())),
        NodeKind::Fifo => ("fifo", 0, None),
        NodeKind::CharDevice { .. } => ("chardev", 0, None),
        NodeKind::BlockDevice { .. } => ("blockdev", 0, None),
        NodeKind::Socket => ("socket", 0, None),
    };
    json!({"path": String::from_utf8_lossy(path), "name": String::from_utf8_lossy(&n.name), "type": kind, "size": size,
           "mode": n.mode, "uid": n.uid, "gid": n.gid, "user": n.user, "group": n.group, "mtime": time_str(n.mtime),
           "mtime_ns": n.mtime, "link_target": target})
}

/// One entry as a line, every name from the repository escaped.
fn node_line(long: bool, path: &[u8], n: &Node) -> String {
    if !long {
        return escape(path);
    }
    let size = if let NodeKind::File { size, .. } = &n.kind { *size } else { 0 };
    let name = |s: &str, id: u32| if s.is_empty() { id.to_string() } else { escape_str(s) };
    let mut line = format!(
        "{}{:04o} {:>8} {:>8} {:>12} {} {}",
        kind_char(n),
        n.mode,
        name(&n.user, n.uid),
        name(&n.group, n.gid),
        size,
        time_str(n.mtime),
        escape(path)
    );
    if let NodeKind::Symlink { target } = &n.kind {
        line.push_str(&format!(" -> {}", escape(target)));
    }
    line
}

#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// SNAP[:PATH]; SNAP is an ID prefix, `latest`, `latest~N` or `latest-verified`.
    snapshot: String,
    /// Long listing: type, mode, owner, size, time.
    #[arg(short, long)]
    long: bool,
    /// Only the entries directly inside PATH.
    #[arg(long)]
    no_recursive: bool,
    #[command(flatten)]
    select: SelectArgs,
}

pub fn ls(g: &Global, a: LsArgs) -> Result<u8> {
    let mut out = Vec::new();
    browse::ls(&g.scope, &a.snapshot, &a.select.filter(), !a.no_recursive, &mut |p, n| match g.json {
        true => out.push(node_json(p, n)),
        false => println!("{}", node_line(a.long, p, n)),
    })?;
    if g.json {
        g.print_json(&out)?;
    }
    Ok(0)
}

#[derive(clap::Args, Debug)]
pub struct FindArgs {
    /// Glob matched against names (or whole paths if it contains `/`).
    pattern: String,
    /// Only search this snapshot (default: all that the filters select).
    #[arg(long)]
    snapshot: Option<String>,
    #[command(flatten)]
    select: SelectArgs,
}

pub fn find(g: &Global, a: FindArgs) -> Result<u8> {
    let mut hits = Vec::new();
    let found =
        browse::find(&g.scope, &a.pattern, a.snapshot.as_deref(), &a.select.filter(), &mut |id, p, n| match g.json {
            true => {
                let mut v = node_json(p, n);
                v["snapshot"] = json!(id);
                hits.push(v);
            }
            false => println!("{} {}", id.short(), node_line(true, p, n)),
        })?;
    for d in &found.damaged {
        eprintln!("error: {}", escape_str(d));
    }
    if g.json {
        g.print_json(&hits)?;
    }
    Ok(found.outcome().exit_code())
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Filters before the first snapshot apply to both; filters after a snapshot apply to it:
  arca diff latest --tag db latest --tag files
  arca diff latest~1:/etc latest:/etc")]
pub struct DiffArgs {
    /// First snapshot: SNAP[:PATH].
    a: String,
    /// Second snapshot: SNAP[:PATH].
    b: String,
    #[command(flatten)]
    select: SelectArgs,
    /// Each side's filters (from where each was given on the command line).
    #[arg(skip)]
    sides: Option<(SelectArgs, SelectArgs)>,
}

impl DiffArgs {
    /// Give each side the filters written after it (and both those written before the first).
    pub fn split_sides(&mut self, m: &clap::ArgMatches) {
        let at = |id: &str| m.index_of(id).unwrap_or(0);
        let (ia, ib) = (at("a"), at("b"));
        let mut sides = (SelectArgs::default(), SelectArgs::default());
        let pick = |id: &str, side: u8| -> Vec<String> {
            let (Some(vals), Some(idx)) = (m.get_raw(id), m.indices_of(id)) else { return vec![] };
            vals.zip(idx)
                .filter(|(_, i)| match side {
                    0 => *i < ib || *i < ia,
                    _ => *i > ib || *i < ia,
                })
                .map(|(v, _)| v.to_string_lossy().into_owned())
                .collect()
        };
        for (side, s) in [(0u8, &mut sides.0), (1, &mut sides.1)] {
            s.hosts = pick("hosts", side);
            s.tags = pick("tags", side);
            s.paths = pick("paths", side).into_iter().map(Into::into).collect();
            let time = |id: &str| pick(id, side).last().and_then(|t| arca::localtime::parse_time(t).ok());
            s.as_of = time("as_of");
            s.before = time("before");
        }
        self.sides = Some(sides);
    }
}

pub fn diff(g: &Global, a: DiffArgs) -> Result<u8> {
    let (fa, fb) = a.sides.clone().unwrap_or((a.select.clone(), a.select.clone()));
    let side = |reference: &str, s: &SelectArgs| Side { reference: reference.to_string(), filter: s.filter() };
    let mut out = Vec::new();
    browse::diff(&g.scope, &side(&a.a, &fa), &side(&a.b, &fb), &mut |c, p| match g.json {
        true => out.push(json!({"change": c, "path": String::from_utf8_lossy(p)})),
        false => println!("{}    {}", c.marker(), escape(p)),
    })?;
    if g.json {
        g.print_json(&out)?;
    }
    Ok(0)
}

#[derive(clap::Args, Debug)]
pub struct DumpArgs {
    /// SNAP:PATH of a file (written raw) or a directory (needs --archive).
    target: String,
    /// Archive format for directories.
    #[arg(long, value_parser = ["tar"])]
    archive: Option<String>,
    #[command(flatten)]
    select: SelectArgs,
}

pub fn dump(g: &Global, a: DumpArgs) -> Result<u8> {
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    browse::dump(&g.scope, &a.target, &a.select.filter(), a.archive.is_some(), &mut w)?;
    w.flush()?;
    Ok(0)
}
