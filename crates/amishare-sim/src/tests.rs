//! Unit tests of the simulation internals.

use std::collections::BTreeSet;
use std::time::Duration;

use amishare_core::store::{InstanceState, KeyManager, KeyStore, StateReason};
use amishare_core::{AccountId, ErrorKind, ImageId, KeyArn, Region};
use amishare_policy::Policy;

use crate::ids::IdGen;
use crate::knobs::{ErrorSpec, Knobs};
use crate::state::{Account, GrantRecord, InstanceRecord, Key};
use crate::world::parse_org_path;
use crate::World;

fn account(id: &str) -> AccountId {
    AccountId::parse(id).unwrap()
}

fn region() -> Region {
    Region::parse("ap-northeast-1").unwrap()
}

#[test]
fn splitmix64_matches_the_reference_sequence() {
    let mut ids = IdGen::new(0);
    assert_eq!(ids.next_u64(), 0xe220_a839_7b1d_cdaf);
    assert_eq!(ids.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    let mut ids = IdGen::new(1234567);
    assert_eq!(ids.next_u64(), 0x599e_d017_fb08_fc85);
}

#[test]
fn generated_ids_have_aws_shapes_and_do_not_repeat() {
    let mut ids = IdGen::new(9);
    let image = ids.image();
    assert!(image.as_str().starts_with("ami-0") && image.as_str().len() == 4 + 17);
    assert_eq!(ids.snapshot().as_str().len(), 5 + 17);
    assert_eq!(ids.volume().as_str().len(), 4 + 17);
    assert_eq!(ids.instance().as_str().len(), 2 + 17);
    let key = ids.key();
    let groups: Vec<&str> = key.as_str().split('-').collect();
    assert_eq!(
        groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
        vec![8, 4, 4, 4, 12]
    );
    assert!(groups[2].starts_with('4'), "version 4: {key}");
    assert_eq!(ids.grant().as_str().len(), 64);
    let many: BTreeSet<ImageId> = (0..1000).map(|_| ids.image()).collect();
    assert_eq!(many.len(), 1000);
}

#[test]
fn org_paths_are_checked() {
    assert_eq!(
        parse_org_path("o-abcdef1234/r-ab12/").unwrap(),
        "o-abcdef1234"
    );
    assert_eq!(
        parse_org_path("o-abcdef1234/r-ab12/ou-ab12-11111111/").unwrap(),
        "o-abcdef1234"
    );
    for bad in [
        "o-abcdef1234/r-ab12",
        "r-ab12/o-abcdef1234/",
        "o-abcdef1234/",
        "o-abcdef1234/r-ab12/x/",
        "o-a/r-ab12/",
    ] {
        let err = parse_org_path(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}");
        assert!(err.message().contains(bad), "{bad}: {err}");
    }
}

#[test]
fn ou_membership_covers_every_ancestor() {
    let mut member = Account::new(account("111111111111"));
    member.org_id = Some("o-abcdef1234".into());
    member.org_paths = vec!["o-abcdef1234/r-ab12/ou-ab12-11111111/ou-ab12-22222222/".into()];
    assert!(member.in_ou("o-abcdef1234", "ou-ab12-11111111"));
    assert!(member.in_ou("o-abcdef1234", "ou-ab12-22222222"));
    assert!(!member.in_ou("o-abcdef1234", "ou-ab12-33333333"));
    assert!(!member.in_ou("o-zzzzzzzzzz", "ou-ab12-11111111"));
}

#[test]
fn instance_state_follows_its_timeline() {
    let mut ids = IdGen::new(1);
    let secs = Duration::from_secs;
    let reason = StateReason {
        code: "Server.InternalError".into(),
        message: "Client.InternalError: Client error on launch".into(),
    };
    let record = InstanceRecord {
        id: ids.instance(),
        owner: account("111111111111"),
        region: region(),
        image: ids.image(),
        timeline: vec![
            (secs(10), InstanceState::Pending),
            (secs(25), InstanceState::ShuttingDown),
            (secs(40), InstanceState::Terminated),
        ],
        reason: Some((secs(25), reason.clone())),
        failure_detail: None,
        volumes: Vec::new(),
        grants: Vec::new(),
        tags: Default::default(),
    };
    let at = |t| (record.state(secs(t)), record.state_reason(secs(t)));
    assert_eq!(at(10), (InstanceState::Pending, None));
    assert_eq!(at(24), (InstanceState::Pending, None));
    assert_eq!(at(25), (InstanceState::ShuttingDown, Some(reason.clone())));
    assert_eq!(at(39), (InstanceState::ShuttingDown, Some(reason.clone())));
    assert_eq!(at(1000), (InstanceState::Terminated, Some(reason)));
}

#[test]
fn grants_stay_indexed_by_grantee() {
    let mut ids = IdGen::new(3);
    let owner = account("111111111111");
    let arn = KeyArn::new(region(), owner.clone(), ids.key());
    let policy = Policy::default_key_policy(owner.as_str());
    let mut key = Key::new(arn, KeyManager::Customer, String::new(), policy, None);
    let grant = |id, grantee: &str| GrantRecord {
        id,
        seq: 99,
        name: None,
        grantee: grantee.to_owned(),
        operations: vec!["Decrypt".into()],
        issuing_account: owner.clone(),
        retiring_principal: None,
        created_at: Duration::ZERO,
    };
    let (g1, g2, g3) = (ids.grant(), ids.grant(), ids.grant());
    key.add_grant(grant(g1.clone(), "arn:aws:iam::222222222222:root"));
    key.add_grant(grant(g2.clone(), "arn:aws:iam::222222222222:root"));
    key.add_grant(grant(g3.clone(), "arn:aws:iam::333333333333:root"));
    assert_eq!(key.grants[&g1].seq, 0);
    assert_eq!(key.grants[&g3].seq, 2);
    assert_eq!(
        key.grants_by_grantee["arn:aws:iam::222222222222:root"],
        vec![g1.clone(), g2.clone()]
    );
    assert!(key.remove_grant(&g1).is_some());
    assert!(key.remove_grant(&g1).is_none());
    key.remove_grant(&g2);
    assert!(!key
        .grants_by_grantee
        .contains_key("arn:aws:iam::222222222222:root"));
    assert_eq!(key.grants.len(), 1);
}

#[test]
fn error_specs_name_the_input() {
    let spec = ErrorSpec::new(
        ErrorKind::AccessDenied,
        "AuthFailure",
        "Not authorized for {id}",
    );
    let err = spec.to_error("image:ami-0123456789abcdef0");
    assert_eq!(err.code(), Some("AuthFailure"));
    assert_eq!(err.kind(), ErrorKind::AccessDenied);
    assert_eq!(
        err.message(),
        "Not authorized for image:ami-0123456789abcdef0"
    );
}

#[test]
fn default_knobs_follow_the_spec() {
    let knobs = Knobs::default();
    assert_eq!(knobs.create_image_time, Duration::from_secs(180));
    assert_eq!(knobs.copy_image_base_time, Duration::from_secs(240));
    assert_eq!(knobs.copy_image_time_per_gib, Duration::from_secs(10));
    assert_eq!(knobs.instance_boot_time, Duration::from_secs(40));
    assert_eq!(
        knobs.failed_launch_shutting_down_after,
        Duration::from_secs(15)
    );
    assert_eq!(
        knobs.failed_launch_terminated_after,
        Duration::from_secs(30)
    );
    assert_eq!(knobs.launch_kms_failure.code, "Client.InternalError");
    assert_eq!(
        knobs.launch_kms_failure.message,
        "Client.InternalError: Client error on launch"
    );
    assert_eq!(knobs.launch_key_state_failure, knobs.launch_kms_failure);
    assert_eq!(
        knobs.kms_key_without_encrypted.code,
        "InvalidParameterDependency"
    );
    assert_eq!(knobs.launch_permission_quota, 1000);
    assert!(knobs.record_calls);
}

#[test]
fn counters_survive_when_recording_is_off() {
    let world = World::new(5);
    world.set_knobs(Knobs {
        record_calls: false,
        ..Knobs::default()
    });
    let owner = account("111111111111");
    let root = world.add_account(&owner).unwrap();
    let client = world.client(&root).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        client
            .create_key(&region(), &Default::default())
            .await
            .unwrap();
        client.caller().await.unwrap();
    });
    assert!(world.calls().is_empty());
    assert_eq!(world.call_count(), 2);
    assert_eq!(world.mutating_calls(), 1);
}

/// Identity policies a user may be given, one or two at a time.
const IDENTITY_POOL: [&str; 6] = [
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}"#,
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ec2:Describe*","Resource":"*"}]}"#,
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:DescribeImages","Resource":"*"}]}"#,
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ec2:RunInstances","kms:CreateKey"],"Resource":"arn:aws:ec2:*::image/ami-0000000000000000a"}]}"#,
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotAction":"ec2:CreateImage","Resource":"*"}]}"#,
    r#"{"Version":"2012-10-17","Statement":[]}"#,
];

/// The answer through the cache of allowed identity-only requests equals a
/// fresh evaluation, whatever the identity policies were changed to between
/// calls, for users, roles and role sessions.
#[test]
fn cached_identity_decisions_equal_fresh_ones() {
    use amishare_core::PrincipalArn;

    use crate::state::{Ctx, State, Who};

    let world = World::new(11);
    let acct = account("111111111111");
    world.add_account(&acct).unwrap();
    let user = world.add_user(&acct, "u", &[IDENTITY_POOL[0]]).unwrap();
    let role = world.add_role(&acct, "r", &[IDENTITY_POOL[2]]).unwrap();
    let session = PrincipalArn::parse("arn:aws:sts::111111111111:assumed-role/r/s").unwrap();
    let callers = [
        (user.clone(), user.clone()),
        (role.clone(), role.clone()),
        (session, role.clone()),
    ];
    let actions = [
        "ec2:DescribeImages",
        "ec2:RunInstances",
        "ec2:CreateImage",
        "kms:CreateKey",
    ];
    let resources = [
        "*",
        "arn:aws:ec2:ap-northeast-1::image/ami-0000000000000000a",
        "arn:aws:ec2:ap-northeast-1::image/ami-0000000000000000b",
    ];
    let mut rng = IdGen::new(5);
    let mut pick = |n: usize| usize::try_from(rng.next_u64() % n as u64).unwrap();
    let (mut allowed, mut denied) = (0, 0);
    for _ in 0..3000 {
        if pick(5) == 0 {
            let target = if pick(2) == 0 { &user } else { &role };
            let policies: Vec<&str> = (0..1 + pick(2))
                .map(|_| IDENTITY_POOL[pick(IDENTITY_POOL.len())])
                .collect();
            world.set_identity_policies(target, &policies).unwrap();
        }
        let (arn, identity) = &callers[pick(callers.len())];
        let action = actions[pick(actions.len())];
        let resource = resources[pick(resources.len())];
        let mut guard = world.lock();
        let State {
            knobs,
            ids,
            iam,
            allowed: cache,
            kms,
            ec2,
            scaling,
            eventual,
            ..
        } = &mut *guard;
        let mut ctx = Ctx {
            who: Who::lookup(iam, arn, identity).unwrap(),
            iam,
            allowed: cache,
            kms,
            ec2,
            scaling,
            ids,
            knobs,
            eventual,
            now: Duration::ZERO,
            dry_run: false,
        };
        let cached = ctx.authorize_identity(action, resource);
        let fresh = ctx.evaluate_identity_policies(action, resource);
        assert_eq!(cached, fresh, "{arn} {action} {resource}");
        if fresh.is_ok() {
            allowed += 1;
        } else {
            denied += 1;
        }
    }
    assert!(
        allowed > 300 && denied > 300,
        "{allowed} allowed, {denied} denied"
    );
}

/// The IDs are the splitmix64 numbers written as `format!` writes them.
#[test]
fn generated_ids_spell_the_sequence_in_hexadecimal() {
    let mut ids = IdGen::new(42);
    let mut numbers = ids.clone();
    for _ in 0..50 {
        let hex17 = |n: u64| format!("0{n:016x}");
        assert_eq!(
            ids.image().as_str(),
            format!("ami-{}", hex17(numbers.next_u64()))
        );
        assert_eq!(
            ids.snapshot().as_str(),
            format!("snap-{}", hex17(numbers.next_u64()))
        );
        assert_eq!(
            ids.volume().as_str(),
            format!("vol-{}", hex17(numbers.next_u64()))
        );
        assert_eq!(
            ids.instance().as_str(),
            format!("i-{}", hex17(numbers.next_u64()))
        );
        let (a, b) = (numbers.next_u64(), numbers.next_u64());
        let key = format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            0x4000 | (a & 0x0fff),
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        );
        assert_eq!(ids.key().as_str(), key);
        let grant: String = (0..4)
            .map(|_| format!("{:016x}", numbers.next_u64()))
            .collect();
        assert_eq!(ids.grant().as_str(), grant);
    }
}
