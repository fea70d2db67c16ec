//! Backup and restore (issue 3): round trips with metadata, streaming, stdin, incremental backups,
//! change detection, excludes, selective restore, overwrite policies and hostile snapshots.

use crate::common::*;
use arca::format::blob::BlobType;
use arca::format::snapshot::{Snapshot, Summary};
use arca::format::tree::{ChunkRef, Node, NodeKind, Tree, Xattr};
use arca::repo::packer::Packer;
use arca::Id;
use serde_json::Value;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Paths (relative to `base`) listed by `ls --json REF`.
fn ls_paths(env: &Env, reference: &str, base: &Path) -> BTreeSet<String> {
    let prefix = format!("{}/", base.to_str().unwrap());
    env.json(&["ls", reference])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().strip_prefix(&prefix).unwrap_or_else(|| panic!("{e}")).to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_tree_comparison_helper_notices_differences() {
    let env = Env::bare();
    let a = env.mkdir("a");
    make_realistic_tree(&a);
    let b = env.path("b");
    // cp -a equivalent through a backup/restore-free path: copy by hand.
    fn copy(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for e in fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            let dest = to.join(e.file_name());
            if m.is_dir() {
                copy(&e.path(), &dest);
            } else {
                fs::copy(e.path(), &dest).unwrap();
            }
            fs::set_permissions(&dest, m.permissions()).unwrap();
            set_mtime(&dest, m.modified().unwrap());
        }
    }
    copy(&a, &b);
    set_mtime(&b, fs::metadata(&a).unwrap().modified().unwrap());
    assert_same_tree(&a, &b, Cmp::default());
    let diffs = |what: &str| {
        let d = tree_diffs(&a, &b, Cmp::default());
        assert!(!d.is_empty(), "{what} not detected");
    };
    // Content with the same size and mtime.
    let f = b.join("big.bin");
    let t = fs::metadata(&f).unwrap().modified().unwrap();
    fs::File::options().write(true).open(&f).unwrap().write_all_at(b"X", 1_000_000).unwrap();
    set_mtime(&f, t);
    diffs("content");
    fs::copy(a.join("big.bin"), &f).unwrap();
    set_mtime(&f, t);
    assert_same_tree(&a, &b, Cmp::default());
    // Mode, mtime nanoseconds, symlink target, xattr, hard link, extra entry.
    fs::set_permissions(b.join("src/run.sh"), fs::Permissions::from_mode(0o700)).unwrap();
    diffs("mode");
    fs::set_permissions(b.join("src/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    let m = fs::metadata(a.join("empty.dat")).unwrap();
    set_mtime(&b.join("empty.dat"), m.modified().unwrap() + std::time::Duration::from_nanos(1));
    diffs("mtime ns");
    set_mtime(&b.join("empty.dat"), m.modified().unwrap());
    std::os::unix::fs::symlink("x", a.join("l")).unwrap();
    std::os::unix::fs::symlink("y", b.join("l")).unwrap();
    diffs("symlink target");
    fs::remove_file(a.join("l")).unwrap();
    fs::remove_file(b.join("l")).unwrap();
    if xattrs_supported(env.dir.path()) {
        xattr::set(a.join("empty.dat"), "user.k", b"v").unwrap();
        diffs("xattr");
        xattr::set(b.join("empty.dat"), "user.k", b"v").unwrap();
    }
    fs::hard_link(a.join("src/run.sh"), a.join("hl")).unwrap();
    fs::copy(b.join("src/run.sh"), b.join("hl")).unwrap();
    let hm = fs::metadata(a.join("hl")).unwrap();
    fs::set_permissions(b.join("hl"), hm.permissions()).unwrap();
    set_mtime(&b.join("hl"), hm.modified().unwrap());
    set_mtime(&b.join("src"), fs::metadata(a.join("src")).unwrap().modified().unwrap());
    set_mtime(&b, fs::metadata(&a).unwrap().modified().unwrap());
    let d = tree_diffs(&a, &b, Cmp::default());
    assert!(d.len() == 1 && d[0].starts_with("hard-link groups"), "{d:?}");
}

// ---- round trips --------------------------------------------------------------------------

#[test]
fn a_realistic_tree_round_trips_with_metadata() {
    let env = Env::new();
    let src = env.path("src");
    let files = make_realistic_tree(&src);
    let b = env.backup(&[&src], &[]);
    let s = &b["summary"];
    assert_eq!(n(&s["files_new"]), files as u64);
    assert_eq!(n(&s["errors"]), 0);
    assert!(n(&s["bytes_read"]) > 3 << 20);
    assert!(b["warnings"].as_array().unwrap().is_empty());

    let t1 = env.path("t1");
    let stats = env.restore(&sref("latest", &src), &t1, &["--verify"]);
    assert_eq!(n(&stats["files"]), files as u64);
    assert!(stats["errors"].as_array().unwrap().is_empty(), "{stats}");
    assert_same_tree(&src, &t1, Cmp::default());

    // The whole snapshot restores the absolute path below the target.
    let t2 = env.path("t2");
    env.restore("latest", &t2, &[]);
    assert_same_tree(&src, &under(&t2, &src), Cmp::default());

    // The big file was cut into several chunks.
    let repo = env.open();
    let index = repo.load_index().unwrap();
    let tree = repo.find_snapshot("latest").unwrap().1.tree;
    let node = arca::restore::resolve(&repo, &index, tree, src.join("big.bin").to_str().unwrap()).unwrap();
    let NodeKind::File { content, size } = node.kind else { panic!() };
    assert_eq!(size, 3 << 20);
    assert!(content.len() >= 2, "3 MiB in {} chunk(s)", content.len());
}

#[test]
fn sparse_files_stay_sparse() {
    let env = Env::new();
    let src = env.mkdir("src");
    const SIZE: u64 = 64 << 20;
    let p = src.join("disk.img");
    let f = fs::File::create(&p).unwrap();
    f.set_len(SIZE).unwrap();
    f.write_all_at(b"boot sector", 0).unwrap();
    f.write_all_at(&random_bytes(9, 5000), 30 << 20).unwrap();
    drop(f);
    let hole = src.join("hole.img");
    fs::File::create(&hole).unwrap().set_len(20 << 20).unwrap();
    if allocated(&p) > SIZE / 8 {
        eprintln!("skipping: the temp filesystem does not make sparse files");
        return;
    }
    env.backup(&[&src], &[]);
    let t = env.path("t");
    env.restore(&sref("latest", &src), &t, &[]);
    assert_same_tree(&src, &t, Cmp::default());
    let (got, holey) = (allocated(&t.join("disk.img")), allocated(&t.join("hole.img")));
    assert!(got < SIZE / 4, "restored {SIZE}-byte sparse file allocates {got} bytes");
    assert!(holey < 1 << 20, "restored 20 MiB hole allocates {holey} bytes");
}

#[test]
fn hard_links_are_restored_as_hard_links() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    fs::write(src.join("a.txt"), b"shared content").unwrap();
    fs::hard_link(src.join("a.txt"), src.join("sub/b.txt")).unwrap();
    fs::write(src.join("c.bin"), random_bytes(5, 70_000)).unwrap();
    fs::hard_link(src.join("c.bin"), src.join("sub/deeper/d.bin")).unwrap();
    fs::hard_link(src.join("c.bin"), src.join("e.bin")).unwrap();
    fs::write(src.join("single.txt"), b"shared content").unwrap(); // same content, not a link
                                                                   // A file linked from outside the backup: restored as a plain file.
    fs::write(src.join("lonely.txt"), b"lonely").unwrap();
    fs::hard_link(src.join("lonely.txt"), env.path("outside-link")).unwrap();

    env.backup(&[&src], &[]);
    let t = env.path("t");
    let stats = env.restore(&sref("latest", &src), &t, &[]);
    assert_same_tree(&src, &t, Cmp::default());
    let ino = |p: &str| fs::metadata(t.join(p)).unwrap().ino();
    assert_eq!(ino("a.txt"), ino("sub/b.txt"));
    assert_eq!(ino("c.bin"), ino("sub/deeper/d.bin"));
    assert_eq!(ino("c.bin"), ino("e.bin"));
    assert_ne!(ino("a.txt"), ino("single.txt"));
    assert_eq!(fs::metadata(t.join("lonely.txt")).unwrap().nlink(), 1);
    assert_eq!(fs::metadata(t.join("c.bin")).unwrap().nlink(), 3);
    // Linked files are written once.
    assert_eq!(n(&stats["files"]), 4, "{stats}");

    // Restoring again over it keeps the links.
    env.restore(&sref("latest", &src), &t, &[]);
    assert_same_tree(&src, &t, Cmp::default());
}

#[test]
fn symlinks_are_stored_and_restored_verbatim_never_followed() {
    let env = Env::new();
    let src = env.mkdir("src");
    let outside = env.mkdir("outside");
    fs::write(outside.join("secret.txt"), b"outside the backup").unwrap();
    fs::write(src.join("a.txt"), b"a").unwrap();
    fs::create_dir(src.join("dir")).unwrap();
    let links: Vec<(&str, Vec<u8>)> = vec![
        ("rel", b"a.txt".to_vec()),
        ("dangling", b"does/not/exist".to_vec()),
        ("absolute", b"/etc/hostname".to_vec()),
        ("to-outside-dir", outside.as_os_str().as_bytes().to_vec()),
        ("up", b"..".to_vec()),
        ("dir/back", b"../a.txt".to_vec()),
        ("non-utf8", b"caf\xe9/\xff".to_vec()),
        ("long", "x/".repeat(900).into_bytes()),
    ];
    for (name, target) in &links {
        std::os::unix::fs::symlink(OsStr::from_bytes(target), src.join(name)).unwrap();
    }
    let b = env.backup(&[&src], &[]);
    assert_eq!(n(&b["summary"]["errors"]), 0);
    // The backup did not descend into the linked directory.
    assert_eq!(env.json(&["find", "secret.txt"]).as_array().unwrap().len(), 0);
    let entries = env.json(&["ls", &sref("latest", &src.join("to-outside-dir"))]);
    assert_eq!(entries.as_array().unwrap().len(), 1);
    assert_eq!(entries[0]["type"], "symlink");
    assert_eq!(entries[0]["link_target"], outside.to_str().unwrap());

    let t = env.path("t");
    env.restore(&sref("latest", &src), &t, &[]);
    assert_same_tree(&src, &t, Cmp::default());
    for (name, target) in &links {
        let m = fs::symlink_metadata(t.join(name)).unwrap();
        assert!(m.file_type().is_symlink(), "{name}");
        assert_eq!(fs::read_link(t.join(name)).unwrap().as_os_str().as_bytes(), &target[..], "{name}");
    }
    // Nothing was written through the links.
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
    assert_eq!(fs::read(outside.join("secret.txt")).unwrap(), b"outside the backup");
}

#[test]
fn empty_dirs_empty_files_fifos_and_odd_names_round_trip() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::create_dir_all(src.join("empty/nested/deeper")).unwrap();
    fs::write(src.join("zero"), b"").unwrap();
    mkfifo(&src.join("pipe"));
    let names: Vec<&[u8]> = vec![
        "日本語のファイル.txt".as_bytes(),
        "ça va?".as_bytes(),
        b"caf\xe9",
        b"\xff\xfe binary name",
        b"with\nnewline",
        b" leading space",
        b"-starts-with-dash",
        b"*glob?[chars]",
        b"back\\slash",
    ];
    for (i, name) in names.iter().enumerate() {
        fs::write(src.join(OsStr::from_bytes(name)), format!("content {i}")).unwrap();
    }
    let long = "L".repeat(255);
    fs::write(src.join(&long), b"long name").unwrap();
    fs::create_dir(src.join(OsStr::from_bytes(b"dir-\xe9"))).unwrap();
    fs::write(src.join(OsStr::from_bytes(b"dir-\xe9/inner")), b"inner").unwrap();
    set_mtime(&src.join(OsStr::from_bytes(b"dir-\xe9")), odd_time(1_000_000_000, 999_999_999));
    set_mtime(&src.join("empty/nested"), odd_time(1_111_111_111, 1));

    env.backup(&[&src], &[]);
    let t = env.path("t");
    env.restore(&sref("latest", &src), &t, &[]);
    assert_same_tree(&src, &t, Cmp::default());
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::symlink_metadata(t.join("pipe")).unwrap().file_type().is_fifo());
    assert!(t.join(OsStr::from_bytes(b"caf\xe9")).is_file());
    assert_eq!(fs::read_dir(t.join("empty/nested/deeper")).unwrap().count(), 0);
}

#[test]
fn extended_attributes_round_trip() {
    let env = Env::new();
    let src = env.mkdir("src");
    if !xattrs_supported(&src) {
        eprintln!("skipping: no user xattrs on the temp filesystem");
        return;
    }
    fs::create_dir(src.join("dir")).unwrap();
    fs::write(src.join("dir/file"), b"x").unwrap();
    fs::write(src.join("plain"), b"no attributes").unwrap();
    xattr::set(src.join("dir/file"), "user.comment", b"a comment").unwrap();
    xattr::set(src.join("dir/file"), "user.binary", &[0u8, 1, 2, 255, 0]).unwrap();
    xattr::set(src.join("dir/file"), "user.empty", b"").unwrap();
    xattr::set(src.join("dir/file"), "user.big", &random_bytes(1, 3000)).unwrap();
    xattr::set(src.join("dir"), "user.on-a-dir", b"dir value").unwrap();
    xattr::set(&src, "user.on-the-root", b"root value").unwrap();

    env.backup(&[&src], &[]);
    let t = env.path("t");
    env.restore(&sref("latest", &src), &t, &[]);
    assert_same_tree(&src, &t, Cmp::default());
    assert_eq!(xattr::get(t.join("dir/file"), "user.binary").unwrap().unwrap(), vec![0u8, 1, 2, 255, 0]);
    assert_eq!(xattr::get(t.join("dir/file"), "user.empty").unwrap().unwrap(), Vec::<u8>::new());
    assert_eq!(xattr::get(t.join("dir"), "user.on-a-dir").unwrap().unwrap(), b"dir value");
    assert_eq!(xattr::get(&t, "user.on-the-root").unwrap().unwrap(), b"root value");
    assert!(xattrs_of(&t.join("plain")).iter().all(|(k, _)| !k.starts_with(b"user.")));
}

/// format-spec/11-snapshot.md §11.3: a directory above a backup path that is reached through a
/// symlink is recorded with the metadata (mode, owner, inode, extended attributes) of the
/// directory the path resolves through — never the symlink's own 0777, which a restore would
/// turn into a world-writable directory. The backup path itself keeps its symlinks (`paths`
/// records `link/sub`, not `real/sub`).
#[test]
fn a_symlinked_directory_above_a_backup_path_is_recorded_as_the_directory_it_leads_to() {
    let env = Env::new();
    let real = env.mkdir("real");
    fs::create_dir(real.join("sub")).unwrap();
    fs::write(real.join("sub/f.txt"), b"through a symlink").unwrap();
    fs::set_permissions(&real, fs::Permissions::from_mode(0o750)).unwrap();
    let with_xattr = xattrs_supported(&real);
    if with_xattr {
        xattr::set(&real, "user.where", b"the real directory").unwrap();
    }
    let link = env.path("link");
    std::os::unix::fs::symlink("real", &link).unwrap();
    env.backup(&[&link.join("sub")], &[]);
    let paths = env.open().find_snapshot("latest").unwrap().1.paths;
    assert_eq!(paths, vec![link.join("sub").as_os_str().as_bytes().to_vec()]);

    let n = latest_node(&env, &link);
    assert!(matches!(n.kind, NodeKind::Dir { .. }), "{n:?}");
    assert_eq!(n.mode, 0o750, "the symlink's own mode was recorded");
    assert_eq!(n.inode, fs::metadata(&real).unwrap().ino());
    if with_xattr {
        assert_eq!(n.xattrs.len(), 1, "{:?}", n.xattrs);
        assert_eq!(n.xattrs[0].value, b"the real directory");
    }

    let t = env.path("t");
    env.restore("latest", &t, &[]);
    let restored = under(&t, &link);
    let m = fs::symlink_metadata(&restored).unwrap();
    assert!(m.is_dir());
    assert_eq!(m.mode() & 0o7777, 0o750, "restored with the mode of the symlink");
    assert_eq!(fs::read(restored.join("sub/f.txt")).unwrap(), b"through a symlink");
}

#[test]
fn a_file_larger_than_the_in_memory_limit_is_streamed() {
    let env = Env::new();
    let src = env.mkdir("src");
    // Well above the in-memory limit (one maximum chunk) and the streaming path's in-flight
    // budget, so the file is never held whole. (Debug builds decrypt slowly: keep it modest.)
    const SIZE: u64 = 24 << 20;
    write_random_file(&src.join("huge.bin"), 42, SIZE);
    let b = env.backup(&[&src], &[]);
    assert_eq!(n(&b["summary"]["bytes_read"]), SIZE);
    let t = env.path("t");
    env.restore(&sref("latest", &src), &t, &[]);
    assert_eq!(fs::metadata(t.join("huge.bin")).unwrap().len(), SIZE);
    assert_eq!(hash_file(&t.join("huge.bin")), hash_file(&src.join("huge.bin")));
    assert_same_tree(&src, &t, Cmp::default());
    // Chunks respect the configured bounds.
    let node = latest_node(&env, &src.join("huge.bin"));
    let NodeKind::File { content, .. } = node.kind else { panic!() };
    let ch = env.open().config().chunker;
    assert!(SIZE > 4 * ch.max_size as u64, "the streaming path must be used");
    assert!(content.len() as u64 >= SIZE / ch.max_size as u64, "{} chunks", content.len());
    assert!(content.iter().all(|c| c.len <= ch.max_size));
    assert!(content[..content.len() - 1].iter().all(|c| c.len >= ch.min_size));
    assert_eq!(content.iter().map(|c| c.len as u64).sum::<u64>(), SIZE);
}

// ---- stdin ----------------------------------------------------------------------------------

#[test]
fn stdin_backups_store_the_stream_and_a_changed_stream_of_equal_length() {
    let env = Env::new();
    const SIZE: usize = 6 << 20;
    let first = random_bytes(11, SIZE);
    let b1 = env.run_stdin(&["--json", "backup", "--stdin", "--stdin-filename", "db.sql"], first.clone()).ok().json();
    let id1 = b1["snapshot"].as_str().unwrap().to_string();
    assert_eq!(env.run(&["dump", "latest:db.sql"]).ok().stdout, first);
    let info1 = env.info();

    // Same length, different bytes in the middle: must be stored, not taken as unchanged.
    let mut second = first.clone();
    for b in &mut second[3_000_000..3_000_100] {
        *b ^= 0xff;
    }
    let b2 = env.run_stdin(&["--json", "backup", "--stdin", "--stdin-filename", "db.sql"], second.clone()).ok().json();
    let id2 = b2["snapshot"].as_str().unwrap().to_string();
    assert_ne!(id1, id2);
    assert_eq!(env.run(&["dump", "latest:db.sql"]).ok().stdout, second);
    assert_eq!(env.run(&["dump", &format!("{}:/db.sql", &id1[..10])]).ok().stdout, first);

    // Exactly the chunks not already stored were added, and only a few chunks changed.
    let (c1, c2) = (chunks_of(&env, &id1, "db.sql"), chunks_of(&env, &id2, "db.sql"));
    let old: BTreeSet<Id> = c1.iter().map(|c| c.id).collect();
    let fresh: Vec<&ChunkRef> = c2.iter().filter(|c| !old.contains(&c.id)).collect();
    assert!((1..=3).contains(&fresh.len()), "{} of {} chunks changed for a 100-byte change", fresh.len(), c2.len());
    let fresh_bytes: u64 = fresh.iter().map(|c| c.len as u64).sum();
    let info2 = env.info();
    assert_eq!(n(&info2["data_blobs"]) - n(&info1["data_blobs"]), fresh.len() as u64);
    let grown = n(&info2["pack_bytes"]) - n(&info1["pack_bytes"]);
    assert!(
        grown >= fresh_bytes && grown < fresh_bytes + (64 << 10),
        "repository grew by {grown} bytes for {fresh_bytes} bytes of new chunks"
    );
    assert_eq!(n(&b2["summary"]["bytes_read"]), SIZE as u64);
    let added = n(&b2["summary"]["bytes_added"]);
    assert!(added >= fresh_bytes && added < fresh_bytes + (64 << 10), "bytes_added {added}, new chunks {fresh_bytes}");

    // The same stream again adds no data (only a tree with a new mtime).
    let b3 = env.run_stdin(&["--json", "backup", "--stdin", "--stdin-filename", "db.sql"], second).ok().json();
    assert!(n(&b3["summary"]["bytes_added"]) < 4096, "{b3}");
    assert_eq!(n(&env.info()["data_blobs"]), n(&info2["data_blobs"]));
}

/// The chunk list of file `path` in snapshot `snap`.
fn chunks_of(env: &Env, snap: &str, path: &str) -> Vec<ChunkRef> {
    let repo = env.open();
    let index = repo.load_index().unwrap();
    let tree = repo.find_snapshot(snap).unwrap().1.tree;
    match arca::restore::resolve(&repo, &index, tree, path).unwrap().kind {
        NodeKind::File { content, .. } => content,
        other => panic!("{path} is {other:?}"),
    }
}

#[test]
fn stdin_backup_names() {
    let env = Env::new();
    env.run_stdin(&["backup", "--stdin"], b"default name".to_vec()).ok();
    assert_eq!(env.run(&["dump", "latest:stdin"]).ok().stdout, b"default name");
    env.run_stdin(&["backup", "--stdin"], Vec::new()).code(1);
    env.run_stdin(&["backup", "--stdin", "--allow-empty"], Vec::new()).ok();
    assert_eq!(env.run(&["dump", "latest:stdin"]).ok().stdout, b"");
    for bad in ["a/b", "..", "."] {
        env.run_stdin(&["backup", "--stdin", "--stdin-filename", bad], b"x".to_vec()).code(2);
    }
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 2);
}

// ---- incremental backups and change detection ----------------------------------------------

#[test]
fn an_incremental_backup_stores_only_new_chunks_and_old_snapshots_keep_old_content() {
    let env = Env::new();
    let src = env.mkdir("src");
    const BIG: usize = 6 << 20;
    let original = random_bytes(20, BIG);
    fs::write(src.join("big.bin"), &original).unwrap();
    for i in 0..5 {
        fs::write(src.join(format!("small-{i}.txt")), format!("small file {i}\n").repeat(100)).unwrap();
    }
    let b1 = env.backup(&[&src], &[]);
    let id1 = b1["snapshot"].as_str().unwrap().to_string();
    assert!(n(&b1["summary"]["bytes_added"]) >= BIG as u64);

    fs::File::options()
        .write(true)
        .open(src.join("big.bin"))
        .unwrap()
        .write_all_at(b"CHANGED IN THE MIDDLE", 3 << 20)
        .unwrap();
    let b2 = env.backup(&[&src], &[]);
    let s = &b2["summary"];
    assert_eq!(n(&s["files_changed"]), 1, "{s}");
    assert_eq!(n(&s["files_unchanged"]), 5, "{s}");
    assert_eq!(n(&s["bytes_read"]), BIG as u64, "only the changed file is read: {s}");
    let id2 = b2["snapshot"].as_str().unwrap().to_string();
    let big = src.join("big.bin");
    let (c1, c2) = (chunks_of(&env, &id1, big.to_str().unwrap()), chunks_of(&env, &id2, big.to_str().unwrap()));
    let old: BTreeSet<Id> = c1.iter().map(|c| c.id).collect();
    let fresh: Vec<&ChunkRef> = c2.iter().filter(|c| !old.contains(&c.id)).collect();
    assert!((1..=3).contains(&fresh.len()), "{} of {} chunks changed", fresh.len(), c2.len());
    let fresh_bytes: u64 = fresh.iter().map(|c| c.len as u64).sum();
    let added = n(&s["bytes_added"]);
    // New chunks plus the few tree blobs on the way to the root.
    assert!(
        added >= fresh_bytes && added < fresh_bytes + (64 << 10),
        "bytes_added {added}, new chunks {fresh_bytes}: {s}"
    );
    assert!(added < BIG as u64, "{s}");

    let t2 = env.path("t2");
    env.restore(&sref("latest", &src), &t2, &[]);
    assert_same_tree(&src, &t2, Cmp::default());
    let t1 = env.path("t1");
    env.restore(&sref(&id1[..8], &src), &t1, &[]);
    assert_eq!(fs::read(t1.join("big.bin")).unwrap(), original);
    assert_ne!(fs::read(t2.join("big.bin")).unwrap(), original);
}

#[test]
fn unchanged_files_are_not_read_again_unless_forced() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::create_dir(src.join("sub")).unwrap();
    let mut total = 0;
    for i in 0..10 {
        let body = random_bytes(100 + i, 10_000 * (i as usize + 1));
        total += body.len() as u64;
        fs::write(src.join(if i % 2 == 0 { "sub" } else { "." }).join(format!("f{i}")), body).unwrap();
    }
    let b1 = env.backup(&[&src], &[]);
    assert_eq!(n(&b1["summary"]["files_new"]), 10);
    assert_eq!(n(&b1["summary"]["bytes_read"]), total);

    let b2 = env.backup(&[&src], &[]);
    let s = &b2["summary"];
    assert_eq!((n(&s["files_new"]), n(&s["files_changed"]), n(&s["files_unchanged"])), (0, 0, 10), "{s}");
    assert_eq!(n(&s["bytes_read"]), 0, "{s}");
    // At most the trees above the backed-up directory (whose mtimes others may touch) are new.
    assert!(n(&s["bytes_added"]) < 4096, "{s}");
    assert_eq!(n(&s["dirs_changed"]), 0, "{s}");
    assert!(n(&s["dirs_unchanged"]) >= 2, "{s}");
    let snaps = env.json(&["snapshots"]);
    assert_eq!(snaps[1]["parent"], b1["snapshot"]);

    let b3 = env.backup(&[&src], &["--force"]);
    let s = &b3["summary"];
    // --force reads everything, but counts against the parent by content (issue 6 item 23).
    assert_eq!((n(&s["files_new"]), n(&s["files_changed"]), n(&s["files_unchanged"])), (0, 0, 10), "{s}");
    assert_eq!(n(&s["bytes_read"]), total, "{s}");
    assert!(n(&s["bytes_added"]) < 4096, "re-read content deduplicates: {s}");

    // Touching one file (same content, new mtime) makes exactly that one be read.
    set_mtime(&src.join("sub/f0"), odd_time(1_700_000_000, 5));
    let b4 = env.backup(&[&src], &[]);
    let s = &b4["summary"];
    assert_eq!((n(&s["files_changed"]), n(&s["files_unchanged"])), (1, 9), "{s}");
    assert_eq!(n(&s["bytes_read"]), 10_000, "{s}");

    // An explicit parent works too.
    let b5 = env.backup(&[&src], &["--parent", b1["snapshot"].as_str().unwrap()]);
    assert_eq!(n(&b5["summary"]["files_changed"]), 1);
    assert_eq!(n(&b5["summary"]["files_unchanged"]), 9);
}

#[test]
fn an_unreadable_file_gives_a_partial_backup_with_a_warning() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("fine.txt"), b"fine").unwrap();
    let mut paths = vec![src.clone()];
    if is_root() && !Path::new("/proc/self/mem").exists() {
        eprintln!("skipping: running as root and no /proc to make an unreadable file");
        return;
    }
    let bad = if is_root() {
        // Permission bits do not stop root; /proc/self/mem fails to read (EIO) for everyone.
        let p = Path::new("/proc/self/mem").to_path_buf();
        paths.push(p.clone());
        p
    } else {
        let p = src.join("secret.txt");
        fs::write(&p, b"secret").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).unwrap();
        p
    };
    let mut args = vec!["--json", "backup"];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    let out = env.run(&args).code(3);
    assert!(out.stderr.contains("warning") && out.stderr.contains(bad.to_str().unwrap()), "{}", out.stderr);
    let v = out.json();
    assert!(n(&v["summary"]["errors"]) >= 1);
    let warned: Vec<&str> = v["warnings"].as_array().unwrap().iter().map(|w| w["path"].as_str().unwrap()).collect();
    assert!(warned.contains(&bad.to_str().unwrap()), "{warned:?}");
    // The snapshot was written, with everything else in it.
    let snaps = env.json(&["snapshots"]);
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    assert_eq!(snaps[0]["id"], v["snapshot"]);
    assert_eq!(env.run(&["dump", &sref("latest", &src.join("fine.txt"))]).ok().stdout, b"fine");
    let missing = env.run(&["ls", &sref("latest", &bad)]);
    assert_ne!(missing.code, 0, "the unreadable file must not be in the snapshot");
}

// ---- excludes -------------------------------------------------------------------------------

#[test]
fn exclude_patterns_markers_and_files() {
    let env = Env::new();
    let src = env.mkdir("src");
    for d in ["sub", "cache", "logs", "build", "deep/er/cache2"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    for f in [
        "keep.txt",
        "junk.tmp",
        "sub/junk.tmp",
        "sub/keep2.txt",
        "cache/.nobackup",
        "cache/data.bin",
        "deep/er/cache2/.nobackup",
        "deep/er/kept.txt",
        "logs/app.log",
        "logs/keep.txt",
        "build/out.o",
        "sub/notes.log.txt",
    ] {
        fs::write(src.join(f), f).unwrap();
    }
    let ex_file = env.path("excludes.txt");
    fs::write(&ex_file, "# comment line\n\n*.log\n  build  \n").unwrap();
    let path_pattern = format!("{}/sub/keep2.txt", src.display());
    env.backup(
        &[&src],
        &[
            "--exclude",
            "*.tmp",
            "--exclude-if-present",
            ".nobackup",
            "--exclude-file",
            ex_file.to_str().unwrap(),
            "--exclude",
            &path_pattern,
        ],
    );
    let got = ls_paths(&env, &sref("latest", &src), &src);
    // A marked directory stays, holding only its marker (restic's --exclude-if-present).
    let want = set(&[
        "keep.txt",
        "sub",
        "sub/notes.log.txt",
        "logs",
        "logs/keep.txt",
        "deep",
        "deep/er",
        "deep/er/kept.txt",
        "cache",
        "cache/.nobackup",
        "deep/er/cache2",
        "deep/er/cache2/.nobackup",
    ]);
    assert_eq!(got, want);
    // A missing exclude file is an error, not an empty list.
    let out = env.run(&["backup", "--exclude-file", env.path("nope").to_str().unwrap(), src.to_str().unwrap()]);
    assert_eq!(out.code, 1);
}

// ---- selective restore and overwrite policies ----------------------------------------------

fn selective_fixture(env: &Env) -> std::path::PathBuf {
    let src = env.mkdir("src");
    for d in ["a/b", "c"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    for f in ["a/x.txt", "a/b/y.txt", "a/b/z.md", "c/w.txt", "top.txt"] {
        fs::write(src.join(f), format!("content of {f}")).unwrap();
    }
    set_mtime(&src.join("a/b"), odd_time(1_234_567_890, 42));
    env.backup(&[&src], &[]);
    src
}

#[test]
fn selective_restore_of_a_sub_path() {
    let env = Env::new();
    let src = selective_fixture(&env);
    let t1 = env.path("t1");
    env.restore(&sref("latest", &src.join("a/b")), &t1, &[]);
    assert_same_tree(&src.join("a/b"), &t1, Cmp::default());
    assert_eq!(file_list(&t1), vec!["y.txt", "z.md"]);

    // A single file goes into an existing directory, or is restored as the target path.
    let t2 = env.mkdir("t2");
    env.restore(&sref("latest", &src.join("top.txt")), &t2, &[]);
    assert_eq!(file_list(&t2), vec!["top.txt"]);
    assert_eq!(fs::read(t2.join("top.txt")).unwrap(), b"content of top.txt");
    let as_file = env.path("t2/renamed.txt");
    env.restore(&sref("latest", &src.join("top.txt")), &as_file, &[]);
    assert_eq!(fs::read(&as_file).unwrap(), b"content of top.txt");

    let out = env.run(&["restore", &sref("latest", &src.join("nope")), "--target", env.path("t3").to_str().unwrap()]);
    assert_eq!(out.code, 1);
    assert!(!env.path("t3").exists());
}

#[test]
fn restore_include_and_exclude() {
    let env = Env::new();
    let src = selective_fixture(&env);
    let r = sref("latest", &src);
    let run = |name: &str, args: &[&str]| {
        let t = env.path(name);
        env.restore(&r, &t, args);
        file_list(&t)
    };
    assert_eq!(run("i1", &["--include", "*.md"]), vec!["a/b/z.md"]);
    // Path patterns are relative to the restored path.
    let b_path = "/a/b".to_string();
    assert_eq!(run("i2", &["--include", &b_path]), vec!["a/b/y.txt", "a/b/z.md"]);
    assert_eq!(run("i3", &["--include", "x.txt", "--include", "w.txt"]), vec!["a/x.txt", "c/w.txt"]);
    assert_eq!(run("e1", &["--exclude", "*.txt"]), vec!["a/b/z.md"]);
    assert_eq!(run("e2", &["--exclude", "b"]), vec!["a/x.txt", "c/w.txt", "top.txt"]);
    assert_eq!(run("ie", &["--include", &b_path, "--exclude", "*.md"]), vec!["a/b/y.txt"]);
    // Directories with nothing selected are not created.
    assert!(!env.path("i1/c").exists());
    // What is restored is correct, with metadata.
    assert_same_tree(&src.join("a/b"), &env.path("i2/a/b"), Cmp::default());
}

#[test]
fn overwrite_policies() {
    let env = Env::new();
    let src = selective_fixture(&env);
    let r = sref("latest", &src);
    let t = env.path("t");
    let s = env.restore(&r, &t, &[]);
    assert_eq!((n(&s["files"]), n(&s["files_skipped"])), (5, 0));

    // A second run skips what is already correct.
    let s = env.restore(&r, &t, &[]);
    assert_eq!((n(&s["files"]), n(&s["files_skipped"])), (0, 5), "{s}");

    // Damage the restored copy: a changed file and a deleted one.
    fs::write(t.join("a/x.txt"), b"locally modified!").unwrap();
    fs::remove_file(t.join("c/w.txt")).unwrap();

    let s = env.restore(&r, &t, &["--overwrite", "never"]);
    assert_eq!((n(&s["files"]), n(&s["files_skipped"])), (1, 4), "{s}");
    assert_eq!(fs::read(t.join("a/x.txt")).unwrap(), b"locally modified!");
    assert_eq!(fs::read(t.join("c/w.txt")).unwrap(), b"content of c/w.txt");

    let s = env.restore(&r, &t, &[]);
    assert_eq!((n(&s["files"]), n(&s["files_skipped"])), (1, 4), "{s}");
    assert_same_tree(&src, &t, Cmp::default());

    let s = env.restore(&r, &t, &["--overwrite", "always"]);
    assert_eq!((n(&s["files"]), n(&s["files_skipped"])), (5, 0), "{s}");
    assert_same_tree(&src, &t, Cmp::default());

    // A file where a directory belongs is replaced; a directory where a file belongs is a
    // conflict (exit 3, left alone) unless --delete asks for it to go.
    fs::remove_file(t.join("top.txt")).unwrap();
    fs::create_dir(t.join("top.txt")).unwrap();
    fs::write(t.join("top.txt/stray"), b"stray").unwrap();
    fs::remove_dir_all(t.join("c")).unwrap();
    fs::write(t.join("c"), b"not a dir").unwrap();
    let out = env.run(&["--json", "restore", &r, "--target", t.to_str().unwrap()]).code(3);
    assert_eq!(n(&out.json()["stats"]["conflicts"]), 1, "{}", out.all());
    assert!(out.stderr.contains("top.txt") && out.stderr.contains("conflict"), "{}", out.stderr);
    assert_eq!(fs::read(t.join("top.txt/stray")).unwrap(), b"stray");
    assert_eq!(fs::read(t.join("c/w.txt")).unwrap(), b"content of c/w.txt");
    env.restore(&r, &t, &["--delete"]);
    assert_same_tree(&src, &t, Cmp::default());

    // Dry run writes nothing.
    let t2 = env.path("t2");
    let out = env.run(&["--json", "restore", &r, "--target", t2.to_str().unwrap(), "--dry-run"]).ok().json();
    assert_eq!(n(&out["stats"]["files"]), 5);
    assert!(!t2.exists());
}

// ---- hostile snapshots ----------------------------------------------------------------------

pub(crate) fn node(name: &[u8], kind: NodeKind) -> Node {
    let (uid, gid) = arca::sys::ids();
    Node {
        name: name.to_vec(),
        kind,
        mode: 0o755,
        uid,
        gid,
        user: String::new(),
        group: String::new(),
        mtime: 1_600_000_000_000_000_000,
        ctime: 1_600_000_000_000_000_000,
        inode: 0,
        device: 0,
        links: 1,
        xattrs: Vec::<Xattr>::new(),
    }
}

/// Seal a tree exactly as given, without any validation, and append it to the packer.
pub(crate) fn put_tree(repo: &arca::repo::Repository, packer: &Packer, tree: &Tree) -> Id {
    let bytes = postcard::to_allocvec(tree).unwrap();
    let id = repo.keys().blob_id(&bytes);
    let env = repo.seal_blob(BlobType::Tree, &id, &bytes).unwrap();
    packer.add_sealed(BlobType::Tree, id, bytes.len() as u32, &env).unwrap();
    id
}

pub(crate) fn snapshot_of(tree: Id) -> Snapshot {
    let (uid, gid) = arca::sys::ids();
    Snapshot {
        time: arca::sys::now_nanos(),
        tree,
        paths: vec![b"/hostile".to_vec()],
        hostname: "evil".into(),
        username: "mallory".into(),
        uid,
        gid,
        tags: vec![],
        parent: None,
        program: "handmade".into(),
        summary: Summary::default(),
        original: None,
    }
}

#[test]
fn hostile_tree_names_are_refused_and_nothing_is_written() {
    let env = Env::new();
    let repo = env.open();
    let index = repo.load_index().unwrap();
    let packer = Packer::new(&repo);
    let payload = b"escaped!";
    let data = repo.keys().blob_id(payload);
    assert!(packer.store(&index, BlobType::Data, &data, payload).unwrap());
    let file = |name: &[u8]| {
        node(
            name,
            NodeKind::File {
                size: payload.len() as u64,
                content: vec![ChunkRef { id: data, len: payload.len() as u32 }],
            },
        )
    };
    let dir = |name: &[u8], subtree: Id| node(name, NodeKind::Dir { subtree });

    let escaped = put_tree(&repo, &packer, &Tree { nodes: vec![file(b"escaped")] });
    let escaped2 = put_tree(&repo, &packer, &Tree { nodes: vec![file(b"escaped2")] });
    let dotdot_twice = put_tree(&repo, &packer, &Tree { nodes: vec![dir(b"..", escaped2)] });
    let nested = put_tree(&repo, &packer, &Tree { nodes: vec![dir(b"..", dotdot_twice)] });
    let empty = put_tree(&repo, &packer, &Tree { nodes: vec![] });
    let cases: Vec<(&str, Vec<Node>)> = vec![
        ("dir ..", vec![dir(b"..", escaped)]),
        ("dir .", vec![dir(b".", escaped)]),
        ("file ../escaped", vec![file(b"../escaped")]),
        ("file a/b", vec![dir(b"a", empty), file(b"a/b")]),
        ("absolute name", vec![file(b"/tmp/escaped-abs")]),
        ("empty name", vec![file(b"")]),
        ("NUL in name", vec![file(b"x\0y")]),
        ("nested .. below a good dir", vec![dir(b"d", nested)]),
        ("duplicate names", vec![file(b"same"), file(b"same")]),
    ];
    let snaps: Vec<(&str, Id)> =
        cases.into_iter().map(|(what, nodes)| (what, put_tree(&repo, &packer, &Tree { nodes }))).collect();
    packer.finish().unwrap();
    let snaps: Vec<(&str, Id, Id)> =
        snaps.into_iter().map(|(w, root)| (w, root, repo.save_snapshot(&snapshot_of(root)).unwrap())).collect();

    for (what, root, snap) in &snaps {
        let outer = env.mkdir(&format!("outer-{}", snap.short()));
        let target = outer.join("deep/target");
        let out = env.run(&["restore", &snap.to_hex(), "--target", target.to_str().unwrap()]);
        assert_eq!(out.code, 4, "{what}: {}", out.all());
        assert!(out.stderr.contains("integrity error"), "{what}: {}", out.stderr);
        let bad_tree = if *what == "nested .. below a good dir" { nested } else { *root };
        assert!(out.stderr.contains(&bad_tree.to_hex()), "{what}: error must name tree {bad_tree}: {}", out.stderr);
        // Nothing was written outside the target; inside it, at most the good directory `d`
        // (restore goes on past a damaged tree, as disaster recovery should).
        let written: Vec<_> = walk_all(&outer);
        let allowed = |p: &Path| p.ends_with("deep") || p.ends_with("target") || p == target.join("d");
        assert!(written.iter().all(|p| allowed(p)), "{what}: wrote {written:?}");
        if *what != "nested .. below a good dir" {
            assert!(!target.exists() || fs::read_dir(&target).unwrap().next().is_none(), "{what}");
        }
        assert!(!Path::new("/tmp/escaped-abs").exists());
        // Browsing refuses it too.
        assert_eq!(env.run(&["ls", &snap.to_hex()]).code, 4, "{what}");
    }
    assert!(!env.dir.path().join("escaped").exists() && !env.dir.path().join("escaped2").exists());
    // check reports the damaged trees.
    env.run(&["check"]).code(4);
}

fn walk_all(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        out.push(p.clone());
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk_all(&p));
        }
    }
    out
}

#[test]
fn a_symlink_restored_earlier_does_not_redirect_a_later_restore() {
    let env = Env::new();
    let src = env.mkdir("src");
    let outside = env.mkdir("outside");
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o711)).unwrap();
    std::os::unix::fs::symlink(&outside, src.join("evil")).unwrap();
    fs::write(src.join("ok.txt"), b"ok").unwrap();
    let first = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    fs::remove_file(src.join("evil")).unwrap();
    fs::create_dir(src.join("evil")).unwrap();
    fs::write(src.join("evil/f"), b"pwned").unwrap();
    fs::create_dir(src.join("evil/sub")).unwrap();
    fs::write(src.join("evil/sub/g"), b"pwned too").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", src.join("evil/link")).unwrap();
    mkfifo(&src.join("evil/fifo"));
    let second = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();

    for policy in [None, Some("if-changed"), Some("always"), Some("never")] {
        let t = env.path(&format!("t-{}", policy.unwrap_or("default")));
        env.restore(&sref(&first, &src), &t, &[]);
        assert!(fs::symlink_metadata(t.join("evil")).unwrap().file_type().is_symlink());
        let mut args = vec!["restore".to_string(), sref(&second, &src), "--target".into(), t.to_str().unwrap().into()];
        if let Some(p) = policy {
            args.extend(["--overwrite".into(), p.into()]);
        }
        let out = env.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let entries: Vec<_> = fs::read_dir(&outside).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(
            entries.is_empty(),
            "policy {policy:?}: restore wrote {entries:?} through a symlink into {}",
            outside.display()
        );
        let mode = fs::metadata(&outside).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o711, "policy {policy:?}: restore changed the mode of a directory outside the target");
        if policy != Some("never") {
            assert_eq!(out.code, 0, "{policy:?}: {}", out.all());
            assert!(fs::symlink_metadata(t.join("evil")).unwrap().is_dir());
            assert_eq!(fs::read(t.join("evil/f")).unwrap(), b"pwned");
            assert_eq!(fs::read(t.join("evil/sub/g")).unwrap(), b"pwned too");
        } else {
            // "never" keeps the symlink, so what belongs below it cannot be restored: an error.
            assert_ne!(out.code, 0, "never: {}", out.all());
            assert!(fs::symlink_metadata(t.join("evil")).unwrap().file_type().is_symlink());
        }
    }
}
