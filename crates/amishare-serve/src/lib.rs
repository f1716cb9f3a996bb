#![doc = include_str!("../README.md")]
//!
//! # The server
//!
//! [`serve`] (or [`Server::bind`] then [`Server::run`]) takes a world
//! file's lock and loads it, serves it over HTTP/1.1 until its shutdown
//! future completes, and saves it back (atomically) before letting the file
//! go, so that state survives restarts. It speaks, on one port, the wire protocols of the three
//! services amishare uses, so that the AWS SDKs and the `aws` command line
//! client work against it unchanged (`--endpoint-url http://127.0.0.1:PORT`):
//!
//! - **EC2**, the query protocol (`Action=…&Version=2016-11-15`, form
//!   encoded): `CreateImage`, `CopyImage`, `DescribeImages`,
//!   `DeregisterImage`, `ModifyImageAttribute` and `DescribeImageAttribute`
//!   (launch permissions), `DescribeSnapshots`, `ModifySnapshotAttribute` and
//!   `DescribeSnapshotAttribute` (create-volume permissions),
//!   `DeleteSnapshot`, `RunInstances`, `DescribeInstances`,
//!   `TerminateInstances`, `DescribeVolumes`, `GetEbsEncryptionByDefault` and
//!   `GetEbsDefaultKmsKeyId`. Answers are XML with EC2's element names;
//!   errors are EC2's `<Response><Errors><Error>` envelope.
//! - **KMS**, JSON 1.1 (`X-Amz-Target: TrentService.<Operation>`):
//!   `CreateKey`, `DescribeKey`, `CreateAlias`, `GetKeyPolicy`,
//!   `PutKeyPolicy`, `ListGrants`, `ListRetirableGrants`, `CreateGrant` and `RevokeGrant`; errors
//!   are `{"__type": …, "message": …}`.
//! - **STS**, the query protocol: `GetCallerIdentity`.
//! - **EC2 Auto Scaling**, the query protocol (`Action=…&Version=2011-01-01`,
//!   service `autoscaling` in the credential scope): `CreateAutoScalingGroup`,
//!   `DescribeAutoScalingGroups`, `DescribeScalingActivities` and
//!   `DeleteAutoScalingGroup`; and on the EC2 side `CreateLaunchTemplate`,
//!   `DescribeLaunchTemplates` and `DeleteLaunchTemplate`. Groups launch as
//!   the account's service-linked role (`docs/spec/production.md` §C1).
//!
//! Each request becomes at most one call of the caller's
//! [`SimClient`](amishare_sim::SimClient) (its AWS-shaped operations are in
//! [`amishare_sim::api`]), so it is authorized as the
//! simulation authorizes it (key policies, IAM policies, grants, key states)
//! and fails with AWS's codes and messages. Bad input (a missing parameter,
//! a malformed ID, a body that does not decode) gets the error AWS gives,
//! naming the parameter.
//!
//! **Callers.** The service, region and access key ID come from the SigV4
//! credential scope of the `Authorization` header
//! (`Credential=AKID/20261128/ap-northeast-1/ec2/aws4_request`); a scope
//! naming another service than the one called, or a region AWS does not have
//! (nor [`ServeOptions::extra_regions`]), is refused with AWS's error. The
//! world file's `access_keys` map an access key ID to a principal
//! (`"AKIAAADMINEXAMPLE001": {"principal": "arn:aws:iam::111111111111:user/a-admin", "secret_access_key": "…"}`).
//! Without [`ServeOptions::authenticate`] (loopback only) signatures are not
//! checked, and, as in LocalStack, an unmapped 12-digit key ID is the root
//! of that account when the world has it; up to
//! [`ServeOptions::new_accounts`] (none by default) new accounts are added
//! for such keys. With it, every request must be signed with the key's
//! secret (`sigv4`), within 15 minutes of the server's clock, and only the
//! world's keys with a secret are known. Any other key is refused as AWS
//! refuses an unknown key: `AuthFailure` (EC2), `UnrecognizedClientException`
//! (KMS), `InvalidClientTokenId` (STS).
//!
//! **Clients.** [`Limits`] bound the connections open at once (past the
//! limit the one idle longest is closed for the new one) and time out slow
//! headers, bodies and idle connections.
//!
//! **The world file.** The server holds its lock ([`amishare_sim::WorldLock`])
//! from start until its last save, naming its endpoint in it: a command on
//! the same file is refused and told where the server is.
//!
//! **Time.** The world's clock follows wall time sped up by
//! [`ServeOptions::time_scale`] (default [`DEFAULT_TIME_SCALE`], 100: the
//! seed's copy takes about 3 s), so a client that polls sees `pending` turn
//! `available` and a doomed instance turn `terminated`.
//!
//! **Saving.** On shutdown, after requests in flight finish; on request with
//! `POST /_amishare/save` (answered with `{"saved": PATH, "now_ms": …}`);
//! or from the program embedding the server through a [`SaveHandle`]
//! (`amishare sim serve` saves on `SIGHUP`). `GET /_amishare/health` answers once
//! the server is up.
//!
//! **Tested** by `tests/it` (each operation over HTTP against the recorded
//! AWS answers in `testdata/replay/` and `testdata/errors/`), by
//! `amishare-aws`'s whole conformance suite through the SDK, and by
//! `tests/awscli-seed.sh`, the seed flow with the stock `aws` CLI against
//! `amishare sim serve`, which `cargo xtask e2e` runs.
//!
//! EC2's `Describe*` calls take filters (AWS's semantics, from
//! `amishare_core::filter`) and `MaxResults`/`NextToken`; KMS's lists take
//! `Limit`/`Marker` and answer `Truncated`/`NextMarker` (one paging rule,
//! `amishare_sim::api`); every EC2 call takes `DryRun`. What is left out:
//! the fields the simulation does not model (creation dates, architectures,
//! instance types after launch); a filter name an operation does not model
//! is refused, never ignored.

mod auth;
mod autoscaling;
mod conns;
mod ec2;
mod kms;
mod query;
mod server;
mod sigv4;
mod sts;
mod wire;
mod xml;

pub use crate::conns::Limits;
pub use crate::server::{
    serve, SaveHandle, ServeError, ServeOptions, Server, DEFAULT_TIME_SCALE, HEALTH_PATH, SAVE_PATH,
};
