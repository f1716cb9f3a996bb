//! The doctor: why a target principal can or cannot launch or copy a shared
//! image, link by link.
//!
//! A shared encrypted image works only when every link of a chain holds: the
//! image is available and shared with the target, each snapshot is encrypted
//! with a customer-managed, enabled key in the image's region, the key policy
//! and the target's own IAM policy allow each KMS action EC2 performs on the
//! target's behalf (with the conditions EC2 sets), nothing denies them
//! explicitly, a copy may read the snapshots, and the key that encrypts the
//! target's new volumes is usable too. [`Doctor::diagnose`] checks each link
//! in that order and returns a [`Finding`] per link: pass, fail, or unknown
//! with the reason, the evidence, and for a failure the least change that
//! fixes it.
//!
//! Evidence comes from what each side can see. The owner reads the key
//! policy, grants, snapshots and permissions; the target sees whether the
//! image is visible to it, its default EBS key and its own keys; a
//! [`Directory`] tells the target principal's IAM policies and organization.
//! Whatever no side can see is reported `unknown`, never guessed: the
//! evaluation substitutes a permissive stand-in for an unreadable document,
//! so that the links that *can* be judged still are, and marks the links
//! that depend on it unknown.

mod autoscaling;
mod gather;
mod links;
mod sides;

pub use self::sides::Side;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{AccountId, CopyKey, ImageId, KeyArn, PrincipalArn, Region, Result, SnapshotId};

/// What the target wants to do with the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Intent {
    /// Launch instances from it.
    Launch,
    /// Copy it into the target's account.
    Copy,
    /// Both.
    Both,
    /// Launch through an Auto Scaling group, which launches as the target
    /// account's service-linked role (`docs/spec/production.md` §C1).
    AutoScaling,
}

impl Intent {
    /// Whether launching is part of the intent.
    pub fn launches(self) -> bool {
        matches!(self, Intent::Launch | Intent::Both | Intent::AutoScaling)
    }

    /// Whether copying is part of the intent.
    pub fn copies(self) -> bool {
        matches!(self, Intent::Copy | Intent::Both)
    }
}

impl fmt::Display for Intent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Intent::Launch => "launch",
            Intent::Copy => "copy",
            Intent::Both => "launch and copy",
            Intent::AutoScaling => "launch through Auto Scaling",
        })
    }
}

/// What to diagnose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DiagnoseRequest {
    /// The shared image.
    pub image: ImageId,
    /// Its region.
    pub region: Region,
    /// The target principal that launches or copies: an account root, user or role.
    pub principal: PrincipalArn,
    /// Launch, copy or both.
    pub intent: Intent,
    /// Keys the owner reported for the image, for a side that cannot read its snapshots.
    pub keys: Vec<KeyArn>,
    /// The key a copy is re-encrypted under (the target's default EBS key unless given).
    pub copy_key: CopyKey,
    /// For [`Intent::AutoScaling`], the service-linked role the group
    /// launches as (default: `AWSServiceRoleForAutoScaling`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_role: Option<crate::scaling::ServiceLinkedRole>,
}

impl DiagnoseRequest {
    /// What `principal` needs to launch or copy (`intent`) the shared
    /// `image` in `region`, a copy re-encrypted under the target's default
    /// EBS key, with no keys reported by the owner.
    pub fn new(
        image: ImageId,
        region: Region,
        principal: PrincipalArn,
        intent: Intent,
    ) -> DiagnoseRequest {
        DiagnoseRequest {
            image,
            region,
            principal,
            intent,
            keys: Vec::new(),
            copy_key: CopyKey::AccountDefault,
            service_role: None,
        }
    }

    /// The keys the owner reported for the image.
    pub fn with_keys(mut self, keys: impl IntoIterator<Item = KeyArn>) -> DiagnoseRequest {
        self.keys = keys.into_iter().collect();
        self
    }

    /// The key a copy is re-encrypted under.
    pub fn with_copy_key(mut self, copy_key: CopyKey) -> DiagnoseRequest {
        self.copy_key = copy_key;
        self
    }

    /// For [`Intent::AutoScaling`], the service-linked role the group launches as.
    pub fn with_service_role(mut self, role: crate::scaling::ServiceLinkedRole) -> DiagnoseRequest {
        self.service_role = Some(role);
        self
    }
}

/// A link of the chain. Its [`code`](Link::code) is stable: scripts may match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Link {
    /// The image exists in the region (and the side looking can see it).
    ImageFound,
    /// The image is `available`.
    ImageAvailable,
    /// The image's launch permission covers the target's account.
    ImageShared,
    /// The target's IAM policy allows the EC2 action itself (`ec2:RunInstances`, `ec2:CopyImage`).
    Ec2Permission,
    /// Which key encrypts a snapshot.
    SnapshotKey,
    /// The snapshot key is customer-managed (an AWS-managed key cannot be shared).
    KeyCustomerManaged,
    /// The key lives in the image's region.
    KeyRegion,
    /// The key is enabled.
    KeyState,
    /// A copy may read the snapshot (`createVolumePermission`).
    VolumePermission,
    /// Which key encrypts the target's new volumes or copy, and that it can be used.
    DestinationKey,
    /// The key policy (or a grant) allows the target principal a KMS action.
    KeyPolicy,
    /// The target principal's own IAM policy allows a KMS action.
    IdentityPolicy,
    /// No statement explicitly denies a KMS action.
    ExplicitDeny,
    /// A grant on the key names the service-linked role (Auto Scaling).
    ServiceRoleGrant,
    /// The role's grants cover the operations EBS needs.
    ServiceRoleGrantOperations,
    /// The target principal may create the role's grant on the key.
    ServiceRoleCreateGrant,
}

impl Link {
    /// The stable code, e.g. `kms.key-policy`.
    pub fn code(self) -> &'static str {
        match self {
            Link::ImageFound => "image.found",
            Link::ImageAvailable => "image.available",
            Link::ImageShared => "image.shared",
            Link::Ec2Permission => "iam.ec2-action",
            Link::SnapshotKey => "snapshot.key",
            Link::KeyCustomerManaged => "key.customer-managed",
            Link::KeyRegion => "key.region",
            Link::KeyState => "key.state",
            Link::VolumePermission => "snapshot.create-volume-permission",
            Link::DestinationKey => "destination-key.usable",
            Link::KeyPolicy => "kms.key-policy",
            Link::IdentityPolicy => "kms.identity-policy",
            Link::ExplicitDeny => "kms.explicit-deny",
            Link::ServiceRoleGrant => "asg.grant",
            Link::ServiceRoleGrantOperations => "asg.grant-operations",
            Link::ServiceRoleCreateGrant => "asg.create-grant",
        }
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Link {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

/// Pass, fail, or cannot tell from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The link holds.
    Pass,
    /// The link is broken: the intent cannot work.
    Fail,
    /// No side that was asked can see this link.
    Unknown,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Unknown => "unknown",
        })
    }
}

/// The least change that mends a broken link.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fix {
    /// The owner adds these statements to the key policy (what `doctor --fix` applies).
    KeyPolicyStatements {
        /// The key.
        key: KeyArn,
        /// Who the statements name.
        grantee: PrincipalArn,
        /// The statements, as JSON.
        statements: serde_json::Value,
    },
    /// The target attaches this IAM policy to the principal.
    IdentityPolicy {
        /// The principal.
        principal: PrincipalArn,
        /// The policy document.
        policy: serde_json::Value,
    },
    /// A statement that denies must go or stop matching.
    RemoveDeny {
        /// Where it is: `key policy of <key>` or `IAM policy <name> of <principal>`.
        document: String,
        /// Its Sid or index.
        statement: String,
    },
    /// The owner grants launch permission to the target's account.
    LaunchPermission {
        /// The image.
        image: ImageId,
        /// The account.
        account: AccountId,
    },
    /// The owner grants createVolumePermission on a snapshot to the target's account.
    VolumePermission {
        /// The snapshot.
        snapshot: SnapshotId,
        /// The account.
        account: AccountId,
    },
    /// The key's owner enables the key (or cancels its deletion).
    EnableKey {
        /// The key.
        key: KeyArn,
    },
    /// Anything else, in words.
    Manual {
        /// What to do.
        text: String,
    },
}

impl fmt::Display for Fix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fix::KeyPolicyStatements {
                key,
                grantee,
                statements,
            } => write!(
                f,
                "add to the key policy of {key} the statements for {grantee} (amishare doctor --fix, or amishare policy):\n{}",
                serde_json::to_string_pretty(statements).unwrap_or_default()
            ),
            Fix::IdentityPolicy { principal, policy } => write!(
                f,
                "attach to {principal} an IAM policy such as:\n{}",
                serde_json::to_string_pretty(policy).unwrap_or_default()
            ),
            Fix::RemoveDeny {
                document,
                statement,
            } => write!(f, "remove or narrow statement {statement} of the {document}"),
            Fix::LaunchPermission { image, account } => write!(
                f,
                "the owner grants launch permission on {image} to account {account} (amishare share)"
            ),
            Fix::VolumePermission { snapshot, account } => write!(
                f,
                "the owner grants createVolumePermission on {snapshot} to account {account} (amishare share --volume-permission)"
            ),
            Fix::EnableKey { key } => write!(
                f,
                "the key's owner enables {key} (aws kms enable-key, or cancel-key-deletion first)"
            ),
            Fix::Manual { text } => f.write_str(text),
        }
    }
}

/// One checked link.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Finding {
    /// Which link; its code is stable.
    #[serde(rename = "code")]
    pub link: Link,
    /// Pass, fail or unknown.
    pub verdict: Verdict,
    /// The resource checked: an image, snapshot or key.
    pub subject: String,
    /// The action checked, for KMS and EC2 permission links.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// One line on what was found (for unknown: why it cannot be told).
    pub summary: String,
    /// What the verdict rests on: statements, snapshots, calls.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// For a failure: the least change that mends it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<Fix>,
}

/// Which sides the evidence came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Sight {
    /// The image owner's view was available.
    pub owner: bool,
    /// The target principal's view was available.
    pub target: bool,
    /// The target principal's IAM policies were readable.
    pub identity: bool,
}

/// The doctor's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Diagnosis {
    /// The image.
    pub image: ImageId,
    /// Its region.
    pub region: Region,
    /// The target principal.
    pub principal: PrincipalArn,
    /// What was diagnosed.
    pub intent: Intent,
    /// The overall verdict: pass only if every link passed.
    pub verdict: Verdict,
    /// Which sides could be seen.
    pub sight: Sight,
    /// Every link, in chain order.
    pub findings: Vec<Finding>,
}

impl Diagnosis {
    /// Fail if a link failed, else unknown if one is unknown, else pass.
    fn overall(findings: &[Finding]) -> Verdict {
        if findings.iter().any(|f| f.verdict == Verdict::Fail) {
            Verdict::Fail
        } else if findings.iter().any(|f| f.verdict == Verdict::Unknown) {
            Verdict::Unknown
        } else {
            Verdict::Pass
        }
    }

    /// The failed links.
    pub fn failures(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.verdict == Verdict::Fail)
    }

    /// The distinct fixes of the failed links, in chain order.
    pub fn fixes(&self) -> Vec<&Fix> {
        let mut fixes: Vec<&Fix> = Vec::new();
        for fix in self.failures().filter_map(|f| f.fix.as_ref()) {
            if !fixes.contains(&fix) {
                fixes.push(fix);
            }
        }
        fixes
    }
}

/// A principal's IAM policy, with the name it is attached under.
#[derive(Debug, Clone)]
pub struct NamedPolicy {
    /// The policy's name (inline or managed).
    pub name: String,
    /// The document.
    pub document: amishare_policy::Policy,
}

/// What IAM and Organizations tell about a principal.
#[derive(Debug, Clone, Default)]
pub struct PrincipalFacts {
    /// Whether [`org_id`](Self::org_id) and [`org_paths`](Self::org_paths)
    /// were read; when not, links that depend on the organization are unknown.
    pub org_known: bool,
    /// The organization of its account, `o-…`.
    pub org_id: Option<String>,
    /// Its account's `aws:PrincipalOrgPaths` entries.
    pub org_paths: Vec<String>,
    /// Its identity policies (a role's, for a role).
    pub policies: Vec<NamedPolicy>,
}

/// Reads principals' IAM policies and organization membership.
#[async_trait]
pub trait Directory: Send + Sync + fmt::Debug {
    /// The facts about `principal`, or `None` when this backend cannot read them.
    async fn principal(&self, principal: &PrincipalArn) -> Result<Option<PrincipalFacts>>;
}

/// The stores of one side: [`crate::Stores`], under the name the doctor's
/// users know.
pub use crate::Stores;

/// Checks the chain from whichever sides it is given.
#[derive(Debug, Clone, Default)]
pub struct Doctor {
    owner: Option<Stores>,
    target: Option<Stores>,
    directory: Option<Arc<dyn Directory>>,
}

impl Doctor {
    /// A doctor that sees nothing yet.
    pub fn new() -> Doctor {
        Doctor::default()
    }

    /// Looks from the image owner's side too (key policy, grants, snapshots, permissions).
    pub fn with_owner(mut self, stores: Stores) -> Doctor {
        self.owner = Some(stores);
        self
    }

    /// Looks from the target principal's side too (visibility, its default EBS key).
    pub fn with_target(mut self, stores: Stores) -> Doctor {
        self.target = Some(stores);
        self
    }

    /// Reads the target principal's IAM policies and organization from `directory`.
    pub fn with_directory(mut self, directory: Arc<dyn Directory>) -> Doctor {
        self.directory = Some(directory);
        self
    }

    /// Checks every link for `request`. Calls only read; a side's refusal
    /// becomes an `unknown` link, never an error. Errors are only for a
    /// request no side could even start on (e.g. the caller cannot be read).
    pub async fn diagnose(&self, request: &DiagnoseRequest) -> Result<Diagnosis> {
        if request.intent == Intent::AutoScaling {
            return autoscaling::diagnose(self, request).await;
        }
        let evidence = gather::gather(self, request).await?;
        let findings = links::judge(request, &evidence);
        Ok(Diagnosis {
            image: request.image.clone(),
            region: request.region.clone(),
            principal: request.principal.clone(),
            intent: request.intent,
            verdict: Diagnosis::overall(&findings),
            sight: evidence.sight.clone(),
            findings,
        })
    }
}
