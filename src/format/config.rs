//! format-spec/06-config.md — the repository config: version, repository ID, feature flags,
//! chunker, compression and pack parameters. Stored encrypted in the file `config`.

use super::from_postcard_canonical;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Required feature bit 1: key roles (format-spec/24-roles.md). Objects may be sealed to the read
/// key or under `K_meta` (header byte 6), and key files may be role keys.
pub const FEATURE_ROLES: u64 = 1 << 1;
/// Required feature bit 2: a key rotation is unfinished (format-spec/25-rotation.md). The body
/// ends with the previous master key, and objects may be sealed under either generation.
pub const FEATURE_ROTATION: u64 = 1 << 2;
/// Feature bits this reader understands in `required_features`.
pub const KNOWN_REQUIRED_FEATURES: u64 = FEATURE_ROLES | FEATURE_ROTATION;
/// Length of the previous master key that ends the body of a config with [`FEATURE_ROTATION`].
pub const PREVIOUS_KEY_LEN: usize = 32;
/// Largest encoded config accepted.
pub const MAX_CONFIG_LEN: usize = 64 * 1024;

/// Chunker bounds accepted in a config (format-spec/14-chunking.md).
pub const CHUNK_MIN_RANGE: std::ops::RangeInclusive<u32> = 64..=(4 << 20);
/// Largest `chunk_max` a reader accepts: one data blob's plaintext limit.
pub const CHUNK_MAX_LIMIT: u32 = 16 << 20;
/// Accepted zstd levels: up to 19, whose windows stay within the readers' 2^25-byte limit.
pub const COMPRESSION_LEVELS: std::ops::RangeInclusive<i32> = -7..=19;
/// Accepted pack target sizes.
pub const PACK_TARGET_RANGE: std::ops::RangeInclusive<u32> = (1 << 20)..=(1 << 30);

/// Chunker parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// Smallest chunk, bytes (except a file's last).
    pub min_size: u32,
    /// Target average, bytes; a power of two.
    pub avg_size: u32,
    /// Largest chunk, bytes.
    pub max_size: u32,
    /// FastCDC normalisation level, 0–3.
    pub normalization: u8,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams { min_size: 128 << 10, avg_size: 512 << 10, max_size: 2 << 20, normalization: 2 }
    }
}

/// The decoded config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Repository format version; 1.
    pub version: u32,
    /// Random repository ID.
    pub repo_id: [u8; 32],
    /// Features a reader MUST implement to use this repository.
    pub required_features: u64,
    /// Features a reader MAY ignore.
    pub optional_features: u64,
    /// Chunker parameters.
    pub chunker: ChunkerParams,
    /// zstd level writers use (0 = store uncompressed); readers ignore it.
    pub compression_level: i32,
    /// Pack size writers aim for, bytes.
    pub pack_target_size: u32,
    /// The master key of the generation being rotated away, present exactly when
    /// `required_features` has [`FEATURE_ROTATION`]: 32 bytes after the postcard fields.
    #[serde(skip)]
    pub previous_master: Option<PreviousMaster>,
}

/// The previous generation's master key in a config (format-spec/25): never printed, zeroed
/// when dropped.
#[derive(Clone, PartialEq, Eq, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct PreviousMaster(pub [u8; 32]);

impl std::fmt::Debug for PreviousMaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreviousMaster(..)")
    }
}

impl Config {
    /// A new config with default parameters.
    pub fn new(repo_id: [u8; 32]) -> Config {
        Config {
            version: 1,
            repo_id,
            required_features: 0,
            optional_features: 0,
            chunker: ChunkerParams::default(),
            compression_level: 3,
            pack_target_size: 16 << 20,
            previous_master: None,
        }
    }

    /// Encode to the plaintext body: the postcard fields, then the previous master key when a
    /// rotation is unfinished.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = super::to_postcard(self);
        if let Some(p) = &self.previous_master {
            body.extend_from_slice(&p.0);
        }
        body
    }

    /// Decode and validate.
    pub fn decode(body: &[u8]) -> Result<Config> {
        if body.len() > MAX_CONFIG_LEN {
            return Err(Error::integrity("config", "too large"));
        }
        // The feature bits come before anything variable-length, so a first decode of the
        // fields alone tells whether the previous master key follows them.
        let fields = match postcard::take_from_bytes::<Config>(body) {
            Ok((c, _)) if c.required_features & FEATURE_ROTATION != 0 && body.len() >= PREVIOUS_KEY_LEN => {
                &body[..body.len() - PREVIOUS_KEY_LEN]
            }
            _ => body,
        };
        let mut c: Config = from_postcard_canonical(fields, "config")?;
        if c.required_features & FEATURE_ROTATION != 0 {
            let key: [u8; 32] = body[fields.len()..].try_into().map_err(|_| {
                Error::integrity("config", "a config of an unfinished key rotation must end with the previous key")
            })?;
            c.previous_master = Some(PreviousMaster(key));
        }
        c.validate()?;
        Ok(c)
    }

    /// Enforce the MUST-reject rules.
    pub fn validate(&self) -> Result<()> {
        if self.version != 1 {
            return Err(Error::Unsupported(format!("repository version {}", self.version)));
        }
        let unknown = self.required_features & !KNOWN_REQUIRED_FEATURES;
        if unknown != 0 {
            return Err(Error::Unsupported(format!("required repository features {unknown:#x}")));
        }
        if (self.required_features & FEATURE_ROTATION != 0) != self.previous_master.is_some() {
            return Err(Error::integrity("config", "the rotation bit and the previous key disagree"));
        }
        let ch = &self.chunker;
        let ok = CHUNK_MIN_RANGE.contains(&ch.min_size)
            && ch.avg_size.is_power_of_two()
            && (256..=(4 << 20)).contains(&ch.avg_size)
            && ch.min_size % 2 == 0
            && ch.min_size < ch.avg_size
            && ch.avg_size < ch.max_size
            && ch.max_size <= CHUNK_MAX_LIMIT
            && ch.normalization <= 3;
        if !ok {
            return Err(Error::integrity("config", format!("chunker parameters out of range: {ch:?}")));
        }
        if !COMPRESSION_LEVELS.contains(&self.compression_level) || !PACK_TARGET_RANGE.contains(&self.pack_target_size)
        {
            return Err(Error::integrity("config", "compression level or pack size out of range"));
        }
        Ok(())
    }
}
