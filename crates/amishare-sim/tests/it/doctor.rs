//! The doctor on the simulation: one table of broken links on the target's
//! side (IAM, explicit denies, conditions, its default EBS key), each
//! diagnosed and then launched, and what one side alone can and cannot tell.

use std::sync::Arc;

use amishare_core::diagnose::{DiagnoseRequest, Diagnosis, Doctor, Intent, Link, Stores, Verdict};
use amishare_core::store::{ImageStore, InstanceState, KeyStore};
use amishare_core::{ImageId, KeyArn, PrincipalArn};
use amishare_policy::action_matches;
use amishare_sim::{SimClient, VolumeEncryption};

use crate::fixture::{seed_key_policy, Fx, A, B, EC2_ALL};

/// How the target's side is set up, and which link the doctor must blame.
struct Case {
    name: &'static str,
    /// The key policy: the seed's statements for these grantees (`{P}`: the
    /// launching user, `{B}`: B's root), and extra statements.
    grantees: &'static [&'static str],
    extra_key_statements: &'static str,
    /// The user's KMS policy (`{KEY}`: the key's ARN); empty: none.
    iam: &'static str,
    /// B's default EBS key is a CMK of B with the default policy.
    cmk_default_key: bool,
    /// The broken links, with an action pattern; empty: the launch works.
    blame: &'static [(Link, Option<&'static str>)],
}

const KMS_ALL: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:Decrypt","kms:DescribeKey","kms:CreateGrant","kms:ReEncrypt*","kms:GenerateDataKey*"],"Resource":"{KEY}"}]}"#;

const CASES: &[Case] = &[
    Case {
        name: "everything allowed",
        grantees: &["{P}"],
        extra_key_statements: "",
        iam: KMS_ALL,
        cmk_default_key: false,
        blame: &[],
    },
    Case {
        name: "key policy names B's root, IAM allows",
        grantees: &["{B}"],
        extra_key_statements: "",
        iam: KMS_ALL,
        cmk_default_key: false,
        blame: &[],
    },
    Case {
        name: "IAM without kms:CreateGrant",
        grantees: &["{P}"],
        extra_key_statements: "",
        iam: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:Decrypt","kms:DescribeKey","kms:ReEncrypt*","kms:GenerateDataKey*"],"Resource":"{KEY}"}]}"#,
        cmk_default_key: false,
        blame: &[(Link::IdentityPolicy, Some("kms:CreateGrant"))],
    },
    Case {
        name: "IAM without kms:ReEncrypt*",
        grantees: &["{P}"],
        extra_key_statements: "",
        iam: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:Decrypt","kms:DescribeKey","kms:CreateGrant","kms:GenerateDataKey*"],"Resource":"{KEY}"}]}"#,
        cmk_default_key: false,
        blame: &[(Link::IdentityPolicy, Some("kms:ReEncryptFrom"))],
    },
    Case {
        name: "IAM for another key",
        grantees: &["{P}"],
        extra_key_statements: "",
        iam: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"arn:aws:kms:ap-northeast-1:111111111111:key/00000000-0000-0000-0000-000000000000"}]}"#,
        cmk_default_key: false,
        blame: &[(Link::IdentityPolicy, Some("kms:DescribeKey"))],
    },
    Case {
        name: "IAM denies kms:CreateGrant explicitly",
        grantees: &["{P}"],
        extra_key_statements: "",
        iam: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"{KEY}"},{"Sid":"NoGrants","Effect":"Deny","Action":"kms:CreateGrant","Resource":"*"}]}"#,
        cmk_default_key: false,
        blame: &[(Link::ExplicitDeny, Some("kms:CreateGrant"))],
    },
    Case {
        name: "key policy denies B kms:Decrypt",
        grantees: &["{P}"],
        extra_key_statements: r#",{"Sid":"NoDecryptForB","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":"kms:Decrypt","Resource":"*"}"#,
        iam: KMS_ALL,
        cmk_default_key: false,
        blame: &[(Link::ExplicitDeny, Some("kms:Decrypt"))],
    },
    Case {
        name: "key policy only through EC2 in another region",
        grantees: &[],
        extra_key_statements: r#",{"Sid":"ViaUsEast1","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"kms:ViaService":"ec2.us-east-1.amazonaws.com"}}}"#,
        iam: KMS_ALL,
        cmk_default_key: false,
        blame: &[(Link::KeyPolicy, Some("kms:DescribeKey"))],
    },
    Case {
        name: "key policy names the caller's account only for direct calls",
        grantees: &[],
        extra_key_statements: r#",{"Sid":"DirectOnly","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":"kms:*","Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":"false"}}}"#,
        iam: KMS_ALL,
        cmk_default_key: false,
        blame: &[(Link::KeyPolicy, Some("kms:CreateGrant"))],
    },
    Case {
        name: "B's default EBS key is a CMK the user may not use",
        grantees: &["{P}"],
        extra_key_statements: "",
        iam: KMS_ALL,
        cmk_default_key: true,
        blame: &[(Link::IdentityPolicy, Some("kms:ReEncryptTo"))],
    },
];

fn stores(client: SimClient) -> Stores {
    let client = Arc::new(client);
    Stores::new(client.clone(), client)
}

fn request(
    fx: &Fx,
    image: &ImageId,
    principal: &PrincipalArn,
    keys: Vec<KeyArn>,
) -> DiagnoseRequest {
    DiagnoseRequest::new(
        image.clone(),
        fx.region.clone(),
        principal.clone(),
        Intent::Launch,
    )
    .with_keys(keys)
}

fn all_sides(fx: &Fx) -> Doctor {
    Doctor::new()
        .with_owner(stores(fx.owner.clone()))
        .with_target(stores(fx.world.root_client(&fx.b).unwrap()))
        .with_directory(Arc::new(fx.world.clone()))
}

fn shown(diagnosis: &Diagnosis) -> String {
    diagnosis
        .findings
        .iter()
        .map(|f| {
            format!(
                "{} {} {}: {}\n",
                f.verdict,
                f.link,
                f.action.as_deref().unwrap_or(""),
                f.summary
            )
        })
        .collect()
}

/// A's encrypted image shared with B, its key, and B's user with `iam`.
async fn setup(fx: &Fx, case: &Case) -> (ImageId, KeyArn, PrincipalArn) {
    let key = fx.cmk().await;
    let image = fx.encrypted_image(&key).await;
    fx.share(&image, &fx.b).await;
    let iam = case.iam.replace("{KEY}", &key.to_string());
    let mut policies = vec![EC2_ALL];
    if !iam.is_empty() {
        policies.push(&iam);
    }
    let user = fx.world.add_user(&fx.b, "launcher", &policies).unwrap();
    let grantees: Vec<String> = case
        .grantees
        .iter()
        .map(|g| {
            g.replace("{P}", user.as_str())
                .replace("{B}", &format!("arn:aws:iam::{B}:root"))
        })
        .collect();
    let grantees: Vec<&str> = grantees.iter().map(String::as_str).collect();
    let policy = seed_key_policy(A, &grantees);
    let policy = match policy.rfind("]}") {
        Some(end) => format!("{}{}]}}", &policy[..end], case.extra_key_statements),
        None => policy,
    };
    fx.owner.put_key_policy(&key, &policy).await.unwrap();
    if case.cmk_default_key {
        let b_root = fx.world.root_client(&fx.b).unwrap();
        let own = b_root
            .create_key(&fx.region, &Default::default())
            .await
            .unwrap()
            .arn;
        fx.world
            .set_ebs_default_key(&fx.b, &fx.region, Some(own))
            .unwrap();
    }
    (image, key, user)
}

#[tokio::test(start_paused = true)]
async fn the_doctor_blames_the_link_that_breaks_the_launch() {
    for case in CASES {
        let fx = Fx::new();
        let (image, _key, user) = setup(&fx, case).await;
        let diagnosis = all_sides(&fx)
            .diagnose(&request(&fx, &image, &user, Vec::new()))
            .await
            .unwrap();
        let client = fx.client(&user);
        let launched = fx.launch(&client, &image).await;
        fx.advance(60);
        let works = fx.instance(&client, &launched.id).await.state == InstanceState::Running;
        let shown = shown(&diagnosis);
        assert_eq!(
            works,
            case.blame.is_empty(),
            "{}: the launch\n{shown}",
            case.name
        );
        let expected = if works { Verdict::Pass } else { Verdict::Fail };
        assert_eq!(diagnosis.verdict, expected, "{}\n{shown}", case.name);
        for (link, action) in case.blame {
            assert!(
                diagnosis.failures().any(|f| f.link == *link
                    && action
                        .is_none_or(|p| f.action.as_deref().is_some_and(|a| action_matches(p, a)))),
                "{}: blames {link} {action:?}\n{shown}",
                case.name
            );
            assert!(
                diagnosis.failures().all(|f| f.fix.is_some()),
                "{}: every failure has a fix\n{shown}",
                case.name
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn one_side_alone_reports_what_it_cannot_see_as_unknown() {
    let fx = Fx::new();
    let case = &CASES[0];
    let (image, key, user) = setup(&fx, case).await;

    // The owner alone: the key policy is judged, the target's IAM is not.
    let owner_only = Doctor::new().with_owner(stores(fx.owner.clone()));
    let diagnosis = owner_only
        .diagnose(&request(&fx, &image, &user, Vec::new()))
        .await
        .unwrap();
    let text = shown(&diagnosis);
    assert_eq!(diagnosis.verdict, Verdict::Unknown, "{text}");
    let of = |link: Link| -> Vec<Verdict> {
        diagnosis
            .findings
            .iter()
            .filter(|f| f.link == link)
            .map(|f| f.verdict)
            .collect()
    };
    assert!(
        of(Link::KeyPolicy).iter().all(|v| *v == Verdict::Pass),
        "{text}"
    );
    assert!(!of(Link::KeyPolicy).is_empty());
    assert!(
        of(Link::IdentityPolicy)
            .iter()
            .all(|v| *v == Verdict::Unknown),
        "{text}"
    );
    assert_eq!(of(Link::ImageShared), vec![Verdict::Pass], "{text}");
    assert!(
        of(Link::DestinationKey).contains(&Verdict::Unknown),
        "{text}"
    );

    // The target user alone, told the key: the key policy is unknown, the
    // image's visibility is known.
    let target_only = Doctor::new().with_target(stores(fx.client(&user)));
    let diagnosis = target_only
        .diagnose(&request(&fx, &image, &user, vec![key.clone()]))
        .await
        .unwrap();
    let text = shown(&diagnosis);
    assert_eq!(diagnosis.verdict, Verdict::Unknown, "{text}");
    assert!(diagnosis
        .findings
        .iter()
        .any(|f| f.link == Link::ImageShared && f.verdict == Verdict::Pass));
    assert!(diagnosis
        .findings
        .iter()
        .filter(|f| f.link == Link::KeyPolicy && f.subject == key.to_string())
        .all(|f| f.verdict == Verdict::Unknown));
    // B's own aws/ebs has a fixed policy: that side of the chain is known.
    assert!(diagnosis.findings.iter().any(|f| f.link == Link::KeyPolicy
        && f.subject.contains("aws/ebs")
        && f.verdict == Verdict::Pass));
    assert!(
        diagnosis.failures().next().is_none(),
        "nothing is guessed broken: {text}"
    );

    // Without the key, the snapshot's key is unknown from the target's side.
    let diagnosis = target_only
        .diagnose(&request(&fx, &image, &user, Vec::new()))
        .await
        .unwrap();
    assert!(diagnosis
        .findings
        .iter()
        .any(|f| f.link == Link::SnapshotKey && f.verdict == Verdict::Unknown));

    // Nobody to ask: nothing can be told.
    let diagnosis = Doctor::new()
        .diagnose(&request(&fx, &image, &user, Vec::new()))
        .await
        .unwrap();
    assert_eq!(diagnosis.verdict, Verdict::Unknown);
    assert_eq!(diagnosis.findings.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_image_under_aws_ebs_is_blamed_on_its_key() {
    let fx = Fx::new();
    let image = fx.image(VolumeEncryption::AwsEbs).await;
    let (user, _client) = fx.target_user("launcher", None);
    let diagnosis = all_sides(&fx)
        .diagnose(&request(&fx, &image, &user, Vec::new()))
        .await
        .unwrap();
    let text = shown(&diagnosis);
    assert!(
        diagnosis
            .failures()
            .any(|f| f.link == Link::KeyCustomerManaged),
        "{text}"
    );
    assert!(
        diagnosis.failures().any(|f| f.link == Link::ImageShared),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_copy_of_ones_own_image_keeps_its_key() {
    let fx = Fx::new();
    let key = fx.cmk().await;
    let image = fx.encrypted_image(&key).await;
    let root = fx.a.root_arn();
    // A's default EBS key is a CMK A's root may not use through EC2; a copy
    // of A's own image does not touch it.
    let unusable = fx
        .world
        .seed_key(&fx.a, &fx.region, "unusable", Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"kms:PutKeyPolicy","Resource":"*"}]}"#))
        .unwrap();
    fx.world
        .set_ebs_default_key(&fx.a, &fx.region, Some(unusable))
        .unwrap();
    let mut diagnose = request(&fx, &image, &root, Vec::new());
    diagnose.intent = Intent::Copy;
    let diagnosis = Doctor::new()
        .with_owner(stores(fx.owner.clone()))
        .with_target(stores(fx.owner.clone()))
        .with_directory(Arc::new(fx.world.clone()))
        .diagnose(&diagnose)
        .await
        .unwrap();
    let copy = fx
        .owner
        .copy_image(&fx.region, &fx.copy_request(&image, "own-copy", None))
        .await
        .unwrap();
    fx.advance(600);
    let copied = fx.image_of(&fx.owner, &copy).await;
    assert_eq!(copied.state, amishare_core::store::ImageState::Available);
    assert_eq!(diagnosis.verdict, Verdict::Pass, "{}", shown(&diagnosis));
}

#[tokio::test(start_paused = true)]
async fn an_ou_share_is_judged_on_the_targets_organization() {
    let fx = Fx::new();
    let key = fx.shared_cmk(&["arn:aws:iam::333333333333:root"]).await;
    let image = fx.encrypted_image(&key).await;
    let ou = amishare_core::OuArn::parse(
        "arn:aws:organizations::111111111111:ou/o-abcdef1234/ou-ab12-22222222",
    )
    .unwrap();
    fx.owner
        .modify_launch_permission(
            &fx.region,
            &image,
            &amishare_core::store::PermissionChange::add(vec![
                amishare_core::store::LaunchPermission::OrganizationalUnit(ou),
            ]),
        )
        .await
        .unwrap();
    let c_root = PrincipalArn::parse("arn:aws:iam::333333333333:root").unwrap();
    let shared = |diagnosis: &Diagnosis| -> Vec<Verdict> {
        diagnosis
            .findings
            .iter()
            .filter(|f| f.link == Link::ImageShared)
            .map(|f| f.verdict)
            .collect()
    };
    // The owner alone cannot tell whether C is in the OU ...
    let owner_only = Doctor::new().with_owner(stores(fx.owner.clone()));
    let diagnosis = owner_only
        .diagnose(&request(&fx, &image, &c_root, Vec::new()))
        .await
        .unwrap();
    assert_eq!(
        shared(&diagnosis),
        [Verdict::Unknown],
        "{}",
        shown(&diagnosis)
    );
    // ... the directory knows C sits under it.
    let diagnosis = owner_only
        .with_directory(Arc::new(fx.world.clone()))
        .diagnose(&request(&fx, &image, &c_root, Vec::new()))
        .await
        .unwrap();
    assert_eq!(shared(&diagnosis), [Verdict::Pass], "{}", shown(&diagnosis));
    // B is outside the organization.
    let b_root = fx.b.root_arn();
    let diagnosis = Doctor::new()
        .with_owner(stores(fx.owner.clone()))
        .with_directory(Arc::new(fx.world.clone()))
        .diagnose(&request(&fx, &image, &b_root, Vec::new()))
        .await
        .unwrap();
    assert_eq!(shared(&diagnosis), [Verdict::Fail], "{}", shown(&diagnosis));
}
