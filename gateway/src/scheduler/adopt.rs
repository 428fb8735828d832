//! Reconciling the scheduler with what the engine actually runs.
//!
//! At start-up (with the persisted bindings) and after every reconnection to the engine:
//! containers we track but the engine no longer has are forgotten; running containers of this
//! instance that we do not track are adopted, their users restored; managed containers that
//! cannot be accounted for (exited, or their image and labels unreadable) are removed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::persist::{Persisted, drain_from};
use super::state::{BindingKey, ContainerRec, DrainReason, Origin, Phase, StopReason};
use super::{Activity, Effects, Inner, Lookup, UserId};
use crate::clock::from_unix_secs;
use crate::images::{ReadyCheck, parse_labels};
use crate::runtime::{ContainerInfo, ManagedLabels, RuntimeError};

impl Inner {
    pub(super) async fn resync(
        self: &Arc<Self>,
        persisted: Option<Persisted>,
    ) -> Result<(), RuntimeError> {
        let listed = self
            .runtime
            .list_managed(&self.opts.instance)
            .await
            .inspect_err(|e| self.runtime_error("list_containers", e))?;
        let persisted = persisted.unwrap_or_default();
        let now = self.clock.now();
        let mut effects = Effects::default();
        let mut st = self.lock();

        // Tracked containers the engine no longer runs.
        let by_id: HashMap<&str, &ContainerInfo> =
            listed.iter().map(|c| (c.id.as_str(), c)).collect();
        let tracked: Vec<(String, String)> = st
            .containers
            .values()
            .filter(|c| c.phase() == Phase::Ready)
            .filter_map(|c| Some((c.name.clone(), c.id.clone()?)))
            .collect();
        for (name, id) in tracked {
            match by_id.get(id.as_str()) {
                None => self.forget(&mut st, &name, StopReason::RemovedOutside),
                Some(info) if !info.running => {
                    effects.remove.push(id.clone());
                    self.forget(&mut st, &name, StopReason::Died(info.exit_code));
                }
                Some(_) => {}
            }
        }

        // Containers we do not track: adopt or remove.
        let saved: HashMap<&str, _> = persisted
            .containers
            .iter()
            .map(|c| (c.name.as_str(), c))
            .collect();
        let mut adopted = HashSet::new();
        for info in &listed {
            let Some(labels) = ManagedLabels::from_labels(&info.labels) else {
                continue;
            };
            if st.containers.contains_key(&info.name) {
                continue;
            }
            if !info.running {
                tracing::info!(container = %info.name, state = %info.state, "removing a managed container that is not running");
                effects.remove.push(info.id.clone());
                self.note_orphan(&mut st, info, &labels.image, "it was not running");
                continue;
            }
            let (spec, drain) = match self.catalogue.lookup(&labels.image) {
                Lookup::Ready(spec) => {
                    let drain =
                        (spec.spec_hash() != labels.spec_hash).then_some(DrainReason::Outdated);
                    (spec, drain)
                }
                // The image is gone: the container's own labels (inherited from its image)
                // still say how to run it, so its users keep it until they leave.
                _ => match parse_labels("", &labels.image, &info.labels) {
                    Ok(spec) => (Arc::new(spec), Some(DrainReason::ImageGone)),
                    Err(_) => {
                        effects.remove.push(info.id.clone());
                        self.note_orphan(
                            &mut st,
                            info,
                            &labels.image,
                            "its image is gone and its labels cannot be read",
                        );
                        continue;
                    }
                },
            };
            // The gateway may have died between the start and `orca.ready` passing: a
            // container with a ready check is served only once it passes again.
            let phase = if spec.ready == ReadyCheck::None {
                Phase::Ready
            } else {
                effects.recheck.push((info.name.clone(), info.id.clone()));
                Phase::WaitingReady
            };
            let mut rec = ContainerRec::new(
                info.name.clone(),
                spec,
                phase,
                self.clock.instant_at(info.created),
            );
            rec.id = Some(info.id.clone());
            rec.address = info.address;
            rec.spec_hash = labels.spec_hash.clone();
            rec.drain = drain;
            rec.empty_since = Some(now);
            if let Some(saved) = saved.get(info.name.as_str()) {
                rec.served = saved.served;
                rec.drain = rec.drain.or(saved.drain.as_deref().and_then(drain_from));
            }
            tracing::info!(container = %info.name, image = %labels.image, "adopted a running container");
            adopted.insert(info.name.clone());
            st.containers.insert(info.name.clone(), rec);
        }

        // Users of adopted containers.
        let grace = self.opts.tuning.restart_grace;
        let mut restored = 0;
        for b in &persisted.bindings {
            if !adopted.contains(&b.container) {
                continue;
            }
            let key = BindingKey {
                user: UserId::new(b.user.as_str()),
                image: b.image.clone(),
            };
            if st.bindings.contains_key(&key) {
                continue;
            }
            let Some(c) = st.containers.get(&b.container) else {
                continue;
            };
            let persist = c.spec.persist_between_reconnects;
            let served = c.served;
            let activity = Arc::new(Activity::new(self.clock, self.metrics.bytes_of(&b.image)));
            activity.set_last_active(self.clock.instant_at(from_unix_secs(b.last_active)));
            activity.restore_bytes(b.bytes_in, b.bytes_out);
            let origin = Origin {
                protocol: match b.protocol.as_deref() {
                    Some("ssh") => "ssh",
                    _ => "https",
                },
                client: b.client,
            };
            let binding = st.bind(
                key,
                &b.container,
                activity,
                origin,
                self.clock.instant_at(from_unix_secs(b.bound_at)),
            );
            if !persist {
                binding.grace_until = Some(now + grace);
            }
            // Restoring a user is not serving a new one.
            if let Some(c) = st.containers.get_mut(&b.container) {
                c.served = served.max(c.users.len() as u32);
            }
            restored += 1;
        }
        if !adopted.is_empty() || restored > 0 {
            tracing::info!(
                containers = adopted.len(),
                users = restored,
                "restored state"
            );
        }
        effects.persist = true;
        drop(st);
        self.run(effects);
        Ok(())
    }

    fn note_orphan(
        &self,
        st: &mut super::state::State,
        info: &ContainerInfo,
        image: &str,
        why: &str,
    ) {
        let reason = StopReason::Orphan(why.to_string());
        self.metrics
            .stops
            .with_label_values(&[image, reason.label()])
            .inc();
        st.remember_stop(super::state::StopRecord {
            name: info.name.clone(),
            image: image.to_string(),
            reason,
            at: self.clock.wall(),
        });
    }
}
