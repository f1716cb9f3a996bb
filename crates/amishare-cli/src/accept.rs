//! `amishare accept`: the target side.

use std::fmt::Write as _;

use amishare_core::diagnose::{DiagnoseRequest, Intent};
use amishare_core::scaling::ServiceLinkedRole;
use amishare_core::{
    AcceptRequest, CopyKey, ErrorKind, ImageId, ImageName, KeyArn, LaunchOptions, LaunchVia, Sharer,
};
use serde_json::json;

use crate::args;
use crate::backend::{Global, Session};
use crate::doctor;
use crate::fail::Failure;
use crate::json;
use crate::render;

/// Options of `amishare accept`.
#[derive(Debug, clap::Args)]
pub(crate) struct AcceptArgs {
    /// The shared image.
    #[arg(long, value_parser = args::image)]
    image: ImageId,
    /// A key ARN that encrypts the image, as the owner's `share` reported it
    /// (repeatable); the target cannot read it from snapshots it may not see.
    #[arg(long = "key", value_name = "ARN", value_parser = args::key_arn)]
    keys: Vec<KeyArn>,
    /// Launch a smoke instance and wait for it to run (terminated afterwards unless --keep).
    #[arg(long)]
    launch: bool,
    /// The smoke instance's type.
    #[arg(long, default_value = "t3.micro", value_parser = instance_type, requires = "launch")]
    instance_type: String,
    /// The subnet of the smoke instance, where the account has no default VPC.
    #[arg(long, value_parser = subnet, requires = "launch")]
    subnet: Option<String>,
    /// Keep the smoke instance running.
    #[arg(long, requires = "launch")]
    keep: bool,
    /// Copy the image into this account, re-encrypted with this key (ID, ARN,
    /// alias) or `default` (the account's default EBS key), so that it no
    /// longer depends on the owner's key.
    #[arg(long, value_name = "KEY|default", value_parser = copy_key)]
    copy_key: Option<CopyKey>,
    /// Name of the copy.
    #[arg(long, value_parser = args::image_name, requires = "copy_key")]
    copy_name: Option<ImageName>,
    /// Create, from this account, the grant on each key of the image that
    /// lets this account's Auto Scaling groups launch it (for the
    /// service-linked role AWSServiceRoleForAutoScaling; the key's owner
    /// shares with --autoscaling first). A rerun finds the grant by name.
    #[arg(long)]
    autoscaling_grant: bool,
    /// Create the grant for another service-linked role too (repeatable):
    /// autoscaling:SUFFIX, ec2fleet, spot or spotfleet.
    #[arg(long = "service-linked-role", value_name = "ROLE", value_parser = args::service_role)]
    service_roles: Vec<amishare_core::scaling::ServiceLinkedRole>,
    /// How the smoke instance is launched: run-instances (as this
    /// principal), or autoscaling (a temporary launch template and a
    /// one-instance Auto Scaling group, as production launches; both are
    /// deleted afterwards).
    #[arg(long, value_enum, default_value = "run-instances", requires = "launch")]
    launch_via: LaunchViaArg,
}

/// `--launch-via`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LaunchViaArg {
    RunInstances,
    Autoscaling,
}

/// `--copy-key`: a key, or `default` for the account's default EBS key.
pub(crate) fn copy_key(value: &str) -> Result<CopyKey, String> {
    if value == "default" {
        Ok(CopyKey::AccountDefault)
    } else {
        args::key(value).map(CopyKey::Key)
    }
}

/// An EC2 instance type, `family.size`.
fn instance_type(value: &str) -> Result<String, String> {
    let ok = value.split_once('.').is_some_and(|(family, size)| {
        !family.is_empty()
            && !size.is_empty()
            && family
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && size
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    });
    if ok {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "{value:?} is not an instance type (family.size, e.g. t3.micro)"
        ))
    }
}

/// A subnet ID.
fn subnet(value: &str) -> Result<String, String> {
    let hex = value.strip_prefix("subnet-").unwrap_or("");
    if (hex.len() == 8 || hex.len() == 17) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "{value:?} is not a subnet ID (subnet- and 8 or 17 hexadecimal digits)"
        ))
    }
}

/// Runs `accept`.
pub(crate) async fn run(
    args: &AcceptArgs,
    global: &Global,
    session: &Session,
) -> Result<(), Failure> {
    let roles = args::ServiceRoleArgs {
        autoscaling: args.autoscaling_grant,
        roles: args.service_roles.clone(),
    }
    .roles();
    // A group launches as the Auto Scaling role asked for (a custom-suffix
    // one when it is the only one given), else the default one.
    let group_role = roles
        .iter()
        .find(|role| matches!(role, ServiceLinkedRole::AutoScaling { .. }))
        .cloned()
        .unwrap_or_else(ServiceLinkedRole::auto_scaling);
    if args.keep && args.launch_via == LaunchViaArg::Autoscaling {
        return Err(crate::fail::usage(
            "--keep keeps a smoke instance of --launch-via run-instances; the Auto Scaling smoke group is always deleted",
        ));
    }
    let mut request = AcceptRequest::new(args.image.clone(), session.region()?, args.keys.clone());
    if args.autoscaling_grant || !args.service_roles.is_empty() {
        request = request.with_grants(roles);
    }
    if args.launch {
        let mut launch = LaunchOptions::default()
            .with_via(match args.launch_via {
                LaunchViaArg::RunInstances => LaunchVia::RunInstances,
                LaunchViaArg::Autoscaling => LaunchVia::AutoScaling(group_role.clone()),
            })
            .with_instance_type(args.instance_type.clone())
            .with_keep(args.keep);
        if let Some(subnet) = &args.subnet {
            launch = launch.with_subnet(subnet.clone());
        }
        request = request.with_launch(launch);
    }
    if let Some(key) = &args.copy_key {
        request = request.with_copy(key.clone());
    }
    if let Some(name) = &args.copy_name {
        request = request.with_copy_name(name.clone());
    }
    let report = match session.flow().accept(&request).await {
        Ok(report) => report,
        Err(err) if err.kind() == ErrorKind::LaunchFailed && !global.dry_run => {
            explain_launch_failure(&request, global, session, &err).await;
            return Err(err.into());
        }
        Err(err) => return Err(err.into()),
    };
    if global.dry_run {
        // The plan is the output.
        return Ok(());
    }
    if global.json {
        render::json(render::format::ACCEPT, &json::Accept::from(&report))?;
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Image {} of account {} is usable here:",
        report.image, report.owner
    );
    render::steps(&mut out, &report.steps);
    for grant in &report.grants {
        let _ = writeln!(
            out,
            "Grant {} on {} for {}{}.",
            grant.grant_id,
            grant.key,
            grant.grantee,
            if grant.created { "" } else { " (made earlier)" }
        );
    }
    if let Some(launch) = &report.launch {
        match &launch.group {
            Some(group) => {
                let _ = writeln!(
                    out,
                    "Auto Scaling group {group} had instance {} in service; the group and its launch template were deleted.",
                    launch.instance
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "Instance {} reached running{}.",
                    launch.instance,
                    if launch.terminated_after {
                        " and was terminated afterwards"
                    } else {
                        " and is still running"
                    }
                );
            }
        }
    }
    if let Some(copy) = &report.copy {
        let _ = writeln!(out, "Copy {} is owned by this account:", copy.image);
        for (snapshot, key) in &copy.snapshots {
            let key = key
                .as_ref()
                .map_or_else(|| "not encrypted".to_owned(), ToString::to_string);
            let _ = writeln!(out, "  snapshot {snapshot}: {key}");
        }
    }
    render::warnings(&mut out, &report.warnings);
    render::emit(&out);
    Ok(())
}

/// The smoke instance terminated: the doctor says which link is broken.
/// Its findings go with EC2's StateReason; the failure itself is returned by
/// the caller either way.
async fn explain_launch_failure(
    request: &AcceptRequest,
    global: &Global,
    session: &Session,
    err: &amishare_core::Error,
) {
    let diagnosis = async {
        let principal = session.flow().policy_principal().await?;
        let via_group = request.launch.as_ref().and_then(|l| match &l.via {
            LaunchVia::AutoScaling(role) => Some(role.clone()),
            LaunchVia::RunInstances => None,
        });
        let intent = if via_group.is_some() {
            Intent::AutoScaling
        } else {
            Intent::Launch
        };
        let mut diagnose = DiagnoseRequest::new(
            request.image.clone(),
            request.region.clone(),
            principal,
            intent,
        )
        .with_keys(request.keys.clone());
        if let Some(role) = via_group {
            diagnose = diagnose.with_service_role(role);
        }
        let doctor = doctor::doctor_for(session, &diagnose).await?;
        Ok::<_, Failure>(doctor.diagnose(&diagnose).await?)
    }
    .await;
    if global.json {
        let launch = err.failed_launch();
        let group = err.failed_group_launch();
        let reason = launch.and_then(|launch| launch.reason.as_ref());
        let instance = launch
            .map(|launch| &launch.instance)
            .or_else(|| group.and_then(|group| group.instance.as_ref()));
        let mut value = json!({
            "error": err.to_string(),
            "instance": instance.map(ToString::to_string),
            "state": launch.map(|launch| launch.state.to_string()),
            "state_reason_code": reason.map(|reason| reason.code.as_str()),
            "state_reason_message": reason.map(|reason| reason.message.as_str()),
            "group": group.map(|group| group.group.as_str()),
            "activity": group.map(|group| group.activity.as_str()),
            "status_message": group.and_then(|group| group.status_message.as_deref()),
            "activity_cause": group.and_then(|group| group.cause),
            "cause": launch.and_then(|launch| launch.cause.as_deref()),
        });
        match &diagnosis {
            Ok(diagnosis) => value["diagnosis"] = json!(json::Diagnosis::from(diagnosis)),
            Err(failure) => value["diagnosis_error"] = json!(failure.to_string()),
        }
        let _ = render::json(render::format::LAUNCH_FAILURE, &value);
        return;
    }
    match diagnosis {
        Ok(diagnosis) => eprintln!(
            "The smoke instance did not start: {err}\nWhy, link by link:\n{}",
            doctor::checklist(&diagnosis)
        ),
        Err(failure) => eprintln!(
            "The smoke instance did not start: {err}\n(the doctor could not look further: {failure})"
        ),
    }
}
