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
/// Context string for `K_meta`, the key of index files and locks in a repository with roles.
pub const CTX_METADATA: &str = "arca 2026-12-07 v1 metadata key";
/// Context string for the read key's secret `s_read`.
pub const CTX_READ_KEY: &str = "arca 2026-12-07 v1 read key";
/// Context string for the key of an object sealed to the read key.
pub const CTX_SEALED_OBJECT: &str = "arca 2026-12-07 v1 sealed object key";

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

/// What a key lets its holder do (format-spec/24-roles.md). The role decides which secrets the
/// key file holds, so a key cannot do more than its role, whatever the program using it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything: the master key.
    Admin,
    /// Write new snapshots; read nothing already stored.
    Backup,
    /// Read everything; write only locks and journal records.
    Restore,
}

impl Role {
    /// Its name in messages and `key list`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Backup => "backup",
            Role::Restore => "restore",
        }
    }
}

/// A 32-byte XChaCha20-Poly1305 key. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SymKey([u8; 32]);

impl SymKey {
    /// Wrap known bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> SymKey {
        SymKey(bytes)
    }

    /// The raw bytes (for sealing into a key file).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Seal `plaintext` with a fresh random nonce: `nonce || ciphertext || tag`.
    pub fn seal(&self, plaintext: &[u8], ad: &[u8]) -> Result<Vec<u8>> {
        seal_with(&self.0, &random_array()?, plaintext, ad)
    }

    /// Seal in place: `buf` holds [`NONCE_LEN`] bytes of room followed by the plaintext; on
    /// return it is the sealed box `nonce || ciphertext || tag`. No copy of the data is made.
    pub fn seal_in_place(&self, buf: &mut Vec<u8>, ad: &[u8]) -> Result<()> {
        let nonce: [u8; NONCE_LEN] = random_array()?;
        buf[..NONCE_LEN].copy_from_slice(&nonce);
        let cipher = XChaCha20Poly1305::new((&self.0).into());
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
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        cipher
            .decrypt_in_place_detached(&nonce, ad, &mut sealed[NONCE_LEN..tag_at], &tag)
            .map_err(|_| Error::integrity(what, "authentication failed (tampered, truncated or wrong key)"))?;
        sealed.truncate(tag_at);
        sealed.drain(..NONCE_LEN);
        Ok(sealed)
    }

    /// Seal with a caller-chosen nonce (test vectors only; never reuse a nonce).
    pub fn seal_with_nonce(&self, nonce: &[u8; NONCE_LEN], plaintext: &[u8], ad: &[u8]) -> Vec<u8> {
        seal_with(&self.0, nonce, plaintext, ad).expect("sealing into memory")
    }

    /// Open a sealed box; any mismatch is an integrity error about `what`.
    pub fn open(&self, sealed: &[u8], ad: &[u8], what: &str) -> Result<Vec<u8>> {
        open_with(&self.0, sealed, ad, what)
    }
}

/// The keys a repository is worked with, as far as the key's role has them. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Keys {
    #[zeroize(skip)]
    role: Role,
    /// `K_enc`: objects sealed in full (admin, restore).
    enc: Option<SymKey>,
    id: [u8; 32],
    /// The chunker's gear table (admin, backup).
    gear: Option<[u64; 256]>,
    /// `K_meta`: index files, locks and the parity policy of a repository with roles (every role).
    meta: SymKey,
    /// The read key's secret `s_read` (admin, restore).
    read_secret: Option<[u8; 32]>,
    /// The read key's public half `P_read` (every role).
    read_public: [u8; 32],
    /// The keys of the generation an unfinished rotation replaces (format-spec/25): objects
    /// not yet rewritten are read with them. Zeroed by their own drop.
    #[zeroize(skip)]
    previous: Option<Box<Keys>>,
}

/// The raw secrets of a restore key (format-spec/24 §24.3), in the key file's order.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct RestoreSecrets {
    /// `K_enc`.
    pub enc: [u8; 32],
    /// `K_id`.
    pub id: [u8; 32],
    /// `K_meta`.
    pub meta: [u8; 32],
    /// `s_read`.
    pub read_secret: [u8; 32],
}

/// The raw secrets of a backup key (format-spec/24 §24.3), in the key file's order.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct BackupSecrets {
    /// `K_id`.
    pub id: [u8; 32],
    /// `K_meta`.
    pub meta: [u8; 32],
    /// `P_read`.
    pub read_public: [u8; 32],
    /// The gear table's 2048 bytes.
    pub gear: Vec<u8>,
}

fn gear_table(bytes: &[u8]) -> [u64; 256] {
    let mut gear = [0u64; 256];
    for (g, b) in gear.iter_mut().zip(bytes.chunks_exact(8)) {
        *g = u64::from_le_bytes(b.try_into().unwrap());
    }
    gear
}

fn gear_bytes(master: &MasterKey) -> Vec<u8> {
    let mut bytes = vec![0u8; 2048];
    let mut h = blake3::Hasher::new_derive_key(CTX_GEAR);
    h.update(&master.0);
    h.finalize_xof().fill(&mut bytes);
    bytes
}

/// `P = X25519(s, 9)`: the public half of an X25519 secret.
pub fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::x25519(*secret, x25519_dalek::X25519_BASEPOINT_BYTES)
}

impl Keys {
    /// Derive all subkeys from the master key (an admin key).
    pub fn derive(master: &MasterKey) -> Keys {
        let mut gear = gear_bytes(master);
        let table = gear_table(&gear);
        gear.zeroize();
        let read_secret = blake3::derive_key(CTX_READ_KEY, &master.0);
        Keys {
            role: Role::Admin,
            enc: Some(SymKey(blake3::derive_key(CTX_ENCRYPTION, &master.0))),
            id: blake3::derive_key(CTX_BLOB_ID, &master.0),
            gear: Some(table),
            meta: SymKey(blake3::derive_key(CTX_METADATA, &master.0)),
            read_public: x25519_public(&read_secret),
            read_secret: Some(read_secret),
            previous: None,
        }
    }

    /// These keys, reading what is not yet rewritten with `previous` (format-spec/25).
    pub fn with_previous(mut self, previous: Keys) -> Keys {
        self.previous = Some(Box::new(previous));
        self
    }

    /// The keys of the generation an unfinished rotation replaces.
    pub fn previous(&self) -> Option<&Keys> {
        self.previous.as_deref()
    }

    /// The secrets a restore key made by this admin key holds.
    pub fn restore_secrets(&self) -> Result<RestoreSecrets> {
        let (Some(enc), Some(read_secret)) = (&self.enc, &self.read_secret) else {
            return Err(self.denied("make keys"));
        };
        Ok(RestoreSecrets { enc: enc.0, id: self.id, meta: self.meta.0, read_secret: *read_secret })
    }

    /// The secrets a backup key made by this admin key holds (`master` gives the gear bytes).
    pub fn backup_secrets(&self, master: &MasterKey) -> BackupSecrets {
        BackupSecrets { id: self.id, meta: self.meta.0, read_public: self.read_public, gear: gear_bytes(master) }
    }

    /// The keys of a restore key.
    pub fn of_restore(s: &RestoreSecrets) -> Keys {
        Keys {
            role: Role::Restore,
            enc: Some(SymKey(s.enc)),
            id: s.id,
            gear: None,
            meta: SymKey(s.meta),
            read_public: x25519_public(&s.read_secret),
            read_secret: Some(s.read_secret),
            previous: None,
        }
    }

    /// The keys of a backup key.
    pub fn of_backup(s: &BackupSecrets) -> Keys {
        Keys {
            role: Role::Backup,
            enc: None,
            id: s.id,
            gear: Some(gear_table(&s.gear)),
            meta: SymKey(s.meta),
            read_public: s.read_public,
            read_secret: None,
            previous: None,
        }
    }

    /// The role these keys are of.
    pub fn role(&self) -> Role {
        self.role
    }

    fn denied(&self, action: &str) -> Error {
        let needed = if action.contains("chunk") { "backup or admin" } else { "restore or admin" };
        Error::RoleDenied { role: self.role.name().into(), action: action.into(), needed: needed.into() }
    }

    /// The blob ID of `plaintext`: keyed BLAKE3.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.id, plaintext).as_bytes())
    }

    /// The chunker's gear table (a restore key has none: it never chunks).
    pub fn gear(&self) -> Result<&[u64; 256]> {
        self.gear.as_ref().ok_or_else(|| self.denied("chunk data for a backup"))
    }

    /// `K_enc`, which a backup key does not have.
    pub fn full(&self) -> Result<&SymKey> {
        self.enc.as_ref().ok_or_else(|| self.denied("read stored data"))
    }

    /// `K_meta`.
    pub fn meta(&self) -> &SymKey {
        &self.meta
    }

    /// `P_read`.
    pub fn read_public(&self) -> &[u8; 32] {
        &self.read_public
    }

    /// A fresh key for an object sealed to the read key: `(E, K)` (format-spec/24 §24.4).
    pub fn new_sealed_key(&self) -> Result<([u8; 32], SymKey)> {
        Ok(self.sealed_key_with(random_array()?))
    }

    /// [`Keys::new_sealed_key`] with the ephemeral secret `e` chosen by the caller (test vectors
    /// only; an ephemeral secret is never reused).
    pub fn sealed_key_with(&self, mut e: [u8; 32]) -> ([u8; 32], SymKey) {
        let ephemeral = x25519_public(&e);
        let shared = x25519_dalek::x25519(e, self.read_public);
        e.zeroize();
        (ephemeral, sealed_object_key(shared, &ephemeral, &self.read_public))
    }

    /// The key of an object sealed to the read key with ephemeral public key `ephemeral`; only
    /// admin and restore keys have the read key's secret. `what` names the object in errors.
    pub fn sealed_key(&self, ephemeral: &[u8; 32], what: &str) -> Result<SymKey> {
        let secret = self.read_secret.ok_or_else(|| self.denied("read stored data"))?;
        let shared = x25519_dalek::x25519(secret, *ephemeral);
        if shared == [0; 32] {
            return Err(Error::integrity(what, "its ephemeral key is a low-order point"));
        }
        Ok(sealed_object_key(shared, ephemeral, &self.read_public))
    }

    /// Seal `plaintext` under `K_enc` with a fresh random nonce: `nonce || ciphertext || tag`.
    pub fn seal(&self, plaintext: &[u8], ad: &[u8]) -> Result<Vec<u8>> {
        self.full()?.seal(plaintext, ad)
    }

    /// [`SymKey::seal_in_place`] under `K_enc`.
    pub fn seal_in_place(&self, buf: &mut Vec<u8>, ad: &[u8]) -> Result<()> {
        self.full()?.seal_in_place(buf, ad)
    }

    /// [`SymKey::open_in_place`] under `K_enc`.
    pub fn open_in_place(&self, sealed: Vec<u8>, ad: &[u8], what: &str) -> Result<Vec<u8>> {
        self.full()?.open_in_place(sealed, ad, what)
    }

    /// Seal under `K_enc` with a caller-chosen nonce (test vectors only; never reuse a nonce).
    pub fn seal_with_nonce(&self, nonce: &[u8; NONCE_LEN], plaintext: &[u8], ad: &[u8]) -> Vec<u8> {
        self.full().expect("test vectors use admin keys").seal_with_nonce(nonce, plaintext, ad)
    }

    /// Open a sealed box under `K_enc`; any mismatch is an integrity error about `what`.
    pub fn open(&self, sealed: &[u8], ad: &[u8], what: &str) -> Result<Vec<u8>> {
        self.full()?.open(sealed, ad, what)
    }
}

/// `K = BLAKE3-derive(ctx, shared || E || P_read)` (format-spec/24 §24.4).
fn sealed_object_key(mut shared: [u8; 32], ephemeral: &[u8; 32], read_public: &[u8; 32]) -> SymKey {
    let mut h = blake3::Hasher::new_derive_key(CTX_SEALED_OBJECT);
    h.update(&shared).update(ephemeral).update(read_public);
    shared.zeroize();
    SymKey(*h.finalize().as_bytes())
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
