//! `backup`: of paths, of a stream (standard input or a command's output), or of a profile's
//! components — one snapshot each, the profile's hooks around them — each recorded in the
//! journal.
//!
//! Options given with a profile apply to every component they fit: `--exclude*` and
//! `--one-file-system` to components of paths, `--allow-empty` to components of commands,
//! `--tag` to all (besides the component's own tags), `--host` over the profile's.
//!
//! Hooks (README, "Profiles"): `before` runs first, and if one fails nothing is backed up;
//! `after` runs when every component was saved, and a failing `after` hook (an off-site copy,
//! a health-check ping) fails the run — exit 1, a failed backup record per component, so that
//! `status` shows the group failing until a later run succeeds; `on-failure` runs when
//! anything failed (its own failure is a warning: the run has failed already).

use super::context::Context;
use super::journal::{self, set_label, set_metric, Op, Recorder};
use super::outcome::{worst, HasOutcome, Outcome, Run};
use super::profile::{self, Profile, Source, Target};
use super::scope::Scope;
use crate::archiver::{self, BackupOptions, BackupResult, FilesFrom, Progress, Selection, SelectionOptions};
use crate::error::{Error, Result};
use crate::repo::Repository;
use std::path::PathBuf;

/// What to back up.
#[derive(Clone, Debug, Default)]
pub enum What {
    /// Files and directories.
    Paths(Vec<PathBuf>),
    /// Standard input, saved as this file name.
    Stdin(String),
    /// A command's standard output (no shell), saved as this file name.
    Command(Vec<std::ffi::OsString>, String),
    /// The components of the scope's profile.
    #[default]
    Profile,
}

/// A backup request: what, and the options that apply to it.
#[derive(Clone, Debug, Default)]
pub struct BackupRequest {
    /// What to back up.
    pub what: What,
    /// Tags for the snapshot (with a profile: besides each component's own).
    pub tags: Vec<String>,
    /// Host name to record.
    pub host: Option<String>,
    /// What to leave out: restic's `--exclude*` options.
    pub selection: SelectionOptions,
    /// Lists of further paths to back up (`--files-from*`).
    pub files_from: FilesFrom,
    /// Write no snapshot if nothing changed against the parent.
    pub skip_if_unchanged: bool,
    /// Do not cross filesystem boundaries.
    pub one_file_system: bool,
    /// Do everything except write.
    pub dry_run: bool,
    /// Read every file, even unchanged ones.
    pub force: bool,
    /// Parent snapshot for change detection.
    pub parent: Option<String>,
    /// Time to record instead of now (Unix ns).
    pub time: Option<i64>,
    /// Save an empty stream.
    pub allow_empty: bool,
    /// I/O threads (see [`BackupOptions::io_threads`]).
    pub io_threads: Option<usize>,
}

/// A failed hook.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HookFailure {
    /// `before`, `after` or `on-failure`.
    pub stage: &'static str,
    /// What failed (the command and how).
    pub error: String,
}

/// What a backup did.
pub struct BackupReport {
    /// One per snapshot attempted (none when a `before` hook stopped the run).
    pub runs: Vec<Run<BackupResult>>,
    /// Hooks that failed.
    pub hooks: Vec<HookFailure>,
    /// Whether nothing was written.
    pub dry_run: bool,
}

/// A backup is partial when files were skipped.
impl HasOutcome for BackupResult {
    fn outcome(&self) -> Outcome {
        if self.snapshot.summary.errors > 0 {
            Outcome::Partial
        } else {
            Outcome::Ok
        }
    }
}

impl HasOutcome for BackupReport {
    fn outcome(&self) -> Outcome {
        let hooks = self.hooks.iter().any(|h| h.stage != "on-failure");
        worst(self.runs.iter().map(HasOutcome::outcome).chain(hooks.then_some(Outcome::Failed)))
    }
}

/// Run a backup.
pub fn backup(scope: &Scope, req: &BackupRequest, progress: &Progress) -> Result<BackupReport> {
    let ctx = &scope.ctx;
    if scope.profile.is_some() && !req.files_from.is_empty() {
        return Err(Error::InvalidArgument("--files-from* go with paths, not with --profile".into()));
    }
    match (&req.what, &scope.profile) {
        (What::Profile, Some(p)) => profile_backup(scope, p, req, progress),
        (What::Profile, None) => {
            Err(Error::InvalidArgument("nothing to back up: give paths, --stdin or --profile".into()))
        }
        (_, Some(_)) => Err(Error::InvalidArgument(
            "--profile backs up the profile's components: give no paths, --stdin or --parent".into(),
        )),
        (what, None) => {
            let what = &with_files_from(ctx, what, &req.files_from)?;
            let mut rec = Recorder::start((!req.dry_run).then_some(Op::Backup));
            rec.fill(|r| label_target(r, what, &req.tags));
            let result = (|| {
                let repo = ctx.open_for(crate::ops::context::WRITERS, "back up")?;
                rec.attach(&repo);
                let opts = options(ctx, req, req.tags.clone(), req.host.clone())?;
                let res = match what {
                    What::Paths(paths) => {
                        archiver::backup(&repo, &BackupOptions { paths: paths.clone(), ..opts }, progress)
                    }
                    What::Stdin(name) => archiver::backup_stdin(&repo, &opts, progress, std::io::stdin().lock(), name),
                    What::Command(argv, name) => archiver::backup_command(&repo, &opts, progress, argv, name),
                    What::Profile => unreachable!("handled above"),
                };
                ctx.warn_index_problems(&repo);
                res
            })();
            let run = Run { component: None, result };
            if let Ok(res) = &run.result {
                rec.fill(|r| record(r, res));
            }
            warn_journal(ctx, rec.finish(run.outcome(), run.result.as_ref().err()));
            Ok(BackupReport { runs: vec![run], hooks: vec![], dry_run: req.dry_run })
        }
    }
}

/// `what` with the paths of the `--files-from*` lists added (restic: they go with paths only).
fn with_files_from(ctx: &Context, what: &What, lists: &FilesFrom) -> Result<What> {
    if lists.is_empty() {
        return Ok(what.clone());
    }
    let What::Paths(given) = what else {
        return Err(Error::InvalidArgument("--files-from* go with paths, not with --stdin or a command".into()));
    };
    let mut paths = lists.read(&|m: &str| ctx.notices.warn(m))?;
    paths.extend(given.iter().cloned());
    if paths.is_empty() {
        return Err(Error::InvalidArgument("nothing to back up: the --files-from lists name no files".into()));
    }
    Ok(What::Paths(paths))
}

/// The archiver's options from the request (exclude files read now).
fn options(ctx: &Context, req: &BackupRequest, tags: Vec<String>, host: Option<String>) -> Result<BackupOptions> {
    let notices = ctx.notices.clone();
    let wait = ctx.retry_lock;
    Ok(BackupOptions {
        tags,
        host,
        excludes: Selection::new(&req.selection)?,
        one_file_system: req.one_file_system,
        skip_if_unchanged: req.skip_if_unchanged,
        io_threads: req.io_threads,
        dry_run: req.dry_run,
        force: req.force,
        parent: req.parent.clone(),
        time: req.time,
        allow_empty: req.allow_empty,
        retry_lock: wait,
        on_lock_wait: Some(Box::new(move |e: &Error| notices.waiting(e, wait))),
        parent_cache: ctx.cache.clone(),
        ..Default::default()
    })
}

fn warn_journal(ctx: &Context, warning: Option<String>) {
    if let Some(w) = warning {
        ctx.notices.warn(&w);
    }
}

/// Label the record with what the backup is of before it runs, so that a failed backup is
/// attributed to its group by `status` (a successful one relabels from its snapshot).
fn label_target(r: &mut journal::Record, what: &What, tags: &[String]) {
    let paths: Vec<String> = match what {
        What::Stdin(name) | What::Command(_, name) => vec![name.clone()],
        What::Paths(paths) => paths
            .iter()
            .filter_map(|p| archiver::make_absolute(p).ok())
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
        What::Profile => vec![],
    };
    set_label(r, "paths", paths.join("\n"));
    let mut tags = tags.to_vec();
    tags.sort();
    tags.dedup();
    if !tags.is_empty() {
        set_label(r, "tags", tags.join(","));
    }
}

/// What a backup's journal record says.
fn record(r: &mut journal::Record, res: &BackupResult) {
    let (snap, s) = (&res.snapshot, &res.snapshot.summary);
    r.snapshots.extend(res.id);
    r.bytes = s.bytes_read;
    r.files = s.files_new + s.files_changed + s.files_unchanged;
    let paths: Vec<_> = snap.paths.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    set_label(r, "paths", paths.join("\n"));
    if !snap.tags.is_empty() {
        set_label(r, "tags", snap.tags.join(","));
    }
    set_metric(r, "bytes_added", s.bytes_added);
    set_metric(r, "bytes_stored", s.bytes_stored);
    set_metric(r, "blobs_added", s.blobs_added);
    set_metric(r, "skipped", s.errors);
    r.errors.extend(res.warnings.iter().map(|w| format!("{}: {}", w.path.display(), w.message)));
}

/// `backup --profile`: before hooks, one snapshot per selected component (going on after a
/// failure), then the after or on-failure hooks.
fn profile_backup(scope: &Scope, p: &Profile, req: &BackupRequest, progress: &Progress) -> Result<BackupReport> {
    let ctx = &scope.ctx;
    let names: Vec<&str> = scope.targets.iter().map(|t| t.name.as_str()).collect();
    let mut env = vec![("ARCA_PROFILE", p.name.clone()), ("ARCA_COMPONENT", names.join(","))];
    let mut report = BackupReport { runs: vec![], hooks: vec![], dry_run: req.dry_run };
    for h in &p.hooks.before {
        if let Err(e) = profile::run_hook(h, &env) {
            let msg = format!("before hook failed: {e}; nothing was backed up");
            let failure = HookFailure { stage: "before", error: msg.clone() };
            if !req.dry_run {
                record_failure(scope, &failure, None);
            }
            report.hooks.push(failure);
            failure_hooks(p, env, Outcome::Failed, &msg, &mut report);
            return Ok(report);
        }
    }
    let repo = match ctx.open_for(crate::ops::context::WRITERS, "back up") {
        Ok(repo) => repo,
        Err(e) => {
            failure_hooks(p, env, Outcome::of_error(&e), &e.to_string(), &mut report);
            return Err(e);
        }
    };
    for t in &scope.targets {
        ctx.notices.component(&t.name);
        let mut rec = Recorder::start((!req.dry_run).then_some(Op::Backup));
        rec.component(&p.name, &t.name);
        rec.attach(&repo);
        let result = backup_component(ctx, &repo, p, t, req, progress);
        let run = Run { component: Some(t.name.clone()), result };
        if let Ok(res) = &run.result {
            rec.fill(|r| record(r, res));
        }
        warn_journal(ctx, rec.finish(run.outcome(), run.result.as_ref().err()));
        report.runs.push(run);
    }
    ctx.warn_index_problems(&repo);
    let snapshots: Vec<String> =
        report.runs.iter().filter_map(|r| r.result.as_ref().ok().and_then(|b| b.id)).map(|id| id.to_string()).collect();
    env.push(("ARCA_SNAPSHOT", snapshots.join(" ")));
    let outcome = report.outcome();
    if outcome.succeeded() {
        env.push(("ARCA_EXIT_CODE", outcome.exit_code().to_string()));
        for h in &p.hooks.after {
            if let Err(e) = profile::run_hook(h, &env) {
                let msg = format!("after hook failed: {e}");
                let failure = HookFailure { stage: "after", error: msg.clone() };
                if !req.dry_run {
                    record_failure(scope, &failure, Some(&repo));
                }
                report.hooks.push(failure);
                env.retain(|(k, _)| *k != "ARCA_EXIT_CODE");
                failure_hooks(p, env, Outcome::Failed, &msg, &mut report);
                return Ok(report);
            }
        }
    } else {
        let errors: Vec<String> = report
            .runs
            .iter()
            .filter_map(|r| r.result.as_ref().err().map(|e| format!("{}: {e}", r.component.as_deref().unwrap_or(""))))
            .collect();
        let msg = if errors.is_empty() { "some files could not be read".to_string() } else { errors.join("; ") };
        failure_hooks(p, env, outcome, &msg, &mut report);
    }
    Ok(report)
}

/// A backup the profile's hooks failed is a failed backup of each component: record it, so
/// `journal --failed` and `status` see it (if the repository can be opened at all).
fn record_failure(scope: &Scope, failure: &HookFailure, repo: Option<&Repository>) {
    let opened;
    let repo = match repo {
        Some(r) => r,
        None => match scope.ctx.open() {
            Ok(r) => {
                opened = r;
                &opened
            }
            Err(_) => return,
        },
    };
    let profile = scope.profile.as_ref().map_or("", |p| p.name.as_str());
    for t in &scope.targets {
        let mut rec = Recorder::start(Some(Op::Backup));
        rec.component(profile, &t.name);
        rec.attach(repo);
        rec.fill(|r| {
            set_label(r, "hook", failure.stage);
            r.errors.push(failure.error.clone());
        });
        warn_journal(&scope.ctx, rec.finish(Outcome::Failed, None));
    }
}

/// Run the on-failure hooks with the exit code and error in their environment.
fn failure_hooks(p: &Profile, mut env: Vec<(&str, String)>, outcome: Outcome, error: &str, report: &mut BackupReport) {
    env.push(("ARCA_EXIT_CODE", outcome.exit_code().to_string()));
    env.push(("ARCA_ERROR", error.to_string()));
    for h in &p.hooks.on_failure {
        if let Err(e) = profile::run_hook(h, &env) {
            report.hooks.push(HookFailure { stage: "on-failure", error: e.to_string() });
        }
    }
}

/// Back up one component.
fn backup_component(
    ctx: &Context,
    repo: &Repository,
    p: &Profile,
    t: &Target,
    req: &BackupRequest,
    progress: &Progress,
) -> Result<BackupResult> {
    let c = &t.component;
    let mut tags = c.tags.clone();
    tags.extend(profile::component_tags(&p.name, &c.name));
    tags.extend(req.tags.iter().cloned());
    let host = req.host.clone().or_else(|| p.host.clone());
    match &c.source {
        Source::Paths { paths, selection, one_file_system } => {
            let mut r = req.clone();
            merge_selection(&mut r.selection, selection);
            r.one_file_system |= *one_file_system;
            let opts = BackupOptions { paths: paths.clone(), ..options(ctx, &r, tags, host)? };
            archiver::backup(repo, &opts, progress)
        }
        Source::Command { argv, filename, allow_empty } => {
            let mut r = req.clone();
            r.allow_empty |= *allow_empty;
            let opts = options(ctx, &r, tags, host)?;
            let argv: Vec<std::ffi::OsString> = argv.iter().map(Into::into).collect();
            archiver::backup_command(repo, &opts, progress, &argv, filename)
        }
    }
}

/// A component's own selection added to the command line's (the smaller size limit wins).
fn merge_selection(into: &mut SelectionOptions, own: &SelectionOptions) {
    let (p, o) = (&mut into.patterns, &own.patterns);
    p.excludes.extend(o.excludes.iter().cloned());
    p.iexcludes.extend(o.iexcludes.iter().cloned());
    p.exclude_files.extend(o.exclude_files.iter().cloned());
    p.iexclude_files.extend(o.iexclude_files.iter().cloned());
    into.exclude_caches |= own.exclude_caches;
    into.exclude_if_present.extend(own.exclude_if_present.iter().cloned());
    into.exclude_larger_than = match (into.exclude_larger_than, own.exclude_larger_than) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
}
