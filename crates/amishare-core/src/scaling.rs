//! Launching the way production launches: EC2 Auto Scaling groups and
//! launch templates in the target account, and the service-linked roles
//! they launch as (`docs/spec/production.md` §C1).
//!
//! [`ServiceLinkedRole`] names the role a launch runs as and derives its ARN
//! in one place. [`ScalingStore`] is Auto Scaling (groups and their
//! activities) plus EC2's launch templates, as one principal sees them: the
//! third store, next to [`KeyStore`](crate::store::KeyStore) and
//! [`ImageStore`](crate::store::ImageStore).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::{AccountId, ImageId, InstanceId, PrincipalArn, Region};
use crate::model::Grant;

/// A service-linked role that launches instances on an account's behalf,
/// and so needs a grant on a customer managed key of another account
/// (`docs/spec/production.md` §C1.1, §C1.8).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceLinkedRole {
    /// EC2 Auto Scaling: `AWSServiceRoleForAutoScaling`, or with a custom
    /// suffix `AWSServiceRoleForAutoScaling_<suffix>`. EKS managed node
    /// groups launch as the default one.
    AutoScaling {
        /// The custom suffix, if any.
        suffix: Option<String>,
    },
    /// EC2 Fleet: `AWSServiceRoleForEC2Fleet`.
    Ec2Fleet,
    /// Spot Instances: `AWSServiceRoleForEC2Spot`.
    Spot,
    /// Spot Fleet: `AWSServiceRoleForEC2SpotFleet` (it launches with the
    /// Spot role too).
    SpotFleet,
}

/// What a service-linked role that launches instances may do, as far as
/// amishare depends on it: EC2 instances and their tags, and passing roles to
/// EC2, but no KMS key (`AutoScalingServiceRolePolicy`, and likewise
/// `AWSEC2FleetServiceRolePolicy`: "they do not include access to your
/// customer managed keys", `docs/spec/production.md` §C1.1, §C1.8). The
/// role's policies are AWS's: nobody can change them.
pub const SERVICE_ROLE_POLICY: &str = r#"{"Version":"2012-10-17","Id":"AutoScalingServiceRolePolicy","Statement":[{"Sid":"EC2InstanceManagement","Effect":"Allow","Action":["ec2:RunInstances","ec2:TerminateInstances","ec2:DescribeInstances","ec2:DescribeImages","ec2:CreateTags"],"Resource":"*"},{"Sid":"EC2InstanceProfileManagement","Effect":"Allow","Action":"iam:PassRole","Resource":"*","Condition":{"StringLike":{"iam:PassedToService":"ec2.amazonaws.com*"}}}]}"#;

/// How the names of amishare's grants for service-linked roles begin.
pub const GRANT_NAME_PREFIX: &str = "amishare-";

/// The default Auto Scaling role.
const AUTO_SCALING_ROLE: &str = "AWSServiceRoleForAutoScaling";

impl ServiceLinkedRole {
    /// Auto Scaling's default role, which every group uses unless it names another.
    pub fn auto_scaling() -> ServiceLinkedRole {
        ServiceLinkedRole::AutoScaling { suffix: None }
    }

    /// Parses how a user names a role: `autoscaling`, `autoscaling:<suffix>`,
    /// `ec2fleet`, `spot` or `spotfleet`, or the role name itself
    /// (`AWSServiceRoleForAutoScaling_web`). A suffix follows IAM's rules: the
    /// role name stays within 64 letters, digits and `+ = , . @ _ -`.
    pub fn parse(text: &str) -> Result<ServiceLinkedRole> {
        let role = match text {
            "autoscaling" | AUTO_SCALING_ROLE => ServiceLinkedRole::auto_scaling(),
            "ec2fleet" | "AWSServiceRoleForEC2Fleet" => ServiceLinkedRole::Ec2Fleet,
            "spot" | "AWSServiceRoleForEC2Spot" => ServiceLinkedRole::Spot,
            "spotfleet" | "AWSServiceRoleForEC2SpotFleet" => ServiceLinkedRole::SpotFleet,
            other => {
                let suffix = other
                    .strip_prefix("autoscaling:")
                    .or_else(|| other.strip_prefix("AWSServiceRoleForAutoScaling_"))
                    .ok_or_else(|| {
                        Error::invalid_input(
                            "service-linked role",
                            text,
                            "expected autoscaling, autoscaling:<suffix>, ec2fleet, spot, spotfleet or a role name",
                        )
                    })?;
                if suffix.is_empty() {
                    return Err(Error::invalid_input(
                        "service-linked role",
                        text,
                        "a custom suffix has at least one character",
                    ));
                }
                ServiceLinkedRole::AutoScaling {
                    suffix: Some(suffix.to_owned()),
                }
            }
        };
        // The role's name must be one IAM takes (`docs/spec/choices.md` §D3).
        let name = role.name();
        let allowed = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
        if name.len() > 64 {
            return Err(Error::invalid_input(
                "service-linked role",
                text,
                &format!(
                    "the role name {name} has {} characters; IAM takes at most 64",
                    name.len()
                ),
            ));
        }
        if let Some(c) = name.chars().find(|c| !allowed(*c)) {
            return Err(Error::invalid_input(
                "service-linked role",
                text,
                &format!("IAM role names take letters, digits and + = , . @ _ - only, not {c:?}"),
            ));
        }
        Ok(role)
    }

    /// The service that assumes the role, e.g. `autoscaling.amazonaws.com`.
    pub fn service(&self) -> &'static str {
        match self {
            ServiceLinkedRole::AutoScaling { .. } => "autoscaling.amazonaws.com",
            ServiceLinkedRole::Ec2Fleet => "ec2fleet.amazonaws.com",
            ServiceLinkedRole::Spot => "spot.amazonaws.com",
            ServiceLinkedRole::SpotFleet => "spotfleet.amazonaws.com",
        }
    }

    /// The role's name.
    pub fn name(&self) -> String {
        match self {
            ServiceLinkedRole::AutoScaling { suffix: None } => AUTO_SCALING_ROLE.to_owned(),
            ServiceLinkedRole::AutoScaling {
                suffix: Some(suffix),
            } => format!("{AUTO_SCALING_ROLE}_{suffix}"),
            ServiceLinkedRole::Ec2Fleet => "AWSServiceRoleForEC2Fleet".to_owned(),
            ServiceLinkedRole::Spot => "AWSServiceRoleForEC2Spot".to_owned(),
            ServiceLinkedRole::SpotFleet => "AWSServiceRoleForEC2SpotFleet".to_owned(),
        }
    }

    /// The role's path and name after `role/`:
    /// `aws-service-role/<service>/<name>`.
    pub fn resource(&self) -> String {
        format!("aws-service-role/{}/{}", self.service(), self.name())
    }

    /// The role's ARN in `account`, path included:
    /// `arn:<partition>:iam::<account>:role/aws-service-role/<service>/<name>`.
    pub fn arn(&self, account: &AccountId, partition: &str) -> Result<PrincipalArn> {
        PrincipalArn::parse(&format!(
            "arn:{partition}:iam::{account}:role/{}",
            self.resource()
        ))
    }

    /// The name of the grant amishare creates for the role: the target
    /// finds it again by it, and the owner's `unshare` recognises it
    /// (`docs/spec/choices.md` §D6).
    pub fn grant_name(&self) -> String {
        format!("{GRANT_NAME_PREFIX}{}", self.name())
    }

    /// Whether `arn` names a service-linked role (its path is AWS's).
    pub fn is_service_linked(arn: &str) -> bool {
        arn.split_once(":role/aws-service-role/").is_some()
    }

    /// Whether `grant` is one `accept` created for a service-linked role: its
    /// grantee is a service-linked role of the account that issued it, and
    /// its name is [`ServiceLinkedRole::grant_name`] of that role. Only such
    /// grants are amishare's to revoke (`docs/spec/choices.md` §D6).
    pub fn made_by_amishare(grant: &Grant) -> bool {
        let Ok(grantee) = PrincipalArn::parse(&grant.grantee) else {
            return false;
        };
        let Some((_, path)) = grantee.as_str().split_once(":role/aws-service-role/") else {
            return false;
        };
        let role = path.rsplit('/').next().unwrap_or_default();
        grantee.account() == &grant.issuing_account
            && grant.name.as_deref() == Some(format!("{GRANT_NAME_PREFIX}{role}").as_str())
    }

    /// The role's ARN in `account`, in `region`'s partition.
    pub fn arn_in(&self, account: &AccountId, region: &Region) -> PrincipalArn {
        self.arn(account, region.partition())
            .expect("a parsed role and an account ID make a valid ARN")
    }
}

impl fmt::Display for ServiceLinkedRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Parameters of EC2's `CreateLaunchTemplate`, as far as amishare uses them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchTemplateRequest {
    /// The template's name, unique per account and region.
    pub name: String,
    /// The image instances launch from.
    pub image: ImageId,
    /// The instance type.
    pub instance_type: String,
    /// Tags of the template itself.
    pub tags: BTreeMap<String, String>,
    /// Makes the call idempotent: a repeat returns the template the first made.
    pub client_token: Option<String>,
}

/// A launch template as `DescribeLaunchTemplates` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchTemplate {
    /// `lt-…`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// Parameters of `CreateAutoScalingGroup`, as far as amishare uses them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRequest {
    /// The group's name, unique per account and region.
    pub name: String,
    /// The launch template's name (its `$Default` version).
    pub launch_template: String,
    /// Smallest size.
    pub min_size: u32,
    /// Largest size.
    pub max_size: u32,
    /// How many instances the group keeps running.
    pub desired_capacity: u32,
    /// Where it launches: availability zones (empty with a subnet).
    pub availability_zones: Vec<String>,
    /// Or subnets, comma-separated (`VPCZoneIdentifier`).
    pub subnets: Option<String>,
    /// The role it launches as; `None` for the default Auto Scaling role.
    pub service_linked_role: Option<PrincipalArn>,
    /// Tags of the group (not propagated to instances).
    pub tags: BTreeMap<String, String>,
}

/// Where an instance of a group is in its life (`LifecycleState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LifecycleState {
    /// Launching.
    Pending,
    /// Running and healthy: the group counts it.
    InService,
    /// Being terminated.
    Terminating,
    /// Terminated (shown until the group forgets it).
    Terminated,
}

impl fmt::Display for LifecycleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LifecycleState::Pending => "Pending",
            LifecycleState::InService => "InService",
            LifecycleState::Terminating => "Terminating",
            LifecycleState::Terminated => "Terminated",
        })
    }
}

/// An instance of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInstance {
    /// The instance.
    pub id: InstanceId,
    /// Where it is in its life.
    pub lifecycle_state: LifecycleState,
    /// `Healthy` or `Unhealthy`.
    pub healthy: bool,
}

/// An Auto Scaling group as `DescribeAutoScalingGroups` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Its name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// The launch template's name.
    pub launch_template: String,
    /// Smallest size.
    pub min_size: u32,
    /// Largest size.
    pub max_size: u32,
    /// Desired capacity.
    pub desired_capacity: u32,
    /// Its instances.
    pub instances: Vec<GroupInstance>,
    /// The role it launches as, when the answer names it.
    pub service_linked_role: Option<PrincipalArn>,
    /// `Delete in progress` while a forced delete runs.
    pub status: Option<String>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// How a scaling activity stands (`StatusCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ActivityStatus {
    /// Waiting for the instance ID.
    WaitingForInstanceId,
    /// Launched; waiting for the instance to be in service.
    PreInService,
    /// Going on.
    InProgress,
    /// Done.
    Successful,
    /// Failed: the launch was refused.
    Failed,
    /// Cancelled: an instance was launched and then lost.
    Cancelled,
}

impl ActivityStatus {
    /// Whether the activity is over.
    pub fn is_done(self) -> bool {
        matches!(
            self,
            ActivityStatus::Successful | ActivityStatus::Failed | ActivityStatus::Cancelled
        )
    }

    /// AWS's name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityStatus::WaitingForInstanceId => "WaitingForInstanceId",
            ActivityStatus::PreInService => "PreInService",
            ActivityStatus::InProgress => "InProgress",
            ActivityStatus::Successful => "Successful",
            ActivityStatus::Failed => "Failed",
            ActivityStatus::Cancelled => "Cancelled",
        }
    }

    /// Parses AWS's name of a status.
    pub fn parse(text: &str) -> Option<ActivityStatus> {
        [
            ActivityStatus::WaitingForInstanceId,
            ActivityStatus::PreInService,
            ActivityStatus::InProgress,
            ActivityStatus::Successful,
            ActivityStatus::Failed,
            ActivityStatus::Cancelled,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

impl fmt::Display for ActivityStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scaling activity (`DescribeScalingActivities`), newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// The activity's ID.
    pub id: String,
    /// The group's name.
    pub group: String,
    /// Its status.
    pub status: ActivityStatus,
    /// Why it failed or was cancelled.
    pub status_message: Option<String>,
    /// `Launching a new EC2 instance: i-…`, with the reason after a failure.
    pub description: String,
    /// What started it.
    pub cause: String,
    /// Percent done.
    pub progress: u8,
    /// The instance it launched, if it got that far.
    pub instance: Option<InstanceId>,
}

impl Activity {
    /// The cause of a failed launch in KMS's terms, as far as the status
    /// message tells it (`docs/spec/production.md` §C1.6).
    pub fn failure_cause(&self) -> Option<LaunchFailure> {
        let message = self.status_message.as_deref()?;
        if !matches!(
            self.status,
            ActivityStatus::Failed | ActivityStatus::Cancelled
        ) {
            return None;
        }
        Some(if message.contains("Client.InvalidKMSKey.InvalidState") {
            LaunchFailure::KeyState
        } else if message.contains("Client.InternalError") {
            LaunchFailure::KeyAccess
        } else if message.contains("does not exist") || message.contains("InvalidAMIID") {
            LaunchFailure::ImageNotFound
        } else {
            LaunchFailure::Other
        })
    }
}

/// What a failed Auto Scaling launch says about its cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LaunchFailure {
    /// `Client.InternalError: Client error on launch`: the role could not
    /// use a customer managed key of an encrypted volume (a missing grant).
    KeyAccess,
    /// `Client.InvalidKMSKey.InvalidState`: the key is disabled or pending
    /// deletion (or, as users report, not usable by the role).
    KeyState,
    /// The image is not visible to the account.
    ImageNotFound,
    /// Anything else.
    Other,
}

impl fmt::Display for LaunchFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LaunchFailure::KeyAccess => "the service-linked role may not use a customer managed key of the image (no grant for it on the key)",
            LaunchFailure::KeyState => "a key of the image is disabled or pending deletion, or the role may not use it",
            LaunchFailure::ImageNotFound => "the image is not shared with the account, or does not exist",
            LaunchFailure::Other => "see the activity's message",
        })
    }
}

/// EC2 Auto Scaling and EC2's launch templates as one principal sees them.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait ScalingStore: Send + Sync + fmt::Debug {
    /// `CreateLaunchTemplate` (EC2).
    async fn create_launch_template(
        &self,
        region: &Region,
        request: &LaunchTemplateRequest,
    ) -> Result<LaunchTemplate>;

    /// `DescribeLaunchTemplates` (EC2) by name; no name: every template of
    /// the caller's. An unknown name is an error, as on EC2.
    async fn describe_launch_templates(
        &self,
        region: &Region,
        names: &[String],
    ) -> Result<Vec<LaunchTemplate>>;

    /// `DeleteLaunchTemplate` (EC2) by name, with every version.
    async fn delete_launch_template(&self, region: &Region, name: &str) -> Result<()>;

    /// `CreateAutoScalingGroup`; `AlreadyExists` for a name in use.
    async fn create_auto_scaling_group(
        &self,
        region: &Region,
        request: &GroupRequest,
    ) -> Result<()>;

    /// `DescribeAutoScalingGroups` by name; no name: every group of the
    /// caller's. Unknown names are left out.
    async fn describe_auto_scaling_groups(
        &self,
        region: &Region,
        names: &[String],
    ) -> Result<Vec<Group>>;

    /// `DescribeScalingActivities` of a group, newest first, those of a
    /// deleted group included (`IncludeDeletedGroups`).
    async fn describe_scaling_activities(
        &self,
        region: &Region,
        group: &str,
    ) -> Result<Vec<Activity>>;

    /// `DeleteAutoScalingGroup`; `force` terminates its instances too.
    async fn delete_auto_scaling_group(
        &self,
        region: &Region,
        name: &str,
        force: bool,
    ) -> Result<()>;
}

/// How long an Auto Scaling smoke launch may take, and how long failed
/// activities are tolerated after a grant was just made (grants take up
/// to about five minutes to apply, `docs/spec/kms.md` §A2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupWait {
    /// How long the group may take to have an instance in service.
    pub deadline: Duration,
    /// After a grant made by this run, failed launches within this time are
    /// retried by the group, not taken as the answer.
    pub grant_settle: Duration,
}

impl Default for GroupWait {
    fn default() -> Self {
        GroupWait {
            deadline: Duration::from_secs(20 * 60),
            grant_settle: Duration::from_secs(5 * 60),
        }
    }
}

/// The ARN of a group:
/// `arn:<partition>:autoscaling:<region>:<account>:autoScalingGroup:<uuid>:autoScalingGroupName/<name>`.
pub fn group_arn(region: &Region, account: &AccountId, uuid: &str, name: &str) -> String {
    format!(
        "arn:{}:autoscaling:{region}:{account}:autoScalingGroup:{uuid}:autoScalingGroupName/{name}",
        region.partition()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_carry_the_service_path_and_the_partition() {
        let account = AccountId::parse("222222222222").unwrap();
        let cases = [
            ("autoscaling", "us-east-1", "arn:aws:iam::222222222222:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"),
            ("autoscaling:web", "ap-northeast-1", "arn:aws:iam::222222222222:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling_web"),
            ("AWSServiceRoleForAutoScaling_web", "cn-north-1", "arn:aws-cn:iam::222222222222:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling_web"),
            ("ec2fleet", "us-gov-west-1", "arn:aws-us-gov:iam::222222222222:role/aws-service-role/ec2fleet.amazonaws.com/AWSServiceRoleForEC2Fleet"),
            ("spot", "eu-west-1", "arn:aws:iam::222222222222:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot"),
            ("spotfleet", "eu-west-1", "arn:aws:iam::222222222222:role/aws-service-role/spotfleet.amazonaws.com/AWSServiceRoleForEC2SpotFleet"),
        ];
        for (text, region, arn) in cases {
            let role = ServiceLinkedRole::parse(text).unwrap();
            let region = Region::parse(region).unwrap();
            assert_eq!(role.arn_in(&account, &region).as_str(), arn, "{text}");
        }
    }

    #[test]
    fn suffixes_iam_would_refuse_are_refused() {
        for bad in [
            "autoscaling:",
            "autoscaling:has space",
            "autoscaling:way-too-long-a-suffix-for-any-role-name-of-iam",
            "lambda",
        ] {
            let err = ServiceLinkedRole::parse(bad).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{bad}");
            assert!(err.message().contains(bad), "{err}");
        }
    }

    #[test]
    fn activity_messages_map_to_causes() {
        let activity = |status, message: &str| Activity {
            id: "a".to_owned(),
            group: "g".to_owned(),
            status,
            status_message: Some(message.to_owned()),
            description: String::new(),
            cause: String::new(),
            progress: 100,
            instance: None,
        };
        let cases = [
            (ActivityStatus::Cancelled, "Instance became unhealthy while waiting for instance to be in InService state. Termination Reason: Client.InternalError: Client error on launch", Some(LaunchFailure::KeyAccess)),
            (ActivityStatus::Cancelled, "Instance became unhealthy while waiting for instance to be in InService state. Termination Reason: Client.InvalidKMSKey.InvalidState: The KMS key provided is in an incorrect state", Some(LaunchFailure::KeyState)),
            (ActivityStatus::Failed, "The image id '[ami-0123456789abcdef0]' does not exist. Launching EC2 instance failed.", Some(LaunchFailure::ImageNotFound)),
            (ActivityStatus::Failed, "Something else. Launching EC2 instance failed.", Some(LaunchFailure::Other)),
            (ActivityStatus::Successful, "Client.InternalError", None),
        ];
        for (status, message, cause) in cases {
            assert_eq!(
                activity(status, message).failure_cause(),
                cause,
                "{message}"
            );
        }
    }
}
