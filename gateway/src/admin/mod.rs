//! The admin listener (SPEC §9): health, metrics and the operator's API, over plain HTTP on
//! loopback by default.
//!
//! ```text
//! GET    /healthz                           200 "ok", 503 once shutting down (no token needed)
//! GET    /metrics                           Prometheus text
//! GET    /api/v1/containers                 containers, their users, why each is up; recent stops
//! GET    /api/v1/sessions                   one entry per (user, image) binding
//! DELETE /api/v1/sessions/{image}/{user}    end a user's session (percent-encoded user id)
//! POST   /api/v1/containers/{name}/stop     stop a container
//! ```
//!
//! When a token is configured every route but `/healthz` needs `Authorization: Bearer <token>`.
//! Answers and errors are JSON ([`api`]); an error becomes a response in one place
//! (`Failure::response`). `orca status` is the API's client ([`client`]), and renders the
//! containers listing with [`table`].

pub mod api;
pub mod client;
pub mod table;
pub mod time;
mod token;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::listeners::https::{Body, ConnInfo, Handler, full};
use crate::metrics::Metrics;
use crate::scheduler::{AdminError, Scheduler, UserId};
use api::{ApiError, ContainerStopping, ContainersView, SessionEnded, SessionsView};
use token::Check;
pub use token::{AdminToken, TokenError, configured_token, read_token_file};

/// The Prometheus text exposition format's content type.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The challenge of a 401 (RFC 6750 §3).
const CHALLENGE: &str = "Bearer realm=\"orca-admin\"";
/// Methods of the read-only routes.
const READ: &str = "GET, HEAD";
/// Every route, for the 404 message.
const ROUTES: &str = "GET /healthz, GET /metrics, GET /api/v1/containers, GET /api/v1/sessions, \
    DELETE /api/v1/sessions/{image}/{user}, POST /api/v1/containers/{name}/stop";

/// The admin listener's [`Handler`]: give it to [`crate::listeners::https::serve`] without TLS.
#[derive(Debug, Clone)]
pub struct Admin {
    scheduler: Scheduler,
    metrics: Arc<Metrics>,
    token: AdminToken,
    shutdown: CancellationToken,
    clock: Clock,
}

impl Admin {
    /// The admin API over `scheduler` and `metrics`. Requests need `token` when it holds one;
    /// `/healthz` answers 503 once `shutdown` is cancelled, so load balancers stop sending
    /// before the gateway stops listening.
    pub fn new(
        scheduler: Scheduler,
        metrics: Arc<Metrics>,
        token: AdminToken,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            scheduler,
            metrics,
            token,
            shutdown,
            clock: Clock::new(),
        }
    }

    /// The answer to `method path` with `headers` from `peer`. Synchronous and free of the
    /// request body, which no route reads, so tests call it without a socket.
    pub(crate) fn respond(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        peer: SocketAddr,
    ) -> Response<Body> {
        self.route(method, path, headers, peer)
            .unwrap_or_else(Failure::response)
    }

    fn route(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        peer: SocketAddr,
    ) -> Result<Response<Body>, Failure> {
        if path == "/healthz" {
            read_only(method, path)?;
            return Ok(self.healthz());
        }
        match self.token.check(headers.get(header::AUTHORIZATION)) {
            Check::Allowed => {}
            Check::Missing => return Err(Failure::NoToken),
            Check::Wrong => {
                tracing::warn!(%peer, path, "admin request with a wrong bearer token");
                return Err(Failure::WrongToken);
            }
        }
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        match segments.as_slice() {
            ["metrics"] => {
                read_only(method, path)?;
                Ok(text(
                    StatusCode::OK,
                    METRICS_CONTENT_TYPE,
                    self.metrics.render(),
                ))
            }
            ["api", "v1", "containers"] => {
                read_only(method, path)?;
                Ok(json(
                    StatusCode::OK,
                    &ContainersView::from(&self.scheduler.status()),
                ))
            }
            ["api", "v1", "sessions"] => {
                read_only(method, path)?;
                let now = self.clock.wall();
                Ok(json(
                    StatusCode::OK,
                    &SessionsView::new(&self.scheduler.status(), now),
                ))
            }
            ["api", "v1", "sessions", image, user] => {
                only(method, "DELETE", path)?;
                self.end_session(&decode(image)?, &decode(user)?, peer)
            }
            ["api", "v1", "containers", name, "stop"] => {
                only(method, "POST", path)?;
                self.stop_container(&decode(name)?, peer)
            }
            _ => Err(Failure::NotFound(path.to_string())),
        }
    }

    fn healthz(&self) -> Response<Body> {
        if self.shutdown.is_cancelled() {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                "shutting down\n",
            )
        } else {
            text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n")
        }
    }

    fn end_session(
        &self,
        image: &str,
        user: &str,
        peer: SocketAddr,
    ) -> Result<Response<Body>, Failure> {
        let container = self.scheduler.end_session(&UserId::new(user), image)?;
        tracing::info!(%peer, user, image, container, "admin: ended a session");
        Ok(json(
            StatusCode::OK,
            &SessionEnded {
                ended: true,
                user: user.to_string(),
                image: image.to_string(),
                container,
            },
        ))
    }

    fn stop_container(&self, name: &str, peer: SocketAddr) -> Result<Response<Body>, Failure> {
        self.scheduler.stop_container(name)?;
        tracing::info!(%peer, container = name, "admin: stopping a container");
        Ok(json(
            StatusCode::ACCEPTED,
            &ContainerStopping {
                stopping: true,
                container: name.to_string(),
            },
        ))
    }
}

impl Handler for Admin {
    fn handle(
        &self,
        req: Request<Incoming>,
        conn: &ConnInfo,
    ) -> impl Future<Output = Response<Body>> + Send {
        // The body is dropped unread: no route takes one, and hyper discards what it has.
        let (parts, _body) = req.into_parts();
        let response = self.respond(&parts.method, parts.uri.path(), &parts.headers, conn.peer);
        std::future::ready(response)
    }
}

/// Why a request got no answer of its route; each becomes a JSON error in [`Failure::response`].
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(
        "this request needs `Authorization: Bearer <token>` with the token in `[admin] token_file`"
    )]
    NoToken,
    #[error(
        "the bearer token is wrong; send the token in `[admin] token_file` as `Authorization: Bearer <token>`"
    )]
    WrongToken,
    #[error("no admin route `{0}`; the routes are {ROUTES}")]
    NotFound(String),
    #[error("`{method}` is not allowed on `{path}`; use {allow}")]
    MethodNotAllowed {
        method: Method,
        path: String,
        allow: &'static str,
    },
    #[error(
        "the path segment `{0}` is not valid percent-encoded UTF-8; encode ids with `%XX` escapes of their UTF-8 bytes"
    )]
    BadSegment(String),
    #[error("{0}")]
    Scheduler(#[from] AdminError),
}

impl Failure {
    /// The one place a failure becomes a response: its status, headers and JSON body.
    fn response(self) -> Response<Body> {
        let status = match &self {
            Failure::NoToken | Failure::WrongToken => StatusCode::UNAUTHORIZED,
            Failure::NotFound(_) => StatusCode::NOT_FOUND,
            Failure::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Failure::BadSegment(_) => StatusCode::BAD_REQUEST,
            Failure::Scheduler(AdminError::NoSession { .. } | AdminError::NoContainer(_)) => {
                StatusCode::NOT_FOUND
            }
            Failure::Scheduler(AdminError::AlreadyStopping { .. }) => StatusCode::CONFLICT,
        };
        let mut response = json(
            status,
            &ApiError {
                error: self.to_string(),
            },
        );
        let headers = response.headers_mut();
        match self {
            Failure::NoToken | Failure::WrongToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(CHALLENGE),
                );
            }
            Failure::MethodNotAllowed { allow, .. } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            _ => {}
        }
        response
    }
}

/// Refuses any method but GET and HEAD.
fn read_only(method: &Method, path: &str) -> Result<(), Failure> {
    if method == Method::GET || method == Method::HEAD {
        return Ok(());
    }
    Err(Failure::MethodNotAllowed {
        method: method.clone(),
        path: path.to_string(),
        allow: READ,
    })
}

/// Refuses any method but `allowed` (a method's name, such as `DELETE`).
fn only(method: &Method, allowed: &'static str, path: &str) -> Result<(), Failure> {
    if method.as_str() == allowed {
        return Ok(());
    }
    Err(Failure::MethodNotAllowed {
        method: method.clone(),
        path: path.to_string(),
        allow: allowed,
    })
}

/// Decodes a percent-encoded path segment. `+` stays a plus (it means a space only in
/// forms), and an encoded `/` is part of the id, since segments are split before decoding.
fn decode(segment: &str) -> Result<String, Failure> {
    let bad = || Failure::BadSegment(segment.to_string());
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// A response with `body` of `content_type`.
fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<bytes::Bytes>,
) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Every answer is a snapshot of now; a cache in between must not replay it.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A JSON response of `value`, with a trailing newline for people reading it with curl.
fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            body.push(b'\n');
            text(status, "application/json", body)
        }
        // Only maps with non-string keys fail, and the views have none; answer rather than
        // panic should one ever be added.
        Err(e) => {
            tracing::error!(error = %e, "cannot encode an admin answer as JSON");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "application/json",
                "{\"error\":\"cannot encode the answer as JSON; this is a bug in orca\"}\n",
            )
        }
    }
}
