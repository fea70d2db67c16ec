//! Progress: restic's JSON status lines for backup and restore (shape, totals equal to the
//! tree's, a percentage that never goes back), `-v`/`-vv` file lists, and silence on a
//! non-terminal without `--json`.

use crate::common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// Updates per second for the tests: the fastest restic allows, so even a short run reports.
const FPS: &str = "60";

/// A tree of `n` small files, two large ones (so the run outlasts a few status intervals) and a
/// symlink; returns (files, of them regular, bytes).
fn tree(env: &Env, n: u64) -> (u64, u64, u64) {
    let src = env.mkdir("src/a/b");
    let mut bytes = 0;
    for i in 0..n {
        let len = 100 + i * 37;
        write_random_file(&src.join(format!("f{i}")), i, len);
        bytes += len;
    }
    for (i, len) in [(1000, 12u64 << 20), (1001, 9 << 20)] {
        write_random_file(&env.path("src/a").join(format!("big{i}")), i, len);
        bytes += len;
    }
    std::os::unix::fs::symlink("b/f0", env.path("src/a/link")).unwrap();
    (n + 3, n + 2, bytes)
}

/// `arca --json ARGS` with status lines every 1/60 s: (status lines, the last value).
fn with_status(env: &Env, args: &[&str]) -> (Vec<Value>, Value) {
    let out = Out::from(env.cmd().env("ARCA_PROGRESS_FPS", FPS).arg("--json").args(args).output().unwrap()).ok();
    let text = out.text();
    let mut values = out.json_values();
    let last = values.pop().expect("a summary");
    // Each status object is one line of its own (restic's JSON lines).
    let lines = text.lines().filter(|l| l.contains(r#""message_type":"status""#)).count();
    assert!(values.iter().all(|v| v["message_type"] == "status"), "{text}");
    assert_eq!(lines, values.len(), "status objects are single lines:\n{text}");
    (values, last)
}

/// Percentages are fractions that never go back.
fn assert_monotonic(status: &[Value]) {
    let mut last = 0.0;
    for s in status {
        let p = s["percent_done"].as_f64().expect("percent_done");
        assert!((0.0..=1.0).contains(&p) && p >= last, "percent_done {p} after {last}: {status:?}");
        last = p;
    }
}

#[test]
fn backup_json_status_lines_have_restics_shape_and_the_trees_totals() {
    let env = Env::new();
    let (files, _, bytes) = tree(&env, 200);
    let (status, summary) = with_status(&env, &["backup", env.path("src").to_str().unwrap()]);
    assert!(!status.is_empty(), "a backup of {bytes} bytes lasts more than 1/60 s");
    for s in &status {
        for k in ["seconds_elapsed", "percent_done", "total_files", "files_done", "total_bytes", "bytes_done"] {
            assert!(s[k].is_number(), "{k} in {s}");
        }
        assert!(s["current_files"].is_array(), "{s}");
    }
    assert_monotonic(&status);
    // The scan-ahead finished long before the last interval: its totals are the tree's.
    let last = status.last().unwrap();
    assert_eq!((last["total_files"].as_u64(), last["total_bytes"].as_u64()), (Some(files), Some(bytes)), "{last}");
    assert!(last["files_done"].as_u64().unwrap() <= files, "{last}");
    assert_eq!(summary["message_type"], "summary");
    assert!(summary["snapshot"].is_string(), "{summary}");
    assert_eq!(summary["summary"]["files_new"].as_u64(), Some(files - 1), "regular files; the symlink is not counted");
}

#[test]
fn restore_json_status_lines_count_the_snapshots_files_and_bytes() {
    let env = Env::new();
    let (_, regular, bytes) = tree(&env, 100);
    env.backup(&[&env.path("src")], &[]);
    let target = env.path("target");
    let (status, summary) = with_status(&env, &["restore", "latest", "--target", target.to_str().unwrap()]);
    assert!(!status.is_empty(), "a restore of {bytes} bytes lasts more than 1/60 s");
    for s in &status {
        for k in ["seconds_elapsed", "percent_done", "total_files", "files_restored", "total_bytes", "bytes_restored"] {
            assert!(s[k].is_number(), "{k} in {s}");
        }
    }
    assert_monotonic(&status);
    let last = status.last().unwrap();
    assert_eq!((last["total_files"].as_u64(), last["total_bytes"].as_u64()), (Some(regular), Some(bytes)), "{last}");
    assert_eq!(summary["message_type"], "summary");
    assert_eq!(summary["stats"]["files"].as_u64(), Some(regular), "{summary}");
}

/// The `-v` lines of a backup: (word, path) pairs.
fn listed(out: &Out) -> BTreeSet<(String, String)> {
    out.text()
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(w, p)| (w.to_string(), p.trim_start().to_string())))
        .filter(|(w, _)| ["new", "modified", "unchanged"].contains(&w.as_str()))
        .collect()
}

#[test]
fn verbose_lists_exactly_the_new_and_modified_files() {
    let env = Env::new();
    let src = env.mkdir("src");
    for name in ["keep1", "keep2", "edit"] {
        fs::write(src.join(name), name).unwrap();
    }
    let src_arg = src.to_str().unwrap();
    let first = env.run(&["backup", "-v", src_arg]).ok();
    let path = |n: &str| src.join(n).to_str().unwrap().to_string();
    let all_new: BTreeSet<_> = ["edit", "keep1", "keep2"].iter().map(|n| ("new".to_string(), path(n))).collect();
    assert_eq!(listed(&first), all_new, "{}", first.text());

    fs::write(src.join("edit"), "edited, longer").unwrap();
    fs::write(src.join("added"), "added").unwrap();
    let second = env.run(&["backup", "-v", src_arg]).ok();
    let expect: BTreeSet<_> =
        [("new", "added"), ("modified", "edit")].iter().map(|(w, n)| (w.to_string(), path(n))).collect();
    assert_eq!(listed(&second), expect, "{}", second.text());

    // -vv: every file, the unchanged ones too.
    let third = env.run(&["backup", "-vv", src_arg]).ok();
    let every: BTreeSet<_> =
        ["added", "edit", "keep1", "keep2"].iter().map(|n| ("unchanged".to_string(), path(n))).collect();
    assert_eq!(listed(&third), every, "{}", third.text());

    // With --json, restic's verbose_status objects.
    fs::write(src.join("added2"), "more").unwrap();
    let out = env.run(&["--json", "backup", "-v", src_arg]).ok();
    let verbose: Vec<Value> = out.json_values().into_iter().filter(|v| v["message_type"] == "verbose_status").collect();
    assert_eq!(verbose.len(), 1, "{}", out.text());
    assert_eq!(
        (verbose[0]["action"].as_str(), verbose[0]["item"].as_str()),
        (Some("new"), Some(path("added2").as_str()))
    );
    assert_eq!(out.json()["message_type"], "summary");
}

#[test]
fn nothing_on_a_non_terminal_without_json() {
    let env = Env::new();
    tree(&env, 50);
    let src = env.path("src");
    let out =
        Out::from(env.cmd().env("ARCA_PROGRESS_FPS", FPS).args(["backup", src.to_str().unwrap()]).output().unwrap())
            .ok();
    assert_eq!(out.stderr, "", "no progress on a pipe");
    assert!(!out.text().contains("message_type") && !out.text().contains('\r'), "{}", out.text());
    assert!(out.text().contains("snapshot") && out.text().contains("saved"), "{}", out.text());
    // --quiet silences status lines too: only the summary object.
    let target = env.path("t");
    let mut q = env.cmd();
    q.env("ARCA_PROGRESS_FPS", FPS).args(["--json", "-q", "restore", "latest", "--target"]).arg(&target);
    let q = Out::from(q.output().unwrap()).ok();
    assert_eq!(q.json_values().len(), 1, "{}", q.text());
    assert!(Path::new(&target).exists());
}

#[test]
fn the_scan_ahead_counts_what_the_selection_keeps() {
    let env = Env::new();
    let (files, _, bytes) = tree(&env, 50);
    // Left out by a pattern, and a directory's contents by a marker: not in the totals.
    write_random_file(&env.path("src/a/left.skip"), 7, 5000);
    let cache = env.mkdir("src/cache");
    fs::write(cache.join("CACHEDIR.TAG"), "Signature: 8a477f597d28d172789f06886806bc55").unwrap();
    write_random_file(&cache.join("blob"), 8, 7000);
    let src = env.path("src");
    let args = ["backup", "--exclude", "*.skip", "--exclude-caches", src.to_str().unwrap()];
    let (status, _) = with_status(&env, &args);
    let last = status.last().expect("status lines");
    let tag = 43; // the marker file itself is kept
    assert_eq!(
        (last["total_files"].as_u64(), last["total_bytes"].as_u64()),
        (Some(files + 1), Some(bytes + tag)),
        "{last}"
    );
}
