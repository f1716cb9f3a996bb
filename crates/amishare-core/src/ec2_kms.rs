//! The KMS actions EC2 performs on a principal's behalf when it launches an
//! instance or copies an image (`docs/spec/kms.md` §A6, `docs/spec/ec2.md` §B3, §B11).
//!
//! EC2 calls them with `kms:ViaService = ec2.<region>.amazonaws.com` and
//! `kms:GrantIsForAWSResource = true`, and the caller needs every one of
//! them on the key in question, through the key policy and, across accounts,
//! its own IAM policy too. The simulation enforces these lists and the
//! doctor checks them, so both read them from here.

/// On a snapshot's key when a copy reads the snapshot.
pub const COPY_SOURCE: [&str; 4] = [
    "kms:DescribeKey",
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
];

/// On the copy's key when the source snapshot is encrypted.
pub const COPY_REENCRYPT_DESTINATION: [&str; 4] = [
    "kms:DescribeKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptTo",
    "kms:CreateGrant",
];

/// On the copy's key when the source snapshot is not encrypted.
pub const COPY_ENCRYPT_DESTINATION: [&str; 3] = [
    "kms:DescribeKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:CreateGrant",
];

/// On a snapshot's key when the new volume keeps that key.
pub const LAUNCH_SAME_KEY: [&str; 3] = ["kms:DescribeKey", "kms:CreateGrant", "kms:Decrypt"];

/// On a snapshot's key when the new volume is re-encrypted under another key.
pub const LAUNCH_SOURCE: [&str; 5] = [
    "kms:DescribeKey",
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:GenerateDataKeyWithoutPlaintext",
];

/// On the volume's key when the volume is re-encrypted from a snapshot's key.
pub const LAUNCH_REENCRYPT_DESTINATION: [&str; 5] = [
    "kms:DescribeKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptTo",
    "kms:CreateGrant",
    "kms:Decrypt",
];

/// On the volume's key when an unencrypted snapshot becomes an encrypted volume.
pub const LAUNCH_ENCRYPT_DESTINATION: [&str; 4] = [
    "kms:DescribeKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:CreateGrant",
    "kms:Decrypt",
];

/// The operations of the grant a service-linked role that launches
/// instances (Auto Scaling, EC2 Fleet, Spot) needs on a customer managed
/// key of another account, without the `kms:` prefix: AWS's own example
/// (`docs/spec/production.md` §C1.3). The role can have no IAM policy for
/// the key, so across accounts only a grant lets EC2 use the key on its
/// behalf; `CreateGrant` lets EC2 make its per-volume grants.
/// The list itself lives with the key-policy statement that allows such
/// grants, in `amishare-policy`.
pub const SERVICE_ROLE_GRANT: [&str; 8] = amishare_policy::SERVICE_ROLE_GRANT_OPERATIONS;

/// Whether a grant with `operations` (without the `kms:` prefix) covers
/// every KMS action in `actions` (with it).
pub fn grant_covers(operations: &[String], actions: &[&str]) -> bool {
    actions.iter().all(|action| {
        let op = action.strip_prefix("kms:").unwrap_or(action);
        operations.iter().any(|o| o.eq_ignore_ascii_case(op))
    })
}
