//! An in-process gateway for the HTTPS tests: the real front, resolvers, scheduler and proxy,
//! serving one test image over TLS on 127.0.0.1 with a self-signed certificate authority for
//! the domain `localhost`. Shared by the curl tests (`https_front`) and the browser test
//! (`https_browser`), so both exercise the same wiring.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use orca::config::{PluginSource, SchedulerConfig};
use orca::front::Front;
use orca::identity::Identities;
use orca::listeners::https::{self, ServeOptions};
use orca::listeners::tls::{self, Certificates};
use orca::metrics::Metrics;
use orca::proxy::{Proxy, ProxyOptions};
use orca::runtime::docker::DockerRuntime;
use orca::scheduler::{Options, Scheduler};
use tokio_util::sync::CancellationToken;

use crate::{build_image, cleanup_containers, identity, plugins, unique_name};

/// The user the password fixture knows, in group `admins`.
pub const USER: &str = "carol";
/// Her password.
pub const PASSWORD: &str = "s3cret";

/// A gateway on 127.0.0.1:<port> serving one test image; dropping it stops the server and
/// removes the containers it launched, even when the test panicked.
#[derive(Debug)]
pub struct Gateway {
    /// The image's name, the first label of its host (`<image>.localhost`).
    pub image: String,
    /// The HTTPS port on 127.0.0.1.
    pub port: u16,
    /// The plain listener in `serve` mode on 127.0.0.1, as behind a load balancer that ends
    /// TLS; it trusts 127.0.0.1 (and only it) as that balancer.
    pub plain_port: u16,
    /// The certificate authority the gateway generated for `localhost`, as PEM.
    pub ca: PathBuf,
    /// The scheduler, to look at the containers the requests caused.
    pub scheduler: Scheduler,
    shutdown: CancellationToken,
    _state: tempfile::TempDir,
    _cleanup: Cleanup,
}

/// Removes every container of a test's instance, even when the test fails.
#[derive(Debug)]
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        cleanup_containers(&format!("orca.gateway.instance={}", self.0));
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// What curl saw.
#[derive(Debug)]
pub struct Reply {
    /// The final status code (0 when curl got none).
    pub status: u16,
    /// The response head as curl wrote it.
    pub headers: String,
    /// The body.
    pub body: String,
}

impl Reply {
    /// The value of a `Name: value` line of the body (what the `echo` CGI prints).
    pub fn line(&self, name: &str) -> Option<&str> {
        self.body
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
    }
}

/// A gateway serving the test image built from `tests/images/<dir>`, with extra labels. Its
/// resolvers, in order: session cookies (`bundled:cookie`), the SDK's `header` example reading
/// `x-user`, and the password fixture knowing [`USER`] / [`PASSWORD`] in group `admins`.
pub async fn gateway_of(dir: &str, labels: &[(&str, &str)]) -> Gateway {
    let image = unique_name(dir);
    let mut all = vec![("orca.name", image.as_str())];
    all.extend_from_slice(labels);
    build_image(dir, &format!("{image}:latest"), &all).expect("the test image builds");
    let instance = unique_name("https");
    let state = tempfile::tempdir().expect("tempdir");

    let header = plugins::sdk_example().expect("the SDK example builds");
    let passwords = plugins::rust_plugin("orca-fixture-passwords").expect("fixture builds");
    let user_key = format!("user:{USER}");
    let groups_key = format!("groups:{USER}");
    let resolvers = [
        identity::resolver("sessions", PluginSource::Bundled("cookie".into()), &[]),
        identity::resolver(
            "header",
            PluginSource::Path(header),
            &[("header", "x-user")],
        ),
        identity::resolver(
            "passwords",
            PluginSource::Path(passwords),
            &[
                (user_key.as_str(), PASSWORD),
                (groups_key.as_str(), "admins"),
            ],
        ),
    ];
    let metrics = Metrics::new();
    let identities = Arc::new(
        Identities::load(&resolvers, state.path(), metrics.clone())
            .await
            .expect("resolvers load"),
    );
    let runtime = DockerRuntime::connect(None, "bridge")
        .await
        .expect("docker reachable");
    let scheduler = Scheduler::start(
        Arc::new(runtime),
        Options {
            instance: instance.clone(),
            network: "bridge".into(),
            state_dir: Some(state.path().to_path_buf()),
            tuning: SchedulerConfig {
                launch_parallelism: 4,
                launch_attempts: 5,
                launch_retry_delay: Duration::from_millis(500),
                ready_timeout: Duration::from_secs(30),
                max_containers: 20,
                restart_grace: Duration::from_secs(120),
            },
            sweep_interval: Duration::from_millis(200),
        },
        Arc::new(metrics),
    )
    .await
    .expect("scheduler starts");
    let https_config = orca::config::Config::embedded().https;
    let certificates =
        Certificates::load(&https_config, "localhost", state.path()).expect("certificate");
    let ca = certificates
        .self_signed_path()
        .expect("the gateway generated its certificate");
    let front = Front::new(
        "localhost",
        identities,
        scheduler.clone(),
        Proxy::new(ProxyOptions::default()),
        Duration::from_secs(30),
    );
    let balancer = "127.0.0.1".parse().expect("an address block");
    let plain = Arc::new(front.behind_balancer(vec![balancer]));
    let front = Arc::new(front);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let plain_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let plain_port = plain_listener.local_addr().expect("local addr").port();
    let shutdown = CancellationToken::new();
    tokio::spawn(https::serve(
        plain_listener,
        None,
        plain,
        ServeOptions::default(),
        shutdown.clone(),
    ));
    tokio::spawn(https::serve(
        listener,
        Some(tls::server_config(&certificates)),
        front,
        ServeOptions::default(),
        shutdown.clone(),
    ));
    Gateway {
        image,
        port,
        plain_port,
        ca,
        scheduler,
        shutdown,
        _state: state,
        _cleanup: Cleanup(instance),
    }
}

impl Gateway {
    /// `https://<image>.localhost:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}.localhost:{}{path}", self.image, self.port)
    }

    /// curl against `host` (an image name, or "" for the bare domain) with extra arguments.
    pub async fn curl(&self, host: &str, path: &str, args: &[&str]) -> Reply {
        self.curl_at("https", self.port, host, path, args).await
    }

    /// The same over plain HTTP to [`Gateway::plain_port`].
    pub async fn curl_plain(&self, host: &str, path: &str, args: &[&str]) -> Reply {
        self.curl_at("http", self.plain_port, host, path, args)
            .await
    }

    async fn curl_at(
        &self,
        scheme: &str,
        port: u16,
        host: &str,
        path: &str,
        args: &[&str],
    ) -> Reply {
        let name = if host.is_empty() {
            "localhost".to_string()
        } else {
            format!("{host}.localhost")
        };
        let url = format!("{scheme}://{name}:{port}{path}");
        let resolve = format!("{name}:{port}:127.0.0.1");
        let dir = tempfile::tempdir().expect("tempdir");
        let head = dir.path().join("headers");
        let out = tokio::process::Command::new("curl")
            .args(["-sk", "--max-time", "60", "--resolve", &resolve, "-D"])
            .arg(&head)
            .args(["-w", "\n%{http_code}"])
            .args(args)
            .arg(&url)
            .output()
            .await
            .expect("curl runs (scripts/setup installs it)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        Reply {
            status: code.trim().parse().unwrap_or(0),
            headers: std::fs::read_to_string(&head).unwrap_or_default(),
            body: body.to_string(),
        }
    }
}
