//! Password-based key wrapping for key files (format-spec/07-key-file.md).

use super::{open_with, random_array, seal_with, MasterKey};
use crate::error::{Error, Result};
use crate::format::key::{KdfParams, KeyFile, SECRET_LEN};
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
    if label.len() > crate::format::key::MAX_LABEL_LEN {
        return Err(Error::InvalidArgument("key label longer than 1024 bytes".into()));
    }
    let kek = derive_kek(password, &salt, &kdf)?;
    let mut kf = KeyFile { kdf, salt, created, label: label.to_string(), nonce, ciphertext: Vec::new() };
    let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
    secret[..32].copy_from_slice(master.as_bytes());
    secret[32..].copy_from_slice(repo_id);
    let sealed = seal_with(&kek, &nonce, secret.as_ref(), &kf.associated_data())?;
    kf.ciphertext = sealed[24..].to_vec();
    Ok(kf)
}

/// Open a key file with `password`: the master key and the repository ID it belongs to.
/// A failure to authenticate is reported as a wrong password.
pub fn unwrap(kf: &KeyFile, password: &[u8]) -> Result<(MasterKey, [u8; 32])> {
    let kek = derive_kek(password, &kf.salt, &kf.kdf)?;
    let mut sealed = kf.nonce.to_vec();
    sealed.extend_from_slice(&kf.ciphertext);
    let secret =
        Zeroizing::new(open_with(&kek, &sealed, &kf.associated_data(), "key file").map_err(|_| Error::WrongPassword)?);
    let master = MasterKey(secret[..32].try_into().unwrap());
    let repo_id = secret[32..].try_into().unwrap();
    Ok((master, repo_id))
}
