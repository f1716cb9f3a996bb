//! Who calls: access keys mapped in the world file, 12-digit keys as account
//! roots, unknown keys refused as AWS refuses them, and the region of the
//! credential scope.

use amishare_core::AccountId;
use serde_json::json;

use crate::support::{
    assert_known_paths, recorded_paths, signature, Harness, OWNER, OWNER_KEY, REGION,
    SEED_INSTANCE, SEED_WORLD, TARGET_KEY,
};

#[tokio::test]
async fn a_mapped_access_key_acts_as_its_principal() {
    let server = Harness::seed(1.0).await;
    for (key, arn, account) in [
        (OWNER_KEY, "arn:aws:iam::111111111111:user/a-admin", OWNER),
        (
            TARGET_KEY,
            "arn:aws:iam::222222222222:user/b-user",
            "222222222222",
        ),
    ] {
        let answer = server
            .sts(key, &[("Action", "GetCallerIdentity")])
            .await
            .ok();
        assert_eq!(answer.root(), "GetCallerIdentityResponse");
        assert_eq!(answer.text("GetCallerIdentityResult/Arn"), arn);
        assert_eq!(answer.text("GetCallerIdentityResult/Account"), account);
        let user_id = answer.text("GetCallerIdentityResult/UserId");
        assert!(
            user_id.starts_with("AIDA") && user_id.len() == 21,
            "{user_id}"
        );
        assert_eq!(answer.text("ResponseMetadata/RequestId"), answer.request_id);
        assert_known_paths(
            "GetCallerIdentity",
            &answer.paths(),
            &recorded_paths("sts/get_caller_identity.xml"),
            &[],
        );
    }
}

#[tokio::test]
async fn a_twelve_digit_key_is_the_root_of_its_account_which_is_created_if_allowed() {
    let server = Harness::with(SEED_WORLD, |options| options.new_accounts = 1).await;
    // An account of the world: its root.
    let answer = server
        .sts(OWNER, &[("Action", "GetCallerIdentity")])
        .await
        .ok();
    assert_eq!(
        answer.text("GetCallerIdentityResult/Arn"),
        "arn:aws:iam::111111111111:root"
    );
    assert_eq!(answer.text("GetCallerIdentityResult/UserId"), OWNER);

    // A new account: created on first use, and usable at once.
    let new = AccountId::parse("333333333333").unwrap();
    assert!(!server.world.accounts().contains(&new));
    let answer = server
        .kms(
            "333333333333",
            REGION,
            "CreateKey",
            json!({"Description": "mine"}),
        )
        .await
        .ok();
    assert_eq!(answer.json()["KeyMetadata"]["AWSAccountId"], "333333333333");
    assert!(server.world.accounts().contains(&new));
    let answer = server
        .sts("333333333333", &[("Action", "GetCallerIdentity")])
        .await
        .ok();
    assert_eq!(
        answer.text("GetCallerIdentityResult/Arn"),
        "arn:aws:iam::333333333333:root"
    );

    // The allowance is spent: the next new account's key is unknown.
    let refused = server
        .sts("444444444444", &[("Action", "GetCallerIdentity")])
        .await;
    assert_eq!(refused.text("Error/Code"), "InvalidClientTokenId");
    assert!(!server
        .world
        .accounts()
        .contains(&AccountId::parse("444444444444").unwrap()));
}

#[tokio::test]
async fn an_unknown_access_key_gets_each_service_s_error() {
    let server = Harness::seed(1.0).await;
    let key = "AKIANOSUCHKEYEXAMPLE";

    let ec2 = server
        .ec2(key, REGION, &[("Action", "DescribeInstances")])
        .await;
    assert_eq!(
        (ec2.status, ec2.ec2_code()),
        (401, "AuthFailure".to_owned())
    );
    assert_eq!(
        ec2.text("Errors/Error/Message"),
        "AWS was not able to validate the provided access credentials"
    );
    assert_eq!(ec2.text("RequestID"), ec2.request_id);

    let kms = server
        .kms(key, REGION, "DescribeKey", json!({"KeyId": "alias/x"}))
        .await;
    assert_eq!(kms.status, 400);
    assert_eq!(kms.content_type, "application/x-amz-json-1.1");
    assert_eq!(
        kms.json(),
        json!({"__type": "UnrecognizedClientException", "message": "The security token included in the request is invalid."})
    );

    let sts = server.sts(key, &[("Action", "GetCallerIdentity")]).await;
    assert_eq!(sts.status, 403);
    assert_eq!(sts.root(), "ErrorResponse");
    assert_eq!(sts.text("Error/Code"), "InvalidClientTokenId");
    assert_eq!(sts.text("Error/Type"), "Sender");
    assert_eq!(sts.text("RequestId"), sts.request_id);
}

#[tokio::test]
async fn unsigned_requests_and_bad_scopes_are_refused() {
    let server = Harness::seed(1.0).await;
    let form = "Action=DescribeInstances&Version=2016-11-15"
        .as_bytes()
        .to_vec();
    let unsigned = server.send("POST", "/", &[], form.clone()).await;
    assert_eq!(
        (unsigned.status, unsigned.ec2_code()),
        (401, "MissingAuthenticationToken".to_owned())
    );

    let bad_region = server
        .send(
            "POST",
            "/",
            &[("authorization", signature(OWNER_KEY, "moon-1", "ec2"))],
            form,
        )
        .await;
    assert_eq!(
        (bad_region.status, bad_region.ec2_code()),
        (401, "AuthFailure".to_owned())
    );
    assert!(bad_region.text("Errors/Error/Message").contains("moon-1"));

    let kms = server
        .send(
            "POST",
            "/",
            &[("x-amz-target", "TrentService.DescribeKey".to_owned())],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(kms.json()["__type"], "MissingAuthenticationTokenException");
}

#[tokio::test]
async fn the_region_comes_from_the_credential_scope() {
    let server = Harness::seed(1.0).await;
    let seeded = server
        .ec2(OWNER_KEY, REGION, &[("Action", "DescribeInstances")])
        .await
        .ok();
    assert_eq!(
        seeded.texts("reservationSet/item/instancesSet/item/instanceId"),
        [SEED_INSTANCE]
    );
    let elsewhere = server
        .ec2(OWNER_KEY, "us-east-1", &[("Action", "DescribeInstances")])
        .await
        .ok();
    assert!(
        elsewhere.texts("reservationSet/item").is_empty(),
        "{}",
        elsewhere.body
    );

    let key = server
        .kms(OWNER_KEY, "eu-west-3", "CreateKey", json!({}))
        .await
        .ok()
        .json();
    let arn = key["KeyMetadata"]["Arn"].as_str().unwrap().to_owned();
    assert!(
        arn.starts_with("arn:aws:kms:eu-west-3:111111111111:key/"),
        "{arn}"
    );
    // KMS keys are regional: the key ARN in another region's endpoint is refused.
    let other = server
        .kms(OWNER_KEY, REGION, "GetKeyPolicy", json!({"KeyId": arn}))
        .await;
    assert_eq!(
        other.json(),
        json!({"__type": "NotFoundException", "message": "Invalid arn ap-northeast-1"})
    );
}
