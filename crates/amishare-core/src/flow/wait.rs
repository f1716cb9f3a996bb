//! Polling with exponential backoff, jitter and a deadline, or, when the
//! resource reports its progress, at the end that progress points to.
//!
//! Copies take minutes to hours, so a fixed 15-second waiter wastes calls
//! and invites throttling; the delay grows to a ceiling instead, and a
//! terminal state (`failed`, `terminated`) ends the wait at once. Backoff
//! alone sees a copy up to a ceiling late, so a wait that is told how far
//! the resource is (a copy's snapshots report EC2's `Progress`) sleeps
//! towards the completion that rate predicts instead.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::flow::request::WaitOptions;
use crate::flow::Flow;
use crate::id::{Region, SnapshotId};
use crate::model::{Image, ImageState, InstanceState};
use crate::store::Clock;

/// What one poll saw.
pub(crate) enum Poll<T> {
    /// Done: the value to return.
    Ready(T),
    /// Not yet, and in what state.
    Pending(Pending),
    /// Not yet, in what state, and how far along in percent.
    Progress(Pending, u8),
}

/// The state a resource was still in, written out only for a timeout.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pending {
    /// An image in this state.
    Image(ImageState),
    /// An instance in this state.
    Instance(InstanceState),
    /// A state without a value of its own.
    Text(&'static str),
}

impl fmt::Display for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pending::Image(state) => state.fmt(f),
            Pending::Instance(state) => state.fmt(f),
            Pending::Text(text) => f.write_str(text),
        }
    }
}

/// What the last poll saw: a state, or an error worth another poll.
enum Seen {
    Pending(Pending),
    Retry(Error),
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seen::Pending(state) => state.fmt(f),
            Seen::Retry(err) => err.fmt(f),
        }
    }
}

/// When a wait polls.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    /// The first delay between polls.
    pub(crate) first_delay: Duration,
    /// How long to wait at most.
    pub(crate) deadline: Duration,
    /// The resource was just created: skip the immediate first poll.
    pub(crate) fresh: bool,
}

/// Polls `probe` until it is ready, fails, or `deadline` passes, backing off
/// from `first_delay` by half again each time up to `options.max_delay`.
/// A `fresh` resource (just created, so certainly not ready) is first probed
/// after one delay rather than at once.
///
/// `what` names the resource in the timeout error; `seed` makes the jitter
/// differ between resources without any global randomness.
pub(crate) async fn poll_until<T, F, Fut>(
    clock: &dyn Clock,
    options: &WaitOptions,
    schedule: Schedule,
    what: &str,
    seed: u64,
    probe: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>>>,
{
    // The probe never reads progress, so the wait only backs off.
    let reads = ProgressReads::default();
    poll_with_progress(clock, options, schedule, what, seed, &reads, probe).await
}

/// [`poll_until`] for a resource that may report its progress: while it
/// does, the wait sleeps towards the end the progress predicts (see
/// [`Progress`]) rather than backing off, so it sees the resource soon after
/// it is ready, with few polls.
///
/// Reading progress may cost the probe a call of its own, so the wait asks
/// for it (through `reads`) only when a reading could change the next sleep.
pub(crate) async fn poll_with_progress<T, F, Fut>(
    clock: &dyn Clock,
    options: &WaitOptions,
    schedule: Schedule,
    what: &str,
    seed: u64,
    reads: &ProgressReads,
    mut probe: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>>>,
{
    let Schedule {
        first_delay,
        deadline,
        fresh,
    } = schedule;
    let start = clock.now();
    let mut delay = first_delay;
    let mut rng = seed | 1;
    let mut skip_probe = fresh;
    // A fresh resource started at 0 % when the wait did.
    let mut progress = Progress::new(fresh.then_some(start));
    loop {
        if std::mem::take(&mut skip_probe) {
            let sleep = jittered(delay, &mut rng).min(deadline);
            clock.sleep(sleep).await;
            delay = (delay.mul_f64(1.5)).min(options.max_delay);
        }
        let wanted = progress.wanted(clock.now(), options.max_delay);
        reads.wanted.store(wanted, Ordering::Relaxed);
        let (last, percent) = match probe().await {
            Ok(Poll::Ready(value)) => return Ok(value),
            Ok(Poll::Pending(state)) => (Seen::Pending(state), None),
            Ok(Poll::Progress(state, percent)) => (Seen::Pending(state), Some(percent)),
            // Eventual consistency and throttling are worth another poll.
            Err(err) if err.is_retryable() => (Seen::Retry(err), None),
            Err(err) => return Err(err),
        };
        let now = clock.now();
        let elapsed = now.saturating_sub(start);
        // The CLI turns these into a progress line; `target` lets it pick them out.
        tracing::info!(target: "amishare::wait", what, state = %last, elapsed_secs = elapsed.as_secs(), "waiting");
        if deadline <= elapsed {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "{what} was still {last} after {}s (deadline {}s)",
                    elapsed.as_secs(),
                    deadline.as_secs()
                ),
            ));
        }
        let remaining = match percent {
            Some(percent) => progress.observe(now, percent),
            None => progress.ahead(now),
        };
        let sleep = match remaining {
            Some(remaining) => towards(remaining, first_delay, options.max_delay, &mut rng),
            None => jittered(delay, &mut rng),
        };
        clock.sleep(sleep.min(deadline - elapsed)).await;
        delay = (delay.mul_f64(1.5)).min(options.max_delay);
    }
}

/// Whether the probe of a [`poll_with_progress`] wait reads progress.
#[derive(Debug)]
pub(crate) struct ProgressReads {
    /// Set by the wait before each probe: a reading could change the next sleep.
    wanted: AtomicBool,
    /// Cleared by the probe, for the rest of the wait, once the backend
    /// reported no progress.
    reported: AtomicBool,
}

impl Default for ProgressReads {
    fn default() -> ProgressReads {
        ProgressReads {
            wanted: AtomicBool::new(true),
            reported: AtomicBool::new(true),
        }
    }
}

impl ProgressReads {
    /// Whether this probe should read progress.
    pub(crate) fn asked(&self) -> bool {
        self.wanted.load(Ordering::Relaxed) && self.reported.load(Ordering::Relaxed)
    }

    /// The backend reported none: stop asking.
    pub(crate) fn unreported(&self) {
        self.reported.store(false, Ordering::Relaxed);
    }
}

/// Points of progress a rate must rest on before the wait plans its steps
/// by it without reading again: EC2 rounds progress down, so the predicted
/// end is then at most 10 % late, and a reading one step before it corrects
/// that.
const TRUSTED_POINTS: u8 = 10;

/// What a wait has seen of a resource's progress, and the end it predicts.
///
/// The rate is the progress made since the first reading (or since the wait
/// began, for a resource created just before it, at 0 %) over the time it
/// took. Rounded-down progress makes the predicted end err late, by at most
/// one part in the points gained.
struct Progress {
    /// When, and at how many percent, the progress was first known.
    origin: Option<(Duration, u8)>,
    /// The predicted end, and whether it rests on enough points to plan by.
    end: Option<(Duration, bool)>,
}

impl Progress {
    fn new(started: Option<Duration>) -> Progress {
        Progress {
            origin: started.map(|at| (at, 0)),
            end: None,
        }
    }

    /// Whether a reading at `now` could change the next sleep: no trusted
    /// end is known, or it is at most one step (`max_delay`) away, where the
    /// last step aims at it, or it has passed without the resource being ready.
    fn wanted(&self, now: Duration, max_delay: Duration) -> bool {
        match self.end {
            Some((end, true)) => end.saturating_sub(now) <= max_delay,
            _ => true,
        }
    }

    /// Records `percent` done at `now`; the time left to the predicted end,
    /// or `None` while no rate is known (the first reading of a resource the
    /// wait did not see start, or no progress since the origin).
    fn observe(&mut self, now: Duration, percent: u8) -> Option<Duration> {
        let percent = percent.min(100);
        let Some((at, from)) = self.origin else {
            self.origin = Some((now, percent));
            return None;
        };
        let gained = percent.checked_sub(from).filter(|gained| *gained > 0)?;
        let spent = now.checked_sub(at).filter(|spent| !spent.is_zero())?;
        let remaining = spent.mul_f64(f64::from(100 - percent) / f64::from(gained));
        self.end = Some((now + remaining, TRUSTED_POINTS <= gained));
        Some(remaining)
    }

    /// The time left to the predicted end, while it is still ahead.
    fn ahead(&self, now: Duration) -> Option<Duration> {
        let (end, _) = self.end?;
        (now < end).then(|| end - now)
    }
}

/// The sleep towards a predicted end `remaining` away: the time left split
/// into equal steps no longer than `max_delay` (the resource is still polled
/// that often, so a failure is seen as soon as by backoff), but no shorter
/// than `floor`. The steps before the last are jittered as backoff is; the
/// last aims at the end itself, which already differs between resources.
fn towards(remaining: Duration, floor: Duration, max_delay: Duration, rng: &mut u64) -> Duration {
    let max = max_delay.as_secs_f64().max(f64::EPSILON);
    let steps = (remaining.as_secs_f64() / max).ceil().max(1.0);
    let step = remaining.div_f64(steps);
    let step = if steps > 1.0 {
        jittered(step, rng)
    } else {
        step
    };
    step.max(floor)
}

impl Flow {
    /// How far a pending image is, in percent: the least `Progress` of its
    /// snapshots, from one `DescribeSnapshots` call, when `reads` asks.
    ///
    /// `None` when not asked, when the image lists no snapshot yet, or when
    /// the backend does not report progress; the last stops `reads` asking,
    /// so that such a backend costs a wait one extra call, not one per poll.
    pub(super) async fn image_progress(
        &self,
        region: &Region,
        image: &Image,
        reads: &ProgressReads,
    ) -> Option<u8> {
        let ids: Vec<SnapshotId> = image
            .block_devices
            .iter()
            .map(|d| d.snapshot_id.clone())
            .collect();
        if ids.is_empty() || !reads.asked() {
            return None;
        }
        // Progress only shortens the wait: an error here costs nothing but the estimate.
        let least = match self.images().describe_snapshots(region, &ids).await {
            Ok(snapshots) if snapshots.len() == ids.len() => {
                snapshots.iter().map(|s| s.progress).min().flatten()
            }
            _ => None,
        };
        if least.is_none() {
            reads.unreported();
        }
        least
    }
}

/// `delay` with full-range ±20 % jitter, from a xorshift of `rng`.
fn jittered(delay: Duration, rng: &mut u64) -> Duration {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    let factor = 0.8 + (*rng % 1000) as f64 / 2500.0;
    delay.mul_f64(factor)
}
