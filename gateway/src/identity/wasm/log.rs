//! The `log` import, and the plugin's stdout and stderr: lines go to the gateway's log under
//! the resolver's name, cut and budgeted so a chatty or hostile plugin cannot flood it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

use super::State;
use super::bindings::orca::identity::log;

/// Longest log line a plugin may write; longer lines are cut.
const MAX_LOG_LINE: usize = 4096;
/// Log output one instance may produce (log import and stdout/stderr together) before the rest
/// is dropped: a chatty or hostile plugin must not fill the gateway's log.
const LOG_BUDGET: usize = 256 * 1024;

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

impl LogStream {
    fn writer(&self) -> LineWriter {
        LineWriter {
            stream: self.clone(),
            line: Vec::new(),
            budget: LOG_BUDGET,
        }
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.writer())
    }

    /// Lines reach the log inside the plugin's own write call. The default adapter hands the
    /// bytes to a background task, which is aborted when the guest drops the stream: a line
    /// written just before could be lost (seen: a plugin's stderr line never logged).
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.writer())
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

    /// Takes bytes: every complete line (or [`MAX_LOG_LINE`] bytes) goes to the log at once.
    fn push(&mut self, buf: &[u8]) {
        for &b in buf {
            if b == b'\n' || self.line.len() >= MAX_LOG_LINE {
                self.emit_line();
                if b == b'\n' {
                    continue;
                }
            }
            self.line.push(b);
        }
    }
}

/// How many bytes a plugin may write in one call; it asks again for more.
const WRITE_PERMIT: usize = 64 * 1024;

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(WRITE_PERMIT)
    }
}

#[async_trait::async_trait]
impl Pollable for LineWriter {
    /// Always ready: writing is a call to the log.
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LineWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().push(buf);
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
