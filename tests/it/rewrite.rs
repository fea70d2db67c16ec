//! `arca rewrite`: copies of snapshots without the paths exclude patterns match. The "I backed
//! up a secret" case end to end (rewrite --forget, prune, then no blob of the repository holds
//! the secret, and check --read-data passes), dry runs, the `rewrite` tag and `original`,
//! a rerun after a crash, and the keys that may not rewrite.

use crate::common::*;
use arca::backend::FileType;
use arca::format::blob::BlobType;
use arca::format::tree::NodeKind;
use arca::id::Id;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// A source tree with a secret file (its name and bytes hold `token`) and other files, backed
/// up twice (a file changes in between). Returns the source and the two snapshot IDs.
fn with_secret(env: &Env, token: &str) -> (PathBuf, [String; 2]) {
    let src = fs::canonicalize(env.mkdir("src")).unwrap();
    fs::create_dir_all(src.join("docs/deep")).unwrap();
    fs::write(src.join(format!("docs/deep/{token}.txt")), format!("password={token}\n").repeat(100)).unwrap();
    fs::write(src.join("docs/readme.txt"), b"public").unwrap();
    write_random_file(&src.join("big.bin"), 7, 3 << 20);
    fs::write(src.join("changes.txt"), b"one").unwrap();
    let first = env.backup(&[&src], &["--tag", "daily"])["snapshot"].as_str().unwrap().to_string();
    fs::write(src.join("changes.txt"), b"two").unwrap();
    let second = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    (src, [first, second])
}

fn token() -> String {
    format!(
        "SECRET{}",
        random_bytes(std::process::id() as u64, 8).iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Every blob of every pack the index names, decrypted: (type, ID, plaintext).
fn all_blobs(env: &Env) -> Vec<(BlobType, Id, Vec<u8>)> {
    let repo = env.open();
    let index = repo.load_index().unwrap();
    let mut out = Vec::new();
    for p in index.packs() {
        for b in repo.read_pack_toc_verified(&p.id).unwrap().blobs {
            out.push((b.blob_type, b.id, repo.read_blob(&index, b.blob_type, &b.id).unwrap()));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The data blob IDs of the file at `path` in the latest snapshot.
fn chunks_of(env: &Env, path: &Path) -> Vec<Id> {
    match latest_node(env, path).kind {
        NodeKind::File { content, .. } => content.iter().map(|c| c.id).collect(),
        k => panic!("not a file: {k:?}"),
    }
}

fn snapshot_ids(env: &Env) -> BTreeSet<String> {
    repo_files(&env.repo, FileType::Snapshot).into_iter().collect()
}

#[test]
fn a_secret_rewritten_away_with_forget_is_gone_from_the_repository_after_prune() {
    let env = Env::new();
    let t = token();
    let (src, old) = with_secret(&env, &t);
    let secret = src.join(format!("docs/deep/{t}.txt"));
    let secret_chunks = chunks_of(&env, &secret);
    assert!(all_blobs(&env).iter().any(|(_, _, b)| contains(b, &t)), "the fixture must hold the secret");
    let keep = tree_hashes(&src);

    // By name at any depth, as restic's patterns match.
    let report = env.json(&["rewrite", "--exclude", &format!("{t}.txt"), "--forget"]);
    let rewritten = report["rewritten"].as_array().unwrap();
    assert_eq!(rewritten.len(), 2, "{report}");
    for r in rewritten {
        assert_eq!(r["removed"], serde_json::json!([secret.to_str().unwrap()]), "{report}");
        assert_eq!(r["forgotten"], true);
    }
    // The copies replace the originals, name them as `original`, keep their tags and add none.
    let snaps = env.json(&["snapshots"]);
    let snaps = snaps.as_array().unwrap();
    assert_eq!(snaps.len(), 2);
    let originals: BTreeSet<String> = snaps.iter().map(|s| s["original"].as_str().unwrap().to_string()).collect();
    assert_eq!(originals, old.iter().cloned().collect());
    assert!(old.iter().all(|o| !snapshot_ids(&env).contains(o)));
    assert_eq!(snaps[0]["tags"], serde_json::json!(["daily"]));
    assert!(snaps[1]["tags"].is_null() || snaps[1]["tags"] == serde_json::json!([]), "{}", snaps[1]);

    // The rest restores byte for byte; the secret does not.
    let target = env.mkdir("restored");
    env.restore("latest", &target, &[]);
    let restored = tree_hashes(&under(&target, &src));
    let mut want = keep.clone();
    want.remove(Path::new(&format!("docs/deep/{t}.txt")));
    assert_eq!(restored, want);

    // Prune with nothing unused left behind: no blob holds the secret, neither its bytes nor
    // its name (in a tree), and its chunks are not indexed.
    env.run(&["prune", "--max-unused", "0"]).ok();
    let blobs = all_blobs(&env);
    assert!(!blobs.is_empty());
    for (ty, id, plain) in &blobs {
        assert!(!contains(plain, &t), "{ty:?} blob {id} still holds the secret");
    }
    let index = env.open().load_index().unwrap();
    for c in &secret_chunks {
        assert!(!index.contains(BlobType::Data, c), "chunk {c} of the secret is still indexed");
    }
    env.run(&["check", "--read-data"]).ok();
}

#[test]
fn a_dry_run_lists_what_goes_and_changes_nothing() {
    let env = Env::new();
    let t = token();
    let (src, _) = with_secret(&env, &t);
    let files = |ty| repo_files(&env.repo, ty);
    let before = (files(FileType::Snapshot), files(FileType::Pack), files(FileType::Index));
    let out = env.run(&["rewrite", "--dry-run", "--exclude", "docs", "--forget"]).ok().text();
    assert!(out.contains(&format!("{}", src.join("docs").display())), "{out}");
    assert!(out.contains("2 snapshot(s) would be rewritten"), "{out}");
    let report = env.json(&["rewrite", "-n", "--exclude", "docs"]);
    assert!(report["rewritten"].as_array().unwrap().iter().all(|r| r["new"].is_null()));
    assert_eq!(before, (files(FileType::Snapshot), files(FileType::Pack), files(FileType::Index)));
    // A pattern that matches nothing leaves every snapshot as it is.
    let report = env.json(&["rewrite", "--exclude", "no-such-name", "--forget"]);
    assert_eq!(report["unchanged"], 2);
    assert_eq!(before.0, files(FileType::Snapshot));
}

#[test]
fn without_forget_the_copy_is_tagged_rewrite_and_a_rerun_writes_no_duplicate() {
    let env = Env::new();
    let t = token();
    let (src, [first, _]) = with_secret(&env, &t);
    let ex = env.path("ex");
    fs::write(&ex, "# secrets\n$SECRET_DIR/deep\n").unwrap();
    let run = || {
        Out::from(
            env.cmd()
                .env("SECRET_DIR", src.join("docs"))
                .args(["--json", "rewrite", "--exclude-file", ex.to_str().unwrap(), &first[..8]])
                .output()
                .unwrap(),
        )
        .ok()
        .json()
    };
    let report = run();
    assert_eq!(report["rewritten"][0]["removed"], serde_json::json!([src.join("docs/deep").to_str().unwrap()]));
    let copy = report["rewritten"][0]["new"].as_str().unwrap().to_string();
    let snaps = snapshot_ids(&env);
    assert_eq!(snaps.len(), 3);
    let all = env.json(&["snapshots"]);
    let c = all.as_array().unwrap().iter().find(|s| s["id"] == serde_json::json!(copy)).unwrap().clone();
    assert_eq!(c["original"], serde_json::json!(first));
    assert_eq!(c["tags"], serde_json::json!(["daily", "rewrite"]));
    // The original is untouched and still restores the secret.
    let target = env.mkdir("orig");
    env.restore(&first, &target, &[]);
    assert!(under(&target, &src.join(format!("docs/deep/{t}.txt"))).exists());
    // Running again finds the copy instead of writing another.
    assert_eq!(run()["rewritten"][0]["new"].as_str().unwrap(), copy);
    assert_eq!(snapshot_ids(&env), snaps);
}

#[test]
fn a_rewrite_interrupted_before_removing_the_original_is_finished_by_a_rerun() {
    let env = Env::new();
    let t = token();
    let (_src, [first, second]) = with_secret(&env, &t);
    let saved = fs::read(repo_file(&env.repo, FileType::Snapshot, &first)).unwrap();
    let report = env.json(&["rewrite", "--iexclude", &format!("{}.TXT", t.to_lowercase()), "--forget", &first]);
    let copy = report["rewritten"][0]["new"].as_str().unwrap().to_string();
    // The state a crash between writing the copy and removing the original leaves.
    let path = repo_file(&env.repo, FileType::Snapshot, &first);
    fs::write(&path, &saved).unwrap();
    assert_eq!(snapshot_ids(&env), [first.clone(), second.clone(), copy.clone()].into_iter().collect());
    let again = env.json(&["rewrite", "--iexclude", &format!("{}.TXT", t.to_lowercase()), "--forget", &first]);
    assert_eq!(again["rewritten"][0]["new"].as_str().unwrap(), copy);
    assert_eq!(snapshot_ids(&env), [second, copy].into_iter().collect());
    env.run(&["check"]).ok();
}

#[test]
fn rewrite_needs_patterns_and_an_admin_key() {
    let env = Env::new();
    let (_src, _) = with_secret(&env, &token());
    let out = env.run(&["rewrite", "--forget"]).code(2);
    assert!(out.stderr.contains("--exclude"), "{}", out.stderr);
    env.run(&["rewrite", "--exclude", "a/[b"]).code(2);
    for (role, pw) in [("backup", "backup pw"), ("restore", "restore pw")] {
        env.cmd()
            .env("ARCA_NEW_PASSWORD", pw)
            .args(["key", "add", "--role", role, "--kdf-memory", "8", "--kdf-iterations", "1"])
            .assert()
            .success();
        let before = snapshot_ids(&env);
        let out = Out::from(
            env.cmd()
                .env("ARCA_PASSWORD", pw)
                .env("XDG_CACHE_HOME", env.path("cache"))
                .args(["rewrite", "--exclude", "docs", "--forget"])
                .output()
                .unwrap(),
        )
        .code(13);
        assert!(out.stderr.contains("rewrite"), "{}", out.stderr);
        assert_eq!(snapshot_ids(&env), before);
    }
}
