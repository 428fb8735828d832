//! `dockerd` restarted while an HTTPS user and an SSH user are connected, against a private
//! engine (`orca_tests::private_docker`), never the one other tests share: the gateway logs the
//! loss, reconnects to the events, notices the containers the restart stopped and removes them,
//! and both users get a working container again. A test binary of its own, since it runs a
//! second `dockerd` and its bridge.

use std::time::Duration;

use orca_tests::private_docker::PrivateDocker;
use orca_tests::serve::{Orca, ServeOptions, SshSession, app_hostname, ssh_image_on, web_image_on};
use orca_tests::ssh::text;
use orca_tests::{unique_name, wait_for};

/// Against hangs: the gateway's reconnect backs off up to 30 s between attempts.
const HANG: Duration = Duration::from_secs(120);

/// Whether the gateway's log has a record whose message is `message`.
fn logged(orca: &Orca, message: &str) -> bool {
    orca.log_records()
        .unwrap_or_default()
        .iter()
        .any(|r| r["fields"]["message"] == message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerd_restarted_under_connected_users_is_reconnected_and_users_regain_containers() {
    let mut engine = tokio::task::spawn_blocking(PrivateDocker::start)
        .await
        .unwrap()
        .expect("a private dockerd starts");
    let host = engine.host.clone();
    let web = web_image_on(Some(&host), &unique_name("web"), &[]);
    let shell = ssh_image_on(Some(&host), &unique_name("shell"));
    let mut orca = Orca::configure(&ServeOptions {
        tail: format!("[docker]\nhost = \"{host}\"\n"),
        ..ServeOptions::default()
    })
    .expect("config");
    let key = orca.user_key("jo").expect("jo's key");
    let jo = format!("jo+{shell}");
    let jar = orca.scratch.join("cookies");
    let label = format!("orca.gateway.instance={}", orca.instance);
    orca.start(&["--cleanup-on-exit"])
        .await
        .expect("orca serve starts");

    // Both users are served by the private engine.
    let web_host = orca.app_host(&web, &jar).await;
    let mut session = SshSession::open(&orca, &key, &jo);
    assert_eq!(session.echo("before").await, "before");
    let before = engine.container_names(&label).unwrap();
    assert_eq!(before.len(), 2, "{before:?}");

    // dockerd stops (SIGTERM: it stops its containers and exits): the SSH session ends, the
    // web user is answered with an error rather than left waiting.
    tokio::task::block_in_place(|| engine.stop()).expect("dockerd stops");
    assert_eq!(session.echo("during").await, "", "the SSH session ends");
    let (code, body) = orca.https_get(&web, "/", &jar, &[]).await.unwrap();
    assert!(code == 502 || code == 503, "{code}: {body}");
    wait_for("the gateway to log the lost engine", HANG, || async {
        logged(&orca, "lost the container engine's event stream").then_some(())
    })
    .await
    .unwrap();
    assert_eq!(orca.healthz().await.unwrap(), 200, "the gateway stays up");

    // dockerd comes back: the gateway reconnects and both users get a working container.
    tokio::task::block_in_place(|| engine.resume()).expect("dockerd starts again");
    wait_for("the gateway to reconnect", HANG, || async {
        logged(&orca, "reconnected to the container engine").then_some(())
    })
    .await
    .unwrap();
    let (code, body) = wait_for("the web user to be served again", HANG, || async {
        let (code, body) = orca.https_get(&web, "/", &jar, &[]).await.ok()?;
        (code == 200).then_some((code, body))
    })
    .await
    .unwrap();
    assert_eq!(code, 200, "{body}");
    // The restart stopped the old container; this one is new.
    assert_ne!(app_hostname(&body), web_host);
    let out = orca.ssh(&key, &jo, "echo back").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "back");

    // The stopped containers were removed; the engine holds exactly what the API lists.
    let api = orca.api_container_names().await.unwrap();
    let now = engine.container_names(&label).unwrap();
    assert_eq!(api, now);
    assert!(
        before.iter().all(|c| !now.contains(c)),
        "{before:?} vs {now:?}"
    );
    assert_eq!(orca.sigterm().await.unwrap(), Some(0), "{}", orca.logs());
    assert_eq!(
        engine.container_names(&label).unwrap(),
        Vec::<String>::new()
    );
}
