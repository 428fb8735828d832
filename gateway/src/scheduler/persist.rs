//! Bindings persisted in the state directory, so a restart (even `kill -9`) keeps users on
//! their containers.
//!
//! The file is rewritten whole (a few hundred bytes per user) through a temporary file and a
//! rename, so a crash leaves either the old or the new version, never a torn one. Writes
//! happen on every binding change (coalesced by a `Notify`) and every few seconds for
//! activity times. A write failure is logged and counted; the gateway keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Inner;
use super::state::{DrainReason, State};
use crate::clock::{Clock, unix_secs};

const FILE_NAME: &str = "scheduler.json";
const VERSION: u32 = 1;
/// How often activity times are saved even without a binding change.
const PERIODIC: Duration = Duration::from_secs(10);

/// The persisted part of the scheduler's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Persisted {
    pub(crate) version: u32,
    pub(crate) instance: String,
    pub(crate) containers: Vec<PContainer>,
    pub(crate) bindings: Vec<PBinding>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PContainer {
    pub(crate) name: String,
    pub(crate) image: String,
    pub(crate) served: u32,
    pub(crate) drain: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PBinding {
    pub(crate) user: String,
    pub(crate) image: String,
    pub(crate) container: String,
    pub(crate) bound_at: u64,
    pub(crate) last_active: u64,
    /// For the audit log's session end after a restart (absent in files of older versions).
    #[serde(default)]
    pub(crate) protocol: Option<String>,
    #[serde(default)]
    pub(crate) client: Option<std::net::SocketAddr>,
    #[serde(default)]
    pub(crate) bytes_in: u64,
    #[serde(default)]
    pub(crate) bytes_out: u64,
}

pub(crate) fn drain_name(d: DrainReason) -> &'static str {
    match d {
        DrainReason::Lifespan => "lifespan",
        DrainReason::Outdated => "outdated",
        DrainReason::ImageGone => "image_gone",
    }
}

pub(crate) fn drain_from(name: &str) -> Option<DrainReason> {
    match name {
        "lifespan" => Some(DrainReason::Lifespan),
        "outdated" => Some(DrainReason::Outdated),
        "image_gone" => Some(DrainReason::ImageGone),
        _ => None,
    }
}

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Reads the persisted state; a missing file is an empty state, and an unreadable one is set
/// aside (renamed `.corrupt`) with a warning rather than stopping the gateway.
pub(crate) fn load(dir: Option<&Path>, instance: &str) -> Persisted {
    let Some(dir) = dir else {
        return Persisted::default();
    };
    let file = path(dir);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Persisted::default(),
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "cannot read persisted bindings; starting without them");
            return Persisted::default();
        }
    };
    match serde_json::from_str::<Persisted>(&text) {
        Ok(p) if p.version == VERSION && p.instance == instance => p,
        Ok(p) => {
            tracing::warn!(file = %file.display(), version = p.version, instance = %p.instance, "persisted bindings belong to another version or instance; ignoring them");
            Persisted::default()
        }
        Err(e) => {
            let aside = file.with_extension("json.corrupt");
            let _ = std::fs::rename(&file, &aside);
            tracing::warn!(file = %file.display(), moved_to = %aside.display(), error = %e, "persisted bindings are corrupt; set aside, starting without them");
            Persisted::default()
        }
    }
}

/// The persisted view of the live state.
pub(crate) fn snapshot(st: &State, clock: &Clock, instance: &str) -> Persisted {
    let mut containers: Vec<PContainer> = st
        .containers
        .values()
        .filter(|c| c.id.is_some())
        .map(|c| PContainer {
            name: c.name.clone(),
            image: c.spec.name.clone(),
            served: c.served,
            drain: c.drain.map(|d| drain_name(d).to_string()),
        })
        .collect();
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    let mut bindings: Vec<PBinding> = st
        .bindings
        .iter()
        .map(|(k, b)| {
            let (bytes_in, bytes_out) = b.activity.bytes();
            PBinding {
                user: k.user.as_str().to_string(),
                image: k.image.clone(),
                container: b.container.clone(),
                bound_at: unix_secs(clock.wall_at(b.bound_at)),
                last_active: unix_secs(clock.wall_at(b.activity.last_active())),
                protocol: Some(b.origin.protocol.to_string()),
                client: b.origin.client,
                bytes_in,
                bytes_out,
            }
        })
        .collect();
    bindings.sort_by(|a, b| (&a.user, &a.image).cmp(&(&b.user, &b.image)));
    Persisted {
        version: VERSION,
        instance: instance.to_string(),
        containers,
        bindings,
    }
}

fn write_atomically(dir: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path(dir))?;
    Ok(())
}

impl Inner {
    pub(super) async fn persister(self: Arc<Self>) {
        let mut last_written = None;
        loop {
            tokio::select! {
                _ = self.persist_now.notified() => {}
                _ = tokio::time::sleep(PERIODIC) => {}
                _ = self.shutdown.cancelled() => return,
            }
            let snap = {
                let st = self.lock();
                snapshot(&st, &self.clock, &self.opts.instance)
            };
            if last_written.as_ref() == Some(&snap) {
                continue;
            }
            if self.write(&snap).await {
                last_written = Some(snap);
            }
        }
    }

    /// Writes the current state now (at shutdown).
    pub(super) async fn write_state(&self) {
        let snap = {
            let st = self.lock();
            snapshot(&st, &self.clock, &self.opts.instance)
        };
        self.write(&snap).await;
    }

    async fn write(&self, snap: &Persisted) -> bool {
        let Some(dir) = self.opts.state_dir.clone() else {
            return true;
        };
        let data = match serde_json::to_vec_pretty(snap) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise bindings");
                return false;
            }
        };
        let result = tokio::task::spawn_blocking(move || write_atomically(&dir, &data)).await;
        match result {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                self.metrics
                    .state_write_errors
                    .with_label_values::<&str>(&[])
                    .inc();
                tracing::error!(dir = %self.opts.state_dir.as_deref().unwrap_or(Path::new("")).display(), error = %e, "cannot persist bindings to the state directory; users would lose their containers on restart; fix the directory's permissions or space");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "persisting bindings panicked");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "{not json").unwrap();
        assert_eq!(load(Some(dir.path()), "orca"), Persisted::default());
        assert!(dir.path().join("scheduler.json.corrupt").exists());
    }

    #[test]
    fn round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = Persisted {
            version: VERSION,
            instance: "orca".into(),
            containers: vec![PContainer {
                name: "c1".into(),
                image: "web".into(),
                served: 3,
                drain: Some("lifespan".into()),
            }],
            bindings: vec![PBinding {
                user: "alice".into(),
                image: "web".into(),
                container: "c1".into(),
                bound_at: 10,
                last_active: 20,
                protocol: Some("ssh".into()),
                client: Some("127.0.0.1:2200".parse().unwrap()),
                bytes_in: 1,
                bytes_out: 2,
            }],
        };
        write_atomically(dir.path(), &serde_json::to_vec(&p).unwrap()).unwrap();
        assert_eq!(load(Some(dir.path()), "orca"), p);
        assert_eq!(load(Some(dir.path()), "other"), Persisted::default());
    }
}
