//! The scheduler against the real Docker engine with the test images: launch, reuse, packing,
//! limits, linger, lifespan drain, death from outside, adoption after `kill -9`.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use orca::config::SchedulerConfig;
use orca::metrics::Metrics;
use orca::runtime::docker::DockerRuntime;
use orca::scheduler::{Options, Scheduler, SessionKind, StopReason, UserId};
use orca_tests::{build_image, docker, unique_name, wait_for};

/// Removes every container of a test's instance, even when the test fails.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let ids = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=orca.gateway.instance={}", self.0),
        ])
        .unwrap_or_default();
        for id in ids.split_whitespace() {
            let _ = docker(&["rm", "-f", id]);
        }
    }
}

fn options(instance: &str, state_dir: &Path) -> Options {
    Options {
        instance: instance.to_string(),
        network: "bridge".to_string(),
        state_dir: Some(state_dir.to_path_buf()),
        tuning: SchedulerConfig {
            launch_parallelism: 4,
            launch_attempts: 5,
            launch_retry_delay: Duration::from_millis(500),
            ready_timeout: Duration::from_secs(30),
            max_containers: 50,
            restart_grace: Duration::from_secs(120),
        },
        sweep_interval: Duration::from_millis(200),
        audit: orca::audit::Audit::off(),
    }
}

struct Env {
    name: String,
    instance: String,
    state: tempfile::TempDir,
    _cleanup: Cleanup,
}

/// Builds a test image under a unique name with extra labels; returns its orca name.
fn env(dir: &str, labels: &[(&str, &str)]) -> Env {
    let name = unique_name(dir);
    let mut all: Vec<(&str, &str)> = vec![("orca.name", name.as_str())];
    all.extend_from_slice(labels);
    build_image(dir, &format!("{name}:latest"), &all).expect("test image builds");
    let instance = unique_name("inst");
    Env {
        name,
        _cleanup: Cleanup(instance.clone()),
        instance,
        state: tempfile::tempdir().expect("tempdir"),
    }
}

async fn start(env: &Env) -> Scheduler {
    let runtime = DockerRuntime::connect(None, "bridge")
        .await
        .expect("docker reachable");
    Scheduler::start(
        Arc::new(runtime),
        options(&env.instance, env.state.path()),
        Arc::new(Metrics::new()),
    )
    .await
    .expect("scheduler starts")
}

/// Waits for the scheduler to record a stop and returns the latest.
async fn next_stop(s: &Scheduler, what: &str) -> orca::scheduler::StopRecord {
    wait_for(what, Duration::from_secs(30), || {
        let last = s.status().recent_stops.last().cloned();
        async move { last }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Places a user on the test's image and waits until the container is ready.
async fn place(s: &Scheduler, env: &Env, u: &str) -> orca::scheduler::Lease {
    s.acquire(&user(u), &env.name, SessionKind::Traffic)
        .await
        .unwrap_or_else(|e| panic!("placing {u}: {e}"))
}

fn user(u: &str) -> UserId {
    UserId::new(u)
}

/// What the web image's CGI script says about a request: its hostname and headers.
fn echo(addr: std::net::IpAddr) -> String {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "-H",
            "X-Test: 1",
            &format!("http://{addr}/cgi-bin/echo"),
        ])
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn running(instance: &str) -> Vec<String> {
    docker(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label=orca.gateway.instance={instance}"),
    ])
    .unwrap_or_default()
    .split_whitespace()
    .map(String::from)
    .collect()
}

fn all_containers(instance: &str) -> Vec<String> {
    docker(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label=orca.gateway.instance={instance}"),
    ])
    .unwrap_or_default()
    .split_whitespace()
    .map(String::from)
    .collect()
}

#[tokio::test]
async fn launch_reuse_and_packing_on_real_containers() {
    let env = env("web", &[("orca.users.concurrent", "2")]);
    let s = start(&env).await;
    let a = place(&s, &env, "alice").await;
    let addr = a.address.expect("container has an address on the bridge");
    let page = echo(addr);
    assert!(
        page.contains(&format!("hostname: {}", &a.container_id[..12])),
        "served by alice's container: {page}"
    );
    assert!(page.contains("X-Test: 1"), "{page}");

    let a2 = place(&s, &env, "alice").await;
    assert_eq!(
        a2.container_id, a.container_id,
        "alice reuses her container"
    );
    let b = place(&s, &env, "bob").await;
    assert_eq!(
        b.container_id, a.container_id,
        "bob is packed with alice (concurrent = 2)"
    );
    let c = place(&s, &env, "carol").await;
    assert_ne!(
        c.container_id, a.container_id,
        "carol needs a second container"
    );
    assert!(echo(c.address.unwrap()).contains(&format!("hostname: {}", &c.container_id[..12])));
    assert_eq!(running(&env.instance).len(), 2);

    let inspect = docker(&[
        "inspect",
        "--format",
        "{{.Config.Image}} {{index .Config.Labels \"orca.gateway.image\"}}",
        &a.container_id,
    ])
    .unwrap();
    assert!(
        inspect.starts_with("sha256:"),
        "created from the image id explicitly: {inspect}"
    );
    assert!(inspect.contains(&env.name));
    s.shutdown(true).await;
    assert!(
        all_containers(&env.instance).is_empty(),
        "cleanup removed everything"
    );
}

#[tokio::test]
async fn inactive_user_is_kicked_and_the_empty_container_lingers_then_stops() {
    let env = env(
        "web",
        &[
            ("orca.timeout.inactive", "2s"),
            ("orca.timeout.linger", "2s"),
        ],
    );
    let s = start(&env).await;
    let a = place(&s, &env, "alice").await;
    let reason = tokio::time::timeout(Duration::from_secs(20), a.ended())
        .await
        .expect("kicked");
    assert!(reason.contains("inactive for 2s"), "{reason}");
    let id = a.container_id.clone();
    drop(a);
    let stop = next_stop(&s, "the lingering container to stop").await;
    assert!(matches!(stop.reason, StopReason::Linger(_)), "{stop:?}");
    assert!(
        !all_containers(&env.instance).contains(&id),
        "the stopped container is removed"
    );
    s.shutdown(true).await;
}

#[tokio::test]
async fn lifespan_drains_and_ssh_containers_stop_after_their_one_user() {
    let env = env("web", &[("orca.timeout.session", "2s")]);
    let s = start(&env).await;
    let a = place(&s, &env, "alice").await;
    wait_for("the lifespan drain", Duration::from_secs(20), || {
        let st = s.status();
        async move {
            st.containers
                .iter()
                .any(|c| !c.accepts_users && c.why.contains("lifespan"))
                .then_some(())
        }
    })
    .await
    .unwrap();
    let b = place(&s, &env, "bob").await;
    assert_ne!(
        a.container_id, b.container_id,
        "an expired container takes no new users"
    );
    s.shutdown(true).await;

    let shell = crate::env("ssh", &[]);
    let s = start(&shell).await;
    let lease = place(&s, &shell, "alice").await;
    let id = lease.container_id.clone();
    assert_eq!(running(&shell.instance), vec![id.clone()]);
    drop(lease);
    let stop = next_stop(&s, "the ssh container to stop after its only user left").await;
    assert_eq!(stop.reason, StopReason::UsersTotal(1));
    assert!(
        all_containers(&shell.instance).is_empty(),
        "and it is removed"
    );
    s.shutdown(true).await;
}

#[tokio::test]
async fn a_container_killed_from_outside_is_noticed_and_the_user_moves_on() {
    let env = env("web", &[]);
    let s = start(&env).await;
    let a = place(&s, &env, "alice").await;
    docker(&["kill", &a.container_id]).unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(10), a.ended())
        .await
        .expect("noticed from events");
    assert!(reason.contains("exited with code 137"), "{reason}");
    let again = place(&s, &env, "alice").await;
    assert_ne!(again.container_id, a.container_id);
    assert!(echo(again.address.unwrap()).contains(&again.container_id[..12]));
    let dead = a.container_id.clone();
    wait_for(
        "the dead container to be removed",
        Duration::from_secs(20),
        || {
            let inst = env.instance.clone();
            let dead = dead.clone();
            async move { (!all_containers(&inst).contains(&dead)).then_some(()) }
        },
    )
    .await
    .unwrap();
    s.shutdown(true).await;
}

#[tokio::test]
async fn a_new_process_adopts_containers_after_kill_9() {
    let env = env("ssh", &[]);
    let driver = env!("CARGO_BIN_EXE_sched-driver");
    let mut child = Command::new(driver)
        .args([
            env.instance.as_str(),
            env.state.path().to_str().unwrap(),
            env.name.as_str(),
            "alice",
            "bob",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("driver starts");
    let mut placed = std::collections::HashMap::new();
    let stdout = child.stdout.take().unwrap();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line == "READY" {
            break;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let ["CONTAINER", user, name] = parts.as_slice() {
            placed.insert(user.to_string(), name.to_string());
        }
    }
    assert_eq!(placed.len(), 2, "driver placed both users");
    // A stray of ours that exited: must be removed on adoption.
    let stray = docker(&[
        "create",
        "--label",
        "orca.gateway.managed=true",
        "--label",
        &format!("orca.gateway.instance={}", env.instance),
        "--label",
        &format!("orca.gateway.image={}", env.name),
        "--label",
        "orca.gateway.spec=0",
        &format!("{}:latest", env.name),
    ])
    .unwrap();
    let stray = stray.trim().to_string();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let s = start(&env).await;
    let st = s.status();
    assert_eq!(st.containers.len(), 2, "{st:?}");
    for (u, name) in &placed {
        let c = st
            .containers
            .iter()
            .find(|c| &c.name == name)
            .expect("adopted");
        assert_eq!(
            c.users.iter().map(|x| x.user.as_str()).collect::<Vec<_>>(),
            vec![u.as_str()]
        );
        let lease = place(&s, &env, u).await;
        assert_eq!(
            &lease.container, name,
            "{u} reaches the same container after the restart"
        );
    }
    wait_for("the stray to be removed", Duration::from_secs(20), || {
        let inst = env.instance.clone();
        let stray = stray.clone();
        async move {
            (!all_containers(&inst)
                .iter()
                .any(|id| id.starts_with(&stray) || stray.starts_with(id.as_str())))
            .then_some(())
        }
    })
    .await
    .unwrap();
    s.shutdown(true).await;
}

#[tokio::test]
async fn the_catalogue_follows_image_events_without_a_restart() {
    use orca::scheduler::Lookup;
    let env = env("web", &[]);
    let s = start(&env).await;
    assert!(matches!(s.catalogue().lookup(&env.name), Lookup::Ready(_)));

    // A new image appears.
    let fresh = unique_name("web");
    let tag = format!("{fresh}:latest");
    build_image("web", &tag, &[("orca.name", fresh.as_str())]).unwrap();
    wait_for(
        "the new image in the catalogue",
        Duration::from_secs(15),
        || {
            let found = matches!(s.catalogue().lookup(&fresh), Lookup::Ready(_));
            async move { found.then_some(()) }
        },
    )
    .await
    .unwrap();

    // The tag moves to an image with other labels: the new settings apply.
    build_image(
        "web",
        &tag,
        &[
            ("orca.name", fresh.as_str()),
            ("orca.users.concurrent", "3"),
        ],
    )
    .unwrap();
    wait_for(
        "the retagged image's settings",
        Duration::from_secs(15),
        || {
            let three = match s.catalogue().lookup(&fresh) {
                Lookup::Ready(spec) => spec.users_concurrent.to_string() == "3",
                _ => false,
            };
            async move { three.then_some(()) }
        },
    )
    .await
    .unwrap();

    // A bad label disables only that image, with the reason.
    let bad = unique_name("web");
    build_image(
        "web",
        &format!("{bad}:latest"),
        &[("orca.name", bad.as_str()), ("orca.users.total", "lots")],
    )
    .unwrap();
    wait_for("the bad image to be listed as disabled", Duration::from_secs(15), || {
        let disabled = matches!(s.catalogue().lookup(&bad), Lookup::Disabled(ref why) if why.contains("orca.users.total"));
        async move { disabled.then_some(()) }
    })
    .await
    .unwrap();
    assert!(matches!(s.catalogue().lookup(&env.name), Lookup::Ready(_)));

    // Removed images disappear.
    docker(&["rmi", "-f", &tag]).unwrap();
    docker(&["rmi", "-f", &format!("{bad}:latest")]).unwrap();
    wait_for(
        "the removed image to leave the catalogue",
        Duration::from_secs(15),
        || {
            let gone = matches!(s.catalogue().lookup(&fresh), Lookup::Unknown);
            async move { gone.then_some(()) }
        },
    )
    .await
    .unwrap();
    s.shutdown(true).await;
}
