//! `arca copy`: copy snapshots to another repository (an off-site copy), which has its own keys.

use super::output::escape_str;
use super::select::{self, SelectArgs};
use super::{code, human, password, Global};
use anyhow::{Context, Result};
use arca::backend::{Backend, FileType};
use arca::lifecycle::copy::{self, CopiedSnapshot, CopyOptions, CopyReport, Outcome};
use arca::ops::journal::{self, set_label, set_metric, Op};
use arca::repo::Repository;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

/// Options of `arca copy`.
#[derive(clap::Args, Debug)]
pub struct CopyArgs {
    /// Snapshots to copy: ID prefixes or `latest` (default: every snapshot the --host, --tag and
    /// --path filters select).
    snapshots: Vec<String>,
    /// The destination repository (a directory or `s3:…` location); it has its own password and keys.
    #[arg(long = "to", env = "ARCA_TO_REPOSITORY", value_name = "DIR")]
    to: Option<PathBuf>,
    /// Read the destination's password from the first line of this file. Without this or
    /// --to-password-command, it is the value of ARCA_TO_PASSWORD, or is asked for.
    #[arg(long, env = "ARCA_TO_PASSWORD_FILE", value_name = "FILE")]
    to_password_file: Option<PathBuf>,
    /// Run this shell command and use the first line it prints as the destination's password.
    #[arg(long, env = "ARCA_TO_PASSWORD_COMMAND", value_name = "CMD")]
    to_password_command: Option<String>,
    /// Decide what would be copied and count the blobs and bytes; write nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    #[command(flatten)]
    select: SelectArgs,
}

fn usage(msg: String) -> anyhow::Error {
    arca::Error::InvalidArgument(msg).into()
}

/// Open the destination, with every error naming it: not there (exit 10), wrong password (12),
/// a format version this program cannot read.
fn open_destination(g: &Global, a: &CopyArgs) -> Result<Repository> {
    let dir =
        a.to.clone().ok_or_else(|| usage("no destination given: use --to DIR or set ARCA_TO_REPOSITORY".into()))?;
    if let Some(src) = &g.repo {
        if same_dir(src, &dir) {
            return Err(usage(format!("{} is the source repository itself", dir.display())));
        }
    }
    let name = || format!("destination repository {}", dir.display());
    let backend: Arc<dyn Backend> = arca::backend::open(&dir, g.connections as usize).with_context(name)?;
    // Check for a repository before asking for its password.
    if !backend.exists(FileType::Config, "config").with_context(name)? {
        let e = arca::Error::NotARepository(format!("{}: no config file", backend.location()));
        return Err(anyhow::Error::from(e).context(name()));
    }
    let pw = password::other_password(
        a.to_password_command.as_deref(),
        a.to_password_file.as_deref(),
        "ARCA_TO_PASSWORD",
        ["--to-password-command", "--to-password-file"],
        "destination repository",
    )?;
    Repository::open(backend, &pw).with_context(name)
}

/// A shared lock on the source, so a prune's commit waits for the copy; a source whose `locks/`
/// cannot be written (read-only media) is read without one, as restore does.
fn source_lock(g: &Global, src: &Repository) -> Result<Option<arca::repo::lock::LockGuard>> {
    match g.lock(src, false) {
        Ok(l) => Ok(Some(l)),
        Err(e) if matches!(e.downcast_ref::<arca::Error>(), Some(arca::Error::Io { .. })) => {
            if !g.quiet {
                eprintln!("warning: cannot lock the source ({}); reading without a lock", super::error_text(&e));
            }
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn same_dir(a: &std::path::Path, b: &std::path::Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// Run `arca copy`. The source's journal gets a `copy-from` record (written by the
/// dispatcher), the destination's a `copy-to` record written here; both whatever the outcome,
/// neither for a dry run.
pub fn run(g: &Global, a: CopyArgs) -> Result<u8> {
    let src = g.open()?;
    if a.dry_run {
        g.journal_skip();
    }
    let dst = open_destination(g, &a)?;
    let ids = [arca::id::hex(src.repo_id()), arca::id::hex(dst.repo_id())];
    let mut done = Vec::new();
    let mut to_record = journal::start(Op::CopyTo);
    let result = copy_between(g, &a, &src, &dst, &mut done);
    let fill = |r: &mut arca::ops::journal::Record, mine: bool| {
        set_label(r, "source", ids[0].clone());
        set_label(r, "destination", ids[1].clone());
        let copied = done.iter().filter(|c| c.outcome == Outcome::Copied);
        r.snapshots = match mine {
            true => copied.map(|c| c.source).collect(),
            false => copied.filter_map(|c| c.destination).collect(),
        };
        r.bytes = done.iter().map(|c| c.bytes).sum();
        set_metric(r, "blobs", done.iter().map(|c| c.blobs).sum());
        set_metric(r, "bytes", r.bytes);
        set_metric(r, "skipped", done.iter().filter(|c| c.outcome == Outcome::Skipped).count() as u64);
        r.errors.extend(done.iter().filter_map(|c| c.error.clone()));
    };
    g.journal(|r| fill(r, true));
    if !a.dry_run && !matches!(&result, Err(e) if is_same_repository(e)) {
        let r = &mut to_record;
        fill(r, false);
        let exit = match &result {
            Ok(c) => *c,
            Err(e) => {
                r.errors.push(super::error_text(e));
                super::exit_code(e)
            }
        };
        journal::finish(r, exit);
        if let Err(e) = journal::append(&dst, r) {
            eprintln!("warning: could not write the journal record of this copy to the destination: {e}");
        }
    }
    result
}

fn is_same_repository(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<arca::Error>(), Some(arca::Error::InvalidArgument(m)) if m.contains("same repository ID"))
}

/// The copy proper; `done` collects each snapshot as it is committed or skipped, so that the
/// journal records name them even when a later snapshot fails.
fn copy_between(
    g: &Global,
    a: &CopyArgs,
    src: &Repository,
    dst: &Repository,
    done: &mut Vec<CopiedSnapshot>,
) -> Result<u8> {
    if src.repo_id() == dst.repo_id() {
        return Err(usage(format!(
            "the destination {} is the source repository (same repository ID)",
            a.to.as_deref().unwrap_or_else(|| std::path::Path::new("?")).display()
        )));
    }
    let _src_lock = source_lock(g, src)?;
    let _dst_lock = match a.dry_run {
        true => None,
        false => Some(g.lock(dst, false).context("destination repository")?),
    };
    let t = select::targets(src, &a.snapshots, &a.select)?;
    let opts = CopyOptions { dry_run: a.dry_run };
    let (json, quiet) = (g.json, g.quiet);
    let report = copy::copy(src, dst, &t.all, &t.chosen, opts, &mut |c| {
        if !json && !quiet {
            print_one(c, opts.dry_run)
        }
        done.push(c.clone());
    })?;
    super::warn_index_problems(src);
    super::warn_index_problems(dst);
    for (_, e) in &t.damaged {
        eprintln!("error: {}; it was not copied", escape_str(&e.to_string()));
    }
    let damaged = report.snapshots.iter().filter(|s| s.outcome == Outcome::Damaged);
    for s in damaged.clone() {
        eprintln!("error: {}", escape_str(s.error.as_deref().unwrap_or("damaged")));
    }
    let status = if t.damaged.is_empty() && damaged.count() == 0 { code::OK } else { code::INTEGRITY };
    if g.json {
        g.print_json(&json!({
            "source": arca::id::hex(src.repo_id()),
            "destination": arca::id::hex(dst.repo_id()),
            "report": report,
        }))?;
    } else if !g.quiet {
        print_totals(&report);
    }
    Ok(status)
}

fn print_one(c: &CopiedSnapshot, dry_run: bool) {
    match (&c.outcome, c.destination) {
        (Outcome::Skipped, Some(d)) => {
            println!("snapshot {} skipped (already in destination as {})", c.source.short(), d.short())
        }
        (Outcome::Copied, Some(d)) => println!("copied {} -> {}", c.source.short(), d.short()),
        (Outcome::Damaged, _) => println!("snapshot {} NOT copied: damaged (see below)", c.source.short()),
        _ if dry_run => println!("would copy {} ({} blobs, {})", c.source.short(), c.blobs, human(c.bytes)),
        _ => println!("copied {}", c.source.short()),
    }
}

fn print_totals(r: &CopyReport) {
    let copied = r.snapshots.iter().filter(|s| s.outcome == Outcome::Copied).count();
    let skipped = r.snapshots.iter().filter(|s| s.outcome == Outcome::Skipped).count();
    if r.adopted_packs > 0 {
        println!("adopted {} pack(s) left by an interrupted copy or backup", r.adopted_packs);
    }
    match r.dry_run {
        true => println!(
            "would copy {copied} snapshot(s), skip {skipped}; would transfer {} blobs, {}",
            r.blobs,
            human(r.bytes)
        ),
        false => println!(
            "copied {copied} snapshot(s), skipped {skipped}; transferred {} blobs, {} ({} stored)",
            r.blobs,
            human(r.bytes),
            human(r.stored_bytes)
        ),
    }
}
