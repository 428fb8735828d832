//! Builds the real plugins the identity tests load: the Rust plugins workspace (bundled
//! resolvers, hostile fixtures) for `wasm32-wasip2`, the SDK example, and the examples in other
//! languages through their own build scripts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context, bail};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A component of the plugins workspace by crate name (`orca-fixture-hostile`), built for
/// `wasm32-wasip2` (release) on first use. Shares `target/plugins` with the gateway's build
/// script, so nothing is built twice.
pub fn rust_plugin(krate: &str) -> anyhow::Result<PathBuf> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let root = repo_root();
    let target = root.join("target").join("plugins");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "-p",
        krate,
        "--manifest-path",
    ])
    .arg(root.join("plugins").join("Cargo.toml"))
    .env("CARGO_TARGET_DIR", &target);
    run(
        &mut cmd,
        &format!("cargo build of {krate} for wasm32-wasip2"),
    )?;
    let file = target
        .join("wasm32-wasip2")
        .join("release")
        .join(format!("{}.wasm", krate.replace('-', "_")));
    if !file.exists() {
        bail!("{} was not built", file.display());
    }
    Ok(file)
}

/// The SDK's `header` example, built for `wasm32-wasip2`.
pub fn sdk_example() -> anyhow::Result<PathBuf> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let root = repo_root();
    let target = root.join("target").join("sdk-example");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "build",
        "-p",
        "orca-sdk",
        "--example",
        "header",
        "--release",
        "--target",
        "wasm32-wasip2",
    ])
    .current_dir(&root)
    .env("CARGO_TARGET_DIR", &target);
    run(&mut cmd, "cargo build of the SDK example")?;
    Ok(target.join("wasm32-wasip2/release/examples/header.wasm"))
}

/// An example in another language (`python-header`, `js-bearer`, `c-fingerprint`), built by
/// its `plugins/examples/<name>/build` script into `target/plugins/examples/`.
pub fn example(name: &str) -> anyhow::Result<PathBuf> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let root = repo_root();
    let out = root.join("target").join("plugins").join("examples");
    std::fs::create_dir_all(&out)?;
    let script = root
        .join("plugins")
        .join("examples")
        .join(name)
        .join("build");
    run(
        Command::new("bash").arg(&script).arg(&out),
        &format!("{}", script.display()),
    )?;
    let file = out.join(format!("{name}.wasm"));
    if !file.exists() {
        bail!("{} did not produce {}", script.display(), file.display());
    }
    Ok(file)
}
