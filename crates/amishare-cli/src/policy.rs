//! `amishare policy`: a complete key policy for some targets (KMS's default
//! statement for the key's account and amishare's least-privilege
//! statements), ready for `aws kms put-key-policy` or `create-key`; or such
//! statements merged into a key policy file, with the diff; or the
//! statements alone. No backend is needed.

use std::path::PathBuf;

use amishare_core::{AccountId, PrincipalArn};
use amishare_policy::{least_privilege_statements, merge, new_key_policy, Policy, Statement};
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
    /// The key's account: KMS's default statement gives its root the key's
    /// administration (default: the account of --caller).
    #[arg(long, value_name = "ACCOUNT", value_parser = args::account)]
    owner_account: Option<AccountId>,
    /// Who will write the policy: it must still be allowed to change it
    /// afterwards (default: the key account's root).
    #[arg(long, value_name = "ARN", value_parser = args::principal)]
    caller: Option<PrincipalArn>,
    /// A key policy (JSON file) to merge the statements into: prints the
    /// merged policy, and the diff on stderr.
    #[arg(long, value_name = "FILE", value_parser = args::existing_file)]
    merge: Option<PathBuf>,
    /// Print amishare's statements alone (a JSON array), not a whole policy.
    #[arg(long, conflicts_with = "merge")]
    statements: bool,
}

/// What `policy --json` prints.
#[derive(Debug, Serialize)]
struct Printed {
    /// The whole policy: new, or merged.
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<serde_json::Value>,
    /// amishare's statements, with `--statements`.
    #[serde(skip_serializing_if = "Option::is_none")]
    statements: Option<Vec<Statement>>,
    /// With `--merge`: whether the file lacked any of the statements.
    #[serde(skip_serializing_if = "Option::is_none")]
    changed: Option<bool>,
    /// With `--merge`: the unified diff from the file to the merged policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    diff: Option<String>,
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
    if args.statements {
        let statements = least_privilege_statements(&grantees, &narrowing);
        return print(
            global,
            &Printed {
                policy: None,
                statements: Some(statements.clone()),
                changed: None,
                diff: None,
            },
            &serde_json::to_string_pretty(&statements).map_err(Failure::failed)?,
        );
    }
    let Some(path) = &args.merge else {
        let owner = args
            .owner_account
            .clone()
            .or_else(|| args.caller.as_ref().map(|c| c.account().clone()))
            .ok_or_else(|| {
                usage(
                    "a whole key policy names the key's account: give --owner-account ACCOUNT \
                     (or --caller ARN), or --statements for amishare's statements alone",
                )
            })?;
        let caller = args.caller.clone().unwrap_or_else(|| owner.root_arn());
        let policy = new_key_policy(&grantees, &narrowing, owner.as_str(), caller.as_str())
            .map_err(|err| usage(format!("the key policy cannot be written: {err}")))?;
        return print(
            global,
            &Printed {
                policy: Some(policy.to_value()),
                statements: None,
                changed: None,
                diff: None,
            },
            &policy.to_json_pretty(),
        );
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
    if !global.json {
        if merged.changed {
            eprintln!("{diff}");
        } else {
            eprintln!("(the policy already has these statements: unchanged)");
        }
    }
    print(
        global,
        &Printed {
            policy: Some(merged.policy.to_value()),
            statements: None,
            changed: Some(merged.changed),
            diff: Some(diff),
        },
        &after,
    )
}

/// Prints the document as it is (for KMS), or with `--json` the report.
fn print(global: &Global, printed: &Printed, document: &str) -> Result<(), Failure> {
    if global.json {
        render::json(render::format::POLICY, printed)?;
    } else {
        render::emit(&format!("{document}\n"));
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
