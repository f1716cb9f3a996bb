//! `amishare sim serve`: the simulated world as a local EC2, KMS and STS
//! endpoint for any AWS client, saved back when the server stops.

use std::net::SocketAddr;
use std::path::PathBuf;

use amishare_serve::{ServeOptions, Server, DEFAULT_TIME_SCALE, SAVE_PATH};
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
pub(crate) fn run(args: &ServeArgs, world: Option<&PathBuf>) -> Result<(), Failure> {
    let world =
        world.ok_or_else(|| usage("sim serve needs --world FILE (see testdata/worlds/)"))?;
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "amishare: warning: {} is not a loopback address: anyone who can reach it can act as any principal of the world",
            args.listen
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Failure::failed)?;
    runtime.block_on(async {
        let options = ServeOptions {
            time_scale: args.time_scale,
            ..ServeOptions::new(world, args.listen)
        };
        let server = Server::bind(options)
            .await
            .map_err(|err| usage(format!("sim serve: {err}")))?;
        let address = server.local_addr();
        println!("listening on http://{address}");
        eprintln!(
            "amishare: serving {} (time x{}); POST http://{address}{SAVE_PATH} or SIGHUP saves it, Ctrl-C saves it and stops",
            world.display(),
            args.time_scale
        );
        let saver = server.save_handle();
        let mut hangup = signal(SignalKind::hangup()).map_err(Failure::failed)?;
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                match saver.save() {
                    Ok(()) => eprintln!("amishare: saved {}", saver.world_path().display()),
                    Err(err) => eprintln!("amishare: {err}"),
                }
            }
        });
        let mut terminate = signal(SignalKind::terminate()).map_err(Failure::failed)?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        };
        server.run(shutdown).await.map_err(Failure::failed)?;
        eprintln!("amishare: saved {} and stopped", world.display());
        Ok(())
    })
}
