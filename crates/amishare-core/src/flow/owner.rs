//! The owner side: key, key policy, encrypted copy, the snapshot-key gate,
//! permissions, and taking them back.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, ErrorKind, Result};
use crate::flow::request::{grantees_in, target_accounts};
use crate::flow::{
    aws_managed_refusal, copies_query, policy_text, usable, Flow, ImageSource, Journal, Kept,
    KeyChoice, KeyPolicyReport, PolicyWrite, RegionImage, RegionShare, ShareRequest, Start, Target,
    UnshareRequest, LAUNCH_PERMISSION_BATCH, TAG_ALIAS, TAG_KEY, TAG_SOURCE_IMAGE,
    TAG_SOURCE_INSTANCE,
};
use crate::hash::fnv1a;
use crate::id::{
    AccountId, AliasName, ImageId, ImageName, InstanceId, KeyArn, KeyRef, PrincipalArn, Region,
    SnapshotId,
};
use crate::model::{
    Caller, CopyImageRequest, CreateImageRequest, CreateKeyRequest, Image, ImageOwner, ImageQuery,
    KeyManager, KeyMetadata, KeyState, LaunchPermission, PermissionChange, VolumePermission,
};
use crate::retry::settled;
use crate::scaling::ServiceLinkedRole;

impl Flow {
    /// The source image, available, created from the instance if the source is one.
    pub(super) async fn resolve_source(
        &self,
        request: &ShareRequest,
        caller: &Caller,
        journal: &Journal,
    ) -> Result<Image> {
        let region = &request.source_region;
        let (id, start) = match &request.source {
            ImageSource::Image(id) => (id.clone(), Start::Unknown),
            ImageSource::Instance(instance) => {
                self.image_instance(region, instance, caller, journal)
                    .await?
            }
        };
        let image = self.wait_image(region, &id, start, None).await?;
        if image.owner != caller.account {
            return Err(Error::new(
                ErrorKind::AccessDenied,
                format!(
                    "image {id} is owned by {}, not by {}: only the owner can share it",
                    image.owner, caller.account
                ),
            ));
        }
        journal.record(
            Some(region),
            "source-image",
            &image.id,
            format!("{} ({})", image.name, image.state),
            false,
        );
        Ok(image)
    }

    /// Images an instance, or finds the image an earlier run made from it.
    pub(super) async fn image_instance(
        &self,
        region: &Region,
        instance: &InstanceId,
        caller: &Caller,
        journal: &Journal,
    ) -> Result<(ImageId, Start)> {
        let query = ImageQuery {
            owners: vec![ImageOwner::Me],
            tags: BTreeMap::from([(TAG_SOURCE_INSTANCE.to_owned(), vec![instance.to_string()])]),
            ..ImageQuery::default()
        };
        let existing = self.images().describe_images(region, &query).await?;
        if let Some(image) = existing
            .into_iter()
            .find(|i| usable(i.state) && query.matches(i, &caller.account))
        {
            journal.record(
                Some(region),
                "create-image",
                &image.id,
                format!("found the image made earlier from {instance}"),
                false,
            );
            return Ok((image.id.clone(), Start::Seen(Box::new(image))));
        }
        let found = self
            .images()
            .describe_instances(region, std::slice::from_ref(instance))
            .await?;
        let Some(found) = found.into_iter().next() else {
            return Err(Error::service(
                ErrorKind::NotFound,
                "InvalidInstanceID.NotFound",
                format!("The instance ID '{instance}' does not exist"),
            ));
        };
        if found.owner != caller.account {
            return Err(Error::new(
                ErrorKind::AccessDenied,
                format!("instance {instance} is not owned by {}", caller.account),
            ));
        }
        let name = format!("amishare-{instance}");
        let made = self
            .images()
            .create_image(
                region,
                &CreateImageRequest {
                    instance: instance.clone(),
                    name: name.clone(),
                    tags: BTreeMap::from([(TAG_SOURCE_INSTANCE.to_owned(), instance.to_string())]),
                },
            )
            .await;
        let id = match made {
            Ok(id) => id,
            // The name is amishare's: a repeat whose first answer was lost,
            // or an image not yet visible to the lookup above. Adopt it.
            Err(err) if err.code() == Some("InvalidAMIName.Duplicate") => {
                let image = settled(&*self.clock, &self.retry(), || async {
                    let found = self.images().describe_images(region, &query).await?;
                    found
                        .into_iter()
                        .find(|i| usable(i.state) && query.matches(i, &caller.account))
                        .ok_or_else(|| {
                            Error::new(
                                ErrorKind::NotFound,
                                format!("no image tagged {TAG_SOURCE_INSTANCE}={instance}"),
                            )
                        })
                })
                .await
                .map_err(|_| err)?;
                journal.record(
                    Some(region),
                    "create-image",
                    &image.id,
                    format!("found the image made from {instance} under the name {name}"),
                    false,
                );
                return Ok((image.id.clone(), Start::Seen(Box::new(image))));
            }
            Err(err) => return Err(err),
        };
        journal.record(
            Some(region),
            "create-image",
            &id,
            format!("{name} from {instance}"),
            true,
        );
        Ok((id, Start::Created))
    }

    /// What a share finds of its key in `region` before it changes
    /// anything, checked: the key is customer-managed and enabled, and the
    /// key policy it gets (merged into the current one, or the one a new key
    /// is created with) fits KMS's size limit and keeps the caller's
    /// `kms:PutKeyPolicy`. Reads only, so a refusal here changes nothing.
    pub(super) async fn look_for_key(
        &self,
        request: &ShareRequest,
        caller: &Caller,
        region: &Region,
    ) -> Result<KeyFound> {
        let found = match &request.key {
            KeyChoice::Use(key) => KeyFound::Existing(
                self.keys()
                    .describe_key(region, key)
                    .await
                    .map_err(|e| e.context(format!("key {key} in {region}")))?,
            ),
            KeyChoice::Create(alias) => {
                match self
                    .keys()
                    .describe_key(region, &KeyRef::Alias(alias.clone()))
                    .await
                {
                    Ok(meta) => KeyFound::Existing(meta),
                    Err(err) if err.kind() == ErrorKind::NotFound => {
                        match self.find_unnamed(region, alias).await? {
                            Some(meta) => KeyFound::Unnamed(meta),
                            None => KeyFound::Missing(alias.clone()),
                        }
                    }
                    Err(err) => return Err(err),
                }
            }
        };
        match &found {
            KeyFound::Existing(meta) | KeyFound::Unnamed(meta) => {
                if meta.manager == KeyManager::Aws {
                    return Err(aws_managed_refusal(&meta.arn.to_string()));
                }
                if meta.state != KeyState::Enabled {
                    return Err(Error::new(
                        ErrorKind::InvalidKeyState,
                        format!(
                            "key {} is {}: targets could not use it",
                            meta.arn, meta.state
                        ),
                    ));
                }
                let text = self.keys().get_key_policy(&meta.arn).await?;
                merged_policy(request, caller, &meta.arn, region, &text)?;
            }
            KeyFound::Missing(_) => {
                request.new_key_policy(caller.account.as_str(), caller.arn.as_str(), region)?;
            }
        }
        Ok(found)
    }

    pub(super) async fn share_in_region(
        &self,
        request: &ShareRequest,
        caller: &Caller,
        source: &Image,
        region: &Region,
        found: KeyFound,
        journal: &Journal,
    ) -> Result<RegionShare> {
        let (key, key_policy) = match found {
            KeyFound::Existing(meta) => {
                let policy = self
                    .merge_key_policy(request, caller, &meta.arn, region, journal)
                    .await?;
                (meta, policy)
            }
            KeyFound::Unnamed(meta) => {
                self.name_unnamed(key_alias(request), &meta, journal)
                    .await?;
                let policy = self
                    .merge_key_policy(request, caller, &meta.arn, region, journal)
                    .await?;
                (meta, policy)
            }
            KeyFound::Missing(alias) => {
                match self
                    .create_named_key(request, caller, region, &alias, journal)
                    .await?
                {
                    (meta, Some(policy)) => (meta, policy),
                    (meta, None) => {
                        let policy = self
                            .merge_key_policy(request, caller, &meta.arn, region, journal)
                            .await?;
                        (meta, policy)
                    }
                }
            }
        };
        journal.record(
            Some(region),
            "resolve-key",
            &key.arn,
            "customer-managed, enabled",
            false,
        );
        let image = self
            .encrypted_copy(request, source, &key.arn, region, journal)
            .await?;
        let snapshots = self
            .verify_snapshots(region, &image, &key.arn, journal)
            .await?;
        let launch_permissions = self
            .grant_launch(request, region, &image.id, journal)
            .await?;
        if request.volume_permission {
            self.grant_volumes(request, region, snapshots.keys(), journal)
                .await?;
        }
        Ok(RegionShare {
            region: region.clone(),
            key: key.arn,
            key_policy,
            image: image.id,
            snapshots,
            launch_permissions,
        })
    }

    /// Creates the key for `alias` with the targets' statements in its
    /// policy and names it; the second value is the policy it was created
    /// with, or `None` when an earlier attempt had made it. A `CreateKey`
    /// that fails with a transient error may have made the key all the
    /// same, so before each new attempt the key is looked for by its tag.
    async fn create_named_key(
        &self,
        request: &ShareRequest,
        caller: &Caller,
        region: &Region,
        alias: &AliasName,
        journal: &Journal,
    ) -> Result<(KeyMetadata, Option<KeyPolicyReport>)> {
        let policy =
            request.new_key_policy(caller.account.as_str(), caller.arn.as_str(), region)?;
        let create = CreateKeyRequest {
            description: format!("amishare: encrypts AMIs shared with other accounts ({alias})"),
            policy: Some(policy_text(&policy)),
            tags: BTreeMap::from([(TAG_ALIAS.to_owned(), alias.to_string())]),
        };
        let options = self.retry();
        let mut attempt = 1;
        let meta = loop {
            match self.keys().create_key(region, &create).await {
                Ok(meta) => break meta,
                Err(err) if err.is_retryable() && attempt < options.max_attempts => {
                    self.clock
                        .sleep(options.base_delay.saturating_mul(1 << attempt.min(5)))
                        .await;
                    if let Some(meta) = self.find_unnamed(region, alias).await? {
                        self.name_unnamed(Some(alias), &meta, journal).await?;
                        return Ok((meta, None));
                    }
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        };
        journal.record(
            Some(region),
            "create-key",
            &meta.arn,
            "symmetric customer-managed key",
            true,
        );
        let who: Vec<String> = request.targets.iter().map(ToString::to_string).collect();
        let mut detail = format!("created allowing {}", who.join(", "));
        if !request.service_roles.is_empty() {
            let roles: Vec<String> = request.service_roles.iter().map(|r| r.name()).collect();
            detail.push_str(&format!(
                "; their accounts may grant their {} the key",
                roles.join(", ")
            ));
        }
        journal.record(Some(region), "key-policy", &meta.arn, detail, false);
        self.name_key(region, alias, &meta).await?;
        journal.record(
            Some(region),
            "create-alias",
            alias,
            format!("→ {}", meta.arn),
            true,
        );
        Ok((
            meta,
            Some(KeyPolicyReport::of(PolicyWrite::Created, &policy)),
        ))
    }

    /// A key an earlier run created for `alias` but stopped before naming,
    /// found by its `amishare:alias` tag. Reads only.
    async fn find_unnamed(
        &self,
        region: &Region,
        alias: &AliasName,
    ) -> Result<Option<KeyMetadata>> {
        let Some(mut keys) = self.keys().list_keys(region).await? else {
            return Ok(None);
        };
        keys.sort_by_key(ToString::to_string);
        for key in keys {
            let tags = match self.keys().list_resource_tags(&key).await {
                Ok(tags) => tags,
                // Keys whose tags the caller may not read (AWS-managed ones
                // among them) are not amishare's.
                Err(err) if matches!(err.kind(), ErrorKind::AccessDenied | ErrorKind::NotFound) => {
                    continue
                }
                Err(err) => return Err(err),
            };
            if tags.get(TAG_ALIAS).map(String::as_str) != Some(alias.as_str()) {
                continue;
            }
            let meta = self
                .keys()
                .describe_key(region, &KeyRef::Arn(key.clone()))
                .await?;
            if meta.state == KeyState::Enabled && meta.manager == KeyManager::Customer {
                return Ok(Some(meta));
            }
        }
        Ok(None)
    }

    /// Names the key an earlier run created for the alias but did not name;
    /// its policy is then merged like any existing key's.
    async fn name_unnamed(
        &self,
        alias: Option<&AliasName>,
        meta: &KeyMetadata,
        journal: &Journal,
    ) -> Result<()> {
        let Some(alias) = alias else {
            return Ok(());
        };
        let region = meta.arn.region();
        self.name_key(region, alias, meta).await?;
        journal.record(
            Some(region),
            "create-alias",
            alias,
            format!("→ {} (created earlier for the alias)", meta.arn),
            true,
        );
        Ok(())
    }

    /// Points `alias` at the key just created. KMS may not show a new key
    /// at once, so "not found" is retried for a while; an alias that exists
    /// already is accepted when it points at this key (a repeat of a call
    /// whose answer was lost made it).
    async fn name_key(&self, region: &Region, alias: &AliasName, meta: &KeyMetadata) -> Result<()> {
        let options = self.retry();
        let made = settled(&*self.clock, &options, || {
            self.keys().create_alias(region, alias, meta.key_id())
        })
        .await;
        match made {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == ErrorKind::Conflict => {
                let by_alias = KeyRef::Alias(alias.clone());
                let points = settled(&*self.clock, &options, || {
                    self.keys().describe_key(region, &by_alias)
                })
                .await?;
                if points.arn == meta.arn {
                    Ok(())
                } else {
                    Err(err.context(format!(
                        "alias {alias} was made for {} while amishare created {}",
                        points.arn, meta.arn
                    )))
                }
            }
            Err(err) => Err(err),
        }
    }

    /// Adds the targets to amishare's statements in the key policy, writing only if it changed.
    pub(super) async fn merge_key_policy(
        &self,
        request: &ShareRequest,
        caller: &Caller,
        key: &KeyArn,
        region: &Region,
        journal: &Journal,
    ) -> Result<KeyPolicyReport> {
        let text = self.keys().get_key_policy(key).await?;
        let merged = merged_policy(request, caller, key, region, &text)?;
        if !merged.changed {
            journal.record(
                Some(region),
                "key-policy",
                key,
                "already allows the targets",
                false,
            );
            return Ok(KeyPolicyReport::of(PolicyWrite::Unchanged, &merged.policy));
        }
        self.keys()
            .put_key_policy(key, &policy_text(&merged.policy))
            .await?;
        let who: Vec<String> = request.targets.iter().map(ToString::to_string).collect();
        journal.record(
            Some(region),
            "key-policy",
            key,
            format!("allows {}", who.join(", ")),
            true,
        );
        Ok(KeyPolicyReport::of(PolicyWrite::Merged, &merged.policy))
    }

    /// The image to share in `region`: the source itself when it is already
    /// encrypted with the key there, else a copy (found from an earlier run, or made now).
    pub(super) async fn encrypted_copy(
        &self,
        request: &ShareRequest,
        source: &Image,
        key: &KeyArn,
        region: &Region,
        journal: &Journal,
    ) -> Result<Image> {
        if *region == request.source_region && self.all_snapshots_use(region, source, key).await? {
            journal.record(
                Some(region),
                "copy-image",
                &source.id,
                format!("already encrypted with {key}: no copy needed"),
                false,
            );
            return Ok(source.clone());
        }
        let query = copies_query(Some(&source.id), Some(key));
        // The source is the caller's own (checked when it was resolved).
        if let Some(image) = self
            .earlier_copy(region, &query, &source.owner, &source.id, journal)
            .await?
        {
            journal.record(Some(region), "wait-image", &image.id, "available", false);
            return Ok(image);
        }
        let name = match &request.name {
            Some(name) => name.clone(),
            None => ImageName::with_suffix(&source.name, "-shared")?,
        };
        let token = format!(
            "amishare-{:016x}",
            fnv1a(&format!(
                "{}|{}|{region}|{key}",
                source.id, request.source_region
            ))
        );
        let copy = CopyImageRequest {
            source_image: source.id.clone(),
            source_region: request.source_region.clone(),
            name: name.to_string(),
            encrypted: Some(true),
            kms_key: Some(KeyRef::Arn(key.clone())),
            client_token: Some(token),
            tags: BTreeMap::from([
                (TAG_SOURCE_IMAGE.to_owned(), source.id.to_string()),
                (TAG_KEY.to_owned(), key.to_string()),
            ]),
        };
        let detail = format!("{name}: copy of {} encrypted with {key}", source.id);
        let image = self.copy_and_wait(region, copy, journal, &detail).await?;
        journal.record(Some(region), "wait-image", &image.id, "available", false);
        Ok(image)
    }

    pub(super) async fn all_snapshots_use(
        &self,
        region: &Region,
        image: &Image,
        key: &KeyArn,
    ) -> Result<bool> {
        let ids: Vec<SnapshotId> = image
            .block_devices
            .iter()
            .map(|d| d.snapshot_id.clone())
            .collect();
        if ids.is_empty() {
            return Ok(false);
        }
        let snapshots = self.images().describe_snapshots(region, &ids).await?;
        Ok(snapshots.len() == ids.len()
            && snapshots
                .iter()
                .all(|s| s.encrypted && s.kms_key.as_ref() == Some(key)))
    }

    /// The hard gate: every EBS snapshot behind the image must be encrypted with exactly `key`.
    pub(super) async fn verify_snapshots(
        &self,
        region: &Region,
        image: &Image,
        key: &KeyArn,
        journal: &Journal,
    ) -> Result<BTreeMap<SnapshotId, KeyArn>> {
        let ids: Vec<SnapshotId> = image
            .block_devices
            .iter()
            .map(|d| d.snapshot_id.clone())
            .collect();
        if ids.is_empty() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "image {} has no EBS snapshots: there is nothing encrypted to share",
                    image.id
                ),
            ));
        }
        let snapshots = self.images().describe_snapshots(region, &ids).await?;
        let mut verified = BTreeMap::new();
        let mut wrong = Vec::new();
        for id in &ids {
            match snapshots.iter().find(|s| &s.id == id) {
                Some(s) if s.encrypted && s.kms_key.as_ref() == Some(key) => {
                    verified.insert(id.clone(), key.clone());
                }
                Some(s) if !s.encrypted => wrong.push(format!("{id} is not encrypted")),
                Some(s) => wrong.push(format!(
                    "{id} is encrypted with {}",
                    s.kms_key
                        .as_ref()
                        .map_or("an unknown key".to_owned(), ToString::to_string)
                )),
                None => wrong.push(format!("{id} was not found")),
            }
        }
        if !wrong.is_empty() {
            return Err(Error::new(
                ErrorKind::Failed,
                format!(
                    "refusing to share image {} in {region}: every snapshot must be encrypted with {key}, but {}",
                    image.id,
                    wrong.join("; ")
                ),
            ));
        }
        journal.record(
            Some(region),
            "verify-snapshots",
            &image.id,
            format!("{} snapshot(s) encrypted with {key}", verified.len()),
            false,
        );
        Ok(verified)
    }

    /// Adds the launch permissions that are missing, in batches.
    pub(super) async fn grant_launch(
        &self,
        request: &ShareRequest,
        region: &Region,
        image: &ImageId,
        journal: &Journal,
    ) -> Result<Vec<LaunchPermission>> {
        let current: BTreeSet<LaunchPermission> = self
            .images()
            .describe_launch_permission(region, image)
            .await?
            .into_iter()
            .collect();
        let wanted: BTreeSet<LaunchPermission> = request
            .targets
            .iter()
            .map(Target::launch_permission)
            .collect();
        let missing: Vec<LaunchPermission> = wanted.difference(&current).cloned().collect();
        if missing.is_empty() {
            journal.record(
                Some(region),
                "launch-permission",
                image,
                "every target can already launch it",
                false,
            );
            return Ok(current.into_iter().collect());
        }
        for batch in missing.chunks(LAUNCH_PERMISSION_BATCH) {
            self.images()
                .modify_launch_permission(region, image, &PermissionChange::add(batch.to_vec()))
                .await?;
            let who: Vec<String> = batch.iter().map(ToString::to_string).collect();
            journal.record(
                Some(region),
                "launch-permission",
                image,
                format!("added {}", who.join(", ")),
                true,
            );
        }
        Ok(current
            .into_iter()
            .chain(missing)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect())
    }

    /// Adds the create-volume permissions that are missing on each snapshot.
    pub(super) async fn grant_volumes<'a>(
        &self,
        request: &ShareRequest,
        region: &Region,
        snapshots: impl Iterator<Item = &'a SnapshotId>,
        journal: &Journal,
    ) -> Result<()> {
        let accounts = target_accounts(&request.targets);
        for snapshot in snapshots {
            let current = self
                .images()
                .describe_create_volume_permission(region, snapshot)
                .await?;
            let missing: Vec<VolumePermission> = accounts
                .iter()
                .map(|a| VolumePermission::Account(a.clone()))
                .filter(|p| !current.contains(p))
                .collect();
            if missing.is_empty() {
                journal.record(
                    Some(region),
                    "volume-permission",
                    snapshot,
                    "every target account can already copy it",
                    false,
                );
                continue;
            }
            let who: Vec<String> = missing
                .iter()
                .map(|p| match p {
                    VolumePermission::Account(a) => a.to_string(),
                    VolumePermission::Public => "everyone".to_owned(),
                })
                .collect();
            self.images()
                .modify_create_volume_permission(region, snapshot, &PermissionChange::add(missing))
                .await?;
            journal.record(
                Some(region),
                "volume-permission",
                snapshot,
                format!("added {}", who.join(", ")),
                true,
            );
        }
        Ok(())
    }

    pub(super) async fn unshare_in_region(
        &self,
        request: &UnshareRequest,
        caller: &Caller,
        shared: &RegionImage,
        journal: &Journal,
    ) -> Result<Vec<Kept>> {
        let region = &shared.region;
        let found = self
            .images()
            .describe_images(region, &ImageQuery::ids([shared.image.clone()]))
            .await?;
        let Some(image) = found.into_iter().next() else {
            return Err(Error::service(
                ErrorKind::NotFound,
                "InvalidAMIID.NotFound",
                format!("The image id '[{}]' does not exist", shared.image),
            ));
        };
        if image.owner != caller.account {
            return Err(Error::new(
                ErrorKind::AccessDenied,
                format!(
                    "image {} is owned by {}, not by {}",
                    image.id, image.owner, caller.account
                ),
            ));
        }
        let ids: Vec<SnapshotId> = image
            .block_devices
            .iter()
            .map(|d| d.snapshot_id.clone())
            .collect();
        let snapshots = self.images().describe_snapshots(region, &ids).await?;

        // Each key policy without the targets, read before anything changes:
        // who it still names decides which accounts keep their permissions.
        let keys: BTreeSet<KeyArn> = snapshots.iter().filter_map(|s| s.kms_key.clone()).collect();
        let grantees = grantees_in(&request.targets, region);
        let mut policies = Vec::new();
        let mut still_named: BTreeSet<String> = BTreeSet::new();
        for key in &keys {
            let meta = self
                .keys()
                .describe_key(region, &KeyRef::Arn(key.clone()))
                .await?;
            if meta.manager == KeyManager::Aws {
                continue;
            }
            let text = self.keys().get_key_policy(key).await?;
            let policy = amishare_policy::Policy::parse(&text)
                .map_err(|e| Error::from(e).context(format!("key policy of {key}")))?;
            let removed =
                amishare_policy::remove(&policy, &grantees, &request.narrowing.for_region(region));
            still_named.extend(amishare_policy::amishare_principals(&removed.policy));
            policies.push((key.clone(), removed));
        }
        let accounts = target_accounts(&request.targets);
        let mut kept = Vec::new();
        for account in &accounts {
            let named: Vec<String> = still_named
                .iter()
                .filter(|p| {
                    PrincipalArn::parse(p).is_ok_and(|principal| principal.account() == account)
                })
                .cloned()
                .collect();
            if named.is_empty() {
                continue;
            }
            journal.record(
                Some(region),
                "keep-permissions",
                &image.id,
                format!(
                    "account {account} keeps its launch and create-volume permissions: amishare's key-policy statements still name {}",
                    named.join(", ")
                ),
                false,
            );
            kept.push(Kept {
                region: region.clone(),
                image: image.id.clone(),
                account: account.clone(),
                named,
            });
        }
        let keeps = |account: &AccountId| kept.iter().any(|k| &k.account == account);

        let current: BTreeSet<LaunchPermission> = self
            .images()
            .describe_launch_permission(region, &image.id)
            .await?
            .into_iter()
            .collect();
        let remove: Vec<LaunchPermission> = request
            .targets
            .iter()
            .filter(|t| !t.account().is_some_and(keeps))
            .map(Target::launch_permission)
            .filter(|p| current.contains(p))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if remove.is_empty() {
            journal.record(
                Some(region),
                "launch-permission",
                &image.id,
                "no launch permission to remove",
                false,
            );
        } else {
            let who: Vec<String> = remove.iter().map(ToString::to_string).collect();
            self.images()
                .modify_launch_permission(region, &image.id, &PermissionChange::remove(remove))
                .await?;
            journal.record(
                Some(region),
                "launch-permission",
                &image.id,
                format!("removed {}", who.join(", ")),
                true,
            );
        }

        for snapshot in &snapshots {
            let current = self
                .images()
                .describe_create_volume_permission(region, &snapshot.id)
                .await?;
            let remove: Vec<VolumePermission> = accounts
                .iter()
                .filter(|a| !keeps(a))
                .map(|a| VolumePermission::Account(a.clone()))
                .filter(|p| current.contains(p))
                .collect();
            if remove.is_empty() {
                continue;
            }
            self.images()
                .modify_create_volume_permission(
                    region,
                    &snapshot.id,
                    &PermissionChange::remove(remove),
                )
                .await?;
            journal.record(
                Some(region),
                "volume-permission",
                &snapshot.id,
                "removed the targets",
                true,
            );
        }

        for (key, _) in &policies {
            self.revoke_role_grants(region, key, &accounts, &kept, journal)
                .await?;
        }

        for (key, removed) in policies {
            if removed.changed {
                self.keys()
                    .put_key_policy(&key, &policy_text(&removed.policy))
                    .await?;
                journal.record(
                    Some(region),
                    "key-policy",
                    &key,
                    "removed the targets from amishare's statements",
                    true,
                );
            } else {
                journal.record(
                    Some(region),
                    "key-policy",
                    &key,
                    "amishare's statements did not name the targets",
                    false,
                );
            }
        }

        if request.deregister {
            if image.tags.contains_key(TAG_SOURCE_IMAGE) {
                match self
                    .images()
                    .deregister_image(region, &image.id, true)
                    .await
                {
                    // Described just before: gone now means deregistered,
                    // by a repeat whose first answer was lost.
                    Ok(()) => {}
                    Err(err) if err.kind() == ErrorKind::NotFound => {}
                    Err(err) => return Err(err),
                }
                journal.record(
                    Some(region),
                    "deregister-image",
                    &image.id,
                    "deregistered with its snapshots",
                    true,
                );
            } else {
                journal.warn(format!(
                    "image {} in {region} was not made by amishare (no {TAG_SOURCE_IMAGE} tag): not deregistered",
                    image.id
                ));
            }
        }
        Ok(kept)
    }
}

impl Flow {
    /// Revokes the grants amishare made for the service-linked roles of
    /// `accounts` on `key` ([`ServiceLinkedRole::made_by_amishare`]), except those
    /// of accounts that keep their share. Grants amishare did not make are
    /// never touched (`docs/spec/choices.md` §D6).
    async fn revoke_role_grants(
        &self,
        region: &Region,
        key: &KeyArn,
        accounts: &BTreeSet<AccountId>,
        kept: &[Kept],
        journal: &Journal,
    ) -> Result<()> {
        let grants = match self.keys().list_grants(key).await {
            Ok(grants) => grants,
            Err(err) if matches!(err.kind(), ErrorKind::AccessDenied | ErrorKind::Unsupported) => {
                journal.warn(format!(
                    "cannot list the grants of {key} ({err}): grants made for the targets' service-linked roles were not revoked"
                ));
                return Ok(());
            }
            Err(err) => return Err(err),
        };
        for grant in grants {
            if !ServiceLinkedRole::made_by_amishare(&grant) {
                continue;
            }
            let account = &grant.issuing_account;
            if !accounts.contains(account) || kept.iter().any(|k| &k.account == account) {
                continue;
            }
            match self.keys().revoke_grant(key, &grant.id).await {
                Ok(()) => {}
                // Gone already: a repeat after a lost answer revoked it.
                Err(err) if err.kind() == ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
            journal.record(
                Some(region),
                "revoke-grant",
                key,
                format!("grant {} for {}", grant.id, grant.grantee),
                true,
            );
        }
        Ok(())
    }
}

/// What a share finds of its key in a region before it changes anything.
#[derive(Debug)]
pub(super) enum KeyFound {
    /// A key that exists: the one asked for, or the alias's.
    Existing(KeyMetadata),
    /// A key an earlier run created for the alias and stopped before naming.
    Unnamed(KeyMetadata),
    /// No key yet: the share creates one for this alias.
    Missing(AliasName),
}

/// The alias a share names its key with, if it creates one.
fn key_alias(request: &ShareRequest) -> Option<&AliasName> {
    match &request.key {
        KeyChoice::Create(alias) => Some(alias),
        KeyChoice::Use(_) => None,
    }
}

/// The key policy `text` of `key` with the targets merged in, refused as
/// bad input when it would be too large for KMS or lock the caller out.
fn merged_policy(
    request: &ShareRequest,
    caller: &Caller,
    key: &KeyArn,
    region: &Region,
    text: &str,
) -> Result<amishare_policy::Merged> {
    let policy = amishare_policy::Policy::parse(text)
        .map_err(|e| Error::from(e).context(format!("key policy of {key}")))?;
    amishare_policy::merge_key(
        &policy,
        &request.grantees(region),
        &request.policy_narrowing(region),
        caller.account.as_str(),
        caller.arn.as_str(),
        Some(&key.to_string()),
    )
    .map_err(|e| Error::new(ErrorKind::InvalidInput, format!("key policy of {key}: {e}")))
}
