//! A Docker engine of the test's own: `dockerd` with its own socket, data root, exec root
//! (and so its own containerd), pid file and bridge, so that a test may stop and restart it
//! without touching the engine other tests share. Its bridge is made with `ip link` and given
//! an address of its own; no iptables rules and no userland proxy, since the gateway reaches
//! its containers on the bridge directly.
//!
//! Dropping it removes its containers, stops `dockerd`, unmounts what it left mounted, deletes
//! the bridge and the directory, even when the test panicked.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::docker_on;

/// How long `dockerd` may take to answer after it is spawned.
const START_DEADLINE: Duration = Duration::from_secs(90);
/// How long `dockerd` may take to exit after `SIGTERM` (it stops its containers first, waiting
/// up to each one's stop timeout).
const STOP_DEADLINE: Duration = Duration::from_secs(90);

/// A private `dockerd`, running while [`PrivateDocker::start`]ed.
#[derive(Debug)]
pub struct PrivateDocker {
    /// `unix:///…/docker.sock`, for `[docker] host` and `docker -H`.
    pub host: String,
    /// The socket file.
    pub socket: PathBuf,
    /// The bridge's name (`--bridge`).
    pub bridge: String,
    dir: PathBuf,
    child: Option<Child>,
    runs: u32,
    _tmp: tempfile::TempDir,
}

impl PrivateDocker {
    /// Creates the bridge and starts `dockerd` on it; fails with `dockerd`'s log when it does
    /// not answer in time.
    pub fn start() -> anyhow::Result<Self> {
        // Short paths: containerd's sockets live under the exec root and a socket path is
        // limited to 108 bytes.
        let tmp = tempfile::Builder::new()
            .prefix("orca-pd")
            .tempdir_in("/tmp")
            .context("creating the private engine's directory")?;
        let dir = tmp.path().to_path_buf();
        let n = std::process::id() % 200 + 20;
        let bridge = format!("orcapd{n}");
        let socket = dir.join("docker.sock");
        let mut me = Self {
            host: format!("unix://{}", socket.display()),
            socket,
            bridge,
            dir,
            child: None,
            runs: 0,
            _tmp: tmp,
        };
        // A bridge left by a crashed run of this test with the same number would clash.
        let _ = ip(&["link", "del", &me.bridge]);
        ip(&["link", "add", &me.bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("10.231.{n}.1/24"),
            "dev",
            &me.bridge,
        ])?;
        ip(&["link", "set", &me.bridge, "up"])?;
        // No /etc/docker/daemon.json: its settings (hosts, bridge) would clash with ours.
        std::fs::write(me.dir.join("daemon.json"), "{}\n")?;
        me.resume()?;
        Ok(me)
    }

    /// Starts `dockerd` again (after [`PrivateDocker::stop`]) with the same directories.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("the private dockerd already runs");
        }
        self.runs += 1;
        let log = std::fs::File::create(self.log_path(self.runs))?;
        let d = &self.dir;
        let child = Command::new("dockerd")
            .arg("--host")
            .arg(&self.host)
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .arg(format!("--bridge={}", self.bridge))
            .args(["--iptables=false", "--ip6tables=false", "--ip-masq=false"])
            .arg("--userland-proxy=false")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning dockerd (Debian's docker.io provides it; scripts/setup)")?;
        self.child = Some(child);
        let end = Instant::now() + START_DEADLINE;
        while self
            .docker(&["info", "--format", "{{.ServerVersion}}"])
            .is_err()
        {
            if Instant::now() >= end {
                bail!(
                    "the private dockerd did not answer within {START_DEADLINE:?}:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// `SIGTERM` to `dockerd`, then waits for it to exit (it stops its containers first).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let end = Instant::now() + STOP_DEADLINE;
        while child.try_wait()?.is_none() {
            if Instant::now() >= end {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the private dockerd did not exit within {STOP_DEADLINE:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Runs the docker CLI against this engine.
    pub fn docker(&self, args: &[&str]) -> anyhow::Result<String> {
        docker_on(Some(&self.host), args)
    }

    /// The names of this engine's containers (running or not) carrying `label`, sorted.
    pub fn container_names(&self, label: &str) -> anyhow::Result<Vec<String>> {
        let out = self.docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label={label}"),
            "--format",
            "{{.Names}}",
        ])?;
        let mut names: Vec<String> = out.split_whitespace().map(String::from).collect();
        names.sort();
        Ok(names)
    }

    /// Every run's log.
    pub fn logs(&self) -> String {
        (1..=self.runs)
            .map(|run| {
                let text = std::fs::read_to_string(self.log_path(run)).unwrap_or_default();
                format!("--- private dockerd, run {run} ---\n{text}")
            })
            .collect()
    }

    fn log_path(&self, run: u32) -> PathBuf {
        self.dir.join(format!("dockerd-{run}.log"))
    }
}

impl Drop for PrivateDocker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        if self.child.is_some() {
            if let Ok(ids) = self.docker(&["ps", "-aq"]) {
                for id in ids.split_whitespace() {
                    let _ = self.docker(&["rm", "-f", "-v", id]);
                }
            }
            if let Err(e) = self.stop() {
                eprintln!("{e}");
            }
        }
        unmount_under(&self.dir);
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

/// Runs `ip`; the error carries its stderr.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Unmounts every mount below `dir`, deepest first, so the directory can be removed (a
/// `dockerd` killed mid-way leaves its overlay and netns mounts behind).
pub fn unmount_under(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let prefix = dir.display().to_string();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").arg("-l").arg(p).status();
    }
}
