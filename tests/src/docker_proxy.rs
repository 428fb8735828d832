//! A Unix-socket proxy between the gateway (`[docker] host = "unix:///…"`) and the real
//! engine's socket that forwards everything, but can make `POST /containers/create` slow, fail
//! it with a Docker-like JSON error, or reset the connection, and counts the creates it saw
//! (and how many were in flight at once).
//!
//! Requests are read head by head (HTTP/1.1, one at a time per connection, as the Docker
//! client sends them) so each one can be told apart on a kept-alive connection; answers are
//! copied back byte for byte. After an upgrade (attach, exec) or a chunked request body the
//! connection is spliced raw: no create can follow on it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};

/// The engine's socket the proxy forwards to.
pub const ENGINE_SOCKET: &str = "/var/run/docker.sock";

/// What the proxy does to the next `POST /containers/create`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateFault {
    /// Forward it.
    Pass,
    /// Forward it after this long.
    Delay(Duration),
    /// Answer `status` with `{"message": message}`, as Docker does, without forwarding.
    Fail {
        /// HTTP status (500, 503).
        status: u16,
        /// Docker's `message`.
        message: String,
    },
    /// Close the connection without answering.
    Reset,
}

#[derive(Debug)]
struct Shared {
    fault: Mutex<CreateFault>,
    creates: AtomicU32,
    in_flight: AtomicU32,
    max_in_flight: AtomicU32,
}

/// The proxy, serving until dropped.
#[derive(Debug)]
pub struct DockerProxy {
    /// `unix:///…/docker.sock`, for `[docker] host`.
    pub host: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DockerProxy {
    /// Listens on a fresh socket, forwarding to [`ENGINE_SOCKET`].
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating the proxy's directory")?;
        let socket: PathBuf = dir.path().join("docker.sock");
        let listener =
            UnixListener::bind(&socket).with_context(|| format!("binding {}", socket.display()))?;
        let shared = Arc::new(Shared {
            fault: Mutex::new(CreateFault::Pass),
            creates: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            max_in_flight: AtomicU32::new(0),
        });
        let s = shared.clone();
        // The connections live in the accept task's set, so dropping the proxy aborts them
        // too: a create held back by a delay is never forwarded after the test ended.
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                connections.spawn(connection(client, s.clone()));
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            host: format!("unix://{}", socket.display()),
            shared,
            task,
            _dir: dir,
        })
    }

    /// Sets what happens to the creates from now on.
    pub fn set(&self, fault: CreateFault) {
        *self.shared.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
    }

    /// How many creates the proxy has seen.
    pub fn creates(&self) -> u32 {
        self.shared.creates.load(Ordering::SeqCst)
    }

    /// The most creates that were in flight (seen, not yet answered) at one moment.
    pub fn max_in_flight(&self) -> u32 {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }
}

/// One client connection: requests parsed and forwarded one by one, answers spliced back.
async fn connection(client: UnixStream, shared: Arc<Shared>) {
    let Ok(upstream) = UnixStream::connect(ENGINE_SOCKET).await else {
        return;
    };
    let (mut from_client, to_client) = client.into_split();
    let (mut from_engine, mut to_engine) = upstream.into_split();
    let to_client = Arc::new(tokio::sync::Mutex::new(to_client));
    // A create counts as in flight until its answer's first bytes come back.
    let answering = Arc::new(AtomicU32::new(0));
    let back = {
        let (to_client, shared, answering) = (to_client.clone(), shared.clone(), answering.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match from_engine.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if answering.swap(0, Ordering::SeqCst) > 0 {
                    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                }
                if to_client.lock().await.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = to_client.lock().await.shutdown().await;
        })
    };
    let mut pending = Vec::new();
    loop {
        let Some(head) = read_head(&mut from_client, &mut pending).await else {
            break;
        };
        let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let is_create = text.starts_with("post ") && text.contains("/containers/create");
        let raw_after = header_value(&text, "upgrade").is_some()
            || header_value(&text, "transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let length = header_value(&text, "content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let body = if raw_after {
            Vec::new()
        } else {
            match read_exact_from(&mut from_client, &mut pending, length).await {
                Some(b) => b,
                None => break,
            }
        };
        if is_create {
            shared.creates.fetch_add(1, Ordering::SeqCst);
            let fault = shared
                .fault
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            match fault {
                CreateFault::Pass => {}
                CreateFault::Delay(d) => tokio::time::sleep(d).await,
                CreateFault::Fail { status, message } => {
                    let json = serde_json::json!({ "message": message }).to_string();
                    let answer = format!(
                        "HTTP/1.1 {status} Failed\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\n\r\n{json}",
                        json.len()
                    );
                    if to_client
                        .lock()
                        .await
                        .write_all(answer.as_bytes())
                        .await
                        .is_err()
                    {
                        break;
                    }
                    continue;
                }
                CreateFault::Reset => break,
            }
            let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
            answering.store(1, Ordering::SeqCst);
        }
        if to_engine.write_all(&head).await.is_err() || to_engine.write_all(&body).await.is_err() {
            break;
        }
        if raw_after {
            if !pending.is_empty() && to_engine.write_all(&pending).await.is_err() {
                break;
            }
            let _ = tokio::io::copy(&mut from_client, &mut to_engine).await;
            break;
        }
    }
    // Reset (or the client left): dropping both halves closes both connections.
    drop(to_engine);
    back.abort();
    if answering.swap(0, Ordering::SeqCst) > 0 {
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    close(to_client).await;
}

async fn close(to_client: Arc<tokio::sync::Mutex<OwnedWriteHalf>>) {
    let _ = to_client.lock().await.shutdown().await;
}

/// The next request head (through the blank line), or `None` at the end of the connection.
async fn read_head(r: &mut (impl AsyncRead + Unpin), pending: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(pending.drain(..i + 4).collect());
        }
        let mut buf = [0u8; 8192];
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
        }
    }
}

/// Exactly `n` bytes of body, taking what was already read first.
async fn read_exact_from(
    r: &mut (impl AsyncRead + Unpin),
    pending: &mut Vec<u8>,
    n: usize,
) -> Option<Vec<u8>> {
    while pending.len() < n {
        let mut buf = [0u8; 8192];
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(k) => pending.extend_from_slice(&buf[..k]),
        }
    }
    Some(pending.drain(..n).collect())
}

/// The value of header `name` (lowercase) in a lowercased head.
fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == name).then(|| v.trim())
    })
}
