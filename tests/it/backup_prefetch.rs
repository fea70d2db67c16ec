//! Backup with the I/O pool reading ahead (`--io-threads`): the same snapshots as without it,
//! byte for byte; the same refusal to follow swapped-in symlinks, with real racing threads; and
//! bounded descriptors under a small open-file limit.

use crate::common::*;
use arca::archiver::{BackupOptions, Progress};
use arca::format::tree::NodeKind;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// A tree with every case the look-ahead distinguishes: directories under and over the size
/// stat'ed on the caller's thread (8 entries), over a look-ahead slice (4096 entries), empty
/// files, files read whole (≤ 2 MiB), streamed files, one larger than what is asked for ahead
/// when opened (16 MiB) so the reader keeps asking, symlinks, a FIFO, nested directories.
fn varied_tree(env: &Env) -> PathBuf {
    let src = env.mkdir("src");
    let small = env.mkdir("src/small");
    fs::write(small.join("a"), b"a").unwrap();
    fs::write(small.join("empty"), b"").unwrap();
    std::os::unix::fs::symlink("a", small.join("link")).unwrap();
    let many = env.mkdir("src/many");
    for i in 0..4200 {
        fs::write(many.join(format!("f{i:04}")), format!("many {i}\n").repeat(i % 7)).unwrap();
    }
    let big = env.mkdir("src/big/deeper/still");
    write_random_file(&big.join("three-mib"), 1, 3 << 20);
    write_random_file(&big.join("forty-mib"), 2, 40 << 20);
    for i in 0..20 {
        write_random_file(&env.mkdir("src/big/deeper").join(format!("m{i}")), 10 + i, 100_000 + i * 7919);
    }
    let fifo = std::ffi::CString::new(src.join("fifo").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    src
}

/// The tree of the directory `path` (absolute) in the snapshot tree `root`.
fn subtree_at(repo: &arca::repo::Repository, root: arca::id::Id, path: &Path) -> arca::id::Id {
    let index = repo.load_index().unwrap();
    let mut id = root;
    for c in path.iter().skip(1) {
        let tree = repo.read_tree(&index, &id).unwrap();
        let node = tree.nodes.iter().find(|n| n.name == c.as_encoded_bytes()).expect("path in snapshot");
        id = node.subtree().expect("a directory");
    }
    id
}

fn backup_with(repo: &arca::repo::Repository, src: &Path, io_threads: usize) -> arca::archiver::BackupResult {
    let opts = BackupOptions { paths: vec![src.to_path_buf()], io_threads: Some(io_threads), ..Default::default() };
    arca::archiver::backup(repo, &opts, &Progress::default()).expect("backup")
}

#[test]
fn reading_ahead_or_not_gives_the_same_snapshot_and_restore() {
    let (env, repo) = Env::with_lib_repo();
    let src = varied_tree(&env);
    // No parent: every run reads every file (a parent would carry files forward unread).
    let runs: Vec<_> = [0, 1, 3, 64]
        .iter()
        .map(|&n| {
            let opts = BackupOptions {
                paths: vec![src.clone()],
                io_threads: Some(n),
                parent: None,
                force: true,
                ..Default::default()
            };
            arca::archiver::backup(&repo, &opts, &Progress::default()).expect("backup")
        })
        .collect();
    // The trees above `src` hold the metadata of /tmp, which other tests change meanwhile.
    let src_tree = |r: &arca::archiver::BackupResult| subtree_at(&repo, r.snapshot.tree, &src);
    for r in &runs {
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert_eq!(src_tree(r), src_tree(&runs[0]), "the tree depends on --io-threads");
        assert_eq!(r.snapshot.summary.bytes_read, runs[0].snapshot.summary.bytes_read);
    }
    assert!(runs[0].snapshot.summary.bytes_read > 43 << 20);
    let target = env.mkdir("target");
    env.restore(&runs[3].id.unwrap().to_string(), &target, &[]);
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()), Cmp { root_meta: false, mtime: true });
}

#[test]
fn a_parent_still_spares_unchanged_files_with_reading_ahead() {
    let (env, repo) = Env::with_lib_repo();
    let src = varied_tree(&env);
    let first = backup_with(&repo, &src, 16);
    assert!(first.warnings.is_empty(), "{:?}", first.warnings);
    fs::write(src.join("many/f0001"), b"changed").unwrap();
    let second = backup_with(&repo, &src, 16);
    let s = &second.snapshot.summary;
    assert_eq!((s.files_changed, s.files_new), (1, 0), "{s:?}");
    assert_eq!(s.bytes_read, 7, "only the changed file is read");
    assert_ne!(subtree_at(&repo, first.snapshot.tree, &src), subtree_at(&repo, second.snapshot.tree, &src));
}

/// `src/d/f*` are regular files; `outside/f*` hold other content. The racer renames a file away
/// and puts a symlink to its outside twin in its place, then undoes it, over and over.
#[test]
fn files_swapped_for_symlinks_while_read_ahead_are_never_followed() {
    const FILES: usize = 300;
    let (env, repo) = Env::with_lib_repo();
    let src = env.mkdir("src");
    let d = env.mkdir("src/d");
    let outside = env.mkdir("outside");
    let mut outside_ids = BTreeSet::new();
    for i in 0..FILES {
        fs::write(d.join(format!("f{i}")), format!("inside {i}")).unwrap();
        let o = format!("OUTSIDE {i}");
        fs::write(outside.join(format!("f{i}")), &o).unwrap();
        outside_ids.insert(repo.keys().blob_id(o.as_bytes()));
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let racer = {
        let (stop, d, outside) = (stop.clone(), d.clone(), outside.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for i in (0..FILES).step_by(7) {
                    let (f, away) = (d.join(format!("f{i}")), d.join(format!(".away{i}")));
                    if fs::rename(&f, &away).is_ok() {
                        std::os::unix::fs::symlink(outside.join(format!("f{i}")), &f).unwrap();
                        swaps += 1;
                        std::thread::sleep(std::time::Duration::from_micros(50));
                        fs::remove_file(&f).unwrap();
                        fs::rename(&away, &f).unwrap();
                    }
                }
            }
            swaps
        })
    };
    for _ in 0..25 {
        backup_with(&repo, &src, 16);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = racer.join().unwrap();
    assert!(swaps > 100, "the racer ran ({swaps} swaps)");
    let index = repo.load_index().unwrap();
    for (id, snap) in repo.list_snapshots().unwrap() {
        let mut todo = vec![snap.tree];
        while let Some(t) = todo.pop() {
            for n in repo.read_tree(&index, &t).unwrap().nodes {
                match n.kind {
                    NodeKind::Dir { subtree } => todo.push(subtree),
                    NodeKind::File { content, .. } => {
                        assert!(
                            !content.iter().any(|c| outside_ids.contains(&c.id)),
                            "snapshot {id} followed a symlink"
                        )
                    }
                    _ => {}
                }
            }
        }
    }
}

/// With the open-file limit at 64, a backup of 3,000 files in 20 directories, nested, reads
/// every file: the pool holds no more descriptors than the limit leaves it (a quarter).
#[test]
fn reading_ahead_stays_within_a_small_open_file_limit() {
    let env = Env::new();
    let src = env.mkdir("src");
    let mut dir = src.clone();
    for d in 0..20 {
        dir = dir.join(format!("d{d}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..150 {
            fs::write(dir.join(format!("f{f}")), format!("{d}/{f}")).unwrap();
        }
    }
    let mut c = arca_std_cmd();
    c.env("ARCA_REPOSITORY", &env.repo).env("ARCA_PASSWORD", PASSWORD);
    c.args(["--json", "backup", "--io-threads", "32", src.to_str().unwrap()]);
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: 64, rlim_max: 64 };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = Out::from(c.output().unwrap()).ok();
    let v = out.json();
    assert_eq!(v["summary"]["files_new"], 3000, "{}", out.all());
    assert_eq!(v["summary"]["errors"], 0, "{}", out.all());
}

#[test]
fn io_threads_is_a_cli_setting_and_env() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("f"), b"x").unwrap();
    let s = src.to_str().unwrap();
    env.run(&["backup", "--io-threads", "0", s]).ok();
    Out::from(env.cmd().env("ARCA_IO_THREADS", "4").args(["backup", s]).output().unwrap()).ok();
    for v in ["many", "257"] {
        let bad = env.run(&["backup", "--io-threads", v, s]).code(2);
        assert!(bad.all().contains("--io-threads"), "{v}: {}", bad.all());
    }
}
