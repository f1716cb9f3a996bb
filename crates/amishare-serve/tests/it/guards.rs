//! What keeps a served world safe to leave running: credential scopes for
//! other services or regions refused with AWS's errors, unmapped 12-digit
//! keys that never add accounts unless allowed, a server that authenticates
//! knowing only the world's signed keys, and no address but loopback
//! without it.

use serde_json::{json, Value};

use amishare_serve::{ServeError, ServeOptions, Server};

use crate::support::{
    amz_date_now, signature, signature_on, sts_headers, Harness, GET_CALLER_IDENTITY, OWNER,
    OWNER_KEY, REGION, SEED_WORLD,
};

#[tokio::test]
async fn a_scope_for_another_service_or_region_is_refused_in_the_service_s_words() {
    let server = Harness::seed(1.0).await;
    let form = b"Action=DescribeInstances&Version=2016-11-15".to_vec();
    let as_ec2 = |scope: String| vec![("authorization", scope)];

    let s3 = server
        .send(
            "POST",
            "/",
            &as_ec2(signature(OWNER_KEY, REGION, "s3")),
            form.clone(),
        )
        .await;
    assert_eq!((s3.status, s3.ec2_code()), (401, "AuthFailure".to_owned()));
    assert_eq!(
        s3.text("Errors/Error/Message"),
        "Credential should be scoped to correct service: 'ec2'. "
    );

    let nowhere = server
        .send(
            "POST",
            "/",
            &as_ec2(signature(OWNER_KEY, "ap-northeast-99", "ec2")),
            form,
        )
        .await;
    assert_eq!(
        (nowhere.status, nowhere.ec2_code()),
        (401, "AuthFailure".to_owned())
    );
    assert_eq!(
        nowhere.text("Errors/Error/Message"),
        "Credential should be scoped to a valid region, not 'ap-northeast-99'."
    );

    let kms = server
        .send(
            "POST",
            "/",
            &[
                ("authorization", signature(OWNER_KEY, REGION, "ec2")),
                ("x-amz-target", "TrentService.DescribeKey".to_owned()),
            ],
            br#"{"KeyId":"alias/x"}"#.to_vec(),
        )
        .await;
    assert_eq!(
        kms.json(),
        json!({"__type": "InvalidSignatureException", "message": "Credential should be scoped to correct service: 'kms'. "})
    );

    let sts = server
        .send(
            "POST",
            "/",
            &[("authorization", signature(OWNER_KEY, "us-east-1", "iam"))],
            GET_CALLER_IDENTITY.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(sts.status, 403);
    assert_eq!(sts.text("Error/Code"), "SignatureDoesNotMatch");
}

/// The world as saved, without the time it had reached.
async fn saved_without_time(server: &Harness) -> Value {
    server
        .send("POST", amishare_serve::SAVE_PATH, &[], Vec::new())
        .await
        .ok();
    let mut saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&server.path).unwrap()).unwrap();
    saved.as_object_mut().unwrap().remove("now_ms");
    saved
}

#[tokio::test]
async fn ten_thousand_unmapped_twelve_digit_keys_leave_the_world_as_it_was() {
    let server = Harness::seed(1.0).await;
    let before = saved_without_time(&server).await;
    let mut connection = server.connect().await;
    for n in 0..10_000_u64 {
        let key = format!("{:012}", 500_000_000_000 + n);
        let answer = server
            .send_on(
                &mut connection,
                "POST",
                "/",
                &sts_headers(&key),
                GET_CALLER_IDENTITY.as_bytes().to_vec(),
            )
            .await;
        assert_eq!(answer.text("Error/Code"), "InvalidClientTokenId", "{key}");
    }
    // An account the world has still answers to its 12-digit key.
    let root = server
        .send_on(
            &mut connection,
            "POST",
            "/",
            &sts_headers(OWNER),
            GET_CALLER_IDENTITY.as_bytes().to_vec(),
        )
        .await
        .ok();
    assert_eq!(
        root.text("GetCallerIdentityResult/Arn"),
        "arn:aws:iam::111111111111:root"
    );
    assert_eq!(saved_without_time(&server).await, before);
    assert_eq!(server.world.accounts().len(), 2);
}

#[tokio::test]
async fn an_authenticating_server_refuses_unsigned_falsely_signed_and_unknown_callers() {
    let server = Harness::with(SEED_WORLD, |options| options.authenticate = true).await;
    let ec2 = b"Action=DescribeInstances&Version=2016-11-15".to_vec();

    let unsigned = server.send("POST", "/", &[], ec2.clone()).await;
    assert_eq!(
        (unsigned.status, unsigned.ec2_code()),
        (401, "MissingAuthenticationToken".to_owned())
    );

    // The seed world's key with a signature made up: its secret does not give it.
    let now = amz_date_now();
    let forged = |date: &str, service: &str| {
        vec![
            (
                "authorization",
                signature_on(&date[..8], OWNER_KEY, REGION, service),
            ),
            (
                "content-type",
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("x-amz-date", date.to_owned()),
        ]
    };
    let answer = server
        .send("POST", "/", &forged(&now, "ec2"), ec2.clone())
        .await;
    assert_eq!(
        (answer.status, answer.ec2_code()),
        (401, "AuthFailure".to_owned())
    );
    let mut kms_headers = forged(&now, "kms");
    kms_headers.push(("x-amz-target", "TrentService.CreateKey".to_owned()));
    let answer = server.send("POST", "/", &kms_headers, b"{}".to_vec()).await;
    assert_eq!(answer.json()["__type"], "InvalidSignatureException");
    // Signed long ago: expired, whatever the signature.
    let answer = server
        .send("POST", "/", &forged("20000101T000000Z", "ec2"), ec2.clone())
        .await;
    assert_eq!(answer.ec2_code(), "RequestExpired");

    // A 12-digit key is nobody's root here, even for an account the world has.
    let root = server
        .send(
            "POST",
            "/",
            &sts_headers(OWNER),
            GET_CALLER_IDENTITY.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(root.text("Error/Code"), "InvalidClientTokenId");

    assert!(
        server
            .world
            .customer_keys(&amishare_core::AccountId::parse(OWNER).unwrap())
            .is_empty(),
        "nothing was made"
    );
}

#[tokio::test]
async fn an_address_other_than_loopback_needs_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("world.json");
    std::fs::write(&path, SEED_WORLD).unwrap();
    let options = ServeOptions::new(&path, "0.0.0.0:0".parse().unwrap());
    let err = Server::bind(options.clone()).await.unwrap_err();
    assert!(matches!(err, ServeError::NotLoopback(_)), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), SEED_WORLD);

    let server = Server::bind(ServeOptions {
        authenticate: true,
        ..options
    })
    .await
    .unwrap();
    assert!(server.local_addr().ip().is_unspecified());
    assert!(server.endpoint().starts_with("http://127.0.0.1:"));
}

#[tokio::test]
async fn fields_over_aws_s_limits_are_refused_with_aws_s_errors_and_nothing_is_kept() {
    let server = Harness::seed(1.0).await;
    let before = saved_without_time(&server).await;

    let long = server
        .kms(
            OWNER_KEY,
            REGION,
            "CreateKey",
            json!({"Description": "d".repeat(900_000)}),
        )
        .await;
    assert_eq!(long.status, 400);
    assert_eq!(long.json()["__type"], "ValidationException");
    assert!(long.json()["message"].as_str().unwrap().contains("8192"));

    let tags: Vec<Value> = (0..51)
        .map(|i| json!({"TagKey": format!("k{i}"), "TagValue": "v"}))
        .collect();
    let many = server
        .kms(OWNER_KEY, REGION, "CreateKey", json!({"Tags": tags}))
        .await;
    assert_eq!(many.json()["__type"], "TagException");

    let key = "k".repeat(129);
    let image = server
        .ec2(
            OWNER_KEY,
            REGION,
            &[
                ("Action", "CreateImage"),
                ("InstanceId", crate::support::SEED_INSTANCE),
                ("Name", "golden"),
                ("TagSpecification.1.ResourceType", "image"),
                ("TagSpecification.1.Tag.1.Key", &key),
                ("TagSpecification.1.Tag.1.Value", "v"),
            ],
        )
        .await;
    assert_eq!(
        (image.status, image.ec2_code()),
        (400, "InvalidParameterValue".to_owned())
    );

    // At the limit, the same calls are served.
    server
        .kms(
            OWNER_KEY,
            REGION,
            "CreateKey",
            json!({"Description": "d".repeat(8_192)}),
        )
        .await
        .ok();
    let mut after = saved_without_time(&server).await;
    assert_eq!(after["keys"].as_array().unwrap().len(), 1);
    after["keys"] = before["keys"].clone();
    after["id_position"] = before["id_position"].clone();
    assert_eq!(after, before, "only the key within the limits was kept");
}
