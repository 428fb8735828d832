//! Builds the bundled resolvers (`plugins/cookie`, `plugins/ssh-key`, `plugins/ldap`) for
//! `wasm32-wasip2` and embeds them in the `orca` binary, so `plugin = "bundled:cookie"` needs no
//! file beside the binary.
//!
//! Packagers who build the plugins separately set `ORCA_PLUGINS_PREBUILT` to a directory
//! holding `cookie.wasm`, `ssh-key.wasm` and `ldap.wasm`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// (bundled name, plugin crate directory under `plugins/`, crate name).
const BUNDLED: &[(&str, &str, &str)] = &[
    ("cookie", "cookie", "orca-plugin-cookie"),
    ("ssh-key", "ssh-key", "orca-plugin-ssh-key"),
    ("ldap", "ldap", "orca-plugin-ldap"),
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .parent()
        .expect("gateway/ is inside the workspace")
        .to_path_buf();
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    println!("cargo:rerun-if-env-changed=ORCA_PLUGINS_PREBUILT");

    let present: Vec<_> = BUNDLED
        .iter()
        .filter(|(_, dir, _)| root.join("plugins").join(dir).join("Cargo.toml").exists())
        .collect();

    let files: Vec<(&str, PathBuf)> = match std::env::var_os("ORCA_PLUGINS_PREBUILT") {
        Some(dir) => present
            .iter()
            .map(|(name, _, _)| (*name, PathBuf::from(&dir).join(format!("{name}.wasm"))))
            .collect(),
        None => build(&root, &present),
    };

    let mut code = String::from("/// Bundled resolvers: (name, component bytes).\n");
    code.push_str("pub(crate) const BUNDLED: &[(&str, &[u8])] = &[\n");
    for (name, file) in &files {
        assert!(
            file.exists(),
            "bundled resolver `{name}`: {} is missing",
            file.display()
        );
        println!("cargo:rerun-if-changed={}", file.display());
        code.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            file.display().to_string()
        ));
    }
    code.push_str("];\n");
    std::fs::write(out.join("bundled.rs"), code).expect("OUT_DIR is writable");
}

/// Runs cargo on the plugins workspace and returns the built components.
fn build<'a>(root: &Path, present: &[&(&'a str, &str, &str)]) -> Vec<(&'a str, PathBuf)> {
    for watched in ["wit", "sdk", "plugins/Cargo.toml", "plugins/Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    for (_, dir, _) in present {
        println!(
            "cargo:rerun-if-changed={}",
            root.join("plugins").join(dir).display()
        );
    }
    if present.is_empty() {
        return Vec::new();
    }
    let target_dir = root.join("target").join("plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--target")
        .arg("wasm32-wasip2")
        .arg("--manifest-path")
        .arg(root.join("plugins").join("Cargo.toml"));
    for (_, _, krate) in present {
        cmd.arg("-p").arg(krate);
    }
    // The outer build's compiler wrappers and flags (clippy, coverage, host RUSTFLAGS) are
    // for the gateway, not for the wasm plugins.
    for var in [
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CLIPPY_ARGS",
        "CLIPPY_CONF_DIR",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("CARGO_TARGET_DIR", &target_dir);
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo for the plugins: {e}"));
    assert!(
        status.success(),
        "building the bundled resolvers for wasm32-wasip2 failed (see above). If the target is \
         missing, run `rustup target add wasm32-wasip2`; or build them elsewhere and set \
         ORCA_PLUGINS_PREBUILT to a directory holding cookie.wasm, ssh-key.wasm and ldap.wasm"
    );
    present
        .iter()
        .map(|(name, _, krate)| {
            let file = target_dir
                .join("wasm32-wasip2")
                .join("release")
                .join(format!("{}.wasm", krate.replace('-', "_")));
            (*name, file)
        })
        .collect()
}
