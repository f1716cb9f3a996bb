//! The sharing flow against mocked stores: what it refuses before any call,
//! and how it waits.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use amishare_core::{
    AccountId, AliasName, BlockDevice, Caller, Clock, ErrorKind, Flow, Image, ImageId, ImageSource,
    ImageState, KeyArn, KeyChoice, KeyManager, KeyMetadata, KeyRef, KeyState, MockImageStore,
    MockKeyStore, Narrowing, PrincipalArn, Region, ShareRequest, Sharer, StateReason, Target,
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

fn request(key: KeyChoice) -> ShareRequest {
    ShareRequest {
        source: ImageSource::Image(ImageId::parse("ami-0123456789abcdef0").unwrap()),
        source_region: region(),
        regions: Vec::new(),
        key,
        targets: vec![Target::Account(AccountId::parse(TARGET).unwrap())],
        volume_permission: false,
        name: None,
        narrowing: Narrowing::default(),
    }
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
            ShareRequest {
                regions: vec![region(), Region::parse("us-east-1").unwrap()],
                ..request(KeyChoice::Use(
                    KeyRef::parse("1234abcd-12ab-34cd-56ef-1234567890ab").unwrap(),
                ))
            },
            ErrorKind::InvalidInput,
            "1234abcd-12ab-34cd-56ef-1234567890ab",
        ),
        (
            "owner as target",
            ShareRequest {
                targets: vec![Target::Account(AccountId::parse(OWNER).unwrap())],
                ..request(KeyChoice::Use(KeyRef::Arn(key_arn())))
            },
            ErrorKind::InvalidInput,
            OWNER,
        ),
        (
            "no target",
            ShareRequest {
                targets: Vec::new(),
                ..request(KeyChoice::Use(KeyRef::Arn(key_arn())))
            },
            ErrorKind::InvalidInput,
            "target",
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

/// A source image that goes `failed` ends the wait at once with EC2's reason, after backing off.
#[tokio::test]
async fn a_failed_image_ends_the_wait_with_its_reason() {
    let mut images = MockImageStore::new();
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
    let err = flow(owner_keys(), images, clock.clone())
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
    images
        .expect_describe_images()
        .returning(|_, _| Ok(vec![image(ImageState::Pending, None)]));
    let clock = Arc::new(CountingClock::default());
    let wait = amishare_core::WaitOptions {
        image_deadline: Duration::from_secs(600),
        ..Default::default()
    };
    let sharer = flow(owner_keys(), images, clock.clone()).with_wait(wait);
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

/// A copy that takes five minutes is polled far less often than by a fixed
/// 15-second waiter (21 polls), and seen at most one poll interval late.
#[tokio::test]
async fn backoff_polls_a_five_minute_copy_few_times() {
    let clock = Arc::new(CountingClock::default());
    let polls = Arc::new(AtomicU64::new(0));
    let (seen_clock, seen_polls) = (clock.clone(), polls.clone());
    let mut images = MockImageStore::new();
    images.expect_describe_images().returning(move |_, _| {
        seen_polls.fetch_add(1, Ordering::SeqCst);
        let ready = Duration::from_secs(300) <= seen_clock.now();
        Ok(vec![image(
            if ready {
                ImageState::Available
            } else {
                ImageState::Pending
            },
            None,
        )])
    });
    // The next step after the source image's wait fails, to end the flow there.
    let mut keys = owner_keys();
    keys.expect_describe_key().returning(|_, _| {
        Err(amishare_core::Error::new(
            ErrorKind::AccessDenied,
            "stop after the wait",
        ))
    });
    let err = flow(keys, images, clock.clone())
        .share(&request(KeyChoice::Use(KeyRef::Arn(key_arn()))))
        .await
        .unwrap_err();
    assert!(
        err.message().ends_with("stop after the wait"),
        "the wait itself succeeded: {err}"
    );
    let polls = polls.load(Ordering::SeqCst);
    assert!(polls <= 10, "{polls} polls for a five-minute copy");
    let late = clock.now() - Duration::from_secs(300);
    assert!(late <= Duration::from_secs(72), "seen {late:?} late");
}
