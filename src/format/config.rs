//! format-spec/06-config.md — the repository config: version, repository ID, feature flags,
//! chunker, compression and pack parameters. Stored encrypted in the file `config`.

use super::from_postcard_canonical;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Required feature bit 1: key roles (format-spec/24-roles.md). Objects may be sealed to the read
/// key or under `K_meta` (header byte 6), and key files may be role keys.
pub const FEATURE_ROLES: u64 = 1 << 1;
/// Feature bits this reader understands in `required_features`.
pub const KNOWN_REQUIRED_FEATURES: u64 = FEATURE_ROLES;
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
        }
    }

    /// Encode to the plaintext body.
    pub fn encode(&self) -> Vec<u8> {
        super::to_postcard(self)
    }

    /// Decode and validate.
    pub fn decode(body: &[u8]) -> Result<Config> {
        if body.len() > MAX_CONFIG_LEN {
            return Err(Error::integrity("config", "too large"));
        }
        let c: Config = from_postcard_canonical(body, "config")?;
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
