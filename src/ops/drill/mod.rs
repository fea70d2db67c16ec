//! `drill`: restore a snapshot (or a path in it, or a sample of it) into a scratch directory,
//! read everything back and compare it with the snapshot, measure how long a full restore
//! takes (RTO) against its objective (`max-rto`), and — for a database dump — run the
//! component's `verify-command` on the restored stream, so that a drill proves the dump loads
//! and not only that its bytes match. The engine is [`engine`]; this is the operation: the
//! scratch directory, the components, the journal record.

pub mod engine;

pub use engine::*;

use super::journal::{set_label, set_metric, Op, Recorder};
use super::locate;
use super::outcome::{HasOutcome, Outcome, Run};
use super::profile::{Source, Target};
use super::scope::Scope;
use crate::archiver::Progress;
use crate::error::{Error, Result};
use crate::repo::select::SnapshotFilter;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// What to drill and how.
#[derive(Default)]
pub struct DrillRequest {
    /// `SNAP[:PATH]`.
    pub reference: String,
    /// Which snapshots the reference is resolved among.
    pub filter: SnapshotFilter,
    /// A sample instead of everything.
    pub sample: Option<Sample>,
    /// Where the scratch directory is made.
    pub scratch: PathBuf,
    /// Leave the scratch directory in place.
    pub keep: bool,
    /// The restore time objective (else each component's `max-rto`).
    pub max_rto: Option<Duration>,
    /// Options of the drill itself (metadata, test hooks); `scratch` is set per drill.
    pub options: DrillOptions,
}

/// A `verify-command` run on a restored stream.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CommandCheck {
    /// The command line.
    pub command: String,
    /// Whether it exited 0.
    pub ok: bool,
    /// How it failed.
    pub error: Option<String>,
}

/// One drill that ran.
#[derive(Debug, serde::Serialize)]
pub struct Drilled {
    /// What the drill measured and found.
    #[serde(flatten)]
    pub report: DrillReport,
    /// The scratch directory, when kept.
    pub scratch_kept: Option<PathBuf>,
    /// The component's `verify-command`, if it has one.
    pub verify_command: Option<CommandCheck>,
    /// The restore time objective.
    pub max_rto_ns: Option<u64>,
    /// Whether the full-restore time is within it.
    pub rto_met: Option<bool>,
}

impl HasOutcome for Drilled {
    fn outcome(&self) -> Outcome {
        let r = &self.report;
        if !r.damage.is_empty() || !r.mismatches.is_empty() || self.verify_command.as_ref().is_some_and(|c| !c.ok) {
            Outcome::Damage
        } else if !r.errors.is_empty() {
            Outcome::Failed
        } else if self.rto_met == Some(false) {
            Outcome::Missed
        } else {
            Outcome::Ok
        }
    }
}

/// The scratch directory of the drill in progress, for a signal handler to remove.
static ACTIVE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Remove the scratch directory of the drill in progress (after a signal); returns its path.
pub fn remove_active_scratch() -> Option<PathBuf> {
    let p = ACTIVE.lock().unwrap().take()?;
    // Restore threads may still be adding entries: try twice.
    if remove_tree(&p).is_err() {
        let _ = remove_tree(&p);
    }
    Some(p)
}

/// Drill once, or the snapshot of each selected component. The scratch directory is removed
/// whatever happens (unless kept); a warning names it when it cannot be.
pub fn drill(scope: &Scope, req: &mut DrillRequest, progress: &Progress) -> Result<Vec<Run<Drilled>>> {
    let ctx = &scope.ctx;
    let repo = ctx.open_for(crate::ops::context::READERS, "drill restores")?;
    let _lock = ctx.lock_for_reading(&repo)?;
    let index = ctx.load_index(&repo)?;
    Ok(scope.each(|t| {
        let mut rec = Recorder::start(Some(Op::Drill));
        rec.attach(&repo);
        if let (Some(p), Some(t)) = (&scope.profile, t) {
            rec.component(&p.name, &t.name);
        }
        let result = drill_one(scope, &repo, &index, req, t, &mut rec, progress);
        if let Some(w) = rec.finish(result.outcome(), result.as_ref().err()) {
            ctx.notices.warn(&w);
        }
        result
    }))
}

fn drill_one(
    scope: &Scope,
    repo: &crate::repo::Repository,
    index: &crate::repo::index::Index,
    req: &mut DrillRequest,
    t: Option<&Target>,
    rec: &mut Recorder,
    progress: &Progress,
) -> Result<Drilled> {
    let ctx = &scope.ctx;
    let warn = |m: &str| ctx.notices.warn(m);
    let at = locate::locate(repo, index, &req.reference, &scope.filter(&req.filter, t), &warn)?;
    rec.fill(|r| {
        r.snapshots.push(at.id);
        set_label(r, "path", at.path.clone());
    });
    let mut scratch = Scratch::create(&req.scratch)
        .map_err(|e| e.within(format!("cannot create a scratch directory in {}", req.scratch.display())))?;
    if req.keep {
        scratch.keep();
    } else {
        *ACTIVE.lock().unwrap() = Some(scratch.path().to_path_buf());
    }
    req.options.scratch = scratch.path().to_path_buf();
    req.options.sample = req.sample;
    req.options.discard = !req.keep && in_memory(scratch.path());
    let res = engine::drill(repo, index, at.id, &at.snapshot, &at.node, &at.path, &req.options, progress);
    let check = match (&res, t.and_then(|t| stream_check(t))) {
        (Ok(_), Some((argv, filename))) => {
            Some(run_verify_command(scope, t, &at, argv, &scratch.path().join(RESTORE_DIR), filename))
        }
        _ => None,
    };
    // From here the scratch directory is removed by this thread (or kept), not by a signal.
    ACTIVE.lock().unwrap().take();
    let kept = req.keep.then(|| scratch.path().to_path_buf());
    let removal = if req.keep { Ok(()) } else { scratch.remove() };
    let report = res?;
    if let Err(e) = removal {
        ctx.notices.warn(&format!("could not remove the scratch directory: {e}"));
    }
    let max_rto = req.max_rto.or(t.and_then(|t| t.max_rto));
    let max_rto_ns = max_rto.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let rto_met = max_rto_ns.map(|m| report.rto_extrapolated_ns <= m);
    rec.fill(|r| record(r, &report, check.as_ref(), max_rto_ns));
    Ok(Drilled { report, scratch_kept: kept, verify_command: check, max_rto_ns, rto_met })
}

/// Whether `dir` is on a filesystem in memory (tmpfs, ramfs), where freeing a file's pages costs
/// as much as writing them: there a drill unlinks each file once verified, overlapping that work
/// with the restore. On a disk it removes the tree at the end instead, since unlinking files
/// whose pages are still being written back slows the restore itself (measured with
/// `benches/drill.sh`: on ext4 the drill took 12–45% longer with unlinking as it goes).
fn in_memory(dir: &Path) -> bool {
    const IN_MEMORY: [u64; 2] = [0x0102_1994, 0x8584_58f6]; // TMPFS_MAGIC, RAMFS_MAGIC
    #[allow(clippy::unnecessary_cast)] // `f_type` is a signed type on some targets
    rustix::fs::statfs(dir).is_ok_and(|s| IN_MEMORY.contains(&(s.f_type as u64)))
}

/// The `verify-command` and file name of a stream component that has one.
fn stream_check(t: &Target) -> Option<(&Vec<String>, &str)> {
    match (&t.component.verify_command, &t.component.source) {
        (Some(argv), Source::Command { filename, .. }) => Some((argv, filename.as_str())),
        _ => None,
    }
}

/// Run `argv` on the restored stream: on its standard input, and its path in `ARCA_DRILL_FILE`.
fn run_verify_command(
    scope: &Scope,
    t: Option<&Target>,
    at: &locate::Located,
    argv: &[String],
    restored: &Path,
    filename: &str,
) -> CommandCheck {
    let command = crate::archiver::command_line(&argv.iter().map(Into::into).collect::<Vec<_>>());
    // A whole-snapshot drill restores the stream under its name; a drill of its path, as it.
    let file = if restored.join(filename).is_file() { restored.join(filename) } else { restored.to_path_buf() };
    let mut env = super::restore::component_env(scope, t, at);
    env.push(("ARCA_DRILL_FILE", file.to_string_lossy().into_owned()));
    let result = std::fs::File::open(&file)
        .map_err(|e| Error::Io { path: file.clone(), source: e })
        .and_then(|mut f| super::profile::run_with_input(argv, &env, &mut f).map(|_| ()));
    CommandCheck { command, ok: result.is_ok(), error: result.err().map(|e| e.to_string()) }
}

/// The drill's journal record (format-spec 21.2: labels `path`, `sample`, `seed`,
/// `verify_command`; metrics `rto_ns`, `rto_full_ns`, `bytes_per_sec`, `sample_permille`,
/// `max_rto_ns`).
fn record(r: &mut super::journal::Record, d: &DrillReport, check: Option<&CommandCheck>, max_rto_ns: Option<u64>) {
    (r.bytes, r.files) = (d.drilled.bytes, d.drilled.files);
    r.errors.extend(d.damage.iter().chain(&d.errors).cloned());
    r.errors.extend(d.mismatches.iter().map(|m| format!("{}: {} differs", m.path.display(), m.kind)));
    if let Some(s) = &d.sample {
        let by = if s.by == SampleBy::Files { "files" } else { "bytes" };
        set_label(r, "sample", format!("{}% {by}", s.share * 100.0));
        set_label(r, "seed", s.seed.to_string());
        set_metric(r, "sample_permille", s.permille());
    }
    if let Some(c) = check {
        set_label(r, "verify_command", if c.ok { "ok" } else { "failed" });
        r.errors.extend(c.error.clone());
    }
    // What the restore itself found, the verify-command apart (format-spec 21.6).
    set_metric(r, "problems", (d.damage.len() + d.errors.len() + d.mismatches.len()) as u64);
    set_metric(r, "rto_ns", d.rto_measured_ns);
    set_metric(r, "rto_full_ns", d.rto_extrapolated_ns);
    set_metric(r, "bytes_per_sec", d.bytes_per_sec);
    if let Some(m) = max_rto_ns {
        set_metric(r, "max_rto_ns", m);
    }
}
