//! Issue #6, restore: the descriptor-relative restore against racing users, conflicts instead of
//! deletions, the content-comparing overwrite policy, what root may refuse to recreate, pattern
//! and target semantics, `--delete`, and hostile tree shapes.

use crate::backup_restore::{node, put_tree, snapshot_of};
use crate::common::*;
use arca::format::blob::BlobType;
use arca::format::tree::{ChunkRef, NodeKind, Tree};
use arca::repo::packer::Packer;
use arca::Id;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

const NOBODY: u32 = 65534;

/// Item 1: another user swaps the directories restore creates for symlinks to an outside
/// directory, as fast as a shell can, while root restores into that user's directory again and
/// again under every policy. Nothing outside may change: no file appears there, its mode stays.
#[test]
fn racing_symlink_swaps_never_redirect_a_root_restore() {
    if !is_root() {
        eprintln!("skipped: needs root to restore as root into another user's directory");
        return;
    }
    let env = Env::new();
    let src = env.mkdir("src");
    for d in 0..40 {
        let dir = src.join(format!("d{d}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..8 {
            fs::write(dir.join(format!("f{f}")), format!("{d}/{f}")).unwrap();
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    }
    env.backup(&[&src], &[]);
    let outside = env.mkdir("outside");
    fs::write(outside.join("precious"), b"keep").unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o755)).unwrap();
    let parent = env.mkdir("home");
    fs::set_permissions(&parent, fs::Permissions::from_mode(0o755)).unwrap();
    // The temporary directory must be traversable by the other user.
    let mut p = parent.parent();
    while let Some(d) = p {
        let m = fs::metadata(d).unwrap().permissions().mode();
        fs::set_permissions(d, fs::Permissions::from_mode(m | 0o711)).unwrap();
        if d == Path::new("/") || d == env.dir.path() {
            break;
        }
        p = d.parent();
    }
    let target = parent.join("alice");
    fs::create_dir(&target).unwrap();
    std::os::unix::fs::chown(&target, Some(NOBODY), Some(NOBODY)).unwrap();
    let script = format!(
        "cd {t} || exit 1; end=$(( $(date +%s) + 30 )); while [ $(date +%s) -lt $end ]; do for i in $(seq 0 39); do \
         mv d$i x$i 2>/dev/null && ln -s {o} d$i 2>/dev/null; rm -rf x$i 2>/dev/null; done; done",
        t = target.display(),
        o = outside.display()
    );
    let mut racer = {
        use std::os::unix::process::CommandExt;
        Command::new("sh")
            .arg("-c")
            .arg(&script)
            .uid(NOBODY)
            .gid(NOBODY)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let r = sref("latest", &src);
    for round in 0..12 {
        let policy = ["if-changed", "always", "never", "if-size-or-mtime-differ"][round % 4];
        let out = env.run(&["restore", &r, "--target", target.to_str().unwrap(), "--overwrite", policy]);
        eprintln!("round {round}: exit {}, {} errors", out.code, out.stderr.lines().count());
        let mut names: Vec<_> = fs::read_dir(&outside).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, vec![std::ffi::OsString::from("precious")], "round {round} ({policy}) wrote outside");
        let m = fs::metadata(&outside).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o755, "round {round} ({policy}) chmodded outside");
        assert_eq!(m.uid(), 0, "round {round} ({policy}) chowned outside");
    }
    let _ = racer.kill();
    let _ = racer.wait();
}

/// Item 3: a planted file with the snapshot's size and mtime but other content, another owner and
/// mode 0666 is rewritten by the default policy, and a restored file corrupted without changing
/// size or mtime is repaired; the metadata-only policy keeps such content but still corrects mode;
/// the dry run applies the policy.
#[test]
fn default_overwrite_compares_content_and_corrects_metadata() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("conf"), b"the real configuration").unwrap();
    fs::set_permissions(src.join("conf"), fs::Permissions::from_mode(0o640)).unwrap();
    set_mtime(&src.join("conf"), odd_time(1_500_000_000, 123_456_789));
    env.backup(&[&src], &[]);
    let r = sref("latest", &src);
    let t = env.path("t");
    env.restore(&r, &t, &[]);

    let plant = |content: &[u8], other_owner: bool| {
        let p = t.join("conf");
        fs::remove_file(&p).unwrap();
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).unwrap();
        if other_owner && is_root() {
            std::os::unix::fs::chown(&p, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        set_mtime(&p, odd_time(1_500_000_000, 123_456_789));
    };
    plant(b"the fake configuration", true);
    let dry = env.restore(&r, &t, &["--dry-run"]);
    assert_eq!((n(&dry["files"]), n(&dry["files_skipped"])), (1, 0), "{dry}");
    assert_eq!(fs::read(t.join("conf")).unwrap(), b"the fake configuration", "dry run wrote");

    // The metadata-only policy trusts size+mtime: content of our own file stays, its mode is
    // corrected (another user's file is never adopted: see the test below).
    plant(b"the fake configuration", false);
    let s = env.restore(&r, &t, &["--overwrite", "if-size-or-mtime-differ"]);
    assert_eq!((n(&s["files"]), n(&s["files_skipped"])), (0, 1), "{s}");
    assert_eq!(fs::read(t.join("conf")).unwrap(), b"the fake configuration");
    assert_eq!(fs::metadata(t.join("conf")).unwrap().permissions().mode() & 0o7777, 0o640);

    plant(b"the fake configuration", true);
    let s = env.restore(&r, &t, &["--verify"]);
    assert_eq!((n(&s["files"]), n(&s["files_skipped"])), (1, 0), "{s}");
    assert_same_tree(&src, &t, Cmp::default());

    // Bit rot with size and mtime unchanged is repaired, and --verify is then clean.
    flip_byte(&t.join("conf"), 3);
    set_mtime(&t.join("conf"), odd_time(1_500_000_000, 123_456_789));
    let s = env.restore(&r, &t, &["--verify"]);
    assert_eq!(n(&s["files"]), 1, "{s}");
    assert_eq!(fs::read(t.join("conf")).unwrap(), b"the real configuration");

    // Correct content with a wrong mode: kept, mode corrected.
    fs::set_permissions(t.join("conf"), fs::Permissions::from_mode(0o600)).unwrap();
    let s = env.restore(&r, &t, &[]);
    assert_eq!((n(&s["files"]), n(&s["files_skipped"])), (0, 1), "{s}");
    assert_same_tree(&src, &t, Cmp::default());
}

/// Item 2 and item 22: a directory in the way is a conflict (exit 3) and is kept; `--delete`
/// replaces it and removes what the snapshot does not have (a ransom note), nothing else.
#[test]
fn directory_in_the_way_is_a_conflict_and_delete_removes_extras() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::create_dir(src.join("etc")).unwrap();
    fs::write(src.join("etc/app.toml"), b"a = 1").unwrap();
    fs::write(src.join("data"), b"data").unwrap();
    env.backup(&[&src], &[]);
    let r = sref("latest", &src);
    let t = env.path("t");
    env.restore(&r, &t, &[]);
    fs::remove_file(t.join("data")).unwrap();
    fs::create_dir_all(t.join("data/user")).unwrap();
    fs::write(t.join("data/user/thesis.tex"), b"years of work").unwrap();
    let out = env.run(&["restore", &r, "--target", t.to_str().unwrap(), "--overwrite", "always"]).code(3);
    assert!(out.stderr.contains("conflict"), "{}", out.all());
    assert_eq!(fs::read(t.join("data/user/thesis.tex")).unwrap(), b"years of work");

    fs::write(t.join("README-RANSOM.txt"), b"pay up").unwrap();
    fs::write(t.join("etc/extra.conf"), b"x").unwrap();
    let dry = env.restore(&r, &t, &["--delete", "--dry-run"]);
    assert_eq!(n(&dry["deleted"]), 2, "{dry}");
    assert!(t.join("README-RANSOM.txt").exists());
    let s = env.restore(&r, &t, &["--delete", "--exclude", "extra.conf"]);
    assert_eq!(n(&s["deleted"]), 1, "{s}");
    assert!(!t.join("README-RANSOM.txt").exists());
    assert!(t.join("etc/extra.conf").exists(), "excluded names are not deleted");
    fs::remove_file(t.join("etc/extra.conf")).unwrap();
    env.restore(&r, &t, &["--delete"]);
    assert_same_tree(&src, &t, Cmp::default());
    // --delete and --include do not mix.
    env.run(&["restore", &r, "--target", t.to_str().unwrap(), "--delete", "--include", "x"]).code(2);
}

/// Item 21: patterns are relative to the restored path; one that matches nothing is an error.
#[test]
fn include_patterns_are_relative_and_must_match() {
    let env = Env::new();
    let src = env.mkdir("srv/app");
    fs::create_dir(src.join("config")).unwrap();
    fs::write(src.join("config/app.toml"), b"x").unwrap();
    fs::write(src.join("log.txt"), b"y").unwrap();
    env.backup(&[&src], &[]);
    let r = sref("latest", &src);
    let t = env.path("t");
    env.restore(&r, &t, &["-i", "/config"]);
    assert_eq!(file_list(&t), vec!["config/app.toml"]);
    let t2 = env.path("t2");
    // A mistyped pattern is a usage error (exit 2), never a failed restore.
    let out = env.run(&["restore", &r, "--target", t2.to_str().unwrap(), "-i", "/srv/app/config"]).code(2);
    assert!(out.stderr.contains("matched nothing"), "{}", out.stderr);
}

/// Item 9: root can refuse devices, ownership, set-ID bits and extended-attribute namespaces.
#[test]
fn restore_can_refuse_devices_owners_setuid_and_xattrs() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("tool"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(src.join("tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    let xattrs = xattrs_supported(&src);
    if xattrs {
        xattr::set(src.join("tool"), "user.keep", b"1").unwrap();
        xattr::set(src.join("tool"), "user.drop", b"2").unwrap();
    }
    let root = is_root();
    if root {
        let c = std::ffi::CString::new(src.join("null").to_str().unwrap()).unwrap();
        // SAFETY: valid path; makes a character device like /dev/null.
        assert_eq!(unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) }, 0);
        std::os::unix::fs::chown(src.join("tool"), Some(NOBODY), Some(NOBODY)).unwrap();
        fs::set_permissions(src.join("tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    }
    env.backup(&[&src], &[]);
    let r = sref("latest", &src);
    let t = env.path("t");
    let s = env.restore(&r, &t, &["--no-devices", "--no-owner", "--no-setuid", "--exclude-xattr", "user.drop"]);
    let m = fs::metadata(t.join("tool")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o755);
    assert_eq!(m.uid(), arca::sys::ids().0, "ownership not changed");
    if xattrs {
        assert_eq!(xattr::get(t.join("tool"), "user.keep").unwrap(), Some(b"1".to_vec()));
        assert_eq!(xattr::get(t.join("tool"), "user.drop").unwrap(), None);
    }
    if root {
        assert!(!t.join("null").exists());
        assert_eq!(n(&s["others_skipped"]), 1, "{s}");
        // Without the options, all of it comes back.
        let t2 = env.path("t2");
        env.restore(&r, &t2, &[]);
        let m = fs::metadata(t2.join("tool")).unwrap();
        assert_eq!((m.permissions().mode() & 0o7777, m.uid()), (0o4755, NOBODY));
        assert!(fs::symlink_metadata(t2.join("null")).unwrap().file_type().is_char_device_like());
    }
}

trait CharDev {
    fn is_char_device_like(&self) -> bool;
}
impl CharDev for fs::FileType {
    fn is_char_device_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_char_device()
    }
}

/// Item 17 and depth: 3,000 nested directories restore through descriptors (no path grows past
/// PATH_MAX), and a directory blocked by a file (`--overwrite never`) skips its whole subtree.
#[test]
fn deep_chains_restore_and_a_blocked_directory_skips_its_subtree() {
    let env = Env::new();
    let (repo, _) = (env.open(), ());
    let packer = Packer::new(&repo);
    let payload = b"deep";
    let data = repo.keys().blob_id(payload);
    let index = repo.load_index().unwrap();
    packer.store(&index, BlobType::Data, &data, payload).unwrap();
    let file = node(b"f", NodeKind::File { size: 4, content: vec![ChunkRef { id: data, len: 4 }] });
    let mut sub: Id = put_tree(&repo, &packer, &Tree { nodes: vec![file] });
    for _ in 0..3000 {
        sub = put_tree(&repo, &packer, &Tree { nodes: vec![node(b"dddddddddd", NodeKind::Dir { subtree: sub })] });
    }
    let root = put_tree(&repo, &packer, &Tree { nodes: vec![node(b"top", NodeKind::Dir { subtree: sub })] });
    packer.finish().unwrap();
    let snap = repo.save_snapshot(&snapshot_of(root)).unwrap().to_hex();
    let t = env.path("t");
    let s = env.restore(&snap, &t, &[]);
    assert_eq!((n(&s["dirs"]), n(&s["files"])), (3001, 1), "{s}");

    let t2 = env.mkdir("t2");
    fs::write(t2.join("top"), b"in the way").unwrap();
    let out = env.run(&["--json", "restore", &snap, "--target", t2.to_str().unwrap(), "--overwrite", "never"]).code(3);
    let v = out.json();
    assert_eq!((n(&v["stats"]["dirs"]), n(&v["stats"]["files"]), n(&v["stats"]["conflicts"])), (0, 0, 1), "{v}");
}

/// Item 15: a tree bomb (2^40 paths from 41 tree blobs) and a 10,000-deep chain are refused with
/// an integrity error before anything is written, also by the dry run.
#[test]
fn tree_bombs_and_overdeep_chains_are_refused_before_writing() {
    let env = Env::new();
    let repo = env.open();
    let packer = Packer::new(&repo);
    let empty = put_tree(&repo, &packer, &Tree { nodes: vec![] });
    let mut bomb = empty;
    for _ in 0..40 {
        let d = |name: &[u8]| node(name, NodeKind::Dir { subtree: bomb });
        bomb = put_tree(&repo, &packer, &Tree { nodes: vec![d(b"a"), d(b"b")] });
    }
    let mut deep = empty;
    for _ in 0..10_000 {
        deep = put_tree(&repo, &packer, &Tree { nodes: vec![node(b"d", NodeKind::Dir { subtree: deep })] });
    }
    packer.finish().unwrap();
    for (what, root) in [("bomb", bomb), ("deep", deep)] {
        let snap = repo.save_snapshot(&snapshot_of(root)).unwrap().to_hex();
        for dry in [false, true] {
            let t = env.path(&format!("t-{what}-{dry}"));
            let mut args = vec!["restore", &snap, "--target", t.to_str().unwrap()];
            if dry {
                args.push("--dry-run");
            }
            let out = env.run(&args).code(4);
            assert!(out.stderr.contains(&root.to_hex()), "{what}: {}", out.stderr);
            assert!(!t.exists() || fs::read_dir(&t).unwrap().next().is_none(), "{what}: wrote into the target");
        }
    }
}

/// Hard links are made through descriptors, also when the group spans directories.
#[test]
fn hard_links_across_directories_restore_as_links() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::create_dir(src.join("a")).unwrap();
    fs::create_dir(src.join("b")).unwrap();
    fs::write(src.join("a/one"), b"shared bytes").unwrap();
    fs::hard_link(src.join("a/one"), src.join("b/two")).unwrap();
    env.backup(&[&src], &[]);
    let t = env.path("t");
    let s = env.restore(&sref("latest", &src), &t, &["--verify"]);
    assert_eq!((n(&s["files"]), n(&s["others"])), (1, 1), "{s}");
    assert_same_tree(&src, &t, Cmp::default());
}

/// Item 22: `arca verify` compares a directory with a snapshot by content and metadata, and
/// reports missing, extra, modified and metadata-only entries (exit 5), or exits 0 when identical.
#[test]
fn verify_reports_every_kind_of_difference() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::create_dir(src.join("d")).unwrap();
    fs::write(src.join("d/a"), b"alpha").unwrap();
    fs::write(src.join("b"), b"bravo").unwrap();
    fs::write(src.join("c"), b"charlie").unwrap();
    std::os::unix::fs::symlink("b", src.join("link")).unwrap();
    set_mtime(&src.join("c"), odd_time(1_400_000_000, 5));
    env.backup(&[&src], &[]);
    let r = sref("latest", &src);
    let t = env.path("t");
    env.restore(&r, &t, &[]);
    env.run(&["verify", &r, t.to_str().unwrap()]).code(0);

    flip_byte(&t.join("d/a"), 0); // same size, same mtime after reset below
    set_mtime(&t.join("d/a"), fs::metadata(src.join("d/a")).unwrap().modified().unwrap());
    fs::remove_file(t.join("b")).unwrap();
    fs::write(t.join("ransom.txt"), b"pay").unwrap();
    fs::set_permissions(t.join("c"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_file(t.join("link")).unwrap();
    std::os::unix::fs::symlink("elsewhere", t.join("link")).unwrap();
    let out = env.run(&["verify", &r, t.to_str().unwrap()]).code(5);
    let text = out.text();
    let lines: Vec<&str> = text.lines().collect();
    let want = |m: &str, rel: &str| format!("{m} {}", t.join(rel).display());
    for w in [want("M", "d/a"), want("+", "b"), want("-", "ransom.txt"), want("U", "c"), want("M", "link")] {
        assert!(lines.contains(&w.as_str()), "missing {w:?} in:\n{text}");
    }
    // The target directory's own mtime changed too (entries were added and removed).
    assert!(lines.contains(&format!("U {}", t.display()).as_str()), "{text}");
    assert_eq!(lines.len(), 7, "{text}"); // six differences and the summary
                                          // Nothing was changed by verifying.
    assert!(t.join("ransom.txt").exists() && !t.join("b").exists());
    let v = env.run(&["--json", "verify", &r, t.to_str().unwrap()]).code(5).json();
    assert_eq!(v["identical"], Value::Bool(false));
    assert_eq!(v["changes"].as_array().unwrap().len(), 6);
}

/// `--delete` removes nothing below a directory whose tree cannot be read: what belongs there is
/// unknown. The damage is reported (exit 4) and the rest is restored.
#[test]
fn delete_spares_directories_whose_tree_is_damaged() {
    let env = Env::new();
    let repo = env.open();
    let packer = Packer::new(&repo);
    let index = repo.load_index().unwrap();
    let payload = b"fine";
    let data = repo.keys().blob_id(payload);
    packer.store(&index, BlobType::Data, &data, payload).unwrap();
    let missing = repo.keys().blob_id(b"a tree that was never stored");
    let file = node(b"ok", NodeKind::File { size: 4, content: vec![ChunkRef { id: data, len: 4 }] });
    let root = put_tree(&repo, &packer, &Tree { nodes: vec![node(b"lost", NodeKind::Dir { subtree: missing }), file] });
    packer.finish().unwrap();
    let snap = repo.save_snapshot(&snapshot_of(root)).unwrap().to_hex();
    let t = env.mkdir("t");
    fs::create_dir(t.join("lost")).unwrap();
    fs::write(t.join("lost/only-copy"), b"precious").unwrap();
    let out = env.run(&["restore", &snap, "--target", t.to_str().unwrap(), "--delete"]).code(4);
    assert!(out.stderr.contains(&missing.to_hex()), "{}", out.stderr);
    assert_eq!(fs::read(t.join("lost/only-copy")).unwrap(), b"precious");
    assert_eq!(fs::read(t.join("ok")).unwrap(), b"fine");
}

// ---- review findings ---------------------------------------------------------------------------

/// Another user's file with exactly the snapshot's bytes is not adopted (they may hold it mapped
/// writable): it is replaced by a new inode with the snapshot's owner and mode.
#[test]
fn another_users_file_with_the_right_bytes_is_replaced_not_adopted() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("tool"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(src.join("tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    env.backup(&[&src], &[]);
    let t = env.mkdir("t");
    fs::write(t.join("tool"), b"#!/bin/sh\necho hi\n").unwrap();
    std::os::unix::fs::chown(t.join("tool"), Some(NOBODY), Some(NOBODY)).unwrap();
    // The other user keeps a writable descriptor on their file, as a shared mapping would.
    let held = fs::OpenOptions::new().write(true).open(t.join("tool")).unwrap();
    let s = env.restore(&sref("latest", &src), &t, &[]);
    assert_eq!(n(&s["files"]), 1, "{s}");
    let m = fs::metadata(t.join("tool")).unwrap();
    assert_ne!(m.ino(), held.metadata().unwrap().ino(), "the planted inode was kept");
    assert_eq!((m.uid(), m.permissions().mode() & 0o7777), (0, 0o4755));
    std::os::unix::fs::FileExt::write_all_at(
        &held,
        b"#!/bin/sh
echo PWN",
        0,
    )
    .unwrap();
    assert_eq!(fs::read(t.join("tool")).unwrap(), b"#!/bin/sh\necho hi\n");
}

/// A default ACL another user put on a directory restore writes into is not inherited by what
/// restore creates: the final chmod must not open root's files to them.
#[test]
fn inherited_acls_do_not_survive_the_final_mode() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::create_dir(src.join("sub")).unwrap();
    fs::write(src.join("sub/secret"), b"s").unwrap();
    fs::set_permissions(src.join("sub/secret"), fs::Permissions::from_mode(0o660)).unwrap();
    env.backup(&[&src], &[]);
    let t = env.mkdir("t");
    fs::create_dir(t.join("sub")).unwrap();
    // A default ACL granting uid 65534 rwx (POSIX ACL xattr format, version 2).
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in
        [(1u16, 7u16, u32::MAX), (2, 7, NOBODY), (4, 5, u32::MAX), (0x10, 7, u32::MAX), (0x20, 5, u32::MAX)]
    {
        acl.extend_from_slice(&tag.to_le_bytes());
        acl.extend_from_slice(&perm.to_le_bytes());
        acl.extend_from_slice(&id.to_le_bytes());
    }
    if xattr::set(t.join("sub"), "system.posix_acl_default", &acl).is_err() {
        eprintln!("skipped: no POSIX ACLs here");
        return;
    }
    env.restore(&sref("latest", &src), &t, &[]);
    for p in ["sub", "sub/secret"] {
        let got = xattr::get(t.join(p), "system.posix_acl_access").unwrap();
        assert_eq!(got, None, "{p} kept an ACL");
    }
    assert_eq!(xattr::get(t.join("sub"), "system.posix_acl_default").unwrap(), None);
}

/// A target path that is a symlink placed by another user is not followed.
#[test]
fn a_target_symlinked_by_another_user_is_not_followed() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("f"), b"x").unwrap();
    env.backup(&[&src], &[]);
    let home = env.mkdir("home-alice");
    std::os::unix::fs::chown(&home, Some(NOBODY), Some(NOBODY)).unwrap();
    let elsewhere = env.mkdir("etc");
    std::os::unix::fs::symlink(&elsewhere, home.join("restored")).unwrap();
    let out = env.run(&["restore", &sref("latest", &src), "--target", home.join("restored").to_str().unwrap()]);
    assert_ne!(out.code, 0, "{}", out.all());
    assert!(fs::read_dir(&elsewhere).unwrap().next().is_none(), "wrote through the symlink");
}

/// `verify` of a missing directory is an error, never "matches"; `--verify` with the metadata
/// policy rewrites a file whose bytes differ under the same size and mtime (exit 0, not 4); a
/// relative path pattern is anchored at the restored path.
#[test]
fn verify_missing_dir_fast_policy_verify_and_relative_path_patterns() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::create_dir(src.join("config")).unwrap();
    fs::write(src.join("config/app.toml"), b"good").unwrap();
    env.backup(&[&src], &[]);
    let r = sref("latest", &src);
    assert_ne!(env.run(&["verify", &r, env.path("nowhere").to_str().unwrap()]).code, 0);

    let t = env.path("t");
    env.restore(&r, &t, &[]);
    let f = t.join("config/app.toml");
    let mtime = fs::metadata(&f).unwrap().modified().unwrap();
    fs::write(&f, b"evil").unwrap();
    set_mtime(&f, mtime);
    let s = env.restore(&r, &t, &["--overwrite", "if-size-or-mtime-differ", "--verify"]);
    assert_eq!(n(&s["files"]), 1, "{s}");
    assert_eq!(fs::read(&f).unwrap(), b"good");

    let t2 = env.path("t2");
    env.restore(&r, &t2, &["-i", "config/app.toml"]);
    assert_eq!(file_list(&t2), vec!["config/app.toml"]);
    // A single file restored under another name still matches patterns by its snapshot name.
    let renamed = env.path("t2/copy.toml");
    env.restore(&sref("latest", &src.join("config/app.toml")), &renamed, &["-i", "app.toml"]);
    assert_eq!(fs::read(&renamed).unwrap(), b"good");
}

/// format-spec/12-tree.md §12.3: File nodes with `links > 1` and equal (device, inode) are linked
/// only when their size and content list equal those of the group's first node in restore order;
/// a member with other content (a hostile or buggy snapshot) is restored as a file of its own
/// with its own content, never as a link that would replace it. Members that agree are linked.
#[test]
fn hard_link_members_with_another_content_list_are_restored_apart() {
    let env = Env::new();
    let repo = env.open();
    let index = repo.load_index().unwrap();
    let packer = Packer::new(&repo);
    let chunk = |payload: &[u8]| {
        let id = repo.keys().blob_id(payload);
        packer.store(&index, BlobType::Data, &id, payload).unwrap();
        NodeKind::File { size: payload.len() as u64, content: vec![ChunkRef { id, len: payload.len() as u32 }] }
    };
    let member = |name: &[u8], kind: NodeKind| {
        let mut n = node(name, kind);
        (n.links, n.device, n.inode) = (3, 2049, 777);
        n
    };
    // Restore order is name order: `a` is the group's first node.
    let tree = Tree {
        nodes: vec![
            member(b"a", chunk(b"first content")),
            member(b"b", chunk(b"other content")),
            member(b"c", chunk(b"first content")),
        ],
    };
    let root = put_tree(&repo, &packer, &tree);
    packer.finish().unwrap();
    let snap = repo.save_snapshot(&snapshot_of(root)).unwrap();
    let t = env.path("t");
    env.run(&["restore", &snap.to_hex(), "--target", t.to_str().unwrap(), "--verify"]).ok();
    assert_eq!(fs::read(t.join("a")).unwrap(), b"first content");
    assert_eq!(fs::read(t.join("b")).unwrap(), b"other content");
    assert_eq!(fs::read(t.join("c")).unwrap(), b"first content");
    let ino = |n: &str| fs::metadata(t.join(n)).unwrap().ino();
    assert_eq!(ino("a"), ino("c"), "members with the first node's content are linked");
    assert_ne!(ino("a"), ino("b"), "a member with other content was linked");
}
