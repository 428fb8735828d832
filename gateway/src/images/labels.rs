//! Label parsing (placeholder: being written).
use super::{ImageSpec, LabelError};
use std::collections::HashMap;
/// Prefix of Orca's image labels.
pub const LABEL_PREFIX: &str = "orca.";
/// Parses labels.
pub fn parse_labels(_id: &str, _reference: &str, _labels: &HashMap<String, String>) -> Result<ImageSpec, Vec<LabelError>> { todo!() }
