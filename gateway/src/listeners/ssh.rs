//! The SSH listener: protocol settings (modern algorithms only, the authentication methods the
//! resolvers can answer, limits on a connection that has not logged in yet) and the accept loop.

use crate::metrics::ConnectionMetrics;
use std::borrow::Cow;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use russh::keys::{Algorithm, EcdsaCurve, HashAlg, PrivateKey};
use russh::server::Config;
use russh::{MethodKind, MethodSet, Preferred, SshId, cipher, compression, kex, mac};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::accept_error;
use crate::write_through::write_through;

/// Authentication attempts per connection before it is closed (OpenSSH's `MaxAuthTries`).
pub const DEFAULT_MAX_AUTH_ATTEMPTS: usize = 6;
/// How long a failed attempt takes, whatever failed: no timing tells a known user from an
/// unknown one.
pub const DEFAULT_AUTH_REJECTION_TIME: Duration = Duration::from_secs(1);
/// How often an idle client is asked whether it is still there, and how many unanswered
/// asks close its connection: a vanished client must not hold its session open.
pub const KEEPALIVE: (Duration, usize) = (Duration::from_secs(30), 3);

/// Key exchange: post-quantum hybrid and curve25519 first, then only large fixed DH groups
/// (no SHA-1, no group14's 2048 bits), plus the extension markers (strict kex against Terrapin).
const KEX: &[kex::Name] = &[
    kex::MLKEM768X25519_SHA256,
    kex::CURVE25519,
    kex::CURVE25519_PRE_RFC_8731,
    kex::DH_G16_SHA512,
    kex::DH_G18_SHA512,
    kex::EXTENSION_SUPPORT_AS_SERVER,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];

/// Host and user key algorithms: no `ssh-rsa` (RSA with SHA-1 signatures).
const KEYS: &[Algorithm] = &[
    Algorithm::Ed25519,
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP256,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP384,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP521,
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha512),
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha256),
    },
];

/// Authenticated ciphers first; CTR modes (with the MACs below) for older clients; no CBC.
const CIPHERS: &[cipher::Name] = &[
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_GCM,
    cipher::AES_128_GCM,
    cipher::AES_256_CTR,
    cipher::AES_192_CTR,
    cipher::AES_128_CTR,
];

/// Encrypt-then-MAC only, SHA-2 only.
const MACS: &[mac::Name] = &[mac::HMAC_SHA512_ETM, mac::HMAC_SHA256_ETM];

/// The protocol settings for a listener presenting `keys`.
pub fn server_config(keys: Vec<PrivateKey>) -> Config {
    Config {
        server_id: SshId::Standard(Cow::Borrowed(concat!(
            "SSH-2.0-Orca_",
            env!("CARGO_PKG_VERSION")
        ))),
        methods: MethodSet::from(
            &[
                MethodKind::PublicKey,
                MethodKind::Password,
                MethodKind::KeyboardInteractive,
            ][..],
        ),
        auth_rejection_time: DEFAULT_AUTH_REJECTION_TIME,
        // OpenSSH starts with a `none` attempt to learn the methods: answering it at once costs
        // no secret and saves every login a second.
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys,
        max_auth_attempts: DEFAULT_MAX_AUTH_ATTEMPTS,
        // Inactivity is the scheduler's to judge (per image); the transport only drops
        // clients that stopped answering.
        inactivity_timeout: None,
        keepalive_interval: Some(KEEPALIVE.0),
        keepalive_max: KEEPALIVE.1,
        // Interactive sessions: a keystroke must not wait for Nagle.
        nodelay: true,
        preferred: Preferred {
            kex: Cow::Borrowed(KEX),
            key: Cow::Borrowed(KEYS),
            cipher: Cow::Borrowed(CIPHERS),
            mac: Cow::Borrowed(MACS),
            compression: Cow::Borrowed(&[compression::NONE]),
            ..Preferred::DEFAULT
        },
        ..Config::default()
    }
}

/// Makes the handler of each new connection.
pub trait Connections: Send + Sync + 'static {
    /// The per-connection handler.
    type Handler: russh::server::Handler<Error = russh::Error> + Send + 'static;
    /// A handler for a client at `peer`, and a receiver that turns true once it has logged in.
    fn connection(&self, peer: SocketAddr) -> (Self::Handler, watch::Receiver<bool>);
}

/// How the SSH listener treats connections.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// From connecting to logging in.
    pub login_grace: Duration,
    /// Connections served at once; the next client waits in the kernel's backlog.
    pub max_connections: usize,
    /// After shutdown (sessions are told and end at once), for clients to hang up before
    /// their connections are closed.
    pub drain_timeout: Duration,
    /// This listener's `orca_connections_*` counters.
    pub connections: ConnectionMetrics,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            login_grace: crate::config::DEFAULT_SSH_LOGIN_GRACE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            connections: ConnectionMetrics::unregistered(),
        }
    }
}

/// How many SSH connections are served at once unless configured.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// How long clients get to hang up after shutdown ended their sessions.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves SSH on `listener` until `shutdown`. The loop only accepts: each connection's key
/// exchange and login run in its own task, which closes a connection not logged in within
/// `options.login_grace`. After shutdown it stops accepting and returns once every
/// connection has closed, closing those still open after `options.drain_timeout`.
pub async fn serve<C: Connections>(
    listener: TcpListener,
    config: Arc<Config>,
    connections: Arc<C>,
    options: ServeOptions,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let tracker = TaskTracker::new();
    let close = CancellationToken::new();
    let local = listener.local_addr().ok();
    tracing::info!(addr = ?local, "listening for ssh");
    loop {
        // The permit comes first: at the limit, new clients wait in the backlog.
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_error(error, &shutdown).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let (handler, logged_in) = connections.connection(peer);
        let config = config.clone();
        let grace = options.login_grace;
        let close = close.clone();
        let open = options.connections.opened();
        tracker.spawn(async move {
            let _counted = (permit, open);
            tokio::select! {
                ended = connection(stream, config, handler, logged_in, grace) => {
                    if let Err(error) = ended {
                        tracing::debug!(%peer, %error, "ssh connection ended with an error");
                    }
                }
                () = close.cancelled() => {}
            }
        });
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(options.drain_timeout, tracker.wait())
        .await
        .is_err()
    {
        tracing::info!(addr = ?local, open = tracker.len(), "closing the ssh connections left");
        close.cancel();
        tracker.wait().await;
    }
}

async fn connection<H: russh::server::Handler<Error = russh::Error> + Send + 'static>(
    stream: tokio::net::TcpStream,
    config: Arc<Config>,
    handler: H,
    logged_in: watch::Receiver<bool>,
    login_grace: Duration,
) -> Result<(), russh::Error> {
    let stream = Grace {
        inner: stream,
        logged_in,
        deadline: Box::pin(tokio::time::sleep(login_grace)),
        open: false,
    };
    russh::server::run_stream(config, stream, handler)
        .await?
        .await
}

/// The client's stream, which fails its reads once the login grace is over unless the
/// connection logged in by then. Enforced on the socket, not by asking the session to
/// disconnect: a client stalled in the key exchange never lets the session act on a request.
struct Grace {
    inner: tokio::net::TcpStream,
    logged_in: watch::Receiver<bool>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// Logged in: the grace no longer applies.
    open: bool,
}

impl AsyncRead for Grace {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.open {
            this.open = *this.logged_in.borrow();
        }
        // Polled here, the deadline wakes a read that waits on a silent client.
        if !this.open && this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not log in within the login grace",
            )));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

write_through!(impl[] for Grace);

#[cfg(test)]
mod tests {
    use super::*;

    fn names<N: AsRef<str>>(list: &[N]) -> Vec<String> {
        list.iter().map(|n| n.as_ref().to_string()).collect()
    }

    #[test]
    fn only_modern_algorithms_are_offered() {
        let config = server_config(Vec::new());
        let p = &config.preferred;
        let mut offered = names(&p.kex);
        offered.extend(names(&p.cipher));
        offered.extend(names(&p.mac));
        offered.extend(p.key.iter().map(|a| a.as_str().to_string()));
        for weak in [
            "sha1",
            "cbc",
            "group14",
            "group1-",
            "group-exchange",
            "ssh-rsa",
            "3des",
        ] {
            let found: Vec<&String> = offered.iter().filter(|n| n.contains(weak)).collect();
            assert!(found.is_empty(), "{weak}: {found:?}");
        }
        // Without encrypt-then-MAC, a CTR cipher's MAC would be computed over the plaintext.
        assert!(
            names(&p.mac)
                .iter()
                .all(|m| m.ends_with("-etm@openssh.com"))
        );
        assert!(names(&p.kex).contains(&"kex-strict-s-v00@openssh.com".to_string()));
        assert_eq!(names(&p.compression), ["none"]);
        assert_eq!(
            names(&p.kex)[..2],
            ["mlkem768x25519-sha256", "curve25519-sha256"]
        );
    }

    #[test]
    fn methods_are_those_the_resolvers_answer() {
        let config = server_config(Vec::new());
        let methods: Vec<&str> = config.methods.iter().map(<&str>::from).collect();
        assert_eq!(methods, ["publickey", "password", "keyboard-interactive"]);
        assert_eq!(config.max_auth_attempts, DEFAULT_MAX_AUTH_ATTEMPTS);
        assert_eq!(config.inactivity_timeout, None);
        assert!(config.nodelay);
    }
}
