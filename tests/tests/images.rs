//! The test images themselves: built FROM scratch with busybox, and doing what tests rely on.

use std::io::Write;
use std::process::{Command, Stdio};

use orca_tests::{build_image, docker, unique_name};

/// Removes a container when the test ends, passed or not.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.0]);
    }
}

#[test]
fn web_image_echoes_its_hostname_and_the_request_headers() {
    let tag = format!("{}:latest", unique_name("web"));
    build_image("web", &tag, &[]).unwrap();
    let c = Container(docker(&["run", "-d", &tag]).unwrap().trim().to_string());
    let ip = docker(&[
        "inspect",
        "--format",
        "{{.NetworkSettings.IPAddress}}",
        &c.0,
    ])
    .unwrap();
    let url = format!("http://{}/cgi-bin/echo?x=1", ip.trim());
    let mut page = String::new();
    for _ in 0..100 {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "2",
                "-H",
                "X-Custom-Thing: hello",
                &url,
            ])
            .output()
            .unwrap();
        if out.status.success() {
            page = String::from_utf8_lossy(&out.stdout).into_owned();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        page.contains(&format!("hostname: {}", &c.0[..12])),
        "{page}"
    );
    assert!(page.contains("X-Custom-Thing: hello"), "{page}");
    assert!(page.contains("method: GET"), "{page}");
    assert!(page.contains("uri: /cgi-bin/echo?x=1"), "{page}");
    let labels = docker(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"orca.kind\"}}",
        &tag,
    ])
    .unwrap();
    assert_eq!(labels.trim(), "web");
}

#[test]
fn ssh_image_runs_an_interactive_shell() {
    let tag = format!("{}:latest", unique_name("ssh"));
    build_image("ssh", &tag, &[("orca.users.total", "2")]).unwrap();
    let name = unique_name("shell-run");
    let _c = Container(name.clone());
    let mut child = Command::new("docker")
        .args(["run", "-i", "--name", &name, &tag])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo hi-$((6*7)); whoami\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("hi-42"), "{text}");
    assert!(text.contains("root"), "{text}");
    let total = docker(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"orca.users.total\"}}",
        &tag,
    ])
    .unwrap();
    assert_eq!(total.trim(), "2", "extra labels are applied");
    // Building again with the same context and labels is a no-op returning the same id.
    let a = build_image("ssh", &tag, &[("orca.users.total", "2")]).unwrap();
    let b = build_image("ssh", &tag, &[("orca.users.total", "2")]).unwrap();
    assert_eq!(a, b);
}
