//! An in-memory container engine for unit tests of the scheduler's logic.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{
    Attached, ContainerInfo, CreateSpec, EventStream, ExecSpec, ImageInfo, ManagedLabels, Runtime,
    RuntimeError, RuntimeEvent, TtySize,
};
use crate::images::ReadyCheck;

#[derive(Debug, Clone)]
pub(crate) struct FakeContainer {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) spec: Option<CreateSpec>,
    pub(crate) labels: HashMap<String, String>,
    pub(crate) running: bool,
    pub(crate) exit_code: Option<i64>,
    pub(crate) created: SystemTime,
}

#[derive(Debug, Default)]
struct FakeState {
    images: Vec<ImageInfo>,
    containers: BTreeMap<String, FakeContainer>,
    next: u32,
    fail_creates: u32,
    fail_starts: u32,
    not_ready: bool,
    creates: u32,
    in_flight: u32,
    max_in_flight: u32,
}

/// A fake engine: containers are records; events are sent when tests kill or remove them.
#[derive(Debug)]
pub(crate) struct FakeRuntime {
    state: Mutex<FakeState>,
    events: broadcast::Sender<RuntimeEvent>,
    create_delay: Mutex<Duration>,
}

impl FakeRuntime {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::default(),
            events: broadcast::channel(64).0,
            create_delay: Mutex::new(Duration::ZERO),
        }
    }

    fn st(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    /// Adds (or replaces, by tag) an image; returns its id.
    pub(crate) fn add_image(&self, tag: &str, labels: &[(&str, &str)]) -> String {
        let mut st = self.st();
        st.next += 1;
        let id = format!("sha256:{:064x}", st.next);
        for img in &mut st.images {
            img.repo_tags.retain(|t| t != tag);
        }
        st.images.retain(|i| !i.repo_tags.is_empty());
        let created = i64::from(st.next);
        st.images.push(ImageInfo {
            id: id.clone(),
            repo_tags: vec![tag.to_string()],
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            created,
        });
        drop(st);
        let _ = self.events.send(RuntimeEvent::ImagesChanged);
        id
    }

    /// Inserts a container as if another process had launched it.
    pub(crate) fn insert_container(
        &self,
        name: &str,
        labels: HashMap<String, String>,
        running: bool,
    ) -> String {
        Self::insert(&mut self.st(), name, None, labels, running)
    }

    fn insert(
        st: &mut FakeState,
        name: &str,
        spec: Option<CreateSpec>,
        labels: HashMap<String, String>,
        running: bool,
    ) -> String {
        st.next += 1;
        let id = format!("c{:04}", st.next);
        st.containers.insert(
            id.clone(),
            FakeContainer {
                id: id.clone(),
                name: name.to_string(),
                spec,
                labels,
                running,
                exit_code: (!running).then_some(0),
                created: SystemTime::now(),
            },
        );
        id
    }

    /// Kills a container from outside Orca.
    pub(crate) fn kill(&self, id: &str, code: i64) {
        self.kill_unannounced(id, code);
        let _ = self.events.send(RuntimeEvent::ContainerDied {
            id: id.to_string(),
            exit_code: Some(code),
        });
    }

    /// Kills a container without an event, as when the engine's event stream is down.
    pub(crate) fn kill_unannounced(&self, id: &str, code: i64) {
        if let Some(c) = self.st().containers.get_mut(id) {
            c.running = false;
            c.exit_code = Some(code);
        }
    }

    pub(crate) fn containers(&self) -> Vec<FakeContainer> {
        self.st().containers.values().cloned().collect()
    }

    pub(crate) fn running(&self) -> Vec<FakeContainer> {
        self.containers()
            .into_iter()
            .filter(|c| c.running)
            .collect()
    }

    pub(crate) fn fail_next_creates(&self, n: u32) {
        self.st().fail_creates = n;
    }

    pub(crate) fn fail_next_starts(&self, n: u32) {
        self.st().fail_starts = n;
    }

    pub(crate) fn set_not_ready(&self, not_ready: bool) {
        self.st().not_ready = not_ready;
    }

    pub(crate) fn set_create_delay(&self, d: Duration) {
        *self.create_delay.lock().unwrap() = d;
    }

    pub(crate) fn creates(&self) -> u32 {
        self.st().creates
    }

    pub(crate) fn max_in_flight(&self) -> u32 {
        self.st().max_in_flight
    }

    fn info(c: &FakeContainer) -> ContainerInfo {
        let n = c.id.trim_start_matches('c').parse::<u8>().unwrap_or(1);
        ContainerInfo {
            id: c.id.clone(),
            name: c.name.clone(),
            labels: c.labels.clone(),
            running: c.running,
            state: if c.running { "running" } else { "exited" }.to_string(),
            exit_code: c.exit_code,
            address: c
                .running
                .then_some(IpAddr::V4(Ipv4Addr::new(127, 0, 99, n))),
            created: c.created,
        }
    }
}

#[async_trait]
impl Runtime for FakeRuntime {
    async fn list_images(&self) -> Result<Vec<ImageInfo>, RuntimeError> {
        Ok(self.st().images.clone())
    }

    async fn list_managed(&self, instance: &str) -> Result<Vec<ContainerInfo>, RuntimeError> {
        Ok(self
            .st()
            .containers
            .values()
            .filter(|c| {
                ManagedLabels::from_labels(&c.labels).is_some_and(|m| m.instance == instance)
            })
            .map(Self::info)
            .collect())
    }

    async fn create(&self, spec: &CreateSpec) -> Result<String, RuntimeError> {
        {
            let mut st = self.st();
            st.creates += 1;
            st.in_flight += 1;
            st.max_in_flight = st.max_in_flight.max(st.in_flight);
        }
        let delay = *self.create_delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut st = self.st();
        st.in_flight -= 1;
        let doing = format!(
            "creating container for image `{}` ({})",
            spec.image_name, spec.image_id
        );
        if st.fail_creates > 0 {
            st.fail_creates -= 1;
            return Err(RuntimeError::new(doing, "engine overloaded"));
        }
        if !st.images.iter().any(|i| i.id == spec.image_id) {
            return Err(RuntimeError::new(doing, "no such image"));
        }
        if st.containers.values().any(|c| c.name == spec.name) {
            return Err(RuntimeError::new(
                doing,
                "Conflict. The container name is already in use",
            ));
        }
        let id = Self::insert(
            &mut st,
            &spec.name,
            Some(spec.clone()),
            spec.labels.clone(),
            false,
        );
        st.containers.get_mut(&id).expect("just inserted").exit_code = None;
        Ok(id)
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        let mut st = self.st();
        if st.fail_starts > 0 {
            st.fail_starts -= 1;
            return Err(RuntimeError::new(
                format!("starting container {id}"),
                "cannot start",
            ));
        }
        let c = st.containers.get_mut(id).ok_or_else(|| {
            RuntimeError::new(format!("starting container {id}"), "no such container")
        })?;
        c.running = true;
        Ok(())
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        self.st().containers.get(id).map(Self::info).ok_or_else(|| {
            RuntimeError::new(format!("inspecting container {id}"), "no such container")
        })
    }

    async fn stop(&self, id: &str, _grace: Duration) -> Result<(), RuntimeError> {
        if let Some(c) = self.st().containers.get_mut(id) {
            c.running = false;
            c.exit_code = Some(0);
        }
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let mut st = self.st();
        let key = st
            .containers
            .iter()
            .find(|(k, c)| k.as_str() == id || c.name == id)
            .map(|(k, _)| k.clone());
        if let Some(k) = key {
            st.containers.remove(&k);
        }
        Ok(())
    }

    async fn probe(&self, _addr: IpAddr, _port: Option<u16>, _check: &ReadyCheck) -> bool {
        !self.st().not_ready
    }

    fn events(&self) -> EventStream {
        let rx = self.events.subscribe();
        Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(ev) => return Some((Ok(ev), rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }))
    }

    async fn attach(&self, id: &str) -> Result<Attached, RuntimeError> {
        Err(RuntimeError::new(
            format!("attaching to {id}"),
            "the fake engine has no processes",
        ))
    }

    async fn exec(&self, id: &str, _exec: &ExecSpec) -> Result<Attached, RuntimeError> {
        Err(RuntimeError::new(
            format!("exec in {id}"),
            "the fake engine has no processes",
        ))
    }

    async fn resize(
        &self,
        _id: &str,
        _exec_id: Option<&str>,
        _size: TtySize,
    ) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn exec_exit_code(&self, _exec_id: &str) -> Result<Option<i64>, RuntimeError> {
        Ok(None)
    }

    async fn signal(
        &self,
        id: &str,
        _exec_id: Option<&str>,
        _signal: &str,
    ) -> Result<(), RuntimeError> {
        Err(RuntimeError::new(
            format!("signalling {id}"),
            "the fake engine has no processes",
        ))
    }
}
