//! How a command fails: bad input (exit 2, nothing was called) or an
//! operation that failed (exit 1).

use std::fmt;
use std::process::ExitCode;

use amishare_core::ErrorKind;

/// A failed command.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The input is wrong; no call was made.
    Usage(String),
    /// The operation failed.
    Failed(anyhow::Error),
}

impl Failure {
    /// An operation failure from anything that is an error.
    pub(crate) fn failed(err: impl Into<anyhow::Error>) -> Failure {
        Failure::Failed(err.into())
    }

    /// The process exit code.
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Usage(_) => ExitCode::from(2),
            Failure::Failed(_) => ExitCode::from(1),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(text) => f.write_str(text),
            Failure::Failed(err) => write!(f, "{err:#}"),
        }
    }
}

impl From<amishare_core::Error> for Failure {
    fn from(err: amishare_core::Error) -> Failure {
        Failure::Failed(err.into())
    }
}

impl From<anyhow::Error> for Failure {
    fn from(err: anyhow::Error) -> Failure {
        Failure::Failed(err)
    }
}

impl Failure {
    /// A request core refused as invalid is bad input (exit 2), but only
    /// when nothing changed: not after a write was sent (the error says so,
    /// or `changed` does, for a simulated world that counted a change).
    /// Exit 2 promises that nothing changed.
    pub(crate) fn bad_input_unless(self, changed: bool) -> Failure {
        match self {
            Failure::Failed(err) => match err.downcast_ref::<amishare_core::Error>() {
                Some(core)
                    if core.kind() == ErrorKind::InvalidInput
                        && !core.changed_something()
                        && !changed =>
                {
                    Failure::Usage(format!("{err:#}"))
                }
                _ => Failure::Failed(err),
            },
            Failure::Usage(text) if changed => Failure::Failed(anyhow::anyhow!(text)),
            usage => usage,
        }
    }
}

/// Bad input.
pub(crate) fn usage(text: impl Into<String>) -> Failure {
    Failure::Usage(text.into())
}
