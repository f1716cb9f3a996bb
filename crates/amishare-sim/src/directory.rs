//! The world as a [`Directory`]: it knows every principal's IAM policies and
//! organization, so the doctor sees the whole chain on the simulation.

use amishare_core::diagnose::{Directory, NamedPolicy, PrincipalFacts};
use amishare_core::{Error, ErrorKind, PrincipalArn, PrincipalKind, Result};
use async_trait::async_trait;

use crate::world::World;

#[async_trait]
impl Directory for World {
    async fn principal(&self, principal: &PrincipalArn) -> Result<Option<PrincipalFacts>> {
        let state = self.lock();
        let missing = || {
            Error::new(
                ErrorKind::NotFound,
                format!("principal {principal} does not exist in the simulation"),
            )
        };
        let account = state
            .iam
            .accounts
            .get(principal.account())
            .ok_or_else(missing)?;
        let policies = match principal.kind() {
            PrincipalKind::Root => Vec::new(),
            // A session acts with its role's policies.
            PrincipalKind::AssumedRole => {
                let role = principal.role_arn().ok_or_else(missing)?;
                account
                    .principals
                    .get(role.as_str())
                    .ok_or_else(missing)?
                    .policies
                    .clone()
            }
            PrincipalKind::User | PrincipalKind::Role => account
                .principals
                .get(principal.as_str())
                .ok_or_else(missing)?
                .policies
                .clone(),
        };
        Ok(Some(PrincipalFacts {
            org_known: true,
            org_id: account.org_id.clone(),
            org_paths: account.org_paths.clone(),
            policies: policies
                .into_iter()
                .enumerate()
                .map(|(index, document)| NamedPolicy {
                    name: document
                        .id
                        .clone()
                        .unwrap_or_else(|| format!("policy-{index}")),
                    document,
                })
                .collect(),
        }))
    }
}
