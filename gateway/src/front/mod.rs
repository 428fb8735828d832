//! The HTTPS front: what a request to `https://<image>.<domain>/` goes through between the
//! listener and the proxy (SPEC §6).
//!
//! ```text
//! request ─▶ route (Host) ─▶ identity chain ─▶ image access ─▶ scheduler placement ─▶ proxy
//!                 │               │                                   │
//!                 404        login / 403                       waiting page / hold
//! ```
//!
//! Every failure becomes a status page in one place, [`rescue`].

pub mod cookies;
mod origin;
pub mod pages;
pub mod redirect;
pub mod route;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use prometheus::IntCounter;

use crate::audit::Record;
use crate::config::Cidr;
use crate::error::ErrorSource;
use crate::identity::{
    Client, Current, Decision, HttpCredential, HttpRequest, Identities, Identity,
};
use crate::images::ImageSpec;
use crate::listeners::https::{Body, ConnInfo, Handler, empty, full};
use crate::live::Live;
use crate::proxy::{Forwarded, Proxy, ProxyError, Target};
use crate::scheduler::{Arrival, Lookup, Phase, ScheduleError, Scheduler, SessionKind, UserId};
use origin::{Listener, Origin};
use route::Route;

/// Reserved paths, on every host of the domain.
const LOGIN: &str = "/.orca/login";
const LOGOUT: &str = "/.orca/logout";
const WAIT: &str = "/.orca/wait";
/// Largest login form body.
const MAX_FORM: usize = 16 * 1024;
/// How long `/.orca/wait` holds a poll open before answering "no change".
const WAIT_POLL: Duration = Duration::from_secs(25);

/// Why a request got no proxied answer.
#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    /// The host is not `<image>.<domain>` nor the domain.
    #[error("`{0}` is not a host this gateway serves")]
    Foreign(String),
    /// No usable image of that name.
    #[error("there is no image named `{0}`")]
    UnknownImage(String),
    /// The image exists but its labels disable it.
    #[error("image `{name}` is unavailable: {reason}")]
    Disabled {
        /// Image name.
        name: String,
        /// Label errors.
        reason: String,
    },
    /// The user may not use the image.
    #[error("{user} may not use image `{image}`: {why}")]
    NotAllowed {
        /// Who.
        user: String,
        /// Which image.
        image: String,
        /// Which rule refused.
        why: String,
    },
    /// A resolver refused the caller.
    #[error("access denied by resolver `{resolver}`: {reason}")]
    Denied {
        /// Resolver.
        resolver: String,
        /// For the log.
        reason: String,
        /// For the user.
        message: Option<String>,
    },
    /// No resolver knows the caller and there is no way to log in.
    #[error("no identity: no resolver recognised this request and none checks passwords")]
    NoIdentity,
    /// A malformed request.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The scheduler could not place the user.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// The container did not answer.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// The container was not ready within the hold time.
    #[error("image `{0}` is still starting; retry in a few seconds")]
    StillStarting(String),
}

/// The HTTPS front, shared by every connection of one listener.
pub struct Front {
    domain: String,
    listener: Listener,
    identities: Current,
    scheduler: Scheduler,
    proxy: Arc<Proxy>,
    hold: Duration,
    /// `[https] login_url`, which a reload may change.
    login_url: Live<Option<String>>,
    /// `orca_http_requests_total` of this listener, by status class.
    responses: [IntCounter; 5],
}

impl std::fmt::Debug for Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front")
            .field("domain", &self.domain)
            .field("listener", &self.listener)
            .field("login_url", &self.login_url)
            .finish_non_exhaustive()
    }
}

/// An identified caller, with the cookie a resolver asked to set.
struct Caller {
    identity: Identity,
    set_cookie: Option<String>,
}

impl Front {
    /// A front for `domain`; requests not ready within `hold` are answered 503.
    pub fn new(
        domain: &str,
        identities: impl Into<Current>,
        scheduler: Scheduler,
        proxy: Proxy,
        hold: Duration,
    ) -> Self {
        Front {
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            listener: Listener::Tls,
            identities: identities.into(),
            responses: scheduler.metrics().responses_of("https"),
            scheduler,
            proxy: Arc::new(proxy),
            hold,
            login_url: Live::new(None),
        }
    }

    /// Sends browsers with no identity to an external login page (`[https] login_url`) instead
    /// of the login form.
    pub fn with_login_url(mut self, url: impl Into<Live<Option<String>>>) -> Self {
        self.login_url = url.into();
        self
    }

    /// The same front for the plain listener in `serve` mode: the client's address and scheme
    /// come from `X-Forwarded-For`/`-Proto` when the peer is in `trusted`, else from the peer.
    /// Shares the resolvers, the scheduler and the proxy's connection pools with `self`.
    pub fn behind_balancer(&self, trusted: Vec<Cidr>) -> Front {
        Front {
            domain: self.domain.clone(),
            listener: Listener::Plain {
                trusted: trusted.into(),
            },
            identities: self.identities.clone(),
            scheduler: self.scheduler.clone(),
            proxy: self.proxy.clone(),
            hold: self.hold,
            login_url: self.login_url.clone(),
            responses: self.scheduler.metrics().responses_of("http"),
        }
    }

    async fn serve(
        &self,
        req: Request<Incoming>,
        conn: &ConnInfo,
    ) -> Result<Response<Body>, FrontError> {
        let host = request_host(&req).unwrap_or_default();
        let route = route::route(&host, &self.domain);
        if route == Route::Foreign {
            return Err(FrontError::Foreign(host));
        }
        let origin = self.listener.origin(conn.peer, req.headers());
        // One chain for the whole request, even when a reload swaps it meanwhile.
        let identities = self.identities.get();
        let view = || self.identity_view(&req, &host, &route, origin.client);
        let path = req.uri().path();
        if path == LOGIN {
            let view = view();
            return self.login(&identities, req, &view, origin.client).await;
        }
        if path == LOGOUT {
            return Ok(self.logout(&identities, &view()).await);
        }
        let credential = HttpCredential::new(
            cookies::pairs(req.headers()),
            req.headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
        );
        let caller = match self.identify(&identities, credential, view).await? {
            Some(caller) => caller,
            None if is_navigation(&req) => {
                if let Some(url) = self.login_url.get().as_ref() {
                    let here = format!("{}://{host}{}", origin.proto, path_and_query(req.uri()));
                    return Ok(redirect(&external_login(url, &here)));
                }
                if identities.has_password() {
                    return Ok(redirect(&login_url(req.uri())));
                }
                return Err(FrontError::NoIdentity);
            }
            None => return Err(FrontError::NoIdentity),
        };
        let mut response = match route {
            Route::Index => Ok(self.index(&caller.identity, &host, origin.proto)),
            Route::Image(image) if path == WAIT => self.wait(&req, &caller.identity, &image).await,
            Route::Image(image) => {
                let who = &caller.identity;
                self.to_container(&identities, req, &origin, conn, &host, who, &image)
                    .await
            }
            Route::Foreign => Err(FrontError::Foreign(host)),
        }
        // The caller's cookie goes on error pages too: an anonymous visitor told "still
        // starting" (503) must come back as the same user, or each retry is a new user with a
        // container launch of their own.
        .unwrap_or_else(|e| rescue(&e));
        if let Some(cookie) = caller.set_cookie
            && let Ok(v) = HeaderValue::from_str(&cookie)
        {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
        Ok(response)
    }

    fn identity_view(
        &self,
        req: &Request<Incoming>,
        host: &str,
        route: &Route,
        peer: SocketAddr,
    ) -> HttpRequest {
        let headers = req
            .headers()
            .iter()
            .filter(|(n, _)| *n != header::COOKIE)
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        HttpRequest {
            method: req.method().as_str().to_string(),
            host: route::host_name(host).unwrap_or_default(),
            image: match route {
                Route::Image(name) => Some(name.clone()),
                _ => None,
            },
            path: path_and_query(req.uri()).to_string(),
            headers,
            cookies: cookies::parse(req.headers()),
            client: Client {
                address: peer.ip().to_string(),
                port: peer.port(),
            },
        }
    }

    async fn identify(
        &self,
        identities: &Identities,
        credential: HttpCredential,
        view: impl Fn() -> HttpRequest,
    ) -> Result<Option<Caller>, FrontError> {
        match identities.http_with(credential, view).await {
            Decision::Allow {
                identity,
                set_cookie,
                ..
            } => Ok(Some(Caller {
                identity,
                set_cookie: set_cookie
                    .map(|c| cookies::set(&c.name, &c.value, c.max_age_seconds, &self.domain)),
            })),
            Decision::Deny {
                resolver,
                reason,
                message,
            } => Err(FrontError::Denied {
                resolver,
                reason,
                message,
            }),
            Decision::Unknown => Ok(None),
        }
    }

    fn index(&self, who: &Identity, host: &str, scheme: &str) -> Response<Body> {
        let port = host
            .rsplit_once(':')
            .map(|(_, p)| format!(":{p}"))
            .unwrap_or_default();
        let images: Vec<(String, String)> = self
            .scheduler
            .catalogue()
            .specs()
            .into_iter()
            .filter(|s| s.kinds.web && allowed(who, s).is_ok())
            .map(|s| {
                let url = format!("{scheme}://{}.{}{port}/", s.name, self.domain);
                (s.name.clone(), url)
            })
            .collect();
        html(
            StatusCode::OK,
            pages::index(who.display_name.as_deref().unwrap_or(&who.id), &images),
        )
    }

    /// Checks the image and the user's right to it.
    fn image_for(&self, who: &Identity, image: &str) -> Result<(), FrontError> {
        match self.scheduler.catalogue().lookup(image) {
            Lookup::Unknown => Err(FrontError::UnknownImage(image.to_string())),
            Lookup::Disabled(reason) => Err(FrontError::Disabled {
                name: image.to_string(),
                reason,
            }),
            Lookup::Ready(spec) if !spec.kinds.web => {
                Err(FrontError::UnknownImage(image.to_string()))
            }
            Lookup::Ready(spec) => allowed(who, &spec),
        }
    }

    #[allow(clippy::too_many_arguments)] // the request and everything already known about it
    async fn to_container(
        &self,
        identities: &Identities,
        req: Request<Incoming>,
        origin: &Origin,
        conn: &ConnInfo,
        host: &str,
        who: &Identity,
        image: &str,
    ) -> Result<Response<Body>, FrontError> {
        self.image_for(who, image)?;
        let user = UserId::new(who.id.clone());
        let placement = self
            .scheduler
            .place(&user, image, Arrival::https(origin.client))?;
        let phase = placement.phase();
        if phase != Phase::Ready && is_navigation(&req) {
            if let Phase::Gone(reason) = &phase {
                return Err(FrontError::Schedule(ScheduleError::LaunchFailed {
                    image: image.to_string(),
                    reason: reason.to_string(),
                }));
            }
            // The launch goes on without this request; the page follows it.
            return Ok(no_store(html(
                StatusCode::OK,
                pages::waiting(image, phase_word(&phase)),
            )));
        }
        let lease = tokio::time::timeout(self.hold, placement.ready())
            .await
            .map_err(|_| FrontError::StillStarting(image.to_string()))??;
        let Some(ip) = lease.address else {
            return Err(FrontError::Schedule(ScheduleError::LaunchFailed {
                image: image.to_string(),
                reason: "the container has no address on the gateway's network".to_string(),
            }));
        };
        let port = lease.spec.port.unwrap_or(80);
        let fwd = Forwarded {
            user: &who.id,
            groups: &who.groups,
            // The hop this gateway saw; a trusted balancer's chain already names the client.
            client: &conn.peer_ip,
            proto: origin.proto,
            host,
            strip_cookies: identities.session_cookie_names(),
            trust_forwarded: origin.via_trusted,
        };
        let container_id = lease.container_id.clone();
        let lease = Arc::new(lease);
        // Weak: `keep` alone decides how long the session stays open.
        let meter_lease = Arc::downgrade(&lease);
        let target = Target {
            addr: SocketAddr::new(ip, port),
            meter: Arc::new(move |to_container, to_client| {
                if let Some(lease) = meter_lease.upgrade() {
                    lease.activity().record(to_container, to_client);
                }
            }),
            ended: lease.end_signal(),
            // The connection's guard too: an upgraded stream outlives hyper's connection task
            // and must keep counting against max_connections and the drain.
            keep: Box::new((lease, conn.guard.clone())),
        };
        match self.proxy.forward(req, target, &fwd).await {
            Ok(response) => Ok(response),
            Err(e) => Err(self.container_failed(image, &container_id, e).await),
        }
    }

    /// A container that fails to answer may have died before the engine's event said so: the
    /// scheduler asks the engine, and if it is dead, its users move on to a new container at
    /// their next request and the page says why this one is gone.
    async fn container_failed(&self, image: &str, container_id: &str, e: ProxyError) -> FrontError {
        if e.source_side() != ErrorSource::Container {
            return e.into();
        }
        match self.scheduler.unreachable(container_id).await {
            Some(stopped) => {
                tracing::debug!("{e}");
                FrontError::Schedule(ScheduleError::ContainerGone {
                    image: image.to_string(),
                    reason: stopped.to_string(),
                })
            }
            None => e.into(),
        }
    }

    /// `/.orca/wait?after=<phase>`: the next phase of the user's container, as JSON.
    async fn wait(
        &self,
        req: &Request<Incoming>,
        who: &Identity,
        image: &str,
    ) -> Result<Response<Body>, FrontError> {
        self.image_for(who, image)?;
        let after = query_value(req.uri().query().unwrap_or(""), "after").unwrap_or_default();
        let user = UserId::new(who.id.clone());
        let placement = self.scheduler.place(&user, image, SessionKind::Held)?;
        let mut phases = placement.phases();
        let deadline = tokio::time::Instant::now() + WAIT_POLL;
        loop {
            let phase = phases.borrow_and_update().clone();
            let word = phase_word(&phase);
            if word != after || tokio::time::Instant::now() >= deadline {
                let text = match &phase {
                    Phase::Gone(reason) => format!("the container failed to start: {reason}"),
                    p => pages::phase_text(phase_word(p)).to_string(),
                };
                let body = serde_json::json!({ "phase": word, "text": text }).to_string();
                let mut r = Response::new(full(body));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                return Ok(no_store(r));
            }
            if tokio::time::timeout_at(deadline, phases.changed())
                .await
                .is_ok_and(|r| r.is_err())
            {
                // The placement's channel closed: report what we have.
                let body =
                    serde_json::json!({ "phase": "failed", "text": "the container is gone" });
                return Ok(no_store(Response::new(full(body.to_string()))));
            }
        }
    }

    async fn login(
        &self,
        identities: &Identities,
        req: Request<Incoming>,
        view: &HttpRequest,
        client: SocketAddr,
    ) -> Result<Response<Body>, FrontError> {
        if !identities.has_password() {
            return Err(FrontError::NoIdentity);
        }
        if req.method() != Method::POST {
            let back = query_value(req.uri().query().unwrap_or(""), "back")
                .filter(|b| safe_back(b))
                .unwrap_or_else(|| "/".to_string());
            return Ok(no_store(html(StatusCode::OK, pages::login(&back, None))));
        }
        let body = Limited::collect(req.into_body(), MAX_FORM).await?;
        let form = String::from_utf8_lossy(&body).into_owned();
        let user = query_value(&form, "user").unwrap_or_default();
        let password = query_value(&form, "password").unwrap_or_default();
        let back = query_value(&form, "back")
            .filter(|b| safe_back(b))
            .unwrap_or_else(|| "/".to_string());
        let refused = |msg: &str| {
            no_store(html(
                StatusCode::UNAUTHORIZED,
                pages::login(&back, Some(msg)),
            ))
        };
        if user.is_empty() || password.is_empty() {
            return Ok(refused("Enter a user name and a password."));
        }
        let decision = identities.password(&user, &password, &view.client).await;
        let (who, result, by) = match &decision {
            Decision::Allow {
                identity, resolver, ..
            } => (identity.id.clone(), "accepted", Some(resolver.clone())),
            Decision::Deny { resolver, .. } => (user.clone(), "refused", Some(resolver.clone())),
            Decision::Unknown => (user.clone(), "refused", None),
        };
        self.scheduler.audit().record(Record::Login {
            protocol: "https",
            user: who,
            method: "form",
            result,
            client: Some(client),
            resolver: by,
        });
        match decision {
            Decision::Allow { identity, .. } => match identities.issue(&identity).await {
                Ok((_, issued)) => {
                    let mut r = redirect(&back);
                    let cookie = cookies::set(
                        &issued.name,
                        &issued.value,
                        issued.max_age_seconds,
                        &self.domain,
                    );
                    if let Ok(v) = HeaderValue::from_str(&cookie) {
                        r.headers_mut().append(header::SET_COOKIE, v);
                    }
                    Ok(r)
                }
                Err(e) => {
                    tracing::warn!("login of {user}: {e}");
                    Ok(refused(
                        "You are known, but no session could be opened; try again.",
                    ))
                }
            },
            Decision::Deny {
                message,
                reason,
                resolver,
            } => {
                tracing::info!(%resolver, "login of {user} refused: {reason}");
                Ok(refused(
                    message.as_deref().unwrap_or("Wrong user name or password."),
                ))
            }
            Decision::Unknown => Ok(refused("Wrong user name or password.")),
        }
    }

    async fn logout(&self, identities: &Identities, view: &HttpRequest) -> Response<Body> {
        let names = identities.revoke(view).await;
        let mut r = redirect("/");
        for name in names {
            if let Ok(v) = HeaderValue::from_str(&cookies::clear(&name, &self.domain)) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        r
    }
}

impl Handler for Front {
    async fn handle(&self, req: Request<Incoming>, conn: &ConnInfo) -> Response<Body> {
        let response = match self.serve(req, conn).await {
            Ok(response) => response,
            Err(e) => rescue(&e),
        };
        let class = usize::from(response.status().as_u16() / 100);
        if let Some(counter) = self.responses.get(class.wrapping_sub(1)) {
            counter.inc();
        }
        response
    }
}

/// The one place a failure becomes a response: status, page, and headers.
pub fn rescue(e: &FrontError) -> Response<Body> {
    let (status, title, detail) = match e {
        FrontError::Foreign(_) | FrontError::UnknownImage(_) => {
            (StatusCode::NOT_FOUND, "Not found", e.to_string())
        }
        FrontError::Disabled { .. } => (StatusCode::NOT_FOUND, "Unavailable", e.to_string()),
        FrontError::NotAllowed { .. } => (StatusCode::FORBIDDEN, "Not allowed", e.to_string()),
        FrontError::Denied { message, .. } => (
            StatusCode::FORBIDDEN,
            "Access denied",
            message
                .clone()
                .unwrap_or_else(|| "Access denied.".to_string()),
        ),
        FrontError::NoIdentity => (
            StatusCode::UNAUTHORIZED,
            "Who are you?",
            "This gateway does not know who you are and offers no login here.".to_string(),
        ),
        FrontError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad request", e.to_string()),
        FrontError::Schedule(s) => match s {
            ScheduleError::UnknownImage(_) => (StatusCode::NOT_FOUND, "Not found", e.to_string()),
            ScheduleError::ImageDisabled { .. } => {
                (StatusCode::NOT_FOUND, "Unavailable", e.to_string())
            }
            ScheduleError::AtCapacity { .. } | ScheduleError::ShuttingDown => {
                (StatusCode::SERVICE_UNAVAILABLE, "Busy", e.to_string())
            }
            ScheduleError::EngineFailing { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Containers cannot start",
                e.to_string(),
            ),
            ScheduleError::LaunchFailed { .. } | ScheduleError::ContainerGone { .. } => {
                (StatusCode::BAD_GATEWAY, "Container failed", e.to_string())
            }
        },
        FrontError::Proxy(ProxyError::ResponseTimeout { .. }) => (
            StatusCode::GATEWAY_TIMEOUT,
            "The app did not answer",
            e.to_string(),
        ),
        FrontError::Proxy(p) => match p.source_side() {
            ErrorSource::Client => (StatusCode::BAD_REQUEST, "Bad request", e.to_string()),
            _ => (StatusCode::BAD_GATEWAY, "Container failed", e.to_string()),
        },
        FrontError::StillStarting(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "Starting", e.to_string())
        }
    };
    if status.is_server_error() {
        tracing::warn!("{e}");
    } else {
        tracing::debug!("{e}");
    }
    let mut r = html(status, pages::status(status.as_u16(), title, &detail));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        let retry = match e {
            FrontError::Schedule(
                ScheduleError::AtCapacity { retry_after, .. }
                | ScheduleError::EngineFailing { retry_after, .. },
            ) => retry_after.as_secs().max(1),
            _ => 5,
        };
        if let Ok(v) = HeaderValue::from_str(&retry.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    no_store(r)
}

fn allowed(who: &Identity, spec: &ImageSpec) -> Result<(), FrontError> {
    match spec.refusal(who.images.as_deref(), who.groups.iter().map(String::as_str)) {
        None => Ok(()),
        Some(why) => Err(FrontError::NotAllowed {
            user: who.id.clone(),
            image: spec.name.clone(),
            why: why.to_string(),
        }),
    }
}

fn phase_word(phase: &Phase) -> &'static str {
    match phase {
        Phase::Gone(_) | Phase::Stopping(_) => "failed",
        p => p.as_str(),
    }
}

/// The host the client asked for: `:authority` (HTTP/2) or `Host`.
fn request_host<B>(req: &Request<B>) -> Option<String> {
    req.uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
}

/// A browser loading a page (as opposed to a script's request or an asset).
fn is_navigation<B>(req: &Request<B>) -> bool {
    if req.method() != Method::GET {
        return false;
    }
    let h = req.headers();
    if let Some(mode) = h.get("sec-fetch-mode").and_then(|v| v.to_str().ok()) {
        return mode == "navigate";
    }
    h.get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

fn path_and_query(uri: &hyper::Uri) -> &str {
    uri.path_and_query().map_or("/", |p| p.as_str())
}

fn login_url(uri: &hyper::Uri) -> String {
    format!("{LOGIN}?back={}", encode(path_and_query(uri)))
}

/// The operator's login page with the address the user asked for: in place of `{url}`, or
/// appended as `redirect=`, the name most single-sign-on front ends read.
fn external_login(login: &str, here: &str) -> String {
    let here = encode_component(here);
    if login.contains("{url}") {
        return login.replacen("{url}", &here, 1);
    }
    let sep = if login.contains('?') { '&' } else { '?' };
    format!("{login}{sep}redirect={here}")
}

/// Only a path on this host: never `//evil` or a scheme, so a login cannot be an open redirect.
fn safe_back(back: &str) -> bool {
    back.starts_with('/')
        && !back.starts_with("//")
        && !back.starts_with("/\\")
        && !back.bytes().any(|b| b.is_ascii_control())
}

fn html(status: StatusCode, page: String) -> Response<Body> {
    let mut r = Response::new(full(page));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn no_store(mut r: Response<Body>) -> Response<Body> {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn redirect(to: &str) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    no_store(r)
}

/// Reads a small body whole (the login form), refusing more than `max` bytes.
struct Limited;

impl Limited {
    async fn collect(body: Incoming, max: usize) -> Result<Bytes, FrontError> {
        let limited = http_body_util::Limited::new(body, max);
        limited
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| FrontError::BadRequest(format!("login form: {e}")))
    }
}

/// The value of `key` in an `application/x-www-form-urlencoded` string.
fn query_value(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == key).then(|| decode(v))
    })
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a path for a query value; `/` stays readable.
fn encode(text: &str) -> String {
    encode_except(text, b"/")
}

/// Percent-encodes anything for a query value, `/` and `:` included.
fn encode_component(text: &str) -> String {
    encode_except(text, b"")
}

fn encode_except(text: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || keep.contains(&b)
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_decode_and_back_urls_stay_on_the_host() {
        let form = "user=al%69ce&password=p%40ss+word&back=%2Fnotebooks%3Fx%3D1";
        assert_eq!(query_value(form, "user").as_deref(), Some("alice"));
        assert_eq!(query_value(form, "password").as_deref(), Some("p@ss word"));
        assert_eq!(query_value(form, "back").as_deref(), Some("/notebooks?x=1"));
        assert_eq!(query_value("a=%zz", "a").as_deref(), Some("%zz"));
        for bad in [
            "//evil.com/",
            "https://evil.com/",
            "/\\evil.com",
            "evil",
            "/a\nb",
        ] {
            assert!(!safe_back(bad), "{bad}");
        }
        assert!(safe_back("/lab?x=1"));
        assert_eq!(decode(&encode("/a b?c=d&e")), "/a b?c=d&e");
    }

    #[test]
    fn a_silent_app_is_a_gateway_timeout_and_a_dead_one_a_bad_gateway() {
        let addr: SocketAddr = "172.17.0.2:80".parse().unwrap();
        let silent = FrontError::Proxy(ProxyError::ResponseTimeout {
            addr,
            after: Duration::from_secs(120),
        });
        assert_eq!(rescue(&silent).status(), StatusCode::GATEWAY_TIMEOUT);
        let dead = FrontError::Proxy(ProxyError::SessionEnded { addr });
        assert_eq!(rescue(&dead).status(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn external_login_carries_the_whole_original_url() {
        let here = "https://lab.orca.example/x?y=1&z=2";
        let encoded = "https%3A%2F%2Flab.orca.example%2Fx%3Fy%3D1%26z%3D2";
        assert_eq!(
            external_login("https://sso.example/login?next={url}&app=orca", here),
            format!("https://sso.example/login?next={encoded}&app=orca")
        );
        assert_eq!(
            external_login("https://sso.example/login", here),
            format!("https://sso.example/login?redirect={encoded}")
        );
        assert_eq!(
            external_login("https://sso.example/login?app=orca", here),
            format!("https://sso.example/login?app=orca&redirect={encoded}")
        );
        assert_eq!(decode(encoded), here);
    }
}
