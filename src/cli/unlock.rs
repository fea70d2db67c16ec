//! `arca unlock`: remove stale locks (format-spec/13-lock.md §13.2), or with `--remove-all`
//! every lock. Takes no lock itself.

use super::output::escape_str;
use super::{code, short, time_str, Global};
use anyhow::Result;
use arca::format::lock::Lock;
use arca::repo::lock::{LockOutcome, LockState};
use serde_json::json;

/// Options of `arca unlock`.
#[derive(clap::Args, Debug)]
pub struct UnlockArgs {
    /// Remove every lock, also live ones of running processes and unreadable ones. Only when no
    /// arca process uses the repository: a removed live lock no longer protects its holder.
    #[arg(long)]
    remove_all: bool,
}

fn state_name(s: &LockState) -> &'static str {
    match s {
        LockState::Live(_) => "live",
        LockState::Stale(_) => "stale",
        LockState::Unreadable(_) => "unreadable",
    }
}

/// `exclusive lock of user@host (pid N), refreshed TIME`, names escaped.
fn describe(l: &Lock) -> String {
    format!(
        "{} lock of {}@{} (pid {}), refreshed {}",
        if l.exclusive { "exclusive" } else { "shared" },
        escape_str(&l.username),
        escape_str(&l.hostname),
        l.pid,
        time_str(l.time)
    )
}

fn outcome_json(o: &LockOutcome) -> serde_json::Value {
    let mut v = json!({"name": o.file.name, "state": state_name(&o.file.state), "removed": o.removed});
    match &o.file.state {
        LockState::Live(l) | LockState::Stale(l) => {
            v["lock"] = json!({"time": l.time, "exclusive": l.exclusive, "hostname": l.hostname,
                               "username": l.username, "pid": l.pid});
        }
        LockState::Unreadable(e) => v["error"] = json!(e.to_string()),
    }
    v
}

/// Run `arca unlock`. Exit 4 when an unreadable lock file is left in place (it blocks every
/// command that locks).
pub fn run(g: &Global, a: UnlockArgs) -> Result<u8> {
    let repo = g.open()?;
    let outcomes = repo.remove_locks(a.remove_all)?;
    let kept_unreadable = outcomes.iter().any(|o| !o.removed && matches!(o.file.state, LockState::Unreadable(_)));
    let status = if kept_unreadable { code::INTEGRITY } else { code::OK };
    for o in outcomes.iter().filter(|o| o.removed) {
        match &o.file.state {
            LockState::Live(l) => eprintln!(
                "warning: removed the live {}: if that process still runs, the repository no longer \
                 protects it from conflicting operations",
                describe(l)
            ),
            LockState::Unreadable(e) => {
                eprintln!("warning: removed unreadable lock {}: {}", o.file.name, escape_str(&e.to_string()))
            }
            LockState::Stale(_) => {}
        }
    }
    if g.json {
        let locks: Vec<_> = outcomes.iter().map(outcome_json).collect();
        g.print_json(&json!({ "locks": locks }))?;
        return Ok(status);
    }
    for o in &outcomes {
        match (&o.file.state, o.removed) {
            (LockState::Unreadable(e), false) => eprintln!(
                "error: {}; kept (remove it with --remove-all once no arca process uses the repository)",
                escape_str(&e.to_string())
            ),
            (LockState::Live(l), false) if !g.quiet => {
                println!("kept lock {}: live {} (--remove-all removes it)", short(&o.file.name), describe(l))
            }
            (LockState::Live(l) | LockState::Stale(l), true) if !g.quiet => {
                println!("removed lock {}: {} {}", short(&o.file.name), state_name(&o.file.state), describe(l))
            }
            (LockState::Unreadable(_), true) if !g.quiet => {
                println!("removed lock {}: unreadable", short(&o.file.name))
            }
            _ => {}
        }
    }
    if !g.quiet {
        match outcomes.iter().filter(|o| o.removed).count() {
            0 => println!("no lock removed"),
            n => println!("{n} lock{} removed", if n == 1 { "" } else { "s" }),
        }
    }
    Ok(status)
}
