//! What the scheduler hands to the proxy: a [`Placement`] while the container starts, then a
//! [`Lease`] (endpoint plus activity handle) while the session lasts.
//!
//! Activity is recorded with atomics so the proxy's hot path never takes the scheduler's lock;
//! the sweeper reads them. Dropping a lease (or a placement) ends that session.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::state::{BindingKey, Phase};
use super::{Inner, ScheduleError};
use crate::clock::Clock;
use crate::images::ImageSpec;
use crate::metrics::ByteCounters;
use crate::signal::EndSignal;

/// How a session's openness counts toward activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// An HTTP request or upgraded stream: while it is open the user counts as active (a long
    /// download or an idle WebSocket is use).
    Held,
    /// An interactive stream (SSH): only bytes moved count, so an idle shell is kicked.
    Traffic,
}

/// Where a session comes from: how it counts toward activity, and for the audit log the
/// protocol and client address of the arrival that placed the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// How the session's openness counts.
    pub kind: SessionKind,
    /// `https` or `ssh`.
    pub protocol: &'static str,
    /// The client's address, when known.
    pub client: Option<SocketAddr>,
}

impl Arrival {
    /// An HTTPS request (or an upgraded stream) from `client`.
    pub fn https(client: SocketAddr) -> Self {
        Self {
            kind: SessionKind::Held,
            protocol: "https",
            client: Some(client),
        }
    }

    /// An SSH session channel from `client`.
    pub fn ssh(client: SocketAddr) -> Self {
        Self {
            kind: SessionKind::Traffic,
            protocol: "ssh",
            client: Some(client),
        }
    }
}

/// A session of this kind from an unknown client (tests, tools): held sessions are HTTP's,
/// traffic-only ones SSH's.
impl From<SessionKind> for Arrival {
    fn from(kind: SessionKind) -> Self {
        Self {
            kind,
            protocol: match kind {
                SessionKind::Held => "https",
                SessionKind::Traffic => "ssh",
            },
            client: None,
        }
    }
}

/// A user's activity on one binding: bytes both ways and the last time anything happened.
#[derive(Debug)]
pub struct Activity {
    clock: Clock,
    /// The image's `orca_proxied_bytes_total`, counted where the bytes are.
    counters: ByteCounters,
    last_ms: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    held: AtomicU32,
}

impl Activity {
    pub(crate) fn new(clock: Clock, counters: ByteCounters) -> Self {
        Self {
            last_ms: AtomicU64::new(clock.millis()),
            clock,
            counters,
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            held: AtomicU32::new(0),
        }
    }

    /// Records bytes from the client to the container and from the container to the client.
    pub fn record(&self, to_container: u64, to_client: u64) {
        self.bytes_in.fetch_add(to_container, Ordering::Relaxed);
        self.bytes_out.fetch_add(to_client, Ordering::Relaxed);
        self.counters.to_container.inc_by(to_container);
        self.counters.to_client.inc_by(to_client);
        self.touch();
    }

    /// Marks the user active now.
    pub fn touch(&self) {
        self.last_ms
            .fetch_max(self.clock.millis(), Ordering::Relaxed);
    }

    /// Bytes to the container and to the client so far.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.bytes_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
        )
    }

    /// The last moment the user was active: now while a held session is open.
    pub fn last_active(&self) -> Instant {
        if self.held.load(Ordering::Relaxed) > 0 {
            return self.clock.now();
        }
        self.clock
            .instant_from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// Bytes carried over from before a restart: the session's totals go on from there, and
    /// the metrics (this process's counters) do not count them again.
    pub(crate) fn restore_bytes(&self, to_container: u64, to_client: u64) {
        self.bytes_in.store(to_container, Ordering::Relaxed);
        self.bytes_out.store(to_client, Ordering::Relaxed);
    }

    pub(crate) fn set_last_active(&self, at: Instant) {
        let now = self.clock.now();
        let ago = now.saturating_duration_since(at);
        let ms = self.clock.millis().saturating_sub(ago.as_millis() as u64);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    pub(crate) fn hold(&self) {
        self.held.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn release(&self) {
        self.touch();
        self.held.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The signal that ends every session of a binding, with the reason to show the user.
#[derive(Debug, Default)]
pub(crate) struct Kick {
    token: CancellationToken,
    reason: Mutex<Option<String>>,
}

impl Kick {
    pub(crate) fn fire(&self, reason: &str) {
        let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if r.is_none() {
            *r = Some(reason.to_string());
        }
        drop(r);
        self.token.cancel();
    }

    fn reason(&self) -> String {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| "the session ended".to_string())
    }
}

/// Ends one session when dropped.
#[derive(Debug)]
pub(crate) struct SessionGuard {
    pub(crate) inner: Weak<Inner>,
    pub(crate) key: BindingKey,
    pub(crate) binding_id: u64,
    pub(crate) kind: SessionKind,
    pub(crate) activity: Arc<Activity>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if self.kind == SessionKind::Held {
            self.activity.release();
        } else {
            self.activity.touch();
        }
        if let Some(inner) = self.inner.upgrade() {
            inner.end_session(&self.key, self.binding_id);
        }
    }
}

/// A user placed on a container that may still be starting.
#[derive(Debug)]
pub struct Placement {
    /// Name of the container chosen.
    pub container: String,
    /// Whether this request launched a new container.
    pub launched: bool,
    pub(crate) spec: Arc<ImageSpec>,
    pub(crate) phase: watch::Receiver<Phase>,
    pub(crate) kick: Arc<Kick>,
    pub(crate) guard: SessionGuard,
}

impl Placement {
    /// The container's phase now.
    pub fn phase(&self) -> Phase {
        self.phase.borrow().clone()
    }

    /// A receiver that sees every phase change (for a waiting page or SSH progress lines).
    pub fn phases(&self) -> watch::Receiver<Phase> {
        self.phase.clone()
    }

    /// Waits until the container is ready and returns the lease, or why it never will be.
    pub async fn ready(mut self) -> Result<Lease, ScheduleError> {
        let image = self.spec.name.clone();
        loop {
            let phase = self.phase.borrow_and_update().clone();
            match phase {
                Phase::Ready => break,
                Phase::Gone(reason) | Phase::Stopping(reason) => {
                    return Err(ScheduleError::LaunchFailed {
                        image,
                        reason: reason.to_string(),
                    });
                }
                _ => {}
            }
            tokio::select! {
                changed = self.phase.changed() => {
                    if changed.is_err() {
                        return Err(ScheduleError::ContainerGone { image, reason: self.kick.reason() });
                    }
                }
                _ = self.kick.token.cancelled() => {
                    return Err(ScheduleError::ContainerGone { image, reason: self.kick.reason() });
                }
            }
        }
        let inner = self
            .guard
            .inner
            .upgrade()
            .ok_or(ScheduleError::ShuttingDown)?;
        let (id, address) =
            inner
                .endpoint(&self.container)
                .ok_or_else(|| ScheduleError::ContainerGone {
                    image: image.clone(),
                    reason: self.kick.reason(),
                })?;
        Ok(Lease {
            container: self.container,
            container_id: id,
            address,
            spec: self.spec,
            phase: self.phase,
            kick: self.kick,
            guard: self.guard,
        })
    }
}

/// A session on a ready container: where to send bytes, and where to report activity.
#[derive(Debug)]
pub struct Lease {
    /// Container name.
    pub container: String,
    /// Container id on the engine.
    pub container_id: String,
    /// The container's address on the configured network.
    pub address: Option<IpAddr>,
    /// The image's effective settings (port, method, exec command…).
    pub spec: Arc<ImageSpec>,
    pub(super) phase: watch::Receiver<Phase>,
    kick: Arc<Kick>,
    pub(super) guard: SessionGuard,
}

impl Lease {
    /// Where to report bytes and activity.
    pub fn activity(&self) -> &Activity {
        &self.guard.activity
    }

    /// Resolves when a limit (inactivity, a stop, shutdown) ends the user's session; returns
    /// the reason to show the user.
    pub async fn ended(&self) -> String {
        self.kick.token.cancelled().await;
        self.kick.reason()
    }

    /// Whether the session has been ended by a limit.
    pub fn is_ended(&self) -> bool {
        self.kick.token.is_cancelled()
    }

    /// Fires when the session ends (a limit, or its container stopped or died), for whoever
    /// must cut an exchange in flight then.
    pub fn end_signal(&self) -> EndSignal {
        EndSignal::from(self.kick.token.clone())
    }
}
