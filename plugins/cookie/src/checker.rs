//! The external token checker: POST a token to an operator's URL and read who it belongs to.
//!
//! A deliberately tiny HTTP/1.1 client over `std::net::TcpStream` (which works on
//! `wasm32-wasip2` through `wasi:sockets`): one request per connection, `Connection: close`,
//! `Content-Length` or chunked or read-to-close bodies, and one deadline for the whole exchange.
//! Plain HTTP only: a checker belongs on loopback or a trusted network.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::value::check_id;

/// The largest response read; a user id is short, so anything bigger is a misconfiguration.
const MAX_RESPONSE: usize = 64 * 1024;

/// A checker address: `http://host[:port][/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    /// As the operator wrote it, for messages.
    text: String,
    /// Host name or address, without brackets.
    host: String,
    port: u16,
    /// `host[:port]` as written, for the `Host` header.
    authority: String,
    /// Path and query, starting with `/`.
    path: String,
}

impl Url {
    /// Parses `http://host:port/path`; anything else is an error saying what to write.
    pub(crate) fn parse(text: &str) -> Result<Url, String> {
        let text = text.trim();
        let scheme_end = text.find("://").map_or(0, |i| i + 3);
        let scheme = text.get(..scheme_end).unwrap_or("").to_ascii_lowercase();
        if scheme == "https://" {
            return Err(
                "https is not supported: the token checker is called over plain HTTP, \
                        so keep it on loopback or a trusted network and write \
                        `http://host:port/path`"
                    .to_string(),
            );
        }
        if scheme != "http://" {
            return Err(
                "not an address this resolver can call: write `http://host:port/path`".to_string(),
            );
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the address contains spaces or control characters".to_string());
        }
        let rest = text.get(scheme_end..).unwrap_or("");
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i..).unwrap_or("/")),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        if path.contains('#') {
            return Err("remove the `#fragment`: it is never sent".to_string());
        }
        if authority.contains('@') {
            return Err("user names and passwords in the address are not supported".to_string());
        }
        let (host, port) = split_authority(authority)?;
        Ok(Url {
            text: text.to_string(),
            host,
            port,
            authority: authority.to_string(),
            path,
        })
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; the port defaults to 80.
fn split_authority(authority: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (inside, after) = bracketed
            .split_once(']')
            .ok_or("an IPv6 address needs its closing `]`")?;
        inside
            .parse::<Ipv6Addr>()
            .map_err(|_| format!("`{inside}` is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("write `[address]:port`")?),
        };
        (inside, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let host_ok = !host.is_empty()
        && (authority.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
    if !host_ok {
        return Err(format!("`{host}` is not a host name or address"));
    }
    let port = match port {
        None => 80,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("`{p}` is not a port from 1 to 65535")),
        },
    };
    Ok((host.to_string(), port))
}

/// What the checker said about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The token belongs to this user id.
    User(String),
    /// The checker refused the token (403); the reason names the URL.
    Denied(String),
    /// Any other answer, or no answer; the reason names the URL and what went wrong.
    Failed(String),
}

/// Asks the checker at `url` about `token`, within `timeout` in all.
pub(crate) fn check(url: &Url, token: &str, timeout: Duration) -> Outcome {
    let body = format!("token={}", form_encode(token));
    let response = match post_form(url, &body, timeout) {
        Ok(response) => response,
        Err(e) => return Outcome::Failed(format!("token checker {url} failed: {e}")),
    };
    match response.status {
        200 => {
            let user = String::from_utf8(response.body)
                .map_err(|_| "the body is not UTF-8".to_string())
                .and_then(|text| {
                    let user = text.trim().to_string();
                    check_id(&user).map(|()| user)
                });
            match user {
                Ok(user) => Outcome::User(user),
                Err(e) => Outcome::Failed(format!(
                    "token checker {url} answered 200 without a usable user id: {e}"
                )),
            }
        }
        403 => Outcome::Denied(format!("token rejected by {url}")),
        status => Outcome::Failed(format!("token checker {url} answered HTTP {status}")),
    }
}

/// A status and a body.
#[derive(Debug, PartialEq, Eq)]
struct Response {
    status: u16,
    body: Vec<u8>,
}

/// The time left for one exchange.
struct Deadline {
    at: Instant,
    total: Duration,
}

impl Deadline {
    fn remaining(&self) -> Result<Duration, String> {
        let left = self.at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(self.timed_out())
        } else {
            Ok(left)
        }
    }

    fn timed_out(&self) -> String {
        format!("no answer within {:?}", self.total)
    }

    fn io(&self, what: &str, e: &io::Error) -> String {
        match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => self.timed_out(),
            // What the gateway answers for an address outside the resolver's `connect` list.
            io::ErrorKind::PermissionDenied => format!(
                "{what}: not permitted; is the address in the resolver's `connect` list? ({e})"
            ),
            _ => format!("{what}: {e}"),
        }
    }
}

/// One `application/x-www-form-urlencoded` POST.
fn post_form(url: &Url, body: &str, timeout: Duration) -> Result<Response, String> {
    let deadline = Deadline {
        at: Instant::now() + timeout,
        total: timeout,
    };
    let mut stream = connect(url, &deadline)?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: orca-plugin-cookie\r\n\
         Accept: text/plain\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {len}\r\nConnection: close\r\n\r\n{body}",
        path = url.path,
        authority = url.authority,
        len = body.len(),
    );
    stream
        .set_write_timeout(Some(deadline.remaining()?))
        .map_err(|e| deadline.io("cannot set a timeout", &e))?;
    stream
        .write_all(request.as_bytes())
        .map_err(|e| deadline.io("sending the request", &e))?;
    read_response(&mut stream, &deadline)
}

fn connect(url: &Url, deadline: &Deadline) -> Result<TcpStream, String> {
    let addresses: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{}`: {e}", url.host))?
        .collect();
    let mut last = format!("`{}` resolves to no address", url.host);
    for address in addresses {
        match TcpStream::connect_timeout(&address, deadline.remaining()?) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = deadline.io(&format!("connecting to {address}"), &e),
        }
    }
    Err(last)
}

fn read_response(stream: &mut TcpStream, deadline: &Deadline) -> Result<Response, String> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(response) = parse_response(&received, false)? {
            return Ok(response);
        }
        stream
            .set_read_timeout(Some(deadline.remaining()?))
            .map_err(|e| deadline.io("cannot set a timeout", &e))?;
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(deadline.io("reading the response", &e)),
        };
        if n == 0 {
            return parse_response(&received, true)?
                .ok_or_else(|| "the connection closed before a complete response".to_string());
        }
        received.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if received.len() > MAX_RESPONSE {
            return Err(format!("the response is over {MAX_RESPONSE} bytes"));
        }
    }
}

/// The response in `bytes`, `None` while more is needed; `closed` when no more will come.
fn parse_response(bytes: &[u8], closed: bool) -> Result<Option<Response>, String> {
    let Some(head_end) = find(bytes, b"\r\n\r\n") else {
        return if closed {
            Err("the response ended inside its head".to_string())
        } else {
            Ok(None)
        };
    };
    let head = std::str::from_utf8(bytes.get(..head_end).unwrap_or_default())
        .map_err(|_| "the response head is not text".to_string())?;
    let rest = bytes.get(head_end + 4..).unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    let status = match code.parse::<u16>() {
        Ok(n) if version.starts_with("HTTP/1.") && code.len() == 3 && n >= 100 => n,
        _ => return Err(format!("not an HTTP/1 status line: {status_line:?}")),
    };
    if (100..200).contains(&status) {
        // An interim answer (`100 Continue`): the real one follows.
        return parse_response(rest, closed);
    }
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("not a header line: {line:?}"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let body = if chunked {
        dechunk(rest, closed)?
    } else if let Some(length) = length {
        match rest.get(..length) {
            Some(body) => Some(body.to_vec()),
            None if closed => return Err("the response body ended early".to_string()),
            None => None,
        }
    } else if closed {
        Some(rest.to_vec())
    } else {
        None
    };
    Ok(body.map(|body| Response { status, body }))
}

/// The body of a complete chunked encoding, `None` while incomplete.
fn dechunk(mut bytes: &[u8], closed: bool) -> Result<Option<Vec<u8>>, String> {
    let incomplete = || {
        if closed {
            Err("the chunked body ended early".to_string())
        } else {
            Ok(None)
        }
    };
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(bytes, b"\r\n") else {
            return incomplete();
        };
        let line = std::str::from_utf8(bytes.get(..line_end).unwrap_or_default())
            .map_err(|_| "a chunk size is not text".to_string())?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        if size == 0 {
            return Ok(Some(body));
        }
        let start = line_end + 2;
        let Some(data) = bytes.get(start..start.saturating_add(size)) else {
            return incomplete();
        };
        body.extend_from_slice(data);
        match bytes.get(start + size..start + size + 2) {
            Some(b"\r\n") => bytes = bytes.get(start + size + 2..).unwrap_or_default(),
            Some(_) => return Err("a chunk is not followed by CRLF".to_string()),
            None => return incomplete(),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::thread;

    use super::*;

    /// A one-request HTTP server on loopback: it reads one request (head and `Content-Length`
    /// body), sends the request text on the returned channel, then answers with `reply`'s bytes
    /// — or, for `None`, keeps the connection open without a word until the client gives up.
    pub(crate) fn serve_once(
        reply: Option<&'static [u8]>,
    ) -> (Url, mpsc::Receiver<String>, thread::JoinHandle<()>) {
        serve(vec![reply])
    }

    /// Like [`serve_once`], answering one connection per entry of `replies`, in order.
    pub(crate) fn serve(
        replies: Vec<Option<&'static [u8]>>,
    ) -> (Url, mpsc::Receiver<String>, thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!(
            "http://{}/check?v=1",
            listener.local_addr().unwrap()
        ))
        .unwrap();
        let (sent, seen) = mpsc::channel();
        let server = thread::spawn(move || {
            for reply in replies {
                let (mut stream, _) = listener.accept().unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let request = read_request(&mut stream);
                let _ = sent.send(request);
                match reply {
                    Some(bytes) => {
                        let _ = stream.write_all(bytes);
                    }
                    None => {
                        // Hang: wait for the client to hang up (bounded by the read timeout).
                        let _ = stream.read(&mut [0; 64]);
                    }
                }
            }
        });
        (url, seen, server)
    }

    fn read_request(stream: &mut TcpStream) -> String {
        let mut bytes = Vec::new();
        let mut chunk = [0; 1024];
        loop {
            if let Some(end) = find(&bytes, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&bytes[..end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if bytes.len() >= end + 4 + length {
                    return String::from_utf8(bytes).unwrap();
                }
            }
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "the client closed before sending a whole request");
            bytes.extend_from_slice(&chunk[..n]);
        }
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_200_names_the_user_and_the_request_is_a_proper_form_post() {
        let (url, seen, server) = serve_once(Some(
            b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nalice\r\n",
        ));
        assert_eq!(
            check(&url, "a+b c/é", SECOND),
            Outcome::User("alice".into())
        );
        let request = seen.recv().unwrap();
        assert!(
            request.starts_with("POST /check?v=1 HTTP/1.1\r\n"),
            "{request}"
        );
        let lower = request.to_lowercase();
        assert!(lower.contains("\r\ncontent-type: application/x-www-form-urlencoded\r\n"));
        assert!(lower.contains("\r\nconnection: close\r\n"));
        assert!(lower.contains("\r\ncontent-length: 22\r\n"), "{request}");
        assert!(lower.contains(&format!("\r\nhost: 127.0.0.1:{}\r\n", url.port)));
        assert!(
            request.ends_with("\r\n\r\ntoken=a%2Bb+c%2F%C3%A9"),
            "{request}"
        );
        server.join().unwrap();
    }

    #[test]
    fn a_403_is_a_rejection_naming_the_url() {
        let (url, _seen, server) =
            serve_once(Some(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"));
        assert_eq!(
            check(&url, "t", SECOND),
            Outcome::Denied(format!("token rejected by {url}"))
        );
        server.join().unwrap();
    }

    #[test]
    fn a_500_is_a_denial_naming_url_and_status() {
        let (url, _seen, server) =
            serve_once(Some(b"HTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\nboom"));
        assert_eq!(
            check(&url, "t", SECOND),
            Outcome::Failed(format!("token checker {url} answered HTTP 500"))
        );
        server.join().unwrap();
    }

    #[test]
    fn a_hanging_checker_times_out() {
        let (url, _seen, server) = serve_once(None);
        let started = Instant::now();
        let outcome = check(&url, "t", Duration::from_millis(300));
        let took = started.elapsed();
        assert_eq!(
            outcome,
            Outcome::Failed(format!(
                "token checker {url} failed: no answer within 300ms"
            ))
        );
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(3),
            "{took:?}"
        );
        server.join().unwrap();
    }

    #[test]
    fn a_closed_port_is_a_failure_naming_the_url() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let url = Url::parse(&format!("http://{address}/")).unwrap();
        match check(&url, "t", SECOND) {
            Outcome::Failed(reason) => {
                assert!(
                    reason.starts_with(&format!("token checker {url} failed: ")),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_body_is_read_to_content_length_without_waiting_for_close() {
        // The server answers, then keeps the connection open: the client must not wait for it.
        let (url, _seen, server) = serve(vec![Some(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nbob",
        )]);
        assert_eq!(check(&url, "t", SECOND), Outcome::User("bob".into()));
        server.join().unwrap();
    }

    #[test]
    fn chunked_and_close_delimited_bodies() {
        let (url, _seen, server) = serve(vec![
            Some(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ncar\r\n2;x=y\r\nol\r\n0\r\n\r\n"),
            Some(b"HTTP/1.0 200 OK\r\n\r\ndave\n"),
            Some(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            Some(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nbad\x01user"),
            Some(b"SMTP ready\r\n\r\n"),
            Some(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort"),
        ]);
        assert_eq!(check(&url, "t", SECOND), Outcome::User("carol".into()));
        assert_eq!(check(&url, "t", SECOND), Outcome::User("dave".into()));
        for expected in [
            "answered 200 without a usable user id: the user id is empty",
            "answered 200 without a usable user id: the user id \"bad\\u{1}user\" contains",
            "failed: not an HTTP/1 status line",
            "failed: the response body ended early",
        ] {
            match check(&url, "t", SECOND) {
                Outcome::Failed(reason) => assert!(reason.contains(expected), "{reason}"),
                other => panic!("{other:?}"),
            }
        }
        server.join().unwrap();
    }

    #[test]
    fn addresses() {
        let u = Url::parse("http://checker.internal:8081/hub/api/authorizations/token").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("checker.internal", 8081));
        assert_eq!(u.path, "/hub/api/authorizations/token");
        let u = Url::parse("HTTP://[::1]:9000").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 9000, "/")
        );
        assert_eq!(u.authority, "[::1]:9000");
        let u = Url::parse("http://10.0.0.1?x=1").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/?x=1"));
        for bad in [
            "https://x/",
            "ftp://x/",
            "x:80/",
            "http://",
            "http://:80/",
            "http://a b/",
            "http://u:p@x/",
            "http://x:0/",
            "http://x:99999/",
            "http://[::1/",
            "http://[zz]:80/",
            "http://x/#f",
            "http://x/\r\nEvil: 1",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn response_parsing_never_panics_on_garbage() {
        let mut seed: u32 = 0x2545_f491;
        for round in 0..3000 {
            let mut bytes = Vec::new();
            let len = (round % 80) as usize;
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let alphabet = b"HTTP/1.1 200\r\n:0123456789abcdef;-Content-Length: chunked\r\n";
                bytes.push(alphabet[seed as usize % alphabet.len()]);
            }
            let _ = parse_response(&bytes, round % 2 == 0);
            let _ = dechunk(&bytes, round % 3 == 0);
        }
    }
}
