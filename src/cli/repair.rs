//! `arca repair packs` (format-spec/22-parity.md §22.7), `arca repair index` and
//! `arca repair snapshots` (format-spec/17-consistency.md §17.8–17.9).

use super::output::{escape, escape_str};
use super::select::{self, SelectArgs};
use super::{code, human, Global};
use anyhow::Result;
use arca::lifecycle::repair::{
    self, Cut, CutPath, IndexRepairOptions, IndexRepairReport, SnapshotRepairOptions, SnapshotRepairReport,
};
use serde_json::json;

/// `arca repair ...`.
#[derive(clap::Subcommand, Debug)]
pub enum RepairCommand {
    /// Rebuild damaged or lost packs, index files and snapshots from their parity files
    /// (reads everything); exit 4 if something could not be rebuilt.
    Packs(PacksArgs),
    /// Rebuild the index from the packs' own tables of contents (after index files were damaged
    /// or lost, or packs went missing); exit 4 if a pack cannot be indexed.
    Index(IndexArgs),
    /// Rewrite damaged snapshots without what they lost: unreadable directories become empty,
    /// files keep the chunks that remain. Run `repair index` first.
    Snapshots(SnapshotsArgs),
}

/// Options of `arca repair packs`.
#[derive(clap::Args, Debug)]
pub struct PacksArgs {
    /// Find and rebuild in memory, report, but write nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
}

/// Options of `arca repair index`.
#[derive(clap::Args, Debug)]
pub struct IndexArgs {
    /// Read every pack whole and index it only if it hashes to its name and every blob in it
    /// authenticates (slow: reads all data); otherwise only tables of contents are read.
    #[arg(long)]
    read_all_packs: bool,
}

/// Options of `arca repair snapshots`.
#[derive(clap::Args, Debug)]
pub struct SnapshotsArgs {
    /// Snapshots to repair: ID prefixes or `latest` (default: every snapshot the --host, --tag
    /// and --path filters select).
    snapshots: Vec<String>,
    /// Remove each damaged snapshot once its repaired replacement is written.
    #[arg(long)]
    forget: bool,
    /// Show what would be cut; write and remove nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    #[command(flatten)]
    select: SelectArgs,
}

/// Run `arca repair ...`.
pub fn run(g: &Global, c: RepairCommand) -> Result<u8> {
    match c {
        RepairCommand::Packs(a) => packs(g, a),
        RepairCommand::Index(a) => index(g, a),
        RepairCommand::Snapshots(a) => snapshots(g, a),
    }
}

fn packs(g: &Global, a: PacksArgs) -> Result<u8> {
    let repo = g.open()?;
    let _lock = g.lock(&repo, !a.dry_run)?;
    let r = arca::lifecycle::heal::repair_files(&repo, arca::lifecycle::heal::HealOptions { dry_run: a.dry_run })?;
    for n in &r.unrepairable {
        eprintln!("error: {}: cannot be repaired: {}", escape_str(&n.file), escape_str(&n.detail));
    }
    if g.json {
        g.print_json(&r)?;
    } else {
        for (snap, paths) in &r.affected {
            println!("snapshot {} is damaged; affected paths:", &snap[..8.min(snap.len())]);
            for p in paths {
                println!("  {}", escape(p.as_bytes()));
            }
        }
        if !g.quiet {
            let verb = if a.dry_run { "would rebuild" } else { "rebuilt" };
            for n in &r.repaired {
                println!("{verb} {}: {}", escape_str(&n.file), escape_str(&n.detail));
            }
            for n in &r.parity_rewritten {
                println!(
                    "{} {}: {}",
                    if a.dry_run { "would rewrite" } else { "rewrote" },
                    escape_str(&n.file),
                    escape_str(&n.detail)
                );
            }
            println!(
                "read {} files ({}): {} {}, {} not repairable{}",
                r.files_checked,
                human(r.bytes_read),
                verb,
                count(r.repaired.len(), "file"),
                r.unrepairable.len(),
                match r.unprotected {
                    0 => String::new(),
                    n => format!("; {n} healthy files have no parity (`arca parity build`)"),
                }
            );
            if !r.unrepairable.is_empty() {
                println!("next: `arca repair index` for lost packs or index files, then `arca repair snapshots`");
            }
        }
    }
    Ok(if r.ok() { code::OK } else { code::INTEGRITY })
}

fn index(g: &Global, a: IndexArgs) -> Result<u8> {
    let repo = g.open()?;
    let _lock = g.lock(&repo, true)?;
    let r = repair::repair_index(&repo, IndexRepairOptions { read_all_packs: a.read_all_packs })?;
    let status = if r.unreadable.is_empty() { code::OK } else { code::INTEGRITY };
    for e in &r.damaged_index_files {
        eprintln!("warning: {}; replaced", escape_str(e));
    }
    for b in &r.unreadable {
        eprintln!(
            "error: {}; left out of the index: {} (run `arca repair snapshots`)",
            escape_str(&b.error),
            match b.blobs_lost {
                0 => "any blobs it holds are missing now".to_string(),
                n => format!("the {n} blobs the old index listed in it are missing now"),
            }
        );
    }
    if g.json {
        g.print_json(&r)?;
    } else if !g.quiet {
        print_index_report(&r);
    }
    Ok(status)
}

/// `1 pack`, `2 packs`.
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn print_index_report(r: &IndexRepairReport) {
    println!(
        "indexed {} ({} blobs) in {}; removed {}",
        count(r.packs, "pack"),
        r.blobs,
        count(r.written.len(), "new index file"),
        count(r.removed, "old index file")
    );
    if !r.adopted.is_empty() {
        println!("adopted {} that no readable index file named", count(r.adopted.len(), "pack"));
    }
    if !r.dropped.is_empty() {
        println!(
            "dropped the entries of {} the old index named but that do not exist:",
            count(r.dropped.len(), "pack")
        );
        for id in &r.dropped {
            println!("  {id}");
        }
    }
}

fn snapshots(g: &Global, a: SnapshotsArgs) -> Result<u8> {
    let repo = g.open()?;
    // A dry run writes and removes nothing: a shared lock keeps a prune away while it reads.
    let _lock = g.lock(&repo, !a.dry_run)?;
    let t = select::targets(&repo, &a.snapshots, &a.select)?;
    let opts = SnapshotRepairOptions { dry_run: a.dry_run, forget: a.forget };
    let r = repair::repair_snapshots(&repo, &t.all, &t.chosen, opts)?;
    for (_, e) in &t.damaged {
        eprintln!(
            "error: {}; it cannot be repaired (remove the file once `arca check` has named it)",
            escape_str(&e.to_string())
        );
    }
    for (id, why) in &r.failed {
        eprintln!("error: snapshot {}: {}; left as it is", id.short(), escape_str(why));
    }
    let status = if t.damaged.is_empty() && r.failed.is_empty() { code::OK } else { code::INTEGRITY };
    if g.json {
        g.print_json(&snapshots_json(&r, a.dry_run))?;
    } else if !g.quiet {
        print_snapshots_report(&r, opts);
    }
    Ok(status)
}

fn cut_json(c: &CutPath) -> serde_json::Value {
    let mut v = serde_json::to_value(&c.cut).unwrap_or_default();
    v["path"] = json!(String::from_utf8_lossy(&c.path));
    v
}

fn snapshots_json(r: &SnapshotRepairReport, dry_run: bool) -> serde_json::Value {
    let repaired: Vec<_> = r
        .repaired
        .iter()
        .map(|s| {
            json!({"old": s.old, "new": s.new, "forgotten": s.forgotten,
                   "cuts": s.cuts.iter().map(cut_json).collect::<Vec<_>>(), "more_cuts": s.more_cuts})
        })
        .collect();
    let failed: Vec<_> = r.failed.iter().map(|(id, why)| json!({"snapshot": id, "error": why})).collect();
    json!({"dry_run": dry_run, "repaired": repaired, "intact": r.intact, "failed": failed})
}

/// One cut, the path escaped.
fn cut_line(c: &CutPath) -> String {
    match &c.cut {
        Cut::EmptiedDir { error } => {
            format!("dir  {}: unreadable, now empty ({})", escape(&c.path), escape_str(error))
        }
        Cut::FileContent { missing, chunks, lost_bytes } => format!(
            "file {}: {missing} of {chunks} chunks missing ({}), dropped from its content",
            escape(&c.path),
            human(*lost_bytes)
        ),
    }
}

fn print_snapshots_report(r: &SnapshotRepairReport, opts: SnapshotRepairOptions) {
    for s in &r.repaired {
        match s.new {
            Some(new) => println!("snapshot {} -> {} (tagged {})", s.old.short(), new.short(), repair::REPAIRED_TAG),
            None => println!("snapshot {} would be rewritten", s.old.short()),
        }
        for c in &s.cuts {
            println!("  {}", cut_line(c));
        }
        if s.more_cuts > 0 {
            println!("  … and {} more", s.more_cuts);
        }
        if s.forgotten {
            println!("  removed damaged snapshot {}", s.old.short());
        } else if opts.dry_run && opts.forget {
            println!("  would remove damaged snapshot {}", s.old.short());
        }
    }
    let n = r.repaired.len();
    println!(
        "{} {n} snapshot{}, {} intact",
        if opts.dry_run { "would repair" } else { "repaired" },
        if n == 1 { "" } else { "s" },
        r.intact
    );
}
