//! The HTTPS listener against real peers: curl (HTTP/1.1 and HTTP/2), a hyper client over
//! rustls, raw TCP clients. Every server binds 127.0.0.1:0.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use orca::config::TlsFiles;
use orca::listeners::https::{self, Body, ConnInfo, Handler, ServeOptions};
use orca::listeners::tls::{Certificates, server_config};
use orca::listeners::workers::Workers;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Echoes what the server saw; `/slow` answers after `slow`.
#[derive(Default)]
struct Echo {
    slow: Duration,
    entered: AtomicUsize,
}

impl Handler for Echo {
    async fn handle(
        &self,
        mut req: hyper::Request<hyper::body::Incoming>,
        conn: &ConnInfo,
    ) -> hyper::Response<Body> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        if req.headers().contains_key(hyper::header::UPGRADE) {
            return upgrade_to_echo(&mut req, conn.guard.clone());
        }
        if req.uri().path() == "/slow" {
            tokio::time::sleep(self.slow).await;
        }
        if req.uri().path() == "/thread" {
            let name = std::thread::current().name().unwrap_or("").to_string();
            return hyper::Response::new(https::full(name));
        }
        let alpn = conn
            .alpn
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let body = format!(
            "{} {} {:?} alpn={} sni={} tls={}",
            req.method(),
            req.uri().path(),
            req.version(),
            alpn,
            conn.sni.as_deref().unwrap_or(""),
            conn.tls,
        );
        hyper::Response::new(https::full(body))
    }
}

/// Switches protocols and echoes the raw bytes, as a WebSocket origin would carry frames; the
/// relay holds the connection's guard, as the gateway's proxy does.
fn upgrade_to_echo(
    req: &mut hyper::Request<hyper::body::Incoming>,
    guard: https::ConnGuard,
) -> hyper::Response<Body> {
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let _guard = guard;
        let Ok(upgraded) = upgrade.await else { return };
        let mut io = TokioIo::new(upgraded);
        let mut buf = [0u8; 1024];
        while let Ok(n) = io.read(&mut buf).await {
            if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    let mut res = hyper::Response::new(https::empty());
    *res.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
    res.headers_mut().insert(
        hyper::header::UPGRADE,
        hyper::header::HeaderValue::from_static("echo"),
    );
    res.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("upgrade"),
    );
    res
}

struct Running {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    handler: Arc<Echo>,
}

async fn start(tls: Option<&Certificates>, handler: Echo, options: ServeOptions) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("the test server starts");
    let addr = listener.local_addr().expect("the test server starts");
    let shutdown = CancellationToken::new();
    let handler = Arc::new(handler);
    let task = tokio::spawn(https::serve(
        listener,
        tls.map(server_config),
        handler.clone(),
        options,
        shutdown.clone(),
    ));
    Running {
        addr,
        shutdown,
        task,
        handler,
    }
}

fn fast() -> ServeOptions {
    ServeOptions {
        handshake_timeout: Duration::from_millis(300),
        drain_timeout: Duration::from_secs(3),
        ..ServeOptions::default()
    }
}

/// `options` with connections served on two worker threads.
fn on_workers(options: ServeOptions) -> ServeOptions {
    ServeOptions {
        workers: Some(Workers::start(2).expect("worker threads start")),
        ..options
    }
}

/// Runs curl against `https://<host>:<port><path>` resolved to the server; stdout on success,
/// curl's exit code and stderr otherwise.
async fn curl(addr: SocketAddr, host: &str, path: &str, args: &[&str]) -> Result<String, String> {
    let scheme = if args.contains(&"--plain") {
        "http"
    } else {
        "https"
    };
    let args: Vec<&str> = args.iter().copied().filter(|a| *a != "--plain").collect();
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "4", "--resolve"])
        .arg(format!("{host}:{}:127.0.0.1", addr.port()))
        .args(&args)
        .arg(format!("{scheme}://{host}:{}{path}", addr.port()))
        .output()
        .await
        .expect("curl runs");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Polls `done` until it holds or the deadline passes.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn self_signed(state: &Path) -> Certificates {
    Certificates::load(None, "localhost", state).expect("the self-signed certificate loads")
}

/// A CA and a leaf for `names` signed by it, written as `<stem>.crt`/`.key` and `<stem>-ca.crt`.
fn issue(dir: &Path, stem: &str, names: &[&str], key_pem: Option<&str>) -> TlsFiles {
    let ca_key = rcgen::KeyPair::generate().expect("rcgen issues the test certificates");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())
        .expect("rcgen issues the test certificates");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("test CA {stem}"));
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .expect("rcgen issues the test certificates");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = match key_pem {
        Some(pem) => rcgen::KeyPair::from_pem(pem).expect("rcgen issues the test certificates"),
        None => rcgen::KeyPair::generate().expect("rcgen issues the test certificates"),
    };
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let leaf = rcgen::CertificateParams::new(names)
        .expect("rcgen issues the test certificates")
        .signed_by(&leaf_key, &issuer)
        .expect("rcgen issues the test certificates");
    let files = TlsFiles {
        cert: dir.join(format!("{stem}.crt")),
        key: dir.join(format!("{stem}.key")),
    };
    std::fs::write(&files.cert, leaf.pem()).expect("rcgen issues the test certificates");
    std::fs::write(&files.key, leaf_key.serialize_pem())
        .expect("rcgen issues the test certificates");
    std::fs::write(ca_path(dir, stem), ca_cert.pem()).expect("rcgen issues the test certificates");
    files
}

fn ca_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}-ca.crt"))
}

/// Runs openssl with `args`; panics with its stderr on failure.
fn openssl(args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn curl_speaks_http1_and_http2_and_trusts_the_generated_certificate() {
    let state = tempfile::tempdir().unwrap();
    let certs = self_signed(state.path());
    let cafile = certs.self_signed_path().unwrap();
    let server = start(Some(&certs), Echo::default(), fast()).await;
    let ca = cafile.to_str().unwrap();

    let body = curl(
        server.addr,
        "demo.localhost",
        "/a/b",
        &["--http1.1", "--cacert", ca],
    )
    .await
    .unwrap();
    assert_eq!(
        body,
        "GET /a/b HTTP/1.1 alpn=http/1.1 sni=demo.localhost tls=true"
    );
    let body = curl(
        server.addr,
        "demo.localhost",
        "/",
        &["--http2", "--cacert", ca],
    )
    .await
    .unwrap();
    assert_eq!(body, "GET / HTTP/2.0 alpn=h2 sni=demo.localhost tls=true");
    // TLS 1.2 clients are served too.
    let body = curl(
        server.addr,
        "demo.localhost",
        "/",
        &["--tlsv1.2", "--tls-max", "1.2", "--cacert", ca],
    )
    .await
    .unwrap();
    assert!(body.ends_with("sni=demo.localhost tls=true"), "{body}");
    // The bare domain is covered by the default certificate.
    let body = curl(server.addr, "localhost", "/", &["--cacert", ca])
        .await
        .unwrap();
    assert!(body.ends_with("sni=localhost tls=true"), "{body}");

    // A second start reuses the same authority, so clients keep trusting it.
    let before = std::fs::read(&cafile).unwrap();
    let again = self_signed(state.path());
    assert_eq!(again.self_signed_path().unwrap(), cafile);
    assert_eq!(std::fs::read(&cafile).unwrap(), before);
    server.shutdown.cancel();
    server.task.await.unwrap();
}

#[tokio::test]
async fn configured_pem_files_are_served_and_sni_picks_the_matching_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    // Keys in the formats operators have: SEC1 (`EC PRIVATE KEY`) and PKCS#1 RSA; rcgen signs
    // with their PKCS#8 form.
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        &d("ec.pem"),
    ]);
    openssl(&["genrsa", "-traditional", "-out", &d("rsa.pem"), "2048"]);
    openssl(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        &d("ec.pem"),
        "-out",
        &d("ec.p8"),
    ]);
    openssl(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        &d("rsa.pem"),
        "-out",
        &d("rsa.p8"),
    ]);
    let ec_p8 = std::fs::read_to_string(d("ec.p8")).unwrap();
    let rsa_p8 = std::fs::read_to_string(d("rsa.p8")).unwrap();
    let mut a = issue(dir.path(), "a", &["a.test"], Some(&ec_p8));
    a.key = d("ec.pem").into();
    let mut b = issue(dir.path(), "b", &["*.b.test"], Some(&rsa_p8));
    b.key = d("rsa.pem").into();
    assert!(
        std::fs::read_to_string(&a.key)
            .unwrap()
            .contains("BEGIN EC PRIVATE KEY")
    );
    assert!(
        std::fs::read_to_string(&b.key)
            .unwrap()
            .contains("BEGIN RSA PRIVATE KEY")
    );

    // `[https] cert/key` through the same entry point the gateway uses.
    let single = Certificates::load(Some(&a), "ignored.example", dir.path()).unwrap();
    assert!(single.self_signed_path().is_none());

    let certs = Certificates::from_files(&[a, b]).unwrap();
    let server = start(Some(&certs), Echo::default(), fast()).await;
    let ca_a = ca_path(dir.path(), "a");
    let ca_b = ca_path(dir.path(), "b");
    // Each name verifies only against its own CA: SNI chose the certificate.
    let body = curl(
        server.addr,
        "a.test",
        "/",
        &["--cacert", ca_a.to_str().unwrap()],
    )
    .await
    .unwrap();
    assert!(body.ends_with("sni=a.test tls=true"), "{body}");
    let body = curl(
        server.addr,
        "x.b.test",
        "/",
        &["--cacert", ca_b.to_str().unwrap()],
    )
    .await
    .unwrap();
    assert!(body.ends_with("sni=x.b.test tls=true"), "{body}");
    // An unknown name falls back to the first certificate (a.test's).
    curl(
        server.addr,
        "other.test",
        "/",
        &["--cacert", ca_a.to_str().unwrap()],
    )
    .await
    .unwrap_err();
    let body = curl(server.addr, "other.test", "/", &["-k"]).await.unwrap();
    assert!(body.ends_with("sni=other.test tls=true"), "{body}");
    server.shutdown.cancel();
    server.task.await.unwrap();
}

/// A TLS connection to the server for `name`, trusting `ca`, offering ALPN `http/1.1`.
async fn tls_stream(
    addr: SocketAddr,
    ca: &Path,
    name: &str,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(
            rustls::pki_types::CertificateDer::from_pem_file(ca).expect("the test client connects"),
        )
        .expect("the test client connects");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("the test client connects")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr)
        .await
        .expect("the test client connects");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            ServerName::try_from(name.to_string()).expect("the test client connects"),
            tcp,
        )
        .await
        .expect("the test client connects")
}

/// A hyper HTTP/1.1 client over rustls trusting `ca`, connected for `name`.
async fn hyper_client(
    addr: SocketAddr,
    ca: &Path,
    name: &str,
) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let tls = tls_stream(addr, ca, name).await;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("the test client connects");
    tokio::spawn(conn);
    sender
}

async fn get(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    path: &str,
) -> String {
    let req = hyper::Request::get(path)
        .header("host", "a.test")
        .body(Empty::new())
        .expect("the request succeeds");
    let res = sender
        .send_request(req)
        .await
        .expect("the request succeeds");
    let body = res
        .into_body()
        .collect()
        .await
        .expect("the request succeeds")
        .to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test]
async fn reload_serves_new_handshakes_and_keeps_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let files = issue(dir.path(), "old", &["a.test"], None);
    let certs = Certificates::from_files(std::slice::from_ref(&files)).unwrap();
    let server = start(Some(&certs), Echo::default(), fast()).await;
    let old_ca = ca_path(dir.path(), "old");
    let mut before = hyper_client(server.addr, &old_ca, "a.test").await;
    assert!(get(&mut before, "/1").await.starts_with("GET /1 HTTP/1.1"));

    // Renewal: a certificate from another CA written over the same files.
    let renewed = issue(dir.path(), "new", &["a.test"], None);
    std::fs::copy(&renewed.cert, &files.cert).unwrap();
    std::fs::copy(&renewed.key, &files.key).unwrap();
    certs.reload().unwrap();
    let new_ca = ca_path(dir.path(), "new");
    curl(
        server.addr,
        "a.test",
        "/",
        &["--cacert", new_ca.to_str().unwrap()],
    )
    .await
    .unwrap();
    curl(
        server.addr,
        "a.test",
        "/",
        &["--cacert", old_ca.to_str().unwrap()],
    )
    .await
    .unwrap_err();
    // The connection opened before the reload is still served.
    assert!(get(&mut before, "/2").await.starts_with("GET /2 HTTP/1.1"));

    // A half-written key fails the reload and leaves the renewed set in place.
    std::fs::write(&files.key, "-----BEGIN PRIVATE KEY-----\ngarbage").unwrap();
    let error = certs.reload().unwrap_err().to_string();
    assert!(error.contains(files.key.to_str().unwrap()), "{error}");
    curl(
        server.addr,
        "a.test",
        "/",
        &["--cacert", new_ca.to_str().unwrap()],
    )
    .await
    .unwrap();
    server.shutdown.cancel();
    server.task.await.unwrap();
}

/// A connection that never sent a byte is closed by the server, and not before the handshake
/// timeout of [`fast`] (300 ms, less scheduling slack).
async fn expect_dropped_after_handshake_timeout(silent: &mut TcpStream, started: Instant) {
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(3), silent.read(&mut buf))
        .await
        .expect("the server should close a silent connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let state = tempfile::tempdir().unwrap();
    let certs = self_signed(state.path());
    let server = start(Some(&certs), Echo::default(), fast()).await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // Served meanwhile: the silent client holds up no one.
    let body = curl(server.addr, "demo.localhost", "/", &["-k"])
        .await
        .unwrap();
    assert!(body.starts_with("GET / "), "{body}");
    expect_dropped_after_handshake_timeout(&mut silent, started).await;
    server.shutdown.cancel();
    server.task.await.unwrap();
}

#[tokio::test]
async fn max_connections_makes_the_next_client_wait() {
    let options = ServeOptions {
        max_connections: 1,
        ..fast()
    };
    let server = start(None, Echo::default(), options).await;
    // Plain HTTP (the `[http]` listener): one keep-alive connection takes the only permit.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut first, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    assert_eq!(
        get(&mut first, "/").await,
        "GET / HTTP/1.1 alpn= sni= tls=false"
    );

    let addr = server.addr;
    let waiting = tokio::spawn(async move { curl(addr, "localhost", "/next", &["--plain"]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the second client was served beside the first"
    );
    assert_eq!(server.handler.entered.load(Ordering::SeqCst), 1);

    // Closing the first connection frees the permit.
    drop(first);
    conn.await.unwrap().unwrap();
    let body = waiting.await.unwrap().unwrap();
    assert_eq!(body, "GET /next HTTP/1.1 alpn= sni= tls=false");
    server.shutdown.cancel();
    server.task.await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_lets_an_in_flight_response_finish() {
    graceful_shutdown(fast()).await;
}

#[tokio::test]
async fn graceful_shutdown_drains_connections_on_workers_too() {
    graceful_shutdown(on_workers(fast())).await;
}

async fn graceful_shutdown(options: ServeOptions) {
    let state = tempfile::tempdir().expect("a temporary directory");
    let certs = self_signed(state.path());
    let handler = Echo {
        slow: Duration::from_millis(500),
        ..Echo::default()
    };
    let server = start(Some(&certs), handler, options).await;
    let addr = server.addr;
    let slow =
        tokio::spawn(
            async move { curl(addr, "demo.localhost", "/slow", &["-k", "--http2"]).await },
        );
    let handler = server.handler.clone();
    wait_until("the slow request to arrive", || {
        handler.entered.load(Ordering::SeqCst) == 1
    })
    .await;
    let stopping = Instant::now();
    server.shutdown.cancel();
    let body = slow
        .await
        .expect("the request task")
        .expect("the slow request answers");
    assert_eq!(
        body,
        "GET /slow HTTP/2.0 alpn=h2 sni=demo.localhost tls=true"
    );
    tokio::time::timeout(Duration::from_secs(3), server.task)
        .await
        .expect("serve should return once drained")
        .expect("the serve task");
    assert!(stopping.elapsed() < Duration::from_secs(2));
    // Nothing listens any more.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn upgrades_pass_through_as_raw_bytes() {
    upgrade_echo(fast()).await;
}

#[tokio::test]
async fn upgrades_pass_through_on_workers_too() {
    upgrade_echo(on_workers(fast())).await;
}

async fn upgrade_echo(options: ServeOptions) {
    let state = tempfile::tempdir().expect("a temporary directory");
    let certs = self_signed(state.path());
    let server = start(Some(&certs), Echo::default(), options).await;
    let ca = certs.self_signed_path().expect("the generated certificate");
    let mut tls = tls_stream(server.addr, &ca, "demo.localhost").await;
    tls.write_all(
        b"GET /ws HTTP/1.1\r\nHost: demo.localhost\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .await
    .expect("write the upgrade request");
    let head = read_head(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tls.write_all(b"ping")
        .await
        .expect("write to the upgraded stream");
    let mut echoed = [0u8; 4];
    tls.read_exact(&mut echoed).await.expect("read the echo");
    assert_eq!(&echoed, b"ping");
    server.shutdown.cancel();
    server.task.await.expect("the serve task");
}

#[tokio::test]
async fn connections_are_served_on_the_workers_spread_by_load() {
    let state = tempfile::tempdir().unwrap();
    let certs = self_signed(state.path());
    let workers = Workers::start(2).expect("worker threads start");
    let options = ServeOptions {
        workers: Some(workers.clone()),
        ..fast()
    };
    let server = start(Some(&certs), Echo::default(), options).await;
    let ca = certs.self_signed_path().unwrap();
    let mut clients = Vec::new();
    let mut threads = Vec::new();
    for _ in 0..4 {
        let mut client = hyper_client(server.addr, &ca, "demo.localhost").await;
        threads.push(get(&mut client, "/thread").await);
        clients.push(client);
    }
    threads.sort();
    // Each new connection goes to the worker serving the fewest: two each.
    assert_eq!(
        threads,
        ["orca-conn-0", "orca-conn-0", "orca-conn-1", "orca-conn-1"]
    );
    assert_eq!(workers.loads(), [2, 2]);
    drop(clients);
    wait_until("the closed connections to leave their workers", || {
        workers.loads() == [0, 0]
    })
    .await;
    server.shutdown.cancel();
    server.task.await.unwrap();
}

/// Reads a response head byte by byte, so that nothing after it (upgraded bytes) is consumed.
async fn read_head(stream: &mut (impl AsyncRead + Unpin)) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(
            stream
                .read(&mut byte)
                .await
                .expect("read the response head"),
            1,
            "closed during the response head"
        );
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Opens an `Upgrade: echo` stream over plain TCP and reads the 101 head.
async fn plain_upgrade(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .expect("write the upgrade request");
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tcp
}

#[tokio::test]
async fn an_upgraded_stream_keeps_its_permit_and_does_not_hold_up_shutdown() {
    let options = ServeOptions {
        max_connections: 1,
        drain_timeout: Duration::from_millis(500),
        ..fast()
    };
    let server = start(None, Echo::default(), options).await;
    let mut ws = plain_upgrade(server.addr).await;
    ws.write_all(b"ping").await.unwrap();
    let mut echoed = [0u8; 4];
    ws.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping");

    // hyper's connection task ended at the upgrade; the stream still holds the only permit.
    let addr = server.addr;
    let waiting = tokio::spawn(async move { curl(addr, "localhost", "/next", &["--plain"]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "a client was served beside an open upgraded stream at max_connections = 1"
    );
    drop(ws);
    let body = waiting.await.unwrap().unwrap();
    assert_eq!(body, "GET /next HTTP/1.1 alpn= sni= tls=false");

    // An upgraded stream left open at shutdown delays it by the drain timeout, not forever.
    let _open = plain_upgrade(server.addr).await;
    let stopping = Instant::now();
    server.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("serve returns although an upgraded stream is open")
        .unwrap();
    assert!(
        stopping.elapsed() >= Duration::from_millis(500),
        "the drain waited for it"
    );
}

#[tokio::test]
async fn a_client_silent_after_the_handshake_is_dropped_too() {
    let state = tempfile::tempdir().unwrap();
    let certs = self_signed(state.path());
    let server = start(Some(&certs), Echo::default(), fast()).await;
    let ca = certs.self_signed_path().unwrap();
    let mut tls = tls_stream(server.addr, &ca, "demo.localhost").await;
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "a silent HTTP/1.1 client kept its connection"
    );
    server.shutdown.cancel();
    server.task.await.unwrap();
}

#[tokio::test]
async fn a_silent_plain_client_is_dropped_after_the_handshake_timeout() {
    let server = start(None, Echo::default(), fast()).await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    expect_dropped_after_handshake_timeout(&mut silent, started).await;
    server.shutdown.cancel();
    server.task.await.unwrap();
}

#[tokio::test]
async fn the_drain_timeout_closes_what_did_not_finish() {
    let handler = Echo {
        slow: Duration::from_secs(10),
        ..Echo::default()
    };
    let options = ServeOptions {
        drain_timeout: Duration::from_millis(300),
        ..fast()
    };
    let server = start(None, handler, options).await;
    let addr = server.addr;
    let slow = tokio::spawn(async move { curl(addr, "localhost", "/slow", &["--plain"]).await });
    let handler = server.handler.clone();
    wait_until("the slow request to arrive", || {
        handler.entered.load(Ordering::SeqCst) == 1
    })
    .await;
    let stopping = Instant::now();
    server.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(3), server.task)
        .await
        .expect("serve should return at the drain timeout")
        .unwrap();
    assert!(stopping.elapsed() >= Duration::from_millis(250));
    slow.await.unwrap().unwrap_err();
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_header_read_timeout() {
    let options = ServeOptions {
        header_read_timeout: Duration::from_millis(300),
        ..fast()
    };
    let server = start(None, Echo::default(), options).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut client, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    assert!(get(&mut client, "/").await.starts_with("GET / HTTP/1.1"));
    // The permit must not stay with a client that is done: waiting for the next request's
    // head is under the header read timeout.
    let idle = Instant::now();
    tokio::time::timeout(Duration::from_secs(3), conn)
        .await
        .expect("an idle keep-alive connection should be closed")
        .unwrap()
        .unwrap();
    assert!(idle.elapsed() >= Duration::from_millis(250));
    server.shutdown.cancel();
    server.task.await.unwrap();
}
