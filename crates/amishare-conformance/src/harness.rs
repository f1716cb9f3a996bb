//! What a backend provides so the suite can run on it.

use std::sync::Arc;

use async_trait::async_trait;

use amishare_core::store::KeyState;
use amishare_core::{
    AccountId, Clock, InstanceId, KeyArn, OrganizationArn, OuArn, PrincipalArn, Region, Result,
    Stores,
};

/// One side of the flow: a principal and the stores acting as it, whose
/// fields (`keys`, `images`, `scaling`) read through the party.
#[derive(Debug, Clone)]
pub struct Party {
    /// KMS, EC2 and, where the backend has it, Auto Scaling, as this principal.
    pub stores: Stores,
    /// The principal.
    pub principal: PrincipalArn,
}

impl Party {
    /// `principal`'s party over `stores`.
    pub fn new(principal: PrincipalArn, stores: Stores) -> Party {
        Party { stores, principal }
    }

    /// The principal's account.
    pub fn account(&self) -> &AccountId {
        self.principal.account()
    }
}

impl std::ops::Deref for Party {
    type Target = Stores;

    fn deref(&self) -> &Stores {
        &self.stores
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

/// What a backend models. The runner ([`crate::run`]) skips a function
/// whose needs the backend lacks, and a function that runs skips, naming the
/// capability, what the backend cannot show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Key policies and IAM policies are enforced.
    pub enforces_key_policy: bool,
    /// Volumes and copies are really encrypted with the key asked for.
    pub encrypts_copies: bool,
    /// Images shared with an account become visible to it.
    pub cross_account_visibility: bool,
    /// Images and instances pass through `pending` and may go `failed` or `terminated`.
    pub async_states: bool,
    /// The harness can count mutating calls ([`Harness::mutating_calls`]).
    pub counts_calls: bool,
    /// `CopyImage` keeps its `TagSpecifications` and honours its `ClientToken`,
    /// so that a rerun finds the copy it made before.
    pub tags_copies: bool,
    /// The target account is in an organization ([`Harness::target_organization`]).
    pub organizations: bool,
    /// The target account has a second principal ([`Harness::other_target`]).
    pub other_target: bool,
    /// The doctor can read the target principal's IAM policies ([`Harness::directory`]).
    pub directory: bool,
    /// Auto Scaling groups launch as the account's service-linked role, and
    /// KMS authorizes the role's launches by key policy and grants
    /// ([`Stores::scaling`](amishare_core::Stores::scaling)).
    pub auto_scaling: bool,
    /// The parties' stores administer keys: enable, disable, schedule and
    /// cancel their deletion ([`Stores::key_admin`](amishare_core::Stores::key_admin)).
    pub administers_keys: bool,
}

impl Capabilities {
    /// Everything modelled.
    pub fn all() -> Capabilities {
        Capabilities {
            enforces_key_policy: true,
            encrypts_copies: true,
            cross_account_visibility: true,
            async_states: true,
            counts_calls: true,
            tags_copies: true,
            organizations: true,
            other_target: true,
            directory: true,
            auto_scaling: true,
            administers_keys: true,
        }
    }

    /// Whether the backend has `capability`.
    pub fn has(&self, capability: Capability) -> bool {
        match capability {
            Capability::EnforcesKeyPolicy => self.enforces_key_policy,
            Capability::EncryptsCopies => self.encrypts_copies,
            Capability::CrossAccountVisibility => self.cross_account_visibility,
            Capability::AsyncStates => self.async_states,
            Capability::CountsCalls => self.counts_calls,
            Capability::TagsCopies => self.tags_copies,
            Capability::Organizations => self.organizations,
            Capability::OtherTarget => self.other_target,
            Capability::Directory => self.directory,
            Capability::AutoScaling => self.auto_scaling,
            Capability::AdministersKeys => self.administers_keys,
        }
    }

    /// Those of `needs` the backend lacks, in order.
    pub fn lacking(&self, needs: &[Capability]) -> Vec<Capability> {
        needs.iter().copied().filter(|c| !self.has(*c)).collect()
    }
}

/// One thing a backend may model, as a suite function names what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    /// [`Capabilities::enforces_key_policy`].
    EnforcesKeyPolicy,
    /// [`Capabilities::encrypts_copies`].
    EncryptsCopies,
    /// [`Capabilities::cross_account_visibility`].
    CrossAccountVisibility,
    /// [`Capabilities::async_states`].
    AsyncStates,
    /// [`Capabilities::counts_calls`].
    CountsCalls,
    /// [`Capabilities::tags_copies`].
    TagsCopies,
    /// [`Capabilities::organizations`].
    Organizations,
    /// [`Capabilities::other_target`].
    OtherTarget,
    /// [`Capabilities::directory`].
    Directory,
    /// [`Capabilities::auto_scaling`].
    AutoScaling,
    /// [`Capabilities::administers_keys`].
    AdministersKeys,
}

impl Capability {
    /// Why a check that needs this capability is skipped on a backend without it.
    pub fn lacking(self) -> &'static str {
        match self {
            Capability::EnforcesKeyPolicy => "the backend enforces no key policy or IAM policy",
            Capability::EncryptsCopies => {
                "the backend does not encrypt volumes or copies, so the snapshot-key gate refuses to share"
            }
            Capability::CrossAccountVisibility => "shared images are not visible to the target",
            Capability::AsyncStates => {
                "images and instances never pass through pending, failed or terminated"
            }
            Capability::CountsCalls => "the backend does not count mutating calls",
            Capability::TagsCopies => {
                "CopyImage drops its tags and ignores its client token, so a rerun cannot find the copy"
            }
            Capability::Organizations => "the backend models no organizations",
            Capability::OtherTarget => "the backend has one principal in the target account",
            Capability::Directory => "the doctor cannot read the target's IAM policies",
            Capability::AutoScaling => {
                "no Auto Scaling group launches as a service-linked role under KMS authorization"
            }
            Capability::AdministersKeys => "the parties' stores do not administer keys",
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

/// What a suite function checked on a backend, and what it skipped because
/// the backend does not model it.
///
/// A function notes each behaviour it asserted with [`Coverage::check`] and
/// each it left out with [`Coverage::skip`]. The runner counts a function
/// as run only when it noted a check: one that checked nothing is reported
/// as skipped, whatever it returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    checked: Vec<String>,
    skipped: Vec<Skip>,
}

/// A check a function left out, and the capability it would need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// What was not checked.
    pub what: String,
    /// What the backend lacks.
    pub lacking: Capability,
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.lacking.lacking())
    }
}

impl Coverage {
    /// Notes a check left out because the backend lacks `lacking`.
    pub fn skip(&mut self, what: &str, lacking: Capability) {
        self.skipped.push(Skip {
            what: what.to_owned(),
            lacking,
        });
    }

    /// Notes a behaviour asserted on this backend.
    pub fn check(&mut self, what: &str) {
        self.checked.push(what.to_owned());
    }

    /// The behaviours asserted.
    pub fn checked(&self) -> &[String] {
        &self.checked
    }

    /// The checks left out.
    pub fn skipped(&self) -> &[Skip] {
        &self.skipped
    }
}
