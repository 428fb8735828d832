//! The admin API against a scheduler over the in-memory engine: routes, JSON, errors and the
//! token through [`Admin::respond`] on paused time, then the real server and `orca status`'s
//! client over a loopback socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::api::{ContainersView, SessionsView};
use super::client::{self, ClientError};
use super::table::render_status;
use super::*;
use crate::listeners::https::{self, Body, ServeOptions};
use crate::runtime::fake::FakeRuntime;
use crate::scheduler::{Lease, SessionKind};

const WEB: &[(&str, &str)] = &[("orca.kind", "web"), ("orca.name", "web")];
const TOKEN: &str = "0123456789abcdef";

struct Fixture {
    rt: Arc<FakeRuntime>,
    scheduler: Scheduler,
    admin: Admin,
    token: AdminToken,
    shutdown: CancellationToken,
}

async fn fixture(token: Option<&str>) -> Fixture {
    let rt = Arc::new(FakeRuntime::new());
    rt.add_image("img:latest", WEB);
    let metrics = Arc::new(Metrics::new());
    let scheduler = Scheduler::start(
        rt.clone(),
        crate::scheduler::tests::opts(None),
        metrics.clone(),
    )
    .await
    .unwrap();
    let token = AdminToken::new(token.map(str::to_string));
    let shutdown = CancellationToken::new();
    let admin = Admin::new(scheduler.clone(), metrics, token.clone(), shutdown.clone());
    Fixture {
        rt,
        scheduler,
        admin,
        token,
        shutdown,
    }
}

impl Fixture {
    /// A user's session on `web` that counts as active while open (an HTTP request).
    async fn lease(&self, user: &str) -> Lease {
        self.lease_of(user, SessionKind::Held).await
    }

    async fn lease_of(&self, user: &str, kind: SessionKind) -> Lease {
        self.scheduler
            .acquire(&UserId::new(user), "web", kind)
            .await
            .unwrap()
    }

    /// `method path` with the bearer token when one is given.
    async fn call(&self, method: Method, path: &str, token: Option<&str>) -> Answer {
        let mut headers = HeaderMap::new();
        if let Some(t) = token {
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
            );
        }
        let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        Answer::read(self.admin.respond(&method, path, &headers, peer)).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }
}

/// A response, read.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    async fn read(response: Response<Body>) -> Self {
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        Self {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

#[tokio::test(start_paused = true)]
async fn healthz_is_ok_until_shutdown_then_503() {
    let f = fixture(None).await;
    let a = f.get("/healthz").await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "ok\n"));
    assert_eq!(
        a.header(header::CONTENT_TYPE),
        Some("text/plain; charset=utf-8")
    );
    f.shutdown.cancel();
    let a = f.get("/healthz").await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    );
}

#[tokio::test(start_paused = true)]
async fn metrics_are_prometheus_text_with_orca_families() {
    let f = fixture(None).await;
    let _lease = f.lease("alice").await;
    let a = f.get("/metrics").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.header(header::CONTENT_TYPE),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(a.body.contains("# TYPE orca_images gauge"), "{}", a.body);
    assert!(a.body.contains("orca_images{state=\"ok\"} 1"), "{}", a.body);
    assert!(
        a.body
            .contains("orca_container_starts_total{image=\"web\",result=\"ok\"} 1"),
        "{}",
        a.body
    );
}

#[tokio::test(start_paused = true)]
async fn containers_show_the_user_the_phase_and_why() {
    let f = fixture(None).await;
    let lease = f.lease("alice").await;
    lease.activity().record(100, 2048);
    let a = f.get("/api/v1/containers").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header(header::CONTENT_TYPE), Some("application/json"));
    let v = a.json();
    let c = &v["containers"][0];
    assert_eq!(v["containers"].as_array().unwrap().len(), 1);
    assert_eq!(c["name"], json!(lease.container));
    assert_eq!(c["id"], json!(lease.container_id));
    assert_eq!(c["image"], "web");
    assert_eq!(c["phase"], "ready");
    assert_eq!(c["phase_detail"], "ready");
    assert_eq!(c["served"], 1);
    assert_eq!(c["accepts_users"], true);
    assert_eq!(c["why"], "serving 1 user");
    assert_eq!(
        c["address"],
        json!(lease.address.map(|a| a.to_string()).unwrap())
    );
    assert!(
        c["created"].as_str().unwrap().ends_with('Z'),
        "{}",
        c["created"]
    );
    let u = &c["users"][0];
    assert_eq!(u["user"], "alice");
    assert_eq!(u["sessions"], 1);
    assert_eq!(
        (u["bytes_in"].as_u64(), u["bytes_out"].as_u64()),
        (Some(100), Some(2048))
    );
    assert_eq!(v["recent_stops"], json!([]));
    // The client's types read the very same document.
    let typed: ContainersView = serde_json::from_str(&a.body).unwrap();
    assert_eq!(typed.containers[0].users[0].user, "alice");
}

#[tokio::test(start_paused = true)]
async fn sessions_are_one_entry_per_user_and_image_with_idle_time() {
    let f = fixture(None).await;
    let alice = f.lease("alice").await;
    // Bob's session counts only bytes moved (SSH): he idles from his last bytes on.
    let bob = f.lease_of("bob", SessionKind::Traffic).await;
    bob.activity().record(7, 9);
    tokio::time::advance(Duration::from_secs(30)).await;
    let a = f.get("/api/v1/sessions").await;
    assert_eq!(a.status, StatusCode::OK);
    let v: SessionsView = serde_json::from_str(&a.body).unwrap();
    let users: Vec<(&str, &str, &str, u32)> = v
        .sessions
        .iter()
        .map(|s| {
            (
                s.user.as_str(),
                s.image.as_str(),
                s.container.as_str(),
                s.connections,
            )
        })
        .collect();
    assert_eq!(
        users,
        [
            ("alice", "web", alice.container.as_str(), 1),
            ("bob", "web", bob.container.as_str(), 1)
        ]
    );
    assert_eq!(v.sessions[0].idle_seconds, 0, "alice's request is open");
    let bob_view = &v.sessions[1];
    assert_eq!((bob_view.bytes_in, bob_view.bytes_out), (7, 9));
    assert!(
        (29..=31).contains(&bob_view.idle_seconds),
        "idle {}",
        bob_view.idle_seconds
    );
    assert_eq!(bob_view.container_why, "serving 2 users");
}

#[tokio::test(start_paused = true)]
async fn deleting_a_session_ends_the_lease_and_a_second_delete_is_404() {
    let f = fixture(None).await;
    let lease = f.lease("alice").await;
    let a = f
        .call(Method::DELETE, "/api/v1/sessions/web/alice", None)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        a.json(),
        json!({"ended": true, "user": "alice", "image": "web", "container": lease.container})
    );
    assert!(lease.is_ended());
    let a = f
        .call(Method::DELETE, "/api/v1/sessions/web/alice", None)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(
        a.error(),
        "user `alice` has no session on image `web`; list them with GET /api/v1/sessions"
    );
}

#[tokio::test(start_paused = true)]
async fn user_ids_in_paths_are_percent_decoded() {
    let f = fixture(None).await;
    let id = "Ada Lovelace@example.org/+x";
    let lease = f.lease(id).await;
    let a = f
        .call(
            Method::DELETE,
            "/api/v1/sessions/web/Ada%20Lovelace%40example.org%2F+x",
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["user"], id);
    assert!(lease.is_ended());
    for bad in ["%zz", "%4", "%ff"] {
        let a = f
            .call(Method::DELETE, &format!("/api/v1/sessions/web/{bad}"), None)
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(a.error().contains(&format!("`{bad}`")), "{}", a.error());
    }
}

#[tokio::test(start_paused = true)]
async fn stopping_a_container_is_202_ends_its_leases_and_a_repeat_is_409() {
    let f = fixture(None).await;
    let lease = f.lease("alice").await;
    let path = format!("/api/v1/containers/{}/stop", lease.container);
    let a = f.call(Method::POST, &path, None).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    assert_eq!(
        a.json(),
        json!({"stopping": true, "container": lease.container})
    );
    assert!(lease.is_ended());
    let a = f.call(Method::POST, &path, None).await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert!(
        a.error()
            .contains("is already stopping: an administrator stopped it"),
        "{}",
        a.error()
    );
    let a = f
        .call(Method::POST, "/api/v1/containers/nope/stop", None)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(
        a.error(),
        "there is no container named `nope`; list them with GET /api/v1/containers"
    );
    // Once gone, it is listed among the recent stops with the operator as the reason.
    for _ in 0..100 {
        if f.rt.containers().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = f.get("/api/v1/containers").await.json();
    assert_eq!(v["containers"], json!([]));
    assert_eq!(v["recent_stops"][0]["name"], json!(lease.container));
    assert_eq!(v["recent_stops"][0]["reason"], "admin");
    assert_eq!(
        v["recent_stops"][0]["detail"],
        "an administrator stopped it"
    );
}

#[tokio::test(start_paused = true)]
async fn with_a_token_every_route_but_healthz_needs_it() {
    let f = fixture(Some(TOKEN)).await;
    for path in [
        "/metrics",
        "/api/v1/containers",
        "/api/v1/sessions",
        "/nowhere",
    ] {
        for token in [None, Some("wrong"), Some("0123456789abcdeF")] {
            let a = f.call(Method::GET, path, token).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path} {token:?}");
            assert_eq!(
                a.header(header::WWW_AUTHENTICATE),
                Some("Bearer realm=\"orca-admin\"")
            );
            assert!(a.error().contains("[admin] token_file"), "{}", a.error());
        }
        let a = f.call(Method::GET, path, Some(TOKEN)).await;
        let want = if path == "/nowhere" {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        };
        assert_eq!(a.status, want, "{path}");
    }
    let a = f
        .call(Method::DELETE, "/api/v1/sessions/web/alice", None)
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(f.get("/healthz").await.status, StatusCode::OK);

    // A SIGHUP swaps the token: the old one stops working at once.
    f.token.set(Some("rotated".into()));
    let a = f.call(Method::GET, "/api/v1/sessions", Some(TOKEN)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = f
        .call(Method::GET, "/api/v1/sessions", Some("rotated"))
        .await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn unknown_paths_are_404_and_wrong_methods_405_with_allow() {
    let f = fixture(None).await;
    for path in ["/", "/api/v1", "/api/v1/containers/", "/api/v2/containers"] {
        let a = f.get(path).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            a.error().starts_with(&format!(
                "no admin route `{path}`; the routes are GET /healthz"
            )),
            "{}",
            a.error()
        );
    }
    let cases = [
        (Method::POST, "/healthz", "GET, HEAD"),
        (Method::DELETE, "/metrics", "GET, HEAD"),
        (Method::PUT, "/api/v1/containers", "GET, HEAD"),
        (Method::POST, "/api/v1/sessions", "GET, HEAD"),
        (Method::GET, "/api/v1/sessions/web/alice", "DELETE"),
        (Method::GET, "/api/v1/containers/c1/stop", "POST"),
        (Method::DELETE, "/api/v1/containers/c1/stop", "POST"),
    ];
    for (method, path, allow) in cases {
        let a = f.call(method.clone(), path, None).await;
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(a.header(header::ALLOW), Some(allow), "{method} {path}");
        assert_eq!(
            a.error(),
            format!("`{method}` is not allowed on `{path}`; use {allow}")
        );
    }
    assert_eq!(
        f.call(Method::HEAD, "/metrics", None).await.status,
        StatusCode::OK
    );
}

/// The real server on a loopback port, read by `orca status`'s client.
#[tokio::test]
async fn orca_status_reads_the_real_listener() {
    let f = fixture(Some(TOKEN)).await;
    let _lease = f.lease("alice@example.org").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(https::serve(
        listener,
        None,
        Arc::new(f.admin.clone()),
        ServeOptions::default(),
        stop.clone(),
    ));

    let (status, _, body) = client::send(addr, Method::GET, "/healthz", None)
        .await
        .unwrap();
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok\n"[..]));

    let view: ContainersView = client::get_json(addr, "/api/v1/containers", Some(TOKEN))
        .await
        .unwrap();
    assert_eq!(view.containers[0].users[0].user, "alice@example.org");
    let text = render_status(&view, std::time::SystemTime::now());
    assert!(text.contains("alice@example.org  web"), "{text}");
    assert!(text.contains("serving 1 user"), "{text}");

    let e = client::get_json::<ContainersView>(addr, "/api/v1/containers", Some("nope"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::Status { status, .. } if *status == StatusCode::UNAUTHORIZED),
        "{e}"
    );
    assert!(
        e.to_string().starts_with(&format!(
            "orca's admin listener at {addr} answered 401 Unauthorized to GET /api/v1/containers: the bearer token is wrong"
        )),
        "{e}"
    );

    // Percent-encoding survives hyper's request line untouched.
    let (status, _, body) = client::send(
        addr,
        Method::DELETE,
        "/api/v1/sessions/web/alice%40example.org",
        Some(TOKEN),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let (status, headers, _) = client::send(addr, Method::GET, "/metrics", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers.get(header::WWW_AUTHENTICATE).unwrap(),
        "Bearer realm=\"orca-admin\""
    );

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
}
