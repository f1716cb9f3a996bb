//! KMS: key resolution, authorization (key policy + IAM + grants, via
//! `amishare-policy`), key states, and the operations of [`KeyStore`](amishare_core::store::KeyStore).

use std::collections::BTreeMap;
use std::time::Duration;

use amishare_core::store::{
    CreateGrantRequest, CreateKeyRequest, Grant, KeyManager, KeyMetadata, KeyState,
};
use amishare_core::{
    AccountId, AliasArn, AliasName, GrantId, KeyArn, KeyId, KeyRef, PrincipalArn, PrincipalKind,
    Region, Result,
};
use amishare_policy::{
    evaluate_identity, evaluate_identity_outcome, evaluate_kms, evaluate_kms_outcome,
    first_kms_refusal, Context, GrantView, Outcome, Policy, Request,
};

use crate::consistency::Made;
use crate::errors;
use crate::ids::IdGen;
use crate::knobs::Knobs;
use crate::limits;
use crate::state::{Ctx, GrantRecord, Iam, Key, Kms, Who};

/// The description KMS gives the AWS managed EBS key.
const AWS_EBS_DESCRIPTION: &str =
    "Default key that protects my EBS volumes when no other key is defined";

/// The grant operations KMS accepts for a symmetric encryption key.
const GRANT_OPERATIONS: [&str; 9] = [
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "CreateGrant",
    "RetireGrant",
    "DescribeKey",
];

impl Kms {
    /// The key an alias points to.
    pub(crate) fn alias_target(
        &self,
        account: &AccountId,
        region: &Region,
        alias: &AliasName,
    ) -> Option<&KeyId> {
        self.aliases.get(account)?.get(region)?.get(alias)
    }

    pub(crate) fn aliases_mut(
        &mut self,
        account: &AccountId,
        region: &Region,
    ) -> &mut BTreeMap<AliasName, KeyId> {
        self.aliases
            .entry(account.clone())
            .or_default()
            .entry(region.clone())
            .or_default()
    }

    /// The AWS managed `aws/ebs` key of an account in a region, created on
    /// first use as AWS services do.
    pub(crate) fn aws_ebs_key(
        &mut self,
        ids: &mut IdGen,
        account: &AccountId,
        region: &Region,
    ) -> KeyId {
        let alias = AliasName::aws_ebs();
        if let Some(id) = self.alias_target(account, region, &alias) {
            return id.clone();
        }
        let id = ids.key();
        let arn = KeyArn::new(region.clone(), account.clone(), id.clone());
        let policy = Policy::aws_managed_ebs_key_policy(account.as_str(), region.as_str());
        let key = Key::new(
            arn,
            KeyManager::Aws,
            AWS_EBS_DESCRIPTION.to_owned(),
            policy,
            None,
        );
        self.keys.insert(id.clone(), Box::new(key));
        self.aliases_mut(account, region).insert(alias, id.clone());
        id
    }

    /// A customer managed key, bypassing authorization.
    pub(crate) fn insert_customer_key(
        &mut self,
        ids: &mut IdGen,
        account: &AccountId,
        region: &Region,
        description: &str,
        policy: Policy,
        policy_text: Option<String>,
    ) -> &mut Key {
        let id = ids.key();
        let arn = KeyArn::new(region.clone(), account.clone(), id.clone());
        let key = Key::new(
            arn,
            KeyManager::Customer,
            description.to_owned(),
            policy,
            policy_text,
        );
        self.keys.entry(id).or_insert_with(|| Box::new(key))
    }

    /// Resolves a key ARN for a call in `region`.
    pub(crate) fn resolve_arn(&self, region: &Region, arn: &KeyArn) -> Result<&Key> {
        if arn.region() != region {
            return Err(errors::invalid_arn(arn.region()));
        }
        match self.keys.get(arn.key_id()) {
            Some(key) if &key.arn == arn => Ok(key),
            _ => Err(errors::key_not_found(arn)),
        }
    }

    /// Resolves any key reference as KMS does for a caller of `account`
    /// calling in `region`: IDs and alias names are the caller's own; ARNs
    /// may name other accounts but must be in `region`.
    pub(crate) fn resolve(
        &mut self,
        ids: &mut IdGen,
        account: &AccountId,
        region: &Region,
        key: &KeyRef,
    ) -> Result<KeyId> {
        match key {
            KeyRef::Id(id) => match self.keys.get(id) {
                Some(found) if found.arn.account() == account && found.arn.region() == region => {
                    Ok(id.clone())
                }
                _ => Err(errors::key_not_found(&KeyArn::new(
                    region.clone(),
                    account.clone(),
                    id.clone(),
                ))),
            },
            KeyRef::Arn(arn) => self
                .resolve_arn(region, arn)
                .map(|key| key.arn.key_id().clone()),
            KeyRef::Alias(alias) => self.resolve_alias(ids, account, region, account, alias),
            KeyRef::AliasArn(arn) => {
                if arn.region() != region {
                    return Err(errors::invalid_arn(arn.region()));
                }
                self.resolve_alias(ids, account, region, arn.account(), arn.alias())
            }
        }
    }

    fn resolve_alias(
        &mut self,
        ids: &mut IdGen,
        caller: &AccountId,
        region: &Region,
        owner: &AccountId,
        alias: &AliasName,
    ) -> Result<KeyId> {
        if let Some(id) = self.alias_target(owner, region, alias) {
            return Ok(id.clone());
        }
        if owner == caller && alias == &AliasName::aws_ebs() {
            return Ok(self.aws_ebs_key(ids, owner, region));
        }
        Err(errors::alias_not_found(&AliasArn::new(
            region.clone(),
            owner.clone(),
            alias.clone(),
        )))
    }
}

/// The grants on `key` that can apply to `who` and are already effective.
fn grant_views<'k>(
    who: &Who<'_>,
    key: &'k Key,
    now: Duration,
    delay: Duration,
) -> Vec<GrantView<'k>> {
    let mut views = Vec::new();
    if key.grants.is_empty() {
        return views;
    }
    let names = [Some(who.arn), who.role_arn, Some(who.account.root.as_str())];
    for name in names.into_iter().flatten() {
        let Some(ids) = key.grants_by_grantee.get(name) else {
            continue;
        };
        for grant in ids.iter().filter_map(|id| key.grants.get(id)) {
            if grant.created_at + delay <= now {
                views.push(GrantView {
                    grant_id: grant.id.as_str(),
                    grantee: &grant.grantee,
                    operations: &grant.operations,
                });
            }
        }
    }
    views
}

/// Whether `who` may perform every one of `actions` on `key` in `context`;
/// on a denial, KMS's message for the first action denied.
pub(crate) fn kms_allows(
    who: &Who<'_>,
    key: &Key,
    actions: &[&str],
    context: Context,
    now: Duration,
    knobs: &Knobs,
) -> std::result::Result<(), String> {
    let grants = grant_views(who, key, now, knobs.grant_propagation_delay);
    let mut request = Request {
        caller: who.caller(),
        action: "",
        resource: &key.arn_text,
        resource_account: key.arn.account().as_str(),
        context,
    };
    who.with_policies(|policies| {
        // The reasons are only collected for the message of a denial.
        let refused = match actions {
            [action] => {
                request.action = action;
                evaluate_kms_outcome(&request, &key.policy, policies, &grants) != Outcome::Allow
            }
            _ => match first_kms_refusal(&request, actions, &key.policy, policies, &grants) {
                Some(index) => {
                    request.action = actions[index];
                    true
                }
                None => false,
            },
        };
        if refused {
            let decision = evaluate_kms(&request, &key.policy, policies, &grants);
            return Err(decision.denial_message(&request));
        }
        Ok(())
    })
}

/// KMS's answer to a cryptographic operation or `CreateGrant` on a key that
/// is not enabled.
pub(crate) fn require_enabled(key: &Key, knobs: &Knobs) -> Result<()> {
    match key.state {
        KeyState::Enabled => Ok(()),
        KeyState::Disabled => Err(errors::key_disabled(&key.arn)),
        KeyState::PendingDeletion => Err(errors::key_pending_deletion(&key.arn, knobs)),
    }
}

/// KMS's answer to a call that manages a key (`CreateAlias`, `EnableKey`,
/// `TagResource`, …) on a key pending deletion (§A3, footnote 3 of the
/// key-state table).
pub(crate) fn refuse_pending_deletion(key: &Key) -> Result<()> {
    if key.state == KeyState::PendingDeletion {
        return Err(errors::pending_deletion_with(
            &key.arn,
            "KMSInvalidStateException",
        ));
    }
    Ok(())
}

/// The checks KMS applies to a key policy in `CreateKey` and `PutKeyPolicy`.
pub(crate) fn validate_policy(
    text: &str,
    owner: &AccountId,
    caller: &str,
    iam: &Iam,
    key: Option<&KeyArn>,
) -> Result<Policy> {
    if text.len() > amishare_policy::MAX_POLICY_BYTES {
        return Err(errors::policy_too_large(text.len()));
    }
    let policy = Policy::parse(text).map_err(|err| errors::malformed_policy(err.to_string()))?;
    let principals = policy
        .statements
        .iter()
        .flat_map(|st| st.principal.iter().chain(st.not_principal.iter()))
        .flat_map(|principal| principal.aws());
    for entry in principals {
        if !principal_exists(entry, iam) {
            return Err(errors::malformed_policy(
                "Policy contains a statement with one or more invalid principals.",
            ));
        }
    }
    let key = key.map(ToString::to_string);
    if amishare_policy::check_lockout_on(&policy, owner.as_str(), caller, key.as_deref()).is_err() {
        return Err(errors::malformed_policy(
            "The new key policy will not allow you to update the key policy in the future.",
        ));
    }
    Ok(policy)
}

/// Whether a key-policy principal names something KMS accepts: everyone, an
/// account (existing or not), or a user or role that exists.
fn principal_exists(entry: &str, iam: &Iam) -> bool {
    // A bare account ID (what `AccountId::parse` accepts).
    if entry == "*" || (entry.len() == 12 && entry.bytes().all(|b| b.is_ascii_digit())) {
        return true;
    }
    let Ok(arn) = PrincipalArn::parse(entry) else {
        return false;
    };
    let name = match arn.kind() {
        PrincipalKind::Root => return true,
        PrincipalKind::User | PrincipalKind::Role => arn,
        PrincipalKind::AssumedRole => match arn.role_arn() {
            Some(role) => role,
            None => return false,
        },
    };
    iam.accounts
        .get(name.account())
        .is_some_and(|account| account.principals.contains_key(name.as_str()))
}

/// Whether `who`'s identity policies allow `action` on `resource` in its
/// own account.
pub(crate) fn identity_allows(who: &Who<'_>, action: &str, resource: &str) -> bool {
    let request = Request {
        caller: who.caller(),
        action,
        resource,
        resource_account: who.account_id().as_str(),
        context: Context::new(),
    };
    who.with_policies(|policies| evaluate_identity_outcome(&request, policies) == Outcome::Allow)
}

/// The context of a grant operation a principal calls directly (not through
/// an AWS service).
fn direct_grant_context() -> Context {
    Context::new().with_bool("kms:GrantIsForAWSResource", false)
}

impl Ctx<'_> {
    /// Authorizes a direct KMS call on `key`.
    pub(crate) fn authorize_kms(&self, key: &Key, action: &str, context: Context) -> Result<()> {
        kms_allows(&self.who, key, &[action], context, self.now, self.knobs)
            .map_err(errors::kms_access_denied)
    }

    /// Authorizes an action that only IAM policies govern.
    pub(crate) fn authorize_identity(
        &mut self,
        action: &'static str,
        resource: &str,
    ) -> std::result::Result<(), String> {
        if self.who.is_unrestricted() {
            return Ok(());
        }
        let every = resource == "*";
        if every && self.allowed.contains(self.who.arn, action) {
            return Ok(());
        }
        let decided = self.evaluate_identity_policies(action, resource);
        if every && decided.is_ok() {
            self.allowed.insert(self.who.arn, action);
        }
        decided
    }

    /// What the caller's identity policies decide, worked out afresh.
    pub(crate) fn evaluate_identity_policies(
        &self,
        action: &str,
        resource: &str,
    ) -> std::result::Result<(), String> {
        let request = Request {
            caller: self.who.caller(),
            action,
            resource,
            resource_account: self.who.account_id().as_str(),
            context: Context::new(),
        };
        self.who.with_policies(|policies| {
            // The reasons are only collected for the message of a denial.
            if evaluate_identity_outcome(&request, policies) == Outcome::Allow {
                Ok(())
            } else {
                Err(evaluate_identity(&request, policies).denial_message(&request))
            }
        })
    }

    /// Resolves a key ARN named by a grant or policy operation (its region is
    /// the call's region).
    fn key_by_arn(&self, arn: &KeyArn) -> Result<&Key> {
        self.kms.resolve_arn(arn.region(), arn)
    }

    /// KMS's `NotFoundException` for a key that reads may not see yet
    /// (§A9).
    fn hide_key(&mut self, arn: &KeyArn) -> Result<()> {
        if self
            .eventual
            .hides(self.now, || Made::Key(arn.key_id().clone()))
        {
            return Err(errors::key_not_found(arn));
        }
        Ok(())
    }

    /// [`Ctx::hide_key`] for a key resolved from `key`, and KMS's
    /// `NotFoundException` for the alias `key` names when it is still
    /// invisible (§A9).
    fn hide_ref(&mut self, region: &Region, key: &KeyRef, id: &KeyId) -> Result<()> {
        let alias = match key {
            KeyRef::Alias(alias) => Some((self.who.account_id(), region, alias)),
            KeyRef::AliasArn(arn) => Some((arn.account(), arn.region(), arn.alias())),
            KeyRef::Id(_) | KeyRef::Arn(_) => None,
        };
        if let Some((owner, region, alias)) = alias {
            let made = || Made::Alias(owner.clone(), region.clone(), alias.clone());
            if self.eventual.hides(self.now, made) {
                return Err(errors::alias_not_found(&AliasArn::new(
                    region.clone(),
                    owner.clone(),
                    alias.clone(),
                )));
            }
        }
        self.hide_key_id(id)
    }

    /// [`Ctx::hide_key`] for a key that exists, by its ID.
    fn hide_key_id(&mut self, id: &KeyId) -> Result<()> {
        if self.eventual.hides(self.now, || Made::Key(id.clone())) {
            return Err(errors::key_not_found(&self.kms.keys[id].arn));
        }
        Ok(())
    }

    pub(crate) fn create_key(
        &mut self,
        region: &Region,
        request: &CreateKeyRequest,
    ) -> Result<KeyMetadata> {
        limits::kms_description(&request.description)?;
        limits::kms_tags(&request.tags)?;
        self.authorize_identity("kms:CreateKey", "*")
            .map_err(errors::kms_access_denied)?;
        let owner = self.who.account_id();
        let (policy, text) = match &request.policy {
            Some(text) => (
                validate_policy(text, owner, self.who.arn, self.iam, None)?,
                Some(text.clone()),
            ),
            None => (Policy::default_key_policy(owner.as_str()), None),
        };
        let key = self.kms.insert_customer_key(
            self.ids,
            owner,
            region,
            &request.description,
            policy,
            text,
        );
        key.tags = request.tags.clone();
        let meta = key.metadata();
        self.eventual
            .made(self.now, || Made::Key(meta.arn.key_id().clone()));
        Ok(meta)
    }

    /// `ListKeys`: every key of the caller's account in `region`, AWS
    /// managed ones included, as KMS lists them.
    pub(crate) fn list_keys(&mut self, region: &Region) -> Result<Vec<KeyArn>> {
        self.authorize_identity("kms:ListKeys", "*")
            .map_err(errors::kms_access_denied)?;
        let account = self.who.account_id();
        let keys = self
            .kms
            .keys
            .values()
            .filter(|key| key.arn.account() == account && key.arn.region() == region)
            .map(|key| key.arn.clone())
            .collect();
        Ok(self
            .eventual
            .visible(self.now, keys, |arn| Made::Key(arn.key_id().clone())))
    }

    /// `ListResourceTags`, which works on the caller's own keys only.
    pub(crate) fn list_resource_tags(&mut self, arn: &KeyArn) -> Result<BTreeMap<String, String>> {
        self.hide_key(arn)?;
        let key = self.key_by_arn(arn)?;
        if arn.account() != self.who.account_id() {
            return Err(errors::kms_access_denied(format!(
                "{} is not authorized to perform: kms:ListResourceTags on resource: {arn} because ListResourceTags does not work across accounts",
                self.who.arn
            )));
        }
        self.authorize_kms(key, "kms:ListResourceTags", Context::new())?;
        Ok(key.tags.clone())
    }

    pub(crate) fn describe_key(&mut self, region: &Region, key: &KeyRef) -> Result<KeyMetadata> {
        let id = self
            .kms
            .resolve(self.ids, self.who.account_id(), region, key)?;
        self.hide_ref(region, key, &id)?;
        let key = &self.kms.keys[&id];
        self.authorize_kms(key, "kms:DescribeKey", Context::new())?;
        Ok(key.metadata())
    }

    pub(crate) fn create_alias(
        &mut self,
        region: &Region,
        alias: &AliasName,
        key_id: &KeyId,
    ) -> Result<()> {
        if alias.is_aws_reserved() {
            return Err(self.knobs.reserved_alias.to_error(alias.as_str()));
        }
        let account = self.who.account_id();
        let id = self
            .kms
            .resolve(self.ids, account, region, &KeyRef::Id(key_id.clone()))?;
        self.hide_key_id(&id)?;
        let key = &self.kms.keys[&id];
        self.authorize_kms(key, "kms:CreateAlias", Context::new())?;
        refuse_pending_deletion(key)?;
        if self.kms.alias_target(account, region, alias).is_some() {
            return Err(errors::alias_exists(&AliasArn::new(
                region.clone(),
                account.clone(),
                alias.clone(),
            )));
        }
        self.kms
            .aliases_mut(account, region)
            .insert(alias.clone(), id);
        self.eventual.made(self.now, || {
            Made::Alias(account.clone(), region.clone(), alias.clone())
        });
        Ok(())
    }

    pub(crate) fn get_key_policy(&mut self, arn: &KeyArn) -> Result<String> {
        self.hide_key(arn)?;
        let key = self.key_by_arn(arn)?;
        self.authorize_kms(key, "kms:GetKeyPolicy", Context::new())?;
        Ok(key.policy_document())
    }

    pub(crate) fn put_key_policy(&mut self, arn: &KeyArn, text: &str) -> Result<()> {
        self.hide_key(arn)?;
        let key = self.key_by_arn(arn)?;
        self.authorize_kms(key, "kms:PutKeyPolicy", Context::new())?;
        let policy = validate_policy(
            text,
            key.arn.account(),
            self.who.arn,
            self.iam,
            Some(&key.arn),
        )?;
        let key = self
            .kms
            .keys
            .get_mut(arn.key_id())
            .expect("the key was just resolved");
        key.policy = policy;
        key.policy_text = Some(text.to_owned());
        Ok(())
    }

    pub(crate) fn list_grants(&mut self, arn: &KeyArn) -> Result<Vec<Grant>> {
        self.hide_key(arn)?;
        let key = self.key_by_arn(arn)?;
        self.authorize_kms(key, "kms:ListGrants", direct_grant_context())?;
        let mut grants: Vec<&GrantRecord> = key.grants.values().collect();
        grants.sort_by_key(|grant| grant.seq);
        let grants = grants
            .into_iter()
            .map(|grant| Grant {
                id: grant.id.clone(),
                name: grant.name.clone(),
                grantee: grant.grantee.clone(),
                operations: grant.operations.clone(),
                issuing_account: grant.issuing_account.clone(),
                retiring_principal: grant.retiring_principal.clone(),
                key: Some(key.arn.clone()),
            })
            .collect();
        Ok(self
            .eventual
            .visible(self.now, grants, |grant| Made::Grant(grant.id.clone())))
    }

    /// `ListRetirableGrants`: the grants in `region`, on keys of any
    /// account, that `retiring` may retire. KMS authorizes it with the
    /// caller's IAM policy alone, and only for a retiring principal of the
    /// caller's own account (§A5 ListRetirableGrants).
    pub(crate) fn list_retirable_grants(
        &mut self,
        region: &Region,
        retiring: &PrincipalArn,
    ) -> Result<Vec<Grant>> {
        self.authorize_identity("kms:ListRetirableGrants", "*")
            .map_err(errors::kms_access_denied)?;
        if retiring.account() != self.who.account_id() {
            return Err(errors::kms_access_denied(format!(
                "{} is not authorized to list the grants of {retiring}: ListRetirableGrants takes a principal of the caller's own account",
                self.who.arn
            )));
        }
        let mut found = Vec::new();
        for key in self
            .kms
            .keys
            .values()
            .filter(|key| key.arn.region() == region)
        {
            let mut grants: Vec<&GrantRecord> = key
                .grants
                .values()
                .filter(|grant| grant.retiring_principal.as_deref() == Some(retiring.as_str()))
                .collect();
            grants.sort_by_key(|grant| grant.seq);
            found.extend(grants.into_iter().map(|grant| Grant {
                id: grant.id.clone(),
                name: grant.name.clone(),
                grantee: grant.grantee.clone(),
                operations: grant.operations.clone(),
                issuing_account: grant.issuing_account.clone(),
                retiring_principal: grant.retiring_principal.clone(),
                key: Some(key.arn.clone()),
            }));
        }
        Ok(self
            .eventual
            .visible(self.now, found, |grant| Made::Grant(grant.id.clone())))
    }

    pub(crate) fn create_grant(
        &mut self,
        arn: &KeyArn,
        request: &CreateGrantRequest,
    ) -> Result<GrantId> {
        limits::grant_name(request.name.as_deref())?;
        let key = self.key_by_arn(arn)?;
        if request.operations.is_empty() {
            return Err(errors::validation(format!(
                "1 validation error detected: Value at 'operations' failed to satisfy constraint: Member must have length greater than or equal to 1 (key {arn})"
            )));
        }
        if let Some(bad) = request
            .operations
            .iter()
            .find(|op| !GRANT_OPERATIONS.contains(&op.as_str()))
        {
            return Err(errors::validation(format!(
                "Grant operation {bad} is not valid for the symmetric encryption key {arn}"
            )));
        }
        let mut context = direct_grant_context()
            .with_values("kms:GrantOperations", request.operations.clone())
            .with("kms:GranteePrincipal", request.grantee.as_str());
        if let Some(retiring) = &request.retiring_principal {
            context = context.with("kms:RetiringPrincipal", retiring.as_str());
        }
        self.authorize_kms(key, "kms:CreateGrant", context)?;
        require_enabled(key, self.knobs)?;
        if let Some(name) = &request.name {
            let existing = key.grants.values().find(|grant| {
                grant.name.as_deref() == Some(name.as_str())
                    && grant.grantee == request.grantee.as_str()
                    && grant.operations == request.operations
                    && grant.retiring_principal.as_deref()
                        == request
                            .retiring_principal
                            .as_ref()
                            .map(PrincipalArn::as_str)
            });
            if let Some(existing) = existing {
                return Ok(existing.id.clone());
            }
        }
        let id = self.ids.grant();
        let grant = GrantRecord {
            id: id.clone(),
            seq: 0,
            name: request.name.clone(),
            grantee: request.grantee.as_str().to_owned(),
            operations: request.operations.clone(),
            issuing_account: self.who.account_id().clone(),
            created_at: self.now,
            retiring_principal: request
                .retiring_principal
                .as_ref()
                .map(|p| p.as_str().to_owned()),
        };
        self.kms
            .keys
            .get_mut(arn.key_id())
            .expect("the key was just resolved")
            .add_grant(grant);
        self.eventual.made(self.now, || Made::Grant(id.clone()));
        Ok(id)
    }

    pub(crate) fn revoke_grant(&mut self, arn: &KeyArn, grant: &GrantId) -> Result<()> {
        let key = self.key_by_arn(arn)?;
        self.authorize_kms(key, "kms:RevokeGrant", direct_grant_context())?;
        let removed = self
            .kms
            .keys
            .get_mut(arn.key_id())
            .expect("the key was just resolved")
            .remove_grant(grant);
        match removed {
            Some(_) => Ok(()),
            None => Err(self.knobs.unknown_grant.to_error(grant.as_str())),
        }
    }
}
