//! `ssh://[user@]host[:port]/path` — a repository on a host that runs `arca serve`, reached
//! like `borg serve`: arca runs `ssh HOST arca serve --stdio PATH` and speaks the protocol of
//! format-spec/23 over ssh's standard input and output. The real `ssh` is run, so
//! `~/.ssh/config`, the agent and `known_hosts` apply; on the server an `authorized_keys`
//! forced command (`command="arca serve --stdio --append-only /srv/arca"`) pins the directory
//! and can make it append-only, whatever the client asks.
//!
//! Requests on one stream are answered in order, one at a time; for parallel reads the backend
//! keeps up to `connections` (at most [`MAX_SESSIONS`]) streams, started as they are needed.
//! Locks always go through the first stream: an append-only server lets a session remove only
//! the locks it wrote itself.
//!
//! `ARCA_REMOTE_PATH` names the program on the server (default `arca`), `ARCA_SSH` the ssh
//! program here (default `ssh` on `PATH`).

use super::{Backend, FileType, StagedFile};
use crate::error::{Error, Result};
use crate::format::serve::{self, ErrorClass, Request, Response, MAX_DATA};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};

/// Most streams (ssh processes) one backend keeps.
pub const MAX_SESSIONS: usize = 8;

/// A parsed `ssh://` location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshLocation {
    /// `user@` if given.
    pub user: Option<String>,
    /// Host name or ssh alias.
    pub host: String,
    /// Port if given.
    pub port: Option<u16>,
    /// The repository's path on the server: absolute, or relative to the login directory
    /// (written `/./path` or `/~/path`).
    pub path: String,
}

impl SshLocation {
    /// Parse `ssh://[user@]host[:port]/path`.
    pub fn parse(s: &str) -> Result<SshLocation> {
        let bad = |why: &str| {
            Error::InvalidArgument(format!(
                "{s}: not an ssh location ({why}); use ssh://user@host:port/srv/arca (or /./relative)"
            ))
        };
        let rest = s.strip_prefix("ssh://").ok_or_else(|| bad("does not start with ssh://"))?;
        let slash = rest.find('/').ok_or_else(|| bad("no path"))?;
        let (auth, path) = rest.split_at(slash);
        let (user, hostport) = match auth.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_string()).filter(|u| !u.is_empty()), h),
            None => (None, auth),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (h, Some(p.parse::<u16>().map_err(|_| bad("a bad port"))?)),
            _ => (hostport, None),
        };
        let path = match path.strip_prefix("/./").or_else(|| path.strip_prefix("/~/")) {
            Some(rel) => rel.to_string(),
            None => path.to_string(),
        };
        let path = path.trim_end_matches('/').to_string();
        if host.is_empty() || host.starts_with('-') || host.contains(char::is_whitespace) {
            return Err(bad("no valid host"));
        }
        if path.is_empty() || path == "/" || path.split('/').any(|c| c == "..") || path.contains('\0') {
            return Err(bad("no valid path"));
        }
        Ok(SshLocation { user, host: host.to_string(), port, path })
    }
}

/// `s` quoted for the remote shell: single quotes, with `'` written `'\''`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// One stream to `arca serve`.
struct Session {
    child: Child,
    input: BufWriter<ChildStdin>,
    output: ChildStdout,
    /// What ssh said on stderr, for the message when the stream breaks.
    stderr: Arc<Mutex<Vec<String>>>,
    broken: bool,
}

impl Drop for Session {
    fn drop(&mut self) {
        // Closing its input ends the server; ssh then exits.
        let _ = self.input.flush();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The streams of one `ssh://` repository.
pub struct Streams {
    loc: SshLocation,
    max: usize,
    idle: Mutex<Vec<Session>>,
    /// Streams started (idle or in use) and the signal for a returned one.
    started: Mutex<usize>,
    returned: Condvar,
    /// The stream locks go through.
    first: Mutex<Option<Session>>,
}

impl Streams {
    fn new(loc: SshLocation, connections: usize) -> Streams {
        Streams {
            loc,
            max: connections.clamp(1, MAX_SESSIONS),
            idle: Mutex::default(),
            started: Mutex::new(0),
            returned: Condvar::new(),
            first: Mutex::default(),
        }
    }

    fn connect(&self) -> Result<Session> {
        let ssh = std::env::var_os("ARCA_SSH").filter(|p| !p.is_empty()).unwrap_or_else(|| "ssh".into());
        let remote = std::env::var("ARCA_REMOTE_PATH").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "arca".into());
        let mut cmd = Command::new(&ssh);
        if let Some(p) = self.loc.port {
            cmd.arg("-p").arg(p.to_string());
        }
        let target = match &self.loc.user {
            Some(u) => format!("{u}@{}", self.loc.host),
            None => self.loc.host.clone(),
        };
        // The remote command is one string for the remote shell: every part quoted.
        let command = [remote.as_str(), "serve", "--stdio", "--", &self.loc.path].map(shell_quote).join(" ");
        cmd.arg("--").arg(target).arg(command).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            Error::InvalidArgument(format!(
                "{}: cannot run {} ({e})",
                self.location(),
                std::path::Path::new(&ssh).display()
            ))
        })?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (pipe, sink) = (child.stderr.take().expect("piped"), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(|l| l.ok()) {
                let mut s = sink.lock().unwrap();
                s.push(line);
                if s.len() > 5 {
                    s.remove(0);
                }
            }
        });
        let input = BufWriter::with_capacity(1 << 20, child.stdin.take().expect("piped"));
        let output = child.stdout.take().expect("piped");
        let mut session = Session { child, input, output, stderr, broken: false };
        match self.call_on(&mut session, &Request::Hello { version: serve::VERSION }, FileType::Config, "")? {
            // (Whether the server is append-only shows in its refusals, which name it.)
            Response::Hello { version, .. } if version == serve::VERSION => Ok(session),
            other => Err(self.unexpected(&other)),
        }
    }

    fn unexpected(&self, r: &Response) -> Error {
        Error::Io {
            path: self.location().into(),
            source: std::io::Error::other(format!("the server answered out of turn ({r:?})")),
        }
    }

    /// Send `req` on `s` and read the answer; a server error becomes the library error it
    /// stands for, about `t`/`name`.
    fn call_on(&self, s: &mut Session, req: &Request, t: FileType, name: &str) -> Result<Response> {
        let sent = serve::write_frame(&mut s.input, &req.encode());
        let answer = sent.and_then(|_| serve::read_frame(&mut s.output));
        let body = match answer {
            Ok(Some(body)) => body,
            failed => {
                s.broken = true;
                let _ = s.child.try_wait();
                std::thread::sleep(std::time::Duration::from_millis(50));
                let said = s.stderr.lock().unwrap().join(" / ");
                let why = match failed {
                    Err(e) => e.to_string(),
                    _ => "the server closed the connection".into(),
                };
                let said = if said.is_empty() { String::new() } else { format!(" (ssh: {said})") };
                return Err(Error::Io {
                    path: self.location().into(),
                    source: std::io::Error::other(format!("arca serve over ssh failed: {why}{said}")),
                });
            }
        };
        let r = Response::decode(&body).map_err(|e| e.within(self.location()))?;
        match r {
            Response::Error { class, message } => Err(self.error(class, message, t, name)),
            r => Ok(r),
        }
    }

    fn error(&self, class: ErrorClass, message: String, t: FileType, name: &str) -> Error {
        let io = |kind| Error::Io { path: t.describe(name).into(), source: std::io::Error::new(kind, message.clone()) };
        match class {
            ErrorClass::NotFound => io(std::io::ErrorKind::NotFound),
            ErrorClass::Io => io(std::io::ErrorKind::Other),
            ErrorClass::Integrity => Error::integrity(t.describe(name), message),
            ErrorClass::NotARepository => Error::NotARepository(message),
            ErrorClass::InvalidArgument => Error::InvalidArgument(message),
            ErrorClass::Refused => Error::Refused(format!("{}: {message}", self.location())),
        }
    }

    /// Run `req` on an idle stream, starting one if fewer than the maximum run.
    fn call(&self, req: &Request, t: FileType, name: &str) -> Result<Response> {
        if t == FileType::Lock {
            return self.call_first(req, t, name);
        }
        let mut s = self.take()?;
        let r = self.call_on(&mut s, req, t, name);
        self.give_back(s);
        r
    }

    /// Run `req` on the first stream (the one locks go through).
    fn call_first(&self, req: &Request, t: FileType, name: &str) -> Result<Response> {
        let mut first = self.first.lock().unwrap();
        if first.as_ref().is_none_or(|s| s.broken) {
            *first = Some(self.connect()?);
        }
        self.call_on(first.as_mut().expect("just connected"), req, t, name)
    }

    fn take(&self) -> Result<Session> {
        loop {
            if let Some(s) = self.idle.lock().unwrap().pop() {
                return Ok(s);
            }
            let mut started = self.started.lock().unwrap();
            if *started < self.max {
                *started += 1;
                drop(started);
                return self.connect().inspect_err(|_| *self.started.lock().unwrap() -= 1);
            }
            // Wait for a stream to come back (or one to break and free its place).
            drop(self.returned.wait_timeout(started, std::time::Duration::from_millis(100)).unwrap());
        }
    }

    fn give_back(&self, s: Session) {
        if s.broken {
            *self.started.lock().unwrap() -= 1;
        } else {
            self.idle.lock().unwrap().push(s);
        }
        self.returned.notify_one();
    }

    fn ok(&self, req: &Request, t: FileType, name: &str) -> Result<()> {
        match self.call(req, t, name)? {
            Response::Ok => Ok(()),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Up to `len` bytes at `offset` and the file's length.
    fn read_piece(&self, t: FileType, name: &str, offset: u64, len: usize) -> Result<(u64, Vec<u8>)> {
        let req = Request::ReadAt { t, name: wire_name(t, name), offset, len: len.min(MAX_DATA) as u32 };
        match self.call(&req, t, name)? {
            Response::Data { file_len, data } if data.len() <= len => Ok((file_len, data)),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Publish `bytes`: in one request when they fit, else staged in pieces.
    fn put(&self, t: FileType, name: &str, bytes: &[u8], replace: bool) -> Result<()> {
        let wname = wire_name(t, name);
        if bytes.len() <= MAX_DATA {
            return self.ok(&Request::Write { t, name: wname, replace, data: bytes.to_vec() }, t, name);
        }
        let mut s = self.take()?;
        let r = (|| {
            let handle = match self.call_on(&mut s, &Request::Stage { t }, t, name)? {
                Response::Handle { handle } => handle,
                other => return Err(self.unexpected(&other)),
            };
            for piece in bytes.chunks(MAX_DATA) {
                self.call_on(&mut s, &Request::Append { handle, data: piece.to_vec() }, t, name)?;
            }
            self.call_on(&mut s, &Request::Publish { handle, name: wname.clone(), replace }, t, name).map(|_| ())
        })();
        self.give_back(s);
        r
    }

    /// Every page of a listing.
    fn pages(&self, t: FileType, req: impl Fn(u64) -> Request) -> Result<Vec<(String, u64)>> {
        let mut all = Vec::new();
        loop {
            match self.call(&req(all.len() as u64), t, "")? {
                Response::Page { more, entries } => {
                    let got = entries.len();
                    if all.len() + got > super::MAX_LISTED {
                        return Err(super::too_many_listed(&self.location(), t));
                    }
                    all.extend(entries);
                    if !more {
                        return Ok(all);
                    }
                    if got == 0 {
                        return Err(self.unexpected(&Response::Page { more, entries: vec![] }));
                    }
                }
                other => return Err(self.unexpected(&other)),
            }
        }
    }
}

/// The name sent for a file: empty for the files with fixed names.
fn wire_name(t: FileType, name: &str) -> String {
    match t {
        FileType::Config | FileType::ParityPolicy => String::new(),
        _ => name.to_string(),
    }
}

/// A file collected in memory and sent when published.
struct SshStaged {
    backend: Arc<Streams>,
    t: FileType,
    buf: Vec<u8>,
}

impl Write for SshStaged {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl StagedFile for SshStaged {
    fn publish(self: Box<Self>, name: &str) -> Result<()> {
        self.backend.put(self.t, name, &self.buf, false)
    }
}

/// The `ssh://` backend.
pub struct SshBackend(Arc<Streams>);

impl SshBackend {
    /// The backend for `loc`, with up to `connections` streams. Nothing runs before the first
    /// request.
    pub fn new(loc: SshLocation, connections: usize) -> SshBackend {
        SshBackend(Arc::new(Streams::new(loc, connections)))
    }
}

impl Backend for SshBackend {
    fn location(&self) -> String {
        self.0.location()
    }
    fn create(&self) -> Result<()> {
        self.0.ok(&Request::Create, FileType::Config, "")
    }
    fn exists(&self, t: FileType, name: &str) -> Result<bool> {
        match self.0.call(&Request::Exists { t, name: wire_name(t, name) }, t, name)? {
            Response::Bool { value } => Ok(value),
            other => Err(self.0.unexpected(&other)),
        }
    }
    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        let max = t.max_len();
        let (len, mut buf) = self.0.read_piece(t, name, 0, MAX_DATA)?;
        if len > max {
            return Err(Error::integrity(t.describe(name), format!("{len} bytes, longer than the {max} allowed")));
        }
        while (buf.len() as u64) < len {
            let (now, piece) = self.0.read_piece(t, name, buf.len() as u64, MAX_DATA)?;
            if now != len || piece.is_empty() {
                return Err(Error::integrity(t.describe(name), "changed while it was read"));
            }
            buf.extend_from_slice(&piece);
        }
        Ok(buf)
    }
    fn read_at(&self, t: FileType, name: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(len.min(MAX_DATA));
        while buf.len() < len {
            let at = offset + buf.len() as u64;
            let (file_len, piece) = match self.0.read_piece(t, name, at, len - buf.len()) {
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::integrity(t.describe(name), "missing from the repository"))
                }
                r => r?,
            };
            if piece.is_empty() {
                let have = file_len.saturating_sub(offset);
                return Err(Error::integrity(
                    t.describe(name),
                    format!("truncated: {have} bytes, {len} wanted at offset {offset}"),
                ));
            }
            buf.extend_from_slice(&piece);
        }
        Ok(buf)
    }
    fn write(&self, t: FileType, name: &str, bytes: &[u8]) -> Result<()> {
        self.0.put(t, name, bytes, false)
    }
    fn replace(&self, t: FileType, name: &str, bytes: &[u8]) -> Result<()> {
        self.0.put(t, name, bytes, true)
    }
    fn sync_name(&self, t: FileType, name: &str) -> Result<()> {
        self.0.ok(&Request::SyncName { t, name: wire_name(t, name) }, t, name)
    }
    fn stage(&self, t: FileType) -> Result<Box<dyn StagedFile>> {
        Ok(Box::new(SshStaged { backend: self.0.clone(), t, buf: Vec::new() }))
    }
    fn list(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        self.0.pages(t, |start| Request::List { t, start })
    }
    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        self.0.ok(&Request::Remove { t, name: wire_name(t, name) }, t, name)
    }
    fn stray_entries(&self) -> Result<Vec<String>> {
        Ok(self.0.pages(FileType::Config, |start| Request::Stray { start })?.into_iter().map(|(n, _)| n).collect())
    }
    fn read_parallelism(&self) -> usize {
        self.0.max
    }
    fn clean_tmp(&self, max_age: std::time::Duration) -> Result<usize> {
        match self.0.call(&Request::CleanTmp { max_age_secs: max_age.as_secs() }, FileType::Config, "")? {
            Response::Count { count } => Ok(count as usize),
            other => Err(self.0.unexpected(&other)),
        }
    }
    fn free_space(&self) -> Result<Option<(u64, u64)>> {
        match self.0.call(&Request::FreeSpace, FileType::Config, "")? {
            Response::Space { space } => Ok(space),
            other => Err(self.0.unexpected(&other)),
        }
    }
}

impl Streams {
    fn location(&self) -> String {
        let user = self.loc.user.as_deref().map(|u| format!("{u}@")).unwrap_or_default();
        let port = self.loc.port.map(|p| format!(":{p}")).unwrap_or_default();
        let path = if self.loc.path.starts_with('/') { self.loc.path.clone() } else { format!("/./{}", self.loc.path) };
        format!("ssh://{user}{}{port}{path}", self.loc.host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_bad_ones_are_usage_errors() {
        let l = SshLocation::parse("ssh://backup@nas:2222/srv/arca/").unwrap();
        assert_eq!(
            (l.user.as_deref(), l.host.as_str(), l.port, l.path.as_str()),
            (Some("backup"), "nas", Some(2222), "/srv/arca")
        );
        assert_eq!(SshLocation::parse("ssh://nas/./arca").unwrap().path, "arca");
        assert_eq!(SshLocation::parse("ssh://nas/~/arca").unwrap().path, "arca");
        for bad in
            ["ssh://nas", "ssh://nas/", "ssh://-oProxyCommand=x/a", "ssh://nas:x/a", "ssh://nas/a/../b", "sftp://nas/a"]
        {
            assert!(matches!(SshLocation::parse(bad), Err(Error::InvalidArgument(_))), "{bad}");
        }
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
