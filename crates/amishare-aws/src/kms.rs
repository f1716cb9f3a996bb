//! [`AwsKeyStore`]: amishare's [`KeyStore`] over aws-sdk-kms, with the caller's
//! identity from STS `GetCallerIdentity`, and core's [`KeyAdmin`] over the
//! same clients.

use std::collections::BTreeMap;
use std::time::Duration;

use amishare_core::key_admin::{KeyAdmin, ScheduledDeletion};
use amishare_core::store::{
    Caller, CreateGrantRequest, CreateKeyRequest, Grant, KeyManager, KeyMetadata, KeyState,
    KeyStore,
};
use amishare_core::{
    AccountId, AliasName, Error, ErrorKind, GrantId, KeyArn, KeyId, KeyRef, PrincipalArn, Region,
    Result,
};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_kms::types::{self as kms, GrantOperation, KeyManagerType};

use crate::error::{from_sdk, missing, parse};
use crate::regional::Regional;

/// The region STS is called in when the configuration names none: STS
/// answers `GetCallerIdentity` the same in every region.
const STS_FALLBACK_REGION: &str = "us-east-1";

/// KMS as the principal of an SDK configuration, one client per region.
///
/// Calls that name a key by ARN (`GetKeyPolicy`, `ListGrants`, …) go to the
/// key's own region, and always pass the full key ARN, the only form KMS
/// accepts across accounts. [`KeyStore::caller`] asks STS.
pub struct AwsKeyStore {
    pub(crate) kms: Regional<aws_sdk_kms::Client>,
    sts: aws_sdk_sts::Client,
}

impl AwsKeyStore {
    /// A store acting with the credentials, endpoint, retry and timeout
    /// settings of `config`; each call's region overrides the configuration's.
    pub fn new(config: &SdkConfig) -> AwsKeyStore {
        let mut sts = aws_sdk_sts::config::Builder::from(config);
        if config.region().is_none() {
            sts = sts.region(aws_sdk_sts::config::Region::new(STS_FALLBACK_REGION));
        }
        AwsKeyStore::from_conf(aws_sdk_kms::Config::from(config), sts.build())
    }

    /// A store over service configurations built elsewhere (tests add mock interceptors).
    pub(crate) fn from_conf(kms: aws_sdk_kms::Config, sts: aws_sdk_sts::Config) -> AwsKeyStore {
        AwsKeyStore {
            kms: Regional::new(kms),
            sts: aws_sdk_sts::Client::from_conf(sts),
        }
    }
}

impl std::fmt::Debug for AwsKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKeyStore")
            .field("kms", &self.kms)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl KeyStore for AwsKeyStore {
    async fn caller(&self) -> Result<Caller> {
        const OP: &str = "GetCallerIdentity";
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| from_sdk(OP, &"", e))?;
        Ok(Caller {
            account: parse(OP, "Account", out.account(), AccountId::parse)?,
            arn: parse(OP, "Arn", out.arn(), PrincipalArn::parse)?,
        })
    }

    async fn create_key(&self, region: &Region, request: &CreateKeyRequest) -> Result<KeyMetadata> {
        const OP: &str = "CreateKey";
        let subject = format!("in {region}");
        let tags = request
            .tags
            .iter()
            .map(|(key, value)| {
                kms::Tag::builder()
                    .tag_key(key)
                    .tag_value(value)
                    .build()
                    .map_err(|e| {
                        Error::new(ErrorKind::InvalidInput, format!("{OP} tag {key:?}: {e}"))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let out = self
            .kms
            .get(region)
            .create_key()
            .description(&request.description)
            .set_policy(request.policy.clone())
            .set_tags((!tags.is_empty()).then_some(tags))
            .send()
            .await
            .map_err(|e| from_sdk(OP, &subject, e))?;
        key_metadata(OP, out.key_metadata())
    }

    async fn describe_key(&self, region: &Region, key: &KeyRef) -> Result<KeyMetadata> {
        const OP: &str = "DescribeKey";
        let out = self
            .kms
            .get(region)
            .describe_key()
            .key_id(key.to_string())
            .send()
            .await
            .map_err(|e| from_sdk(OP, key, e))?;
        key_metadata(OP, out.key_metadata())
    }

    async fn create_alias(&self, region: &Region, alias: &AliasName, key: &KeyId) -> Result<()> {
        const OP: &str = "CreateAlias";
        self.kms
            .get(region)
            .create_alias()
            .alias_name(alias.as_str())
            .target_key_id(key.as_str())
            .send()
            .await
            .map_err(|e| from_sdk(OP, &format!("{alias} for {key} in {region}"), e))?;
        Ok(())
    }

    async fn get_key_policy(&self, key: &KeyArn) -> Result<String> {
        const OP: &str = "GetKeyPolicy";
        let out = self
            .kms
            .get(key.region())
            .get_key_policy()
            .key_id(key.to_string())
            .policy_name("default")
            .send()
            .await
            .map_err(|e| from_sdk(OP, key, e))?;
        out.policy()
            .map(str::to_owned)
            .ok_or_else(|| missing(OP, "Policy"))
    }

    async fn put_key_policy(&self, key: &KeyArn, policy: &str) -> Result<()> {
        const OP: &str = "PutKeyPolicy";
        self.kms
            .get(key.region())
            .put_key_policy()
            .key_id(key.to_string())
            .policy_name("default")
            .policy(policy)
            .send()
            .await
            .map_err(|e| from_sdk(OP, key, e))?;
        Ok(())
    }

    async fn list_grants(&self, key: &KeyArn) -> Result<Vec<Grant>> {
        const OP: &str = "ListGrants";
        let mut pages = self
            .kms
            .get(key.region())
            .list_grants()
            .key_id(key.to_string())
            .into_paginator()
            .send();
        let mut grants = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk(OP, key, e))?;
            for entry in page.grants() {
                grants.push(grant(key, entry)?);
            }
        }
        Ok(grants)
    }

    async fn list_keys(&self, region: &Region) -> Result<Option<Vec<KeyArn>>> {
        const OP: &str = "ListKeys";
        let subject = format!("in {region}");
        let mut pages = self.kms.get(region).list_keys().into_paginator().send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk(OP, &subject, e))?;
            for entry in page.keys() {
                keys.push(parse(OP, "KeyArn", entry.key_arn(), KeyArn::parse)?);
            }
        }
        Ok(Some(keys))
    }

    async fn list_resource_tags(&self, key: &KeyArn) -> Result<BTreeMap<String, String>> {
        const OP: &str = "ListResourceTags";
        let mut pages = self
            .kms
            .get(key.region())
            .list_resource_tags()
            .key_id(key.to_string())
            .into_paginator()
            .send();
        let mut tags = BTreeMap::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk(OP, key, e))?;
            for tag in page.tags() {
                tags.insert(tag.tag_key().to_owned(), tag.tag_value().to_owned());
            }
        }
        Ok(tags)
    }

    async fn create_grant(&self, key: &KeyArn, request: &CreateGrantRequest) -> Result<GrantId> {
        const OP: &str = "CreateGrant";
        let operations = request
            .operations
            .iter()
            .map(|op| GrantOperation::from(op.as_str()))
            .collect();
        let out = self
            .kms
            .get(key.region())
            .create_grant()
            .key_id(key.to_string())
            .grantee_principal(request.grantee.as_str())
            .set_operations(Some(operations))
            .set_name(request.name.clone())
            .set_retiring_principal(
                request
                    .retiring_principal
                    .as_ref()
                    .map(|p| p.as_str().to_owned()),
            )
            .send()
            .await
            .map_err(|e| from_sdk(OP, &format!("{key} for {}", request.grantee), e))?;
        parse(OP, "GrantId", out.grant_id(), GrantId::parse)
    }

    async fn list_retirable_grants(
        &self,
        region: &Region,
        retiring: &PrincipalArn,
    ) -> Result<Vec<Grant>> {
        const OP: &str = "ListRetirableGrants";
        let mut pages = self
            .kms
            .get(region)
            .list_retirable_grants()
            .retiring_principal(retiring.as_str())
            .into_paginator()
            .send();
        let mut grants = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk(OP, retiring, e))?;
            for entry in page.grants() {
                // Each entry names its key by ARN: the grants are on keys of any account.
                let key = parse(OP, "KeyId", entry.key_id(), KeyArn::parse)?;
                grants.push(grant(&key, entry)?);
            }
        }
        Ok(grants)
    }

    async fn revoke_grant(&self, key: &KeyArn, grant: &GrantId) -> Result<()> {
        const OP: &str = "RevokeGrant";
        self.kms
            .get(key.region())
            .revoke_grant()
            .key_id(key.to_string())
            .grant_id(grant.as_str())
            .send()
            .await
            .map_err(|e| from_sdk(OP, &format!("{grant} on {key}"), e))?;
        Ok(())
    }
}

/// Key administration on the caller's own keys (`docs/spec/kms.md` §A7),
/// each call in the key's region with its full ARN.
#[async_trait]
impl KeyAdmin for AwsKeyStore {
    async fn enable_key(&self, key: &KeyArn) -> Result<()> {
        self.kms
            .get(key.region())
            .enable_key()
            .key_id(key.to_string())
            .send()
            .await
            .map_err(|e| from_sdk("EnableKey", key, e))?;
        Ok(())
    }

    async fn disable_key(&self, key: &KeyArn) -> Result<()> {
        self.kms
            .get(key.region())
            .disable_key()
            .key_id(key.to_string())
            .send()
            .await
            .map_err(|e| from_sdk("DisableKey", key, e))?;
        Ok(())
    }

    async fn schedule_key_deletion(
        &self,
        key: &KeyArn,
        window_days: Option<u32>,
    ) -> Result<ScheduledDeletion> {
        const OP: &str = "ScheduleKeyDeletion";
        // Past i32, KMS's own range check answers, as for any other day count.
        let days = window_days.map(|days| i32::try_from(days).unwrap_or(i32::MAX));
        let out = self
            .kms
            .get(key.region())
            .schedule_key_deletion()
            .key_id(key.to_string())
            .set_pending_window_in_days(days)
            .send()
            .await
            .map_err(|e| from_sdk(OP, key, e))?;
        let window_days = out
            .pending_window_in_days()
            .and_then(|days| u32::try_from(days).ok())
            .ok_or_else(|| missing(OP, "PendingWindowInDays"))?;
        Ok(ScheduledDeletion {
            // The key asked about, by ARN: KMS answers its ARN, but
            // LocalStack answers the bare key ID.
            key: key.clone(),
            // Since the Unix epoch, as `WallClock` counts.
            deletion_at: out.deletion_date().map(|date| {
                Duration::new(u64::try_from(date.secs()).unwrap_or(0), date.subsec_nanos())
            }),
            window_days,
        })
    }

    async fn cancel_key_deletion(&self, key: &KeyArn) -> Result<()> {
        self.kms
            .get(key.region())
            .cancel_key_deletion()
            .key_id(key.to_string())
            .send()
            .await
            .map_err(|e| from_sdk("CancelKeyDeletion", key, e))?;
        Ok(())
    }
}

/// `KeyMetadata` as amishare sees it.
///
/// KMS states other than `Enabled`, `Disabled` and `PendingDeletion` leave a
/// key unusable for EBS for the time being (`PendingImport`, `Unavailable`,
/// `Creating`, `Updating`), so they read as `Disabled`; `PendingReplicaDeletion`
/// reads as `PendingDeletion`. A key whose manager is not `CUSTOMER` is
/// treated as AWS-managed: amishare never shares it.
fn key_metadata(operation: &str, metadata: Option<&kms::KeyMetadata>) -> Result<KeyMetadata> {
    let metadata = metadata.ok_or_else(|| missing(operation, "KeyMetadata"))?;
    let state = match metadata.key_state() {
        Some(kms::KeyState::Enabled) => KeyState::Enabled,
        Some(kms::KeyState::PendingDeletion | kms::KeyState::PendingReplicaDeletion) => {
            KeyState::PendingDeletion
        }
        Some(_) => KeyState::Disabled,
        None => return Err(missing(operation, "KeyMetadata.KeyState")),
    };
    let manager = match metadata.key_manager() {
        Some(KeyManagerType::Customer) => KeyManager::Customer,
        _ => KeyManager::Aws,
    };
    Ok(KeyMetadata {
        arn: parse(operation, "KeyMetadata.Arn", metadata.arn(), KeyArn::parse)?,
        state,
        manager,
        description: metadata.description().unwrap_or_default().to_owned(),
    })
}

/// A `ListGrants` entry. KMS names the issuing account by its root ARN; a
/// bare account ID is accepted too, and a missing one is the key's account.
fn grant(key: &KeyArn, entry: &kms::GrantListEntry) -> Result<Grant> {
    const OP: &str = "ListGrants";
    let issuing_account = match entry.issuing_account() {
        None => key.account().clone(),
        Some(issuer) => match AccountId::parse(issuer) {
            Ok(account) => account,
            Err(_) => parse(OP, "IssuingAccount", Some(issuer), PrincipalArn::parse)?
                .account()
                .clone(),
        },
    };
    let grantee = entry
        .grantee_principal()
        .or(entry.grantee_service_principal())
        .ok_or_else(|| missing(OP, "GranteePrincipal"))?;
    Ok(Grant {
        id: parse(OP, "GrantId", entry.grant_id(), GrantId::parse)?,
        name: entry.name().filter(|n| !n.is_empty()).map(str::to_owned),
        grantee: grantee.to_owned(),
        operations: entry
            .operations()
            .iter()
            .map(|op| op.as_str().to_owned())
            .collect(),
        issuing_account,
        retiring_principal: entry.retiring_principal().map(str::to_owned),
        key: match entry.key_id() {
            Some(id) => KeyArn::parse(id).ok().or_else(|| Some(key.clone())),
            None => Some(key.clone()),
        },
    })
}
