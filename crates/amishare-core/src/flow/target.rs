//! The target side: find the shared image, check its keys, launch it and copy it.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, ErrorKind, Result};
use crate::flow::wait::{fnv1a, poll_until, Pending, Poll, Schedule};
use crate::flow::{
    AcceptRequest, CopyKey, CopyReport, Flow, Journal, LaunchOptions, LaunchReport, TAG_KEY,
    TAG_SOURCE_IMAGE,
};
use crate::id::{ImageId, KeyArn, Region, SnapshotId};
use crate::model::{
    Caller, CopyImageRequest, Image, ImageOwner, ImageQuery, InstanceState, RunInstancesRequest,
};

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
                    tags: BTreeMap::from([(
                        "amishare:smoke-test".to_owned(),
                        image.id.to_string(),
                    )]),
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
                    state => {
                        let reason = instance.state_reason.clone();
                        let text = reason
                            .as_ref()
                            .map_or_else(|| "no reason given".to_owned(), ToString::to_string);
                        let err = Error::new(
                            ErrorKind::Failed,
                            format!(
                                "{what} from image {} went {state} at launch: {text}",
                                image.id
                            ),
                        );
                        Err(match reason {
                            Some(r) => err.with_code(r.code),
                            None => err,
                        })
                    }
                }
            },
        )
        .await;
        let state = match state {
            Ok(state) => state,
            // An instance that terminated at launch is gone already; any
            // other failed wait must not leave a smoke instance running.
            Err(err) if err.kind() != ErrorKind::Failed && !options.keep => {
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
        let name = request
            .copy_name
            .clone()
            .unwrap_or_else(|| format!("{}-copy", image.name));
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
            name: name.clone(),
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
