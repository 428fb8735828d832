//! One SSH connection's handler: its login is answered by the resolver chain.
//!
//! Sessions (the image menu, attach / exec / connect to the container) are not served yet:
//! a logged-in client's session channels are refused (russh's default handler), which
//! OpenSSH reports as a failed channel open.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use russh::server::{Auth, PublicKeyOffer, Response, VerifiedPublicKey};
use tokio::sync::watch;

use super::auth::{attempt, public_key};
use super::login::{self, Login};
use crate::identity::{Credential, Decision, Identities, Identity};
use crate::listeners::ssh::Connections;

/// The SSH front, shared by every connection of a listener.
#[derive(Debug)]
pub struct SshFront {
    identities: Arc<Identities>,
}

impl SshFront {
    /// A front asking `identities` who logs in.
    pub fn new(identities: Arc<Identities>) -> Arc<Self> {
        Arc::new(Self { identities })
    }
}

impl Connections for SshFront {
    type Handler = Connection;

    fn connection(&self, peer: SocketAddr) -> (Connection, watch::Receiver<bool>) {
        let (logged_in, rx) = watch::channel(false);
        let conn = Connection {
            identities: self.identities.clone(),
            peer,
            who: None,
            logged_in,
        };
        (conn, rx)
    }
}

/// One client connection.
#[derive(Debug)]
pub struct Connection {
    identities: Arc<Identities>,
    peer: SocketAddr,
    /// Who logged in, and what the login name asked for.
    who: Option<(Login, Identity)>,
    logged_in: watch::Sender<bool>,
}

/// The one prompt of keyboard-interactive logins: a password, not echoed.
const PASSWORD_PROMPT: &[(Cow<'static, str>, bool)] = &[(Cow::Borrowed("Password: "), false)];

impl Connection {
    /// Asks the resolvers whether `name` proves itself with `credential`.
    async fn decide(&mut self, name: &str, credential: Credential) -> Auth {
        let login = match login::parse(name) {
            Ok(login) => login,
            Err(e) => {
                tracing::info!(peer = %self.peer, "ssh login name refused: {e}");
                return Auth::reject();
            }
        };
        let question = attempt(&login, credential, self.peer);
        match self.identities.ssh(&question).await {
            Decision::Allow {
                identity, resolver, ..
            } => {
                tracing::info!(peer = %self.peer, user = %identity.id, %resolver, "ssh login");
                self.who = Some((login, identity));
                let _ = self.logged_in.send(true);
                Auth::Accept
            }
            Decision::Deny {
                resolver, reason, ..
            } => {
                tracing::info!(peer = %self.peer, user = %login.user, %resolver, "ssh login refused: {reason}");
                Auth::reject()
            }
            Decision::Unknown => Auth::reject(),
        }
    }

    /// Who logged in, once someone has.
    pub fn who(&self) -> Option<&(Login, Identity)> {
        self.who.as_ref()
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
        Ok(self.decide(user, credential).await)
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        Ok(self
            .decide(user, Credential::Password(password.to_string()))
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
        Ok(self.decide(user, Credential::Password(password)).await)
    }
    // Session channels: the default handler refuses them until sessions are built.
}
