//! `amishare`: share an encrypted AMI across AWS accounts, or rehearse the
//! whole flow on the simulation.

mod accept;
mod args;
mod backend;
mod demo;
mod doctor;
mod fail;
mod json;
mod policy;
mod progress;
mod reference;
mod render;
mod serve;
mod share;
mod status;
mod unshare;

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

use crate::backend::{BackendKind, Global, Session};
use crate::fail::Failure;

// mimalloc: the simulation allocates many small strings, and the seed-flow
// benchmark measures the command's allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Share a KMS-encrypted EC2 image with other AWS accounts, completely and safely.
///
/// Exit codes: 0 done, 1 the operation failed, 2 bad input (nothing was changed).
#[derive(Debug, Parser)]
#[command(name = "amishare", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Share an image with other accounts, as its owner: copy it encrypted
    /// under a customer-managed key, let the targets use the key, verify
    /// every snapshot, then grant launch permission.
    Share(share::ShareArgs),
    /// Use an image shared with this account: check its key, find it, and
    /// optionally launch a test instance and copy it under a key of this account.
    Accept(accept::AcceptArgs),
    /// Stop sharing, as the owner: remove the permissions and key-policy
    /// statements that share added.
    Unshare(unshare::UnshareArgs),
    /// Show who can launch and copy an image, which key encrypts each
    /// snapshot, and the statements and grants on each key.
    Status(status::StatusArgs),
    /// Explain why a principal can or cannot launch or copy a shared image,
    /// link by link, with the fix for each broken link.
    ///
    /// Exit 0 when every link holds, 1 when one is broken or cannot be seen.
    Doctor(doctor::DoctorArgs),
    /// Print a key policy that lets the targets use a key (for `aws kms
    /// put-key-policy` or `create-key`), merge its statements into a policy
    /// file, or print the statements alone.
    Policy(policy::PolicyArgs),
    /// Run the simulation as a local AWS endpoint.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Try it offline: account 111111111111 shares an encrypted image with a
    /// user of 222222222222, who launches it and copies it, on the built-in
    /// simulation.
    Demo(demo::DemoArgs),
    /// Print a completion script for your shell.
    Completions(reference::CompletionsArgs),
    /// Print the manual page, or write one per command into a directory.
    Man(reference::ManArgs),
}

#[derive(Debug, Subcommand)]
enum SimCommand {
    /// Serve the world file as a local EC2, KMS and STS endpoint that the AWS
    /// SDKs, the aws CLI and this command (`--backend aws --endpoint-url`) can
    /// use; access keys map to principals as the world file says, a 12-digit
    /// one to that account's root. The world is saved back when it stops;
    /// while it runs, commands on the world file are refused and told where
    /// the server is.
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(tracing_subscriber::EnvFilter::from_default_env()),
        )
        .with(
            progress::Progress::new().with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target("amishare::wait", tracing::Level::INFO),
            ),
        )
        .init();
    let result = match &cli.command {
        Command::Demo(args) => demo::run(args, cli.global.json).map_err(Failure::Failed),
        Command::Policy(args) => policy::run(args, &cli.global),
        Command::Sim(SimCommand::Serve(args)) => {
            serve::run(args, cli.global.world.as_ref(), cli.global.lock_wait)
        }
        Command::Completions(args) => reference::completions(args, Cli::command()),
        Command::Man(args) => reference::man(args, Cli::command()),
        command => run_on_backend(command, &cli.global),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("amishare: {failure}");
            failure.exit_code()
        }
    }
}

/// Runs a command that acts through a backend, and writes the simulated
/// world back when the command changed it.
fn run_on_backend(command: &Command, global: &Global) -> Result<(), Failure> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    if global.backend == BackendKind::Sim {
        // The world's clock is virtual: waits cost nothing.
        builder.start_paused(true);
    }
    let runtime = builder.build().map_err(Failure::failed)?;
    runtime.block_on(async {
        let session = Session::open(global, command.name()).await?;
        let result = match command {
            Command::Share(args) => share::run(args, global, &session).await,
            Command::Accept(args) => accept::run(args, global, &session).await,
            Command::Unshare(args) => unshare::run(args, global, &session).await,
            Command::Status(args) => status::run(args, global, &session).await,
            Command::Doctor(args) => doctor::run(args, global, &session).await,
            Command::Policy(_)
            | Command::Demo(_)
            | Command::Sim(_)
            | Command::Completions(_)
            | Command::Man(_) => {
                unreachable!("run without a backend")
            }
        };
        let changed = session
            .world
            .as_ref()
            .is_some_and(|(world, _)| world.mutating_calls() > 0);
        let result = result.map_err(|failure| failure.bad_input_unless(changed));
        if let Some(planner) = &session.planner {
            if !matches!(result, Err(Failure::Usage(_))) {
                render::plan(&planner.plan(), global.json)?;
            }
        }
        // Bad input changed nothing; a command that only read changed
        // nothing either: the world file is written only when it changed.
        if !matches!(result, Err(Failure::Usage(_))) {
            session.finish(global)?;
        }
        result
    })
}

impl Command {
    /// The command's name, as typed.
    fn name(&self) -> &'static str {
        match self {
            Command::Share(_) => "share",
            Command::Accept(_) => "accept",
            Command::Unshare(_) => "unshare",
            Command::Status(_) => "status",
            Command::Doctor(_) => "doctor",
            Command::Policy(_) => "policy",
            Command::Sim(_) => "sim serve",
            Command::Demo(_) => "demo",
            Command::Completions(_) => "completions",
            Command::Man(_) => "man",
        }
    }
}
