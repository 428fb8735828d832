//! Security of the HTTPS front end to end, through the in-process gateway, the bundled cookie
//! resolver, the password fixture and the test app (`tests/app`) in real containers: session
//! cookies that are forged, altered, expired or replayed after logout reach no container; one
//! user never reaches another's container, whatever the Host, the cookie or the headers say;
//! client-sent `X-Orca-*` headers never reach a container, over HTTP/1.1, HTTP/2 and
//! WebSocket. The plugin sandbox through a running gateway is in `security_plugins.rs`; SSH user
//! names, the admin token and the TLS audit in `security_ops.rs`.
//!
//! "No container saw it": every request a test expects refused carries a unique probe in its
//! path, and the app writes each request line it receives to its log (`docker logs`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use futures_util::SinkExt;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use orca_tests::app::{app_image, orca_headers, probe, seen};
use orca_tests::gateway::{Gateway, Reply, app_gateway_with, cookie_resolver, password_resolver};
use orca_tests::{docker, tls, unique_name, wait_for};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::Message;

/// The cookie resolver's signing key (32 bytes, base64), known here so a test can sign claims
/// as the gateway would, and forge them with another key.
const KEY: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
/// Users of the password fixture.
const USERS: &[(&str, &str, &str)] = &[("alice", "alice-pw", ""), ("bob", "bob-pw", "")];

/// A gateway whose only ways in are a session cookie signed with [`KEY`] (issued after a form
/// login) and the passwords of [`USERS`]; one user per container.
async fn cookie_gateway(cookie_settings: &[(&str, &str)]) -> Gateway {
    let key = STANDARD.encode(KEY);
    let mut settings = vec![("key", key.as_str())];
    settings.extend_from_slice(cookie_settings);
    let resolvers = vec![cookie_resolver(&settings), password_resolver(USERS)];
    app_gateway_with(&[("orca.users.concurrent", "1")], resolvers).await
}

/// Logs `user` in through the form; returns the session cookie's value.
async fn login(gw: &Gateway, user: &str) -> String {
    let password = USERS
        .iter()
        .find(|(u, _, _)| *u == user)
        .map(|(_, p, _)| *p)
        .expect("a known user");
    let form = format!("user={user}&password={password}&back=%2F");
    let r = gw.curl(&gw.image, "/.orca/login", &["--data", &form]).await;
    assert_eq!(r.status, 303, "{user} logs in: {r:?}");
    r.headers
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            let value = value.trim().strip_prefix("orca_session=")?;
            name.eq_ignore_ascii_case("set-cookie")
                .then(|| value.split(';').next().unwrap_or_default().to_string())
        })
        .unwrap_or_else(|| panic!("no session cookie in {}", r.headers))
}

/// `GET path` on the gateway's image with `cookie` as the session and extra curl arguments.
async fn get(gw: &Gateway, cookie: &str, path: &str, args: &[&str]) -> Reply {
    let cookie = format!("Cookie: orca_session={cookie}");
    let mut all = vec!["-H", cookie.as_str()];
    all.extend_from_slice(args);
    gw.curl(&gw.image, path, &all).await
}

/// Asserts the refusal SPEC §6 gives a request without identity on a gateway with a login
/// form: 401 to a script, the login form to a browser.
async fn assert_refused(gw: &Gateway, cookie: &str, what: &str, probes: &mut Vec<String>) {
    let p = probe();
    let r = get(gw, cookie, &p, &[]).await;
    assert_eq!(r.status, 401, "{what}: {r:?}");
    assert!(
        r.body.contains("does not know who you are"),
        "{what}: {r:?}"
    );
    let nav = probe();
    let r = get(gw, cookie, &nav, &["-H", "Accept: text/html"]).await;
    assert_eq!(r.status, 303, "{what} (browser): {r:?}");
    assert!(
        r.headers
            .to_ascii_lowercase()
            .contains("location: /.orca/login?back=/headers"),
        "{what}: {}",
        r.headers
    );
    probes.extend([p, nav]);
}

/// HMAC-SHA256 (RFC 2104), to sign claims as the cookie resolver does.
fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let pad = |byte: u8| -> Vec<u8> {
        let mut block = [0u8; 64];
        block[..key.len()].copy_from_slice(key);
        block.iter().map(|b| b ^ byte).collect()
    };
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// A cookie value in the resolver's format (`plugins/cookie/README.md`) for `claims`, signed
/// with `key`.
fn seal(claims: &serde_json::Value, key: &[u8]) -> String {
    let signed = format!("v1.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    format!(
        "{signed}.{}",
        URL_SAFE_NO_PAD.encode(hmac(key, signed.as_bytes()))
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_secs()
}

/// Claims for `id`, expiring at `exp`.
fn claims(id: &str, exp: u64) -> serde_json::Value {
    serde_json::json!({ "id": id, "iat": now(), "exp": exp, "sid": unique_name("sid") })
}

/// `value` with the character at `at` replaced by another base64url character.
fn flip(value: &str, at: usize) -> String {
    let mut bytes = value.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("base64url stays ASCII")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_altered_expired_and_revoked_cookies_reach_no_container() {
    let gw = cookie_gateway(&[]).await;
    let alice = login(&gw, "alice").await;
    // Our own signature over the same claims proves the test signs as the resolver does.
    let (payload, mac) = alice
        .strip_prefix("v1.")
        .and_then(|r| r.split_once('.'))
        .expect("v1.<payload>.<mac>");
    let signed = format!("v1.{payload}");
    assert_eq!(URL_SAFE_NO_PAD.encode(hmac(KEY, signed.as_bytes())), mac);

    let control = probe();
    let ok = get(&gw, &alice, &control, &[]).await;
    assert_eq!(ok.status, 200, "the valid cookie works: {ok:?}");
    assert_eq!(seen(&ok.body, "x-orca-user"), ["alice"]);
    let home = ok.hostname();

    let mut probes = Vec::new();
    let later = now() + 3600;
    let other_key = [7u8; 32];
    let forged = [
        (
            "made up",
            format!("v1.{payload}.{}", URL_SAFE_NO_PAD.encode([0u8; 32])),
        ),
        (
            "signed with another key",
            seal(&claims("alice", later), &other_key),
        ),
        (
            "bob's, signed with another key",
            seal(&claims("bob", later), &other_key),
        ),
        ("unsigned", format!("v1.{payload}.")),
        ("not v1", format!("v2.{payload}.{mac}")),
    ];
    for (what, cookie) in &forged {
        assert_refused(&gw, cookie, what, &mut probes).await;
    }

    // One byte changed, in the payload and in the MAC; and alice's claims made bob's.
    let payload_at = "v1.".len() + payload.len() / 2;
    let mac_at = alice.len() - mac.len() / 2;
    let json = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let as_bob = URL_SAFE_NO_PAD.encode(json.replace("\"alice\"", "\"bob\""));
    let altered = [
        ("a payload byte changed", flip(&alice, payload_at)),
        ("a MAC byte changed", flip(&alice, mac_at)),
        ("the id changed to bob", format!("v1.{as_bob}.{mac}")),
        ("cut short", alice[..alice.len() - 1].to_string()),
    ];
    for (what, cookie) in &altered {
        assert_ne!(cookie, &alice);
        assert_refused(&gw, cookie, what, &mut probes).await;
    }

    // Expired, though signed with the right key.
    let expired = seal(&claims("alice", now() - 1), KEY);
    assert_refused(&gw, &expired, "expired", &mut probes).await;
    // The same claims not yet expired work: only `exp` made the difference.
    let fresh = get(&gw, &seal(&claims("alice", later), KEY), "/headers", &[]).await;
    assert_eq!(fresh.hostname(), home, "{fresh:?}");

    // Logout revokes the session at once, although the gateway cached its last answer.
    let again = get(&gw, &alice, "/headers", &[]).await;
    assert_eq!(again.hostname(), home);
    let out = get(&gw, &alice, "/.orca/logout", &[]).await;
    assert_eq!(out.status, 303, "{out:?}");
    assert!(
        out.headers.contains("orca_session=; Max-Age=0"),
        "{}",
        out.headers
    );
    assert_refused(&gw, &alice, "replayed after logout", &mut probes).await;
    gw.assert_no_container_saw(&probes, &control);
    assert_eq!(gw.docker_containers().len(), 1, "only alice's container");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_is_refused_once_its_short_ttl_has_passed() {
    let gw = cookie_gateway(&[("ttl", "3s")]).await;
    let alice = login(&gw, "alice").await;
    let payload = alice.split('.').nth(1).expect("a payload");
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let exp = claims["exp"].as_u64().expect("exp");
    assert!(exp <= now() + 3, "{claims}");

    let control = probe();
    let ok = get(&gw, &alice, &control, &[]).await;
    assert_eq!(ok.status, 200, "before it expires: {ok:?}");
    assert_eq!(seen(&ok.body, "x-orca-user"), ["alice"]);
    // Past `exp` by a second, whatever the gateway's cache held.
    let wait = (exp + 1).saturating_sub(now());
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let mut probes = Vec::new();
    assert_refused(&gw, &alice, "expired", &mut probes).await;
    gw.assert_no_container_saw(&probes, &control);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_never_reaches_bobs_container_by_host_cookie_or_header() {
    let gw = cookie_gateway(&[]).await;
    let (alice, bob) = (login(&gw, "alice").await, login(&gw, "bob").await);
    let control = probe();
    let a = get(&gw, &alice, &control, &[]).await;
    let b = get(&gw, &bob, "/headers", &[]).await;
    assert_eq!((a.status, b.status), (200, 200), "{a:?}\n{b:?}");
    let (home, bobs) = (a.hostname(), b.hostname());
    assert_ne!(home, bobs, "one user per container");
    let bob_id = gw
        .docker_containers()
        .into_iter()
        .find(|id| id.starts_with(&bobs))
        .expect("bob's container is the gateway's");
    let bob_ip = docker(&[
        "inspect",
        "--format",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &bob_id,
    ])
    .unwrap()
    .trim()
    .to_string();
    let bob_name = docker(&["inspect", "--format", "{{.Name}}", &bob_id])
        .unwrap()
        .trim()
        .trim_start_matches('/')
        .to_string();
    let (image, port) = (gw.image.clone(), gw.port);

    // Variants of alice's own host reach her container, and nothing else. Over HTTP/2 curl
    // sends the `Host` it is given as `:authority`, so both ways of naming the host are tried.
    for flag in ["--http1.1", "--http2"] {
        for host in [
            format!("{}.LOCALHOST:{port}", image.to_uppercase()),
            format!("{image}.localhost.:{port}"),
            format!("{image}.localhost"),
        ] {
            let r = get(
                &gw,
                &alice,
                "/headers",
                &[flag, "-H", &format!("Host: {host}")],
            )
            .await;
            assert_eq!(
                (r.status, r.hostname()),
                (200, home.clone()),
                "{flag} Host {host}"
            );
        }
    }
    // Hosts naming bob's container, its address or something else are no image: 404, or,
    // for an authority HTTP/2 itself finds malformed, a refused stream (no status at all).
    let mut probes = Vec::new();
    for flag in ["--http1.1", "--http2"] {
        for host in [
            format!("{bobs}.localhost:{port}"),
            format!("{bob_id}.localhost"),
            format!("{bob_name}.localhost"),
            bob_ip.clone(),
            format!("{bob_ip}:80"),
            format!("[::ffff:{bob_ip}]"),
            format!("bob.{image}.localhost"),
            format!("{image}.localhost@{bob_ip}"),
            format!("{image}.localhost:{port}:80"),
            format!("{image}%2elocalhost"),
            "localhost.".to_string(),
        ] {
            let p = probe();
            let r = get(&gw, &alice, &p, &[flag, "-H", &format!("Host: {host}")]).await;
            let index = host == "localhost." && r.status == 200;
            let malformed = flag == "--http2" && r.status == 0;
            assert!(
                r.status == 404 || index || malformed,
                "{flag} Host {host}: {r:?}"
            );
            assert!(r.line("hostname").is_none(), "{flag} Host {host}: {r:?}");
            probes.push(p);
        }
    }
    // An absolute-form target outranks Host: it decides, and it is routed like one.
    let p = probe();
    let target = format!("http://{bob_ip}{p}");
    let r = get(
        &gw,
        &alice,
        "/",
        &["--http1.1", "--request-target", &target],
    )
    .await;
    assert_eq!(r.status, 404, "{target}: {r:?}");
    probes.push(p);
    let target = format!("https://{image}.localhost:{port}/headers");
    let r = get(
        &gw,
        &alice,
        "/",
        &[
            "--http1.1",
            "--request-target",
            &target,
            "-H",
            &format!("Host: {bob_ip}"),
        ],
    )
    .await;
    assert_eq!((r.status, r.hostname()), (200, home.clone()), "{r:?}");
    // The container is told the host that chose it, not the client's other `Host`.
    let own = format!("{image}.localhost:{port}");
    assert_eq!(seen(&r.body, "host"), [own.as_str()], "{}", r.body);

    // HTTP/2: `:authority` decides over a mismatched Host, both ways.
    let (status, body) = h2_get(&gw, &own, &bob_ip, &alice, "/headers").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body.lines().next(),
        Some(format!("hostname: {home}").as_str())
    );
    assert_eq!(seen(&body, "host"), [own.as_str()], "{body}");
    let p = probe();
    let (status, body) = h2_get(&gw, &bob_ip, &own, &alice, &p).await;
    assert_eq!(status, 404, "{body}");
    probes.push(p);

    // Spoofed identity and forwarding headers change nothing: alice, in her container.
    let spoofed = get(
        &gw,
        &alice,
        "/headers",
        &[
            "-H",
            "X-Orca-User: bob",
            "-H",
            "x-orca-user: bob",
            "-H",
            "X-ORCA-GROUPS: admins",
            "-H",
            "x-user: bob",
            "-H",
            &format!("X-Forwarded-For: {bob_ip}"),
            "-H",
            "X-Forwarded-Host: bob.localhost",
            "-H",
            "X-Forwarded-Proto: http",
            "-H",
            &format!("Forwarded: for={bob_ip};host=bob.localhost;proto=http"),
            "-H",
            &format!("X-Real-IP: {bob_ip}"),
        ],
    )
    .await;
    assert_eq!(spoofed.hostname(), home, "{spoofed:?}");
    assert_eq!(
        orca_headers(&spoofed.body),
        ["x-orca-groups: ", "x-orca-user: alice"],
        "{}",
        spoofed.body
    );
    assert_eq!(seen(&spoofed.body, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen(&spoofed.body, "x-forwarded-proto"), ["https"]);
    assert_eq!(
        seen(&spoofed.body, "x-forwarded-host"),
        [format!("{image}.localhost:{port}")]
    );
    assert!(
        seen(&spoofed.body, "forwarded").is_empty(),
        "{}",
        spoofed.body
    );
    assert!(
        seen(&spoofed.body, "x-real-ip").is_empty(),
        "{}",
        spoofed.body
    );

    // Another image: bob's container of it is his; alice gets one of her own there.
    let other = unique_name("app");
    app_image(
        &format!("{other}:latest"),
        &[("orca.name", &other), ("orca.users.concurrent", "1")],
    )
    .expect("the second image builds");
    let at_other = |cookie: String| {
        let gw = &gw;
        let other = other.clone();
        async move {
            let c = format!("Cookie: orca_session={cookie}");
            gw.curl(&other, "/headers", &["-H", &c]).await
        }
    };
    let bob_other = wait_for("the second image", Duration::from_secs(30), || async {
        let r = at_other(bob.clone()).await;
        (r.status == 200).then_some(r)
    })
    .await
    .unwrap();
    let alice_other = at_other(alice.clone()).await;
    assert_eq!(alice_other.status, 200, "{alice_other:?}");
    assert_eq!(seen(&alice_other.body, "x-orca-user"), ["alice"]);
    let there = alice_other.hostname();
    assert!(
        ![home.as_str(), bobs.as_str(), bob_other.hostname().as_str()].contains(&there.as_str())
    );

    // A session restricted to the first image is refused at the second.
    let mut only_first = claims("alice", now() + 3600);
    only_first["images"] = serde_json::json!([image]);
    let only_first = seal(&only_first, KEY);
    let r = get(&gw, &only_first, "/headers", &[]).await;
    assert_eq!((r.status, r.hostname()), (200, home.clone()), "{r:?}");
    let r = at_other(only_first).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.line("hostname").is_none(), "{r:?}");

    gw.assert_no_container_saw(&probes, &control);
    // bob's container never saw a request of alice's.
    let bobs_log = docker(&["logs", &bob_id]).unwrap();
    assert!(!bobs_log.contains(&control), "{bobs_log}");
    assert_eq!(
        bobs_log.matches("request: GET /headers").count(),
        1,
        "only bob's own request: {bobs_log}"
    );
}

/// An HTTP/2 `GET path` with `:authority` = `authority` and a `Host` header `host`; returns
/// (status, body).
async fn h2_get(
    gw: &Gateway,
    authority: &str,
    host: &str,
    cookie: &str,
    path: &str,
) -> (u16, String) {
    let sni = format!("{}.localhost", gw.image);
    let stream = tls::connect_with_alpn(&gw.ca, gw.port, &sni, &[b"h2"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("an HTTP/2 connection");
    tokio::spawn(conn);
    let request = hyper::Request::get(format!("https://{authority}{path}"))
        .header("host", host)
        .header("cookie", format!("orca_session={cookie}"))
        .body(Empty::<Bytes>::new())
        .expect("a valid request");
    let response = tokio::time::timeout(Duration::from_secs(60), sender.send_request(request))
        .await
        .expect("an answer in time")
        .expect("an HTTP/2 answer");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the whole body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_sent_x_orca_headers_never_reach_a_container() {
    let gw = cookie_gateway(&[]).await;
    let alice = login(&gw, "alice").await;
    let forged = [
        "-H",
        "X-Orca-User: mallory",
        "-H",
        "x-orca-user: root",
        "-H",
        "X-ORCA-GROUPS: admins",
        "-H",
        "X-Orca-Groups: wheel",
        "-H",
        "x-OrCa-Anything: 1",
        "-H",
        "X-Orca-: empty-suffix",
    ];
    let want = ["x-orca-groups: ", "x-orca-user: alice"];
    for (proto, flag) in [("HTTP/1.1", "--http1.1"), ("HTTP/2", "--http2")] {
        let mut args = vec![flag];
        args.extend_from_slice(&forged);
        let r = get(&gw, &alice, "/headers", &args).await;
        assert_eq!(r.status, 200, "{proto}: {r:?}");
        assert!(r.headers.starts_with(proto), "{proto}: {}", r.headers);
        assert_eq!(orca_headers(&r.body), want, "{proto}: {}", r.body);
    }

    // The plain listener behind a trusted balancer strips them too.
    let cookie = format!("Cookie: orca_session={alice}");
    let mut args = vec!["-H", cookie.as_str()];
    args.extend_from_slice(&forged);
    let r = gw.curl_plain(&gw.image, "/headers", &args).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(orca_headers(&r.body), want, "{}", r.body);

    // A WebSocket handshake: the app reports the headers it got as the first message.
    let host = format!("{}.localhost", gw.image);
    let session = format!("orca_session={alice}");
    let headers: Vec<(&str, &str)> = forged
        .chunks(2)
        .filter_map(|pair| pair[1].split_once(": "))
        .chain([("cookie", session.as_str())])
        .collect();
    let stream = gw.connect_tls().await;
    let mut ws = tls::websocket_at(stream, &host, gw.port, "/ws/headers", &headers).await;
    let first = tls::next_data(&mut ws)
        .await
        .into_text()
        .unwrap()
        .to_string();
    assert_eq!(orca_headers(&first), want, "{first}");
    assert!(
        !first.contains(&alice),
        "the session cookie leaked: {first}"
    );
    ws.send(Message::text("still echoing")).await.unwrap();
    let echo = tls::next_data(&mut ws)
        .await
        .into_text()
        .unwrap()
        .to_string();
    assert_eq!(echo, "still echoing");
}
