//! Who is calling: the access key ID, region and service of a request's
//! SigV4 credential scope, and the principal the access key stands for.
//!
//! On loopback the simulation trusts its clients, as LocalStack does, and
//! needs the key only to know who calls; a server that authenticates
//! (required off loopback) checks every signature against the secret
//! access key the world file gives the key, and knows no other keys.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use amishare_core::{AccountId, PrincipalArn};
use amishare_sim::World;
use hyper::header::{HeaderMap, AUTHORIZATION};
use hyper::http::request::Parts;

use crate::sigv4;
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

/// Who may call, and as whom.
pub(crate) struct Callers {
    /// Whether signatures are checked.
    authenticate: bool,
    /// How many accounts 12-digit keys may still add.
    new_accounts: usize,
    created: AtomicUsize,
}

/// Why a caller is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The world has no such access key.
    UnknownKey,
    /// The request is not signed as the server requires.
    Unsigned(String),
    /// The signature is not the key's.
    BadSignature,
    /// The request was signed more than 15 minutes from now.
    Expired,
}

impl Refusal {
    /// The error AWS gives for it, in the service's words.
    pub(crate) fn into_error(self, service: Service) -> WireError {
        match self {
            Refusal::UnknownKey => unknown_access_key(service),
            Refusal::Unsigned(why) => {
                tracing::debug!(why, "refused an unsigned request");
                missing_authentication(service)
            }
            Refusal::BadSignature => signature_mismatch(service),
            Refusal::Expired => expired(service),
        }
    }
}

impl Callers {
    /// Callers of a server that checks signatures or not, and may add this
    /// many accounts for unmapped 12-digit keys.
    pub(crate) fn new(authenticate: bool, new_accounts: usize) -> Callers {
        Callers {
            authenticate,
            new_accounts,
            created: AtomicUsize::new(0),
        }
    }

    /// Whether signatures are checked.
    pub(crate) fn authenticates(&self) -> bool {
        self.authenticate
    }

    /// The principal a request acts as.
    ///
    /// Authenticated: the world file's access key, whose secret must give
    /// the request's signature. Otherwise: the world file's mapping, or, for
    /// an unmapped 12-digit key ID, the root of that account (as in
    /// LocalStack), which is added to the world only while fewer than
    /// `new_accounts` have been. Each lookup is one map read: the number of
    /// accounts or keys never slows a caller.
    pub(crate) fn principal(
        &self,
        world: &World,
        parts: &Parts,
        body: &[u8],
        credential: &Credential,
    ) -> Result<PrincipalArn, Refusal> {
        let key = world.access_key(&credential.access_key);
        if self.authenticate {
            let key = key.ok_or(Refusal::UnknownKey)?;
            let secret = key.secret_access_key.ok_or(Refusal::UnknownKey)?;
            return match sigv4::verify(parts, body, &secret, SystemTime::now()) {
                Ok(()) => Ok(key.principal),
                Err(sigv4::Invalid::Malformed(why)) => Err(Refusal::Unsigned(why)),
                Err(sigv4::Invalid::Mismatch) => Err(Refusal::BadSignature),
                Err(sigv4::Invalid::Expired) => Err(Refusal::Expired),
            };
        }
        if let Some(key) = key {
            return Ok(key.principal);
        }
        let account = AccountId::parse(&credential.access_key).map_err(|_| Refusal::UnknownKey)?;
        if world.has_account(&account) {
            return Ok(account.root_arn());
        }
        let reserved = self
            .created
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |made| {
                (made < self.new_accounts).then_some(made + 1)
            });
        if reserved.is_err() {
            return Err(Refusal::UnknownKey);
        }
        if world.add_account(&account).is_ok() {
            tracing::info!(
                account = account.as_str(),
                "added an account for its access key"
            );
        } else {
            // Another request added it meanwhile: the slot is not used.
            self.created.fetch_sub(1, Ordering::AcqRel);
        }
        Ok(account.root_arn())
    }
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

/// The error AWS gives for a signature that is not the access key's.
pub(crate) fn signature_mismatch(service: Service) -> WireError {
    const MESSAGE: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
    match service {
        Service::Ec2 => WireError::new(
            "AuthFailure",
            "AWS was not able to validate the provided access credentials",
        )
        .with_status(401),
        Service::Kms => WireError::new("InvalidSignatureException", MESSAGE),
        Service::Sts | Service::AutoScaling => {
            WireError::new("SignatureDoesNotMatch", MESSAGE).with_status(403)
        }
    }
}

/// The error AWS gives for a request signed more than 15 minutes from now.
pub(crate) fn expired(service: Service) -> WireError {
    match service {
        Service::Ec2 => WireError::new("RequestExpired", "Request has expired.").with_status(400),
        Service::Kms => WireError::new("InvalidSignatureException", "Signature expired"),
        Service::Sts | Service::AutoScaling => {
            WireError::new("SignatureDoesNotMatch", "Signature expired").with_status(403)
        }
    }
}

/// The error AWS gives for a credential scope naming another service:
/// `Credential should be scoped to correct service: 'ec2'. `.
pub(crate) fn wrong_service(service: Service) -> WireError {
    let message = format!(
        "Credential should be scoped to correct service: '{}'. ",
        service.name()
    );
    match service {
        Service::Ec2 => WireError::new("AuthFailure", message).with_status(401),
        Service::Kms => WireError::new("InvalidSignatureException", message),
        Service::Sts | Service::AutoScaling => {
            WireError::new("SignatureDoesNotMatch", message).with_status(403)
        }
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
