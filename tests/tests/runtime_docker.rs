//! The Docker runtime against the real engine: create with labels and limits, start, inspect,
//! probes, listing by instance, events, stop, remove, attach, exec and TTY resize.

use std::time::Duration;

use futures_util::StreamExt;
use orca::images::{ReadyCheck, ResourceLimits};
use orca::runtime::docker::DockerRuntime;
use orca::runtime::{
    Attached, CreateSpec, ExecSpec, ManagedLabels, Output, Runtime, RuntimeEvent, TtySize,
};
use orca_tests::{build_image, docker, unique_name};
use tokio::io::AsyncWriteExt;

/// Removes a container when the test ends, passed or not.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.0]);
    }
}

/// Creates (does not start) an interactive container of the ssh test image.
async fn interactive_shell(rt: &DockerRuntime) -> (String, Cleanup) {
    let tag = format!("{}:latest", unique_name("ssh"));
    let image_id = build_image("ssh", &tag, &[]).expect("ssh test image builds");
    let id = rt
        .create(&spec(
            &image_id,
            &unique_name("rt-sh"),
            &unique_name("rt"),
            true,
        ))
        .await
        .expect("container created");
    (id.clone(), Cleanup(id))
}

async fn runtime() -> DockerRuntime {
    DockerRuntime::connect(None, "bridge")
        .await
        .expect("docker reachable")
}

fn spec(image_id: &str, name: &str, instance: &str, interactive: bool) -> CreateSpec {
    CreateSpec {
        name: name.to_string(),
        image_id: image_id.to_string(),
        image_name: "test".to_string(),
        labels: ManagedLabels {
            instance: instance.to_string(),
            image: "test".to_string(),
            spec_hash: "h1".to_string(),
        }
        .to_labels(),
        network: "bridge".to_string(),
        stop_signal: Some("SIGTERM".to_string()),
        stop_grace: Duration::from_secs(1),
        limits: ResourceLimits {
            memory_bytes: Some(64 << 20),
            nano_cpus: Some(500_000_000),
            pids: Some(50),
        },
        interactive,
        stdin_open: false,
    }
}

/// Reads output until `needle` shows up (or fails after 10 s with what was read).
async fn read_until(a: &mut Attached, needle: &str) -> String {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains(needle) {
        let next = tokio::time::timeout_at(deadline, a.output.next()).await;
        match next {
            Ok(Some(Ok(Output::Stdout(b) | Output::Stderr(b)))) => {
                seen.push_str(&String::from_utf8_lossy(&b))
            }
            other => panic!("no `{needle}` in output: {seen:?} (then {other:?})"),
        }
    }
    seen
}

#[tokio::test]
async fn lifecycle_labels_limits_probes_events_and_removal() {
    let rt = runtime().await;
    let tag = format!("{}:latest", unique_name("web"));
    let image_id = build_image("web", &tag, &[]).unwrap();
    let instance = unique_name("rt");
    let name = unique_name("rt-web");
    let mut events = rt.events();

    let id = rt
        .create(&spec(&image_id, &name, &instance, false))
        .await
        .unwrap();
    let _cleanup = Cleanup(id.clone());
    let got = docker(&[
        "inspect", "--format",
        "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.NanoCpus}} {{.Config.StopSignal}} {{.Config.Image}} {{index .Config.Labels \"orca.gateway.instance\"}}",
        &id,
    ])
    .unwrap();
    assert_eq!(
        got.trim(),
        format!("67108864 50 500000000 SIGTERM {image_id} {instance}")
    );

    rt.start(&id).await.unwrap();
    let info = rt.inspect(&id).await.unwrap();
    assert!(info.running);
    assert_eq!(info.name, name);
    let addr = info.address.expect("an address on the bridge");
    let mut ready = false;
    for _ in 0..100 {
        if rt
            .probe(addr, Some(80), &ReadyCheck::Http("/".into()))
            .await
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "httpd answers the http probe");
    assert!(rt.probe(addr, Some(80), &ReadyCheck::Tcp).await);
    assert!(
        !rt.probe(addr, Some(81), &ReadyCheck::Tcp).await,
        "a closed port is not ready"
    );

    let mine = rt.list_managed(&instance).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].id, id);
    assert_eq!(mine[0].address, Some(addr));
    assert!(
        rt.list_managed(&unique_name("other"))
            .await
            .unwrap()
            .is_empty()
    );

    docker(&["kill", "--signal", "KILL", &id]).unwrap();
    let died = next_event(
        &mut events,
        |e| matches!(e, RuntimeEvent::ContainerDied { id: i, .. } if *i == id),
    )
    .await;
    assert_eq!(
        died,
        RuntimeEvent::ContainerDied {
            id: id.clone(),
            exit_code: Some(137)
        }
    );
    let info = rt.inspect(&id).await.unwrap();
    assert!(!info.running);
    assert_eq!(info.exit_code, Some(137));

    rt.stop(&id, Duration::from_secs(1))
        .await
        .expect("stopping a stopped container is fine");
    rt.remove(&id).await.unwrap();
    next_event(&mut events, |e| {
        *e == RuntimeEvent::ContainerRemoved { id: id.clone() }
    })
    .await;
    rt.remove(&id).await.expect("removing twice is fine");
    rt.stop(&id, Duration::from_secs(1))
        .await
        .expect("stopping a missing container is fine");
}

async fn next_event(
    events: &mut orca::runtime::EventStream,
    want: impl Fn(&RuntimeEvent) -> bool,
) -> RuntimeEvent {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(Ok(e))) if want(&e) => return e,
            Ok(Some(Ok(_))) => continue,
            other => panic!("event stream ended or timed out: {other:?}"),
        }
    }
}

#[tokio::test]
async fn images_are_listed_and_tagging_is_an_event() {
    let rt = runtime().await;
    let mut events = rt.events();
    let tag = format!("{}:latest", unique_name("web"));
    let id = build_image("web", &tag, &[("orca.name", "listed")]).unwrap();
    let images = rt.list_images().await.unwrap();
    let found = images
        .iter()
        .find(|i| i.id == id)
        .expect("the labelled image is listed");
    assert!(found.repo_tags.contains(&tag));
    assert_eq!(
        found.labels.get("orca.name").map(String::as_str),
        Some("listed")
    );
    let second = format!("{}:v2", unique_name("web"));
    docker(&["tag", &tag, &second]).unwrap();
    next_event(&mut events, |e| *e == RuntimeEvent::ImagesChanged).await;
    docker(&["rmi", &second]).unwrap();
}

#[tokio::test]
async fn missing_image_error_names_the_image_and_what_docker_said() {
    let rt = runtime().await;
    let bogus = format!("sha256:{}", "0".repeat(64));
    let err = rt
        .create(&CreateSpec {
            image_name: "shell".into(),
            ..spec(&bogus, &unique_name("x"), "x", false)
        })
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("creating container for image `shell` ({bogus}): ")),
        "{msg}"
    );
    assert!(msg.to_lowercase().contains("no such image"), "{msg}");
    assert!(err.not_found);
    let net = DockerRuntime::connect(None, "no-such-network")
        .await
        .unwrap_err();
    assert!(
        net.to_string().contains("no-such-network")
            && net.to_string().contains("docker network create"),
        "{net}"
    );
}

#[tokio::test]
async fn attach_before_start_then_type_resize_and_keep_the_session() {
    let rt = runtime().await;
    let (id, _cleanup) = interactive_shell(&rt).await;
    let mut a = rt.attach(&id).await.unwrap();
    rt.start(&id).await.unwrap();
    rt.resize(
        &id,
        None,
        TtySize {
            cols: 100,
            rows: 30,
        },
    )
    .await
    .unwrap();
    a.input.write_all(b"echo hello-$((6*7))\n").await.unwrap();
    read_until(&mut a, "hello-42").await;
    rt.resize(
        &id,
        None,
        TtySize {
            cols: 132,
            rows: 43,
        },
    )
    .await
    .unwrap();
    a.input.write_all(b"stty size\n").await.unwrap();
    read_until(&mut a, "43 132").await;
    // Docker's default detach keys (ctrl-p ctrl-q) must not end the session.
    a.input.write_all(&[0x10, 0x11]).await.unwrap();
    a.input.write_all(b"\necho still-$((1+1))\n").await.unwrap();
    read_until(&mut a, "still-2").await;
    assert!(rt.inspect(&id).await.unwrap().running);
}

#[tokio::test]
async fn exec_returns_exit_codes_separates_streams_and_resizes_ttys() {
    let rt = runtime().await;
    let (id, _cleanup) = interactive_shell(&rt).await;
    rt.start(&id).await.unwrap();

    let mut e = rt
        .exec(
            &id,
            &ExecSpec {
                cmd: vec![
                    "sh".into(),
                    "-c".into(),
                    "echo out; echo err >&2; echo $GREETING; exit 3".into(),
                ],
                env: vec!["GREETING=hi-there".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (mut out, mut err) = (String::new(), String::new());
    while let Some(frame) = e.output.next().await {
        match frame.unwrap() {
            Output::Stdout(b) => out.push_str(&String::from_utf8_lossy(&b)),
            Output::Stderr(b) => err.push_str(&String::from_utf8_lossy(&b)),
        }
    }
    assert_eq!(out, "out\nhi-there\n");
    assert_eq!(err, "err\n");
    let exec_id = e.exec_id.clone().unwrap();
    let mut code = None;
    for _ in 0..50 {
        code = rt.exec_exit_code(&exec_id).await.unwrap();
        if code.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(code, Some(3));

    let mut t = rt
        .exec(
            &id,
            &ExecSpec {
                cmd: vec!["sh".into()],
                tty: true,
                size: Some(TtySize { cols: 90, rows: 20 }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    t.input.write_all(b"stty size\n").await.unwrap();
    read_until(&mut t, "20 90").await;
    rt.resize(
        &id,
        t.exec_id.as_deref(),
        TtySize {
            cols: 101,
            rows: 33,
        },
    )
    .await
    .unwrap();
    t.input.write_all(b"stty size; exit 0\n").await.unwrap();
    read_until(&mut t, "33 101").await;
}
