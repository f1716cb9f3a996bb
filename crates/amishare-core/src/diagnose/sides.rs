//! Which sides a doctor looks from: the stores a caller holds, sorted into
//! the image owner's and the target principal's by whom they act as.

use std::sync::Arc;

use crate::diagnose::{Directory, Doctor};
use crate::error::Result;
use crate::id::{AccountId, ImageId, PrincipalArn, Region};
use crate::model::ImageQuery;
use crate::store::Stores;

/// The stores of one principal the doctor may look through, and, where
/// that principal may read IAM, its directory.
#[derive(Debug, Clone)]
pub struct Side {
    /// The principal's stores.
    pub stores: Stores,
    /// Where its IAM policies are read, when this side may read them.
    pub directory: Option<Arc<dyn Directory>>,
}

impl Side {
    /// A side that reads no IAM.
    pub fn new(stores: Stores) -> Side {
        Side {
            stores,
            directory: None,
        }
    }

    /// Reads IAM through `directory` too.
    pub fn with_directory(mut self, directory: Arc<dyn Directory>) -> Side {
        self.directory = Some(directory);
        self
    }
}

impl Doctor {
    /// A doctor looking through each of `sides`: the side in the account of
    /// `principal` is the target's (its own credentials may read its IAM
    /// policies, so its directory comes along); any other is the owner's.
    /// Each side's caller is read once to tell which it is.
    pub async fn looking_from(principal: &PrincipalArn, sides: &[Side]) -> Result<Doctor> {
        let mut doctor = Doctor::new();
        for side in sides {
            let caller = side.stores.keys.caller().await?;
            doctor = if &caller.account == principal.account() {
                let doctor = doctor.with_target(side.stores.clone());
                match &side.directory {
                    Some(directory) => doctor.with_directory(directory.clone()),
                    None => doctor,
                }
            } else {
                doctor.with_owner(side.stores.clone())
            };
        }
        Ok(doctor)
    }

    /// Looks from the owner's side too: the first of `candidates` (an
    /// account and stores acting in it) whose account owns `image` in
    /// `region`. None owning it leaves the doctor as it was; a candidate
    /// that cannot read the image is passed over.
    pub async fn with_owner_among(
        self,
        image: &ImageId,
        region: &Region,
        candidates: impl IntoIterator<Item = (AccountId, Stores)>,
    ) -> Doctor {
        let query = ImageQuery::ids([image.clone()]);
        for (account, stores) in candidates {
            let owned = stores
                .images
                .describe_images(region, &query)
                .await
                .is_ok_and(|images| images.iter().any(|found| found.owner == account));
            if owned {
                return self.with_owner(stores);
            }
        }
        self
    }
}
