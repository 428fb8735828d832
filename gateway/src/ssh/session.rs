//! One session channel, from its requests to its exit status.
//!
//! The client first asks for a terminal and variables, then for a shell, a command or the
//! `sftp` subsystem. The image is the login name's (`alice+shell`), else the menu's (a shell
//! with a terminal), else `[ssh] default_image`. The user is placed on a container of it, with
//! progress lines on stderr while it starts and keystrokes typed meanwhile kept for it, and the
//! channel is bridged to it (`bridge.rs`). Every way a session ends is turned into its message
//! and exit status in one place, [`finish`]: the process's own status, 254 when a limit ended
//! the session, 255 when Orca could not serve it (as the original Orca did), 130 when the user
//! left the menu.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use russh::ChannelMsg;
use russh::server::Msg;
use russh::{Channel, ChannelReadHalf, ChannelWriteHalf};
use tokio_util::sync::CancellationToken;

use super::bridge::{self, End};
use super::menu::{Menu, Outcome};
use crate::identity::Identity;
use crate::images::{ConnectionMethod, ImageSpec};
use crate::live::Live;
use crate::runtime::{ExecSpec, RuntimeError, TtySize};
use crate::scheduler::{Arrival, Lease, Lookup, Placement, ScheduleError, Scheduler, UserId};

/// Exit status when a limit (inactivity, lifespan, a stop) ended the session.
pub const EXIT_ENDED: u32 = 254;
/// Exit status when Orca could not serve the session.
pub const EXIT_ERROR: u32 = 255;
/// Exit status when the user left the image menu (as a shell reports Ctrl-C).
pub const EXIT_CANCELLED: u32 = 130;
/// Input kept while the container starts. Past it the channel is not read until the container
/// is ready, so the client waits (SSH flow control): nothing is dropped, and a stream piped
/// into a starting session costs no more memory than this.
const TYPEAHEAD_MAX: usize = 64 * 1024;
/// Terminal size assumed when a client asks for a terminal of size zero.
const DEFAULT_SIZE: TtySize = TtySize { cols: 80, rows: 24 };
/// Finds an SFTP server where distributions install OpenSSH's, or on `PATH`.
const SFTP_SERVER: &str = "for p in /usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server \
     /usr/lib/ssh/sftp-server /usr/libexec/sftp-server /usr/lib/sftp-server; do \
     [ -x \"$p\" ] && exec \"$p\"; done; \
     command -v sftp-server >/dev/null 2>&1 && exec sftp-server; \
     echo 'orca: this image has no sftp-server (install openssh-sftp-server in it)' >&2; exit 127";

/// What the sessions of one SSH front share.
#[derive(Debug)]
pub struct Sessions {
    /// Places users on containers.
    pub scheduler: Scheduler,
    /// `[ssh] default_image` and `env`, which a reload may change: read when a session needs
    /// them.
    pub settings: Live<SshSettings>,
    /// How long a session waits for its container to be ready.
    pub ready_timeout: Duration,
    /// Ends every session when the gateway stops.
    pub shutdown: CancellationToken,
}

/// The `[ssh]` settings a reload may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSettings {
    /// `[ssh] default_image`.
    pub default_image: Option<String>,
    /// `[ssh] env`: names and `PREFIX*` patterns a client may set.
    pub env: Vec<String>,
}

impl SshSettings {
    /// The settings of `[ssh]`.
    pub fn of(ssh: &crate::config::SshConfig) -> Self {
        Self {
            default_image: ssh.default_image.clone(),
            env: ssh.env.clone(),
        }
    }
}

/// Who a connection's sessions belong to.
#[derive(Debug)]
pub struct Owner {
    /// The binding's user.
    pub user: UserId,
    /// What the resolvers said about them.
    pub identity: Identity,
    /// The image the login name named.
    pub image: Option<String>,
    /// The client's address.
    pub peer: SocketAddr,
}

/// Whether a client may set variable `name` in a session.
pub fn env_allowed(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => p == name,
    })
}

/// Why a session could not be served; each has its message and the exit status 255.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The scheduler could not place the user.
    #[error("{0}")]
    Schedule(#[from] ScheduleError),
    /// The engine failed a request for this session.
    #[error("{0}")]
    Runtime(#[from] RuntimeError),
    /// The login named no image and nothing else chose one.
    #[error("name an image in the login, as in `ssh {user}+<image>@…`; yours: {images}")]
    NoImageNamed {
        /// The login's user.
        user: String,
        /// The SSH images the user may use.
        images: String,
    },
    /// No SSH image is open to this user.
    #[error("no image is open to you over SSH; ask your administrator")]
    NoImages,
    /// The named image does not exist or does not serve SSH.
    #[error("there is no SSH image named `{name}`; yours: {images}")]
    UnknownImage {
        /// The name asked for.
        name: String,
        /// The SSH images the user may use.
        images: String,
    },
    /// The user may not use the image.
    #[error("you may not use image `{name}`: {why}")]
    NotAllowed {
        /// The image.
        name: String,
        /// Which rule refused.
        why: &'static str,
    },
    /// The menu refused every name typed.
    #[error("no image chosen")]
    NoneChosen,
    /// A command or subsystem for an image that only forwards a port.
    #[error(
        "image `{0}` connects sessions to a TCP port and runs no commands; connect without one"
    )]
    CommandOnPort(String),
    /// The container's port refused the session.
    #[error("cannot reach port {port} of your container: {error}")]
    Port {
        /// The port (`orca.port`).
        port: u16,
        /// What the connection said.
        error: std::io::Error,
    },
    /// The container did not become ready in time.
    #[error("your container did not become ready within {}s; retry in a moment", .0.as_secs())]
    NotReady(Duration),
    /// The process ended without an exit status the engine would tell.
    #[error("your session's process ended but the engine did not report its exit status")]
    NoExitStatus,
    /// The gateway is stopping.
    #[error("the gateway is shutting down; your container keeps running: reconnect in a moment")]
    ShuttingDown,
}

/// How a session ended before it could report anything.
pub(super) enum Stop {
    /// With a message and exit status.
    Failed(SessionError),
    /// The user left the menu.
    Cancelled,
    /// The client closed the channel: there is no one to tell.
    Gone,
}

impl From<SessionError> for Stop {
    fn from(e: SessionError) -> Self {
        Stop::Failed(e)
    }
}

impl From<ScheduleError> for Stop {
    fn from(e: ScheduleError) -> Self {
        Stop::Failed(e.into())
    }
}

impl From<RuntimeError> for Stop {
    fn from(e: RuntimeError) -> Self {
        Stop::Failed(e.into())
    }
}

/// What the client asked the channel to run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Start {
    Shell,
    Command(String),
    Sftp,
}

/// The client's terminal.
#[derive(Debug, Clone)]
pub(super) struct Terminal {
    pub(super) term: String,
    pub(super) size: TtySize,
}

/// What the client sent before the container was there to take it.
#[derive(Debug, Default)]
pub(super) struct Pending {
    /// Keystrokes, in order.
    pub(super) data: Vec<u8>,
    /// The client closed its input.
    pub(super) eof: bool,
}

/// The channel's requests up to its start.
#[derive(Debug)]
struct Requests {
    start: Start,
    terminal: Option<Terminal>,
    env: Vec<String>,
}

/// The channel's writing half, which knows whether a terminal is at the other end.
pub(super) struct Out {
    pub(super) tx: ChannelWriteHalf<Msg>,
    terminal: bool,
}

impl Out {
    /// A line on the session's stderr: `\r\n`-ended under a terminal, which is in raw mode.
    pub(super) async fn line(&self, text: &str) {
        let end = if self.terminal { "\r\n" } else { "\n" };
        let _ = self
            .tx
            .extended_data_bytes(1, Bytes::from(format!("{text}{end}")))
            .await;
    }

    /// Bytes to the client's terminal.
    async fn data(&self, bytes: Vec<u8>) {
        let _ = self.tx.data_bytes(Bytes::from(bytes)).await;
    }
}

/// Serves one session channel until it ends.
pub async fn run(channel: Channel<Msg>, owner: Arc<Owner>, sessions: Arc<Sessions>) {
    let (mut rx, tx) = channel.split();
    let Some(requests) = requests(&mut rx, &sessions.settings.get().env).await else {
        return;
    };
    let out = Out {
        tx,
        terminal: requests.terminal.is_some(),
    };
    let ended = serve(&mut rx, &out, requests, &owner, &sessions).await;
    let end = finish(&out, &owner, ended).await;
    sessions
        .scheduler
        .metrics()
        .ssh_sessions
        .with_label_values(&[end])
        .inc();
}

/// Turns the way a session ended into its last words and exit status; returns the end's
/// metric label.
async fn finish(out: &Out, owner: &Owner, ended: Result<End, Stop>) -> &'static str {
    let (status, end) = match ended {
        Ok(End::Exited(status)) => (status, "exited"),
        Ok(End::Ended(reason)) => {
            out.line(&format!("\norca: your session ended: {reason}"))
                .await;
            (EXIT_ENDED, "ended")
        }
        Ok(End::ClientClosed) | Err(Stop::Gone) => return "closed",
        Err(Stop::Cancelled) => (EXIT_CANCELLED, "cancelled"),
        Err(Stop::Failed(e)) => {
            tracing::info!(user = %owner.user, peer = %owner.peer, "ssh session failed: {e}");
            out.line(&format!("orca: {e}")).await;
            (EXIT_ERROR, "failed")
        }
    };
    let _ = out.tx.exit_status(status).await;
    let _ = out.tx.eof().await;
    let _ = out.tx.close().await;
    end
}

/// Reads the channel's requests until it asks to run something; `None` when it closes first.
async fn requests(rx: &mut ChannelReadHalf, allowed: &[String]) -> Option<Requests> {
    let mut terminal = None;
    let mut env = Vec::new();
    loop {
        let start = match rx.wait().await? {
            ChannelMsg::RequestPty {
                term,
                col_width,
                row_height,
                ..
            } => {
                terminal = Some(Terminal {
                    term,
                    size: size(col_width, row_height),
                });
                continue;
            }
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                ..
            } => {
                if let Some(t) = &mut terminal {
                    t.size = size(col_width, row_height);
                }
                continue;
            }
            ChannelMsg::SetEnv {
                variable_name,
                variable_value,
                ..
            } => {
                if env_allowed(allowed, &variable_name) {
                    env.push(format!("{variable_name}={variable_value}"));
                }
                continue;
            }
            ChannelMsg::RequestShell { .. } => Start::Shell,
            ChannelMsg::Exec { command, .. } => {
                Start::Command(String::from_utf8_lossy(&command).into_owned())
            }
            ChannelMsg::RequestSubsystem { name, .. } if name == "sftp" => Start::Sftp,
            ChannelMsg::Close => return None,
            // Other subsystems are refused by the handler; data before a start has no reader.
            _ => continue,
        };
        return Some(Requests {
            start,
            terminal,
            env,
        });
    }
}

/// A terminal size from the client's numbers, which may be zero or absurd.
pub(super) fn size(cols: u32, rows: u32) -> TtySize {
    let clamp = |n: u32, default: u16| match u16::try_from(n) {
        Ok(0) => default,
        Ok(n) => n,
        Err(_) => u16::MAX,
    };
    TtySize {
        cols: clamp(cols, DEFAULT_SIZE.cols),
        rows: clamp(rows, DEFAULT_SIZE.rows),
    }
}

async fn serve(
    rx: &mut ChannelReadHalf,
    out: &Out,
    requests: Requests,
    owner: &Owner,
    sessions: &Sessions,
) -> Result<End, Stop> {
    let mut pending = Pending::default();
    let mut terminal = requests.terminal;
    let image = choose(rx, out, &requests.start, &mut terminal, owner, sessions).await?;
    let spec = usable(&image, owner, sessions)?;
    if requests.start != Start::Shell && spec.method == Some(ConnectionMethod::Connect) {
        return Err(SessionError::CommandOnPort(spec.name.clone()).into());
    }
    let placement = sessions
        .scheduler
        .place(&owner.user, &spec.name, Arrival::ssh(owner.peer))?;
    let lease = wait_ready(placement, rx, out, &mut pending, &mut terminal, sessions).await?;
    let mut env = requests.env;
    env.push(format!("ORCA_USER={}", owner.identity.id));
    env.push(format!("ORCA_GROUPS={}", owner.identity.groups.join(",")));
    if let Some(t) = &terminal {
        env.push(format!("TERM={}", t.term));
    }
    let exec = |cmd: Vec<String>| ExecSpec {
        cmd,
        env: env.clone(),
        tty: terminal.is_some(),
        size: terminal.as_ref().map(|t| t.size),
        user: None,
    };
    let sh = |command: &str| vec!["/bin/sh".into(), "-c".into(), command.into()];
    let size = terminal.as_ref().map(|t| t.size);
    let container = match (&requests.start, lease.spec.method) {
        (Start::Shell, Some(ConnectionMethod::Attach)) => {
            bridge::Container::console(&lease, size).await?
        }
        (Start::Shell, Some(ConnectionMethod::Connect)) => bridge::Container::port(&lease).await?,
        (Start::Shell, _) => {
            let cmd = lease
                .spec
                .exec_command
                .clone()
                .unwrap_or_else(|| vec!["/bin/sh".into()]);
            bridge::Container::exec(&lease, &exec(cmd)).await?
        }
        (Start::Command(command), _) => bridge::Container::exec(&lease, &exec(sh(command))).await?,
        (Start::Sftp, _) => {
            // SFTP is a binary protocol: a terminal would mangle it.
            let mut spec = exec(sh(SFTP_SERVER));
            spec.tty = false;
            bridge::Container::exec(&lease, &spec).await?
        }
    };
    bridge::run(container, rx, out, &lease, pending, &sessions.shutdown).await
}

/// The image the session goes to: the login's, the menu's, or the default.
async fn choose(
    rx: &mut ChannelReadHalf,
    out: &Out,
    start: &Start,
    terminal: &mut Option<Terminal>,
    owner: &Owner,
    sessions: &Sessions,
) -> Result<String, Stop> {
    if let Some(image) = &owner.image {
        return Ok(image.clone());
    }
    let images = images_of(owner, sessions);
    match (start, terminal.as_mut()) {
        (Start::Shell, Some(t)) => match images.as_slice() {
            [] => Err(SessionError::NoImages.into()),
            // One choice is no choice: no menu to dismiss.
            [only] => Ok(only.clone()),
            _ => menu(rx, out, images, t, &sessions.shutdown).await,
        },
        _ => match &sessions.settings.get().default_image {
            Some(image) => Ok(image.clone()),
            None if images.is_empty() => Err(SessionError::NoImages.into()),
            None => Err(SessionError::NoImageNamed {
                user: owner.identity.id.clone(),
                images: images.join(", "),
            }
            .into()),
        },
    }
}

/// The SSH images `owner` may use, sorted.
fn images_of(owner: &Owner, sessions: &Sessions) -> Vec<String> {
    let who = &owner.identity;
    let mut names: Vec<String> = sessions
        .scheduler
        .catalogue()
        .specs()
        .into_iter()
        .filter(|s| {
            s.serves_ssh()
                && s.refusal(who.images.as_deref(), who.groups.iter().map(String::as_str))
                    .is_none()
        })
        .map(|s| s.name.clone())
        .collect();
    names.sort();
    names
}

/// The image's settings, when it serves SSH and the owner may use it.
fn usable(name: &str, owner: &Owner, sessions: &Sessions) -> Result<Arc<ImageSpec>, Stop> {
    let unknown = || SessionError::UnknownImage {
        name: name.to_string(),
        images: images_of(owner, sessions).join(", "),
    };
    let spec = match sessions.scheduler.catalogue().lookup(name) {
        Lookup::Ready(spec) if spec.serves_ssh() => spec,
        Lookup::Disabled(reason) => {
            return Err(SessionError::Schedule(ScheduleError::ImageDisabled {
                name: name.to_string(),
                reason,
            })
            .into());
        }
        _ => return Err(unknown().into()),
    };
    let who = &owner.identity;
    match spec.refusal(who.images.as_deref(), who.groups.iter().map(String::as_str)) {
        None => Ok(spec),
        Some(why) => Err(SessionError::NotAllowed {
            name: spec.name.clone(),
            why,
        }
        .into()),
    }
}

/// Runs the image menu in the client's terminal.
async fn menu(
    rx: &mut ChannelReadHalf,
    out: &Out,
    images: Vec<String>,
    terminal: &mut Terminal,
    shutdown: &CancellationToken,
) -> Result<String, Stop> {
    let mut menu = Menu::new(images, terminal.size.cols, terminal.size.rows);
    out.data(menu.render()).await;
    loop {
        let msg = tokio::select! {
            msg = rx.wait() => msg,
            () = shutdown.cancelled() => {
                out.data(menu.clear()).await;
                return Err(SessionError::ShuttingDown.into());
            }
        };
        match msg {
            Some(ChannelMsg::Data { data }) => match menu.input(&data) {
                Outcome::Pending => out.data(menu.render()).await,
                Outcome::Chosen(image) => {
                    out.data(menu.clear()).await;
                    return Ok(image);
                }
                Outcome::Cancelled => {
                    out.data(menu.clear()).await;
                    return Err(Stop::Cancelled);
                }
                Outcome::GaveUp => {
                    out.data(menu.clear()).await;
                    return Err(SessionError::NoneChosen.into());
                }
            },
            Some(ChannelMsg::WindowChange {
                col_width,
                row_height,
                ..
            }) => {
                terminal.size = size(col_width, row_height);
                menu.resize(terminal.size.cols, terminal.size.rows);
                out.data(menu.render()).await;
            }
            Some(ChannelMsg::Eof | ChannelMsg::Close) | None => return Err(Stop::Gone),
            Some(_) => {}
        }
    }
}

/// Waits until the container is ready, telling the user how its start goes and keeping what
/// they type meanwhile.
async fn wait_ready(
    placement: Placement,
    rx: &mut ChannelReadHalf,
    out: &Out,
    pending: &mut Pending,
    terminal: &mut Option<Terminal>,
    sessions: &Sessions,
) -> Result<Lease, Stop> {
    let image = placement.spec.name.clone();
    let mut phases = placement.phases();
    let mut watching = true;
    if placement.phase() != crate::scheduler::Phase::Ready {
        out.line(&format!("orca: starting image `{image}`")).await;
    }
    let ready = placement.ready();
    tokio::pin!(ready);
    let deadline = tokio::time::sleep(sessions.ready_timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            // Ready first: input already queued goes straight to the process then.
            biased;
            lease = &mut ready => return Ok(lease?),
            changed = phases.changed(), if watching => {
                if changed.is_err() {
                    watching = false;
                    continue;
                }
                let phase = phases.borrow_and_update().clone();
                if phase.is_starting() {
                    out.line(&format!("orca: {image}: {phase}")).await;
                }
            }
            msg = rx.wait(), if pending.data.len() < TYPEAHEAD_MAX => match msg {
                Some(ChannelMsg::Data { data }) => pending.data.extend_from_slice(&data),
                Some(ChannelMsg::Eof) => pending.eof = true,
                Some(ChannelMsg::WindowChange { col_width, row_height, .. }) => {
                    if let Some(t) = terminal.as_mut() {
                        t.size = size(col_width, row_height);
                    }
                }
                Some(ChannelMsg::Close) | None => return Err(Stop::Gone),
                Some(_) => {}
            },
            () = &mut deadline => return Err(SessionError::NotReady(sessions.ready_timeout).into()),
            () = sessions.shutdown.cancelled() => return Err(SessionError::ShuttingDown.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_pass_by_name_or_prefix_only() {
        let allowed: Vec<String> = ["LANG", "LC_*"].iter().map(|s| s.to_string()).collect();
        assert!(env_allowed(&allowed, "LANG"));
        assert!(env_allowed(&allowed, "LC_ALL"));
        assert!(!env_allowed(&allowed, "LANGUAGE"));
        assert!(!env_allowed(&allowed, "LD_PRELOAD"));
        assert!(!env_allowed(&allowed, "PATH"));
        assert!(!env_allowed(&[], "LANG"));
    }

    #[test]
    fn terminal_sizes_are_kept_in_range() {
        assert_eq!(
            size(120, 40),
            TtySize {
                cols: 120,
                rows: 40
            }
        );
        assert_eq!(size(0, 0), DEFAULT_SIZE);
        assert_eq!(
            size(u32::MAX, 70_000),
            TtySize {
                cols: u16::MAX,
                rows: u16::MAX
            }
        );
    }
}
