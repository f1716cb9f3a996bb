//! Reads the evidence each side can see. Only read calls; a refusal or an
//! error becomes [`Known::No`] with the reason.

use std::collections::BTreeMap;

use amishare_policy::Policy;

use super::{DiagnoseRequest, Doctor, PrincipalFacts, Sight, Stores};
use crate::store::{
    Caller, Grant, Image, ImageQuery, KeyMetadata, LaunchPermission, VolumePermission,
};
use crate::{AccountId, CopyKey, ErrorKind, KeyArn, KeyRef, Region, Result, SnapshotId};

/// A key in play: by ARN, or the target account's `aws/ebs`, whose policy
/// is fixed and known even when the target may not describe it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum KeyName {
    Arn(KeyArn),
    AwsEbs { account: AccountId, region: Region },
}

impl KeyName {
    pub(super) fn region(&self) -> &Region {
        match self {
            KeyName::Arn(arn) => arn.region(),
            KeyName::AwsEbs { region, .. } => region,
        }
    }

    pub(super) fn account(&self) -> &AccountId {
        match self {
            KeyName::Arn(arn) => arn.account(),
            KeyName::AwsEbs { account, .. } => account,
        }
    }

    /// The resource a KMS request names.
    pub(super) fn resource(&self) -> String {
        match self {
            KeyName::Arn(arn) => arn.to_string(),
            KeyName::AwsEbs { account, region } => {
                format!("arn:aws:kms:{region}:{account}:alias/aws/ebs")
            }
        }
    }

    pub(super) fn arn(&self) -> Option<&KeyArn> {
        match self {
            KeyName::Arn(arn) => Some(arn),
            KeyName::AwsEbs { .. } => None,
        }
    }
}

impl std::fmt::Display for KeyName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyName::Arn(arn) => write!(f, "{arn}"),
            KeyName::AwsEbs { account, region } => {
                write!(f, "alias/aws/ebs of account {account} in {region}")
            }
        }
    }
}

/// A fact, or why it cannot be seen.
#[derive(Debug, Clone)]
pub(super) enum Known<T> {
    Yes(T),
    No(String),
}

impl<T> Known<T> {
    pub(super) fn as_ref(&self) -> Known<&T> {
        match self {
            Known::Yes(value) => Known::Yes(value),
            Known::No(why) => Known::No(why.clone()),
        }
    }

    pub(super) fn ok(&self) -> Option<&T> {
        match self {
            Known::Yes(value) => Some(value),
            Known::No(_) => None,
        }
    }
}

fn known<T>(result: Result<T>, what: &str) -> Known<T> {
    match result {
        Ok(value) => Known::Yes(value),
        Err(err) => Known::No(format!("{what}: {err}")),
    }
}

/// One side, with who it acts as.
struct Side<'d> {
    stores: &'d Stores,
    caller: Caller,
}

/// A snapshot behind the image.
#[derive(Debug)]
pub(super) struct SnapshotEvidence {
    pub(super) id: SnapshotId,
    /// The key that encrypts it (`None`: not encrypted), and where that was read.
    pub(super) key: Known<(Option<KeyArn>, &'static str)>,
    /// Whether the target's account may create volumes from it.
    pub(super) readable: Known<(bool, &'static str)>,
}

/// What could be read about a key.
#[derive(Debug)]
pub(super) struct KeyEvidence {
    pub(super) metadata: Known<KeyMetadata>,
    pub(super) policy: Known<Policy>,
    pub(super) grants: Known<Vec<Grant>>,
}

/// The target's EBS settings in the region.
#[derive(Debug)]
pub(super) struct Destination {
    pub(super) encryption_by_default: bool,
    /// The account's default EBS key.
    pub(super) default_key: Known<KeyName>,
    /// The key a copy is asked to use, resolved.
    pub(super) copy_key: Option<Known<KeyName>>,
}

/// Everything the links are judged on.
#[derive(Debug)]
pub(super) struct Evidence {
    pub(super) sight: Sight,
    pub(super) target_account: AccountId,
    pub(super) image: Known<Image>,
    /// Whether DescribeImages from the target side lists the image.
    pub(super) target_sees_image: Known<bool>,
    pub(super) launch_permissions: Known<Vec<LaunchPermission>>,
    pub(super) snapshots: Vec<SnapshotEvidence>,
    pub(super) keys: BTreeMap<KeyName, KeyEvidence>,
    pub(super) facts: Known<PrincipalFacts>,
    pub(super) destination: Known<Destination>,
}

async fn side<'d>(stores: Option<&'d Stores>) -> Option<Side<'d>> {
    let stores = stores?;
    // A side whose own identity cannot be read tells nothing reliable.
    let caller = stores.keys.caller().await.ok()?;
    Some(Side { stores, caller })
}

async fn find_image(side: &Side<'_>, request: &DiagnoseRequest) -> Result<Option<Image>> {
    match side
        .stores
        .images
        .describe_images(&request.region, &ImageQuery::ids([request.image.clone()]))
        .await
    {
        Ok(images) => Ok(images.into_iter().find(|i| i.id == request.image)),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

pub(super) async fn gather(doctor: &Doctor, request: &DiagnoseRequest) -> Result<Evidence> {
    let facts = facts(doctor, &request.principal).await;
    gather_with(doctor, request, facts).await
}

/// What the directory tells about `principal`, or why nothing.
pub(super) async fn facts(
    doctor: &Doctor,
    principal: &crate::PrincipalArn,
) -> Known<PrincipalFacts> {
    match &doctor.directory {
        None => Known::No("no side can read the target's IAM policies".to_owned()),
        Some(directory) => match directory.principal(principal).await {
            Ok(Some(facts)) => Known::Yes(facts),
            Ok(None) => Known::No(format!(
                "this backend cannot read the IAM policies of {principal}"
            )),
            Err(err) => Known::No(format!("IAM policies of {principal}: {err}")),
        },
    }
}

/// [`gather`] with the principal's facts already known (a service-linked
/// role's are AWS's).
pub(super) async fn gather_with(
    doctor: &Doctor,
    request: &DiagnoseRequest,
    facts: Known<PrincipalFacts>,
) -> Result<Evidence> {
    let target_account = request.principal.account().clone();
    let owner_side = side(doctor.owner.as_ref()).await;
    // Visibility and EBS defaults are per account: another account's view
    // would answer for the wrong one.
    let target_side = side(doctor.target.as_ref())
        .await
        .filter(|side| side.caller.account == target_account);
    let region = &request.region;

    let seen_by_target = match &target_side {
        None => Err("no view from the target's side".to_owned()),
        Some(side) => find_image(side, request)
            .await
            .map_err(|err| format!("DescribeImages as the target: {err}")),
    };
    let target_sees_image = match &seen_by_target {
        Ok(found) => Known::Yes(found.is_some()),
        Err(why) => Known::No(why.clone()),
    };
    let mut image: Known<Image> = match seen_by_target {
        Ok(Some(found)) => Known::Yes(found),
        _ => Known::No(format!(
            "image {} is not visible in {region} from any side that was asked",
            request.image
        )),
    };
    if let (Known::No(_), Some(owner)) = (&image, &owner_side) {
        if let Ok(Some(found)) = find_image(owner, request).await {
            image = Known::Yes(found);
        }
    }
    // The owner's view is only the owner's if it acts in the image's account.
    let owner = owner_side.filter(|side| {
        image
            .ok()
            .is_some_and(|image| image.owner == side.caller.account)
    });
    let sight = Sight {
        owner: owner.is_some(),
        target: target_side.is_some(),
        identity: matches!(facts, Known::Yes(_)),
    };
    let no_owner = || match image.ok() {
        Some(image) => format!("only account {} (the owner) can read this", image.owner),
        None => "the image's owner is not known".to_owned(),
    };

    let launch_permissions = match (&owner, image.ok()) {
        (Some(owner), Some(image)) => known(
            owner
                .stores
                .images
                .describe_launch_permission(region, &image.id)
                .await,
            "DescribeImageAttribute launchPermission",
        ),
        _ => Known::No(no_owner()),
    };

    let mut snapshots = Vec::new();
    if let Some(image) = image.ok() {
        let ids: Vec<SnapshotId> = image
            .block_devices
            .iter()
            .map(|d| d.snapshot_id.clone())
            .collect();
        let owner_snapshots = match &owner {
            Some(owner) => owner
                .stores
                .images
                .describe_snapshots(region, &ids)
                .await
                .ok(),
            None => None,
        };
        for device in &image.block_devices {
            let id = device.snapshot_id.clone();
            let from_owner = owner_snapshots
                .as_ref()
                .and_then(|list| list.iter().find(|s| s.id == id));
            let from_target = match (&target_side, from_owner) {
                (Some(target), None) => target
                    .stores
                    .images
                    .describe_snapshots(region, std::slice::from_ref(&id))
                    .await
                    .ok()
                    .and_then(|list| list.into_iter().find(|s| s.id == id)),
                _ => None,
            };
            let key = if let Some(snapshot) = from_owner {
                Known::Yes((snapshot.kms_key.clone(), "DescribeSnapshots as the owner"))
            } else if let Some(snapshot) = &from_target {
                Known::Yes((snapshot.kms_key.clone(), "DescribeSnapshots as the target"))
            } else if !device.encrypted {
                Known::Yes((None, "the image's block device mapping"))
            } else if let [only] = request.keys.as_slice() {
                Known::Yes((Some(only.clone()), "the key given with --key"))
            } else {
                Known::No(format!(
                    "snapshot {id} is encrypted, but only its owner (or an account it is shared with) can read its key; pass the key ARN the owner reported"
                ))
            };
            let readable = if target_account == image.owner {
                Known::Yes((true, "the target owns it"))
            } else if let Some(owner) = &owner {
                match owner
                    .stores
                    .images
                    .describe_create_volume_permission(region, &id)
                    .await
                {
                    Ok(list) => Known::Yes((
                        list.iter().any(|p| match p {
                            VolumePermission::Account(a) => a == &target_account,
                            VolumePermission::Public => true,
                        }),
                        "DescribeSnapshotAttribute createVolumePermission",
                    )),
                    Err(err) => Known::No(format!("DescribeSnapshotAttribute: {err}")),
                }
            } else if target_side.is_some() {
                Known::Yes((from_target.is_some(), "DescribeSnapshots as the target"))
            } else {
                Known::No(no_owner())
            };
            snapshots.push(SnapshotEvidence { id, key, readable });
        }
    }

    let destination = match &target_side {
        None => Known::No("the target's default EBS key is read from the target's side".to_owned()),
        Some(target) => match target.stores.images.ebs_defaults(region).await {
            Err(err) => Known::No(format!("GetEbsDefaultKmsKeyId as the target: {err}")),
            Ok(defaults) => {
                let default_key = resolve(target, region, &defaults.kms_key).await;
                let copy_key = match &request.copy_key {
                    CopyKey::AccountDefault => None,
                    CopyKey::Key(key) => Some(resolve(target, region, key).await),
                };
                Known::Yes(Destination {
                    encryption_by_default: defaults.encryption_by_default,
                    default_key,
                    copy_key,
                })
            }
        },
    };

    // Every key in play: the snapshots', and the target's destination keys.
    let mut arns: Vec<KeyName> = snapshots
        .iter()
        .filter_map(|s| s.key.ok().and_then(|(key, _)| key.clone()))
        .map(KeyName::Arn)
        .collect();
    if let Some(destination) = destination.ok() {
        arns.extend(destination.default_key.ok().cloned());
        if let Some(Known::Yes(key)) = &destination.copy_key {
            arns.push(key.clone());
        }
    }
    let mut keys = BTreeMap::new();
    for arn in arns {
        if keys.contains_key(&arn) {
            continue;
        }
        let evidence = match &arn {
            KeyName::Arn(key) => read_key(key, owner.as_ref(), target_side.as_ref()).await,
            KeyName::AwsEbs { account, region } => KeyEvidence {
                metadata: Known::No("aws/ebs is described by its alias".to_owned()),
                policy: Known::Yes(Policy::aws_managed_ebs_key_policy(
                    account.as_str(),
                    region.as_str(),
                )),
                grants: Known::Yes(Vec::new()),
            },
        };
        keys.insert(arn, evidence);
    }

    Ok(Evidence {
        sight,
        target_account,
        image,
        target_sees_image,
        launch_permissions,
        snapshots,
        keys,
        facts,
        destination,
    })
}

/// A key reference as the target's KMS resolves it in `region`; `aws/ebs`
/// needs no call, as its policy is fixed.
async fn resolve(side: &Side<'_>, region: &Region, key: &KeyRef) -> Known<KeyName> {
    if let KeyRef::Alias(alias) = key {
        if alias == &crate::AliasName::aws_ebs() {
            return Known::Yes(KeyName::AwsEbs {
                account: side.caller.account.clone(),
                region: region.clone(),
            });
        }
    }
    match side.stores.keys.describe_key(region, key).await {
        Ok(metadata) => Known::Yes(KeyName::Arn(metadata.arn)),
        Err(err) => Known::No(format!("DescribeKey {key} as the target: {err}")),
    }
}

/// Metadata from any side that can read it; the policy and grants only from
/// the key's own account.
async fn read_key(
    arn: &KeyArn,
    owner: Option<&Side<'_>>,
    target: Option<&Side<'_>>,
) -> KeyEvidence {
    let home = [owner, target]
        .into_iter()
        .flatten()
        .find(|side| &side.caller.account == arn.account());
    let region = arn.region();
    let reference = KeyRef::Arn(arn.clone());
    let mut metadata = Known::No(format!("no side that was asked can describe {arn}"));
    for side in home.into_iter().chain(target).chain(owner) {
        match side.stores.keys.describe_key(region, &reference).await {
            Ok(found) => {
                metadata = Known::Yes(found);
                break;
            }
            Err(err) => metadata = Known::No(format!("DescribeKey as {}: {err}", side.caller.arn)),
        }
    }
    let (policy, grants) = match home {
        None => {
            let why = format!(
                "only account {} (the key's) can read its key policy and grants",
                arn.account()
            );
            (Known::No(why.clone()), Known::No(why))
        }
        Some(side) => {
            let policy = match side.stores.keys.get_key_policy(arn).await {
                Ok(text) => match Policy::parse(&text) {
                    Ok(policy) => Known::Yes(policy),
                    Err(err) => Known::No(format!("the key policy of {arn} does not parse: {err}")),
                },
                Err(err) => Known::No(format!("GetKeyPolicy: {err}")),
            };
            let grants = known(side.stores.keys.list_grants(arn).await, "ListGrants");
            (policy, grants)
        }
    };
    KeyEvidence {
        metadata,
        policy,
        grants,
    }
}
