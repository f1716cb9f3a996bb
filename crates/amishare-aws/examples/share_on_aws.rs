//! Sharing on AWS with two profiles: the owner's profile shares an instance's
//! image under a new key, the target's profile checks the key and launches a
//! smoke instance (terminated afterwards).
//!
//! It acts on real accounts, so it runs only when told which:
//!
//! ```sh
//! AMISHARE_OWNER_PROFILE=owner AMISHARE_TARGET_PROFILE=target \
//! AMISHARE_INSTANCE=i-0123456789abcdef0 AMISHARE_REGION=ap-northeast-1 \
//! AMISHARE_TARGET_PRINCIPAL=arn:aws:iam::222222222222:user/deployer \
//!   cargo run -p amishare-aws --example share_on_aws
//! ```
//!
//! Without these variables it prints this usage and exits 2, having called nothing.

use std::process::ExitCode;
use std::sync::Arc;

use amishare_aws::{load, AwsImageStore, AwsKeyStore, ConnectOptions, WallClock};
use amishare_core::{
    AcceptRequest, AliasName, Flow, ImageSource, InstanceId, KeyChoice, LaunchOptions,
    PrincipalArn, Region, ShareRequest, Sharer, Target,
};

const USAGE: &str = "usage: AMISHARE_OWNER_PROFILE=… AMISHARE_TARGET_PROFILE=… AMISHARE_INSTANCE=i-… \
AMISHARE_REGION=… AMISHARE_TARGET_PRINCIPAL=arn:aws:iam::…:user/… cargo run -p amishare-aws --example share_on_aws";

/// The variables this example needs, in order.
const VARIABLES: [&str; 5] = [
    "AMISHARE_OWNER_PROFILE",
    "AMISHARE_TARGET_PROFILE",
    "AMISHARE_INSTANCE",
    "AMISHARE_REGION",
    "AMISHARE_TARGET_PRINCIPAL",
];

/// The stores of one profile.
async fn flow(profile: &str, region: &Region) -> Flow {
    let config = load(&ConnectOptions {
        profile: Some(profile.to_owned()),
        region: Some(region.clone()),
        ..ConnectOptions::default()
    })
    .await;
    Flow::new(
        Arc::new(AwsKeyStore::new(&config)),
        Arc::new(AwsImageStore::new(&config)),
        Arc::new(WallClock),
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    let values: Result<Vec<String>, _> = VARIABLES.iter().map(std::env::var).collect();
    let Ok(values) = values else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match run(&values).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("share_on_aws: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(values: &[String]) -> amishare_core::Result<()> {
    let [owner, target, instance, region, principal] = values else {
        unreachable!("one value per variable");
    };
    let region = Region::parse(region)?;
    let request = ShareRequest::new(
        ImageSource::Instance(InstanceId::parse(instance)?),
        region.clone(),
        KeyChoice::Create(AliasName::parse("alias/cross-ami")?),
        [Target::Principal(PrincipalArn::parse(principal)?)],
    )
    .with_volume_permission(true);
    request.validate()?;

    let share = flow(owner, &region).await.share(&request).await?;
    let shared = &share.regions[0];
    println!(
        "shared {} in {} under {}",
        shared.image, shared.region, shared.key
    );

    let accept = flow(target, &region)
        .await
        .accept(
            &AcceptRequest::new(shared.image.clone(), region, [shared.key.clone()])
                .with_launch(LaunchOptions::default()),
        )
        .await?;
    if let Some(launch) = &accept.launch {
        println!("the target launched {} ({})", launch.instance, launch.state);
    }
    Ok(())
}
