//! TOML mirror (placeholder: being written).
use super::Config;
use std::path::{Path, PathBuf};
/// One configuration error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);
/// All configuration errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}")]
pub struct ConfigErrors(pub Vec<ConfigError>);
pub(super) fn load(_p: &Path) -> Result<Config, ConfigErrors> { todo!() }
pub(super) fn parse(_t: &str, _b: &Path, _s: Option<PathBuf>) -> Result<Config, ConfigErrors> { todo!() }
pub(super) fn render(_c: &Config) -> String { todo!() }
