//! The command line: exit codes, password sources, locks, inspection and browsing commands.

use crate::common::*;
use arca::backend::FileType;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn ids(v: &Value) -> BTreeSet<String> {
    v.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

/// `src` with a few files, a subdirectory and a symlink.
fn small_tree(env: &Env, name: &str) -> PathBuf {
    let src = env.mkdir(name);
    fs::create_dir_all(src.join("sub/deep")).unwrap();
    fs::write(src.join("a.txt"), b"alpha").unwrap();
    fs::write(src.join("c.md"), b"# title").unwrap();
    fs::write(src.join("sub/b.txt"), b"bravo").unwrap();
    fs::write(src.join("sub/deep/d.bin"), random_bytes(1, 1000)).unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    fs::set_permissions(src.join("c.md"), fs::Permissions::from_mode(0o600)).unwrap();
    src
}

// ---- exit codes and passwords ---------------------------------------------------------------

#[test]
fn without_a_repository_argument_the_error_says_how_to_give_one() {
    let out = Out::from(arca_cmd().env("ARCA_PASSWORD", PASSWORD).args(["snapshots"]).output().unwrap()).code(2);
    assert!(out.stderr.contains("-r DIR") || out.stderr.contains("ARCA_REPOSITORY"), "{}", out.stderr);
    // Bad usage is reported by the argument parser, not as success.
    assert_ne!(Out::from(arca_cmd().args(["frobnicate"]).output().unwrap()).code, 0);
}

#[test]
fn init_reports_the_new_repository() {
    let env = Env::bare();
    let v = env.json(&["init", "--kdf-memory", "8", "--kdf-iterations", "1"]);
    assert_eq!(v["id"].as_str().unwrap().len(), 64);
    assert_eq!(v["key"].as_str().unwrap(), repo_files(&env.repo, FileType::Key)[0]);
    assert_eq!(v["id"].as_str().unwrap(), arca::id::hex(env.open().repo_id()));
    // A second init fails and changes nothing.
    let config = fs::read(env.repo.join("config")).unwrap();
    env.run(&["init", "--kdf-memory", "8", "--kdf-iterations", "1"]).code(2);
    assert_eq!(fs::read(env.repo.join("config")).unwrap(), config);
    assert_eq!(repo_files(&env.repo, FileType::Key).len(), 1);
}

#[test]
fn password_sources_and_the_repo_flag() {
    let env = Env::new();
    let pw_file = env.path("pw");
    fs::write(&pw_file, format!("{PASSWORD}\nignored second line\n")).unwrap();
    let repo = env.repo.to_str().unwrap();
    let run = |args: &[&str]| Out::from(arca_cmd().args(args).output().unwrap());
    run(&["-r", repo, "--password-file", pw_file.to_str().unwrap(), "snapshots"]).ok();
    run(&["-r", repo, "--password-command", &format!("echo '{PASSWORD}'"), "snapshots"]).ok();
    run(&["-r", repo, "--password-command", "echo wrong", "snapshots"]).code(12);
    run(&["-r", repo, "--password-command", "exit 3", "snapshots"]).code(1);
    run(&["-r", repo, "--password-file", env.path("missing").to_str().unwrap(), "snapshots"]).code(1);
    // The environment variable is the fallback; a file given explicitly wins over it.
    Out::from(
        env.cmd()
            .env("ARCA_PASSWORD", "wrong")
            .args(["--password-file", pw_file.to_str().unwrap(), "snapshots"])
            .output()
            .unwrap(),
    )
    .ok();
}

/// format-spec/07-key-file.md §7.2 "Passwords as bytes": from a file, the first line without its
/// `\n` or `\r\n`, nothing else trimmed; from the environment, the bytes verbatim.
#[test]
fn password_bytes_from_files_and_the_environment() {
    let env = Env::new();
    let pw_file = env.path("pw");
    let with_file = |contents: &str| {
        fs::write(&pw_file, contents).unwrap();
        let mut c = env.cmd();
        c.env_remove("ARCA_PASSWORD").args(["--password-file", pw_file.to_str().unwrap(), "snapshots"]);
        Out::from(c.output().unwrap())
    };
    with_file(PASSWORD).ok();
    with_file(&format!("{PASSWORD}\r\nsecond line")).ok();
    with_file(&format!("{PASSWORD}\r\r\n")).code(12);
    with_file(&format!("{PASSWORD} \n")).code(12);
    with_file(&format!(" {PASSWORD}\n")).code(12);
    let with_var = |value: &str| Out::from(env.cmd().env("ARCA_PASSWORD", value).arg("snapshots").output().unwrap());
    with_var(PASSWORD).ok();
    with_var(&format!("{PASSWORD}\n")).code(12);
}

#[test]
fn a_held_lock_gives_exit_code_11_until_released() {
    let env = Env::new();
    let src = small_tree(&env, "src");
    let repo = env.open();
    let guard = repo.lock(true).unwrap();
    let out = env.run(&["backup", "--retry-lock", "0", src.to_str().unwrap()]).code(11);
    assert!(out.stderr.contains("locked"), "{}", out.stderr);
    env.run(&["check", "--retry-lock", "0"]).code(11);
    // Read-only browsing takes no lock.
    env.run(&["snapshots"]).ok();
    assert!(repo_files(&env.repo, FileType::Snapshot).is_empty());
    drop(guard);
    assert!(repo_files(&env.repo, FileType::Lock).is_empty(), "the lock file is removed on release");
    env.backup(&[&src], &[]);
    // A shared lock does not block a backup (which takes a shared lock too).
    let guard = repo.lock(false).unwrap();
    env.backup(&[&src], &[]);
    // But it blocks an exclusive one.
    assert!(matches!(env.open().lock(true), Err(arca::Error::Locked(_))));
    drop(guard);
    assert!(repo_files(&env.repo, FileType::Lock).is_empty());
}

// ---- inspection -----------------------------------------------------------------------------

#[test]
fn repoinfo_and_cat() {
    let env = Env::new();
    let src = small_tree(&env, "src");
    env.backup(&[&src], &["--tag", "t1"]);
    let info = env.info();
    let packs = repo_files(&env.repo, FileType::Pack);
    assert_eq!(n(&info["packs"]), packs.len() as u64);
    let on_disk: u64 = packs.iter().map(|p| fs::metadata(repo_file(&env.repo, FileType::Pack, p)).unwrap().len()).sum();
    assert_eq!(n(&info["pack_bytes"]), on_disk);
    assert_eq!((n(&info["snapshots"]), n(&info["keys"])), (1, 1));
    // 4 files with distinct content; trees: src, sub, deep and the directories above src.
    assert_eq!(n(&info["data_blobs"]), 4);
    assert!(n(&info["tree_blobs"]) >= 3);
    assert_eq!(n(&info["data_plain_bytes"]), 5 + 7 + 5 + 1000);
    assert_eq!(info["config"]["version"], 1);

    let config = env.json(&["cat", "config"]);
    assert_eq!(config["version"], 1);
    assert_eq!(config["pack_target_size"], 16 << 20);
    let snap = env.json(&["cat", "snapshot", "latest"]);
    assert_eq!(snap["paths"][0], src.to_str().unwrap());
    assert_eq!(snap["tags"][0], "t1");
    let key = env.json(&["cat", "key", &repo_files(&env.repo, FileType::Key)[0][..6]]);
    assert_eq!(key["current"], true);
    assert_eq!(key["kdf"]["memory_kib"], 8192);
    let index_name = repo_files(&env.repo, FileType::Index).remove(0);
    let index = env.json(&["cat", "index", &index_name[..8]]);
    assert_eq!(index["packs"].as_array().unwrap().len(), packs.len());
    let pack = env.json(&["cat", "pack", &packs[0]]);
    assert_eq!(n(&pack["size"]), fs::metadata(repo_file(&env.repo, FileType::Pack, &packs[0])).unwrap().len());
    // Every blob listed in the pack's TOC is in the index at the same offset.
    let listed: Vec<&Value> =
        index["packs"].as_array().unwrap().iter().find(|p| p["pack"] == packs[0].as_str()).unwrap()["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .collect();
    for b in pack["blobs"].as_array().unwrap() {
        assert!(
            listed
                .iter()
                .any(|l| l["id"] == b["id"] && l["offset"] == b["offset"] && l["stored_len"] == b["stored_len"]),
            "{b}"
        );
    }
    // A tree blob prints as JSON, a data blob raw.
    let tree = env.json(&["cat", "blob", snap["tree"].as_str().unwrap()]);
    assert!(tree["nodes"].is_array());
    let repo = env.open();
    let id = repo.keys().blob_id(b"alpha");
    assert_eq!(env.run(&["cat", "blob", &id.to_hex()]).ok().stdout, b"alpha");
    // Unknown or ambiguous prefixes fail.
    assert_eq!(env.run(&["cat", "snapshot", "zzzz"]).code, 1);
    assert_eq!(env.run(&["cat", "index"]).code, 2, "an object without its ID is a usage error");
}

#[test]
fn a_dry_run_writes_nothing() {
    let env = Env::new();
    let src = small_tree(&env, "src");
    let before: Vec<_> =
        [FileType::Pack, FileType::Index, FileType::Snapshot].iter().map(|t| repo_files(&env.repo, *t)).collect();
    let v = env.backup(&[&src], &["--dry-run"]);
    assert_eq!(v["snapshot"], Value::Null);
    assert_eq!(v["dry_run"], true);
    assert_eq!(n(&v["summary"]["files_new"]), 4);
    assert!(n(&v["summary"]["bytes_added"]) >= 1017);
    let after: Vec<_> =
        [FileType::Pack, FileType::Index, FileType::Snapshot].iter().map(|t| repo_files(&env.repo, *t)).collect();
    assert_eq!(before, after);
}

// ---- browsing -------------------------------------------------------------------------------

#[test]
fn snapshots_are_filtered_by_host_tag_and_path() {
    let env = Env::new();
    let (s1, s2) = (small_tree(&env, "one"), small_tree(&env, "two"));
    let a = env.backup(&[&s1], &["--host", "alpha", "--tag", "daily"])["snapshot"].as_str().unwrap().to_string();
    let b = env.backup(&[&s2], &["--host", "beta", "--tag", "weekly", "--tag", "daily", "--tag", "daily"])["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let c = env.backup(&[&s1], &["--host", "beta"])["snapshot"].as_str().unwrap().to_string();
    let q = |args: &[&str]| {
        let mut a = vec!["snapshots"];
        a.extend_from_slice(args);
        env.json(&a)
    };
    let set = |v: &[&String]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(ids(&q(&[])), set(&[&a, &b, &c]));
    assert_eq!(ids(&q(&["--host", "alpha"])), set(&[&a]));
    assert_eq!(ids(&q(&["--host", "beta"])), set(&[&b, &c]));
    assert_eq!(ids(&q(&["--tag", "daily"])), set(&[&a, &b]));
    // restic's semantics: `a,b` needs both tags, a repeated --tag means either.
    assert_eq!(ids(&q(&["--tag", "daily,weekly"])), set(&[&b]));
    assert_eq!(ids(&q(&["--tag", "daily", "--tag", "weekly"])), set(&[&a, &b]));
    assert_eq!(ids(&q(&["--tag", ""])), set(&[&c]));
    assert_eq!(ids(&q(&["--tag", "monthly"])), set(&[]));
    assert_eq!(ids(&q(&["--path", s1.to_str().unwrap()])), set(&[&a, &c]));
    assert_eq!(ids(&q(&["--host", "beta", "--path", s2.to_str().unwrap()])), set(&[&b]));
    let all = q(&[]);
    let sb = all.as_array().unwrap().iter().find(|s| s["id"] == b.as_str()).unwrap();
    assert_eq!(sb["tags"], serde_json::json!(["daily", "weekly"]));
    assert_eq!(sb["hostname"], "beta");
    // Oldest first; the parent is only taken from the same host and paths.
    assert_eq!(all[0]["id"], a.as_str());
    assert_eq!(all[2]["parent"], Value::Null);
    let text = env.run(&["snapshots", "--host", "alpha"]).ok().text();
    assert!(text.contains(&a[..8]) && !text.contains(&b[..8]) && text.contains("1 snapshot\n"), "{text}");
}

#[test]
fn ls_lists_entries_with_types_and_sizes() {
    let env = Env::new();
    let src = small_tree(&env, "src");
    env.backup(&[&src], &[]);
    let s = src.to_str().unwrap();
    let v = env.json(&["ls", &sref("latest", &src)]);
    let entries: Vec<(String, String, u64)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap().to_string(), e["type"].as_str().unwrap().to_string(), n(&e["size"])))
        .collect();
    let want: Vec<(String, String, u64)> = [
        ("a.txt", "file", 5),
        ("c.md", "file", 7),
        ("link", "symlink", 0),
        ("sub", "dir", 0),
        ("sub/b.txt", "file", 5),
        ("sub/deep", "dir", 0),
        ("sub/deep/d.bin", "file", 1000),
    ]
    .iter()
    .map(|(p, t, z)| (format!("{s}/{p}"), t.to_string(), *z))
    .collect();
    assert_eq!(entries, want);
    let c = v.as_array().unwrap().iter().find(|e| e["name"] == "c.md").unwrap();
    assert_eq!(c["mode"], 0o600);
    let link = v.as_array().unwrap().iter().find(|e| e["name"] == "link").unwrap();
    assert_eq!(link["link_target"], "a.txt");

    let top = env.json(&["ls", &sref("latest", &src), "--no-recursive"]);
    assert_eq!(top.as_array().unwrap().len(), 4);
    let one = env.json(&["ls", &sref("latest", &src.join("sub/b.txt"))]);
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(one[0]["path"], format!("{s}/sub/b.txt"));
    let long = env.run(&["ls", "-l", &sref("latest", &src)]).ok().text();
    assert!(long.lines().any(|l| l.starts_with('l') && l.ends_with(&format!("{s}/link -> a.txt"))), "{long}");
    assert!(long.lines().any(|l| l.starts_with("-rw------- ") && l.ends_with("c.md")), "{long}");
    // The root of a snapshot lists the absolute path's components.
    let root = env.json(&["ls", "latest", "--no-recursive"]);
    assert_eq!(root.as_array().unwrap().len(), 1);
    assert_eq!(env.run(&["ls", &sref("latest", &src.join("nope"))]).code, 1);
    assert_eq!(env.run(&["ls", "deadbeef"]).code, 1);
}

#[test]
fn find_matches_names_and_paths_across_snapshots() {
    let env = Env::new();
    let src = small_tree(&env, "src");
    let first = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    fs::write(src.join("sub/new.txt"), b"new").unwrap();
    let second = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();

    let hits = env.json(&["find", "*.txt"]);
    let got: BTreeSet<(String, String)> = hits
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["snapshot"].as_str().unwrap()[..8].to_string(), h["path"].as_str().unwrap().to_string()))
        .collect();
    let s = src.to_str().unwrap();
    let want: BTreeSet<(String, String)> = [
        (&first, "a.txt"),
        (&first, "sub/b.txt"),
        (&second, "a.txt"),
        (&second, "sub/b.txt"),
        (&second, "sub/new.txt"),
    ]
    .iter()
    .map(|(id, p)| (id[..8].to_string(), format!("{s}/{p}")))
    .collect();
    assert_eq!(got, want);
    let only = env.json(&["find", "new.txt", "--snapshot", &first]);
    assert!(only.as_array().unwrap().is_empty());
    let by_path = env.json(&["find", &format!("{s}/sub/*")]);
    assert_eq!(by_path.as_array().unwrap().len(), 2 + 3); // b.txt, deep; b.txt, deep, new.txt
    let text = env.run(&["find", "d.bin"]).ok().text();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains(&format!("{s}/sub/deep/d.bin")));
}

#[test]
fn diff_marks_added_removed_modified_and_metadata_changes() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::create_dir_all(src.join("dir")).unwrap();
    fs::create_dir_all(src.join("old")).unwrap();
    fs::write(src.join("a.txt"), b"one").unwrap();
    fs::write(src.join("b.txt"), b"bee").unwrap();
    fs::write(src.join("dir/c.txt"), b"c").unwrap();
    fs::write(src.join("dir/same.txt"), b"same").unwrap();
    fs::write(src.join("old/x.txt"), b"x").unwrap();
    let s1 = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    fs::write(src.join("a.txt"), b"two!").unwrap();
    fs::remove_file(src.join("b.txt")).unwrap();
    fs::write(src.join("d.txt"), b"dee").unwrap();
    fs::set_permissions(src.join("dir/c.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_dir_all(src.join("old")).unwrap();
    fs::create_dir(src.join("new")).unwrap();
    fs::write(src.join("new/f.txt"), b"f").unwrap();
    let s2 = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();

    let s = src.to_str().unwrap();
    let text = env.run(&["diff", "--metadata", &s1[..8], &s2[..8]]).ok().text();
    let lines: BTreeSet<&str> = text.lines().collect();
    for want in [
        format!("M    {s}/a.txt"),
        format!("-    {s}/b.txt"),
        format!("+    {s}/d.txt"),
        format!("U    {s}/dir/c.txt"),
        format!("-    {s}/old"),
        format!("-    {s}/old/x.txt"),
        format!("+    {s}/new"),
        format!("+    {s}/new/f.txt"),
    ] {
        assert!(lines.contains(want.as_str()), "missing {want:?} in:\n{text}");
    }
    assert!(!text.contains("same.txt"), "{text}");
    let v = env.json(&["diff", "--metadata", &s1, &s2]);
    let changes: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["message_type"] == "change")
        .map(|c| (c["change"].as_str().unwrap().to_string(), c["path"].as_str().unwrap().to_string()))
        .collect();
    assert!(changes.contains(&("modified".into(), format!("{s}/a.txt"))), "{changes:?}");
    assert!(changes.contains(&("metadata".into(), format!("{s}/dir/c.txt"))), "{changes:?}");
    // A snapshot compared with itself has no differences; reversed, + and - swap.
    let same = env.json(&["diff", &s1, &s1]);
    assert_eq!(same.as_array().unwrap().len(), 1, "only the statistics: {same}");
    assert_eq!(same[0]["message_type"], "statistics");
    let rev = env.run(&["diff", &s2, &s1]).ok().text();
    assert!(rev.lines().any(|l| l == format!("+    {s}/b.txt")), "{rev}");
    assert!(rev.lines().any(|l| l == format!("-    {s}/new/f.txt")), "{rev}");
}

#[test]
fn dump_writes_files_raw_and_directories_as_tar() {
    let env = Env::new();
    let src = small_tree(&env, "src");
    fifo_and_empty(&src);
    env.backup(&[&src], &[]);
    assert_eq!(env.run(&["dump", &sref("latest", &src.join("sub/b.txt"))]).ok().stdout, b"bravo");
    let out = env.run(&["dump", &sref("latest", &src)]).code(2);
    assert!(out.stderr.contains("--archive"), "{}", out.stderr);

    let tar_bytes = env.run(&["dump", &sref("latest", &src), "--archive", "tar"]).ok().stdout;
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut seen: Vec<Vec<u8>> = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let mut path = e.path_bytes().into_owned();
        if path.ends_with(b"/") {
            path.pop();
        }
        let kind = e.header().entry_type();
        let mode = e.header().mode().unwrap();
        let mut body = Vec::new();
        e.read_to_end(&mut body).unwrap();
        match &path[..] {
            b"src/a.txt" => assert_eq!(body, b"alpha"),
            b"src/sub/deep/d.bin" => assert_eq!(body, random_bytes(1, 1000)),
            b"src/c.md" => assert_eq!(mode & 0o777, 0o600),
            b"src/caf\xe9" => assert_eq!(body, b"latin-1 name"),
            b"src/link" => {
                assert_eq!(kind, tar::EntryType::Symlink);
                assert_eq!(e.link_name().unwrap().unwrap(), Path::new("a.txt"));
            }
            b"src/odd-link" => {
                assert_eq!(kind, tar::EntryType::Symlink);
                assert_eq!(&e.link_name_bytes().unwrap()[..], b"tar\xe9get", "non-UTF-8 link target kept verbatim");
            }
            b"src/pipe" => assert_eq!(kind, tar::EntryType::Fifo),
            b"src/sub" | b"src/empty" => assert_eq!(kind, tar::EntryType::Directory),
            _ => {}
        }
        seen.push(path);
    }
    let want: Vec<&[u8]> = vec![
        b"src",
        b"src/a.txt",
        b"src/c.md",
        b"src/caf\xe9",
        b"src/empty",
        b"src/link",
        b"src/odd-link",
        b"src/pipe",
        b"src/sub",
        b"src/sub/b.txt",
        b"src/sub/deep",
        b"src/sub/deep/d.bin",
        b"src/zero",
    ];
    let got: BTreeSet<&[u8]> = seen.iter().map(Vec::as_slice).collect();
    let show =
        |v: &mut dyn Iterator<Item = &[u8]>| v.map(|p| String::from_utf8_lossy(p).into_owned()).collect::<Vec<_>>();
    assert_eq!(got, want.iter().copied().collect::<BTreeSet<_>>(), "{:?}", show(&mut got.iter().copied()));
    assert_eq!(seen.len(), want.len(), "no duplicates: {:?}", show(&mut seen.iter().map(Vec::as_slice)));

    // A single file as tar.
    let one = env.run(&["dump", &sref("latest", &src.join("a.txt")), "--archive", "tar"]).ok().stdout;
    let mut archive = tar::Archive::new(&one[..]);
    let names: Vec<String> =
        archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, vec!["a.txt"]);
}

/// A FIFO, an empty directory and file, and a name and a link target that are not UTF-8.
fn fifo_and_empty(src: &Path) {
    use std::os::unix::ffi::OsStrExt;
    mkfifo(&src.join("pipe"));
    fs::create_dir(src.join("empty")).unwrap();
    fs::write(src.join("zero"), b"").unwrap();
    fs::write(src.join(std::ffi::OsStr::from_bytes(b"caf\xe9")), b"latin-1 name").unwrap();
    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(b"tar\xe9get"), src.join("odd-link")).unwrap();
}
