//! `arca drill`: restore into a scratch directory, verify, measure, clean up.

use crate::common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// A tree of `n` files of varied sizes in a few directories (every tenth one large), with a
/// symlink, an empty file and an empty directory. Returns its root.
fn tree(env: &Env, n: u64) -> PathBuf {
    let root = env.mkdir("src");
    for d in ["a", "a/deep", "b", "empty"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    for i in 0..n {
        let dir = ["a", "a/deep", "b"][(i % 3) as usize];
        let len = if i % 10 == 0 { 200_000 + i * 1000 } else { i * 37 % 5000 };
        fs::write(root.join(dir).join(format!("f{i}")), random_bytes(i, len as usize)).unwrap();
    }
    fs::write(root.join("b/zero"), b"").unwrap();
    std::os::unix::fs::symlink("../a/f0", root.join("b/link")).unwrap();
    root
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// `arca --json drill ARGS` with scratch directories under `env/scratch`; the JSON output.
fn drill(env: &Env, args: &[&str], code: i32) -> (Value, Out) {
    let scratch = env.mkdir("scratch");
    let mut a = vec!["--json", "drill", "--scratch", scratch.to_str().unwrap()];
    a.extend_from_slice(args);
    let out = env.run(&a).code(code);
    (out.json(), out)
}

/// Whatever is left in the scratch parent.
fn leftovers(env: &Env) -> Vec<PathBuf> {
    fs::read_dir(env.path("scratch")).unwrap().map(|e| e.unwrap().path()).collect()
}

/// Regular files, symlinks and special files below `dir`, relative to it.
fn entries(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path().strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out
}

/// Files and content bytes of `dir` on disk.
fn census(dir: &Path) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    for p in entries(dir) {
        let md = fs::symlink_metadata(dir.join(p)).unwrap();
        if md.is_file() {
            files += 1;
            bytes += md.len();
        }
    }
    (files, bytes)
}

#[test]
fn a_clean_drill_restores_and_verifies_everything_and_removes_its_scratch_directory() {
    let env = Env::new();
    let root = tree(&env, 30);
    env.backup(&[&root], &[]);
    let (r, _) = drill(&env, &[], 0);
    let (files, bytes) = census(&root);
    assert_eq!(r["ok"], true);
    assert_eq!(n(&r["drilled"]["files"]), files);
    assert_eq!(n(&r["drilled"]["bytes"]), bytes);
    assert_eq!(r["drilled"], r["scope"], "a full drill covers the whole snapshot");
    assert_eq!(n(&r["drilled"]["others"]), 1, "the symlink");
    let size = env.json(&["snapshots"])[0]["size"].clone();
    assert_eq!(n(&r["scope"]["bytes"]), n(&size), "as `snapshots` sizes it");
    assert!(r["mismatches"].as_array().unwrap().is_empty() && r["damage"].as_array().unwrap().is_empty());
    assert_eq!(r["model"]["kind"], "measured");
    assert!(n(&r["restore_ns"]) > 0 && n(&r["verify_ns"]) > 0);
    assert_eq!(r["rto_measured_ns"], r["restore_ns"]);
    assert_eq!(r["rto_extrapolated_ns"], r["rto_measured_ns"]);
    assert!(n(&r["age_ns"]) > 0);
    assert!(r["sample"].is_null() && r["scratch_kept"].is_null());
    assert!(leftovers(&env).is_empty(), "scratch directory left: {:?}", leftovers(&env));
    // The journal has the drill, with its measurements.
    let j = env.json(&["journal"]);
    let rec = j.as_array().unwrap().iter().find(|x| x["op"] == "drill").expect("a drill record");
    assert_eq!(rec["outcome"], "ok");
    assert_eq!(rec["snapshots"][0], r["snapshot"]);
    assert_eq!(rec["snapshots"].as_array().unwrap().len(), 1);
    assert_eq!((n(&rec["files"]), n(&rec["bytes"])), (files, bytes));
    assert_eq!(rec["labels"]["path"], "/");
    assert!(rec["labels"]["sample"].is_null());
    assert_eq!(rec["metrics"]["rto_ns"], r["rto_measured_ns"]);
    assert_eq!(rec["metrics"]["rto_full_ns"], r["rto_extrapolated_ns"]);
    // The human report says the same.
    let out = env.run(&["drill", "--scratch", env.path("scratch").to_str().unwrap()]).ok();
    assert!(out.text().contains("drill passed") && out.text().contains("RTO:") && out.text().contains("RPO:"));
    assert!(leftovers(&env).is_empty());
}

#[test]
fn keep_leaves_the_verified_restore_in_place() {
    let env = Env::new();
    let root = tree(&env, 12);
    env.backup(&[&root], &[]);
    let (r, _) = drill(&env, &["--keep"], 0);
    let kept = PathBuf::from(r["scratch_kept"].as_str().expect("kept path reported"));
    assert_eq!(leftovers(&env), vec![kept.clone()]);
    let restored = under(&kept.join("restore"), &root);
    assert!(tree_diffs(&root, &restored, Cmp::default()).is_empty());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs::metadata(&kept).unwrap().permissions().mode() & 0o777, 0o700);
}

#[test]
fn a_path_drill_covers_only_that_path() {
    let env = Env::new();
    let root = tree(&env, 30);
    env.backup(&[&root], &[]);
    let sub = root.join("a");
    let (r, _) = drill(&env, &[&sref("latest", &sub)], 0);
    let (files, bytes) = census(&sub);
    assert_eq!((n(&r["drilled"]["files"]), n(&r["drilled"]["bytes"])), (files, bytes));
    assert_eq!(r["path"], sub.to_str().unwrap());
    // A single file.
    let one = root.join("a/f3");
    let (r, _) = drill(&env, &[&sref("latest", &one)], 0);
    assert_eq!(n(&r["drilled"]["files"]), 1);
    assert_eq!(n(&r["drilled"]["bytes"]), fs::metadata(&one).unwrap().len());
    assert!(leftovers(&env).is_empty());
}

#[test]
fn a_seeded_sample_drill_is_reproducible_and_restores_about_the_share_asked() {
    let env = Env::new();
    let root = tree(&env, 200);
    env.backup(&[&root], &[]);
    let run = |seed: &str| {
        let (r, _) = drill(&env, &["--sample", "10%", "--seed", seed, "--keep"], 0);
        let kept = PathBuf::from(r["scratch_kept"].as_str().unwrap());
        let got = entries(&kept.join("restore"));
        remove_all(&kept);
        (r, got)
    };
    let (r1, set1) = run("42");
    let (r2, set2) = run("42");
    let (_, set3) = run("43");
    assert_eq!(set1, set2, "same seed, same sample");
    assert_ne!(set1, set3, "another seed, another sample");
    assert_eq!(r1["drilled"], r2["drilled"]);
    // 200 files, the zero-length one and the symlink: 10% of the 182 small entries and of the 20
    // large files, each rounded up.
    let all = n(&r1["scope"]["files"]) + n(&r1["scope"]["others"]);
    assert_eq!(all, 202);
    assert_eq!(set1.len(), 19 + 2);
    let large = set1
        .iter()
        .filter(|p| {
            fs::metadata(root.join(p.strip_prefix(root.strip_prefix("/").unwrap()).unwrap())).unwrap().len() >= 64 << 10
        })
        .count();
    assert_eq!(large, 2, "{set1:?}");
    assert_eq!(n(&r1["drilled"]["files"]) + n(&r1["drilled"]["others"]), set1.len() as u64);
    assert_eq!(r1["sample"]["seed"], 42);
    assert_eq!(r1["sample"]["by"], "files");
    assert!(n(&r1["rto_extrapolated_ns"]) > 0);
    // By bytes: the share of the bytes is reached, with fewer than all files.
    let (r, _) = drill(&env, &["--sample", "10%", "--sample-by", "bytes", "--seed", "1"], 0);
    let (scope, got) = (n(&r["scope"]["bytes"]), n(&r["drilled"]["bytes"]));
    assert!(got >= scope / 10 && got < scope / 2, "{got} of {scope} bytes");
    assert!(n(&r["drilled"]["files"]) < n(&r["scope"]["files"]));
    // Without a seed one is chosen and reported.
    let (r, _) = drill(&env, &["--sample", "5%"], 0);
    assert!(r["sample"]["seed"].is_u64());
    assert!(leftovers(&env).is_empty());
    let j = env.json(&["journal"]);
    let rec = j.as_array().unwrap().iter().rev().find(|x| x["op"] == "drill").unwrap();
    assert_eq!(rec["labels"]["sample"], "5% files");
    assert_eq!(rec["labels"]["seed"], r["sample"]["seed"].to_string());
    assert_eq!(rec["metrics"]["sample_permille"], 50);
}

fn remove_all(p: &Path) {
    fs::remove_dir_all(p).unwrap();
}

#[test]
fn damage_in_a_data_pack_fails_the_drill_naming_it_and_the_scratch_directory_is_removed() {
    let env = Env::new();
    let root = tree(&env, 30);
    env.backup(&[&root], &[]);
    let repo = env.open();
    let victim = repo
        .index_ids()
        .unwrap()
        .iter()
        .flat_map(|i| repo.load_index_file(i).unwrap())
        .find(|p| p.blobs.iter().all(|b| b.blob_type == arca::format::blob::BlobType::Data))
        .expect("a data pack")
        .id;
    flip_byte(&repo_file(&env.repo, arca::backend::FileType::Pack, &victim.to_hex()), 20);
    let (r, out) = drill(&env, &[], 4);
    assert_eq!(r["ok"], false);
    let damage = r["damage"].as_array().unwrap();
    assert!(!damage.is_empty(), "{}", out.all());
    assert!(damage.iter().all(|d| d.as_str().unwrap().contains("integrity error")), "{damage:?}");
    assert!(out.stderr.contains("damage:"), "{}", out.stderr);
    let j = env.json(&["journal"]);
    let rec = j.as_array().unwrap().iter().find(|x| x["op"] == "drill").unwrap();
    assert_eq!(rec["outcome"], "damage");
    assert!(!rec["errors"].as_array().unwrap().is_empty());
    assert!(leftovers(&env).is_empty(), "scratch directory left: {:?}", leftovers(&env));
    // The human report too.
    let out = env.run(&["drill", "--scratch", env.path("scratch").to_str().unwrap()]).code(4);
    assert!(out.all().contains("drill FAILED"), "{}", out.all());
    assert!(leftovers(&env).is_empty());
}

/// `arca --json drill --scratch SCRATCH` with the test hook `hook` (it must find a problem: exit
/// 4); the JSON report.
fn drill_with_hook(env: &Env, hook: &str, scratch: &Path) -> Value {
    let out = env
        .cmd()
        .env("ARCA_TEST_DRILL_HOOK", hook)
        .args(["--json", "drill", "--scratch", scratch.to_str().unwrap()])
        .output()
        .unwrap();
    Out::from(out).code(4).json()
}

#[test]
fn a_restored_file_that_differs_from_the_snapshot_is_found() {
    let env = Env::new();
    let root = tree(&env, 10);
    env.backup(&[&root], &[]);
    let scratch = env.mkdir("scratch");
    let r = drill_with_hook(&env, "corrupt", &scratch);
    let m = r["mismatches"].as_array().unwrap();
    // The hook flips the first byte of one restored file (its mtime kept) before it is read back.
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0]["kind"], "content");
    let path = PathBuf::from(m[0]["path"].as_str().unwrap());
    assert!(path.starts_with(&scratch), "{path:?}");
    // scratch/arca-drill-XXXX/restore/<the snapshot path>
    let name = path.strip_prefix(&scratch).unwrap().components().skip(2).collect::<PathBuf>();
    assert!(root.join(name.strip_prefix(root.strip_prefix("/").unwrap()).unwrap()).is_file(), "{path:?}");
    assert!(leftovers(&env).is_empty());
}

#[test]
fn a_restored_file_whose_mode_differs_from_the_snapshot_is_found() {
    let env = Env::new();
    let root = tree(&env, 10);
    env.backup(&[&root], &[]);
    let scratch = env.mkdir("scratch");
    let r = drill_with_hook(&env, "chmod", &scratch);
    let m = r["mismatches"].as_array().unwrap();
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0]["kind"], "metadata");
    assert!(leftovers(&env).is_empty());
}

#[test]
fn hard_links_symlinks_and_fifos_are_restored_and_verified() {
    let env = Env::new();
    let root = tree(&env, 5);
    fs::hard_link(root.join("a/f0"), root.join("b/hard")).unwrap();
    mkfifo(&root.join("b/fifo"));
    set_mtime(&root.join("b"), odd_time(1_600_000_000, 7));
    env.backup(&[&root], &[]);
    let (r, _) = drill(&env, &["--keep"], 0);
    // The symlink, the FIFO and the second name of the hard link.
    assert_eq!(n(&r["drilled"]["others"]), 3);
    let kept = PathBuf::from(r["scratch_kept"].as_str().unwrap());
    let t = under(&kept.join("restore"), &root);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(t.join("a/f0")).unwrap().ino(), fs::metadata(t.join("b/hard")).unwrap().ino());
    assert!(tree_diffs(&root, &t, Cmp::default()).is_empty());
}

#[test]
fn an_uncreatable_scratch_directory_is_a_clear_error() {
    let env = Env::new();
    let root = tree(&env, 3);
    env.backup(&[&root], &[]);
    let file = env.path("a-file");
    fs::write(&file, b"").unwrap();
    for parent in [env.path("missing/parent"), file.clone()] {
        let out = env.run(&["drill", "--scratch", parent.to_str().unwrap()]).code(1);
        assert!(out.stderr.contains("cannot create a scratch directory in"), "{}", out.stderr);
        assert!(out.stderr.contains(parent.to_str().unwrap()), "{}", out.stderr);
    }
    assert!(!env.path("missing").exists());
}

#[test]
fn bad_sample_options_are_usage_errors() {
    let env = Env::new();
    for args in [
        &["drill", "--sample", "0%"][..],
        &["drill", "--sample", "5"],
        &["drill", "--sample", "150%"],
        &["drill", "--seed", "3"],
        &["drill", "--sample-by", "bytes"],
    ] {
        let out = env.run(args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.all());
    }
}

#[test]
fn a_drill_of_an_empty_snapshot_passes() {
    let env = Env::new();
    let empty = env.mkdir("empty");
    env.backup(&[&empty], &[]);
    let (r, _) = drill(&env, &[], 0);
    assert_eq!((n(&r["drilled"]["files"]), n(&r["drilled"]["bytes"])), (0, 0));
    let (r, _) = drill(&env, &["--sample", "5%", "--seed", "1"], 0);
    assert_eq!(n(&r["drilled"]["files"]) + n(&r["drilled"]["others"]), 0);
    assert!(leftovers(&env).is_empty());
}

#[test]
fn an_interrupted_drill_removes_its_scratch_directory() {
    let env = Env::new();
    let root = tree(&env, 10);
    env.backup(&[&root], &[]);
    let scratch = env.mkdir("scratch");
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let mut child = arca_std_cmd()
            .env("ARCA_REPOSITORY", &env.repo)
            .env("ARCA_PASSWORD", PASSWORD)
            .env("ARCA_TEST_DRILL_HOOK", "pause")
            .args(["drill", "--scratch", scratch.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let marker = scratch.join("drill-paused");
        // The hook runs after the restore: wait for it (the child sleeps a minute there).
        while !marker.exists() {
            assert!(child.try_wait().unwrap().is_none(), "drill ended before its pause");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        fs::remove_file(&marker).unwrap();
        assert_eq!(leftovers(&env).len(), 1, "the scratch directory exists while paused");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(leftovers(&env).is_empty(), "scratch directory left after signal {sig}: {:?}", leftovers(&env));
    }
}

/// A racing process swaps the scratch directory, and a restored directory inside it, for
/// symlinks to a victim directory while the drill is paused; the removal that follows must
/// unlink names, never follow them (a path-based `read_dir` would empty the victim).
#[test]
fn removal_never_follows_a_directory_swapped_for_a_symlink() {
    use std::os::unix::fs::symlink;
    let env = Env::new();
    let root = tree(&env, 10);
    env.backup(&[&root], &[]);
    let scratch = env.mkdir("scratch");
    let victim = env.mkdir("victim");
    fs::write(victim.join("precious"), b"keep me").unwrap();
    for swap_root in [false, true] {
        let mut child = arca_std_cmd()
            .env("ARCA_REPOSITORY", &env.repo)
            .env("ARCA_PASSWORD", PASSWORD)
            .env("ARCA_TEST_DRILL_HOOK", "pause")
            .args(["drill", "--scratch", scratch.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let marker = scratch.join("drill-paused");
        while !marker.exists() {
            assert!(child.try_wait().unwrap().is_none(), "drill ended before its pause");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        fs::remove_file(&marker).unwrap();
        let dir = leftovers(&env).pop().unwrap();
        let moved = env.path("moved");
        if swap_root {
            fs::rename(&dir, &moved).unwrap();
            symlink(&victim, &dir).unwrap();
        } else {
            let inner = under(&dir.join("restore"), &root).join("a");
            fs::rename(&inner, &moved).unwrap();
            symlink(&victim, &inner).unwrap();
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(143), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(fs::read(victim.join("precious")).unwrap(), b"keep me", "swap_root {swap_root}");
        if swap_root {
            assert!(fs::symlink_metadata(&dir).unwrap().file_type().is_symlink(), "the symlink is left alone");
            fs::remove_file(&dir).unwrap();
        } else {
            assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
        }
        remove_all(&moved);
    }
}
