//! `arca copy`: copy snapshots to another repository (an off-site copy), which has its own keys.

use super::output::{escape_str, plural};
use super::select::SelectArgs;
use super::{human, Global};
use anyhow::Result;
use arca::lifecycle::copy::{CopiedSnapshot, CopyReport, Outcome};
use arca::ops::copy::{self, CopyRequest};
use arca::ops::{HasOutcome, PasswordSource};
use serde_json::json;
use std::path::PathBuf;

/// Options of `arca copy`.
#[derive(clap::Args, Debug)]
pub struct CopyArgs {
    /// Snapshots to copy: ID prefixes or `latest` (default: every snapshot the --host, --tag and
    /// --path filters select).
    snapshots: Vec<String>,
    /// The destination repository (a directory or a remote location such as `s3:…` or `sftp:…`); it
    /// has its own password and keys.
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

/// Run `arca copy`.
pub fn run(g: &Global, a: CopyArgs) -> Result<u8> {
    let to_password = PasswordSource {
        command: a.to_password_command,
        file: a.to_password_file,
        env: Some("ARCA_TO_PASSWORD"),
        flags: ["--to-password-command", "--to-password-file"],
        what: "destination repository",
        prompt: Some(std::sync::Arc::new(super::prompt)),
    };
    let meter = std::sync::Arc::new(arca::progress::Meter::default());
    let (snapshots, filter, progress) = (a.snapshots, a.select.filter(), Some(meter.clone()));
    let req = CopyRequest { snapshots, filter, to: a.to, to_password, dry_run: a.dry_run, progress };
    let talk = g.talk();
    let bar = super::Spinner::new(g, move || format!("copying data: {}", super::progress::meter(&meter)));
    let c = copy::copy(&g.scope, &req, &mut |s| {
        if talk {
            bar.suspend(|| print_one(s, req.dry_run))
        }
    });
    drop(bar);
    let c = c?;
    for (_, e) in &c.damaged {
        eprintln!("error: {}; it was not copied", escape_str(&e.to_string()));
    }
    for s in c.report.snapshots.iter().filter(|s| s.outcome == Outcome::Damaged) {
        eprintln!("error: {}", escape_str(s.error.as_deref().unwrap_or("damaged")));
    }
    if g.json {
        g.print_json(&json!({"source": c.ids[0], "destination": c.ids[1], "report": c.report}))?;
    } else if !g.quiet {
        print_totals(&c.report);
    }
    Ok(c.outcome().exit_code())
}

fn print_one(c: &CopiedSnapshot, dry_run: bool) {
    match (&c.outcome, c.destination) {
        (Outcome::Skipped, Some(d)) => {
            println!("snapshot {} skipped (already in destination as {})", c.source.short(), d.short())
        }
        (Outcome::Copied, Some(d)) => println!("copied {} -> {}", c.source.short(), d.short()),
        (Outcome::Damaged, _) => println!("snapshot {} NOT copied: damaged (see below)", c.source.short()),
        _ if dry_run => {
            println!("would copy {} ({}, {})", c.source.short(), plural(c.blobs, "blob", "blobs"), human(c.bytes))
        }
        _ => println!("copied {}", c.source.short()),
    }
}

fn print_totals(r: &CopyReport) {
    let copied = r.snapshots.iter().filter(|s| s.outcome == Outcome::Copied).count();
    let skipped = r.snapshots.iter().filter(|s| s.outcome == Outcome::Skipped).count();
    if r.adopted_packs > 0 {
        println!("adopted {} left by an interrupted copy or backup", plural(r.adopted_packs as u64, "pack", "packs"));
    }
    match r.dry_run {
        true => {
            println!(
                "would copy {}, skip {skipped}; would transfer {}, {}",
                plural(copied as u64, "snapshot", "snapshots"),
                plural(r.blobs, "blob", "blobs"),
                human(r.bytes)
            )
        }
        false => println!(
            "copied {}, skipped {skipped}; transferred {}, {} ({} stored)",
            plural(copied as u64, "snapshot", "snapshots"),
            plural(r.blobs, "blob", "blobs"),
            human(r.bytes),
            human(r.stored_bytes)
        ),
    }
}
