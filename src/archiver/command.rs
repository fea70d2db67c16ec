//! Stream backups from a command (`backup --stdin-from-command -- pg_dump mydb`): the command's
//! standard output is the stream, and its exit status decides whether the snapshot is written.
//!
//! A dump that fails half way still wrote something, often a plausible prefix; saved, it would
//! become the newest "good" backup. So the command is waited for after its output is stored and
//! before the snapshot, the commit point, is written: a non-zero exit, a death by signal or a
//! command that cannot start leaves no snapshot ([`Error::StreamRejected`]). The packs already
//! written are then unreferenced, and the next backup adopts them (format-spec/17 §17.6).

use super::{backup_stream, BackupOptions, BackupResult, Progress};
use crate::error::{Error, Result};
use crate::repo::Repository;
use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};

/// Run `argv` (no shell: `argv[0]` is looked up in `PATH`), store its standard output as the file
/// `name`, and write the snapshot only if the command exits 0 (and, unless `opts.allow_empty`,
/// printed something). Its standard error goes to ours; its standard input is ours too.
pub fn backup_command(
    repo: &Repository,
    opts: &BackupOptions,
    progress: &Progress,
    argv: &[OsString],
    name: &str,
) -> Result<BackupResult> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::InvalidArgument("--stdin-from-command needs a command after `--`".into()));
    };
    // Usage errors before anything runs.
    crate::format::tree::validate_name(name.as_bytes())
        .map_err(|e| Error::InvalidArgument(format!("--stdin-filename {name:?}: {e}")))?;
    let line = command_line(argv);
    let mut cmd = Command::new(program);
    crate::sys::without_secrets(&mut cmd);
    let mut child = cmd
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error::StreamRejected(format!("command `{line}` could not start: {e}")))?;
    let stdout = child.stdout.take().expect("stdout was piped");
    let mut guard = Reaper(Some(child));
    let source = format!("the output of `{line}`");
    backup_stream(repo, opts, progress, stdout, name, &source, || {
        let status = guard.wait().map_err(|e| Error::StreamRejected(format!("waiting for `{line}`: {e}")))?;
        match describe_failure(status) {
            None => Ok(()),
            Some(what) => Err(Error::StreamRejected(format!("command `{line}` {what}"))),
        }
    })
}

/// `None` for success, else how the command ended: "exited with status 3", "was killed by
/// signal 9 (SIGKILL)".
fn describe_failure(status: ExitStatus) -> Option<String> {
    if status.success() {
        return None;
    }
    Some(match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(sig)) => match signal_name(sig) {
            Some(n) => format!("was killed by signal {sig} ({n})"),
            None => format!("was killed by signal {sig}"),
        },
        _ => format!("ended with {status}"),
    })
}

fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => return None,
    })
}

/// A command line for messages: arguments joined by spaces, those that need it quoted.
pub fn command_line(argv: &[OsString]) -> String {
    let words: Vec<String> = argv
        .iter()
        .map(|a| {
            let s = a.to_string_lossy();
            let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
            if plain {
                s.into_owned()
            } else {
                format!("{:?}", s.as_ref())
            }
        })
        .collect();
    words.join(" ")
}

/// The running command: waited for once; killed and reaped if the backup ends early (an error
/// before the stream was read to its end), so no zombie or orphan dump is left behind.
struct Reaper(Option<Child>);

impl Reaper {
    fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let mut child = self.0.take().expect("waited once");
        child.wait()
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
