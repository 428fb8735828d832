//! The streaming tests' app (`tests/app`): built once per test process as a static binary,
//! then put alone in a `FROM scratch` image (`tests/images/app`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context, bail};

use crate::plugins::repo_root;
use crate::{build_image_with_on, target_dir, unique_name};

/// The target the app is built for; naming it explicitly keeps `RUSTFLAGS` off build scripts
/// and proc macros, which must stay dynamic to run on the host.
const TARGET: &str = "x86_64-unknown-linux-gnu";
/// Static glibc, and no PIE: a static-pie binary is just as self-contained, but `ldd` calls it
/// "statically linked" rather than the plain "not a dynamic executable" the check looks for.
const RUSTFLAGS: &str = "-C target-feature=+crt-static -C relocation-model=static";

/// The app binary, built (release, static) on first use in this process. Its target directory
/// is `test-app` under the tests' own, so the app's dependencies never mix with the gateway's.
pub fn app_binary() -> anyhow::Result<PathBuf> {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(path) = built.as_ref() {
        return Ok(path.clone());
    }
    let root = repo_root();
    let target_dir = target_dir()?.join("test-app");
    let out = Command::new(env!("CARGO"))
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(root.join("tests").join("app").join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", RUSTFLAGS)
        // Set by cargo for build scripts; it would override RUSTFLAGS if inherited.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .context("running cargo to build tests/app")?;
    if !out.status.success() {
        bail!(
            "cargo build of tests/app failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let binary = target_dir
        .join(TARGET)
        .join("release")
        .join("orca-test-app");
    check_static(&binary)?;
    *built = Some(binary.clone());
    Ok(binary)
}

/// Builds the app image as `tag` with extra labels; returns the image id.
pub fn app_image(tag: &str, extra_labels: &[(&str, &str)]) -> anyhow::Result<String> {
    app_image_on(None, tag, extra_labels)
}

/// [`app_image`] into the engine at `host` (`None`: the shared engine).
pub fn app_image_on(
    host: Option<&str>,
    tag: &str,
    extra_labels: &[(&str, &str)],
) -> anyhow::Result<String> {
    let binary = app_binary()?;
    build_image_with_on(
        host,
        "app",
        tag,
        extra_labels,
        &[("orca-test-app", &binary)],
    )
}

/// A `/headers` path no other request uses: the app logs every request line, so the
/// containers' logs tell whether this one arrived ([`crate::gateway::Gateway::assert_no_container_saw`]).
pub fn probe() -> String {
    format!("/headers?probe={}", unique_name("p"))
}

/// The values of header `name` (lower case) in the app's `/headers` answer `body`.
pub fn seen(body: &str, name: &str) -> Vec<String> {
    let prefix = format!("{name}: ");
    body.lines()
        .skip(1) // the hostname line
        .filter_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .collect()
}

/// The `x-orca-*` lines of the app's `/headers` answer `body`, sorted.
pub fn orca_headers(body: &str) -> Vec<String> {
    let mut lines: Vec<String> = body
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("x-orca-"))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// A `FROM scratch` image has no loader or libc: the binary must need neither.
fn check_static(binary: &std::path::Path) -> anyhow::Result<()> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd")?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !said.contains("not a dynamic executable") {
        bail!(
            "{} is not a static executable; ldd says: {}",
            binary.display(),
            said.trim()
        );
    }
    Ok(())
}
