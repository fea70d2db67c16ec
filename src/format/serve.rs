//! format-spec/23-serve.md — the messages of `arca serve`: a client and a server exchange
//! length-prefixed frames over a byte stream (ssh's standard input and output), one response
//! per request, in order. Pure encode/decode; every length is checked before anything is
//! allocated for it.

use crate::backend::{is_object_name, FileType};
use crate::error::{Error, Result};

/// The protocol magic, sent by both sides first.
pub const MAGIC: [u8; 8] = *b"arcasrv\n";

/// The one protocol version.
pub const VERSION: u8 = 1;

/// Most bytes of data one message carries (a read, a write, an append).
pub const MAX_DATA: usize = 1 << 24;

/// Most bytes of a frame's body: the largest message is a write of [`MAX_DATA`] bytes.
pub const MAX_FRAME: usize = MAX_DATA + 1024;

/// Most entries in one listing page.
pub const MAX_PAGE: usize = 32_768;

/// Longest error message.
pub const MAX_MESSAGE: usize = 4096;

/// Longest name in a listing (a stray entry of a shard directory, `xx/name`).
pub const MAX_LISTED_NAME: usize = 255;

/// A request, client to server.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// The first request: the client's protocol version.
    Hello {
        /// [`VERSION`].
        version: u8,
    },
    /// Create the directories of a new repository.
    Create,
    /// Whether a file exists.
    Exists {
        /// Its type.
        #[serde(serialize_with = "type_name")]
        t: FileType,
        /// Its name.
        name: String,
    },
    /// `len` bytes at `offset`, or fewer where the file ends, with the file's length.
    ReadAt {
        /// Its type.
        #[serde(serialize_with = "type_name")]
        t: FileType,
        /// Its name.
        name: String,
        /// Where to start.
        offset: u64,
        /// How many bytes at most (≤ [`MAX_DATA`]).
        len: u32,
    },
    /// Publish a file of at most [`MAX_DATA`] bytes.
    Write {
        /// Its type.
        #[serde(serialize_with = "type_name")]
        t: FileType,
        /// Its name.
        name: String,
        /// Replace a file already there (else write-once).
        replace: bool,
        /// The whole file.
        #[serde(serialize_with = "hex_bytes")]
        data: Vec<u8>,
    },
    /// Start a file whose bytes come in appends; answered with a handle.
    Stage {
        /// Its type.
        #[serde(serialize_with = "type_name")]
        t: FileType,
    },
    /// More bytes of a staged file.
    Append {
        /// The handle.
        handle: u32,
        /// The bytes (≤ [`MAX_DATA`]).
        #[serde(serialize_with = "hex_bytes")]
        data: Vec<u8>,
    },
    /// Publish a staged file under `name`.
    Publish {
        /// The handle.
        handle: u32,
        /// The name.
        name: String,
        /// Replace a file already there (else write-once).
        replace: bool,
    },
    /// Drop a staged file.
    Discard {
        /// The handle.
        handle: u32,
    },
    /// A page of the listing of a type, from entry `start` on.
    List {
        /// The type.
        #[serde(serialize_with = "type_name")]
        t: FileType,
        /// The first entry wanted (0 lists afresh).
        start: u64,
    },
    /// Remove a file.
    Remove {
        /// Its type.
        #[serde(serialize_with = "type_name")]
        t: FileType,
        /// Its name.
        name: String,
    },
    /// Make a published file's existence durable.
    SyncName {
        /// Its type.
        #[serde(serialize_with = "type_name")]
        t: FileType,
        /// Its name.
        name: String,
    },
    /// Remove temporary files older than this many seconds.
    CleanTmp {
        /// The age.
        max_age_secs: u64,
    },
    /// A page of the entries that are no repository file, from entry `start` on.
    Stray {
        /// The first entry wanted.
        start: u64,
    },
    /// Free and total bytes of the storage.
    FreeSpace,
}

/// Error classes of an [`Response::Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The file does not exist.
    NotFound = 1,
    /// Any other I/O failure.
    Io = 2,
    /// A file failed a check (too long, not a regular file).
    Integrity = 3,
    /// The directory holds no repository.
    NotARepository = 4,
    /// The request was malformed or asked for something that cannot be (a name that exists).
    InvalidArgument = 5,
    /// Append-only: removing or overwriting is refused.
    Refused = 6,
}

impl ErrorClass {
    fn from_u8(b: u8) -> Option<ErrorClass> {
        use ErrorClass::*;
        Some(match b {
            1 => NotFound,
            2 => Io,
            3 => Integrity,
            4 => NotARepository,
            5 => InvalidArgument,
            6 => Refused,
            _ => return None,
        })
    }
}

/// A response, server to client.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    /// The answer to [`Request::Hello`].
    Hello {
        /// [`VERSION`].
        version: u8,
        /// The server refuses removals and overwrites.
        append_only: bool,
    },
    /// Done.
    Ok,
    /// Yes or no.
    Bool {
        /// The answer.
        value: bool,
    },
    /// Bytes read, and the length of the whole file.
    Data {
        /// The file's length.
        file_len: u64,
        /// The bytes.
        #[serde(serialize_with = "hex_bytes")]
        data: Vec<u8>,
    },
    /// A staged file's handle.
    Handle {
        /// The handle.
        handle: u32,
    },
    /// A page of a listing.
    Page {
        /// More entries follow.
        more: bool,
        /// Names and lengths.
        entries: Vec<(String, u64)>,
    },
    /// A count.
    Count {
        /// The count.
        count: u64,
    },
    /// Free and total bytes, if known.
    Space {
        /// `(free, total)`.
        space: Option<(u64, u64)>,
    },
    /// The request failed.
    Error {
        /// What kind of failure.
        class: ErrorClass,
        /// Words for the user.
        message: String,
    },
}

fn type_name<S: serde::Serializer>(t: &FileType, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u8(type_code(*t))
}

fn hex_bytes<S: serde::Serializer>(b: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&crate::id::hex(b))
}

/// The byte that stands for a file type.
pub fn type_code(t: FileType) -> u8 {
    match t {
        FileType::Config => 0,
        FileType::Key => 1,
        FileType::Pack => 2,
        FileType::Index => 3,
        FileType::Snapshot => 4,
        FileType::Lock => 5,
        FileType::Journal => 6,
        FileType::Parity => 7,
        FileType::ParityPolicy => 8,
    }
}

fn type_of(b: u8) -> Option<FileType> {
    const ALL: [FileType; 9] = [
        FileType::Config,
        FileType::Key,
        FileType::Pack,
        FileType::Index,
        FileType::Snapshot,
        FileType::Lock,
        FileType::Journal,
        FileType::Parity,
        FileType::ParityPolicy,
    ];
    ALL.get(b as usize).copied()
}

/// Whether `name` may name a file of type `t` in a request: empty for `config` and the parity
/// policy, 64 lowercase hex digits for every other type (so no request can name a path).
pub fn valid_name(t: FileType, name: &str) -> bool {
    match t {
        FileType::Config | FileType::ParityPolicy => name.is_empty(),
        _ => is_object_name(name),
    }
}

fn bad(why: impl Into<String>) -> Error {
    Error::integrity("serve message", why)
}

/// A bounds-checked reader over a message body.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.0.len() {
            return Err(bad("truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn bool(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(bad("a flag that is neither 0 nor 1")),
        }
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn file_type(&mut self) -> Result<FileType> {
        type_of(self.u8()?).ok_or_else(|| bad("an unknown file type"))
    }
    /// A `u8`-length-prefixed UTF-8 string.
    fn short_str(&mut self) -> Result<String> {
        let n = self.u8()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| bad("a name that is not UTF-8"))
    }
    /// A file type and a name valid for it.
    fn named(&mut self) -> Result<(FileType, String)> {
        let t = self.file_type()?;
        let name = self.short_str()?;
        if !valid_name(t, &name) {
            return Err(bad(format!("an invalid name for {}", t.dir())));
        }
        Ok((t, name))
    }
    /// A `u32`-length-prefixed byte string of at most `max` bytes.
    fn data(&mut self, max: usize) -> Result<Vec<u8>> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(bad(format!("{n} bytes of data, more than the {max} allowed")));
        }
        Ok(self.take(n)?.to_vec())
    }
    fn end(&self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(bad("trailing bytes"))
        }
    }
}

struct Out(Vec<u8>);

impl Out {
    fn new(code: u8) -> Out {
        Out(vec![code])
    }
    fn u8(mut self, b: u8) -> Out {
        self.0.push(b);
        self
    }
    fn u32(mut self, v: u32) -> Out {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Out {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn short_str(mut self, s: &str) -> Out {
        let b = &s.as_bytes()[..s.len().min(255)];
        self.0.push(b.len() as u8);
        self.0.extend_from_slice(b);
        self
    }
    fn named(self, t: FileType, name: &str) -> Out {
        self.u8(type_code(t)).short_str(name)
    }
    fn data(mut self, d: &[u8]) -> Out {
        self.0.extend_from_slice(&(d.len() as u32).to_le_bytes());
        self.0.extend_from_slice(d);
        self
    }
}

impl Request {
    /// The frame body. Lengths beyond the limits are the caller's to avoid (the client splits
    /// data into pieces of at most [`MAX_DATA`] bytes).
    pub fn encode(&self) -> Vec<u8> {
        use Request::*;
        let o = match self {
            Hello { version } => {
                let mut o = Out::new(0x01);
                o.0.extend_from_slice(&MAGIC);
                o.u8(*version)
            }
            Create => Out::new(0x02),
            Exists { t, name } => Out::new(0x03).named(*t, name),
            ReadAt { t, name, offset, len } => Out::new(0x04).named(*t, name).u64(*offset).u32(*len),
            Write { t, name, replace, data } => Out::new(0x05).named(*t, name).u8(*replace as u8).data(data),
            Stage { t } => Out::new(0x06).u8(type_code(*t)),
            Append { handle, data } => Out::new(0x07).u32(*handle).data(data),
            Publish { handle, name, replace } => Out::new(0x08).u32(*handle).short_str(name).u8(*replace as u8),
            Discard { handle } => Out::new(0x09).u32(*handle),
            List { t, start } => Out::new(0x0a).u8(type_code(*t)).u64(*start),
            Remove { t, name } => Out::new(0x0b).named(*t, name),
            SyncName { t, name } => Out::new(0x0c).named(*t, name),
            CleanTmp { max_age_secs } => Out::new(0x0d).u64(*max_age_secs),
            Stray { start } => Out::new(0x0e).u64(*start),
            FreeSpace => Out::new(0x0f),
        };
        o.0
    }

    /// Decode a frame body (format-spec/23 §23.3): every MUST-reject rule is an integrity error.
    pub fn decode(body: &[u8]) -> Result<Request> {
        if body.len() > MAX_FRAME {
            return Err(bad("a frame longer than allowed"));
        }
        let mut c = Cursor(body);
        let r = match c.u8()? {
            0x01 => {
                if c.take(8)? != MAGIC {
                    return Err(bad("not the arca serve protocol (wrong magic)"));
                }
                Request::Hello { version: c.u8()? }
            }
            0x02 => Request::Create,
            0x03 => {
                let (t, name) = c.named()?;
                Request::Exists { t, name }
            }
            0x04 => {
                let (t, name) = c.named()?;
                let offset = c.u64()?;
                let len = c.u32()?;
                if len as usize > MAX_DATA {
                    return Err(bad("a read longer than allowed"));
                }
                Request::ReadAt { t, name, offset, len }
            }
            0x05 => {
                let (t, name) = c.named()?;
                let replace = c.bool()?;
                Request::Write { t, name, replace, data: c.data(MAX_DATA)? }
            }
            0x06 => Request::Stage { t: c.file_type()? },
            0x07 => Request::Append { handle: c.u32()?, data: c.data(MAX_DATA)? },
            0x08 => {
                let handle = c.u32()?;
                let name = c.short_str()?;
                if !is_object_name(&name) {
                    return Err(bad("an invalid name to publish under"));
                }
                Request::Publish { handle, name, replace: c.bool()? }
            }
            0x09 => Request::Discard { handle: c.u32()? },
            0x0a => Request::List { t: c.file_type()?, start: c.u64()? },
            0x0b => {
                let (t, name) = c.named()?;
                Request::Remove { t, name }
            }
            0x0c => {
                let (t, name) = c.named()?;
                Request::SyncName { t, name }
            }
            0x0d => Request::CleanTmp { max_age_secs: c.u64()? },
            0x0e => Request::Stray { start: c.u64()? },
            0x0f => Request::FreeSpace,
            other => return Err(bad(format!("an unknown request {other:#04x}"))),
        };
        c.end()?;
        Ok(r)
    }
}

impl Response {
    /// The frame body; a message longer than [`MAX_MESSAGE`] bytes is cut (at a character).
    pub fn encode(&self) -> Vec<u8> {
        use Response::*;
        let o = match self {
            Hello { version, append_only } => {
                let mut o = Out::new(0x81);
                o.0.extend_from_slice(&MAGIC);
                o.u8(*version).u8(*append_only as u8)
            }
            Ok => Out::new(0x82),
            Bool { value } => Out::new(0x83).u8(*value as u8),
            Data { file_len, data } => Out::new(0x84).u64(*file_len).data(data),
            Handle { handle } => Out::new(0x85).u32(*handle),
            Page { more, entries } => {
                let mut o = Out::new(0x86).u8(*more as u8).u32(entries.len() as u32);
                for (name, len) in entries {
                    o = o.short_str(name).u64(*len);
                }
                o
            }
            Count { count } => Out::new(0x87).u64(*count),
            Space { space } => match space {
                None => Out::new(0x88).u8(0),
                Some((free, total)) => Out::new(0x88).u8(1).u64(*free).u64(*total),
            },
            Error { class, message } => {
                let mut cut = message.len().min(MAX_MESSAGE);
                while !message.is_char_boundary(cut) {
                    cut -= 1;
                }
                let mut o = Out::new(0xe0).u8(*class as u8);
                o.0.extend_from_slice(&(cut as u16).to_le_bytes());
                o.0.extend_from_slice(&message.as_bytes()[..cut]);
                o
            }
        };
        o.0
    }

    /// Decode a frame body (format-spec/23 §23.4).
    pub fn decode(body: &[u8]) -> Result<Response> {
        if body.len() > MAX_FRAME {
            return Err(bad("a frame longer than allowed"));
        }
        let mut c = Cursor(body);
        let r = match c.u8()? {
            0x81 => {
                if c.take(8)? != MAGIC {
                    return Err(bad("not the arca serve protocol (wrong magic)"));
                }
                Response::Hello { version: c.u8()?, append_only: c.bool()? }
            }
            0x82 => Response::Ok,
            0x83 => Response::Bool { value: c.bool()? },
            0x84 => {
                let file_len = c.u64()?;
                let data = c.data(MAX_DATA)?;
                Response::Data { file_len, data }
            }
            0x85 => Response::Handle { handle: c.u32()? },
            0x86 => {
                let more = c.bool()?;
                let n = c.u32()? as usize;
                if n > MAX_PAGE {
                    return Err(bad(format!("a page of {n} entries, more than the {MAX_PAGE} allowed")));
                }
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let name = c.short_str()?;
                    if name.is_empty() || name.contains('\0') {
                        return Err(bad("an empty name or one with NUL in a listing"));
                    }
                    entries.push((name, c.u64()?));
                }
                Response::Page { more, entries }
            }
            0x87 => Response::Count { count: c.u64()? },
            0x88 => Response::Space {
                space: match c.bool()? {
                    false => None,
                    true => Some((c.u64()?, c.u64()?)),
                },
            },
            0xe0 => {
                let class = ErrorClass::from_u8(c.u8()?).ok_or_else(|| bad("an unknown error class"))?;
                let n = u16::from_le_bytes(c.take(2)?.try_into().unwrap()) as usize;
                if n > MAX_MESSAGE {
                    return Err(bad("an error message longer than allowed"));
                }
                let message = String::from_utf8(c.take(n)?.to_vec()).map_err(|_| bad("a message that is not UTF-8"))?;
                Response::Error { class, message }
            }
            other => return Err(bad(format!("an unknown response {other:#04x}"))),
        };
        c.end()?;
        Ok(r)
    }
}

/// Read one frame: a `u32` little-endian body length (1 … [`MAX_FRAME`]), then the body. `None`
/// at a clean end of the stream (before a length).
pub fn read_frame(r: &mut impl std::io::Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..])? {
            0 if got == 0 => return Ok(None),
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    let n = u32::from_le_bytes(len) as usize;
    if n == 0 || n > MAX_FRAME {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("a frame of {n} bytes")));
    }
    let mut body = vec![0; n];
    r.read_exact(&mut body)?;
    Ok(Some(body))
}

/// Write one frame.
pub fn write_frame(w: &mut impl std::io::Write, body: &[u8]) -> std::io::Result<()> {
    w.write_all(&(body.len() as u32).to_le_bytes())?;
    w.write_all(body)?;
    w.flush()
}
