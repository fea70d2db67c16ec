//! `arca copy`: snapshots copied into a repository with its own keys (format-spec/17 §17.10).

use crate::common::*;
use arca::backend::FileType;
use arca::format::config::ChunkerParams;
use arca::repo::{InitOptions, Repository};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

/// The destination's password, different from the source's.
const DST_PW: &str = "another horse, another battery";

/// A scratch directory with an initialised destination repository (password [`DST_PW`]).
fn dest() -> Env {
    let env = Env::bare();
    dst_run(&env, &["init", "--kdf-memory", "8", "--kdf-iterations", "1"]).ok();
    env
}

/// `arca ARGS` against the destination, with its password.
fn dst_run(dst: &Env, args: &[&str]) -> Out {
    Out::from(dst.cmd().env("ARCA_PASSWORD", DST_PW).args(args).output().expect("run arca"))
}

/// `arca copy --to DST ARGS` from `src`, the destination's password in ARCA_TO_PASSWORD.
fn copy(src: &Env, dst: &Path, args: &[&str]) -> Out {
    let mut c = src.cmd();
    c.env("ARCA_TO_PASSWORD", DST_PW).arg("copy").arg("--to").arg(dst).args(args);
    Out::from(c.output().expect("run arca"))
}

/// `arca --json copy …`, which must succeed: the report.
fn copy_json(src: &Env, dst: &Env, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let mut c = src.cmd();
    c.env("ARCA_TO_PASSWORD", DST_PW).args(&a[..1]).arg("copy").arg("--to").arg(&dst.repo).args(&a[1..]);
    Out::from(c.output().expect("run arca")).ok().json()["report"].clone()
}

fn snapshot_ids(dst: &Env) -> Vec<String> {
    let mut v: Vec<String> = repo_files(&dst.repo, FileType::Snapshot);
    v.sort();
    v
}

fn outcomes(report: &Value) -> Vec<String> {
    report["snapshots"].as_array().unwrap().iter().map(|s| s["outcome"].as_str().unwrap().to_string()).collect()
}

/// Source tree with hard links, symlinks, nanosecond mtimes and modes.
fn source_tree(env: &Env) -> PathBuf {
    let src = env.path("data");
    make_realistic_tree(&src);
    fs::hard_link(src.join("src/run.sh"), src.join("docs/run-link.sh")).unwrap();
    std::os::unix::fs::symlink("../big.bin", src.join("docs/big-link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", src.join("dangling")).unwrap();
    src
}

#[test]
fn copy_round_trip_checks_clean_and_restores_identically() {
    let env = Env::new();
    let dst = dest();
    let src = source_tree(&env);
    env.backup(&[&src], &["--tag", "first"]);
    write_random_file(&src.join("docs/more.bin"), 11, 1 << 20);
    env.backup(&[&src], &[]);
    let r = copy_json(&env, &dst, &[]);
    assert_eq!(outcomes(&r), ["copied", "copied"]);
    assert!(r["blobs"].as_u64().unwrap() > 5 && r["stored_bytes"].as_u64().unwrap() > 3 << 20, "{r}");
    dst_run(&dst, &["check", "--read-data"]).ok();
    // Both copies restore byte-identically with metadata; the newest is the second backup.
    let listed = dst_run(&dst, &["--json", "snapshots"]).ok().json();
    let list = listed.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let target = env.path("restored");
    dst_run(&dst, &["restore", "latest", "--target", target.to_str().unwrap()]).ok();
    assert_same_tree(&src, &under(&target, &src), Cmp::default());
    // The second backup's parent is the first: its copy names the first's copy.
    assert_eq!(list[1]["parent"], list[0]["id"]);
    assert!(list[0]["parent"].is_null());
    // The copies keep the source snapshots' fields (time, host, paths, tags).
    let source_list = env.json(&["snapshots"]);
    for (d, s) in list.iter().zip(source_list.as_array().unwrap()) {
        for k in ["time_ns", "hostname", "paths", "tags", "username"] {
            assert_eq!(d[k], s[k], "field {k}");
        }
    }
}

#[test]
fn second_copy_transfers_nothing_and_writes_no_snapshot() {
    let env = Env::new();
    let dst = dest();
    let src = source_tree(&env);
    env.backup(&[&src], &[]);
    let first = copy_json(&env, &dst, &[]);
    assert_eq!(outcomes(&first), ["copied"]);
    let (snaps, packs, index) =
        (snapshot_ids(&dst), repo_files(&dst.repo, FileType::Pack).len(), repo_files(&dst.repo, FileType::Index));
    let again = copy_json(&env, &dst, &[]);
    assert_eq!(outcomes(&again), ["skipped"]);
    assert_eq!((again["blobs"].as_u64(), again["bytes"].as_u64()), (Some(0), Some(0)));
    assert_eq!(again["snapshots"][0]["destination"], first["snapshots"][0]["destination"]);
    assert_eq!(snapshot_ids(&dst), snaps);
    assert_eq!(repo_files(&dst.repo, FileType::Pack).len(), packs);
    assert_eq!(repo_files(&dst.repo, FileType::Index), index);
    let text = copy(&env, &dst.repo, &[]).ok().text();
    assert!(text.contains("skipped (already in destination as"), "{text}");
    assert!(text.contains("transferred 0 blobs, 0 B"), "{text}");
}

#[test]
fn filters_and_explicit_ids_choose_what_is_copied() {
    let env = Env::new();
    let dst = dest();
    let a = env.mkdir("a");
    let b = env.mkdir("b");
    fs::write(a.join("f"), "a").unwrap();
    fs::write(b.join("f"), "b").unwrap();
    let s1 = env.backup(&[&a], &["--host", "alpha", "--tag", "db"])["snapshot"].as_str().unwrap().to_string();
    env.backup(&[&b], &["--host", "beta"]);
    let s3 =
        env.backup(&[&a], &["--host", "beta", "--tag", "db", "--tag", "x"])["snapshot"].as_str().unwrap().to_string();
    let s4 = env.backup(&[&b], &["--host", "alpha"])["snapshot"].as_str().unwrap().to_string();
    let copied = |r: &Value| -> Vec<String> {
        r["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["outcome"] == "copied")
            .map(|s| s["source"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(copied(&copy_json(&env, &dst, &["--tag", "db", "--dry-run"])), [s1.clone(), s3.clone()]);
    assert_eq!(snapshot_ids(&dst), Vec::<String>::new(), "a dry run writes no snapshot");
    assert_eq!(copied(&copy_json(&env, &dst, &["--tag", "db"])), [s1.clone(), s3.clone()]);
    assert_eq!(snapshot_ids(&dst).len(), 2);
    assert_eq!(copied(&copy_json(&env, &dst, &["--host", "alpha", "--path", b.to_str().unwrap()])), [s4]);
    assert_eq!(copied(&copy_json(&env, &dst, &["latest"])), Vec::<String>::new(), "latest is s4, copied");
    let r = copy_json(&env, &dst, &[&s1[..8], "latest"]);
    assert_eq!(outcomes(&r), ["skipped", "skipped"]);
    // Everything else: only the one not yet copied.
    let r = copy_json(&env, &dst, &[]);
    assert_eq!(copied(&r).len(), 1);
    assert_eq!(snapshot_ids(&dst).len(), 4);
    // A filter that selects nothing copies nothing, and says so.
    let r = copy_json(&env, &dst, &["--host", "gamma"]);
    assert_eq!(r["snapshots"].as_array().unwrap().len(), 0);
}

#[test]
fn copy_into_a_destination_with_some_of_the_data_transfers_only_the_rest() {
    let env = Env::new();
    let dst = dest();
    let src = env.mkdir("data");
    write_random_file(&src.join("old.bin"), 1, 4 << 20);
    env.backup(&[&src], &[]);
    assert_eq!(outcomes(&copy_json(&env, &dst, &[])), ["copied"]);
    write_random_file(&src.join("new.bin"), 2, 1 << 20);
    env.backup(&[&src], &[]);
    let r = copy_json(&env, &dst, &[]);
    assert_eq!(outcomes(&r), ["skipped", "copied"]);
    // The new file's 1 MiB and a few small trees; none of the old 4 MiB.
    let bytes = r["bytes"].as_u64().unwrap();
    assert!((1 << 20..(1 << 20) + 64 * 1024).contains(&bytes), "transferred {bytes} bytes");
    dst_run(&dst, &["check", "--read-data"]).ok();
    let target = env.path("restored");
    dst_run(&dst, &["restore", "latest", "--target", target.to_str().unwrap()]).ok();
    assert_same_tree(&src, &under(&target, &src), Cmp::default());
}

#[test]
fn destination_with_other_chunker_parameters_gets_chunks_that_fit() {
    let env = Env::new();
    // Chunks of at most 256 KiB in the destination: the source's (up to 2 MiB) are split.
    let dst = Env::bare();
    let chunker = ChunkerParams { min_size: 32 << 10, avg_size: 64 << 10, max_size: 256 << 10, normalization: 2 };
    let opts = InitOptions { kdf: FAST_KDF, chunker, pack_target_size: 1 << 20, ..InitOptions::default() };
    Repository::init(std::sync::Arc::new(arca::backend::local::LocalBackend::new(&dst.repo)), DST_PW.as_bytes(), &opts)
        .unwrap();
    let src = source_tree(&env);
    write_random_file(&src.join("huge.bin"), 5, 9 << 20);
    env.backup(&[&src], &[]);
    assert_eq!(outcomes(&copy_json(&env, &dst, &[])), ["copied"]);
    dst_run(&dst, &["check", "--read-data"]).ok();
    let target = env.path("restored");
    dst_run(&dst, &["restore", "latest", "--target", target.to_str().unwrap()]).ok();
    assert_same_tree(&src, &under(&target, &src), Cmp::default());
    assert_eq!(outcomes(&copy_json(&env, &dst, &[])), ["skipped"]);
}

#[test]
fn destination_compression_level_is_honoured() {
    let env = Env::new();
    let src = source_tree(&env);
    env.backup(&[&src], &[]);
    // Same level: the source's compressed framing is kept, so less is stored than copied.
    let same = dest();
    let r = copy_json(&env, &same, &[]);
    assert!(r["stored_bytes"].as_u64() < r["bytes"].as_u64(), "{r}");
    // An uncompressed destination gets its blobs stored verbatim (plus nonce, tag, method byte).
    let plain = Env::bare();
    dst_run(&plain, &["init", "--kdf-memory", "8", "--kdf-iterations", "1", "--compression", "0"]).ok();
    let r = copy_json(&env, &plain, &[]);
    let (blobs, bytes) = (r["blobs"].as_u64().unwrap(), r["bytes"].as_u64().unwrap());
    assert_eq!(r["stored_bytes"].as_u64().unwrap(), bytes + blobs * 41, "{r}");
    dst_run(&plain, &["check", "--read-data"]).ok();
    let target = env.path("restored");
    dst_run(&plain, &["restore", "latest", "--target", target.to_str().unwrap()]).ok();
    assert_same_tree(&src, &under(&target, &src), Cmp::default());
}

#[test]
fn unreachable_destination_exits_10_naming_it() {
    let env = Env::new();
    env.backup(&[&env.mkdir("d")], &[]);
    let missing = env.path("no/such/repo");
    let out = copy(&env, &missing, &[]).code(10);
    assert!(out.stderr.contains("destination repository") && out.stderr.contains("no/such/repo"), "{}", out.stderr);
    // No destination at all is a usage error.
    let out = Out::from(env.cmd().args(["copy"]).output().unwrap()).code(2);
    assert!(out.stderr.contains("--to"), "{}", out.stderr);
}

#[test]
fn wrong_destination_password_exits_12_naming_it() {
    let env = Env::new();
    let dst = dest();
    env.backup(&[&env.mkdir("d")], &[]);
    let mut c = env.cmd();
    c.env("ARCA_TO_PASSWORD", "wrong").args(["copy", "--to"]).arg(&dst.repo);
    let out = Out::from(c.output().unwrap()).code(12);
    assert!(out.stderr.contains("destination repository"), "{}", out.stderr);
    assert!(snapshot_ids(&dst).is_empty());
    // The password from a file or a command works; an empty one is refused (exit 2).
    let pwfile = env.path("pw");
    fs::write(&pwfile, format!("{DST_PW}\n")).unwrap();
    let mut c = env.cmd();
    c.env_remove("ARCA_TO_PASSWORD").arg("copy").arg("--to").arg(&dst.repo).arg("--to-password-file").arg(&pwfile);
    Out::from(c.output().unwrap()).ok();
    let mut c = env.cmd();
    c.env("ARCA_TO_PASSWORD", "wrong").arg("copy").arg("--to").arg(&dst.repo);
    c.arg("--to-password-command").arg(format!("echo '{DST_PW}'"));
    assert!(Out::from(c.output().unwrap()).ok().text().contains("skipped"));
    let mut c = env.cmd();
    c.env("ARCA_TO_PASSWORD", "").arg("copy").arg("--to").arg(&dst.repo);
    Out::from(c.output().unwrap()).code(2);
}

#[test]
fn destination_of_another_format_version_is_refused_naming_it() {
    let env = Env::new();
    let dst = dest();
    env.backup(&[&env.mkdir("d")], &[]);
    // Byte 5 of every file's header is the format version (format-spec/05).
    let config = dst.repo.join("config");
    let mut bytes = fs::read(&config).unwrap();
    bytes[5] = 2;
    write_over(&config, &bytes);
    let out = copy(&env, &dst.repo, &[]).code(1);
    assert!(out.stderr.contains("destination repository") && out.stderr.contains("unsupported"), "{}", out.stderr);
    assert!(snapshot_ids(&dst).is_empty());
}

#[test]
fn copy_into_the_source_repository_is_refused_with_exit_2() {
    let env = Env::new();
    env.backup(&[&env.mkdir("d")], &[]);
    let mut c = env.cmd();
    c.env("ARCA_TO_PASSWORD", PASSWORD).arg("copy").arg("--to").arg(&env.repo);
    let out = Out::from(c.output().unwrap()).code(2);
    assert!(out.stderr.contains("source repository"), "{}", out.stderr);
    // A byte-for-byte copy of the repository is the same repository (same ID and keys).
    let twin = env.path("twin");
    let st = std::process::Command::new("cp").arg("-a").arg(&env.repo).arg(&twin).status().unwrap();
    assert!(st.success());
    let mut c = env.cmd();
    c.env("ARCA_TO_PASSWORD", PASSWORD).arg("copy").arg("--to").arg(&twin);
    let out = Out::from(c.output().unwrap()).code(2);
    assert!(out.stderr.contains("same repository ID"), "{}", out.stderr);
    assert_eq!(repo_files(&twin, FileType::Snapshot).len(), 1);
}

#[test]
fn damaged_source_data_fails_without_a_snapshot_in_the_destination() {
    let env = Env::new();
    let dst = dest();
    let src = env.mkdir("data");
    write_random_file(&src.join("f.bin"), 3, 2 << 20);
    env.backup(&[&src], &[]);
    for p in repo_files(&env.repo, FileType::Pack) {
        let path = repo_file(&env.repo, FileType::Pack, &p);
        flip_byte(&path, 100);
    }
    let out = copy(&env, &dst.repo, &[]).code(4);
    assert!(out.stderr.contains("nothing of it was committed"), "{}", out.stderr);
    assert!(snapshot_ids(&dst).is_empty(), "no snapshot may name data that was not copied");
    dst_run(&dst, &["check"]).ok();
}

#[test]
fn both_journals_record_the_copy() {
    let env = Env::new();
    let dst = dest();
    let src = source_tree(&env);
    env.backup(&[&src], &[]);
    let r = copy_json(&env, &dst, &[]);
    let (s, d) = (&r["snapshots"][0]["source"], &r["snapshots"][0]["destination"]);
    let from = env.json(&["journal", "--op", "copy-from"]);
    let to = dst_run(&dst, &["--json", "journal", "--op", "copy-to"]).ok().json();
    let (from, to) = (&from.as_array().unwrap()[0], &to.as_array().unwrap()[0]);
    assert_eq!(from["snapshots"], serde_json::json!([s]));
    assert_eq!(to["snapshots"], serde_json::json!([d]));
    for rec in [from, to] {
        assert_eq!(rec["outcome"], "ok");
        assert_eq!(rec["metrics"]["blobs"], r["blobs"]);
        assert_eq!(rec["metrics"]["bytes"], r["bytes"]);
        assert_ne!(rec["labels"]["source"], rec["labels"]["destination"]);
    }
    assert_eq!(from["labels"], to["labels"]);
    // A failed copy is recorded as failed on the source side; a dry run writes no record.
    copy_json(&env, &dst, &["--dry-run"]);
    let mut c = env.cmd();
    c.env("ARCA_TO_PASSWORD", "wrong").arg("copy").arg("--to").arg(&dst.repo);
    Out::from(c.output().unwrap()).code(12);
    let from = env.json(&["journal", "--op", "copy-from"]);
    let from = from.as_array().unwrap();
    assert_eq!(from.len(), 2, "{from:?}");
    assert_eq!(from[1]["outcome"], "failed");
    assert_eq!(from[1]["exit_code"], 12);
    assert_eq!(dst_run(&dst, &["--json", "journal"]).ok().json().as_array().unwrap().len(), 1);
}

#[test]
fn a_failed_snapshot_leaves_the_ones_before_it_committed_and_nothing_else() {
    let env = Env::new();
    let dst = dest();
    let src = env.mkdir("data");
    write_random_file(&src.join("a.bin"), 1, 1 << 20);
    env.backup(&[&src], &[]);
    let before = repo_files(&env.repo, FileType::Pack);
    write_random_file(&src.join("b.bin"), 2, 1 << 20);
    env.backup(&[&src], &[]);
    // Damage every pack the second backup wrote: its new data and trees cannot be read.
    for p in repo_files(&env.repo, FileType::Pack).iter().filter(|p| !before.contains(p)) {
        flip_byte(&repo_file(&env.repo, FileType::Pack, p), 20);
    }
    let out = copy(&env, &dst.repo, &[]).code(4);
    assert!(out.text().contains("copied "), "the first snapshot is committed:\n{}", out.text());
    assert_eq!(snapshot_ids(&dst).len(), 1);
    dst_run(&dst, &["check", "--read-data"]).ok();
    // A rerun recognises the committed copy and fails on the damaged snapshot again; a newer,
    // healthy snapshot still reaches the destination (the damaged one does not block it).
    fs::remove_file(src.join("b.bin")).unwrap();
    env.backup(&[&src], &[]);
    let out = copy(&env, &dst.repo, &[]).code(4);
    assert!(out.text().contains("skipped (already in destination"), "{}", out.text());
    assert!(out.text().contains("NOT copied: damaged"), "{}", out.text());
    assert!(out.stderr.contains("nothing of it was committed"), "{}", out.stderr);
    assert_eq!(snapshot_ids(&dst).len(), 2);
    dst_run(&dst, &["check", "--read-data"]).ok();
}
