//! Issue 6, repository side: empty passwords, private files, stray and damaged files in the
//! repository, damaged packs, foreign key files, usage errors, files that are not small regular
//! files, missing layout directories, and error texts (items 4, 5, 11–14, 16, 19, 20).

use crate::common::*;
use arca::backend::FileType;
use arca::format::blob::BlobType;
use arca::format::index::{IndexBlob, IndexPack};
use arca::repo::index::Index;
use arca::{Error, Id};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

const FAST: [&str; 4] = ["--kdf-memory", "8", "--kdf-iterations", "1"];

/// A repository with one backup of a small tree `src/` (a.txt, b.bin of 200 KiB).
fn env_with_backup() -> (Env, std::path::PathBuf) {
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("a.txt"), b"hello\n").unwrap();
    write_random_file(&src.join("b.bin"), 7, 200 << 10);
    env.backup(&[&src], &[]);
    (env, src)
}

fn sref_of(reference: &str, p: &Path) -> String {
    format!("{reference}:{}", p.display())
}

// ---- item 4: empty passwords -----------------------------------------------------------------

#[test]
fn empty_passwords_are_refused_as_usage_errors() {
    let env = Env::new();
    let empty = |o: Out| {
        let o = o.code(2);
        assert!(o.stderr.contains("empty password"), "{}", o.stderr);
    };
    empty(env.cmd().env("ARCA_PASSWORD", "").arg("snapshots").output().unwrap().into());
    let pw = env.path("pw");
    for content in ["", "\n", "\r\n"] {
        fs::write(&pw, content).unwrap();
        let mut c = arca_cmd();
        c.env("ARCA_REPOSITORY", &env.repo).args(["--password-file", pw.to_str().unwrap(), "snapshots"]);
        empty(c.output().unwrap().into());
    }
    let mut c = arca_cmd();
    c.env("ARCA_REPOSITORY", &env.repo).args(["--password-command", "true", "snapshots"]);
    empty(c.output().unwrap().into());
    // New passwords: key add, key passwd, and init.
    let keys = repo_files(&env.repo, FileType::Key);
    for sub in [&["key", "add"][..], &["key", "passwd"][..]] {
        let mut a = sub.to_vec();
        a.extend_from_slice(&FAST);
        empty(env.cmd().env("ARCA_NEW_PASSWORD", "").args(&a).output().unwrap().into());
    }
    assert_eq!(repo_files(&env.repo, FileType::Key), keys);
    let bare = Env::bare();
    let mut a = vec!["init"];
    a.extend_from_slice(&FAST);
    empty(bare.cmd().env("ARCA_PASSWORD", "").args(&a).output().unwrap().into());
    assert!(!bare.repo.join("config").exists());
}

// ---- item 5: private files -------------------------------------------------------------------

#[test]
fn repository_files_are_private_whatever_the_umask() {
    let env = Env::bare();
    let src = env.mkdir("src");
    fs::write(src.join("f"), b"data").unwrap();
    let run = |args: &[&str]| {
        let mut c = arca_std_cmd();
        c.env("ARCA_REPOSITORY", &env.repo).env("ARCA_PASSWORD", PASSWORD).args(args);
        // SAFETY: umask is async-signal-safe.
        unsafe {
            c.pre_exec(|| {
                libc::umask(0);
                Ok(())
            });
        }
        Out::from(c.output().unwrap()).ok();
    };
    let mut a = vec!["init"];
    a.extend_from_slice(&FAST);
    run(&a);
    run(&["backup", src.to_str().unwrap()]);
    let mut seen = 0;
    let mut stack = vec![env.repo.clone()];
    while let Some(d) = stack.pop() {
        assert_eq!(fs::metadata(&d).unwrap().mode() & 0o7777, 0o700, "{}", d.display());
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
                continue;
            }
            let want = if p.parent().unwrap().ends_with("keys") { 0o400 } else { 0o600 };
            assert_eq!(m.mode() & 0o7777, want, "{}", p.display());
            seen += 1;
        }
    }
    assert!(seen >= 5, "config, key, pack(s), index, snapshot: saw {seen}");
}

// ---- item 11: stray and damaged files ----------------------------------------------------------

#[test]
fn a_bad_index_file_is_reported_and_skipped_and_stray_names_are_ignored() {
    let (env, src) = env_with_backup();
    let old_index = repo_files(&env.repo, FileType::Index);
    // A second backup of other data writes a second index file; damage that one.
    let other = env.mkdir("other");
    write_random_file(&other.join("c.bin"), 9, 100 << 10);
    env.backup(&[&other], &[]);
    let new_index: Vec<String> =
        repo_files(&env.repo, FileType::Index).into_iter().filter(|n| !old_index.contains(n)).collect();
    assert_eq!(new_index.len(), 1);
    flip_byte(&repo_file(&env.repo, FileType::Index, &new_index[0]), 60);
    // An index file copied from another repository (named by its hash, as index files are).
    let foreign = Env::new();
    let fsrc = foreign.mkdir("f");
    fs::write(fsrc.join("x"), b"foreign").unwrap();
    foreign.backup(&[&fsrc], &[]);
    let fname = repo_files(&foreign.repo, FileType::Index)[0].clone();
    fs::copy(repo_file(&foreign.repo, FileType::Index, &fname), repo_file(&env.repo, FileType::Index, &fname)).unwrap();
    // Stray names everywhere.
    for dir in ["index", "snapshots", "keys", "locks", "data/00"] {
        fs::create_dir_all(env.repo.join(dir)).unwrap();
        fs::write(env.repo.join(dir).join(".DS_Store"), b"junk").unwrap();
        fs::write(env.repo.join(dir).join("config (conflicted copy)"), b"junk").unwrap();
    }

    let first = env.json(&["snapshots"]).as_array().unwrap()[0]["id"].as_str().unwrap().to_string();
    let warned = |o: &Out| {
        assert!(o.stderr.contains(&new_index[0]), "no warning naming the damaged index file: {}", o.stderr);
        assert!(o.stderr.contains(&fname), "no warning naming the foreign index file: {}", o.stderr);
    };
    let o = env.run(&["ls", &first]).ok();
    warned(&o);
    assert!(o.text().contains("a.txt"));
    let o = env.run(&["dump", &sref_of(&first, &src.join("a.txt"))]).ok();
    assert_eq!(o.stdout, b"hello\n");
    warned(&o);
    let target = env.path("t");
    let o = env.run(&["restore", &first, "--target", target.to_str().unwrap()]).ok();
    warned(&o);
    assert_eq!(fs::read(under(&target, &src.join("a.txt"))).unwrap(), b"hello\n");
    // The second snapshot's blobs were listed only in the damaged file: missing, exit 4.
    env.run(&["restore", "latest", "--target", env.path("t2").to_str().unwrap()]).code(4);
    // Backup goes on (and re-stores what it cannot find).
    fs::write(src.join("new.txt"), b"new").unwrap();
    let o = env.run(&["backup", src.to_str().unwrap()]).ok();
    warned(&o);
    // Check names each bad index file (exit 4) and lists the stray files.
    let o = env.run(&["check"]).code(4);
    let all = o.all();
    for n in [&new_index[0], &fname] {
        assert!(all.contains(&format!("index {n}")), "check does not list index {n}:\n{all}");
    }
    for stray in ["index/.DS_Store", "snapshots/.DS_Store", "keys/config (conflicted copy)", "data/00/.DS_Store"] {
        assert!(all.contains(stray), "check does not report {stray}:\n{all}");
    }
}

#[test]
fn stray_names_alone_do_not_fail_commands() {
    let (env, src) = env_with_backup();
    for dir in ["index", "snapshots", "keys", "locks", "data/00"] {
        fs::create_dir_all(env.repo.join(dir)).unwrap();
        fs::write(env.repo.join(dir).join(".DS_Store"), b"junk").unwrap();
    }
    env.run(&["snapshots"]).ok();
    env.run(&["ls", "latest"]).ok();
    env.run(&["key", "list"]).ok();
    env.run(&["backup", src.to_str().unwrap()]).ok();
    let o = env.run(&["check"]).ok();
    assert!(o.stderr.contains("snapshots/.DS_Store"), "{}", o.stderr);
}

/// format-spec/04 §4.2: in every directory, an entry whose name is not an object name is no
/// repository file — a `README` at the top level, in `data/`, a shard, `index/`, `snapshots/`,
/// `keys/`, `locks/` or `journal/`, a subdirectory, a shard directory with another name, a pack
/// moved into the wrong shard. Every command ignores them (none exits 4 because of them), a
/// snapshot ID prefix resolves past them, and `check` names each as a warning (tmp/ excepted).
#[test]
fn stray_entries_in_every_directory_are_ignored_and_reported_by_check() {
    let (env, src) = env_with_backup();
    let snap = env.json(&["snapshots"]).as_array().unwrap()[0]["id"].as_str().unwrap().to_string();
    let mut strays = vec![];
    for dir in ["", "data", "data/00", "index", "snapshots", "keys", "locks", "journal", "tmp"] {
        let d = env.repo.join(dir);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("README"), b"not a repository file\n").unwrap();
        if dir != "tmp" {
            strays.push(if dir.is_empty() { "README".to_string() } else { format!("{dir}/README") });
        }
    }
    fs::create_dir_all(env.repo.join("index/old")).unwrap();
    fs::create_dir_all(env.repo.join("data/zz")).unwrap();
    // A name that shares the snapshot's ID prefix must not make the prefix ambiguous.
    let conflicted = format!("{} (conflicted copy)", &snap[..8]);
    fs::write(env.repo.join("snapshots").join(&conflicted), b"junk").unwrap();
    // A pack copied into a shard that is not its own.
    let pack = repo_files(&env.repo, FileType::Pack).into_iter().find(|n| n.len() == 64).unwrap();
    let wrong = if pack.starts_with("00") { "01" } else { "00" };
    fs::create_dir_all(env.repo.join("data").join(wrong)).unwrap();
    fs::copy(repo_file(&env.repo, FileType::Pack, &pack), env.repo.join("data").join(wrong).join(&pack)).unwrap();
    strays.extend([
        "index/old".into(),
        "data/zz".into(),
        format!("snapshots/{conflicted}"),
        format!("data/{wrong}/{pack}"),
    ]);

    let o = env.run(&["check", "--read-data"]).ok();
    for s in &strays {
        assert!(o.stderr.contains(&format!("{s}: stray")), "check does not report {s}:\n{}", o.stderr);
    }
    assert!(!o.stderr.contains("tmp/README"), "{}", o.stderr);
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 1);
    env.run(&["ls", &snap[..8]]).ok();
    env.run(&["find", "a.txt"]).ok();
    env.run(&["repoinfo"]).ok();
    env.run(&["key", "list"]).ok();
    env.run(&["status"]).ok();
    let target = env.path("t");
    env.run(&["restore", "latest", "--target", target.to_str().unwrap()]).ok();
    assert_eq!(fs::read(under(&target, &src.join("a.txt"))).unwrap(), b"hello\n");
    env.run(&["verify", &sref_of("latest", &src), under(&target, &src).to_str().unwrap()]).ok();
    fs::write(src.join("new.txt"), b"new").unwrap();
    env.run(&["backup", src.to_str().unwrap()]).ok();
    env.run(&["forget", "--keep-last", "1"]).ok();
    env.run(&["prune"]).ok();
    env.run(&["repair", "index"]).ok();
    env.run(&["unlock"]).ok();
    let o = env.run(&["check", "--read-data"]).ok();
    // Nothing removed or touched them.
    for s in &strays {
        assert!(env.repo.join(s).exists(), "{s} is gone");
        assert!(o.stderr.contains(&format!("{s}: stray")), "check does not report {s}:\n{}", o.stderr);
    }
}

/// format-spec/09 §9.3: a pack with no blobs (56 bytes: header, sealed empty TOC, trailer) is
/// valid. Unindexed, check warns about it and a backup adopts it; `repair index` indexes it;
/// nothing uses it, so prune removes it; check stays clean throughout.
#[test]
fn a_pack_without_blobs_is_valid_and_prune_removes_it() {
    let (env, src) = env_with_backup();
    let repo = env.open();
    let sealed =
        repo.keys().seal(&arca::format::pack::encode_toc(&[]), &arca::format::pack::toc_ad(repo.repo_id())).unwrap();
    let mut bytes = arca::format::header::encode(arca::format::header::FileKind::Pack).to_vec();
    bytes.extend_from_slice(&sealed);
    bytes.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
    assert_eq!(bytes.len() as u64, arca::format::pack::MIN_PACK_LEN);
    let id = Id::of_file_bytes(&bytes).to_hex();
    let path = repo_file(&env.repo, FileType::Pack, &id);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, &bytes).unwrap();

    let o = env.run(&["check", "--read-data"]).ok();
    assert!(o.stderr.contains(&id[..16]), "check does not mention the unindexed pack: {}", o.stderr);
    env.run(&["repair", "index", "--read-all-packs"]).ok();
    let index = repo.load_index().unwrap();
    assert!(index.packs().iter().any(|p| p.id.to_hex() == id && p.blobs == 0), "the empty pack is not indexed");
    env.run(&["check", "--read-data"]).ok();
    fs::write(src.join("c.txt"), b"more").unwrap();
    env.run(&["backup", src.to_str().unwrap()]).ok();
    env.run(&["prune"]).ok();
    assert!(!path.exists(), "prune kept a pack no snapshot uses");
    let o = env.run(&["check", "--read-data"]).ok();
    assert!(!o.stderr.contains("warning"), "{}", o.stderr);
}

// ---- item 12: damaged packs ------------------------------------------------------------------

#[test]
fn a_truncated_emptied_or_missing_pack_is_an_integrity_error() {
    for damage in ["truncate", "empty", "remove"] {
        let (env, src) = env_with_backup();
        let repo = env.open();
        let index = repo.load_index().unwrap();
        let node = latest_node(&env, &src.join("b.bin"));
        let arca::format::tree::NodeKind::File { content, .. } = &node.kind else { panic!("not a file") };
        let blob = content.last().unwrap().id;
        let pack = index.lookup(BlobType::Data, &blob).unwrap().pack.to_hex();
        let path = repo_file(&env.repo, FileType::Pack, &pack);
        match damage {
            "truncate" => fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(5000).unwrap(),
            "empty" => fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap(),
            _ => fs::remove_file(&path).unwrap(),
        }
        drop(repo);
        let repo = env.open();
        match repo.read_blob(&index, BlobType::Data, &blob) {
            Err(Error::Integrity { object, reason }) => {
                assert!(object.contains(&pack), "{damage}: {object}");
                assert!(reason.contains(&blob.to_hex()), "{damage}: {reason}");
            }
            other => panic!("{damage}: expected an integrity error, got {other:?}"),
        }
        let o = env.run(&["dump", &format!("latest:{}", src.join("b.bin").display())]).code(4);
        assert!(o.stderr.contains(&pack), "{damage}: {}", o.stderr);
        assert!(!o.stderr.contains("fill whole buffer"), "{damage}: {}", o.stderr);
        let o = env.run(&["restore", "latest", "--target", env.path("t").to_str().unwrap()]).code(4);
        assert!(o.all().contains(&pack), "{damage}: {}", o.all());
    }
}

// ---- item 13: a key file from another repository -----------------------------------------------

#[test]
fn a_foreign_key_with_the_same_password_does_not_lock_the_user_out() {
    let (a, b) = (Env::new(), Env::new());
    let (ka, kb) = (repo_files(&a.repo, FileType::Key)[0].clone(), repo_files(&b.repo, FileType::Key)[0].clone());
    // Copy the key that sorts first into the other repository, so it is tried first there.
    let (from, to, key, own) = if ka < kb { (&a, &b, ka, kb) } else { (&b, &a, kb, ka) };
    fs::copy(repo_file(&from.repo, FileType::Key, &key), repo_file(&to.repo, FileType::Key, &key)).unwrap();
    to.run(&["snapshots"]).ok();
    assert_eq!(to.open().key_name(), own);
    // Without its own key, the error names the foreign key file.
    fs::remove_file(repo_file(&to.repo, FileType::Key, &own)).unwrap();
    let o = to.run(&["snapshots"]).code(4);
    assert!(o.stderr.contains(&key) && o.stderr.contains("another repository"), "{}", o.stderr);
}

// ---- item 14: out-of-range options -------------------------------------------------------------

#[test]
fn out_of_range_options_are_usage_errors() {
    let bare = Env::bare();
    for bad in [
        &["init", "--compression", "25"][..],
        &["init", "--compression", "-8"][..],
        &["init", "--pack-size", "0"][..],
        &["init", "--pack-size", "2048"][..],
        &["init", "--kdf-memory", "4"][..],
        &["init", "--kdf-iterations", "0"][..],
        &["init", "--kdf-iterations", "11"][..],
    ] {
        bare.run(bad).code(2);
        assert!(!bare.repo.exists(), "{bad:?} created something");
    }
    let mut a = vec!["init", "--compression", "-3"];
    a.extend_from_slice(&FAST);
    bare.run(&a).ok();
    let env = Env::new();
    let keys = repo_files(&env.repo, FileType::Key);
    for bad in [&["key", "add", "--kdf-memory", "4"][..], &["key", "passwd", "--kdf-memory", "4096"][..]] {
        env.cmd().env("ARCA_NEW_PASSWORD", "x").args(bad).output().map(Out::from).unwrap().code(2);
    }
    assert_eq!(repo_files(&env.repo, FileType::Key), keys);
    env.run(&["check", "--read-data-subset", "0/5"]).code(2);
    // The library reports the same as usage errors, not damage.
    let repo = env.open();
    let e = repo.add_key(b"x", arca::format::key::KdfParams { memory_kib: 4096, time_cost: 1, lanes: 1 }, "l");
    assert!(matches!(e, Err(Error::InvalidArgument(_))), "{:?}", e.err());
}

// ---- item 16: files that are not small regular files -------------------------------------------

fn quick(env: &Env, args: &[&str]) -> Out {
    Out::from(env.cmd().timeout(Duration::from_secs(20)).args(args).output().unwrap())
}

#[test]
fn a_config_that_is_a_fifo_or_a_symlink_to_a_device_is_refused() {
    let env = Env::new();
    let config = env.repo.join("config");
    fs::remove_file(&config).unwrap();
    mkfifo(&config);
    let o = quick(&env, &["snapshots"]).code(10);
    assert!(o.stderr.contains("config") && o.stderr.contains("FIFO"), "{}", o.stderr);
    fs::remove_file(&config).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &config).unwrap();
    let o = quick(&env, &["snapshots"]).code(10);
    assert!(o.stderr.contains("config") && o.stderr.contains("symbolic link"), "{}", o.stderr);
}

#[test]
fn huge_sparse_or_special_repository_files_are_refused_before_reading() {
    let (env, src) = env_with_backup();
    let sparse = |t: FileType, name: &str| {
        let p = repo_file(&env.repo, t, name);
        fs::File::create(&p).unwrap().set_len(4 << 30).unwrap();
    };
    let name = |c: char| std::iter::repeat_n(c, 64).collect::<String>();
    // A 4 GiB key file, snapshot and index file, and a FIFO snapshot.
    sparse(FileType::Key, &name('0'));
    sparse(FileType::Snapshot, &name('1'));
    sparse(FileType::Index, &name('2'));
    mkfifo(&repo_file(&env.repo, FileType::Snapshot, &name('3')));
    let o = quick(&env, &["snapshots"]).code(4);
    assert!(o.stderr.contains(&name('1')) && o.stderr.contains("longer than"), "{}", o.stderr);
    assert!(o.stderr.contains(&name('3')) && o.stderr.contains("FIFO"), "{}", o.stderr);
    // `latest` is not resolved past a damaged snapshot that may be newer (item 10); by ID the
    // good snapshot lists, with a warning naming the skipped index file.
    let o = quick(&env, &["ls", &format!("latest:{}", src.display())]).code(4);
    assert!(o.stderr.contains(&name('1')), "{}", o.stderr);
    let good = repo_files(&env.repo, FileType::Snapshot)
        .into_iter()
        .find(|n| !n.starts_with("1111") && !n.starts_with("3333"))
        .unwrap();
    let o = quick(&env, &["ls", &format!("{good}:{}", src.display())]).ok();
    assert!(o.stderr.contains(&name('2')), "{}", o.stderr);
    let o = quick(&env, &["check"]).code(4);
    for n in ['1', '2', '3'] {
        assert!(o.all().contains(&name(n)), "check does not name {}: {}", name(n), o.all());
    }
    // Pack reads are bounded by what a blob can be, whatever the index says.
    let repo = env.open();
    let pack = Id::from_hex(&repo_files(&env.repo, FileType::Pack)[0]).unwrap();
    let id = Id([7; 32]);
    let blobs = vec![IndexBlob { blob_type: BlobType::Data, id, offset: 8, stored_len: u32::MAX - 8, plain_len: 1 }];
    let index = Index::from_packs([IndexPack { id: pack, size: u32::MAX, ephemeral: None, blobs }]);
    assert!(matches!(repo.read_blob(&index, BlobType::Data, &id), Err(Error::Integrity { .. })));
}

// ---- item 19: missing layout directories -------------------------------------------------------

#[test]
fn a_repository_copied_without_its_empty_directories_works() {
    let (env, src) = env_with_backup();
    for d in ["tmp", "locks"] {
        fs::remove_dir_all(env.repo.join(d)).unwrap();
    }
    // Empty shard directories are not needed either.
    fs::write(src.join("more.txt"), b"more").unwrap();
    env.run(&["backup", src.to_str().unwrap()]).ok();
    env.run(&["check", "--read-data"]).ok();
    let target = env.path("t");
    env.restore("latest", &target, &[]);
    assert_eq!(fs::read(under(&target, &src.join("more.txt"))).unwrap(), b"more");
    fs::remove_dir_all(env.repo.join("tmp")).unwrap();
    fs::remove_dir_all(env.repo.join("locks")).unwrap();
    env.run(&["check"]).ok();
    Out::from(env.cmd().env("ARCA_NEW_PASSWORD", "second").args(["key", "add"]).args(FAST).output().unwrap()).ok();

    // A new repository copied before its first backup has only `config` and `keys/`.
    let env = Env::new();
    for d in ["tmp", "locks", "index", "snapshots", "data"] {
        fs::remove_dir_all(env.repo.join(d)).unwrap();
    }
    env.run(&["snapshots"]).ok();
    env.run(&["check"]).ok();
    env.backup(&[&src], &[]);
    env.run(&["check", "--read-data"]).ok();
    let target = env.path("t");
    env.restore("latest", &target, &[]);
    assert_eq!(fs::read(under(&target, &src.join("more.txt"))).unwrap(), b"more");
}

// ---- item 20: `config/` directories and error texts --------------------------------------------

#[test]
fn a_config_directory_is_not_a_repository_and_init_refuses_it() {
    let env = Env::bare();
    fs::create_dir_all(env.repo.join("config")).unwrap();
    let o = env.run(&["snapshots"]).code(10);
    assert!(o.stderr.contains("not an arca repository"), "{}", o.stderr);
    assert!(!o.stderr.contains("os error"), "{}", o.stderr);
    let mut a = vec!["init"];
    a.extend_from_slice(&FAST);
    let o = env.run(&a).code(2);
    assert!(o.stderr.contains("not empty") && !o.stderr.contains("already exists"), "{}", o.stderr);
}

#[test]
fn error_texts_say_the_os_error_once() {
    let env = Env::new();
    fs::remove_dir_all(env.repo.join("keys")).unwrap();
    fs::write(env.repo.join("keys"), b"not a directory").unwrap();
    let o = env.run(&["snapshots"]).code(1);
    assert_eq!(o.stderr.matches("os error 20").count(), 1, "{}", o.stderr);
    // The same for a library I/O error deeper in a command.
    let env = Env::new();
    let src = env.mkdir("src");
    fs::write(src.join("f"), b"x").unwrap();
    let blocker = env.path("blocker");
    fs::write(&blocker, b"a file where a directory is wanted").unwrap();
    env.backup(&[&src], &[]);
    let o = env.run(&["restore", "latest", "--target", blocker.join("sub").to_str().unwrap()]);
    assert_ne!(o.code, 0);
    assert!(o.all().matches("os error 20").count() <= 1, "{}", o.all());
}
