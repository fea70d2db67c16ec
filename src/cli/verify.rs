//! `arca verify SNAP[:PATH] DIR`: does a restored (or live) directory match the snapshot?
//!
//! A dry-run restore with content comparison: every file is read and its chunks hashed with the
//! repository's key, so "identical" means the bytes, not just sizes and times.

use super::output::{escape, escape_str};
use super::{code, snap, Global};
use anyhow::Result;
use arca::archiver::Progress;
use arca::restore::{self, Overwrite, RestoreOptions};
use serde_json::json;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// SNAP[:PATH]: the snapshot, or the directory or file in it, to compare with.
    snapshot: String,
    /// The directory (or file) to check, as `restore --target` would have written it.
    dir: PathBuf,
    /// Compare only paths matching GLOB (repeatable; as for restore). Extra entries are then not
    /// reported.
    #[arg(short, long = "include", value_name = "GLOB")]
    include: Vec<String>,
    /// Ignore paths matching GLOB (repeatable; as for restore).
    #[arg(short, long = "exclude", value_name = "GLOB")]
    exclude: Vec<String>,
    /// Do not compare ownership (it is compared only when run as root anyway).
    #[arg(long)]
    no_owner: bool,
    #[command(flatten)]
    select: super::select::SelectArgs,
}

pub fn verify(g: &Global, a: VerifyArgs) -> Result<u8> {
    let ((repo, index, id, _, node, path), _lock) = snap::locate_locked(g, &a.snapshot, &a.select)?;
    let opts = RestoreOptions {
        target: a.dir.clone(),
        include: a.include.clone(),
        exclude: a.exclude.clone(),
        overwrite: Overwrite::IfChanged,
        dry_run: true,
        delete: a.include.is_empty(),
        meta: restore::MetaOptions { no_owner: a.no_owner, ..Default::default() },
        list_changes: true,
        ..Default::default()
    };
    let snap_path = if path == "/" { "" } else { path.as_str() };
    let progress: &'static Progress = Box::leak(Box::default());
    let bar = snap::progress_bar(g, progress);
    let stats = restore::restore(&repo, &index, &node, snap_path, &opts, progress);
    if let Some((b, h)) = bar {
        b.finish_and_clear();
        let _ = h.join();
    }
    let stats = stats?;
    for e in &stats.errors {
        eprintln!("error: {}", escape_str(e));
    }
    if g.json {
        g.print_json(&json!({"snapshot": id, "dir": a.dir, "identical": stats.changes.is_empty() && stats.errors.is_empty(), "changes": stats.changes}))?;
    } else {
        for c in &stats.changes {
            println!("{} {}", c.change.marker(), escape(c.path.as_os_str().as_bytes()));
        }
        if !g.quiet {
            match stats.changes.len() {
                0 => println!("{} matches snapshot {}", a.dir.display(), id.short()),
                n => println!("{n} differences from snapshot {}", id.short()),
            }
        }
    }
    Ok(if stats.damaged > 0 {
        code::INTEGRITY
    } else if !stats.errors.is_empty() {
        code::ERROR
    } else if !stats.changes.is_empty() {
        code::DIFFERS
    } else {
        code::OK
    })
}
