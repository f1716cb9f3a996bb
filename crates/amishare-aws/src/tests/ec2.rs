//! `AwsImageStore` against aws-smithy-mocks rules: what each operation sends,
//! how it reads the answer, and how each failure comes back. EC2 errors are
//! all unmodelled, so failures are built from their code and message.

use std::collections::BTreeMap;

use amishare_core::store::{
    CopyImageRequest, CreateImageRequest, ExecutableBy, ImageOwner, ImageQuery, ImageState,
    ImageStore, InstanceState, LaunchPermission, PermissionChange, RunInstancesRequest,
    SnapshotState, VolumePermission,
};
use amishare_core::{
    AccountId, ErrorKind, ImageId, InstanceId, KeyRef, OrganizationArn, SnapshotId,
};
use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::error::ErrorMetadata;
use aws_sdk_ec2::operation::copy_image::{CopyImageError, CopyImageOutput};
use aws_sdk_ec2::operation::create_image::{CreateImageError, CreateImageOutput};
use aws_sdk_ec2::operation::delete_snapshot::{DeleteSnapshotError, DeleteSnapshotOutput};
use aws_sdk_ec2::operation::deregister_image::{DeregisterImageError, DeregisterImageOutput};
use aws_sdk_ec2::operation::describe_image_attribute::{
    DescribeImageAttributeError, DescribeImageAttributeOutput,
};
use aws_sdk_ec2::operation::describe_images::{DescribeImagesError, DescribeImagesOutput};
use aws_sdk_ec2::operation::describe_instances::{DescribeInstancesError, DescribeInstancesOutput};
use aws_sdk_ec2::operation::describe_snapshot_attribute::{
    DescribeSnapshotAttributeError, DescribeSnapshotAttributeOutput,
};
use aws_sdk_ec2::operation::describe_snapshots::{DescribeSnapshotsError, DescribeSnapshotsOutput};
use aws_sdk_ec2::operation::describe_volumes::DescribeVolumesOutput;
use aws_sdk_ec2::operation::get_ebs_default_kms_key_id::GetEbsDefaultKmsKeyIdOutput;
use aws_sdk_ec2::operation::get_ebs_encryption_by_default::{
    GetEbsEncryptionByDefaultError, GetEbsEncryptionByDefaultOutput,
};
use aws_sdk_ec2::operation::modify_image_attribute::{
    ModifyImageAttributeError, ModifyImageAttributeOutput,
};
use aws_sdk_ec2::operation::modify_snapshot_attribute::{
    ModifySnapshotAttributeError, ModifySnapshotAttributeOutput,
};
use aws_sdk_ec2::operation::run_instances::{RunInstancesError, RunInstancesOutput};
use aws_sdk_ec2::operation::terminate_instances::{
    TerminateInstancesError, TerminateInstancesOutput,
};
use aws_sdk_ec2::types::{self as ec2, OperationType, PermissionGroup, ResourceType};
use aws_sdk_ec2::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};

use super::{assert_error, key, region, KEY};
use crate::AwsImageStore;

const IMAGE: &str = "ami-0fedcba9876543210";
const SOURCE: &str = "ami-0a1b2c3d4e5f60718";
const SNAPSHOT: &str = "snap-0123456789abcdef0";
const INSTANCE: &str = "i-0123456789abcdef0";
const TARGET: &str = "222222222222";

/// A store whose EC2 answers with `rules`; no retries.
fn store(rules: &[&Rule]) -> AwsImageStore {
    let ec2 = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, rules, |c| {
        c.retry_config(RetryConfig::disabled())
    });
    AwsImageStore::from_conf(ec2.config().clone())
}

fn error(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

fn image_id() -> ImageId {
    ImageId::parse(IMAGE).unwrap()
}

fn snapshot_id() -> SnapshotId {
    SnapshotId::parse(SNAPSHOT).unwrap()
}

fn instance_id() -> InstanceId {
    InstanceId::parse(INSTANCE).unwrap()
}

fn target() -> AccountId {
    AccountId::parse(TARGET).unwrap()
}

fn tags() -> BTreeMap<String, String> {
    BTreeMap::from([("amishare:source-image".to_owned(), SOURCE.to_owned())])
}

/// One image tag specification carrying [`tags`].
fn tagged_image(specs: &[ec2::TagSpecification], resource: ResourceType) -> bool {
    specs.len() == 1
        && specs[0].resource_type() == Some(&resource)
        && specs[0].tags().len() == 1
        && specs[0].tags()[0].key() == Some("amishare:source-image")
        && specs[0].tags()[0].value() == Some(SOURCE)
}

fn sdk_image(id: &str, state: ec2::ImageState) -> ec2::Image {
    ec2::Image::builder()
        .image_id(id)
        .owner_id("111111111111")
        .name("golden-copy")
        .state(state)
        .public(false)
        .block_device_mappings(
            ec2::BlockDeviceMapping::builder()
                .device_name("/dev/xvda")
                .ebs(
                    ec2::EbsBlockDevice::builder()
                        .snapshot_id(SNAPSHOT)
                        .volume_size(8)
                        .volume_type(ec2::VolumeType::Gp3)
                        .encrypted(true)
                        .build(),
                )
                .build(),
        )
        .block_device_mappings(
            ec2::BlockDeviceMapping::builder()
                .device_name("/dev/sdb")
                .virtual_name("ephemeral0")
                .build(),
        )
        .tags(
            ec2::Tag::builder()
                .key("amishare:source-image")
                .value(SOURCE)
                .build(),
        )
        .source_image_id(SOURCE)
        .source_image_region("ap-northeast-1")
        .build()
}

fn sdk_instance(id: &str, state: ec2::InstanceStateName, volume: Option<&str>) -> ec2::Instance {
    let mut instance = ec2::Instance::builder()
        .instance_id(id)
        .image_id(IMAGE)
        .state(ec2::InstanceState::builder().name(state).build());
    if let Some(volume) = volume {
        instance = instance.block_device_mappings(
            ec2::InstanceBlockDeviceMapping::builder()
                .device_name("/dev/xvda")
                .ebs(
                    ec2::EbsInstanceBlockDevice::builder()
                        .volume_id(volume)
                        .build(),
                )
                .build(),
        );
    }
    instance.build()
}

// ---------------------------------------------------------------- instances

#[tokio::test]
async fn describe_instances_adds_attached_volumes_from_one_filtered_call() {
    let instances = mock!(Client::describe_instances)
        .match_requests(|r| r.instance_ids() == ["i-0123456789abcdef0", "i-0aaaabbbbccccdddd"])
        .then_output(|| {
            DescribeInstancesOutput::builder()
                .reservations(
                    ec2::Reservation::builder()
                        .owner_id(TARGET)
                        .instances(sdk_instance(
                            "i-0aaaabbbbccccdddd",
                            ec2::InstanceStateName::Running,
                            Some("vol-0123456789abcdef0"),
                        ))
                        .instances(
                            ec2::Instance::builder()
                                .instance_id(INSTANCE)
                                .image_id(IMAGE)
                                .state(
                                    ec2::InstanceState::builder()
                                        .name(ec2::InstanceStateName::Terminated)
                                        .build(),
                                )
                                .state_reason(
                                    ec2::StateReason::builder()
                                        .code("Server.InternalError")
                                        .message("Client.InternalError: Client error on launch")
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let volumes = mock!(Client::describe_volumes)
        .match_requests(|r| {
            r.filters().len() == 1
                && r.filters()[0].name() == Some("attachment.instance-id")
                && r.filters()[0].values() == ["i-0aaaabbbbccccdddd"]
        })
        .then_output(|| {
            DescribeVolumesOutput::builder()
                .volumes(
                    ec2::Volume::builder()
                        .volume_id("vol-0123456789abcdef0")
                        .size(8)
                        .encrypted(true)
                        .kms_key_id(KEY)
                        .attachments(
                            ec2::VolumeAttachment::builder()
                                .instance_id("i-0aaaabbbbccccdddd")
                                .device("/dev/xvda")
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let found = store(&[&instances, &volumes])
        .describe_instances(
            &region(),
            &[
                instance_id(),
                InstanceId::parse("i-0aaaabbbbccccdddd").unwrap(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].state, InstanceState::Running);
    assert_eq!(found[0].owner, target());
    assert_eq!(found[0].volumes.len(), 1);
    assert_eq!(found[0].volumes[0].device_name, "/dev/xvda");
    assert_eq!(found[0].volumes[0].kms_key.as_ref(), Some(&key()));
    assert_eq!(found[0].volumes[0].size, 8);
    assert_eq!(found[1].state, InstanceState::Terminated);
    let reason = found[1].state_reason.as_ref().unwrap();
    assert_eq!(reason.code, "Server.InternalError");
    assert_eq!(
        reason.message,
        "Client.InternalError: Client error on launch"
    );
    assert!(found[1].volumes.is_empty());
    assert_eq!(volumes.num_calls(), 1);
}

#[tokio::test]
async fn describe_instances_without_volumes_makes_no_volume_call() {
    let instances = mock!(Client::describe_instances).then_output(|| {
        DescribeInstancesOutput::builder()
            .reservations(
                ec2::Reservation::builder()
                    .owner_id(TARGET)
                    .instances(sdk_instance(
                        INSTANCE,
                        ec2::InstanceStateName::Pending,
                        None,
                    ))
                    .build(),
            )
            .build()
    });
    let volumes =
        mock!(Client::describe_volumes).then_output(|| DescribeVolumesOutput::builder().build());
    let found = store(&[&instances, &volumes])
        .describe_instances(&region(), &[instance_id()])
        .await
        .unwrap();
    assert_eq!(found[0].state, InstanceState::Pending);
    assert_eq!(volumes.num_calls(), 0);
}

#[tokio::test]
async fn describe_instances_fails_for_an_unknown_instance() {
    let unknown = mock!(Client::describe_instances).then_error(|| {
        DescribeInstancesError::generic(error(
            "InvalidInstanceID.NotFound",
            "The instance ID 'i-0123456789abcdef0' does not exist",
        ))
    });
    assert_error(
        store(&[&unknown])
            .describe_instances(&region(), &[instance_id()])
            .await,
        ErrorKind::NotFound,
        "InvalidInstanceID.NotFound",
        INSTANCE,
    );
}

#[tokio::test]
async fn run_instances_launches_one_instance() {
    let run = mock!(Client::run_instances)
        .match_requests(|r| {
            r.image_id() == Some(IMAGE)
                && r.instance_type() == Some(&ec2::InstanceType::T3Micro)
                && r.min_count() == Some(1)
                && r.max_count() == Some(1)
                && r.subnet_id() == Some("subnet-0123456789abcdef0")
                && r.block_device_mappings().is_empty()
                && r.tag_specifications().len() == 1
                && r.tag_specifications()[0].resource_type() == Some(&ResourceType::Instance)
        })
        .then_output(|| {
            RunInstancesOutput::builder()
                .owner_id(TARGET)
                .instances(sdk_instance(
                    INSTANCE,
                    ec2::InstanceStateName::Pending,
                    None,
                ))
                .build()
        });
    let instance = store(&[&run])
        .run_instances(
            &region(),
            &RunInstancesRequest {
                image: image_id(),
                instance_type: "t3.micro".to_owned(),
                subnet: Some("subnet-0123456789abcdef0".to_owned()),
                kms_key: None,
                tags: BTreeMap::from([("Name".to_owned(), "accepted".to_owned())]),
                client_token: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(instance.id, instance_id());
    assert_eq!(instance.owner, target());
    assert_eq!(instance.state, InstanceState::Pending);
}

#[tokio::test]
async fn run_instances_with_a_key_encrypts_every_ebs_device_of_the_image() {
    let described = mock!(Client::describe_images)
        .match_requests(|r| r.image_ids() == [IMAGE])
        .then_output(|| {
            DescribeImagesOutput::builder()
                .images(sdk_image(IMAGE, ec2::ImageState::Available))
                .build()
        });
    let run = mock!(Client::run_instances)
        .match_requests(|r| {
            let mappings = r.block_device_mappings();
            mappings.len() == 1
                && mappings[0].device_name() == Some("/dev/xvda")
                && mappings[0].ebs().and_then(|e| e.encrypted()) == Some(true)
                && mappings[0].ebs().and_then(|e| e.kms_key_id()) == Some(KEY)
        })
        .then_output(|| {
            RunInstancesOutput::builder()
                .owner_id(TARGET)
                .instances(sdk_instance(
                    INSTANCE,
                    ec2::InstanceStateName::Pending,
                    None,
                ))
                .build()
        });
    store(&[&described, &run])
        .run_instances(
            &region(),
            &RunInstancesRequest {
                image: image_id(),
                instance_type: "t3.micro".to_owned(),
                subnet: None,
                kms_key: Some(KeyRef::Arn(key())),
                tags: BTreeMap::new(),
                client_token: None,
            },
        )
        .await
        .unwrap();
    assert_eq!((described.num_calls(), run.num_calls()), (1, 1));
}

#[tokio::test]
async fn run_instances_fails_for_an_invisible_image() {
    let invisible = mock!(Client::run_instances).then_error(|| {
        RunInstancesError::generic(error(
            "InvalidAMIID.NotFound",
            "The image id '[ami-0fedcba9876543210]' does not exist",
        ))
    });
    assert_error(
        store(&[&invisible])
            .run_instances(
                &region(),
                &RunInstancesRequest {
                    image: image_id(),
                    instance_type: "t3.micro".to_owned(),
                    subnet: None,
                    kms_key: None,
                    tags: BTreeMap::new(),
                    client_token: None,
                },
            )
            .await,
        ErrorKind::NotFound,
        "InvalidAMIID.NotFound",
        IMAGE,
    );
}

#[tokio::test]
async fn terminate_instances_sends_every_id() {
    let terminated = mock!(Client::terminate_instances)
        .match_requests(|r| r.instance_ids() == [INSTANCE])
        .then_output(|| TerminateInstancesOutput::builder().build());
    let images = store(&[&terminated]);
    images
        .terminate_instances(&region(), &[instance_id()])
        .await
        .unwrap();
    images.terminate_instances(&region(), &[]).await.unwrap();
    assert_eq!(
        terminated.num_calls(),
        1,
        "nothing to terminate makes no call"
    );
}

#[tokio::test]
async fn terminate_instances_fails_without_permission() {
    let denied = mock!(Client::terminate_instances).then_error(|| {
        TerminateInstancesError::generic(error(
            "UnauthorizedOperation",
            "You are not authorized to perform this operation.",
        ))
    });
    assert_error(
        store(&[&denied])
            .terminate_instances(&region(), &[instance_id()])
            .await,
        ErrorKind::AccessDenied,
        "UnauthorizedOperation",
        INSTANCE,
    );
}

// ---------------------------------------------------------------- images

#[tokio::test]
async fn create_image_sends_instance_name_and_image_tags() {
    let created = mock!(Client::create_image)
        .match_requests(|r| {
            r.instance_id() == Some(INSTANCE)
                && r.name() == Some("golden")
                && tagged_image(r.tag_specifications(), ResourceType::Image)
        })
        .then_output(|| CreateImageOutput::builder().image_id(SOURCE).build());
    let id = store(&[&created])
        .create_image(
            &region(),
            &CreateImageRequest {
                instance: instance_id(),
                name: "golden".to_owned(),
                tags: tags(),
            },
        )
        .await
        .unwrap();
    assert_eq!(id.as_str(), SOURCE);
}

#[tokio::test]
async fn create_image_fails_on_a_duplicate_name() {
    let duplicate = mock!(Client::create_image).then_error(|| {
        CreateImageError::generic(error(
            "InvalidAMIName.Duplicate",
            "AMI name golden is already in use by AMI ami-0a1b2c3d4e5f60718",
        ))
    });
    assert_error(
        store(&[&duplicate])
            .create_image(
                &region(),
                &CreateImageRequest {
                    instance: instance_id(),
                    name: "golden".to_owned(),
                    tags: BTreeMap::new(),
                },
            )
            .await,
        ErrorKind::Conflict,
        "InvalidAMIName.Duplicate",
        "\"golden\"",
    );
}

fn copy_request() -> CopyImageRequest {
    CopyImageRequest {
        source_image: ImageId::parse(SOURCE).unwrap(),
        source_region: region(),
        name: "golden-copy".to_owned(),
        encrypted: Some(true),
        kms_key: Some(KeyRef::Arn(key())),
        client_token: Some("amishare-token-1".to_owned()),
        tags: tags(),
    }
}

#[tokio::test]
async fn copy_image_sends_key_arn_and_client_token() {
    let copied = mock!(Client::copy_image)
        .match_requests(|r| {
            r.source_image_id() == Some(SOURCE)
                && r.source_region() == Some("ap-northeast-1")
                && r.name() == Some("golden-copy")
                && r.encrypted() == Some(true)
                && r.kms_key_id() == Some(KEY)
                && r.client_token() == Some("amishare-token-1")
                && tagged_image(r.tag_specifications(), ResourceType::Image)
        })
        .then_output(|| CopyImageOutput::builder().image_id(IMAGE).build());
    let id = store(&[&copied])
        .copy_image(&region(), &copy_request())
        .await
        .unwrap();
    assert_eq!(id, image_id());
}

#[tokio::test]
async fn copy_image_without_encryption_parameters_leaves_them_out() {
    let copied = mock!(Client::copy_image)
        // Without a token of the request's, the SDK fills in one of its own.
        .match_requests(|r| {
            r.encrypted().is_none()
                && r.kms_key_id().is_none()
                && r.client_token() != Some("amishare-token-1")
                && r.tag_specifications().is_empty()
        })
        .then_output(|| CopyImageOutput::builder().image_id(IMAGE).build());
    let request = CopyImageRequest {
        encrypted: None,
        kms_key: None,
        client_token: None,
        tags: BTreeMap::new(),
        ..copy_request()
    };
    store(&[&copied])
        .copy_image(&region(), &request)
        .await
        .unwrap();
    assert_eq!(copied.num_calls(), 1);
}

#[tokio::test]
async fn copy_image_of_unshared_storage_is_access_denied() {
    let storage = mock!(Client::copy_image).then_error(|| {
        CopyImageError::generic(error(
            "InvalidRequest",
            "You do not have permission to access the storage of this ami",
        ))
    });
    let err = assert_error(
        store(&[&storage])
            .copy_image(&region(), &copy_request())
            .await,
        ErrorKind::AccessDenied,
        "InvalidRequest",
        SOURCE,
    );
    assert!(err.message().contains("storage of this ami"), "{err}");
    assert!(err.message().contains(KEY), "the key is named: {err}");
}

#[tokio::test]
async fn describe_images_sends_owners_executable_users_and_tag_filters() {
    let listed = mock!(Client::describe_images)
        .match_requests(|r| {
            let filters: Vec<(Option<&str>, &[String])> =
                r.filters().iter().map(|f| (f.name(), f.values())).collect();
            r.image_ids().is_empty()
                && r.owners() == ["self", "111111111111"]
                && r.executable_users() == ["self", TARGET, "all"]
                && filters
                    == [
                        (Some("tag-key"), &["amishare:key".to_owned()][..]),
                        (Some("tag:amishare:source-image"), &[SOURCE.to_owned()][..]),
                    ]
        })
        .then_output(|| {
            DescribeImagesOutput::builder()
                .images(sdk_image(IMAGE, ec2::ImageState::Available))
                .build()
        });
    let query = ImageQuery {
        image_ids: Vec::new(),
        owners: vec![
            ImageOwner::Me,
            ImageOwner::Account(AccountId::parse("111111111111").unwrap()),
        ],
        executable_by: vec![
            ExecutableBy::Me,
            ExecutableBy::Account(target()),
            ExecutableBy::All,
        ],
        tags: BTreeMap::from([
            ("amishare:key".to_owned(), Vec::new()),
            ("amishare:source-image".to_owned(), vec![SOURCE.to_owned()]),
        ]),
    };
    let images = store(&[&listed])
        .describe_images(&region(), &query)
        .await
        .unwrap();
    assert_eq!(images.len(), 1);
    let image = &images[0];
    assert_eq!(image.id, image_id());
    assert_eq!(image.state, ImageState::Available);
    assert_eq!(
        image.block_devices.len(),
        1,
        "the instance-store device is left out"
    );
    assert_eq!(image.block_devices[0].snapshot_id, snapshot_id());
    assert_eq!(image.block_devices[0].volume_type, "gp3");
    assert!(image.block_devices[0].encrypted);
    assert_eq!(image.tags, tags());
    assert_eq!(
        image.source_image.as_ref().map(ImageId::as_str),
        Some(SOURCE)
    );
    assert_eq!(image.source_region, Some(region()));
}

#[tokio::test]
async fn describe_images_follows_next_token() {
    let pages = mock!(Client::describe_images).then_compute_output(|r| match r.next_token() {
        None => DescribeImagesOutput::builder()
            .images(sdk_image(IMAGE, ec2::ImageState::Available))
            .next_token("page-2")
            .build(),
        Some("page-2") => DescribeImagesOutput::builder()
            .images(sdk_image(SOURCE, ec2::ImageState::Failed))
            .build(),
        Some(other) => panic!("unexpected token {other}"),
    });
    let images = store(&[&pages])
        .describe_images(&region(), &ImageQuery::default())
        .await
        .unwrap();
    assert_eq!(pages.num_calls(), 2);
    let states: Vec<ImageState> = images.iter().map(|i| i.state).collect();
    assert_eq!(states, [ImageState::Available, ImageState::Failed]);
}

#[tokio::test]
async fn describe_images_reads_every_image_state() {
    let cases = [
        (ec2::ImageState::Pending, ImageState::Pending),
        (ec2::ImageState::Transient, ImageState::Pending),
        (ec2::ImageState::Available, ImageState::Available),
        (ec2::ImageState::Failed, ImageState::Failed),
        (ec2::ImageState::Error, ImageState::Failed),
        (ec2::ImageState::Invalid, ImageState::Failed),
        (ec2::ImageState::Deregistered, ImageState::Deregistered),
        (ec2::ImageState::Disabled, ImageState::Deregistered),
    ];
    for (sdk, expected) in cases {
        let answer = sdk.clone();
        let rule = mock!(Client::describe_images).then_output(move || {
            DescribeImagesOutput::builder()
                .images(sdk_image(IMAGE, answer.clone()))
                .build()
        });
        let images = store(&[&rule])
            .describe_images(&region(), &ImageQuery::ids([image_id()]))
            .await
            .unwrap();
        assert_eq!(images[0].state, expected, "{sdk:?}");
    }
}

#[tokio::test]
async fn describe_images_fails_for_an_image_not_shared() {
    let unknown = mock!(Client::describe_images)
        .match_requests(|r| r.image_ids() == [IMAGE] && r.max_results().is_none())
        .then_error(|| {
            DescribeImagesError::generic(error(
                "InvalidAMIID.NotFound",
                "The image id '[ami-0fedcba9876543210]' does not exist",
            ))
        });
    assert_error(
        store(&[&unknown])
            .describe_images(&region(), &ImageQuery::ids([image_id()]))
            .await,
        ErrorKind::NotFound,
        "InvalidAMIID.NotFound",
        IMAGE,
    );
}

#[tokio::test]
async fn describe_images_refuses_an_unparseable_answer() {
    let odd = mock!(Client::describe_images).then_output(|| {
        DescribeImagesOutput::builder()
            .images(sdk_image("image-1", ec2::ImageState::Available))
            .build()
    });
    let err = store(&[&odd])
        .describe_images(&region(), &ImageQuery::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Service);
    assert!(err.message().contains("imageId \"image-1\""), "{err}");
}

#[tokio::test]
async fn deregister_image_asks_to_delete_snapshots() {
    let deregistered = mock!(Client::deregister_image)
        .match_requests(|r| {
            r.image_id() == Some(IMAGE) && r.delete_associated_snapshots() == Some(true)
        })
        .then_output(|| {
            DeregisterImageOutput::builder()
                .r#return(true)
                .delete_snapshot_results(
                    ec2::DeleteSnapshotReturnCode::builder()
                        .snapshot_id(SNAPSHOT)
                        .return_code(ec2::SnapshotReturnCodes::Success)
                        .build(),
                )
                .delete_snapshot_results(
                    ec2::DeleteSnapshotReturnCode::builder()
                        .snapshot_id("snap-0fedcba9876543210")
                        .return_code(ec2::SnapshotReturnCodes::WarnSkipped)
                        .build(),
                )
                .build()
        });
    let keep = mock!(Client::deregister_image)
        .match_requests(|r| r.delete_associated_snapshots().is_none())
        .then_output(|| DeregisterImageOutput::builder().r#return(true).build());
    let images = store(&[&deregistered, &keep]);
    images
        .deregister_image(&region(), &image_id(), true)
        .await
        .unwrap();
    images
        .deregister_image(&region(), &image_id(), false)
        .await
        .unwrap();
    assert_eq!((deregistered.num_calls(), keep.num_calls()), (1, 1));
}

#[tokio::test]
async fn deregister_image_reports_snapshots_left_behind() {
    let partial = mock!(Client::deregister_image).then_output(|| {
        DeregisterImageOutput::builder()
            .r#return(true)
            .delete_snapshot_results(
                ec2::DeleteSnapshotReturnCode::builder()
                    .snapshot_id(SNAPSHOT)
                    .return_code(ec2::SnapshotReturnCodes::ErrorMissingPermissions)
                    .build(),
            )
            .build()
    });
    let err = store(&[&partial])
        .deregister_image(&region(), &image_id(), true)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert!(
        err.message()
            .contains("snap-0123456789abcdef0 (missing-permissions)"),
        "{err}"
    );
}

#[tokio::test]
async fn deregister_image_fails_for_an_image_already_gone() {
    let gone = mock!(Client::deregister_image).then_error(|| {
        DeregisterImageError::generic(error(
            "InvalidAMIID.Unavailable",
            "The image id '[ami-0fedcba9876543210]' is no longer available",
        ))
    });
    assert_error(
        store(&[&gone])
            .deregister_image(&region(), &image_id(), false)
            .await,
        ErrorKind::Conflict,
        "InvalidAMIID.Unavailable",
        IMAGE,
    );
}

// ---------------------------------------------------------------- launch permissions

#[tokio::test]
async fn modify_launch_permission_adds_and_removes_in_one_call() {
    let modified = mock!(Client::modify_image_attribute)
        .match_requests(|r| {
            let Some(change) = r.launch_permission() else {
                return false;
            };
            r.image_id() == Some(IMAGE)
                && change.add().len() == 2
                && change.add()[0].user_id() == Some(TARGET)
                && change.add()[1].organization_arn()
                    == Some("arn:aws:organizations::111111111111:organization/o-abcdefghij")
                && change.remove().len() == 1
                && change.remove()[0].group() == Some(&PermissionGroup::All)
        })
        .then_output(|| ModifyImageAttributeOutput::builder().build());
    let images = store(&[&modified]);
    let change = PermissionChange {
        add: vec![
            LaunchPermission::Account(target()),
            LaunchPermission::Organization(
                OrganizationArn::parse(
                    "arn:aws:organizations::111111111111:organization/o-abcdefghij",
                )
                .unwrap(),
            ),
        ],
        remove: vec![LaunchPermission::Public],
    };
    images
        .modify_launch_permission(&region(), &image_id(), &change)
        .await
        .unwrap();
    images
        .modify_launch_permission(&region(), &image_id(), &PermissionChange::add(Vec::new()))
        .await
        .unwrap();
    assert_eq!(modified.num_calls(), 1, "an empty change makes no call");
}

#[tokio::test]
async fn modify_launch_permission_of_an_aws_managed_image_is_unsupported() {
    let refused = mock!(Client::modify_image_attribute).then_error(|| {
        ModifyImageAttributeError::generic(error(
            "InvalidParameter",
            "Snapshots encrypted with the AWS Managed CMK can't be shared. Specify another snapshot.",
        ))
    });
    let err = assert_error(
        store(&[&refused])
            .modify_launch_permission(
                &region(),
                &image_id(),
                &PermissionChange::add(vec![LaunchPermission::Account(target())]),
            )
            .await,
        ErrorKind::Unsupported,
        "InvalidParameter",
        IMAGE,
    );
    assert!(err.message().contains("AWS Managed CMK"), "{err}");
}

#[tokio::test]
async fn describe_launch_permission_reads_every_kind() {
    let described = mock!(Client::describe_image_attribute)
        .match_requests(|r| {
            r.image_id() == Some(IMAGE)
                && r.attribute() == Some(&ec2::ImageAttributeName::LaunchPermission)
        })
        .then_output(|| {
            DescribeImageAttributeOutput::builder()
                .image_id(IMAGE)
                .launch_permissions(ec2::LaunchPermission::builder().user_id(TARGET).build())
                .launch_permissions(
                    ec2::LaunchPermission::builder()
                        .organization_arn(
                            "arn:aws:organizations::111111111111:organization/o-abcdefghij",
                        )
                        .build(),
                )
                .launch_permissions(
                    ec2::LaunchPermission::builder()
                        .organizational_unit_arn(
                            "arn:aws:organizations::111111111111:ou/o-abcdefghij/ou-ab12-cdefgh34",
                        )
                        .build(),
                )
                .launch_permissions(
                    ec2::LaunchPermission::builder()
                        .group(PermissionGroup::All)
                        .build(),
                )
                .build()
        });
    let permissions = store(&[&described])
        .describe_launch_permission(&region(), &image_id())
        .await
        .unwrap();
    assert_eq!(permissions.len(), 4);
    assert_eq!(permissions[0], LaunchPermission::Account(target()));
    assert!(matches!(permissions[1], LaunchPermission::Organization(_)));
    assert!(matches!(
        permissions[2],
        LaunchPermission::OrganizationalUnit(_)
    ));
    assert_eq!(permissions[3], LaunchPermission::Public);
}

#[tokio::test]
async fn describe_launch_permission_fails_for_another_accounts_image() {
    let denied = mock!(Client::describe_image_attribute).then_error(|| {
        DescribeImageAttributeError::generic(error(
            "AuthFailure",
            "Not authorized for image:ami-0fedcba9876543210",
        ))
    });
    assert_error(
        store(&[&denied])
            .describe_launch_permission(&region(), &image_id())
            .await,
        ErrorKind::AccessDenied,
        "AuthFailure",
        IMAGE,
    );
}

// ---------------------------------------------------------------- snapshots

#[tokio::test]
async fn describe_snapshots_reads_key_arns_across_pages() {
    let pages = mock!(Client::describe_snapshots)
        .match_requests(|r| r.snapshot_ids() == [SNAPSHOT, "snap-0fedcba9876543210"])
        .then_compute_output(|r| {
            let (id, next) = match r.next_token() {
                None => (SNAPSHOT, Some("page-2")),
                Some(_) => ("snap-0fedcba9876543210", None),
            };
            DescribeSnapshotsOutput::builder()
                .snapshots(
                    ec2::Snapshot::builder()
                        .snapshot_id(id)
                        .owner_id("111111111111")
                        .state(ec2::SnapshotState::Completed)
                        .volume_size(8)
                        .encrypted(true)
                        .kms_key_id(KEY)
                        .build(),
                )
                .set_next_token(next.map(str::to_owned))
                .build()
        });
    let snapshots = store(&[&pages])
        .describe_snapshots(
            &region(),
            &[
                snapshot_id(),
                SnapshotId::parse("snap-0fedcba9876543210").unwrap(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(pages.num_calls(), 2);
    assert_eq!(snapshots.len(), 2);
    assert_eq!(snapshots[0].id, snapshot_id());
    assert_eq!(snapshots[0].state, SnapshotState::Completed);
    assert_eq!(snapshots[1].kms_key.as_ref(), Some(&key()));
}

#[tokio::test]
async fn describe_snapshots_without_ids_lists_the_callers_own() {
    let own = mock!(Client::describe_snapshots)
        .match_requests(|r| r.owner_ids() == ["self"] && r.snapshot_ids().is_empty())
        .then_output(|| DescribeSnapshotsOutput::builder().build());
    let snapshots = store(&[&own])
        .describe_snapshots(&region(), &[])
        .await
        .unwrap();
    assert!(snapshots.is_empty());
    assert_eq!(own.num_calls(), 1);
}

#[tokio::test]
async fn describe_snapshots_fails_for_an_unknown_snapshot() {
    let unknown = mock!(Client::describe_snapshots).then_error(|| {
        DescribeSnapshotsError::generic(error(
            "InvalidSnapshot.NotFound",
            "The snapshot 'snap-0123456789abcdef0' does not exist.",
        ))
    });
    assert_error(
        store(&[&unknown])
            .describe_snapshots(&region(), &[snapshot_id()])
            .await,
        ErrorKind::NotFound,
        "InvalidSnapshot.NotFound",
        SNAPSHOT,
    );
}

#[tokio::test]
async fn modify_create_volume_permission_adds_then_removes() {
    let added = mock!(Client::modify_snapshot_attribute)
        .match_requests(|r| {
            r.snapshot_id() == Some(SNAPSHOT)
                && r.attribute() == Some(&ec2::SnapshotAttributeName::CreateVolumePermission)
                && r.operation_type() == Some(&OperationType::Add)
                && r.user_ids() == [TARGET]
                && r.group_names().is_empty()
        })
        .then_output(|| ModifySnapshotAttributeOutput::builder().build());
    let removed = mock!(Client::modify_snapshot_attribute)
        .match_requests(|r| {
            r.operation_type() == Some(&OperationType::Remove)
                && r.user_ids().is_empty()
                && r.group_names() == ["all"]
        })
        .then_output(|| ModifySnapshotAttributeOutput::builder().build());
    store(&[&added, &removed])
        .modify_create_volume_permission(
            &region(),
            &snapshot_id(),
            &PermissionChange {
                add: vec![VolumePermission::Account(target())],
                remove: vec![VolumePermission::Public],
            },
        )
        .await
        .unwrap();
    assert_eq!((added.num_calls(), removed.num_calls()), (1, 1));
}

#[tokio::test]
async fn modify_create_volume_permission_of_an_aws_managed_snapshot_is_unsupported() {
    let refused = mock!(Client::modify_snapshot_attribute).then_error(|| {
        ModifySnapshotAttributeError::generic(error(
            "OperationNotPermitted",
            "Encrypted snapshots with EBS default key cannot be shared",
        ))
    });
    assert_error(
        store(&[&refused])
            .modify_create_volume_permission(
                &region(),
                &snapshot_id(),
                &PermissionChange::add(vec![VolumePermission::Account(target())]),
            )
            .await,
        ErrorKind::Unsupported,
        "OperationNotPermitted",
        SNAPSHOT,
    );
}

#[tokio::test]
async fn describe_create_volume_permission_reads_accounts_and_public() {
    let described = mock!(Client::describe_snapshot_attribute)
        .match_requests(|r| {
            r.snapshot_id() == Some(SNAPSHOT)
                && r.attribute() == Some(&ec2::SnapshotAttributeName::CreateVolumePermission)
        })
        .then_output(|| {
            DescribeSnapshotAttributeOutput::builder()
                .create_volume_permissions(
                    ec2::CreateVolumePermission::builder()
                        .user_id(TARGET)
                        .build(),
                )
                .create_volume_permissions(
                    ec2::CreateVolumePermission::builder()
                        .group(PermissionGroup::All)
                        .build(),
                )
                .build()
        });
    let permissions = store(&[&described])
        .describe_create_volume_permission(&region(), &snapshot_id())
        .await
        .unwrap();
    assert_eq!(
        permissions,
        [
            VolumePermission::Account(target()),
            VolumePermission::Public
        ]
    );
}

#[tokio::test]
async fn describe_create_volume_permission_fails_for_an_unknown_snapshot() {
    let unknown = mock!(Client::describe_snapshot_attribute).then_error(|| {
        DescribeSnapshotAttributeError::generic(error(
            "InvalidSnapshot.NotFound",
            "The snapshot 'snap-0123456789abcdef0' does not exist.",
        ))
    });
    assert_error(
        store(&[&unknown])
            .describe_create_volume_permission(&region(), &snapshot_id())
            .await,
        ErrorKind::NotFound,
        "InvalidSnapshot.NotFound",
        SNAPSHOT,
    );
}

#[tokio::test]
async fn delete_snapshot_sends_the_id() {
    let deleted = mock!(Client::delete_snapshot)
        .match_requests(|r| r.snapshot_id() == Some(SNAPSHOT))
        .then_output(|| DeleteSnapshotOutput::builder().build());
    store(&[&deleted])
        .delete_snapshot(&region(), &snapshot_id())
        .await
        .unwrap();
    assert_eq!(deleted.num_calls(), 1);
}

#[tokio::test]
async fn delete_snapshot_of_a_registered_image_is_a_conflict() {
    let in_use = mock!(Client::delete_snapshot).then_error(|| {
        DeleteSnapshotError::generic(error(
            "InvalidSnapshot.InUse",
            "The snapshot snap-0123456789abcdef0 is currently in use by ami-0fedcba9876543210",
        ))
    });
    assert_error(
        store(&[&in_use])
            .delete_snapshot(&region(), &snapshot_id())
            .await,
        ErrorKind::Conflict,
        "InvalidSnapshot.InUse",
        SNAPSHOT,
    );
}

// ---------------------------------------------------------------- EBS defaults

#[tokio::test]
async fn ebs_defaults_read_both_settings() {
    let by_default = mock!(Client::get_ebs_encryption_by_default).then_output(|| {
        GetEbsEncryptionByDefaultOutput::builder()
            .ebs_encryption_by_default(true)
            .build()
    });
    let default_key = mock!(Client::get_ebs_default_kms_key_id).then_output(|| {
        GetEbsDefaultKmsKeyIdOutput::builder()
            .kms_key_id(KEY)
            .build()
    });
    let defaults = store(&[&by_default, &default_key])
        .ebs_defaults(&region())
        .await
        .unwrap();
    assert!(defaults.encryption_by_default);
    assert_eq!(defaults.kms_key, KeyRef::Arn(key()));
}

#[tokio::test]
async fn ebs_defaults_without_a_named_key_are_aws_ebs() {
    let by_default = mock!(Client::get_ebs_encryption_by_default)
        .then_output(|| GetEbsEncryptionByDefaultOutput::builder().build());
    let default_key = mock!(Client::get_ebs_default_kms_key_id)
        .then_output(|| GetEbsDefaultKmsKeyIdOutput::builder().build());
    let defaults = store(&[&by_default, &default_key])
        .ebs_defaults(&region())
        .await
        .unwrap();
    assert!(!defaults.encryption_by_default);
    assert_eq!(
        defaults.kms_key,
        KeyRef::Alias(amishare_core::AliasName::aws_ebs())
    );
}

#[tokio::test]
async fn ebs_defaults_fail_without_permission() {
    let denied = mock!(Client::get_ebs_encryption_by_default).then_error(|| {
        GetEbsEncryptionByDefaultError::generic(error(
            "UnauthorizedOperation",
            "You are not authorized to perform this operation.",
        ))
    });
    assert_error(
        store(&[&denied]).ebs_defaults(&region()).await,
        ErrorKind::AccessDenied,
        "UnauthorizedOperation",
        "ap-northeast-1",
    );
}
