//! The labels Orca puts on the containers it launches.
//!
//! They make a container self-describing, so that a new Orca process (after SIGTERM or
//! `kill -9`) can adopt it: which gateway instance owns it, which image name and spec it was
//! launched for. They live under `orca.gateway.`, a prefix image labels never use.

use std::collections::HashMap;

/// Prefix of every label Orca sets on a container.
pub const PREFIX: &str = "orca.gateway.";
const MANAGED: &str = "orca.gateway.managed";
const INSTANCE: &str = "orca.gateway.instance";
const IMAGE: &str = "orca.gateway.image";
const SPEC: &str = "orca.gateway.spec";

/// What a managed container's labels say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedLabels {
    /// The gateway instance that launched it (`instance` in the config).
    pub instance: String,
    /// Orca's image name (`orca.name`).
    pub image: String,
    /// [`crate::images::ImageSpec::spec_hash`] at launch.
    pub spec_hash: String,
}

impl ManagedLabels {
    /// The labels to set at creation.
    pub fn to_labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (MANAGED.to_string(), "true".to_string()),
            (INSTANCE.to_string(), self.instance.clone()),
            (IMAGE.to_string(), self.image.clone()),
            (SPEC.to_string(), self.spec_hash.clone()),
        ])
    }

    /// Reads them back; `None` when the container is not one of Orca's.
    pub fn from_labels(labels: &HashMap<String, String>) -> Option<Self> {
        if labels.get(MANAGED).map(String::as_str) != Some("true") {
            return None;
        }
        Some(Self {
            instance: labels.get(INSTANCE)?.clone(),
            image: labels.get(IMAGE)?.clone(),
            spec_hash: labels.get(SPEC).cloned().unwrap_or_default(),
        })
    }
}

/// The engine-side label filter selecting one instance's containers (`key=value`).
pub fn managed_filter(instance: &str) -> String {
    format!("{INSTANCE}={instance}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip() {
        let m = ManagedLabels {
            instance: "orca".into(),
            image: "shell".into(),
            spec_hash: "abcd".into(),
        };
        assert_eq!(ManagedLabels::from_labels(&m.to_labels()), Some(m));
        assert_eq!(ManagedLabels::from_labels(&HashMap::new()), None);
    }
}
