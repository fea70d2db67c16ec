//! What Ctrl-C and SIGTERM print: which command stopped, that its locks are gone and what the
//! stop left behind (`arca::interrupt` removes the locks; the exit code is the outcome table's).

use super::output::escape_str;
use arca::interrupt::Interrupted;
use arca::ops::Outcome;

/// What an interrupted command leaves, in words an operator can act on.
fn left_behind(command: &str) -> &'static str {
    match command {
        "backup" => "no snapshot was written; run it again: the data already stored is reused",
        "restore" => "the target holds part of the snapshot; run the same restore again to finish it",
        "prune" | "forget" => "the repository is consistent; the next prune finishes the job",
        "copy" => "the snapshots already copied are complete; run it again for the rest",
        "check" | "verify" | "ls" | "find" | "diff" | "dump" | "stats" | "snapshots" => "nothing was changed",
        _ => "it is safe to run again",
    }
}

/// The message for an interruption of `command`.
pub fn message(command: &str, i: &Interrupted) -> String {
    let locks = match (i.locks_removed, i.lock_errors.len()) {
        (0, 0) => "it held no lock".to_string(),
        (1, 0) => "removed its lock".to_string(),
        (n, 0) => format!("removed its {n} locks"),
        (_, _) => format!(
            "could not remove {} (it goes stale in 30 minutes, or `arca unlock`)",
            escape_str(&i.lock_errors.join("; "))
        ),
    };
    format!("{command} interrupted by {}; {locks}; {}", i.signal_name(), left_behind(command))
}

/// Catch SIGINT and SIGTERM for `command`; `cleanup` runs first (a drill removes its scratch
/// directory) and may return a line to print.
pub fn watch(command: String, json: bool, cleanup: fn() -> Option<String>) {
    let installed = arca::interrupt::watch(move |i| {
        if let Some(line) = cleanup() {
            eprintln!("{line}");
        }
        let code = Outcome::of_signal(i.signal).exit_code();
        let text = message(&command, &i);
        if json {
            eprintln!("{}", serde_json::json!({ "error": text, "code": code }));
        } else {
            eprintln!("arca: {text}");
        }
        std::process::exit(code.into());
    });
    if let Err(e) = installed {
        eprintln!("warning: cannot catch Ctrl-C ({e}): an interrupted command leaves its lock");
    }
}

/// No cleanup beyond the locks.
pub fn nothing() -> Option<String> {
    None
}
