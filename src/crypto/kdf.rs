//! Password-based key wrapping for key files (format-spec/07-key-file.md).

use super::{open_with, random_array, seal_with, BackupSecrets, MasterKey, RestoreSecrets, Role};
use crate::error::{Error, Result};
use crate::format::key::{KdfParams, KeyFile, BACKUP_SECRET_FIXED, RESTORE_SECRET_LEN, SECRET_LEN};
use zeroize::Zeroizing;

/// Derive the key-encryption key from a password with Argon2id.
pub fn derive_kek(password: &[u8], salt: &[u8; 32], p: &KdfParams) -> Result<Zeroizing<[u8; 32]>> {
    p.validate()?;
    let params = argon2::Params::new(p.memory_kib, p.time_cost, p.lanes, Some(32))
        .map_err(|e| Error::InvalidArgument(format!("argon2 parameters: {e}")))?;
    let a2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    a2.hash_password_into(password, salt, out.as_mut()).map_err(|e| Error::InvalidArgument(format!("argon2: {e}")))?;
    Ok(out)
}

/// Make a key file that opens to `master` and `repo_id` with `password`.
pub fn wrap(
    master: &MasterKey,
    repo_id: &[u8; 32],
    password: &[u8],
    kdf: KdfParams,
    label: &str,
    created: i64,
) -> Result<KeyFile> {
    let salt = random_array()?;
    let nonce = random_array()?;
    wrap_with(master, repo_id, password, kdf, label, created, salt, nonce)
}

/// [`wrap`] with a chosen salt and nonce (test vectors).
#[allow(clippy::too_many_arguments)]
pub fn wrap_with(
    master: &MasterKey,
    repo_id: &[u8; 32],
    password: &[u8],
    kdf: KdfParams,
    label: &str,
    created: i64,
    salt: [u8; 32],
    nonce: [u8; 24],
) -> Result<KeyFile> {
    let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
    secret[..32].copy_from_slice(master.as_bytes());
    secret[32..].copy_from_slice(repo_id);
    seal_secret(Role::Admin, secret.as_ref(), password, kdf, label, created, salt, nonce)
}

/// Make a key file of `role` around its `secret` (format-spec/24 §24.3) with a chosen salt and
/// nonce.
#[allow(clippy::too_many_arguments)]
pub fn seal_secret(
    role: Role,
    secret: &[u8],
    password: &[u8],
    kdf: KdfParams,
    label: &str,
    created: i64,
    salt: [u8; 32],
    nonce: [u8; 24],
) -> Result<KeyFile> {
    if label.len() > crate::format::key::MAX_LABEL_LEN {
        return Err(Error::InvalidArgument("key label longer than 1024 bytes".into()));
    }
    let kek = derive_kek(password, &salt, &kdf)?;
    // The AD covers the secret's length, so the ciphertext's room is reserved before sealing.
    let mut kf =
        KeyFile { role, kdf, salt, created, label: label.to_string(), nonce, ciphertext: vec![0; secret.len() + 16] };
    let sealed = seal_with(&kek, &nonce, secret, &kf.associated_data())?;
    kf.ciphertext = sealed[24..].to_vec();
    Ok(kf)
}

/// The secret of a restore key: `repo_id || K_enc || K_id || K_meta || s_read`.
pub fn restore_secret(repo_id: &[u8; 32], s: &RestoreSecrets) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(RESTORE_SECRET_LEN));
    for part in [repo_id, &s.enc, &s.id, &s.meta, &s.read_secret] {
        out.extend_from_slice(part);
    }
    out
}

/// What a backup key carries besides its keys (format-spec/24 §24.3).
pub struct BackupBinding {
    /// `BLAKE3(config file bytes)`: the config this key was made for.
    pub config_hash: [u8; 32],
    /// The key of this key's local cache.
    pub cache_key: [u8; 32],
    /// The config's decrypted body, which a backup key cannot decrypt itself.
    pub config_body: Vec<u8>,
}

/// The secret of a backup key: `repo_id || config hash || K_id || K_meta || P_read || K_cache ||
/// gear bytes || config body`.
pub fn backup_secret(repo_id: &[u8; 32], s: &BackupSecrets, b: &BackupBinding) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(BACKUP_SECRET_FIXED + b.config_body.len()));
    for part in [repo_id, &b.config_hash, &s.id, &s.meta, &s.read_public, &b.cache_key] {
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&s.gear);
    out.extend_from_slice(&b.config_body);
    out
}

/// What a key file opens to, by its role.
pub enum Unwrapped {
    /// An admin key: the master key.
    Admin(MasterKey),
    /// A restore key's secrets.
    Restore(RestoreSecrets),
    /// A backup key's secrets and what binds it to its repository.
    Backup(BackupSecrets, BackupBinding),
}

/// Open a key file of any role with `password`: its secrets and the repository ID it belongs
/// to. A failure to authenticate is reported as a wrong password.
pub fn unwrap_any(kf: &KeyFile, password: &[u8]) -> Result<(Unwrapped, [u8; 32])> {
    let kek = derive_kek(password, &kf.salt, &kf.kdf)?;
    let mut sealed = kf.nonce.to_vec();
    sealed.extend_from_slice(&kf.ciphertext);
    let secret =
        Zeroizing::new(open_with(&kek, &sealed, &kf.associated_data(), "key file").map_err(|_| Error::WrongPassword)?);
    let fits = match kf.role {
        Role::Admin => secret.len() == SECRET_LEN,
        Role::Restore => secret.len() == RESTORE_SECRET_LEN,
        Role::Backup => secret.len() > BACKUP_SECRET_FIXED,
    };
    if !fits {
        return Err(Error::integrity(
            "key file",
            format!("a {} key's secret of {} bytes", kf.role.name(), secret.len()),
        ));
    }
    let part = |i: usize| -> [u8; 32] { secret[32 * i..32 * i + 32].try_into().expect("length checked by decode") };
    // An admin key's secret is `master || repo_id` (section 7); a role key's starts with `repo_id`.
    let repo_id = if kf.role == Role::Admin { part(1) } else { part(0) };
    let unwrapped = match kf.role {
        Role::Admin => Unwrapped::Admin(MasterKey(part(0))),
        Role::Restore => {
            Unwrapped::Restore(RestoreSecrets { enc: part(1), id: part(2), meta: part(3), read_secret: part(4) })
        }
        Role::Backup => Unwrapped::Backup(
            BackupSecrets {
                id: part(2),
                meta: part(3),
                read_public: part(4),
                gear: secret[192..BACKUP_SECRET_FIXED].to_vec(),
            },
            BackupBinding {
                config_hash: part(1),
                cache_key: part(5),
                config_body: secret[BACKUP_SECRET_FIXED..].to_vec(),
            },
        ),
    };
    Ok((unwrapped, repo_id))
}

/// Open an admin key file with `password`: the master key and the repository ID it belongs to.
/// A failure to authenticate is reported as a wrong password; a role key is refused.
pub fn unwrap(kf: &KeyFile, password: &[u8]) -> Result<(MasterKey, [u8; 32])> {
    match unwrap_any(kf, password)? {
        (Unwrapped::Admin(m), repo_id) => Ok((m, repo_id)),
        _ => Err(Error::InvalidArgument(format!("a {} key holds no master key", kf.role.name()))),
    }
}
