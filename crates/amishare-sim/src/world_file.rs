//! The world file: a [`World`] as a JSON document, so that a sequence of
//! commands, each acting as a different principal, works on one world across
//! invocations (`amishare --backend sim --world FILE …`).
//!
//! The format is [`WorldFile`]: `format` must be [`FORMAT`]; everything
//! else but `accounts` may be left out. A hand-written world usually lists
//! accounts with their users and roles (and their identity policies), the
//! profiles and access keys that name them, and running instances; keys, images and
//! snapshots appear as commands create them, and so do service-linked roles
//! (principals with `service_linked`), launch templates, Auto Scaling groups
//! and their activities. Times are milliseconds of the
//! world's virtual clock. `testdata/worlds/` has examples.
//!
//! Loading checks every reference (a principal in an account that exists, an
//! alias naming a key of its account and region, a device naming a snapshot
//! that exists, …) and names the offending entry by its path in the document.
//!
//! A world file is a transaction: a command holds a [`WorldLock`] on it from
//! before it reads until after it writes (the CLI and `amishare sim serve`
//! alike), so commands on one file take turns and none loses another's
//! changes; a save replaces the file atomically, keeping its mode and
//! writing through a symlink. See [`WorldLock`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use amishare_core::store::{
    AttachedVolume, InstanceState, KeyManager, KeyState, LaunchPermission, StateReason,
    VolumePermission,
};
use amishare_core::{
    AccountId, AliasName, Error, ErrorKind, GrantId, ImageId, InstanceId, KeyArn, KeyId,
    PrincipalArn, PrincipalKind, Region, Result, SnapshotId, VolumeId,
};
use amishare_policy::Policy;
use serde::{Deserialize, Serialize};

use crate::ids::IdGen;
use crate::state::{
    Account, ActivityRecord, DeviceRecord, GrantRecord, GroupRecord, IamPrincipal, ImageRecord,
    InstanceRecord, InstanceVolume, Key, SnapshotRecord, State, TemplateRecord,
};
use crate::world::{parse_org_path, World};

mod lock;

pub use self::lock::{LockHolder, WorldLock, DEFAULT_LOCK_WAIT};

/// The value of [`WorldFile::format`] this version reads and writes.
pub const FORMAT: &str = "amishare-world/1";

/// A whole world, as stored in a world file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorldFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// The seed of the world's IDs.
    #[serde(default)]
    pub seed: u64,
    /// The virtual time the world has reached, in milliseconds.
    #[serde(default)]
    pub now_ms: u64,
    /// Where the ID sequence stands (default: at the seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_position: Option<u64>,
    /// Named principals: `--profile NAME` acts as this principal.
    #[serde(default)]
    pub profiles: BTreeMap<String, PrincipalArn>,
    /// Access key IDs and the principals that sign with them, for clients of
    /// `amishare sim serve`: the principal's ARN, or (for a server that
    /// checks signatures) `{"principal": ARN, "secret_access_key": SECRET}`.
    /// Without authentication, an unmapped 12-digit key ID is the root of
    /// that account.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub access_keys: BTreeMap<String, AccessKeyEntry>,
    /// The accounts, with their users, roles and EBS settings.
    pub accounts: Vec<AccountEntry>,
    /// Every KMS key (customer and AWS managed).
    #[serde(default)]
    pub keys: Vec<KeyEntry>,
    /// KMS aliases.
    #[serde(default)]
    pub aliases: Vec<AliasEntry>,
    /// EC2 images.
    #[serde(default)]
    pub images: Vec<ImageEntry>,
    /// EBS snapshots.
    #[serde(default)]
    pub snapshots: Vec<SnapshotEntry>,
    /// EC2 instances.
    #[serde(default)]
    pub instances: Vec<InstanceEntry>,
    /// `CopyImage` client tokens seen: `<account>/<region>/<token>` → the image it made.
    #[serde(default)]
    pub client_tokens: BTreeMap<String, ImageId>,
    /// `RunInstances` client tokens seen: `<account>/<region>/<token>` → the instance it launched.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub instance_tokens: BTreeMap<String, InstanceId>,
    /// EC2 launch templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub launch_templates: Vec<LaunchTemplateEntry>,
    /// `CreateLaunchTemplate` client tokens seen: `<account>/<region>/<token>` → the template's name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub launch_template_tokens: BTreeMap<String, String>,
    /// Auto Scaling groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auto_scaling_groups: Vec<GroupEntry>,
    /// Scaling activities, oldest first (those of deleted groups too).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scaling_activities: Vec<ActivityEntry>,
}

/// An EC2 launch template (its default version).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchTemplateEntry {
    /// `lt-…`.
    pub id: String,
    /// Its name, unique per account and region.
    pub name: String,
    /// The owner account.
    pub owner: AccountId,
    /// The region.
    pub region: Region,
    /// The image instances launch from.
    pub image: ImageId,
    /// The instance type.
    pub instance_type: String,
    /// Tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// An Auto Scaling group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupEntry {
    /// Its name, unique per account and region.
    pub name: String,
    /// The UUID in its ARN.
    pub uuid: String,
    /// The owner account.
    pub owner: AccountId,
    /// The region.
    pub region: Region,
    /// The launch template's name.
    pub launch_template: String,
    /// Smallest size.
    pub min_size: u32,
    /// Largest size.
    pub max_size: u32,
    /// Desired capacity.
    pub desired_capacity: u32,
    /// Availability zones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub availability_zones: Vec<String>,
    /// Subnets, comma-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnets: Option<String>,
    /// The service-linked role it launches as (a role of the owner account).
    pub service_linked_role: PrincipalArn,
    /// Tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Every instance it launched, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<InstanceId>,
    /// When it next launches, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_ms: Option<u64>,
    /// Since when its launches fail, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since_ms: Option<u64>,
}

/// A scaling activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityEntry {
    /// Its ID.
    pub id: String,
    /// The group's account.
    pub owner: AccountId,
    /// The region.
    pub region: Region,
    /// The group's name.
    pub group: String,
    /// When it began, in milliseconds.
    pub started_ms: u64,
    /// What started it.
    pub cause: String,
    /// The instance it launched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<InstanceId>,
    /// EC2's message, when the launch was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// An access key of the world file: who signs with it, and its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AccessKeyEntry {
    /// The principal alone (a server that checks signatures refuses it).
    Principal(PrincipalArn),
    /// The principal and the secret access key its requests are signed with.
    WithSecret {
        /// Who signs with the key.
        principal: PrincipalArn,
        /// The secret access key.
        secret_access_key: String,
    },
}

/// An access key as the world holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    /// Who signs with it.
    pub principal: PrincipalArn,
    /// Its secret, when the world file gives one.
    pub secret_access_key: Option<String>,
}

impl From<&AccessKey> for AccessKeyEntry {
    fn from(key: &AccessKey) -> AccessKeyEntry {
        match &key.secret_access_key {
            Some(secret) => AccessKeyEntry::WithSecret {
                principal: key.principal.clone(),
                secret_access_key: secret.clone(),
            },
            None => AccessKeyEntry::Principal(key.principal.clone()),
        }
    }
}

impl From<&AccessKeyEntry> for AccessKey {
    fn from(entry: &AccessKeyEntry) -> AccessKey {
        match entry {
            AccessKeyEntry::Principal(principal) => AccessKey {
                principal: principal.clone(),
                secret_access_key: None,
            },
            AccessKeyEntry::WithSecret {
                principal,
                secret_access_key,
            } => AccessKey {
                principal: principal.clone(),
                secret_access_key: Some(secret_access_key.clone()),
            },
        }
    }
}

/// An account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountEntry {
    /// The 12-digit account ID.
    pub id: AccountId,
    /// Its place in an organization, `o-…/r-…/ou-…/`, if it is in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_path: Option<String>,
    /// Its IAM users and roles.
    #[serde(default)]
    pub principals: Vec<PrincipalEntry>,
    /// EBS encryption settings per region (default: off, `alias/aws/ebs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ebs: Vec<EbsEntry>,
}

/// An IAM user or role and its identity policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalEntry {
    /// `arn:aws:iam::<account>:user/<name>` or `…:role/<name>`.
    pub arn: PrincipalArn,
    /// Identity policy documents.
    #[serde(default)]
    pub policies: Vec<Policy>,
    /// A service-linked role, whose policies are AWS's and cannot be changed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub service_linked: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// EBS encryption settings of an account in a region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EbsEntry {
    /// The region.
    pub region: Region,
    /// Whether new volumes are encrypted by default.
    #[serde(default)]
    pub encryption_by_default: bool,
    /// The default EBS key (default: `alias/aws/ebs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_key: Option<KeyArn>,
}

/// A KMS key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// The key's ARN (its region and account).
    pub arn: KeyArn,
    /// `Customer` (default) or `Aws`.
    #[serde(default = "customer")]
    pub manager: KeyManager,
    /// `Enabled` (default), `Disabled` or `PendingDeletion`.
    #[serde(default = "enabled")]
    pub state: KeyState,
    /// The description.
    #[serde(default)]
    pub description: String,
    /// The key policy; left out, the policy KMS writes (the default key
    /// policy, or `aws/ebs`'s for an AWS managed key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// Tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// For a key pending deletion, when its waiting period ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_at_ms: Option<u64>,
    /// Grants, in creation order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<GrantEntry>,
}

fn customer() -> KeyManager {
    KeyManager::Customer
}

fn enabled() -> KeyState {
    KeyState::Enabled
}

/// A grant on a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantEntry {
    /// The grant ID.
    pub id: GrantId,
    /// The grant's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The grantee principal (an ARN, or a service principal).
    pub grantee: String,
    /// The operations it allows, e.g. `Decrypt`.
    pub operations: Vec<String>,
    /// The account that created it.
    pub issuing_account: AccountId,
    /// When it was created.
    #[serde(default)]
    pub created_ms: u64,
    /// The principal that may retire it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring_principal: Option<String>,
}

/// A KMS alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasEntry {
    /// The alias name, `alias/…`.
    pub name: AliasName,
    /// The key it names (of the alias's account and region).
    pub key: KeyArn,
}

/// An EC2 image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageEntry {
    /// The image ID.
    pub id: ImageId,
    /// The owner account.
    pub owner: AccountId,
    /// The region.
    pub region: Region,
    /// The name, unique per account and region.
    pub name: String,
    /// When it leaves `pending` (default 0: available from the start).
    #[serde(default)]
    pub ready_at_ms: u64,
    /// Set when it then goes `failed` rather than `available`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<StateReason>,
    /// Why the simulation failed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_detail: Option<String>,
    /// Its block devices.
    #[serde(default)]
    pub devices: Vec<DeviceEntry>,
    /// Tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Who may launch it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub launch_permissions: Vec<LaunchPermission>,
    /// The image it was copied from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_image: Option<ImageId>,
    /// The region of the image it was copied from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_region: Option<Region>,
    /// The instance it was created from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_instance: Option<InstanceId>,
    /// The `CopyImage` client token that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// A block device of an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceEntry {
    /// Device name, e.g. `/dev/xvda`.
    pub device_name: String,
    /// The snapshot behind it (listed in `snapshots`).
    pub snapshot: SnapshotId,
    /// Size in GiB.
    pub size_gib: u32,
    /// Volume type (default `gp3`).
    #[serde(default = "gp3")]
    pub volume_type: String,
    /// Whether it is encrypted.
    #[serde(default)]
    pub encrypted: bool,
}

fn gp3() -> String {
    "gp3".to_owned()
}

/// An EBS snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotEntry {
    /// The snapshot ID.
    pub id: SnapshotId,
    /// The owner account.
    pub owner: AccountId,
    /// The region.
    pub region: Region,
    /// Size in GiB.
    pub size_gib: u32,
    /// The key that encrypts it; left out, it is not encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<KeyArn>,
    /// When it completes (default 0).
    #[serde(default)]
    pub ready_at_ms: u64,
    /// When it started, so that a pending snapshot reports its progress;
    /// left out, it reports none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    /// Set when it then goes `error`, with its state message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Who may create volumes from it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_permissions: Vec<VolumePermission>,
    /// The image that uses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageId>,
}

/// An EC2 instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceEntry {
    /// The instance ID.
    pub id: InstanceId,
    /// The owner account.
    pub owner: AccountId,
    /// The region.
    pub region: Region,
    /// The image it was launched from (default: an image of its own that
    /// is not in the world, as for an instance launched from a public AMI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageId>,
    /// Its states in time order (default: `running` from the start).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<StateAt>,
    /// Its state reason and when it appears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<ReasonAt>,
    /// Why the simulation terminated it at launch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_detail: Option<String>,
    /// Its EBS volumes.
    #[serde(default)]
    pub volumes: Vec<VolumeEntry>,
    /// The grants EC2 holds for its volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<InstanceGrant>,
    /// Its tags (`amishare:smoke-test` on a smoke instance).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// An instance state from a time on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateAt {
    /// From when.
    pub at_ms: u64,
    /// The state.
    pub state: InstanceState,
}

/// An instance's state reason from a time on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonAt {
    /// From when.
    pub at_ms: u64,
    /// The reason.
    #[serde(flatten)]
    pub reason: StateReason,
}

/// An EBS volume attached to an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeEntry {
    /// The volume ID (default: a new one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_id: Option<VolumeId>,
    /// Device name, e.g. `/dev/xvda`.
    pub device_name: String,
    /// Size in GiB.
    pub size_gib: u32,
    /// Volume type (default `gp3`).
    #[serde(default = "gp3")]
    pub volume_type: String,
    /// The key that encrypts it; left out, it is not encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<KeyArn>,
}

/// A grant EC2 holds for an instance's volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceGrant {
    /// The key.
    pub key: KeyId,
    /// The grant.
    pub grant: GrantId,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn at(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn bad(path: &str, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("world file: {path}: {why}"),
    )
}

impl WorldFile {
    /// Parses a world file, naming the entry (`accounts[0].principals[1].arn`)
    /// where the document is malformed.
    pub fn parse(text: &str) -> Result<WorldFile> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let why = format!("{inner} (line {}, column {})", inner.line(), inner.column());
            bad(if path == "." { "document" } else { &path }, why)
        })
    }

    /// The document, pretty-printed.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a world file is plain data");
        text.push('\n');
        text
    }
}

impl World {
    /// Reads a world file. The file must exist.
    pub fn load(path: &Path) -> Result<World> {
        let text = std::fs::read_to_string(path).map_err(|err| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("cannot read world file {}: {err}", path.display()),
            )
        })?;
        let file = WorldFile::parse(&text).map_err(|err| err.context(path.display()))?;
        World::from_file(&file).map_err(|err| err.context(path.display()))
    }

    /// The named principals (`--profile NAME`).
    pub fn profiles(&self) -> BTreeMap<String, PrincipalArn> {
        self.lock().iam.profiles.clone()
    }

    /// Names a principal, which must exist, so commands can act as it by name.
    pub fn set_profile(&self, name: &str, principal: &PrincipalArn) -> Result<()> {
        drop(self.client(principal)?);
        self.lock()
            .iam
            .profiles
            .insert(name.to_owned(), principal.clone());
        Ok(())
    }

    /// The access key IDs that sign as a principal (`amishare sim serve`).
    pub fn access_keys(&self) -> BTreeMap<String, PrincipalArn> {
        self.lock()
            .iam
            .access_keys
            .iter()
            .map(|(id, key)| (id.clone(), key.principal.clone()))
            .collect()
    }

    /// One access key: who signs with it, and its secret.
    pub fn access_key(&self, id: &str) -> Option<AccessKey> {
        self.lock().iam.access_keys.get(id).cloned()
    }

    /// Gives an access key of the world its secret access key, so that a
    /// server that checks signatures accepts its requests. A secret is 16 to
    /// 128 printable ASCII characters without spaces (AWS's are 40).
    pub fn set_secret_access_key(&self, id: &str, secret: &str) -> Result<()> {
        let valid =
            (16..=128).contains(&secret.len()) && secret.bytes().all(|b| b.is_ascii_graphic());
        if !valid {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "invalid secret access key of {id}: expected 16 to 128 printable ASCII characters without spaces"
                ),
            ));
        }
        let mut state = self.lock();
        let key = state.iam.access_keys.get_mut(id).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("access key {id} is not in the world"),
            )
        })?;
        key.secret_access_key = Some(secret.to_owned());
        Ok(())
    }

    /// Maps an access key ID (16 to 128 upper-case letters and digits, as
    /// AWS issues them, or 12 digits) to a principal, which must exist.
    pub fn set_access_key(&self, id: &str, principal: &PrincipalArn) -> Result<()> {
        let valid = (id.len() == 12 || (16..=128).contains(&id.len()))
            && id
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !valid {
            return Err(Error::invalid_input(
                "access key ID",
                id,
                "expected 16 to 128 upper-case letters and digits",
            ));
        }
        drop(self.client(principal)?);
        self.lock().iam.access_keys.insert(
            id.to_owned(),
            AccessKey {
                principal: principal.clone(),
                secret_access_key: None,
            },
        );
        Ok(())
    }

    /// The world as a world file.
    pub fn to_file(&self) -> WorldFile {
        let now_ms = millis(self.now());
        let state = self.lock();
        let accounts = state
            .iam
            .accounts
            .values()
            .map(|account| AccountEntry {
                id: account.id.clone(),
                org_path: account.org_paths.first().cloned(),
                principals: account
                    .principals
                    .iter()
                    .map(|(arn, principal)| PrincipalEntry {
                        arn: PrincipalArn::parse(arn).expect("stored principal ARNs are valid"),
                        policies: principal.policies.clone(),
                        service_linked: principal.service_linked,
                    })
                    .collect(),
                ebs: state
                    .ec2
                    .ebs
                    .get(&account.id)
                    .into_iter()
                    .flatten()
                    .map(|(region, settings)| EbsEntry {
                        region: region.clone(),
                        encryption_by_default: settings.encryption_by_default,
                        default_key: settings.default_key.clone(),
                    })
                    .collect(),
            })
            .collect();
        let keys = state
            .kms
            .keys
            .values()
            .map(|key| {
                let mut grants: Vec<&GrantRecord> = key.grants.values().collect();
                grants.sort_by_key(|grant| grant.seq);
                KeyEntry {
                    arn: key.arn.clone(),
                    manager: key.manager,
                    state: key.state,
                    description: key.description.clone(),
                    policy: key.policy_text.as_ref().map(|_| key.policy.clone()),
                    tags: key.tags.clone(),
                    deletion_at_ms: key.deletion_at.map(millis),
                    grants: grants
                        .into_iter()
                        .map(|grant| GrantEntry {
                            id: grant.id.clone(),
                            name: grant.name.clone(),
                            grantee: grant.grantee.clone(),
                            operations: grant.operations.clone(),
                            issuing_account: grant.issuing_account.clone(),
                            created_ms: millis(grant.created_at),
                            retiring_principal: grant.retiring_principal.clone(),
                        })
                        .collect(),
                }
            })
            .collect();
        let mut aliases = Vec::new();
        for regions in state.kms.aliases.values() {
            for names in regions.values() {
                for (name, key) in names {
                    if let Some(key) = state.kms.keys.get(key) {
                        aliases.push(AliasEntry {
                            name: name.clone(),
                            key: key.arn.clone(),
                        });
                    }
                }
            }
        }
        let images = state
            .ec2
            .images
            .values()
            .map(|image| ImageEntry {
                id: image.id.clone(),
                owner: image.owner.clone(),
                region: image.region.clone(),
                name: image.name.clone(),
                ready_at_ms: millis(image.ready_at),
                failure: image.failure.clone(),
                failure_detail: image.failure_detail.clone(),
                devices: image
                    .devices
                    .iter()
                    .map(|device| DeviceEntry {
                        device_name: device.device_name.clone(),
                        snapshot: device.snapshot.clone(),
                        size_gib: device.size,
                        volume_type: device.volume_type.clone(),
                        encrypted: device.encrypted,
                    })
                    .collect(),
                tags: image.tags.clone(),
                launch_permissions: image.launch_permissions.iter().cloned().collect(),
                source_image: image.source_image.clone(),
                source_region: image.source_region.clone(),
                source_instance: image.source_instance.clone(),
                client_token: image.client_token.clone(),
            })
            .collect();
        let snapshots = state
            .ec2
            .snapshots
            .values()
            .map(|snapshot| SnapshotEntry {
                id: snapshot.id.clone(),
                owner: snapshot.owner.clone(),
                region: snapshot.region.clone(),
                size_gib: snapshot.size,
                kms_key: snapshot.kms_key.clone(),
                ready_at_ms: millis(snapshot.ready_at),
                started_at_ms: snapshot.started_at.map(millis),
                failure: snapshot.failure.clone(),
                volume_permissions: snapshot.volume_permissions.iter().cloned().collect(),
                image: snapshot.image.clone(),
            })
            .collect();
        let instances = state
            .ec2
            .instances
            .values()
            .map(|instance| InstanceEntry {
                id: instance.id.clone(),
                owner: instance.owner.clone(),
                region: instance.region.clone(),
                image: Some(instance.image.clone()),
                timeline: instance
                    .timeline
                    .iter()
                    .map(|(when, state)| StateAt {
                        at_ms: millis(*when),
                        state: *state,
                    })
                    .collect(),
                reason: instance.reason.as_ref().map(|(when, reason)| ReasonAt {
                    at_ms: millis(*when),
                    reason: reason.clone(),
                }),
                failure_detail: instance.failure_detail.clone(),
                volumes: instance
                    .volumes
                    .iter()
                    .map(|volume| VolumeEntry {
                        volume_id: Some(volume.volume.volume_id.clone()),
                        device_name: volume.volume.device_name.clone(),
                        size_gib: volume.volume.size,
                        volume_type: volume.volume_type.clone(),
                        kms_key: volume.volume.kms_key.clone(),
                    })
                    .collect(),
                grants: instance
                    .grants
                    .iter()
                    .map(|(key, grant)| InstanceGrant {
                        key: key.clone(),
                        grant: grant.clone(),
                    })
                    .collect(),
                tags: instance.tags.clone(),
            })
            .collect();
        WorldFile {
            format: FORMAT.to_owned(),
            seed: self.seed(),
            now_ms,
            id_position: Some(state.ids.position()),
            profiles: state.iam.profiles.clone(),
            access_keys: state
                .iam
                .access_keys
                .iter()
                .map(|(id, key)| (id.clone(), AccessKeyEntry::from(key)))
                .collect(),
            accounts,
            keys,
            aliases,
            images,
            snapshots,
            instances,
            client_tokens: state.ec2.client_tokens.clone(),
            instance_tokens: state.ec2.instance_tokens.clone(),
            launch_templates: state
                .scaling
                .templates
                .values()
                .map(|t| LaunchTemplateEntry {
                    id: t.id.clone(),
                    name: t.name.clone(),
                    owner: t.owner.clone(),
                    region: t.region.clone(),
                    image: t.image.clone(),
                    instance_type: t.instance_type.clone(),
                    tags: t.tags.clone(),
                })
                .collect(),
            launch_template_tokens: state.scaling.template_tokens.clone(),
            auto_scaling_groups: state
                .scaling
                .groups
                .values()
                .map(|g| GroupEntry {
                    name: g.name.clone(),
                    uuid: g.uuid.clone(),
                    owner: g.owner.clone(),
                    region: g.region.clone(),
                    launch_template: g.template.clone(),
                    min_size: g.min_size,
                    max_size: g.max_size,
                    desired_capacity: g.desired,
                    availability_zones: g.zones.clone(),
                    subnets: g.subnets.clone(),
                    service_linked_role: g.role.clone(),
                    tags: g.tags.clone(),
                    members: g.members.clone(),
                    next_attempt_ms: g.next_attempt.map(millis),
                    failing_since_ms: g.failing_since.map(millis),
                })
                .collect(),
            scaling_activities: state
                .scaling
                .activities
                .iter()
                .map(|a| ActivityEntry {
                    id: a.id.clone(),
                    owner: a.owner.clone(),
                    region: a.region.clone(),
                    group: a.group.clone(),
                    started_ms: millis(a.started_at),
                    cause: a.cause.clone(),
                    instance: a.instance.clone(),
                    refused: a.refused.clone(),
                })
                .collect(),
        }
    }

    /// Builds the world a world file describes, checking every reference.
    pub fn from_file(file: &WorldFile) -> Result<World> {
        if file.format != FORMAT {
            return Err(bad(
                "format",
                format!("is {:?}, expected {FORMAT:?}", file.format),
            ));
        }
        let world = World::new(file.seed);
        world.advance(at(file.now_ms));
        {
            let mut state = world.lock();
            state.ids = IdGen::new(file.id_position.unwrap_or(file.seed));
            load_accounts(&mut state, file)?;
            load_keys(&mut state, file)?;
            load_ec2(&mut state, file)?;
            load_scaling(&mut state, file)?;
            state.allowed.clear();
        }
        for (name, principal) in &file.profiles {
            world
                .set_profile(name, principal)
                .map_err(|err| bad(&format!("profiles.{name}"), err))?;
        }
        for (id, entry) in &file.access_keys {
            let key = AccessKey::from(entry);
            world
                .set_access_key(id, &key.principal)
                .map_err(|err| bad(&format!("access_keys.{id}"), err))?;
            if let Some(secret) = &key.secret_access_key {
                world
                    .set_secret_access_key(id, secret)
                    .map_err(|err| bad(&format!("access_keys.{id}.secret_access_key"), err))?;
            }
        }
        Ok(world)
    }
}

fn load_accounts(state: &mut State, file: &WorldFile) -> Result<()> {
    for (index, entry) in file.accounts.iter().enumerate() {
        let path = format!("accounts[{index}]");
        if state.iam.accounts.contains_key(&entry.id) {
            return Err(bad(
                &format!("{path}.id"),
                format!("account {} is listed twice", entry.id),
            ));
        }
        let mut account = Account::new(entry.id.clone());
        if let Some(org_path) = &entry.org_path {
            account.org_id = Some(
                parse_org_path(org_path).map_err(|err| bad(&format!("{path}.org_path"), err))?,
            );
            account.org_paths = vec![org_path.clone()];
        }
        for (p, principal) in entry.principals.iter().enumerate() {
            let at = format!("{path}.principals[{p}].arn");
            if principal.arn.account() != &entry.id {
                return Err(bad(
                    &at,
                    format!("{} is not in account {}", principal.arn, entry.id),
                ));
            }
            if !matches!(
                principal.arn.kind(),
                PrincipalKind::User | PrincipalKind::Role
            ) {
                return Err(bad(
                    &at,
                    format!("{} is not an IAM user or role", principal.arn),
                ));
            }
            let previous = account.principals.insert(
                principal.arn.as_str().to_owned(),
                IamPrincipal {
                    policies: principal.policies.clone(),
                    service_linked: principal.service_linked,
                },
            );
            if previous.is_some() {
                return Err(bad(&at, format!("{} is listed twice", principal.arn)));
            }
        }
        for (e, ebs) in entry.ebs.iter().enumerate() {
            if let Some(key) = &ebs.default_key {
                if key.region() != &ebs.region {
                    return Err(bad(
                        &format!("{path}.ebs[{e}].default_key"),
                        format!("{key} is not in region {}", ebs.region),
                    ));
                }
            }
            let settings = state.ec2.ebs_settings_mut(&entry.id, &ebs.region);
            settings.encryption_by_default = ebs.encryption_by_default;
            settings.default_key = ebs.default_key.clone();
        }
        state.iam.accounts.insert(entry.id.clone(), account);
    }
    Ok(())
}

fn load_keys(state: &mut State, file: &WorldFile) -> Result<()> {
    for (index, entry) in file.keys.iter().enumerate() {
        let path = format!("keys[{index}]");
        let account = entry.arn.account();
        if !state.iam.accounts.contains_key(account) {
            return Err(bad(
                &format!("{path}.arn"),
                format!("account {account} is not in accounts"),
            ));
        }
        if state.kms.keys.contains_key(entry.arn.key_id()) {
            return Err(bad(
                &format!("{path}.arn"),
                format!("key {} is listed twice", entry.arn.key_id()),
            ));
        }
        let (policy, text) = match (&entry.policy, entry.manager) {
            (Some(policy), _) => (policy.clone(), Some(policy.to_json_pretty())),
            (None, KeyManager::Customer) => (Policy::default_key_policy(account.as_str()), None),
            (None, KeyManager::Aws) => (
                Policy::aws_managed_ebs_key_policy(account.as_str(), entry.arn.region().as_str()),
                None,
            ),
        };
        let mut key = Key::new(
            entry.arn.clone(),
            entry.manager,
            entry.description.clone(),
            policy,
            text,
        );
        key.state = entry.state;
        key.tags = entry.tags.clone();
        key.deletion_at = entry.deletion_at_ms.map(at);
        for (g, grant) in entry.grants.iter().enumerate() {
            if key.grants.contains_key(&grant.id) {
                return Err(bad(
                    &format!("{path}.grants[{g}].id"),
                    format!("grant {} is listed twice", grant.id),
                ));
            }
            key.add_grant(GrantRecord {
                id: grant.id.clone(),
                seq: 0,
                name: grant.name.clone(),
                grantee: grant.grantee.clone(),
                operations: grant.operations.clone(),
                issuing_account: grant.issuing_account.clone(),
                created_at: at(grant.created_ms),
                retiring_principal: grant.retiring_principal.clone(),
            });
        }
        state
            .kms
            .keys
            .insert(entry.arn.key_id().clone(), Box::new(key));
    }
    for (index, alias) in file.aliases.iter().enumerate() {
        let path = format!("aliases[{index}]");
        match state.kms.keys.get(alias.key.key_id()) {
            Some(key) if key.arn == alias.key => {}
            _ => {
                return Err(bad(
                    &format!("{path}.key"),
                    format!("key {} is not in keys", alias.key),
                ))
            }
        }
        let names = state
            .kms
            .aliases_mut(alias.key.account(), alias.key.region());
        if names
            .insert(alias.name.clone(), alias.key.key_id().clone())
            .is_some()
        {
            return Err(bad(
                &format!("{path}.name"),
                format!(
                    "{} is listed twice for account {} in {}",
                    alias.name,
                    alias.key.account(),
                    alias.key.region()
                ),
            ));
        }
    }
    Ok(())
}

fn load_ec2(state: &mut State, file: &WorldFile) -> Result<()> {
    let known_account = |state: &State, account: &AccountId, path: &str| {
        if state.iam.accounts.contains_key(account) {
            Ok(())
        } else {
            Err(bad(path, format!("account {account} is not in accounts")))
        }
    };
    for (index, entry) in file.snapshots.iter().enumerate() {
        let path = format!("snapshots[{index}]");
        known_account(state, &entry.owner, &format!("{path}.owner"))?;
        if let Some(key) = &entry.kms_key {
            check_key(state, key, &entry.region, &format!("{path}.kms_key"))?;
        }
        let record = SnapshotRecord {
            id: entry.id.clone(),
            owner: entry.owner.clone(),
            region: entry.region.clone(),
            size: entry.size_gib,
            encrypted: entry.kms_key.is_some(),
            kms_key: entry.kms_key.clone(),
            started_at: entry.started_at_ms.map(at),
            ready_at: at(entry.ready_at_ms),
            failure: entry.failure.clone(),
            volume_permissions: entry.volume_permissions.iter().cloned().collect(),
            image: entry.image.clone(),
        };
        if state
            .ec2
            .snapshots
            .insert(entry.id.clone(), Box::new(record))
            .is_some()
        {
            return Err(bad(
                &format!("{path}.id"),
                format!("snapshot {} is listed twice", entry.id),
            ));
        }
    }
    for (index, entry) in file.images.iter().enumerate() {
        let path = format!("images[{index}]");
        known_account(state, &entry.owner, &format!("{path}.owner"))?;
        if state.ec2.images.contains_key(&entry.id) {
            return Err(bad(
                &format!("{path}.id"),
                format!("image {} is listed twice", entry.id),
            ));
        }
        let scoped = crate::state::scoped(&entry.owner, &entry.region, &entry.name);
        if state.ec2.image_names.contains_key(&scoped) {
            return Err(bad(
                &format!("{path}.name"),
                format!(
                    "account {} already has an image named {:?} in {}",
                    entry.owner, entry.name, entry.region
                ),
            ));
        }
        for (d, device) in entry.devices.iter().enumerate() {
            match state.ec2.snapshots.get(&device.snapshot) {
                Some(snapshot) if snapshot.region == entry.region => {}
                _ => {
                    return Err(bad(
                        &format!("{path}.devices[{d}].snapshot"),
                        format!(
                            "snapshot {} is not in snapshots in {}",
                            device.snapshot, entry.region
                        ),
                    ))
                }
            }
        }
        state.ec2.insert_image(ImageRecord {
            id: entry.id.clone(),
            owner: entry.owner.clone(),
            region: entry.region.clone(),
            name: entry.name.clone(),
            ready_at: at(entry.ready_at_ms),
            failure: entry.failure.clone(),
            failure_detail: entry.failure_detail.clone(),
            devices: entry
                .devices
                .iter()
                .map(|device| DeviceRecord {
                    device_name: device.device_name.clone(),
                    snapshot: device.snapshot.clone(),
                    size: device.size_gib,
                    volume_type: device.volume_type.clone(),
                    encrypted: device.encrypted,
                })
                .collect(),
            tags: entry.tags.clone(),
            launch_permissions: entry.launch_permissions.iter().cloned().collect(),
            source_image: entry.source_image.clone(),
            source_region: entry.source_region.clone(),
            source_instance: entry.source_instance.clone(),
            client_token: entry.client_token.clone(),
        });
    }
    for (index, entry) in file.instances.iter().enumerate() {
        let path = format!("instances[{index}]");
        known_account(state, &entry.owner, &format!("{path}.owner"))?;
        if state.ec2.instances.contains_key(&entry.id) {
            return Err(bad(
                &format!("{path}.id"),
                format!("instance {} is listed twice", entry.id),
            ));
        }
        let mut volumes = Vec::with_capacity(entry.volumes.len());
        for (v, volume) in entry.volumes.iter().enumerate() {
            if let Some(key) = &volume.kms_key {
                check_key(
                    state,
                    key,
                    &entry.region,
                    &format!("{path}.volumes[{v}].kms_key"),
                )?;
            }
            let volume_id = match &volume.volume_id {
                Some(id) => id.clone(),
                None => state.ids.volume(),
            };
            volumes.push(InstanceVolume {
                volume: AttachedVolume {
                    volume_id,
                    device_name: volume.device_name.clone(),
                    encrypted: volume.kms_key.is_some(),
                    kms_key: volume.kms_key.clone(),
                    size: volume.size_gib,
                },
                volume_type: volume.volume_type.clone(),
            });
        }
        let timeline = if entry.timeline.is_empty() {
            vec![(Duration::ZERO, InstanceState::Running)]
        } else {
            entry
                .timeline
                .iter()
                .map(|step| (at(step.at_ms), step.state))
                .collect()
        };
        let image = match &entry.image {
            Some(image) => image.clone(),
            None => state.ids.image(),
        };
        state.ec2.instances.insert(
            entry.id.clone(),
            Box::new(InstanceRecord {
                id: entry.id.clone(),
                owner: entry.owner.clone(),
                region: entry.region.clone(),
                image,
                timeline,
                reason: entry
                    .reason
                    .as_ref()
                    .map(|reason| (at(reason.at_ms), reason.reason.clone())),
                failure_detail: entry.failure_detail.clone(),
                volumes,
                grants: entry
                    .grants
                    .iter()
                    .map(|grant| (grant.key.clone(), grant.grant.clone()))
                    .collect(),
                tags: entry.tags.clone(),
            }),
        );
    }
    state.ec2.client_tokens = file.client_tokens.clone();
    state.ec2.instance_tokens = file.instance_tokens.clone();
    Ok(())
}

fn load_scaling(state: &mut State, file: &WorldFile) -> Result<()> {
    for (index, entry) in file.launch_templates.iter().enumerate() {
        let path = format!("launch_templates[{index}]");
        if !state.iam.accounts.contains_key(&entry.owner) {
            return Err(bad(
                &format!("{path}.owner"),
                format!("account {} is not in accounts", entry.owner),
            ));
        }
        let key = crate::state::scoped(&entry.owner, &entry.region, &entry.name);
        let record = TemplateRecord {
            id: entry.id.clone(),
            name: entry.name.clone(),
            owner: entry.owner.clone(),
            region: entry.region.clone(),
            image: entry.image.clone(),
            instance_type: entry.instance_type.clone(),
            tags: entry.tags.clone(),
        };
        if state.scaling.templates.insert(key, record).is_some() {
            return Err(bad(
                &format!("{path}.name"),
                format!("launch template {} is listed twice", entry.name),
            ));
        }
    }
    state.scaling.template_tokens = file.launch_template_tokens.clone();
    for (index, entry) in file.auto_scaling_groups.iter().enumerate() {
        let path = format!("auto_scaling_groups[{index}]");
        let role = &entry.service_linked_role;
        let is_role = state
            .iam
            .accounts
            .get(&entry.owner)
            .and_then(|account| account.principals.get(role.as_str()))
            .is_some_and(|principal| principal.service_linked);
        if role.account() != &entry.owner || !is_role {
            return Err(bad(
                &format!("{path}.service_linked_role"),
                format!(
                    "{role} is not a service-linked role of account {}",
                    entry.owner
                ),
            ));
        }
        for (m, member) in entry.members.iter().enumerate() {
            if !state.ec2.instances.contains_key(member) {
                return Err(bad(
                    &format!("{path}.members[{m}]"),
                    format!("instance {member} is not in instances"),
                ));
            }
        }
        let key = crate::state::scoped(&entry.owner, &entry.region, &entry.name);
        let record = GroupRecord {
            name: entry.name.clone(),
            uuid: entry.uuid.clone(),
            owner: entry.owner.clone(),
            region: entry.region.clone(),
            template: entry.launch_template.clone(),
            min_size: entry.min_size,
            max_size: entry.max_size,
            desired: entry.desired_capacity,
            zones: entry.availability_zones.clone(),
            subnets: entry.subnets.clone(),
            role: role.clone(),
            tags: entry.tags.clone(),
            members: entry.members.clone(),
            next_attempt: entry.next_attempt_ms.map(at),
            failing_since: entry.failing_since_ms.map(at),
        };
        if state.scaling.groups.insert(key, record).is_some() {
            return Err(bad(
                &format!("{path}.name"),
                format!("group {} is listed twice", entry.name),
            ));
        }
    }
    state.scaling.activities = file
        .scaling_activities
        .iter()
        .map(|a| ActivityRecord {
            id: a.id.clone(),
            owner: a.owner.clone(),
            region: a.region.clone(),
            group: a.group.clone(),
            started_at: at(a.started_ms),
            cause: a.cause.clone(),
            instance: a.instance.clone(),
            refused: a.refused.clone(),
        })
        .collect();
    Ok(())
}

/// A key a snapshot or volume names must be in the world, in its region.
fn check_key(state: &State, key: &KeyArn, region: &Region, path: &str) -> Result<()> {
    if key.region() != region {
        return Err(bad(path, format!("{key} is not in region {region}")));
    }
    match state.kms.keys.get(key.key_id()) {
        Some(stored) if &stored.arn == key => Ok(()),
        _ => Err(bad(path, format!("key {key} is not in keys"))),
    }
}
