//! Slow and idle clients cannot starve the others: headers, bodies and idle
//! connections have timeouts, and past the connection limit the connection
//! idle longest makes room for the new one.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use amishare_serve::Limits;

use crate::support::{sts_headers, Harness, GET_CALLER_IDENTITY, OWNER_KEY, SEED_WORLD};

fn limits(change: impl FnOnce(&mut Limits)) -> Limits {
    let mut limits = Limits::default();
    change(&mut limits);
    limits
}

/// Reads until the server closes the connection; returns what it sent.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    // An error (a reset) closes it too.
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_connection_that_sends_nothing_or_idles_after_its_answer_is_closed() {
    let server = Harness::with(SEED_WORLD, |options| {
        options.limits = limits(|l| l.header_timeout = Duration::from_millis(200));
    })
    .await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(until_closed(&mut silent).await, "");

    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(b"GET /_amishare/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut kept).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_answered_408() {
    let server = Harness::with(SEED_WORLD, |options| {
        options.limits = limits(|l| l.body_timeout = Duration::from_millis(200));
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nAction=")
        .await
        .unwrap();
    let answer = until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn past_the_limit_the_connection_idle_longest_makes_room() {
    let server = Harness::with(SEED_WORLD, |options| {
        options.limits = limits(|l| l.max_connections = 4);
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let answer = server
        .send(
            "POST",
            "/",
            &sts_headers(OWNER_KEY),
            GET_CALLER_IDENTITY.as_bytes().to_vec(),
        )
        .await
        .ok();
    assert_eq!(
        answer.text("GetCallerIdentityResult/Arn"),
        "arn:aws:iam::111111111111:user/a-admin"
    );
    // The oldest idle connection was closed for it.
    assert_eq!(until_closed(&mut idle[0]).await, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_slow_connections_do_not_keep_ordinary_requests_waiting() {
    crate::slow_client::raise_open_file_limit();
    // Headers may take a minute: only the connection limit makes room.
    let server = Harness::with(SEED_WORLD, |options| {
        options.limits = limits(|l| l.header_timeout = Duration::from_secs(60));
    })
    .await;
    let (stop, mut slow) = crate::slow_client::hold(server.addr, 10_000).await;
    let mut took = Vec::new();
    for _ in 0..100 {
        let started = Instant::now();
        let answer = tokio::time::timeout(
            Duration::from_secs(20),
            server.send(
                "POST",
                "/",
                &sts_headers(OWNER_KEY),
                GET_CALLER_IDENTITY.as_bytes().to_vec(),
            ),
        )
        .await
        .expect("an ordinary request is answered while slow clients hold connections")
        .ok();
        assert_eq!(answer.root(), "GetCallerIdentityResponse");
        took.push(started.elapsed());
    }
    let open = server.send_health_on_new().await;
    assert!(
        open <= Limits::default().max_connections,
        "{open} connections open"
    );
    let _ = stop.send(true);
    while slow.join_next().await.is_some() {}
    took.sort();
    eprintln!(
        "100 requests among 10,000 slow connections: median {:?}, slowest {:?}, {open} connections open",
        took[50], took[99]
    );
}
