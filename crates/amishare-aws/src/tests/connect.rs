//! `load_with` applies every option to the SDK configuration, and the
//! stores keep one client per region.

use std::time::Duration;

use amishare_core::store::KeyStore;
use amishare_core::{Clock, KeyRef, Region};
use aws_config::BehaviorVersion;
use aws_sdk_kms::operation::describe_key::DescribeKeyOutput;
use aws_sdk_kms::types::{KeyManagerType, KeyMetadata, KeyState};
use aws_smithy_mocks::{mock, mock_client, RuleMode};

use super::{key, region, KEY};
use crate::{load_with, AwsKeyStore, ConnectOptions, WallClock};

fn loader() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .empty_test_environment()
        .test_credentials()
}

#[test]
fn by_default_one_attempt_and_nothing_else() {
    let options = ConnectOptions::default();
    assert_eq!(
        options.max_attempts, 1,
        "amishare's retry layer retries, not the SDK"
    );
    assert_eq!(options.profile, None);
    assert_eq!(options.endpoint_url, None);
    assert_eq!(options.operation_timeout, None);
}

#[tokio::test]
async fn options_reach_the_sdk_configuration() {
    let config = load_with(
        loader(),
        &ConnectOptions {
            region: Some(region()),
            endpoint_url: Some("http://127.0.0.1:4566".to_owned()),
            max_attempts: 5,
            operation_timeout: Some(Duration::from_secs(30)),
            ..ConnectOptions::default()
        },
    )
    .await;
    assert_eq!(config.region().map(|r| r.as_ref()), Some("ap-northeast-1"));
    assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:4566"));
    assert_eq!(config.retry_config().unwrap().max_attempts(), 5);
    assert_eq!(
        config.timeout_config().unwrap().operation_timeout(),
        Some(Duration::from_secs(30))
    );
}

#[tokio::test]
async fn zero_attempts_means_one() {
    let config = load_with(
        loader(),
        &ConnectOptions {
            max_attempts: 0,
            ..ConnectOptions::default()
        },
    )
    .await;
    assert_eq!(config.retry_config().unwrap().max_attempts(), 1);
}

#[tokio::test]
async fn one_client_per_region_is_built_and_kept() {
    let described = mock!(aws_sdk_kms::Client::describe_key).then_output(|| {
        DescribeKeyOutput::builder()
            .key_metadata(
                KeyMetadata::builder()
                    .key_id("1234abcd-12ab-34cd-56ef-1234567890ab")
                    .arn(KEY)
                    .key_state(KeyState::Enabled)
                    .key_manager(KeyManagerType::Customer)
                    .build()
                    .unwrap(),
            )
            .build()
    });
    let kms = mock_client!(aws_sdk_kms, RuleMode::MatchAny, [&described]);
    let sts = mock_client!(aws_sdk_sts, RuleMode::MatchAny, []);
    let keys = AwsKeyStore::from_conf(kms.config().clone(), sts.config().clone());
    let west = Region::parse("us-west-2").unwrap();
    for region in [region(), west.clone(), region(), west.clone()] {
        keys.describe_key(&region, &KeyRef::Arn(key()))
            .await
            .unwrap();
    }
    assert_eq!(keys.kms.regions(), [region(), west]);
    assert_eq!(described.num_calls(), 4);
}

#[tokio::test]
async fn the_wall_clock_counts_from_the_unix_epoch() {
    let clock = WallClock;
    let before = clock.now();
    assert!(Duration::from_secs(1_700_000_000) < before);
    clock.sleep(Duration::from_millis(5)).await;
    assert!(before < clock.now());
}
