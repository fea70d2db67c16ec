//! Every remote backend against a real server the test starts itself, through one conformance
//! scenario (the same commands and assertions for each): a private OpenSSH `sshd` for `sftp:`,
//! `rclone` (a local remote) for `rclone:`, Azurite for `azure:`, `s3s-fs` for `s3:`, and a
//! plain directory as the reference. Servers listen on loopback ports and stop when the test
//! ends; `.ci/run` installs what a fresh machine lacks (openssh-server, rclone, Azurite).

use crate::common::*;
use crate::s3::S3Server;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A repository location and what a command needs to reach it.
struct Remote {
    location: String,
    envs: Vec<(String, String)>,
    /// The repository's directory on the server's disk, where there is one (damage tests).
    on_disk: Option<PathBuf>,
}

impl Remote {
    fn run(&self, args: &[&str]) -> Out {
        let mut c = arca_cmd();
        c.env("ARCA_REPOSITORY", &self.location)
            .env("ARCA_PASSWORD", PASSWORD)
            .env("ARCA_TO_PASSWORD", PASSWORD)
            .env("ARCA_NEW_PASSWORD", "second key");
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        c.args(args).timeout(Duration::from_secs(300)).output().unwrap().into()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start listening on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed when the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn need(program: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join(program)).find(|b| b.is_file()))
        .or_else(|| Some(Path::new("/usr/sbin").join(program)).filter(|b| b.is_file()));
    found.unwrap_or_else(|| panic!("{program} is not installed: run .ci/run, which installs what the tests need"))
}

// ---- sftp: a private sshd -----------------------------------------------------------------

/// `sshd` on a loopback port with generated keys, and an `ssh` on `PATH` that reads a
/// configuration naming the host `arca-test` (as `~/.ssh/config` would).
struct Sshd {
    _server: Server,
    dir: tempfile::TempDir,
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .expect("run ssh-keygen");
    assert!(st.success());
}

impl Sshd {
    fn start() -> Sshd {
        Sshd::start_with(None)
    }

    /// With `forced`, every login runs that command (an `authorized_keys` forced command).
    fn start_with(forced: Option<&str>) -> Sshd {
        let dir = tempfile::Builder::new().prefix("arca-sshd-").tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host"));
        keygen(&d.join("client"));
        let client = std::fs::read_to_string(d.join("client.pub")).unwrap();
        let options = forced.map(|c| format!("command=\"{c}\",restrict ")).unwrap_or_default();
        std::fs::write(d.join("authorized_keys"), format!("{options}{client}")).unwrap();
        let host_pub = std::fs::read_to_string(d.join("host.pub")).unwrap();
        std::fs::write(d.join("known_hosts"), format!("arca-test {host_pub}")).unwrap();
        let port = free_port();
        let user = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| {
            String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap().trim().to_string()
        });
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {0}/host\nAuthorizedKeysFile {0}/authorized_keys\n\
                 PidFile none\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 UsePAM no\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\nLogLevel ERROR\n",
                d.display()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("ssh_config"),
            format!(
                "Host arca-test\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {0}/client\n  \
                 IdentitiesOnly yes\n  HostKeyAlias arca-test\n  UserKnownHostsFile {0}/known_hosts\n  \
                 GlobalKnownHostsFile /dev/null\n  BatchMode yes\n",
                d.display()
            ),
        )
        .unwrap();
        // The ssh arca runs is the real one, reading this configuration.
        std::fs::create_dir(d.join("bin")).unwrap();
        let wrapper = d.join("bin/ssh");
        std::fs::write(
            &wrapper,
            format!("#!/bin/sh\nexec {} -F {}/ssh_config \"$@\"\n", need("ssh").display(), d.display()),
        )
        .unwrap();
        std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(&wrapper).unwrap().permissions(), 0o755);
        std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        // Privilege separation wants its empty directory when sshd starts as root.
        if is_root() {
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let child = Command::new(need("sshd"))
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sshd");
        wait_listening(port, "sshd");
        Sshd { _server: Server(child), dir }
    }

    fn path_env(&self) -> String {
        let old = std::env::var("PATH").unwrap_or_default();
        format!("{}:{old}", self.dir.path().join("bin").display())
    }

    /// A directory the server's user can write, and its location.
    fn remote(&self, env: &Env) -> Remote {
        let dir = env.path("sftp-repo");
        Remote {
            location: format!("sftp:arca-test:{}", dir.display()),
            envs: vec![("PATH".into(), self.path_env())],
            on_disk: Some(dir),
        }
    }
}

// ---- ssh://: arca serve behind sshd ----------------------------------------------------------

/// An sshd whose key runs `arca serve --stdio [--append-only] DIR` whatever the client asks,
/// and the `ssh://` location of that directory.
fn served(env: &Env, append_only: bool) -> (Sshd, Remote) {
    let dir = env.path("served-repo");
    let flag = if append_only { " --append-only" } else { "" };
    let sshd = Sshd::start_with(Some(&format!("{} serve --stdio{flag} {}", arca_bin().display(), dir.display())));
    let remote = Remote {
        location: format!("ssh://arca-test{}", dir.display()),
        envs: vec![("PATH".into(), sshd.path_env())],
        on_disk: Some(dir),
    };
    (sshd, remote)
}

// ---- rclone: a local remote ----------------------------------------------------------------

fn rclone_remote(env: &Env) -> Remote {
    need("rclone");
    let dir = env.mkdir("rclone-repo");
    // An empty rclone configuration: the remote is a local path, which rclone serves like any.
    let conf = env.path("rclone.conf");
    std::fs::write(&conf, "").unwrap();
    Remote {
        location: format!("rclone:{}", dir.display()),
        envs: vec![("RCLONE_CONFIG".into(), conf.display().to_string())],
        on_disk: Some(dir),
    }
}

// ---- azure: Azurite --------------------------------------------------------------------------

/// Azurite's well-known development account.
const AZ_ACCOUNT: &str = "devstoreaccount1";
const AZ_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The Azurite blob server: `$ARCA_TEST_AZURITE`, else `azurite-blob` on `PATH`, else the one
/// the tests install once into the target directory with npm.
fn azurite_binary() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("ARCA_TEST_AZURITE").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        let on_path = std::env::var_os("PATH")
            .and_then(|p| std::env::split_paths(&p).map(|d| d.join("azurite-blob")).find(|b| b.is_file()));
        if let Some(b) = on_path {
            return b;
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("azurite");
        let bin = root.join("node_modules/.bin/azurite-blob");
        if !bin.is_file() {
            std::fs::create_dir_all(&root).unwrap();
            let st = Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
                .arg(&root)
                .arg("azurite@3.35.0")
                .status()
                .expect("run npm (the Azure tests need Azurite)");
            assert!(st.success(), "npm install azurite failed: the Azure tests need a real Azure emulator");
        }
        bin
    })
    .clone()
}

fn azurite(env: &Env) -> (Server, Remote) {
    let port = free_port();
    let child = Command::new(azurite_binary())
        .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--silent", "--skipApiVersionCheck"])
        .arg("--location")
        .arg(env.mkdir("azurite"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start azurite");
    let server = Server(child);
    wait_listening(port, "azurite");
    // No container yet: the conformance scenario's `init` creates it.
    let remote = Remote {
        location: "azure:arca-test/team/repo".into(),
        envs: vec![
            ("AZURE_ACCOUNT_NAME".into(), AZ_ACCOUNT.into()),
            ("AZURE_ACCOUNT_KEY".into(), AZ_KEY.into()),
            ("AZURE_ENDPOINT".into(), format!("http://127.0.0.1:{port}/{AZ_ACCOUNT}")),
        ],
        on_disk: None,
    };
    (server, remote)
}

// ---- the conformance scenario -----------------------------------------------------------------

/// The same commands, the same assertions, on every backend: init, backup, browse, restore
/// byte for byte, dump, diff, check with data, keys, tags, forget and prune, copy to and from
/// a local repository, a drill, a second init refused, and — where the server keeps files on
/// a disk the test can reach — a flipped byte found and repaired from parity.
fn conformance(remote: &Remote) {
    let env = Env::bare();
    let src = env.mkdir("src");
    make_realistic_tree(&src);
    let s = src.to_str().unwrap();
    let run = |args: &[&str]| remote.run(args);
    run(&["init", "--kdf-memory", "8", "--kdf-iterations", "1", "--pack-size", "1"]).ok();
    run(&["init", "--kdf-memory", "8", "--kdf-iterations", "1"]).code(2);
    let first = run(&["--json", "backup", s]).ok().json();
    let first = first["snapshot"].as_str().unwrap().to_string();
    std::fs::write(src.join("docs/new.txt"), "added later\n").unwrap();
    write_random_file(&src.join("big.bin"), 8, 3 << 20);
    run(&["backup", s]).ok();
    let listed = run(&["--json", "snapshots"]).ok().json();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let ls = run(&["ls", "latest"]).ok().text();
    assert!(ls.contains("new.txt"), "{ls}");
    let found = run(&["find", "file-07.txt"]).ok().text();
    assert!(found.contains("file-07.txt"), "{found}");
    let diff = run(&["diff", &first, "latest"]).ok().text();
    assert!(diff.contains("new.txt"), "{diff}");
    let out = env.path("out");
    run(&["restore", "latest", "--target", out.to_str().unwrap()]).ok();
    assert_same_tree(&src, &under(&out, &src), Cmp { root_meta: false, mtime: true });
    let dumped = run(&["dump", &sref("latest", &src.join("big.bin"))]).ok().stdout;
    assert_eq!(hash_reader(&dumped[..]), hash_file(&src.join("big.bin")));
    run(&["check", "--read-data"]).ok();
    run(&["verify", "latest"]).ok();
    run(&["drill", "latest"]).ok();
    run(&["key", "add", "--kdf-memory", "8", "--kdf-iterations", "1"]).ok();
    assert_eq!(run(&["--json", "key", "list"]).ok().json().as_array().unwrap().len(), 2);
    run(&["tag", "latest", "--add", "kept"]).ok();
    key_roles(remote, &env, &src);
    // Copies both ways with a local repository.
    let local = env.path("local");
    let local_run = |args: &[&str]| -> Out {
        let mut c = arca_cmd();
        c.env("ARCA_REPOSITORY", &local)
            .env("ARCA_PASSWORD", PASSWORD)
            .env("ARCA_TO_PASSWORD", PASSWORD)
            .env("ARCA_NEW_PASSWORD", "second key");
        for (k, v) in &remote.envs {
            c.env(k, v);
        }
        c.args(args).output().unwrap().into()
    };
    local_run(&["init", "--kdf-memory", "8", "--kdf-iterations", "1"]).ok();
    let local_s = local.to_str().unwrap();
    run(&["copy", "--to", local_s]).ok();
    assert_eq!(local_run(&["--json", "snapshots"]).ok().json().as_array().unwrap().len(), 2);
    run(&["forget", &first]).ok();
    run(&["prune", "--max-unused", "0"]).ok();
    run(&["check", "--read-data"]).ok();
    assert_eq!(run(&["--json", "snapshots"]).ok().json().as_array().unwrap().len(), 1);
    local_run(&["copy", "--to", &remote.location]).ok();
    // Pushing back the copy restores the forgotten snapshot's content, deduplicated.
    assert_eq!(run(&["--json", "snapshots"]).ok().json().as_array().unwrap().len(), 2);
    run(&["check", "--read-data"]).ok();
    if let Some(dir) = &remote.on_disk {
        damage_and_repair(dir, &run);
    }
}

/// Key roles on this storage (format-spec/24): roles enabled by a backup key's addition, a
/// backup key's two backups (the second finding unchanged files through its cache), a restore
/// key's restore and check, and a backup key refused a restore. Leaves three snapshots.
fn key_roles(remote: &Remote, env: &Env, src: &Path) {
    let s = src.to_str().unwrap();
    let cache = env.path("role-cache");
    let as_key = |password: &str, args: &[&str]| -> Out {
        let mut c = arca_cmd();
        c.env("ARCA_REPOSITORY", &remote.location)
            .env("ARCA_PASSWORD", password)
            .env("ARCA_NEW_PASSWORD", "backup key")
            .env("XDG_CACHE_HOME", &cache);
        for (k, v) in &remote.envs {
            c.env(k, v);
        }
        c.args(args).timeout(Duration::from_secs(300)).output().unwrap().into()
    };
    let add = |role: &str, new: &str| {
        let mut c = arca_cmd();
        c.env("ARCA_REPOSITORY", &remote.location).env("ARCA_PASSWORD", PASSWORD).env("ARCA_NEW_PASSWORD", new);
        for (k, v) in &remote.envs {
            c.env(k, v);
        }
        let args = ["key", "add", "--role", role, "--kdf-memory", "8", "--kdf-iterations", "1"];
        Out::from(c.args(args).output().unwrap()).ok();
    };
    add("backup", "backup key");
    add("restore", "restore key");
    std::fs::write(src.join("docs/by-backup-key.txt"), "written with the backup key\n").unwrap();
    as_key("backup key", &["backup", s]).ok();
    let again = as_key("backup key", &["--json", "backup", s]).ok().json();
    assert!(again["summary"]["files_unchanged"].as_u64().unwrap() > 0, "{again}");
    let out = env.path("out-roles");
    as_key("backup key", &["restore", "latest", "--target", out.to_str().unwrap()]).code(13);
    as_key("restore key", &["restore", "latest", "--target", out.to_str().unwrap()]).ok();
    assert_same_tree(src, &under(&out, src), Cmp { root_meta: false, mtime: true });
    as_key("restore key", &["check", "--read-data"]).ok();
    as_key("restore key", &["forget", "--keep-last", "1"]).code(13);
    // The remaining steps run with the admin key; they expect two snapshots.
    let listed = as_key(PASSWORD, &["--json", "snapshots"]).ok().json();
    let snaps: Vec<String> = listed.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(snaps.len(), 4, "{listed}");
    as_key(PASSWORD, &["forget", &snaps[2], &snaps[3]]).ok();
}

/// A byte flipped in the largest pack on the server's disk: check finds it, parity repairs it.
fn damage_and_repair(dir: &Path, run: &dyn Fn(&[&str]) -> Out) {
    let mut packs: Vec<PathBuf> = std::fs::read_dir(dir.join("data"))
        .unwrap()
        .flat_map(|shard| std::fs::read_dir(shard.unwrap().path()).unwrap().map(|e| e.unwrap().path()))
        .collect();
    packs.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    flip_byte(&packs[0], 1000);
    run(&["check", "--read-data"]).code(8);
    run(&["repair", "packs"]).ok();
    run(&["check", "--read-data"]).ok();
    // Nothing of the writers' temporary files is left behind.
    let tmp: Vec<_> =
        std::fs::read_dir(dir.join("tmp")).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
    assert!(tmp.is_empty(), "temporary files left: {tmp:?}");
}

#[test]
fn conformance_local_directory() {
    let env = Env::bare();
    let dir = env.path("repo");
    conformance(&Remote { location: dir.display().to_string(), envs: vec![], on_disk: Some(dir) });
}

#[test]
fn conformance_s3() {
    let s3 = S3Server::start("bkt");
    let env = vec![
        ("AWS_ACCESS_KEY_ID".to_string(), crate::s3::ACCESS_KEY.to_string()),
        ("AWS_SECRET_ACCESS_KEY".to_string(), crate::s3::SECRET_KEY.to_string()),
    ];
    let on_disk = s3.root.join("bkt/conf");
    conformance(&Remote { location: format!("s3:{}/bkt/conf", s3.endpoint), envs: env, on_disk: Some(on_disk) });
}

#[test]
fn conformance_sftp() {
    let sshd = Sshd::start();
    let env = Env::bare();
    conformance(&sshd.remote(&env));
}

#[test]
fn conformance_arca_serve_over_ssh() {
    let env = Env::bare();
    let (_sshd, remote) = served(&env, false);
    conformance(&remote);
}

#[test]
fn conformance_rclone() {
    let env = Env::bare();
    conformance(&rclone_remote(&env));
}

#[test]
fn conformance_azure() {
    let env = Env::bare();
    let (_server, remote) = azurite(&env);
    conformance(&remote);
}

/// `init` creates a missing bucket, as restic does (the Azure container: `conformance_azure`,
/// whose first command is `init` into a container Azurite does not have); other commands say
/// the bucket is missing and create nothing.
#[test]
fn init_creates_a_missing_bucket_and_nothing_else_does() {
    let s3 = S3Server::start("bkt");
    let init = ["init", "--kdf-memory", "8", "--kdf-iterations", "1"];
    let missing = s3.run("made-by-init", "repo", &["snapshots"]).code(1);
    assert!(missing.stderr.contains("does not exist"), "{}", missing.stderr);
    assert!(!s3.root.join("made-by-init").exists(), "a read made the bucket");
    s3.run("made-by-init", "repo", &init).ok();
    assert!(s3.root.join("made-by-init/repo/config").is_file(), "no repository in the new bucket");
    s3.run("made-by-init", "repo", &["snapshots"]).ok();
    // The bucket exists now: a second repository beside the first only needs an empty prefix.
    s3.run("made-by-init", "other", &init).ok();
    s3.run("made-by-init", "repo", &init).code(2);
}

// ---- the storage misbehaving ---------------------------------------------------------------

/// A server that accepts connections and never answers: every command used to hang forever.
#[test]
fn a_store_that_never_answers_fails_in_bounded_time_with_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    let started = Instant::now();
    let out: Out = arca_cmd()
        .env("ARCA_PASSWORD", PASSWORD)
        .env("AWS_ACCESS_KEY_ID", "a")
        .env("AWS_SECRET_ACCESS_KEY", "b")
        .args(["--timeout", "1s", "-r", &format!("s3:http://127.0.0.1:{port}/bkt/x"), "snapshots"])
        .timeout(Duration::from_secs(110))
        .output()
        .unwrap()
        .into();
    out.code(1).stderr.contains("did not answer in time").then_some(()).expect("the timeout is named");
    eprintln!("gave up after {:?}", started.elapsed());
}

/// Errors from the storage are one line that says what is wrong and what to set, not a dump of
/// the client's request (status, headers, signing internals).
#[test]
fn storage_errors_are_one_line_that_says_what_to_set() {
    let s3 = S3Server::start("bkt");
    let one_line = |out: Out, words: &str| {
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert_eq!(out.stderr.trim_end().lines().count(), 1, "not one line: {}", out.stderr);
        assert!(out.stderr.contains(words), "{words:?} not said: {}", out.stderr);
        for dump in ["headers", "Parts {", "reqsign", "context:"] {
            assert!(!out.stderr.contains(dump), "the client's internals leak: {}", out.stderr);
        }
    };
    let empty = tempfile::tempdir().unwrap();
    let no_creds = s3
        .cmd("bkt", "x")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("HOME", empty.path())
        .env("AWS_CONFIG_FILE", empty.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", empty.path().join("none"))
        .arg("snapshots")
        .output()
        .unwrap();
    one_line(no_creds.into(), "AWS_ACCESS_KEY_ID");
    let wrong = s3.cmd("bkt", "x").env("AWS_SECRET_ACCESS_KEY", "wrong").arg("snapshots").output().unwrap();
    one_line(wrong.into(), "access denied");
    one_line(s3.run("nobucket", "x", &["snapshots"]), "does not exist");
    // An SSH server whose host key is not the one known: refused, never accepted.
    let sshd = Sshd::start();
    std::fs::write(sshd.dir.path().join("known_hosts"), "").unwrap();
    let env = Env::bare();
    one_line(sshd.remote(&env).run(&["snapshots"]), "ssh could not connect");
    // An rclone remote that does not exist: rclone's own words.
    let mut r = rclone_remote(&env);
    r.location = "rclone:nosuchremote:x".into();
    one_line(r.run(&["snapshots"]), "nosuchremote");
}

// ---- arca serve --append-only --------------------------------------------------------------

/// A client speaking the protocol itself, through the same ssh and forced command: what a
/// thief with the backed-up host's key can send, not only what the CLI would.
struct RawClient {
    child: Child,
    input: std::process::ChildStdin,
    output: std::process::ChildStdout,
}

impl RawClient {
    fn connect(sshd: &Sshd) -> RawClient {
        let mut child = Command::new(sshd.dir.path().join("bin/ssh"))
            .args(["arca-test", "arca serve --stdio /anything/the/client/likes"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (input, output) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
        RawClient { child, input, output }
    }

    fn raw(&mut self, body: &[u8]) -> arca::format::serve::Response {
        use arca::format::serve;
        serve::write_frame(&mut self.input, body).unwrap();
        let answer = serve::read_frame(&mut self.output).unwrap().expect("an answer");
        serve::Response::decode(&answer).unwrap()
    }

    fn send(&mut self, req: arca::format::serve::Request) -> arca::format::serve::Response {
        self.raw(&req.encode())
    }
}

impl Drop for RawClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn refused(r: &arca::format::serve::Response) -> bool {
    matches!(r, arca::format::serve::Response::Error { class: arca::format::serve::ErrorClass::Refused, .. })
}

#[test]
fn an_append_only_server_keeps_history_from_a_client_that_is_taken_over() {
    use arca::backend::FileType;
    use arca::format::serve::{Request, Response};
    let env = Env::bare();
    let (sshd, remote) = served(&env, true);
    let dir = remote.on_disk.clone().unwrap();
    let src = env.mkdir("src");
    make_realistic_tree(&src);
    let s = src.to_str().unwrap();
    // Backups work, each removing its own lock.
    remote.run(&["init", "--kdf-memory", "8", "--kdf-iterations", "1", "--pack-size", "1"]).ok();
    let first = remote.run(&["--json", "backup", s]).ok().json()["snapshot"].as_str().unwrap().to_string();
    write_random_file(&src.join("big.bin"), 99, 2 << 20);
    remote.run(&["backup", s]).ok();
    assert_eq!(repo_files(&dir, FileType::Lock), Vec::<String>::new(), "a backup left its lock");
    // Through the CLI: forgetting is refused by the server, and says so.
    let out = remote.run(&["forget", &first]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("append-only"), "{}", out.stderr);
    remote.run(&["check", "--read-data"]).ok();
    let before = tree_hashes(&dir);
    // Through the protocol itself.
    let mut c = RawClient::connect(&sshd);
    assert_eq!(c.send(Request::Hello { version: 1 }), Response::Hello { version: 1, append_only: true });
    let snaps = repo_files(&dir, FileType::Snapshot);
    let packs = repo_files(&dir, FileType::Pack);
    let snap = snaps[0].clone();
    assert!(refused(&c.send(Request::Remove { t: FileType::Snapshot, name: snap.clone() })));
    assert!(refused(&c.send(Request::Remove { t: FileType::Pack, name: packs[0].clone() })));
    let garbage = vec![0x55u8; 4096];
    let over = |t, name: &str| Request::Write { t, name: name.to_string(), replace: true, data: garbage.clone() };
    assert!(refused(&c.send(over(FileType::Snapshot, &snap))));
    assert!(refused(&c.send(over(FileType::Config, ""))));
    assert!(refused(&c.send(over(FileType::ParityPolicy, ""))));
    // A write-once write of a name that exists changes nothing.
    let once = Request::Write { t: FileType::Snapshot, name: snap.clone(), replace: false, data: garbage.clone() };
    assert_eq!(c.send(once), Response::Ok);
    // A staged "pack" published over an existing one leaves the existing one alone.
    let Response::Handle { handle } = c.send(Request::Stage { t: FileType::Pack }) else { panic!("no handle") };
    assert_eq!(c.send(Request::Append { handle, data: garbage.clone() }), Response::Ok);
    assert_eq!(c.send(Request::Publish { handle, name: packs[0].clone(), replace: true }), Response::Ok);
    // Names that are paths never reach the filesystem.
    let mut escape = vec![0x0b, 4, 9];
    escape.extend_from_slice(b"../config");
    assert!(matches!(c.raw(&escape), Response::Error { .. }));
    // Its own lock it may remove; nobody else's.
    let lock_bytes = b"not a real lock, but a file of its own".to_vec();
    let lock = arca::id::Id::of_file_bytes(&lock_bytes).to_hex();
    let other = "ab".repeat(32);
    std::fs::write(dir.join("locks").join(&other), b"someone else's").unwrap();
    let before_with_other = {
        let mut b = before.clone();
        b.insert(PathBuf::from("locks").join(&other), hash_file(&dir.join("locks").join(&other)));
        b
    };
    let write_lock = Request::Write { t: FileType::Lock, name: lock.clone(), replace: false, data: lock_bytes };
    assert_eq!(c.send(write_lock), Response::Ok);
    assert!(refused(&c.send(Request::Remove { t: FileType::Lock, name: other.clone() })));
    assert_eq!(c.send(Request::Remove { t: FileType::Lock, name: lock }), Response::Ok);
    drop(c);
    let after = tree_hashes(&dir);
    let changed: Vec<_> = after.iter().filter(|(p, h)| before_with_other.get(*p) != Some(h)).map(|(p, _)| p).collect();
    let gone: Vec<_> = before_with_other.keys().filter(|p| !after.contains_key(*p)).collect();
    assert!(changed.is_empty() && gone.is_empty(), "the history changed: {changed:?} new or rewritten, {gone:?} gone");
    std::fs::remove_file(dir.join("locks").join(&other)).unwrap();
    // Locally, with the whole repository: nothing lost, both snapshots there.
    let local = |args: &[&str]| -> Out {
        arca_cmd().env("ARCA_REPOSITORY", &dir).env("ARCA_PASSWORD", PASSWORD).args(args).output().unwrap().into()
    };
    local(&["check", "--read-data"]).ok();
    assert_eq!(local(&["--json", "snapshots"]).ok().json().as_array().unwrap().len(), 2);
}

/// A backup key through an append-only server (format-spec/23.5, 24.4): the storage refuses
/// every removal but of the client's own lock and every overwrite, and backups still work —
/// so a backup key's run removes and rewrites nothing else, and works with credentials that
/// forbid it. Roles are enabled by the admin on the server's own disk.
#[test]
fn a_backup_key_backs_up_through_an_append_only_server() {
    let env = Env::bare();
    let (_sshd, remote) = served(&env, true);
    let dir = remote.on_disk.clone().unwrap();
    let local = |args: &[&str], password: &str| -> Out {
        let mut c = arca_cmd();
        c.env("ARCA_REPOSITORY", &dir).env("ARCA_PASSWORD", password).env("ARCA_NEW_PASSWORD", "backup key");
        c.args(args).output().unwrap().into()
    };
    let src = env.mkdir("src");
    make_realistic_tree(&src);
    let s = src.to_str().unwrap();
    local(&["init", "--kdf-memory", "8", "--kdf-iterations", "1"], PASSWORD).ok();
    local(&["backup", s], PASSWORD).ok();
    local(&["key", "add", "--role", "backup", "--kdf-memory", "8", "--kdf-iterations", "1"], PASSWORD).ok();
    let before = tree_hashes(&dir);
    let as_backup = |args: &[&str]| -> Out {
        let mut c = arca_cmd();
        c.env("ARCA_REPOSITORY", &remote.location).env("ARCA_PASSWORD", "backup key");
        for (k, v) in &remote.envs {
            c.env(k, v);
        }
        c.args(args).timeout(Duration::from_secs(300)).output().unwrap().into()
    };
    write_random_file(&src.join("new.bin"), 7, 1 << 20);
    as_backup(&["backup", s]).ok();
    std::fs::write(src.join("one-more.txt"), b"x").unwrap();
    let second = as_backup(&["--json", "backup", s]).ok().json();
    assert!(second["summary"]["files_unchanged"].as_u64().unwrap() > 0, "{second}");
    // Nothing that was there changed or went away; only new files appeared.
    let after = tree_hashes(&dir);
    let changed: Vec<_> = before.iter().filter(|(p, h)| after.get(*p) != Some(h)).map(|(p, _)| p).collect();
    assert!(changed.is_empty(), "the backup key's runs changed or removed {changed:?}");
    assert_eq!(repo_files(&dir, arca::backend::FileType::Lock), Vec::<String>::new(), "a backup left its lock");
    local(&["check", "--read-data"], PASSWORD).ok();
    assert_eq!(local(&["--json", "snapshots"], PASSWORD).ok().json().as_array().unwrap().len(), 3);
}

/// arca on the repository at `repo` under a 1.5 GiB address-space limit: an attempt to hold a
/// planted file's claimed gigabytes fails here however much memory the machine has.
fn run_in_1_5_gib(repo: &Path, args: &[&str]) -> Out {
    let mut c = std::process::Command::new(arca_bin());
    c.env("ARCA_REPOSITORY", repo).env("ARCA_PASSWORD", PASSWORD).args(args);
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, || {
            let lim = libc::rlimit { rlim_cur: 3 << 29, rlim_max: 3 << 29 };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c.output().unwrap().into()
}

// ---- a planted parity file -----------------------------------------------------------------

/// Anyone who can write to the storage, without a key, plants a parity file of a few sparse
/// megabytes claiming a lost 4 GiB pack at the largest geometry. `check` and `repair packs`
/// used to read it whole and rebuild the pack in memory (gigabytes, then an abort); now the
/// claimed length is held against what the index and the repository allow before anything
/// past the 96-byte fixed part is read. Run under a 1.5 GiB address-space limit so that the old
/// behaviour fails here however much memory the machine has.
#[test]
fn a_planted_parity_file_claiming_a_huge_lost_pack_costs_no_memory() {
    use arca::format::header::FileKind;
    use arca::format::parity::{Fixed, Geometry};
    let env = Env::new();
    let src = env.mkdir("src");
    std::fs::write(src.join("a"), b"some data").unwrap();
    env.backup(&[&src], &[]);
    let id = arca::id::Id::of_file_bytes(b"a pack that never was");
    let geometry = Geometry { shard: 65_536, len: u32::MAX as u64, segments: 2, recovery: 32_768 };
    let fixed = Fixed { kind: FileKind::Pack, id, geometry }.encode();
    let path = repo_file(&env.path("repo"), arca::backend::FileType::Parity, &id.to_hex());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let f = std::fs::File::create(&path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &fixed, 0).unwrap();
    f.set_len(geometry.file_len()).unwrap();
    assert!(geometry.file_len() > 4 << 30);
    let limited = |args: &[&str]| run_in_1_5_gib(&env.path("repo"), args);
    // The lost "pack" is reported (its parity is there), but not rebuilt.
    let out = limited(&["check"]).code(4);
    assert!(out.all().contains(&id.to_hex()), "{}", out.all());
    let out = limited(&["repair", "packs"]);
    assert!(out.all().contains("not read"), "{}", out.all());
    limited(&["parity", "build", "--drop-orphans"]).ok();
    limited(&["check"]).ok();
}

/// Anyone who can write to the storage, without a key, replaces a pack with a sparse file of
/// almost 4 GiB under the same name. `check --read-data` used to read it whole before finding
/// its hash wrong (gigabytes in memory, an abort under a limit); its size is not the index's,
/// so it is reported damaged and never read. Under a 1.5 GiB address-space limit, as above.
#[test]
fn a_pack_swapped_for_a_huge_sparse_file_is_reported_and_not_read() {
    let env = Env::new();
    let src = env.mkdir("src");
    std::fs::write(src.join("a"), b"some data").unwrap();
    env.backup(&[&src], &[]);
    let data = env.path("repo").join("data");
    let shard = std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().path()).find(|p| p.is_dir()).unwrap();
    let pack = std::fs::read_dir(&shard).unwrap().map(|e| e.unwrap().path()).next().expect("a pack");
    std::fs::OpenOptions::new().write(true).open(&pack).unwrap().set_len(u32::MAX as u64 - 1).unwrap();
    let out = run_in_1_5_gib(&env.path("repo"), &["check", "--read-data"]);
    // Damage (4), or damage its parity rebuilds (8): reported either way, never a crash.
    assert!(matches!(out.code, 4 | 8), "exit {}: {}", out.code, out.all());
    let name = pack.file_name().unwrap().to_str().unwrap();
    assert!(out.all().contains(name) && out.all().contains("not read"), "{}", out.all());
}

// ---- read-only storage -----------------------------------------------------------------------

/// A repository on read-only storage (here a read-only bind mount as root, else a tree without
/// write permission): the commands that only read work, `check` included, falling back to no
/// lock with a warning, or with none and no warning under `--no-lock`.
#[test]
fn a_read_only_repository_is_checked_restored_and_drilled_without_writing() {
    let env = Env::new();
    let src = env.mkdir("src");
    make_realistic_tree(&src);
    env.backup(&[&src], &[]);
    let repo = env.path("repo");
    let ro = env.mkdir("ro");
    let mounted = is_root()
        && Command::new("mount").args(["--bind"]).arg(&repo).arg(&ro).status().is_ok_and(|s| s.success())
        && Command::new("mount").args(["-o", "remount,bind,ro"]).arg(&ro).status().is_ok_and(|s| s.success());
    struct Unmount(PathBuf, bool);
    impl Drop for Unmount {
        fn drop(&mut self) {
            if self.1 {
                let _ = Command::new("umount").arg(&self.0).status();
            }
        }
    }
    let _unmount = Unmount(ro.clone(), mounted);
    let at = if mounted {
        ro.clone()
    } else {
        assert!(!is_root(), "as root the test needs a read-only bind mount");
        Command::new("chmod").args(["-R", "a-w"]).arg(&repo).status().unwrap();
        repo.clone()
    };
    let before = tree_hashes(&repo);
    let run = |args: &[&str]| -> Out {
        arca_cmd().env("ARCA_REPOSITORY", &at).env("ARCA_PASSWORD", PASSWORD).args(args).output().unwrap().into()
    };
    let out = run(&["check", "--read-data"]).ok();
    assert!(out.stderr.contains("reading without one"), "{}", out.stderr);
    let quiet = run(&["--no-lock", "check"]).ok();
    assert!(!quiet.stderr.contains("lock"), "{}", quiet.stderr);
    run(&["snapshots"]).ok();
    run(&["ls", "latest"]).ok();
    let target = env.path("out");
    run(&["--no-lock", "restore", "latest", "--target", target.to_str().unwrap()]).ok();
    assert_same_tree(&src, &under(&target, &src), Cmp { root_meta: false, mtime: true });
    run(&["drill", "latest"]).ok();
    // Writing is still refused, clearly.
    assert_ne!(run(&["--no-lock", "backup", src.to_str().unwrap()]).code, 0);
    assert_eq!(tree_hashes(&repo), before, "the read-only repository changed");
    if !mounted {
        Command::new("chmod").args(["-R", "u+w"]).arg(&repo).status().unwrap();
    }
}

// ---- a listing that never ends ---------------------------------------------------------------

/// An "S3 server" that answers every listing with a full page and a token for the next one,
/// forever. The listing is stopped at the limit (format-spec/19) with an error naming it,
/// instead of growing until the allocator aborts.
#[test]
fn a_listing_that_never_ends_is_stopped_at_the_limit() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut out = conn;
                let mut page = 0u64;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    while line != "\r\n" {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                    }
                    page += 1;
                    let mut body = String::from(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><IsTruncated>true</IsTruncated>",
                    );
                    for i in 0..20_000u64 {
                        body.push_str(&format!("<Contents><Key>x/snapshots/{:064x}</Key><LastModified>2026-12-07T00:00:00.000Z</LastModified><ETag>\"e\"</ETag><Size>1</Size></Contents>", page << 20 | i));
                    }
                    body.push_str(&format!(
                        "<NextContinuationToken>t{page}</NextContinuationToken></ListBucketResult>"
                    ));
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    if out.write_all(head.as_bytes()).and_then(|_| out.write_all(body.as_bytes())).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let b = arca::backend::open(Path::new(&format!("s3:http://127.0.0.1:{port}/bkt/x")), Default::default()).unwrap();
    std::env::set_var("AWS_ACCESS_KEY_ID", "a");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "b");
    let started = Instant::now();
    let err = b.list(arca::backend::FileType::Snapshot).expect_err("an endless listing ended");
    assert!(err.to_string().contains("more than 4194304 entries"), "{err}");
    eprintln!("stopped after {:?}", started.elapsed());
}

// ---- the local cache -------------------------------------------------------------------------

/// Every file of the cache with its bytes.
fn cached_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = tree_hashes(dir).into_keys().filter(|p| p.components().count() == 3).collect();
    out.sort();
    out
}

/// A second `snapshots` reads key files, index files and snapshots from the cache; a tampered
/// copy, or one of a snapshot another host forgot, changes nothing but costs a download; check
/// sees the storage as it is, whatever the cache holds.
#[test]
fn the_cache_saves_downloads_and_never_changes_a_result() {
    let s3 = S3Server::start("bkt");
    let env = Env::bare();
    let cache = env.path("cache");
    let src = env.mkdir("src");
    make_realistic_tree(&src);
    let run =
        |args: &[&str]| -> Out { s3.cmd("bkt", "c").env("ARCA_CACHE_DIR", &cache).args(args).output().unwrap().into() };
    let uncached =
        |args: &[&str]| -> Out { s3.cmd("bkt", "c").env("ARCA_NO_CACHE", "1").args(args).output().unwrap().into() };
    run(&["init", "--kdf-memory", "8", "--kdf-iterations", "1"]).ok();
    let first = run(&["--json", "backup", src.to_str().unwrap()]).ok().json()["snapshot"].as_str().unwrap().to_string();
    run(&["backup", src.to_str().unwrap()]).ok();
    let listed = run(&["--json", "snapshots"]).ok().json();
    let files = cached_files(&cache);
    let kinds = |k: &str| files.iter().filter(|p| p.components().nth(1).is_some_and(|c| c.as_os_str() == k)).count();
    assert_eq!((kinds("keys"), kinds("snapshots")), (1, 2), "{files:?}");
    assert!(kinds("index") >= 1, "{files:?}");
    assert!(cache.join("CACHEDIR.TAG").is_file());
    // Served from the cache, the same answer.
    assert_eq!(run(&["--json", "snapshots"]).ok().json(), listed);
    // A tampered copy is not used (and is replaced).
    let snap = files.iter().find(|p| p.components().nth(1).unwrap().as_os_str() == "snapshots").unwrap();
    let before = std::fs::read(cache.join(snap)).unwrap();
    flip_byte(&cache.join(snap), 60);
    assert_eq!(run(&["--json", "snapshots"]).ok().json(), listed);
    assert_eq!(std::fs::read(cache.join(snap)).unwrap(), before, "the tampered copy was kept");
    // Root trees are kept too; a tampered one is not used (the pack is read instead).
    let ls = run(&["ls", "latest"]).ok().text();
    let trees: Vec<PathBuf> =
        cached_files(&cache).into_iter().filter(|p| p.to_string_lossy().contains("/trees/")).collect();
    assert!(!trees.is_empty(), "no tree cached");
    for t in &trees {
        flip_byte(&cache.join(t), 30);
    }
    assert_eq!(run(&["ls", "latest"]).ok().text(), ls);
    // Another host forgets a snapshot: the cached copy is not shown, and is dropped.
    uncached(&["forget", &first]).ok();
    assert_eq!(run(&["--json", "snapshots"]).ok().json().as_array().unwrap().len(), 1);
    assert_eq!(cached_files(&cache).iter().filter(|p| p.to_string_lossy().contains("/snapshots/")).count(), 1);
    // Damage in storage is found by check even though the cache holds a good copy.
    let index = s3.root.join("bkt/c/index");
    let victim = std::fs::read_dir(&index).unwrap().next().unwrap().unwrap().path();
    flip_byte(&victim, 100);
    assert_eq!(run(&["check"]).code, 4);
    // `arca cache` lists the repository; --cleanup --max-age 0 removes it.
    let list = run(&["--json", "cache"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    run(&["cache", "--cleanup", "--max-age", "0"]).ok();
    assert!(run(&["--json", "cache"]).ok().json().as_array().unwrap().is_empty());
    // --no-cache leaves nothing behind.
    let other = env.path("other-cache");
    s3.cmd("bkt", "c").env("ARCA_CACHE_DIR", &other).env("ARCA_NO_CACHE", "1").arg("snapshots").output().unwrap();
    assert!(!other.exists());
}

// ---- bandwidth limits ------------------------------------------------------------------------

/// `--limit-upload` and `--limit-download` hold the transfer to the rate: 3 MiB of random data
/// at 1 MiB/s cannot take less than two seconds either way (a lower bound only: a slow machine
/// cannot make this fail).
#[test]
fn limits_hold_transfers_to_the_rate() {
    let env = Env::new();
    let src = env.mkdir("src");
    write_random_file(&src.join("big"), 77, 3 << 20);
    let started = Instant::now();
    env.run(&["--limit-upload", "1024", "backup", src.to_str().unwrap()]).ok();
    let up = started.elapsed();
    assert!(up >= Duration::from_secs(2), "3 MiB went up at 1 MiB/s in {up:?}");
    let started = Instant::now();
    let out = env.path("out");
    env.run(&["--limit-download", "1024", "restore", "latest", "--target", out.to_str().unwrap()]).ok();
    let down = started.elapsed();
    assert!(down >= Duration::from_secs(2), "3 MiB came down at 1 MiB/s in {down:?}");
    assert_eq!(hash_file(&under(&out, &src.join("big"))), hash_file(&src.join("big")));
    env.run(&["--limit-upload", "0", "snapshots"]).code(2);
}
