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

/// A TLS connection to 127.0.0.1:`port` for `host`, trusting only the CA in the PEM file `ca`,
/// offering no ALPN, so HTTP/1.1 (upgrades are an HTTP/1.1 affair).
pub async fn connect_trusting(ca: &Path, port: u16, host: &str) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).expect("the CA file"))
        .expect("a valid CA");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
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
    headers: &[(&'static str, &str)],
) -> WebSocketStream<TlsStream<TcpStream>> {
    let mut request = format!("wss://{host}:{port}/ws")
        .into_client_request()
        .expect("a WebSocket URL");
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, value.parse().expect("a header value"));
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
