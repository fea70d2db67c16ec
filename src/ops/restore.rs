//! `restore`: a snapshot (or a path in it) into a target directory, or back where it came
//! from (`--in-place`); with a profile, each selected component — files to their recorded
//! paths, a database dump into the component's `restore-command`. Each restore is recorded in
//! the journal.
//!
//! In place, a snapshot of files is restored into `/` (or, for `SNAP:PATH`, into PATH) with
//! the snapshot's paths given to the restore, so the directories above them (`/`, `/etc`) are
//! passed through untouched (see [`crate::restore`]).

use super::journal::{set_label, Op, Recorder};
use super::locate::{self, Located};
use super::outcome::{HasOutcome, Outcome, Run};
use super::profile::{Source, Target};
use super::scope::Scope;
use crate::archiver::Progress;
use crate::error::{Error, Result};
use crate::format::tree::NodeKind;
use crate::id::Id;
use crate::repo::index::Index;
use crate::repo::select::SnapshotFilter;
use crate::repo::Repository;
use crate::restore::{self, MetaOptions, Mode, Overwrite, RestoreOptions, RestoreStats};
use std::path::PathBuf;

/// Where and how to restore.
#[derive(Clone, Debug, Default)]
pub struct RestoreRequest {
    /// `SNAP[:PATH]`.
    pub reference: String,
    /// Which snapshots the reference is resolved among.
    pub filter: SnapshotFilter,
    /// The directory to restore into (with a profile: each component into `TARGET/NAME`).
    pub target: Option<PathBuf>,
    /// Restore back where the snapshot came from instead of into a target.
    pub in_place: bool,
    /// Only paths matching these patterns.
    pub include: Vec<String>,
    /// Not paths matching these patterns.
    pub exclude: Vec<String>,
    /// What to do with existing files.
    pub overwrite: Overwrite,
    /// Remove what the snapshot lacks from the restored directories.
    pub delete: bool,
    /// Decide and count, write nothing.
    pub dry_run: bool,
    /// Read restored files back and compare.
    pub verify: bool,
    /// Do not create device nodes.
    pub no_devices: bool,
    /// Do not create FIFOs.
    pub no_specials: bool,
    /// Metadata options.
    pub meta: MetaOptions,
}

/// A stream restored into a command.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Piped {
    /// The command line.
    pub command: String,
    /// Bytes it was given.
    pub bytes: u64,
}

/// One restore that ran.
#[derive(Debug, serde::Serialize)]
pub struct Restored {
    /// The snapshot restored.
    pub snapshot: Id,
    /// The path in it.
    pub path: String,
    /// Where it went (the target directory, or `/` in place).
    pub target: PathBuf,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Wall time.
    pub seconds: f64,
    /// What the restore did.
    pub stats: RestoreStats,
    /// With a `restore-command`: what the command was given.
    pub piped: Option<Piped>,
}

impl HasOutcome for Restored {
    fn outcome(&self) -> Outcome {
        stats_outcome(&self.stats, false)
    }
}

/// The outcome of a restore's statistics: damage or a verified mismatch, then include patterns
/// that matched nothing (a usage error), other errors, then conflicts (partial). `compare`:
/// differences found by `verify` mean [`Outcome::Differs`].
pub fn stats_outcome(s: &RestoreStats, compare: bool) -> Outcome {
    if s.damaged > 0 || !s.mismatched.is_empty() {
        Outcome::Damage
    } else if !s.unmatched.is_empty() {
        Outcome::Usage
    } else if s.errors.len() as u64 > s.conflicts {
        Outcome::Failed
    } else if compare && !s.changes.is_empty() {
        Outcome::Differs
    } else if s.conflicts > 0 {
        Outcome::Partial
    } else {
        Outcome::Ok
    }
}

/// Restore what `req` asks for: once, or once per selected component of the scope's profile.
pub fn restore(scope: &Scope, req: &RestoreRequest, progress: &Progress) -> Result<Vec<Run<Restored>>> {
    if req.in_place == req.target.is_some() {
        return Err(Error::InvalidArgument(
            "give --target DIR, or --in-place to restore where the files came from".into(),
        ));
    }
    let ctx = &scope.ctx;
    let repo = ctx.open_for(crate::ops::context::READERS, "restore")?;
    let _lock = ctx.lock_for_reading(&repo)?;
    let index = ctx.load_index(&repo)?;
    Ok(scope.each(|t| restore_one(scope, &repo, &index, req, t, progress)))
}

/// One restore, recorded.
fn restore_one(
    scope: &Scope,
    repo: &Repository,
    index: &Index,
    req: &RestoreRequest,
    t: Option<&Target>,
    progress: &Progress,
) -> Result<Restored> {
    let ctx = &scope.ctx;
    let mut rec = Recorder::start((!req.dry_run).then_some(Op::Restore));
    rec.attach(repo);
    if let (Some(p), Some(t)) = (&scope.profile, t) {
        rec.component(&p.name, &t.name);
    }
    let result = (|| {
        let filter = scope.filter(&req.filter, t);
        let warn = |m: &str| ctx.notices.warn(m);
        let mut at = locate::locate(repo, index, &req.reference, &filter, &warn)?;
        rec.fill(|r| {
            r.snapshots.push(at.id);
            set_label(r, "path", at.path.clone());
        });
        let started = std::time::Instant::now();
        let command = t.and_then(|t| t.component.restore_command.as_ref());
        if let (true, Some(Source::Command { filename, .. })) = (req.in_place, t.map(|t| &t.component.source)) {
            let Some(argv) = command else {
                return Err(Error::InvalidArgument(format!(
                    "component {} is a stream: give it a restore-command to restore it in place, or use --target",
                    t.map_or("", |t| t.name.as_str())
                )));
            };
            if at.path == "/" {
                at.node = restore::resolve(repo, index, at.snapshot.tree, filename)?;
                at.path = format!("/{filename}");
            }
            let env = component_env(scope, t, &at);
            return pipe(repo, index, &at, argv, &env, req, &mut rec, started);
        }
        let target = match (&req.target, req.in_place, t) {
            (Some(dir), _, Some(t)) => dir.join(&t.name),
            (Some(dir), _, None) => dir.clone(),
            (None, _, _) if crate::ops::status::is_stream(&at.snapshot) => {
                return Err(Error::InvalidArgument(
                    "a stream snapshot has no place of its own: restore it with --target, or through a profile \
                     component's restore-command"
                        .into(),
                ))
            }
            (None, _, _) => PathBuf::from(&at.path),
        };
        rec.fill(|r| set_label(r, "target", target.to_string_lossy()));
        let opts = RestoreOptions {
            target: target.clone(),
            mode: match (req.dry_run, req.verify) {
                (true, _) => Mode::Plan,
                (false, true) => Mode::WriteVerified,
                (false, false) => Mode::Write,
            },
            snapshot_paths: at.snapshot.paths.clone(),
            include: req.include.clone(),
            exclude: req.exclude.clone(),
            overwrite: req.overwrite,
            delete: req.delete,
            no_devices: req.no_devices,
            no_specials: req.no_specials,
            meta: req.meta.clone(),
            ..Default::default()
        };
        let stats = restore::restore(repo, index, &at.node, at.snap_path(), &opts, progress)?;
        rec.fill(|r| {
            (r.bytes, r.files) = (stats.bytes, stats.files);
            r.errors.extend(stats.errors.iter().cloned());
        });
        Ok(Restored {
            snapshot: at.id,
            path: at.path,
            target,
            dry_run: req.dry_run,
            seconds: started.elapsed().as_secs_f64(),
            stats,
            piped: None,
        })
    })();
    let outcome = result.outcome();
    if let Some(w) = rec.finish(outcome, result.as_ref().err()) {
        ctx.notices.warn(&w);
    }
    result
}

/// Stream the file `at` names into `argv`'s standard input (no shell).
#[allow(clippy::too_many_arguments)]
fn pipe(
    repo: &Repository,
    index: &Index,
    at: &Located,
    argv: &[String],
    env: &[(&str, String)],
    req: &RestoreRequest,
    rec: &mut Recorder,
    started: std::time::Instant,
) -> Result<Restored> {
    if !matches!(at.node.kind, NodeKind::File { .. }) {
        return Err(Error::InvalidArgument(format!("{} is not a file: nothing to give the restore-command", at.path)));
    }
    let line = crate::archiver::command_line(&argv.iter().map(Into::into).collect::<Vec<_>>());
    rec.fill(|r| set_label(r, "target", format!("restore-command: {line}")));
    let mut stats = RestoreStats::default();
    if !req.dry_run {
        let mut reader = crate::browse::ContentReader::new(repo, index, &at.node)?;
        let fed = super::profile::run_with_input(argv, env, &mut reader)?;
        (stats.bytes, stats.files) = (fed.bytes, 1);
        if !fed.whole {
            let size = match at.node.kind {
                NodeKind::File { size, .. } => size,
                _ => 0,
            };
            stats.errors.push(format!(
                "{}: the restore-command `{line}` stopped reading after {} of {size} bytes: not restored whole",
                at.path, fed.bytes
            ));
        }
    }
    rec.fill(|r| (r.bytes, r.files) = (stats.bytes, stats.files));
    Ok(Restored {
        snapshot: at.id,
        path: at.path.clone(),
        target: PathBuf::from("-"),
        dry_run: req.dry_run,
        seconds: started.elapsed().as_secs_f64(),
        piped: Some(Piped { command: line, bytes: stats.bytes }),
        stats,
    })
}

/// The environment a component's command gets: its profile, component and snapshot.
pub(crate) fn component_env(scope: &Scope, t: Option<&Target>, at: &Located) -> Vec<(&'static str, String)> {
    let mut env = vec![("ARCA_SNAPSHOT", at.id.to_string())];
    if let Some(p) = &scope.profile {
        env.push(("ARCA_PROFILE", p.name.clone()));
    }
    if let Some(t) = t {
        env.push(("ARCA_COMPONENT", t.name.clone()));
    }
    env
}
