//! Safe database streams (`backup --stdin-from-command`, empty streams), profiles with
//! components (`--profile`, `--component`, hooks, per-component retention) and `arca generate`.

use crate::common::*;
use std::fs;

/// The snapshot files in the repository.
fn snapshot_count(env: &Env) -> usize {
    repo_files(&env.repo, arca::backend::FileType::Snapshot).len()
}

// ---- safe database streams ------------------------------------------------------------------

#[test]
fn stdin_from_command_saves_its_output_byte_identical() {
    let env = Env::new();
    let data = random_bytes(7, 3 << 20);
    let src = env.path("dump.bin");
    fs::write(&src, &data).unwrap();
    let out = env
        .run(&[
            "--json",
            "backup",
            "--stdin-from-command",
            "--stdin-filename",
            "db.sql",
            "--",
            "cat",
            src.to_str().unwrap(),
        ])
        .ok();
    assert!(out.json()["snapshot"].is_string());
    assert_eq!(env.run(&["dump", "latest:db.sql"]).ok().stdout, data);
    let target = env.path("restored");
    env.restore("latest", &target, &[]);
    assert_eq!(fs::read(target.join("db.sql")).unwrap(), data);
    // Arguments that look like options belong to the command, not to arca.
    env.run(&["backup", "--stdin-from-command", "--stdin-filename", "e.txt", "--", "echo", "-n", "--tag"]).ok();
    assert_eq!(env.run(&["dump", "latest:e.txt"]).ok().stdout, b"--tag");
}

#[test]
fn stdin_from_command_failing_writes_no_snapshot() {
    let env = Env::new();
    let out =
        env.run(&["backup", "--stdin-from-command", "--", "sh", "-c", "echo partial; echo oops >&2; exit 3"]).code(1);
    assert!(out.stderr.contains("exited with status 3"), "{}", out.stderr);
    assert!(out.stderr.contains("sh -c"), "names the command: {}", out.stderr);
    assert!(out.stderr.contains("no snapshot was written"), "{}", out.stderr);
    // The command's own stderr is shown.
    assert!(out.stderr.contains("oops"), "{}", out.stderr);
    assert_eq!(snapshot_count(&env), 0);

    let out = env.run(&["backup", "--stdin-from-command", "--", "sh", "-c", "echo partial; kill -9 $$"]).code(1);
    assert!(out.stderr.contains("killed by signal 9"), "{}", out.stderr);
    assert_eq!(snapshot_count(&env), 0);

    let out = env.run(&["backup", "--stdin-from-command", "--", "arca-no-such-binary-xyz", "db"]).code(1);
    assert!(out.stderr.contains("arca-no-such-binary-xyz"), "{}", out.stderr);
    assert!(out.stderr.contains("could not start"), "{}", out.stderr);
    assert_eq!(snapshot_count(&env), 0);

    // The journal records each refused stream as a failed backup that names no snapshot.
    let failed = env.json(&["journal", "--failed"]);
    assert_eq!(failed.as_array().unwrap().len(), 3, "{failed}");
    assert!(failed.as_array().unwrap().iter().all(|r| r["snapshots"].as_array().unwrap().is_empty()));
    // No command at all is a usage error.
    env.run(&["backup", "--stdin-from-command"]).code(2);
    // The repository is still sound, and the next good backup works (adopting the orphan packs).
    env.run(&["check", "--read-data"]).ok();
    env.run(&["backup", "--stdin-from-command", "--", "echo", "fine"]).ok();
    assert_eq!(snapshot_count(&env), 1);
    assert_eq!(env.run(&["dump", "latest:stdin"]).ok().stdout, b"fine\n");
}

#[test]
fn empty_streams_are_refused_unless_allowed() {
    let env = Env::new();
    let out = env.run(&["backup", "--stdin-from-command", "--", "true"]).code(1);
    assert!(out.stderr.contains("empty"), "{}", out.stderr);
    assert!(out.stderr.contains("--allow-empty"), "{}", out.stderr);
    let out = env.run_stdin(&["backup", "--stdin"], Vec::new()).code(1);
    assert!(out.stderr.contains("empty"), "{}", out.stderr);
    assert_eq!(snapshot_count(&env), 0);
    env.run(&["backup", "--stdin-from-command", "--allow-empty", "--", "true"]).ok();
    env.run_stdin(&["backup", "--stdin", "--allow-empty"], Vec::new()).ok();
    assert_eq!(snapshot_count(&env), 2);
    assert_eq!(env.run(&["dump", "latest:stdin"]).ok().stdout, b"");
}

// ---- profiles -------------------------------------------------------------------------------

/// A web application's sources under `env`: `etc/app.conf`, `uploads/`, `logs/` (with a
/// `*.tmp` to exclude) and a "database" (`db.bin`, dumped with `cat`). Returns the config path.
fn web_app(env: &Env, db_command: &str, extra: &str) -> std::path::PathBuf {
    fs::create_dir_all(env.path("app/etc")).unwrap();
    fs::create_dir_all(env.path("app/uploads/2024")).unwrap();
    fs::create_dir_all(env.path("app/logs")).unwrap();
    fs::write(env.path("app/etc/app.conf"), b"listen = 8080\n").unwrap();
    write_random_file(&env.path("app/uploads/2024/photo.jpg"), 11, 300_000);
    fs::write(env.path("app/logs/access.log"), b"GET /\n").unwrap();
    fs::write(env.path("app/logs/scratch.tmp"), b"junk").unwrap();
    write_random_file(&env.path("db.bin"), 12, 1 << 20);
    fs::write(env.path("pw"), format!("{PASSWORD}\n")).unwrap();
    let p = |rel: &str| env.path(rel).to_str().unwrap().to_string();
    let text = format!(
        r#"[repository.main]
path = "{repo}"
password-file = "{pw}"

[profile.app]
max-age = "26h"
hooks.after = [["sh", "-c", "env | grep ^ARCA_ > {after}"]]
hooks.on-failure = [["sh", "-c", "env | grep ^ARCA_ > {fail}"]]
{extra}
[profile.app.component.db]
command = {db_command}
filename = "app.sql"
keep-last = 1

[profile.app.component.config]
paths = ["{etc}"]
keep-last = 2

[profile.app.component.uploads]
paths = ["{uploads}"]

[profile.app.component.logs]
paths = ["{logs}"]
excludes = ["*.tmp"]
"#,
        repo = env.repo.display(),
        pw = p("pw"),
        after = p("after.env"),
        fail = p("fail.env"),
        etc = p("app/etc"),
        uploads = p("app/uploads"),
        logs = p("app/logs"),
    );
    let cfg = env.path("config.toml");
    fs::write(&cfg, text).unwrap();
    cfg
}

/// `arca --config CFG ARGS` with no repository or password in the environment: the profile
/// supplies both.
fn run_cfg(cfg: &std::path::Path, args: &[&str]) -> Out {
    Out::from(arca_cmd().arg("--config").arg(cfg).args(args).output().unwrap())
}

fn cat_db(env: &Env) -> String {
    format!(r#"["cat", "{}"]"#, env.path("db.bin").display())
}

#[test]
fn profile_backup_makes_one_tagged_snapshot_per_component_and_restores_by_name() {
    let env = Env::new();
    // A hook that prints does not spoil --json output.
    let cfg = web_app(&env, &cat_db(&env), "hooks.before = [[\"echo\", \"starting\"]]\n");
    let out = run_cfg(&cfg, &["--json", "backup", "--profile", "app"]).ok();
    assert!(out.stderr.contains("starting"), "{}", out.stderr);
    let out = out.json();
    let comps = out["components"].as_array().unwrap();
    assert_eq!(comps.len(), 4);
    let snaps = env.json(&["snapshots"]);
    let snaps = snaps.as_array().unwrap();
    assert_eq!(snaps.len(), 4);
    for name in ["db", "config", "uploads", "logs"] {
        let tag = format!("component={name}");
        let n = snaps.iter().filter(|s| s["tags"].as_array().unwrap().iter().any(|t| t == &tag[..])).count();
        assert_eq!(n, 1, "one snapshot tagged {tag}");
    }
    assert!(snaps.iter().all(|s| s["tags"].as_array().unwrap().iter().any(|t| t == "profile=app")));
    // The after hook saw the profile, the components and the snapshots.
    let after = fs::read_to_string(env.path("after.env")).unwrap();
    assert!(after.contains("ARCA_PROFILE=app"), "{after}");
    assert!(after.contains("ARCA_COMPONENT=config,db,logs,uploads"), "{after}");
    assert!(after.contains("ARCA_EXIT_CODE=0"), "{after}");
    let ids = after.lines().find_map(|l| l.strip_prefix("ARCA_SNAPSHOT=")).unwrap();
    assert_eq!(ids.split(' ').count(), 4, "{after}");
    assert!(!env.path("fail.env").exists());
    // One journal record per component, labelled with it.
    let journal = env.json(&["journal", "--op", "backup"]);
    let mut comps: Vec<String> = journal
        .as_array()
        .unwrap()
        .iter()
        .inspect(|r| assert_eq!(r["outcome"], "ok"))
        .inspect(|r| assert_eq!(r["labels"]["profile"], "app"))
        .map(|r| r["labels"]["component"].as_str().unwrap().to_string())
        .collect();
    comps.sort();
    assert_eq!(comps, ["config", "db", "logs", "uploads"]);

    // Restore only the database and the configuration, each into its own directory.
    let target = env.path("restored");
    let t = target.to_str().unwrap();
    run_cfg(&cfg, &["restore", "--profile", "app", "--component", "config,db", "latest", "--target", t]).ok();
    assert_eq!(fs::read(target.join("db/app.sql")).unwrap(), fs::read(env.path("db.bin")).unwrap());
    let etc = env.path("app/etc");
    let conf = target.join("config").join(etc.strip_prefix("/").unwrap()).join("app.conf");
    assert_eq!(fs::read(conf).unwrap(), b"listen = 8080\n");
    assert!(!target.join("uploads").exists() && !target.join("logs").exists());
    let restores = env.json(&["journal", "--op", "restore"]);
    let restores = restores.as_array().unwrap();
    assert_eq!(restores.len(), 2, "{restores:?}");
    assert!(restores.iter().all(|r| r["outcome"] == "ok" && r["snapshots"].as_array().unwrap().len() == 1));
    // The logs component left out its excluded file.
    run_cfg(&cfg, &["restore", "--profile", "app", "--component", "logs", "latest", "--target", t]).ok();
    let logs = target.join("logs").join(env.path("app/logs").strip_prefix("/").unwrap());
    assert!(logs.join("access.log").exists());
    assert!(!logs.join("scratch.tmp").exists());
}

#[test]
fn a_failing_component_does_not_stop_the_others_and_runs_the_failure_hook() {
    let env = Env::new();
    let cfg = web_app(&env, r#"["sh", "-c", "echo half; exit 3"]"#, "");
    let out = run_cfg(&cfg, &["backup", "--profile", "app"]).code(1);
    assert!(out.stderr.contains("component db") && out.stderr.contains("exited with status 3"), "{}", out.stderr);
    let snaps = env.json(&["snapshots"]);
    let tags: Vec<String> = snaps.as_array().unwrap().iter().map(|s| s["tags"].to_string()).collect();
    assert_eq!(tags.len(), 3, "config, uploads and logs were saved: {tags:?}");
    assert!(tags.iter().all(|t| !t.contains("component=db")));
    let fail = fs::read_to_string(env.path("fail.env")).unwrap();
    assert!(fail.contains("ARCA_EXIT_CODE=1"), "{fail}");
    assert!(fail.contains("ARCA_ERROR=db: ") && fail.contains("status 3"), "{fail}");
    assert!(!env.path("after.env").exists(), "the after hook runs only when all succeeded");
    let failed = env.json(&["journal", "--failed"]);
    let failed = failed.as_array().unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["labels"]["component"], "db");
    assert!(failed[0]["errors"][0].as_str().unwrap().contains("status 3"), "{failed:?}");
}

#[test]
fn a_failing_before_hook_aborts_the_backup() {
    let env = Env::new();
    let cfg = web_app(&env, &cat_db(&env), "hooks.before = [[\"sh\", \"-c\", \"exit 7\"]]\n");
    let out = run_cfg(&cfg, &["backup", "--profile", "app"]).code(1);
    assert!(out.stderr.contains("before hook") && out.stderr.contains("status 7"), "{}", out.stderr);
    assert_eq!(snapshot_count(&env), 0);
    let fail = fs::read_to_string(env.path("fail.env")).unwrap();
    assert!(fail.contains("ARCA_ERROR=before hook"), "{fail}");
    // Each component's backup is on record as failed, with the hook's error.
    let rs = env.json(&["journal", "--failed"]);
    let rs = rs.as_array().unwrap();
    assert_eq!(rs.len(), 4, "{rs:?}");
    assert!(rs.iter().all(|r| r["op"] == "backup" && r["outcome"] == "failed"));
    assert!(rs[0]["errors"][0].as_str().unwrap().contains("before hook"));
}

#[test]
fn profile_typos_are_usage_errors_that_list_the_valid_names() {
    let env = Env::new();
    let cfg = web_app(&env, &cat_db(&env), "");
    let out = run_cfg(&cfg, &["backup", "--profile", "ap"]).code(2);
    assert!(out.stderr.contains("\"ap\"") && out.stderr.contains("profiles: app"), "{}", out.stderr);
    let out = run_cfg(&cfg, &["backup", "--profile", "app", "--component", "db,databse"]).code(2);
    assert!(out.stderr.contains("\"databse\""), "{}", out.stderr);
    assert!(out.stderr.contains("components: config, db, logs, uploads"), "{}", out.stderr);
    let t = env.path("r");
    let out = run_cfg(
        &cfg,
        &["restore", "--profile", "app", "--component", "dbx", "latest", "--target", t.to_str().unwrap()],
    );
    out.code(2);
    run_cfg(&cfg, &["forget", "--profile", "nope"]).code(2);
    assert_eq!(snapshot_count(&env), 0);

    // An unknown key and a bad value name their line.
    let text = fs::read_to_string(&cfg).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let bad = env.path("bad.toml");
    fs::write(&bad, text.replace("excludes = [", "exclude = [")).unwrap();
    let out = run_cfg(&bad, &["backup", "--profile", "app"]).code(2);
    assert!(out.stderr.contains(&format!("line {}", line_of("excludes = ["))), "{}", out.stderr);
    assert!(out.stderr.contains("unknown field `exclude`"), "{}", out.stderr);
    fs::write(&bad, text.replace("keep-last = 2", "keep-last = \"two\"")).unwrap();
    let out = run_cfg(&bad, &["backup", "--profile", "app"]).code(2);
    assert!(out.stderr.contains(&format!("line {}", line_of("keep-last = 2"))), "{}", out.stderr);
    fs::write(&bad, text.replace("max-age = \"26h\"", "max-age = \"soon\"")).unwrap();
    let out = run_cfg(&bad, &["backup", "--profile", "app"]).code(2);
    assert!(out.stderr.contains(&format!("line {}", line_of("max-age"))), "{}", out.stderr);
    // A missing configuration file.
    let out = run_cfg(&env.path("none.toml"), &["backup", "--profile", "app"]).code(2);
    assert!(out.stderr.contains("none.toml"), "{}", out.stderr);
    // A profile with paths given on the command line.
    run_cfg(&cfg, &["backup", "--profile", "app", "/etc"]).code(2);
    assert_eq!(snapshot_count(&env), 0);
}

#[test]
fn the_configuration_is_found_through_arca_config_and_xdg() {
    let env = Env::new();
    let cfg = web_app(&env, &cat_db(&env), "");
    let xdg = env.mkdir("xdg");
    fs::create_dir_all(xdg.join("arca")).unwrap();
    fs::copy(&cfg, xdg.join("arca/config.toml")).unwrap();
    let run = |envs: &[(&str, &std::path::Path)]| {
        let mut c = arca_cmd();
        c.env_remove("ARCA_CONFIG").env_remove("XDG_CONFIG_HOME");
        for (k, v) in envs {
            c.env(k, v);
        }
        Out::from(c.args(["backup", "--profile", "app", "--component", "config"]).output().unwrap())
    };
    run(&[("ARCA_CONFIG", &cfg)]).ok();
    run(&[("XDG_CONFIG_HOME", &xdg)]).ok();
    run(&[("HOME", &env.path("nohome"))]).code(2);
    assert_eq!(snapshot_count(&env), 2);
}

#[test]
fn forget_profile_applies_each_components_retention_to_its_own_snapshots() {
    let env = Env::new();
    let cfg = web_app(&env, &cat_db(&env), "");
    // A snapshot outside the profile is never touched.
    env.backup(&[&env.path("app/etc")], &[]);
    for i in 0..3 {
        fs::write(env.path("app/etc/app.conf"), format!("v{i}")).unwrap();
        run_cfg(&cfg, &["backup", "--profile", "app", "--component", "db,config,uploads"]).ok();
    }
    run_cfg(&cfg, &["forget", "--profile", "app"]).ok();
    let snaps = env.json(&["snapshots"]);
    let count = |tag: &str| {
        snaps.as_array().unwrap().iter().filter(|s| s["tags"].as_array().unwrap().iter().any(|t| t == tag)).count()
    };
    assert_eq!(count("component=db"), 1, "db keeps the last 1");
    assert_eq!(count("component=config"), 2, "config keeps the last 2");
    assert_eq!(count("component=uploads"), 3, "uploads has no retention: all kept");
    assert_eq!(snaps.as_array().unwrap().len(), 1 + 2 + 3 + 1);
    // --keep-* rules or IDs with --profile are a usage error.
    run_cfg(&cfg, &["forget", "--profile", "app", "--keep-last", "1"]).code(2);
    // The newest config snapshot restores the newest content.
    let t = env.path("r");
    run_cfg(&cfg, &["restore", "--profile", "app", "--component", "config", "latest", "--target", t.to_str().unwrap()])
        .ok();
    let conf = t.join("config").join(env.path("app/etc").strip_prefix("/").unwrap()).join("app.conf");
    assert_eq!(fs::read(conf).unwrap(), b"v2");
}

// ---- generate -------------------------------------------------------------------------------

/// `key=value` lines of a unit file, in order.
fn unit_keys(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn unit_value(keys: &[(String, String)], key: &str) -> Option<String> {
    keys.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// `systemd-analyze verify` of unit files, when systemd's tools are installed (CI installs them).
pub(crate) fn systemd_verify(files: &[std::path::PathBuf]) {
    if std::process::Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let out = std::process::Command::new("systemd-analyze").arg("verify").args(files).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("rror"), "systemd-analyze verify:\n{err}");
}

#[test]
fn generate_systemd_writes_a_service_that_backs_up_the_profile_and_a_persistent_timer() {
    let env = Env::new();
    let cfg = web_app(&env, &cat_db(&env), "");
    let dir = env.mkdir("units");
    run_cfg(&cfg, &["generate", "systemd", "--profile", "app", "--every", "4h", "--dir", dir.to_str().unwrap()]).ok();
    let service = fs::read_to_string(dir.join("arca-app-backup.service")).unwrap();
    let timer = fs::read_to_string(dir.join("arca-app-backup.timer")).unwrap();
    let s = unit_keys(&service);
    let t = unit_keys(&timer);
    assert_eq!(unit_value(&s, "Type").as_deref(), Some("oneshot"));
    let exec = unit_value(&s, "ExecStart").unwrap();
    let want = format!("--config {} backup --profile app", cfg.display());
    assert!(exec.contains(&want), "{exec}");
    assert!(exec.starts_with('/'), "the binary by its absolute path: {exec}");
    assert_eq!(unit_value(&t, "OnCalendar").as_deref(), Some("*-*-* 00/4:00:00"));
    assert_eq!(unit_value(&t, "Persistent").as_deref(), Some("true"));
    assert_eq!(unit_value(&t, "Unit").as_deref(), Some("arca-app-backup.service"));
    assert_eq!(unit_value(&t, "WantedBy").as_deref(), Some("timers.target"));
    // Status runs every 5 minutes whatever the profile says.
    let status = fs::read_to_string(dir.join("arca-app-status.service")).unwrap();
    assert!(status.contains("status --profile app"), "{status}");
    let files: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    systemd_verify(&files);

    // What the service runs works: it backs up every component (paths here have no spaces).
    let words: Vec<&str> = exec.split(' ').collect();
    let out = arca_std_cmd().args(&words[1..]).env_remove("ARCA_CONFIG").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(snapshot_count(&env), 4);

    // A period that does not divide a day is a monotonic timer; printed, the units are shown.
    let out = run_cfg(&cfg, &["generate", "systemd", "--profile", "app", "--every", "5h"]).ok().text();
    assert!(out.contains("# arca-app-backup.service") && out.contains("# arca-app-backup.timer"), "{out}");
    assert!(out.contains("OnUnitActiveSec=300min"), "{out}");
    let out =
        run_cfg(&cfg, &["generate", "systemd", "--profile", "app", "--on-calendar", "Mon *-*-* 02:00"]).ok().text();
    assert!(out.contains("OnCalendar=Mon *-*-* 02:00\nPersistent=true"), "{out}");

    // Bad input: a profile typo (nothing written), a period below a minute, no schedule at all.
    let other = env.mkdir("other");
    let o = other.to_str().unwrap();
    let out = run_cfg(&cfg, &["generate", "systemd", "--profile", "ap", "--every", "4h", "--dir", o]).code(2);
    assert!(out.stderr.contains("profiles: app"), "{}", out.stderr);
    run_cfg(&cfg, &["generate", "systemd", "--profile", "app", "--every", "10s", "--dir", o]).code(2);
    let out = run_cfg(&cfg, &["generate", "systemd", "--profile", "app", "--dir", o]).code(2);
    assert!(out.stderr.contains("has no schedule"), "{}", out.stderr);
    assert_eq!(fs::read_dir(&other).unwrap().count(), 0);
}

#[test]
fn generate_completions_and_man() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Out::from(arca_cmd().args(["generate", "completions", shell]).output().unwrap()).ok().text();
        assert!(out.len() > 1000 && out.contains("stdin-from-command"), "{shell}: {} bytes", out.len());
    }
    Out::from(arca_cmd().args(["generate", "completions", "tcsh"]).output().unwrap()).code(2);
    let man = Out::from(arca_cmd().args(["generate", "man"]).output().unwrap()).ok().text();
    assert!(man.contains(".TH arca 1") && man.contains("backup"), "{man}");
    let dir = tempfile::tempdir().unwrap();
    Out::from(arca_cmd().args(["generate", "man", "--dir"]).arg(dir.path()).output().unwrap()).ok();
    let page = fs::read_to_string(dir.path().join("arca-backup.1")).unwrap();
    assert!(page.contains("arca\\-backup") && page.contains("profile"), "{page}");
    assert!(dir.path().join("arca.1").exists());
}

/// Defect: a leftover `ARCA_REPOSITORY` (or `-r`) silently sent a profile's backups to another
/// repository. Now a repository other than the profile's is a usage error naming both; the
/// profile's own repository given again is fine.
#[test]
fn the_profiles_password_command_is_used_and_another_repository_is_refused() {
    let env = Env::new();
    let cfg = web_app(&env, &cat_db(&env), "");
    let text = fs::read_to_string(&cfg).unwrap();
    let pw_file = format!("password-file = \"{}\"", env.path("pw").display());
    let text = text.replace(&pw_file, &format!("password-command = \"printf '%s\\\\n' '{PASSWORD}'\""));
    assert!(text.contains("password-command"), "{text}");
    fs::write(&cfg, &text).unwrap();
    run_cfg(&cfg, &["backup", "--profile", "app", "--component", "config"]).ok();
    assert_eq!(snapshot_count(&env), 1);
    let other = Env::new();
    let with_repo = |repo: &std::path::Path, args: &[&str]| {
        Out::from(arca_cmd().arg("--config").arg(&cfg).env("ARCA_REPOSITORY", repo).args(args).output().unwrap())
    };
    let out = with_repo(&other.repo, &["backup", "--profile", "app", "--component", "db"]).code(2);
    assert!(
        out.stderr.contains(other.repo.to_str().unwrap()) && out.stderr.contains("repository main"),
        "{}",
        out.stderr
    );
    assert_eq!((snapshot_count(&other), snapshot_count(&env)), (0, 1), "nothing was backed up anywhere");
    // The same repository, written another way, is no conflict.
    let same = env.dir.path().join(".").join("repo");
    with_repo(&same, &["backup", "--profile", "app", "--component", "db"]).ok();
    assert_eq!(snapshot_count(&env), 2);
    // Usage errors: --component without --profile, --stdin with --stdin-from-command.
    env.run(&["backup", "--component", "db"]).code(2);
    env.run(&["backup", "--stdin", "--stdin-from-command", "--", "true"]).code(2);
}

#[test]
fn children_never_inherit_the_repository_password() {
    let env = Env::new();
    let cfg = web_app(&env, r#"["sh", "-c", "env | grep -c ^ARCA_PASSWORD= || true"]"#, "");
    // The password given through the environment, as cron jobs often do.
    let out = Out::from(
        arca_cmd()
            .arg("--config")
            .arg(&cfg)
            .env("ARCA_PASSWORD", PASSWORD)
            .args(["backup", "--profile", "app"])
            .output()
            .unwrap(),
    )
    .ok();
    assert_eq!(env.run(&["dump", "latest:app.sql", "--tag", "component=db"]).ok().text(), "0\n", "{}", out.stderr);
    let hook_env = fs::read_to_string(env.path("after.env")).unwrap();
    assert!(hook_env.contains("ARCA_PROFILE=app"), "{hook_env}");
    assert!(!hook_env.contains("ARCA_PASSWORD"), "a hook saw the password: {hook_env}");
}

#[test]
fn drill_of_a_profile_drills_each_component() {
    let env = Env::new();
    let cfg = web_app(&env, &cat_db(&env), "");
    run_cfg(&cfg, &["backup", "--profile", "app"]).ok();
    let out = run_cfg(&cfg, &["--json", "drill", "--profile", "app", "--component", "db,config"]).ok();
    let v = out.json();
    let comps = v["components"].as_array().unwrap();
    assert_eq!(comps.len(), 2, "{v}");
    let db = comps.iter().find(|c| c["component"] == "db").expect("db drilled");
    assert_eq!(db["drilled"]["bytes"], 1 << 20);
    assert_eq!(db["ok"], true);
    let config = comps.iter().find(|c| c["component"] == "config").expect("config drilled");
    assert_eq!(config["ok"], true);
    let rs = env.json(&["journal", "--op", "drill"]);
    let mut labels: Vec<&str> =
        rs.as_array().unwrap().iter().map(|r| r["labels"]["component"].as_str().unwrap()).collect();
    labels.sort();
    assert_eq!(labels, ["config", "db"]);
}

/// A component's `restore-command` gets the whole dump; one that exits 0 before reading all of
/// it has not restored the database: the restore fails (exit 1) saying how far it got.
#[test]
fn a_restore_command_gets_the_whole_stream_or_the_restore_fails() {
    let env = Env::new();
    let cfg = web_app(&env, &cat_db(&env), "");
    run_cfg(&cfg, &["backup", "--profile", "app", "--component", "db"]).ok();
    let text = fs::read_to_string(&cfg).unwrap();
    let with = |cmd: &str| {
        let line = format!("filename = \"app.sql\"\nrestore-command = {cmd}\n");
        fs::write(&cfg, text.replace("filename = \"app.sql\"\n", &line)).unwrap();
    };
    let restore = ["restore", "--profile", "app", "--component", "db", "latest", "--in-place"];
    let loaded = env.path("loaded.sql");
    with(&format!(r#"["sh", "-c", "cat > {}"]"#, loaded.display()));
    run_cfg(&cfg, &restore).ok();
    assert_eq!(hash_file(&loaded), hash_file(&env.path("db.bin")));
    with(r#"["sh", "-c", "head -c 1000 > /dev/null"]"#);
    let out = run_cfg(&cfg, &restore).code(1);
    assert!(out.stderr.contains("stopped reading after"), "{}", out.stderr);
    let rec = env.json(&["journal", "--op", "restore", "--last", "1"]);
    assert_eq!(rec[0]["outcome"], "failed", "{rec}");
}
