//! What the integration tests share: test data, replayed responses, and
//! readers for the requests the SDK sent.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use amishare_aws::{load_with, ConnectOptions, SdkConfig};
use amishare_core::{KeyArn, Region};
use aws_config::BehaviorVersion;
use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;

/// The region the tests call in.
pub(crate) const REGION: &str = "ap-northeast-1";

/// The owner's key.
pub(crate) const KEY: &str =
    "arn:aws:kms:ap-northeast-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab";

pub(crate) fn region() -> Region {
    Region::parse(REGION).unwrap()
}

pub(crate) fn key() -> KeyArn {
    KeyArn::parse(KEY).unwrap()
}

/// A file under the repository's `testdata/`.
pub(crate) fn testdata_path(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(path)
}

/// The text of a file under the repository's `testdata/`.
pub(crate) fn testdata(path: &str) -> String {
    std::fs::read_to_string(testdata_path(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A loader with test credentials that ignores the host's environment.
pub(crate) fn test_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .empty_test_environment()
        .test_credentials()
}

/// Options for [`REGION`] and no retries.
pub(crate) fn options() -> ConnectOptions {
    ConnectOptions {
        region: Some(region()),
        max_attempts: 1,
        ..ConnectOptions::default()
    }
}

/// A configuration whose HTTP client answers with `responses`, in order.
pub(crate) async fn replay(
    responses: Vec<http::Response<SdkBody>>,
) -> (SdkConfig, StaticReplayClient) {
    let events = responses
        .into_iter()
        .map(|response| {
            // The replay client answers in order whatever the request; the
            // tests assert the requests actually sent instead.
            let request = http::Request::builder()
                .uri("https://replayed.invalid/")
                .body(SdkBody::empty())
                .unwrap();
            ReplayEvent::new(request, response)
        })
        .collect();
    let http = StaticReplayClient::new(events);
    let config = load_with(test_loader().http_client(http.clone()), &options()).await;
    (config, http)
}

/// An EC2 (XML) response from `testdata/`.
pub(crate) fn xml(status: u16, path: &str) -> http::Response<SdkBody> {
    http::Response::builder()
        .status(status)
        .header("content-type", "text/xml;charset=UTF-8")
        .body(SdkBody::from(testdata(path)))
        .unwrap()
}

/// A KMS (awsJson1_1) response from `testdata/`, or an empty one.
pub(crate) fn json(status: u16, path: Option<&str>) -> http::Response<SdkBody> {
    let body = path.map(testdata).unwrap_or_default();
    http::Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-requestid", "req-k")
        .body(SdkBody::from(body))
        .unwrap()
}

/// The requests the replay client was sent.
pub(crate) fn sent(http: &StaticReplayClient) -> Vec<Sent> {
    http.actual_requests().map(Sent::of).collect()
}

/// What the tests read of a sent request.
#[derive(Debug)]
pub(crate) struct Sent {
    pub(crate) uri: String,
    pub(crate) target: Option<String>,
    pub(crate) authorization: Option<String>,
    pub(crate) body: String,
}

impl Sent {
    fn of(request: &HttpRequest) -> Sent {
        Sent {
            uri: request.uri().to_owned(),
            target: request.headers().get("x-amz-target").map(str::to_owned),
            authorization: request.headers().get("authorization").map(str::to_owned),
            body: String::from_utf8(request.body().bytes().unwrap_or_default().to_vec()).unwrap(),
        }
    }

    /// An EC2 or STS form body as a set of decoded `name=value` pairs.
    pub(crate) fn form(&self) -> BTreeSet<String> {
        form_pairs(&self.body)
    }

    /// Asserts the form body is exactly these pairs (plus `Version`).
    #[track_caller]
    pub(crate) fn assert_form(&self, pairs: &[&str]) {
        let mut expected: BTreeSet<String> = pairs.iter().map(|p| (*p).to_owned()).collect();
        expected.insert("Version=2016-11-15".to_owned());
        assert_eq!(self.form(), expected, "form body of {}", self.uri);
    }

    /// Asserts a KMS request: its `X-Amz-Target` and its JSON body.
    #[track_caller]
    pub(crate) fn assert_kms(&self, operation: &str, body: serde_json::Value) {
        assert_eq!(
            self.target.as_deref(),
            Some(format!("TrentService.{operation}").as_str())
        );
        let sent: serde_json::Value = serde_json::from_str(&self.body).unwrap();
        assert_eq!(sent, body, "JSON body of {operation}");
        assert_eq!(self.uri, format!("https://kms.{REGION}.amazonaws.com/"));
    }
}

/// The `&`-separated pairs of a form body, percent-decoded.
pub(crate) fn form_pairs(body: &str) -> BTreeSet<String> {
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(percent_decode)
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// An SDK configuration for static credentials against a local endpoint,
/// with nothing read from the environment.
pub(crate) async fn config(endpoint: &str, access_key: &str, secret: &str) -> SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .empty_test_environment()
        .credentials_provider(aws_sdk_kms::config::Credentials::new(
            access_key, secret, None, None, "e2e",
        ));
    load_with(
        loader,
        &ConnectOptions {
            region: Some(Region::parse("ap-northeast-1").expect("a region")),
            endpoint_url: Some(endpoint.to_owned()),
            ..ConnectOptions::default()
        },
    )
    .await
}
