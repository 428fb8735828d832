//! TLS and WebSocket clients of the gateway, trusting only a given CA: what the HTTPS tests of
//! the in-process gateway and of the `orca` binary both open.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderName;

/// A TLS connection to 127.0.0.1:`port` for `host`, trusting only the CA in the PEM file `ca`,
/// offering no ALPN, so HTTP/1.1 (upgrades are an HTTP/1.1 affair).
pub async fn connect_trusting(ca: &Path, port: u16, host: &str) -> TlsStream<TcpStream> {
    connect_with_alpn(ca, port, host, &[]).await
}

/// [`connect_trusting`] offering the ALPN protocols `alpn` (`b"h2"` for HTTP/2).
pub async fn connect_with_alpn(
    ca: &Path,
    port: u16,
    host: &str,
    alpn: &[&[u8]],
) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).expect("the CA file"))
        .expect("a valid CA");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the gateway accepts");
    let name = ServerName::try_from(host.to_string()).expect("a DNS name");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("a TLS handshake with a certificate of the trusted CA")
}

/// A WebSocket to `wss://<host>:<port>/ws` (the test app's echo) over `tls`, with `headers`
/// added to the handshake request.
pub async fn websocket(
    tls: TlsStream<TcpStream>,
    host: &str,
    port: u16,
    headers: &[(&str, &str)],
) -> WebSocketStream<TlsStream<TcpStream>> {
    websocket_at(tls, host, port, "/ws", headers).await
}

/// A WebSocket to `wss://<host>:<port><path>` over `tls`, with `headers` added to the
/// handshake request (a name given twice is sent twice).
pub async fn websocket_at(
    tls: TlsStream<TcpStream>,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
) -> WebSocketStream<TlsStream<TcpStream>> {
    let mut request = format!("wss://{host}:{port}{path}")
        .into_client_request()
        .expect("a WebSocket URL");
    for (name, value) in headers {
        request.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            value.parse().expect("a header value"),
        );
    }
    let (ws, response) = tokio::time::timeout(
        Duration::from_secs(60),
        tokio_tungstenite::client_async(request, tls),
    )
    .await
    .expect("the handshake completes")
    .expect("the app accepts the WebSocket");
    assert_eq!(response.status(), 101);
    ws
}

/// The next data message (text or binary) on `ws`, skipping control frames; within 30 s.
pub async fn next_data<S>(ws: &mut WebSocketStream<S>) -> Message
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("the echo arrives in time")
            .expect("the stream is open")
            .expect("a valid frame");
        if msg.is_text() || msg.is_binary() {
            return msg;
        }
    }
}
