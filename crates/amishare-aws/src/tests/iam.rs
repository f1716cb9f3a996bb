//! `AwsDirectory` against aws-smithy-mocks rules: every kind of policy a user
//! or role can hold is read and decoded, and a refusal names the call.

use amishare_core::diagnose::Directory;
use amishare_core::{ErrorKind, PrincipalArn};
use aws_sdk_iam::config::retry::RetryConfig;
use aws_sdk_iam::error::ErrorMetadata;
use aws_sdk_iam::operation::get_group_policy::GetGroupPolicyOutput;
use aws_sdk_iam::operation::get_policy::GetPolicyOutput;
use aws_sdk_iam::operation::get_policy_version::GetPolicyVersionOutput;
use aws_sdk_iam::operation::get_role_policy::GetRolePolicyOutput;
use aws_sdk_iam::operation::get_user_policy::GetUserPolicyOutput;
use aws_sdk_iam::operation::list_attached_group_policies::ListAttachedGroupPoliciesOutput;
use aws_sdk_iam::operation::list_attached_role_policies::ListAttachedRolePoliciesOutput;
use aws_sdk_iam::operation::list_attached_user_policies::ListAttachedUserPoliciesOutput;
use aws_sdk_iam::operation::list_group_policies::ListGroupPoliciesOutput;
use aws_sdk_iam::operation::list_groups_for_user::ListGroupsForUserOutput;
use aws_sdk_iam::operation::list_role_policies::{ListRolePoliciesError, ListRolePoliciesOutput};
use aws_sdk_iam::operation::list_user_policies::ListUserPoliciesOutput;
use aws_sdk_iam::types::{AttachedPolicy, Group, Policy as IamPolicy, PolicyVersion};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};

use crate::AwsDirectory;

/// `{"Version":"2012-10-17","Statement":[{"Sid":"<sid>","Effect":"Allow","Action":"kms:Decrypt","Resource":"*"}]}`, URL-encoded as IAM returns it.
fn encoded(sid: &str) -> String {
    format!(
        "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Sid%22%3A%22{sid}%22%2C%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22kms%3ADecrypt%22%2C%22Resource%22%3A%22%2A%22%7D%5D%7D"
    )
}

fn directory(rules: &[&Rule]) -> AwsDirectory {
    let client = mock_client!(aws_sdk_iam, RuleMode::MatchAny, rules, |c| {
        c.retry_config(RetryConfig::disabled())
    });
    AwsDirectory::from_conf(client.config().clone())
}

fn sids(facts: &amishare_core::diagnose::PrincipalFacts) -> Vec<String> {
    facts
        .policies
        .iter()
        .flat_map(|p| p.document.statements.iter())
        .filter_map(|s| s.sid.clone())
        .collect()
}

#[tokio::test]
async fn a_users_inline_attached_and_group_policies_are_read() {
    const MANAGED: &str = "arn:aws:iam::222222222222:policy/use-shared-keys";
    let inline_names = mock!(aws_sdk_iam::Client::list_user_policies)
        .match_requests(|r| r.user_name() == Some("b-user"))
        .then_output(|| {
            ListUserPoliciesOutput::builder()
                .policy_names("inline")
                .build()
                .unwrap()
        });
    let inline = mock!(aws_sdk_iam::Client::get_user_policy)
        .match_requests(|r| r.policy_name() == Some("inline"))
        .then_output(|| {
            GetUserPolicyOutput::builder()
                .user_name("b-user")
                .policy_name("inline")
                .policy_document(encoded("Inline"))
                .build()
                .unwrap()
        });
    let attached = mock!(aws_sdk_iam::Client::list_attached_user_policies).then_output(|| {
        ListAttachedUserPoliciesOutput::builder()
            .attached_policies(AttachedPolicy::builder().policy_arn(MANAGED).build())
            .build()
    });
    let policy = mock!(aws_sdk_iam::Client::get_policy)
        .match_requests(|r| r.policy_arn() == Some(MANAGED))
        .then_output(|| {
            GetPolicyOutput::builder()
                .policy(IamPolicy::builder().default_version_id("v3").build())
                .build()
        });
    let version = mock!(aws_sdk_iam::Client::get_policy_version)
        .match_requests(|r| r.version_id() == Some("v3"))
        .then_output(|| {
            GetPolicyVersionOutput::builder()
                .policy_version(
                    PolicyVersion::builder()
                        .document(encoded("Managed"))
                        .build(),
                )
                .build()
        });
    let groups = mock!(aws_sdk_iam::Client::list_groups_for_user).then_output(|| {
        ListGroupsForUserOutput::builder()
            .groups(
                Group::builder()
                    .path("/")
                    .group_name("devs")
                    .group_id("AGPAEXAMPLE")
                    .arn("arn:aws:iam::222222222222:group/devs")
                    .create_date(aws_smithy_types::DateTime::from_secs(0))
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    });
    let group_names = mock!(aws_sdk_iam::Client::list_group_policies).then_output(|| {
        ListGroupPoliciesOutput::builder()
            .policy_names("group-inline")
            .build()
            .unwrap()
    });
    let group_inline = mock!(aws_sdk_iam::Client::get_group_policy).then_output(|| {
        GetGroupPolicyOutput::builder()
            .group_name("devs")
            .policy_name("group-inline")
            .policy_document(encoded("Group"))
            .build()
            .unwrap()
    });
    let group_attached = mock!(aws_sdk_iam::Client::list_attached_group_policies)
        .then_output(|| ListAttachedGroupPoliciesOutput::builder().build());
    let dir = directory(&[
        &inline_names,
        &inline,
        &attached,
        &policy,
        &version,
        &groups,
        &group_names,
        &group_inline,
        &group_attached,
    ]);
    let user = PrincipalArn::parse("arn:aws:iam::222222222222:user/team/b-user").unwrap();
    let facts = dir.principal(&user).await.unwrap().expect("facts");
    assert_eq!(sids(&facts), ["Inline", "Managed", "Group"]);
    assert_eq!(
        facts
            .policies
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["b-user/inline", MANAGED, "group devs/group-inline"]
    );
    assert!(!facts.org_known, "Organizations is not read");
}

#[tokio::test]
async fn a_role_sessions_policies_are_its_roles() {
    let names = mock!(aws_sdk_iam::Client::list_role_policies)
        .match_requests(|r| r.role_name() == Some("deploy"))
        .then_output(|| {
            ListRolePoliciesOutput::builder()
                .policy_names("keys")
                .build()
                .unwrap()
        });
    let inline = mock!(aws_sdk_iam::Client::get_role_policy).then_output(|| {
        GetRolePolicyOutput::builder()
            .role_name("deploy")
            .policy_name("keys")
            .policy_document(encoded("Role"))
            .build()
            .unwrap()
    });
    let attached = mock!(aws_sdk_iam::Client::list_attached_role_policies)
        .then_output(|| ListAttachedRolePoliciesOutput::builder().build());
    let dir = directory(&[&names, &inline, &attached]);
    let session = PrincipalArn::parse("arn:aws:sts::222222222222:assumed-role/deploy/s1").unwrap();
    let facts = dir.principal(&session).await.unwrap().expect("facts");
    assert_eq!(sids(&facts), ["Role"]);
    let root = PrincipalArn::parse("arn:aws:iam::222222222222:root").unwrap();
    let facts = dir.principal(&root).await.unwrap().expect("facts");
    assert!(
        facts.policies.is_empty(),
        "the root has no identity policies"
    );
}

#[tokio::test]
async fn a_refusal_names_the_call() {
    let denied = mock!(aws_sdk_iam::Client::list_role_policies).then_error(|| {
        ListRolePoliciesError::generic(
            ErrorMetadata::builder()
                .code("AccessDenied")
                .message("User: arn:aws:iam::222222222222:user/b-user is not authorized to perform: iam:ListRolePolicies")
                .build(),
        )
    });
    let dir = directory(&[&denied]);
    let role = PrincipalArn::parse("arn:aws:iam::222222222222:role/deploy").unwrap();
    let err = dir.principal(&role).await.expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::AccessDenied, "{err}");
    assert!(err.message().contains("ListRolePolicies deploy"), "{err}");
}
