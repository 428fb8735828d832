//! One SSH connection's handler: its login is answered by the resolver chain, its session
//! channels are served by [`super::session`].
//!
//! The handler answers the protocol (which requests succeed); each session channel's task
//! acts on the same requests, which russh hands to both. Only session channels are served:
//! port forwarding, agent forwarding and X11 are refused.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use russh::server::{
    Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Response, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use super::auth::{attempt, public_key};
use super::login;
use super::session::{self, Owner, Sessions, env_allowed};
use crate::audit::Record;
use crate::identity::{Credential, Current, Decision};
use crate::listeners::ssh::Connections;
use crate::scheduler::UserId;

/// The SSH front, shared by every connection of a listener.
#[derive(Debug)]
pub struct SshFront {
    identities: Current,
    sessions: Arc<Sessions>,
    tasks: TaskTracker,
}

impl SshFront {
    /// A front asking `identities` who logs in and serving their sessions with `sessions`.
    pub fn new(identities: impl Into<Current>, sessions: Sessions) -> Arc<Self> {
        Arc::new(Self {
            identities: identities.into(),
            sessions: Arc::new(sessions),
            tasks: TaskTracker::new(),
        })
    }

    /// Waits until every session task has finished (after the shutdown token ended them).
    pub async fn drained(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl Connections for SshFront {
    type Handler = Connection;

    fn connection(&self, peer: SocketAddr) -> (Connection, watch::Receiver<bool>) {
        let (logged_in, rx) = watch::channel(false);
        let conn = Connection {
            identities: self.identities.clone(),
            sessions: self.sessions.clone(),
            tasks: self.tasks.clone(),
            peer,
            owner: None,
            open: HashSet::new(),
            started: HashSet::new(),
            logged_in,
        };
        (conn, rx)
    }
}

/// One client connection.
#[derive(Debug)]
pub struct Connection {
    identities: Current,
    sessions: Arc<Sessions>,
    tasks: TaskTracker,
    peer: SocketAddr,
    /// Who logged in and the image the login name asked for, as every session of the
    /// connection sees it.
    owner: Option<Arc<Owner>>,
    /// Session channels open now.
    open: HashSet<ChannelId>,
    /// Channels that asked to run something: a second ask on one channel is refused.
    started: HashSet<ChannelId>,
    logged_in: watch::Sender<bool>,
}

/// Session channels one connection may have open at once (OpenSSH's `MaxSessions`): each is
/// a process in a container, and one client must not open them without bound.
pub const MAX_SESSIONS: usize = 10;

/// The one prompt of keyboard-interactive logins: a password, not echoed.
const PASSWORD_PROMPT: &[(Cow<'static, str>, bool)] = &[(Cow::Borrowed("Password: "), false)];

impl Connection {
    /// Asks the resolvers whether `name` proves itself with `credential` (given by `method`).
    async fn decide(&mut self, name: &str, credential: Credential, method: &'static str) -> Auth {
        let answer = self.ask(name, credential).await;
        let result = if matches!(answer.auth, Auth::Accept) {
            "accepted"
        } else {
            "refused"
        };
        self.sessions
            .scheduler
            .metrics()
            .ssh_logins
            .with_label_values(&[method, result])
            .inc();
        self.sessions.scheduler.audit().record(Record::Login {
            protocol: "ssh",
            user: answer.user,
            method,
            result,
            client: Some(self.peer),
            resolver: answer.resolver,
        });
        answer.auth
    }

    async fn ask(&mut self, name: &str, credential: Credential) -> Answer {
        let login = match login::parse(name) {
            Ok(login) => login,
            Err(e) => {
                tracing::info!(peer = %self.peer, "ssh login name refused: {e}");
                return Answer::refused(name, None);
            }
        };
        let question = attempt(&login, credential, self.peer);
        match self.identities.get().ssh(&question).await {
            Decision::Allow {
                identity, resolver, ..
            } => {
                tracing::info!(peer = %self.peer, user = %identity.id, %resolver, "ssh login");
                let user = identity.id.clone();
                self.owner = Some(Arc::new(Owner {
                    user: UserId::new(identity.id.clone()),
                    identity,
                    image: login.image,
                    peer: self.peer,
                }));
                let _ = self.logged_in.send(true);
                Answer {
                    auth: Auth::Accept,
                    user,
                    resolver: Some(resolver),
                }
            }
            Decision::Deny {
                resolver, reason, ..
            } => {
                tracing::info!(peer = %self.peer, user = %login.user, %resolver, "ssh login refused: {reason}");
                Answer::refused(&login.user, Some(resolver))
            }
            Decision::Unknown => Answer::refused(&login.user, None),
        }
    }
}

/// What the resolvers answered a login attempt, with what the audit log says of it.
struct Answer {
    auth: Auth,
    /// The identity allowed, else the user name tried.
    user: String,
    /// The resolver that decided, when one did.
    resolver: Option<String>,
}

impl Answer {
    fn refused(user: &str, resolver: Option<String>) -> Self {
        Self {
            auth: Auth::reject(),
            user: user.to_string(),
            resolver,
        }
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        _offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        // The resolvers are asked once the client has proved it holds the key; here only the
        // name is checked, so a malformed one costs the client no signature.
        Ok(match login::parse(user) {
            Ok(_) => Auth::Accept,
            Err(_) => Auth::reject(),
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let credential = Credential::PublicKey(public_key(key.public_key));
        Ok(self.decide(user, credential, "publickey").await)
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        Ok(self
            .decide(user, Credential::Password(password.to_string()), "password")
            .await)
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        let Some(mut answers) = response else {
            return Ok(Auth::Partial {
                name: Cow::Borrowed(""),
                instructions: Cow::Borrowed(""),
                prompts: Cow::Borrowed(PASSWORD_PROMPT),
            });
        };
        let Some(password) = answers.next() else {
            return Ok(Auth::reject());
        };
        let password = String::from_utf8_lossy(&password).into_owned();
        Ok(self
            .decide(user, Credential::Password(password), "keyboard-interactive")
            .await)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Dropping the reply refuses the channel: only a logged-in client gets one.
        let Some(owner) = self.owner.clone() else {
            return Ok(());
        };
        if self.open.len() >= MAX_SESSIONS {
            tracing::info!(peer = %self.peer, user = %owner.user, "ssh session refused: {MAX_SESSIONS} already open on this connection");
            return Ok(());
        }
        self.open.insert(channel.id());
        reply.accept().await;
        self.tasks
            .spawn(session::run(channel, owner, self.sessions.clone()));
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _cols: u32,
        _rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if env_allowed(&self.sessions.settings.get().env, name) {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, true, session)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _command: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, true, session)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, name == "sftp", session)
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.open.remove(&channel);
        self.started.remove(&channel);
        Ok(())
    }
}

impl Connection {
    /// Answers a request to run something on `channel`: the first one the session task can
    /// serve succeeds, any later one on the same channel fails.
    fn start(
        &mut self,
        channel: ChannelId,
        servable: bool,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        if servable && self.started.insert(channel) {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }
}
