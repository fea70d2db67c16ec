//! A backup key's local cache of its last snapshot's trees (format-spec/24-roles.md §24.8).
//!
//! A backup key cannot read the repository's snapshots or trees, not even its own: they are
//! sealed to the read key. To find unchanged files without reading them it keeps, on the host it
//! backs up, the trees of the last snapshot it wrote for the same host and paths, sealed under
//! the key file's own cache key. Without the cache (first run, `--no-cache`, lost or damaged
//! file) a backup reads every file, and stores only what the index does not already hold.
//!
//! A cache file is `nonce (24) || XChaCha20-Poly1305(K_cache, plaintext, AD)` with
//! `AD = "arca backup parent cache v1" || its file name`; the plaintext is the snapshot ID (32),
//! the root tree ID (32) and the trees, framed as in format-spec/15: u32 count, then per tree its
//! ID (32), u32 length and plaintext. Every tree must hash to its ID under `K_id`, so even a
//! cache written with the key cannot claim content the trees never had.

use crate::crypto::SymKey;
use crate::error::{Error, Result};
use crate::format::tree::MAX_TREE_LEN;
use crate::format::Reader;
use crate::id::Id;
use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Largest cache body accepted or written (uncompressed): a tree set larger than this is not
/// cached (the next backup then reads every file).
pub const MAX_BODY: usize = 1 << 30;

const AD_PREFIX: &[u8] = b"arca backup parent cache v1";

/// The last snapshot a backup key wrote for one host and set of paths, with its trees.
pub struct Parent {
    /// Its snapshot ID.
    pub snapshot: Id,
    /// Its root tree.
    pub tree: Id,
    /// Every tree of the snapshot, by ID.
    pub trees: HashMap<Id, Vec<u8>>,
}

/// The cache file of `host` and `paths` (sorted) under `root`, named by a hash keyed with the
/// cache key, so names reveal neither the host nor the paths.
pub fn path_of(root: &Path, cache_key: &[u8; 32], host: &str, paths: &[Vec<u8>]) -> PathBuf {
    let mut h = blake3::Hasher::new_keyed(cache_key);
    h.update(&(host.len() as u64).to_le_bytes()).update(host.as_bytes());
    for p in paths {
        h.update(&(p.len() as u64).to_le_bytes()).update(p);
    }
    root.join("backup-parents").join(h.finalize().to_hex().as_str())
}

/// The associated data of the cache file at `path`.
pub fn ad_for(path: &Path) -> Vec<u8> {
    ad(path)
}

fn ad(path: &Path) -> Vec<u8> {
    let mut ad = AD_PREFIX.to_vec();
    ad.extend_from_slice(path.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
    ad
}

/// The trees of a cache file, encoded and compressed (the costly part, done while the snapshot
/// is being written).
pub fn pack_trees(trees: &HashMap<Id, Vec<u8>>) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    body.extend_from_slice(&(trees.len() as u32).to_le_bytes());
    for (id, t) in trees {
        body.extend_from_slice(&id.0);
        body.extend_from_slice(&(t.len() as u32).to_le_bytes());
        body.extend_from_slice(t);
    }
    if body.len() > MAX_BODY {
        return Err(Error::InvalidArgument(format!("{} bytes of trees is more than the cache keeps", body.len())));
    }
    Ok(crate::format::compression::encode(&body, 1))
}

/// Seal a cache file: the snapshot ID, its root tree and the trees packed by [`pack_trees`].
pub fn seal(key: &SymKey, path: &Path, snapshot: Id, tree: Id, packed: &[u8]) -> Result<Vec<u8>> {
    let plain = [&snapshot.0[..], &tree.0[..], packed].concat();
    key.seal(&plain, &ad(path))
}

/// Open a cache file's bytes: `blob_id` is the repository's blob-ID function; every tree must
/// hash to its ID and the root tree must be among them.
pub fn open(key: &SymKey, path: &Path, bytes: &[u8], blob_id: &dyn Fn(&[u8]) -> Id) -> Result<Parent> {
    let what = "backup parent cache";
    let plain = key.open(bytes, &ad(path), what)?;
    let mut head = Reader::new(&plain, what);
    let snapshot = Id(head.array()?);
    let tree = Id(head.array()?);
    let body = crate::format::compression::decode(&plain[64..], MAX_BODY, what)?;
    let mut r = Reader::new(&body, what);
    let count = r.u32()? as usize;
    let mut trees = HashMap::with_capacity(count.min(body.len() / 36));
    for _ in 0..count {
        let id = Id(r.array()?);
        let len = r.u32()? as usize;
        if len > MAX_TREE_LEN {
            return Err(Error::integrity(what, format!("a tree of {len} bytes")));
        }
        let plain = r.take(len)?.to_vec();
        if blob_id(&plain) != id {
            return Err(Error::integrity(what, format!("tree {id} does not hash to its ID")));
        }
        trees.insert(id, plain);
    }
    r.finish()?;
    if !trees.contains_key(&tree) {
        return Err(Error::integrity(what, "the root tree is missing"));
    }
    Ok(Parent { snapshot, tree, trees })
}

/// Read the cache file at `path`, `None` if there is none. Only a regular file, not through a
/// symlink, opened without blocking (a planted FIFO), and no longer than a cache can be, is read.
pub fn read(path: &Path) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    let io = |e| Error::Io { path: path.into(), source: e };
    let opened = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path);
    let f = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let m = f.metadata().map_err(io)?;
    let max = MAX_BODY as u64 + 4096;
    if !m.is_file() || m.len() > max {
        return Err(Error::integrity("backup parent cache", "not a regular file of a cache's size"));
    }
    let mut out = Vec::with_capacity(m.len() as usize);
    f.take(max).read_to_end(&mut out).map_err(io)?;
    Ok(Some(out))
}

/// Write `bytes` to `path` atomically and durably ([`crate::sys::write_atomically`]), creating
/// the directory private to the user.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().expect("a cache file lives in a directory");
    let io = |p: &Path, e| Error::Io { path: p.into(), source: e };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| io(dir, e))?;
    crate::sys::write_atomically(path, bytes, 0o600, true).map_err(|e| io(path, e))
}
