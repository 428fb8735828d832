//! The proxy with real peers at both ends: a WebSocket client and curl over TLS on one side,
//! the static test app of `tests/app` in a container on the other. Large bodies stream in
//! bounded memory, a killed container ends its transfers and moves its users to a new one, and
//! users pack into containers up to `orca.users.concurrent`.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use orca_tests::gateway::{Gateway, app_gateway};
use orca_tests::tls::next_data;
use orca_tests::{docker, wait_for};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::RwLock;
use tokio_tungstenite::tungstenite::Message;

const MIB: usize = 1024 * 1024;
/// The big transfers: large next to every buffer on the path (TLS records, hyper's buffers,
/// HTTP/2 windows), so a proxy that collected a body would stand out in memory.
const BIG: usize = 100 * MIB;
/// Most the test process (gateway included) may grow during one big transfer.
const MEMORY_BUDGET: u64 = 32 * MIB as u64;
/// The app's download pattern repeats every 251 bytes (see tests/app).
const PERIOD: usize = 251;

/// The memory test measures the whole test process: the other tests of this file, which move
/// megabytes of their own, take the read side and wait while it runs.
static TRAFFIC: RwLock<()> = RwLock::const_new(());

/// A WebSocket through TLS, the front, the proxy's upgrade relay and into the app, with text,
/// binary, a ping, a 4 MiB message and the closing handshake. The front speaks HTTP/1.1
/// upgrades only: its HTTP/2 server does not offer extended CONNECT (RFC 8441).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_echoes_text_binary_and_megabytes_through_the_gateway() {
    let _shared = TRAFFIC.read().await;
    let gw = app_gateway(&[]).await;
    // The first request launches the container; the front holds it until the app is ready.
    let mut ws = websocket(&gw, "wendy").await;

    let big: Vec<u8> = (0..4 * MIB).map(|i| (i * 7 % 256) as u8).collect();
    let messages = [
        Message::text("hello through orca"),
        Message::binary(vec![0u8, 1, 2, 254, 255]),
        Message::text("ünïcödé ✓"),
        Message::binary(big),
        Message::text("after the big one"),
    ];
    for sent in messages {
        ws.send(sent.clone()).await.expect("send");
        let back = next_data(&mut ws).await;
        assert!(back == sent, "echo differs: sent {} bytes", sent.len());
    }
    ws.send(Message::Ping("are you there".into()))
        .await
        .expect("ping");
    let pong = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("a pong in time")
        .expect("the stream is open")
        .expect("a frame");
    assert_eq!(pong, Message::Pong("are you there".into()));

    ws.close(None).await.expect("close");
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                return true;
            }
        }
        false
    })
    .await
    .expect("the close handshake ends in time");
    assert!(end, "the app answered the close");
    assert_eq!(gw.scheduler.status().containers.len(), 1);
}

/// 100 MiB up and 100 MiB down, over HTTP/1.1 and HTTP/2, with the content checked at the far
/// end, while a sampler watches this process's resident memory: a proxy that collected a body
/// would grow by about its size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_mib_each_way_streams_in_bounded_memory() {
    let _alone = TRAFFIC.write().await;
    let gw = app_gateway(&[]).await;
    let image = gw.image.clone();
    // Launch the container and warm up both protocols' connections, TLS sessions and the
    // allocator, so the baselines below hold only what stays.
    for http in ["--http1.1", "--http2"] {
        let hello = gw.curl(&image, "/", &["-H", "x-user: uma", http]).await;
        assert_eq!(hello.status, 200, "{hello:?}");
        let up = upload(&gw, http, MIB).await;
        assert_eq!(up.bytes, MIB as u64);
        let down = download(&gw, http, MIB).await;
        assert_eq!(down.bytes, MIB as u64);
    }

    let expected_down = {
        let mut sha = Sha256::new();
        let block: Vec<u8> = (0..PERIOD * 256).map(|i| (i % PERIOD) as u8).collect();
        let mut left = BIG;
        while left > 0 {
            let n = left.min(block.len());
            sha.update(&block[..n]);
            left -= n;
        }
        hex(&sha.finalize())
    };
    for (http, version) in [("--http1.1", "HTTP/1.1"), ("--http2", "HTTP/2")] {
        let sampler = Sampler::start();
        let up = upload(&gw, http, BIG).await;
        sampler.stop_within_budget(&format!("a {} MiB upload over {version}", BIG / MIB));
        assert!(up.head.starts_with(version), "{}", up.head);
        assert_eq!(up.bytes, BIG as u64, "the app got every byte");
        assert_eq!(up.sha256, up.sent_sha256, "the app got the bytes sent");

        let sampler = Sampler::start();
        let down = download(&gw, http, BIG).await;
        sampler.stop_within_budget(&format!("a {} MiB download over {version}", BIG / MIB));
        assert!(down.head.starts_with(version), "{}", down.head);
        assert_eq!(down.bytes, BIG as u64, "every byte arrived");
        assert_eq!(
            down.sha256, expected_down,
            "the bytes are the app's pattern"
        );
    }
    assert_eq!(gw.scheduler.status().containers.len(), 1);
}

/// A container killed under a live session: the transfer in flight and an open WebSocket end
/// (no hang); a request while the scheduler does not yet know of the death gets a 502 that
/// says the container exited, and moves the user on; the next request is served by a new
/// container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_container_ends_its_transfers_then_502_then_a_new_container() {
    let _shared = TRAFFIC.read().await;
    let gw = app_gateway(&[]).await;
    let image = gw.image.clone();
    let kim = ["-H", "x-user: kim"];
    let first = gw.curl(&image, "/", &kim).await;
    assert_eq!(first.status, 200, "{first:?}");
    let first_host = first.line("hostname").expect("hostname").to_string();

    // A slow 1 GiB download is in flight when the container is killed.
    let mut slow = gw.curl_command();
    slow.args(["--limit-rate", "2M", "-H", "x-user: kim", "-o", "-"])
        .arg(gw.url("/download?bytes=1073741824"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut slow = slow.spawn().expect("curl starts");
    let received = Arc::new(AtomicU64::new(0));
    let counter = {
        let received = received.clone();
        let mut out = slow.stdout.take().expect("piped stdout");
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = out.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                received.fetch_add(n as u64, Ordering::Relaxed);
            }
        })
    };
    wait_for(
        "the download to be under way",
        Duration::from_secs(30),
        || {
            let n = received.load(Ordering::Relaxed);
            async move { (n >= MIB as u64).then_some(()) }
        },
    )
    .await
    .unwrap();
    // And a WebSocket is open.
    let mut ws = websocket(&gw, "kim").await;
    ws.send(Message::text("still there?")).await.expect("send");
    assert_eq!(next_data(&mut ws).await, Message::text("still there?"));

    let doomed = container_of(&gw, &first_host);
    docker(&["kill", &doomed]).expect("docker kill");
    let t = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(30), slow.wait())
        .await
        .expect("the download ends soon after the kill, not hang")
        .expect("curl ran");
    counter.await.expect("counter task");
    let got = received.load(Ordering::Relaxed);
    println!(
        "in-flight download ended {:?} after the kill: {status}, {got} bytes",
        t.elapsed()
    );
    assert!(!status.success(), "curl saw the download cut short");
    assert!(got < 1 << 30, "the download cannot have completed");
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(msg)) if msg.is_close() => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the open WebSocket ends with its container");

    // Events flow here, so the scheduler normally knew of the death before this request; if
    // the request won that race, it gets the 502 and the user is moved on all the same.
    let mut after = gw.curl(&image, "/", &kim).await;
    if after.status == 502 {
        assert!(after.body.contains("exited with code 137"), "{after:?}");
        after = gw.curl(&image, "/", &kim).await;
    }
    assert_eq!(after.status, 200, "{after:?}");
    let second_host = after.line("hostname").expect("hostname").to_string();
    assert_ne!(second_host, first_host, "a new container serves the user");

    // Now the engine's events are held back, as while its event stream reconnects: the
    // scheduler still thinks the container runs, and only the proxy's failure tells.
    gw.events.hold();
    let doomed = container_of(&gw, &second_host);
    docker(&["kill", &doomed]).expect("docker kill");
    let gone = gw.curl(&image, "/", &kim).await;
    assert_eq!(gone.status, 502, "{gone:?}");
    assert!(
        gone.body.contains("exited with code 137"),
        "the page names the reason: {}",
        gone.body
    );
    let relaunched = gw.curl(&image, "/", &kim).await;
    assert_eq!(relaunched.status, 200, "{relaunched:?}");
    let third_host = relaunched.line("hostname").expect("hostname").to_string();
    assert!(
        third_host != second_host && third_host != first_host,
        "a new container serves the user: {third_host}"
    );
    gw.events.release();

    // The dead containers are removed; only the new one is left, in Docker and the scheduler.
    wait_for(
        "the killed containers to be removed",
        Duration::from_secs(20),
        || {
            let left = gw.docker_containers();
            async move { (left.len() == 1).then_some(()) }
        },
    )
    .await
    .unwrap();
    let status = gw.scheduler.status();
    assert_eq!(status.containers.len(), 1, "{status:?}");
    assert_eq!(status.containers[0].users.len(), 1);
    assert!(
        status
            .recent_stops
            .iter()
            .filter(|s| s.reason.label() == "died")
            .count()
            == 2,
        "{:?}",
        status.recent_stops
    );
}

/// `orca.users.concurrent = 3`: three users share one container, the fourth gets another, and
/// everyone stays where they were placed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_users_pack_into_one_container_and_a_fourth_gets_another() {
    let _shared = TRAFFIC.read().await;
    let gw = app_gateway(&[("orca.users.concurrent", "3")]).await;
    let image = gw.image.clone();
    let mut hosts = Vec::new();
    for user in ["ann", "ben", "cat", "dan"] {
        let r = gw
            .curl(&image, "/", &["-H", &format!("x-user: {user}")])
            .await;
        assert_eq!(r.status, 200, "{user}: {r:?}");
        hosts.push(r.line("hostname").expect("hostname").to_string());
    }
    assert_eq!(hosts[0], hosts[1], "ann and ben share a container");
    assert_eq!(hosts[1], hosts[2], "so does cat");
    assert_ne!(hosts[2], hosts[3], "dan gets a container of his own");
    let again = gw.curl(&image, "/", &["-H", "x-user: ann"]).await;
    assert_eq!(again.line("hostname"), Some(hosts[0].as_str()));

    let status = gw.scheduler.status();
    let mut users: Vec<usize> = status.containers.iter().map(|c| c.users.len()).collect();
    users.sort_unstable();
    assert_eq!(users, vec![1, 3], "{status:?}");
    for c in &status.containers {
        let id = c.id.as_deref().expect("an engine id");
        assert!(
            hosts.iter().any(|h| id.starts_with(h.as_str())),
            "the app's hostname is its container's short id: {id} vs {hosts:?}"
        );
    }
}

/// A WebSocket to the app's echo for `user`, over TLS through the gateway.
async fn websocket(
    gw: &Gateway,
    user: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tls = gw.connect_tls().await;
    let host = format!("{}.localhost", gw.image);
    orca_tests::tls::websocket(tls, &host, gw.port, &[("x-user", user)]).await
}

/// The full id of the container whose hostname (short id) is `host`.
fn container_of(gw: &Gateway, host: &str) -> String {
    gw.scheduler
        .status()
        .containers
        .iter()
        .filter_map(|c| c.id.clone())
        .find(|id| id.starts_with(host))
        .unwrap_or_else(|| panic!("no container of the scheduler has hostname {host}"))
}

/// What an upload came to.
#[derive(Debug)]
struct Uploaded {
    head: String,
    bytes: u64,
    sha256: String,
    sent_sha256: String,
}

/// POSTs `size` bytes to the app's `/upload`, generated and fed to curl's stdin as it sends
/// (`-T -`: chunked over HTTP/1.1, unsized DATA frames over HTTP/2), and reads back what the
/// app counted.
async fn upload(gw: &Gateway, http: &str, size: usize) -> Uploaded {
    let mut curl = Transfer::start(gw, http, "/upload", &["-X", "POST", "-T", "-"]);
    let mut stdin = curl.child.stdin.take().expect("piped stdin");
    let feeder = tokio::spawn(async move {
        let mut sha = Sha256::new();
        // One block, re-stamped with its index each time: cheap to make, never repeating.
        let mut block: Vec<u8> = (0..64 * 1024).map(|i| (i * 131 % 256) as u8).collect();
        let mut left = size;
        let mut index = 0u64;
        while left > 0 {
            block[..8].copy_from_slice(&index.to_le_bytes());
            let n = left.min(block.len());
            sha.update(&block[..n]);
            if stdin.write_all(&block[..n]).await.is_err() {
                break;
            }
            left -= n;
            index += 1;
        }
        drop(stdin);
        hex(&sha.finalize())
    });
    let (head, out) = curl.finish().await;
    let sent_sha256 = feeder.await.expect("feeder");
    let body = String::from_utf8_lossy(&out).into_owned();
    let field = |name: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("the app's answer has no {name}: {body}"))
            .to_string()
    };
    Uploaded {
        head,
        bytes: field("bytes").parse().expect("a byte count"),
        sha256: field("sha256"),
        sent_sha256,
    }
}

/// What a download came to.
#[derive(Debug)]
struct Downloaded {
    head: String,
    bytes: u64,
    sha256: String,
}

/// GETs `size` bytes from the app's `/download`, hashing them as they stream out of curl.
async fn download(gw: &Gateway, http: &str, size: usize) -> Downloaded {
    let mut curl = Transfer::start(gw, http, &format!("/download?bytes={size}"), &[]);
    let stdout = curl.child.stdout.take().expect("piped stdout");
    let (bytes, sha256) = tokio::time::timeout(Duration::from_secs(300), digest(stdout))
        .await
        .expect("the download finishes in time");
    let (head, _) = curl.finish().await;
    Downloaded {
        head,
        bytes,
        sha256,
    }
}

/// A curl transfer of user `uma` with its standard streams piped and its response head kept.
struct Transfer {
    child: tokio::process::Child,
    head: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Transfer {
    fn start(gw: &Gateway, http: &str, path: &str, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let head = dir.path().join("head");
        let child = gw
            .curl_command()
            .args([http, "-H", "x-user: uma", "-o", "-", "-D"])
            .arg(&head)
            .args(args)
            .arg(gw.url(path))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("curl starts");
        Self {
            child,
            head,
            _dir: dir,
        }
    }

    /// Waits for curl to succeed; the response head and what was left of its output.
    async fn finish(self) -> (String, Vec<u8>) {
        let out = tokio::time::timeout(Duration::from_secs(300), self.child.wait_with_output())
            .await
            .expect("the transfer finishes in time")
            .expect("curl ran");
        assert!(
            out.status.success(),
            "curl failed: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let head = std::fs::read_to_string(&self.head).unwrap_or_default();
        (head, out.stdout)
    }
}

/// Byte count and SHA-256 of a stream, read through one small buffer.
async fn digest(mut from: impl AsyncRead + Unpin) -> (u64, String) {
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        total += n as u64;
    }
    (total, hex(&sha.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Samples this process's resident set every 10 ms on a thread of its own (the runtime's
/// threads are busy moving the bytes), from a baseline taken at start.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
    baseline: u64,
}

impl Sampler {
    fn start() -> Self {
        let baseline = rss();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut peak = 0;
                while !stop.load(Ordering::Relaxed) {
                    peak = peak.max(rss());
                    std::thread::sleep(Duration::from_millis(10));
                }
                peak.max(rss())
            })
        };
        Self {
            stop,
            thread,
            baseline,
        }
    }

    /// Stops sampling and fails the test if the peak grew past [`MEMORY_BUDGET`] during `what`.
    fn stop_within_budget(self, what: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let peak = self.thread.join().expect("the sampler thread");
        let growth = peak.saturating_sub(self.baseline);
        println!("{what}: memory grew by {} KiB at most", growth / 1024);
        assert!(
            growth < MEMORY_BUDGET,
            "the gateway grew by {} MiB during {what}: is it buffering bodies?",
            growth / MIB as u64
        );
    }
}

/// `VmRSS` of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("a VmRSS line")
}
