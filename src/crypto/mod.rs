//! Keys and authenticated encryption (format-spec/03-cryptography.md).
//!
//! One random 32-byte master key per repository. Everything else is derived from it with BLAKE3
//! `derive_key` under fixed context strings, so the three uses can never be confused:
//! the AEAD key (XChaCha20-Poly1305 for every blob and encrypted file), the blob-ID key (keyed
//! BLAKE3 of a blob's plaintext, so IDs reveal nothing about content to anyone without the key),
//! and the chunker's gear table (so chunk boundaries are secret too).

pub mod kdf;

use crate::error::{Error, Result};
use crate::format::{NONCE_LEN, SEAL_OVERHEAD, TAG_LEN};
use crate::id::Id;
use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Context string for the AEAD key.
pub const CTX_ENCRYPTION: &str = "arca 2026-11-22 v1 encryption key";
/// Context string for the blob-ID key.
pub const CTX_BLOB_ID: &str = "arca 2026-11-22 v1 blob id key";
/// Context string for the chunker gear table (used as an extendable output).
pub const CTX_GEAR: &str = "arca 2026-11-22 v1 chunker gear table";

/// The repository's master key. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey(pub(crate) [u8; 32]);

impl MasterKey {
    /// A fresh random master key.
    pub fn random() -> Result<MasterKey> {
        Ok(MasterKey(random_array()?))
    }

    /// Wrap known bytes (test vectors).
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        MasterKey(bytes)
    }

    /// The raw bytes (for sealing into a key file).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// The subkeys a repository works with. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Keys {
    enc: [u8; 32],
    id: [u8; 32],
    gear: [u64; 256],
}

impl Keys {
    /// Derive all subkeys from the master key.
    pub fn derive(master: &MasterKey) -> Keys {
        let mut gear_bytes = [0u8; 2048];
        let mut h = blake3::Hasher::new_derive_key(CTX_GEAR);
        h.update(&master.0);
        h.finalize_xof().fill(&mut gear_bytes);
        let mut gear = [0u64; 256];
        for (g, b) in gear.iter_mut().zip(gear_bytes.chunks_exact(8)) {
            *g = u64::from_le_bytes(b.try_into().unwrap());
        }
        gear_bytes.zeroize();
        Keys {
            enc: blake3::derive_key(CTX_ENCRYPTION, &master.0),
            id: blake3::derive_key(CTX_BLOB_ID, &master.0),
            gear,
        }
    }

    /// The blob ID of `plaintext`: keyed BLAKE3.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.id, plaintext).as_bytes())
    }

    /// The chunker's gear table.
    pub fn gear(&self) -> &[u64; 256] {
        &self.gear
    }

    /// Seal `plaintext` under the AEAD key with a fresh random nonce: `nonce || ciphertext || tag`.
    pub fn seal(&self, plaintext: &[u8], ad: &[u8]) -> Result<Vec<u8>> {
        seal_with(&self.enc, &random_array()?, plaintext, ad)
    }

    /// Seal in place: `buf` holds [`NONCE_LEN`] bytes of room followed by the plaintext; on
    /// return it is the sealed box `nonce || ciphertext || tag`. No copy of the data is made.
    pub fn seal_in_place(&self, buf: &mut Vec<u8>, ad: &[u8]) -> Result<()> {
        let nonce: [u8; NONCE_LEN] = random_array()?;
        buf[..NONCE_LEN].copy_from_slice(&nonce);
        let cipher = XChaCha20Poly1305::new((&self.enc).into());
        let tag = cipher
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), ad, &mut buf[NONCE_LEN..])
            .map_err(|_| Error::InvalidArgument("plaintext too long to encrypt".into()))?;
        buf.extend_from_slice(&tag);
        Ok(())
    }

    /// Open a sealed box in place; returns the plaintext in the same allocation.
    pub fn open_in_place(&self, mut sealed: Vec<u8>, ad: &[u8], what: &str) -> Result<Vec<u8>> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(Error::integrity(what, "truncated: shorter than nonce and tag"));
        }
        let tag_at = sealed.len() - TAG_LEN;
        let tag = *chacha20poly1305::Tag::from_slice(&sealed[tag_at..]);
        let nonce = *XNonce::from_slice(&sealed[..NONCE_LEN]);
        let cipher = XChaCha20Poly1305::new((&self.enc).into());
        cipher
            .decrypt_in_place_detached(&nonce, ad, &mut sealed[NONCE_LEN..tag_at], &tag)
            .map_err(|_| Error::integrity(what, "authentication failed (tampered, truncated or wrong key)"))?;
        sealed.truncate(tag_at);
        sealed.drain(..NONCE_LEN);
        Ok(sealed)
    }

    /// Seal with a caller-chosen nonce (test vectors only; never reuse a nonce).
    pub fn seal_with_nonce(&self, nonce: &[u8; NONCE_LEN], plaintext: &[u8], ad: &[u8]) -> Vec<u8> {
        seal_with(&self.enc, nonce, plaintext, ad).expect("sealing into memory")
    }

    /// Open a sealed box; any mismatch is an integrity error about `what`.
    pub fn open(&self, sealed: &[u8], ad: &[u8], what: &str) -> Result<Vec<u8>> {
        open_with(&self.enc, sealed, ad, what)
    }
}

/// Seal with an explicit key and nonce.
pub fn seal_with(key: &[u8; 32], nonce: &[u8; NONCE_LEN], plaintext: &[u8], ad: &[u8]) -> Result<Vec<u8>> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let ct = cipher
        .encrypt(XNonce::from_slice(nonce), Payload { msg: plaintext, aad: ad })
        .map_err(|_| Error::InvalidArgument("plaintext too long to encrypt".into()))?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Open `nonce || ciphertext || tag` with an explicit key.
pub fn open_with(key: &[u8; 32], sealed: &[u8], ad: &[u8], what: &str) -> Result<Vec<u8>> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(Error::integrity(what, "truncated: shorter than nonce and tag"));
    }
    let cipher = XChaCha20Poly1305::new(key.into());
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: ad })
        .map_err(|_| Error::integrity(what, "authentication failed (tampered, truncated or wrong key)"))
}

/// `N` bytes from the operating system's CSPRNG.
pub fn random_array<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b)
        .map_err(|e| Error::Io { path: "getrandom".into(), source: std::io::Error::other(e.to_string()) })?;
    Ok(b)
}
