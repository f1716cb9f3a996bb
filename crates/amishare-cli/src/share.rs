//! `amishare share`: the owner side.

use std::fmt::Write as _;

use amishare_core::{
    AliasName, ImageId, ImageName, ImageSource, InstanceId, KeyChoice, KeyRef, Region,
    ShareRequest, Sharer,
};
use clap::ArgGroup;

use crate::args::{self, NarrowingArgs, ServiceRoleArgs, TargetArgs};
use crate::backend::{Global, Session};
use crate::fail::{usage, Failure};
use crate::json;
use crate::render;

/// Options of `amishare share`.
#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("source").required(true).args(["image", "instance"])))]
#[command(group(ArgGroup::new("key_choice").required(true).args(["key", "create_key"])))]
pub(crate) struct ShareArgs {
    /// The image to share (it is copied, encrypted with the key, unless it already is).
    #[arg(long, value_parser = args::image)]
    image: Option<ImageId>,
    /// A running instance to image first.
    #[arg(long, value_parser = args::instance)]
    instance: Option<InstanceId>,
    /// The customer-managed key: key ID, key ARN, alias/NAME or alias ARN.
    #[arg(long, value_parser = args::key)]
    key: Option<KeyRef>,
    /// Create the key behind this alias in each region where it does not exist yet.
    #[arg(long, value_name = "ALIAS", value_parser = args::alias)]
    create_key: Option<AliasName>,
    #[command(flatten)]
    targets: TargetArgs,
    /// Regions to share in (comma-separated; default: --region). Copies run in parallel.
    #[arg(long, value_delimiter = ',', value_parser = args::region)]
    regions: Vec<Region>,
    /// Also let account targets create volumes from the snapshots (they need it to copy the image).
    #[arg(long)]
    volume_permission: bool,
    /// Name of the shared copy (default: the source's name with -shared).
    #[arg(long, value_parser = args::image_name)]
    name: Option<ImageName>,
    #[command(flatten)]
    narrowing: NarrowingArgs,
    #[command(flatten)]
    service_roles: ServiceRoleArgs,
}

impl ShareArgs {
    /// The request, checked as far as it can be without a call.
    pub(crate) fn request(&self, session: &Session) -> Result<ShareRequest, Failure> {
        let source_region = session.region()?;
        let targets = self.targets.targets().map_err(usage)?;
        let source = match (&self.image, &self.instance) {
            (Some(image), None) => ImageSource::Image(image.clone()),
            (None, Some(instance)) => ImageSource::Instance(instance.clone()),
            _ => return Err(usage("give exactly one of --image and --instance")),
        };
        let key = match (&self.key, &self.create_key) {
            (Some(key), None) => KeyChoice::Use(key.clone()),
            (None, Some(alias)) => KeyChoice::Create(alias.clone()),
            _ => return Err(usage("give exactly one of --key and --create-key")),
        };
        let mut request = ShareRequest::new(source, source_region.clone(), key, targets)
            .with_regions(self.regions.clone())
            .with_volume_permission(self.volume_permission)
            .with_narrowing(self.narrowing.narrowing())
            .with_service_roles(self.service_roles.roles());
        if let Some(name) = &self.name {
            request = request.with_name(name.clone());
        }
        // The same check the flow makes, here before any call: exit 2.
        request.validate().map_err(|err| usage(err.to_string()))?;
        Ok(request)
    }
}

/// Runs `share`.
pub(crate) async fn run(
    args: &ShareArgs,
    global: &Global,
    session: &Session,
) -> Result<(), Failure> {
    let request = args.request(session)?;
    let report = session.flow().share(&request).await?;
    if global.dry_run {
        // The plan is the output; warnings go with it.
        let mut notes = String::new();
        render::warnings(&mut notes, &report.warnings);
        eprint!("{notes}");
        return Ok(());
    }
    if global.json {
        render::json(render::format::SHARE, &json::Share::from(&report))?;
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Shared {} ({}) with {}:",
        report.source_image,
        report.source_region,
        request
            .targets
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    render::steps(&mut out, &report.steps);
    for region in &report.regions {
        let _ = writeln!(
            out,
            "{}: image {} encrypted with {}",
            region.region, region.image, region.key
        );
        for (snapshot, key) in &region.snapshots {
            let _ = writeln!(out, "  snapshot {snapshot}: {key}");
        }
        let who: Vec<String> = region
            .launch_permissions
            .iter()
            .map(ToString::to_string)
            .collect();
        let _ = writeln!(out, "  launch permission: {}", who.join(", "));
        render::key_policy(&mut out, &region.key, &region.key_policy);
    }
    let _ = writeln!(out, "{} mutating calls.", report.mutating_calls);
    render::warnings(&mut out, &report.warnings);
    render::emit(&out);
    Ok(())
}
