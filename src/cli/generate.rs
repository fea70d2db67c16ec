//! `arca generate`: systemd units for a profile, shell completions, the manual page.

use super::Global;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to generate.
#[derive(clap::Subcommand, Debug)]
pub enum GenerateCommand {
    /// A systemd service that runs `arca backup --profile NAME` and a timer that starts it.
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
}

/// Options of `arca generate systemd`.
#[derive(clap::Args, Debug)]
pub struct SystemdArgs {
    /// The profile to back up (from the configuration file).
    #[arg(long, value_name = "NAME")]
    profile: String,
    /// How often: `4h`, `30m`, `1d` … A period that divides a day (or an hour) becomes a
    /// calendar time, which `Persistent=true` catches up after the machine was off.
    #[arg(long, value_name = "DURATION", value_parser = super::parse_duration, required_unless_present = "on_calendar")]
    every: Option<Duration>,
    /// A systemd calendar expression instead of --every (`daily`, `Mon *-*-* 02:00`).
    #[arg(long, value_name = "SPEC", conflicts_with = "every")]
    on_calendar: Option<String>,
    /// Write arca-NAME.service and arca-NAME.timer into this directory instead of printing them.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// A unit to start when the backup fails (`OnFailure=`), e.g. a mail or chat notifier.
    #[arg(long, value_name = "UNIT")]
    on_failure: Option<String>,
}

/// Run `arca generate`.
pub fn run(g: &Global, c: GenerateCommand) -> Result<u8> {
    match c {
        GenerateCommand::Systemd(a) => systemd(g, a),
        GenerateCommand::Completions { shell } => {
            let mut cmd = <super::Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "arca", &mut std::io::stdout());
            Ok(super::code::OK)
        }
        GenerateCommand::Man { dir } => {
            let cmd = <super::Cli as clap::CommandFactory>::command();
            match dir {
                Some(d) => clap_mangen::generate_to(cmd, &d)
                    .with_context(|| format!("writing manual pages into {}", d.display()))?,
                None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout()).context("writing the manual page")?,
            }
            Ok(super::code::OK)
        }
    }
}

fn systemd(g: &Global, a: SystemdArgs) -> Result<u8> {
    // The profile must exist; the units name the configuration file it came from, absolute.
    let r = arca::ops::profile::resolve(g.config.as_deref(), &a.profile, &[])?;
    let config = std::path::absolute(&r.source).unwrap_or(r.source.clone());
    let exe = std::env::current_exe().context("finding the arca executable")?;
    let mut argv: Vec<String> = vec![lossy(&exe), "--config".into(), lossy(&config)];
    if let Some(repo) = &g.repo {
        argv.extend(["--repo".into(), lossy(&std::path::absolute(repo).unwrap_or(repo.clone()))]);
    }
    if let Some(f) = &g.password.password_file {
        argv.extend(["--password-file".into(), lossy(&std::path::absolute(f).unwrap_or(f.clone()))]);
    }
    argv.extend(["backup".into(), "--profile".into(), a.profile.clone(), "--quiet".into()]);
    let units = Units::new(&a, &argv, &status_line(&exe, &config, &a.profile))?;
    let base = format!("arca-{}", a.profile);
    match &a.dir {
        Some(dir) => {
            for (ext, text) in [("service", &units.service), ("timer", &units.timer)] {
                let path = dir.join(format!("{base}.{ext}"));
                std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
                if !g.quiet {
                    println!("wrote {}", path.display());
                }
            }
            if !g.quiet {
                println!("enable with: systemctl daemon-reload && systemctl enable --now {base}.timer");
            }
        }
        None => print!("# {base}.service\n{}\n# {base}.timer\n{}", units.service, units.timer),
    }
    Ok(super::code::OK)
}

fn lossy(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The monitoring command the service's comment suggests.
fn status_line(exe: &Path, config: &Path, profile: &str) -> String {
    join_exec(&[lossy(exe), "--config".into(), lossy(config), "status".into(), "--profile".into(), profile.into()])
}

/// The two unit files.
struct Units {
    service: String,
    timer: String,
}

impl Units {
    fn new(a: &SystemdArgs, argv: &[String], status: &str) -> Result<Units> {
        let on_failure = a.on_failure.as_ref().map_or(String::new(), |u| format!("OnFailure={u}\n"));
        let service = format!(
            "[Unit]\n\
             Description=arca backup of profile {p}\n\
             Wants=network-online.target\n\
             After=network-online.target\n\
             {on_failure}\n\
             [Service]\n\
             Type=oneshot\n\
             # The profile's hooks (before, after, on-failure) run from arca itself.\n\
             ExecStart={exec}\n\
             Nice=10\n\
             IOSchedulingClass=idle\n\
             # Alert on a missed objective (max-age) from monitoring, not from here:\n\
             #   {status}\n\
             # exits non-zero when a component's newest snapshot is too old.\n",
            p = a.profile,
            exec = join_exec(argv),
        );
        let schedule = match (&a.on_calendar, a.every) {
            (Some(spec), _) => format!("OnCalendar={spec}\nPersistent=true\n"),
            (None, Some(every)) => schedule_for(every)?,
            (None, None) => unreachable!("clap requires --every or --on-calendar"),
        };
        let timer = format!(
            "[Unit]\n\
             Description=Start arca backup of profile {p}\n\n\
             [Timer]\n\
             {schedule}\
             RandomizedDelaySec=5min\n\
             Unit=arca-{p}.service\n\n\
             [Install]\n\
             WantedBy=timers.target\n",
            p = a.profile,
        );
        Ok(Units { service, timer })
    }
}

/// Timer lines for "every `d`": a calendar expression when `d` divides a day into whole hours or
/// an hour into whole minutes (so `Persistent=true` catches up a missed run), else a monotonic
/// timer (on which systemd ignores `Persistent=`; it is written anyway, harmlessly).
fn schedule_for(d: Duration) -> Result<String> {
    let secs = d.as_secs();
    if secs < 60 || d.subsec_nanos() != 0 || secs % 60 != 0 {
        let msg = format!("--every {}: use whole minutes, at least 1m", humantime::format_duration(d));
        return Err(arca::Error::InvalidArgument(msg).into());
    }
    let (mins, hours) = (secs / 60, secs / 3600);
    let calendar = if secs == 86_400 {
        Some("daily".to_string())
    } else if secs % 3600 == 0 && 24 % hours == 0 {
        Some(format!("*-*-* 00/{hours}:00:00"))
    } else if secs < 3600 && 60 % mins == 0 {
        Some(format!("*-*-* *:00/{mins}:00"))
    } else {
        None
    };
    Ok(match calendar {
        Some(c) => format!("OnCalendar={c}\nPersistent=true\n"),
        None => format!("OnBootSec=5min\nOnUnitActiveSec={mins}min\nPersistent=true\n"),
    })
}

/// A command line as systemd's `ExecStart=` reads it: words with spaces, quotes or backslashes
/// double-quoted, and `%` and `$` doubled so they are not specifiers or variables.
fn join_exec(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let a = a.replace('%', "%%").replace('$', "$$");
            if !a.is_empty() && !a.chars().any(|c| c.is_whitespace() || "\"'\\;".contains(c)) {
                a
            } else {
                format!("\"{}\"", a.replace('\\', "\\\\").replace('"', "\\\""))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_that_divide_a_day_become_calendar_times() {
        let h = |n: u64| schedule_for(Duration::from_secs(n * 3600)).unwrap();
        assert_eq!(h(4), "OnCalendar=*-*-* 00/4:00:00\nPersistent=true\n");
        assert_eq!(h(24), "OnCalendar=daily\nPersistent=true\n");
        assert!(h(5).contains("OnUnitActiveSec=300min"));
        assert!(h(48).contains("OnUnitActiveSec=2880min"));
        assert_eq!(schedule_for(Duration::from_secs(900)).unwrap(), "OnCalendar=*-*-* *:00/15:00\nPersistent=true\n");
        assert!(schedule_for(Duration::from_secs(30)).is_err());
    }

    #[test]
    fn exec_lines_are_quoted_for_systemd() {
        let v = |s: &[&str]| join_exec(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(v(&["/usr/bin/arca", "backup"]), "/usr/bin/arca backup");
        assert_eq!(v(&["/opt/my arca/arca", "100%", "$HOME"]), "\"/opt/my arca/arca\" 100%% $$HOME");
        assert_eq!(v(&["a\"b"]), "\"a\\\"b\"");
    }
}
