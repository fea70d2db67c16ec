//! The operations journal (format-spec/21-journal.md): what each command records, that a
//! journal problem never fails an operation, filters, and compaction (alone and in prune).

use crate::common::*;
use arca::backend::FileType;
use arca::format::header::FileKind;
use arca::ops::journal::{self, Op, Outcome};
use serde_json::Value;
use std::fs;

fn records(env: &Env, extra: &[&str]) -> Vec<Value> {
    let mut a = vec!["journal"];
    a.extend_from_slice(extra);
    env.json(&a).as_array().unwrap().clone()
}

fn ops(rs: &[Value]) -> Vec<String> {
    rs.iter().map(|r| format!("{} {}", r["op"].as_str().unwrap(), r["outcome"].as_str().unwrap())).collect()
}

fn journal_files(env: &Env) -> Vec<String> {
    repo_files(&env.repo, FileType::Journal)
}

fn source(env: &Env) -> std::path::PathBuf {
    let src = env.mkdir("src");
    fs::write(src.join("a.txt"), b"alpha").unwrap();
    write_random_file(&src.join("big.bin"), 1, 300_000);
    src
}

#[test]
fn each_command_records_what_it_did() {
    let env = Env::new();
    let src = source(&env);
    let b = env.backup(&[&src], &["--tag", "web"]);
    let snap = b["snapshot"].as_str().unwrap().to_string();
    env.run(&["check", "--read-data"]).ok();
    let target = env.path("restored");
    env.restore("latest", &target, &[]);
    env.run(&["dump", &format!("latest:{}/a.txt", src.display())]).ok();
    env.run(&["verify", "latest", target.to_str().unwrap()]).ok();
    env.run(&["restore", "ffffffff", "--target", target.to_str().unwrap()]).code(1);

    let rs = records(&env, &[]);
    assert_eq!(ops(&rs), ["backup ok", "check ok", "restore ok", "dump ok", "verify ok", "restore failed"], "{rs:#?}");
    let backup = &rs[0];
    assert_eq!(backup["snapshots"][0], snap.as_str());
    assert_eq!(backup["bytes"], b["summary"]["bytes_read"]);
    assert_eq!(backup["files"], 2);
    assert_eq!(backup["labels"]["tags"], "web");
    assert_eq!(backup["labels"]["paths"], src.to_str().unwrap());
    assert_eq!(backup["metrics"]["bytes_added"], b["summary"]["bytes_added"]);
    assert_eq!(backup["exit_code"], 0);
    assert_eq!(rs[1]["labels"]["read_data"], "all");
    assert!(rs[1]["bytes"].as_u64().unwrap() > 0, "check --read-data records the bytes it read");
    assert_eq!(rs[2]["snapshots"][0], snap.as_str());
    assert_eq!(rs[2]["bytes"], 300_005);
    assert_eq!(rs[2]["files"], 2);
    assert_eq!(rs[2]["labels"]["target"], target.to_str().unwrap());
    let failed = &rs[5];
    assert_eq!(failed["exit_code"], 1);
    assert!(failed["errors"][0].as_str().unwrap().contains("ffffffff"), "{failed}");
    for r in &rs {
        assert_eq!(r["hostname"], arca::sys::hostname());
        assert!(r["duration_ns"].as_u64().is_some());
    }
    let times: Vec<i64> = rs.iter().map(|r| r["time_ns"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "ordered by time: {times:?}");
    // One file per operation, each content-addressed.
    assert_eq!(journal_files(&env).len(), 6);
}

#[test]
fn a_partial_backup_is_recorded_as_partial_with_its_errors() {
    let env = Env::new();
    let src = source(&env);
    // Permission bits do not stop root; /proc/self/mem fails to read (EIO) for everyone.
    let unreadable = if is_root() {
        std::path::PathBuf::from("/proc/self/mem")
    } else {
        let p = src.join("locked");
        fs::write(&p, b"secret").unwrap();
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
        p
    };
    env.run(&["backup", src.to_str().unwrap(), unreadable.to_str().unwrap()]).code(3);
    let rs = records(&env, &[]);
    assert_eq!(ops(&rs), ["backup partial"]);
    assert_eq!(rs[0]["exit_code"], 3);
    let name = unreadable.file_name().unwrap().to_str().unwrap();
    assert!(rs[0]["errors"][0].as_str().unwrap().contains(name), "{}", rs[0]);
}

#[test]
fn dry_runs_and_listings_write_no_record() {
    let env = Env::new();
    let src = source(&env);
    env.backup(&[&src], &[]);
    assert_eq!(journal_files(&env).len(), 1);
    env.run(&["backup", "--dry-run", src.to_str().unwrap()]).ok();
    env.run(&["restore", "latest", "--dry-run", "--target", env.path("t").to_str().unwrap()]).ok();
    env.run(&["forget", "--keep-last", "1", "--dry-run"]).ok();
    env.run(&["prune", "--dry-run"]).ok();
    env.run(&["snapshots"]).ok();
    env.run(&["ls", "latest"]).ok();
    env.run(&["journal"]).ok();
    assert_eq!(journal_files(&env).len(), 1);
}

#[test]
fn a_damaged_journal_file_is_named_and_never_blocks_a_backup() {
    let env = Env::new();
    let src = source(&env);
    env.backup(&[&src], &[]);
    let victim = journal_files(&env).pop().unwrap();
    env.run(&["check"]).ok();
    let path = repo_file(&env.repo, FileType::Journal, &victim);
    flip_byte(&path, 60);
    // A backup with a damaged journal file in the repository succeeds.
    env.backup(&[&src], &[]);
    let out = env.run(&["--json", "journal"]).code(4);
    assert!(out.stderr.contains(&victim), "names the damaged file: {}", out.stderr);
    assert_eq!(ops(out.json().as_array().unwrap()), ["check ok", "backup ok"]);
    // check warns (naming it) but passes: no data depends on the journal.
    let out = env.run(&["check"]).ok();
    assert!(out.stderr.contains(&format!("journal file {victim}")), "{}", out.stderr);
    // Compaction leaves what it cannot read in place.
    env.run(&["journal", "--compact"]).code(4);
    assert!(path.exists());
    assert_eq!(journal_files(&env).len(), 2);
}

#[test]
fn an_unwritable_journal_is_a_warning_not_a_failed_backup() {
    let env = Env::new();
    let src = source(&env);
    // A file where the directory should be: even root cannot write into it.
    let dir = env.repo.join("journal");
    let _ = fs::remove_dir_all(&dir);
    fs::write(&dir, b"not a directory").unwrap();
    let out = env.run(&["backup", src.to_str().unwrap()]).ok();
    assert!(out.stderr.contains("could not write the journal record of this backup"), "{}", out.stderr);
    env.run(&["check", "--read-data"]).ok();
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 1);
}

#[test]
fn filters_select_records() {
    let env = Env::new();
    let src = source(&env);
    let first = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    env.run(&["check"]).ok();
    env.run(&["restore", "deadbeef", "--target", env.path("t").to_str().unwrap()]).code(1);
    env.backup(&[&src], &[]);
    assert_eq!(ops(&records(&env, &["--op", "backup"])), ["backup ok", "backup ok"]);
    assert_eq!(ops(&records(&env, &["--op", "check,restore"])), ["check ok", "restore failed"]);
    assert_eq!(ops(&records(&env, &["--failed"])), ["restore failed"]);
    assert_eq!(ops(&records(&env, &["--last", "2"])), ["restore failed", "backup ok"]);
    // The backup that made it, and the check that checked it.
    let by_snap = records(&env, &["--snapshot", &first[..10]]);
    assert_eq!(ops(&by_snap), ["backup ok", "check ok"]);
    assert_eq!(records(&env, &["--since", "1h"]).len(), 4);
    assert_eq!(records(&env, &["--since", "2099-01-01"]).len(), 0);
    assert_eq!(records(&env, &["--host", "no-such-host"]).len(), 0);
    let bad = env.run(&["journal", "--op", "bakup"]).code(2);
    assert!(bad.stderr.contains("unknown operation"), "{}", bad.stderr);
    let table = env.run(&["journal"]).ok().text();
    assert!(table.contains("backup") && table.contains("failed"), "{table}");
}

#[test]
fn compaction_merges_files_keeps_every_record_and_heals_duplicates() {
    let env = Env::new();
    let src = source(&env);
    for _ in 0..3 {
        env.backup(&[&src], &[]);
        env.run(&["check"]).ok();
    }
    let before = records(&env, &[]);
    assert_eq!(journal_files(&env).len(), 6);
    env.run(&["journal", "--compact"]).ok();
    assert_eq!(journal_files(&env).len(), 1);
    assert_eq!(records(&env, &[]), before);

    // A crash after compaction's write step leaves records in two files: shown once, and the
    // next compaction removes the duplicate file.
    let repo = env.open();
    let j = journal::load(&repo).unwrap();
    journal::append(&repo, &j.records[0]).unwrap();
    assert_eq!(journal_files(&env).len(), 2);
    assert_eq!(records(&env, &[]), before);
    env.run(&["journal", "--compact"]).ok();
    assert_eq!(journal_files(&env).len(), 1);
    assert_eq!(records(&env, &[]), before);
}

#[test]
fn prune_compacts_the_journal_and_records_survive_forget() {
    let env = Env::new();
    let src = source(&env);
    let first = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    fs::write(src.join("a.txt"), b"changed").unwrap();
    write_random_file(&src.join("big.bin"), 2, 300_000);
    env.backup(&[&src], &[]);
    env.run(&["forget", "--keep-last", "1", "--prune"]).ok();
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 1);
    // The backup and forget records merged by prune's commit, and prune's own record, written
    // after it.
    assert_eq!(journal_files(&env).len(), 2, "prune compacted the journal");
    let rs = records(&env, &[]);
    assert_eq!(ops(&rs), ["backup ok", "backup ok", "forget ok", "prune ok"]);
    assert_eq!(rs[0]["snapshots"][0], first.as_str(), "the forgotten snapshot's record is kept");
    assert_eq!(rs[2]["snapshots"][0], first.as_str());
    assert!(rs[3]["metrics"]["bytes_freed"].as_u64().unwrap() > 0);
    env.run(&["check", "--read-data"]).ok();
}

#[test]
fn records_of_a_later_version_and_stray_names_are_tolerated() {
    let env = Env::new();
    let repo = env.open();
    let mut r = journal::start(Op::Other(200));
    r.outcome = Outcome::Other(9);
    journal::append(&repo, &r).unwrap();
    fs::write(env.repo.join("journal").join("README"), b"stray").unwrap();
    let rs = records(&env, &[]);
    assert_eq!(ops(&rs), ["op 200 outcome 9"]);
    // The record's bytes follow the spec: a file of kind 7 named by its hash.
    let name = &journal_files(&env).into_iter().find(|n| n.len() == 64).unwrap();
    let bytes = fs::read(repo_file(&env.repo, FileType::Journal, name)).unwrap();
    assert_eq!(&bytes[..8], b"ARCA\x07\x01\x00\x00");
    assert_eq!(arca::Id::of_file_bytes(&bytes).to_hex(), *name);
}

#[test]
fn verified_snapshots_come_from_drills_and_full_checks() {
    let env = Env::new();
    let src = source(&env);
    let a = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    let repo = env.open();
    let snaps = repo.list_snapshots().unwrap();
    assert!(journal::verified(&journal::load(&repo).unwrap().records, &snaps).is_empty());
    env.run(&["check", "--read-data-subset", "1/2"]).ok();
    assert!(journal::verified(&journal::load(&repo).unwrap().records, &snaps).is_empty(), "a subset verifies nothing");
    env.run(&["check", "--read-data"]).ok();
    let v = journal::verified(&journal::load(&repo).unwrap().records, &snaps);
    assert_eq!(v.iter().map(|i| i.to_hex()).collect::<Vec<_>>(), [a]);
}

#[test]
fn latest_verified_names_the_newest_snapshot_with_a_verification_on_record() {
    let env = Env::new();
    let src = source(&env);
    let a = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    let target = env.path("t");
    let out = env.run(&["restore", "latest-verified", "--target", target.to_str().unwrap()]).code(1);
    assert!(out.stderr.contains("no selected snapshot has a verification on record"), "{}", out.stderr);
    env.run(&["check", "--read-data"]).ok();
    fs::write(src.join("a.txt"), b"newer, not verified yet").unwrap();
    let b = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    assert_ne!(a, b);
    let r = env.json(&["restore", "latest-verified", "--target", target.to_str().unwrap()]);
    assert_eq!(r["snapshot"], a.as_str());
    assert_eq!(fs::read(target.join(src.strip_prefix("/").unwrap()).join("a.txt")).unwrap(), b"alpha");
    env.run(&["check", "--read-data"]).ok();
    let r = env.json(&["restore", "LATEST-VERIFIED", "--dry-run", "--target", env.path("u").to_str().unwrap()]);
    assert_eq!(r["snapshot"], b.as_str(), "a full check after it verifies the newer snapshot too");
}

/// `arca --json restore latest --target TARGET`, run in the test's directory so that a relative
/// target is recorded as given.
fn restore_to(env: &Env, target: &str) {
    let out = env.cmd().current_dir(env.path("")).args(["--json", "restore", "latest", "--target", target]).output();
    assert!(out.expect("run arca").status.success(), "restore to {target}");
}

fn journal_file_bytes(env: &Env, name: &str) -> Vec<u8> {
    fs::read(repo_file(&env.repo, FileType::Journal, name)).unwrap()
}

#[test]
fn journal_files_are_padded_so_their_size_does_not_follow_the_target_path() {
    let env = Env::new();
    let src = source(&env);
    env.backup(&[&src], &[]);
    let before = journal_files(&env);
    // A 5-byte target and a 900-byte one (four nested directories).
    let long = format!("{}/{}", vec!["d".repeat(224); 3].join("/"), "d".repeat(225));
    assert_eq!(long.len(), 900);
    for target in ["short", long.as_str()] {
        restore_to(&env, target);
    }
    let rs = records(&env, &["--op", "restore"]);
    assert_eq!(rs.len(), 2);
    let targets: Vec<&str> = rs.iter().map(|r| r["labels"]["target"].as_str().unwrap()).collect();
    assert_eq!(targets.iter().map(|t| t.len()).collect::<Vec<_>>(), [5, 900], "{targets:?}");
    let new: Vec<String> = journal_files(&env).into_iter().filter(|n| !before.contains(n)).collect();
    assert_eq!(new.len(), 2);
    let sizes: Vec<usize> = new.iter().map(|n| journal_file_bytes(&env, n).len()).collect();
    assert_eq!(sizes, [4096, 4096], "both restores' files are the smallest class (format-spec/21 §21.7)");
    // Stored uncompressed (method 00), so that compression cannot undo the padding.
    let repo = env.open();
    for n in &new {
        let bytes = journal_file_bytes(&env, n);
        let body = repo.decrypt_file(FileKind::Journal, &bytes, "t").unwrap();
        assert_eq!(body.len(), 4096 - 49);
        let rs = arca::format::journal::decode(&body, "t").unwrap();
        assert_eq!(arca::format::journal::encode(&rs), body);
    }
    // The backup's file too; a compaction writes a padded file of a power-of-two size.
    assert_eq!(journal_file_bytes(&env, &before[0]).len(), 4096);
    env.run(&["journal", "--compact"]).ok();
    let after = journal_files(&env);
    assert_eq!(after.len(), 1);
    assert_eq!(journal_file_bytes(&env, &after[0]).len(), 4096);
    assert_eq!(records(&env, &[]).len(), 3);
}

#[test]
fn tampered_padding_is_rejected_and_unpadded_files_of_older_writers_still_read() {
    use arca::format::journal as fjournal;
    let env = Env::new();
    let src = source(&env);
    env.backup(&[&src], &[]);
    let repo = env.open();
    let name = journal_files(&env).pop().unwrap();
    let body = repo.decrypt_file(FileKind::Journal, &journal_file_bytes(&env, &name), "t").unwrap();
    let records = fjournal::decode(&body, "t").unwrap();
    let publish = |bytes: Vec<u8>| {
        let id = arca::Id::of_file_bytes(&bytes).to_hex();
        fs::write(repo_file(&env.repo, FileType::Journal, &id), bytes).unwrap();
        id
    };
    // A hostile key holder re-seals the body with a nonzero padding byte: the file is
    // authentic, but rejected by name as an integrity error, and never stops an operation.
    let mut bad = body.clone();
    *bad.last_mut().unwrap() = 1;
    let tampered = publish(repo.encrypt_file(FileKind::Journal, &bad).unwrap());
    // Padded to a larger class than its records need: rejected too.
    let mut larger = fjournal::encode_unpadded(&records);
    larger.resize(8192 - 49, 0);
    let too_large = publish(repo.encrypt_file(FileKind::Journal, &larger).unwrap());
    fs::remove_file(repo_file(&env.repo, FileType::Journal, &name)).unwrap();
    let j = journal::load(&repo).unwrap();
    let mut damaged: Vec<&str> = j.damaged.iter().map(|(n, _)| n.as_str()).collect();
    damaged.sort();
    let mut expected = [tampered.as_str(), too_large.as_str()];
    expected.sort();
    assert_eq!(damaged, expected);
    for (n, e) in &j.damaged {
        assert!(matches!(e, arca::Error::Integrity { .. }), "{e:?}");
        assert!(e.to_string().contains(n.as_str()) && e.to_string().contains("padd"), "{e}");
    }
    let out = env.run(&["--json", "journal"]).code(4);
    assert!(out.stderr.contains(&tampered) && out.stderr.contains(&too_large), "{}", out.stderr);
    env.backup(&[&src], &[]);

    // A file as writers before padding wrote it: unpadded, compressed. It reads, and a
    // compaction rewrites it padded (and leaves the rejected files in place).
    let unpadded = fjournal::encode_unpadded(&records);
    let old = publish(repo.encrypt_file(FileKind::Journal, &unpadded).unwrap());
    assert!(journal_file_bytes(&env, &old).len() < 4096);
    let listed = env.run(&["--json", "journal"]).code(4).json();
    assert_eq!(ops(listed.as_array().unwrap()), ["backup ok", "backup ok"]);
    env.run(&["journal", "--compact"]).code(4);
    let files = journal_files(&env);
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(!files.contains(&old));
    let merged: Vec<&String> = files.iter().filter(|n| **n != tampered && **n != too_large).collect();
    assert_eq!(journal_file_bytes(&env, merged[0]).len(), 4096);
}
