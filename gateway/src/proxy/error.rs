//! Why forwarding a request failed, and whose fault it was.

use std::error::Error as StdError;
use std::net::SocketAddr;

use crate::error::ErrorSource;

/// A request could not be forwarded to the container.
///
/// The caller turns container-side failures into a `502` page carrying the message, and only
/// logs client-side ones (nobody is left to read an answer).
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The container refused or reset the connection attempt (nothing listening on the port?).
    #[error(
        "cannot connect to the container at {addr}: {reason}; is the app listening on that port?"
    )]
    Connect {
        /// The container's address.
        addr: SocketAddr,
        /// The cause, from the innermost error.
        reason: String,
    },
    /// The container did not accept the connection within the connect timeout.
    #[error("the container at {addr} did not accept a connection within the connect timeout")]
    ConnectTimeout {
        /// The container's address.
        addr: SocketAddr,
    },
    /// The container broke the exchange: closed the connection, or answered something that is
    /// not HTTP/1.1.
    #[error("the container at {addr} failed the request: {reason}")]
    Upstream {
        /// The container's address.
        addr: SocketAddr,
        /// The cause, from the error chain.
        reason: String,
    },
    /// The session ended (its container stopped or died, or a limit ended it) while the
    /// container was still to answer.
    #[error(
        "the session ended before the container at {addr} answered: the container stopped or a limit ended the session"
    )]
    SessionEnded {
        /// The container's address.
        addr: SocketAddr,
    },
    /// The container took the whole request and sent no response head in time.
    #[error(
        "the container at {addr} sent no response within {after:?} of receiving the request; \
         if the app needs longer, raise `[https] response_timeout`"
    )]
    ResponseTimeout {
        /// The container's address.
        addr: SocketAddr,
        /// The timeout that passed.
        after: std::time::Duration,
    },
    /// The container switched protocols although the client did not ask it to.
    #[error("the container at {addr} answered 101 to a request that asked for no upgrade")]
    UnaskedUpgrade {
        /// The container's address.
        addr: SocketAddr,
    },
    /// The client went away (or sent a broken body) while the request was being forwarded.
    #[error("the client went away while its request was forwarded: {reason}")]
    ClientGone {
        /// The cause, from the error chain.
        reason: String,
    },
    /// A value Orca was asked to send to the container cannot be a header value.
    #[error(
        "cannot send {name} to the container: {value:?} contains characters not allowed in a header"
    )]
    InvalidHeader {
        /// The header Orca was setting.
        name: &'static str,
        /// The offending value, escaped.
        value: String,
    },
}

impl ProxyError {
    /// Which party failed, for the one place that turns errors into responses.
    pub fn source_side(&self) -> ErrorSource {
        match self {
            ProxyError::Connect { .. }
            | ProxyError::ConnectTimeout { .. }
            | ProxyError::Upstream { .. }
            | ProxyError::SessionEnded { .. }
            | ProxyError::ResponseTimeout { .. }
            | ProxyError::UnaskedUpgrade { .. } => ErrorSource::Container,
            ProxyError::ClientGone { .. } => ErrorSource::Client,
            ProxyError::InvalidHeader { .. } => ErrorSource::Internal,
        }
    }

    /// Classifies an error of sending a request to the container at `addr`.
    pub(super) fn from_hyper(addr: SocketAddr, err: &hyper::Error) -> Self {
        if let Some(gone) = find::<ClientBodyError>(err) {
            return ProxyError::ClientGone {
                reason: gone.0.to_string(),
            };
        }
        ProxyError::Upstream {
            addr,
            reason: chain(err),
        }
    }
}

/// Marks an error of the client's request body, so that a failed send is blamed on the client
/// rather than the container.
#[derive(Debug, thiserror::Error)]
#[error("client request body: {0}")]
pub(super) struct ClientBodyError(pub(super) hyper::Error);

/// The first error of type `T` in `err`'s source chain, `err` included.
fn find<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// The whole chain, outermost first, because hyper's outer messages alone ("client error
/// (SendRequest)") do not say what happened.
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        text.push_str(": ");
        text.push_str(&e.to_string());
        next = e.source();
    }
    text
}
