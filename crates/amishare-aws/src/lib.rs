#![doc = include_str!("../README.md")]
//!
//! # Design
//!
//! * **Two stores, one per trait.** [`AwsKeyStore`] implements
//!   [`KeyStore`](amishare_core::store::KeyStore) and [`AwsImageStore`] implements
//!   [`ImageStore`](amishare_core::store::ImageStore), each built from the same
//!   [`SdkConfig`]. They share nothing but the configuration, and each can be
//!   used, mocked or replaced alone, as in the simulation, where one client
//!   plays both roles only because one world backs both. [`AwsKeyStore`]
//!   implements core's [`KeyAdmin`](amishare_core::key_admin::KeyAdmin)
//!   too: enabling, disabling and deleting keys, which the flow never does.
//! * **One client per region.** Every trait method takes the region (or a key
//!   ARN, whose region it uses). A store builds the client of a region from the
//!   configuration with the region overridden, on first use, and keeps it.
//! * **Key ARNs across accounts.** Keys are sent as the caller gave them
//!   ([`KeyRef`](amishare_core::KeyRef)'s display form); `GetKeyPolicy`,
//!   `PutKeyPolicy`, `ListGrants`, `CreateGrant` and `RevokeGrant` always send
//!   the full key ARN.
//! * **Errors.** Every SDK error becomes an [`amishare_core::Error`] whose kind
//!   comes from [`classify`], with AWS's code, AWS's message prefixed by the
//!   operation and its input, and the SDK error as its source, with a
//!   retryable flag for throttling and transient failures.
//! * **One retry layer.** Under a `Flow`, amishare's retry layer
//!   ([`amishare_core::retry::Retrying`]) retries what is safe to repeat;
//!   [`load`] turns the SDK's own retries off by default
//!   ([`ConnectOptions::max_attempts`] is 1) so attempts never multiply.
//!   Stores called without a `Flow` go behind `Retrying` the same way, or
//!   get the SDK's standard retries by raising `max_attempts` (see
//!   [`ConnectOptions`]). [`AwsDirectory`], which no layer above retries,
//!   keeps the SDK's.
//! * **No SDK types in the API** but the configuration: [`SdkConfig`] in, and
//!   amishare's own types through the traits.

// The repository README's Rust examples use this crate and the simulation
// (a dev-dependency): they compile, and run where they need no AWS, as this
// crate's doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct RepositoryReadme;

mod clock;
mod connect;
mod ec2;
mod error;
mod iam;
mod kms;
mod regional;
mod scaling;

pub use aws_config::{ConfigLoader, SdkConfig};

pub use crate::clock::WallClock;
pub use crate::connect::{load, load_with, ConnectOptions, ROLE_SESSION_NAME};
pub use crate::ec2::AwsImageStore;
pub use crate::error::classify;
pub use crate::iam::AwsDirectory;
pub use crate::kms::AwsKeyStore;
pub use crate::scaling::AwsScalingStore;

#[cfg(test)]
mod tests;
