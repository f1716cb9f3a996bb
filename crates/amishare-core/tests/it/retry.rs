//! Retries of single calls: what is retried, how often, and how long it waits.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use amishare_core::retry::{RetryOptions, Retrying};
use amishare_core::store::{
    CreateKeyRequest, ImageStore, KeyManager, KeyMetadata, KeyState, KeyStore, MockImageStore,
    MockKeyStore, PermissionChange,
};
use amishare_core::{Clock, Error, ErrorKind, KeyArn, KeyRef, Region, Result};

/// A clock that records every sleep and advances at once.
#[derive(Debug, Default)]
struct Recording {
    now_ms: AtomicU64,
    sleeps: std::sync::Mutex<Vec<Duration>>,
}

#[async_trait::async_trait]
impl Clock for Recording {
    fn now(&self) -> Duration {
        Duration::from_millis(self.now_ms.load(Ordering::SeqCst))
    }
    async fn sleep(&self, duration: Duration) {
        self.sleeps.lock().unwrap().push(duration);
        self.now_ms
            .fetch_add(duration.as_millis() as u64, Ordering::SeqCst);
    }
}

fn region() -> Region {
    Region::parse("eu-west-1").unwrap()
}

fn key() -> KeyArn {
    KeyArn::parse("arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab")
        .unwrap()
}

fn meta() -> KeyMetadata {
    KeyMetadata {
        arn: key(),
        manager: KeyManager::Customer,
        state: KeyState::Enabled,
        description: String::new(),
    }
}

fn throttled() -> Error {
    Error::service(ErrorKind::Throttled, "ThrottlingException", "Rate exceeded")
}

fn internal() -> Error {
    Error::service(ErrorKind::Service, "KMSInternalException", "internal").with_retryable(true)
}

/// A key store whose `DescribeKey` and `CreateKey` fail `failures` times
/// with `error`, then succeed; `calls` counts the attempts.
fn failing_keys(failures: usize, error: fn() -> Error, calls: Arc<AtomicUsize>) -> MockKeyStore {
    let mut keys = MockKeyStore::new();
    let describe = calls.clone();
    keys.expect_describe_key().returning(move |_, _| {
        if describe.fetch_add(1, Ordering::SeqCst) < failures {
            Err(error())
        } else {
            Ok(meta())
        }
    });
    keys.expect_create_key().returning(move |_, _| {
        if calls.fetch_add(1, Ordering::SeqCst) < failures {
            Err(error())
        } else {
            Ok(meta())
        }
    });
    keys
}

fn retrying(keys: MockKeyStore, clock: Arc<Recording>, options: RetryOptions) -> Retrying {
    Retrying::new(
        Arc::new(keys),
        Arc::new(MockImageStore::new()),
        clock,
        options,
    )
}

#[tokio::test]
async fn throttled_calls_are_retried_with_growing_capped_jittered_backoff() {
    let calls = Arc::new(AtomicUsize::new(0));
    let clock = Arc::new(Recording::default());
    let store = retrying(
        failing_keys(5, throttled, calls.clone()),
        clock.clone(),
        RetryOptions::default(),
    );
    let got = store
        .describe_key(&region(), &KeyRef::Arn(key()))
        .await
        .expect("the sixth attempt succeeds");
    assert_eq!(got.arn, key());
    assert_eq!(calls.load(Ordering::SeqCst), 6);
    let sleeps = clock.sleeps.lock().unwrap().clone();
    assert_eq!(sleeps.len(), 5);
    // Full jitter: each backoff lies in [0, min(20 s, 1 s × 2^(n-1))].
    for (n, sleep) in sleeps.iter().enumerate() {
        let cap = Duration::from_secs(1 << n).min(Duration::from_secs(20));
        assert!(*sleep <= cap, "backoff {n} was {sleep:?}, above {cap:?}");
    }
    assert!(
        sleeps.windows(2).any(|w| w[0] != w[1]),
        "jittered: {sleeps:?}"
    );
}

#[tokio::test]
async fn retries_stop_after_the_last_attempt_with_the_last_error() {
    let calls = Arc::new(AtomicUsize::new(0));
    let clock = Arc::new(Recording::default());
    let options = RetryOptions {
        max_attempts: 3,
        ..RetryOptions::default()
    };
    let store = retrying(failing_keys(10, throttled, calls.clone()), clock, options);
    let err = store
        .describe_key(&region(), &KeyRef::Arn(key()))
        .await
        .expect_err("still throttled");
    assert_eq!(err.kind(), ErrorKind::Throttled);
    assert_eq!(err.code(), Some("ThrottlingException"));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let spent = err.retries_exhausted().expect("the budget was spent");
    assert_eq!(spent.operation, "DescribeKey");
    assert_eq!(spent.resource, Some(key().to_string()));
    assert_eq!(spent.region, Some(region()));
    assert_eq!(spent.attempts, 3);
}

#[tokio::test]
async fn retries_stop_at_the_deadline() {
    let calls = Arc::new(AtomicUsize::new(0));
    let clock = Arc::new(Recording::default());
    let options = RetryOptions {
        max_attempts: 100,
        base_delay: Duration::from_secs(10),
        max_delay: Duration::from_secs(10),
        deadline: Duration::from_secs(30),
        ..RetryOptions::default()
    };
    let store = retrying(
        failing_keys(1000, throttled, calls.clone()),
        clock.clone(),
        options,
    );
    let err = store
        .describe_key(&region(), &KeyRef::Arn(key()))
        .await
        .expect_err("never succeeds");
    assert!(clock.now() <= Duration::from_secs(30), "{:?}", clock.now());
    assert!(calls.load(Ordering::SeqCst) >= 3);
    let spent = err.retries_exhausted().expect("the deadline was reached");
    assert_eq!(spent.attempts as usize, calls.load(Ordering::SeqCst));
    assert_eq!(spent.elapsed, clock.now());
}

#[tokio::test]
async fn a_transient_error_is_retried_for_a_read_but_not_for_create_key() {
    let calls = Arc::new(AtomicUsize::new(0));
    let store = retrying(
        failing_keys(1, internal, calls.clone()),
        Arc::new(Recording::default()),
        RetryOptions::default(),
    );
    store
        .describe_key(&region(), &KeyRef::Arn(key()))
        .await
        .expect("a read is retried after a 5xx");
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let calls = Arc::new(AtomicUsize::new(0));
    let store = retrying(
        failing_keys(1, internal, calls.clone()),
        Arc::new(Recording::default()),
        RetryOptions::default(),
    );
    let err = store
        .create_key(&region(), &CreateKeyRequest::default())
        .await
        .expect_err("CreateKey may have acted: a 5xx is not retried");
    assert_eq!(err.code(), Some("KMSInternalException"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(err.retries_exhausted().is_none(), "not retried: {err}");

    // Throttling is retried even for CreateKey: KMS refused before acting.
    let calls = Arc::new(AtomicUsize::new(0));
    let store = retrying(
        failing_keys(1, throttled, calls.clone()),
        Arc::new(Recording::default()),
        RetryOptions::default(),
    );
    store
        .create_key(&region(), &CreateKeyRequest::default())
        .await
        .expect("a throttled CreateKey is retried");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn errors_that_are_not_transient_are_never_retried() {
    let mut images = MockImageStore::new();
    images
        .expect_modify_launch_permission()
        .times(1)
        .returning(|_, _, _| -> Result<()> {
            Err(Error::service(
                ErrorKind::AccessDenied,
                "AuthFailure",
                "Not authorized",
            ))
        });
    let store = Retrying::new(
        Arc::new(MockKeyStore::new()),
        Arc::new(images),
        Arc::new(Recording::default()),
        RetryOptions::default(),
    );
    let err = store
        .modify_launch_permission(
            &region(),
            &"ami-0123456789abcdef0".parse().unwrap(),
            &PermissionChange::add(Vec::new()),
        )
        .await
        .expect_err("denied");
    assert_eq!(err.kind(), ErrorKind::AccessDenied);
    assert!(err.retries_exhausted().is_none(), "not retried: {err}");
}

/// Every call the layer gives up on names its operation, what it named
/// (when it named something) and its region, and the attempts made; the
/// message says them for people.
#[tokio::test]
async fn an_exhausted_call_names_its_operation_resource_and_attempts() {
    let image: amishare_core::ImageId = "ami-0123456789abcdef0".parse().unwrap();
    let instance: amishare_core::InstanceId = "i-0123456789abcdef0".parse().unwrap();
    let mut keys = MockKeyStore::new();
    keys.expect_create_key().returning(|_, _| Err(throttled()));
    keys.expect_get_key_policy().returning(|_| Err(throttled()));
    let mut images = MockImageStore::new();
    images
        .expect_describe_images()
        .returning(|_, _| Err(throttled()));
    images
        .expect_terminate_instances()
        .returning(|_, _| Err(throttled()));
    let store = Retrying::new(
        Arc::new(keys),
        Arc::new(images),
        Arc::new(Recording::default()),
        RetryOptions {
            max_attempts: 2,
            ..RetryOptions::default()
        },
    );
    let rows: Vec<(Error, &str, Option<String>, Option<Region>)> = vec![
        (
            store
                .create_key(&region(), &CreateKeyRequest::default())
                .await
                .unwrap_err(),
            "CreateKey",
            None,
            Some(region()),
        ),
        (
            store.get_key_policy(&key()).await.unwrap_err(),
            "GetKeyPolicy",
            Some(key().to_string()),
            None,
        ),
        (
            store
                .describe_images(
                    &region(),
                    &amishare_core::store::ImageQuery::ids([image.clone()]),
                )
                .await
                .unwrap_err(),
            "DescribeImages",
            Some(image.to_string()),
            Some(region()),
        ),
        (
            store
                .terminate_instances(&region(), std::slice::from_ref(&instance))
                .await
                .unwrap_err(),
            "TerminateInstances",
            Some(instance.to_string()),
            Some(region()),
        ),
    ];
    for (err, operation, resource, region) in rows {
        assert_eq!(err.kind(), ErrorKind::Throttled, "{operation}");
        let spent = err.retries_exhausted().expect(operation);
        assert_eq!(spent.operation, operation);
        assert_eq!(spent.resource, resource, "{operation}");
        assert_eq!(spent.region, region, "{operation}");
        assert_eq!(spent.attempts, 2, "{operation}");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("ThrottlingException: {spent}: Rate exceeded")),
            "{text}"
        );
        assert!(text.contains("2 attempts"), "{text}");
    }
}

/// Auto Scaling's writes repeat as safely as they are: a launch template
/// with a client token and the deletes after a 5xx, a group (refused with
/// `AlreadyExists` on a repeat) only when throttled.
#[tokio::test]
async fn auto_scaling_writes_are_retried_as_they_repeat() {
    use amishare_core::scaling::{
        GroupRequest, LaunchTemplate, LaunchTemplateRequest, MockScalingStore, ScalingStore,
    };
    let five_xx =
        || Error::service(ErrorKind::Service, "InternalFailure", "internal").with_retryable(true);
    let template_calls = Arc::new(AtomicUsize::new(0));
    let group_calls = Arc::new(AtomicUsize::new(0));
    let mut scaling = MockScalingStore::new();
    let counted = template_calls.clone();
    scaling
        .expect_create_launch_template()
        .returning(move |_, request| {
            if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(five_xx())
            } else {
                Ok(LaunchTemplate {
                    id: "lt-0123456789abcdef0".to_owned(),
                    name: request.name.clone(),
                    tags: Default::default(),
                })
            }
        });
    let counted = group_calls.clone();
    scaling
        .expect_create_auto_scaling_group()
        .returning(move |_, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            Err(five_xx())
        });
    let stores = Retrying::new(
        Arc::new(MockKeyStore::new()),
        Arc::new(MockImageStore::new()),
        Arc::new(Recording::default()),
        RetryOptions::default(),
    )
    .with_scaling(Arc::new(scaling));
    let template = LaunchTemplateRequest {
        name: "amishare-smoke".to_owned(),
        image: "ami-0123456789abcdef0".parse().unwrap(),
        instance_type: "t3.micro".to_owned(),
        tags: Default::default(),
        client_token: Some("amishare-smoke".to_owned()),
    };
    stores
        .create_launch_template(&region(), &template)
        .await
        .expect("a token makes the repeat safe");
    assert_eq!(template_calls.load(Ordering::SeqCst), 2);
    let group = GroupRequest {
        name: "amishare-smoke".to_owned(),
        launch_template: "amishare-smoke".to_owned(),
        min_size: 1,
        max_size: 1,
        desired_capacity: 1,
        availability_zones: vec!["eu-west-1a".to_owned()],
        subnets: None,
        service_linked_role: None,
        tags: Default::default(),
    };
    let err = stores
        .create_auto_scaling_group(&region(), &group)
        .await
        .expect_err("a 5xx may have made the group");
    assert_eq!(err.code(), Some("InternalFailure"));
    assert_eq!(group_calls.load(Ordering::SeqCst), 1, "not repeated");
    assert_eq!(stores.writes(), 2);

    // Without an Auto Scaling store, the calls say so.
    let bare = Retrying::new(
        Arc::new(MockKeyStore::new()),
        Arc::new(MockImageStore::new()),
        Arc::new(Recording::default()),
        RetryOptions::default(),
    );
    let err = bare
        .describe_auto_scaling_groups(&region(), &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
}
