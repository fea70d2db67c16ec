//! `arca parity set|build|status` (format-spec/22-parity.md) and the `--parity` value of `init`.

use super::output::escape_str;
use super::{code, human, Global};
use anyhow::Result;
use arca::lifecycle::heal::{self, BuildOptions, KindStatus};

/// `arca parity ...`.
#[derive(clap::Subcommand, Debug)]
pub enum ParityCommand {
    /// Set the parity overhead writers use for packs and index files from now on (snapshots
    /// always get as much parity as data); `arca parity build` applies it to existing files.
    Set {
        /// Overhead: a percentage of each file (`5%`, `0.5%`, up to `100%`), or `off`.
        #[arg(long, value_name = "P%|off", value_parser = parse_overhead)]
        overhead: u16,
    },
    /// Write parity for files that have none or whose parity predates the current setting;
    /// with parity off, remove all parity files.
    Build {
        /// Also remove parity files of missing files (removed on purpose by a writer that does
        /// not know parity); by default they are kept for `arca repair packs`.
        #[arg(long)]
        drop_orphans: bool,
        /// Report what would be written or removed; change nothing.
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
    /// How much of the repository parity protects, and at what overhead.
    Status,
}

/// `5%`, `0.25%` or `off` as basis points (0 = off), at most 100%.
pub fn parse_overhead(s: &str) -> std::result::Result<u16, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("off") || t == "0" || t == "0%" {
        return Ok(0);
    }
    let num = t.strip_suffix('%').ok_or_else(|| format!("{s:?}: give a percentage such as 5% or 0.5%, or off"))?;
    let p: f64 = num.trim().parse().map_err(|_| format!("{s:?}: not a percentage"))?;
    if !(0.01..=100.0).contains(&p) {
        return Err(format!("{s:?}: between 0.01% and 100%, or off"));
    }
    Ok((p * 100.0).round() as u16)
}

/// `5%`, `0.5%`, `off`.
pub fn overhead_str(bp: u16) -> String {
    match bp {
        0 => "off".into(),
        bp if bp % 100 == 0 => format!("{}%", bp / 100),
        bp => format!("{}%", bp as f64 / 100.0),
    }
}

/// Run `arca parity ...`.
pub fn run(g: &Global, c: ParityCommand) -> Result<u8> {
    let repo = g.open()?;
    match c {
        ParityCommand::Set { overhead } => {
            // Exclusive: a backup running now would mix old and new settings.
            let _lock = g.lock(&repo, true)?;
            repo.set_parity_overhead(overhead)?;
            if g.json {
                g.print_json(&serde_json::json!({ "overhead_basis_points": overhead }))?;
            } else if !g.quiet {
                println!(
                    "parity overhead for packs set to {}; run `arca parity build` to apply it to existing files",
                    overhead_str(overhead)
                );
            }
            Ok(code::OK)
        }
        ParityCommand::Build { drop_orphans, dry_run } => {
            // Shared: parity files are written after their files and never needed to read them,
            // so backups may run meanwhile; a prune (exclusive) may not delete under us.
            let _lock = g.lock(&repo, false)?;
            let r = heal::build_parity(&repo, BuildOptions { drop_orphans, dry_run })?;
            for d in &r.damaged {
                eprintln!("error: {}: {}", escape_str(&d.file), escape_str(&d.detail));
            }
            for o in &r.orphans {
                eprintln!("warning: {}: {}", escape_str(&o.file), escape_str(&o.detail));
            }
            if g.json {
                g.print_json(&r)?;
            } else if !g.quiet {
                let verb = if dry_run { "would write" } else { "wrote" };
                println!(
                    "parity {}: {verb} {} new and {} rewritten parity files ({}), {} up to date, {} removed",
                    overhead_str(r.overhead),
                    r.written,
                    r.rewritten,
                    human(r.bytes_written),
                    r.up_to_date,
                    r.removed
                );
            }
            Ok(if r.damaged.is_empty() { code::OK } else { code::INTEGRITY })
        }
        ParityCommand::Status => {
            let r = heal::parity_status(&repo)?;
            if g.json {
                g.print_json(&r)?;
                return Ok(code::OK);
            }
            let overhead = match (r.overhead, r.policy_file) {
                (None, _) => "policy file damaged (writers use 5%)".to_string(),
                (Some(0), false) => "off (no policy: the repository predates parity)".to_string(),
                (Some(bp), _) => overhead_str(bp),
            };
            println!("parity for packs and index files: {overhead}; snapshots: 100% when on");
            let line = |what: &str, s: &KindStatus| {
                println!(
                    "  {what:<10} {:>7} files {:>11}   protected {:>7} ({:>5.1}%)   parity {:>11} ({:.1}%){}",
                    s.files,
                    human(s.bytes),
                    s.protected,
                    if s.files == 0 { 100.0 } else { 100.0 * s.protected as f64 / s.files as f64 },
                    human(s.parity_bytes),
                    if s.bytes == 0 { 0.0 } else { 100.0 * s.parity_bytes as f64 / s.bytes as f64 },
                    match s.stale {
                        0 => String::new(),
                        n => format!("   {n} at an older setting"),
                    }
                );
            };
            line("packs", &r.packs);
            line("index", &r.index);
            line("snapshots", &r.snapshots);
            if r.orphans > 0 {
                println!(
                    "  {} parity files protect missing files: `arca repair packs` restores what it can",
                    r.orphans
                );
            }
            for s in &r.stray {
                eprintln!("warning: {}: stray file (not a repository file name); ignored", escape_str(s));
            }
            Ok(code::OK)
        }
    }
}
