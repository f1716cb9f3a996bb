//! Who is calling: the access key ID, region and service of a request's
//! SigV4 credential scope, and the principal the access key stands for.
//!
//! Signatures are not verified: the simulation trusts its clients, as
//! LocalStack does, and needs the key only to know who calls.

use amishare_core::{AccountId, PrincipalArn};
use amishare_sim::World;
use hyper::header::{HeaderMap, AUTHORIZATION};

use crate::wire::{Service, WireError};

/// The credential scope of a signed request:
/// `Credential=<access key ID>/<date>/<region>/<service>/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credential {
    pub(crate) access_key: String,
    pub(crate) region: String,
    pub(crate) service: String,
}

/// The credential of a request, from its `Authorization` header or, for a
/// presigned URL, its `X-Amz-Credential` query parameter.
pub(crate) fn credential(headers: &HeaderMap, query: Option<&str>) -> Option<Credential> {
    if let Some(header) = headers.get(AUTHORIZATION) {
        let header = header.to_str().ok()?;
        let rest = header.strip_prefix("AWS4-HMAC-SHA256")?;
        let scope = rest
            .split([',', ' '])
            .find_map(|part| part.trim().strip_prefix("Credential="))?;
        return parse_scope(scope);
    }
    let query = query?;
    query.split('&').find_map(|pair| {
        let value = pair.strip_prefix("X-Amz-Credential=")?;
        parse_scope(&value.replace("%2F", "/").replace("%2f", "/"))
    })
}

fn parse_scope(scope: &str) -> Option<Credential> {
    let parts: Vec<&str> = scope.split('/').collect();
    match parts.as_slice() {
        [access_key, _date, region, service, "aws4_request"] if !access_key.is_empty() => {
            Some(Credential {
                access_key: (*access_key).to_owned(),
                region: (*region).to_owned(),
                service: (*service).to_owned(),
            })
        }
        _ => None,
    }
}

/// The principal an access key ID signs as: the world file's mapping, or,
/// for an unmapped 12-digit key ID, the root of that account, which is
/// created if the world does not have it yet (as LocalStack does).
pub(crate) fn principal(world: &World, access_key: &str) -> Option<PrincipalArn> {
    if let Some(principal) = world.access_keys().remove(access_key) {
        return Some(principal);
    }
    let account = AccountId::parse(access_key).ok()?;
    if !world.accounts().contains(&account) {
        // Another request may have added it meanwhile; either way it exists.
        let _ = world.add_account(&account);
        tracing::info!(
            account = account.as_str(),
            "added an account for its access key"
        );
    }
    Some(account.root_arn())
}

/// The error AWS gives for an access key it does not know.
pub(crate) fn unknown_access_key(service: Service) -> WireError {
    match service {
        Service::Ec2 => WireError::new(
            "AuthFailure",
            "AWS was not able to validate the provided access credentials",
        )
        .with_status(401),
        Service::Kms => WireError::new(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ),
        Service::Sts | Service::AutoScaling => WireError::new(
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        ),
    }
}

/// The error AWS gives for a request that is not signed.
pub(crate) fn missing_authentication(service: Service) -> WireError {
    match service {
        Service::Ec2 | Service::Sts | Service::AutoScaling => WireError::new(
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        )
        .with_status(if service == Service::Ec2 { 401 } else { 403 }),
        Service::Kms => WireError::new(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ),
    }
}

/// The error AWS gives for a credential scope naming no valid region.
pub(crate) fn bad_region(service: Service, region: &str) -> WireError {
    let message = format!("Credential should be scoped to a valid region, not '{region}'.");
    match service {
        Service::Ec2 => WireError::new("AuthFailure", message).with_status(401),
        Service::Kms => WireError::new("InvalidSignatureException", message),
        Service::Sts | Service::AutoScaling => WireError::new("SignatureDoesNotMatch", message),
    }
}

#[cfg(test)]
mod tests {
    use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION};

    use crate::auth::credential;

    #[test]
    fn the_scope_gives_key_region_and_service() {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/ap-northeast-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
            ),
        );
        let found = credential(&headers, None).unwrap();
        assert_eq!(found.access_key, "AKIDEXAMPLE");
        assert_eq!(found.region, "ap-northeast-1");
        assert_eq!(found.service, "ec2");

        let presigned =
            "Action=X&X-Amz-Credential=111111111111%2F20261128%2Fus-east-1%2Fsts%2Faws4_request";
        let found = credential(&HeaderMap::new(), Some(presigned)).unwrap();
        assert_eq!(
            (found.access_key.as_str(), found.service.as_str()),
            ("111111111111", "sts")
        );

        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKID/x"),
        );
        assert_eq!(credential(&headers, None), None);
    }
}
