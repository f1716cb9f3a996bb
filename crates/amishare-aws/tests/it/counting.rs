//! Stores that count every store method called through them, so that an
//! end-to-end run can show that each one reached the server.
//!
//! The counting store is core's one forwarding (`around_stores!`) with a
//! hook that tallies each call by its operation; the operation table's
//! method names are checked against the traits in core's sources offline,
//! so a method added to a trait cannot go uncounted.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use amishare_core::ops::{Around, OpCall, Operation, StoreTrait};
use amishare_core::Result;

/// The operations of the store traits, in the traits' order.
fn store_operations() -> impl Iterator<Item = Operation> {
    [StoreTrait::Keys, StoreTrait::Images, StoreTrait::Scaling]
        .into_iter()
        .flat_map(Operation::of_store)
}

/// The store method that makes `op`.
fn method(op: Operation) -> &'static str {
    op.method().map_or(op.name(), |(_, method)| method)
}

/// How often each method was called, and how many of those calls failed.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    counts: Mutex<BTreeMap<Operation, Tally>>,
}

/// Calls of one method.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    ok: usize,
    failed: usize,
}

impl Calls {
    /// Tallies one call of `op` and hands its result back.
    fn record<T>(&self, op: Operation, result: Result<T>) -> Result<T> {
        let mut counts = self.counts.lock().expect("calls lock");
        let tally = counts.entry(op).or_default();
        match &result {
            Ok(_) => tally.ok += 1,
            Err(_) => tally.failed += 1,
        }
        result
    }

    /// Calls of mutating methods, failed ones included (they reached the server).
    pub(crate) fn mutating(&self) -> usize {
        let counts = self.counts.lock().expect("calls lock");
        counts
            .iter()
            .filter(|(op, _)| op.is_mutating())
            .map(|(_, t)| t)
            .map(|t| t.ok + t.failed)
            .sum()
    }

    /// The trait methods never called.
    pub(crate) fn missing(&self) -> Vec<&'static str> {
        let counts = self.counts.lock().expect("calls lock");
        store_operations()
            .filter(|op| !counts.contains_key(op))
            .map(method)
            .collect()
    }

    /// One `method: N ok, M failed` line per method, in the traits' order.
    pub(crate) fn report(&self) -> String {
        let counts = self.counts.lock().expect("calls lock");
        store_operations()
            .map(|op| {
                let t = counts.get(&op).copied().unwrap_or_default();
                format!("{}: {} ok, {} failed", method(op), t.ok, t.failed)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A store that records each call in shared [`Calls`] and forwards it.
#[derive(Debug)]
pub(crate) struct Counting<T> {
    inner: T,
    calls: Arc<Calls>,
}

impl<T> Counting<T> {
    pub(crate) fn new(inner: T, calls: Arc<Calls>) -> Counting<T> {
        Counting { inner, calls }
    }
}

impl<S: Send + Sync> Around for Counting<S> {
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
        let sent = send();
        async move { self.calls.record(call.op, sent.await) }
    }
}

amishare_core::around_stores!(KeyStore for [S: amishare_core::store::KeyStore] Counting<S>, |this| &this.inner);
amishare_core::around_stores!(ImageStore for [S: amishare_core::store::ImageStore] Counting<S>, |this| &this.inner);
amishare_core::around_stores!(
    ScalingStore for [S: amishare_core::scaling::ScalingStore] Counting<S>,
    |this| &this.inner
);

/// The `async fn` names declared in `pub trait <name>` of a core source file.
fn trait_methods(source: &str, name: &str) -> Vec<String> {
    let start = source
        .find(&format!("pub trait {name}"))
        .unwrap_or_else(|| panic!("the source declares no trait {name}"));
    let body = &source[start..];
    let end = body.find("\n}\n").expect("the trait block ends");
    body[..end]
        .lines()
        .filter_map(|line| line.trim().strip_prefix("async fn "))
        .map(|rest| rest.split(['(', '<']).next().unwrap_or(rest).to_owned())
        .collect()
}

/// The operation table names every store method, in the traits' order, so
/// that no method goes uncounted.
#[test]
fn counted_methods_are_the_trait_methods() {
    let core = concat!(env!("CARGO_MANIFEST_DIR"), "/../amishare-core/src/");
    for (file, name, store) in [
        ("store.rs", "KeyStore", StoreTrait::Keys),
        ("store.rs", "ImageStore", StoreTrait::Images),
        ("scaling.rs", "ScalingStore", StoreTrait::Scaling),
    ] {
        let path = format!("{core}{file}");
        let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let table: Vec<&str> = Operation::of_store(store).map(method).collect();
        assert_eq!(trait_methods(&source, name), table, "{name}");
    }
}

/// Calls are tallied per method and mutating ones are summed.
#[test]
fn calls_are_tallied() {
    let calls = Calls::default();
    let _ = calls.record(Operation::CreateKey, Ok(()));
    let _ = calls.record(
        Operation::CreateKey,
        Err::<(), _>(amishare_core::Error::new(
            amishare_core::ErrorKind::Service,
            "boom",
        )),
    );
    let _ = calls.record(Operation::DescribeKey, Ok(()));
    assert_eq!(calls.mutating(), 2);
    assert!(!calls.missing().contains(&"create_key"));
    assert!(calls.missing().contains(&"ebs_defaults"));
    assert!(calls.report().contains("create_key: 1 ok, 1 failed"));
}
