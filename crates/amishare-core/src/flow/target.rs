//! The target side: find the shared image, check its keys, launch it and copy it.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, ErrorKind, FailedLaunch, Result};
use crate::flow::wait::{poll_until, Pending, Poll, Schedule};
use crate::flow::{
    AcceptRequest, CopyKey, CopyReport, Flow, Journal, LaunchOptions, LaunchReport, TAG_KEY,
    TAG_SMOKE_KEEP, TAG_SMOKE_TEST, TAG_SOURCE_IMAGE,
};
use crate::hash::fnv1a;
use crate::id::{ImageId, ImageName, KeyArn, KeyRef, Region, SnapshotId};
use crate::model::{
    Caller, CopyImageRequest, Image, ImageOwner, ImageQuery, Instance, InstanceState, KeyState,
    RunInstancesRequest,
};
use crate::store::ImageStore;

/// The smoke instances `accept` launched in `region` that still run, or
/// could run again (pending, running, stopping, stopped): every one, or
/// those of `image`. They are found by their [`TAG_SMOKE_TEST`] tag, and the
/// tag is checked again here, since a backend may ignore a filter; those
/// launched with `keep` carry [`TAG_SMOKE_KEEP`] too.
pub async fn smoke_instances(
    images: &dyn ImageStore,
    region: &Region,
    image: Option<&ImageId>,
) -> Result<Vec<Instance>> {
    let all = images.describe_instances(region, &[]).await?;
    Ok(all
        .into_iter()
        .filter(|instance| {
            instance
                .tags
                .get(TAG_SMOKE_TEST)
                .is_some_and(|tested| image.is_none_or(|image| tested == image.as_str()))
                && matches!(
                    instance.state,
                    InstanceState::Pending
                        | InstanceState::Running
                        | InstanceState::Stopping
                        | InstanceState::Stopped
                )
        })
        .collect())
}

impl Flow {
    /// The shared image as the target sees it.
    pub(super) async fn find_shared_image(
        &self,
        region: &Region,
        id: &ImageId,
        caller: &Caller,
    ) -> Result<Image> {
        let not_shared = || {
            format!(
                "image {id} is not shared with account {} in {region}, or does not exist",
                caller.account
            )
        };
        let found = self
            .images()
            .describe_images(region, &ImageQuery::ids([id.clone()]))
            .await
            .map_err(|err| match err.kind() {
                ErrorKind::NotFound => err.context(not_shared()),
                _ => err,
            })?;
        found.into_iter().next().ok_or_else(|| {
            Error::service(ErrorKind::NotFound, "InvalidAMIID.NotFound", not_shared())
        })
    }

    /// The keys behind an image: those the owner reported, and those the target can read from snapshots it may see.
    pub(super) async fn keys_of(
        &self,
        region: &Region,
        image: &Image,
        reported: &[KeyArn],
        journal: &Journal,
    ) -> Vec<KeyArn> {
        let mut keys: BTreeSet<KeyArn> = reported.iter().cloned().collect();
        let ids: Vec<SnapshotId> = image
            .block_devices
            .iter()
            .map(|d| d.snapshot_id.clone())
            .collect();
        match self.images().describe_snapshots(region, &ids).await {
            Ok(snapshots) => keys.extend(snapshots.into_iter().filter_map(|s| s.kms_key)),
            Err(_) if !reported.is_empty() => {}
            Err(err) => journal.warn(format!(
                "cannot read the keys of image {}'s snapshots ({err}); the key check is skipped: pass the key ARN the owner reported",
                image.id
            )),
        }
        keys.into_iter().collect()
    }

    /// Checks each key with `DescribeKey` on its ARN, and returns those the
    /// caller may not describe directly. A key policy narrowed to EC2
    /// (`kms:ViaService`, as in KMS's own example) refuses the direct call
    /// while EC2's calls go through, so such a key is left to the launch or
    /// the copy to prove; with neither asked, the refusal stands
    /// (`docs/spec/choices.md` §D1).
    pub(super) async fn check_keys(
        &self,
        request: &AcceptRequest,
        image: &Image,
        keys: &[KeyArn],
        caller: &Caller,
        journal: &Journal,
    ) -> Result<Vec<KeyArn>> {
        let region = &request.region;
        let mut through_ec2 = Vec::new();
        for key in keys {
            let meta = match self
                .keys()
                .describe_key(region, &KeyRef::Arn(key.clone()))
                .await
            {
                Ok(meta) => meta,
                Err(err) if err.kind() == ErrorKind::AccessDenied => {
                    if request.launch.is_none() && request.copy.is_none() {
                        return Err(err.context(format!(
                            "{} cannot describe key {key} directly; the key may be usable only through EC2 (kms:ViaService), which only a launch or a copy shows",
                            caller.arn
                        )));
                    }
                    journal.record(
                        Some(region),
                        "describe-key",
                        key,
                        "refused when called directly: the key may be usable only through EC2 (kms:ViaService); the launch or copy decides",
                        false,
                    );
                    through_ec2.push(key.clone());
                    continue;
                }
                Err(err) => return Err(err.context(format!("{} cannot use key {key}", caller.arn))),
            };
            if meta.state != KeyState::Enabled {
                return Err(Error::new(
                    ErrorKind::InvalidKeyState,
                    format!(
                        "key {key} that encrypts image {} is {}",
                        image.id, meta.state
                    ),
                ));
            }
            journal.record(
                Some(region),
                "describe-key",
                key,
                "the target can use the key",
                false,
            );
        }
        Ok(through_ec2)
    }

    /// Terminates the smoke instances of `image` an earlier accept left
    /// running (it stopped before its own cleanup), except those it was
    /// asked to keep.
    pub(super) async fn end_earlier_smoke_tests(
        &self,
        region: &Region,
        image: &ImageId,
        journal: &Journal,
    ) -> Result<()> {
        let left: Vec<_> = smoke_instances(self.images(), region, Some(image))
            .await?
            .into_iter()
            .filter(|instance| !instance.tags.contains_key(TAG_SMOKE_KEEP))
            .map(|instance| instance.id)
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        self.images().terminate_instances(region, &left).await?;
        for id in &left {
            journal.record(
                Some(region),
                "terminate-instances",
                id,
                "a smoke instance an earlier accept left running",
                true,
            );
        }
        Ok(())
    }

    /// Launches one instance and waits for it to run; a termination at launch is an error with EC2's reason.
    pub(super) async fn smoke_launch(
        &self,
        region: &Region,
        image: &Image,
        options: &LaunchOptions,
        journal: &Journal,
    ) -> Result<LaunchReport> {
        let instance = self
            .images()
            .run_instances(
                region,
                &RunInstancesRequest {
                    image: image.id.clone(),
                    instance_type: options.instance_type.clone(),
                    subnet: options.subnet.clone(),
                    kms_key: None,
                    tags: smoke_tags(&image.id, options.keep),
                    // One launch per accept: a retry after a lost answer
                    // gets the same instance, a later accept a new one.
                    client_token: Some(format!(
                        "amishare-{:016x}",
                        fnv1a(&format!(
                            "smoke|{}|{region}|{}",
                            image.id,
                            self.clock.now().as_nanos()
                        ))
                    )),
                },
            )
            .await?;
        journal.record(
            Some(region),
            "run-instances",
            &instance.id,
            format!("{} from {}", options.instance_type, image.id),
            true,
        );
        let id = instance.id.clone();
        let what = format!("instance {id} in {region}");
        let state = poll_until(
            &*self.clock,
            &self.wait,
            Schedule {
                first_delay: self.wait.instance_first_delay,
                deadline: self.wait.instance_deadline,
                fresh: true,
            },
            &what,
            fnv1a(id.as_str()),
            || async {
                let found = self
                    .images()
                    .describe_instances(region, std::slice::from_ref(&id))
                    .await?;
                let Some(instance) = found.into_iter().next() else {
                    return Ok(Poll::Pending(Pending::Text("not visible yet")));
                };
                match instance.state {
                    InstanceState::Running => Ok(Poll::Ready(instance.state)),
                    InstanceState::Pending => Ok(Poll::Pending(Pending::Instance(instance.state))),
                    state => Err(Error::launch_failed(FailedLaunch {
                        region: region.clone(),
                        image: image.id.clone(),
                        instance: instance.id,
                        state,
                        reason: instance.state_reason,
                        cause: instance.failure_cause,
                    })),
                }
            },
        )
        .await;
        let state = match state {
            Ok(state) => state,
            // An instance that terminated at launch is gone already; any
            // other failed wait must not leave a smoke instance running.
            Err(err) if err.kind() != ErrorKind::LaunchFailed && !options.keep => {
                let stopped = self
                    .images()
                    .terminate_instances(region, std::slice::from_ref(&id))
                    .await;
                return Err(match stopped {
                    Ok(()) => {
                        journal.record(
                            Some(region),
                            "terminate-instances",
                            &id,
                            "the wait failed",
                            true,
                        );
                        err.context(format!("{id} was terminated"))
                    }
                    Err(also) => err.context(format!("{id} may still run: {also}")),
                });
            }
            Err(err) => return Err(err),
        };
        journal.record(Some(region), "wait-instance", &id, state.to_string(), false);
        let terminated_after = !options.keep;
        if terminated_after {
            self.images()
                .terminate_instances(region, std::slice::from_ref(&id))
                .await?;
            journal.record(
                Some(region),
                "terminate-instances",
                &id,
                "smoke test done",
                true,
            );
        }
        Ok(LaunchReport {
            instance: id,
            group: None,
            state,
            terminated_after,
        })
    }

    /// Copies the shared image into the target's ownership, re-encrypted.
    pub(super) async fn target_copy(
        &self,
        request: &AcceptRequest,
        copy_key: &CopyKey,
        image: &Image,
        caller: &Caller,
        journal: &Journal,
    ) -> Result<CopyReport> {
        let region = &request.region;
        let kms_key = match copy_key {
            CopyKey::Key(key) => Some(key.clone()),
            CopyKey::AccountDefault => None,
        };
        let name = match &request.copy_name {
            Some(name) => name.clone(),
            None => ImageName::with_suffix(&image.name, "-copy")?,
        };
        let token = format!(
            "amishare-{:016x}",
            fnv1a(&format!("accept|{}|{region}|{copy_key}", image.id))
        );
        let tags = BTreeMap::from([
            (TAG_SOURCE_IMAGE.to_owned(), image.id.to_string()),
            (TAG_KEY.to_owned(), copy_key.to_string()),
        ]);
        let query = ImageQuery {
            owners: vec![ImageOwner::Me],
            tags: tags
                .iter()
                .map(|(k, v)| (k.clone(), vec![v.clone()]))
                .collect(),
            ..ImageQuery::default()
        };
        if let Some(copy) = self
            .earlier_copy(region, &query, &caller.account, &image.id, journal)
            .await?
        {
            return self.copy_report(region, copy, journal).await;
        }
        let copy = CopyImageRequest {
            source_image: image.id.clone(),
            source_region: region.clone(),
            name: name.to_string(),
            encrypted: Some(true),
            kms_key,
            client_token: Some(token),
            tags,
        };
        let detail = format!("{name}: the target's own copy of {}", image.id);
        let copy = self.copy_and_wait(region, copy, journal, &detail).await?;
        self.copy_report(region, copy, journal).await
    }

    /// The target's copy and its snapshots' keys.
    async fn copy_report(
        &self,
        region: &Region,
        copy: Image,
        journal: &Journal,
    ) -> Result<CopyReport> {
        let id = copy.id.clone();
        let ids: Vec<SnapshotId> = copy
            .block_devices
            .iter()
            .map(|d| d.snapshot_id.clone())
            .collect();
        let snapshots = self.images().describe_snapshots(region, &ids).await?;
        let snapshots: BTreeMap<SnapshotId, Option<KeyArn>> =
            snapshots.into_iter().map(|s| (s.id, s.kms_key)).collect();
        journal.record(
            Some(region),
            "wait-image",
            &id,
            "available, owned by the target",
            false,
        );
        Ok(CopyReport {
            image: id,
            snapshots,
        })
    }
}

/// The tags of a smoke instance of `image`.
fn smoke_tags(image: &ImageId, keep: bool) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::from([(TAG_SMOKE_TEST.to_owned(), image.to_string())]);
    if keep {
        tags.insert(TAG_SMOKE_KEEP.to_owned(), "true".to_owned());
    }
    tags
}
