//! The plugin sandbox through a running gateway: the hostile fixture (`plugins/fixtures/hostile`)
//! as a resolver of the in-process HTTPS gateway, asked per request to read a file or open a
//! socket. Inside its grant it works; outside, the plugin is refused, the request gets no
//! identity and reaches no container, and other users are served meanwhile. What each failure
//! does at the resolver level is `identity_sandbox.rs`'s.

use orca::config::PluginSource;
use orca_tests::app::{probe, seen};
use orca_tests::gateway::app_gateway_with;
use orca_tests::{identity, plugins, unique_name};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_plugin_reads_and_connects_only_inside_its_grant_while_others_are_served() {
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("granted.txt"), "yes").unwrap();
    let granted = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let granted_addr = granted.local_addr().unwrap().to_string();
    // Listening, so a connection would succeed if the sandbox let it out.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    other.set_nonblocking(true).unwrap();
    let other_addr = other.local_addr().unwrap().to_string();
    let secret = files.path().parent().unwrap().join(unique_name("secret"));
    std::fs::write(&secret, "top secret").unwrap();

    let wasm = plugins::rust_plugin("orca-fixture-hostile").expect("fixture builds");
    let mut hostile = identity::resolver("hostile", PluginSource::Path(wasm), &[("mode", "ok")]);
    hostile.connect = vec![granted_addr.clone()];
    hostile.files = Some(files.path().to_path_buf());
    let gw = app_gateway_with(&[("orca.users.concurrent", "1")], vec![hostile]).await;
    let as_mode = |mode: &str, key: &str, value: &str| {
        [
            "-H".to_string(),
            format!("x-mode: {mode}"),
            "-H".to_string(),
            format!("{key}: {value}"),
        ]
    };
    let request = |args: Vec<String>, path: String| {
        let gw = &gw;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            gw.curl(&gw.image, &path, &args).await
        }
    };

    let control = probe();
    let alice = request(vec!["-H".into(), "x-user: alice".into()], control.clone()).await;
    assert_eq!(alice.status, 200, "{alice:?}");
    let home = alice.hostname();

    // Inside the grant the fixture works through the gateway: its checks can succeed.
    let inside = request(
        as_mode("file", "x-path", "/files/granted.txt").to_vec(),
        "/headers".into(),
    )
    .await;
    assert_eq!(
        seen(&inside.body, "x-orca-user"),
        ["file-read"],
        "{inside:?}"
    );
    let socket = request(
        as_mode("socket", "x-target", &granted_addr).to_vec(),
        "/headers".into(),
    )
    .await;
    assert_eq!(
        seen(&socket.body, "x-orca-user"),
        ["socket-opened"],
        "{socket:?}"
    );

    // Outside it: refused inside the plugin, no identity, no container; alice's requests,
    // sent at the same time, are answered from her container.
    let mut probes = Vec::new();
    let outside = [
        as_mode("file", "x-path", "/etc/passwd"),
        as_mode("file", "x-path", &secret.display().to_string()),
        as_mode("file", "x-path", "/files/../etc/passwd"),
        as_mode("write", "x-path", "/files/granted.txt"),
        as_mode("socket", "x-target", &other_addr),
        as_mode("socket", "x-target", "127.0.0.1:22"),
    ];
    for args in outside {
        let p = probe();
        let what = args.join(" ");
        let (refused, served) = tokio::join!(
            request(args.to_vec(), p.clone()),
            request(vec!["-H".into(), "x-user: alice".into()], "/headers".into())
        );
        assert_eq!(refused.status, 403, "{what}: {refused:?}");
        assert!(refused.line("hostname").is_none(), "{what}: {refused:?}");
        assert_eq!(
            (served.status, served.hostname()),
            (200, home.clone()),
            "{what}: {served:?}"
        );
        probes.push(p);
    }
    assert!(
        other.accept().is_err(),
        "the plugin reached a peer outside `connect`"
    );
    assert_eq!(
        std::fs::read_to_string(files.path().join("granted.txt")).unwrap(),
        "yes"
    );
    gw.assert_no_container_saw(&probes, &control);
    // Only the identities the grant allowed ever reached the scheduler.
    let mut users: Vec<String> = gw
        .scheduler
        .status()
        .containers
        .iter()
        .flat_map(|c| c.users.iter().map(|u| u.user.clone()))
        .collect();
    users.sort();
    assert_eq!(users, ["alice", "file-read", "socket-opened"]);
    drop(granted);
}
