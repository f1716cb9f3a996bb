//! `amishare unshare`: take back what `share` gave.

use std::fmt::Write as _;

use amishare_core::{check_partitions, ImageId, Kept, Region, Sharer, UnshareRequest};

use crate::args::{self, NarrowingArgs, TargetArgs};
use crate::backend::{Global, Session};
use crate::fail::{usage, Failure};
use crate::json;
use crate::render;

/// Options of `amishare unshare`.
#[derive(Debug, clap::Args)]
pub(crate) struct UnshareArgs {
    /// The shared image, or the source image whose shared copies to find (in --region).
    #[arg(long, value_parser = args::image)]
    image: ImageId,
    #[command(flatten)]
    targets: TargetArgs,
    /// Regions whose copies of the source to unshare (comma-separated; default: --region).
    #[arg(long, value_delimiter = ',', value_parser = args::region)]
    regions: Vec<Region>,
    #[command(flatten)]
    narrowing: NarrowingArgs,
    /// Also deregister the copies amishare made and delete their snapshots.
    #[arg(long)]
    deregister: bool,
}

/// Runs `unshare`.
pub(crate) async fn run(
    args: &UnshareArgs,
    global: &Global,
    session: &Session,
) -> Result<(), Failure> {
    let region = session.region()?;
    let targets = args.targets.targets().map_err(usage)?;
    for r in std::iter::once(&region).chain(&args.regions) {
        check_partitions(r, &targets).map_err(|err| usage(err.to_string()))?;
    }
    let images = session
        .flow()
        .shared_images(&args.image, &region, &args.regions)
        .await?;
    let request = UnshareRequest::new(images, targets)
        .with_narrowing(args.narrowing.narrowing())
        .with_deregister(args.deregister);
    let report = session.flow().unshare(&request).await?;
    if global.dry_run {
        // The plan is the output; what the unshare keeps, and why, goes with it.
        let mut notes = String::new();
        kept(&mut notes, &report.kept);
        render::warnings(&mut notes, &report.warnings);
        eprint!("{notes}");
        return Ok(());
    }
    if global.json {
        render::json(render::format::UNSHARE, &json::Unshare::from(&report))?;
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Unshared {} from {}:",
        request
            .images
            .iter()
            .map(|i| format!("{} ({})", i.image, i.region))
            .collect::<Vec<_>>()
            .join(", "),
        request
            .targets
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    render::steps(&mut out, &report.steps);
    let _ = writeln!(out, "{} mutating calls.", report.mutating_calls);
    kept(&mut out, &report.kept);
    render::warnings(&mut out, &report.warnings);
    render::emit(&out);
    Ok(())
}

/// The accounts whose permissions an unshare kept, and the principals why.
fn kept(out: &mut String, kept: &[Kept]) {
    for k in kept {
        let _ = writeln!(
            out,
            "kept: account {} still has launch and create-volume permissions on {} ({}): amishare's key-policy statements still name {}; unshare those principals too to remove them",
            k.account,
            k.image,
            k.region,
            k.named.join(", ")
        );
    }
}
