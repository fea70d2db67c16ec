//! Faults between arca and a real S3 server: a proxy on loopback, in front of `s3s-fs`, answers
//! chosen requests with `503 SlowDown`, drops the connection before or in the middle of the
//! response, or delays it. Transient faults must be retried with nothing lost; a store that keeps
//! refusing pack uploads must fail the backup clearly and leave no snapshot or index naming them.

use crate::common::*;
use crate::s3::S3Server;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does to one request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    Pass,
    SlowDown,
    DropBeforeResponse,
    DropMidResponse,
    Delay(u64),
    /// Answer a ranged GET with `200 OK` and more bytes than asked for (as a server that ignores
    /// `Range` would; the request itself is signed, so the proxy rewrites the response).
    LongBody,
}

/// Chooses the fault for request number `n` with request line `line` (`PUT /bkt/… HTTP/1.1`).
type Plan = Box<dyn Fn(u64, &str) -> Fault + Send + Sync>;

struct Proxy {
    port: u16,
    plan: Arc<Mutex<Plan>>,
    /// How many requests got each non-`Pass` fault.
    injected: Arc<AtomicU64>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let plan: Arc<Mutex<Plan>> = Arc::new(Mutex::new(Box::new(|_, _| Fault::Pass)));
        let injected = Arc::new(AtomicU64::new(0));
        let count = Arc::new(AtomicU64::new(0));
        let (p, i) = (plan.clone(), injected.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (p, i, c) = (p.clone(), i.clone(), count.clone());
                std::thread::spawn(move || {
                    let _ = serve(client, upstream, &p, &i, &c);
                });
            }
        });
        Proxy { port, plan, injected }
    }

    fn set(&self, plan: Plan) {
        *self.plan.lock().unwrap() = plan;
    }
}

/// One client connection: requests in turn, each forwarded on a fresh upstream connection.
fn serve(
    client: TcpStream,
    upstream: u16,
    plan: &Mutex<Plan>,
    injected: &AtomicU64,
    count: &AtomicU64,
) -> std::io::Result<()> {
    let mut out = client.try_clone()?;
    let mut r = BufReader::new(client);
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            if r.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            let end = line == b"\r\n";
            // The upstream connection is closed after one response, so the proxy knows where it ends.
            if !String::from_utf8_lossy(&line).to_ascii_lowercase().starts_with("connection:") {
                head.extend_from_slice(if end { b"connection: close\r\n\r\n" } else { &line });
            }
            if end {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head).to_string();
        let len: usize = text
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
            .unwrap_or(0);
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        let fault = (plan.lock().unwrap())(count.fetch_add(1, Ordering::SeqCst), text.lines().next().unwrap_or(""));
        if fault != Fault::Pass {
            injected.fetch_add(1, Ordering::SeqCst);
        }
        match fault {
            Fault::SlowDown => {
                let xml = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>injected</Message></Error>";
                write!(out, "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\r\n{xml}", xml.len())?;
                continue;
            }
            Fault::DropBeforeResponse => return Ok(()),
            Fault::Delay(ms) => std::thread::sleep(Duration::from_millis(ms)),
            Fault::Pass | Fault::DropMidResponse | Fault::LongBody => {}
        }
        let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
        up.write_all(&head)?;
        up.write_all(&body)?;
        let mut resp = Vec::new();
        up.read_to_end(&mut resp)?;
        if fault == Fault::LongBody {
            resp = long_body(&resp);
        }
        if fault == Fault::DropMidResponse {
            // The server did the work; the client never learns it (a PUT is then retried).
            out.write_all(&resp[..resp.len() / 2])?;
            return Ok(());
        }
        out.write_all(&resp)?;
    }
}

/// `resp` as a `200 OK` without `Content-Range`, its body followed by 4 KiB more.
fn long_body(resp: &[u8]) -> Vec<u8> {
    let Some(split) = resp.windows(4).position(|w| w == b"\r\n\r\n") else { return resp.to_vec() };
    let mut body = resp[split + 4..].to_vec();
    body.extend_from_slice(&[0x5a; 4096]);
    let head = String::from_utf8_lossy(&resp[..split]);
    let kept = head.lines().skip(1).filter(|l| {
        let l = l.to_ascii_lowercase();
        !l.starts_with("content-range:") && !l.starts_with("content-length:")
    });
    let mut out = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n", body.len());
    for l in kept {
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(&body);
    out
}

fn port_of(endpoint: &str) -> u16 {
    endpoint.rsplit(':').next().unwrap().parse().unwrap()
}

/// `arca` against `s3:…/bkt/r` through the proxy.
fn via(s3: &S3Server, proxy: &Proxy, args: &[&str]) -> Out {
    s3.cmd("bkt", "r")
        .env("ARCA_REPOSITORY", format!("s3:http://127.0.0.1:{}/bkt/r", proxy.port))
        .args(args)
        .output()
        .unwrap()
        .into()
}

fn tree(dir: &Path, seed: u64) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    for i in 0..10u64 {
        write_random_file(&dir.join(format!("f{i}")), seed + i, 40_000 + i * 70_000);
    }
    write_random_file(&dir.join("sub/big"), seed + 99, 3 << 20);
}

fn same_tree(a: &Path, b: &Path) {
    for e in ["f0", "f5", "f9", "sub/big"] {
        assert_eq!(hash_file(&a.join(e)), hash_file(&b.join(e)), "{e}");
    }
}

#[test]
fn transient_faults_are_retried_and_nothing_is_lost() {
    let s3 = S3Server::start("bkt");
    let proxy = Proxy::start(port_of(&s3.endpoint));
    proxy.set(Box::new(|n, _| match n {
        _ if n % 11 == 1 => Fault::SlowDown,
        _ if n % 13 == 3 => Fault::DropBeforeResponse,
        _ if n % 17 == 5 => Fault::DropMidResponse,
        _ if n % 19 == 0 => Fault::Delay(150),
        _ => Fault::Pass,
    }));
    let env = Env::bare();
    let src = env.mkdir("src");
    tree(&src, 1);
    via(&s3, &proxy, &["init", "--kdf-memory", "8", "--kdf-iterations", "1", "--pack-size", "1"]).ok();
    via(&s3, &proxy, &["backup", src.to_str().unwrap()]).ok();
    write_random_file(&src.join("f0"), 4242, 500_000);
    via(&s3, &proxy, &["--connections", "3", "backup", src.to_str().unwrap()]).ok();
    via(&s3, &proxy, &["check", "--read-data"]).ok();
    let out = env.path("out");
    via(&s3, &proxy, &["restore", "latest", "--target", out.to_str().unwrap()]).ok();
    same_tree(&under(&out, &src), &src);
    // A local repository copied to S3 through the faults.
    let local = env.path("local");
    let local_cmd = |args: &[&str]| -> Out {
        arca_cmd().env("ARCA_REPOSITORY", &local).env("ARCA_PASSWORD", PASSWORD).args(args).output().unwrap().into()
    };
    local_cmd(&["init", "--kdf-memory", "8", "--kdf-iterations", "1"]).ok();
    tree(&env.mkdir("other"), 500);
    local_cmd(&["backup", env.path("other").to_str().unwrap()]).ok();
    s3.cmd("bkt", "r")
        .env("ARCA_REPOSITORY", &local)
        .env("ARCA_TO_PASSWORD", PASSWORD)
        .args(["copy", "--to", &format!("s3:http://127.0.0.1:{}/bkt/r", proxy.port)])
        .assert()
        .success();
    let listed = via(&s3, &proxy, &["--json", "snapshots"]).ok().json();
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
    let first = listed[0]["id"].as_str().unwrap().to_string();
    via(&s3, &proxy, &["forget", &first]).ok();
    via(&s3, &proxy, &["prune", "--max-unused", "0"]).ok();
    via(&s3, &proxy, &["check", "--read-data"]).ok();
    assert!(proxy.injected.load(Ordering::SeqCst) > 10, "the faults were not exercised");
    // And straight to the server, without the proxy: the same clean repository.
    s3.run("bkt", "r", &["check", "--read-data"]).ok();
}

#[test]
fn a_store_refusing_pack_uploads_fails_the_backup_and_names_nothing_it_lost() {
    let s3 = S3Server::start("bkt");
    let proxy = Proxy::start(port_of(&s3.endpoint));
    let env = Env::bare();
    let src = env.mkdir("src");
    tree(&src, 7);
    via(&s3, &proxy, &["init", "--kdf-memory", "8", "--kdf-iterations", "1", "--pack-size", "1"]).ok();
    via(&s3, &proxy, &["backup", src.to_str().unwrap()]).ok();
    // Every pack upload is refused from now on (after the retries, the error is final).
    proxy.set(Box::new(
        |_, line| if line.starts_with("PUT") && line.contains("/data/") { Fault::SlowDown } else { Fault::Pass },
    ));
    tree(&src, 1000);
    let out = via(&s3, &proxy, &["backup", src.to_str().unwrap()]);
    assert_ne!(out.code, 0, "a backup whose packs were refused succeeded");
    assert!(out.stderr.contains("upload of data/"), "the error does not name the upload: {}", out.stderr);
    // No snapshot and no index file name the lost packs: the repository is as before.
    proxy.set(Box::new(|_, _| Fault::Pass));
    let listed = via(&s3, &proxy, &["--json", "snapshots"]).ok().json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    via(&s3, &proxy, &["check", "--read-data"]).ok();
    // Once the store accepts uploads again, the backup goes through.
    via(&s3, &proxy, &["backup", src.to_str().unwrap()]).ok();
    let restored = env.path("out");
    via(&s3, &proxy, &["restore", "latest", "--target", restored.to_str().unwrap()]).ok();
    same_tree(&under(&restored, &src), &src);
}

#[test]
fn a_store_ignoring_ranges_is_caught_not_believed() {
    let s3 = S3Server::start("bkt");
    let proxy = Proxy::start(port_of(&s3.endpoint));
    let env = Env::bare();
    let src = env.mkdir("src");
    // One pack of several read-ahead windows, so a window is never the whole object.
    write_random_file(&src.join("big"), 3, 12 << 20);
    via(&s3, &proxy, &["init", "--kdf-memory", "8", "--kdf-iterations", "1"]).ok();
    via(&s3, &proxy, &["backup", src.to_str().unwrap()]).ok();
    proxy.set(Box::new(
        |_, line| if line.starts_with("GET") && line.contains("/data/") { Fault::LongBody } else { Fault::Pass },
    ));
    let out = via(&s3, &proxy, &["restore", "latest", "--target", env.path("out").to_str().unwrap()]);
    assert_ne!(out.code, 0, "a restore from shifted windows succeeded");
    // OpenDAL 0.57 panics in its read task on the extra bytes ("BytesRange::advance
    // underflow"); the backend turns the failed fetch into an error naming the pack. (arca
    // checks each window's length too, for a store whose extra bytes get past OpenDAL.)
    let said =
        ["too much data", "the store sent", "failed on the store's answer"].iter().any(|w| out.stderr.contains(w));
    assert!(
        out.stderr.contains("data/") && said,
        "the error does not name the pack and what the store did: {}",
        out.stderr
    );
    assert!(proxy.injected.load(Ordering::SeqCst) > 0);
    proxy.set(Box::new(|_, _| Fault::Pass));
    let restored = env.path("again");
    via(&s3, &proxy, &["restore", "latest", "--target", restored.to_str().unwrap()]).ok();
    assert_eq!(hash_file(&under(&restored, &src).join("big")), hash_file(&src.join("big")));
}
