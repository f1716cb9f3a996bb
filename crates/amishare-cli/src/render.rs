//! Text output shared by the commands.

use std::fmt::Write as _;

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
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
