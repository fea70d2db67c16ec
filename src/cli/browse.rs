//! `snapshots`, `ls`, `find`, `diff`, `dump`.

use super::output::{escape, escape_str, plural};
use super::select::SelectArgs;
use super::{human, time_str, Global};
use anyhow::Result;
use arca::browse::Change;
use arca::format::tree::{Node, NodeKind};
use arca::lifecycle::group::GroupBy;
use arca::ops::browse::{self, ListRequest, Side};
use arca::ops::HasOutcome;
use serde_json::json;
use std::io::Write;

#[derive(clap::Args, Debug)]
pub struct SnapshotsArgs {
    /// Only the newest N snapshots of each component (with --profile: the backup set), of each
    /// --group-by group, or of each host and paths.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "1")]
    latest: Option<usize>,
    /// Show one group of snapshots per host, paths and/or tags (comma-separated, as restic's
    /// --group-by; `none` or '' for one group), each with its own table.
    #[arg(short = 'g', long, value_name = "FIELDS")]
    group_by: Option<GroupBy>,
    /// A narrower table: ID, time, host and tags (no paths, no sizes).
    #[arg(short = 'c', long)]
    compact: bool,
    #[command(flatten)]
    select: SelectArgs,
}

pub fn snapshots(g: &Global, a: SnapshotsArgs) -> Result<u8> {
    let quiet_ids = g.quiet && !g.json;
    // The compact table has no size column: sizes (which read trees) only where shown.
    let sizes = !quiet_ids && (!a.compact || g.json);
    let req = ListRequest { filter: a.select.filter(), latest: a.latest, sizes, group_by: a.group_by };
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
        let one = |i: usize| snapshot_json(&list.snapshots[i]);
        if a.group_by.is_none() {
            let v: Vec<_> = (0..list.snapshots.len()).map(one).collect();
            return g.print_json(&v).map(|_| code);
        }
        // restic's shape: [{"group_key": {"hostname", "paths", "tags"}, "snapshots": [...]}].
        let v: Vec<_> = list
            .groups
            .iter()
            .map(|(k, members)| {
                let paths = k.paths.as_ref().map(|p| p.iter().map(|p| String::from_utf8_lossy(p)).collect::<Vec<_>>());
                json!({"group_key": {"hostname": k.host, "paths": paths, "tags": k.tags},
                       "snapshots": members.iter().map(|&i| one(i)).collect::<Vec<_>>()})
            })
            .collect();
        return g.print_json(&v).map(|_| code);
    }
    let all: Vec<usize> = (0..list.snapshots.len()).collect();
    let groups = match a.group_by {
        Some(_) => list.groups.iter().map(|(k, m)| (Some(k), m)).collect(),
        None => vec![(None, &all)],
    };
    for (i, (key, members)) in groups.iter().enumerate() {
        if let Some(k) = key {
            if i > 0 {
                println!();
            }
            println!("snapshots of {}:", escape_str(&k.to_string()));
        }
        let rows: Vec<&browse::Listed> = members.iter().map(|&m| &list.snapshots[m]).collect();
        print_snapshot_table(&rows, a.compact);
        println!("{}", plural(rows.len(), "snapshot", "snapshots"));
    }
    Ok(code)
}

fn snapshot_json(l: &browse::Listed) -> serde_json::Value {
    let s = &l.snapshot;
    json!({
        "id": l.id, "short_id": l.id.short(), "time": time_str(s.time), "time_ns": s.time, "tree": s.tree,
        "paths": s.paths.iter().map(|p| String::from_utf8_lossy(p)).collect::<Vec<_>>(),
        "hostname": s.hostname, "username": s.username, "tags": s.tags, "parent": s.parent,
        "original": s.original, "program": s.program, "summary": s.summary, "size": l.size,
    })
}

/// Tags are wrapped at this many characters, so one long tag cannot push the table apart.
const TAG_WIDTH: usize = 24;

/// `text` in pieces of at most `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(width).map(|c| c.iter().collect()).collect()
}

/// One snapshot's cells: ID, time, host and size, its tag lines and its paths.
type Cells = ([String; 4], Vec<String>, Vec<String>);

/// The snapshots table, restic's layout: each tag and each path on a line of its own (tags
/// wrapped at [`TAG_WIDTH`]), columns as wide as their widest cell.
fn print_snapshot_table(rows: &[&browse::Listed], compact: bool) {
    // Cells of each snapshot: ID, time, host, size, then tag and path lines.
    let cells: Vec<Cells> = rows
        .iter()
        .map(|l| {
            let s = &l.snapshot;
            let tags = s.tags.iter().flat_map(|t| wrap(&escape_str(t), TAG_WIDTH)).collect();
            let paths = s.paths.iter().map(|p| escape(p)).collect();
            let size = l.size.map_or_else(|| "?".to_string(), human);
            ([l.id.short().to_string(), time_str(s.time), escape_str(&s.hostname), size], tags, paths)
        })
        .collect();
    let width = |f: &dyn Fn(&Cells) -> usize, title: &str| {
        cells.iter().map(f).chain([title.chars().count()]).max().unwrap_or(0)
    };
    let w_id = width(&|c| c.0[0].chars().count(), "ID");
    let w_time = width(&|c| c.0[1].chars().count(), "time");
    let w_host = width(&|c| c.0[2].chars().count(), "host");
    let w_tags = width(&|c| c.1.iter().map(|t| t.chars().count()).max().unwrap_or(0), "tags");
    let w_size = width(&|c| c.0[3].chars().count(), "size");
    let line = |id: &str, time: &str, host: &str, tags: &str, size: &str, path: &str| {
        let row = match compact {
            true => format!("{id:<w_id$}  {time:<w_time$}  {host:<w_host$}  {tags}"),
            false => format!("{id:<w_id$}  {time:<w_time$}  {host:<w_host$}  {tags:<w_tags$}  {size:>w_size$}  {path}"),
        };
        println!("{}", row.trim_end());
    };
    line("ID", "time", "host", "tags", "size", "paths");
    for (c, tags, paths) in &cells {
        let lines = tags.len().max(if compact { 0 } else { paths.len() }).max(1);
        for i in 0..lines {
            let (tag, path) = (tags.get(i).map_or("", String::as_str), paths.get(i).map_or("", String::as_str));
            match i {
                0 => line(&c[0], &c[1], &c[2], tag, &c[3], path),
                _ => line("", "", "", tag, "", if compact { "" } else { path }),
            }
        }
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
        "{} {:>8} {:>8} {:>12} {} {}",
        arca::browse::mode_string(n),
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
    /// Directories (or files) in the snapshot to list, as restic's `ls SNAP DIR...`: the same
    /// as `SNAP:DIR`.
    #[arg(value_name = "DIR")]
    dirs: Vec<String>,
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
    let references = match a.dirs.is_empty() {
        true => vec![a.snapshot.clone()],
        false if a.snapshot.contains(':') => {
            anyhow::bail!(arca::Error::InvalidArgument("give SNAP:DIR or SNAP DIR..., not both".into()))
        }
        false => a.dirs.iter().map(|d| format!("{}:{d}", a.snapshot)).collect(),
    };
    for r in &references {
        browse::ls(&g.scope, r, &a.select.filter(), !a.no_recursive, &mut |p, n| match g.json {
            true => out.push(node_json(p, n)),
            false => println!("{}", node_line(a.long, p, n)),
        })?;
    }
    if g.json {
        g.print_json(&out)?;
    }
    Ok(0)
}

#[derive(clap::Args, Debug)]
pub struct FindArgs {
    /// Globs matched against names (or whole paths if they contain `/`); with --blob, --tree or
    /// --pack, IDs (or prefixes) of those objects.
    #[arg(required = true, value_name = "PATTERN")]
    patterns: Vec<String>,
    /// Only search this snapshot (repeatable; default: all that the filters select).
    #[arg(short = 's', long = "snapshot", value_name = "SNAP")]
    snapshots: Vec<String>,
    /// Match names and paths in either case.
    #[arg(short = 'i', long)]
    ignore_case: bool,
    /// Only entries modified at or before TIME (`YYYY-MM-DD[ HH:MM[:SS]]`, local, or RFC 3339).
    #[arg(short = 'N', long, value_name = "TIME", value_parser = arca::localtime::parse_time)]
    newest: Option<i64>,
    /// Only entries modified at or after TIME.
    #[arg(short = 'O', long, value_name = "TIME", value_parser = arca::localtime::parse_time)]
    oldest: Option<i64>,
    /// The patterns are data blob IDs: find the files whose content holds them.
    #[arg(long, group = "by_id")]
    blob: bool,
    /// The patterns are tree IDs: find the directories they list.
    #[arg(long, group = "by_id")]
    tree: bool,
    /// The patterns are pack IDs: find the files and directories with blobs in them.
    #[arg(long, group = "by_id")]
    pack: bool,
    /// Long listing: type and mode, owner, size, time.
    #[arg(short, long)]
    long: bool,
    #[command(flatten)]
    select: SelectArgs,
}

pub fn find(g: &Global, a: FindArgs) -> Result<u8> {
    use arca::browse::{FindBy, IdKind, NameGlobs};
    let kind = [(a.blob, IdKind::Blob), (a.tree, IdKind::Tree), (a.pack, IdKind::Pack)].into_iter().find(|k| k.0);
    let by = match kind {
        Some((_, k)) => FindBy::ids(k, &a.patterns)?,
        None => FindBy::Names(NameGlobs::new(&a.patterns, a.ignore_case)?),
    };
    let req = browse::FindRequest {
        by,
        oldest: a.oldest,
        newest: a.newest,
        snapshots: a.snapshots,
        filter: a.select.filter(),
        newest_first: false,
        up_to: None,
        deadline: None,
    };
    // What an ID search found in an entry: a directory's tree, or a file's data blob.
    let object = |n: &Node| if n.subtree().is_some() { "tree" } else { "blob" };
    let mut hits = Vec::new();
    let found = browse::find(&g.scope, &req, &mut |id, p, n, hit| match g.json {
        true => {
            let mut v = node_json(p, n);
            v["snapshot"] = json!(id);
            if let Some(h) = hit {
                (v["object_type"], v["id"]) = (json!(object(n)), json!(h));
            }
            hits.push(v);
        }
        false => match hit {
            Some(h) => println!("{} {}  ({} {})", id.short(), node_line(a.long, p, n), object(n), h.short()),
            None => println!("{} {}", id.short(), node_line(a.long, p, n)),
        },
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
    /// Also list entries whose metadata alone changed (`U`: mode, owner, times, xattrs).
    #[arg(long)]
    metadata: bool,
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
    let shown = |c: Change| a.metadata || c != Change::Metadata;
    let compared = browse::diff(&g.scope, &side(&a.a, &fa), &side(&a.b, &fb), &mut |c, p| match g.json {
        _ if !shown(c) => {}
        true => out.push(json!({"message_type": "change", "modifier": c.marker().to_string(), "change": c,
                                "path": String::from_utf8_lossy(p)})),
        false => println!("{}    {}", c.marker(), escape(p)),
    })?;
    let st = &compared.stats;
    if g.json {
        // The last element, as restic's last message: the statistics.
        out.push(
            json!({"message_type": "statistics", "source_snapshot": compared.a.0, "target_snapshot": compared.b.0,
                        "changed_files": st.changed_files, "added": st.added, "removed": st.removed}),
        );
        g.print_json(&out)?;
    } else if !g.quiet {
        print_diff_stats(st);
    }
    Ok(0)
}

/// restic's diff summary, after a blank line.
fn print_diff_stats(st: &arca::browse::DiffStats) {
    let (ad, rm) = (&st.added, &st.removed);
    println!();
    println!("Files:      {:>5} new, {:>5} removed, {:>5} changed", ad.files, rm.files, st.changed_files);
    println!("Dirs:       {:>5} new, {:>5} removed", ad.dirs, rm.dirs);
    println!("Others:     {:>5} new, {:>5} removed", ad.others, rm.others);
    println!("Data Blobs: {:>5} new, {:>5} removed", ad.data_blobs, rm.data_blobs);
    println!("Tree Blobs: {:>5} new, {:>5} removed", ad.tree_blobs, rm.tree_blobs);
    println!("  Added:   {}", human(ad.bytes));
    println!("  Removed: {}", human(rm.bytes));
}

#[derive(clap::Args, Debug)]
pub struct DumpArgs {
    /// SNAP:PATH of a file (written raw) or a directory (needs --archive).
    target: String,
    /// Write the entry and everything below it as an archive: `tar`, or `zip` (stored, not
    /// compressed; the same snapshot entry gives the same bytes every time).
    #[arg(long, value_name = "FORMAT", value_parser = ["tar", "zip"])]
    archive: Option<String>,
    #[command(flatten)]
    select: SelectArgs,
}

pub fn dump(g: &Global, a: DumpArgs) -> Result<u8> {
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let archive = match a.archive.as_deref() {
        Some(name) => name.parse()?,
        None => browse::Archive::None,
    };
    browse::dump(&g.scope, &a.target, &a.select.filter(), archive, &mut w)?;
    w.flush()?;
    Ok(0)
}
