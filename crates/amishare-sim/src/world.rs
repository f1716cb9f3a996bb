//! [`World`]: the simulated AWS, its seeding API, its virtual clock and its
//! call log.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use amishare_core::store::{AttachedVolume, InstanceState, KeyState};
use amishare_core::{
    AccountId, Error, ErrorKind, ImageId, InstanceId, KeyArn, PrincipalArn, PrincipalKind, Region,
    Result,
};
use amishare_policy::Policy;
use async_trait::async_trait;

use crate::client::SimClient;
use crate::consistency::{Consistency, ConsistencyTally, Eventual};
use crate::ids::IdGen;
use crate::knobs::Knobs;
use crate::log::{CallLog, CallRecord};
use crate::state::{
    Account, Allowed, Ec2, Iam, IamPrincipal, InstanceRecord, InstanceVolume, Kms, Scaling, State,
};

/// How a seeded volume is encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeEncryption {
    /// Not encrypted.
    Unencrypted,
    /// Encrypted with the account's AWS managed `aws/ebs` key in the region.
    AwsEbs,
    /// Encrypted with this key (of the instance's region).
    Key(KeyArn),
}

/// An EBS volume of a seeded instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSeed {
    /// Device name, e.g. `/dev/xvda`.
    pub device_name: String,
    /// Size in GiB.
    pub size_gib: u32,
    /// Volume type, e.g. `gp3`.
    pub volume_type: String,
    /// How it is encrypted.
    pub encryption: VolumeEncryption,
}

impl VolumeSeed {
    /// An 8 GiB `gp3` root volume at `/dev/xvda`.
    pub fn root(encryption: VolumeEncryption) -> VolumeSeed {
        VolumeSeed::new("/dev/xvda", 8, encryption)
    }

    /// A `gp3` volume at `device_name`.
    pub fn new(device_name: &str, size_gib: u32, encryption: VolumeEncryption) -> VolumeSeed {
        VolumeSeed {
            device_name: device_name.to_owned(),
            size_gib,
            volume_type: "gp3".to_owned(),
            encryption,
        }
    }
}

struct Shared {
    seed: u64,
    state: Mutex<State>,
    /// Virtual time added by [`World::advance`], in nanoseconds.
    offset_nanos: AtomicU64,
    /// The runtime's time when the world was made; `None` for a world whose
    /// time only moves by [`World::advance`].
    start: Option<tokio::time::Instant>,
}

/// The simulated AWS: accounts, principals, KMS keys, EC2 images, snapshots
/// and instances, in every region.
///
/// `World` is a cheap handle (`Clone` shares the same world). Hand out
/// [`SimClient`]s with [`World::client`] to act as a principal; seed state
/// directly (bypassing authorization) with the other methods.
///
/// Time is virtual. A [`World::new`] world's [`now`](World::now) is the
/// time elapsed on the tokio clock since the world was made, plus whatever
/// [`World::advance`] added: run it on a paused runtime
/// (`#[tokio::test(start_paused = true)]`, which needs tokio's `test-util`
/// feature) and every wait on its [`World::clock`] is instant, waits in
/// several regions overlapping as they would on AWS. Its clock panics rather
/// than sleep in real time on a runtime whose clock is not paused. A
/// [`World::stepped`] world ignores the tokio clock: its time moves only
/// when something sleeps on it or calls [`World::advance`], on any runtime.
#[derive(Clone)]
pub struct World {
    shared: Arc<Shared>,
}

impl fmt::Debug for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("World")
            .field("seed", &self.shared.seed)
            .field("now", &self.now())
            .finish_non_exhaustive()
    }
}

impl World {
    /// An empty world whose IDs derive from `seed`, with default [`Knobs`]
    /// ([`World::set_knobs`] changes them), whose time follows the tokio
    /// runtime's clock: the world for tests on a paused runtime.
    pub fn new(seed: u64) -> World {
        World::build(seed, Knobs::default(), Some(tokio::time::Instant::now()))
    }

    /// An empty world whose time never follows the runtime's clock: it moves
    /// only by [`World::advance`], and every clock of the world (even
    /// [`SimClock`]) sleeps by advancing it. Such a world needs no runtime
    /// timer, and reading its time costs no clock read; concurrent sleepers
    /// add up rather than overlap, so it suits flows that wait for one thing
    /// at a time.
    pub fn stepped(seed: u64) -> World {
        World::build(seed, Knobs::default(), None)
    }

    fn build(seed: u64, knobs: Knobs, start: Option<tokio::time::Instant>) -> World {
        let state = State {
            knobs,
            ids: IdGen::new(seed),
            iam: Iam::default(),
            allowed: Allowed::default(),
            kms: Kms::default(),
            ec2: Ec2::default(),
            scaling: Scaling::default(),
            eventual: Eventual::default(),
            log: CallLog::default(),
        };
        World {
            shared: Arc::new(Shared {
                seed,
                state: Mutex::new(state),
                offset_nanos: AtomicU64::new(0),
                start,
            }),
        }
    }

    /// The seed the world was made with.
    pub fn seed(&self) -> u64 {
        self.shared.seed
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held cannot leave the state half
        // updated in a way that matters to a simulation; keep going.
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current knobs.
    pub fn knobs(&self) -> Knobs {
        self.lock().knobs.clone()
    }

    /// Replaces the knobs; they apply to calls from now on.
    pub fn set_knobs(&self, knobs: Knobs) {
        self.lock().knobs = knobs;
    }

    /// How eventually consistent the world is and how often a copy fails
    /// inside EC2 (`docs/spec/kms.md` §A9, `docs/spec/ec2.md` §B19).
    pub fn consistency(&self) -> Consistency {
        self.lock().eventual.setting
    }

    /// Sets how eventually consistent the world is, for every client alike
    /// (in process or through `amishare sim serve`), from now on: only keys,
    /// aliases, grants, images and launch permissions made while the delay
    /// is non-zero are hidden, so what the world held before stays visible;
    /// a zero delay shows everything at once.
    pub fn set_consistency(&self, consistency: Consistency) {
        self.lock().eventual.setting = consistency;
    }

    /// How many reads the delay hid something from, and how many copies
    /// failed by chance, so far.
    pub fn consistency_tally(&self) -> ConsistencyTally {
        self.lock().eventual.tally
    }

    // ------------------------------------------------------------ time

    /// Virtual time since the world was made.
    pub fn now(&self) -> Duration {
        let offset = Duration::from_nanos(self.shared.offset_nanos.load(Ordering::Acquire));
        match self.shared.start {
            Some(start) => offset + start.elapsed(),
            None => offset,
        }
    }

    /// Moves virtual time forward, for code that does not run on a paused
    /// tokio runtime.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.shared.offset_nanos.fetch_add(nanos, Ordering::AcqRel);
    }

    /// Advances time by a sleep of `duration`, rounded up to the
    /// millisecond as tokio's timer rounds it, so that a flow takes the same
    /// virtual time whichever clock it sleeps on.
    fn step(&self, duration: Duration) {
        const MILLI: u128 = 1_000_000;
        let millis = duration.as_nanos().div_ceil(MILLI);
        let nanos = u64::try_from(millis * MILLI).unwrap_or(u64::MAX);
        self.advance(Duration::from_nanos(nanos));
    }

    /// A [`Clock`](amishare_core::Clock) on the world's virtual time: the
    /// clock to give a [`Flow`](amishare_core::Flow) in this world.
    pub fn clock(&self) -> SimClock {
        SimClock {
            world: self.clone(),
        }
    }

    /// A [`Clock`](amishare_core::Clock) whose sleeps move the world's
    /// virtual time forward at once, without the runtime's timer: for a flow
    /// that waits for one thing at a time (see [`SteppingClock`]).
    pub fn stepping_clock(&self) -> SteppingClock {
        SteppingClock {
            world: self.clone(),
        }
    }

    // ------------------------------------------------------------ principals

    /// A client acting as `principal`: an account root, a user, a role, or a
    /// session of a role. The principal must exist.
    pub fn client(&self, principal: &PrincipalArn) -> Result<SimClient> {
        let state = self.lock();
        let account = state
            .iam
            .accounts
            .get(principal.account())
            .ok_or_else(|| unknown_account(principal.account()))?;
        let identity = match principal.kind() {
            PrincipalKind::Root => principal.clone(),
            PrincipalKind::User | PrincipalKind::Role => principal.clone(),
            PrincipalKind::AssumedRole => principal
                .role_arn()
                .ok_or_else(|| unknown_principal(principal))?,
        };
        if identity.kind() != PrincipalKind::Root
            && !account.principals.contains_key(identity.as_str())
        {
            return Err(unknown_principal(principal));
        }
        drop(state);
        Ok(SimClient::new(self.clone(), principal.clone(), identity))
    }

    /// A client acting as the root of `account`.
    pub fn root_client(&self, account: &AccountId) -> Result<SimClient> {
        self.client(&account.root_arn())
    }

    /// Adds an account outside any organization; returns its root principal.
    pub fn add_account(&self, account: &AccountId) -> Result<PrincipalArn> {
        let mut state = self.lock();
        if state.iam.accounts.contains_key(account) {
            return Err(seed_error(
                ErrorKind::Conflict,
                format!("account {account} already exists"),
            ));
        }
        let new = Account::new(account.clone());
        let root = new.root.clone();
        state.iam.accounts.insert(account.clone(), new);
        state.allowed.clear();
        Ok(root)
    }

    /// Adds an account in an organization, at `org_path`
    /// (`o-…/r-…/ou-…/…/`, as `aws:PrincipalOrgPaths` shows it); returns its
    /// root principal.
    pub fn add_account_in_org(&self, account: &AccountId, org_path: &str) -> Result<PrincipalArn> {
        let org_id = parse_org_path(org_path)?;
        let root = self.add_account(account)?;
        let mut state = self.lock();
        let stored = state
            .iam
            .accounts
            .get_mut(account)
            .expect("the account was just added");
        stored.org_id = Some(org_id);
        stored.org_paths = vec![org_path.to_owned()];
        state.allowed.clear();
        Ok(root)
    }

    /// Adds an IAM user `name` (optionally with a path, `path/name`) with
    /// these identity policies (JSON documents).
    pub fn add_user(
        &self,
        account: &AccountId,
        name: &str,
        policies: &[&str],
    ) -> Result<PrincipalArn> {
        self.add_principal(account, "user", name, policies)
    }

    /// Adds an IAM role `name` (optionally with a path) with these identity
    /// policies (JSON documents). Clients can act as the role or as a
    /// session of it (`arn:aws:sts::<account>:assumed-role/<name>/<session>`).
    pub fn add_role(
        &self,
        account: &AccountId,
        name: &str,
        policies: &[&str],
    ) -> Result<PrincipalArn> {
        self.add_principal(account, "role", name, policies)
    }

    fn add_principal(
        &self,
        account: &AccountId,
        kind: &str,
        name: &str,
        policies: &[&str],
    ) -> Result<PrincipalArn> {
        let arn = PrincipalArn::parse(&format!("arn:aws:iam::{account}:{kind}/{name}"))?;
        let policies = parse_policies(policies)?;
        let mut state = self.lock();
        let stored = state
            .iam
            .accounts
            .get_mut(account)
            .ok_or_else(|| unknown_account(account))?;
        if stored.principals.contains_key(arn.as_str()) {
            return Err(seed_error(
                ErrorKind::Conflict,
                format!("principal {arn} already exists"),
            ));
        }
        stored.principals.insert(
            arn.as_str().to_owned(),
            IamPrincipal {
                policies,
                service_linked: false,
            },
        );
        state.allowed.clear();
        Ok(arn)
    }

    /// Replaces the identity policies of a user or role. A service-linked
    /// role's are AWS's: IAM refuses to change them with `UnmodifiableEntity`
    /// (`docs/spec/production.md` §C1.1).
    pub fn set_identity_policies(&self, principal: &PrincipalArn, policies: &[&str]) -> Result<()> {
        let policies = parse_policies(policies)?;
        let mut state = self.lock();
        let stored = state
            .iam
            .accounts
            .get_mut(principal.account())
            .and_then(|account| account.principals.get_mut(principal.as_str()))
            .ok_or_else(|| unknown_principal(principal))?;
        if stored.service_linked {
            let name = principal.as_str().rsplit('/').next().unwrap_or_default();
            return Err(Error::service(
                ErrorKind::Conflict,
                "UnmodifiableEntity",
                format!("Cannot perform the operation on the protected role '{name}' - this role is only modifiable by AWS"),
            ));
        }
        stored.policies = policies;
        state.allowed.clear();
        Ok(())
    }

    /// Creates a service-linked role in `account` (IAM's
    /// `CreateServiceLinkedRole`, with a custom suffix where the role has
    /// one), unless it exists; returns its ARN. The default Auto Scaling
    /// role is also created by the first group that names no role.
    pub fn add_service_linked_role(
        &self,
        account: &AccountId,
        role: &amishare_core::scaling::ServiceLinkedRole,
    ) -> Result<PrincipalArn> {
        let mut state = self.lock();
        let arn = state.iam.add_service_linked_role(account, role)?;
        state.allowed.clear();
        Ok(arn)
    }

    // ------------------------------------------------------------ KMS

    /// Creates a customer managed key directly, with `policy` (JSON) or the
    /// default key policy. The policy is parsed but not otherwise validated.
    pub fn seed_key(
        &self,
        account: &AccountId,
        region: &Region,
        description: &str,
        policy: Option<&str>,
    ) -> Result<KeyArn> {
        let (policy, text) = match policy {
            Some(text) => (Policy::parse(text)?, Some(text.to_owned())),
            None => (Policy::default_key_policy(account.as_str()), None),
        };
        let mut state = self.lock();
        if !state.iam.accounts.contains_key(account) {
            return Err(unknown_account(account));
        }
        let State { kms, ids, .. } = &mut *state;
        let key = kms.insert_customer_key(ids, account, region, description, policy, text);
        Ok(key.arn.clone())
    }

    /// The AWS managed `aws/ebs` key of an account in a region (created on
    /// first use, as AWS does).
    pub fn aws_ebs_key(&self, account: &AccountId, region: &Region) -> Result<KeyArn> {
        let mut state = self.lock();
        if !state.iam.accounts.contains_key(account) {
            return Err(unknown_account(account));
        }
        let State { kms, ids, .. } = &mut *state;
        let id = kms.aws_ebs_key(ids, account, region);
        Ok(kms.keys[&id].arn.clone())
    }

    /// Sets a key's state (`Enabled`, `Disabled` or `PendingDeletion`).
    pub fn set_key_state(&self, key: &KeyArn, key_state: KeyState) -> Result<()> {
        let mut state = self.lock();
        match state.kms.keys.get_mut(key.key_id()) {
            Some(stored) if &stored.arn == key => {
                stored.state = key_state;
                Ok(())
            }
            _ => Err(seed_error(
                ErrorKind::NotFound,
                format!("key {key} does not exist"),
            )),
        }
    }

    // ------------------------------------------------------------ EC2

    /// Turns EBS encryption by default on or off for an account in a region.
    pub fn set_ebs_encryption_by_default(
        &self,
        account: &AccountId,
        region: &Region,
        enabled: bool,
    ) -> Result<()> {
        let mut state = self.lock();
        if !state.iam.accounts.contains_key(account) {
            return Err(unknown_account(account));
        }
        state
            .ec2
            .ebs_settings_mut(account, region)
            .encryption_by_default = enabled;
        Ok(())
    }

    /// Sets (or with `None` resets to `alias/aws/ebs`) the default EBS key of
    /// an account in a region. The key must be in that region; it need not
    /// exist or be usable, which makes launches fail as on AWS.
    pub fn set_ebs_default_key(
        &self,
        account: &AccountId,
        region: &Region,
        key: Option<KeyArn>,
    ) -> Result<()> {
        if let Some(key) = &key {
            if key.region() != region {
                return Err(seed_error(
                    ErrorKind::InvalidInput,
                    format!("default key {key} is not in region {region}"),
                ));
            }
        }
        let mut state = self.lock();
        if !state.iam.accounts.contains_key(account) {
            return Err(unknown_account(account));
        }
        state.ec2.ebs_settings_mut(account, region).default_key = key;
        Ok(())
    }

    /// Adds a `running` instance with these volumes; images can then be
    /// created from it.
    pub fn seed_instance(
        &self,
        account: &AccountId,
        region: &Region,
        volumes: &[VolumeSeed],
    ) -> Result<InstanceId> {
        let now = self.now();
        let mut state = self.lock();
        if !state.iam.accounts.contains_key(account) {
            return Err(unknown_account(account));
        }
        let State { kms, ids, ec2, .. } = &mut *state;
        let mut attached = Vec::with_capacity(volumes.len());
        for seed in volumes {
            let kms_key = match &seed.encryption {
                VolumeEncryption::Unencrypted => None,
                VolumeEncryption::AwsEbs => {
                    let id = kms.aws_ebs_key(ids, account, region);
                    Some(kms.keys[&id].arn.clone())
                }
                VolumeEncryption::Key(arn) => {
                    if arn.region() != region {
                        return Err(seed_error(
                            ErrorKind::InvalidInput,
                            format!("volume key {arn} is not in region {region}"),
                        ));
                    }
                    Some(arn.clone())
                }
            };
            attached.push(InstanceVolume {
                volume: AttachedVolume {
                    volume_id: ids.volume(),
                    device_name: seed.device_name.clone(),
                    encrypted: kms_key.is_some(),
                    kms_key,
                    size: seed.size_gib,
                },
                volume_type: seed.volume_type.clone(),
            });
        }
        let id = ids.instance();
        let base_image = ids.image();
        ec2.instances.insert(
            id.clone(),
            Box::new(InstanceRecord {
                id: id.clone(),
                owner: account.clone(),
                region: region.clone(),
                image: base_image,
                timeline: vec![(now, InstanceState::Running)],
                reason: None,
                failure_detail: None,
                volumes: attached,
                grants: Vec::new(),
                tags: BTreeMap::new(),
            }),
        );
        Ok(id)
    }

    // ------------------------------------------------------------ inspection

    /// Why an image went `failed` or an instance terminated at launch: the
    /// KMS error EC2 met on the caller's behalf (AWS does not show this; the
    /// simulation keeps it for diagnostics). `id` is an image or instance ID.
    pub fn failure_detail(&self, id: &str) -> Option<String> {
        let state = self.lock();
        if let Ok(image) = id.parse() {
            return state.ec2.images.get(&image)?.failure_detail.clone();
        }
        if let Ok(instance) = id.parse() {
            return state.ec2.instances.get(&instance)?.failure_detail.clone();
        }
        None
    }

    /// Makes a pending image go `failed` when it would have become
    /// available, with the knobs' copy failure as its state reason and its
    /// snapshots failed too: a copy that fails inside EC2.
    pub fn fail_image(&self, id: &ImageId) -> Result<()> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let reason = state.knobs.copy_failure.clone();
        let message = state.knobs.copy_failure_snapshot_message.clone();
        let image = state
            .ec2
            .images
            .get_mut(id)
            .ok_or_else(|| crate::errors::image_not_found(id))?;
        image.failure.get_or_insert(reason);
        image
            .failure_detail
            .get_or_insert_with(|| "an injected internal error".to_owned());
        for device in &image.devices {
            if let Some(snapshot) = state.ec2.snapshots.get_mut(&device.snapshot) {
                snapshot.failure.get_or_insert_with(|| message.clone());
            }
        }
        Ok(())
    }

    /// The instances of `account` and their states now.
    pub fn instances(&self, account: &AccountId) -> Vec<(InstanceId, InstanceState)> {
        let now = self.now();
        self.lock()
            .ec2
            .instances
            .values()
            .filter(|instance| &instance.owner == account)
            .map(|instance| (instance.id.clone(), instance.state(now)))
            .collect()
    }

    /// The customer-managed keys of `account`, in every region, with their
    /// tags: what a test checks for keys left behind.
    pub fn customer_keys(&self, account: &AccountId) -> Vec<(KeyArn, BTreeMap<String, String>)> {
        self.lock()
            .kms
            .keys
            .values()
            .filter(|key| {
                key.manager == amishare_core::store::KeyManager::Customer
                    && key.arn.account() == account
            })
            .map(|key| (key.arn.clone(), key.tags.clone()))
            .collect()
    }

    /// The instance an image was created from (EC2's `SourceInstanceId`;
    /// amishare's [`Image`](amishare_core::store::Image) does not carry it).
    pub fn source_instance(&self, image: &ImageId) -> Option<InstanceId> {
        self.lock().ec2.images.get(image)?.source_instance.clone()
    }

    /// Every call recorded so far (when [`Knobs::record_calls`] is on), in
    /// order.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.lock().log.records.clone()
    }

    /// How many calls were made so far.
    pub fn call_count(&self) -> usize {
        self.lock().log.total
    }

    /// How many calls of mutating operations were made so far (successful or
    /// not), so a test can prove that a rerun changes nothing.
    pub fn mutating_calls(&self) -> usize {
        self.lock().log.mutating
    }

    /// Forgets the calls recorded so far and resets the counters.
    pub fn clear_calls(&self) {
        self.lock().log.clear();
    }

    /// Whether the world has this account.
    pub fn has_account(&self, account: &AccountId) -> bool {
        self.lock().iam.accounts.contains_key(account)
    }

    /// The accounts of the world.
    pub fn accounts(&self) -> BTreeSet<AccountId> {
        self.lock().iam.accounts.keys().cloned().collect()
    }

    /// The users and roles of an account, with how many identity policies
    /// each has.
    pub fn principals(&self, account: &AccountId) -> BTreeMap<String, usize> {
        self.lock()
            .iam
            .accounts
            .get(account)
            .map(|account| {
                account
                    .principals
                    .iter()
                    .map(|(arn, principal)| (arn.clone(), principal.policies.len()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The world's virtual clock: [`now`](amishare_core::Clock::now) is
/// [`World::now`], [`sleep`](amishare_core::Clock::sleep) is
/// `tokio::time::sleep`, which costs nothing on a paused runtime (or, in a
/// [`World::stepped`] world, an advance of the world's time).
///
/// # Panics
///
/// A sleep panics, naming the fix, when the world follows the tokio clock
/// and that clock is not paused: the wait would otherwise take its virtual
/// time (minutes, for a copy) in real time.
#[derive(Debug, Clone)]
pub struct SimClock {
    world: World,
}

#[async_trait]
impl amishare_core::Clock for SimClock {
    fn now(&self) -> Duration {
        self.world.now()
    }

    async fn sleep(&self, duration: Duration) {
        if self.world.shared.start.is_none() {
            self.world.step(duration);
            return;
        }
        if !duration.is_zero() && tokio_clock_runs() {
            panic!(
                "amishare_sim::SimClock would sleep {duration:?} of virtual time in real time: \
                 the tokio runtime's clock is not paused. Run the world on a paused \
                 current-thread runtime (`#[tokio::test(start_paused = true)]`, or \
                 `tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true)`, \
                 with tokio's `test-util` feature), or make it with `World::stepped`, \
                 whose clocks advance its time at once on any runtime"
            );
        }
        tokio::time::sleep(duration).await;
    }
}

/// Whether the tokio clock moves by itself, as it does unless paused.
///
/// tokio has no query for this, but a paused clock reads the same until the
/// runtime advances it, which it never does while this task runs, whereas a
/// running one follows the monotonic clock: so the tokio clock is read, the
/// monotonic clock is watched until it moves, and the tokio clock is read
/// again. The answer is exact, and costs a few hundred nanoseconds.
fn tokio_clock_runs() -> bool {
    let before = tokio::time::Instant::now();
    let real = std::time::Instant::now();
    while std::time::Instant::now() == real {
        std::hint::spin_loop();
    }
    tokio::time::Instant::now() != before
}

/// A clock for one sequential flow: [`now`](amishare_core::Clock::now) is
/// [`World::now`], [`sleep`](amishare_core::Clock::sleep) is
/// [`World::advance`] and returns at once.
///
/// A sleep is rounded up to the millisecond, as tokio's timer rounds it, so a
/// flow takes the same virtual time on this clock as on [`SimClock`].
///
/// Sleeping never yields to the runtime, so a wait costs no timer and no
/// park; but concurrent sleepers would add up rather than overlap, so flows
/// that wait in several regions at once need [`SimClock`] on a paused
/// runtime.
#[derive(Debug, Clone)]
pub struct SteppingClock {
    world: World,
}

#[async_trait]
impl amishare_core::Clock for SteppingClock {
    fn now(&self) -> Duration {
        self.world.now()
    }

    async fn sleep(&self, duration: Duration) {
        self.world.step(duration);
    }
}

fn seed_error(kind: ErrorKind, message: String) -> Error {
    Error::new(kind, message)
}

fn unknown_account(account: &AccountId) -> Error {
    seed_error(
        ErrorKind::NotFound,
        format!("account {account} does not exist in the simulation"),
    )
}

fn unknown_principal(principal: &PrincipalArn) -> Error {
    seed_error(
        ErrorKind::NotFound,
        format!("principal {principal} does not exist in the simulation"),
    )
}

fn parse_policies(policies: &[&str]) -> Result<Vec<Policy>> {
    policies
        .iter()
        .enumerate()
        .map(|(index, text)| {
            Policy::parse(text)
                .map_err(|err| Error::from(err).context(format!("identity policy {index}")))
        })
        .collect()
}

/// Checks an `aws:PrincipalOrgPaths` entry and returns its organization ID.
pub(crate) fn parse_org_path(path: &str) -> Result<String> {
    let bad = |why: &str| Error::invalid_input("organization path", path, why);
    let trimmed = path
        .strip_suffix('/')
        .ok_or_else(|| bad("must end with '/'"))?;
    let segments: Vec<&str> = trimmed.split('/').collect();
    let (org, rest) = segments.split_first().ok_or_else(|| bad("empty"))?;
    if !org.starts_with("o-") || org.len() < 12 {
        return Err(bad("must start with an organization ID (o-…)"));
    }
    let (root, ous) = rest
        .split_first()
        .ok_or_else(|| bad("must name the root (r-…) after the organization"))?;
    if !root.starts_with("r-") {
        return Err(bad("the second segment must be the root (r-…)"));
    }
    if ous.iter().any(|ou| !ou.starts_with("ou-")) {
        return Err(bad("segments after the root must be OUs (ou-…)"));
    }
    Ok((*org).to_owned())
}
