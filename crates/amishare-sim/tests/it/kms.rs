//! KMS: identifiers across accounts and regions, key states, policies,
//! aliases and grants.

use amishare_core::store::{CreateGrantRequest, CreateKeyRequest, KeyManager, KeyState, KeyStore};
use amishare_core::{AliasArn, AliasName, ErrorKind, KeyArn, KeyRef, PrincipalArn};
use amishare_sim::{Knobs, PendingDeletionError, World};

use crate::fixture::{account, assert_error, region, seed_key_policy, Fx, A, B, OTHER_REGION};

fn grant_request(
    grantee: &PrincipalArn,
    operations: &[&str],
    name: Option<&str>,
) -> CreateGrantRequest {
    CreateGrantRequest {
        grantee: grantee.clone(),
        operations: operations.iter().map(|op| op.to_string()).collect(),
        name: name.map(str::to_owned),
        retiring_principal: None,
    }
}

#[tokio::test(start_paused = true)]
async fn key_ids_and_alias_names_resolve_in_the_callers_own_account_only() {
    let fx = Fx::new();
    let key = fx.shared_cmk(&[&format!("arn:aws:iam::{B}:root")]).await;
    let alias = AliasName::parse("alias/shared").unwrap();
    fx.owner
        .create_alias(&fx.region, &alias, key.key_id())
        .await
        .unwrap();
    let target = fx.world.root_client(&fx.b).unwrap();

    // A bare key ID names a key of the caller's account: not found, shown as the caller's ARN.
    let err = assert_error(
        target
            .describe_key(&fx.region, &KeyRef::Id(key.key_id().clone()))
            .await,
        "NotFoundException",
        "",
    );
    assert_eq!(
        err.message(),
        format!(
            "Key 'arn:aws:kms:{}:{B}:key/{}' does not exist",
            fx.region,
            key.key_id()
        )
    );
    assert_eq!(err.kind(), ErrorKind::NotFound);
    // So does an alias name.
    let err = assert_error(
        target
            .describe_key(&fx.region, &KeyRef::Alias(alias.clone()))
            .await,
        "NotFoundException",
        "",
    );
    assert_eq!(
        err.message(),
        format!(
            "Alias arn:aws:kms:{}:{B}:alias/shared is not found.",
            fx.region
        )
    );
    // The key ARN and the alias ARN work across accounts.
    let by_arn = target
        .describe_key(&fx.region, &KeyRef::Arn(key.clone()))
        .await
        .unwrap();
    assert_eq!(by_arn.arn, key);
    let alias_arn = AliasArn::new(fx.region.clone(), fx.a.clone(), alias.clone());
    assert_eq!(
        target
            .describe_key(&fx.region, &KeyRef::AliasArn(alias_arn))
            .await
            .unwrap()
            .arn,
        key
    );
    // The owner can use all four forms.
    for form in [
        KeyRef::Id(key.key_id().clone()),
        KeyRef::Alias(alias),
        KeyRef::Arn(key.clone()),
    ] {
        assert_eq!(
            fx.owner.describe_key(&fx.region, &form).await.unwrap().arn,
            key
        );
    }
}

#[tokio::test(start_paused = true)]
async fn key_arns_of_another_region_or_unknown_keys_are_not_found() {
    let fx = Fx::new();
    let key = fx.cmk().await;
    let err = assert_error(
        fx.owner
            .describe_key(&region(OTHER_REGION), &KeyRef::Arn(key.clone()))
            .await,
        "NotFoundException",
        "",
    );
    assert_eq!(
        err.message(),
        format!("Invalid arn {REGION}", REGION = fx.region)
    );
    let unknown = KeyArn::parse(&format!(
        "arn:aws:kms:{}:{A}:key/00000000-0000-4000-8000-000000000000",
        fx.region
    ))
    .unwrap();
    let err = assert_error(
        fx.owner
            .describe_key(&fx.region, &KeyRef::Arn(unknown.clone()))
            .await,
        "NotFoundException",
        "",
    );
    assert_eq!(err.message(), format!("Key '{unknown}' does not exist"));
    assert_error(
        fx.owner.get_key_policy(&unknown).await,
        "NotFoundException",
        unknown.key_id().as_str(),
    );
}

#[tokio::test(start_paused = true)]
async fn cross_account_access_needs_both_policies() {
    let fx = Fx::new();
    let key = fx.shared_cmk(&[&format!("arn:aws:iam::{B}:root")]).await;
    // B's user without an IAM allow: denied, and the message says which policy is missing.
    let (_, bare) = fx.target_user("bare", None);
    let err = assert_error(
        bare.describe_key(&fx.region, &KeyRef::Arn(key.clone()))
            .await,
        "AccessDeniedException",
        "kms:DescribeKey",
    );
    assert!(
        err.message()
            .contains("because no identity-based policy allows"),
        "{}",
        err.message()
    );
    assert_eq!(err.kind(), ErrorKind::AccessDenied);
    // With it: allowed.
    let (_, allowed) = fx.target_user("allowed", Some(&key));
    allowed
        .describe_key(&fx.region, &KeyRef::Arn(key.clone()))
        .await
        .unwrap();
    // B's root needs no IAM policy of its own.
    fx.world
        .root_client(&fx.b)
        .unwrap()
        .describe_key(&fx.region, &KeyRef::Arn(key.clone()))
        .await
        .unwrap();
    // A key policy that does not name B: denied by the key policy.
    let private = fx.cmk().await;
    let (_, other) = fx.target_user("other", Some(&private));
    let err = assert_error(
        other
            .describe_key(&fx.region, &KeyRef::Arn(private.clone()))
            .await,
        "AccessDeniedException",
        "",
    );
    assert!(
        err.message()
            .contains("because no resource-based policy allows the kms:DescribeKey action"),
        "{}",
        err.message()
    );
    // Key policy operations are never allowed across accounts.
    let target = fx.world.root_client(&fx.b).unwrap();
    assert_error(
        target.get_key_policy(&key).await,
        "AccessDeniedException",
        "kms:GetKeyPolicy",
    );
    assert_error(
        target.put_key_policy(&key, &seed_key_policy(B, &[])).await,
        "AccessDeniedException",
        "kms:PutKeyPolicy",
    );
}

#[tokio::test(start_paused = true)]
async fn direct_create_grant_does_not_satisfy_grant_is_for_aws_resource() {
    let fx = Fx::new();
    let (bob_arn, _) = fx.target_user("placeholder", None);
    let key = fx.shared_cmk(&[bob_arn.as_str()]).await;
    fx.world
        .set_identity_policies(
            &bob_arn,
            &[
                crate::fixture::EC2_ALL,
                &crate::fixture::kms_use_policy(&key),
            ],
        )
        .unwrap();
    let bob = fx.client(&bob_arn);
    let err = assert_error(
        bob.create_grant(&key, &grant_request(&bob_arn, &["Decrypt"], None))
            .await,
        "AccessDeniedException",
        "kms:CreateGrant",
    );
    assert!(err.message().contains(bob_arn.as_str()));
    assert_error(
        bob.list_grants(&key).await,
        "AccessDeniedException",
        "kms:ListGrants",
    );
    // The owner (kms:* through its root) may.
    let grant = fx
        .owner
        .create_grant(&key, &grant_request(&bob_arn, &["Decrypt"], None))
        .await
        .unwrap();
    assert_eq!(grant.as_str().len(), 64);
}

#[tokio::test(start_paused = true)]
async fn grants_allow_operations_and_are_idempotent_by_name() {
    let fx = Fx::new();
    let key = fx.cmk().await;
    let (bob_arn, bob) = fx.target_user("bob", Some(&key));
    // The key policy does not name B: DescribeKey is denied…
    assert_error(
        bob.describe_key(&fx.region, &KeyRef::Arn(key.clone()))
            .await,
        "AccessDeniedException",
        "",
    );
    // …until the owner grants it.
    let request = grant_request(&bob_arn, &["DescribeKey", "Decrypt"], Some("amishare-bob"));
    let first = fx.owner.create_grant(&key, &request).await.unwrap();
    bob.describe_key(&fx.region, &KeyRef::Arn(key.clone()))
        .await
        .unwrap();
    // Same name and parameters: the same grant.
    assert_eq!(fx.owner.create_grant(&key, &request).await.unwrap(), first);
    // Same name, other parameters: a new grant.
    let other = fx
        .owner
        .create_grant(
            &key,
            &grant_request(&bob_arn, &["Decrypt"], Some("amishare-bob")),
        )
        .await
        .unwrap();
    assert_ne!(other, first);
    let grants = fx.owner.list_grants(&key).await.unwrap();
    assert_eq!(
        grants.iter().map(|g| g.id.clone()).collect::<Vec<_>>(),
        vec![first.clone(), other.clone()]
    );
    assert_eq!(grants[0].name.as_deref(), Some("amishare-bob"));
    assert_eq!(grants[0].grantee, bob_arn.as_str());
    assert_eq!(
        grants[0].operations,
        vec!["DescribeKey".to_owned(), "Decrypt".to_owned()]
    );
    assert_eq!(grants[0].issuing_account, fx.a);

    fx.owner.revoke_grant(&key, &first).await.unwrap();
    assert_error(
        bob.describe_key(&fx.region, &KeyRef::Arn(key.clone()))
            .await,
        "AccessDeniedException",
        "",
    );
    let err = assert_error(
        fx.owner.revoke_grant(&key, &first).await,
        "NotFoundException",
        first.as_str(),
    );
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(fx.owner.list_grants(&key).await.unwrap().len(), 1);

    // Grant requests are validated.
    assert_error(
        fx.owner
            .create_grant(&key, &grant_request(&bob_arn, &[], None))
            .await,
        "ValidationException",
        "",
    );
    assert_error(
        fx.owner
            .create_grant(&key, &grant_request(&bob_arn, &["Sign"], None))
            .await,
        "ValidationException",
        "Sign",
    );
}

#[tokio::test(start_paused = true)]
async fn grants_can_take_time_to_propagate() {
    let world = World::new(1);
    world.set_knobs(Knobs {
        grant_propagation_delay: crate::fixture::secs(300),
        ..Knobs::default()
    });
    let a = account(A);
    let b = account(B);
    let r = region(crate::fixture::REGION);
    world.add_account(&a).unwrap();
    world.add_account(&b).unwrap();
    let owner = world.root_client(&a).unwrap();
    let key = owner
        .create_key(&r, &CreateKeyRequest::default())
        .await
        .unwrap()
        .arn;
    let target = world.root_client(&b).unwrap();
    owner
        .create_grant(&key, &grant_request(&b.root_arn(), &["DescribeKey"], None))
        .await
        .unwrap();
    assert_error(
        target.describe_key(&r, &KeyRef::Arn(key.clone())).await,
        "AccessDeniedException",
        "",
    );
    world.advance(crate::fixture::secs(300));
    target
        .describe_key(&r, &KeyRef::Arn(key.clone()))
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn key_states() {
    let fx = Fx::new();
    let key = fx.cmk().await;
    let grantee = fx.b.root_arn();
    fx.world.set_key_state(&key, KeyState::Disabled).unwrap();
    // Metadata and policy operations work in every state.
    assert_eq!(
        fx.owner
            .describe_key(&fx.region, &KeyRef::Arn(key.clone()))
            .await
            .unwrap()
            .state,
        KeyState::Disabled
    );
    fx.owner.get_key_policy(&key).await.unwrap();
    fx.owner.list_grants(&key).await.unwrap();
    let err = assert_error(
        fx.owner
            .create_grant(&key, &grant_request(&grantee, &["Decrypt"], None))
            .await,
        "DisabledException",
        "",
    );
    assert_eq!(err.message(), format!("{key} is disabled."));
    assert_eq!(err.kind(), ErrorKind::InvalidKeyState);

    fx.world
        .set_key_state(&key, KeyState::PendingDeletion)
        .unwrap();
    let err = assert_error(
        fx.owner
            .create_grant(&key, &grant_request(&grantee, &["Decrypt"], None))
            .await,
        "KMSInvalidStateException",
        "",
    );
    assert_eq!(err.message(), format!("{key} is pending deletion."));
    assert_error(
        fx.owner
            .create_alias(
                &fx.region,
                &AliasName::parse("alias/late").unwrap(),
                key.key_id(),
            )
            .await,
        "KMSInvalidStateException",
        "pending deletion",
    );
    // The pending-deletion exception is a knob.
    fx.world.set_knobs(Knobs {
        pending_deletion_error: PendingDeletionError::Disabled,
        ..Knobs::default()
    });
    let err = assert_error(
        fx.owner
            .create_grant(&key, &grant_request(&grantee, &["Decrypt"], None))
            .await,
        "DisabledException",
        "",
    );
    assert_eq!(err.message(), format!("{key} is pending deletion."));

    fx.world.set_key_state(&key, KeyState::Enabled).unwrap();
    fx.owner
        .create_grant(&key, &grant_request(&grantee, &["Decrypt"], None))
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn create_key_validates_its_policy() {
    let fx = Fx::new();
    let create = |policy: String| CreateKeyRequest {
        policy: Some(policy),
        ..Default::default()
    };

    let err = assert_error(
        fx.owner
            .create_key(&fx.region, &create("{not json".into()))
            .await,
        "MalformedPolicyDocumentException",
        "",
    );
    assert_eq!(err.kind(), ErrorKind::InvalidInput);

    let padding = "x".repeat(amishare_policy::MAX_POLICY_BYTES);
    let big = seed_key_policy(A, &[]).replacen("key-consolepolicy-3", &padding, 1);
    assert_error(
        fx.owner.create_key(&fx.region, &create(big)).await,
        "LimitExceededException",
        "32768",
    );

    let ghost = format!("arn:aws:iam::{B}:user/ghost");
    let err = assert_error(
        fx.owner
            .create_key(&fx.region, &create(seed_key_policy(A, &[&ghost])))
            .await,
        "MalformedPolicyDocumentException",
        "",
    );
    assert_eq!(
        err.message(),
        "Policy contains a statement with one or more invalid principals."
    );
    // An account root is accepted even for an account the world does not know.
    fx.owner
        .create_key(
            &fx.region,
            &create(seed_key_policy(A, &["arn:aws:iam::999999999999:root"])),
        )
        .await
        .unwrap();
    // An existing user is accepted.
    let (bob, _) = fx.target_user("bob", None);
    fx.owner
        .create_key(&fx.region, &create(seed_key_policy(A, &[bob.as_str()])))
        .await
        .unwrap();

    // A policy that locks the caller out.
    let lockout = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{B}:root"}},"Action":"kms:Decrypt","Resource":"*"}}]}}"#
    );
    let err = assert_error(
        fx.owner
            .create_key(&fx.region, &create(lockout.clone()))
            .await,
        "MalformedPolicyDocumentException",
        "",
    );
    assert_eq!(
        err.message(),
        "The new key policy will not allow you to update the key policy in the future."
    );
    let key = fx.cmk().await;
    assert_error(
        fx.owner.put_key_policy(&key, &lockout).await,
        "MalformedPolicyDocumentException",
        "update the key policy",
    );
    assert!(fx
        .owner
        .get_key_policy(&key)
        .await
        .unwrap()
        .contains("key-default-1"));

    // A principal without an IAM allow for kms:CreateKey cannot create keys.
    let (_, bob_client) = fx.target_user("carol", None);
    assert_error(
        bob_client
            .create_key(&fx.region, &CreateKeyRequest::default())
            .await,
        "AccessDeniedException",
        "kms:CreateKey",
    );
}

#[tokio::test(start_paused = true)]
async fn put_key_policy_round_trips_the_document() {
    let fx = Fx::new();
    let key = fx.cmk().await;
    let text = seed_key_policy(A, &[&format!("arn:aws:iam::{B}:root")]);
    fx.owner.put_key_policy(&key, &text).await.unwrap();
    assert_eq!(fx.owner.get_key_policy(&key).await.unwrap(), text);
}

#[tokio::test(start_paused = true)]
async fn the_aws_managed_ebs_key() {
    let fx = Fx::new();
    let ebs = fx
        .owner
        .describe_key(&fx.region, &KeyRef::Alias(AliasName::aws_ebs()))
        .await
        .unwrap();
    assert_eq!(ebs.manager, KeyManager::Aws);
    assert_eq!(ebs.arn.account(), &fx.a);
    // Created once per account and region.
    assert_eq!(fx.world.aws_ebs_key(&fx.a, &fx.region).unwrap(), ebs.arn);
    assert_ne!(fx.world.aws_ebs_key(&fx.b, &fx.region).unwrap(), ebs.arn);
    let policy = fx.owner.get_key_policy(&ebs.arn).await.unwrap();
    assert!(
        policy.contains("auto-ebs-2")
            && policy.contains(&format!("ec2.{}.amazonaws.com", fx.region)),
        "{policy}"
    );
    // Its policy grants nobody kms:PutKeyPolicy or kms:CreateAlias.
    assert_error(
        fx.owner
            .put_key_policy(&ebs.arn, &seed_key_policy(A, &[]))
            .await,
        "AccessDeniedException",
        "kms:PutKeyPolicy",
    );
    assert_error(
        fx.owner
            .create_alias(
                &fx.region,
                &AliasName::parse("alias/ebs").unwrap(),
                ebs.arn.key_id(),
            )
            .await,
        "AccessDeniedException",
        "kms:CreateAlias",
    );
    // It cannot be used directly, only through EC2.
    assert_error(
        fx.owner
            .create_grant(
                &ebs.arn,
                &grant_request(&fx.b.root_arn(), &["Decrypt"], None),
            )
            .await,
        "AccessDeniedException",
        "kms:CreateGrant",
    );
}

#[tokio::test(start_paused = true)]
async fn aliases() {
    let fx = Fx::new();
    let key = fx.cmk().await;
    let alias = AliasName::parse("alias/Cross-AMI").unwrap();
    fx.owner
        .create_alias(&fx.region, &alias, key.key_id())
        .await
        .unwrap();
    let err = assert_error(
        fx.owner
            .create_alias(&fx.region, &alias, key.key_id())
            .await,
        "AlreadyExistsException",
        "",
    );
    assert_eq!(
        err.message(),
        format!(
            "An alias with the name arn:aws:kms:{}:{A}:alias/Cross-AMI already exists",
            fx.region
        )
    );
    assert_eq!(err.kind(), ErrorKind::Conflict);
    // The same name is free in another region.
    let west = region(OTHER_REGION);
    let west_key = fx
        .owner
        .create_key(&west, &CreateKeyRequest::default())
        .await
        .unwrap()
        .arn;
    fx.owner
        .create_alias(&west, &alias, west_key.key_id())
        .await
        .unwrap();
    assert_eq!(
        fx.owner
            .describe_key(&west, &KeyRef::Alias(alias.clone()))
            .await
            .unwrap()
            .arn,
        west_key
    );
    // The alias/aws/ namespace is reserved (code is a knob).
    let err = assert_error(
        fx.owner
            .create_alias(
                &fx.region,
                &AliasName::parse("alias/aws/mine").unwrap(),
                key.key_id(),
            )
            .await,
        "NotAuthorizedException",
        "alias/aws/mine",
    );
    assert_eq!(err.kind(), ErrorKind::AccessDenied);
    // Another account's key cannot get an alias here (IDs are the caller's own).
    let target = fx.world.root_client(&fx.b).unwrap();
    assert_error(
        target
            .create_alias(
                &fx.region,
                &AliasName::parse("alias/theirs").unwrap(),
                key.key_id(),
            )
            .await,
        "NotFoundException",
        "",
    );
}
