//! The README's disaster-recovery runbook, run as written: its configuration and every line of
//! its three command blocks, with the test's paths, against a real PostgreSQL server started
//! for the test (initdb and pg_ctl from Debian's `postgresql`, which `.ci/run` installs).

use crate::common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A private PostgreSQL server on a Unix socket in a temporary directory, stopped when dropped.
struct Pg {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

/// Run as the `postgres` user when we are root (the server refuses to run as root).
fn as_postgres(bin: &Path, args: &[&str]) -> Command {
    let mut c = match is_root() {
        true => {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin);
            c
        }
        false => Command::new(bin),
    };
    c.args(args);
    c
}

impl Pg {
    fn start() -> Pg {
        let bin = ["/usr/lib/postgresql"]
            .iter()
            .filter_map(|d| fs::read_dir(d).ok())
            .flatten()
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists())
            .max()
            .expect("PostgreSQL's initdb (Debian's postgresql package; .ci/run installs it)");
        let dir = tempfile::Builder::new().prefix("arca-pg-").tempdir().unwrap();
        if is_root() {
            Command::new("chown").arg("postgres").arg(dir.path()).status().unwrap();
        }
        let data = dir.path().join("data");
        let ok = |mut c: Command, what: &str| {
            let out = c.output().unwrap();
            assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
        };
        ok(
            as_postgres(&bin.join("initdb"), &["-D", data.to_str().unwrap(), "--auth=trust", "-U", "postgres"]),
            "initdb",
        );
        let opts = format!("-k {} -c listen_addresses='' -F", dir.path().display());
        let log = dir.path().join("log");
        ok(
            as_postgres(
                &bin.join("pg_ctl"),
                &["-D", data.to_str().unwrap(), "-o", &opts, "-l", log.to_str().unwrap(), "-w", "start"],
            ),
            "pg_ctl start",
        );
        let pg = Pg { dir, bin };
        let me = arca::sys::username();
        let mut c = as_postgres(&pg.bin.join("createuser"), &["-s", &me]);
        c.env("PGHOST", pg.dir.path());
        ok(c, "createuser");
        pg
    }

    fn host(&self) -> &Path {
        self.dir.path()
    }

    /// `psql -tAc SQL DB` as the current user.
    fn sql(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql").args(["-tAc", sql, db]).env("PGHOST", self.host()).output().unwrap();
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ =
            as_postgres(&self.bin.join("pg_ctl"), &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"]).output();
    }
}

/// The README's code block that starts with `first` (its text, without the fences).
fn block<'a>(readme: &'a str, fence: &str, first: &str) -> &'a str {
    let start =
        readme.find(&format!("{fence}\n{first}")).unwrap_or_else(|| panic!("README block {first:?}")) + fence.len() + 1;
    &readme[start..][..readme[start..].find("```").unwrap()]
}

/// `text` with each README path replaced by the test's.
fn localize(text: &str, subs: &[(String, String)]) -> String {
    subs.iter().fold(text.to_string(), |t, (from, to)| t.replace(from, to))
}

/// Run a block as a bash script (`set -euo pipefail`, traced): every line must succeed.
fn run_block(script: &str, env_vars: &[(&str, &Path)]) {
    let bin = arca_bin();
    let path = format!("{}:{}", bin.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let mut c = Command::new("bash");
    c.arg("-c").arg(format!("set -euo pipefail -x\n{script}"));
    for v in ["ARCA_REPOSITORY", "ARCA_PASSWORD", "ARCA_PASSWORD_FILE", "ARCA_PASSWORD_COMMAND", "ARCA_CONFIG"] {
        c.env_remove(v);
    }
    c.env("PATH", path).env("XDG_CONFIG_HOME", "/nonexistent/arca-test-config");
    for (k, v) in env_vars {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "a runbook line failed:\n{}\nstdout:\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Local time, seconds, as `--before` takes it.
fn local_now() -> String {
    arca::localtime::format(arca::sys::now_secs() * 1_000_000_000)
}

#[test]
fn the_readme_runbook_runs_as_written() {
    let readme = include_str!("../../README.md");
    let env = Env::bare();
    let pg = Pg::start();
    let root = env.dir.path();
    let p = |rel: &str| root.join(rel);
    // The shop: its database, uploads, configuration, logs; the notifier and cache flusher.
    pg.sql("postgres", "create database shop");
    pg.sql("shop", "create table orders(id int primary key, item text)");
    pg.sql("shop", "insert into orders select g, 'item ' || g from generate_series(1, 100) g");
    for d in ["srv/shop/uploads", "etc/nginx", "etc/shop", "var/log/shop", "mnt", "units", "srv/restore"] {
        fs::create_dir_all(p(d)).unwrap();
    }
    write_random_file(&p("srv/shop/uploads/photo-1.jpg"), 1, 200_000);
    fs::write(p("etc/nginx/nginx.conf"), "worker_processes 2;\n").unwrap();
    fs::write(p("etc/shop/shop.toml"), "currency = \"EUR\"\n").unwrap();
    fs::write(p("var/log/shop/access.log"), "GET /\n").unwrap();
    fs::write(p("var/log/shop/old.log.gz"), "zz").unwrap();
    fs::write(p("password"), format!("{PASSWORD}\n")).unwrap();
    fs::write(p("offsite.pw"), "another secret\n").unwrap();
    let script = |name: &str, body: &str| {
        let f = p(name);
        fs::write(&f, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        f
    };
    script(
        "notify-ops",
        &format!("cat >> {}\nenv | grep ^ARCA_ >> {}", p("alerts.json").display(), p("alerts.env").display()),
    );
    script("shop-ctl", "exit 0");
    let subs: Vec<(String, String)> = [
        ("/etc/arca/config.toml", "config.toml"),
        ("/srv/backup/arca", "repo"),
        ("/etc/arca/password", "password"),
        ("/etc/arca/offsite.pw", "offsite.pw"),
        ("/mnt/offsite/shop", "mnt/offsite"),
        ("/usr/local/bin/notify-ops", "notify-ops"),
        ("/usr/local/bin/shop-ctl", "shop-ctl"),
        ("/srv/shop/uploads", "srv/shop/uploads"),
        ("/etc/nginx", "etc/nginx"),
        ("/etc/shop", "etc/shop"),
        ("/var/log/shop", "var/log/shop"),
        ("/etc/systemd/system", "units"),
        ("/var/lib/node_exporter/textfile/arca.prom", "arca.prom"),
        ("/srv/restore", "srv/restore"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), p(b).display().to_string()))
    // The free space this machine has is not the README's concern.
    .chain([("min-free = \"10%\"".to_string(), "min-free = \"1M\"".to_string())])
    .collect();
    let config = localize(block(readme, "```toml", "# /etc/arca/config.toml"), &subs);
    fs::write(p("config.toml"), config).unwrap();
    let pghost: &[(&str, &Path)] = &[("PGHOST", pg.host())];

    // Once.
    run_block(&localize(block(readme, "```sh", "export ARCA_CONFIG="), &subs), pghost);
    let alert = fs::read_to_string(p("alerts.json")).unwrap();
    assert!(alert.contains("\"test\": true") && alert.contains("\"profile\": \"shop\""), "{alert}");
    let units: Vec<PathBuf> = fs::read_dir(p("units")).unwrap().map(|e| e.unwrap().path()).collect();
    let names: Vec<String> = units.iter().map(|u| u.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for want in [
        "arca-shop-backup-daily.timer",
        "arca-shop-backup-4h.service",
        "arca-shop-check.timer",
        "arca-shop-alert@.service",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} among {names:?}");
    }
    crate::ops_profile::systemd_verify(&units);

    // Two days of what the timers run, with the shop changing in between.
    // (Each block runs in a shell of its own: the first block's `export` is given again.)
    let export = format!("export ARCA_CONFIG={}\n", p("config.toml").display());
    let timers = export.clone() + &localize(block(readme, "```sh", "arca backup --profile shop\n"), &subs);
    run_block(&timers, pghost);
    pg.sql("shop", "insert into orders select g, 'item ' || g from generate_series(101, 150) g");
    fs::write(p("etc/shop/shop.toml"), "currency = \"CHF\"\n").unwrap();
    write_random_file(&p("srv/shop/uploads/photo-2.jpg"), 2, 300_000);
    run_block(&timers, pghost);
    let offsite = Env { dir: tempfile::tempdir().unwrap(), repo: p("mnt/offsite") };
    let copied =
        Out::from(offsite.cmd().env("ARCA_PASSWORD", "another secret").args(["--json", "snapshots"]).output().unwrap());
    assert!(copied.ok().json().as_array().unwrap().len() >= 8, "the after hook copied each backup off-site");

    // The incident: after a moment, a table dropped, the configuration overwritten, an upload
    // deleted, and the 4-hourly dump taken of the damage.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let incident = local_now();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    pg.sql("shop", "drop table orders");
    fs::write(p("etc/shop/shop.toml"), "currency = \"???\"\n").unwrap();
    fs::remove_file(p("srv/shop/uploads/photo-2.jpg")).unwrap();
    run_block(&format!("{export}arca backup --profile shop"), pghost);

    let mut subs = subs;
    subs.push(("2026-12-07 12:00".into(), incident));
    let after = localize(block(readme, "```sh", "arca snapshots --profile shop --latest"), &subs);
    run_block(&format!("{export}{after}"), pghost);
    assert_eq!(pg.sql("shop", "select count(*) from orders"), "150", "the database as before the incident");
    assert_eq!(fs::read_to_string(p("etc/shop/shop.toml")).unwrap(), "currency = \"CHF\"\n");
    assert_eq!(hash_file(&p("srv/shop/uploads/photo-2.jpg")), hash_reader(&random_bytes(2, 300_000)[..]));
    assert!(p("srv/restore/config").join(p("etc/shop/shop.toml").strip_prefix("/").unwrap()).exists());
}
