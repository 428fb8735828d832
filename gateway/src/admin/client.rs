//! `orca status`: asks a running gateway's admin listener for its containers and prints them.
//!
//! A single HTTP/1.1 GET over a fresh connection (hyper's connection-level client; a pool
//! would buy nothing for one request), the whole exchange under one timeout.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

use super::api::{ApiError, ContainersView};
use super::table::render_status;
use super::token::{TokenError, configured_token};
use crate::config::AdminConfig;

/// How long the whole exchange may take, from connecting to the last byte of the answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read: far more than any listing, little enough to never exhaust memory
/// when something else answers on the port.
const MAX_ANSWER: usize = 64 << 20;
/// The containers listing.
const CONTAINERS: &str = "/api/v1/containers";

/// Why `orca status` could not show the gateway's state.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The token file cannot be used.
    #[error("{0}")]
    Token(#[from] TokenError),
    /// Nothing answers at the address, or the connection broke.
    #[error(
        "cannot reach orca's admin listener at {addr}: {reason}; is `orca serve` running with this configuration?"
    )]
    Unreachable {
        /// Where it was asked.
        addr: SocketAddr,
        /// What failed, in lowercase words.
        reason: String,
    },
    /// No complete answer within [`TIMEOUT`].
    #[error(
        "orca's admin listener at {addr} did not answer within {}s; is the gateway overloaded, or is something else listening there?",
        TIMEOUT.as_secs()
    )]
    Timeout {
        /// Where it was asked.
        addr: SocketAddr,
    },
    /// The gateway answered with an error.
    #[error("orca's admin listener at {addr} answered {status} to GET {path}: {message}")]
    Status {
        /// Where it was asked.
        addr: SocketAddr,
        /// What was asked.
        path: String,
        /// The status.
        status: StatusCode,
        /// The API's error message, or the start of the body when it is not the API's JSON.
        message: String,
    },
    /// The answer is not the admin API's JSON.
    #[error(
        "orca's admin listener at {addr} answered GET {path} with something other than the admin API's JSON ({source}); are `orca status` and `orca serve` the same version?"
    )]
    Decode {
        /// Where it was asked.
        addr: SocketAddr,
        /// What was asked.
        path: String,
        /// Why decoding failed.
        source: serde_json::Error,
    },
}

/// `orca status`: the gateway's containers, users and recent stops as tables, read from the
/// admin listener `config` names (with its token, when one is configured).
pub async fn status(config: &AdminConfig) -> Result<String, ClientError> {
    let token = configured_token(config)?;
    let addr = connect_address(config.listen);
    let view: ContainersView = get_json(addr, CONTAINERS, token.as_deref()).await?;
    Ok(render_status(&view, SystemTime::now()))
}

/// Where to reach a listener bound to `listen`: a wildcard address (`0.0.0.0`, `[::]`) is
/// reached on the loopback address of its family.
pub fn connect_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// GETs `path` from the admin listener at `addr` with `token` and decodes the JSON answer.
/// A status other than 200 is an error carrying the API's message.
pub async fn get_json<T: DeserializeOwned>(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> Result<T, ClientError> {
    let (status, _, body) = send(addr, Method::GET, path, token).await?;
    if status != StatusCode::OK {
        let message = match serde_json::from_slice::<ApiError>(&body) {
            Ok(e) => e.error,
            Err(_) => {
                let text = String::from_utf8_lossy(&body);
                let text: String = text.trim().chars().take(200).collect();
                if text.is_empty() {
                    "(no message)".to_string()
                } else {
                    text
                }
            }
        };
        return Err(ClientError::Status {
            addr,
            path: path.to_string(),
            status,
            message,
        });
    }
    serde_json::from_slice(&body).map_err(|source| ClientError::Decode {
        addr,
        path: path.to_string(),
        source,
    })
}

/// `method path` on a new connection to `addr`, under [`TIMEOUT`]: the status, the headers
/// and the whole body, whatever the status.
pub(crate) async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> Result<(StatusCode, HeaderMap, Bytes), ClientError> {
    tokio::time::timeout(TIMEOUT, exchange(addr, method, path, token))
        .await
        .map_err(|_| ClientError::Timeout { addr })?
}

async fn exchange(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> Result<(StatusCode, HeaderMap, Bytes), ClientError> {
    let unreachable = |reason: String| ClientError::Unreachable { addr, reason };
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| unreachable(io_reason(&e)))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    // The connection is driven beside the request; it ends when the answer is read and the
    // sender dropped, or with the task when the timeout abandons the exchange.
    let driver = tokio::spawn(connection);
    let mut request = Request::new(Empty::<Bytes>::new());
    *request.method_mut() = method;
    *request.uri_mut() = path
        .parse()
        .map_err(|e| unreachable(format!("`{path}` is not a request path: {e}")))?;
    let headers = request.headers_mut();
    // HTTP/1.1 requires a Host header; hyper's connection-level client adds none.
    if let Ok(host) = HeaderValue::from_str(&addr.to_string()) {
        headers.insert(header::HOST, host);
    }
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(
        header::USER_AGENT,
        HeaderValue::from_static(concat!("orca/", env!("CARGO_PKG_VERSION"))),
    );
    if let Some(token) = token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            unreachable("the admin token holds characters an HTTP header cannot carry".to_string())
        })?;
        headers.insert(header::AUTHORIZATION, value);
    }
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| unreachable(format!("the answer broke off: {e}")))?
        .to_bytes();
    drop(sender);
    driver.abort();
    Ok((status, headers, body))
}

/// An I/O error in lowercase words, without the OS error number.
fn io_reason(error: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match error.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset => "connection reset".into(),
        AddrNotAvailable => "address not available".into(),
        PermissionDenied => "permission denied".into(),
        HostUnreachable => "host unreachable".into(),
        NetworkUnreachable => "network unreachable".into(),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_addresses_are_reached_on_loopback() {
        let reach = |s: &str| connect_address(s.parse().unwrap()).to_string();
        assert_eq!(reach("0.0.0.0:9090"), "127.0.0.1:9090");
        assert_eq!(reach("[::]:9090"), "[::1]:9090");
        assert_eq!(reach("10.1.2.3:9091"), "10.1.2.3:9091");
        assert_eq!(reach("[::1]:9090"), "[::1]:9090");
    }

    #[tokio::test]
    async fn nothing_listening_is_a_sentence_naming_the_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let e = get_json::<ContainersView>(addr, CONTAINERS, None)
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "cannot reach orca's admin listener at {addr}: connection refused; \
                 is `orca serve` running with this configuration?"
            )
        );
    }

    #[tokio::test]
    async fn a_listener_that_never_answers_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepted (by the kernel's backlog) but never answered.
        tokio::time::pause();
        let e = get_json::<ContainersView>(addr, CONTAINERS, None)
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Timeout { .. }), "{e}");
        assert!(e.to_string().contains("did not answer within 5s"), "{e}");
        drop(listener);
    }
}
