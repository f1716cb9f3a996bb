//! Where the commands act: AWS through the SDK, or a simulated world read
//! from a world file and written back when the command has run.
//!
//! A command on a world file holds the file's lock (`amishare_sim::WorldLock`)
//! from before it reads the file until after it writes it back, so commands
//! on one file take turns and every command's changes are kept.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use amishare_aws::{
    AwsDirectory, AwsImageStore, AwsKeyStore, AwsScalingStore, ConnectOptions, WallClock,
};
use amishare_core::diagnose::Directory;
use amishare_core::plan::{planning, Planner};
use amishare_core::scaling::ScalingStore;
use amishare_core::{Clock, Flow, ImageStore, KeyStore, PrincipalArn, Region};
use amishare_sim::{LockHolder, World, WorldLock};

use crate::args;
use crate::fail::{usage, Failure};

/// Which backend the commands use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BackendKind {
    /// AWS, with the credentials of `--profile` (or the SDK's default chain).
    Aws,
    /// The simulation, in the world file `--world`.
    Sim,
}

/// Options every command takes.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Global {
    /// Where to act.
    #[arg(long, value_enum, default_value = "aws", global = true)]
    pub(crate) backend: BackendKind,
    /// The world file of `--backend sim` (JSON; see testdata/worlds/).
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) world: Option<PathBuf>,
    /// How long to wait while another command has the world file.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, global = true)]
    pub(crate) lock_wait: u64,
    /// The profile to act as: an AWS profile, or a profile of the world file.
    #[arg(long, global = true)]
    pub(crate) profile: Option<String>,
    /// The target side's profile, for commands that look from both sides.
    #[arg(long, global = true)]
    pub(crate) target_profile: Option<String>,
    /// A role of the target account to assume for the target side (AWS).
    #[arg(long, value_name = "ARN", value_parser = args::principal, global = true)]
    pub(crate) target_role_arn: Option<PrincipalArn>,
    /// The region (default: the profile's, on AWS).
    #[arg(long, value_parser = args::region, global = true)]
    pub(crate) region: Option<Region>,
    /// An endpoint for every AWS service, such as LocalStack's.
    #[arg(long, value_name = "URL", global = true)]
    pub(crate) endpoint_url: Option<String>,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Print the plan (every mutating call, the key-policy diff) and change nothing.
    #[arg(long, global = true)]
    pub(crate) dry_run: bool,
}

/// The stores of one principal.
#[derive(Debug, Clone)]
pub(crate) struct Side {
    /// KMS (and STS).
    pub(crate) keys: Arc<dyn KeyStore>,
    /// EC2.
    pub(crate) images: Arc<dyn ImageStore>,
    /// EC2 Auto Scaling and launch templates.
    pub(crate) scaling: Arc<dyn ScalingStore>,
    /// IAM, where the doctor reads principals' policies (AWS only: on the
    /// simulation the world itself is the directory).
    pub(crate) directory: Option<Arc<dyn Directory>>,
}

impl Side {
    /// The AWS stores of one SDK configuration.
    fn aws(config: &amishare_aws::SdkConfig) -> Side {
        Side {
            keys: Arc::new(AwsKeyStore::new(config)),
            images: Arc::new(AwsImageStore::new(config)),
            scaling: Arc::new(AwsScalingStore::new(config)),
            directory: Some(Arc::new(AwsDirectory::new(config))),
        }
    }
}

/// What a command acts through.
#[derive(Debug)]
pub(crate) struct Session {
    /// The principal of `--profile`.
    pub(crate) side: Side,
    /// The principal of `--target-profile` / `--target-role-arn`, if given.
    pub(crate) target: Option<Side>,
    /// Real time on AWS, the world's virtual time on the simulation.
    pub(crate) clock: Arc<dyn Clock>,
    /// The region of `--region`, or the AWS profile's.
    pub(crate) region: Option<Region>,
    /// The simulated world and the lock on its file.
    pub(crate) world: Option<(World, WorldLock)>,
    /// With `--dry-run`, what the command would change.
    pub(crate) planner: Option<Arc<Planner>>,
}

impl Session {
    /// Opens the backend for `command`. Runs inside the command's runtime:
    /// on the simulation, the world's clock starts there.
    pub(crate) async fn open(global: &Global, command: &str) -> Result<Session, Failure> {
        let mut session = match global.backend {
            BackendKind::Sim => open_sim(global, command)?,
            BackendKind::Aws => open_aws(global).await?,
        };
        if global.dry_run {
            let (planner, keys, images) =
                planning(session.side.keys.clone(), session.side.images.clone());
            session.side = Side {
                keys,
                images,
                scaling: planner.scaling(session.side.scaling.clone()),
                directory: session.side.directory.clone(),
            };
            session.planner = Some(planner);
            if global.backend == BackendKind::Aws {
                // What a dry run "creates" is ready at once: never wait for real.
                session.clock = Arc::new(Skipping::new(session.clock.clone()));
            }
        }
        Ok(session)
    }

    /// The flow acting as `--profile`.
    pub(crate) fn flow(&self) -> Flow {
        Flow::new(
            self.side.keys.clone(),
            self.side.images.clone(),
            self.clock.clone(),
        )
        .with_scaling(self.side.scaling.clone())
    }

    /// The region, or a usage error naming `--region`.
    pub(crate) fn region(&self) -> Result<Region, Failure> {
        self.region
            .clone()
            .ok_or_else(|| usage("--region is required (no default region is configured)"))
    }

    /// Writes the world back if the command changed it, unless this was a
    /// dry run; a command that only read leaves the file as it was.
    pub(crate) fn finish(&self, global: &Global) -> Result<(), Failure> {
        if global.dry_run {
            return Ok(());
        }
        if let Some((world, lock)) = &self.world {
            lock.save_if_changed(world).map_err(Failure::failed)?;
        }
        Ok(())
    }
}

fn open_sim(global: &Global, command: &str) -> Result<Session, Failure> {
    if global.endpoint_url.is_some() {
        return Err(usage("--endpoint-url applies to --backend aws only"));
    }
    if global.target_role_arn.is_some() {
        return Err(usage(
            "--target-role-arn applies to --backend aws only; on the simulation use --target-profile",
        ));
    }
    let path = global
        .world
        .clone()
        .ok_or_else(|| usage("--backend sim needs --world FILE (see testdata/worlds/)"))?;
    let lock = lock_world(&path, command, global.lock_wait)?;
    let world = lock.load().map_err(|err| usage(err.to_string()))?;
    let profiles = world.profiles();
    let side = sim_side(
        &world,
        &profiles,
        global.profile.as_deref(),
        "--profile",
        &path,
    )?
    .ok_or_else(|| {
        usage(format!(
            "--profile is required with --backend sim: one of {} (profiles of {})",
            names(&profiles),
            path.display()
        ))
    })?;
    let target = sim_side(
        &world,
        &profiles,
        global.target_profile.as_deref(),
        "--target-profile",
        &path,
    )?;
    Ok(Session {
        side,
        target,
        clock: Arc::new(world.clock()),
        region: global.region.clone(),
        world: Some((world, lock)),
        planner: None,
    })
}

/// Takes the world file's lock, saying on stderr whom it waits for; a file
/// that is not there is bad input, a file another holder keeps is a failure.
fn lock_world(path: &std::path::Path, command: &str, wait: u64) -> Result<WorldLock, Failure> {
    let holder = LockHolder::this_process(format!("amishare {command}"));
    WorldLock::acquire(
        path,
        &holder,
        std::time::Duration::from_secs(wait),
        |current| match current {
            Some(current) => eprintln!(
                "amishare: waiting for {current} to finish with {} (up to {wait} s)",
                path.display()
            ),
            None => eprintln!(
                "amishare: waiting for another command to finish with {} (up to {wait} s)",
                path.display()
            ),
        },
    )
    .map_err(|err| match err.kind() {
        amishare_core::ErrorKind::InvalidInput => usage(err.to_string()),
        _ => Failure::failed(err),
    })
}

fn names(profiles: &BTreeMap<String, PrincipalArn>) -> String {
    if profiles.is_empty() {
        "none defined".to_owned()
    } else {
        profiles.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

fn sim_side(
    world: &World,
    profiles: &BTreeMap<String, PrincipalArn>,
    profile: Option<&str>,
    flag: &str,
    path: &std::path::Path,
) -> Result<Option<Side>, Failure> {
    let Some(name) = profile else {
        return Ok(None);
    };
    let principal = profiles.get(name).ok_or_else(|| {
        usage(format!(
            "{flag} {name:?} is not a profile of {} (profiles: {})",
            path.display(),
            names(profiles)
        ))
    })?;
    let client = world
        .client(principal)
        .map_err(|err| usage(format!("{flag} {name}: {err}")))?;
    let client = Arc::new(client);
    Ok(Some(Side {
        keys: client.clone(),
        images: client.clone(),
        scaling: client,
        directory: None,
    }))
}

async fn open_aws(global: &Global) -> Result<Session, Failure> {
    if global.world.is_some() {
        return Err(usage("--world applies to --backend sim only"));
    }
    let options = ConnectOptions {
        profile: global.profile.clone(),
        region: global.region.clone(),
        endpoint_url: global.endpoint_url.clone(),
        ..ConnectOptions::default()
    };
    let config = amishare_aws::load(&options).await;
    let region = match &global.region {
        Some(region) => Some(region.clone()),
        None => config
            .region()
            .map(|r| args::region(r.as_ref()).map_err(usage))
            .transpose()?,
    };
    let side = Side::aws(&config);
    let target = if global.target_profile.is_some() || global.target_role_arn.is_some() {
        let options = ConnectOptions {
            profile: global
                .target_profile
                .clone()
                .or_else(|| global.profile.clone()),
            assume_role_arn: global.target_role_arn.as_ref().map(ToString::to_string),
            ..options
        };
        Some(Side::aws(&amishare_aws::load(&options).await))
    } else {
        None
    };
    Ok(Session {
        side,
        target,
        clock: Arc::new(WallClock),
        region,
        world: None,
        planner: None,
    })
}

/// A clock whose sleeps return at once and only move its own time forward,
/// so that waits in a dry run cost nothing yet still reach their deadlines.
#[derive(Debug)]
struct Skipping {
    inner: Arc<dyn Clock>,
    skipped: std::sync::Mutex<std::time::Duration>,
}

impl Skipping {
    fn new(inner: Arc<dyn Clock>) -> Skipping {
        Skipping {
            inner,
            skipped: std::sync::Mutex::new(std::time::Duration::ZERO),
        }
    }
}

#[async_trait::async_trait]
impl Clock for Skipping {
    fn now(&self) -> std::time::Duration {
        let skipped = *self.skipped.lock().unwrap_or_else(|e| e.into_inner());
        self.inner.now() + skipped
    }

    async fn sleep(&self, duration: std::time::Duration) {
        *self.skipped.lock().unwrap_or_else(|e| e.into_inner()) += duration;
        tokio::task::yield_now().await;
    }
}
