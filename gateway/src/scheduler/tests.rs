//! The scheduler's state machine against the in-memory engine, on paused tokio time.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::runtime::ManagedLabels;
use crate::runtime::fake::FakeRuntime;

const WEB: &[(&str, &str)] = &[("orca.kind", "web"), ("orca.name", "web")];
const SHELL: &[(&str, &str)] = &[("orca.kind", "ssh"), ("orca.name", "shell")];

/// The scheduler settings of unit tests (also the admin API's): state in `state_dir`.
pub(crate) fn opts(state_dir: Option<PathBuf>) -> Options {
    Options {
        instance: "t".into(),
        network: "bridge".into(),
        state_dir,
        tuning: SchedulerConfig {
            launch_parallelism: 4,
            launch_attempts: 5,
            launch_retry_delay: Duration::from_millis(500),
            ready_timeout: Duration::from_secs(60),
            max_containers: 100,
            restart_grace: Duration::from_secs(120),
        },
        sweep_interval: Duration::from_secs(1),
        audit: crate::audit::Audit::off(),
    }
}

async fn setup(labels: &[(&str, &str)]) -> (Arc<FakeRuntime>, Scheduler) {
    setup_with(labels, opts(None)).await
}

async fn setup_with(labels: &[(&str, &str)], opts: Options) -> (Arc<FakeRuntime>, Scheduler) {
    let rt = Arc::new(FakeRuntime::new());
    rt.add_image("img:latest", labels);
    let s = start_on(&rt, opts).await;
    (rt, s)
}

async fn start_on(rt: &Arc<FakeRuntime>, opts: Options) -> Scheduler {
    Scheduler::start(rt.clone(), opts, Arc::new(Metrics::new()))
        .await
        .unwrap()
}

fn user(name: &str) -> UserId {
    UserId::new(name)
}

fn with(
    extra: &[(&'static str, &'static str)],
    base: &[(&'static str, &'static str)],
) -> Vec<(&'static str, &'static str)> {
    let mut v: Vec<_> = base.to_vec();
    v.extend_from_slice(extra);
    v
}

/// Lets background tasks run (paused time auto-advances only when everything is idle).
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..600 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(start_paused = true)]
async fn first_request_launches_and_the_next_reuses() {
    let (rt, s) = setup(WEB).await;
    let a = s
        .acquire(&user("alice"), "web", SessionKind::Traffic)
        .await
        .unwrap();
    assert!(a.address.is_some());
    let b = s
        .acquire(&user("alice"), "WEB", SessionKind::Traffic)
        .await
        .unwrap();
    assert_eq!(a.container, b.container);
    assert_eq!(rt.creates(), 1);
    let spec = rt.containers()[0].spec.clone().unwrap();
    assert_eq!(spec.image_name, "web");
    assert!(
        spec.image_id.starts_with("sha256:"),
        "created from the image id"
    );
    assert_eq!(
        spec.labels.get("orca.gateway.instance").map(String::as_str),
        Some("t")
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_requests_for_one_user_coalesce_into_one_launch() {
    let (rt, s) = setup(WEB).await;
    rt.set_create_delay(Duration::from_millis(300));
    let u = user("alice");
    let (a, b, c) = tokio::join!(
        s.acquire(&u, "web", SessionKind::Traffic),
        s.acquire(&u, "web", SessionKind::Traffic),
        s.acquire(&u, "web", SessionKind::Traffic)
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert_eq!(a.container, b.container);
    assert_eq!(b.container, c.container);
    assert_eq!(rt.creates(), 1);
}

#[tokio::test(start_paused = true)]
async fn users_pack_into_the_fullest_container_up_to_concurrent() {
    let labels = with(&[("orca.users.concurrent", "2")], WEB);
    let (rt, s) = setup(&labels).await;
    let a = s
        .acquire(&user("a"), "web", SessionKind::Traffic)
        .await
        .unwrap();
    let b = s
        .acquire(&user("b"), "web", SessionKind::Traffic)
        .await
        .unwrap();
    let c = s
        .acquire(&user("c"), "web", SessionKind::Traffic)
        .await
        .unwrap();
    assert_eq!(
        a.container, b.container,
        "second user packed with the first"
    );
    assert_ne!(a.container, c.container, "third user needs a new container");
    assert_eq!(rt.creates(), 2);
    // d goes to c's container (the only one with room), not a third one.
    let d = s
        .acquire(&user("d"), "web", SessionKind::Traffic)
        .await
        .unwrap();
    assert_eq!(d.container, c.container);
    assert_eq!(rt.creates(), 2);
}

#[tokio::test(start_paused = true)]
async fn users_arriving_together_share_one_launch_when_it_has_room() {
    let (rt, s) = setup(WEB).await;
    rt.set_create_delay(Duration::from_millis(300));
    let (ua, ub) = (user("a"), user("b"));
    let (a, b) = tokio::join!(
        s.acquire(&ua, "web", SessionKind::Traffic),
        s.acquire(&ub, "web", SessionKind::Traffic)
    );
    assert_eq!(a.unwrap().container, b.unwrap().container);
    assert_eq!(rt.creates(), 1);
}

#[tokio::test(start_paused = true)]
async fn ssh_container_serves_one_user_and_stops_when_they_leave() {
    let (rt, s) = setup(SHELL).await;
    let a = s
        .acquire(&user("alice"), "shell", SessionKind::Traffic)
        .await
        .unwrap();
    let b = s
        .acquire(&user("bob"), "shell", SessionKind::Traffic)
        .await
        .unwrap();
    assert_ne!(a.container, b.container, "users.concurrent = 1");
    let gone = a.container.clone();
    drop(a);
    wait_until("alice's container to stop", || rt.running().len() == 1).await;
    let st = s.status();
    let stop = st
        .recent_stops
        .iter()
        .find(|r| r.name == gone)
        .expect("stop recorded");
    assert_eq!(stop.reason, StopReason::UsersTotal(1));
    // Alice reconnecting gets a fresh container (persistBetweenReconnects = false).
    let a2 = s
        .acquire(&user("alice"), "shell", SessionKind::Traffic)
        .await
        .unwrap();
    assert_ne!(a2.container, gone);
}

#[tokio::test(start_paused = true)]
async fn inactive_user_is_kicked_with_the_reason() {
    let labels = with(&[("orca.timeout.inactive", "10m")], SHELL);
    let (_rt, s) = setup(&labels).await;
    let lease = s
        .acquire(&user("alice"), "shell", SessionKind::Traffic)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(9 * 60)).await;
    lease.activity().record(10, 20);
    tokio::time::sleep(Duration::from_secs(9 * 60)).await;
    assert!(!lease.is_ended(), "activity at 9 min resets the clock");
    let reason = tokio::time::timeout(Duration::from_secs(120), lease.ended())
        .await
        .unwrap();
    assert!(reason.contains("inactive for 10m"), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn an_open_held_session_counts_as_activity() {
    let labels = with(&[("orca.timeout.inactive", "1m")], WEB);
    let (_rt, s) = setup(&labels).await;
    let lease = s
        .acquire(&user("alice"), "web", SessionKind::Held)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(
        !lease.is_ended(),
        "a long download or an idle websocket is use"
    );
}

#[tokio::test(start_paused = true)]
async fn empty_web_container_lingers_then_stops() {
    let labels = with(
        &[
            ("orca.timeout.inactive", "1m"),
            ("orca.timeout.linger", "30s"),
        ],
        WEB,
    );
    let (rt, s) = setup(&labels).await;
    let lease = s
        .acquire(&user("alice"), "web", SessionKind::Traffic)
        .await
        .unwrap();
    drop(lease);
    // Web images persist users between reconnects: alice stays bound until inactive.
    tokio::time::sleep(Duration::from_secs(50)).await;
    assert_eq!(s.status().containers[0].users.len(), 1);
    tokio::time::sleep(Duration::from_secs(15)).await;
    let st = s.status();
    assert!(st.containers[0].users.is_empty(), "kicked after 1m");
    assert!(
        st.containers[0].why.contains("orca.timeout.linger"),
        "{}",
        st.containers[0].why
    );
    wait_until("linger stop", || rt.running().is_empty()).await;
    assert!(matches!(
        s.status().recent_stops[0].reason,
        StopReason::Linger(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn lifespan_drains_the_container_and_it_stops_once_empty() {
    let labels = with(
        &[
            ("orca.timeout.session", "1h"),
            ("orca.timeout.inactive", "2h"),
        ],
        WEB,
    );
    let (rt, s) = setup(&labels).await;
    let a = s
        .acquire(&user("a"), "web", SessionKind::Traffic)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3601)).await;
    a.activity().touch();
    let b = s
        .acquire(&user("b"), "web", SessionKind::Traffic)
        .await
        .unwrap();
    assert_ne!(
        a.container, b.container,
        "an expired container takes no new users"
    );
    let again = s
        .acquire(&user("a"), "web", SessionKind::Traffic)
        .await
        .unwrap();
    assert_eq!(again.container, a.container, "its own users keep it");
    let old = s
        .status()
        .containers
        .into_iter()
        .find(|c| c.name == a.container)
        .unwrap();
    assert!(old.why.contains("lifespan"), "{}", old.why);
    assert_eq!(rt.running().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn creation_is_retried_then_fails_with_dockers_reason() {
    let (rt, s) = setup(WEB).await;
    rt.fail_next_creates(2);
    s.acquire(&user("a"), "web", SessionKind::Traffic)
        .await
        .unwrap();
    assert_eq!(rt.creates(), 3);
    rt.fail_next_creates(5);
    let err = s.acquire(&user("b"), "web", SessionKind::Traffic).await;
    // b is packed into a's container (web: unlimited users), so force a new image to fail.
    assert!(err.is_ok());
    rt.add_image(
        "other:latest",
        &[("orca.kind", "web"), ("orca.name", "other")],
    );
    s.refresh_catalogue().await.unwrap();
    rt.fail_next_creates(5);
    let err = s
        .acquire(&user("c"), "other", SessionKind::Traffic)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("engine overloaded") && msg.contains("after 5 attempts"),
        "{msg}"
    );
    assert!(
        msg.contains("creating container for image `other`"),
        "{msg}"
    );
}

#[tokio::test(start_paused = true)]
async fn users_arriving_for_an_image_docker_refuses_do_not_pile_up_creates() {
    let (rt, s) = setup(&with(&[("orca.users.concurrent", "1")], WEB)).await;
    rt.fail_next_creates(u32::MAX);
    // Ten users at once, each needing a container of their own.
    let users: Vec<UserId> = (0..10).map(|i| user(&format!("u{i}"))).collect();
    let results = futures_util::future::join_all(
        users
            .iter()
            .map(|u| s.acquire(u, "web", SessionKind::Traffic)),
    )
    .await;
    for r in &results {
        let e = r.as_ref().unwrap_err().to_string();
        assert!(e.contains("engine overloaded"), "{e}");
    }
    // The launches in flight when the first create failed made one attempt each (at most
    // launch_parallelism of them); only the first to fail retried.
    let creates = rt.creates();
    assert!(creates <= 4 + 4, "{creates} creates for 10 users");
    // A user arriving during the back-off is refused at once, with no create.
    let e = s
        .acquire(&user("late"), "web", SessionKind::Traffic)
        .await
        .unwrap_err();
    assert!(
        matches!(e, ScheduleError::EngineFailing { ref reason, retry_after, .. }
            if reason.contains("engine overloaded") && retry_after >= Duration::from_secs(1)),
        "{e:?}"
    );
    assert_eq!(rt.creates(), creates);
    assert!(rt.containers().is_empty(), "nothing left behind");
    // Docker recovers: after the back-off one user's launch is the trial, and it works.
    rt.fail_next_creates(0);
    tokio::time::sleep(breaker::FIRST_BACKOFF).await;
    s.acquire(&user("late"), "web", SessionKind::Traffic)
        .await
        .unwrap();
    s.acquire(&user("later"), "web", SessionKind::Traffic)
        .await
        .unwrap();
    assert_eq!(rt.running().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn half_created_containers_are_removed() {
    let (rt, s) = setup(WEB).await;
    rt.fail_next_starts(2);
    let lease = s
        .acquire(&user("a"), "web", SessionKind::Traffic)
        .await
        .unwrap();
    assert_eq!(rt.creates(), 3);
    let left = rt.containers();
    assert_eq!(left.len(), 1, "failed starts left nothing behind: {left:?}");
    assert_eq!(left[0].id, lease.container_id);
}

#[tokio::test(start_paused = true)]
async fn launches_are_bounded_in_parallel() {
    let mut o = opts(None);
    o.tuning.launch_parallelism = 2;
    let (rt, s) = setup_with(SHELL, o).await;
    rt.set_create_delay(Duration::from_millis(200));
    let users: Vec<UserId> = (0..6).map(|i| user(&format!("u{i}"))).collect();
    let futs = users
        .iter()
        .map(|u| s.acquire(u, "shell", SessionKind::Traffic));
    let leases = futures_util::future::join_all(futs).await;
    assert!(leases.iter().all(Result::is_ok));
    assert_eq!(rt.creates(), 6);
    assert_eq!(rt.max_in_flight(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_container_that_never_gets_ready_fails_the_launch() {
    let (rt, s) = setup(WEB).await;
    rt.set_not_ready(true);
    let err = s
        .acquire(&user("a"), "web", SessionKind::Traffic)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not ready after 1m"), "{err}");
    wait_until("removal", || rt.containers().is_empty()).await;
}

#[tokio::test(start_paused = true)]
async fn death_from_outside_ends_sessions_and_the_user_moves_on() {
    let (rt, s) = setup(WEB).await;
    let lease = s
        .acquire(&user("a"), "web", SessionKind::Traffic)
        .await
        .unwrap();
    rt.kill(&lease.container_id, 137);
    let reason = tokio::time::timeout(Duration::from_secs(5), lease.ended())
        .await
        .unwrap();
    assert!(reason.contains("exited with code 137"), "{reason}");
    let next = s
        .acquire(&user("a"), "web", SessionKind::Traffic)
        .await
        .unwrap();
    assert_ne!(next.container, lease.container);
    let stops = s.status().recent_stops;
    assert_eq!(stops[0].reason, StopReason::Died(Some(137)));
}

/// The engine's events lag, or are lost while its stream reconnects: then the proxy failing to
/// reach a container is what tells the scheduler, which asks the engine before acting.
#[tokio::test(start_paused = true)]
async fn an_unreachable_container_found_dead_moves_its_users_on_without_the_event() {
    let (rt, s) = setup(WEB).await;
    let lease = s
        .acquire(&user("a"), "web", SessionKind::Traffic)
        .await
        .unwrap();
    rt.kill_unannounced(&lease.container_id, 137);
    assert_eq!(
        s.unreachable(&lease.container_id).await,
        Some(StopReason::Died(Some(137)))
    );
    assert!(lease.is_ended(), "the dead container's sessions end");
    let next = s
        .acquire(&user("a"), "web", SessionKind::Traffic)
        .await
        .unwrap();
    assert_ne!(next.container, lease.container);
    wait_until("the dead container's removal", || {
        rt.containers().iter().all(|c| c.id != lease.container_id)
    })
    .await;

    // A running container that failed to answer is the app's fault: it stays, users too.
    assert_eq!(s.unreachable(&next.container_id).await, None);
    assert!(!next.is_ended());
    assert_eq!(s.status().containers.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn capacity_is_a_clear_error() {
    let mut o = opts(None);
    o.tuning.max_containers = 1;
    let (_rt, s) = setup_with(SHELL, o).await;
    let _a = s
        .acquire(&user("a"), "shell", SessionKind::Traffic)
        .await
        .unwrap();
    let err = s
        .acquire(&user("b"), "shell", SessionKind::Traffic)
        .await
        .unwrap_err();
    assert!(matches!(err, ScheduleError::AtCapacity { .. }), "{err}");
}

#[tokio::test(start_paused = true)]
async fn unknown_and_disabled_images_are_refused() {
    let (rt, s) = setup(WEB).await;
    rt.add_image("bad:1", &[("orca.kind", "web"), ("orca.users.total", "0")]);
    s.refresh_catalogue().await.unwrap();
    assert!(matches!(
        s.place(&user("a"), "nope", SessionKind::Traffic)
            .unwrap_err(),
        ScheduleError::UnknownImage(_)
    ));
    let err = s
        .place(&user("a"), "bad", SessionKind::Traffic)
        .unwrap_err();
    assert!(err.to_string().contains("orca.users.total"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_changed_image_drains_old_containers() {
    let (rt, s) = setup(WEB).await;
    let a = s
        .acquire(&user("a"), "web", SessionKind::Traffic)
        .await
        .unwrap();
    rt.add_image("img:latest", &with(&[("orca.users.concurrent", "5")], WEB));
    wait_until("catalogue refresh from the image event", || {
        s.status()
            .containers
            .first()
            .is_some_and(|c| !c.accepts_users)
    })
    .await;
    let b = s
        .acquire(&user("b"), "web", SessionKind::Traffic)
        .await
        .unwrap();
    assert_ne!(a.container, b.container);
}

#[tokio::test(start_paused = true)]
async fn warm_pool_keeps_idle_containers_started() {
    let labels = with(
        &[("orca.pool.warm", "2"), ("orca.timeout.linger", "1s")],
        SHELL,
    );
    let (rt, s) = setup(&labels).await;
    wait_until("two warm containers", || rt.running().len() == 2).await;
    let a = s
        .acquire(&user("a"), "shell", SessionKind::Traffic)
        .await
        .unwrap();
    assert_eq!(rt.creates(), 2, "the user took a warm container");
    wait_until("the pool refilled", || rt.running().len() == 3).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(rt.running().len(), 3, "warm containers do not linger-stop");
    drop(a);
}

#[tokio::test(start_paused = true)]
async fn restart_adopts_containers_restores_users_and_removes_strays() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    rt.add_image("img:latest", SHELL);
    let s1 = start_on(&rt, opts(Some(dir.path().into()))).await;
    let lease = s1
        .acquire(&user("alice"), "shell", SessionKind::Traffic)
        .await
        .unwrap();
    let container = lease.container.clone();
    // Strays: an exited container of ours, and a running one of another instance.
    let mut ours = ManagedLabels {
        instance: "t".into(),
        image: "shell".into(),
        spec_hash: "x".into(),
    }
    .to_labels();
    let stray = rt.insert_container("orca-t-shell-dead", ours.clone(), false);
    ours.insert("orca.gateway.instance".into(), "other".into());
    let foreign = rt.insert_container("orca-other-shell-1", ours, true);
    s1.shutdown(false).await;
    drop(lease);
    drop(s1);

    let s2 = start_on(&rt, opts(Some(dir.path().into()))).await;
    let st = s2.status();
    assert_eq!(st.containers.len(), 1, "{st:?}");
    assert_eq!(st.containers[0].name, container);
    assert_eq!(st.containers[0].users[0].user, "alice");
    let again = s2
        .acquire(&user("alice"), "shell", SessionKind::Traffic)
        .await
        .unwrap();
    assert_eq!(
        again.container, container,
        "alice reaches the same container"
    );
    wait_until("the exited stray to be removed", || {
        rt.containers().iter().all(|c| c.id != stray)
    })
    .await;
    let ids: Vec<String> = rt.containers().into_iter().map(|c| c.id).collect();
    assert!(
        ids.contains(&foreign),
        "another instance's container untouched"
    );
}

#[tokio::test(start_paused = true)]
async fn an_adopted_container_not_ready_yet_is_served_only_once_its_ready_check_passes() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    rt.add_image("img:latest", &with(&[("orca.ready", "http:/")], WEB));
    let s1 = start_on(&rt, opts(Some(dir.path().into()))).await;
    let lease = s1
        .acquire(&user("alice"), "web", SessionKind::Traffic)
        .await
        .unwrap();
    let container = lease.container.clone();
    s1.shutdown(false).await;
    drop(lease);
    drop(s1);

    // The app in the running container does not answer (yet): a gateway killed during a
    // launch leaves such a container behind.
    rt.set_not_ready(true);
    let s2 = start_on(&rt, opts(Some(dir.path().into()))).await;
    assert_eq!(s2.status().containers[0].phase, Phase::WaitingReady);
    let waiting = tokio::spawn({
        let s2 = s2.clone();
        async move {
            s2.acquire(&user("alice"), "web", SessionKind::Traffic)
                .await
                .map(|l| l.container.clone())
        }
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!waiting.is_finished(), "served before the app is ready");
    rt.set_not_ready(false);
    let reached = waiting.await.unwrap().unwrap();
    assert_eq!(reached, container, "alice reaches the same container");
    assert_eq!(s2.status().containers[0].phase, Phase::Ready);
}

#[tokio::test(start_paused = true)]
async fn restored_user_who_does_not_return_is_released_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    rt.add_image("img:latest", SHELL);
    let s1 = start_on(&rt, opts(Some(dir.path().into()))).await;
    let lease = s1
        .acquire(&user("alice"), "shell", SessionKind::Traffic)
        .await
        .unwrap();
    s1.shutdown(false).await;
    drop(lease);
    let s2 = start_on(&rt, opts(Some(dir.path().into()))).await;
    assert_eq!(rt.running().len(), 1);
    tokio::time::sleep(Duration::from_secs(121)).await;
    settle().await;
    wait_until("the container to stop", || rt.running().is_empty()).await;
    drop(s2);
}

#[tokio::test(start_paused = true)]
async fn shutdown_with_cleanup_removes_every_container() {
    let (rt, s) = setup(SHELL).await;
    let a = s
        .acquire(&user("a"), "shell", SessionKind::Traffic)
        .await
        .unwrap();
    s.shutdown(true).await;
    assert!(a.is_ended());
    assert!(rt.containers().is_empty());
    assert!(matches!(
        s.place(&user("b"), "shell", SessionKind::Traffic)
            .unwrap_err(),
        ScheduleError::ShuttingDown
    ));
}

#[tokio::test(start_paused = true)]
async fn an_operator_ends_one_users_session_and_the_container_stays_for_the_other() {
    let (_rt, s) = setup(&with(&[("orca.users.concurrent", "2")], WEB)).await;
    let a = s
        .acquire(&user("a"), "web", SessionKind::Held)
        .await
        .unwrap();
    let b = s
        .acquire(&user("b"), "web", SessionKind::Held)
        .await
        .unwrap();
    assert_eq!(a.container, b.container);
    assert_eq!(s.end_session(&user("a"), "web"), Ok(a.container.clone()));
    assert!(a.is_ended());
    assert_eq!(a.ended().await, admin::ENDED_BY_ADMIN);
    assert!(!b.is_ended());
    assert_eq!(
        s.end_session(&user("a"), "web"),
        Err(AdminError::NoSession {
            user: "a".into(),
            image: "web".into()
        })
    );
    let status = s.status();
    let users: Vec<&str> = status.containers[0]
        .users
        .iter()
        .map(|u| u.user.as_str())
        .collect();
    assert_eq!(users, ["b"]);
}

#[tokio::test(start_paused = true)]
async fn an_operator_stops_a_container_its_users_see_why_and_it_is_removed() {
    let (rt, s) = setup(WEB).await;
    let a = s
        .acquire(&user("a"), "web", SessionKind::Held)
        .await
        .unwrap();
    assert_eq!(
        s.stop_container("nope"),
        Err(AdminError::NoContainer("nope".into()))
    );
    s.stop_container(&a.container).unwrap();
    assert!(a.is_ended());
    assert!(a.ended().await.contains("an administrator stopped it"));
    assert!(matches!(
        s.stop_container(&a.container),
        Err(AdminError::AlreadyStopping { .. })
    ));
    wait_until("the container's removal", || rt.containers().is_empty()).await;
    let stops = s.status().recent_stops;
    assert_eq!(
        stops.last().map(|r| r.reason.clone()),
        Some(StopReason::Admin)
    );
}

#[tokio::test(start_paused = true)]
async fn the_audit_log_has_each_sessions_start_and_end_with_bytes_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let mut o = opts(None);
    o.audit =
        crate::audit::Audit::open(&file, prometheus::IntCounter::new("e", "e").unwrap()).unwrap();
    let (_rt, s) = setup_with(SHELL, o.clone()).await;
    let client: std::net::SocketAddr = "192.0.2.7:40000".parse().unwrap();
    let lease = s
        .acquire(&user("alice"), "shell", Arrival::ssh(client))
        .await
        .unwrap();
    lease.activity().record(100, 2000);
    drop(lease); // ssh images do not persist users between reconnects: the session ends
    settle().await;
    o.audit.flush();
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{records:?}");
    let (start, end) = (&records[0], &records[1]);
    assert_eq!(start["event"], "session_start");
    assert_eq!(start["user"], "alice");
    assert_eq!(start["image"], "shell");
    assert_eq!(start["protocol"], "ssh");
    assert_eq!(start["client"], "192.0.2.7:40000");
    assert_eq!(end["event"], "session_end");
    assert_eq!(end["container"], start["container"]);
    assert_eq!(end["client"], "192.0.2.7:40000");
    assert_eq!(
        (end["bytes_in"].as_u64(), end["bytes_out"].as_u64()),
        (Some(100), Some(2000))
    );
    assert_eq!(end["reason"], "you disconnected");
    let metrics = s.metrics().render();
    assert!(
        metrics.contains("orca_proxied_bytes_total{direction=\"to_client\",image=\"shell\"} 2000"),
        "{metrics}"
    );
}
