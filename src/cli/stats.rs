//! `stats`: restic's counting modes over the selected snapshots, as restic prints them.

use super::output::escape_str;
use super::select::SelectArgs;
use super::{human, Global};
use anyhow::Result;
use arca::ops::stats::{self, Mode, StatsRequest};
use arca::ops::HasOutcome;

/// restic's `--mode` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum ModeArg {
    /// The size of the files a restore of each snapshot writes; every entry counted.
    #[default]
    RestoreSize,
    /// Distinct file contents (by their chunks) across the snapshots, and their size.
    FilesByContents,
    /// Distinct blobs the snapshots reference: stored and uncompressed size, compression.
    RawData,
    /// Each distinct file's distinct blobs, counted per path.
    BlobsPerFile,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  arca stats                              # restore size of every snapshot, added up
  arca stats latest --mode raw-data       # what the newest snapshot takes in the repository
  arca stats --host web1 --mode files-by-contents --json")]
pub struct StatsArgs {
    /// Snapshots to count (ID prefix, `latest`, `latest~N`, `latest-verified`); default: every
    /// snapshot the filters select.
    #[arg(value_name = "SNAPSHOT")]
    snapshots: Vec<String>,
    /// How to count (restic's modes).
    #[arg(long, value_enum, default_value_t = ModeArg::RestoreSize)]
    mode: ModeArg,
    #[command(flatten)]
    select: SelectArgs,
}

pub fn run(g: &Global, a: StatsArgs) -> Result<u8> {
    let mode = match a.mode {
        ModeArg::RestoreSize => Mode::RestoreSize,
        ModeArg::FilesByContents => Mode::FilesByContents,
        ModeArg::RawData => Mode::RawData,
        ModeArg::BlobsPerFile => Mode::BlobsPerFile,
    };
    let req = StatsRequest { mode, snapshots: a.snapshots, filter: a.select.filter() };
    let s = stats::stats(&g.scope, &req)?;
    for d in &s.damaged {
        eprintln!("warning: {}", escape_str(d));
    }
    let code = s.outcome().exit_code();
    if g.json {
        g.print_json(&s)?;
        return Ok(code);
    }
    // restic's layout: a line is left out when its figure is zero, but for the size.
    println!("Stats in {} mode:", s.mode.name());
    println!("     Snapshots processed:  {}", s.snapshots_count);
    if s.total_blob_count > 0 {
        println!("        Total Blob Count:  {}", s.total_blob_count);
    }
    if s.total_file_count > 0 {
        println!("        Total File Count:  {}", s.total_file_count);
    }
    if s.total_uncompressed_size > 0 {
        println!(" Total Uncompressed Size:  {}", human(s.total_uncompressed_size));
    }
    println!("              Total Size:  {}", human(s.total_size));
    if s.compression_ratio > 0.0 {
        println!("       Compression Ratio:  {:.2}x", s.compression_ratio);
    }
    if s.compression_space_saving > 0.0 {
        println!("Compression Space Saving:  {:.2}%", s.compression_space_saving);
    }
    Ok(code)
}
