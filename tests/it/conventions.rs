//! What a restic user expects on day one (issue 23, items 5 and 6): Ctrl-C that cleans up, a
//! full disk reported once, environment variables named as such, `prune -n`, keys that share a
//! password, singular and plural in summaries; and the browsing conventions of `snapshots`,
//! `find`, `diff` and `ls`.

use crate::common::*;
use arca::backend::FileType;
use arca::Id;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// `count` files of `size` random bytes each in `dir`.
fn random_tree(dir: &Path, count: u64, size: u64) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..count {
        write_random_file(&dir.join(format!("f{i:05}")), i + 1, size);
    }
}

/// Backup `src` slowly (uploads held to 64 KiB/s), send `sig` once it holds its lock and has
/// stored something, and return the exit code and stderr.
fn interrupted_backup(env: &Env, src: &Path, sig: i32) -> (Option<i32>, String) {
    let child = arca_std_cmd()
        .env("ARCA_REPOSITORY", &env.repo)
        .env("ARCA_PASSWORD", PASSWORD)
        .args(["--limit-upload", "64", "backup", src.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    // Mid-backup: its lock is there and a pack is on its way out.
    while repo_files(&env.repo, FileType::Lock).is_empty() || start.elapsed() < Duration::from_millis(1500) {
        assert!(start.elapsed() < Duration::from_secs(60), "no lock appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn ctrl_c_mid_backup_removes_the_lock_says_what_stopped_and_exits_130() {
    let env = Env::new();
    let src = env.path("src");
    // 4 MiB of incompressible data at 64 KiB/s: a minute, were it not interrupted.
    random_tree(&src, 256, 16 << 10);
    for (sig, code, name) in [(libc::SIGINT, 130, "SIGINT"), (libc::SIGTERM, 143, "SIGTERM")] {
        let (status, stderr) = interrupted_backup(&env, &src, sig);
        assert_eq!(status, Some(code), "{stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("arca:")).collect();
        assert_eq!(
            lines,
            [format!(
                "arca: backup interrupted by {name}; removed its lock; no snapshot was written; run it again: \
                 the data already stored is reused"
            )],
            "{stderr}"
        );
        assert_eq!(repo_files(&env.repo, FileType::Lock), Vec::<String>::new(), "the lock is gone");
        assert!(repo_files(&env.repo, FileType::Snapshot).is_empty());
    }
    // No lock in the way: the next backup runs at once and the repository checks clean.
    env.run(&["backup", "--retry-lock", "0", src.to_str().unwrap()]).ok();
    assert_eq!(repo_files(&env.repo, FileType::Snapshot).len(), 1);
    env.run(&["check"]).ok();
}

#[test]
fn the_outcome_table_has_interrupted_and_terminated() {
    use arca::ops::Outcome;
    assert_eq!(Outcome::of_signal(libc::SIGINT).exit_code(), 130);
    assert_eq!(Outcome::of_signal(libc::SIGTERM).exit_code(), 143);
    assert_eq!(Outcome::from_exit_code(130), Outcome::Interrupted);
    assert_eq!(Outcome::Interrupted.name(), "interrupted");
}

/// A tmpfs of `kib` KiB mounted at `dir` (root only), unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: PathBuf, kib: u64) -> Option<SmallDisk> {
        fs::create_dir_all(&dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k,mode=0755"), "tmpfs", dir.to_str().unwrap()])
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_restore_onto_a_full_disk_stops_with_one_message_and_a_count() {
    let env = Env::new();
    let src = env.path("src");
    random_tree(&src, 200, 20 << 10);
    env.backup(&[&src], &[]);
    let Some(disk) = SmallDisk::mount(env.path("small"), 512) else {
        eprintln!("skipped: cannot mount a tmpfs (needs root)");
        return;
    };
    let out = env.run(&["restore", "latest", "--target", disk.0.to_str().unwrap()]).code(1);
    let full: Vec<&str> = out.stderr.lines().filter(|l| l.contains("No space left")).collect();
    assert_eq!(full.len(), 1, "one ENOSPC message, not one per file:\n{}", out.stderr);
    let summary: Vec<&str> = out.stderr.lines().filter(|l| l.contains("file system is full")).collect();
    assert_eq!(summary.len(), 1, "{}", out.stderr);
    let n: u64 = summary[0]
        .strip_prefix("error: the target's file system is full: restore stopped, ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}", summary[0]));
    // 4 MiB does not fit in 512 KiB: most of the 200 files were not written.
    assert!((100..=200).contains(&n), "{n} not restored");
    assert!(out.stderr.lines().count() <= 4, "{}", out.stderr);
    // The JSON says the same.
    let out = env.run(&["--json", "restore", "latest", "--target", disk.0.to_str().unwrap()]).code(1);
    assert!(out.json()["stats"]["no_space"].as_u64().unwrap() >= 100, "{}", out.text());
}

#[test]
fn empty_environment_variables_are_named_as_variables() {
    let env = Env::new();
    for var in ["ARCA_REPOSITORY", "ARCA_PASSWORD_FILE"] {
        let out = Out::from(env.cmd().env(var, "").args(["snapshots"]).output().unwrap()).code(2);
        assert!(
            out.stderr.contains(&format!("the environment variable {var} is set but empty")),
            "{var}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("--repo") && !out.stderr.contains("--password-file"), "{}", out.stderr);
    }
    // The flag given on the command line wins over an empty variable.
    let repo = env.repo.to_str().unwrap();
    Out::from(env.cmd().env("ARCA_REPOSITORY", "").args(["-r", repo, "snapshots"]).output().unwrap()).ok();
    // A password file from the variable is named as the variable.
    let pw = env.path("empty-pw");
    fs::write(&pw, "\n").unwrap();
    let out = Out::from(
        env.cmd().env_remove("ARCA_PASSWORD").env("ARCA_PASSWORD_FILE", &pw).arg("snapshots").output().unwrap(),
    );
    let out = out.code(2);
    assert!(out.stderr.contains("empty password from ARCA_PASSWORD_FILE"), "{}", out.stderr);
}

#[test]
fn prune_n_is_a_dry_run() {
    let env = Env::new();
    let src = env.path("src");
    random_tree(&src, 3, 1000);
    let id = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    env.run(&["forget", &id]).ok();
    let packs = repo_files(&env.repo, FileType::Pack);
    let out = env.run(&["prune", "-n"]).ok();
    assert!(out.text().lines().any(|l| l == "dry run: nothing changed"), "{}", out.text());
    assert!(out.text().contains("would free"), "{}", out.text());
    assert_eq!(repo_files(&env.repo, FileType::Pack), packs);
}

#[test]
fn two_keys_with_one_password_are_told_apart_and_either_removed() {
    let env = Env::new();
    let add = Out::from(
        env.cmd()
            .env("ARCA_NEW_PASSWORD", PASSWORD)
            .args(["--json", "key", "add", "--label", "twin", "--kdf-memory", "8", "--kdf-iterations", "1"])
            .output()
            .unwrap(),
    )
    .ok();
    let twin = add.json()["added"].as_str().unwrap().to_string();
    let list = env.run(&["key", "list"]).ok().text();
    let rows: Vec<&str> = list.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{list}");
    assert!(list.lines().next().unwrap().contains("ID") && list.contains("created") && list.contains("label"));
    assert!(rows.iter().any(|r| r.contains(&twin[..16]) && r.contains("twin")), "{list}");
    // The password opens the first key by name; whichever is in use, it can be removed by a
    // prefix, since the other opens with the same password.
    let current = rows.iter().find(|r| r.starts_with('*')).unwrap().split_whitespace().nth(1).unwrap().to_string();
    let out = env.run(&["key", "remove", &current[..6]]).ok();
    assert_eq!(out.text().trim(), format!("removed key {current}"));
    let list = env.run(&["--json", "key", "list"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    env.run(&["snapshots"]).ok();
    // The last key is never removed.
    let last = list[0]["id"].as_str().unwrap().to_string();
    let out = env.run(&["key", "remove", &last[..6]]).code(2);
    assert!(out.stderr.contains("in use"), "{}", out.stderr);
}

#[test]
fn summaries_say_1_file_not_1_files() {
    let env = Env::new();
    let src = env.mkdir("one");
    fs::write(src.join("only"), b"one file").unwrap();
    env.backup(&[&src.join("only")], &[]);
    let out = env.run(&["snapshots"]).ok();
    assert_eq!(out.text().lines().last(), Some("1 snapshot"));
    let target = env.path("t");
    let out = env.run(&["restore", "latest", "--target", target.to_str().unwrap()]).ok();
    let line = out.text().lines().next().unwrap().to_string();
    assert!(line.starts_with("restored 1 file (8 B), "), "{line}");
    assert!(line.contains("; 0 files already up to date;"), "{line}");
    let out = env.run(&["check"]).ok();
    assert!(out.text().contains("checked 1 snapshot, "), "{}", out.text());
}

/// The snapshot IDs of `snapshots --json` (oldest first).
fn snapshot_ids(env: &Env) -> Vec<String> {
    env.json(&["snapshots"]).as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn snapshots_compact_group_by_latest_and_long_tags_that_wrap() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("a"), b"a").unwrap();
    let long = "a-tag-far-longer-than-any-column-should-be-0123456789";
    env.backup(&[&src], &["--tag", "a"]);
    env.backup(&[&src], &["--tag", "a"]);
    env.backup(&[&src], &["--tag", &format!("b,{long}")]);
    let ids = snapshot_ids(&env);

    // The long tag is wrapped at 24 characters, in the tags column of every line it takes.
    let text = env.run(&["snapshots"]).ok().text();
    let lines: Vec<&str> = text.lines().collect();
    let col = lines[0].find("tags").unwrap();
    let pieces = [&long[..24], &long[24..48], &long[48..]];
    for p in pieces {
        let l = lines.iter().find(|l| l.contains(p)).unwrap_or_else(|| panic!("{p} in\n{text}"));
        assert_eq!(l.find(p), Some(col), "{text}");
    }
    let size_end = lines.iter().filter(|l| l.contains(src.to_str().unwrap())).map(|l| l.find(" /").unwrap());
    assert_eq!(size_end.collect::<std::collections::BTreeSet<_>>().len(), 1, "paths line up:\n{text}");
    assert_eq!(lines.last(), Some(&"3 snapshots"));

    // --compact: ID, time, host, tags; no sizes or paths.
    let compact = env.run(&["snapshots", "--compact"]).ok().text();
    assert_eq!(compact.lines().next().unwrap().split_whitespace().collect::<Vec<_>>(), ["ID", "time", "host", "tags"]);
    assert!(!compact.contains(src.to_str().unwrap()) && !compact.contains(" B "), "{compact}");
    assert!(compact.lines().any(|l| l.starts_with(&ids[2][..8]) && l.ends_with(&long[..24])), "{compact}");

    // --group-by tags: one table per tag set, each with its count.
    let grouped = env.run(&["snapshots", "--group-by", "tags"]).ok().text();
    let heads: Vec<&str> = grouped.lines().filter(|l| l.starts_with("snapshots of ")).collect();
    assert_eq!(heads, ["snapshots of tags [a]:".to_string(), format!("snapshots of tags [{long}, b]:")]);
    let counts: Vec<&str> = grouped.lines().filter(|l| l.ends_with("snapshot") || l.ends_with("snapshots")).collect();
    assert_eq!(counts, ["2 snapshots", "1 snapshot"], "{grouped}");
    // JSON as restic's: group_key (fields not grouped by are null) and snapshots.
    let v = env.json(&["snapshots", "--group-by", "tags,host"]);
    let groups = v.as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["group_key"]["tags"], serde_json::json!(["a"]));
    assert!(groups[0]["group_key"]["paths"].is_null() && groups[0]["group_key"]["hostname"].is_string());
    let in_group = |g: &serde_json::Value| -> Vec<String> {
        g["snapshots"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(in_group(&groups[0]), &ids[..2]);
    assert_eq!(in_group(&groups[1]), &ids[2..]);
    // --latest N counts per group when grouping.
    let v = env.json(&["snapshots", "--group-by", "tags", "--latest", "1"]);
    let latest: Vec<Vec<String>> = v.as_array().unwrap().iter().map(in_group).collect();
    assert_eq!(latest, [vec![ids[1].clone()], vec![ids[2].clone()]]);
    let v = env.json(&["snapshots", "--latest", "2"]);
    assert_eq!(v.as_array().unwrap().len(), 2, "per host and paths without --group-by");
}

/// A source tree for `find`: names in both cases, two old files, a directory.
fn find_fixture(env: &Env) -> (PathBuf, Vec<String>) {
    let src = env.mkdir("src");
    fs::create_dir(src.join("Docs")).unwrap();
    fs::write(src.join("Docs/Report.TXT"), b"report").unwrap();
    fs::write(src.join("notes.txt"), b"notes").unwrap();
    fs::write(src.join("old.txt"), b"old").unwrap();
    set_mtime(&src.join("old.txt"), odd_time(1_000_000_000, 0)); // 2001-09-09
    set_mtime(&src.join("notes.txt"), odd_time(1_500_000_000, 0)); // 2017-07-14
    env.backup(&[&src], &[]);
    fs::write(src.join("later.txt"), b"later").unwrap();
    env.backup(&[&src], &[]);
    (src, snapshot_ids(env))
}

/// The `(short snapshot ID, path)` of each text line of `find`.
fn hits(out: &str) -> Vec<(String, String)> {
    out.lines().map(|l| l.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())).unwrap()).collect()
}

#[test]
fn find_ignore_case_time_bounds_repeated_snapshots_and_long() {
    let env = Env::new();
    let (src, ids) = find_fixture(&env);
    let s = src.to_str().unwrap();
    let (first, second) = (ids[0][..8].to_string(), ids[1][..8].to_string());
    let report = format!("{s}/Docs/Report.TXT");
    // Case matters unless --ignore-case.
    assert_eq!(env.run(&["find", "*.txt", "--snapshot", &first]).ok().text().lines().count(), 2);
    let out = env.run(&["find", "-i", "report.txt", "--snapshot", &first]).ok().text();
    assert_eq!(hits(&out), [(first.clone(), report.clone())]);
    let out = env.run(&["find", "--ignore-case", &format!("{s}/docs/*")]).ok().text();
    assert_eq!(hits(&out), [(first.clone(), report.clone()), (second.clone(), report.clone())]);
    // --oldest/--newest bound the mtime (restic's meaning).
    let out = env.run(&["find", "*.txt", "--snapshot", &first, "--newest", "2010-01-01"]).ok().text();
    assert_eq!(hits(&out), [(first.clone(), format!("{s}/old.txt"))]);
    let out = env
        .run(&["find", "*.txt", "--snapshot", &first, "--oldest", "2010-01-01", "--newest", "2020-01-01"])
        .ok()
        .text();
    assert_eq!(hits(&out), [(first.clone(), format!("{s}/notes.txt"))]);
    // --snapshot repeats; several patterns match any.
    let out = env.run(&["find", "later.txt", "old.txt", "--snapshot", &first, "--snapshot", &second]).ok().text();
    let want = [
        (first.clone(), format!("{s}/old.txt")),
        (second.clone(), format!("{s}/later.txt")),
        (second.clone(), format!("{s}/old.txt")),
    ];
    assert_eq!(hits(&out), want);
    // Without --long only paths; with it, as `ls -l`.
    let out = env.run(&["find", "old.txt", "--snapshot", &first, "--long"]).ok().text();
    let line = out.lines().next().unwrap();
    assert!(line.starts_with(&format!("{first} -rw-r--r-- ")), "{line}");
    assert!(line.ends_with(&format!(" 3 2001-09-09 01:46:40 {s}/old.txt")), "{line}");
}

#[test]
fn find_by_blob_tree_and_pack_id_prefix() {
    use arca::format::tree::NodeKind;
    let env = Env::new();
    let (src, ids) = find_fixture(&env);
    let s = src.to_str().unwrap();
    let NodeKind::File { content, .. } = latest_node(&env, &src.join("notes.txt")).kind else { panic!() };
    let blob = content[0].id.to_hex();
    let docs = latest_node(&env, &src.join("Docs")).subtree().unwrap().to_hex();
    let first = ids[0][..8].to_string();
    let second = ids[1][..8].to_string();
    // A blob: the files holding it, in each snapshot, the ID named at the end of the line.
    let out = env.run(&["find", "--blob", &blob[..10]]).ok().text();
    let want: Vec<String> =
        [&first, &second].iter().map(|id| format!("{id} {s}/notes.txt  (blob {})", &blob[..8])).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), want);
    let v = env.json(&["find", "--blob", &blob.to_uppercase()[..12]]);
    assert_eq!(v[0]["object_type"], "blob");
    assert_eq!(v[0]["id"], blob.as_str());
    assert_eq!(v[0]["path"], format!("{s}/notes.txt"));
    // A tree: the directory it lists.
    let out = env.run(&["find", "--tree", &docs[..12], "--snapshot", &first]).ok().text();
    assert_eq!(out.trim(), format!("{first} {s}/Docs  (tree {})", &docs[..8]));
    // A pack: every entry with a blob in it. Data and trees go to packs of their own: the data
    // pack holds the three files' contents, the tree pack every directory, the root's too.
    let index = env.open().load_index().unwrap();
    let pack_of = |t, id| index.lookup(t, id).unwrap().pack.to_hex();
    let data_pack = pack_of(arca::format::blob::BlobType::Data, &content[0].id);
    let out = env.run(&["find", "--pack", &data_pack[..8], "--snapshot", &first]).ok().text();
    let paths = |out: &str| -> Vec<String> {
        hits(out).into_iter().map(|(_, p)| p.split("  (").next().unwrap().to_string()).collect()
    };
    assert_eq!(paths(&out), ["Docs/Report.TXT", "notes.txt", "old.txt"].map(|f| format!("{s}/{f}")));
    let tree_pack = pack_of(arca::format::blob::BlobType::Tree, &Id::from_hex(&docs).unwrap());
    let out = env.run(&["find", "--pack", &tree_pack[..8], "--snapshot", &first]).ok().text();
    let found = paths(&out);
    assert_eq!(found.first().map(String::as_str), Some("/"), "{out}");
    assert!(found.contains(&s.to_string()) && found.contains(&format!("{s}/Docs")), "{out}");
    assert!(out.lines().all(|l| l.contains("  (tree ")), "{out}");
    // Not hex: a usage error.
    let out = env.run(&["find", "--blob", "xyz"]).code(2);
    assert!(out.stderr.contains("\"xyz\" is not an ID"), "{}", out.stderr);
}

#[test]
fn diff_summary_counts_and_metadata_only_with_the_flag() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let src = env.mkdir("src");
    fs::create_dir_all(src.join("dir")).unwrap();
    fs::create_dir_all(src.join("old")).unwrap();
    fs::write(src.join("a.txt"), b"one").unwrap();
    fs::write(src.join("b.txt"), b"bee").unwrap();
    fs::write(src.join("dir/c.txt"), b"c").unwrap();
    fs::write(src.join("old/x.txt"), b"x").unwrap();
    env.backup(&[&src], &[]);
    fs::write(src.join("a.txt"), b"two!").unwrap();
    fs::remove_file(src.join("b.txt")).unwrap();
    fs::write(src.join("d.txt"), b"dee").unwrap();
    std::os::unix::fs::symlink("d.txt", src.join("link")).unwrap();
    fs::set_permissions(src.join("dir/c.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_dir_all(src.join("old")).unwrap();
    env.backup(&[&src], &[]);
    let s = src.to_str().unwrap();
    let out = env.run(&["diff", "latest~1", "latest"]).ok().text();
    // Trees on the way down to src (the root's and one per component) changed, and dir's.
    let path_trees = src.components().count() as u64;
    let summary = format!(
        "\nFiles:          1 new,     2 removed,     1 changed\n\
         Dirs:           0 new,     1 removed\n\
         Others:         1 new,     0 removed\n\
         Data Blobs:     2 new,     3 removed\n\
         Tree Blobs: {:>5} new, {:>5} removed\n  Added:   7 B\n  Removed: 7 B\n",
        path_trees + 1,
        path_trees + 2
    );
    let changes = [
        format!("M    {s}/a.txt"),
        format!("-    {s}/b.txt"),
        format!("+    {s}/d.txt"),
        format!("+    {s}/link"),
        format!("-    {s}/old"),
        format!("-    {s}/old/x.txt"),
    ];
    assert_eq!(out, format!("{}\n{summary}", changes.join("\n")));
    // --metadata adds the `U` lines (the mode of dir/c.txt; src's own mtime changed too).
    let out = env.run(&["diff", "--metadata", "latest~1", "latest"]).ok().text();
    assert!(out.lines().any(|l| l == format!("U    {s}/dir/c.txt")), "{out}");
    assert!(out.ends_with(&summary), "the counts do not depend on --metadata:\n{out}");
    // JSON: restic's change and statistics messages, as one array.
    let v = env.json(&["diff", "latest~1", "latest"]);
    let all = v.as_array().unwrap();
    assert_eq!(all.len(), changes.len() + 1);
    assert_eq!(all[0]["message_type"], "change");
    assert_eq!(all[0]["modifier"], "M");
    let st = all.last().unwrap();
    assert_eq!(st["message_type"], "statistics");
    assert_eq!(st["changed_files"], 1);
    let side =
        |v: &serde_json::Value| ["files", "dirs", "others", "data_blobs", "bytes"].map(|k| v[k].as_u64().unwrap());
    assert_eq!(side(&st["added"]), [1, 0, 1, 2, 7]);
    assert_eq!(side(&st["removed"]), [2, 1, 0, 3, 7]);
}

#[test]
fn ls_takes_snap_dir_and_shows_modes_as_ls_does() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let src = env.mkdir("src");
    fs::create_dir(src.join("d")).unwrap();
    fs::create_dir(src.join("t")).unwrap();
    fs::write(src.join("d/f"), b"f").unwrap();
    fs::write(src.join("d/suid"), b"s").unwrap();
    std::os::unix::fs::symlink("f", src.join("d/l")).unwrap();
    let mode = |p: &str, m: u32| fs::set_permissions(src.join(p), fs::Permissions::from_mode(m)).unwrap();
    mode("d", 0o755);
    mode("d/f", 0o644);
    mode("d/suid", 0o4754);
    mode("t", 0o1777);
    env.backup(&[&src], &[]);
    let s = src.to_str().unwrap();
    let restic_form = env.run(&["ls", "-l", "latest", &format!("{s}/d")]).ok().text();
    let arca_form = env.run(&["ls", "-l", &format!("latest:{s}/d")]).ok().text();
    assert_eq!(restic_form, arca_form);
    let modes: Vec<(&str, &str)> =
        restic_form.lines().map(|l| (l.split(' ').next().unwrap(), l.rsplit('/').next().unwrap())).collect();
    assert_eq!(modes, [("-rw-r--r--", "f"), ("lrwxrwxrwx", "l -> f"), ("-rwsr-xr--", "suid")]);
    let top = env.run(&["ls", "-l", "--no-recursive", "latest", s]).ok().text();
    let dirs: Vec<&str> = top.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(dirs, ["drwxr-xr-x", "drwxrwxrwt"], "{top}");
    // Several directories, as restic takes them.
    let two = env.run(&["ls", "latest", &format!("{s}/d"), &format!("{s}/t")]).ok().text();
    assert_eq!(two.lines().count(), 3);
    env.run(&["ls", &format!("latest:{s}"), "d"]).code(2);
}
