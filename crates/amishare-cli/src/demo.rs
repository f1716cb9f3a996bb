//! `amishare demo`: the whole cross-account flow on the simulation, step by step.

use std::fmt::Write as _;

use amishare_core::store::InstanceState;
use amishare_core::Step;
use amishare_sim::seed::{SeedFlowReport, SeedWorld};
use anyhow::Context as _;

/// Options of `amishare demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Seed of the simulated world's IDs: the same seed gives the same IDs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Add a sixth step: B launches the image through an Auto Scaling group,
    /// as production does, after A's share allows and B creates the grant
    /// for B's Auto Scaling service-linked role.
    #[arg(long)]
    autoscaling: bool,
}

/// The flow's five steps, and the flow actions that belong to each.
const STEPS: [(&str, &[&str]); 5] = [
    ("Step 1 (A): create the customer-managed key and let B's user use it", &["resolve-key", "create-key", "create-alias", "key-policy"]),
    (
        "Step 2 (A): image the running instance, copy it encrypted with the key, verify every snapshot",
        &["source-image", "create-image", "copy-image", "wait-image", "verify-snapshots"],
    ),
    ("Step 3 (A): share the image with B, and its snapshots so that B can copy it", &["launch-permission", "volume-permission"]),
    ("Step 4 (B): find the shared image and use A's key", &["find-image", "describe-key"]),
    (
        "Step 5 (B): launch an instance from the image, and copy the image under B's own key",
        &["run-instances", "wait-instance", "terminate-instances", "copy-image", "wait-image"],
    ),
];

pub(crate) fn run(args: &DemoArgs, json: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .context("starting the runtime")?;
    let (report, final_state) = runtime.block_on(async {
        let seed = SeedWorld::new(args.seed).context("building the simulated world")?;
        let report = if args.autoscaling {
            seed.run_autoscaling().await
        } else {
            seed.run().await
        }
        .context("the seed flow failed")?;
        let launched = report
            .accept
            .launch
            .as_ref()
            .context("the flow launched no instance")?;
        let state = seed
            .instance_state(&launched.instance)
            .await
            .context("the launched instance")?;
        anyhow::Ok((report, state))
    })?;
    if json {
        crate::render::json(
            crate::render::format::DEMO,
            &crate::json::Demo::from(&report),
        )?;
    } else {
        crate::render::emit(&render(&report, final_state));
    }
    if final_state != InstanceState::Running {
        anyhow::bail!("the instance ended {final_state}, not running");
    }
    Ok(())
}

/// The text report: each step with the resources it touched.
fn render(report: &SeedFlowReport, final_state: InstanceState) -> String {
    let mut out = String::new();
    let owner = report.owner.account();
    let target = report.target.account();
    let _ = writeln!(
        out,
        "amishare demo: sharing an encrypted AMI across accounts, on the simulation"
    );
    let _ = writeln!(out, "  owner  (A) {owner}  as {}", report.owner);
    let _ = writeln!(out, "  target (B) {target}  as {}", report.target);
    let _ = writeln!(out, "  region     {}", report.region);
    // The owner's steps come first in the report, then the target's; a
    // `copy-image` belongs to step 2 on the owner side and to step 5 on the target side.
    let owner_steps = &report.share.steps;
    let target_steps = &report.accept.steps;
    // One column for the actions, as wide as the longest printed.
    let scaling_steps = report.autoscaling.iter().flat_map(|a| &a.steps);
    let width = owner_steps
        .iter()
        .chain(target_steps)
        .chain(scaling_steps)
        .map(|step| step.action.len())
        .max()
        .unwrap_or(0)
        .max(18);
    for (index, (title, actions)) in STEPS.iter().enumerate() {
        let steps: &[Step] = if index < 3 { owner_steps } else { target_steps };
        let _ = writeln!(out, "\n{title}");
        for step in steps
            .iter()
            .filter(|s| actions.contains(&s.action.as_str()))
        {
            step_line(&mut out, step, width);
        }
        if index == 0 {
            // The seed's whole point: the key policy that lets B's user in.
            for region in &report.share.regions {
                out.push('\n');
                crate::render::key_policy(&mut out, &region.key, &region.key_policy);
            }
        }
    }
    if let Some(autoscaling) = &report.autoscaling {
        let _ = writeln!(
            out,
            "\nStep 6 (B): create the grant for B's Auto Scaling role, launch through a one-instance Auto Scaling group"
        );
        for step in &autoscaling.steps {
            if ["find-image", "describe-key"].contains(&step.action.as_str()) {
                continue;
            }
            step_line(&mut out, step, width);
        }
    }
    for warning in report.share.warnings.iter().chain(&report.accept.warnings) {
        let _ = writeln!(out, "\nwarning: {warning}");
    }
    let shared = &report.share.regions[0];
    let launch = report.accept.launch.as_ref();
    let _ = writeln!(
        out,
        "\nDone in {} of simulated time: image {} (key {}) is shared with {target}; instance {} is {final_state} in {target}.",
        human(report.simulated),
        shared.image,
        shared.key,
        launch.map_or_else(|| "-".to_owned(), |l| l.instance.to_string()),
    );
    let _ = writeln!(out, "(+ changed something, = checked and found in place)");
    out
}

fn human(duration: std::time::Duration) -> String {
    let secs = duration.as_secs();
    format!("{}m {:02}s", secs / 60, secs % 60)
}

/// One step of the walkthrough: its mark, action, resource and detail.
fn step_line(out: &mut String, step: &Step, width: usize) {
    let mark = if step.changed { '+' } else { '=' };
    let _ = writeln!(
        out,
        "  {mark} {:<width$} {:<40} {}",
        step.action, step.resource, step.detail
    );
}
