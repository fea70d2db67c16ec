//! `arca serve --stdio DIR`: the server end of `ssh://` repositories (format-spec/23). It
//! answers requests from standard input on standard output, over a local directory, like
//! `borg serve`. With `--append-only` (for a forced command in `authorized_keys`) it refuses
//! every removal and every overwrite except of the locks this session wrote itself, so a
//! client that is taken over cannot destroy the history it can reach.
//!
//! The server never sees the password: it moves encrypted files, checks names (only the
//! forms of format-spec/04 §4.2, so no request can name a path) and bounds every length.

use crate::backend::local::LocalBackend;
use crate::backend::{Backend, FileType, StagedFile};
use crate::error::{Error, Result};
use crate::format::serve::{self, ErrorClass, Request, Response};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

/// Most staged files one session holds open.
pub const MAX_STAGED: usize = 64;

/// Most bytes one staged file may grow to: the longest pack (format-spec/19).
const MAX_STAGED_LEN: u64 = u32::MAX as u64;

/// What a server session is asked to do.
#[derive(Clone, Debug)]
pub struct ServeRequest {
    /// The repository directory.
    pub dir: PathBuf,
    /// Refuse removals and overwrites (but of this session's own locks).
    pub append_only: bool,
}

/// How a session ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServeOutcome {
    /// Requests answered.
    pub requests: u64,
    /// Requests refused because the server is append-only.
    pub refused: u64,
}

/// One staged file and how much has been appended.
struct Staged {
    file: Box<dyn StagedFile>,
    t: FileType,
    len: u64,
}

/// A session's state.
struct Session {
    backend: LocalBackend,
    append_only: bool,
    /// Locks this session wrote: the only files an append-only session may remove.
    own_locks: HashSet<String>,
    staged: HashMap<u32, Staged>,
    next_handle: u32,
    /// The listing being paged through, per type (and the stray entries as `None`).
    listing: HashMap<Option<u8>, Vec<(String, u64)>>,
    outcome: ServeOutcome,
}

/// Serve one client on `input`/`output` until it closes the stream. A broken stream or a
/// frame that cannot be read ends the session with an error; a request that fails is
/// answered with an error and the session goes on.
pub fn run(req: &ServeRequest, mut input: impl Read, mut output: impl Write) -> Result<ServeOutcome> {
    let io = |e: std::io::Error| Error::Io { path: "the client's stream".into(), source: e };
    let mut s = Session {
        backend: LocalBackend::new(req.dir.clone()),
        append_only: req.append_only,
        own_locks: HashSet::new(),
        staged: HashMap::new(),
        next_handle: 1,
        listing: HashMap::new(),
        outcome: ServeOutcome::default(),
    };
    let mut greeted = false;
    while let Some(body) = serve::read_frame(&mut input).map_err(io)? {
        let answer = match Request::decode(&body) {
            Ok(Request::Hello { version }) if version == serve::VERSION => {
                greeted = true;
                Response::Hello { version: serve::VERSION, append_only: s.append_only }
            }
            Ok(Request::Hello { version }) => error(
                ErrorClass::InvalidArgument,
                format!("protocol version {version} is not supported (this server speaks {})", serve::VERSION),
            ),
            Ok(_) if !greeted => error(ErrorClass::InvalidArgument, "the first request must be hello".into()),
            Ok(r) => s.answer(r),
            Err(e) => error(ErrorClass::InvalidArgument, e.to_string()),
        };
        s.outcome.requests += 1;
        serve::write_frame(&mut output, &answer.encode()).map_err(io)?;
    }
    Ok(s.outcome)
}

/// Files named by the hash of their content (format-spec/04 §4.2): an existing one already has
/// the bytes a writer would put there.
fn content_addressed(t: FileType) -> bool {
    matches!(t, FileType::Pack | FileType::Index | FileType::Snapshot | FileType::Key)
}

fn error(class: ErrorClass, message: String) -> Response {
    Response::Error { class, message }
}

/// The wire class of a library error.
fn class_of(e: &Error) -> ErrorClass {
    match e.innermost() {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => ErrorClass::NotFound,
        Error::Integrity { .. } => ErrorClass::Integrity,
        Error::NotARepository(_) => ErrorClass::NotARepository,
        Error::InvalidArgument(_) => ErrorClass::InvalidArgument,
        _ => ErrorClass::Io,
    }
}

fn reply(r: Result<Response>) -> Response {
    r.unwrap_or_else(|e| {
        let message = match e.innermost() {
            Error::Integrity { reason, .. } => reason.clone(),
            other => other.to_string(),
        };
        error(class_of(&e), message)
    })
}

impl Session {
    fn answer(&mut self, r: Request) -> Response {
        if let Some(why) = self.refusal(&r) {
            self.outcome.refused += 1;
            return error(ErrorClass::Refused, format!("the server is append-only: {why}"));
        }
        let b = &self.backend;
        match r {
            Request::Hello { .. } => unreachable!("answered by the loop"),
            Request::Create => reply(b.create().map(|_| Response::Ok)),
            Request::Exists { t, name } => reply(b.exists(t, &name).map(|value| Response::Bool { value })),
            Request::ReadAt { t, name, offset, len } => reply(
                b.read_upto(t, &name, offset, len as usize).map(|(file_len, data)| Response::Data { file_len, data }),
            ),
            Request::Write { t, name, replace, data } => {
                let done =
                    if replace && !self.append_only { b.replace(t, &name, &data) } else { b.write(t, &name, &data) };
                if done.is_ok() && t == FileType::Lock {
                    self.own_locks.insert(name);
                }
                reply(done.map(|_| Response::Ok))
            }
            Request::Stage { t } => self.stage(t),
            Request::Append { handle, data } => self.append(handle, &data),
            Request::Publish { handle, name, replace } => self.publish(handle, &name, replace),
            Request::Discard { handle } => {
                self.staged.remove(&handle);
                Response::Ok
            }
            Request::List { t, start } => {
                let fresh = (start == 0).then(|| b.list(t));
                self.page(Some(serve::type_code(t)), start, fresh)
            }
            Request::Stray { start } => {
                let fresh = (start == 0).then(|| Ok(b.stray_entries()?.into_iter().map(|n| (n, 0)).collect()));
                self.page(None, start, fresh)
            }
            Request::Remove { t, name } => {
                let done = b.remove(t, &name);
                if done.is_ok() {
                    self.own_locks.remove(&name);
                }
                reply(done.map(|_| Response::Ok))
            }
            Request::SyncName { t, name } => reply(b.sync_name(t, &name).map(|_| Response::Ok)),
            Request::CleanTmp { max_age_secs } => {
                reply(b.clean_tmp(Duration::from_secs(max_age_secs)).map(|n| Response::Count { count: n as u64 }))
            }
            Request::FreeSpace => reply(b.free_space().map(|space| Response::Space { space })),
        }
    }

    /// Why an append-only server refuses `r`, if it does (format-spec/23 §23.5).
    fn refusal(&self, r: &Request) -> Option<String> {
        if !self.append_only {
            return None;
        }
        let exists = |t: FileType, name: &str| self.backend.exists(t, name).unwrap_or(true);
        match r {
            Request::Remove { t: FileType::Lock, name } if self.own_locks.contains(name) => None,
            Request::Remove { t, name } => Some(format!("removing {} is refused", t.describe(name))),
            Request::Write { t, name, replace: true, .. } if exists(*t, name) => {
                Some(format!("overwriting {} is refused", t.describe(name)))
            }
            Request::Publish { handle, name, .. } => {
                let t = self.staged.get(handle)?.t;
                (!content_addressed(t) && exists(t, name))
                    .then(|| format!("overwriting {} is refused", t.describe(name)))
            }
            _ => None,
        }
    }

    fn stage(&mut self, t: FileType) -> Response {
        if self.staged.len() >= MAX_STAGED {
            return error(ErrorClass::InvalidArgument, format!("more than {MAX_STAGED} staged files"));
        }
        match self.backend.stage(t) {
            Ok(file) => {
                let handle = self.next_handle;
                self.next_handle = self.next_handle.wrapping_add(1).max(1);
                self.staged.insert(handle, Staged { file, t, len: 0 });
                Response::Handle { handle }
            }
            Err(e) => reply(Err(e)),
        }
    }

    fn append(&mut self, handle: u32, data: &[u8]) -> Response {
        let Some(st) = self.staged.get_mut(&handle) else {
            return error(ErrorClass::InvalidArgument, format!("no staged file {handle}"));
        };
        st.len += data.len() as u64;
        if st.len > MAX_STAGED_LEN {
            self.staged.remove(&handle);
            return error(ErrorClass::InvalidArgument, "a staged file longer than a pack may be".into());
        }
        match st.file.write_all(data) {
            Ok(()) => Response::Ok,
            Err(e) => {
                self.staged.remove(&handle);
                reply(Err(Error::Io { path: "a staged file".into(), source: e }))
            }
        }
    }

    fn publish(&mut self, handle: u32, name: &str, replace: bool) -> Response {
        let Some(st) = self.staged.remove(&handle) else {
            return error(ErrorClass::InvalidArgument, format!("no staged file {handle}"));
        };
        if !serve::valid_name(st.t, name) {
            return error(ErrorClass::InvalidArgument, format!("an invalid name for {}", st.t.dir()));
        }
        // Write-once (and anything on an append-only server): a file named by its content that
        // exists already has these bytes and is left as it is; another name that exists is an
        // error (append-only refused it before this).
        let exists = match self.backend.exists(st.t, name) {
            Ok(e) => e,
            Err(e) => return reply(Err(e)),
        };
        if exists && (!replace || self.append_only) {
            return match content_addressed(st.t) {
                true => Response::Ok,
                false => error(ErrorClass::InvalidArgument, format!("{} already exists", st.t.describe(name))),
            };
        }
        reply(st.file.publish(name).map(|_| Response::Ok))
    }

    /// A page of a listing, taken afresh when `start` is 0 and kept for the following pages.
    fn page(&mut self, key: Option<u8>, start: u64, fresh: Option<Result<Vec<(String, u64)>>>) -> Response {
        match fresh {
            Some(Ok(all)) => drop(self.listing.insert(key, all)),
            Some(Err(e)) => return reply(Err(e)),
            None => {}
        }
        let all = self.listing.get(&key).map(Vec::as_slice).unwrap_or_default();
        let from = usize::try_from(start).unwrap_or(usize::MAX).min(all.len());
        let to = (from + serve::MAX_PAGE).min(all.len());
        let entries: Vec<(String, u64)> =
            all[from..to].iter().filter(|(n, _)| n.len() <= serve::MAX_LISTED_NAME).cloned().collect();
        let more = to < all.len();
        if !more {
            self.listing.remove(&key);
        }
        Response::Page { more, entries }
    }
}
