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
        .run(&["--json", "backup", "--stdin-from-command", "--stdin-filename", "db.sql", "--", "cat", src.to_str().unwrap()])
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
    let out = env.run(&["backup", "--stdin-from-command", "--", "sh", "-c", "echo partial; echo oops >&2; exit 3"]).code(1);
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
