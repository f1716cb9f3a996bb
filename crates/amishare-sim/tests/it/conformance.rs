//! The conformance suite on the simulation: every function, all capabilities on.

use std::sync::Arc;

use amishare_conformance::{Capabilities, Harness, Party, VolumeSeed};
use amishare_core::{
    AccountId, Clock, InstanceId, KeyArn, KeyState, OrganizationArn, OuArn, PrincipalArn, Region,
    Result,
};
use amishare_sim::{VolumeEncryption, World};
use async_trait::async_trait;

const OWNER_POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
/// The target account's place in the owner's organization.
const ORG_PATH: &str = "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/";
const EC2_ONLY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"UseEc2","Effect":"Allow","Action":"ec2:*","Resource":"*"}]}"#;

/// A fresh world per suite function: A's administrator and B's user in ap-northeast-1.
struct SimHarness {
    world: World,
    owner: PrincipalArn,
    target: PrincipalArn,
}

impl SimHarness {
    fn new(seed: u64) -> SimHarness {
        let world = World::new(seed);
        let a = AccountId::parse("111111111111").unwrap();
        let b = AccountId::parse("222222222222").unwrap();
        world.add_account(&a).unwrap();
        world.add_account_in_org(&b, ORG_PATH).unwrap();
        let owner = world.add_user(&a, "a-admin", &[OWNER_POLICY]).unwrap();
        let target = world.add_user(&b, "b-user", &[EC2_ONLY]).unwrap();
        SimHarness {
            world,
            owner,
            target,
        }
    }

    fn party(&self, principal: &PrincipalArn) -> Party {
        let client = Arc::new(self.world.client(principal).unwrap());
        Party {
            keys: client.clone(),
            images: client,
            principal: principal.clone(),
        }
    }
}

#[async_trait]
impl Harness for SimHarness {
    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }

    fn region(&self) -> Region {
        Region::parse("ap-northeast-1").unwrap()
    }

    fn other_region(&self) -> Region {
        Region::parse("us-east-1").unwrap()
    }

    fn target_organization(&self) -> Option<(OrganizationArn, OuArn)> {
        Some((
            OrganizationArn::parse("arn:aws:organizations::111111111111:organization/o-a1b2c3d4e5")
                .unwrap(),
            OuArn::parse("arn:aws:organizations::111111111111:ou/o-a1b2c3d4e5/ou-ab12-11111111")
                .unwrap(),
        ))
    }

    fn owner(&self) -> Party {
        self.party(&self.owner)
    }

    fn target(&self) -> Party {
        self.party(&self.target)
    }

    fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(self.world.clock())
    }

    async fn seed_instance(&self, volumes: &[VolumeSeed]) -> Result<InstanceId> {
        let seeds: Vec<amishare_sim::VolumeSeed> = volumes
            .iter()
            .enumerate()
            .map(|(index, seed)| {
                let encryption = match seed {
                    VolumeSeed::Unencrypted => VolumeEncryption::Unencrypted,
                    VolumeSeed::AwsManaged => VolumeEncryption::AwsEbs,
                    VolumeSeed::Key(key) => VolumeEncryption::Key(key.clone()),
                };
                let device = if index == 0 {
                    "/dev/xvda".to_owned()
                } else {
                    format!("/dev/sd{}", (b'a' + index as u8) as char)
                };
                amishare_sim::VolumeSeed::new(&device, 8, encryption)
            })
            .collect();
        self.world
            .seed_instance(self.owner.account(), &self.region(), &seeds)
    }

    async fn seed_target_key(&self) -> Result<KeyArn> {
        self.world.seed_key(
            self.target.account(),
            &self.region(),
            "target's own key",
            None,
        )
    }

    async fn set_target_kms_access(&self, keys: &[KeyArn]) -> Result<()> {
        if keys.is_empty() {
            return self.world.set_identity_policies(&self.target, &[EC2_ONLY]);
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
        self.world
            .set_identity_policies(&self.target, &[EC2_ONLY, &kms])
    }

    async fn set_key_state(&self, key: &KeyArn, state: KeyState) -> Result<()> {
        self.world.set_key_state(key, state)
    }

    fn directory(&self) -> Option<Arc<dyn amishare_core::diagnose::Directory>> {
        Some(Arc::new(self.world.clone()))
    }

    fn target_admin(&self) -> Option<Party> {
        Some(self.party(&self.target.account().root_arn()))
    }

    fn mutating_calls(&self) -> Option<usize> {
        Some(self.world.mutating_calls())
    }
}

#[tokio::test(start_paused = true)]
async fn every_suite_function_passes_on_the_simulation() {
    let mut seed = 0;
    let results = amishare_conformance::run_all(|| {
        seed += 1;
        SimHarness::new(seed)
    })
    .await;
    assert_eq!(results.len(), amishare_conformance::all().len());
    for (name, coverage) in &results {
        assert!(
            coverage.skipped.is_empty(),
            "{name} skipped {:?} on the simulation, which models everything",
            coverage.skipped
        );
    }
}
