//! `backup`, `snapshots`, `ls`, `find`, `diff`, `dump`, `restore`, `check`.

use super::output::{escape, escape_str};
use super::select::{self, SelectArgs};
use super::{code, human, time_str, Global};
use anyhow::{bail, Context, Result};
use arca::archiver::{self, BackupOptions, Excludes, Progress};
use arca::check::{CheckOptions, Subset};
use arca::format::snapshot::Snapshot;
use arca::format::tree::{Node, NodeKind};
use arca::repo::index::Index;
use arca::repo::Repository;
use arca::restore::{self, Overwrite, RestoreOptions};
use arca::Id;
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;

#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// Files and directories to back up (with --stdin-from-command: the command and its
    /// arguments, after `--`).
    paths: Vec<PathBuf>,
    /// Read the data to back up from standard input.
    #[arg(long)]
    stdin: bool,
    /// Run the command given after `--` (no shell) and back up its standard output as with
    /// --stdin; no snapshot is written if it exits non-zero or is killed:
    /// `arca backup --stdin-from-command --stdin-filename db.sql -- pg_dump mydb`.
    #[arg(long, conflicts_with = "stdin")]
    stdin_from_command: bool,
    /// Save a --stdin or --stdin-from-command backup even when the stream is empty.
    #[arg(long)]
    allow_empty: bool,
    /// File name for the --stdin data in the snapshot.
    #[arg(long, default_value = "stdin", value_name = "NAME")]
    stdin_filename: String,
    /// Tag the snapshot (repeatable; a tag is non-empty and holds no comma).
    #[arg(long = "tag", value_name = "TAG", value_parser = select::parse_tag)]
    tags: Vec<String>,
    /// Host name to record.
    #[arg(long)]
    host: Option<String>,
    /// Exclude paths matching GLOB (repeatable). Without `/` it matches names at any depth.
    #[arg(long = "exclude", short = 'e', value_name = "GLOB")]
    excludes: Vec<String>,
    /// Read exclude patterns from a file, one per line (`#` starts a comment).
    #[arg(long = "exclude-file", value_name = "FILE")]
    exclude_files: Vec<PathBuf>,
    /// Exclude directories that contain a file of this name (repeatable).
    #[arg(long = "exclude-if-present", value_name = "NAME")]
    exclude_if_present: Vec<String>,
    /// Do not cross filesystem boundaries.
    #[arg(short = 'x', long)]
    one_file_system: bool,
    /// Do everything except write to the repository.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Threads that stat and open files ahead of the CPU workers, so that a cold disk has many
    /// reads in flight (0: none; at most 256) [default: 16].
    #[arg(long, env = "ARCA_IO_THREADS", value_name = "N",
          value_parser = clap::value_parser!(u16).range(0..=256))]
    io_threads: Option<u16>,
    /// Read every file even if the parent snapshot says it is unchanged.
    #[arg(short, long)]
    force: bool,
    /// Parent snapshot for change detection (default: latest with the same host and paths).
    #[arg(long)]
    parent: Option<String>,
    /// Record this time instead of now: 'YYYY-MM-DD HH:MM:SS' or 'YYYY-MM-DD' (local time), or
    /// RFC 3339 ('2024-05-01T12:00:00Z', '…+02:00'). For importing old backups.
    #[arg(long, value_name = "TIME", value_parser = super::localtime::parse_time)]
    time: Option<i64>,
    #[command(flatten)]
    profile: super::profile::ProfileArgs,
}

/// A spinner on stderr (only on a terminal, and not with `--quiet` or `--json`) whose message
/// `msg` gives, five times a second, until it is finished.
pub(super) fn spinner(g: &Global, msg: impl Fn() -> String + Send + 'static) -> Option<Spinner> {
    if g.quiet || g.json || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}").unwrap());
    let b = bar.clone();
    let h = std::thread::spawn(move || {
        while !b.is_finished() {
            b.set_message(msg());
            b.tick();
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    });
    Some((bar, h))
}

/// A running spinner and the thread that updates it.
pub(super) type Spinner = (indicatif::ProgressBar, std::thread::JoinHandle<()>);

pub(super) fn progress_bar(g: &Global, p: &'static Progress) -> Option<Spinner> {
    spinner(g, move || {
        format!("{} files, {} dirs, {}", p.files.load(Relaxed), p.dirs.load(Relaxed), human(p.bytes.load(Relaxed)))
    })
}

pub fn backup(g: &Global, a: BackupArgs) -> Result<u8> {
    if a.profile.is_set() {
        if !a.paths.is_empty() || a.stdin || a.stdin_from_command || a.parent.is_some() {
            let msg = "--profile backs up the profile's components: give no paths, --stdin or --parent";
            return Err(arca::Error::InvalidArgument(msg.into()).into());
        }
        let flags = super::profile::BackupFlags {
            dry_run: a.dry_run,
            force: a.force,
            tags: a.tags,
            host: a.host,
            time: a.time,
        };
        return super::profile::backup(g, &a.profile, flags);
    }
    if a.dry_run {
        g.journal_skip();
    }
    g.journal(|r| journal_backup_target(r, &a));
    let repo = g.open()?;
    let mut patterns = a.excludes.clone();
    for f in &a.exclude_files {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        patterns.extend(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from));
    }
    let opts = BackupOptions {
        paths: a.paths.clone(),
        tags: a.tags,
        host: a.host,
        excludes: Excludes::new(&patterns, a.exclude_if_present)?,
        one_file_system: a.one_file_system,
        io_threads: a.io_threads.map(usize::from),
        dry_run: a.dry_run,
        force: a.force,
        parent: a.parent,
        time: a.time,
        allow_empty: a.allow_empty,
        retry_lock: g.retry_lock,
        on_lock_wait: (!g.quiet).then(|| {
            let wait = g.retry_lock;
            Box::new(move |e: &arca::Error| {
                eprintln!("{e}; waiting up to {} (--retry-lock)", humantime::format_duration(wait))
            }) as Box<dyn Fn(&arca::Error) + Send + Sync>
        }),
        ..Default::default()
    };
    let progress: &'static Progress = Box::leak(Box::default());
    let bar = progress_bar(g, progress);
    let res = if a.stdin {
        if !a.paths.is_empty() {
            bail!("--stdin takes no paths");
        }
        archiver::backup_stdin(&repo, &opts, progress, std::io::stdin().lock(), &a.stdin_filename)
    } else if a.stdin_from_command {
        let argv: Vec<_> = a.paths.iter().map(|p| p.clone().into_os_string()).collect();
        archiver::backup_command(&repo, &opts, progress, &argv, &a.stdin_filename)
    } else {
        archiver::backup(&repo, &opts, progress)
    };
    if let Some((b, h)) = bar {
        b.finish_and_clear();
        let _ = h.join();
    }
    super::warn_index_problems(&repo);
    let res = res?;
    for w in &res.warnings {
        eprintln!("warning: {}: {}", w.path.display(), w.message);
    }
    let s = &res.snapshot.summary;
    g.journal(|r| journal_backup(r, &res));
    if g.json {
        let warnings: Vec<_> = res
            .warnings
            .iter()
            .map(|w| json!({"path": w.path, "message": w.message, "not_saved": w.not_saved}))
            .collect();
        g.print_json(&json!({
            "snapshot": res.id, "dry_run": a.dry_run, "summary": s, "warnings": warnings,
            "adopted_packs": res.adopted_packs,
        }))?;
    } else if !g.quiet {
        if res.adopted_packs > 0 {
            println!("adopted {} pack(s) left by an interrupted backup or prune", res.adopted_packs);
        }
        println!("files: {} new, {} changed, {} unchanged", s.files_new, s.files_changed, s.files_unchanged);
        println!("dirs:  {} new, {} changed, {} unchanged", s.dirs_new, s.dirs_changed, s.dirs_unchanged);
        println!(
            "read {}, added {} ({} stored) in {:.1}s",
            human(s.bytes_read),
            human(s.bytes_added),
            human(s.bytes_stored),
            (s.finished - s.started) as f64 / 1e9
        );
        match res.id {
            Some(id) => println!("snapshot {} saved", id.short()),
            None => println!("dry run: nothing written"),
        }
    }
    Ok(if s.errors > 0 { code::PARTIAL } else { code::OK })
}

/// Label the record with what the backup is of before it runs, so that a failed backup is
/// attributed to its group by `arca status` (a successful one relabels from its snapshot).
fn journal_backup_target(r: &mut arca::ops::journal::Record, a: &BackupArgs) {
    use arca::ops::journal::set_label;
    let paths: Vec<String> = match a.stdin || a.stdin_from_command {
        true => vec![a.stdin_filename.clone()],
        false => a
            .paths
            .iter()
            .filter_map(|p| archiver::make_absolute(p).ok())
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
    };
    set_label(r, "paths", paths.join("\n"));
    let mut tags = a.tags.clone();
    tags.sort();
    tags.dedup();
    if !tags.is_empty() {
        set_label(r, "tags", tags.join(","));
    }
}

/// What a backup's journal record says beyond the dispatcher's defaults.
pub(super) fn journal_backup(r: &mut arca::ops::journal::Record, res: &archiver::BackupResult) {
    use arca::ops::journal::{set_label, set_metric};
    let (snap, s) = (&res.snapshot, &res.snapshot.summary);
    r.snapshots.extend(res.id);
    r.bytes = s.bytes_read;
    r.files = s.files_new + s.files_changed + s.files_unchanged;
    let paths: Vec<_> = snap.paths.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    set_label(r, "paths", paths.join("\n"));
    if !snap.tags.is_empty() {
        set_label(r, "tags", snap.tags.join(","));
    }
    set_metric(r, "bytes_added", s.bytes_added);
    set_metric(r, "bytes_stored", s.bytes_stored);
    set_metric(r, "blobs_added", s.blobs_added);
    set_metric(r, "skipped", s.errors);
    r.errors.extend(res.warnings.iter().map(|w| format!("{}: {}", w.path.display(), w.message)));
}

#[derive(clap::Args, Debug)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    select: SelectArgs,
}

fn snapshot_json(id: &Id, s: &Snapshot) -> serde_json::Value {
    json!({
        "id": id, "short_id": id.short(), "time": time_str(s.time), "time_ns": s.time, "tree": s.tree,
        "paths": s.paths.iter().map(|p| String::from_utf8_lossy(p)).collect::<Vec<_>>(),
        "hostname": s.hostname, "username": s.username, "tags": s.tags, "parent": s.parent,
        "original": s.original, "program": s.program, "summary": s.summary,
    })
}

pub fn snapshots(g: &Global, a: SnapshotsArgs) -> Result<u8> {
    let repo = g.open()?;
    let (all, damaged) = repo.list_snapshots_and_damage()?;
    for (_, e) in &damaged {
        eprintln!("warning: {}", escape_str(&e.to_string()));
    }
    let filter = a.select.filter();
    let list: Vec<_> = all.into_iter().filter(|(_, s)| filter.matches(s)).collect();
    let status = if damaged.is_empty() { code::OK } else { code::INTEGRITY };
    if g.quiet && !g.json {
        // -q: full IDs only, one per line, for scripts.
        for (id, _) in &list {
            println!("{id}");
        }
        return Ok(status);
    }
    let sizes = snapshot_sizes(&repo, &list);
    if g.json {
        let v: Vec<_> = list
            .iter()
            .zip(&sizes)
            .map(|((id, s), size)| {
                let mut v = snapshot_json(id, s);
                v["size"] = json!(size);
                v
            })
            .collect();
        return g.print_json(&v).map(|_| status);
    }
    println!("{:<9} {:<20} {:<16} {:<16} {:>10}  paths", "ID", "time", "host", "tags", "size");
    for ((id, s), size) in list.iter().zip(&sizes) {
        let paths: Vec<_> = s.paths.iter().map(|p| escape(p)).collect();
        let tags: Vec<_> = s.tags.iter().map(|t| escape_str(t)).collect();
        println!(
            "{:<9} {:<20} {:<16} {:<16} {:>10}  {}",
            id.short(),
            time_str(s.time),
            escape_str(&s.hostname),
            tags.join(","),
            size.map_or_else(|| "?".to_string(), human),
            paths.join(" ")
        );
    }
    println!("{} snapshots", list.len());
    Ok(status)
}

/// Each snapshot's size: the bytes of file content it holds (what a restore writes), summed
/// from its trees, each distinct tree read once for the whole listing. The snapshot's summary
/// only records what its backup run read, which is 0 B for an unchanged re-backup. `None` where
/// a tree cannot be read (or the index cannot be loaded).
fn snapshot_sizes(repo: &Repository, list: &[(Id, Snapshot)]) -> Vec<Option<u64>> {
    let Ok(index) = repo.load_index() else { return vec![None; list.len()] };
    let roots: Vec<Id> = list.iter().map(|(_, s)| s.tree).collect();
    arca::repo::walk::content_sizes(repo, &index, &roots)
}

/// Split `SNAP[:PATH]`.
fn split_ref(r: &str) -> (&str, &str) {
    match r.split_once(':') {
        Some((s, p)) => (s, p),
        None => (r, ""),
    }
}

/// Open, load the index, resolve `SNAP[:PATH]` (among the snapshots `sel` selects) to its
/// snapshot and node.
/// An open repository, its index, a snapshot and the node a reference names in it, with the
/// node's path.
pub(super) type Located = (Repository, Index, Id, Snapshot, Node, String);

pub(super) fn locate(g: &Global, r: &str, sel: &SelectArgs) -> Result<Located> {
    let repo = g.open()?;
    locate_in(g, repo, r, sel)
}

/// A shared lock for a long read, so that a prune's commit waits for it; none, with a warning,
/// when `locks/` cannot be written (read-only media).
pub(super) fn shared_lock_for_reading(
    g: &Global,
    repo: &arca::repo::Repository,
) -> Result<Option<arca::repo::lock::LockGuard>> {
    match g.lock(repo, false) {
        Ok(l) => Ok(Some(l)),
        Err(e) if matches!(e.downcast_ref::<arca::Error>(), Some(arca::Error::Io { .. })) => {
            if !g.quiet {
                eprintln!("warning: cannot take a lock ({}); reading without one", super::error_text(&e));
            }
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// [`locate`] for a long read (restore, dump, verify): a shared lock is taken first, so a
/// prune's commit waits for the read instead of removing packs under it. A repository whose
/// `locks/` cannot be written (read-only media) is read without one.
pub(super) fn locate_locked(
    g: &Global,
    r: &str,
    sel: &SelectArgs,
) -> Result<(Located, Option<arca::repo::lock::LockGuard>)> {
    let repo = g.open()?;
    let lock = shared_lock_for_reading(g, &repo)?;
    let located = locate_in(g, repo, r, sel)?;
    g.journal(|rec| {
        rec.snapshots.push(located.2);
        arca::ops::journal::set_label(rec, "path", located.5.clone());
    });
    Ok((located, lock))
}

fn locate_in(g: &Global, repo: Repository, r: &str, sel: &SelectArgs) -> Result<Located> {
    let (snap, path) = split_ref(r);
    let (id, s) = select::resolve(&repo, snap, sel)?;
    let index = g.load_index(&repo)?;
    let node = restore::resolve(&repo, &index, s.tree, path)?;
    let path = format!("/{}", path.trim_matches('/'));
    Ok((repo, index, id, s, node, path))
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
    let path = String::from_utf8_lossy(path);
    let (kind, size, target) = match &n.kind {
        NodeKind::File { size, .. } => ("file", *size, None),
        NodeKind::Dir { .. } => ("dir", 0, None),
        NodeKind::Symlink { target } => ("symlink", 0, Some(String::from_utf8_lossy(target).into_owned())),
        NodeKind::Fifo => ("fifo", 0, None),
        NodeKind::CharDevice { .. } => ("chardev", 0, None),
        NodeKind::BlockDevice { .. } => ("blockdev", 0, None),
        NodeKind::Socket => ("socket", 0, None),
    };
    json!({"path": path, "name": String::from_utf8_lossy(&n.name), "type": kind, "size": size, "mode": n.mode,
           "uid": n.uid, "gid": n.gid, "user": n.user, "group": n.group, "mtime": time_str(n.mtime), "mtime_ns": n.mtime, "link_target": target})
}

/// Print one entry, every name from the repository escaped (see [`escape`]).
fn print_node(long: bool, path: &[u8], n: &Node) {
    println!("{}", node_line(long, path, n));
}

fn node_line(long: bool, path: &[u8], n: &Node) -> String {
    if !long {
        return escape(path);
    }
    let size = match &n.kind {
        NodeKind::File { size, .. } => *size,
        _ => 0,
    };
    let mut line = format!(
        "{}{:04o} {:>8} {:>8} {:>12} {} {}",
        kind_char(n),
        n.mode,
        if n.user.is_empty() { n.uid.to_string() } else { escape_str(&n.user) },
        if n.group.is_empty() { n.gid.to_string() } else { escape_str(&n.group) },
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
    /// SNAP[:PATH]; SNAP is an ID prefix or `latest`.
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
    let (repo, index, _, _, node, path) = locate(g, &a.snapshot, &a.select)?;
    let mut out = Vec::new();
    match node.kind {
        NodeKind::Dir { subtree } => {
            arca::browse::walk(&repo, &index, subtree, path.as_bytes(), !a.no_recursive, &mut |p, n| {
                if g.json {
                    out.push(node_json(p, n));
                } else {
                    print_node(a.long, p, n);
                }
                Ok(())
            })?;
        }
        _ => {
            if g.json {
                out.push(node_json(path.as_bytes(), &node));
            } else {
                print_node(a.long, path.as_bytes(), &node);
            }
        }
    }
    if g.json {
        g.print_json(&out)?;
    }
    Ok(code::OK)
}

#[derive(clap::Args, Debug)]
pub struct FindArgs {
    /// Glob matched against names (or whole paths if it contains `/`).
    pattern: String,
    /// Only search this snapshot (default: all that --host/--tag/--path select).
    #[arg(long)]
    snapshot: Option<String>,
    #[command(flatten)]
    select: SelectArgs,
}

pub fn find(g: &Global, a: FindArgs) -> Result<u8> {
    let repo = g.open()?;
    let m = Excludes::new(std::slice::from_ref(&a.pattern), vec![])?;
    let mut status = code::OK;
    // Snapshots before the index: a backup publishes its index first.
    let snaps = match &a.snapshot {
        Some(r) => vec![select::resolve(&repo, r, &a.select)?],
        None => {
            let (all, damaged) = repo.list_snapshots_and_damage()?;
            for (_, e) in &damaged {
                eprintln!("error: {}", escape_str(&e.to_string()));
                status = code::INTEGRITY;
            }
            let filter = a.select.filter();
            all.into_iter().filter(|(_, s)| filter.matches(s)).collect()
        }
    };
    let index = g.load_index(&repo)?;
    let mut hits = Vec::new();
    for (id, s) in &snaps {
        let res = arca::browse::walk(&repo, &index, s.tree, b"/", true, &mut |p, n| {
            if m.matches(std::path::Path::new(std::ffi::OsStr::from_bytes(p)), std::ffi::OsStr::from_bytes(&n.name)) {
                if g.json {
                    let mut v = node_json(p, n);
                    v["snapshot"] = json!(id);
                    hits.push(v);
                } else {
                    println!("{} {}", id.short(), node_line(true, p, n));
                }
            }
            Ok(())
        });
        // One damaged or oversized snapshot is reported; the others are still searched.
        match res {
            Err(e) if e.is_integrity() && a.snapshot.is_none() => {
                eprintln!("error: snapshot {}: {}", id.short(), escape_str(&e.to_string()));
                status = code::INTEGRITY;
            }
            r => r?,
        }
    }
    if g.json {
        g.print_json(&hits)?;
    }
    Ok(status)
}

use std::os::unix::ffi::OsStrExt;

#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// First snapshot.
    a: String,
    /// Second snapshot.
    b: String,
    #[command(flatten)]
    select: SelectArgs,
}

pub fn diff(g: &Global, a: DiffArgs) -> Result<u8> {
    let repo = g.open()?;
    let (_, sa) = select::resolve(&repo, &a.a, &a.select)?;
    let (_, sb) = select::resolve(&repo, &a.b, &a.select)?;
    let index = g.load_index(&repo)?;
    let mut out = Vec::new();
    arca::browse::diff(&repo, &index, Some(sa.tree), Some(sb.tree), b"/", &mut |c, p| {
        if g.json {
            out.push(json!({"change": c, "path": String::from_utf8_lossy(p)}));
        } else {
            println!("{}    {}", c.marker(), escape(p));
        }
        Ok(())
    })?;
    if g.json {
        g.print_json(&out)?;
    }
    Ok(code::OK)
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
    let ((repo, index, _, _, node, path), _lock) = locate_locked(g, &a.target, &a.select)?;
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    match (&node.kind, a.archive.as_deref()) {
        (_, Some(_)) => {
            let name = path.rsplit('/').next().filter(|s| !s.is_empty()).unwrap_or(".").to_string();
            arca::browse::dump_tar(&repo, &index, &node, name.as_bytes(), &mut w)?;
        }
        (NodeKind::File { .. }, None) => {
            let mut r = arca::browse::ContentReader::new(&repo, &index, &node)?;
            std::io::copy(&mut r, &mut w).map_err(|e| arca::browse::from_io(e, "<stdout>"))?;
        }
        _ => bail!("{} is not a regular file: use --archive tar", escape_str(&path)),
    }
    w.flush()?;
    Ok(code::OK)
}

#[derive(clap::Args, Debug, Clone)]
pub struct RestoreArgs {
    /// SNAP[:PATH]; with PATH, restore that directory's contents (or that file) into the target.
    snapshot: String,
    /// Directory to restore into. For a single file: an existing directory to put it in, or the
    /// path to restore it as.
    #[arg(short, long)]
    target: PathBuf,
    /// Restore only paths matching GLOB (repeatable). A GLOB with `/` matches the path relative to
    /// the restored PATH (`/config`), one without matches names. A GLOB that matches nothing is an
    /// error.
    #[arg(short, long = "include", value_name = "GLOB")]
    include: Vec<String>,
    /// Do not restore paths matching GLOB (repeatable; matched like --include).
    #[arg(short, long = "exclude", value_name = "GLOB")]
    exclude: Vec<String>,
    /// Existing files: compare content and rewrite only if it differs (default), rewrite if size or
    /// mtime differ (fast, trusts metadata), never touch, or always rewrite.
    #[arg(long, value_enum, default_value_t = Overwrite::IfChanged)]
    overwrite: Overwrite,
    /// Remove files and directories that are not in the snapshot from the restored directories
    /// (also directories in the way of a restored entry). Not with --include.
    #[arg(long, conflicts_with = "include")]
    delete: bool,
    /// Show what would be restored, applying the overwrite policy's comparisons; write nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Re-read restored files and compare them with the snapshot.
    #[arg(long)]
    verify: bool,
    /// Never change ownership, even as root.
    #[arg(long)]
    no_owner: bool,
    /// Clear set-user-ID and set-group-ID bits from restored modes.
    #[arg(long)]
    no_setuid: bool,
    /// Do not create character or block device nodes.
    #[arg(long)]
    no_devices: bool,
    /// Do not create FIFOs.
    #[arg(long)]
    no_specials: bool,
    /// Do not restore extended attributes whose names match GLOB (repeatable), e.g.
    /// 'security.*' or 'trusted.*'; '*' restores none.
    #[arg(long = "exclude-xattr", value_name = "GLOB")]
    exclude_xattr: Vec<String>,
    #[command(flatten)]
    select: SelectArgs,
    /// With --profile: restore the snapshot of each component into TARGET/COMPONENT.
    #[command(flatten)]
    profile: super::profile::ProfileArgs,
}

fn xattr_globs(pats: &[String]) -> Result<Option<globset::GlobSet>> {
    if pats.is_empty() {
        return Ok(None);
    }
    let mut b = globset::GlobSetBuilder::new();
    for p in pats {
        b.add(globset::Glob::new(p).with_context(|| format!("--exclude-xattr {p:?}"))?);
    }
    Ok(Some(b.build()?))
}

pub fn restore(g: &Global, a: RestoreArgs) -> Result<u8> {
    if a.dry_run {
        g.journal_skip();
    }
    if a.profile.is_set() {
        // `latest` (or an ID) among each component's snapshots, into its own directory.
        let op = (!a.dry_run).then_some(arca::ops::journal::Op::Restore);
        return super::profile::each_component(g, &a.profile, op, |g, t| {
            let mut b = a.clone();
            b.target = a.target.join(&t.name);
            b.select = b.select.clone().with_tags(&t.filter.tags);
            restore_one(g, b)
        });
    }
    let (status, doc) = restore_one(g, a)?;
    if g.json {
        g.print_json(&doc)?;
    }
    Ok(status)
}

/// Restore one snapshot; prints the text summary, returns the exit code and the JSON summary.
fn restore_one(g: &Global, a: RestoreArgs) -> Result<(u8, serde_json::Value)> {
    let started = std::time::Instant::now();
    let ((repo, index, id, _, node, path), _lock) = locate_locked(g, &a.snapshot, &a.select)?;
    let opts = RestoreOptions {
        target: a.target.clone(),
        include: a.include.clone(),
        exclude: a.exclude.clone(),
        overwrite: a.overwrite,
        dry_run: a.dry_run,
        verify: a.verify,
        delete: a.delete,
        no_devices: a.no_devices,
        no_specials: a.no_specials,
        meta: restore::MetaOptions {
            no_owner: a.no_owner,
            no_setuid: a.no_setuid,
            exclude_xattrs: xattr_globs(&a.exclude_xattr)?,
        },
        list_changes: false,
        only: None,
        before_verify: None,
    };
    let snap_path = if path == "/" { "" } else { path.as_str() };
    let progress: &'static Progress = Box::leak(Box::default());
    let bar = progress_bar(g, progress);
    let stats = restore::restore(&repo, &index, &node, snap_path, &opts, progress);
    if let Some((b, h)) = bar {
        b.finish_and_clear();
        let _ = h.join();
    }
    let stats = stats?;
    let elapsed = started.elapsed().as_secs_f64();
    g.journal(|r| {
        (r.bytes, r.files) = (stats.bytes, stats.files);
        arca::ops::journal::set_label(r, "target", a.target.to_string_lossy());
        r.errors.extend(stats.errors.iter().cloned());
    });
    for e in &stats.errors {
        eprintln!("error: {e}");
    }
    for m in &stats.mismatched {
        let what = if m.change == arca::browse::Change::Metadata { "metadata" } else { "content" };
        eprintln!("error: {}: restored {what} differs from the snapshot", m.path.display());
    }
    let doc = json!({"snapshot": id, "target": a.target, "dry_run": a.dry_run, "seconds": elapsed, "stats": stats});
    if !g.json && !g.quiet {
        let extra = if stats.deleted > 0 {
            format!(", {} {}", stats.deleted, if a.dry_run { "to delete" } else { "deleted" })
        } else {
            String::new()
        };
        println!(
            "{} {} files ({}), {} dirs, {} other; {} files already up to date{extra}; {:.1} s",
            if a.dry_run { "would restore" } else { "restored" },
            stats.files,
            human(stats.bytes),
            stats.dirs,
            stats.others,
            stats.files_skipped,
            elapsed
        );
        if stats.conflicts > 0 {
            println!("{} entries not restored: something restore does not remove is in the way", stats.conflicts);
        }
    }
    let status = if stats.damaged > 0 || !stats.mismatched.is_empty() {
        code::INTEGRITY
    } else if stats.errors.len() as u64 > stats.conflicts {
        code::ERROR
    } else if stats.conflicts > 0 {
        code::PARTIAL
    } else {
        code::OK
    };
    Ok((status, doc))
}

/// A check's record: what was read and what was found.
fn journal_check(rec: &mut arca::ops::journal::Record, r: &arca::check::CheckReport, a: &CheckArgs) {
    use arca::ops::journal::{set_label, set_metric};
    let read = match (&a.read_data_subset, a.read_data) {
        (Some(s), _) => s.clone(),
        (None, true) => "all".into(),
        (None, false) => "none".into(),
    };
    set_label(rec, "read_data", read);
    (rec.bytes, rec.files) = (r.bytes_read, 0);
    // Every snapshot checked: with all data read and no problem, these are verified
    // (`latest-verified`, `status`).
    rec.snapshots.extend(r.snapshot_ids.iter().copied());
    set_metric(rec, "problems", r.errors.len() as u64);
    set_metric(rec, "packs_read", r.packs_read as u64);
    set_metric(rec, "snapshots", r.snapshots as u64);
    rec.errors.extend(r.errors.iter().map(|e| format!("{}: {}", e.object, e.message)));
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Also decrypt and verify every blob.
    #[arg(long)]
    read_data: bool,
    /// Verify only a subset of packs: N/M or P%.
    #[arg(long, value_name = "N/M|P%")]
    read_data_subset: Option<String>,
}

pub fn check(g: &Global, a: CheckArgs) -> Result<u8> {
    let repo = g.open()?;
    let _lock = g.lock(&repo, false)?;
    let read_data = match (&a.read_data_subset, a.read_data) {
        (Some(s), _) => Some(Subset::parse(s)?),
        (None, true) => Some(Subset::All),
        (None, false) => None,
    };
    let r = arca::check::check(&repo, &CheckOptions { read_data })?;
    g.journal(|rec| journal_check(rec, &r, &a));
    // A subset can select no pack at all (1/30 of a repository of 10 packs, say): say so.
    let none_read = read_data.is_some() && r.packs > 0 && r.packs_read == 0;
    if g.json {
        g.print_json(&r)?;
    } else {
        for w in &r.warnings {
            eprintln!("warning: {}: {}", escape_str(&w.object), escape_str(&w.message));
        }
        if none_read {
            eprintln!(
                "warning: --read-data-subset {} selected none of the {} packs: no data was read",
                a.read_data_subset.as_deref().unwrap_or_default(),
                r.packs
            );
        }
        for e in &r.errors {
            println!("error: {}: {}", escape_str(&e.object), escape_str(&e.message));
        }
        for (snap, paths) in &r.affected {
            println!("snapshot {} is damaged; affected paths:", &snap[..8]);
            for p in paths {
                println!("  {}", escape_str(p));
            }
        }
        for d in &r.damaged_files {
            let verdict = if d.repairable { "REPAIRABLE from parity" } else { "NOT repairable from parity" };
            println!("{}: {verdict}: {}", escape_str(&d.object), escape_str(&d.detail));
        }
        if r.damaged_files.iter().any(|d| d.repairable) {
            println!("run `arca repair packs` to rebuild the repairable files");
        }
        if !g.quiet {
            let data = match read_data {
                None => "data not read".to_string(),
                Some(_) => format!(
                    "data of {} of {} packs read ({}), {} blobs verified",
                    r.packs_read,
                    r.packs,
                    human(r.bytes_read),
                    r.blobs_read
                ),
            };
            println!(
                "checked {} snapshots, {} trees, {} packs; {}: {}",
                r.snapshots,
                r.trees,
                r.packs,
                data,
                if r.ok() { "no errors" } else { "ERRORS FOUND" }
            );
        }
    }
    Ok(if r.ok() { code::OK } else { code::INTEGRITY })
}
