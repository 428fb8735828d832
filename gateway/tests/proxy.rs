//! The proxy stage end to end over real sockets (tier 2): a test client talks to a hyper "front"
//! server whose service calls `Proxy::forward`, which talks to a hyper origin standing in for
//! the user's container.

// The helpers below are test harness: a panic in them is a failed test, as in the tests.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use orca::error::ErrorSource;
use orca::proxy::{Body, Forwarded, Proxy, ProxyOptions, RelayStats, Target};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Barrier, Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const MIB: usize = 1024 * 1024;
/// The size of the large transfers: far more than any buffer on the way.
const BIG: usize = 100 * MIB;
/// Requests `/hold` keeps in flight at the origin at once: more than the 32 idle connections
/// the proxy used to pool per container.
const HELD: usize = 64;

/// A hyper server standing in for a user's container.
struct Origin {
    addr: SocketAddr,
    /// Connections accepted, to see keep-alive reuse.
    accepts: Arc<AtomicUsize>,
    /// Notified by `/upload` when the first body bytes arrive.
    upload_started: Arc<Notify>,
    /// `/download` sends its first chunk, then waits for this before the rest.
    release: Arc<Notify>,
    /// `/hold` answers once [`HELD`] requests are waiting on it together.
    hold: Arc<Barrier>,
}

async fn origin() -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = Origin {
        addr: listener.local_addr().unwrap(),
        accepts: Arc::default(),
        upload_started: Arc::default(),
        release: Arc::default(),
        hold: Arc::new(Barrier::new(HELD)),
    };
    let (accepts, started, release, hold) = (
        origin.accepts.clone(),
        origin.upload_started.clone(),
        origin.release.clone(),
        origin.hold.clone(),
    );
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            accepts.fetch_add(1, Ordering::SeqCst);
            let (started, release, hold) = (started.clone(), release.clone(), hold.clone());
            let service = service_fn(move |req| {
                origin_route(req, started.clone(), release.clone(), hold.clone())
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades(),
            );
        }
    });
    origin
}

type OriginBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn origin_route(
    mut req: Request<Incoming>,
    upload_started: Arc<Notify>,
    release: Arc<Notify>,
    hold: Arc<Barrier>,
) -> Result<Response<OriginBody>, hyper::Error> {
    match req.uri().path() {
        "/hold" => {
            hold.wait().await;
            Ok(Response::new(
                Full::new(Bytes::from_static(b"held")).boxed(),
            ))
        }
        "/echo" => {
            // Every header the container saw, one per line, in order received.
            let mut text = format!("@version: {:?}\n", req.version());
            for (name, value) in req.headers() {
                text.push_str(&format!("{name}: {}\n", value.to_str().unwrap()));
            }
            let resp = Response::builder()
                .header("connection", "x-resp-hop")
                .header("x-resp-hop", "1")
                .header("keep-alive", "timeout=5")
                .header("x-app", "yes")
                .body(Full::new(Bytes::from(text)).boxed())
                .unwrap();
            Ok(resp)
        }
        "/upload" => {
            let mut body = req.into_body();
            let mut total = 0usize;
            while let Some(frame) = body.frame().await {
                if let Some(data) = frame?.data_ref() {
                    if total == 0 && !data.is_empty() {
                        upload_started.notify_one();
                    }
                    total += data.len();
                }
            }
            Ok(Response::new(
                Full::new(Bytes::from(total.to_string())).boxed(),
            ))
        }
        "/download" => {
            let (tx, rx) = mpsc::channel::<Bytes>(4);
            tokio::spawn(async move {
                let chunk = Bytes::from(vec![7u8; MIB]);
                tx.send(chunk.clone()).await.unwrap();
                release.notified().await;
                for _ in 1..BIG / MIB {
                    if tx.send(chunk.clone()).await.is_err() {
                        return;
                    }
                }
            });
            let frames = stream::unfold(rx, |mut rx| async move {
                let chunk = rx.recv().await?;
                Some((Ok::<_, Infallible>(Frame::data(chunk)), rx))
            });
            Ok(Response::new(StreamBody::new(frames).boxed()))
        }
        "/ws" => {
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = on.await else { return };
                let (mut r, mut w) = tokio::io::split(TokioIo::new(upgraded));
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
            let resp = Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("upgrade", "websocket")
                .header("connection", "upgrade")
                .body(Full::new(Bytes::new()).boxed())
                .unwrap();
            Ok(resp)
        }
        _ => Ok(Response::builder()
            .status(404)
            .body(Full::new(Bytes::new()).boxed())
            .unwrap()),
    }
}

/// The hyper server in front of the proxy, as Orca's front will be, and what its targets saw.
struct Front {
    addr: SocketAddr,
    proxy: Arc<Proxy>,
    to_container: Arc<AtomicU64>,
    to_client: Arc<AtomicU64>,
    /// `keep` values currently alive.
    keeps: Arc<AtomicUsize>,
    errors: Arc<Mutex<Vec<(ErrorSource, String)>>>,
    /// Every target's `ended`: cancelling it ends every session, as a dead container does.
    ended: CancellationToken,
}

#[derive(Clone, Copy, Default)]
struct FrontOptions {
    trust_forwarded: bool,
    /// Serve connections over a wrapper around the socket, so the upgraded client side is not
    /// a bare `TcpStream` (as behind TLS) and the portable relay must run.
    wrap: bool,
    /// Speak HTTP/2 (prior knowledge) to clients instead of HTTP/1.1.
    http2: bool,
    /// Overrides the proxy's connect timeout.
    connect_timeout: Option<Duration>,
    /// Overrides the proxy's response timeout.
    response_timeout: Option<Duration>,
}

/// Counts itself in `keeps` while alive, standing in for a scheduler lease.
struct KeepGuard(Arc<AtomicUsize>);

impl Drop for KeepGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn front(upstream: SocketAddr, options: FrontOptions) -> Front {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = Front {
        addr: listener.local_addr().unwrap(),
        proxy: Arc::new(Proxy::new(ProxyOptions {
            connect_timeout: options
                .connect_timeout
                .unwrap_or(orca::proxy::DEFAULT_CONNECT_TIMEOUT),
            response_timeout: options
                .response_timeout
                .unwrap_or(orca::proxy::DEFAULT_RESPONSE_TIMEOUT),
            ..ProxyOptions::default()
        })),
        to_container: Arc::default(),
        to_client: Arc::default(),
        keeps: Arc::default(),
        errors: Arc::default(),
        ended: CancellationToken::new(),
    };
    let (proxy, to_container, to_client, keeps, errors) = (
        front.proxy.clone(),
        front.to_container.clone(),
        front.to_client.clone(),
        front.keeps.clone(),
        front.errors.clone(),
    );
    let ended = front.ended.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = listener.accept().await.unwrap();
            let (proxy, to_container, to_client, keeps, errors) = (
                proxy.clone(),
                to_container.clone(),
                to_client.clone(),
                keeps.clone(),
                errors.clone(),
            );
            let ended = ended.clone();
            let service = service_fn(move |req: Request<Incoming>| {
                let (proxy, to_container, to_client, keeps, errors) = (
                    proxy.clone(),
                    to_container.clone(),
                    to_client.clone(),
                    keeps.clone(),
                    errors.clone(),
                );
                let ended = ended.clone();
                async move {
                    keeps.fetch_add(1, Ordering::SeqCst);
                    let target = Target {
                        addr: upstream,
                        meter: Arc::new(move |c, s| {
                            to_container.fetch_add(c, Ordering::SeqCst);
                            to_client.fetch_add(s, Ordering::SeqCst);
                        }),
                        keep: Box::new(KeepGuard(keeps)),
                        ended: ended.clone().into(),
                    };
                    let groups = ["dev".to_string(), "ops".to_string()];
                    let strip = ["orca_session".to_string()];
                    let client =
                        hyper::header::HeaderValue::from_str(&peer.ip().to_string()).unwrap();
                    let fwd = Forwarded {
                        user: "alice",
                        groups: &groups,
                        client: &client,
                        proto: "http",
                        host: "app.example",
                        strip_cookies: &strip,
                        trust_forwarded: options.trust_forwarded,
                    };
                    let resp = match proxy.forward(req, target, &fwd).await {
                        Ok(resp) => resp,
                        Err(err) => {
                            let text = err.to_string();
                            errors
                                .lock()
                                .unwrap()
                                .push((err.source_side(), text.clone()));
                            Response::builder()
                                .status(StatusCode::BAD_GATEWAY)
                                .body(Full::new(Bytes::from(text)).map_err(|n| match n {}).boxed())
                                .unwrap()
                        }
                    };
                    Ok::<Response<Body>, Infallible>(resp)
                }
            });
            if options.http2 {
                let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service);
                tokio::spawn(conn);
            } else if options.wrap {
                let io = TokioIo::new(Wrapped(tcp));
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .with_upgrades();
                tokio::spawn(conn);
            } else {
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades();
                tokio::spawn(conn);
            }
        }
    });
    front
}

/// A socket behind a type the proxy cannot see through.
struct Wrapped(TcpStream);

impl AsyncRead for Wrapped {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Wrapped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

type ClientBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// An HTTP/1.1 client connection to `addr`.
async fn client(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<ClientBody> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

fn get(path: &str) -> hyper::http::request::Builder {
    Request::get(path).header("host", "app.example")
}

fn empty() -> ClientBody {
    Full::new(Bytes::new()).boxed()
}

async fn text(resp: Response<Incoming>) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Waits until no `keep` of `front` is alive any more (the lease stand-in was dropped).
async fn keeps_released(front: &Front, what: &str) {
    eventually(what, || front.keeps.load(Ordering::SeqCst) == 0).await;
}

/// Polls `cond` until it holds, failing after a generous deadline.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn container_sees_orca_headers_not_forgeries_cookies_or_hops() {
    let origin = origin().await;
    let front = front(origin.addr, FrontOptions::default()).await;
    let mut client = client(front.addr).await;

    let req = get("/echo?q=1")
        .header("x-orca-user", "mallory")
        .header("X-Orca-Groups", "admin")
        .header("x-orca-whatever", "1")
        .header("cookie", "orca_session=secret; theme=dark")
        .header("cookie", "lang=en")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic eA==")
        .header("te", "trailers")
        .header("x-forwarded-for", "6.6.6.6")
        .header("accept", "text/plain")
        .body(empty())
        .unwrap();
    let resp = client.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // The container's own hop-by-hop headers do not reach the client either.
    assert!(resp.headers().get("x-resp-hop").is_none());
    assert!(resp.headers().get("keep-alive").is_none());
    assert_eq!(resp.headers().get("x-app").unwrap(), "yes");
    let seen = text(resp).await;
    let lines: Vec<&str> = seen.lines().collect();

    for expected in [
        "host: app.example",
        "x-orca-user: alice",
        "x-orca-groups: dev,ops",
        "cookie: theme=dark; lang=en",
        "x-forwarded-for: 127.0.0.1",
        "x-forwarded-proto: http",
        "x-forwarded-host: app.example",
        "accept: text/plain",
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in {seen}");
    }
    for name in ["x-orca-user", "x-orca-groups", "cookie", "x-forwarded-for"] {
        let count = lines
            .iter()
            .filter(|l| l.starts_with(&format!("{name}:")))
            .count();
        assert_eq!(count, 1, "{name} sent {count} times: {seen}");
    }
    for gone in [
        "x-orca-whatever",
        "x-hop",
        "keep-alive",
        "proxy-authorization",
        "te",
        "connection",
    ] {
        assert!(
            !lines.iter().any(|l| l.starts_with(&format!("{gone}:"))),
            "{gone} reached the container: {seen}"
        );
    }
    assert!(!seen.contains("secret") && !seen.contains("mallory"));
}

#[tokio::test]
async fn trusted_forwarded_for_is_extended() {
    let origin = origin().await;
    let options = FrontOptions {
        trust_forwarded: true,
        ..Default::default()
    };
    let front = front(origin.addr, options).await;
    let mut client = client(front.addr).await;
    let req = get("/echo")
        .header("x-forwarded-for", "6.6.6.6")
        .body(empty())
        .unwrap();
    let seen = text(client.send_request(req).await.unwrap()).await;
    assert!(
        seen.lines()
            .any(|l| l == "x-forwarded-for: 6.6.6.6, 127.0.0.1"),
        "{seen}"
    );
}

#[tokio::test]
async fn upload_of_100_mib_streams_to_the_container() {
    let origin = origin().await;
    let front = front(origin.addr, FrontOptions::default()).await;
    let mut client = client(front.addr).await;

    let (tx, rx) = mpsc::channel::<Bytes>(2);
    let frames = stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), rx))
    });
    let req = Request::post("/upload")
        .header("host", "app.example")
        .body(StreamBody::new(frames).boxed())
        .unwrap();
    let response = tokio::spawn(client.send_request(req));

    let chunk = Bytes::from(vec![1u8; MIB]);
    tx.send(chunk.clone()).await.unwrap();
    // The container must be reading before the client has sent more than its first MiB: a
    // proxy that collected the body would hold it until all 100 MiB arrived.
    tokio::time::timeout(Duration::from_secs(10), origin.upload_started.notified())
        .await
        .expect("the container got no bytes while the upload was still being sent");
    for _ in 1..BIG / MIB {
        tx.send(chunk.clone()).await.unwrap();
    }
    drop(tx);

    let resp = response.await.unwrap().unwrap();
    assert_eq!(text(resp).await, BIG.to_string());
    assert_eq!(front.to_container.load(Ordering::SeqCst), BIG as u64);
}

/// Starts a download through the front and reads its first MiB, after which the origin waits
/// for `release`: the client gets that MiB only if the proxy streams. Returns the client (its
/// connection lives as long as it does), the body, and the bytes read so far.
async fn first_mib_of_download(
    front: &Front,
) -> (
    hyper::client::conn::http1::SendRequest<ClientBody>,
    Incoming,
    usize,
) {
    let mut client = client(front.addr).await;
    let resp = client
        .send_request(get("/download").body(empty()).unwrap())
        .await
        .unwrap();
    let mut body = resp.into_body();
    let mut received = 0usize;
    while received < MIB {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("the first MiB did not arrive while the origin was waiting")
            .unwrap()
            .unwrap();
        received += frame.data_ref().map_or(0, Bytes::len);
    }
    (client, body, received)
}

#[tokio::test]
async fn download_of_100_mib_streams_and_holds_keep_until_the_end() {
    let origin = origin().await;
    let front = front(origin.addr, FrontOptions::default()).await;
    let (_client, mut body, mut received) = first_mib_of_download(&front).await;
    assert_eq!(
        front.keeps.load(Ordering::SeqCst),
        1,
        "keep must live while the body is still open"
    );
    origin.release.notify_one();
    while let Some(frame) = body.frame().await {
        received += frame.unwrap().data_ref().map_or(0, Bytes::len);
    }
    assert_eq!(received, BIG);
    assert_eq!(front.to_client.load(Ordering::SeqCst), BIG as u64);
    keeps_released(&front, "keep to be dropped after the body ended").await;
}

#[tokio::test]
async fn sequential_requests_reuse_one_upstream_connection() {
    let origin = origin().await;
    let front = front(origin.addr, FrontOptions::default()).await;
    for _ in 0..3 {
        // A new client connection each time: reuse must come from the proxy's pool.
        let mut client = client(front.addr).await;
        let resp = client
            .send_request(get("/echo").body(empty()).unwrap())
            .await
            .unwrap();
        text(resp).await;
        // The pool takes the connection back once the exchange is complete; wait for that
        // rather than racing it.
        keeps_released(&front, "the response to finish").await;
    }
    assert_eq!(origin.accepts.load(Ordering::SeqCst), 1);
}

/// Regression: with 32 idle connections pooled per container, a container busier than that
/// had every connection past the 32nd closed on its way back to the pool, so the next busy
/// moment opened new ones (`bench/https` saw a TCP connect on about one request in ten).
#[tokio::test]
async fn a_container_with_64_requests_in_flight_keeps_its_64_connections() {
    let origin = origin().await;
    let front = front(origin.addr, FrontOptions::default()).await;
    let mut clients = Vec::new();
    for _ in 0..HELD {
        clients.push(client(front.addr).await);
    }
    for round in 1..=2 {
        // The origin answers only when all of them are in flight, so each round needs HELD
        // upstream connections at once.
        let answers = clients.iter_mut().map(|c| {
            let resp = c.send_request(get("/hold").body(empty()).unwrap());
            async move { text(resp.await.unwrap()).await }
        });
        for answer in futures_util::future::join_all(answers).await {
            assert_eq!(answer, "held");
        }
        keeps_released(&front, "every exchange to finish").await;
        assert_eq!(
            origin.accepts.load(Ordering::SeqCst),
            HELD,
            "round {round}: the second round must reuse the first round's connections"
        );
    }
}

#[tokio::test]
async fn connect_refused_is_the_containers_fault() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let front = front(addr, FrontOptions::default()).await;
    let mut client = client(front.addr).await;
    let resp = client
        .send_request(get("/").body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let errors = front.errors.lock().unwrap().clone();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, ErrorSource::Container);
    assert!(
        errors[0].1.to_lowercase().contains("refused"),
        "{}",
        errors[0].1
    );
    assert!(errors[0].1.contains(&addr.to_string()), "{}", errors[0].1);
}

/// Asks the front for a WebSocket upgrade by hand and checks its `101` head; the stream is
/// then the upgraded one.
async fn upgraded(front: &Front) -> TcpStream {
    let mut tcp = TcpStream::connect(front.addr).await.unwrap();
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(
            tcp.read(&mut byte).await.unwrap(),
            1,
            "closed during the handshake"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    tcp
}

/// Does a WebSocket-style upgrade through the front and echoes `payload` through it.
async fn upgrade_echo(front: &Front, payload: &[u8]) {
    let tcp = upgraded(front).await;
    let (mut r, mut w) = tcp.into_split();
    let sent = payload.to_vec();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        // Half-close: the echo ends its side when it sees this, closing the stream.
        w.shutdown().await.unwrap();
    });
    let mut echoed = Vec::new();
    r.read_to_end(&mut echoed).await.unwrap();
    writer.await.unwrap();
    assert!(
        echoed == payload,
        "echo differs ({} bytes back)",
        echoed.len()
    );
}

#[tokio::test]
async fn upgrade_over_plain_tcp_is_spliced() {
    let origin = origin().await;
    let front = front(origin.addr, FrontOptions::default()).await;
    let payload: Vec<u8> = (0..4 * MIB).map(|i| (i % 251) as u8).collect();
    upgrade_echo(&front, &payload).await;

    let stats = front.proxy.relay_stats();
    let expected = if cfg!(target_os = "linux") {
        (1, 0)
    } else {
        (0, 1)
    };
    assert_eq!((stats.spliced, stats.copied), expected, "{stats:?}");
    assert_eq!(
        front.to_container.load(Ordering::SeqCst),
        payload.len() as u64
    );
    assert_eq!(front.to_client.load(Ordering::SeqCst), payload.len() as u64);
    keeps_released(&front, "keep to be dropped when the stream closed").await;
    assert_eq!(
        front.proxy.relay_stats().pipes,
        0,
        "a closed stream kept a pipe"
    );
}

/// A spliced stream holds a pipe per direction only while bytes flow: held while the client
/// does not read the echo, given back once the stream has been quiet for a moment while it
/// stays open, and taken again when bytes come.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn an_idle_spliced_stream_gives_its_pipes_back() {
    let origin = origin().await;
    let front = front(origin.addr, FrontOptions::default()).await;
    let (mut r, mut w) = upgraded(&front).await.into_split();
    let payload: Vec<u8> = (0..4 * MIB).map(|i| (i % 249) as u8).collect();
    let sent = payload.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w
    });
    // The echo backs up behind a client that does not read: bytes wait in the pipes.
    eventually("a pipe held while bytes are in flight", || {
        front.proxy.relay_stats().pipes > 0
    })
    .await;
    let mut echoed = vec![0u8; payload.len()];
    r.read_exact(&mut echoed).await.unwrap();
    assert!(echoed == payload, "the echo differs");
    let mut w = writer.await.unwrap();
    eventually(
        "the pipes given back while the stream is open and quiet",
        || front.proxy.relay_stats().pipes == 0,
    )
    .await;
    w.write_all(b"again").await.unwrap();
    let mut again = [0u8; 5];
    r.read_exact(&mut again).await.unwrap();
    assert_eq!(&again, b"again");
    w.shutdown().await.unwrap();
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "{} bytes after the end", rest.len());
    keeps_released(&front, "keep to be dropped when the stream closed").await;
    assert_eq!(front.proxy.relay_stats().pipes, 0);
}

#[tokio::test]
async fn upgrade_over_other_streams_is_copied() {
    let origin = origin().await;
    let options = FrontOptions {
        wrap: true,
        ..Default::default()
    };
    let front = front(origin.addr, options).await;
    let payload: Vec<u8> = (0..4 * MIB).map(|i| (i % 253) as u8).collect();
    upgrade_echo(&front, &payload).await;

    assert_eq!(
        front.proxy.relay_stats(),
        RelayStats {
            spliced: 0,
            copied: 1,
            pipes: 0,
        }
    );
    assert_eq!(
        front.to_container.load(Ordering::SeqCst),
        payload.len() as u64
    );
    assert_eq!(front.to_client.load(Ordering::SeqCst), payload.len() as u64);
    keeps_released(&front, "keep to be dropped when the stream closed").await;
}

/// An upgraded stream through the front, checked with one echo.
async fn open_upgraded(front: &Front) -> TcpStream {
    let mut tcp = upgraded(front).await;
    tcp.write_all(b"ping").await.unwrap();
    let mut pong = [0u8; 4];
    tcp.read_exact(&mut pong).await.unwrap();
    assert_eq!(&pong, b"ping");
    tcp
}

#[tokio::test]
async fn upgraded_stream_holds_keep_while_open() {
    let origin = origin().await;
    let front = front(origin.addr, FrontOptions::default()).await;
    let tcp = open_upgraded(&front).await;
    // Idle but open: the session must stay held.
    assert_eq!(front.keeps.load(Ordering::SeqCst), 1);
    drop(tcp);
    keeps_released(&front, "keep to be dropped when the client closed").await;
}

/// A container killed under a slow client loses its queued bytes with its network namespace
/// and never closes the connection: the session's end must cut the download instead.
#[tokio::test]
async fn session_end_cuts_a_download_whose_container_went_silent() {
    let origin = origin().await;
    let front = front(origin.addr, FrontOptions::default()).await;
    // The origin now waits, as silent as a dead container.
    let (_client, mut body, _) = first_mib_of_download(&front).await;
    front.ended.cancel();
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                return Err(());
            }
        }
        Ok(())
    })
    .await
    .expect("the download ends when the session does, not when the origin wakes");
    assert!(rest.is_err(), "the download is cut short, not completed");
    keeps_released(&front, "keep to be dropped when the session ended").await;
}

#[tokio::test]
async fn session_end_closes_an_upgraded_stream() {
    let origin = origin().await;
    let front = front(origin.addr, FrontOptions::default()).await;
    let mut tcp = open_upgraded(&front).await;
    front.ended.cancel();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest))
        .await
        .expect("the stream closes when the session ends")
        .ok();
    keeps_released(&front, "keep to be dropped when the session ended").await;
}

#[tokio::test]
async fn http2_request_reaches_the_container_as_http11_with_its_host() {
    let origin = origin().await;
    let options = FrontOptions {
        http2: true,
        ..Default::default()
    };
    let front = front(origin.addr, options).await;
    let tcp = TcpStream::connect(front.addr).await.unwrap();
    let (mut client, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);

    // HTTP/2 carries the host as `:authority` and may split cookies over several headers.
    let req = Request::get("http://app.example/echo?x=1")
        .header("cookie", "orca_session=secret")
        .header("cookie", "theme=dark")
        .header("cookie", "lang=en")
        .body(empty())
        .unwrap();
    let resp = client.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = text(resp).await;
    let lines: Vec<&str> = seen.lines().collect();
    assert!(lines.contains(&"@version: HTTP/1.1"), "{seen}");
    assert!(lines.contains(&"host: app.example"), "{seen}");
    assert!(lines.contains(&"cookie: theme=dark; lang=en"), "{seen}");
    assert!(!seen.contains("secret"), "{seen}");
}

/// An upload of 2 MiB through the front of which the client has sent the first MiB, once the
/// origin has started to receive it.
async fn half_an_upload(front: &Front, origin: &Origin) -> TcpStream {
    let mut tcp = TcpStream::connect(front.addr).await.unwrap();
    tcp.write_all(b"POST /upload HTTP/1.1\r\nHost: app.example\r\nContent-Length: 2097152\r\n\r\n")
        .await
        .unwrap();
    tcp.write_all(&vec![1u8; MIB]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), origin.upload_started.notified())
        .await
        .unwrap();
    tcp
}

#[tokio::test]
async fn client_leaving_mid_upload_is_the_clients_fault() {
    let origin = origin().await;
    let front = front(origin.addr, FrontOptions::default()).await;
    let mut tcp = half_an_upload(&front, &origin).await;
    // Half of the promised body, then the client's side ends.
    tcp.shutdown().await.unwrap();
    eventually("the proxy to report the failure", || {
        !front.errors.lock().unwrap().is_empty()
    })
    .await;
    let errors = front.errors.lock().unwrap().clone();
    assert_eq!(errors[0].0, ErrorSource::Client, "{}", errors[0].1);
}

/// An upload to a container that went silent mid-body (killed, its connection never closed)
/// fails with a 502 when the session ends, instead of waiting for an answer forever.
#[tokio::test]
async fn session_end_fails_an_upload_to_a_silent_container() {
    let origin = origin().await;
    let front = front(origin.addr, FrontOptions::default()).await;
    let mut tcp = half_an_upload(&front, &origin).await;
    // The client is still there, with half its body to go; the session ends.
    front.ended.cancel();
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut head))
        .await
        .expect("an answer when the session ends, not a wait for the container")
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 502");
    let errors = front.errors.lock().unwrap().clone();
    assert_eq!(errors[0].0, ErrorSource::Container, "{}", errors[0].1);
    keeps_released(&front, "keep to be dropped when the session ended").await;
}

/// Linux drops SYNs once a listener's accept queue is full, so connecting to a listener that
/// never accepts and whose queue is filled hangs like an unreachable container.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn container_not_accepting_in_time_is_a_connect_timeout() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let stuck = socket.listen(1).unwrap();
    let addr = stuck.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        // Some of these may hang themselves once the queue is full; they are only ballast.
        if let Ok(Ok(tcp)) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await
        {
            fillers.push(tcp);
        }
    }

    let options = FrontOptions {
        connect_timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let front = front(addr, options).await;
    let mut client = client(front.addr).await;
    let resp = client
        .send_request(get("/").body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let errors = front.errors.lock().unwrap().clone();
    assert_eq!(errors[0].0, ErrorSource::Container);
    assert!(
        errors[0].1.contains("within the connect timeout"),
        "{}",
        errors[0].1
    );
    drop(stuck);
}

/// A container that takes the request and never answers (`/hold` waits for 64 requests; one
/// comes) gets its client an error once `response_timeout` has passed, not a wait forever.
#[tokio::test]
async fn a_container_that_never_answers_is_a_response_timeout() {
    let origin = origin().await;
    let options = FrontOptions {
        response_timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let front = front(origin.addr, options).await;
    let started = std::time::Instant::now();
    let mut c = client(front.addr).await;
    let resp = c
        .send_request(get("/hold").body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let body = text(resp).await;
    assert!(body.contains("sent no response within 300ms"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let errors = front.errors.lock().unwrap().clone();
    assert_eq!(errors[0].0, ErrorSource::Container, "{}", errors[0].1);
}

/// The response timer starts when the request body has been sent whole: an upload slower than
/// the timeout is not cut by it.
#[tokio::test]
async fn a_slow_upload_is_not_cut_by_the_response_timeout() {
    let origin = origin().await;
    let options = FrontOptions {
        response_timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let front = front(origin.addr, options).await;
    let mut tcp = TcpStream::connect(front.addr).await.unwrap();
    tcp.write_all(b"POST /upload HTTP/1.1\r\nHost: app.example\r\nContent-Length: 4096\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..4 {
        tcp.write_all(&[3u8; 1024]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&answer).ends_with("4096") {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .expect("the answer arrives")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(front.errors.lock().unwrap().is_empty());
}
