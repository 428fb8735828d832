//! `orca serve` as assembled for operators (`serve::run_on`, the embedded resolvers from a
//! config file naming only a state directory): the SSH listener logs a user in with a key from
//! `<state_dir>/keys/<user>.pub`, runs their command in the default image, keeps its generated
//! host key across restarts, passes `ssh-audit` without a failure, and ends sessions with a
//! message at shutdown.

use std::process::Command;
use std::time::Duration;

use orca::config::Config;
use orca::serve::{Control, Listeners, run_on};
use orca_tests::gateway::Cleanup;
use orca_tests::ssh::{keygen, run, text};
use orca_tests::{build_image, unique_name, wait_for};
use tokio_util::sync::CancellationToken;

struct Running {
    ssh_port: u16,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), orca::serve::ServeError>>,
}

async fn serve(config: &Config) -> Running {
    let listeners = Listeners {
        https: tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind"),
        http: None,
        ssh: tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind"),
        admin: tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind"),
    };
    let ssh_port = listeners.ssh.local_addr().expect("local addr").port();
    let shutdown = CancellationToken::new();
    let control = Control {
        shutdown: shutdown.clone(),
        ..Control::default()
    };
    let task = tokio::spawn(run_on(config.clone(), listeners, control));
    wait_for("the ssh listener", Duration::from_secs(60), || async {
        let banner = async {
            use tokio::io::AsyncReadExt;
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", ssh_port))
                .await
                .ok()?;
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).await.ok()?;
            buf[..n].starts_with(b"SSH-2.0-Orca").then_some(())
        };
        banner.await
    })
    .await
    .expect("the gateway starts");
    Running {
        ssh_port,
        shutdown,
        task,
    }
}

fn ssh_command(port: u16, key: &std::path::Path, known_hosts: &std::path::Path) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args(["-p", &port.to_string()])
        .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"])
        .args(["-o", "HostKeyAlias=orca-under-test"])
        .args(["-o", "StrictHostKeyChecking=accept-new", "-o"])
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .arg("-i")
        .arg(key);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orca_serve_runs_ssh_sessions_on_its_defaults_and_passes_ssh_audit() {
    let image = unique_name("ssh");
    build_image(
        "ssh",
        &format!("{image}:latest"),
        &[("orca.name", image.as_str())],
    )
    .unwrap();
    let instance = unique_name("serve");
    let _cleanup = Cleanup(instance.clone());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let file = dir.path().join("orca.toml");
    std::fs::write(
        &file,
        format!(
            "state_dir = \"{}\"\ninstance = \"{instance}\"\n[ssh]\ndefault_image = \"{image}\"\n",
            state.display()
        ),
    )
    .unwrap();
    let config = Config::load(&file).unwrap();
    let orca = serve(&config).await;

    // A key in <state_dir>/keys/alice.pub logs alice in; her command runs in the default image.
    let key = dir.path().join("alice");
    keygen(&key, "alice");
    std::fs::copy(
        key.with_extension("pub"),
        state.join("keys").join("alice.pub"),
    )
    .unwrap();
    let known_hosts = dir.path().join("known_hosts");
    let mut cmd = ssh_command(orca.ssh_port, &key, &known_hosts);
    cmd.arg("alice@127.0.0.1").arg("echo served by $ORCA_USER");
    let out = run(cmd, Vec::new()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "served by alice\n");

    // ssh-audit finds nothing to fail: no weak algorithm, no SHA-1, no small DH group.
    let audit = Command::new("ssh-audit")
        .args(["-n", "-p", &orca.ssh_port.to_string(), "127.0.0.1"])
        .output()
        .expect("ssh-audit runs (scripts/setup installs it)");
    let report = String::from_utf8_lossy(&audit.stdout);
    assert!(report.contains("SSH-2.0-Orca_"), "{report}");
    let failures: Vec<&str> = report.lines().filter(|l| l.contains("[fail]")).collect();
    assert!(failures.is_empty(), "{failures:#?}\n{report}");
    assert_ne!(audit.status.code(), Some(3), "{report}");

    // A session open at shutdown is told why it ends.
    let mut cmd = ssh_command(orca.ssh_port, &key, &known_hosts);
    cmd.arg("alice@127.0.0.1").arg("echo started; sleep 120");
    let session = tokio::spawn(run(cmd, Vec::new()));
    wait_for("the session to run", Duration::from_secs(60), || async {
        let status = has_containers(&instance);
        status.then_some(())
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    orca.shutdown.cancel();
    let out = tokio::time::timeout(Duration::from_secs(30), session)
        .await
        .expect("the session ends at shutdown")
        .unwrap();
    assert_eq!(out.status.code(), Some(255), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the gateway is shutting down"),
        "{}",
        text(&out)
    );
    orca.task.await.unwrap().unwrap();

    // After a restart the client sees the same host key (known_hosts is strict from here on).
    let orca = serve(&config).await;
    let mut cmd = ssh_command(orca.ssh_port, &key, &known_hosts);
    cmd.args(["-o", "StrictHostKeyChecking=yes"])
        .arg("alice@127.0.0.1")
        .arg("true");
    let out = run(cmd, Vec::new()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    orca.shutdown.cancel();
    orca.task.await.unwrap().unwrap();
}

/// Whether a container of `instance` runs.
fn has_containers(instance: &str) -> bool {
    !orca_tests::container_ids_with_label(&format!("orca.gateway.instance={instance}")).is_empty()
}
