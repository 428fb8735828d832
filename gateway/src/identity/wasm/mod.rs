//! The wasm side of identity: the one `bindgen!` site, the engine, a loaded plugin and its
//! instances, `orca plugin check`, and the host imports, one file per WIT interface the host
//! implements (`log`, `store`).
//!
//! This module holds what a resolver instance's store carries: its WASI context, its memory
//! cap, its store namespace and its log budget.

pub(crate) mod bindings;
pub mod check;
pub(crate) mod engine;
mod log;
pub mod plugin;
mod store;

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::kv::Namespace;
use bindings::orca::identity::types;

/// The data of one instance's `Store`.
pub(crate) struct State {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: MemoryCap,
    pub(crate) plugin: Arc<str>,
    pub(crate) kv: Namespace,
    /// When the current call must end; read by the epoch callback.
    pub(crate) deadline: std::time::Instant,
    pub(crate) log_used: usize,
}

impl State {
    pub(crate) fn new(wasi: WasiCtx, plugin: Arc<str>, kv: Namespace, memory_bytes: usize) -> Self {
        State {
            wasi,
            table: ResourceTable::new(),
            limits: MemoryCap::new(memory_bytes),
            plugin,
            kv,
            deadline: std::time::Instant::now(),
            log_used: 0,
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for State {}

/// A cap on the total linear memory of one instance (all its memories together), so a
/// component with several memories cannot multiply its allowance.
#[derive(Debug)]
pub(crate) struct MemoryCap {
    cap: usize,
    used: usize,
    pub(crate) hit: bool,
}

/// Table elements an instance may grow to; far above what real toolchains use.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl MemoryCap {
    /// The cap in MiB, for messages.
    pub(crate) fn cap_mib(&self) -> u64 {
        (self.cap >> 20) as u64
    }

    fn new(cap: usize) -> Self {
        MemoryCap {
            cap,
            used: 0,
            hit: false,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.used - current.min(self.used) + desired;
        if total > self.cap {
            self.hit = true;
            return Ok(false);
        }
        self.used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

pub(crate) use log::LogStream;

/// A store for `state` with its memory cap and its deadline armed: the guest yields to tokio
/// at every epoch tick and traps once `deadline` (kept in the state, moved per call) passes.
pub(crate) fn new_store(
    engine: &wasmtime::Engine,
    state: State,
    deadline: std::time::Instant,
) -> wasmtime::Store<State> {
    let mut store = wasmtime::Store::new(engine, state);
    store.limiter(|s| &mut s.limits);
    store.data_mut().deadline = deadline;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|ctx| {
        if std::time::Instant::now() >= ctx.data().deadline {
            Ok(wasmtime::UpdateDeadline::Interrupt)
        } else {
            Ok(wasmtime::UpdateDeadline::Yield(1))
        }
    });
    store
}
