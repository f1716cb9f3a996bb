//! One SDK client per region, built on first use from a base configuration
//! with a region override, and kept.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use amishare_core::Region;

/// An SDK client that can be rebuilt for another region from its base configuration.
pub(crate) trait RegionalClient: Clone {
    /// The service configuration the client is built from.
    type Config: Clone;

    /// A client of `base` with the region replaced.
    fn for_region(base: &Self::Config, region: &Region) -> Self;
}

impl RegionalClient for aws_sdk_kms::Client {
    type Config = aws_sdk_kms::Config;

    fn for_region(base: &aws_sdk_kms::Config, region: &Region) -> Self {
        let region = aws_sdk_kms::config::Region::new(region.to_string());
        aws_sdk_kms::Client::from_conf(base.to_builder().region(region).build())
    }
}

impl RegionalClient for aws_sdk_ec2::Client {
    type Config = aws_sdk_ec2::Config;

    fn for_region(base: &aws_sdk_ec2::Config, region: &Region) -> Self {
        let region = aws_sdk_ec2::config::Region::new(region.to_string());
        aws_sdk_ec2::Client::from_conf(base.to_builder().region(region).build())
    }
}

impl RegionalClient for aws_sdk_autoscaling::Client {
    type Config = aws_sdk_autoscaling::Config;

    fn for_region(base: &aws_sdk_autoscaling::Config, region: &Region) -> Self {
        let region = aws_sdk_autoscaling::config::Region::new(region.to_string());
        aws_sdk_autoscaling::Client::from_conf(base.to_builder().region(region).build())
    }
}

/// The clients of one service, one per region. The base configuration keeps
/// everything but the region: credentials, endpoint override, retry and
/// timeout settings, HTTP client and interceptors.
pub(crate) struct Regional<C: RegionalClient> {
    base: C::Config,
    clients: Mutex<BTreeMap<Region, C>>,
}

impl<C: RegionalClient> Regional<C> {
    /// No client yet; each is built when its region is first asked for.
    pub(crate) fn new(base: C::Config) -> Regional<C> {
        Regional {
            base,
            clients: Mutex::new(BTreeMap::new()),
        }
    }

    /// The client for `region`, built and kept on first use.
    pub(crate) fn get(&self, region: &Region) -> C {
        // A poisoned lock only means another thread panicked while inserting;
        // the map itself is always consistent.
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        clients
            .entry(region.clone())
            .or_insert_with(|| C::for_region(&self.base, region))
            .clone()
    }

    /// The regions that have a client.
    pub(crate) fn regions(&self) -> Vec<Region> {
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }
}

impl<C: RegionalClient> fmt::Debug for Regional<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Regional")
            .field("regions", &self.regions())
            .finish_non_exhaustive()
    }
}
