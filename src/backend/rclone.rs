//! `rclone:remote:path` — every storage rclone reaches (70+ providers), the way restic does it:
//! arca starts `rclone serve webdav remote:path` on a loopback port of the kernel's choosing,
//! with a random user and password handed over in rclone's environment (never on a command
//! line others can read), talks WebDAV to it through OpenDAL, and stops it when done. WebDAV
//! fits arca's layout as it is (restic's REST protocol knows only restic's directories).
//! Writes go to `tmp/` and are moved into place ([`Publish::Rename`]): rclone's own atomicity
//! differs between its backends and versions, a MOVE is one operation on every one of them.
//!
//! The program is `rclone` on `PATH`, or `ARCA_RCLONE_PROGRAM`; rclone reads its own
//! configuration (`rclone config`) as usual.

use super::remote::{Publish, Service};
use crate::error::{Error, Result};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long rclone may take to start listening (it may first contact the remote).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `rclone serve webdav`; stopped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM lets rclone finish writes it has acknowledged; then wait, so no zombie stays.
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(self.0.id() as i32).expect("a child's pid is positive"),
            rustix::process::Signal::TERM,
        );
        let _ = self.0.wait();
    }
}

/// The remote part of `rclone:remote:path`, checked to be something rclone reads as a remote
/// (not an option).
fn remote_of(s: &str) -> Result<&str> {
    let remote = s.strip_prefix("rclone:").unwrap_or(s);
    if remote.is_empty() || remote.starts_with('-') {
        return Err(Error::InvalidArgument(format!("{s}: not an rclone location; use rclone:remote:path")));
    }
    Ok(remote)
}

/// Start rclone for `location` and build the service that talks to it.
pub fn service(location: &str) -> Result<Service> {
    let remote = remote_of(location)?;
    let program = std::env::var_os("ARCA_RCLONE_PROGRAM").filter(|p| !p.is_empty()).unwrap_or_else(|| "rclone".into());
    let secret = |n| crate::crypto::random_array::<16>().map(|b| format!("{n}{}", crate::id::hex(&b)));
    let (user, pass) = (secret("arca-")?, secret("")?);
    let mut cmd = Command::new(&program);
    cmd.args(["serve", "webdav", "--addr", "127.0.0.1:0", "--"])
        .arg(remote)
        .env("RCLONE_USER", &user)
        .env("RCLONE_PASS", &pass)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // rclone goes when arca goes, even if arca is killed.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        Error::InvalidArgument(format!(
            "{location}: cannot run {} ({e}); install rclone or set ARCA_RCLONE_PROGRAM",
            std::path::Path::new(&program).display()
        ))
    })?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let server = Server(child);
    let endpoint = wait_for_address(stderr).map_err(|why| Error::Io {
        path: location.into(),
        source: std::io::Error::other(format!("rclone serve did not start: {why}")),
    })?;
    let builder = opendal::services::Webdav::default().endpoint(&endpoint).username(&user).password(&pass).root("/");
    let op = opendal::Operator::new(builder).map_err(|e| super::remote::io_err(location, e))?.finish();
    Ok(Service {
        op,
        location: location.into(),
        publish: Publish::Rename,
        guard: Some(Box::new(server)),
        make_root: None,
        range_reader: None,
        object_lock: None,
    })
}

/// Read rclone's log until it says where it listens (`… started on http://127.0.0.1:PORT/`);
/// its last lines if it ends first. The rest of its log is drained in the background so that
/// rclone never blocks on a full pipe.
fn wait_for_address(stderr: std::process::ChildStderr) -> std::result::Result<String, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut found = false;
        let mut tail: Vec<String> = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            if found {
                continue;
            }
            if let Some(at) = line.find("http://127.0.0.1:") {
                let url = line[at..].split(|c: char| c.is_whitespace() || c == ']').next().unwrap_or("");
                found = tx.send(Ok(url.trim_end_matches('/').to_string())).is_ok();
                continue;
            }
            tail.push(line);
            if tail.len() > 5 {
                tail.remove(0);
            }
        }
        if !found {
            let _ = tx.send(Err(if tail.is_empty() { "it exited".into() } else { tail.join(" / ") }));
        }
    });
    rx.recv_timeout(START_TIMEOUT).unwrap_or_else(|_| Err(format!("no address after {START_TIMEOUT:?}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_remote_that_looks_like_an_option_is_refused() {
        assert_eq!(super::remote_of("rclone:gdrive:backups/arca").unwrap(), "gdrive:backups/arca");
        for bad in ["rclone:", "rclone:--config=/x"] {
            assert!(super::remote_of(bad).is_err(), "{bad}");
        }
    }
}
