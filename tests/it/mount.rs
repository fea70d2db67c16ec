//! `arca mount` through a real FUSE mount: `cp -a` out of it equals a restore, `find` lists every
//! entry, the layout (ids/, hosts/, tags/, latest), read-only, Ctrl-C and outside unmounts, and
//! damaged data failing one read with EIO while the mount goes on.
//!
//! Skipped (with the reason printed) only where FUSE cannot work: no /dev/fuse or no
//! `fusermount3` (`.ci/run` installs Debian's fuse3).

use crate::common::*;
use crate::hardening_browse::{hostile_snapshot, symlink_leaf};
use arca::format::blob::BlobType;
use arca::format::tree::{Node, NodeKind, Tree};
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why FUSE mounts cannot be tested here, if they cannot.
fn fuse_missing() -> Option<&'static str> {
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse does not exist");
    }
    let found = Command::new("sh").args(["-c", "command -v fusermount3"]).stdout(Stdio::null()).status();
    if !found.is_ok_and(|s| s.success()) {
        return Some("fusermount3 is not installed (Debian package fuse3)");
    }
    None
}

macro_rules! require_fuse {
    () => {
        if let Some(why) = fuse_missing() {
            eprintln!("skipping: {why}");
            return;
        }
    };
}

/// Whether `path` is a mount point now (per /proc/self/mountinfo).
fn is_mounted(path: &Path) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = path.as_os_str().as_bytes();
    info.lines().any(|l| l.split(' ').nth(4).is_some_and(|mp| mp.as_bytes() == want))
}

/// A running `arca mount`; unmounted (lazily) and killed on drop, whatever the test did.
struct Mount {
    child: Option<Child>,
    point: PathBuf,
    log: PathBuf,
}

impl Mount {
    /// Mount `env`'s repository at `env/<name>` with `extra` arguments; waits until mounted.
    fn start(env: &Env, name: &str, extra: &[&str]) -> Mount {
        let point = fs::canonicalize(env.mkdir(name)).unwrap();
        let log = env.path(&format!("{name}.log"));
        let mut cmd = arca_std_cmd();
        cmd.env("ARCA_REPOSITORY", &env.repo).env("ARCA_PASSWORD", PASSWORD).arg("mount").arg(&point).args(extra);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(fs::File::create(&log).unwrap());
        let mut m = Mount { child: Some(cmd.spawn().expect("start arca mount")), point, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !is_mounted(&m.point) {
            if let Some(status) = m.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("arca mount exited with {status} before mounting:\n{}", m.stderr());
            }
            assert!(Instant::now() < deadline, "not mounted after 20 s:\n{}", m.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> libc::pid_t {
        self.child.as_ref().unwrap().id() as libc::pid_t
    }

    /// Wait up to `secs` for `arca mount` to exit; its exit code.
    fn wait_exit(&mut self, secs: u64) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                let code = status.code().unwrap_or_else(|| panic!("killed by a signal: {status}\n{}", self.stderr()));
                assert!(!self.stderr().contains("panicked"), "arca panicked:\n{}", self.stderr());
                return code;
            }
            assert!(Instant::now() < deadline, "arca mount still running after {secs} s:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if is_mounted(&self.point) {
            let _ = Command::new("fusermount3").arg("-u").arg("-z").arg(&self.point).stderr(Stdio::null()).status();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Run a command; panic unless it succeeds.
fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

/// The tree of test 1: every kind of entry arca records, odd modes and old times.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    write_random_file(&root.join("a/big.bin"), 11, 21 << 20);
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join("a/b/c/deep.txt"), b"deep\n").unwrap();
    fs::write(root.join("a/linked"), b"one inode, two names\n").unwrap();
    fs::hard_link(root.join("a/linked"), root.join("a/b/also-linked")).unwrap();
    std::os::unix::fs::symlink("big.bin", root.join("a/to-big")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/absolute", root.join("dangling")).unwrap();
    mkfifo(&root.join("fifo"));
    fs::write(root.join("setuid"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("setuid"), fs::Permissions::from_mode(0o4750)).unwrap();
    fs::write(root.join("private"), b"secret\n").unwrap();
    fs::set_permissions(root.join("private"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(root.join(OsStr::from_bytes(b"caf\xe9-latin1")), b"not utf-8\n").unwrap();
    if xattrs_supported(root) {
        xattr::set(root.join("private"), "user.note", b"kept").unwrap();
    }
    for (i, rel) in ["a/big.bin", "empty", "a/b/c/deep.txt", "a/linked", "setuid", "private", "a/b/c", "a/b", "a"]
        .iter()
        .enumerate()
    {
        set_mtime(&root.join(rel), odd_time(1_000_000_000 + i as u64 * 86_400, 123_456_789 + i as u32));
    }
}

/// Relative paths of everything below `root` (not `root` itself).
fn paths_below(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            out.insert(p.strip_prefix(root).unwrap().to_path_buf());
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

#[test]
fn cp_a_out_of_the_mount_equals_a_restore_and_find_lists_everything() {
    require_fuse!();
    let env = Env::new();
    let src = env.path("src");
    make_tree(&src);
    env.backup(&[&src], &[]);
    let restored = env.mkdir("restored");
    env.restore("latest", &restored, &[]);

    let m = Mount::start(&env, "mnt", &[]);
    let snap_root = m.point.join("snapshots/latest");
    let out = env.mkdir("out");
    run_ok(Command::new("cp").arg("-a").arg(snap_root.join(".")).arg(out.join(".")));
    // The snapshot holds the source at its absolute path; both copies have it there.
    assert_same_tree(&under(&restored, &src), &under(&out, &src), Cmp { root_meta: true, mtime: true });
    assert_same_tree(&restored, &out, Cmp { root_meta: false, mtime: true });
    // Hard links: one inode in the mount and in the copy.
    let (a, b) = (under(&snap_root, &src.join("a/linked")), under(&snap_root, &src.join("a/b/also-linked")));
    let (ma, mb) = (fs::metadata(&a).unwrap(), fs::metadata(&b).unwrap());
    assert_eq!((ma.ino(), ma.nlink()), (mb.ino(), 2));
    let (oa, ob) = (under(&out, &src.join("a/linked")), under(&out, &src.join("a/b/also-linked")));
    assert_eq!(fs::metadata(oa).unwrap().ino(), fs::metadata(ob).unwrap().ino());
    // Recorded modes and the FIFO, seen through the mount itself.
    let setuid = fs::symlink_metadata(under(&snap_root, &src.join("setuid"))).unwrap();
    assert_eq!(setuid.mode() & 0o7777, 0o4750);
    let fifo = fs::symlink_metadata(under(&snap_root, &src.join("fifo"))).unwrap();
    assert_eq!(fifo.mode() & libc::S_IFMT, libc::S_IFIFO);
    assert_eq!(fs::read_link(under(&snap_root, &src.join("dangling"))).unwrap(), Path::new("/nonexistent/absolute"));
    if xattrs_supported(&env.dir.path().join("src")) {
        let private = under(&snap_root, &src.join("private"));
        assert_eq!(xattr::get(&private, "user.note").unwrap().as_deref(), Some(&b"kept"[..]));
        assert_eq!(xattr::get(&private, "user.absent").unwrap(), None);
    }

    // `find` over the whole mount: every source entry under the snapshot's directory.
    let found = run_ok(Command::new("find").arg(&m.point));
    let snap_dir = fs::read_link(&snap_root).unwrap();
    let base = under(&m.point.join("snapshots").join(snap_dir), &src);
    let listed: BTreeSet<PathBuf> = found
        .stdout
        .split(|&b| b == b'\n')
        .map(|l| Path::new(OsStr::from_bytes(l)))
        .filter_map(|p| p.strip_prefix(&base).ok())
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .collect();
    assert_eq!(listed, paths_below(&src));
    assert!(listed.contains(Path::new(OsStr::from_bytes(b"caf\xe9-latin1"))));
    // The same snapshot under ids/ and hosts/ too.
    let text = String::from_utf8_lossy(&found.stdout);
    assert!(text
        .lines()
        .any(|l| l.starts_with(&format!("{}/ids/", m.point.display())) && l.ends_with("/a/b/c/deep.txt")));
    assert!(m.stderr().contains("mounted 1 snapshot at"), "{}", m.stderr());
}

#[test]
fn layout_ids_hosts_tags_and_latest() {
    require_fuse!();
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("f"), b"first\n").unwrap();
    env.backup(&[&src], &["--host", "alpha", "--tag", "one", "--tag", "both"]);
    fs::write(src.join("f"), b"second\n").unwrap();
    env.backup(&[&src], &["--host", "beta", "--tag", "two", "--tag", "both"]);
    let snaps = env.json(&["snapshots"]);
    let ids: Vec<String> = snaps.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 2);

    let m = Mount::start(&env, "mnt", &[]);
    let p = &m.point;
    let names = |rel: &str| -> BTreeSet<String> {
        fs::read_dir(p.join(rel)).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
    };
    let file = |rel: &str| fs::read_to_string(under(&p.join(rel), &src.join("f"))).unwrap();
    assert_eq!(names(""), ["hosts", "ids", "latest", "snapshots", "tags"].map(String::from).into());
    assert_eq!(names("ids"), ids.iter().map(|i| i[..8].to_string()).collect());
    assert_eq!(names("hosts"), ["alpha", "beta"].map(String::from).into());
    assert_eq!(names("tags"), ["both", "one", "two"].map(String::from).into());
    let times = names("snapshots");
    assert_eq!(times.len(), 3, "two snapshots and latest: {times:?}");
    // Which snapshot is which is told by content: the older one holds "first".
    let snap_json = |i: usize| &snaps.as_array().unwrap()[i];
    let older = if snap_json(0)["hostname"] == "alpha" { &ids[0] } else { &ids[1] };
    let newer = if older == &ids[0] { &ids[1] } else { &ids[0] };
    assert_eq!(file(&format!("ids/{}", &older[..8])), "first\n");
    assert_eq!(file(&format!("ids/{}", &newer[..8])), "second\n");
    for rel in ["latest", "snapshots/latest", "hosts/beta/latest", "tags/two/latest", "tags/both/latest"] {
        assert_eq!(file(rel), "second\n", "{rel}");
    }
    for rel in ["hosts/alpha/latest", "tags/one/latest"] {
        assert_eq!(file(rel), "first\n", "{rel}");
    }
    assert_eq!(names("tags/both").len(), 3);
    assert_eq!(names("hosts/alpha").len(), 2);
    let latest = fs::read_link(p.join("snapshots/latest")).unwrap();
    assert_eq!(fs::read_link(p.join("latest")).unwrap(), Path::new("snapshots").join(&latest));
    assert!(times.contains(latest.to_str().unwrap()));
    // Snapshot directories carry the snapshot's time.
    let name = latest.to_str().unwrap();
    assert!(name.len() >= 25 && name.as_bytes()[10] == b'T', "{name}");

    // Filters narrow what is mounted.
    drop(m);
    let m = Mount::start(&env, "mnt2", &["--host", "alpha"]);
    assert_eq!(fs::read_dir(m.point.join("ids")).unwrap().count(), 1);
    assert_eq!(fs::read_to_string(under(&m.point.join("latest"), &src.join("f"))).unwrap(), "first\n");
}

#[test]
fn the_mount_is_read_only() {
    require_fuse!();
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("f"), b"data\n").unwrap();
    fs::create_dir(src.join("d")).unwrap();
    env.backup(&[&src], &[]);
    let m = Mount::start(&env, "mnt", &[]);
    let dir = under(&m.point.join("snapshots/latest"), &src);
    let refused = |what: &str, r: std::io::Result<()>| {
        let e = r.expect_err(what);
        let code = e.raw_os_error().unwrap_or_default();
        assert!([libc::EROFS, libc::EACCES, libc::EPERM].contains(&code), "{what}: {e}");
    };
    refused("write", fs::OpenOptions::new().write(true).open(dir.join("f")).map(drop));
    refused("truncate", fs::OpenOptions::new().write(true).truncate(true).open(dir.join("f")).map(drop));
    refused("create", fs::File::create(dir.join("new")).map(drop));
    refused("remove", fs::remove_file(dir.join("f")));
    refused("rmdir", fs::remove_dir(dir.join("d")));
    refused("mkdir", fs::create_dir(dir.join("x")));
    refused("rename", fs::rename(dir.join("f"), dir.join("g")));
    refused("chmod", fs::set_permissions(dir.join("f"), fs::Permissions::from_mode(0o777)));
    refused("symlink", std::os::unix::fs::symlink("f", dir.join("l")));
    refused("hard link", fs::hard_link(dir.join("f"), dir.join("h")));
    refused("mkdir at the top", fs::create_dir(m.point.join("x")));
    refused("remove a layout link", fs::remove_file(m.point.join("latest")));
    refused("xattr", xattr::set(dir.join("f"), "user.x", b"1"));
    assert_eq!(fs::read(dir.join("f")).unwrap(), b"data\n");
}

#[test]
fn ctrl_c_and_an_outside_unmount_end_it_cleanly() {
    require_fuse!();
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("f"), b"x").unwrap();
    env.backup(&[&src], &[]);

    let mut m = Mount::start(&env, "mnt", &[]);
    // The repository is locked (shared) while mounted.
    assert_eq!(repo_files(&env.repo, arca::backend::FileType::Lock).len(), 1);
    // SAFETY: signalling a child this test started.
    assert_eq!(unsafe { libc::kill(m.pid(), libc::SIGINT) }, 0);
    assert_eq!(m.wait_exit(10), 0, "{}", m.stderr());
    assert!(!is_mounted(&m.point));
    assert!(repo_files(&env.repo, arca::backend::FileType::Lock).is_empty(), "lock released");

    // SIGTERM, with a shell sitting inside the mount: detached lazily, exit 0 all the same.
    let mut m = Mount::start(&env, "mnt", &[]);
    let mut inside = Command::new("sleep").arg("30").current_dir(m.point.join("snapshots")).spawn().unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(m.pid(), libc::SIGTERM) }, 0);
    assert_eq!(m.wait_exit(15), 0, "{}", m.stderr());
    assert!(!is_mounted(&m.point));
    assert!(m.stderr().contains("busy"), "{}", m.stderr());
    inside.kill().unwrap();
    inside.wait().unwrap();

    // `fusermount3 -u` from outside.
    let mut m = Mount::start(&env, "mnt", &[]);
    run_ok(Command::new("fusermount3").arg("-u").arg(&m.point));
    assert_eq!(m.wait_exit(10), 0, "{}", m.stderr());
    assert!(!is_mounted(&m.point));
}

#[test]
fn damaged_data_fails_that_read_with_eio_and_the_mount_goes_on() {
    require_fuse!();
    let env = Env::new();
    let src = env.mkdir("src");
    write_random_file(&src.join("victim"), 21, 3 << 20);
    write_random_file(&src.join("healthy"), 22, 3 << 20);
    env.backup(&[&src], &[]);
    // Damage one byte inside each data blob of `victim` (whatever pack holds it), not the others.
    let repo = env.open();
    let index = repo.load_index().unwrap();
    let NodeKind::File { content, .. } = latest_node(&env, &src.join("victim")).kind else { panic!("not a file") };
    let healthy = latest_node(&env, &src.join("healthy"));
    let NodeKind::File { content: healthy_chunks, .. } = &healthy.kind else { panic!("not a file") };
    for c in &content {
        assert!(!healthy_chunks.iter().any(|h| h.id == c.id), "random files share no chunk");
        let loc = index.lookup(BlobType::Data, &c.id).unwrap();
        let pack = repo_file(&env.repo, arca::backend::FileType::Pack, &loc.pack.to_hex());
        flip_byte(&pack, loc.offset as usize + loc.len as usize / 2);
    }

    let m = Mount::start(&env, "mnt", &[]);
    let dir = under(&m.point.join("snapshots/latest"), &src);
    let cat = Command::new("cat").arg(dir.join("victim")).stdout(Stdio::null()).output().unwrap();
    assert!(!cat.status.success());
    assert!(String::from_utf8_lossy(&cat.stderr).contains("Input/output error"), "{:?}", cat);
    let e = fs::read(dir.join("victim")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO));
    // The rest reads, and the damaged blob is named.
    assert_eq!(hash_file(&dir.join("healthy")), hash_file(&src.join("healthy")));
    assert!(m.stderr().contains(&content[0].id.to_hex()[..16]), "{}", m.stderr());
    assert!(m.stderr().contains("victim"), "{}", m.stderr());
    assert!(fs::read_dir(m.point.join("ids")).unwrap().count() == 1);
}

#[test]
fn a_tree_too_deep_fails_with_eio_and_find_ends() {
    require_fuse!();
    let (env, repo) = Env::with_lib_repo();
    // 4100 directories deep: the one at depth 4096, whose entries would break the limit, is
    // listed but reading it fails with EIO.
    hostile_snapshot(&repo, |store| {
        let mut id = store(symlink_leaf());
        for _ in 0..4100 {
            id = store(Tree { nodes: vec![Node::bare_dir(b"d", id)] });
        }
        id
    });
    let m = Mount::start(&env, "mnt", &[]);
    let found = Command::new("find").arg(m.point.join("snapshots/latest/")).output().unwrap();
    assert!(!found.status.success());
    assert!(String::from_utf8_lossy(&found.stderr).contains("Input/output error"), "{found:?}");
    assert_eq!(found.stdout.split(|&b| b == b'\n').filter(|l| l.ends_with(b"/d")).count(), 4096);
    assert!(m.stderr().contains("nested deeper than 4096"), "{}", m.stderr());
}

#[test]
fn a_tree_bomb_is_browsed_path_by_path() {
    require_fuse!();
    let (env, repo) = Env::with_lib_repo();
    // 13 distinct trees, 2^12 paths to the leaf: each path is its own entry in the mount.
    hostile_snapshot(&repo, |store| {
        let mut id = store(symlink_leaf());
        for _ in 0..12 {
            id = store(Tree { nodes: vec![Node::bare_dir(b"a", id), Node::bare_dir(b"b", id)] });
        }
        id
    });
    let m = Mount::start(&env, "mnt", &[]);
    let found = run_ok(Command::new("find").arg(m.point.join("hosts/evil/latest/")).args(["-name", "leaf"]));
    assert_eq!(found.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count(), 4096);
    let (a, b) = (m.point.join("latest/a/a"), m.point.join("latest/a/b"));
    assert_ne!(fs::metadata(a).unwrap().ino(), fs::metadata(b).unwrap().ino(), "one tree, two directories");
}
