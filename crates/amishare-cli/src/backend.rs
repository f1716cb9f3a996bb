//! Where the commands act: AWS through the SDK, or a simulated world read
//! from a world file and written back when the command has run.
//!
//! A command on a world file holds the file's lock (`amishare_sim::WorldLock`)
//! from before it reads the file until after it writes it back, so commands
//! on one file take turns and every command's changes are kept.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

#[cfg(feature = "aws")]
use amishare_aws::{
    AwsDirectory, AwsImageStore, AwsKeyStore, AwsScalingStore, ConnectOptions, WallClock,
};
use amishare_core::diagnose::Directory;
use amishare_core::plan::{planning, Planner};
use amishare_core::retry::{RetryOptions, Retrying};
use amishare_core::{Clock, Flow, PrincipalArn, Region, Stores};
use amishare_sim::{LockHolder, World, WorldLock};

use crate::args;
use crate::fail::{usage, Failure};

/// Which backend the commands use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BackendKind {
    /// AWS, with the credentials of `--profile` or the SDK's default chain
    /// (in builds with the `aws` feature, the default build).
    Aws,
    /// A simulated world kept in the file `--world`.
    Sim,
}

/// Options every command takes, shown apart in each command's help.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Global options")]
pub(crate) struct Global {
    /// Where to act: AWS, or a simulated world kept in a file.
    #[arg(long, value_enum, default_value = "aws", global = true)]
    pub(crate) backend: BackendKind,
    /// The simulated world of `--backend sim`: a JSON file, such as a copy of
    /// testdata/worlds/seed.json.
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) world: Option<PathBuf>,
    /// How long to wait, in seconds, while another command uses the world file.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, global = true)]
    pub(crate) lock_wait: u64,
    /// The profile to act as: a named profile of your AWS configuration, or
    /// a profile of the world file.
    #[arg(long, global = true)]
    pub(crate) profile: Option<String>,
    /// The target account's profile, for commands that look from both sides
    /// (status, doctor).
    #[arg(long, value_name = "PROFILE", global = true)]
    pub(crate) target_profile: Option<String>,
    /// A role in the target account to assume for the target side (AWS only).
    #[arg(long, value_name = "ARN", value_parser = args::principal, global = true)]
    pub(crate) target_role_arn: Option<PrincipalArn>,
    /// The region (default: the profile's region, on AWS).
    #[arg(long, value_parser = args::region, global = true)]
    pub(crate) region: Option<Region>,
    /// Send every AWS call to this URL, such as LocalStack's or `amishare sim serve`'s.
    #[arg(long, value_name = "URL", global = true)]
    pub(crate) endpoint_url: Option<String>,
    /// Print the result as JSON on stdout (each document is described in docs/json.md).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Show every change the command would make (each call, the key-policy
    /// diff) and make none.
    #[arg(long, global = true)]
    pub(crate) dry_run: bool,
}

/// The stores of one principal.
#[derive(Debug, Clone)]
pub(crate) struct Side {
    /// KMS (and STS), EC2, and EC2 Auto Scaling with launch templates: core's
    /// one bundle of a principal's stores.
    pub(crate) stores: Stores,
    /// IAM, where the doctor reads principals' policies (AWS only: on the
    /// simulation the world itself is the directory).
    pub(crate) directory: Option<Arc<dyn Directory>>,
}

impl std::ops::Deref for Side {
    type Target = Stores;

    fn deref(&self) -> &Stores {
        &self.stores
    }
}

#[cfg(feature = "aws")]
impl Side {
    /// The AWS stores of one SDK configuration.
    fn aws(config: &amishare_aws::SdkConfig) -> Side {
        Side {
            stores: Stores::new(
                Arc::new(AwsKeyStore::new(config)),
                Arc::new(AwsImageStore::new(config)),
            )
            .with_scaling(Arc::new(AwsScalingStore::new(config))),
            directory: Some(Arc::new(AwsDirectory::new(config))),
        }
    }
}

impl Side {
    /// The same stores behind core's retry layer, for the calls a command
    /// makes outside a `Flow` (which puts its own in front of the stores):
    /// every call is retried by that one layer, never by two.
    fn behind_retries(&self, clock: Arc<dyn Clock>) -> Side {
        let mut retrying = Retrying::new(
            self.keys.clone(),
            self.images.clone(),
            clock,
            RetryOptions::default(),
        );
        if let Some(scaling) = &self.scaling {
            retrying = retrying.with_scaling(scaling.clone());
        }
        let retrying = Arc::new(retrying);
        let mut stores = Stores::new(retrying.clone(), retrying.clone());
        if self.scaling.is_some() {
            stores = stores.with_scaling(retrying);
        }
        Side {
            stores,
            directory: self.directory.clone(),
        }
    }
}

/// What a command acts through.
#[derive(Debug)]
pub(crate) struct Session {
    /// The principal of `--profile`, behind core's retry layer.
    pub(crate) side: Side,
    /// The principal of `--target-profile` / `--target-role-arn`, if given,
    /// behind core's retry layer.
    pub(crate) target: Option<Side>,
    /// The stores of `--profile` as the flow takes them, without retries:
    /// the flow retries itself.
    stores: Side,
    /// The stores of the target side as its flow takes them, without retries.
    target_stores: Option<Side>,
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
            BackendKind::Aws => {
                if global.world.is_some() {
                    return Err(usage("--world applies to --backend sim only"));
                }
                open_aws(global).await?
            }
        };
        if global.dry_run {
            let (planner, keys, images) =
                planning(session.side.keys.clone(), session.side.images.clone());
            let mut stores = Stores::new(keys, images);
            if let Some(scaling) = &session.side.scaling {
                stores = stores.with_scaling(planner.scaling(scaling.clone()));
            }
            session.side = Side {
                stores,
                directory: session.side.directory.clone(),
            };
            session.planner = Some(planner);
            #[cfg(feature = "aws")]
            if global.backend == BackendKind::Aws {
                // What a dry run "creates" is ready at once: never wait for real.
                session.clock = Arc::new(Skipping::new(session.clock.clone()));
            }
        }
        session.stores = session.side.clone();
        session.side = session.side.behind_retries(session.clock.clone());
        session.target = session
            .target
            .map(|target| target.behind_retries(session.clock.clone()));
        Ok(session)
    }

    /// The flow acting as `--profile`.
    pub(crate) fn flow(&self) -> Flow {
        Flow::over(&self.stores, self.clock.clone())
    }

    /// The flow acting as the target side, when one was given.
    pub(crate) fn target_flow(&self) -> Option<Flow> {
        self.target_stores
            .as_ref()
            .map(|stores| Flow::over(stores, self.clock.clone()))
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
        stores: side.clone(),
        side,
        target_stores: target.clone(),
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
        stores: Stores::new(client.clone(), client.clone()).with_scaling(client),
        directory: None,
    }))
}

/// What a build without the AWS backend answers `--backend aws` with.
#[cfg(not(feature = "aws"))]
pub(crate) const NO_AWS: &str = "this amishare was built without the AWS backend (feature `aws`), for the simulation alone: \
use --backend sim --world FILE, or build the full command with `cargo install --path crates/amishare-cli` \
(or `cargo build -p amishare-cli`, without --no-default-features)";

#[cfg(not(feature = "aws"))]
async fn open_aws(_global: &Global) -> Result<Session, Failure> {
    Err(usage(NO_AWS))
}

#[cfg(feature = "aws")]
async fn open_aws(global: &Global) -> Result<Session, Failure> {
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
        stores: side.clone(),
        side,
        target_stores: target.clone(),
        target,
        clock: Arc::new(WallClock),
        region,
        world: None,
        planner: None,
    })
}

/// A clock whose sleeps return at once and only move its own time forward,
/// so that waits in a dry run cost nothing yet still reach their deadlines.
#[cfg(feature = "aws")]
#[derive(Debug)]
struct Skipping {
    inner: Arc<dyn Clock>,
    skipped: std::sync::Mutex<std::time::Duration>,
}

#[cfg(feature = "aws")]
impl Skipping {
    fn new(inner: Arc<dyn Clock>) -> Skipping {
        Skipping {
            inner,
            skipped: std::sync::Mutex::new(std::time::Duration::ZERO),
        }
    }
}

#[cfg(feature = "aws")]
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
