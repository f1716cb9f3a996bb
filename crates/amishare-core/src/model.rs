//! The data that flows through [`KeyStore`](crate::store::KeyStore) and
//! [`ImageStore`](crate::store::ImageStore): keys, grants, images, snapshots,
//! instances and permissions, in AWS's vocabulary but free of any SDK type.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::id::{
    AccountId, AliasName, GrantId, ImageId, InstanceId, KeyArn, KeyId, KeyRef, OrganizationArn,
    OuArn, PrincipalArn, Region, SnapshotId, VolumeId,
};

/// Who a store acts as: the answer of STS `GetCallerIdentity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The caller's account.
    pub account: AccountId,
    /// The caller's principal ARN (for a role session, the assumed-role ARN).
    pub arn: PrincipalArn,
}

/// The lifecycle state of a KMS key (the subset amishare meets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyState {
    /// Usable.
    Enabled,
    /// Disabled: cryptographic operations and CreateGrant fail.
    Disabled,
    /// Scheduled for deletion: unusable, and gone after the waiting period.
    PendingDeletion,
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyState::Enabled => "Enabled",
            KeyState::Disabled => "Disabled",
            KeyState::PendingDeletion => "PendingDeletion",
        })
    }
}

/// Who manages a KMS key. Only customer-managed keys can be shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyManager {
    /// A customer-managed key: its key policy can name other accounts.
    Customer,
    /// An AWS-managed key such as `aws/ebs`: its policy is fixed to its own account.
    Aws,
}

/// What `DescribeKey` tells about a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMetadata {
    /// The key's ARN.
    pub arn: KeyArn,
    /// The key's state.
    pub state: KeyState,
    /// Customer- or AWS-managed.
    pub manager: KeyManager,
    /// The key's description.
    pub description: String,
}

impl KeyMetadata {
    /// The bare key ID.
    pub fn key_id(&self) -> &KeyId {
        self.arn.key_id()
    }
}

/// Parameters of `CreateKey`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateKeyRequest {
    /// The key's description.
    pub description: String,
    /// The initial key policy; `None` gives KMS's default policy (owner root, `kms:*`).
    pub policy: Option<String>,
    /// Tags for the key.
    pub tags: BTreeMap<String, String>,
}

/// A KMS grant as `ListGrants` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The grant ID.
    pub id: GrantId,
    /// The grant's name, when it was created with one.
    pub name: Option<String>,
    /// The principal the grant allows.
    pub grantee: String,
    /// The operations allowed, without the `kms:` prefix (`Decrypt`, `CreateGrant`, …).
    pub operations: Vec<String>,
    /// The account that created the grant.
    pub issuing_account: AccountId,
    /// The principal that may retire the grant, when it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring_principal: Option<String>,
    /// The key the grant is on, when the listing says (`ListRetirableGrants`
    /// lists grants of many keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyArn>,
}

/// Parameters of `CreateGrant`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateGrantRequest {
    /// The grantee principal.
    pub grantee: PrincipalArn,
    /// Operations to allow, without the `kms:` prefix.
    pub operations: Vec<String>,
    /// Idempotency name: the same name and parameters return the existing grant.
    pub name: Option<String>,
    /// The principal that may retire the grant; its account can then find
    /// the grant with `ListRetirableGrants`, with no permission on the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring_principal: Option<PrincipalArn>,
}

/// The state of an EC2 image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageState {
    /// Being created or copied.
    Pending,
    /// Ready to launch, copy and share.
    Available,
    /// Creation or copy failed; see the state reason.
    Failed,
    /// Deregistered.
    Deregistered,
}

impl fmt::Display for ImageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImageState::Pending => "pending",
            ImageState::Available => "available",
            ImageState::Failed => "failed",
            ImageState::Deregistered => "deregistered",
        })
    }
}

/// Why a resource is in its state: EC2's `StateReason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateReason {
    /// The code, e.g. `Client.InternalError`.
    pub code: String,
    /// The message, e.g. `Client.InternalError: Client error on launch`.
    pub message: String,
}

impl fmt::Display for StateReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// One EBS block device of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDevice {
    /// Device name, e.g. `/dev/xvda`.
    pub device_name: String,
    /// The snapshot behind the device.
    pub snapshot_id: SnapshotId,
    /// Size in GiB.
    pub volume_size: u32,
    /// Volume type, e.g. `gp3`.
    pub volume_type: String,
    /// Whether the snapshot is encrypted.
    pub encrypted: bool,
}

/// An EC2 image (AMI) as `DescribeImages` shows it to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The image ID.
    pub id: ImageId,
    /// The owning account.
    pub owner: AccountId,
    /// The image name.
    pub name: String,
    /// The image state.
    pub state: ImageState,
    /// Why the image is in its state, when it failed.
    pub state_reason: Option<StateReason>,
    /// Why it failed beyond EC2's state reason, when the backend can tell
    /// (the simulation names the KMS refusal behind a failed copy; EC2 does
    /// not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_cause: Option<String>,
    /// Whether the image is public.
    pub public: bool,
    /// The EBS devices.
    pub block_devices: Vec<BlockDevice>,
    /// Tags; other accounts never see the owner's tags.
    pub tags: BTreeMap<String, String>,
    /// For a copy, the image it was copied from.
    pub source_image: Option<ImageId>,
    /// For a copy, the region of the image it was copied from.
    pub source_region: Option<Region>,
}

/// The state of an EBS snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotState {
    /// Being created.
    Pending,
    /// Ready.
    Completed,
    /// Failed; see the state message.
    Error,
}

/// An EBS snapshot as `DescribeSnapshots` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The snapshot ID.
    pub id: SnapshotId,
    /// The owning account.
    pub owner: AccountId,
    /// The snapshot state.
    pub state: SnapshotState,
    /// Why the snapshot failed, if it did.
    pub state_message: Option<String>,
    /// Size in GiB.
    pub volume_size: u32,
    /// Whether it is encrypted.
    pub encrypted: bool,
    /// The full ARN of the key that encrypts it.
    pub kms_key: Option<KeyArn>,
    /// How far along it is, in percent (EC2's `Progress`), when the backend
    /// reports it: a wait for a copy estimates the copy's end from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<u8>,
}

/// Who may launch an image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LaunchPermission {
    /// One account.
    Account(AccountId),
    /// Every account of an organization.
    Organization(OrganizationArn),
    /// Every account of an organizational unit.
    OrganizationalUnit(OuArn),
    /// Everyone (`Group=all`).
    Public,
}

impl fmt::Display for LaunchPermission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchPermission::Account(id) => write!(f, "account {id}"),
            LaunchPermission::Organization(arn) => write!(f, "organization {arn}"),
            LaunchPermission::OrganizationalUnit(arn) => write!(f, "OU {arn}"),
            LaunchPermission::Public => f.write_str("everyone"),
        }
    }
}

/// Who may create volumes from (and so copy) a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumePermission {
    /// One account.
    Account(AccountId),
    /// Everyone (`Group=all`).
    Public,
}

/// Entries to add to and remove from a permission list, in one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionChange<T> {
    /// Entries to add.
    pub add: Vec<T>,
    /// Entries to remove.
    pub remove: Vec<T>,
}

impl<T> PermissionChange<T> {
    /// A change that only adds.
    pub fn add(entries: Vec<T>) -> Self {
        PermissionChange {
            add: entries,
            remove: Vec::new(),
        }
    }

    /// A change that only removes.
    pub fn remove(entries: Vec<T>) -> Self {
        PermissionChange {
            add: Vec::new(),
            remove: entries,
        }
    }
}

/// Parameters of `CreateImage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateImageRequest {
    /// The running or stopped instance to image.
    pub instance: InstanceId,
    /// The image name.
    pub name: String,
    /// Tags for the image.
    pub tags: BTreeMap<String, String>,
}

/// Parameters of `CopyImage`, called in the destination region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyImageRequest {
    /// The image to copy.
    pub source_image: ImageId,
    /// The region of the image to copy.
    pub source_region: Region,
    /// The copy's name.
    pub name: String,
    /// Whether the copy's snapshots are encrypted (`Some(false)` sends `Encrypted=false`).
    pub encrypted: Option<bool>,
    /// The key to encrypt the copy with; requires `encrypted: Some(true)`.
    pub kms_key: Option<KeyRef>,
    /// Idempotency token: a retried call returns the same copy.
    pub client_token: Option<String>,
    /// Tags for the copy.
    pub tags: BTreeMap<String, String>,
}

/// Whose images `DescribeImages` lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageOwner {
    /// The caller's own images.
    Me,
    /// One account's images.
    Account(AccountId),
}

/// Which launch permissions `DescribeImages` filters on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecutableBy {
    /// Images the caller may launch, including through its organization or OU.
    Me,
    /// Images explicitly shared with this account.
    Account(AccountId),
    /// Public images.
    All,
}

/// A `DescribeImages` query; empty lists mean "no constraint".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageQuery {
    /// Image IDs; unknown or invisible IDs are an `InvalidAMIID.NotFound` error.
    pub image_ids: Vec<ImageId>,
    /// Owners.
    pub owners: Vec<ImageOwner>,
    /// Launch permissions.
    pub executable_by: Vec<ExecutableBy>,
    /// Tag filters: every tag must match one of its values, with EC2's
    /// patterns ([`crate::filter`]); a key with no values matches any value.
    pub tags: BTreeMap<String, Vec<String>>,
}

impl ImageQuery {
    /// Whether `image` meets the query's IDs, owners and tags, as seen by
    /// `caller`. Lookups that adopt an image check it again with this: a
    /// backend that ignores a filter (LocalStack ignores some) must never
    /// make amishare reuse a stranger's image.
    pub fn matches(&self, image: &Image, caller: &AccountId) -> bool {
        (self.image_ids.is_empty() || self.image_ids.contains(&image.id))
            && (self.owners.is_empty()
                || self.owners.iter().any(|owner| match owner {
                    ImageOwner::Me => &image.owner == caller,
                    ImageOwner::Account(account) => &image.owner == account,
                }))
            && self
                .tags
                .iter()
                .all(|(key, values)| crate::filter::tag_matches(key, values, &image.tags))
    }

    /// A query for these image IDs.
    pub fn ids(ids: impl IntoIterator<Item = ImageId>) -> ImageQuery {
        ImageQuery {
            image_ids: ids.into_iter().collect(),
            ..ImageQuery::default()
        }
    }
}

/// The state of an EC2 instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    /// Starting.
    Pending,
    /// Running.
    Running,
    /// Stopping.
    Stopping,
    /// Stopped.
    Stopped,
    /// Terminating.
    ShuttingDown,
    /// Terminated.
    Terminated,
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
        })
    }
}

/// An EBS volume attached to an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachedVolume {
    /// The volume ID.
    pub volume_id: VolumeId,
    /// Device name.
    pub device_name: String,
    /// Whether the volume is encrypted.
    pub encrypted: bool,
    /// The key that encrypts it.
    pub kms_key: Option<KeyArn>,
    /// Size in GiB.
    pub size: u32,
}

/// An EC2 instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// The instance ID.
    pub id: InstanceId,
    /// The owning account.
    pub owner: AccountId,
    /// The image it was launched from.
    pub image: ImageId,
    /// Its state.
    pub state: InstanceState,
    /// Why it is in its state (set when it terminated at launch).
    pub state_reason: Option<StateReason>,
    /// Why it terminated at launch beyond EC2's state reason, when the
    /// backend can tell (the simulation names the KMS refusal of EC2's call
    /// on the launching principal's behalf; EC2 does not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_cause: Option<String>,
    /// Its EBS volumes.
    pub volumes: Vec<AttachedVolume>,
    /// Its tags (the caller's own instances only).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Parameters of `RunInstances` for one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInstancesRequest {
    /// The image to launch.
    pub image: ImageId,
    /// The instance type, e.g. `t3.micro`.
    pub instance_type: String,
    /// The subnet, where the account has no default VPC.
    pub subnet: Option<String>,
    /// Encrypt every volume with this key instead of the default.
    pub kms_key: Option<KeyRef>,
    /// Tags for the instance.
    pub tags: BTreeMap<String, String>,
    /// Makes the launch idempotent: a repeat with the same token returns
    /// the instance the first call launched.
    pub client_token: Option<String>,
}

/// The account's EBS encryption settings in a region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EbsDefaults {
    /// Whether new volumes and copies are always encrypted.
    pub encryption_by_default: bool,
    /// The default key, `alias/aws/ebs` unless changed.
    pub kms_key: KeyRef,
}

/// A key and its alias name together, for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedKey {
    /// The key's ARN.
    pub arn: KeyArn,
    /// The alias amishare used to find or create it, if any.
    pub alias: Option<AliasName>,
}
