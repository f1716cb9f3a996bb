//! The sharing flow against mocked stores: what it refuses before any call,
//! and how it waits.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use amishare_core::store::{
    BlockDevice, Caller, Image, ImageState, KeyManager, KeyMetadata, KeyState, MockImageStore,
    MockKeyStore, Snapshot, SnapshotState, StateReason,
};
use amishare_core::{
    AccountId, AliasName, Clock, ErrorKind, Flow, ImageId, ImageSource, KeyArn, KeyChoice, KeyRef,
    PrincipalArn, Region, ShareRequest, Sharer, Target,
};

/// A clock that only counts: sleeping advances it at once.
#[derive(Debug, Default)]
struct CountingClock {
    now_ms: AtomicU64,
    sleeps: AtomicU64,
}

#[async_trait::async_trait]
impl Clock for CountingClock {
    fn now(&self) -> Duration {
        Duration::from_millis(self.now_ms.load(Ordering::SeqCst))
    }
    async fn sleep(&self, duration: Duration) {
        self.sleeps.fetch_add(1, Ordering::SeqCst);
        self.now_ms
            .fetch_add(duration.as_millis() as u64, Ordering::SeqCst);
    }
}

const OWNER: &str = "111111111111";
const TARGET: &str = "222222222222";

fn region() -> Region {
    Region::parse("ap-northeast-1").unwrap()
}

fn key_arn() -> KeyArn {
    KeyArn::parse(
        "arn:aws:kms:ap-northeast-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    )
    .unwrap()
}

fn owner_keys() -> MockKeyStore {
    let mut keys = MockKeyStore::new();
    keys.expect_caller().returning(|| {
        Ok(Caller {
            account: AccountId::parse(OWNER).unwrap(),
            arn: PrincipalArn::parse("arn:aws:iam::111111111111:role/Admin").unwrap(),
        })
    });
    keys
}

/// The owner's stores with an existing enabled key under KMS's default policy.
fn owner_keys_with_key() -> MockKeyStore {
    let mut keys = owner_keys();
    keys.expect_describe_key()
        .returning(|_, _| Ok(enabled_key()));
    keys.expect_get_key_policy()
        .returning(|_| Ok(amishare_policy::Policy::default_key_policy(OWNER).to_json()));
    keys
}

fn enabled_key() -> KeyMetadata {
    KeyMetadata {
        arn: key_arn(),
        state: KeyState::Enabled,
        manager: KeyManager::Customer,
        description: String::new(),
    }
}

fn request(key: KeyChoice) -> ShareRequest {
    ShareRequest::new(
        ImageSource::Image(ImageId::parse("ami-0123456789abcdef0").unwrap()),
        region(),
        key,
        [Target::Account(AccountId::parse(TARGET).unwrap())],
    )
}

/// The request, changed: a bad request's one difference from a good one.
fn changed(key: KeyChoice, change: impl FnOnce(&mut ShareRequest)) -> ShareRequest {
    let mut request = request(key);
    change(&mut request);
    request
}

fn flow(keys: MockKeyStore, images: MockImageStore, clock: Arc<CountingClock>) -> Flow {
    Flow::new(Arc::new(keys), Arc::new(images), clock)
}

/// Requests refused before any call but `caller`: a strict mock fails on any other call.
#[tokio::test]
async fn refuses_bad_requests_before_any_call() {
    let cases: Vec<(&str, ShareRequest, ErrorKind, &str)> = vec![
        (
            "aws/ebs alias",
            request(KeyChoice::Use(KeyRef::Alias(AliasName::aws_ebs()))),
            ErrorKind::Unsupported,
            "alias/aws/ebs",
        ),
        (
            "create under aws/",
            request(KeyChoice::Create(
                AliasName::parse("alias/aws/mine").unwrap(),
            )),
            ErrorKind::Unsupported,
            "alias/aws/mine",
        ),
        (
            "key of another region",
            request(KeyChoice::Use(
                KeyRef::parse(
                    "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                )
                .unwrap(),
            )),
            ErrorKind::InvalidInput,
            "eu-west-1",
        ),
        (
            "key ID with several regions",
            changed(
                KeyChoice::Use(KeyRef::parse("1234abcd-12ab-34cd-56ef-1234567890ab").unwrap()),
                |r| r.regions = vec![region(), Region::parse("us-east-1").unwrap()],
            ),
            ErrorKind::InvalidInput,
            "1234abcd-12ab-34cd-56ef-1234567890ab",
        ),
        (
            "owner as target",
            changed(KeyChoice::Use(KeyRef::Arn(key_arn())), |r| {
                r.targets = vec![Target::Account(AccountId::parse(OWNER).unwrap())]
            }),
            ErrorKind::InvalidInput,
            OWNER,
        ),
        (
            "no target",
            changed(KeyChoice::Use(KeyRef::Arn(key_arn())), |r| r.targets = Vec::new()),
            ErrorKind::InvalidInput,
            "target",
        ),
        (
            "principal of another partition",
            changed(KeyChoice::Use(KeyRef::Arn(key_arn())), |r| {
                r.targets = vec![Target::Principal(
                    PrincipalArn::parse("arn:aws-cn:iam::222222222222:user/b-user").unwrap(),
                )]
            }),
            ErrorKind::InvalidInput,
            "arn:aws-cn:iam::222222222222:user/b-user",
        ),
        (
            "region of another partition",
            changed(KeyChoice::Create(AliasName::parse("alias/x").unwrap()), |r| {
                r.regions = vec![region(), Region::parse("cn-north-1").unwrap()];
                r.targets = vec![Target::Principal(
                    PrincipalArn::parse("arn:aws:iam::222222222222:user/b-user").unwrap(),
                )];
            }),
            ErrorKind::InvalidInput,
            "cn-north-1",
        ),
        (
            "key of another partition",
            request(KeyChoice::Use(
                KeyRef::parse(
                    "arn:aws-us-gov:kms:ap-northeast-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                )
                .unwrap(),
            )),
            ErrorKind::InvalidInput,
            "aws-us-gov",
        ),
        (
            "a new key's policy over the size limit",
            changed(KeyChoice::Create(AliasName::parse("alias/x").unwrap()), |r| {
                r.targets = (0..600)
                    .map(|n| {
                        Target::Account(
                            AccountId::parse(&format!("{}", 300_000_000_000_u64 + n)).unwrap(),
                        )
                    })
                    .collect()
            }),
            ErrorKind::InvalidInput,
            "of the 600 targets fit",
        ),
    ];
    for (name, request, kind, named) in cases {
        let sharer = flow(owner_keys(), MockImageStore::new(), Arc::default());
        let err = sharer.share(&request).await.expect_err(name);
        assert_eq!(err.kind(), kind, "{name}: {err}");
        assert!(
            err.message().contains(named),
            "{name}: {err} does not name {named}"
        );
    }
}

fn image(state: ImageState, reason: Option<StateReason>) -> Image {
    Image {
        id: ImageId::parse("ami-0123456789abcdef0").unwrap(),
        owner: AccountId::parse(OWNER).unwrap(),
        name: "golden".to_owned(),
        state,
        state_reason: reason,
        failure_cause: None,
        public: false,
        block_devices: vec![BlockDevice {
            device_name: "/dev/xvda".to_owned(),
            snapshot_id: "snap-0123456789abcdef0".parse().unwrap(),
            volume_size: 8,
            volume_type: "gp3".to_owned(),
            encrypted: true,
        }],
        tags: BTreeMap::new(),
        source_image: None,
        source_region: None,
    }
}

/// The image's one snapshot, pending with this progress.
fn snapshot(progress: Option<u8>) -> Snapshot {
    Snapshot {
        id: "snap-0123456789abcdef0".parse().unwrap(),
        owner: AccountId::parse(OWNER).unwrap(),
        state: SnapshotState::Pending,
        state_message: None,
        volume_size: 8,
        encrypted: true,
        kms_key: Some(key_arn()),
        progress,
    }
}

/// Snapshots that report no progress, read once: the wait then backs off
/// without asking again.
fn no_progress(images: &mut MockImageStore) {
    images
        .expect_describe_snapshots()
        .times(1)
        .returning(|_, _| Ok(vec![snapshot(None)]));
}

/// A source image that goes `failed` ends the wait at once with EC2's reason, after backing off.
#[tokio::test]
async fn a_failed_image_ends_the_wait_with_its_reason() {
    let mut images = MockImageStore::new();
    no_progress(&mut images);
    let polls = Arc::new(AtomicU64::new(0));
    let seen = polls.clone();
    images.expect_describe_images().returning(move |_, _| {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        Ok(vec![if n < 5 {
            image(ImageState::Pending, None)
        } else {
            image(
                ImageState::Failed,
                Some(StateReason {
                    code: "Client.InternalError".to_owned(),
                    message: "Copy image failed".to_owned(),
                }),
            )
        }])
    });
    let clock = Arc::new(CountingClock::default());
    let err = flow(owner_keys_with_key(), images, clock.clone())
        .share(&request(KeyChoice::Use(KeyRef::Arn(key_arn()))))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert_eq!(err.code(), Some("Client.InternalError"));
    assert!(err.message().contains("Copy image failed"), "{err}");
    assert_eq!(polls.load(Ordering::SeqCst), 6);
    assert_eq!(clock.sleeps.load(Ordering::SeqCst), 5);
    // Backoff: five sleeps from 5 s growing by 1.5 (±20 %) take well over 5 × 5 s.
    assert!(
        Duration::from_secs(40) < clock.now(),
        "waited {:?}",
        clock.now()
    );
}

/// A wait that never ends hits its deadline with a timeout naming the image.
#[tokio::test]
async fn a_pending_image_times_out_at_the_deadline() {
    let mut images = MockImageStore::new();
    no_progress(&mut images);
    images
        .expect_describe_images()
        .returning(|_, _| Ok(vec![image(ImageState::Pending, None)]));
    let clock = Arc::new(CountingClock::default());
    let mut wait = amishare_core::WaitOptions::default();
    wait.image_deadline = Duration::from_secs(600);
    let sharer = flow(owner_keys_with_key(), images, clock.clone()).with_wait(wait);
    let err = sharer
        .share(&request(KeyChoice::Use(KeyRef::Arn(key_arn()))))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.message().contains("ami-0123456789abcdef0"), "{err}");
    assert_eq!(
        clock.now(),
        Duration::from_secs(600),
        "the last sleep stops at the deadline"
    );
    assert!(
        clock.sleeps.load(Ordering::SeqCst) < 20,
        "backoff keeps polls few"
    );
}

/// A customer alias that points at an AWS-managed key is still refused.
#[tokio::test]
async fn refuses_an_aws_managed_key_behind_any_name() {
    let mut keys = owner_keys();
    keys.expect_describe_key().returning(|_, _| {
        Ok(KeyMetadata {
            arn: key_arn(),
            state: KeyState::Enabled,
            manager: KeyManager::Aws,
            description: String::new(),
        })
    });
    let mut images = MockImageStore::new();
    images
        .expect_describe_images()
        .returning(|_, _| Ok(vec![image(ImageState::Available, None)]));
    let err = flow(keys, images, Arc::default())
        .share(&request(KeyChoice::Use(KeyRef::Alias(
            AliasName::parse("alias/golden").unwrap(),
        ))))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.message().contains(&key_arn().to_string()), "{err}");
}

/// An existing key whose policy, merged, would pass KMS's size limit is
/// refused after reading it and before any image call: a strict image mock
/// fails on any call.
#[tokio::test]
async fn refuses_an_existing_key_policy_that_would_grow_too_large() {
    let mut keys = owner_keys();
    keys.expect_describe_key()
        .returning(|_, _| Ok(enabled_key()));
    keys.expect_get_key_policy().returning(|_| {
        let mut policy = amishare_policy::Policy::default_key_policy(OWNER);
        policy.statements[0].sid = Some("x".repeat(32_300));
        Ok(policy.to_json())
    });
    let targets = (0..20)
        .map(|n| {
            Target::Account(AccountId::parse(&format!("{}", 300_000_000_000_u64 + n)).unwrap())
        })
        .collect();
    let err = flow(keys, MockImageStore::new(), Arc::default())
        .share(&{
            let mut request = request(KeyChoice::Use(KeyRef::Arn(key_arn())));
            request.targets = targets;
            request
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains("of the 20 targets fit"), "{err}");
    assert!(err.message().contains(&key_arn().to_string()), "{err}");
}

/// How a share's wait for a five-minute copy went.
struct Waited {
    /// `DescribeImages` calls.
    polls: u64,
    /// `DescribeSnapshots` calls.
    progress_reads: u64,
    /// How long after the copy was ready the wait saw it.
    late: Duration,
}

/// Waits, through a share, for a source image that is ready after five
/// minutes, its snapshot reporting `progress(now)`; the step after the wait
/// fails, to end the flow there.
async fn wait_for_five_minute_copy(
    progress: impl Fn(Duration) -> Option<u8> + Send + 'static,
) -> Waited {
    const COPY: Duration = Duration::from_secs(300);
    let clock = Arc::new(CountingClock::default());
    let polls = Arc::new(AtomicU64::new(0));
    let reads = Arc::new(AtomicU64::new(0));
    let (seen_clock, seen_polls) = (clock.clone(), polls.clone());
    let mut images = MockImageStore::new();
    images.expect_describe_images().returning(move |_, _| {
        seen_polls.fetch_add(1, Ordering::SeqCst);
        let ready = COPY <= seen_clock.now();
        Ok(vec![image(
            if ready {
                ImageState::Available
            } else {
                ImageState::Pending
            },
            None,
        )])
    });
    let (read_clock, seen_reads) = (clock.clone(), reads.clone());
    images.expect_describe_snapshots().returning(move |_, _| {
        seen_reads.fetch_add(1, Ordering::SeqCst);
        Ok(vec![snapshot(progress(read_clock.now()))])
    });
    // The key and its policy are read before the wait; the second read of
    // the policy, to merge it after the wait, fails and ends the flow there.
    let mut keys = owner_keys();
    keys.expect_describe_key()
        .returning(|_, _| Ok(enabled_key()));
    let policy_reads = AtomicU64::new(0);
    keys.expect_get_key_policy().returning(move |_| {
        if policy_reads.fetch_add(1, Ordering::SeqCst) == 0 {
            Ok(amishare_policy::Policy::default_key_policy(OWNER).to_json())
        } else {
            Err(amishare_core::Error::new(
                ErrorKind::AccessDenied,
                "stop after the wait",
            ))
        }
    });
    let err = flow(keys, images, clock.clone())
        .share(&request(KeyChoice::Use(KeyRef::Arn(key_arn()))))
        .await
        .unwrap_err();
    assert!(
        err.message().ends_with("stop after the wait"),
        "the wait itself succeeded: {err}"
    );
    Waited {
        polls: polls.load(Ordering::SeqCst),
        progress_reads: reads.load(Ordering::SeqCst),
        late: clock.now() - COPY,
    }
}

/// A fixed 15-second waiter polls a five-minute copy 21 times (at 0, 15, …, 300 s).
const FIXED_WAITER_POLLS: u64 = 21;

/// Without progress, a five-minute copy is polled far less often than by a
/// fixed 15-second waiter, and seen at most one (jittered) ceiling late.
#[tokio::test]
async fn backoff_polls_a_five_minute_copy_few_times() {
    let waited = wait_for_five_minute_copy(|_| None).await;
    assert!(waited.polls <= 10, "{} polls", waited.polls);
    assert_eq!(waited.progress_reads, 1, "asked once, then backed off");
    assert!(
        waited.late <= Duration::from_secs(72),
        "seen {:?} late",
        waited.late
    );
}

/// With EC2's progress (rounded down, as EC2 reports it), a five-minute copy
/// is seen within 5 % of its end, with fewer calls than a fixed 15-second
/// waiter makes polls.
#[tokio::test]
async fn progress_sees_a_five_minute_copy_end_with_few_polls() {
    let linear = |now: Duration| Some((now.as_secs() * 100 / 300).min(99) as u8);
    let waited = wait_for_five_minute_copy(linear).await;
    assert!(
        waited.late <= Duration::from_secs(15),
        "seen {:?} late",
        waited.late
    );
    assert!(
        waited.progress_reads < waited.polls,
        "progress is read only where it changes the next sleep"
    );
    let calls = waited.polls + waited.progress_reads;
    assert!(
        calls < FIXED_WAITER_POLLS,
        "{} polls and {} progress reads",
        waited.polls,
        waited.progress_reads
    );
    let backoff = wait_for_five_minute_copy(|_| None).await;
    assert!(waited.late < backoff.late, "{:?} late", waited.late);
}

/// Progress does not delay a failure: the poll that sees `failed` ends the wait.
#[tokio::test]
async fn a_failed_copy_ends_the_wait_although_progress_predicts_more() {
    let mut images = MockImageStore::new();
    let polls = Arc::new(AtomicU64::new(0));
    let seen = polls.clone();
    images.expect_describe_images().returning(move |_, _| {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        Ok(vec![if n < 2 {
            image(ImageState::Pending, None)
        } else {
            image(
                ImageState::Failed,
                Some(StateReason {
                    code: "Server.InternalError".to_owned(),
                    message: "Copy image failed".to_owned(),
                }),
            )
        }])
    });
    let reads = Arc::new(AtomicU64::new(0));
    let seen_reads = reads.clone();
    images.expect_describe_snapshots().returning(move |_, _| {
        let n = seen_reads.fetch_add(1, Ordering::SeqCst);
        Ok(vec![snapshot(Some(10 * (n as u8 + 1)))])
    });
    let err = flow(owner_keys_with_key(), images, Arc::default())
        .share(&request(KeyChoice::Use(KeyRef::Arn(key_arn()))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("Server.InternalError"));
    assert_eq!(polls.load(Ordering::SeqCst), 3);
    assert_eq!(reads.load(Ordering::SeqCst), 2, "read only while pending");
}
