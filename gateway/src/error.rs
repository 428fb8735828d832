//! Which side of a failure is to blame.
//!
//! Every stage has its own `thiserror` type; each can say which party failed so that the one
//! place that turns errors into responses (an HTTP status page, an SSH message, a CLI exit)
//! can choose the status and the wording without knowing the stage's internals.

use std::fmt;

/// The party responsible for a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorSource {
    /// The client sent something wrong (bad host, unknown image, no permission).
    Client,
    /// The user's container failed (exited, never became ready).
    Container,
    /// An identity plugin failed (trap, timeout, malformed answer).
    Plugin,
    /// The Docker engine refused or failed a request.
    Docker,
    /// Configuration or image labels are wrong; the operator must fix them.
    Operator,
    /// Orca itself (a bug, an unwritable state directory, shutdown in progress).
    Internal,
}

impl ErrorSource {
    /// A short lowercase name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorSource::Client => "client",
            ErrorSource::Container => "container",
            ErrorSource::Plugin => "plugin",
            ErrorSource::Docker => "docker",
            ErrorSource::Operator => "operator",
            ErrorSource::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
