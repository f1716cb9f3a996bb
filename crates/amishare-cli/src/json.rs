//! The documents `--json` prints: the command's own output types, made from
//! core's reports, so that their shape is the one `docs/json.md` documents
//! and versions, whatever core's types become. Each document's name and
//! version is in [`render::format`](crate::render::format).

use std::collections::BTreeMap;

use amishare_core as core;
use amishare_core::diagnose;
use amishare_core::{AccountId, ImageId, InstanceId, KeyArn, Region, SnapshotId};
use amishare_policy::Statement;
use serde::Serialize;

/// A value, or why it could not be read from this side:
/// `{"known": VALUE}` or `{"unknown": "why"}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Readable<T> {
    Known(T),
    Unknown(String),
}

impl<T> Readable<T> {
    /// `readable`'s value made into `T`.
    fn from_core<U>(readable: &core::Readable<U>, convert: impl FnOnce(&U) -> T) -> Readable<T> {
        match readable {
            core::Readable::Known(value) => Readable::Known(convert(value)),
            core::Readable::Unknown(why) => Readable::Unknown(why.clone()),
        }
    }
}

/// Who may launch an image: `{"account": …}`, `{"organization": …}`,
/// `{"organizational-unit": …}` or `"public"`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum LaunchPermission {
    Account(String),
    Organization(String),
    OrganizationalUnit(String),
    Public,
}

impl From<&core::store::LaunchPermission> for LaunchPermission {
    fn from(permission: &core::store::LaunchPermission) -> LaunchPermission {
        match permission {
            core::store::LaunchPermission::Account(a) => LaunchPermission::Account(a.to_string()),
            core::store::LaunchPermission::Organization(o) => {
                LaunchPermission::Organization(o.to_string())
            }
            core::store::LaunchPermission::OrganizationalUnit(u) => {
                LaunchPermission::OrganizationalUnit(u.to_string())
            }
            core::store::LaunchPermission::Public => LaunchPermission::Public,
        }
    }
}

impl std::fmt::Display for LaunchPermission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LaunchPermission::Account(id) => write!(f, "account {id}"),
            LaunchPermission::Organization(arn) => write!(f, "organization {arn}"),
            LaunchPermission::OrganizationalUnit(arn) => write!(f, "OU {arn}"),
            LaunchPermission::Public => f.write_str("everyone"),
        }
    }
}

/// Who may create volumes from a snapshot: `{"account": …}` or `"public"`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum VolumePermission {
    Account(String),
    Public,
}

impl From<&core::store::VolumePermission> for VolumePermission {
    fn from(permission: &core::store::VolumePermission) -> VolumePermission {
        match permission {
            core::store::VolumePermission::Account(a) => VolumePermission::Account(a.to_string()),
            core::store::VolumePermission::Public => VolumePermission::Public,
        }
    }
}

/// `amishare-status/1`.
#[derive(Debug, Serialize)]
pub(crate) struct Status {
    pub(crate) images: Vec<StatusImage>,
    pub(crate) keys: BTreeMap<String, StatusKey>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) target_view: BTreeMap<String, Readable<String>>,
    pub(crate) smoke_instances: Vec<Readable<StatusSmoke>>,
}

#[derive(Debug, Serialize)]
pub(crate) struct StatusImage {
    pub(crate) region: Region,
    pub(crate) image: ImageId,
    pub(crate) owner: String,
    pub(crate) state: String,
    pub(crate) name: String,
    pub(crate) launch_permissions: Readable<Vec<LaunchPermission>>,
    pub(crate) snapshots: Vec<StatusSnapshot>,
}

#[derive(Debug, Serialize)]
pub(crate) struct StatusSnapshot {
    pub(crate) snapshot: SnapshotId,
    pub(crate) key: Readable<Option<KeyArn>>,
    pub(crate) volume_permissions: Readable<Vec<VolumePermission>>,
}

#[derive(Debug, Serialize)]
pub(crate) struct StatusKey {
    pub(crate) state: Option<String>,
    pub(crate) manager: Option<String>,
    pub(crate) amishare_statements: Readable<Vec<Statement>>,
    pub(crate) other_statements: Option<usize>,
    pub(crate) grants: Readable<Vec<String>>,
    pub(crate) images: Vec<ImageId>,
}

#[derive(Debug, Serialize)]
pub(crate) struct StatusSmoke {
    pub(crate) region: Region,
    pub(crate) account: AccountId,
    pub(crate) instance: InstanceId,
    pub(crate) image: String,
    pub(crate) state: String,
    pub(crate) kept: bool,
}

/// A grant on one line, for people and for `status`'s `grants`.
pub(crate) fn grant_line(grant: &core::store::Grant) -> String {
    format!(
        "{} {} → {} ({})",
        grant.id,
        grant.name.as_deref().unwrap_or_default(),
        grant.grantee,
        grant.operations.join(", ")
    )
}

/// What the target side sees of an image, for people.
pub(crate) fn sees_image(caller: &core::PrincipalArn, seen: bool) -> String {
    if seen {
        format!("{caller} sees the image")
    } else {
        format!("{caller} does not see the image")
    }
}

/// What the target side's `DescribeKey` says of a key, for people.
pub(crate) fn describes_key(caller: &core::PrincipalArn, key: &core::store::KeyMetadata) -> String {
    format!("{caller} can describe the key ({})", key.state)
}

impl From<&core::StatusReport> for Status {
    fn from(report: &core::StatusReport) -> Status {
        let images = report
            .images
            .iter()
            .map(|image| StatusImage {
                region: image.region.clone(),
                image: image.image.clone(),
                owner: image.owner.to_string(),
                state: image.state.to_string(),
                name: image.name.clone(),
                launch_permissions: Readable::from_core(&image.launch_permissions, |list| {
                    list.iter().map(Into::into).collect()
                }),
                snapshots: image
                    .snapshots
                    .iter()
                    .map(|s| StatusSnapshot {
                        snapshot: s.snapshot.clone(),
                        key: Readable::from_core(&s.key, Clone::clone),
                        volume_permissions: Readable::from_core(&s.volume_permissions, |list| {
                            list.iter().map(Into::into).collect()
                        }),
                    })
                    .collect(),
            })
            .collect();
        let keys = report
            .keys
            .iter()
            .map(|(arn, key)| {
                let (state, manager) = match &key.metadata {
                    core::Readable::Known(meta) => (
                        Some(meta.state.to_string()),
                        Some(format!("{:?}", meta.manager)),
                    ),
                    core::Readable::Unknown(why) => (Some(format!("unknown: {why}")), None),
                };
                let status = StatusKey {
                    state,
                    manager,
                    amishare_statements: Readable::from_core(
                        &key.amishare_statements,
                        Clone::clone,
                    ),
                    other_statements: key.other_statements,
                    grants: Readable::from_core(&key.grants, |grants| {
                        grants.iter().map(grant_line).collect()
                    }),
                    images: key.images.clone(),
                };
                (arn.to_string(), status)
            })
            .collect();
        let mut target_view = BTreeMap::new();
        if let Some(view) = &report.target_view {
            for (image, seen) in &view.images {
                target_view.insert(
                    image.to_string(),
                    Readable::from_core(seen, |seen| sees_image(&view.caller, *seen)),
                );
            }
            for (key, described) in &view.keys {
                target_view.insert(
                    key.to_string(),
                    Readable::from_core(described, |meta| describes_key(&view.caller, meta)),
                );
            }
        }
        let smoke_instances = report
            .smoke_instances
            .iter()
            .map(|smoke| {
                Readable::from_core(smoke, |s| StatusSmoke {
                    region: s.region.clone(),
                    account: s.account.clone(),
                    instance: s.instance.clone(),
                    image: s.image.clone(),
                    state: s.state.to_string(),
                    kept: s.kept,
                })
            })
            .collect();
        Status {
            images,
            keys,
            target_view,
            smoke_instances,
        }
    }
}

/// One step: `{"region", "action", "resource", "detail", "changed"}`.
#[derive(Debug, Serialize)]
pub(crate) struct Step {
    region: Option<Region>,
    action: String,
    resource: String,
    detail: String,
    changed: bool,
}

fn steps(steps: &[core::Step]) -> Vec<Step> {
    steps
        .iter()
        .map(|step| Step {
            region: step.region.clone(),
            action: step.action.clone(),
            resource: step.resource.clone(),
            detail: step.detail.clone(),
            changed: step.changed,
        })
        .collect()
}

/// `amishare-share/1`.
#[derive(Debug, Serialize)]
pub(crate) struct Share {
    source_image: ImageId,
    source_region: Region,
    regions: Vec<ShareRegion>,
    steps: Vec<Step>,
    mutating_calls: usize,
    warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ShareRegion {
    region: Region,
    key: KeyArn,
    key_policy: KeyPolicy,
    image: ImageId,
    snapshots: BTreeMap<SnapshotId, KeyArn>,
    launch_permissions: Vec<LaunchPermission>,
}

#[derive(Debug, Serialize)]
struct KeyPolicy {
    /// `created`, `merged` or `unchanged`.
    written: &'static str,
    statements: Vec<Statement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<amishare_policy::Policy>,
}

impl From<&core::KeyPolicyReport> for KeyPolicy {
    fn from(report: &core::KeyPolicyReport) -> KeyPolicy {
        KeyPolicy {
            written: match report.written {
                core::PolicyWrite::Created => "created",
                core::PolicyWrite::Merged => "merged",
                core::PolicyWrite::Unchanged => "unchanged",
            },
            statements: report.statements.clone(),
            policy: report.policy.clone(),
        }
    }
}

impl From<&core::ShareReport> for Share {
    fn from(report: &core::ShareReport) -> Share {
        Share {
            source_image: report.source_image.clone(),
            source_region: report.source_region.clone(),
            regions: report
                .regions
                .iter()
                .map(|r| ShareRegion {
                    region: r.region.clone(),
                    key: r.key.clone(),
                    key_policy: (&r.key_policy).into(),
                    image: r.image.clone(),
                    snapshots: r.snapshots.clone(),
                    launch_permissions: r.launch_permissions.iter().map(Into::into).collect(),
                })
                .collect(),
            steps: steps(&report.steps),
            mutating_calls: report.mutating_calls,
            warnings: report.warnings.clone(),
        }
    }
}

/// `amishare-accept/1`.
#[derive(Debug, Serialize)]
pub(crate) struct Accept {
    image: ImageId,
    owner: AccountId,
    keys_checked: Vec<KeyArn>,
    keys_through_ec2: Vec<KeyArn>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    grants: Vec<AcceptGrant>,
    launch: Option<AcceptLaunch>,
    copy: Option<AcceptCopy>,
    steps: Vec<Step>,
    warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
struct AcceptGrant {
    key: KeyArn,
    grantee: String,
    grant_id: String,
    created: bool,
}

#[derive(Debug, Serialize)]
struct AcceptLaunch {
    instance: InstanceId,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    state: String,
    terminated_after: bool,
}

#[derive(Debug, Serialize)]
struct AcceptCopy {
    image: ImageId,
    snapshots: BTreeMap<SnapshotId, Option<KeyArn>>,
}

impl From<&core::AcceptReport> for Accept {
    fn from(report: &core::AcceptReport) -> Accept {
        Accept {
            image: report.image.clone(),
            owner: report.owner.clone(),
            keys_checked: report.keys_checked.clone(),
            keys_through_ec2: report.keys_through_ec2.clone(),
            grants: report
                .grants
                .iter()
                .map(|g| AcceptGrant {
                    key: g.key.clone(),
                    grantee: g.grantee.to_string(),
                    grant_id: g.grant_id.to_string(),
                    created: g.created,
                })
                .collect(),
            launch: report.launch.as_ref().map(|l| AcceptLaunch {
                instance: l.instance.clone(),
                group: l.group.clone(),
                state: l.state.to_string(),
                terminated_after: l.terminated_after,
            }),
            copy: report.copy.as_ref().map(|c| AcceptCopy {
                image: c.image.clone(),
                snapshots: c.snapshots.clone(),
            }),
            steps: steps(&report.steps),
            warnings: report.warnings.clone(),
        }
    }
}

/// `amishare-unshare/1`.
#[derive(Debug, Serialize)]
pub(crate) struct Unshare {
    steps: Vec<Step>,
    kept: Vec<UnshareKept>,
    mutating_calls: usize,
    warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
struct UnshareKept {
    region: Region,
    image: ImageId,
    account: AccountId,
    named: Vec<String>,
}

impl From<&core::UnshareReport> for Unshare {
    fn from(report: &core::UnshareReport) -> Unshare {
        Unshare {
            steps: steps(&report.steps),
            kept: report
                .kept
                .iter()
                .map(|k| UnshareKept {
                    region: k.region.clone(),
                    image: k.image.clone(),
                    account: k.account.clone(),
                    named: k.named.clone(),
                })
                .collect(),
            mutating_calls: report.mutating_calls,
            warnings: report.warnings.clone(),
        }
    }
}

/// The doctor's answer, as `amishare-doctor/1` and the `diagnosis` of
/// `amishare-launch-failure/1` have it.
#[derive(Debug, Serialize)]
pub(crate) struct Diagnosis {
    image: ImageId,
    region: Region,
    principal: String,
    /// `launch`, `copy`, `both` or `auto-scaling`.
    intent: &'static str,
    verdict: &'static str,
    sight: Sight,
    findings: Vec<Finding>,
}

#[derive(Debug, Serialize)]
struct Sight {
    owner: bool,
    target: bool,
    identity: bool,
}

#[derive(Debug, Serialize)]
struct Finding {
    code: &'static str,
    verdict: &'static str,
    subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<String>,
    summary: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    evidence: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<Fix>,
}

/// The least change that mends a broken link, by its stable `kind`.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum Fix {
    KeyPolicyStatements {
        key: KeyArn,
        grantee: String,
        statements: serde_json::Value,
    },
    IdentityPolicy {
        principal: String,
        policy: serde_json::Value,
    },
    RemoveDeny {
        document: String,
        statement: String,
    },
    LaunchPermission {
        image: ImageId,
        account: AccountId,
    },
    VolumePermission {
        snapshot: SnapshotId,
        account: AccountId,
    },
    EnableKey {
        key: KeyArn,
    },
    Manual {
        text: String,
    },
}

impl From<&diagnose::Fix> for Fix {
    fn from(fix: &diagnose::Fix) -> Fix {
        match fix {
            diagnose::Fix::KeyPolicyStatements {
                key,
                grantee,
                statements,
            } => Fix::KeyPolicyStatements {
                key: key.clone(),
                grantee: grantee.to_string(),
                statements: statements.clone(),
            },
            diagnose::Fix::IdentityPolicy { principal, policy } => Fix::IdentityPolicy {
                principal: principal.to_string(),
                policy: policy.clone(),
            },
            diagnose::Fix::RemoveDeny {
                document,
                statement,
            } => Fix::RemoveDeny {
                document: document.clone(),
                statement: statement.clone(),
            },
            diagnose::Fix::LaunchPermission { image, account } => Fix::LaunchPermission {
                image: image.clone(),
                account: account.clone(),
            },
            diagnose::Fix::VolumePermission { snapshot, account } => Fix::VolumePermission {
                snapshot: snapshot.clone(),
                account: account.clone(),
            },
            diagnose::Fix::EnableKey { key } => Fix::EnableKey { key: key.clone() },
            diagnose::Fix::Manual { text } => Fix::Manual { text: text.clone() },
        }
    }
}

fn verdict(verdict: diagnose::Verdict) -> &'static str {
    match verdict {
        diagnose::Verdict::Pass => "pass",
        diagnose::Verdict::Fail => "fail",
        diagnose::Verdict::Unknown => "unknown",
    }
}

impl From<&diagnose::Diagnosis> for Diagnosis {
    fn from(diagnosis: &diagnose::Diagnosis) -> Diagnosis {
        Diagnosis {
            image: diagnosis.image.clone(),
            region: diagnosis.region.clone(),
            principal: diagnosis.principal.to_string(),
            intent: match diagnosis.intent {
                diagnose::Intent::Launch => "launch",
                diagnose::Intent::Copy => "copy",
                diagnose::Intent::Both => "both",
                diagnose::Intent::AutoScaling => "auto-scaling",
            },
            verdict: verdict(diagnosis.verdict),
            sight: Sight {
                owner: diagnosis.sight.owner,
                target: diagnosis.sight.target,
                identity: diagnosis.sight.identity,
            },
            findings: diagnosis
                .findings
                .iter()
                .map(|f| Finding {
                    code: f.link.code(),
                    verdict: verdict(f.verdict),
                    subject: f.subject.clone(),
                    action: f.action.clone(),
                    summary: f.summary.clone(),
                    evidence: f.evidence.clone(),
                    fix: f.fix.as_ref().map(Into::into),
                })
                .collect(),
        }
    }
}

/// `amishare-demo/1`.
#[derive(Debug, Serialize)]
pub(crate) struct Demo {
    owner: String,
    target: String,
    region: Region,
    share: Share,
    accept: Accept,
    #[serde(skip_serializing_if = "Option::is_none")]
    autoscaling: Option<Accept>,
    /// Seconds.
    simulated: f64,
}

impl From<&amishare_sim::seed::SeedFlowReport> for Demo {
    fn from(report: &amishare_sim::seed::SeedFlowReport) -> Demo {
        Demo {
            owner: report.owner.to_string(),
            target: report.target.to_string(),
            region: report.region.clone(),
            share: (&report.share).into(),
            accept: (&report.accept).into(),
            autoscaling: report.autoscaling.as_ref().map(Into::into),
            simulated: report.simulated.as_secs_f64(),
        }
    }
}

/// `amishare-plan/1`.
#[derive(Debug, Serialize)]
pub(crate) struct Plan {
    calls: Vec<PlanCall>,
    policy_changes: Vec<PlanPolicyChange>,
}

#[derive(Debug, Serialize)]
struct PlanCall {
    operation: String,
    region: Option<Region>,
    resource: String,
    detail: String,
}

#[derive(Debug, Serialize)]
struct PlanPolicyChange {
    key: KeyArn,
    before: String,
    after: String,
}

impl From<&core::plan::Plan> for Plan {
    fn from(plan: &core::plan::Plan) -> Plan {
        Plan {
            calls: plan
                .calls
                .iter()
                .map(|call| PlanCall {
                    operation: call.operation.to_string(),
                    region: call.region.clone(),
                    resource: call.resource.clone(),
                    detail: call.detail.clone(),
                })
                .collect(),
            policy_changes: plan
                .policy_changes
                .iter()
                .map(|change| PlanPolicyChange {
                    key: change.key.clone(),
                    before: change.before.clone(),
                    after: change.after.clone(),
                })
                .collect(),
        }
    }
}
