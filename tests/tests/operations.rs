//! Operating the real `orca` binary (`orca serve --config FILE` in a child process): a
//! `kill -9` in the middle of use and a restart that adopts the running containers; metrics
//! scraped during real HTTPS and SSH traffic, checked by `promtool`; and SIGHUP reloads of a
//! certificate and a resolver plugin under open WebSocket and SSH sessions.

use std::collections::BTreeSet;

use orca_tests::serve::{Orca, ServeOptions};
use orca_tests::ssh::text;
use orca_tests::{app::app_image, build_image, docker, unique_name};

/// Builds the test app as web image `name` (`<name>.localhost`), whose containers wait ten
/// minutes for users rather than two seconds, so nothing stops while a test looks.
fn web_image(name: &str) -> String {
    app_image(
        &format!("{name}:latest"),
        &[("orca.name", name), ("orca.timeout.linger", "10m")],
    )
    .expect("the app image builds");
    name.to_string()
}

/// Builds the busybox SSH image as `name`, its users kept bound between connections.
fn ssh_image(name: &str) -> String {
    build_image(
        "ssh",
        &format!("{name}:latest"),
        &[
            ("orca.name", name),
            ("orca.container.persistBetweenReconnects", "true"),
            ("orca.timeout.linger", "10m"),
        ],
    )
    .expect("the ssh image builds");
    name.to_string()
}

/// The `hostname:` line of the test app's `/` page: the serving container's short id.
fn app_hostname(body: &str) -> String {
    body.lines()
        .find_map(|l| l.strip_prefix("hostname: "))
        .unwrap_or_else(|| panic!("no hostname in the app's answer: {body}"))
        .to_string()
}

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

    // kill -9: no shutdown code runs; the containers keep running without their gateway.
    orca.kill9().await.unwrap();
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

    // Nothing leaked and nothing was lost: Docker holds exactly the containers the API lists.
    let api = orca.api_container_names().await.unwrap();
    assert_eq!(api.into_iter().collect::<BTreeSet<_>>(), before);
    assert_eq!(
        orca.docker_container_names()
            .into_iter()
            .collect::<BTreeSet<_>>(),
        before
    );

    // The restarted gateway counts the adopted containers and its users, launched nothing,
    // and counts the new traffic.
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
    // users, and bob's login in each run.
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
    assert_eq!(bob_logins, 2, "one login per run: {audit:#?}");

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
    orca.sigterm().await.unwrap();
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
