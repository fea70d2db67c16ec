//! The test vectors in `format-spec/vectors/`: the files are exactly what the generator
//! (`examples/gen_vectors.rs`) produces, and every vector decodes — or fails with its error class —
//! when read by the library following the procedure of its `kind` (format-spec/vectors/README.md).
//! Every accepted object must also re-encode to the same bytes.

#[path = "../../examples/gen_vectors.rs"]
#[allow(dead_code)]
pub mod gen;

use arca::chunker::Chunker;
use arca::crypto::{self, kdf, Keys, MasterKey};
use arca::format::blob::{self, BlobType};
use arca::format::config::{ChunkerParams, Config};
use arca::format::header::{self, FileKind, HEADER_LEN};
use arca::format::key::KeyFile;
use arca::format::lock::Lock;
use arca::format::parity as fparity;
use arca::format::snapshot::Snapshot;
use arca::format::tree::Tree;
use arca::format::{compression, index as findex, pack, NONCE_LEN};
use arca::id::{hex, unhex, Id};
use arca::Error;
use serde_json::{json, Value};
use std::collections::HashSet;

const WHAT: &str = "test vector";

/// The vector files on disk: (file name, vectors).
pub fn load() -> Vec<(String, Vec<Value>)> {
    let mut files: Vec<(String, Vec<Value>)> = std::fs::read_dir(gen::vectors_dir())
        .expect("format-spec/vectors exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let vectors: Vec<Value> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, vectors)
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

#[test]
fn vector_files_are_what_the_generator_writes() {
    let files = gen::generate();
    assert_eq!(files, gen::generate(), "the generator is not deterministic");
    let dir = gen::vectors_dir();
    let mut total = 0;
    for (name, contents) in &files {
        let on_disk = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        assert!(on_disk == *contents, "format-spec/vectors/{name} is stale: run `cargo run --example gen_vectors`");
        total += contents.len();
    }
    let on_disk: HashSet<String> = load().into_iter().map(|(n, _)| n).collect();
    let generated: HashSet<String> = files.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(on_disk, generated, "stray or missing vector files");
    assert!(total < 2 << 20, "vector files total {total} bytes, over 2 MiB (format-spec/20)");
}

fn class(e: &Error) -> &'static str {
    match e {
        Error::Integrity { .. } => "integrity",
        Error::Unsupported(_) => "unsupported",
        Error::NotARepository(_) => "not_a_repository",
        Error::WrongPassword => "wrong_password",
        other => panic!("error outside the vector classes: {other:?}"),
    }
}

#[test]
fn every_vector_decodes_or_fails_as_stated() {
    let mut names = HashSet::new();
    let mut failures = Vec::new();
    let mut count = 0;
    for (file, vectors) in load() {
        let kind = file.trim_end_matches(".json");
        assert!(vectors.iter().any(|v| v["expect"] == "ok"), "{file}: no valid vector");
        for v in &vectors {
            count += 1;
            let name = v["name"].as_str().expect("name");
            assert!(names.insert(name.to_string()), "duplicate vector name {name}");
            assert_eq!(v["kind"], kind, "{name}: kind does not match its file");
            assert!(v["inputs"].is_object() && v["hex"].is_string(), "{name}: inputs or hex missing");
            let result = std::panic::catch_unwind(|| run(v));
            let result = match result {
                Ok(r) => r,
                Err(_) => {
                    failures.push(format!("{name}: panicked"));
                    continue;
                }
            };
            match (v["expect"].as_str(), result) {
                (Some("ok"), Ok(decoded)) => {
                    assert!(v.get("error_class").is_none(), "{name}: ok vector with an error class");
                    if decoded != v["decoded"] {
                        failures.push(format!("{name}: decoded\n  {decoded}\nexpected\n  {}", v["decoded"]));
                    }
                }
                (Some("ok"), Err(e)) => failures.push(format!("{name}: expected ok, got {e:?}")),
                (Some("error"), Ok(_)) => {
                    failures.push(format!("{name}: expected {}, but it was accepted", v["error_class"]))
                }
                (Some("error"), Err(e)) => {
                    assert!(v.get("decoded").is_none(), "{name}: error vector with decoded fields");
                    if class(&e) != v["error_class"] {
                        failures.push(format!("{name}: expected {}, got {e:?}", v["error_class"]));
                    }
                }
                (other, _) => failures.push(format!("{name}: bad expect {other:?}")),
            }
        }
    }
    assert!(failures.is_empty(), "{} of {count} vectors failed:\n{}", failures.len(), failures.join("\n"));
    assert!(count >= 300, "only {count} vectors");
}

/// Each MUST-reject rule has at least one error vector (guards against vectors being dropped).
#[test]
fn every_reject_rule_has_a_vector() {
    let all: Vec<(String, String)> = load()
        .into_iter()
        .flat_map(|(_, vs)| vs)
        .filter(|v| v["expect"] == "error")
        .map(|v| (v["name"].as_str().unwrap().to_string(), v["error_class"].as_str().unwrap().to_string()))
        .collect();
    let required: &[(&str, &str)] = &[
        ("wrong magic", "not_a_repository"),
        ("unknown version 2", "unsupported"),
        ("nonzero reserved byte", "integrity"),
        ("wrong kind", "integrity"),
        ("flipped ciphertext byte", "integrity"),
        ("wrong AD: sealed for another repository ID", "integrity"),
        ("wrong AD: blob IDs swapped", "integrity"),
        ("wrong AD: opened under another blob ID", "integrity"),
        ("wrong AD: opened as a tree blob", "integrity"),
        ("wrong AD: blob type tree for a data blob", "integrity"),
        ("key: wrong password", "wrong_password"),
        ("key: memory 2 GiB", "integrity"),
        ("key: memory 8191 KiB", "integrity"),
        ("key: time cost 0", "integrity"),
        ("key: time cost 11", "integrity"),
        ("key: lanes 0", "integrity"),
        ("key: lanes 17", "integrity"),
        ("key: label of 1025 bytes", "integrity"),
        ("config: overlong varint: version 1 encoded as 0x81 0x00", "integrity"),
        ("config: config version 2", "unsupported"),
        ("config: unknown required feature bit", "unsupported"),
        ("config: chunker min_size odd", "integrity"),
        ("key: unknown KDF", "unsupported"),
        ("zstd window of 2^26 bytes", "integrity"),
        ("zstd single-segment frame of 2^25 + 1 bytes", "integrity"),
        ("zstd lone skippable frame", "integrity"),
        ("trailing byte", "integrity"),
        ("unknown compression method", "integrity"),
        ("zstd bomb", "integrity"),
        ("tree: name \"..\"", "integrity"),
        ("tree: name \".\"", "integrity"),
        ("tree: name \"a/b\"", "integrity"),
        ("tree: name \"a\\0b\"", "integrity"),
        ("tree: empty name", "integrity"),
        ("tree: names not sorted", "integrity"),
        ("tree: duplicate names", "integrity"),
        ("tree: mode 0o10000", "integrity"),
        ("tree: file size 6, chunks sum to 5", "integrity"),
        ("pack: TOC length mismatch", "integrity"),
        ("pack: TOC stored_len 40", "integrity"),
        ("index: blob ends one byte past the pack", "integrity"),
        ("index: blob offset 7", "integrity"),
        ("snapshot: field 12 original written as None (00)", "integrity"),
        ("snapshot: field 12 original with option tag 2", "integrity"),
        ("snapshot: field 12 original truncated", "integrity"),
        ("snapshot: trailing byte after field 12 original", "integrity"),
        ("journal: no records", "integrity"),
        ("journal: op 0", "integrity"),
        ("journal: empty label key", "integrity"),
        ("journal: padding: a nonzero padding byte", "integrity"),
        ("journal: padding: one byte short of its size class", "integrity"),
        ("journal: padding: the 8192 class, larger than the records need", "integrity"),
        ("parity: recovery 0", "integrity"),
        ("parity: shard size 100 (not a multiple of 64)", "integrity"),
        ("parity: a segment of 32769 data shards", "integrity"),
        ("parity: flipped checksum: table hash mismatch", "integrity"),
        ("parity_policy: 10001 basis points", "integrity"),
    ];
    for (needle, class) in required {
        assert!(all.iter().any(|(n, c)| n.contains(needle) && c == class), "no {class} vector named like {needle:?}");
    }
    for kind in ["key", "config", "index", "snapshot", "lock", "journal", "pack", "blob", "parity", "parity_policy"] {
        assert!(
            all.iter().any(|(n, _)| n.starts_with(&format!("{kind}: truncated"))),
            "no truncation vector for {kind}"
        );
    }
}

// ---- the reading procedures ---------------------------------------------------------------------

fn run(v: &Value) -> Result<Value, Error> {
    let bytes = unhex(v["hex"].as_str().unwrap()).expect("hex");
    let inputs = &v["inputs"];
    match v["kind"].as_str().unwrap() {
        "subkeys" => Ok(subkeys(&bytes)),
        "key" => key(&bytes, inputs),
        "config" => {
            let body = open_file(&bytes, FileKind::Config, inputs, arca::format::config::MAX_CONFIG_LEN)?;
            let c = Config::decode(&body)?;
            assert_eq!(c.encode(), body, "config re-encodes differently");
            Ok(gen::config_json(&c))
        }
        "index" => {
            let body = open_file(&bytes, FileKind::Index, inputs, findex::MAX_INDEX_LEN)?;
            let packs = findex::decode(&body, WHAT)?;
            assert_eq!(findex::encode(&packs), body, "index re-encodes differently");
            let mut decoded = gen::index_json(&packs);
            if let Some(blobs) = inputs.get("canonical") {
                decoded["canonical"] = canonical(packs, blobs);
            }
            Ok(decoded)
        }
        "snapshot" => {
            let body = open_file(&bytes, FileKind::Snapshot, inputs, arca::format::snapshot::MAX_SNAPSHOT_LEN)?;
            let s = Snapshot::decode(&body, WHAT)?;
            assert_eq!(s.encode(), body, "snapshot re-encodes differently");
            Ok(gen::snapshot_json(&s))
        }
        "lock" => {
            let body = open_file(&bytes, FileKind::Lock, inputs, arca::format::lock::MAX_LOCK_LEN)?;
            let l = Lock::decode(&body)?;
            assert_eq!(l.encode(), body, "lock re-encodes differently");
            Ok(gen::lock_json(&l))
        }
        "journal" => {
            let body = open_file(&bytes, FileKind::Journal, inputs, arca::format::journal::MAX_JOURNAL_LEN)?;
            let records = arca::format::journal::decode(&body, WHAT)?;
            // Padded (section 21.7), or unpadded as written before padding.
            let padded = arca::format::journal::encode(&records) == body;
            assert!(
                padded || arca::format::journal::encode_unpadded(&records) == body,
                "journal re-encodes differently"
            );
            Ok(gen::journal_json(&records))
        }
        "pack" => read_pack(&bytes, inputs),
        "blob" => Ok(json!({"plaintext": hex(&open_blob(&bytes, inputs)?)})),
        "tree" => {
            let plain = open_blob(&bytes, inputs)?;
            let t = Tree::decode(&plain, WHAT)?;
            assert_eq!(t.encode(), plain, "tree re-encodes differently");
            Ok(gen::tree_json(&t))
        }
        "compression" => {
            let body = compression::decode(&bytes, num(inputs, "limit") as usize, WHAT)?;
            if bytes[0] == compression::METHOD_NONE {
                assert_eq!(compression::encode(&body, 0), bytes);
            }
            Ok(gen::compression_decoded(&body))
        }
        "chunker" => Ok(chunk(&bytes, inputs)),
        "parity" => parity(&bytes, inputs),
        "rs_tables" => Ok(rs_tables(&bytes, inputs)),
        "repair_run" => Ok(repair_run(inputs)),
        "parity_policy" => {
            let body = open_file(&bytes, FileKind::ParityPolicy, inputs, fparity::POLICY_BODY_LEN)?;
            Ok(json!({"basis_points": fparity::decode_policy(&body, WHAT)?}))
        }
        "serve_request" => {
            let r = arca::format::serve::Request::decode(&bytes)?;
            assert_eq!(r.encode(), bytes, "serve request re-encodes differently");
            Ok(gen::serve_json(&r))
        }
        "serve_response" => {
            let r = arca::format::serve::Response::decode(&bytes)?;
            assert_eq!(r.encode(), bytes, "serve response re-encodes differently");
            Ok(gen::serve_json(&r))
        }
        "roles" => roles(&bytes, inputs),
        other => panic!("unknown vector kind {other}"),
    }
}

/// Key roles (format-spec/24), by the vector's `procedure`, computed from the section's own
/// definitions (BLAKE3 and X25519 directly) where it states them.
fn roles(bytes: &[u8], inputs: &Value) -> Result<Value, Error> {
    use arca::format::header::Sealing;
    match inputs["procedure"].as_str().unwrap() {
        "read_key" => {
            let master: [u8; 32] = bytes.try_into().unwrap();
            let e = arr32(inputs, "ephemeral_secret");
            let s = blake3::derive_key("arca 2026-12-07 v1 read key", &master);
            let p = x25519_dalek::x25519(s, x25519_dalek::X25519_BASEPOINT_BYTES);
            let big_e = x25519_dalek::x25519(e, x25519_dalek::X25519_BASEPOINT_BYTES);
            let shared = x25519_dalek::x25519(e, p);
            assert_eq!(shared, x25519_dalek::x25519(s, big_e), "X25519 is not symmetric");
            let mut h = blake3::Hasher::new_derive_key("arca 2026-12-07 v1 sealed object key");
            h.update(&shared).update(&big_e).update(&p);
            Ok(json!({
                "metadata_key": hex(&blake3::derive_key("arca 2026-12-07 v1 metadata key", &master)),
                "read_secret": hex(&s),
                "read_public": hex(&p),
                "ephemeral_public": hex(&big_e),
                "shared": hex(&shared),
                "object_key": hex(h.finalize().as_bytes()),
            }))
        }
        "key_file" => {
            let kf = KeyFile::decode(bytes)?;
            let pw = inputs["password"].as_str().unwrap().as_bytes();
            let (unwrapped, repo_id) = kdf::unwrap_any(&kf, pw)?;
            assert_eq!(repo_id, gen::REPO);
            let kek = kdf::derive_kek(pw, &kf.salt, &kf.kdf)?;
            let secret =
                crypto::open_with(&kek, &[&kf.nonce[..], &kf.ciphertext].concat(), &kf.associated_data(), WHAT)?;
            if let kdf::Unwrapped::Backup(_, b) = unwrapped {
                let config_file = unhex(inputs["config_file"].as_str().unwrap()).unwrap();
                assert_eq!(b.config_hash, *blake3::hash(&config_file).as_bytes(), "backup key not bound to its config");
                Config::decode(&b.config_body)?;
            }
            assert_eq!(kf.encode(), bytes, "key file re-encodes differently");
            Ok(gen::role_key_json(&kf, &secret))
        }
        "sealed_file" => {
            let (keys, repo_id) = keys_from(inputs);
            let roles = inputs["roles"].as_bool().unwrap();
            let (kind, allowed): (FileKind, &[Sealing]) = match inputs["file_kind"].as_str().unwrap() {
                _ if !roles => (FileKind::Snapshot, &[Sealing::Full]),
                "snapshot" => (FileKind::Snapshot, &[Sealing::Full, Sealing::Reader]),
                _ => (FileKind::Index, &[Sealing::Full, Sealing::Meta]),
            };
            let parts = header::split_sealing(bytes, kind, allowed, WHAT)?;
            let ad = header::file_ad(parts.header, &repo_id);
            let key = match (parts.sealing, parts.ephemeral) {
                (Sealing::Reader, Some(e)) => keys.sealed_key(&e, WHAT)?,
                (Sealing::Meta, _) => keys.meta().clone(),
                _ => keys.full()?.clone(),
            };
            let framed = key.open(parts.sealed, &ad, WHAT)?;
            let limit = if kind == FileKind::Index { findex::MAX_INDEX_LEN } else { 1 << 20 };
            let body = compression::decode(&framed, limit, WHAT)?;
            if kind == FileKind::Snapshot {
                return Ok(gen::snapshot_json(&Snapshot::decode(&body, WHAT)?));
            }
            let layout =
                if parts.sealing == Sealing::Meta { findex::Layout::WithEphemeral } else { findex::Layout::Plain };
            let packs = findex::decode_layout(&body, layout, WHAT)?;
            assert_eq!(findex::encode_layout(&packs, layout), body, "index re-encodes differently");
            let mut v = gen::index_json(&packs);
            v["ephemeral"] = json!(packs.iter().map(|p| p.ephemeral.map(|e| hex(&e))).collect::<Vec<_>>());
            Ok(v)
        }
        "sealed_pack" => {
            let (keys, repo_id) = keys_from(inputs);
            let (_, ephemeral) = pack::check_header_sealing(bytes, inputs["roles"].as_bool().unwrap(), WHAT)?;
            let key = match &ephemeral {
                Some(e) => keys.sealed_key(e, WHAT)?,
                None => keys.full()?.clone(),
            };
            let first = pack::first_blob_at(ephemeral.as_ref()) as u64;
            let trailer = bytes[bytes.len() - 4..].try_into().unwrap();
            let (at, len) = pack::locate_toc_after(bytes.len() as u64, trailer, first, WHAT)?;
            let sealed = &bytes[at as usize..(at + len as u64) as usize];
            let toc = key.open(sealed, &pack::toc_ad_for(ephemeral.as_ref(), &repo_id), WHAT)?;
            let entries = pack::decode_toc(&toc, at - first, WHAT)?;
            let mut offset = first;
            let mut blobs = Vec::new();
            for e in &entries {
                let env = &bytes[offset as usize..(offset + e.stored_len as u64) as usize];
                let framed = key.open(env, &blob::blob_ad(e.blob_type, &e.id, &repo_id), WHAT)?;
                let plain = compression::decode(&framed, 1 << 20, WHAT)?;
                assert_eq!(keys.blob_id(&plain), e.id);
                blobs.push(gen::pack_blob_json(e, offset, &plain));
                offset += e.stored_len as u64;
            }
            Ok(json!({ "blobs": blobs }))
        }
        other => panic!("unknown roles procedure {other}"),
    }
}

/// A parity file (format-spec/22): decode it; with the protected bytes, it must be exactly
/// their parity at its geometry (and the writer's geometry where the vector says so); with
/// damaged bytes, rebuilding must give what the vector states.
fn parity(bytes: &[u8], inputs: &Value) -> Result<Value, Error> {
    // A repair uses the checksum table even when its hash fails (format-spec/22 §22.7).
    let p = if inputs.get("damaged").is_some() {
        fparity::Parity::decode_for_repair(bytes, WHAT)?
    } else {
        fparity::Parity::decode(bytes, WHAT)?
    };
    let given = match (inputs.get("protected").and_then(Value::as_str), inputs.get("protected_xof")) {
        (Some(h), _) => Some(unhex(h).unwrap()),
        (None, Some(x)) => {
            assert_eq!((x["context"].as_str(), x["input"].as_str()), (Some(gen::XOF_CONTEXT), Some("pack")));
            Some(gen::random_file_bytes(x["len"].as_u64().unwrap() as usize))
        }
        _ => None,
    };
    if let Some(prot) = given {
        assert_eq!(Id::of_file_bytes(&prot), p.fixed.id, "protected ID");
        let again = fparity::encode_with(p.fixed.kind, &p.fixed.id, &prot, p.fixed.geometry).unwrap();
        assert!(again == bytes, "parity file does not re-encode from its protected bytes");
        if let Some(bp) = inputs.get("writer_basis_points").and_then(Value::as_u64) {
            assert_eq!(p.fixed.geometry, fparity::Geometry::plan(prot.len() as u64, bp as u16), "writer geometry");
        }
    }
    let damaged = inputs.get("damaged").and_then(Value::as_str).map(|d| unhex(d).unwrap());
    Ok(gen::parity_json(&p, damaged.as_deref()))
}

/// The canonical copy (format-spec/10-index.md §10.3) of each blob `blobs` names, as the
/// reference index finds it.
fn canonical(packs: Vec<findex::IndexPack>, blobs: &Value) -> Value {
    let index = arca::repo::index::Index::from_packs(packs);
    let found: Vec<Value> = blobs
        .as_array()
        .expect("inputs.canonical")
        .iter()
        .map(|b| {
            let t = if b["type"] == "tree" { BlobType::Tree } else { BlobType::Data };
            let id = Id(unhex(b["id"].as_str().unwrap()).unwrap().try_into().unwrap());
            let at = index.lookup(t, &id).expect("an indexed blob");
            gen::canonical_json(t, &id, &at.pack, at.offset)
        })
        .collect();
    json!(found)
}

/// The tables of the Reed-Solomon code (format-spec/22 §22.6) as the crate that computes arca's
/// parity holds them, built from the basis and polynomial the vector gives.
fn rs_tables(basis: &[u8], inputs: &Value) -> Value {
    use reed_solomon_simd::engine::{tables, CANTOR_BASIS, GF_POLYNOMIAL};
    let given: Vec<u16> = basis.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    assert_eq!(given, CANTOR_BASIS, "the Cantor basis");
    assert_eq!(num(inputs, "polynomial"), GF_POLYNOMIAL as u64, "the field polynomial");
    let el = tables::get_exp_log();
    gen::rs_tables_json(&el.exp[..], &el.log[..], &tables::get_skew()[..], &tables::get_log_walsh()[..])
}

/// One `arca repair packs` over the vector's files (made a repository with the vectors' config
/// and key file): which damaged files it rebuilt, which missing ones it restored, which it did
/// not. A dry run and `check` beforehand must predict it.
fn repair_run(inputs: &Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    for d in ["data", "index", "snapshots", "keys", "locks", "tmp", "parity", "journal"] {
        std::fs::create_dir_all(repo.join(d)).unwrap();
    }
    let files: Vec<(String, Vec<u8>)> = inputs["files"]
        .as_object()
        .expect("inputs.files")
        .iter()
        .map(|(path, h)| (path.clone(), unhex(h.as_str().unwrap()).unwrap()))
        .collect();
    for (path, bytes) in gen::repository_frame().iter().chain(&files) {
        let p = repo.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    // The protected files that are damaged, or missing while their parity remains.
    let mut broken: Vec<(String, bool)> = Vec::new();
    for (path, bytes) in &files {
        if let Some(name) = path.strip_prefix("parity/").and_then(|p| p.get(3..)) {
            let f = fparity::Fixed::decode(bytes, WHAT).expect("a parity file");
            let target = gen::repo_path(f.kind, &f.id);
            assert_eq!(name, f.id.to_hex());
            if !files.iter().any(|(p, _)| *p == target) {
                broken.push((target, true));
            }
        } else if Id::of_file_bytes(bytes).to_hex() != path.rsplit('/').next().unwrap() {
            broken.push((path.clone(), false));
        }
    }
    let run = |args: &[&str]| {
        let out = crate::common::arca_cmd()
            .env("ARCA_REPOSITORY", repo)
            .env("ARCA_PASSWORD", gen::PASSWORD)
            .args(args)
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap_or_else(|_| panic!("{args:?}: {out:?}"))
    };
    let check = run(&["--json", "check"]);
    let dry = run(&["--json", "repair", "packs", "--dry-run"]);
    run(&["--json", "repair", "packs"]);
    let mut result = json!({"repaired": [], "restored": [], "not_restored": []});
    broken.sort();
    for (path, missing) in broken {
        let healthy = std::fs::read(repo.join(&path))
            .is_ok_and(|b| Id::of_file_bytes(&b).to_hex() == path.rsplit('/').next().unwrap());
        let object = object_of(&path);
        let predicted = check["damaged_files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["object"] == object.as_str() && d["repairable"] == true);
        assert_eq!(predicted, healthy, "{path}: check predicted otherwise: {check}");
        let dry_listed = dry["repaired"].as_array().unwrap().iter().any(|d| d["file"] == object.as_str());
        assert_eq!(dry_listed, healthy, "{path}: the dry run predicted otherwise: {dry}");
        let list = match (healthy, missing) {
            (false, _) => "not_restored",
            (true, false) => "repaired",
            (true, true) => "restored",
        };
        result[list].as_array_mut().unwrap().push(json!(path));
    }
    result
}

/// How arca names the file at a repository path: `pack 3fa2…`, `index …`, `snapshot …`.
fn object_of(path: &str) -> String {
    let kind = match path.split('/').next() {
        Some("data") => "pack",
        Some("index") => "index",
        _ => "snapshot",
    };
    format!("{kind} {}", path.rsplit('/').next().unwrap_or_default())
}

fn num(inputs: &Value, key: &str) -> u64 {
    inputs[key].as_u64().unwrap_or_else(|| panic!("inputs.{key}"))
}

fn arr32(inputs: &Value, key: &str) -> [u8; 32] {
    unhex(inputs[key].as_str().unwrap_or_else(|| panic!("inputs.{key}"))).unwrap().try_into().unwrap()
}

fn keys_from(inputs: &Value) -> (Keys, [u8; 32]) {
    (Keys::derive(&MasterKey::from_bytes(arr32(inputs, "master_key"))), arr32(inputs, "repo_id"))
}

/// If the vector states the framed plaintext, the decrypted one must be it.
fn check_plaintext(inputs: &Value, framed: &[u8]) {
    if let Some(p) = inputs.get("plaintext").and_then(Value::as_str) {
        assert_eq!(hex(framed), p, "decrypted plaintext differs from inputs.plaintext");
    }
}

fn subkeys(master: &[u8]) -> Value {
    let master: [u8; 32] = master.try_into().expect("32-byte master key");
    let d = gen::subkeys_json(&master);
    // The stated subkeys must be the ones the library works with.
    let keys = Keys::derive(&MasterKey::from_bytes(master));
    let enc: [u8; 32] = unhex(d["encryption_key"].as_str().unwrap()).unwrap().try_into().unwrap();
    let n = [3u8; NONCE_LEN];
    assert_eq!(keys.seal_with_nonce(&n, b"x", b"ad"), crypto::seal_with(&enc, &n, b"x", b"ad").unwrap());
    let id_key: [u8; 32] = unhex(d["blob_id_key"].as_str().unwrap()).unwrap().try_into().unwrap();
    assert_eq!(keys.blob_id(b"hello").0, *blake3::keyed_hash(&id_key, b"hello").as_bytes());
    d
}

fn key(bytes: &[u8], inputs: &Value) -> Result<Value, Error> {
    let kf = KeyFile::decode(bytes)?;
    assert_eq!(kf.encode(), bytes, "key file re-encodes differently");
    let password = inputs["password"].as_str().expect("inputs.password").as_bytes();
    let (master, repo_id) = kdf::unwrap(&kf, password)?;
    let again = kdf::wrap_with(&master, &repo_id, password, kf.kdf, &kf.label, kf.created, kf.salt, kf.nonce)?;
    assert_eq!(again.encode(), bytes, "key file re-wraps differently");
    let mut d = gen::key_json(&kf);
    d["kek"] = json!(hex(&kdf::derive_kek(password, &kf.salt, &kf.kdf)?[..]));
    d["master_key"] = json!(hex(master.as_bytes()));
    d["repo_id"] = json!(hex(&repo_id));
    Ok(d)
}

/// Header, AEAD with the file AD, compression: the body of an encrypted file.
fn open_file(bytes: &[u8], kind: FileKind, inputs: &Value, limit: usize) -> Result<Vec<u8>, Error> {
    let (keys, repo_id) = keys_from(inputs);
    let parts = header::split_sealed(bytes, kind, WHAT)?;
    let ad = header::file_ad(parts.header, &repo_id);
    let framed = keys.open(parts.sealed, &ad, WHAT)?;
    check_plaintext(inputs, &framed);
    let nonce: [u8; NONCE_LEN] = parts.sealed[..NONCE_LEN].try_into().unwrap();
    let again = [&header::encode(kind)[..], &keys.seal_with_nonce(&nonce, &framed, &ad)].concat();
    assert_eq!(again, bytes, "file re-seals differently");
    let body = compression::decode(&framed, limit, WHAT)?;
    if framed[0] == compression::METHOD_NONE {
        assert_eq!(compression::encode(&body, 0), framed);
    }
    Ok(body)
}

/// AEAD with the blob AD, compression, blob ID: a blob's plaintext.
fn open_blob(bytes: &[u8], inputs: &Value) -> Result<Vec<u8>, Error> {
    let (keys, repo_id) = keys_from(inputs);
    let t = match inputs["blob_type"].as_str() {
        Some("data") => BlobType::Data,
        Some("tree") => BlobType::Tree,
        other => panic!("inputs.blob_type {other:?}"),
    };
    let id = Id(arr32(inputs, "blob_id"));
    let ad = blob::blob_ad(t, &id, &repo_id);
    let framed = keys.open(bytes, &ad, WHAT)?;
    check_plaintext(inputs, &framed);
    let nonce: [u8; NONCE_LEN] = bytes[..NONCE_LEN].try_into().unwrap();
    assert_eq!(keys.seal_with_nonce(&nonce, &framed, &ad), bytes, "blob re-seals differently");
    let plain = compression::decode(&framed, num(inputs, "limit") as usize, WHAT)?;
    if keys.blob_id(&plain) != id {
        return Err(Error::integrity(WHAT, "plaintext does not hash to the blob ID"));
    }
    Ok(plain)
}

/// Header, trailer, sealed TOC, then every blob in TOC order.
fn read_pack(bytes: &[u8], inputs: &Value) -> Result<Value, Error> {
    let (keys, repo_id) = keys_from(inputs);
    let limit = num(inputs, "limit") as usize;
    pack::check_header(bytes, WHAT)?;
    let trailer = bytes[bytes.len() - pack::TRAILER_LEN..].try_into().unwrap();
    let (off, len) = pack::locate_toc(bytes.len() as u64, trailer, WHAT)?;
    let (off, len) = (off as usize, len as usize);
    let sealed_toc = &bytes[off..off + len];
    let toc_ad = pack::toc_ad(&repo_id);
    let toc = keys.open(sealed_toc, &toc_ad, WHAT)?;
    let entries = pack::decode_toc(&toc, (off - HEADER_LEN) as u64, WHAT)?;
    let mut blobs = Vec::new();
    let mut pos = HEADER_LEN;
    for e in &entries {
        let envelope = &bytes[pos..pos + e.stored_len as usize];
        let framed = keys.open(envelope, &blob::blob_ad(e.blob_type, &e.id, &repo_id), WHAT)?;
        let plain = compression::decode(&framed, limit, WHAT)?;
        if keys.blob_id(&plain) != e.id {
            return Err(Error::integrity(WHAT, "blob plaintext does not hash to its ID"));
        }
        if plain.len() != e.plain_len as usize {
            return Err(Error::integrity(WHAT, "blob length differs from the TOC's plain_len"));
        }
        blobs.push(gen::pack_blob_json(e, pos as u64, &plain));
        pos += e.stored_len as usize;
    }
    let nonce: [u8; NONCE_LEN] = sealed_toc[..NONCE_LEN].try_into().unwrap();
    let resealed = keys.seal_with_nonce(&nonce, &pack::encode_toc(&entries), &toc_ad);
    let again = [&bytes[..off], &resealed, &(resealed.len() as u32).to_le_bytes()].concat();
    assert_eq!(again, bytes, "pack re-encodes differently");
    Ok(json!({ "blobs": blobs }))
}

/// Cut points at once and streamed through 7-byte reads.
fn chunk(data: &[u8], inputs: &Value) -> Value {
    let p = ChunkerParams {
        min_size: num(inputs, "min_size") as u32,
        avg_size: num(inputs, "avg_size") as u32,
        max_size: num(inputs, "max_size") as u32,
        normalization: num(inputs, "normalization") as u8,
    };
    let keys = Keys::derive(&MasterKey::from_bytes(arr32(inputs, "master_key")));
    let ch = Chunker::new(&p, keys.gear().unwrap());
    let lengths = ch.lengths(data);
    struct Sevens<'a>(&'a [u8]);
    impl std::io::Read for Sevens<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(7).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let streamed: Vec<usize> = ch.stream(Sevens(data)).map(|c| c.unwrap().len()).collect();
    assert_eq!(streamed, lengths, "streamed cut points differ");
    if data.len() == gen::CHUNKER_INPUT_LEN {
        assert!(data == gen::chunker_input() || data.iter().all(|&b| b == 0));
    }
    gen::chunks_json(&lengths)
}

/// Field 12 of a snapshot (format-spec/11-snapshot.md): the rewritten vector is the valid one
/// with `01 || original` appended, decodes to that ID, and the plain vectors have none.
#[test]
fn snapshot_field_12_original_is_appended_only_when_present() {
    let (_, vectors) = load().into_iter().find(|(n, _)| n == "snapshot.json").expect("snapshot.json");
    let plaintext = |name: &str| {
        let v = vectors.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("no vector {name}"));
        (unhex(v["inputs"]["plaintext"].as_str().unwrap()).unwrap(), v["decoded"].clone())
    };
    let (plain, plain_decoded) = plaintext("snapshot: valid, uncompressed");
    let (rewritten, decoded) = plaintext("snapshot: valid, rewritten (field 12 original present)");
    assert_eq!(rewritten, [&plain[..], &[1], &[0x66; 32]].concat());
    assert_eq!(decoded["original"], json!(hex(&[0x66; 32])));
    assert!(plain_decoded.get("original").is_none(), "a snapshot without field 12 lists no original");
    let s = Snapshot::decode(&rewritten[1..], WHAT).unwrap();
    assert_eq!(s.original, Some(Id([0x66; 32])));
    assert_eq!(Snapshot { original: None, ..s }.encode(), plain[1..]);
}

/// The `rdev` encoding of section 12.1 is the platform's own on Linux: `makedev` of the C library,
/// and the major and minor numbers `major`/`minor` read back.
#[test]
fn rdev_is_the_linux_makedev_encoding() {
    for (major, minor) in [(0u32, 0u32), (1, 3), (8, 1), (259, 65541), (4100, 300), (0xffff_ffff, 0xffff_ffff)] {
        let rdev = gen::makedev(major as u64, minor as u64);
        assert_eq!(rdev, libc::makedev(major, minor) as u64, "{major}:{minor}");
        assert_eq!((libc::major(rdev as libc::dev_t), libc::minor(rdev as libc::dev_t)), (major, minor));
    }
}
