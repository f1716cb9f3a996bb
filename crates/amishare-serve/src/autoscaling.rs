//! EC2 Auto Scaling over the query protocol (`Action=…&Version=2011-01-01`,
//! `docs/spec/production.md` §C1.7), and EC2's launch-template actions:
//! each request becomes one call of the caller's [`SimClient`], and its
//! result an XML answer with the services' element names.

use std::collections::BTreeMap;

use amishare_core::scaling::{
    Activity, Group, GroupRequest, LaunchTemplate, LaunchTemplateRequest, ScalingStore,
};
use amishare_core::{PrincipalArn, Region};
use amishare_sim::{api, SimClient};

use crate::ec2::{parse_image_id, tags};
use crate::query::Params;
use crate::wire::{invalid_value, missing_parameter, Service, WireError};
use crate::xml::Xml;

/// The Auto Scaling actions this server answers.
pub(crate) const ACTIONS: &[&str] = &[
    "CreateAutoScalingGroup",
    "DeleteAutoScalingGroup",
    "DescribeAutoScalingGroups",
    "DescribeScalingActivities",
];

/// Whether an Auto Scaling action answers with a `<ActionResult>` element.
pub(crate) fn has_result(action: &str) -> bool {
    action.starts_with("Describe")
}

fn sim(service: Service) -> impl Fn(amishare_core::Error) -> WireError {
    move |err| WireError::from_sim(service, &err)
}

fn validation(message: impl Into<String>) -> WireError {
    WireError::new("ValidationError", message)
}

/// A required whole number of an Auto Scaling request.
fn size(params: &Params, name: &str) -> Result<u32, WireError> {
    let value = params
        .get(name)
        .ok_or_else(|| validation(format!("1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null")))?;
    value
        .parse()
        .map_err(|_| validation(format!("Value '{value}' at '{name}' failed to satisfy constraint: Member must be a whole number")))
}

/// Runs one Auto Scaling action as `client` in `region`, writing the
/// result's elements to `out`.
pub(crate) async fn handle(
    client: &SimClient,
    region: &Region,
    action: &str,
    params: &Params,
    out: &mut Xml,
) -> Result<(), WireError> {
    match action {
        "CreateAutoScalingGroup" => create_auto_scaling_group(client, region, params, out).await,
        "DescribeAutoScalingGroups" => {
            describe_auto_scaling_groups(client, region, params, out).await
        }
        "DescribeScalingActivities" => {
            describe_scaling_activities(client, region, params, out).await
        }
        "DeleteAutoScalingGroup" => delete_auto_scaling_group(client, region, params, out).await,
        _ => Err(WireError::new(
            "InvalidAction",
            format!("Could not find operation {action} for version 2011-01-01"),
        )),
    }
}

/// `CreateAutoScalingGroup`.
async fn create_auto_scaling_group(
    client: &SimClient,
    region: &Region,
    params: &Params,
    _out: &mut Xml,
) -> Result<(), WireError> {
    let name = params
            .get("AutoScalingGroupName")
            .ok_or_else(|| validation("1 validation error detected: Value null at 'autoScalingGroupName' failed to satisfy constraint: Member must not be null"))?;
    let template = match (
        params.get("LaunchTemplate.LaunchTemplateName"),
        params.get("LaunchTemplate.LaunchTemplateId"),
    ) {
        (Some(name), None) => api::TemplateRef::Name(name.to_owned()),
        (None, Some(id)) => api::TemplateRef::Id(id.to_owned()),
        _ => {
            return Err(validation(
                "Valid requests must contain either launchTemplateId or LaunchTemplateName",
            ))
        }
    };
    if let Some(version) = params.get("LaunchTemplate.Version") {
        if !matches!(version, "$Default" | "$Latest" | "1") {
            return Err(validation(format!(
                "The simulation keeps one version of each launch template, not {version}"
            )));
        }
    }
    for unmodelled in ["LaunchConfigurationName", "InstanceId"] {
        if params.get(unmodelled).is_some() {
            return Err(validation(format!(
                "The simulation launches from launch templates only, not {unmodelled}"
            )));
        }
    }
    if !params.members("MixedInstancesPolicy").is_empty()
            || params.get("MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification.LaunchTemplateName").is_some()
        {
            return Err(validation(
                "The simulation launches from one launch template, not a MixedInstancesPolicy",
            ));
        }
    let min = size(params, "MinSize")?;
    let max = size(params, "MaxSize")?;
    let desired = match params.get("DesiredCapacity") {
        Some(_) => size(params, "DesiredCapacity")?,
        None => min,
    };
    let role = params
        .get("ServiceLinkedRoleARN")
        .map(|arn| {
            PrincipalArn::parse(arn).map_err(|_| {
                validation(format!(
                    "ARN specified is not a valid service-linked role: {arn}"
                ))
            })
        })
        .transpose()?;
    let mut group_tags = BTreeMap::new();
    for tag in params.members("Tags.member") {
        let key = tag
            .get("Key")
            .ok_or_else(|| missing_parameter("Tags.member.Key"))?;
        group_tags.insert(
            key.to_owned(),
            tag.get("Value").unwrap_or_default().to_owned(),
        );
    }
    let request = GroupRequest {
        name: name.to_owned(),
        launch_template: String::new(),
        min_size: min,
        max_size: max,
        desired_capacity: desired,
        availability_zones: params.strings("AvailabilityZones.member"),
        subnets: params.get("VPCZoneIdentifier").map(str::to_owned),
        service_linked_role: role,
        tags: group_tags,
    };
    client
        .autoscaling_create_group(region, &api::CreateAutoScalingGroup { request, template })
        .map_err(sim(Service::AutoScaling))
}

/// `DescribeAutoScalingGroups`.
async fn describe_auto_scaling_groups(
    client: &SimClient,
    region: &Region,
    params: &Params,
    out: &mut Xml,
) -> Result<(), WireError> {
    if !params.members("Filters.member").is_empty() {
        return Err(validation(
            "The simulation does not filter groups: name them",
        ));
    }
    let names = params.strings("AutoScalingGroupNames.member");
    let groups = client
        .describe_auto_scaling_groups(region, &names)
        .await
        .map_err(sim(Service::AutoScaling))?;
    out.list("AutoScalingGroups", "member", &groups, |out, group| {
        group_member(out, region, group)
    });
    Ok(())
}

/// `DescribeScalingActivities`.
async fn describe_scaling_activities(
    client: &SimClient,
    region: &Region,
    params: &Params,
    out: &mut Xml,
) -> Result<(), WireError> {
    let Some(group) = params.get("AutoScalingGroupName") else {
        return Err(validation(
            "The simulation lists the activities of one group: give AutoScalingGroupName",
        ));
    };
    if !params.list("ActivityIds.member").is_empty() {
        return Err(validation(
            "The simulation lists activities by group, not by ID",
        ));
    }
    let include_deleted = params.bool("IncludeDeletedGroups")? == Some(true);
    // Without IncludeDeletedGroups, a deleted group shows none.
    let answer = client
        .autoscaling_describe_scaling_activities(region, group, include_deleted)
        .map_err(sim(Service::AutoScaling))?;
    out.list(
        "Activities",
        "member",
        &answer.activities,
        |out, activity| activity_member(out, activity, answer.group_deleted),
    );
    Ok(())
}

/// `DeleteAutoScalingGroup`.
async fn delete_auto_scaling_group(
    client: &SimClient,
    region: &Region,
    params: &Params,
    _out: &mut Xml,
) -> Result<(), WireError> {
    let name = params
            .get("AutoScalingGroupName")
            .ok_or_else(|| validation("1 validation error detected: Value null at 'autoScalingGroupName' failed to satisfy constraint: Member must not be null"))?;
    let force = params.bool("ForceDelete")? == Some(true);
    client
        .delete_auto_scaling_group(region, name, force)
        .await
        .map_err(sim(Service::AutoScaling))
}

/// EC2 `CreateLaunchTemplate`.
async fn create_launch_template(
    client: &SimClient,
    region: &Region,
    params: &Params,
    out: &mut Xml,
) -> Result<(), WireError> {
    let name = params.required("LaunchTemplateName")?;
    let image = parse_image_id(params.required("LaunchTemplateData.ImageId")?)?;
    let instance_type = params
        .get("LaunchTemplateData.InstanceType")
        .unwrap_or("m1.small")
        .to_owned();
    if params
        .get("LaunchTemplateData.BlockDeviceMapping.1.DeviceName")
        .is_some()
    {
        return Err(WireError::new(
            "UnsupportedOperation",
            "The simulation's launch templates take the image's own block devices.",
        ));
    }
    let request = LaunchTemplateRequest {
        name: name.to_owned(),
        image,
        instance_type,
        tags: tags(params, "launch-template")?,
        client_token: params.get("ClientToken").map(str::to_owned),
    };
    let template = client
        .create_launch_template(region, &request)
        .await
        .map_err(sim(Service::Ec2))?;
    out.element("launchTemplate", |out| {
        template_item(out, client, &template)
    });
    Ok(())
}

/// EC2 `DescribeLaunchTemplates`.
async fn describe_launch_templates(
    client: &SimClient,
    region: &Region,
    params: &Params,
    out: &mut Xml,
) -> Result<(), WireError> {
    if !params.list("LaunchTemplateId").is_empty() || !params.members("Filter").is_empty() {
        return Err(invalid_value(
            "LaunchTemplateId",
            "…",
            "The simulation finds launch templates by name only.",
        ));
    }
    let names = params.strings("LaunchTemplateName");
    let templates = client
        .describe_launch_templates(region, &names)
        .await
        .map_err(sim(Service::Ec2))?;
    out.list("launchTemplates", "item", &templates, |out, template| {
        template_item(out, client, template)
    });
    Ok(())
}

/// EC2 `DeleteLaunchTemplate`.
async fn delete_launch_template(
    client: &SimClient,
    region: &Region,
    params: &Params,
    out: &mut Xml,
) -> Result<(), WireError> {
    let template = match (
        params.get("LaunchTemplateName"),
        params.get("LaunchTemplateId"),
    ) {
        (Some(name), _) => api::TemplateRef::Name(name.to_owned()),
        (None, Some(id)) => api::TemplateRef::Id(id.to_owned()),
        (None, None) => return Err(missing_parameter("LaunchTemplateName")),
    };
    let deleted = client
        .ec2_delete_launch_template(region, &template)
        .map_err(sim(Service::Ec2))?;
    out.element("launchTemplate", |out| template_item(out, client, &deleted));
    Ok(())
}

fn group_member(out: &mut Xml, region: &Region, group: &Group) {
    out.leaf("AutoScalingGroupName", &group.name);
    out.leaf("AutoScalingGroupARN", &group.arn);
    out.element("LaunchTemplate", |out| {
        out.leaf("LaunchTemplateName", &group.launch_template);
        out.leaf("Version", "$Default");
    });
    out.leaf("MinSize", group.min_size);
    out.leaf("MaxSize", group.max_size);
    out.leaf("DesiredCapacity", group.desired_capacity);
    out.leaf("DefaultCooldown", 300);
    out.element("AvailabilityZones", |out| {
        out.leaf("member", format!("{region}a"));
    });
    out.leaf("HealthCheckType", "EC2");
    out.leaf("HealthCheckGracePeriod", 300);
    out.list("Instances", "member", &group.instances, |out, instance| {
        out.leaf("InstanceId", &instance.id);
        out.leaf("AvailabilityZone", format!("{region}a"));
        out.leaf("LifecycleState", instance.lifecycle_state);
        out.leaf(
            "HealthStatus",
            if instance.healthy {
                "Healthy"
            } else {
                "Unhealthy"
            },
        );
        out.element("LaunchTemplate", |out| {
            out.leaf("LaunchTemplateName", &group.launch_template);
            out.leaf("Version", "1");
        });
        out.leaf("ProtectedFromScaleIn", false);
    });
    out.leaf_opt("ServiceLinkedRoleARN", group.service_linked_role.as_ref());
    out.leaf_opt("Status", group.status.as_ref());
    out.list("Tags", "member", &group.tags, |out, (key, value)| {
        out.leaf("ResourceId", &group.name);
        out.leaf("ResourceType", "auto-scaling-group");
        out.leaf("Key", key);
        out.leaf("Value", value);
        out.leaf("PropagateAtLaunch", false);
    });
}

fn activity_member(out: &mut Xml, activity: &Activity, deleted: bool) {
    out.leaf("ActivityId", &activity.id);
    out.leaf("AutoScalingGroupName", &activity.group);
    out.leaf("Description", &activity.description);
    out.leaf("Cause", &activity.cause);
    out.leaf("StatusCode", activity.status);
    out.leaf_opt("StatusMessage", activity.status_message.as_ref());
    out.leaf("Progress", activity.progress);
    if deleted {
        out.leaf("AutoScalingGroupState", "Deleted");
    }
}

// ---------------------------------------------------------------- EC2

/// EC2's launch-template actions this server answers.
pub(crate) const EC2_ACTIONS: &[&str] = &[
    "CreateLaunchTemplate",
    "DeleteLaunchTemplate",
    "DescribeLaunchTemplates",
];

/// Runs one of [`EC2_ACTIONS`].
pub(crate) async fn handle_ec2(
    client: &SimClient,
    region: &Region,
    action: &str,
    params: &Params,
    out: &mut Xml,
) -> Result<(), WireError> {
    match action {
        "CreateLaunchTemplate" => create_launch_template(client, region, params, out).await,
        "DescribeLaunchTemplates" => describe_launch_templates(client, region, params, out).await,
        "DeleteLaunchTemplate" => delete_launch_template(client, region, params, out).await,
        _ => Err(WireError::new(
            "InvalidAction",
            format!("The action {action} is not valid for this web service."),
        )),
    }
}

fn template_item(out: &mut Xml, client: &SimClient, template: &LaunchTemplate) {
    out.leaf("launchTemplateId", &template.id);
    out.leaf("launchTemplateName", &template.name);
    out.leaf("createdBy", client.principal());
    out.leaf("defaultVersionNumber", 1);
    out.leaf("latestVersionNumber", 1);
    out.tag_set(&template.tags);
}
