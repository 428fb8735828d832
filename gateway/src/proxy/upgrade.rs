//! Relaying an upgraded connection (WebSocket and other `101 Switching Protocols`) once both
//! the client and the container have switched.

use std::any::Any;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::Meter;
use super::body::Direction;
use crate::signal::EndSignal;
use crate::write_through::write_through;

/// How many upgraded streams took each relay path, so operators (and tests) can see whether
/// zero-copy applies.
#[derive(Debug, Default)]
pub(super) struct RelayCounters {
    pub(super) spliced: AtomicU64,
    pub(super) copied: AtomicU64,
    /// Pipes the spliced streams hold right now (two descriptors each).
    pub(super) pipes: AtomicU64,
}

/// Waits for both sides to switch, then relays until both directions end, either fails, or
/// the session ends (`ended`), which closes both. `keep` (the session's lease) lives exactly as
/// long as this task.
pub(super) async fn relay(
    client: OnUpgrade,
    upstream: impl Future<Output = hyper::Result<Upgraded>>,
    meter: Meter,
    keep: Box<dyn Any + Send + Sync>,
    counters: Arc<RelayCounters>,
    zero_copy: bool,
    ended: EndSignal,
) {
    let _keep = keep;
    let relayed = async {
        let (client, upstream) = tokio::try_join!(client, upstream).map_err(io::Error::other)?;
        pipe(client, upstream, &meter, &counters, zero_copy).await
    };
    tokio::select! {
        result = relayed => if let Err(err) = result {
            // Resets are how most upgraded streams end; nobody is left to tell.
            tracing::debug!(%err, "upgraded stream ended with an error");
        },
        () = ended.fired() => tracing::debug!("session ended: upgraded stream closed"),
    }
}

/// One side of an upgraded connection: the bare socket when hyper's IO was plain TCP.
enum Side {
    Tcp(TcpStream),
    Other(TokioIo<Upgraded>),
}

impl Side {
    /// Unwraps `upgraded`, returning the bytes hyper had already read past the handshake: they
    /// are the first bytes of the stream and must be delivered before anything else.
    fn open(upgraded: Upgraded, zero_copy: bool) -> (Side, Bytes) {
        if !zero_copy {
            return (Side::Other(TokioIo::new(upgraded)), Bytes::new());
        }
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => (Side::Tcp(parts.io.into_inner()), parts.read_buf),
            Err(upgraded) => (Side::Other(TokioIo::new(upgraded)), Bytes::new()),
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Side::Tcp(s) => s.write_all(bytes).await,
            Side::Other(s) => s.write_all(bytes).await,
        }
    }

    fn into_stream(self) -> Box<dyn Stream> {
        match self {
            Side::Tcp(s) => Box::new(s),
            Side::Other(s) => Box::new(s),
        }
    }
}

async fn pipe(
    client: Upgraded,
    upstream: Upgraded,
    meter: &Meter,
    counters: &RelayCounters,
    zero_copy: bool,
) -> io::Result<()> {
    let (mut client, client_early) = Side::open(client, zero_copy);
    let (mut upstream, upstream_early) = Side::open(upstream, zero_copy);
    if !client_early.is_empty() {
        upstream.write_all(&client_early).await?;
        meter(client_early.len() as u64, 0);
    }
    if !upstream_early.is_empty() {
        client.write_all(&upstream_early).await?;
        meter(0, upstream_early.len() as u64);
    }

    #[cfg(target_os = "linux")]
    if let (Side::Tcp(c), Side::Tcp(u)) = (&client, &upstream) {
        counters.spliced.fetch_add(1, Ordering::Relaxed);
        return super::splice::relay(c, u, meter, &counters.pipes).await;
    }

    counters.copied.fetch_add(1, Ordering::Relaxed);
    let mut client = MeteredIo {
        inner: client.into_stream(),
        meter: meter.clone(),
        direction: Direction::ToContainer,
    };
    let mut upstream = MeteredIo {
        inner: upstream.into_stream(),
        meter: meter.clone(),
        direction: Direction::ToClient,
    };
    super::copy::bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// Any bidirectional byte stream.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Counts the bytes read from one side as they are read, so a long-lived stream reports
/// activity while it lasts rather than once at the end.
struct MeteredIo {
    inner: Box<dyn Stream>,
    meter: Meter,
    /// Where the bytes read from `inner` are going.
    direction: Direction,
}

impl AsyncRead for MeteredIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            self.direction.record(&self.meter, n);
        }
        polled
    }
}

write_through!(impl[] for MeteredIo);
