//! Which container serves a (user, image) pair, and for how long.
//!
//! A binding per (user, image) is shared by all that user's connections. Placement: the
//! user's bound container; else the fullest live container of the image with a free slot
//! (`orca.users.concurrent`, `orca.users.total`), which may still be starting, so concurrent
//! arrivals coalesce onto one launch; else a new container. Launches run in the background,
//! bounded in parallel, retried, and report their phase through a watch channel.
//!
//! Limits (inactivity, lifespan, linger, total users) are enforced by the sweeper in
//! `lifecycle.rs`; engine events (a container that dies, images that change) are handled
//! there too. Bindings are persisted to the state directory (`persist.rs`) and containers carry
//! labels, so a restarted gateway adopts what it launched (`adopt.rs`).
//!
//! Files: `state.rs` (data and pure decisions), `lease.rs` (what callers hold), `launch.rs`,
//! `lifecycle.rs`, `adopt.rs`, `persist.rs`, `catalogue.rs`, `status.rs`, `admin.rs`.

mod admin;
mod adopt;
mod breaker;
mod catalogue;
mod console;
mod launch;
mod lease;
mod lifecycle;
mod persist;
mod state;
mod status;

#[cfg(test)]
pub(crate) mod tests;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use admin::AdminError;
pub use catalogue::{Catalogue, CatalogueRow, Lookup};
pub use lease::{Activity, Arrival, Lease, Placement, SessionKind};
pub use state::{DrainReason, Phase, StopReason, StopRecord};
pub use status::{ContainerStatus, SchedulerStatus, UserStatus};

use crate::audit::{Audit, Record};
use crate::clock::Clock;
use crate::config::{Config, SchedulerConfig};
use crate::error::ErrorSource;
use crate::metrics::Metrics;
use crate::runtime::{Runtime, RuntimeError};
use lease::SessionGuard;
use state::{BindingKey, ContainerRec, Origin, State, StopRecord as Stopped};

/// How long a user at capacity is asked to wait before retrying.
const CAPACITY_RETRY_AFTER: Duration = Duration::from_secs(10);

/// A user id, as decided by the identity resolvers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Arc<str>);

impl UserId {
    /// Wraps an id.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a user could not be given a container.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// No image of that name.
    #[error("there is no image named `{0}`")]
    UnknownImage(String),
    /// The image has bad labels.
    #[error("image `{name}` is unavailable because of its labels: {reason}")]
    ImageDisabled {
        /// Image name.
        name: String,
        /// The label errors.
        reason: String,
    },
    /// `max_containers` is reached and no container has room.
    #[error("image `{image}` is at capacity: every container is full and no new one may start; retry in {}s", retry_after.as_secs())]
    AtCapacity {
        /// Image name.
        image: String,
        /// When to retry.
        retry_after: Duration,
    },
    /// The container could not be launched or made ready.
    #[error("the container for image `{image}` failed: {reason}")]
    LaunchFailed {
        /// Image name.
        image: String,
        /// What went wrong.
        reason: String,
    },
    /// The user's session was ended (kicked, container stopped) before it was ready.
    #[error("your session on image `{image}` ended: {reason}")]
    ContainerGone {
        /// Image name.
        image: String,
        /// Why.
        reason: String,
    },
    /// The engine failed to create or start a container of this image a moment ago, and no
    /// new launch is tried until its back-off passes (`breaker.rs`).
    #[error("the container engine is failing to start containers of image `{image}` ({reason}); retry in {}s", retry_after.as_secs())]
    EngineFailing {
        /// Image name.
        image: String,
        /// The engine's last error.
        reason: String,
        /// When to retry.
        retry_after: Duration,
    },
    /// The gateway is shutting down.
    #[error("the gateway is shutting down; retry in a moment")]
    ShuttingDown,
}

impl ScheduleError {
    /// The party to blame.
    pub fn source_side(&self) -> ErrorSource {
        match self {
            ScheduleError::UnknownImage(_) => ErrorSource::Client,
            ScheduleError::ImageDisabled { .. } => ErrorSource::Operator,
            ScheduleError::AtCapacity { .. } | ScheduleError::ShuttingDown => ErrorSource::Internal,
            ScheduleError::EngineFailing { .. } => ErrorSource::Docker,
            ScheduleError::LaunchFailed { .. } | ScheduleError::ContainerGone { .. } => {
                ErrorSource::Container
            }
        }
    }
}

/// What the scheduler needs from the configuration.
#[derive(Debug, Clone)]
pub struct Options {
    /// Gateway instance name (container label; only this instance's containers are adopted).
    pub instance: String,
    /// Network launched containers join.
    pub network: String,
    /// Where bindings are persisted; `None` keeps them in memory only (tests).
    pub state_dir: Option<PathBuf>,
    /// Launch and placement tuning.
    pub tuning: SchedulerConfig,
    /// How often limits are checked.
    pub sweep_interval: Duration,
    /// Where session starts and ends are recorded.
    pub audit: Audit,
}

impl Options {
    /// Options from the effective configuration.
    pub fn from_config(config: &Config) -> Self {
        Self {
            instance: config.instance.clone(),
            network: config.docker.network.clone(),
            state_dir: Some(config.state_dir.clone()),
            tuning: config.scheduler.clone(),
            sweep_interval: Duration::from_secs(1),
            audit: Audit::off(),
        }
    }
}

/// The scheduler: a cheap handle to shared state and background tasks.
#[derive(Debug, Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    runtime: Arc<dyn Runtime>,
    catalogue: Catalogue,
    opts: Options,
    clock: Clock,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
    launch_slots: Arc<Semaphore>,
    persist_now: Notify,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// Work decided under the lock and carried out after it is released.
#[derive(Debug, Default)]
#[must_use]
pub(crate) struct Effects {
    launch: Vec<String>,
    /// Adopted containers (name, id) whose `orca.ready` check must pass before users reach
    /// them: a launch cut short by a crash left them started but perhaps not ready.
    recheck: Vec<(String, String)>,
    stop: Vec<(String, Option<String>, Duration)>,
    remove: Vec<String>,
    persist: bool,
}

impl Scheduler {
    /// Loads persisted bindings, reads the image catalogue, adopts this instance's running
    /// containers, and starts the background tasks (engine events, limits, persistence).
    pub async fn start(
        runtime: Arc<dyn Runtime>,
        opts: Options,
        metrics: Arc<Metrics>,
    ) -> Result<Self, RuntimeError> {
        let persisted = persist::load(opts.state_dir.as_deref(), &opts.instance);
        let audit = opts.audit.clone();
        let inner = Arc::new(Inner {
            launch_slots: Arc::new(Semaphore::new(opts.tuning.launch_parallelism.max(1))),
            runtime,
            catalogue: Catalogue::default(),
            opts,
            clock: Clock::new(),
            metrics,
            state: Mutex::new(State {
                audit,
                ..State::default()
            }),
            persist_now: Notify::new(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        inner.refresh_catalogue().await?;
        inner.resync(Some(persisted)).await?;
        inner.tasks.spawn(inner.clone().watch_engine());
        inner.tasks.spawn(inner.clone().sweeper());
        inner.tasks.spawn(inner.clone().persister());
        Ok(Self { inner })
    }

    /// The image catalogue.
    pub fn catalogue(&self) -> &Catalogue {
        &self.inner.catalogue
    }

    /// Places a user on a container for `image` and opens a session; the placement says
    /// which container and how its start is going, and becomes a [`Lease`] when it is ready.
    pub fn place(
        &self,
        user: &UserId,
        image: &str,
        arrival: impl Into<Arrival>,
    ) -> Result<Placement, ScheduleError> {
        self.inner.place(user, image, arrival.into())
    }

    /// [`Scheduler::place`] and wait until ready.
    pub async fn acquire(
        &self,
        user: &UserId,
        image: &str,
        arrival: impl Into<Arrival>,
    ) -> Result<Lease, ScheduleError> {
        self.place(user, image, arrival)?.ready().await
    }

    /// The proxy could not reach the container `container_id` (a lease's `container_id`).
    ///
    /// The engine's events report a death at once, but the stream lags or is down while it
    /// reconnects, and until the scheduler knows, every request of the container's users goes
    /// to a dead address. So this asks the engine: a container that no longer runs is handled
    /// as its event would have been (users unbound, container removed), so that the next
    /// request is placed afresh; the reason it stopped is returned for the error page. `None`
    /// when it still runs (the app failed, not the container) or the engine cannot say.
    pub async fn unreachable(&self, container_id: &str) -> Option<StopReason> {
        self.inner.unreachable(container_id).await
    }

    /// The audit log the scheduler records sessions in, for the fronts' logins.
    pub fn audit(&self) -> &Audit {
        &self.inner.opts.audit
    }

    /// The gateway's metrics, which the scheduler keeps and the fronts add to.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Every container, its users, and why it is still up; plus recent stops.
    pub fn status(&self) -> SchedulerStatus {
        self.inner.status()
    }

    /// Ends every connection of `user` on `image` now (an operator's request), telling them
    /// why; returns the container they were on.
    pub fn end_session(&self, user: &UserId, image: &str) -> Result<String, AdminError> {
        self.inner.end_session_now(user, image)
    }

    /// Stops container `name` now (an operator's request); its users' sessions end.
    pub fn stop_container(&self, name: &str) -> Result<(), AdminError> {
        self.inner.stop_container_now(name)
    }

    /// Re-reads the image catalogue now (also done on every image event).
    pub async fn refresh_catalogue(&self) -> Result<Vec<CatalogueRow>, RuntimeError> {
        self.inner.refresh_catalogue().await
    }

    /// Stops background work and persists the bindings. Containers keep running for the next
    /// start unless `cleanup`, which stops and removes every container of this instance.
    pub async fn shutdown(&self, cleanup: bool) {
        self.inner.shutdown(cleanup).await
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock must not take every later request down with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn place(
        self: &Arc<Self>,
        user: &UserId,
        image: &str,
        arrival: Arrival,
    ) -> Result<Placement, ScheduleError> {
        let kind = arrival.kind;
        let spec = match self.catalogue.lookup(image) {
            Lookup::Ready(spec) => spec,
            Lookup::Disabled(reason) => {
                return Err(ScheduleError::ImageDisabled {
                    name: image.to_string(),
                    reason,
                });
            }
            Lookup::Unknown => return Err(ScheduleError::UnknownImage(image.to_string())),
        };
        let key = BindingKey {
            user: user.clone(),
            image: spec.name.clone(),
        };
        let now = self.clock.now();
        let mut effects = Effects::default();
        let mut launched = false;
        let mut st = self.lock();
        if st.shutting_down {
            return Err(ScheduleError::ShuttingDown);
        }
        if st.bound_container(&key).is_none() {
            if st.bindings.contains_key(&key) {
                let _ = st.unbind(&key, "your container is gone", now);
            }
            let hash = spec.spec_hash();
            let name = match st.fullest_with_room(&spec, &hash) {
                Some(name) => name.to_string(),
                None => {
                    if let Err(refused) = st.breakers.admit(&spec.name, now) {
                        return Err(ScheduleError::EngineFailing {
                            image: spec.name.clone(),
                            reason: refused.reason,
                            retry_after: refused.retry_after,
                        });
                    }
                    if st.live_count() >= self.opts.tuning.max_containers {
                        return Err(ScheduleError::AtCapacity {
                            image: spec.name.clone(),
                            retry_after: CAPACITY_RETRY_AFTER,
                        });
                    }
                    let name = self.new_container_name(&spec.name);
                    st.containers.insert(
                        name.clone(),
                        ContainerRec::new(name.clone(), spec.clone(), Phase::Queued, now),
                    );
                    effects.launch.push(name.clone());
                    launched = true;
                    name
                }
            };
            let activity = Arc::new(Activity::new(self.clock, self.metrics.bytes_of(&spec.name)));
            let origin = Origin {
                protocol: arrival.protocol,
                client: arrival.client,
            };
            st.bind(key.clone(), &name, activity, origin, now);
            st.audit.record(Record::SessionStart {
                user: user.to_string(),
                image: spec.name.clone(),
                container: name.clone(),
                protocol: arrival.protocol,
                client: arrival.client,
            });
            effects.persist = true;
        }
        let b = st
            .bindings
            .get_mut(&key)
            .expect("bound above or found bound");
        b.sessions += 1;
        b.grace_until = None;
        match kind {
            SessionKind::Held => b.activity.hold(),
            SessionKind::Traffic => b.activity.touch(),
        }
        let guard = SessionGuard {
            inner: Arc::downgrade(self),
            key,
            binding_id: b.id,
            kind,
            activity: b.activity.clone(),
        };
        let kick = b.kick.clone();
        let container = b.container.clone();
        let rec = st
            .containers
            .get(&container)
            .expect("bound container exists");
        let placement = Placement {
            container,
            launched,
            spec: rec.spec.clone(),
            phase: rec.phase.subscribe(),
            kick,
            guard,
        };
        drop(st);
        self.run(effects);
        Ok(placement)
    }

    /// One session of a binding closed.
    fn end_session(self: &Arc<Self>, key: &BindingKey, binding_id: u64) {
        let now = self.clock.now();
        let mut effects = Effects::default();
        let mut st = self.lock();
        let shutting_down = st.shutting_down;
        let Some(b) = st.bindings.get_mut(key) else {
            return;
        };
        if b.id != binding_id {
            return;
        }
        b.sessions = b.sessions.saturating_sub(1);
        // During shutdown connections close because the gateway stops, not because users
        // left: keep their bindings for the next start.
        if b.sessions > 0 || b.grace_until.is_some() || shutting_down {
            return;
        }
        let container = b.container.clone();
        let persist = st
            .containers
            .get(&container)
            .is_some_and(|c| c.spec.persist_between_reconnects);
        if !persist && let Some(container) = st.unbind(key, "you disconnected", now) {
            effects.persist = true;
            self.stop_if_finished(&mut st, &container, &mut effects);
        }
        drop(st);
        self.run(effects);
    }

    /// Stops an empty container at once when it can never take another user.
    fn stop_if_finished(&self, st: &mut State, name: &str, effects: &mut Effects) {
        let Some(c) = st.containers.get(name) else {
            return;
        };
        if c.users.is_empty()
            && c.phase() == Phase::Ready
            && let Some(reason) = c.finished()
        {
            self.begin_stop(st, name, reason, effects);
        }
    }

    /// Marks a container stopping, ends its users' sessions, and queues the engine work.
    fn begin_stop(&self, st: &mut State, name: &str, reason: StopReason, effects: &mut Effects) {
        let now = self.clock.now();
        for key in st.bindings_of(name) {
            let _ = st.unbind(&key, &format!("your container stopped: {reason}"), now);
        }
        let Some(c) = st.containers.get(name) else {
            return;
        };
        if !c.is_live() {
            return;
        }
        tracing::info!(container = name, image = %c.spec.name, %reason, "stopping container");
        c.set_phase(Phase::Stopping(reason));
        effects
            .stop
            .push((name.to_string(), c.id.clone(), c.spec.stop_grace));
        effects.persist = true;
    }

    /// Forgets a container for good, remembering why.
    fn forget(&self, st: &mut State, name: &str, reason: StopReason) {
        let now = self.clock.now();
        for key in st.bindings_of(name) {
            let _ = st.unbind(&key, &format!("your container stopped: {reason}"), now);
        }
        if let Some(c) = st.containers.remove(name) {
            self.metrics
                .stops
                .with_label_values(&[c.spec.name.as_str(), reason.label()])
                .inc();
            c.set_phase(Phase::Gone(reason.clone()));
            st.remember_stop(Stopped {
                name: name.to_string(),
                image: c.spec.name.clone(),
                reason,
                at: self.clock.wall(),
            });
        }
    }

    fn run(self: &Arc<Self>, effects: Effects) {
        for name in effects.launch {
            self.tasks.spawn(self.clone().launch(name));
        }
        for (name, id) in effects.recheck {
            self.tasks.spawn(self.clone().adopt_when_ready(name, id));
        }
        for (name, id, grace) in effects.stop {
            self.tasks
                .spawn(self.clone().stop_container(name, id, grace));
        }
        for id in effects.remove {
            let inner = self.clone();
            self.tasks.spawn(async move {
                if let Err(e) = inner.runtime.remove(&id).await {
                    inner.runtime_error("remove", &e);
                }
            });
        }
        if effects.persist {
            self.persist_now.notify_one();
        }
    }

    fn runtime_error(&self, operation: &str, e: &RuntimeError) {
        self.metrics
            .runtime_errors
            .with_label_values(&[operation])
            .inc();
        tracing::warn!(operation, error = %e, "container engine request failed");
    }

    /// The id and address of a ready container.
    fn endpoint(&self, name: &str) -> Option<(String, Option<IpAddr>)> {
        let st = self.lock();
        let c = st.containers.get(name)?;
        Some((c.id.clone()?, c.address))
    }

    fn new_container_name(&self, image: &str) -> String {
        let suffix: u32 = rand::rng().random();
        format!("orca-{}-{}-{:08x}", self.opts.instance, image, suffix)
    }

    async fn refresh_catalogue(self: &Arc<Self>) -> Result<Vec<CatalogueRow>, RuntimeError> {
        let images = self.runtime.list_images().await.inspect_err(|e| {
            self.runtime_error("list_images", e);
        })?;
        let rows = self.catalogue.replace(&images, &self.metrics);
        for row in &rows {
            if let Err(errors) = &row.spec {
                for e in errors {
                    tracing::warn!(image = %row.name, reference = %row.reference, "image disabled: {e}");
                }
            }
        }
        self.apply_catalogue();
        Ok(rows)
    }

    /// Containers whose image changed or vanished stop taking new users.
    fn apply_catalogue(self: &Arc<Self>) {
        let mut effects = Effects::default();
        let mut st = self.lock();
        let names: Vec<String> = st.containers.keys().cloned().collect();
        for name in names {
            let Some(c) = st.containers.get_mut(&name) else {
                continue;
            };
            if c.drain.is_some() || !c.is_live() {
                continue;
            }
            let drain = match self.catalogue.lookup(&c.spec.name) {
                Lookup::Ready(spec) if spec.spec_hash() == c.spec_hash => None,
                Lookup::Ready(_) => Some(DrainReason::Outdated),
                _ => Some(DrainReason::ImageGone),
            };
            if let Some(d) = drain {
                tracing::info!(container = %name, reason = %d, "container takes no new users");
                c.drain = Some(d);
                effects.persist = true;
                self.stop_if_finished(&mut st, &name, &mut effects);
            }
        }
        drop(st);
        self.run(effects);
    }

    async fn shutdown(self: &Arc<Self>, cleanup: bool) {
        let mut effects = Effects::default();
        {
            let mut st = self.lock();
            st.shutting_down = true;
            if cleanup {
                let names: Vec<String> = st.containers.keys().cloned().collect();
                for name in names {
                    self.begin_stop(&mut st, &name, StopReason::Shutdown, &mut effects);
                }
            }
        }
        self.shutdown.cancel();
        self.run(effects);
        self.tasks.close();
        self.tasks.wait().await;
        self.write_state().await;
    }
}
