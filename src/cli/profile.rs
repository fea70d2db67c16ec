//! `--profile NAME [--component A,B]` for `backup`, `restore` and `forget`: the configuration
//! file's repository, password and components (see `arca::ops::profile` and the README's
//! "Profiles"), and `backup --profile` itself, with its hooks.

use super::output::escape_str;
use super::{code, human, Global};
use anyhow::Result;
use arca::archiver::{self, BackupOptions, Excludes, Progress};
use arca::ops::journal::{self, Op};
use arca::ops::profile::{self, Profile, RepositorySettings, Resolved, Source, Target};
use serde_json::{json, Value};

/// Which profile and components a command acts on.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ProfileArgs {
    /// Use this profile of the configuration file (--config, ARCA_CONFIG, or
    /// ~/.config/arca/config.toml): its repository, password and components.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Only these components of the profile (comma-separated or repeated; default: all).
    #[arg(long = "component", value_name = "NAME[,NAME...]", value_delimiter = ',', requires = "profile")]
    pub components: Vec<String>,
}

impl ProfileArgs {
    /// True when `--profile` was given.
    pub fn is_set(&self) -> bool {
        self.profile.is_some()
    }
}

/// Resolve `--profile`/`--component` (usage errors, exit 2, before any password is asked for),
/// and the context to run with: the profile's repository and password unless `-r` was given.
pub fn resolve(g: &Global, p: &ProfileArgs) -> Result<(Resolved, Global)> {
    let name = p.profile.as_deref().unwrap_or_default();
    let r = profile::resolve(g.config.as_deref(), name, &p.components)?;
    let g2 = with_repository(g, r.repository.as_ref(), None);
    Ok((r, g2))
}

/// `g` with the profile's repository; its password source too, unless one was given. An explicit
/// `-r` (or ARCA_REPOSITORY) wins, and then the profile's password source is not used either.
/// `op`: the journal record this context writes once it opens the repository (one per
/// component; the dispatcher's own record is not written, as its context opens nothing).
fn with_repository(g: &Global, repo: Option<&RepositorySettings>, op: Option<Op>) -> Global {
    let mut password = g.password.clone();
    let mut dir = g.repo.clone();
    if let (None, Some(r)) = (&dir, repo) {
        dir = Some(r.path.clone());
        if password.password_file.is_none() && password.password_command.is_none() {
            password.password_file = r.password_file.clone();
            password.password_command = r.password_command.clone();
        }
    }
    Global {
        repo: dir,
        password,
        json: g.json,
        quiet: g.quiet,
        retry_lock: g.retry_lock,
        connections: g.connections,
        config: g.config.clone(),
        journal: super::journal::begin(op),
    }
}

/// Run `f` for each selected component with the profile's context, going on after a failure.
/// Text output gets a `component NAME:` heading before each; with `--json`, one array of the
/// documents `f` returns, each with `component` set (and `error` for a failure). Each component
/// gets its own journal record of `op` (None: none, as for a dry run), labelled with the profile
/// and component, written if `f` opened the repository through its context. Returns the worst
/// exit code.
pub fn each_component(
    g: &Global,
    p: &ProfileArgs,
    op: Option<Op>,
    mut f: impl FnMut(&Global, &Target) -> Result<(u8, Value)>,
) -> Result<u8> {
    let (r, g) = resolve(g, p)?;
    let mut worst = code::OK;
    let mut docs = Vec::new();
    for t in &r.targets {
        if !g.json && !g.quiet {
            println!("component {}:", t.name);
        }
        let gc = with_repository(&g, r.repository.as_ref(), op);
        gc.journal(|rec| label(rec, &r.profile.name, &t.name));
        let res = f(&gc, t);
        let (status, mut doc) = match &res {
            Ok(v) => v.clone(),
            Err(e) => {
                let status = super::exit_code(e);
                if !g.json {
                    eprintln!("arca: component {}: {}", t.name, escape_str(&super::error_text(e)));
                }
                (status, json!({"error": super::error_text(e), "code": status}))
            }
        };
        super::journal::end(&gc, &res.map(|(c, _)| c));
        doc["component"] = json!(t.name);
        docs.push(doc);
        worst = worse(worst, status);
    }
    if g.json {
        g.print_json(&json!({"profile": r.profile.name, "components": docs}))?;
    }
    Ok(worst)
}

/// The worse of two exit codes: any failure is worse than a partial backup (3), which is worse
/// than success; between failures, the higher code.
pub fn worse(a: u8, b: u8) -> u8 {
    let rank = |c: u8| match c {
        code::OK => 0,
        code::PARTIAL => 1,
        c => 2 + u32::from(c),
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// `backup` options that apply to every component of a profile backup.
pub struct BackupFlags {
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--force`.
    pub force: bool,
    /// `--tag`: added to each component's tags.
    pub tags: Vec<String>,
    /// `--host`: overrides the profile's.
    pub host: Option<String>,
    /// `--time`.
    pub time: Option<i64>,
}

/// `arca backup --profile NAME [--component A,B]`: one snapshot per component, going on after a
/// component fails; hooks before (a failure aborts), after (all succeeded) and on failure.
pub fn backup(g: &Global, p: &ProfileArgs, flags: BackupFlags) -> Result<u8> {
    let (r, g) = resolve(g, p)?;
    let names: Vec<&str> = r.targets.iter().map(|t| t.name.as_str()).collect();
    let env = vec![("ARCA_PROFILE", r.profile.name.clone()), ("ARCA_COMPONENT", names.join(","))];
    for h in &r.profile.hooks.before {
        if let Err(e) = profile::run_hook(h, &env) {
            let msg = format!("before hook failed: {e}; nothing was backed up");
            eprintln!("arca: {}", escape_str(&msg));
            if !flags.dry_run {
                journal_refusal(&g, &r, &msg);
            }
            failure_hooks(&r.profile, env, code::ERROR, &msg);
            return Ok(code::ERROR);
        }
    }
    let repo = match g.open() {
        Ok(repo) => repo,
        Err(e) => {
            let status = super::exit_code(&e);
            failure_hooks(&r.profile, env, status, &super::error_text(&e));
            return Err(e);
        }
    };
    let mut worst = code::OK;
    let (mut docs, mut snapshots, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for t in &r.targets {
        let mut rec = journal::start(Op::Backup);
        label(&mut rec, &r.profile.name, &t.name);
        let (status, doc) = match backup_component(&g, &repo, &r.profile, t, &flags) {
            Ok((status, res, doc)) => {
                snapshots.extend(res.id.map(|id| id.to_string()));
                super::snap::journal_backup(&mut rec, &res);
                (status, doc)
            }
            Err(e) => {
                let status = super::exit_code(&e);
                let text = super::error_text(&e);
                if !g.json {
                    eprintln!("arca: component {}: {}", t.name, escape_str(&text));
                }
                rec.errors.push(text.clone());
                errors.push(format!("{}: {text}", t.name));
                (status, json!({"component": t.name, "error": text, "code": status}))
            }
        };
        // One record per component; a failure to write it is a warning, never a failed backup.
        if !flags.dry_run {
            journal::finish(&mut rec, status);
            if let Err(e) = journal::append(&repo, &rec) {
                eprintln!("warning: could not write the journal record of component {}: {e}", t.name);
            }
        }
        docs.push(doc);
        worst = worse(worst, status);
    }
    super::warn_index_problems(&repo);
    if g.json {
        g.print_json(&json!({"profile": r.profile.name, "components": docs, "exit_code": worst}))?;
    }
    let mut env = env;
    env.push(("ARCA_SNAPSHOT", snapshots.join(" ")));
    if worst == code::OK || worst == code::PARTIAL && errors.is_empty() {
        env.push(("ARCA_EXIT_CODE", worst.to_string()));
        for h in &r.profile.hooks.after {
            warn_hook(h, &env);
        }
    } else {
        let msg = if errors.is_empty() { "some files could not be read".to_string() } else { errors.join("; ") };
        failure_hooks(&r.profile, env, worst, &msg);
    }
    Ok(worst)
}

/// Label a journal record with the profile and component it is about.
fn label(rec: &mut journal::Record, profile: &str, component: &str) {
    journal::set_label(rec, "profile", profile);
    journal::set_label(rec, "component", component);
}

/// A backup the before hook stopped is still a failed backup of each component: record it, so
/// `journal --failed` and `status` see it (if the repository can be opened at all).
fn journal_refusal(g: &Global, r: &Resolved, msg: &str) {
    let Ok(repo) = g.open() else { return };
    for t in &r.targets {
        let mut rec = journal::start(Op::Backup);
        label(&mut rec, &r.profile.name, &t.name);
        rec.errors.push(msg.to_string());
        journal::finish(&mut rec, code::ERROR);
        if let Err(e) = journal::append(&repo, &rec) {
            eprintln!("warning: could not write the journal record of this backup: {e}");
        }
    }
}

/// Run the on-failure hooks with the exit code and error in their environment.
fn failure_hooks(p: &Profile, mut env: Vec<(&str, String)>, status: u8, error: &str) {
    env.push(("ARCA_EXIT_CODE", status.to_string()));
    env.push(("ARCA_ERROR", error.to_string()));
    for h in &p.hooks.on_failure {
        warn_hook(h, &env);
    }
}

fn warn_hook(h: &[String], env: &[(&str, String)]) {
    if let Err(e) = profile::run_hook(h, env) {
        eprintln!("warning: {}", escape_str(&e.to_string()));
    }
}

/// Back up one component: (exit code, result, JSON document), printing a summary line.
fn backup_component(
    g: &Global,
    repo: &arca::repo::Repository,
    prof: &Profile,
    t: &Target,
    flags: &BackupFlags,
) -> Result<(u8, archiver::BackupResult, Value)> {
    let c = &t.component;
    let mut tags = c.tags.clone();
    tags.extend(profile::component_tags(&prof.name, &c.name));
    tags.extend(flags.tags.iter().cloned());
    let mut opts = BackupOptions {
        tags,
        host: flags.host.clone().or_else(|| prof.host.clone()),
        dry_run: flags.dry_run,
        force: flags.force,
        time: flags.time,
        retry_lock: g.retry_lock,
        ..Default::default()
    };
    let progress: &'static Progress = Box::leak(Box::default());
    let bar = super::snap::progress_bar(g, progress);
    let res = match &c.source {
        Source::Paths { paths, excludes, exclude_if_present, one_file_system } => {
            opts.paths = paths.clone();
            opts.excludes = Excludes::new(excludes, exclude_if_present.clone())?;
            opts.one_file_system = *one_file_system;
            archiver::backup(repo, &opts, progress)
        }
        Source::Command { argv, filename, allow_empty } => {
            opts.allow_empty = *allow_empty;
            let argv: Vec<std::ffi::OsString> = argv.iter().map(Into::into).collect();
            archiver::backup_command(repo, &opts, progress, &argv, filename)
        }
    };
    if let Some((b, h)) = bar {
        b.finish_and_clear();
        let _ = h.join();
    }
    let res = res?;
    for w in &res.warnings {
        eprintln!("warning: {}: {}: {}", c.name, w.path.display(), w.message);
    }
    let s = &res.snapshot.summary;
    let status = if s.errors > 0 { code::PARTIAL } else { code::OK };
    if !g.json && !g.quiet {
        let what = match res.id {
            Some(id) => format!("snapshot {} saved", id.short()),
            None => "dry run: nothing written".into(),
        };
        println!(
            "component {}: {what}; read {}, added {} ({} files new, {} changed, {} unchanged)",
            c.name,
            human(s.bytes_read),
            human(s.bytes_added),
            s.files_new,
            s.files_changed,
            s.files_unchanged
        );
    }
    let doc = json!({"component": c.name, "snapshot": res.id, "code": status, "summary": s, "dry_run": flags.dry_run});
    Ok((status, res, doc))
}
