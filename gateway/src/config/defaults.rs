//! Named defaults (placeholder: being written).
use super::Config;
pub(super) fn embedded() -> Config { todo!("config defaults") }
