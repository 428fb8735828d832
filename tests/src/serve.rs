//! The real `orca` binary as an operator runs it: `orca serve --config FILE` in a child
//! process on free loopback ports, with its own instance, state directory, JSON logs and admin
//! token; signals (`SIGHUP`, `SIGTERM`, `SIGKILL`) and restarts with the same configuration;
//! and clients for what it serves: the admin API (curl with the token), HTTPS users (curl with
//! a cookie jar) and SSH users (OpenSSH).
//!
//! The binary is `<target>/debug/orca`, built by `cargo test --workspace --all-targets`, and
//! refused when older than the gateway's sources; when it is missing it is built into
//! `<target>/orca-bin` (a directory of its own, so the build does not wait for the lock of the
//! build that runs the tests).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use crate::gateway::Cleanup;
use crate::plugins::repo_root;
use crate::{container_ids_with_label, target_dir, unique_name, wait_for};

/// How long the gateway may take to answer `/healthz` after it is spawned.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long the gateway may take to exit after `SIGTERM` (its shutdown grace is 2 s).
const EXIT_DEADLINE: Duration = Duration::from_secs(30);

/// The `orca` binary, built on first use when the workspace build did not leave one.
pub fn orca_binary() -> anyhow::Result<PathBuf> {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(path) = built.as_ref() {
        return Ok(path.clone());
    }
    let target = target_dir()?;
    let mut binary = target.join("debug").join("orca");
    if binary.is_file() {
        // `cargo test -p orca-tests` rebuilds the library the in-process tests link, not this
        // binary: testing an old build would report on code that is no longer there.
        let built = std::fs::metadata(&binary)?.modified()?;
        let gateway = repo_root().join("gateway");
        if let Some(newer) = newest_file(&gateway.join("src"))?.filter(|(t, _)| *t > built) {
            bail!(
                "{} is older than {}: rebuild it with `cargo build -p orca-gateway --bin orca` \
                 (`cargo test --workspace --all-targets` does)",
                binary.display(),
                newer.1.display()
            );
        }
    } else {
        let own = target.join("orca-bin");
        let out = Command::new(env!("CARGO"))
            .args([
                "build",
                "-p",
                "orca-gateway",
                "--bin",
                "orca",
                "--manifest-path",
            ])
            .arg(repo_root().join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &own)
            .output()
            .context("running cargo to build the orca binary")?;
        if !out.status.success() {
            bail!(
                "cargo build of the orca binary failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        binary = own.join("debug").join("orca");
    }
    *built = Some(binary.clone());
    Ok(binary)
}

/// The most recently modified Rust source under `dir`, with its modification time.
fn newest_file(dir: &Path) -> anyhow::Result<Option<(std::time::SystemTime, PathBuf)>> {
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let found = if entry.file_type()?.is_dir() {
            newest_file(&entry.path())?
        } else if entry.path().extension().is_some_and(|e| e == "rs") {
            Some((entry.metadata()?.modified()?, entry.path()))
        } else {
            None
        };
        if let Some(f) = found
            && newest.as_ref().is_none_or(|n| f.0 > n.0)
        {
            newest = Some(f);
        }
    }
    Ok(newest)
}

/// What a test adds to the configuration every gateway gets.
#[derive(Debug, Default, Clone)]
pub struct ServeOptions {
    /// Lines added to the `[https]` table (`cert = "…"`).
    pub https: String,
    /// Lines added to the `[ssh]` table (`default_image = "…"`).
    pub ssh: String,
    /// Text appended after every table (`[[resolver]]` tables).
    pub tail: String,
}

/// A gateway run by the real binary. Dropping it kills the process and removes the containers
/// of its instance, even when the test panicked; a panicking test also prints the gateway's
/// log.
#[derive(Debug)]
pub struct Orca {
    /// The gateway's `instance`, the value of its containers' `orca.gateway.instance` label.
    pub instance: String,
    /// The configuration file.
    pub config: PathBuf,
    /// The state directory.
    pub state: PathBuf,
    /// A scratch directory for the test's own files (keys, certificates, cookie jars).
    pub scratch: PathBuf,
    /// The HTTPS port on 127.0.0.1.
    pub https_port: u16,
    /// The SSH port on 127.0.0.1.
    pub ssh_port: u16,
    /// The admin port on 127.0.0.1.
    pub admin_port: u16,
    /// The admin bearer token the clients send.
    pub token: String,
    /// `[admin] token_file`.
    pub token_file: PathBuf,
    child: Option<Child>,
    runs: u32,
    _cleanup: Cleanup,
    _dir: tempfile::TempDir,
}

impl Drop for Orca {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

impl Orca {
    /// Writes a configuration with fresh ports, instance and state directory, and `options`.
    /// Nothing runs until [`Orca::start`].
    pub fn configure(options: &ServeOptions) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating the gateway's directory")?;
        let (state, scratch) = (dir.path().join("state"), dir.path().join("scratch"));
        std::fs::create_dir(&scratch)?;
        let instance = unique_name("ops");
        let token = format!("token-{}", unique_name("admin"));
        let token_file = dir.path().join("admin.token");
        std::fs::write(&token_file, format!("{token}\n"))?;
        let (https_port, ssh_port, admin_port) = (free_port()?, free_port()?, free_port()?);
        let config = dir.path().join("orca.toml");
        let text = format!(
            "state_dir = \"{state}\"\ninstance = \"{instance}\"\nshutdown_grace = \"2s\"\n\
             [https]\nlisten = \"127.0.0.1:{https_port}\"\n{https}\n\
             [ssh]\nlisten = \"127.0.0.1:{ssh_port}\"\n{ssh}\n\
             [admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken_file = \"{token_file}\"\n\
             [log]\nformat = \"json\"\n{tail}\n",
            state = state.display(),
            token_file = token_file.display(),
            https = options.https,
            ssh = options.ssh,
            tail = options.tail,
        );
        std::fs::write(&config, text)?;
        Ok(Self {
            _cleanup: Cleanup(instance.clone()),
            instance,
            config,
            state,
            scratch,
            https_port,
            ssh_port,
            admin_port,
            token,
            token_file,
            child: None,
            runs: 0,
            _dir: dir,
        })
    }

    /// Spawns `orca serve --config FILE <args>` and waits until `/healthz` answers 200.
    pub async fn start(&mut self, args: &[&str]) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("the gateway already runs");
        }
        self.runs += 1;
        let log = std::fs::File::create(self.log_path(self.runs))?;
        let child = Command::new(orca_binary()?)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawning orca serve")?;
        self.child = Some(child);
        let result = wait_for("/healthz to answer 200", START_DEADLINE, || async {
            self.healthz().await.ok().filter(|c| *c == 200)
        })
        .await;
        if let Err(e) = result {
            bail!("{e}\n{}", self.logs());
        }
        Ok(())
    }

    /// Runs `orca serve --config FILE <args>` expecting it to give up on its own (a start
    /// refused): its exit code and that run's log.
    pub async fn run_to_exit(&mut self, args: &[&str]) -> anyhow::Result<(Option<i32>, String)> {
        if self.child.is_some() {
            bail!("the gateway already runs");
        }
        self.runs += 1;
        let log = self.log_path(self.runs);
        let mut cmd = tokio::process::Command::new(orca_binary()?);
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true);
        let status = tokio::time::timeout(START_DEADLINE, cmd.status())
            .await
            .context("orca serve was expected to exit, and still runs")??;
        Ok((status.code(), std::fs::read_to_string(&log)?))
    }

    /// The process id of the running gateway.
    pub fn pid(&self) -> anyhow::Result<u32> {
        Ok(self
            .child
            .as_ref()
            .context("the gateway is not running")?
            .id())
    }

    /// Sends `signal` (`HUP`, `TERM`, `KILL`) to the gateway.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid()?.to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{signal} failed");
        }
        Ok(())
    }

    /// `SIGHUP`: reread the configuration.
    pub fn sighup(&self) -> anyhow::Result<()> {
        self.signal("HUP")
    }

    /// `kill -9`, and reaps the process.
    pub async fn kill9(&mut self) -> anyhow::Result<()> {
        self.signal("KILL")?;
        self.wait_exit().await.map(|_| ())
    }

    /// `SIGTERM`, then waits for the process to exit; returns its exit code.
    pub async fn sigterm(&mut self) -> anyhow::Result<Option<i32>> {
        self.signal("TERM")?;
        self.wait_exit().await
    }

    /// Starts the gateway again with the same configuration.
    pub async fn restart(&mut self, args: &[&str]) -> anyhow::Result<()> {
        self.start(args).await
    }

    /// Waits for the gateway to exit (after a signal); returns its exit code.
    pub async fn wait_exit(&mut self) -> anyhow::Result<Option<i32>> {
        let child = self.child.as_mut().context("the gateway is not running")?;
        let status = wait_for("the gateway to exit", EXIT_DEADLINE, || {
            let polled = child.try_wait().ok().flatten();
            async move { polled }
        })
        .await?;
        self.child = None;
        Ok(status.code())
    }

    /// Every run's log (stderr), labelled by run.
    pub fn logs(&self) -> String {
        (1..=self.runs)
            .map(|run| {
                let text = std::fs::read_to_string(self.log_path(run)).unwrap_or_default();
                format!("--- orca serve, run {run}, stderr ---\n{text}")
            })
            .collect()
    }

    /// Every line the gateway wrote to stderr in every run, each parsed as JSON (`[log]
    /// format = "json"`); an error names a line that is not.
    pub fn log_records(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let mut records = Vec::new();
        for run in 1..=self.runs {
            let text = std::fs::read_to_string(self.log_path(run))?;
            for line in text.lines() {
                records.push(
                    serde_json::from_str(line)
                        .with_context(|| format!("run {run}: a log line is not JSON: {line}"))?,
                );
            }
        }
        Ok(records)
    }

    fn log_path(&self, run: u32) -> PathBuf {
        self.scratch.join(format!("orca-run-{run}.log"))
    }

    /// `/healthz`'s status code, asked without the token.
    pub async fn healthz(&self) -> anyhow::Result<u16> {
        let (code, _) = self.admin_get("/healthz", false).await?;
        Ok(code)
    }

    /// `GET path` on the admin listener with the token: the body of a 200, an error otherwise.
    pub async fn api(&self, path: &str) -> anyhow::Result<String> {
        let (code, body) = self.admin_get(path, true).await?;
        if code != 200 {
            bail!("GET {path} answered {code}: {body}");
        }
        Ok(body)
    }

    /// `GET path` on the admin listener, parsed as JSON.
    pub async fn api_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let body = self.api(path).await?;
        serde_json::from_str(&body).with_context(|| format!("GET {path} is not JSON: {body}"))
    }

    /// `/metrics` (with the token).
    pub async fn metrics(&self) -> anyhow::Result<String> {
        self.api("/metrics").await
    }

    /// The value of the sample `name{labels}` in `/metrics`, labels written as the exposition
    /// writes them (sorted, `key="value"` joined by commas; empty for none); `None` when absent.
    pub async fn metric(&self, name: &str, labels: &str) -> anyhow::Result<Option<f64>> {
        Ok(sample(&self.metrics().await?, name, labels))
    }

    /// Waits until `name{labels}` reads `want`.
    pub async fn wait_metric(&self, name: &str, labels: &str, want: f64) -> anyhow::Result<()> {
        let what = format!("{name}{{{labels}}} to read {want}");
        let result = wait_for(&what, Duration::from_secs(30), || async {
            (self.metric(name, labels).await.ok().flatten() == Some(want)).then_some(())
        })
        .await;
        if let Err(e) = result {
            let now = self.metrics().await.unwrap_or_default();
            bail!("{e}; /metrics:\n{now}");
        }
        Ok(())
    }

    /// `GET path` on the admin listener, with or without the token: (status, body).
    pub async fn admin_get(&self, path: &str, with_token: bool) -> anyhow::Result<(u16, String)> {
        self.admin_get_as(path, with_token.then_some(self.token.as_str()))
            .await
    }

    /// `GET path` on the admin listener with `token`, if any: (status, body).
    pub async fn admin_get_as(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> anyhow::Result<(u16, String)> {
        let mut cmd = curl(10);
        if let Some(token) = token {
            cmd.arg("-H").arg(format!("Authorization: Bearer {token}"));
        }
        cmd.arg(format!("http://127.0.0.1:{}{path}", self.admin_port));
        status_and_body(cmd, &format!("GET {path}")).await
    }

    /// `method path` on the admin listener with the token: (status, body).
    pub async fn admin_request(&self, method: &str, path: &str) -> anyhow::Result<(u16, String)> {
        let mut cmd = curl(30);
        cmd.args(["-X", method])
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", self.token))
            .arg(format!("http://127.0.0.1:{}{path}", self.admin_port));
        status_and_body(cmd, &format!("{method} {path}")).await
    }

    /// The (user, container) pairs of `/api/v1/sessions` for `image`, sorted.
    pub async fn sessions(&self, image: &str) -> anyhow::Result<Vec<(String, String)>> {
        let v = self.api_json("/api/v1/sessions").await?;
        let mut out: Vec<(String, String)> = v["sessions"]
            .as_array()
            .context("sessions is a list")?
            .iter()
            .filter(|s| s["image"] == image)
            .map(|s| {
                (
                    s["user"].as_str().unwrap_or_default().to_string(),
                    s["container"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// The names of the containers `/api/v1/containers` lists, sorted.
    pub async fn api_container_names(&self) -> anyhow::Result<Vec<String>> {
        let v = self.api_json("/api/v1/containers").await?;
        let mut names: Vec<String> = v["containers"]
            .as_array()
            .context("containers is a list")?
            .iter()
            .map(|c| c["name"].as_str().unwrap_or_default().to_string())
            .collect();
        names.sort();
        Ok(names)
    }

    /// The names of the Docker containers of this instance (running or not), sorted.
    pub fn docker_container_names(&self) -> Vec<String> {
        let label = format!("orca.gateway.instance={}", self.instance);
        let mut names: Vec<String> = container_ids_with_label(&label)
            .iter()
            .filter_map(|id| {
                crate::docker(&["inspect", "--format", "{{.Name}}", id])
                    .ok()
                    .map(|n| n.trim().trim_start_matches('/').to_string())
            })
            .collect();
        names.sort();
        names
    }

    /// The audit log's records (`<state_dir>/audit.log`), each line parsed as JSON; an error
    /// names a line that is not.
    pub fn audit(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let path = self.state.join("audit.log");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        text.lines()
            .map(|l| {
                serde_json::from_str(l).with_context(|| format!("audit line is not JSON: {l}"))
            })
            .collect()
    }

    /// `curl` to `https://<image>.localhost:<port><path>` (TLS unchecked), keeping cookies in
    /// `jar`; returns (status, body).
    pub async fn https_get(
        &self,
        image: &str,
        path: &str,
        jar: &Path,
        headers: &[&str],
    ) -> anyhow::Result<(u16, String)> {
        let host = format!("{image}.localhost");
        let mut cmd = curl(60);
        cmd.args(["-k", "-L"])
            .arg("--resolve")
            .arg(format!("{host}:{}:127.0.0.1", self.https_port))
            .arg("-b")
            .arg(jar)
            .arg("-c")
            .arg(jar);
        for h in headers {
            cmd.arg("-H").arg(h);
        }
        cmd.arg(format!("https://{host}:{}{path}", self.https_port));
        status_and_body(cmd, &format!("GET https://{host}{path}")).await
    }

    /// `GET /` of the test app behind web image `image` as the user of cookie jar `jar`,
    /// asserting a 200: the serving container's short id ([`app_hostname`]).
    pub async fn app_host(&self, image: &str, jar: &Path) -> String {
        let (code, body) = self
            .https_get(image, "/", jar, &[])
            .await
            .expect("curl answers");
        assert_eq!(code, 200, "{body}");
        app_hostname(&body)
    }

    /// An OpenSSH client command for `login@127.0.0.1` with `key` (no prompts, no known
    /// hosts), without the remote command.
    pub fn ssh_command(&self, key: &Path, login: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(["-p", &self.ssh_port.to_string()])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args(["-o", "LogLevel=ERROR", "-o", "BatchMode=yes"])
            .args(["-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10"])
            .arg("-i")
            .arg(key)
            .arg(format!("{login}@127.0.0.1"));
        cmd
    }

    /// Runs `command` over SSH as `login` with `key`, to its end.
    pub async fn ssh(&self, key: &Path, login: &str, command: &str) -> Output {
        let mut cmd = self.ssh_command(key, login);
        cmd.arg(command);
        crate::ssh::run(cmd, Vec::new()).await
    }

    /// Makes a key pair for `user` in the scratch directory and registers its public half in
    /// `<state_dir>/keys/<user>.pub` (the embedded `ssh-key` resolver's directory); returns the
    /// private key's path.
    pub fn user_key(&self, user: &str) -> anyhow::Result<PathBuf> {
        let key = self.client_key(user);
        let keys = self.state.join("keys");
        std::fs::create_dir_all(&keys)?;
        std::fs::copy(key.with_extension("pub"), keys.join(format!("{user}.pub")))?;
        Ok(key)
    }

    /// A key pair for `user` in the scratch directory that no resolver knows.
    pub fn client_key(&self, user: &str) -> PathBuf {
        let key = self.scratch.join(format!("{user}_ed25519"));
        if !key.exists() {
            crate::ssh::keygen(&key, user);
        }
        key
    }
}

/// An OpenSSH client running `cat` in the container, its stdin and stdout kept open, its
/// stderr (where the gateway's last words go) kept for [`SshSession::ended`].
#[derive(Debug)]
pub struct SshSession {
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::BufReader<tokio::process::ChildStdout>,
    stderr: tokio::process::ChildStderr,
    child: tokio::process::Child,
}

impl SshSession {
    /// Starts `ssh login@… cat` with `key`.
    pub fn open(orca: &Orca, key: &Path, login: &str) -> Self {
        let mut cmd = tokio::process::Command::from(orca.ssh_command(key, login));
        cmd.arg("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("ssh runs");
        Self {
            stdin: child.stdin.take().expect("piped stdin"),
            stdout: tokio::io::BufReader::new(child.stdout.take().expect("piped stdout")),
            stderr: child.stderr.take().expect("piped stderr"),
            child,
        }
    }

    /// After the session ended: the client's exit status and everything on its stderr.
    pub async fn ended(mut self) -> (Option<i32>, String) {
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("the client exits once its session ended")
            .expect("wait for the ssh client");
        let mut said = String::new();
        let _ = self.stderr.read_to_string(&mut said).await;
        (status.code(), said)
    }

    /// Sends `line` and reads back what `cat` echoes; empty once the session has ended.
    pub async fn echo(&mut self, line: &str) -> String {
        // Writing to a client that has exited fails; the read below then sees the end.
        let _ = self.stdin.write_all(format!("{line}\n").as_bytes()).await;
        let _ = self.stdin.flush().await;
        let mut back = String::new();
        tokio::time::timeout(Duration::from_secs(60), self.stdout.read_line(&mut back))
            .await
            .expect("the echo (or the end of the session) arrives in time")
            .expect("read from the session");
        back.trim_end().to_string()
    }
}

/// Builds the test app as web image `name` (`<name>.localhost`) into the engine at `host`
/// (`None`: the shared one), its containers waiting ten minutes for users rather than two
/// seconds, so nothing stops while a test looks; `extra` labels are added.
pub fn web_image_on(host: Option<&str>, name: &str, extra: &[(&str, &str)]) -> String {
    let mut labels = vec![("orca.name", name), ("orca.timeout.linger", "10m")];
    labels.extend_from_slice(extra);
    crate::app::app_image_on(host, &format!("{name}:latest"), &labels)
        .expect("the app image builds");
    name.to_string()
}

/// [`web_image_on`] the shared engine, without extra labels.
pub fn web_image(name: &str) -> String {
    web_image_on(None, name, &[])
}

/// Builds the busybox SSH image as `name` into the engine at `host` (`None`: the shared one),
/// its users kept bound between connections.
pub fn ssh_image_on(host: Option<&str>, name: &str) -> String {
    crate::build_image_on(
        host,
        "ssh",
        &format!("{name}:latest"),
        &[
            ("orca.name", name),
            ("orca.container.persistBetweenReconnects", "true"),
            ("orca.timeout.linger", "10m"),
            // Its PID 1 (`sh`) ignores SIGTERM: a stop would wait out the default 10 s.
            ("orca.timeout.stop", "1s"),
        ],
    )
    .expect("the ssh image builds");
    name.to_string()
}

/// [`ssh_image_on`] the shared engine.
pub fn ssh_image(name: &str) -> String {
    ssh_image_on(None, name)
}

/// The `hostname:` line of the test app's `/` page: the serving container's short id.
pub fn app_hostname(body: &str) -> String {
    body.lines()
        .find_map(|l| l.strip_prefix("hostname: "))
        .unwrap_or_else(|| panic!("no hostname in the app's answer: {body}"))
        .to_string()
}

/// A loopback port free a moment ago (bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(l.local_addr()?.port())
}

/// The value of `name{labels}` in Prometheus text; `labels` as `key="value"` pairs joined by
/// commas in any order, empty for a sample without labels.
pub fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let pairs = |s: &str| {
        let mut v: Vec<String> = s
            .split(',')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    let want = pairs(labels);
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, ls) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        (n == name && pairs(ls) == want)
            .then(|| value.parse().ok())
            .flatten()
    })
}

/// `curl` printing the body, then the status on a line of its own, giving up after `seconds`.
fn curl(seconds: u32) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        &seconds.to_string(),
        "-w",
        "\n%{http_code}",
    ]);
    cmd
}

/// Runs a [`curl`] command (`what` names it in errors): (status, body).
async fn status_and_body(
    mut cmd: tokio::process::Command,
    what: &str,
) -> anyhow::Result<(u16, String)> {
    let out = cmd.output().await.context("running curl")?;
    if !out.status.success() {
        bail!(
            "curl {what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').context("curl printed no status")?;
    Ok((code.trim().parse()?, body.to_string()))
}
