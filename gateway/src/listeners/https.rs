//! The HTTPS server: accept, TLS handshake, HTTP/1.1 or HTTP/2 by hyper, graceful drain.
//!
//! [`serve`] owns the accept loop and the connection tasks; what a request means is the
//! [`Handler`]'s business. The same server without TLS is the optional plain `[http]` listener.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

use super::accept_error;
use super::prefixed::Prefixed;
use super::workers::Workers;
use crate::metrics::{ConnectionMetrics, OpenConnection};

/// How many connections are served at once unless configured.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// How long a client has from connecting to finishing the TLS handshake (or, without TLS, to
/// sending its first byte).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an HTTP/1 client has to send a request's headers, and how long an idle
/// keep-alive connection is kept.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long in-flight requests get to finish after shutdown before connections are closed.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// After the drain timeout: how long closing connections get to finish closing.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// How often an HTTP/2 connection is pinged to check the peer is still there (hyper closes
/// it when a ping goes unanswered for its keep-alive timeout, 20 s).
const HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(60);
/// How much of a TLS client's first flight is read before hyper takes over: one TLS record's
/// worth, enough for a request head or the HTTP/2 preface and settings.
const FIRST_READ: usize = 16 * 1024;

/// A response body: streams, so proxied bodies pass through without buffering.
pub type Body =
    http_body_util::combinators::BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A body of the given bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new()
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// Keeps a connection counted — its permit against `max_connections` and its place in the
/// drain at shutdown — while any clone lives. The connection task holds one; work that outlives
/// the request on the same socket (an upgraded stream: a WebSocket) must hold a clone, or
/// hyper's connection would end at the upgrade and the stream would count for nothing.
#[derive(Clone)]
pub struct ConnGuard(Arc<(OwnedSemaphorePermit, TaskTrackerToken, OpenConnection)>);

impl std::fmt::Debug for ConnGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnGuard")
    }
}

impl PartialEq for ConnGuard {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ConnGuard {}

/// What the server knows about the connection a request came on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The peer's IP address as text, for `X-Forwarded-For`: formatted once per connection,
    /// not on every request (an address's `Display` was a third of rewriting the headers).
    pub peer_ip: HeaderValue,
    /// The listener address the client reached.
    pub local: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The ALPN protocol negotiated in the handshake (`h2`, `http/1.1`), if any.
    pub alpn: Option<Vec<u8>>,
    /// The server name the client asked for in the handshake, if any.
    pub sni: Option<String>,
    /// The connection's accounting; clone it into an upgraded stream's task.
    pub guard: ConnGuard,
}

/// Answers requests; one instance serves every connection.
pub trait Handler: Send + Sync + 'static {
    /// The response to `req`, which arrived on `conn`. Errors are responses too: the handler
    /// decides the status page, the server only moves bytes.
    fn handle(
        &self,
        req: hyper::Request<Incoming>,
        conn: &ConnInfo,
    ) -> impl Future<Output = hyper::Response<Body>> + Send;
}

/// Limits and timeouts of one listener.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Connections served at once; the next client waits in the kernel's backlog.
    pub max_connections: usize,
    /// From accept to a finished TLS handshake (without TLS: to the first byte).
    pub handshake_timeout: Duration,
    /// For an HTTP/1 client to send a request's headers; also how long an idle keep-alive
    /// connection waits for its next request.
    pub header_read_timeout: Duration,
    /// After shutdown, for in-flight requests to finish before connections are closed.
    pub drain_timeout: Duration,
    /// Where connections are served: on these worker threads, or (`None`) as tasks of the
    /// runtime running [`serve`].
    pub workers: Option<Arc<Workers>>,
    /// This listener's `orca_connections_*` counters.
    pub connections: ConnectionMetrics,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            workers: None,
            connections: ConnectionMetrics::unregistered(),
        }
    }
}

/// Serves `listener` until `shutdown` is cancelled, then stops accepting, asks every
/// connection to finish its in-flight requests, and returns once they have or after
/// `options.drain_timeout`, closing the rest. With `tls = None` it serves plain HTTP.
///
/// The loop only accepts; handshakes run in the connection tasks under
/// `options.handshake_timeout`, so a slow client never holds up the next one. Accept errors
/// are logged and survived.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: Arc<H>,
    options: ServeOptions,
    shutdown: CancellationToken,
) {
    let server = Arc::new(Server {
        tls: tls.map(TlsAcceptor::from),
        handler,
        builders: Builders::new(&options),
        options,
        shutdown: shutdown.clone(),
        close: CancellationToken::new(),
    });
    let permits = Arc::new(Semaphore::new(server.options.max_connections.max(1)));
    let tracker = TaskTracker::new();
    let local = listener.local_addr().ok();
    let workers = server.options.workers.clone();
    tracing::info!(addr = ?local, tls = server.tls.is_some(), "listening");
    loop {
        // The permit comes first: at the limit, new clients wait in the backlog rather than
        // being accepted and left hanging.
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed; nothing left to serve if it were
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_error(error, &shutdown).await;
                    continue;
                }
            },
        };
        let server = server.clone();
        let guard = ConnGuard(Arc::new((
            permit,
            tracker.token(),
            server.options.connections.opened(),
        )));
        let Some(workers) = &workers else {
            tracker.spawn(async move { server.connection(stream, peer, guard).await });
            continue;
        };
        // A socket belongs to the runtime whose reactor registered it: deregister it here and
        // register it again on the worker, so its readiness wakes that thread alone.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%peer, %error, "connection gone before it was served");
                continue;
            }
        };
        workers.spawn(tracker.track_future(async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => server.connection(stream, peer, guard).await,
                Err(error) => {
                    tracing::warn!(%peer, %error, "cannot serve a connection on a worker")
                }
            }
        }));
    }
    drop(listener);
    tracker.close();
    let open = tracker.len();
    if open > 0 {
        tracing::info!(addr = ?local, open, "draining connections");
    }
    if tokio::time::timeout(server.options.drain_timeout, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(addr = ?local, open = tracker.len(), "drain timeout; closing connections");
        server.close.cancel();
        // Connections close at once; upgraded streams (their guards) are relayed outside the
        // connection tasks and end with the process. Serving stops either way.
        if tokio::time::timeout(CLOSE_WAIT, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(addr = ?local, "upgraded streams still open at shutdown are cut");
        }
    }
}

/// What every connection task shares.
struct Server<H> {
    tls: Option<TlsAcceptor>,
    handler: Arc<H>,
    builders: Builders,
    options: ServeOptions,
    /// Cancelled when the server stops: connections finish in-flight requests and close.
    shutdown: CancellationToken,
    /// Cancelled when the drain timeout passes: connections close now.
    close: CancellationToken,
}

/// The HTTP server per protocol. Over TLS, ALPN decides: HTTP/2 over TLS must be negotiated
/// (RFC 9113 §3.2), so anything but `h2` is HTTP/1.1, and no sniffing of the first bytes runs
/// outside hyper's header read timeout. Plain connections may open with the HTTP/2 preface
/// (prior knowledge), so they are sniffed.
struct Builders {
    auto: auto::Builder<TokioExecutor>,
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new(options: &ServeOptions) -> Self {
        let mut auto = auto::Builder::new(TokioExecutor::new());
        auto.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_read_timeout);
        // Pings find peers that vanished without a FIN, so their permits come back; an idle
        // HTTP/1 connection is closed by the header read timeout of its next request.
        auto.http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(HTTP2_KEEP_ALIVE_INTERVAL);
        Self {
            http1: auto.clone().http1_only(),
            http2: auto.clone().http2_only(),
            auto,
        }
    }

    fn for_alpn(&self, alpn: Option<&[u8]>) -> &auto::Builder<TokioExecutor> {
        match alpn {
            Some(b"h2") => &self.http2,
            _ => &self.http1,
        }
    }
}

impl<H: Handler> Server<H> {
    /// One connection, from handshake to close; holds its guard (its permit) throughout.
    async fn connection(&self, stream: TcpStream, peer: SocketAddr, guard: ConnGuard) {
        // Small writes (HTTP/2 frames, interactive WebSocket traffic) should not wait for
        // Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let local = match stream.local_addr() {
            Ok(local) => local,
            Err(error) => {
                tracing::debug!(%peer, %error, "connection gone before it was served");
                return;
            }
        };
        let peer_ip = HeaderValue::from_str(&peer.ip().to_string())
            .expect("an IP address is a valid header value");
        let mut info = ConnInfo {
            peer,
            peer_ip,
            local,
            tls: self.tls.is_some(),
            alpn: None,
            sni: None,
            guard,
        };
        let Some(acceptor) = &self.tls else {
            // Without TLS there is no handshake to time out, but a client that never speaks
            // would hold its permit until hyper's own timers, which start only once the
            // protocol is known; wait for its first byte under the same timeout.
            let mut byte = [0u8; 1];
            if !spoke(peer, self.early(stream.peek(&mut byte)).await) {
                return;
            }
            self.http(TokioIo::new(stream), info, &self.builders.auto)
                .await;
            return;
        };
        let mut stream = match self.early(acceptor.accept(stream)).await {
            Some(Ok(stream)) => stream,
            Some(Err(error)) => {
                tracing::debug!(%peer, %error, "TLS handshake failed");
                return;
            }
            None => return,
        };
        let (_, session) = stream.get_ref();
        info.alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        info.sni = session.server_name().map(str::to_string);
        // hyper's header read timeout starts with the first byte of a request, so a client
        // that finishes the handshake and then says nothing would keep its permit; wait for
        // its first bytes under the handshake timeout too, and give them back to hyper.
        let mut first = BytesMut::with_capacity(FIRST_READ);
        if !spoke(peer, self.early(stream.read_buf(&mut first)).await) {
            return;
        }
        let builder = self.builders.for_alpn(info.alpn.as_deref());
        let stream = Prefixed::new(first.freeze(), stream);
        self.http(TokioIo::new(stream), info, builder).await;
    }

    /// `step` under the handshake timeout, abandoned on shutdown: a connection that has not
    /// reached HTTP yet has nothing in flight to drain. `None` when abandoned.
    async fn early<T>(&self, step: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            _ = self.shutdown.cancelled() => None,
            done = tokio::time::timeout(self.options.handshake_timeout, step) => {
                if done.is_err() {
                    tracing::debug!("handshake timeout; closing the connection");
                }
                done.ok()
            }
        }
    }

    /// Serves HTTP on an established connection until the client closes it, shutdown drains
    /// it, or the drain timeout closes it.
    async fn http<I>(&self, io: I, info: ConnInfo, builder: &auto::Builder<TokioExecutor>)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let peer = info.peer;
        let info = Arc::new(info);
        let handler = self.handler.clone();
        let service = service_fn(move |req| {
            let handler = handler.clone();
            let info = info.clone();
            async move { Ok::<_, Infallible>(handler.handle(req, &info).await) }
        });
        let conn = builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(conn);
        let result = tokio::select! {
            result = conn.as_mut() => result,
            _ = self.shutdown.cancelled() => {
                // Finish what is in flight (HTTP/2 sends GOAWAY), accept nothing new.
                conn.as_mut().graceful_shutdown();
                tokio::select! {
                    result = conn.as_mut() => result,
                    _ = self.close.cancelled() => return,
                }
            }
            _ = self.close.cancelled() => return,
        };
        if let Err(error) = result {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}

/// Whether a client's first read (under the early timeout) brought bytes; `None` is a timeout
/// or shutdown, `Ok(0)` a client that closed, `Err` a failed connection.
fn spoke(peer: SocketAddr, first: Option<std::io::Result<usize>>) -> bool {
    match first {
        Some(Ok(n)) => n > 0,
        Some(Err(error)) => {
            tracing::debug!(%peer, %error, "connection failed before a request");
            false
        }
        None => false,
    }
}
