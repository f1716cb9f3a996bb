//! `amishare sim serve` under hostile load, as figures:
//! `cargo bench -p amishare-serve --bench load`.
//!
//! 1. **Slow clients.** The latency of ordinary requests (STS
//!    `GetCallerIdentity`, each on a new connection) alone, and while 10,000
//!    clients each hold a connection open, sending a header line every half
//!    second and never finishing their request (the server's default
//!    limits: 1,024 connections, 10 s for headers).
//! 2. **Many accounts.** The rate of a caller's requests on one kept-alive
//!    connection, signed with a mapped access key and with the 12-digit key
//!    of an account of the world, before and after 20,000 unmapped 12-digit
//!    access keys each added an account (`ServeOptions::new_accounts`):
//!    looking a caller up is one map read, whatever the world holds (it
//!    used to copy every account ID for each request).

#![allow(missing_docs)] // A bench binary has no API.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use amishare_serve::{ServeOptions, Server};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[path = "../tests/slow_client.rs"]
mod slow_client;

const SEED_WORLD: &str = include_str!("../../../testdata/worlds/seed.json");
const OWNER_KEY: &str = "AKIAAADMINEXAMPLE001";

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Sender {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

/// `GetCallerIdentity` signed (falsely: the server runs on loopback) as `key`.
async fn identity(sender: &mut Sender, addr: SocketAddr, key: &str) -> u16 {
    let request = Request::builder()
        .method("POST")
        .uri("/")
        .header("host", addr.to_string())
        .header(
            "authorization",
            format!("AWS4-HMAC-SHA256 Credential={key}/20261128/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=00"),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(
            b"Action=GetCallerIdentity&Version=2011-06-15",
        )))
        .unwrap();
    sender.ready().await.unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    response.into_body().collect().await.unwrap();
    status
}

/// Serves a copy of the seed world; returns the address and the stopper.
async fn serve(
    dir: &tempfile::TempDir,
    new_accounts: usize,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let path = dir.path().join("world.json");
    std::fs::write(&path, SEED_WORLD).unwrap();
    let server = Server::bind(ServeOptions {
        new_accounts,
        ..ServeOptions::new(&path, "127.0.0.1:0".parse().unwrap())
    })
    .await
    .unwrap();
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// Median, 99th percentile and slowest of `count` requests, each on a new
/// connection.
async fn latencies(addr: SocketAddr, count: usize) -> (Duration, Duration, Duration) {
    let mut took = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let mut sender = connect(addr).await;
        assert_eq!(identity(&mut sender, addr, OWNER_KEY).await, 200);
        took.push(started.elapsed());
    }
    took.sort();
    (took[count / 2], took[count * 99 / 100], took[count - 1])
}

/// Requests a second signed with `key` on one kept-alive connection, over
/// `seconds`.
async fn rate(addr: SocketAddr, key: &str, seconds: u64) -> f64 {
    let mut sender = connect(addr).await;
    let started = Instant::now();
    let mut done = 0_u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        assert_eq!(identity(&mut sender, addr, key).await, 200);
        done += 1;
    }
    done as f64 / started.elapsed().as_secs_f64()
}

async fn slow_clients() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, stop) = serve(&dir, 0).await;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (median, p99, slowest) = latencies(addr, 1_000).await;
    println!("| load | median | 99th percentile | slowest |");
    println!("|---|---|---|---|");
    println!(
        "| none | {:.2} ms | {:.2} ms | {:.2} ms |",
        ms(median),
        ms(p99),
        ms(slowest)
    );
    let (quit, mut slow) = slow_client::hold(addr, 10_000).await;
    let (median, p99, slowest) = latencies(addr, 1_000).await;
    println!(
        "| 10,000 slow connections | {:.2} ms | {:.2} ms | {:.2} ms |",
        ms(median),
        ms(p99),
        ms(slowest)
    );
    let _ = quit.send(true);
    while slow.join_next().await.is_some() {}
    let _ = stop.send(());
}

async fn many_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, stop) = serve(&dir, 20_000).await;
    let before = (
        rate(addr, OWNER_KEY, 3).await,
        rate(addr, "111111111111", 3).await,
    );
    let mut sender = connect(addr).await;
    for n in 0..20_000_u64 {
        let key = format!("{:012}", 500_000_000_000 + n);
        assert_eq!(identity(&mut sender, addr, &key).await, 200);
    }
    let after = (
        rate(addr, OWNER_KEY, 3).await,
        rate(addr, "111111111111", 3).await,
    );
    println!();
    println!("| accounts in the world | requests a second, mapped key | requests a second, 12-digit key |");
    println!("|---|---|---|");
    println!("| 2 | {:.0} | {:.0} |", before.0, before.1);
    println!("| 20,002 | {:.0} | {:.0} |", after.0, after.1);
    let _ = stop.send(());
}

fn main() {
    slow_client::raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        slow_clients().await;
        many_accounts().await;
    });
}
