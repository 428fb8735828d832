//! The bytes between a session channel and its container: the main process's console
//! (`attach`), a command (`exec`), or a TCP port (`connect`).
//!
//! Both directions run at once, so a process that writes while its input is full never
//! deadlocks against us; each is held back by its reader (the client's SSH window, the
//! container's pipe). Output travels as the engine's `Bytes`, uncopied into the channel.
//! Bytes both ways count as activity; window changes resize the terminal; signals go to the
//! process. The session ends when the process's output ends (its exit status is returned),
//! when the client closes the channel, when a limit ends the user's session, or when the
//! gateway stops.

use std::pin::Pin;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use russh::{ChannelMsg, ChannelReadHalf, Sig};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::io::ReaderStream;
use tokio_util::sync::CancellationToken;

use super::session::{EXIT_ERROR, Out, Pending, SessionError, size};
use crate::runtime::{ExecSpec, Output, OutputStream, RuntimeError, TtySize};
use crate::scheduler::Lease;

/// How long a finished process's exit status may take to show in the engine.
const EXIT_STATUS_WAIT: Duration = Duration::from_secs(5);
/// How long reaching a container's port may take.
const PORT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a bridged session ended.
#[derive(Debug)]
pub(super) enum End {
    /// The process exited with this status.
    Exited(u32),
    /// A limit ended the user's session, for this reason.
    Ended(String),
    /// The client closed the channel.
    ClientClosed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Console,
    Exec,
    Port,
}

/// The container side of a session.
pub(super) struct Container {
    output: OutputStream,
    input: Pin<Box<dyn AsyncWrite + Send>>,
    exec_id: Option<String>,
    kind: Kind,
    /// Input goes to a terminal, which has no end of input: the client's EOF is not passed on
    /// (as sshd does), since the engine would close the whole stream, output included.
    tty: bool,
}

impl Container {
    /// The main process's console, sized to the client's terminal.
    pub(super) async fn console(
        lease: &Lease,
        size: Option<TtySize>,
    ) -> Result<Self, RuntimeError> {
        let attached = lease.attach().await?;
        if let Some(size) = size {
            resize(lease, None, size).await;
        }
        Ok(Self {
            output: attached.output,
            input: attached.input,
            exec_id: None,
            kind: Kind::Console,
            tty: true,
        })
    }

    /// A command run for this session.
    pub(super) async fn exec(lease: &Lease, spec: &ExecSpec) -> Result<Self, RuntimeError> {
        let attached = lease.exec(spec).await?;
        Ok(Self {
            output: attached.output,
            input: attached.input,
            exec_id: attached.exec_id,
            kind: Kind::Exec,
            tty: spec.tty,
        })
    }

    /// The container's `orca.port`.
    pub(super) async fn port(lease: &Lease) -> Result<Self, SessionError> {
        let port = lease.spec.port.unwrap_or_default();
        let failed = |error| SessionError::Port { port, error };
        let address = lease.address.ok_or_else(|| {
            failed(std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                "the container has no address on Orca's network",
            ))
        })?;
        let stream =
            tokio::time::timeout(PORT_CONNECT_TIMEOUT, TcpStream::connect((address, port)))
                .await
                .map_err(|_| failed(std::io::ErrorKind::TimedOut.into()))?
                .map_err(failed)?;
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let output = ReaderStream::new(read)
            .map_ok(Output::Stdout)
            .map_err(|e| RuntimeError::new("reading from the container's port", e.to_string()));
        Ok(Self {
            output: Box::pin(output),
            input: Box::pin(write),
            exec_id: None,
            kind: Kind::Port,
            tty: false,
        })
    }
}

/// Moves bytes until the session ends.
pub(super) async fn run(
    container: Container,
    rx: &mut ChannelReadHalf,
    out: &Out,
    lease: &Lease,
    pending: Pending,
    shutdown: &CancellationToken,
) -> Result<End, super::session::Stop> {
    let Container {
        mut output,
        mut input,
        exec_id,
        kind,
        tty,
    } = container;
    let exec = exec_id.as_deref();
    let activity = lease.activity();
    let to_container = async {
        // Whether the process still takes input: after it stops, keystrokes are dropped
        // (as sshd does) while the output drains. A terminal's input never ends.
        let mut open = true;
        let ends = !tty;
        if !pending.data.is_empty() {
            activity.record(pending.data.len() as u64, 0);
            open = input.write_all(&pending.data).await.is_ok();
        }
        if pending.eof && open && ends {
            let _ = input.shutdown().await;
            open = false;
        }
        loop {
            match rx.wait().await {
                Some(ChannelMsg::Data { data }) => {
                    activity.record(data.len() as u64, 0);
                    if open && input.write_all(&data).await.is_err() {
                        open = false;
                    }
                }
                Some(ChannelMsg::Eof) => {
                    if open && ends {
                        let _ = input.shutdown().await;
                        open = false;
                    }
                }
                Some(ChannelMsg::WindowChange {
                    col_width,
                    row_height,
                    ..
                }) if kind != Kind::Port => {
                    resize(lease, exec, size(col_width, row_height)).await;
                }
                Some(ChannelMsg::Signal { signal }) if kind != Kind::Port => {
                    forward_signal(lease, exec, &signal).await;
                }
                Some(ChannelMsg::Close) | None => return,
                Some(_) => {}
            }
        }
    };
    let to_client = async {
        while let Some(frame) = output.next().await {
            let sent = match frame? {
                Output::Stdout(bytes) => {
                    activity.record(0, bytes.len() as u64);
                    out.tx.data_bytes(bytes).await
                }
                Output::Stderr(bytes) => {
                    activity.record(0, bytes.len() as u64);
                    out.tx.extended_data_bytes(1, bytes).await
                }
            };
            if sent.is_err() {
                return Ok(false);
            }
        }
        Ok::<bool, RuntimeError>(true)
    };
    tokio::select! {
        // Output first: a process that has finished reports its status, even when the
        // session's end arrives in the same instant.
        biased;
        finished = to_client => match finished {
            Ok(true) => {}
            Ok(false) => return Ok(End::ClientClosed),
            Err(e) => return Err(SessionError::Runtime(e).into()),
        },
        () = to_container => return Ok(End::ClientClosed),
        reason = lease.ended() => return Ok(End::Ended(reason)),
        () = shutdown.cancelled() => return Err(SessionError::ShuttingDown.into()),
    }
    if kind == Kind::Port {
        return Ok(End::Exited(0));
    }
    // A console whose container Orca stopped (a limit) ended the session, not the process.
    if kind == Kind::Console && lease.stopped_by_orca() {
        return Ok(End::Ended(lease.ended().await));
    }
    exit_status(lease, exec).await
}

/// The finished process's exit status, once the engine reports it.
async fn exit_status(lease: &Lease, exec: Option<&str>) -> Result<End, super::session::Stop> {
    let deadline = Instant::now() + EXIT_STATUS_WAIT;
    loop {
        match lease.exit_code(exec).await {
            Ok(Some(code)) => {
                return Ok(End::Exited(u32::try_from(code).unwrap_or(EXIT_ERROR)));
            }
            Ok(None) => {}
            Err(e) if e.not_found => {}
            Err(e) => return Err(SessionError::Runtime(e).into()),
        }
        if Instant::now() >= deadline {
            return Err(SessionError::NoExitStatus.into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Passes a client's signal to the process; one the engine cannot deliver is logged (SSH has
/// no answer to a signal request).
async fn forward_signal(lease: &Lease, exec: Option<&str>, signal: &Sig) {
    let Some(name) = signal_name(signal) else {
        tracing::debug!(container = %lease.container, ?signal, "ignored a malformed signal name");
        return;
    };
    if let Err(e) = lease.signal(exec, name).await {
        tracing::info!(container = %lease.container, "a client's signal was not delivered: {e}");
    }
}

/// The name of a signal as the engine takes it (`TERM`), when it looks like one.
fn signal_name(signal: &Sig) -> Option<&str> {
    Some(match signal {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        // Other names (USR2, WINCH…) pass when they look like one; the engine judges them.
        Sig::Custom(name)
            if (1..=8).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) =>
        {
            name
        }
        Sig::Custom(_) => return None,
    })
}

/// Resizes a terminal; a failure only leaves the old size, so it is logged, not fatal.
async fn resize(lease: &Lease, exec: Option<&str>, size: TtySize) {
    if let Err(e) = lease.resize(exec, size).await {
        tracing::debug!(container = %lease.container, "resizing a terminal failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_signal_like_names_reach_the_engine() {
        assert_eq!(signal_name(&Sig::TERM), Some("TERM"));
        assert_eq!(signal_name(&Sig::Custom("USR2".into())), Some("USR2"));
        for bad in ["", "term", "TERM; rm", "VERYLONGNAME", "SIG-1"] {
            assert_eq!(signal_name(&Sig::Custom(bad.into())), None, "{bad}");
        }
    }
}
