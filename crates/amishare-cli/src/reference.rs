//! `amishare completions SHELL` and `amishare man`: the command's own
//! definition, written out by clap's generators, so completions and the
//! manual never drift from the options.

use std::path::PathBuf;

use crate::fail::Failure;

/// Options of `amishare completions`.
#[derive(Debug, clap::Args)]
pub(crate) struct CompletionsArgs {
    /// The shell, e.g. `amishare completions bash > ~/.local/share/bash-completion/completions/amishare`.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Options of `amishare man`.
#[derive(Debug, clap::Args)]
pub(crate) struct ManArgs {
    /// Write `amishare.1` and one page per command (`amishare-share.1`, …)
    /// into this directory instead of printing `amishare.1`.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Prints the completion script for `args.shell`.
pub(crate) fn completions(
    args: &CompletionsArgs,
    mut command: clap::Command,
) -> Result<(), Failure> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut command, "amishare", &mut out);
    crate::render::emit(&String::from_utf8_lossy(&out));
    Ok(())
}

/// Prints the manual page, or writes every page into `args.dir`.
pub(crate) fn man(args: &ManArgs, command: clap::Command) -> Result<(), Failure> {
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .and_then(|()| clap_mangen::generate_to(command, dir))
                .map_err(|err| {
                    Failure::failed(anyhow::anyhow!("--dir {}: {err}", dir.display()))
                })?;
            eprintln!("wrote the manual pages into {}", dir.display());
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut out)
                .map_err(Failure::failed)?;
            crate::render::emit(&String::from_utf8_lossy(&out));
        }
    }
    Ok(())
}
