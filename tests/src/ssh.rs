//! An in-process SSH gateway for the SSH tests: the real SSH front, resolvers and scheduler
//! against the real Docker engine on 127.0.0.1, and the OpenSSH client to drive it.
//!
//! Resolvers, in order: the bundled `ssh-key` reading `<keys>/<user>.pub`, and the password
//! fixture knowing [`USER`] / [`PASSWORD`] in group `admins`, plus any the test adds.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use orca::config::{PluginSource, ResolverConfig};
use orca::identity::Identities;
use orca::listeners::{host_keys, ssh};
use orca::live::Live;
use orca::metrics::Metrics;
use orca::runtime::docker::DockerRuntime;
use orca::scheduler::Scheduler;
use orca::ssh::server::SshFront;
use orca::ssh::session::{Sessions, SshSettings};
use tokio_util::sync::CancellationToken;

use crate::gateway::{Cleanup, PASSWORD, USER, scheduler_options};
use crate::{identity, plugins, unique_name};

/// How a test wants its gateway.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// From connecting to logging in.
    pub login_grace: Duration,
    /// `[ssh] default_image`.
    pub default_image: Option<String>,
    /// Resolvers tried after the two of every test gateway.
    pub resolvers: Vec<ResolverConfig>,
}

impl Default for SshOptions {
    fn default() -> Self {
        Self {
            login_grace: orca::config::DEFAULT_SSH_LOGIN_GRACE,
            default_image: None,
            resolvers: Vec::new(),
        }
    }
}

/// A gateway serving SSH on 127.0.0.1:<port>; dropping it stops the server and removes the
/// containers it launched, even when the test panicked.
#[derive(Debug)]
pub struct SshGateway {
    /// The SSH port on 127.0.0.1.
    pub port: u16,
    /// The state directory (host key, bindings).
    pub state: PathBuf,
    /// The directory the `ssh-key` resolver reads `<user>.pub` from.
    pub keys: PathBuf,
    /// The scheduler, to look at the containers the sessions caused.
    pub scheduler: Scheduler,
    /// Where client keys and scratch files go.
    pub scratch: PathBuf,
    /// The gateway's metrics, to see what the sessions counted.
    pub metrics: Metrics,
    /// The scheduler's instance, the `orca.gateway.instance` label of its containers.
    pub instance: String,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
    _cleanup: Cleanup,
}

impl Drop for SshGateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl SshGateway {
    /// Starts a gateway.
    pub async fn start(options: SshOptions) -> Self {
        crate::log::capture();
        let dir = tempfile::tempdir().expect("tempdir");
        let (state, keys, scratch) = (
            dir.path().join("state"),
            dir.path().join("keys"),
            dir.path().join("scratch"),
        );
        for d in [&state, &keys, &scratch] {
            std::fs::create_dir(d).expect("create a test directory");
        }
        let mut key_resolver =
            identity::resolver("keys", PluginSource::Bundled("ssh-key".into()), &[]);
        key_resolver.files = Some(keys.clone());
        let passwords = plugins::rust_plugin("orca-fixture-passwords").expect("fixture builds");
        let (user_key, groups_key) = (format!("user:{USER}"), format!("groups:{USER}"));
        let mut resolvers = vec![
            key_resolver,
            identity::resolver(
                "passwords",
                PluginSource::Path(passwords),
                &[
                    (user_key.as_str(), PASSWORD),
                    (groups_key.as_str(), "admins"),
                ],
            ),
        ];
        resolvers.extend(options.resolvers);
        let metrics = Metrics::new();
        let identities = Identities::load(&resolvers, &state, metrics.clone())
            .await
            .expect("resolvers load");
        let instance = unique_name("ssh");
        let docker = DockerRuntime::connect(None, "bridge")
            .await
            .expect("docker reachable");
        let scheduler = Scheduler::start(
            Arc::new(docker),
            scheduler_options(&instance, &state),
            Arc::new(metrics.clone()),
        )
        .await
        .expect("scheduler starts");
        let shutdown = CancellationToken::new();
        let front = SshFront::new(
            Arc::new(identities),
            Sessions {
                scheduler: scheduler.clone(),
                settings: Live::new(SshSettings {
                    default_image: options.default_image,
                    env: vec!["LANG".into(), "LC_*".into()],
                }),
                ready_timeout: Duration::from_secs(30),
                shutdown: shutdown.clone(),
            },
        );
        let host_keys = host_keys::load(&[], &state).expect("a host key");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        tokio::spawn(ssh::serve(
            listener,
            Arc::new(ssh::server_config(host_keys)),
            front,
            ssh::ServeOptions {
                login_grace: options.login_grace,
                ..ssh::ServeOptions::default()
            },
            shutdown.clone(),
        ));
        Self {
            port,
            state,
            keys,
            scheduler,
            scratch,
            metrics,
            shutdown,
            _dir: dir,
            _cleanup: Cleanup(instance.clone()),
            instance,
        }
    }

    /// `docker top` of every container of this gateway, for a failing test to print.
    pub fn processes(&self) -> String {
        crate::container_ids_with_label(&format!("orca.gateway.instance={}", self.instance))
            .iter()
            .map(|id| {
                let top = crate::docker(&["top", id]).unwrap_or_else(|e| format!("{e:#}\n"));
                format!("{id:.12}:\n{top}")
            })
            .collect()
    }

    /// An ed25519 key for `user`, its public half registered with the `ssh-key` resolver;
    /// returns the private key's path.
    pub fn user_key(&self, user: &str) -> PathBuf {
        let path = self.client_key(user);
        let public = std::fs::read_to_string(path.with_extension("pub")).expect("public key");
        std::fs::write(self.keys.join(format!("{user}.pub")), public).expect("register the key");
        path
    }

    /// An ed25519 key pair for `user` in the scratch directory, known to no resolver;
    /// returns the private key's path (the public one ends in `.pub`).
    pub fn client_key(&self, user: &str) -> PathBuf {
        let path = self.scratch.join(format!("{user}_ed25519"));
        if !path.exists() {
            keygen(&path, user);
        }
        path
    }

    /// `ssh` as `login` with `password` only (given by an askpass script), running `command`.
    pub async fn ssh_with_password(&self, login: &str, password: &str, command: &str) -> Output {
        let script = self.scratch.join(format!("askpass-{}", unique_name("pw")));
        let mut cmd = Command::new("ssh");
        cmd.args(["-p", &self.port.to_string()])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args(["-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10"])
            .args([
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "NumberOfPasswordPrompts=1",
            ])
            .args([
                "-o",
                "PreferredAuthentications=password,keyboard-interactive",
            ])
            .arg(format!("{login}@127.0.0.1"))
            .arg(command);
        askpass(&mut cmd, &script, password);
        run(cmd, Vec::new()).await
    }

    /// The OpenSSH client's options for this gateway, logging in with `key` (no prompts, no
    /// known-hosts file), without the login and command.
    pub fn client_options(&self, key: &Path) -> Vec<String> {
        let mut args: Vec<String> = [
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ConnectTimeout=10",
            "-i",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(key.display().to_string());
        args
    }

    /// `ssh -p <port> <login>@127.0.0.1 <command>` with `key`, `stdin` fed to it.
    pub async fn ssh(&self, key: &Path, login: &str, command: &str, stdin: &[u8]) -> Output {
        let mut cmd = Command::new("ssh");
        cmd.args(["-p", &self.port.to_string()])
            .args(self.client_options(key))
            .arg(format!("{login}@127.0.0.1"))
            .arg(command);
        run(cmd, stdin.to_vec()).await
    }
}

/// Makes an ed25519 key pair without a passphrase at `path` (public half at `path.pub`).
pub fn keygen(path: &Path, comment: &str) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .status()
        .expect("run ssh-keygen (scripts/setup installs openssh-client)");
    assert!(status.success(), "ssh-keygen failed for {}", path.display());
}

/// Makes `cmd` (an OpenSSH client) answer password prompts with `secret`, through an askpass
/// script written at `script`.
pub fn askpass(cmd: &mut Command, script: &Path, secret: &str) {
    std::fs::write(script, format!("#!/bin/sh\necho '{secret}'\n"))
        .expect("write the askpass script");
    std::fs::set_permissions(script, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("make the askpass script executable");
    cmd.env("SSH_ASKPASS", script)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0");
}

/// Runs a client command to its end off the async runtime, feeding it `stdin`.
pub async fn run(mut cmd: Command, stdin: Vec<u8>) -> Output {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the client runs (scripts/setup installs openssh-client)");
        let mut input = child.stdin.take().expect("piped stdin");
        let feeder = std::thread::spawn(move || {
            let _ = input.write_all(&stdin);
        });
        let out = child.wait_with_output().expect("the client finishes");
        let _ = feeder.join();
        out
    })
    .await
    .expect("the client task")
}

/// The output's stdout and stderr as text, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A russh client handler that accepts any host key (the test's own gateway): for what the
/// OpenSSH client will not send, such as signals or control characters in a login name.
#[derive(Debug)]
pub struct Trusting;

impl russh::client::Handler for Trusting {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}
