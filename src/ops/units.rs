//! systemd units for a profile: everything its runbook schedules, from the profile itself.
//!
//! For `generate systemd --profile P`:
//! - a backup service and timer per schedule its components use (`schedule` of each
//!   component, else of the profile, else `--every`/`--on-calendar`), each running `arca
//!   backup --profile P --component …` for the components on that schedule;
//! - for each of the profile's `timers`: `forget --prune`, `check --read-data[-subset]`,
//!   `drill` (a sample with `drill-sample`) and `status`;
//! - an alert template `arca-P-alert@.service` that every other unit names in `OnFailure=`: it
//!   runs `arca status --profile P --alert --failed-unit UNIT`, which hands the status and the
//!   failed unit to the profile's `alert` command (or `--on-failure UNIT` instead).
//!
//! Every unit runs the installed binary by its absolute path with the configuration file it
//! was generated from; the repository and its password come from that file (a repository
//! given with `-r` is refused, so no shell's variables are baked into a unit). Every value is
//! escaped for systemd: `%` and `$` doubled, words with spaces or quotes quoted, control
//! characters (a newline in a path) as C escapes.

use super::profile::{Profile, Schedule};
use super::scope::Scope;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to generate units for.
#[derive(Clone, Debug, Default)]
pub struct UnitsRequest {
    /// The schedule of components and profiles that name none (`--every`, `--on-calendar`).
    pub schedule: Option<Schedule>,
    /// A unit to start on failure instead of the profile's alert command.
    pub on_failure: Option<String>,
    /// The arca binary the units run (default: this one).
    pub exe: Option<PathBuf>,
}

/// One unit file: its name and text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// File name (`arca-shop-backup.service`).
    pub name: String,
    /// Contents.
    pub text: String,
}

/// The units the scope's profile implies.
pub fn systemd(scope: &Scope, req: &UnitsRequest) -> Result<Vec<Unit>> {
    let usage = |m: String| Error::InvalidArgument(m);
    let p = scope.profile.as_ref().ok_or_else(|| usage("generate systemd needs --profile NAME".into()))?;
    let config = scope.config.as_deref().ok_or_else(|| usage("generate systemd needs a configuration file".into()))?;
    let config = std::path::absolute(config).map_err(|e| Error::Io { path: config.to_path_buf(), source: e })?;
    let repo = p.repository.as_ref().ok_or_else(|| {
        usage(format!(
            "profile {} names no repository: the units take it from the configuration (repository = \"NAME\")",
            p.name
        ))
    })?;
    if repo.password_file.is_none() && repo.password_command.is_none() {
        return Err(usage(format!(
            "repository {} has no password-file or password-command: a timer cannot type a password",
            repo.name
        )));
    }
    let exe = match &req.exe {
        Some(e) => e.clone(),
        None => std::env::current_exe().map_err(|e| Error::Io { path: "arca".into(), source: e })?,
    };
    if let Some(u) = &req.on_failure {
        check_unit_name(u)?;
    }
    let alert = match (&req.on_failure, &p.alert) {
        (Some(u), _) => Some(u.clone()),
        (None, Some(_)) => Some(format!("arca-{}-alert@%n.service", p.name)),
        (None, None) => None,
    };
    let g = Gen { p, exe: &exe, config: &config, alert };
    let mut units = Vec::new();
    for (schedule, components) in backup_groups(p, req.schedule.as_ref())? {
        let suffix =
            if units.is_empty() && single_group(p, req.schedule.as_ref()) { String::new() } else { slug(&schedule) };
        let name = format!("arca-{}-backup{}", p.name, if suffix.is_empty() { suffix } else { format!("-{suffix}") });
        let mut args = vec!["backup".to_string(), "--profile".into(), p.name.clone()];
        if components.len() < p.components.len() {
            args.extend(["--component".into(), components.join(",")]);
        }
        let what = format!("backup of {} ({})", components.join(", "), schedule);
        units.extend(g.pair(&name, &what, &args, &schedule, true));
    }
    let t = &p.timers;
    if let Some(s) = &t.forget {
        let args = ["forget", "--profile", &p.name, "--prune"].map(String::from).to_vec();
        units.extend(g.pair(&format!("arca-{}-forget", p.name), "forget and prune", &args, s, true));
    }
    if let Some(s) = &t.check {
        let mut args = vec!["check".to_string(), "--profile".into(), p.name.clone()];
        match &t.check_read_data_subset {
            Some(sub) => args.extend(["--read-data-subset".into(), sub.clone()]),
            None => args.push("--read-data".into()),
        }
        units.extend(g.pair(&format!("arca-{}-check", p.name), "check", &args, s, true));
    }
    if let Some(s) = &t.drill {
        let mut args = vec!["drill".to_string(), "--profile".into(), p.name.clone()];
        if let Some(sample) = &t.drill_sample {
            args.extend(["--sample".into(), sample.clone()]);
        }
        units.extend(g.pair(&format!("arca-{}-drill", p.name), "restore drill", &args, s, true));
    }
    let status = t.status.clone().unwrap_or(Schedule::Every(Duration::from_secs(300)));
    let args = ["status", "--profile", &p.name, "--quiet"].map(String::from).to_vec();
    units.extend(g.pair(&format!("arca-{}-status", p.name), "status against the objectives", &args, &status, false));
    if p.alert.is_some() && req.on_failure.is_none() {
        units.push(g.alert_unit());
    }
    Ok(units)
}

/// Components grouped by their schedule, in the profile's order of first use.
fn backup_groups(p: &Profile, fallback: Option<&Schedule>) -> Result<Vec<(Schedule, Vec<String>)>> {
    let mut groups: Vec<(Schedule, Vec<String>)> = Vec::new();
    for c in &p.components {
        let s = c.schedule.as_ref().or(p.schedule.as_ref()).or(fallback).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "component {} has no schedule: set schedule = \"daily\" (or \"4h\") on it or on profile {}, or \
                 give --every/--on-calendar",
                c.name, p.name
            ))
        })?;
        match groups.iter_mut().find(|(g, _)| g == s) {
            Some((_, names)) => names.push(c.name.clone()),
            None => groups.push((s.clone(), vec![c.name.clone()])),
        }
    }
    Ok(groups)
}

fn single_group(p: &Profile, fallback: Option<&Schedule>) -> bool {
    backup_groups(p, fallback).is_ok_and(|g| g.len() == 1)
}

/// A unit-name-safe word for a schedule: `4h`, `daily`, `mon-02-00`.
fn slug(s: &Schedule) -> String {
    let raw = match s {
        Schedule::Every(d) => humantime::format_duration(*d).to_string().replace(' ', ""),
        Schedule::Calendar(c) => c.clone(),
    };
    let mut out = String::new();
    for c in raw.chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' => out.push(c.to_ascii_lowercase()),
            _ if !out.ends_with('-') && !out.is_empty() => out.push('-'),
            _ => {}
        }
    }
    out.trim_end_matches('-').chars().take(40).collect()
}

/// A unit name as `OnFailure=` takes it (systemd specifiers such as `%n` allowed).
fn check_unit_name(u: &str) -> Result<()> {
    let ok = !u.is_empty() && u.len() <= 255 && u.chars().all(|c| c.is_ascii_alphanumeric() || ":-_.@%\\".contains(c));
    match ok && u.contains('.') {
        true => Ok(()),
        false => {
            Err(Error::InvalidArgument(format!("--on-failure {u:?}: give a unit name such as notify-admin@%n.service")))
        }
    }
}

struct Gen<'a> {
    p: &'a Profile,
    exe: &'a Path,
    config: &'a Path,
    alert: Option<String>,
}

impl Gen<'_> {
    /// The command line: this binary, the configuration, `args`.
    fn exec(&self, args: &[String]) -> String {
        let mut argv = vec![lossy(self.exe), "--config".into(), lossy(self.config)];
        argv.extend(args.iter().cloned());
        exec_line(&argv)
    }

    /// A service and the timer that starts it.
    fn pair(&self, name: &str, what: &str, args: &[String], schedule: &Schedule, background: bool) -> [Unit; 2] {
        let on_failure = self.alert.as_ref().map_or(String::new(), |u| format!("OnFailure={u}\n"));
        let nice = if background { "Nice=10\nIOSchedulingClass=idle\n" } else { "" };
        let service = format!(
            "[Unit]\nDescription=arca {what} of profile {p}\nWants=network-online.target\n\
             After=network-online.target\n{on_failure}\n[Service]\nType=oneshot\nExecStart={exec}\n{nice}",
            p = self.p.name,
            what = escape_text(what),
            exec = self.exec(args),
        );
        let timer = format!(
            "[Unit]\nDescription=Start arca {what} of profile {p}\n\n[Timer]\n{schedule}RandomizedDelaySec={delay}\n\
             Unit={name}.service\n\n[Install]\nWantedBy=timers.target\n",
            p = self.p.name,
            what = escape_text(what),
            schedule = timer_lines(schedule),
            delay = if background { "5min" } else { "30s" },
        );
        [Unit { name: format!("{name}.service"), text: service }, Unit { name: format!("{name}.timer"), text: timer }]
    }

    /// The alert template: the failed unit is its instance.
    fn alert_unit(&self) -> Unit {
        let args = ["status", "--profile", &self.p.name, "--alert", "--failed-unit", "%i"].map(String::from);
        let mut exec = self.exec(&args);
        // `%i` is the one specifier meant here: the escaping above doubled it.
        exec = exec.replace("%%i", "%i");
        Unit {
            name: format!("arca-{}-alert@.service", self.p.name),
            text: format!(
                "[Unit]\nDescription=arca alert for profile {p}: %i failed\n\n[Service]\nType=oneshot\nExecStart={exec}\n",
                p = self.p.name
            ),
        }
    }
}

fn lossy(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Timer lines for a schedule: a calendar expression as is; a period that divides a day into
/// whole hours or an hour into whole minutes as a calendar time (which `Persistent=true` catches
/// up after the machine was off), other periods as a monotonic timer.
pub fn timer_lines(s: &Schedule) -> String {
    let d = match s {
        Schedule::Calendar(c) => return format!("OnCalendar={c}\nPersistent=true\n"),
        Schedule::Every(d) => *d,
    };
    let secs = d.as_secs();
    let (mins, hours) = (secs / 60, secs / 3600);
    let calendar = if secs == 86_400 {
        Some("daily".to_string())
    } else if secs % 3600 == 0 && hours > 0 && 24 % hours == 0 {
        Some(format!("*-*-* 00/{hours}:00:00"))
    } else if secs < 3600 && mins > 0 && 60 % mins == 0 {
        Some(format!("*-*-* *:00/{mins}:00"))
    } else {
        None
    };
    match calendar {
        Some(c) => format!("OnCalendar={c}\nPersistent=true\n"),
        None => format!("OnBootSec=5min\nOnUnitActiveSec={mins}min\nPersistent=true\n"),
    }
}

/// Free text for a unit (a description): control characters as spaces, `%` doubled.
fn escape_text(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().replace('%', "%%")
}

/// A command line as systemd's `ExecStart=` reads it: `%` and `$` doubled so they are not
/// specifiers or variables; words with spaces, quotes, backslashes or control characters
/// double-quoted with C escapes (`\n`, `\xNN`), so a newline in a path cannot start a new
/// setting.
pub fn exec_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let a = a.replace('%', "%%").replace('$', "$$");
            let plain =
                !a.is_empty() && !a.chars().any(|c| c.is_whitespace() || c.is_control() || "\"'\\;".contains(c));
            if plain {
                return a;
            }
            let mut q = String::from("\"");
            for c in a.chars() {
                match c {
                    '"' => q.push_str("\\\""),
                    '\\' => q.push_str("\\\\"),
                    '\n' => q.push_str("\\n"),
                    '\t' => q.push_str("\\t"),
                    '\r' => q.push_str("\\r"),
                    c if c.is_control() => q.push_str(&format!("\\x{:02x}", c as u32)),
                    c => q.push(c),
                }
            }
            q.push('"');
            q
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_that_divide_a_day_become_calendar_times() {
        let h = |n: u64| timer_lines(&Schedule::Every(Duration::from_secs(n * 3600)));
        assert_eq!(h(4), "OnCalendar=*-*-* 00/4:00:00\nPersistent=true\n");
        assert_eq!(h(24), "OnCalendar=daily\nPersistent=true\n");
        assert!(h(5).contains("OnUnitActiveSec=300min"));
        assert!(h(48).contains("OnUnitActiveSec=2880min"));
        let m = timer_lines(&Schedule::Every(Duration::from_secs(900)));
        assert_eq!(m, "OnCalendar=*-*-* *:00/15:00\nPersistent=true\n");
        assert!("30s".parse::<Schedule>().is_err());
        assert_eq!(timer_lines(&"Mon 02:00".parse().unwrap()), "OnCalendar=Mon 02:00\nPersistent=true\n");
    }

    #[test]
    fn exec_lines_are_quoted_and_escaped_for_systemd() {
        let v = |s: &[&str]| exec_line(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(v(&["/usr/bin/arca", "backup"]), "/usr/bin/arca backup");
        assert_eq!(v(&["/opt/my arca/arca", "100%", "$HOME"]), "\"/opt/my arca/arca\" 100%% $$HOME");
        assert_eq!(v(&["a\"b"]), "\"a\\\"b\"");
        assert_eq!(v(&["/etc/a\nExecStartPre=/bin/evil"]), "\"/etc/a\\nExecStartPre=/bin/evil\"");
        assert_eq!(v(&["x\x01"]), "\"x\\x01\"");
    }

    #[test]
    fn slugs_name_schedules() {
        assert_eq!(slug(&"4h".parse().unwrap()), "4h");
        assert_eq!(slug(&"daily".parse().unwrap()), "daily");
        assert_eq!(slug(&"Mon *-*-* 02:00".parse().unwrap()), "mon-02-00");
    }
}
