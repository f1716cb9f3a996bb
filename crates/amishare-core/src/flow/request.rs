//! What the caller asks of a [`Sharer`](crate::Sharer), and what it gets back.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::id::{
    AccountId, AliasName, GrantId, ImageId, ImageName, InstanceId, KeyArn, KeyRef, OrganizationArn,
    OuArn, PrincipalArn, Region, SnapshotId,
};
use crate::model::{InstanceState, LaunchPermission};
use crate::scaling::ServiceLinkedRole;

/// Where the image to share comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageSource {
    /// An existing image of the owner's.
    Image(ImageId),
    /// A running instance to image first.
    Instance(InstanceId),
}

/// Which customer-managed key encrypts the shared copies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyChoice {
    /// An existing key. An alias name resolves in every region; an ID or ARN names one region's key.
    Use(KeyRef),
    /// The key behind this alias in each region, created (with the alias) where it does not exist yet.
    Create(AliasName),
}

/// Who the image is shared with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// A whole account: launch permission for it, and its root in the key policy.
    Account(AccountId),
    /// One principal: launch permission for its account, and only this principal in the key policy.
    Principal(PrincipalArn),
    /// Every account of an organization.
    Organization(OrganizationArn),
    /// Every account of an organizational unit.
    OrganizationalUnit(OuArn),
}

impl Target {
    /// The account of an account or principal target.
    pub fn account(&self) -> Option<&AccountId> {
        match self {
            Target::Account(account) => Some(account),
            Target::Principal(principal) => Some(principal.account()),
            Target::Organization(_) | Target::OrganizationalUnit(_) => None,
        }
    }

    /// The launch permission that lets this target launch the image.
    pub fn launch_permission(&self) -> LaunchPermission {
        match self {
            Target::Account(account) => LaunchPermission::Account(account.clone()),
            Target::Principal(principal) => LaunchPermission::Account(principal.account().clone()),
            Target::Organization(org) => LaunchPermission::Organization(org.clone()),
            Target::OrganizationalUnit(ou) => LaunchPermission::OrganizationalUnit(ou.clone()),
        }
    }

    /// The partition of the target's ARN; an account ID names none.
    pub fn partition(&self) -> Option<&'static str> {
        match self {
            Target::Account(_) => None,
            Target::Principal(principal) => Some(principal.partition()),
            Target::Organization(org) => Some(org.partition()),
            Target::OrganizationalUnit(ou) => Some(ou.partition()),
        }
    }

    /// The key-policy grantee for this target, an account written as its
    /// root in the `aws` partition.
    pub fn grantee(&self) -> amishare_policy::Grantee {
        self.grantee_in("aws")
    }

    /// The key-policy grantee for this target in `partition`: an account is
    /// written as its root there (`arn:<partition>:iam::<id>:root`).
    pub fn grantee_in(&self, partition: &str) -> amishare_policy::Grantee {
        use amishare_policy::Grantee;
        match self {
            Target::Account(account) => {
                Grantee::Principal(format!("arn:{partition}:iam::{account}:root"))
            }
            Target::Principal(principal) => Grantee::Principal(principal.to_string()),
            Target::Organization(org) => Grantee::Organization {
                org_id: org.org_id().to_owned(),
            },
            Target::OrganizationalUnit(ou) => Grantee::OrganizationalUnit {
                org_id: ou.org_id().to_owned(),
                ou_id: ou.ou_id().to_owned(),
            },
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Account(account) => write!(f, "account {account}"),
            Target::Principal(principal) => write!(f, "principal {principal}"),
            Target::Organization(org) => write!(f, "organization {org}"),
            Target::OrganizationalUnit(ou) => write!(f, "OU {ou}"),
        }
    }
}

/// Extra conditions on the key-policy statements amishare writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Narrowing {
    /// Only through EC2 in the key's region (`kms:ViaService`).
    pub via_service: bool,
    /// Only for calls on behalf of the targets' accounts (`kms:CallerAccount`).
    pub caller_account: bool,
}

impl Narrowing {
    /// Only through EC2 in the key's region (`kms:ViaService`).
    pub fn with_via_service(mut self, via_service: bool) -> Narrowing {
        self.via_service = via_service;
        self
    }

    /// Only for calls on behalf of the targets' accounts (`kms:CallerAccount`).
    pub fn with_caller_account(mut self, caller_account: bool) -> Narrowing {
        self.caller_account = caller_account;
        self
    }

    /// The policy crate's narrowing for a key in `region`.
    pub fn for_region(self, region: &Region) -> amishare_policy::Narrowing {
        amishare_policy::Narrowing {
            via_service_region: self.via_service.then(|| region.to_string()),
            caller_account: self.caller_account,
            service_roles: Vec::new(),
        }
    }
}

/// The owner side: share an image with targets, in one or several regions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ShareRequest {
    /// The image, or the instance to image.
    pub source: ImageSource,
    /// The region of the source.
    pub source_region: Region,
    /// Regions to share in; empty means the source region alone.
    pub regions: Vec<Region>,
    /// The key that encrypts the shared copies.
    pub key: KeyChoice,
    /// Who to share with.
    pub targets: Vec<Target>,
    /// Also let account targets create volumes from the snapshots, which they need to copy the image.
    pub volume_permission: bool,
    /// Name of the shared copy (default: the source's name with `-shared`).
    pub name: Option<ImageName>,
    /// Extra conditions on the key-policy statements.
    pub narrowing: Narrowing,
    /// Service-linked roles of the target accounts (Auto Scaling's, say)
    /// that the targets may create grants on the key for: each account's
    /// named principals may create a grant for the account's own roles, with
    /// the operations EBS needs (`docs/spec/choices.md` §D6). Account and
    /// principal targets only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_roles: Vec<ServiceLinkedRole>,
}

/// An account ID written where the owner's belongs before the owner is
/// known: every account ID has 12 digits, so a policy's size does not depend
/// on which.
const SOME_ACCOUNT: &str = "000000000000";

impl ShareRequest {
    /// A share of `source` (in `source_region`) with `targets`, its copies
    /// encrypted under `key`: in the source region alone, without
    /// create-volume permission, under the default name and with no extra
    /// conditions, until the `with_*` methods say otherwise.
    ///
    /// ```
    /// use amishare_core::{AliasName, ImageSource, InstanceId, KeyChoice, PrincipalArn, Region, ShareRequest, Target};
    ///
    /// let request = ShareRequest::new(
    ///     ImageSource::Instance(InstanceId::parse("i-0c0ffee0123456789").unwrap()),
    ///     Region::parse("ap-northeast-1").unwrap(),
    ///     KeyChoice::Create(AliasName::parse("alias/cross-ami").unwrap()),
    ///     [Target::Principal(PrincipalArn::parse("arn:aws:iam::222222222222:user/b-user").unwrap())],
    /// )
    /// .with_volume_permission(true);
    /// assert!(request.validate().is_ok());
    /// ```
    pub fn new(
        source: ImageSource,
        source_region: Region,
        key: KeyChoice,
        targets: impl IntoIterator<Item = Target>,
    ) -> ShareRequest {
        ShareRequest {
            source,
            source_region,
            regions: Vec::new(),
            key,
            targets: targets.into_iter().collect(),
            volume_permission: false,
            name: None,
            narrowing: Narrowing::default(),
            service_roles: Vec::new(),
        }
    }

    /// Shares in these regions (the source region only when listed).
    pub fn with_regions(mut self, regions: impl IntoIterator<Item = Region>) -> ShareRequest {
        self.regions = regions.into_iter().collect();
        self
    }

    /// Also lets account targets create volumes from the snapshots.
    pub fn with_volume_permission(mut self, volume_permission: bool) -> ShareRequest {
        self.volume_permission = volume_permission;
        self
    }

    /// Names the shared copy.
    pub fn with_name(mut self, name: ImageName) -> ShareRequest {
        self.name = Some(name);
        self
    }

    /// Narrows the key-policy statements amishare writes.
    pub fn with_narrowing(mut self, narrowing: Narrowing) -> ShareRequest {
        self.narrowing = narrowing;
        self
    }

    /// Lets the targets create grants on the key for these service-linked
    /// roles of their accounts (Auto Scaling's, say).
    pub fn with_service_roles(
        mut self,
        roles: impl IntoIterator<Item = ServiceLinkedRole>,
    ) -> ShareRequest {
        self.service_roles = roles.into_iter().collect();
        self
    }

    /// Refuses, before any call, a request no share could carry out: no
    /// target; a target, key or region of another partition than the
    /// source's (nothing crosses partitions); an AWS-managed key; a key ID or ARN for several
    /// regions or for another region; or, for a key the share creates, a
    /// key policy over KMS's size limit (the message says how many targets
    /// fit). The command line and [`Sharer::share`](crate::Sharer::share)
    /// both call it, so a dry run refuses what the real run refuses.
    pub fn validate(&self) -> Result<()> {
        if self.targets.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "share needs at least one target",
            ));
        }
        if !self.service_roles.is_empty() {
            if let Some(target) = self.targets.iter().find(|t| t.account().is_none()) {
                return Err(Error::invalid_input(
                    "target",
                    &target.to_string(),
                    "grants for service-linked roles (--autoscaling) are written per account: a key-policy statement for every account of an organization or OU could not tie the grantee role to the caller's own account; name the accounts or their principals instead",
                ));
            }
        }
        let regions = self.regions();
        for region in &regions {
            if region.partition() != self.source_region.partition() {
                return Err(Error::invalid_input(
                    "region",
                    region.as_str(),
                    &format!(
                        "it is in partition {}, but the image is in {} ({}): images are never copied across partitions",
                        region.partition(),
                        self.source_region,
                        self.source_region.partition()
                    ),
                ));
            }
            check_partitions(region, &self.targets)?;
            if let KeyChoice::Use(key) = &self.key {
                if let Some(partition) = key.partition().filter(|p| *p != region.partition()) {
                    return Err(Error::invalid_input(
                        "key",
                        &key.to_string(),
                        &format!(
                            "the key is in partition {partition}, but region {region} is in {}",
                            region.partition()
                        ),
                    ));
                }
            }
        }
        match &self.key {
            KeyChoice::Use(KeyRef::Alias(alias)) | KeyChoice::Create(alias)
                if alias.is_aws_reserved() =>
            {
                return Err(crate::flow::aws_managed_refusal(alias.as_str()));
            }
            KeyChoice::Use(KeyRef::AliasArn(arn)) if arn.alias().is_aws_reserved() => {
                return Err(crate::flow::aws_managed_refusal(&arn.to_string()));
            }
            KeyChoice::Use(key @ KeyRef::Id(_)) if regions.len() > 1 => {
                return Err(Error::invalid_input(
                    "key",
                    &key.to_string(),
                    "a key ID names one region's key; use an alias to share in several regions",
                ));
            }
            KeyChoice::Use(key) => {
                if let Some(key_region) = key.region() {
                    if regions.len() > 1 || regions[0] != *key_region {
                        return Err(Error::invalid_input(
                            "key",
                            &key.to_string(),
                            &format!(
                                "the key is in {key_region} but the image is shared in {}; keys are regional, use an alias",
                                regions.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                }
            }
            KeyChoice::Create(alias) => {
                for region in &regions {
                    let owner = format!("arn:{}:iam::{SOME_ACCOUNT}:root", region.partition());
                    self.new_key_policy(SOME_ACCOUNT, &owner, region)
                        .map_err(|err| err.context(format!("--create-key {alias} in {region}")))?;
                }
            }
        }
        Ok(())
    }

    /// The policy of a key created for this share in `region`: KMS's
    /// default policy for `owner_account` with the targets' statements
    /// merged in, refused (as bad input) when it would be too large for KMS
    /// or lock `caller` out.
    pub(crate) fn new_key_policy(
        &self,
        owner_account: &str,
        caller: &str,
        region: &Region,
    ) -> Result<amishare_policy::Policy> {
        amishare_policy::new_key_policy(
            &self.grantees(region),
            &self.policy_narrowing(region),
            owner_account,
            caller,
        )
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("key policy of a new key: {e}"),
            )
        })
    }

    /// The policy crate's narrowing for the key in `region`, with the
    /// service-linked roles the targets may grant.
    pub fn policy_narrowing(&self, region: &Region) -> amishare_policy::Narrowing {
        let mut narrowing = self.narrowing.for_region(region);
        narrowing.service_roles = self
            .service_roles
            .iter()
            .map(ServiceLinkedRole::resource)
            .collect();
        narrowing
    }

    /// The key-policy grantees of the targets in `region`'s partition.
    pub(crate) fn grantees(&self, region: &Region) -> Vec<amishare_policy::Grantee> {
        grantees_in(&self.targets, region)
    }

    /// The regions to share in, source region first when included, without duplicates.
    pub fn regions(&self) -> Vec<Region> {
        if self.regions.is_empty() {
            return vec![self.source_region.clone()];
        }
        let mut seen = BTreeSet::new();
        self.regions
            .iter()
            .filter(|r| seen.insert((*r).clone()))
            .cloned()
            .collect()
    }
}

/// The key-policy grantees of `targets` in `region`'s partition.
pub(crate) fn grantees_in(targets: &[Target], region: &Region) -> Vec<amishare_policy::Grantee> {
    targets
        .iter()
        .map(|t| t.grantee_in(region.partition()))
        .collect()
}

/// The accounts of the account and principal targets: what launch and
/// create-volume permissions name.
pub(crate) fn target_accounts(targets: &[Target]) -> BTreeSet<AccountId> {
    targets
        .iter()
        .filter_map(Target::account)
        .cloned()
        .collect()
}

/// Refuses targets whose ARNs are of another partition than `region`'s:
/// IAM, KMS and EC2 never reach across partitions, so KMS would refuse such
/// a principal in a key policy (`docs/spec/choices.md` §D3).
pub fn check_partitions(region: &Region, targets: &[Target]) -> Result<()> {
    for target in targets {
        if let Some(partition) = target.partition().filter(|p| *p != region.partition()) {
            return Err(Error::invalid_input(
                "target",
                &target.to_string(),
                &format!(
                    "its ARN is in partition {partition}, but region {region} is in {}: nothing is shared across partitions",
                    region.partition()
                ),
            ));
        }
    }
    Ok(())
}

/// The target side: check access to a shared image, and optionally launch it and copy it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AcceptRequest {
    /// The shared image.
    pub image: ImageId,
    /// Its region.
    pub region: Region,
    /// The keys that encrypt it, as the owner reported them (the target cannot read them from the image).
    pub keys: Vec<KeyArn>,
    /// Launch a smoke instance.
    pub launch: Option<LaunchOptions>,
    /// Copy the image into the target's ownership, re-encrypted.
    pub copy: Option<CopyKey>,
    /// Name of the copy (default: `<image>-copy`).
    pub copy_name: Option<ImageName>,
    /// Create, from the target account, a grant on each key of the image
    /// for these service-linked roles of the target's account (Auto
    /// Scaling's, say), found again by name on a rerun
    /// (`docs/spec/choices.md` §D6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<ServiceLinkedRole>,
}

/// How the smoke instance is launched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LaunchVia {
    /// `RunInstances` as the target principal.
    #[default]
    RunInstances,
    /// A temporary launch template and a one-instance Auto Scaling group,
    /// which launches as this service-linked role; both are deleted after.
    AutoScaling(ServiceLinkedRole),
}

impl AcceptRequest {
    /// A check of the shared `image` in `region`, encrypted under `keys` (as
    /// the owner's share reported them), that neither launches nor copies it
    /// until [`with_launch`](AcceptRequest::with_launch) or
    /// [`with_copy`](AcceptRequest::with_copy) asks.
    pub fn new(
        image: ImageId,
        region: Region,
        keys: impl IntoIterator<Item = KeyArn>,
    ) -> AcceptRequest {
        AcceptRequest {
            image,
            region,
            keys: keys.into_iter().collect(),
            launch: None,
            copy: None,
            copy_name: None,
            grants: Vec::new(),
        }
    }

    /// Also launches a smoke instance.
    pub fn with_launch(mut self, launch: LaunchOptions) -> AcceptRequest {
        self.launch = Some(launch);
        self
    }

    /// Also copies the image into the target's ownership, under `key`.
    pub fn with_copy(mut self, key: CopyKey) -> AcceptRequest {
        self.copy = Some(key);
        self
    }

    /// Names the target's copy.
    pub fn with_copy_name(mut self, name: ImageName) -> AcceptRequest {
        self.copy_name = Some(name);
        self
    }

    /// Also creates, from the target account, a grant on each key of the
    /// image for these service-linked roles of the target's account.
    pub fn with_grants(
        mut self,
        roles: impl IntoIterator<Item = ServiceLinkedRole>,
    ) -> AcceptRequest {
        self.grants = roles.into_iter().collect();
        self
    }
}

/// How to launch the smoke instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LaunchOptions {
    /// `RunInstances`, or through an Auto Scaling group.
    #[serde(default)]
    pub via: LaunchVia,
    /// The instance type.
    pub instance_type: String,
    /// The subnet, where the account has no default VPC.
    pub subnet: Option<String>,
    /// Keep the instance running afterwards instead of terminating it.
    pub keep: bool,
}

impl Default for LaunchOptions {
    fn default() -> Self {
        LaunchOptions {
            via: LaunchVia::RunInstances,
            instance_type: "t3.micro".to_owned(),
            subnet: None,
            keep: false,
        }
    }
}

impl LaunchOptions {
    /// Launches through `via`.
    pub fn with_via(mut self, via: LaunchVia) -> LaunchOptions {
        self.via = via;
        self
    }

    /// Launches an `instance_type`.
    pub fn with_instance_type(mut self, instance_type: impl Into<String>) -> LaunchOptions {
        self.instance_type = instance_type.into();
        self
    }

    /// Launches into `subnet`.
    pub fn with_subnet(mut self, subnet: impl Into<String>) -> LaunchOptions {
        self.subnet = Some(subnet.into());
        self
    }

    /// Keeps the instance running afterwards.
    pub fn with_keep(mut self, keep: bool) -> LaunchOptions {
        self.keep = keep;
        self
    }
}

/// Which key re-encrypts the target's copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CopyKey {
    /// A key of the target's.
    Key(KeyRef),
    /// The target account's default EBS key.
    AccountDefault,
}

impl fmt::Display for CopyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CopyKey::Key(key) => key.fmt(f),
            CopyKey::AccountDefault => f.write_str("the account's default EBS key"),
        }
    }
}

/// The owner side: take back what [`Sharer::share`](crate::Sharer::share) gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UnshareRequest {
    /// The shared images, one per region.
    pub images: Vec<RegionImage>,
    /// The targets to remove.
    pub targets: Vec<Target>,
    /// The narrowing the share used (it selects amishare's key-policy statements).
    pub narrowing: Narrowing,
    /// Also deregister the copies amishare made, and delete their snapshots.
    pub deregister: bool,
}

impl UnshareRequest {
    /// Takes `images` (one per region) back from `targets`, for a share
    /// made without narrowing, and keeps the copies.
    pub fn new(
        images: impl IntoIterator<Item = RegionImage>,
        targets: impl IntoIterator<Item = Target>,
    ) -> UnshareRequest {
        UnshareRequest {
            images: images.into_iter().collect(),
            targets: targets.into_iter().collect(),
            narrowing: Narrowing::default(),
            deregister: false,
        }
    }

    /// The narrowing the share used.
    pub fn with_narrowing(mut self, narrowing: Narrowing) -> UnshareRequest {
        self.narrowing = narrowing;
        self
    }

    /// Also deregisters amishare's copies and deletes their snapshots.
    pub fn with_deregister(mut self, deregister: bool) -> UnshareRequest {
        self.deregister = deregister;
        self
    }
}

/// An image in a region.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RegionImage {
    /// The region.
    pub region: Region,
    /// The image.
    pub image: ImageId,
}

impl RegionImage {
    /// `image` in `region`.
    pub fn new(region: Region, image: ImageId) -> RegionImage {
        RegionImage { region, image }
    }
}

/// How long and how often to poll for asynchronous work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WaitOptions {
    /// First delay between polls of an image. No image creation or copy
    /// finishes sooner than this, and AWS's own image waiter polls every 15 s.
    pub image_first_delay: Duration,
    /// First delay between polls of an instance, which runs within a minute
    /// (AWS's own instance waiter polls every 15 s).
    pub instance_first_delay: Duration,
    /// Longest delay between polls.
    pub max_delay: Duration,
    /// How long an image creation or copy may take.
    pub image_deadline: Duration,
    /// How long an instance may take to run.
    pub instance_deadline: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            image_first_delay: Duration::from_secs(15),
            instance_first_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(60),
            image_deadline: Duration::from_secs(3 * 60 * 60),
            instance_deadline: Duration::from_secs(20 * 60),
        }
    }
}

/// One thing a flow did or found, for people and for the JSON report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Step {
    /// The region, when the step is regional.
    pub region: Option<Region>,
    /// What happened, e.g. `create-key`, `copy-image`, `verify-snapshots`.
    pub action: String,
    /// The resource it touched.
    pub resource: String,
    /// Details for people.
    pub detail: String,
    /// Whether the step changed anything in AWS.
    pub changed: bool,
}

/// How a share left its key's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyWrite {
    /// The share created the key with this policy (`CreateKey`).
    Created,
    /// The share merged its statements into the key's policy (`PutKeyPolicy`).
    Merged,
    /// The policy already allowed the targets: nothing was written.
    Unchanged,
}

impl fmt::Display for PolicyWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyWrite::Created => "created with the key",
            PolicyWrite::Merged => "merged into the key policy",
            PolicyWrite::Unchanged => "already in the key policy",
        })
    }
}

/// The key policy of a share's key, as the share left it: what amishare
/// wrote is always in plain sight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KeyPolicyReport {
    /// How the share wrote it.
    pub written: PolicyWrite,
    /// amishare's statements (Sid `amishare:…`), as the policy now has them.
    pub statements: Vec<amishare_policy::Statement>,
    /// The whole policy, when the share created the key with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<amishare_policy::Policy>,
}

impl KeyPolicyReport {
    /// The report of `policy`, written as `written`; the whole policy is
    /// kept only for a key created with it.
    pub fn of(written: PolicyWrite, policy: &amishare_policy::Policy) -> KeyPolicyReport {
        KeyPolicyReport {
            written,
            statements: amishare_policy::amishare_statements(policy)
                .cloned()
                .collect(),
            policy: (written == PolicyWrite::Created).then(|| policy.clone()),
        }
    }
}

/// What a share did in one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RegionShare {
    /// The region.
    pub region: Region,
    /// The key that encrypts the shared image.
    pub key: KeyArn,
    /// The key's policy as the share left it.
    pub key_policy: KeyPolicyReport,
    /// The image shared (a copy, or the source itself when it already was encrypted with the key).
    pub image: ImageId,
    /// Each snapshot of the shared image and the key that was verified on it.
    pub snapshots: BTreeMap<SnapshotId, KeyArn>,
    /// Launch permissions on the shared image after the share.
    pub launch_permissions: Vec<LaunchPermission>,
}

/// What [`Sharer::share`](crate::Sharer::share) did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ShareReport {
    /// The source image (created from the instance when the source was one).
    pub source_image: ImageId,
    /// The source region.
    pub source_region: Region,
    /// Per region, in request order.
    pub regions: Vec<RegionShare>,
    /// Everything done and checked, in order per region.
    pub steps: Vec<Step>,
    /// How many calls changed something (zero on a rerun that found everything in place).
    pub mutating_calls: usize,
    /// Things the caller should know that did not stop the share.
    pub warnings: Vec<String>,
}

/// What the smoke launch gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LaunchReport {
    /// The instance.
    pub instance: InstanceId,
    /// The Auto Scaling group that launched it, for a launch through one
    /// (deleted after, with its launch template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The state it reached (`running`), or `terminated` if it was terminated afterwards.
    pub state: InstanceState,
    /// Whether amishare terminated it after it ran.
    pub terminated_after: bool,
}

/// A grant on a key of the image for a service-linked role of the target's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GrantReport {
    /// The key.
    pub key: KeyArn,
    /// The role the grant is for.
    pub grantee: PrincipalArn,
    /// The grant's ID.
    pub grant_id: GrantId,
    /// Whether this run created it (else an earlier run had).
    pub created: bool,
}

/// What the target's copy gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CopyReport {
    /// The new image, owned by the target.
    pub image: ImageId,
    /// Each snapshot of the copy and its key.
    pub snapshots: BTreeMap<SnapshotId, Option<KeyArn>>,
}

/// What [`Sharer::accept`](crate::Sharer::accept) did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AcceptReport {
    /// The shared image.
    pub image: ImageId,
    /// Its owner.
    pub owner: AccountId,
    /// The keys the target checked with DescribeKey.
    pub keys_checked: Vec<KeyArn>,
    /// The keys the target may not describe directly but used through EC2:
    /// the launch or the copy showed them usable (`kms:ViaService`).
    #[serde(default)]
    pub keys_through_ec2: Vec<KeyArn>,
    /// The grants made (or found) for service-linked roles, if asked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<GrantReport>,
    /// The smoke launch, if asked.
    pub launch: Option<LaunchReport>,
    /// The copy, if asked.
    pub copy: Option<CopyReport>,
    /// Everything done and checked, in order.
    pub steps: Vec<Step>,
    /// Things the caller should know.
    pub warnings: Vec<String>,
}

/// An account whose launch and create-volume permissions an unshare kept:
/// they are per account, and amishare's key-policy statements still name
/// other principals of it (or its root), shared separately.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Kept {
    /// The region.
    pub region: Region,
    /// The shared image.
    pub image: ImageId,
    /// The account that keeps its permissions.
    pub account: AccountId,
    /// The principals of that account amishare's statements still name.
    pub named: Vec<String>,
}

/// What [`Sharer::unshare`](crate::Sharer::unshare) did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UnshareReport {
    /// Everything done and checked, in order.
    pub steps: Vec<Step>,
    /// Accounts whose permissions were kept, and why.
    #[serde(default)]
    pub kept: Vec<Kept>,
    /// How many calls changed something.
    pub mutating_calls: usize,
    /// Things the caller should know.
    pub warnings: Vec<String>,
}
