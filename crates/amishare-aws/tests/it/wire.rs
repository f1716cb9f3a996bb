//! The stores against a local HTTP server (wiremock, on 127.0.0.1) reached
//! through the endpoint override of [`ConnectOptions`]: throttling retried
//! until the call succeeds, server errors, a slow answer against the
//! operation timeout, pagination across requests, an unreachable endpoint,
//! and where `load` takes credentials from (a profile, an assumed role).

use std::time::Duration;

use amishare_aws::{load_with, AwsImageStore, AwsKeyStore, ConnectOptions, ROLE_SESSION_NAME};
use amishare_core::store::{ImageQuery, ImageStore, KeyState, KeyStore};
use amishare_core::{ErrorKind, KeyRef};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

use crate::support::{form_pairs, key, region, test_loader, testdata};

/// Options that send every call to `server`.
fn options(server: &MockServer, max_attempts: u32) -> ConnectOptions {
    ConnectOptions {
        endpoint_url: Some(server.uri()),
        region: Some(region()),
        max_attempts,
        ..ConnectOptions::default()
    }
}

/// An EC2 request for `action`.
fn ec2(action: &str) -> MockBuilder {
    Mock::given(method("POST"))
        .and(path("/"))
        .and(body_string_contains(format!("Action={action}&")))
}

/// A KMS request for `operation`.
fn kms(operation: &str) -> MockBuilder {
    Mock::given(method("POST")).and(path("/")).and(header(
        "x-amz-target",
        format!("TrentService.{operation}").as_str(),
    ))
}

fn xml(status: u16, file: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(testdata(file), "text/xml")
}

fn json(status: u16, file: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(testdata(file), "application/x-amz-json-1.1")
}

async fn images(server: &MockServer, max_attempts: u32) -> AwsImageStore {
    AwsImageStore::new(&load_with(test_loader(), &options(server, max_attempts)).await)
}

async fn keys(server: &MockServer, max_attempts: u32) -> AwsKeyStore {
    AwsKeyStore::new(&load_with(test_loader(), &options(server, max_attempts)).await)
}

async fn requests(server: &MockServer) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .expect("requests are recorded")
}

#[tokio::test]
async fn throttling_is_retried_until_the_call_succeeds() {
    let server = MockServer::start().await;
    ec2("DescribeImages")
        .respond_with(xml(503, "errors/ec2/RequestLimitExceeded.xml"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    ec2("DescribeImages")
        .respond_with(xml(200, "replay/ec2/describe_images.xml"))
        .with_priority(2)
        .mount(&server)
        .await;
    let found = images(&server, 3)
        .await
        .describe_images(&region(), &ImageQuery::default())
        .await
        .expect("the retry succeeds");
    assert_eq!(found.len(), 2);
    assert_eq!(
        requests(&server).await.len(),
        2,
        "one throttled, one answered"
    );
}

#[tokio::test]
async fn throttling_past_the_last_attempt_is_a_retryable_throttled_error() {
    let server = MockServer::start().await;
    kms("DescribeKey")
        .respond_with(json(400, "errors/kms/ThrottlingException.json"))
        .mount(&server)
        .await;
    let err = keys(&server, 2)
        .await
        .describe_key(&region(), &KeyRef::Arn(key()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled, "{err}");
    assert_eq!(err.code(), Some("ThrottlingException"));
    assert!(err.is_retryable());
    assert_eq!(
        requests(&server).await.len(),
        2,
        "max_attempts calls in all"
    );
}

#[tokio::test]
async fn a_server_error_is_retried() {
    let server = MockServer::start().await;
    kms("DescribeKey")
        .respond_with(json(500, "errors/kms/KMSInternalException.json"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    kms("DescribeKey")
        .respond_with(json(200, "replay/kms/describe_key.json"))
        .with_priority(2)
        .mount(&server)
        .await;
    let described = keys(&server, 3)
        .await
        .describe_key(&region(), &KeyRef::Arn(key()))
        .await
        .unwrap();
    assert_eq!(described.state, KeyState::PendingDeletion);
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_server_error_without_retries_left_is_a_retryable_service_error() {
    let server = MockServer::start().await;
    ec2("DescribeImages")
        .respond_with(xml(500, "errors/ec2/InternalError.xml"))
        .mount(&server)
        .await;
    let err = images(&server, 1)
        .await
        .describe_images(&region(), &ImageQuery::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Service, "{err}");
    assert_eq!(err.code(), Some("InternalError"));
    assert!(err.is_retryable());
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn a_gateway_error_without_a_code_is_classified_by_its_status() {
    let server = MockServer::start().await;
    ec2("DescribeImages")
        .respond_with(
            ResponseTemplate::new(502).set_body_raw("<html>Bad Gateway</html>", "text/html"),
        )
        .mount(&server)
        .await;
    let err = images(&server, 1)
        .await
        .describe_images(&region(), &ImageQuery::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Service, "{err}");
    assert!(err.is_retryable(), "{err}");
    assert!(std::error::Error::source(&err).is_some());
}

#[tokio::test]
async fn a_slow_answer_runs_into_the_operation_timeout() {
    let server = MockServer::start().await;
    ec2("DescribeImages")
        .respond_with(xml(200, "replay/ec2/describe_images.xml").set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let config = load_with(
        test_loader(),
        &ConnectOptions {
            operation_timeout: Some(Duration::from_millis(300)),
            ..options(&server, 1)
        },
    )
    .await;
    let err = AwsImageStore::new(&config)
        .describe_images(&region(), &ImageQuery::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.is_retryable());
    assert!(err.message().starts_with("DescribeImages"), "{err}");
}

#[tokio::test]
async fn describe_images_pages_across_requests() {
    let server = MockServer::start().await;
    ec2("DescribeImages")
        .and(body_string_contains("NextToken=page-2-token"))
        .respond_with(xml(200, "replay/ec2/describe_images_page2.xml"))
        .with_priority(1)
        .mount(&server)
        .await;
    ec2("DescribeImages")
        .respond_with(xml(200, "replay/ec2/describe_images_page1.xml"))
        .with_priority(2)
        .mount(&server)
        .await;
    let found = images(&server, 1)
        .await
        .describe_images(&region(), &ImageQuery::default())
        .await
        .unwrap();
    let names: Vec<&str> = found.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["page-one", "page-two"]);
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn list_grants_pages_across_requests() {
    let server = MockServer::start().await;
    kms("ListGrants")
        .and(body_string_contains("\"Marker\":\"grants-page-2\""))
        .respond_with(json(200, "replay/kms/list_grants_page2.json"))
        .with_priority(1)
        .mount(&server)
        .await;
    kms("ListGrants")
        .respond_with(json(200, "replay/kms/list_grants_page1.json"))
        .with_priority(2)
        .mount(&server)
        .await;
    let grants = keys(&server, 1).await.list_grants(&key()).await.unwrap();
    assert_eq!(grants.len(), 2);
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 2);
    for request in &sent {
        let body: serde_json::Value = request.body_json().unwrap();
        assert_eq!(body["KeyId"], crate::support::KEY, "always the key ARN");
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_retryable_service_error() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = load_with(
        test_loader(),
        &ConnectOptions {
            endpoint_url: Some(format!("http://127.0.0.1:{port}")),
            region: Some(region()),
            max_attempts: 1,
            ..ConnectOptions::default()
        },
    )
    .await;
    let err = AwsKeyStore::new(&config)
        .describe_key(&region(), &KeyRef::Arn(key()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Service, "{err}");
    assert_eq!(err.code(), None);
    assert!(err.is_retryable(), "{err}");
    assert!(err.message().contains("could not be sent"), "{err}");
}

#[tokio::test]
async fn an_assumed_role_signs_every_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("Action=AssumeRole&"))
        .respond_with(xml(200, "replay/sts/assume_role.xml"))
        .mount(&server)
        .await;
    ec2("DescribeImages")
        .respond_with(xml(200, "replay/ec2/describe_images_page2.xml"))
        .mount(&server)
        .await;
    let role = "arn:aws:iam::111111111111:role/amishare-admin";
    let config = load_with(
        test_loader(),
        &ConnectOptions {
            assume_role_arn: Some(role.to_owned()),
            ..options(&server, 1)
        },
    )
    .await;
    AwsImageStore::new(&config)
        .describe_images(&region(), &ImageQuery::default())
        .await
        .unwrap();
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 2, "AssumeRole, then DescribeImages");
    let assume = form_pairs(std::str::from_utf8(&sent[0].body).unwrap());
    assert!(assume.contains(&format!("RoleArn={role}")), "{assume:?}");
    assert!(
        assume.contains(&format!("RoleSessionName={ROLE_SESSION_NAME}")),
        "{assume:?}"
    );
    let authorization = sent[1].headers["authorization"].to_str().unwrap();
    assert!(
        authorization.contains("Credential=ASIAASSUMEDROLEKEY01/"),
        "signed with the role's keys: {authorization}"
    );
    assert_eq!(
        sent[1].headers["x-amz-security-token"].to_str().unwrap(),
        "assumed-role-session-token"
    );
}

#[tokio::test]
async fn a_profile_gives_credentials_and_region_over_other_credentials() {
    let server = MockServer::start().await;
    ec2("DescribeImages")
        .respond_with(xml(200, "replay/ec2/describe_images_page2.xml"))
        .mount(&server)
        .await;
    let file = std::env::temp_dir().join(format!("amishare-aws-profiles-{}", std::process::id()));
    std::fs::write(
        &file,
        "[profile owner]\naws_access_key_id = AKIDPROFILEOWNER\naws_secret_access_key = owner-secret\nregion = eu-west-1\n",
    )
    .unwrap();
    // The loader already has credentials: the profile's win.
    let config = load_with(
        test_loader(),
        &ConnectOptions {
            profile: Some("owner".to_owned()),
            profile_file: Some(file.clone()),
            region: None,
            ..options(&server, 1)
        },
    )
    .await;
    assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
    let described = AwsImageStore::new(&config)
        .describe_images(&region(), &ImageQuery::default())
        .await;
    std::fs::remove_file(&file).unwrap();
    described.unwrap();
    let sent = requests(&server).await;
    let authorization = sent[0].headers["authorization"].to_str().unwrap();
    assert!(
        authorization.contains("Credential=AKIDPROFILEOWNER/"),
        "{authorization}"
    );
    assert!(
        authorization.contains("/ap-northeast-1/ec2/aws4_request"),
        "the call's region, not the profile's: {authorization}"
    );
}

/// One layer retries: a call that is always throttled is sent as many
/// times as amishare's retry layer (`Retrying`, which every `Flow` puts in
/// front of its stores) allows, because `load`'s default turns the SDK's
/// own retries off. The store alone sends it once. Raising the SDK's
/// attempts as well multiplies them, which is why the default is one.
#[tokio::test]
async fn a_throttled_call_is_sent_as_often_as_the_one_retry_layer_allows() {
    use std::sync::Arc;

    use amishare_aws::WallClock;
    use amishare_core::retry::{RetryOptions, Retrying};

    let server = MockServer::start().await;
    always_throttled(&server).await;
    let options = ConnectOptions {
        endpoint_url: Some(server.uri()),
        region: Some(region()),
        ..ConnectOptions::default()
    };
    assert_eq!(options.max_attempts, 1);
    let config = load_with(test_loader(), &options).await;
    let retry = RetryOptions {
        max_attempts: 4,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
        ..RetryOptions::default()
    };
    let behind_retries = |config: &amishare_aws::SdkConfig| {
        Retrying::new(
            Arc::new(AwsKeyStore::new(config)),
            Arc::new(AwsImageStore::new(config)),
            Arc::new(WallClock),
            retry,
        )
    };
    let by_arn = KeyRef::Arn(key());

    let err = AwsKeyStore::new(&config)
        .describe_key(&region(), &by_arn)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled);
    assert_eq!(requests(&server).await.len(), 1, "the store alone: once");

    always_throttled(&server).await;
    let err = behind_retries(&config)
        .describe_key(&region(), &by_arn)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled, "{err}");
    assert_eq!(
        requests(&server).await.len(),
        4,
        "behind the retry layer: its max_attempts, not more"
    );

    always_throttled(&server).await;
    let both = load_with(
        test_loader(),
        &ConnectOptions {
            max_attempts: 3,
            ..options
        },
    )
    .await;
    behind_retries(&both)
        .describe_key(&region(), &by_arn)
        .await
        .unwrap_err();
    assert_eq!(
        requests(&server).await.len(),
        12,
        "with the SDK's retries on too, 4 × 3"
    );
}

/// `server` forgets what it answered and was asked, then throttles every `DescribeKey`.
async fn always_throttled(server: &MockServer) {
    server.reset().await;
    kms("DescribeKey")
        .respond_with(json(400, "errors/kms/ThrottlingException.json"))
        .mount(server)
        .await;
}
