//! Issue #6, backup side: write sizes that hide blob boundaries (item 6), a walk that never
//! follows a directory swapped for a symlink (7), huge directories skipped instead of failing the
//! backup (18), and `backup --force` counters (23).

use crate::common::*;
use arca::archiver::{BackupOptions, Progress};
use arca::backend::{BlockWriter, STAGING_BLOCK};
use arca::format::tree::{Node, NodeKind};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A `Write` that records the length of every call it receives.
#[derive(Default)]
struct Recorder {
    sizes: Vec<usize>,
    bytes: Vec<u8>,
}

impl Write for Recorder {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sizes.push(buf.len());
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every write but the last is one whole block; the last holds the rest.
fn assert_blocked(sizes: &[usize], total: usize, what: &str) {
    let (last, full) = sizes.split_last().unwrap_or_else(|| panic!("{what}: no writes"));
    assert!(full.iter().all(|&n| n == STAGING_BLOCK), "{what}: write sizes {sizes:?}");
    assert!((1..=STAGING_BLOCK).contains(last), "{what}: last write {last}");
    assert_eq!(full.len() * STAGING_BLOCK + last, total, "{what}: total");
}

#[test]
fn staging_writes_are_fixed_blocks_whatever_the_envelopes() {
    // Envelopes below, at and above the block size, in an order that misaligns them.
    let lens = [8usize, 300 << 10, 41, STAGING_BLOCK, 700_001, 5, STAGING_BLOCK - 3, 3, 2 << 20, 1000];
    let mut w = BlockWriter::new(Recorder::default());
    let mut expect = Vec::new();
    for (i, &n) in lens.iter().enumerate() {
        let env = random_bytes(i as u64, n);
        w.write_all(&env).unwrap();
        w.flush().unwrap(); // a flush must not cut a short block
        expect.extend_from_slice(&env);
    }
    let rec = w.finish().unwrap();
    assert_eq!(rec.bytes, expect);
    assert_blocked(&rec.sizes, expect.len(), "block writer");
}

/// `write(2)` calls per file under the repository's `tmp/`, from an strace log taken with `-y`.
fn tmp_writes(log: &str, tmp: &Path) -> BTreeMap<String, Vec<usize>> {
    let prefix = format!("<{}/", tmp.display());
    let mut out: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for line in log.lines() {
        let Some(p) = line.find(&prefix) else { continue };
        // Only plain write(2) is expected on a staged file (no pwrite, no writev).
        let at = line.find("write(").filter(|&a| a + 6 <= p && !line[..a].ends_with('p'));
        let call = &line[at.unwrap_or_else(|| panic!("unexpected call on a tmp file: {line}"))..];
        let p = p - (line.len() - call.len());
        let path = &call[p + 1..p + call[p..].find('>').expect("closed fd path")];
        // `write(fd<path>, ""..., LEN) = N` or `write(fd<path>, ""..., LEN <unfinished ...>`
        let tail = call.rsplit(", ").next().expect("length argument");
        let len: usize = tail.trim_start().split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap();
        out.entry(path.to_string()).or_default().push(len);
    }
    out
}

/// End to end: the real binary under `strace -f -y`, backing up envelopes of many lengths (most
/// above the block size). Skipped, with a message, where strace is missing or cannot trace.
#[test]
fn backup_writes_staged_packs_in_fixed_blocks_strace() {
    if std::process::Command::new("strace").arg("-V").output().is_err() {
        eprintln!("SKIPPED: strace not installed (apt-get install -y strace)");
        return;
    }
    let env = Env::new();
    let src = env.mkdir("src");
    for i in 0..6u64 {
        write_random_file(&src.join(format!("big{i}")), i, (3 << 20) + i * 77_777);
    }
    for i in 0..40u64 {
        fs::write(src.join(format!("small{i}")), random_bytes(100 + i, 1000 + 3331 * i as usize)).unwrap();
    }
    let log = env.path("strace.log");
    let out = std::process::Command::new("strace")
        .args(["-f", "-y", "-s", "0", "-e", "trace=write,pwrite64,writev,pwritev", "-o"])
        .arg(&log)
        .arg(assert_cmd::cargo::cargo_bin("arca"))
        .args(["backup", src.to_str().unwrap()])
        .env("ARCA_REPOSITORY", &env.repo)
        .env("ARCA_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    let log = fs::read_to_string(&log).unwrap_or_default();
    if !out.status.success() && log.is_empty() {
        eprintln!("SKIPPED: strace cannot trace here: {}", String::from_utf8_lossy(&out.stderr));
        return;
    }
    assert!(out.status.success(), "backup failed: {}", String::from_utf8_lossy(&out.stderr));
    let files = tmp_writes(&log, &env.repo.join("tmp"));
    let big: Vec<_> = files.iter().filter(|(_, s)| s.iter().sum::<usize>() > 4 << 20).collect();
    assert!(!big.is_empty(), "no data pack staged in tmp/ seen in the trace: {files:?}");
    for (path, sizes) in &files {
        assert_blocked(sizes, sizes.iter().sum(), path);
    }
}

#[test]
fn forced_backup_counts_files_against_the_parent_by_content() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("same"), b"unchanged content").unwrap();
    fs::write(src.join("edited"), b"old content").unwrap();
    env.backup(&[&src], &[]);
    fs::write(src.join("edited"), b"new content, longer").unwrap();
    fs::write(src.join("added"), b"a new file").unwrap();
    let s = &env.backup(&[&src], &["--force"])["summary"];
    assert_eq!(
        (s["files_new"].as_u64(), s["files_changed"].as_u64(), s["files_unchanged"].as_u64()),
        (Some(1), Some(1), Some(1)),
        "{s}"
    );
    assert_eq!(s["dirs_new"].as_u64(), Some(0), "{s}");
    // Everything was read all the same.
    assert!(s["bytes_read"].as_u64().unwrap() >= 17 + 19 + 10, "{s}");
}

/// Every node of a snapshot with its path relative to the snapshot root (read through the library).
fn snapshot_nodes(repo: &arca::repo::Repository, root: arca::id::Id) -> Vec<(String, Node)> {
    let index = repo.load_index().unwrap();
    let mut out = Vec::new();
    let mut todo = vec![(String::new(), root)];
    while let Some((dir, id)) = todo.pop() {
        for n in repo.read_tree(&index, &id).unwrap().nodes {
            let p = format!("{dir}/{}", String::from_utf8_lossy(&n.name));
            if let NodeKind::Dir { subtree } = n.kind {
                todo.push((p.clone(), subtree));
            }
            out.push((p, n));
        }
    }
    out
}

/// A directory `src/d` of files and an `outside` directory holding files of the same names with
/// other content plus a marker: what a walk that follows a swapped-in symlink would store.
struct SwapScene {
    src: PathBuf,
    d: PathBuf,
    outside: PathBuf,
}

const OUTSIDE_MARKER: &str = "outside-marker-file";

fn swap_scene(env: &Env, files: usize) -> SwapScene {
    let src = env.mkdir("src");
    let d = env.mkdir("src/d");
    let outside = env.mkdir("outside");
    for i in 0..files {
        fs::write(d.join(format!("f{i}")), format!("inside {i}")).unwrap();
        fs::write(outside.join(format!("f{i}")), format!("OUTSIDE {i}")).unwrap();
    }
    fs::write(outside.join(OUTSIDE_MARKER), b"OUTSIDE marker").unwrap();
    fs::write(src.join("keep"), b"a sibling").unwrap();
    SwapScene { src, d, outside }
}

/// Move `d` away and put a symlink to `outside` in its place.
fn swap_in_symlink(s: &SwapScene) -> std::io::Result<()> {
    fs::rename(&s.d, s.d.with_file_name("d.away"))?;
    std::os::unix::fs::symlink(&s.outside, &s.d)
}

/// Undo [`swap_in_symlink`].
fn swap_back(s: &SwapScene) -> std::io::Result<()> {
    fs::remove_file(&s.d)?;
    fs::rename(s.d.with_file_name("d.away"), &s.d)
}

/// Panics if any snapshot holds a file of `outside` (by name, or by content under a name of `d`).
fn assert_nothing_from_outside(repo: &arca::repo::Repository, files: usize) {
    let outside: BTreeSet<arca::id::Id> = (0..files)
        .map(|i| format!("OUTSIDE {i}"))
        .chain(["OUTSIDE marker".to_string()])
        .map(|c| repo.keys().blob_id(c.as_bytes()))
        .collect();
    let snaps = repo.list_snapshots().unwrap();
    assert!(!snaps.is_empty());
    for (id, snap) in snaps {
        for (path, n) in snapshot_nodes(repo, snap.tree) {
            assert!(!path.ends_with(OUTSIDE_MARKER), "snapshot {id} holds {path}, from outside");
            if let NodeKind::File { content, .. } = &n.kind {
                assert!(!content.iter().any(|c| outside.contains(&c.id)), "snapshot {id}: {path} has outside content");
            }
        }
    }
}

fn lib_backup(repo: &arca::repo::Repository, opts: &BackupOptions) -> arca::archiver::BackupResult {
    arca::archiver::backup(repo, opts, &Progress::default()).expect("backup")
}

#[test]
fn directory_swapped_for_a_symlink_before_it_is_opened_is_not_followed() {
    let (env, repo) = Env::with_lib_repo();
    let scene = swap_scene(&env, 5);
    let d = scene.d.clone();
    let swapped = std::sync::Arc::new(std::sync::Mutex::new(false));
    let (hook_scene, flag) =
        (SwapScene { src: scene.src.clone(), d: d.clone(), outside: scene.outside.clone() }, swapped.clone());
    let opts = BackupOptions {
        paths: vec![scene.src.clone()],
        // The worst moment: the parent's listing has stat'ed `d` as a directory; now it is a symlink.
        before_dir_open: Some(Box::new(move |p: &Path| {
            if p == hook_scene.d && !*flag.lock().unwrap() {
                swap_in_symlink(&hook_scene).unwrap();
                *flag.lock().unwrap() = true;
            }
        })),
        ..Default::default()
    };
    let res = lib_backup(&repo, &opts);
    assert!(*swapped.lock().unwrap(), "the hook ran");
    assert_nothing_from_outside(&repo, 5);
    let w: Vec<_> = res.warnings.iter().filter(|w| w.path == d).collect();
    assert!(w.len() == 1 && w[0].not_saved, "{:?}", res.warnings);
    let names: Vec<String> = snapshot_nodes(&repo, res.snapshot.tree).into_iter().map(|(p, _)| p).collect();
    assert!(names.iter().any(|p| p.ends_with("/src/keep")), "{names:?}");
}

/// A real race: a thread keeps swapping `src/d` for a symlink to `outside` (and back) while
/// backups run; no snapshot may ever hold anything of `outside`. About two seconds.
#[test]
fn directory_swapped_for_a_symlink_during_racing_backups_is_never_followed() {
    const FILES: usize = 150;
    let (env, repo) = Env::with_lib_repo();
    let scene = swap_scene(&env, FILES);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let racer = {
        let (stop, s) =
            (stop.clone(), SwapScene { src: scene.src.clone(), d: scene.d.clone(), outside: scene.outside.clone() });
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Each state lasts long enough for a walk to stat in one and open in the other.
                if swap_in_symlink(&s).is_ok() {
                    swaps += 1;
                    std::thread::sleep(std::time::Duration::from_micros(200));
                    swap_back(&s).unwrap();
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
            }
            swaps
        })
    };
    let opts = BackupOptions { paths: vec![scene.src.clone()], ..Default::default() };
    let mut partial = 0;
    for _ in 0..30 {
        let res = lib_backup(&repo, &opts);
        partial += res.warnings.iter().any(|w| w.not_saved) as u32;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = racer.join().unwrap();
    assert!(swaps > 30, "the racer ran ({swaps} swaps)");
    eprintln!("{swaps} swaps, {partial} of 30 backups partial");
    assert_nothing_from_outside(&repo, FILES);
}

/// A directory with more entries than a tree may hold is left out with a warning; the rest is
/// saved. The limit is lowered through the library's hidden test knob (the real one is 2^21:
/// see `directory_over_the_tree_limit_is_skipped_cli` for that).
#[test]
fn directory_over_the_entry_limit_is_skipped_and_the_rest_saved() {
    let (env, repo) = Env::with_lib_repo();
    let src = env.mkdir("src");
    for (dir, n) in [("big", 6), ("ok", 5), ("big_but_excluded_down", 6)] {
        let d = env.mkdir(&format!("src/{dir}"));
        for i in 0..n {
            fs::write(d.join(format!("f{i}")), format!("{dir} {i}")).unwrap();
        }
    }
    fs::write(env.path("src/big_but_excluded_down/skip.tmp"), b"x").unwrap();
    fs::write(src.join("top"), b"top").unwrap();
    let opts = BackupOptions {
        paths: vec![src.clone()],
        excludes: arca::archiver::Selection::patterns(&["*.tmp", "f5"]).unwrap(),
        max_dir_entries: Some(5),
        ..Default::default()
    };
    // With "f5" excluded, big_but_excluded_down keeps 5 names; big keeps 5 too. Add one more to big.
    fs::write(env.path("src/big/f6"), b"big 6").unwrap();
    let res = lib_backup(&repo, &opts);
    let bad: Vec<_> = res.warnings.iter().filter(|w| w.not_saved).collect();
    assert_eq!(bad.len(), 1, "{:?}", res.warnings);
    assert_eq!(bad[0].path, src.join("big"));
    assert!(bad[0].message.contains("more than 5 entries"), "{}", bad[0].message);
    assert_eq!(res.snapshot.summary.errors, 1);
    let names: BTreeSet<String> = snapshot_nodes(&repo, res.snapshot.tree).into_iter().map(|(p, _)| p).collect();
    let rel = |p: &str| format!("{}/{p}", src.display());
    assert!(names.contains(&rel("top")) && names.contains(&rel("ok/f4")), "{names:?}");
    assert!(names.contains(&rel("big_but_excluded_down/f4")), "{names:?}");
    assert!(!names.iter().any(|p| p.contains("/src/big/")) && !names.contains(&rel("big")), "{names:?}");
}

/// The real limit: 2^21 + 1 hard links in one directory (any local user can make them).
/// Slow (about a minute: 2 M directory entries are created, then read), so ignored; run with
/// `cargo test --locked --test it directory_over_the_tree_limit_is_skipped_cli -- --ignored`.
#[test]
#[ignore]
fn directory_over_the_tree_limit_is_skipped_cli() {
    let env = Env::new();
    let src = env.mkdir("src");
    let huge = env.mkdir("src/huge");
    fs::write(src.join("sibling"), b"saved all the same").unwrap();
    // Hard links, a new inode every 60,000 (ext4 allows 65,000 links per inode).
    let mut first = huge.clone();
    for i in 0..=arca::format::tree::MAX_TREE_NODES {
        let name = huge.join(format!("l{i}"));
        if i % 60_000 == 0 {
            fs::write(&name, b"one inode").unwrap();
            first = name;
        } else {
            fs::hard_link(&first, name).unwrap();
        }
    }
    let out = env.run(&["backup", src.to_str().unwrap()]).code(3);
    let err = out.all();
    assert!(err.contains(huge.to_str().unwrap()) && err.contains("more than 2097152 entries"), "{err}");
    let node = latest_node(&env, &src.join("sibling"));
    assert!(matches!(node.kind, NodeKind::File { size: 18, .. }));
    let repo = env.open();
    let index = repo.load_index().unwrap();
    let root = repo.find_snapshot("latest").unwrap().1.tree;
    assert!(
        arca::restore::resolve(&repo, &index, root, huge.to_str().unwrap()).is_err(),
        "huge/ is not in the snapshot"
    );
}
