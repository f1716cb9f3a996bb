//! KMS key administration (`docs/spec/kms.md` §A3, §A7): state changes as a
//! table, who may make them, tags, aliases, and the state a world file keeps.

use std::collections::BTreeMap;
use std::time::Duration;

use amishare_core::store::{KeyState, KeyStore};
use amishare_core::{AliasName, KeyRef};
use amishare_sim::{SimClient, World};

use crate::fixture::{assert_error, Fx};

/// One administration call.
#[derive(Debug, Clone, Copy)]
enum Op {
    Enable,
    Disable,
    Schedule(u32),
    Cancel,
    Tag,
    Untag,
}

async fn run(client: &SimClient, fx: &Fx, key: &KeyRef, op: Op) -> amishare_core::Result<()> {
    let region = &fx.region;
    match op {
        Op::Enable => client.enable_key(region, key).await,
        Op::Disable => client.disable_key(region, key).await,
        Op::Schedule(days) => client
            .schedule_key_deletion(region, key, Some(days))
            .await
            .map(drop),
        Op::Cancel => client.cancel_key_deletion(region, key).await.map(drop),
        Op::Tag => {
            let tags = BTreeMap::from([("team".to_owned(), "platform".to_owned())]);
            client.tag_resource(region, key, &tags).await
        }
        Op::Untag => {
            client
                .untag_resource(region, key, &["team".to_owned()])
                .await
        }
    }
}

use KeyState::{Disabled, Enabled, PendingDeletion};

/// (state before, call, state after or the error code KMS answers).
const TRANSITIONS: &[(KeyState, Op, Result<KeyState, &str>)] = &[
    (Enabled, Op::Enable, Ok(Enabled)),
    (Disabled, Op::Enable, Ok(Enabled)),
    (PendingDeletion, Op::Enable, Err("KMSInvalidStateException")),
    (Enabled, Op::Disable, Ok(Disabled)),
    (Disabled, Op::Disable, Ok(Disabled)),
    (
        PendingDeletion,
        Op::Disable,
        Err("KMSInvalidStateException"),
    ),
    (Enabled, Op::Schedule(7), Ok(PendingDeletion)),
    (Disabled, Op::Schedule(30), Ok(PendingDeletion)),
    (
        PendingDeletion,
        Op::Schedule(7),
        Err("KMSInvalidStateException"),
    ),
    (Enabled, Op::Schedule(6), Err("ValidationException")),
    (Enabled, Op::Schedule(31), Err("ValidationException")),
    (Enabled, Op::Cancel, Err("KMSInvalidStateException")),
    (Disabled, Op::Cancel, Err("KMSInvalidStateException")),
    (PendingDeletion, Op::Cancel, Ok(Disabled)),
    (Enabled, Op::Tag, Ok(Enabled)),
    (Disabled, Op::Tag, Ok(Disabled)),
    (PendingDeletion, Op::Tag, Err("KMSInvalidStateException")),
    (Disabled, Op::Untag, Ok(Disabled)),
    (PendingDeletion, Op::Untag, Err("KMSInvalidStateException")),
];

#[tokio::test(start_paused = true)]
async fn key_states_change_as_kms_changes_them() {
    for &(before, op, expected) in TRANSITIONS {
        let fx = Fx::new();
        let arn = fx.cmk().await;
        let key = KeyRef::Arn(arn.clone());
        // Reach the state through the calls themselves.
        match before {
            Enabled => {}
            Disabled => fx.owner.disable_key(&fx.region, &key).await.unwrap(),
            PendingDeletion => {
                fx.owner
                    .schedule_key_deletion(&fx.region, &key, None)
                    .await
                    .unwrap();
            }
        }
        let row = format!("{op:?} on a key {before}");
        let result = run(&fx.owner, &fx, &key, op).await;
        let after = fx.owner.describe_key(&fx.region, &key).await.unwrap().state;
        match expected {
            Ok(state) => {
                result.unwrap_or_else(|err| panic!("{row}: {err}"));
                assert_eq!(after, state, "{row}");
            }
            Err(code) => {
                assert_error(result, code, "");
                assert_eq!(after, before, "{row}: a refused call changes nothing");
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn scheduling_a_deletion_answers_its_date_and_a_world_file_keeps_it() {
    let fx = Fx::new();
    fx.advance(100);
    let arn = fx.cmk().await;
    let key = KeyRef::Arn(arn.clone());
    let default = fx
        .owner
        .schedule_key_deletion(&fx.region, &key, None)
        .await
        .unwrap();
    assert_eq!(default.window_days, 30, "30 days when none is given");
    assert_eq!(default.key, arn);
    assert_eq!(
        default.deletion_at,
        Some(Duration::from_secs(100 + 30 * 86_400)),
        "the end of the waiting period, on the virtual clock"
    );
    let saved = fx.world.to_file().to_json();
    assert!(saved.contains("\"deletion_at_ms\""), "{saved}");
    let reloaded = World::from_file(&fx.world.to_file()).unwrap();
    assert_eq!(
        reloaded.to_file(),
        fx.world.to_file(),
        "the world file round-trips"
    );
    // Cancelling clears the date: the file no longer holds one.
    fx.owner
        .cancel_key_deletion(&fx.region, &key)
        .await
        .unwrap();
    assert!(!fx.world.to_file().to_json().contains("deletion_at_ms"));
}

#[tokio::test(start_paused = true)]
async fn only_the_keys_account_administers_it() {
    let fx = Fx::new();
    let arn = fx.shared_cmk(&[&fx.b.root_arn().to_string()]).await;
    let key = KeyRef::Arn(arn.clone());
    // B may use the key (its policy and B's IAM policy allow that) but not
    // administer it: these actions do not work across accounts.
    let (_, target) = fx.target_user("bob", Some(&arn));
    for op in [
        Op::Disable,
        Op::Enable,
        Op::Schedule(7),
        Op::Cancel,
        Op::Tag,
        Op::Untag,
    ] {
        assert_error(
            run(&target, &fx, &key, op).await,
            "AccessDeniedException",
            "",
        );
    }
    // A user of A whose IAM policy allows nothing of KMS is refused too.
    let nobody = fx.world.add_user(&fx.a, "nobody", &[]).unwrap();
    let nobody = fx.client(&nobody);
    assert_error(
        run(&nobody, &fx, &key, Op::Disable).await,
        "AccessDeniedException",
        "",
    );
    assert_eq!(
        fx.owner.describe_key(&fx.region, &key).await.unwrap().state,
        Enabled
    );
}

#[tokio::test(start_paused = true)]
async fn tags_and_aliases() {
    let fx = Fx::new();
    let first = fx.cmk().await;
    let second = fx.cmk().await;
    let key = KeyRef::Arn(first.clone());
    let tags = BTreeMap::from([
        ("team".to_owned(), "platform".to_owned()),
        ("tier".to_owned(), "gold".to_owned()),
    ]);
    fx.owner
        .tag_resource(&fx.region, &key, &tags)
        .await
        .unwrap();
    fx.owner
        .untag_resource(&fx.region, &key, &["tier".to_owned(), "absent".to_owned()])
        .await
        .unwrap();
    assert_eq!(
        fx.owner.list_resource_tags(&first).await.unwrap(),
        BTreeMap::from([("team".to_owned(), "platform".to_owned())])
    );
    let too_many: BTreeMap<String, String> =
        (0..50).map(|n| (format!("k{n}"), String::new())).collect();
    assert_error(
        fx.owner.tag_resource(&fx.region, &key, &too_many).await,
        "TagException",
        "",
    );

    let alias = AliasName::parse("alias/golden").unwrap();
    fx.owner
        .create_alias(&fx.region, &alias, first.key_id())
        .await
        .unwrap();
    fx.owner
        .update_alias(&fx.region, &alias, &KeyRef::Arn(second.clone()))
        .await
        .unwrap();
    let listed = fx.owner.list_aliases(&fx.region, None).await.unwrap();
    let golden: Vec<_> = listed.iter().filter(|a| a.arn.alias() == &alias).collect();
    assert_eq!(golden.len(), 1);
    assert_eq!(&golden[0].target, second.key_id());
    assert!(fx
        .owner
        .list_aliases(&fx.region, Some(&key))
        .await
        .unwrap()
        .is_empty());
    // A key pending deletion takes no alias, but its alias can be deleted.
    fx.owner
        .schedule_key_deletion(&fx.region, &KeyRef::Arn(second.clone()), Some(7))
        .await
        .unwrap();
    assert_error(
        fx.owner
            .update_alias(&fx.region, &alias, &KeyRef::Arn(second.clone()))
            .await,
        "KMSInvalidStateException",
        "",
    );
    fx.owner.delete_alias(&fx.region, &alias).await.unwrap();
    assert_error(
        fx.owner.delete_alias(&fx.region, &alias).await,
        "NotFoundException",
        "",
    );
    assert_error(
        fx.owner
            .delete_alias(&fx.region, &AliasName::aws_ebs())
            .await,
        "NotAuthorizedException",
        "",
    );
}
