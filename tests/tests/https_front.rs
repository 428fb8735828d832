//! The HTTPS front end to end: curl over TLS (HTTP/1.1 and HTTP/2) → the front → real resolver
//! plugins → the scheduler → real containers on the Docker bridge → the proxy.

use std::time::Duration;

use orca_tests::gateway::{Gateway, gateway_of};

async fn gateway(labels: &[(&str, &str)]) -> Gateway {
    gateway_of("web", labels).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_is_held_until_ready_then_proxied_with_identity_headers() {
    let gw = gateway(&[("orca.users.concurrent", "1")]).await;
    let image = gw.image.clone();
    let first = gw
        .curl(
            &image,
            "/cgi-bin/echo?x=1",
            &[
                "-H",
                "x-user: alice",
                "-H",
                "X-Orca-User: mallory",
                "-H",
                "X-Orca-Groups: admins",
                "-H",
                "Cookie: orca_session=stolen; theme=dark",
            ],
        )
        .await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.line("X-Orca-User"), Some("alice"), "{}", first.body);
    assert_eq!(first.line("X-Orca-Groups"), Some(""), "{}", first.body);
    assert_eq!(
        first.line("X-Forwarded-Proto"),
        Some("https"),
        "{}",
        first.body
    );
    assert_eq!(
        first.line("X-Forwarded-For"),
        Some("127.0.0.1"),
        "{}",
        first.body
    );
    assert_eq!(first.line("Cookie"), Some("theme=dark"), "{}", first.body);
    assert!(!first.body.contains("mallory") && !first.body.contains("stolen"));
    assert_eq!(first.line("uri"), Some("/cgi-bin/echo?x=1"));
    let host = first.line("hostname").expect("hostname line").to_string();

    // The same user again, over HTTP/2 this time: the same container.
    let again = gw
        .curl(&image, "/cgi-bin/echo", &["--http2", "-H", "x-user: alice"])
        .await;
    assert_eq!(again.status, 200, "{again:?}");
    assert!(again.headers.starts_with("HTTP/2"), "{}", again.headers);
    assert_eq!(again.line("hostname"), Some(host.as_str()));

    // users.concurrent = 1: bob gets a container of his own.
    let bob = gw
        .curl(&image, "/cgi-bin/echo", &["-H", "x-user: bob"])
        .await;
    assert_eq!(bob.status, 200, "{bob:?}");
    assert_ne!(bob.line("hostname"), Some(host.as_str()));
    assert_eq!(gw.scheduler.status().containers.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_balancer_the_container_sees_its_chain_and_scheme() {
    let gw = gateway(&[]).await;
    let image = gw.image.clone();
    let forwarded = [
        "-H",
        "X-Forwarded-For: 198.51.100.1, 203.0.113.7",
        "-H",
        "X-Forwarded-Proto: https",
    ];
    // From the balancer (127.0.0.1): its chain is extended with itself, its scheme believed.
    let mut args = vec!["-H", "x-user: erin"];
    args.extend_from_slice(&forwarded);
    let via_lb = gw.curl_plain(&image, "/cgi-bin/echo", &args).await;
    assert_eq!(via_lb.status, 200, "{via_lb:?}");
    assert_eq!(
        via_lb.line("X-Forwarded-For"),
        Some("198.51.100.1, 203.0.113.7, 127.0.0.1"),
        "{}",
        via_lb.body
    );
    assert_eq!(via_lb.line("X-Forwarded-Proto"), Some("https"));
    assert_eq!(via_lb.line("X-Orca-User"), Some("erin"));

    // From 127.0.0.2, not trusted: the same headers are claims; replaced, not extended.
    args.extend_from_slice(&["--interface", "127.0.0.2"]);
    let direct = gw.curl_plain(&image, "/cgi-bin/echo", &args).await;
    assert_eq!(direct.status, 200, "{direct:?}");
    assert_eq!(
        direct.line("X-Forwarded-For"),
        Some("127.0.0.2"),
        "{}",
        direct.body
    );
    assert_eq!(direct.line("X-Forwarded-Proto"), Some("http"));
    // One user, one container, whichever listener the requests came through.
    assert_eq!(via_lb.line("hostname"), direct.line("hostname"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_pages_for_unknown_images_hosts_groups_and_strangers() {
    let gw = gateway(&[("orca.access.groups", "admins")]).await;
    let unknown = gw
        .curl("no-such-image", "/", &["-H", "x-user: alice"])
        .await;
    assert_eq!(unknown.status, 404, "{unknown:?}");
    assert!(unknown.body.contains("there is no image named"));

    let foreign = tokio::process::Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "--resolve"])
        .arg(format!("evil.example:{}:127.0.0.1", gw.port))
        .arg(format!("https://evil.example:{}/", gw.port))
        .output()
        .await
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&foreign.stdout), "404");

    let image = gw.image.clone();
    let alice = gw.curl(&image, "/", &["-H", "x-user: alice"]).await;
    assert_eq!(alice.status, 403, "{alice:?}");
    assert!(alice.body.contains("orca.access.groups"), "{}", alice.body);
    assert!(
        gw.scheduler.status().containers.is_empty(),
        "no container for a refused user"
    );

    // No identity, and a script rather than a browser: 401, not a login redirect.
    let stranger = gw.curl(&image, "/", &[]).await;
    assert_eq!(stranger.status, 401, "{stranger:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_form_sets_the_session_cookie_and_logout_ends_it() {
    let gw = gateway(&[("orca.access.groups", "admins")]).await;
    let image = gw.image.clone();
    // A browser without identity is sent to the login form, with the way back.
    let nav = gw
        .curl(&image, "/cgi-bin/echo", &["-H", "Accept: text/html"])
        .await;
    assert_eq!(nav.status, 303, "{nav:?}");
    assert!(
        nav.headers
            .to_ascii_lowercase()
            .contains("location: /.orca/login?back=/cgi-bin/echo"),
        "{}",
        nav.headers
    );
    let form = gw
        .curl(&image, "/.orca/login?back=/cgi-bin/echo", &[])
        .await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("name=\"password\""));

    let wrong = gw
        .curl(
            &image,
            "/.orca/login",
            &["--data", "user=carol&password=nope&back=%2Fcgi-bin%2Fecho"],
        )
        .await;
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert!(wrong.body.contains("Wrong user name or password."));

    let jar = tempfile::tempdir().unwrap();
    let jar = jar.path().join("cookies");
    let jar = jar.to_str().unwrap();
    let ok = gw
        .curl(
            &image,
            "/.orca/login",
            &[
                "-c",
                jar,
                "--data",
                "user=carol&password=s3cret&back=%2Fcgi-bin%2Fecho",
            ],
        )
        .await;
    assert_eq!(ok.status, 303, "{ok:?}");
    let headers = ok.headers.to_ascii_lowercase();
    assert!(
        headers.contains("location: /cgi-bin/echo"),
        "{}",
        ok.headers
    );
    assert!(
        headers.contains("set-cookie: orca_session=v1.")
            && headers.contains("secure")
            && headers.contains("httponly")
            && headers.contains("samesite=lax"),
        "{}",
        ok.headers
    );

    // With the cookie: carol (group admins) reaches her container; the cookie stays here.
    let app = gw.curl(&image, "/cgi-bin/echo", &["-b", jar]).await;
    assert_eq!(app.status, 200, "{app:?}");
    assert_eq!(app.line("X-Orca-User"), Some("carol"));
    assert_eq!(app.line("X-Orca-Groups"), Some("admins"));
    assert!(!app.body.contains("orca_session"), "{}", app.body);
    // The cookie's answer is cached: the next request is identified from the headers alone.
    let cached = |gw: &Gateway| {
        gw.metrics
            .render()
            .lines()
            .find(|l| {
                l.starts_with("orca_resolver_calls_total")
                    && l.contains("resolver=\"sessions\"")
                    && l.contains("result=\"cached\"")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = cached(&gw);
    let again = gw.curl(&image, "/cgi-bin/echo", &["-b", jar]).await;
    assert_eq!(again.line("X-Orca-User"), Some("carol"), "{again:?}");
    assert_eq!(cached(&gw), before + 1, "{}", gw.metrics.render());

    // Logout clears the cookie and the session is refused afterwards, even if replayed.
    let cookie_line = std::fs::read_to_string(jar).unwrap();
    let value = cookie_line
        .lines()
        .find(|l| l.contains("orca_session"))
        .and_then(|l| l.split('\t').next_back())
        .expect("the jar holds the session")
        .to_string();
    let out = gw.curl(&image, "/.orca/logout", &["-b", jar]).await;
    assert_eq!(out.status, 303, "{out:?}");
    assert!(
        out.headers.contains("orca_session=; Max-Age=0"),
        "{}",
        out.headers
    );
    let replay = gw
        .curl(
            &image,
            "/cgi-bin/echo",
            &["-H", &format!("Cookie: orca_session={value}")],
        )
        .await;
    assert_eq!(
        replay.status, 401,
        "a revoked cookie must not work: {replay:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_gets_the_waiting_page_which_follows_the_phases() {
    let gw = gateway(&[]).await;
    let image = gw.image.clone();
    let page = gw
        .curl(
            &image,
            "/",
            &["-H", "x-user: dora", "-H", "Accept: text/html"],
        )
        .await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("Starting"), "{}", page.body);
    assert!(
        page.headers
            .to_ascii_lowercase()
            .contains("cache-control: no-store")
    );
    // The page's script long-polls /.orca/wait until the phase is `ready`.
    let mut last = "queued".to_string();
    for _ in 0..20 {
        let poll = gw
            .curl(
                &image,
                &format!("/.orca/wait?after={last}"),
                &["-H", "x-user: dora"],
            )
            .await;
        assert_eq!(poll.status, 200, "{poll:?}");
        let v: serde_json::Value = serde_json::from_str(&poll.body).expect("json");
        last = v["phase"].as_str().unwrap_or_default().to_string();
        if last == "ready" {
            break;
        }
        assert_ne!(last, "failed", "{}", poll.body);
    }
    assert_eq!(last, "ready");
    let app = gw
        .curl(
            &image,
            "/cgi-bin/echo",
            &["-H", "x-user: dora", "-H", "Accept: text/html"],
        )
        .await;
    assert_eq!(app.status, 200);
    assert_eq!(app.line("X-Orca-User"), Some("dora"));
}

/// An upgraded stream (what a WebSocket is after its handshake) through TLS, the front and the
/// proxy to a container that echoes bytes after answering 101.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_stream_is_relayed_both_ways() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let gw = gateway_of("upgrade", &[]).await;
    let host = format!("{}.localhost", gw.image);
    let mut tls = gw.connect_tls().await;
    let request = format!(
        "GET /echo HTTP/1.1\r\nHost: {host}:{}\r\nx-user: erin\r\nConnection: Upgrade\r\n\
         Upgrade: echo\r\n\r\n",
        gw.port
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(60), tls.read(&mut byte))
            .await
            .expect("the 101 arrives")
            .unwrap();
        assert_eq!(n, 1, "closed before the end of the response head: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // Echo, in several rounds and one large write, both ways through the relay.
    for round in 0..3 {
        let msg = format!("hello {round}\n");
        tls.write_all(msg.as_bytes()).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(10), tls.read_exact(&mut back))
            .await
            .expect("the echo arrives")
            .unwrap();
        assert_eq!(back, msg.as_bytes());
    }
    let big = vec![b'x'; 256 * 1024];
    let (mut rd, mut wr) = tokio::io::split(tls);
    let writer = tokio::spawn(async move {
        wr.write_all(&big).await.unwrap();
        wr
    });
    let mut back = vec![0u8; 256 * 1024];
    tokio::time::timeout(Duration::from_secs(30), rd.read_exact(&mut back))
        .await
        .expect("256 KiB echoed")
        .unwrap();
    assert!(back.iter().all(|&b| b == b'x'));
    drop(writer.await.unwrap());
    assert_eq!(gw.scheduler.status().containers.len(), 1);
}
