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
