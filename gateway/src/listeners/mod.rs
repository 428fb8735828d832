//! The listeners: where connections arrive. HTTPS (and the optional plain HTTP listener) is
//! served by [`https::serve`] with certificates from [`tls`]; SSH with the protocol settings of
//! [`ssh`] and the host keys of [`host_keys`].

use std::io::Write;
use std::path::Path;

pub mod host_keys;
pub mod https;
pub mod ssh;
pub mod tls;
pub mod workers;

mod prefixed;
mod san;

/// Writes a private key readable by its owner only, created so from the start so it is never
/// briefly world-readable.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // An existing file keeps its mode on open; tighten it as well.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    options.open(path)?.write_all(bytes)
}
