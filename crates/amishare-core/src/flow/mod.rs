//! The cross-account sharing flow over any [`KeyStore`] and [`ImageStore`].
//!
//! Owner side ([`Sharer::share`]): resolve or create the key, merge the
//! least-privilege statements into its policy, image the instance if asked,
//! copy the image encrypted under the key, verify every snapshot's key (a
//! hard gate: nothing is granted before it passes), then grant launch and,
//! if asked, create-volume permissions. Each step first looks at what is
//! there, so a rerun finds what an earlier run made and changes nothing.
//!
//! Target side ([`Sharer::accept`]): check key access with `DescribeKey` on
//! the key ARN, find the image, launch a smoke instance and wait for it to
//! run, and optionally copy the image re-encrypted under the target's key.

mod fix;
mod owner;
mod request;
mod scaling;
mod status;
mod target;

pub use self::fix::{FixReport, FixRequest, Mended};
pub use self::status::{
    ImageStatus, KeyStatus, Readable, SmokeStatus, SnapshotStatus, StatusReport, StatusRequest,
    TargetView,
};
pub use self::target::smoke_instances;
mod wait;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::join_all;
use tracing::info;

pub use self::request::{
    check_partitions, AcceptReport, AcceptRequest, CopyKey, CopyReport, GrantReport, ImageSource,
    Kept, KeyChoice, KeyPolicyReport, LaunchOptions, LaunchReport, LaunchVia, Narrowing,
    PolicyWrite, RegionImage, RegionShare, ShareReport, ShareRequest, Step, Target, UnshareReport,
    UnshareRequest, WaitOptions,
};
use self::wait::{poll_with_progress, Pending, Poll, ProgressReads, Schedule};
use crate::error::{Error, ErrorKind, FailedCopy, Result};
use crate::hash::fnv1a;
use crate::id::{AccountId, ImageId, KeyArn, Region, SnapshotId};
use crate::model::{Caller, CopyImageRequest, Image, ImageOwner, ImageQuery, ImageState};
use crate::retry::{RetryOptions, Retrying};
use crate::scaling::{GroupWait, ScalingStore};
use crate::store::{Clock, ImageStore, KeyStore, Stores};

/// Tag on every image amishare makes, naming the image it came from.
pub const TAG_SOURCE_IMAGE: &str = "amishare:source-image";
/// Tag on a copy, naming the key it is encrypted with.
pub const TAG_KEY: &str = "amishare:key";
/// Tag on a key amishare created, naming the alias it was created for.
pub const TAG_ALIAS: &str = "amishare:alias";
/// Tag on an image amishare made from an instance, naming the instance.
pub const TAG_SOURCE_INSTANCE: &str = "amishare:source-instance";
/// Tag on a smoke instance `accept` launches, naming the image it tests.
pub const TAG_SMOKE_TEST: &str = "amishare:smoke-test";
/// Tag on a smoke instance the caller asked to keep running (`true`).
pub const TAG_SMOKE_KEEP: &str = "amishare:keep";

/// The caller's images amishare made, by their tags: the copies of
/// `source`, those encrypted with `key`, or both. `share` looks for its own
/// earlier copy with it, `unshare` and `status` for the copies of a source.
pub(crate) fn copies_query(source: Option<&ImageId>, key: Option<&KeyArn>) -> ImageQuery {
    let mut tags = BTreeMap::new();
    if let Some(source) = source {
        tags.insert(TAG_SOURCE_IMAGE.to_owned(), vec![source.to_string()]);
    }
    if let Some(key) = key {
        tags.insert(TAG_KEY.to_owned(), vec![key.to_string()]);
    }
    ImageQuery {
        owners: vec![ImageOwner::Me],
        tags,
        ..ImageQuery::default()
    }
}

/// Most entries one ModifyImageAttribute call carries; AWS allows 1,000 per image.
pub(super) const LAUNCH_PERMISSION_BATCH: usize = 500;

/// The sharing flow, as a role: owner side and target side.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Sharer: Send + Sync + Debug {
    /// Owner side: share an image with targets.
    async fn share(&self, request: &ShareRequest) -> Result<ShareReport>;

    /// Target side: check access to a shared image, launch and copy it.
    async fn accept(&self, request: &AcceptRequest) -> Result<AcceptReport>;

    /// Owner side: remove what a share added.
    async fn unshare(&self, request: &UnshareRequest) -> Result<UnshareReport>;
}

/// The [`Sharer`] over a key store and an image store that act as one principal.
#[derive(Debug, Clone)]
pub struct Flow {
    /// The stores, behind retries.
    stores: Retrying,
    clock: Arc<dyn Clock>,
    wait: WaitOptions,
    group_wait: GroupWait,
}

impl Flow {
    /// A flow acting as the principal behind `keys` and `images`, retrying
    /// their calls as [`RetryOptions::default`] says.
    pub fn new(
        keys: Arc<dyn KeyStore>,
        images: Arc<dyn ImageStore>,
        clock: Arc<dyn Clock>,
    ) -> Flow {
        Flow {
            stores: Retrying::new(keys, images, clock.clone(), RetryOptions::default()),
            clock,
            wait: WaitOptions::default(),
            group_wait: GroupWait::default(),
        }
    }

    /// Adds an Auto Scaling store acting as the same principal, for smoke
    /// launches through an Auto Scaling group.
    pub fn with_scaling(mut self, scaling: Arc<dyn ScalingStore>) -> Flow {
        self.stores = self.stores.with_scaling(scaling);
        self
    }

    /// Replaces how long an Auto Scaling smoke launch may take.
    pub fn with_group_wait(mut self, wait: GroupWait) -> Flow {
        self.group_wait = wait;
        self
    }

    /// A flow acting as the principal behind `stores`, through Auto Scaling
    /// too when they have it.
    pub fn over(stores: &Stores, clock: Arc<dyn Clock>) -> Flow {
        let flow = Flow::new(stores.keys.clone(), stores.images.clone(), clock);
        match &stores.scaling {
            Some(scaling) => flow.with_scaling(scaling.clone()),
            None => flow,
        }
    }

    /// Replaces the retry options.
    pub fn with_retry(mut self, options: RetryOptions) -> Flow {
        self.stores = self.stores.with_options(options);
        self
    }

    /// Replaces the polling options.
    pub fn with_wait(mut self, wait: WaitOptions) -> Flow {
        self.wait = wait;
        self
    }

    /// The key store, behind retries.
    fn keys(&self) -> &dyn KeyStore {
        &self.stores
    }

    /// The image store, behind retries.
    fn images(&self) -> &dyn ImageStore {
        &self.stores
    }

    /// The retry options in force.
    fn retry(&self) -> RetryOptions {
        self.stores.options()
    }
}

/// Collects steps and counts mutating calls, shared by concurrent regions.
#[derive(Debug, Default)]
pub(super) struct Journal {
    steps: std::sync::Mutex<Vec<Step>>,
    mutating: AtomicUsize,
    warnings: std::sync::Mutex<Vec<String>>,
}

impl Journal {
    pub(super) fn record(
        &self,
        region: Option<&Region>,
        action: &str,
        resource: impl ToString,
        detail: impl Into<String>,
        changed: bool,
    ) {
        let step = Step {
            region: region.cloned(),
            action: action.to_owned(),
            resource: resource.to_string(),
            detail: detail.into(),
            changed,
        };
        info!(region = ?step.region, action = %step.action, resource = %step.resource, changed, "{}", step.detail);
        if changed {
            self.mutating.fetch_add(1, Ordering::Relaxed);
        }
        self.steps.lock().expect("journal lock").push(step);
    }

    pub(super) fn warn(&self, text: String) {
        tracing::warn!("{text}");
        self.warnings.lock().expect("journal lock").push(text);
    }

    fn into_parts(self) -> (Vec<Step>, usize, Vec<String>) {
        (
            self.steps.into_inner().expect("journal lock"),
            self.mutating.into_inner(),
            self.warnings.into_inner().expect("journal lock"),
        )
    }
}

#[async_trait]
impl Sharer for Flow {
    async fn share(&self, request: &ShareRequest) -> Result<ShareReport> {
        let before = self.stores.writes();
        self.share_once(request)
            .await
            .map_err(|err| self.mark(before, err))
    }

    async fn accept(&self, request: &AcceptRequest) -> Result<AcceptReport> {
        let before = self.stores.writes();
        self.accept_once(request)
            .await
            .map_err(|err| self.mark(before, err))
    }

    async fn unshare(&self, request: &UnshareRequest) -> Result<UnshareReport> {
        let before = self.stores.writes();
        self.unshare_once(request)
            .await
            .map_err(|err| self.mark(before, err))
    }
}

impl Flow {
    /// `err`, marked as coming after changes when a write was sent since
    /// `before` (the write count when the operation began).
    pub(super) fn mark(&self, before: usize, err: Error) -> Error {
        if self.stores.writes() > before {
            err.after_changes()
        } else {
            err
        }
    }

    async fn share_once(&self, request: &ShareRequest) -> Result<ShareReport> {
        let caller = self.keys().caller().await?;
        validate_share(request, &caller)?;
        let journal = Journal::default();
        if request.volume_permission && request.targets.iter().any(|t| t.account().is_none()) {
            journal.warn(
                "create-volume permission takes accounts only: organization and OU targets can launch the image but not copy it"
                    .to_owned(),
            );
        }
        let regions = request.regions();
        // Every key is found and its policy checked before anything changes.
        let mut keys = Vec::with_capacity(regions.len());
        for found in join_all(
            regions
                .iter()
                .map(|region| self.look_for_key(request, &caller, region)),
        )
        .await
        {
            keys.push(found?);
        }
        let source = self.resolve_source(request, &caller, &journal).await?;
        let results = join_all(regions.iter().zip(keys).map(|(region, found)| {
            self.share_in_region(request, &caller, &source, region, found, &journal)
        }))
        .await;
        let mut shares = Vec::with_capacity(results.len());
        for result in results {
            shares.push(result?);
        }
        let (steps, mutating_calls, warnings) = journal.into_parts();
        Ok(ShareReport {
            source_image: source.id,
            source_region: request.source_region.clone(),
            regions: shares,
            steps,
            mutating_calls,
            warnings,
        })
    }

    async fn accept_once(&self, request: &AcceptRequest) -> Result<AcceptReport> {
        let caller = self.keys().caller().await?;
        let journal = Journal::default();
        let region = &request.region;
        let image = self
            .find_shared_image(region, &request.image, &caller)
            .await?;
        journal.record(
            Some(region),
            "find-image",
            &image.id,
            format!(
                "visible to {}, owned by {}, {}",
                caller.account, image.owner, image.state
            ),
            false,
        );
        if image.state != ImageState::Available {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "image {} in {region} is {}, not available",
                    image.id, image.state
                ),
            ));
        }

        let keys = self.keys_of(region, &image, &request.keys, &journal).await;
        let through_ec2 = self
            .check_keys(request, &image, &keys, &caller, &journal)
            .await?;
        let proof = |what: &str| {
            for key in &through_ec2 {
                journal.record(
                    Some(region),
                    "key-through-ec2",
                    key,
                    format!("usable through EC2: {what}"),
                    false,
                );
            }
        };
        let denied_directly = |err: Error| {
            if through_ec2.is_empty() {
                return err;
            }
            let keys: Vec<String> = through_ec2.iter().map(ToString::to_string).collect();
            err.context(format!(
                "{} was refused DescribeKey on {} directly too",
                caller.arn,
                keys.join(", ")
            ))
        };

        let (grants, grant_made_at) = self
            .service_grants(request, &keys, &caller, &journal)
            .await?;
        let launch = match &request.launch {
            Some(options) => {
                let launched = match &options.via {
                    LaunchVia::RunInstances => {
                        self.end_earlier_smoke_tests(region, &image.id, &journal)
                            .await?;
                        self.smoke_launch(region, &image, options, &journal).await
                    }
                    LaunchVia::AutoScaling(role) => {
                        self.end_earlier_smoke_groups(region, &image.id, &journal)
                            .await?;
                        self.smoke_launch_group(
                            region,
                            &image,
                            options,
                            role,
                            &caller,
                            grant_made_at,
                            &journal,
                        )
                        .await
                    }
                }
                .map_err(denied_directly)?;
                proof("the smoke instance ran");
                Some(launched)
            }
            None => None,
        };
        let copy = match &request.copy {
            Some(copy_key) => {
                let copied = self
                    .target_copy(request, copy_key, &image, &caller, &journal)
                    .await
                    .map_err(denied_directly)?;
                proof("the copy is available");
                Some(copied)
            }
            None => None,
        };
        let (steps, _, warnings) = journal.into_parts();
        let keys_checked = keys
            .into_iter()
            .filter(|key| !through_ec2.contains(key))
            .collect();
        Ok(AcceptReport {
            image: image.id,
            owner: image.owner,
            keys_checked,
            keys_through_ec2: through_ec2,
            grants,
            launch,
            copy,
            steps,
            warnings,
        })
    }

    async fn unshare_once(&self, request: &UnshareRequest) -> Result<UnshareReport> {
        let caller = self.keys().caller().await?;
        if request.targets.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "unshare needs at least one target",
            ));
        }
        let journal = Journal::default();
        let mut kept = Vec::new();
        for shared in &request.images {
            kept.extend(
                self.unshare_in_region(request, &caller, shared, &journal)
                    .await?,
            );
        }
        if request.deregister && !kept.is_empty() {
            journal.warn(
                "deregistering the image also ends its share with the principals that kept their permissions"
                    .to_owned(),
            );
        }
        let (steps, mutating_calls, warnings) = journal.into_parts();
        Ok(UnshareReport {
            steps,
            kept,
            mutating_calls,
            warnings,
        })
    }
}

/// Refuses requests that cannot work, before any change: what
/// [`ShareRequest::validate`] refuses, and targets in the owner's account.
fn validate_share(request: &ShareRequest, caller: &Caller) -> Result<()> {
    request.validate()?;
    for target in &request.targets {
        if target.account() == Some(&caller.account) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "target {target} is in the owner account {}: it needs no share",
                    caller.account
                ),
            ));
        }
    }
    Ok(())
}

/// What a wait knows of the image before its first poll.
#[derive(Debug)]
pub(super) enum Start {
    /// Just created: it cannot be available yet.
    Created,
    /// Just described: no need to describe it again if it is available.
    Seen(Box<Image>),
    /// Nothing: poll at once.
    Unknown,
}

pub(crate) fn aws_managed_refusal(key: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!(
            "key {key} is AWS-managed: AWS-managed keys can never be shared with other accounts; use a customer-managed key"
        ),
    )
}

impl Flow {
    /// Polls an image until it is available, sleeping towards the end its
    /// snapshots' progress predicts while it is pending; a `failed` image
    /// ends the wait with its state reason: for a copy of `copy_of`, an
    /// [`ErrorKind::CopyFailed`] error with the copy's fields.
    pub(super) async fn wait_image(
        &self,
        region: &Region,
        id: &ImageId,
        start: Start,
        copy_of: Option<&ImageId>,
    ) -> Result<Image> {
        let fresh = match start {
            Start::Seen(image) if image.state == ImageState::Available => return Ok(*image),
            Start::Seen(_) | Start::Created => true,
            Start::Unknown => false,
        };
        let what = format!("image {id} in {region}");
        let query = ImageQuery::ids([id.clone()]);
        let started = self.clock.now();
        let settle = self.retry().settle;
        let reads = ProgressReads::default();
        poll_with_progress(
            &*self.clock,
            &self.wait,
            Schedule {
                first_delay: self.wait.image_first_delay,
                deadline: self.wait.image_deadline,
                fresh,
            },
            &what,
            fnv1a(id.as_str()),
            &reads,
            || async {
                let found = match self.images().describe_images(region, &query).await {
                    // An image just made may not be visible yet.
                    Err(err)
                        if err.kind() == ErrorKind::NotFound
                            && fresh
                            && self.clock.now().saturating_sub(started) < settle =>
                    {
                        return Ok(Poll::Pending(Pending::Text("not visible yet")));
                    }
                    other => other?,
                };
                let Some(image) = found.into_iter().next() else {
                    return Err(Error::service(
                        ErrorKind::NotFound,
                        "InvalidAMIID.NotFound",
                        format!("The image id '[{id}]' does not exist"),
                    ));
                };
                match image.state {
                    ImageState::Available => Ok(Poll::Ready(image)),
                    ImageState::Pending => {
                        let state = Pending::Image(image.state);
                        Ok(match self.image_progress(region, &image, &reads).await {
                            Some(percent) => Poll::Progress(state, percent),
                            None => Poll::Pending(state),
                        })
                    }
                    ImageState::Failed | ImageState::Deregistered => match copy_of {
                        Some(source) => Err(self.copy_failure(region, image, source).await),
                        None => {
                            let reason = image.state_reason.as_ref().map_or_else(
                                || "EC2 gave no reason".to_owned(),
                                |r| r.message.clone(),
                            );
                            let err = Error::new(
                                ErrorKind::Failed,
                                format!("{what} is {}: {reason}", image.state),
                            );
                            Err(match image.state_reason {
                                Some(r) => err.with_code(r.code),
                                None => err,
                            })
                        }
                    },
                }
            },
        )
        .await
    }
}

impl Flow {
    /// Copies as `request` says and waits for the copy to be available. A
    /// copy that goes `failed` is deregistered with its snapshots (it can
    /// never serve, and it holds the name) and, while attempts remain, made
    /// again under a new client token.
    pub(super) async fn copy_and_wait(
        &self,
        region: &Region,
        mut request: CopyImageRequest,
        journal: &Journal,
        detail: &str,
    ) -> Result<Image> {
        let token = request.client_token.clone();
        let attempts = self.retry().copy_attempts.max(1);
        let mut attempt = 1;
        loop {
            if attempt > 1 {
                request.client_token = token.as_ref().map(|t| format!("{t}-{attempt}"));
            }
            let id = self.images().copy_image(region, &request).await?;
            journal.record(Some(region), "copy-image", &id, detail, true);
            match self
                .wait_image(region, &id, Start::Created, Some(&request.source_image))
                .await
            {
                Err(err) if err.kind() == ErrorKind::CopyFailed => {
                    self.discard_failed(region, &id, journal).await?;
                    if attempt >= attempts {
                        return Err(err.context(format!(
                            "the copy failed {attempt} time(s) and was deregistered each time"
                        )));
                    }
                    journal.warn(format!("{err}; copying again"));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// The copy an earlier run made, as `query` (the caller's images with
    /// amishare's tags) finds it, once available; failed ones are
    /// deregistered on the way, since they can never serve. The caller
    /// records the wait's end, as it does for a new copy.
    pub(super) async fn earlier_copy(
        &self,
        region: &Region,
        query: &ImageQuery,
        caller: &AccountId,
        source: &ImageId,
        journal: &Journal,
    ) -> Result<Option<Image>> {
        let earlier = self.images().describe_images(region, query).await?;
        let mut found = None;
        for image in earlier {
            if !query.matches(&image, caller) {
                continue;
            }
            match image.state {
                ImageState::Failed => self.discard_failed(region, &image.id, journal).await?,
                state if usable(state) && found.is_none() => found = Some(image),
                _ => {}
            }
        }
        let Some(found) = found else {
            return Ok(None);
        };
        journal.record(
            Some(region),
            "copy-image",
            &found.id,
            format!("found the copy of {source} made earlier"),
            false,
        );
        let id = found.id.clone();
        match self
            .wait_image(region, &id, Start::Seen(Box::new(found)), Some(source))
            .await
        {
            Ok(image) => Ok(Some(image)),
            Err(err) if err.kind() == ErrorKind::CopyFailed => {
                self.discard_failed(region, &id, journal).await?;
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// The error for a copy seen `failed`: its state reason, its snapshots
    /// and their state messages (read with one `DescribeSnapshots`, before
    /// the copy is deregistered; a refused read leaves them out).
    async fn copy_failure(&self, region: &Region, image: Image, source: &ImageId) -> Error {
        let snapshots: Vec<SnapshotId> = image
            .block_devices
            .iter()
            .map(|d| d.snapshot_id.clone())
            .collect();
        let snapshot_messages = if snapshots.is_empty() {
            BTreeMap::new()
        } else {
            match self.images().describe_snapshots(region, &snapshots).await {
                Ok(found) => found
                    .into_iter()
                    .filter_map(|s| Some((s.id, s.state_message.filter(|m| !m.is_empty())?)))
                    .collect(),
                Err(_) => BTreeMap::new(),
            }
        };
        Error::copy_failed(FailedCopy {
            region: region.clone(),
            image: image.id,
            source: source.clone(),
            state: image.state,
            reason: image.state_reason,
            snapshots,
            snapshot_messages,
            cause: image.failure_cause,
        })
    }

    /// Deregisters a failed image amishare made, with its snapshots.
    pub(super) async fn discard_failed(
        &self,
        region: &Region,
        image: &ImageId,
        journal: &Journal,
    ) -> Result<()> {
        match self.images().deregister_image(region, image, true).await {
            Ok(()) => {}
            // Already gone: nothing is left behind.
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) => return Err(err.context(format!("deregistering the failed copy {image}"))),
        }
        journal.record(
            Some(region),
            "deregister-image",
            image,
            "failed copy removed with its snapshots",
            true,
        );
        Ok(())
    }
}

/// The text to store: pretty for people, compact when pretty would pass KMS's size limit.
pub(super) fn policy_text(policy: &amishare_policy::Policy) -> String {
    let pretty = policy.to_json_pretty();
    if pretty.len() <= amishare_policy::MAX_POLICY_BYTES {
        pretty
    } else {
        policy.to_json()
    }
}

/// Whether an image found from an earlier run can still serve.
pub(super) fn usable(state: ImageState) -> bool {
    matches!(state, ImageState::Pending | ImageState::Available)
}
