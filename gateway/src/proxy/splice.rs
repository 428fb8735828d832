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
//!
//! A pipe is two descriptors. A direction takes its pipe when bytes arrive and gives it back
//! once it has been empty for [`PIPE_IDLE`], so an idle stream (most WebSockets, most of the
//! time) holds its two sockets and nothing more: 10,000 idle streams need 20,000 descriptors,
//! not 60,000.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::fcntl::{OFlag, SpliceFFlags, splice};
use nix::sys::socket::{Shutdown, shutdown};
use nix::unistd::pipe2;
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::Meter;

/// The most moved per `splice` call: a default Linux pipe's capacity.
const CHUNK: usize = 64 * 1024;

/// How long a direction keeps its empty pipe while no bytes come. Long enough that a busy
/// stream keeps one pipe through the short gaps between its chunks.
const PIPE_IDLE: Duration = Duration::from_secs(1);

/// Relays both directions until each has seen end-of-stream (half-closes are passed on) or
/// either fails; bytes are reported to `meter` as they are delivered. `pipes` counts the pipes
/// held at this moment.
pub(super) async fn relay(
    client: &TcpStream,
    upstream: &TcpStream,
    meter: &Meter,
    pipes: &AtomicU64,
) -> io::Result<()> {
    let to_container = one_way(client, upstream, |n| meter(n, 0), pipes);
    let to_client = one_way(upstream, client, |n| meter(0, n), pipes);
    tokio::try_join!(to_container, to_client)?;
    Ok(())
}

/// A direction's pipe, counted in `held` while it exists.
struct Pipe<'a> {
    read: OwnedFd,
    write: OwnedFd,
    held: &'a AtomicU64,
}

impl<'a> Pipe<'a> {
    fn open(held: &'a AtomicU64) -> io::Result<Self> {
        let (read, write) = pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        held.fetch_add(1, Ordering::Relaxed);
        Ok(Self { read, write, held })
    }
}

impl Drop for Pipe<'_> {
    fn drop(&mut self) {
        self.held.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Moves bytes from `src` to `dst` through a pipe of its own, held while bytes flow, until
/// `src` ends.
async fn one_way(
    src: &TcpStream,
    dst: &TcpStream,
    count: impl Fn(u64),
    pipes: &AtomicU64,
) -> io::Result<()> {
    let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
    let mut pipe: Option<Pipe> = None;
    loop {
        if pipe.is_some() {
            match tokio::time::timeout(PIPE_IDLE, src.readable()).await {
                Ok(ready) => ready?,
                // Quiet for a while, and the pipe is empty (every round drains it): give it
                // back and wait holding only the sockets.
                Err(_) => {
                    pipe = None;
                    continue;
                }
            }
        } else {
            src.readable().await?;
        }
        let pipe = match pipe {
            Some(ref pipe) => pipe,
            None => pipe.insert(Pipe::open(pipes)?),
        };
        let filled = match src.try_io(Interest::READABLE, || {
            splice(src, None, &pipe.write, None, CHUNK, flags).map_err(io::Error::from)
        }) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
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
                splice(&pipe.read, None, dst, None, left, flags).map_err(io::Error::from)
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
