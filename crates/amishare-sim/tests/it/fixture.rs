//! A two-account world (owner A, target B, optionally C in an organization)
//! and short helpers for the steps of the sharing flow.

use std::collections::BTreeMap;
use std::time::Duration;

use amishare_core::store::{
    CopyImageRequest, CreateImageRequest, CreateKeyRequest, ImageStore, Instance, KeyStore,
    LaunchPermission, PermissionChange, RunInstancesRequest, Snapshot, VolumePermission,
};
use amishare_core::{AccountId, Error, ImageId, InstanceId, KeyArn, KeyRef, PrincipalArn, Region};
use amishare_sim::{SimClient, VolumeEncryption, VolumeSeed, World};

pub(crate) const A: &str = "111111111111";
pub(crate) const B: &str = "222222222222";
pub(crate) const C: &str = "333333333333";
pub(crate) const REGION: &str = "ap-northeast-1";
pub(crate) const OTHER_REGION: &str = "us-east-1";
pub(crate) const ORG_PATH: &str = "o-abcdef1234/r-ab12/ou-ab12-11111111/ou-ab12-22222222/";

/// An identity policy that allows every EC2 action.
pub(crate) const EC2_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}"#;

pub(crate) fn account(id: &str) -> AccountId {
    AccountId::parse(id).unwrap()
}

pub(crate) fn region(name: &str) -> Region {
    Region::parse(name).unwrap()
}

/// The IAM policy a target principal needs to use a shared key (`docs/spec/kms.md` §A6).
pub(crate) fn kms_use_policy(key: &KeyArn) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["kms:Decrypt","kms:DescribeKey","kms:CreateGrant","kms:ReEncrypt*","kms:GenerateDataKey*"],"Resource":"{key}"}}]}}"#
    )
}

/// The seed's key policy: the owner root, plus "Allow use of the key" and
/// "Allow attachment of persistent resources" for `grantees`.
pub(crate) fn seed_key_policy(owner: &str, grantees: &[&str]) -> String {
    let root = format!(
        r#"{{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{owner}:root"}},"Action":"kms:*","Resource":"*"}}"#
    );
    if grantees.is_empty() {
        return format!(
            r#"{{"Version":"2012-10-17","Id":"key-consolepolicy-3","Statement":[{root}]}}"#
        );
    }
    let principals = grantees
        .iter()
        .map(|g| format!("\"{g}\""))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        r#"{{"Version":"2012-10-17","Id":"key-consolepolicy-3","Statement":[{root},
{{"Sid":"Allow use of the key","Effect":"Allow","Principal":{{"AWS":[{principals}]}},"Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey"],"Resource":"*"}},
{{"Sid":"Allow attachment of persistent resources","Effect":"Allow","Principal":{{"AWS":[{principals}]}},"Action":["kms:CreateGrant","kms:ListGrants","kms:RevokeGrant"],"Resource":"*","Condition":{{"Bool":{{"kms:GrantIsForAWSResource":"true"}}}}}}]}}"#
    )
}

pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Asserts an error's code, and that its message contains `fragment`.
#[track_caller]
pub(crate) fn assert_error<T: std::fmt::Debug>(
    result: Result<T, Error>,
    code: &str,
    fragment: &str,
) -> Error {
    let err = result.expect_err("the call should fail");
    assert_eq!(err.code(), Some(code), "{err}");
    assert!(
        err.message().contains(fragment),
        "{:?} should contain {fragment:?}",
        err.message()
    );
    err
}

pub(crate) struct Fx {
    pub(crate) world: World,
    pub(crate) region: Region,
    pub(crate) a: AccountId,
    pub(crate) b: AccountId,
    /// Account A's root.
    pub(crate) owner: SimClient,
}

impl Fx {
    /// Accounts A and B (and C, in an organization), no principals besides the roots.
    pub(crate) fn new() -> Fx {
        let world = World::new(42);
        let a = account(A);
        let b = account(B);
        world.add_account(&a).unwrap();
        world.add_account(&b).unwrap();
        world.add_account_in_org(&account(C), ORG_PATH).unwrap();
        let owner = world.root_client(&a).unwrap();
        Fx {
            world,
            region: region(REGION),
            a,
            b,
            owner,
        }
    }

    /// A running instance of A's with one unencrypted root volume.
    pub(crate) fn plain_instance(&self) -> amishare_core::InstanceId {
        self.world
            .seed_instance(
                &self.a,
                &self.region,
                &[VolumeSeed::root(VolumeEncryption::Unencrypted)],
            )
            .unwrap()
    }

    pub(crate) fn advance(&self, seconds: u64) {
        self.world.advance(secs(seconds));
    }

    pub(crate) fn client(&self, principal: &PrincipalArn) -> SimClient {
        self.world.client(principal).unwrap()
    }

    /// A user of B with EC2 access and, with `key`, the IAM side of using it.
    pub(crate) fn target_user(
        &self,
        name: &str,
        key: Option<&KeyArn>,
    ) -> (PrincipalArn, SimClient) {
        let kms = key.map(kms_use_policy);
        let mut policies = vec![EC2_ALL];
        policies.extend(kms.as_deref());
        let arn = self.world.add_user(&self.b, name, &policies).unwrap();
        (arn.clone(), self.client(&arn))
    }

    /// A customer managed key created by A's root with the default policy.
    pub(crate) async fn cmk(&self) -> KeyArn {
        self.owner
            .create_key(
                &self.region,
                &CreateKeyRequest {
                    description: "Cross-AMI".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .arn
    }

    /// A's key with the seed statements for `grantees` written into its policy.
    pub(crate) async fn shared_cmk(&self, grantees: &[&str]) -> KeyArn {
        let key = self.cmk().await;
        self.owner
            .put_key_policy(&key, &seed_key_policy(A, grantees))
            .await
            .unwrap();
        key
    }

    /// An available image of A's, made from a seeded instance with one 8 GiB volume.
    pub(crate) async fn image(&self, encryption: VolumeEncryption) -> ImageId {
        self.image_named("cross-test", encryption).await
    }

    pub(crate) async fn image_named(&self, name: &str, encryption: VolumeEncryption) -> ImageId {
        let instance = self
            .world
            .seed_instance(&self.a, &self.region, &[VolumeSeed::root(encryption)])
            .unwrap();
        let image = self
            .owner
            .create_image(
                &self.region,
                &CreateImageRequest {
                    instance,
                    name: name.into(),
                    tags: BTreeMap::new(),
                },
            )
            .await
            .unwrap();
        self.advance(180);
        image
    }

    pub(crate) fn copy_request(
        &self,
        source: &ImageId,
        name: &str,
        key: Option<&KeyArn>,
    ) -> CopyImageRequest {
        CopyImageRequest {
            source_image: source.clone(),
            source_region: self.region.clone(),
            name: name.into(),
            encrypted: Some(true),
            kms_key: key.map(|k| KeyRef::Arn(k.clone())),
            client_token: None,
            tags: BTreeMap::new(),
        }
    }

    /// A's image copied and encrypted under `key`, available.
    pub(crate) async fn encrypted_image(&self, key: &KeyArn) -> ImageId {
        let id = key.key_id();
        let source = self
            .image_named(&format!("cross-test-{id}"), VolumeEncryption::Unencrypted)
            .await;
        let request = self.copy_request(&source, &format!("cross-test-encrypted-{id}"), Some(key));
        let copy = self.owner.copy_image(&self.region, &request).await.unwrap();
        self.advance(4 * 60 + 80);
        copy
    }

    pub(crate) async fn share(&self, image: &ImageId, with: &AccountId) {
        self.owner
            .modify_launch_permission(
                &self.region,
                image,
                &PermissionChange::add(vec![LaunchPermission::Account(with.clone())]),
            )
            .await
            .unwrap();
    }

    /// Shares every snapshot of `image` with `with`.
    pub(crate) async fn share_snapshots(&self, image: &ImageId, with: &AccountId) {
        for snapshot in self.snapshots_of(&self.owner, image).await {
            self.owner
                .modify_create_volume_permission(
                    &self.region,
                    &snapshot.id,
                    &PermissionChange::add(vec![VolumePermission::Account(with.clone())]),
                )
                .await
                .unwrap();
        }
    }

    pub(crate) async fn snapshots_of(&self, client: &SimClient, image: &ImageId) -> Vec<Snapshot> {
        let images = client
            .describe_images(
                &self.region,
                &amishare_core::store::ImageQuery::ids([image.clone()]),
            )
            .await
            .unwrap();
        let ids: Vec<_> = images[0]
            .block_devices
            .iter()
            .map(|d| d.snapshot_id.clone())
            .collect();
        client.describe_snapshots(&self.region, &ids).await.unwrap()
    }

    pub(crate) fn run_request(image: &ImageId) -> RunInstancesRequest {
        RunInstancesRequest {
            image: image.clone(),
            instance_type: "t3.micro".into(),
            subnet: None,
            kms_key: None,
            tags: BTreeMap::new(),
            client_token: None,
        }
    }

    pub(crate) async fn launch(&self, client: &SimClient, image: &ImageId) -> Instance {
        client
            .run_instances(&self.region, &Fx::run_request(image))
            .await
            .unwrap()
    }

    pub(crate) async fn instance(&self, client: &SimClient, id: &InstanceId) -> Instance {
        client
            .describe_instances(&self.region, std::slice::from_ref(id))
            .await
            .unwrap()
            .remove(0)
    }

    pub(crate) async fn image_of(
        &self,
        client: &SimClient,
        id: &ImageId,
    ) -> amishare_core::store::Image {
        client
            .describe_images(
                &self.region,
                &amishare_core::store::ImageQuery::ids([id.clone()]),
            )
            .await
            .unwrap()
            .remove(0)
    }
}
