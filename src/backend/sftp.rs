//! `sftp:` — a directory on an SSH server, through OpenDAL's SFTP service, which runs the
//! system's `ssh` (OpenSSH) as a multiplexing master and speaks SFTP over it. Using the real
//! `ssh` is the point: `~/.ssh/config` (host aliases, ports, keys, jump hosts), the agent and
//! `known_hosts` apply as they do for restic, which also runs `ssh`. Host keys are checked
//! strictly: an unknown host is refused, never added.
//!
//! SFTP writes are not atomic, so files are written to `tmp/` and renamed into place
//! ([`Publish::Rename`]; OpenSSH's `posix-rename` replaces atomically). SFTP has no fsync
//! that OpenDAL issues: a file is as durable as the server's filesystem makes a closed file.

use super::remote::{Publish, Service};
use crate::error::{Error, Result};

/// A parsed `sftp:` location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SftpLocation {
    /// `user@` if given.
    pub user: Option<String>,
    /// Host name, ssh alias or address (`[::1]` for IPv6).
    pub host: String,
    /// Port if given (else ssh's configuration decides).
    pub port: Option<u16>,
    /// Absolute path of the repository on the server.
    pub path: String,
}

impl SftpLocation {
    /// Parse restic's `sftp:[user@]host:/path` and `sftp://[user@]host[:port]/path`, and
    /// `sftp:[user@]host:port/path`.
    pub fn parse(s: &str) -> Result<SftpLocation> {
        let rest = s.strip_prefix("sftp:").ok_or_else(|| bad(s, "does not start with sftp:"))?;
        let (authority, port, path) = match rest.strip_prefix("//") {
            Some(url) => {
                let (auth, path) = url.split_at(url.find('/').ok_or_else(|| bad(s, "no path"))?);
                let (auth, port) = split_port(auth);
                (auth, port, path.to_string())
            }
            None => {
                let (auth, tail) = split_host(rest).ok_or_else(|| bad(s, "no `:` between host and path"))?;
                let digits = tail
                    .find('/')
                    .map(|i| &tail[..i])
                    .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
                let (port, path) = match digits {
                    Some(p) => {
                        (Some(p.parse().map_err(|_| bad(s, "the port is not a number up to 65535"))?), &tail[p.len()..])
                    }
                    None => (None, tail),
                };
                if !path.starts_with('/') {
                    return Err(bad(s, "the path must be absolute (arca does not guess the remote home directory)"));
                }
                (auth, port, path.to_string())
            }
        };
        let (user, host) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_string()).filter(|u| !u.is_empty()), h),
            None => (None, authority),
        };
        if host.is_empty() || host.starts_with('-') || host.contains(char::is_whitespace) {
            return Err(bad(s, "no valid host"));
        }
        let path = format!("/{}", path.trim_start_matches('/')).trim_end_matches('/').to_string();
        if !path_given(&path) {
            return Err(bad(s, "the path must be absolute and not the server's root, e.g. /srv/arca"));
        }
        Ok(SftpLocation { user, host: host.to_string(), port, path })
    }

    /// `ssh://[user@]host[:port]`, as the SSH session is given it.
    fn endpoint(&self) -> String {
        let user = self.user.as_deref().map(|u| format!("{u}@")).unwrap_or_default();
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        format!("ssh://{user}{}{port}", self.host)
    }
}

fn path_given(path: &str) -> bool {
    path.len() > 1 && !path.split('/').any(|c| c == "." || c == "..")
}

/// `host` and what follows its `:`, with `[v6]` hosts kept whole.
fn split_host(s: &str) -> Option<(&str, &str)> {
    let at = s.rfind('@').map_or(0, |i| i + 1);
    let host_end = if s[at..].starts_with('[') { at + s[at..].find(']')? + 1 } else { at + s[at..].find(':')? };
    let tail = s[host_end..].strip_prefix(':')?;
    Some((&s[..host_end], tail))
}

/// `host:port` split when the part after the last `:` is a port (outside `[v6]`).
fn split_port(auth: &str) -> (&str, Option<u16>) {
    match auth.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') && p.parse::<u16>().is_ok() => (h, p.parse().ok()),
        _ => (auth, None),
    }
}

fn bad(s: &str, why: &str) -> Error {
    Error::InvalidArgument(format!(
        "{s}: not an SFTP location ({why}); use sftp:user@host:/srv/arca or sftp://user@host:2222/srv/arca"
    ))
}

/// The service for `loc`. The `ssh` program is found on `PATH`.
pub fn service(loc: &SftpLocation) -> Result<Service> {
    let location = format!("sftp:{}:{}", loc.endpoint().trim_start_matches("ssh://"), loc.path);
    let builder =
        opendal::services::Sftp::default().endpoint(&loc.endpoint()).root(&loc.path).known_hosts_strategy("strict");
    let op = opendal::Operator::new(builder).map_err(|e| super::remote::io_err(&location, e))?.finish();
    let windows = Windows {
        endpoint: loc.endpoint(),
        root: loc.path.clone(),
        sessions: (0..WINDOW_SESSIONS).map(|_| tokio::sync::Mutex::new(None)).collect(),
        next: std::sync::atomic::AtomicUsize::new(0),
    };
    Ok(Service {
        op,
        location,
        publish: Publish::Rename,
        guard: None,
        make_root: None,
        range_reader: Some(std::sync::Arc::new(windows)),
        object_lock: None,
    })
}

/// SSH connections that read-ahead windows are spread over. Each carries many reads at once,
/// up to the SSH channel's window (OpenSSH: 2 MiB in flight), so a few are enough.
const WINDOW_SESSIONS: usize = 4;

/// Bytes asked for by one read: the most OpenSSH's server answers (its `limits@openssh.com`
/// read length, 255 KiB). A server that answers less is asked again for the rest of the part.
const READ_PART: u64 = 261_120;

/// Attempts at one window, reconnecting after a failure (OpenDAL's retry layer does not see
/// these reads).
const WINDOW_ATTEMPTS: usize = 3;

/// Read-ahead windows over SFTP sessions of arca's own, every read of a window sent at once.
/// OpenDAL's SFTP reader sends one read after another, and OpenSSH answers at most 255 KiB per
/// read: a 4 MiB window cost 16 round trips on one of OpenDAL's connections; here it costs two
/// (open, then all reads), as with restic, whose SFTP client also keeps reads in flight.
struct Windows {
    endpoint: String,
    root: String,
    sessions: Vec<tokio::sync::Mutex<Option<std::sync::Arc<openssh_sftp_client::Sftp>>>>,
    next: std::sync::atomic::AtomicUsize,
}

type Failure = super::remote::Failure;

fn sftp_failure(what: &str, e: openssh_sftp_client::Error) -> Failure {
    use openssh_sftp_client::error::SftpErrorKind;
    let kind = match &e {
        openssh_sftp_client::Error::SftpError(SftpErrorKind::NoSuchFile, _) => opendal::ErrorKind::NotFound,
        openssh_sftp_client::Error::SftpError(SftpErrorKind::PermDenied, _) => opendal::ErrorKind::PermissionDenied,
        _ => opendal::ErrorKind::Unexpected,
    };
    (kind, format!("{what}: {e}"))
}

impl Windows {
    /// Session `i`, connected on first use (or again after a failure dropped it).
    async fn session(&self, i: usize) -> std::result::Result<std::sync::Arc<openssh_sftp_client::Sftp>, Failure> {
        let mut slot = self.sessions[i].lock().await;
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let mut builder = openssh::SessionBuilder::default();
        builder.known_hosts_check(openssh::KnownHosts::Strict);
        let session = builder
            .connect(&self.endpoint)
            .await
            .map_err(|e| (opendal::ErrorKind::Unexpected, format!("ssh could not connect: {e}")))?;
        let sftp = openssh_sftp_client::Sftp::from_session(session, Default::default())
            .await
            .map_err(|e| sftp_failure("starting sftp", e))?;
        let sftp = std::sync::Arc::new(sftp);
        *slot = Some(sftp.clone());
        Ok(sftp)
    }

    async fn read(
        &self,
        i: usize,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> std::result::Result<bytes::Bytes, Failure> {
        let sftp = self.session(i).await?;
        let path = format!("{}/{key}", self.root);
        let file = sftp.open(&path).await.map_err(|e| sftp_failure(key, e))?;
        let mut reads = tokio::task::JoinSet::new();
        let mut at = range.start;
        while at < range.end {
            let (mut f, end) = (file.clone(), (at + READ_PART).min(range.end));
            let key = key.to_string();
            reads.spawn(
                async move { read_part(&mut f, at, end).await.map(|b| (at, b)).map_err(|e| sftp_failure(&key, e)) },
            );
            at = end;
        }
        let mut parts = Vec::new();
        while let Some(done) = reads.join_next().await {
            let part = done.map_err(|e| (opendal::ErrorKind::Unexpected, format!("{key}: {e}")))??;
            parts.push(part);
        }
        parts.sort_by_key(|(at, _)| *at);
        // Sized by what arrived, not by the range asked for.
        let mut out = bytes::BytesMut::with_capacity(parts.iter().map(|(_, b)| b.len()).sum());
        for (_, b) in parts {
            out.extend_from_slice(&b);
        }
        Ok(out.freeze())
    }
}

/// Bytes `at..end` of an open file (a server may answer a read with fewer bytes: read on; at
/// the end of the file, stop short and let the caller judge the length).
async fn read_part(
    f: &mut openssh_sftp_client::file::File,
    at: u64,
    end: u64,
) -> std::result::Result<bytes::BytesMut, openssh_sftp_client::Error> {
    use tokio::io::AsyncSeek;
    std::pin::Pin::new(&mut *f).start_seek(std::io::SeekFrom::Start(at))?;
    // Parts are at most READ_PART long, so these allocations are bounded whatever the store says.
    let mut out = bytes::BytesMut::with_capacity((end - at) as usize);
    while (out.len() as u64) < end - at {
        let want = (end - at) as usize - out.len();
        match f.read(want as u32, bytes::BytesMut::with_capacity(want)).await? {
            Some(b) if !b.is_empty() => out.extend_from_slice(&b),
            _ => break,
        }
    }
    Ok(out)
}

impl super::remote::RangeReader for Windows {
    fn read_range(
        self: std::sync::Arc<Self>,
        key: String,
        range: std::ops::Range<u64>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<bytes::Bytes, Failure>> + Send>> {
        Box::pin(async move {
            let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.sessions.len();
            let mut attempt = 1;
            loop {
                match self.read(i, &key, range.clone()).await {
                    Ok(b) => return Ok(b),
                    Err(f) if f.0 == opendal::ErrorKind::NotFound || attempt == WINDOW_ATTEMPTS => return Err(f),
                    // The session may be what failed: the next attempt connects again.
                    Err(_) => *self.sessions[i].lock().await = None,
                }
                attempt += 1;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_in_restics_forms_and_bad_ones_are_usage_errors() {
        let cases = [
            ("sftp:backup@nas:/srv/arca", Some("backup"), "nas", None, "/srv/arca"),
            ("sftp:nas:/srv/arca/", None, "nas", None, "/srv/arca"),
            ("sftp:backup@nas:2222/srv/arca", Some("backup"), "nas", Some(2222), "/srv/arca"),
            ("sftp://backup@nas:2222//srv/arca", Some("backup"), "nas", Some(2222), "/srv/arca"),
            ("sftp://nas/srv/arca", None, "nas", None, "/srv/arca"),
            ("sftp:u@[::1]:/srv/a", Some("u"), "[::1]", None, "/srv/a"),
            ("sftp://u@[::1]:22/srv/a", Some("u"), "[::1]", Some(22), "/srv/a"),
        ];
        for (s, user, host, port, path) in cases {
            let l = SftpLocation::parse(s).unwrap();
            assert_eq!((l.user.as_deref(), l.host.as_str(), l.port, l.path.as_str()), (user, host, port, path), "{s}");
        }
        assert_eq!(SftpLocation::parse("sftp://u@h:22/x").unwrap().endpoint(), "ssh://u@h:22");
        for bad in [
            "sftp:",
            "sftp:nas",
            "sftp:nas:/",
            "sftp:-oProxyCommand=x:/a",
            "sftp:nas:/a/../b",
            "sftp://nas",
            "sftp:nas:srv/a",
            "sftp:nas:99999/a",
        ] {
            assert!(matches!(SftpLocation::parse(bad), Err(Error::InvalidArgument(_))), "{bad}");
        }
    }
}
