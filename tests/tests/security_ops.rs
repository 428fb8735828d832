//! Security at the gateway's other doors: SSH login names that try to reach another user's
//! container (OpenSSH, and russh for the names OpenSSH will not send), the admin API of the
//! real `orca` binary with a token set, and `testssl.sh` against the HTTPS listener. The HTTPS
//! front's cookies, hosts and headers are in `security.rs`.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use orca_tests::gateway::gateway_of;
use orca_tests::serve::{Orca, ServeOptions};
use orca_tests::ssh::{SshGateway, SshOptions, Trusting, text};
use orca_tests::{app::app_image, artifacts_dir, build_image, docker, unique_name};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_login_name_tricks_never_reach_another_users_container() {
    let shell = unique_name("ssh");
    build_image(
        "ssh",
        &format!("{shell}:latest"),
        &[
            ("orca.name", shell.as_str()),
            ("orca.container.persistBetweenReconnects", "true"),
        ],
    )
    .expect("the ssh image builds");
    let gw = SshGateway::start(SshOptions::default()).await;
    gw.scheduler.refresh_catalogue().await.unwrap();
    let (alice, bob) = (gw.user_key("alice"), gw.user_key("bob"));
    let a = gw
        .ssh(&alice, &format!("alice+{shell}"), "hostname", b"")
        .await;
    let b = gw.ssh(&bob, &format!("bob+{shell}"), "hostname", b"").await;
    assert_eq!(a.status.code(), Some(0), "{}", text(&a));
    assert_eq!(b.status.code(), Some(0), "{}", text(&b));
    let (home, bobs) = (stdout(&a), stdout(&b));
    assert_ne!(home, bobs);

    // With alice's key, every name that is not `alice+<image>` is refused before a shell.
    let tricks = [
        format!("bob+{shell}"),
        format!("bob+alice+{shell}"),
        format!("alice+bob+{shell}"),
        format!("alice+{shell}+{shell}"),
        format!("alice++{shell}"),
        format!("+bob+{shell}"),
        format!("\u{0430}lice+{shell}"), // Cyrillic а
        format!("alic\u{0435}+{shell}"), // Cyrillic е
        format!("ALICE+{shell}"),
        format!("alice\u{200b}+{shell}"), // zero-width space
        format!("{}+{shell}", "a".repeat(300)),
        format!("../alice+{shell}"),
        format!("../keys/alice+{shell}"),
        format!("alice/../bob+{shell}"),
        format!("..+{shell}"),
        format!("alice%2b{shell}"),
        format!("alice%00+{shell}"),
        format!("%u+{shell}"),
        format!("bob+../{shell}"),
    ];
    for login in &tricks {
        let out = gw.ssh(&alice, login, "hostname", b"").await;
        assert_eq!(out.status.code(), Some(255), "{login:?}: {}", text(&out));
        assert!(stdout(&out).is_empty(), "{login:?}: {}", text(&out));
    }
    // Logged in as alice but naming an image that is not one: no container at all.
    for login in ["alice+bob".to_string(), format!("alice+{}", bobs.trim())] {
        let out = gw.ssh(&alice, &login, "hostname", b"").await;
        assert_eq!(out.status.code(), Some(255), "{login}: {}", text(&out));
        assert!(
            !stdout(&out).contains(bobs.trim()),
            "{login}: {}",
            text(&out)
        );
    }
    // Control characters, which OpenSSH refuses to send, through russh.
    for login in [
        format!("bob\0+{shell}"),
        format!("alice\n+{shell}"),
        format!("bob\r\nalice+{shell}"),
        format!("alice\t+{shell}"),
        format!("bob\u{1b}[2K+{shell}"),
    ] {
        assert!(
            !russh_login(&gw, &alice, &login).await,
            "{login:?} logged in"
        );
    }

    // Nothing moved: alice and bob each still have their one container.
    let again = gw
        .ssh(&alice, &format!("alice+{shell}"), "hostname", b"")
        .await;
    assert_eq!(stdout(&again), home, "{}", text(&again));
    let mut users: Vec<(String, usize)> = gw
        .scheduler
        .status()
        .containers
        .iter()
        .flat_map(|c| c.users.iter().map(move |u| (u.user.clone(), c.users.len())))
        .collect();
    users.sort();
    assert_eq!(users, [("alice".into(), 1), ("bob".into(), 1)]);
}

/// Whether the gateway accepts `login` with the private key at `key`, asked by russh.
async fn russh_login(gw: &SshGateway, key: &Path, login: &str) -> bool {
    let key = russh::keys::load_secret_key(key, None).expect("the key");
    let config = std::sync::Arc::new(russh::client::Config::default());
    let mut client = russh::client::connect(config, ("127.0.0.1", gw.port), Trusting)
        .await
        .expect("the client connects");
    let key = russh::keys::PrivateKeyWithHashAlg::new(std::sync::Arc::new(key), None);
    match client.authenticate_publickey(login, key).await {
        Ok(auth) => auth.success(),
        Err(_) => false,
    }
}

/// `method path` on the admin listener with `headers`: (status, body).
async fn admin(orca: &Orca, method: &str, path: &str, headers: &[String]) -> (u16, String) {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "30",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ]);
    for h in headers {
        cmd.arg("-H").arg(h);
    }
    let out = cmd
        .arg(format!("http://127.0.0.1:{}{path}", orca.admin_port))
        .output()
        .await
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_refuses_every_request_without_its_exact_bearer_token() {
    let web = unique_name("web");
    app_image(
        &format!("{web}:latest"),
        &[("orca.name", web.as_str()), ("orca.timeout.linger", "10m")],
    )
    .expect("the app image builds");
    let mut orca = Orca::configure(&ServeOptions::default()).expect("config");
    orca.start(&[]).await.expect("orca serve starts");
    let jar = orca.scratch.join("cookies");
    let (code, body) = orca.https_get(&web, "/", &jar, &[]).await.unwrap();
    assert_eq!(code, 200, "{body}");
    let sessions = orca.sessions(&web).await.unwrap();
    let [(user, container)] = sessions.as_slice() else {
        panic!("one anonymous session: {sessions:?}");
    };
    let token = orca.token.clone();
    let wrong_same_length: String = token
        .chars()
        .map(|c| if c == 'x' { 'y' } else { 'x' })
        .collect();
    let bad = [
        vec![],
        vec![format!("Authorization: Bearer {wrong_same_length}")],
        vec![format!("Authorization: Bearer {token}x")],
        vec![format!(
            "Authorization: Bearer {}",
            &token[..token.len() - 1]
        )],
        vec!["Authorization: Bearer".to_string()],
        vec![format!("Authorization: Basic {}", STANDARD.encode(&token))],
        vec![format!(
            "Authorization: Basic {}",
            STANDARD.encode(format!("admin:{token}"))
        )],
        vec![format!("Authorization: {token}")],
        vec![format!("X-Auth-Token: {token}")],
        vec![format!("Cookie: token={token}")],
    ];
    let user_path = user.replace('%', "%25").replace('/', "%2F");
    let end_session = format!("/api/v1/sessions/{web}/{user_path}");
    let stop = format!("/api/v1/containers/{container}/stop");
    for headers in &bad {
        for (method, path) in [
            ("GET", "/api/v1/sessions".to_string()),
            ("GET", "/api/v1/containers".to_string()),
            ("GET", "/metrics".to_string()),
            ("GET", format!("/api/v1/sessions?token={token}")),
            ("GET", format!("/api/v1/sessions?access_token={token}")),
            ("DELETE", end_session.clone()),
            ("DELETE", format!("{end_session}?access_token={token}")),
            ("POST", stop.clone()),
        ] {
            let (code, body) = admin(&orca, method, &path, headers).await;
            assert_eq!(code, 401, "{method} {path} with {headers:?}: {body}");
            assert!(!body.contains(user.as_str()), "{method} {path}: {body}");
        }
    }
    // Nothing changed: the session and its running container are still there.
    assert_eq!(orca.sessions(&web).await.unwrap(), sessions);
    let running = docker(&["inspect", "--format", "{{.State.Running}}", container]).unwrap();
    assert_eq!(running.trim(), "true");
    assert_eq!(
        orca.healthz().await.unwrap(),
        200,
        "/healthz needs no token"
    );

    // The right token ends the session and stops the container.
    let right = [format!("Authorization: Bearer {token}")];
    let (code, body) = admin(&orca, "DELETE", &end_session, &right).await;
    assert!((200..300).contains(&code), "{code}: {body}");
    assert!(orca.sessions(&web).await.unwrap().is_empty());
    let (code, body) = admin(&orca, "POST", &stop, &right).await;
    assert!((200..300).contains(&code), "{code}: {body}");
}

/// The one HIGH finding that is about the test's certificate rather than the gateway's TLS:
/// the leaves of the self-signed authority Orca generates for development name no CRL or OCSP
/// responder, since there is none for a private authority minted on this machine. Production
/// certificates (`[https] cert`) come from a CA that publishes them.
const NOT_APPLICABLE: &str = "cert_revocation";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testssl_finds_nothing_high_or_critical_on_the_https_port() {
    let gw = gateway_of("web", &[]).await;
    let dir = artifacts_dir("testssl_finds_nothing_high_or_critical_on_the_https_port").unwrap();
    let json = dir.join("testssl.json");
    let log = dir.join("testssl.log");
    // testssl refuses to overwrite an earlier run's file.
    let _ = std::fs::remove_file(&json);
    let host = format!("{}.localhost", gw.image);
    let mut cmd = tokio::process::Command::new("testssl");
    cmd.args(["--quiet", "--color", "0", "--warnings", "off"])
        // Offline and on loopback: no DNS, no revocation lookups, the gateway's own CA.
        .args(["--nodns", "none", "--ip", "127.0.0.1"])
        .arg("--add-ca")
        .arg(&gw.ca)
        .args(["--openssl-timeout", "10", "--connect-timeout", "10"])
        // Everything but the long client simulation and the per-cipher listings.
        .args(["--protocols", "--std", "--fs", "--server-preference"])
        .args(["--server-defaults", "--headers", "--vulnerable"])
        .arg("--jsonfile")
        .arg(&json)
        .arg(format!("https://{host}:{}/", gw.port))
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(900), cmd.output())
        .await
        .expect("testssl finishes within 15 minutes")
        .expect("testssl runs (scripts/setup installs testssl.sh)");
    std::fs::write(&log, &out.stdout).unwrap();
    let findings: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(&json)
            .unwrap_or_else(|e| panic!("no {}: {e}; {}", json.display(), text_of(&out))),
    )
    .expect("testssl's JSON");
    assert!(
        findings.len() > 20,
        "testssl reported almost nothing: {findings:?}"
    );
    // The checks this test relies on ran, on the gateway's own chain.
    for (id, finding) in [
        ("cert_chain_of_trust", "passed."),
        ("cipher_order", "server"),
    ] {
        assert!(
            findings
                .iter()
                .any(|f| f["id"] == id && f["finding"] == finding),
            "no {id} = {finding:?} in {}",
            json.display()
        );
    }
    let serious: Vec<String> = findings
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("HIGH" | "CRITICAL")))
        .filter(|f| f["id"] != NOT_APPLICABLE)
        .map(|f| format!("{} {}: {}", f["severity"], f["id"], f["finding"]))
        .collect();
    assert!(
        serious.is_empty(),
        "testssl rates these HIGH or CRITICAL (full report in {}):\n{}",
        json.display(),
        serious.join("\n")
    );
}

fn text_of(out: &std::process::Output) -> String {
    format!(
        "status {:?}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
