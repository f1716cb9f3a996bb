//! The world's state: accounts and principals (IAM), keys (KMS), images,
//! snapshots and instances (EC2), and the per-call context the operations run
//! in.
//!
//! Asynchronous outcomes are stored as times: a resource records when it
//! completes and how, and its state is computed from the clock when it is
//! read, so nothing ever has to run in the background.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use amishare_core::store::{
    AttachedVolume, ImageState, InstanceState, KeyManager, KeyState, LaunchPermission,
    SnapshotState, StateReason, VolumePermission,
};
use amishare_core::{
    AccountId, GrantId, ImageId, InstanceId, KeyArn, KeyId, PrincipalArn, Region, SnapshotId,
};
use amishare_policy::Policy;

use crate::consistency::Eventual;
use crate::ids::IdGen;
use crate::knobs::Knobs;
use crate::log::CallLog;

/// Everything behind the world's mutex.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) knobs: Knobs,
    pub(crate) ids: IdGen,
    pub(crate) iam: Iam,
    pub(crate) allowed: Allowed,
    pub(crate) kms: Kms,
    pub(crate) ec2: Ec2,
    pub(crate) scaling: Scaling,
    /// When new things become visible, and which copies fail (§B19).
    pub(crate) eventual: Eventual,
    pub(crate) log: CallLog,
}

// ---------------------------------------------------------------- IAM

/// Accounts and their principals.
#[derive(Debug, Default)]
pub(crate) struct Iam {
    pub(crate) accounts: BTreeMap<AccountId, Account>,
    /// Named principals, as AWS profiles name credentials: the CLI acts as
    /// `--profile NAME` on a world file too.
    pub(crate) profiles: BTreeMap<String, PrincipalArn>,
    /// Access key IDs, the principals they sign as and their secrets, for
    /// `amishare sim serve`.
    pub(crate) access_keys: BTreeMap<String, crate::world_file::AccessKey>,
}

#[derive(Debug)]
pub(crate) struct Account {
    pub(crate) id: AccountId,
    pub(crate) root: PrincipalArn,
    /// `o-…`, when the account is in an organization.
    pub(crate) org_id: Option<String>,
    /// `o-…/r-…/ou-…/` entries (`aws:PrincipalOrgPaths`).
    pub(crate) org_paths: Vec<String>,
    /// Users and roles by ARN.
    pub(crate) principals: BTreeMap<String, IamPrincipal>,
}

impl Account {
    pub(crate) fn new(id: AccountId) -> Account {
        Account {
            root: id.root_arn(),
            id,
            org_id: None,
            org_paths: Vec::new(),
            principals: BTreeMap::new(),
        }
    }

    /// Whether the account is in the OU `ou_id` of organization `org_id`, at
    /// any depth.
    pub(crate) fn in_ou(&self, org_id: &str, ou_id: &str) -> bool {
        self.org_id.as_deref() == Some(org_id)
            && self
                .org_paths
                .iter()
                .any(|path| path.split('/').any(|segment| segment == ou_id))
    }
}

/// Actions on every resource (`"*"`) that only identity policies govern
/// and that were allowed, by caller ARN: the describe calls a wait repeats.
///
/// The answer depends only on the caller (its ARN names its account, whose
/// organization is fixed when the account is added), its identity policies
/// and the action; the world clears the cache whenever an account, a
/// principal or an identity policy changes. Denials are not kept: their
/// message is worked out each time.
///
/// A world has a handful of callers and each a handful of such actions, so
/// lists scanned in order beat ordered maps; an action is usually the very
/// literal that was stored, which is recognised without comparing text.
#[derive(Debug, Default)]
pub(crate) struct Allowed(Vec<(String, Vec<&'static str>)>);

impl Allowed {
    fn actions(&self, caller: &str) -> Option<&Vec<&'static str>> {
        self.0
            .iter()
            .find(|(arn, _)| arn == caller)
            .map(|(_, actions)| actions)
    }

    pub(crate) fn contains(&self, caller: &str, action: &str) -> bool {
        self.actions(caller).is_some_and(|actions| {
            actions
                .iter()
                .any(|known| std::ptr::eq(*known, action) || *known == action)
        })
    }

    pub(crate) fn insert(&mut self, caller: &str, action: &'static str) {
        if self.contains(caller, action) {
            return;
        }
        match self.0.iter_mut().find(|(arn, _)| arn == caller) {
            Some((_, actions)) => actions.push(action),
            None => self.0.push((caller.to_owned(), vec![action])),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
}

/// An IAM user or role and its identity policies, parsed once.
#[derive(Debug)]
pub(crate) struct IamPrincipal {
    pub(crate) policies: Vec<Policy>,
    /// A service-linked role: its policies are AWS's and cannot be changed
    /// (`docs/spec/production.md` §C1.1).
    pub(crate) service_linked: bool,
}

/// The caller of one operation, borrowed from the IAM state.
#[derive(Debug)]
pub(crate) struct Who<'a> {
    /// The caller's ARN (for a role session, the session ARN).
    pub(crate) arn: &'a str,
    /// For a role session, the role's ARN.
    pub(crate) role_arn: Option<&'a str>,
    pub(crate) account: &'a Account,
    pub(crate) policies: &'a [Policy],
}

impl<'a> Who<'a> {
    /// The caller `arn`, whose identity policies are those of `identity`
    /// (itself, or the role of a session); `None` if it does not exist.
    pub(crate) fn lookup(
        iam: &'a Iam,
        arn: &'a PrincipalArn,
        identity: &'a PrincipalArn,
    ) -> Option<Who<'a>> {
        let account = iam.accounts.get(arn.account())?;
        let policies: &[Policy] = if identity == &account.root {
            &[]
        } else {
            &account.principals.get(identity.as_str())?.policies
        };
        Some(Who {
            arn: arn.as_str(),
            role_arn: (identity != arn).then(|| identity.as_str()),
            account,
            policies,
        })
    }

    pub(crate) fn account_id(&self) -> &'a AccountId {
        &self.account.id
    }

    /// An account root with no identity policy: IAM allows it everything in
    /// its own account (nothing can deny it), so identity-only checks need no
    /// evaluation.
    pub(crate) fn is_unrestricted(&self) -> bool {
        self.policies.is_empty() && self.arn == self.account.root.as_str()
    }

    /// Runs `f` with the caller's identity policies as the evaluator takes
    /// them, without allocating for the usual handful.
    pub(crate) fn with_policies<R>(&self, f: impl FnOnce(&[&Policy]) -> R) -> R {
        const INLINE: usize = 8;
        match self.policies {
            [] => f(&[]),
            [first, ..] if self.policies.len() <= INLINE => {
                let mut refs = [first; INLINE];
                for (slot, policy) in refs.iter_mut().zip(self.policies) {
                    *slot = policy;
                }
                f(&refs[..self.policies.len()])
            }
            _ => f(&self.policies.iter().collect::<Vec<_>>()),
        }
    }

    pub(crate) fn caller(&self) -> amishare_policy::Caller<'a> {
        amishare_policy::Caller {
            arn: self.arn,
            account: self.account.id.as_str(),
            org_id: self.account.org_id.as_deref(),
            org_paths: &self.account.org_paths,
        }
    }

    /// Whether a launch permission covers the caller's account (directly, or
    /// through its organization or OU).
    pub(crate) fn covered_by(&self, permission: &LaunchPermission) -> bool {
        match permission {
            LaunchPermission::Public => true,
            LaunchPermission::Account(account) => account == &self.account.id,
            LaunchPermission::Organization(org) => {
                self.account.org_id.as_deref() == Some(org.org_id())
            }
            LaunchPermission::OrganizationalUnit(ou) => self.account.in_ou(ou.org_id(), ou.ou_id()),
        }
    }
}

// ---------------------------------------------------------------- KMS

/// Keys, aliases and the EBS settings that name keys.
#[derive(Debug, Default)]
pub(crate) struct Kms {
    /// Every key of every account; key IDs are unique across the world.
    /// Boxed, like the EC2 records: a tree node then holds pointers rather
    /// than records, and stays small to allocate.
    pub(crate) keys: BTreeMap<KeyId, Box<Key>>,
    /// Aliases per account and region.
    pub(crate) aliases:
        BTreeMap<AccountId, BTreeMap<Region, BTreeMap<amishare_core::AliasName, KeyId>>>,
}

#[derive(Debug)]
pub(crate) struct Key {
    pub(crate) arn: KeyArn,
    /// The ARN as text, for authorization requests.
    pub(crate) arn_text: String,
    pub(crate) manager: KeyManager,
    pub(crate) state: KeyState,
    pub(crate) description: String,
    pub(crate) policy: Policy,
    /// The policy as it was written, returned by `GetKeyPolicy`; `None` for
    /// a policy KMS wrote (default or AWS managed), rendered when asked for.
    pub(crate) policy_text: Option<String>,
    pub(crate) tags: BTreeMap<String, String>,
    /// When a key pending deletion's waiting period ends (§A3).
    pub(crate) deletion_at: Option<Duration>,
    pub(crate) grants: BTreeMap<GrantId, GrantRecord>,
    /// Grant IDs by grantee, so that authorization looks only at the grants
    /// that can apply to the caller.
    pub(crate) grants_by_grantee: BTreeMap<String, Vec<GrantId>>,
    pub(crate) next_grant_seq: u64,
}

impl Key {
    pub(crate) fn new(
        arn: KeyArn,
        manager: KeyManager,
        description: String,
        policy: Policy,
        policy_text: Option<String>,
    ) -> Key {
        Key {
            arn_text: arn.to_string(),
            arn,
            manager,
            state: KeyState::Enabled,
            description,
            policy,
            policy_text,
            tags: BTreeMap::new(),
            deletion_at: None,
            grants: BTreeMap::new(),
            grants_by_grantee: BTreeMap::new(),
            next_grant_seq: 0,
        }
    }

    pub(crate) fn add_grant(&mut self, mut grant: GrantRecord) {
        grant.seq = self.next_grant_seq;
        self.next_grant_seq += 1;
        self.grants_by_grantee
            .entry(grant.grantee.clone())
            .or_default()
            .push(grant.id.clone());
        self.grants.insert(grant.id.clone(), grant);
    }

    pub(crate) fn remove_grant(&mut self, id: &GrantId) -> Option<GrantRecord> {
        let grant = self.grants.remove(id)?;
        if let Some(ids) = self.grants_by_grantee.get_mut(&grant.grantee) {
            ids.retain(|g| g != id);
            if ids.is_empty() {
                self.grants_by_grantee.remove(&grant.grantee);
            }
        }
        Some(grant)
    }

    /// The policy document as `GetKeyPolicy` returns it.
    pub(crate) fn policy_document(&self) -> String {
        match &self.policy_text {
            Some(text) => text.clone(),
            None => self.policy.to_json_pretty(),
        }
    }

    pub(crate) fn metadata(&self) -> amishare_core::store::KeyMetadata {
        amishare_core::store::KeyMetadata {
            arn: self.arn.clone(),
            state: self.state,
            manager: self.manager,
            description: self.description.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct GrantRecord {
    pub(crate) id: GrantId,
    /// Creation order on the key, for `ListGrants`.
    pub(crate) seq: u64,
    pub(crate) name: Option<String>,
    pub(crate) grantee: String,
    pub(crate) operations: Vec<String>,
    pub(crate) issuing_account: AccountId,
    pub(crate) created_at: Duration,
    /// The principal that may retire the grant.
    pub(crate) retiring_principal: Option<String>,
}

// ---------------------------------------------------------------- EC2

#[derive(Debug, Default)]
pub(crate) struct Ec2 {
    /// Records are boxed so that a tree node holds pointers rather than
    /// records, and stays small to allocate.
    pub(crate) images: BTreeMap<ImageId, Box<ImageRecord>>,
    pub(crate) snapshots: BTreeMap<SnapshotId, Box<SnapshotRecord>>,
    pub(crate) instances: BTreeMap<InstanceId, Box<InstanceRecord>>,
    /// EBS encryption settings per account and region.
    pub(crate) ebs: BTreeMap<AccountId, BTreeMap<Region, EbsSettings>>,
    /// `CopyImage` client tokens: `<account>/<region>/<token>` → image.
    pub(crate) client_tokens: BTreeMap<String, ImageId>,
    /// The instance each `RunInstances` client token launched, per account
    /// and region.
    pub(crate) instance_tokens: BTreeMap<String, InstanceId>,
    /// Image names, unique per account and region: `<account>/<region>/<name>` → image.
    pub(crate) image_names: BTreeMap<String, ImageId>,
}

impl Ec2 {
    /// Stores a new image and claims its name in its account and region.
    pub(crate) fn insert_image(&mut self, image: ImageRecord) {
        self.image_names.insert(
            scoped(&image.owner, &image.region, &image.name),
            image.id.clone(),
        );
        self.images.insert(image.id.clone(), Box::new(image));
    }

    pub(crate) fn ebs_settings(&self, account: &AccountId, region: &Region) -> EbsSettings {
        self.ebs
            .get(account)
            .and_then(|regions| regions.get(region))
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn ebs_settings_mut(
        &mut self,
        account: &AccountId,
        region: &Region,
    ) -> &mut EbsSettings {
        self.ebs
            .entry(account.clone())
            .or_default()
            .entry(region.clone())
            .or_default()
    }
}

/// `<account>/<region>/<name>`: the key of the per-account, per-region indexes.
pub(crate) fn scoped(account: &AccountId, region: &Region, name: &str) -> String {
    [account.as_str(), "/", region.as_str(), "/", name].concat()
}

#[derive(Debug, Clone, Default)]
pub(crate) struct EbsSettings {
    pub(crate) encryption_by_default: bool,
    /// `None` means `alias/aws/ebs`.
    pub(crate) default_key: Option<KeyArn>,
}

#[derive(Debug)]
pub(crate) struct ImageRecord {
    pub(crate) id: ImageId,
    pub(crate) owner: AccountId,
    pub(crate) region: Region,
    pub(crate) name: String,
    /// When the image leaves `pending`.
    pub(crate) ready_at: Duration,
    /// `Some` when it then goes `failed` rather than `available`.
    pub(crate) failure: Option<StateReason>,
    /// Why the simulation failed it (the KMS denial EC2 met), for diagnostics.
    pub(crate) failure_detail: Option<String>,
    pub(crate) devices: Vec<DeviceRecord>,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) launch_permissions: BTreeSet<LaunchPermission>,
    pub(crate) source_image: Option<ImageId>,
    pub(crate) source_region: Option<Region>,
    pub(crate) source_instance: Option<InstanceId>,
    pub(crate) client_token: Option<String>,
}

impl ImageRecord {
    pub(crate) fn state(&self, now: Duration) -> (ImageState, Option<StateReason>) {
        if now < self.ready_at {
            return (ImageState::Pending, None);
        }
        match &self.failure {
            Some(reason) => (ImageState::Failed, Some(reason.clone())),
            None => (ImageState::Available, None),
        }
    }

    pub(crate) fn is_available(&self, now: Duration) -> bool {
        now >= self.ready_at && self.failure.is_none()
    }

    pub(crate) fn is_public(&self) -> bool {
        self.launch_permissions.contains(&LaunchPermission::Public)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct DeviceRecord {
    pub(crate) device_name: String,
    pub(crate) snapshot: SnapshotId,
    pub(crate) size: u32,
    pub(crate) volume_type: String,
    pub(crate) encrypted: bool,
}

#[derive(Debug)]
pub(crate) struct SnapshotRecord {
    pub(crate) id: SnapshotId,
    pub(crate) owner: AccountId,
    pub(crate) region: Region,
    pub(crate) size: u32,
    pub(crate) encrypted: bool,
    pub(crate) kms_key: Option<KeyArn>,
    /// When it started; its progress grows linearly from here to `ready_at`.
    /// `None` (a world file that does not say) reports no progress.
    pub(crate) started_at: Option<Duration>,
    pub(crate) ready_at: Duration,
    /// `Some` when the snapshot then goes `error`, with its state message.
    pub(crate) failure: Option<String>,
    pub(crate) volume_permissions: BTreeSet<VolumePermission>,
    /// The registered image that uses the snapshot.
    pub(crate) image: Option<ImageId>,
}

impl SnapshotRecord {
    pub(crate) fn state(&self, now: Duration) -> (SnapshotState, Option<String>) {
        if now < self.ready_at {
            return (SnapshotState::Pending, None);
        }
        match &self.failure {
            Some(message) => (SnapshotState::Error, Some(message.clone())),
            None => (SnapshotState::Completed, None),
        }
    }

    /// EC2's `Progress` in percent: 100 once completed, linear in time while
    /// pending (never 100 before it completes), none once failed.
    pub(crate) fn progress(&self, now: Duration) -> Option<u8> {
        match self.state(now).0 {
            SnapshotState::Completed => Some(100),
            SnapshotState::Error => None,
            SnapshotState::Pending => {
                let start = self.started_at?;
                let total = self.ready_at.checked_sub(start)?.as_nanos();
                let done = now.saturating_sub(start).as_nanos();
                let percent = (done * 100).checked_div(total)?.min(99);
                u8::try_from(percent).ok()
            }
        }
    }

    /// Whether `account` may see (and create volumes from) the snapshot.
    pub(crate) fn readable_by(&self, account: &AccountId) -> bool {
        &self.owner == account
            || self.volume_permissions.iter().any(|p| match p {
                VolumePermission::Public => true,
                VolumePermission::Account(a) => a == account,
            })
    }
}

#[derive(Debug)]
pub(crate) struct InstanceRecord {
    pub(crate) id: InstanceId,
    pub(crate) owner: AccountId,
    pub(crate) region: Region,
    pub(crate) image: ImageId,
    /// State changes in time order; the state at `t` is the last one at or before `t`.
    pub(crate) timeline: Vec<(Duration, InstanceState)>,
    /// The state reason and when it appears.
    pub(crate) reason: Option<(Duration, StateReason)>,
    pub(crate) failure_detail: Option<String>,
    pub(crate) volumes: Vec<InstanceVolume>,
    /// The grants EC2 holds for the instance's volumes.
    pub(crate) grants: Vec<(KeyId, GrantId)>,
    /// The instance's tags.
    pub(crate) tags: BTreeMap<String, String>,
}

impl InstanceRecord {
    pub(crate) fn state(&self, now: Duration) -> InstanceState {
        self.timeline
            .iter()
            .rev()
            .find(|(at, _)| *at <= now)
            .or_else(|| self.timeline.first())
            .map_or(InstanceState::Pending, |(_, state)| *state)
    }

    pub(crate) fn state_reason(&self, now: Duration) -> Option<StateReason> {
        match &self.reason {
            Some((at, reason)) if *at <= now => Some(reason.clone()),
            _ => None,
        }
    }

    pub(crate) fn to_instance(&self, now: Duration) -> amishare_core::store::Instance {
        amishare_core::store::Instance {
            id: self.id.clone(),
            owner: self.owner.clone(),
            image: self.image.clone(),
            state: self.state(now),
            state_reason: self.state_reason(now),
            // The KMS refusal behind a failed launch, shown with its state reason.
            failure_cause: self
                .state_reason(now)
                .and_then(|_| self.failure_detail.clone()),
            volumes: self.volumes.iter().map(|v| v.volume.clone()).collect(),
            tags: self.tags.clone(),
        }
    }
}

/// A volume attached to an instance, with the type a snapshot of it keeps.
#[derive(Debug, Clone)]
pub(crate) struct InstanceVolume {
    pub(crate) volume: AttachedVolume,
    pub(crate) volume_type: String,
}

// ---------------------------------------------------------------- per call

/// What one operation works with: the caller and the services' state.
pub(crate) struct Ctx<'a> {
    pub(crate) who: Who<'a>,
    pub(crate) iam: &'a Iam,
    pub(crate) allowed: &'a mut Allowed,
    pub(crate) kms: &'a mut Kms,
    pub(crate) ec2: &'a mut Ec2,
    pub(crate) scaling: &'a mut Scaling,
    pub(crate) ids: &'a mut IdGen,
    pub(crate) knobs: &'a Knobs,
    pub(crate) eventual: &'a mut Eventual,
    pub(crate) now: Duration,
    /// EC2's `DryRun`: the operation stops at its authorization, answering
    /// `DryRunOperation` when it would have been allowed.
    pub(crate) dry_run: bool,
}

// ---------------------------------------------------------------- Auto Scaling

/// Launch templates, Auto Scaling groups and their activities
/// (`docs/spec/production.md` §C1.6, §C1.7).
#[derive(Debug, Default)]
pub(crate) struct Scaling {
    /// Launch templates by `<account>/<region>/<name>`.
    pub(crate) templates: BTreeMap<String, TemplateRecord>,
    /// `CreateLaunchTemplate` client tokens: `<account>/<region>/<token>` → template name.
    pub(crate) template_tokens: BTreeMap<String, String>,
    /// Groups by `<account>/<region>/<name>`.
    pub(crate) groups: BTreeMap<String, GroupRecord>,
    /// Every activity, oldest first; those of deleted groups stay.
    pub(crate) activities: Vec<ActivityRecord>,
}

#[derive(Debug, Clone)]
pub(crate) struct TemplateRecord {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) owner: AccountId,
    pub(crate) region: Region,
    pub(crate) image: ImageId,
    pub(crate) instance_type: String,
    pub(crate) tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub(crate) struct GroupRecord {
    pub(crate) name: String,
    pub(crate) uuid: String,
    pub(crate) owner: AccountId,
    pub(crate) region: Region,
    /// The launch template's name; its image is read at each launch.
    pub(crate) template: String,
    pub(crate) min_size: u32,
    pub(crate) max_size: u32,
    pub(crate) desired: u32,
    pub(crate) zones: Vec<String>,
    pub(crate) subnets: Option<String>,
    /// The service-linked role it launches as.
    pub(crate) role: PrincipalArn,
    pub(crate) tags: BTreeMap<String, String>,
    /// Every instance it launched, in order.
    pub(crate) members: Vec<InstanceId>,
    /// When it next tries to launch towards its desired capacity.
    pub(crate) next_attempt: Option<Duration>,
    /// Since when every launch failed, if the last one did.
    pub(crate) failing_since: Option<Duration>,
}

#[derive(Debug, Clone)]
pub(crate) struct ActivityRecord {
    pub(crate) id: String,
    pub(crate) owner: AccountId,
    pub(crate) region: Region,
    pub(crate) group: String,
    pub(crate) started_at: Duration,
    pub(crate) cause: String,
    /// The instance launched, when `RunInstances` took the request.
    pub(crate) instance: Option<InstanceId>,
    /// EC2's message, when `RunInstances` refused the launch.
    pub(crate) refused: Option<String>,
}
