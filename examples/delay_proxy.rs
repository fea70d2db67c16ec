//! A TCP proxy that adds round-trip latency, for measuring against a remote store on loopback:
//! `cargo run --release --example delay_proxy -- LISTEN_PORT UPSTREAM_PORT RTT_MS`.
//!
//! Every byte is delivered half the round trip after it was read, in each direction, and a new
//! connection is forwarded one round trip after it was accepted (the TCP handshake a real link
//! would cost). Bytes are read and delivered concurrently, so latency is added without capping
//! throughput: a request pipelined behind another does not wait for it, as on a real long link.
//! (`tc qdisc … netem` does the same in the kernel where the `sch_netem` module exists.)
//! With `DELAY_PROXY_LOG=1` it prints the request line of each HTTP request it forwards, with
//! the milliseconds since it started, to see which requests a command waits for.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static START: OnceLock<Instant> = OnceLock::new();

/// Chunks read but not yet delivered, per direction of one connection (of up to 256 KiB each).
const IN_FLIGHT: usize = 64;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream, rtt] = &args[..] else {
        eprintln!("usage: delay_proxy LISTEN_PORT UPSTREAM_PORT RTT_MS");
        std::process::exit(2);
    };
    let (upstream, rtt): (u16, u64) = (upstream.parse().expect("UPSTREAM_PORT"), rtt.parse().expect("RTT_MS"));
    let rtt = Duration::from_millis(rtt);
    START.get_or_init(Instant::now);
    let listener = TcpListener::bind(("127.0.0.1", listen.parse::<u16>().expect("LISTEN_PORT"))).expect("bind");
    for client in listener.incoming().flatten() {
        std::thread::spawn(move || {
            std::thread::sleep(rtt);
            if let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) {
                connect(client, server, rtt / 2);
            }
        });
    }
}

/// Forward both directions of one connection until both are closed.
fn connect(client: TcpStream, server: TcpStream, delay: Duration) {
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else { return };
    let log = std::env::var_os("DELAY_PROXY_LOG").is_some();
    let up = std::thread::spawn(move || pump(client, server, delay, log));
    pump(s2, c2, delay, false);
    let _ = up.join();
}

/// Copy `from` to `to`, each chunk delivered `delay` after it was read.
fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration, log: bool) {
    let (tx, rx) = mpsc::sync_channel::<(Instant, Vec<u8>)>(IN_FLIGHT);
    let writer = std::thread::spawn(move || {
        for (due, chunk) in rx {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if to.write_all(&chunk).is_err() {
                return;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    let mut buf = vec![0; 256 << 10];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        if log {
            log_request(&buf[..n]);
        }
        if tx.send((Instant::now() + delay, buf[..n].to_vec())).is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.join();
}

/// Print the request line if `chunk` starts an HTTP request.
fn log_request(chunk: &[u8]) {
    let line = chunk.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    if ["GET ", "PUT ", "HEAD ", "POST ", "DELETE "].iter().any(|m| line.starts_with(m)) {
        let ms = START.get().map_or(0, |s| s.elapsed().as_millis());
        eprintln!("{ms:>8} {line}");
    }
}
