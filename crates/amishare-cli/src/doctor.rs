//! `amishare doctor`: why a target principal can or cannot launch or copy a
//! shared image, link by link, and (owner side) the key-policy statements
//! that mend it.

use std::fmt::Write as _;
use std::sync::Arc;

use amishare_core::diagnose::{
    DiagnoseRequest, Diagnosis, Doctor, Intent, Link, Side as DoctorSide, Stores, Verdict,
};
use amishare_core::{AccountId, CopyKey, FixRequest, ImageId, KeyArn, Mended, PrincipalArn};
use serde::Serialize;

use crate::accept::copy_key;
use crate::args::{self, NarrowingArgs};
use crate::backend::{Global, Session};
use crate::fail::{usage, Failure};
use crate::json;
use crate::render;

/// Options of `amishare doctor`.
#[derive(Debug, clap::Args)]
pub(crate) struct DoctorArgs {
    /// The shared image.
    #[arg(long, value_parser = args::image)]
    image: ImageId,
    /// The target principal that launches or copies (default: the target
    /// side's caller, or --profile's when it is not the image's owner).
    #[arg(long, value_name = "ARN", value_parser = args::principal)]
    principal: Option<PrincipalArn>,
    /// What the target wants to do: launch (RunInstances as the principal),
    /// copy, both, or autoscaling (launch through an Auto Scaling group, as
    /// the account's service-linked role: the grant it needs is checked).
    #[arg(long, value_enum, default_value = "launch")]
    intent: IntentArg,
    /// With --intent autoscaling, the role the group launches as
    /// (autoscaling:SUFFIX for a custom-suffix role; default the default role).
    #[arg(long = "service-linked-role", value_name = "ROLE", value_parser = args::service_role)]
    service_role: Option<amishare_core::scaling::ServiceLinkedRole>,
    /// A key ARN the owner reported for the image (repeatable), for a target
    /// side that cannot read the snapshots.
    #[arg(long = "key", value_name = "ARN", value_parser = args::key_arn)]
    keys: Vec<KeyArn>,
    /// The key a copy is re-encrypted under (ID, ARN, alias), or `default`.
    #[arg(long, value_name = "KEY|default", value_parser = copy_key, default_value = "default")]
    copy_key: CopyKey,
    /// Owner side: add the missing least-privilege statements to the key
    /// policy (the diff is shown first; with --dry-run nothing is written).
    #[arg(long)]
    fix: bool,
    #[command(flatten)]
    narrowing: NarrowingArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum IntentArg {
    Launch,
    Copy,
    Both,
    Autoscaling,
}

impl From<IntentArg> for Intent {
    fn from(intent: IntentArg) -> Intent {
        match intent {
            IntentArg::Launch => Intent::Launch,
            IntentArg::Copy => Intent::Copy,
            IntentArg::Both => Intent::Both,
            IntentArg::Autoscaling => Intent::AutoScaling,
        }
    }
}

#[derive(Debug, Serialize)]
struct Report<'d> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fixed: Vec<Applied>,
    /// Why `--fix` wrote nothing although key-policy links failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    fix_refused: Option<&'d str>,
    #[serde(flatten)]
    diagnosis: json::Diagnosis,
}

/// A key-policy change `--fix` made (or planned), with its diff.
#[derive(Debug, Serialize)]
struct Applied {
    key: KeyArn,
    changed: bool,
    diff: String,
    /// amishare's statements in the key policy after the fix.
    statements: Vec<amishare_policy::Statement>,
}

impl From<&Mended> for Applied {
    fn from(mended: &Mended) -> Applied {
        let diff = similar::TextDiff::from_lines(
            &format!("{}\n", mended.before.trim_end()),
            &format!("{}\n", mended.after.trim_end()),
        )
        .unified_diff()
        .header(&format!("{} (now)", mended.key), "fixed")
        .to_string();
        Applied {
            key: mended.key.clone(),
            changed: mended.changed,
            diff,
            statements: mended.statements.clone(),
        }
    }
}

/// A doctor that sees what this session can: on the simulation, everything;
/// on AWS, what the profiles' accounts can read.
pub(crate) async fn doctor_for(
    session: &Session,
    request: &DiagnoseRequest,
) -> Result<Doctor, Failure> {
    if let Some((world, _)) = &session.world {
        let root = |account: &AccountId| -> Result<Stores, Failure> {
            let client = Arc::new(world.root_client(account)?);
            Ok(Stores::new(client.clone(), client))
        };
        let mut doctor = Doctor::new().with_directory(Arc::new(world.clone()));
        if world.accounts().contains(request.principal.account()) {
            doctor = doctor.with_target(root(request.principal.account())?);
        }
        // The owner is whichever account's root owns the image.
        let roots = world
            .accounts()
            .into_iter()
            .map(|account| Ok((account.clone(), root(&account)?)))
            .collect::<Result<Vec<_>, Failure>>()?;
        return Ok(doctor
            .with_owner_among(&request.image, &request.region, roots)
            .await);
    }
    let sides: Vec<DoctorSide> = std::iter::once(&session.side)
        .chain(&session.target)
        .map(|side| DoctorSide {
            stores: side.stores.clone(),
            directory: side.directory.clone(),
        })
        .collect();
    Ok(Doctor::looking_from(&request.principal, &sides).await?)
}

/// Runs `doctor`.
pub(crate) async fn run(
    args: &DoctorArgs,
    global: &Global,
    session: &Session,
) -> Result<(), Failure> {
    if global.dry_run && !args.fix {
        return Err(usage("doctor only reads: --dry-run applies to --fix"));
    }
    let region = session.region()?;
    let principal = match &args.principal {
        Some(principal) => principal.clone(),
        None => default_principal(session).await?,
    };
    if args.service_role.is_some() && args.intent != IntentArg::Autoscaling {
        return Err(usage(
            "--service-linked-role applies to --intent autoscaling",
        ));
    }
    let mut request = DiagnoseRequest::new(
        args.image.clone(),
        region.clone(),
        principal,
        args.intent.into(),
    )
    .with_keys(args.keys.clone())
    .with_copy_key(args.copy_key.clone());
    if let Some(role) = &args.service_role {
        request = request.with_service_role(role.clone());
    }
    let fix = args.fix.then(|| {
        FixRequest::new(request.clone())
            .with_narrowing(args.narrowing.narrowing())
            .with_recheck(!global.dry_run)
    });
    if let Some(fix) = &fix {
        fix.validate().map_err(|err| usage(err.message()))?;
    }
    let doctor = doctor_for(session, &request).await?;
    let (diagnosis, fixed, refused) = if let Some(fix) = &fix {
        let report = session.flow().fix(&doctor, fix).await?;
        let fixed: Vec<Applied> = report.mended.iter().map(Applied::from).collect();
        (report.diagnosis, fixed, report.refused)
    } else {
        (doctor.diagnose(&request).await?, Vec::new(), None)
    };
    if global.json {
        render::json(
            render::format::DOCTOR,
            &Report {
                fixed,
                fix_refused: refused.as_deref(),
                diagnosis: json::Diagnosis::from(&diagnosis),
            },
        )?;
    } else {
        let mut out = String::new();
        for applied in &fixed {
            if applied.changed {
                let verb = if global.dry_run {
                    "would change"
                } else {
                    "changed"
                };
                let _ = writeln!(out, "--fix {verb} the key policy of {}:", applied.key);
                out.push_str(&applied.diff);
                let _ = writeln!(out, "amishare's statements in it now:");
                render::indented(
                    &mut out,
                    &serde_json::to_string_pretty(&applied.statements).unwrap_or_default(),
                );
            } else {
                let _ = writeln!(
                    out,
                    "--fix: the key policy of {} already has the statements",
                    applied.key
                );
            }
        }
        if args.fix && fixed.is_empty() {
            match &refused {
                Some(why) => eprintln!("--fix: {why}"),
                None => eprintln!("--fix: no key-policy statement is missing; other broken links need the changes listed below"),
            }
        }
        out.push_str(&checklist(&diagnosis));
        render::emit(&out);
    }
    verdict(&diagnosis)
}

/// Exit status: 0 only when every link passed.
pub(crate) fn verdict(diagnosis: &Diagnosis) -> Result<(), Failure> {
    let failed = diagnosis.failures().count();
    let unknown = diagnosis
        .findings
        .iter()
        .filter(|f| f.verdict == Verdict::Unknown)
        .count();
    match diagnosis.verdict {
        Verdict::Pass => Ok(()),
        Verdict::Fail => Err(Failure::failed(anyhow::anyhow!(
            "{} of image {} by {} will not work: {failed} link(s) broken",
            diagnosis.intent,
            diagnosis.image,
            diagnosis.principal
        ))),
        Verdict::Unknown => Err(Failure::failed(anyhow::anyhow!(
            "{} of image {} by {} cannot be confirmed: {unknown} link(s) cannot be seen from here (give both sides' profiles)",
            diagnosis.intent,
            diagnosis.image,
            diagnosis.principal
        ))),
    }
}

/// The principal to diagnose when none is given: the target side's, or
/// `--profile`'s.
async fn default_principal(session: &Session) -> Result<PrincipalArn, Failure> {
    let flow = session.target_flow().unwrap_or_else(|| session.flow());
    Ok(flow.policy_principal().await?)
}

/// The chain as a readable checklist, with the fixes at the end.
pub(crate) fn checklist(diagnosis: &Diagnosis) -> String {
    let mut out = String::new();
    let sides: Vec<&str> = [
        (diagnosis.sight.owner, "owner"),
        (diagnosis.sight.target, "target"),
        (diagnosis.sight.identity, "target's IAM"),
    ]
    .into_iter()
    .filter_map(|(seen, name)| seen.then_some(name))
    .collect();
    let _ = writeln!(
        out,
        "Can {} {} image {} in {}? (seen from: {})",
        diagnosis.principal,
        diagnosis.intent,
        diagnosis.image,
        diagnosis.region,
        if sides.is_empty() {
            "nothing".to_owned()
        } else {
            sides.join(", ")
        }
    );
    // Passing KMS links are many (one per action): one line per key and link.
    struct Line {
        verdict: Verdict,
        text: String,
        actions: Vec<String>,
        evidence: Vec<String>,
    }
    let mut lines: Vec<Line> = Vec::new();
    let mut grouped: Vec<((Link, &str), usize)> = Vec::new();
    for finding in &diagnosis.findings {
        let kms = matches!(finding.link, Link::KeyPolicy | Link::IdentityPolicy);
        if finding.verdict == Verdict::Pass && kms {
            let group = (finding.link, finding.subject.as_str());
            let index = match grouped.iter().find(|(g, _)| *g == group) {
                Some((_, index)) => *index,
                None => {
                    lines.push(Line {
                        verdict: Verdict::Pass,
                        text: format!("{}: allowed on {}", finding.link, finding.subject),
                        actions: Vec::new(),
                        evidence: Vec::new(),
                    });
                    grouped.push((group, lines.len() - 1));
                    lines.len() - 1
                }
            };
            let line = &mut lines[index];
            line.actions.extend(finding.action.clone());
            let evidence = if finding.evidence.is_empty() && finding.link == Link::IdentityPolicy {
                vec![
                    "no IAM allow needed: the key policy allows the account's principals itself"
                        .to_owned(),
                ]
            } else {
                finding.evidence.clone()
            };
            for item in evidence {
                if !line.evidence.contains(&item) {
                    line.evidence.push(item);
                }
            }
            continue;
        }
        lines.push(Line {
            verdict: finding.verdict,
            text: format!("{}: {}", finding.link, finding.summary),
            actions: finding.action.iter().cloned().collect(),
            evidence: if finding.verdict == Verdict::Pass {
                Vec::new()
            } else {
                finding.evidence.clone()
            },
        });
    }
    for line in lines {
        let mark = match line.verdict {
            Verdict::Pass => "ok  ",
            Verdict::Fail => "FAIL",
            Verdict::Unknown => "??  ",
        };
        let (link, rest) = line.text.split_once(": ").unwrap_or((&line.text, ""));
        let actions = if line.actions.is_empty() {
            String::new()
        } else {
            format!(" [{}]", line.actions.join(", "))
        };
        let _ = writeln!(out, "  {mark} {link}{actions}: {rest}");
        for item in line.evidence {
            let _ = writeln!(out, "         ({item})");
        }
    }
    let fixes = diagnosis.fixes();
    let _ = writeln!(
        out,
        "Verdict: {}",
        match diagnosis.verdict {
            Verdict::Pass => "it will work: every link holds".to_owned(),
            Verdict::Fail => format!(
                "it will not work: {} broken link(s)",
                diagnosis.failures().count()
            ),
            Verdict::Unknown =>
                "no link is broken as far as can be seen, but some cannot be seen from here"
                    .to_owned(),
        }
    );
    if !fixes.is_empty() {
        let _ = writeln!(out, "To fix:");
        for (index, fix) in fixes.iter().enumerate() {
            let _ = writeln!(out, "  {}. {fix}", index + 1);
        }
    }
    out
}
