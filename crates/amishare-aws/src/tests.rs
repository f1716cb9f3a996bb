//! Unit tests: the error table against the error bodies in `testdata/errors/`,
//! and every store operation against aws-smithy-mocks rules (no HTTP at all).

mod classify;
mod connect;
mod ec2;
mod iam;
mod kms;
mod scaling;

use amishare_core::{Error, ErrorKind, KeyArn, Region};

/// The region the tests call in.
fn region() -> Region {
    Region::parse("ap-northeast-1").unwrap()
}

/// The owner's key in [`region`].
const KEY: &str =
    "arn:aws:kms:ap-northeast-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn key() -> KeyArn {
    KeyArn::parse(KEY).unwrap()
}

/// Asserts an error's kind and AWS code, and that its message names `subject`.
#[track_caller]
fn assert_error<T: std::fmt::Debug>(
    result: amishare_core::Result<T>,
    kind: ErrorKind,
    code: &str,
    subject: &str,
) -> Error {
    let err = result.expect_err("the call fails");
    assert_eq!(err.kind(), kind, "{err}");
    assert_eq!(err.code(), Some(code), "{err}");
    assert!(
        err.message().contains(subject),
        "the message names {subject:?}: {err}"
    );
    assert!(
        std::error::Error::source(&err).is_some(),
        "the SDK error is kept as the source"
    );
    err
}
