//! Command-line interface: argument parsing, output and progress. The only layer that prints.

mod admin;
mod copy;
mod drill;
mod forget;
mod generate;
mod journal;
mod localtime;
mod mount;
mod output;
mod parity;
mod password;
mod profile;
mod prune;
mod repair;
mod select;
mod snap;
mod status;
mod tag;
mod unlock;
mod verify;

use anyhow::Result;
use clap::{Parser, Subcommand};
use password::PasswordArgs;
use std::path::PathBuf;

/// Exit codes (documented in the README).
pub mod code {
    /// Success.
    pub const OK: u8 = 0;
    /// Fatal error.
    pub const ERROR: u8 = 1;
    /// Usage error: a bad option, argument or password (also clap's code for parse errors).
    pub const USAGE: u8 = 2;
    /// Backup finished, but some files could not be read (the snapshot was written).
    pub const PARTIAL: u8 = 3;
    /// Damage found: an integrity error, or `check` found problems.
    pub const INTEGRITY: u8 = 4;
    /// `verify`: the directory differs from the snapshot.
    pub const DIFFERS: u8 = 5;
    /// `status`: a recovery point objective is missed (a group older than its maximum age, or
    /// an objective without snapshots).
    pub const OBJECTIVE_MISSED: u8 = 6;
    /// `status`: a snapshot's size looks wrong (shrank past the threshold, or an empty stream).
    pub const ANOMALY: u8 = 7;
    /// No repository at the given location.
    pub const NO_REPO: u8 = 10;
    /// The repository is locked by another process.
    pub const LOCKED: u8 = 11;
    /// Wrong password.
    pub const WRONG_PASSWORD: u8 = 12;
}

pub use output::print_error;

/// Map an error to its exit code.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<arca::Error>() {
        Some(arca::Error::NotARepository(_)) => code::NO_REPO,
        Some(arca::Error::Locked(_)) => code::LOCKED,
        Some(arca::Error::WrongPassword) => code::WRONG_PASSWORD,
        Some(arca::Error::Integrity { .. }) => code::INTEGRITY,
        Some(arca::Error::InvalidArgument(_)) => code::USAGE,
        _ => code::ERROR,
    }
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
    /// Repository location: a directory, or `s3:https://host:port/bucket/prefix` for
    /// S3-compatible object storage (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or
    /// ~/.aws/credentials).
    #[arg(short = 'r', long = "repo", global = true, env = "ARCA_REPOSITORY", value_name = "DIR")]
    repo: Option<PathBuf>,
    /// Requests in flight at once to a remote repository (S3), each way: pack uploads, and
    /// read-ahead of packs.
    #[arg(long, global = true, env = "ARCA_CONNECTIONS", value_name = "N", default_value_t = arca::backend::s3::DEFAULT_CONNECTIONS as u64,
          value_parser = clap::value_parser!(u64).range(1..=arca::backend::s3::MAX_CONNECTIONS as u64))]
    connections: u64,
    #[command(flatten)]
    password: PasswordArgs,
    /// Configuration file with profiles (default: ARCA_CONFIG, else
    /// $XDG_CONFIG_HOME/arca/config.toml or ~/.config/arca/config.toml).
    #[arg(long, global = true, env = "ARCA_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    /// Print less (no progress, no summaries).
    #[arg(short, long, global = true)]
    quiet: bool,
    /// How long to wait for a lock held by another process (`0` fails at once); arca's
    /// exclusive operations (forget, tag, prune's commit) hold their lock for seconds.
    #[arg(long, global = true, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    retry_lock: std::time::Duration,
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
    /// Back up files and directories, or a stream with --stdin.
    Backup(snap::BackupArgs),
    /// List snapshots.
    Snapshots(snap::SnapshotsArgs),
    /// List files in a snapshot: `arca ls SNAP[:PATH]`.
    Ls(snap::LsArgs),
    /// Find files matching a pattern across snapshots.
    Find(snap::FindArgs),
    /// Show what changed between two snapshots.
    Diff(snap::DiffArgs),
    /// Write a file to stdout, or a directory as a tar archive: `arca dump SNAP:PATH`.
    Dump(snap::DumpArgs),
    /// Restore a snapshot or part of it: `arca restore SNAP[:PATH] --target DIR`.
    Restore(snap::RestoreArgs),
    /// Browse snapshots as a read-only filesystem (FUSE) until Ctrl-C: `arca mount DIR`.
    Mount(mount::MountArgs),
    /// Compare a directory with a snapshot (content, type, mode, owner, mtime): `arca verify SNAP[:PATH] DIR`.
    Verify(verify::VerifyArgs),
    /// Verify the repository's structure and, with --read-data, every byte.
    Check(snap::CheckArgs),
    /// Restore into a scratch directory, verify it, measure RTO and RPO: `arca drill [SNAP[:PATH]]`.
    Drill(drill::DrillArgs),
    /// Remove snapshots by ID or by a retention policy (--keep-daily 7 …), restic's rules.
    Forget(forget::ForgetArgs),
    /// Reclaim space: delete data no snapshot uses, repack partly used packs.
    Prune(prune::PruneArgs),
    /// Add, remove or set snapshot tags, or move a label to one snapshot (--move).
    Tag(tag::TagArgs),
    /// Remove stale locks (or, with --remove-all, every lock).
    Unlock(unlock::UnlockArgs),
    /// Copy snapshots to another repository (with its own keys): `arca copy --to DIR`.
    Copy(copy::CopyArgs),
    /// Reed-Solomon parity that lets `arca repair packs` rebuild damaged files: set, build, status.
    #[command(subcommand)]
    Parity(parity::ParityCommand),
    /// Repair a damaged repository: `repair packs` (from parity), `repair index`, `repair snapshots`.
    #[command(subcommand)]
    Repair(repair::RepairCommand),
    /// Generate systemd units for a profile, shell completions, or the manual page.
    #[command(subcommand)]
    Generate(generate::GenerateCommand),
    /// List the operations journal: backups, checks, drills, restores, with results and timings.
    Journal(journal::JournalArgs),
    /// One line per backup group: newest snapshot and age against --max-age, size anomalies, last check and drill.
    Status(status::StatusArgs),
}

impl Command {
    /// The journal operation this command records, if any (dry runs opt out themselves).
    fn journal_op(&self) -> Option<arca::ops::journal::Op> {
        use arca::ops::journal::Op;
        Some(match self {
            Command::Backup(_) => Op::Backup,
            Command::Check(_) => Op::Check,
            Command::Restore(_) => Op::Restore,
            Command::Dump(_) => Op::Dump,
            Command::Verify(_) => Op::Verify,
            Command::Forget(_) => Op::Forget,
            Command::Prune(_) => Op::Prune,
            Command::Copy(_) => Op::CopyFrom,
            Command::Drill(_) => Op::Drill,
            _ => return None,
        })
    }
}

/// Global context for commands.
pub struct Global {
    repo: Option<PathBuf>,
    password: PasswordArgs,
    json: bool,
    quiet: bool,
    retry_lock: std::time::Duration,
    /// `--connections`: requests in flight to a remote repository.
    connections: u64,
    /// `--config`: the configuration file with profiles.
    config: Option<PathBuf>,
    /// The running command's journal record (format-spec/21-journal.md).
    journal: journal::Slot,
}

/// A duration such as `90s`, `10m`, `1h 30m` (humantime), or `0`.
pub fn parse_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    if s.trim() == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (examples: 30s, 10m, 2h)"))
}

impl Global {
    /// Take a lock, waiting up to `--retry-lock` for others to release theirs.
    fn lock(&self, repo: &arca::repo::Repository, exclusive: bool) -> Result<arca::repo::lock::LockGuard> {
        let quiet = self.quiet;
        let wait = self.retry_lock;
        Ok(repo.lock_wait(exclusive, wait, &|e| {
            if !quiet {
                eprintln!("{e}; waiting up to {} (--retry-lock)", humantime::format_duration(wait));
            }
        })?)
    }

    fn backend(&self) -> Result<std::sync::Arc<dyn arca::backend::Backend>> {
        let dir = self
            .repo
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no repository given: use -r DIR or set ARCA_REPOSITORY"))?;
        Ok(arca::backend::open(&dir, self.connections as usize)?)
    }

    /// Open the repository with the configured password.
    fn open(&self) -> Result<arca::repo::Repository> {
        let backend = self.backend()?;
        // Check for a repository before asking for a password.
        if !backend.exists(arca::backend::FileType::Config, "config")? {
            return Err(arca::Error::NotARepository(format!("{}: no config file", backend.location())).into());
        }
        let pw = self.password.get(false)?;
        let repo = arca::repo::Repository::open(backend, &pw)?;
        self.journal_attach(&repo);
        Ok(repo)
    }

    /// Load the index, warning about each index file that had to be skipped.
    fn load_index(&self, repo: &arca::repo::Repository) -> Result<arca::repo::index::Index> {
        let index = repo.load_index()?;
        warn_index_problems(repo);
        Ok(index)
    }

    fn print_json(&self, v: &impl serde::Serialize) -> Result<()> {
        println!("{}", serde_json::to_string_pretty(v)?);
        Ok(())
    }
}

/// Parse arguments and run the command; returns the exit code.
pub fn run() -> Result<u8> {
    let cli = Cli::parse();
    // Directory recursion runs on pool threads: give them room for trees thousands of levels deep.
    let _ = rayon::ThreadPoolBuilder::new().stack_size(64 << 20).build_global();
    output::JSON_ERRORS.store(cli.json, std::sync::atomic::Ordering::Relaxed);
    let g = Global {
        repo: cli.repo,
        password: cli.password,
        json: cli.json,
        quiet: cli.quiet,
        retry_lock: cli.retry_lock,
        connections: cli.connections,
        config: cli.config,
        journal: journal::begin(cli.command.journal_op()),
    };
    let result = dispatch(&g, cli.command);
    journal::end(&g, &result);
    result
}

fn dispatch(g: &Global, command: Command) -> Result<u8> {
    match command {
        Command::Init(a) => admin::init(g, a),
        Command::Key(k) => admin::key(g, k),
        Command::Cat(a) => admin::cat(g, a),
        Command::Repoinfo => admin::repoinfo(g),
        Command::Backup(a) => snap::backup(g, a),
        Command::Snapshots(a) => snap::snapshots(g, a),
        Command::Ls(a) => snap::ls(g, a),
        Command::Find(a) => snap::find(g, a),
        Command::Diff(a) => snap::diff(g, a),
        Command::Dump(a) => snap::dump(g, a),
        Command::Restore(a) => snap::restore(g, a),
        Command::Mount(a) => mount::run(g, a),
        Command::Verify(a) => verify::verify(g, a),
        Command::Check(a) => snap::check(g, a),
        Command::Forget(a) => forget::forget(g, a),
        Command::Prune(a) => prune::prune(g, a),
        Command::Tag(a) => tag::run(g, a),
        Command::Unlock(a) => unlock::run(g, a),
        Command::Repair(c) => repair::run(g, c),
        Command::Parity(c) => parity::run(g, c),
        Command::Journal(a) => journal::run(g, a),
        Command::Status(a) => status::run(g, a),
        Command::Copy(a) => copy::run(g, a),
        Command::Generate(c) => generate::run(g, c),
        Command::Drill(a) => drill::run(g, a),
    }
}

/// Warn about index files the repository skipped (damaged, or copied from another repository):
/// the command goes on with the rest, and a blob only they listed reads as missing (exit 4).
pub fn warn_index_problems(repo: &arca::repo::Repository) {
    for e in repo.take_index_problems() {
        eprintln!("warning: {e}; skipped it and used the rest of the index (run `arca check`)");
    }
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
