//! Serving a simulated world to the AWS SDK: `amishare_serve` on a loopback
//! port, the SDK's own KMS and EC2 clients pointed at it, and amishare's
//! share running through the SDK, over HTTP, against the world.
//!
//! `cargo run -p amishare-aws --example serve_to_sdk` prints what each side
//! sees and exits non-zero if anything differs from what it expects. Your
//! own SDK code runs against the world the same way: `endpoint_url` and the
//! world's access keys.

use std::error::Error;
use std::sync::Arc;

use amishare_aws::{load_with, AwsImageStore, AwsKeyStore, ConnectOptions};
use amishare_core::{Flow, Region, Sharer};
use amishare_serve::{ServeOptions, Server};
use amishare_sim::seed::SeedWorld;
use amishare_sim::World;
use aws_config::{BehaviorVersion, SdkConfig};

/// The access keys the world maps to its principals. On loopback the server
/// checks no signature, so any secret will do.
const OWNER_KEY: &str = "AKIAAADMINEXAMPLE001";
const TARGET_KEY: &str = "AKIABUSEREXAMPLE0001";

/// An SDK configuration that signs with `access_key` and sends every call to `endpoint`.
async fn sdk_config(endpoint: &str, access_key: &str) -> SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest()).credentials_provider(
        aws_sdk_kms::config::Credentials::new(access_key, "any-secret", None, None, "example"),
    );
    load_with(
        loader,
        &ConnectOptions {
            region: Some(Region::parse("ap-northeast-1").expect("a region")),
            endpoint_url: Some(endpoint.to_owned()),
            ..ConnectOptions::default()
        },
    )
    .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // The walkthrough's world, with an access key for each side, in a file.
    let seed = SeedWorld::in_world(World::new(7))?;
    seed.world.set_access_key(OWNER_KEY, &seed.owner)?;
    seed.world.set_access_key(TARGET_KEY, &seed.target)?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("world.json");
    seed.world.save(&path)?;

    let server = Server::bind(ServeOptions::new(&path, "127.0.0.1:0".parse()?)).await?;
    let endpoint = server.endpoint();
    let served = server.world();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    println!("serving {} at {endpoint}", path.display());

    // The SDK's own clients, as the owner.
    let owner = sdk_config(&endpoint, OWNER_KEY).await;
    let ec2 = aws_sdk_ec2::Client::new(&owner);
    let instances = ec2.describe_instances().send().await?;
    let instance = instances.reservations()[0].instances()[0]
        .instance_id()
        .unwrap_or_default();
    println!("owner sees instance {instance}");

    // amishare's share through the SDK; its waits advance the served world's
    // clock rather than sleep.
    let flow = Flow::new(
        Arc::new(AwsKeyStore::new(&owner)),
        Arc::new(AwsImageStore::new(&owner)),
        Arc::new(served.stepping_clock()),
    );
    let share = flow.share(&seed.share_request()).await?;
    let shared = &share.regions[0];
    println!("shared {} under {}", shared.image, shared.key);

    // The target's SDK clients see the image and may use the key.
    let target = sdk_config(&endpoint, TARGET_KEY).await;
    let visible = aws_sdk_ec2::Client::new(&target)
        .describe_images()
        .executable_users("self")
        .send()
        .await?;
    let ids: Vec<&str> = visible
        .images()
        .iter()
        .filter_map(|image| image.image_id())
        .collect();
    if !ids.contains(&shared.image.as_str()) {
        return Err(format!("the target does not see {}: {ids:?}", shared.image).into());
    }
    let key = aws_sdk_kms::Client::new(&target)
        .describe_key()
        .key_id(shared.key.to_string())
        .send()
        .await?;
    let state = key
        .key_metadata()
        .and_then(|meta| meta.key_state())
        .map(|state| state.as_str().to_owned());
    println!(
        "target sees {} and the key ({})",
        shared.image,
        state.unwrap_or_default()
    );

    // Stopping saves the world back to its file.
    let _ = stop.send(());
    running.await??;
    println!("saved {}", path.display());
    Ok(())
}
