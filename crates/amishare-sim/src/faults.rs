//! Seeded fault injection: throttling, transient server errors (before or
//! after the service acts), eventual consistency and failed copies, between
//! a flow and a [`SimClient`].
//!
//! [`Faulty`] answers as AWS does on a bad day: each KMS, EC2 or Auto
//! Scaling call may be throttled (`RequestLimitExceeded`,
//! `ThrottlingException`) or fail with a 5xx (`InternalError`,
//! `KMSInternalException`) before it acts; a write that repeats safely may
//! act and then lose its answer. It is a store hook ([`Around`]): it sees
//! each call's operation row, never its arguments. Eventual consistency and
//! failed copies are the world's own behaviour (`docs/spec/kms.md` §A9,
//! `docs/spec/ec2.md` §B19), which [`Faults::visibility_delay`] and
//! [`Faults::copy_failure`] switch on. The same seed gives the same faults,
//! so a failing run can be replayed.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amishare_core::catalogue;
use amishare_core::ops::{Around, OpCall, Operation, Service};
use amishare_core::{Error, ErrorKind, Result};
use serde::Serialize;

use crate::client::SimClient;
use crate::consistency::{Consistency, ConsistencyTally};
use crate::ids::IdGen;

/// How often and how long things go wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Seeds the faults' generator.
    pub seed: u64,
    /// The chance that a call is throttled.
    pub throttle: f64,
    /// The chance that a call fails with a 5xx before the service acts.
    pub server_error: f64,
    /// The chance that a write whose repetition is safe, as the operation
    /// table says (`docs/spec/ops.md` §E2), acts and then fails with a 5xx,
    /// as when the answer is lost: `PutKeyPolicy`, `CreateAlias`,
    /// `CreateImage`, `CopyImage` and `RunInstances` with a client token,
    /// `CreateGrant` with a name, `TerminateInstances`, the permission
    /// changes and the deletions the flow settles. (`CreateKey` takes no
    /// client token, so a lost answer to it is not injected.)
    pub lost_answer: f64,
    /// How long a new key, alias, image, launch permission or grant stays
    /// invisible to reads: the world's
    /// [`Consistency::visibility_delay`], for every client of the world.
    pub visibility_delay: Duration,
    /// The chance that a new copy goes `failed` with an internal error: the
    /// world's [`Consistency::copy_failure`], for every client of the world.
    pub copy_failure: f64,
    /// Stops the caller after this many writes have acted: every later call
    /// fails, as if the process had died at that step boundary.
    pub crash_after: Option<usize>,
}

impl Faults {
    /// The world's part of the faults, drawn from the same seed.
    fn consistency(&self) -> Consistency {
        Consistency {
            visibility_delay: self.visibility_delay,
            copy_failure: self.copy_failure,
            seed: self.seed,
        }
    }

    /// No faults at all.
    pub fn none(seed: u64) -> Faults {
        Faults {
            seed,
            throttle: 0.0,
            server_error: 0.0,
            lost_answer: 0.0,
            visibility_delay: Duration::ZERO,
            copy_failure: 0.0,
            crash_after: None,
        }
    }
}

/// What the faults did, summed over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FaultTally {
    /// Calls throttled.
    pub throttled: usize,
    /// Calls failed with a 5xx before acting.
    pub server_errors: usize,
    /// Writes that acted and then lost their answer.
    pub lost_answers: usize,
    /// Reads that did not see something new (counted by the world).
    pub hidden: usize,
    /// Copies made to fail (counted by the world).
    pub failed_copies: usize,
}

impl std::ops::AddAssign for FaultTally {
    fn add_assign(&mut self, other: FaultTally) {
        self.throttled += other.throttled;
        self.server_errors += other.server_errors;
        self.lost_answers += other.lost_answers;
        self.hidden += other.hidden;
        self.failed_copies += other.failed_copies;
    }
}

#[derive(Debug)]
struct Shared {
    faults: Faults,
    /// The generator of the faults' draws.
    rng: IdGen,
    /// Throttles, 5xx and lost answers; the world counts the rest.
    tally: FaultTally,
    /// The world's counts when the faults were made, so that the tally
    /// counts only what happened since.
    world_before: ConsistencyTally,
    /// Writes that acted so far.
    acted: usize,
}

/// A [`SimClient`] behind seeded faults. Clones share the faults, their
/// generator and their tally, so the owner's and the target's clients of
/// one run can share one `Faulty`'s state through [`Faulty::for_client`].
///
/// It is a [`KeyStore`](amishare_core::store::KeyStore),
/// [`ImageStore`](amishare_core::store::ImageStore) and
/// [`ScalingStore`](amishare_core::scaling::ScalingStore) by
/// [`around_stores!`](amishare_core::around_stores): each call goes through
/// its [`Around`] hook.
#[derive(Clone)]
pub struct Faulty {
    inner: SimClient,
    shared: Arc<Mutex<Shared>>,
}

impl fmt::Debug for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faulty")
            .field("principal", &self.inner.principal().as_str())
            .finish()
    }
}

impl Faulty {
    /// `client` behind `faults`. The faults' visibility delay and copy
    /// failure are set on the client's world (replacing what was set
    /// there), so every client of the world meets them.
    pub fn new(client: SimClient, faults: Faults) -> Faulty {
        let world = client.world();
        world.set_consistency(faults.consistency());
        let world_before = world.consistency_tally();
        Faulty {
            shared: Arc::new(Mutex::new(Shared {
                rng: IdGen::new(faults.seed ^ 0x5851_f42d_4c95_7f2d),
                faults,
                tally: FaultTally::default(),
                world_before,
                acted: 0,
            })),
            inner: client,
        }
    }

    /// Another principal's client behind the same faults and generator.
    pub fn for_client(&self, client: SimClient) -> Faulty {
        Faulty {
            inner: client,
            shared: self.shared.clone(),
        }
    }

    /// What the faults did so far: this `Faulty`'s throttles, 5xx and lost
    /// answers, and what the world hid and failed since it was made.
    pub fn tally(&self) -> FaultTally {
        let world = self.inner.world().consistency_tally();
        let shared = self.lock();
        FaultTally {
            hidden: world.hidden - shared.world_before.hidden,
            failed_copies: world.failed_copies - shared.world_before.failed_copies,
            ..shared.tally
        }
    }

    /// Replaces the faults, keeping the generator and the tally; the
    /// visibility delay and copy failure are set on the world again.
    pub fn set_faults(&self, faults: Faults) {
        self.inner.world().set_consistency(faults.consistency());
        self.lock().faults = faults;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Throttles the call or fails it with a 5xx before it acts, by chance,
    /// with the codes of the operation's service.
    fn before(&self, op: Operation) -> Result<()> {
        let mut shared = self.lock();
        if shared
            .faults
            .crash_after
            .is_some_and(|after| shared.acted >= after)
        {
            return Err(Error::new(
                ErrorKind::Service,
                format!("stopped after {} write(s)", shared.acted),
            ));
        }
        if shared.rng.next_unit() < shared.faults.throttle {
            shared.tally.throttled += 1;
            let code = catalogue::throttle_code(op.service());
            let message = match op.service() {
                Service::Ec2 => "Request limit exceeded.",
                _ => "Rate exceeded",
            };
            return Err(catalogue::error(code, message));
        }
        if shared.rng.next_unit() < shared.faults.server_error {
            shared.tally.server_errors += 1;
            return Err(server_error(op));
        }
        Ok(())
    }

    /// Counts a write that acted, and turns its success into a lost answer
    /// by chance when the operation table says a repeat of this call is
    /// safe (`docs/spec/ops.md` §E2).
    fn after<T>(&self, call: &OpCall<'_>, result: Result<T>) -> Result<T> {
        let value = result?;
        if !call.op.is_mutating() {
            return Ok(value);
        }
        let mut shared = self.lock();
        shared.acted += 1;
        if call.is_safe_to_repeat() && shared.rng.next_unit() < shared.faults.lost_answer {
            shared.tally.lost_answers += 1;
            return Err(server_error(call.op));
        }
        Ok(value)
    }
}

/// The 5xx of the operation's service.
fn server_error(op: Operation) -> Error {
    catalogue::error(
        catalogue::internal_code(op.service()),
        "An internal error has occurred",
    )
}

/// Faults before the call and after it; STS's `GetCallerIdentity`, which
/// answers from the credentials alone, goes through untouched.
impl Around for Faulty {
    fn around<'a, T, F, Fut>(
        &'a self,
        call: OpCall<'a>,
        mut send: F,
    ) -> impl Future<Output = Result<T>> + Send + 'a
    where
        T: Send + 'static,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a,
    {
        // The faults before acting are drawn as the call is made: the
        // forwarding awaits its future at once.
        let faulted = call.op.service() != Service::Sts;
        let before = if faulted {
            self.before(call.op)
        } else {
            Ok(())
        };
        async move {
            before?;
            let result = send().await;
            if faulted {
                self.after(&call, result)
            } else {
                result
            }
        }
    }
}

amishare_core::around_stores!(KeyStore for [] Faulty, |this| &this.inner);
amishare_core::around_stores!(ImageStore for [] Faulty, |this| &this.inner);
amishare_core::around_stores!(ScalingStore for [] Faulty, |this| &this.inner);
