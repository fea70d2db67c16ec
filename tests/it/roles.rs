//! Key roles (format-spec/24-roles.md): a backup key writes snapshots it cannot read back and is
//! refused everything else, a restore key reads and changes nothing, and a modified client
//! holding a backup key still cannot decrypt anything stored.

use super::common::*;
use arca::backend::FileType;
use arca::crypto::{kdf, Role, SymKey};
use arca::format::blob;
use arca::format::header::{self, FileKind, Sealing};
use arca::format::key::KeyFile;
use arca::format::pack;
use arca::id::Id;
use std::path::Path;

const BACKUP_PW: &str = "backup password";
const RESTORE_PW: &str = "restore password";

/// An `arca` command for the env's repository opened with `password`.
fn as_key(env: &Env, password: &str) -> assert_cmd::Command {
    let mut c = env.cmd();
    // A cache of this test's own: a backup key keeps its parent trees there.
    c.env("ARCA_PASSWORD", password).env("XDG_CACHE_HOME", env.path("cache"));
    c
}

fn run_as(env: &Env, password: &str, args: &[&str]) -> Out {
    Out::from(as_key(env, password).args(args).output().unwrap())
}

/// Add a key of `role` with `password` (cheap KDF); returns the JSON of `key add`.
fn add_key(env: &Env, role: &str, password: &str) {
    env.cmd()
        .env("ARCA_NEW_PASSWORD", password)
        .args(["key", "add", "--role", role, "--kdf-memory", "8", "--kdf-iterations", "1"])
        .assert()
        .success();
}

/// A repository with an admin snapshot of `src`, a backup key and a restore key.
fn setup() -> (Env, std::path::PathBuf) {
    let env = Env::new();
    let src = env.mkdir("src");
    make_realistic_tree(&src);
    env.backup(&[&src], &[]);
    add_key(&env, "backup", BACKUP_PW);
    add_key(&env, "restore", RESTORE_PW);
    (env, src)
}

fn backup_as(env: &Env, password: &str, src: &Path, extra: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json", "backup"];
    a.extend_from_slice(extra);
    a.push(src.to_str().unwrap());
    run_as(env, password, &a).ok().json()
}

#[test]
fn a_backup_key_writes_snapshots_that_only_restore_and_admin_keys_read() {
    let (env, src) = setup();
    // Enabling roles sealed the index for every role and set the feature bit.
    assert!(env.open().has_roles());
    std::fs::write(src.join("new-after-roles.txt"), b"written by the backup key").unwrap();
    write_random_file(&src.join("big.bin"), 11, 3 << 20);
    let first = backup_as(&env, BACKUP_PW, &src, &[]);
    assert_eq!(first["code"], 0);
    let snap = first["snapshot"].as_str().unwrap().to_string();
    // What the backup key wrote is sealed to the read key: its snapshot, and its packs.
    let snap_bytes = std::fs::read(repo_file(&env.repo, FileType::Snapshot, &snap)).unwrap();
    assert_eq!(snap_bytes[6], Sealing::Reader as u8, "the backup key's snapshot is sealed to the read key");
    let reader_packs = repo_files(&env.repo, FileType::Pack)
        .iter()
        .filter(|n| std::fs::read(repo_file(&env.repo, FileType::Pack, n)).unwrap()[6] == 1)
        .count();
    assert!(reader_packs >= 2, "data and tree packs sealed to the read key: {reader_packs}");
    for t in [FileType::Index, FileType::Lock] {
        for n in repo_files(&env.repo, t) {
            assert_eq!(std::fs::read(repo_file(&env.repo, t, &n)).unwrap()[6], Sealing::Meta as u8, "{t:?} {n}");
        }
    }
    // The restore key restores it byte for byte; the admin key checks everything clean.
    let target = env.mkdir("restored");
    let out = run_as(&env, RESTORE_PW, &["--json", "restore", &snap, "--target", target.to_str().unwrap()]);
    out.ok();
    assert_same_tree(&src, &under(&target, &src), Cmp::default());
    env.run(&["check", "--read-data"]).ok();
    run_as(&env, RESTORE_PW, &["check", "--read-data"]).ok();
    // The backup key deduplicated against what the admin stored before roles existed.
    let added = first["summary"]["bytes_added"].as_u64().unwrap();
    assert!(added < (3 << 20) + 4096, "stored {added} bytes: more than the new files");
}

#[test]
fn a_backup_key_finds_unchanged_files_through_its_own_cache_and_without_it_reads_everything() {
    let (env, src) = setup();
    let first = backup_as(&env, BACKUP_PW, &src, &[]);
    assert!(first["summary"]["bytes_read"].as_u64().unwrap() > 0);
    assert_eq!(first["summary"]["files_unchanged"], 0, "no parent yet: it cannot read the admin's snapshot");
    let second = backup_as(&env, BACKUP_PW, &src, &[]);
    assert_eq!(second["summary"]["bytes_read"], 0, "the cache makes every file unchanged: {second}");
    assert!(second["summary"]["files_unchanged"].as_u64().unwrap() > 0);
    // The snapshot names its parent, which a reader can follow.
    let listed = run_as(&env, RESTORE_PW, &["--json", "snapshots"]).ok().json();
    let last = listed.as_array().unwrap().iter().find(|s| s["id"] == second["snapshot"]).unwrap().clone();
    assert_eq!(last["parent"], first["snapshot"]);
    // Without the cache: everything is read again, and nothing new is stored.
    let third = backup_as(&env, BACKUP_PW, &src, &["--no-cache"]);
    assert!(third["summary"]["bytes_read"].as_u64().unwrap() > 0);
    assert_eq!(third["summary"]["files_unchanged"], 0);
    assert!(third["summary"]["bytes_added"].as_u64().unwrap() < 4096, "{third}");
}

#[test]
fn a_damaged_parent_cache_is_reported_and_the_backup_reads_everything() {
    let (env, src) = setup();
    backup_as(&env, BACKUP_PW, &src, &[]);
    let cache = env.path("cache/arca/backup-parents");
    let files: Vec<_> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect();
    for f in &files {
        flip_byte(f, 40);
    }
    let next = backup_as(&env, BACKUP_PW, &src, &[]);
    assert!(next["summary"]["bytes_read"].as_u64().unwrap() > 0);
    let warned = next["warnings"].as_array().unwrap().iter().any(|w| w.to_string().contains("backup parent cache"));
    assert!(warned, "the damaged cache is named: {next}");
    // A FIFO planted in its place does not make the backup wait.
    let files: Vec<_> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect();
    for f in &files {
        std::fs::remove_file(f).unwrap();
        mkfifo(f);
    }
    let next = backup_as(&env, BACKUP_PW, &src, &[]);
    assert!(next["summary"]["bytes_read"].as_u64().unwrap() > 0);
    assert!(next["warnings"].to_string().contains("not a regular file"), "{next}");
}

#[test]
fn each_role_is_refused_what_it_may_not_do_before_anything_is_written() {
    let (env, src) = setup();
    backup_as(&env, BACKUP_PW, &src, &[]);
    let target = env.path("t");
    let t = target.to_str().unwrap();
    let s = src.to_str().unwrap();
    let dump_ref = format!("latest:{s}");
    let refused: &[(&str, &[&str])] = &[
        (BACKUP_PW, &["restore", "latest", "--target", t]),
        (BACKUP_PW, &["dump", &dump_ref]),
        (BACKUP_PW, &["ls", "latest"]),
        (BACKUP_PW, &["snapshots"]),
        (BACKUP_PW, &["forget", "--keep-last", "1"]),
        (BACKUP_PW, &["prune"]),
        (BACKUP_PW, &["tag", "latest", "--add", "x"]),
        (BACKUP_PW, &["check"]),
        (BACKUP_PW, &["repair", "index"]),
        (BACKUP_PW, &["unlock"]),
        (BACKUP_PW, &["parity", "set", "--overhead", "off"]),
        (BACKUP_PW, &["key", "remove", "00"]),
        (RESTORE_PW, &["backup", s]),
        (RESTORE_PW, &["forget", "--keep-last", "1"]),
        (RESTORE_PW, &["prune"]),
        (RESTORE_PW, &["tag", "latest", "--add", "x"]),
        (RESTORE_PW, &["repair", "snapshots"]),
        (RESTORE_PW, &["unlock"]),
    ];
    let before = tree_hashes(&env.repo);
    for (pw, args) in refused {
        let out = run_as(&env, pw, args);
        let role = if *pw == BACKUP_PW { "backup" } else { "restore" };
        let text = out.all();
        assert!(text.contains(&format!("role ({role})")), "{args:?}: the message names the role: {text}");
        out.code(13);
    }
    // `key add` reads a new password first: refused the same way.
    let out = Out::from(as_key(&env, BACKUP_PW).env("ARCA_NEW_PASSWORD", "x").args(["key", "add"]).output().unwrap());
    out.code(13);
    assert_eq!(tree_hashes(&env.repo), before, "a refused command changed the repository");
}

#[test]
fn a_key_file_edited_to_claim_another_role_does_not_open() {
    let (env, _src) = setup();
    let repo = env.open();
    let backup_key = repo
        .list_keys()
        .unwrap()
        .into_iter()
        .find(|k| k.file.role == Role::Backup)
        .expect("the backup key is listed with its role");
    let path = repo_file(&env.repo, FileType::Key, &backup_key.name);
    // Byte 6 is the role: admin (00) and restore (02) are both refused, named or not.
    for role in [0u8, 2] {
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[6] = role;
        let edited = env.path(&format!("edited-{role}"));
        std::fs::write(&edited, &bytes).unwrap();
        let name = Id::of_file_bytes(&bytes).to_hex();
        std::fs::copy(&edited, repo_file(&env.repo, FileType::Key, &name)).unwrap();
    }
    std::fs::remove_file(&path).unwrap();
    run_as(&env, BACKUP_PW, &["snapshots"]).code(12);
    // The other keys still open.
    env.run(&["snapshots"]).ok();
    run_as(&env, RESTORE_PW, &["snapshots"]).ok();
}

/// Every 32-byte secret a backup key file yields, and every key derivable from them with the
/// format's context strings: what a modified client holding the key could try.
fn backup_key_material(env: &Env) -> Vec<[u8; 32]> {
    let name = env.open().list_keys().unwrap().into_iter().find(|k| k.file.role == Role::Backup).unwrap().name;
    let kf = KeyFile::decode(&std::fs::read(repo_file(&env.repo, FileType::Key, &name)).unwrap()).unwrap();
    let kek = kdf::derive_kek(BACKUP_PW.as_bytes(), &kf.salt, &kf.kdf).unwrap();
    let secret = arca::crypto::open_with(&kek, &[&kf.nonce[..], &kf.ciphertext].concat(), &kf.associated_data(), "key")
        .expect("the backup password opens its key file");
    let mut raw: Vec<[u8; 32]> = secret.chunks(32).filter(|c| c.len() == 32).map(|c| c.try_into().unwrap()).collect();
    raw.push(*blake3::hash(&secret).as_bytes());
    let contexts = [
        arca::crypto::CTX_ENCRYPTION,
        arca::crypto::CTX_BLOB_ID,
        arca::crypto::CTX_METADATA,
        arca::crypto::CTX_READ_KEY,
        arca::crypto::CTX_SEALED_OBJECT,
    ];
    let mut all = raw.clone();
    for r in &raw {
        for c in contexts {
            all.push(blake3::derive_key(c, r));
        }
    }
    all
}

#[test]
fn a_modified_client_with_a_backup_key_cannot_decrypt_anything_stored() {
    let (env, src) = setup();
    // Data written before roles, and data the backup key itself wrote in an earlier session.
    std::fs::write(src.join("secret.txt"), b"the backup key wrote this and must not read it back").unwrap();
    backup_as(&env, BACKUP_PW, &src, &[]);
    let material = backup_key_material(&env);
    let repo_id = *env.open().repo_id();
    let (index, _) = env.open().load_index_reporting().unwrap();
    let mut tried = 0;
    // Every blob envelope and TOC of every pack, with every key and every ephemeral key's
    // X25519 with every candidate secret.
    for p in index.packs() {
        let bytes = std::fs::read(repo_file(&env.repo, FileType::Pack, &p.id.to_hex())).unwrap();
        let record = env.open().toc_of_bytes(&p.id, &bytes).unwrap();
        let mut keys: Vec<[u8; 32]> = material.clone();
        if let Some(e) = p.ephemeral {
            for m in &material {
                let shared = x25519_dalek::x25519(*m, e);
                keys.push(blake3::derive_key(arca::crypto::CTX_SEALED_OBJECT, &shared));
                let mut h = blake3::Hasher::new_derive_key(arca::crypto::CTX_SEALED_OBJECT);
                h.update(&shared).update(&e).update(m);
                keys.push(*h.finalize().as_bytes());
            }
        }
        for b in &record.blobs {
            let env_bytes = &bytes[b.offset as usize..(b.offset + b.stored_len) as usize];
            for k in &keys {
                let ad = blob::blob_ad(b.blob_type, &b.id, &repo_id);
                assert!(
                    SymKey::from_bytes(*k).open(env_bytes, &ad, "blob").is_err(),
                    "a backup key's secret opens a blob"
                );
                tried += 1;
            }
        }
        let trailer: [u8; 4] = bytes[bytes.len() - 4..].try_into().unwrap();
        let first = pack::first_blob_at(p.ephemeral.as_ref()) as u64;
        let (at, len) = pack::locate_toc_after(bytes.len() as u64, trailer, first, "pack").unwrap();
        let toc = &bytes[at as usize..(at + len as u64) as usize];
        for k in &keys {
            let ad = pack::toc_ad_for(p.ephemeral.as_ref(), &repo_id);
            assert!(SymKey::from_bytes(*k).open(toc, &ad, "toc").is_err(), "a backup key's secret opens a TOC");
        }
    }
    // Every snapshot and journal file.
    for (t, kind) in [(FileType::Snapshot, FileKind::Snapshot), (FileType::Journal, FileKind::Journal)] {
        for n in repo_files(&env.repo, t) {
            let bytes = std::fs::read(repo_file(&env.repo, t, &n)).unwrap();
            let parts = header::split_sealing(&bytes, kind, &[Sealing::Full, Sealing::Reader], "file").unwrap();
            let ad = header::file_ad(parts.header, &repo_id);
            for k in &material {
                assert!(
                    SymKey::from_bytes(*k).open(parts.sealed, &ad, "file").is_err(),
                    "a backup key opens {t:?} {n}"
                );
                tried += 1;
            }
        }
    }
    assert!(tried > 1000, "only {tried} attempts");
    // And through the library: the repository opened with the backup key refuses to read.
    let repo = lib_open(&env.repo, BACKUP_PW).unwrap();
    assert_eq!(repo.role(), Role::Backup);
    let (index, _) = repo.load_index_reporting().unwrap();
    let some_blob = index.packs().iter().find_map(|p| {
        let bytes = std::fs::read(repo_file(&env.repo, FileType::Pack, &p.id.to_hex())).ok()?;
        env.open().toc_of_bytes(&p.id, &bytes).ok()?.blobs.first().copied()
    });
    let b = some_blob.unwrap();
    let err = repo.read_blob(&index, b.blob_type, &b.id).unwrap_err();
    assert!(matches!(err, arca::Error::RoleDenied { .. }), "{err:?}");
    assert!(repo.list_snapshots_and_damage().unwrap().0.is_empty(), "a backup key read a snapshot");
}

#[test]
fn prune_moves_what_a_backup_key_sealed_into_packs_of_its_own() {
    let (env, src) = setup();
    write_random_file(&src.join("churn.bin"), 5, 2 << 20);
    backup_as(&env, BACKUP_PW, &src, &[]);
    std::fs::remove_file(src.join("churn.bin")).unwrap();
    write_random_file(&src.join("keep.bin"), 6, 1 << 20);
    let last = backup_as(&env, BACKUP_PW, &src, &[]);
    // Keep only the last snapshot; repack everything partly used.
    env.run(&["forget", "--keep-last", "1", "--prune", "--max-unused", "0"]).ok();
    env.run(&["check", "--read-data"]).ok();
    let target = env.mkdir("restored");
    env.restore(last["snapshot"].as_str().unwrap(), &target, &[]);
    assert_same_tree(&src, &under(&target, &src), Cmp::default());
    // Backups with the backup key go on after the prune.
    std::fs::write(src.join("after-prune.txt"), b"more").unwrap();
    let after = backup_as(&env, BACKUP_PW, &src, &[]);
    assert_eq!(after["code"], 0);
    env.run(&["check", "--read-data"]).ok();
}

#[test]
fn a_backup_key_made_before_the_config_changed_is_refused_as_another_repositorys() {
    let (env, _src) = setup();
    // Replace the config by one of another repository: the backup key's bound hash no longer
    // matches, so it is a foreign key file, not a way in.
    let other = Env::new();
    std::fs::copy(other.repo.join("config"), env.repo.join("config")).unwrap();
    let out = run_as(&env, BACKUP_PW, &["--json", "backup", "/nonexistent"]);
    let text = out.all();
    assert!(text.contains("another repository"), "{text}");
}

/// A modified client with a backup key writes an index file, sorting first, that points every
/// data blob at a pack of its own (garbage): prune must not then count the real packs unused
/// and delete history. It stops before deleting anything; `repair index` drops the lie.
#[test]
fn a_backup_keys_hostile_index_cannot_make_prune_delete_history() {
    use arca::format::index::IndexPack;
    let (env, src) = setup();
    let admin = env.open();
    let mut blobs = Vec::new();
    for id in admin.index_ids().unwrap() {
        for p in admin.load_index_file(&id).unwrap() {
            blobs.extend(p.blobs.into_iter().filter(|b| b.blob_type == arca::format::blob::BlobType::Data));
        }
    }
    assert!(!blobs.is_empty());
    // The attacker's pack: garbage of the right length, under its own hash.
    let mut fake = Vec::new();
    let mut offset = 40u32;
    for b in &mut blobs {
        b.offset = offset;
        offset += b.stored_len;
    }
    fake.resize(offset as usize + 100, 0x5a);
    let fake_id = Id::of_file_bytes(&fake);
    let path = repo_file(&env.repo, FileType::Pack, &fake_id.to_hex());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &fake).unwrap();
    let record = IndexPack { id: fake_id, size: fake.len() as u32, ephemeral: Some([9; 32]), blobs };
    // Through the library with the backup key, until its index file's name sorts first.
    let hostile = lib_open(&env.repo, BACKUP_PW).unwrap();
    let _lock = hostile.lock(false).unwrap();
    loop {
        let names = repo_files(&env.repo, FileType::Index);
        let id = hostile.save_index(std::slice::from_ref(&record)).unwrap().to_hex();
        if names.iter().all(|n| id < *n) {
            break;
        }
        // With its parity file: a lone parity file would be a lost index file to prune.
        hostile.remove_file(FileType::Index, &id).unwrap();
    }
    drop(_lock);
    let packs_before = repo_files(&env.repo, FileType::Pack);
    let out = env.run(&["prune", "--max-unused", "0"]);
    let text = out.all();
    out.code(4);
    assert!(text.contains("hostile index file"), "{text}");
    assert_eq!(repo_files(&env.repo, FileType::Pack), packs_before, "prune deleted packs");
    // The index rebuilt from the packs leaves the lie out (and reports the garbage pack as the
    // damage it is); history is whole.
    let out = env.run(&["repair", "index"]);
    assert!(out.all().contains("left out of the index"), "{}", out.all());
    out.code(4);
    env.run(&["prune", "--max-unused", "0"]).ok();
    env.run(&["check", "--read-data"]).ok();
    let target = env.mkdir("restored");
    env.restore("latest", &target, &[]);
    assert_same_tree(&src, &under(&target, &src), Cmp::default());
}

/// Two administrators add the first role keys at the same moment, each process racing the other
/// to enable roles: the second must not rewrite the config again (that would unbind the
/// first's backup key). Both keys back up afterwards.
#[test]
fn two_racing_role_key_additions_leave_both_keys_working() {
    let env = Env::new();
    let src = env.mkdir("src");
    make_realistic_tree(&src);
    env.backup(&[&src], &[]);
    let spawn = |password: &str| {
        let mut c = std::process::Command::new(arca_bin());
        c.env("ARCA_REPOSITORY", &env.repo).env("ARCA_PASSWORD", PASSWORD).env("ARCA_NEW_PASSWORD", password);
        c.env("XDG_CONFIG_HOME", "/nonexistent/arca-test-config");
        c.args(["key", "add", "--role", "backup", "--kdf-memory", "8", "--kdf-iterations", "1"]);
        c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap()
    };
    let (a, b) = (spawn("first backup key"), spawn("second backup key"));
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(env.open().has_roles());
    for pw in ["first backup key", "second backup key"] {
        let out = backup_as(&env, pw, &src, &[]);
        assert_eq!(out["code"], 0, "{pw}: {out}");
    }
    env.run(&["check", "--read-data"]).ok();
}
