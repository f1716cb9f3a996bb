//! The whole conformance suite, every capability on, through the SDK against
//! the served simulation (`amishare sim serve`'s server, in this process):
//! every KMS, EC2 and STS call goes over HTTP in the real wire protocols,
//! signed by the SDK with the world's secret access keys and checked by a
//! server that authenticates, as it does off loopback.
//!
//! Seeding (instances, the target's IAM policies, key states) goes straight
//! to the served world, as the simulation's own harness does; the doctor
//! reads the target's IAM policies from it too, since the server serves no
//! IAM API. Waits advance the world's clock instead of sleeping.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use amishare_conformance::{summary, Harness, Party, Ran, VolumeSeed};
use amishare_core::store::{CreateGrantRequest, CreateImageRequest, CreateKeyRequest, ImageQuery};
use amishare_serve::{ServeOptions, Server};
use amishare_sim::harness::{two_accounts, Parties, WorldHarness, OTHER_TARGET};
use amishare_sim::World;

use crate::conformance::party;
use crate::counting::Calls;
use crate::support::config;

const OWNER_KEY: &str = "AKIAOWNERADMIN000001";
const TARGET_KEY: &str = "AKIATARGETUSER000001";
const TARGET_ROOT_KEY: &str = "AKIATARGETROOT000001";
const OTHER_TARGET_KEY: &str = "AKIATARGETOTHER00001";

/// The secret access key of an access key of the served world.
fn secret(key: &str) -> String {
    format!("{key}/secret+EXAMPLEKEY")
}

/// A served world of the suite's two accounts, and the harness over it.
struct Served {
    harness: WorldHarness,
    endpoint: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Served {
    async fn start(seed: u64, calls: &Arc<Calls>) -> Served {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("world.json");
        let world = World::new(seed);
        let (owner, target) = two_accounts(&world).expect("the suite's accounts");
        let target_root = target.account().root_arn();
        let other = amishare_core::PrincipalArn::parse(OTHER_TARGET).expect("an ARN");
        for (key, principal) in [
            (OWNER_KEY, &owner),
            (TARGET_KEY, &target),
            (TARGET_ROOT_KEY, &target_root),
            (OTHER_TARGET_KEY, &other),
        ] {
            world.set_access_key(key, principal).expect("an access key");
            world
                .set_secret_access_key(key, &secret(key))
                .expect("its secret");
        }
        world.save(&path).expect("the world file");
        let listen: SocketAddr = "127.0.0.1:0".parse().expect("an address");
        let server = Server::bind(ServeOptions {
            time_scale: 1.0,
            authenticate: true,
            ..ServeOptions::new(&path, listen)
        })
        .await
        .expect("the server binds");
        let endpoint = format!("http://{}", server.local_addr());
        let world = server.world();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            server
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .expect("the server stops cleanly");
        });
        let connect = |key: &'static str| {
            let endpoint = endpoint.clone();
            let calls = calls.clone();
            async move { party(&config(&endpoint, key, &secret(key)).await, &calls).await }
        };
        let parties = Parties {
            owner: connect(OWNER_KEY).await,
            target: connect(TARGET_KEY).await,
            target_admin: connect(TARGET_ROOT_KEY).await,
            other_target: Some(connect(OTHER_TARGET_KEY).await),
        };
        let clock = Arc::new(world.stepping_clock());
        Served {
            harness: WorldHarness::new(world, parties, clock),
            endpoint,
            stop: Some(stop),
            server,
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.server.await.expect("the server task");
    }
}

fn principal(party: &Party) -> String {
    party.principal.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_suite_function_passes_through_the_sdk_against_the_served_simulation() {
    let calls = Arc::new(Calls::default());
    let mut outcomes = Vec::new();
    for (seed, function) in (1..).zip(amishare_conformance::all()) {
        let served = Served::start(seed, &calls).await;
        let h = &served.harness;
        assert_eq!(
            principal(&h.owner()),
            "arn:aws:iam::111111111111:user/a-admin"
        );
        assert_eq!(
            principal(&h.target()),
            "arn:aws:iam::222222222222:user/b-user"
        );
        let outcome = amishare_conformance::run(&function, h).await;
        assert_eq!(
            outcome.ran,
            Ran::Full,
            "{outcome}: every function runs in full through the SDK"
        );
        outcomes.push(outcome);
        served.stop().await;
    }
    // Straight to stderr, so that a passing run shows it too.
    let _ = writeln!(
        std::io::stderr(),
        "{}",
        summary("the served simulation, through the SDK", &outcomes, false)
    );
    leftover_methods(&calls).await;
    // Every store method went over the wire at least once.

    assert_eq!(calls.missing(), Vec::<&str>::new(), "{}", calls.report());
}

/// What the suite never calls: grants made and revoked by hand, and an image
/// deregistered with its snapshot deleted afterwards.
async fn leftover_methods(calls: &Arc<Calls>) {
    let served = Served::start(1000, calls).await;
    let h = &served.harness;
    let (owner, target, region) = (h.owner(), h.target(), h.region());
    let key = owner
        .keys
        .create_key(&region, &CreateKeyRequest::default())
        .await
        .expect("CreateKey")
        .arn;
    let grant = owner
        .keys
        .create_grant(
            &key,
            &CreateGrantRequest {
                grantee: target.principal.clone(),
                operations: vec!["Decrypt".to_owned()],
                name: Some("by-hand".to_owned()),
                retiring_principal: None,
            },
        )
        .await
        .expect("CreateGrant");
    let listed = owner.keys.list_grants(&key).await.expect("ListGrants");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, grant);
    assert_eq!(listed[0].grantee, target.principal.to_string());
    assert_eq!(listed[0].operations, ["Decrypt"]);
    owner
        .keys
        .revoke_grant(&key, &grant)
        .await
        .expect("RevokeGrant");
    assert!(owner
        .keys
        .list_grants(&key)
        .await
        .expect("ListGrants")
        .is_empty());

    let instance = h
        .seed_instance(&[VolumeSeed::Unencrypted])
        .await
        .expect("an instance");
    let image = owner
        .images
        .create_image(
            &region,
            &CreateImageRequest {
                instance,
                name: "by-hand".to_owned(),
                tags: Default::default(),
            },
        )
        .await
        .expect("CreateImage");
    h.clock().sleep(Duration::from_secs(600)).await;
    let found = owner
        .images
        .describe_images(&region, &ImageQuery::ids([image.clone()]))
        .await
        .expect("DescribeImages");
    let snapshot = found[0].block_devices[0].snapshot_id.clone();
    let in_use = owner.images.delete_snapshot(&region, &snapshot).await;
    assert_eq!(
        in_use.expect_err("in use").code(),
        Some("InvalidSnapshot.InUse")
    );
    owner
        .images
        .deregister_image(&region, &image, false)
        .await
        .expect("DeregisterImage");
    owner
        .images
        .delete_snapshot(&region, &snapshot)
        .await
        .expect("DeleteSnapshot once the image is gone");
    served.stop().await;
}

/// Every item of a KMS list the SDK's paginator walks, as `field` reads it.
macro_rules! every_item {
    ($request:expr, $what:literal, $field:expr) => {
        $request
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .expect($what)
            .into_iter()
            .filter_map($field)
            .collect::<Vec<String>>()
    };
}

/// The SDK's paginators walk every KMS list of the served simulation a few
/// items a page, and find every item exactly once (`docs/spec/kms.md` §A8).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_paginators_walk_every_served_kms_list() {
    let calls = Arc::new(Calls::default());
    let served = Served::start(2000, &calls).await;
    let h = &served.harness;
    let (owner, target, region) = (h.owner(), h.target(), h.region());
    let mut keys = Vec::new();
    for n in 0..3 {
        let key = owner
            .keys
            .create_key(&region, &CreateKeyRequest::default())
            .await
            .expect("CreateKey")
            .arn;
        let alias = amishare_core::AliasName::parse(&format!("alias/paged-{n}")).expect("a name");
        owner
            .keys
            .create_alias(&region, &alias, key.key_id())
            .await
            .expect("CreateAlias");
        keys.push(key);
    }
    let mut grants = Vec::new();
    for name in ["one", "two", "three", "four", "five"] {
        let grant = owner
            .keys
            .create_grant(
                &keys[0],
                &CreateGrantRequest {
                    grantee: target.principal.clone(),
                    operations: vec!["Decrypt".to_owned()],
                    name: Some(name.to_owned()),
                    retiring_principal: Some(owner.principal.clone()),
                },
            )
            .await
            .expect("CreateGrant");
        grants.push(grant.as_str().to_owned());
    }
    grants.sort();
    let kms =
        aws_sdk_kms::Client::new(&config(&served.endpoint, OWNER_KEY, &secret(OWNER_KEY)).await);

    let pages: Vec<_> = kms
        .list_grants()
        .key_id(keys[0].to_string())
        .limit(2)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("ListGrants, page by page");
    assert_eq!(pages.len(), 3, "five grants, two a page");
    let mut listed: Vec<String> = pages
        .iter()
        .flat_map(|page| page.grants())
        .filter_map(|grant| grant.grant_id().map(str::to_owned))
        .collect();
    listed.sort();
    assert_eq!(listed, grants);

    let mut retirable = every_item!(
        kms.list_retirable_grants()
            .retiring_principal(owner.principal.to_string())
            .limit(1),
        "ListRetirableGrants, page by page",
        |grant| grant.grant_id().map(str::to_owned)
    );
    retirable.sort();
    assert_eq!(retirable, grants);

    let listed_keys = every_item!(kms.list_keys().limit(1), "ListKeys, page by page", |key| {
        key.key_arn().map(str::to_owned)
    });
    for key in &keys {
        let times = listed_keys
            .iter()
            .filter(|arn| **arn == key.to_string())
            .count();
        assert_eq!(times, 1, "{key} in {listed_keys:?}");
    }

    let mut aliases = every_item!(
        kms.list_aliases().limit(1),
        "ListAliases, page by page",
        |alias| alias.alias_name().map(str::to_owned)
    );
    aliases.retain(|name| name.starts_with("alias/paged-"));
    aliases.sort();
    assert_eq!(aliases, ["alias/paged-0", "alias/paged-1", "alias/paged-2"]);

    let bad = kms
        .list_keys()
        .marker("not-a-marker")
        .send()
        .await
        .expect_err("a marker the server never gave");
    assert!(
        bad.as_service_error()
            .is_some_and(|err| err.is_invalid_marker_exception()),
        "{bad:?}"
    );
    served.stop().await;
}
