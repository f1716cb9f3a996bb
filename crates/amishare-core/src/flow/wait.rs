//! Polling with exponential backoff, jitter and a deadline.
//!
//! Copies take minutes to hours, so a fixed 15-second waiter wastes calls
//! and invites throttling; the delay grows to a ceiling instead, and a
//! terminal state (`failed`, `terminated`) ends the wait at once.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::flow::request::WaitOptions;
use crate::model::{ImageState, InstanceState};
use crate::store::Clock;

/// What one poll saw.
pub(crate) enum Poll<T> {
    /// Done: the value to return.
    Ready(T),
    /// Not yet, and in what state.
    Pending(Pending),
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
    loop {
        if std::mem::take(&mut skip_probe) {
            let sleep = jittered(delay, &mut rng).min(deadline);
            clock.sleep(sleep).await;
            delay = (delay.mul_f64(1.5)).min(options.max_delay);
        }
        let last = match probe().await {
            Ok(Poll::Ready(value)) => return Ok(value),
            Ok(Poll::Pending(state)) => Seen::Pending(state),
            // Eventual consistency and throttling are worth another poll.
            Err(err) if err.is_retryable() => Seen::Retry(err),
            Err(err) => return Err(err),
        };
        let elapsed = clock.now().saturating_sub(start);
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
        let sleep = jittered(delay, &mut rng).min(deadline - elapsed);
        clock.sleep(sleep).await;
        delay = (delay.mul_f64(1.5)).min(options.max_delay);
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

/// A stable 64-bit hash of a string, for jitter seeds and client tokens.
pub(crate) fn fnv1a(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
