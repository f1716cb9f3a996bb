//! [`SimClient`]: KMS, EC2 and STS as one principal sees them.

use std::collections::BTreeMap;
use std::fmt;

use amishare_core::ops::{Operation, Service};
use amishare_core::scaling::{
    Activity, Group, GroupRequest, LaunchTemplate, LaunchTemplateRequest, ScalingStore,
    ServiceLinkedRole,
};
use amishare_core::store::{
    Caller, CopyImageRequest, CreateGrantRequest, CreateImageRequest, CreateKeyRequest,
    EbsDefaults, Grant, Image, ImageQuery, ImageStore, Instance, KeyMetadata, KeyStore,
    LaunchPermission, PermissionChange, RunInstancesRequest, Snapshot, VolumePermission,
};
use amishare_core::{
    AliasName, Error, ErrorKind, GrantId, ImageId, InstanceId, KeyArn, KeyId, KeyRef, PrincipalArn,
    Region, Result, SnapshotId,
};
use async_trait::async_trait;

use crate::log::CallRecord;
use crate::state::{Ctx, Iam, State, Who};
use crate::world::World;

/// A principal's view of the world: implements both
/// [`KeyStore`] and [`ImageStore`], authorizing every call as that
/// principal, and records every call in the world's call log.
///
/// Get one with [`World::client`]. Cloning is cheap.
#[derive(Clone)]
pub struct SimClient {
    world: World,
    arn: PrincipalArn,
    /// Whose identity policies apply: the principal itself, or the role of a
    /// role session.
    identity: PrincipalArn,
    /// EC2's `DryRun`: see [`SimClient::dry_run`].
    dry_run: bool,
}

impl fmt::Debug for SimClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimClient")
            .field("principal", &self.arn.as_str())
            .finish()
    }
}

impl SimClient {
    pub(crate) fn new(world: World, arn: PrincipalArn, identity: PrincipalArn) -> SimClient {
        SimClient {
            world,
            arn,
            identity,
            dry_run: false,
        }
    }

    /// This principal making EC2 calls with `DryRun`: each call is
    /// authorized exactly as without it, then stops before any effect with
    /// `DryRunOperation` (allowed) or `UnauthorizedOperation` (refused), as
    /// EC2 answers (`docs/spec/ec2.md` §B16). Calls to other services are
    /// refused, since they have no dry run.
    pub fn dry_run(&self) -> SimClient {
        SimClient {
            dry_run: true,
            ..self.clone()
        }
    }

    /// The principal this client acts as.
    pub fn principal(&self) -> &PrincipalArn {
        &self.arn
    }

    /// The world this client acts in.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// Runs one operation as this principal and records it; whether it
    /// mutates comes from the operation table.
    pub(crate) fn call<T>(
        &self,
        operation: Operation,
        region: Option<&Region>,
        run: impl FnOnce(&mut Ctx<'_>) -> Result<T>,
    ) -> Result<T> {
        self.call_after(operation, region, |_, _| Ok(None), run)
    }

    /// `CreateAutoScalingGroup`: `run` creates the group, after the first
    /// group that names no role has created the default one, if the caller
    /// may (`docs/spec/production.md` §C1.1).
    pub(crate) fn create_group_with<T>(
        &self,
        region: &Region,
        request: &GroupRequest,
        run: impl FnOnce(&mut Ctx<'_>) -> Result<T>,
    ) -> Result<T> {
        self.call_after(
            Operation::CreateAutoScalingGroup,
            Some(region),
            |iam, who| {
                if request.service_linked_role.is_some() {
                    return Ok(None);
                }
                let role = ServiceLinkedRole::auto_scaling().arn(who.account_id(), "aws")?;
                if iam.is_service_linked(&role) {
                    return Ok(None);
                }
                let may = who.is_unrestricted()
                    || crate::kms::identity_allows(who, "iam:CreateServiceLinkedRole", "*");
                Ok(may.then_some(role))
            },
            run,
        )
    }

    /// [`SimClient::call`] with a step that may change IAM first, for an
    /// operation that creates a role as it goes (as the first Auto Scaling
    /// group creates the service-linked role).
    fn call_after<T>(
        &self,
        operation: Operation,
        region: Option<&Region>,
        setup: impl FnOnce(&Iam, &Who<'_>) -> Result<Option<PrincipalArn>>,
        run: impl FnOnce(&mut Ctx<'_>) -> Result<T>,
    ) -> Result<T> {
        if self.dry_run && operation.service() != Service::Ec2 {
            return Err(Error::service(
                ErrorKind::Unsupported,
                "UnsupportedOperation",
                format!("{operation} has no dry run"),
            ));
        }
        let now = self.world.now();
        let mut guard = self.world.lock();
        let state = &mut *guard;
        let State {
            knobs,
            ids,
            iam,
            allowed,
            kms,
            ec2,
            scaling,
            eventual,
            log,
        } = state;
        let made = match Who::lookup(iam, &self.arn, &self.identity) {
            Some(who) => setup(iam, &who),
            None => Ok(None),
        };
        let result = made.and_then(|role| {
            if let Some(role) = role {
                iam.add_service_linked_role(role.account(), &ServiceLinkedRole::auto_scaling())?;
                allowed.clear();
            }
            match Who::lookup(iam, &self.arn, &self.identity) {
                Some(who) => {
                    let mut ctx = Ctx {
                        who,
                        iam,
                        allowed,
                        kms,
                        ec2,
                        scaling,
                        ids,
                        knobs,
                        eventual,
                        now,
                        dry_run: self.dry_run,
                    };
                    ctx.advance_groups();
                    match run(&mut ctx) {
                        // Every EC2 operation authorizes before its effect,
                        // so a dry run never gets here.
                        Ok(_) if self.dry_run => Err(Error::service(
                            ErrorKind::Unsupported,
                            "UnsupportedOperation",
                            format!("{operation} has no dry run in the simulation"),
                        )),
                        result => result,
                    }
                }
                None => Err(Error::new(
                    ErrorKind::NotFound,
                    format!("principal {} does not exist in the simulation", self.arn),
                )),
            }
        });
        // A dry run changes nothing, whatever the operation.
        let mutating = operation.is_mutating() && !self.dry_run;
        log.total += 1;
        if mutating {
            log.mutating += 1;
        }
        if knobs.record_calls {
            log.records.push(CallRecord {
                principal: self.arn.clone(),
                region: region.cloned(),
                operation: operation.action(),
                mutating,
                error: result
                    .as_ref()
                    .err()
                    .map(|err| err.code().unwrap_or("Error").to_owned()),
            });
        }
        tracing::trace!(
            operation = operation.action(),
            principal = self.arn.as_str(),
            ok = result.is_ok(),
            "simulated call"
        );
        result
    }
}

#[async_trait]
impl KeyStore for SimClient {
    async fn caller(&self) -> Result<Caller> {
        self.call(Operation::GetCallerIdentity, None, |ctx| {
            Ok(Caller {
                account: ctx.who.account_id().clone(),
                arn: self.arn.clone(),
            })
        })
    }

    async fn create_key(&self, region: &Region, request: &CreateKeyRequest) -> Result<KeyMetadata> {
        self.call(Operation::CreateKey, Some(region), |ctx| {
            ctx.create_key(region, request)
        })
    }

    async fn describe_key(&self, region: &Region, key: &KeyRef) -> Result<KeyMetadata> {
        self.call(Operation::DescribeKey, Some(region), |ctx| {
            ctx.describe_key(region, key)
        })
    }

    async fn create_alias(&self, region: &Region, alias: &AliasName, key: &KeyId) -> Result<()> {
        self.call(Operation::CreateAlias, Some(region), |ctx| {
            ctx.create_alias(region, alias, key)
        })
    }

    async fn get_key_policy(&self, key: &KeyArn) -> Result<String> {
        self.call(Operation::GetKeyPolicy, Some(key.region()), |ctx| {
            ctx.get_key_policy(key)
        })
    }

    async fn put_key_policy(&self, key: &KeyArn, policy: &str) -> Result<()> {
        self.call(Operation::PutKeyPolicy, Some(key.region()), |ctx| {
            ctx.put_key_policy(key, policy)
        })
    }

    async fn list_grants(&self, key: &KeyArn) -> Result<Vec<Grant>> {
        self.call(Operation::ListGrants, Some(key.region()), |ctx| {
            ctx.list_grants(key)
        })
    }

    async fn list_keys(&self, region: &Region) -> Result<Option<Vec<KeyArn>>> {
        self.call(Operation::ListKeys, Some(region), |ctx| {
            ctx.list_keys(region).map(Some)
        })
    }

    async fn list_resource_tags(&self, key: &KeyArn) -> Result<BTreeMap<String, String>> {
        self.call(Operation::ListResourceTags, Some(key.region()), |ctx| {
            ctx.list_resource_tags(key)
        })
    }

    async fn create_grant(&self, key: &KeyArn, request: &CreateGrantRequest) -> Result<GrantId> {
        self.call(Operation::CreateGrant, Some(key.region()), |ctx| {
            ctx.create_grant(key, request)
        })
    }

    async fn revoke_grant(&self, key: &KeyArn, grant: &GrantId) -> Result<()> {
        self.call(Operation::RevokeGrant, Some(key.region()), |ctx| {
            ctx.revoke_grant(key, grant)
        })
    }

    async fn list_retirable_grants(
        &self,
        region: &Region,
        retiring: &PrincipalArn,
    ) -> Result<Vec<Grant>> {
        self.call(Operation::ListRetirableGrants, Some(region), |ctx| {
            ctx.list_retirable_grants(region, retiring)
        })
    }
}

#[async_trait]
impl ImageStore for SimClient {
    async fn describe_instances(
        &self,
        region: &Region,
        ids: &[InstanceId],
    ) -> Result<Vec<Instance>> {
        self.call(Operation::DescribeInstances, Some(region), |ctx| {
            ctx.describe_instances(region, ids)
        })
    }

    async fn create_image(&self, region: &Region, request: &CreateImageRequest) -> Result<ImageId> {
        self.call(Operation::CreateImage, Some(region), |ctx| {
            ctx.create_image(region, request)
        })
    }

    async fn copy_image(&self, region: &Region, request: &CopyImageRequest) -> Result<ImageId> {
        self.call(Operation::CopyImage, Some(region), |ctx| {
            ctx.copy_image(region, request)
        })
    }

    async fn describe_images(&self, region: &Region, query: &ImageQuery) -> Result<Vec<Image>> {
        self.call(Operation::DescribeImages, Some(region), |ctx| {
            ctx.describe_images(region, query)
        })
    }

    async fn describe_snapshots(
        &self,
        region: &Region,
        ids: &[SnapshotId],
    ) -> Result<Vec<Snapshot>> {
        self.call(Operation::DescribeSnapshots, Some(region), |ctx| {
            ctx.describe_snapshots(region, ids)
        })
    }

    async fn modify_launch_permission(
        &self,
        region: &Region,
        image: &ImageId,
        change: &PermissionChange<LaunchPermission>,
    ) -> Result<()> {
        self.call(Operation::ModifyImageAttribute, Some(region), |ctx| {
            ctx.modify_launch_permission(region, image, change)
        })
    }

    async fn describe_launch_permission(
        &self,
        region: &Region,
        image: &ImageId,
    ) -> Result<Vec<LaunchPermission>> {
        self.call(Operation::DescribeImageAttribute, Some(region), |ctx| {
            ctx.describe_launch_permission(region, image)
        })
    }

    async fn modify_create_volume_permission(
        &self,
        region: &Region,
        snapshot: &SnapshotId,
        change: &PermissionChange<VolumePermission>,
    ) -> Result<()> {
        self.call(Operation::ModifySnapshotAttribute, Some(region), |ctx| {
            ctx.modify_create_volume_permission(region, snapshot, change)
        })
    }

    async fn describe_create_volume_permission(
        &self,
        region: &Region,
        snapshot: &SnapshotId,
    ) -> Result<Vec<VolumePermission>> {
        self.call(Operation::DescribeSnapshotAttribute, Some(region), |ctx| {
            ctx.describe_create_volume_permission(region, snapshot)
        })
    }

    async fn run_instances(
        &self,
        region: &Region,
        request: &RunInstancesRequest,
    ) -> Result<Instance> {
        self.call(Operation::RunInstances, Some(region), |ctx| {
            ctx.run_instances(region, request)
        })
    }

    async fn terminate_instances(&self, region: &Region, ids: &[InstanceId]) -> Result<()> {
        self.call(Operation::TerminateInstances, Some(region), |ctx| {
            ctx.terminate_instances(region, ids)
        })
    }

    async fn deregister_image(
        &self,
        region: &Region,
        image: &ImageId,
        delete_snapshots: bool,
    ) -> Result<()> {
        self.call(Operation::DeregisterImage, Some(region), |ctx| {
            ctx.deregister_image(region, image, delete_snapshots)
        })
    }

    async fn delete_snapshot(&self, region: &Region, snapshot: &SnapshotId) -> Result<()> {
        self.call(Operation::DeleteSnapshot, Some(region), |ctx| {
            ctx.delete_snapshot(region, snapshot)
        })
    }

    async fn ebs_defaults(&self, region: &Region) -> Result<EbsDefaults> {
        self.call(Operation::GetEbsEncryptionByDefault, Some(region), |ctx| {
            ctx.ebs_defaults(region)
        })
    }
}

#[async_trait]
impl ScalingStore for SimClient {
    async fn create_launch_template(
        &self,
        region: &Region,
        request: &LaunchTemplateRequest,
    ) -> Result<LaunchTemplate> {
        self.call(Operation::CreateLaunchTemplate, Some(region), |ctx| {
            ctx.create_launch_template(region, request)
        })
    }

    async fn describe_launch_templates(
        &self,
        region: &Region,
        names: &[String],
    ) -> Result<Vec<LaunchTemplate>> {
        self.call(Operation::DescribeLaunchTemplates, Some(region), |ctx| {
            ctx.describe_launch_templates(region, names)
        })
    }

    async fn delete_launch_template(&self, region: &Region, name: &str) -> Result<()> {
        self.call(Operation::DeleteLaunchTemplate, Some(region), |ctx| {
            ctx.delete_launch_template(region, name)
        })
    }

    async fn create_auto_scaling_group(
        &self,
        region: &Region,
        request: &GroupRequest,
    ) -> Result<()> {
        self.create_group_with(region, request, |ctx| {
            ctx.create_auto_scaling_group(region, request)
        })
    }

    async fn describe_auto_scaling_groups(
        &self,
        region: &Region,
        names: &[String],
    ) -> Result<Vec<Group>> {
        self.call(Operation::DescribeAutoScalingGroups, Some(region), |ctx| {
            ctx.describe_auto_scaling_groups(region, names)
        })
    }

    async fn describe_scaling_activities(
        &self,
        region: &Region,
        group: &str,
    ) -> Result<Vec<Activity>> {
        self.call(Operation::DescribeScalingActivities, Some(region), |ctx| {
            ctx.describe_scaling_activities(region, group)
        })
    }

    async fn delete_auto_scaling_group(
        &self,
        region: &Region,
        name: &str,
        force: bool,
    ) -> Result<()> {
        self.call(Operation::DeleteAutoScalingGroup, Some(region), |ctx| {
            ctx.delete_auto_scaling_group(region, name, force)
        })
    }
}
