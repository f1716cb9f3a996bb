#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod api;
mod client;
mod consistency;
mod directory;
mod ec2;
mod errors;
pub mod faults;
#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod harness;
mod ids;
mod kms;
mod kms_admin;
mod knobs;
mod limits;
mod log;
mod scaling;
pub mod seed;
mod state;
mod world;
pub mod world_file;

#[cfg(test)]
mod tests;

pub use crate::client::SimClient;
pub use crate::consistency::{Consistency, ConsistencyTally};
pub use crate::kms_admin::{AliasEntry, ScheduledDeletion, DELETION_WINDOW_DAYS};
pub use crate::knobs::{ErrorSpec, Knobs, PendingDeletionError, UnknownIds};
pub use crate::log::CallRecord;
pub use crate::world::{SimClock, SteppingClock, VolumeEncryption, VolumeSeed, World};
pub use crate::world_file::{AccessKey, LockHolder, WorldFile, WorldLock};
