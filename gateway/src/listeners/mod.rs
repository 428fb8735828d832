//! The listeners: where connections arrive. HTTPS (and the optional plain HTTP listener) is
//! served by [`https::serve`] with certificates from [`tls`]; SSH with the protocol settings of
//! [`ssh`] and the host keys of [`host_keys`].

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub mod host_keys;
pub mod https;
pub mod ssh;
pub mod tls;
pub mod workers;

mod prefixed;
mod san;

/// Writes a private key readable by its owner only, created so from the start so it is never
/// briefly world-readable.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
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

/// How long an accept loop pauses when the process is out of file descriptors, so that
/// finishing connections can free some instead of the loop spinning on the same error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Logs an accept error and, when the process is out of resources, pauses before the next
/// accept. Errors about a single connection (reset before accept) need no pause.
pub(crate) async fn accept_error(error: io::Error, shutdown: &CancellationToken) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    ) {
        tracing::debug!(%error, "accept failed for one connection");
        return;
    }
    tracing::error!(%error, "accept failed; retrying shortly");
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
    }
}
