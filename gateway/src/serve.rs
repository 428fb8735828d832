//! `orca serve`: assemble the stages and run until shutdown.
//!
//! Today the gateway loads its identity resolvers and runs the image catalogue, the scheduler
//! and the container lifecycle; the HTTPS and SSH listeners and the admin endpoint are
//! assembled here as they land.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::identity::{Identities, LoadError};
use crate::metrics::Metrics;
use crate::runtime::RuntimeError;
use crate::runtime::docker::DockerRuntime;
use crate::scheduler::{Options, Scheduler};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The state directory cannot be created.
    #[error(
        "cannot create the state directory `{path}`: {source}; create it or set `state_dir` to a writable directory"
    )]
    StateDir {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The container engine is unreachable or refused the start-up requests.
    #[error("{0}")]
    Runtime(#[from] RuntimeError),
    /// A resolver could not be loaded.
    #[error("{0}")]
    Identity(#[from] LoadError),
}

/// Runs the gateway until `shutdown` is cancelled. Containers are left running for the next
/// start unless `cleanup`.
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    cleanup: bool,
) -> Result<(), ServeError> {
    std::fs::create_dir_all(&config.state_dir).map_err(|source| ServeError::StateDir {
        path: config.state_dir.display().to_string(),
        source,
    })?;
    let runtime =
        DockerRuntime::connect(config.docker.host.as_deref(), &config.docker.network).await?;
    // Granted directories inside the state directory (the embedded SSH keys directory) are
    // Orca's own to create; any other must exist.
    for dir in config.resolvers.iter().filter_map(|r| r.files.as_ref()) {
        if dir.starts_with(&config.state_dir) {
            std::fs::create_dir_all(dir).map_err(|source| ServeError::StateDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
    }
    let metrics = Arc::new(Metrics::new());
    // Resolvers first: a plugin that does not load is a configuration error, reported before
    // anything touches the container engine.
    let identities =
        Identities::load(&config.resolvers, &config.state_dir, (*metrics).clone()).await?;
    let scheduler =
        Scheduler::start(Arc::new(runtime), Options::from_config(&config), metrics).await?;
    let rows = scheduler.catalogue().rows();
    let usable = rows
        .iter()
        .filter(|r| r.spec.is_ok() && r.shadowed_by.is_none())
        .count();
    tracing::info!(
        images = usable,
        disabled = rows.iter().filter(|r| r.spec.is_err()).count(),
        containers = scheduler.status().containers.len(),
        instance = %config.instance,
        resolvers = identities.plugins().len(),
        "orca is running"
    );
    shutdown.cancelled().await;
    tracing::info!(cleanup, "shutting down");
    scheduler.shutdown(cleanup).await;
    identities.flush();
    Ok(())
}
