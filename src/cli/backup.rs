//! `arca backup`.

use super::output::escape_str;
use super::{component_error, human, progress, select, Global};
use anyhow::Result;
use arca::archiver::{FilesFrom, SelectionOptions};
use arca::ops::backup::{self, BackupRequest, What};
use arca::ops::outcome::Run;
use arca::ops::HasOutcome;
use serde_json::json;
use std::path::PathBuf;

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
    /// Tag the snapshot: `--tag a,b` gives two tags, as does `--tag a --tag b`.
    #[arg(long = "tag", value_name = "TAG[,TAG...]", value_parser = select::parse_tag)]
    tags: Vec<String>,
    /// Host name to record.
    #[arg(long)]
    host: Option<String>,
    #[command(flatten)]
    patterns: select::ExcludeArgs,
    /// Leave out the contents of cache directories: those holding a CACHEDIR.TAG file that
    /// starts with the standard's signature (the tag file itself is kept).
    #[arg(long)]
    exclude_caches: bool,
    /// Leave out the contents of directories holding a file NAME (repeatable); with `:HEADER`,
    /// only if the file starts with HEADER. The file itself is kept.
    #[arg(long = "exclude-if-present", value_name = "NAME[:HEADER]")]
    exclude_if_present: Vec<String>,
    /// Leave out files larger than SIZE (bytes, or with a unit k/K, m/M, g/G, t/T: 1024-based).
    #[arg(long, value_name = "SIZE", value_parser = arca::lifecycle::prune::parse_size)]
    exclude_larger_than: Option<u64>,
    /// Back up the files a list names, one glob per line (repeatable; `-`: standard input):
    /// lines trimmed, blank lines and `#` comments skipped, globs expanded.
    #[arg(long = "files-from", value_name = "FILE")]
    files_from: Vec<PathBuf>,
    /// Back up the files a list names, one path per line taken as is (only empty lines skipped).
    #[arg(long = "files-from-verbatim", value_name = "FILE")]
    files_from_verbatim: Vec<PathBuf>,
    /// Back up the files a list names, each ended by a NUL byte (`find -print0`).
    #[arg(long = "files-from-raw", value_name = "FILE")]
    files_from_raw: Vec<PathBuf>,
    /// Do not cross filesystem boundaries: a mount point below a path is saved as an empty
    /// directory (paths given on other filesystems are each backed up whole).
    #[arg(short = 'x', long)]
    one_file_system: bool,
    /// Write no snapshot if nothing changed against the parent snapshot.
    #[arg(long)]
    skip_if_unchanged: bool,
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
    #[arg(long, value_name = "TIME", value_parser = arca::localtime::parse_time)]
    time: Option<i64>,
}

pub fn run(g: &Global, a: BackupArgs) -> Result<u8> {
    let files_from = FilesFrom { patterns: a.files_from, verbatim: a.files_from_verbatim, raw: a.files_from_raw };
    let what = match (a.stdin, a.stdin_from_command, a.paths.is_empty()) {
        (true, _, false) => return Err(arca::Error::InvalidArgument("--stdin takes no paths".into()).into()),
        (true, _, _) => What::Stdin(a.stdin_filename),
        (_, true, _) => What::Command(a.paths.iter().map(|p| p.clone().into_os_string()).collect(), a.stdin_filename),
        (_, _, true) if files_from.is_empty() => What::Profile,
        (_, _, true) => What::Paths(vec![]),
        (_, _, false) => What::Paths(a.paths),
    };
    let req = BackupRequest {
        what,
        tags: select::split_tags(&a.tags),
        host: a.host,
        selection: SelectionOptions {
            patterns: a.patterns.options(),
            exclude_caches: a.exclude_caches,
            exclude_if_present: a.exclude_if_present,
            exclude_larger_than: a.exclude_larger_than,
        },
        files_from,
        skip_if_unchanged: a.skip_if_unchanged,
        one_file_system: a.one_file_system,
        dry_run: a.dry_run,
        force: a.force,
        parent: a.parent,
        time: a.time,
        allow_empty: a.allow_empty,
        io_threads: a.io_threads.map(usize::from),
    };
    let mut report = {
        let (progress, _live) = progress::start(g, progress::Kind::Backup, true);
        backup::backup(&g.scope, &req, &progress)?
    };
    // A plain backup that failed fails the command, as any error does.
    if !g.scope.has_profile() && report.runs.iter().all(|r| r.result.is_err()) {
        if let Some(Err(e)) = report.runs.pop().map(|r| r.result) {
            return Err(e.into());
        }
    }
    let docs: Vec<_> = report.runs.iter().map(|r| show(g, r, req.dry_run)).collect();
    for h in &report.hooks {
        eprintln!("{}: {}", if h.stage == "on-failure" { "warning" } else { "arca" }, escape_str(&h.error));
    }
    let code = report.outcome().exit_code();
    if g.json {
        match (&g.scope.profile, &docs[..]) {
            (None, [doc]) => g.print_json(doc)?,
            (p, _) => g.print_json(&json!({
                "message_type": "summary", "profile": p.as_ref().map(|p| &p.name), "components": docs,
                "hooks": report.hooks, "exit_code": code,
            }))?,
        }
    }
    Ok(code)
}

/// Print one snapshot's backup (warnings, summary) and return its JSON document.
fn show(g: &Global, r: &Run<arca::archiver::BackupResult>, dry_run: bool) -> serde_json::Value {
    let name = r.component.as_deref();
    let res = match &r.result {
        Ok(res) => res,
        Err(e) => {
            let mut doc = component_error(g, name, e);
            doc["component"] = json!(name);
            return doc;
        }
    };
    let prefix = name.map_or(String::new(), |n| format!("{n}: "));
    for w in &res.warnings {
        eprintln!("warning: {prefix}{}: {}", escape_str(&w.path.to_string_lossy()), escape_str(&w.message));
    }
    let s = &res.snapshot.summary;
    if g.talk() {
        if res.adopted_packs > 0 {
            println!("adopted {} pack(s) left by an interrupted backup or prune", res.adopted_packs);
        }
        let saved = match res.id {
            Some(id) => format!("snapshot {} saved", id.short()),
            None if res.skipped_unchanged => "skipped creating snapshot: nothing changed".into(),
            None => "dry run: nothing written".into(),
        };
        match name {
            Some(n) => println!(
                "component {n}: {saved}; read {}, added {} ({} files new, {} changed, {} unchanged)",
                human(s.bytes_read),
                human(s.bytes_added),
                s.files_new,
                s.files_changed,
                s.files_unchanged
            ),
            None => {
                println!("files: {} new, {} changed, {} unchanged", s.files_new, s.files_changed, s.files_unchanged);
                println!("dirs:  {} new, {} changed, {} unchanged", s.dirs_new, s.dirs_changed, s.dirs_unchanged);
                println!(
                    "read {}, added {} ({} stored) in {:.1}s",
                    human(s.bytes_read),
                    human(s.bytes_added),
                    human(s.bytes_stored),
                    (s.finished - s.started) as f64 / 1e9
                );
                println!("{saved}");
            }
        }
    }
    let warnings: Vec<_> =
        res.warnings.iter().map(|w| json!({"path": w.path, "message": w.message, "not_saved": w.not_saved})).collect();
    json!({
        "message_type": "summary", "component": name, "snapshot": res.id, "dry_run": dry_run, "summary": s, "warnings": warnings,
        "adopted_packs": res.adopted_packs, "skipped_unchanged": res.skipped_unchanged,
        "code": r.outcome().exit_code(),
    })
}
