//! The resolvers built into the `orca` binary (`plugin = "bundled:<name>"`), compiled from
//! `plugins/` by the gateway's build script.

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// The component bytes of bundled resolver `name`.
pub fn get(name: &str) -> Option<&'static [u8]> {
    BUNDLED.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// Names of the bundled resolvers in this build.
pub fn names() -> Vec<&'static str> {
    BUNDLED.iter().map(|(n, _)| *n).collect()
}
