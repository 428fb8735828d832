//! The container's web server for `bench/https`, `bench/scale` and `bench/soak`: HTTP/1.1
//! keep-alive on port 80, a small answer for every path except `/1m`, which is 1 MiB, and
//! `/ws`, a WebSocket echo (`websocket.rs`). Standard library only, so `rustc` builds it as
//! one static binary for a FROM-scratch image without Cargo or a registry.
//!
//! Busybox httpd (the tests' web image) forks per connection and closes after every answer,
//! which would measure `fork(2)` and TCP setup instead of the proxies; this server keeps
//! connections open (a thread each) so the upstream costs the same small amount for every
//! proxy and for the direct baseline.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

mod websocket;

/// Stack of a connection's thread: its work needs a few KiB, and `bench/scale` holds 10,000
/// idle WebSockets, so the container's memory stays that of the connections.
const STACK: usize = 64 * 1024;

/// The small answer's body: a short HTML-ish greeting, about the size of a tiny API answer.
const SMALL: &[u8] = b"hello from the orca benchmark container\n";
/// Size of the large answer.
const LARGE_LEN: usize = 1 << 20;

fn main() -> io::Result<()> {
    let port = std::env::args().nth(1).unwrap_or_else(|| "80".to_string());
    let listener = TcpListener::bind(format!("0.0.0.0:{port}"))?;
    let large: &'static [u8] = Box::leak(vec![b'x'; LARGE_LEN].into_boxed_slice());
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        // A client that goes away is the normal end of a connection here; so is a thread
        // the system refuses (the connection is dropped, the server goes on).
        let _ = thread::Builder::new()
            .stack_size(STACK)
            .spawn(move || serve(stream, large));
    }
    Ok(())
}

/// Answers requests on one connection until the client closes it or asks to.
fn serve(stream: TcpStream, large: &[u8]) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(16 * 1024, stream);
    let mut line = String::new();
    loop {
        // Request line.
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let http10 = line.trim_end().ends_with("HTTP/1.0");
        // Headers: only the body length and the wish to close matter here.
        let mut body_len = 0usize;
        let mut close = http10;
        let mut ws_key = None;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    body_len = value.parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.eq_ignore_ascii_case("close");
                } else if name.eq_ignore_ascii_case("sec-websocket-key") {
                    ws_key = Some(value.to_string());
                }
            }
        }
        // Bodies are read and dropped (the benchmark sends none; a stray one must not be
        // taken for the next request).
        io::copy(&mut (&mut reader).take(body_len as u64), &mut io::sink())?;
        if let (true, Some(key)) = (path == "/ws", ws_key) {
            return websocket::echo(&key, reader, writer);
        }
        let body = if path == "/1m" { large } else { SMALL };
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if body.len() <= 4096 {
            // One write, so a small answer leaves in one segment (no Nagle with nodelay).
            let mut whole = head.into_bytes();
            whole.extend_from_slice(body);
            writer.write_all(&whole)?;
        } else {
            writer.write_all(head.as_bytes())?;
            writer.write_all(body)?;
        }
        if close {
            return Ok(());
        }
    }
}
