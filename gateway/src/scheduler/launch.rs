//! Launching one container: wait for a slot, create (retried), start, wait until ready.
//!
//! Each phase is published on the container's watch channel so waiting users see progress,
//! and timed into `orca_container_start_duration_seconds{phase}`. A create that half
//! succeeded (created but not started) is removed before the next attempt.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::state::{Phase, StopReason};
use super::{Effects, Inner};
use crate::images::{ConnectionMethod, ReadyCheck};
use crate::runtime::{CreateSpec, ManagedLabels, RuntimeError};

/// How long one launch spent in each phase. The same durations feed the histogram; the
/// "container ready" log line carries them so that one user's cold start can be split by
/// phase without a metrics endpoint (`bench/https` reads them there).
#[derive(Debug, Default, Clone, Copy)]
struct PhaseTimes {
    queue: Duration,
    /// The successful attempt's create (failed attempts and retry pauses are not in it).
    create: Duration,
    start: Duration,
    ready: Duration,
}

/// A duration in milliseconds with microsecond resolution, for log fields.
fn millis(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

/// First pause between readiness probes; doubles up to [`PROBE_MAX_PAUSE`]. Short: a probe is a
/// TCP connect on the bridge, and a first probe that came a moment too early cost a user up to
/// this long (a 20 ms start measured 23 ms in readiness).
const PROBE_FIRST_PAUSE: Duration = Duration::from_millis(5);
const PROBE_MAX_PAUSE: Duration = Duration::from_millis(500);

impl Inner {
    pub(super) async fn launch(self: Arc<Self>, name: String) {
        let t0 = Instant::now();
        let permit = tokio::select! {
            p = self.launch_slots.clone().acquire_owned() => p,
            _ = self.shutdown.cancelled() => return,
        };
        let Ok(_permit) = permit else { return };
        let mut times = PhaseTimes {
            queue: t0.elapsed(),
            ..PhaseTimes::default()
        };
        self.observe("queue", times.queue);

        let Some(create) = self.create_spec(&name) else {
            return;
        };
        let id = match self.create_and_start(&name, &create, &mut times).await {
            Ok(id) => {
                self.lock().breakers.succeeded(&create.image_name);
                id
            }
            Err(reason) => {
                let now = self.clock.now();
                self.lock()
                    .breakers
                    .launch_ended(&create.image_name, &name, now);
                self.launch_failed(&name, None, reason);
                return;
            }
        };

        let t_ready = Instant::now();
        if let Err(reason) = self.wait_ready(&name, &id).await {
            self.launch_failed(&name, Some(id), reason);
            return;
        }
        times.ready = t_ready.elapsed();
        self.observe("ready", times.ready);
        self.observe("total", t0.elapsed());
        let mut st = self.lock();
        if let Some(c) = st.containers.get_mut(&name)
            && c.phase() == Phase::WaitingReady
        {
            c.set_phase(Phase::Ready);
            self.metrics
                .starts
                .with_label_values(&[c.spec.name.as_str(), "ok"])
                .inc();
            tracing::info!(
                container = %name,
                image = %c.spec.name,
                elapsed_ms = t0.elapsed().as_millis() as u64,
                queue_ms = millis(times.queue),
                create_ms = millis(times.create),
                start_ms = millis(times.start),
                ready_ms = millis(times.ready),
                "container ready"
            );
        }
    }

    /// Serves an adopted container once its `orca.ready` check passes; removes it when the
    /// check fails as a launch would.
    pub(super) async fn adopt_when_ready(self: Arc<Self>, name: String, id: String) {
        if let Err(reason) = self.wait_ready(&name, &id).await {
            self.launch_failed(&name, Some(id), reason);
            return;
        }
        let st = self.lock();
        if let Some(c) = st.containers.get(&name)
            && c.phase() == Phase::WaitingReady
        {
            c.set_phase(Phase::Ready);
            tracing::info!(container = %name, image = %c.spec.name, "adopted container ready");
        }
    }

    fn create_spec(&self, name: &str) -> Option<CreateSpec> {
        let st = self.lock();
        let c = st.containers.get(name)?;
        if c.phase() != Phase::Queued {
            return None;
        }
        let spec = &c.spec;
        let labels = ManagedLabels {
            instance: self.opts.instance.clone(),
            image: spec.name.clone(),
            spec_hash: c.spec_hash.clone(),
        }
        .to_labels();
        Some(CreateSpec {
            name: name.to_string(),
            image_id: spec.image_id.clone(),
            image_name: spec.name.clone(),
            labels,
            network: self.opts.network.clone(),
            stop_signal: spec.stop_signal.clone(),
            stop_grace: spec.stop_grace,
            limits: spec.limits,
            interactive: spec.method == Some(ConnectionMethod::Attach),
            stdin_open: spec.method == Some(ConnectionMethod::Exec),
        })
    }

    /// Creates and starts, retrying; returns the container id or the last error, and puts
    /// the successful attempt's create and start durations in `times`.
    async fn create_and_start(
        &self,
        name: &str,
        create: &CreateSpec,
        times: &mut PhaseTimes,
    ) -> Result<String, StopReason> {
        let attempts = self.opts.tuning.launch_attempts.max(1);
        let mut last: Option<RuntimeError> = None;
        for attempt in 1..=attempts {
            if attempt > 1 {
                tokio::select! {
                    _ = tokio::time::sleep(self.opts.tuning.launch_retry_delay) => {}
                    _ = self.shutdown.cancelled() => break,
                }
            }
            // Another launch of this image already found the engine failing: leave the
            // retrying to it rather than pile creates onto the engine (`breaker.rs`).
            let now = self.clock.now();
            if let Err(refused) = self
                .lock()
                .breakers
                .may_create(&create.image_name, name, now)
            {
                return Err(StopReason::LaunchFailed(format!(
                    "{}; retry in {}s",
                    refused.reason,
                    refused.retry_after.as_secs()
                )));
            }
            if !self.set_phase_if_live(name, Phase::Creating(attempt)) {
                return Err(StopReason::LaunchFailed("stopped while launching".into()));
            }
            let t = Instant::now();
            let id = match self.runtime.create(create).await {
                Ok(id) => id,
                Err(e) => {
                    self.runtime_error("create", &e);
                    self.attempt_failed(create, name, &e);
                    // A create whose answer was lost leaves a container under our name.
                    if e.said.contains("already in use") || e.said.contains("Conflict") {
                        let _ = self.runtime.remove(name).await;
                    }
                    last = Some(e);
                    continue;
                }
            };
            times.create = t.elapsed();
            self.observe("create", times.create);
            {
                let mut st = self.lock();
                if let Some(c) = st.containers.get_mut(name) {
                    c.id = Some(id.clone());
                }
            }
            if create.interactive {
                self.attach_console(name, &id).await;
            }
            if !self.set_phase_if_live(name, Phase::Starting) {
                let _ = self.runtime.remove(&id).await;
                return Err(StopReason::LaunchFailed("stopped while launching".into()));
            }
            let t = Instant::now();
            match self.runtime.start(&id).await {
                Ok(()) => {
                    times.start = t.elapsed();
                    self.observe("start", times.start);
                    return Ok(id);
                }
                Err(e) => {
                    self.runtime_error("start", &e);
                    self.attempt_failed(create, name, &e);
                    // Half-created: remove it so nothing is leaked, then try afresh.
                    if let Err(e) = self.runtime.remove(&id).await {
                        self.runtime_error("remove", &e);
                    }
                    let mut st = self.lock();
                    if let Some(c) = st.containers.get_mut(name) {
                        c.id = None;
                        c.console = None;
                    }
                    last = Some(e);
                }
            }
        }
        let why = last.map_or_else(|| "shutting down".to_string(), |e| e.to_string());
        Err(StopReason::LaunchFailed(format!(
            "{why} (after {attempts} attempts)"
        )))
    }

    /// Marks the image failing in the engine (`breaker.rs`).
    fn attempt_failed(&self, create: &CreateSpec, name: &str, e: &RuntimeError) {
        let now = self.clock.now();
        self.lock()
            .breakers
            .attempt_failed(&create.image_name, name, e.to_string(), now);
    }

    async fn wait_ready(&self, name: &str, id: &str) -> Result<(), StopReason> {
        if !self.set_phase_if_live(name, Phase::WaitingReady) {
            return Err(StopReason::LaunchFailed("stopped while launching".into()));
        }
        let (check, port) = {
            let st = self.lock();
            let Some(c) = st.containers.get(name) else {
                return Err(StopReason::LaunchFailed("forgotten while launching".into()));
            };
            (c.spec.ready.clone(), c.spec.port)
        };
        let info = self.runtime.inspect(id).await.map_err(|e| {
            self.runtime_error("inspect", &e);
            StopReason::LaunchFailed(e.to_string())
        })?;
        if !info.running {
            return Err(StopReason::Died(info.exit_code));
        }
        {
            let mut st = self.lock();
            if let Some(c) = st.containers.get_mut(name) {
                c.address = info.address;
            }
        }
        if check == ReadyCheck::None {
            return Ok(());
        }
        let Some(addr) = info.address else {
            return Err(StopReason::LaunchFailed(format!(
                "the container has no address on network `{}`, so `orca.ready = {check}` cannot be checked",
                self.opts.network
            )));
        };
        let timeout = self.opts.tuning.ready_timeout;
        let deadline = Instant::now() + timeout;
        let mut pause = PROBE_FIRST_PAUSE;
        loop {
            if self.runtime.probe(addr, port, &check).await {
                return Ok(());
            }
            if !self.is_phase(name, &Phase::WaitingReady) {
                return Err(StopReason::LaunchFailed("stopped while launching".into()));
            }
            if Instant::now() >= deadline {
                return Err(StopReason::NotReady(timeout));
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.shutdown.cancelled() => return Err(StopReason::LaunchFailed("shutting down".into())),
            }
            pause = (pause * 2).min(PROBE_MAX_PAUSE);
        }
    }

    /// A launch that will not succeed: users are told why, the container is removed.
    fn launch_failed(self: &Arc<Self>, name: &str, id: Option<String>, reason: StopReason) {
        let mut effects = Effects::default();
        {
            let mut st = self.lock();
            let Some(c) = st.containers.get(name) else {
                return;
            };
            // Stopped on purpose meanwhile (shutdown cleanup): finish that stop here, since
            // the stop task had no container id to act on.
            if let Phase::Stopping(stop) = c.phase() {
                if let Some(id) = id.or_else(|| c.id.clone()) {
                    effects.remove.push(id);
                }
                self.forget(&mut st, name, stop);
                drop(st);
                self.run(effects);
                return;
            }
            if self.shutdown.is_cancelled() {
                // Leave it for the next start to adopt or remove.
                return;
            }
            let image = c.spec.name.clone();
            tracing::warn!(container = %name, %image, %reason, "container launch failed");
            self.metrics
                .starts
                .with_label_values(&[image.as_str(), "failed"])
                .inc();
            if let Some(id) = id.or_else(|| c.id.clone()) {
                effects.remove.push(id);
            }
            self.forget(&mut st, name, reason);
            effects.persist = true;
        }
        self.run(effects);
    }

    /// Attaches to a created container's stdio before it starts, for its first session. A
    /// failure is not the launch's: that session attaches after the start instead, missing only
    /// what the process printed first.
    async fn attach_console(&self, name: &str, id: &str) {
        match self.runtime.attach(id).await {
            Ok(console) => {
                let mut st = self.lock();
                if let Some(c) = st.containers.get_mut(name) {
                    c.console = Some(console);
                }
            }
            Err(e) => self.runtime_error("attach", &e),
        }
    }

    fn set_phase_if_live(&self, name: &str, phase: Phase) -> bool {
        let st = self.lock();
        match st.containers.get(name) {
            Some(c) if c.is_live() => {
                c.set_phase(phase);
                true
            }
            _ => false,
        }
    }

    fn is_phase(&self, name: &str, phase: &Phase) -> bool {
        let st = self.lock();
        st.containers.get(name).is_some_and(|c| &c.phase() == phase)
    }

    fn observe(&self, phase: &str, d: Duration) {
        self.metrics
            .start_duration
            .with_label_values(&[phase])
            .observe(d.as_secs_f64());
    }
}
