//! Generates the test vectors in `format-spec/vectors/`.
//!
//! ```text
//! cargo run --example gen_vectors
//! ```
//!
//! rewrites every `format-spec/vectors/*.json` file (and deletes stale ones); with
//! `-- --corpus DIR` it instead writes every vector's bytes (and the plaintexts the vectors state)
//! as seed files into `DIR/<target>/` for each cargo-fuzz target (see `fuzz/README.md`). Generation is
//! deterministic: the master key and repository ID are fixed (`arca::fuzz_targets::TEST_MASTER_KEY`
//! = 32 × 0x07, `TEST_REPO_ID` = 32 × 0x09), salts are fixed, every nonce is the first 24 bytes of
//! BLAKE3("arca test vector nonce " + a label unique to the sealed box), Argon2id runs at the
//! smallest accepted cost (8192 KiB, t = 1, p = 1), and compressed bodies are hand-built zstd frames
//! (raw and RLE blocks) except for the vectors named "…real zstd compressor…", which use the zstd
//! library pinned by Cargo.lock. Running it twice gives byte-identical files; `tests/it/vectors.rs`
//! checks that the committed files are exactly what [`generate`] returns and that every vector
//! decodes (or fails) as it says.
//!
//! Each file is a JSON array of vectors for one object kind:
//!
//! ```json
//! {"name": "...", "kind": "config", "expect": "ok" | "error",
//!  "error_class": "integrity" | "unsupported" | "not_a_repository" | "wrong_password",
//!  "inputs": {...}, "decoded": {...}, "hex": "..."}
//! ```
//!
//! `error_class` is present only on error vectors and `decoded` only on ok vectors. The reading
//! procedure each `kind` implies is described in `format-spec/vectors/README.md`.

use arca::chunker::Chunker;
use arca::crypto::{self, kdf, Keys, MasterKey};
use arca::format::blob::{self, BlobType};
use arca::format::config::{ChunkerParams, Config, PreviousMaster, FEATURE_ROTATION};
use arca::format::header::{self, FileKind, HEADER_LEN};
use arca::format::index::{self as findex, IndexBlob, IndexPack};
use arca::format::journal::{self, Op, Outcome, Record};
use arca::format::key::{KdfParams, KeyFile, MAX_MEMORY_KIB, MIN_MEMORY_KIB};
use arca::format::lock::Lock;
use arca::format::pack::{self, TocEntry};
use arca::format::parity::{self as fparity, Geometry};
use arca::format::snapshot::{Snapshot, Summary};
use arca::format::tree::{ChunkRef, Node, NodeKind, Tree, Xattr};
use arca::format::{compression, NONCE_LEN};
use arca::fuzz_targets::{TEST_MASTER_KEY, TEST_REPO_ID};
use arca::id::{hex, Id};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The master key every vector is sealed with.
pub const MASTER: [u8; 32] = TEST_MASTER_KEY;
/// The repository ID every vector belongs to.
pub const REPO: [u8; 32] = TEST_REPO_ID;
/// Another repository ID, for "wrong associated data" vectors.
pub const OTHER_REPO: [u8; 32] = [10; 32];
/// Another master key, for "wrong key" vectors.
pub const OTHER_MASTER: [u8; 32] = [8; 32];
/// The password of the key-file vectors.
pub const PASSWORD: &str = "correct horse battery staple";
/// The Argon2 salt of the key-file vectors.
pub const SALT: [u8; 32] = [0x5a; 32];
/// Cheapest accepted Argon2id parameters, so the vectors test fast.
pub const KDF: KdfParams = KdfParams { memory_kib: MIN_MEMORY_KIB, time_cost: 1, lanes: 1 };
/// A fixed time, Unix seconds.
pub const TIME_S: i64 = 1_795_000_000;
/// The same time, Unix nanoseconds.
pub const TIME_NS: i64 = TIME_S * 1_000_000_000;
/// Decompression limit of data blobs in the blob and pack vectors (the chunker maximum).
pub const DATA_LIMIT: usize = 4096;
/// Length of the chunker input.
pub const CHUNKER_INPUT_LEN: usize = 64 * 1024;

/// Where the vector files live.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("format-spec").join("vectors")
}

/// The cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`, `arca::fuzz_targets`).
pub const FUZZ_TARGETS: [&str; 16] = [
    "key_file",
    "config",
    "pack_toc",
    "pack_trailer",
    "index",
    "snapshot",
    "tree",
    "lock",
    "journal",
    "compression",
    "file_header",
    "sealed_file",
    "chunker",
    "parity",
    "serve",
    "backup_parent_cache",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, dir] = &args[..] {
        if flag == "--corpus" {
            return write_corpus(Path::new(dir));
        }
    }
    if !args.is_empty() {
        eprintln!("usage: gen_vectors [--corpus DIR]");
        std::process::exit(2);
    }
    let dir = vectors_dir();
    std::fs::create_dir_all(&dir).expect("create format-spec/vectors");
    let files = generate();
    for entry in std::fs::read_dir(&dir).expect("list format-spec/vectors") {
        let path = entry.expect("list format-spec/vectors").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".json") && !files.iter().any(|(n, _)| *n == name) {
            std::fs::remove_file(&path).expect("remove a stale vector file");
            println!("removed {name}");
        }
    }
    let mut total = 0;
    for (name, contents) in &files {
        std::fs::write(dir.join(name), contents).expect("write a vector file");
        total += contents.len();
        println!("wrote {name} ({} bytes)", contents.len());
    }
    println!("{} files, {total} bytes", files.len());
}

/// Write fuzzing seeds: every vector's bytes, and its stated plaintext with and without the
/// method byte, into `dir/<target>/<BLAKE3 prefix>` for every target.
fn write_corpus(dir: &Path) {
    let mut seeds = std::collections::BTreeSet::new();
    for v in [
        subkeys_vectors(),
        key_vectors(),
        config_vectors(),
        index_vectors(),
        snapshot_vectors(),
        lock_vectors(),
        journal_vectors(),
        pack_vectors(),
        blob_vectors(),
        tree_vectors(),
        compression_vectors(),
        chunker_vectors(),
        parity_vectors(),
        parity_policy_vectors(),
        roles_vectors(),
    ]
    .into_iter()
    .flatten()
    {
        if let Some(p) = v.inputs.get("plaintext").and_then(Value::as_str).and_then(arca::id::unhex) {
            seeds.insert(p[1.min(p.len())..].to_vec());
            seeds.insert(p);
        }
        seeds.insert(v.bytes);
    }
    for target in FUZZ_TARGETS {
        let d = dir.join(target);
        std::fs::create_dir_all(&d).expect("create a corpus directory");
        for s in &seeds {
            std::fs::write(d.join(&blake3::hash(s).to_hex()[..16]), s).expect("write a seed");
        }
    }
    println!("wrote {} seeds for each of {} targets into {}", seeds.len(), FUZZ_TARGETS.len(), dir.display());
}

/// Every vector file: (file name, contents).
pub fn generate() -> Vec<(String, String)> {
    vec![
        file("subkeys.json", subkeys_vectors()),
        file("key.json", key_vectors()),
        file("config.json", config_vectors()),
        file("index.json", index_vectors()),
        file("snapshot.json", snapshot_vectors()),
        file("lock.json", lock_vectors()),
        file("journal.json", journal_vectors()),
        file("pack.json", pack_vectors()),
        file("blob.json", blob_vectors()),
        file("tree.json", tree_vectors()),
        file("compression.json", compression_vectors()),
        file("chunker.json", chunker_vectors()),
        file("parity.json", parity_vectors()),
        file("parity_policy.json", parity_policy_vectors()),
        file("rs_tables.json", rs_tables_vectors()),
        file("repair_run.json", repair_run_vectors()),
        file("serve_request.json", serve_request_vectors()),
        file("serve_response.json", serve_response_vectors()),
        file("roles.json", roles_vectors()),
    ]
}

// ---- vectors and their rendering ----------------------------------------------------------------

/// One test vector.
pub struct Vector {
    name: String,
    kind: &'static str,
    bytes: Vec<u8>,
    inputs: Value,
    error_class: Option<&'static str>,
    decoded: Option<Value>,
}

fn ok(name: &str, kind: &'static str, bytes: Vec<u8>, inputs: Value, decoded: Value) -> Vector {
    Vector { name: name.to_string(), kind, bytes, inputs, error_class: None, decoded: Some(decoded) }
}

fn err(name: &str, kind: &'static str, bytes: Vec<u8>, inputs: Value, class: &'static str) -> Vector {
    Vector { name: name.to_string(), kind, bytes, inputs, error_class: Some(class), decoded: None }
}

const INTEGRITY: &str = "integrity";
const UNSUPPORTED: &str = "unsupported";
const NOT_A_REPOSITORY: &str = "not_a_repository";
const WRONG_PASSWORD: &str = "wrong_password";

/// Render vectors as a JSON array, one key per line and keys in a fixed order, `hex` last.
fn file(name: &str, vectors: Vec<Vector>) -> (String, String) {
    let mut names = std::collections::HashSet::new();
    let mut out = String::from("[\n");
    for (i, v) in vectors.iter().enumerate() {
        assert!(names.insert(v.name.clone()), "duplicate vector name {}", v.name);
        let s = |v: &Value| serde_json::to_string(v).unwrap();
        out.push_str("  {\n");
        out.push_str(&format!("    \"name\": {},\n", s(&json!(v.name))));
        out.push_str(&format!("    \"kind\": {},\n", s(&json!(v.kind))));
        match v.error_class {
            None => out.push_str("    \"expect\": \"ok\",\n"),
            Some(c) => out.push_str(&format!("    \"expect\": \"error\",\n    \"error_class\": \"{c}\",\n")),
        }
        out.push_str(&format!("    \"inputs\": {},\n", s(&v.inputs)));
        if let Some(d) = &v.decoded {
            out.push_str(&format!("    \"decoded\": {},\n", s(d)));
        }
        out.push_str(&format!("    \"hex\": \"{}\"\n", hex(&v.bytes)));
        out.push_str(if i + 1 == vectors.len() { "  }\n" } else { "  },\n" });
    }
    out.push_str("]\n");
    (name.to_string(), out)
}

// ---- helpers ------------------------------------------------------------------------------------

/// The nonce of the sealed box labelled `label`.
pub fn nonce(label: &str) -> [u8; NONCE_LEN] {
    let h = blake3::hash(format!("arca test vector nonce {label}").as_bytes());
    h.as_bytes()[..NONCE_LEN].try_into().unwrap()
}

fn keys() -> Keys {
    Keys::derive(&MasterKey::from_bytes(MASTER))
}

fn mutate(bytes: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = bytes.to_vec();
    f(&mut b);
    b
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Method 0 framing: the body verbatim.
fn raw(body: &[u8]) -> Vec<u8> {
    cat(&[&[compression::METHOD_NONE], body])
}

/// A zstd block built by hand.
enum ZBlock<'a> {
    /// Stored verbatim.
    Raw(&'a [u8]),
    /// One byte repeated.
    Rle(u8, u32),
    /// Block type 3, which the format reserves.
    Reserved,
}

/// A zstd frame (RFC 8878) from hand-built blocks: no content size, no checksum, a window of
/// `2^window_log` bytes.
fn zstd_frame(window_log: u8, blocks: &[ZBlock]) -> Vec<u8> {
    zstd_frame_with(&[0x00, (window_log - 10) << 3], blocks)
}

/// A zstd frame with the given frame header (descriptor and its optional fields) and blocks.
fn zstd_frame_with(frame_header: &[u8], blocks: &[ZBlock]) -> Vec<u8> {
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd];
    out.extend_from_slice(frame_header);
    for (i, b) in blocks.iter().enumerate() {
        let last = (i + 1 == blocks.len()) as u32;
        let (ty, size, content): (u32, u32, Vec<u8>) = match b {
            ZBlock::Raw(d) => (0, d.len() as u32, d.to_vec()),
            ZBlock::Rle(byte, n) => (1, *n, vec![*byte]),
            ZBlock::Reserved => (3, 1, vec![0]),
        };
        out.extend_from_slice(&(last | ty << 1 | size << 3).to_le_bytes()[..3]);
        out.extend_from_slice(&content);
    }
    out
}

/// Method 1 framing around a hand-built frame.
fn zstd(frame: &[u8]) -> Vec<u8> {
    cat(&[&[compression::METHOD_ZSTD], frame])
}

/// A frame of `n` × 128 KiB zero bytes in RLE blocks: tiny, and decompresses to a lot.
fn zstd_bomb(n: usize) -> Vec<u8> {
    let blocks: Vec<ZBlock> = (0..n).map(|_| ZBlock::Rle(0, 128 * 1024)).collect();
    zstd_frame(17, &blocks)
}

/// A file of `kind` sealed around `framed`, with header and AD chosen separately so that
/// mismatches can be built.
fn seal_file_with(
    keys: &Keys,
    repo: &[u8; 32],
    hdr: FileKind,
    ad_kind: FileKind,
    framed: &[u8],
    label: &str,
) -> Vec<u8> {
    let ad = header::file_ad(&header::encode(ad_kind), repo);
    cat(&[&header::encode(hdr), &keys.seal_with_nonce(&nonce(label), framed, &ad)])
}

fn seal_file(kind: FileKind, framed: &[u8], label: &str) -> Vec<u8> {
    seal_file_with(&keys(), &REPO, kind, kind, framed, label)
}

fn file_inputs(framed: &[u8]) -> Value {
    json!({"master_key": hex(&MASTER), "repo_id": hex(&REPO), "plaintext": hex(framed)})
}

fn other_kind(kind: FileKind) -> FileKind {
    FileKind::from_u8(kind as u8 % 6 + 1).unwrap()
}

/// The header rules (format-spec/05-file-header.md), applied to a valid file of `kind`. A pack's
/// header is checked before its length (section 9.3), so a pack shorter than the header is
/// `not_a_repository` like any other file.
fn header_failures(v: &mut Vec<Vector>, k: &'static str, valid: &[u8], inputs: &Value, kind: FileKind) {
    let e = |name: &str, bytes: Vec<u8>, class| err(&format!("{k}: {name}"), k, bytes, inputs.clone(), class);
    let other = other_kind(kind);
    v.extend([
        e("wrong magic", mutate(valid, |b| b[3] = b'B'), NOT_A_REPOSITORY),
        e("lowercase magic", mutate(valid, |b| b[..4].copy_from_slice(b"arca")), NOT_A_REPOSITORY),
        e("empty file", Vec::new(), NOT_A_REPOSITORY),
        e("truncated inside the header (magic and kind only)", valid[..5].to_vec(), NOT_A_REPOSITORY),
        e("truncated inside the header (7 bytes)", valid[..7].to_vec(), NOT_A_REPOSITORY),
        e(
            "wrong magic and unknown version: magic is checked first",
            mutate(valid, |b| (b[0], b[5]) = (b'X', 2)),
            NOT_A_REPOSITORY,
        ),
        e("unknown version 2", mutate(valid, |b| b[5] = 2), UNSUPPORTED),
        e("unknown version 0", mutate(valid, |b| b[5] = 0), UNSUPPORTED),
        e("unknown version 255", mutate(valid, |b| b[5] = 255), UNSUPPORTED),
        e(
            "unknown version and nonzero reserved byte: version is checked first",
            mutate(valid, |b| (b[5], b[6]) = (2, 1)),
            UNSUPPORTED,
        ),
        e(
            "unknown version and wrong kind: version is checked first",
            mutate(valid, |b| (b[4], b[5]) = (other as u8, 2)),
            UNSUPPORTED,
        ),
        e("nonzero reserved byte 6", mutate(valid, |b| b[6] = 1), INTEGRITY),
        e("nonzero reserved byte 7", mutate(valid, |b| b[7] = 0x80), INTEGRITY),
        e(&format!("wrong kind ({})", other.name()), mutate(valid, |b| b[4] = other as u8), INTEGRITY),
        e("kind 0", mutate(valid, |b| b[4] = 0), INTEGRITY),
        e("kind 10 (unassigned)", mutate(valid, |b| b[4] = 10), INTEGRITY),
    ]);
}

/// Rules every encrypted file shares (format-spec/05-file-header.md, 03-cryptography.md).
fn sealed_failures(v: &mut Vec<Vector>, k: &'static str, kind: FileKind, framed: &[u8], valid: &[u8], inputs: &Value) {
    let e = |name: &str, bytes: Vec<u8>| err(&format!("{k}: {name}"), k, bytes, inputs.clone(), INTEGRITY);
    let label = format!("{k}: valid");
    let ct = HEADER_LEN + NONCE_LEN;
    let other = if kind == FileKind::Index { FileKind::Snapshot } else { FileKind::Index };
    v.extend([
        e("truncated to the header", valid[..HEADER_LEN].to_vec()),
        e("truncated: one byte short of header, nonce and tag", valid[..HEADER_LEN + 39].to_vec()),
        e("truncated: last byte removed", valid[..valid.len() - 1].to_vec()),
        e("trailing byte after the tag", cat(&[valid, &[0]])),
        e("flipped ciphertext byte", mutate(valid, |b| b[ct] ^= 1)),
        e("flipped nonce byte", mutate(valid, |b| b[HEADER_LEN] ^= 0x80)),
        e("flipped tag byte", mutate(valid, |b| *b.last_mut().unwrap() ^= 1)),
        e(
            "wrong AD: sealed for another repository ID",
            seal_file_with(&keys(), &OTHER_REPO, kind, kind, framed, &label),
        ),
        e(
            &format!(
                "wrong AD: sealed with kind {} ({}) in the AD, header says {}",
                other as u8,
                other.name(),
                kind.name()
            ),
            seal_file_with(&keys(), &REPO, kind, other, framed, &label),
        ),
        e(
            "sealed with another master key",
            seal_file_with(&Keys::derive(&MasterKey::from_bytes(OTHER_MASTER)), &REPO, kind, kind, framed, &label),
        ),
    ]);
}

/// Compression rules as they apply inside an encrypted file; the zstd bomb only where the body
/// limit is small (`limit`).
fn framing_failures(v: &mut Vec<Vector>, k: &'static str, kind: FileKind, body: &[u8], limit: Option<usize>) {
    let mut e = |name: &str, framed: Vec<u8>| {
        let n = format!("{k}: {name}");
        v.push(err(&n, k, seal_file(kind, &framed, &n), file_inputs(&framed), INTEGRITY))
    };
    e("empty plaintext (no compression method byte)", Vec::new());
    e("unknown compression method 2", cat(&[&[2], body]));
    e("unknown compression method 255", cat(&[&[255], body]));
    if let Some(limit) = limit {
        e(&format!("zstd bomb: 1 MiB of zeros against the {limit}-byte limit"), zstd(&zstd_bomb(8)));
    }
}

// ---- JSON views of decoded structures (shared with tests/it/vectors.rs) --------------------------

/// Key-file header fields.
pub fn key_json(kf: &KeyFile) -> Value {
    json!({
        "kdf": "argon2id",
        "memory_kib": kf.kdf.memory_kib,
        "time_cost": kf.kdf.time_cost,
        "lanes": kf.kdf.lanes,
        "salt": hex(&kf.salt),
        "created": kf.created,
        "label": kf.label,
        "nonce": hex(&kf.nonce),
        "ciphertext": hex(&kf.ciphertext),
    })
}

/// A config.
pub fn config_json(c: &Config) -> Value {
    let mut v = json!({
        "version": c.version,
        "repo_id": hex(&c.repo_id),
        "required_features": c.required_features,
        "optional_features": c.optional_features,
        "chunker": chunker_params_json(&c.chunker),
        "compression_level": c.compression_level,
        "pack_target_size": c.pack_target_size,
    });
    // Only in a config of an unfinished key rotation (format-spec/25).
    if let Some(p) = &c.previous_master {
        v["previous_master"] = json!(hex(&p.0));
    }
    v
}

/// Chunker parameters.
pub fn chunker_params_json(p: &ChunkerParams) -> Value {
    json!({"min_size": p.min_size, "avg_size": p.avg_size, "max_size": p.max_size, "normalization": p.normalization})
}

/// An index body.
pub fn index_json(packs: &[IndexPack]) -> Value {
    let packs: Vec<Value> = packs
        .iter()
        .map(|p| {
            let blobs: Vec<Value> = p
                .blobs
                .iter()
                .map(|b| {
                    json!({"type": b.blob_type.name(), "id": b.id.to_hex(), "offset": b.offset,
                           "stored_len": b.stored_len, "plain_len": b.plain_len})
                })
                .collect();
            json!({"id": p.id.to_hex(), "size": p.size, "blobs": blobs})
        })
        .collect();
    json!({ "packs": packs })
}

/// A snapshot. `original` (field 12) is listed only when present, so the vectors written before
/// the field existed keep their exact text.
pub fn snapshot_json(s: &Snapshot) -> Value {
    let m = &s.summary;
    let mut v = json!({
        "time": s.time,
        "tree": s.tree.to_hex(),
        "paths": s.paths.iter().map(Vec::as_slice).map(hex).collect::<Vec<_>>(),
        "hostname": s.hostname,
        "username": s.username,
        "uid": s.uid,
        "gid": s.gid,
        "tags": s.tags,
        "parent": s.parent.map(|p| p.to_hex()),
        "program": s.program,
        "summary": {
            "files_new": m.files_new, "files_changed": m.files_changed, "files_unchanged": m.files_unchanged,
            "dirs_new": m.dirs_new, "dirs_changed": m.dirs_changed, "dirs_unchanged": m.dirs_unchanged,
            "bytes_read": m.bytes_read, "bytes_added": m.bytes_added, "bytes_stored": m.bytes_stored,
            "blobs_added": m.blobs_added, "errors": m.errors, "changed_during_read": m.changed_during_read,
            "started": m.started, "finished": m.finished,
        },
    });
    if let Some(o) = s.original {
        v["original"] = json!(o.to_hex());
    }
    v
}

/// Journal records.
pub fn journal_json(records: &[Record]) -> Value {
    let r = |r: &Record| {
        json!({
            "id": hex(&r.id), "time": r.time, "duration": r.duration,
            "op": u8::from(r.op), "outcome": u8::from(r.outcome), "exit_code": r.exit_code,
            "hostname": r.hostname, "username": r.username,
            "snapshots": r.snapshots.iter().map(|s| s.to_hex()).collect::<Vec<_>>(),
            "bytes": r.bytes, "files": r.files, "errors": r.errors,
            "labels": r.labels, "metrics": r.metrics,
        })
    };
    json!({ "records": records.iter().map(r).collect::<Vec<_>>() })
}

/// A lock.
pub fn lock_json(l: &Lock) -> Value {
    json!({"time": l.time, "exclusive": l.exclusive, "hostname": l.hostname, "username": l.username, "pid": l.pid})
}

/// A tree.
pub fn tree_json(t: &Tree) -> Value {
    let nodes: Vec<Value> = t
        .nodes
        .iter()
        .map(|n| {
            let mut o = json!({
                "name": hex(&n.name),
                "mode": n.mode, "uid": n.uid, "gid": n.gid, "user": n.user, "group": n.group,
                "mtime": n.mtime, "ctime": n.ctime, "inode": n.inode, "device": n.device, "links": n.links,
                "xattrs": n.xattrs.iter().map(|x| json!({"name": hex(&x.name), "value": hex(&x.value)})).collect::<Vec<_>>(),
            });
            let (kind, extra) = match &n.kind {
                NodeKind::File { size, content } => (
                    "file",
                    json!({"size": size, "content": content.iter().map(|c| json!({"id": c.id.to_hex(), "len": c.len})).collect::<Vec<_>>()}),
                ),
                NodeKind::Dir { subtree } => ("dir", json!({"subtree": subtree.to_hex()})),
                NodeKind::Symlink { target } => ("symlink", json!({"target": hex(target)})),
                NodeKind::Fifo => ("fifo", json!({})),
                NodeKind::CharDevice { rdev } => ("char_device", json!({"rdev": rdev})),
                NodeKind::BlockDevice { rdev } => ("block_device", json!({"rdev": rdev})),
                NodeKind::Socket => ("socket", json!({})),
            };
            o["kind"] = json!(kind);
            for (key, value) in extra.as_object().unwrap() {
                o[key] = value.clone();
            }
            o
        })
        .collect();
    json!({ "nodes": nodes })
}

/// A blob as read from a pack.
pub fn pack_blob_json(e: &TocEntry, offset: u64, plaintext: &[u8]) -> Value {
    json!({"type": e.blob_type.name(), "id": e.id.to_hex(), "offset": offset, "stored_len": e.stored_len,
           "plain_len": e.plain_len, "plaintext": hex(plaintext)})
}

/// The subkeys of a master key.
pub fn subkeys_json(master: &[u8; 32]) -> Value {
    let keys = Keys::derive(&MasterKey::from_bytes(*master));
    json!({
        "encryption_key": hex(&blake3::derive_key(crypto::CTX_ENCRYPTION, master)),
        "blob_id_key": hex(&blake3::derive_key(crypto::CTX_BLOB_ID, master)),
        "gear_first4": keys.gear().unwrap()[..4].iter().map(|g| format!("{g:#018x}")).collect::<Vec<_>>(),
        "gear_last": format!("{:#018x}", keys.gear().unwrap()[255]),
        "blob_id_hello": keys.blob_id(b"hello").to_hex(),
        "blob_id_empty": keys.blob_id(b"").to_hex(),
    })
}

/// Chunk lengths and cut points (end offsets).
pub fn chunks_json(lengths: &[usize]) -> Value {
    let cuts: Vec<usize> = lengths
        .iter()
        .scan(0, |end, &n| {
            *end += n;
            Some(*end)
        })
        .collect();
    json!({"lengths": lengths, "cut_points": cuts})
}

// ---- subkeys ------------------------------------------------------------------------------------

fn subkeys_vectors() -> Vec<Vector> {
    let k = "subkeys";
    let mut counting = [0u8; 32];
    for (i, b) in counting.iter_mut().enumerate() {
        *b = i as u8;
    }
    [("test master key (32 × 0x07)", MASTER), ("master key 00 01 02 … 1f", counting), ("all-zero master key", [0; 32])]
        .into_iter()
        .map(|(name, m)| ok(&format!("{k}: {name}"), k, m.to_vec(), json!({}), subkeys_json(&m)))
        .collect()
}

// ---- key files ----------------------------------------------------------------------------------

/// The valid key file.
pub fn valid_key_file() -> KeyFile {
    kdf::wrap_with(
        &MasterKey::from_bytes(MASTER),
        &REPO,
        PASSWORD.as_bytes(),
        KDF,
        "alice@example",
        TIME_S,
        SALT,
        nonce("key: valid"),
    )
    .expect("wrap")
}

fn key_vectors() -> Vec<Vector> {
    let k = "key";
    let kf = valid_key_file();
    let valid = kf.encode();
    let inputs = json!({ "password": PASSWORD });
    let kek = kdf::derive_kek(PASSWORD.as_bytes(), &SALT, &KDF).unwrap();
    let mut decoded = key_json(&kf);
    decoded["kek"] = json!(hex(&kek[..]));
    decoded["master_key"] = json!(hex(&MASTER));
    decoded["repo_id"] = json!(hex(&REPO));
    let mut v = vec![ok("key: valid (Argon2id 8192 KiB, t=1, p=1)", k, valid.clone(), inputs.clone(), decoded)];

    let empty =
        kdf::wrap_with(&MasterKey::from_bytes(MASTER), &REPO, b"", KDF, "", 0, [0; 32], nonce("key: empty")).unwrap();
    let mut decoded = key_json(&empty);
    decoded["kek"] = json!(hex(&kdf::derive_kek(b"", &[0; 32], &KDF).unwrap()[..]));
    decoded["master_key"] = json!(hex(&MASTER));
    decoded["repo_id"] = json!(hex(&REPO));
    v.push(ok("key: valid, empty password and label, zero salt", k, empty.encode(), json!({"password": ""}), decoded));

    header_failures(&mut v, k, &valid, &inputs, FileKind::Key);
    let label_at = arca::format::key::LABEL_AT;
    let label_end = label_at + kf.label.len();
    let e = |name: &str, bytes: Vec<u8>, class| err(&format!("{k}: {name}"), k, bytes, inputs.clone(), class);
    let set_u32 = |at: usize, x: u32| mutate(&valid, |b| b[at..at + 4].copy_from_slice(&x.to_le_bytes()));
    v.extend([
        e("wrong password", valid.clone(), WRONG_PASSWORD),
        e("unknown KDF 2", mutate(&valid, |b| b[8] = 2), UNSUPPORTED),
        e("unknown KDF 0", mutate(&valid, |b| b[8] = 0), UNSUPPORTED),
        e("memory 2 GiB (above 1 GiB)", set_u32(9, 2 * 1024 * 1024), INTEGRITY),
        e("memory 1 GiB + 1 KiB", set_u32(9, MAX_MEMORY_KIB + 1), INTEGRITY),
        e("memory 8191 KiB (below 8 MiB)", set_u32(9, MIN_MEMORY_KIB - 1), INTEGRITY),
        e("memory 0", set_u32(9, 0), INTEGRITY),
        e("time cost 0", set_u32(13, 0), INTEGRITY),
        e("time cost 11", set_u32(13, 11), INTEGRITY),
        e("lanes 0", set_u32(17, 0), INTEGRITY),
        e("lanes 17", set_u32(17, 17), INTEGRITY),
        e("lanes 2^32-1", set_u32(17, u32::MAX), INTEGRITY),
        e("truncated: last byte removed", valid[..valid.len() - 1].to_vec(), INTEGRITY),
        e("truncated: header only", valid[..HEADER_LEN].to_vec(), INTEGRITY),
        e("truncated inside the label", valid[..label_end - 1].to_vec(), INTEGRITY),
        e("truncated before the nonce", valid[..label_end].to_vec(), INTEGRITY),
        e("trailing byte", cat(&[&valid, &[0]]), INTEGRITY),
        e("label not UTF-8", mutate(&valid, |b| b[label_at] = 0xff), INTEGRITY),
        e("flipped ciphertext byte", mutate(&valid, |b| b[label_end + NONCE_LEN] ^= 1), WRONG_PASSWORD),
        e("flipped tag byte", mutate(&valid, |b| *b.last_mut().unwrap() ^= 1), WRONG_PASSWORD),
        e("flipped nonce byte", mutate(&valid, |b| b[label_end] ^= 1), WRONG_PASSWORD),
        e("flipped salt byte (other KEK)", mutate(&valid, |b| b[21] ^= 1), WRONG_PASSWORD),
        e("changed creation time (authenticated)", mutate(&valid, |b| b[53] ^= 1), WRONG_PASSWORD),
        e("changed label (authenticated)", mutate(&valid, |b| b[label_at] = b'b'), WRONG_PASSWORD),
        e("changed time cost (authenticated, other KEK)", set_u32(13, 2), WRONG_PASSWORD),
    ]);
    // Rebind the inputs of the "wrong password" vector.
    v.iter_mut().find(|x| x.name == "key: wrong password").unwrap().inputs =
        json!({"password": "Correct horse battery staple"});

    // A label of 1025 bytes: rejected however the rest reads.
    let mut long = header::encode(FileKind::Key).to_vec();
    long.extend_from_slice(&valid[HEADER_LEN..label_at - 2]);
    long.extend_from_slice(&1025u16.to_le_bytes());
    long.extend_from_slice(&[b'a'; 1025]);
    long.extend_from_slice(&valid[label_end..]);
    v.push(e("label of 1025 bytes (limit 1024)", long, INTEGRITY));
    let mut long = header::encode(FileKind::Key).to_vec();
    long.extend_from_slice(&valid[HEADER_LEN..label_at - 2]);
    long.extend_from_slice(&u16::MAX.to_le_bytes());
    v.push(e("label length 65535, file ends after it", long, INTEGRITY));
    v
}

// ---- config -------------------------------------------------------------------------------------

/// The first valid config, spelled out (not `Config::new`, so a change of defaults does not change
/// the vectors): typical parameters, chunker 512 KiB / 1 MiB / 4 MiB with normalization 1 — not
/// the defaults of section 6.1, which [`default_config`] has.
pub fn base_config() -> Config {
    Config {
        version: 1,
        repo_id: REPO,
        required_features: 0,
        optional_features: 0,
        chunker: ChunkerParams { min_size: 512 << 10, avg_size: 1 << 20, max_size: 4 << 20, normalization: 1 },
        compression_level: 3,
        pack_target_size: 16 << 20,
        previous_master: None,
    }
}

/// The default parameters of format-spec/06-config.md §6.1, spelled out: chunker 128 KiB /
/// 512 KiB / 2 MiB, normalization 2, zstd level 3, packs of 16 MiB.
pub fn default_config() -> Config {
    Config {
        chunker: ChunkerParams { min_size: 128 << 10, avg_size: 512 << 10, max_size: 2 << 20, normalization: 2 },
        ..base_config()
    }
}

/// The valid configs: the base, small parameters with every optional feature bit set, and the
/// largest parameters.
pub fn valid_configs() -> Vec<Config> {
    let small = Config {
        optional_features: u64::MAX,
        chunker: ChunkerParams { min_size: 64, avg_size: 256, max_size: 1024, normalization: 0 },
        compression_level: -7,
        pack_target_size: 1 << 20,
        ..base_config()
    };
    // The largest avg_size is 4 MiB; min_size must be even and below it.
    let big = Config {
        chunker: ChunkerParams { min_size: (4 << 20) - 2, avg_size: 4 << 20, max_size: 16 << 20, normalization: 3 },
        compression_level: 19,
        pack_target_size: 1 << 30,
        ..base_config()
    };
    vec![base_config(), small, big]
}

fn config_vectors() -> Vec<Vector> {
    let k = "config";
    let kind = FileKind::Config;
    let configs = valid_configs();
    let body = configs[0].encode();
    let framed = raw(&body);
    let valid = seal_file(kind, &framed, "config: valid");
    let inputs = file_inputs(&framed);
    // Named "v1 default parameters" before 2026-12 (format-spec/16 §16.5): its chunker
    // parameters are not the defaults; "the section 6.1 default parameters" below has them.
    let mut v = vec![ok(
        "config: valid, typical parameters (chunker 512 KiB / 1 MiB / 4 MiB, normalization 1), uncompressed",
        k,
        valid.clone(),
        inputs.clone(),
        config_json(&configs[0]),
    )];
    let d = default_config();
    let n = "config: valid, the section 6.1 default parameters, uncompressed";
    v.push(ok(n, k, seal_file(kind, &raw(&d.encode()), n), file_inputs(&raw(&d.encode())), config_json(&d)));
    for (c, name) in configs[1..].iter().zip(["smallest parameters, all optional feature bits", "largest parameters"]) {
        let framed = raw(&c.encode());
        let n = format!("config: valid, {name}");
        v.push(ok(&n, k, seal_file(kind, &framed, &n), file_inputs(&framed), config_json(c)));
    }
    // An unfinished key rotation (format-spec/25 §25.1): the previous master key follows.
    let rotating = Config {
        required_features: FEATURE_ROTATION,
        previous_master: Some(PreviousMaster([0x5a; 32])),
        ..base_config()
    };
    let framed = raw(&rotating.encode());
    let n = "config: valid, an unfinished key rotation with the previous master key";
    v.push(ok(n, k, seal_file(kind, &framed, n), file_inputs(&framed), config_json(&rotating)));
    let n = "config: valid, zstd (hand-built frame, raw blocks)";
    let z = zstd(&zstd_frame(17, &[ZBlock::Raw(&body[..10]), ZBlock::Raw(&body[10..])]));
    v.push(ok(n, k, seal_file(kind, &z, n), file_inputs(&z), config_json(&configs[0])));

    header_failures(&mut v, k, &valid, &inputs, kind);
    sealed_failures(&mut v, k, kind, &framed, &valid, &inputs);
    framing_failures(&mut v, k, kind, &body, Some(arca::format::config::MAX_CONFIG_LEN));

    let mut bad_body = |name: &str, body: Vec<u8>, class| {
        let framed = raw(&body);
        let n = format!("config: {name}");
        v.push(err(&n, k, seal_file(kind, &framed, &n), file_inputs(&framed), class));
    };
    let with = |f: &dyn Fn(&mut Config)| {
        let mut c = base_config();
        f(&mut c);
        c.encode()
    };
    assert_eq!(body[0], 1, "version 1 encodes as one byte");
    bad_body("config version 2", with(&|c| c.version = 2), UNSUPPORTED);
    bad_body("config version 0", with(&|c| c.version = 0), UNSUPPORTED);
    bad_body("unknown required feature bit 0", with(&|c| c.required_features = 1), UNSUPPORTED);
    bad_body("unknown required feature bit 63", with(&|c| c.required_features = 1 << 63), UNSUPPORTED);
    bad_body("overlong varint: version 1 encoded as 0x81 0x00", cat(&[&[0x81, 0x00], &body[1..]]), INTEGRITY);
    bad_body("trailing byte after the postcard body", cat(&[&body, &[0]]), INTEGRITY);
    bad_body("truncated postcard body", body[..body.len() - 1].to_vec(), INTEGRITY);
    bad_body("empty body", Vec::new(), INTEGRITY);
    let ch = |f: &dyn Fn(&mut ChunkerParams)| with(&|c| f(&mut c.chunker));
    let fields = with(&|c| c.required_features = FEATURE_ROTATION);
    bad_body("rotation bit without the previous key", fields.clone(), INTEGRITY);
    bad_body("rotation bit, previous key of 31 bytes", cat(&[&fields, &[0x5a; 31]]), INTEGRITY);
    bad_body("rotation bit, previous key and a trailing byte", cat(&[&fields, &[0x5a; 33]]), INTEGRITY);
    bad_body("previous key without the rotation bit", cat(&[&body, &[0x5a; 32]]), INTEGRITY);
    bad_body("chunker min_size 62", ch(&|p| (p.min_size, p.avg_size, p.max_size) = (62, 256, 1024)), INTEGRITY);
    bad_body("chunker min_size odd (131073)", ch(&|p| p.min_size = 131_073), INTEGRITY);
    bad_body("chunker avg_size 255", ch(&|p| (p.min_size, p.avg_size, p.max_size) = (64, 255, 1024)), INTEGRITY);
    bad_body("chunker avg_size not a power of two", ch(&|p| p.avg_size = 3 << 19), INTEGRITY);
    bad_body("chunker avg_size 8 MiB", ch(&|p| (p.avg_size, p.max_size) = (8 << 20, 16 << 20)), INTEGRITY);
    bad_body("chunker min_size equal to avg_size", ch(&|p| p.min_size = p.avg_size), INTEGRITY);
    bad_body("chunker max_size equal to avg_size", ch(&|p| p.max_size = p.avg_size), INTEGRITY);
    bad_body("chunker max_size 16 MiB + 1", ch(&|p| p.max_size = (16 << 20) + 1), INTEGRITY);
    bad_body("chunker normalization 4", ch(&|p| p.normalization = 4), INTEGRITY);
    bad_body("compression level 20", with(&|c| c.compression_level = 20), INTEGRITY);
    bad_body("compression level -8", with(&|c| c.compression_level = -8), INTEGRITY);
    bad_body("pack target size 1 MiB - 1", with(&|c| c.pack_target_size = (1 << 20) - 1), INTEGRITY);
    bad_body("pack target size 1 GiB + 1", with(&|c| c.pack_target_size = (1 << 30) + 1), INTEGRITY);
    v
}

// ---- pack ---------------------------------------------------------------------------------------

/// The two data blobs of the pack vector: (framed plaintext, plaintext).
fn pack_blobs() -> Vec<(Vec<u8>, Vec<u8>)> {
    let second: Vec<u8> = [&b"abc"[..], &[b'z'; 1000]].concat();
    vec![
        (raw(b"hello"), b"hello".to_vec()),
        (zstd(&zstd_frame(17, &[ZBlock::Raw(b"abc"), ZBlock::Rle(b'z', 1000)])), second),
    ]
}

/// Assemble a pack from envelopes and a TOC plaintext sealed for `toc_repo`.
fn assemble_pack(envelopes: &[Vec<u8>], toc: &[u8], toc_repo: &[u8; 32], label: &str) -> Vec<u8> {
    let mut out = header::encode(FileKind::Pack).to_vec();
    for e in envelopes {
        out.extend_from_slice(e);
    }
    let sealed = keys().seal_with_nonce(&nonce(&format!("{label} toc")), toc, &pack::toc_ad(toc_repo));
    out.extend_from_slice(&sealed);
    out.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
    out
}

/// The valid pack: bytes, TOC entries and blob plaintexts.
pub fn valid_pack() -> (Vec<u8>, Vec<TocEntry>, Vec<Vec<u8>>) {
    let keys = keys();
    let mut envs = Vec::new();
    let mut toc = Vec::new();
    let mut plains = Vec::new();
    for (i, (framed, plain)) in pack_blobs().into_iter().enumerate() {
        let id = keys.blob_id(&plain);
        let env = keys.seal_with_nonce(
            &nonce(&format!("pack: blob {i}")),
            &framed,
            &blob::blob_ad(BlobType::Data, &id, &REPO),
        );
        toc.push(TocEntry {
            blob_type: BlobType::Data,
            id,
            stored_len: env.len() as u32,
            plain_len: plain.len() as u32,
        });
        envs.push(env);
        plains.push(plain);
    }
    (assemble_pack(&envs, &pack::encode_toc(&toc), &REPO, "pack: valid"), toc, plains)
}

fn pack_vectors() -> Vec<Vector> {
    let k = "pack";
    let keys = keys();
    let (valid, toc, plains) = valid_pack();
    let inputs = json!({"master_key": hex(&MASTER), "repo_id": hex(&REPO), "limit": DATA_LIMIT});
    let mut offset = HEADER_LEN as u64;
    let blobs: Vec<Value> = toc
        .iter()
        .zip(&plains)
        .map(|(e, p)| {
            let j = pack_blob_json(e, offset, p);
            offset += e.stored_len as u64;
            j
        })
        .collect();
    let mut v = vec![ok(
        "pack: valid, two data blobs (uncompressed, zstd)",
        k,
        valid.clone(),
        inputs.clone(),
        json!({ "blobs": blobs }),
    )];
    let empty = assemble_pack(&[], &pack::encode_toc(&[]), &REPO, "pack: no blobs");
    assert_eq!(empty.len() as u64, pack::MIN_PACK_LEN);
    v.push(ok(
        "pack: valid, no blobs (56 bytes, the smallest pack)",
        k,
        empty.clone(),
        inputs.clone(),
        json!({ "blobs": [] }),
    ));
    header_failures(&mut v, k, &valid, &inputs, FileKind::Pack);

    let envs: Vec<Vec<u8>> = {
        let mut at = HEADER_LEN;
        toc.iter()
            .map(|e| {
                let env = valid[at..at + e.stored_len as usize].to_vec();
                at += e.stored_len as usize;
                env
            })
            .collect()
    };
    let area_end = HEADER_LEN + envs.iter().map(Vec::len).sum::<usize>();
    let trailer_at = valid.len() - 4;
    let e = |name: &str, bytes: Vec<u8>| err(&format!("pack: {name}"), k, bytes, inputs.clone(), INTEGRITY);
    let with_toc = |name: &str, entries: &[TocEntry]| {
        e(name, assemble_pack(&envs, &pack::encode_toc(entries), &REPO, "pack: valid"))
    };
    let with_toc_bytes = |name: &str, toc: Vec<u8>| e(name, assemble_pack(&envs, &toc, &REPO, "pack: valid"));
    let entry = |i: usize, f: &dyn Fn(&mut TocEntry)| {
        let mut t = toc.clone();
        f(&mut t[i]);
        t
    };
    let min_len = HEADER_LEN + 4 + 40;
    v.extend([
        e("truncated: last byte removed", valid[..valid.len() - 1].to_vec()),
        e("truncated: first blob only", valid[..HEADER_LEN + envs[0].len()].to_vec()),
        e("truncated: header only", valid[..HEADER_LEN].to_vec()),
        e("shorter than header, trailer, nonce and tag", cat(&[&valid[..min_len - 5], &44u32.to_le_bytes()])),
        e(
            "55 bytes, one short of the smallest pack (TOC length 44 reaches into the header)",
            cat(&[&empty[..empty.len() - 5], &44u32.to_le_bytes()]),
        ),
        e("trailing byte after the trailer", cat(&[&valid, &[0]])),
        e(
            "trailer: TOC length 43 (below 44)",
            mutate(&valid, |b| b[trailer_at..].copy_from_slice(&43u32.to_le_bytes())),
        ),
        e("trailer: TOC length 0", mutate(&valid, |b| b[trailer_at..].copy_from_slice(&0u32.to_le_bytes()))),
        e(
            "trailer: TOC length reaches into the header",
            mutate(&valid, |b| b[trailer_at..].copy_from_slice(&(trailer_at as u32 - 7).to_le_bytes())),
        ),
        e("trailer: TOC length 2^32-1", mutate(&valid, |b| b[trailer_at..].copy_from_slice(&u32::MAX.to_le_bytes()))),
        e("trailer: TOC length one too large", mutate(&valid, |b| b[trailer_at] = b[trailer_at].wrapping_add(1))),
        e("flipped byte in the first blob's ciphertext", mutate(&valid, |b| b[HEADER_LEN + NONCE_LEN] ^= 1)),
        e("flipped byte in the second blob's tag", mutate(&valid, |b| b[area_end - 1] ^= 1)),
        e("flipped byte in the TOC ciphertext", mutate(&valid, |b| b[area_end + NONCE_LEN] ^= 1)),
        e("extra byte between the blobs and the TOC", {
            let mut with_gap = envs.clone();
            with_gap.push(vec![0]);
            assemble_pack(&with_gap, &pack::encode_toc(&toc), &REPO, "pack: valid")
        }),
        e(
            "TOC sealed for another repository ID (wrong AD)",
            assemble_pack(&envs, &pack::encode_toc(&toc), &OTHER_REPO, "pack: valid"),
        ),
        with_toc_bytes("TOC length mismatch: count 3, two entries", {
            let mut t = pack::encode_toc(&toc);
            t[0] = 3;
            t
        }),
        with_toc_bytes("TOC length mismatch: count 1, two entries", {
            let mut t = pack::encode_toc(&toc);
            t[0] = 1;
            t
        }),
        with_toc_bytes("TOC length mismatch: trailing byte", cat(&[&pack::encode_toc(&toc), &[0]])),
        with_toc_bytes(
            "TOC truncated to 3 bytes (sealed TOC length 43, below 44: the trailer check rejects it)",
            pack::encode_toc(&toc)[..3].to_vec(),
        ),
        with_toc_bytes("TOC unknown blob type 2", {
            let mut t = pack::encode_toc(&toc);
            t[4] = 2;
            t
        }),
        with_toc("TOC stored_len 40 (below 41)", &{
            let mut t = toc.clone();
            let d = t[0].stored_len - 40;
            t[0].stored_len = 40;
            t[1].stored_len += d;
            t
        }),
        with_toc("TOC covers one byte less than the blob area", &entry(1, &|e| e.stored_len -= 1)),
        with_toc("TOC covers one byte more than the blob area", &entry(1, &|e| e.stored_len += 1)),
        with_toc("TOC lengths swapped (blobs split at the wrong place)", &{
            let mut t = toc.clone();
            (t[0].stored_len, t[1].stored_len) = (t[1].stored_len, t[0].stored_len);
            t
        }),
        with_toc("wrong AD: blob IDs swapped in the TOC", &{
            let mut t = toc.clone();
            (t[0].id, t[1].id) = (t[1].id, t[0].id);
            t
        }),
        with_toc("wrong AD: blob type tree for a data blob", &entry(0, &|e| e.blob_type = BlobType::Tree)),
        with_toc("TOC plain_len disagrees with the blob", &entry(1, &|e| e.plain_len += 1)),
    ]);
    // A blob whose plaintext does not hash to the ID it is sealed under.
    let wrong_id = keys.blob_id(b"hellO");
    let env = keys.seal_with_nonce(
        &nonce("pack: wrong id"),
        &raw(b"hello"),
        &blob::blob_ad(BlobType::Data, &wrong_id, &REPO),
    );
    let t = [TocEntry { blob_type: BlobType::Data, id: wrong_id, stored_len: env.len() as u32, plain_len: 5 }];
    v.push(e(
        "blob plaintext does not hash to its ID",
        assemble_pack(&[env], &pack::encode_toc(&t), &REPO, "pack: wrong id"),
    ));
    // A blob over the decompression limit.
    let framed = zstd(&zstd_bomb(1));
    let big = vec![0u8; 128 * 1024];
    let id = keys.blob_id(&big);
    let env = keys.seal_with_nonce(&nonce("pack: bomb"), &framed, &blob::blob_ad(BlobType::Data, &id, &REPO));
    let t = [TocEntry { blob_type: BlobType::Data, id, stored_len: env.len() as u32, plain_len: big.len() as u32 }];
    v.push(e("blob decompresses past the limit", assemble_pack(&[env], &pack::encode_toc(&t), &REPO, "pack: bomb")));
    v
}

// ---- index --------------------------------------------------------------------------------------

/// The packs of the valid index: the pack vector and an invented tree pack.
pub fn valid_index() -> Vec<IndexPack> {
    let (pack_bytes, toc, _) = valid_pack();
    let blobs = arca::format::pack::locate_blobs(&toc);
    let tree_blob =
        IndexBlob { blob_type: BlobType::Tree, id: Id([0x22; 32]), offset: 8, stored_len: 300, plain_len: 500 };
    vec![
        IndexPack { id: Id::of_file_bytes(&pack_bytes), size: pack_bytes.len() as u32, ephemeral: None, blobs },
        IndexPack { id: Id([0x33; 32]), size: 8 + 300 + 85 + 4, ephemeral: None, blobs: vec![tree_blob] },
    ]
}

/// An index file whose first record (pack A) lists blob X at offset 500, then blob Y, then X
/// again at offset 200, and whose second record (pack B) lists X at offset 8: X's canonical copy
/// is A's at offset 200 — the lowest pack position, then the lowest offset, not the first listed
/// nor the lowest offset overall (format-spec/10-index.md §10.3).
pub fn duplicate_index() -> Vec<IndexPack> {
    let entry = |id: u8, offset: u32| IndexBlob {
        blob_type: BlobType::Data,
        id: Id([id; 32]),
        offset,
        stored_len: 100,
        plain_len: 60,
    };
    vec![
        IndexPack {
            id: Id([0xa1; 32]),
            size: 1000,
            ephemeral: None,
            blobs: vec![entry(0x77, 500), entry(0x78, 8), entry(0x77, 200)],
        },
        IndexPack { id: Id([0xb2; 32]), size: 1000, ephemeral: None, blobs: vec![entry(0x77, 8)] },
    ]
}

/// Where the canonical copy of a blob is: its pack and offset.
pub fn canonical_json(t: BlobType, id: &Id, pack: &Id, offset: u32) -> Value {
    json!({"type": t.name(), "id": id.to_hex(), "pack": pack.to_hex(), "offset": offset})
}

fn index_vectors() -> Vec<Vector> {
    let k = "index";
    let kind = FileKind::Index;
    let packs = valid_index();
    let body = findex::encode(&packs);
    let framed = raw(&body);
    let valid = seal_file(kind, &framed, "index: valid");
    let inputs = file_inputs(&framed);
    let mut v = vec![ok("index: valid, two packs", k, valid.clone(), inputs.clone(), index_json(&packs))];
    let framed0 = raw(&findex::encode(&[]));
    v.push(ok(
        "index: valid, no packs",
        k,
        seal_file(kind, &framed0, "index: empty"),
        file_inputs(&framed0),
        index_json(&[]),
    ));
    let dup = duplicate_index();
    let framed_dup = raw(&findex::encode(&dup));
    let (pack_a, x) = (dup[0].id, dup[0].blobs[0].id);
    let mut inputs_dup = file_inputs(&framed_dup);
    inputs_dup["canonical"] = json!([{"type": "data", "id": x.to_hex()}]);
    let mut decoded = index_json(&dup);
    decoded["canonical"] = json!([canonical_json(BlobType::Data, &x, &pack_a, 200)]);
    v.push(ok(
        "index: valid, a record lists a blob twice, the higher offset first (canonical copy: lowest pack \
         position, then lowest offset, section 10.3)",
        k,
        seal_file(kind, &framed_dup, "index: duplicate blob"),
        inputs_dup,
        decoded,
    ));
    header_failures(&mut v, k, &valid, &inputs, kind);
    sealed_failures(&mut v, k, kind, &framed, &valid, &inputs);
    framing_failures(&mut v, k, kind, &body, None);

    let mut bad = |name: &str, body: Vec<u8>| {
        let framed = raw(&body);
        let n = format!("index: {name}");
        v.push(err(&n, k, seal_file(kind, &framed, &n), file_inputs(&framed), INTEGRITY));
    };
    let with = |f: &dyn Fn(&mut Vec<IndexPack>)| {
        let mut p = valid_index();
        f(&mut p);
        findex::encode(&p)
    };
    bad("blob offset 7 (inside the pack header)", with(&|p| p[1].blobs[0].offset = 7));
    bad("blob ends one byte past the pack", with(&|p| p[1].blobs[0].stored_len = p[1].size - 8 + 1));
    bad("blob offset past the pack", with(&|p| p[1].blobs[0].offset = p[1].size));
    bad(
        "blob offset + stored_len overflows 32 bits",
        with(&|p| (p[1].blobs[0].offset, p[1].blobs[0].stored_len) = (u32::MAX, 100)),
    );
    bad("blob stored_len 40 (below 41)", with(&|p| p[1].blobs[0].stored_len = 40));
    bad("unknown blob type 2", {
        let mut b = body.clone();
        let at = 4 + 40 + 45 * packs[0].blobs.len() + 40;
        assert_eq!(b[at], BlobType::Tree as u8);
        b[at] = 2;
        b
    });
    bad("blob count exceeds the file", {
        let mut b = body.clone();
        let at = 4 + 36 + 45 * packs[0].blobs.len() + 40;
        b[at] = 2;
        b
    });
    bad("blob count 2^32-1", {
        let mut b = body.clone();
        b[4 + 36..4 + 40].copy_from_slice(&u32::MAX.to_le_bytes());
        b
    });
    bad("pack count 3, two packs present", mutate(&body, |b| b[0] = 3));
    bad("pack count 2^32-1", mutate(&body, |b| b[..4].copy_from_slice(&u32::MAX.to_le_bytes())));
    bad("trailing byte", cat(&[&body, &[0]]));
    bad("truncated by one byte", body[..body.len() - 1].to_vec());
    bad("empty body", Vec::new());
    v
}

// ---- snapshot -----------------------------------------------------------------------------------

/// The valid snapshot.
pub fn valid_snapshot() -> Snapshot {
    Snapshot {
        time: TIME_NS,
        tree: Id([0x44; 32]),
        paths: vec![b"/home/alice".to_vec(), b"/etc/\xff\xfe".to_vec()],
        hostname: "example".into(),
        username: "alice".into(),
        uid: 1000,
        gid: 1000,
        tags: vec!["daily".into(), "home".into()],
        parent: Some(Id([0x55; 32])),
        program: "arca 0.1.0".into(),
        summary: Summary {
            files_new: 3,
            files_changed: 1,
            files_unchanged: 1000,
            dirs_new: 1,
            dirs_changed: 2,
            dirs_unchanged: 40,
            bytes_read: 123_456,
            bytes_added: 100_000,
            bytes_stored: 60_000,
            blobs_added: 7,
            errors: 0,
            changed_during_read: 0,
            started: TIME_NS,
            finished: TIME_NS + 1_500_000_000,
        },
        original: None,
    }
}

fn snapshot_vectors() -> Vec<Vector> {
    let k = "snapshot";
    let kind = FileKind::Snapshot;
    let s = valid_snapshot();
    let body = s.encode();
    let framed = raw(&body);
    let valid = seal_file(kind, &framed, "snapshot: valid");
    let inputs = file_inputs(&framed);
    let mut v = vec![ok("snapshot: valid, uncompressed", k, valid.clone(), inputs.clone(), snapshot_json(&s))];
    let minimal = Snapshot { paths: vec![], tags: vec![], parent: None, summary: Summary::default(), ..s.clone() };
    let f = raw(&minimal.encode());
    v.push(ok(
        "snapshot: valid, no parent, tags or paths",
        k,
        seal_file(kind, &f, "snapshot: minimal"),
        file_inputs(&f),
        snapshot_json(&minimal),
    ));
    let n = "snapshot: valid, zstd (real zstd compressor, level 19)";
    let f = compression::encode(&body, 19);
    assert_eq!(f[0], compression::METHOD_ZSTD);
    v.push(ok(n, k, seal_file(kind, &f, n), file_inputs(&f), snapshot_json(&s)));
    // Field 12: a snapshot rewritten by `tag` or `repair snapshots` names its original.
    let rewritten = Snapshot { original: Some(Id([0x66; 32])), ..s.clone() };
    let rewritten_body = rewritten.encode();
    assert_eq!(rewritten_body, cat(&[&body, &[1], &[0x66; 32]]));
    let n = "snapshot: valid, rewritten (field 12 original present)";
    let f = raw(&rewritten_body);
    v.push(ok(n, k, seal_file(kind, &f, n), file_inputs(&f), snapshot_json(&rewritten)));
    header_failures(&mut v, k, &valid, &inputs, kind);
    sealed_failures(&mut v, k, kind, &framed, &valid, &inputs);
    framing_failures(&mut v, k, kind, &body, None);

    let mut bad = |name: &str, body: Vec<u8>| {
        let framed = raw(&body);
        let n = format!("snapshot: {name}");
        v.push(err(&n, k, seal_file(kind, &framed, &n), file_inputs(&framed), INTEGRITY));
    };
    let with = |f: &dyn Fn(&mut Snapshot)| {
        let mut s = valid_snapshot();
        f(&mut s);
        s.encode()
    };
    bad("tags not sorted", with(&|s| s.tags.reverse()));
    bad("duplicate tag", with(&|s| s.tags = vec!["daily".into(), "daily".into()]));
    bad("trailing byte", cat(&[&body, &[0]]));
    bad("truncated by one byte", body[..body.len() - 1].to_vec());
    bad("field 12 original written as None (00)", cat(&[&body, &[0]]));
    bad("field 12 original with option tag 2", cat(&[&body, &[2], &[0x66; 32]]));
    bad("field 12 original truncated to 31 bytes", rewritten_body[..rewritten_body.len() - 1].to_vec());
    bad("trailing byte after field 12 original", cat(&[&rewritten_body, &[0]]));
    // The parent option tag: find it as the byte before the parent ID.
    let opt_at = body.windows(33).position(|w| w[0] == 1 && w[1..] == [0x55; 32]).expect("parent tag");
    bad("option tag 2 for the parent", mutate(&body, |b| b[opt_at] = 2));
    let host_at = body.windows(8).position(|w| w == b"\x07example").expect("hostname");
    bad("hostname not UTF-8", mutate(&body, |b| b[host_at + 1] = 0xff));
    // uid 1000 is the varint e8 07; spell it with a redundant continuation byte.
    let uid_at = body.windows(4).position(|w| w == [0xe8, 0x07, 0xe8, 0x07]).expect("uid, gid");
    bad("overlong varint: uid 1000 as e8 87 00", cat(&[&body[..uid_at], &[0xe8, 0x87, 0x00], &body[uid_at + 2..]]));
    v
}

// ---- lock ---------------------------------------------------------------------------------------

fn lock_vectors() -> Vec<Vector> {
    let k = "lock";
    let kind = FileKind::Lock;
    let l = Lock { time: TIME_NS, exclusive: true, hostname: "example".into(), username: "alice".into(), pid: 4242 };
    let body = l.encode();
    let framed = raw(&body);
    let valid = seal_file(kind, &framed, "lock: valid");
    let inputs = file_inputs(&framed);
    let mut v = vec![ok("lock: valid, exclusive", k, valid.clone(), inputs.clone(), lock_json(&l))];
    let shared = Lock { exclusive: false, hostname: String::new(), username: String::new(), pid: 0, time: -1 };
    let f = raw(&shared.encode());
    v.push(ok(
        "lock: valid, shared, empty names",
        k,
        seal_file(kind, &f, "lock: shared"),
        file_inputs(&f),
        lock_json(&shared),
    ));
    header_failures(&mut v, k, &valid, &inputs, kind);
    sealed_failures(&mut v, k, kind, &framed, &valid, &inputs);
    framing_failures(&mut v, k, kind, &body, Some(arca::format::lock::MAX_LOCK_LEN));
    let mut bad = |name: &str, body: Vec<u8>| {
        let framed = raw(&body);
        let n = format!("lock: {name}");
        v.push(err(&n, k, seal_file(kind, &framed, &n), file_inputs(&framed), INTEGRITY));
    };
    // time is a zigzag varint of 9 bytes; `exclusive` follows it.
    let excl_at = body.windows(9).position(|w| w == b"\x01\x07example").expect("exclusive");
    bad("boolean 2", mutate(&body, |b| b[excl_at] = 2));
    bad("trailing byte", cat(&[&body, &[0]]));
    bad("truncated by one byte", body[..body.len() - 1].to_vec());
    // pid 4242 = varint 92 21 at the end.
    assert_eq!(body[body.len() - 2..], [0x92, 0x21]);
    bad("overlong varint: pid as 92 a1 00", cat(&[&body[..body.len() - 2], &[0x92, 0xa1, 0x00]]));
    bad("pid above 2^32-1", cat(&[&body[..body.len() - 2], &[0x80, 0x80, 0x80, 0x80, 0x10]]));
    v
}

// ---- journal ------------------------------------------------------------------------------------

/// A drill record and a backup record with an `op` and an `outcome` from a later version.
pub fn valid_journal() -> Vec<Record> {
    let drill = Record {
        id: [0x11; 16],
        time: TIME_NS,
        duration: 2_500_000_000,
        op: Op::Drill,
        outcome: Outcome::Ok,
        exit_code: 0,
        hostname: "example".into(),
        username: "alice".into(),
        snapshots: vec![Id([0x22; 32])],
        bytes: 1 << 20,
        files: 12,
        errors: vec![],
        labels: vec![("sample".into(), "5% files".into())],
        metrics: vec![("rto_ns".into(), 2_000_000_000), ("rto_full_ns".into(), 40_000_000_000)],
    };
    let future = Record {
        id: [0x33; 16],
        time: TIME_NS + 1,
        duration: 0,
        op: Op::Other(200),
        outcome: Outcome::Other(9),
        exit_code: 1,
        hostname: String::new(),
        username: String::new(),
        snapshots: vec![],
        bytes: 0,
        files: 0,
        errors: vec!["pg_dump exited with status 1".into()],
        labels: vec![],
        metrics: vec![],
    };
    vec![drill, future]
}

/// Records of the values added with section 21.6: a `tag` record (op 11) pairing a replaced
/// snapshot with its replacement, and the outcomes differs (4), refused (5) and missed (6).
pub fn interpretation_journal() -> Vec<Record> {
    let base = valid_journal().remove(0);
    let record = |id: u8, op: Op, outcome: Outcome, exit_code: u8, snapshots: Vec<Id>| Record {
        id: [id; 16],
        time: TIME_NS + i64::from(id),
        op,
        outcome,
        exit_code,
        snapshots,
        labels: vec![],
        metrics: vec![],
        ..base.clone()
    };
    let mut drill = record(0x47, Op::Drill, Outcome::Missed, 6, vec![Id([0x55; 32])]);
    drill.metrics = vec![("rto_full_ns".into(), 7_200_000_000_000), ("max_rto_ns".into(), 3_600_000_000_000)];
    vec![
        record(0x44, Op::Tag, Outcome::Ok, 0, vec![Id([0x22; 32]), Id([0x55; 32])]),
        record(0x45, Op::Verify, Outcome::Differs, 5, vec![Id([0x55; 32])]),
        record(0x46, Op::Restore, Outcome::Refused, 2, vec![Id([0x55; 32])]),
        drill,
    ]
}

/// A method-01 framed plaintext of `body` in a hand-built zstd frame: runs of at least 32 equal
/// bytes as RLE blocks, the rest as raw blocks. Keeps vectors of long, repetitive bodies small.
fn rle_zstd(body: &[u8]) -> Vec<u8> {
    let mut blocks = Vec::new();
    let (mut i, mut raw_start) = (0, 0);
    while i < body.len() {
        let run = body[i..].iter().take_while(|&&b| b == body[i]).count();
        if run >= 32 {
            if raw_start < i {
                blocks.push(ZBlock::Raw(&body[raw_start..i]));
            }
            blocks.push(ZBlock::Rle(body[i], run as u32));
            raw_start = i + run;
        }
        i += run;
    }
    if raw_start < body.len() || blocks.is_empty() {
        blocks.push(ZBlock::Raw(&body[raw_start..]));
    }
    zstd(&zstd_frame(17, &blocks))
}

fn journal_vectors() -> Vec<Vector> {
    let k = "journal";
    let kind = FileKind::Journal;
    let records = valid_journal();
    // Files written before padding (section 21.7) are unpadded and often compressed; readers
    // still accept them, and the header, sealing and framing failures are built on one.
    let body = journal::encode_unpadded(&records);
    let framed = raw(&body);
    let valid = seal_file(kind, &framed, "journal: valid");
    let inputs = file_inputs(&framed);
    let mut v = vec![ok(
        "journal: valid, a drill and a record with op 200 and outcome 9 from a later version, unpadded (before 21.7)",
        k,
        valid.clone(),
        inputs.clone(),
        journal_json(&records),
    )];
    let one = journal::encode_unpadded(&records[..1]);
    let f = compression::encode(&one, 3);
    assert_eq!(f[0], compression::METHOD_ZSTD, "the drill record compresses");
    v.push(ok(
        "journal: valid, one record, real zstd compressor, unpadded (before 21.7)",
        k,
        seal_file(kind, &f, "journal: zstd"),
        file_inputs(&f),
        journal_json(&records[..1]),
    ));
    let newer = interpretation_journal();
    let f = raw(&journal::encode_unpadded(&newer));
    v.push(ok(
        "journal: valid, a tag record (op 11) and the outcomes differs, refused and missed (section 21.6)",
        k,
        seal_file(kind, &f, "journal: tag and outcomes"),
        file_inputs(&f),
        journal_json(&newer),
    ));
    // Padded as writers store it: method 00, the file exactly its size class.
    let padded = journal::encode(&records);
    let f = raw(&padded);
    let file = seal_file(kind, &f, "journal: padded");
    assert_eq!(file.len(), 4096);
    v.push(ok(
        "journal: valid, padded: the same records, file of exactly 4096 bytes (section 21.7)",
        k,
        file,
        file_inputs(&f),
        journal_json(&records),
    ));
    let f = rle_zstd(&padded);
    v.push(ok(
        "journal: valid, padded, zstd (raw and RLE blocks)",
        k,
        seal_file(kind, &f, "journal: padded zstd"),
        file_inputs(&f),
        journal_json(&records),
    ));
    // Records that fill the 4096 class exactly: no padding byte.
    let mut full = records[..1].to_vec();
    full[0].hostname.clear();
    let n = journal::FILE_OVERHEAD + journal::encode_unpadded(&full).len() + 1;
    full[0].hostname = "h".repeat(4096 - n);
    let exact = journal::encode(&full);
    assert_eq!(exact, journal::encode_unpadded(&full));
    let f = rle_zstd(&exact);
    v.push(ok(
        "journal: valid, records that fill their size class exactly (no padding byte), zstd",
        k,
        seal_file(kind, &f, "journal: exact class"),
        file_inputs(&f),
        journal_json(&full),
    ));
    header_failures(&mut v, k, &valid, &inputs, kind);
    sealed_failures(&mut v, k, kind, &framed, &valid, &inputs);
    framing_failures(&mut v, k, kind, &body, None);
    // Bodies of these are built as RLE zstd frames when long, so that they stay small.
    let mut bad = |name: &str, body: Vec<u8>| {
        let framed = if body.len() > 1024 { rle_zstd(&body) } else { raw(&body) };
        let n = format!("journal: {name}");
        v.push(err(&n, k, seal_file(kind, &framed, &n), file_inputs(&framed), INTEGRITY));
    };
    let with = |f: &dyn Fn(&mut Record)| {
        let mut r = records[0].clone();
        f(&mut r);
        journal::encode_unpadded(&[r])
    };
    bad("no records", vec![0]);
    bad("trailing byte", cat(&[&body, &[0]]));
    bad("truncated by one byte", body[..body.len() - 1].to_vec());
    bad("overlong varint: record count 2 as 82 00", cat(&[&[0x82, 0x00], &body[1..]]));
    bad("op 0", with(&|r| r.op = Op::Other(0)));
    bad("empty label key", with(&|r| r.labels.push((String::new(), "x".into()))));
    bad("metric key of 65 bytes", with(&|r| r.metrics.push(("k".repeat(65), 1))));
    bad("error message of 4097 bytes", with(&|r| r.errors.push("e".repeat(4097))));
    bad("257 errors", with(&|r| r.errors = vec!["e".into(); 257]));
    bad("257 labels", with(&|r| r.labels = vec![("k".into(), String::new()); 257]));
    bad("hostname of 4097 bytes", with(&|r| r.hostname = "h".repeat(4097)));
    let mut nonzero = padded.clone();
    *nonzero.last_mut().unwrap() = 0x01;
    bad("padding: a nonzero padding byte", nonzero);
    bad("padding: one byte short of its size class", padded[..padded.len() - 1].to_vec());
    bad("padding: one byte over its size class", cat(&[&padded, &[0]]));
    let mut larger = body.clone();
    larger.resize(8192 - journal::FILE_OVERHEAD, 0);
    bad("padding: the 8192 class, larger than the records need", larger);
    v
}

// ---- blobs --------------------------------------------------------------------------------------

fn blob_inputs(t: BlobType, id: &Id, framed: &[u8], limit: usize) -> Value {
    json!({"master_key": hex(&MASTER), "repo_id": hex(&REPO), "blob_type": t.name(), "blob_id": id.to_hex(),
           "limit": limit, "plaintext": hex(framed)})
}

fn envelope(t: BlobType, id: &Id, framed: &[u8], label: &str) -> Vec<u8> {
    keys().seal_with_nonce(&nonce(label), framed, &blob::blob_ad(t, id, &REPO))
}

fn blob_vectors() -> Vec<Vector> {
    let k = "blob";
    let keys = keys();
    let d = BlobType::Data;
    let mut v = Vec::new();
    let mut good = |name: &str, plain: &[u8], framed: Vec<u8>| {
        let id = keys.blob_id(plain);
        let n = format!("blob: {name}");
        v.push(ok(
            &n,
            k,
            envelope(d, &id, &framed, &n),
            blob_inputs(d, &id, &framed, DATA_LIMIT),
            json!({"plaintext": hex(plain)}),
        ));
    };
    good("valid, \"hello\" uncompressed", b"hello", raw(b"hello"));
    good("valid, empty plaintext", b"", raw(b""));
    let text: Vec<u8> = (0..100).flat_map(|i| format!("line {i} of a compressible text\n").into_bytes()).collect();
    let f = compression::encode(&text, 3);
    assert_eq!(f[0], compression::METHOD_ZSTD);
    good("valid, real zstd compressor level 3", &text, f);
    let mut rle = b"head".to_vec();
    rle.extend_from_slice(&[0xab; 3000]);
    good(
        "valid, zstd hand-built frame (raw and RLE blocks)",
        &rle,
        zstd(&zstd_frame(17, &[ZBlock::Raw(b"head"), ZBlock::Rle(0xab, 3000)])),
    );
    good(
        &format!("valid, exactly the limit ({DATA_LIMIT} bytes)"),
        &vec![0; DATA_LIMIT],
        zstd(&zstd_frame(17, &[ZBlock::Rle(0, DATA_LIMIT as u32)])),
    );

    let hello = keys.blob_id(b"hello");
    let framed = raw(b"hello");
    let valid = envelope(d, &hello, &framed, "blob: valid, \"hello\" uncompressed");
    let inputs = blob_inputs(d, &hello, &framed, DATA_LIMIT);
    let e = |name: &str, bytes: Vec<u8>, inputs: Value| err(&format!("blob: {name}"), k, bytes, inputs, INTEGRITY);
    let world = keys.blob_id(b"world");
    v.extend([
        e("flipped ciphertext byte", mutate(&valid, |b| b[NONCE_LEN] ^= 1), inputs.clone()),
        e("flipped nonce byte", mutate(&valid, |b| b[0] ^= 1), inputs.clone()),
        e("flipped tag byte", mutate(&valid, |b| *b.last_mut().unwrap() ^= 1), inputs.clone()),
        e("truncated: last byte removed", valid[..valid.len() - 1].to_vec(), inputs.clone()),
        e("truncated to 40 bytes", valid[..40].to_vec(), inputs.clone()),
        e("truncated to 39 bytes (shorter than nonce and tag)", valid[..39].to_vec(), inputs.clone()),
        e("empty envelope", Vec::new(), inputs.clone()),
        e("trailing byte", cat(&[&valid, &[0]]), inputs.clone()),
        e("wrong AD: opened under another blob ID", valid.clone(), blob_inputs(d, &world, &framed, DATA_LIMIT)),
        e("wrong AD: opened as a tree blob", valid.clone(), blob_inputs(BlobType::Tree, &hello, &framed, DATA_LIMIT)),
        e(
            "wrong AD: sealed for another repository ID",
            keys.seal_with_nonce(&nonce("blob: other repo"), &framed, &blob::blob_ad(d, &hello, &OTHER_REPO)),
            inputs.clone(),
        ),
        e(
            "plaintext does not hash to the blob ID (sealed under the ID of \"world\")",
            envelope(d, &world, &framed, "blob: wrong id"),
            blob_inputs(d, &world, &framed, DATA_LIMIT),
        ),
    ]);
    let zeros = vec![0; DATA_LIMIT + 1];
    let (id, over) = (keys.blob_id(&zeros), raw(&zeros));
    v.push(e(
        "uncompressed plaintext one byte over the limit",
        envelope(d, &id, &over, "blob: over"),
        blob_inputs(d, &id, &over, DATA_LIMIT),
    ));
    let bomb = zstd(&zstd_bomb(1));
    let id = keys.blob_id(&[0; 128 * 1024]);
    let n = format!("zstd bomb: 128 KiB against the {DATA_LIMIT}-byte limit");
    v.push(e(&n, envelope(d, &id, &bomb, "blob: bomb"), blob_inputs(d, &id, &bomb, DATA_LIMIT)));
    let bad = cat(&[&[7], b"hello"]);
    v.push(e(
        "unknown compression method 7",
        envelope(d, &hello, &bad, "blob: method 7"),
        blob_inputs(d, &hello, &bad, DATA_LIMIT),
    ));
    v
}

// ---- trees --------------------------------------------------------------------------------------

fn node(name: &[u8], kind: NodeKind) -> Node {
    Node {
        name: name.to_vec(),
        kind,
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        user: "alice".into(),
        group: "staff".into(),
        mtime: TIME_NS,
        ctime: TIME_NS + 1,
        inode: 1234,
        device: 2049,
        links: 1,
        xattrs: vec![],
    }
}

/// The `rdev` of device `major:minor` (format-spec/12-tree.md §12.1, glibc's 64-bit `makedev`).
pub fn makedev(major: u64, minor: u64) -> u64 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12) | ((major & !0xfff) << 32)
}

fn empty_file() -> NodeKind {
    NodeKind::File { size: 0, content: vec![] }
}

/// The valid tree: one entry of every kind.
pub fn valid_tree() -> Tree {
    let keys = keys();
    let chunk = |s: &[u8]| ChunkRef { id: keys.blob_id(s), len: s.len() as u32 };
    let mut readme = node(b"README.md", NodeKind::File { size: 11, content: vec![chunk(b"hello"), chunk(b" world")] });
    readme.xattrs = vec![
        Xattr { name: b"user.comment".to_vec(), value: b"hi".to_vec() },
        Xattr { name: b"user.mime_type".to_vec(), value: b"text/markdown".to_vec() },
    ];
    let mut nodes = vec![
        readme,
        Node { mode: 0o755, links: 2, ..node(b"bin", NodeKind::Dir { subtree: Id([0x66; 32]) }) },
        Node { mode: 0o777, ..node(b"link", NodeKind::Symlink { target: b"README.md".to_vec() }) },
        node(b"fifo", NodeKind::Fifo),
        Node {
            mode: 0o600,
            uid: 0,
            gid: 0,
            user: "root".into(),
            group: String::new(),
            ..node(b"console", NodeKind::CharDevice { rdev: 0x0501 })
        },
        Node { mode: 0o660, ..node(b"disk", NodeKind::BlockDevice { rdev: 0x0800 }) },
        Node { mode: 0o755, ..node(b"sock", NodeKind::Socket) },
        Node { mode: 0o7777, ..node(b"setuid", empty_file()) },
        node(b"\xff\xfe not UTF-8", empty_file()),
        node(&[b'n'; 255], empty_file()),
    ];
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Tree { nodes }
}

fn tree_vectors() -> Vec<Vector> {
    let k = "tree";
    let keys = keys();
    let t = BlobType::Tree;
    let mut v = Vec::new();
    let mut push = |name: &str, tree_bytes: Vec<u8>, expect: Result<Value, &'static str>| {
        let framed = raw(&tree_bytes);
        let id = keys.blob_id(&tree_bytes);
        let n = format!("tree: {name}");
        let env = envelope(t, &id, &framed, &n);
        let inputs = blob_inputs(t, &id, &framed, arca::format::tree::MAX_TREE_LEN);
        v.push(match expect {
            Ok(decoded) => ok(&n, k, env, inputs, decoded),
            Err(class) => err(&n, k, env, inputs, class),
        });
    };
    let valid = valid_tree();
    push("valid, one entry of every kind", valid.encode(), Ok(tree_json(&valid)));
    push("valid, empty directory", Tree::default().encode(), Ok(tree_json(&Tree::default())));
    // `rdev` is the 64-bit Linux (glibc `makedev`) encoding of major and minor (section 12.1).
    let devices = Tree {
        nodes: vec![
            Node { mode: 0o620, ..node(b"big-char", NodeKind::CharDevice { rdev: makedev(4100, 300) }) },
            Node { mode: 0o660, ..node(b"nvme0n1p5", NodeKind::BlockDevice { rdev: makedev(259, 65541) }) },
        ],
    };
    push(
        "valid, devices 4100:300 and 259:65541 (rdev = makedev(major, minor), section 12.1)",
        devices.encode(),
        Ok(tree_json(&devices)),
    );

    let one = |n: Node| Tree { nodes: vec![n] }.encode();
    let named = |name: &[u8]| one(node(name, empty_file()));
    push("name \"..\"", named(b".."), Err(INTEGRITY));
    push("name \".\"", named(b"."), Err(INTEGRITY));
    push("name \"a/b\"", named(b"a/b"), Err(INTEGRITY));
    push("name \"/\"", named(b"/"), Err(INTEGRITY));
    push("name \"a\\0b\"", named(b"a\0b"), Err(INTEGRITY));
    push("empty name", named(b""), Err(INTEGRITY));
    push("name of 256 bytes", named(&[b'n'; 256]), Err(INTEGRITY));
    let two = |a: &[u8], b: &[u8]| Tree { nodes: vec![node(a, empty_file()), node(b, empty_file())] }.encode();
    push("names not sorted", two(b"b", b"a"), Err(INTEGRITY));
    push("names not sorted bytewise (\"a\" before \"B\")", two(b"a", b"B"), Err(INTEGRITY));
    push("duplicate names", two(b"a", b"a"), Err(INTEGRITY));
    push("mode 0o10000 (beyond 0o7777)", one(Node { mode: 0o10000, ..node(b"f", empty_file()) }), Err(INTEGRITY));
    push("mode 0o100644 (file type bits)", one(Node { mode: 0o100644, ..node(b"f", empty_file()) }), Err(INTEGRITY));
    let c = ChunkRef { id: keys.blob_id(b"hello"), len: 5 };
    push("file size 6, chunks sum to 5", one(node(b"f", NodeKind::File { size: 6, content: vec![c] })), Err(INTEGRITY));
    push("file size 0, one chunk of 5", one(node(b"f", NodeKind::File { size: 0, content: vec![c] })), Err(INTEGRITY));
    push("file size 5, no chunks", one(node(b"f", NodeKind::File { size: 5, content: vec![] })), Err(INTEGRITY));
    push("symlink with an empty target", one(node(b"l", NodeKind::Symlink { target: vec![] })), Err(INTEGRITY));
    push(
        "symlink target containing NUL",
        one(node(b"l", NodeKind::Symlink { target: b"a\0b".to_vec() })),
        Err(INTEGRITY),
    );
    push(
        "symlink target of 4097 bytes",
        one(node(b"l", NodeKind::Symlink { target: vec![b'x'; 4097] })),
        Err(INTEGRITY),
    );
    let xa = |pairs: &[(&[u8], &[u8])]| {
        one(Node {
            xattrs: pairs.iter().map(|(n, v)| Xattr { name: n.to_vec(), value: v.to_vec() }).collect(),
            ..node(b"f", empty_file())
        })
    };
    push("extended attributes not sorted", xa(&[(b"user.b", b""), (b"user.a", b"")]), Err(INTEGRITY));
    push("duplicate extended attribute", xa(&[(b"user.a", b"1"), (b"user.a", b"2")]), Err(INTEGRITY));
    push("extended attribute with an empty name", xa(&[(b"", b"v")]), Err(INTEGRITY));
    push("extended attribute name containing NUL", xa(&[(b"user.a\0", b"v")]), Err(INTEGRITY));

    let fifo = one(node(b"x", NodeKind::Fifo));
    assert_eq!(fifo[..4], [1, 1, b'x', 3], "node count, name, kind variant");
    push("unknown node kind 7", mutate(&fifo, |b| b[3] = 7), Err(INTEGRITY));
    push("overlong varint: node count 1 as 0x81 0x00", cat(&[&[0x81, 0x00], &fifo[1..]]), Err(INTEGRITY));
    push("trailing byte", cat(&[&fifo, &[0]]), Err(INTEGRITY));
    push("truncated by one byte", fifo[..fifo.len() - 1].to_vec(), Err(INTEGRITY));
    let user_at = fifo.windows(6).position(|w| w == b"\x05alice").expect("user");
    push("user name not UTF-8", mutate(&fifo, |b| b[user_at + 1] = 0xc3), Err(INTEGRITY));

    // Envelope-level: a valid tree sealed as a data blob, opened as a tree.
    let bytes = valid.encode();
    let id = keys.blob_id(&bytes);
    let framed = raw(&bytes);
    let n = "tree: wrong AD: sealed as a data blob";
    v.push(err(
        n,
        k,
        envelope(BlobType::Data, &id, &framed, n),
        blob_inputs(t, &id, &framed, arca::format::tree::MAX_TREE_LEN),
        INTEGRITY,
    ));
    v
}

// ---- compression --------------------------------------------------------------------------------

/// The `decoded` fields of a compression vector: the body in hex, or, for a body over 4 KiB, its
/// length and BLAKE3 hash (a 32 MiB body would not fit the vector files).
pub fn compression_decoded(body: &[u8]) -> Value {
    if body.len() <= 4096 {
        json!({"body": hex(body)})
    } else {
        json!({"body_len": body.len(), "body_blake3": hex(blake3::hash(body).as_bytes())})
    }
}

/// A single-segment zstd frame (no window descriptor: the window is the content size, RFC 8878
/// §3.1.1.1.2) with a 4-byte content size field of `size` and `size` bytes `byte` in RLE blocks of
/// at most 128 KiB (the largest block).
fn zstd_single_segment(size: u32, byte: u8) -> Vec<u8> {
    let full = size / (128 << 10);
    let mut blocks: Vec<ZBlock> = (0..full).map(|_| ZBlock::Rle(byte, 128 << 10)).collect();
    if size % (128 << 10) != 0 || blocks.is_empty() {
        blocks.push(ZBlock::Rle(byte, size % (128 << 10)));
    }
    let mut header = vec![0xa0];
    header.extend_from_slice(&size.to_le_bytes());
    zstd_frame_with(&header, &blocks)
}

fn compression_vectors() -> Vec<Vector> {
    let k = "compression";
    let limit = 1024;
    let inputs = json!({ "limit": limit });
    let mut v = Vec::new();
    let mut good = |name: &str, framed: Vec<u8>, body: &[u8]| {
        v.push(ok(&format!("compression: {name}"), k, framed, inputs.clone(), compression_decoded(body)))
    };
    good("method 0, \"abc\"", raw(b"abc"), b"abc");
    good("method 0, empty body", raw(b""), b"");
    good("method 0, exactly the limit", raw(&vec![0x61; limit]), &vec![0x61; limit]);
    good("zstd raw block", zstd(&zstd_frame(17, &[ZBlock::Raw(b"abc")])), b"abc");
    good("zstd RLE block", zstd(&zstd_frame(17, &[ZBlock::Rle(b'q', 300)])), &[b'q'; 300]);
    good("zstd empty raw block", zstd(&zstd_frame(10, &[ZBlock::Raw(b"")])), b"");
    good("zstd exactly the limit", zstd(&zstd_frame(17, &[ZBlock::Rle(0, limit as u32)])), &vec![0; limit]);
    good(
        "zstd window of 2^25 bytes (the largest accepted)",
        zstd(&zstd_frame(25, &[ZBlock::Raw(b"big window")])),
        b"big window",
    );
    let text: Vec<u8> = (0..30).flat_map(|i| format!("{i} bottles of beer on the wall\n").into_bytes()).collect();
    let f = compression::encode(&text, 3);
    assert_eq!(f[0], compression::METHOD_ZSTD);
    good("real zstd compressor level 3", f.clone(), &text);
    // Single segment, 1-byte content size 3: the window is the content size.
    good("zstd frame with a content size field", zstd(&zstd_frame_with(&[0x20, 3], &[ZBlock::Raw(b"abc")])), b"abc");
    let checked = {
        let mut c = zstd::bulk::Compressor::new(3).unwrap();
        c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true)).unwrap();
        c.compress(&text).unwrap()
    };
    good("real zstd compressor with a content checksum", zstd(&checked), &text);
    // Single segment with a 2-byte content size field, which stores the size less 256.
    good(
        "zstd single-segment frame with a 2-byte content size field (300 bytes)",
        zstd(&zstd_frame_with(&[0x60, 44, 0], &[ZBlock::Rle(b'r', 300)])),
        &[b'r'; 300],
    );
    // A single-segment frame has no window descriptor: its window is its content size.
    let big = 268_435_456;
    let body = vec![b'w'; 1 << 25];
    v.push(ok(
        "compression: zstd single-segment frame of 2^25 bytes (window = content size, the largest accepted)",
        k,
        zstd(&zstd_single_segment(1 << 25, b'w')),
        json!({ "limit": big }),
        compression_decoded(&body),
    ));
    v.push(err(
        "compression: zstd single-segment frame of 2^25 + 1 bytes (window = content size, above 2^25)",
        k,
        zstd(&zstd_single_segment((1 << 25) + 1, b'w')),
        json!({ "limit": big }),
        INTEGRITY,
    ));

    let e = |name: &str, framed: Vec<u8>| err(&format!("compression: {name}"), k, framed, inputs.clone(), INTEGRITY);
    let abc = zstd_frame(17, &[ZBlock::Raw(b"abc")]);
    v.extend([
        e("empty plaintext (no method byte)", vec![]),
        e("unknown method 2", cat(&[&[2], b"abc"])),
        e("unknown method 255", cat(&[&[255], b"abc"])),
        e("method 0 over the limit", raw(&vec![0x61; limit + 1])),
        e("zstd bomb: 1 MiB of zeros", zstd(&zstd_bomb(8))),
        e("zstd one byte over the limit", zstd(&zstd_frame(17, &[ZBlock::Rle(0, limit as u32), ZBlock::Raw(b"!")]))),
        e("zstd method with an empty body", zstd(&[])),
        e("zstd trailing byte after the frame", zstd(&cat(&[&abc, &[0]]))),
        e("zstd two frames", zstd(&cat(&[&abc, &abc]))),
        e(
            "zstd truncated frame (last block missing)",
            zstd(&zstd_frame(17, &[ZBlock::Raw(b"abc"), ZBlock::Raw(b"def")])[..6 + 3 + 3]),
        ),
        e("zstd truncated inside the frame header", zstd(&abc[..5])),
        e("zstd bad magic", zstd(&mutate(&abc, |b| b[0] = 0x29))),
        e("zstd reserved block type", zstd(&zstd_frame(17, &[ZBlock::Reserved]))),
        e("zstd window of 2^26 bytes (above 2^25)", zstd(&zstd_frame(26, &[ZBlock::Raw(b"abc")]))),
        e(
            "zstd window of 2^26 bytes with a content size field of 3",
            zstd(&zstd_frame_with(&[0x80, 16 << 3, 3, 0, 0, 0], &[ZBlock::Raw(b"abc")])),
        ),
        e(
            "zstd window of 2^25 + 2^22 bytes (mantissa 1, above 2^25)",
            zstd(&zstd_frame_with(&[0x00, 15 << 3 | 1], &[ZBlock::Raw(b"abc")])),
        ),
        e("zstd lone skippable frame", zstd(&cat(&[&[0x50, 0x2a, 0x4d, 0x18], &3u32.to_le_bytes(), b"abc"]))),
        e(
            "zstd skippable frame before a zstd frame",
            zstd(&cat(&[&[0x50, 0x2a, 0x4d, 0x18], &3u32.to_le_bytes(), b"abc", &abc])),
        ),
        e("zstd content size field 4, output 3 bytes", zstd(&zstd_frame_with(&[0x20, 4], &[ZBlock::Raw(b"abc")]))),
        e("zstd content size field 2, output 3 bytes", zstd(&zstd_frame_with(&[0x20, 2], &[ZBlock::Raw(b"abc")]))),
        e("zstd content checksum mismatch", zstd(&mutate(&checked, |b| *b.last_mut().unwrap() ^= 1))),
        e("zstd frame needing dictionary 5", zstd(&zstd_frame_with(&[0x01, 7 << 3, 5], &[ZBlock::Raw(b"abc")]))),
    ]);
    v
}

// ---- chunker ------------------------------------------------------------------------------------

/// The chunker input: the first 64 KiB of the BLAKE3 XOF of "arca chunker test input".
pub fn chunker_input() -> Vec<u8> {
    let mut out = vec![0u8; CHUNKER_INPUT_LEN];
    blake3::Hasher::new().update(b"arca chunker test input").finalize_xof().fill(&mut out);
    out
}

fn chunker_vectors() -> Vec<Vector> {
    let k = "chunker";
    let input = chunker_input();
    let keys = keys();
    let small = |n| ChunkerParams { min_size: 64, avg_size: 256, max_size: 1024, normalization: n };
    let mid = ChunkerParams { min_size: 1024, avg_size: 4096, max_size: 16384, normalization: 2 };
    let cases: Vec<(&str, ChunkerParams, &[u8])> = vec![
        ("64 KiB, min 64 avg 256 max 1024, normalization 1", small(1), &input),
        ("64 KiB, min 1024 avg 4096 max 16384, normalization 2", mid, &input),
        ("first 4 KiB, normalization 0", small(0), &input[..4096]),
        ("first 4 KiB, normalization 3", small(3), &input[..4096]),
        ("100 bytes (one chunk, shorter than the minimum)", small(1), &input[..100]),
        ("exactly max_size bytes", small(1), &input[..1024]),
        ("empty input (no chunks)", small(1), &[]),
        ("4 KiB of zeros", small(1), &[0; 4096]),
    ];
    cases
        .into_iter()
        .map(|(name, p, data)| {
            let lengths = Chunker::new(&p, keys.gear().unwrap()).lengths(data);
            let mut inputs = chunker_params_json(&p);
            inputs["master_key"] = json!(hex(&MASTER));
            inputs["input"] = json!("hex; the 64 KiB input is the BLAKE3 XOF of \"arca chunker test input\"");
            ok(&format!("chunker: {name}"), k, data.to_vec(), inputs, chunks_json(&lengths))
        })
        .collect()
}

// ---- parity (format-spec/22-parity.md) ---------------------------------------------------------

/// Byte `j` of 64-byte shard `i` is `(7i + j) mod 251`: the example of §22.10.
fn parity_example_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|n| ((7 * (n / 64) + n % 64) % 251) as u8).collect()
}

/// The decoded fields of a parity file, and what rebuilding `damaged` with it gives.
pub fn parity_json(p: &fparity::Parity, damaged: Option<&[u8]>) -> Value {
    let g = p.fixed.geometry;
    let segments: Vec<Value> = (0..g.segments).map(|i| json!(g.segment(i))).collect();
    let mut d = json!({
        "protected_kind": p.fixed.kind as u8,
        "protected_id": p.fixed.id.to_hex(),
        "protected_len": g.len,
        "shard_size": g.shard,
        "segments": segments,
        "recovery_per_segment": g.recovery,
        "file_len": g.file_len(),
        "table_ok": p.table_ok,
    });
    if let Some(damaged) = damaged {
        let (rebuilt, damage) = fparity::repair(p, damaged);
        d["rebuilt"] = rebuilt.ok().map(|b| hex(&b)).into();
        d["damaged_data_shards"] = damage.data_shards.into();
        d["damaged_recovery_shards"] = damage.recovery_shards.into();
    }
    d
}

/// (name, protected kind, protected bytes, an explicit geometry or the writer's at `bp`, bp).
type ParityCase = (&'static str, FileKind, Vec<u8>, Option<Geometry>, u16);

fn parity_vectors() -> Vec<Vector> {
    let k = "parity";
    let mut v = Vec::new();
    // (name, kind, protected bytes, geometry or None for the writer's at `bp`, bp)
    let example = parity_example_bytes(192);
    let geo = |len: u64, shard: u32, segments: u32, recovery: u32| Some(Geometry { shard, len, segments, recovery });
    let pack300k = random_file_bytes(300_000);
    let cases: Vec<ParityCase> = vec![
        ("k = 3, m = 2, S = 64 (the example of section 22.10)", FileKind::Pack, example.clone(), geo(192, 64, 1, 2), 0),
        (
            "writer geometry of a 192-byte snapshot (100%: m = k = 3)",
            FileKind::Snapshot,
            example.clone(),
            None,
            fparity::FULL,
        ),
        ("writer geometry of a 300 000-byte pack at 5% (S = 4096, m = 3)", FileKind::Pack, pack300k.clone(), None, 500),
        (
            "writer geometry of a 100-byte index file (one short shard)",
            FileKind::Index,
            parity_example_bytes(100),
            None,
            fparity::FULL,
        ),
        ("two segments of 8 shards, m = 2", FileKind::Pack, parity_example_bytes(1000), geo(1000, 64, 2, 2), 0),
        (
            "four unbalanced segments (5, 5, 4, 4 shards), m = 3",
            FileKind::Pack,
            parity_example_bytes(1100),
            geo(1100, 64, 4, 3),
            0,
        ),
        ("shard size 128, m = k = 4", FileKind::Index, parity_example_bytes(500), geo(500, 128, 1, 4), 0),
    ];
    let mut files = Vec::new();
    for (name, kind, bytes, g, bp) in &cases {
        let id = Id::of_file_bytes(bytes);
        let g = g.unwrap_or_else(|| Geometry::plan(bytes.len() as u64, *bp));
        let p = fparity::encode_with(*kind, &id, bytes, g).expect("a valid vector geometry");
        // A large protected file is given as its recipe (BLAKE3 derive-key XOF), not its hex.
        let mut inputs = if bytes.len() > 100_000 {
            assert_eq!(*bytes, random_file_bytes(bytes.len()));
            json!({"protected_xof": {"context": XOF_CONTEXT, "input": "pack", "len": bytes.len()}})
        } else {
            json!({"protected": hex(bytes)})
        };
        if g == Geometry::plan(bytes.len() as u64, if *bp == 0 { 500 } else { *bp }) {
            inputs["writer_basis_points"] = (if *bp == 0 { 500 } else { *bp }).into();
        }
        let decoded = parity_json(&fparity::Parity::decode(&p, "vector").unwrap(), None);
        v.push(ok(&format!("parity: {name}"), k, p.clone(), inputs, decoded));
        files.push((p, bytes.clone()));
    }
    // Repairs: the parity file is valid; `damaged` is the protected file as read.
    let repair = |v: &mut Vec<Vector>, name: &str, p: &[u8], damaged: Vec<u8>| {
        let inputs = json!({"damaged": hex(&damaged)});
        let decoded = parity_json(&fparity::Parity::decode_for_repair(p, "vector").unwrap(), Some(&damaged));
        v.push(ok(&format!("parity repair: {name}"), k, p.to_vec(), inputs, decoded));
    };
    // A 5 000-byte file at 5%: S = 128, 40 shards, 33 recovery shards (the one-sector minimum).
    let small = random_file_bytes(5_000);
    let g5k = Geometry::plan(5_000, 500);
    assert_eq!((g5k.shard, g5k.data_shards(), g5k.recovery), (128, 40, 33));
    let p5k = fparity::encode_file(FileKind::Index, &Id::of_file_bytes(&small), &small, 500);
    let b5k = &small;
    repair(&mut v, "one flipped bit", &p5k, mutate(b5k, |b| b[2_500] ^= 0x10));
    repair(
        &mut v,
        "a zeroed 4 KiB range at an unaligned offset (33 shards)",
        &p5k,
        mutate(b5k, |b| b[100..4_196].fill(0)),
    );
    repair(&mut v, "the last 2 000 bytes lost", &p5k, b5k[..3_000].to_vec());
    repair(&mut v, "bytes appended past the end are ignored", &p5k, cat(&[b5k, b"tail"]));
    repair(
        &mut v,
        "34 damaged shards, 33 recovery shards: not repairable",
        &p5k,
        mutate(b5k, |b| b[0..34 * 128].fill(0)),
    );
    let table_at = g5k.table_offset() as usize + 16 * 7;
    repair(
        &mut v,
        "a damaged checksum table is still used (section 22.7)",
        &mutate(&p5k, |b| b[table_at] ^= 1),
        mutate(b5k, |b| b[3_000] ^= 1),
    );
    let (p192, _) = &files[1];
    repair(&mut v, "a missing snapshot restored whole from 100% parity", p192, Vec::new());
    let (pex, bex) = &files[0];
    repair(
        &mut v,
        "one data shard and one recovery shard damaged, m = 2",
        &mutate(pex, |b| b[fparity::FIXED_LEN + 64 + 3] ^= 1),
        mutate(bex, |b| b[70] ^= 1),
    );
    repair(
        &mut v,
        "two data shards and one recovery shard damaged, m = 2: not repairable",
        &mutate(pex, |b| b[fparity::FIXED_LEN + 5] ^= 1),
        mutate(bex, |b| {
            b[0] ^= 1;
            b[130] ^= 1;
        }),
    );

    // A repair reads the parity file with steps 1–10 of section 22.2, not step 11 (section 22.7).
    repair(
        &mut v,
        "only the table hash damaged (step 11 fails, steps 1–10 pass): the table is used",
        &mutate(pex, |b| *b.last_mut().unwrap() ^= 1),
        mutate(bex, |b| b[70] ^= 1),
    );
    v.push(err(
        "parity repair: one byte appended to the parity file (step 10) is rejected",
        k,
        cat(&[pex, &[0]]),
        json!({"damaged": hex(&mutate(bex, |b| b[70] ^= 1))}),
        INTEGRITY,
    ));

    let (valid, _) = files[4].clone();
    let inputs = json!({});
    header_failures(&mut v, k, &valid, &inputs, FileKind::Parity);
    let e = |name: &str, bytes: Vec<u8>| err(&format!("parity: {name}"), k, bytes, json!({}), INTEGRITY);
    let fixed = |f: &dyn Fn(&mut Vec<u8>)| mutate(&valid[..fparity::FIXED_LEN], |b| f(b));
    let put32 = |b: &mut Vec<u8>, at: usize, x: u32| b[at..at + 4].copy_from_slice(&x.to_le_bytes());
    let put64 = |b: &mut Vec<u8>, at: usize, x: u64| b[at..at + 8].copy_from_slice(&x.to_le_bytes());
    v.extend([
        e("truncated: last byte removed", valid[..valid.len() - 1].to_vec()),
        e("truncated: fixed part only", valid[..fparity::FIXED_LEN].to_vec()),
        e("truncated inside the fixed part (63 bytes)", valid[..fparity::FIXED_LEN - 1].to_vec()),
        e("one byte appended", cat(&[&valid, &[0]])),
        e("protected kind 1 (config)", mutate(&valid, |b| b[8] = 1)),
        e("protected kind 6 (lock)", mutate(&valid, |b| b[8] = 6)),
        e("protected kind 8 (parity)", mutate(&valid, |b| b[8] = 8)),
        e("nonzero reserved byte 9", mutate(&valid, |b| b[9] = 1)),
        e("nonzero reserved byte 11", mutate(&valid, |b| b[11] = 0x80)),
        e(
            "flipped checksum: table hash mismatch",
            mutate(&valid, |b| {
                let at = b.len() - fparity::TABLE_HASH_LEN - 3;
                b[at] ^= 1
            }),
        ),
        e("flipped protected ID: table hash mismatch", mutate(&valid, |b| b[20] ^= 1)),
        e("flipped table hash", mutate(&valid, |b| *b.last_mut().unwrap() ^= 1)),
        // Fixed-part rules come before the length check: 64 bytes suffice.
        e("shard size 0", fixed(&|b| put32(b, 12, 0))),
        e("shard size 32", fixed(&|b| put32(b, 12, 32))),
        e("shard size 100 (not a multiple of 64)", fixed(&|b| put32(b, 12, 100))),
        e("shard size 131072", fixed(&|b| put32(b, 12, 131_072))),
        e("protected length 0", fixed(&|b| put64(b, 48, 0))),
        e("protected length 2^32", fixed(&|b| put64(b, 48, 1 << 32))),
        e(
            "an index file longer than an index file can be",
            fixed(&|b| {
                b[8] = FileKind::Index as u8;
                put64(b, 48, fparity::max_protected_len(FileKind::Index) + 1);
                put32(b, 12, 65_536);
            }),
        ),
        e("segments 0", fixed(&|b| put32(b, 56, 0))),
        e("segments 17 for 16 data shards", fixed(&|b| put32(b, 56, 17))),
        e("recovery 0", fixed(&|b| put32(b, 60, 0))),
        e("recovery 9 for segments of 8 data shards", fixed(&|b| put32(b, 60, 9))),
        e(
            "a segment of 32769 data shards",
            fixed(&|b| {
                put64(b, 48, 32_769 * 64);
                put32(b, 56, 1);
                put32(b, 60, 1);
            }),
        ),
    ]);
    v
}

/// The BLAKE3 derive-key context of the large protected files of the parity vectors.
pub const XOF_CONTEXT: &str = "arca vector parity";

/// `len` bytes of BLAKE3's XOF, keyed by deriving from [`XOF_CONTEXT`], over the input `pack`.
pub fn random_file_bytes(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new_derive_key(XOF_CONTEXT).update(b"pack").finalize_xof().fill(&mut out);
    out
}

fn parity_policy_vectors() -> Vec<Vector> {
    let k = "parity_policy";
    let kind = FileKind::ParityPolicy;
    let mut v = Vec::new();
    for (name, bp) in [("5% (the default)", 500u16), ("off", 0), ("100%", 10_000), ("0.01%", 1)] {
        let framed = raw(&fparity::encode_policy(bp));
        let file = seal_file(kind, &framed, &format!("parity_policy: {name}"));
        v.push(ok(&format!("parity_policy: {name}"), k, file, file_inputs(&framed), json!({"basis_points": bp})));
    }
    let framed = raw(&fparity::encode_policy(500));
    let valid = seal_file(kind, &framed, "parity_policy: valid");
    let inputs = file_inputs(&framed);
    header_failures(&mut v, k, &valid, &inputs, kind);
    sealed_failures(&mut v, k, kind, &framed, &valid, &inputs);
    let mut bad = |name: &str, body: Vec<u8>| {
        let framed = raw(&body);
        let n = format!("parity_policy: {name}");
        v.push(err(&n, k, seal_file(kind, &framed, &n), file_inputs(&framed), INTEGRITY));
    };
    bad("10001 basis points", 10_001u16.to_le_bytes().to_vec());
    bad("65535 basis points", vec![0xff, 0xff]);
    bad("truncated: body of 1 byte", vec![0xf4]);
    bad("body of 3 bytes", vec![0xf4, 0x01, 0x00]);
    bad("empty body", vec![]);
    v
}

// ---- the serve protocol (format-spec/23) ----------------------------------------------------------

// ---- the Reed-Solomon tables (format-spec/22-parity.md §22.6) -----------------------------------

/// The field polynomial `p(x)` of §22.6.3.1.
pub const GF_POLYNOMIAL: u32 = 0x1002D;

/// The Cantor basis `V` of §22.6.3.2.
pub const CANTOR_BASIS: [u16; 16] = [
    0x0001, 0xACCA, 0x3C0E, 0x163E, 0xC582, 0xED2E, 0x914C, 0x4012, 0x6C98, 0x10D8, 0x6A72, 0xB900, 0xFDB8, 0xFB34,
    0xFF38, 0x991E,
];

/// `ADDMOD` of §22.6.3.4: addition modulo 65535, 65535 being a second spelling of 0.
fn addmod(a: u16, b: u16) -> u16 {
    let s = u32::from(a) + u32::from(b);
    (s + (s >> 16)) as u16
}

/// `SUBMOD` of §22.6.7.2: subtraction modulo 65535, spelled as `ADDMOD` spells.
fn submod(a: u16, b: u16) -> u16 {
    let d = u32::from(a).wrapping_sub(u32::from(b));
    d.wrapping_add(d >> 16) as u16
}

/// `EXP` and `LOG`, built as §22.6.3.3 says.
pub fn rs_exp_log() -> (Vec<u16>, Vec<u16>) {
    let mut plog = vec![0u16; 65536];
    let mut state = 1u32;
    for i in 0..65535u32 {
        plog[state as usize] = i as u16;
        state <<= 1;
        if state >= 65536 {
            state ^= GF_POLYNOMIAL;
        }
    }
    plog[0] = 65535;
    let mut phi = vec![0u16; 65536];
    for (b, v) in CANTOR_BASIS.iter().enumerate() {
        for j in 0..1usize << b {
            phi[j + (1 << b)] = phi[j] ^ v;
        }
    }
    let log: Vec<u16> = phi.iter().map(|&p| plog[p as usize]).collect();
    let mut exp = vec![0u16; 65536];
    for (u, &l) in log.iter().enumerate() {
        exp[l as usize] = u as u16;
    }
    exp[65535] = exp[0];
    (exp, log)
}

/// `SKEW`, built as §22.6.5.1 says.
pub fn rs_skew(exp: &[u16], log: &[u16]) -> Vec<u16> {
    let mullog = |u: u16, l: u16| if u == 0 { 0 } else { exp[addmod(log[u as usize], l) as usize] };
    let mut skew = vec![0u16; 65535];
    let mut t: Vec<u16> = (1..16).map(|i| 1u16 << i).collect();
    for s in 0..15 {
        skew[(1 << s) - 1] = 0;
        for (i, &ti) in t.iter().enumerate().skip(s) {
            let w = 1usize << (i + 1);
            for j in ((1usize << s) - 1..w).step_by(1 << (s + 1)) {
                skew[j + w] = skew[j] ^ ti;
            }
        }
        t[s] = 65535 - log[mullog(t[s], log[(t[s] ^ 1) as usize]) as usize];
        let ts = t[s];
        for ti in t.iter_mut().skip(s + 1) {
            *ti = mullog(*ti, addmod(log[(*ti ^ 1) as usize], ts));
        }
    }
    skew.iter().map(|&x| log[x as usize]).collect()
}

/// `LOG_WALSH = FWHT(LOG')` of §22.6.7.2, with its `ADDMOD`/`SUBMOD` arithmetic.
pub fn rs_log_walsh(log: &[u16]) -> Vec<u16> {
    let mut x = log.to_vec();
    x[0] = 0;
    let mut dist = 1;
    while dist < x.len() {
        for r in (0..x.len()).step_by(2 * dist) {
            for i in r..r + dist {
                (x[i], x[i + dist]) = (addmod(x[i], x[i + dist]), submod(x[i], x[i + dist]));
            }
        }
        dist *= 2;
    }
    x
}

/// The check values of the tables: leading entries and the BLAKE3 of each as u16 LE; LOG_WALSH
/// also fully reduced (every 65535 spelled 0), as arithmetic modulo 65535 without the
/// `ADDMOD`/`SUBMOD` spelling gives it.
pub fn rs_tables_json(exp: &[u16], log: &[u16], skew: &[u16], log_walsh: &[u16]) -> Value {
    let hash =
        |t: &[u16]| blake3::hash(&t.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).to_hex().to_string();
    let reduced: Vec<u16> = log_walsh.iter().map(|&x| x % 65535).collect();
    json!({
        "exp_first8": exp[..8], "exp_blake3": hash(exp),
        "log_first8": log[..8], "log_blake3": hash(log),
        "skew_first16": skew[..16], "skew_blake3": hash(skew),
        "log_walsh_first8": log_walsh[..8], "log_walsh_blake3": hash(log_walsh),
        "log_walsh_reduced_first8": reduced[..8], "log_walsh_reduced_blake3": hash(&reduced),
    })
}

fn rs_tables_vectors() -> Vec<Vector> {
    let (exp, log) = rs_exp_log();
    let skew = rs_skew(&exp, &log);
    let basis: Vec<u8> = CANTOR_BASIS.iter().flat_map(|v| v.to_le_bytes()).collect();
    vec![ok(
        "rs_tables: EXP, LOG, SKEW and LOG_WALSH of section 22.6 (LOG_WALSH as ADDMOD/SUBMOD spell it, and fully reduced)",
        "rs_tables",
        basis,
        json!({"polynomial": GF_POLYNOMIAL}),
        rs_tables_json(&exp, &log, &skew, &rs_log_walsh(&log)),
    )]
}

// ---- a repair run (format-spec/22-parity.md §22.7) ----------------------------------------------

/// The path of a repository file (format-spec/04-repository-layout.md).
pub fn repo_path(kind: FileKind, id: &Id) -> String {
    let h = id.to_hex();
    match kind {
        FileKind::Pack => format!("data/{}/{h}", &h[..2]),
        FileKind::Index => format!("index/{h}"),
        FileKind::Snapshot => format!("snapshots/{h}"),
        _ => format!("parity/{}/{h}", &h[..2]),
    }
}

/// One backup in miniature: a pack holding the root tree (one empty file `name`), the index file
/// naming it, and the snapshot; (kind, bytes) each.
fn mini_backup(name: &[u8], label: &str) -> [(FileKind, Vec<u8>); 3] {
    let keys = keys();
    let plain = Tree { nodes: vec![node(name, empty_file())] }.encode();
    let tree = keys.blob_id(&plain);
    let env = envelope(BlobType::Tree, &tree, &raw(&plain), &format!("{label} tree"));
    let toc =
        [TocEntry { blob_type: BlobType::Tree, id: tree, stored_len: env.len() as u32, plain_len: plain.len() as u32 }];
    let pack = assemble_pack(&[env], &pack::encode_toc(&toc), &REPO, label);
    let record = IndexPack {
        id: Id::of_file_bytes(&pack),
        size: pack.len() as u32,
        ephemeral: None,
        blobs: pack::locate_blobs(&toc),
    };
    let index = seal_file(FileKind::Index, &raw(&findex::encode(&[record])), &format!("{label} index"));
    let snap = Snapshot {
        time: TIME_NS,
        tree,
        paths: vec![b"/".to_vec()],
        hostname: "h".into(),
        username: String::new(),
        uid: 0,
        gid: 0,
        tags: vec![],
        parent: None,
        program: "arca".into(),
        summary: Summary::default(),
        original: None,
    };
    let snapshot = seal_file(FileKind::Snapshot, &raw(&snap.encode()), &format!("{label} snapshot"));
    [(FileKind::Pack, pack), (FileKind::Index, index), (FileKind::Snapshot, snapshot)]
}

/// The config and key file that make the files of a `repair_run` vector a repository (master key
/// and repository ID of the vectors, password [`PASSWORD`]): (path, bytes).
pub fn repository_frame() -> Vec<(String, Vec<u8>)> {
    let key = valid_key_file().encode();
    vec![
        ("config".into(), seal_file(FileKind::Config, &raw(&default_config().encode()), "repair run config")),
        (format!("keys/{}", Id::of_file_bytes(&key).to_hex()), key),
    ]
}

fn repair_run_vectors() -> Vec<Vector> {
    let mut files = serde_json::Map::new();
    let mut put = |kind: FileKind, bytes: &[u8], keep: Keep| {
        let id = Id::of_file_bytes(bytes);
        let bp = if kind == FileKind::Snapshot { fparity::FULL } else { fparity::DEFAULT_OVERHEAD };
        let parity = fparity::encode_file(kind, &id, bytes, bp);
        match keep {
            Keep::File => {}
            Keep::Parity | Keep::Damaged => {
                files.insert(repo_path(FileKind::Parity, &id), hex(&parity).into());
            }
        }
        match keep {
            Keep::File => files.insert(repo_path(kind, &id), hex(bytes).into()),
            Keep::Damaged => files.insert(repo_path(kind, &id), hex(&mutate(bytes, |b| b[40] ^= 1)).into()),
            Keep::Parity => None,
        };
        repo_path(kind, &id)
    };
    // Backup 1: its index file damaged, its snapshot missing; the root tree is listed only in
    // the damaged index file.
    let [(_, p1), (_, i1), (_, s1)] = mini_backup(b"a", "repair run 1");
    put(FileKind::Pack, &p1, Keep::File);
    let i1 = put(FileKind::Index, &i1, Keep::Damaged);
    let s1 = put(FileKind::Snapshot, &s1, Keep::Parity);
    // Backup 2: its index file and its snapshot missing; its pack present.
    let [(_, p2), (_, i2), (_, s2)] = mini_backup(b"b", "repair run 2");
    put(FileKind::Pack, &p2, Keep::File);
    let i2 = put(FileKind::Index, &i2, Keep::Parity);
    let s2 = put(FileKind::Snapshot, &s2, Keep::Parity);
    // Backup 3: only its snapshot's parity is left (its pack and index file are gone): removed
    // on purpose by a writer that does not know parity, not restored.
    let [_, _, (_, s3)] = mini_backup(b"c", "repair run 3");
    let s3 = put(FileKind::Snapshot, &s3, Keep::Parity);
    let mut restored = vec![i2, s1, s2];
    restored.sort();
    vec![ok(
        "repair_run: a damaged index file is repaired and a missing one restored before missing snapshots \
         are judged by the index (one run restores both snapshots)",
        "repair_run",
        Vec::new(),
        json!({"master_key": hex(&MASTER), "repo_id": hex(&REPO), "files": files}),
        json!({"repaired": [i1], "restored": restored, "not_restored": [s3]}),
    )]
}

/// What a `repair_run` vector keeps of a file: the file, the file and its parity with the file
/// damaged, or only the parity (the file is missing).
#[derive(Clone, Copy)]
enum Keep {
    File,
    Damaged,
    Parity,
}

/// A request's frame body and its decoded fields.
fn serve_ok_request(name: &str, r: arca::format::serve::Request) -> Vector {
    ok(name, "serve_request", r.encode(), json!({}), serve_json(&r))
}

/// The decoded fields of a message, as the vectors state them.
pub fn serve_json(m: &impl serde::Serialize) -> Value {
    serde_json::to_value(m).expect("a serve message as JSON")
}

fn serve_request_vectors() -> Vec<Vector> {
    use arca::backend::FileType;
    use arca::format::serve::{Request, MAX_DATA};
    let k = "serve_request";
    let id = hex(&[0x3f; 32]);
    let mut v = vec![
        serve_ok_request("serve_request: hello", Request::Hello { version: 1 }),
        serve_ok_request("serve_request: hello of a later version", Request::Hello { version: 2 }),
        serve_ok_request("serve_request: create", Request::Create),
        serve_ok_request("serve_request: exists", Request::Exists { t: FileType::Snapshot, name: id.clone() }),
        serve_ok_request(
            "serve_request: read_at",
            Request::ReadAt { t: FileType::Pack, name: id.clone(), offset: 1 << 33, len: MAX_DATA as u32 },
        ),
        serve_ok_request(
            "serve_request: write once",
            Request::Write { t: FileType::Lock, name: id.clone(), replace: false, data: b"hello".to_vec() },
        ),
        serve_ok_request(
            "serve_request: replace the config (empty name)",
            Request::Write { t: FileType::Config, name: String::new(), replace: true, data: vec![0; 3] },
        ),
        serve_ok_request("serve_request: stage", Request::Stage { t: FileType::Pack }),
        serve_ok_request("serve_request: append", Request::Append { handle: 7, data: vec![1, 2, 3] }),
        serve_ok_request("serve_request: publish", Request::Publish { handle: 7, name: id.clone(), replace: false }),
        serve_ok_request("serve_request: discard", Request::Discard { handle: u32::MAX }),
        serve_ok_request("serve_request: list", Request::List { t: FileType::Parity, start: 32_768 }),
        serve_ok_request("serve_request: remove", Request::Remove { t: FileType::Lock, name: id.clone() }),
        serve_ok_request(
            "serve_request: sync_name",
            Request::SyncName { t: FileType::ParityPolicy, name: String::new() },
        ),
        serve_ok_request("serve_request: clean_tmp", Request::CleanTmp { max_age_secs: 86_400 }),
        serve_ok_request("serve_request: stray", Request::Stray { start: 0 }),
        serve_ok_request("serve_request: free_space", Request::FreeSpace),
    ];
    let exists = Request::Exists { t: FileType::Snapshot, name: id.clone() }.encode();
    let mut bad =
        |name: &str, body: Vec<u8>| v.push(err(&format!("serve_request: {name}"), k, body, json!({}), INTEGRITY));
    bad("empty body", vec![]);
    bad("unknown request 0x10", vec![0x10]);
    bad("hello with the wrong magic", cat(&[&[0x01], b"arcasrv\r", &[1]]));
    bad("hello truncated", cat(&[&[0x01], b"arcasrv\n"]));
    bad("create with a trailing byte", vec![0x02, 0x00]);
    bad("exists truncated by one byte", exists[..exists.len() - 1].to_vec());
    bad("exists with a trailing byte", cat(&[&exists, &[0]]));
    bad("a name that is a path", cat(&[&[0x03, 4, 9], b"../config"]));
    bad("a name in uppercase hex", cat(&[&[0x03, 4, 64], hex(&[0xab; 32]).to_uppercase().as_bytes()]));
    bad("a name of 63 digits", cat(&[&[0x03, 4, 63], &id.as_bytes()[..63]]));
    bad("a name for the config", cat(&[&[0x03, 0, 6], b"config"]));
    bad("an unknown file type 9", cat(&[&[0x03, 9, 64], id.as_bytes()]));
    let read = |len: u32| cat(&[&[0x04, 2, 64], id.as_bytes(), &0u64.to_le_bytes(), &len.to_le_bytes()]);
    bad("a read of 2^24 + 1 bytes", read(MAX_DATA as u32 + 1));
    let write =
        |flag: u8, len: u32, data: &[u8]| cat(&[&[0x05, 5, 64], id.as_bytes(), &[flag], &len.to_le_bytes(), data]);
    bad("a replace flag of 2", write(2, 1, &[0]));
    bad("data shorter than its length", write(0, 5, b"abcd"));
    bad("data longer than 2^24 bytes", write(0, MAX_DATA as u32 + 1, b""));
    bad("publish under a name that is not an object name", cat(&[&[0x08], &7u32.to_le_bytes(), &[6], b"config", &[0]]));
    v
}

fn serve_response_vectors() -> Vec<Vector> {
    use arca::format::serve::{ErrorClass, Response, MAX_PAGE};
    let k = "serve_response";
    let okr = |name: &str, r: Response| ok(name, k, r.encode(), json!({}), serve_json(&r));
    let mut v = vec![
        okr("serve_response: hello, append-only", Response::Hello { version: 1, append_only: true }),
        okr("serve_response: ok", Response::Ok),
        okr("serve_response: bool", Response::Bool { value: true }),
        okr("serve_response: data", Response::Data { file_len: 10, data: vec![7, 8, 9] }),
        okr("serve_response: data past the end", Response::Data { file_len: 10, data: vec![] }),
        okr("serve_response: handle", Response::Handle { handle: 7 }),
        okr(
            "serve_response: page",
            Response::Page { more: true, entries: vec![(hex(&[0x3f; 32]), 123), ("3f/stray".into(), 0)] },
        ),
        okr("serve_response: empty last page", Response::Page { more: false, entries: vec![] }),
        okr("serve_response: count", Response::Count { count: 5 }),
        okr("serve_response: space unknown", Response::Space { space: None }),
        okr("serve_response: space", Response::Space { space: Some((1 << 40, 1 << 41)) }),
        okr(
            "serve_response: error",
            Response::Error {
                class: ErrorClass::Refused,
                message: "the server is append-only: removing snapshot 3f3f… is refused".into(),
            },
        ),
    ];
    let mut bad =
        |name: &str, body: Vec<u8>| v.push(err(&format!("serve_response: {name}"), k, body, json!({}), INTEGRITY));
    bad("unknown response 0x89", vec![0x89]);
    bad("a request code", vec![0x02]);
    bad("bool 2", vec![0x83, 2]);
    bad("a page of more entries than allowed", cat(&[&[0x86, 0], &(MAX_PAGE as u32 + 1).to_le_bytes()]));
    bad("a page entry with an empty name", cat(&[&[0x86, 0], &1u32.to_le_bytes(), &[0], &0u64.to_le_bytes()]));
    bad("a page shorter than its count", cat(&[&[0x86, 0], &2u32.to_le_bytes(), &[1, b'a'], &0u64.to_le_bytes()]));
    bad("error class 0", cat(&[&[0xe0, 0], &0u16.to_le_bytes()]));
    bad("error class 7", cat(&[&[0xe0, 7], &0u16.to_le_bytes()]));
    bad("an error message of 4097 bytes", cat(&[&[0xe0, 2], &4097u16.to_le_bytes(), &[b'x'; 4097]]));
    bad("an error message that is not UTF-8", cat(&[&[0xe0, 2], &1u16.to_le_bytes(), &[0xff]]));
    bad("space with a flag of 2", vec![0x88, 2]);
    bad("data longer than 2^24 bytes", cat(&[&[0x84], &0u64.to_le_bytes(), &(1u32 << 24 | 1).to_le_bytes()]));
    v
}

// ---- key roles (section 24) -----------------------------------------------------------------------

/// The ephemeral secret of the objects sealed to the read key in the vectors.
pub const EPHEMERAL_SECRET: [u8; 32] = [0x21; 32];

/// The restore key file of the vectors.
pub fn restore_key_file() -> KeyFile {
    let secret = kdf::restore_secret(&REPO, &keys().restore_secrets().unwrap());
    kdf::seal_secret(
        crypto::Role::Restore,
        &secret,
        PASSWORD.as_bytes(),
        KDF,
        "r",
        TIME_S,
        SALT,
        nonce("roles: restore key"),
    )
    .unwrap()
}

/// The `config` file a backup key of the vectors is bound to, and that key file.
pub fn backup_key_file() -> (Vec<u8>, KeyFile) {
    let mut c = Config::new(REPO);
    c.required_features = arca::format::config::FEATURE_ROLES;
    let config_file = seal_file(FileKind::Config, &raw(&c.encode()), "roles: config");
    let binding = kdf::BackupBinding {
        config_hash: *blake3::hash(&config_file).as_bytes(),
        cache_key: [0x33; 32],
        config_body: c.encode(),
    };
    let k = keys();
    let secret = kdf::backup_secret(&REPO, &k.backup_secrets(&MasterKey::from_bytes(MASTER)), &binding);
    let kf = kdf::seal_secret(
        crypto::Role::Backup,
        &secret,
        PASSWORD.as_bytes(),
        KDF,
        "b",
        TIME_S,
        SALT,
        nonce("roles: backup key"),
    )
    .unwrap();
    (config_file, kf)
}

/// `E || sealed` of a file of `kind` sealed to the read key with [`EPHEMERAL_SECRET`].
fn seal_to_reader(kind: FileKind, framed: &[u8], e: [u8; 32], label: &str) -> Vec<u8> {
    let hdr = header::encode_sealed(kind, header::Sealing::Reader);
    let (ephemeral, key) = keys().sealed_key_with(e);
    cat(&[&hdr, &ephemeral, &key.seal_with_nonce(&nonce(label), framed, &header::file_ad(&hdr, &REPO))])
}

/// A file of `kind` sealed under `K_meta`.
fn seal_meta(kind: FileKind, framed: &[u8], label: &str) -> Vec<u8> {
    let hdr = header::encode_sealed(kind, header::Sealing::Meta);
    cat(&[&hdr, &keys().meta().seal_with_nonce(&nonce(label), framed, &header::file_ad(&hdr, &REPO))])
}

/// The pack of `hello` sealed to the read key: header, `E`, envelope, sealed TOC, trailer.
pub fn reader_pack() -> (Vec<u8>, TocEntry) {
    let k = keys();
    let (ephemeral, key) = k.sealed_key_with(EPHEMERAL_SECRET);
    let id = k.blob_id(b"hello");
    let ad = blob::blob_ad(BlobType::Data, &id, &REPO);
    let env = key.seal_with_nonce(&nonce("roles: pack blob"), &raw(b"hello"), &ad);
    let entry = TocEntry { blob_type: BlobType::Data, id, stored_len: env.len() as u32, plain_len: 5 };
    let toc = key.seal_with_nonce(
        &nonce("roles: pack toc"),
        &pack::encode_toc(&[entry]),
        &pack::toc_ad_for(Some(&ephemeral), &REPO),
    );
    let pack = cat(&[&pack::header_for(Some(&ephemeral)), &ephemeral, &env, &toc, &(toc.len() as u32).to_le_bytes()]);
    (pack, entry)
}

/// The keys of section 24.1 for the test master key, and one sealed object key.
pub fn read_key_json() -> Value {
    let k = keys();
    let read_secret = blake3::derive_key(crypto::CTX_READ_KEY, &MASTER);
    let (ephemeral, key) = k.sealed_key_with(EPHEMERAL_SECRET);
    json!({
        "metadata_key": hex(k.meta().as_bytes()),
        "read_secret": hex(&read_secret),
        "read_public": hex(k.read_public()),
        "ephemeral_public": hex(&ephemeral),
        "shared": hex(&x25519_dalek::x25519(EPHEMERAL_SECRET, *k.read_public())),
        "object_key": hex(key.as_bytes()),
    })
}

/// A role key file's header fields and what it opens to.
pub fn role_key_json(kf: &KeyFile, secret: &[u8]) -> Value {
    let mut v = key_json(kf);
    v["role"] = json!(kf.role.name());
    v["secret"] = json!(hex(&secret[..secret.len().min(192)]));
    v["secret_len"] = json!(secret.len());
    v
}

fn roles_vectors() -> Vec<Vector> {
    let k = "roles";
    let mut v = Vec::new();
    let read = json!({"procedure": "read_key", "ephemeral_secret": hex(&EPHEMERAL_SECRET)});
    v.push(ok(
        "roles: read key and a sealed object key of the test master key",
        k,
        MASTER.to_vec(),
        read,
        read_key_json(),
    ));

    // Key files.
    let kin = json!({"procedure": "key_file", "password": PASSWORD});
    let restore = restore_key_file();
    let rsecret = kdf::restore_secret(&REPO, &keys().restore_secrets().unwrap());
    v.push(ok("roles: restore key file", k, restore.encode(), kin.clone(), role_key_json(&restore, &rsecret)));
    let (config_file, backup) = backup_key_file();
    let mut bin = kin.clone();
    bin["config_file"] = json!(hex(&config_file));
    let (_, bsecret) = {
        let kf = &backup;
        let kek = kdf::derive_kek(PASSWORD.as_bytes(), &kf.salt, &kf.kdf).unwrap();
        let sealed = cat(&[&kf.nonce, &kf.ciphertext]);
        (0, crypto::open_with(&kek, &sealed, &kf.associated_data(), "vector").unwrap())
    };
    v.push(ok(
        "roles: backup key file, with its config file",
        k,
        backup.encode(),
        bin,
        role_key_json(&backup, &bsecret),
    ));
    let r = restore.encode();
    let s_at = arca::format::key::LABEL_AT + restore.label.len();
    let e = |name: &str, bytes: Vec<u8>, inputs: &Value, class| {
        err(&format!("{k}: {name}"), k, bytes, inputs.clone(), class)
    };
    v.extend([
        e("restore key with a secret length of 161", mutate(&r, |b| b[s_at] = 161), &kin, INTEGRITY),
        e("restore key file claiming the backup role (byte 6 = 01)", mutate(&r, |b| b[6] = 1), &kin, INTEGRITY),
        e("key file with role byte 03", mutate(&r, |b| b[6] = 3), &kin, INTEGRITY),
        e(
            "restore key file with its label changed (authenticated)",
            mutate(&r, |b| b[s_at - 1] ^= 1),
            &kin,
            WRONG_PASSWORD,
        ),
        e("restore key file with one byte more", cat(&[&r, &[0]]), &kin, INTEGRITY),
    ]);

    // Files sealed to the read key or under K_meta.
    let snap = raw(&valid_snapshot().encode());
    let sin = |kind: &str, roles: bool| json!({"procedure": "sealed_file", "file_kind": kind, "master_key": hex(&MASTER), "repo_id": hex(&REPO), "roles": roles});
    let sealed_snap = seal_to_reader(FileKind::Snapshot, &snap, EPHEMERAL_SECRET, "roles: snapshot");
    v.push(ok(
        "roles: snapshot sealed to the read key",
        k,
        sealed_snap.clone(),
        sin("snapshot", true),
        snapshot_json(&valid_snapshot()),
    ));
    let (pack_bytes, entry) = reader_pack();
    let (ephemeral, _) = keys().sealed_key_with(EPHEMERAL_SECRET);
    let record = IndexPack {
        id: Id::of_file_bytes(&pack_bytes),
        size: pack_bytes.len() as u32,
        ephemeral: Some(ephemeral),
        blobs: pack::locate_blobs_from(&[entry], 40),
    };
    let other = IndexPack { id: Id([0x33; 32]), size: 143, ephemeral: None, blobs: pack::locate_blobs(&[entry]) };
    let packs = [record, other];
    let index_framed = raw(&findex::encode_layout(&packs, findex::Layout::WithEphemeral));
    let mut decoded = index_json(&packs);
    decoded["ephemeral"] = json!([hex(&ephemeral), Value::Null]);
    v.push(ok(
        "roles: index sealed under K_meta, 72-byte records (a pack sealed to the read key, one under K_enc)",
        k,
        seal_meta(FileKind::Index, &index_framed, "roles: index"),
        sin("index", true),
        decoded,
    ));
    let low = mutate(&sealed_snap, |b| b[8..40].copy_from_slice(&[0; 32]));
    let mut bad_offset = packs.clone();
    bad_offset[0].blobs[0].offset = 8;
    bad_offset[0].size = 8 + entry.stored_len;
    v.extend([
        e("snapshot sealed to a low-order ephemeral key (all zero)", low, &sin("snapshot", true), INTEGRITY),
        e(
            "snapshot sealed to the read key in a repository without roles",
            sealed_snap.clone(),
            &sin("snapshot", false),
            INTEGRITY,
        ),
        e(
            "snapshot sealed under K_meta (not allowed for snapshots)",
            seal_meta(FileKind::Snapshot, &snap, "roles: meta snapshot"),
            &sin("snapshot", true),
            INTEGRITY,
        ),
        e("snapshot sealed to the read key, 79 bytes", sealed_snap[..79].to_vec(), &sin("snapshot", true), INTEGRITY),
        e(
            "index record with an ephemeral key and a blob at offset 8 (inside the key)",
            seal_meta(
                FileKind::Index,
                &raw(&findex::encode_layout(&bad_offset, findex::Layout::WithEphemeral)),
                "roles: bad index",
            ),
            &sin("index", true),
            INTEGRITY,
        ),
    ]);

    // A pack sealed to the read key.
    let pin = |roles: bool| json!({"procedure": "sealed_pack", "master_key": hex(&MASTER), "repo_id": hex(&REPO), "roles": roles});
    let blobs = json!([pack_blob_json(&entry, 40, b"hello")]);
    v.push(ok(
        "roles: pack sealed to the read key, one data blob",
        k,
        pack_bytes.clone(),
        pin(true),
        json!({ "blobs": blobs }),
    ));
    v.extend([
        e("pack sealed to the read key in a repository without roles", pack_bytes.clone(), &pin(false), INTEGRITY),
        e(
            "pack sealed to the read key with another ephemeral key",
            mutate(&pack_bytes, |b| b[8] ^= 1),
            &pin(true),
            INTEGRITY,
        ),
    ]);
    v
}
