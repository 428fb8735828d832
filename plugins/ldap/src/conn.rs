//! One LDAP connection to one server under one deadline: TCP (wasi:sockets inside the
//! component), optional TLS by rustls (LDAPS or StartTLS), and the request/response exchange.
//!
//! The deadline covers everything done on the connection: connect, TLS handshake, every write
//! and every read get the time that is left, so a server that accepts and then says nothing
//! costs at most the deadline before the next server is tried.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::ber;
use crate::config::{Security, Server};
use crate::proto::{Code, Entry, Message, Outcome, Request, Response, Search};

/// Largest LDAP message accepted from a server; a bigger one is an error rather than a way to
/// exhaust the component's memory.
const MAX_MESSAGE: usize = 4 << 20;
/// Most entries kept from one search.
const MAX_ENTRIES: usize = 10_000;

/// Why the exchange with a server failed, so that the next server is tried.
#[derive(Debug)]
pub(crate) enum Error {
    /// No TCP connection could be made.
    Connect(String),
    /// The deadline passed while doing this.
    Timeout(&'static str),
    /// Reading or writing failed.
    Io(io::Error),
    /// The server closed the connection.
    Closed,
    /// The TLS handshake or record layer failed (certificate not trusted, name mismatch…).
    Tls(String),
    /// The server sent something that is not LDAP as this resolver knows it.
    Protocol(String),
    /// The server answered an operation with a result that says it cannot serve now, or
    /// refused something the resolver needs (StartTLS, the service account's bind).
    Refused(&'static str, Outcome),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connect(e) => write!(f, "cannot connect: {e}"),
            Error::Timeout(what) => write!(f, "no answer in time ({what})"),
            Error::Io(e) => write!(f, "connection failed: {e}"),
            Error::Closed => f.write_str("the server closed the connection"),
            Error::Tls(e) => write!(f, "TLS failed: {e}"),
            Error::Protocol(e) => write!(f, "not understood: {e}"),
            Error::Refused(what, outcome) => write!(f, "{what} refused: {outcome}"),
        }
    }
}

/// The byte stream under the LDAP messages.
#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// An open LDAP session with one server.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: Stream,
    deadline: Instant,
    next_id: i32,
    /// Bytes read but not yet decoded.
    buf: Vec<u8>,
}

impl Connection {
    /// Connects to `server`, setting up TLS as it asks, all before `deadline`.
    pub(crate) fn open(
        server: &Server,
        tls: Option<&Arc<ClientConfig>>,
        deadline: Instant,
    ) -> Result<Connection, Error> {
        let tcp = connect(&server.host, server.port, deadline)?;
        // A request is one small write: send it at once.
        let _ = tcp.set_nodelay(true);
        let mut conn = Connection {
            stream: Stream::Plain(tcp),
            deadline,
            next_id: 1,
            buf: Vec::new(),
        };
        match server.security {
            Security::None => Ok(conn),
            Security::Ldaps => conn.start_tls(server, tls),
            Security::StartTls => {
                let id = conn.send(&Request::StartTls)?;
                match conn.receive(id)? {
                    Response::Extended(o) if o.code == Code::SUCCESS => {}
                    Response::Extended(o) => return Err(Error::Refused("StartTLS", o)),
                    other => return Err(unexpected("StartTLS", &other)),
                }
                if !conn.buf.is_empty() {
                    return Err(Error::Protocol(
                        "bytes after the StartTLS response, before the TLS handshake".into(),
                    ));
                }
                conn.start_tls(server, tls)
            }
        }
    }

    /// A simple bind; its outcome, whatever the result code.
    pub(crate) fn bind(&mut self, dn: &str, password: &str) -> Result<Outcome, Error> {
        let id = self.send(&Request::SimpleBind {
            dn,
            password: password.as_bytes(),
        })?;
        match self.receive(id)? {
            Response::Bind(o) => Ok(o),
            other => Err(unexpected("bind", &other)),
        }
    }

    /// A search: the entries returned and the final outcome.
    pub(crate) fn search(&mut self, search: &Search) -> Result<(Vec<Entry>, Outcome), Error> {
        let id = self.send(&Request::Search(search))?;
        let mut entries = Vec::new();
        loop {
            match self.receive(id)? {
                Response::Entry(e) => {
                    if entries.len() < MAX_ENTRIES {
                        entries.push(e);
                    }
                }
                Response::Reference => {}
                Response::SearchDone(o) => return Ok((entries, o)),
                other => return Err(unexpected("search", &other)),
            }
        }
    }

    /// Ends the session politely; errors no longer matter.
    pub(crate) fn close(mut self) {
        if self.remaining().is_ok() {
            let _ = self.send(&Request::Unbind);
        }
        if let Stream::Tls(s) = &mut self.stream {
            s.conn.send_close_notify();
            let _ = s.conn.complete_io(&mut s.sock);
        }
    }

    /// Runs the TLS handshake on the plain connection and carries on over TLS. Takes the
    /// connection by value: the socket moves into the TLS stream (`TcpStream::try_clone` is not
    /// supported on wasm32-wasip2).
    fn start_tls(
        self,
        server: &Server,
        tls: Option<&Arc<ClientConfig>>,
    ) -> Result<Connection, Error> {
        let (Some(config), Some(name)) = (tls, server.tls_name.clone()) else {
            return Err(Error::Tls("no TLS settings for this server".into()));
        };
        let tcp = match self.stream {
            Stream::Plain(s) => s,
            Stream::Tls(_) => return Err(Error::Tls("TLS is already on".into())),
        };
        let client = ClientConnection::new(Arc::clone(config), name)
            .map_err(|e| Error::Tls(e.to_string()))?;
        let mut conn = Connection {
            stream: Stream::Tls(Box::new(StreamOwned::new(client, tcp))),
            ..self
        };
        while let Stream::Tls(tls) = &mut conn.stream
            && tls.conn.is_handshaking()
        {
            arm_timeouts(&tls.sock, conn.deadline)?;
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| io_error(e, "TLS handshake"))?;
        }
        Ok(conn)
    }

    fn send(&mut self, request: &Request<'_>) -> Result<i32, Error> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let bytes = request.encode(id);
        self.arm_timeouts()?;
        self.stream
            .write_all(&bytes)
            .and_then(|()| self.stream.flush())
            .map_err(|e| io_error(e, "sending a request"))?;
        Ok(id)
    }

    /// The next response to request `id`, skipping answers to anything else.
    fn receive(&mut self, id: i32) -> Result<Response, Error> {
        loop {
            let message = self.read_message()?;
            if message.id == 0 {
                if let Response::Disconnect(o) = message.response {
                    return Err(Error::Refused("the connection", o));
                }
                continue;
            }
            if message.id == id {
                return Ok(message.response);
            }
        }
    }

    fn read_message(&mut self) -> Result<Message, Error> {
        loop {
            let len = ber::frame_len(&self.buf).map_err(|e| Error::Protocol(e.to_string()))?;
            if let Some(len) = len {
                if len > MAX_MESSAGE {
                    return Err(Error::Protocol(format!(
                        "a message of {len} bytes, more than the {MAX_MESSAGE} accepted"
                    )));
                }
                if self.buf.len() >= len {
                    let rest = self.buf.split_off(len);
                    let frame = std::mem::replace(&mut self.buf, rest);
                    return Message::decode(&frame).map_err(|e| Error::Protocol(e.to_string()));
                }
            }
            self.fill()?;
        }
    }

    fn fill(&mut self) -> Result<(), Error> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            self.arm_timeouts()?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(Error::Closed),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e, "waiting for an answer")),
            }
        }
    }

    fn remaining(&self) -> Result<Duration, Error> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(Error::Timeout("the server's deadline passed"))
        } else {
            Ok(left)
        }
    }

    fn arm_timeouts(&self) -> Result<(), Error> {
        arm_timeouts(self.stream.tcp(), self.deadline)
    }
}

/// Gives the next socket read or write only the time left before the deadline.
fn arm_timeouts(tcp: &TcpStream, deadline: Instant) -> Result<(), Error> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Error::Timeout("the server's deadline passed"));
    }
    tcp.set_read_timeout(Some(left)).map_err(Error::Io)?;
    tcp.set_write_timeout(Some(left)).map_err(Error::Io)?;
    Ok(())
}

fn connect(host: &str, port: u16, deadline: Instant) -> Result<TcpStream, Error> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => (host, port)
            .to_socket_addrs()
            .map_err(|e| Error::Connect(format!("cannot resolve {host}: {e}")))?
            .collect(),
    };
    let mut last = format!("{host} has no address");
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout("connecting"));
        }
        match TcpStream::connect_timeout(&addr, left) {
            // On wasm32-wasip2 a refused connection can come back as a stream that is not
            // connected; asking for the peer tells the two apart.
            Ok(s) => match s.peer_addr() {
                Ok(_) => return Ok(s),
                Err(e) => last = format!("{addr}: {e}"),
            },
            Err(e) if is_timeout(&e) => return Err(Error::Timeout("connecting")),
            // What the gateway answers for an address outside the resolver's `connect` list.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                last = format!(
                    "{addr}: not permitted; is the address in the resolver's `connect` list? ({e})"
                );
            }
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(Error::Connect(last))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn io_error(e: io::Error, doing: &'static str) -> Error {
    if is_timeout(&e) {
        return Error::Timeout(doing);
    }
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return Error::Closed;
    }
    // rustls reports its own failures (bad certificate, alerts) as InvalidData.
    if e.kind() == io::ErrorKind::InvalidData {
        return Error::Tls(e.to_string());
    }
    Error::Io(e)
}

fn unexpected(during: &str, response: &Response) -> Error {
    Error::Protocol(format!(
        "during {during}, an unexpected {}",
        response.kind()
    ))
}
