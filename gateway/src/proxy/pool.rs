//! Keep-alive HTTP/1.1 connections to containers, driven by the task that uses them.
//!
//! Why not hyper-util's pooled client: it runs every connection in a task of its own, spawned
//! wherever the connection was opened, so a request could hand its exchange to another
//! thread and wait for the answer to come back. Here the request's own task polls the
//! connection: [`Conn::send`] while it waits for the response head, then the response body
//! ([`PooledBody`]) while it streams, which hands the connection back to the pool once the
//! body has ended. With the connection workers that keeps a request and its container
//! connection on one thread (alone, on the multi-threaded runtime, it measured no faster:
//! BENCHMARKS.md). A connection is only ever polled by one task at a time.
//!
//! An idle connection is nobody's to poll, so a close by the container goes unnoticed until
//! the connection is next looked at: when it is taken from the pool (it is polled once then,
//! and a closed one is dropped), and by a sweep every half idle timeout that drops closed and
//! expired ones, so no socket to a stopped container lingers.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::thread::ThreadId;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{Body, ProxyError};

/// Polls a connection: reads and writes its socket, and completes when it closes or, after a
/// `101`, when it has handed its socket to the upgrade.
type Driver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// One keep-alive connection to a container.
pub(super) struct Conn {
    send: SendRequest<Body>,
    /// `None` once the connection has ended: a completed driver is dropped, never polled
    /// again. In a mutex only to be `Sync`, as response bodies must be: the connection is only
    /// ever reached through `&mut`, where `Mutex::get_mut` takes no lock.
    driver: Mutex<Option<Driver>>,
    addr: SocketAddr,
    /// The thread that opened the connection. On a connection worker (a single-threaded
    /// runtime) that is the reactor its socket is registered with, whose thread every
    /// readiness event wakes.
    home: ThreadId,
}

impl Conn {
    /// Moves the connection's I/O along; true once it has closed (or been upgraded).
    ///
    /// An ended connection's driver is dropped at once: that fails a request still queued on
    /// it and hands the request back (see [`Conn::send`]).
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        let driver = self
            .driver
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(running) = driver else {
            return true;
        };
        let Poll::Ready(result) = running.as_mut().poll(cx) else {
            return false;
        };
        *driver = None;
        if let Err(err) = result {
            // Whoever had a request on it gets the same error from hyper.
            tracing::debug!(addr = %self.addr, %err, "connection to the container ended");
        }
        true
    }

    /// Whether the connection can take a new request now: open, and idle.
    ///
    /// Polls it once with a no-op waker to learn of a close or of the end of the last
    /// exchange; the next real poll registers a real waker again.
    fn reusable(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        !self.drive(&mut cx) && self.send.is_ready()
    }

    /// Sends `req`, polling the connection until the response head arrives.
    pub(super) async fn send(
        &mut self,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, SendError> {
        let mut sent = pin!(self.send.try_send_request(req));
        std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = sent.as_mut().poll(cx) {
                return Poll::Ready(result);
            }
            if !self.drive(cx) {
                return Poll::Pending;
            }
            // The connection ended without answering. A request it had taken has been failed
            // by now; one still queued was failed and handed back when its driver was dropped.
            sent.as_mut().poll(cx)
        })
        .await
        .map_err(|mut err| match err.take_message() {
            Some(req) => SendError::Unsent(Box::new(req), err.into_error()),
            None => SendError::Failed(err.into_error()),
        })
    }

    /// Polls the connection to its end: after a `101`, that is when it hands over its socket.
    pub(super) async fn finish(mut self) {
        std::future::poll_fn(|cx| {
            if self.drive(cx) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

/// Why [`Conn::send`] failed.
pub(super) enum SendError {
    /// The connection closed before it took the request, which comes back unsent: a pooled
    /// connection the container closed while it was idle. Safe to send again elsewhere.
    Unsent(Box<Request<Body>>, hyper::Error),
    /// The request was (at least partly) sent; it cannot be sent again.
    Failed(hyper::Error),
}

struct Idle {
    conn: Conn,
    since: Instant,
}

impl Idle {
    /// Still worth keeping at `now`: within the idle timeout, open and idle.
    fn usable(&mut self, now: Instant, timeout: Duration) -> bool {
        now.duration_since(self.since) < timeout && self.conn.reusable()
    }
}

/// Tuning for [`Pool::new`].
#[derive(Debug, Clone, Copy)]
pub(super) struct PoolOptions {
    pub(super) connect_timeout: Duration,
    pub(super) idle_timeout: Duration,
    pub(super) max_idle_per_host: usize,
}

/// Idle keep-alive connections by container address; most recently used first out, so the
/// connections kept warm are as few as the load needs.
pub(super) struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
    options: PoolOptions,
}

impl Pool {
    /// Makes the pool, and its sweeper when a Tokio runtime is running (it stops with the pool).
    pub(super) fn new(options: PoolOptions) -> Arc<Self> {
        let pool = Arc::new(Self {
            idle: Mutex::default(),
            options,
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let every = (options.idle_timeout / 2).max(Duration::from_millis(10));
            runtime.spawn(sweep(Arc::downgrade(&pool), every));
        }
        pool
    }

    /// A connection to `addr` from the pool if one is idle and still open, else a new one;
    /// and whether it was reused.
    pub(super) async fn checkout(&self, addr: SocketAddr) -> Result<(Conn, bool), ProxyError> {
        if let Some(conn) = self.take_idle(addr) {
            return Ok((conn, true));
        }
        Ok((self.connect(addr).await?, false))
    }

    fn take_idle(&self, addr: SocketAddr) -> Option<Conn> {
        let now = Instant::now();
        // Closed connections are dropped after the lock is released: closing is a system call.
        let mut stale = Vec::new();
        let found = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let list = idle.get_mut(&addr)?;
            let here = std::thread::current().id();
            let mut found = None;
            while !list.is_empty() {
                // This thread's own connection if there is one, else the most recent: used
                // from another worker, a connection wakes its home thread on every event.
                let at = list
                    .iter()
                    .rposition(|e| e.conn.home == here)
                    .unwrap_or(list.len() - 1);
                let mut entry = list.remove(at);
                if entry.usable(now, self.options.idle_timeout) {
                    found = Some(entry.conn);
                    break;
                }
                stale.push(entry);
            }
            found
        };
        drop(stale);
        found
    }

    /// Opens a new connection to `addr`.
    pub(super) async fn connect(&self, addr: SocketAddr) -> Result<Conn, ProxyError> {
        let connecting = TcpStream::connect(addr);
        let stream = tokio::time::timeout(self.options.connect_timeout, connecting)
            .await
            .map_err(|_| ProxyError::ConnectTimeout { addr })?
            .map_err(|err| ProxyError::Connect {
                addr,
                reason: err.to_string(),
            })?;
        // Interactive traffic (WebSocket frames, small API answers) must not wait for Nagle.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%addr, %err, "cannot disable Nagle on a connection to the container");
        }
        let (send, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| ProxyError::from_hyper(addr, &err))?;
        Ok(Conn {
            send,
            driver: Mutex::new(Some(Box::pin(conn.with_upgrades()))),
            addr,
            home: std::thread::current().id(),
        })
    }

    /// Takes back a connection whose exchange is over, if it can serve another.
    fn put_back(&self, mut conn: Conn) {
        if !conn.reusable() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry(conn.addr).or_default();
        if list.len() < self.options.max_idle_per_host {
            list.push(Idle {
                conn,
                since: Instant::now(),
            });
            return;
        }
        drop(idle);
        // Over the cap: `conn` is dropped here, outside the lock, which closes it.
    }

    /// Drops closed and expired idle connections, and empty entries of addresses gone quiet.
    fn sweep(&self) {
        let now = Instant::now();
        let mut stale = Vec::new();
        {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let timeout = self.options.idle_timeout;
            idle.retain(|_, list| {
                stale.extend(list.extract_if(.., |entry| !entry.usable(now, timeout)));
                !list.is_empty()
            });
        }
        drop(stale);
    }

    /// Idle connections held for `addr`.
    #[cfg(test)]
    fn idle_count(&self, addr: SocketAddr) -> usize {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.get(&addr).map_or(0, Vec::len)
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

async fn sweep(pool: Weak<Pool>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        pool.sweep();
    }
}

/// A response body from a pooled connection: polls the connection while the body streams,
/// and gives the connection back to the pool when the body has ended.
///
/// Dropped before its end (the client went away), the connection is dropped with it, which
/// closes it: the rest of the body is still on its way and would corrupt the next exchange.
pub(super) struct PooledBody {
    inner: Incoming,
    conn: Option<Conn>,
    pool: Weak<Pool>,
}

impl PooledBody {
    pub(super) fn new(inner: Incoming, conn: Conn, pool: &Arc<Pool>) -> Self {
        Self {
            inner,
            conn: Some(conn),
            pool: Arc::downgrade(pool),
        }
    }

    fn release(&mut self) {
        if let (Some(conn), Some(pool)) = (self.conn.take(), self.pool.upgrade()) {
            pool.put_back(conn);
        }
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        // The connection first: it is what reads the body off the socket into `inner`. If it
        // has closed, `inner` ends or fails on its own.
        if let Some(conn) = &mut this.conn {
            conn.drive(cx);
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.release();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // A body that was empty from the start (`HEAD`, `204`, `304`) may never be polled.
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBody")
            .field("pooled", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, Empty};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

    /// A container's port: connections to it are accepted by the test, which answers by hand.
    async fn container() -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        (listener, addr)
    }

    fn pool(idle_timeout: Duration) -> Arc<Pool> {
        Pool::new(PoolOptions {
            connect_timeout: Duration::from_secs(5),
            idle_timeout,
            max_idle_per_host: 8,
        })
    }

    fn get() -> Request<Body> {
        let empty = Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed();
        Request::get("/")
            .header("host", "app.test")
            .body(empty)
            .expect("a valid request")
    }

    /// Reads one request head from `sock` and writes `response`.
    async fn answer(sock: &mut TcpStream, response: &[u8]) {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            assert_eq!(sock.read(&mut byte).await.expect("read the request"), 1);
            head.push(byte[0]);
        }
        sock.write_all(response).await.expect("write the response");
    }

    /// Sends a request on `conn`, answered on `sock` with `response`; returns the body.
    async fn send(
        pool: &Arc<Pool>,
        mut conn: Conn,
        sock: &mut TcpStream,
        response: &[u8],
    ) -> PooledBody {
        let (resp, ()) = tokio::join!(conn.send(get()), answer(sock, response));
        let Ok(resp) = resp else {
            panic!("the request failed")
        };
        PooledBody::new(resp.into_body(), conn, pool)
    }

    /// One whole exchange: `ok` read to the end of its body.
    async fn round_trip(pool: &Arc<Pool>, conn: Conn, sock: &mut TcpStream) {
        let body = send(pool, conn, sock, OK).await;
        let bytes = body.collect().await.expect("the body").to_bytes();
        assert_eq!(&bytes[..], b"ok");
    }

    /// Waits until `sock` reads end of file or a reset: the pool closed its side.
    async fn closed(sock: &mut TcpStream) {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await;
        match read.expect("the pool closes the connection within 5 s") {
            Ok(0) | Err(_) => {}
            Ok(n) => panic!("expected the connection closed, read {n} bytes"),
        }
    }

    /// Gives loopback time to deliver a close to the other side.
    async fn let_close_arrive() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    #[tokio::test]
    async fn a_connection_is_reused_until_the_container_closes_it() {
        let (listener, addr) = container().await;
        let pool = pool(Duration::from_secs(60));
        let (conn, reused) = pool.checkout(addr).await.expect("connect");
        assert!(!reused);
        let (mut sock, _) = listener.accept().await.expect("accept");
        round_trip(&pool, conn, &mut sock).await;
        assert_eq!(
            pool.idle_count(addr),
            1,
            "the ended exchange returns its connection"
        );

        let (conn, reused) = pool.checkout(addr).await.expect("checkout");
        assert!(reused);
        // Answered on the same socket: the pooled connection carried it.
        round_trip(&pool, conn, &mut sock).await;

        drop(sock);
        let_close_arrive().await;
        let (conn, reused) = pool.checkout(addr).await.expect("checkout");
        assert!(
            !reused,
            "a connection the container closed is not handed out"
        );
        let (mut sock, _) = listener.accept().await.expect("accept");
        round_trip(&pool, conn, &mut sock).await;
    }

    #[tokio::test]
    async fn a_request_a_closed_connection_never_took_comes_back_unsent() {
        let (listener, addr) = container().await;
        let pool = pool(Duration::from_secs(60));
        let (mut conn, _) = pool.checkout(addr).await.expect("connect");
        drop(listener.accept().await.expect("accept"));
        let_close_arrive().await;
        let sent = tokio::time::timeout(Duration::from_secs(5), conn.send(get()));
        match sent
            .await
            .expect("a closed connection fails the request at once")
        {
            Err(SendError::Unsent(req, _)) => assert_eq!(req.uri(), "/"),
            Err(SendError::Failed(err)) => {
                panic!("the request was lost with the connection: {err}")
            }
            Ok(_) => panic!("a closed connection answered"),
        }
    }

    #[tokio::test]
    async fn the_sweep_closes_idle_connections_past_the_idle_timeout() {
        let (listener, addr) = container().await;
        let pool = pool(Duration::from_millis(200));
        let (conn, _) = pool.checkout(addr).await.expect("connect");
        let (mut sock, _) = listener.accept().await.expect("accept");
        round_trip(&pool, conn, &mut sock).await;
        assert_eq!(pool.idle_count(addr), 1);
        // Nobody asks for a connection again: only the sweep can close it.
        closed(&mut sock).await;
        assert_eq!(pool.idle_count(addr), 0);
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_closes_its_connection() {
        let (listener, addr) = container().await;
        let pool = pool(Duration::from_secs(60));
        let (conn, _) = pool.checkout(addr).await.expect("connect");
        let (mut sock, _) = listener.accept().await.expect("accept");
        let partial = b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\nfirst bytes";
        let mut body = send(&pool, conn, &mut sock, partial).await;
        let frame = body.frame().await.expect("a frame").expect("data");
        assert_eq!(frame.data_ref().map(|d| &d[..]), Some(&b"first bytes"[..]));
        drop(body);
        assert_eq!(
            pool.idle_count(addr),
            0,
            "the rest of the body would corrupt the next exchange"
        );
        closed(&mut sock).await;
    }

    #[tokio::test]
    async fn an_empty_body_returns_its_connection_even_if_never_polled() {
        let (listener, addr) = container().await;
        let pool = pool(Duration::from_secs(60));
        let (conn, _) = pool.checkout(addr).await.expect("connect");
        let (mut sock, _) = listener.accept().await.expect("accept");
        let body = send(&pool, conn, &mut sock, b"HTTP/1.1 204 No Content\r\n\r\n").await;
        drop(body);
        assert_eq!(pool.idle_count(addr), 1);
        let (conn, reused) = pool.checkout(addr).await.expect("checkout");
        assert!(reused);
        round_trip(&pool, conn, &mut sock).await;
    }

    #[tokio::test]
    async fn connections_past_the_cap_are_closed() {
        let (listener, addr) = container().await;
        let pool = Pool::new(PoolOptions {
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_idle_per_host: 1,
        });
        let (first, _) = pool.checkout(addr).await.expect("connect");
        let (second, _) = pool.checkout(addr).await.expect("connect");
        let (mut sock1, _) = listener.accept().await.expect("accept");
        let (mut sock2, _) = listener.accept().await.expect("accept");
        round_trip(&pool, first, &mut sock1).await;
        round_trip(&pool, second, &mut sock2).await;
        assert_eq!(pool.idle_count(addr), 1);
        closed(&mut sock2).await;
    }
}
