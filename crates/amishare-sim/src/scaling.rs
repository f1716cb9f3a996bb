//! EC2 Auto Scaling and launch templates (`docs/spec/production.md` §C1).
//!
//! A group launches **as its service-linked role**, which is an IAM role of
//! the group's account whose policy allows EC2 but no KMS key: EC2's calls
//! to KMS for the new volumes are authorized for the role exactly as for
//! any principal (key policy, IAM, grants), so a key of another account
//! works only through a grant to the role (§C1.3).
//!
//! Launches happen on the virtual clock, lazily: before every call the
//! world lets each group launch towards its desired capacity at the times
//! it would have, one activity per attempt, and again
//! [`Knobs::scaling_retry_delay`](crate::Knobs::scaling_retry_delay) after
//! an instance was lost or a launch refused. Every change to the world is a
//! call, so each launch sees the world as it stood at its time.

use std::collections::BTreeMap;
use std::time::Duration;

use amishare_core::scaling::{
    Activity, ActivityStatus, Group, GroupInstance, GroupRequest, LaunchTemplate,
    LaunchTemplateRequest, LifecycleState, ServiceLinkedRole,
};
use amishare_core::store::{InstanceState, RunInstancesRequest};
use amishare_core::{AccountId, Error, ErrorKind, PrincipalArn, Region, Result};
use amishare_policy::Policy;

use crate::state::{
    scoped, ActivityRecord, Ctx, GroupRecord, Iam, IamPrincipal, InstanceRecord, TemplateRecord,
    Who,
};

/// The tag EC2 Auto Scaling puts on the instances of a group.
const GROUP_TAG: &str = "aws:autoscaling:groupName";

/// After this long without one successful launch, AWS may suspend a
/// group's processes (§C1.6); the simulation stops launching.
const SUSPEND_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

impl Iam {
    /// Adds `role` to `account` as a service-linked role (its policy is
    /// AWS's), unless it exists; returns its ARN.
    pub(crate) fn add_service_linked_role(
        &mut self,
        account: &AccountId,
        role: &ServiceLinkedRole,
    ) -> Result<PrincipalArn> {
        let stored = self.accounts.get_mut(account).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("account {account} does not exist in the simulation"),
            )
        })?;
        let arn = role.arn(account, "aws")?;
        stored
            .principals
            .entry(arn.as_str().to_owned())
            .or_insert_with(|| IamPrincipal {
                policies: vec![Policy::parse(amishare_core::scaling::SERVICE_ROLE_POLICY)
                    .expect("the service role's policy parses")],
                service_linked: true,
            });
        Ok(arn)
    }

    /// Whether `arn` is a service-linked role of its account.
    pub(crate) fn is_service_linked(&self, arn: &PrincipalArn) -> bool {
        self.accounts
            .get(arn.account())
            .and_then(|account| account.principals.get(arn.as_str()))
            .is_some_and(|principal| principal.service_linked)
    }
}

fn validation(message: impl Into<String>) -> Error {
    Error::service(ErrorKind::InvalidInput, "ValidationError", message)
}

pub(crate) fn template_not_found() -> Error {
    Error::service(
        ErrorKind::NotFound,
        "InvalidLaunchTemplateName.NotFoundException",
        "At least one of the launch templates specified in the request does not exist.",
    )
}

/// A virtual time as an ISO 8601 UTC timestamp, counting from the epoch.
fn timestamp(at: Duration) -> String {
    let secs = at.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Whether an instance ran at some time up to `now`.
fn ever_ran(instance: &InstanceRecord, now: Duration) -> bool {
    instance
        .timeline
        .iter()
        .any(|(at, state)| *at <= now && *state == InstanceState::Running)
}

impl Ctx<'_> {
    fn authorize_scaling(&mut self, action: &'static str) -> Result<()> {
        if !self.who.is_unrestricted() {
            self.authorize_identity(action, "*").map_err(|detail| {
                Error::service(
                    ErrorKind::AccessDenied,
                    "AccessDenied",
                    format!("You are not authorized to perform this operation. {detail}"),
                )
            })?;
        }
        self.stop_if_dry_run()
    }

    fn scoped(&self, region: &Region, name: &str) -> String {
        scoped(self.who.account_id(), region, name)
    }

    // ------------------------------------------------------------ templates

    pub(crate) fn create_launch_template(
        &mut self,
        region: &Region,
        request: &LaunchTemplateRequest,
    ) -> Result<LaunchTemplate> {
        self.authorize_scaling("ec2:CreateLaunchTemplate")?;
        let name = &request.name;
        let valid = (3..=128).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "().-/_".contains(c));
        if !valid {
            return Err(Error::service(
                ErrorKind::InvalidInput,
                "InvalidLaunchTemplateName.MalformedException",
                format!("The launch template name {name:?} is malformed: 3 to 128 letters, digits and ( ) . - / _"),
            ));
        }
        if let Some(token) = &request.client_token {
            let by_token = self.scoped(region, token);
            if let Some(found) = self
                .scaling
                .template_tokens
                .get(&by_token)
                .and_then(|key| self.scaling.templates.get(key))
            {
                return Ok(template_view(found));
            }
        }
        let key = self.scoped(region, name);
        if self.scaling.templates.contains_key(&key) {
            return Err(Error::service(
                ErrorKind::Conflict,
                "InvalidLaunchTemplateName.AlreadyExistsException",
                format!("Launch template name already in use: {name}"),
            ));
        }
        let record = TemplateRecord {
            id: self.ids.launch_template(),
            name: name.clone(),
            owner: self.who.account_id().clone(),
            region: region.clone(),
            image: request.image.clone(),
            instance_type: request.instance_type.clone(),
            tags: request.tags.clone(),
        };
        let view = template_view(&record);
        if let Some(token) = &request.client_token {
            let by_token = self.scoped(region, token);
            self.scaling.template_tokens.insert(by_token, key.clone());
        }
        self.scaling.templates.insert(key, record);
        Ok(view)
    }

    pub(crate) fn describe_launch_templates(
        &mut self,
        region: &Region,
        names: &[String],
    ) -> Result<Vec<LaunchTemplate>> {
        self.authorize_scaling("ec2:DescribeLaunchTemplates")?;
        if names.is_empty() {
            let account = self.who.account_id();
            return Ok(self
                .scaling
                .templates
                .values()
                .filter(|t| &t.owner == account && &t.region == region)
                .map(template_view)
                .collect());
        }
        names
            .iter()
            .map(|name| {
                self.scaling
                    .templates
                    .get(&self.scoped(region, name))
                    .map(template_view)
                    .ok_or_else(template_not_found)
            })
            .collect()
    }

    /// The name of the caller's launch template `id` in `region`.
    pub(crate) fn template_name(&self, region: &Region, id: &str) -> Option<String> {
        let account = self.who.account_id();
        self.scaling
            .templates
            .values()
            .find(|t| t.id == id && &t.owner == account && &t.region == region)
            .map(|t| t.name.clone())
    }

    /// The caller's launch template `name` in `region`.
    pub(crate) fn launch_template(&self, region: &Region, name: &str) -> Option<LaunchTemplate> {
        self.scaling
            .templates
            .get(&self.scoped(region, name))
            .map(template_view)
    }

    /// Whether the caller has a group `name` in `region` (not deleted).
    pub(crate) fn group_exists(&self, region: &Region, name: &str) -> bool {
        self.scaling.groups.contains_key(&self.scoped(region, name))
    }

    pub(crate) fn delete_launch_template(&mut self, region: &Region, name: &str) -> Result<()> {
        self.authorize_scaling("ec2:DeleteLaunchTemplate")?;
        let key = self.scoped(region, name);
        self.scaling
            .templates
            .remove(&key)
            .ok_or_else(template_not_found)?;
        self.scaling
            .template_tokens
            .retain(|_, named| named != &key);
        Ok(())
    }

    // ------------------------------------------------------------ groups

    pub(crate) fn create_auto_scaling_group(
        &mut self,
        region: &Region,
        request: &GroupRequest,
    ) -> Result<()> {
        self.authorize_scaling("autoscaling:CreateAutoScalingGroup")?;
        let name = &request.name;
        if name.is_empty() || name.chars().count() > 255 {
            return Err(validation(format!(
                "The AutoScalingGroup name {name:?} must be 1 to 255 characters long"
            )));
        }
        let key = self.scoped(region, name);
        if self.scaling.groups.contains_key(&key) {
            return Err(Error::service(
                ErrorKind::Conflict,
                "AlreadyExists",
                format!(
                    "AutoScalingGroup by this name already exists - A group with the name {name} already exists"
                ),
            ));
        }
        let (min, max, desired) = (request.min_size, request.max_size, request.desired_capacity);
        if min > max || desired < min || desired > max {
            return Err(validation(format!(
                "Desired capacity:{desired} must be between the specified min size:{min} and max size:{max}"
            )));
        }
        if request.availability_zones.is_empty() && request.subnets.is_none() {
            return Err(validation(
                "At least one Availability Zone or VPC Subnet is required.",
            ));
        }
        if !self
            .scaling
            .templates
            .contains_key(&self.scoped(region, &request.launch_template))
        {
            return Err(validation(format!(
                "You must use a valid fully-formed launch template. The specified launch template, with template name {}, does not exist.",
                request.launch_template
            )));
        }
        let account = self.who.account_id().clone();
        let role = match &request.service_linked_role {
            Some(role) => {
                let ours = role.account() == &account
                    && role
                        .as_str()
                        .contains(":role/aws-service-role/autoscaling.amazonaws.com/");
                if !ours || !self.iam.is_service_linked(role) {
                    return Err(self
                        .knobs
                        .unknown_service_linked_role
                        .to_error(role.as_str()));
                }
                role.clone()
            }
            None => {
                // The client created it before the call if it was missing
                // and the caller may create it (`SimClient`, §C1.1).
                let default = ServiceLinkedRole::auto_scaling().arn(&account, "aws")?;
                if !self.iam.is_service_linked(&default) {
                    return Err(self
                        .knobs
                        .service_linked_role_refused
                        .to_error(default.as_str()));
                }
                default
            }
        };
        self.insert_group(region, request, key, role);
        Ok(())
    }

    fn insert_group(
        &mut self,
        region: &Region,
        request: &GroupRequest,
        key: String,
        role: PrincipalArn,
    ) {
        let record = GroupRecord {
            name: request.name.clone(),
            uuid: self.ids.uuid(),
            owner: self.who.account_id().clone(),
            region: region.clone(),
            template: request.launch_template.clone(),
            min_size: request.min_size,
            max_size: request.max_size,
            desired: request.desired_capacity,
            zones: request.availability_zones.clone(),
            subnets: request.subnets.clone(),
            role,
            tags: request.tags.clone(),
            members: Vec::new(),
            next_attempt: (request.desired_capacity > 0).then_some(self.now),
            failing_since: None,
        };
        self.scaling.groups.insert(key, record);
        self.advance_groups();
    }

    pub(crate) fn describe_auto_scaling_groups(
        &mut self,
        region: &Region,
        names: &[String],
    ) -> Result<Vec<Group>> {
        self.authorize_scaling("autoscaling:DescribeAutoScalingGroups")?;
        let account = self.who.account_id();
        if self.knobs.unknown_group_names == crate::knobs::UnknownIds::Error {
            if let Some(unknown) = names.iter().find(|name| {
                !self
                    .scaling
                    .groups
                    .contains_key(&scoped(account, region, name))
            }) {
                return Err(Error::service(
                    ErrorKind::NotFound,
                    "ValidationError",
                    format!(
                        "AutoScalingGroup name not found - AutoScalingGroup '{unknown}' not found"
                    ),
                ));
            }
        }
        Ok(self
            .scaling
            .groups
            .values()
            .filter(|g| &g.owner == account && &g.region == region)
            .filter(|g| names.is_empty() || names.contains(&g.name))
            .map(|g| self.group_view(g))
            .collect())
    }

    pub(crate) fn describe_scaling_activities(
        &mut self,
        region: &Region,
        group: &str,
    ) -> Result<Vec<Activity>> {
        self.authorize_scaling("autoscaling:DescribeScalingActivities")?;
        let account = self.who.account_id();
        Ok(self
            .scaling
            .activities
            .iter()
            .rev()
            .filter(|a| &a.owner == account && &a.region == region && a.group == group)
            .map(|a| self.activity_view(a))
            .collect())
    }

    pub(crate) fn delete_auto_scaling_group(
        &mut self,
        region: &Region,
        name: &str,
        force: bool,
    ) -> Result<()> {
        self.authorize_scaling("autoscaling:DeleteAutoScalingGroup")?;
        let key = self.scoped(region, name);
        let Some(group) = self.scaling.groups.get(&key) else {
            // Auto Scaling names an unknown group with a validation error.
            return Err(Error::service(
                ErrorKind::NotFound,
                "ValidationError",
                format!("AutoScalingGroup name not found - AutoScalingGroup '{name}' not found"),
            ));
        };
        let live: Vec<_> = group
            .members
            .iter()
            .filter(|id| {
                self.ec2
                    .instances
                    .get(*id)
                    .is_some_and(|i| i.state(self.now) != InstanceState::Terminated)
            })
            .cloned()
            .collect();
        if !live.is_empty() && !force {
            return Err(self.knobs.group_in_use.to_error(name));
        }
        // Forced: the group's instances are terminated with it.
        self.shut_down(&live);
        self.scaling.groups.remove(&key);
        Ok(())
    }

    // ------------------------------------------------------------ launching

    /// Lets every group launch towards its desired capacity up to now, each
    /// launch at its own time.
    pub(crate) fn advance_groups(&mut self) {
        if self.scaling.groups.is_empty() {
            return;
        }
        let keys: Vec<String> = self.scaling.groups.keys().cloned().collect();
        for key in keys {
            // Each round launches one instance or stops; a group below its
            // capacity launches at most once per retry delay, and a group
            // failing for a day is suspended.
            while let Some(group) = self.scaling.groups.get_mut(&key) {
                let Some(at) = group.next_attempt.filter(|at| *at <= self.now) else {
                    break;
                };
                if group
                    .failing_since
                    .is_some_and(|since| at.saturating_sub(since) > SUSPEND_AFTER)
                {
                    group.next_attempt = None;
                    break;
                }
                let live = group
                    .members
                    .iter()
                    .filter(|id| {
                        self.ec2
                            .instances
                            .get(*id)
                            .is_some_and(|i| i.state(at) != InstanceState::Terminated)
                    })
                    .count();
                if live >= group.desired as usize {
                    group.next_attempt = None;
                    break;
                }
                self.launch_for(&key, at);
            }
        }
    }

    /// One launch attempt of the group `key` at time `at`, as its role.
    fn launch_for(&mut self, key: &str, at: Duration) {
        let group = self.scaling.groups[key].clone();
        let template = self
            .scaling
            .templates
            .get(&scoped(&group.owner, &group.region, &group.template))
            .cloned();
        let launched = match template {
            None => Err(format!(
                "The specified launch template, with template name {}, does not exist",
                group.template
            )),
            Some(template) => match Who::lookup(self.iam, &group.role, &group.role) {
                None => Err(format!(
                    "The service-linked role {} does not exist",
                    group.role
                )),
                Some(who) => {
                    let mut ctx = Ctx {
                        who,
                        iam: self.iam,
                        allowed: &mut *self.allowed,
                        kms: &mut *self.kms,
                        ec2: &mut *self.ec2,
                        scaling: &mut *self.scaling,
                        ids: &mut *self.ids,
                        knobs: self.knobs,
                        eventual: &mut *self.eventual,
                        now: at,
                        dry_run: false,
                    };
                    let subnet = group
                        .subnets
                        .as_deref()
                        .and_then(|s| s.split(',').next())
                        .map(str::to_owned);
                    ctx.run_instances(
                        &group.region,
                        &RunInstancesRequest {
                            image: template.image.clone(),
                            instance_type: template.instance_type.clone(),
                            subnet,
                            kms_key: None,
                            tags: BTreeMap::from([(GROUP_TAG.to_owned(), group.name.clone())]),
                            client_token: None,
                        },
                    )
                    .map_err(|err| err.message().to_owned())
                }
            },
        };
        let live_before = group.members.len();
        let cause = format!(
            "At {} an instance was started in response to a difference between desired and actual capacity, increasing the capacity from {} to {}.",
            timestamp(at),
            live_before.min(group.desired as usize),
            group.desired
        );
        let id = self.ids.uuid();
        let retry = at + self.knobs.scaling_retry_delay;
        let delay = self.knobs.scaling_retry_delay;
        let (instance, refused, next, failed) = match launched {
            Ok(instance) => {
                let record = &self.ec2.instances[&instance.id];
                match record.timeline.last() {
                    Some((end, InstanceState::Terminated)) => {
                        (Some(instance.id), None, *end + delay, true)
                    }
                    _ => (Some(instance.id), None, at, false),
                }
            }
            Err(message) => (None, Some(message), retry, true),
        };
        self.scaling.activities.push(ActivityRecord {
            id,
            owner: group.owner.clone(),
            region: group.region.clone(),
            group: group.name.clone(),
            started_at: at,
            cause,
            instance: instance.clone(),
            refused,
        });
        let stored = self
            .scaling
            .groups
            .get_mut(key)
            .expect("the group was just read");
        stored.members.extend(instance);
        stored.next_attempt = Some(next);
        stored.failing_since = if failed {
            stored.failing_since.or(Some(at))
        } else {
            None
        };
    }

    // ------------------------------------------------------------ views

    fn group_view(&self, group: &GroupRecord) -> Group {
        let instances = group
            .members
            .iter()
            .filter_map(|id| self.ec2.instances.get(id))
            .filter_map(|instance| {
                let lifecycle_state = match instance.state(self.now) {
                    InstanceState::Terminated => return None,
                    InstanceState::Pending => LifecycleState::Pending,
                    InstanceState::ShuttingDown => LifecycleState::Terminating,
                    _ => LifecycleState::InService,
                };
                Some(GroupInstance {
                    id: instance.id.clone(),
                    lifecycle_state,
                    healthy: lifecycle_state != LifecycleState::Terminating,
                })
            })
            .collect();
        Group {
            name: group.name.clone(),
            arn: amishare_core::scaling::group_arn(
                &group.region,
                &group.owner,
                &group.uuid,
                &group.name,
            ),
            launch_template: group.template.clone(),
            min_size: group.min_size,
            max_size: group.max_size,
            desired_capacity: group.desired,
            instances,
            service_linked_role: Some(group.role.clone()),
            status: None,
            tags: group.tags.clone(),
        }
    }

    fn activity_view(&self, activity: &ActivityRecord) -> Activity {
        let base = Activity {
            id: activity.id.clone(),
            group: activity.group.clone(),
            status: ActivityStatus::InProgress,
            status_message: None,
            description: "Launching a new EC2 instance".to_owned(),
            cause: activity.cause.clone(),
            progress: 0,
            instance: activity.instance.clone(),
        };
        if let Some(message) = &activity.refused {
            let text = format!("{message}. Launching EC2 instance failed.");
            return Activity {
                status: ActivityStatus::Failed,
                description: format!("Launching a new EC2 instance.  Status Reason: {text}"),
                status_message: Some(text),
                progress: 100,
                ..base
            };
        }
        let Some(instance) = activity
            .instance
            .as_ref()
            .and_then(|id| self.ec2.instances.get(id))
        else {
            return base;
        };
        let launched = format!("Launching a new EC2 instance: {}", instance.id);
        match instance.state(self.now) {
            InstanceState::Pending => Activity {
                status: ActivityStatus::PreInService,
                description: launched,
                progress: 30,
                ..base
            },
            InstanceState::ShuttingDown | InstanceState::Terminated
                if !ever_ran(instance, self.now) =>
            {
                let reason = instance
                    .state_reason(self.now)
                    .map_or_else(|| "unknown".to_owned(), |r| r.message);
                let text = self
                    .knobs
                    .scaling_unhealthy_message
                    .replace("{reason}", &reason);
                Activity {
                    status: self.knobs.scaling_lost_instance,
                    description: format!("{launched}.  Status Reason: {text}"),
                    status_message: Some(text),
                    progress: 100,
                    ..base
                }
            }
            _ => Activity {
                status: ActivityStatus::Successful,
                description: launched,
                progress: 100,
                ..base
            },
        }
    }
}

fn template_view(record: &TemplateRecord) -> LaunchTemplate {
    LaunchTemplate {
        id: record.id.clone(),
        name: record.name.clone(),
        tags: record.tags.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::timestamp;

    #[test]
    fn virtual_times_print_as_utc_timestamps() {
        assert_eq!(timestamp(Duration::ZERO), "1970-01-01T00:00:00Z");
        assert_eq!(
            timestamp(Duration::from_secs(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
    }
}
