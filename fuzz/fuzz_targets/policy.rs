//! Key policies from arbitrary text: a document that parses prints and
//! parses back to itself, and merge, remove, the lockout check and the
//! evaluator take it without panicking.

#![no_main]

use amishare_policy::{
    check_lockout, evaluate_identity, evaluate_kms, merge, remove, Caller, Context, Grantee,
    Narrowing, Policy, Request,
};
use libfuzzer_sys::fuzz_target;

const OWNER: &str = "111111111111";
const OWNER_ROOT: &str = "arn:aws:iam::111111111111:root";
const KEY_ARN: &str =
    "arn:aws:kms:ap-northeast-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = Policy::parse(text) else {
        return;
    };

    // Printing is lossless: compact and pretty forms parse back to the same
    // policy and print the same again.
    let compact = policy.to_json();
    let again = Policy::parse(&compact).expect("a printed policy parses");
    assert_eq!(again, policy, "compact round trip of {text}");
    assert_eq!(again.to_json(), compact);
    let pretty = Policy::parse(&policy.to_json_pretty()).expect("a pretty policy parses");
    assert_eq!(pretty, policy, "pretty round trip of {text}");

    // Sharing with a fixed grantee, then taking it back.
    let grantees = [
        Grantee::Principal("arn:aws:iam::222222222222:user/cross-ami-user".to_owned()),
        Grantee::OrganizationalUnit {
            org_id: "o-abc1234567".to_owned(),
            ou_id: "ou-ab12-11111111".to_owned(),
        },
    ];
    let narrowing = Narrowing {
        via_service_region: Some("ap-northeast-1".to_owned()),
        caller_account: true,
        service_roles: Vec::new(),
    };
    let _ = check_lockout(&policy, OWNER, OWNER_ROOT);
    if let Ok(merged) = merge(&policy, &grantees, &narrowing, OWNER, OWNER_ROOT) {
        let _ = remove(&merged.policy, &grantees, &narrowing);
    }
    let _ = remove(&policy, &grantees, &narrowing);

    // The evaluator, with the policy as the key policy and as an identity
    // policy.
    let org_paths = ["o-abc1234567/r-ab12/ou-ab12-11111111/".to_owned()];
    let caller = Caller {
        arn: "arn:aws:sts::222222222222:assumed-role/Launcher/session",
        account: "222222222222",
        org_id: Some("o-abc1234567"),
        org_paths: &org_paths,
    };
    let req = Request {
        caller,
        action: "kms:CreateGrant",
        resource: KEY_ARN,
        resource_account: OWNER,
        context: Context::via_ec2("ap-northeast-1").with_values(
            "kms:GrantOperations",
            vec!["Decrypt".to_owned(), "ReEncryptFrom*".to_owned()],
        ),
    };
    let decision = evaluate_kms(&req, &policy, &[&policy], &[]);
    let _ = decision.denial_message(&req);
    let _ = evaluate_identity(&req, &[&policy]);
});
