//! Issue 6, browsing and selection: hostile-but-valid trees (deep chains, tree bombs) against
//! ls/find/dump/diff/check, escaped names in text output, `latest` next to a damaged snapshot,
//! --host/--tag/--path selection, and the small output fixes (snapshot size, -q, tags, JSON
//! errors, check's read figures, ARCA_PASSWORD in --help).

use crate::common::*;
use arca::backend::FileType;
use arca::format::blob::BlobType;
use arca::format::snapshot::{Snapshot, Summary};
use arca::format::tree::{Node, NodeKind, Tree};
use arca::repo::index::Index;
use arca::repo::packer::Packer;
use arca::repo::Repository;
use arca::Id;
use serde_json::Value;
use std::fs;

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

// ---- hostile trees, written through the library ---------------------------------------------

/// Encrypt, pack and index tree blobs built bottom-up by `build`, then save a snapshot whose root
/// is the last tree `build` returns. Returns the snapshot ID.
pub(crate) fn hostile_snapshot(repo: &Repository, build: impl FnOnce(&mut dyn FnMut(Tree) -> Id) -> Id) -> Id {
    let index = Index::default();
    let packer = Packer::new(repo);
    let root = build(&mut |tree: Tree| {
        let plain = tree.encode();
        let id = repo.keys().blob_id(&plain);
        packer.store(&index, BlobType::Tree, &id, &plain).unwrap();
        id
    });
    packer.finish().unwrap();
    let snap = Snapshot {
        time: 1_700_000_000_000_000_000,
        tree: root,
        paths: vec![b"/".to_vec()],
        hostname: "evil".into(),
        username: "mallory".into(),
        uid: 0,
        gid: 0,
        tags: vec![],
        parent: None,
        program: "test".into(),
        summary: Summary::default(),
        original: None,
    };
    repo.save_snapshot(&snap).unwrap()
}

/// A tree of one symlink named `leaf`.
pub(crate) fn symlink_leaf() -> Tree {
    let mut n = Node::bare_dir(b"leaf", Id([0; 32]));
    n.kind = NodeKind::Symlink { target: b"x".to_vec() };
    Tree { nodes: vec![n] }
}

/// `depth` directories named `d`, each holding the next; the last holds a symlink `leaf`.
fn chain(repo: &Repository, depth: usize) -> Id {
    hostile_snapshot(repo, |store| {
        let mut id = store(symlink_leaf());
        for _ in 0..depth {
            id = store(Tree { nodes: vec![Node::bare_dir(b"d", id)] });
        }
        id
    })
}

/// `levels` trees each naming the next twice (`a` and `b`): 2^levels paths in a few KB.
fn bomb(repo: &Repository, levels: usize) -> Id {
    hostile_snapshot(repo, |store| {
        let mut id = store(symlink_leaf());
        for _ in 0..levels {
            id = store(Tree { nodes: vec![Node::bare_dir(b"a", id), Node::bare_dir(b"b", id)] });
        }
        id
    })
}

/// ls, find, dump and check refuse the snapshot with exit 4 and say why; a listing of the root's
/// own entries (one tree) shows them.
fn assert_refused_everywhere(env: &Env, snap: &Id, why: &str, root_entries: usize) {
    let hex = snap.to_hex();
    for args in [
        vec!["ls", "latest"],
        vec!["find", "leaf"],
        vec!["find", "leaf", "--snapshot", &hex],
        vec!["dump", "latest:/", "--archive", "tar"],
        vec!["diff", &hex, "latest"],
    ] {
        let out = env.run(&args).code(4);
        assert!(out.stderr.contains(why), "{args:?}: {}", out.stderr);
    }
    // One directory's own entries are one tree: listed, nothing expanded (format-spec 19.1).
    let out = env.run(&["ls", "latest", "--no-recursive"]).ok().text();
    assert_eq!(out.lines().count(), root_entries, "{out}");
    let out = env.run(&["check"]).code(4);
    assert!(out.text().contains(&format!("snapshot {hex}")) && out.text().contains(why), "{}", out.all());
    let report = env.run(&["--json", "check"]).code(4).json();
    assert!(report["errors"].to_string().contains(&hex), "{report}");
}

#[test]
fn a_chain_10000_directories_deep_is_refused_without_a_crash() {
    let (env, repo) = Env::with_lib_repo();
    let snap = chain(&repo, 10_000);
    assert_refused_everywhere(&env, &snap, "nested deeper than 4096", 1);
    // Listing snapshots still works; the size of this one is unknown.
    env.run(&["snapshots"]).ok();
}

#[test]
fn a_chain_4000_directories_deep_is_within_limits_and_browses() {
    let (env, repo) = Env::with_lib_repo();
    chain(&repo, 4000);
    let deepest = format!("{}/leaf", "/d".repeat(4000));
    let out = env.run(&["ls", "latest"]).ok().text();
    assert_eq!(out.lines().count(), 4001);
    assert_eq!(out.lines().last(), Some(deepest.as_str()));
    let found = env.run(&["find", "leaf"]).ok().text();
    assert!(found.contains(&deepest), "{found}");
    let tar = env.run(&["dump", "latest:/", "--archive", "tar"]).ok().stdout;
    let mut archive = tar::Archive::new(&tar[..]);
    assert_eq!(archive.entries().unwrap().count(), 4002, "the root directory and every entry");
    env.run(&["diff", "latest", "latest"]).ok();
    let out = env.run(&["check"]).ok();
    assert!(out.text().contains("no errors"), "{}", out.text());
}

#[test]
fn a_tree_bomb_is_refused_quickly_and_check_reports_it() {
    let (env, repo) = Env::with_lib_repo();
    let snap = bomb(&repo, 41);
    assert_refused_everywhere(&env, &snap, "expands to more than 4294967296 entries", 2);
}

#[test]
fn a_small_bomb_within_limits_lists_every_path() {
    // Shared subtrees are legitimate: 2^10 paths through 11 distinct trees.
    let (env, repo) = Env::with_lib_repo();
    bomb(&repo, 10);
    let out = env.run(&["ls", "latest"]).ok().text();
    assert_eq!(out.lines().filter(|l| l.ends_with("/leaf")).count(), 1 << 10);
    env.run(&["check"]).ok();
}

// ---- escaped names --------------------------------------------------------------------------

fn no_raw_controls(text: &[u8]) {
    let bad: Vec<u8> = text.iter().copied().filter(|&b| (b < 0x20 && b != b'\n') || b == 0x7f).collect();
    assert!(bad.is_empty(), "raw control bytes {bad:?} in:\n{}", String::from_utf8_lossy(text));
}

#[test]
fn names_with_control_characters_are_escaped_in_text_output_and_exact_in_json() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("plain"), b"x").unwrap();
    env.backup(&[&src], &[]);
    let evil = "a\nb\x1b[2J";
    fs::write(src.join(evil), b"y").unwrap();
    std::os::unix::fs::symlink("t\x1b]0;title\x07", src.join("link")).unwrap();
    env.backup(&[&src], &["--host", "h\x1b[31m"]);
    // `backup --tag` refuses control characters, but a key holder can write any tag.
    let repo = env.open();
    let (id, mut hostile) = repo.find_snapshot("latest").unwrap();
    hostile.tags = vec!["t\x1b[0m".into()];
    repo.save_snapshot(&hostile).unwrap();
    remove_as_writer(&env.repo, FileType::Snapshot, &id.to_hex());
    let escaped = "a\\nb\\x1b[2J";
    for args in
        [vec!["ls", "latest"], vec!["ls", "-l", "latest"], vec!["find", "*b*"], vec!["find", "link"], vec!["snapshots"]]
    {
        let out = env.run(&args).ok();
        no_raw_controls(&out.stdout);
        if args[0] != "snapshots" && args[1] != "link" {
            assert!(out.text().contains(escaped), "{args:?}: {}", out.text());
        }
    }
    let snaps = env.json(&["snapshots"]);
    let (first, second) = (snaps[0]["id"].as_str().unwrap(), snaps[1]["id"].as_str().unwrap());
    let out = env.run(&["diff", first, second]).ok();
    no_raw_controls(&out.stdout);
    assert!(out.text().contains(&format!("+    {}/{escaped}", src.display())), "{}", out.text());
    let text = env.run(&["snapshots"]).ok().text();
    assert!(text.contains("h\\x1b[31m") && text.contains("t\\x1b[0m"), "{text}");
    let long = env.run(&["ls", "-l", "latest"]).ok().text();
    assert!(long.contains("-> t\\x1b]0;title\\x07"), "{long}");
    // JSON keeps the exact name.
    let listing = env.json(&["ls", "latest"]);
    let want = format!("{}/{evil}", src.display());
    assert!(listing.as_array().unwrap().iter().any(|e| e["path"] == want.as_str()), "{listing}");
}

// ---- `latest` and damage --------------------------------------------------------------------

#[test]
fn latest_is_not_resolved_past_a_damaged_newest_snapshot() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("f"), b"old").unwrap();
    let old = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    fs::write(src.join("f"), b"new").unwrap();
    let new = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    flip_byte(&repo_file(&env.repo, FileType::Snapshot, &new), 20);
    let file = sref("latest", &src.join("f"));
    let target = env.path("t");
    for args in [
        vec!["ls", "latest"],
        vec!["dump", &file],
        vec!["diff", &old, "latest"],
        vec!["restore", "latest", "--target", target.to_str().unwrap()],
        vec!["find", "f", "--snapshot", "LATEST"],
    ] {
        let out = env.run(&args).code(4);
        assert!(out.stderr.contains(&new), "{args:?} must name the damaged snapshot: {}", out.stderr);
    }
    assert!(!target.exists(), "nothing restored from another snapshot");
    // Named explicitly, the older snapshot is still usable; find over all reports the damage.
    assert_eq!(env.run(&["dump", &sref(&old[..8], &src.join("f"))]).ok().stdout, b"old");
    let out = env.run(&["find", "f"]).code(4);
    assert!(out.text().contains(&old[..8]) && out.stderr.contains(&new), "{}", out.all());
}

#[test]
fn latest_passes_a_damaged_snapshot_known_older_through_a_parent_link() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("f"), b"old").unwrap();
    let old = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    fs::write(src.join("f"), b"new").unwrap();
    let new = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    let snaps = env.json(&["snapshots"]);
    assert_eq!(snaps[1]["parent"], old.as_str(), "the newer backup names the older as parent");
    flip_byte(&repo_file(&env.repo, FileType::Snapshot, &old), 20);
    assert_eq!(env.run(&["dump", &sref("latest", &src.join("f"))]).ok().stdout, b"new");
    assert!(env.run(&["ls", "latest"]).ok().text().contains("/f"));
    let _ = new;
}

// ---- selection ------------------------------------------------------------------------------

#[test]
fn latest_respects_host_tag_and_path_filters_and_is_case_insensitive() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("f"), b"files").unwrap();
    env.backup(&[&src], &["--tag", "files", "--tag", "daily", "--host", "web"]);
    env.run_stdin(
        &["backup", "--stdin", "--stdin-filename", "db.sql", "--tag", "db", "--host", "db1"],
        b"dump".to_vec(),
    )
    .ok();
    let f = sref("latest", &src.join("f"));
    // The global latest is the dump.
    assert_eq!(env.run(&["dump", "LATEST:db.sql"]).ok().stdout, b"dump");
    env.run(&["dump", &f]).code(1);
    for filter in [
        vec!["--tag", "files"],
        vec!["--tag", "files,daily"],
        vec!["--tag", "nope", "--tag", "daily"],
        vec!["--host", "web"],
        vec!["--path", src.to_str().unwrap()],
    ] {
        let mut args = vec!["dump", f.as_str()];
        args.extend_from_slice(&filter);
        assert_eq!(env.run(&args).ok().stdout, b"files", "{filter:?}");
        let mut args = vec!["ls", "latest"];
        args.extend_from_slice(&filter);
        assert!(env.run(&args).ok().text().contains("/f"), "{filter:?}");
    }
    env.run(&["dump", &f, "--tag", "files,db"]).code(1);
    // restore, diff and find take the same filters.
    let target = env.path("t");
    env.run(&["restore", "latest", "--tag", "files", "--target", target.to_str().unwrap()]).ok();
    assert_eq!(fs::read(under(&target, &src).join("f")).unwrap(), b"files");
    env.run(&["diff", "latest", "latest", "--host", "web"]).ok();
    let found = env.run(&["find", "*", "--tag", "db"]).ok().text();
    assert!(found.contains("db.sql") && !found.contains("/f"), "{found}");
    // An explicit ID outside the filter is refused rather than used.
    let dump_id = env.json(&["snapshots", "--tag", "db"])[0]["id"].as_str().unwrap().to_string();
    let out = env.run(&["ls", &dump_id, "--tag", "files"]).code(1);
    assert!(out.stderr.contains("does not match"), "{}", out.stderr);
}

// ---- small output fixes ---------------------------------------------------------------------

#[test]
fn snapshots_shows_each_snapshots_size_not_the_bytes_read_by_its_run() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("a"), vec![7u8; 3000]).unwrap();
    fs::write(src.join("b"), vec![8u8; 2000]).unwrap();
    env.backup(&[&src], &[]);
    let again = env.backup(&[&src], &[]);
    assert_eq!(n(&again["summary"]["bytes_read"]), 0, "the unchanged re-backup read nothing");
    let snaps = env.json(&["snapshots"]);
    for s in snaps.as_array().unwrap() {
        assert_eq!(n(&s["size"]), 5000, "{s}");
    }
    let text = env.run(&["snapshots"]).ok().text();
    assert_eq!(text.matches("4.88 KiB").count(), 2, "{text}");
    assert!(!text.contains(" 0 B "), "{text}");
}

#[test]
fn quiet_snapshots_prints_only_ids() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("a"), b"a").unwrap();
    let a = env.backup(&[&src], &["--tag", "x"])["snapshot"].as_str().unwrap().to_string();
    let b = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    assert_eq!(env.run(&["-q", "snapshots"]).ok().text(), format!("{a}\n{b}\n"));
    assert_eq!(env.run(&["snapshots", "-q", "--tag", "x"]).ok().text(), format!("{a}\n"));
}

#[test]
fn backup_refuses_tags_with_control_characters() {
    let env = Env::new();
    let src = env.mkdir("src");
    // `--tag a,b` is two tags, as in restic (tests/it/selection.rs); a control character is refused.
    for tag in ["a\nb", "ok,esc\x1b[2J"] {
        let out = env.run(&["backup", "--tag", tag, src.to_str().unwrap()]).code(2);
        assert!(out.stderr.contains("tag"), "{}", out.stderr);
    }
    assert!(repo_files(&env.repo, FileType::Snapshot).is_empty());
}

#[test]
fn errors_are_json_objects_on_stderr_with_json() {
    let env = Env::new();
    let out = env.run(&["--json", "ls", "ffffffff"]).code(1);
    let v: serde_json::Value = serde_json::from_str(out.stderr.trim()).expect("stderr is one JSON object");
    assert_eq!(v["code"], 1);
    assert!(v["error"].as_str().unwrap().contains("ffffffff"), "{v}");
    let bare = Env::bare();
    let out = bare.run(&["--json", "snapshots"]).code(10);
    let v: serde_json::Value = serde_json::from_str(out.stderr.trim()).expect("stderr is one JSON object");
    assert_eq!(v["code"], 10);
    // Without --json the text form stays.
    assert!(env.run(&["ls", "ffffffff"]).code(1).stderr.starts_with("arca: "));
}

#[test]
fn check_says_how_much_data_it_read_and_when_a_subset_selects_no_pack() {
    let env = Env::new();
    let src = env.mkdir("src");
    write_random_file(&src.join("f"), 1, 100_000);
    env.backup(&[&src], &[]);
    let out = env.run(&["check", "--read-data"]).ok().text();
    assert!(out.contains("data of 2 of 2 packs read (") && out.contains("no errors"), "{out}");
    let report = env.json(&["check", "--read-data"]);
    assert!(n(&report["bytes_read"]) > 100_000, "{report}");
    // Subset N/256 takes the packs whose ID starts with byte N-1: pick an N that matches none.
    let firsts: Vec<u8> =
        repo_files(&env.repo, FileType::Pack).iter().map(|p| u8::from_str_radix(&p[..2], 16).unwrap()).collect();
    let empty = (0u8..=255).find(|b| !firsts.contains(b)).unwrap();
    let subset = format!("{}/256", u32::from(empty) + 1);
    let out = env.run(&["check", "--read-data-subset", &subset]).ok();
    assert!(out.stderr.contains("selected none of the 2 packs: no data was read"), "{}", out.stderr);
    assert!(out.text().contains("data of 0 of 2 packs read (0 B)"), "{}", out.text());
}

#[test]
fn help_names_arca_password() {
    let out = Out::from(arca_cmd().arg("--help").output().unwrap()).ok();
    assert!(out.text().contains("ARCA_PASSWORD,") || out.text().contains("ARCA_PASSWORD "), "{}", out.text());
}
