//! format-spec/05-file-header.md — the 8-byte header every repository file starts with, and the
//! layout of an encrypted file (header, then one sealed box).

use super::SEAL_OVERHEAD;
use crate::error::{Error, Result};

/// The four magic bytes `ARCA`.
pub const MAGIC: [u8; 4] = *b"ARCA";
/// The only format version this implementation reads and writes.
pub const FORMAT_VERSION: u8 = 1;
/// Length of the file header.
pub const HEADER_LEN: usize = 8;

/// What a repository file holds; byte 4 of the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FileKind {
    /// `config`: repository parameters.
    Config = 1,
    /// `keys/…`: a password-wrapped master key.
    Key = 2,
    /// `data/…`: a packfile.
    Pack = 3,
    /// `index/…`: an index file.
    Index = 4,
    /// `snapshots/…`: a snapshot.
    Snapshot = 5,
    /// `locks/…`: a lock.
    Lock = 6,
    /// `journal/…`: operations journal records.
    Journal = 7,
    /// `parity/xx/…`: Reed-Solomon recovery data for one pack, index file or snapshot.
    Parity = 8,
    /// `parity/policy`: how much parity writers make.
    ParityPolicy = 9,
}

impl FileKind {
    /// Decode the kind byte.
    pub fn from_u8(b: u8) -> Option<FileKind> {
        Some(match b {
            1 => FileKind::Config,
            2 => FileKind::Key,
            3 => FileKind::Pack,
            4 => FileKind::Index,
            5 => FileKind::Snapshot,
            6 => FileKind::Lock,
            7 => FileKind::Journal,
            8 => FileKind::Parity,
            9 => FileKind::ParityPolicy,
            _ => return None,
        })
    }

    /// Lowercase name used in messages and `arca cat`.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Config => "config",
            FileKind::Key => "key",
            FileKind::Pack => "pack",
            FileKind::Index => "index",
            FileKind::Snapshot => "snapshot",
            FileKind::Lock => "lock",
            FileKind::Journal => "journal",
            FileKind::Parity => "parity",
            FileKind::ParityPolicy => "parity policy",
        }
    }
}

/// The header for `kind` at the current version.
pub fn encode(kind: FileKind) -> [u8; HEADER_LEN] {
    let m = MAGIC;
    [m[0], m[1], m[2], m[3], kind as u8, FORMAT_VERSION, 0, 0]
}

/// Check the header at the start of `bytes` against the expected kind.
///
/// Order of checks is normative: magic, then version, then reserved bytes, then kind, so that a
/// future version with a new layout is reported as "unsupported", never as "corrupt".
pub fn check(bytes: &[u8], kind: FileKind, what: &str) -> Result<()> {
    if bytes.len() < HEADER_LEN || bytes[..4] != MAGIC {
        return Err(Error::NotARepository(format!("{what}: no ARCA magic")));
    }
    if bytes[5] != FORMAT_VERSION {
        return Err(Error::Unsupported(format!("{what}: format version {}", bytes[5])));
    }
    if bytes[6] != 0 || bytes[7] != 0 {
        return Err(Error::integrity(what, "reserved header bytes are not zero"));
    }
    if bytes[4] != kind as u8 {
        return Err(Error::integrity(what, format!("file kind {} where {} expected", bytes[4], kind as u8)));
    }
    Ok(())
}

/// An encrypted file split into its parts: header, nonce, ciphertext-with-tag.
pub struct SealedFile<'a> {
    /// The 8 header bytes (also the start of the associated data).
    pub header: &'a [u8],
    /// The sealed box: nonce followed by ciphertext and tag.
    pub sealed: &'a [u8],
}

/// Split an encrypted file of `kind`, checking header and minimum length.
pub fn split_sealed<'a>(bytes: &'a [u8], kind: FileKind, what: &str) -> Result<SealedFile<'a>> {
    check(bytes, kind, what)?;
    if bytes.len() < HEADER_LEN + SEAL_OVERHEAD {
        return Err(Error::integrity(what, "truncated: shorter than header, nonce and tag"));
    }
    Ok(SealedFile { header: &bytes[..HEADER_LEN], sealed: &bytes[HEADER_LEN..] })
}

/// Associated data of an encrypted file: header bytes followed by the repository ID.
pub fn file_ad(header: &[u8], repo_id: &[u8; 32]) -> Vec<u8> {
    let mut ad = Vec::with_capacity(HEADER_LEN + 32);
    ad.extend_from_slice(header);
    ad.extend_from_slice(repo_id);
    ad
}
