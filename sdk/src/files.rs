//! The read-only directory an operator may grant a resolver (`files` in its `[[resolver]]`).
//!
//! The gateway mounts it at [`ROOT`] inside the component; nothing else of the host's file
//! system is visible.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Where the granted directory appears inside the component.
pub const ROOT: &str = "/files";

/// The path of `name` inside the granted directory, refusing names that would leave it
/// (absolute paths, `..`).
pub fn path(name: &str) -> io::Result<PathBuf> {
    let relative = Path::new(name);
    let plain = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if name.is_empty() || !plain {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{name}` is not a plain relative file name inside {ROOT}"),
        ));
    }
    Ok(Path::new(ROOT).join(relative))
}

/// Reads `name` from the granted directory; `Ok(None)` when it does not exist.
pub fn read_to_string(name: &str) -> io::Result<Option<String>> {
    match std::fs::read_to_string(path(name)?) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
