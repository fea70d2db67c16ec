//! `forget` (by IDs or a retention policy; with a profile, each component's own retention on
//! its own snapshots) and `prune`, each recorded in the journal.

use super::journal::{set_metric, Op, Recorder};
use super::outcome::{HasOutcome, Outcome, Run};
use super::scope::Scope;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::lifecycle::forget::{self, Decision, ForgetOptions};
use crate::lifecycle::prune::{self, PlanStats, PruneOptions, PruneReport};
use crate::repo::Repository;

/// What to forget.
#[derive(Clone, Default)]
pub struct ForgetRequest {
    /// IDs, or the policy, its grouping and filter (with a profile, each component's retention
    /// replaces the policy and the grouping is by host).
    pub options: ForgetOptions,
    /// Decide only.
    pub dry_run: bool,
    /// Prune afterwards when snapshots were (or would be) removed.
    pub prune: Option<PruneRequest>,
}

/// One decision and what was done about it.
#[derive(Debug)]
pub struct Forgotten {
    /// The decision.
    pub decision: Decision,
    /// Snapshots removed.
    pub removed: Vec<Id>,
    /// Snapshots that could not be removed, and why.
    pub failed: Vec<(Id, String)>,
    /// Why nothing was decided (a component without retention rules).
    pub skipped: Option<&'static str>,
    /// Whether nothing was removed on purpose.
    pub dry_run: bool,
}

impl HasOutcome for Forgotten {
    fn outcome(&self) -> Outcome {
        if !self.failed.is_empty() {
            Outcome::Failed
        } else if !self.decision.damaged.is_empty() {
            Outcome::Damage
        } else {
            Outcome::Ok
        }
    }
}

/// What `forget` did, and the prune after it.
pub struct ForgetReport {
    /// One decision, or one per component.
    pub runs: Vec<Run<Forgotten>>,
    /// The prune, when asked for and something was removed.
    pub prune: Option<Result<Pruned>>,
}

impl HasOutcome for ForgetReport {
    fn outcome(&self) -> Outcome {
        let prune = match &self.prune {
            Some(Ok(p)) => p.outcome(),
            Some(Err(e)) => Outcome::of_error(e),
            None => Outcome::Ok,
        };
        self.runs.outcome().worse(prune)
    }
}

/// Run `forget`.
pub fn forget(scope: &Scope, req: &ForgetRequest) -> Result<ForgetReport> {
    let ctx = &scope.ctx;
    if scope.has_profile() {
        if !req.options.ids.is_empty() || !req.options.policy.is_empty() {
            return Err(Error::InvalidArgument(
                "--profile takes each component's retention from the configuration: give no IDs or --keep-* rules"
                    .into(),
            ));
        }
    } else {
        // Usage errors before a password is asked for.
        forget::validate(&req.options)?;
    }
    let repo = ctx.open_for(crate::ops::context::ADMINS, "forget snapshots")?;
    let runs = scope.each(|t| {
        let mut opts = req.options.clone();
        if let Some(t) = t {
            if t.component.retention.is_empty() {
                let skipped = Some("no keep-* rules: every snapshot kept");
                let decision = forget::Decision::empty();
                return Ok(Forgotten { decision, removed: vec![], failed: vec![], skipped, dry_run: req.dry_run });
            }
            opts.policy = t.component.retention.clone();
            opts.group_by = "host".parse().expect("a valid grouping");
        }
        opts.filter = scope.filter(&opts.filter, t);
        let mut rec = Recorder::start((!req.dry_run).then_some(Op::Forget));
        rec.attach(&repo);
        if let (Some(p), Some(t)) = (&scope.profile, t) {
            rec.component(&p.name, &t.name);
        }
        let result = decide_and_remove(scope, &repo, &opts, req.dry_run);
        if let Ok(f) = &result {
            rec.fill(|r| r.snapshots.extend(f.removed.iter().copied()));
        }
        if let Some(w) = rec.finish(result.outcome(), result.as_ref().err()) {
            ctx.notices.warn(&w);
        }
        result
    });
    let removed: usize = runs.iter().filter_map(|r| r.result.as_ref().ok()).map(|f| f.decision.to_remove().len()).sum();
    let prune = match &req.prune {
        Some(p) if removed > 0 => Some(prune_open(scope, &repo, p, req.dry_run)),
        _ => None,
    };
    Ok(ForgetReport { runs, prune })
}

/// Plan, refuse an emptied group, remove.
fn decide_and_remove(scope: &Scope, repo: &Repository, opts: &ForgetOptions, dry_run: bool) -> Result<Forgotten> {
    // Exclusive, and taken before listing: no backup may add a snapshot the decision did not see.
    let guard = if dry_run { None } else { Some(scope.ctx.lock(repo, true)?) };
    let decision = forget::plan(repo, opts, &crate::localtime::Local)?;
    decision.check().map_err(|e| Error::Refused(e.to_string()))?;
    let outcome = match dry_run {
        true => None,
        false => Some(forget::execute(repo, &decision)?),
    };
    drop(guard);
    let (removed, failed) = match outcome {
        Some(o) => (o.removed, o.failed.into_iter().map(|(id, e)| (id, e.to_string())).collect()),
        None => (vec![], vec![]),
    };
    Ok(Forgotten { decision, removed, failed, skipped: None, dry_run })
}

/// How much to repack.
#[derive(Clone)]
pub struct PruneRequest {
    /// Unused space to tolerate.
    pub max_unused: prune::MaxUnused,
    /// Read at most this much for repacking.
    pub max_repack_size: Option<u64>,
    /// Test hook: see [`PruneOptions::after_step`].
    pub after_step: Option<prune::StepHook>,
}

/// What prune planned and did.
#[derive(Debug)]
pub struct Pruned {
    /// The plan's figures.
    pub stats: PlanStats,
    /// What was done (none for a dry run or nothing to do).
    pub report: Option<PruneReport>,
    /// Whether nothing was changed on purpose.
    pub dry_run: bool,
}

impl HasOutcome for Pruned {
    fn outcome(&self) -> Outcome {
        Outcome::Ok
    }
}

/// Run `prune`.
pub fn prune(scope: &Scope, req: &PruneRequest, dry_run: bool, progress: &prune::Progress) -> Result<Pruned> {
    let repo = scope.ctx.open_for(crate::ops::context::ADMINS, "prune")?;
    repo.refuse_during_rotation("prune")?;
    prune_with(scope, &repo, req, dry_run, progress)
}

fn prune_open(scope: &Scope, repo: &Repository, req: &PruneRequest, dry_run: bool) -> Result<Pruned> {
    prune_with(scope, repo, req, dry_run, &prune::Progress::default())
}

/// Live data the storage may stop protecting is worth a warning even when prune succeeded.
fn warn_retention(ctx: &super::Context, report: Option<&PruneReport>) {
    if let Some(e) = report.and_then(|r| r.retention_error.as_ref()) {
        ctx.notices
            .warn(&format!("extending the storage's retention of live files failed (prune itself succeeded): {e}"));
    }
}

/// Prune an open repository (after `forget --prune` too), recorded.
pub fn prune_with(
    scope: &Scope,
    repo: &Repository,
    req: &PruneRequest,
    dry_run: bool,
    progress: &prune::Progress,
) -> Result<Pruned> {
    let ctx = &scope.ctx;
    let mut rec = Recorder::start((!dry_run).then_some(Op::Prune));
    rec.attach(repo);
    let opts = PruneOptions {
        max_unused: req.max_unused,
        max_repack_bytes: req.max_repack_size,
        retry_lock: ctx.retry_lock,
        after_step: req.after_step.clone(),
    };
    let result = (|| {
        let shared = ctx.lock(repo, false)?;
        let plan = prune::plan(repo, &opts, progress)?;
        let stats = plan.stats.clone();
        if dry_run || plan.is_noop() {
            // Storage retention is extended even when nothing can be removed (all of it deferred).
            let report = if dry_run { None } else { plan.finish_noop(repo) };
            warn_retention(ctx, report.as_ref());
            return Ok(Pruned { stats, report, dry_run });
        }
        let report = plan.execute(repo, shared, progress)?;
        if let Some(e) = &report.journal_error {
            ctx.notices.warn(&format!("journal compaction failed (prune itself succeeded): {e}"));
        }
        warn_retention(ctx, Some(&report));
        Ok(Pruned { stats, report: Some(report), dry_run })
    })();
    if let Ok(Pruned { report: Some(r), stats, .. }) = &result {
        rec.fill(|rec| {
            set_metric(rec, "packs_removed", r.packs_removed as u64);
            set_metric(rec, "bytes_freed", r.bytes_removed);
            if let Some(held) = &stats.retention {
                // What the storage's retention kept for a later prune (format-spec/17 §17.12).
                set_metric(rec, "packs_deferred", held.deferred_packs as u64);
            }
        });
    }
    if let Some(w) = rec.finish(result.outcome(), result.as_ref().err()) {
        ctx.notices.warn(&w);
    }
    result
}
