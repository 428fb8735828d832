//! SSH logins with the real OpenSSH client against the gateway's SSH listener: keys answered by
//! the bundled `ssh-key` resolver, passwords (both methods) by the password fixture plugin.
//! Each case reads OpenSSH's own account of the login (`-v`): the command itself names no image
//! and fails, which is the sessions tests' business (`ssh_sessions.rs`).

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use orca::listeners::host_keys;
use orca_tests::gateway::{PASSWORD, USER};
use orca_tests::ssh::{SshGateway, SshOptions, askpass, keygen};

/// `ssh -v` as `login` with only `method` allowed; a password comes from an askpass script.
async fn ssh_login(
    port: u16,
    login: &str,
    method: &str,
    key: Option<&Path>,
    password: Option<(&Path, &str)>,
) -> Output {
    let mut cmd = Command::new("ssh");
    cmd.args(["-v", "-p", &port.to_string()])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args(["-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10"])
        .args(["-o", &format!("PreferredAuthentications={method}")])
        .args(["-o", "NumberOfPasswordPrompts=1"])
        .stdin(std::process::Stdio::null());
    if let Some(key) = key {
        cmd.arg("-i").arg(key);
    } else {
        cmd.args(["-o", "PubkeyAuthentication=no"]);
    }
    match password {
        Some((dir, secret)) => askpass(&mut cmd, &dir.join("askpass"), secret),
        None => {
            cmd.args(["-o", "BatchMode=yes"]);
        }
    }
    cmd.arg(format!("{login}@127.0.0.1")).arg("true");
    tokio::task::spawn_blocking(move || cmd.output().expect("run ssh"))
        .await
        .expect("the ssh task")
}

fn authenticated(out: &Output, method: &str) -> bool {
    String::from_utf8_lossy(&out.stderr).contains(&format!("using \"{method}\""))
        && String::from_utf8_lossy(&out.stderr).contains("Authenticated to 127.0.0.1")
}

fn key_pair(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let path = dir.join(name);
    keygen(&path, name);
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("the public key");
    (path, public)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_passwords_log_in_through_the_resolvers() {
    let server = SshGateway::start(SshOptions::default()).await;
    let (state, files, keys) = (&server.state, &server.keys, &server.scratch);
    let (alice_key, alice_pub) = key_pair(keys, "alice");
    let (stranger_key, _) = key_pair(keys, "stranger");
    std::fs::write(files.join("alice.pub"), alice_pub).unwrap();

    // alice's key, with and without an image in the login name.
    for login in ["alice", "alice+shell"] {
        let out = ssh_login(server.port, login, "publickey", Some(&alice_key), None).await;
        assert!(
            authenticated(&out, "publickey"),
            "{login}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Another key for alice, and alice's key for someone else: refused.
    let out = ssh_login(server.port, "alice", "publickey", Some(&stranger_key), None).await;
    assert!(!authenticated(&out, "publickey"));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{out:?}"
    );
    let out = ssh_login(server.port, "bob", "publickey", Some(&alice_key), None).await;
    assert!(!authenticated(&out, "publickey"), "{out:?}");
    // A malformed login name is refused before any resolver is asked.
    let out = ssh_login(server.port, "alice+", "publickey", Some(&alice_key), None).await;
    assert!(!authenticated(&out, "publickey"), "{out:?}");

    // The password, by either method; a wrong one refused.
    for method in ["password", "keyboard-interactive"] {
        let out = ssh_login(server.port, USER, method, None, Some((keys, PASSWORD))).await;
        assert!(
            authenticated(&out, method),
            "{method}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = ssh_login(server.port, USER, method, None, Some((keys, "wrong"))).await;
        assert!(!authenticated(&out, method), "{method}: {out:?}");
    }

    // The client was shown the ed25519 host key generated into the state directory.
    let kept = host_keys::load(&[], state).unwrap();
    let fingerprint = kept[0]
        .public_key()
        .fingerprint(russh::keys::HashAlg::Sha256)
        .to_string();
    let out = ssh_login(server.port, "alice", "publickey", Some(&alice_key), None).await;
    let shown = format!("Server host key: ssh-ed25519 {fingerprint}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&shown),
        "{shown}: {out:?}"
    );
}

/// A client that connects and never logs in is disconnected once the login grace is over,
/// whether it stalls before the key exchange or in the middle of authenticating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_does_not_log_in_is_closed_after_the_grace() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let grace = Duration::from_secs(2);
    let server = SshGateway::start(SshOptions {
        login_grace: grace,
        ..SshOptions::default()
    })
    .await;

    let started = Instant::now();
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    silent.write_all(b"SSH-2.0-silent\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match silent.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the silent client was never disconnected");
    let waited = started.elapsed();
    assert!(waited >= grace, "closed after {waited:?}, before the grace");
}
