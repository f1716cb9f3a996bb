//! The kinds of case a property test ran: counted while it runs, printed
//! (`cargo test -- --nocapture` shows them) and held to bounds after it.

use std::cell::RefCell;
use std::collections::BTreeMap;

/// Below this many cases a mix says little, and is printed but not held to
/// its bounds (`PROPTEST_CASES` may ask for fewer).
const FEWEST_CASES: usize = 1_000;

/// How often each kind of case came up in one property's run.
#[derive(Debug)]
pub(crate) struct Mix {
    property: &'static str,
    counts: RefCell<BTreeMap<&'static str, usize>>,
}

impl Mix {
    /// An empty mix for `property`, with `kinds` counted even when none come up.
    pub(crate) fn new(property: &'static str, kinds: &[&'static str]) -> Mix {
        Mix {
            property,
            counts: RefCell::new(kinds.iter().map(|kind| (*kind, 0)).collect()),
        }
    }

    /// Counts one case of `kind`.
    pub(crate) fn count(&self, kind: &'static str) {
        *self.counts.borrow_mut().entry(kind).or_default() += 1;
    }

    fn total(&self) -> usize {
        self.counts.borrow().values().sum()
    }

    fn share(&self, kind: &str) -> f64 {
        let count = self.counts.borrow().get(kind).copied().unwrap_or(0);
        count as f64 / self.total().max(1) as f64
    }

    /// The bounds `(kind, least, most)` that this mix's shares fall outside,
    /// as messages; none below [`FEWEST_CASES`].
    pub(crate) fn outside(&self, bounds: &[(&str, f64, f64)]) -> Vec<String> {
        let total = self.total();
        if total < FEWEST_CASES {
            return Vec::new();
        }
        bounds
            .iter()
            .filter(|&&(kind, least, most)| !(least..=most).contains(&self.share(kind)))
            .map(|&(kind, least, most)| {
                format!(
                    "{}: {kind} is {:.1} % of {total} cases, outside {:.0}–{:.0} %",
                    self.property,
                    self.share(kind) * 100.0,
                    least * 100.0,
                    most * 100.0
                )
            })
            .collect()
    }

    /// Prints the mix, then asserts that each kind's share is within its
    /// `(kind, least, most)` bounds.
    #[track_caller]
    pub(crate) fn check(&self, bounds: &[(&str, f64, f64)]) {
        let total = self.total();
        let shares: Vec<String> = self
            .counts
            .borrow()
            .iter()
            .map(|(kind, count)| format!("{kind} {:.1} % ({count})", self.share(kind) * 100.0))
            .collect();
        println!("{}: {total} cases: {}", self.property, shares.join(", "));
        if total < FEWEST_CASES {
            println!(
                "{}: under {FEWEST_CASES} cases, the mix is not held to its bounds",
                self.property
            );
        }
        let outside = self.outside(bounds);
        assert!(outside.is_empty(), "{}", outside.join("\n"));
    }
}

#[test]
fn a_mix_outside_its_bounds_is_reported() {
    let mix = Mix::new("p", &["a", "b"]);
    for _ in 0..FEWEST_CASES {
        mix.count("a");
    }
    mix.count("b");
    assert_eq!(mix.outside(&[("a", 0.5, 1.0)]), Vec::<String>::new());
    assert_eq!(
        mix.outside(&[("a", 0.0, 0.9), ("b", 0.2, 1.0)]),
        [
            "p: a is 99.9 % of 1001 cases, outside 0–90 %",
            "p: b is 0.1 % of 1001 cases, outside 20–100 %"
        ]
    );
    // Too few cases to judge.
    let few = Mix::new("p", &["a"]);
    few.count("a");
    assert_eq!(few.outside(&[("a", 0.0, 0.1)]), Vec::<String>::new());
}
