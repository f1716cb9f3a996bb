//! Command-line values, checked before any call: each parser names what is
//! wrong, and clap names the argument, so a typo never reaches AWS.

use std::path::PathBuf;

use amishare_core::scaling::ServiceLinkedRole;
use amishare_core::{
    AccountId, AliasName, ImageId, ImageName, InstanceId, KeyArn, KeyRef, OrganizationArn, OuArn,
    PrincipalArn, PrincipalKind, Region, Target,
};

fn message(err: amishare_core::Error) -> String {
    err.to_string()
}

/// A region AWS has (or, through `AMISHARE_EXTRA_REGIONS`, one newer than
/// this build, which `--endpoint-url` users can still reach by name).
pub(crate) fn region(value: &str) -> Result<Region, String> {
    let region = Region::parse(value).map_err(message)?;
    let extra = std::env::var("AMISHARE_EXTRA_REGIONS").unwrap_or_default();
    if region.is_known() || extra.split(',').any(|r| r.trim() == value) {
        Ok(region)
    } else {
        Err(format!(
            "unknown region {value:?} (AWS regions look like ap-northeast-1; set AMISHARE_EXTRA_REGIONS for one newer than amishare)"
        ))
    }
}

/// A 12-digit account ID; `all` (public sharing) is refused by name.
pub(crate) fn account(value: &str) -> Result<AccountId, String> {
    if value.eq_ignore_ascii_case("all") || value.eq_ignore_ascii_case("public") {
        return Err(
            "amishare never shares publicly: name accounts, organizations or OUs".to_owned(),
        );
    }
    AccountId::parse(value).map_err(message)
}

/// An IAM user, role or account root that a key policy can name.
pub(crate) fn principal(value: &str) -> Result<PrincipalArn, String> {
    let arn = PrincipalArn::parse(value).map_err(message)?;
    if arn.kind() == PrincipalKind::AssumedRole {
        return Err(format!(
            "{value} is a role session, which lasts an hour at most; name its role (arn:aws:iam::<account>:role/<name>)"
        ));
    }
    Ok(arn)
}

/// An organization ARN.
pub(crate) fn organization(value: &str) -> Result<OrganizationArn, String> {
    OrganizationArn::parse(value).map_err(message)
}

/// An organizational unit ARN.
pub(crate) fn ou(value: &str) -> Result<OuArn, String> {
    OuArn::parse(value).map_err(message)
}

/// An image ID.
pub(crate) fn image(value: &str) -> Result<ImageId, String> {
    ImageId::parse(value).map_err(message)
}

/// An image name, as EC2 takes it.
pub(crate) fn image_name(value: &str) -> Result<ImageName, String> {
    ImageName::parse(value).map_err(message)
}

/// An instance ID.
pub(crate) fn instance(value: &str) -> Result<InstanceId, String> {
    InstanceId::parse(value).map_err(message)
}

/// A key ID, key ARN, alias name or alias ARN. A bare name is refused with
/// the hint that aliases start with `alias/`.
pub(crate) fn key(value: &str) -> Result<KeyRef, String> {
    KeyRef::parse(value).map_err(|err| {
        if !value.contains('/') && !value.contains(':') && !value.contains('-') {
            format!("{value:?} is not a key: an alias is written alias/{value}")
        } else {
            message(err)
        }
    })
}

/// A key ARN.
pub(crate) fn key_arn(value: &str) -> Result<KeyArn, String> {
    KeyArn::parse(value).map_err(message)
}

/// An alias name (`alias/…`), not one of AWS's own.
pub(crate) fn alias(value: &str) -> Result<AliasName, String> {
    let alias = AliasName::parse(value).map_err(|err| {
        if value.starts_with("alias/") {
            message(err)
        } else {
            format!("{value:?} is not an alias name: aliases start with alias/ (alias/{value})")
        }
    })?;
    if alias.is_aws_reserved() {
        return Err(format!(
            "{value} is reserved for AWS managed keys, which can never be shared"
        ));
    }
    Ok(alias)
}

/// A service-linked role that launches instances: `autoscaling`,
/// `autoscaling:SUFFIX`, `ec2fleet`, `spot`, `spotfleet`, or its role name.
pub(crate) fn service_role(value: &str) -> Result<ServiceLinkedRole, String> {
    ServiceLinkedRole::parse(value).map_err(message)
}

/// The service-linked roles a share or accept names: `--autoscaling` (the
/// default Auto Scaling role) and each `--service-linked-role`.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct ServiceRoleArgs {
    /// Auto Scaling: let the target account's Auto Scaling groups (and EKS
    /// managed node groups) launch the image. They launch as its
    /// service-linked role AWSServiceRoleForAutoScaling, which only a grant
    /// on the key lets use a key of another account: `share` lets each
    /// target account's principals create that grant, narrowed to the role
    /// and the operations EBS needs; `accept` creates it.
    #[arg(long = "autoscaling")]
    pub(crate) autoscaling: bool,
    /// Another service-linked role to do the same for (repeatable):
    /// autoscaling:SUFFIX (a custom-suffix Auto Scaling role), ec2fleet,
    /// spot or spotfleet.
    #[arg(long = "service-linked-role", value_name = "ROLE", value_parser = service_role)]
    pub(crate) roles: Vec<ServiceLinkedRole>,
}

impl ServiceRoleArgs {
    /// The roles, the default Auto Scaling role first, without repeats.
    pub(crate) fn roles(&self) -> Vec<ServiceLinkedRole> {
        let mut roles = Vec::new();
        if self.autoscaling {
            roles.push(ServiceLinkedRole::auto_scaling());
        }
        for role in &self.roles {
            if !roles.contains(role) {
                roles.push(role.clone());
            }
        }
        roles
    }
}

/// A file that exists.
pub(crate) fn existing_file(value: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(value);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{value} is not a file"))
    }
}

/// Who a command shares with (or stops sharing with).
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct TargetArgs {
    /// A target account (repeatable). Its root goes into the key policy,
    /// unless `--principal` names principals of it.
    #[arg(long = "to", value_name = "ACCOUNT", value_parser = account)]
    pub(crate) accounts: Vec<AccountId>,
    /// A target principal, an IAM user or role (repeatable): the key policy
    /// names only these principals of their account.
    #[arg(long = "principal", value_name = "ARN", value_parser = principal)]
    pub(crate) principals: Vec<PrincipalArn>,
    /// A target organization, `arn:aws:organizations::<mgmt>:organization/o-…` (repeatable).
    #[arg(long = "org-arn", value_name = "ARN", value_parser = organization)]
    pub(crate) organizations: Vec<OrganizationArn>,
    /// A target organizational unit, `arn:aws:organizations::<mgmt>:ou/o-…/ou-…` (repeatable).
    #[arg(long = "ou-arn", value_name = "ARN", value_parser = ou)]
    pub(crate) ous: Vec<OuArn>,
}

impl TargetArgs {
    /// The targets: principals replace their account's root; an account with
    /// no named principal stays whole.
    pub(crate) fn targets(&self) -> Result<Vec<Target>, String> {
        let mut targets = Vec::new();
        for account in &self.accounts {
            if !self.principals.iter().any(|p| p.account() == account) {
                targets.push(Target::Account(account.clone()));
            }
        }
        for principal in &self.principals {
            targets.push(if principal.kind() == PrincipalKind::Root {
                Target::Account(principal.account().clone())
            } else {
                Target::Principal(principal.clone())
            });
        }
        targets.extend(self.organizations.iter().cloned().map(Target::Organization));
        targets.extend(self.ous.iter().cloned().map(Target::OrganizationalUnit));
        targets.sort();
        targets.dedup();
        if targets.is_empty() {
            return Err(
                "no target: give --to ACCOUNT, --principal ARN, --org-arn ARN or --ou-arn ARN"
                    .to_owned(),
            );
        }
        Ok(targets)
    }
}

/// Conditions on the key-policy statements.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub(crate) struct NarrowingArgs {
    /// Let targets use the key only through EC2 in its region (`kms:ViaService`,
    /// on every statement, `DescribeKey` included): `accept` then shows the
    /// key usable by its launch or copy.
    #[arg(long)]
    pub(crate) via_service: bool,
    /// Let targets use the key only for their own accounts (`kms:CallerAccount`).
    #[arg(long)]
    pub(crate) caller_account: bool,
}

impl NarrowingArgs {
    /// Core's narrowing.
    pub(crate) fn narrowing(self) -> amishare_core::Narrowing {
        amishare_core::Narrowing::default()
            .with_via_service(self.via_service)
            .with_caller_account(self.caller_account)
    }
}
