//! What a resolver instance's store holds: its WASI context, its memory cap, and the host side
//! of the `log` and `store` imports.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::orca::identity::{log, store, types};
use super::kv::Namespace;

/// Longest log line a plugin may write; longer lines are cut.
const MAX_LOG_LINE: usize = 4096;
/// Log output one instance may produce (log import and stdout/stderr together) before the rest
/// is dropped: a chatty or hostile plugin must not fill the gateway's log.
const LOG_BUDGET: usize = 256 * 1024;

/// The data of one instance's `Store`.
pub(crate) struct State {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: MemoryCap,
    pub(crate) plugin: Arc<str>,
    pub(crate) kv: Namespace,
    /// When the current call must end; read by the epoch callback.
    pub(crate) deadline: std::time::Instant,
    log_used: usize,
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

/// Writes one plugin log line at `level`, cut to [`MAX_LOG_LINE`].
fn emit(plugin: &str, level: log::Level, message: &str) {
    let mut end = message.len().min(MAX_LOG_LINE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let line = message.get(..end).unwrap_or_default();
    match level {
        log::Level::Debug => tracing::debug!(resolver = plugin, "{line}"),
        log::Level::Info => tracing::info!(resolver = plugin, "{line}"),
        log::Level::Warn => tracing::warn!(resolver = plugin, "{line}"),
        log::Level::Error => tracing::error!(resolver = plugin, "{line}"),
    }
}

impl log::Host for State {
    fn log(&mut self, level: log::Level, message: String) {
        if self.log_used >= LOG_BUDGET {
            return;
        }
        self.log_used += message.len().min(MAX_LOG_LINE);
        if self.log_used >= LOG_BUDGET {
            tracing::warn!(resolver = %self.plugin, "log budget of this instance spent; dropping the rest");
        }
        emit(&self.plugin, level, &message);
    }
}

impl State {
    fn refused(&self, e: super::kv::KvError) {
        tracing::warn!(resolver = %self.plugin, "{e}");
    }
}

impl store::Host for State {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        self.kv.get(&key)
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_seconds: Option<u32>) {
        if let Err(e) = self.kv.set(&key, value, ttl_seconds) {
            self.refused(e);
        }
    }

    fn add(&mut self, key: String, value: Vec<u8>, ttl_seconds: Option<u32>) -> bool {
        self.kv.add(&key, value, ttl_seconds).unwrap_or_else(|e| {
            self.refused(e);
            false
        })
    }

    fn delete(&mut self, key: String) {
        self.kv.delete(&key);
    }

    fn increment(&mut self, key: String, delta: i64, ttl_seconds: Option<u32>) -> i64 {
        self.kv
            .increment(&key, delta, ttl_seconds)
            .unwrap_or_else(|e| {
                self.refused(e);
                0
            })
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

/// A plugin's stdout or stderr: lines go to the gateway's log under the plugin's name.
#[derive(Clone)]
pub(crate) struct LogStream {
    pub(crate) plugin: Arc<str>,
    pub(crate) level: log::Level,
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            stream: self.clone(),
            line: Vec::new(),
            budget: LOG_BUDGET,
        })
    }
}

struct LineWriter {
    stream: LogStream,
    line: Vec<u8>,
    budget: usize,
}

impl LineWriter {
    fn emit_line(&mut self) {
        if self.budget == 0 {
            self.line.clear();
            return;
        }
        let text = String::from_utf8_lossy(&self.line).into_owned();
        self.budget = self.budget.saturating_sub(text.len().max(1));
        emit(&self.stream.plugin, self.stream.level, text.trim_end());
        self.line.clear();
    }
}

impl tokio::io::AsyncWrite for LineWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        for &b in buf {
            if b == b'\n' || this.line.len() >= MAX_LOG_LINE {
                this.emit_line();
                if b == b'\n' {
                    continue;
                }
            }
            this.line.push(b);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.line.is_empty() {
            this.emit_line();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.emit_line();
        }
    }
}
