//! The gateway's log, tagged with the resolver's name (the host `log` import).

use crate::bindings::orca::identity::log::{Level, log};

/// Detail for debugging a resolver; hidden unless the operator asks for it.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// A normal event.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Something is wrong but the call goes on.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// The call failed.
pub fn error(message: &str) {
    log(Level::Error, message);
}
