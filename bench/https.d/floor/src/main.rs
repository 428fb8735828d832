//! The floor of Orca's HTTPS path: the same crates (tokio, rustls with ring, hyper 1,
//! hyper-util) as a bare TLS-terminating reverse proxy to one address, with none of Orca's
//! work (no identity, placement, metering, header policy). What it costs per request is what
//! the stack costs; what Orca costs beyond it is Orca's. BENCHMARKS.md says how it was run.
//!
//! Usage: floor <listen> <cert.pem> <key.pem> <upstream host:port>
//! `THREADS=n`: n threads, each a current-thread runtime with its own SO_REUSEPORT listener
//! (thread per core); unset: one multi-threaded runtime, as Orca ran before its workers.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

type Body = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

#[derive(Clone)]
struct Args {
    listen: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    upstream: String,
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let [_, listen, cert, key, upstream] = &argv[..] else {
        eprintln!("usage: floor <listen> <cert.pem> <key.pem> <upstream host:port>");
        std::process::exit(2);
    };
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(cert)
        .expect("read the certificate")
        .map(|c| c.expect("parse the certificate"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).expect("read the key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("the certificate and key match");
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let args = Args {
        listen: listen.parse().expect("a listen address"),
        tls: Arc::new(tls),
        upstream: upstream.clone(),
    };
    let threads: usize = std::env::var("THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    if threads == 0 {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
        runtime.expect("a runtime").block_on(serve(args));
        return;
    }
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let args = args.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
                runtime.expect("a runtime").block_on(serve(args));
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("a serving thread");
    }
}

async fn serve(args: Args) {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_reuseport(true).expect("SO_REUSEPORT");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.bind(args.listen).expect("bind the listen address");
    let listener = socket.listen(1024).expect("listen");
    let acceptor = tokio_rustls::TlsAcceptor::from(args.tls);
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build(connector);
    let upstream = Arc::new(args.upstream);
    loop {
        let Ok((tcp, peer)) = listener.accept().await else { continue };
        let _ = tcp.set_nodelay(true);
        let (acceptor, client, upstream) = (acceptor.clone(), client.clone(), upstream.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (client, upstream) = (client.clone(), upstream.clone());
                async move {
                    let (mut parts, body) = req.into_parts();
                    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                    parts.uri = Uri::try_from(format!("http://{upstream}{path}")).expect("a URI");
                    parts.version = hyper::Version::HTTP_11;
                    let host = parts.headers.get("host").cloned();
                    let client_ip = peer.ip().to_string().parse().expect("an address header");
                    parts.headers.insert("x-forwarded-for", client_ip);
                    parts.headers.insert("x-forwarded-proto", "https".parse().expect("a header"));
                    if let Some(host) = host {
                        parts.headers.insert("x-forwarded-host", host);
                    }
                    let resp = client.request(Request::from_parts(parts, body.boxed())).await?;
                    Ok::<_, hyper_util::client::legacy::Error>(resp.map(BodyExt::boxed))
                }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
        });
    }
}
