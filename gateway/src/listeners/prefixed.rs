//! A stream with bytes already read from it put back in front, so the server can wait for a
//! client's first bytes under its own timeout and still hand hyper the whole stream.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::write_through::write_through;

/// `inner`, read from `prefix` first.
#[derive(Debug)]
pub(crate) struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(prefix: Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            if !self.prefix.has_remaining() {
                // An advanced `Bytes` still holds its whole allocation (the 16 KiB first read),
                // for as long as the connection lives; let it go once drained. Idle keep-alive
                // connections were 28 KiB each in `bench/https`, more than half of it this.
                self.prefix = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

write_through!(impl[S: AsyncWrite + Unpin] for Prefixed<S>);

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn the_prefix_comes_first_then_the_stream() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b" world").await.unwrap();
        drop(client);
        let mut stream = Prefixed::new(Bytes::from_static(b"hello"), server);
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }

    /// Regression: the drained prefix kept the first read's buffer alive for the whole
    /// connection, 16 KiB per idle keep-alive connection.
    #[tokio::test]
    async fn a_drained_prefix_releases_its_buffer() {
        let (_client, server) = tokio::io::duplex(64);
        let first = Bytes::from(vec![b'x'; 4096]);
        let mut stream = Prefixed::new(first.clone(), server);
        let mut got = vec![0u8; 4096];
        stream.read_exact(&mut got).await.unwrap();
        assert!(
            first.is_unique(),
            "the stream still holds the prefix's allocation after reading all of it"
        );
    }
}
