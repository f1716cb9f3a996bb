//! Auto Scaling in the target account (`docs/spec/production.md` §C1): the
//! group launches as its service-linked role, which only a grant lets use
//! a key of another account. The table is §C1.9's.

use std::collections::BTreeMap;

use amishare_core::scaling::{
    ActivityStatus, GroupRequest, LaunchFailure, LaunchTemplateRequest, LifecycleState,
    ScalingStore, ServiceLinkedRole,
};
use amishare_core::store::{CreateGrantRequest, KeyState, KeyStore};
use amishare_core::{ec2_kms, ErrorKind, ImageId, KeyArn, PrincipalArn};
use amishare_sim::{Knobs, SimClient, World};

use crate::fixture::{account, assert_error, secs, Fx, A, B};

/// How A's key policy lets B create grants.
#[derive(Debug, Clone, Copy)]
enum CreateGrant {
    /// The seed's statement: only when an AWS service calls
    /// (`kms:GrantIsForAWSResource`).
    ForAwsResource,
    /// AWS's documented statement: no condition.
    Unconditioned,
    /// Narrowed to B's default Auto Scaling role and these operations.
    Narrowed(&'static [&'static str]),
    /// The role named in the use statement only, no CreateGrant for B.
    RoleInUseStatement,
}

fn role_arn(suffix: Option<&str>) -> PrincipalArn {
    ServiceLinkedRole::AutoScaling {
        suffix: suffix.map(str::to_owned),
    }
    .arn(&account(B), "aws")
    .unwrap()
}

fn key_policy(create_grant: CreateGrant) -> String {
    let root = format!(
        r#"{{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{A}:root"}},"Action":"kms:*","Resource":"*"}}"#
    );
    let b_root = format!("arn:aws:iam::{B}:root");
    let mut use_principals = format!(r#""{b_root}""#);
    let grant = match create_grant {
        CreateGrant::ForAwsResource => format!(
            r#",{{"Sid":"attach","Effect":"Allow","Principal":{{"AWS":"{b_root}"}},"Action":["kms:CreateGrant","kms:ListGrants","kms:RevokeGrant"],"Resource":"*","Condition":{{"Bool":{{"kms:GrantIsForAWSResource":"true"}}}}}}"#
        ),
        CreateGrant::Unconditioned => format!(
            r#",{{"Sid":"grant","Effect":"Allow","Principal":{{"AWS":"{b_root}"}},"Action":"kms:CreateGrant","Resource":"*"}}"#
        ),
        CreateGrant::Narrowed(operations) => format!(
            r#",{{"Sid":"grant","Effect":"Allow","Principal":{{"AWS":"{b_root}"}},"Action":"kms:CreateGrant","Resource":"*","Condition":{{"StringEquals":{{"kms:GranteePrincipal":"{}"}},"ForAllValues:StringEquals":{{"kms:GrantOperations":{}}}}}}}"#,
            role_arn(None),
            serde_json::to_string(operations).unwrap()
        ),
        CreateGrant::RoleInUseStatement => {
            use_principals = format!(r#""{}""#, role_arn(None));
            String::new()
        }
    };
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{root},{{"Sid":"use","Effect":"Allow","Principal":{{"AWS":[{use_principals}]}},"Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey"],"Resource":"*"}}{grant}]}}"#
    )
}

/// B's administrator: EC2, Auto Scaling, creating the default service-linked
/// role, and creating and finding grants on A's key (AWS's Example 2).
fn b_admin_policy(key: &KeyArn) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["ec2:*","autoscaling:*","iam:CreateServiceLinkedRole","kms:ListRetirableGrants"],"Resource":"*"}},{{"Effect":"Allow","Action":"kms:CreateGrant","Resource":"{key}"}}]}}"#
    )
}

struct Setup {
    fx: Fx,
    key: KeyArn,
    image: ImageId,
    admin: PrincipalArn,
    b: SimClient,
}

async fn setup(create_grant: CreateGrant, knobs: Knobs) -> Setup {
    let fx = Fx::new();
    fx.world.set_knobs(knobs);
    let key = fx.cmk().await;
    if matches!(create_grant, CreateGrant::RoleInUseStatement) {
        // KMS refuses a key policy naming a role that does not exist (§C1.1).
        fx.world
            .add_service_linked_role(&fx.b, &ServiceLinkedRole::auto_scaling())
            .unwrap();
    }
    fx.owner
        .put_key_policy(&key, &key_policy(create_grant))
        .await
        .unwrap();
    let image = fx.encrypted_image(&key).await;
    fx.share(&image, &fx.b).await;
    let admin = fx
        .world
        .add_user(&fx.b, "b-admin", &[&b_admin_policy(&key)])
        .unwrap();
    let b = fx.client(&admin);
    Setup {
        fx,
        key,
        image,
        admin,
        b,
    }
}

impl Setup {
    async fn grant(
        &self,
        grantee: &PrincipalArn,
        operations: &[&str],
    ) -> amishare_core::Result<amishare_core::GrantId> {
        self.b
            .create_grant(
                &self.key,
                &CreateGrantRequest {
                    grantee: grantee.clone(),
                    operations: operations.iter().map(|o| (*o).to_owned()).collect(),
                    name: Some("asg".to_owned()),
                    retiring_principal: Some(self.admin.clone()),
                },
            )
            .await
    }

    /// A launch template and a one-instance group as B; the group named `name`.
    async fn group(&self, name: &str, role: Option<PrincipalArn>) {
        let region = &self.fx.region;
        self.b
            .create_launch_template(
                region,
                &LaunchTemplateRequest {
                    name: format!("{name}-template"),
                    image: self.image.clone(),
                    instance_type: "t3.micro".to_owned(),
                    tags: BTreeMap::new(),
                    client_token: None,
                },
            )
            .await
            .unwrap();
        self.b
            .create_auto_scaling_group(region, &group_request(name, role))
            .await
            .unwrap();
    }

    /// The group's first activity and whether an instance is in service,
    /// `after` seconds from now.
    async fn outcome(&self, name: &str, after: u64) -> (ActivityStatus, Option<String>, bool) {
        self.fx.advance(after);
        let region = &self.fx.region;
        let activities = self
            .b
            .describe_scaling_activities(region, name)
            .await
            .unwrap();
        let first = activities.last().expect("the group launched").clone();
        let groups = self
            .b
            .describe_auto_scaling_groups(region, &[name.to_owned()])
            .await
            .unwrap();
        let in_service = groups[0]
            .instances
            .iter()
            .any(|i| i.lifecycle_state == LifecycleState::InService);
        (first.status, first.status_message, in_service)
    }
}

fn group_request(name: &str, role: Option<PrincipalArn>) -> GroupRequest {
    GroupRequest {
        name: name.to_owned(),
        launch_template: format!("{name}-template"),
        min_size: 1,
        max_size: 1,
        desired_capacity: 1,
        availability_zones: vec!["ap-northeast-1a".to_owned()],
        subnets: None,
        service_linked_role: role,
        tags: BTreeMap::new(),
    }
}

const KMS_LOST: &str = "Instance became unhealthy while waiting for instance to be in InService state. Termination Reason: Client.InternalError: Client error on launch";

/// §C1.9, row by row: the setup, whether B's `CreateGrant` goes through,
/// and how the group's first launch ends.
#[tokio::test(start_paused = true)]
async fn expected_outcomes_table() {
    let eight: &[&str] = &ec2_kms::SERVICE_ROLE_GRANT;
    let seven: Vec<&str> = eight
        .iter()
        .copied()
        .filter(|op| *op != "CreateGrant")
        .collect();
    let seven: &'static [&'static str] = Box::leak(seven.into_boxed_slice());
    struct Row {
        case: &'static str,
        policy: CreateGrant,
        /// The grant's grantee suffix and operations (`None`: no grant asked).
        grant: Option<(Option<&'static str>, &'static [&'static str])>,
        /// The group's role suffix (`None`: the default role).
        group_role: Option<&'static str>,
        grant_refused: bool,
        in_service: bool,
    }
    let rows = [
        Row {
            case: "documented route: unconditioned CreateGrant, eight operations",
            policy: CreateGrant::Unconditioned,
            grant: Some((None, eight)),
            group_role: None,
            grant_refused: false,
            in_service: true,
        },
        Row {
            case: "CreateGrant only for AWS resources: the grant is refused",
            policy: CreateGrant::ForAwsResource,
            grant: Some((None, eight)),
            group_role: None,
            grant_refused: true,
            in_service: false,
        },
        Row {
            case: "no grant, the role named in the use statement only",
            policy: CreateGrant::RoleInUseStatement,
            grant: None,
            group_role: None,
            grant_refused: false,
            in_service: false,
        },
        Row {
            case: "the grant lacks CreateGrant",
            policy: CreateGrant::Unconditioned,
            grant: Some((None, seven)),
            group_role: None,
            grant_refused: false,
            in_service: false,
        },
        Row {
            case: "A's ForAllValues list lacks CreateGrant: the grant is refused",
            policy: CreateGrant::Narrowed(seven),
            grant: Some((None, eight)),
            group_role: None,
            grant_refused: true,
            in_service: false,
        },
        Row {
            case: "narrowed to the role and the eight operations",
            policy: CreateGrant::Narrowed(eight),
            grant: Some((None, eight)),
            group_role: None,
            grant_refused: false,
            in_service: true,
        },
        Row {
            case: "narrowed statement, grant for another role: refused",
            policy: CreateGrant::Narrowed(eight),
            grant: Some((Some("web"), eight)),
            group_role: Some("web"),
            grant_refused: true,
            in_service: false,
        },
        Row {
            case: "grant to the default role, the group uses a custom-suffix role",
            policy: CreateGrant::Unconditioned,
            grant: Some((None, eight)),
            group_role: Some("web"),
            grant_refused: false,
            in_service: false,
        },
        Row {
            case: "grant to the custom-suffix role the group uses",
            policy: CreateGrant::Unconditioned,
            grant: Some((Some("web"), eight)),
            group_role: Some("web"),
            grant_refused: false,
            in_service: true,
        },
    ];
    for row in rows {
        let s = setup(row.policy, Knobs::default()).await;
        let custom =
            s.fx.world
                .add_service_linked_role(
                    &s.fx.b,
                    &ServiceLinkedRole::parse("autoscaling:web").unwrap(),
                )
                .unwrap();
        assert_eq!(custom, role_arn(Some("web")));
        if let Some((suffix, operations)) = row.grant {
            let granted = s.grant(&role_arn(suffix), operations).await;
            if row.grant_refused {
                let err = granted.expect_err(row.case);
                assert_eq!(err.code(), Some("AccessDeniedException"), "{}", row.case);
            } else {
                granted.unwrap_or_else(|e| panic!("{}: {e}", row.case));
            }
        }
        let role = row.group_role.map(|suffix| role_arn(Some(suffix)));
        s.group("web", role).await;
        let (status, message, in_service) = s.outcome("web", 60).await;
        assert_eq!(in_service, row.in_service, "{}", row.case);
        if row.in_service {
            assert_eq!(status, ActivityStatus::Successful, "{}", row.case);
        } else {
            assert_eq!(status, ActivityStatus::Cancelled, "{}", row.case);
            assert_eq!(message.as_deref(), Some(KMS_LOST), "{}", row.case);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_grant_within_its_propagation_delay_fails_the_first_launch_and_the_group_recovers() {
    let knobs = Knobs {
        grant_propagation_delay: secs(120),
        ..Knobs::default()
    };
    let s = setup(CreateGrant::Unconditioned, knobs).await;
    s.grant(&role_arn(None), &ec2_kms::SERVICE_ROLE_GRANT)
        .await
        .unwrap();
    s.group("web", None).await;
    let (status, _, in_service) = s.outcome("web", 60).await;
    assert_eq!(status, ActivityStatus::Cancelled);
    assert!(!in_service);
    // The group launches again after the retry delay, with the grant in effect.
    s.fx.advance(300);
    let activities =
        s.b.describe_scaling_activities(&s.fx.region, "web")
            .await
            .unwrap();
    assert!(activities.len() >= 2, "{activities:?}");
    assert_eq!(activities[0].status, ActivityStatus::Successful);
    assert_eq!(
        activities.last().unwrap().failure_cause(),
        Some(LaunchFailure::KeyAccess)
    );
}

#[tokio::test(start_paused = true)]
async fn a_key_disabled_after_the_grant_fails_the_launch_with_the_key_state_reason() {
    let knobs = Knobs {
        launch_key_state_failure: amishare_core::store::StateReason {
            code: "Client.InvalidKMSKey.InvalidState".to_owned(),
            message:
                "Client.InvalidKMSKey.InvalidState: The KMS key provided is in an incorrect state"
                    .to_owned(),
        },
        ..Knobs::default()
    };
    let s = setup(CreateGrant::Unconditioned, knobs).await;
    s.grant(&role_arn(None), &ec2_kms::SERVICE_ROLE_GRANT)
        .await
        .unwrap();
    s.fx.world
        .set_key_state(&s.key, KeyState::Disabled)
        .unwrap();
    s.group("web", None).await;
    let (status, message, in_service) = s.outcome("web", 60).await;
    assert!(!in_service);
    assert_eq!(status, ActivityStatus::Cancelled);
    assert!(
        message.unwrap().ends_with("Termination Reason: Client.InvalidKMSKey.InvalidState: The KMS key provided is in an incorrect state")
    );
}

#[tokio::test(start_paused = true)]
async fn the_group_launches_as_its_role_not_as_its_creator() {
    // B's administrator may use A's key itself (AWS's use statement names
    // B's root and its IAM allows everything), yet the group's launches fail:
    // they run as the service-linked role.
    let s = setup(CreateGrant::Unconditioned, Knobs::default()).await;
    s.fx.world
        .set_identity_policies(
            &s.admin,
            &[&b_admin_policy(&s.key), r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#],
        )
        .unwrap();
    let by_hand = s.fx.launch(&s.b, &s.image).await;
    s.fx.advance(60);
    assert_eq!(
        s.fx.instance(&s.b, &by_hand.id).await.state,
        amishare_core::store::InstanceState::Running
    );
    s.group("web", None).await;
    let (status, _, in_service) = s.outcome("web", 60).await;
    assert_eq!(status, ActivityStatus::Cancelled);
    assert!(!in_service);
}

#[tokio::test(start_paused = true)]
async fn the_first_group_creates_the_default_role_if_its_creator_may() {
    let s = setup(CreateGrant::Unconditioned, Knobs::default()).await;
    let role = role_arn(None);
    assert!(!s.fx.world.principals(&s.fx.b).contains_key(role.as_str()));
    let narrow = s
        .fx
        .world
        .add_user(
            &s.fx.b,
            "b-narrow",
            &[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ec2:*","autoscaling:*"],"Resource":"*"}]}"#],
        )
        .unwrap();
    let narrow = s.fx.client(&narrow);
    let region = &s.fx.region;
    narrow
        .create_launch_template(
            region,
            &LaunchTemplateRequest {
                name: "web-template".to_owned(),
                image: s.image.clone(),
                instance_type: "t3.micro".to_owned(),
                tags: BTreeMap::new(),
                client_token: None,
            },
        )
        .await
        .unwrap();
    let refused = narrow
        .create_auto_scaling_group(region, &group_request("web", None))
        .await;
    assert_error(refused, "AccessDenied", "iam:CreateServiceLinkedRole");
    assert!(!s.fx.world.principals(&s.fx.b).contains_key(role.as_str()));
    // B's administrator may: the group is created, and the role with it.
    s.b.create_auto_scaling_group(region, &group_request("web", None))
        .await
        .unwrap();
    assert!(s.fx.world.principals(&s.fx.b).contains_key(role.as_str()));
    // Nobody can change the role's policies.
    let err = s
        .fx
        .world
        .set_identity_policies(&role, &[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#])
        .unwrap_err();
    assert_eq!(err.code(), Some("UnmodifiableEntity"));
    assert!(err
        .message()
        .ends_with("this role is only modifiable by AWS"));
}

#[tokio::test(start_paused = true)]
async fn groups_and_templates_refuse_what_auto_scaling_and_ec2_refuse() {
    let s = setup(CreateGrant::Unconditioned, Knobs::default()).await;
    let region = &s.fx.region;
    s.group("web", None).await;
    assert_error(
        s.b.create_auto_scaling_group(region, &group_request("web", None))
            .await,
        "AlreadyExists",
        "A group with the name web already exists",
    );
    let template = LaunchTemplateRequest {
        name: "web-template".to_owned(),
        image: s.image.clone(),
        instance_type: "t3.micro".to_owned(),
        tags: BTreeMap::new(),
        client_token: None,
    };
    assert_error(
        s.b.create_launch_template(region, &template).await,
        "InvalidLaunchTemplateName.AlreadyExistsException",
        "already in use",
    );
    let mut sizes = group_request("other", None);
    sizes.launch_template = "web-template".to_owned();
    sizes.desired_capacity = 3;
    assert_error(
        s.b.create_auto_scaling_group(region, &sizes).await,
        "ValidationError",
        "Desired capacity:3 must be between the specified min size:1 and max size:1",
    );
    let mut nowhere = group_request("other", None);
    nowhere.launch_template = "web-template".to_owned();
    nowhere.availability_zones.clear();
    assert_error(
        s.b.create_auto_scaling_group(region, &nowhere).await,
        "ValidationError",
        "At least one Availability Zone or VPC Subnet is required.",
    );
    assert_error(
        s.b.create_auto_scaling_group(region, &group_request("missing", None))
            .await,
        "ValidationError",
        "with template name missing-template, does not exist",
    );
    assert_error(
        s.b.create_auto_scaling_group(region, &{
            let mut r = group_request("other", Some(role_arn(Some("nobody"))));
            r.launch_template = "web-template".to_owned();
            r
        })
        .await,
        "ValidationError",
        "AWSServiceRoleForAutoScaling_nobody",
    );
    // A group with instances is deleted only by force; the activities stay.
    s.fx.advance(60);
    assert_error(
        s.b.delete_auto_scaling_group(region, "web", false).await,
        "ResourceInUse",
        "instances",
    );
    s.b.delete_auto_scaling_group(region, "web", true)
        .await
        .unwrap();
    assert!(s
        .b
        .describe_auto_scaling_groups(region, &["web".to_owned()])
        .await
        .unwrap()
        .is_empty());
    assert!(!s
        .b
        .describe_scaling_activities(region, "web")
        .await
        .unwrap()
        .is_empty());
    assert_error(
        s.b.delete_auto_scaling_group(region, "web", true).await,
        "ValidationError",
        "AutoScalingGroup 'web' not found",
    );
    s.b.delete_launch_template(region, "web-template")
        .await
        .unwrap();
    assert_error(
        s.b.describe_launch_templates(region, &["web-template".to_owned()])
            .await,
        "InvalidLaunchTemplateName.NotFoundException",
        "does not exist",
    );
}

/// What AWS does with an unknown group name is not documented: left out
/// by default, refused when the knob says so.
#[tokio::test(start_paused = true)]
async fn unknown_group_names_follow_their_knob() {
    let s = setup(CreateGrant::Unconditioned, Knobs::default()).await;
    let region = &s.fx.region;
    let names = ["nobody".to_owned()];
    assert!(s
        .b
        .describe_auto_scaling_groups(region, &names)
        .await
        .unwrap()
        .is_empty());
    s.fx.world.set_knobs(Knobs {
        unknown_group_names: amishare_sim::UnknownIds::Error,
        ..Knobs::default()
    });
    let err = assert_error(
        s.b.describe_auto_scaling_groups(region, &names).await,
        "ValidationError",
        "AutoScalingGroup 'nobody' not found",
    );
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test(start_paused = true)]
async fn the_target_finds_its_grant_on_the_owners_key_without_any_right_on_the_key() {
    let s = setup(CreateGrant::Unconditioned, Knobs::default()).await;
    let id = s
        .grant(&role_arn(None), &ec2_kms::SERVICE_ROLE_GRANT)
        .await
        .unwrap();
    // B may not list the grants of A's key...
    let err = s.b.list_grants(&s.key).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AccessDenied);
    // ...but finds those it may retire, with its own IAM permission alone.
    let found =
        s.b.list_retirable_grants(&s.fx.region, &s.admin)
            .await
            .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, id);
    assert_eq!(found[0].key.as_ref(), Some(&s.key));
    assert_eq!(
        found[0].retiring_principal.as_deref(),
        Some(s.admin.as_str())
    );
    // The same name and parameters give the same grant.
    let again = s
        .grant(&role_arn(None), &ec2_kms::SERVICE_ROLE_GRANT)
        .await
        .unwrap();
    assert_eq!(again, id);
    // Another account's principal is not the caller's to ask about.
    let err =
        s.b.list_retirable_grants(&s.fx.region, &account(A).root_arn())
            .await
            .unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
}

#[tokio::test(start_paused = true)]
async fn a_world_file_keeps_templates_groups_activities_and_roles() {
    let s = setup(CreateGrant::Unconditioned, Knobs::default()).await;
    s.group("web", None).await;
    s.fx.advance(60);
    let file = s.fx.world.to_file();
    let text = file.to_json();
    let loaded = World::from_file(&amishare_sim::WorldFile::parse(&text).unwrap()).unwrap();
    assert_eq!(loaded.to_file().to_json(), text);
    // Both worlds go on alike: the group's next launches, and their outcomes.
    loaded.advance(secs(120));
    s.fx.advance(120);
    let loaded_b = loaded.client(&s.admin).unwrap();
    let activities = loaded_b
        .describe_scaling_activities(&s.fx.region, "web")
        .await
        .unwrap();
    let original =
        s.b.describe_scaling_activities(&s.fx.region, "web")
            .await
            .unwrap();
    assert!(activities.len() > 1, "{activities:?}");
    assert_eq!(activities, original);
    let role = role_arn(None);
    let err = loaded.set_identity_policies(&role, &[]).unwrap_err();
    assert_eq!(err.code(), Some("UnmodifiableEntity"));
}

mod flow {
    //! The flow over the simulation: `share --autoscaling`, `accept
    //! --autoscaling-grant --launch-via autoscaling`, their reruns, and
    //! `unshare`, with a grant and a statement amishare did not write.

    use std::sync::Arc;

    use amishare_core::scaling::{ActivityStatus, LaunchFailure, ScalingStore, ServiceLinkedRole};
    use amishare_core::store::{CreateGrantRequest, KeyStore};
    use amishare_core::{
        AcceptRequest, ErrorKind, Flow, ImageSource, KeyChoice, LaunchOptions, LaunchVia,
        RegionImage, ShareRequest, Sharer, Target, UnshareRequest,
    };
    use amishare_sim::World;

    use crate::fixture::{account, region, A, B, REGION};

    const ADMIN: &str =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

    fn target_policy() -> String {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["ec2:*","autoscaling:*","iam:CreateServiceLinkedRole","kms:ListRetirableGrants"],"Resource":"*"}},{{"Effect":"Allow","Action":["kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey","kms:CreateGrant"],"Resource":"arn:aws:kms:{REGION}:{A}:key/*"}}]}}"#
        )
    }

    struct Two {
        world: World,
        owner: Flow,
        owner_keys: Arc<amishare_sim::SimClient>,
        target: Flow,
        target_principal: amishare_core::PrincipalArn,
        request: ShareRequest,
    }

    impl Two {
        /// `share --autoscaling` again over the first share: one
        /// PutKeyPolicy. Returns the request, for reruns.
        async fn share_with_autoscaling(&self) -> ShareRequest {
            let with_option = self
                .request
                .clone()
                .with_service_roles([ServiceLinkedRole::auto_scaling()]);
            let shared = self.owner.share(&with_option).await.unwrap();
            assert_eq!(shared.mutating_calls, 1, "{:#?}", shared.steps);
            with_option
        }

        /// `unshare` of the target principal from `image`.
        async fn unshare(&self, image: &amishare_core::ImageId) -> amishare_core::UnshareReport {
            self.owner
                .unshare(&UnshareRequest::new(
                    [RegionImage::new(region(REGION), image.clone())],
                    [Target::Principal(self.target_principal.clone())],
                ))
                .await
                .unwrap()
        }
    }

    fn two() -> Two {
        let world = World::new(5);
        let (a, b) = (account(A), account(B));
        world.add_account(&a).unwrap();
        world.add_account(&b).unwrap();
        let admin = world.add_user(&a, "a-admin", &[ADMIN]).unwrap();
        let user = world.add_user(&b, "b-user", &[&target_policy()]).unwrap();
        let instance = world
            .seed_instance(
                &a,
                &region(REGION),
                &[amishare_sim::VolumeSeed::root(
                    amishare_sim::VolumeEncryption::Unencrypted,
                )],
            )
            .unwrap();
        let clock = Arc::new(world.clock());
        let owner_client = Arc::new(world.client(&admin).unwrap());
        let target_client = Arc::new(world.client(&user).unwrap());
        let owner = Flow::new(owner_client.clone(), owner_client.clone(), clock.clone());
        let target = Flow::new(target_client.clone(), target_client.clone(), clock)
            .with_scaling(target_client);
        let request = ShareRequest::new(
            ImageSource::Instance(instance),
            region(REGION),
            KeyChoice::Create("alias/cross-ami".parse().unwrap()),
            [Target::Principal(user.clone())],
        );
        Two {
            world,
            owner,
            owner_keys: owner_client,
            target,
            target_principal: user,
            request,
        }
    }

    fn accept(
        image: &amishare_core::ImageId,
        key: &amishare_core::KeyArn,
        grant: bool,
        launch: bool,
    ) -> AcceptRequest {
        let role = ServiceLinkedRole::auto_scaling();
        let mut request = AcceptRequest::new(image.clone(), region(REGION), [key.clone()]);
        if launch {
            request = request.with_launch(
                LaunchOptions::default().with_via(LaunchVia::AutoScaling(role.clone())),
            );
        }
        if grant {
            request = request.with_grants([role]);
        }
        request
    }

    #[tokio::test(start_paused = true)]
    async fn the_grant_route_shares_reruns_and_unshares() {
        let t = two();
        let share = t.owner.share(&t.request).await.unwrap();
        let image = share.regions[0].image.clone();
        let key = share.regions[0].key.clone();

        // Under the seed's policy a group's launch fails, and B may not
        // create the grant.
        let err = t
            .target
            .accept(&accept(&image, &key, false, true))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("Client.InternalError"), "{err}");
        assert!(
            err.message().contains("no grant for it on the key"),
            "{err}"
        );
        // A library user matches the group's failure by kind and fields.
        assert_eq!(err.kind(), ErrorKind::LaunchFailed);
        let failed = err
            .failed_group_launch()
            .expect("the group and its activity");
        assert_eq!(failed.image, image);
        assert_eq!(failed.role, ServiceLinkedRole::auto_scaling());
        assert_eq!(failed.cause, Some(LaunchFailure::KeyAccess));
        assert!(matches!(
            failed.status,
            ActivityStatus::Failed | ActivityStatus::Cancelled
        ));
        assert!(!failed.group.is_empty() && !failed.activity.is_empty());
        let err = t
            .target
            .accept(&accept(&image, &key, true, false))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("AccessDeniedException"), "{err}");

        // A grant and a statement amishare did not write.
        let foreign = t
            .owner_keys
            .create_grant(
                &key,
                &CreateGrantRequest {
                    grantee: ServiceLinkedRole::auto_scaling()
                        .arn(&account(B), "aws")
                        .unwrap(),
                    operations: vec!["Decrypt".to_owned()],
                    name: Some("someone-elses".to_owned()),
                    retiring_principal: None,
                },
            )
            .await
            .unwrap();

        let with_option = t.share_with_autoscaling().await;
        let policy = t.owner_keys.get_key_policy(&key).await.unwrap();
        assert!(
            policy.contains("amishare: Allow grants for service-linked roles (222222222222)"),
            "{policy}"
        );
        assert!(policy.contains("AWSServiceRoleForAutoScaling"), "{policy}");

        let accepted = t
            .target
            .accept(&accept(&image, &key, true, true))
            .await
            .unwrap();
        assert_eq!(accepted.grants.len(), 1);
        assert!(accepted.grants[0].created);
        let launch = accepted.launch.unwrap();
        let group = launch.group.clone().unwrap();
        // The group and its template are gone, the instance terminated.
        let stores = t.world.client(&t.target_principal).unwrap();
        assert!(stores
            .describe_auto_scaling_groups(&region(REGION), &[group])
            .await
            .unwrap()
            .is_empty());
        assert!(stores
            .describe_launch_templates(&region(REGION), &[])
            .await
            .unwrap()
            .is_empty());

        // Reruns change nothing.
        let before = t.world.mutating_calls();
        t.owner.share(&with_option).await.unwrap();
        let again = t
            .target
            .accept(&accept(&image, &key, true, false))
            .await
            .unwrap();
        assert!(!again.grants[0].created);
        assert_eq!(again.grants[0].grant_id, accepted.grants[0].grant_id);
        assert_eq!(t.world.mutating_calls(), before);

        // Unshare takes back amishare's statement and grant, nothing else.
        let unshared = t.unshare(&image).await;
        assert!(unshared.steps.iter().any(|s| s.action == "revoke-grant"
            && s.detail.contains(accepted.grants[0].grant_id.as_str())));
        let grants = t.owner_keys.list_grants(&key).await.unwrap();
        let ids: Vec<_> = grants.iter().map(|g| g.id.clone()).collect();
        assert!(ids.contains(&foreign), "{grants:?}");
        assert!(!ids.contains(&accepted.grants[0].grant_id), "{grants:?}");
        let policy = t.owner_keys.get_key_policy(&key).await.unwrap();
        assert!(!policy.contains("service-linked roles"), "{policy}");
        let err = t
            .target
            .accept(&accept(&image, &key, false, true))
            .await
            .unwrap_err();
        assert!(err.message().contains("not shared"), "{err}");
    }

    /// Grants and key-policy statements amishare did not write, row by row,
    /// each as it was after `share --autoscaling`, `accept
    /// --autoscaling-grant` and `unshare`, while amishare's own grant and
    /// statement come and go (`docs/spec/choices.md` §D6).
    #[tokio::test(start_paused = true)]
    async fn foreign_grants_and_statements_are_untouched() {
        use serde_json::{json, Value};

        /// Who issues a foreign grant.
        #[derive(Debug, Clone, Copy)]
        enum Issuer {
            Owner,
            Target,
        }
        let role = ServiceLinkedRole::auto_scaling()
            .arn(&account(B), "aws")
            .unwrap();
        let suffixed = ServiceLinkedRole::parse("autoscaling:web")
            .unwrap()
            .arn(&account(B), "aws")
            .unwrap();
        let other_account = ServiceLinkedRole::auto_scaling()
            .arn(&account("333333333333"), "aws")
            .unwrap();
        let grant_name = ServiceLinkedRole::auto_scaling().grant_name();
        // (what, issuer, grantee, name): none is a grant `accept` makes.
        let grants = [
            (
                "another name, the role",
                Issuer::Owner,
                role.clone(),
                Some("someone-elses".to_owned()),
            ),
            ("no name, the role", Issuer::Owner, role.clone(), None),
            (
                "amishare's name, issued by the owner",
                Issuer::Owner,
                role.clone(),
                Some(grant_name.clone()),
            ),
            (
                "amishare's name, another account's role",
                Issuer::Owner,
                other_account,
                Some(grant_name.clone()),
            ),
            (
                "amishare's name, another role's",
                Issuer::Owner,
                suffixed,
                Some(grant_name.clone()),
            ),
            (
                "amishare's name, not a service-linked role",
                Issuer::Owner,
                t_user(),
                Some(grant_name.clone()),
            ),
            (
                "issued by the target under another name",
                Issuer::Target,
                role.clone(),
                Some("b-tooling".to_owned()),
            ),
        ];
        // Statements another hand wrote, some like amishare's.
        let statements = [
            json!({"Sid": "Allow grants for service-linked roles (222222222222)", "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::333333333333:root"}, "Action": "kms:CreateGrant", "Resource": "*"}),
            json!({"Sid": "amishare-lookalike", "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::333333333333:root"}, "Action": "kms:Decrypt", "Resource": "*"}),
            json!({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:root"},
                "Action": "kms:CreateGrant", "Resource": "*",
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}}),
            json!({"Sid": "NoScheduledDeletion", "Effect": "Deny",
                "Principal": {"AWS": "arn:aws:iam::333333333333:root"}, "Action": "kms:ScheduleKeyDeletion", "Resource": "*"}),
        ];

        let t = two();
        let share = t.owner.share(&t.request).await.unwrap();
        let image = share.regions[0].image.clone();
        let key = share.regions[0].key.clone();
        let mut policy: Value =
            serde_json::from_str(&t.owner_keys.get_key_policy(&key).await.unwrap()).unwrap();
        policy["Statement"]
            .as_array_mut()
            .unwrap()
            .extend(statements.iter().cloned());
        t.owner_keys
            .put_key_policy(&key, &policy.to_string())
            .await
            .unwrap();
        t.share_with_autoscaling().await;

        let target_keys = t.world.client(&t.target_principal).unwrap();
        let mut made = Vec::new();
        for (what, issuer, grantee, name) in &grants {
            let request = CreateGrantRequest {
                grantee: grantee.clone(),
                operations: vec!["Decrypt".to_owned(), "DescribeKey".to_owned()],
                name: name.clone(),
                retiring_principal: None,
            };
            let id = match issuer {
                Issuer::Owner => t.owner_keys.create_grant(&key, &request).await,
                Issuer::Target => target_keys.create_grant(&key, &request).await,
            }
            .unwrap_or_else(|err| panic!("{what}: {err}"));
            made.push((*what, id));
        }
        let before = t.owner_keys.list_grants(&key).await.unwrap();

        let untouched =
            |stage: &'static str, policy: String, now: Vec<amishare_core::store::Grant>| {
                let policy: Value = serde_json::from_str(&policy).unwrap();
                let kept = policy["Statement"].as_array().unwrap();
                for statement in &statements {
                    assert!(
                        kept.contains(statement),
                        "{stage}: {statement} is gone or changed\n{policy:#}"
                    );
                }
                for (what, id) in &made {
                    let was = before.iter().find(|g| &g.id == id).unwrap();
                    assert!(
                        now.contains(was),
                        "{stage}: the grant {what} is gone or changed: {now:#?}"
                    );
                }
            };

        let accepted = t
            .target
            .accept(&accept(&image, &key, true, true))
            .await
            .unwrap();
        assert!(accepted.grants[0].created);
        let ours = accepted.grants[0].grant_id.clone();
        assert!(made.iter().all(|(_, id)| id != &ours));
        untouched(
            "after accept",
            t.owner_keys.get_key_policy(&key).await.unwrap(),
            t.owner_keys.list_grants(&key).await.unwrap(),
        );

        let unshared = t.unshare(&image).await;
        let revoked: Vec<_> = unshared
            .steps
            .iter()
            .filter(|s| s.action == "revoke-grant")
            .map(|s| s.detail.clone())
            .collect();
        assert_eq!(revoked.len(), 1, "only amishare's grant: {revoked:?}");
        assert!(revoked[0].contains(ours.as_str()), "{revoked:?}");
        let now = t.owner_keys.list_grants(&key).await.unwrap();
        assert!(now.iter().all(|g| g.id != ours), "{now:#?}");
        let policy = t.owner_keys.get_key_policy(&key).await.unwrap();
        assert!(
            !policy.contains("amishare: Allow grants for service-linked roles"),
            "{policy}"
        );
        untouched("after unshare", policy, now);
    }

    fn t_user() -> amishare_core::PrincipalArn {
        format!("arn:aws:iam::{B}:user/b-user").parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn organization_targets_cannot_take_the_option() {
        let t = two();
        let mut request = t
            .request
            .clone()
            .with_service_roles([ServiceLinkedRole::auto_scaling()]);
        request.targets = vec![Target::Organization(
            "arn:aws:organizations::111111111111:organization/o-a1b2c3d4e5"
                .parse()
                .unwrap(),
        )];
        let err = request.validate().unwrap_err();
        assert_eq!(err.kind(), amishare_core::ErrorKind::InvalidInput);
        assert!(err.message().contains("organization"), "{err}");
    }

    /// The doctor's Auto Scaling intent agrees with the launch, case by
    /// case: it passes exactly when the group's instance reaches InService,
    /// and names the broken link otherwise (`docs/spec/choices.md` §D1, §D6).
    #[tokio::test(start_paused = true)]
    async fn the_doctor_agrees_with_the_group_launch() {
        use amishare_core::diagnose::{DiagnoseRequest, Doctor, Intent, Link, Stores, Verdict};

        #[derive(Debug, Clone, Copy)]
        enum Case {
            NoGrant,
            Grant,
            GrantWithoutCreateGrant,
            GrantForAnotherRole,
            GrantButKeyDisabled,
            GrantButOwnDefaultKey,
        }
        let cases = [
            (Case::NoGrant, Some(Link::ServiceRoleGrant)),
            (Case::Grant, None),
            (
                Case::GrantWithoutCreateGrant,
                Some(Link::ServiceRoleGrantOperations),
            ),
            (Case::GrantForAnotherRole, Some(Link::ServiceRoleGrant)),
            (Case::GrantButKeyDisabled, Some(Link::KeyState)),
            (Case::GrantButOwnDefaultKey, Some(Link::IdentityPolicy)),
        ];
        for (case, broken) in cases {
            let t = two();
            let request = t.request.clone().with_service_roles([
                ServiceLinkedRole::auto_scaling(),
                ServiceLinkedRole::parse("autoscaling:web").unwrap(),
            ]);
            let share = t.owner.share(&request).await.unwrap();
            let image = share.regions[0].image.clone();
            let key = share.regions[0].key.clone();
            let target_client = t.world.client(&t.target_principal).unwrap();
            let grant = |role: ServiceLinkedRole, operations: Vec<String>| {
                let target_client = target_client.clone();
                let key = key.clone();
                let retiring = t.target_principal.clone();
                async move {
                    target_client
                        .create_grant(
                            &key,
                            &CreateGrantRequest {
                                grantee: role.arn(&account(B), "aws").unwrap(),
                                operations,
                                name: Some(role.grant_name()),
                                retiring_principal: Some(retiring),
                            },
                        )
                        .await
                        .unwrap();
                }
            };
            let eight: Vec<String> = amishare_core::ec2_kms::SERVICE_ROLE_GRANT
                .iter()
                .map(|op| (*op).to_owned())
                .collect();
            match case {
                Case::NoGrant => {}
                Case::Grant => grant(ServiceLinkedRole::auto_scaling(), eight.clone()).await,
                Case::GrantWithoutCreateGrant => {
                    let seven = eight
                        .iter()
                        .filter(|op| *op != "CreateGrant")
                        .cloned()
                        .collect();
                    grant(ServiceLinkedRole::auto_scaling(), seven).await;
                }
                Case::GrantForAnotherRole => {
                    let web = ServiceLinkedRole::parse("autoscaling:web").unwrap();
                    t.world.add_service_linked_role(&account(B), &web).unwrap();
                    grant(web, eight.clone()).await;
                }
                Case::GrantButKeyDisabled => {
                    grant(ServiceLinkedRole::auto_scaling(), eight.clone()).await;
                    t.world
                        .set_key_state(&key, amishare_core::store::KeyState::Disabled)
                        .unwrap();
                }
                Case::GrantButOwnDefaultKey => {
                    grant(ServiceLinkedRole::auto_scaling(), eight.clone()).await;
                    let own = t
                        .world
                        .seed_key(&account(B), &region(REGION), "B's own", None)
                        .unwrap();
                    t.world
                        .set_ebs_default_key(&account(B), &region(REGION), Some(own))
                        .unwrap();
                }
            }
            let owner_client = Arc::new(t.world.root_client(&account(A)).unwrap());
            // B's root reads what b-user may not: its own keys' policies.
            let target_stores = Arc::new(t.world.root_client(&account(B)).unwrap());
            let diagnosis = Doctor::new()
                .with_owner(Stores::new(owner_client.clone(), owner_client))
                .with_target(Stores::new(target_stores.clone(), target_stores))
                .with_directory(Arc::new(t.world.clone()))
                .diagnose(&DiagnoseRequest::new(
                    image.clone(),
                    region(REGION),
                    t.target_principal.clone(),
                    Intent::AutoScaling,
                ))
                .await
                .unwrap();
            let launched = t.target.accept(&accept(&image, &key, false, true)).await;
            let shown: Vec<String> = diagnosis
                .findings
                .iter()
                .map(|f| format!("{} {} {} {}", f.verdict, f.link, f.subject, f.summary))
                .collect();
            assert_eq!(
                diagnosis.verdict == Verdict::Pass,
                launched.is_ok(),
                "{case:?}: {launched:?}\n{}",
                shown.join("\n")
            );
            match broken {
                None => assert_eq!(diagnosis.verdict, Verdict::Pass, "{case:?}"),
                Some(link) => {
                    assert_eq!(diagnosis.verdict, Verdict::Fail, "{case:?}");
                    assert!(
                        diagnosis.failures().any(|f| f.link == link),
                        "{case:?}: the doctor names {link}\n{}",
                        shown.join("\n")
                    );
                }
            }
        }
    }

    /// A dry run of the target's Auto Scaling accept plans exactly the
    /// mutating calls the real run makes, and changes nothing.
    #[tokio::test(start_paused = true)]
    async fn a_dry_run_of_the_group_launch_plans_what_the_real_run_makes() {
        let t = two();
        let request = t
            .request
            .clone()
            .with_service_roles([ServiceLinkedRole::auto_scaling()]);
        let share = t.owner.share(&request).await.unwrap();
        let (image, key) = (share.regions[0].image.clone(), share.regions[0].key.clone());
        let client = Arc::new(t.world.client(&t.target_principal).unwrap());
        let (planner, keys, images) = amishare_core::plan::planning(client.clone(), client.clone());
        let before = t.world.mutating_calls();
        Flow::new(keys, images, Arc::new(t.world.clock()))
            .with_scaling(planner.scaling(client))
            .accept(&accept(&image, &key, true, true))
            .await
            .unwrap();
        assert_eq!(
            t.world.mutating_calls(),
            before,
            "a dry run changed nothing"
        );
        t.world.clear_calls();
        t.target
            .accept(&accept(&image, &key, true, true))
            .await
            .unwrap();
        let real: Vec<&str> = t
            .world
            .calls()
            .iter()
            .filter(|call| call.mutating)
            .map(|call| call.operation)
            .collect();
        let plan = planner.plan();
        let planned: Vec<&str> = plan.calls.iter().map(|c| c.operation.as_str()).collect();
        assert_eq!(planned, real);
        assert_eq!(
            real,
            [
                "kms:CreateGrant",
                "ec2:CreateLaunchTemplate",
                "autoscaling:CreateAutoScalingGroup",
                "autoscaling:DeleteAutoScalingGroup",
                "ec2:DeleteLaunchTemplate",
            ]
        );
    }

    /// An accept stopped after it made its group (as if killed) leaves the
    /// group and its template; the next accept of the image deletes both,
    /// found by their tag, before it launches its own.
    #[tokio::test(start_paused = true)]
    async fn the_next_accept_deletes_the_group_an_interrupted_one_left() {
        use amishare_sim::faults::{Faults, Faulty};

        let t = two();
        let request = t
            .request
            .clone()
            .with_service_roles([ServiceLinkedRole::auto_scaling()]);
        let share = t.owner.share(&request).await.unwrap();
        let (image, key) = (share.regions[0].image.clone(), share.regions[0].key.clone());
        let client = t.world.client(&t.target_principal).unwrap();
        // CreateGrant, CreateLaunchTemplate, CreateAutoScalingGroup: then it stops.
        let faulty = Arc::new(Faulty::new(
            client.clone(),
            Faults {
                crash_after: Some(3),
                ..Faults::none(1)
            },
        ));
        Flow::new(faulty.clone(), faulty.clone(), Arc::new(t.world.clock()))
            .with_scaling(faulty)
            .accept(&accept(&image, &key, true, true))
            .await
            .expect_err("stopped after its third write");
        let region = region(REGION);
        assert_eq!(
            client
                .describe_auto_scaling_groups(&region, &[])
                .await
                .unwrap()
                .len(),
            1
        );
        let rerun = t
            .target
            .accept(&accept(&image, &key, true, true))
            .await
            .unwrap();
        let left: Vec<&str> = rerun
            .steps
            .iter()
            .filter(|s| s.detail.contains("an earlier accept left"))
            .map(|s| s.action.as_str())
            .collect();
        assert_eq!(
            left,
            ["delete-auto-scaling-group", "delete-launch-template"]
        );
        assert!(
            !rerun.grants[0].created,
            "the grant was made before the stop"
        );
        assert!(client
            .describe_auto_scaling_groups(&region, &[])
            .await
            .unwrap()
            .is_empty());
        assert!(client
            .describe_launch_templates(&region, &[])
            .await
            .unwrap()
            .is_empty());
    }
}
