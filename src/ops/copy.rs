//! `copy`: snapshots to another repository with its own keys (an off-site copy). The source's
//! journal gets a `copy-from` record, the destination's a `copy-to` record, whatever the
//! outcome (not for a dry run).

use super::context::{Context, PasswordSource};
use super::journal::{self, set_label, set_metric, Op, Recorder};
use super::locate;
use super::outcome::{HasOutcome, Outcome};
use super::scope::{same_location, Scope};
use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::id::Id;
use crate::lifecycle::copy::{self, CopiedSnapshot, CopyOptions, CopyReport};
use crate::repo::select::SnapshotFilter;
use crate::repo::Repository;
use std::path::PathBuf;

/// What to copy where.
#[derive(Clone)]
pub struct CopyRequest {
    /// Snapshots named (none: every snapshot the filter selects).
    pub snapshots: Vec<String>,
    /// The filters.
    pub filter: SnapshotFilter,
    /// The destination.
    pub to: Option<PathBuf>,
    /// The destination's password.
    pub to_password: PasswordSource,
    /// Decide and count only.
    pub dry_run: bool,
    /// Bytes of data copied, of those found to copy (for a progress display).
    pub progress: Option<std::sync::Arc<crate::progress::Meter>>,
}

/// What `copy` did.
pub struct Copied {
    /// The source's and destination's repository IDs.
    pub ids: [String; 2],
    /// The copy's report.
    pub report: CopyReport,
    /// Snapshot files of the source that could not be read (not copied).
    pub damaged: Vec<(String, Error)>,
}

impl HasOutcome for Copied {
    fn outcome(&self) -> Outcome {
        let damaged = self.report.snapshots.iter().any(|s| s.outcome == copy::Outcome::Damaged);
        if self.damaged.is_empty() && !damaged {
            Outcome::Ok
        } else {
            Outcome::Damage
        }
    }
}

/// Open the destination, every error naming it: not there (exit 10), wrong password (12).
fn open_destination(src: &Context, req: &CopyRequest) -> Result<(Repository, PathBuf)> {
    let dir = req
        .to
        .clone()
        .ok_or_else(|| Error::InvalidArgument("no destination given: use --to DIR or set ARCA_TO_REPOSITORY".into()))?;
    if src.location.as_deref().is_some_and(|s| same_location(s, &dir)) {
        return Err(Error::InvalidArgument(format!("{} is the source repository itself", dir.display())));
    }
    let ctx = Context { location: Some(dir.clone()), password: req.to_password.clone(), unlocked: None, ..src.clone() };
    // Copy reads the destination's snapshots to skip those already there: not a backup key's job.
    let repo = ctx
        .open_for(crate::ops::context::ADMINS, "copy snapshots into this repository")
        .map_err(|e| e.within(format!("destination repository {}", dir.display())))?;
    Ok((repo, dir))
}

/// Run `copy`.
pub fn copy(scope: &Scope, req: &CopyRequest, each: &mut dyn FnMut(&CopiedSnapshot)) -> Result<Copied> {
    let ctx = &scope.ctx;
    let src = ctx.open_for(crate::ops::context::READERS, "copy snapshots out")?;
    let mut from = Recorder::start((!req.dry_run).then_some(Op::CopyFrom));
    from.attach(&src);
    let dst = match open_destination(ctx, req) {
        Ok((d, _)) => d,
        Err(e) => {
            if let Some(w) = from.finish(Outcome::of_error(&e), Some(&e)) {
                ctx.notices.warn(&w);
            }
            return Err(e);
        }
    };
    let ids = [crate::id::hex(src.repo_id()), crate::id::hex(dst.repo_id())];
    let mut done = Vec::new();
    let result = copy_between(scope, req, &src, &dst, &mut done, each).map(|(report, damaged)| Copied {
        ids: ids.clone(),
        report,
        damaged,
    });
    let fill = |r: &mut journal::Record, mine: bool| {
        set_label(r, "source", ids[0].clone());
        set_label(r, "destination", ids[1].clone());
        let copied = done.iter().filter(|c| c.outcome == copy::Outcome::Copied);
        r.snapshots = match mine {
            true => copied.map(|c| c.source).collect(),
            false => copied.filter_map(|c| c.destination).collect(),
        };
        r.bytes = done.iter().map(|c| c.bytes).sum();
        set_metric(r, "blobs", done.iter().map(|c| c.blobs).sum());
        set_metric(r, "bytes", r.bytes);
        set_metric(r, "skipped", done.iter().filter(|c| c.outcome == copy::Outcome::Skipped).count() as u64);
        r.errors.extend(done.iter().filter_map(|c| c.error.clone()));
    };
    from.fill(|r| fill(r, true));
    let same = src.repo_id() == dst.repo_id();
    let mut to = Recorder::start((!req.dry_run && !same).then_some(Op::CopyTo));
    to.attach(&dst);
    to.fill(|r| fill(r, false));
    let outcome = result.outcome();
    for (rec, what) in [(from, "source"), (to, "destination")] {
        if let Some(w) = rec.finish(outcome, result.as_ref().err()) {
            ctx.notices.warn(&format!("{w} ({what})"));
        }
    }
    result
}

/// The copy proper; `done` collects each snapshot as it is committed or skipped, so that the
/// journal records name them even when a later snapshot fails.
fn copy_between(
    scope: &Scope,
    req: &CopyRequest,
    src: &Repository,
    dst: &Repository,
    done: &mut Vec<CopiedSnapshot>,
    each: &mut dyn FnMut(&CopiedSnapshot),
) -> Result<(CopyReport, Vec<(String, Error)>)> {
    let ctx = &scope.ctx;
    if src.repo_id() == dst.repo_id() {
        return Err(Error::InvalidArgument(format!(
            "the destination {} is the source repository (same repository ID)",
            req.to.as_deref().map_or("?".into(), |p| p.display().to_string())
        )));
    }
    let _src_lock = ctx.lock_for_reading(src)?;
    let _dst_lock = match req.dry_run {
        true => None,
        false => Some(ctx.lock(dst, false)?),
    };
    let filter = scope.filter(&req.filter, None);
    let (all, mut damaged) = src.list_snapshots_and_damage()?;
    let chosen: Vec<(Id, Snapshot)> = if req.snapshots.is_empty() {
        all.iter().filter(|(_, s)| filter.matches(s)).cloned().collect()
    } else {
        damaged.clear();
        let warn = |m: &str| ctx.notices.warn(m);
        let mut chosen: Vec<(Id, Snapshot)> = Vec::new();
        for r in &req.snapshots {
            let hit = locate::resolve(src, r, &filter, &warn)?;
            if !chosen.iter().any(|(id, _)| *id == hit.0) {
                chosen.push(hit);
            }
        }
        chosen
    };
    let opts = CopyOptions { dry_run: req.dry_run, within: false, progress: req.progress.as_deref() };
    let report = copy::copy(src, dst, &all, &chosen, opts, &mut |c| {
        each(c);
        done.push(c.clone());
    })?;
    ctx.warn_index_problems(src);
    ctx.warn_index_problems(dst);
    Ok((report, damaged))
}
