//! `rewrite`: copies of snapshots without the paths restic's exclude patterns match (restic's
//! `rewrite --exclude…`), for the "I backed up a secret" case: rewrite with `--forget`, then
//! `prune`, and the secret's data is gone from the repository.
//!
//! Snapshots are chosen as `tag` and `repair snapshots` choose them (IDs, or every snapshot the
//! filters select). Only an admin key may rewrite (exit 13 for a backup or restore key). The
//! lock is exclusive with `--forget` (originals are removed), shared otherwise: the copies are
//! written as a backup writes its snapshot.

use super::context::ADMINS;
use super::locate;
use super::outcome::{HasOutcome, Outcome};
use super::scope::Scope;
use crate::error::{Error, Result};
use crate::filter::ExcludeOptions;
use crate::lifecycle::rewrite::{self, RewriteOptions, RewriteReport};
use crate::repo::select::SnapshotFilter;

/// A rewrite request.
#[derive(Clone, Debug, Default)]
pub struct RewriteRequest {
    /// Snapshot references (IDs, `latest`); none: every snapshot the filter selects.
    pub snapshots: Vec<String>,
    /// The filters.
    pub filter: SnapshotFilter,
    /// The paths to remove.
    pub excludes: ExcludeOptions,
    /// Dry run and `--forget`.
    pub options: RewriteOptions,
}

/// What `rewrite` did.
#[derive(Debug)]
pub struct Rewritten {
    /// The rewritten and unchanged snapshots.
    pub report: RewriteReport,
    /// Snapshot files that could not be read (not rewritten).
    pub damaged: Vec<(String, Error)>,
}

impl HasOutcome for Rewritten {
    fn outcome(&self) -> Outcome {
        if self.damaged.is_empty() {
            Outcome::Ok
        } else {
            Outcome::Damage
        }
    }
}

/// Run `rewrite`. Missing or bad patterns are refused before the password is asked for.
pub fn rewrite(scope: &Scope, req: &RewriteRequest) -> Result<Rewritten> {
    if req.excludes.is_empty() {
        return Err(Error::InvalidArgument(
            "nothing to do: give --exclude, --iexclude, --exclude-file or --iexclude-file".into(),
        ));
    }
    let excluder = req.excludes.compile()?;
    let ctx = &scope.ctx;
    let repo = ctx.open_for(ADMINS, "rewrite snapshots")?;
    repo.refuse_during_rotation("rewrite snapshots")?;
    let _lock = ctx.lock(&repo, req.options.forget && !req.options.dry_run)?;
    let filter = scope.filter(&req.filter, None);
    let (all, mut damaged) = repo.list_snapshots_and_damage()?;
    let chosen: Vec<_> = if req.snapshots.is_empty() {
        all.iter().filter(|(_, s)| filter.matches(s)).cloned().collect()
    } else {
        // Snapshots named by ID need no unreadable neighbours reported.
        damaged.clear();
        let warn = |m: &str| ctx.notices.warn(m);
        let mut chosen: Vec<_> = Vec::new();
        for r in &req.snapshots {
            let found = locate::resolve(&repo, r, &filter, &warn)?;
            if !chosen.iter().any(|(id, _)| *id == found.0) {
                chosen.push(found);
            }
        }
        chosen
    };
    let report = rewrite::rewrite_snapshots(&repo, &all, &chosen, &excluder, req.options)?;
    Ok(Rewritten { report, damaged })
}
