//! The conformance suite's [`Harness`] over a [`World`]: seeding goes
//! straight to the world, and the parties are whatever stores act in it, the
//! world's own clients or AWS SDK clients of `amishare sim serve`.

use std::sync::Arc;

use amishare_conformance::{Capabilities, Harness, Party, VolumeSeed};
use amishare_core::store::KeyState;
use amishare_core::{
    AccountId, Clock, InstanceId, KeyArn, OrganizationArn, OuArn, PrincipalArn, Region, Result,
    Stores,
};
use async_trait::async_trait;

use crate::world::{VolumeEncryption, World};

/// Everything the owner's administrator may do.
const OWNER_POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
/// The target account's place in the owner's organization.
const ORG_PATH: &str = "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/";
/// The target principal's identity policy before a scenario adds KMS: EC2,
/// and Auto Scaling as AWS's example for a group with a shared key has it.
const EC2_ONLY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"UseEc2","Effect":"Allow","Action":"ec2:*","Resource":"*"},{"Sid":"UseAutoScaling","Effect":"Allow","Action":["autoscaling:*","iam:CreateServiceLinkedRole","kms:ListRetirableGrants"],"Resource":"*"}]}"#;
const REGION: &str = "ap-northeast-1";
const OTHER_REGION: &str = "us-east-1";

/// The suite's two accounts in `world`: A (111111111111) with its
/// administrator `a-admin`, and B (222222222222, in an OU of A's
/// organization) with its users `b-user` and `b-other`. Returns the owner
/// and the target principal; [`OTHER_TARGET`] is the other.
pub fn two_accounts(world: &World) -> Result<(PrincipalArn, PrincipalArn)> {
    let a = AccountId::parse("111111111111")?;
    let b = AccountId::parse("222222222222")?;
    world.add_account(&a)?;
    world.add_account_in_org(&b, ORG_PATH)?;
    let owner = world.add_user(&a, "a-admin", &[OWNER_POLICY])?;
    let target = world.add_user(&b, "b-user", &[EC2_ONLY])?;
    world.add_user(&b, "b-other", &[EC2_ONLY])?;
    Ok((owner, target))
}

/// The target account's second user, shared with separately.
pub const OTHER_TARGET: &str = "arn:aws:iam::222222222222:user/b-other";

/// The parties of a [`WorldHarness`]: stores acting as the owner's
/// administrator, the target principal, and the target account's root.
#[derive(Clone)]
pub struct Parties {
    /// The owner's administrator.
    pub owner: Party,
    /// The target principal.
    pub target: Party,
    /// The target account's root.
    pub target_admin: Party,
    /// The target account's second user, [`OTHER_TARGET`].
    pub other_target: Option<Party>,
}

/// A [`Harness`] over a world made by [`two_accounts`]; every capability on.
pub struct WorldHarness {
    world: World,
    parties: Parties,
    clock: Arc<dyn Clock>,
}

impl WorldHarness {
    /// The harness over `world`, acting through `parties`, waiting on `clock`.
    pub fn new(world: World, parties: Parties, clock: Arc<dyn Clock>) -> WorldHarness {
        WorldHarness {
            world,
            parties,
            clock,
        }
    }

    /// A fresh world of [`two_accounts`] with the world's own clients.
    pub fn in_process(seed: u64) -> Result<WorldHarness> {
        let world = World::new(seed);
        let (owner, target) = two_accounts(&world)?;
        let party = |principal: &PrincipalArn| -> Result<Party> {
            let client = Arc::new(world.client(principal)?);
            Ok(Party::new(
                principal.clone(),
                Stores::new(client.clone(), client.clone())
                    .with_scaling(client.clone())
                    .with_key_admin(client),
            ))
        };
        let parties = Parties {
            owner: party(&owner)?,
            target_admin: party(&target.account().root_arn())?,
            target: party(&target)?,
            other_target: Some(party(&PrincipalArn::parse(OTHER_TARGET)?)?),
        };
        let clock = Arc::new(world.clock());
        Ok(WorldHarness::new(world, parties, clock))
    }
}

#[async_trait]
impl Harness for WorldHarness {
    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }

    fn region(&self) -> Region {
        Region::parse(REGION).expect("a valid region")
    }

    fn other_region(&self) -> Region {
        Region::parse(OTHER_REGION).expect("a valid region")
    }

    fn target_organization(&self) -> Option<(OrganizationArn, OuArn)> {
        Some((
            OrganizationArn::parse("arn:aws:organizations::111111111111:organization/o-a1b2c3d4e5")
                .ok()?,
            OuArn::parse("arn:aws:organizations::111111111111:ou/o-a1b2c3d4e5/ou-ab12-11111111")
                .ok()?,
        ))
    }

    fn owner(&self) -> Party {
        self.parties.owner.clone()
    }

    fn target(&self) -> Party {
        self.parties.target.clone()
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    async fn seed_instance(&self, volumes: &[VolumeSeed]) -> Result<InstanceId> {
        let seeds: Vec<crate::VolumeSeed> = volumes
            .iter()
            .enumerate()
            .map(|(index, seed)| {
                let encryption = match seed {
                    VolumeSeed::Unencrypted => VolumeEncryption::Unencrypted,
                    VolumeSeed::AwsManaged => VolumeEncryption::AwsEbs,
                    VolumeSeed::Key(key) => VolumeEncryption::Key(key.clone()),
                };
                let device = match u8::try_from(index) {
                    Ok(0) => "/dev/xvda".to_owned(),
                    Ok(n) if n < 26 => format!("/dev/sd{}", char::from(b'a' + n)),
                    _ => format!("/dev/sdx{index}"),
                };
                crate::VolumeSeed::new(&device, 8, encryption)
            })
            .collect();
        self.world
            .seed_instance(self.parties.owner.account(), &self.region(), &seeds)
    }

    async fn seed_target_key(&self) -> Result<KeyArn> {
        self.world.seed_key(
            self.parties.target.account(),
            &self.region(),
            "target's own key",
            None,
        )
    }

    async fn set_target_kms_access(&self, keys: &[KeyArn]) -> Result<()> {
        let target = &self.parties.target.principal;
        if let Some(other) = &self.parties.other_target {
            self.set_kms_access(&other.principal, keys)?;
        }
        self.set_kms_access(target, keys)
    }

    async fn set_key_state(&self, key: &KeyArn, state: KeyState) -> Result<()> {
        self.world.set_key_state(key, state)
    }

    fn mutating_calls(&self) -> Option<usize> {
        Some(self.world.mutating_calls())
    }

    fn directory(&self) -> Option<Arc<dyn amishare_core::diagnose::Directory>> {
        Some(Arc::new(self.world.clone()))
    }

    fn target_admin(&self) -> Option<Party> {
        Some(self.parties.target_admin.clone())
    }

    fn other_target(&self) -> Option<Party> {
        self.parties.other_target.clone()
    }
}

impl WorldHarness {
    /// Sets `target`'s identity policies: EC2, and a launch's KMS actions on `keys`.
    fn set_kms_access(&self, target: &PrincipalArn, keys: &[KeyArn]) -> Result<()> {
        if keys.is_empty() {
            return self.world.set_identity_policies(target, &[EC2_ONLY]);
        }
        let resources: Vec<String> = keys.iter().map(ToString::to_string).collect();
        let kms = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "UseSharedAmiKeys",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey", "kms:CreateGrant"],
                "Resource": resources,
            }]
        })
        .to_string();
        self.world.set_identity_policies(target, &[EC2_ONLY, &kms])
    }
}
