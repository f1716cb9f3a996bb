//! Which key EC2 encrypts a new volume or snapshot copy under, and the KMS
//! actions EC2 performs on a principal's behalf when it launches an instance
//! or copies an image (`docs/spec/kms.md` §A6, `docs/spec/ec2.md` §B3, §B11, §B18).
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

/// Where the key EC2 encrypts under comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChoice<K> {
    /// The key the request names (`KmsKeyId`).
    Requested(K),
    /// The account's default EBS key in the Region (`aws/ebs`, or the key
    /// set with `ModifyEbsDefaultKmsKeyId`).
    AccountDefault,
}

/// The source snapshot's key, as the caller sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKey {
    /// The snapshot is not encrypted.
    Plain,
    /// Encrypted under a key the new volume or copy may keep: the caller
    /// owns the snapshot (and, for a copy, it stays in its Region).
    Keepable,
    /// Encrypted, but shared with the caller or copied across Regions, so
    /// EC2 re-encrypts unless told which key to use.
    Foreign,
}

impl SourceKey {
    /// A snapshot's key as the caller sees it: whether it is encrypted, and
    /// whether the new volume or copy may keep its key.
    pub fn new(encrypted: bool, keepable: bool) -> SourceKey {
        match (encrypted, keepable) {
            (false, _) => SourceKey::Plain,
            (true, true) => SourceKey::Keepable,
            (true, false) => SourceKey::Foreign,
        }
    }
}

/// How EC2 encrypts a new volume or snapshot copy (`docs/spec/ec2.md` §B18).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption<K> {
    /// It stays unencrypted.
    Plain,
    /// Under the source snapshot's own key.
    SameKey,
    /// Decrypted from the snapshot's key and re-encrypted under another.
    ReEncrypt(KeyChoice<K>),
    /// An unencrypted snapshot becomes encrypted.
    EncryptFromPlain(KeyChoice<K>),
}

impl<K> Encryption<K> {
    /// The key the request or the account chooses, when it is not the
    /// snapshot's own.
    pub fn choice(&self) -> Option<&KeyChoice<K>> {
        match self {
            Encryption::ReEncrypt(choice) | Encryption::EncryptFromPlain(choice) => Some(choice),
            Encryption::Plain | Encryption::SameKey => None,
        }
    }

    /// Whether the result is encrypted.
    pub fn is_encrypted(&self) -> bool {
        !matches!(self, Encryption::Plain)
    }
}

/// Which key EC2 uses for a new volume (`RunInstances`) or snapshot copy
/// (`CopyImage`), from the source snapshot's key, the requested `KmsKeyId`,
/// the `Encrypted` flag and the account's encryption-by-default setting
/// (`docs/spec/ec2.md` §B18, §B3, §B11).
pub fn encryption<K>(
    source: SourceKey,
    requested: Option<K>,
    encrypted: bool,
    encryption_by_default: bool,
) -> Encryption<K> {
    match (requested, source) {
        (Some(key), SourceKey::Plain) => Encryption::EncryptFromPlain(KeyChoice::Requested(key)),
        (Some(key), _) => Encryption::ReEncrypt(KeyChoice::Requested(key)),
        (None, SourceKey::Keepable) => Encryption::SameKey,
        (None, SourceKey::Foreign) => Encryption::ReEncrypt(KeyChoice::AccountDefault),
        (None, SourceKey::Plain) if encrypted || encryption_by_default => {
            Encryption::EncryptFromPlain(KeyChoice::AccountDefault)
        }
        (None, SourceKey::Plain) => Encryption::Plain,
    }
}

/// The KMS actions a launch needs on each key, once the snapshot's key and
/// the volume's key are resolved (`None` for no key, or one not yet known),
/// in the order EC2 uses them.
pub fn launch_actions<'k, K: PartialEq>(
    snapshot: Option<&'k K>,
    volume: Option<&'k K>,
) -> Vec<(&'k K, &'static [&'static str])> {
    match (snapshot, volume) {
        (Some(from), Some(to)) if from == to => vec![(from, &LAUNCH_SAME_KEY[..])],
        (Some(from), Some(to)) => vec![
            (from, &LAUNCH_SOURCE[..]),
            (to, &LAUNCH_REENCRYPT_DESTINATION[..]),
        ],
        (Some(from), None) => vec![(from, &LAUNCH_SOURCE[..])],
        (None, Some(to)) => vec![(to, &LAUNCH_ENCRYPT_DESTINATION[..])],
        (None, None) => Vec::new(),
    }
}

/// The KMS actions a copy needs on each key, once the snapshot's key and
/// the copy's key are resolved (`None` for no key, or one not yet known),
/// in the order EC2 uses them. A copy that keeps the snapshot's key still
/// reads it as a source and writes it as a destination.
pub fn copy_actions<'k, K>(
    snapshot: Option<&'k K>,
    copy: Option<&'k K>,
) -> Vec<(&'k K, &'static [&'static str])> {
    let mut actions = Vec::with_capacity(2);
    if let Some(from) = snapshot {
        actions.push((from, &COPY_SOURCE[..]));
    }
    if let Some(to) = copy {
        let needed: &'static [&'static str] = if snapshot.is_some() {
            &COPY_REENCRYPT_DESTINATION
        } else {
            &COPY_ENCRYPT_DESTINATION
        };
        actions.push((to, needed));
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot key, the destination key, and the actions on each key.
    type ActionCase<'a> = (
        Option<&'a &'a str>,
        Option<&'a &'a str>,
        Vec<(&'a str, &'a [&'a str])>,
    );
    /// The actions per key, with the keys as plain strings.
    fn named<'a>(
        needs: Vec<(&&'a str, &'static [&'static str])>,
    ) -> Vec<(&'a str, &'static [&'static str])> {
        needs
            .into_iter()
            .map(|(key, actions)| (*key, actions))
            .collect()
    }

    /// Source, `KmsKeyId`, `Encrypted`, encryption by default, and the result.
    type EncryptionCase<'a> = (SourceKey, Option<&'a str>, bool, bool, Encryption<&'a str>);

    #[test]
    fn encryption_follows_the_spec_table() {
        use Encryption::*;
        use KeyChoice::*;
        use SourceKey::{Foreign, Keepable};
        // (source, requested KmsKeyId, Encrypted, encryption by default) -> how
        let cases: [EncryptionCase; 14] = [
            (SourceKey::Plain, None, false, false, Plain),
            (
                SourceKey::Plain,
                None,
                false,
                true,
                EncryptFromPlain(AccountDefault),
            ),
            (
                SourceKey::Plain,
                None,
                true,
                false,
                EncryptFromPlain(AccountDefault),
            ),
            (
                SourceKey::Plain,
                None,
                true,
                true,
                EncryptFromPlain(AccountDefault),
            ),
            (
                SourceKey::Plain,
                Some("k"),
                true,
                false,
                EncryptFromPlain(Requested("k")),
            ),
            (
                SourceKey::Plain,
                Some("k"),
                true,
                true,
                EncryptFromPlain(Requested("k")),
            ),
            (Keepable, None, false, false, SameKey),
            (Keepable, None, true, true, SameKey),
            (Keepable, Some("k"), true, false, ReEncrypt(Requested("k"))),
            (Foreign, None, false, false, ReEncrypt(AccountDefault)),
            (Foreign, None, true, false, ReEncrypt(AccountDefault)),
            (Foreign, None, false, true, ReEncrypt(AccountDefault)),
            (Foreign, Some("k"), true, false, ReEncrypt(Requested("k"))),
            (Foreign, Some("k"), true, true, ReEncrypt(Requested("k"))),
        ];
        for (source, requested, encrypted, by_default, want) in cases {
            let got = encryption(source, requested, encrypted, by_default);
            assert_eq!(
                got, want,
                "{source:?} KmsKeyId={requested:?} Encrypted={encrypted} by default={by_default}"
            );
            assert_eq!(got.is_encrypted(), !matches!(want, Plain));
        }
    }

    #[test]
    fn a_source_key_is_kept_only_when_encrypted_and_keepable() {
        let cases = [
            (false, false, SourceKey::Plain),
            (false, true, SourceKey::Plain),
            (true, true, SourceKey::Keepable),
            (true, false, SourceKey::Foreign),
        ];
        for (encrypted, keepable, want) in cases {
            assert_eq!(
                SourceKey::new(encrypted, keepable),
                want,
                "{encrypted} {keepable}"
            );
        }
    }

    #[test]
    fn launch_actions_name_each_key_once() {
        let (a, b) = ("a", "b");
        let cases: [ActionCase; 5] = [
            (Some(&a), Some(&a), vec![(a, &LAUNCH_SAME_KEY[..])]),
            (
                Some(&a),
                Some(&b),
                vec![
                    (a, &LAUNCH_SOURCE[..]),
                    (b, &LAUNCH_REENCRYPT_DESTINATION[..]),
                ],
            ),
            (Some(&a), None, vec![(a, &LAUNCH_SOURCE[..])]),
            (None, Some(&b), vec![(b, &LAUNCH_ENCRYPT_DESTINATION[..])]),
            (None, None, vec![]),
        ];
        for (snapshot, volume, want) in cases {
            let got = named(launch_actions(snapshot, volume));
            assert_eq!(got, want, "snapshot {snapshot:?} volume {volume:?}");
        }
    }

    #[test]
    fn copy_actions_read_the_source_and_write_the_copy() {
        let (a, b) = ("a", "b");
        let cases: [ActionCase; 5] = [
            (
                Some(&a),
                Some(&a),
                vec![(a, &COPY_SOURCE[..]), (a, &COPY_REENCRYPT_DESTINATION[..])],
            ),
            (
                Some(&a),
                Some(&b),
                vec![(a, &COPY_SOURCE[..]), (b, &COPY_REENCRYPT_DESTINATION[..])],
            ),
            (Some(&a), None, vec![(a, &COPY_SOURCE[..])]),
            (None, Some(&b), vec![(b, &COPY_ENCRYPT_DESTINATION[..])]),
            (None, None, vec![]),
        ];
        for (snapshot, copy, want) in cases {
            let got = named(copy_actions(snapshot, copy));
            assert_eq!(got, want, "snapshot {snapshot:?} copy {copy:?}");
        }
    }
}
