//! amishare-aws's integration tests, all through the public API and offline:
//!
//! * `replay`: every store operation through the SDK's real serializers and
//!   deserializers, answered by a `StaticReplayClient` from `testdata/replay/`
//!   and `testdata/errors/`, with the requests it sent asserted;
//! * `wire`: a local HTTP server (wiremock on 127.0.0.1) reached through the
//!   endpoint override, for retries, server errors, timeouts, pagination and
//!   how `load` finds credentials;
//! * `conformance`: the behaviour suite on AWS, skipped unless
//!   `AMISHARE_E2E` is set;
//! * `serve`: the whole conformance suite, every capability on, through the
//!   SDK against the served simulation (`amishare-serve`) on 127.0.0.1;
//! * `counting`: stores that count each trait method called, checked offline
//!   against the traits;
//! * `localstack` (feature `localstack`, run by `cargo xtask e2e`): the seed's
//!   steps, the suite and every store method against a LocalStack that the
//!   task started.

mod conformance;
mod counting;
#[cfg(feature = "localstack")]
mod localstack;
mod replay;
mod serve;
mod support;
mod wire;
