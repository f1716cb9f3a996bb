//! AWS's size limits on the fields the simulation keeps, checked where a
//! call hands them over, before anything else, so that in-process clients
//! and `amishare sim serve`'s callers alike are refused with AWS's error and
//! a world never grows by a field AWS would not store.
//!
//! The limits, from AWS's documentation:
//! - KMS `CreateKey` `Description`: 0 to 8,192 characters
//!   (<https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateKey.html>);
//!   the key policy's 32,768 bytes are checked with the policy
//!   (`kms::validate_policy`).
//! - KMS tags: key 1 to 128 characters, value 0 to 256
//!   (<https://docs.aws.amazon.com/kms/latest/APIReference/API_Tag.html>);
//!   `CreateKey` refuses invalid tags with `TagException`.
//! - KMS `CreateGrant` `Name`: 1 to 256 characters
//!   (<https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateGrant.html>).
//! - EC2 tags: key up to 128 characters, value up to 256, at most 50 per
//!   resource
//!   (<https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/Using_Tags.html#tag-restrictions>),
//!   the same 50 for a KMS key; too many is EC2's `TagLimitExceeded`
//!   (<https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html>).
//! - EC2 client tokens: up to 64 ASCII characters
//!   (<https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html>).
//! - Image names (3 to 128 characters) are checked with their characters in
//!   `ec2::validate_image_name`.
//!
//! Lengths are counted in characters, as AWS's length constraints count them.

use std::collections::BTreeMap;

use amishare_core::{Error, ErrorKind, Result};

use crate::errors;

/// The longest KMS key description.
pub(crate) const DESCRIPTION: usize = 8_192;
/// The longest tag key.
pub(crate) const TAG_KEY: usize = 128;
/// The longest tag value.
pub(crate) const TAG_VALUE: usize = 256;
/// The most tags a key, image or instance carries.
pub(crate) const TAGS: usize = 50;
/// The longest grant name.
pub(crate) const GRANT_NAME: usize = 256;
/// The longest EC2 client token.
pub(crate) const CLIENT_TOKEN: usize = 64;

fn length(text: &str) -> usize {
    text.chars().count()
}

/// The validation error of AWS's JSON protocols for a member too long:
/// `1 validation error detected: Value at 'description' failed to satisfy
/// constraint: Member must have length less than or equal to 8192`.
fn too_long(member: &str, max: usize) -> Error {
    errors::validation(format!(
        "1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must have length less than or equal to {max}"
    ))
}

/// `CreateKey`'s description.
pub(crate) fn kms_description(description: &str) -> Result<()> {
    if length(description) > DESCRIPTION {
        return Err(too_long("description", DESCRIPTION));
    }
    Ok(())
}

/// `CreateKey`'s tags.
pub(crate) fn kms_tags(tags: &BTreeMap<String, String>) -> Result<()> {
    for (index, (key, value)) in tags.iter().enumerate() {
        let at = index + 1;
        if key.is_empty() || length(key) > TAG_KEY {
            return Err(too_long(&format!("tags.{at}.member.tagKey"), TAG_KEY));
        }
        if length(value) > TAG_VALUE {
            return Err(too_long(&format!("tags.{at}.member.tagValue"), TAG_VALUE));
        }
    }
    if tags.len() > TAGS {
        return Err(Error::service(
            ErrorKind::InvalidInput,
            "TagException",
            format!(
                "The request was rejected because one or more tags are not valid: {} tags, at most {TAGS} per KMS key.",
                tags.len()
            ),
        ));
    }
    Ok(())
}

/// `CreateGrant`'s name.
pub(crate) fn grant_name(name: Option<&str>) -> Result<()> {
    match name {
        Some(name) if name.is_empty() || length(name) > GRANT_NAME => {
            Err(too_long("name", GRANT_NAME))
        }
        _ => Ok(()),
    }
}

/// The tags an EC2 call puts on what it makes.
pub(crate) fn ec2_tags(tags: &BTreeMap<String, String>) -> Result<()> {
    for (key, value) in tags {
        if key.is_empty() || length(key) > TAG_KEY {
            return Err(errors::invalid_parameter_value(format!(
                "Tag key must be 1 to {TAG_KEY} characters long: {:?}…",
                key.chars().take(32).collect::<String>()
            )));
        }
        if length(value) > TAG_VALUE {
            return Err(errors::invalid_parameter_value(format!(
                "Tag value of {key:?} exceeds the maximum length of {TAG_VALUE} characters"
            )));
        }
    }
    if tags.len() > TAGS {
        return Err(Error::service(
            ErrorKind::InvalidInput,
            "TagLimitExceeded",
            format!(
                "The maximum number of tags for a resource is {TAGS}; the request has {}.",
                tags.len()
            ),
        ));
    }
    Ok(())
}

/// An EC2 client token.
pub(crate) fn client_token(token: Option<&str>) -> Result<()> {
    match token {
        Some(token) if token.len() > CLIENT_TOKEN || !token.is_ascii() => {
            Err(errors::invalid_parameter_value(format!(
                "Value for parameter ClientToken is invalid: at most {CLIENT_TOKEN} ASCII characters"
            )))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{client_token, ec2_tags, grant_name, kms_description, kms_tags};

    fn tags(count: usize, key: usize, value: usize) -> BTreeMap<String, String> {
        (0..count)
            .map(|i| (format!("{i:0>key$}"), "v".repeat(value)))
            .collect()
    }

    /// Each limit: the largest value allowed passes, one more is refused
    /// with AWS's code.
    #[test]
    fn each_limit_allows_its_maximum_and_refuses_one_more() {
        type Check = Box<dyn Fn(usize) -> amishare_core::Result<()>>;
        let table: Vec<(&str, usize, Check, &str)> = vec![
            (
                "description",
                8_192,
                Box::new(|n| kms_description(&"é".repeat(n))),
                "ValidationException",
            ),
            (
                "KMS tag key",
                128,
                Box::new(|n| kms_tags(&tags(1, n, 1))),
                "ValidationException",
            ),
            (
                "KMS tag value",
                256,
                Box::new(|n| kms_tags(&tags(1, 4, n))),
                "ValidationException",
            ),
            (
                "KMS tags",
                50,
                Box::new(|n| kms_tags(&tags(n, 4, 1))),
                "TagException",
            ),
            (
                "grant name",
                256,
                Box::new(|n| grant_name(Some(&"g".repeat(n)))),
                "ValidationException",
            ),
            (
                "EC2 tag key",
                128,
                Box::new(|n| ec2_tags(&tags(1, n, 1))),
                "InvalidParameterValue",
            ),
            (
                "EC2 tag value",
                256,
                Box::new(|n| ec2_tags(&tags(1, 4, n))),
                "InvalidParameterValue",
            ),
            (
                "EC2 tags",
                50,
                Box::new(|n| ec2_tags(&tags(n, 4, 1))),
                "TagLimitExceeded",
            ),
            (
                "client token",
                64,
                Box::new(|n| client_token(Some(&"t".repeat(n)))),
                "InvalidParameterValue",
            ),
        ];
        for (what, max, check, code) in table {
            assert!(check(max).is_ok(), "{what}: {max} is allowed");
            let err = check(max + 1).unwrap_err();
            assert_eq!(err.code(), Some(code), "{what}: {err}");
            assert_eq!(err.kind(), amishare_core::ErrorKind::InvalidInput, "{what}");
        }
    }
}
