//! Connections: how many are served at once, and how long a client may take
//! over each part of a request, so that slow or idle clients cannot starve
//! the others.
//!
//! - A client has [`Limits::header_timeout`] to send a request's headers,
//!   counted from when the connection opens or its previous answer went out
//!   (hyper's own header-read timer): a kept-alive connection idle that long
//!   is closed.
//! - It has [`Limits::body_timeout`] to send the body; then it is answered
//!   `408 Request Timeout` and the connection closed.
//! - A connection with no request in progress and nothing sent or answered
//!   for [`Limits::idle_timeout`] (a client that does not read its answer,
//!   say) is closed.
//! - At most [`Limits::max_connections`] are open (a tokio semaphore); a new
//!   connection past that closes the one that has waited longest without a
//!   request in progress, so the newest client is always served: holding
//!   many connections open costs an attacker the connections, not the
//!   server its other clients.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How many connections are served at once, and how long a client may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most connections open at once (at least 1).
    pub max_connections: usize,
    /// How long a client has to send a request's headers, from when the
    /// connection opens or its previous answer was sent.
    pub header_timeout: Duration,
    /// How long a client has to send a request's body.
    pub body_timeout: Duration,
    /// How long a connection may go with no request in progress and nothing
    /// received or answered.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    /// 1,024 connections; 10 s for headers, 10 s for a body, 30 s idle.
    fn default() -> Limits {
        Limits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// One open connection, as the admission and the idle watch see it.
pub(crate) struct Slot {
    id: u64,
    /// A request is being answered: the connection is not closed for room.
    busy: AtomicBool,
    /// When a request last began or ended.
    last: Mutex<Instant>,
    /// Told to close (to make room).
    close: Notify,
}

impl Slot {
    /// A request's headers have arrived.
    pub(crate) fn touch(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// The request is being answered, or (with `false`) has been.
    pub(crate) fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Ordering::Release);
        self.touch();
    }

    fn last(&self) -> Instant {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Completes when the connection is to close: told to make room, or
    /// idle for `idle` with no request in progress.
    pub(crate) async fn closing(&self, idle: Duration) {
        let told = self.close.notified();
        tokio::pin!(told);
        loop {
            let deadline = self.last() + idle;
            tokio::select! {
                () = &mut told => return,
                () = tokio::time::sleep_until(deadline) => {
                    if !self.busy.load(Ordering::Acquire) && self.last() + idle <= Instant::now() {
                        return;
                    }
                }
            }
        }
    }
}

/// The open connections and the permits they hold.
pub(crate) struct Connections {
    permits: Arc<Semaphore>,
    open: Mutex<BTreeMap<u64, Arc<Slot>>>,
    next: AtomicU64,
}

/// A connection's place: its slot, and its permit until dropped.
pub(crate) struct Admitted {
    pub(crate) slot: Arc<Slot>,
    connections: Arc<Connections>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.connections
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.slot.id);
    }
}

impl Connections {
    pub(crate) fn new(limits: &Limits) -> Arc<Connections> {
        Arc::new(Connections {
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            open: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(0),
        })
    }

    /// A place for a new connection: a free permit, or the permit of the
    /// connection that has waited longest with no request in progress,
    /// which is told to close.
    pub(crate) async fn admit(self: &Arc<Self>) -> Admitted {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                self.make_room();
                self.permits
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed")
            }
        };
        let slot = Arc::new(Slot {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            busy: AtomicBool::new(false),
            last: Mutex::new(Instant::now()),
            close: Notify::new(),
        });
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(slot.id, slot.clone());
        Admitted {
            slot,
            connections: self.clone(),
            _permit: permit,
        }
    }

    /// Tells the connection idle longest to close.
    fn make_room(&self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let oldest = open
            .values()
            .filter(|slot| !slot.busy.load(Ordering::Acquire))
            .min_by_key(|slot| slot.last())
            .map(|slot| slot.id);
        if let Some(id) = oldest {
            if let Some(slot) = open.remove(&id) {
                tracing::debug!(id, "closing the longest-idle connection to make room");
                slot.close.notify_one();
            }
        }
    }

    /// How many connections are open.
    pub(crate) fn count(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}
