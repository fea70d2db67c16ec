//! `arca prune`: reclaim space (format-spec/17-consistency.md §17.7).

use super::{code, human, Global};
use anyhow::Result;
use arca::lifecycle::prune::{self, MaxUnused, PlanStats, Progress, PruneOptions, PruneReport, Step};
use arca::repo::Repository;
use serde_json::json;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// How much to repack; shared by `arca prune` and `arca forget --prune`.
#[derive(clap::Args, Debug, Clone)]
pub struct PruneOpts {
    /// Unused space to tolerate after prune: a percentage of the repository (`5%`), a size
    /// (`200M`), `0` to repack every partly used pack, or `unlimited` to repack nothing.
    #[arg(long, value_name = "LIMIT", default_value = "5%", value_parser = parse_max_unused)]
    pub max_unused: MaxUnused,
    /// Read at most this much of partly used packs for repacking (e.g. `2G`).
    #[arg(long, value_name = "SIZE", value_parser = prune::parse_size)]
    pub max_repack_size: Option<u64>,
}

fn parse_max_unused(s: &str) -> std::result::Result<MaxUnused, String> {
    MaxUnused::parse(s).map_err(|e| e.to_string())
}

/// Options of `arca prune`.
#[derive(clap::Args, Debug, Clone)]
pub struct PruneArgs {
    #[command(flatten)]
    pub opts: PruneOpts,
    /// Show what would be deleted and repacked; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Run `arca prune`.
pub fn prune(g: &Global, a: PruneArgs) -> Result<u8> {
    if a.dry_run {
        g.journal_skip();
    }
    let repo = g.open()?;
    run(g, &repo, &a.opts, a.dry_run)
}

/// Test hook: `ARCA_TEST_PRUNE_CRASH_AFTER=<step>` aborts the process right after that step,
/// leaving what a crash (kill -9, power loss after fsync) would leave, lock file included.
fn crash_hook() -> Option<prune::StepHook> {
    let step = Step::from_name(&std::env::var("ARCA_TEST_PRUNE_CRASH_AFTER").ok()?)?;
    Some(Arc::new(move |s| {
        if s == step {
            std::process::abort();
        }
        Ok(())
    }))
}

/// Prune an open repository (after `forget --prune` too); returns the exit code.
pub fn run(g: &Global, repo: &Repository, o: &PruneOpts, dry_run: bool) -> Result<u8> {
    let opts = PruneOptions {
        max_unused: o.max_unused,
        max_repack_bytes: o.max_repack_size,
        retry_lock: g.retry_lock,
        after_step: crash_hook(),
    };
    let progress: &'static Progress = Box::leak(Box::default());
    let bar = spinner(g, progress);
    let result = (|| {
        let shared = g.lock(repo, false)?;
        let plan = prune::plan(repo, &opts, progress)?;
        let stats = plan.stats.clone();
        if dry_run || plan.is_noop() {
            return Ok((stats, None));
        }
        let report = plan.execute(repo, shared, progress)?;
        Ok::<_, anyhow::Error>((stats, Some(report)))
    })();
    if let Some((b, h)) = bar {
        b.finish_and_clear();
        let _ = h.join();
    }
    let (stats, report) = result?;
    if let Some(r) = &report {
        g.journal(|rec| {
            arca::ops::journal::set_metric(rec, "packs_removed", r.packs_removed as u64);
            arca::ops::journal::set_metric(rec, "bytes_freed", r.bytes_removed);
        });
        if let Some(e) = &r.journal_error {
            eprintln!("warning: journal compaction failed (prune itself succeeded): {e}");
        }
    }
    if g.json {
        g.print_json(&json!({"dry_run": dry_run, "plan": stats, "done": report}))?;
    } else if !g.quiet {
        print_plan(&stats, dry_run);
        if let Some(r) = &report {
            print_report(r);
        }
    }
    Ok(code::OK)
}

fn print_plan(s: &PlanStats, dry_run: bool) {
    println!(
        "{} snapshots, {} index files, {} blobs indexed, {} used",
        s.snapshots, s.index_files, s.blobs, s.blobs_used
    );
    println!(
        "packs: {} ({}): keep {} ({}), repack {} ({}, {} of it used), delete {} ({}), unindexed {} ({})",
        s.packs,
        human(s.pack_bytes),
        s.keep_packs,
        human(s.keep_bytes),
        s.repack_packs,
        human(s.repack_bytes),
        human(s.repack_used_bytes),
        s.delete_packs,
        human(s.delete_bytes),
        s.unindexed_packs,
        human(s.unindexed_bytes)
    );
    println!(
        "unused space: {} before, {} after; {} {}",
        human(s.unused_before),
        human(s.unused_after),
        if dry_run { "would free" } else { "frees" },
        human(s.freed_bytes)
    );
    if dry_run {
        println!("dry run: nothing changed");
    }
}

fn print_report(r: &PruneReport) {
    if r.snapshots_added_meanwhile > 0 {
        println!(
            "{} snapshot(s) were written meanwhile; {} pack(s) they need were kept",
            r.snapshots_added_meanwhile, r.packs_rescued
        );
    }
    println!(
        "removed {} pack(s) ({}), wrote {} ({}) with {} repacked blobs; index files: {} written, {} removed",
        r.packs_removed,
        human(r.bytes_removed),
        r.packs_written,
        human(r.bytes_written),
        r.blobs_repacked,
        r.index_files_written,
        r.index_files_removed
    );
}

fn spinner(g: &Global, p: &'static Progress) -> Option<super::snap::Spinner> {
    super::snap::spinner(g, move || {
        let phase = *p.phase.lock().unwrap();
        format!(
            "{phase}: {} snapshots, {} trees, {} repacked, {} files removed",
            p.snapshots.load(Relaxed),
            p.trees.load(Relaxed),
            human(p.repack_bytes.load(Relaxed)),
            p.removed.load(Relaxed)
        )
    })
}
