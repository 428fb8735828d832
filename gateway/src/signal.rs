//! A signal that something has ended, which its holders can wait for but not give.

use tokio_util::sync::{
    CancellationToken, WaitForCancellationFuture, WaitForCancellationFutureOwned,
};

/// Fires once when a session ends (a limit, its container stopped or died, shutdown).
///
/// A read-only view of the owner's token: every request of a session holds a clone, and none
/// of them can end the session by mistake. A clone of the token itself, not a child token: a
/// child costs an allocation and two locks of the parent's tree to make and drop on every
/// proxied request.
#[derive(Debug, Clone)]
pub struct EndSignal(CancellationToken);

impl EndSignal {
    /// Resolves when the signal fires.
    pub fn fired(&self) -> WaitForCancellationFuture<'_> {
        self.0.cancelled()
    }

    /// [`EndSignal::fired`] for a future that owns its signal.
    pub fn fired_owned(self) -> WaitForCancellationFutureOwned {
        self.0.cancelled_owned()
    }
}

impl From<CancellationToken> for EndSignal {
    /// Fires when `token` is cancelled; its owner keeps the only way to cancel it.
    fn from(token: CancellationToken) -> Self {
        Self(token)
    }
}
