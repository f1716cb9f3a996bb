//! `amishare`: share an encrypted AMI across AWS accounts, or rehearse the
//! whole flow on the simulation.

mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Share a KMS-encrypted EC2 image with other AWS accounts, completely and safely.
#[derive(Debug, Parser)]
#[command(name = "amishare", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the mission's five steps on the simulation: account 111111111111 shares an
    /// encrypted AMI with a user of 222222222222 in ap-northeast-1, who launches it.
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("amishare: {err:#}");
            ExitCode::from(1)
        }
    }
}
