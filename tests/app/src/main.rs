//! The app Orca's streaming tests run in a container: HTTP/1.1 on port 80, a thread per
//! connection, keep-alive, and bodies handled as streams so that a test can tell a buffering
//! proxy from a streaming one.
//!
//! - `GET /`: a few lines of text, among them `hostname: <container's hostname>` (Docker sets it
//!   to the short container id), so a test sees which container answered.
//! - `POST /upload`: reads the body (length-delimited or chunked) and answers `bytes: N` and
//!   `sha256: <hex>` of what arrived.
//! - `GET /download?bytes=N`: N bytes of [`pattern`], written from one reused buffer.
//! - `GET /headers`: `hostname: …`, then every request header as `name: value` (names in
//!   lower case), so a test sees what the gateway let through.
//! - `GET /ws`: a WebSocket that echoes every text and binary message; `GET /ws/headers` the
//!   same, after a first text message holding what `/headers` would answer for its handshake.
//!
//! Every request line is also written to stdout (`request: METHOD TARGET`), so `docker logs`
//! tells whether a request reached this container at all.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use sha2::{Digest, Sha256};
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

/// Longest request head accepted; a test never sends more.
const MAX_HEAD: usize = 64 * 1024;
/// The download pattern repeats every `PERIOD` bytes: a prime, so it never lines up with the
/// power-of-two sizes of buffers and frames, and a lost or repeated chunk changes the hash.
const PERIOD: usize = 251;
/// Size of the one download buffer: a whole number of periods, so writing it again and again
/// continues the pattern without a gap.
const CHUNK: usize = PERIOD * 256;

fn main() {
    let listener = match TcpListener::bind(("0.0.0.0", 80)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("orca-test-app: cannot listen on port 80: {e}");
            std::process::exit(1);
        }
    };
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                thread::spawn(move || {
                    if let Err(e) = serve(stream) {
                        eprintln!("orca-test-app: connection ended: {e}");
                    }
                });
            }
            Err(e) => eprintln!("orca-test-app: accept failed: {e}"),
        }
    }
}

/// Byte `i` of every download: `i mod 251`.
fn pattern(i: usize) -> u8 {
    (i % PERIOD) as u8
}

/// A parsed request head.
struct Head {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.header(name)
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("/")
    }

    fn query(&self, key: &str) -> Option<&str> {
        let (_, query) = self.target.split_once('?')?;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == key).then_some(v)
        })
    }
}

/// Serves requests on one connection until the peer closes it or asks to.
fn serve(stream: TcpStream) -> io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    while let Some(head) = read_head(&mut reader)? {
        println!("request: {} {}", head.method, head.target);
        let close = head.has_token("connection", "close");
        match (head.method.as_str(), head.path()) {
            ("GET", "/ws") if head.has_token("upgrade", "websocket") => {
                return websocket(reader, out, &head, None);
            }
            ("GET", "/ws/headers") if head.has_token("upgrade", "websocket") => {
                return websocket(reader, out, &head, Some(seen(&head)));
            }
            ("GET", "/headers") => {
                respond(&mut out, "200 OK", "text/plain", seen(&head).as_bytes())?;
            }
            ("GET", "/") => {
                let text = format!(
                    "orca test app\nhostname: {}\nuri: {}\n",
                    hostname(),
                    head.target
                );
                respond(&mut out, "200 OK", "text/plain", text.as_bytes())?;
            }
            ("POST", "/upload") => {
                let (bytes, sha) = digest(body(&mut reader, &head)?)?;
                let text = format!("bytes: {bytes}\nsha256: {sha}\n");
                respond(&mut out, "200 OK", "text/plain", text.as_bytes())?;
            }
            ("GET", "/download") => {
                let Some(n) = head.query("bytes").and_then(|b| b.parse::<u64>().ok()) else {
                    respond(&mut out, "400 Bad Request", "text/plain", b"bytes=N\n")?;
                    continue;
                };
                download(&mut out, n)?;
            }
            _ => {
                // The body of an unknown request is not read, so the connection cannot go on.
                let text = format!("no route for {} {}\n", head.method, head.target);
                out.write_all(
                    format!(
                        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
                        text.len()
                    )
                    .as_bytes(),
                )?;
                return Ok(());
            }
        }
        if close {
            return Ok(());
        }
    }
    Ok(())
}

/// Reads one request head; `None` when the peer closed the connection between requests.
fn read_head(reader: &mut BufReader<TcpStream>) -> io::Result<Option<Head>> {
    let mut lines = Vec::new();
    let mut size = 0;
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line)?;
        if n == 0 {
            if lines.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed inside a request head",
            ));
        }
        size += n;
        if size > MAX_HEAD {
            return Err(invalid("request head too long"));
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            if lines.is_empty() {
                // Blank lines between requests are allowed (RFC 9112 §2.2).
                continue;
            }
            break;
        }
        lines.push(line);
    }
    let mut request_line = lines[0].split(' ');
    let (Some(method), Some(target)) = (request_line.next(), request_line.next()) else {
        return Err(invalid("malformed request line"));
    };
    let headers = lines[1..]
        .iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Some(Head {
        method: method.to_string(),
        target: target.to_string(),
        headers,
    }))
}

/// The request body as a reader that ends where the body ends.
fn body<'a>(reader: &'a mut BufReader<TcpStream>, head: &Head) -> io::Result<Box<dyn Read + 'a>> {
    if head.has_token("transfer-encoding", "chunked") {
        return Ok(Box::new(Chunked {
            inner: reader,
            left: 0,
            done: false,
        }));
    }
    let len = match head.header("content-length") {
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| invalid("bad content-length"))?,
        None => 0,
    };
    Ok(Box::new(reader.take(len)))
}

/// Byte count and SHA-256 of everything `body` yields, read through one small buffer.
fn digest(mut body: impl Read) -> io::Result<(u64, String)> {
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = body.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        total += n as u64;
    }
    let hex = hash
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    Ok((total, hex))
}

fn download(out: &mut TcpStream, n: u64) -> io::Result<()> {
    out.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {n}\r\n\r\n"
        )
        .as_bytes(),
    )?;
    let chunk: Vec<u8> = (0..CHUNK).map(pattern).collect();
    let mut left = n;
    while left > 0 {
        let take = left.min(CHUNK as u64) as usize;
        out.write_all(&chunk[..take])?;
        left -= take as u64;
    }
    out.flush()
}

fn respond(out: &mut TcpStream, status: &str, kind: &str, body: &[u8]) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    out.write_all(head.as_bytes())?;
    out.write_all(body)?;
    out.flush()
}

/// The container's hostname and the request's headers, one `name: value` a line.
fn seen(head: &Head) -> String {
    let mut text = format!("hostname: {}\n", hostname());
    for (name, value) in &head.headers {
        text.push_str(&format!("{}: {value}\n", name.to_ascii_lowercase()));
    }
    text
}

/// Answers the WebSocket handshake, sends `first` (if any) as a text message, then echoes
/// messages until the client closes.
fn websocket(
    reader: BufReader<TcpStream>,
    mut out: TcpStream,
    head: &Head,
    first: Option<String>,
) -> io::Result<()> {
    let Some(key) = head.header("sec-websocket-key") else {
        return respond(&mut out, "400 Bad Request", "text/plain", b"no key\n");
    };
    let accept = derive_accept_key(key.as_bytes());
    out.write_all(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .as_bytes(),
    )?;
    // Frames the client sent right behind its handshake may already sit in the buffer.
    let early = reader.buffer().to_vec();
    let stream = reader.into_inner();
    let mut ws = WebSocket::from_partially_read(
        stream,
        early,
        Role::Server,
        Some(WebSocketConfig::default()),
    );
    if let Some(text) = first {
        ws.send(Message::text(text)).map_err(to_io)?;
    }
    loop {
        match ws.read() {
            Ok(msg @ (Message::Text(_) | Message::Binary(_))) => ws.send(msg).map_err(to_io)?,
            // Pings are answered by tungstenite itself on the next write or flush.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {
                ws.flush().map_err(to_io)?
            }
            Ok(Message::Close(_)) => {
                // Reading on completes the closing handshake.
                while ws.read().is_ok() {}
                return Ok(());
            }
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                return Ok(());
            }
            Err(e) => return Err(to_io(e)),
        }
    }
}

/// The container's hostname: Docker sets `HOSTNAME` (and `/etc/hostname`) to the short id.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

/// A `Transfer-Encoding: chunked` body, decoded as it is read.
struct Chunked<'a> {
    inner: &'a mut BufReader<TcpStream>,
    /// Bytes left in the current chunk.
    left: u64,
    done: bool,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            self.inner.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or("");
            self.left = u64::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
            if self.left == 0 {
                // Trailers, if any, end with an empty line.
                loop {
                    let mut trailer = String::new();
                    if self.inner.read_line(&mut trailer)? == 0 || trailer.trim().is_empty() {
                        break;
                    }
                }
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed inside a chunk",
            ));
        }
        self.left -= n as u64;
        if self.left == 0 {
            let mut crlf = String::new();
            self.inner.read_line(&mut crlf)?;
        }
        Ok(n)
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn to_io(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        other => io::Error::other(other),
    }
}
