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

/// `orca serve` on a config file in a temporary directory, stopped on drop.
struct Served {
    child: std::process::Child,
    /// The rest of its stderr, after the "orca is running" line.
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStderr>>,
    /// Its stderr up to and including the running line.
    log: String,
    https: u16,
    http: Option<u16>,
    dir: tempfile::TempDir,
}

impl Served {
    /// Starts `orca serve` on `config` (listeners on 127.0.0.1:0), with `prepare` run on the
    /// directory first, and waits for the running line to learn the ports.
    fn start(config: &str, prepare: impl FnOnce(&std::path::Path)) -> Served {
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
        let dir = tempfile::tempdir().expect("tempdir");
        prepare(dir.path());
        let file = dir.path().join("orca.toml");
        // Tests run at once: the SSH and admin listeners' default ports would collide.
        let mut config = config.to_string();
        for table in ["ssh", "admin"] {
            if !config.contains(&format!("[{table}]")) {
                config.push_str(&format!("\n[{table}]\nlisten = \"127.0.0.1:0\"\n"));
            }
        }
        std::fs::write(&file, config).expect("write the config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_orca"))
            .args(["serve", "--config", &file.display().to_string()])
            .stderr(Stdio::piped())
            .spawn()
            .expect("orca starts");
        let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let mut log = String::new();
        let mut running = String::new();
        for line in lines.by_ref() {
            let line = line.expect("orca's stderr reads");
            log.push_str(&line);
            log.push('\n');
            if line.contains("orca is running") {
                running = line;
                break;
            }
        }
        assert!(log.contains("orca is running"), "{log}");
        // `https=Some(127.0.0.1:PORT) http=Some(127.0.0.1:PORT) ssh=…`
        let port = |field: &str| {
            running
                .split(&format!(" {field}=Some(127.0.0.1:"))
                .nth(1)
                .and_then(|rest| rest.split(')').next()?.parse::<u16>().ok())
        };
        let https = port("https")
            .unwrap_or_else(|| panic!("the running line names the https address:\n{log}"));
        let http = port("http");
        Served {
            child,
            lines,
            log,
            https,
            http,
            dir,
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name}");
    }

    /// SIGTERM, then the exit status and the rest of the log.
    fn stop(&mut self) -> (std::process::ExitStatus, String) {
        self.signal("TERM");
        let exit = self.child.wait().expect("orca exits");
        let mut log = std::mem::take(&mut self.log);
        for line in self.lines.by_ref() {
            log.push_str(&line.expect("orca's stderr reads"));
            log.push('\n');
        }
        (exit, log)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl -s -o /dev/null -w FORMAT ARGS...`: what `-w` printed.
fn curl_w(format: &str, args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", format])
        .args(args)
        .output()
        .expect("curl runs (scripts/setup installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn serve_runs_on_a_config_and_stops_cleanly_on_sigterm() {
    let instance = format!("serve-{}", std::process::id());
    let mut served = Served::start(
        &format!(
            "instance = \"{instance}\"\nstate_dir = \"state\"\n[https]\nlisten = \"127.0.0.1:0\"\n"
        ),
        |_| {},
    );
    assert!(served.log.contains(&instance), "{}", served.log);
    let (exit, log) = served.stop();
    assert!(exit.success(), "exit after SIGTERM: {exit:?}");
    assert!(log.contains("shutting down"), "{log}");
    assert!(
        served.dir.path().join("state/scheduler.json").exists(),
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
    let instance = format!("hup-{}", std::process::id());
    let mut served = Served::start(
        &format!(
            "instance = \"{instance}\"\nstate_dir = \"state\"\n[https]\nlisten = \"127.0.0.1:0\"\n\
             cert = \"tls.crt\"\nkey = \"tls.key\"\n[http]\nlisten = \"127.0.0.1:0\"\n"
        ),
        |dir| write_certificate(dir, "first.localhost"),
    );
    let (port, http_port) = (served.https, served.http.expect("the http listener runs"));
    // The plain listener sends hosts of the domain to HTTPS, path kept.
    assert_eq!(
        curl_w(
            "%{http_code} %{redirect_url}",
            &[
                "-H",
                "Host: demo.localhost",
                &format!("http://127.0.0.1:{http_port}/a?b=1")
            ]
        ),
        format!("308 https://demo.localhost:{port}/a?b=1")
    );
    assert!(served_names(port).contains("first.localhost"));

    // Replace the files and send SIGHUP: new connections get the new certificate.
    write_certificate(served.dir.path(), "second.localhost");
    served.signal("HUP");
    let mut names = String::new();
    for _ in 0..50 {
        names = served_names(port);
        if names.contains("second.localhost") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(names.contains("second.localhost"), "after SIGHUP: {names}");

    // A broken file on the next SIGHUP keeps the working certificate.
    std::fs::write(served.dir.path().join("tls.crt"), "not a certificate").unwrap();
    served.signal("HUP");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(served_names(port).contains("second.localhost"));

    let (exit, log) = served.stop();
    assert!(exit.success(), "{log}");
    assert!(
        log.contains("reload failed; the previous configuration stays in force"),
        "{log}"
    );
}

#[test]
fn serve_mode_behind_a_balancer_believes_only_trusted_peers_and_sends_browsers_to_the_login_url() {
    // No resolvers: nobody is identified, so every browser goes to the external login page,
    // which must get back the URL the user asked for, with the scheme the balancer reports.
    let instance = format!("lb-{}", std::process::id());
    let mut served = Served::start(
        &format!(
            "instance = \"{instance}\"\nstate_dir = \"state\"\nresolver = []\n\
             [https]\nlisten = \"127.0.0.1:0\"\n\
             login_url = \"https://sso.test/login?next={{url}}&app=orca\"\n\
             [http]\nlisten = \"127.0.0.1:0\"\nmode = \"serve\"\ntrusted_proxies = [\"127.0.0.1\"]\n"
        ),
        |_| {},
    );
    let (https, http) = (served.https, served.http.expect("the http listener runs"));
    let browser = |from: &str, url: String| {
        curl_w(
            "%{http_code} %{redirect_url}",
            &[
                "--interface",
                from,
                "-k",
                "-H",
                "Accept: text/html",
                "-H",
                "X-Forwarded-Proto: https",
                "-H",
                "X-Forwarded-For: 203.0.113.7",
                "--resolve",
                &format!("lab.localhost:{http}:127.0.0.1"),
                "--resolve",
                &format!("lab.localhost:{https}:127.0.0.1"),
                &url,
            ],
        )
    };
    let sso = |url: &str| {
        format!(
            "303 https://sso.test/login?next={}&app=orca",
            url.replace(':', "%3A")
                .replace('/', "%2F")
                .replace('?', "%3F")
                .replace('=', "%3D")
        )
    };
    // The balancer at 127.0.0.1 ended TLS: the user asked for https.
    assert_eq!(
        browser("127.0.0.1", format!("http://lab.localhost:{http}/x?y=1")),
        sso(&format!("https://lab.localhost:{http}/x?y=1"))
    );
    // 127.0.0.2 is not trusted: its X-Forwarded-Proto is a claim, not a fact.
    assert_eq!(
        browser("127.0.0.2", format!("http://lab.localhost:{http}/x?y=1")),
        sso(&format!("http://lab.localhost:{http}/x?y=1"))
    );
    // The TLS listener knows its scheme and ignores the header.
    assert_eq!(
        browser("127.0.0.2", format!("https://lab.localhost:{https}/")),
        sso(&format!("https://lab.localhost:{https}/"))
    );
    // A client presenting an IP address as its server name: rustls warns about it, once per
    // connection; any client could flood the log that way, so the default filter hides it.
    let sni = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{https} -servername 127.0.0.1 </dev/null \
             >/dev/null 2>&1"
        ))
        .status()
        .expect("openssl runs");
    assert!(sni.code().is_some());
    // A script's request is not sent to a login page: it gets 401.
    assert_eq!(
        curl_w(
            "%{http_code}",
            &[
                "-H",
                "Host: lab.localhost",
                &format!("http://127.0.0.1:{http}/api")
            ]
        ),
        "401"
    );
    let (exit, log) = served.stop();
    assert!(exit.success(), "{log}");
    assert!(!log.contains("Illegal SNI"), "{log}");
}
