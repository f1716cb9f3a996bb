//! The doctor's Auto Scaling intent: the group launches as the target
//! account's service-linked role, whose policies are AWS's and allow no
//! key, so across accounts only a grant on the key lets it launch
//! (`docs/spec/production.md` §C1.3, `docs/spec/choices.md` §D6).
//!
//! The launch chain is judged for the role, with its fixed policy; the
//! grant links say whether a grant names the role, whether its operations
//! suffice, and, without one, whether the target principal may create it.

use amishare_policy::{evaluate_kms, Context, Missing, Outcome, Policy, Request};
use serde_json::json;

use super::gather::{self, Evidence, KeyName, Known};
use super::{
    links, DiagnoseRequest, Diagnosis, Doctor, Finding, Fix, Intent, Link, NamedPolicy,
    PrincipalFacts, Verdict,
};
use crate::scaling::{ServiceLinkedRole, SERVICE_ROLE_POLICY};
use crate::store::Grant;
use crate::{ec2_kms, KeyArn, PrincipalArn, Result};

pub(super) async fn diagnose(doctor: &Doctor, request: &DiagnoseRequest) -> Result<Diagnosis> {
    let role = request
        .service_role
        .clone()
        .unwrap_or_else(ServiceLinkedRole::auto_scaling);
    let role_arn = role.arn_in(request.principal.account(), &request.region);
    let target_facts = gather::facts(doctor, &request.principal).await;
    let org = target_facts.ok();
    let role_facts = Known::Yes(PrincipalFacts {
        org_known: org.is_some_and(|f| f.org_known),
        org_id: org.and_then(|f| f.org_id.clone()),
        org_paths: org.map(|f| f.org_paths.clone()).unwrap_or_default(),
        policies: vec![NamedPolicy {
            name: format!("{role} (AWS's, unchangeable)"),
            document: Policy::parse(SERVICE_ROLE_POLICY).expect("the role's policy parses"),
        }],
    });
    let inner = DiagnoseRequest {
        principal: role_arn.clone(),
        intent: Intent::Launch,
        service_role: None,
        ..request.clone()
    };
    let evidence = gather::gather_with(doctor, &inner, role_facts).await?;
    let mut findings = links::judge(&inner, &evidence);
    let own_key = format!(":{}:key/", request.principal.account());
    for finding in &mut findings {
        // The role's own policies cannot change, and across accounts a key
        // policy naming it is not enough: the grant is what mends these.
        let mended_by_grant = finding.verdict == Verdict::Fail
            && (finding.link == Link::IdentityPolicy
                || (finding.link == Link::KeyPolicy && !finding.subject.contains(&own_key)));
        if mended_by_grant {
            finding.fix = Some(Fix::Manual {
                text: format!(
                    "{role} is a service-linked role: nobody can change its permissions (UnmodifiableEntity), and across accounts only a grant on the key lets it use the key; account {} creates it (amishare accept --image {} --autoscaling-grant)",
                    request.principal.account(),
                    request.image
                ),
            });
        }
    }
    let grants = grant_links(doctor, request, &evidence, &role, &role_arn, &target_facts).await;
    let at = findings
        .iter()
        .position(|f| {
            matches!(
                f.link,
                Link::KeyPolicy | Link::IdentityPolicy | Link::ExplicitDeny
            )
        })
        .unwrap_or(findings.len());
    findings.splice(at..at, grants);
    Ok(Diagnosis {
        image: request.image.clone(),
        region: request.region.clone(),
        principal: request.principal.clone(),
        intent: Intent::AutoScaling,
        verdict: Diagnosis::overall(&findings),
        sight: evidence.sight.clone(),
        findings,
    })
}

fn finding(link: Link, verdict: Verdict, subject: &KeyArn, summary: String) -> Finding {
    Finding {
        link,
        verdict,
        subject: subject.to_string(),
        action: None,
        summary,
        evidence: Vec::new(),
        fix: None,
    }
}

/// The grants naming the role on `key`: every one, from the key's owner, or
/// those the target may retire (what `accept --autoscaling-grant` makes).
async fn role_grants(
    doctor: &Doctor,
    request: &DiagnoseRequest,
    evidence: &Evidence,
    key: &KeyArn,
    role_arn: &PrincipalArn,
) -> (Known<Vec<Grant>>, bool) {
    let name = KeyName::Arn(key.clone());
    let listed = evidence.keys.get(&name).map(|k| k.grants.as_ref());
    match listed {
        Some(Known::Yes(grants)) => {
            let mine = grants
                .iter()
                .filter(|g| g.grantee == role_arn.as_str())
                .cloned()
                .collect();
            (Known::Yes(mine), true)
        }
        other => {
            let why = match other {
                Some(Known::No(why)) => why,
                _ => "the key's grants were not read".to_owned(),
            };
            let Some(target) = &doctor.target else {
                return (Known::No(why), false);
            };
            let retiring = request.principal.as_policy_principal();
            match target
                .keys
                .list_retirable_grants(&request.region, &retiring)
                .await
            {
                Ok(grants) => {
                    let mine: Vec<Grant> = grants
                        .into_iter()
                        .filter(|g| g.key.as_ref() == Some(key) && g.grantee == role_arn.as_str())
                        .collect();
                    if mine.is_empty() {
                        (
                            Known::No(format!(
                                "{why}; no grant {retiring} may retire names {role_arn}, and only the key's owner can list the others"
                            )),
                            false,
                        )
                    } else {
                        (Known::Yes(mine), false)
                    }
                }
                Err(err) => (
                    Known::No(format!("{why}; ListRetirableGrants as the target: {err}")),
                    false,
                ),
            }
        }
    }
}

/// `asg.grant`, `asg.grant-operations` and `asg.create-grant` for each
/// snapshot key of another account.
async fn grant_links(
    doctor: &Doctor,
    request: &DiagnoseRequest,
    evidence: &Evidence,
    role: &ServiceLinkedRole,
    role_arn: &PrincipalArn,
    target_facts: &Known<PrincipalFacts>,
) -> Vec<Finding> {
    let mut keys: Vec<KeyArn> = Vec::new();
    for snapshot in &evidence.snapshots {
        if let Some((Some(key), _)) = snapshot.key.ok() {
            if key.account() != request.principal.account() && !keys.contains(key) {
                keys.push(key.clone());
            }
        }
    }
    let operations = ec2_kms::SERVICE_ROLE_GRANT.join(" ");
    let create_grant_fix = |key: &KeyArn| {
        Fix::Manual {
        text: format!(
            "account {} creates the grant (amishare accept --image {} --autoscaling-grant, or aws kms create-grant --key-id {key} --grantee-principal {role_arn} --operations {operations})",
            request.principal.account(),
            request.image
        ),
    }
    };
    let mut out = Vec::new();
    for key in keys {
        let (grants, complete) = role_grants(doctor, request, evidence, &key, role_arn).await;
        let found = match &grants {
            Known::Yes(grants) if !grants.is_empty() => {
                let ids: Vec<&str> = grants.iter().map(|g| g.id.as_str()).collect();
                let mut f = finding(
                    Link::ServiceRoleGrant,
                    Verdict::Pass,
                    &key,
                    format!("grant {} on {key} names {role_arn}", ids.join(", ")),
                );
                f.evidence.push(if complete {
                    "ListGrants as the key's owner".to_owned()
                } else {
                    "ListRetirableGrants as the target".to_owned()
                });
                out.push(f);
                let mut have: Vec<String> = grants
                    .iter()
                    .flat_map(|g| g.operations.iter().cloned())
                    .collect();
                have.sort();
                have.dedup();
                let lacking: Vec<&str> = ec2_kms::SERVICE_ROLE_GRANT
                    .iter()
                    .copied()
                    .filter(|op| !have.iter().any(|h| h.eq_ignore_ascii_case(op)))
                    .collect();
                if lacking.is_empty() {
                    out.push(finding(
                        Link::ServiceRoleGrantOperations,
                        Verdict::Pass,
                        &key,
                        format!("the grants allow {operations}"),
                    ));
                } else {
                    let mut f = finding(
                        Link::ServiceRoleGrantOperations,
                        Verdict::Fail,
                        &key,
                        format!(
                            "the grants for {role_arn} lack {}: EC2 cannot create the volumes' grants or use the key for the role",
                            lacking.join(", ")
                        ),
                    );
                    f.fix = Some(create_grant_fix(&key));
                    out.push(f);
                }
                true
            }
            Known::Yes(_) => {
                let mut f = finding(
                    Link::ServiceRoleGrant,
                    Verdict::Fail,
                    &key,
                    format!(
                        "no grant on {key} names {role_arn}: every launch of an Auto Scaling group as {role} ends Client.InternalError: Client error on launch"
                    ),
                );
                f.evidence.push("ListGrants as the key's owner".to_owned());
                f.fix = Some(create_grant_fix(&key));
                out.push(f);
                false
            }
            Known::No(why) => {
                out.push(finding(
                    Link::ServiceRoleGrant,
                    Verdict::Unknown,
                    &key,
                    why.clone(),
                ));
                false
            }
        };
        if !found {
            out.push(create_grant_link(
                request,
                evidence,
                &key,
                role_arn,
                target_facts,
            ));
        }
    }
    out
}

/// `asg.create-grant`: may the target principal create the role's grant
/// itself, as KMS evaluates a direct `CreateGrant` (§C1.4, §C1.5)?
fn create_grant_link(
    request: &DiagnoseRequest,
    evidence: &Evidence,
    key: &KeyArn,
    role_arn: &PrincipalArn,
    target_facts: &Known<PrincipalFacts>,
) -> Finding {
    let principal = &request.principal;
    let name = KeyName::Arn(key.clone());
    let policy = match evidence.keys.get(&name).map(|k| &k.policy) {
        Some(Known::Yes(policy)) => policy,
        Some(Known::No(why)) => {
            return finding(
                Link::ServiceRoleCreateGrant,
                Verdict::Unknown,
                key,
                why.clone(),
            )
        }
        None => {
            return finding(
                Link::ServiceRoleCreateGrant,
                Verdict::Unknown,
                key,
                "the key policy was not read".to_owned(),
            )
        }
    };
    let facts = match target_facts {
        Known::Yes(facts) => facts,
        Known::No(why) => {
            return finding(
                Link::ServiceRoleCreateGrant,
                Verdict::Unknown,
                key,
                why.clone(),
            )
        }
    };
    let identities: Vec<&Policy> = facts.policies.iter().map(|p| &p.document).collect();
    let key_text = key.to_string();
    let req = Request {
        caller: amishare_policy::Caller {
            arn: principal.as_str(),
            account: principal.account().as_str(),
            org_id: facts.org_id.as_deref(),
            org_paths: &facts.org_paths,
        },
        action: "kms:CreateGrant",
        resource: &key_text,
        resource_account: key.account().as_str(),
        context: Context::new()
            .with_bool("kms:GrantIsForAWSResource", false)
            .with("kms:GranteePrincipal", role_arn.as_str())
            .with_values(
                "kms:GrantOperations",
                ec2_kms::SERVICE_ROLE_GRANT
                    .iter()
                    .map(|op| (*op).to_owned())
                    .collect(),
            ),
    };
    let decision = evaluate_kms(&req, policy, &identities, &[]);
    let mut f = finding(
        Link::ServiceRoleCreateGrant,
        Verdict::Pass,
        key,
        format!(
            "{principal} may create the grant on {key} for {role_arn} (amishare accept --autoscaling-grant)"
        ),
    );
    f.action = Some("kms:CreateGrant".to_owned());
    match decision.outcome {
        Outcome::Allow => {}
        Outcome::ExplicitDeny => {
            f.verdict = Verdict::Fail;
            f.summary = decision.denial_message(&req);
            f.fix = Some(Fix::Manual {
                text: "remove or narrow the statement that denies kms:CreateGrant".to_owned(),
            });
        }
        Outcome::ImplicitDeny => {
            f.verdict = Verdict::Fail;
            f.summary = format!(
                "{principal} may not create the grant for {role_arn}: {}",
                decision.denial_message(&req)
            );
            f.fix = Some(if decision.missing.contains(&Missing::KeyPolicyAllow) {
                Fix::Manual {
                    text: format!(
                        "the key's owner allows it: amishare share … --principal {principal} --autoscaling (a statement whose CreateGrant has no kms:GrantIsForAWSResource condition, narrowed to {role_arn} and the operations EBS needs)"
                    ),
                }
            } else {
                Fix::IdentityPolicy {
                    principal: principal.clone(),
                    policy: json!({
                        "Version": "2012-10-17",
                        "Statement": [{
                            "Sid": "CreateGrantForAutoScaling",
                            "Effect": "Allow",
                            "Action": "kms:CreateGrant",
                            "Resource": key_text,
                        }],
                    }),
                }
            });
        }
    }
    f
}
