//! Judges each link on the evidence, with the same evaluator KMS decisions
//! are simulated with.

use amishare_policy::{
    evaluate_identity, evaluate_kms, least_privilege_statements, Caller, Context, Decision, Effect,
    GrantView, Grantee, Missing, OneOrMany, Outcome, Policy, PolicySource, Principal, Request,
    Statement, StatementRef,
};
use serde_json::json;

use super::gather::{Evidence, KeyName, Known};
use super::{DiagnoseRequest, Finding, Fix, Link, Verdict};
use crate::ec2_kms::{Encryption, SourceKey};
use crate::store::{Image, ImageState, KeyManager, KeyState, LaunchPermission};
use crate::{ec2_kms, CopyKey, KeyArn};

/// Findings in chain order.
struct Chain(Vec<Finding>);

impl Chain {
    fn push(
        &mut self,
        link: Link,
        verdict: Verdict,
        subject: impl ToString,
        summary: String,
    ) -> &mut Finding {
        self.0.push(Finding {
            link,
            verdict,
            subject: subject.to_string(),
            action: None,
            summary,
            evidence: Vec::new(),
            fix: None,
        });
        self.0.last_mut().expect("just pushed")
    }

    fn unknown(&mut self, link: Link, subject: impl ToString, why: &str) -> &mut Finding {
        self.push(link, Verdict::Unknown, subject, why.to_owned())
    }
}

/// Why a key is needed, for the summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// It encrypts the image's snapshots.
    Snapshot,
    /// It encrypts the target's new volumes.
    Volume,
    /// It encrypts the target's copy.
    Copy,
}

impl Role {
    fn text(self) -> &'static str {
        match self {
            Role::Snapshot => "snapshot key",
            Role::Volume => "volume key",
            Role::Copy => "copy's key",
        }
    }
}

/// The KMS actions needed on each key, in first-needed order.
#[derive(Default)]
struct Needs(Vec<(KeyName, Role, Vec<&'static str>)>);

impl Needs {
    fn add(&mut self, key: &KeyName, role: Role, actions: &[&'static str]) {
        let index = match self.0.iter().position(|(k, _, _)| k == key) {
            Some(index) => index,
            None => {
                self.0.push((key.clone(), role, Vec::new()));
                self.0.len() - 1
            }
        };
        let needed = &mut self.0[index].2;
        for action in actions {
            if !needed.contains(action) {
                needed.push(action);
            }
        }
    }
}

pub(super) fn judge(request: &DiagnoseRequest, ev: &Evidence) -> Vec<Finding> {
    let mut chain = Chain(Vec::new());
    let Some(image) = image_links(&mut chain, request, ev) else {
        return chain.0;
    };
    shared_link(&mut chain, request, ev, image);
    ec2_links(&mut chain, request, ev);
    let cross_account = image.owner != ev.target_account;
    let mut needs = Needs::default();

    for snapshot in &ev.snapshots {
        match &snapshot.key {
            Known::No(why) => {
                chain.unknown(Link::SnapshotKey, &snapshot.id, why);
            }
            Known::Yes((key, source)) => {
                let summary = match key {
                    Some(key) => format!("snapshot {} is encrypted with {key}", snapshot.id),
                    None => format!("snapshot {} is not encrypted", snapshot.id),
                };
                chain
                    .push(Link::SnapshotKey, Verdict::Pass, &snapshot.id, summary)
                    .evidence
                    .push(format!("read with {source}"));
            }
        }
    }
    let snapshot_keys: Vec<KeyArn> = {
        let mut keys: Vec<KeyArn> = Vec::new();
        for key in ev
            .snapshots
            .iter()
            .filter_map(|s| s.key.ok().and_then(|(key, _)| key.clone()))
        {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys
    };
    for key in &snapshot_keys {
        key_links(&mut chain, request, ev, key, cross_account);
    }
    if request.intent.copies() && cross_account {
        for snapshot in &ev.snapshots {
            match &snapshot.readable {
                Known::No(why) => {
                    chain.unknown(Link::VolumePermission, &snapshot.id, why);
                }
                Known::Yes((true, source)) => chain
                    .push(
                        Link::VolumePermission,
                        Verdict::Pass,
                        &snapshot.id,
                        format!(
                            "account {} may create volumes from {}, so it may copy the image",
                            ev.target_account, snapshot.id
                        ),
                    )
                    .evidence
                    .push(format!("read with {source}")),
                Known::Yes((false, source)) => {
                    let finding = chain.push(
                        Link::VolumePermission,
                        Verdict::Fail,
                        &snapshot.id,
                        format!(
                            "account {} has no createVolumePermission on {}: CopyImage fails with \"You do not have permission to access the storage of this ami\"",
                            ev.target_account, snapshot.id
                        ),
                    );
                    finding.evidence.push(format!("read with {source}"));
                    finding.fix = Some(Fix::VolumePermission {
                        snapshot: snapshot.id.clone(),
                        account: ev.target_account.clone(),
                    });
                }
            }
        }
    }

    // Which keys EC2 uses on the target's behalf, as `docs/spec/ec2.md` §B18 says.
    let destination = ev.destination.ok();
    let default_key = destination.map(|d| d.default_key.as_ref());
    // Unknown settings count as on, so an unknown default key is reported.
    let encryption_by_default = destination.is_none_or(|d| d.encryption_by_default);
    let mut destinations: Vec<(Role, KeyName)> = Vec::new();
    if request.intent.launches() {
        for snapshot in &ev.snapshots {
            let Some((key, _)) = snapshot.key.ok() else {
                continue;
            };
            let key = key.clone().map(KeyName::Arn);
            let source = SourceKey::new(key.is_some(), !cross_account);
            let how = ec2_kms::encryption(source, None::<&KeyName>, false, encryption_by_default);
            let volume: Option<&KeyName> = match (&how, &default_key) {
                (Encryption::Plain, _) => None,
                (Encryption::SameKey, _) => key.as_ref(),
                (_, Some(Known::Yes(volume))) => Some(*volume),
                (_, _) => {
                    destination_unknown(&mut chain, ev, Role::Volume);
                    None
                }
            };
            for (needed, actions) in ec2_kms::launch_actions(key.as_ref(), volume) {
                let role = if Some(needed) == key.as_ref() {
                    Role::Snapshot
                } else {
                    push_unique(&mut destinations, Role::Volume, needed);
                    Role::Volume
                };
                needs.add(needed, role, actions);
            }
        }
    }
    if request.intent.copies() {
        let copy_key: Option<Known<&KeyName>> = match (&request.copy_key, destination) {
            (CopyKey::Key(_), Some(d)) => d.copy_key.as_ref().map(Known::as_ref),
            (CopyKey::AccountDefault, Some(d)) => Some(d.default_key.as_ref()),
            (_, None) => None,
        };
        let requested = match &request.copy_key {
            CopyKey::Key(key) => Some(key),
            CopyKey::AccountDefault => None,
        };
        for snapshot in &ev.snapshots {
            let Some((key, _)) = snapshot.key.ok() else {
                continue;
            };
            let key = key.clone().map(KeyName::Arn);
            let source = SourceKey::new(key.is_some(), !cross_account);
            // amishare always copies with `Encrypted=true`.
            let how = ec2_kms::encryption(source, requested, true, encryption_by_default);
            let copy: Option<&KeyName> = match (&how, &copy_key) {
                (Encryption::Plain, _) => None,
                (Encryption::SameKey, _) => key.as_ref(),
                (_, Some(Known::Yes(copy))) => Some(*copy),
                (_, Some(Known::No(why))) => {
                    let copy = match &request.copy_key {
                        CopyKey::Key(key) => key.to_string(),
                        CopyKey::AccountDefault => "the default EBS key".to_owned(),
                    };
                    if !chain
                        .0
                        .iter()
                        .any(|f| f.link == Link::DestinationKey && f.subject == copy)
                    {
                        let finding = chain.push(
                            Link::DestinationKey,
                            Verdict::Fail,
                            &copy,
                            format!("the copy's key {copy} cannot be used by the target in {}: the copy would go failed ({why})", request.region),
                        );
                        finding.fix = Some(Fix::Manual {
                            text: format!(
                                "copy with a key of account {} in {} that the target can describe",
                                ev.target_account, request.region
                            ),
                        });
                    }
                    None
                }
                (_, None) => {
                    destination_unknown(&mut chain, ev, Role::Copy);
                    None
                }
            };
            let needed_keys = ec2_kms::copy_actions(key.as_ref(), copy);
            for (index, (needed, actions)) in needed_keys.into_iter().enumerate() {
                let role = if index == 0 && key.is_some() {
                    Role::Snapshot
                } else if matches!(how, Encryption::SameKey) {
                    // The copy keeps the key: it is no new destination.
                    Role::Snapshot
                } else {
                    push_unique(&mut destinations, Role::Copy, needed);
                    Role::Copy
                };
                needs.add(needed, role, actions);
            }
        }
    }
    for (role, key) in &destinations {
        destination_links(&mut chain, request, ev, *role, key);
    }
    for (key, role, actions) in &needs.0 {
        kms_links(&mut chain, request, ev, key, *role, actions);
    }
    chain.0
}

fn push_unique(list: &mut Vec<(Role, KeyName)>, role: Role, key: &KeyName) {
    if !list.iter().any(|(_, k)| k == key) {
        list.push((role, key.clone()));
    }
}

fn destination_unknown(chain: &mut Chain, ev: &Evidence, role: Role) {
    let why = match &ev.destination {
        Known::No(why) => why.clone(),
        Known::Yes(_) => "the target's default EBS key could not be resolved".to_owned(),
    };
    if !chain
        .0
        .iter()
        .any(|f| f.link == Link::DestinationKey && f.subject == role.text())
    {
        chain.unknown(Link::DestinationKey, role.text(), &why);
    }
}

/// `image.found` and `image.available`; the image, if it was found.
fn image_links<'e>(
    chain: &mut Chain,
    request: &DiagnoseRequest,
    ev: &'e Evidence,
) -> Option<&'e Image> {
    let image = match &ev.image {
        Known::Yes(image) => image,
        Known::No(why) => {
            let verdict = if ev.sight.owner || ev.sight.target {
                Verdict::Fail
            } else {
                Verdict::Unknown
            };
            let finding = chain.push(Link::ImageFound, verdict, &request.image, why.clone());
            if ev.sight.target {
                finding.summary = format!(
                    "image {} is not visible to account {} in {}: it is not shared with it, is in another region, or does not exist (RunInstances fails with InvalidAMIID.NotFound)",
                    request.image, ev.target_account, request.region
                );
                finding.fix = Some(Fix::Manual {
                    text: format!(
                        "check the image ID and region, and that the owner shared it with account {}",
                        ev.target_account
                    ),
                });
            }
            return None;
        }
    };
    chain.push(
        Link::ImageFound,
        Verdict::Pass,
        &image.id,
        format!(
            "image {} of account {} exists in {}",
            image.id, image.owner, request.region
        ),
    );
    match image.state {
        ImageState::Available => {
            chain.push(
                Link::ImageAvailable,
                Verdict::Pass,
                &image.id,
                format!("image {} is available", image.id),
            );
        }
        state => {
            let reason = image
                .state_reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            let finding = chain.push(
                Link::ImageAvailable,
                Verdict::Fail,
                &image.id,
                format!("image {} is {state}{reason}, not available", image.id),
            );
            finding.fix = Some(Fix::Manual {
                text: if state == ImageState::Pending {
                    format!("wait until {} is available", image.id)
                } else {
                    format!(
                        "the owner makes a new image: {} cannot become available",
                        image.id
                    )
                },
            });
        }
    }
    Some(image)
}

/// `image.shared`: whether the launch permission covers the target's account.
fn shared_link(chain: &mut Chain, request: &DiagnoseRequest, ev: &Evidence, image: &Image) {
    let target = &ev.target_account;
    let subject = &image.id;
    if &image.owner == target {
        chain.push(
            Link::ImageShared,
            Verdict::Pass,
            subject,
            format!("account {target} owns the image"),
        );
        return;
    }
    if image.public {
        chain.push(
            Link::ImageShared,
            Verdict::Pass,
            subject,
            "the image is public".to_owned(),
        );
        return;
    }
    let fix = Fix::LaunchPermission {
        image: image.id.clone(),
        account: target.clone(),
    };
    if let Known::Yes(sees) = ev.target_sees_image {
        let finding = if sees {
            chain.push(
                Link::ImageShared,
                Verdict::Pass,
                subject,
                format!("account {target} can launch the image"),
            )
        } else {
            let finding = chain.push(
                Link::ImageShared,
                Verdict::Fail,
                subject,
                format!("the image is not shared with account {target}"),
            );
            finding.fix = Some(fix);
            finding
        };
        finding
            .evidence
            .push("DescribeImages as the target".to_owned());
        return;
    }
    let permissions = match &ev.launch_permissions {
        Known::Yes(permissions) => permissions,
        Known::No(why) => {
            chain.unknown(Link::ImageShared, subject, why);
            return;
        }
    };
    // Organization entries are judged only on a known organization.
    let facts = ev.facts.ok().filter(|f| f.org_known);
    let mut unknown = None;
    let mut covered_by = None;
    for permission in permissions {
        let covers = match permission {
            LaunchPermission::Public => Some(true),
            LaunchPermission::Account(account) => Some(account == target),
            LaunchPermission::Organization(org) => {
                facts.map(|f| f.org_id.as_deref() == Some(org.org_id()))
            }
            LaunchPermission::OrganizationalUnit(ou) => facts.map(|f| {
                f.org_id.as_deref() == Some(ou.org_id())
                    && f.org_paths
                        .iter()
                        .any(|path| path.split('/').any(|segment| segment == ou.ou_id()))
            }),
        };
        match covers {
            Some(true) => {
                covered_by = Some(permission);
                break;
            }
            Some(false) => {}
            None => unknown = Some(permission),
        }
    }
    let listed = permissions
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let evidence = format!(
        "launch permission: {}",
        if listed.is_empty() { "nobody" } else { &listed }
    );
    let finding = match (covered_by, unknown) {
        (Some(permission), _) => chain.push(
            Link::ImageShared,
            Verdict::Pass,
            subject,
            format!("the launch permission for {permission} covers account {target}"),
        ),
        (None, Some(permission)) => chain.push(
            Link::ImageShared,
            Verdict::Unknown,
            subject,
            format!("the image is shared with {permission}; whether account {target} belongs to it cannot be read from here"),
        ),
        (None, None) => {
            let finding = chain.push(
                Link::ImageShared,
                Verdict::Fail,
                subject,
                format!("the image is not shared with account {target} in {}", request.region),
            );
            finding.fix = Some(fix);
            finding
        }
    };
    finding.evidence.push(evidence);
}

/// `iam.ec2-action`: the target's IAM policy allows the EC2 call itself.
fn ec2_links(chain: &mut Chain, request: &DiagnoseRequest, ev: &Evidence) {
    let mut actions = Vec::new();
    if request.intent.launches() {
        actions.push((
            "ec2:RunInstances",
            format!("arn:aws:ec2:{}::image/{}", request.region, request.image),
        ));
    }
    if request.intent.copies() {
        actions.push((
            "ec2:CopyImage",
            format!("arn:aws:ec2:{}::image/*", request.region),
        ));
    }
    for (action, resource) in actions {
        let facts = match &ev.facts {
            Known::Yes(facts) => facts,
            Known::No(why) => {
                chain
                    .unknown(Link::Ec2Permission, &request.principal, why)
                    .action = Some(action.to_owned());
                continue;
            }
        };
        let documents: Vec<&Policy> = facts.policies.iter().map(|p| &p.document).collect();
        let req = Request {
            caller: caller(request, ev),
            action,
            resource: &resource,
            resource_account: ev.target_account.as_str(),
            context: Context::new(),
        };
        let decision = evaluate_identity(&req, &documents);
        let finding = if decision.is_allowed() {
            let finding = chain.push(
                Link::Ec2Permission,
                Verdict::Pass,
                &request.principal,
                format!("the IAM policy of {} allows {action}", request.principal),
            );
            finding.evidence = statement_refs(&decision.allowed_by, request, ev);
            finding
        } else {
            let finding = chain.push(
                Link::Ec2Permission,
                Verdict::Fail,
                &request.principal,
                format!(
                    "{} may not call {action}: {}",
                    request.principal,
                    decision.denial_message(&req)
                ),
            );
            finding.fix = Some(match &decision.denied_by {
                Some(deny) => remove_deny(deny, request, ev),
                None => Fix::IdentityPolicy {
                    principal: request.principal.clone(),
                    policy: json!({
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}],
                    }),
                },
            });
            finding
        };
        finding.action = Some(action.to_owned());
    }
}

/// `key.customer-managed`, `key.region`, `key.state` of a snapshot's key.
fn key_links(
    chain: &mut Chain,
    request: &DiagnoseRequest,
    ev: &Evidence,
    arn: &KeyArn,
    cross_account: bool,
) {
    let key = &KeyName::Arn(arn.clone());
    let metadata = ev.keys.get(key).map(|k| &k.metadata);
    match metadata {
        Some(Known::Yes(metadata)) if cross_account => {
            if metadata.manager == KeyManager::Aws {
                let finding = chain.push(
                    Link::KeyCustomerManaged,
                    Verdict::Fail,
                    key,
                    format!("{key} is an AWS-managed key: its policy cannot name other accounts, so the image cannot be used across accounts"),
                );
                finding.fix = Some(Fix::Manual {
                    text: format!(
                        "the owner copies {} under a customer-managed key and shares the copy (amishare share --image {} --key alias/…)",
                        request.image, request.image
                    ),
                });
            } else {
                chain.push(
                    Link::KeyCustomerManaged,
                    Verdict::Pass,
                    key,
                    format!("{key} is customer-managed"),
                );
            }
        }
        Some(Known::Yes(_)) => {}
        Some(Known::No(why)) => {
            chain.unknown(Link::KeyCustomerManaged, key, why);
        }
        None => {
            chain.unknown(Link::KeyCustomerManaged, key, "the key was not read");
        }
    }
    region_link(chain, request, key, "snapshot key");
    state_link(chain, ev, key);
}

fn region_link(chain: &mut Chain, request: &DiagnoseRequest, key: &KeyName, role: &str) {
    if key.region() == &request.region {
        chain.push(
            Link::KeyRegion,
            Verdict::Pass,
            key,
            format!("the {role} is in {}, like the image", request.region),
        );
    } else {
        let finding = chain.push(
            Link::KeyRegion,
            Verdict::Fail,
            key,
            format!(
                "the {role} {key} is in {}, not in {}: KMS keys are regional",
                key.region(),
                request.region
            ),
        );
        finding.fix = Some(Fix::Manual {
            text: format!("use a key of {} instead", request.region),
        });
    }
}

fn state_link(chain: &mut Chain, ev: &Evidence, key: &KeyName) {
    if let KeyName::AwsEbs { .. } = key {
        chain.push(
            Link::KeyState,
            Verdict::Pass,
            key,
            format!("{key} is AWS-managed, and AWS-managed keys are always enabled"),
        );
        return;
    }
    match ev.keys.get(key).map(|k| &k.metadata) {
        Some(Known::Yes(metadata)) if metadata.state == KeyState::Enabled => {
            chain.push(
                Link::KeyState,
                Verdict::Pass,
                key,
                format!("{key} is enabled"),
            );
        }
        Some(Known::Yes(metadata)) => {
            let finding = chain.push(
                Link::KeyState,
                Verdict::Fail,
                key,
                format!(
                    "{key} is {}: EC2's KMS calls fail, so launches terminate and copies fail",
                    metadata.state
                ),
            );
            finding.fix = key.arn().map(|key| Fix::EnableKey { key: key.clone() });
        }
        Some(Known::No(why)) => {
            chain.unknown(Link::KeyState, key, why);
        }
        None => {
            chain.unknown(Link::KeyState, key, "the key was not read");
        }
    }
}

/// `destination-key.usable`: which key of the target's encrypts the new
/// volumes or copy, and its region and state.
fn destination_links(
    chain: &mut Chain,
    request: &DiagnoseRequest,
    ev: &Evidence,
    role: Role,
    key: &KeyName,
) {
    let what = match role {
        Role::Volume => "the target's new volumes are re-encrypted under its default EBS key",
        Role::Copy => "the target's copy is encrypted under",
        Role::Snapshot => "",
    };
    chain.push(
        Link::DestinationKey,
        Verdict::Pass,
        key,
        format!("{what} {key}"),
    );
    region_link(chain, request, key, role.text());
    state_link(chain, ev, key);
}

/// `kms.key-policy`, `kms.identity-policy`, `kms.explicit-deny` for each action.
fn kms_links(
    chain: &mut Chain,
    request: &DiagnoseRequest,
    ev: &Evidence,
    key: &KeyName,
    role: Role,
    actions: &[&'static str],
) {
    let evidence = ev.keys.get(key);
    let policy = evidence.map(|k| &k.policy);
    let grants: Vec<_> = evidence
        .and_then(|k| k.grants.ok())
        .map(|grants| grants.to_vec())
        .unwrap_or_default();
    let grant_views: Vec<GrantView<'_>> = grants
        .iter()
        .map(|g| GrantView {
            grant_id: g.id.as_str(),
            grantee: &g.grantee,
            operations: &g.operations,
        })
        .collect();
    // Stand-ins for unreadable documents: a key policy that delegates to
    // the principal's account, and an identity policy that allows anything.
    let key_stand_in = delegating_key_policy(request);
    let identity_stand_in = allow_everything();
    let key_policy = match policy {
        Some(Known::Yes(policy)) => Ok(policy),
        Some(Known::No(why)) => Err(why.clone()),
        None => Err(format!("the key policy of {key} was not read")),
    };
    let identities: Result<Vec<&Policy>, String> = match &ev.facts {
        Known::Yes(facts) => Ok(facts.policies.iter().map(|p| &p.document).collect()),
        Known::No(why) => Err(why.clone()),
    };
    let org_dependent = key_policy.as_ref().is_ok_and(|p| {
        let text = p.to_json();
        text.contains("aws:PrincipalOrgID") || text.contains("aws:PrincipalOrgPaths")
    });
    let context = Context::via_ec2(key.region().as_str());
    let key_text = key.resource();
    let how = format!(
        "when EC2 calls it (kms:ViaService ec2.{}.amazonaws.com, kms:GrantIsForAWSResource true)",
        key.region()
    );
    for action in actions {
        let req = Request {
            caller: caller(request, ev),
            action,
            resource: &key_text,
            resource_account: key.account().as_str(),
            context: context.clone(),
        };
        let stand_in_identities = [&identity_stand_in];
        let decision = evaluate_kms(
            &req,
            key_policy.as_ref().map_or(&key_stand_in, |p| *p),
            identities.as_deref().unwrap_or(&stand_in_identities),
            &grant_views,
        );
        if decision.outcome == Outcome::ExplicitDeny {
            let deny = decision
                .denied_by
                .as_ref()
                .expect("an explicit deny names its statement");
            let finding = chain.push(
                Link::ExplicitDeny,
                Verdict::Fail,
                key,
                format!(
                    "{} denies {} {action} on the {} {key} {how}",
                    document_name(deny, request, ev, key),
                    request.principal,
                    role.text()
                ),
            );
            finding.action = Some((*action).to_owned());
            finding.evidence = statement_refs(std::slice::from_ref(deny), request, ev);
            finding.fix = Some(remove_deny(deny, request, ev));
            continue;
        }
        key_policy_link(
            chain,
            request,
            key,
            role,
            action,
            &how,
            &key_policy,
            &decision,
            org_dependent,
            ev,
        );
        // When no key-policy statement matches, KMS stops before IAM; ask
        // IAM as if the key policy delegated to the principal's account.
        let identity_decision = if decision.missing.contains(&Missing::KeyPolicyAllow) {
            evaluate_kms(
                &req,
                &key_stand_in,
                identities.as_deref().unwrap_or(&stand_in_identities),
                &grant_views,
            )
        } else {
            decision
        };
        identity_link(
            chain,
            request,
            key,
            role,
            action,
            actions,
            &how,
            &identities,
            &identity_decision,
            ev,
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn key_policy_link(
    chain: &mut Chain,
    request: &DiagnoseRequest,
    key: &KeyName,
    role: Role,
    action: &str,
    how: &str,
    key_policy: &Result<&Policy, String>,
    decision: &Decision,
    org_dependent: bool,
    ev: &Evidence,
) {
    let principal = &request.principal;
    let finding = match key_policy {
        Err(why) => chain.unknown(Link::KeyPolicy, key, why),
        Ok(_) => {
            let missing = decision.missing.contains(&Missing::KeyPolicyAllow)
                || decision
                    .missing
                    .contains(&Missing::CrossAccountNotPermitted);
            if !missing {
                let finding = chain.push(
                    Link::KeyPolicy,
                    Verdict::Pass,
                    key,
                    format!(
                        "the key policy of the {} allows {principal} {action} {how}",
                        role.text()
                    ),
                );
                finding.evidence = statement_refs(
                    &decision
                        .allowed_by
                        .iter()
                        .filter(|s| !matches!(s.source, PolicySource::Identity { .. }))
                        .cloned()
                        .collect::<Vec<_>>(),
                    request,
                    ev,
                );
                finding
            } else if org_dependent && !ev.facts.ok().is_some_and(|f| f.org_known) {
                chain.unknown(
                    Link::KeyPolicy,
                    key,
                    &format!("the key policy of {key} allows by organization, and the organization of account {} cannot be read from here", ev.target_account),
                )
            } else {
                let statements = least_privilege_statements(
                    &[Grantee::Principal(principal.to_string())],
                    &amishare_policy::Narrowing::default(),
                );
                let finding = chain.push(
                    Link::KeyPolicy,
                    Verdict::Fail,
                    key,
                    format!("no statement of the key policy of the {} {key} allows {principal} {action} {how}", role.text()),
                );
                finding.fix = Some(match key.arn() {
                    Some(arn) => Fix::KeyPolicyStatements {
                        key: arn.clone(),
                        grantee: principal.clone(),
                        statements: Policy::from_statements(statements).to_value()["Statement"]
                            .clone(),
                    },
                    None => Fix::Manual {
                        text: format!("{key} has a fixed policy: use a customer-managed key whose policy allows {principal}"),
                    },
                });
                finding
            }
        }
    };
    finding.action = Some(action.to_owned());
}

#[allow(clippy::too_many_arguments)]
fn identity_link(
    chain: &mut Chain,
    request: &DiagnoseRequest,
    key: &KeyName,
    role: Role,
    action: &str,
    actions: &[&'static str],
    how: &str,
    identities: &Result<Vec<&Policy>, String>,
    decision: &Decision,
    ev: &Evidence,
) {
    let principal = &request.principal;
    let finding = match identities {
        Err(why) => chain.unknown(Link::IdentityPolicy, key, why),
        Ok(_) if decision.missing.contains(&Missing::IdentityPolicyAllow) => {
            let finding = chain.push(
                Link::IdentityPolicy,
                Verdict::Fail,
                key,
                format!(
                    "no IAM policy of {principal} allows {action} on the {} {key}{}",
                    role.text(),
                    if key.account() == principal.account() {
                        ""
                    } else {
                        " (across accounts both the key policy and the caller's IAM policy must allow)"
                    }
                ),
            );
            finding.fix = Some(Fix::IdentityPolicy {
                principal: principal.clone(),
                policy: json!({
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Sid": "AllowUseOfSharedImageKey",
                        "Effect": "Allow",
                        "Action": actions,
                        "Resource": key.resource(),
                    }],
                }),
            });
            finding
        }
        Ok(_) => {
            let refs: Vec<StatementRef> = decision
                .allowed_by
                .iter()
                .filter(|s| matches!(s.source, PolicySource::Identity { .. }))
                .cloned()
                .collect();
            let summary = if refs.is_empty() {
                format!(
                    "no IAM allow of {principal} is needed for {action} on the {} {key} {how}",
                    role.text()
                )
            } else {
                format!(
                    "the IAM policy of {principal} allows {action} on the {} {key}",
                    role.text()
                )
            };
            let finding = chain.push(Link::IdentityPolicy, Verdict::Pass, key, summary);
            finding.evidence = statement_refs(&refs, request, ev);
            finding
        }
    };
    finding.action = Some(action.to_owned());
}

fn caller<'r>(request: &'r DiagnoseRequest, ev: &'r Evidence) -> Caller<'r> {
    let facts = ev.facts.ok();
    Caller {
        arn: request.principal.as_str(),
        account: request.principal.account().as_str(),
        org_id: facts.and_then(|f| f.org_id.as_deref()),
        org_paths: facts.map_or(&[], |f| f.org_paths.as_slice()),
    }
}

/// A key policy that leaves everything to the principal account's IAM.
fn delegating_key_policy(request: &DiagnoseRequest) -> Policy {
    let mut statement = Statement::new(Effect::Allow);
    statement.principal = Some(Principal::from_aws(vec![request
        .principal
        .account()
        .root_arn()
        .to_string()]));
    statement.action = Some(OneOrMany::One("kms:*".to_owned()));
    statement.resource = Some(OneOrMany::One("*".to_owned()));
    Policy::from_statements(vec![statement])
}

fn allow_everything() -> Policy {
    let mut statement = Statement::new(Effect::Allow);
    statement.action = Some(OneOrMany::One("*".to_owned()));
    statement.resource = Some(OneOrMany::One("*".to_owned()));
    Policy::from_statements(vec![statement])
}

fn document_name(
    statement: &StatementRef,
    request: &DiagnoseRequest,
    ev: &Evidence,
    key: &KeyName,
) -> String {
    match &statement.source {
        PolicySource::KeyPolicy => format!("the key policy of {key}"),
        PolicySource::Identity { index } => format!(
            "IAM policy {} of {}",
            identity_name(*index, ev),
            request.principal
        ),
        PolicySource::Grant { grant_id } => format!("grant {grant_id}"),
    }
}

fn identity_name(index: usize, ev: &Evidence) -> String {
    ev.facts
        .ok()
        .and_then(|f| f.policies.get(index))
        .map_or_else(|| format!("#{index}"), |p| p.name.clone())
}

fn statement_label(statement: &StatementRef) -> String {
    match &statement.sid {
        Some(sid) => format!("statement {} (Sid {sid:?})", statement.index),
        None => format!("statement {}", statement.index),
    }
}

fn statement_refs(refs: &[StatementRef], request: &DiagnoseRequest, ev: &Evidence) -> Vec<String> {
    refs.iter()
        .map(|r| match &r.source {
            PolicySource::KeyPolicy => format!("key policy {}", statement_label(r)),
            PolicySource::Identity { index } => format!(
                "IAM policy {} of {}, {}",
                identity_name(*index, ev),
                request.principal,
                statement_label(r)
            ),
            PolicySource::Grant { grant_id } => format!("grant {grant_id}"),
        })
        .collect()
}

fn remove_deny(deny: &StatementRef, request: &DiagnoseRequest, ev: &Evidence) -> Fix {
    Fix::RemoveDeny {
        document: match &deny.source {
            PolicySource::KeyPolicy => "key policy".to_owned(),
            PolicySource::Identity { index } => {
                format!(
                    "IAM policy {} of {}",
                    identity_name(*index, ev),
                    request.principal
                )
            }
            PolicySource::Grant { grant_id } => format!("grant {grant_id}"),
        },
        statement: statement_label(deny),
    }
}
