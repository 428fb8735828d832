//! A body that counts bytes as frames pass, for activity and metrics, without collecting them.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::Meter;
use super::error::ClientBodyError;

/// Which way a body flows, to know which side of the meter its bytes go to.
#[derive(Debug, Clone, Copy)]
pub(super) enum Direction {
    ToContainer,
    ToClient,
}

/// Streams an incoming body frame by frame, reporting each data frame's size to the meter.
///
/// It may hold the caller's `keep` (a scheduler lease) until the body ends or is dropped, so a
/// long download keeps the session open for exactly as long as it runs. When the session ends
/// (`ended`), the body fails at once rather than wait for a peer that may be gone.
pub(super) struct Metered<B = Incoming> {
    inner: B,
    meter: Meter,
    direction: Direction,
    keep: Option<Box<dyn Any + Send + Sync>>,
    ended: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Cancelled when the body has been read to its end.
    done: Option<CancellationToken>,
}

impl<B: HttpBody<Data = Bytes, Error = hyper::Error> + Unpin> Metered<B> {
    pub(super) fn new(
        inner: B,
        meter: Meter,
        direction: Direction,
        keep: Option<Box<dyn Any + Send + Sync>>,
        ended: CancellationToken,
    ) -> Self {
        Self {
            inner,
            meter,
            direction,
            keep,
            ended: Box::pin(ended.cancelled_owned()),
            done: None,
        }
    }

    /// Cancels `done` when the body has been read to its end; at once for a body that is
    /// empty from the start, which hyper may never poll.
    pub(super) fn signal_end(mut self, done: CancellationToken) -> Self {
        if self.inner.is_end_stream() {
            done.cancel();
        }
        self.done = Some(done);
        self
    }
}

/// Why a body was cut short by the session's end.
#[derive(Debug, thiserror::Error)]
#[error("the session ended (its container stopped or a limit ended it) while a body was streaming")]
pub(super) struct SessionEnded;

impl<B: HttpBody<Data = Bytes, Error = hyper::Error> + Unpin> HttpBody for Metered<B> {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.ended.as_mut().poll(cx).is_ready() {
            this.keep = None;
            return Poll::Ready(Some(Err(Box::new(SessionEnded))));
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    match this.direction {
                        Direction::ToContainer => (this.meter)(n, 0),
                        Direction::ToClient => (this.meter)(0, n),
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                this.keep = None;
                Poll::Ready(Some(Err(match this.direction {
                    // Tagged so that the failed send is blamed on the client, not the container.
                    Direction::ToContainer => Box::new(ClientBodyError(err)),
                    Direction::ToClient => Box::new(err),
                })))
            }
            Poll::Ready(None) => {
                // The exchange is over even if the server holds on to the body a while longer.
                this.keep = None;
                if let Some(done) = &this.done {
                    done.cancel();
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> std::fmt::Debug for Metered<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metered")
            .field("direction", &self.direction)
            .field("holding", &self.keep.is_some())
            .finish_non_exhaustive()
    }
}
