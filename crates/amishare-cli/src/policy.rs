//! `amishare policy`: the least-privilege statements for some principals,
//! or a key policy with them merged in and the diff. No backend is needed.

use std::path::PathBuf;

use amishare_core::{AccountId, PrincipalArn};
use amishare_policy::{least_privilege_statements, merge, Policy, Statement};
use serde::Serialize;

use crate::args::{self, NarrowingArgs, TargetArgs};
use crate::backend::Global;
use crate::fail::{usage, Failure};
use crate::render;

/// Options of `amishare policy`.
#[derive(Debug, clap::Args)]
pub(crate) struct PolicyArgs {
    #[command(flatten)]
    targets: TargetArgs,
    #[command(flatten)]
    narrowing: NarrowingArgs,
    #[command(flatten)]
    service_roles: crate::args::ServiceRoleArgs,
    /// A key policy (JSON file) to merge the statements into: prints the result and the diff.
    #[arg(long, value_name = "FILE", value_parser = args::existing_file)]
    merge: Option<PathBuf>,
    /// The key's account, for the lockout check (default: the account whose root the policy names).
    #[arg(long, value_name = "ACCOUNT", value_parser = args::account)]
    owner_account: Option<AccountId>,
    /// Who will write the policy, for the lockout check (default: the owner account's root).
    #[arg(long, value_name = "ARN", value_parser = args::principal)]
    caller: Option<PrincipalArn>,
}

#[derive(Debug, Serialize)]
struct Merged {
    changed: bool,
    policy: serde_json::Value,
    diff: String,
}

/// Runs `policy`.
pub(crate) fn run(args: &PolicyArgs, global: &Global) -> Result<(), Failure> {
    let targets = args.targets.targets().map_err(usage)?;
    let grantees: Vec<_> = targets.iter().map(amishare_core::Target::grantee).collect();
    if args.narrowing.via_service && global.region.is_none() {
        return Err(usage(
            "--via-service names EC2 in one region: give --region",
        ));
    }
    let narrowing = amishare_policy::Narrowing {
        via_service_region: global
            .region
            .as_ref()
            .filter(|_| args.narrowing.via_service)
            .map(ToString::to_string),
        caller_account: args.narrowing.caller_account,
        service_roles: args
            .service_roles
            .roles()
            .iter()
            .map(amishare_core::scaling::ServiceLinkedRole::resource)
            .collect(),
    };
    if !narrowing.service_roles.is_empty() {
        if let Some(target) = targets.iter().find(|t| t.account().is_none()) {
            return Err(usage(format!(
                "--autoscaling: grants for service-linked roles are allowed per account, not to {target}: name the accounts or their principals"
            )));
        }
    }
    let Some(path) = &args.merge else {
        let statements: Vec<Statement> = least_privilege_statements(&grantees, &narrowing);
        let value = serde_json::to_value(&statements).map_err(Failure::failed)?;
        if global.json {
            render::json(&serde_json::json!({ "statements": value }))?;
        } else {
            render::json(&value)?;
        }
        return Ok(());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|err| usage(format!("--merge {}: {err}", path.display())))?;
    let policy =
        Policy::parse(&text).map_err(|err| usage(format!("--merge {}: {err}", path.display())))?;
    let owner = match &args.owner_account {
        Some(account) => account.clone(),
        None => owner_of(&policy).ok_or_else(|| {
            usage(format!(
                "--merge {}: no statement names an account root; give --owner-account",
                path.display()
            ))
        })?,
    };
    let caller = args.caller.clone().unwrap_or_else(|| owner.root_arn());
    let merged = merge(
        &policy,
        &grantees,
        &narrowing,
        owner.as_str(),
        caller.as_str(),
    )
    .map_err(|err| {
        Failure::failed(anyhow::anyhow!(
            "cannot merge into {}: {err}",
            path.display()
        ))
    })?;
    let before = policy.to_json_pretty();
    let after = merged.policy.to_json_pretty();
    let diff = similar::TextDiff::from_lines(&before, &after)
        .unified_diff()
        .header(&path.display().to_string(), "merged")
        .to_string();
    if global.json {
        render::json(&Merged {
            changed: merged.changed,
            policy: merged.policy.to_value(),
            diff,
        })?;
    } else {
        render::emit(&format!("{after}\n"));
        if merged.changed {
            eprintln!("{diff}");
        } else {
            eprintln!("(the policy already has these statements: unchanged)");
        }
    }
    Ok(())
}

/// The account whose root a statement of the policy names.
fn owner_of(policy: &Policy) -> Option<AccountId> {
    policy.statements.iter().find_map(|statement| {
        statement
            .principal
            .as_ref()?
            .aws()
            .into_iter()
            .find_map(|arn| {
                let account = arn.strip_prefix("arn:aws:iam::")?.strip_suffix(":root")?;
                AccountId::parse(account).ok()
            })
    })
}
