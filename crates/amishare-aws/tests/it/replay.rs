//! Every store operation at the wire level: the SDK's real serializers,
//! signer and deserializers, with recorded-shape responses replayed from
//! `testdata/replay/` (success) and `testdata/errors/` (failure). EC2 and
//! STS form bodies are compared as sets of `&`-separated pairs; KMS bodies
//! as JSON.

use std::collections::BTreeMap;

use amishare_aws::{AwsImageStore, AwsKeyStore};
use amishare_core::store::{
    CopyImageRequest, CreateGrantRequest, CreateImageRequest, CreateKeyRequest, ImageQuery,
    ImageState, ImageStore, InstanceState, KeyManager, KeyState, KeyStore, LaunchPermission,
    PermissionChange, RunInstancesRequest, VolumePermission,
};
use amishare_core::{
    AccountId, AliasName, ErrorKind, GrantId, ImageId, InstanceId, KeyArn, KeyId, KeyRef,
    PrincipalArn, Region, SnapshotId,
};
use aws_smithy_http_client::test_util::StaticReplayClient;
use aws_smithy_types::body::SdkBody;
use serde_json::json;

use crate::support::{json, key, region, replay, sent, testdata, xml, KEY, REGION};

const IMAGE: &str = "ami-0fedcba9876543210";
const SOURCE: &str = "ami-0a1b2c3d4e5f60718";
const SNAPSHOT: &str = "snap-0123456789abcdef0";
const INSTANCE: &str = "i-0123456789abcdef0";
const GRANT: &str = "0c237476b39f8bc44e45212e08498fbe3151305030726c0590dd8d3e9f3d6a60";
const TARGET: &str = "222222222222";
const TARGET_USER: &str = "arn:aws:iam::222222222222:user/b-user";

async fn keys(responses: Vec<http::Response<SdkBody>>) -> (AwsKeyStore, StaticReplayClient) {
    let (config, http) = replay(responses).await;
    (AwsKeyStore::new(&config), http)
}

async fn images(responses: Vec<http::Response<SdkBody>>) -> (AwsImageStore, StaticReplayClient) {
    let (config, http) = replay(responses).await;
    (AwsImageStore::new(&config), http)
}

fn image_id() -> ImageId {
    ImageId::parse(IMAGE).unwrap()
}

fn snapshot_id() -> SnapshotId {
    SnapshotId::parse(SNAPSHOT).unwrap()
}

fn target() -> AccountId {
    AccountId::parse(TARGET).unwrap()
}

/// Asserts an error's kind and code, and that the message names `subject`.
#[track_caller]
fn assert_error<T: std::fmt::Debug>(
    result: amishare_core::Result<T>,
    kind: ErrorKind,
    code: &str,
    subject: &str,
) -> amishare_core::Error {
    let err = result.expect_err("the call fails");
    assert_eq!((err.kind(), err.code()), (kind, Some(code)), "{err}");
    assert!(err.message().contains(subject), "names {subject:?}: {err}");
    err
}

// ---------------------------------------------------------------- STS

#[tokio::test]
async fn caller_sends_get_caller_identity_to_sts() {
    let (keys, http) = keys(vec![xml(200, "replay/sts/get_caller_identity.xml")]).await;
    let caller = keys.caller().await.unwrap();
    assert_eq!(caller.account.as_str(), "111111111111");
    assert_eq!(
        caller.arn.as_str(),
        "arn:aws:sts::111111111111:assumed-role/amishare-admin/amishare"
    );
    let requests = sent(&http);
    assert_eq!(
        requests[0].uri,
        format!("https://sts.{REGION}.amazonaws.com/")
    );
    assert_eq!(
        requests[0].form(),
        ["Action=GetCallerIdentity", "Version=2011-06-15"]
            .map(str::to_owned)
            .into()
    );
}

#[tokio::test]
async fn caller_fails_with_expired_credentials() {
    let expired = http::Response::builder()
        .status(403)
        .body(SdkBody::from(
            r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>ExpiredToken</Code><Message>The security token included in the request is expired</Message></Error><RequestId>r-sts</RequestId></ErrorResponse>"#,
        ))
        .unwrap();
    let (keys, _) = keys(vec![expired]).await;
    assert_error(
        keys.caller().await,
        ErrorKind::AccessDenied,
        "ExpiredToken",
        "expired",
    );
}

// ---------------------------------------------------------------- KMS

#[tokio::test]
async fn create_key_sends_description_policy_and_tags() {
    let (keys, http) = keys(vec![json(200, Some("replay/kms/create_key.json"))]).await;
    let created = keys
        .create_key(
            &region(),
            &CreateKeyRequest {
                description: "amishare key for golden".to_owned(),
                policy: Some("{\"Version\":\"2012-10-17\",\"Statement\":[]}".to_owned()),
                tags: BTreeMap::from([("team".to_owned(), "platform".to_owned())]),
            },
        )
        .await
        .unwrap();
    assert_eq!(created.arn, key());
    assert_eq!(created.state, KeyState::Enabled);
    assert_eq!(created.manager, KeyManager::Customer);
    sent(&http)[0].assert_kms(
        "CreateKey",
        json!({
            "Description": "amishare key for golden",
            "Policy": "{\"Version\":\"2012-10-17\",\"Statement\":[]}",
            "Tags": [{"TagKey": "team", "TagValue": "platform"}],
        }),
    );
}

#[tokio::test]
async fn create_key_fails_on_a_lockout_policy() {
    let (keys, _) = keys(vec![json(
        400,
        Some("errors/kms/MalformedPolicyDocumentException.json"),
    )])
    .await;
    assert_error(
        keys.create_key(&region(), &CreateKeyRequest::default())
            .await,
        ErrorKind::InvalidInput,
        "MalformedPolicyDocumentException",
        "update the key policy in the future",
    );
}

#[tokio::test]
async fn describe_key_sends_the_key_arn_across_accounts() {
    let (keys, http) = keys(vec![json(200, Some("replay/kms/describe_key.json"))]).await;
    let described = keys
        .describe_key(&region(), &KeyRef::Arn(key()))
        .await
        .unwrap();
    assert_eq!(described.state, KeyState::PendingDeletion);
    sent(&http)[0].assert_kms("DescribeKey", json!({"KeyId": KEY}));
}

#[tokio::test]
async fn describe_key_fails_without_access() {
    let (keys, _) = keys(vec![json(
        400,
        Some("errors/kms/AccessDeniedException.json"),
    )])
    .await;
    let err = assert_error(
        keys.describe_key(&region(), &KeyRef::Arn(key())).await,
        ErrorKind::AccessDenied,
        "AccessDeniedException",
        KEY,
    );
    assert!(err.message().contains("no resource-based policy"), "{err}");
}

#[tokio::test]
async fn create_alias_sends_alias_and_key_id() {
    let (keys, http) = keys(vec![json(200, None)]).await;
    keys.create_alias(
        &region(),
        &AliasName::parse("alias/amishare").unwrap(),
        key().key_id(),
    )
    .await
    .unwrap();
    sent(&http)[0].assert_kms(
        "CreateAlias",
        json!({"AliasName": "alias/amishare", "TargetKeyId": "1234abcd-12ab-34cd-56ef-1234567890ab"}),
    );
}

#[tokio::test]
async fn create_alias_fails_when_it_exists() {
    let (keys, _) = keys(vec![json(
        400,
        Some("errors/kms/AlreadyExistsException.json"),
    )])
    .await;
    assert_error(
        keys.create_alias(
            &region(),
            &AliasName::parse("alias/amishare").unwrap(),
            &KeyId::parse("1234abcd-12ab-34cd-56ef-1234567890ab").unwrap(),
        )
        .await,
        ErrorKind::Conflict,
        "AlreadyExistsException",
        "alias/amishare",
    );
}

#[tokio::test]
async fn get_key_policy_sends_the_key_arn() {
    let (keys, http) = keys(vec![json(200, Some("replay/kms/get_key_policy.json"))]).await;
    let policy = keys.get_key_policy(&key()).await.unwrap();
    assert!(policy.contains("Enable IAM User Permissions"), "{policy}");
    sent(&http)[0].assert_kms(
        "GetKeyPolicy",
        json!({"KeyId": KEY, "PolicyName": "default"}),
    );
}

#[tokio::test]
async fn get_key_policy_fails_for_an_unknown_key() {
    let (keys, _) = keys(vec![json(400, Some("errors/kms/NotFoundException.json"))]).await;
    assert_error(
        keys.get_key_policy(&key()).await,
        ErrorKind::NotFound,
        "NotFoundException",
        "does not exist",
    );
}

#[tokio::test]
async fn put_key_policy_sends_the_policy() {
    let (keys, http) = keys(vec![json(200, None)]).await;
    keys.put_key_policy(&key(), "{\"Statement\":[]}")
        .await
        .unwrap();
    sent(&http)[0].assert_kms(
        "PutKeyPolicy",
        json!({"KeyId": KEY, "PolicyName": "default", "Policy": "{\"Statement\":[]}"}),
    );
}

#[tokio::test]
async fn put_key_policy_fails_over_the_size_limit() {
    let (keys, _) = keys(vec![json(
        400,
        Some("errors/kms/LimitExceededException.json"),
    )])
    .await;
    assert_error(
        keys.put_key_policy(&key(), "{}").await,
        ErrorKind::InvalidInput,
        "LimitExceededException",
        KEY,
    );
}

#[tokio::test]
async fn list_grants_pages_with_the_marker() {
    let (keys, http) = keys(vec![
        json(200, Some("replay/kms/list_grants_page1.json")),
        json(200, Some("replay/kms/list_grants_page2.json")),
    ])
    .await;
    let grants = keys.list_grants(&key()).await.unwrap();
    assert_eq!(grants.len(), 2);
    assert_eq!(grants[0].name.as_deref(), Some("amishare-b-user"));
    assert_eq!(grants[0].operations, ["Decrypt", "DescribeKey"]);
    assert_eq!(grants[1].operations, ["CreateGrant"]);
    let requests = sent(&http);
    requests[0].assert_kms("ListGrants", json!({"KeyId": KEY}));
    requests[1].assert_kms(
        "ListGrants",
        json!({"KeyId": KEY, "Marker": "grants-page-2"}),
    );
}

#[tokio::test]
async fn list_grants_fails_without_access() {
    let (keys, _) = keys(vec![json(
        400,
        Some("errors/kms/AccessDeniedException.json"),
    )])
    .await;
    assert_error(
        keys.list_grants(&key()).await,
        ErrorKind::AccessDenied,
        "AccessDeniedException",
        KEY,
    );
}

fn grant_request() -> CreateGrantRequest {
    CreateGrantRequest {
        grantee: PrincipalArn::parse(TARGET_USER).unwrap(),
        operations: vec!["Decrypt".to_owned(), "CreateGrant".to_owned()],
        name: Some("amishare-b-user".to_owned()),
        retiring_principal: None,
    }
}

#[tokio::test]
async fn create_grant_sends_key_arn_grantee_operations_and_name() {
    let (keys, http) = keys(vec![json(200, Some("replay/kms/create_grant.json"))]).await;
    let id = keys.create_grant(&key(), &grant_request()).await.unwrap();
    assert_eq!(id.as_str(), GRANT);
    sent(&http)[0].assert_kms(
        "CreateGrant",
        json!({
            "KeyId": KEY,
            "GranteePrincipal": TARGET_USER,
            "Operations": ["Decrypt", "CreateGrant"],
            "Name": "amishare-b-user",
        }),
    );
}

#[tokio::test]
async fn create_grant_fails_on_a_disabled_key() {
    let (keys, _) = keys(vec![json(400, Some("errors/kms/DisabledException.json"))]).await;
    assert_error(
        keys.create_grant(&key(), &grant_request()).await,
        ErrorKind::InvalidKeyState,
        "DisabledException",
        "is disabled",
    );
}

#[tokio::test]
async fn revoke_grant_sends_key_arn_and_grant_id() {
    let (keys, http) = keys(vec![json(200, None)]).await;
    keys.revoke_grant(&key(), &GrantId::parse(GRANT).unwrap())
        .await
        .unwrap();
    sent(&http)[0].assert_kms("RevokeGrant", json!({"KeyId": KEY, "GrantId": GRANT}));
}

#[tokio::test]
async fn revoke_grant_of_an_unknown_grant_is_not_found() {
    let (keys, _) = keys(vec![json(
        400,
        Some("errors/kms/InvalidGrantIdException.json"),
    )])
    .await;
    assert_error(
        keys.revoke_grant(&key(), &GrantId::parse(GRANT).unwrap())
            .await,
        ErrorKind::NotFound,
        "InvalidGrantIdException",
        GRANT,
    );
}

#[tokio::test]
async fn key_calls_go_to_the_keys_region() {
    let (keys, http) = keys(vec![
        json(200, Some("replay/kms/get_key_policy.json")),
        json(200, Some("replay/kms/describe_key.json")),
    ])
    .await;
    let western = KeyArn::parse(
        "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    )
    .unwrap();
    keys.get_key_policy(&western).await.unwrap();
    keys.describe_key(&Region::parse("us-east-2").unwrap(), &KeyRef::Arn(key()))
        .await
        .unwrap();
    let requests = sent(&http);
    for (request, region) in requests.iter().zip(["eu-west-1", "us-east-2"]) {
        assert_eq!(request.uri, format!("https://kms.{region}.amazonaws.com/"));
        let authorization = request.authorization.as_deref().unwrap();
        assert!(
            authorization.contains(&format!("/{region}/kms/aws4_request")),
            "signed for {region}: {authorization}"
        );
    }
}

// ---------------------------------------------------------------- EC2: images

#[tokio::test]
async fn create_image_sends_instance_name_and_tags() {
    let (images, http) = images(vec![xml(200, "replay/ec2/create_image.xml")]).await;
    let id = images
        .create_image(
            &region(),
            &CreateImageRequest {
                instance: InstanceId::parse(INSTANCE).unwrap(),
                name: "golden".to_owned(),
                tags: BTreeMap::from([(
                    "amishare:source-instance".to_owned(),
                    INSTANCE.to_owned(),
                )]),
            },
        )
        .await
        .unwrap();
    assert_eq!(id.as_str(), SOURCE);
    let requests = sent(&http);
    assert_eq!(
        requests[0].uri,
        format!("https://ec2.{REGION}.amazonaws.com/")
    );
    requests[0].assert_form(&[
        "Action=CreateImage",
        "InstanceId=i-0123456789abcdef0",
        "Name=golden",
        "TagSpecification.1.ResourceType=image",
        "TagSpecification.1.Tag.1.Key=amishare:source-instance",
        "TagSpecification.1.Tag.1.Value=i-0123456789abcdef0",
    ]);
}

#[tokio::test]
async fn create_image_fails_on_a_duplicate_name() {
    let (images, _) = images(vec![xml(400, "errors/ec2/InvalidAMIName.Duplicate.xml")]).await;
    assert_error(
        images
            .create_image(
                &region(),
                &CreateImageRequest {
                    instance: InstanceId::parse(INSTANCE).unwrap(),
                    name: "golden".to_owned(),
                    tags: BTreeMap::new(),
                },
            )
            .await,
        ErrorKind::Conflict,
        "InvalidAMIName.Duplicate",
        INSTANCE,
    );
}

fn copy_request() -> CopyImageRequest {
    CopyImageRequest {
        source_image: ImageId::parse(SOURCE).unwrap(),
        source_region: region(),
        name: "golden-copy".to_owned(),
        encrypted: Some(true),
        kms_key: Some(KeyRef::Arn(key())),
        client_token: Some("amishare-0a1b2c3d".to_owned()),
        tags: BTreeMap::from([("amishare:key".to_owned(), KEY.to_owned())]),
    }
}

#[tokio::test]
async fn copy_image_sends_encryption_key_arn_and_client_token() {
    let (images, http) = images(vec![xml(200, "replay/ec2/copy_image.xml")]).await;
    let id = images.copy_image(&region(), &copy_request()).await.unwrap();
    assert_eq!(id, image_id());
    sent(&http)[0].assert_form(&[
        "Action=CopyImage",
        "SourceImageId=ami-0a1b2c3d4e5f60718",
        "SourceRegion=ap-northeast-1",
        "Name=golden-copy",
        "Encrypted=true",
        &format!("KmsKeyId={KEY}"),
        "ClientToken=amishare-0a1b2c3d",
        "TagSpecification.1.ResourceType=image",
        "TagSpecification.1.Tag.1.Key=amishare:key",
        &format!("TagSpecification.1.Tag.1.Value={KEY}"),
    ]);
}

#[tokio::test]
async fn copy_image_of_unshared_storage_is_refused() {
    let (images, _) = images(vec![xml(400, "errors/ec2/InvalidRequest.storage.xml")]).await;
    let err = assert_error(
        images.copy_image(&region(), &copy_request()).await,
        ErrorKind::AccessDenied,
        "InvalidRequest",
        SOURCE,
    );
    assert!(err
        .message()
        .ends_with("You do not have permission to access the storage of this ami"));
}

#[tokio::test]
async fn describe_images_reads_devices_tags_and_failures() {
    let (images, http) = images(vec![xml(200, "replay/ec2/describe_images.xml")]).await;
    let query = ImageQuery {
        owners: vec![amishare_core::store::ImageOwner::Me],
        tags: BTreeMap::from([("amishare:source-image".to_owned(), vec![SOURCE.to_owned()])]),
        ..ImageQuery::default()
    };
    let found = images.describe_images(&region(), &query).await.unwrap();
    assert_eq!(found.len(), 2);
    let copy = &found[0];
    assert_eq!(copy.id, image_id());
    assert_eq!(copy.state, ImageState::Available);
    assert_eq!(copy.block_devices.len(), 1);
    assert_eq!(copy.block_devices[0].snapshot_id, snapshot_id());
    assert!(copy.block_devices[0].encrypted);
    assert_eq!(copy.tags.get("amishare:key").map(String::as_str), Some(KEY));
    assert_eq!(
        copy.source_image.as_ref().map(ImageId::as_str),
        Some(SOURCE)
    );
    let failed = &found[1];
    assert_eq!(failed.state, ImageState::Failed);
    let reason = failed.state_reason.as_ref().unwrap();
    assert_eq!(reason.code, "Server.InternalError");
    assert_eq!(reason.message, "Copy image failed with an internal error");
    sent(&http)[0].assert_form(&[
        "Action=DescribeImages",
        "Owner.1=self",
        "Filter.1.Name=tag:amishare:source-image",
        "Filter.1.Value.1=ami-0a1b2c3d4e5f60718",
    ]);
}

#[tokio::test]
async fn describe_images_follows_next_token() {
    let (images, http) = images(vec![
        xml(200, "replay/ec2/describe_images_page1.xml"),
        xml(200, "replay/ec2/describe_images_page2.xml"),
    ])
    .await;
    let found = images
        .describe_images(&region(), &ImageQuery::default())
        .await
        .unwrap();
    let names: Vec<&str> = found.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["page-one", "page-two"]);
    let requests = sent(&http);
    requests[0].assert_form(&["Action=DescribeImages"]);
    requests[1].assert_form(&["Action=DescribeImages", "NextToken=page-2-token"]);
}

#[tokio::test]
async fn describe_images_fails_for_an_image_not_shared() {
    let (images, http) = images(vec![xml(400, "errors/ec2/InvalidAMIID.NotFound.xml")]).await;
    assert_error(
        images
            .describe_images(&region(), &ImageQuery::ids([image_id()]))
            .await,
        ErrorKind::NotFound,
        "InvalidAMIID.NotFound",
        IMAGE,
    );
    sent(&http)[0].assert_form(&["Action=DescribeImages", "ImageId.1=ami-0fedcba9876543210"]);
}

#[tokio::test]
async fn deregister_image_deletes_its_snapshots_when_asked() {
    let (images, http) = images(vec![xml(200, "replay/ec2/deregister_image.xml")]).await;
    images
        .deregister_image(&region(), &image_id(), true)
        .await
        .unwrap();
    sent(&http)[0].assert_form(&[
        "Action=DeregisterImage",
        "ImageId=ami-0fedcba9876543210",
        "DeleteAssociatedSnapshots=true",
    ]);
}

#[tokio::test]
async fn deregister_image_reports_snapshots_it_could_not_delete() {
    let (images, _) = images(vec![xml(200, "replay/ec2/deregister_image_partial.xml")]).await;
    let err = images
        .deregister_image(&region(), &image_id(), true)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert!(err.message().contains("missing-permissions"), "{err}");
}

#[tokio::test]
async fn deregister_image_fails_for_an_image_already_gone() {
    let (images, _) = images(vec![xml(400, "errors/ec2/InvalidAMIID.Unavailable.xml")]).await;
    assert_error(
        images.deregister_image(&region(), &image_id(), false).await,
        ErrorKind::Conflict,
        "InvalidAMIID.Unavailable",
        IMAGE,
    );
}

// ---------------------------------------------------------------- EC2: permissions

#[tokio::test]
async fn modify_launch_permission_sends_add_and_remove_entries() {
    let (images, http) = images(vec![xml(200, "replay/ec2/modify_image_attribute.xml")]).await;
    images
        .modify_launch_permission(
            &region(),
            &image_id(),
            &PermissionChange {
                add: vec![LaunchPermission::Account(target())],
                remove: vec![LaunchPermission::Public],
            },
        )
        .await
        .unwrap();
    sent(&http)[0].assert_form(&[
        "Action=ModifyImageAttribute",
        "ImageId=ami-0fedcba9876543210",
        "LaunchPermission.Add.1.UserId=222222222222",
        "LaunchPermission.Remove.1.Group=all",
    ]);
}

#[tokio::test]
async fn modify_launch_permission_of_an_aws_managed_image_is_unsupported() {
    let (images, _) = images(vec![xml(
        400,
        "errors/ec2/InvalidParameter.aws-managed.xml",
    )])
    .await;
    assert_error(
        images
            .modify_launch_permission(
                &region(),
                &image_id(),
                &PermissionChange::add(vec![LaunchPermission::Account(target())]),
            )
            .await,
        ErrorKind::Unsupported,
        "InvalidParameter",
        "AWS Managed CMK",
    );
}

#[tokio::test]
async fn describe_launch_permission_reads_accounts_organizations_and_units() {
    let (images, http) = images(vec![xml(200, "replay/ec2/describe_image_attribute.xml")]).await;
    let permissions = images
        .describe_launch_permission(&region(), &image_id())
        .await
        .unwrap();
    assert_eq!(permissions.len(), 3);
    assert_eq!(permissions[0], LaunchPermission::Account(target()));
    assert!(matches!(permissions[1], LaunchPermission::Organization(_)));
    assert!(matches!(
        permissions[2],
        LaunchPermission::OrganizationalUnit(_)
    ));
    sent(&http)[0].assert_form(&[
        "Action=DescribeImageAttribute",
        "ImageId=ami-0fedcba9876543210",
        "Attribute=launchPermission",
    ]);
}

#[tokio::test]
async fn describe_launch_permission_of_another_accounts_image_fails() {
    let (images, _) = images(vec![xml(400, "errors/ec2/AuthFailure.xml")]).await;
    assert_error(
        images
            .describe_launch_permission(&region(), &image_id())
            .await,
        ErrorKind::AccessDenied,
        "AuthFailure",
        IMAGE,
    );
}

#[tokio::test]
async fn modify_create_volume_permission_sends_one_call_per_operation() {
    let (images, http) = images(vec![
        xml(200, "replay/ec2/modify_snapshot_attribute.xml"),
        xml(200, "replay/ec2/modify_snapshot_attribute.xml"),
    ])
    .await;
    images
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
    let requests = sent(&http);
    requests[0].assert_form(&[
        "Action=ModifySnapshotAttribute",
        "SnapshotId=snap-0123456789abcdef0",
        "Attribute=createVolumePermission",
        "OperationType=add",
        "UserId.1=222222222222",
    ]);
    requests[1].assert_form(&[
        "Action=ModifySnapshotAttribute",
        "SnapshotId=snap-0123456789abcdef0",
        "Attribute=createVolumePermission",
        "OperationType=remove",
        "UserGroup.1=all",
    ]);
}

#[tokio::test]
async fn modify_create_volume_permission_of_an_aws_managed_snapshot_fails() {
    let (images, _) = images(vec![xml(400, "errors/ec2/OperationNotPermitted.xml")]).await;
    assert_error(
        images
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
async fn describe_create_volume_permission_reads_accounts() {
    let (images, http) = images(vec![xml(200, "replay/ec2/describe_snapshot_attribute.xml")]).await;
    let permissions = images
        .describe_create_volume_permission(&region(), &snapshot_id())
        .await
        .unwrap();
    assert_eq!(permissions, [VolumePermission::Account(target())]);
    sent(&http)[0].assert_form(&[
        "Action=DescribeSnapshotAttribute",
        "SnapshotId=snap-0123456789abcdef0",
        "Attribute=createVolumePermission",
    ]);
}

#[tokio::test]
async fn describe_create_volume_permission_of_an_unknown_snapshot_fails() {
    let (images, _) = images(vec![xml(400, "errors/ec2/InvalidSnapshot.NotFound.xml")]).await;
    assert_error(
        images
            .describe_create_volume_permission(&region(), &snapshot_id())
            .await,
        ErrorKind::NotFound,
        "InvalidSnapshot.NotFound",
        SNAPSHOT,
    );
}

// ---------------------------------------------------------------- EC2: snapshots

#[tokio::test]
async fn describe_snapshots_pages_and_reads_key_arns() {
    let (images, http) = images(vec![
        xml(200, "replay/ec2/describe_snapshots_page1.xml"),
        xml(200, "replay/ec2/describe_snapshots_page2.xml"),
    ])
    .await;
    let ids = [
        snapshot_id(),
        SnapshotId::parse("snap-0fedcba9876543210").unwrap(),
    ];
    let snapshots = images.describe_snapshots(&region(), &ids).await.unwrap();
    assert_eq!(snapshots.len(), 2);
    assert!(snapshots.iter().all(|s| s.kms_key.as_ref() == Some(&key())));
    assert!(snapshots.iter().all(|s| s.owner.as_str() == "111111111111"));
    let requests = sent(&http);
    requests[0].assert_form(&[
        "Action=DescribeSnapshots",
        "SnapshotId.1=snap-0123456789abcdef0",
        "SnapshotId.2=snap-0fedcba9876543210",
    ]);
    requests[1].assert_form(&[
        "Action=DescribeSnapshots",
        "SnapshotId.1=snap-0123456789abcdef0",
        "SnapshotId.2=snap-0fedcba9876543210",
        "NextToken=snapshots-2",
    ]);
}

#[tokio::test]
async fn describe_snapshots_of_an_unknown_snapshot_fails() {
    let (images, _) = images(vec![xml(400, "errors/ec2/InvalidSnapshot.NotFound.xml")]).await;
    assert_error(
        images.describe_snapshots(&region(), &[snapshot_id()]).await,
        ErrorKind::NotFound,
        "InvalidSnapshot.NotFound",
        SNAPSHOT,
    );
}

#[tokio::test]
async fn delete_snapshot_sends_the_id() {
    let (images, http) = images(vec![xml(200, "replay/ec2/delete_snapshot.xml")]).await;
    images
        .delete_snapshot(&region(), &snapshot_id())
        .await
        .unwrap();
    sent(&http)[0].assert_form(&["Action=DeleteSnapshot", "SnapshotId=snap-0123456789abcdef0"]);
}

#[tokio::test]
async fn delete_snapshot_in_use_is_a_conflict() {
    let (images, _) = images(vec![xml(400, "errors/ec2/InvalidSnapshot.InUse.xml")]).await;
    assert_error(
        images.delete_snapshot(&region(), &snapshot_id()).await,
        ErrorKind::Conflict,
        "InvalidSnapshot.InUse",
        "currently in use",
    );
}

// ---------------------------------------------------------------- EC2: instances

#[tokio::test]
async fn run_instances_sends_one_instance_and_reads_it_pending() {
    let (images, http) = images(vec![xml(200, "replay/ec2/run_instances.xml")]).await;
    let instance = images
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
        .await
        .unwrap();
    assert_eq!(instance.state, InstanceState::Pending);
    assert_eq!(instance.owner, target());
    let mut form = sent(&http)[0].form();
    let token = form
        .iter()
        .find(|p| p.starts_with("ClientToken="))
        .cloned()
        .expect("the SDK fills in an idempotency token");
    form.remove(&token);
    let expected: std::collections::BTreeSet<String> = [
        "Action=RunInstances",
        "Version=2016-11-15",
        "ImageId=ami-0fedcba9876543210",
        "InstanceType=t3.micro",
        "MinCount=1",
        "MaxCount=1",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(form, expected);
}

#[tokio::test]
async fn run_instances_with_an_unknown_instance_type_fails() {
    let (images, _) = images(vec![xml(400, "errors/ec2/InvalidParameterValue.xml")]).await;
    assert_error(
        images
            .run_instances(
                &region(),
                &RunInstancesRequest {
                    image: image_id(),
                    instance_type: "x1.nano".to_owned(),
                    subnet: None,
                    kms_key: None,
                    tags: BTreeMap::new(),
                    client_token: None,
                },
            )
            .await,
        ErrorKind::InvalidInput,
        "InvalidParameterValue",
        "x1.nano",
    );
}

#[tokio::test]
async fn describe_instances_reads_launch_failures_and_volumes() {
    let (images, http) = images(vec![
        xml(200, "replay/ec2/describe_instances.xml"),
        xml(200, "replay/ec2/describe_volumes.xml"),
    ])
    .await;
    let ids = [
        InstanceId::parse(INSTANCE).unwrap(),
        InstanceId::parse("i-0aaaabbbbccccdddd").unwrap(),
    ];
    let found = images.describe_instances(&region(), &ids).await.unwrap();
    assert_eq!(found[0].state, InstanceState::Terminated);
    let reason = found[0].state_reason.as_ref().unwrap();
    assert_eq!(
        (reason.code.as_str(), reason.message.as_str()),
        (
            "Server.InternalError",
            "Client.InternalError: Client error on launch"
        )
    );
    assert_eq!(found[1].state, InstanceState::Running);
    assert_eq!(found[1].volumes.len(), 1);
    assert!(found[1].volumes[0].encrypted);
    assert_eq!(
        found[1].volumes[0].kms_key.as_ref().unwrap().account(),
        &target()
    );
    let requests = sent(&http);
    requests[0].assert_form(&[
        "Action=DescribeInstances",
        "InstanceId.1=i-0123456789abcdef0",
        "InstanceId.2=i-0aaaabbbbccccdddd",
    ]);
    requests[1].assert_form(&[
        "Action=DescribeVolumes",
        "Filter.1.Name=attachment.instance-id",
        "Filter.1.Value.1=i-0aaaabbbbccccdddd",
    ]);
}

#[tokio::test]
async fn describe_instances_of_an_unknown_instance_fails() {
    let (images, _) = images(vec![xml(400, "errors/ec2/InvalidInstanceID.NotFound.xml")]).await;
    assert_error(
        images
            .describe_instances(&region(), &[InstanceId::parse(INSTANCE).unwrap()])
            .await,
        ErrorKind::NotFound,
        "InvalidInstanceID.NotFound",
        INSTANCE,
    );
}

#[tokio::test]
async fn terminate_instances_sends_the_ids() {
    let (images, http) = images(vec![xml(200, "replay/ec2/terminate_instances.xml")]).await;
    images
        .terminate_instances(&region(), &[InstanceId::parse(INSTANCE).unwrap()])
        .await
        .unwrap();
    sent(&http)[0].assert_form(&[
        "Action=TerminateInstances",
        "InstanceId.1=i-0123456789abcdef0",
    ]);
}

#[tokio::test]
async fn terminate_instances_without_permission_fails() {
    let (images, _) = images(vec![xml(403, "errors/ec2/UnauthorizedOperation.xml")]).await;
    assert_error(
        images
            .terminate_instances(&region(), &[InstanceId::parse(INSTANCE).unwrap()])
            .await,
        ErrorKind::AccessDenied,
        "UnauthorizedOperation",
        INSTANCE,
    );
}

#[tokio::test]
async fn ebs_defaults_read_both_settings() {
    let (images, http) = images(vec![
        xml(200, "replay/ec2/get_ebs_encryption_by_default.xml"),
        xml(200, "replay/ec2/get_ebs_default_kms_key_id.xml"),
    ])
    .await;
    let defaults = images.ebs_defaults(&region()).await.unwrap();
    assert!(defaults.encryption_by_default);
    assert_eq!(defaults.kms_key, KeyRef::Alias(AliasName::aws_ebs()));
    let requests = sent(&http);
    requests[0].assert_form(&["Action=GetEbsEncryptionByDefault"]);
    requests[1].assert_form(&["Action=GetEbsDefaultKmsKeyId"]);
}

#[tokio::test]
async fn ebs_defaults_without_permission_fail() {
    let (images, _) = images(vec![xml(403, "errors/ec2/UnauthorizedOperation.xml")]).await;
    assert_error(
        images.ebs_defaults(&region()).await,
        ErrorKind::AccessDenied,
        "UnauthorizedOperation",
        REGION,
    );
}

// ---------------------------------------------------------------- every error body

/// Every error body of `testdata/errors/`, served with its HTTP status to a
/// call of its service, becomes an error with its code, the kind
/// `expected.txt` gives, and the AWS message.
#[tokio::test]
async fn every_error_body_becomes_the_expected_error() {
    let table = testdata("errors/expected.txt");
    let mut checked = 0;
    for line in table
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (file, status) = (fields[0], fields[1].parse::<u16>().unwrap());
        let (kind, retryable) = fields[3].split_once('/').unwrap();
        let path = format!("errors/{file}");
        let err = if file.starts_with("ec2/") {
            let (images, _) = images(vec![xml(status, &path)]).await;
            images
                .describe_images(&region(), &ImageQuery::ids([image_id()]))
                .await
                .unwrap_err()
        } else {
            let (keys, _) = keys(vec![json(status, Some(&path))]).await;
            keys.describe_key(&region(), &KeyRef::Arn(key()))
                .await
                .unwrap_err()
        };
        assert_eq!(
            err.code(),
            Some(code_in(&testdata(&path)).as_str()),
            "{file}"
        );
        assert_eq!(format!("{:?}", err.kind()), kind, "{file}: {err}");
        assert_eq!(err.is_retryable().to_string(), retryable, "{file}: {err}");
        checked += 1;
    }
    assert!(40 < checked, "{checked} error bodies");
}

/// The code an error body carries, without a JSON `namespace#` prefix.
fn code_in(body: &str) -> String {
    if let Some(start) = body.find("<Code>") {
        let rest = &body[start + "<Code>".len()..];
        return rest[..rest.find("</Code>").unwrap()].to_owned();
    }
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    let code = json["__type"].as_str().unwrap();
    code.rsplit('#').next().unwrap().to_owned()
}
