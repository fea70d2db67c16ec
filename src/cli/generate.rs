//! `arca generate`: systemd units for a profile, shell completions, the manual page, S3 IAM
//! policies.

use super::Global;
use anyhow::{Context, Result};
use arca::ops::iam::{self, PolicyRequest, Role};
use arca::ops::profile::Schedule;
use arca::ops::units::{self, UnitsRequest};
use std::io::Write;
use std::path::PathBuf;

/// What to generate.
#[derive(clap::Subcommand, Debug)]
pub enum GenerateCommand {
    /// The systemd services and timers a profile's schedules imply (backups, forget, check,
    /// drill, status) and its alert unit.
    Systemd(SystemdArgs),
    /// A shell completion script, on standard output.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The manual page (roff), on standard output or, with --dir, one page per command.
    Man {
        /// Write arca.1 and arca-COMMAND.1 into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// The AWS IAM policy (JSON) for credentials of one role against an S3 repository: backup
    /// (write, delete only locks), restore (read; locks and journal records) or admin (prune,
    /// init, retention).
    S3Policy(S3PolicyArgs),
}

/// Options of `arca generate s3-policy`.
#[derive(clap::Args, Debug)]
pub struct S3PolicyArgs {
    /// What the credentials are for.
    #[arg(long, value_parser = ["backup", "restore", "admin"])]
    role: String,
    /// The bucket.
    #[arg(long)]
    bucket: String,
    /// The repository's prefix in the bucket (default: the whole bucket).
    #[arg(long, default_value = "")]
    prefix: String,
}

/// Options of `arca generate systemd` (the profile is `--profile`).
#[derive(clap::Args, Debug)]
pub struct SystemdArgs {
    /// How often components and profiles without a `schedule` are backed up: `4h`, `30m`,
    /// `1d` … A period that divides a day (or an hour) becomes a calendar time, which
    /// `Persistent=true` catches up after the machine was off.
    #[arg(long, value_name = "DURATION", conflicts_with = "on_calendar")]
    every: Option<Schedule>,
    /// A systemd calendar expression instead of --every (`daily`, `Mon *-*-* 02:00`).
    #[arg(long, value_name = "SPEC")]
    on_calendar: Option<Schedule>,
    /// Write the units into this directory instead of printing them.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// A unit every generated service starts when it fails (`OnFailure=`), instead of the
    /// profile's alert command, e.g. `notify-admin@%n.service`.
    #[arg(long, value_name = "UNIT")]
    on_failure: Option<String>,
}

/// Run `arca generate systemd`.
pub fn run(g: &Global, c: GenerateCommand) -> Result<u8> {
    let GenerateCommand::Systemd(a) = c else { return static_output(&c) };
    if g.scope.ctx.location.is_some() && !g.scope.has_profile() {
        // Only a profile's repository goes into units; a shell's -r/ARCA_REPOSITORY must not.
        let msg = "generate systemd takes the repository from --profile; give no -r (unset ARCA_REPOSITORY)";
        return Err(arca::Error::InvalidArgument(msg.into()).into());
    }
    let req = UnitsRequest { schedule: a.every.or(a.on_calendar), on_failure: a.on_failure, exe: None };
    let list = units::systemd(&g.scope, &req)?;
    let Some(dir) = &a.dir else {
        for u in &list {
            print!("# {}\n{}\n", u.name, u.text);
        }
        return Ok(0);
    };
    for u in &list {
        let path = dir.join(&u.name);
        super::output::write_atomically(&path, &u.text, "--dir")?;
        if !g.quiet {
            println!("wrote {}", path.display());
        }
    }
    if !g.quiet {
        let timers: Vec<&str> = list.iter().filter(|u| u.name.ends_with(".timer")).map(|u| u.name.as_str()).collect();
        println!("enable with: systemctl daemon-reload && systemctl enable --now {}", timers.join(" "));
    }
    Ok(0)
}

/// Completions, the manual page and S3 policies (no repository needed), written whole (a reader that goes away ends the output
/// quietly).
pub fn static_output(c: &GenerateCommand) -> Result<u8> {
    let mut cmd = <super::Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    match c {
        GenerateCommand::S3Policy(a) => {
            let req = PolicyRequest { role: Role::parse(&a.role)?, bucket: a.bucket.clone(), prefix: a.prefix.clone() };
            out = serde_json::to_vec_pretty(&iam::s3_policy(&req)?)?;
            out.push(b'\n');
        }
        GenerateCommand::Completions { shell } => clap_complete::generate(*shell, &mut cmd, "arca", &mut out),
        GenerateCommand::Man { dir: Some(d) } => {
            clap_mangen::generate_to(cmd, d).with_context(|| format!("writing manual pages into {}", d.display()))?;
            return Ok(0);
        }
        GenerateCommand::Man { dir: None } => clap_mangen::Man::new(cmd).render(&mut out).context("the manual page")?,
        GenerateCommand::Systemd(_) => unreachable!("not static"),
    }
    match std::io::stdout().write_all(&out) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        r => r.map(|_| 0).context("writing to standard output"),
    }
}
