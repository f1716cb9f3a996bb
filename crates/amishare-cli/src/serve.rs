//! `amishare sim serve`: the simulated world as a local EC2, KMS and STS
//! endpoint for any AWS client, saved back when the server stops. The
//! server holds the world file's lock while it runs.

use std::net::SocketAddr;
use std::path::PathBuf;

use amishare_serve::{ServeError, ServeOptions, Server, DEFAULT_TIME_SCALE, SAVE_PATH};
use tokio::signal::unix::{signal, SignalKind};

use crate::fail::{usage, Failure};

/// Options of `amishare sim serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Where to listen (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:9566")]
    listen: SocketAddr,
    /// How much faster than wall time the world's clock runs (at 100, an
    /// 8 GiB copy that takes 5 minutes on AWS is available in about 3 s).
    #[arg(long, default_value_t = DEFAULT_TIME_SCALE, value_parser = time_scale)]
    time_scale: f64,
    /// Serve on an address other than loopback, answering only requests
    /// signed with a secret access key of the world file (`access_keys`).
    #[arg(long)]
    allow_remote: bool,
    /// How many accounts unmapped 12-digit access key IDs may add to the
    /// world (without --allow-remote; by default none: such a key is the
    /// root of an account the world has).
    #[arg(long, value_name = "N", default_value_t = 0)]
    new_accounts: usize,
}

fn time_scale(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(scale) if scale.is_finite() && scale >= 1.0 => Ok(scale),
        _ => Err(format!(
            "{value:?} is not a time scale (a number of at least 1)"
        )),
    }
}

/// Serves `world` until SIGINT or SIGTERM, saving it on SIGHUP and at the end.
pub(crate) fn run(
    args: &ServeArgs,
    world: Option<&PathBuf>,
    lock_wait: u64,
) -> Result<(), Failure> {
    let world =
        world.ok_or_else(|| usage("sim serve needs --world FILE (see testdata/worlds/)"))?;
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        return Err(usage(format!(
            "{} is not a loopback address: anyone who reached it could act as any principal of the world; pass --allow-remote to serve it there, answering only requests signed with the secret access keys of the world file",
            args.listen
        )));
    }
    if args.allow_remote && args.new_accounts > 0 {
        return Err(usage(
            "--new-accounts needs a server without --allow-remote: an authenticated server knows only the world file's access keys",
        ));
    }
    let extra_regions = std::env::var("AMISHARE_EXTRA_REGIONS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            amishare_core::Region::parse(name)
                .map_err(|err| usage(format!("AMISHARE_EXTRA_REGIONS: {err}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Failure::failed)?;
    runtime.block_on(async {
        // The handlers come first: a signal from here on is the server's to
        // handle (SIGHUP saves), never the default that kills.
        let mut hangup = signal(SignalKind::hangup()).map_err(Failure::failed)?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(Failure::failed)?;
        let mut terminate = signal(SignalKind::terminate()).map_err(Failure::failed)?;
        let options = ServeOptions {
            time_scale: args.time_scale,
            authenticate: args.allow_remote,
            new_accounts: args.new_accounts,
            extra_regions,
            lock_wait: std::time::Duration::from_secs(lock_wait),
            ..ServeOptions::new(world, args.listen)
        };
        let server = Server::bind_waiting(options, |holder| match holder {
            Some(holder) => eprintln!(
                "amishare: waiting for {holder} to finish with {} (up to {lock_wait} s)",
                world.display()
            ),
            None => eprintln!(
                "amishare: waiting for another command to finish with {} (up to {lock_wait} s)",
                world.display()
            ),
        })
        .await
        .map_err(|err| match err {
            ServeError::Locked(err) => Failure::failed(err),
            err => usage(format!("sim serve: {err}")),
        })?;
        let endpoint = server.endpoint();
        println!("listening on http://{}", server.local_addr());
        eprintln!(
            "amishare: serving {} (time x{}{}); POST {endpoint}{SAVE_PATH} or SIGHUP saves it, Ctrl-C saves it and stops",
            world.display(),
            args.time_scale,
            if args.allow_remote { ", signed requests only" } else { "" },
        );
        eprintln!(
            "amishare: reach it with: amishare --backend aws --endpoint-url {endpoint} (and an access key of the world)"
        );
        let saver = server.save_handle();
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                match saver.save() {
                    Ok(()) => eprintln!("amishare: saved {}", saver.world_path().display()),
                    Err(err) => eprintln!("amishare: {err}"),
                }
            }
        });
        let shutdown = async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        };
        server.run(shutdown).await.map_err(Failure::failed)?;
        eprintln!("amishare: saved {} and stopped", world.display());
        Ok(())
    })
}
