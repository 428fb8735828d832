//! The scheduler's state: containers, bindings, and the pure decisions over them.
//!
//! Everything here is plain data behind one mutex, never held across an `.await`. Methods
//! decide; the caller (`mod.rs`, `lifecycle.rs`) carries out the effects (launch, stop,
//! persist) after releasing the lock.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;

use super::UserId;
use super::lease::{Activity, Kick};
use crate::audit::{Audit, Record};
use crate::images::ImageSpec;
use crate::runtime::Attached;
use crate::units::format_duration;

/// How many stopped containers `orca status` remembers.
pub(crate) const HISTORY_LEN: usize = 100;

/// Where a container is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a launch slot.
    Queued,
    /// Being created (with the attempt number, from 1).
    Creating(u32),
    /// Created, being started.
    Starting,
    /// Running, waiting for `orca.ready` to pass.
    WaitingReady,
    /// Serving users.
    Ready,
    /// Being stopped, and why.
    Stopping(StopReason),
    /// Gone: it never became ready, or it stopped; the reason says which.
    Gone(StopReason),
}

impl Phase {
    /// A short word for metrics and tables.
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Queued => "queued",
            Phase::Creating(_) => "creating",
            Phase::Starting => "starting",
            Phase::WaitingReady => "waiting_ready",
            Phase::Ready => "ready",
            Phase::Stopping(_) => "stopping",
            Phase::Gone(_) => "gone",
        }
    }

    fn is_live(&self) -> bool {
        !matches!(self, Phase::Stopping(_) | Phase::Gone(_))
    }

    /// Whether the container is on its way to ready.
    pub fn is_starting(&self) -> bool {
        matches!(
            self,
            Phase::Queued | Phase::Creating(_) | Phase::Starting | Phase::WaitingReady
        )
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Queued => f.write_str("queued for a launch slot"),
            Phase::Creating(1) => f.write_str("creating the container"),
            Phase::Creating(n) => write!(f, "creating the container (attempt {n})"),
            Phase::Starting => f.write_str("starting the container"),
            Phase::WaitingReady => f.write_str("waiting for the container to be ready"),
            Phase::Ready => f.write_str("ready"),
            Phase::Stopping(r) => write!(f, "stopping: {r}"),
            Phase::Gone(r) => write!(f, "gone: {r}"),
        }
    }
}

/// Why a container stopped taking new users (it still serves the ones it has).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainReason {
    /// `orca.timeout.session` passed.
    Lifespan,
    /// Its image's labels or content changed since it was launched.
    Outdated,
    /// Its image is no longer in the catalogue.
    ImageGone,
}

impl fmt::Display for DrainReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DrainReason::Lifespan => "its lifespan (orca.timeout.session) is over",
            DrainReason::Outdated => "its image changed since it was launched",
            DrainReason::ImageGone => "its image is gone",
        })
    }
}

/// Why a container was stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// Empty for `orca.timeout.linger`.
    Linger(Duration),
    /// Empty after it stopped taking users.
    Drained(DrainReason),
    /// It served `orca.users.total` users and the last one left.
    UsersTotal(u32),
    /// Creating or starting it failed after every attempt.
    LaunchFailed(String),
    /// It did not pass `orca.ready` in time.
    NotReady(Duration),
    /// Its main process exited without Orca asking.
    Died(Option<i64>),
    /// Someone removed it outside Orca.
    RemovedOutside,
    /// Found at start-up and not accounted for.
    Orphan(String),
    /// The gateway was asked to clean up on shutdown.
    Shutdown,
    /// An operator stopped it through the admin API.
    Admin,
}

impl StopReason {
    /// A bounded label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            StopReason::Linger(_) => "linger",
            StopReason::Drained(DrainReason::Lifespan) => "lifespan",
            StopReason::Drained(DrainReason::Outdated) => "outdated",
            StopReason::Drained(DrainReason::ImageGone) => "image_gone",
            StopReason::UsersTotal(_) => "users_total",
            StopReason::LaunchFailed(_) => "launch_failed",
            StopReason::NotReady(_) => "not_ready",
            StopReason::Died(_) => "died",
            StopReason::RemovedOutside => "removed",
            StopReason::Orphan(_) => "orphan",
            StopReason::Shutdown => "shutdown",
            StopReason::Admin => "admin",
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Linger(d) => write!(
                f,
                "no users for {} (orca.timeout.linger)",
                format_duration(*d)
            ),
            StopReason::Drained(r) => {
                write!(f, "its last user left after it stopped taking users: {r}")
            }
            StopReason::UsersTotal(n) => write!(
                f,
                "it served its {n} users (orca.users.total) and the last one left"
            ),
            StopReason::LaunchFailed(e) => write!(f, "launch failed: {e}"),
            StopReason::NotReady(d) => {
                write!(f, "not ready after {} (orca.ready)", format_duration(*d))
            }
            StopReason::Died(Some(code)) => write!(
                f,
                "the container exited with code {code} without orca asking"
            ),
            StopReason::Died(None) => f.write_str("the container stopped without orca asking"),
            StopReason::RemovedOutside => f.write_str("the container was removed outside orca"),
            StopReason::Orphan(why) => write!(f, "not accounted for after a restart: {why}"),
            StopReason::Shutdown => f.write_str("the gateway shut down with cleanup requested"),
            StopReason::Admin => f.write_str("an administrator stopped it"),
        }
    }
}

/// A user's binding to a container for one image.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct BindingKey {
    pub(crate) user: UserId,
    pub(crate) image: String,
}

#[derive(Debug)]
pub(crate) struct Binding {
    /// Distinguishes this binding from a later one for the same key.
    pub(crate) id: u64,
    pub(crate) container: String,
    pub(crate) sessions: u32,
    pub(crate) activity: Arc<Activity>,
    pub(crate) kick: Arc<Kick>,
    pub(crate) bound_at: Instant,
    /// Restored after a restart: kept this long without a session even when the image does
    /// not persist users between reconnects.
    pub(crate) grace_until: Option<Instant>,
    /// The arrival that placed the user, for the audit log.
    pub(crate) origin: Origin,
}

/// What the audit log says of where a binding came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) protocol: &'static str,
    pub(crate) client: Option<std::net::SocketAddr>,
}

#[derive(Debug)]
pub(crate) struct ContainerRec {
    pub(crate) name: String,
    pub(crate) id: Option<String>,
    pub(crate) spec: Arc<ImageSpec>,
    pub(crate) spec_hash: String,
    pub(crate) phase: watch::Sender<Phase>,
    pub(crate) created_at: Instant,
    pub(crate) address: Option<IpAddr>,
    pub(crate) users: BTreeSet<UserId>,
    pub(crate) served: u32,
    pub(crate) drain: Option<DrainReason>,
    pub(crate) empty_since: Option<Instant>,
    /// The main process's stdio (`attach` images), attached before the start so that none of
    /// its first output is lost; the first session that attaches takes it.
    pub(crate) console: Option<Attached>,
}

impl ContainerRec {
    pub(crate) fn new(name: String, spec: Arc<ImageSpec>, phase: Phase, now: Instant) -> Self {
        let (tx, _) = watch::channel(phase);
        Self {
            name,
            id: None,
            spec_hash: spec.spec_hash(),
            spec,
            phase: tx,
            created_at: now,
            address: None,
            users: BTreeSet::new(),
            served: 0,
            drain: None,
            empty_since: Some(now),
            console: None,
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase.borrow().clone()
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        self.phase.send_replace(phase);
    }

    pub(crate) fn is_live(&self) -> bool {
        self.phase.borrow().is_live()
    }

    /// Whether it may take one more user now.
    pub(crate) fn accepts_users(&self) -> bool {
        self.is_live()
            && self.drain.is_none()
            && self.spec.users_concurrent.has_room(self.users.len())
            && self.spec.users_total.has_room(self.served as usize)
    }

    /// Whether it can never take another user (so it stops as soon as it is empty).
    pub(crate) fn finished(&self) -> Option<StopReason> {
        if let Some(r) = self.drain {
            return Some(StopReason::Drained(r));
        }
        if !self.spec.users_total.has_room(self.served as usize) {
            return Some(StopReason::UsersTotal(self.served));
        }
        None
    }
}

/// A stopped container, remembered for `orca status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopRecord {
    /// Container name.
    pub name: String,
    /// Image name.
    pub image: String,
    /// Why it stopped.
    pub reason: StopReason,
    /// When.
    pub at: SystemTime,
}

/// All mutable scheduler state.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) containers: HashMap<String, ContainerRec>,
    pub(crate) bindings: HashMap<BindingKey, Binding>,
    pub(crate) history: VecDeque<StopRecord>,
    pub(crate) next_binding_id: u64,
    pub(crate) shutting_down: bool,
    /// Where session ends are recorded (in `unbind`, the one place a binding ends).
    pub(crate) audit: Audit,
    /// Images whose creates the engine refuses, and their back-off.
    pub(crate) breakers: super::breaker::Breakers,
}

impl State {
    /// The running (or starting) container of this spec with a free slot and the most users;
    /// among equals the oldest, so that new ones drain and stop first.
    pub(crate) fn fullest_with_room(&self, spec: &ImageSpec, spec_hash: &str) -> Option<&str> {
        self.containers
            .values()
            .filter(|c| c.spec.name == spec.name && c.spec_hash == spec_hash && c.accepts_users())
            .max_by(|a, b| {
                a.users
                    .len()
                    .cmp(&b.users.len())
                    .then_with(|| b.created_at.cmp(&a.created_at))
                    .then_with(|| b.name.cmp(&a.name))
            })
            .map(|c| c.name.as_str())
    }

    /// The live container a user is bound to for an image, if any.
    pub(crate) fn bound_container(&self, key: &BindingKey) -> Option<&str> {
        let b = self.bindings.get(key)?;
        let c = self.containers.get(&b.container)?;
        c.is_live().then_some(c.name.as_str())
    }

    /// Live containers, for the `max_containers` cap.
    pub(crate) fn live_count(&self) -> usize {
        self.containers.values().filter(|c| c.is_live()).count()
    }

    /// Binds a user to a container (which must accept users).
    pub(crate) fn bind(
        &mut self,
        key: BindingKey,
        container: &str,
        activity: Arc<Activity>,
        origin: Origin,
        now: Instant,
    ) -> &mut Binding {
        let id = self.next_binding_id;
        self.next_binding_id += 1;
        if let Some(c) = self.containers.get_mut(container) {
            if c.users.insert(key.user.clone()) {
                c.served = c.served.saturating_add(1);
            }
            c.empty_since = None;
        }
        self.bindings.insert(
            key.clone(),
            Binding {
                id,
                container: container.to_string(),
                sessions: 0,
                activity,
                kick: Arc::new(Kick::default()),
                bound_at: now,
                grace_until: None,
                origin,
            },
        );
        self.bindings.get_mut(&key).expect("inserted just above")
    }

    /// Removes a binding; its sessions are told why. Returns the container it was bound to.
    pub(crate) fn unbind(
        &mut self,
        key: &BindingKey,
        reason: &str,
        now: Instant,
    ) -> Option<String> {
        let b = self.bindings.remove(key)?;
        b.kick.fire(reason);
        let (bytes_in, bytes_out) = b.activity.bytes();
        self.audit.record(Record::SessionEnd {
            user: key.user.to_string(),
            image: key.image.clone(),
            container: b.container.clone(),
            protocol: b.origin.protocol,
            client: b.origin.client,
            bytes_in,
            bytes_out,
            seconds: now.saturating_duration_since(b.bound_at).as_secs(),
            reason: reason.to_string(),
        });
        if let Some(c) = self.containers.get_mut(&b.container) {
            c.users.remove(&key.user);
            if c.users.is_empty() {
                c.empty_since = Some(now);
            }
        }
        Some(b.container)
    }

    /// Keys of every binding to a container.
    pub(crate) fn bindings_of(&self, container: &str) -> Vec<BindingKey> {
        self.bindings
            .iter()
            .filter(|(_, b)| b.container == container)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Records a stop for `orca status`.
    pub(crate) fn remember_stop(&mut self, record: StopRecord) {
        if self.history.len() == HISTORY_LEN {
            self.history.pop_front();
        }
        self.history.push_back(record);
    }
}
