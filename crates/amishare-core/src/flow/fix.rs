//! The doctor's key-policy fix: the least-privilege statements a diagnosis
//! finds missing, merged into each key policy by the key's owner.

use serde::Serialize;

use crate::diagnose::{DiagnoseRequest, Diagnosis, Doctor, Fix, Intent, Link, Verdict};
use crate::error::{Error, ErrorKind, Result};
use crate::flow::{check_partitions, policy_text, Flow, Narrowing, Target};
use crate::id::{KeyArn, PrincipalArn};

/// What [`Flow::fix`] is asked to mend.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FixRequest {
    /// The diagnosis to mend: image, region, principal, intent.
    pub diagnose: DiagnoseRequest,
    /// The narrowing of the statements written (as the share used).
    pub narrowing: Narrowing,
    /// Diagnose again after a change, to say whether the fix worked; a dry
    /// run, whose writes are only planned, skips it.
    pub recheck: bool,
}

/// A key policy the fix changed, or found already complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Mended {
    /// The key.
    pub key: KeyArn,
    /// Whether the policy was written.
    pub changed: bool,
    /// amishare's statements (Sid `amishare:…`) in the policy after the fix.
    pub statements: Vec<amishare_policy::Statement>,
    /// The policy before, pretty-printed.
    pub before: String,
    /// The policy after, pretty-printed.
    pub after: String,
}

/// What [`Flow::fix`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FixReport {
    /// The key policies written (or already complete).
    pub mended: Vec<Mended>,
    /// Why nothing was written although key-policy links failed: the owner
    /// step that must come first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// The diagnosis after the fix: the one before when nothing changed or
    /// no recheck was asked.
    pub diagnosis: Diagnosis,
}

impl FixRequest {
    /// Mends what `diagnose` finds, with statements not narrowed, and
    /// diagnoses again after a change.
    pub fn new(diagnose: DiagnoseRequest) -> FixRequest {
        FixRequest {
            diagnose,
            narrowing: Narrowing::default(),
            recheck: true,
        }
    }

    /// Narrows the statements written, as the share did.
    pub fn with_narrowing(mut self, narrowing: Narrowing) -> FixRequest {
        self.narrowing = narrowing;
        self
    }

    /// Whether to diagnose again after a change.
    pub fn with_recheck(mut self, recheck: bool) -> FixRequest {
        self.recheck = recheck;
        self
    }

    /// Refuses a request the fix cannot serve, before any call: an Auto
    /// Scaling launch needs a grant the target creates, not key-policy
    /// statements.
    pub fn validate(&self) -> Result<()> {
        if self.diagnose.intent == Intent::AutoScaling {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "--fix writes key-policy statements; an Auto Scaling launch needs a grant the target creates: amishare accept --autoscaling-grant (and the owner's share --autoscaling)",
            ));
        }
        Ok(())
    }
}

impl FixReport {
    /// Whether every link holds after the fix.
    pub fn passes(&self) -> bool {
        self.diagnosis.verdict == Verdict::Pass
    }
}

impl Flow {
    /// Mends what a diagnosis finds missing in key policies, as the key's
    /// owner: for each key whose `kms.key-policy` link fails, the
    /// principal's least-privilege statements are merged in (Sid-scoped and
    /// lockout-checked, as `share` merges them) and the policy written once.
    /// Nothing else is written: the other broken links need changes only
    /// their owners can make, and the fix writes only for a principal whose
    /// account can see the image (until then it names the share that comes
    /// first and changes nothing).
    pub async fn fix(&self, doctor: &Doctor, request: &FixRequest) -> Result<FixReport> {
        let before = self.stores.writes();
        self.fix_once(doctor, request)
            .await
            .map_err(|err| self.mark(before, err))
    }

    /// The principal this flow acts as, as key policies name it (see
    /// [`PrincipalArn::as_policy_principal`]): whom a diagnosis is about
    /// when none is named.
    pub async fn policy_principal(&self) -> Result<PrincipalArn> {
        Ok(self.keys().caller().await?.arn.as_policy_principal())
    }

    async fn fix_once(&self, doctor: &Doctor, request: &FixRequest) -> Result<FixReport> {
        request.validate()?;
        let ask = &request.diagnose;
        check_partitions(&ask.region, &[Target::Principal(ask.principal.clone())])?;
        let diagnosis = doctor.diagnose(ask).await?;
        let keys: Vec<&KeyArn> = diagnosis
            .fixes()
            .into_iter()
            .filter_map(|fix| match fix {
                Fix::KeyPolicyStatements { key, .. } => Some(key),
                _ => None,
            })
            .collect();
        if keys.is_empty() {
            return Ok(FixReport {
                mended: Vec::new(),
                refused: None,
                diagnosis,
            });
        }
        if let Some(why) = unseen(&diagnosis) {
            return Ok(FixReport {
                mended: Vec::new(),
                refused: Some(why),
                diagnosis,
            });
        }
        let caller = self.keys().caller().await?;
        if let Some(key) = keys.iter().find(|key| key.account() != &caller.account) {
            return Err(Error::new(
                ErrorKind::AccessDenied,
                format!(
                    "the key policy of {key} is written by its owner, account {}; {} is of account {}",
                    key.account(),
                    caller.arn,
                    caller.account
                ),
            ));
        }
        let grantee = amishare_policy::Grantee::Principal(ask.principal.to_string());
        let mut mended = Vec::new();
        for key in keys {
            let text = self.keys().get_key_policy(key).await?;
            let policy = amishare_policy::Policy::parse(&text)
                .map_err(|e| Error::from(e).context(format!("the key policy of {key}")))?;
            let merged = amishare_policy::merge_key(
                &policy,
                std::slice::from_ref(&grantee),
                &request.narrowing.for_region(key.region()),
                caller.account.as_str(),
                caller.arn.as_str(),
                Some(&key.to_string()),
            )
            .map_err(|e| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("cannot fix the key policy of {key}: {e}"),
                )
            })?;
            if merged.changed {
                self.keys()
                    .put_key_policy(key, &policy_text(&merged.policy))
                    .await?;
            }
            mended.push(Mended {
                key: key.clone(),
                changed: merged.changed,
                statements: amishare_policy::amishare_statements(&merged.policy)
                    .cloned()
                    .collect(),
                before: policy.to_json_pretty(),
                after: merged.policy.to_json_pretty(),
            });
        }
        let changed = mended.iter().any(|m| m.changed);
        let diagnosis = if changed && request.recheck {
            doctor.diagnose(ask).await?
        } else {
            diagnosis
        };
        Ok(FixReport {
            mended,
            refused: None,
            diagnosis,
        })
    }
}

/// Why the principal's account cannot be seen to see the image, if so: a
/// key policy must not name a principal the image is not shared with.
fn unseen(diagnosis: &Diagnosis) -> Option<String> {
    let account = diagnosis.principal.account();
    let visible = diagnosis
        .findings
        .iter()
        .filter(|f| matches!(f.link, Link::ImageFound | Link::ImageShared))
        .map(|f| f.verdict)
        .max()?;
    match visible {
        Verdict::Pass => None,
        Verdict::Fail => Some(format!(
            "image {} is not shared with account {account} in {}: the owner shares it first (amishare share --image {} with {}), then the key policy is mended; nothing was changed",
            diagnosis.image, diagnosis.region, diagnosis.image, diagnosis.principal
        )),
        Verdict::Unknown => Some(format!(
            "whether account {account} can see image {} cannot be told from here; the key policy is mended only for a principal whose account can, so nothing was changed",
            diagnosis.image
        )),
    }
}
