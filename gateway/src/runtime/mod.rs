//! The container engine, behind a trait.
//!
//! Only the scheduler calls the runtime. [`docker::DockerRuntime`] speaks the Docker API through
//! bollard; unit tests of the scheduler use an in-memory fake. Errors say what Docker said and
//! what was being done ("creating container for image `shell` (sha256:…): no such image").

pub mod docker;
#[cfg(test)]
pub(crate) mod fake;
mod labels;

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use tokio::io::AsyncWrite;

use crate::error::ErrorSource;
use crate::images::{ReadyCheck, ResourceLimits};

pub use labels::{ManagedLabels, PREFIX as MANAGED_LABEL_PREFIX, managed_filter};

/// A stream of events from the engine.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<RuntimeEvent, RuntimeError>> + Send>>;

/// Output frames of an attach or exec (stdout and stderr are told apart without a TTY).
pub type OutputStream = Pin<Box<dyn Stream<Item = Result<Output, RuntimeError>> + Send>>;

/// The container engine as the scheduler sees it.
#[async_trait]
pub trait Runtime: Send + Sync + std::fmt::Debug + 'static {
    /// Every image that carries at least one `orca.*` label.
    async fn list_images(&self) -> Result<Vec<ImageInfo>, RuntimeError>;

    /// Every container (running or not) labelled as managed by this gateway instance.
    async fn list_managed(&self, instance: &str) -> Result<Vec<ContainerInfo>, RuntimeError>;

    /// Creates (does not start) a container; returns its id.
    async fn create(&self, spec: &CreateSpec) -> Result<String, RuntimeError>;

    /// Starts a created container.
    async fn start(&self, id: &str) -> Result<(), RuntimeError>;

    /// Current state of one container.
    async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError>;

    /// Sends the stop signal, waits up to `grace`, then kills. Stopping a stopped or missing
    /// container is not an error.
    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError>;

    /// Removes a container (forcibly, with its anonymous volumes). Removing a missing
    /// container is not an error.
    async fn remove(&self, id: &str) -> Result<(), RuntimeError>;

    /// One readiness probe of `check` against the container at `addr`; `Ok(true)` when ready.
    async fn probe(&self, addr: IpAddr, port: Option<u16>, check: &ReadyCheck) -> bool;

    /// Container and image events, from now on. The stream ends or yields an error when the
    /// engine connection breaks; the caller resubscribes and resynchronises.
    fn events(&self) -> EventStream;

    /// Attaches to the main process's stdio (call before `start` to lose no early output).
    async fn attach(&self, id: &str) -> Result<Attached, RuntimeError>;

    /// Runs a command in a running container.
    async fn exec(&self, id: &str, exec: &ExecSpec) -> Result<Attached, RuntimeError>;

    /// Resizes the TTY of a container (`exec_id` `None`) or of an exec.
    async fn resize(
        &self,
        id: &str,
        exec_id: Option<&str>,
        size: TtySize,
    ) -> Result<(), RuntimeError>;

    /// Exit code of a finished exec, `None` while it runs.
    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, RuntimeError>;

    /// Sends `signal` (a name without `SIG`, such as `TERM`) to the main process of a
    /// container (`exec_id` `None`) or to the process of a running exec.
    async fn signal(
        &self,
        id: &str,
        exec_id: Option<&str>,
        signal: &str,
    ) -> Result<(), RuntimeError>;
}

/// An image that carries `orca.*` labels.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInfo {
    /// Content id, `sha256:…`.
    pub id: String,
    /// Tags such as `orca-web:latest`; empty for dangling images.
    pub repo_tags: Vec<String>,
    /// All labels of the image.
    pub labels: HashMap<String, String>,
    /// Creation time, seconds since the epoch.
    pub created: i64,
}

/// What the scheduler asks the engine to create.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateSpec {
    /// Container name (unique per engine): `orca-<instance>-<image>-<suffix>`.
    pub name: String,
    /// Image content id to create from, never a tag (a retag must not change a running plan).
    pub image_id: String,
    /// Orca's image name, for error messages.
    pub image_name: String,
    /// Labels naming Orca, the image, the spec hash and the gateway instance.
    pub labels: HashMap<String, String>,
    /// Network the container joins; Orca reaches it there.
    pub network: String,
    /// Signal used to stop the container.
    pub stop_signal: Option<String>,
    /// Grace between stop signal and kill.
    pub stop_grace: Duration,
    /// Memory, CPU and pid limits.
    pub limits: ResourceLimits,
    /// Keep stdin open with a TTY so `attach` gets an interactive shell.
    pub interactive: bool,
    /// Keep stdin open (without a TTY unless `interactive`): an image whose main process is a
    /// shell, served by `exec`, then waits for input instead of exiting at once.
    pub stdin_open: bool,
}

/// A container as the engine reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    /// Full container id.
    pub id: String,
    /// Name without the leading slash.
    pub name: String,
    /// All labels.
    pub labels: HashMap<String, String>,
    /// Whether it is running now.
    pub running: bool,
    /// Engine state word (`created`, `running`, `exited`, …).
    pub state: String,
    /// Exit code when stopped.
    pub exit_code: Option<i64>,
    /// Address on the configured network, when running.
    pub address: Option<IpAddr>,
    /// Creation time.
    pub created: SystemTime,
}

/// An event the scheduler reacts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeEvent {
    /// A container's main process exited (or it was killed or OOM-killed).
    ContainerDied {
        /// Container id.
        id: String,
        /// Exit code when the engine reported one.
        exit_code: Option<i64>,
    },
    /// A container was removed.
    ContainerRemoved {
        /// Container id.
        id: String,
    },
    /// Images were added, tagged, untagged or removed: the catalogue should be refreshed.
    ImagesChanged,
}

/// A command to run in a container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecSpec {
    /// Argument vector.
    pub cmd: Vec<String>,
    /// `KEY=value` pairs.
    pub env: Vec<String>,
    /// Allocate a TTY.
    pub tty: bool,
    /// Initial TTY size.
    pub size: Option<TtySize>,
    /// User to run as (image default when `None`).
    pub user: Option<String>,
}

/// A terminal size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtySize {
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
}

/// One frame of output from an attach or exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Standard output (or the TTY).
    Stdout(Bytes),
    /// Standard error (only without a TTY).
    Stderr(Bytes),
}

/// The two halves of an attach or exec.
pub struct Attached {
    /// Exec id for `resize` and `exec_exit_code`; `None` for an attach.
    pub exec_id: Option<String>,
    /// Output frames.
    pub output: OutputStream,
    /// Standard input.
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
}

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attached")
            .field("exec_id", &self.exec_id)
            .finish_non_exhaustive()
    }
}

/// A failed engine request: what Orca was doing, and what the engine said.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{doing}: {said}")]
pub struct RuntimeError {
    /// What was being done, such as "creating container for image `shell` (sha256:…)".
    pub doing: String,
    /// What the engine said.
    pub said: String,
    /// Whether the object was missing (404), which callers often treat as done.
    pub not_found: bool,
}

impl RuntimeError {
    /// An error with context.
    pub fn new(doing: impl Into<String>, said: impl Into<String>) -> Self {
        Self {
            doing: doing.into(),
            said: said.into(),
            not_found: false,
        }
    }

    /// The party to blame: always the engine.
    pub fn source_side(&self) -> ErrorSource {
        ErrorSource::Docker
    }
}
