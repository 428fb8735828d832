//! Operating the real `orca` binary (`orca serve --config FILE` in a child process, through
//! `orca_tests::serve`): a `kill -9` in the middle of use, and one in the middle of a launch,
//! then a restart that adopts the running containers and leaks none; metrics scraped during
//! real HTTPS and SSH traffic, checked by `promtool`; SIGHUP reloads of a certificate, a
//! resolver plugin and the admin token under open WebSocket and SSH sessions; and SIGTERM's
//! drain.
//!
//! The binary is `<target>/debug/orca` as `cargo test --workspace --all-targets` leaves it;
//! `cargo test -p orca-tests` alone does not rebuild it (`cargo build -p orca-gateway --bin
//! orca` does).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, pem::PemObject};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;

use orca_tests::serve::{Orca, ServeOptions, SshSession, app_hostname, ssh_image, web_image};
use orca_tests::ssh::text;
use orca_tests::tls::connect_trusting;
use orca_tests::{build_image, docker, plugins, unique_name, wait_for};

/// The full id of the Docker container `name`.
fn container_id(name: &str) -> String {
    docker(&["inspect", "--format", "{{.Id}}", name])
        .unwrap_or_else(|e| panic!("container {name}: {e}"))
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_use_then_restart_users_reach_the_same_containers_and_nothing_leaks() {
    let web = web_image(&unique_name("web"));
    let shell = ssh_image(&unique_name("shell"));
    let mut orca = Orca::configure(&ServeOptions::default()).expect("config");
    let key = orca.user_key("bob").expect("bob's key");
    let jar = orca.scratch.join("cookies");
    let bob = format!("bob+{shell}");
    orca.start(&[]).await.expect("orca serve starts");

    // An anonymous HTTPS user and bob over SSH each get a container.
    let (code, body) = orca.https_get(&web, "/", &jar, &[]).await.unwrap();
    assert_eq!(code, 200, "{body}");
    let web_host = app_hostname(&body);
    let out = orca.ssh(&key, &bob, "hostname").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shell_host = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let web_sessions = orca.sessions(&web).await.unwrap();
    let shell_sessions = orca.sessions(&shell).await.unwrap();
    assert_eq!(web_sessions.len(), 1, "{web_sessions:?}");
    assert_eq!(shell_sessions.len(), 1, "{shell_sessions:?}");
    assert_eq!(shell_sessions[0].0, "bob");
    let (web_user, web_container) = web_sessions[0].clone();
    let shell_container = shell_sessions[0].1.clone();
    // The API's containers are the ones that answered.
    let web_id = container_id(&web_container);
    let shell_id = container_id(&shell_container);
    assert!(web_id.starts_with(&web_host), "{web_id} vs {web_host}");
    assert!(
        shell_id.starts_with(&shell_host),
        "{shell_id} vs {shell_host}"
    );

    // kill -9 while bob has a session open: no shutdown code runs; his client loses the
    // connection and the containers keep running without their gateway.
    let mut open = SshSession::open(&orca, &key, &bob);
    assert_eq!(open.echo("in use").await, "in use");
    orca.kill9().await.unwrap();
    assert_eq!(
        open.echo("gone").await,
        "",
        "the session ends with the gateway"
    );
    drop(open);
    let before: BTreeSet<String> = [web_container.clone(), shell_container.clone()].into();
    assert_eq!(
        orca.docker_container_names()
            .into_iter()
            .collect::<BTreeSet<_>>(),
        before
    );

    // The next start adopts them, and each user reaches the same container as before.
    orca.restart(&["--cleanup-on-exit"]).await.expect("restart");
    let (code, body) = orca.https_get(&web, "/", &jar, &[]).await.unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(app_hostname(&body), web_host, "the web user's container");
    let out = orca.ssh(&key, &bob, "hostname").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), shell_host);
    assert_eq!(
        orca.sessions(&web).await.unwrap(),
        vec![(web_user.clone(), web_container.clone())]
    );
    assert_eq!(
        orca.sessions(&shell).await.unwrap(),
        vec![("bob".to_string(), shell_container.clone())]
    );
    assert_eq!(container_id(&web_container), web_id);
    assert_eq!(container_id(&shell_container), shell_id);
    // The session the kill cut off is not counted as still open.
    let sessions = orca.api_json("/api/v1/sessions").await.unwrap();
    let bob_now = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["user"] == "bob")
        .cloned()
        .expect("bob's session");
    assert_eq!(bob_now["connections"], 0, "{bob_now}");

    // Nothing leaked and nothing was lost: Docker holds exactly the containers the API lists.
    let api = orca.api_container_names().await.unwrap();
    assert_eq!(api.into_iter().collect::<BTreeSet<_>>(), before);
    assert_eq!(
        orca.docker_container_names()
            .into_iter()
            .collect::<BTreeSet<_>>(),
        before
    );

    // The restarted gateway counts the adopted containers (its gauges follow the state at
    // each sweep) and its users, launched nothing, and counts the new traffic.
    for image in [&web, &shell] {
        let ready = format!("image=\"{image}\",state=\"ready\"");
        orca.wait_metric("orca_containers", &ready, 1.0)
            .await
            .unwrap();
    }
    let metrics = orca.metrics().await.unwrap();
    let sample = |name: &str, labels: &str| orca_tests::serve::sample(&metrics, name, labels);
    for image in [&web, &shell] {
        assert_eq!(
            sample(
                "orca_containers",
                &format!("image=\"{image}\",state=\"ready\"")
            ),
            Some(1.0),
            "{metrics}"
        );
        assert_eq!(
            sample("orca_users", &format!("image=\"{image}\"")),
            Some(1.0),
            "{metrics}"
        );
        assert_eq!(
            sample(
                "orca_container_starts_total",
                &format!("image=\"{image}\",result=\"ok\"")
            )
            .unwrap_or(0.0),
            0.0,
            "adopted, not launched: {metrics}"
        );
    }
    assert!(
        sample("orca_connections_total", "listener=\"https\"").unwrap_or(0.0) >= 1.0,
        "{metrics}"
    );
    assert!(
        sample("orca_connections_total", "listener=\"ssh\"").unwrap_or(0.0) >= 1.0,
        "{metrics}"
    );

    // The audit log holds both runs, every line JSON: the first run's session starts for both
    // users, and bob's logins of both runs.
    let audit = orca.audit().expect("every audit line is JSON");
    let starts: Vec<_> = audit
        .iter()
        .filter(|r| r["event"] == "session_start")
        .collect();
    assert!(
        starts.iter().any(|r| r["user"] == web_user.as_str()
            && r["image"] == web.as_str()
            && r["container"] == web_container.as_str()
            && r["protocol"] == "https"),
        "{audit:#?}"
    );
    assert!(
        starts.iter().any(|r| r["user"] == "bob"
            && r["image"] == shell.as_str()
            && r["container"] == shell_container.as_str()
            && r["protocol"] == "ssh"),
        "{audit:#?}"
    );
    let bob_logins = audit
        .iter()
        .filter(|r| {
            r["event"] == "login"
                && r["user"] == "bob"
                && r["protocol"] == "ssh"
                && r["result"] == "accepted"
        })
        .count();
    assert_eq!(
        bob_logins, 3,
        "two logins before the kill, one after the restart: {audit:#?}"
    );

    // Both runs logged JSON lines only, the killed one included.
    let logs = orca.log_records().expect("every log line is JSON");
    assert!(
        logs.iter()
            .any(|r| r["fields"]["message"] == "orca is running"),
        "{}",
        orca.logs()
    );

    // The operator ends bob's restored session: its end is audited with the time since his
    // first run's login, not since the restart.
    let (code, body) = orca
        .admin_request("DELETE", &format!("/api/v1/sessions/{shell}/bob"))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let audit = orca.audit().unwrap();
    let end = audit
        .iter()
        .find(|r| r["event"] == "session_end" && r["user"] == "bob")
        .unwrap_or_else(|| panic!("no session_end for bob: {audit:#?}"));
    assert_eq!(end["container"], shell_container.as_str(), "{end}");
    assert!(
        end["bytes_out"].as_u64().unwrap_or(0) > 0,
        "his first run's bytes are kept: {end}"
    );
    // And stops the web container: it is gone from Docker and from the API.
    let (code, body) = orca
        .admin_request("POST", &format!("/api/v1/containers/{web_container}/stop"))
        .await
        .unwrap();
    assert_eq!(code, 202, "accepted, stopping: {body}");
    wait_for(
        "the stopped container to go",
        Duration::from_secs(30),
        || async { (!orca.docker_container_names().contains(&web_container)).then_some(()) },
    )
    .await
    .unwrap();
    assert!(
        !orca
            .api_container_names()
            .await
            .unwrap()
            .contains(&web_container),
        "the API still lists the stopped container"
    );

    // SIGTERM with --cleanup-on-exit: the gateway exits cleanly and removes its containers.
    let code = orca.sigterm().await.unwrap();
    assert_eq!(code, Some(0), "{}", orca.logs());
    assert_eq!(
        orca.docker_container_names(),
        Vec::<String>::new(),
        "containers left after exit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_during_real_traffic_pass_promtool_and_count_what_happened() {
    let web = web_image(&unique_name("web"));
    let shell = ssh_image(&unique_name("shell"));
    let mut orca = Orca::configure(&ServeOptions::default()).expect("config");
    let key = orca.user_key("carol").expect("carol's key");
    let stranger = orca.client_key("mallory");
    let jar = orca.scratch.join("cookies");
    orca.start(&[]).await.expect("orca serve starts");

    // HTTPS: three pages of the web image, one for an image that does not exist.
    for _ in 0..3 {
        let (code, body) = orca.https_get(&web, "/", &jar, &[]).await.unwrap();
        assert_eq!(code, 200, "{body}");
    }
    let missing = unique_name("nosuch");
    let (code, body) = orca.https_get(&missing, "/", &jar, &[]).await.unwrap();
    assert_eq!(code, 404, "{body}");
    // SSH: one command, and one login with a key no resolver knows.
    let out = orca.ssh(&key, &format!("carol+{shell}"), "echo hi").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    let out = orca
        .ssh(&stranger, &format!("carol+{shell}"), "echo hi")
        .await;
    assert_eq!(out.status.code(), Some(255), "{}", text(&out));

    // The token guards /metrics, not /healthz.
    assert_eq!(orca.admin_get("/metrics", false).await.unwrap().0, 401);
    assert_eq!(orca.healthz().await.unwrap(), 200);

    // promtool finds the exposition valid and has nothing to lint.
    let metrics = orca.metrics().await.unwrap();
    let check = promtool_check(&metrics);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    assert!(
        check.stdout.is_empty() && check.stderr.is_empty(),
        "promtool has complaints:\n{}",
        text(&check)
    );

    // The counters moved by what happened.
    let sample =
        |name: &str, labels: &str| orca_tests::serve::sample(&metrics, name, labels).unwrap_or(0.0);
    let logins = |result: &str| {
        sample(
            "orca_ssh_logins_total",
            &format!("method=\"publickey\",result=\"{result}\""),
        )
    };
    assert!(logins("accepted") >= 1.0, "{metrics}");
    assert!(logins("refused") >= 1.0, "{metrics}");
    assert!(
        sample(
            "orca_http_requests_total",
            "code=\"2xx\",listener=\"https\""
        ) >= 3.0,
        "{metrics}"
    );
    assert!(
        sample(
            "orca_http_requests_total",
            "code=\"4xx\",listener=\"https\""
        ) >= 1.0,
        "{metrics}"
    );
    assert!(
        sample("orca_connections_total", "listener=\"https\"") >= 1.0,
        "{metrics}"
    );
    assert!(
        sample("orca_connections_total", "listener=\"ssh\"") >= 2.0,
        "{metrics}"
    );
    for image in [&web, &shell] {
        assert!(
            sample(
                "orca_proxied_bytes_total",
                &format!("direction=\"to_client\",image=\"{image}\"")
            ) > 0.0,
            "{metrics}"
        );
        assert_eq!(
            sample(
                "orca_container_starts_total",
                &format!("image=\"{image}\",result=\"ok\"")
            ),
            1.0,
            "{metrics}"
        );
    }
    assert!(
        sample(
            "orca_container_start_duration_seconds_count",
            "phase=\"total\""
        ) >= 2.0,
        "{metrics}"
    );

    // The audit log has carol's accepted login and the refused one.
    let audit = orca.audit().expect("every audit line is JSON");
    for result in ["accepted", "refused"] {
        assert!(
            audit.iter().any(|r| r["event"] == "login"
                && r["protocol"] == "ssh"
                && r["user"] == "carol"
                && r["method"] == "publickey"
                && r["result"] == result),
            "no {result} login: {audit:#?}"
        );
    }

    // `orca status` names the containers and their users.
    let status = std::process::Command::new(orca_tests::serve::orca_binary().unwrap())
        .arg("status")
        .arg("--config")
        .arg(&orca.config)
        .output()
        .expect("orca status runs");
    let said = text(&status);
    assert_eq!(status.status.code(), Some(0), "{said}");
    let web_sessions = orca.sessions(&web).await.unwrap();
    let shell_sessions = orca.sessions(&shell).await.unwrap();
    assert_eq!(web_sessions.len(), 1, "{web_sessions:?}");
    assert_eq!(
        shell_sessions,
        vec![("carol".to_string(), shell_sessions[0].1.clone())]
    );
    for (user, container) in web_sessions.iter().chain(&shell_sessions) {
        assert!(
            said.contains(container.as_str()),
            "{container} missing:\n{said}"
        );
        assert!(said.contains(user.as_str()), "{user} missing:\n{said}");
    }
    // SIGTERM without --cleanup-on-exit: a clean exit that leaves the containers for the next
    // start.
    let listed = orca.api_container_names().await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(orca.sigterm().await.unwrap(), Some(0), "{}", orca.logs());
    assert_eq!(orca.docker_container_names(), listed);
}

/// `promtool check metrics` fed `text` on stdin.
fn promtool_check(text: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (install Prometheus's promtool)");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    child.wait_with_output().expect("promtool finishes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_a_plugin_and_a_certificate_while_a_websocket_and_an_ssh_session_stay_open() {
    let web = web_image(&unique_name("web"));
    let shell = ssh_image(&unique_name("shell"));
    let passwords = plugins::rust_plugin("orca-fixture-passwords").expect("fixture builds");
    let hostile = plugins::rust_plugin("orca-fixture-hostile").expect("fixture builds");
    let dir = tempfile::tempdir().unwrap();
    let (certs, keys) = (dir.path().join("certs"), dir.path().join("keys"));
    std::fs::create_dir(&certs).unwrap();
    std::fs::create_dir(&keys).unwrap();
    let ca = Ca::new(&certs);
    let (cert, key) = (certs.join("orca.crt"), certs.join("orca.key"));
    let host = format!("{web}.localhost");
    ca.issue(&cert, &key, &host);
    // The first resolver is a plugin file the test replaces; before the reload it is the
    // passwords fixture, which does not speak HTTP (it passes), so HTTPS visitors fall through
    // to anonymous cookie sessions.
    let plugin = dir.path().join("resolver.wasm");
    replace_file(&plugin, &std::fs::read(&passwords).unwrap());
    let options = ServeOptions {
        https: format!(
            "cert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        ),
        ssh: String::new(),
        tail: format!(
            "[[resolver]]\nname = \"swap\"\nplugin = \"{}\"\n\
             [[resolver]]\nname = \"visitors\"\nplugin = \"bundled:cookie\"\n\
             config = {{ cookie = \"orca_session\", anonymous = \"true\" }}\n\
             [[resolver]]\nname = \"keys\"\nplugin = \"bundled:ssh-key\"\nfiles = \"{}\"\n",
            plugin.display(),
            keys.display()
        ),
    };
    let mut orca = Orca::configure(&options).expect("config");
    let erin = orca.client_key("erin");
    std::fs::copy(erin.with_extension("pub"), keys.join("erin.pub")).unwrap();
    orca.start(&[]).await.expect("orca serve starts");

    // The gateway presents the first certificate, which the test's CA signed.
    let first = fingerprint(&cert);
    assert_eq!(
        ca.presented(orca.https_port, &host).await,
        first,
        "the first certificate"
    );

    // A WebSocket to the app's echo, and an SSH session running `cat`, both left open.
    let mut ws = websocket(&ca.cert, orca.https_port, &host).await;
    ws.send(Message::text("before")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "before");
    let mut session = SshSession::open(&orca, &erin, &format!("erin+{shell}"));
    assert_eq!(session.echo("before").await, "before");

    // Before the reload an `x-user` header names nobody: dave gets an anonymous session.
    let probe = |n: u32| dir.path().join(format!("probe-{n}"));
    let (code, body) = orca
        .https_get(&web, "/", &probe(1), &["x-user: dave"])
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let users = users_of(&orca, &web).await;
    assert!(!users.contains("dave"), "{users:?}");

    // Replace the certificate and the plugin's file (the hostile fixture, whose `ok` mode
    // allows the `x-user` header), then SIGHUP.
    let second = certs.join("second.crt");
    let second_key = certs.join("second.key");
    ca.issue(&second, &second_key, &host);
    replace_file(&key, &std::fs::read(&second_key).unwrap());
    replace_file(&cert, &std::fs::read(&second).unwrap());
    replace_file(&plugin, &std::fs::read(&hostile).unwrap());
    // Log rotation: the audit log is moved away; the reload reopens it at its path.
    let rotated = orca.state.join("audit.log.1");
    std::fs::rename(orca.state.join("audit.log"), &rotated).unwrap();
    // The admin token is rotated too; the wait below asks with the new one.
    let old_token = std::mem::replace(&mut orca.token, unique_name("rotated"));
    replace_file(&orca.token_file, orca.token.as_bytes());
    reload(&orca, "ok", 1.0).await;
    let (code, _) = orca
        .admin_get_as("/metrics", Some(&old_token))
        .await
        .unwrap();
    assert_eq!(code, 401, "the old admin token after the reload");

    // The open sessions carry on.
    ws.send(Message::text("after")).await.unwrap();
    assert_eq!(
        next_text(&mut ws).await,
        "after",
        "the WebSocket after the reload"
    );
    assert_eq!(
        session.echo("after").await,
        "after",
        "the SSH session after the reload"
    );
    // New handshakes get the new certificate.
    assert_eq!(
        ca.presented(orca.https_port, &host).await,
        fingerprint(&second),
        "the second certificate"
    );
    assert_ne!(fingerprint(&second), first);
    // New calls go to the new plugin: the same request now logs dave in.
    let (code, body) = orca
        .https_get(&web, "/", &probe(2), &["x-user: dave"])
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let users = users_of(&orca, &web).await;
    assert!(users.contains("dave"), "{users:?}");
    // And new SSH logins still work.
    let out = orca
        .ssh(&erin, &format!("erin+{shell}"), "echo again")
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // A broken certificate fails the reload and leaves the second certificate in force.
    replace_file(&cert, b"-----BEGIN CERTIFICATE-----\nnot base64\n");
    reload(&orca, "failed", 1.0).await;
    assert_eq!(
        ca.presented(orca.https_port, &host).await,
        fingerprint(&second),
        "still the second certificate"
    );
    ws.send(Message::text("still")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "still");
    assert_eq!(session.echo("still").await, "still");
    assert_eq!(
        orca.metric("orca_reloads_total", "result=\"ok\"")
            .await
            .unwrap(),
        Some(1.0)
    );
    // A reload that fails late (a broken plugin beside a good new certificate) swaps in
    // nothing: the second certificate and the hostile plugin stay in force.
    let third = certs.join("third.crt");
    let third_key = certs.join("third.key");
    ca.issue(&third, &third_key, &host);
    replace_file(&key, &std::fs::read(&third_key).unwrap());
    replace_file(&cert, &std::fs::read(&third).unwrap());
    replace_file(&plugin, b"\0asm but not really");
    reload(&orca, "failed", 2.0).await;
    assert_eq!(
        ca.presented(orca.https_port, &host).await,
        fingerprint(&second),
        "no half reload: still the second certificate"
    );
    let (code, body) = orca
        .https_get(&web, "/", &probe(3), &["x-user: frank"])
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let users = users_of(&orca, &web).await;
    assert!(
        users.contains("frank"),
        "the hostile plugin still answers: {users:?}"
    );

    // The audit log was reopened: erin's first login is in the rotated file, her login after
    // the reload in the new one.
    let erin_logins = |text: &str| {
        text.lines()
            .filter(|l| l.contains("\"login\"") && l.contains("\"erin\""))
            .count()
    };
    let old_audit = std::fs::read_to_string(&rotated).unwrap();
    assert_eq!(erin_logins(&old_audit), 1, "{old_audit}");
    let new_audit = orca.audit().expect("every audit line is JSON");
    let new_logins = new_audit
        .iter()
        .filter(|r| r["event"] == "login" && r["user"] == "erin")
        .count();
    assert_eq!(new_logins, 1, "{new_audit:#?}");

    // The exposition after reloads, plugin calls and failures still passes promtool.
    let check = promtool_check(&orca.metrics().await.unwrap());
    assert!(
        check.status.success() && check.stdout.is_empty() && check.stderr.is_empty(),
        "{}",
        text(&check)
    );

    // The open gauges count the WebSocket and the SSH session until they close.
    for listener in ["https", "ssh"] {
        let open = orca
            .metric("orca_connections_open", &format!("listener=\"{listener}\""))
            .await
            .unwrap();
        assert!(open >= Some(1.0), "{listener}: {open:?}");
    }
    ws.close(None).await.unwrap();
    drop(ws);
    drop(session);
    for listener in ["https", "ssh"] {
        orca.wait_metric(
            "orca_connections_open",
            &format!("listener=\"{listener}\""),
            0.0,
        )
        .await
        .unwrap();
    }
    orca.sigterm().await.unwrap();
}

/// The users bound to containers of `image`.
async fn users_of(orca: &Orca, image: &str) -> BTreeSet<String> {
    orca.sessions(image)
        .await
        .expect("the sessions API answers")
        .into_iter()
        .map(|(user, _)| user)
        .collect()
}

/// Writes `bytes` to a new file beside `path` and renames it over `path`, as deploy tools do.
fn replace_file(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, bytes).expect("write the replacement");
    std::fs::rename(&tmp, path).expect("rename it over the file");
}

/// A certificate authority made with `openssl`, issuing certificates for `localhost` and
/// `*.localhost`, and trusted by the test's TLS client.
struct Ca {
    cert: PathBuf,
    key: PathBuf,
}

impl Ca {
    fn new(dir: &Path) -> Self {
        let (cert, key) = (dir.join("ca.crt"), dir.join("ca.key"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=orca test CA",
            "-keyout",
            &key.display().to_string(),
            "-out",
            &cert.display().to_string(),
        ]);
        Self { cert, key }
    }

    /// A new key and a certificate for it, signed by this CA. Besides `*.localhost` it names
    /// `host`: rustls refuses a wildcard directly under a single-label domain.
    fn issue(&self, cert: &Path, key: &Path, host: &str) {
        let csr = cert.with_extension("csr");
        let ext = cert.with_extension("ext");
        std::fs::write(
            &ext,
            format!(
                "subjectAltName=DNS:localhost,DNS:*.localhost,DNS:{host}\n\
                 basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .expect("write the extensions file");
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &key.display().to_string(),
            "-out",
            &csr.display().to_string(),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr.display().to_string(),
            "-CA",
            &self.cert.display().to_string(),
            "-CAkey",
            &self.key.display().to_string(),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &ext.display().to_string(),
            "-out",
            &cert.display().to_string(),
        ]);
    }

    /// A TLS connection to 127.0.0.1:`port` for `host`, trusting only this CA.
    /// The SHA-256 of the certificate a new handshake with 127.0.0.1:`port` for `host`
    /// presents, trusting only this CA.
    async fn presented(&self, port: u16, host: &str) -> Vec<u8> {
        let tls = connect_trusting(&self.cert, port, host).await;
        let certs = tls.get_ref().1.peer_certificates().expect("a certificate");
        Sha256::digest(certs[0].as_ref()).to_vec()
    }
}

/// SIGHUP, then waits until `orca_reloads_total{result}` reads `count`.
async fn reload(orca: &Orca, result: &str, count: f64) {
    orca.sighup().expect("SIGHUP reaches orca");
    orca.wait_metric("orca_reloads_total", &format!("result=\"{result}\""), count)
        .await
        .expect("the reload is counted");
}

fn openssl(args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
}

/// The SHA-256 of the certificate in a PEM file; empty when there is none.
fn fingerprint(pem: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(pem)
        .map(|c| Sha256::digest(c.as_ref()).to_vec())
        .unwrap_or_default()
}

type WebSocket = tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>;

/// A WebSocket to the app's echo at `wss://<host>/ws`, trusting the CA in the PEM file `ca`.
async fn websocket(ca: &Path, port: u16, host: &str) -> WebSocket {
    let tls = connect_trusting(ca, port, host).await;
    orca_tests::tls::websocket(tls, host, port, &[]).await
}

/// The next text message, skipping control frames.
async fn next_text(ws: &mut WebSocket) -> String {
    match orca_tests::tls::next_data(ws).await {
        Message::Text(t) => t.to_string(),
        other => panic!("a text message expected, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_launch_then_restart_leaves_exactly_the_containers_the_api_lists() {
    // The slow image answers only seconds after it starts, and `orca.ready` waits for that.
    let slow = unique_name("slow");
    build_image(
        "slow",
        &format!("{slow}:latest"),
        &[("orca.name", slow.as_str()), ("orca.timeout.linger", "10m")],
    )
    .expect("the slow image builds");
    let mut orca = Orca::configure(&ServeOptions::default()).expect("config");
    let jar = orca.scratch.join("cookies");
    orca.start(&[]).await.expect("orca serve starts");

    // A visitor's first request launches a container; kill -9 while it is not ready yet.
    let first = {
        let (orca_port, jar, slow) = (orca.https_port, jar.clone(), slow.clone());
        tokio::spawn(async move {
            tokio::process::Command::new("curl")
                .args(["-sk", "--max-time", "60", "-b"])
                .arg(&jar)
                .arg("-c")
                .arg(&jar)
                .arg("--resolve")
                .arg(format!("{slow}.localhost:{orca_port}:127.0.0.1"))
                .arg(format!("https://{slow}.localhost:{orca_port}/"))
                .output()
                .await
        })
    };
    let launching = wait_for(
        "a container of the launch",
        Duration::from_secs(30),
        || async {
            let names = orca.docker_container_names();
            (!names.is_empty()).then_some(names)
        },
    )
    .await
    .unwrap();
    let phases = orca.api_json("/api/v1/containers").await.unwrap();
    assert_ne!(
        phases["containers"][0]["phase"], "ready",
        "the kill must come before the container is ready: {phases}"
    );
    orca.kill9().await.unwrap();
    let _ = first.await;

    // After the restart the visitor is served, and Docker holds exactly what the API lists:
    // the launch cut short was adopted or removed, never left behind.
    orca.restart(&[]).await.expect("restart");
    let (code, body) = orca.https_get(&slow, "/", &jar, &[]).await.unwrap();
    assert_eq!(code, 200, "{body}");
    let settled = wait_for(
        "Docker and the API to agree",
        Duration::from_secs(30),
        || async {
            let api = orca.api_container_names().await.ok()?;
            (api == orca.docker_container_names()).then_some(api)
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}: docker {:?}, api {:?}",
            orca.docker_container_names(),
            futures_util::FutureExt::now_or_never(orca.api_container_names())
        )
    });
    assert_eq!(
        settled.len(),
        1,
        "one container serves the visitor: {settled:?} (launching: {launching:?})"
    );
    orca.sigterm().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_fails_healthz_ends_open_sessions_within_the_grace_and_exits_cleanly() {
    let web = web_image(&unique_name("web"));
    let shell = ssh_image(&unique_name("shell"));
    let mut orca = Orca::configure(&ServeOptions::default()).expect("config");
    let key = orca.user_key("gina").expect("gina's key");
    orca.start(&[]).await.expect("orca serve starts");
    let host = format!("{web}.localhost");
    let ca = orca.state.join("tls").join("self-signed.crt");
    let mut ws = websocket(&ca, orca.https_port, &host).await;
    ws.send(Message::text("open")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "open");
    let mut session = SshSession::open(&orca, &key, &format!("gina+{shell}"));
    assert_eq!(session.echo("open").await, "open");

    // SIGTERM: load balancers are told at once (/healthz 503) while the sessions drain.
    let t0 = std::time::Instant::now();
    orca.signal("TERM").unwrap();
    wait_for(
        "/healthz to answer 503",
        Duration::from_secs(10),
        || async { (orca.healthz().await.ok() == Some(503)).then_some(()) },
    )
    .await
    .unwrap();
    // The WebSocket and the SSH session are ended by the gateway after the 2 s grace.
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the WebSocket is still open 30 s after SIGTERM"
    );
    assert_eq!(session.echo("closed?").await, "", "the SSH session ends");
    let code = orca.wait_exit().await.unwrap();
    assert_eq!(code, Some(0), "{}", orca.logs());
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "the drain took {:?} with a 2 s grace",
        t0.elapsed()
    );
    // The containers stay for the next start.
    assert_eq!(orca.docker_container_names().len(), 2);
}
