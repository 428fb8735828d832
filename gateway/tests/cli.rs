//! The `orca` binary's command line, run as a process.

use std::process::Command;

fn orca(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_orca"))
        .args(args)
        .output()
        .expect("orca runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_prints_the_effective_config_of_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orca.toml");
    std::fs::write(
        &file,
        "domain = \"example.test\"\n[https]\nlisten = \"127.0.0.1:9443\"\n[scheduler]\nready_timeout = \"90s\"\n",
    )
    .unwrap();
    let (code, out, err) = orca(&["check-config", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("domain = \"example.test\""), "{out}");
    assert!(out.contains("127.0.0.1:9443"), "{out}");
    assert!(
        out.contains("1m30s"),
        "durations are shown in canonical form: {out}"
    );
    assert!(
        out.contains("127.0.0.1:2222"),
        "defaults are spelled out: {out}"
    );
}

#[test]
fn check_config_names_every_bad_key_value_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[https]\nlisten = \"nowhere\"\n[scheduler]\nready_timeout = \"soon\"\n",
    )
    .unwrap();
    let (code, out, err) = orca(&["check-config", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("bad.toml"), "names the file: {err}");
    assert!(
        err.contains("https.listen") && err.contains("nowhere"),
        "{err}"
    );
    assert!(
        err.contains("scheduler.ready_timeout") && err.contains("soon"),
        "{err}"
    );
    assert!(
        err.contains("15m") || err.contains("30s"),
        "says what a duration looks like: {err}"
    );
}

#[test]
fn check_config_rejects_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.toml");
    std::fs::write(
        &file,
        "[https]\nlisten = \"127.0.0.1:1\"\ncertificate = \"x\"\n",
    )
    .unwrap();
    let (code, _, err) = orca(&["check-config", file.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("certificate"), "{err}");
}

#[test]
fn check_config_on_a_missing_file_says_so() {
    let (code, _, err) = orca(&["check-config", "/nonexistent/orca.toml"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/orca.toml"), "{err}");
}

#[test]
fn labels_lists_every_label_with_its_defaults() {
    let (code, out, _) = orca(&["labels"]);
    assert_eq!(code, 0);
    for label in [
        "orca.kind",
        "orca.name",
        "orca.port",
        "orca.timeout.session",
        "orca.timeout.inactive",
        "orca.users.total",
        "orca.users.concurrent",
        "orca.connection.method",
        "orca.container.stopsignal",
        "orca.container.persistBetweenReconnects",
        "orca.timeout.linger",
        "orca.timeout.stop",
        "orca.exec.command",
        "orca.ready",
        "orca.limits.memory",
        "orca.limits.cpus",
        "orca.limits.pids",
        "orca.access.groups",
        "orca.pool.warm",
    ] {
        assert!(out.contains(label), "{label} missing from:\n{out}");
    }
}
