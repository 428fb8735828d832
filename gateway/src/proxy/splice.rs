//! Zero-copy relay of two plain TCP streams with `splice(2)` (Linux only).
//!
//! An upgraded stream (a WebSocket, say) between a plain-HTTP client and a container is a pair
//! of sockets; moving its bytes through a pipe with `splice` keeps them in the kernel instead of
//! copying each chunk into and out of a userspace buffer. nix's safe wrappers cover `splice`,
//! `pipe2` and `shutdown`, so this module needs no `unsafe`.
//!
//! Readiness comes from tokio: `splice` runs non-blocking inside `TcpStream::try_io`, which
//! clears the socket's readiness when the kernel answers `EAGAIN`. Each round drains the pipe
//! completely before filling it again, so an `EAGAIN` while filling always means the source
//! socket is empty (never a full pipe) and an `EAGAIN` while draining means the destination
//! socket is full.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::{OFlag, SpliceFFlags, splice};
use nix::sys::socket::{Shutdown, shutdown};
use nix::unistd::pipe2;
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::Meter;

/// The most moved per `splice` call: a default Linux pipe's capacity.
const CHUNK: usize = 64 * 1024;

/// Relays both directions until each has seen end-of-stream (half-closes are passed on) or
/// either fails; bytes are reported to `meter` as they are delivered.
pub(super) async fn relay(
    client: &TcpStream,
    upstream: &TcpStream,
    meter: &Meter,
) -> io::Result<()> {
    let to_container = one_way(client, upstream, |n| meter(n, 0));
    let to_client = one_way(upstream, client, |n| meter(0, n));
    tokio::try_join!(to_container, to_client)?;
    Ok(())
}

/// Moves bytes from `src` to `dst` through a pipe of its own until `src` ends.
async fn one_way(src: &TcpStream, dst: &TcpStream, count: impl Fn(u64)) -> io::Result<()> {
    let (pipe_out, pipe_in): (OwnedFd, OwnedFd) = pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
    let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
    loop {
        let filled = loop {
            src.readable().await?;
            let moved = src.try_io(Interest::READABLE, || {
                splice(src, None, &pipe_in, None, CHUNK, flags).map_err(io::Error::from)
            });
            match moved {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        };
        if filled == 0 {
            // End of stream: pass the half-close on so the peer sees it while the opposite
            // direction may still be flowing. A peer that is already gone is no error here.
            match shutdown(dst.as_raw_fd(), Shutdown::Write) {
                Ok(()) | Err(nix::errno::Errno::ENOTCONN) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        let mut left = filled;
        while left > 0 {
            dst.writable().await?;
            let moved = dst.try_io(Interest::WRITABLE, || {
                splice(&pipe_out, None, dst, None, left, flags).map_err(io::Error::from)
            });
            match moved {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    left -= n;
                    count(n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
