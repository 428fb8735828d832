//! Limits and engine events: who gets kicked, which container stops, and why.
//!
//! The sweeper runs every `sweep_interval` on tokio time (so tests drive it with paused time):
//! inactivity kicks, restart grace, lifespan drains, linger and total-user stops, and the warm
//! pool. The engine watcher turns Docker events into the same state changes at once, and after
//! every reconnection resynchronises with a full listing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::state::{ContainerRec, DrainReason, Phase, State, StopReason};
use super::{Effects, Inner};
use crate::runtime::RuntimeEvent;
use crate::units::format_duration;

/// Longest pause between attempts to reach the engine again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Inner {
    pub(super) async fn sweeper(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.opts.sweep_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.sweep(),
                _ = self.shutdown.cancelled() => return,
            }
        }
    }

    /// One pass over every binding and container.
    pub(super) fn sweep(self: &Arc<Self>) {
        let now = self.clock.now();
        let mut effects = Effects::default();
        let mut st = self.lock();
        if st.shutting_down {
            return;
        }

        // Users: inactivity and restart grace.
        let mut kicks = Vec::new();
        for (key, b) in &st.bindings {
            let Some(c) = st.containers.get(&b.container) else {
                kicks.push((key.clone(), "your container is gone".to_string(), "gone"));
                continue;
            };
            if let Some(until) = b.grace_until
                && b.sessions == 0
                && now >= until
            {
                kicks.push((
                    key.clone(),
                    "you did not reconnect after the gateway restarted".to_string(),
                    "restart_grace",
                ));
                continue;
            }
            let idle = now.saturating_duration_since(b.activity.last_active());
            if idle >= c.spec.inactive {
                kicks.push((
                    key.clone(),
                    format!(
                        "you were inactive for {} (orca.timeout.inactive)",
                        format_duration(c.spec.inactive)
                    ),
                    "inactive",
                ));
            }
        }
        for (key, reason, label) in kicks {
            tracing::info!(user = %key.user, image = %key.image, reason, "user leaves container");
            self.metrics
                .kicks
                .with_label_values(&[key.image.as_str(), label])
                .inc();
            if let Some(container) = st.unbind(&key, &reason, now) {
                effects.persist = true;
                self.stop_if_finished(&mut st, &container, &mut effects);
            }
        }

        // Containers: lifespan, total users, linger.
        let warm = warm_containers(&st);
        let names: Vec<String> = st.containers.keys().cloned().collect();
        for name in names {
            let Some(c) = st.containers.get_mut(&name) else {
                continue;
            };
            if c.phase() != Phase::Ready {
                continue;
            }
            if let Some(lifespan) = c.spec.lifespan
                && c.drain.is_none()
                && now.saturating_duration_since(c.created_at) >= lifespan
            {
                tracing::info!(container = %name, "lifespan over: container takes no new users");
                c.drain = Some(DrainReason::Lifespan);
                effects.persist = true;
            }
            if !c.users.is_empty() {
                continue;
            }
            if let Some(reason) = c.finished() {
                self.begin_stop(&mut st, &name, reason, &mut effects);
            } else if !warm.contains(&name) {
                let since = c.empty_since.unwrap_or(now);
                if now.saturating_duration_since(since) >= c.spec.linger {
                    let linger = c.spec.linger;
                    self.begin_stop(&mut st, &name, StopReason::Linger(linger), &mut effects);
                }
            }
        }

        // Warm pools: launch what is missing.
        self.fill_warm_pools(&mut st, &mut effects);
        self.update_gauges(&st);
        drop(st);
        self.run(effects);
    }

    fn fill_warm_pools(&self, st: &mut State, effects: &mut Effects) {
        let now = self.clock.now();
        for spec in self.catalogue.specs() {
            if spec.pool_warm == 0 {
                continue;
            }
            let hash = spec.spec_hash();
            let idle = st
                .containers
                .values()
                .filter(|c| c.spec_hash == hash && c.users.is_empty() && c.accepts_users())
                .count();
            for _ in idle..spec.pool_warm as usize {
                if st.live_count() >= self.opts.tuning.max_containers {
                    return;
                }
                let name = self.new_container_name(&spec.name);
                st.containers.insert(
                    name.clone(),
                    ContainerRec::new(name.clone(), spec.clone(), Phase::Queued, now),
                );
                effects.launch.push(name);
            }
        }
    }

    fn update_gauges(&self, st: &State) {
        self.metrics.containers.reset();
        self.metrics.users.reset();
        for c in st.containers.values() {
            self.metrics
                .containers
                .with_label_values(&[c.spec.name.as_str(), c.phase().as_str()])
                .inc();
            self.metrics
                .users
                .with_label_values(&[c.spec.name.as_str()])
                .add(c.users.len() as i64);
        }
    }

    pub(super) async fn stop_container(
        self: Arc<Self>,
        name: String,
        id: Option<String>,
        grace: Duration,
    ) {
        // Without an id the launch task still owns the container and removes it itself.
        if let Some(id) = &id {
            if let Err(e) = self.runtime.stop(id, grace).await {
                self.runtime_error("stop", &e);
            }
            if let Err(e) = self.runtime.remove(id).await {
                self.runtime_error("remove", &e);
            }
        }
        let mut st = self.lock();
        let reason = match st.containers.get(&name).map(|c| c.phase()) {
            Some(Phase::Stopping(reason)) => reason,
            _ => return,
        };
        self.forget(&mut st, &name, reason);
        drop(st);
        self.persist_now.notify_one();
    }

    /// Follows engine events; on a broken stream, reconnects with backoff and resynchronises.
    pub(super) async fn watch_engine(self: Arc<Self>) {
        let mut backoff = Duration::from_secs(1);
        let mut resync = false;
        loop {
            let mut events = self.runtime.events();
            if resync {
                let refreshed = self.refresh_catalogue().await;
                let synced = self.resync(None).await;
                if let Err(e) = refreshed.and(synced) {
                    tracing::warn!(error = %e, "container engine still unreachable");
                    if self.pause(backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
                tracing::info!("reconnected to the container engine");
            }
            loop {
                tokio::select! {
                    ev = events.next() => match ev {
                        Some(Ok(ev)) => {
                            backoff = Duration::from_secs(1);
                            self.on_event(ev).await;
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "lost the container engine's event stream");
                            break;
                        }
                        None => break,
                    },
                    _ = self.shutdown.cancelled() => return,
                }
            }
            resync = true;
            if self.pause(backoff).await {
                return;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Sleeps, or returns true at shutdown.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = self.shutdown.cancelled() => true,
        }
    }

    async fn on_event(self: &Arc<Self>, ev: RuntimeEvent) {
        match ev {
            RuntimeEvent::ContainerDied { id, exit_code } => {
                self.container_gone(&id, StopReason::Died(exit_code))
            }
            RuntimeEvent::ContainerRemoved { id } => {
                self.container_gone(&id, StopReason::RemovedOutside)
            }
            RuntimeEvent::ImagesChanged => {
                if let Err(e) = self.refresh_catalogue().await {
                    tracing::warn!(error = %e, "could not refresh the image catalogue");
                }
            }
        }
    }

    /// See [`super::Scheduler::unreachable`].
    pub(super) async fn unreachable(self: &Arc<Self>, id: &str) -> Option<StopReason> {
        let reason = match self.runtime.inspect(id).await {
            Ok(info) if info.running => return None,
            Ok(info) => StopReason::Died(info.exit_code),
            Err(e) if e.not_found => StopReason::RemovedOutside,
            Err(e) => {
                self.runtime_error("inspect", &e);
                return None;
            }
        };
        // A no-op when the engine's event got here first.
        self.container_gone(id, reason.clone());
        Some(reason)
    }

    /// A container died or vanished without Orca asking: its users are told and will be placed
    /// afresh on their next request.
    pub(super) fn container_gone(self: &Arc<Self>, id: &str, reason: StopReason) {
        let mut effects = Effects::default();
        let mut st = self.lock();
        let Some(name) = st
            .containers
            .values()
            .find(|c| c.id.as_deref() == Some(id))
            .map(|c| c.name.clone())
        else {
            return;
        };
        let c = &st.containers[&name];
        if matches!(c.phase(), Phase::Stopping(_) | Phase::Gone(_)) {
            return;
        }
        tracing::warn!(container = %name, image = %c.spec.name, %reason, "container gone");
        if !matches!(reason, StopReason::RemovedOutside) {
            effects.remove.push(id.to_string());
        }
        self.forget(&mut st, &name, reason);
        effects.persist = true;
        drop(st);
        self.run(effects);
    }
}

/// Empty containers kept for `orca.pool.warm`: per image, the oldest idle ones up to the count.
pub(super) fn warm_containers(st: &State) -> HashSet<String> {
    let mut by_image: HashMap<&str, Vec<&ContainerRec>> = HashMap::new();
    for c in st.containers.values() {
        if c.spec.pool_warm > 0 && c.users.is_empty() && c.accepts_users() {
            by_image.entry(c.spec.name.as_str()).or_default().push(c);
        }
    }
    let mut keep = HashSet::new();
    for (_, mut idle) in by_image {
        idle.sort_by_key(|c| c.created_at);
        let n = idle.first().map_or(0, |c| c.spec.pool_warm as usize);
        keep.extend(idle.into_iter().take(n).map(|c| c.name.clone()));
    }
    keep
}
