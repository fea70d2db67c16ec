//! `arca backup`.

use super::output::escape_str;
use super::{component_error, human, select, Global, Spinner};
use anyhow::Result;
use arca::ops::backup::{self, BackupRequest, What};
use arca::ops::outcome::Run;
use arca::ops::HasOutcome;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

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
    #[arg(long, value_name = "TIME", value_parser = arca::localtime::parse_time)]
    time: Option<i64>,
}

pub fn run(g: &Global, a: BackupArgs) -> Result<u8> {
    let what = match (a.stdin, a.stdin_from_command, a.paths.is_empty()) {
        (true, _, false) => return Err(arca::Error::InvalidArgument("--stdin takes no paths".into()).into()),
        (true, _, _) => What::Stdin(a.stdin_filename),
        (_, true, _) => What::Command(a.paths.iter().map(|p| p.clone().into_os_string()).collect(), a.stdin_filename),
        (_, _, true) => What::Profile,
        (_, _, false) => What::Paths(a.paths),
    };
    let req = BackupRequest {
        what,
        tags: a.tags,
        host: a.host,
        excludes: a.excludes,
        exclude_files: a.exclude_files,
        exclude_if_present: a.exclude_if_present,
        one_file_system: a.one_file_system,
        dry_run: a.dry_run,
        force: a.force,
        parent: a.parent,
        time: a.time,
        allow_empty: a.allow_empty,
        io_threads: a.io_threads.map(usize::from),
    };
    let progress = Arc::new(arca::archiver::Progress::default());
    let mut report = {
        let _bar = Spinner::files(g, &progress);
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
                "profile": p.as_ref().map(|p| &p.name), "components": docs, "hooks": report.hooks, "exit_code": code,
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
        "component": name, "snapshot": res.id, "dry_run": dry_run, "summary": s, "warnings": warnings,
        "adopted_packs": res.adopted_packs, "code": r.outcome().exit_code(),
    })
}
