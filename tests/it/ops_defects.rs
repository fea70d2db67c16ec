//! Issue 20's defects, one regression test each (named `defect_N_…` after the issue's list).
//! Each fails on the build before the fix: `ARCA_TEST_BIN=/path/to/old/arca cargo test --test
//! it defect_` runs them against another binary.

use crate::backup_restore::{node, put_tree, snapshot_of};
use crate::common::*;
use arca::format::blob::BlobType;
use arca::format::tree::{ChunkRef, NodeKind, Tree};
use arca::repo::packer::Packer;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;

/// Mode bits and mtime of a path.
fn meta(p: &Path) -> (u32, i64, u32) {
    let m = fs::symlink_metadata(p).unwrap();
    (m.mode() & 0o7777, m.mtime(), m.uid())
}

/// A tree for in-place restores: `SRC/etc/app` with 600 small files and one of 40 MiB, so that
/// a restore takes long enough to be interrupted.
fn app_tree(env: &Env) -> PathBuf {
    let app = env.mkdir("src/etc/app");
    for i in 0..600 {
        fs::write(app.join(format!("f{i:03}.conf")), format!("setting {i}\n")).unwrap();
    }
    write_random_file(&app.join("big.bin"), 5, 40 << 20);
    fs::set_permissions(&app, fs::Permissions::from_mode(0o750)).unwrap();
    app
}

/// Defect 1: restoring to a target whose directories exist (`--target /`, in place) took them
/// over (mode 0700) while it ran — a `kill -9` left `/etc` 0700 — and reset their mtimes. Now
/// directories above the snapshot's paths that only root can write are never touched, those
/// another user can write are taken over and put back, and the snapshot's own directories get
/// their recorded metadata.
#[test]
fn defect_1_restore_in_place_leaves_the_directories_above_the_snapshot_alone() {
    let env = Env::new();
    let app = app_tree(&env);
    env.backup(&[&app], &[]);
    // The target already holds the ancestors of `app`, as `/` holds `/etc`, and `app` itself
    // (so that nothing new appears in its parent).
    let t = env.mkdir("t");
    let etc = under(&t, app.parent().unwrap());
    fs::create_dir_all(etc.join("app")).unwrap();
    let old = odd_time(1_400_000_000, 0);
    let ancestors: Vec<PathBuf> =
        etc.ancestors().take_while(|p| p.starts_with(&t) && *p != t).map(PathBuf::from).collect();
    for a in &ancestors {
        fs::set_permissions(a, fs::Permissions::from_mode(0o755)).unwrap();
        set_mtime(a, old);
    }
    let before: Vec<_> = ancestors.iter().map(|a| meta(a)).collect();
    // A killed restore leaves them as they were.
    let mut child = arca_std_cmd()
        .env("ARCA_REPOSITORY", &env.repo)
        .env("ARCA_PASSWORD", PASSWORD)
        .args(["restore", "latest", "--target", t.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let restored = under(&t, &app);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !restored.join("f000.conf").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(restored.join("f000.conf").exists(), "the restore never started writing");
    let during: Vec<_> = ancestors.iter().map(|a| meta(a)).collect();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(during, before, "the directories above the snapshot changed while restoring");
    let after_kill: Vec<_> = ancestors.iter().map(|a| meta(a)).collect();
    assert_eq!(after_kill, before, "a killed restore left them changed");
    // A complete restore too; the snapshot's own directory gets its recorded mode.
    env.restore("latest", &t, &[]);
    let after: Vec<_> = ancestors.iter().map(|a| (meta(a).0, meta(a).1)).collect();
    assert_eq!(after, before.iter().map(|m| (m.0, m.1)).collect::<Vec<_>>());
    assert_eq!(meta(&restored).0, 0o750);
    assert_eq!(fs::read(restored.join("f123.conf")).unwrap(), b"setting 123\n");
    // An ancestor another user can write is taken over while restoring (race protection), then
    // put back as it was.
    if is_root() {
        std::os::unix::fs::chown(&etc, Some(NOBODY), Some(NOBODY)).unwrap();
        fs::set_permissions(&etc, fs::Permissions::from_mode(0o777)).unwrap();
        fs::remove_dir_all(&restored).unwrap();
        env.restore("latest", &t, &[]);
        assert_eq!((meta(&etc).0, meta(&etc).2), (0o777, NOBODY), "taken over and not put back");
    }
    // verify of the live files does not report the ancestors' metadata or their other entries.
    fs::write(etc.join("unrelated.conf"), b"x").unwrap();
    env.run(&["verify", "latest", t.to_str().unwrap()]).ok();
}

/// Defect 2: `-r sftp:user@nas:/srv/repo init` created a local directory of that name and said
/// it made a repository "at sftp:…". Unknown schemes are a usage error naming the supported
/// ones; a local name with a colon is written `./`.
#[test]
fn defect_2_unknown_repository_schemes_are_refused() {
    let env = Env::bare();
    let dir = env.mkdir("cwd");
    // (sftp:, rclone:, azure: and ssh:// became real backends since: tests/it/remote.rs.)
    for loc in ["rest:http://host/", "b2:bucket", "gs:b/p", "swift:c", "webdav:x"] {
        let out = Out::from(
            arca_cmd().current_dir(&dir).args(["-r", loc, "init"]).env("ARCA_PASSWORD", PASSWORD).output().unwrap(),
        )
        .code(2);
        assert!(
            out.stderr.contains("not supported")
                && ["s3:", "sftp:", "rclone:", "azure:", "ssh://"].iter().all(|s| out.stderr.contains(s)),
            "{loc}: {}",
            out.stderr
        );
    }
    // A malformed location of a supported kind is a usage error too, and creates nothing.
    for loc in ["sftp:nas", "azure:X", "ssh://nas"] {
        let out = Out::from(
            arca_cmd().current_dir(&dir).args(["-r", loc, "init"]).env("ARCA_PASSWORD", PASSWORD).output().unwrap(),
        );
        out.code(2);
    }
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "nothing was created");
    Out::from(
        arca_cmd()
            .current_dir(&dir)
            .args(["-r", "./sftp:odd", "init", "--kdf-memory", "8", "--kdf-iterations", "1"])
            .env("ARCA_PASSWORD", PASSWORD)
            .output()
            .unwrap(),
    )
    .ok();
    assert!(dir.join("sftp:odd/config").exists());
}

fn status_code(env: &Env) -> i32 {
    env.run(&["status", "--max-age", "1h"]).code
}

/// Defect 3: status lied. A live directory that differs is not damage; a mistyped restore
/// include or a failed dump does not fail the group; a failed backup stays failing through
/// later verifies; a tag change keeps the verification; Prometheus label sets are unique.
#[test]
fn defect_3_status_tells_the_truth() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("a.txt"), b"alpha").unwrap();
    env.backup(&[&src], &[]);
    let mtime = fs::metadata(src.join("a.txt")).unwrap().modified().unwrap();
    assert_eq!(status_code(&env), 0);
    // A difference in a live directory: verify exits 5, recorded as `differs`, status stays ok.
    fs::write(src.join("a.txt"), b"changed").unwrap();
    env.run(&["verify", &sref("latest", &src), src.to_str().unwrap()]).code(5);
    let rec = env.json(&["journal", "--op", "verify", "--last", "1"]);
    assert_eq!(rec[0]["outcome"], "differs", "{rec}");
    assert_eq!(status_code(&env), 0, "a live difference is not repository damage");
    // User errors are not backup failures.
    let t = env.path("t");
    env.run(&["restore", "latest", "--target", t.to_str().unwrap(), "-i", "no-such-name"]).code(2);
    env.run(&["dump", "latest:/no/such/file"]).code(1);
    assert_eq!(status_code(&env), 0, "a typo or a failed dump does not fail the group");
    // Masking: a failed backup, then a mismatching and a matching verify: still failing.
    let moved = env.path("moved");
    fs::rename(&src, &moved).unwrap();
    assert_ne!(env.run(&["backup", src.to_str().unwrap()]).code, 0);
    fs::rename(&moved, &src).unwrap();
    env.run(&["verify", &sref("latest", &src), src.to_str().unwrap()]).code(5);
    fs::write(src.join("a.txt"), b"alpha").unwrap();
    set_mtime(&src.join("a.txt"), mtime);
    env.run(&["verify", &sref("latest", &src), src.to_str().unwrap()]).ok();
    assert_eq!(status_code(&env), 6, "no backup succeeded since the failure");
    env.backup(&[&src], &[]);
    assert_eq!(status_code(&env), 0);

    // A tag change keeps the verification: drill, move a label, dump the verified snapshot.
    env.run(&["drill"]).ok();
    env.run(&["tag", "--move", "last-good", "latest"]).ok();
    env.run(&["tag", "--add", "keep", "latest"]).ok();
    assert_eq!(env.run(&["dump", &sref("latest-verified", &src.join("a.txt"))]).ok().stdout, b"alpha");
    let g = &env.run(&["--json", "status", "-g", "host,paths"]).ok().json()["groups"][0];
    assert_eq!(g["newest_verified"], true, "{g}");
}

/// Defect 3, Prometheus: paths `/p/a,/p/b` (one path) against `/p/a` + `/p/b`, and two paths
/// differing only in a byte that is not UTF-8, gave identical label sets; node_exporter rejects
/// such a file whole, silencing every alert.
#[test]
fn defect_3_prometheus_label_sets_are_unique() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let base = env.mkdir("p");
    let (a, b) = (base.join("a"), base.join("b"));
    // A directory whose path is "<a>,<b>": `a,` holding the rest of `b`'s path.
    let joined = PathBuf::from(format!("{},{}", a.display(), b.display()));
    let odd = |name: &[u8]| base.join(std::ffi::OsStr::from_bytes(name));
    for d in [&a, &b, &joined, &odd(b"n\xff"), &odd(b"n\xfe")] {
        fs::create_dir_all(d).unwrap();
        fs::write(d.join("f"), b"x").unwrap();
    }
    let backup = |paths: &[&Path]| Out::from(env.cmd().arg("backup").args(paths).output().unwrap()).ok();
    backup(&[&joined]);
    backup(&[&a, &b]);
    backup(&[&odd(b"n\xff")]);
    backup(&[&odd(b"n\xfe")]);
    let text = env.run(&["status", "--prometheus"]).ok().text();
    let series: Vec<&str> = text.lines().filter(|l| l.starts_with("arca_snapshots{")).collect();
    assert_eq!(series.len(), 4, "{text}");
    let labels: std::collections::HashSet<&str> = series.iter().map(|l| l.rsplit_once(' ').unwrap().0).collect();
    assert_eq!(labels.len(), 4, "duplicate series:\n{}", series.join("\n"));
}

/// Defect 4: `diff latest --tag A latest --tag B` compared a snapshot with itself. Each side has
/// its own filters, and each may be a path in its snapshot.
#[test]
fn defect_4_diff_selects_each_side_on_its_own() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("same.txt"), b"same").unwrap();
    fs::write(src.join("x.txt"), b"one").unwrap();
    env.backup(&[&src], &["--tag", "A"]);
    fs::write(src.join("x.txt"), b"two, longer").unwrap();
    fs::write(src.join("new.txt"), b"n").unwrap();
    env.backup(&[&src], &["--tag", "B"]);
    let out = env.run(&["diff", "latest", "--tag", "A", "latest", "--tag", "B"]).ok().text();
    let x = src.join("x.txt");
    assert!(out.contains(&format!("M    {}", x.display())), "{out}");
    assert!(out.contains(&format!("+    {}", src.join("new.txt").display())), "{out}");
    assert!(!out.contains("same.txt"), "{out}");
    // Filters before the first snapshot apply to both.
    env.run(&["diff", "--tag", "A", "latest", "latest"]).ok();
    assert_eq!(env.run(&["-q", "diff", "--tag", "A", "latest", "latest"]).ok().text(), "");
    // A path in each snapshot.
    let out = env.run(&["-q", "diff", &sref("latest~1", &x), &sref("latest", &x)]).ok().text();
    assert_eq!(out.trim(), format!("M    {}", x.display()), "{out}");
    let out = env.run(&["diff", &sref("latest~1", &src), &sref("latest", &src)]).ok().text();
    assert!(out.contains("new.txt") && out.contains("x.txt") && !out.contains("same"), "{out}");
}

/// Write a configuration at `at`: repository `main` (this env's, with a password file), profile
/// `app` with `keys`, then `components` (TOML tables).
fn write_config(env: &Env, at: &Path, keys: &str, components: &str) {
    fs::write(env.path("pw"), format!("{PASSWORD}\n")).unwrap();
    let text = format!(
        "[repository.main]\npath = \"{}\"\npassword-file = \"{}\"\n\n[profile.app]\n{keys}\n{components}",
        env.repo.display(),
        env.path("pw").display(),
    );
    fs::write(at, text).unwrap();
}

/// A component `files` backing up `src`.
fn files_component(src: &Path) -> String {
    format!("[profile.app.component.files]\npaths = [\"{}\"]\n", src.display())
}

/// The configuration of a small profile with an `after` hook that fails.
fn profile_with_failing_after(env: &Env, src: &Path) -> PathBuf {
    let cfg = env.path("config.toml");
    let keys = "max-age = \"1h\"\nhooks.after = [[\"sh\", \"-c\", \"echo offsite copy failed >&2; exit 3\"]]\n";
    write_config(env, &cfg, keys, &files_component(src));
    cfg
}

/// Defect 5: a failing `hooks.after` command (the off-site copy) was a warning with exit 0.
#[test]
fn defect_5_a_failing_after_hook_fails_the_run() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("f"), b"x").unwrap();
    let cfg = profile_with_failing_after(&env, &src);
    let run = |args: &[&str]| Out::from(arca_cmd().arg("--config").arg(&cfg).args(args).output().unwrap());
    let out = run(&["backup", "--profile", "app"]).code(1);
    assert!(out.stderr.contains("after hook failed") && out.stderr.contains("exited with status 3"), "{}", out.stderr);
    let failed = env.json(&["journal", "--failed"]);
    assert_eq!(failed[0]["op"], "backup", "{failed}");
    assert_eq!(failed[0]["labels"]["hook"], "after");
    let st = run(&["--json", "status", "--profile", "app"]).code(6).json();
    assert_eq!(st["groups"][0]["last_failure"]["op"], "backup", "{st}");
}

/// Defect 6: a hard-link group with more members than its `links` count panicked restore.
#[test]
fn defect_6_more_hard_link_members_than_links_restore_without_a_panic() {
    let env = Env::new();
    let repo = env.open();
    let index = repo.load_index().unwrap();
    let packer = Packer::new(&repo);
    let payload = b"shared content";
    let id = repo.keys().blob_id(payload);
    packer.store(&index, BlobType::Data, &id, payload).unwrap();
    let kind = NodeKind::File { size: payload.len() as u64, content: vec![ChunkRef { id, len: payload.len() as u32 }] };
    let member = |name: &[u8]| {
        let mut n = node(name, kind.clone());
        (n.links, n.device, n.inode) = (2, 2049, 777);
        n
    };
    let tree = Tree { nodes: vec![member(b"a"), member(b"b"), member(b"c"), member(b"d")] };
    let root = put_tree(&repo, &packer, &tree);
    packer.finish().unwrap();
    let snap = repo.save_snapshot(&snapshot_of(root)).unwrap();
    let t = env.path("t");
    env.run(&["restore", &snap.to_hex(), "--target", t.to_str().unwrap(), "--verify"]).ok();
    for n in ["a", "b", "c", "d"] {
        assert_eq!(fs::read(t.join(n)).unwrap(), payload, "{n}");
    }
}

/// Defect 6: `ls … | head` and `generate completions … | head` panicked on the broken pipe.
#[test]
fn defect_6_a_reader_that_goes_away_ends_output_quietly() {
    let env = Env::new();
    let src = env.mkdir("src");
    for i in 0..3000 {
        fs::write(src.join(format!("file-{i:05}")), b"").unwrap();
    }
    env.backup(&[&src], &[]);
    let piped = |args: &[&str], with_repo: bool| {
        let mut c = arca_std_cmd();
        if with_repo {
            c.env("ARCA_REPOSITORY", &env.repo).env("ARCA_PASSWORD", PASSWORD);
        }
        let mut child = c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut first = [0u8; 16];
        use std::io::Read;
        child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {err}");
    };
    piped(&["ls", "latest"], true);
    piped(&["generate", "completions", "bash"], false);
}

/// Defect 6: a lock file of this host with pid 0 or a pid beyond `pid_t` read as held
/// (`kill(0, 0)` signals one's own process group), blocking every exclusive command forever.
#[test]
fn defect_6_locks_with_impossible_pids_are_stale() {
    use arca::backend::FileType;
    let env = Env::new();
    let repo = env.open();
    for pid in [0u32, 1 << 31, u32::MAX] {
        let lock = arca::format::lock::Lock {
            time: arca::sys::now_nanos(),
            exclusive: true,
            hostname: arca::sys::hostname(),
            username: "root".into(),
            pid,
        };
        let bytes = repo.encrypt_file(arca::format::header::FileKind::Lock, &lock.encode()).unwrap();
        let name = arca::Id::of_file_bytes(&bytes).to_hex();
        repo.backend().write(FileType::Lock, &name, &bytes).unwrap();
    }
    // An exclusive command does not wait for them; unlock removes them as stale.
    env.run(&["--retry-lock", "0", "tag", "--add", "x"]).ok();
    let out = env.run(&["unlock"]).ok().text();
    assert!(out.contains("3 locks removed"), "{out}");
}

/// Defect 7: `backup --profile` dropped the command line's `--exclude*`, `-x`, `--allow-empty`.
#[test]
fn defect_7_command_line_options_apply_under_a_profile() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("keep.txt"), b"k").unwrap();
    fs::write(src.join("drop.log"), b"d").unwrap();
    fs::write(src.join("also.tmp"), b"t").unwrap();
    fs::write(env.path("excludes"), "*.tmp\n").unwrap();
    let cfg = env.path("config.toml");
    let components = files_component(&src) + "\n[profile.app.component.empty]\ncommand = [\"true\"]\n";
    write_config(&env, &cfg, "", &components);
    let run = |args: &[&str]| Out::from(arca_cmd().arg("--config").arg(&cfg).args(args).output().unwrap());
    let excl = env.path("excludes");
    run(&[
        "backup",
        "--profile",
        "app",
        "--exclude",
        "*.log",
        "--exclude-file",
        excl.to_str().unwrap(),
        "-x",
        "--allow-empty",
        "--io-threads",
        "0",
    ])
    .ok();
    let files = env.json(&["ls", "latest", "--tag", "component=files"]);
    let names: Vec<&str> = files.as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"keep.txt") && !names.contains(&"drop.log") && !names.contains(&"also.tmp"), "{names:?}");
    // --allow-empty reached the command component: its empty stream was saved.
    assert_eq!(env.run(&["dump", "latest:empty.dump", "--tag", "component=empty"]).ok().stdout, b"");
}

/// Defect 7: hooks ran as root from a configuration anyone could write; `--to-password-command`
/// saw `ARCA_PASSWORD`; `generate systemd` wrote a config path with a newline or `%` unescaped
/// and baked the shell's `--repo` into the units.
#[test]
fn defect_7_profiles_refuse_unsafe_configurations_and_units_are_escaped() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("f"), b"x").unwrap();
    let dir = env.mkdir("odd\nExecStartPre=/bin/false %h");
    let cfg = dir.join("config.toml");
    write_config(&env, &cfg, "hooks.before = [[\"true\"]]\n", &files_component(&src));
    let run = |args: &[&str]| Out::from(arca_cmd().arg("--config").arg(&cfg).args(args).output().unwrap());
    // World-writable: refused before anything runs.
    fs::set_permissions(&cfg, fs::Permissions::from_mode(0o666)).unwrap();
    let out = run(&["backup", "--profile", "app"]).code(2);
    assert!(out.stderr.contains("writable by group or others"), "{}", out.stderr);
    fs::set_permissions(&cfg, fs::Permissions::from_mode(0o644)).unwrap();
    run(&["backup", "--profile", "app"]).ok();
    // Units: the path's newline and `%` escaped, no `--repo`, verified by systemd.
    // A symlink planted where a unit goes is replaced, never written through.
    let units = env.mkdir("units");
    fs::write(env.path("other"), b"other").unwrap();
    std::os::unix::fs::symlink(env.path("other"), units.join("arca-app-backup.service")).unwrap();
    Out::from(
        arca_cmd()
            .arg("--config")
            .arg(&cfg)
            .env("ARCA_REPOSITORY", &env.repo)
            .args(["generate", "systemd", "--profile", "app", "--every", "1d", "--dir", units.to_str().unwrap()])
            .output()
            .unwrap(),
    )
    .ok();
    assert_eq!(fs::read(env.path("other")).unwrap(), b"other");
    assert!(fs::symlink_metadata(units.join("arca-app-backup.service")).unwrap().is_file());
    let service = fs::read_to_string(units.join("arca-app-backup.service")).unwrap();
    assert!(!service.contains("--repo") && !service.lines().any(|l| l.starts_with("ExecStartPre")), "{service}");
    assert!(service.contains("\\nExecStartPre=/bin/false %%h"), "{service}");
    let files: Vec<_> = fs::read_dir(&units).unwrap().map(|e| e.unwrap().path()).collect();
    crate::ops_profile::systemd_verify(&files);
    // The destination password command does not see the source's password.
    let dst = Env::new();
    let probe = env.path("probe");
    let cmd = format!("env | grep -c '^ARCA_PASSWORD=' > {} ; echo {PASSWORD}", probe.display());
    Out::from(
        arca_cmd()
            .env("ARCA_REPOSITORY", &env.repo)
            .env("ARCA_PASSWORD", PASSWORD)
            .args(["copy", "--to", dst.repo.to_str().unwrap(), "--to-password-command", &cmd])
            .output()
            .unwrap(),
    )
    .ok();
    assert_eq!(fs::read_to_string(&probe).unwrap().trim(), "0");
}

/// A snapshot of `src` (one file), and a directory `victim` holding `keep` that no command may touch.
fn backed_up_with_victim(env: &Env) -> (PathBuf, PathBuf) {
    let src = env.mkdir("src");
    fs::write(src.join("f"), b"x").unwrap();
    env.backup(&[&src], &[]);
    let victim = env.mkdir("victim");
    fs::write(victim.join("keep"), b"k").unwrap();
    (src, victim)
}

/// Defect 8: `arca mount DIR` as root followed a symlink another user planted at DIR and
/// mounted over its target (`/etc`). The mount point must be a directory only root or the
/// mounting user can change; nothing is mounted otherwise.
#[test]
fn defect_8_mount_refuses_a_planted_symlink_or_another_users_directory() {
    let env = Env::new();
    let (_, victim) = backed_up_with_victim(&env);
    let link = env.path("mnt");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let out = env.run(&["mount", link.to_str().unwrap()]).code(2);
    assert!(out.stderr.contains("symlink"), "{}", out.stderr);
    assert_eq!(fs::read(victim.join("keep")).unwrap(), b"k");
    if is_root() {
        let theirs = env.mkdir("theirs");
        std::os::unix::fs::chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
        let out = env.run(&["mount", theirs.to_str().unwrap()]).code(2);
        assert!(out.stderr.contains("belongs to user 65534"), "{}", out.stderr);
        let shared = env.mkdir("shared");
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
        env.run(&["mount", shared.to_str().unwrap()]).code(2);
    }
}

/// Review of the fixes above: the checks of defects 7 and 8 and restore's target walk went by
/// path, so a trailing slash (`mnt/`, as tab completion writes it), a symlink in a directory
/// others can write, or a trusted link (`/var/www -> /home/web/site`) whose target another user
/// re-points, led somewhere else. Each path is now walked one component at a time and refused.
#[test]
fn review_paths_are_walked_without_following_what_others_can_change() {
    use std::os::unix::fs::symlink;
    let env = Env::new();
    let (src, victim) = backed_up_with_victim(&env);
    let open = env.mkdir("open");
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();

    // Mount: the planted link with a trailing slash, and a link in a directory others can write.
    let link = env.path("mnt");
    symlink(&victim, &link).unwrap();
    let out = env.run(&["mount", &format!("{}/", link.display())]).code(2);
    assert!(out.stderr.contains("symlink"), "{}", out.stderr);
    symlink(&victim, open.join("mnt")).unwrap();
    let out = env.run(&["mount", &format!("{}/", open.join("mnt").display())]).code(2);
    assert!(out.stderr.contains("writable by group or others"), "{}", out.stderr);

    // Configuration: a link we own, to a file in a directory anyone can swap it in.
    let cfg = open.join("config.toml");
    write_config(&env, &cfg, "hooks.before = [[\"true\"]]\n", &files_component(&src));
    fs::set_permissions(&cfg, fs::Permissions::from_mode(0o644)).unwrap();
    let linked = env.path("config.toml");
    symlink(&cfg, &linked).unwrap();
    let out = Out::from(arca_cmd().arg("--config").arg(&linked).args(["backup", "--profile", "app"]).output().unwrap());
    let out = out.code(2);
    assert!(out.stderr.contains("writable by group or others"), "{}", out.stderr);

    // Restore: a trusted link whose target passes through a link another user controls.
    symlink(&victim, open.join("site")).unwrap();
    let www = env.path("www");
    symlink(open.join("site"), &www).unwrap();
    let out = env.run(&["restore", "latest", "--target", www.join("x").to_str().unwrap()]);
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("not followed"), "{}", out.stderr);
    let left: Vec<_> = fs::read_dir(&victim).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["keep"], "nothing restored into the link's target");
}
