//! The load client of `bench/scale` and `bench/soak`: HTTPS and WebSocket traffic to one TLS
//! proxy (Orca, haproxy or nginx) on 127.0.0.1, trusting only the benchmark's CA. Results are
//! JSON lines on stdout; the scripts tabulate them.
//!
//! Usage (common: `--ca FILE --port N --host NAME`, `--cookie 'name=value'` for a returning
//! user):
//!   load ws-idle --n 10000 --hold 20     N WebSockets to /ws, one echo each, held idle for
//!                                        `hold` seconds after the last opened, then closed
//!   load burst --n 50                    N new users (no cookie) at once, GET / each; the time
//!                                        of each to its answer
//!   load soak --seconds 1800 --rps 50 --new-every-ms 2000 --ws 20
//!                                        a steady mix until `seconds`: returning users' requests,
//!                                        new users, long-lived WebSockets echoing every second
//!                                        and short-lived ones; a line of counts every 10 s

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Any one step (connect, handshake, answer, echo) that takes longer has failed.
const STEP: Duration = Duration::from_secs(60);
/// Connections being opened at once by `ws-idle`, so that no handshake waits out `STEP`.
const OPENING: usize = 256;

/// Where the proxy is and who the client is.
struct Target {
    tls: tokio_rustls::TlsConnector,
    port: u16,
    host: String,
    cookie: Option<String>,
}

impl Target {
    async fn connect(&self) -> anyhow::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(self.host.clone())?;
        Ok(self.tls.connect(name, tcp).await?)
    }

    /// `GET path` on a new connection; the status, or the failure.
    async fn get_once(&self, path: &str, cookie: bool) -> anyhow::Result<u16> {
        let mut sender = self.http(self.connect().await?).await?;
        self.get(&mut sender, path, cookie).await
    }

    async fn http(&self, tls: TlsStream<TcpStream>) -> anyhow::Result<Sender> {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        Ok(sender)
    }

    /// `GET path` on a kept-alive connection, the body read whole.
    async fn get(&self, sender: &mut Sender, path: &str, cookie: bool) -> anyhow::Result<u16> {
        let mut req = hyper::Request::get(path).header("host", &self.host);
        if let (true, Some(c)) = (cookie, &self.cookie) {
            req = req.header("cookie", c);
        }
        sender.ready().await?;
        let resp = sender.send_request(req.body(Empty::new())?).await?;
        let status = resp.status().as_u16();
        resp.into_body().collect().await?;
        Ok(status)
    }

    /// A WebSocket to `/ws` that has echoed one message.
    async fn websocket(&self) -> anyhow::Result<Socket> {
        let tls = self.connect().await?;
        let mut request = format!("wss://{}:{}/ws", self.host, self.port).into_client_request()?;
        if let Some(c) = &self.cookie {
            request.headers_mut().insert("cookie", c.parse()?);
        }
        let (mut ws, resp) = tokio_tungstenite::client_async(request, tls).await?;
        if resp.status() != 101 {
            bail!("the upgrade was answered {}", resp.status());
        }
        echo(&mut ws, "hello").await?;
        Ok(ws)
    }
}

/// Sends `text` and waits for it to come back.
async fn echo(ws: &mut Socket, text: &str) -> anyhow::Result<()> {
    ws.send(Message::text(text)).await?;
    loop {
        match ws.next().await.context("the WebSocket closed")?? {
            Message::Text(t) if t.as_str() == text => return Ok(()),
            Message::Text(t) => bail!("echoed {t:?} for {text:?}"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => bail!("unexpected frame {other:?}"),
        }
    }
}

async fn step<T>(f: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::time::timeout(STEP, f).await.context("timed out")?
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args
        .first()
        .context("usage: see the header of tests/src/bin/load.rs")?;
    let opt = |name: &str| -> Option<String> {
        args.iter()
            .position(|a| a == &format!("--{name}"))
            .and_then(|i| args.get(i + 1).cloned())
    };
    let num = |name: &str, default: u64| -> anyhow::Result<u64> {
        opt(name).map_or(Ok(default), |v| {
            v.parse().with_context(|| format!("--{name} {v}: a number"))
        })
    };
    let ca = opt("ca").context("--ca FILE: the CA that signed the proxies' certificate")?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(&ca).with_context(|| format!("--ca {ca}"))?)?;
    // ALPN http/1.1 only: upgrades are an HTTP/1.1 affair, and one protocol for all peers.
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let target = Arc::new(Target {
        tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        port: num("port", 0)?.try_into()?,
        host: opt("host").context("--host NAME")?,
        cookie: opt("cookie"),
    });
    match mode.as_str() {
        "ws-idle" => ws_idle(target, num("n", 1000)?, num("hold", 10)?).await,
        "burst" => burst(target, num("n", 50)?).await,
        "soak" => {
            soak(
                target,
                Duration::from_secs(num("seconds", 1800)?),
                num("rps", 50)?,
                Duration::from_millis(num("new-every-ms", 2000)?),
                num("ws", 20)?,
            )
            .await
        }
        other => bail!("unknown mode {other:?}: ws-idle, burst or soak"),
    }
}

/// Opens `n` WebSockets, says so on stdout, holds them `hold` seconds, closes them.
async fn ws_idle(target: Arc<Target>, n: u64, hold: u64) -> anyhow::Result<()> {
    let start = Instant::now();
    let gate = Arc::new(Semaphore::new(OPENING));
    let mut opening = Vec::new();
    for _ in 0..n {
        let (target, gate) = (target.clone(), gate.clone());
        opening.push(tokio::spawn(async move {
            let _turn = gate.acquire().await.expect("the semaphore stays open");
            step(target.websocket()).await
        }));
    }
    let mut open = Vec::new();
    for o in opening {
        open.push(o.await??);
    }
    println!(
        r#"{{"event":"opened","connections":{},"open_s":{:.2}}}"#,
        open.len(),
        start.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(hold)).await;
    // Every connection must still be there after its idle time: one echo each.
    let mut alive = 0u64;
    for ws in &mut open {
        if step(echo(ws, "still here")).await.is_ok() {
            alive += 1;
        }
    }
    println!(r#"{{"event":"held","alive":{alive}}}"#);
    drop(open);
    if alive != n {
        bail!("{} of {n} WebSockets did not survive being idle", n - alive);
    }
    Ok(())
}

/// `n` new users at once; each one's time to its answer.
async fn burst(target: Arc<Target>, n: u64) -> anyhow::Result<()> {
    let start = Instant::now();
    let users: Vec<_> = (0..n)
        .map(|_| {
            let target = target.clone();
            tokio::spawn(async move {
                let status = step(target.get_once("/", false)).await;
                (status, start.elapsed())
            })
        })
        .collect();
    let mut ms = Vec::new();
    for u in users {
        let (status, took) = u.await?;
        let status = status?;
        if status != 200 {
            bail!("a new user got status {status}");
        }
        ms.push(took.as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    println!(
        r#"{{"users":{n},"min_ms":{:.1},"p50_ms":{:.1},"p95_ms":{:.1},"max_ms":{:.1}}}"#,
        at(0.0),
        at(0.5),
        at(0.95),
        at(1.0)
    );
    Ok(())
}

/// What the soak did, counted as it goes.
#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    request_errors: AtomicU64,
    new_users: AtomicU64,
    new_user_errors: AtomicU64,
    echoes: AtomicU64,
    ws_opened: AtomicU64,
    ws_errors: AtomicU64,
}

impl Counts {
    fn line(&self, t: u64) -> String {
        format!(
            r#"{{"t":{t},"requests":{},"request_errors":{},"new_users":{},"new_user_errors":{},"echoes":{},"ws_opened":{},"ws_errors":{}}}"#,
            self.requests.load(Relaxed),
            self.request_errors.load(Relaxed),
            self.new_users.load(Relaxed),
            self.new_user_errors.load(Relaxed),
            self.echoes.load(Relaxed),
            self.ws_opened.load(Relaxed),
            self.ws_errors.load(Relaxed),
        )
    }
}

fn count(ok: &AtomicU64, err: &AtomicU64, r: &anyhow::Result<()>) {
    match r {
        Ok(()) => ok.fetch_add(1, Relaxed),
        Err(_) => err.fetch_add(1, Relaxed),
    };
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<bytes::Bytes>>;
type Socket = WebSocketStream<TlsStream<TcpStream>>;

/// A returning user's request on `sender`'s connection (opened first if there is none).
async fn returning_request(target: &Target, sender: &mut Option<Sender>) -> anyhow::Result<()> {
    if sender.is_none() {
        *sender = Some(target.http(target.connect().await?).await?);
    }
    let s = sender.as_mut().expect("set above");
    match target.get(s, "/", true).await? {
        200 => Ok(()),
        other => bail!("status {other}"),
    }
}

/// A new user: a connection without a cookie, one request, closed.
async fn new_user(target: &Target) -> anyhow::Result<()> {
    match target.get_once("/", false).await? {
        200 => Ok(()),
        other => bail!("status {other}"),
    }
}

/// One echo on a long-lived WebSocket (opened first if there is none).
async fn long_lived_echo(
    target: &Target,
    socket: &mut Option<Socket>,
    counts: &Counts,
    i: u64,
) -> anyhow::Result<()> {
    if socket.is_none() {
        *socket = Some(target.websocket().await?);
        counts.ws_opened.fetch_add(1, Relaxed);
    }
    echo(socket.as_mut().expect("set above"), &format!("ws {i}")).await
}

/// A short-lived WebSocket: open, five echoes, close.
async fn short_lived(target: &Target, counts: &Counts) -> anyhow::Result<()> {
    let mut socket = target.websocket().await?;
    counts.ws_opened.fetch_add(1, Relaxed);
    for n in 0..5 {
        echo(&mut socket, &format!("short {n}")).await?;
        counts.echoes.fetch_add(1, Relaxed);
    }
    socket.close(None).await?;
    Ok(())
}

/// Returning users' keep-alive connections, each at its share of `rps`.
const KEEPALIVE: u64 = 4;
/// Every this often a short-lived WebSocket opens, echoes five times and closes.
const WS_CHURN: Duration = Duration::from_secs(5);

/// A steady mix of traffic until `length` has passed; errors are counted, never fatal.
async fn soak(
    target: Arc<Target>,
    length: Duration,
    rps: u64,
    new_every: Duration,
    ws: u64,
) -> anyhow::Result<()> {
    let counts = Arc::new(Counts::default());
    let end = Instant::now() + length;
    let mut tasks = Vec::new();
    // Returning users: keep-alive connections, a request every 1/(rps/KEEPALIVE) s each.
    for _ in 0..KEEPALIVE {
        let (target, counts) = (target.clone(), counts.clone());
        let every = Duration::from_secs_f64(KEEPALIVE as f64 / rps.max(1) as f64);
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut sender = None;
            while Instant::now() < end {
                tick.tick().await;
                let r = step(returning_request(&target, &mut sender)).await;
                if r.is_err() {
                    sender = None; // a fresh connection next time
                }
                count(&counts.requests, &counts.request_errors, &r);
            }
        }));
    }
    // New users: a connection without a cookie, one request, closed.
    {
        let (target, counts) = (target.clone(), counts.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(new_every);
            while Instant::now() < end {
                tick.tick().await;
                let r = step(new_user(&target)).await;
                count(&counts.new_users, &counts.new_user_errors, &r);
            }
        }));
    }
    // Long-lived WebSockets: an echo a second each, reopened if one fails.
    for i in 0..ws {
        let (target, counts) = (target.clone(), counts.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut socket = None;
            while Instant::now() < end {
                tick.tick().await;
                let r = step(long_lived_echo(&target, &mut socket, &counts, i)).await;
                if r.is_err() {
                    socket = None;
                }
                count(&counts.echoes, &counts.ws_errors, &r);
            }
        }));
    }
    // Short-lived WebSockets.
    {
        let (target, counts) = (target.clone(), counts.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(WS_CHURN);
            while Instant::now() < end {
                tick.tick().await;
                let r = step(short_lived(&target, &counts)).await;
                if r.is_err() {
                    counts.ws_errors.fetch_add(1, Relaxed);
                }
            }
        }));
    }
    let started = Instant::now();
    let mut report = tokio::time::interval(Duration::from_secs(10));
    report.tick().await;
    while Instant::now() < end {
        report.tick().await;
        println!("{}", counts.line(started.elapsed().as_secs()));
    }
    for t in tasks {
        t.await?;
    }
    println!("{}", counts.line(started.elapsed().as_secs()));
    Ok(())
}
