//! The doctor and `accept` agree on any world: a share, broken at random
//! afterwards, is diagnosed for a launch and for a copy, then the target
//! accepts it with a launch and with a copy; each accept succeeds exactly
//! when the doctor passes that intent (the simulation shows the doctor
//! every side, so it never answers `??` here).
//!
//! 1,000 cases; `PROPTEST_CASES` overrides that.

use std::sync::Arc;

use amishare_core::diagnose::{DiagnoseRequest, Doctor, Intent, Stores, Verdict};
use amishare_core::store::{KeyState, KeyStore};
use amishare_core::{
    AcceptRequest, AccountId, CopyKey, Flow, LaunchOptions, Narrowing, ShareReport, Sharer, Target,
};
use amishare_policy::{OneOrMany, Policy, SID_PREFIX};
use amishare_sim::seed::{SeedWorld, OWNER_ACCOUNT, TARGET_ACCOUNT};
use amishare_sim::World;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

/// The KMS actions of amishare's statements and of the target's IAM policy.
const ACTIONS: [&str; 8] = [
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:DescribeKey",
    "kms:CreateGrant",
    "kms:ListGrants",
    "kms:RevokeGrant",
];

/// What a deny statement matches on besides the action.
#[derive(Debug, Clone)]
enum When {
    Always,
    ThroughEc2,
    NotThroughEc2,
    GrantForAwsResource(bool),
    CallerAccount(&'static str),
}

/// One way to break a shared world.
#[derive(Debug, Clone)]
enum Break {
    /// An action taken out of amishare's key-policy statements.
    RemoveAction(&'static str),
    /// A deny in the key policy, for the target account's principals.
    KeyPolicyDeny(&'static str, When),
    /// amishare's statements usable only through EC2 in another region.
    OtherRegion,
    /// amishare's statements only for calls on behalf of this account.
    CallerAccount(&'static str),
    /// The target's IAM policy keeps only these KMS actions.
    NarrowIam(Vec<&'static str>),
    /// The target's IAM policy names another key, or another region's keys.
    IamOtherResource(&'static str),
    /// A deny in the target's IAM policy.
    IamDeny(&'static str, When),
    /// The key disabled or pending deletion.
    KeyState(KeyState),
}

fn action() -> impl Strategy<Value = &'static str> {
    let mut actions = ACTIONS.to_vec();
    actions.push("kms:*");
    prop::sample::select(actions)
}

fn when() -> impl Strategy<Value = When> {
    prop_oneof![
        Just(When::Always),
        Just(When::ThroughEc2),
        Just(When::NotThroughEc2),
        any::<bool>().prop_map(When::GrantForAwsResource),
        prop::sample::select(vec![OWNER_ACCOUNT, TARGET_ACCOUNT, "333333333333"])
            .prop_map(When::CallerAccount),
    ]
}

fn breakage() -> impl Strategy<Value = Break> {
    prop_oneof![
        prop::sample::select(&ACTIONS[..]).prop_map(Break::RemoveAction),
        (action(), when()).prop_map(|(a, w)| Break::KeyPolicyDeny(a, w)),
        Just(Break::OtherRegion),
        prop::sample::select(vec![OWNER_ACCOUNT, TARGET_ACCOUNT, "333333333333"])
            .prop_map(Break::CallerAccount),
        prop::sample::subsequence(ACTIONS[..6].to_vec(), 0..=6).prop_map(Break::NarrowIam),
        prop::sample::select(vec![
            "arn:aws:kms:ap-northeast-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-east-1:111111111111:key/*",
        ])
        .prop_map(Break::IamOtherResource),
        (action(), when()).prop_map(|(a, w)| Break::IamDeny(a, w)),
        prop::sample::select(vec![KeyState::Disabled, KeyState::PendingDeletion])
            .prop_map(Break::KeyState),
    ]
}

/// How the world was shared, and what then broke.
#[derive(Debug, Clone)]
struct Case {
    /// The target: its account (root in the key policy) or its user.
    account_target: bool,
    narrowing: Narrowing,
    breaks: Vec<Break>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(breakage(), 0..=3),
    )
        .prop_map(
            |(account_target, via_service, caller_account, breaks)| Case {
                account_target,
                narrowing: Narrowing::default()
                    .with_via_service(via_service)
                    .with_caller_account(caller_account),
                breaks,
            },
        )
}

fn condition(when: &When, region: &str) -> Option<Value> {
    let via = format!("ec2.{region}.amazonaws.com");
    match when {
        When::Always => None,
        When::ThroughEc2 => Some(json!({"StringEquals": {"kms:ViaService": via}})),
        When::NotThroughEc2 => Some(json!({"StringNotEquals": {"kms:ViaService": via}})),
        When::GrantForAwsResource(b) => {
            Some(json!({"Bool": {"kms:GrantIsForAWSResource": b.to_string()}}))
        }
        When::CallerAccount(account) => {
            Some(json!({"StringEquals": {"kms:CallerAccount": account}}))
        }
    }
}

fn deny(action: &str, when: &When, region: &str, principal: Option<&str>) -> Value {
    let mut statement =
        json!({"Sid": "Breakage", "Effect": "Deny", "Action": action, "Resource": "*"});
    if let Some(principal) = principal {
        statement["Principal"] = json!({"AWS": principal});
    }
    if let Some(condition) = condition(when, region) {
        statement["Condition"] = condition;
    }
    statement
}

/// Adds `key: value` under `operator` to every statement amishare wrote.
fn condition_ours(policy: &mut Value, operator: &str, key: &str, value: &str) {
    for statement in policy["Statement"].as_array_mut().expect("statements") {
        let ours = statement["Sid"]
            .as_str()
            .is_some_and(|sid| sid.starts_with(SID_PREFIX));
        if ours {
            if !statement["Condition"].is_object() {
                statement["Condition"] = json!({});
            }
            let block = &mut statement["Condition"][operator];
            if !block.is_object() {
                *block = json!({});
            }
            block[key] = json!(value);
        }
    }
}

/// The target's identity policies: EC2, and KMS `actions` on `resource`,
/// plus any `extra` statements.
fn target_policies(actions: &[&str], resource: &str, extra: &[Value]) -> Vec<String> {
    let mut statements =
        vec![json!({"Sid": "UseEc2", "Effect": "Allow", "Action": "ec2:*", "Resource": "*"})];
    if !actions.is_empty() {
        statements.push(json!({"Sid": "UseSharedAmiKeys", "Effect": "Allow", "Action": actions, "Resource": resource}));
    }
    statements.extend(extra.iter().cloned());
    vec![json!({"Version": "2012-10-17", "Statement": statements}).to_string()]
}

/// Shares the seed's image as the case says, then breaks the world.
async fn shared_and_broken(case: &Case) -> (SeedWorld, ShareReport) {
    let seed = SeedWorld::new(7).expect("the seed world");
    let world = &seed.world;
    let mut request = seed.share_request();
    request.narrowing = case.narrowing;
    if case.account_target {
        request.targets = vec![Target::Account(seed.target.account().clone())];
    }
    let owner = Arc::new(world.client(&seed.owner).expect("owner"));
    let clock = Arc::new(world.stepping_clock());
    let report = Flow::new(owner.clone(), owner, clock)
        .share(&request)
        .await
        .expect("the share");
    let key = report.regions[0].key.clone();
    let region = seed.region.as_str();
    let root = world
        .root_client(&AccountId::parse(OWNER_ACCOUNT).unwrap())
        .unwrap();
    let mut policy: Value =
        serde_json::from_str(&root.get_key_policy(&key).await.unwrap()).unwrap();
    let mut iam_actions: Vec<&str> = ACTIONS[1..6].to_vec();
    let mut iam_resource = format!("arn:aws:kms:{region}:{OWNER_ACCOUNT}:key/*");
    let mut iam_extra = Vec::new();
    let target_root = format!("arn:aws:iam::{TARGET_ACCOUNT}:root");
    for breakage in &case.breaks {
        match breakage {
            Break::RemoveAction(action) => {
                let mut parsed = Policy::from_value(policy.clone()).unwrap();
                for statement in &mut parsed.statements {
                    let ours = statement
                        .sid
                        .as_deref()
                        .is_some_and(|sid| sid.starts_with(SID_PREFIX));
                    if let (true, Some(actions)) = (ours, &statement.action) {
                        let kept: Vec<String> =
                            actions.iter().filter(|a| a != action).cloned().collect();
                        statement.action = Some(OneOrMany::Many(kept));
                    }
                }
                policy = parsed.to_value();
            }
            Break::KeyPolicyDeny(action, when) => {
                let denied = if case.account_target {
                    target_root.clone()
                } else {
                    seed.target.to_string()
                };
                policy["Statement"].as_array_mut().unwrap().push(deny(
                    action,
                    when,
                    region,
                    Some(&denied),
                ));
            }
            Break::OtherRegion => condition_ours(
                &mut policy,
                "StringEquals",
                "kms:ViaService",
                "ec2.us-east-1.amazonaws.com",
            ),
            Break::CallerAccount(account) => {
                condition_ours(&mut policy, "StringEquals", "kms:CallerAccount", account)
            }
            Break::NarrowIam(actions) => iam_actions.retain(|a| actions.contains(a)),
            Break::IamOtherResource(resource) => iam_resource = (*resource).to_owned(),
            Break::IamDeny(action, when) => iam_extra.push(deny(action, when, region, None)),
            Break::KeyState(_) => {}
        }
    }
    root.put_key_policy(&key, &policy.to_string())
        .await
        .expect("the broken key policy is written");
    let policies = target_policies(&iam_actions, &iam_resource, &iam_extra);
    let policies: Vec<&str> = policies.iter().map(String::as_str).collect();
    world
        .set_identity_policies(&seed.target, &policies)
        .expect("the target's IAM");
    for breakage in &case.breaks {
        if let Break::KeyState(state) = breakage {
            world.set_key_state(&key, *state).expect("key state");
        }
    }
    (seed, report)
}

/// The doctor that sees every side of `world`, as `amishare doctor` does on
/// the simulation.
fn doctor(world: &World) -> Doctor {
    let side = |account: &str| {
        let client = Arc::new(
            world
                .root_client(&AccountId::parse(account).unwrap())
                .unwrap(),
        );
        Stores::new(client.clone(), client)
    };
    Doctor::new()
        .with_owner(side(OWNER_ACCOUNT))
        .with_target(side(TARGET_ACCOUNT))
        .with_directory(Arc::new(world.clone()))
}

/// Runs one case: the verdicts and the accepts, and whether they worked.
async fn check(case: &Case) -> Result<[bool; 2], TestCaseError> {
    let (seed, report) = shared_and_broken(case).await;
    let shared = &report.regions[0];
    let doctor = doctor(&seed.world);
    let mut worked = [false; 2];
    for (n, intent) in [Intent::Launch, Intent::Copy].into_iter().enumerate() {
        let diagnosis = doctor
            .diagnose(&DiagnoseRequest::new(
                shared.image.clone(),
                seed.region.clone(),
                seed.target.clone(),
                intent,
            ))
            .await
            .expect("the doctor only reads");
        let target = Arc::new(seed.world.client(&seed.target).unwrap());
        let accepted = Flow::new(
            target.clone(),
            target,
            Arc::new(seed.world.stepping_clock()),
        )
        .accept(&{
            let request = AcceptRequest::new(
                shared.image.clone(),
                seed.region.clone(),
                [shared.key.clone()],
            );
            match intent {
                Intent::Launch => request.with_launch(LaunchOptions::default()),
                _ => request.with_copy(CopyKey::AccountDefault),
            }
        })
        .await;
        let failed: Vec<String> = diagnosis
            .failures()
            .map(|f| {
                format!(
                    "{} {} {}",
                    f.link,
                    f.action.as_deref().unwrap_or(""),
                    f.summary
                )
            })
            .collect();
        prop_assert_ne!(
            diagnosis.verdict,
            Verdict::Unknown,
            "{:?}",
            diagnosis.findings
        );
        prop_assert_eq!(
            diagnosis.verdict == Verdict::Pass,
            accepted.is_ok(),
            "{}: the doctor says {} ({:?}), accept says {:?}",
            intent,
            diagnosis.verdict,
            failed,
            accepted.as_ref().err().map(ToString::to_string)
        );
        worked[n] = accepted.is_ok();
    }
    let running = seed
        .world
        .instances(seed.target.account())
        .into_iter()
        .filter(|(_, state)| {
            matches!(
                state,
                amishare_core::store::InstanceState::Running
                    | amishare_core::store::InstanceState::Pending
            )
        })
        .count();
    prop_assert_eq!(running, 0, "no smoke instance is left running");
    Ok(worked)
}

#[test]
fn doctor_and_accept_agree_on_a_randomly_broken_share() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    // [launch, copy] × [worked, failed], to show both outcomes were met.
    let tally = std::cell::RefCell::new([[0u32; 2]; 2]);
    runner
        .run(&case(), |case| {
            let worked = runtime.block_on(check(&case))?;
            let mut tally = tally.borrow_mut();
            for (n, ok) in worked.into_iter().enumerate() {
                tally[n][usize::from(!ok)] += 1;
            }
            Ok(())
        })
        .unwrap();
    let tally = tally.into_inner();
    eprintln!(
        "{cases} broken shares: launch worked {} and failed {}; copy worked {} and failed {}",
        tally[0][0], tally[0][1], tally[1][0], tally[1][1]
    );
    assert!(
        tally.iter().flatten().all(|n| *n > 0),
        "both outcomes of both intents were met: {tally:?}"
    );
}
