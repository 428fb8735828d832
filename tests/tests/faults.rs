//! Faults against the real engine and the real `orca` binary: a container killed from outside
//! under an open WebSocket and SSH session; Docker slow, failing or resetting creates (through
//! the create-fault proxy of `orca_tests::docker_proxy`); an LDAP server that accepts and never
//! answers; a resolver plugin that spins; and a state directory that cannot be written, at
//! start and while serving. Each asserts what the users see and that no container leaked.
//! (`faults_dockerd.rs` restarts a private `dockerd` under connected users.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use orca_tests::docker_proxy::{CreateFault, DockerProxy};
use orca_tests::ldap::ldap;
use orca_tests::serve::{
    Orca, ServeOptions, SshSession, app_hostname, sample, ssh_image, web_image, web_image_on,
};
use orca_tests::ssh::{SshGateway, SshOptions, text};
use orca_tests::tls::{connect_trusting, next_data, websocket};
use orca_tests::{container_ids_with_label, docker, plugins, unique_name, wait_for};

/// The generous deadline against hangs for anything a user waits on.
const HANG: Duration = Duration::from_secs(60);

/// Asserts that Docker holds exactly the containers the gateway's API lists, then stops the
/// gateway with `--cleanup-on-exit` semantics already requested at start and asserts none is
/// left.
async fn assert_nothing_leaked(orca: &mut Orca) {
    let api: BTreeSet<String> = orca
        .api_container_names()
        .await
        .expect("the admin API lists the containers")
        .into_iter()
        .collect();
    let engine: BTreeSet<String> = orca.docker_container_names().into_iter().collect();
    assert_eq!(
        api, engine,
        "Docker holds exactly the containers the API lists"
    );
    let code = orca.sigterm().await.expect("the gateway exits");
    assert_eq!(code, Some(0), "{}", orca.logs());
    assert_eq!(
        orca.docker_container_names(),
        Vec::<String>::new(),
        "--cleanup-on-exit removed every container"
    );
}

/// The `event = session_end` records of the audit log for `container`.
fn session_ends(orca: &Orca, container: &str) -> Vec<serde_json::Value> {
    orca.audit()
        .expect("the audit log reads as JSON lines")
        .into_iter()
        .filter(|r| r["event"] == "session_end" && r["container"] == container)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_killed_from_outside_cuts_its_users_and_the_next_request_gets_a_new_one() {
    let web = web_image(&unique_name("web"));
    let shell = ssh_image(&unique_name("shell"));
    let mut orca = Orca::configure(&ServeOptions::default()).expect("config");
    let key = orca.user_key("hana").expect("hana's key");
    let hana = format!("hana+{shell}");
    let jar = orca.scratch.join("cookies");
    orca.start(&["--cleanup-on-exit"])
        .await
        .expect("orca serve starts");

    // An HTTPS user with an open WebSocket, and an SSH user with an open session.
    let web_host = orca.app_host(&web, &jar).await;
    let host = format!("{web}.localhost");
    let ca = orca.state.join("tls").join("self-signed.crt");
    let tls = connect_trusting(&ca, orca.https_port, &host).await;
    let mut ws = websocket(tls, &host, orca.https_port, &[]).await;
    ws.send(Message::text("before")).await.unwrap();
    assert_eq!(next_data(&mut ws).await.to_text().unwrap(), "before");
    let mut session = SshSession::open(&orca, &key, &hana);
    assert_eq!(session.echo("before").await, "before");
    let web_container = orca.sessions(&web).await.unwrap()[0].1.clone();
    let shell_container = orca.sessions(&shell).await.unwrap()[0].1.clone();

    // Someone kills both containers behind the gateway's back.
    docker(&["kill", &web_container]).unwrap();
    docker(&["kill", &shell_container]).unwrap();

    // Both users are cut off: the WebSocket closes, the SSH session ends.
    let closed = tokio::time::timeout(HANG, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the WebSocket is still open after the kill");
    assert_eq!(session.echo("after").await, "", "the SSH session ends");
    // The SSH user is told how: their shell's own status, killed (128 + SIGKILL), or, when the
    // engine's event wins the race, the gateway's "session ended" line and 254.
    let (status, said) = session.ended().await;
    assert!(
        status == Some(137) || (status == Some(254) && said.contains("your session ended")),
        "{status:?}: {said}"
    );

    // The next request, and the next login, get new containers.
    let (code, body) = wait_for("a new web container", HANG, || async {
        let (code, body) = orca.https_get(&web, "/", &jar, &[]).await.ok()?;
        (code == 200 && app_hostname(&body) != web_host).then_some((code, body))
    })
    .await
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let out = orca.ssh(&key, &hana, "echo again").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "again");
    let now_web = orca.sessions(&web).await.unwrap();
    let now_shell = orca.sessions(&shell).await.unwrap();
    assert!(
        now_web.iter().all(|(_, c)| *c != web_container),
        "{now_web:?}"
    );
    assert_eq!(now_shell.len(), 1, "{now_shell:?}");
    assert_ne!(now_shell[0].1, shell_container);

    // The audit log ended the sessions on the killed containers.
    let web_ends = session_ends(&orca, &web_container);
    assert!(!web_ends.is_empty(), "no session_end for {web_container}");
    let shell_ends = session_ends(&orca, &shell_container);
    assert_eq!(shell_ends.len(), 1, "{shell_ends:?}");
    assert_eq!(shell_ends[0]["user"], "hana");
    // The killed containers were removed, and nothing else is left.
    assert_nothing_leaked(&mut orca).await;
}

/// A running gateway (`--cleanup-on-exit`) whose engine is reached through a create-fault
/// proxy, and a web image of one user per container, so every user needs a create of their
/// own.
/// `tail` is added to the configuration. The proxy comes last so that, declared last, it is
/// dropped first: no delayed create reaches the engine after the gateway's cleanup.
async fn through_proxy(tail: &str) -> (Orca, String, DockerProxy) {
    let proxy = DockerProxy::start().expect("the proxy listens");
    let web = web_image_on(None, &unique_name("web"), &[("orca.users.concurrent", "1")]);
    let mut orca = Orca::configure(&ServeOptions {
        tail: format!("[docker]\nhost = \"{}\"\n{tail}", proxy.host),
        ..ServeOptions::default()
    })
    .expect("config");
    orca.start(&["--cleanup-on-exit"])
        .await
        .expect("orca serve starts");
    (orca, web, proxy)
}

/// `count` anonymous users (a cookie jar each) asking `image` for `/` at once: (status, body)
/// each, in order.
async fn users_at_once(orca: &Orca, image: &str, count: usize) -> Vec<(u16, String)> {
    let jars: Vec<PathBuf> = (0..count)
        .map(|i| orca.scratch.join(format!("{}-{i}", unique_name("jar"))))
        .collect();
    futures_util::future::join_all(jars.iter().map(|jar| async move {
        orca.https_get(image, "/", jar, &[])
            .await
            .expect("curl answers")
    }))
    .await
}

/// Asks `image` for `/` as the user of `jar` until it answers 200; every other answer on the
/// way must be a 503 (still starting, or backing off).
async fn served(orca: &Orca, image: &str, jar: &Path) {
    wait_for("the user to be served", HANG, || async {
        let (code, body) = orca
            .https_get(image, "/", jar, &[])
            .await
            .expect("curl answers");
        assert!(code == 200 || code == 503, "{code}: {body}");
        (code == 200).then_some(())
    })
    .await
    .expect("served in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_refusing_creates_gives_clear_errors_no_pile_up_and_recovery() {
    let (mut orca, web, proxy) = through_proxy("").await;

    // Docker fails every create, as a full thin pool does.
    let said = "devmapper: Thin Pool has 0 free data blocks";
    proxy.set(CreateFault::Fail {
        status: 500,
        message: said.into(),
    });
    let answers = users_at_once(&orca, &web, 8).await;
    for (code, body) in &answers {
        assert!(*code == 502 || *code == 503, "a user got {code}: {body}");
        assert!(body.contains(said), "the page names Docker's error: {body}");
    }
    // No pile-up: the launches in flight when the first create failed tried once each (at
    // most launch_parallelism = 4), the first to fail retried (launch_attempts = 5), and
    // nobody else created. Without the back-off this was 8 users x 5 attempts = 40.
    let creates = proxy.creates();
    assert!(creates <= 4 + 4, "{creates} creates for 8 users");
    // A user arriving now is told at once, with Retry-After, and creates nothing.
    let (code, body) = orca
        .https_get(&web, "/", &orca.scratch.join("late"), &[])
        .await
        .unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains(said) && body.contains("retry in"), "{body}");
    assert_eq!(proxy.creates(), creates);

    // Docker recovers: the same user asks again, is told 503 until the back-off passes, then
    // gets a container; then everyone does.
    proxy.set(CreateFault::Pass);
    served(&orca, &web, &orca.scratch.join("late")).await;
    for (code, body) in users_at_once(&orca, &web, 3).await {
        assert_eq!(code, 200, "{body}");
    }
    assert_nothing_leaked(&mut orca).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_resetting_or_slowing_creates_gives_clear_errors_and_no_leak() {
    // The gateway holds a request 3 s for its container, then answers 503.
    let (mut orca, web, proxy) = through_proxy("[scheduler]\nready_timeout = \"3s\"\n").await;

    // The engine's connection drops in the middle of every create.
    proxy.set(CreateFault::Reset);
    let (code, body) = orca
        .https_get(&web, "/", &orca.scratch.join("reset"), &[])
        .await
        .unwrap();
    assert_eq!(code, 502, "{body}");
    assert!(
        body.contains(&format!("creating container for image `{web}`")),
        "the page says what failed: {body}"
    );
    assert!(orca.docker_container_names().is_empty());

    // Docker answers again: once the back-off after the resets passed, users are served.
    proxy.set(CreateFault::Pass);
    served(&orca, &web, &orca.scratch.join("after-reset")).await;

    // Creates slower than the hold: the user is told "still starting" (503) in time, their
    // retries wait on the same launch rather than starting another, and they are served once
    // Docker answers.
    proxy.set(CreateFault::Delay(Duration::from_secs(8)));
    let before = proxy.creates();
    let slow = orca.scratch.join("slow");
    for _ in 0..2 {
        let (code, body) = orca.https_get(&web, "/", &slow, &[]).await.unwrap();
        assert_eq!(code, 503, "{body}");
        assert!(body.contains("still starting"), "{body}");
    }
    served(&orca, &web, &slow).await;
    assert_eq!(
        proxy.creates(),
        before + 1,
        "the retries waited on the one launch"
    );

    // Many users at once: every one is served, with one create each, and the creates in
    // flight stay within `launch_parallelism` (4 by default).
    proxy.set(CreateFault::Delay(Duration::from_secs(2)));
    let jars: Vec<PathBuf> = (0..6)
        .map(|i| orca.scratch.join(format!("crowd-{i}")))
        .collect();
    futures_util::future::join_all(jars.iter().map(|jar| served(&orca, &web, jar))).await;
    assert_eq!(proxy.creates(), before + 1 + 6);
    assert!(
        proxy.max_in_flight() <= 4,
        "{} creates at once",
        proxy.max_in_flight()
    );
    assert_nothing_leaked(&mut orca).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ldap_server_that_hangs_refuses_passwords_in_time_while_keys_log_in() {
    let shell = ssh_image(&unique_name("shell"));
    // Accepts connections (the kernel completes them into the backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    // The resolver gives the directory 1 s per operation; the host's deadline per call is 5 s.
    let directory = ldap(
        &format!("ldap://{silent_addr}"),
        std::slice::from_ref(&silent_addr),
        &[("timeout", "1s")],
    );
    let gw = SshGateway::start(SshOptions {
        resolvers: vec![directory],
        ..SshOptions::default()
    })
    .await;
    gw.scheduler.refresh_catalogue().await.unwrap();
    let key = gw.user_key("ivan");

    // bob's password goes to the hanging directory while ivan logs in by key.
    let t0 = Instant::now();
    let (bob, ivan) = (format!("bob+{shell}"), format!("ivan+{shell}"));
    let (password, by_key) = tokio::join!(
        tokio::time::timeout(HANG, gw.ssh_with_password(&bob, "bob-password", "true")),
        gw.ssh(&key, &ivan, "echo in", b""),
    );
    let password = password.expect("the password login is answered, not left hanging");
    assert_eq!(password.status.code(), Some(255), "{}", text(&password));
    assert!(
        String::from_utf8_lossy(&password.stderr).contains("Permission denied"),
        "{}",
        text(&password)
    );
    assert_eq!(by_key.status.code(), Some(0), "{}", text(&by_key));
    assert_eq!(String::from_utf8_lossy(&by_key.stdout).trim(), "in");
    eprintln!("password refused after {:?}", t0.elapsed());
    // The directory's resolver answered (a deny, within its own timeout) rather than being cut
    // off by the host's deadline.
    let metrics = gw.metrics.render();
    let denied = sample(
        &metrics,
        "orca_resolver_calls_total",
        "interface=\"ssh\",resolver=\"directory\",result=\"deny\"",
    );
    assert!(denied.is_some_and(|n| n >= 1.0), "{metrics}");
    let cut_off = sample(
        &metrics,
        "orca_resolver_failures_total",
        "kind=\"timeout\",resolver=\"directory\"",
    );
    assert_eq!(cut_off.unwrap_or(0.0), 0.0, "{metrics}");
    drop(silent);
    // Only ivan's container was made, and it is the only one left.
    let ids = container_ids_with_label(&format!("orca.gateway.instance={}", gw.instance));
    assert_eq!(ids.len(), 1, "{ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolver_plugin_that_spins_refuses_its_user_in_time_and_others_keep_working() {
    let web = web_image(&unique_name("web"));
    let wasm = plugins::rust_plugin("orca-fixture-hostile").expect("the fixture builds");
    let options = ServeOptions {
        tail: format!(
            "[[resolver]]\nname = \"hostile\"\nplugin = \"{}\"\ntimeout = \"1s\"\n\
             config = {{ mode = \"ok\" }}\n",
            wasm.display()
        ),
        ..ServeOptions::default()
    };
    let mut orca = Orca::configure(&options).expect("config");
    orca.start(&["--cleanup-on-exit"])
        .await
        .expect("orca serve starts");
    let jar = |name: &str| orca.scratch.join(name);
    let (spin, kim) = (jar("spin"), jar("kim"));

    // One request makes the plugin spin, another user is served at the same time.
    let (spun, served) = tokio::join!(
        orca.https_get(&web, "/", &spin, &["x-mode: loop"]),
        orca.https_get(&web, "/", &kim, &["x-user: kim"]),
    );
    // A failed resolver call is a deny (SPEC 5): the spinning caller is refused, not hung.
    let (code, body) = spun.unwrap();
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("Access denied"), "{body}");
    let (code, body) = served.unwrap();
    assert_eq!(code, 200, "{body}");

    // The gateway is up and keeps serving; the failure is counted as a timeout.
    assert_eq!(orca.healthz().await.unwrap(), 200);
    let (code, body) = orca
        .https_get(&web, "/", &jar("lee"), &["x-user: lee"])
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let timeouts = orca
        .metric(
            "orca_resolver_failures_total",
            "kind=\"timeout\",resolver=\"hostile\"",
        )
        .await
        .unwrap();
    assert_eq!(timeouts, Some(1.0));
    assert_nothing_leaked(&mut orca).await;
}

/// A read-only bind mount of a directory over itself, undone on drop (even when the test
/// panicked). Root ignores permissions, so only the mount stops writes.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn mount(dir: &Path) -> Self {
        run(
            "mount",
            &[
                "--bind",
                &dir.display().to_string(),
                &dir.display().to_string(),
            ],
        );
        let guard = Self(dir.to_path_buf());
        run(
            "mount",
            &["-o", "remount,bind,ro", &dir.display().to_string()],
        );
        guard
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .expect("mount and umount run");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_state_directory_is_refused_at_start_and_survived_while_running() {
    let web = web_image(&unique_name("web"));
    let mut orca = Orca::configure(&ServeOptions::default()).expect("config");
    let jar = orca.scratch.join("cookies");

    // At start: a clear error naming the directory, and a non-zero exit.
    std::fs::create_dir_all(&orca.state).unwrap();
    {
        let _ro = ReadOnly::mount(&orca.state);
        let (code, log) = orca.run_to_exit(&[]).await.unwrap();
        assert_ne!(code, Some(0), "{log}");
        assert!(
            log.contains(&orca.state.display().to_string()),
            "the error names the state directory: {log}"
        );
        assert!(
            log.contains("writ"),
            "the error says it cannot be written: {log}"
        );
    }

    // While running: a user gets a container, then the directory turns read-only.
    orca.start(&[]).await.expect("orca serve starts");
    let first_host = orca.app_host(&web, &jar).await;
    let ro = ReadOnly::mount(&orca.state);
    // A second user arrives: served, and the bindings cannot be written.
    let other = orca.scratch.join("other");
    let (code, body) = orca.https_get(&web, "/", &other, &[]).await.unwrap();
    assert_eq!(code, 200, "{body}");
    let state_dir = orca.state.display().to_string();
    wait_for("the failed write to be logged", HANG, || async {
        orca.logs()
            .contains("cannot persist bindings")
            .then_some(())
    })
    .await
    .unwrap();
    // (The refused first run logged plain text, before the JSON logger was set up.)
    let logs = orca.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("cannot persist bindings") && l.contains(&state_dir)),
        "the log names the directory: {logs}"
    );
    // The gateway keeps serving both users.
    assert_eq!(orca.healthz().await.unwrap(), 200);
    assert_eq!(orca.app_host(&web, &jar).await, first_host);

    // Writable again: the bindings are persisted (both users), and a restart keeps them.
    drop(ro);
    let file = orca.state.join("scheduler.json");
    let users = orca.sessions(&web).await.unwrap();
    assert_eq!(users.len(), 2, "{users:?}");
    wait_for("the bindings to be written again", HANG, || async {
        let text = std::fs::read_to_string(&file).ok()?;
        users
            .iter()
            .all(|(u, _)| text.contains(u.as_str()))
            .then_some(())
    })
    .await
    .unwrap();
    orca.kill9().await.unwrap();
    orca.restart(&["--cleanup-on-exit"]).await.expect("restart");
    assert_eq!(orca.sessions(&web).await.unwrap(), users, "nothing lost");
    assert_eq!(orca.app_host(&web, &jar).await, first_host);
    assert_nothing_leaked(&mut orca).await;
}
