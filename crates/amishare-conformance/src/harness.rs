//! What a backend provides so the suite can run on it.

use std::sync::Arc;

use async_trait::async_trait;

use amishare_core::scaling::ScalingStore;
use amishare_core::{
    AccountId, Clock, ImageStore, InstanceId, KeyArn, KeyState, KeyStore, OrganizationArn, OuArn,
    PrincipalArn, Region, Result,
};

/// One side of the flow: stores acting as one principal.
#[derive(Debug, Clone)]
pub struct Party {
    /// KMS as this principal.
    pub keys: Arc<dyn KeyStore>,
    /// EC2 as this principal.
    pub images: Arc<dyn ImageStore>,
    /// EC2 Auto Scaling and launch templates as this principal, where the
    /// backend has them.
    pub scaling: Option<Arc<dyn ScalingStore>>,
    /// The principal.
    pub principal: PrincipalArn,
}

impl Party {
    /// The principal's account.
    pub fn account(&self) -> &AccountId {
        self.principal.account()
    }
}

/// How one EBS volume of a seeded instance is encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSeed {
    /// Not encrypted.
    Unencrypted,
    /// With the owner account's AWS-managed `aws/ebs` key.
    AwsManaged,
    /// With this key.
    Key(KeyArn),
}

/// What a backend models; a function runs the checks its backend supports and reports the rest as skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Key policies and IAM policies are enforced.
    pub enforces_key_policy: bool,
    /// Copies are really encrypted with the requested key.
    pub encrypts_copies: bool,
    /// Images shared with an account become visible to it.
    pub cross_account_visibility: bool,
    /// Images and instances pass through `pending` and may go `failed` or `terminated`.
    pub async_states: bool,
    /// The harness can count mutating calls.
    pub counts_calls: bool,
    /// `CopyImage` keeps its `TagSpecifications` and honours its `ClientToken`,
    /// so that a rerun finds the copy it made before.
    pub tags_copies: bool,
    /// Auto Scaling groups launch as the account's service-linked role, and
    /// KMS authorizes the role's launches by key policy and grants.
    pub auto_scaling: bool,
}

impl Capabilities {
    /// Everything modelled, as on AWS.
    pub fn all() -> Capabilities {
        Capabilities {
            enforces_key_policy: true,
            encrypts_copies: true,
            cross_account_visibility: true,
            async_states: true,
            counts_calls: true,
            tags_copies: true,
            auto_scaling: true,
        }
    }
}

/// Backend-specific seeding and inspection. Every function gets a harness
/// whose owner and target accounts differ and share one region.
#[async_trait]
pub trait Harness: Send + Sync {
    /// What the backend models.
    fn capabilities(&self) -> Capabilities;

    /// The region every scenario runs in.
    fn region(&self) -> Region;

    /// Another region, for cross-region checks.
    fn other_region(&self) -> Region;

    /// The owner account's administrator.
    fn owner(&self) -> Party;

    /// The target account's principal (a user or role, not the root).
    fn target(&self) -> Party;

    /// The clock that waits run on.
    fn clock(&self) -> Arc<dyn Clock>;

    /// The organization and OU the target account belongs to, if the backend models organizations.
    fn target_organization(&self) -> Option<(OrganizationArn, OuArn)>;

    /// A running instance in the owner account, with one volume per seed.
    async fn seed_instance(&self, volumes: &[VolumeSeed]) -> Result<InstanceId>;

    /// A customer-managed key of the target account, with the default key policy.
    async fn seed_target_key(&self) -> Result<KeyArn>;

    /// Replaces the target principal's identity policies (and the other
    /// target's): EC2 and Auto Scaling use (with creating the Auto Scaling
    /// service-linked role and listing the grants it may retire), plus the
    /// KMS actions a launch needs on these keys (none: no KMS permission at
    /// all).
    async fn set_target_kms_access(&self, keys: &[KeyArn]) -> Result<()>;

    /// Changes a key's state behind the owner's back.
    async fn set_key_state(&self, key: &KeyArn, state: KeyState) -> Result<()>;

    /// How many mutating calls the backend has served, if it counts them.
    fn mutating_calls(&self) -> Option<usize>;

    /// Where the doctor reads the target principal's IAM policies, if the
    /// backend can tell them.
    fn directory(&self) -> Option<Arc<dyn amishare_core::diagnose::Directory>> {
        None
    }

    /// An administrator of the target account, who can read what the target
    /// principal may not (its account's key policies), if the backend has one.
    fn target_admin(&self) -> Option<Party> {
        None
    }

    /// A second principal (user or role) of the target account, whose
    /// identity policies [`Harness::set_target_kms_access`] sets like the
    /// target's, if the backend has one.
    fn other_target(&self) -> Option<Party> {
        None
    }
}

/// What a suite function ran, and what it skipped because the backend does not model it.
///
/// A function that runs in full leaves both lists empty. One that runs part
/// of its behaviour lists, in `checked`, what it asserted instead on this
/// backend, and in `skipped`, what it left out and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Checks skipped, with why.
    pub skipped: Vec<String>,
    /// Checks a partial run asserted in place of the skipped ones.
    pub checked: Vec<String>,
}

impl Coverage {
    /// Notes a skipped check.
    pub fn skip(&mut self, what: &str, why: &str) {
        self.skipped.push(format!("{what}: {why}"));
    }

    /// Notes a check that a partial run asserted on this backend.
    pub fn check(&mut self, what: &str) {
        self.checked.push(what.to_owned());
    }

    /// Whether the function ran in full.
    pub fn is_full(&self) -> bool {
        self.skipped.is_empty()
    }
}

impl std::fmt::Display for Coverage {
    /// `ran in full`, or `ran in part` followed by one line per check and skip.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_full() {
            return f.write_str("ran in full");
        }
        f.write_str("ran in part")?;
        for checked in &self.checked {
            write!(f, "\n    checked: {checked}")?;
        }
        for skipped in &self.skipped {
            write!(f, "\n    skipped {skipped}")?;
        }
        Ok(())
    }
}
