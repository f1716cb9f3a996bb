//! The conformance suite on the AWS backend, for two accounts: the owner's
//! administrator and the target's principal, each with its own SDK
//! configuration. It runs only when `AMISHARE_E2E` is set, and says why it
//! skipped otherwise.
//!
//! Environment:
//!
//! | variable | meaning |
//! |---|---|
//! | `AMISHARE_E2E` | set (to anything) to run the suite |
//! | `AMISHARE_E2E_OWNER_PROFILE` | profile of the owner account's administrator (required) |
//! | `AMISHARE_E2E_TARGET_PROFILE` | profile of the target principal, an IAM user or role (required) |
//! | `AMISHARE_E2E_TARGET_ADMIN_PROFILE` | profile that may change the target principal's IAM policies (default: the target's) |
//! | `AMISHARE_E2E_PROFILE_FILE` | config file with those profiles (default: the SDK's usual files) |
//! | `AMISHARE_E2E_ENDPOINT_URL` | an endpoint for every service, such as LocalStack's |
//! | `AMISHARE_E2E_REGION`, `AMISHARE_E2E_OTHER_REGION` | regions (default `ap-northeast-1`, `us-east-1`) |
//! | `AMISHARE_E2E_AMI` | an image of the owner's region to launch seed instances from (required) |
//! | `AMISHARE_E2E_INSTANCE_TYPE`, `AMISHARE_E2E_SUBNET` | how seed instances launch (default `t3.micro`, the default VPC) |
//! | `AMISHARE_E2E_CAPABILITIES` | `aws` or `localstack` (default: `localstack` with an endpoint, `aws` without) |
//!
//! Without `AMISHARE_E2E` the test prints `test … SKIPPED: …` straight to
//! stderr, where a passing `cargo test` shows it: libtest has no skipped
//! outcome a test can choose at run time, and an ignored test would need
//! `--ignored` to run when the variable is set. With it, the runner holds
//! every function to its plan for the capabilities, and the test asserts the
//! lists of functions run in full, in part and skipped.
//!
//! `cargo xtask e2e` runs the same harness against LocalStack without these
//! variables (the `localstack` module, feature `localstack`): there, an IAM
//! user's access key does map to the user, `RunInstances` takes encrypted
//! block device mappings (with a size for every device), and the key-state
//! calls work.
//!
//! **Unverified against AWS.** What the profile mode assumes and nobody has
//! checked on AWS:
//!
//! * `PutUserPolicy` / `PutRolePolicy` on the target principal, made with the
//!   target admin profile, replaces what the suite means by "the target's
//!   identity policies": the harness only writes and deletes its own two
//!   inline policies and assumes nothing else attached grants KMS actions;
//! * an `aws/ebs` volume is `Encrypted` without a `KmsKeyId`, which is the
//!   account's default EBS key: that is `aws/ebs` unless the account changed it.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use amishare_aws::{
    load, AwsImageStore, AwsKeyStore, AwsScalingStore, ConnectOptions, SdkConfig, WallClock,
};

use crate::counting::{Calls, Counting};
use amishare_conformance::{
    named, summary, Capabilities, Harness, Outcome, Party, Plan, Ran, VolumeSeed,
};
use amishare_core::store::{CreateKeyRequest, ImageStore, InstanceState, KeyState, KeyStore};
use amishare_core::{
    Clock, Error, ErrorKind, ImageId, InstanceId, KeyArn, OrganizationArn, OuArn, PrincipalArn,
    PrincipalKind, Region, Result, Stores,
};
use async_trait::async_trait;

/// The variable that turns the suite on.
const E2E: &str = "AMISHARE_E2E";

/// The target's identity policy for EC2, as on the simulation.
const EC2_POLICY_NAME: &str = "amishare-conformance-ec2";
const EC2_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"UseEc2","Effect":"Allow","Action":"ec2:*","Resource":"*"}]}"#;
/// The target's identity policy for the keys of shared images.
const KMS_POLICY_NAME: &str = "amishare-conformance-kms";

/// Everything read once from the environment, shared by every harness.
pub(crate) struct Settings {
    pub(crate) owner_config: SdkConfig,
    pub(crate) target_admin_config: SdkConfig,
    pub(crate) owner: Party,
    pub(crate) target: Party,
    pub(crate) region: Region,
    pub(crate) other_region: Region,
    pub(crate) image: ImageId,
    pub(crate) instance_type: String,
    pub(crate) subnet: Option<String>,
    pub(crate) capabilities: Capabilities,
    /// Every store call of both parties.
    pub(crate) calls: Arc<Calls>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[track_caller]
fn required(name: &str) -> String {
    var(name).unwrap_or_else(|| panic!("{E2E} is set, so {name} must be set too"))
}

impl Settings {
    /// `None` when the suite is off; a panic naming the variable when it is
    /// on but misconfigured.
    async fn from_env() -> Option<Arc<Settings>> {
        var(E2E)?;
        let region = Region::parse(&var("AMISHARE_E2E_REGION").unwrap_or("ap-northeast-1".into()))
            .expect("AMISHARE_E2E_REGION");
        let other_region =
            Region::parse(&var("AMISHARE_E2E_OTHER_REGION").unwrap_or("us-east-1".into()))
                .expect("AMISHARE_E2E_OTHER_REGION");
        let endpoint_url = var("AMISHARE_E2E_ENDPOINT_URL");
        let options = |profile: String| ConnectOptions {
            profile: Some(profile),
            profile_file: var("AMISHARE_E2E_PROFILE_FILE").map(Into::into),
            region: Some(region.clone()),
            endpoint_url: endpoint_url.clone(),
            ..ConnectOptions::default()
        };
        let target_profile = required("AMISHARE_E2E_TARGET_PROFILE");
        let owner_config = load(&options(required("AMISHARE_E2E_OWNER_PROFILE"))).await;
        let target_config = load(&options(target_profile.clone())).await;
        let target_admin_config = load(&options(
            var("AMISHARE_E2E_TARGET_ADMIN_PROFILE").unwrap_or(target_profile),
        ))
        .await;
        let calls = Arc::new(Calls::default());
        let owner = party(&owner_config, &calls).await;
        let target = party(&target_config, &calls).await;
        assert_ne!(
            owner.account(),
            target.account(),
            "the owner and target profiles must be of different accounts"
        );
        assert!(
            matches!(
                target.principal.kind(),
                PrincipalKind::User | PrincipalKind::Role | PrincipalKind::AssumedRole
            ),
            "the target must be an IAM user or role, not {}",
            target.principal
        );
        let capabilities = match var("AMISHARE_E2E_CAPABILITIES").as_deref() {
            Some("aws") => aws_capabilities(),
            Some("localstack") => localstack_capabilities(),
            None if endpoint_url.is_some() => localstack_capabilities(),
            None => aws_capabilities(),
            Some(other) => panic!("AMISHARE_E2E_CAPABILITIES is aws or localstack, not {other}"),
        };
        Some(Arc::new(Settings {
            owner_config,
            target_admin_config,
            owner,
            target,
            region,
            other_region,
            image: ImageId::parse(&required("AMISHARE_E2E_AMI")).expect("AMISHARE_E2E_AMI"),
            instance_type: var("AMISHARE_E2E_INSTANCE_TYPE").unwrap_or("t3.micro".into()),
            subnet: var("AMISHARE_E2E_SUBNET"),
            capabilities,
            calls,
        }))
    }
}

/// AWS models everything; the harness counts the calls of its stores and
/// reads IAM, but sets up no organization and one target principal.
fn aws_capabilities() -> Capabilities {
    Capabilities {
        organizations: false,
        other_target: false,
        ..Capabilities::all()
    }
}

/// What LocalStack 2026.3.0 models of this flow (see `shared/docs/localstack.md`,
/// and ARCHITECTURE.md for where it and the simulation disagree).
pub(crate) fn localstack_capabilities() -> Capabilities {
    Capabilities {
        enforces_key_policy: false,
        encrypts_copies: false,
        cross_account_visibility: false,
        async_states: false,
        counts_calls: true,
        tags_copies: false,
        organizations: false,
        other_target: false,
        directory: true,
        // No service-linked role launches under KMS authorization: LocalStack
        // evaluates no key policy or grant.
        auto_scaling: false,
        // EnableKey, DisableKey, ScheduleKeyDeletion and CancelKeyDeletion work.
        administers_keys: true,
    }
}

/// The suite functions LocalStack's capabilities let run in full.
pub(crate) const LOCALSTACK_FULL: &[&str] = &["snapshot_in_use"];

/// Those that run in part on LocalStack: every one stops at the
/// snapshot-key gate or where the target would see the shared image; the
/// key's lifecycle runs without the launches, which LocalStack does not
/// refuse for a key out of use.
pub(crate) const LOCALSTACK_PART: &[&str] = &[
    "seed_flow",
    "rerun_changes_nothing",
    "resume_unnamed_key",
    "unshare_restores",
    "aws_managed_image",
    "invisible_before_share",
    "snapshot_key_gate",
    "multi_region_share",
    "key_disabled_and_enabled",
    "key_deletion_cancelled",
];

/// Those that check nothing on LocalStack, which the runner skips.
pub(crate) const LOCALSTACK_SKIPPED: &[&str] = &[
    "refused_permissions",
    "launch_without_key_policy",
    "launch_without_target_iam",
    "launch_with_principal_but_no_iam",
    "launch_with_disabled_key",
    "copy_without_snapshot_permission",
    "copy_with_snapshot_permission",
    "copy_without_kms",
    "copy_with_key_from_other_region",
    "organization_share",
    "doctor_seed_passes",
    "doctor_key_policy_actions",
    "doctor_outcome_table",
    "share_options_agree_with_accept",
    "unshare_keeps_what_another_principal_needs",
    "fix_waits_for_the_share",
    "autoscaling_grant_route",
];

/// How many functions the suite has, as README and ARCHITECTURE say.
const SUITE_FUNCTIONS: usize = 28;

/// The functions whose plan for `capabilities` runs as `ran`, in order.
fn planned(capabilities: &Capabilities, ran: Ran) -> Vec<&'static str> {
    amishare_conformance::all()
        .iter()
        .filter(|f| f.plan(capabilities).ran() == ran)
        .map(|f| f.name)
        .collect()
}

/// Asserts that a run's lists of functions in full, in part and skipped are
/// those its capabilities plan.
pub(crate) fn assert_as_planned(capabilities: &Capabilities, outcomes: &[Outcome]) {
    for ran in [Ran::Full, Ran::Part, Ran::Skipped] {
        assert_eq!(
            named(outcomes, ran),
            planned(capabilities, ran),
            "the functions that ran {ran}"
        );
    }
}

/// LocalStack's classification, from its capabilities alone and without a
/// server: what `cargo xtask e2e` then holds the LocalStack run to.
#[test]
fn localstack_plan_lists_what_runs_in_full_in_part_and_skipped() {
    let capabilities = localstack_capabilities();
    let functions = amishare_conformance::all();
    println!(
        "{} suite functions; on LocalStack {} in full, {} in part, {} skipped",
        functions.len(),
        LOCALSTACK_FULL.len(),
        LOCALSTACK_PART.len(),
        LOCALSTACK_SKIPPED.len()
    );
    for function in &functions {
        match function.plan(&capabilities) {
            Plan::Full => println!("  {}: in full", function.name),
            Plan::Part(lacking) | Plan::Skipped(lacking) => {
                let ran = function.plan(&capabilities).ran();
                println!("  {}: {ran}", function.name);
                for capability in lacking {
                    println!("      {}", capability.lacking());
                }
            }
        }
    }
    assert_eq!(functions.len(), SUITE_FUNCTIONS);
    assert_eq!(planned(&capabilities, Ran::Full), LOCALSTACK_FULL);
    assert_eq!(planned(&capabilities, Ran::Part), LOCALSTACK_PART);
    assert_eq!(planned(&capabilities, Ran::Skipped), LOCALSTACK_SKIPPED);
}

/// The stores of one configuration, counted in `calls`, and whom they act as.
pub(crate) async fn party(config: &SdkConfig, calls: &Arc<Calls>) -> Party {
    let keys = Arc::new(Counting::new(AwsKeyStore::new(config), calls.clone()));
    let caller = keys.caller().await.expect("GetCallerIdentity");
    let stores = Stores::new(
        keys,
        Arc::new(Counting::new(AwsImageStore::new(config), calls.clone())),
    )
    .with_scaling(Arc::new(Counting::new(
        AwsScalingStore::new(config),
        calls.clone(),
    )))
    .with_key_admin(Arc::new(AwsKeyStore::new(config)));
    Party::new(caller.arn, stores)
}

/// One harness per suite function; they share the settings and the stores.
pub(crate) struct AwsHarness {
    pub(crate) settings: Arc<Settings>,
}

impl AwsHarness {
    fn ec2(&self, region: &Region) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(&self.settings.owner_config)
                .region(aws_sdk_ec2::config::Region::new(region.to_string()))
                .build(),
        )
    }

    /// Waits until the owner's instance runs.
    async fn wait_running(&self, id: &InstanceId) -> Result<()> {
        let clock = WallClock;
        let deadline = clock.now() + Duration::from_secs(600);
        loop {
            let found = self
                .settings
                .owner
                .images
                .describe_instances(&self.settings.region, std::slice::from_ref(id))
                .await?;
            match found.first().map(|i| i.state) {
                Some(InstanceState::Running) => return Ok(()),
                Some(InstanceState::Pending) | None if clock.now() < deadline => {
                    clock.sleep(Duration::from_secs(5)).await;
                }
                state => {
                    return Err(Error::new(
                        ErrorKind::Failed,
                        format!("seed instance {id} did not start: {state:?}"),
                    ))
                }
            }
        }
    }
}

/// Any SDK error of the harness's own calls.
fn harness_error<E: std::error::Error + Send + Sync + 'static>(operation: &str, err: E) -> Error {
    Error::new(
        ErrorKind::Service,
        format!(
            "{operation}: {}",
            aws_sdk_ec2::error::DisplayErrorContext(&err)
        ),
    )
    .with_source(err)
}

/// The last path segment of a user or role ARN: its name.
fn name_of(arn: &PrincipalArn) -> String {
    arn.as_str()
        .rsplit('/')
        .next()
        .expect("a user or role ARN has a name")
        .to_owned()
}

#[async_trait]
impl Harness for AwsHarness {
    fn capabilities(&self) -> Capabilities {
        self.settings.capabilities
    }

    fn region(&self) -> Region {
        self.settings.region.clone()
    }

    fn other_region(&self) -> Region {
        self.settings.other_region.clone()
    }

    fn owner(&self) -> Party {
        self.settings.owner.clone()
    }

    /// Without the Auto Scaling capability the suite is offered no scaling
    /// store, as the runner requires; the store itself stays in the settings.
    fn target(&self) -> Party {
        let mut target = self.settings.target.clone();
        if !self.settings.capabilities.auto_scaling {
            target.stores.scaling = None;
        }
        target
    }

    fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(WallClock)
    }

    /// The harness sets up no organization.
    fn target_organization(&self) -> Option<(OrganizationArn, OuArn)> {
        None
    }

    /// `RunInstances` of `AMISHARE_E2E_AMI` with one block device mapping per
    /// seed (the image's root device first, then `/dev/sdf`, `/dev/sdg`, …; the
    /// AWS-managed key named `alias/aws/ebs`), then a wait until it runs.
    async fn seed_instance(&self, volumes: &[VolumeSeed]) -> Result<InstanceId> {
        let settings = &self.settings;
        let ec2 = self.ec2(&settings.region);
        let described = ec2
            .describe_images()
            .image_ids(settings.image.as_str())
            .send()
            .await
            .map_err(|e| harness_error("DescribeImages", e))?;
        let image = described.images().first();
        let root = image
            .and_then(|image| image.root_device_name())
            .unwrap_or("/dev/xvda")
            .to_owned();
        // The root volume as big as the image's: LocalStack wants every
        // mapping to have a size or a snapshot, and AWS accepts the image's own.
        let root_size = image
            .and_then(|image| {
                image
                    .block_device_mappings()
                    .iter()
                    .find(|m| m.device_name() == Some(root.as_str()))
            })
            .and_then(|m| m.ebs())
            .and_then(|ebs| ebs.volume_size());
        let mut mappings = Vec::new();
        for (index, seed) in volumes.iter().enumerate() {
            let mut ebs = aws_sdk_ec2::types::EbsBlockDevice::builder().delete_on_termination(true);
            let device = if index == 0 {
                ebs = ebs.set_volume_size(root_size);
                root.clone()
            } else {
                ebs = ebs
                    .volume_size(8)
                    .volume_type(aws_sdk_ec2::types::VolumeType::Gp3);
                format!("/dev/sd{}", char::from(b'f' + (index as u8 - 1)))
            };
            ebs = match seed {
                VolumeSeed::Unencrypted => ebs,
                // The account's default EBS key; LocalStack would store the alias
                // `alias/aws/ebs` as the volume's key where AWS stores a key ARN.
                VolumeSeed::AwsManaged => ebs.encrypted(true),
                VolumeSeed::Key(key) => ebs.encrypted(true).kms_key_id(key.to_string()),
            };
            mappings.push(
                aws_sdk_ec2::types::BlockDeviceMapping::builder()
                    .device_name(device)
                    .ebs(ebs.build())
                    .build(),
            );
        }
        let launched = ec2
            .run_instances()
            .image_id(settings.image.as_str())
            .instance_type(aws_sdk_ec2::types::InstanceType::from(
                settings.instance_type.as_str(),
            ))
            .min_count(1)
            .max_count(1)
            .set_subnet_id(settings.subnet.clone())
            .set_block_device_mappings(Some(mappings))
            .send()
            .await
            .map_err(|e| harness_error("RunInstances", e))?;
        let id = launched
            .instances()
            .first()
            .and_then(|i| i.instance_id())
            .ok_or_else(|| Error::new(ErrorKind::Service, "RunInstances: no instance"))?;
        let id = InstanceId::parse(id)?;
        self.wait_running(&id).await?;
        Ok(id)
    }

    async fn seed_target_key(&self) -> Result<KeyArn> {
        let request = CreateKeyRequest {
            description: "amishare conformance: the target's own key".to_owned(),
            ..CreateKeyRequest::default()
        };
        Ok(self
            .settings
            .target
            .keys
            .create_key(&self.settings.region, &request)
            .await?
            .arn)
    }

    /// Writes the harness's two inline policies of the target user or role
    /// with IAM `PutUserPolicy` / `PutRolePolicy` (EC2 use, and the KMS
    /// actions a launch needs on `keys`), or deletes the KMS one for no keys.
    async fn set_target_kms_access(&self, keys: &[KeyArn]) -> Result<()> {
        let iam = aws_sdk_iam::Client::new(&self.settings.target_admin_config);
        let principal = &self.settings.target.principal;
        let (is_user, name) = match principal.kind() {
            PrincipalKind::User => (true, name_of(principal)),
            PrincipalKind::Role => (false, name_of(principal)),
            PrincipalKind::AssumedRole => (
                false,
                name_of(&principal.role_arn().expect("a session has a role")),
            ),
            PrincipalKind::Root => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "the target principal is an account root, which has no identity policies",
                ))
            }
        };
        let kms_policy = (!keys.is_empty()).then(|| {
            let resources: Vec<String> = keys.iter().map(ToString::to_string).collect();
            serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "UseSharedAmiKeys",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey", "kms:CreateGrant"],
                    "Resource": resources,
                }]
            })
            .to_string()
        });
        let mut policies = vec![(EC2_POLICY_NAME, Some(EC2_POLICY.to_owned()))];
        policies.push((KMS_POLICY_NAME, kms_policy));
        for (policy_name, document) in policies {
            let result = match (is_user, document) {
                (true, Some(document)) => iam
                    .put_user_policy()
                    .user_name(&name)
                    .policy_name(policy_name)
                    .policy_document(document)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| harness_error("PutUserPolicy", e)),
                (false, Some(document)) => iam
                    .put_role_policy()
                    .role_name(&name)
                    .policy_name(policy_name)
                    .policy_document(document)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| harness_error("PutRolePolicy", e)),
                (true, None) => iam
                    .delete_user_policy()
                    .user_name(&name)
                    .policy_name(policy_name)
                    .send()
                    .await
                    .map(drop)
                    .or_else(|e| not_found_is_fine("DeleteUserPolicy", e)),
                (false, None) => iam
                    .delete_role_policy()
                    .role_name(&name)
                    .policy_name(policy_name)
                    .send()
                    .await
                    .map(drop)
                    .or_else(|e| not_found_is_fine("DeleteRolePolicy", e)),
            };
            result?;
        }
        Ok(())
    }

    /// `DisableKey`, `EnableKey`, `ScheduleKeyDeletion` (7 days) and, to
    /// leave pending deletion, `CancelKeyDeletion`, as the owner.
    async fn set_key_state(&self, key: &KeyArn, state: KeyState) -> Result<()> {
        let owner = &self.settings.owner;
        let admin = owner
            .key_admin
            .as_ref()
            .expect("the parties administer keys");
        let current = owner
            .keys
            .describe_key(key.region(), &key.clone().into())
            .await?
            .state;
        if current == KeyState::PendingDeletion && state != KeyState::PendingDeletion {
            admin.cancel_key_deletion(key).await?;
        }
        match state {
            KeyState::Enabled => admin.enable_key(key).await,
            // A key whose deletion was cancelled is already disabled.
            KeyState::Disabled if current == KeyState::PendingDeletion => Ok(()),
            KeyState::Disabled => admin.disable_key(key).await,
            KeyState::PendingDeletion => admin.schedule_key_deletion(key, Some(7)).await.map(drop),
        }
    }

    fn mutating_calls(&self) -> Option<usize> {
        Some(self.settings.calls.mutating())
    }

    fn directory(&self) -> Option<Arc<dyn amishare_core::diagnose::Directory>> {
        Some(Arc::new(amishare_aws::AwsDirectory::new(
            &self.settings.target_admin_config,
        )))
    }
}

/// Deleting an inline policy that is not there is what "no KMS access" wants.
fn not_found_is_fine<E>(operation: &str, err: aws_sdk_iam::error::SdkError<E>) -> Result<()>
where
    E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use aws_sdk_iam::error::ProvideErrorMetadata;
    if err.code() == Some("NoSuchEntity") {
        return Ok(());
    }
    Err(harness_error(operation, err))
}

#[tokio::test]
async fn conformance_suite_on_aws() {
    let Some(settings) = Settings::from_env().await else {
        // Straight to stderr, as the tidy tests report a skip: a passing
        // test's output is captured, and this must not pass unseen.
        let _ = writeln!(
            std::io::stderr(),
            "test {}::conformance_suite_on_aws SKIPPED: {E2E} is not set; set it with \
             AMISHARE_E2E_OWNER_PROFILE, AMISHARE_E2E_TARGET_PROFILE and AMISHARE_E2E_AMI \
             to run the conformance suite against AWS or LocalStack",
            module_path!().trim_start_matches("it::")
        );
        return;
    };
    let capabilities = settings.capabilities;
    let outcomes = amishare_conformance::run_all(|| AwsHarness {
        settings: settings.clone(),
    })
    .await;
    let _ = writeln!(
        std::io::stderr(),
        "{}",
        summary("AWS (AMISHARE_E2E)", &outcomes, true)
    );
    assert_eq!(outcomes.len(), amishare_conformance::all().len());
    assert_as_planned(&capabilities, &outcomes);
}
