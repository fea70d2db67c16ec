//! Key rotation (format-spec/25-rotation.md): every key replaced, everything sealed again, the
//! old keys opening nothing afterwards; a rotation killed after any step leaves a repository
//! that checks clean and restores, and running it again finishes it; sessions that opened the
//! repository before a rotation cannot write under the old keys afterwards.

use super::common::*;
use arca::backend::FileType;
use arca::crypto::kdf::{self, Unwrapped};
use arca::crypto::{Keys, MasterKey, SymKey};
use arca::format::blob;
use arca::format::header::{self, FileKind, Sealing};
use arca::format::key::KeyFile;
use arca::format::pack;
use arca::lifecycle::rotate::Step;
use std::path::Path;

const NEW_PW: &str = "the password after the incident";
const RESTORE_PW: &str = "restore password";

fn with_pw(env: &Env, password: &str, args: &[&str]) -> Out {
    Out::from(env.cmd().env("ARCA_PASSWORD", password).args(args).output().unwrap())
}

fn rotate_cmd(env: &Env, password: &str) -> assert_cmd::Command {
    rotate_cmd_waiting(env, password, "0")
}

/// [`rotate_cmd`] waiting up to `wait` for the lock.
fn rotate_cmd_waiting(env: &Env, password: &str, wait: &str) -> assert_cmd::Command {
    let mut c = env.cmd();
    c.env("ARCA_PASSWORD", password).env("ARCA_NEW_PASSWORD", NEW_PW);
    c.args(["--json", "key", "rotate", "--kdf-memory", "8", "--kdf-iterations", "1", "--retry-lock", wait]);
    c
}

/// `key rotate` with a cheap KDF for the new key.
fn rotate(env: &Env, password: &str) -> Out {
    Out::from(rotate_cmd(env, password).output().unwrap())
}

/// `key rotate` killed (SIGABRT, as kill -9 would leave it) right after `step`.
fn rotate_crashing(env: &Env, password: &str, step: Step) {
    let out = rotate_cmd(env, password).env("ARCA_TEST_ROTATE_CRASH_AFTER", step.name()).output().unwrap();
    assert_eq!(out.status.code(), None, "{step:?}: the hook aborts the process: {out:?}");
}

/// The master key the only admin key file of `env` holds for `password`.
fn admin_master(env: &Env, password: &str) -> MasterKey {
    for name in repo_files(&env.repo, FileType::Key) {
        let kf = KeyFile::decode(&std::fs::read(repo_file(&env.repo, FileType::Key, &name)).unwrap()).unwrap();
        if let Ok((Unwrapped::Admin(m), _)) = kdf::unwrap_any(&kf, password.as_bytes()) {
            return m;
        }
    }
    panic!("no admin key for {password:?}");
}

fn assert_restores(env: &Env, password: &str, src: &Path, tag: &str) {
    let target = env.path(&format!("restored-{tag}"));
    with_pw(env, password, &["restore", "latest", "--target", target.to_str().unwrap()]).ok();
    assert_eq!(tree_hashes(&under(&target, src)), tree_hashes(src), "{tag}: restored tree differs");
}

/// How many stored objects `keys` open: every encrypted file, whatever its sealing, and every
/// blob envelope and table of contents of every pack.
fn opened_by(env: &Env, keys: &Keys) -> Vec<String> {
    let repo_id = *env.open_with(NEW_PW).repo_id();
    let mut opened = Vec::new();
    let all = [Sealing::Full, Sealing::Meta, Sealing::Reader];
    let try_file = |bytes: &[u8], kind: FileKind| -> bool {
        let Ok(parts) = header::split_sealing(bytes, kind, &all, "file") else { return false };
        let ad = header::file_ad(parts.header, &repo_id);
        let key = match (parts.sealing, parts.ephemeral) {
            (Sealing::Meta, _) => keys.meta().clone(),
            (Sealing::Reader, Some(e)) => match keys.sealed_key(&e, "file") {
                Ok(k) => k,
                Err(_) => return false,
            },
            _ => keys.full().unwrap().clone(),
        };
        key.open(parts.sealed, &ad, "file").is_ok()
    };
    let config = std::fs::read(env.repo.join("config")).unwrap();
    if try_file(&config, FileKind::Config) {
        opened.push("config".into());
    }
    for (t, kind) in [
        (FileType::Index, FileKind::Index),
        (FileType::Snapshot, FileKind::Snapshot),
        (FileType::Journal, FileKind::Journal),
        (FileType::Lock, FileKind::Lock),
    ] {
        for n in repo_files(&env.repo, t) {
            if try_file(&std::fs::read(repo_file(&env.repo, t, &n)).unwrap(), kind) {
                opened.push(format!("{t:?} {n}"));
            }
        }
    }
    let policy = env.repo.join("parity/policy");
    if policy.exists() && try_file(&std::fs::read(&policy).unwrap(), FileKind::ParityPolicy) {
        opened.push("parity policy".into());
    }
    let current = env.open_with(NEW_PW);
    for n in repo_files(&env.repo, FileType::Pack) {
        let bytes = std::fs::read(repo_file(&env.repo, FileType::Pack, &n)).unwrap();
        let id = arca::id::Id::from_hex(&n).unwrap();
        let record = current.toc_of_bytes(&id, &bytes).expect("every pack is the new keys'");
        let key: SymKey = match record.ephemeral {
            Some(e) => keys.sealed_key(&e, "pack").unwrap(),
            None => keys.full().unwrap().clone(),
        };
        for b in &record.blobs {
            let envelope = &bytes[b.offset as usize..(b.offset + b.stored_len) as usize];
            if key.open(envelope, &blob::blob_ad(b.blob_type, &b.id, &repo_id), "blob").is_ok() {
                opened.push(format!("blob {} in pack {n}", b.id));
            }
        }
        let trailer: [u8; 4] = bytes[bytes.len() - 4..].try_into().unwrap();
        let first = pack::first_blob_at(record.ephemeral.as_ref()) as u64;
        let (at, len) = pack::locate_toc_after(bytes.len() as u64, trailer, first, "pack").unwrap();
        let toc = &bytes[at as usize..(at + len as u64) as usize];
        if key.open(toc, &pack::toc_ad_for(record.ephemeral.as_ref(), &repo_id), "toc").is_ok() {
            opened.push(format!("TOC of pack {n}"));
        }
    }
    opened
}

trait OpenWith {
    fn open_with(&self, password: &str) -> arca::repo::Repository;
}

impl OpenWith for Env {
    fn open_with(&self, password: &str) -> arca::repo::Repository {
        lib_open(&self.repo, password).expect("open repository")
    }
}

/// A repository with roles (a restore key), a backup key's snapshot sealed to the read key,
/// two admin snapshots, journal records and a parity policy.
fn rich_setup() -> (Env, std::path::PathBuf) {
    let env = Env::new();
    let src = env.mkdir("src");
    make_realistic_tree(&src);
    env.run(&["parity", "set", "--overhead", "5%"]).ok();
    env.backup(&[&src], &[]);
    for (role, pw) in [("restore", RESTORE_PW), ("backup", "backup password")] {
        env.cmd()
            .env("ARCA_NEW_PASSWORD", pw)
            .args(["key", "add", "--role", role, "--kdf-memory", "8", "--kdf-iterations", "1"])
            .assert()
            .success();
    }
    std::fs::write(src.join("written-by-the-backup-key.txt"), b"sealed to the read key").unwrap();
    Out::from(
        env.cmd()
            .env("ARCA_PASSWORD", "backup password")
            .env("XDG_CACHE_HOME", env.path("cache"))
            .args(["backup", src.to_str().unwrap()])
            .output()
            .unwrap(),
    )
    .ok();
    std::fs::write(src.join("last.txt"), b"the latest admin backup").unwrap();
    env.backup(&[&src], &[]);
    (env, src)
}

#[test]
fn a_rotation_seals_everything_again_and_the_old_keys_open_nothing() {
    let (env, src) = rich_setup();
    let old = Keys::derive(&admin_master(&env, PASSWORD));
    let snapshots_before = env.json(&["snapshots"]).as_array().unwrap().len();
    let out = rotate(&env, PASSWORD).ok().json();
    assert_eq!(out["finished"], true, "{out}");
    assert_eq!(out["resumed"], false, "{out}");
    assert_eq!(out["snapshots"].as_array().unwrap().len(), snapshots_before, "{out}");
    let removed: Vec<&str> =
        out["removed_keys"].as_array().unwrap().iter().map(|k| k["role"].as_str().unwrap()).collect();
    assert_eq!(removed.len(), 3, "the old admin, restore and backup keys: {out}");
    assert!(removed.contains(&"restore") && removed.contains(&"backup"), "{out}");
    assert!(out["journal_files"].as_u64().unwrap() > 0, "{out}");
    // Only the new key opens the repository; the old password, the restore key and the
    // backup key open nothing any more.
    assert_eq!(repo_files(&env.repo, FileType::Key).len(), 1);
    for pw in [PASSWORD, RESTORE_PW, "backup password"] {
        assert_eq!(with_pw(&env, pw, &["snapshots"]).code, 12, "{pw} still opens");
    }
    assert_eq!(with_pw(&env, NEW_PW, &["--json", "snapshots"]).ok().json().as_array().unwrap().len(), snapshots_before);
    let check = with_pw(&env, NEW_PW, &["check", "--read-data"]);
    assert_eq!(check.code, 0, "{}", check.all());
    assert_restores(&env, NEW_PW, &src, "after");
    // The hostile part: the old master key, with every key it derives, opens no stored byte.
    let opened = opened_by(&env, &old);
    assert!(opened.is_empty(), "the old keys still open: {opened:?}");
    // ...while the new keys open all of it (the check above is not vacuous).
    let new = Keys::derive(&admin_master(&env, NEW_PW));
    let opened = opened_by(&env, &new);
    assert!(opened.iter().any(|o| o.starts_with("blob")) && opened.contains(&"config".to_string()), "{opened:?}");
    // A copy of an old key file put back opens nothing either.
    let config = env.open_with(NEW_PW).config().clone();
    assert_eq!(config.required_features & arca::format::config::FEATURE_ROTATION, 0);
    assert!(config.previous_master.is_none());
}

#[test]
fn a_rotation_killed_after_any_step_checks_clean_restores_and_finishes_when_run_again() {
    for (i, step) in Step::ALL.into_iter().enumerate() {
        let env = Env::new();
        env.run(&["parity", "set", "--overhead", "5%"]).ok();
        let old = Keys::derive(&admin_master(&env, PASSWORD));
        let src = env.mkdir("src");
        write_random_file(&src.join("a.bin"), 1, 300_000);
        write_random_file(&src.join("b.bin"), 2, 40_000);
        env.backup(&[&src], &[]);
        write_random_file(&src.join("c.bin"), 3, 70_000);
        env.backup(&[&src], &[]);
        rotate_crashing(&env, PASSWORD, step);
        // Before the config switch the old key opens; from it on, only the new one.
        let pw = if i == 0 { PASSWORD } else { NEW_PW };
        let check = with_pw(&env, pw, &["check", "--read-data", "--retry-lock", "0"]);
        assert_eq!(check.code, 0, "after a crash at {step:?}:\n{}", check.all());
        let unfinished = check.all().contains("key rotation is unfinished");
        assert_eq!(unfinished, i > 0, "{step:?}: check says whether old keys still open anything:\n{}", check.all());
        assert_restores(&env, pw, &src, step.name());
        // A backup in between (another host's timer) is kept by the rotation that finishes.
        write_random_file(&src.join("d.bin"), 4 + i as u64, 50_000);
        with_pw(&env, pw, &["backup", src.to_str().unwrap()]).ok();
        let again = rotate(&env, pw).ok().json();
        assert_eq!(again["finished"], true, "{step:?}: {again}");
        assert_eq!(again["resumed"], i > 0, "{step:?}: {again}");
        let check = with_pw(&env, NEW_PW, &["check", "--read-data"]);
        assert_eq!(check.code, 0, "{step:?}, finished:\n{}", check.all());
        assert_eq!(repo_files(&env.repo, FileType::Key).len(), 1, "{step:?}");
        assert_eq!(with_pw(&env, NEW_PW, &["--json", "snapshots"]).ok().json().as_array().unwrap().len(), 3);
        assert_restores(&env, NEW_PW, &src, &format!("{}-finished", step.name()));
        let opened = opened_by(&env, &old);
        assert!(opened.is_empty(), "{step:?}: the old keys still open {opened:?}");
    }
}

#[test]
fn a_session_opened_before_a_rotation_cannot_lock_or_write_after_it() {
    let env = Env::new();
    let src = env.mkdir("src");
    write_random_file(&src.join("a.bin"), 1, 100_000);
    env.backup(&[&src], &[]);
    // Opened with the old keys, as a backup that started just before the rotation.
    let early = env.open();
    rotate(&env, PASSWORD).ok();
    let err = early.lock(false).err().expect("a lock under replaced keys is refused");
    assert!(matches!(err, arca::Error::Refused(_)), "{err:?}");
    assert!(err.to_string().contains("keys changed"), "{err}");
    assert!(repo_files(&env.repo, FileType::Lock).is_empty(), "the refused lock is removed again");
    let check = with_pw(&env, NEW_PW, &["check"]);
    assert_eq!(check.code, 0, "{}", check.all());
}

#[test]
fn two_rotations_at_once_leave_one_new_key_and_a_clean_repository() {
    let env = Env::new();
    let src = env.mkdir("src");
    make_realistic_tree(&src);
    env.backup(&[&src], &[]);
    let start = |pw: &str| {
        let mut c = arca_std_cmd();
        c.env("ARCA_REPOSITORY", &env.repo)
            .env("ARCA_PASSWORD", PASSWORD)
            .env("ARCA_NEW_PASSWORD", pw)
            .args(["key", "rotate", "--kdf-memory", "8", "--kdf-iterations", "1", "--retry-lock", "2m"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        c.spawn().unwrap()
    };
    let (a, b) = (start("first new password"), start("second new password"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let winners: Vec<&str> = [("first new password", &a), ("second new password", &b)]
        .into_iter()
        .filter(|(_, o)| o.status.success())
        .map(|(pw, _)| pw)
        .collect();
    assert!(!winners.is_empty(), "{a:?} {b:?}");
    // The loser was refused before it wrote anything: its keys were gone, or the config
    // changed under it while it waited for the lock.
    assert_eq!(winners.len(), 1, "{a:?} {b:?}");
    for o in [&a, &b].into_iter().filter(|o| !o.status.success()) {
        assert!(o.status.code().is_some(), "{o:?}");
        assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"), "{o:?}");
    }
    assert_eq!(repo_files(&env.repo, FileType::Key).len(), 1);
    let opens: Vec<&&str> = winners.iter().filter(|pw| with_pw(&env, pw, &["snapshots"]).code == 0).collect();
    assert_eq!(opens.len(), 1, "exactly one winner's password opens: {winners:?}");
    let check = with_pw(&env, opens[0], &["check", "--read-data"]);
    assert_eq!(check.code, 0, "{}", check.all());
    assert_restores(&env, opens[0], &src, "raced");
}

#[test]
fn commands_that_would_mix_generations_are_refused_while_a_rotation_is_unfinished() {
    let env = Env::new();
    let src = env.mkdir("src");
    write_random_file(&src.join("a.bin"), 1, 100_000);
    env.backup(&[&src], &[]);
    rotate_crashing(&env, PASSWORD, Step::SnapshotsCopied);
    for args in [
        vec!["prune"],
        vec!["tag", "--add", "x", "latest"],
        vec!["rewrite", "--exclude", "a.bin", "latest"],
        vec!["forget", "--keep-last", "1", "--prune"],
        vec!["repair", "index"],
        vec!["key", "add", "--kdf-memory", "8", "--kdf-iterations", "1"],
    ] {
        let out = Out::from(
            env.cmd().env("ARCA_PASSWORD", NEW_PW).env("ARCA_NEW_PASSWORD", "x y z").args(&args).output().unwrap(),
        );
        assert_ne!(out.code, 0, "{args:?}");
        assert!(out.all().contains("key rotation is unfinished"), "{args:?}: {}", out.all());
    }
    // Reading works throughout, and an older reader is told why it cannot.
    let listed = with_pw(&env, NEW_PW, &["--json", "snapshots"]).ok().json();
    assert_eq!(listed.as_array().unwrap().len(), 2, "the old snapshot and its copy: {listed}");
    // Both restore and verify, the one not yet rewritten by the previous blob-ID key.
    for (i, snap) in listed.as_array().unwrap().iter().enumerate() {
        let target = env.path(&format!("t{i}"));
        let id = snap["id"].as_str().unwrap();
        with_pw(&env, NEW_PW, &["restore", id, "--target", target.to_str().unwrap(), "--verify"]).ok();
        assert_eq!(tree_hashes(&under(&target, &src)), tree_hashes(&src));
        // `verify` against the live files: nothing differs.
        with_pw(&env, NEW_PW, &["verify", id]).ok();
    }
    let config = env.open_with(NEW_PW).config().clone();
    assert_ne!(config.required_features & arca::format::config::FEATURE_ROTATION, 0);
}

#[test]
fn a_backup_racing_a_rotation_is_kept_readable_or_refused_before_it_writes() {
    let env = Env::new();
    let src = env.mkdir("src");
    make_realistic_tree(&src);
    env.backup(&[&src], &[]);
    write_random_file(&src.join("big.bin"), 7, 40 << 20);
    let mut backup = arca_std_cmd();
    backup
        .env("ARCA_REPOSITORY", &env.repo)
        .env("ARCA_PASSWORD", PASSWORD)
        .args(["--json", "backup", "--retry-lock", "1m", src.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let running = backup.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    let rotated = rotate_cmd_waiting(&env, PASSWORD, "1m").output().unwrap();
    let backed_up = running.wait_with_output().unwrap();
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));
    let snapshots = with_pw(&env, NEW_PW, &["--json", "snapshots"]).ok().json();
    let n = snapshots.as_array().unwrap().len();
    if backed_up.status.success() {
        // It finished before the rotation took its lock: its snapshot was rewritten with the rest.
        assert_eq!(n, 2, "{snapshots}");
        assert_restores(&env, NEW_PW, &src, "raced-backup");
    } else {
        // It opened the repository before the rotation and was refused at its lock, before it
        // wrote a snapshot.
        let err = String::from_utf8_lossy(&backed_up.stderr);
        assert!(err.contains("keys changed") || err.contains("wrong password"), "{err}");
        assert_eq!(n, 1, "{snapshots}");
    }
    let check = with_pw(&env, NEW_PW, &["check", "--read-data"]);
    assert_eq!(check.code, 0, "{}", check.all());
}

#[test]
fn snapshots_alike_in_every_field_but_their_tree_all_survive_a_rotation() {
    let env = Env::new();
    let src = env.mkdir("src");
    write_random_file(&src.join("a.bin"), 1, 60_000);
    let first = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    write_random_file(&src.join("b.bin"), 2, 60_000);
    env.backup(&[&src], &[]);
    // A third snapshot equal to the first in time, host, paths, tags and summary, with the
    // second one's tree (what two `rewrite`s of one snapshot can leave): a copy matched by its
    // fields alone would stand for both, and one of the two would be lost.
    let repo = env.open();
    let all = repo.list_snapshots().unwrap();
    let (_, a) = all.iter().find(|(id, _)| id.to_hex().starts_with(&first[..8])).unwrap().clone();
    let (_, b) = all.iter().find(|(id, _)| !id.to_hex().starts_with(&first[..8])).unwrap().clone();
    repo.save_snapshot(&arca::format::snapshot::Snapshot { tree: b.tree, ..a.clone() }).unwrap();
    drop(repo);
    // Crash after the copy, so that the rerun has to find the copies it already made.
    rotate_crashing(&env, PASSWORD, Step::SnapshotsCopied);
    rotate(&env, NEW_PW).ok();
    let after = env.open_with(NEW_PW).list_snapshots().unwrap();
    assert_eq!(after.len(), 3, "every snapshot survives");
    let alike: Vec<_> = after.iter().filter(|(_, s)| s.time == a.time).collect();
    assert_eq!(alike.len(), 2);
    assert_ne!(alike[0].1.tree, alike[1].1.tree, "the two kept their own trees");
    let check = with_pw(&env, NEW_PW, &["check", "--read-data"]);
    assert_eq!(check.code, 0, "{}", check.all());
}
