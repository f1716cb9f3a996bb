//! `amishare sim serve` as a thin binary, for manual and script testing:
//!
//! ```text
//! cargo run -p amishare-serve --example serve -- --world /tmp/world.json [--listen 127.0.0.1:0] [--time-scale 100]
//! ```
//!
//! Prints `listening on http://ADDR` on stdout once it accepts connections,
//! saves the world on `SIGHUP`, and saves it and exits on `SIGINT` or
//! `SIGTERM`. `RUST_LOG=amishare_serve=info` logs each request on stderr.

use std::net::SocketAddr;
use std::process::ExitCode;

use amishare_serve::{ServeOptions, Server, DEFAULT_TIME_SCALE};
use tokio::signal::unix::{signal, SignalKind};

const USAGE: &str = "usage: serve --world FILE [--listen ADDR] [--time-scale FACTOR]";

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match parse(std::env::args().skip(1)) {
        Ok(options) => run(options),
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<ServeOptions, String> {
    let mut world = None;
    let mut listen: SocketAddr = "127.0.0.1:0".parse().expect("a valid address");
    let mut time_scale = DEFAULT_TIME_SCALE;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--world" => world = Some(value()?),
            "--listen" => {
                let text = value()?;
                listen = text
                    .parse()
                    .map_err(|err| format!("--listen {text:?}: {err}"))?;
            }
            "--time-scale" => {
                let text = value()?;
                time_scale = text
                    .parse()
                    .map_err(|err| format!("--time-scale {text:?}: {err}"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let world = world.ok_or("--world is required")?;
    let mut options = ServeOptions::new(world, listen);
    options.time_scale = time_scale;
    Ok(options)
}

#[tokio::main(flavor = "current_thread")]
async fn run(options: ServeOptions) -> ExitCode {
    let server = match Server::bind(options).await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("serve: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on http://{}", server.local_addr());
    let saver = server.save_handle();
    let mut hangup = signal(SignalKind::hangup()).expect("a SIGHUP handler");
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            match saver.save() {
                Ok(()) => eprintln!("serve: saved {}", saver.world_path().display()),
                Err(err) => eprintln!("serve: {err}"),
            }
        }
    });
    let mut terminate = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    };
    match server.run(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("serve: {err}");
            ExitCode::FAILURE
        }
    }
}
