//! Profiles: named components of an application, read from a TOML configuration file.
//!
//! A profile says what to back up (its components: paths with excludes, or a command whose
//! output is a database dump), where (a named repository with its password source), how long to
//! keep it (per component, the `keep-*` rules of `arca forget`), how old the newest backup may
//! be (`max-age`, the recovery point objective) and what to run around a backup (hooks).
//!
//! # API for commands that take `--profile` / `--component`
//!
//! ```no_run
//! # fn demo() -> arca::Result<()> {
//! use arca::ops::profile;
//! // `None`: the search order (ARCA_CONFIG, then the XDG path); the CLI passes `--config`.
//! let r = profile::resolve(None, "app", &["db".to_string()])?;
//! // r.repository: Option<RepositorySettings> (path, password-file, password-command);
//! for t in &r.targets {
//!     // t.name ("db"), t.filter (a SnapshotFilter selecting exactly that component's
//!     // snapshots), t.max_age (Option<Duration>), t.component (the whole definition).
//!     let _ = (&t.name, &t.filter, t.max_age, &t.component.retention);
//! }
//! # Ok(()) }
//! ```
//!
//! [`resolve`] = [`config_path`] + [`load`] + [`Config::profile`] + [`Profile::targets`]; an empty
//! component list means every component. Unknown profiles and components are
//! [`Error::InvalidArgument`] (exit 2) naming the valid ones. A command's own objective
//! (`status --max-age`) should override [`Target::max_age`]; `None` means no objective.
//!
//! Operations do not call this directly: [`crate::ops::scope::Scope::resolve`] does, once per
//! command, and also applies the profile's repository and password; an operation then runs
//! once per selected component with [`crate::ops::scope::Scope::each`].
//!
//! # How components are found again
//!
//! Each component's snapshots carry two tags, `profile=NAME` and `component=NAME`
//! ([`component_tags`]), besides the component's own. The pair, not the paths, identifies
//! them: paths change when a configuration is edited, tags do not. [`component_filter`] selects
//! snapshots with both tags; `forget --profile` applies a component's retention to them grouped
//! by host only, so a changed path list does not start a second history.
//!
//! # Errors name the line
//!
//! Unknown keys and bad values are rejected while parsing, with the line and column of the key
//! or value ([`Error::InvalidArgument`], "FILE: line N, column M: ..."). This module reads files
//! and runs hooks; it never prints.

use crate::error::{Error, Result};
use crate::lifecycle::policy::{Count, KeepPolicy, Span};
use crate::repo::select::SnapshotFilter;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Tag prefix that names the profile of a component's snapshots.
pub const PROFILE_TAG: &str = "profile=";
/// Tag prefix that names the component of a component's snapshots.
pub const COMPONENT_TAG: &str = "component=";

/// A parsed, validated configuration file.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where it was read from (for messages).
    pub source: PathBuf,
    /// Repositories by name.
    pub repositories: BTreeMap<String, RepositorySettings>,
    /// Profiles by name.
    pub profiles: BTreeMap<String, Profile>,
}

/// A repository and how to get its password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositorySettings {
    /// Its name in the configuration.
    pub name: String,
    /// The repository directory.
    pub path: PathBuf,
    /// Read the password from the first line of this file.
    pub password_file: Option<PathBuf>,
    /// Run this shell command and use the first line it prints (as `--password-command`).
    pub password_command: Option<String>,
}

/// One application's backup: components, repository, objective and hooks.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Its name.
    pub name: String,
    /// The repository it backs up to (None when the configuration names none: `-r` decides).
    pub repository: Option<RepositorySettings>,
    /// Host name to record instead of this machine's.
    pub host: Option<String>,
    /// Recovery point objective for components that set none.
    pub max_age: Option<Duration>,
    /// Recovery time objective for components that set none: the longest a full restore may
    /// take, as drills measure it.
    pub max_rto: Option<Duration>,
    /// When components that set no schedule of their own are backed up.
    pub schedule: Option<Schedule>,
    /// When the profile's maintenance runs (units of `generate systemd`).
    pub timers: Timers,
    /// The alert command: run by `status --alert` when something is wrong (and by `status
    /// --test-alert`), with the status as JSON on its standard input.
    pub alert: Option<Vec<String>>,
    /// Free space the repository's storage must keep (`status` misses its objective below it).
    pub min_free: Option<FreeSpace>,
    /// Commands run around `backup --profile`.
    pub hooks: Hooks,
    /// Components, by name (sorted).
    pub components: Vec<Component>,
}

/// When something runs: every so long (`4h`), or a systemd calendar expression (`daily`,
/// `Mon *-*-* 02:00`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Every this long.
    Every(Duration),
    /// A calendar expression, for systemd's `OnCalendar=`.
    Calendar(String),
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Every(d) => write!(f, "every {}", humantime::format_duration(*d)),
            Schedule::Calendar(c) => f.write_str(c),
        }
    }
}

impl std::str::FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Schedule, String> {
        let t = s.trim();
        if let Ok(d) = humantime::parse_duration(t) {
            if d.as_secs() < 60 || d.subsec_nanos() != 0 || d.as_secs() % 60 != 0 {
                return Err(format!("{s:?}: a period is whole minutes, at least 1m"));
            }
            return Ok(Schedule::Every(d));
        }
        let ok = !t.is_empty() && t.len() <= 256 && t.chars().all(|c| c.is_ascii_graphic() || c == ' ');
        match ok && !t.contains('%') && !t.contains('\\') {
            true => Ok(Schedule::Calendar(t.to_string())),
            false => Err(format!("{s:?}: give a period (4h, 30m) or a systemd calendar expression (daily, Mon 02:00)")),
        }
    }
}

/// The schedules of a profile's maintenance, for `generate systemd`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timers {
    /// `forget --profile P --prune` (each component's retention).
    pub forget: Option<Schedule>,
    /// `check --read-data-subset`.
    pub check: Option<Schedule>,
    /// What the scheduled check reads (`1/7`, `10%`; default all of it).
    pub check_read_data_subset: Option<String>,
    /// `drill --profile P`.
    pub drill: Option<Schedule>,
    /// The scheduled drill's sample (`5%`; default a whole drill).
    pub drill_sample: Option<String>,
    /// `status --profile P` (with the alert on failure).
    pub status: Option<Schedule>,
}

/// A free-space threshold: bytes, or a percentage of the filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FreeSpace {
    /// At least this many bytes free.
    Bytes(u64),
    /// At least this share free, in percent.
    Percent(u8),
}

impl std::str::FromStr for FreeSpace {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<FreeSpace, String> {
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            return match p.trim().parse::<u8>() {
                Ok(p) if (1..=99).contains(&p) => Ok(FreeSpace::Percent(p)),
                _ => Err(format!("{s:?}: a percentage from 1% to 99%")),
            };
        }
        crate::lifecycle::prune::parse_size(t)
            .map(FreeSpace::Bytes)
            .map_err(|e| format!("{s:?}: {e} (or a percentage, 10%)"))
    }
}

/// Commands run by `backup --profile`, each an argument vector run without a shell, with
/// `ARCA_PROFILE`, `ARCA_COMPONENT` (comma-separated), and after the backup `ARCA_SNAPSHOT`
/// (space-separated IDs), `ARCA_EXIT_CODE` and, on failure, `ARCA_ERROR` in the environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hooks {
    /// Before anything is backed up; one that fails aborts the backup.
    pub before: Vec<Vec<String>>,
    /// After every selected component was backed up; a failure is a warning.
    pub after: Vec<Vec<String>>,
    /// After a backup in which something failed (including a before hook); a failure is a warning.
    pub on_failure: Vec<Vec<String>>,
}

/// A named part of an application, backed up as its own snapshot.
#[derive(Clone, Debug)]
pub struct Component {
    /// Its name.
    pub name: String,
    /// What is backed up.
    pub source: Source,
    /// Extra tags for its snapshots (besides [`component_tags`]).
    pub tags: Vec<String>,
    /// How `forget --profile` thins its snapshots (empty: it keeps them all).
    pub retention: KeepPolicy,
    /// Recovery point objective: the newest snapshot may be at most this old.
    pub max_age: Option<Duration>,
    /// Recovery time objective: a full restore may take at most this long, as drills measure it.
    pub max_rto: Option<Duration>,
    /// When it is backed up (default: the profile's schedule).
    pub schedule: Option<Schedule>,
    /// For a stream: the command `restore --in-place` pipes it into (no shell), e.g.
    /// `["pg_restore", "--clean", "-d", "app"]`.
    pub restore_command: Option<Vec<String>>,
    /// For a stream: the command a drill runs on the restored stream (on its standard input,
    /// and its path in `ARCA_DRILL_FILE`) to prove it loads; a non-zero exit fails the drill.
    pub verify_command: Option<Vec<String>>,
}

/// What a component backs up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Files and directories.
    Paths {
        /// Absolute paths.
        paths: Vec<PathBuf>,
        /// What to leave out, as `backup`'s `--exclude*` options (keys `excludes`, `iexcludes`,
        /// `exclude-files`, `iexclude-files`, `exclude-caches`, `exclude-if-present`,
        /// `exclude-larger-than`).
        selection: crate::archiver::SelectionOptions,
        /// Do not cross filesystem boundaries.
        one_file_system: bool,
    },
    /// The standard output of a command (a database dump), as `backup --stdin-from-command`.
    Command {
        /// The command and its arguments (no shell).
        argv: Vec<String>,
        /// The file name of the stream in the snapshot.
        filename: String,
        /// Save an empty output instead of failing.
        allow_empty: bool,
    },
}

/// What [`resolve`] gives a command: the repository and, for each selected component, how to
/// find its snapshots and its objective.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The configuration file read.
    pub source: PathBuf,
    /// The profile's repository, if the configuration names one.
    pub repository: Option<RepositorySettings>,
    /// The whole profile (hooks, host, every component).
    pub profile: Profile,
    /// The selected components, in the profile's order.
    pub targets: Vec<Target>,
}

/// One selected component.
#[derive(Clone, Debug)]
pub struct Target {
    /// The component's name.
    pub name: String,
    /// Selects this component's snapshots (see [`component_filter`]).
    pub filter: SnapshotFilter,
    /// Its objective: the component's `max-age`, else the profile's.
    pub max_age: Option<Duration>,
    /// Its restore time objective: the component's `max-rto`, else the profile's.
    pub max_rto: Option<Duration>,
    /// Its definition.
    pub component: Component,
}

/// The configuration file to read: `explicit` (`--config`, which the CLI also fills from
/// `ARCA_CONFIG`), else `$ARCA_CONFIG`, else `$XDG_CONFIG_HOME/arca/config.toml`, else
/// `~/.config/arca/config.toml`. `None` when no location can be formed (no `HOME`).
pub fn config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(p) = var("ARCA_CONFIG") {
        return Some(p);
    }
    // The XDG spec ignores relative values.
    if let Some(x) = var("XDG_CONFIG_HOME").filter(|p| p.is_absolute()) {
        return Some(x.join("arca/config.toml"));
    }
    var("HOME").map(|h| h.join(".config/arca/config.toml"))
}

/// Read and validate the configuration at `path`, refusing one that someone other than root or
/// the user running arca could have written: the file, every directory above it and every
/// symlink on the way must belong to root or that user and must not be writable by group or
/// others (a sticky directory such as `/tmp` may be: no one can replace another's entry there),
/// as ssh and sudo require of theirs, since the configuration decides which commands arca runs.
/// The file is read from the descriptor that was checked. A missing file or an unsafe one is
/// [`Error::InvalidArgument`] (a usage error).
pub fn load(path: &Path) -> Result<Config> {
    use crate::trusted_path::{read_owned, Refusal};
    let bytes = match read_owned(path, MAX_CONFIG_BYTES) {
        Ok(b) => b,
        Err(Refusal::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::InvalidArgument(format!(
                "no configuration file at {} (give --config FILE or set ARCA_CONFIG)",
                path.display()
            )))
        }
        Err(Refusal::Io { path: at, source }) => return Err(Error::Io { path: at, source }),
        Err(unsafe_) => {
            return Err(Error::InvalidArgument(format!(
                "configuration {}: {unsafe_}; it decides which commands arca runs, so it must be \
                 changeable by root or you alone (fix with chown or chmod go-w)",
                path.display()
            )))
        }
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::InvalidArgument(format!("configuration {}: not UTF-8 text", path.display())))?;
    parse(&text, path)
}

/// The largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Parse and validate configuration text; `source` names it in messages.
pub fn parse(text: &str, source: &Path) -> Result<Config> {
    let at = |span: Option<std::ops::Range<usize>>, msg: &str| {
        let pos = span.map_or(String::new(), |s| {
            let (line, col) = line_col(text, s.start);
            format!(" line {line}, column {col}:")
        });
        Error::InvalidArgument(format!("{}:{pos} {}", source.display(), msg.trim_end()))
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| at(e.span(), e.message()))?;
    let mut repositories = BTreeMap::new();
    for (name, r) in raw.repository {
        let span = r.span();
        let r = r.into_inner();
        check_name(&name, "repository").map_err(|m| at(Some(span.clone()), &m))?;
        if r.password_file.is_some() && r.password_command.is_some() {
            return Err(at(
                Some(span),
                &format!("repository {name}: give password-file or password-command, not both"),
            ));
        }
        let settings = RepositorySettings {
            name: name.clone(),
            path: r.path,
            password_file: r.password_file,
            password_command: r.password_command,
        };
        repositories.insert(name, settings);
    }
    let mut profiles = BTreeMap::new();
    for (name, p) in raw.profile {
        let span = p.span();
        check_name(&name, "profile").map_err(|m| at(Some(span.clone()), &m))?;
        let profile = build_profile(&name, p.into_inner(), &repositories).map_err(|(s, m)| at(s.or(Some(span)), &m))?;
        profiles.insert(name, profile);
    }
    Ok(Config { source: source.to_path_buf(), repositories, profiles })
}

impl Config {
    /// The profile `name`, or a usage error listing the profiles there are.
    pub fn profile(&self, name: &str) -> Result<&Profile> {
        self.profiles.get(name).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "no profile {name:?} in {} (profiles: {})",
                self.source.display(),
                list(self.profiles.keys())
            ))
        })
    }
}

impl Profile {
    /// The components named (every one when `names` is empty), in the profile's order, each
    /// with its filter and objective; a usage error naming an unknown one and the valid names.
    pub fn targets(&self, names: &[String]) -> Result<Vec<Target>> {
        for n in names {
            if !self.components.iter().any(|c| &c.name == n) {
                return Err(Error::InvalidArgument(format!(
                    "profile {} has no component {n:?} (components: {})",
                    self.name,
                    list(self.components.iter().map(|c| &c.name))
                )));
            }
        }
        Ok(self
            .components
            .iter()
            .filter(|c| names.is_empty() || names.contains(&c.name))
            .map(|c| Target {
                name: c.name.clone(),
                filter: component_filter(&self.name, &c.name),
                max_age: c.max_age.or(self.max_age),
                max_rto: c.max_rto.or(self.max_rto),
                component: c.clone(),
            })
            .collect())
    }
}

/// The one call for `--profile NAME [--component A,B]`: find the configuration
/// ([`config_path`] of `config`), load it, pick the profile and its components.
pub fn resolve(config: Option<&Path>, profile: &str, components: &[String]) -> Result<Resolved> {
    let path = config_path(config).ok_or_else(|| {
        Error::InvalidArgument("no configuration file: give --config FILE or set ARCA_CONFIG (HOME is not set)".into())
    })?;
    let cfg = load(&path)?;
    let p = cfg.profile(profile)?;
    Ok(Resolved { source: path, repository: p.repository.clone(), profile: p.clone(), targets: p.targets(components)? })
}

/// The tags `backup --profile` gives every snapshot of a component (with the component's own).
pub fn component_tags(profile: &str, component: &str) -> [String; 2] {
    [format!("{COMPONENT_TAG}{component}"), format!("{PROFILE_TAG}{profile}")]
}

/// Selects the snapshots of one component of one profile: those with both its tags.
pub fn component_filter(profile: &str, component: &str) -> SnapshotFilter {
    SnapshotFilter { tags: vec![component_tags(profile, component).to_vec()], ..SnapshotFilter::default() }
}

/// Run one hook command (no shell) with `env` added to the environment, waiting for it; its
/// output goes to our standard error (standard output may be `--json`), its input is empty. An
/// error says which command failed and how.
pub fn run_hook(argv: &[String], env: &[(&str, String)]) -> Result<()> {
    run(argv, env, None).map(|_| ())
}

/// What a command was given on its standard input.
#[derive(Clone, Copy, Debug)]
pub struct Fed {
    /// Bytes it read.
    pub bytes: u64,
    /// It read everything (it did not exit, successfully, before the end).
    pub whole: bool,
}

/// [`run_hook`] with `input` copied to the command's standard input. An error reading `input`
/// (damaged data) is reported before the command's exit status, which it explains; a command
/// that exits 0 before reading everything succeeds, and [`Fed::whole`] says so.
pub fn run_with_input(argv: &[String], env: &[(&str, String)], input: &mut dyn std::io::Read) -> Result<Fed> {
    run(argv, env, Some(input))
}

fn run(argv: &[String], env: &[(&str, String)], input: Option<&mut dyn std::io::Read>) -> Result<Fed> {
    use std::process::Stdio;
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::InvalidArgument("empty command".into()));
    };
    let line = crate::archiver::command_line(&argv.iter().map(Into::into).collect::<Vec<_>>());
    let mut cmd = std::process::Command::new(program);
    crate::sys::without_secrets(&mut cmd);
    let mut child = cmd
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(std::io::stderr())
        .spawn()
        .map_err(|e| Error::CommandFailed(format!("command `{line}` could not start: {e}")))?;
    let mut fed = Fed { bytes: 0, whole: true };
    let mut copied = Ok(());
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        copied = feed(input, &mut stdin, &mut fed.bytes);
        // Dropping `stdin` closes it: the command sees the end (or the cut) of its input.
    }
    let status = child.wait().map_err(|e| Error::Io { path: PathBuf::from(program), source: e })?;
    match copied {
        Ok(()) => {}
        // The command stopped reading: its exit status says whether that was its choice.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => fed.whole = false,
        // Our failure to feed it (damaged data) explains whatever the command did next.
        Err(e) => return Err(crate::browse::from_io(e, &line)),
    }
    let failed = |what: String| Error::CommandFailed(format!("command `{line}` {what}"));
    match status.code() {
        Some(0) => Ok(fed),
        Some(c) => Err(failed(format!("exited with status {c}"))),
        None => Err(failed(format!("ended with {status}"))),
    }
}

/// Copy `input` to `out`, counting in `n` the bytes `out` took.
fn feed(input: &mut dyn std::io::Read, out: &mut impl std::io::Write, n: &mut u64) -> std::io::Result<()> {
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let len = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(len) => len,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..len])?;
        *n += len as u64;
    }
}

// ---- parsing --------------------------------------------------------------------------------

/// 1-based line and column of byte `offset`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Names of repositories, profiles and components: they end up in tags and file names.
fn check_name(name: &str, what: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with('.');
    match ok {
        true => Ok(()),
        false => Err(format!("{what} name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.' (not first)")),
    }
}

type AtSpan<T> = std::result::Result<T, (Option<std::ops::Range<usize>>, String)>;

fn build_profile(name: &str, p: RawProfile, repos: &BTreeMap<String, RepositorySettings>) -> AtSpan<Profile> {
    let repository = match &p.repository {
        Some(r) => Some(repos.get(r.get_ref()).cloned().ok_or_else(|| {
            (
                Some(r.span()),
                format!("profile {name}: no repository {:?} (repositories: {})", r.get_ref(), list(repos.keys())),
            )
        })?),
        // One repository in the file is the obvious choice.
        None if repos.len() == 1 => repos.values().next().cloned(),
        None => None,
    };
    let hooks = p.hooks.unwrap_or_default();
    for cmd in hooks.before.iter().chain(&hooks.after).chain(&hooks.on_failure) {
        if cmd.get_ref().is_empty() || cmd.get_ref()[0].is_empty() {
            return Err((
                Some(cmd.span()),
                format!("profile {name}: a hook is a non-empty list: [\"program\", \"arg\", ...]"),
            ));
        }
    }
    let argvs = |v: Vec<Spanned<Vec<String>>>| v.into_iter().map(Spanned::into_inner).collect();
    let hooks = Hooks { before: argvs(hooks.before), after: argvs(hooks.after), on_failure: argvs(hooks.on_failure) };
    if p.component.is_empty() {
        return Err((None, format!("profile {name} has no components ([profile.{name}.component.NAME])")));
    }
    let mut components = Vec::new();
    for (cname, c) in p.component {
        let span = c.span();
        check_name(&cname, "component").map_err(|m| (Some(span.clone()), m))?;
        let comp =
            build_component(&cname, c.into_inner()).map_err(|m| (Some(span), format!("component {cname}: {m}")))?;
        components.push(comp);
    }
    if let Some(h) = &p.host {
        if h.is_empty() {
            return Err((None, format!("profile {name}: host must not be empty")));
        }
    }
    let alert = match p.alert {
        Some(a) if a.get_ref().is_empty() || a.get_ref()[0].is_empty() => {
            return Err((
                Some(a.span()),
                format!("profile {name}: alert is a non-empty list: [\"program\", \"arg\", ...]"),
            ))
        }
        a => a.map(Spanned::into_inner),
    };
    let t = p.timers.unwrap_or_default();
    if let Some(s) = &t.check_read_data_subset {
        crate::check::Subset::parse(s)
            .map_err(|e| (None, format!("profile {name}: timers.check-read-data-subset: {e}")))?;
    }
    if let Some(s) = &t.drill_sample {
        crate::ops::drill::Sample::parse_share(s)
            .map_err(|e| (None, format!("profile {name}: timers.drill-sample: {e}")))?;
    }
    let timers = Timers {
        forget: t.forget.map(|s| s.0),
        check: t.check.map(|s| s.0),
        check_read_data_subset: t.check_read_data_subset,
        drill: t.drill.map(|s| s.0),
        drill_sample: t.drill_sample,
        status: t.status.map(|s| s.0),
    };
    Ok(Profile {
        name: name.into(),
        repository,
        host: p.host,
        max_age: p.max_age.map(|d| d.0),
        max_rto: p.max_rto.map(|d| d.0),
        schedule: p.schedule.map(|s| s.0),
        timers,
        alert,
        min_free: p.min_free.map(|s| s.0),
        hooks,
        components,
    })
}

fn build_component(name: &str, c: RawComponent) -> std::result::Result<Component, String> {
    let commands = [("restore-command", &c.restore_command), ("verify-command", &c.verify_command)];
    for (key, argv) in commands {
        match argv {
            Some(a) if c.command.is_none() => return Err(format!("{key} goes with command, not paths: {a:?}")),
            Some(a) if a.is_empty() || a[0].is_empty() => {
                return Err(format!("{key} is a non-empty list: [\"program\", \"arg\", ...]"))
            }
            _ => {}
        }
    }
    let source = match (c.paths, c.command) {
        (Some(_), Some(_)) => return Err("give paths or command, not both".into()),
        (None, None) => return Err("give paths = [...] or command = [...]".into()),
        (Some(paths), None) => {
            if c.filename.is_some() || c.allow_empty {
                return Err("filename and allow-empty go with command, not paths".into());
            }
            if paths.is_empty() {
                return Err("paths is empty".into());
            }
            if let Some(p) = paths.iter().find(|p| !p.is_absolute()) {
                return Err(format!("path {:?} is not absolute", p.display().to_string()));
            }
            let selection = crate::archiver::SelectionOptions {
                patterns: crate::filter::ExcludeOptions {
                    excludes: c.excludes,
                    iexcludes: c.iexcludes,
                    exclude_files: c.exclude_files,
                    iexclude_files: c.iexclude_files,
                },
                exclude_caches: c.exclude_caches,
                exclude_if_present: c.exclude_if_present,
                exclude_larger_than: c.exclude_larger_than.map(|s| s.0),
            };
            // Patterns and markers are checked now; pattern files are read at backup time.
            let inline = crate::archiver::SelectionOptions {
                patterns: crate::filter::ExcludeOptions {
                    exclude_files: vec![],
                    iexclude_files: vec![],
                    ..selection.patterns.clone()
                },
                ..selection.clone()
            };
            crate::archiver::Selection::new(&inline).map_err(|e| format!("excludes: {e}"))?;
            Source::Paths { paths, selection, one_file_system: c.one_file_system }
        }
        (None, Some(argv)) => {
            let selects = !c.excludes.is_empty()
                || !c.iexcludes.is_empty()
                || !c.exclude_files.is_empty()
                || !c.iexclude_files.is_empty()
                || c.exclude_caches
                || !c.exclude_if_present.is_empty()
                || c.exclude_larger_than.is_some();
            if selects || c.one_file_system {
                return Err("excludes, exclude-* and one-file-system go with paths, not command".into());
            }
            if argv.is_empty() || argv[0].is_empty() {
                return Err("command is a non-empty list: [\"pg_dump\", \"mydb\"]".into());
            }
            let filename = c.filename.unwrap_or_else(|| format!("{name}.dump"));
            crate::format::tree::validate_name(filename.as_bytes())
                .map_err(|e| format!("filename {filename:?}: {e}"))?;
            Source::Command { argv, filename, allow_empty: c.allow_empty }
        }
    };
    for t in &c.tags {
        if t.is_empty() || t.contains(',') {
            return Err(format!("tag {t:?}: a tag is non-empty and holds no comma"));
        }
        if t.starts_with(PROFILE_TAG) || t.starts_with(COMPONENT_TAG) {
            return Err(format!("tag {t:?}: tags starting with {PROFILE_TAG} or {COMPONENT_TAG} are arca's"));
        }
    }
    let count = |c: Option<CountDe>| c.map_or(Count::default(), |c| c.0);
    let span = |s: Option<SpanDe>| s.map_or(Span::default(), |s| s.0);
    let retention = KeepPolicy {
        last: count(c.keep_last),
        hourly: count(c.keep_hourly),
        daily: count(c.keep_daily),
        weekly: count(c.keep_weekly),
        monthly: count(c.keep_monthly),
        yearly: count(c.keep_yearly),
        within: span(c.keep_within),
        within_hourly: span(c.keep_within_hourly),
        within_daily: span(c.keep_within_daily),
        within_weekly: span(c.keep_within_weekly),
        within_monthly: span(c.keep_within_monthly),
        within_yearly: span(c.keep_within_yearly),
        tags: c.keep_tag.iter().map(|l| l.split(',').filter(|t| !t.is_empty()).map(String::from).collect()).collect(),
    };
    Ok(Component {
        name: name.into(),
        source,
        tags: c.tags,
        retention,
        max_age: c.max_age.map(|d| d.0),
        max_rto: c.max_rto.map(|d| d.0),
        schedule: c.schedule.map(|s| s.0),
        restore_command: c.restore_command,
        verify_command: c.verify_command,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    repository: BTreeMap<String, Spanned<RawRepository>>,
    #[serde(default)]
    profile: BTreeMap<String, Spanned<RawProfile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRepository {
    path: PathBuf,
    password_file: Option<PathBuf>,
    password_command: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawProfile {
    repository: Option<Spanned<String>>,
    host: Option<String>,
    max_age: Option<DurationDe>,
    max_rto: Option<DurationDe>,
    schedule: Option<Parsed<Schedule>>,
    timers: Option<RawTimers>,
    alert: Option<Spanned<Vec<String>>>,
    min_free: Option<Parsed<FreeSpace>>,
    hooks: Option<RawHooks>,
    #[serde(default)]
    component: BTreeMap<String, Spanned<RawComponent>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawTimers {
    forget: Option<Parsed<Schedule>>,
    check: Option<Parsed<Schedule>>,
    check_read_data_subset: Option<String>,
    drill: Option<Parsed<Schedule>>,
    drill_sample: Option<String>,
    status: Option<Parsed<Schedule>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawHooks {
    #[serde(default)]
    before: Vec<Spanned<Vec<String>>>,
    #[serde(default)]
    after: Vec<Spanned<Vec<String>>>,
    #[serde(default)]
    on_failure: Vec<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawComponent {
    paths: Option<Vec<PathBuf>>,
    #[serde(default)]
    excludes: Vec<String>,
    #[serde(default)]
    iexcludes: Vec<String>,
    #[serde(default)]
    exclude_files: Vec<PathBuf>,
    #[serde(default)]
    iexclude_files: Vec<PathBuf>,
    #[serde(default)]
    exclude_caches: bool,
    #[serde(default)]
    exclude_if_present: Vec<String>,
    exclude_larger_than: Option<SizeDe>,
    #[serde(default)]
    one_file_system: bool,
    command: Option<Vec<String>>,
    filename: Option<String>,
    #[serde(default)]
    allow_empty: bool,
    #[serde(default)]
    tags: Vec<String>,
    max_age: Option<DurationDe>,
    max_rto: Option<DurationDe>,
    schedule: Option<Parsed<Schedule>>,
    restore_command: Option<Vec<String>>,
    verify_command: Option<Vec<String>>,
    keep_last: Option<CountDe>,
    keep_hourly: Option<CountDe>,
    keep_daily: Option<CountDe>,
    keep_weekly: Option<CountDe>,
    keep_monthly: Option<CountDe>,
    keep_yearly: Option<CountDe>,
    keep_within: Option<SpanDe>,
    keep_within_hourly: Option<SpanDe>,
    keep_within_daily: Option<SpanDe>,
    keep_within_weekly: Option<SpanDe>,
    keep_within_monthly: Option<SpanDe>,
    keep_within_yearly: Option<SpanDe>,
    #[serde(default)]
    keep_tag: Vec<String>,
}

/// A string value parsed with `T`'s `FromStr`, its message naming the value.
struct Parsed<T>(T);

impl<'de, T: std::str::FromStr<Err = String>> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?.parse().map(Parsed).map_err(de::Error::custom)
    }
}

/// `max-age = "26h"` (humantime), more than zero.
struct DurationDe(Duration);

impl<'de> Deserialize<'de> for DurationDe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match humantime::parse_duration(&s) {
            Ok(v) if !v.is_zero() => Ok(DurationDe(v)),
            Ok(_) => Err(de::Error::custom(format!("{s:?}: a duration must be more than zero"))),
            Err(e) => Err(de::Error::custom(format!("{s:?}: {e} (examples: 90m, 26h, 7d)"))),
        }
    }
}

/// `keep-daily = 7` or `"unlimited"` (as `forget --keep-daily`).
struct CountDe(Count);

impl<'de> Deserialize<'de> for CountDe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = CountDe;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number or \"unlimited\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<CountDe, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<CountDe, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<CountDe, E> {
                v.parse().map(CountDe).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// `exclude-larger-than = "1M"` or a number of bytes (as `backup --exclude-larger-than`).
struct SizeDe(u64);

impl<'de> Deserialize<'de> for SizeDe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = SizeDe;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a size such as \"1M\" or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<SizeDe, E> {
                Ok(SizeDe(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<SizeDe, E> {
                u64::try_from(v).map(SizeDe).map_err(|_| E::custom("a size is not negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<SizeDe, E> {
                crate::lifecycle::prune::parse_size(v).map(SizeDe).map_err(|e| E::custom(format!("{v:?}: {e}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// `keep-within = "1y6m"` (as `forget --keep-within`).
struct SpanDe(Span);

impl<'de> Deserialize<'de> for SpanDe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(SpanDe).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[repository.main]
path = "/srv/arca"
password-file = "/etc/arca/pw"

[profile.app]
max-age = "26h"
hooks.before = [["true"]]

[profile.app.component.db]
command = ["pg_dump", "app"]
filename = "app.sql"
keep-daily = 7
keep-monthly = "unlimited"
keep-within = "1y6m"
max-age = "5h"

[profile.app.component.config]
paths = ["/etc/app"]
excludes = ["*.bak"]
"#;

    fn parse_str(t: &str) -> Result<Config> {
        parse(t, Path::new("c.toml"))
    }

    fn err(t: &str) -> String {
        parse_str(t).unwrap_err().to_string()
    }

    #[test]
    fn a_full_profile_parses() {
        let c = parse_str(GOOD).unwrap();
        let p = c.profile("app").unwrap();
        assert_eq!(p.repository.as_ref().unwrap().path, Path::new("/srv/arca"));
        assert_eq!(p.hooks.before, vec![vec!["true".to_string()]]);
        let t = p.targets(&[]).unwrap();
        assert_eq!(t.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["config", "db"]);
        assert_eq!(t[0].max_age, Some(Duration::from_secs(26 * 3600)));
        assert_eq!(t[1].max_age, Some(Duration::from_secs(5 * 3600)));
        let db = &t[1].component;
        assert_eq!(db.retention.daily, Count::N(7));
        assert_eq!(db.retention.monthly, Count::Unlimited);
        assert_eq!(db.retention.within, Span { years: 1, months: 6, days: 0, hours: 0 });
        assert!(matches!(&db.source, Source::Command { filename, .. } if filename == "app.sql"));
        assert_eq!(t[1].filter.tags, vec![vec!["component=db".to_string(), "profile=app".to_string()]]);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_line() {
        let e = err(&GOOD.replace("excludes =", "exclude ="));
        assert!(e.contains("line 20") && e.contains("exclude"), "{e}");
        let e = err(&GOOD.replace("keep-daily = 7", "keep-daily = -3"));
        assert!(e.contains("line 13") && e.contains("negative"), "{e}");
        let e = err(&GOOD.replace("\"5h\"", "\"5 parsecs\""));
        assert!(e.contains("line 16"), "{e}");
        let e = err(&GOOD.replace("[\"/etc/app\"]", "[\"etc/app\"]"));
        assert!(e.contains("line 18") && e.contains("not absolute"), "{e}");
        let e = err(&GOOD.replace("filename = \"app.sql\"\n", "paths = [\"/x\"]\n"));
        assert!(e.contains("line 10") && e.contains("not both"), "{e}");
        let e = err("[profile.x]\nrepository = \"nope\"\n[profile.x.component.a]\npaths=[\"/a\"]\n");
        assert!(e.contains("line 2") && e.contains("nope"), "{e}");
        let e = err("[profile.x.component.a]\npaths=[\"/a\"]\ntags=[\"component=z\"]\n");
        assert!(e.contains("line 1") && e.contains("arca's"), "{e}");
        assert!(err("x = [").contains("line 1"));
    }

    #[test]
    fn unknown_profiles_and_components_list_the_valid_ones() {
        let c = parse_str(GOOD).unwrap();
        let e = c.profile("ap").unwrap_err().to_string();
        assert!(e.contains("\"ap\"") && e.contains("profiles: app"), "{e}");
        let e = c.profile("app").unwrap().targets(&["dbb".into()]).unwrap_err().to_string();
        assert!(e.contains("\"dbb\"") && e.contains("components: config, db"), "{e}");
    }

    #[test]
    fn the_readme_example_is_valid() {
        let readme = include_str!("../../README.md");
        let start = readme.find("```toml\n# /etc/arca/config.toml").expect("README has the example") + 8;
        let text = &readme[start..][..readme[start..].find("```").unwrap()];
        let c = parse_str(text).unwrap();
        let p = c.profile("shop").unwrap();
        let names: Vec<_> = p.components.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["config", "db", "logs", "uploads"]);
        assert_eq!(p.hooks.on_failure.len(), 1);
        let db = &p.targets(&["db".into()]).unwrap()[0];
        assert_eq!(db.max_age, Some(Duration::from_secs(5 * 3600)));
        assert_eq!(db.max_rto, Some(Duration::from_secs(600)));
        assert_eq!(db.component.schedule, Some(Schedule::Every(Duration::from_secs(4 * 3600))));
        assert_eq!(db.component.restore_command.as_ref().unwrap()[0], "pg_restore");
        assert!(db.component.verify_command.is_some());
        assert_eq!(p.schedule, Some(Schedule::Calendar("daily".into())));
        assert_eq!(p.timers.check_read_data_subset.as_deref(), Some("1/4"));
        assert_eq!(p.min_free, Some(FreeSpace::Percent(10)));
        assert!(p.alert.is_some());
    }

    #[test]
    fn new_keys_are_checked_and_name_the_line() {
        let e = err(&GOOD.replace("max-age = \"5h\"", "max-rto = \"fast\""));
        assert!(e.contains("line 16") && e.contains("fast"), "{e}");
        let e = err(&GOOD.replace("filename = \"app.sql\"", "restore-command = []"));
        assert!(e.contains("non-empty list"), "{e}");
        let e = err(&GOOD.replace("excludes = [\"*.bak\"]", "excludes = [\"*.bak\"]\nverify-command = [\"x\"]"));
        assert!(e.contains("goes with command"), "{e}");
        let e = err(&GOOD.replace("max-age = \"26h\"", "schedule = \"30s\""));
        assert!(e.contains("line 7") && e.contains("whole minutes"), "{e}");
        let e = err(&GOOD.replace("max-age = \"26h\"", "min-free = \"200%\""));
        assert!(e.contains("line 7"), "{e}");
        let e = err(&GOOD.replace("max-age = \"26h\"", "timers.check-read-data-subset = \"5/4\""));
        assert!(e.contains("check-read-data-subset"), "{e}");
        let e = err(&GOOD.replace("max-age = \"26h\"", "timers.every = \"1h\""));
        assert!(e.contains("every"), "{e}");
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab", 99), (1, 3));
    }
}
