//! Command-line interface: parses arguments into the requests of [`arca::ops`], runs them and
//! renders their reports (text, JSON, progress). The only layer that prints; it opens, locks
//! and records nothing itself.

mod admin;
mod backup;
mod browse;
mod cache;
mod copy;
mod drill;
mod envvars;
mod forget;
mod generate;
mod interrupted;
mod journal;
mod mount;
mod output;
mod progress;
mod restore;
mod rewrite;
mod select;
mod serve;
mod stats;
mod status;
mod tag;
mod ui;

use anyhow::Result;
use arca::ops::{Context, Notices, Outcome, PasswordSource, Scope};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use output::escape_str;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

pub use output::print_error;

/// Map an error to its exit code (the table in `arca::ops::outcome`).
pub fn exit_code(e: &anyhow::Error) -> u8 {
    e.downcast_ref::<arca::Error>().map_or(Outcome::Failed, Outcome::of_error).exit_code()
}

/// The message of an error and its causes, each said once: `arca::Error::Io` already shows its
/// OS error, which is also its source, so a cause whose text ends the message so far is dropped.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.ends_with(&part) {
            text = format!("{text}: {part}");
        }
    }
    text
}

/// arca: encrypted, deduplicating backups.
#[derive(Parser, Debug)]
#[command(name = "arca", version, about, max_term_width = 100)]
pub struct Cli {
    /// Repository location: a directory; `s3:https://host:port/bucket/prefix` (credentials from
    /// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials); `azure:container/prefix`
    /// (AZURE_ACCOUNT_NAME, AZURE_ACCOUNT_KEY or AZURE_ACCOUNT_SAS); `sftp:user@host:/path`
    /// (through ssh and its configuration); `rclone:remote:path` (any rclone remote). Optional
    /// with --profile, or when the configuration names one repository.
    #[arg(short = 'r', long = "repo", global = true, env = "ARCA_REPOSITORY", value_name = "DIR")]
    repo: Option<PathBuf>,
    /// Requests in flight at once to a remote repository, each way: pack uploads, and
    /// read-ahead of packs.
    #[arg(long, global = true, env = "ARCA_CONNECTIONS", value_name = "N", default_value_t = arca::backend::remote::DEFAULT_CONNECTIONS as u64,
          value_parser = clap::value_parser!(u64).range(1..=arca::backend::remote::MAX_CONNECTIONS as u64))]
    connections: u64,
    /// How long a request to a remote repository may go without an answer or progress before
    /// it is abandoned and retried (5 retries, then an error), e.g. `30s`, `2m`.
    #[arg(long, global = true, env = "ARCA_TIMEOUT", value_name = "DURATION", default_value = "60s",
          value_parser = parse_timeout)]
    timeout: std::time::Duration,
    /// Hold uploads to the repository to this many KiB/s (any kind of repository).
    #[arg(long, global = true, env = "ARCA_LIMIT_UPLOAD", value_name = "KIB_S", value_parser = clap::value_parser!(u64).range(1..))]
    limit_upload: Option<u64>,
    /// Hold downloads from the repository to this many KiB/s.
    #[arg(long, global = true, env = "ARCA_LIMIT_DOWNLOAD", value_name = "KIB_S", value_parser = clap::value_parser!(u64).range(1..))]
    limit_download: Option<u64>,
    /// Read the password from the first line of this file. Without this or --password-command,
    /// the password is the value of ARCA_PASSWORD, or is asked for on the terminal.
    #[arg(long, global = true, env = "ARCA_PASSWORD_FILE", value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Run this shell command and use the first line it prints as the password.
    #[arg(long, global = true, env = "ARCA_PASSWORD_COMMAND", value_name = "CMD")]
    password_command: Option<String>,
    /// Configuration file with profiles (default: ARCA_CONFIG, else
    /// $XDG_CONFIG_HOME/arca/config.toml or ~/.config/arca/config.toml).
    #[arg(long, global = true, env = "ARCA_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Use this profile of the configuration file: its repository and password, and its
    /// components (each command acts on each of them, or on their snapshots).
    #[arg(long, global = true, value_name = "NAME")]
    profile: Option<String>,
    /// Only these components of the profile (comma-separated or repeated; default: all).
    #[arg(
        long = "component",
        global = true,
        value_name = "NAME[,NAME...]",
        value_delimiter = ',',
        requires = "profile"
    )]
    components: Vec<String>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    /// Print less (no progress, no summaries).
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Backup lists new and modified files (`-v`), or every file (`-vv`).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// How long to wait for a lock held by another process (`0` fails at once); arca's
    /// exclusive operations (forget, tag, prune's commit) hold their lock for seconds.
    #[arg(long, global = true, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    retry_lock: std::time::Duration,
    /// Read without taking a lock: check, restore, dump, verify, mount, drill and copy's source
    /// on read-only storage (a mounted snapshot of the backup disk, a read-only share). Without
    /// it they fall back to this, with a warning, when the storage refuses the lock. Commands
    /// that write always lock.
    #[arg(long, global = true, env = "ARCA_NO_LOCK", value_parser = clap::builder::FalseyValueParser::new())]
    no_lock: bool,
    /// Where key files, index files and snapshots of remote repositories are cached (default
    /// `$XDG_CACHE_HOME/arca` or `~/.cache/arca`); every cached file is checked against its name
    /// and the storage's listing before use. `arca cache` lists and cleans it.
    #[arg(long, global = true, env = "ARCA_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Use no local cache: for a remote repository, none of its files; for a backup key, no
    /// parent trees (format-spec/24 §24.8), so every file is read.
    #[arg(long, global = true, env = "ARCA_NO_CACHE", value_parser = clap::builder::FalseyValueParser::new())]
    no_cache: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a new repository.
    Init(admin::InitArgs),
    /// Manage key files (passwords).
    #[command(subcommand)]
    Key(admin::KeyCommand),
    /// Print a repository object, decoded, as JSON (for debugging and inspection).
    Cat(admin::CatArgs),
    /// Sizes, counts and compression ratio.
    Repoinfo,
    /// Back up files and directories, a stream with --stdin, or a profile's components.
    Backup(backup::BackupArgs),
    /// List snapshots (`--latest`: the newest of each component or host and paths).
    Snapshots(browse::SnapshotsArgs),
    /// List files in a snapshot: `arca ls SNAP[:PATH]`, or restic's `arca ls SNAP DIR...`.
    Ls(browse::LsArgs),
    /// Find files matching a pattern across snapshots.
    Find(browse::FindArgs),
    /// Count what snapshots hold, in restic's modes: restore size (default), distinct file
    /// contents, raw data (stored, compression), blobs per file.
    Stats(stats::StatsArgs),
    /// Show what changed between two snapshots (or paths in them), each with its own filters.
    Diff(browse::DiffArgs),
    /// Write a file to stdout, or a directory as a tar archive: `arca dump SNAP:PATH`.
    Dump(browse::DumpArgs),
    /// Restore a snapshot or part of it: `arca restore SNAP[:PATH] --target DIR` (or `--in-place`).
    Restore(restore::RestoreArgs),
    /// Browse snapshots as a read-only filesystem (FUSE) until Ctrl-C: `arca mount DIR`.
    Mount(mount::MountArgs),
    /// Compare a directory (default: the live files) with a snapshot: `arca verify SNAP[:PATH] [DIR]`.
    Verify(restore::VerifyArgs),
    /// Verify the repository's structure and, with --read-data, every byte.
    Check(admin::CheckArgs),
    /// Restore into a scratch directory, verify it, measure RTO and RPO: `arca drill [SNAP[:PATH]]`.
    Drill(drill::DrillArgs),
    /// Remove snapshots by ID or by a retention policy (--keep-daily 7 …), restic's rules.
    Forget(forget::ForgetArgs),
    /// Reclaim space: delete data no snapshot uses, repack partly used packs.
    Prune(forget::PruneArgs),
    /// Add, remove or set snapshot tags, or move a label to one snapshot (--move).
    Tag(tag::TagArgs),
    /// Copies of snapshots without the paths --exclude patterns match (a secret backed up by
    /// mistake): `--forget` removes the originals, then `prune` removes the data.
    Rewrite(rewrite::RewriteArgs),
    /// Remove stale locks (or, with --remove-all, every lock).
    Unlock(admin::UnlockArgs),
    /// Copy snapshots to another repository (with its own keys): `arca copy --to DIR`.
    Copy(copy::CopyArgs),
    /// Reed-Solomon parity that lets `arca repair packs` rebuild damaged files: set, build, status.
    #[command(subcommand)]
    Parity(admin::ParityCommand),
    /// Repair a damaged repository: `repair packs` (from parity), `repair index`, `repair snapshots`.
    #[command(subcommand)]
    Repair(admin::RepairCommand),
    /// Generate systemd units for a profile, shell completions, the manual page, or S3 IAM
    /// policies.
    #[command(subcommand)]
    Generate(generate::GenerateCommand),
    /// List the operations journal: backups, checks, drills, restores, with results and timings.
    Journal(journal::JournalArgs),
    /// Web UI: browse, search, diff and download from any snapshot; health and charts:
    /// `arca ui [--listen 127.0.0.1:8080]`.
    Ui(ui::UiArgs),
    /// List the local cache of remote repositories, or clean it (`--cleanup`).
    Cache(cache::CacheArgs),
    /// Serve a repository directory to `ssh://` clients (run by ssh): `arca serve --stdio DIR`.
    Serve(serve::ServeArgs),
    /// One line per backup group: newest snapshot and age against --max-age, drills against
    /// max-rto, size anomalies, damage, failures, storage; the alert path.
    Status(status::StatusArgs),
}

/// What every command gets: the resolved scope and how to print.
pub struct Global {
    /// The repository, password and components the command acts on.
    scope: Scope,
    json: bool,
    quiet: bool,
    /// `-v` given this many times.
    verbose: u8,
}

/// A request timeout: a duration of at least one second and at most a day.
fn parse_timeout(s: &str) -> std::result::Result<std::time::Duration, String> {
    let d = parse_duration(s)?;
    if !(std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(86_400)).contains(&d) {
        return Err(format!("{s:?}: a timeout is between 1s and 24h"));
    }
    Ok(d)
}

/// A duration such as `90s`, `10m`, `1h 30m` (humantime), or `0`.
pub fn parse_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    if s.trim() == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (examples: 30s, 10m, 2h)"))
}

/// What the operations tell the command line while they run.
struct Shown {
    quiet: bool,
}

impl Notices for Shown {
    fn warn(&self, message: &str) {
        eprintln!("warning: {}", escape_str(message));
    }

    fn waiting(&self, why: &arca::Error, patience: std::time::Duration) {
        if !self.quiet {
            eprintln!(
                "{}; waiting up to {} (--retry-lock)",
                escape_str(&why.to_string()),
                humantime::format_duration(patience)
            );
        }
    }
}

/// Ask on the terminal, when there is one.
fn prompt(text: &str, confirm: bool) -> Option<std::io::Result<zeroize::Zeroizing<Vec<u8>>>> {
    if !std::io::stdin().is_terminal() && std::fs::File::open("/dev/tty").is_err() {
        return None;
    }
    let read = || rpassword::prompt_password(text).map(zeroize::Zeroizing::new);
    Some((|| {
        let p = read()?;
        if confirm && *rpassword::prompt_password("enter it again: ").map(zeroize::Zeroizing::new)? != *p {
            return Err(std::io::Error::other("passwords do not match"));
        }
        Ok(zeroize::Zeroizing::new(p.as_bytes().to_vec()))
    })())
}

/// Parse arguments and run the command; returns the exit code.
pub fn run() -> Result<u8> {
    let empty_env = envvars::take_empty(&Cli::command());
    let matches = Cli::command().get_matches();
    envvars::check(&Cli::command(), &matches, &empty_env)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    if let (Command::Diff(d), Some(("diff", m))) = (&mut cli.command, matches.subcommand()) {
        d.split_sides(m);
    }
    // Directory recursion runs on pool threads: give them room for trees thousands of levels deep.
    let _ = rayon::ThreadPoolBuilder::new().stack_size(64 << 20).build_global();
    output::JSON_ERRORS.store(cli.json, std::sync::atomic::Ordering::Relaxed);
    let mut password = PasswordSource::repository(cli.password_command, cli.password_file, Some(Arc::new(prompt)));
    envvars::name_sources(&matches, &mut password);
    let ctx = Context {
        location: cli.repo,
        password,
        remote: arca::backend::remote::RemoteOptions {
            connections: cli.connections as usize,
            timeout: cli.timeout,
            limit_upload: cli.limit_upload,
            limit_download: cli.limit_download,
        },
        retry_lock: cli.retry_lock,
        no_lock: cli.no_lock,
        cache: if cli.no_cache { None } else { cli.cache_dir.clone().or_else(arca::backend::cache::default_dir) },
        notices: Arc::new(Shown { quiet: cli.quiet }),
        unlocked: None,
    };
    let choice =
        arca::ops::scope::ProfileChoice { config: cli.config, profile: cli.profile, components: cli.components };
    // Completions, the manual page and S3 policies need no repository or configuration.
    if let Command::Generate(
        c @ (generate::GenerateCommand::Completions { .. }
        | generate::GenerateCommand::Man { .. }
        | generate::GenerateCommand::S3Policy(_)),
    ) = &cli.command
    {
        return generate::static_output(c);
    }
    // The server side of ssh:// answers on stdout and needs nothing else.
    if let Command::Serve(a) = &cli.command {
        return serve::run(a);
    }
    // The cache needs no repository either.
    if let Command::Cache(a) = &cli.command {
        return cache::run(a, ctx.cache.as_deref(), cli.json);
    }
    // Ctrl-C and SIGTERM remove this process's locks and say what stopped (mount unmounts).
    if !matches!(cli.command, Command::Mount(_)) {
        let drill = matches!(cli.command, Command::Drill(_));
        let cleanup = if drill { drill::after_interrupt } else { interrupted::nothing };
        interrupted::watch(matches.subcommand_name().unwrap_or("arca").to_string(), cli.json, cleanup);
    }
    let scope = Scope::resolve(ctx, &choice)?;
    let g = Global { scope, json: cli.json, quiet: cli.quiet, verbose: cli.verbose };
    dispatch(&g, cli.command)
}

fn dispatch(g: &Global, command: Command) -> Result<u8> {
    match command {
        Command::Init(a) => admin::init(g, a),
        Command::Key(k) => admin::key(g, k),
        Command::Cat(a) => admin::cat(g, a),
        Command::Repoinfo => admin::repoinfo(g),
        Command::Backup(a) => backup::run(g, a),
        Command::Snapshots(a) => browse::snapshots(g, a),
        Command::Ls(a) => browse::ls(g, a),
        Command::Find(a) => browse::find(g, a),
        Command::Stats(a) => stats::run(g, a),
        Command::Diff(a) => browse::diff(g, a),
        Command::Dump(a) => browse::dump(g, a),
        Command::Restore(a) => restore::restore(g, a),
        Command::Mount(a) => mount::run(g, a),
        Command::Verify(a) => restore::verify(g, a),
        Command::Check(a) => admin::check(g, a),
        Command::Forget(a) => forget::forget(g, a),
        Command::Prune(a) => forget::prune(g, a),
        Command::Tag(a) => tag::run(g, a),
        Command::Rewrite(a) => rewrite::run(g, a),
        Command::Unlock(a) => admin::unlock(g, a),
        Command::Repair(c) => admin::repair(g, c),
        Command::Parity(c) => admin::parity(g, c),
        Command::Journal(a) => journal::run(g, a),
        Command::Ui(a) => ui::run(g, a),
        Command::Status(a) => status::run(g, a),
        Command::Copy(a) => copy::run(g, a),
        Command::Generate(c) => generate::run(g, c),
        Command::Drill(a) => drill::run(g, a),
        Command::Serve(a) => serve::run(&a),
        Command::Cache(a) => cache::run(&a, g.scope.ctx.cache.as_deref(), g.json),
    }
}

impl Global {
    fn print_json(&self, v: &impl serde::Serialize) -> Result<()> {
        println!("{}", serde_json::to_string_pretty(v)?);
        Ok(())
    }

    /// Whether text summaries are printed.
    fn talk(&self) -> bool {
        !self.json && !self.quiet
    }
}

/// A live progress line on stderr (only on a terminal, and not with `--quiet` or `--json`),
/// its message from `msg` five times a second, until dropped.
struct Spinner(Option<(indicatif::ProgressBar, std::thread::JoinHandle<()>)>);

impl Spinner {
    fn new(g: &Global, msg: impl Fn() -> String + Send + 'static) -> Spinner {
        if g.quiet || g.json || !std::io::stderr().is_terminal() {
            return Spinner(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}").unwrap());
        let b = bar.clone();
        let h = std::thread::spawn(move || {
            while !b.is_finished() {
                b.set_message(msg());
                b.tick();
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        });
        Spinner(Some((bar, h)))
    }
}

impl Spinner {
    /// Run `f` (which prints) with the line cleared, then draw it again.
    fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.0 {
            Some((b, _)) => b.suspend(f),
            None => f(),
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some((b, h)) = self.0.take() {
            b.finish_and_clear();
            let _ = h.join();
        }
    }
}

/// Print the error of a component that failed (the others go on).
fn component_error(g: &Global, name: Option<&str>, e: &arca::Error) -> serde_json::Value {
    let code = Outcome::of_error(e).exit_code();
    if !g.json {
        match name {
            Some(n) => eprintln!("arca: component {n}: {}", escape_str(&e.to_string())),
            None => eprintln!("arca: {}", escape_str(&e.to_string())),
        }
    }
    serde_json::json!({"error": e.to_string(), "code": code})
}

/// The first 16 characters of a file name, for display (names in `keys/` are not trusted to be
/// 64 hex digits).
pub fn short(name: &str) -> &str {
    name.get(..16).unwrap_or(name)
}

/// Bytes as a human-readable size.
pub fn human(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", U[i])
    }
}

/// Unix nanoseconds as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn time_str(ns: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.trim_end_matches('Z').replacen('T', " ", 1)
}

/// A short duration: `850ms`, `12.3s`, `4m05s`, `2h10m`.
pub fn duration_str(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    match s {
        0 => format!("{}ms", ns / 1_000_000),
        1..=59 => format!("{:.1}s", ns as f64 / 1e9),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}
