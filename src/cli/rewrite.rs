//! `arca rewrite`: copies of snapshots without the paths the exclude patterns match.

use super::output::escape_str;
use super::select::{ExcludeArgs, SelectArgs};
use super::Global;
use anyhow::Result;
use arca::lifecycle::rewrite::RewriteOptions;
use arca::ops::rewrite::{self, RewriteRequest};
use arca::ops::HasOutcome;

/// Options of `arca rewrite`.
#[derive(clap::Args, Debug)]
pub struct RewriteArgs {
    /// Snapshots to rewrite: ID prefixes or `latest` (default: every snapshot the --host, --tag
    /// and --path filters select).
    snapshots: Vec<String>,
    // The paths these patterns match go, with backup's rules: a directory with everything
    // below it.
    #[command(flatten)]
    patterns: ExcludeArgs,
    /// Remove each original snapshot once its copy is written (otherwise the copy is tagged
    /// `rewrite` and both stay). The removed files' data goes at the next `prune`.
    #[arg(long)]
    forget: bool,
    /// List what would be removed from which snapshot; write and remove nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    #[command(flatten)]
    select: SelectArgs,
}

/// Run `arca rewrite`.
pub fn run(g: &Global, a: RewriteArgs) -> Result<u8> {
    let req = RewriteRequest {
        snapshots: a.snapshots,
        filter: a.select.filter(),
        excludes: a.patterns.options(),
        options: RewriteOptions { dry_run: a.dry_run, forget: a.forget },
    };
    let r = rewrite::rewrite(&g.scope, &req)?;
    for (_, e) in &r.damaged {
        eprintln!("error: {}; it was not rewritten", escape_str(&e.to_string()));
    }
    let rep = &r.report;
    if g.json {
        g.print_json(rep)?;
    } else if !g.quiet {
        for s in &rep.rewritten {
            let paths = s.removed.len();
            match s.new {
                Some(new) => {
                    let gone = if s.forgotten { ", original removed" } else { "" };
                    println!("snapshot {} -> {}: {paths} path(s) removed{gone}", s.old.short(), new.short());
                }
                None => {
                    println!("snapshot {}: would remove {paths} path(s):", s.old.short());
                    for p in &s.removed {
                        println!("  {}", escape_str(&String::from_utf8_lossy(p)));
                    }
                }
            }
        }
        let verb = if a.dry_run { "would be rewritten" } else { "rewritten" };
        println!("{} snapshot(s) {verb}, {} unchanged", rep.rewritten.len(), rep.unchanged);
    }
    Ok(r.outcome().exit_code())
}
