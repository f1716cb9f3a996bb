//! Identifiers validated at parse time.
//!
//! Every identifier that crosses a trait boundary is one of these types, so a
//! malformed account ID or an ARN of the wrong kind is refused before any call
//! is made, with an error that names the offending input.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// Implements `Display`, `FromStr`, `AsRef<str>` and string serde for a newtype
/// over a shared string (cheap to clone) whose constructor validates.
macro_rules! string_id {
    ($name:ident, $what:literal, $check:expr) => {
        impl $name {
            /// Parses and validates the identifier.
            pub fn parse(value: &str) -> Result<Self> {
                let check: fn(&str) -> bool = $check;
                if check(value) {
                    Ok(Self(Arc::from(value)))
                } else {
                    Err(Error::invalid_input(
                        $what,
                        value,
                        concat!("not a valid ", $what),
                    ))
                }
            }

            /// The identifier as written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(value: &str) -> Result<Self> {
                Self::parse(value)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(
                &self,
                serializer: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(
                deserializer: D,
            ) -> std::result::Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A 12-digit AWS account ID.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(Arc<str>);
string_id!(AccountId, "account ID", |s| s.len() == 12
    && s.bytes().all(|b| b.is_ascii_digit()));

impl AccountId {
    /// The ARN of the account's root principal, `arn:aws:iam::<id>:root`.
    pub fn root_arn(&self) -> PrincipalArn {
        PrincipalArn {
            raw: Arc::from(format!("arn:aws:iam::{}:root", self.0)),
            partition: "aws",
            account: self.clone(),
            kind: PrincipalKind::Root,
        }
    }
}

/// An AWS region name such as `ap-northeast-1` or `us-gov-west-1`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Region(Arc<str>);
string_id!(Region, "region", is_region);

/// The regions AWS has, as this build knows them: anything else that looks
/// like a region is a typo, or a region newer than this build.
pub const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

impl Region {
    /// Whether the region is one of [`KNOWN_REGIONS`].
    pub fn is_known(&self) -> bool {
        KNOWN_REGIONS.contains(&self.as_str())
    }

    /// The partition the region belongs to (`aws`, `aws-cn`, `aws-us-gov`,
    /// …): ARNs of the region's resources and principals that may use them
    /// name it, and nothing crosses partitions (`docs/spec/choices.md` §D3).
    pub fn partition(&self) -> &'static str {
        let name = self.as_str();
        if name.starts_with("cn-") {
            "aws-cn"
        } else if name.starts_with("us-gov-") {
            "aws-us-gov"
        } else if name.starts_with("us-isob-") {
            "aws-iso-b"
        } else if name.starts_with("us-isof-") {
            "aws-iso-f"
        } else if name.starts_with("eu-isoe-") {
            "aws-iso-e"
        } else if name.starts_with("us-iso-") {
            "aws-iso"
        } else {
            "aws"
        }
    }
}

fn is_region(s: &str) -> bool {
    // <area>(-<qualifier>)*-<direction>-<digit>, lower case, e.g. eu-central-2.
    let Some((rest, last)) = s.rsplit_once('-') else {
        return false;
    };
    let last_ok = !last.is_empty() && last.len() <= 2 && last.bytes().all(|b| b.is_ascii_digit());
    let word = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    let mut words = rest.split('-');
    let first = words.next().unwrap_or_default();
    let mut count = 1;
    let mut rest_ok = word(first);
    for p in words {
        count += 1;
        rest_ok &= word(p);
    }
    count >= 2 && last_ok && rest_ok && first.len() == 2
}

fn is_hex_id(s: &str, prefix: &str) -> bool {
    match s.strip_prefix(prefix) {
        Some(rest) => {
            (8..=17).contains(&rest.len())
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
        None => false,
    }
}

/// An EC2 image ID, `ami-` followed by 8 or 17 hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageId(Arc<str>);
string_id!(ImageId, "image ID", |s| is_hex_id(s, "ami-"));

/// An EBS snapshot ID, `snap-…`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotId(Arc<str>);
string_id!(SnapshotId, "snapshot ID", |s| is_hex_id(s, "snap-"));

/// An EC2 instance ID, `i-…`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId(Arc<str>);
string_id!(InstanceId, "instance ID", |s| is_hex_id(s, "i-"));

/// An EBS volume ID, `vol-…`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VolumeId(Arc<str>);
string_id!(VolumeId, "volume ID", |s| is_hex_id(s, "vol-"));

/// A KMS grant ID (64 hexadecimal digits on AWS; any token of 1 to 128 word characters is accepted).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrantId(Arc<str>);
string_id!(GrantId, "grant ID", |s| !s.is_empty()
    && s.len() <= 128
    && s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));

/// A KMS key ID: a UUID, or a multi-Region key ID starting `mrk-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(Arc<str>);
string_id!(KeyId, "KMS key ID", is_key_id);

fn is_key_id(s: &str) -> bool {
    if let Some(rest) = s.strip_prefix("mrk-") {
        return rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit());
    }
    let mut groups = s.split('-');
    let lens = [8, 4, 4, 4, 12];
    lens.iter().all(|&n| {
        groups
            .next()
            .is_some_and(|g| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
    }) && groups.next().is_none()
}

/// A KMS alias name, `alias/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AliasName(Arc<str>);
string_id!(AliasName, "alias name", is_alias_name);

fn is_alias_name(s: &str) -> bool {
    match s.strip_prefix("alias/") {
        Some(rest) => {
            !rest.is_empty()
                && s.len() <= 256
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'/' | b'_' | b'-'))
        }
        None => false,
    }
}

impl AliasName {
    /// Whether the alias is in the `alias/aws/` namespace that AWS reserves for its managed keys.
    pub fn is_aws_reserved(&self) -> bool {
        self.0.starts_with("alias/aws/")
    }

    /// The alias of the AWS-managed EBS key.
    pub fn aws_ebs() -> AliasName {
        AliasName(Arc::from("alias/aws/ebs"))
    }
}

/// A KMS key ARN, `arn:<partition>:kms:<region>:<account>:key/<key-id>`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyArn {
    partition: &'static str,
    region: Region,
    account: AccountId,
    key_id: KeyId,
    /// The ARN written out once (it follows from the fields above, so it
    /// changes neither equality nor order).
    text: Arc<str>,
}

impl fmt::Debug for KeyArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyArn")
            .field("partition", &self.partition)
            .field("region", &self.region)
            .field("account", &self.account)
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl KeyArn {
    /// Builds the ARN of a key in the `aws` partition.
    pub fn new(region: Region, account: AccountId, key_id: KeyId) -> KeyArn {
        KeyArn::from_parts("aws", region, account, key_id)
    }

    fn from_parts(
        partition: &'static str,
        region: Region,
        account: AccountId,
        key_id: KeyId,
    ) -> KeyArn {
        let text = [
            "arn:",
            partition,
            ":kms:",
            region.as_str(),
            ":",
            account.as_str(),
            ":key/",
            key_id.as_str(),
        ]
        .concat();
        KeyArn {
            partition,
            region,
            account,
            key_id,
            text: Arc::from(text),
        }
    }

    /// Parses a key ARN.
    pub fn parse(value: &str) -> Result<KeyArn> {
        let bad = |why: &str| Error::invalid_input("key ARN", value, why);
        let arn = Arn::split(value).ok_or_else(|| bad("not an ARN"))?;
        if arn.service != "kms" {
            return Err(bad("not a KMS ARN"));
        }
        let key = arn
            .resource
            .strip_prefix("key/")
            .ok_or_else(|| bad("not a key ARN (expected …:key/<key-id>)"))?;
        Ok(KeyArn::from_parts(
            arn.partition,
            Region::parse(arn.region).map_err(|_| bad("bad region"))?,
            AccountId::parse(arn.account).map_err(|_| bad("bad account ID"))?,
            KeyId::parse(key).map_err(|_| bad("bad key ID"))?,
        ))
    }

    /// The partition of the ARN (`aws`, `aws-cn`, `aws-us-gov`).
    pub fn partition(&self) -> &'static str {
        self.partition
    }

    /// The region the key lives in.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The account that owns the key.
    pub fn account(&self) -> &AccountId {
        &self.account
    }

    /// The bare key ID.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }
}

impl fmt::Display for KeyArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A KMS alias ARN, `arn:<partition>:kms:<region>:<account>:alias/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AliasArn {
    partition: &'static str,
    region: Region,
    account: AccountId,
    alias: AliasName,
}

impl AliasArn {
    /// Builds the ARN of an alias in the `aws` partition.
    pub fn new(region: Region, account: AccountId, alias: AliasName) -> AliasArn {
        AliasArn {
            partition: "aws",
            region,
            account,
            alias,
        }
    }

    /// Parses an alias ARN.
    pub fn parse(value: &str) -> Result<AliasArn> {
        let bad = |why: &str| Error::invalid_input("alias ARN", value, why);
        let arn = Arn::split(value).ok_or_else(|| bad("not an ARN"))?;
        if arn.service != "kms" || !arn.resource.starts_with("alias/") {
            return Err(bad("not a KMS alias ARN (expected …:alias/<name>)"));
        }
        Ok(AliasArn {
            partition: arn.partition,
            region: Region::parse(arn.region).map_err(|_| bad("bad region"))?,
            account: AccountId::parse(arn.account).map_err(|_| bad("bad account ID"))?,
            alias: AliasName::parse(arn.resource).map_err(|_| bad("bad alias name"))?,
        })
    }

    /// The partition of the ARN.
    pub fn partition(&self) -> &'static str {
        self.partition
    }

    /// The region of the alias.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The account that owns the alias.
    pub fn account(&self) -> &AccountId {
        &self.account
    }

    /// The alias name.
    pub fn alias(&self) -> &AliasName {
        &self.alias
    }
}

impl fmt::Display for AliasArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:kms:{}:{}:{}",
            self.partition, self.region, self.account, self.alias
        )
    }
}

/// Any of the four ways KMS accepts to name a key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyRef {
    /// A bare key ID: the caller's account, the request's region.
    Id(KeyId),
    /// A key ARN: the only form every cross-account operation accepts.
    Arn(KeyArn),
    /// An alias name: the caller's account, the request's region.
    Alias(AliasName),
    /// An alias ARN: accepted cross-account by DescribeKey and the cryptographic operations.
    AliasArn(AliasArn),
}

impl KeyRef {
    /// Parses a key ID, key ARN, alias name or alias ARN.
    pub fn parse(value: &str) -> Result<KeyRef> {
        if value.starts_with("arn:") {
            if value.contains(":alias/") {
                return AliasArn::parse(value).map(KeyRef::AliasArn);
            }
            return KeyArn::parse(value).map(KeyRef::Arn);
        }
        if value.starts_with("alias/") {
            return AliasName::parse(value).map(KeyRef::Alias);
        }
        KeyId::parse(value).map(KeyRef::Id).map_err(|_| {
            Error::invalid_input(
                "KMS key",
                value,
                "expected a key ID, key ARN, alias name (alias/…) or alias ARN",
            )
        })
    }

    /// The partition named by the reference, if it is an ARN.
    pub fn partition(&self) -> Option<&'static str> {
        match self {
            KeyRef::Arn(arn) => Some(arn.partition()),
            KeyRef::AliasArn(arn) => Some(arn.partition()),
            KeyRef::Id(_) | KeyRef::Alias(_) => None,
        }
    }

    /// The region named by the reference, if it is an ARN.
    pub fn region(&self) -> Option<&Region> {
        match self {
            KeyRef::Arn(arn) => Some(arn.region()),
            KeyRef::AliasArn(arn) => Some(arn.region()),
            KeyRef::Id(_) | KeyRef::Alias(_) => None,
        }
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::Id(id) => id.fmt(f),
            KeyRef::Arn(arn) => arn.fmt(f),
            KeyRef::Alias(alias) => alias.fmt(f),
            KeyRef::AliasArn(arn) => arn.fmt(f),
        }
    }
}

impl FromStr for KeyRef {
    type Err = Error;
    fn from_str(value: &str) -> Result<Self> {
        KeyRef::parse(value)
    }
}

impl From<KeyArn> for KeyRef {
    fn from(arn: KeyArn) -> KeyRef {
        KeyRef::Arn(arn)
    }
}

/// What kind of IAM principal an ARN names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrincipalKind {
    /// The account root, `arn:aws:iam::<account>:root`.
    Root,
    /// An IAM user, `arn:aws:iam::<account>:user/<path/name>`.
    User,
    /// An IAM role, `arn:aws:iam::<account>:role/<path/name>`.
    Role,
    /// A session of an assumed role, `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    AssumedRole,
}

/// The ARN of an IAM principal: account root, user, role or assumed-role session.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PrincipalArn {
    raw: Arc<str>,
    partition: &'static str,
    account: AccountId,
    kind: PrincipalKind,
}

impl PrincipalArn {
    /// Parses a principal ARN. User and role names and paths follow IAM's
    /// naming rules, so a name IAM would refuse never reaches a key policy
    /// (`docs/spec/choices.md` §D3).
    pub fn parse(value: &str) -> Result<PrincipalArn> {
        let bad = |why: &str| Error::invalid_input("principal ARN", value, why);
        let arn = Arn::split(value).ok_or_else(|| bad("not an ARN"))?;
        let account = AccountId::parse(arn.account).map_err(|_| bad("bad account ID"))?;
        if !arn.region.is_empty() {
            return Err(bad("IAM principal ARNs have no region"));
        }
        let named = |rest: &str| {
            !rest.is_empty() && !rest.ends_with('/') && rest.split('/').all(|p| !p.is_empty())
        };
        let kind = match (arn.service, arn.resource) {
            ("iam", "root") => PrincipalKind::Root,
            ("iam", r) if r.strip_prefix("user/").is_some_and(named) => PrincipalKind::User,
            ("iam", r) if r.strip_prefix("role/").is_some_and(named) => PrincipalKind::Role,
            ("sts", r)
                if r.strip_prefix("assumed-role/")
                    .is_some_and(|rest| named(rest) && rest.split('/').count() == 2) =>
            {
                PrincipalKind::AssumedRole
            }
            _ => {
                return Err(bad(
                    "expected an account root, user, role or assumed-role ARN",
                ))
            }
        };
        match kind {
            PrincipalKind::Root => {}
            PrincipalKind::User | PrincipalKind::Role => {
                let what = if kind == PrincipalKind::User {
                    "user"
                } else {
                    "role"
                };
                let rest = &arn.resource[what.len() + 1..];
                let (path, name) = rest.rsplit_once('/').unwrap_or(("", rest));
                iam_name(what, name).map_err(|why| bad(&why))?;
                iam_path(path).map_err(|why| bad(&why))?;
            }
            PrincipalKind::AssumedRole => {
                let rest = &arn.resource["assumed-role/".len()..];
                let (role, session) = rest.split_once('/').unwrap_or((rest, ""));
                iam_name("role", role).map_err(|why| bad(&why))?;
                if session.chars().count() > 64 || !session.chars().all(is_iam_name_char) {
                    return Err(bad(
                        "role session names are at most 64 letters, digits and + = , . @ _ -",
                    ));
                }
            }
        }
        Ok(PrincipalArn {
            raw: Arc::from(value),
            partition: arn.partition,
            account,
            kind,
        })
    }

    /// The account the principal belongs to.
    pub fn account(&self) -> &AccountId {
        &self.account
    }

    /// The kind of principal.
    pub fn kind(&self) -> PrincipalKind {
        self.kind
    }

    /// The partition of the ARN (`aws`, `aws-cn`, `aws-us-gov`).
    pub fn partition(&self) -> &'static str {
        self.partition
    }

    /// The ARN as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The principal as key policies and grants name it: for an
    /// assumed-role session its role (later sessions of the role are the
    /// same principal to them), otherwise itself.
    pub fn as_policy_principal(&self) -> PrincipalArn {
        self.role_arn().unwrap_or_else(|| self.clone())
    }

    /// For an assumed-role session, the ARN of its role (how policies name it).
    pub fn role_arn(&self) -> Option<PrincipalArn> {
        if self.kind != PrincipalKind::AssumedRole {
            return None;
        }
        let arn = Arn::split(&self.raw)?;
        let role = arn
            .resource
            .strip_prefix("assumed-role/")?
            .split('/')
            .next()?;
        PrincipalArn::parse(&format!(
            "arn:{}:iam::{}:role/{}",
            arn.partition, self.account, role
        ))
        .ok()
    }
}

impl fmt::Display for PrincipalArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl FromStr for PrincipalArn {
    type Err = Error;
    fn from_str(value: &str) -> Result<Self> {
        PrincipalArn::parse(value)
    }
}

/// Whether IAM takes `c` in a user or role name: letters, digits and
/// `+ = , . @ _ -` (IAM User Guide, "IAM name requirements").
fn is_iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

/// IAM's rule for a user or role name: 1 to 64 of [`is_iam_name_char`].
fn iam_name(what: &str, name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.chars().count() > 64 {
        return Err(format!(
            "IAM {what} names are 1 to 64 characters; this one has {}",
            name.chars().count()
        ));
    }
    match name.chars().find(|c| !is_iam_name_char(*c)) {
        Some(c) => Err(format!(
            "IAM {what} names take letters, digits and + = , . @ _ - only, not {c:?}"
        )),
        None => Ok(()),
    }
}

/// IAM's rule for a path (written here without its leading and trailing
/// slashes): at most 512 characters with both, printable ASCII without
/// spaces (`CreateUser`'s `Path` pattern `\u0021`–`\u007E`).
fn iam_path(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() {
        return Ok(());
    }
    if path.len() + 2 > 512 {
        return Err(format!(
            "IAM paths are at most 512 characters; this one has {}",
            path.len() + 2
        ));
    }
    match path.chars().find(|c| !matches!(c, '!'..='~')) {
        Some(c) => Err(format!(
            "IAM paths take printable ASCII without spaces only, not {c:?}"
        )),
        None => Ok(()),
    }
}

/// An AWS Organizations organization ARN, `arn:aws:organizations::<management>:organization/o-…`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrganizationArn {
    raw: String,
    partition: &'static str,
    org_id: String,
}

impl OrganizationArn {
    /// Parses an organization ARN.
    pub fn parse(value: &str) -> Result<OrganizationArn> {
        let bad = |why: &str| Error::invalid_input("organization ARN", value, why);
        let arn = Arn::split(value).ok_or_else(|| bad("not an ARN"))?;
        AccountId::parse(arn.account).map_err(|_| bad("bad management account ID"))?;
        let org = arn
            .resource
            .strip_prefix("organization/")
            .filter(|_| arn.service == "organizations")
            .ok_or_else(|| bad("expected arn:aws:organizations::<account>:organization/o-…"))?;
        if !is_org_id(org) {
            return Err(bad(
                "bad organization ID (expected o- and 10 to 32 characters)",
            ));
        }
        Ok(OrganizationArn {
            raw: value.to_owned(),
            partition: arn.partition,
            org_id: org.to_owned(),
        })
    }

    /// The partition of the ARN.
    pub fn partition(&self) -> &'static str {
        self.partition
    }

    /// The organization ID, `o-…`.
    pub fn org_id(&self) -> &str {
        &self.org_id
    }
}

/// An organizational unit ARN, `arn:aws:organizations::<management>:ou/o-…/ou-…`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OuArn {
    raw: String,
    partition: &'static str,
    org_id: String,
    ou_id: String,
}

impl OuArn {
    /// Parses an organizational unit ARN.
    pub fn parse(value: &str) -> Result<OuArn> {
        let bad = |why: &str| Error::invalid_input("organizational unit ARN", value, why);
        let arn = Arn::split(value).ok_or_else(|| bad("not an ARN"))?;
        AccountId::parse(arn.account).map_err(|_| bad("bad management account ID"))?;
        let rest = arn
            .resource
            .strip_prefix("ou/")
            .filter(|_| arn.service == "organizations")
            .ok_or_else(|| bad("expected arn:aws:organizations::<account>:ou/o-…/ou-…"))?;
        let (org, ou) = rest
            .split_once('/')
            .ok_or_else(|| bad("expected ou/<org-id>/<ou-id>"))?;
        let ou_ok = ou.strip_prefix("ou-").is_some_and(|r| {
            r.len() >= 9 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        if !is_org_id(org) || !ou_ok {
            return Err(bad("bad organization or OU ID"));
        }
        Ok(OuArn {
            raw: value.to_owned(),
            partition: arn.partition,
            org_id: org.to_owned(),
            ou_id: ou.to_owned(),
        })
    }

    /// The partition of the ARN.
    pub fn partition(&self) -> &'static str {
        self.partition
    }

    /// The organization the OU belongs to.
    pub fn org_id(&self) -> &str {
        &self.org_id
    }

    /// The OU ID, `ou-…`.
    pub fn ou_id(&self) -> &str {
        &self.ou_id
    }
}

fn is_org_id(s: &str) -> bool {
    s.strip_prefix("o-").is_some_and(|r| {
        (10..=32).contains(&r.len())
            && r.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// An AMI name, as `CreateImage` and `CopyImage` take it: 3 to 128
/// characters, each a letter, a digit or one of `( ) [ ] . / - ' @ _` and
/// space (EC2 API reference, CreateImage and CopyImage, parameter `Name`).
/// The one check of that rule: the CLI's arguments, the flow's requests and
/// the simulation's `CreateImage`/`CopyImage` all parse names with it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageName(Arc<str>);

impl ImageName {
    /// Fewest characters EC2 takes in a name.
    pub const MIN_LEN: usize = 3;
    /// Most characters EC2 takes in a name.
    pub const MAX_LEN: usize = 128;

    /// Parses and validates the name; the error names it and says which
    /// rule it breaks.
    pub fn parse(value: &str) -> Result<ImageName> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(c);
        let length = value.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&length) {
            return Err(Error::invalid_input(
                "image name",
                value,
                &format!(
                    "must be {} to {} characters (it has {length})",
                    Self::MIN_LEN,
                    Self::MAX_LEN
                ),
            ));
        }
        if let Some(c) = value.chars().find(|c| !allowed(*c)) {
            return Err(Error::invalid_input(
                "image name",
                value,
                &format!("has {c:?}; EC2 allows letters, digits, spaces and ( ) [ ] . / - ' @ _"),
            ));
        }
        Ok(ImageName(Arc::from(value)))
    }

    /// The name with `suffix` appended (`web-1` and `-shared` make
    /// `web-1-shared`), as the flow names the copies it makes.
    pub fn with_suffix(source: &str, suffix: &str) -> Result<ImageName> {
        ImageName::parse(&format!("{source}{suffix}"))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ImageName {
    type Err = Error;
    fn from_str(value: &str) -> Result<ImageName> {
        ImageName::parse(value)
    }
}

impl AsRef<str> for ImageName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for ImageName {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ImageName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        ImageName::parse(&raw).map_err(serde::de::Error::custom)
    }
}

macro_rules! raw_display {
    ($($name:ident),*) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.raw)
            }
        }
        impl FromStr for $name {
            type Err = Error;
            fn from_str(value: &str) -> Result<Self> {
                Self::parse(value)
            }
        }
    )*};
}
raw_display!(OrganizationArn, OuArn);

macro_rules! display_serde {
    ($($name:ident),*) => {$(
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    )*};
}
display_serde!(
    KeyArn,
    AliasArn,
    KeyRef,
    PrincipalArn,
    OrganizationArn,
    OuArn
);

/// The six colon-separated fields of an ARN.
struct Arn<'a> {
    partition: &'static str,
    service: &'a str,
    region: &'a str,
    account: &'a str,
    resource: &'a str,
}

impl<'a> Arn<'a> {
    fn split(value: &'a str) -> Option<Arn<'a>> {
        let mut parts = value.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        let partition = match parts.next()? {
            "aws" => "aws",
            "aws-cn" => "aws-cn",
            "aws-us-gov" => "aws-us-gov",
            _ => return None,
        };
        Some(Arn {
            partition,
            service: parts.next()?,
            region: parts.next()?,
            account: parts.next()?,
            resource: parts.next()?,
        })
    }
}

#[cfg(test)]
mod tests {
    //! The validators, checked against their plain forms (split into a
    //! vector, then inspected) on every short string over an alphabet that
    //! reaches each of their branches.

    use super::{is_key_id, is_region};

    fn plain_region(s: &str) -> bool {
        let parts: Vec<&str> = s.split('-').collect();
        if parts.len() < 3 {
            return false;
        }
        let (last, rest) = parts.split_last().expect("at least three parts");
        let last_ok =
            !last.is_empty() && last.len() <= 2 && last.bytes().all(|b| b.is_ascii_digit());
        let rest_ok = rest
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()));
        last_ok && rest_ok && rest[0].len() == 2
    }

    fn plain_key_id(s: &str) -> bool {
        if let Some(rest) = s.strip_prefix("mrk-") {
            return rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit());
        }
        let groups: Vec<&str> = s.split('-').collect();
        let lens = [8, 4, 4, 4, 12];
        groups.len() == 5
            && groups
                .iter()
                .zip(lens)
                .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
    }

    /// Every string of up to `max` characters over `alphabet`.
    fn strings(alphabet: &[char], max: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..max {
            last = last
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    #[test]
    fn region_check_matches_the_plain_form() {
        let mut accepted = 0;
        for s in strings(&['a', 'b', 'B', '1', '-'], 7) {
            assert_eq!(is_region(&s), plain_region(&s), "{s:?}");
            accepted += usize::from(is_region(&s));
        }
        assert!(accepted >= 30, "{accepted}");
    }

    #[test]
    fn key_id_check_matches_the_plain_form() {
        let groups = ["", "a", "abcd", "1234abcd", "1234abcd12ab", "g234", "12-4"];
        let mut accepted = 0;
        for a in groups {
            for b in groups {
                for c in groups {
                    for d in ["abcd", "12ab", "xyz"] {
                        for e in ["1234567890ab", "abcd", ""] {
                            for extra in ["", "-", "-ab"] {
                                let s = format!("{a}-{b}-{c}-{d}-{e}{extra}");
                                assert_eq!(is_key_id(&s), plain_key_id(&s), "{s:?}");
                                accepted += usize::from(is_key_id(&s));
                            }
                        }
                    }
                }
            }
        }
        for s in strings(&['a', '-', '1'], 6) {
            assert_eq!(is_key_id(&s), plain_key_id(&s), "{s:?}");
        }
        assert!(accepted >= 2, "{accepted}");
    }
}
