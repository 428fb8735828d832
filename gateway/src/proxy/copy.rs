//! Copying both ways between two byte streams with no buffer held while they are idle.
//!
//! `tokio::io::copy_bidirectional` keeps an 8 KiB buffer per direction for a connection's whole
//! life. A gateway holding thousands of idle WebSockets would pay 16 KiB each for bytes that are
//! not there (about half of what an idle WebSocket through Orca cost; BENCHMARKS.md, "Scale").
//! Here every read lands in one scratch buffer per thread and is written on at once; only what
//! the writer cannot take right away is copied into a buffer of the direction's own, which is
//! freed as soon as it has been written. An idle direction holds nothing.
//!
//! Behaviour otherwise follows `copy_bidirectional`: each end of stream is passed on as a
//! shutdown of the other side's writing half, writes are flushed whenever the reader has
//! nothing more, and the first error of either direction ends both.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The scratch buffer's size: a whole TLS record's plaintext, the most one read of a TLS
/// stream returns.
const SCRATCH_LEN: usize = 16 * 1024;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_LEN].into_boxed_slice());
}

/// Copies `a` to `b` and `b` to `a` until both have ended; returns the bytes read from each.
pub(super) async fn bidirectional<A, B>(a: &mut A, b: &mut B) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let (mut a_to_b, mut b_to_a) = (Half::default(), Half::default());
    poll_fn(|cx| {
        let forth = a_to_b.poll(cx, Pin::new(&mut *a), Pin::new(&mut *b))?;
        let back = b_to_a.poll(cx, Pin::new(&mut *b), Pin::new(&mut *a))?;
        match (forth, back) {
            (Poll::Ready(()), Poll::Ready(())) => Poll::Ready(Ok((a_to_b.read, b_to_a.read))),
            _ => Poll::Pending,
        }
    })
    .await
}

#[derive(Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Copying,
    /// The reader ended; the writer's half is being shut down.
    ShuttingDown,
    Done,
}

/// One direction.
#[derive(Debug, Default)]
struct Half {
    state: State,
    /// Bytes read that the writer has not taken yet, from `sent` on; unallocated when empty.
    pending: Vec<u8>,
    sent: usize,
    /// Bytes were written since the last flush.
    unflushed: bool,
    /// Bytes read so far.
    read: u64,
}

impl Half {
    fn poll<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut reader: Pin<&mut R>,
        mut writer: Pin<&mut W>,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        loop {
            match self.state {
                State::Done => return Poll::Ready(Ok(())),
                State::ShuttingDown => {
                    // Flushed first, as tokio's copy does: not every stream's shutdown flushes.
                    ready!(self.poll_flush(cx, &mut writer))?;
                    ready!(writer.as_mut().poll_shutdown(cx))?;
                    self.state = State::Done;
                    continue;
                }
                State::Copying => {}
            }
            if self.sent < self.pending.len() {
                let rest = &self.pending[self.sent..];
                self.sent += write_now(cx, &mut writer, rest, &mut self.unflushed)?;
                if self.sent < self.pending.len() {
                    return Poll::Pending;
                }
            }
            // Written: the buffer goes, so a direction that falls idle holds no memory.
            self.pending = Vec::new();
            self.sent = 0;
            match with_scratch(|scratch| self.read_and_write(cx, scratch, &mut reader, &mut writer))
            {
                Poll::Pending => {
                    ready!(self.poll_flush(cx, &mut writer))?;
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(0)) => self.state = State::ShuttingDown,
                Poll::Ready(Ok(n)) => self.read += n as u64,
            }
        }
    }

    /// One read into `scratch`, written on as far as the writer takes it now; the rest is kept
    /// in `pending`. Ready(0) is the end of the reader's stream.
    fn read_and_write<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        scratch: &mut [u8],
        reader: &mut Pin<&mut R>,
        writer: &mut Pin<&mut W>,
    ) -> Poll<io::Result<usize>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        let mut buf = ReadBuf::new(scratch);
        ready!(reader.as_mut().poll_read(cx, &mut buf))?;
        let read = buf.filled();
        let written = write_now(cx, writer, read, &mut self.unflushed)?;
        // What the full writer did not take waits in a buffer of this direction's own (the
        // scratch is the thread's); nothing is allocated when it took everything.
        self.pending = read[written..].to_vec();
        Poll::Ready(Ok(read.len()))
    }

    /// Flushes the writer when bytes were written since the last flush.
    fn poll_flush<W>(
        &mut self,
        cx: &mut Context<'_>,
        writer: &mut Pin<&mut W>,
    ) -> Poll<io::Result<()>>
    where
        W: AsyncWrite + ?Sized,
    {
        if self.unflushed {
            ready!(writer.as_mut().poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }
}

/// Writes as much of `bytes` as the writer takes now and returns how much that was; when it
/// is less than all, the writer is full and will wake the task when it has room.
fn write_now<W>(
    cx: &mut Context<'_>,
    writer: &mut Pin<&mut W>,
    bytes: &[u8],
    unflushed: &mut bool,
) -> io::Result<usize>
where
    W: AsyncWrite + ?Sized,
{
    let mut written = 0;
    while written < bytes.len() {
        match writer.as_mut().poll_write(cx, &bytes[written..]) {
            Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(n)) => {
                written += n;
                *unflushed = true;
            }
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => break,
        }
    }
    Ok(written)
}

/// Runs `f` with this thread's scratch buffer. A nested call (a stream that relays inside its
/// own read or write, which none of ours does) gets a buffer of its own rather than a panic.
fn with_scratch<T>(f: impl FnOnce(&mut [u8]) -> T) -> T {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        Err(_) => f(&mut vec![0; SCRATCH_LEN]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    /// Both directions carry their bytes intact, each end of stream reaches the other side, and
    /// the counts are the bytes read from each side.
    #[tokio::test]
    async fn both_directions_arrive_whole_and_ends_pass_through() {
        let (mut client, mut a) = duplex(64 * 1024);
        let (mut b, mut container) = duplex(64 * 1024);
        let relay = tokio::spawn(async move { bidirectional(&mut a, &mut b).await });
        let up: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let down: Vec<u8> = (0..150_000u32).map(|i| (i % 241) as u8).collect();
        let (up2, down2) = (up.clone(), down.clone());
        let client_side = tokio::spawn(async move {
            client.write_all(&up2).await.unwrap();
            client.shutdown().await.unwrap();
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        let container_side = tokio::spawn(async move {
            let mut got = Vec::new();
            container.read_to_end(&mut got).await.unwrap();
            container.write_all(&down2).await.unwrap();
            container.shutdown().await.unwrap();
            got
        });
        assert_eq!(container_side.await.unwrap(), up);
        assert_eq!(client_side.await.unwrap(), down);
        assert_eq!(relay.await.unwrap().unwrap(), (200_000, 150_000));
    }

    /// A writer that takes only a few bytes at a time and is often full: every byte still
    /// arrives in order, through the direction's own buffer.
    #[tokio::test]
    async fn a_slow_writer_gets_every_byte_in_order() {
        let (mut client, mut a) = duplex(64 * 1024);
        // A 7-byte pipe: nearly every write is partial or has to wait.
        let (mut b, mut container) = duplex(7);
        let relay = tokio::spawn(async move { bidirectional(&mut a, &mut b).await });
        let up: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
        let up2 = up.clone();
        tokio::spawn(async move {
            client.write_all(&up2).await.unwrap();
            client.shutdown().await.unwrap();
            // Keep the client's reading half open until the relay is done.
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await.unwrap();
        });
        let mut got = Vec::new();
        container.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, up);
        container.shutdown().await.unwrap();
        assert_eq!(relay.await.unwrap().unwrap(), (50_000, 0));
    }

    /// A writer that keeps what it is given until flushed, and whose shutdown does not flush.
    struct HoldsUntilFlushed {
        inner: tokio::io::DuplexStream,
        held: Vec<u8>,
    }

    impl AsyncRead for HoldsUntilFlushed {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for HoldsUntilFlushed {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.held.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            while !self.held.is_empty() {
                let this = &mut *self;
                let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &this.held))?;
                this.held.drain(..n);
            }
            Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// Bytes written just before the end of the stream are flushed before the shutdown passes
    /// the end on, whatever the writer's shutdown does.
    #[tokio::test]
    async fn the_last_bytes_are_flushed_before_the_end_is_passed_on() {
        let (mut client, mut a) = duplex(1024);
        let (inner, mut container) = duplex(1024);
        let mut b = HoldsUntilFlushed {
            inner,
            held: Vec::new(),
        };
        client.write_all(b"last words").await.unwrap();
        client.shutdown().await.unwrap();
        let relay = tokio::spawn(async move {
            let copied = bidirectional(&mut a, &mut b).await;
            (copied, a, b)
        });
        let mut got = Vec::new();
        container.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"last words");
        container.shutdown().await.unwrap();
        let (copied, _a, _b) = relay.await.unwrap();
        assert_eq!(copied.unwrap(), (10, 0));
    }

    /// One side that goes away ends the relay with its error rather than hanging.
    #[tokio::test]
    async fn a_broken_side_ends_the_relay_with_an_error() {
        let (mut client, mut a) = duplex(1024);
        let (mut b, container) = duplex(1024);
        drop(container);
        let relay = tokio::spawn(async move { bidirectional(&mut a, &mut b).await });
        client.write_all(b"to nobody").await.unwrap();
        let err = relay.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
    }

    /// A stream that is written to in bursts and then idles holds no buffer of its own.
    #[tokio::test]
    async fn an_idle_direction_holds_no_buffer() {
        let (mut reader_end, reader) = duplex(1024);
        let (writer, mut far) = duplex(1024);
        let mut half = Half::default();
        let (mut reader, mut writer) = (Box::pin(reader), Box::pin(writer));
        reader_end.write_all(&[1; 600]).await.unwrap();
        reader_end.write_all(&[2; 400]).await.unwrap();
        let polled =
            poll_fn(|cx| Poll::Ready(half.poll(cx, reader.as_mut(), writer.as_mut()))).await;
        assert!(polled.is_pending());
        // 1,000 bytes read and the far pipe has room for 1,024: nothing waits.
        assert_eq!(half.read, 1000);
        assert_eq!(
            half.pending.capacity(),
            0,
            "an idle direction kept a buffer"
        );
        reader_end.write_all(&[3; 500]).await.unwrap();
        let polled =
            poll_fn(|cx| Poll::Ready(half.poll(cx, reader.as_mut(), writer.as_mut()))).await;
        assert!(polled.is_pending());
        // Only 24 of the next 500 fit: the other 476 wait in the direction's own buffer.
        assert_eq!(half.pending.len() - half.sent, 476);
        let mut drained = vec![0; 1024];
        far.read_exact(&mut drained).await.unwrap();
        let polled =
            poll_fn(|cx| Poll::Ready(half.poll(cx, reader.as_mut(), writer.as_mut()))).await;
        assert!(polled.is_pending());
        assert_eq!(half.pending.capacity(), 0, "a written buffer was kept");
        let mut rest = vec![0; 476];
        far.read_exact(&mut rest).await.unwrap();
        assert!(rest.iter().all(|&b| b == 3));
    }
}

/// The relay's throughput against `tokio::io::copy_bidirectional`, the copy it replaced: 2 GiB
/// one way through each, over loopback TCP, three rounds. A benchmark, run by `bench/relay`
/// and recorded in BENCHMARKS.md; it asserts only that every byte arrived.
#[cfg(test)]
mod throughput {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    const TOTAL: usize = 2 << 30;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    #[derive(Clone, Copy)]
    enum Relay {
        Tokio,
        Ours,
        /// The zero-copy path of plain sockets (`proxy/splice.rs`), for scale.
        #[cfg(target_os = "linux")]
        Splice,
    }

    /// MiB/s from a writer through the relay to a reader.
    async fn run(relay: Relay) -> f64 {
        let (mut src, mut a) = pair().await;
        let (mut b, mut dst) = pair().await;
        let relay = tokio::spawn(async move {
            match relay {
                Relay::Ours => bidirectional(&mut a, &mut b).await.map(|_| ()),
                Relay::Tokio => tokio::io::copy_bidirectional(&mut a, &mut b)
                    .await
                    .map(|_| ()),
                #[cfg(target_os = "linux")]
                Relay::Splice => {
                    let meter: crate::proxy::Meter = std::sync::Arc::new(|_, _| {});
                    let pipes = std::sync::atomic::AtomicU64::new(0);
                    crate::proxy::splice::relay(&a, &b, &meter, &pipes).await
                }
            }
        });
        let started = std::time::Instant::now();
        tokio::spawn(async move {
            let chunk = vec![7u8; 64 * 1024];
            for _ in 0..TOTAL / chunk.len() {
                src.write_all(&chunk).await.unwrap();
            }
            src.shutdown().await.unwrap();
            let mut rest = Vec::new();
            src.read_to_end(&mut rest).await.unwrap();
        });
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0;
        loop {
            let n = dst.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got += n;
        }
        let elapsed = started.elapsed();
        assert_eq!(got, TOTAL);
        dst.shutdown().await.unwrap();
        relay.await.unwrap().unwrap();
        TOTAL as f64 / elapsed.as_secs_f64() / f64::from(1 << 20)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a benchmark: bench/relay runs it"]
    async fn against_tokio_copy_bidirectional() {
        for round in 1..=3 {
            let tokio = run(Relay::Tokio).await;
            let ours = run(Relay::Ours).await;
            println!(
                "round {round}: tokio::io::copy_bidirectional {tokio:.0} MiB/s, \
                 proxy::copy {ours:.0} MiB/s, ratio {:.2}",
                ours / tokio
            );
            #[cfg(target_os = "linux")]
            println!(
                "round {round}: proxy::splice (plain sockets) {:.0} MiB/s",
                run(Relay::Splice).await
            );
        }
    }
}
