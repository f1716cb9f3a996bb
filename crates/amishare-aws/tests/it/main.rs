//! amishare-aws's integration tests, all through the public API and offline:
//!
//! * `replay`: every store operation through the SDK's real serializers and
//!   deserializers, answered by a `StaticReplayClient` from `testdata/replay/`
//!   and `testdata/errors/`, with the requests it sent asserted;
//! * `wire`: a local HTTP server (wiremock on 127.0.0.1) reached through the
//!   endpoint override, for retries, server errors, timeouts, pagination and
//!   how `load` finds credentials;
//! * `conformance`: the behaviour suite on AWS or LocalStack, skipped unless
//!   `AMISHARE_E2E` is set.

mod conformance;
mod replay;
mod support;
mod wire;
