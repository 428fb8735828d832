//! Shared harness for Orca's integration tests against the real Docker engine.
//!
//! Test images live in `tests/images/<dir>/` and are built `FROM scratch` (no registry is
//! reachable), with Debian's static busybox or with the static test app of `tests/app`
//! ([`app`]); [`build_image_with`] copies the context and those binaries into a temporary
//! directory and runs `docker build`, once per content and labels, serialised across test
//! threads and test processes by a file lock. [`gateway`] runs the HTTPS front against such an
//! image.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

pub mod app;
pub mod browser;
pub mod docker_proxy;
pub mod gateway;
pub mod identity;
pub mod ldap;
pub mod log;
pub mod plugins;
pub mod private_docker;
pub mod serve;
pub mod ssh;
pub mod tls;

/// The static busybox from Debian's `busybox-static`.
pub const BUSYBOX: &str = "/bin/busybox";
/// Label carrying the hash of a test image's build context and labels.
const HASH_LABEL: &str = "orca-test.context-hash";

/// Runs the docker CLI; the error carries its stderr.
pub fn docker(args: &[&str]) -> anyhow::Result<String> {
    docker_on(None, args)
}

/// Runs the docker CLI against `host` (`unix:///…`; `None`: the shared engine); the error
/// carries its stderr.
pub fn docker_on(host: Option<&str>, args: &[&str]) -> anyhow::Result<String> {
    let mut cmd = Command::new("docker");
    if let Some(host) = host {
        cmd.args(["-H", host]);
    }
    let out = cmd
        .args(args)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .context("running the docker CLI; run scripts/setup to install it")?;
    if !out.status.success() {
        bail!(
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Ok when a Docker engine answers.
pub fn docker_available() -> anyhow::Result<()> {
    docker(&["info", "--format", "{{.ServerVersion}}"])
        .map(|_| ())
        .context("no Docker engine answers: run scripts/setup, which installs and starts dockerd")
}

/// A name unique to this process and call, usable as an image name, tag or instance.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_micros())
        .unwrap_or(0);
    format!("t{}-{prefix}-{n}-{t:x}", std::process::id()).to_ascii_lowercase()
}

/// Builds `tests/images/<dir>` as `tag` with extra labels and Debian's static busybox in the
/// context (and, for `ssh`, the SFTP server: [`build_ssh_image`]); returns the image id. Skips
/// the build when the tag already holds an image of the same context and labels.
pub fn build_image(dir: &str, tag: &str, extra_labels: &[(&str, &str)]) -> anyhow::Result<String> {
    build_image_on(None, dir, tag, extra_labels)
}

/// [`build_image`] into the engine at `host` (`None`: the shared engine).
pub fn build_image_on(
    host: Option<&str>,
    dir: &str,
    tag: &str,
    extra_labels: &[(&str, &str)],
) -> anyhow::Result<String> {
    if dir == "ssh" {
        return build_ssh_image(host, tag, extra_labels);
    }
    if !Path::new(BUSYBOX).exists() {
        bail!("{BUSYBOX} is missing: install Debian's busybox-static (scripts/setup does)");
    }
    build_image_with_on(
        host,
        dir,
        tag,
        extra_labels,
        &[("busybox", Path::new(BUSYBOX))],
    )
}

/// Builds `tests/images/<dir>` as `tag` with extra labels, copying each `(name, file)` of
/// `files` into the context as `name`; returns the image id. The files' contents are part of
/// the hash that decides whether the tag already holds this build.
pub fn build_image_with(
    dir: &str,
    tag: &str,
    extra_labels: &[(&str, &str)],
    files: &[(&str, &Path)],
) -> anyhow::Result<String> {
    build_image_with_on(None, dir, tag, extra_labels, files)
}

/// [`build_image_with`] into the engine at `host` (`None`: the shared engine).
pub fn build_image_with_on(
    host: Option<&str>,
    dir: &str,
    tag: &str,
    extra_labels: &[(&str, &str)],
    files: &[(&str, &Path)],
) -> anyhow::Result<String> {
    let docker = |args: &[&str]| docker_on(host, args);
    docker(&["info", "--format", "{{.ServerVersion}}"]).context(
        "no Docker engine answers: run scripts/setup, which installs and starts dockerd",
    )?;
    let src = images_dir().join(dir);
    let hash = context_hash(&src, files, extra_labels)?;
    let _lock = BuildLock::acquire()?;
    if let Ok(existing) = docker(&[
        "image",
        "inspect",
        "--format",
        &format!("{{{{.Id}}}} {{{{index .Config.Labels \"{HASH_LABEL}\"}}}}"),
        tag,
    ]) {
        let mut parts = existing.split_whitespace();
        if let (Some(id), Some(h)) = (parts.next(), parts.next())
            && h == hash
        {
            return Ok(id.to_string());
        }
    }
    let ctx = tempfile::tempdir().context("creating a build context directory")?;
    copy_dir(&src, ctx.path())?;
    for (name, file) in files {
        let to = ctx.path().join(name);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {} in the build context", parent.display()))?;
        }
        std::fs::copy(file, &to)
            .with_context(|| format!("copying {} into the build context", file.display()))?;
    }
    let mut args: Vec<String> = vec!["build".into(), "-q".into(), "-t".into(), tag.into()];
    let hash_label = format!("{HASH_LABEL}={hash}");
    for l in extra_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .chain(std::iter::once(hash_label))
    {
        args.push("--label".into());
        args.push(l);
    }
    args.push(ctx.path().display().to_string());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = docker(&argv)
        .with_context(|| format!("building test image `{tag}` from {}", src.display()))?;
    let id = out.trim().lines().last().unwrap_or_default().to_string();
    if !id.starts_with("sha256:") {
        bail!("docker build of `{tag}` printed no image id: {out}");
    }
    Ok(id)
}

/// OpenSSH's SFTP server on this machine (Debian's `openssh-sftp-server`).
pub const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";

/// Builds the SSH test image of `tests/images/ssh` as `tag`: busybox, plus Debian's
/// `sftp-server` and the shared libraries it loads (found by `ldd`), under `sftp/` in the
/// context at their own paths, so that scp and sftp work in a `FROM scratch` image.
fn build_ssh_image(
    host: Option<&str>,
    tag: &str,
    extra_labels: &[(&str, &str)],
) -> anyhow::Result<String> {
    if !Path::new(BUSYBOX).exists() {
        bail!("{BUSYBOX} is missing: install Debian's busybox-static (scripts/setup does)");
    }
    let mut files: Vec<(String, PathBuf)> = vec![("busybox".into(), PathBuf::from(BUSYBOX))];
    for path in std::iter::once(PathBuf::from(SFTP_SERVER)).chain(shared_libraries(SFTP_SERVER)?) {
        let inside = path
            .strip_prefix("/")
            .unwrap_or(&path)
            .display()
            .to_string();
        files.push((format!("sftp/{inside}"), path));
    }
    let files: Vec<(&str, &Path)> = files
        .iter()
        .map(|(name, path)| (name.as_str(), path.as_path()))
        .collect();
    build_image_with_on(host, "ssh", tag, extra_labels, &files)
}

/// The absolute paths of the shared libraries `binary` loads, its loader included.
fn shared_libraries(binary: &str) -> anyhow::Result<Vec<PathBuf>> {
    if !Path::new(binary).exists() {
        bail!("{binary} is missing: install Debian's openssh-sftp-server (scripts/setup does)");
    }
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd")?;
    // Lines read `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or
    // `/lib64/ld-linux-x86-64.so.2 (0x…)`; the vDSO has no path.
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let path = l.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// Removes an image by tag (force).
pub fn remove_image(tag: &str) -> anyhow::Result<()> {
    docker(&["rmi", "-f", tag]).map(|_| ())
}

/// Ids of every container (running or not) carrying `label` (`key=value` or `key`).
pub fn container_ids_with_label(label: &str) -> Vec<String> {
    docker(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label={label}"),
    ])
    .unwrap_or_default()
    .split_whitespace()
    .map(String::from)
    .collect()
}

/// Removes every container carrying `label`.
pub fn cleanup_containers(label: &str) {
    for id in container_ids_with_label(label) {
        let _ = docker(&["rm", "-f", "-v", &id]);
    }
}

/// Polls `f` every 50 ms until it yields a value, or fails naming `what` after `deadline`.
pub async fn wait_for<F, Fut, T>(what: &str, deadline: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= end {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `<target>/test-artifacts/<test>/`, created: where a test leaves files for people to look at
/// (screenshots).
pub fn artifacts_dir(test: &str) -> anyhow::Result<PathBuf> {
    let dir = target_dir()?.join("test-artifacts").join(test);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The cargo target directory holding the running test binary (cargo marks its root with
/// `CACHEDIR.TAG`), so `CARGO_TARGET_DIR` and the workspace's `target/` both work.
pub fn target_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test binary")?;
    Ok(exe
        .ancestors()
        .find(|d| d.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
        .unwrap_or_else(|| plugins::repo_root().join("target")))
}

fn images_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("images")
}

/// A lock shared by every test process of this checkout, so builds never race.
struct BuildLock(std::fs::File);

impl BuildLock {
    fn acquire() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join("orca-test-image-build.lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        f.lock().context("locking the image build lock")?;
        Ok(Self(f))
    }
}

impl Drop for BuildLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// A stable hash (FNV-1a) of every file in the context, the added files, and the labels.
fn context_hash(
    dir: &Path,
    added: &[(&str, &Path)],
    labels: &[(&str, &str)],
) -> anyhow::Result<String> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    files.extend(
        added
            .iter()
            .map(|(name, path)| (name.to_string(), path.to_path_buf())),
    );
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    };
    for (rel, path) in &files {
        feed(rel.as_bytes());
        feed(&std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
    }
    let mut l = String::new();
    for (k, v) in labels {
        let _ = write!(l, "{k}={v};");
    }
    feed(l.as_bytes());
    Ok(format!("{h:016x}"))
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let p = entry.path();
        if entry.file_type()?.is_dir() {
            collect(root, &p, out)?;
        } else {
            let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
            out.push((rel, p));
        }
    }
    Ok(())
}
