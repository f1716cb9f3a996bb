//! amishare's in-memory AWS: KMS, EC2 and STS for many accounts, authorized
//! the way AWS authorizes them.
//!
//! A [`World`] holds accounts (optionally in an organization), IAM users and
//! roles with identity policies, KMS keys with key policies, grants and
//! states, and EC2 images, snapshots and instances in every region.
//! [`World::client`] hands out a [`SimClient`] that acts as one principal and
//! implements both [`KeyStore`](amishare_core::KeyStore) and
//! [`ImageStore`](amishare_core::ImageStore), so the whole cross-account flow
//! of sharing a KMS-encrypted AMI runs offline, in microseconds.
//!
//! What sets it apart from a mock:
//! - every call is authorized: EC2 actions against the caller's identity
//!   policies (`UnauthorizedOperation`), KMS calls against the key policy,
//!   the caller's identity policies and the key's grants, with the
//!   cross-account rules (`AccessDeniedException` with AWS's message);
//! - key states (`DisabledException`, pending deletion) apply;
//! - AWS's asynchronous failures are reproduced: `CopyImage` returns an image
//!   ID and the image later goes `failed`; `RunInstances` returns a `pending`
//!   instance that later terminates with `Client.InternalError: Client error
//!   on launch` when EC2 cannot use a key on the caller's behalf;
//! - errors carry AWS's codes and messages.
//!
//! Time is virtual ([`SimClock`]): states change lazily when read, so on a
//! paused tokio runtime a four-minute copy takes no real time. IDs are
//! deterministic: the same seed and the same calls give the same IDs.
//! Behaviours AWS does not document precisely are [`Knobs`].
//!
//! ```
//! use amishare_core::{AccountId, ImageQuery, ImageStore, Region};
//! use amishare_sim::{VolumeEncryption, VolumeSeed, World};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! let world = World::new(7);
//! let owner = AccountId::parse("111111111111").unwrap();
//! let region = Region::parse("ap-northeast-1").unwrap();
//! let root = world.add_account(&owner).unwrap();
//! let instance = world
//!     .seed_instance(&owner, &region, &[VolumeSeed::root(VolumeEncryption::Unencrypted)])
//!     .unwrap();
//! let ec2 = world.client(&root).unwrap();
//! let image = ec2
//!     .create_image(
//!         &region,
//!         &amishare_core::CreateImageRequest {
//!             instance,
//!             name: "golden".to_owned(),
//!             tags: Default::default(),
//!         },
//!     )
//!     .await
//!     .unwrap();
//! world.advance(std::time::Duration::from_secs(600));
//! let images = ec2.describe_images(&region, &ImageQuery::ids([image])).await.unwrap();
//! assert_eq!(images[0].state, amishare_core::ImageState::Available);
//! # });
//! ```

mod client;
mod directory;
mod ec2;
mod errors;
pub mod faults;
#[cfg(feature = "conformance")]
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
pub use crate::kms_admin::{AliasEntry, ScheduledDeletion, DELETION_WINDOW_DAYS};
pub use crate::knobs::{ErrorSpec, Knobs, PendingDeletionError, UnknownIds};
pub use crate::log::CallRecord;
pub use crate::world::{SimClock, SteppingClock, VolumeEncryption, VolumeSeed, World};
pub use crate::world_file::{AccessKey, LockHolder, WorldFile, WorldLock};
