//! Key administration: the calls a key's owner makes to take its key out of
//! use and back (`docs/spec/kms.md` §A3, §A7).
//!
//! amishare's flow never makes them, so they are not part of
//! [`KeyStore`](crate::store::KeyStore); a user's own tests of a key's lifecycle
//! (and the conformance suite's) need them on every backend, so they are a
//! small trait of their own, reachable from
//! [`Stores::key_admin`](crate::Stores::key_admin).
//!
//! None works across accounts: each acts on a key of the caller's account
//! and needs its action allowed by the key policy (§A7).

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::id::KeyArn;

/// What `ScheduleKeyDeletion` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledDeletion {
    /// The key.
    pub key: KeyArn,
    /// When the waiting period ends, on the backend's clock (the time since
    /// its [`Clock`](crate::Clock)'s epoch: the Unix epoch on AWS). KMS
    /// leaves it out for a multi-Region primary key with replicas, whose
    /// waiting period starts when its last replica is deleted.
    pub deletion_at: Option<Duration>,
    /// The waiting period, in days.
    pub window_days: u32,
}

/// KMS key administration as one principal sees it. Each call goes to the
/// key's own region.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait KeyAdmin: Send + Sync + Debug {
    /// `EnableKey`: a disabled key becomes `Enabled`; an enabled one stays
    /// so. A key pending deletion is refused (`KMSInvalidStateException`).
    async fn enable_key(&self, key: &KeyArn) -> Result<()>;

    /// `DisableKey`: the key can no longer be used, by the owner or by EC2
    /// on anyone's behalf. A key pending deletion is refused.
    async fn disable_key(&self, key: &KeyArn) -> Result<()>;

    /// `ScheduleKeyDeletion` with `PendingWindowInDays` (7 to 30; KMS's
    /// default, 30, when `None`): the key becomes `PendingDeletion`.
    async fn schedule_key_deletion(
        &self,
        key: &KeyArn,
        window_days: Option<u32>,
    ) -> Result<ScheduledDeletion>;

    /// `CancelKeyDeletion`: the key comes back `Disabled`, not `Enabled`.
    async fn cancel_key_deletion(&self, key: &KeyArn) -> Result<()>;
}
