//! Testing your own sharing automation against the simulation: a release
//! step that shares the golden image with the deployer of another account
//! and has the deployer prove it can launch it, run healthy, denied,
//! throttled, and stopped then rerun.
//!
//! `cargo run -p amishare-sim --example own_automation` prints one line per
//! scenario and exits non-zero if any scenario ends otherwise than
//! expected. Copy it into your own tests, with `publish` replaced by your
//! automation.

use std::process::ExitCode;
use std::sync::Arc;

use amishare_core::diagnose::{DiagnoseRequest, Doctor, Intent, Link};
use amishare_core::{
    AcceptRequest, AliasName, Clock, Flow, ImageId, ImageName, ImageSource, KeyChoice,
    LaunchOptions, ShareRequest, Sharer, Stores, Target,
};
use amishare_sim::faults::{Faults, Faulty};
use amishare_sim::seed::SeedWorld;
use amishare_sim::World;

/// A flow acting as the principal behind `stores`.
fn flow(stores: &Stores, clock: &Arc<dyn Clock>) -> Flow {
    Flow::over(stores, clock.clone())
}

/// The automation under test: share the golden image (imaged from a running
/// instance) with the deployer, then launch it as the deployer.
async fn publish(
    owner: &Stores,
    deployer: &Stores,
    clock: &Arc<dyn Clock>,
    share: &ShareRequest,
) -> amishare_core::Result<ImageId> {
    let report = flow(owner, clock).share(share).await?;
    let shared = &report.regions[0];
    flow(deployer, clock)
        .accept(
            &AcceptRequest::new(
                shared.image.clone(),
                shared.region.clone(),
                [shared.key.clone()],
            )
            .with_launch(LaunchOptions::default()),
        )
        .await?;
    Ok(shared.image.clone())
}

/// The walkthrough's world (A's administrator shares with B's user), on the
/// runtime's paused clock, and the release step's request.
fn world() -> amishare_core::Result<(SeedWorld, Arc<dyn Clock>, ShareRequest)> {
    let seed = SeedWorld::in_world(World::new(7))?;
    let clock: Arc<dyn Clock> = Arc::new(seed.world.clock());
    let request = ShareRequest::new(
        ImageSource::Instance(seed.instance.clone()),
        seed.region.clone(),
        KeyChoice::Create(AliasName::parse("alias/release")?),
        [Target::Principal(seed.target.clone())],
    )
    .with_name(ImageName::parse("golden-release")?);
    Ok((seed, clock, request))
}

/// Everything allowed: the image is shared and the deployer launches it.
async fn healthy() -> Result<String, String> {
    let (seed, clock, request) = world().map_err(|e| e.to_string())?;
    let owner = Stores::of(seed.world.client(&seed.owner).map_err(|e| e.to_string())?);
    let deployer = Stores::of(seed.world.client(&seed.target).map_err(|e| e.to_string())?);
    let image = publish(&owner, &deployer, &clock, &request)
        .await
        .map_err(|e| format!("expected success, got {e}"))?;
    Ok(format!(
        "{image} shared and launched in {} s of virtual time",
        seed.world.now().as_secs()
    ))
}

/// The deployer's IAM policy does not allow the owner's key: KMS refuses
/// the deployer's own check of the key, and EC2 terminates its launch, as
/// AWS does. Which link broke is asked of the doctor, never read from the
/// error's text.
async fn denied() -> Result<String, String> {
    let (seed, clock, request) = world().map_err(|e| e.to_string())?;
    let ec2_only = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}"#;
    seed.world
        .set_identity_policies(&seed.target, &[ec2_only])
        .map_err(|e| e.to_string())?;
    let owner = Stores::of(seed.world.client(&seed.owner).map_err(|e| e.to_string())?);
    let deployer = Stores::of(seed.world.client(&seed.target).map_err(|e| e.to_string())?);
    if let Ok(image) = publish(&owner, &deployer, &clock, &request).await {
        return Err(format!("expected a denial, but {image} was launched"));
    }
    // The share itself went through: the image is the one the doctor examines.
    let shared = flow(&owner, &clock)
        .share(&request)
        .await
        .map_err(|e| format!("expected the share to stand, got {e}"))?;
    let shared = &shared.regions[0];
    let diagnosis = Doctor::new()
        .with_owner(owner)
        .with_target(deployer)
        .with_directory(Arc::new(seed.world.clone()))
        .diagnose(
            &DiagnoseRequest::new(
                shared.image.clone(),
                shared.region.clone(),
                seed.target.clone(),
                Intent::Launch,
            )
            .with_keys([shared.key.clone()]),
        )
        .await
        .map_err(|e| e.to_string())?;
    let blamed: Vec<String> = diagnosis
        .failures()
        .map(|finding| {
            format!(
                "{} {}",
                finding.link.code(),
                finding.action.as_deref().unwrap_or("")
            )
        })
        .collect();
    if !diagnosis
        .failures()
        .any(|finding| finding.link == Link::IdentityPolicy)
    {
        return Err(format!(
            "expected the doctor to blame the IAM policy, it blamed {blamed:?}"
        ));
    }
    Ok(format!(
        "launch refused; the doctor blames {}",
        blamed.join(", ")
    ))
}

/// A third of all calls throttled: the flow's retries absorb them.
async fn throttled() -> Result<String, String> {
    let (seed, clock, request) = world().map_err(|e| e.to_string())?;
    let faults = Faults {
        throttle: 0.3,
        ..Faults::none(11)
    };
    let owner = Faulty::new(
        seed.world.client(&seed.owner).map_err(|e| e.to_string())?,
        faults,
    );
    let deployer = owner.for_client(seed.world.client(&seed.target).map_err(|e| e.to_string())?);
    let tally = owner.clone();
    let image = publish(&Stores::of(owner), &Stores::of(deployer), &clock, &request)
        .await
        .map_err(|e| format!("expected the retries to absorb throttling, got {e}"))?;
    let throttled = tally.tally().throttled;
    if throttled == 0 {
        return Err("no call was throttled: the scenario tested nothing".to_owned());
    }
    Ok(format!(
        "{image} shared and launched through {throttled} throttled calls"
    ))
}

/// The owner's process dies after its third write; the rerun finishes the
/// release, and a second rerun writes nothing.
async fn rerun() -> Result<String, String> {
    let (seed, clock, request) = world().map_err(|e| e.to_string())?;
    let faulty = Faulty::new(
        seed.world.client(&seed.owner).map_err(|e| e.to_string())?,
        Faults {
            crash_after: Some(3),
            ..Faults::none(5)
        },
    );
    let owner = Stores::of(faulty.clone());
    let deployer = Stores::of(seed.world.client(&seed.target).map_err(|e| e.to_string())?);
    if let Ok(image) = publish(&owner, &deployer, &clock, &request).await {
        return Err(format!("expected the stop, but {image} was launched"));
    }
    faulty.set_faults(Faults::none(5));
    let image = publish(&owner, &deployer, &clock, &request)
        .await
        .map_err(|e| format!("expected the rerun to finish, got {e}"))?;
    let writes = seed.world.mutating_calls();
    let again = flow(&owner, &clock)
        .share(&request)
        .await
        .map_err(|e| format!("expected a second rerun to succeed, got {e}"))?;
    if again.regions[0].image != image || seed.world.mutating_calls() != writes {
        return Err("the second rerun wrote again".to_owned());
    }
    Ok(format!(
        "stopped after 3 writes, rerun shared {image}, a second rerun wrote nothing"
    ))
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> ExitCode {
    let mut failed = false;
    for (name, outcome) in [
        ("healthy", healthy().await),
        ("denied", denied().await),
        ("throttled", throttled().await),
        ("rerun", rerun().await),
    ] {
        match outcome {
            Ok(line) => println!("ok    {name}: {line}"),
            Err(line) => {
                failed = true;
                println!("FAIL  {name}: {line}");
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
