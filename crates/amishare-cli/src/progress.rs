//! Progress of waits: a spinner on a terminal, plain lines otherwise.
//!
//! Core logs each poll that found a resource still pending as a tracing
//! event with target `amishare::wait`; this layer turns them into progress
//! on stderr, so stdout keeps only the command's result.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// The tracing target of core's polls.
const WAIT_TARGET: &str = "amishare::wait";

/// Shows core's waits.
pub(crate) struct Progress {
    spinner: Option<ProgressBar>,
}

impl Progress {
    /// A spinner when stderr is a terminal, plain lines otherwise.
    pub(crate) fn new() -> Progress {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress { spinner }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
    }
}

#[derive(Default)]
struct Fields {
    what: String,
    state: String,
    elapsed: u64,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "what" => value.clone_into(&mut self.what),
            "state" => value.clone_into(&mut self.state),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "elapsed_secs" {
            self.elapsed = value;
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "what" => self.what = format!("{value:?}").trim_matches('"').to_owned(),
            "state" => self.state = format!("{value:?}"),
            _ => {}
        }
    }
}

impl<S: Subscriber> Layer<S> for Progress {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != WAIT_TARGET {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let line = format!(
            "waiting for {}: {} after {}s",
            fields.what, fields.state, fields.elapsed
        );
        match &self.spinner {
            Some(bar) => bar.set_message(line),
            None => eprintln!("amishare: {line}"),
        }
    }
}
