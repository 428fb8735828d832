//! The admin API's JSON documents, built from a [`SchedulerStatus`].
//!
//! The server serialises these types and `orca status` deserialises the same ones, so the two
//! cannot drift apart. Clients should ignore fields they do not know: new ones may be added.

use std::net::IpAddr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::time::Timestamp;
use crate::scheduler::{ContainerStatus, SchedulerStatus, StopRecord, UserStatus};

/// `GET /api/v1/containers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainersView {
    /// Every tracked container, sorted by image then name.
    pub containers: Vec<ContainerView>,
    /// The most recent stops, oldest first.
    pub recent_stops: Vec<StopView>,
}

/// One container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerView {
    /// Container name.
    pub name: String,
    /// Engine id, once created.
    pub id: Option<String>,
    /// Image name.
    pub image: String,
    /// Lifecycle phase, a short word (`ready`, `stopping`, …).
    pub phase: String,
    /// The phase in a sentence (with the attempt or the stop reason).
    pub phase_detail: String,
    /// Address on the network, once known.
    pub address: Option<IpAddr>,
    /// When it was created.
    pub created: Timestamp,
    /// Users served over its life.
    pub served: u32,
    /// Whether it still takes new users.
    pub accepts_users: bool,
    /// Why it is still up, in a sentence.
    pub why: String,
    /// Users bound now, sorted by id.
    pub users: Vec<UserView>,
}

/// One user bound to a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    /// User id.
    pub user: String,
    /// Open connections (HTTP requests, WebSockets, SSH sessions).
    pub sessions: u32,
    /// Bound since.
    pub since: Timestamp,
    /// Last activity.
    pub last_active: Timestamp,
    /// Bytes to the container.
    pub bytes_in: u64,
    /// Bytes to the client.
    pub bytes_out: u64,
}

/// One recent stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopView {
    /// Container name.
    pub name: String,
    /// Image name.
    pub image: String,
    /// The reason as a metric label (`linger`, `admin`, …).
    pub reason: String,
    /// The reason in a sentence.
    pub detail: String,
    /// When it stopped.
    pub at: Timestamp,
}

/// `GET /api/v1/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionsView {
    /// One entry per (user, image) binding.
    pub sessions: Vec<SessionView>,
}

/// A user's binding to a container for one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    /// User id.
    pub user: String,
    /// Image name.
    pub image: String,
    /// The container serving it.
    pub container: String,
    /// Open connections.
    pub connections: u32,
    /// Bound since.
    pub since: Timestamp,
    /// Last activity.
    pub last_active: Timestamp,
    /// Whole seconds since the last activity.
    pub idle_seconds: u64,
    /// Bytes to the container.
    pub bytes_in: u64,
    /// Bytes to the client.
    pub bytes_out: u64,
    /// Why the container is up, in a sentence.
    pub container_why: String,
}

/// `DELETE /api/v1/sessions/{image}/{user}`: what was ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEnded {
    /// Always `true`: the session is over.
    pub ended: bool,
    /// User id.
    pub user: String,
    /// Image name.
    pub image: String,
    /// The container the user was on.
    pub container: String,
}

/// `POST /api/v1/containers/{name}/stop`: the stop has begun.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStopping {
    /// Always `true`: the container is stopping.
    pub stopping: bool,
    /// Container name.
    pub container: String,
}

/// Every error response's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong and what to do, in a sentence.
    pub error: String,
}

impl From<&SchedulerStatus> for ContainersView {
    fn from(status: &SchedulerStatus) -> Self {
        Self {
            containers: status.containers.iter().map(ContainerView::from).collect(),
            recent_stops: status.recent_stops.iter().map(StopView::from).collect(),
        }
    }
}

impl From<&ContainerStatus> for ContainerView {
    fn from(c: &ContainerStatus) -> Self {
        Self {
            name: c.name.clone(),
            id: c.id.clone(),
            image: c.image.clone(),
            phase: c.phase.as_str().to_string(),
            phase_detail: c.phase.to_string(),
            address: c.address,
            created: Timestamp(c.created),
            served: c.served,
            accepts_users: c.accepts_users,
            why: c.why.clone(),
            users: c.users.iter().map(UserView::from).collect(),
        }
    }
}

impl From<&UserStatus> for UserView {
    fn from(u: &UserStatus) -> Self {
        Self {
            user: u.user.clone(),
            sessions: u.sessions,
            since: Timestamp(u.since),
            last_active: Timestamp(u.last_active),
            bytes_in: u.bytes_in,
            bytes_out: u.bytes_out,
        }
    }
}

impl From<&StopRecord> for StopView {
    fn from(s: &StopRecord) -> Self {
        Self {
            name: s.name.clone(),
            image: s.image.clone(),
            reason: s.reason.label().to_string(),
            detail: s.reason.to_string(),
            at: Timestamp(s.at),
        }
    }
}

impl SessionsView {
    /// Every binding of `status`, flattened, with idle times counted up to `now`.
    pub fn new(status: &SchedulerStatus, now: SystemTime) -> Self {
        let sessions = status
            .containers
            .iter()
            .flat_map(|c| {
                c.users.iter().map(move |u| SessionView {
                    user: u.user.clone(),
                    image: c.image.clone(),
                    container: c.name.clone(),
                    connections: u.sessions,
                    since: Timestamp(u.since),
                    last_active: Timestamp(u.last_active),
                    idle_seconds: now.duration_since(u.last_active).map_or(0, |d| d.as_secs()),
                    bytes_in: u.bytes_in,
                    bytes_out: u.bytes_out,
                    container_why: c.why.clone(),
                })
            })
            .collect();
        Self { sessions }
    }
}
