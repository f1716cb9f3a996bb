//! Text output shared by the commands.

use std::fmt::Write as _;
use std::io::Write as _;

use amishare_core::{KeyArn, KeyPolicyReport, Step};

/// The steps of a report, one per line: `+` changed something, `=` only looked.
pub(crate) fn steps(out: &mut String, steps: &[Step]) {
    for step in steps {
        let mark = if step.changed { '+' } else { '=' };
        let region = step.region.as_ref().map_or("", |r| r.as_str());
        let _ = writeln!(
            out,
            "  {mark} {region:<15} {:<20} {}  {}",
            step.action, step.resource, step.detail
        );
    }
}

/// Warnings, if any.
pub(crate) fn warnings(out: &mut String, warnings: &[String]) {
    for warning in warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
}

/// The JSON documents the commands print (`--json`), each named by its
/// first field, `"format"`, with a version that changes only when a field
/// is removed or changes meaning. `docs/json.md` describes every one.
pub(crate) mod format {
    /// `share`.
    pub(crate) const SHARE: &str = "amishare-share/1";
    /// `accept`.
    pub(crate) const ACCEPT: &str = "amishare-accept/1";
    /// `accept --launch` whose smoke instance did not start, with the doctor's findings.
    pub(crate) const LAUNCH_FAILURE: &str = "amishare-launch-failure/1";
    /// `unshare`.
    pub(crate) const UNSHARE: &str = "amishare-unshare/1";
    /// `status`.
    pub(crate) const STATUS: &str = "amishare-status/1";
    /// `doctor`, with `--fix` or without.
    pub(crate) const DOCTOR: &str = "amishare-doctor/1";
    /// `policy --json`.
    pub(crate) const POLICY: &str = "amishare-policy/1";
    /// `demo --json`.
    pub(crate) const DEMO: &str = "amishare-demo/1";
    /// Any command's `--dry-run --json`.
    pub(crate) const PLAN: &str = "amishare-plan/1";
}

/// Prints `value` as pretty JSON on stdout, an object whose first field,
/// `"format"`, names the document and its version (see [`format`](mod@format)).
pub(crate) fn json(format: &str, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut document = serde_json::Map::new();
    document.insert("format".to_owned(), format.into());
    match serde_json::to_value(value)? {
        serde_json::Value::Object(fields) => {
            debug_assert!(
                !fields.contains_key("format"),
                "{format} has a format field"
            );
            document.extend(fields);
        }
        other => anyhow::bail!("{format}: a JSON document must be an object, not {other}"),
    }
    emit(&format!("{}\n", serde_json::to_string_pretty(&document)?));
    Ok(())
}

/// A key policy a command wrote (or found complete), for people: amishare's
/// statements, or the whole policy of a key created with it, as JSON.
pub(crate) fn key_policy(out: &mut String, key: &KeyArn, report: &KeyPolicyReport) {
    let (what, document) = match &report.policy {
        Some(policy) => ("its whole policy", policy.to_json_pretty()),
        None => (
            "amishare's statements",
            serde_json::to_string_pretty(&report.statements).unwrap_or_default(),
        ),
    };
    let _ = writeln!(out, "key policy of {key}, {}: {what}", report.written);
    indented(out, &document);
}

/// `text` with every line indented by four spaces.
pub(crate) fn indented(out: &mut String, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "    {line}");
    }
}

/// A dry run's plan: every mutating call, and each key-policy diff.
pub(crate) fn plan(plan: &amishare_core::plan::Plan, json_output: bool) -> anyhow::Result<()> {
    if json_output {
        return json(format::PLAN, &crate::json::Plan::from(plan));
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Dry run: {} mutating calls would be made (IDs of new resources are placeholders).",
        plan.calls.len()
    );
    for call in &plan.calls {
        let region = call.region.as_ref().map_or("", |r| r.as_str());
        let _ = writeln!(
            out,
            "  {region:<15} {:<28} {}  {}",
            call.operation, call.resource, call.detail
        );
    }
    for change in &plan.policy_changes {
        let diff = similar::TextDiff::from_lines(
            &format!("{}\n", change.before.trim_end()),
            &format!("{}\n", change.after.trim_end()),
        )
        .unified_diff()
        .header(&format!("{} (now)", change.key), "planned")
        .to_string();
        let _ = write!(out, "{diff}");
    }
    emit(&out);
    Ok(())
}

/// Writes the result on stdout; a reader that went away (`| head`) is not an
/// error worth a panic.
pub(crate) fn emit(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}
