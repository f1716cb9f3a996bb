//! Retries of single calls: throttling and transient service errors are
//! retried with capped exponential backoff and full jitter, up to a number of
//! attempts and a deadline, on the flow's clock.
//!
//! A call is retried only when repeating it is safe, as the operation table
//! says ([`crate::ops`], `docs/spec/ops.md` §E2). Throttling is always
//! safe: the service refused the request before acting on it. A transient
//! service error (a 5xx) may come after the service acted, so it is retried
//! only for reads, for writes whose repetition changes nothing more
//! (`PutKeyPolicy` with the same document, adding a permission that is
//! already there), for writes whose repeat the flow settles (`CreateAlias`,
//! `DeregisterImage`), and for `CopyImage`, `RunInstances` and `CreateGrant`
//! that carry a client token or grant name; `CreateKey` and the others are
//! retried only when throttled, and the flow finds or reports what a failed
//! one may have left.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Exhausted, Result};
use crate::ops::{Around, OpCall};
use crate::scaling::ScalingStore;
use crate::store::{Clock, ImageStore, KeyStore};

/// How calls are retried, and how long something just made may stay
/// invisible to reads (KMS and EC2 are eventually consistent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOptions {
    /// Most attempts of one call, the first included; 1 turns retries off.
    pub max_attempts: u32,
    /// The backoff before the second attempt; it doubles with each attempt.
    pub base_delay: Duration,
    /// The longest backoff between two attempts.
    pub max_delay: Duration,
    /// How long one call may go on retrying, from its first attempt.
    pub deadline: Duration,
    /// How long a key, alias or image the flow has just made may be missing
    /// from reads before the flow treats "not found" as final.
    pub settle: Duration,
    /// How many copies of an image the flow makes before it gives up on one
    /// that keeps going `failed`; each failed copy is deregistered.
    pub copy_attempts: u32,
}

impl Default for RetryOptions {
    fn default() -> Self {
        // The AWS SDKs' standard mode backs off from 1 s to 20 s; more
        // attempts, because a share waits hours for its copies anyway and a
        // throttled call is cheaper to repeat than a share to restart.
        RetryOptions {
            max_attempts: 8,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(20),
            deadline: Duration::from_secs(120),
            settle: Duration::from_secs(60),
            copy_attempts: 3,
        }
    }
}

impl RetryOptions {
    /// No retries, and "not found" is final at once.
    pub fn none() -> RetryOptions {
        RetryOptions {
            max_attempts: 1,
            settle: Duration::ZERO,
            copy_attempts: 1,
            ..RetryOptions::default()
        }
    }
}

/// Whether `err` is worth another attempt of `call`: throttling always is;
/// another retryable error only when repeating the call is safe (`docs/spec/ops.md` §E2).
fn retryable(err: &Error, call: &OpCall<'_>) -> bool {
    if call.is_safe_to_repeat() {
        err.is_retryable()
    } else {
        err.kind() == ErrorKind::Throttled
    }
}

/// A [`KeyStore`] and [`ImageStore`] that retries the calls of the stores it
/// wraps as [`RetryOptions`] say, sleeping on a [`Clock`].
#[derive(Debug, Clone)]
pub struct Retrying {
    keys: Arc<dyn KeyStore>,
    images: Arc<dyn ImageStore>,
    /// Auto Scaling and launch templates, when the flow launches through them.
    scaling: Option<Arc<dyn ScalingStore>>,
    clock: Arc<dyn Clock>,
    options: RetryOptions,
    /// The jitter's generator: seeded, so a simulated run repeats exactly.
    rng: Arc<AtomicU64>,
    /// Writes sent so far, by this value and its clones.
    writes: Arc<AtomicUsize>,
}

impl Retrying {
    /// Wraps `keys` and `images`.
    pub fn new(
        keys: Arc<dyn KeyStore>,
        images: Arc<dyn ImageStore>,
        clock: Arc<dyn Clock>,
        options: RetryOptions,
    ) -> Retrying {
        Retrying {
            keys,
            images,
            scaling: None,
            clock,
            options,
            rng: Arc::new(AtomicU64::new(0x9e37_79b9_7f4a_7c15)),
            writes: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// How many calls that change something (or may) were sent through
    /// these stores and their clones, retries not counted.
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::Relaxed)
    }

    /// Adds an Auto Scaling store, retried like the others.
    pub fn with_scaling(mut self, scaling: Arc<dyn ScalingStore>) -> Retrying {
        self.scaling = Some(scaling);
        self
    }

    /// Whether an Auto Scaling store was given.
    pub fn has_scaling(&self) -> bool {
        self.scaling.is_some()
    }

    /// The Auto Scaling store, or why there is none.
    fn scaling(&self) -> Result<&Arc<dyn ScalingStore>> {
        self.scaling.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                "launching through Auto Scaling needs an Auto Scaling store, and none was given",
            )
        })
    }

    /// The same stores under other options.
    pub fn with_options(&self, options: RetryOptions) -> Retrying {
        Retrying {
            options,
            ..self.clone()
        }
    }

    /// The options in force.
    pub fn options(&self) -> RetryOptions {
        self.options
    }

    /// The backoff before attempt `attempt + 1`: uniform in
    /// `[0, min(max_delay, base_delay × 2^(attempt-1))]` ("full jitter"), so
    /// that callers throttled together do not retry together.
    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .options
            .base_delay
            .saturating_mul(1u32 << (attempt - 1).min(20))
            .min(self.options.max_delay);
        let x = self
            .rng
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        // splitmix64's finalizer.
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        cap.mul_f64((z >> 11) as f64 / (1u64 << 53) as f64)
    }

    /// Sends `call` until it succeeds, fails in a way not worth repeating,
    /// or spends the budget; an error worth repeating that spent it names
    /// the call and the attempts made ([`Error::retries_exhausted`]).
    async fn run<T, F, Fut>(&self, call: OpCall<'_>, mut send: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        if call.op.is_mutating() {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        let operation = call.op.name();
        let start = self.clock.now();
        let mut attempt = 1;
        loop {
            let err = match send().await {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            if !retryable(&err, &call) {
                return Err(err);
            }
            let elapsed = self.clock.now().saturating_sub(start);
            let spent = |err: Error| {
                err.with_exhausted(Exhausted {
                    operation,
                    resource: call.resource(),
                    region: call.region.cloned(),
                    attempts: attempt,
                    elapsed,
                })
            };
            if attempt >= self.options.max_attempts {
                return Err(spent(err));
            }
            let delay = self.backoff(attempt);
            if elapsed + delay > self.options.deadline {
                return Err(spent(err));
            }
            tracing::debug!(operation, attempt, delay_ms = delay.as_millis() as u64, error = %err, "retrying");
            self.clock.sleep(delay).await;
            attempt += 1;
        }
    }
}

/// Repeats `call` while it fails with "not found", for up to `options.settle`:
/// for a read of something the flow has just made, which an eventually
/// consistent service may not show yet.
pub(crate) async fn settled<T, F, Fut>(
    clock: &dyn Clock,
    options: &RetryOptions,
    mut call: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let start = clock.now();
    let mut delay = Duration::from_secs(1);
    loop {
        match call().await {
            Err(err) if err.kind() == ErrorKind::NotFound => {
                let elapsed = clock.now().saturating_sub(start);
                if elapsed + delay > options.settle {
                    return Err(err);
                }
                tracing::debug!(error = %err, "not visible yet");
                clock.sleep(delay).await;
                delay = (delay * 2).min(options.max_delay);
            }
            other => return other,
        }
    }
}

impl Around for Retrying {
    fn around<'a, T, F, Fut>(
        &'a self,
        call: OpCall<'a>,
        send: F,
    ) -> impl Future<Output = Result<T>> + Send + 'a
    where
        T: Send + 'static,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a,
    {
        self.run(call, send)
    }
}

crate::around_stores!(KeyStore for [] Retrying, |this| &this.keys);
crate::around_stores!(ImageStore for [] Retrying, |this| &this.images);
crate::around_stores!(ScalingStore for [] Retrying, |this| this.scaling()?);
