//! `arca status`: objectives met and missed (exit 0 / 6), JSON fields, size anomalies (exit 7),
//! what the journal supplies (last check, drill and RTO, failures), Prometheus text and its
//! atomic file, and damaged snapshot and journal files (warnings, exit 4, the rest reported).

use crate::common::*;
use arca::backend::FileType;
use arca::ops::journal::{self, Op, Outcome};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fs;

fn status(env: &Env, args: &[&str], code: i32) -> Value {
    let mut a = vec!["--json", "status"];
    a.extend_from_slice(args);
    env.run(&a).code(code).json()
}

fn groups(v: &Value) -> Vec<Value> {
    v["groups"].as_array().unwrap().clone()
}

fn source(env: &Env, name: &str, len: u64) -> std::path::PathBuf {
    let src = env.mkdir(name);
    write_random_file(&src.join("data.bin"), len, len);
    src
}

/// `backup --stdin` of `bytes` under `name`; an empty stream needs `--allow-empty` where the
/// backup command knows it (it refuses empty streams there).
fn backup_stream(env: &Env, name: &str, bytes: &[u8]) -> String {
    let mut a = vec!["--json", "backup", "--stdin", "--stdin-filename", name];
    let help = env.run(&["backup", "--help"]).ok().text();
    if bytes.is_empty() && help.contains("--allow-empty") {
        a.push("--allow-empty");
    }
    env.run_stdin(&a, bytes.to_vec()).ok().json()["snapshot"].as_str().unwrap().to_string()
}

#[test]
fn an_old_newest_snapshot_misses_the_objective() {
    let env = Env::new();
    let src = source(&env, "src", 1000);
    env.backup(&[&src], &["--time", "2024-01-01 00:00:00"]);
    let v = status(&env, &["--max-age", "1h"], 6);
    let g = &groups(&v)[0];
    assert_eq!(g["objective_met"], false);
    assert_eq!(g["max_age_ns"], 3_600_000_000_000u64);
    assert!(g["age_ns"].as_u64().unwrap() > 3_600_000_000_000, "{g:#}");
    assert_eq!(v["objective_missed"], true);
    let text = env.run(&["status", "--max-age", "1h"]).code(6).text();
    assert!(text.contains("MISSED"), "{text}");
    // Without an objective nothing is missed.
    let v = status(&env, &[], 0);
    assert_eq!(groups(&v)[0]["objective_met"], Value::Null);

    // A fresh backup of the same group meets it.
    let fresh = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    let v = status(&env, &["--max-age", "1h"], 0);
    let g = &groups(&v)[0];
    assert_eq!((g["objective_met"].clone(), g["snapshots"].clone()), (Value::Bool(true), 2.into()));
    assert_eq!(g["newest"]["id"], fresh.as_str());
    assert!(g["age_ns"].as_u64().unwrap() < 3_600_000_000_000);

    // Another group that is old fails the whole status, and filters narrow it away again.
    let other = source(&env, "other", 10);
    env.backup(&[&other], &["--time", "2024-01-01 00:00:00", "--tag", "old"]);
    let v = status(&env, &["--max-age", "1h"], 6);
    assert_eq!(groups(&v).len(), 2);
    status(&env, &["--max-age", "1h", "--path", src.to_str().unwrap()], 0);
    // Grouping by host only: one group, and its newest snapshot is fresh.
    let v = status(&env, &["--max-age", "1h", "--group-by", "host"], 0);
    assert_eq!(groups(&v)[0]["snapshots"], 3);

    env.run(&["status", "--max-age", "soon"]).code(2);
    env.run(&["status", "--shrink-threshold", "0%"]).code(2);
    env.run(&["status", "--group-by", "colour"]).code(2);
}

#[test]
fn json_reports_sizes_of_the_newest_two_and_the_group() {
    let env = Env::new();
    let src = source(&env, "src", 5000);
    let first = env.backup(&[&src], &["--tag", "web", "--tag", "a"])["snapshot"].as_str().unwrap().to_string();
    write_random_file(&src.join("more.bin"), 7, 3000);
    let second = env.backup(&[&src], &["--tag", "web", "--tag", "a"])["snapshot"].as_str().unwrap().to_string();
    let v = status(&env, &["--max-age", "1d"], 0);
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["group_by"], "host,paths,tags");
    let g = &groups(&v)[0];
    assert_eq!(g["key"]["paths"][0], src.to_str().unwrap());
    assert_eq!(g["key"]["tags"], serde_json::json!(["a", "web"]));
    assert!(g["key"]["host"].is_string());
    assert_eq!(g["newest"]["id"], second.as_str());
    assert_eq!(g["newest"]["short_id"], &second[..8]);
    assert_eq!(g["newest"]["size"], 8000);
    assert_eq!(g["newest"]["stream"], false);
    assert_eq!(g["previous"]["id"], first.as_str());
    assert_eq!(g["previous"]["size"], 5000);
    assert_eq!(g["size_change"], 3000);
    assert_eq!(g["anomaly"], Value::Null);
    assert_eq!(g["ok"], true);
    assert_eq!(g["last_check"], Value::Null);
    assert_eq!(g["last_drill"], Value::Null);
    assert_eq!(g["newest_verified"], false);
}

#[test]
fn a_shrinking_stream_or_an_empty_stream_is_an_anomaly() {
    let env = Env::new();
    backup_stream(&env, "db.sql", &random_bytes(1, 10_000));
    status(&env, &["--max-age", "1h"], 0);
    backup_stream(&env, "db.sql", &random_bytes(2, 1_000));
    let v = status(&env, &["--max-age", "1h"], 7);
    let g = &groups(&v)[0];
    assert_eq!(g["newest"]["stream"], true);
    assert_eq!(g["anomaly"], serde_json::json!({"kind": "shrank", "from": 10_000, "to": 1_000, "percent": 90}));
    assert_eq!(g["size_change"], -9000);
    assert_eq!(g["objective_met"], true, "objectives are met: the anomaly alone gives 7");
    assert!(env.run(&["status"]).code(7).text().contains("ANOMALY (shrank 90%)"));
    // A threshold it stays within.
    status(&env, &["--shrink-threshold", "95%"], 0);
    status(&env, &["--shrink-threshold", "100%"], 0);

    // A zero-byte stream is an anomaly even without a previous snapshot.
    backup_stream(&env, "other.sql", b"");
    let v = status(&env, &["--shrink-threshold", "95%"], 7);
    let empty = groups(&v).into_iter().find(|g| g["key"]["paths"][0] == "other.sql").unwrap();
    assert_eq!(empty["anomaly"]["kind"], "empty_stream");
    assert_eq!(empty["newest"]["size"], 0);
    // A missed objective outranks an anomaly.
    env.run_stdin(&["backup", "--stdin", "--stdin-filename", "old.sql", "--time", "2024-01-01"], b"x".to_vec()).ok();
    status(&env, &["--max-age", "1h"], 6);
}

#[test]
fn a_tree_that_shrank_by_more_than_half_is_an_anomaly() {
    let env = Env::new();
    let src = source(&env, "src", 4000);
    env.backup(&[&src], &[]);
    write_random_file(&src.join("data.bin"), 3, 1900);
    env.backup(&[&src], &[]);
    let v = status(&env, &[], 7);
    assert_eq!(groups(&v)[0]["anomaly"]["percent"], 52);
    status(&env, &["--shrink-threshold", "60%"], 0);
}

#[test]
fn last_check_drill_rto_and_failures_come_from_the_journal() {
    let env = Env::new();
    let src = source(&env, "src", 2000);
    let other = source(&env, "other", 100);
    let snap = env.backup(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    let other_snap = env.backup(&[&other], &[])["snapshot"].as_str().unwrap().to_string();
    env.run(&["check"]).ok();
    let v = status(&env, &[], 0);
    for g in groups(&v) {
        assert_eq!(g["last_check"]["read_all_data"], false, "{g:#}");
        assert_eq!(g["last_check"]["read_data"], "none");
        assert_eq!(g["newest_verified"], false);
    }
    env.run(&["check", "--read-data"]).ok();
    let v = status(&env, &[], 0);
    assert!(groups(&v).iter().all(|g| g["last_check"]["read_all_data"] == true && g["newest_verified"] == true));

    // Drills as `arca drill` records them: a sample of `src`'s snapshot with its measured RTO.
    let repo = env.open();
    let id = arca::Id::from_hex(&snap).unwrap();
    let mut d = journal::start(Op::Drill);
    d.snapshots.push(id);
    journal::set_label(&mut d, "sample", "5% files");
    journal::set_metric(&mut d, "rto_ns", 1_500_000_000);
    journal::set_metric(&mut d, "rto_full_ns", 30_000_000_000);
    journal::finish(&mut d, arca::ops::Outcome::Ok);
    journal::append(&repo, &d).unwrap();
    // A failed drill of the other group's snapshot.
    let mut f = journal::start(Op::Drill);
    f.snapshots.push(arca::Id::from_hex(&other_snap).unwrap());
    f.errors.push("mismatch in /x".into());
    journal::finish(&mut f, arca::ops::Outcome::Damage);
    assert_eq!(f.outcome, Outcome::Damage);
    journal::append(&repo, &f).unwrap();

    let v = status(&env, &[], 4);
    let by_path = |v: &Value, p: &std::path::Path| {
        groups(v).into_iter().find(|g| g["key"]["paths"][0] == p.to_str().unwrap()).unwrap()
    };
    let g = by_path(&v, &src);
    assert_eq!(g["last_drill"]["rto_full_ns"], 30_000_000_000u64);
    assert_eq!(g["last_drill"]["rto_ns"], 1_500_000_000u64);
    assert_eq!(g["last_drill"]["sample"], "5% files");
    assert_eq!(g["last_drill"]["snapshot"], snap.as_str());
    assert_eq!(g["last_drill"]["time_ns"], d.time);
    assert_eq!(g["last_failure"], Value::Null);
    let o = by_path(&v, &other);
    assert_eq!(o["last_drill"], Value::Null);
    // Damage a drill found is the group's damage, not a failed backup (format-spec 21.6).
    assert_eq!(o["last_failure"], Value::Null);
    assert_eq!(o["damage"]["op"], "drill");
    assert_eq!(o["damage"]["outcome"], "damage");
    assert_eq!(o["damage"]["error"], "mismatch in /x");
    // The damage the drill found is unresolved: exit 4, in every output.
    let prom = env.run(&["status", "--prometheus"]).code(4).text();
    assert!(prom.lines().any(|l| l.starts_with("arca_drill_rto_seconds{") && l.ends_with(" 30")), "{prom}");
    assert!(prom.lines().any(|l| l.starts_with("arca_last_check_read_all_data ") && l.ends_with(" 1")), "{prom}");

    // A backup of `src` that fails (its directory is gone) is the group's last failure until
    // a backup succeeds again.
    let moved = env.path("moved");
    fs::rename(&src, &moved).unwrap();
    assert_ne!(env.run(&["backup", src.to_str().unwrap()]).code, 0);
    let g = by_path(&status(&env, &[], 4), &src);
    assert_eq!(g["last_failure"]["op"], "backup", "{g:#}");
    // A path that is gone is refused before anything is read (exit 2): the group still fails.
    assert_eq!(g["last_failure"]["outcome"], "refused");
    assert!(env.run(&["status"]).code(4).text().contains("last backup refused"));
    fs::rename(&moved, &src).unwrap();
    env.backup(&[&src], &[]);
    let g = by_path(&status(&env, &[], 4), &src);
    assert_eq!(g["last_failure"], Value::Null, "{g:#}");
    assert_eq!(g["newest_verified"], false, "the new snapshot is younger than the full check");
}

/// A Prometheus label value with its escapes undone; panics on a bad escape.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next() {
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some('n') => out.push('\n'),
                other => panic!("bad escape \\{other:?} in {s:?}"),
            },
            '"' | '\n' => panic!("unescaped {c:?} in {s:?}"),
            c => out.push(c),
        }
    }
    out
}

/// Parse `name{k="v",...} value`: (name, labels, value).
fn parse_sample(line: &str) -> (String, HashMap<String, String>, f64) {
    let name_end = line.find(['{', ' ']).expect("a name");
    let name = line[..name_end].to_string();
    assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "metric name {name:?}");
    let mut labels = HashMap::new();
    let mut rest = &line[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            let eq = rest.find("=\"").expect("label=\"");
            let key = rest[..eq].to_string();
            assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "label name {key:?}");
            rest = &rest[eq + 2..];
            // The value ends at the first quote not escaped by a backslash.
            let (mut i, bytes) = (0, rest.as_bytes());
            while bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            assert!(labels.insert(key, unescape(&rest[..i])).is_none(), "repeated label in {line}");
            rest = &rest[i + 1..];
            match rest.as_bytes()[0] {
                b',' => rest = &rest[1..],
                b'}' => {
                    rest = &rest[1..];
                    break;
                }
                _ => panic!("bad label list in {line}"),
            }
        }
    }
    let value: f64 = rest.strip_prefix(' ').expect("space before value").parse().expect("a number");
    (name, labels, value)
}

/// Check text exposition format 0.0.4: HELP and TYPE once per family, before its samples,
/// families contiguous, every sample of a TYPE'd family. Returns the samples.
fn parse_exposition(text: &str) -> Vec<(String, HashMap<String, String>, f64)> {
    assert!(text.ends_with('\n'));
    let mut typed: HashSet<String> = HashSet::new();
    let mut current = String::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(r) = line.strip_prefix("# HELP ") {
            current = r.split(' ').next().unwrap().to_string();
            assert!(!typed.contains(&current), "family {current} appears twice");
        } else if let Some(r) = line.strip_prefix("# TYPE ") {
            let (name, kind) = r.split_once(' ').unwrap();
            assert_eq!(name, current, "TYPE after its HELP");
            assert_eq!(kind, "gauge");
            typed.insert(name.to_string());
        } else {
            let s = parse_sample(line);
            assert_eq!(s.0, current, "sample outside its family: {line}");
            assert!(typed.contains(&s.0));
            samples.push(s);
        }
    }
    samples
}

#[test]
fn prometheus_text_is_well_formed_and_escapes_labels() {
    let env = Env::new();
    let src = source(&env, "src", 3000);
    let host = "we\"ird\\host\nname";
    env.backup(&[&src], &["--host", host, "--tag", "component=db"]);
    env.backup(&[&src], &["--time", "2024-01-01", "--tag", "x"]);
    let out = env.run(&["status", "--prometheus", "--max-age", "1h"]).code(6);
    let text = out.text();
    let samples = parse_exposition(&text);
    for name in [
        "arca_snapshot_newest_timestamp_seconds",
        "arca_snapshot_age_seconds",
        "arca_rpo_objective_seconds",
        "arca_rpo_met",
        "arca_snapshots",
        "arca_snapshot_size_bytes",
        "arca_snapshot_size_anomaly",
        "arca_status_ok",
    ] {
        assert_eq!(samples.iter().filter(|s| s.0 == name).count(), 2, "{name} per group:\n{text}");
    }
    let odd: Vec<_> = samples.iter().filter(|s| s.1.get("host").map(String::as_str) == Some(host)).collect();
    assert!(!odd.is_empty(), "the host label round-trips:\n{text}");
    let get = |name: &str, host_is_odd: bool| {
        samples
            .iter()
            .find(|s| s.0 == name && (s.1.get("host").map(String::as_str) == Some(host)) == host_is_odd)
            .unwrap()
    };
    assert_eq!(get("arca_rpo_met", true).2, 1.0);
    assert_eq!(get("arca_rpo_met", false).2, 0.0);
    assert_eq!(get("arca_status_ok", false).2, 0.0);
    assert_eq!(get("arca_rpo_objective_seconds", true).2, 3600.0);
    assert_eq!(get("arca_snapshot_size_bytes", true).2, 3000.0);
    assert_eq!(get("arca_snapshot_size_bytes", true).1["snapshot"], "newest");
    assert_eq!(get("arca_snapshots", true).1["component"], "db");
    assert_eq!(get("arca_snapshots", true).1["tags"], "component=db");
    assert_eq!(get("arca_snapshots", true).1["paths"], src.to_str().unwrap());
    assert!(get("arca_snapshot_age_seconds", false).2 > 3600.0);
    let exit = samples.iter().find(|s| s.0 == "arca_status_exit_code").unwrap();
    assert_eq!(exit.2, 6.0);
}

#[test]
fn prometheus_file_is_replaced_atomically() {
    let env = Env::new();
    let src = source(&env, "src", 100);
    env.backup(&[&src], &[]);
    let dir = env.mkdir("textfile");
    let file = dir.join("arca.prom");
    fs::write(&file, "stale\n").unwrap();
    let out = env.run(&["status", "--prometheus-file", file.to_str().unwrap(), "--max-age", "1h"]).ok();
    assert!(out.text().contains("status"), "the table is still printed:\n{}", out.text());
    let text = fs::read_to_string(&file).unwrap();
    let samples = parse_exposition(&text);
    assert!(samples.iter().any(|s| s.0 == "arca_status_ok" && s.2 == 1.0), "{text}");
    let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["arca.prom"], "no temporary file is left");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o044, 0o044, "readable by node_exporter");
    // A directory that does not exist: an error, nothing written.
    let missing = env.path("nowhere/arca.prom");
    let out = env.run(&["status", "--prometheus-file", missing.to_str().unwrap()]).code(1);
    assert!(out.stderr.contains("nowhere"), "{}", out.stderr);
}

#[test]
fn damaged_journal_and_snapshot_files_are_warnings_and_the_rest_is_reported() {
    let env = Env::new();
    let src = source(&env, "src", 100);
    let other = source(&env, "other", 100);
    env.backup(&[&src], &[]);
    env.run(&["check"]).ok();
    let victim = repo_files(&env.repo, FileType::Journal).into_iter().next().unwrap();
    flip_byte(&repo_file(&env.repo, FileType::Journal, &victim), 60);
    let out = env.run(&["--json", "status", "--max-age", "1h"]).code(4);
    assert!(out.stderr.contains(&victim), "names the journal file: {}", out.stderr);
    let v = out.json();
    assert_eq!(v["damaged_journal"][0]["name"], victim.as_str());
    assert_eq!(groups(&v).len(), 1);
    assert_eq!(groups(&v)[0]["objective_met"], true);

    // A damaged snapshot file: the other groups are still reported. Its parity rebuilds it, so
    // it is repairable damage; with its parity gone too, it is damage.
    let bad = env.backup(&[&other], &[])["snapshot"].as_str().unwrap().to_string();
    flip_byte(&repo_file(&env.repo, FileType::Snapshot, &bad), 60);
    let out = env.run(&["--json", "status"]).code(4);
    assert_eq!(out.json()["repairable_snapshots"][0], bad.as_str());
    assert_eq!(groups(&out.json()).len(), 1);
    std::fs::remove_file(repo_file(&env.repo, FileType::Parity, &bad)).unwrap();
    let out = env.run(&["--json", "status"]).code(4);
    assert!(out.stderr.contains(&bad), "names the snapshot: {}", out.stderr);
    assert_eq!(out.json()["damaged_snapshots"][0]["name"], bad.as_str());
    assert_eq!(groups(&out.json()).len(), 1);
    // A missed objective still outranks damage.
    env.run(&["status", "--max-age", "1ns"]).code(6);
}

#[test]
fn objectives_per_component_through_the_library() {
    use arca::ops::status::{status, Objective, StatusOptions};
    use arca::repo::select::SnapshotFilter;
    let env = Env::new();
    let src = source(&env, "src", 100);
    let logs = source(&env, "logs", 100);
    env.backup(&[&src], &["--tag", "component=db", "--tag", "profile=app"]);
    env.backup(&[&logs], &["--time", "2024-01-01", "--tag", "component=logs", "--tag", "profile=app"]);
    env.backup(&[&logs], &["--time", "2024-01-01"]);
    let component = |name: &str, max_age| Objective {
        name: name.into(),
        filter: SnapshotFilter {
            tags: vec![vec![format!("component={name}"), "profile=app".into()]],
            ..SnapshotFilter::default()
        },
        max_age,
        max_rto: None,
    };
    let hour = Some(std::time::Duration::from_secs(3600));
    let mut opts = StatusOptions {
        objectives: vec![component("db", hour), component("config", hour)],
        group_by: "host".parse().unwrap(),
        only_objectives: true,
        ..StatusOptions::default()
    };
    let st = status(&env.open(), &opts).unwrap();
    let names: Vec<_> = st.groups.iter().map(|g| (g.component.clone().unwrap(), g.objective_met)).collect();
    assert_eq!(names, [("db".to_string(), Some(true)), ("config".to_string(), Some(false))]);
    assert!(st.groups[1].newest.is_none(), "a component without snapshots is a missed objective");
    assert!(st.objective_missed());

    // The rest, with the default objective (none here), and the component of a tagged group.
    opts.objectives.truncate(1);
    opts.only_objectives = false;
    let st = status(&env.open(), &opts).unwrap();
    assert_eq!(st.groups.len(), 2, "db, then the other snapshots of this host");
    assert_eq!(st.groups[1].snapshots, 2);
    assert_eq!(st.groups[1].objective_met, None);
    assert!(!st.objective_missed());
    // Grouped by tags too, the logs component's group is named by its tag.
    opts.group_by = "host,tags".parse().unwrap();
    let st = status(&env.open(), &opts).unwrap();
    assert!(st.groups.iter().any(|g| g.component.as_deref() == Some("logs")));
}

#[test]
fn status_of_a_profile_has_one_line_per_component() {
    let env = Env::new();
    let etc = source(&env, "etc", 100);
    fs::write(env.path("pw"), format!("{PASSWORD}\n")).unwrap();
    let cfg = env.path("config.toml");
    let text = format!(
        "[repository.main]\npath = \"{}\"\npassword-file = \"{}\"\n\n[profile.app]\nmax-age = \"26h\"\n\n\
         [profile.app.component.config]\npaths = [\"{}\"]\nmax-age = \"1h\"\n\n\
         [profile.app.component.db]\ncommand = [\"echo\", \"dump\"]\nfilename = \"app.sql\"\n",
        env.repo.display(),
        env.path("pw").display(),
        etc.display()
    );
    fs::write(&cfg, text).unwrap();
    let run = |args: &[&str]| Out::from(arca_cmd().arg("--config").arg(&cfg).args(args).output().unwrap());
    run(&["backup", "--profile", "app", "--component", "config"]).ok();
    // A snapshot of no component is left out.
    env.backup(&[&etc], &["--time", "2024-01-01"]);

    let v = run(&["--json", "status", "--profile", "app"]).code(6).json();
    let rows: Vec<_> = groups(&v)
        .iter()
        .map(|g| (g["component"].as_str().unwrap().to_string(), g["objective_met"].clone(), g["max_age_ns"].clone()))
        .collect();
    assert_eq!(
        rows,
        [
            ("config".to_string(), Value::Bool(true), Value::from(3_600_000_000_000u64)),
            ("db".to_string(), Value::Bool(false), Value::from(26 * 3_600_000_000_000u64)),
        ]
    );
    assert_eq!(groups(&v)[1]["newest"], Value::Null);
    assert!(run(&["status", "--profile", "app"]).code(6).text().contains("MISSED (no snapshot)"));
    run(&["status", "--profile", "app", "--component", "config"]).ok();
    // A failing database dump is the db component's failure, not config's.
    let good = fs::read_to_string(&cfg).unwrap();
    fs::write(&cfg, good.replace(r#"["echo", "dump"]"#, r#"["sh", "-c", "exit 3"]"#)).unwrap();
    run(&["backup", "--profile", "app", "--component", "db"]).code(1);
    let v = run(&["--json", "status", "--profile", "app"]).code(6).json();
    assert_eq!(groups(&v)[0]["last_failure"], Value::Null);
    assert_eq!(groups(&v)[1]["last_failure"]["op"], "backup", "{v:#}");
    fs::write(&cfg, good).unwrap();
    run(&["backup", "--profile", "app", "--component", "db"]).ok();
    let v = run(&["--json", "status", "--profile", "app"]).ok().json();
    assert_eq!(groups(&v)[1]["last_failure"], Value::Null);
    run(&["status", "--profile", "app"]).ok();
    run(&["status", "--profile", "app", "--component", "nope"]).code(2);
}

#[test]
fn an_unresolved_failure_is_not_ok() {
    let env = Env::new();
    let src = source(&env, "src", 2000);
    env.backup(&[&src], &[]);
    status(&env, &["--max-age", "1h"], 0);
    // A failed backup after the newest snapshot: the objective may still be met, but status
    // must not say all is well.
    let moved = env.path("moved");
    fs::rename(&src, &moved).unwrap();
    assert_ne!(env.run(&["backup", src.to_str().unwrap()]).code, 0);
    let v = status(&env, &["--max-age", "1h"], 6);
    assert_eq!(groups(&v)[0]["ok"], false, "{v:#}");
    let prom = env.run(&["status", "--prometheus", "--max-age", "1h"]).code(6).text();
    assert!(prom.lines().any(|l| l.starts_with("arca_status_ok") && l.ends_with(" 0")), "{prom}");
    fs::rename(&moved, &src).unwrap();
    env.backup(&[&src], &[]);
    status(&env, &["--max-age", "1h"], 0);
}

#[test]
fn a_newest_snapshot_that_cannot_be_sized_is_damage_not_a_pass() {
    let env = Env::new();
    let src = source(&env, "src", 2000);
    env.backup(&[&src], &[]);
    status(&env, &[], 0);
    for p in repo_files(&env.repo, arca::backend::FileType::Pack) {
        fs::remove_file(repo_file(&env.repo, arca::backend::FileType::Pack, &p)).unwrap();
    }
    let out = env.run(&["status"]).code(4);
    assert!(out.stderr.contains("could not be read to measure its size"), "{}", out.stderr);
}
