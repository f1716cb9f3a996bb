//! The world's eventual consistency and the copies that fail inside EC2
//! (`docs/spec/kms.md` §A9, `docs/spec/ec2.md` §B19).
//!
//! KMS and EC2 are eventually consistent: a key, alias, grant, image or
//! launch permission just made may not show to the next read. With a
//! [`Consistency::visibility_delay`] the world records when each such thing
//! was made and hides it from reads until the delay has passed; with a
//! [`Consistency::copy_failure`] chance a new copy goes `failed` as if EC2
//! had met an internal error. Both are off by default, and then cost one
//! comparison per call that makes or reads such a thing.

use std::collections::BTreeMap;
use std::time::Duration;

use amishare_core::store::LaunchPermission;
use amishare_core::{AccountId, AliasName, GrantId, ImageId, KeyId, Region};

use amishare_core::hash::fnv1a;

use crate::ids::IdGen;

/// How eventually consistent a [`World`](crate::World) is, and how often a
/// copy fails inside EC2; set with
/// [`World::set_consistency`](crate::World::set_consistency).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Consistency {
    /// How long a new key, alias, grant, image or launch permission stays
    /// invisible to reads. Only things made while it is non-zero are hidden.
    pub visibility_delay: Duration,
    /// The chance that a new copy goes `failed` with an internal error.
    pub copy_failure: f64,
    /// Seeds the copies' draws: whether a copy fails follows from the seed
    /// and the copy's image ID alone, so a run can be replayed.
    pub seed: u64,
}

impl Consistency {
    /// Everything visible at once, and no copy failing by chance: AWS on a
    /// good day, and the default.
    pub const IMMEDIATE: Consistency = Consistency {
        visibility_delay: Duration::ZERO,
        copy_failure: 0.0,
        seed: 0,
    };
}

impl Default for Consistency {
    fn default() -> Consistency {
        Consistency::IMMEDIATE
    }
}

/// What the world's eventual consistency and copy failures did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsistencyTally {
    /// Reads that did not see something new (one per thing hidden).
    pub hidden: usize,
    /// Copies that failed by chance.
    pub failed_copies: usize,
}

/// A thing whose creation reads may not see yet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Made {
    /// A KMS key (key IDs are unique across the world).
    Key(KeyId),
    /// An alias of an account in a region.
    Alias(AccountId, Region, AliasName),
    /// A grant (grant IDs are unique across the world).
    Grant(GrantId),
    /// An image, made or copied.
    Image(ImageId),
    /// A launch permission added to an image.
    LaunchPermission(ImageId, LaunchPermission),
}

/// The world's record of what was made when, behind its lock.
#[derive(Debug, Default)]
pub(crate) struct Eventual {
    pub(crate) setting: Consistency,
    made: BTreeMap<Made, Duration>,
    pub(crate) tally: ConsistencyTally,
}

impl Eventual {
    /// Whether new things are hidden for a while.
    pub(crate) fn is_delayed(&self) -> bool {
        !self.setting.visibility_delay.is_zero()
    }

    /// Notes that `what` was made at `now`, when visibility is delayed; a
    /// thing made again keeps its first time.
    pub(crate) fn made(&mut self, now: Duration, what: impl FnOnce() -> Made) {
        if self.is_delayed() {
            self.made.entry(what()).or_insert(now);
        }
    }

    /// Whether `what` is still invisible at `now`, counting the read it is
    /// hidden from.
    pub(crate) fn hides(&mut self, now: Duration, what: impl FnOnce() -> Made) -> bool {
        let delay = self.setting.visibility_delay;
        if delay.is_zero() || self.made.is_empty() {
            return false;
        }
        let hidden = self
            .made
            .get(&what())
            .is_some_and(|made| now < *made + delay);
        self.tally.hidden += usize::from(hidden);
        hidden
    }

    /// `items` without those still invisible at `now`.
    pub(crate) fn visible<T>(
        &mut self,
        now: Duration,
        mut items: Vec<T>,
        what: impl Fn(&T) -> Made,
    ) -> Vec<T> {
        if self.is_delayed() && !self.made.is_empty() {
            items.retain(|item| !self.hides(now, || what(item)));
        }
        items
    }

    /// Whether the new copy `image` fails inside EC2, counted when it does.
    pub(crate) fn copy_fails(&mut self, image: &ImageId) -> bool {
        let chance = self.setting.copy_failure;
        if chance <= 0.0 {
            return false;
        }
        let fails = draw(self.setting.seed, image.as_str()) < chance;
        self.tally.failed_copies += usize::from(fails);
        fails
    }
}

/// A uniform draw in `[0, 1)` from `seed` and `name`: the first number of
/// the splitmix64 sequence seeded by the seed and the name's FNV-1a hash.
fn draw(seed: u64, name: &str) -> f64 {
    IdGen::new(seed ^ fnv1a(name)).next_unit()
}
