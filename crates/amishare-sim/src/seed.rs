//! The mission's walkthrough as a ready-made world and one call: account A
//! shares an encrypted AMI with a user of account B in ap-northeast-1, and B
//! launches it and copies it under its own key.
//!
//! `amishare demo` prints it; the `seed_flow` benchmark measures it.

use std::sync::Arc;
use std::time::Duration;

use amishare_core::scaling::ServiceLinkedRole;
use amishare_core::store::{ImageStore, InstanceState};
use amishare_core::{
    AcceptReport, AcceptRequest, AccountId, AliasName, Clock, CopyKey, Flow, ImageName,
    ImageSource, InstanceId, KeyChoice, LaunchOptions, LaunchVia, PrincipalArn, Region, Result,
    ShareReport, ShareRequest, Sharer, Target,
};
use serde::Serialize;

use crate::world::{VolumeEncryption, VolumeSeed, World};

/// The owner account, A.
pub const OWNER_ACCOUNT: &str = "111111111111";
/// The target account, B.
pub const TARGET_ACCOUNT: &str = "222222222222";
/// The region of the walkthrough.
pub const REGION: &str = "ap-northeast-1";
/// The alias of the key the walkthrough creates.
pub const KEY_ALIAS: &str = "alias/cross-ami";

/// The owner administrator's identity policy: everything, as a console administrator has.
const OWNER_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Admin","Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// The target user's identity policy: EC2, and the KMS actions a launch and a copy need on A's keys.
fn target_policy() -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "UseEc2", "Effect": "Allow", "Action": "ec2:*", "Resource": "*"},
            {"Sid": "UseAutoScaling", "Effect": "Allow", "Action": ["autoscaling:*", "iam:CreateServiceLinkedRole", "kms:ListRetirableGrants"], "Resource": "*"},
            {
                "Sid": "UseSharedAmiKeys",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey", "kms:CreateGrant"],
                "Resource": format!("arn:aws:kms:{REGION}:{OWNER_ACCOUNT}:key/*"),
            }
        ]
    })
    .to_string()
}

/// The walkthrough's world, ready to run.
#[derive(Debug, Clone)]
pub struct SeedWorld {
    /// The world.
    pub world: World,
    /// A's administrator, who shares.
    pub owner: PrincipalArn,
    /// B's user, named in the key policy, who launches.
    pub target: PrincipalArn,
    /// The region.
    pub region: Region,
    /// A's running instance (the walkthrough's `cross-test` source).
    pub instance: InstanceId,
}

impl SeedWorld {
    /// Builds the world: both accounts, A's administrator, B's user with its
    /// IAM policy, and A's running instance with an 8 GiB unencrypted root volume.
    ///
    /// The world is [`World::stepped`]: the flow waits for one thing at a
    /// time, so its time only moves when the flow sleeps.
    pub fn new(seed: u64) -> Result<SeedWorld> {
        SeedWorld::in_world(World::stepped(seed))
    }

    /// Seeds the walkthrough's accounts, principals and instance into an
    /// empty `world`.
    pub fn in_world(world: World) -> Result<SeedWorld> {
        let owner_account = AccountId::parse(OWNER_ACCOUNT)?;
        let target_account = AccountId::parse(TARGET_ACCOUNT)?;
        let region = Region::parse(REGION)?;
        world.add_account(&owner_account)?;
        world.add_account(&target_account)?;
        let owner = world.add_user(&owner_account, "a-admin", &[OWNER_POLICY])?;
        let target = world.add_user(&target_account, "b-user", &[&target_policy()])?;
        let mut root = VolumeSeed::root(VolumeEncryption::Unencrypted);
        root.volume_type = "gp2".to_owned();
        let instance = world.seed_instance(&owner_account, &region, &[root])?;
        Ok(SeedWorld {
            world,
            owner,
            target,
            region,
            instance,
        })
    }

    /// The owner side of the walkthrough: steps 1 to 3.
    pub fn share_request(&self) -> ShareRequest {
        ShareRequest::new(
            ImageSource::Instance(self.instance.clone()),
            self.region.clone(),
            KeyChoice::Create(AliasName::parse(KEY_ALIAS).expect("valid alias")),
            [Target::Principal(self.target.clone())],
        )
        .with_volume_permission(true)
        .with_name(ImageName::parse("cross-test-encrypted").expect("valid name"))
    }

    /// Runs the five steps: A shares, B checks the key, launches (keeping the
    /// instance running) and copies the image under its own default key.
    ///
    /// The flow works in one region and waits for one thing at a time, so its
    /// waits step the world's clock rather than the runtime's timer, whatever
    /// the world's time follows.
    pub async fn run(&self) -> Result<SeedFlowReport> {
        self.run_with_clock(Arc::new(self.world.stepping_clock()))
            .await
    }

    /// [`SeedWorld::run`] with the flow waiting on `clock`.
    pub async fn run_with_clock(&self, clock: Arc<dyn Clock>) -> Result<SeedFlowReport> {
        self.run_flow(clock, false).await
    }

    /// The walkthrough with a sixth step: A's share also lets B's user
    /// create a grant for B's Auto Scaling service-linked role, and B
    /// creates it and launches the image through a one-instance Auto Scaling
    /// group, as production launches (`docs/spec/choices.md` §D6).
    pub async fn run_autoscaling(&self) -> Result<SeedFlowReport> {
        self.run_flow(Arc::new(self.world.stepping_clock()), true)
            .await
    }

    /// The state the target's smoke instance is in now, as B sees it: the
    /// walkthrough keeps it running.
    pub async fn instance_state(&self, instance: &InstanceId) -> Result<InstanceState> {
        let target = self.world.client(&self.target)?;
        let found = target
            .describe_instances(&self.region, std::slice::from_ref(instance))
            .await?;
        found.first().map(|i| i.state).ok_or_else(|| {
            amishare_core::Error::new(
                amishare_core::ErrorKind::NotFound,
                format!("instance {instance} is gone from {}", self.region),
            )
        })
    }

    async fn run_flow(&self, clock: Arc<dyn Clock>, autoscaling: bool) -> Result<SeedFlowReport> {
        let start = self.world.now();
        let owner = self.world.client(&self.owner)?;
        let owner = Arc::new(owner);
        let mut request = self.share_request();
        if autoscaling {
            request.service_roles = vec![ServiceLinkedRole::auto_scaling()];
        }
        let share = Flow::new(owner.clone(), owner, clock.clone())
            .share(&request)
            .await?;
        let shared = &share.regions[0];
        let target = Arc::new(self.world.client(&self.target)?);
        let target_flow =
            Flow::new(target.clone(), target.clone(), clock).with_scaling(target.clone());
        let accept = target_flow
            .accept(
                &AcceptRequest::new(
                    shared.image.clone(),
                    self.region.clone(),
                    [shared.key.clone()],
                )
                .with_launch(LaunchOptions::default().with_keep(true))
                .with_copy(CopyKey::AccountDefault),
            )
            .await?;
        let autoscaling =
            if autoscaling {
                Some(
                    target_flow
                        .accept(
                            &AcceptRequest::new(
                                shared.image.clone(),
                                self.region.clone(),
                                [shared.key.clone()],
                            )
                            .with_launch(LaunchOptions::default().with_via(LaunchVia::AutoScaling(
                                ServiceLinkedRole::auto_scaling(),
                            )))
                            .with_grants([ServiceLinkedRole::auto_scaling()]),
                        )
                        .await?,
                )
            } else {
                None
            };
        Ok(SeedFlowReport {
            owner: self.owner.clone(),
            target: self.target.clone(),
            region: self.region.clone(),
            share,
            accept,
            autoscaling,
            simulated: self.world.now().saturating_sub(start),
        })
    }
}

/// Everything the walkthrough did.
#[derive(Debug, Clone, Serialize)]
pub struct SeedFlowReport {
    /// A's administrator.
    pub owner: PrincipalArn,
    /// B's user.
    pub target: PrincipalArn,
    /// The region.
    pub region: Region,
    /// Steps 1 to 3, the owner side.
    pub share: ShareReport,
    /// Steps 4 and 5, the target side.
    pub accept: AcceptReport,
    /// Step 6, with `run_autoscaling`: the grant for B's Auto Scaling role
    /// and the launch through an Auto Scaling group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AcceptReport>,
    /// Simulated time the flow took.
    #[serde(serialize_with = "seconds")]
    pub simulated: Duration,
}

fn seconds<S: serde::Serializer>(
    duration: &Duration,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}
