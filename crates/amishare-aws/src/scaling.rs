//! [`AwsScalingStore`]: amishare's [`ScalingStore`] over aws-sdk-autoscaling
//! (groups and their activities) and aws-sdk-ec2 (launch templates).

use std::collections::BTreeMap;

use amishare_core::scaling::{
    Activity, ActivityStatus, Group, GroupInstance, GroupRequest, LaunchTemplate,
    LaunchTemplateRequest, LifecycleState, ScalingStore,
};
use amishare_core::{Error, InstanceId, PrincipalArn, Region, Result};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_autoscaling::types as asg;
use aws_sdk_ec2::types as ec2;

use crate::error::{from_sdk, missing, parse};
use crate::regional::Regional;

/// EC2 Auto Scaling and EC2's launch templates as the principal of an SDK
/// configuration, one client of each per region.
pub struct AwsScalingStore {
    pub(crate) autoscaling: Regional<aws_sdk_autoscaling::Client>,
    pub(crate) ec2: Regional<aws_sdk_ec2::Client>,
}

impl AwsScalingStore {
    /// A store acting with the credentials, endpoint, retry and timeout
    /// settings of `config`; each call's region overrides the configuration's.
    pub fn new(config: &SdkConfig) -> AwsScalingStore {
        AwsScalingStore::from_conf(
            aws_sdk_autoscaling::Config::from(config),
            aws_sdk_ec2::Config::from(config),
        )
    }

    /// A store over service configurations built elsewhere (tests add mock interceptors).
    pub(crate) fn from_conf(
        autoscaling: aws_sdk_autoscaling::Config,
        ec2: aws_sdk_ec2::Config,
    ) -> AwsScalingStore {
        AwsScalingStore {
            autoscaling: Regional::new(autoscaling),
            ec2: Regional::new(ec2),
        }
    }
}

impl std::fmt::Debug for AwsScalingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsScalingStore")
            .field("autoscaling", &self.autoscaling)
            .finish_non_exhaustive()
    }
}

fn tags_of<'a>(
    pairs: impl Iterator<Item = (Option<&'a str>, Option<&'a str>)>,
) -> BTreeMap<String, String> {
    pairs
        .filter_map(|(key, value)| Some((key?.to_owned(), value.unwrap_or_default().to_owned())))
        .collect()
}

fn template(operation: &str, found: &ec2::LaunchTemplate) -> Result<LaunchTemplate> {
    Ok(LaunchTemplate {
        id: found
            .launch_template_id()
            .ok_or_else(|| missing(operation, "LaunchTemplateId"))?
            .to_owned(),
        name: found
            .launch_template_name()
            .ok_or_else(|| missing(operation, "LaunchTemplateName"))?
            .to_owned(),
        tags: tags_of(found.tags().iter().map(|t| (t.key(), t.value()))),
    })
}

fn size(value: Option<i32>) -> u32 {
    value.and_then(|v| u32::try_from(v).ok()).unwrap_or(0)
}

/// Auto Scaling's sizes are `Integer`s.
fn int(value: u32) -> Result<i32> {
    i32::try_from(value)
        .map_err(|_| Error::invalid_input("group size", &value.to_string(), "too large"))
}

#[async_trait]
impl ScalingStore for AwsScalingStore {
    async fn create_launch_template(
        &self,
        region: &Region,
        request: &LaunchTemplateRequest,
    ) -> Result<LaunchTemplate> {
        const OP: &str = "CreateLaunchTemplate";
        let tags: Vec<ec2::Tag> = request
            .tags
            .iter()
            .map(|(key, value)| ec2::Tag::builder().key(key).value(value).build())
            .collect();
        let out = self
            .ec2
            .get(region)
            .create_launch_template()
            .launch_template_name(&request.name)
            .launch_template_data(
                ec2::RequestLaunchTemplateData::builder()
                    .image_id(request.image.as_str())
                    .instance_type(ec2::InstanceType::from(request.instance_type.as_str()))
                    .build(),
            )
            .set_client_token(request.client_token.clone())
            .set_tag_specifications((!tags.is_empty()).then(|| {
                vec![ec2::TagSpecification::builder()
                    .resource_type(ec2::ResourceType::LaunchTemplate)
                    .set_tags(Some(tags))
                    .build()]
            }))
            .send()
            .await
            .map_err(|e| from_sdk(OP, &format!("{} in {region}", request.name), e))?;
        let made = out
            .launch_template()
            .ok_or_else(|| missing(OP, "LaunchTemplate"))?;
        let mut made = template(OP, made)?;
        // The answer does not always carry the tags just given.
        if made.tags.is_empty() {
            made.tags = request.tags.clone();
        }
        Ok(made)
    }

    async fn describe_launch_templates(
        &self,
        region: &Region,
        names: &[String],
    ) -> Result<Vec<LaunchTemplate>> {
        const OP: &str = "DescribeLaunchTemplates";
        let mut pages = self
            .ec2
            .get(region)
            .describe_launch_templates()
            .set_launch_template_names((!names.is_empty()).then(|| names.to_vec()))
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk(OP, &format!("in {region}"), e))?;
            for entry in page.launch_templates() {
                found.push(template(OP, entry)?);
            }
        }
        Ok(found)
    }

    async fn delete_launch_template(&self, region: &Region, name: &str) -> Result<()> {
        const OP: &str = "DeleteLaunchTemplate";
        self.ec2
            .get(region)
            .delete_launch_template()
            .launch_template_name(name)
            .send()
            .await
            .map_err(|e| from_sdk(OP, &format!("{name} in {region}"), e))?;
        Ok(())
    }

    async fn create_auto_scaling_group(
        &self,
        region: &Region,
        request: &GroupRequest,
    ) -> Result<()> {
        const OP: &str = "CreateAutoScalingGroup";
        let tags: Vec<asg::Tag> = request
            .tags
            .iter()
            .map(|(key, value)| {
                asg::Tag::builder()
                    .key(key)
                    .value(value)
                    .resource_id(&request.name)
                    .resource_type("auto-scaling-group")
                    .propagate_at_launch(false)
                    .build()
            })
            .collect();
        self.autoscaling
            .get(region)
            .create_auto_scaling_group()
            .auto_scaling_group_name(&request.name)
            .launch_template(
                asg::LaunchTemplateSpecification::builder()
                    .launch_template_name(&request.launch_template)
                    .version("$Default")
                    .build(),
            )
            .min_size(int(request.min_size)?)
            .max_size(int(request.max_size)?)
            .desired_capacity(int(request.desired_capacity)?)
            .set_availability_zones(
                (!request.availability_zones.is_empty())
                    .then(|| request.availability_zones.clone()),
            )
            .set_vpc_zone_identifier(request.subnets.clone())
            .set_service_linked_role_arn(
                request
                    .service_linked_role
                    .as_ref()
                    .map(|arn| arn.as_str().to_owned()),
            )
            .set_tags((!tags.is_empty()).then_some(tags))
            .send()
            .await
            .map_err(|e| from_sdk(OP, &format!("{} in {region}", request.name), e))?;
        Ok(())
    }

    async fn describe_auto_scaling_groups(
        &self,
        region: &Region,
        names: &[String],
    ) -> Result<Vec<Group>> {
        const OP: &str = "DescribeAutoScalingGroups";
        let mut pages = self
            .autoscaling
            .get(region)
            .describe_auto_scaling_groups()
            .set_auto_scaling_group_names((!names.is_empty()).then(|| names.to_vec()))
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk(OP, &format!("in {region}"), e))?;
            for group in page.auto_scaling_groups() {
                found.push(group_of(group)?);
            }
        }
        Ok(found)
    }

    async fn describe_scaling_activities(
        &self,
        region: &Region,
        group: &str,
    ) -> Result<Vec<Activity>> {
        const OP: &str = "DescribeScalingActivities";
        let mut pages = self
            .autoscaling
            .get(region)
            .describe_scaling_activities()
            .auto_scaling_group_name(group)
            .include_deleted_groups(true)
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk(OP, &format!("{group} in {region}"), e))?;
            for activity in page.activities() {
                found.push(activity_of(activity)?);
            }
        }
        Ok(found)
    }

    async fn delete_auto_scaling_group(
        &self,
        region: &Region,
        name: &str,
        force: bool,
    ) -> Result<()> {
        const OP: &str = "DeleteAutoScalingGroup";
        self.autoscaling
            .get(region)
            .delete_auto_scaling_group()
            .auto_scaling_group_name(name)
            .force_delete(force)
            .send()
            .await
            .map_err(|e| from_sdk(OP, &format!("{name} in {region}"), e))?;
        Ok(())
    }
}

/// A group as amishare sees it.
fn group_of(group: &asg::AutoScalingGroup) -> Result<Group> {
    const OP: &str = "DescribeAutoScalingGroups";
    let instances = group
        .instances()
        .iter()
        .map(|instance| {
            let lifecycle_state = match instance.lifecycle_state() {
                Some(asg::LifecycleState::InService) => LifecycleState::InService,
                Some(asg::LifecycleState::Terminated) => LifecycleState::Terminated,
                Some(
                    asg::LifecycleState::Terminating
                    | asg::LifecycleState::TerminatingProceed
                    | asg::LifecycleState::TerminatingWait,
                ) => LifecycleState::Terminating,
                _ => LifecycleState::Pending,
            };
            Ok(GroupInstance {
                id: parse(OP, "InstanceId", instance.instance_id(), InstanceId::parse)?,
                lifecycle_state,
                healthy: instance.health_status() != Some("Unhealthy"),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Group {
        name: group
            .auto_scaling_group_name()
            .ok_or_else(|| missing(OP, "AutoScalingGroupName"))?
            .to_owned(),
        arn: group
            .auto_scaling_group_arn()
            .unwrap_or_default()
            .to_owned(),
        launch_template: group
            .launch_template()
            .and_then(|t| t.launch_template_name())
            .unwrap_or_default()
            .to_owned(),
        min_size: size(group.min_size()),
        max_size: size(group.max_size()),
        desired_capacity: size(group.desired_capacity()),
        instances,
        service_linked_role: group
            .service_linked_role_arn()
            .map(|arn| parse(OP, "ServiceLinkedRoleARN", Some(arn), PrincipalArn::parse))
            .transpose()?,
        status: group.status().map(str::to_owned),
        tags: tags_of(group.tags().iter().map(|t| (t.key(), t.value()))),
    })
}

/// An activity as amishare sees it; its instance is read from its
/// description (`Launching a new EC2 instance: i-…`), the only place AWS
/// names it.
fn activity_of(activity: &asg::Activity) -> Result<Activity> {
    const OP: &str = "DescribeScalingActivities";
    let description = activity.description().unwrap_or_default().to_owned();
    let instance = description
        .split_once("EC2 instance: ")
        .map(|(_, rest)| rest.split(['.', ' ']).next().unwrap_or(rest))
        .and_then(|id| InstanceId::parse(id).ok());
    let code = activity
        .status_code()
        .ok_or_else(|| missing(OP, "StatusCode"))?;
    let status = ActivityStatus::parse(code.as_str()).unwrap_or(ActivityStatus::InProgress);
    Ok(Activity {
        id: activity
            .activity_id()
            .ok_or_else(|| missing(OP, "ActivityId"))?
            .to_owned(),
        group: activity
            .auto_scaling_group_name()
            .unwrap_or_default()
            .to_owned(),
        status,
        status_message: activity.status_message().map(str::to_owned),
        description,
        cause: activity.cause().unwrap_or_default().to_owned(),
        progress: activity
            .progress()
            .and_then(|p| u8::try_from(p).ok())
            .unwrap_or(0),
        instance,
    })
}
