//! `verify`: does a directory — a restored copy, or the live files a snapshot came from —
//! match the snapshot? A restore that writes nothing and lists every difference
//! ([`crate::restore::Mode::Compare`]): every file is read and its chunks hashed with the
//! repository's key, so "identical" means the bytes, not just sizes and times. A difference
//! in live files is [`Outcome::Differs`], never damage.

use super::journal::{set_label, Op, Recorder};
use super::locate;
use super::outcome::{HasOutcome, Outcome, Run};
use super::profile::{Source, Target};
use super::restore::stats_outcome;
use super::scope::Scope;
use crate::archiver::Progress;
use crate::error::Result;
use crate::id::Id;
use crate::repo::index::Index;
use crate::repo::select::SnapshotFilter;
use crate::repo::Repository;
use crate::restore::{self, MetaOptions, Mode, Overwrite, RestoreOptions, RestoreStats};
use std::path::PathBuf;

/// What to compare.
#[derive(Clone, Debug, Default)]
pub struct VerifyRequest {
    /// `SNAP[:PATH]`.
    pub reference: String,
    /// Which snapshots the reference is resolved among.
    pub filter: SnapshotFilter,
    /// The directory to compare; `None`: the live files where the snapshot came from.
    pub dir: Option<PathBuf>,
    /// Compare only paths matching these patterns (extra entries are then not reported).
    pub include: Vec<String>,
    /// Ignore paths matching these patterns.
    pub exclude: Vec<String>,
    /// Do not compare ownership.
    pub no_owner: bool,
}

/// One comparison.
#[derive(Debug, serde::Serialize)]
pub struct Verified {
    /// The snapshot compared with.
    pub snapshot: Id,
    /// The directory compared.
    pub dir: PathBuf,
    /// Why nothing was compared (a stream has no live files).
    pub skipped: Option<String>,
    /// What the comparison found.
    pub stats: RestoreStats,
}

impl Verified {
    /// Whether the directory matches.
    pub fn identical(&self) -> bool {
        self.stats.changes.is_empty() && self.stats.errors.is_empty()
    }
}

impl HasOutcome for Verified {
    fn outcome(&self) -> Outcome {
        stats_outcome(&self.stats, true)
    }
}

/// Compare once, or each selected component with its live files.
pub fn verify(scope: &Scope, req: &VerifyRequest, progress: &Progress) -> Result<Vec<Run<Verified>>> {
    let ctx = &scope.ctx;
    let repo = ctx.open_for(crate::ops::context::READERS, "verify files against a snapshot")?;
    let _lock = ctx.lock_for_reading(&repo)?;
    let index = ctx.load_index(&repo)?;
    Ok(scope.each(|t| verify_one(scope, &repo, &index, req, t, progress)))
}

fn verify_one(
    scope: &Scope,
    repo: &Repository,
    index: &Index,
    req: &VerifyRequest,
    t: Option<&Target>,
    progress: &Progress,
) -> Result<Verified> {
    let ctx = &scope.ctx;
    let mut rec = Recorder::start(Some(Op::Verify));
    rec.attach(repo);
    if let (Some(p), Some(t)) = (&scope.profile, t) {
        rec.component(&p.name, &t.name);
    }
    let result = (|| {
        let warn = |m: &str| ctx.notices.warn(m);
        let at = locate::locate(repo, index, &req.reference, &scope.filter(&req.filter, t), &warn)?;
        rec.fill(|r| {
            r.snapshots.push(at.id);
            set_label(r, "path", at.path.clone());
        });
        let stream = matches!(t.map(|t| &t.component.source), Some(Source::Command { .. }))
            || crate::ops::status::is_stream(&at.snapshot);
        let dir = match &req.dir {
            Some(d) => d.clone(),
            None if stream => {
                let skipped = Some("a stream has no live files to compare (drill it instead)".to_string());
                return Ok(Verified { snapshot: at.id, dir: PathBuf::new(), skipped, stats: RestoreStats::default() });
            }
            None => PathBuf::from(&at.path),
        };
        rec.fill(|r| set_label(r, "target", dir.to_string_lossy()));
        let opts = RestoreOptions {
            target: dir.clone(),
            mode: Mode::Compare,
            snapshot_paths: at.snapshot.paths.clone(),
            include: req.include.clone(),
            exclude: req.exclude.clone(),
            overwrite: Overwrite::IfChanged,
            delete: req.include.is_empty(),
            meta: MetaOptions { no_owner: req.no_owner, ..Default::default() },
            ..Default::default()
        };
        let stats = restore::restore(repo, index, &at.node, at.snap_path(), &opts, progress)?;
        rec.fill(|r| {
            r.files = stats.files + stats.files_skipped;
            r.errors.extend(stats.errors.iter().cloned());
            r.errors
                .extend(stats.changes.iter().take(16).map(|c| format!("{} {}", c.change.marker(), c.path.display())));
        });
        Ok(Verified { snapshot: at.id, dir, skipped: None, stats })
    })();
    if let Some(w) = rec.finish(result.outcome(), result.as_ref().err()) {
        ctx.notices.warn(&w);
    }
    result
}
