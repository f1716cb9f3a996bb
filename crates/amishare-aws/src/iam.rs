//! [`AwsDirectory`]: the doctor's [`Directory`] over the IAM API, so that the
//! target's side of a diagnosis can judge its own IAM policies.

use amishare_core::diagnose::{Directory, NamedPolicy, PrincipalFacts};
use amishare_core::{Error, ErrorKind, PrincipalArn, PrincipalKind, Result};
use amishare_policy::Policy;
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_iam::types::AttachedPolicy;

use crate::error::{from_sdk, missing};

/// Every item of a paginated IAM listing, or the error naming the call.
macro_rules! all {
    ($request:expr, $operation:literal, $subject:expr) => {
        $request
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .map_err(|err| from_sdk($operation, &$subject, err))?
    };
}

/// Reads a user's or role's identity policies with IAM: inline and attached
/// managed policies, and for a user those of its groups.
///
/// It needs `iam:List*Policies`, `iam:Get*Policy`, `iam:GetPolicy`,
/// `iam:GetPolicyVersion` and `iam:ListGroupsForUser` in the principal's
/// account. It does not read Organizations (so organization conditions stay
/// unknown), permission boundaries or service control policies.
#[derive(Debug, Clone)]
pub struct AwsDirectory {
    iam: aws_sdk_iam::Client,
}

impl AwsDirectory {
    /// A directory reading IAM with the credentials of `config`. No layer
    /// above the directory retries its reads, so where `config` turns the
    /// SDK's retries off (as [`load`](crate::load) does by default, for the
    /// stores under amishare's retry layer) its IAM client keeps the SDK's
    /// standard retries.
    pub fn new(config: &SdkConfig) -> AwsDirectory {
        let mut iam = aws_sdk_iam::config::Builder::from(config);
        if config
            .retry_config()
            .is_none_or(|retry| retry.max_attempts() <= 1)
        {
            iam = iam.retry_config(aws_config::retry::RetryConfig::standard());
        }
        AwsDirectory::from_conf(iam.build())
    }

    /// A directory over a client configured elsewhere (tests add mocks).
    pub(crate) fn from_conf(config: aws_sdk_iam::Config) -> AwsDirectory {
        AwsDirectory {
            iam: aws_sdk_iam::Client::from_conf(config),
        }
    }
}

/// IAM returns policy documents URL-encoded.
fn document(name: &str, encoded: &str) -> Result<NamedPolicy> {
    let text = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .map_err(|err| {
            Error::new(
                ErrorKind::Service,
                format!("IAM policy {name}: the document is not URL-encoded UTF-8: {err}"),
            )
        })?;
    let document = Policy::parse(&text).map_err(|err| {
        Error::new(
            ErrorKind::Service,
            format!("IAM policy {name} does not parse: {err}"),
        )
    })?;
    Ok(NamedPolicy {
        name: name.to_owned(),
        document,
    })
}

/// The last `/`-separated part of a user or role ARN: its name.
fn name_of(arn: &PrincipalArn) -> &str {
    arn.as_str().rsplit('/').next().unwrap_or_default()
}

impl AwsDirectory {
    /// The managed policies attached: each one's default version.
    async fn managed(&self, attached: &[AttachedPolicy]) -> Result<Vec<NamedPolicy>> {
        let mut policies = Vec::new();
        for arn in attached.iter().filter_map(AttachedPolicy::policy_arn) {
            let policy = self
                .iam
                .get_policy()
                .policy_arn(arn)
                .send()
                .await
                .map_err(|err| from_sdk("GetPolicy", &arn, err))?;
            let version = policy
                .policy()
                .and_then(|p| p.default_version_id())
                .ok_or_else(|| missing("GetPolicy", "Policy.DefaultVersionId"))?;
            let got = self
                .iam
                .get_policy_version()
                .policy_arn(arn)
                .version_id(version)
                .send()
                .await
                .map_err(|err| from_sdk("GetPolicyVersion", &arn, err))?;
            let encoded = got
                .policy_version()
                .and_then(|v| v.document())
                .ok_or_else(|| missing("GetPolicyVersion", "PolicyVersion.Document"))?;
            policies.push(document(arn, encoded)?);
        }
        Ok(policies)
    }

    async fn user(&self, user: &str) -> Result<Vec<NamedPolicy>> {
        let mut policies = Vec::new();
        let names = all!(
            self.iam.list_user_policies().user_name(user),
            "ListUserPolicies",
            user
        );
        for name in names {
            let got = self
                .iam
                .get_user_policy()
                .user_name(user)
                .policy_name(&name)
                .send()
                .await
                .map_err(|err| from_sdk("GetUserPolicy", &name, err))?;
            policies.push(document(&format!("{user}/{name}"), got.policy_document())?);
        }
        let attached = all!(
            self.iam.list_attached_user_policies().user_name(user),
            "ListAttachedUserPolicies",
            user
        );
        policies.extend(self.managed(&attached).await?);
        let groups = all!(
            self.iam.list_groups_for_user().user_name(user),
            "ListGroupsForUser",
            user
        );
        for group in groups {
            let group = group.group_name();
            let names = all!(
                self.iam.list_group_policies().group_name(group),
                "ListGroupPolicies",
                group
            );
            for name in names {
                let got = self
                    .iam
                    .get_group_policy()
                    .group_name(group)
                    .policy_name(&name)
                    .send()
                    .await
                    .map_err(|err| from_sdk("GetGroupPolicy", &name, err))?;
                policies.push(document(
                    &format!("group {group}/{name}"),
                    got.policy_document(),
                )?);
            }
            let attached = all!(
                self.iam.list_attached_group_policies().group_name(group),
                "ListAttachedGroupPolicies",
                group
            );
            policies.extend(self.managed(&attached).await?);
        }
        Ok(policies)
    }

    async fn role(&self, role: &str) -> Result<Vec<NamedPolicy>> {
        let mut policies = Vec::new();
        let names = all!(
            self.iam.list_role_policies().role_name(role),
            "ListRolePolicies",
            role
        );
        for name in names {
            let got = self
                .iam
                .get_role_policy()
                .role_name(role)
                .policy_name(&name)
                .send()
                .await
                .map_err(|err| from_sdk("GetRolePolicy", &name, err))?;
            policies.push(document(&format!("{role}/{name}"), got.policy_document())?);
        }
        let attached = all!(
            self.iam.list_attached_role_policies().role_name(role),
            "ListAttachedRolePolicies",
            role
        );
        policies.extend(self.managed(&attached).await?);
        Ok(policies)
    }
}

#[async_trait]
impl Directory for AwsDirectory {
    async fn principal(&self, principal: &PrincipalArn) -> Result<Option<PrincipalFacts>> {
        let policies = match principal.kind() {
            // The root user has no identity policies: IAM allows it everything.
            PrincipalKind::Root => Vec::new(),
            PrincipalKind::User => self.user(name_of(principal)).await?,
            PrincipalKind::Role => self.role(name_of(principal)).await?,
            PrincipalKind::AssumedRole => match principal.role_arn() {
                Some(role) => self.role(name_of(&role)).await?,
                None => return Ok(None),
            },
        };
        Ok(Some(PrincipalFacts {
            org_known: false,
            org_id: None,
            org_paths: Vec::new(),
            policies,
        }))
    }
}
