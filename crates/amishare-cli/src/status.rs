//! `amishare status`: who can launch and copy an image, which statements and
//! grants its keys carry, and which key each snapshot really uses.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use amishare_core::{
    smoke_instances, AccountId, ImageId, ImageOwner, ImageQuery, InstanceId, KeyArn, KeyRef,
    LaunchPermission, Region, SnapshotId, VolumePermission, TAG_KEY, TAG_SMOKE_KEEP,
    TAG_SMOKE_TEST,
};
use amishare_policy::{amishare_statements, Policy, Statement};
use clap::ArgGroup;
use serde::Serialize;

use crate::args;
use crate::backend::{Global, Session, Side};
use crate::fail::{usage, Failure};
use crate::render;
use crate::unshare::shared_images;

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

/// What `status` found; `unknown` fields say why they could not be read.
#[derive(Debug, Default, Serialize)]
pub(crate) struct StatusReport {
    /// The images looked at.
    images: Vec<ImageStatus>,
    /// The keys behind them, by ARN.
    keys: BTreeMap<String, KeyStatus>,
    /// What `--target-profile` sees: each image and key, usable or why not.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    target_view: BTreeMap<String, Readable<String>>,
    /// Smoke instances `accept` launched that still run (or could), in the
    /// accounts of `--profile` and `--target-profile`.
    smoke_instances: Vec<Readable<SmokeStatus>>,
}

/// A smoke instance that still runs.
#[derive(Debug, Serialize)]
struct SmokeStatus {
    region: Region,
    account: AccountId,
    instance: InstanceId,
    image: String,
    state: String,
    /// Launched with `--keep`; otherwise an accept stopped before its cleanup.
    kept: bool,
}

#[derive(Debug, Serialize)]
struct ImageStatus {
    region: Region,
    image: ImageId,
    owner: String,
    state: String,
    name: String,
    /// Who may launch it.
    launch_permissions: Readable<Vec<LaunchPermission>>,
    snapshots: Vec<SnapshotStatus>,
}

#[derive(Debug, Serialize)]
struct SnapshotStatus {
    snapshot: SnapshotId,
    /// The key that really encrypts it (`None`: not encrypted).
    key: Readable<Option<KeyArn>>,
    /// Who may create volumes from it, and so copy the image.
    volume_permissions: Readable<Vec<VolumePermission>>,
}

#[derive(Debug, Default, Serialize)]
struct KeyStatus {
    state: Option<String>,
    manager: Option<String>,
    /// The key-policy statements amishare wrote (Sid `amishare:…`), whole.
    amishare_statements: Readable<Vec<Statement>>,
    /// How many other statements the policy has (never touched by amishare).
    other_statements: Option<usize>,
    grants: Readable<Vec<String>>,
    /// Images of the caller's tagged as encrypted with this key.
    images: Vec<ImageId>,
}

/// A value, or why it could not be read from this side.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Readable<T> {
    Known(T),
    Unknown(String),
}

impl<T: Default> Default for Readable<T> {
    fn default() -> Self {
        Readable::Known(T::default())
    }
}

fn readable<T>(result: amishare_core::Result<T>) -> Readable<T> {
    match result {
        Ok(value) => Readable::Known(value),
        Err(err) => Readable::Unknown(err.to_string()),
    }
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
    let region = session.region()?;
    let side = &session.side;
    let mut report = StatusReport::default();
    let regions: Vec<Region> = if args.regions.is_empty() {
        vec![region.clone()]
    } else {
        args.regions.clone()
    };
    let mut keys: BTreeSet<KeyArn> = BTreeSet::new();
    if let Some(image) = &args.image {
        for shared in shared_images(session, image, &region, &regions).await? {
            let status = image_status(side, &shared.region, &shared.image).await?;
            for snapshot in &status.snapshots {
                if let Readable::Known(Some(key)) = &snapshot.key {
                    keys.insert(key.clone());
                }
            }
            report.images.push(status);
        }
    }
    if let Some(key) = &args.key {
        for r in &regions {
            let meta = side.keys.describe_key(r, key).await?;
            keys.insert(meta.arn);
        }
    }
    if let Some(target) = &session.target {
        let caller = target.keys.caller().await?;
        for image in &report.images {
            let seen = target
                .images
                .describe_images(&image.region, &ImageQuery::ids([image.image.clone()]))
                .await
                .map(|found| match found.first() {
                    Some(_) => format!("{} sees the image", caller.arn),
                    None => format!("{} does not see the image", caller.arn),
                });
            report
                .target_view
                .insert(image.image.to_string(), readable(seen));
        }
        for key in &keys {
            let used = target
                .keys
                .describe_key(key.region(), &KeyRef::Arn(key.clone()))
                .await
                .map(|meta| format!("{} can describe the key ({})", caller.arn, meta.state));
            report.target_view.insert(key.to_string(), readable(used));
        }
    }
    for side in std::iter::once(side).chain(session.target.as_ref()) {
        for r in &regions {
            match smoke_instances(&*side.images, r, None).await {
                Ok(found) => report.smoke_instances.extend(found.into_iter().map(|i| {
                    Readable::Known(SmokeStatus {
                        region: r.clone(),
                        account: i.owner.clone(),
                        image: i.tags.get(TAG_SMOKE_TEST).cloned().unwrap_or_default(),
                        kept: i.tags.contains_key(TAG_SMOKE_KEEP),
                        state: i.state.to_string(),
                        instance: i.id,
                    })
                })),
                Err(err) => report
                    .smoke_instances
                    .push(Readable::Unknown(format!("smoke instances in {r}: {err}"))),
            }
        }
    }
    // Whose images `key_status` lists: read once, not once per key.
    let caller = side.keys.caller().await.ok().map(|c| c.account);
    for key in keys {
        let status = key_status(side, &key, caller.as_ref()).await;
        report.keys.insert(key.to_string(), status);
    }
    if global.json {
        render::json(render::format::STATUS, &report)?;
    } else {
        render::emit(&text(&report));
    }
    Ok(())
}

async fn image_status(side: &Side, region: &Region, id: &ImageId) -> Result<ImageStatus, Failure> {
    let images = &side.images;
    let image = images
        .describe_images(region, &ImageQuery::ids([id.clone()]))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Failure::failed(anyhow::anyhow!("image {id} is gone from {region}")))?;
    let ids: Vec<SnapshotId> = image
        .block_devices
        .iter()
        .map(|d| d.snapshot_id.clone())
        .collect();
    let snapshots = images.describe_snapshots(region, &ids).await;
    let mut statuses = Vec::new();
    for device in &image.block_devices {
        let key = match &snapshots {
            Ok(found) => match found.iter().find(|s| s.id == device.snapshot_id) {
                Some(snapshot) => Readable::Known(snapshot.kms_key.clone()),
                None => Readable::Unknown("the snapshot is not visible to this account".to_owned()),
            },
            Err(err) => Readable::Unknown(err.to_string()),
        };
        statuses.push(SnapshotStatus {
            snapshot: device.snapshot_id.clone(),
            key,
            volume_permissions: readable(
                images
                    .describe_create_volume_permission(region, &device.snapshot_id)
                    .await,
            ),
        });
    }
    Ok(ImageStatus {
        region: region.clone(),
        image: image.id.clone(),
        owner: image.owner.to_string(),
        state: image.state.to_string(),
        name: image.name.clone(),
        launch_permissions: readable(images.describe_launch_permission(region, &image.id).await),
        snapshots: statuses,
    })
}

async fn key_status(side: &Side, key: &KeyArn, caller: Option<&AccountId>) -> KeyStatus {
    let mut status = KeyStatus::default();
    let region = key.region();
    match side
        .keys
        .describe_key(region, &KeyRef::Arn(key.clone()))
        .await
    {
        Ok(meta) => {
            status.state = Some(meta.state.to_string());
            status.manager = Some(format!("{:?}", meta.manager));
        }
        Err(err) => status.state = Some(format!("unknown: {err}")),
    }
    match side.keys.get_key_policy(key).await {
        Ok(text) => match Policy::parse(&text) {
            Ok(policy) => {
                let ours: Vec<Statement> = amishare_statements(&policy).cloned().collect();
                status.other_statements = Some(policy.statements.len() - ours.len());
                status.amishare_statements = Readable::Known(ours);
            }
            Err(err) => status.amishare_statements = Readable::Unknown(err.to_string()),
        },
        Err(err) => status.amishare_statements = Readable::Unknown(err.to_string()),
    }
    status.grants = readable(side.keys.list_grants(key).await.map(|grants| {
        grants
            .into_iter()
            .map(|g| {
                format!(
                    "{} {} → {} ({})",
                    g.id,
                    g.name.unwrap_or_default(),
                    g.grantee,
                    g.operations.join(", ")
                )
            })
            .collect()
    }));
    let query = ImageQuery {
        owners: vec![ImageOwner::Me],
        tags: BTreeMap::from([(TAG_KEY.to_owned(), vec![key.to_string()])]),
        ..ImageQuery::default()
    };
    if let (Some(caller), Ok(images)) = (caller, side.images.describe_images(region, &query).await)
    {
        status.images = images
            .into_iter()
            .filter(|image| query.matches(image, caller))
            .map(|i| i.id)
            .collect();
    }
    status
}

fn text(report: &StatusReport) -> String {
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
