//! `dump --archive zip`: a streamed ZIP archive that Python's `zipfile` (and `unzip`, where
//! installed) reads back byte for byte, with the entries, order and names of the tar dump, and
//! the same bytes every time it is asked for.

use crate::common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Reads the archive at argv[1] with `zipfile`: `testzip()` must find nothing; each entry's
/// content goes to argv[2]/<position>, and its facts are printed as one JSON list.
const READ_ZIP: &str = r#"
import calendar, json, os, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
bad = z.testzip()
assert bad is None, "testzip: bad CRC or header in %r" % bad
out = []
for n, i in enumerate(z.infolist()):
    utf8 = bool(i.flag_bits & 0x800)
    raw = i.orig_filename.encode("utf-8" if utf8 else "cp437")
    with open(os.path.join(sys.argv[2], str(n)), "wb") as f:
        f.write(z.read(i))
    out.append({"name": raw.hex(), "utf8": utf8, "mode": i.external_attr >> 16, "size": i.file_size,
                "system": i.create_system, "method": i.compress_type, "flags": i.flag_bits,
                "dos": calendar.timegm(i.date_time + (0, 0, 0)), "extra": i.extra.hex()})
print(json.dumps(out))
"#;

/// Whether `python3` can be run (the tests that need it say so and stop when it cannot).
/// The source tree, backed up; Python (which reads the archives back) must be there: `.ci/run`
/// installs it, and a test that cannot check must fail, not pass.
fn backed_up_source() -> (Env, PathBuf) {
    assert!(have("python3", "--version"), "python3 is needed to read the archives back (.ci/run installs it)");
    let env = Env::new();
    let src = make_source(&env);
    env.backup(&[&src], &[]);
    (env, src)
}

fn have(tool: &str, arg: &str) -> bool {
    std::process::Command::new(tool).arg(arg).output().is_ok_and(|o| o.status.success())
}

/// What the source holds at a path, as a ZIP entry should show it.
#[derive(Debug)]
struct Want {
    /// Unix file type bits (`mode >> 12`).
    kind: u32,
    perm: u32,
    mtime: i64,
    /// A file's content or a symlink's target.
    content: Vec<u8>,
}

/// Every entry at and below `root`, named as the archive names them (`name/...`).
fn source_entries(root: &Path, name: &[u8], out: &mut BTreeMap<Vec<u8>, Want>) {
    let m = fs::symlink_metadata(root).unwrap();
    let ft = m.file_type();
    let content = if ft.is_file() {
        fs::read(root).unwrap()
    } else if ft.is_symlink() {
        fs::read_link(root).unwrap().as_os_str().as_bytes().to_vec()
    } else {
        vec![]
    };
    let want = Want { kind: m.mode() >> 12, perm: m.mode() & 0o7777, mtime: m.mtime(), content };
    out.insert(name.to_vec(), want);
    if ft.is_dir() {
        for e in fs::read_dir(root).unwrap() {
            let e = e.unwrap();
            let mut child = name.to_vec();
            child.push(b'/');
            child.extend_from_slice(e.file_name().as_bytes());
            source_entries(&e.path(), &child, out);
        }
    }
}

/// The source tree: nested directories, an empty directory and file, a few MiB of random
/// bytes, symlinks (one with a target that is not UTF-8), a hard link, a FIFO, a name with a
/// newline and (where the filesystem takes it) one that is not UTF-8, an old mtime.
fn make_source(env: &Env) -> std::path::PathBuf {
    let src = env.mkdir("src");
    fs::create_dir_all(src.join("docs/notes/deep")).unwrap();
    fs::create_dir_all(src.join("empty-dir")).unwrap();
    fs::write(src.join("docs/a.txt"), b"alpha\n").unwrap();
    fs::write(src.join("docs/notes/deep/x.txt"), b"deep inside").unwrap();
    fs::write(src.join("zero"), b"").unwrap();
    write_random_file(&src.join("big.bin"), 42, (3 << 20) + 12_345);
    fs::write(src.join("new\nline"), b"a name with a newline").unwrap();
    let latin1 = src.join(OsStr::from_bytes(b"caf\xe9"));
    if fs::write(&latin1, b"latin-1 name").is_err() {
        eprintln!("this filesystem refuses names that are not UTF-8: left out");
    }
    fs::write(src.join("old.txt"), b"from 1970").unwrap();
    set_mtime(&src.join("old.txt"), odd_time(1000, 5));
    fs::write(src.join("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(src.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(src.join("docs/a.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::hard_link(src.join("docs/a.txt"), src.join("hard")).unwrap();
    std::os::unix::fs::symlink("docs/a.txt", src.join("link")).unwrap();
    std::os::unix::fs::symlink(OsStr::from_bytes(b"tar\xe9get"), src.join("odd-link")).unwrap();
    mkfifo(&src.join("pipe"));
    set_mtime(&src.join("docs/notes"), odd_time(1_600_000_001, 7));
    src
}

/// The Info-ZIP extended timestamp's modification time in an extra field (hex).
fn extra_mtime(hex: &str) -> Option<i64> {
    let x = unhex(hex);
    let mut at = 0;
    while at + 4 <= x.len() {
        let (tag, len) = (u16::from_le_bytes([x[at], x[at + 1]]), u16::from_le_bytes([x[at + 2], x[at + 3]]) as usize);
        if tag == 0x5455 && x[at + 4] & 1 != 0 {
            return Some(i64::from(i32::from_le_bytes(x[at + 5..at + 9].try_into().unwrap())));
        }
        at += 4 + len;
    }
    None
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// `zipfile`'s view of an archive: each entry's facts and content.
fn read_with_python(env: &Env, zip: &[u8], tag: &str) -> Vec<(Value, Vec<u8>)> {
    let file = env.path(&format!("{tag}.zip"));
    fs::write(&file, zip).unwrap();
    let out_dir = env.mkdir(&format!("{tag}-entries"));
    let out = std::process::Command::new("python3").arg("-c").arg(READ_ZIP).arg(&file).arg(&out_dir).output().unwrap();
    assert!(out.status.success(), "python3 zipfile: {}", String::from_utf8_lossy(&out.stderr));
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    list.into_iter().enumerate().map(|(i, v)| (v, fs::read(out_dir.join(i.to_string())).unwrap())).collect()
}

/// Entry names of a tar dump, in order, without a directory's trailing `/`.
fn tar_names(tar_bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut archive = tar::Archive::new(tar_bytes);
    let names = archive.entries().unwrap().map(|e| {
        let mut p = e.unwrap().path_bytes().into_owned();
        if p.last() == Some(&b'/') {
            p.pop();
        }
        p
    });
    names.collect()
}

#[test]
fn dump_archive_zip_reads_back_byte_for_byte_and_is_deterministic() {
    let (env, src) = backed_up_source();
    let reference = sref("latest", &src);

    let zip = env.run(&["dump", &reference, "--archive", "zip"]).ok().stdout;
    // The same bytes again, and from someone in another time zone.
    let again = env.cmd().env("TZ", "America/New_York").args(["dump", &reference, "--archive", "zip"]).output();
    let again = Out::from(again.unwrap()).ok().stdout;
    assert!(zip == again, "two dumps of the same entry differ ({} and {} bytes)", zip.len(), again.len());

    let mut want = BTreeMap::new();
    source_entries(&src, b"src", &mut want);
    let got = read_with_python(&env, &zip, "dump");
    let shown = |n: &[u8]| String::from_utf8_lossy(n).into_owned();
    let mut names = Vec::new();
    for (v, content) in &got {
        let raw = unhex(v["name"].as_str().unwrap());
        let mode = v["mode"].as_u64().unwrap() as u32;
        let is_dir = raw.ends_with(b"/");
        let name = raw.strip_suffix(b"/").unwrap_or(&raw).to_vec();
        let w = want.get(&name).unwrap_or_else(|| panic!("{:?} is not in the source", shown(&raw)));
        let what = shown(&raw);
        assert_eq!(v["system"], 3, "{what}: made by Unix");
        assert_eq!(v["method"], 0, "{what}: stored");
        assert_eq!(v["utf8"], std::str::from_utf8(&raw).is_ok(), "{what}: UTF-8 flag exactly for UTF-8 names");
        assert_eq!(mode >> 12, w.kind, "{what}: file type in the Unix mode");
        assert_eq!(mode & 0o7777, w.perm, "{what}: permissions");
        assert_eq!(is_dir, w.kind == 0o04, "{what}: a directory's name ends in /");
        assert_eq!(content, &w.content, "{what}: content (a symlink's: its target)");
        assert_eq!(v["size"].as_u64().unwrap(), w.content.len() as u64, "{what}");
        let flags = v["flags"].as_u64().unwrap();
        assert_eq!(flags & 8 != 0, w.kind == 0o10, "{what}: data descriptor for regular files only");
        assert_eq!(extra_mtime(v["extra"].as_str().unwrap()), Some(w.mtime), "{what}: extended timestamp");
        let dos = v["dos"].as_i64().unwrap();
        assert_eq!(dos, (w.mtime - w.mtime.rem_euclid(2)).max(315_532_800), "{what}: DOS time in UTC");
        names.push(name);
    }
    let listed: Vec<String> = names.iter().map(|n| shown(n)).collect();
    let expected: Vec<String> = want.keys().map(|n| shown(n)).collect();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "every entry once (FIFO included, as empty)");
    let deep = got.iter().find(|(v, _)| unhex(v["name"].as_str().unwrap()) == b"src/docs/notes/deep/x.txt");
    assert_eq!(deep.map(|d| &d.1[..]), Some(&b"deep inside"[..]));

    // Entries, order and names as the tar dump has them.
    let tar = env.run(&["dump", &reference, "--archive", "tar"]).ok().stdout;
    assert_eq!(names, tar_names(&tar), "the same entries in the same order as --archive tar");

    if have("unzip", "-v") {
        let file = env.path("dump.zip");
        let out = std::process::Command::new("unzip").arg("-tq").arg(&file).output().unwrap();
        assert!(
            out.status.success(),
            "unzip -t: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn dump_archive_zip_of_a_single_file_and_of_a_bad_format() {
    let (env, src) = backed_up_source();
    let one = env.run(&["dump", &sref("latest", &src.join("big.bin")), "--archive", "zip"]).ok().stdout;
    let got = read_with_python(&env, &one, "one");
    assert_eq!(got.len(), 1);
    assert_eq!(unhex(got[0].0["name"].as_str().unwrap()), b"big.bin");
    assert!(got[0].1 == fs::read(src.join("big.bin")).unwrap(), "the file's bytes");

    // A directory without --archive names both formats; an unknown one is a usage error.
    let out = env.run(&["dump", &sref("latest", &src)]).code(2);
    assert!(out.stderr.contains("--archive tar or zip"), "{}", out.stderr);
    let out = env.run(&["dump", &sref("latest", &src), "--archive", "rar"]).code(2);
    assert!(out.stderr.contains("zip"), "{}", out.stderr);
}
