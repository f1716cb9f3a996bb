//! The target side, the way production launches: the grant for the
//! account's service-linked role, and a smoke launch through a temporary
//! launch template and a one-instance Auto Scaling group
//! (`docs/spec/production.md` §C1, `docs/spec/choices.md` §D6).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::ec2_kms;
use crate::error::{Error, ErrorKind, FailedGroupLaunch, Result};
use crate::flow::wait::{poll_until, Pending, Poll, Schedule};
use crate::flow::{
    AcceptRequest, Flow, GrantReport, Journal, LaunchOptions, LaunchReport, TAG_SMOKE_TEST,
};
use crate::hash::fnv1a;
use crate::id::{ImageId, KeyArn, PrincipalArn, Region};
use crate::model::{Caller, CreateGrantRequest, Image, InstanceState};
use crate::scaling::{
    ActivityStatus, GroupRequest, LaunchTemplateRequest, LifecycleState, ScalingStore,
    ServiceLinkedRole,
};

impl Flow {
    /// The Auto Scaling store, behind retries.
    fn scaling(&self) -> &dyn ScalingStore {
        &self.stores
    }

    /// Creates, from the target's account, the grant on each of `keys` for
    /// each service-linked role asked for, unless an earlier run made it:
    /// the caller is the grant's retiring principal, so it finds the grant
    /// with `ListRetirableGrants` (an IAM permission of its own account, no
    /// right on the key). Returns the grants, and when the newest was made.
    pub(super) async fn service_grants(
        &self,
        request: &AcceptRequest,
        keys: &[KeyArn],
        caller: &Caller,
        journal: &Journal,
    ) -> Result<(Vec<GrantReport>, Option<Duration>)> {
        let region = &request.region;
        let mut reports = Vec::new();
        let mut made_at = None;
        if request.grants.is_empty() {
            return Ok((reports, made_at));
        }
        if keys.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "no key of image {} is known here, so no grant can be made: pass the key ARN the owner's share reported",
                    request.image
                ),
            ));
        }
        let retiring = retiring_principal(caller);
        let existing = match self.keys().list_retirable_grants(region, &retiring).await {
            Ok(grants) => grants,
            Err(err) if matches!(err.kind(), ErrorKind::AccessDenied | ErrorKind::Unsupported) => {
                journal.warn(format!(
                    "cannot look for the grants {retiring} made earlier ({err}); creating them by name, which KMS answers with the existing grant (kms:ListRetirableGrants in the target's IAM policy makes a rerun change nothing)"
                ));
                Vec::new()
            }
            Err(err) => return Err(err),
        };
        let operations: Vec<String> = ec2_kms::SERVICE_ROLE_GRANT
            .iter()
            .map(|op| (*op).to_owned())
            .collect();
        for role in &request.grants {
            let grantee = role.arn_in(&caller.account, region);
            let name = role.grant_name();
            for key in keys {
                let found = existing.iter().find(|grant| {
                    grant.key.as_ref() == Some(key)
                        && grant.grantee == grantee.as_str()
                        && grant.name.as_deref() == Some(name.as_str())
                        && ec2_kms::grant_covers(&grant.operations, &ec2_kms::SERVICE_ROLE_GRANT)
                });
                if let Some(grant) = found {
                    journal.record(
                        Some(region),
                        "create-grant",
                        key,
                        format!("grant {} for {grantee} made earlier", grant.id),
                        false,
                    );
                    reports.push(GrantReport {
                        key: key.clone(),
                        grantee: grantee.clone(),
                        grant_id: grant.id.clone(),
                        created: false,
                    });
                    continue;
                }
                let id = self
                    .keys()
                    .create_grant(
                        key,
                        &CreateGrantRequest {
                            grantee: grantee.clone(),
                            operations: operations.clone(),
                            name: Some(name.clone()),
                            retiring_principal: Some(retiring.clone()),
                        },
                    )
                    .await
                    .map_err(|err| {
                        err.context(format!(
                            "{} may not create a grant on {key} for {grantee}: the key's owner shares with --autoscaling, and the target's IAM policy allows kms:CreateGrant on the key",
                            caller.arn
                        ))
                    })?;
                made_at = Some(self.clock.now());
                journal.record(
                    Some(region),
                    "create-grant",
                    key,
                    format!(
                        "grant {id} for {grantee}: {}",
                        ec2_kms::SERVICE_ROLE_GRANT.join(", ")
                    ),
                    true,
                );
                reports.push(GrantReport {
                    key: key.clone(),
                    grantee: grantee.clone(),
                    grant_id: id,
                    created: true,
                });
            }
        }
        Ok((reports, made_at))
    }

    /// Deletes the smoke groups and launch templates of `image` an earlier
    /// accept left (it stopped before its own cleanup), found by their tag.
    pub(super) async fn end_earlier_smoke_groups(
        &self,
        region: &Region,
        image: &ImageId,
        journal: &Journal,
    ) -> Result<()> {
        let ours = |tags: &BTreeMap<String, String>| {
            tags.get(TAG_SMOKE_TEST).map(String::as_str) == Some(image.as_str())
        };
        for group in self
            .scaling()
            .describe_auto_scaling_groups(region, &[])
            .await?
        {
            if ours(&group.tags) {
                self.delete_group(
                    region,
                    &group.name,
                    journal,
                    "a smoke group an earlier accept left",
                )
                .await?;
            }
        }
        for template in self
            .scaling()
            .describe_launch_templates(region, &[])
            .await?
        {
            if ours(&template.tags) {
                self.delete_template(
                    region,
                    &template.name,
                    journal,
                    "a smoke launch template an earlier accept left",
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn delete_group(
        &self,
        region: &Region,
        name: &str,
        journal: &Journal,
        why: &str,
    ) -> Result<()> {
        match self
            .scaling()
            .delete_auto_scaling_group(region, name, true)
            .await
        {
            Ok(()) => {}
            // Gone already: a repeat after a lost answer deleted it.
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        journal.record(Some(region), "delete-auto-scaling-group", name, why, true);
        Ok(())
    }

    async fn delete_template(
        &self,
        region: &Region,
        name: &str,
        journal: &Journal,
        why: &str,
    ) -> Result<()> {
        match self.scaling().delete_launch_template(region, name).await {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        journal.record(Some(region), "delete-launch-template", name, why, true);
        Ok(())
    }

    /// Launches the image the way Auto Scaling does: a launch template and
    /// a one-instance group that launches as `role`, waits until its
    /// instance is in service or a launch fails (with the activity's message
    /// and what it means), and deletes the group (with its instance) and the
    /// template whatever happened. Failed launches within
    /// [`crate::scaling::GroupWait::grant_settle`] of a grant this run made
    /// are left to the group to retry, since a new grant may take minutes
    /// to apply.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn smoke_launch_group(
        &self,
        region: &Region,
        image: &Image,
        options: &LaunchOptions,
        role: &ServiceLinkedRole,
        caller: &Caller,
        grant_made_at: Option<Duration>,
        journal: &Journal,
    ) -> Result<LaunchReport> {
        let name = format!(
            "amishare-smoke-{:016x}",
            fnv1a(&format!(
                "smoke-group|{}|{region}|{}",
                image.id,
                self.clock.now().as_nanos()
            ))
        );
        let tags = BTreeMap::from([(TAG_SMOKE_TEST.to_owned(), image.id.to_string())]);
        self.scaling()
            .create_launch_template(
                region,
                &LaunchTemplateRequest {
                    name: name.clone(),
                    image: image.id.clone(),
                    instance_type: options.instance_type.clone(),
                    tags: tags.clone(),
                    client_token: Some(name.clone()),
                },
            )
            .await?;
        journal.record(
            Some(region),
            "create-launch-template",
            &name,
            format!("{} from {}", options.instance_type, image.id),
            true,
        );
        let (made, launched) = self
            .run_group(
                region,
                image,
                options,
                role,
                caller,
                &name,
                &tags,
                grant_made_at,
                journal,
            )
            .await;
        // Whatever happened, nothing is left running or lying around.
        let group_gone = if made {
            self.delete_group(region, &name, journal, "smoke test done")
                .await
        } else {
            Ok(())
        };
        let template_gone = self
            .delete_template(region, &name, journal, "smoke test done")
            .await;
        let report = launched?;
        group_gone?;
        template_gone?;
        Ok(report)
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_group(
        &self,
        region: &Region,
        image: &Image,
        options: &LaunchOptions,
        role: &ServiceLinkedRole,
        caller: &Caller,
        name: &str,
        tags: &BTreeMap<String, String>,
        grant_made_at: Option<Duration>,
        journal: &Journal,
    ) -> (bool, Result<LaunchReport>) {
        let default = ServiceLinkedRole::auto_scaling();
        let group = GroupRequest {
            name: name.to_owned(),
            launch_template: name.to_owned(),
            min_size: 1,
            max_size: 1,
            desired_capacity: 1,
            availability_zones: if options.subnet.is_some() {
                Vec::new()
            } else {
                vec![format!("{region}a")]
            },
            subnets: options.subnet.clone(),
            service_linked_role: (role != &default).then(|| role.arn_in(&caller.account, region)),
            tags: tags.clone(),
        };
        match self
            .scaling()
            .create_auto_scaling_group(region, &group)
            .await
        {
            Ok(()) => {}
            // A repeat after a lost answer: the group is this run's own.
            Err(err) if err.code() == Some("AlreadyExists") => {}
            Err(err) => return (false, Err(err)),
        }
        journal.record(
            Some(region),
            "create-auto-scaling-group",
            name,
            format!("one instance of {} as {role}", image.id),
            true,
        );
        let what = format!("Auto Scaling group {name} in {region}");
        let settle = self.group_wait.grant_settle;
        let waited = poll_until(
            &*self.clock,
            &self.wait,
            Schedule {
                first_delay: self.wait.instance_first_delay,
                deadline: self.group_wait.deadline,
                fresh: true,
            },
            &what,
            fnv1a(name),
            || async {
                let groups = self
                    .scaling()
                    .describe_auto_scaling_groups(region, &[name.to_owned()])
                    .await?;
                let in_service = groups
                    .iter()
                    .flat_map(|g| g.instances.iter())
                    .find(|i| i.lifecycle_state == LifecycleState::InService);
                if let Some(instance) = in_service {
                    return Ok(Poll::Ready(instance.id.clone()));
                }
                let activities = self
                    .scaling()
                    .describe_scaling_activities(region, name)
                    .await?;
                let failed = activities.iter().find(|a| {
                    matches!(a.status, ActivityStatus::Failed | ActivityStatus::Cancelled)
                });
                let Some(failed) = failed else {
                    return Ok(Poll::Pending(Pending::Text("launching")));
                };
                let settling =
                    grant_made_at.is_some_and(|at| self.clock.now().saturating_sub(at) < settle);
                if settling {
                    return Ok(Poll::Pending(Pending::Text(
                        "a launch failed, and the grant made just now may not apply yet",
                    )));
                }
                Err(Error::group_launch_failed(FailedGroupLaunch {
                    region: region.clone(),
                    image: image.id.clone(),
                    group: name.to_owned(),
                    role: role.clone(),
                    activity: failed.id.clone(),
                    status: failed.status,
                    status_message: failed.status_message.clone(),
                    instance: failed.instance.clone(),
                    cause: failed.failure_cause(),
                }))
            },
        )
        .await;
        let instance = match waited {
            Ok(instance) => instance,
            Err(err) => return (true, Err(err)),
        };
        journal.record(
            Some(region),
            "wait-auto-scaling-group",
            &instance,
            "InService",
            false,
        );
        (
            true,
            Ok(LaunchReport {
                instance,
                group: Some(name.to_owned()),
                state: InstanceState::Running,
                terminated_after: true,
            }),
        )
    }
}

/// The retiring principal the target names on its grants: itself, or for
/// a role session its role, so that later sessions find the grant too.
fn retiring_principal(caller: &Caller) -> PrincipalArn {
    caller.arn.as_policy_principal()
}
