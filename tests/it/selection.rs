//! Backup selection with restic's flags and semantics: a table of restic's documented exclude
//! examples run through real backups (what each snapshot holds, path by path), markers and
//! `--exclude-caches`, `--exclude-larger-than`, the `--files-from` lists, `--one-file-system`
//! at a mount point, `--tag a,b`, `--skip-if-unchanged`, and the same options in a profile.

use crate::common::*;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The entries of snapshot `id` below `base`, relative to it.
fn snapshot_paths(env: &Env, id: &str, base: &Path) -> BTreeSet<String> {
    let prefix = format!("{}/", base.display());
    env.json(&["ls", id])
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["path"].as_str().unwrap().strip_prefix(&prefix).map(String::from))
        .collect()
}

/// A tree with the shapes restic's documentation talks about.
fn fixture(env: &Env) -> PathBuf {
    let src = fs::canonicalize(env.mkdir("src")).unwrap();
    for f in [
        "docs/invoices/2024/a.pdf",
        "docs/invoices-old/b.pdf",
        "docs/readme.txt",
        "foo/x/y/z/bar/f",
        "foo/x/keep",
        "foo/bar",
        "foo/keep",
        "work/main.go",
        "work/main.c",
        "work/notes.txt",
        "work/foobar",
        "bin/bash",
        "bin/ash",
        "repos/repo1/target/t",
        "repos/repo1/src/s",
        "repos/repo2_workspace/project1/target/t",
        "repos/repo2_workspace/project1/src/s",
        "repos/repo3/bin/b",
        "Photos/IMG_1.JPG",
        "Photos/small.txt",
        "home/Documents/d.txt",
        "home/code/c.rs",
        "home/Other/o.txt",
        "home/.cache/junk",
        "name with spaces.txt",
    ] {
        let p = src.join(f);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, format!("content of {f}")).unwrap();
    }
    src
}

/// One row: the arguments (`{S}` is the source directory, `{F}` a pattern file holding
/// `file`), what must be gone and what must stay.
struct Row {
    args: &'static [&'static str],
    file: &'static str,
    gone: &'static [&'static str],
    kept: &'static [&'static str],
}

const ROWS: &[Row] = &[
    // "a pattern without a leading / matches at any depth", and everything below it.
    Row {
        args: &["--exclude", "docs/invoices"],
        file: "",
        gone: &["docs/invoices", "docs/invoices/2024", "docs/invoices/2024/a.pdf"],
        kept: &["docs/invoices-old/b.pdf", "docs/readme.txt"],
    },
    // The documented excludes.txt: `*.c` on the command line, `*.go` and `foo/**/bar` in a file.
    Row {
        args: &["--exclude", "*.c", "--exclude-file", "{F}"],
        file: "# exclude go-files\n*.go\n# exclude foo/x/y/z/bar foo/x/bar foo/bar\nfoo/**/bar\n",
        gone: &["work/main.c", "work/main.go", "foo/x/y/z/bar", "foo/x/y/z/bar/f", "foo/bar"],
        kept: &["work/notes.txt", "foo/x/y/z", "foo/x/keep", "foo/keep", "work/foobar"],
    },
    // "foo matches /dir/foo but not /dir/foobar or barfoo".
    Row { args: &["--exclude", "foo"], file: "", gone: &["foo", "foo/keep"], kept: &["work/foobar"] },
    // "b*ash matches /bin/bash but not /bin/ash".
    Row { args: &["--exclude", "b*ash"], file: "", gone: &["bin/bash"], kept: &["bin/ash"] },
    // "/bin matches /bin/bash but not /usr/bin/restic": a leading / anchors at the root.
    Row { args: &["--exclude", "/bin"], file: "", gone: &[], kept: &["bin/bash", "repos/repo3/bin/b"] },
    Row { args: &["--exclude", "{S}/bin"], file: "", gone: &["bin", "bin/bash"], kept: &["repos/repo3/bin/b"] },
    // "--exclude '/home/user/repos/**/target' excludes all target directories at any depth".
    Row {
        args: &["--exclude", "{S}/repos/**/target"],
        file: "",
        gone: &["repos/repo1/target", "repos/repo2_workspace/project1/target"],
        kept: &["repos/repo1/src/s", "repos/repo2_workspace/project1/src/s", "repos/repo3/bin/b"],
    },
    // The documented selection: exclude everything, then take some back (`!`), env expanded.
    Row {
        args: &["--exclude-file", "{F}"],
        file: "$SEL_HOME/*\n!$SEL_HOME/Documents\n!${SEL_HOME}/code\n# [...]\n*~\n",
        gone: &["home/Other", "home/Other/o.txt", "home/.cache"],
        kept: &["home/Documents/d.txt", "home/code/c.rs", "docs/readme.txt"],
    },
    // Once a directory is excluded, nothing inside it can be included again.
    Row {
        args: &["--exclude", "docs", "--exclude", "!docs/readme.txt"],
        file: "",
        gone: &["docs", "docs/readme.txt"],
        kept: &[],
    },
    // The later pattern wins.
    Row {
        args: &["--exclude", "work/*", "--exclude", "!*.txt"],
        file: "",
        gone: &["work/main.go", "work/main.c", "work/foobar"],
        kept: &["work/notes.txt", "work"],
    },
    // `?` and `[...]` within a name.
    Row {
        args: &["--exclude", "ma?n.[cg]*"],
        file: "",
        gone: &["work/main.c", "work/main.go"],
        kept: &["work/notes.txt"],
    },
    // Case: --exclude is exact, --iexclude and --iexclude-file ignore case.
    Row { args: &["--exclude", "*.jpg"], file: "", gone: &[], kept: &["Photos/IMG_1.JPG"] },
    Row { args: &["--iexclude", "*.jpg"], file: "", gone: &["Photos/IMG_1.JPG"], kept: &["Photos/small.txt"] },
    Row {
        args: &["--iexclude-file", "{F}"],
        file: "PHOTOS\n",
        gone: &["Photos", "Photos/small.txt"],
        kept: &["bin/ash"],
    },
    // Spaces verbatim in a pattern file; leading and trailing spaces are trimmed.
    Row {
        args: &["--exclude-file", "{F}"],
        file: "   name with spaces.txt  \n",
        gone: &["name with spaces.txt"],
        kept: &[],
    },
];

#[test]
fn restics_documented_exclude_examples_select_the_same_files() {
    let env = Env::new();
    let src = fixture(&env);
    let all = snapshot_paths(&env, env.backup(&[&src], &[])["snapshot"].as_str().unwrap(), &src);
    let file = env.path("patterns");
    for (i, row) in ROWS.iter().enumerate() {
        fs::write(&file, row.file).unwrap();
        let args: Vec<String> = row
            .args
            .iter()
            .map(|a| a.replace("{S}", src.to_str().unwrap()).replace("{F}", file.to_str().unwrap()))
            .collect();
        let mut cmd: Vec<&str> = vec!["--json", "backup"];
        cmd.extend(args.iter().map(String::as_str));
        cmd.push(src.to_str().unwrap());
        let out = Out::from(env.cmd().env("SEL_HOME", src.join("home")).args(&cmd).output().unwrap()).ok();
        let got = snapshot_paths(&env, out.json()["snapshot"].as_str().unwrap(), &src);
        for g in row.gone {
            assert!(all.contains(*g), "row {i}: fixture lacks {g}");
            assert!(!got.contains(*g), "row {i} {:?}: {g} should be excluded", row.args);
        }
        for k in row.kept {
            assert!(got.contains(*k), "row {i} {:?}: {k} should be kept", row.args);
        }
        // Nothing else went: every missing entry is one of `gone` or below one of them.
        for missing in all.difference(&got) {
            let explained = row.gone.iter().any(|g| missing == g || missing.starts_with(&format!("{g}/")));
            let below = all.iter().any(|a| row.gone.contains(&a.as_str()) && missing.starts_with(&format!("{a}/")));
            assert!(explained || below, "row {i} {:?}: {missing} went too", row.args);
        }
    }
}

#[test]
fn paths_given_to_backup_are_never_excluded_themselves() {
    let env = Env::new();
    let src = fixture(&env);
    let file = src.join("work/main.go");
    let id = env.backup(&[&file], &["--exclude", "*.go"])["snapshot"].as_str().unwrap().to_string();
    assert!(snapshot_paths(&env, &id, &src).contains("work/main.go"));
    // Below a given directory the patterns apply: `work` matches every path through a
    // directory named work, so the directory is saved, and nothing in it.
    let id = env.backup(&[&src.join("work")], &["--exclude", "work"])["snapshot"].as_str().unwrap().to_string();
    let got = snapshot_paths(&env, &id, &src);
    assert_eq!(got, BTreeSet::from(["work".to_string()]));
}

#[test]
fn malformed_patterns_and_missing_pattern_files_are_refused() {
    let env = Env::new();
    let src = fixture(&env);
    for args in [vec!["--exclude", "a/[b"], vec!["--iexclude", "x\\"], vec!["--exclude-if-present", ":head"]] {
        let mut a = vec!["backup"];
        a.extend(args);
        a.push(src.to_str().unwrap());
        let out = env.run(&a).code(2);
        assert!(out.stderr.contains("pattern") || out.stderr.contains("exclude-if-present"), "{}", out.stderr);
    }
    env.run(&["backup", "--exclude-file", env.path("nope").to_str().unwrap(), src.to_str().unwrap()]).code(1);
    assert!(repo_files(&env.repo, arca::backend::FileType::Snapshot).is_empty());
}

#[test]
fn cache_directories_and_marked_directories_keep_only_their_marker() {
    let env = Env::new();
    let src = fs::canonicalize(env.mkdir("src")).unwrap();
    let files: &[(&str, &[u8])] = &[
        ("cache/CACHEDIR.TAG", b"Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n"),
        ("cache/blob", b"cached"),
        ("cache/sub/deep", b"cached"),
        ("fake/CACHEDIR.TAG", b"Signature: 0000000000000000\n"),
        ("fake/data", b"kept"),
        ("short/CACHEDIR.TAG", b"Signature"),
        ("short/data", b"kept"),
        ("marked/.nobackup", b"MAGIC here"),
        ("marked/x", b"gone"),
        ("wrongmagic/.nobackup", b"OTHER"),
        ("wrongmagic/x", b"kept"),
        ("plain/.skip", b""),
        ("plain/y", b"gone"),
        ("normal/z", b"kept"),
    ];
    for (f, data) in files {
        let p = src.join(f);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }
    let out = env.run(&[
        "--json",
        "backup",
        "--exclude-caches",
        "--exclude-if-present",
        ".nobackup:MAGIC",
        "--exclude-if-present",
        ".skip",
        src.to_str().unwrap(),
    ]);
    // A marker with the wrong signature is a note, not a failure.
    let out = out.ok();
    assert!(out.stderr.contains("signature"), "{}", out.stderr);
    let id = out.json()["snapshot"].as_str().unwrap().to_string();
    let got = snapshot_paths(&env, &id, &src);
    let want: BTreeSet<String> = [
        "cache",
        "cache/CACHEDIR.TAG",
        "fake",
        "fake/CACHEDIR.TAG",
        "fake/data",
        "short",
        "short/CACHEDIR.TAG",
        "short/data",
        "marked",
        "marked/.nobackup",
        "wrongmagic",
        "wrongmagic/.nobackup",
        "wrongmagic/x",
        "plain",
        "plain/.skip",
        "normal",
        "normal/z",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(got, want);
    // The kept marker restores byte for byte.
    let target = env.mkdir("restored");
    env.restore(&id, &target, &[]);
    assert_eq!(fs::read(under(&target, &src.join("cache/CACHEDIR.TAG"))).unwrap(), files[0].1);
}

#[test]
fn files_larger_than_the_limit_are_left_out() {
    let env = Env::new();
    let src = fs::canonicalize(env.mkdir("src")).unwrap();
    write_random_file(&src.join("exactly-1k"), 1, 1024);
    write_random_file(&src.join("over-1k"), 2, 1025);
    fs::create_dir(src.join("dir")).unwrap();
    write_random_file(&src.join("dir/big"), 3, 2 << 20);
    write_random_file(&src.join("dir/small"), 4, 10);
    let id = env.backup(&[&src], &["--exclude-larger-than", "1k"])["snapshot"].as_str().unwrap().to_string();
    let got = snapshot_paths(&env, &id, &src);
    assert_eq!(got, ["dir", "dir/small", "exactly-1k"].iter().map(|s| s.to_string()).collect::<BTreeSet<_>>());
    let id = env.backup(&[&src], &["--exclude-larger-than", "1M"])["snapshot"].as_str().unwrap().to_string();
    assert!(!snapshot_paths(&env, &id, &src).contains("dir/big"));
    let id = env.backup(&[&src], &["--exclude-larger-than", "2048k"])["snapshot"].as_str().unwrap().to_string();
    assert!(snapshot_paths(&env, &id, &src).contains("dir/big"));
    env.run(&["backup", "--exclude-larger-than", "1x", src.to_str().unwrap()]).code(2);
}

#[test]
fn files_from_lists_name_what_to_back_up() {
    let env = Env::new();
    let src = fs::canonicalize(env.mkdir("src")).unwrap();
    for f in ["a/one.txt", "a/two.txt", "a/three.md", "b/x", "#hash", " lead", "new\nline", "c/extra"] {
        let p = src.join(f);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, format!("bytes of {f}")).unwrap();
    }
    let s = src.to_str().unwrap();
    // Globs, trimmed, comments and blank lines skipped; a glob matching nothing is a warning.
    let globs = env.path("globs");
    fs::write(&globs, format!("# comment\n\n  {s}/a/*.txt  \n{s}/nothing*\n")).unwrap();
    // Verbatim: a leading space and a leading # are names.
    let verbatim = env.path("verbatim");
    fs::write(&verbatim, format!("{s}/ lead\n\n{s}/#hash\n")).unwrap();
    // Raw: NUL-terminated, a newline in a name.
    let raw = env.path("raw");
    fs::write(&raw, format!("{s}/new\nline\0{s}/b/x\0")).unwrap();
    let out = env
        .run(&[
            "--json",
            "backup",
            "--files-from",
            globs.to_str().unwrap(),
            "--files-from-verbatim",
            verbatim.to_str().unwrap(),
            "--files-from-raw",
            raw.to_str().unwrap(),
            &format!("{s}/c"),
        ])
        .ok();
    assert!(out.stderr.contains("does not match any files"), "{}", out.stderr);
    let id = out.json()["snapshot"].as_str().unwrap().to_string();
    let got = snapshot_paths(&env, &id, &src);
    let want: BTreeSet<String> =
        ["a", "a/one.txt", "a/two.txt", " lead", "#hash", "new\nline", "b", "b/x", "c", "c/extra"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    assert_eq!(got, want);
    // What was backed up restores byte for byte.
    let target = env.mkdir("restored");
    env.restore(&id, &target, &[]);
    for f in ["a/one.txt", " lead", "#hash", "new\nline", "b/x", "c/extra"] {
        assert_eq!(fs::read(under(&target, &src.join(f))).unwrap(), fs::read(src.join(f)).unwrap(), "{f:?}");
    }
    // A raw list without its final NUL, or with an empty name, is refused.
    for bad in [format!("{s}/b/x"), format!("{s}/b/x\0\0")] {
        fs::write(&raw, bad).unwrap();
        let out = env.run(&["backup", "--files-from-raw", raw.to_str().unwrap()]).code(2);
        assert!(out.stderr.contains("files-from-raw"), "{}", out.stderr);
    }
    // Standard input as a list.
    let out =
        env.run_stdin(&["--json", "backup", "--files-from-verbatim", "-"], format!("{s}/b/x\n").into_bytes()).ok();
    let got = snapshot_paths(&env, out.json()["snapshot"].as_str().unwrap(), &src);
    assert_eq!(got, ["b", "b/x"].iter().map(|s| s.to_string()).collect::<BTreeSet<_>>());
}

#[test]
fn a_missing_path_is_skipped_with_a_warning_as_in_restic() {
    let env = Env::new();
    let src = fs::canonicalize(env.mkdir("src")).unwrap();
    fs::write(src.join("f"), b"f").unwrap();
    let gone = src.join("not-there");
    let out = env.run(&["--json", "backup", src.to_str().unwrap(), gone.to_str().unwrap()]).code(3);
    let v = out.json();
    assert!(v["warnings"][0]["path"].as_str().unwrap().ends_with("not-there"), "{v}");
    assert_eq!(v["snapshot"].as_str().map(|_| ()), Some(()));
    let paths = env.json(&["snapshots"])[0]["paths"].clone();
    assert_eq!(paths, serde_json::json!([src.to_str().unwrap()]));
    env.run(&["backup", gone.to_str().unwrap()]).code(2);
}

#[test]
fn tags_are_comma_lists_as_in_restic() {
    let env = Env::new();
    let src = env.mkdir("src");
    env.backup(&[&src], &["--tag", "a,b", "--tag", " c ,,", "--tag", "a"]);
    let tags = env.json(&["snapshots"])[0]["tags"].clone();
    assert_eq!(tags, serde_json::json!(["a", "b", "c"]));
    assert_eq!(env.json(&["snapshots", "--tag", "b,c"]).as_array().unwrap().len(), 1);
}

#[test]
fn skip_if_unchanged_writes_no_snapshot_when_nothing_changed() {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("f"), b"one").unwrap();
    let first = env.backup(&[&src], &["--skip-if-unchanged"]);
    assert!(first["snapshot"].is_string() && first["skipped_unchanged"] == false, "{first}");
    // The directories above the path are part of the snapshot (restic documents the same): a
    // test running beside this one that touches /tmp changes it, so try a few times.
    let mut written = 1;
    let skipped = (0..20).any(|_| {
        let again = env.backup(&[&src], &["--skip-if-unchanged"]);
        if again["skipped_unchanged"] == true {
            assert!(again["snapshot"].is_null(), "{again}");
            return true;
        }
        written += 1;
        false
    });
    assert!(skipped, "an unchanged backup was never skipped");
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), written);
    // Without the flag a snapshot is written anyway; after a change, with it too.
    env.backup(&[&src], &[]);
    fs::write(src.join("f"), b"two").unwrap();
    assert!(env.backup(&[&src], &["--skip-if-unchanged"])["snapshot"].is_string());
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), written + 2);
}

/// Unmounts on drop, so that a failed assertion leaves no mount behind.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn one_file_system_keeps_a_mount_point_as_an_empty_directory() {
    let env = Env::new();
    let src = fs::canonicalize(env.mkdir("src")).unwrap();
    let mnt = src.join("mnt");
    fs::create_dir(&mnt).unwrap();
    fs::write(src.join("here"), b"here").unwrap();
    let ok = is_root()
        && std::process::Command::new("mount")
            .args(["-t", "tmpfs", "none"])
            .arg(&mnt)
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: cannot mount a tmpfs (needs root)");
        return;
    }
    let _guard = Mounted(mnt.clone());
    fs::write(mnt.join("elsewhere"), b"other filesystem").unwrap();
    let id = env.backup(&[&src], &["-x"])["snapshot"].as_str().unwrap().to_string();
    let got = snapshot_paths(&env, &id, &src);
    assert_eq!(got, ["here", "mnt"].iter().map(|s| s.to_string()).collect::<BTreeSet<_>>());
    // Without -x, and when the mount is itself given, its files are saved.
    let id = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    assert!(snapshot_paths(&env, &id, &src).contains("mnt/elsewhere"));
    let id = env.backup(&[&src, &mnt], &["-x"])["snapshot"].as_str().unwrap().to_string();
    assert!(snapshot_paths(&env, &id, &src).contains("mnt/elsewhere"));
}

#[test]
fn a_profile_component_takes_the_same_selection_options() {
    let env = Env::new();
    let src = fixture(&env);
    fs::write(src.join("Photos/big.raw"), vec![7u8; 5000]).unwrap();
    fs::create_dir(src.join("cache")).unwrap();
    fs::write(src.join("cache/CACHEDIR.TAG"), b"Signature: 8a477f597d28d172789f06886806bc55").unwrap();
    fs::write(src.join("cache/junk"), b"junk").unwrap();
    let pf = env.path("patterns");
    fs::write(&pf, "docs/invoices\n").unwrap();
    fs::write(env.path("pw"), format!("{PASSWORD}\n")).unwrap();
    let cfg = env.path("config.toml");
    fs::write(
        &cfg,
        format!(
            r#"[repository.main]
path = "{repo}"
password-file = "{pw}"

[profile.p.component.files]
paths = ["{src}"]
excludes = ["*.go"]
iexcludes = ["*.jpg"]
exclude-files = ["{pf}"]
exclude-caches = true
exclude-larger-than = "4k"
"#,
            repo = env.repo.display(),
            pw = env.path("pw").display(),
            src = src.display(),
            pf = pf.display(),
        ),
    )
    .unwrap();
    Out::from(arca_cmd().arg("--config").arg(&cfg).args(["backup", "--profile", "p"]).output().unwrap()).ok();
    let id = env.json(&["snapshots"])[0]["id"].as_str().unwrap().to_string();
    let got = snapshot_paths(&env, &id, &src);
    for g in ["work/main.go", "Photos/IMG_1.JPG", "docs/invoices", "cache/junk", "Photos/big.raw"] {
        assert!(!got.contains(g), "{g} should be excluded: {got:?}");
    }
    for k in ["work/main.c", "Photos/small.txt", "docs/readme.txt", "cache/CACHEDIR.TAG"] {
        assert!(got.contains(k), "{k} should be kept");
    }
}
