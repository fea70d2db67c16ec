//! Fuzz targets: one function per decoder, each taking arbitrary bytes.
//!
//! Every function here must return normally on any input: decoders report malformed input as
//! errors, never by panicking, looping or allocating without bound. When a decoder accepts its
//! input, the target re-encodes the decoded value and asserts that this reproduces the input byte
//! for byte: every structure has exactly one encoding (format-spec/01-conventions.md), so a
//! decoder that accepts a second spelling of a value is a bug. Those assertions are the point of
//! the targets; a failing one (a panic) is a finding.
//!
//! The functions are driven by the cargo-fuzz project in `fuzz/` (one binary per function, e.g.
//! `cargo fuzz run tree`) and, on every `cargo test`, by `tests/it/fuzz.rs` over the test
//! vectors, mutations of them and pseudo-random inputs.
//!
//! Targets that need keys use [`TEST_MASTER_KEY`] and [`TEST_REPO_ID`], the same values the test
//! vectors in `format-spec/vectors/` are sealed with, so the vectors make a corpus that reaches
//! past authentication.

use crate::chunker::Chunker;
use crate::crypto::{Keys, MasterKey, SymKey};
use crate::error::{Error, Result};
use crate::format::blob::{self, BlobType, MIN_STORED_LEN};
use crate::format::config::{ChunkerParams, Config};
use crate::format::header::{self, FileKind, Sealing, HEADER_LEN};
use crate::format::index as findex;
use crate::format::journal;
use crate::format::key::KeyFile;
use crate::format::lock::Lock;
use crate::format::pack::{self, TOC_ENTRY_LEN, TRAILER_LEN};
use crate::format::parity as fparity;
use crate::format::snapshot::Snapshot;
use crate::format::tree::Tree;
use crate::format::{compression, NONCE_LEN, SEAL_OVERHEAD};
use std::io::{self, Read};
use std::sync::OnceLock;

/// The master key of the targets that decrypt, and of the test vectors.
pub const TEST_MASTER_KEY: [u8; 32] = [7; 32];
/// The repository ID of the targets that decrypt, and of the test vectors.
pub const TEST_REPO_ID: [u8; 32] = [9; 32];
/// The decompression limit of the [`compression`] target.
pub const COMPRESSION_LIMIT: usize = 64 * 1024;
/// The plaintext limit for blobs opened by the [`sealed_file`] target.
pub const BLOB_LIMIT: usize = 1 << 20;
/// Chunker parameters of the [`chunker`] target: small, so short inputs hold many chunks.
pub const CHUNKER_PARAMS: ChunkerParams =
    ChunkerParams { min_size: 64, avg_size: 256, max_size: 1024, normalization: 1 };

/// The subkeys of [`TEST_MASTER_KEY`], derived once.
pub fn test_keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys::derive(&MasterKey::from_bytes(TEST_MASTER_KEY)))
}

const WHAT: &str = "fuzz input";

/// Every sealing (format-spec/24 §24.2): the targets accept what a repository with roles may hold.
const ALL_SEALINGS: &[Sealing] = &[Sealing::Full, Sealing::Reader, Sealing::Meta];

/// `KeyFile::decode` (format-spec/07-key-file.md). Runs no KDF.
pub fn key_file(data: &[u8]) {
    if let Ok(kf) = KeyFile::decode(data) {
        assert_eq!(kf.encode(), data, "key file: accepted a non-canonical encoding");
        assert!(kf.kdf.validate().is_ok(), "key file: accepted out-of-bounds KDF parameters");
    }
}

/// `Config::decode` (format-spec/06-config.md); an accepted config must also build a chunker.
pub fn config(data: &[u8]) {
    if let Ok(c) = Config::decode(data) {
        assert_eq!(c.encode(), data, "config: accepted a non-canonical encoding");
        assert!(c.validate().is_ok());
        // Accepted parameters must be usable: building the chunker and cutting a short input must
        // not panic (mask table indices, min < avg < max).
        let ch = Chunker::new(&c.chunker, test_keys().gear().expect("an admin key"));
        let lens = ch.lengths(&data[..data.len().min(4096)]);
        assert!(lens.iter().all(|&n| n > 0 && n <= c.chunker.max_size as usize));
    }
}

/// `pack::decode_toc` (format-spec/09-pack.md). The blob area is taken as the sum of the stored
/// lengths the input would hold (read without validation), so well-formed input reaches the success
/// path; a second call uses an arbitrary blob area from the input's last eight bytes.
pub fn pack_toc(data: &[u8]) {
    let area = lenient_toc_area(data);
    if let Ok(entries) = pack::decode_toc(data, area, WHAT) {
        assert_eq!(pack::encode_toc(&entries), data, "TOC: accepted a non-canonical encoding");
        assert!(entries.iter().all(|e| e.stored_len >= MIN_STORED_LEN));
        assert_eq!(entries.iter().map(|e| e.stored_len as u64).sum::<u64>(), area);
        assert!(pack::decode_toc(data, area + 1, WHAT).is_err(), "TOC: accepted a blob area it does not cover");
    }
    if let Ok(entries) = pack::decode_toc(data, tail_u64(data), WHAT) {
        assert_eq!(pack::encode_toc(&entries), data, "TOC: accepted a non-canonical encoding");
    }
}

/// Sum of the stored-length fields of a TOC plaintext, read leniently.
fn lenient_toc_area(data: &[u8]) -> u64 {
    data.get(4..)
        .unwrap_or_default()
        .chunks_exact(TOC_ENTRY_LEN)
        .map(|e| u32::from_le_bytes(e[33..37].try_into().unwrap()) as u64)
        .sum()
}

/// The last eight bytes as a little-endian integer (zero-padded).
fn tail_u64(data: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let tail = &data[data.len().saturating_sub(8)..];
    b[..tail.len()].copy_from_slice(tail);
    u64::from_le_bytes(b)
}

/// `pack::locate_toc` (format-spec/09-pack.md), with the input taken as a whole pack, and again
/// with a claimed pack length from the first eight bytes and a trailer from the next four.
pub fn pack_trailer(data: &[u8]) {
    if let Some(trailer) = data.len().checked_sub(TRAILER_LEN).map(|at| &data[at..]) {
        if let Ok((off, len)) = pack::locate_toc(data.len() as u64, trailer.try_into().unwrap(), WHAT) {
            check_toc_location(data.len() as u64, off, len);
            // The located range must lie inside the pack.
            let _ = &data[off as usize..off as usize + len as usize];
        }
    }
    if data.len() >= 12 {
        let pack_len = u64::from_le_bytes(data[..8].try_into().unwrap());
        if let Ok((off, len)) = pack::locate_toc(pack_len, data[8..12].try_into().unwrap(), WHAT) {
            check_toc_location(pack_len, off, len);
        }
    }
}

fn check_toc_location(pack_len: u64, off: u64, len: u32) {
    assert!(pack_len <= pack::MAX_PACK_LEN);
    assert!(off >= HEADER_LEN as u64, "TOC located inside the header");
    assert!(len as usize >= SEAL_OVERHEAD + 4, "TOC shorter than a sealed empty TOC");
    assert_eq!(off + len as u64 + TRAILER_LEN as u64, pack_len, "TOC does not end at the trailer");
}

/// `index::decode_layout` (format-spec/10-index.md, 24.6), in both record layouts.
pub fn index(data: &[u8]) {
    for layout in [findex::Layout::Plain, findex::Layout::WithEphemeral] {
        index_layout(data, layout);
    }
}

fn index_layout(data: &[u8], layout: findex::Layout) {
    if let Ok(packs) = findex::decode_layout(data, layout, WHAT) {
        assert_eq!(findex::encode_layout(&packs, layout), data, "index: accepted a non-canonical encoding");
        for p in &packs {
            if layout == findex::Layout::Plain {
                assert!(p.ephemeral.is_none());
            }
            let first = pack::first_blob_at(p.ephemeral.as_ref()) as usize;
            for b in &p.blobs {
                assert!(b.offset as usize >= first && b.stored_len >= MIN_STORED_LEN);
                assert!(b.offset as u64 + b.stored_len as u64 <= p.size as u64, "index: blob outside its pack");
            }
        }
    }
}

/// `Snapshot::decode` (format-spec/11-snapshot.md).
pub fn snapshot(data: &[u8]) {
    if let Ok(s) = Snapshot::decode(data, WHAT) {
        assert_eq!(s.encode(), data, "snapshot: accepted a non-canonical encoding");
        assert!(s.tags.windows(2).all(|w| w[0] < w[1]));
    }
}

/// `Tree::decode` (format-spec/12-tree.md).
pub fn tree(data: &[u8]) {
    if let Ok(t) = Tree::decode(data, WHAT) {
        assert_eq!(t.encode(), data, "tree: accepted a non-canonical encoding");
        assert!(t.nodes.windows(2).all(|w| w[0].name < w[1].name));
    }
}

/// `Lock::decode` (format-spec/13-lock.md).
pub fn lock(data: &[u8]) {
    if let Ok(l) = Lock::decode(data) {
        assert_eq!(l.encode(), data, "lock: accepted a non-canonical encoding");
    }
}

/// `journal::decode` (format-spec/21-journal.md); an accepted body must re-encode to itself,
/// padded or (as written before §21.7) unpadded. The input is also tried padded with zeros to
/// its size class, so that every input that decodes as records reaches the padding rules.
pub fn journal(data: &[u8]) {
    journal_body(data);
    if let Some(n) = journal::padded_len(data.len()).filter(|&n| n > data.len()) {
        let mut padded = data.to_vec();
        padded.resize(n, 0);
        journal_body(&padded);
    }
}

fn journal_body(data: &[u8]) {
    if let Ok(records) = journal::decode(data, WHAT) {
        let canonical = journal::encode(&records) == data || journal::encode_unpadded(&records) == data;
        assert!(canonical, "journal: accepted a non-canonical encoding or padding");
        for mut r in records {
            let before = r.clone();
            r.clamp();
            assert_eq!(r, before, "journal: accepted a record that clamp() changes");
        }
    }
}

/// `Parity::decode` and `parity::repair` (format-spec/22-parity.md), and `decode_policy`. An
/// accepted parity file must re-encode its fixed part to itself; rebuilding its protected file
/// from any bytes (the input itself, nothing, the input cut short) must fail cleanly or yield
/// bytes that hash to the protected ID; an accepted policy body must re-encode to itself.
pub fn parity(data: &[u8]) {
    // A fuzzer cannot forge the closing BLAKE3 hash: seal the input's table itself, so that
    // hostile geometries, tables and shards reach `repair`.
    let sealed = seal_parity_table(data);
    for input in [data, sealed.as_deref().unwrap_or(data)] {
        let strict = fparity::Parity::decode(input, WHAT);
        let Ok(p) = fparity::Parity::decode_for_repair(input, WHAT) else {
            assert!(strict.is_err(), "parity: decode accepts what decode_for_repair rejects");
            continue;
        };
        assert_eq!(strict.is_ok(), p.table_ok, "parity: decode and table_ok disagree");
        assert_eq!(p.fixed.encode()[..], input[..fparity::FIXED_LEN], "parity: fixed part does not re-encode");
        assert_eq!(input.len() as u64, p.fixed.geometry.file_len());
        for damaged in [input, &[][..], &input[..input.len() / 2]] {
            if let (Ok(bytes), _) = fparity::repair(&p, damaged) {
                assert_eq!(crate::id::Id::of_file_bytes(&bytes), p.fixed.id, "parity: rebuilt the wrong bytes");
            }
        }
    }
    if let Ok(bp) = fparity::decode_policy(data, WHAT) {
        assert_eq!(fparity::encode_policy(bp), data, "parity policy: accepted a non-canonical body");
    }
}

/// `data` with its last 32 bytes replaced by the hash of its fixed part and checksum table, if
/// its fixed part decodes and its length is what that geometry gives (small geometries only).
fn seal_parity_table(data: &[u8]) -> Option<Vec<u8>> {
    let fixed = fparity::Fixed::decode(data, WHAT).ok()?;
    let g = fixed.geometry;
    if data.len() as u64 != g.file_len() || g.file_len() > 1 << 20 {
        return None;
    }
    let mut v = data.to_vec();
    let end = v.len() - fparity::TABLE_HASH_LEN;
    let hash = fparity::table_hash(&v[..fparity::FIXED_LEN], &v[g.table_offset() as usize..end]);
    v[end..].copy_from_slice(&hash);
    Some(v)
}

/// `compression::decode` (format-spec/15-compression.md) with the limit [`COMPRESSION_LIMIT`],
/// and `compression::decode_owned`, which must agree with it. Compressed framing is not
/// canonical, so instead of re-encoding the input this checks the limit, that method 0 is the
/// identity, and that [`compression::encode`] of the output decodes back to it.
pub fn compression(data: &[u8]) {
    let decoded = compression::decode(data, COMPRESSION_LIMIT, WHAT);
    let owned = compression::decode_owned(data.to_vec(), COMPRESSION_LIMIT, WHAT);
    assert_eq!(decoded.as_ref().ok(), owned.as_ref().ok(), "compression: decode and decode_owned disagree");
    if let Ok(body) = decoded {
        assert!(body.len() <= COMPRESSION_LIMIT, "compression: output beyond the limit");
        if data[0] == compression::METHOD_NONE {
            assert_eq!(body, data[1..]);
        }
        let again = compression::encode(&body, 1);
        assert_eq!(compression::decode(&again, COMPRESSION_LIMIT, WHAT).ok().as_deref(), Some(&body[..]));
    }
}

/// `header::check` and `header::split_sealed` (format-spec/05-file-header.md) for every kind.
pub fn file_header(data: &[u8]) {
    let mut accepted = 0;
    for k in 1..=7u8 {
        let kind = FileKind::from_u8(k).expect("kinds 1 to 7 exist");
        assert_eq!(kind as u8, k);
        if header::check(data, kind, WHAT).is_ok() {
            accepted += 1;
            assert_eq!(data[..HEADER_LEN], header::encode(kind), "header: accepted a header that is not canonical");
        }
        if let Ok(parts) = header::split_sealed(data, kind, WHAT) {
            assert_eq!(parts.header, header::encode(kind));
            assert_eq!(parts.sealed.len() + HEADER_LEN, data.len());
            assert!(parts.sealed.len() >= SEAL_OVERHEAD);
        }
        if let Ok(parts) = header::split_sealing(data, kind, ALL_SEALINGS, WHAT) {
            assert_eq!(parts.header, header::encode_sealed(kind, parts.sealing));
            let e = if parts.sealing == Sealing::Reader { 32 } else { 0 };
            assert_eq!(parts.ephemeral.is_some(), e == 32);
            assert_eq!(parts.sealed.len() + HEADER_LEN + e, data.len());
            assert!(parts.sealed.len() >= SEAL_OVERHEAD);
        }
    }
    assert!(accepted <= 1, "header: accepted as more than one kind");
    if let Some(&b) = data.first() {
        if let Some(kind) = FileKind::from_u8(b) {
            assert_eq!(kind as u8, b);
        }
    }
}

/// A whole repository file, decrypted with [`TEST_MASTER_KEY`] and [`TEST_REPO_ID`]: the kind is
/// taken from the input's header byte 4. Encrypted files are split, opened, decompressed and their
/// body decoded; a pack is read through its trailer and sealed TOC and every blob is opened and
/// checked against its ID; a key file is decoded (its KDF is not run). Random input fails to
/// authenticate and must be rejected with an error; input that opens must re-encode to itself.
pub fn sealed_file(data: &[u8]) {
    let kind = data.get(4).and_then(|&b| FileKind::from_u8(b)).unwrap_or(FileKind::Config);
    match kind {
        FileKind::Key => key_file(data),
        FileKind::Pack => {
            let _ = open_pack(test_keys(), &TEST_REPO_ID, data);
        }
        FileKind::Parity => parity(data),
        _ => {
            let _ = open_file(test_keys(), &TEST_REPO_ID, kind, data);
        }
    }
}

fn body_limit(kind: FileKind) -> usize {
    match kind {
        FileKind::Config => crate::format::config::MAX_CONFIG_LEN,
        FileKind::Lock => crate::format::lock::MAX_LOCK_LEN,
        FileKind::Journal => crate::format::journal::MAX_JOURNAL_LEN,
        _ => BLOB_LIMIT,
    }
}

fn open_file(keys: &Keys, repo_id: &[u8; 32], kind: FileKind, data: &[u8]) -> Result<()> {
    let parts = header::split_sealing(data, kind, ALL_SEALINGS, WHAT)?;
    let ad = header::file_ad(parts.header, repo_id);
    let key = match (parts.sealing, parts.ephemeral) {
        (Sealing::Meta, _) => keys.meta().clone(),
        (Sealing::Reader, Some(e)) => keys.sealed_key(&e, WHAT)?,
        _ => keys.full()?.clone(),
    };
    let framed = open_both(&key, parts.sealed, &ad)?;
    // Canonical: the same nonce and plaintext seal to the same file.
    let nonce: [u8; NONCE_LEN] = parts.sealed[..NONCE_LEN].try_into().unwrap();
    let mut again = header::encode_sealed(kind, parts.sealing).to_vec();
    again.extend_from_slice(parts.ephemeral.as_ref().map_or(&[][..], |e| &e[..]));
    again.extend_from_slice(&key.seal_with_nonce(&nonce, &framed, &ad));
    assert_eq!(again, data, "sealed file: does not re-seal to itself");
    let body = compression::decode(&framed, body_limit(kind), WHAT)?;
    match kind {
        FileKind::Config => config(&body),
        FileKind::Index if parts.sealing == Sealing::Meta => index_layout(&body, findex::Layout::WithEphemeral),
        FileKind::Index => index_layout(&body, findex::Layout::Plain),
        FileKind::Snapshot => snapshot(&body),
        FileKind::Lock => lock(&body),
        FileKind::Journal => journal(&body),
        FileKind::ParityPolicy => parity(&body),
        FileKind::Key | FileKind::Pack | FileKind::Parity => unreachable!("handled by the caller"),
    }
    Ok(())
}

/// `SymKey::open` and `SymKey::open_in_place`, which must agree.
fn open_both(keys: &SymKey, sealed: &[u8], ad: &[u8]) -> Result<Vec<u8>> {
    let opened = keys.open(sealed, ad, WHAT);
    let in_place = keys.open_in_place(sealed.to_vec(), ad, WHAT);
    assert_eq!(opened.as_ref().ok(), in_place.as_ref().ok(), "open and open_in_place disagree");
    opened
}

fn open_pack(keys: &Keys, repo_id: &[u8; 32], data: &[u8]) -> Result<()> {
    let (_, ephemeral) = pack::check_header_sealing(data, true, WHAT)?;
    let key = match &ephemeral {
        Some(e) => keys.sealed_key(e, WHAT)?,
        None => keys.full()?.clone(),
    };
    let first = pack::first_blob_at(ephemeral.as_ref()) as usize;
    let trailer = data[data.len() - TRAILER_LEN..].try_into().unwrap();
    let (off, len) = pack::locate_toc_after(data.len() as u64, trailer, first as u64, WHAT)?;
    let (off, len) = (off as usize, len as usize);
    let sealed_toc = &data[off..off + len];
    let ad = pack::toc_ad_for(ephemeral.as_ref(), repo_id);
    let toc = open_both(&key, sealed_toc, &ad)?;
    let entries = pack::decode_toc(&toc, (off - first) as u64, WHAT)?;
    let mut pos = first;
    for e in &entries {
        let envelope = &data[pos..pos + e.stored_len as usize];
        pos += e.stored_len as usize;
        let framed = open_both(&key, envelope, &blob::blob_ad(e.blob_type, &e.id, repo_id))?;
        let plain = compression::decode(&framed, BLOB_LIMIT, WHAT)?;
        if keys.blob_id(&plain) != e.id || plain.len() != e.plain_len as usize {
            return Err(Error::integrity(WHAT, "blob does not match its TOC entry"));
        }
        if e.blob_type == BlobType::Tree {
            tree(&plain);
        }
    }
    assert_eq!(pos, off, "pack: TOC does not cover the blob area");
    // Canonical: the TOC re-encodes and re-seals to the same bytes.
    let nonce: [u8; NONCE_LEN] = sealed_toc[..NONCE_LEN].try_into().unwrap();
    let resealed = key.seal_with_nonce(&nonce, &pack::encode_toc(&entries), &ad);
    assert_eq!(resealed, sealed_toc, "pack: TOC does not re-seal to itself");
    Ok(())
}

/// The cache key of the [`backup_parent_cache`] target.
pub const TEST_CACHE_KEY: [u8; 32] = [5; 32];

/// The name the [`backup_parent_cache`] target's input is opened as (the AD binds it).
pub const TEST_CACHE_NAME: &str = "backup-parents/test";

/// A backup key's local parent cache (`archiver::parents::open`, format-spec/24 §24.8), sealed
/// with [`TEST_CACHE_KEY`] as [`TEST_CACHE_NAME`], and its plaintext as the input itself (sealed
/// here, so that arbitrary plaintexts reach the decoder): never a panic; every tree accepted hashes
/// to its ID and the root is among them.
pub fn backup_parent_cache(data: &[u8]) {
    let key = SymKey::from_bytes(TEST_CACHE_KEY);
    let path = std::path::Path::new(TEST_CACHE_NAME);
    let blob_id = |t: &[u8]| test_keys().blob_id(t);
    let _ = crate::archiver::parents::open(&key, path, data, &blob_id);
    // The input as the plaintext: two IDs, then a framed tree list.
    let ad = crate::archiver::parents::ad_for(path);
    if let Ok(sealed) = key.seal(data, &ad) {
        if let Ok(p) = crate::archiver::parents::open(&key, path, &sealed, &blob_id) {
            assert!(p.trees.contains_key(&p.tree), "parent cache: accepted without its root tree");
            assert!(p.trees.iter().all(|(id, t)| blob_id(t) == *id), "parent cache: a tree not of its ID");
        }
    }
}

/// The keyed chunker (format-spec/14-chunking.md) with [`CHUNKER_PARAMS`]: cutting the input at
/// once and streaming it through a reader that returns short reads (and the odd interruption)
/// must give the same chunks; lengths must add up to the input, none may exceed the maximum, and
/// only the last may be shorter than the minimum.
pub fn chunker(data: &[u8]) {
    static CHUNKER: OnceLock<Chunker> = OnceLock::new();
    let ch = CHUNKER.get_or_init(|| Chunker::new(&CHUNKER_PARAMS, test_keys().gear().expect("an admin key")));
    let lens = ch.lengths(data);
    assert_eq!(lens.iter().sum::<usize>(), data.len(), "chunker: lengths do not add up");
    let (min, max) = (CHUNKER_PARAMS.min_size as usize, CHUNKER_PARAMS.max_size as usize);
    assert!(lens.iter().all(|&n| n > 0 && n <= max), "chunker: chunk beyond the maximum");
    if let Some((_, init)) = lens.split_last() {
        assert!(init.iter().all(|&n| n >= min), "chunker: short chunk before the end");
    }
    let seed = data.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let reader = ShortReads { data, pos: 0, state: seed | 1 };
    let mut pos = 0;
    let mut streamed = Vec::new();
    for chunk in ch.stream(reader) {
        let chunk = chunk.expect("the reader only fails with Interrupted");
        assert_eq!(chunk, data[pos..pos + chunk.len()], "chunker: streamed bytes differ");
        pos += chunk.len();
        streamed.push(chunk.len());
    }
    assert_eq!(streamed, lens, "chunker: streaming cuts differ from cutting at once");
}

/// A reader over `data` returning pseudo-randomly short reads and occasional `Interrupted` errors.
struct ShortReads<'a> {
    data: &'a [u8],
    pos: usize,
    state: u64,
}

impl Read for ShortReads<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // xorshift64
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        if self.state % 16 == 0 {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let want = 1 + (self.state >> 8) as usize % 300;
        let n = want.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// `serve::Request::decode` and `serve::Response::decode` (format-spec/23-serve.md), and the
/// frame reader over the same bytes: never a panic, an accepted message re-encodes to its
/// input, and a frame length beyond the limit is refused before anything is allocated for it.
pub fn serve(data: &[u8]) {
    use crate::format::serve::{read_frame, Request, Response, MAX_FRAME};
    if let Ok(r) = Request::decode(data) {
        assert_eq!(r.encode(), data, "serve request: accepted a non-canonical encoding");
    }
    if let Ok(r) = Response::decode(data) {
        assert_eq!(r.encode(), data, "serve response: accepted a non-canonical encoding");
    }
    let mut stream = data;
    while let Ok(Some(body)) = read_frame(&mut stream) {
        assert!(!body.is_empty() && body.len() <= MAX_FRAME, "serve: a frame outside the limits was read");
    }
}
