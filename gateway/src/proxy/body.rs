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
use crate::signal::EndSignal;

/// Which way a body flows, to know which side of the meter its bytes go to.
#[derive(Debug, Clone, Copy)]
pub(super) enum Direction {
    ToContainer,
    ToClient,
}

impl Direction {
    /// Reports `n` bytes moved this way.
    pub(super) fn record(self, meter: &Meter, n: u64) {
        match self {
            Direction::ToContainer => meter(n, 0),
            Direction::ToClient => meter(0, n),
        }
    }
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
    ended: EndSignal,
    /// Waits for `ended`; made only once the body waits or has already delivered a frame, so
    /// that a body read in one poll (most answers: hyper stops at a known length) pays neither
    /// its allocation nor its locks.
    waiting: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// A frame has been handed on.
    delivered: bool,
    /// Cancelled when the body has been read to its end.
    done: Option<CancellationToken>,
}

impl<B: HttpBody<Data = Bytes, Error = hyper::Error> + Unpin> Metered<B> {
    pub(super) fn new(
        inner: B,
        meter: Meter,
        direction: Direction,
        keep: Option<Box<dyn Any + Send + Sync>>,
        ended: EndSignal,
    ) -> Self {
        Self {
            inner,
            meter,
            direction,
            keep,
            ended,
            waiting: None,
            delivered: false,
            done: None,
        }
    }

    /// Cancels `done` when the body has been read to its end. A body empty from the start
    /// may never be polled: the caller knows its end without asking.
    pub(super) fn signal_end(mut self, done: CancellationToken) -> Self {
        self.done = Some(done);
        self
    }
}

impl<B> Metered<B> {
    /// Whether the session has ended; registers `cx` to be woken when it does. Drops `keep`
    /// when it has.
    fn session_ended(&mut self, cx: &mut Context<'_>) -> bool {
        let ended = &self.ended;
        let waiting = self
            .waiting
            .get_or_insert_with(|| Box::pin(ended.clone().fired_owned()));
        if waiting.as_mut().poll(cx).is_ready() {
            self.keep = None;
            return true;
        }
        false
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
        // After the first frame, every poll looks at the session's end first, so a body that
        // keeps flowing is cut too.
        if this.delivered && this.session_ended(cx) {
            return Poll::Ready(Some(Err(Box::new(SessionEnded))));
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if polled.is_pending() && this.session_ended(cx) {
            return Poll::Ready(Some(Err(Box::new(SessionEnded))));
        }
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                this.delivered = true;
                if let Some(data) = frame.data_ref() {
                    this.direction.record(&this.meter, data.len() as u64);
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use http_body_util::BodyExt;

    use super::*;

    /// A body with a frame always ready (`endless`), or never (`silent`).
    struct Source {
        endless: bool,
    }

    impl HttpBody for Source {
        type Data = Bytes;
        type Error = hyper::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
            if self.endless {
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"chunk")))))
            } else {
                Poll::Pending
            }
        }
    }

    fn metered(endless: bool, ended: &CancellationToken) -> (Metered<Source>, Arc<AtomicU64>) {
        let counted = Arc::new(AtomicU64::new(0));
        let meter_count = counted.clone();
        let meter: Meter = Arc::new(move |_, to_client| {
            meter_count.fetch_add(to_client, Ordering::Relaxed);
        });
        let keep: Box<dyn Any + Send + Sync> = Box::new(());
        let body = Metered::new(
            Source { endless },
            meter,
            Direction::ToClient,
            Some(keep),
            ended.clone().into(),
        );
        (body, counted)
    }

    #[tokio::test]
    async fn a_body_read_in_one_poll_does_not_wait_on_the_session() {
        let ended = CancellationToken::new();
        let (mut body, counted) = metered(true, &ended);
        let frame = body.frame().await.expect("a frame").expect("data");
        assert_eq!(frame.data_ref().map(Bytes::len), Some(5));
        assert_eq!(counted.load(Ordering::Relaxed), 5);
        assert!(
            body.waiting.is_none(),
            "no waiter was made for a single poll"
        );
    }

    #[tokio::test]
    async fn a_flowing_body_is_cut_when_the_session_ends() {
        let ended = CancellationToken::new();
        let (mut body, _) = metered(true, &ended);
        body.frame().await.expect("a frame").expect("data");
        ended.cancel();
        let cut = body.frame().await.expect("an error frame");
        let err = cut.expect_err("the session's end fails the body");
        assert!(err.downcast_ref::<SessionEnded>().is_some(), "{err}");
        assert!(body.keep.is_none(), "the lease is let go");
    }

    #[tokio::test]
    async fn a_waiting_body_wakes_when_the_session_ends() {
        let ended = CancellationToken::new();
        let (mut body, _) = metered(false, &ended);
        let waiting = tokio::spawn(async move { body.frame().await.map(|f| f.is_err()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "a silent body waits");
        ended.cancel();
        let failed = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken by the session's end")
            .expect("the task");
        assert_eq!(failed, Some(true));
    }
}
