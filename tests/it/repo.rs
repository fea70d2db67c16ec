//! Repository layer (issue 2): opening, keys, blobs through packs and the index, tamper
//! detection, crash safety of publishing, hostile key files.

use crate::common::*;
use arca::backend::FileType;
use arca::format::blob::BlobType;
use arca::format::header::HEADER_LEN;
use arca::format::key::KdfParams;
use arca::format::pack::{self, TRAILER_LEN};
use arca::repo::packer::Packer;
use arca::repo::Repository;
use arca::{Error, Id};
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

fn expect_err<T>(r: arca::Result<T>) -> Error {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

fn integrity_object(e: &Error) -> String {
    match e {
        Error::Integrity { object, .. } => object.clone(),
        other => panic!("expected an integrity error, got {other:?}"),
    }
}

// ---- init and open --------------------------------------------------------------------------

#[test]
fn init_then_open_gives_the_same_repository() {
    let env = Env::bare();
    let repo = lib_init(&env.repo, 1 << 20);
    let opened = lib_open(&env.repo, PASSWORD).unwrap();
    assert_eq!(opened.repo_id(), repo.repo_id());
    assert_eq!(opened.config(), repo.config());
    assert_eq!(opened.key_name(), repo.key_name());
    assert_eq!(repo_files(&env.repo, FileType::Key), vec![repo.key_name().to_string()]);
    // The layout of section 4: every directory exists.
    for d in ["keys", "index", "snapshots", "locks", "tmp", "data"] {
        assert!(env.repo.join(d).is_dir(), "{d} missing");
    }
    // A second init over it is refused and leaves the repository usable.
    let again = arca::repo::Repository::init(
        std::sync::Arc::new(arca::backend::local::LocalBackend::new(&env.repo)),
        b"other",
        &arca::repo::InitOptions { kdf: FAST_KDF, ..Default::default() },
    );
    assert!(matches!(again, Err(Error::InvalidArgument(_))), "re-init: {:?}", again.err());
    assert!(lib_open(&env.repo, PASSWORD).is_ok());
}

#[test]
fn init_refuses_a_non_empty_directory() {
    let env = Env::bare();
    fs::create_dir_all(&env.repo).unwrap();
    fs::write(env.repo.join("precious.txt"), b"do not touch").unwrap();
    env.run(&["init", "--kdf-memory", "8", "--kdf-iterations", "1"]).code(2);
    assert_eq!(fs::read(env.repo.join("precious.txt")).unwrap(), b"do not touch");
    assert!(!env.repo.join("config").exists());
}

#[test]
fn opening_a_non_repository_is_not_a_repository() {
    let env = Env::bare();
    // Missing directory, empty directory, directory with unrelated files, a `config` without magic.
    assert!(matches!(lib_open(&env.repo, PASSWORD), Err(Error::NotARepository(_))));
    fs::create_dir_all(&env.repo).unwrap();
    assert!(matches!(lib_open(&env.repo, PASSWORD), Err(Error::NotARepository(_))));
    fs::write(env.repo.join("notes.txt"), b"hello").unwrap();
    assert!(matches!(lib_open(&env.repo, PASSWORD), Err(Error::NotARepository(_))));
    fs::write(env.repo.join("config"), b"[core]\nbare = false\n").unwrap();
    assert!(matches!(lib_open(&env.repo, PASSWORD), Err(Error::NotARepository(_))));

    let out = env.run(&["snapshots"]).code(10);
    assert!(out.stderr.contains("not an arca repository"), "{}", out.stderr);
    fs::remove_file(env.repo.join("config")).unwrap();
    env.run(&["snapshots"]).code(10);
    // No password is needed to learn that there is no repository.
    let out = arca_cmd().env("ARCA_REPOSITORY", env.path("nowhere")).args(["ls", "latest"]).output().unwrap();
    assert_eq!(Out::from(out).code, 10);
}

#[test]
fn a_config_without_key_files_is_not_a_repository() {
    let env = Env::new();
    for k in repo_files(&env.repo, FileType::Key) {
        fs::remove_file(repo_file(&env.repo, FileType::Key, &k)).unwrap();
    }
    assert!(matches!(lib_open(&env.repo, PASSWORD), Err(Error::NotARepository(_))));
    env.run(&["snapshots"]).code(10);
}

#[test]
fn wrong_password_is_reported_as_such() {
    let env = Env::new();
    assert!(matches!(lib_open(&env.repo, "not the password"), Err(Error::WrongPassword)));
    assert!(matches!(lib_open(&env.repo, ""), Err(Error::WrongPassword)));
    let out = Out::from(env.cmd().env("ARCA_PASSWORD", "nope").args(["snapshots"]).output().unwrap()).code(12);
    assert!(out.stderr.contains("wrong password"), "{}", out.stderr);
    // The right one still works.
    env.run(&["snapshots"]).ok();
}

// ---- keys -----------------------------------------------------------------------------------

#[test]
fn several_keys_open_the_same_repository_and_removal_revokes_one() {
    let (env, repo) = Env::with_lib_repo();
    let first = repo.key_name().to_string();
    let second = repo.add_key(b"second password", FAST_KDF, "laptop").unwrap();
    assert_ne!(first, second);

    let a = lib_open(&env.repo, PASSWORD).unwrap();
    let b = lib_open(&env.repo, "second password").unwrap();
    assert_eq!(a.repo_id(), b.repo_id());
    assert_eq!(a.key_name(), first);
    assert_eq!(b.key_name(), second);
    // Both see the same master key: a blob sealed through one opens through the other.
    let id = a.keys().blob_id(b"shared");
    let env_a = a.seal_blob(BlobType::Data, &id, b"shared").unwrap();
    assert_eq!(b.open_blob(None, BlobType::Data, &id, &env_a).unwrap(), b"shared");

    let keys = b.list_keys().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys.iter().filter(|k| k.current).map(|k| k.name.clone()).collect::<Vec<_>>(), vec![second.clone()]);
    assert!(keys.iter().any(|k| k.file.label == "laptop"));

    // The key in use cannot be removed.
    assert!(matches!(b.remove_key(&second), Err(Error::InvalidArgument(_))));
    assert!(matches!(b.remove_key(&second[..10]), Err(Error::InvalidArgument(_))));
    assert_eq!(repo_files(&env.repo, FileType::Key).len(), 2);
    // An unknown prefix is not found.
    assert!(matches!(b.remove_key("zz"), Err(Error::NotFound(_))));

    // Removing the other one by prefix revokes its password.
    assert_eq!(b.remove_key(&first[..12]).unwrap(), first);
    assert!(matches!(lib_open(&env.repo, PASSWORD), Err(Error::WrongPassword)));
    assert!(lib_open(&env.repo, "second password").is_ok());
}

#[test]
fn change_password_replaces_the_key_in_use() {
    let (env, mut repo) = Env::with_lib_repo();
    let old = repo.key_name().to_string();
    let new = repo.change_password(b"new secret", FAST_KDF, "me@here").unwrap();
    assert_eq!(repo.key_name(), new);
    assert_eq!(repo_files(&env.repo, FileType::Key), vec![new.clone()]);
    assert!(!repo_file(&env.repo, FileType::Key, &old).exists());
    assert!(matches!(lib_open(&env.repo, PASSWORD), Err(Error::WrongPassword)));
    assert_eq!(lib_open(&env.repo, "new secret").unwrap().repo_id(), repo.repo_id());
}

#[test]
fn key_commands_through_the_cli() {
    let env = Env::new();
    let kdf = ["--kdf-memory", "8", "--kdf-iterations", "1"];
    let run_pw = |pw: &str, args: &[&str]| Out::from(env.cmd().env("ARCA_PASSWORD", pw).args(args).output().unwrap());
    let add = Out::from(
        env.cmd()
            .env("ARCA_NEW_PASSWORD", "pw-two")
            .args(["--json", "key", "add", "--label", "second"])
            .args(kdf)
            .output()
            .unwrap(),
    )
    .ok();
    let second = add.json()["added"].as_str().unwrap().to_string();

    let list = run_pw("pw-two", &["--json", "key", "list"]).ok().json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let current: Vec<_> = list.iter().filter(|k| k["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], second.as_str());
    assert_eq!(current[0]["label"], "second");
    assert_eq!(current[0]["kdf"]["memory_kib"], 8192);
    let first = list.iter().find(|k| k["id"] != second.as_str()).unwrap()["id"].as_str().unwrap().to_string();

    // Removing the key in use is refused; nothing is removed.
    let out = run_pw("pw-two", &["key", "remove", &second[..8]]).code(2);
    assert!(out.stderr.contains("in use"), "{}", out.stderr);
    assert_eq!(repo_files(&env.repo, FileType::Key).len(), 2);
    // Opened with the second key, the first can go; its password then no longer opens.
    run_pw("pw-two", &["key", "remove", &first[..8]]).ok();
    run_pw(PASSWORD, &["snapshots"]).code(12);
    run_pw("pw-two", &["snapshots"]).ok();

    // passwd: the old password stops working, the new one works, still one key.
    Out::from(
        env.cmd()
            .env("ARCA_PASSWORD", "pw-two")
            .env("ARCA_NEW_PASSWORD", "pw-three")
            .args(["key", "passwd"])
            .args(kdf)
            .output()
            .unwrap(),
    )
    .ok();
    run_pw("pw-two", &["snapshots"]).code(12);
    run_pw("pw-three", &["snapshots"]).ok();
    assert_eq!(repo_files(&env.repo, FileType::Key).len(), 1);

    // Out-of-range KDF settings for a new key are refused.
    Out::from(
        env.cmd()
            .env("ARCA_PASSWORD", "pw-three")
            .env("ARCA_NEW_PASSWORD", "x")
            .args(["key", "add", "--kdf-memory", "4096"])
            .output()
            .unwrap(),
    )
    .code(2);
    assert_eq!(repo_files(&env.repo, FileType::Key).len(), 1);
}

// ---- blobs, packs and the index -------------------------------------------------------------

/// A deterministic mix of blob plaintexts: empty, tiny, text, zeros, random; up to 1.5 MiB.
fn blob_corpus() -> Vec<(BlobType, Vec<u8>)> {
    let sizes = [0usize, 1, 2, 17, 63, 64, 100, 4096, 65_537, 300_000, 700_000];
    let mut out = Vec::new();
    let mut seed = 1u64;
    for (i, &n) in sizes.iter().cycle().take(110).enumerate() {
        seed += 1;
        let plain = match i % 3 {
            0 => random_bytes(seed, n),
            1 => vec![0u8; n],
            _ => (0..n).map(|j| b"abcdefgh\n"[(j + i) % 9]).collect(),
        };
        let t = if i % 4 == 3 { BlobType::Tree } else { BlobType::Data };
        out.push((t, plain));
    }
    // The same plaintext as both types: two distinct blobs.
    out.push((BlobType::Data, b"both types".to_vec()));
    out.push((BlobType::Tree, b"both types".to_vec()));
    out
}

fn store_corpus(repo: &Repository) -> (Vec<(BlobType, Id, Vec<u8>)>, Id) {
    let index = repo.load_index().unwrap();
    let packer = Packer::new(repo);
    let mut stored = Vec::new();
    let mut seen = BTreeSet::new();
    for (t, plain) in blob_corpus() {
        let id = repo.keys().blob_id(&plain);
        let added = packer.store(&index, t, &id, &plain).unwrap();
        assert_eq!(added, seen.insert((t, id)), "store() must add each (type, id) exactly once");
        stored.push((t, id, plain));
    }
    let idx = *packer.finish().unwrap().last().expect("an index file");
    assert!(packer.stats().packs >= 3, "1 MiB packs: expected several, got {:?}", packer.stats());
    (stored, idx)
}

#[test]
fn blobs_round_trip_through_packs_and_the_index() {
    let (env, repo) = Env::with_lib_repo();
    let (stored, _) = store_corpus(&repo);
    let distinct: BTreeSet<_> = stored.iter().map(|(t, id, _)| (*t, *id)).collect();

    // A fresh session sees everything through the index files.
    let repo = lib_open(&env.repo, PASSWORD).unwrap();
    let index = repo.load_index().unwrap();
    assert_eq!(index.len(), distinct.len());
    for (t, id, plain) in &stored {
        let got = repo.read_blob(&index, *t, id).unwrap_or_else(|e| panic!("{t:?} {id}: {e}"));
        assert_eq!(&got, plain, "{t:?} blob {id}");
    }
    let both = repo.keys().blob_id(b"both types");
    let (d, t) = (index.lookup(BlobType::Data, &both).unwrap(), index.lookup(BlobType::Tree, &both).unwrap());
    assert_ne!(d.pack, t.pack, "data and tree blobs live in separate packs");

    // A blob opened under the wrong type or ID fails authentication.
    let env_bytes = repo.seal_blob(BlobType::Data, &both, b"both types").unwrap();
    assert!(repo.open_blob(None, BlobType::Tree, &both, &env_bytes).unwrap_err().is_integrity());
    let other = repo.keys().blob_id(b"other");
    assert!(repo.open_blob(None, BlobType::Data, &other, &env_bytes).unwrap_err().is_integrity());
    // A blob the index does not know is reported as damage (it is referenced but missing), naming it.
    let missing = repo.read_blob(&index, BlobType::Data, &other).unwrap_err();
    assert!(missing.is_integrity() && missing.to_string().contains(&other.to_hex()), "{missing}");

    // Stored sizes: never more than method byte + nonce + tag of overhead; zeros compress.
    for id in repo.index_ids().unwrap() {
        for p in repo.load_index_file(&id).unwrap() {
            for b in p.blobs {
                assert!(b.stored_len as u64 <= b.plain_len as u64 + 41, "{b:?}");
            }
        }
    }
    let zeros = repo.keys().blob_id(&[0u8; 300_000]);
    let loc = index.lookup(BlobType::Data, &zeros).or_else(|| index.lookup(BlobType::Tree, &zeros)).unwrap();
    assert!(loc.len < 10_000, "300 kB of zeros stored in {} bytes", loc.len);

    // Storing everything again adds nothing.
    let packer = Packer::new(&repo);
    for (t, id, plain) in &stored {
        assert!(!packer.store(&index, *t, id, plain).unwrap());
    }
    assert!(packer.finish().unwrap().is_empty());
}

/// Rebuild the index from the packs' own tables of contents.
fn index_from_tocs(repo: &Repository, repo_dir: &Path) -> BTreeSet<(BlobType, Id, Id, u32, u32, u32, u32)> {
    let mut out = BTreeSet::new();
    for name in repo_files(repo_dir, FileType::Pack) {
        let bytes = fs::read(repo_file(repo_dir, FileType::Pack, &name)).unwrap();
        let what = format!("pack {name}");
        assert_eq!(Id::of_file_bytes(&bytes).to_hex(), name, "pack named by its hash");
        pack::check_header(&bytes, &what).unwrap();
        let trailer: [u8; TRAILER_LEN] = bytes[bytes.len() - TRAILER_LEN..].try_into().unwrap();
        let (at, len) = pack::locate_toc(bytes.len() as u64, trailer, &what).unwrap();
        let toc = repo
            .keys()
            .open(&bytes[at as usize..(at + len as u64) as usize], &pack::toc_ad(repo.repo_id()), &what)
            .unwrap();
        let entries = pack::decode_toc(&toc, at - HEADER_LEN as u64, &what).unwrap();
        let pack_id = Id::from_hex(&name).unwrap();
        let mut offset = HEADER_LEN as u32;
        for e in entries {
            out.insert((e.blob_type, e.id, pack_id, bytes.len() as u32, offset, e.stored_len, e.plain_len));
            offset += e.stored_len;
        }
    }
    out
}

#[test]
fn index_files_agree_with_the_pack_tables_of_contents() {
    let (env, repo) = Env::with_lib_repo();
    let (stored, idx) = store_corpus(&repo);
    assert_eq!(repo.index_ids().unwrap(), vec![idx]);
    let mut from_index = BTreeSet::new();
    for id in repo.index_ids().unwrap() {
        for p in repo.load_index_file(&id).unwrap() {
            for b in p.blobs {
                from_index.insert((b.blob_type, b.id, p.id, p.size, b.offset, b.stored_len, b.plain_len));
            }
        }
    }
    let from_tocs = index_from_tocs(&repo, &env.repo);
    assert_eq!(from_tocs.len(), stored.iter().map(|(t, id, _)| (*t, *id)).collect::<BTreeSet<_>>().len());
    assert_eq!(from_index, from_tocs);
    // Plain lengths recorded are the real ones.
    let lens: HashMap<(BlobType, Id), u32> = stored.iter().map(|(t, id, p)| ((*t, *id), p.len() as u32)).collect();
    for (t, id, _, _, _, _, plain_len) in &from_tocs {
        assert_eq!(lens[&(*t, *id)], *plain_len);
    }

    // Publishing left nothing behind in tmp/.
    assert_eq!(fs::read_dir(env.repo.join("tmp")).unwrap().count(), 0);
    // A content-addressed write of an existing name is a no-op success; config is never overwritten.
    let name = idx.to_hex();
    let bytes = fs::read(repo_file(&env.repo, FileType::Index, &name)).unwrap();
    repo.backend().write(FileType::Index, &name, &bytes).unwrap();
    assert_eq!(repo_files(&env.repo, FileType::Index), vec![name]);
    assert!(repo.backend().write(FileType::Config, "config", b"x").is_err());
}

#[test]
fn a_cli_backup_writes_packs_whose_tocs_match_the_index() {
    let env = Env::new();
    let src = env.mkdir("src");
    make_realistic_tree(&src);
    env.backup(&[&src], &[]);
    let repo = env.open();
    let mut from_index = BTreeSet::new();
    for id in repo.index_ids().unwrap() {
        for p in repo.load_index_file(&id).unwrap() {
            for b in p.blobs {
                from_index.insert((b.blob_type, b.id, p.id, p.size, b.offset, b.stored_len, b.plain_len));
            }
        }
    }
    assert!(!from_index.is_empty());
    assert_eq!(from_index, index_from_tocs(&repo, &env.repo));
}

// ---- tamper detection -----------------------------------------------------------------------

#[test]
fn a_flipped_byte_in_config_is_an_integrity_error() {
    let env = Env::new();
    let config = env.repo.join("config");
    let len = fs::metadata(&config).unwrap().len() as usize;
    for offset in [HEADER_LEN + 3, len / 2, len - 1] {
        flip_byte(&config, offset);
        let e = expect_err(lib_open(&env.repo, PASSWORD));
        assert_eq!(integrity_object(&e), "config", "offset {offset}");
        let out = env.run(&["snapshots"]).code(4);
        assert!(out.stderr.contains("config"), "{}", out.stderr);
        flip_byte(&config, offset); // undo
        lib_open(&env.repo, PASSWORD).unwrap();
    }
    // The header's kind byte and version: a different class each, never "wrong password".
    flip_byte(&config, 4);
    assert!(expect_err(lib_open(&env.repo, PASSWORD)).is_integrity());
    flip_byte(&config, 4);
    flip_byte(&config, 5);
    assert!(matches!(lib_open(&env.repo, PASSWORD), Err(Error::Unsupported(_))));
    flip_byte(&config, 5);
    flip_byte(&config, 0);
    assert!(matches!(lib_open(&env.repo, PASSWORD), Err(Error::NotARepository(_))));
}

/// Format-spec 7.4: a lone damaged key file is reported as damage (integrity, naming it),
/// never as a wrong password.
#[test]
fn a_flipped_byte_in_the_only_key_file_is_reported_as_damage() {
    let env = Env::new();
    let name = repo_files(&env.repo, FileType::Key).remove(0);
    let path = repo_file(&env.repo, FileType::Key, &name);
    let len = fs::metadata(&path).unwrap().len() as usize;
    // In the sealed secret, in the salt, in the label.
    for offset in [len - 1, len - 50, 30, 64] {
        flip_byte(&path, offset);
        let e = expect_err(lib_open(&env.repo, PASSWORD));
        assert!(integrity_object(&e).contains(&name), "offset {offset}: {e}");
        let out = env.run(&["snapshots"]).code(4);
        assert!(out.stderr.contains(&name[..16]), "{}", out.stderr);
        flip_byte(&path, offset);
    }
    lib_open(&env.repo, PASSWORD).unwrap();
}

#[test]
fn a_damaged_key_file_does_not_lock_out_the_others() {
    let (env, repo) = Env::with_lib_repo();
    let first = repo.key_name().to_string();
    let second = repo.add_key(b"pw2", FAST_KDF, "second").unwrap();
    let path = repo_file(&env.repo, FileType::Key, &first);
    let len = fs::metadata(&path).unwrap().len() as usize;
    flip_byte(&path, len - 1);
    let check = |what: &str, detectable: bool| {
        let r = lib_open(&env.repo, "pw2").unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(r.key_name(), second);
        // With two key files, the damaged key's password is a wrong password.
        assert!(matches!(lib_open(&env.repo, PASSWORD), Err(Error::WrongPassword)), "{what}");
        // Listing keys reports damage it can see without the password (a name mismatch).
        assert_eq!(r.list_keys().is_err(), detectable, "{what}");
        let out = Out::from(env.cmd().env("ARCA_PASSWORD", "pw2").args(["key", "list"]).output().unwrap());
        assert_eq!(out.code != 0, detectable, "{what}");
    };
    check("name mismatch", true);
    // Renamed to its new hash: now only authentication (with its password) can tell.
    rename_to_hash(&path);
    check("authentication", false);
}

#[test]
fn a_flipped_byte_in_an_index_file_is_an_integrity_error_naming_it() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("a.txt"), b"hello").unwrap();
    env.backup(&[&src], &[]);
    let name = repo_files(&env.repo, FileType::Index).remove(0);
    let path = repo_file(&env.repo, FileType::Index, &name);
    flip_byte(&path, 20);
    // Skipped and reported, so the rest of the index stays usable (issue 6 item 11).
    let e = env.open().load_index_reporting().unwrap().1.remove(0);
    assert!(integrity_object(&e).contains(&name), "{e}");
    let out = env.run(&["ls", "latest"]).code(4);
    assert!(out.stderr.contains(&name), "{}", out.stderr);
    // Renamed to match its bytes: authentication catches it.
    let renamed = rename_to_hash(&path);
    let e = env.open().load_index_reporting().unwrap().1.remove(0);
    assert!(integrity_object(&e).contains(&renamed), "{e}");
    let out = env.run(&["ls", "latest"]).code(4);
    assert!(out.stderr.contains(&renamed), "{}", out.stderr);
}

#[test]
fn a_flipped_byte_in_a_snapshot_is_an_integrity_error_naming_it() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("a.txt"), b"hello").unwrap();
    env.backup(&[&src], &[]);
    let name = repo_files(&env.repo, FileType::Snapshot).remove(0);
    let path = repo_file(&env.repo, FileType::Snapshot, &name);
    let len = fs::metadata(&path).unwrap().len() as usize;
    flip_byte(&path, len - 5);
    let id = Id::from_hex(&name).unwrap();
    let e = expect_err(env.open().load_snapshot(&id));
    assert!(integrity_object(&e).contains(&name), "{e}");
    let out = env.run(&["snapshots"]).code(4);
    assert!(out.stderr.contains(&name), "{}", out.stderr);
    let renamed = rename_to_hash(&path);
    let e = expect_err(env.open().load_snapshot(&Id::from_hex(&renamed).unwrap()));
    assert!(integrity_object(&e).contains(&renamed), "{e}");
    let out = env.run(&["snapshots"]).code(4);
    assert!(out.stderr.contains(&renamed), "{}", out.stderr);
}

#[test]
fn a_flipped_byte_in_a_pack_is_an_integrity_error_naming_the_blob() {
    let env = Env::new();
    let src = env.mkdir("src");
    let data = random_bytes(3, 200_000);
    fs::write(src.join("victim.bin"), &data).unwrap();
    env.backup(&[&src], &[]);
    let node = latest_node(&env, &src.join("victim.bin"));
    let arca::format::tree::NodeKind::File { content, .. } = node.kind else { panic!("not a file") };
    let chunk = content[0].id;
    let repo = env.open();
    let index = repo.load_index().unwrap();
    let loc = index.lookup(BlobType::Data, &chunk).unwrap();
    let pack_path = repo_file(&env.repo, FileType::Pack, &loc.pack.to_hex());
    flip_byte(&pack_path, loc.offset as usize + 100);

    let e = expect_err(repo.read_blob(&repo.load_index().unwrap(), BlobType::Data, &chunk));
    assert_eq!(integrity_object(&e), format!("data blob {chunk}"));
    let out = env.run(&["dump", &sref("latest", &src.join("victim.bin"))]).code(4);
    assert!(out.stderr.contains(&chunk.to_hex()), "{}", out.stderr);
    let target = env.path("restored");
    let out = env.run(&["restore", &sref("latest", &src), "--target", target.to_str().unwrap()]).code(4);
    assert!(out.stderr.contains(&chunk.to_hex()) && out.stderr.contains("victim.bin"), "{}", out.stderr);
    // Whole-pack readers check the name.
    let out = env.run(&["cat", "pack", &loc.pack.to_hex()]).code(4);
    assert!(out.stderr.contains(&loc.pack.to_hex()), "{}", out.stderr);
}

#[test]
fn a_truncated_pack_fails_cleanly() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("victim.bin"), random_bytes(4, 300_000)).unwrap();
    env.backup(&[&src], &[]);
    let repo = env.open();
    let index = repo.load_index().unwrap();
    let file = repo.load_index_file(&repo.index_ids().unwrap()[0]).unwrap();
    let data_pack = file.iter().find(|p| p.blobs.iter().all(|b| b.blob_type == BlobType::Data)).unwrap();
    let path = repo_file(&env.repo, FileType::Pack, &data_pack.id.to_hex());
    let bytes = fs::read(&path).unwrap();
    write_over(&path, &bytes[..bytes.len() / 2]);
    let b = data_pack.blobs.iter().max_by_key(|b| b.offset + b.stored_len).unwrap();
    assert!(repo.read_blob(&index, BlobType::Data, &b.id).is_err());
    let out = env.run(&["dump", &sref("latest", &src.join("victim.bin"))]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains(&data_pack.id.to_hex()), "{}", out.stderr);
    let out = env.run(&["check"]).code(4);
    assert!(out.all().contains(&format!("pack {}", data_pack.id.to_hex())), "{}", out.all());
    // Cut to a few bytes: still no panic anywhere.
    write_over(&path, &bytes[..3]);
    env.run(&["check", "--read-data"]).code(4);
    assert_ne!(env.run(&["dump", &sref("latest", &src.join("victim.bin"))]).code, 0);
}

// ---- publishing and tmp/ --------------------------------------------------------------------

#[test]
fn leftovers_in_tmp_are_ignored_and_old_ones_cleaned_by_the_next_backup() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("a.txt"), b"one").unwrap();
    env.backup(&[&src], &[]);
    let tmp = env.repo.join("tmp");
    let old = tmp.join("0123456789abcdef0123456789abcdef.tmp");
    let fresh = tmp.join("fedcba9876543210fedcba9876543210.tmp");
    // An orphan that is a complete copy of a real pack, and a torn half-written file.
    let pack = repo_files(&env.repo, FileType::Pack).remove(0);
    fs::copy(repo_file(&env.repo, FileType::Pack, &pack), &old).unwrap();
    fs::write(&fresh, b"ARCA\x03\x01\x00\x00 torn").unwrap();
    let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
    fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_times(fs::FileTimes::new().set_modified(two_hours_ago))
        .unwrap();

    // Readers do not look at tmp/.
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 1);
    let report = env.json(&["check", "--read-data"]);
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    assert!(report["warnings"].as_array().unwrap().is_empty(), "{report}");
    assert!(old.exists() && fresh.exists(), "readers must not clean tmp/");

    // A backup removes the old orphan but not the fresh one (it may belong to a live writer).
    fs::write(src.join("b.txt"), b"two").unwrap();
    env.backup(&[&src], &[]);
    assert!(!old.exists(), "orphan older than an hour survived a backup");
    assert!(fresh.exists(), "a fresh file in tmp/ was removed");
    // Nothing else is left in tmp/ by the backup itself.
    let names: Vec<_> = fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![fresh.file_name().unwrap().to_owned()]);
}

// ---- hostile key files ----------------------------------------------------------------------

/// The only key file, with its Argon2 memory set to `memory_kib` and renamed to match its bytes.
fn hostile_kdf(env: &Env, memory_kib: u32) -> String {
    let name = repo_files(&env.repo, FileType::Key).remove(0);
    let path = repo_file(&env.repo, FileType::Key, &name);
    let mut bytes = fs::read(&path).unwrap();
    // header (8), KDF ID (1), then memory as u32 LE.
    bytes[9..13].copy_from_slice(&memory_kib.to_le_bytes());
    write_over(&path, &bytes);
    rename_to_hash(&path)
}

#[test]
fn hostile_kdf_parameters_are_rejected_before_argon2_runs() {
    let env = Env::new();
    let name = hostile_kdf(&env, 2 << 20); // 2 GiB
    let kf = arca::format::key::KeyFile::decode(&fs::read(repo_file(&env.repo, FileType::Key, &name)).unwrap());
    assert!(kf.unwrap_err().is_integrity());

    let start = Instant::now();
    let e = expect_err(lib_open(&env.repo, PASSWORD));
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(e.is_integrity(), "{e:?}");
    assert!(e.to_string().contains("KDF parameters out of bounds"), "{e}");

    // The CLI under a 1 GiB address-space limit: a 2 GiB Argon2 allocation would abort it.
    let mut cmd = arca_std_cmd();
    cmd.env("ARCA_REPOSITORY", &env.repo).env("ARCA_PASSWORD", PASSWORD).args(["snapshots"]);
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: 1 << 30, rlim_max: 1 << 30 };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = Out::from(cmd.output().unwrap()).code(4);
    assert!(out.stderr.contains("KDF parameters out of bounds"), "{}", out.stderr);

    // Other out-of-range values too, including ones that would overflow.
    for m in [u32::MAX, 0, 8191] {
        hostile_kdf(&env, m);
        assert!(expect_err(lib_open(&env.repo, PASSWORD)).is_integrity(), "memory {m}");
    }
    // Deriving directly with such parameters is refused as well.
    let p = KdfParams { memory_kib: 2 << 20, time_cost: 1, lanes: 1 };
    assert!(arca::crypto::kdf::derive_kek(b"pw", &[0; 32], &p).is_err());
}

#[test]
fn a_hostile_key_file_next_to_a_good_one_is_skipped() {
    let (env, repo) = Env::with_lib_repo();
    let second = repo.add_key(b"pw2", FAST_KDF, "second").unwrap();
    // Make the first key hostile, leave the second alone.
    let first = repo.key_name().to_string();
    let path = repo_file(&env.repo, FileType::Key, &first);
    let mut bytes = fs::read(&path).unwrap();
    bytes[9..13].copy_from_slice(&(4u32 << 20).to_le_bytes());
    write_over(&path, &bytes);
    rename_to_hash(&path);
    let r = lib_open(&env.repo, "pw2").unwrap();
    assert_eq!(r.key_name(), second);
    assert!(matches!(lib_open(&env.repo, PASSWORD), Err(Error::WrongPassword)));
}

#[test]
fn index_lookup_finds_every_blob_and_no_other_among_many_and_clustered_ids() {
    use arca::format::blob::BlobType;
    use arca::format::index::{IndexBlob, IndexPack};
    use arca::repo::index::Index;
    use arca::Id;
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut ids: Vec<Id> = Vec::new();
    for i in 0..20_000u64 {
        let mut id = [0u8; 32];
        for part in id.chunks_mut(8) {
            part.copy_from_slice(&next().to_le_bytes());
        }
        if i % 50 == 0 {
            // Clusters sharing the first 8 (and up to 27) bytes exercise the exact-search fallback.
            id[..8].copy_from_slice(&[0x42; 8]);
            id[8..8 + (i as usize % 20)].fill(7);
        }
        ids.push(Id(id));
    }
    let blobs = |range: std::ops::Range<usize>, t| {
        ids[range]
            .iter()
            .enumerate()
            .map(|(i, id)| IndexBlob { blob_type: t, id: *id, offset: 8 + i as u32, stored_len: 41, plain_len: 0 })
            .collect()
    };
    let packs = vec![
        IndexPack { id: Id([1; 32]), size: u32::MAX, ephemeral: None, blobs: blobs(0..10_000, BlobType::Data) },
        IndexPack { id: Id([2; 32]), size: u32::MAX, ephemeral: None, blobs: blobs(10_000..15_000, BlobType::Tree) },
    ];
    let index = Index::from_packs(packs);
    for (i, id) in ids.iter().enumerate() {
        let (t, other, pack) = match i {
            0..10_000 => (BlobType::Data, BlobType::Tree, Id([1; 32])),
            10_000..15_000 => (BlobType::Tree, BlobType::Data, Id([2; 32])),
            _ => {
                assert!(index.lookup(BlobType::Data, id).is_none() && index.lookup(BlobType::Tree, id).is_none());
                continue;
            }
        };
        let loc = index.lookup(t, id).unwrap_or_else(|| panic!("blob {i} not found"));
        assert_eq!(loc.pack, pack);
        let position_in_pack = if i < 10_000 { i } else { i - 10_000 };
        assert_eq!(loc.offset, 8 + position_in_pack as u32);
        assert!(index.lookup(other, id).is_none(), "blob {i} found under the wrong type");
    }
}

/// A repository copied by a tool that drops empty directories (rclone, an object-store sync)
/// lacks `locks/`, `tmp/`, `snapshots/`, shard directories…: every command still works, and
/// writers recreate what they need (format-spec/04 §4.1).
#[test]
fn a_repository_copied_without_its_empty_directories_can_be_written_to() {
    let env = Env::new();
    let src = env.mkdir("src");
    write_random_file(&src.join("a"), 1, 300_000);
    let first = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    env.run(&["forget", &first]).ok();
    env.run(&["prune"]).ok();
    // What the copy leaves: every empty directory gone, deepest first.
    let mut dirs: Vec<std::path::PathBuf> = walk_dirs(&env.repo);
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        let _ = fs::remove_dir(&d); // fails, as it should, on a directory that is not empty
    }
    for d in ["locks", "tmp", "snapshots"] {
        assert!(!env.repo.join(d).exists(), "{d}/ was empty and is gone");
    }
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 0);
    env.run(&["check"]).ok();
    write_random_file(&src.join("b"), 2, 200_000);
    env.backup(&[&src], &[]);
    env.run(&["check", "--read-data"]).ok();
    let out = env.path("out");
    env.restore("latest", &out, &[]);
    assert_eq!(hash_file(&under(&out, &src.join("b"))), hash_file(&src.join("b")));
}

/// Every directory below `root` (not `root` itself).
fn walk_dirs(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.push(p.clone());
                stack.push(p);
            }
        }
    }
    out
}

#[test]
fn writers_racing_into_a_new_shard_all_publish() {
    // Parallel packers publish packs and parity files into shards (`parity/xx`) created on
    // first use: every writer that found the shard missing must succeed, whichever created it.
    let env = Env::bare();
    let b = arca::backend::open(&env.path("repo"), Default::default()).unwrap();
    b.create().unwrap();
    for shard in 0..32u8 {
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let b = &b;
                s.spawn(move || {
                    let name = format!("{shard:02x}{t:062x}");
                    b.write(FileType::Parity, &name, &[t]).unwrap_or_else(|e| panic!("{name}: {e}"));
                });
            }
        });
        assert_eq!(std::fs::read_dir(env.path("repo").join(format!("parity/{shard:02x}"))).unwrap().count(), 8);
    }
}
