//! Every identifier parser of amishare-core on arbitrary text: an
//! identifier that parses displays as text that parses back to it.

#![no_main]

use std::fmt::Display;

use amishare_core::{
    AccountId, AliasArn, AliasName, GrantId, ImageId, InstanceId, KeyArn, KeyId, KeyRef,
    OrganizationArn, OuArn, PrincipalArn, Region, Result, SnapshotId, VolumeId,
};
use libfuzzer_sys::fuzz_target;

/// Parses `text`; if that works, the display of the value parses back to
/// the same value and displays the same.
fn round_trip<T>(text: &str, parse: fn(&str) -> Result<T>)
where
    T: Display + PartialEq + std::fmt::Debug,
{
    let Ok(value) = parse(text) else {
        return;
    };
    let shown = value.to_string();
    let again = parse(&shown).unwrap_or_else(|err| panic!("{shown:?} from {text:?}: {err}"));
    assert_eq!(again, value, "{text:?} displays as {shown:?}");
    assert_eq!(again.to_string(), shown);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    round_trip(text, AccountId::parse);
    round_trip(text, Region::parse);
    round_trip(text, ImageId::parse);
    round_trip(text, SnapshotId::parse);
    round_trip(text, InstanceId::parse);
    round_trip(text, VolumeId::parse);
    round_trip(text, GrantId::parse);
    round_trip(text, KeyId::parse);
    round_trip(text, AliasName::parse);
    round_trip(text, KeyArn::parse);
    round_trip(text, AliasArn::parse);
    round_trip(text, KeyRef::parse);
    round_trip(text, PrincipalArn::parse);
    round_trip(text, OrganizationArn::parse);
    round_trip(text, OuArn::parse);
    // `FromStr` is the same parser.
    assert_eq!(text.parse::<KeyRef>().ok(), KeyRef::parse(text).ok());
    assert_eq!(
        text.parse::<PrincipalArn>().ok(),
        PrincipalArn::parse(text).ok()
    );
});
