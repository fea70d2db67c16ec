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

/// [`check`] for a kind whose header byte 6 selects a variant (format-spec/24 §24.2): byte 6
/// must be one of `allowed` (else integrity); returns it.
pub fn check_variant(bytes: &[u8], kind: FileKind, allowed: &[u8], what: &str) -> Result<u8> {
    if bytes.len() < HEADER_LEN || bytes[..4] != MAGIC {
        return Err(Error::NotARepository(format!("{what}: no ARCA magic")));
    }
    if bytes[5] != FORMAT_VERSION {
        return Err(Error::Unsupported(format!("{what}: format version {}", bytes[5])));
    }
    if !allowed.contains(&bytes[6]) || bytes[7] != 0 {
        return Err(Error::integrity(what, "reserved header bytes are not zero"));
    }
    if bytes[4] != kind as u8 {
        return Err(Error::integrity(what, format!("file kind {} where {} expected", bytes[4], kind as u8)));
    }
    Ok(bytes[6])
}

/// How an object is sealed: header byte 6 of packs and encrypted files (format-spec/24 §24.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Sealing {
    /// `00`: under `K_enc` (every v1 object).
    Full = 0,
    /// `01`: to the read key, under a key from an ephemeral X25519 key after the header.
    Reader = 1,
    /// `02`: under `K_meta`, which every role holds.
    Meta = 2,
}

impl Sealing {
    /// Header byte 6.
    pub fn byte(self) -> u8 {
        self as u8
    }

    /// From header byte 6, already checked to be 0, 1 or 2.
    pub fn from_byte(b: u8) -> Sealing {
        match b {
            0 => Sealing::Full,
            1 => Sealing::Reader,
            _ => Sealing::Meta,
        }
    }
}

/// The header for `kind` sealed as `sealing`.
pub fn encode_sealed(kind: FileKind, sealing: Sealing) -> [u8; HEADER_LEN] {
    let mut h = encode(kind);
    h[6] = sealing.byte();
    h
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

/// Length of the ephemeral public key after the header of an object sealed to the read key.
pub const EPHEMERAL_LEN: usize = 32;

/// An encrypted file of any sealing, split into its parts (format-spec/24 §24.2).
pub struct SealedParts<'a> {
    /// How it is sealed.
    pub sealing: Sealing,
    /// The 8 header bytes (also the start of the associated data).
    pub header: &'a [u8],
    /// The ephemeral public key `E`, for [`Sealing::Reader`].
    pub ephemeral: Option<[u8; EPHEMERAL_LEN]>,
    /// The sealed box: nonce followed by ciphertext and tag.
    pub sealed: &'a [u8],
}

/// Split an encrypted file of `kind` whose sealing may be any of `allowed`, checking header and
/// minimum length.
pub fn split_sealing<'a>(bytes: &'a [u8], kind: FileKind, allowed: &[Sealing], what: &str) -> Result<SealedParts<'a>> {
    let bytes_allowed: Vec<u8> = allowed.iter().map(|s| s.byte()).collect();
    let sealing = Sealing::from_byte(check_variant(bytes, kind, &bytes_allowed, what)?);
    let at = HEADER_LEN + if sealing == Sealing::Reader { EPHEMERAL_LEN } else { 0 };
    if bytes.len() < at + SEAL_OVERHEAD {
        return Err(Error::integrity(what, "truncated: shorter than header, nonce and tag"));
    }
    let ephemeral = (sealing == Sealing::Reader).then(|| bytes[HEADER_LEN..at].try_into().expect("32 bytes"));
    Ok(SealedParts { sealing, header: &bytes[..HEADER_LEN], ephemeral, sealed: &bytes[at..] })
}

/// Associated data of an encrypted file: header bytes followed by the repository ID.
pub fn file_ad(header: &[u8], repo_id: &[u8; 32]) -> Vec<u8> {
    let mut ad = Vec::with_capacity(HEADER_LEN + 32);
    ad.extend_from_slice(header);
    ad.extend_from_slice(repo_id);
    ad
}
