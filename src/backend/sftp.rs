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
    Ok(Service { op, location, publish: Publish::Rename, guard: None, make_root: None })
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
