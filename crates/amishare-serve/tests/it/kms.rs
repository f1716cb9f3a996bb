//! KMS over the wire: every operation's answer with KMS's member names (as
//! recorded in `testdata/replay/kms/`), cross-account authorization, and
//! errors as `{"__type", "message"}`.

use serde_json::{json, Value};

use crate::support::{
    json_paths, recorded_json_paths, testdata, Harness, OWNER_KEY, REGION, TARGET_KEY,
};

#[track_caller]
fn check_names(what: &str, answer: &Value, recording: &str) {
    let recorded = recorded_json_paths(recording);
    let unknown: Vec<String> = json_paths(answer)
        .into_iter()
        .filter(|path| !recorded.contains(path))
        .collect();
    assert!(
        unknown.is_empty(),
        "{what}: members KMS does not send: {unknown:?}"
    );
}

#[tokio::test]
async fn every_kms_operation_answers_as_kms_does() {
    let server = Harness::seed(1.0).await;
    let created = server
        .kms(
            OWNER_KEY,
            REGION,
            "CreateKey",
            json!({"Description": "amishare key", "Tags": [{"TagKey": "team", "TagValue": "images"}]}),
        )
        .await
        .ok();
    assert_eq!(created.content_type, "application/x-amz-json-1.1");
    let created = created.json();
    check_names("CreateKey", &created, "create_key.json");
    let metadata = &created["KeyMetadata"];
    let arn = metadata["Arn"].as_str().unwrap().to_owned();
    let key_id = metadata["KeyId"].as_str().unwrap().to_owned();
    assert_eq!(
        arn,
        format!("arn:aws:kms:{REGION}:111111111111:key/{key_id}")
    );
    assert_eq!(metadata["KeyState"], "Enabled");
    assert_eq!(metadata["KeyManager"], "CUSTOMER");
    assert_eq!(metadata["Description"], "amishare key");
    assert_eq!(metadata["Enabled"], true);

    let alias = server
        .kms(
            OWNER_KEY,
            REGION,
            "CreateAlias",
            json!({"AliasName": "alias/cross-ami", "TargetKeyId": key_id}),
        )
        .await
        .ok();
    assert_eq!(alias.body, "", "CreateAlias has no output");
    let described = server
        .kms(
            OWNER_KEY,
            REGION,
            "DescribeKey",
            json!({"KeyId": "alias/cross-ami"}),
        )
        .await
        .ok()
        .json();
    check_names("DescribeKey", &described, "describe_key.json");
    assert_eq!(described["KeyMetadata"]["Arn"], arn.as_str());

    let policy = server
        .kms(
            OWNER_KEY,
            REGION,
            "GetKeyPolicy",
            json!({"KeyId": key_id, "PolicyName": "default"}),
        )
        .await
        .ok()
        .json();
    check_names("GetKeyPolicy", &policy, "get_key_policy.json");
    assert_eq!(policy["PolicyName"], "default");
    assert!(policy["Policy"]
        .as_str()
        .unwrap()
        .contains("arn:aws:iam::111111111111:root"));

    // The target may not use the key until its policy says so.
    let denied = server
        .kms(TARGET_KEY, REGION, "DescribeKey", json!({"KeyId": arn}))
        .await;
    assert_eq!(denied.status, 400);
    let denied = denied.json();
    assert_eq!(denied["__type"], "AccessDeniedException");
    let recorded: Value = serde_json::from_str(
        &std::fs::read_to_string(testdata().join("errors/kms/AccessDeniedException.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json_paths(&denied), json_paths(&recorded));
    assert!(
        denied["message"].as_str().unwrap().starts_with(
            "User: arn:aws:iam::222222222222:user/b-user is not authorized to perform: kms:DescribeKey on resource: "
        ),
        "{denied}"
    );

    let seed_policy = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/seed-key-policy.json"),
    )
    .unwrap();
    let put = server
        .kms(
            OWNER_KEY,
            REGION,
            "PutKeyPolicy",
            json!({"KeyId": arn, "PolicyName": "default", "Policy": seed_policy}),
        )
        .await
        .ok();
    assert_eq!(put.body, "");
    let stored = server
        .kms(OWNER_KEY, REGION, "GetKeyPolicy", json!({"KeyId": arn}))
        .await
        .ok()
        .json();
    assert_eq!(
        stored["Policy"],
        seed_policy.as_str(),
        "the policy is stored verbatim"
    );
    let allowed = server
        .kms(TARGET_KEY, REGION, "DescribeKey", json!({"KeyId": arn}))
        .await
        .ok()
        .json();
    assert_eq!(allowed["KeyMetadata"]["Arn"], arn.as_str());

    // Grants: the owner grants, lists and revokes.
    let granted = server
        .kms(
            OWNER_KEY,
            REGION,
            "CreateGrant",
            json!({
                "KeyId": arn,
                "GranteePrincipal": "arn:aws:iam::222222222222:user/b-user",
                "Operations": ["Decrypt", "DescribeKey"],
                "Name": "amishare-b-user",
            }),
        )
        .await
        .ok()
        .json();
    check_names("CreateGrant", &granted, "create_grant.json");
    let grant_id = granted["GrantId"].as_str().unwrap().to_owned();
    let listed = server
        .kms(OWNER_KEY, REGION, "ListGrants", json!({"KeyId": key_id}))
        .await
        .ok()
        .json();
    check_names("ListGrants", &listed, "list_grants_page1.json");
    assert_eq!(listed["Truncated"], false);
    let grants = listed["Grants"].as_array().unwrap();
    assert_eq!(grants.len(), 1, "{listed}");
    assert_eq!(grants[0]["GrantId"], grant_id.as_str());
    assert_eq!(grants[0]["KeyId"], arn.as_str());
    assert_eq!(grants[0]["Name"], "amishare-b-user");
    assert_eq!(
        grants[0]["IssuingAccount"],
        "arn:aws:iam::111111111111:root"
    );
    assert_eq!(grants[0]["Operations"], json!(["Decrypt", "DescribeKey"]));
    let revoked = server
        .kms(
            OWNER_KEY,
            REGION,
            "RevokeGrant",
            json!({"KeyId": arn, "GrantId": grant_id}),
        )
        .await
        .ok();
    assert_eq!(revoked.body, "");
    let listed = server
        .kms(OWNER_KEY, REGION, "ListGrants", json!({"KeyId": arn}))
        .await
        .ok()
        .json();
    assert_eq!(listed["Grants"], json!([]));
}

/// A bad KMS request and the error it must get.
struct BadRequest {
    what: &'static str,
    operation: &'static str,
    body: &'static str,
    code: &'static str,
    message: Option<&'static str>,
}

const BAD_REQUESTS: &[BadRequest] = &[
    BadRequest {
        what: "an unknown operation",
        operation: "LaunchRocket",
        body: "{}",
        code: "UnknownOperationException",
        message: None,
    },
    BadRequest {
        what: "a body that is not JSON",
        operation: "DescribeKey",
        body: "{\"KeyId\":",
        code: "SerializationException",
        message: None,
    },
    BadRequest {
        what: "a member of the wrong type",
        operation: "DescribeKey",
        body: "{\"KeyId\": 7}",
        code: "SerializationException",
        message: None,
    },
    BadRequest {
        what: "DescribeKey without a key",
        operation: "DescribeKey",
        body: "{}",
        code: "ValidationException",
        message: Some("1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null"),
    },
    BadRequest {
        what: "a malformed key ARN",
        operation: "DescribeKey",
        body: "{\"KeyId\": \"arn:aws:kms:ap-northeast-1:111111111111:key\"}",
        code: "InvalidArnException",
        message: Some("arn:aws:kms:ap-northeast-1:111111111111:key is not a valid ARN"),
    },
    BadRequest {
        what: "a malformed key ID",
        operation: "DescribeKey",
        body: "{\"KeyId\": \"not-a-key\"}",
        code: "NotFoundException",
        message: None,
    },
    BadRequest {
        what: "a key that does not exist",
        operation: "DescribeKey",
        body: "{\"KeyId\": \"arn:aws:kms:ap-northeast-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab\"}",
        code: "NotFoundException",
        message: Some("Key 'arn:aws:kms:ap-northeast-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab' does not exist"),
    },
    BadRequest {
        what: "a key ARN of another region",
        operation: "GetKeyPolicy",
        body: "{\"KeyId\": \"arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab\"}",
        code: "NotFoundException",
        message: Some("Invalid arn ap-northeast-1"),
    },
    BadRequest {
        what: "an alias name where a key ID or ARN is needed",
        operation: "GetKeyPolicy",
        body: "{\"KeyId\": \"alias/cross-ami\"}",
        code: "NotFoundException",
        message: None,
    },
    BadRequest {
        what: "an alias without the prefix",
        operation: "CreateAlias",
        body: "{\"AliasName\": \"cross-ami\", \"TargetKeyId\": \"1234abcd-12ab-34cd-56ef-1234567890ab\"}",
        code: "ValidationException",
        message: None,
    },
    BadRequest {
        what: "a grant of an unknown operation",
        operation: "CreateGrant",
        body: "{\"KeyId\": \"1234abcd-12ab-34cd-56ef-1234567890ab\", \"GranteePrincipal\": \"arn:aws:iam::222222222222:user/b-user\", \"Operations\": [\"Launch\"]}",
        code: "ValidationException",
        message: None,
    },
    BadRequest {
        what: "a policy with no statement",
        operation: "CreateKey",
        body: "{\"Policy\": \"{}\"}",
        code: "MalformedPolicyDocumentException",
        message: None,
    },
    BadRequest {
        what: "an asymmetric key, which the simulation does not model",
        operation: "CreateKey",
        body: "{\"KeySpec\": \"RSA_2048\"}",
        code: "UnsupportedOperationException",
        message: None,
    },
];

#[tokio::test]
async fn bad_requests_get_kms_s_errors() {
    let server = Harness::seed(1.0).await;
    for case in BAD_REQUESTS {
        let headers = [
            (
                "authorization",
                crate::support::signature(OWNER_KEY, REGION, "kms"),
            ),
            ("content-type", "application/x-amz-json-1.1".to_owned()),
            ("x-amz-target", format!("TrentService.{}", case.operation)),
        ];
        let answer = server
            .send("POST", "/", &headers, case.body.as_bytes().to_vec())
            .await;
        assert_eq!(answer.status, 400, "{}: {}", case.what, answer.body);
        assert_eq!(
            answer.content_type, "application/x-amz-json-1.1",
            "{}",
            case.what
        );
        let error = answer.json();
        assert_eq!(error["__type"], case.code, "{}: {}", case.what, answer.body);
        assert!(error["message"].is_string(), "{}", case.what);
        assert_eq!(
            error.as_object().unwrap().len(),
            2,
            "{}: {error}",
            case.what
        );
        if let Some(message) = case.message {
            assert_eq!(error["message"], message, "{}", case.what);
        }
    }
}
