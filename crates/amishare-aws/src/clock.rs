//! [`WallClock`]: wall time for waits against AWS.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use amishare_core::Clock;
use async_trait::async_trait;

/// Real time: [`Clock::now`] is the time since the Unix epoch, and
/// [`Clock::sleep`] sleeps on tokio's timer.
///
/// Because its epoch is fixed, `now` never repeats across runs, which keeps
/// names derived from it unique in a shared account.
#[derive(Debug, Clone, Copy, Default)]
pub struct WallClock;

#[async_trait]
impl Clock for WallClock {
    fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}
