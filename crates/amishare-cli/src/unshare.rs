//! `amishare unshare`: take back what `share` gave.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use amishare_core::{
    check_partitions, ImageId, ImageOwner, ImageQuery, Kept, Region, RegionImage, Sharer,
    UnshareRequest, TAG_SOURCE_IMAGE,
};

use crate::args::{self, NarrowingArgs, TargetArgs};
use crate::backend::{Global, Session};
use crate::fail::{usage, Failure};
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

/// The shared images behind `--image`: itself when it is a copy amishare
/// made, else the copies of it in each region (or itself where it was
/// shared as it is).
pub(crate) async fn shared_images(
    session: &Session,
    image: &ImageId,
    region: &Region,
    regions: &[Region],
) -> Result<Vec<RegionImage>, Failure> {
    let images = &session.side.images;
    let found = images
        .describe_images(region, &ImageQuery::ids([image.clone()]))
        .await?;
    let Some(found) = found.into_iter().next() else {
        return Err(Failure::failed(anyhow::anyhow!(
            "image {image} does not exist in {region}"
        )));
    };
    if found.tags.contains_key(TAG_SOURCE_IMAGE) {
        return Ok(vec![RegionImage {
            region: region.clone(),
            image: image.clone(),
        }]);
    }
    let mut shared = Vec::new();
    let regions = if regions.is_empty() {
        std::slice::from_ref(region)
    } else {
        regions
    };
    let caller = session.side.keys.caller().await?;
    let query = ImageQuery {
        owners: vec![ImageOwner::Me],
        tags: BTreeMap::from([(TAG_SOURCE_IMAGE.to_owned(), vec![image.to_string()])]),
        ..ImageQuery::default()
    };
    for r in regions {
        let mut copies = images.describe_images(r, &query).await?;
        copies.retain(|copy| query.matches(copy, &caller.account));
        if copies.is_empty() && r == region {
            shared.push(RegionImage {
                region: r.clone(),
                image: image.clone(),
            });
        }
        shared.extend(copies.into_iter().map(|copy| RegionImage {
            region: r.clone(),
            image: copy.id,
        }));
    }
    Ok(shared)
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
    let images = shared_images(session, &args.image, &region, &args.regions).await?;
    let request = UnshareRequest {
        images,
        targets,
        narrowing: args.narrowing.narrowing(),
        deregister: args.deregister,
    };
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
        render::json(render::format::UNSHARE, &report)?;
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
