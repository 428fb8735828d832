//! An in-process gateway for the HTTPS tests: the real front, resolvers, scheduler and proxy,
//! serving one test image over TLS on 127.0.0.1 with a self-signed certificate authority for
//! the domain `localhost`. Shared by the curl tests (`https_front`), the streaming tests
//! (`https_streams`, against the app of `tests/app`) and the browser test (`https_browser`),
//! so all exercise the same wiring.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use orca::config::{PluginSource, ResolverConfig, SchedulerConfig};
use orca::front::Front;
use orca::identity::Identities;
use orca::images::ReadyCheck;
use orca::listeners::https::{self, ServeOptions};
use orca::listeners::tls::{self, Certificates};
use orca::metrics::Metrics;
use orca::proxy::{Proxy, ProxyOptions};
use orca::runtime::docker::DockerRuntime;
use orca::runtime::{
    Attached, ContainerInfo, CreateSpec, EventStream, ExecSpec, ImageInfo, Runtime, RuntimeError,
    TtySize,
};
use orca::scheduler::{Options, Scheduler};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::app::app_image;
use crate::{
    build_image, cleanup_containers, container_ids_with_label, identity, plugins, unique_name,
};

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
    /// Holds back the engine's events from the scheduler while a test asks.
    pub events: EventGate,
    /// The gateway's metrics, to see what the requests counted.
    pub metrics: Metrics,
    shutdown: CancellationToken,
    _state: tempfile::TempDir,
    _cleanup: Cleanup,
}

/// Removes every container of gateway instance `.0` when dropped, even when the test fails.
#[derive(Debug)]
pub struct Cleanup(pub String);

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

    /// The `hostname:` line (the container's short id): which container answered.
    pub fn hostname(&self) -> String {
        self.line("hostname")
            .unwrap_or_else(|| panic!("no hostname in the answer: {self:?}"))
            .to_string()
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
    start(image, &default_resolvers()).await
}

/// The same gateway serving the test app of `tests/app` (see `tests/images/app`).
pub async fn app_gateway(labels: &[(&str, &str)]) -> Gateway {
    app_gateway_with(labels, default_resolvers()).await
}

/// The gateway of [`app_gateway`] with the test's own resolvers, in order.
pub async fn app_gateway_with(labels: &[(&str, &str)], resolvers: Vec<ResolverConfig>) -> Gateway {
    let image = unique_name("app");
    let mut all = vec![("orca.name", image.as_str())];
    all.extend_from_slice(labels);
    app_image(&format!("{image}:latest"), &all).expect("the test app image builds");
    start(image, &resolvers).await
}

/// The resolvers of [`gateway_of`] and [`app_gateway`]: session cookies, the `x-user` header,
/// and the password fixture knowing [`USER`].
pub fn default_resolvers() -> Vec<ResolverConfig> {
    let header = plugins::sdk_example().expect("the SDK example builds");
    vec![
        cookie_resolver(&[]),
        identity::resolver(
            "header",
            PluginSource::Path(header),
            &[("header", "x-user")],
        ),
        password_resolver(&[(USER, PASSWORD, "admins")]),
    ]
}

/// `bundled:cookie` named `sessions`, with `settings`.
pub fn cookie_resolver(settings: &[(&str, &str)]) -> ResolverConfig {
    identity::resolver("sessions", PluginSource::Bundled("cookie".into()), settings)
}

/// The password fixture named `passwords`, knowing each (user, password, comma-separated
/// groups) of `users`.
pub fn password_resolver(users: &[(&str, &str, &str)]) -> ResolverConfig {
    let passwords = plugins::rust_plugin("orca-fixture-passwords").expect("fixture builds");
    let settings: Vec<(String, String)> = users
        .iter()
        .flat_map(|(user, password, groups)| {
            [
                (format!("user:{user}"), password.to_string()),
                (format!("groups:{user}"), groups.to_string()),
            ]
        })
        .collect();
    let settings: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    identity::resolver("passwords", PluginSource::Path(passwords), &settings)
}

async fn start(image: String, resolvers: &[ResolverConfig]) -> Gateway {
    crate::log::capture();
    let instance = unique_name("https");
    let state = tempfile::tempdir().expect("tempdir");
    let metrics = Metrics::new();
    let identities = Arc::new(
        Identities::load(resolvers, state.path(), metrics.clone())
            .await
            .expect("resolvers load"),
    );
    let docker = DockerRuntime::connect(None, "bridge")
        .await
        .expect("docker reachable");
    let (gate, _) = watch::channel(false);
    let events = EventGate(Arc::new(gate));
    let runtime = Gated {
        inner: docker,
        gate: events.clone(),
    };
    let scheduler = Scheduler::start(
        Arc::new(runtime),
        scheduler_options(&instance, state.path()),
        Arc::new(metrics.clone()),
    )
    .await
    .expect("scheduler starts");
    let certificates = Certificates::load(None, "localhost", state.path()).expect("certificate");
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
        events,
        metrics,
        shutdown,
        _state: state,
        _cleanup: Cleanup(instance),
    }
}

/// The scheduler settings of the test gateways: quick sweeps, a few retries, state in `state`.
pub(crate) fn scheduler_options(instance: &str, state: &std::path::Path) -> Options {
    Options {
        instance: instance.to_string(),
        network: "bridge".into(),
        state_dir: Some(state.to_path_buf()),
        tuning: SchedulerConfig {
            launch_parallelism: 4,
            launch_attempts: 5,
            launch_retry_delay: Duration::from_millis(500),
            ready_timeout: Duration::from_secs(30),
            max_containers: 20,
            restart_grace: Duration::from_secs(120),
        },
        sweep_interval: Duration::from_millis(200),
        audit: orca::audit::Audit::off(),
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

    /// A silent curl that trusts the gateway's CA and resolves the image's host to 127.0.0.1;
    /// the caller adds the URL ([`Gateway::url`]) and whatever else it needs.
    pub fn curl_command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("curl");
        cmd.arg("-sS")
            .arg("--cacert")
            .arg(&self.ca)
            .arg("--resolve")
            .arg(format!("{}.localhost:{}:127.0.0.1", self.image, self.port))
            .kill_on_drop(true);
        cmd
    }

    /// A TLS connection to the gateway for `<image>.localhost`, trusting only its CA, offering
    /// no ALPN, so HTTP/1.1 (upgrades are an HTTP/1.1 affair).
    pub async fn connect_tls(&self) -> TlsStream<TcpStream> {
        crate::tls::connect_trusting(&self.ca, self.port, &format!("{}.localhost", self.image))
            .await
    }

    /// Ids of this gateway's containers (running or not), as Docker lists them.
    pub fn docker_containers(&self) -> Vec<String> {
        container_ids_with_label(&format!("orca.gateway.instance={}", self._cleanup.0))
    }

    /// Fails when any of this gateway's containers logged one of `probes` (paths from
    /// [`crate::app::probe`]), and, to prove the logs are read at all, unless one logged
    /// `arrived`. For the test app, which logs every request line.
    pub fn assert_no_container_saw(&self, probes: &[String], arrived: &str) {
        let logs: String = self
            .docker_containers()
            .iter()
            .map(|id| crate::docker(&["logs", id]).unwrap_or_default())
            .collect();
        assert!(
            logs.contains(arrived),
            "the control request {arrived} is not in the containers' logs:\n{logs}"
        );
        for p in probes {
            assert!(
                !logs.contains(p.as_str()),
                "a container saw the refused {p}:\n{logs}"
            );
        }
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

/// While held, the engine's events wait before reaching the scheduler, as when its event
/// stream is down: the scheduler then learns of a dead container only from the proxy.
#[derive(Debug, Clone)]
pub struct EventGate(Arc<watch::Sender<bool>>);

impl EventGate {
    /// Events wait from now on.
    pub fn hold(&self) {
        self.0.send_replace(true);
    }

    /// Events flow again, the held ones first.
    pub fn release(&self) {
        self.0.send_replace(false);
    }
}

/// Docker, with its event stream behind an [`EventGate`].
#[derive(Debug)]
struct Gated {
    inner: DockerRuntime,
    gate: EventGate,
}

#[async_trait]
impl Runtime for Gated {
    async fn list_images(&self) -> Result<Vec<ImageInfo>, RuntimeError> {
        self.inner.list_images().await
    }

    async fn list_managed(&self, instance: &str) -> Result<Vec<ContainerInfo>, RuntimeError> {
        self.inner.list_managed(instance).await
    }

    async fn create(&self, spec: &CreateSpec) -> Result<String, RuntimeError> {
        self.inner.create(spec).await
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.inner.start(id).await
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        self.inner.inspect(id).await
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        self.inner.stop(id, grace).await
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        self.inner.remove(id).await
    }

    async fn probe(&self, addr: std::net::IpAddr, port: Option<u16>, check: &ReadyCheck) -> bool {
        self.inner.probe(addr, port, check).await
    }

    fn events(&self) -> EventStream {
        let gate = self.gate.0.subscribe();
        Box::pin(self.inner.events().then(move |event| {
            let mut gate = gate.clone();
            async move {
                // An error here only means the gateway is gone, and the event with it.
                let _ = gate.wait_for(|held| !held).await;
                event
            }
        }))
    }

    async fn attach(&self, id: &str) -> Result<Attached, RuntimeError> {
        self.inner.attach(id).await
    }

    async fn exec(&self, id: &str, exec: &ExecSpec) -> Result<Attached, RuntimeError> {
        self.inner.exec(id, exec).await
    }

    async fn resize(
        &self,
        id: &str,
        exec_id: Option<&str>,
        size: TtySize,
    ) -> Result<(), RuntimeError> {
        self.inner.resize(id, exec_id, size).await
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, RuntimeError> {
        self.inner.exec_exit_code(exec_id).await
    }

    async fn signal(
        &self,
        id: &str,
        exec_id: Option<&str>,
        signal: &str,
    ) -> Result<(), RuntimeError> {
        self.inner.signal(id, exec_id, signal).await
    }
}
