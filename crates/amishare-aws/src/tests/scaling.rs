//! `AwsScalingStore` against aws-smithy-mocks rules: what each operation
//! sends, how it reads the answer, and how each failure comes back.

use std::collections::BTreeMap;

use amishare_core::scaling::{
    ActivityStatus, GroupRequest, LaunchFailure, LaunchTemplateRequest, LifecycleState,
    ScalingStore,
};
use amishare_core::{ErrorKind, ImageId, InstanceId, PrincipalArn};
use aws_sdk_autoscaling::error::ErrorMetadata;
use aws_sdk_autoscaling::operation::create_auto_scaling_group::{
    CreateAutoScalingGroupError, CreateAutoScalingGroupOutput,
};
use aws_sdk_autoscaling::operation::delete_auto_scaling_group::{
    DeleteAutoScalingGroupError, DeleteAutoScalingGroupOutput,
};
use aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput;
use aws_sdk_autoscaling::operation::describe_scaling_activities::DescribeScalingActivitiesOutput;
use aws_sdk_autoscaling::types as asg;
use aws_sdk_ec2::operation::create_launch_template::CreateLaunchTemplateOutput;
use aws_sdk_ec2::operation::describe_launch_templates::{
    DescribeLaunchTemplatesError, DescribeLaunchTemplatesOutput,
};
use aws_sdk_ec2::types as ec2;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};

use super::{assert_error, region};
use crate::AwsScalingStore;

const ROLE: &str = "arn:aws:iam::222222222222:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling_web";
const INSTANCE: &str = "i-0123456789abcdef0";

/// A store whose Auto Scaling answers with `asg_rules` and EC2 with `ec2_rules`; no retries.
fn store(asg_rules: &[&Rule], ec2_rules: &[&Rule]) -> AwsScalingStore {
    let autoscaling = mock_client!(aws_sdk_autoscaling, RuleMode::MatchAny, asg_rules, |c| {
        c.retry_config(aws_sdk_autoscaling::config::retry::RetryConfig::disabled())
    });
    let ec2 = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, ec2_rules, |c| {
        c.retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled())
    });
    AwsScalingStore::from_conf(autoscaling.config().clone(), ec2.config().clone())
}

fn error_metadata(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

#[tokio::test]
async fn create_launch_template_sends_the_image_type_token_and_tags() {
    let created = mock!(aws_sdk_ec2::Client::create_launch_template)
        .match_requests(|r| {
            let data = r.launch_template_data();
            r.launch_template_name() == Some("amishare-smoke")
                && data.and_then(|d| d.image_id()) == Some("ami-0123456789abcdef0")
                && data.and_then(|d| d.instance_type()) == Some(&ec2::InstanceType::T3Micro)
                && r.client_token() == Some("amishare-smoke")
                && r.tag_specifications().first().is_some_and(|spec| {
                    spec.resource_type() == Some(&ec2::ResourceType::LaunchTemplate)
                        && spec.tags()[0].key() == Some("amishare:smoke-test")
                })
        })
        .then_output(|| {
            CreateLaunchTemplateOutput::builder()
                .launch_template(
                    ec2::LaunchTemplate::builder()
                        .launch_template_id("lt-0123456789abcdef0")
                        .launch_template_name("amishare-smoke")
                        .build(),
                )
                .build()
        });
    let template = store(&[], &[&created])
        .create_launch_template(
            &region(),
            &LaunchTemplateRequest {
                name: "amishare-smoke".to_owned(),
                image: ImageId::parse("ami-0123456789abcdef0").unwrap(),
                instance_type: "t3.micro".to_owned(),
                tags: BTreeMap::from([(
                    "amishare:smoke-test".to_owned(),
                    "ami-0123456789abcdef0".to_owned(),
                )]),
                client_token: Some("amishare-smoke".to_owned()),
            },
        )
        .await
        .unwrap();
    assert_eq!(template.id, "lt-0123456789abcdef0");
    assert_eq!(template.tags.len(), 1, "the tags asked for");
}

#[tokio::test]
async fn an_unknown_launch_template_is_not_found() {
    let missing = mock!(aws_sdk_ec2::Client::describe_launch_templates).then_error(|| {
        DescribeLaunchTemplatesError::generic(error_metadata(
            "InvalidLaunchTemplateName.NotFoundException",
            "At least one of the launch templates specified in the request does not exist.",
        ))
    });
    assert_error(
        store(&[], &[&missing])
            .describe_launch_templates(&region(), &["gone".to_owned()])
            .await,
        ErrorKind::NotFound,
        "InvalidLaunchTemplateName.NotFoundException",
        "DescribeLaunchTemplates",
    );
    let listed = mock!(aws_sdk_ec2::Client::describe_launch_templates)
        .match_requests(|r| r.launch_template_names().is_empty())
        .then_output(|| DescribeLaunchTemplatesOutput::builder().build());
    assert!(store(&[], &[&listed])
        .describe_launch_templates(&region(), &[])
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn create_auto_scaling_group_sends_the_template_sizes_zones_and_role() {
    let created = mock!(aws_sdk_autoscaling::Client::create_auto_scaling_group)
        .match_requests(|r| {
            r.auto_scaling_group_name() == Some("amishare-smoke")
                && r.launch_template().and_then(|t| t.launch_template_name())
                    == Some("amishare-smoke")
                && r.launch_template().and_then(|t| t.version()) == Some("$Default")
                && (r.min_size(), r.max_size(), r.desired_capacity()) == (Some(1), Some(1), Some(1))
                && r.availability_zones() == ["ap-northeast-1a"]
                && r.service_linked_role_arn() == Some(ROLE)
                && r.tags()[0].propagate_at_launch() == Some(false)
        })
        .then_output(|| CreateAutoScalingGroupOutput::builder().build());
    store(&[&created], &[])
        .create_auto_scaling_group(&region(), &group_request())
        .await
        .unwrap();
}

fn group_request() -> GroupRequest {
    GroupRequest {
        name: "amishare-smoke".to_owned(),
        launch_template: "amishare-smoke".to_owned(),
        min_size: 1,
        max_size: 1,
        desired_capacity: 1,
        availability_zones: vec!["ap-northeast-1a".to_owned()],
        subnets: None,
        service_linked_role: Some(PrincipalArn::parse(ROLE).unwrap()),
        tags: BTreeMap::from([("amishare:smoke-test".to_owned(), "ami".to_owned())]),
    }
}

#[tokio::test]
async fn a_group_name_in_use_is_a_conflict() {
    let exists = mock!(aws_sdk_autoscaling::Client::create_auto_scaling_group).then_error(|| {
        CreateAutoScalingGroupError::generic(error_metadata(
            "AlreadyExists",
            "AutoScalingGroup by this name already exists - A group with the name amishare-smoke already exists",
        ))
    });
    assert_error(
        store(&[&exists], &[])
            .create_auto_scaling_group(&region(), &group_request())
            .await,
        ErrorKind::Conflict,
        "AlreadyExists",
        "amishare-smoke",
    );
}

#[tokio::test]
async fn deleting_an_unknown_group_is_not_found() {
    let unknown = mock!(aws_sdk_autoscaling::Client::delete_auto_scaling_group).then_error(|| {
        DeleteAutoScalingGroupError::generic(error_metadata(
            "ValidationError",
            "AutoScalingGroup name not found - AutoScalingGroup 'gone' not found",
        ))
    });
    assert_error(
        store(&[&unknown], &[])
            .delete_auto_scaling_group(&region(), "gone", true)
            .await,
        ErrorKind::NotFound,
        "ValidationError",
        "gone",
    );
    let forced = mock!(aws_sdk_autoscaling::Client::delete_auto_scaling_group)
        .match_requests(|r| r.force_delete() == Some(true))
        .then_output(|| DeleteAutoScalingGroupOutput::builder().build());
    store(&[&forced], &[])
        .delete_auto_scaling_group(&region(), "amishare-smoke", true)
        .await
        .unwrap();
}

#[tokio::test]
async fn groups_are_read_with_their_instances_role_and_tags() {
    let listed = mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups)
        .match_requests(|r| r.auto_scaling_group_names() == ["amishare-smoke"])
        .then_output(|| {
            DescribeAutoScalingGroupsOutput::builder()
                .auto_scaling_groups(
                    asg::AutoScalingGroup::builder()
                        .auto_scaling_group_name("amishare-smoke")
                        .min_size(1)
                        .max_size(1)
                        .desired_capacity(1)
                        .service_linked_role_arn(ROLE)
                        .instances(
                            asg::Instance::builder()
                                .instance_id(INSTANCE)
                                .lifecycle_state(asg::LifecycleState::InService)
                                .health_status("Healthy")
                                .build(),
                        )
                        .tags(
                            asg::TagDescription::builder()
                                .key("amishare:smoke-test")
                                .value("ami-0123456789abcdef0")
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let groups = store(&[&listed], &[])
        .describe_auto_scaling_groups(&region(), &["amishare-smoke".to_owned()])
        .await
        .unwrap();
    let group = &groups[0];
    assert_eq!(group.instances[0].id, InstanceId::parse(INSTANCE).unwrap());
    assert_eq!(
        group.instances[0].lifecycle_state,
        LifecycleState::InService
    );
    assert!(group.instances[0].healthy);
    assert_eq!(group.service_linked_role.as_ref().unwrap().as_str(), ROLE);
    assert_eq!(
        group.tags.get("amishare:smoke-test").map(String::as_str),
        Some("ami-0123456789abcdef0")
    );
}

#[tokio::test]
async fn activities_are_read_with_their_status_instance_and_cause() {
    let listed = mock!(aws_sdk_autoscaling::Client::describe_scaling_activities)
        .match_requests(|r| {
            r.auto_scaling_group_name() == Some("amishare-smoke")
                && r.include_deleted_groups() == Some(true)
        })
        .then_output(|| {
            DescribeScalingActivitiesOutput::builder()
                .activities(
                    asg::Activity::builder()
                        .activity_id("a1")
                        .auto_scaling_group_name("amishare-smoke")
                        .description(format!("Launching a new EC2 instance: {INSTANCE}.  Status Reason: Instance became unhealthy while waiting for instance to be in InService state. Termination Reason: Client.InternalError: Client error on launch"))
                        .cause("At 2026-01-01T00:00:00Z an instance was started")
                        .status_code(asg::ScalingActivityStatusCode::Cancelled)
                        .status_message("Instance became unhealthy while waiting for instance to be in InService state. Termination Reason: Client.InternalError: Client error on launch")
                        .progress(100)
                        .build(),
                )
                .build()
        });
    let activities = store(&[&listed], &[])
        .describe_scaling_activities(&region(), "amishare-smoke")
        .await
        .unwrap();
    let activity = &activities[0];
    assert_eq!(activity.status, ActivityStatus::Cancelled);
    assert_eq!(
        activity.instance,
        Some(InstanceId::parse(INSTANCE).unwrap())
    );
    assert_eq!(activity.progress, 100);
    assert_eq!(activity.failure_cause(), Some(LaunchFailure::KeyAccess));
}
