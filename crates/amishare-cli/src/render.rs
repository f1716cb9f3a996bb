//! Text output shared by the commands.

use std::fmt::Write as _;
use std::io::Write as _;

use amishare_core::Step;

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

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    emit(&format!("{}\n", serde_json::to_string_pretty(value)?));
    Ok(())
}

/// A dry run's plan: every mutating call, and each key-policy diff.
pub(crate) fn plan(plan: &amishare_core::plan::Plan, json_output: bool) -> anyhow::Result<()> {
    if json_output {
        return json(plan);
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
