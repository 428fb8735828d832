//! A lease's way into its container, for the SSH front: the main process's console, commands
//! run beside it, terminal sizes and exit codes. The front holds a [`Lease`], never the engine:
//! these go through the scheduler, which took the console before the container started.

use std::sync::Arc;

use super::{Inner, Lease, Phase, StopReason};
use crate::runtime::{Attached, ExecSpec, RuntimeError, TtySize};

impl Lease {
    /// The container's main process's stdio: the one attached before its start when this is
    /// the first session to ask, else a new attachment (which sees output from now on).
    pub async fn attach(&self) -> Result<Attached, RuntimeError> {
        let inner = self.inner("attaching to the container")?;
        let console = {
            let mut st = inner.lock();
            st.containers
                .get_mut(&self.container)
                .and_then(|c| c.console.take())
        };
        match console {
            Some(console) => Ok(console),
            None => inner
                .runtime
                .attach(&self.container_id)
                .await
                .inspect_err(|e| inner.runtime_error("attach", e)),
        }
    }

    /// Runs a command in the container.
    pub async fn exec(&self, spec: &ExecSpec) -> Result<Attached, RuntimeError> {
        let inner = self.inner("running a command in the container")?;
        inner
            .runtime
            .exec(&self.container_id, spec)
            .await
            .inspect_err(|e| inner.runtime_error("exec", e))
    }

    /// Resizes the terminal of the console (`exec_id` `None`) or of a command.
    pub async fn resize(&self, exec_id: Option<&str>, size: TtySize) -> Result<(), RuntimeError> {
        let inner = self.inner("resizing a terminal")?;
        inner
            .runtime
            .resize(&self.container_id, exec_id, size)
            .await
    }

    /// Sends `signal` (`TERM`, `INT`, …) to the console's process (`exec_id` `None`) or to
    /// a command's.
    pub async fn signal(&self, exec_id: Option<&str>, signal: &str) -> Result<(), RuntimeError> {
        let inner = self.inner("sending a signal")?;
        inner
            .runtime
            .signal(&self.container_id, exec_id, signal)
            .await
    }

    /// The exit code of a command (`exec_id`) or of the main process; `None` while it runs.
    pub async fn exit_code(&self, exec_id: Option<&str>) -> Result<Option<i64>, RuntimeError> {
        let inner = self.inner("reading an exit code")?;
        if let Some(exec) = exec_id {
            return inner.runtime.exec_exit_code(exec).await;
        }
        match inner.runtime.inspect(&self.container_id).await {
            Ok(info) => Ok(if info.running { None } else { info.exit_code }),
            // The scheduler removes a container that died; its record of the death remains.
            Err(e) if e.not_found => match &*self.phase.borrow() {
                Phase::Gone(StopReason::Died(code)) | Phase::Stopping(StopReason::Died(code)) => {
                    Ok(*code)
                }
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Whether Orca is stopping (or has stopped) the container for a reason of its own, rather
    /// than its main process having exited.
    pub fn stopped_by_orca(&self) -> bool {
        match &*self.phase.borrow() {
            Phase::Stopping(reason) | Phase::Gone(reason) => !matches!(reason, StopReason::Died(_)),
            _ => false,
        }
    }

    fn inner(&self, doing: &str) -> Result<Arc<Inner>, RuntimeError> {
        self.guard
            .inner
            .upgrade()
            .ok_or_else(|| RuntimeError::new(doing, "the gateway is shutting down"))
    }
}
