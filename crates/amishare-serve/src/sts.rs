//! STS over the query protocol: `GetCallerIdentity`, the only STS call
//! amishare makes.

use amishare_core::hash::fnv1a;
use amishare_core::store::KeyStore;
use amishare_core::{PrincipalArn, PrincipalKind};
use amishare_sim::SimClient;

use crate::wire::{Service, WireError, STS_VERSION};
use crate::xml::Xml;

/// Runs one STS action as `client`.
pub(crate) async fn handle(
    client: &SimClient,
    action: &str,
    out: &mut Xml,
) -> Result<(), WireError> {
    match action {
        "GetCallerIdentity" => {
            let caller = client
                .caller()
                .await
                .map_err(|err| WireError::from_sim(Service::Sts, &err))?;
            out.leaf("Arn", caller.arn.as_str());
            out.leaf("UserId", unique_id(&caller.arn));
            out.leaf("Account", &caller.account);
            Ok(())
        }
        _ => Err(WireError::new(
            "InvalidAction",
            format!("Could not find operation {action} for version {STS_VERSION}"),
        )),
    }
}

/// The `UserId` STS reports: the account ID for the root, otherwise IAM's
/// unique ID of the user or role (`AIDA…`, `AROA…`, with `:<session>` for a
/// role session). The simulation has no unique IDs, so they are derived
/// from the ARN: stable, and distinct for distinct principals.
fn unique_id(arn: &PrincipalArn) -> String {
    let hash = fnv1a(arn.as_str());
    match arn.kind() {
        PrincipalKind::Root => arn.account().to_string(),
        PrincipalKind::User => format!("AIDA{hash:017X}"),
        PrincipalKind::Role => format!("AROA{hash:017X}"),
        PrincipalKind::AssumedRole => {
            let role_hash = arn.role_arn().map_or(hash, |role| fnv1a(role.as_str()));
            let session = arn.as_str().rsplit('/').next().unwrap_or_default();
            format!("AROA{role_hash:017X}:{session}")
        }
    }
}
