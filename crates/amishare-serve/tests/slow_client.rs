//! Slow clients for the tests and the load bench: connections that start a
//! request and never finish it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Raises this process's open-file limit to its hard limit: holding
/// thousands of client sockets (and, in process, the server's) needs it.
pub(crate) fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
}

/// `count` connections to `addr`, each sending a request's first line and
/// then a header line every half second, never ending its headers, until
/// the sender is told `true` (or the server closes it). Returns the sender
/// and the clients, to wait for.
pub(crate) async fn hold(addr: SocketAddr, count: usize) -> (watch::Sender<bool>, JoinSet<()>) {
    let (stop, stopped) = watch::channel(false);
    let mut clients = JoinSet::new();
    for _ in 0..count {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut stopped = stopped.clone();
        clients.spawn(async move {
            if stream
                .write_all(b"POST / HTTP/1.1\r\nHost: x\r\n")
                .await
                .is_err()
            {
                return;
            }
            loop {
                tokio::select! {
                    _ = stopped.changed() => return,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                if stream.write_all(b"X-Slow: 1\r\n").await.is_err() {
                    return;
                }
            }
        });
    }
    (stop, clients)
}
