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

#[test]
fn serve_runs_on_a_config_and_stops_cleanly_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    if Command::new("docker")
        .arg("info")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        panic!("no Docker engine answers: run scripts/setup first");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orca.toml");
    let instance = format!("serve-{}", std::process::id());
    std::fs::write(
        &file,
        format!(
            "instance = \"{instance}\"\nstate_dir = \"state\"\n[https]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_orca"))
        .args(["serve", "--config", file.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("orca is running") {
            break;
        }
    }
    assert!(log.contains("orca is running"), "{log}");
    assert!(log.contains(&instance), "{log}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit after SIGTERM: {exit:?}");
    for line in lines {
        log.push_str(&line.unwrap());
        log.push('\n');
    }
    assert!(log.contains("shutting down"), "{log}");
    assert!(
        dir.path().join("state").join("scheduler.json").exists(),
        "bindings persisted at shutdown"
    );
}

#[test]
fn serve_with_a_bad_config_exits_before_doing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orca.toml");
    std::fs::write(&file, "[docker]\nnetwork = 3\n").unwrap();
    let (code, _, err) = orca(&["serve", "--config", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("docker.network"), "{err}");
}

/// Writes a self-signed certificate for `name` to `dir/tls.crt` and `dir/tls.key`.
fn write_certificate(dir: &std::path::Path, name: &str) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("rcgen");
    std::fs::write(dir.join("tls.crt"), cert.pem()).expect("write cert");
    std::fs::write(dir.join("tls.key"), signing_key.serialize_pem()).expect("write key");
}

/// The DNS names of the certificate `127.0.0.1:port` presents, read by `openssl s_client`.
fn served_names(port: u16) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername demo.localhost </dev/null \
             2>/dev/null | openssl x509 -noout -ext subjectAltName"
        ))
        .output()
        .expect("openssl runs (scripts/setup installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn serve_reloads_its_certificate_on_sighup() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    write_certificate(dir.path(), "first.localhost");
    let file = dir.path().join("orca.toml");
    let instance = format!("hup-{}", std::process::id());
    std::fs::write(
        &file,
        format!(
            "instance = \"{instance}\"\nstate_dir = \"state\"\n[https]\nlisten = \"127.0.0.1:0\"\n\
             cert = \"tls.crt\"\nkey = \"tls.key\"\n[http]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_orca"))
        .args(["serve", "--config", file.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut ports = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("orca is running") {
            // `https=Some(127.0.0.1:PORT) http=Some(127.0.0.1:PORT)`
            ports = line
                .split("127.0.0.1:")
                .skip(1)
                .filter_map(|rest| rest.split(')').next()?.parse::<u16>().ok())
                .collect();
            break;
        }
    }
    let (port, http_port) = match ports.as_slice() {
        [https, http] => (*https, *http),
        other => panic!("the running line names the https and http addresses: {other:?}"),
    };
    // The plain listener sends hosts of the domain to HTTPS, path kept.
    let redirect = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            "-H",
        ])
        .arg("Host: demo.localhost")
        .arg(format!("http://127.0.0.1:{http_port}/a?b=1"))
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&redirect.stdout),
        format!("308 https://demo.localhost:{port}/a?b=1")
    );
    assert!(served_names(port).contains("first.localhost"));

    // Replace the files and send SIGHUP: new connections get the new certificate.
    write_certificate(dir.path(), "second.localhost");
    let hup = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let mut names = String::new();
    for _ in 0..50 {
        names = served_names(port);
        if names.contains("second.localhost") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(names.contains("second.localhost"), "after SIGHUP: {names}");
    assert!(
        child.id() > 0 && child.try_wait().unwrap().is_none(),
        "still running"
    );

    // A broken file on the next SIGHUP keeps the working certificate.
    std::fs::write(dir.path().join("tls.crt"), "not a certificate").unwrap();
    Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(served_names(port).contains("second.localhost"));

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}
