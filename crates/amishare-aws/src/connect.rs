//! How amishare connects to AWS: [`ConnectOptions`] and [`load`], over
//! aws-config's own providers (profiles, the default credential chain, and
//! `AssumeRoleProvider` for a role). The endpoint override is how LocalStack
//! and other local servers are reached.

use std::path::PathBuf;
use std::time::Duration;

use amishare_core::Region;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_sdk_sts::config::SharedCredentialsProvider;

/// The session name of role sessions amishare assumes, as CloudTrail shows it.
pub const ROLE_SESSION_NAME: &str = "amishare";

/// How to reach AWS and as whom.
///
/// Every field is optional but `max_attempts`; what is left unset comes from
/// the SDK's usual sources (environment variables, `~/.aws/config`,
/// instance or container credentials).
///
/// # Retries
///
/// One layer retries each call. By default that is amishare's own
/// ([`amishare_core::retry::Retrying`]), which every `amishare_core::Flow`
/// puts in front of its stores: it knows which calls are safe to repeat
/// after a server error, backs off on the flow's clock and is tuned with
/// [`amishare_core::retry::RetryOptions`] (`Flow::with_retry`). So the SDK's
/// own retries are off (`max_attempts: 1`), or the two would multiply.
/// To call the stores without a `Flow`, put them behind
/// `Retrying::new(keys, images, clock, RetryOptions::default())`; or set
/// `max_attempts` above 1 for the SDK's standard retries instead, and then
/// never use those stores under a `Flow`. Credentials a role assumption
/// fetches, outside both, keep the SDK's standard retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// A profile of the AWS config and credentials files. When set, the
    /// credentials come from this profile (static keys, a role chain, SSO or a
    /// credential process), even when credentials are also set in the environment.
    pub profile: Option<String>,
    /// A config file to read profiles from instead of `~/.aws/config` and
    /// `~/.aws/credentials` (or the files `AWS_CONFIG_FILE` and
    /// `AWS_SHARED_CREDENTIALS_FILE` name).
    pub profile_file: Option<PathBuf>,
    /// A role to assume, with `aws_config::sts::AssumeRoleProvider`, on top of
    /// the credentials found otherwise. The session is named [`ROLE_SESSION_NAME`].
    pub assume_role_arn: Option<String>,
    /// The default region: STS's, and the SDK's before a store picks each call's region.
    pub region: Option<Region>,
    /// An endpoint for every service instead of AWS's, such as LocalStack's
    /// `http://127.0.0.1:4566`.
    pub endpoint_url: Option<String>,
    /// How many times the SDK tries a call in all, with its standard retry
    /// strategy (throttling, 5xx and transient network errors are retried,
    /// with exponential backoff). `0` and `1` both mean no retry by the SDK,
    /// the default: see "Retries" above.
    pub max_attempts: u32,
    /// A limit on each call, retries included; none by default.
    pub operation_timeout: Option<Duration>,
}

impl Default for ConnectOptions {
    /// Nothing overridden, and one attempt per call: the retries are
    /// amishare's own (see "Retries" above).
    fn default() -> ConnectOptions {
        ConnectOptions {
            profile: None,
            profile_file: None,
            assume_role_arn: None,
            region: None,
            endpoint_url: None,
            max_attempts: 1,
            operation_timeout: None,
        }
    }
}

/// Loads the SDK configuration that `options` describe, from aws-config's
/// default providers for everything the options leave unset.
///
/// Nothing is checked here: a missing profile or unusable credentials show
/// up as an error of the first call.
pub async fn load(options: &ConnectOptions) -> SdkConfig {
    load_with(aws_config::defaults(BehaviorVersion::latest()), options).await
}

/// Like [`load`], on top of a loader the caller has prepared: with an HTTP
/// client of its own, say, or test credentials. The options win where both
/// set the same thing.
pub async fn load_with(loader: ConfigLoader, options: &ConnectOptions) -> SdkConfig {
    let mut loader =
        loader.retry_config(RetryConfig::standard().with_max_attempts(options.max_attempts.max(1)));
    if let Some(timeout) = options.operation_timeout {
        loader = loader.timeout_config(TimeoutConfig::builder().operation_timeout(timeout).build());
    }
    if let Some(region) = &options.region {
        loader = loader.region(aws_config::Region::new(region.to_string()));
    }
    if let Some(url) = &options.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let files = options.profile_file.as_ref().map(|path| {
        EnvConfigFiles::builder()
            .with_file(EnvConfigFileKind::Config, path)
            .build()
    });
    if let Some(files) = &files {
        loader = loader.profile_files(files.clone());
    }
    if let Some(profile) = &options.profile {
        let mut credentials = ProfileFileCredentialsProvider::builder().profile_name(profile);
        if let Some(files) = &files {
            credentials = credentials.profile_files(files.clone());
        }
        loader = loader
            .profile_name(profile)
            .credentials_provider(credentials.build());
    }
    let base = loader.load().await;
    match &options.assume_role_arn {
        None => base,
        Some(role) => {
            // STS's AssumeRole is not behind amishare's retry layer: the
            // SDK's standard retries are the only ones it gets.
            let sts = base
                .to_builder()
                .retry_config(RetryConfig::standard())
                .build();
            let provider = AssumeRoleProvider::builder(role)
                .session_name(ROLE_SESSION_NAME)
                .configure(&sts)
                .build()
                .await;
            base.into_builder()
                .credentials_provider(SharedCredentialsProvider::new(provider))
                .build()
        }
    }
}
