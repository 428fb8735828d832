//! What `orca status` and the admin API show: every container, its users, and why it is up.

use std::net::IpAddr;
use std::time::SystemTime;

use super::Inner;
use super::lifecycle::warm_containers;
use super::state::{Phase, StopRecord};
use crate::units::format_duration;

/// A snapshot of the scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerStatus {
    /// Every tracked container, sorted by image then name.
    pub containers: Vec<ContainerStatus>,
    /// The most recent stops, oldest first.
    pub recent_stops: Vec<StopRecord>,
}

/// One container.
#[derive(Debug, Clone)]
pub struct ContainerStatus {
    /// Container name.
    pub name: String,
    /// Engine id, once created.
    pub id: Option<String>,
    /// Image name.
    pub image: String,
    /// Lifecycle phase.
    pub phase: Phase,
    /// Address on the network.
    pub address: Option<IpAddr>,
    /// When it was created (or adopted with its creation time).
    pub created: SystemTime,
    /// Users served over its life.
    pub served: u32,
    /// Users bound now.
    pub users: Vec<UserStatus>,
    /// Whether it still takes new users.
    pub accepts_users: bool,
    /// Why it is still up, in a sentence.
    pub why: String,
}

/// One user bound to a container.
#[derive(Debug, Clone)]
pub struct UserStatus {
    /// User id.
    pub user: String,
    /// Open sessions.
    pub sessions: u32,
    /// Bound since.
    pub since: SystemTime,
    /// Last activity.
    pub last_active: SystemTime,
    /// Bytes to the container.
    pub bytes_in: u64,
    /// Bytes to the client.
    pub bytes_out: u64,
}

impl Inner {
    pub(super) fn status(&self) -> SchedulerStatus {
        let now = self.clock.now();
        let st = self.lock();
        let warm = warm_containers(&st);
        let mut containers: Vec<ContainerStatus> = st
            .containers
            .values()
            .map(|c| {
                let mut users: Vec<UserStatus> = st
                    .bindings
                    .iter()
                    .filter(|(_, b)| b.container == c.name)
                    .map(|(k, b)| {
                        let (bytes_in, bytes_out) = b.activity.bytes();
                        UserStatus {
                            user: k.user.to_string(),
                            sessions: b.sessions,
                            since: self.clock.wall_at(b.bound_at),
                            last_active: self.clock.wall_at(b.activity.last_active()),
                            bytes_in,
                            bytes_out,
                        }
                    })
                    .collect();
                users.sort_by(|a, b| a.user.cmp(&b.user));
                let phase = c.phase();
                let why = if phase != Phase::Ready {
                    phase.to_string()
                } else if !c.users.is_empty() {
                    let mut why = format!(
                        "serving {} user{}",
                        c.users.len(),
                        if c.users.len() == 1 { "" } else { "s" }
                    );
                    if let Some(stop) = c.finished() {
                        why.push_str(&format!("; stops when they leave: {stop}"));
                    }
                    why
                } else if warm.contains(&c.name) {
                    format!(
                        "kept warm for new users (orca.pool.warm = {})",
                        c.spec.pool_warm
                    )
                } else {
                    let since = c.empty_since.unwrap_or(now);
                    let left = c
                        .spec
                        .linger
                        .saturating_sub(now.saturating_duration_since(since));
                    format!(
                        "no users; stops in {} unless one arrives (orca.timeout.linger = {})",
                        format_duration(left),
                        format_duration(c.spec.linger)
                    )
                };
                ContainerStatus {
                    name: c.name.clone(),
                    id: c.id.clone(),
                    image: c.spec.name.clone(),
                    phase,
                    address: c.address,
                    created: self.clock.wall_at(c.created_at),
                    served: c.served,
                    users,
                    accepts_users: c.accepts_users(),
                    why,
                }
            })
            .collect();
        containers.sort_by(|a, b| (&a.image, &a.name).cmp(&(&b.image, &b.name)));
        SchedulerStatus {
            containers,
            recent_stops: st.history.iter().cloned().collect(),
        }
    }
}
