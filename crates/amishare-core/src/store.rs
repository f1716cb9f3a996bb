//! What backend authors implement: the store traits [`KeyStore`] (KMS) and
//! [`ImageStore`] (EC2), the model types their calls take and answer, and
//! [`Clock`]; and [`Stores`], one principal's stores together. Auto Scaling's
//! store is [`crate::scaling::ScalingStore`], key administration
//! [`crate::key_admin::KeyAdmin`].
//!
//! Library users who only run a [`crate::Flow`] need [`Stores`] and
//! [`Clock`] (both also at the crate root) and the backend's constructor.
//!
//! A store acts as one principal: every call is made with that principal's
//! credentials and is authorized as that principal. Calls take the region
//! explicitly because keys, images and permissions are all regional.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::id::{
    AliasName, GrantId, ImageId, InstanceId, KeyArn, KeyId, KeyRef, PrincipalArn, Region,
    SnapshotId,
};
pub use crate::model::{
    AttachedVolume, BlockDevice, Caller, CopyImageRequest, CreateGrantRequest, CreateImageRequest,
    CreateKeyRequest, EbsDefaults, ExecutableBy, Grant, Image, ImageOwner, ImageQuery, ImageState,
    Instance, InstanceState, KeyManager, KeyMetadata, KeyState, LaunchPermission, NamedKey,
    PermissionChange, RunInstancesRequest, Snapshot, SnapshotState, StateReason, VolumePermission,
};

/// KMS as one principal sees it.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait KeyStore: Send + Sync + Debug {
    /// Who this store acts as (STS `GetCallerIdentity`).
    async fn caller(&self) -> Result<Caller>;

    /// Creates a symmetric customer-managed key in `region`.
    async fn create_key(&self, region: &Region, request: &CreateKeyRequest) -> Result<KeyMetadata>;

    /// Describes a key. Across accounts only a key ARN or alias ARN works.
    async fn describe_key(&self, region: &Region, key: &KeyRef) -> Result<KeyMetadata>;

    /// Points a new alias at a customer-managed key of the caller's account.
    async fn create_alias(&self, region: &Region, alias: &AliasName, key: &KeyId) -> Result<()>;

    /// Reads the key policy (owner account only).
    async fn get_key_policy(&self, key: &KeyArn) -> Result<String>;

    /// Replaces the key policy (owner account only; subject to the lockout check).
    async fn put_key_policy(&self, key: &KeyArn, policy: &str) -> Result<()>;

    /// Lists the grants on a key.
    async fn list_grants(&self, key: &KeyArn) -> Result<Vec<Grant>>;

    /// Creates a grant on a key.
    async fn create_grant(&self, key: &KeyArn, request: &CreateGrantRequest) -> Result<GrantId>;

    /// The keys of the caller's account in `region` (`ListKeys`, every
    /// page), or `None` when the backend cannot list keys. With
    /// [`KeyStore::list_resource_tags`] it finds a key that a run created but
    /// stopped before naming.
    async fn list_keys(&self, region: &Region) -> Result<Option<Vec<KeyArn>>> {
        let _ = region;
        Ok(None)
    }

    /// A key's tags (`ListResourceTags`; the caller's own keys only).
    async fn list_resource_tags(&self, key: &KeyArn) -> Result<BTreeMap<String, String>> {
        Err(crate::error::Error::new(
            crate::error::ErrorKind::Unsupported,
            format!("listing the tags of {key} is not supported by this backend"),
        ))
    }

    /// Revokes a grant.
    async fn revoke_grant(&self, key: &KeyArn, grant: &GrantId) -> Result<()>;

    /// The grants in `region` that `retiring` may retire, on keys of any
    /// account (`ListRetirableGrants`, every page). It needs only an IAM
    /// permission in the caller's own account, so a target finds the grants
    /// it made on another account's key without any right on that key.
    async fn list_retirable_grants(
        &self,
        region: &Region,
        retiring: &PrincipalArn,
    ) -> Result<Vec<Grant>> {
        let _ = region;
        Err(crate::error::Error::new(
            crate::error::ErrorKind::Unsupported,
            format!("listing the grants {retiring} may retire is not supported by this backend"),
        ))
    }
}

/// EC2 images, snapshots and instances as one principal sees them.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait ImageStore: Send + Sync + Debug {
    /// Describes instances by ID.
    async fn describe_instances(
        &self,
        region: &Region,
        ids: &[InstanceId],
    ) -> Result<Vec<Instance>>;

    /// Creates an image from an instance; the image starts `pending`.
    async fn create_image(&self, region: &Region, request: &CreateImageRequest) -> Result<ImageId>;

    /// Copies an image into `region`; the copy starts `pending` and may later go `failed`.
    async fn copy_image(&self, region: &Region, request: &CopyImageRequest) -> Result<ImageId>;

    /// Lists the images visible to the caller that match the query.
    async fn describe_images(&self, region: &Region, query: &ImageQuery) -> Result<Vec<Image>>;

    /// Describes snapshots by ID; the key ARN is only shown to those who can see the snapshot.
    async fn describe_snapshots(
        &self,
        region: &Region,
        ids: &[SnapshotId],
    ) -> Result<Vec<Snapshot>>;

    /// Adds and removes launch permissions on an image the caller owns.
    async fn modify_launch_permission(
        &self,
        region: &Region,
        image: &ImageId,
        change: &PermissionChange<LaunchPermission>,
    ) -> Result<()>;

    /// Lists an image's launch permissions.
    async fn describe_launch_permission(
        &self,
        region: &Region,
        image: &ImageId,
    ) -> Result<Vec<LaunchPermission>>;

    /// Adds and removes create-volume permissions on a snapshot the caller owns.
    async fn modify_create_volume_permission(
        &self,
        region: &Region,
        snapshot: &SnapshotId,
        change: &PermissionChange<VolumePermission>,
    ) -> Result<()>;

    /// Lists a snapshot's create-volume permissions.
    async fn describe_create_volume_permission(
        &self,
        region: &Region,
        snapshot: &SnapshotId,
    ) -> Result<Vec<VolumePermission>>;

    /// Launches one instance; it starts `pending` and may terminate at launch.
    async fn run_instances(
        &self,
        region: &Region,
        request: &RunInstancesRequest,
    ) -> Result<Instance>;

    /// Terminates instances.
    async fn terminate_instances(&self, region: &Region, ids: &[InstanceId]) -> Result<()>;

    /// Deregisters an image, and deletes its snapshots if asked.
    async fn deregister_image(
        &self,
        region: &Region,
        image: &ImageId,
        delete_snapshots: bool,
    ) -> Result<()>;

    /// Deletes a snapshot.
    async fn delete_snapshot(&self, region: &Region, snapshot: &SnapshotId) -> Result<()>;

    /// The account's EBS encryption-by-default setting and default key in `region`.
    async fn ebs_defaults(&self, region: &Region) -> Result<EbsDefaults>;
}

/// One principal's stores: KMS, EC2 and, where the backend has them, EC2
/// Auto Scaling and key administration. The one bundle the flow ([`Flow::over`](crate::Flow::over)),
/// the doctor's sides ([`Doctor::with_owner`](crate::diagnose::Doctor::with_owner))
/// and the conformance suite's parties take.
///
/// A backend whose one value is every store (the simulation's `SimClient`)
/// makes it with [`Stores::of`]; the AWS backend's are separate values, made
/// with [`Stores::new`].
#[derive(Debug, Clone)]
pub struct Stores {
    /// KMS (and STS).
    pub keys: Arc<dyn KeyStore>,
    /// EC2.
    pub images: Arc<dyn ImageStore>,
    /// EC2 Auto Scaling and launch templates, where the backend has them.
    pub scaling: Option<Arc<dyn crate::scaling::ScalingStore>>,
    /// Key administration (enabling, disabling and deleting keys), where
    /// the backend has it. The flow never uses it.
    pub key_admin: Option<Arc<dyn crate::key_admin::KeyAdmin>>,
}

impl Stores {
    /// KMS and EC2, without Auto Scaling.
    pub fn new(keys: Arc<dyn KeyStore>, images: Arc<dyn ImageStore>) -> Stores {
        Stores {
            keys,
            images,
            scaling: None,
            key_admin: None,
        }
    }

    /// One value that is both the key store and the image store.
    pub fn of<S: KeyStore + ImageStore + 'static>(stores: S) -> Stores {
        let stores = Arc::new(stores);
        Stores::new(stores.clone(), stores)
    }

    /// Adds Auto Scaling.
    pub fn with_scaling(mut self, scaling: Arc<dyn crate::scaling::ScalingStore>) -> Stores {
        self.scaling = Some(scaling);
        self
    }

    /// Adds key administration.
    pub fn with_key_admin(mut self, key_admin: Arc<dyn crate::key_admin::KeyAdmin>) -> Stores {
        self.key_admin = Some(key_admin);
        self
    }
}

/// Time, so that waits run on wall time against AWS and on virtual time in the simulation.
#[async_trait]
pub trait Clock: Send + Sync + Debug {
    /// Time elapsed since the clock's epoch.
    fn now(&self) -> Duration;

    /// Waits for `duration`.
    async fn sleep(&self, duration: Duration);
}
