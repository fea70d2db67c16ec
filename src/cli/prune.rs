//! `arca prune`: reclaim space (format-spec/17-consistency.md §17.6).

use super::Global;
use anyhow::Result;

/// How much to repack; shared by `arca prune` and `arca forget --prune`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PruneOpts {}

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
    let repo = g.open()?;
    run(g, &repo, &a.opts, a.dry_run)
}

/// Prune an open repository (after `forget --prune` too); returns the exit code.
pub fn run(_g: &Global, _repo: &arca::repo::Repository, _opts: &PruneOpts, _dry_run: bool) -> Result<u8> {
    anyhow::bail!("prune is not implemented yet")
}
