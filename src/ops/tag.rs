//! `tag`: add, remove or set tags of snapshots, or move a label to one snapshot — within the
//! snapshots the filters (or a profile's component) select, so that `last-good` of the
//! database and `last-good` of the files are two labels. Every replacement is recorded in the
//! journal (a `tag` record pairs each old snapshot with its new one), so that a verification
//! of the old snapshot stays on record for the new (format-spec 21.6).

use super::journal::{Op, Recorder};
use super::locate;
use super::outcome::{HasOutcome, Outcome};
use super::scope::Scope;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::lifecycle::tag::{self, TagAction, TagReport};
use crate::repo::select::SnapshotFilter;

/// What to change.
#[derive(Clone, Debug)]
pub enum Change {
    /// Add, remove or set tags.
    Tags(TagAction),
    /// Give this label to the one snapshot named, and take it from the others in scope.
    Move(String),
}

/// A tag request.
#[derive(Clone, Debug)]
pub struct TagRequest {
    /// Snapshots named (none: every snapshot the filter selects; with a move, exactly one).
    pub snapshots: Vec<String>,
    /// The filters.
    pub filter: SnapshotFilter,
    /// What to change.
    pub change: Change,
}

/// What `tag` did.
#[derive(Debug)]
pub struct Tagged {
    /// Replaced and unchanged snapshots.
    pub report: TagReport,
    /// Snapshot files that could not be read (their tags were not changed).
    pub damaged: Vec<(String, Error)>,
}

impl HasOutcome for Tagged {
    fn outcome(&self) -> Outcome {
        if self.damaged.is_empty() {
            Outcome::Ok
        } else {
            Outcome::Damage
        }
    }
}

/// Run `tag` under an exclusive lock. Bad tags and arguments are refused before the password is
/// asked for.
pub fn tag(scope: &Scope, req: &TagRequest) -> Result<Tagged> {
    let ctx = &scope.ctx;
    match &req.change {
        Change::Move(label) => {
            if req.snapshots.len() != 1 {
                return Err(Error::InvalidArgument("--move needs exactly one snapshot".into()));
            }
            tag::validate_tag(label)?;
        }
        Change::Tags(act) => act.validate()?,
    }
    let repo = ctx.open_for(crate::ops::context::ADMINS, "change tags")?;
    repo.refuse_during_rotation("change tags")?;
    let result = (|| {
        let _lock = ctx.lock(&repo, true)?;
        let filter = scope.filter(&req.filter, None);
        let (all, damaged) = repo.list_snapshots_and_damage()?;
        let warn = |m: &str| ctx.notices.warn(m);
        let report = match &req.change {
            Change::Move(label) => {
                let (target, _) = locate::resolve(&repo, &req.snapshots[0], &filter, &warn)?;
                // The label's scope is what the filters select, at any time.
                let within = SnapshotFilter { until: None, ..filter };
                tag::move_label(&repo, &all, &target, label, &within)?
            }
            Change::Tags(act) => {
                let ids: Vec<Id> = match req.snapshots.is_empty() {
                    true => all.iter().filter(|(_, s)| filter.matches(s)).map(|(id, _)| *id).collect(),
                    false => {
                        let mut ids = Vec::new();
                        for r in &req.snapshots {
                            let id = locate::resolve(&repo, r, &filter, &warn)?.0;
                            if !ids.contains(&id) {
                                ids.push(id);
                            }
                        }
                        ids
                    }
                };
                tag::tag(&repo, &all, &ids, act)?
            }
        };
        // Snapshots named by ID need no unreadable neighbours reported.
        let damaged = if req.snapshots.is_empty() || matches!(req.change, Change::Move(_)) { damaged } else { vec![] };
        Ok(Tagged { report, damaged })
    })();
    record(scope, &repo, &result);
    result
}

/// Pairs of (replaced, replacement) one `tag` record names at most (format-spec 21.2).
const PAIRS_PER_RECORD: usize = 32_768;

/// The journal records of a tag run: one per [`PAIRS_PER_RECORD`] replacements (none when
/// nothing changed), or one naming the error.
fn record(scope: &Scope, repo: &crate::repo::Repository, result: &Result<Tagged>) {
    let pairs: Vec<Id> = match result {
        Ok(t) => t.report.changed.iter().flat_map(|c| [c.old, c.new]).collect(),
        Err(_) => vec![],
    };
    let chunks: Vec<&[Id]> = match result {
        Ok(_) => pairs.chunks(2 * PAIRS_PER_RECORD).collect(),
        Err(_) => vec![&[]],
    };
    for chunk in chunks {
        let mut rec = Recorder::start(Some(Op::Tag));
        rec.attach(repo);
        rec.fill(|r| r.snapshots = chunk.to_vec());
        if let Some(w) = rec.finish(result.outcome(), result.as_ref().err()) {
            scope.ctx.notices.warn(&w);
        }
    }
}
