//! The last stage: forwards a user's request to their container and streams the answer back.
//!
//! The proxy knows neither the scheduler nor Docker: it is handed a [`Target`] (an address, a
//! meter for activity, and something to keep alive while the exchange lasts) and the
//! [`Forwarded`] facts about the client. Upstream it speaks HTTP/1.1 over pooled keep-alive
//! connections, whatever the client spoke; bodies stream frame by frame in both directions and
//! are never collected. Upgrades (WebSocket and others) are relayed as raw streams, with
//! `splice(2)` when both sides are plain TCP sockets on Linux.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode, Uri, Version};
use tokio_util::sync::CancellationToken;

use crate::signal::EndSignal;

mod body;
mod copy;
mod error;
mod headers;
mod pool;
#[cfg(target_os = "linux")]
mod splice;
mod upgrade;

pub use error::ProxyError;

use body::{Direction, Metered};
use pool::{Conn, Pool, PoolOptions, PooledBody, SendError};
use upgrade::RelayCounters;

/// A streamed body in either direction; errors are boxed so both sides' kinds fit.
pub type Body =
    http_body_util::combinators::BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Reports bytes moved: `(to the container, to the client)`. Called as frames pass, so it must
/// be cheap (the scheduler's `Activity::record` is two atomic adds).
pub type Meter = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// How long to wait for a container to accept a connection, by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default for [`ProxyOptions::response_timeout`].
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long an idle pooled connection to a container is kept, by default.
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How many idle connections are pooled per container address, by default.
///
/// It must exceed the requests a container has in flight at its busiest: past the cap, each
/// connection coming back is closed and the next request opens a new one, so a container
/// busier than the cap churns connections (at 32, `bench/https`'s 64 clients left about
/// 11,800 closed connections to the container in TIME-WAIT within 20 s, and HTTP/2 with 128
/// streams suffered most). An idle connection costs a socket and a few KiB on each side and
/// closes after [`DEFAULT_POOL_IDLE_TIMEOUT`], so the cap only bounds a pathological burst.
pub const DEFAULT_MAX_IDLE_PER_HOST: usize = 1024;

/// Tuning for [`Proxy::new`].
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Longest wait for a container to accept a TCP connection.
    pub connect_timeout: Duration,
    /// Longest wait for a container's response head once the whole request body was sent to
    /// it: a container that accepts and never answers gets a 504, not a client held forever.
    /// Counted from the body's end so that a slow upload is never cut by it.
    pub response_timeout: Duration,
    /// How long an idle keep-alive connection to a container stays in the pool.
    pub pool_idle_timeout: Duration,
    /// Most idle connections kept per container address.
    pub max_idle_per_host: usize,
    /// Relay upgraded plain-TCP streams with `splice(2)` on Linux; off forces the portable copy.
    pub zero_copy: bool,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        Self {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            pool_idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
            max_idle_per_host: DEFAULT_MAX_IDLE_PER_HOST,
            zero_copy: true,
        }
    }
}

/// Where to send a request and how to report its activity.
pub struct Target {
    /// The container's HTTP endpoint.
    pub addr: SocketAddr,
    /// Receives byte counts as they flow, in both directions.
    pub meter: Meter,
    /// Held until the response body (or the upgraded stream) is finished: the caller puts its
    /// scheduler lease here so a long download or an open WebSocket keeps the session open.
    pub keep: Box<dyn Any + Send + Sync>,
    /// Cancelled when the session must end at once (its container died, a limit ended it):
    /// whatever is in flight is cut then. A killed container's connections do not always
    /// close (data still queued for a slow client is lost with its network namespace, and
    /// no FIN or RST ever comes), so without this a transfer could hang for many minutes.
    pub ended: EndSignal,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// What the container is told about the client, and what it must not see. Borrowed from the
/// caller for the one request (nothing here outlives the forwarding of the head).
#[derive(Debug, Clone, Copy)]
pub struct Forwarded<'a> {
    /// The user's id, sent as `X-Orca-User`.
    pub user: &'a str,
    /// The user's groups, sent comma-joined as `X-Orca-Groups`.
    pub groups: &'a [String],
    /// The address of the peer that sent the request (the client, or a trusted balancer in
    /// front of it) as text, sent in `X-Forwarded-For`.
    pub client: &'a HeaderValue,
    /// `"https"` or `"http"`: the scheme the client used, sent as `X-Forwarded-Proto`.
    pub proto: &'static str,
    /// The host the front routed on (the request's authority, else its `Host`), sent as
    /// `Host` and `X-Forwarded-Host`.
    pub host: &'a str,
    /// Orca's own cookie names, removed from the `Cookie` header.
    pub strip_cookies: &'a [String],
    /// Whether the client is a trusted proxy whose `X-Forwarded-For` is extended; otherwise a
    /// client-sent value is replaced, since anyone can forge it.
    pub trust_forwarded: bool,
}

/// How many upgraded streams each relay path has carried since the proxy was made, and the
/// pipes the spliced ones hold now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayStats {
    /// Relayed with `splice(2)`, without copying through userspace.
    pub spliced: u64,
    /// Relayed with the portable userspace copy.
    pub copied: u64,
    /// Pipes held at this moment by spliced streams with bytes in flight or lately moved; an
    /// idle stream holds none.
    pub pipes: u64,
}

/// Forwards requests to containers over a pool of HTTP/1.1 keep-alive connections.
#[derive(Debug)]
pub struct Proxy {
    pool: Arc<Pool>,
    counters: Arc<RelayCounters>,
    zero_copy: bool,
    response_timeout: Duration,
}

impl Proxy {
    /// Builds the proxy and its (initially empty) connection pool. Called within a Tokio
    /// runtime, it also starts the pool's sweeper of idle connections.
    pub fn new(options: ProxyOptions) -> Self {
        let pool = Pool::new(PoolOptions {
            connect_timeout: options.connect_timeout,
            idle_timeout: options.pool_idle_timeout,
            max_idle_per_host: options.max_idle_per_host,
        });
        Self {
            pool,
            counters: Arc::default(),
            zero_copy: options.zero_copy,
            response_timeout: options.response_timeout,
        }
    }

    /// Forwards `req` to `target` and returns the container's response, whose body streams
    /// from the container as the client reads it.
    ///
    /// When the client asks to upgrade and the container answers `101`, the `101` is returned
    /// and a task relays the two upgraded streams; `target.keep` lives until that ends.
    pub async fn forward(
        &self,
        mut req: Request<Incoming>,
        target: Target,
        fwd: &Forwarded<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        let Target {
            addr,
            meter,
            keep,
            ended,
        } = target;

        // HTTP/2 has no Upgrade; only an HTTP/1.1 request can ask to switch.
        let upgrade = match req.version() {
            Version::HTTP_11 => headers::upgrade_protocol(req.headers()),
            _ => None,
        };
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));

        let (mut parts, body) = req.into_parts();
        parts.uri = origin_form(std::mem::take(&mut parts.uri));
        // The pool speaks HTTP/1.1 whatever the client spoke.
        parts.version = Version::HTTP_11;
        headers::rewrite_request(&mut parts.headers, fwd, upgrade)?;
        // The response timer starts once the request body has been sent whole: at once when
        // there is none (hyper may never poll an empty body).
        let body_sent = (!hyper::body::Body::is_end_stream(&body)).then(CancellationToken::new);
        let mut body = Metered::new(
            body,
            meter.clone(),
            Direction::ToContainer,
            None,
            ended.clone(),
        );
        if let Some(done) = &body_sent {
            body = body.signal_end(done.clone());
        }
        let body = body.boxed();

        let sent = self.exchange(addr, Request::from_parts(parts, body));
        let after = self.response_timeout;
        let silence = async {
            if let Some(sent) = &body_sent {
                sent.cancelled().await;
            }
            tokio::time::sleep(after).await;
        };
        let (mut resp, conn) = tokio::select! {
            sent = sent => sent?,
            () = ended.fired() => return Err(ProxyError::SessionEnded { addr }),
            () = silence => return Err(ProxyError::ResponseTimeout { addr, after }),
        };

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                return Err(ProxyError::UnaskedUpgrade { addr });
            };
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            // The connection hands its socket to the upgrade only when polled to its end.
            let upstream = async move {
                conn.finish().await;
                upstream_upgrade.await
            };
            tokio::spawn(upgrade::relay(
                client_upgrade,
                upstream,
                meter,
                keep,
                self.counters.clone(),
                self.zero_copy,
                ended,
            ));
            let (mut parts, _) = resp.into_parts();
            headers::rewrite_response(&mut parts.headers, true);
            let empty = Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed();
            return Ok(Response::from_parts(parts, empty));
        }

        let (mut parts, body) = resp.into_parts();
        headers::rewrite_response(&mut parts.headers, false);
        let body = PooledBody::new(body, conn, &self.pool);
        let body = Metered::new(body, meter, Direction::ToClient, Some(keep), ended).boxed();
        Ok(Response::from_parts(parts, body))
    }

    /// Sends `req` to `addr` on a pooled connection, or a new one; returns the response head
    /// with the connection, which its body must keep polling.
    ///
    /// A pooled connection may have been closed by the container while idle: a request it
    /// never took is sent again once, on a new connection.
    async fn exchange(
        &self,
        addr: SocketAddr,
        mut req: Request<Body>,
    ) -> Result<(Response<Incoming>, Conn), ProxyError> {
        let (mut conn, mut reused) = self.pool.checkout(addr).await?;
        loop {
            match conn.send(req).await {
                Ok(resp) => return Ok((resp, conn)),
                Err(SendError::Unsent(unsent, err)) if reused => {
                    tracing::debug!(%addr, %err, "pooled connection was closed; sending on a new one");
                    req = *unsent;
                    conn = self.pool.connect(addr).await?;
                    reused = false;
                }
                Err(SendError::Unsent(_, err) | SendError::Failed(err)) => {
                    return Err(ProxyError::from_hyper(addr, &err));
                }
            }
        }
    }

    /// How many upgraded streams took each relay path so far, and the pipes held now.
    pub fn relay_stats(&self) -> RelayStats {
        RelayStats {
            spliced: self.counters.spliced.load(Ordering::Relaxed),
            copied: self.counters.copied.load(Ordering::Relaxed),
            pipes: self.counters.pipes.load(Ordering::Relaxed),
        }
    }
}

/// The request target as sent to the container: the client's path and query (origin form),
/// whatever form the client used (HTTP/2 requests carry scheme and authority in the URI).
fn origin_form(uri: Uri) -> Uri {
    if uri.scheme().is_none() && uri.authority().is_none() {
        return uri;
    }
    match uri.path_and_query() {
        Some(pq) => Uri::from(pq.clone()),
        None => Uri::from_static("/"),
    }
}
