//! The call log: what every principal asked of the simulated AWS.

use amishare_core::{PrincipalArn, Region};
use serde::Serialize;

/// One call made through a [`SimClient`](crate::SimClient).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRecord {
    /// Who made the call.
    pub principal: PrincipalArn,
    /// The region of the call: `None` for `sts:GetCallerIdentity`; for KMS
    /// calls that name the key by ARN, the key's region.
    pub region: Option<Region>,
    /// The API action, e.g. `ec2:CopyImage` or `kms:PutKeyPolicy`.
    pub operation: &'static str,
    /// Whether the operation changes state when it succeeds.
    pub mutating: bool,
    /// The AWS error code, when the call failed.
    pub error: Option<String>,
}

impl CallRecord {
    /// Whether the call succeeded.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}

/// The records, plus counters that are kept even when recording is off.
#[derive(Debug)]
pub(crate) struct CallLog {
    pub(crate) records: Vec<CallRecord>,
    pub(crate) total: usize,
    pub(crate) mutating: usize,
}

impl Default for CallLog {
    /// A log with room for a share-and-accept flow's calls from the start,
    /// so that recording them does not move the log through every size.
    fn default() -> CallLog {
        CallLog {
            records: Vec::with_capacity(64),
            total: 0,
            mutating: 0,
        }
    }
}

impl CallLog {
    pub(crate) fn clear(&mut self) {
        self.records.clear();
        self.total = 0;
        self.mutating = 0;
    }
}
