//! `amishare status`: who can launch and copy an image, which statements and
//! grants its keys carry, and which key each snapshot really uses.

use std::fmt::Write as _;

use amishare_core::{ImageId, KeyRef, Region, StatusRequest};
use clap::ArgGroup;

use crate::args;
use crate::backend::{Global, Session};
use crate::fail::{usage, Failure};
use crate::json::{self, Readable, VolumePermission};
use crate::render;

/// Options of `amishare status`.
#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("subject").required(true).args(["image", "key"])))]
pub(crate) struct StatusArgs {
    /// An image: itself, or the shared copies of it (in --region, and every region of --regions).
    #[arg(long, value_parser = args::image)]
    image: Option<ImageId>,
    /// A key (ID, ARN or alias): its statements, grants, and the images it encrypts.
    #[arg(long, value_parser = args::key)]
    key: Option<KeyRef>,
    /// Regions to look in (comma-separated; default: --region).
    #[arg(long, value_delimiter = ',', value_parser = args::region)]
    regions: Vec<Region>,
}

/// Runs `status`.
pub(crate) async fn run(
    args: &StatusArgs,
    global: &Global,
    session: &Session,
) -> Result<(), Failure> {
    if global.dry_run {
        return Err(usage("status changes nothing: --dry-run does not apply"));
    }
    let mut request = StatusRequest::new(session.region()?).in_regions(args.regions.clone());
    if let Some(image) = &args.image {
        request = request.with_image(image.clone());
    }
    if let Some(key) = &args.key {
        request = request.with_key(key.clone());
    }
    let target = session.target_flow();
    let report = session.flow().status(&request, target.as_ref()).await?;
    let document = json::Status::from(&report);
    if global.json {
        render::json(render::format::STATUS, &document)?;
    } else {
        render::emit(&text(&document));
    }
    Ok(())
}

/// The document for people: the same fields, a line each.
fn text(report: &json::Status) -> String {
    let mut out = String::new();
    for image in &report.images {
        let _ = writeln!(
            out,
            "image {} ({:?}) in {}, owner {}, {}",
            image.image, image.name, image.region, image.owner, image.state
        );
        match &image.launch_permissions {
            Readable::Known(list) if list.is_empty() => {
                let _ = writeln!(out, "  launch: owner only");
            }
            Readable::Known(list) => {
                let who: Vec<String> = list.iter().map(ToString::to_string).collect();
                let _ = writeln!(out, "  launch: {}", who.join(", "));
            }
            Readable::Unknown(why) => {
                let _ = writeln!(out, "  launch: unknown ({why})");
            }
        }
        for snapshot in &image.snapshots {
            let key = match &snapshot.key {
                Readable::Known(Some(key)) => key.to_string(),
                Readable::Known(None) => "NOT ENCRYPTED".to_owned(),
                Readable::Unknown(why) => format!("unknown ({why})"),
            };
            let copy = match &snapshot.volume_permissions {
                Readable::Known(list) if list.is_empty() => "owner only".to_owned(),
                Readable::Known(list) => list
                    .iter()
                    .map(|p| match p {
                        VolumePermission::Account(a) => a.to_string(),
                        VolumePermission::Public => "everyone".to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                Readable::Unknown(why) => format!("unknown ({why})"),
            };
            let _ = writeln!(
                out,
                "  snapshot {}: key {key}; copy (create volume): {copy}",
                snapshot.snapshot
            );
        }
    }
    for (arn, key) in &report.keys {
        let _ = writeln!(
            out,
            "key {arn}: {}{}",
            key.state.as_deref().unwrap_or("unknown"),
            key.manager
                .as_deref()
                .map(|m| format!(", {m} managed"))
                .unwrap_or_default()
        );
        match &key.amishare_statements {
            Readable::Known(statements) => {
                let _ = writeln!(
                    out,
                    "  key policy: {} statements of amishare's, {} others (not amishare's)",
                    statements.len(),
                    key.other_statements.unwrap_or(0)
                );
                if !statements.is_empty() {
                    render::indented(
                        &mut out,
                        &serde_json::to_string_pretty(statements).unwrap_or_default(),
                    );
                }
            }
            Readable::Unknown(why) => {
                let _ = writeln!(out, "  key policy: unknown ({why})");
            }
        }
        match &key.grants {
            Readable::Known(grants) => {
                let _ = writeln!(out, "  {} grants", grants.len());
                for grant in grants {
                    let _ = writeln!(out, "    {grant}");
                }
            }
            Readable::Unknown(why) => {
                let _ = writeln!(out, "  grants: unknown ({why})");
            }
        }
        if !key.images.is_empty() {
            let ids: Vec<String> = key.images.iter().map(ToString::to_string).collect();
            let _ = writeln!(out, "  images: {}", ids.join(", "));
        }
    }
    for smoke in &report.smoke_instances {
        match smoke {
            Readable::Known(s) => {
                let why = if s.kept {
                    "kept with --keep"
                } else {
                    "left by an accept that stopped; the next accept --launch of the image terminates it"
                };
                let _ = writeln!(
                    out,
                    "smoke instance {} of image {} in {} (account {}): {} ({why})",
                    s.instance, s.image, s.region, s.account, s.state
                );
            }
            Readable::Unknown(why) => {
                let _ = writeln!(out, "{why}");
            }
        }
    }
    for (what, seen) in &report.target_view {
        match seen {
            Readable::Known(text) => {
                let _ = writeln!(out, "target view of {what}: {text}");
            }
            Readable::Unknown(why) => {
                let _ = writeln!(out, "target view of {what}: NO ({why})");
            }
        }
    }
    out
}
