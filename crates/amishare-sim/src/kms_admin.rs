//! KMS's key-administration operations, as AWS defines them: enabling,
//! disabling and scheduling the deletion of a key, its tags and its aliases
//! (`docs/spec/kms.md` §A3, §A7). They are the simulation's own API, which
//! `amishare sim serve` and a library user's tests call directly; amishare's
//! flow needs none of them, so they are not part of core's `KeyStore`. The
//! key-state ones are core's `KeyAdmin` too, which every backend implements.

use std::collections::BTreeMap;
use std::time::Duration;

use amishare_core::key_admin::KeyAdmin;
pub use amishare_core::key_admin::ScheduledDeletion;
use amishare_core::ops::Operation;
use amishare_core::store::KeyState;
use amishare_core::{AliasArn, AliasName, KeyArn, KeyId, KeyRef, Region, Result};
use amishare_policy::Context;
use async_trait::async_trait;

use crate::client::SimClient;
use crate::errors;
use crate::kms::refuse_pending_deletion;
use crate::limits;
use crate::state::Ctx;

/// The waiting period `ScheduleKeyDeletion` takes when none is given, and
/// its bounds, in days (§A3).
pub const DELETION_WINDOW_DAYS: (u32, u32, u32) = (7, 30, 30);

/// One entry of `ListAliases`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasEntry {
    /// The alias's ARN (its name, account and region).
    pub arn: AliasArn,
    /// The key it points to.
    pub target: KeyId,
}

impl Ctx<'_> {
    /// Resolves a key named by ID or ARN for an administration call and
    /// authorizes `action` on it by its key policy (the evaluation refuses
    /// another account's key: these actions do not work across accounts).
    fn administered_key(&mut self, region: &Region, key: &KeyRef, action: &str) -> Result<KeyId> {
        let id = self
            .kms
            .resolve(self.ids, self.who.account_id(), region, key)?;
        self.authorize_kms(&self.kms.keys[&id], action, Context::new())?;
        Ok(id)
    }

    /// `EnableKey` (§A3): a disabled key becomes `Enabled`; an enabled one
    /// stays so.
    pub(crate) fn enable_key(&mut self, region: &Region, key: &KeyRef) -> Result<()> {
        let id = self.administered_key(region, key, "kms:EnableKey")?;
        let key = self.kms.keys.get_mut(&id).expect("resolved");
        refuse_pending_deletion(key)?;
        key.state = KeyState::Enabled;
        Ok(())
    }

    /// `DisableKey` (§A3).
    pub(crate) fn disable_key(&mut self, region: &Region, key: &KeyRef) -> Result<()> {
        let id = self.administered_key(region, key, "kms:DisableKey")?;
        let key = self.kms.keys.get_mut(&id).expect("resolved");
        refuse_pending_deletion(key)?;
        key.state = KeyState::Disabled;
        Ok(())
    }

    /// `ScheduleKeyDeletion` (§A3): 7 to 30 days, 30 when omitted.
    pub(crate) fn schedule_key_deletion(
        &mut self,
        region: &Region,
        key: &KeyRef,
        window_days: Option<u32>,
    ) -> Result<ScheduledDeletion> {
        let (least, most, default) = DELETION_WINDOW_DAYS;
        let days = window_days.unwrap_or(default);
        if !(least..=most).contains(&days) {
            return Err(errors::validation(format!(
                "1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value between {least} and {most}"
            )));
        }
        let id = self.administered_key(region, key, "kms:ScheduleKeyDeletion")?;
        let now = self.now;
        let key = self.kms.keys.get_mut(&id).expect("resolved");
        refuse_pending_deletion(key)?;
        let deletion_at = now + Duration::from_secs(u64::from(days) * 86_400);
        key.state = KeyState::PendingDeletion;
        key.deletion_at = Some(deletion_at);
        Ok(ScheduledDeletion {
            key: key.arn.clone(),
            deletion_at: Some(deletion_at),
            window_days: days,
        })
    }

    /// `CancelKeyDeletion` (§A3): the key comes back `Disabled`, not
    /// `Enabled`.
    pub(crate) fn cancel_key_deletion(&mut self, region: &Region, key: &KeyRef) -> Result<KeyArn> {
        let id = self.administered_key(region, key, "kms:CancelKeyDeletion")?;
        let key = self.kms.keys.get_mut(&id).expect("resolved");
        if key.state != KeyState::PendingDeletion {
            return Err(errors::not_pending_deletion(&key.arn));
        }
        key.state = KeyState::Disabled;
        key.deletion_at = None;
        Ok(key.arn.clone())
    }

    /// `TagResource` (§A7): adds or replaces tags, within KMS's limits.
    pub(crate) fn tag_resource(
        &mut self,
        region: &Region,
        key: &KeyRef,
        tags: &BTreeMap<String, String>,
    ) -> Result<()> {
        let id = self.administered_key(region, key, "kms:TagResource")?;
        let key = self.kms.keys.get_mut(&id).expect("resolved");
        refuse_pending_deletion(key)?;
        let mut merged = key.tags.clone();
        merged.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        limits::kms_tags(&merged)?;
        key.tags = merged;
        Ok(())
    }

    /// `UntagResource` (§A7): removing a tag the key lacks is no error.
    pub(crate) fn untag_resource(
        &mut self,
        region: &Region,
        key: &KeyRef,
        tag_keys: &[String],
    ) -> Result<()> {
        let id = self.administered_key(region, key, "kms:UntagResource")?;
        let key = self.kms.keys.get_mut(&id).expect("resolved");
        refuse_pending_deletion(key)?;
        for tag in tag_keys {
            key.tags.remove(tag);
        }
        Ok(())
    }

    /// `ListAliases` (§A7): the caller's account's aliases in `region`, or
    /// those of one of its keys; an IAM-only permission.
    pub(crate) fn list_aliases(
        &mut self,
        region: &Region,
        key: Option<&KeyRef>,
    ) -> Result<Vec<AliasEntry>> {
        self.authorize_identity("kms:ListAliases", "*")
            .map_err(errors::kms_access_denied)?;
        let account = self.who.account_id().clone();
        let only = match key {
            Some(key) => Some(self.kms.resolve(self.ids, &account, region, key)?),
            None => None,
        };
        let Some(aliases) = self
            .kms
            .aliases
            .get(&account)
            .and_then(|regions| regions.get(region))
        else {
            return Ok(Vec::new());
        };
        Ok(aliases
            .iter()
            .filter(|(_, target)| only.as_ref().is_none_or(|id| id == *target))
            .map(|(alias, target)| AliasEntry {
                arn: AliasArn::new(region.clone(), account.clone(), alias.clone()),
                target: target.clone(),
            })
            .collect())
    }

    /// The key an alias of the caller's account points to, or AWS's
    /// `NotFoundException`; reserved `alias/aws/` names are refused as
    /// `CreateAlias` refuses them.
    fn own_alias(&self, region: &Region, alias: &AliasName) -> Result<KeyId> {
        if alias.is_aws_reserved() {
            return Err(self.knobs.reserved_alias.to_error(alias.as_str()));
        }
        let account = self.who.account_id();
        self.kms
            .alias_target(account, region, alias)
            .cloned()
            .ok_or_else(|| {
                errors::alias_not_found(&AliasArn::new(
                    region.clone(),
                    account.clone(),
                    alias.clone(),
                ))
            })
    }

    /// `UpdateAlias` (§A7): points an existing alias at another key of the
    /// same account and region; both keys' policies must allow it.
    pub(crate) fn update_alias(
        &mut self,
        region: &Region,
        alias: &AliasName,
        target: &KeyRef,
    ) -> Result<()> {
        let current = self.own_alias(region, alias)?;
        self.administered_key(region, &KeyRef::Id(current), "kms:UpdateAlias")?;
        let id = self.administered_key(region, target, "kms:UpdateAlias")?;
        let key = &self.kms.keys[&id];
        if key.arn.account() != self.who.account_id() {
            return Err(errors::key_not_found(&key.arn));
        }
        refuse_pending_deletion(key)?;
        let account = self.who.account_id().clone();
        self.kms
            .aliases_mut(&account, region)
            .insert(alias.clone(), id);
        Ok(())
    }

    /// `DeleteAlias` (§A7): allowed whatever the key's state.
    pub(crate) fn delete_alias(&mut self, region: &Region, alias: &AliasName) -> Result<()> {
        let current = self.own_alias(region, alias)?;
        self.administered_key(region, &KeyRef::Id(current), "kms:DeleteAlias")?;
        let account = self.who.account_id().clone();
        self.kms.aliases_mut(&account, region).remove(alias);
        Ok(())
    }
}

/// The key-administration operations on a principal's client, each logged,
/// authorized and refused as KMS would.
impl SimClient {
    /// `EnableKey`.
    pub async fn enable_key(&self, region: &Region, key: &KeyRef) -> Result<()> {
        self.call(Operation::EnableKey, Some(region), |ctx| {
            ctx.enable_key(region, key)
        })
    }

    /// `DisableKey`.
    pub async fn disable_key(&self, region: &Region, key: &KeyRef) -> Result<()> {
        self.call(Operation::DisableKey, Some(region), |ctx| {
            ctx.disable_key(region, key)
        })
    }

    /// `ScheduleKeyDeletion`, with `PendingWindowInDays` (30 when `None`).
    /// The simulation keeps the key pending deletion until it is cancelled:
    /// it never deletes it at the end of the waiting period.
    pub async fn schedule_key_deletion(
        &self,
        region: &Region,
        key: &KeyRef,
        window_days: Option<u32>,
    ) -> Result<ScheduledDeletion> {
        self.call(Operation::ScheduleKeyDeletion, Some(region), |ctx| {
            ctx.schedule_key_deletion(region, key, window_days)
        })
    }

    /// `CancelKeyDeletion`: the key comes back `Disabled`.
    pub async fn cancel_key_deletion(&self, region: &Region, key: &KeyRef) -> Result<KeyArn> {
        self.call(Operation::CancelKeyDeletion, Some(region), |ctx| {
            ctx.cancel_key_deletion(region, key)
        })
    }

    /// `TagResource` on a key.
    pub async fn tag_resource(
        &self,
        region: &Region,
        key: &KeyRef,
        tags: &BTreeMap<String, String>,
    ) -> Result<()> {
        self.call(Operation::TagResource, Some(region), |ctx| {
            ctx.tag_resource(region, key, tags)
        })
    }

    /// `UntagResource` on a key.
    pub async fn untag_resource(
        &self,
        region: &Region,
        key: &KeyRef,
        tag_keys: &[String],
    ) -> Result<()> {
        self.call(Operation::UntagResource, Some(region), |ctx| {
            ctx.untag_resource(region, key, tag_keys)
        })
    }

    /// `ListAliases`, of the account or of one key.
    pub async fn list_aliases(
        &self,
        region: &Region,
        key: Option<&KeyRef>,
    ) -> Result<Vec<AliasEntry>> {
        self.call(Operation::ListAliases, Some(region), |ctx| {
            ctx.list_aliases(region, key)
        })
    }

    /// `UpdateAlias`.
    pub async fn update_alias(
        &self,
        region: &Region,
        alias: &AliasName,
        target: &KeyRef,
    ) -> Result<()> {
        self.call(Operation::UpdateAlias, Some(region), |ctx| {
            ctx.update_alias(region, alias, target)
        })
    }

    /// `DeleteAlias`.
    pub async fn delete_alias(&self, region: &Region, alias: &AliasName) -> Result<()> {
        self.call(Operation::DeleteAlias, Some(region), |ctx| {
            ctx.delete_alias(region, alias)
        })
    }
}

/// Core's key administration: the operations above, on a key named by ARN
/// in its own region.
#[async_trait]
impl KeyAdmin for SimClient {
    async fn enable_key(&self, key: &KeyArn) -> Result<()> {
        SimClient::enable_key(self, key.region(), &key.clone().into()).await
    }

    async fn disable_key(&self, key: &KeyArn) -> Result<()> {
        SimClient::disable_key(self, key.region(), &key.clone().into()).await
    }

    async fn schedule_key_deletion(
        &self,
        key: &KeyArn,
        window_days: Option<u32>,
    ) -> Result<ScheduledDeletion> {
        SimClient::schedule_key_deletion(self, key.region(), &key.clone().into(), window_days).await
    }

    async fn cancel_key_deletion(&self, key: &KeyArn) -> Result<()> {
        SimClient::cancel_key_deletion(self, key.region(), &key.clone().into())
            .await
            .map(drop)
    }
}
