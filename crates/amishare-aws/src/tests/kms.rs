//! `AwsKeyStore` against aws-smithy-mocks rules: what each operation sends,
//! how it reads the answer, and how each failure comes back.

use std::collections::BTreeMap;

use amishare_core::key_admin::{KeyAdmin, ScheduledDeletion};
use amishare_core::store::{CreateGrantRequest, CreateKeyRequest, KeyManager, KeyState, KeyStore};
use amishare_core::{AliasName, ErrorKind, GrantId, KeyId, KeyRef, PrincipalArn};
use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::error::ErrorMetadata;
use aws_sdk_kms::operation::cancel_key_deletion::CancelKeyDeletionOutput;
use aws_sdk_kms::operation::create_alias::{CreateAliasError, CreateAliasOutput};
use aws_sdk_kms::operation::create_grant::{CreateGrantError, CreateGrantOutput};
use aws_sdk_kms::operation::create_key::{CreateKeyError, CreateKeyOutput};
use aws_sdk_kms::operation::describe_key::{DescribeKeyError, DescribeKeyOutput};
use aws_sdk_kms::operation::disable_key::DisableKeyOutput;
use aws_sdk_kms::operation::enable_key::{EnableKeyError, EnableKeyOutput};
use aws_sdk_kms::operation::get_key_policy::{GetKeyPolicyError, GetKeyPolicyOutput};
use aws_sdk_kms::operation::list_grants::{ListGrantsError, ListGrantsOutput};
use aws_sdk_kms::operation::put_key_policy::{PutKeyPolicyError, PutKeyPolicyOutput};
use aws_sdk_kms::operation::revoke_grant::{RevokeGrantError, RevokeGrantOutput};
use aws_sdk_kms::operation::schedule_key_deletion::ScheduleKeyDeletionOutput;
use aws_sdk_kms::primitives::DateTime;
use aws_sdk_kms::types::error::{
    AlreadyExistsException, DisabledException, InvalidGrantIdException, KmsInvalidStateException,
    LimitExceededException, MalformedPolicyDocumentException, NotFoundException,
};
use aws_sdk_kms::types::{self as kms, GrantOperation, KeyManagerType};
use aws_sdk_kms::Client;
use aws_sdk_sts::operation::get_caller_identity::{
    GetCallerIdentityError, GetCallerIdentityOutput,
};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};

use super::{assert_error, key, region, KEY};
use crate::AwsKeyStore;

const GRANT: &str = "0c237476b39f8bc44e45212e08498fbe3151305030726c0590dd8d3e9f3d6a60";
const TARGET_USER: &str = "arn:aws:iam::222222222222:user/b-user";

/// A store whose KMS answers with `kms_rules` and STS with `sts_rules`; no retries.
fn store(kms_rules: &[&Rule], sts_rules: &[&Rule]) -> AwsKeyStore {
    let kms = mock_client!(aws_sdk_kms, RuleMode::MatchAny, kms_rules, |c| {
        c.retry_config(RetryConfig::disabled())
    });
    let sts = mock_client!(aws_sdk_sts, RuleMode::MatchAny, sts_rules, |c| {
        c.retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
    });
    AwsKeyStore::from_conf(kms.config().clone(), sts.config().clone())
}

/// Error metadata as the SDK's deserializer sets it, for modelled and
/// unmodelled errors alike: the code and message live here.
fn error_metadata(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

fn metadata(state: kms::KeyState, manager: KeyManagerType) -> kms::KeyMetadata {
    kms::KeyMetadata::builder()
        .aws_account_id("111111111111")
        .key_id("1234abcd-12ab-34cd-56ef-1234567890ab")
        .arn(KEY)
        .enabled(state == kms::KeyState::Enabled)
        .description("amishare key")
        .key_state(state)
        .key_manager(manager)
        .build()
        .unwrap()
}

#[tokio::test]
async fn caller_reads_sts_identity() {
    let identity = mock!(aws_sdk_sts::Client::get_caller_identity).then_output(|| {
        GetCallerIdentityOutput::builder()
            .account("111111111111")
            .arn("arn:aws:sts::111111111111:assumed-role/admin/amishare")
            .user_id("AROAEXAMPLE:amishare")
            .build()
    });
    let caller = store(&[], &[&identity]).caller().await.unwrap();
    assert_eq!(caller.account.as_str(), "111111111111");
    assert_eq!(
        caller.arn.role_arn().unwrap().as_str(),
        "arn:aws:iam::111111111111:role/admin"
    );
}

#[tokio::test]
async fn caller_fails_with_expired_credentials() {
    let expired = mock!(aws_sdk_sts::Client::get_caller_identity).then_error(|| {
        GetCallerIdentityError::generic(
            aws_sdk_sts::error::ErrorMetadata::builder()
                .code("ExpiredToken")
                .message("The security token included in the request is expired")
                .build(),
        )
    });
    let err = assert_error(
        store(&[], &[&expired]).caller().await,
        ErrorKind::AccessDenied,
        "ExpiredToken",
        "GetCallerIdentity",
    );
    assert!(err.message().contains("is expired"), "{err}");
}

#[tokio::test]
async fn caller_refuses_an_identity_it_cannot_name() {
    let federated = mock!(aws_sdk_sts::Client::get_caller_identity).then_output(|| {
        GetCallerIdentityOutput::builder()
            .account("111111111111")
            .arn("arn:aws:sts::111111111111:federated-user/bob")
            .build()
    });
    let err = store(&[], &[&federated]).caller().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Service);
    assert_eq!(err.code(), None);
    assert!(err.message().contains("federated-user/bob"), "{err}");
}

#[tokio::test]
async fn create_key_sends_description_policy_and_tags() {
    let created = mock!(Client::create_key)
        .match_requests(|r| {
            r.description() == Some("for golden")
                && r.policy() == Some("{\"Version\":\"2012-10-17\"}")
                && r.tags().len() == 1
                && r.tags()[0].tag_key() == "team"
                && r.tags()[0].tag_value() == "platform"
        })
        .then_output(|| {
            CreateKeyOutput::builder()
                .key_metadata(metadata(kms::KeyState::Enabled, KeyManagerType::Customer))
                .build()
        });
    let request = CreateKeyRequest {
        description: "for golden".to_owned(),
        policy: Some("{\"Version\":\"2012-10-17\"}".to_owned()),
        tags: BTreeMap::from([("team".to_owned(), "platform".to_owned())]),
    };
    let created_key = store(&[&created], &[])
        .create_key(&region(), &request)
        .await
        .unwrap();
    assert_eq!(created_key.arn, key());
    assert_eq!(created_key.state, KeyState::Enabled);
    assert_eq!(created_key.manager, KeyManager::Customer);
    assert_eq!(created_key.description, "amishare key");
    assert_eq!(created.num_calls(), 1);
}

#[tokio::test]
async fn create_key_without_policy_or_tags_leaves_them_out() {
    let created = mock!(Client::create_key)
        .match_requests(|r| r.policy().is_none() && r.tags().is_empty())
        .then_output(|| {
            CreateKeyOutput::builder()
                .key_metadata(metadata(kms::KeyState::Enabled, KeyManagerType::Customer))
                .build()
        });
    store(&[&created], &[])
        .create_key(&region(), &CreateKeyRequest::default())
        .await
        .unwrap();
    assert_eq!(created.num_calls(), 1);
}

#[tokio::test]
async fn create_key_fails_on_a_lockout_policy() {
    let refused = mock!(Client::create_key).then_error(|| {
        CreateKeyError::MalformedPolicyDocumentException(
            MalformedPolicyDocumentException::builder()
                .message(
                    "The new key policy will not allow you to update the key policy in the future.",
                )
                .meta(error_metadata(
                    "MalformedPolicyDocumentException",
                    "The new key policy will not allow you to update the key policy in the future.",
                ))
                .build(),
        )
    });
    let err = assert_error(
        store(&[&refused], &[])
            .create_key(&region(), &CreateKeyRequest::default())
            .await,
        ErrorKind::InvalidInput,
        "MalformedPolicyDocumentException",
        "CreateKey in ap-northeast-1",
    );
    assert!(err.message().contains("will not allow you"), "{err}");
}

#[tokio::test]
async fn create_key_without_metadata_is_a_service_error() {
    let empty = mock!(Client::create_key).then_output(|| CreateKeyOutput::builder().build());
    let err = store(&[&empty], &[])
        .create_key(&region(), &CreateKeyRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Service);
    assert!(err.message().contains("KeyMetadata"), "{err}");
}

#[tokio::test]
async fn describe_key_sends_the_key_as_given() {
    let described = mock!(Client::describe_key)
        .match_requests(|r| r.key_id() == Some(KEY))
        .then_output(|| {
            DescribeKeyOutput::builder()
                .key_metadata(metadata(kms::KeyState::Disabled, KeyManagerType::Aws))
                .build()
        });
    let alias = mock!(Client::describe_key)
        .match_requests(|r| r.key_id() == Some("alias/aws/ebs"))
        .then_output(|| {
            DescribeKeyOutput::builder()
                .key_metadata(metadata(kms::KeyState::Enabled, KeyManagerType::Aws))
                .build()
        });
    let keys = store(&[&described, &alias], &[]);
    let found = keys
        .describe_key(&region(), &KeyRef::Arn(key()))
        .await
        .unwrap();
    assert_eq!(found.state, KeyState::Disabled);
    assert_eq!(found.manager, KeyManager::Aws);
    keys.describe_key(&region(), &KeyRef::Alias(AliasName::aws_ebs()))
        .await
        .unwrap();
    assert_eq!((described.num_calls(), alias.num_calls()), (1, 1));
}

#[tokio::test]
async fn describe_key_reads_every_key_state() {
    let cases = [
        (kms::KeyState::Enabled, KeyState::Enabled),
        (kms::KeyState::Disabled, KeyState::Disabled),
        (kms::KeyState::PendingDeletion, KeyState::PendingDeletion),
        (
            kms::KeyState::PendingReplicaDeletion,
            KeyState::PendingDeletion,
        ),
        (kms::KeyState::PendingImport, KeyState::Disabled),
        (kms::KeyState::Unavailable, KeyState::Disabled),
        (kms::KeyState::Creating, KeyState::Disabled),
    ];
    for (sdk, expected) in cases {
        let answer = sdk.clone();
        let rule = mock!(Client::describe_key).then_output(move || {
            DescribeKeyOutput::builder()
                .key_metadata(metadata(answer.clone(), KeyManagerType::Customer))
                .build()
        });
        let found = store(&[&rule], &[])
            .describe_key(&region(), &KeyRef::Arn(key()))
            .await
            .unwrap();
        assert_eq!(found.state, expected, "{sdk:?}");
    }
}

#[tokio::test]
async fn describe_key_fails_across_accounts_without_access() {
    let denied = mock!(Client::describe_key).then_error(|| {
        DescribeKeyError::generic(error_metadata(
            "AccessDeniedException",
            "User: arn:aws:iam::222222222222:user/b-user is not authorized to perform: kms:DescribeKey",
        ))
    });
    let err = assert_error(
        store(&[&denied], &[])
            .describe_key(&region(), &KeyRef::Arn(key()))
            .await,
        ErrorKind::AccessDenied,
        "AccessDeniedException",
        KEY,
    );
    assert!(err.message().contains("kms:DescribeKey"), "{err}");
}

#[tokio::test]
async fn create_alias_names_the_key_by_id() {
    let created = mock!(Client::create_alias)
        .match_requests(|r| {
            r.alias_name() == Some("alias/amishare-golden")
                && r.target_key_id() == Some("1234abcd-12ab-34cd-56ef-1234567890ab")
        })
        .then_output(|| CreateAliasOutput::builder().build());
    store(&[&created], &[])
        .create_alias(
            &region(),
            &AliasName::parse("alias/amishare-golden").unwrap(),
            &KeyId::parse("1234abcd-12ab-34cd-56ef-1234567890ab").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(created.num_calls(), 1);
}

#[tokio::test]
async fn create_alias_fails_when_the_alias_exists() {
    let exists = mock!(Client::create_alias).then_error(|| {
        CreateAliasError::AlreadyExistsException(
            AlreadyExistsException::builder()
                .message("An alias with the name arn:aws:kms:ap-northeast-1:111111111111:alias/amishare-golden already exists")
                .meta(error_metadata("AlreadyExistsException", "An alias with the name arn:aws:kms:ap-northeast-1:111111111111:alias/amishare-golden already exists"))
                .build(),
        )
    });
    assert_error(
        store(&[&exists], &[])
            .create_alias(
                &region(),
                &AliasName::parse("alias/amishare-golden").unwrap(),
                key().key_id(),
            )
            .await,
        ErrorKind::Conflict,
        "AlreadyExistsException",
        "alias/amishare-golden",
    );
}

#[tokio::test]
async fn get_key_policy_reads_the_default_policy_by_key_arn() {
    let policy = mock!(Client::get_key_policy)
        .match_requests(|r| r.key_id() == Some(KEY) && r.policy_name() == Some("default"))
        .then_output(|| {
            GetKeyPolicyOutput::builder()
                .policy("{\"Version\":\"2012-10-17\",\"Statement\":[]}")
                .build()
        });
    let text = store(&[&policy], &[]).get_key_policy(&key()).await.unwrap();
    assert_eq!(text, "{\"Version\":\"2012-10-17\",\"Statement\":[]}");
}

#[tokio::test]
async fn get_key_policy_fails_for_an_unknown_key() {
    let missing = mock!(Client::get_key_policy).then_error(|| {
        GetKeyPolicyError::NotFoundException(
            NotFoundException::builder()
                .message(format!("Key '{KEY}' does not exist"))
                .meta(error_metadata(
                    "NotFoundException",
                    &format!("Key '{KEY}' does not exist"),
                ))
                .build(),
        )
    });
    assert_error(
        store(&[&missing], &[]).get_key_policy(&key()).await,
        ErrorKind::NotFound,
        "NotFoundException",
        "GetKeyPolicy",
    );
}

#[tokio::test]
async fn put_key_policy_sends_the_policy_by_key_arn() {
    let put = mock!(Client::put_key_policy)
        .match_requests(|r| {
            r.key_id() == Some(KEY)
                && r.policy_name() == Some("default")
                && r.policy() == Some("{}")
                && r.bypass_policy_lockout_safety_check().is_none()
        })
        .then_output(|| PutKeyPolicyOutput::builder().build());
    store(&[&put], &[])
        .put_key_policy(&key(), "{}")
        .await
        .unwrap();
    assert_eq!(put.num_calls(), 1);
}

#[tokio::test]
async fn put_key_policy_fails_when_the_policy_is_too_large() {
    let too_large = mock!(Client::put_key_policy).then_error(|| {
        PutKeyPolicyError::LimitExceededException(
            LimitExceededException::builder()
                .message("The key policy is 40000 bytes")
                .meta(error_metadata(
                    "LimitExceededException",
                    "The key policy is 40000 bytes",
                ))
                .build(),
        )
    });
    assert_error(
        store(&[&too_large], &[]).put_key_policy(&key(), "{}").await,
        ErrorKind::InvalidInput,
        "LimitExceededException",
        KEY,
    );
}

fn grant_entry(id: &str, name: &str, issuer: Option<&str>) -> kms::GrantListEntry {
    kms::GrantListEntry::builder()
        .key_id(KEY)
        .grant_id(id)
        .name(name)
        .grantee_principal(TARGET_USER)
        .set_issuing_account(issuer.map(str::to_owned))
        .operations(GrantOperation::Decrypt)
        .operations(GrantOperation::CreateGrant)
        .build()
}

#[tokio::test]
async fn list_grants_follows_the_marker_with_the_key_arn() {
    let pages = mock!(Client::list_grants)
        .match_requests(|r| r.key_id() == Some(KEY))
        .then_compute_output(|r| match r.marker() {
            None => ListGrantsOutput::builder()
                .grants(grant_entry(
                    GRANT,
                    "amishare-b-user",
                    Some("arn:aws:iam::111111111111:root"),
                ))
                .next_marker("page-2")
                .truncated(true)
                .build(),
            Some("page-2") => ListGrantsOutput::builder()
                .grants(grant_entry(
                    "91ad875e49b04a9d1f3bdeb84d821f9db6ea95e1098813f6d47f0c65fbe2a172",
                    "",
                    None,
                ))
                .truncated(false)
                .build(),
            Some(other) => panic!("unexpected marker {other}"),
        });
    let grants = store(&[&pages], &[]).list_grants(&key()).await.unwrap();
    assert_eq!(pages.num_calls(), 2);
    assert_eq!(grants.len(), 2);
    assert_eq!(grants[0].id.as_str(), GRANT);
    assert_eq!(grants[0].name.as_deref(), Some("amishare-b-user"));
    assert_eq!(grants[0].grantee, TARGET_USER);
    assert_eq!(grants[0].operations, vec!["Decrypt", "CreateGrant"]);
    assert_eq!(grants[0].issuing_account.as_str(), "111111111111");
    assert_eq!(grants[1].name, None, "an empty name is no name");
    assert_eq!(
        grants[1].issuing_account.as_str(),
        "111111111111",
        "a missing issuer is the key's account"
    );
}

#[tokio::test]
async fn list_grants_fails_without_access() {
    let denied = mock!(Client::list_grants).then_error(|| {
        ListGrantsError::generic(error_metadata(
            "AccessDeniedException",
            "not authorized to perform: kms:ListGrants",
        ))
    });
    assert_error(
        store(&[&denied], &[]).list_grants(&key()).await,
        ErrorKind::AccessDenied,
        "AccessDeniedException",
        KEY,
    );
}

fn grant_request() -> CreateGrantRequest {
    CreateGrantRequest {
        grantee: PrincipalArn::parse(TARGET_USER).unwrap(),
        operations: vec!["Decrypt".to_owned(), "DescribeKey".to_owned()],
        name: Some("amishare-b-user".to_owned()),
        retiring_principal: None,
    }
}

#[tokio::test]
async fn create_grant_sends_key_arn_grantee_operations_and_name() {
    let created = mock!(Client::create_grant)
        .match_requests(|r| {
            r.key_id() == Some(KEY)
                && r.grantee_principal() == Some(TARGET_USER)
                && r.operations() == [GrantOperation::Decrypt, GrantOperation::DescribeKey]
                && r.name() == Some("amishare-b-user")
        })
        .then_output(|| {
            CreateGrantOutput::builder()
                .grant_id(GRANT)
                .grant_token("token")
                .build()
        });
    let id = store(&[&created], &[])
        .create_grant(&key(), &grant_request())
        .await
        .unwrap();
    assert_eq!(id, GrantId::parse(GRANT).unwrap());
}

#[tokio::test]
async fn create_grant_fails_on_a_disabled_key() {
    let disabled = mock!(Client::create_grant).then_error(|| {
        CreateGrantError::DisabledException(
            DisabledException::builder()
                .message(format!("{KEY} is disabled."))
                .meta(error_metadata(
                    "DisabledException",
                    &format!("{KEY} is disabled."),
                ))
                .build(),
        )
    });
    let err = assert_error(
        store(&[&disabled], &[])
            .create_grant(&key(), &grant_request())
            .await,
        ErrorKind::InvalidKeyState,
        "DisabledException",
        TARGET_USER,
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn revoke_grant_sends_key_arn_and_grant() {
    let revoked = mock!(Client::revoke_grant)
        .match_requests(|r| r.key_id() == Some(KEY) && r.grant_id() == Some(GRANT))
        .then_output(|| RevokeGrantOutput::builder().build());
    store(&[&revoked], &[])
        .revoke_grant(&key(), &GrantId::parse(GRANT).unwrap())
        .await
        .unwrap();
    assert_eq!(revoked.num_calls(), 1);
}

#[tokio::test]
async fn revoke_grant_of_an_unknown_grant_is_not_found() {
    let unknown = mock!(Client::revoke_grant).then_error(|| {
        RevokeGrantError::InvalidGrantIdException(
            InvalidGrantIdException::builder()
                .message("Grant ID not found")
                .meta(error_metadata(
                    "InvalidGrantIdException",
                    "Grant ID not found",
                ))
                .build(),
        )
    });
    assert_error(
        store(&[&unknown], &[])
            .revoke_grant(&key(), &GrantId::parse(GRANT).unwrap())
            .await,
        ErrorKind::NotFound,
        "InvalidGrantIdException",
        GRANT,
    );
}

#[tokio::test]
async fn throttling_is_classified_retryable_once_retries_are_spent() {
    let throttled = mock!(Client::describe_key).then_error(|| {
        DescribeKeyError::generic(error_metadata("ThrottlingException", "Rate exceeded"))
    });
    let err = assert_error(
        store(&[&throttled], &[])
            .describe_key(&region(), &KeyRef::Arn(key()))
            .await,
        ErrorKind::Throttled,
        "ThrottlingException",
        KEY,
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn key_admin_sends_the_key_arn_and_reads_the_scheduled_deletion() {
    let enabled = mock!(Client::enable_key)
        .match_requests(|r| r.key_id() == Some(KEY))
        .then_output(|| EnableKeyOutput::builder().build());
    let disabled = mock!(Client::disable_key)
        .match_requests(|r| r.key_id() == Some(KEY))
        .then_output(|| DisableKeyOutput::builder().build());
    let scheduled = mock!(Client::schedule_key_deletion)
        .match_requests(|r| r.key_id() == Some(KEY) && r.pending_window_in_days() == Some(7))
        .then_output(|| {
            ScheduleKeyDeletionOutput::builder()
                .key_id(KEY)
                .deletion_date(DateTime::from_secs(1_800_000_000))
                .key_state(kms::KeyState::PendingDeletion)
                .pending_window_in_days(7)
                .build()
        });
    let cancelled = mock!(Client::cancel_key_deletion)
        .match_requests(|r| r.key_id() == Some(KEY))
        .then_output(|| CancelKeyDeletionOutput::builder().key_id(KEY).build());
    let store = store(&[&enabled, &disabled, &scheduled, &cancelled], &[]);
    KeyAdmin::disable_key(&store, &key()).await.unwrap();
    KeyAdmin::enable_key(&store, &key()).await.unwrap();
    let deletion = store.schedule_key_deletion(&key(), Some(7)).await.unwrap();
    assert_eq!(
        deletion,
        ScheduledDeletion {
            key: key(),
            deletion_at: Some(std::time::Duration::from_secs(1_800_000_000)),
            window_days: 7,
        }
    );
    store.cancel_key_deletion(&key()).await.unwrap();
    for (rule, name) in [
        (&enabled, "EnableKey"),
        (&disabled, "DisableKey"),
        (&scheduled, "ScheduleKeyDeletion"),
        (&cancelled, "CancelKeyDeletion"),
    ] {
        assert_eq!(rule.num_calls(), 1, "{name}");
    }
}

/// A multi-Region primary key with replicas has no deletion date yet.
#[tokio::test]
async fn a_scheduled_deletion_without_a_date_has_none() {
    let scheduled = mock!(Client::schedule_key_deletion)
        .match_requests(|r| r.pending_window_in_days().is_none())
        .then_output(|| {
            ScheduleKeyDeletionOutput::builder()
                .key_id(KEY)
                .key_state(kms::KeyState::PendingReplicaDeletion)
                .pending_window_in_days(30)
                .build()
        });
    let deletion = store(&[&scheduled], &[])
        .schedule_key_deletion(&key(), None)
        .await
        .unwrap();
    assert_eq!(deletion.deletion_at, None);
    assert_eq!(deletion.window_days, 30);
}

#[tokio::test]
async fn key_admin_of_a_key_pending_deletion_is_an_invalid_key_state() {
    const MESSAGE: &str = "is pending deletion.";
    let refused = mock!(Client::enable_key).then_error(|| {
        EnableKeyError::KmsInvalidStateException(
            KmsInvalidStateException::builder()
                .message(format!("{KEY} {MESSAGE}"))
                .meta(error_metadata(
                    "KMSInvalidStateException",
                    &format!("{KEY} {MESSAGE}"),
                ))
                .build(),
        )
    });
    assert_error(
        KeyAdmin::enable_key(&store(&[&refused], &[]), &key()).await,
        ErrorKind::InvalidKeyState,
        "KMSInvalidStateException",
        KEY,
    );
}
