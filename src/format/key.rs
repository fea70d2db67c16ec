//! format-spec/07-key-file.md — a key file: Argon2id parameters and a sealed master key.

use super::header::{self, FileKind, HEADER_LEN};
use super::{Reader, NONCE_LEN, TAG_LEN};
use crate::crypto::Role;
use crate::error::{Error, Result};

/// KDF identifier: Argon2id, version 0x13.
pub const KDF_ARGON2ID: u8 = 1;
/// Smallest memory cost accepted, KiB (8 MiB).
pub const MIN_MEMORY_KIB: u32 = 8 * 1024;
/// Largest memory cost accepted, KiB (1 GiB), so a hostile key file cannot exhaust memory.
pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;
/// Smallest and largest iteration counts accepted.
pub const TIME_COST_RANGE: std::ops::RangeInclusive<u32> = 1..=10;
/// Smallest and largest lane counts accepted.
pub const LANES_RANGE: std::ops::RangeInclusive<u32> = 1..=16;
/// Default memory cost for new key files, KiB (64 MiB).
pub const DEFAULT_MEMORY_KIB: u32 = 64 * 1024;
/// Default iterations for new key files.
pub const DEFAULT_TIME_COST: u32 = 3;
/// Default lanes for new key files.
pub const DEFAULT_LANES: u32 = 1;
/// Longest label, bytes.
pub const MAX_LABEL_LEN: usize = 1024;
/// Length of the sealed secret: master key and repository ID.
pub const SECRET_LEN: usize = 64;
/// Offset of the label in the file.
pub const LABEL_AT: usize = 63;
/// Length of a restore key's secret (format-spec/24 §24.3).
pub const RESTORE_SECRET_LEN: usize = 160;
/// Length of a backup key's secret before its config body (format-spec/24 §24.3).
pub const BACKUP_SECRET_FIXED: usize = 2240;
/// Longest config body a backup key's secret carries (the config's own body limit).
pub const MAX_BACKUP_CONFIG_LEN: usize = 65536;

/// Header byte 6 of a key file: the role it was made for (format-spec/24 §24.3).
pub fn role_byte(role: Role) -> u8 {
    match role {
        Role::Admin => 0,
        Role::Backup => 1,
        Role::Restore => 2,
    }
}

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory, KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub time_cost: u32,
    /// Lanes (parallelism).
    pub lanes: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams { memory_kib: DEFAULT_MEMORY_KIB, time_cost: DEFAULT_TIME_COST, lanes: DEFAULT_LANES }
    }
}

impl KdfParams {
    /// Enforce the documented bounds.
    pub fn validate(&self) -> Result<()> {
        let ok = (MIN_MEMORY_KIB..=MAX_MEMORY_KIB).contains(&self.memory_kib)
            && TIME_COST_RANGE.contains(&self.time_cost)
            && LANES_RANGE.contains(&self.lanes)
            && self.memory_kib >= 8 * self.lanes;
        if !ok {
            return Err(Error::integrity(
                "key file",
                format!(
                    "KDF parameters out of bounds (memory {} KiB, time {}, lanes {})",
                    self.memory_kib, self.time_cost, self.lanes
                ),
            ));
        }
        Ok(())
    }
}

/// A decoded key file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFile {
    /// The role: header byte 6 (`00` admin, `01` backup, `02` restore), authenticated.
    pub role: Role,
    /// Argon2id parameters.
    pub kdf: KdfParams,
    /// Argon2 salt.
    pub salt: [u8; 32],
    /// Creation time, Unix seconds.
    pub created: i64,
    /// Free-form UTF-8 label, conventionally `user@host`.
    pub label: String,
    /// Nonce of the sealed secret.
    pub nonce: [u8; NONCE_LEN],
    /// The sealed secret (ciphertext and tag): for an admin key the master key and repository
    /// ID, for a role key the secrets of format-spec/24 §24.3.
    pub ciphertext: Vec<u8>,
}

impl KeyFile {
    /// The associated data: every byte before the nonce.
    pub fn associated_data(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(LABEL_AT + 4 + self.label.len());
        let mut hdr = header::encode(FileKind::Key);
        hdr[6] = role_byte(self.role);
        out.extend_from_slice(&hdr);
        out.push(KDF_ARGON2ID);
        out.extend_from_slice(&self.kdf.memory_kib.to_le_bytes());
        out.extend_from_slice(&self.kdf.time_cost.to_le_bytes());
        out.extend_from_slice(&self.kdf.lanes.to_le_bytes());
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.created.to_le_bytes());
        out.extend_from_slice(&(self.label.len() as u16).to_le_bytes());
        out.extend_from_slice(self.label.as_bytes());
        if self.role != Role::Admin {
            out.extend_from_slice(&(self.ciphertext.len().saturating_sub(TAG_LEN) as u32).to_le_bytes());
        }
        out
    }

    /// Encode the whole file.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.associated_data();
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Decode and validate a key file (its secret stays sealed).
    pub fn decode(bytes: &[u8]) -> Result<KeyFile> {
        let what = "key file";
        let role = match header::check_variant(bytes, FileKind::Key, &[0, 1, 2], what)? {
            0 => Role::Admin,
            1 => Role::Backup,
            _ => Role::Restore,
        };
        let mut r = Reader::new(&bytes[HEADER_LEN..], what);
        let kdf_id = r.u8()?;
        if kdf_id != KDF_ARGON2ID {
            return Err(Error::Unsupported(format!("key file: KDF {kdf_id}")));
        }
        let kdf = KdfParams { memory_kib: r.u32()?, time_cost: r.u32()?, lanes: r.u32()? };
        kdf.validate()?;
        let salt = r.array()?;
        let created = r.i64()?;
        let label_len = r.u16()? as usize;
        if label_len > MAX_LABEL_LEN {
            return Err(Error::integrity(what, format!("label of {label_len} bytes")));
        }
        let label = std::str::from_utf8(r.take(label_len)?)
            .map_err(|_| Error::integrity(what, "label is not UTF-8"))?
            .to_string();
        let secret_len = match role {
            Role::Admin => SECRET_LEN,
            _ => {
                let n = r.u32()? as usize;
                let ok = match role {
                    Role::Restore => n == RESTORE_SECRET_LEN,
                    _ => (BACKUP_SECRET_FIXED + 1..=BACKUP_SECRET_FIXED + MAX_BACKUP_CONFIG_LEN).contains(&n),
                };
                if !ok {
                    return Err(Error::integrity(what, format!("a {} key's secret of {n} bytes", role.name())));
                }
                n
            }
        };
        let nonce = r.array()?;
        let ciphertext = r.take(secret_len + TAG_LEN)?.to_vec();
        r.finish()?;
        Ok(KeyFile { role, kdf, salt, created, label, nonce, ciphertext })
    }
}
