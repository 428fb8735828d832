//! Every metric family Orca exports, in one place.
//!
//! Names are prefixed `orca_`; labels are bounded (image, state, result, reason, phase): no
//! per-user labels. The table in `docs/metrics.md` documents each family; a test keeps the
//! two in step. Families are registered in a private [`Registry`] so that tests can build
//! independent gateways in one process.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Buckets for container start phases: 5 ms to about 80 s.
const START_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0,
];

/// Buckets for resolver calls: 10 µs to 5 s (a call's deadline is seconds at most).
const RESOLVER_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// All of Orca's metric families.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `orca_containers{image,state}`: managed containers by lifecycle state.
    pub containers: IntGaugeVec,
    /// `orca_users{image}`: users bound to a container, by image.
    pub users: IntGaugeVec,
    /// `orca_container_starts_total{image,result}`: launches by outcome (`ok`, `failed`).
    pub starts: IntCounterVec,
    /// `orca_container_start_duration_seconds{phase}`: time per launch phase
    /// (`queue`, `create`, `start`, `ready`, `total`).
    pub start_duration: HistogramVec,
    /// `orca_container_stops_total{image,reason}`: stops by reason.
    pub stops: IntCounterVec,
    /// `orca_user_kicks_total{image,reason}`: users removed from a container, by reason.
    pub kicks: IntCounterVec,
    /// `orca_images{state}`: images seen, `ok` or `error` (a bad label).
    pub images: IntGaugeVec,
    /// `orca_image_label_errors{image}`: label errors of each disabled image.
    pub image_label_errors: IntGaugeVec,
    /// `orca_runtime_errors_total{operation}`: failed container engine requests.
    pub runtime_errors: IntCounterVec,
    /// `orca_state_write_errors_total{}`: failures to persist bindings to the state directory.
    pub state_write_errors: IntCounterVec,
    /// `orca_resolver_calls_total{resolver,interface,result}`: resolver answers (`allow`,
    /// `deny`, `pass`, `error`, `cached`).
    pub resolver_calls: IntCounterVec,
    /// `orca_resolver_call_duration_seconds{resolver,interface}`: time per call, including
    /// instantiation when the call needed a new instance.
    pub resolver_duration: HistogramVec,
    /// `orca_resolver_failures_total{resolver,kind}`: calls turned into a deny by a failure
    /// (`trap`, `timeout`, `memory`, `malformed`, `instantiate`, `init`, `busy`), and sockets
    /// the sandbox refused (`socket`).
    pub resolver_failures: IntCounterVec,
    /// `orca_resolver_instances_total{resolver}`: instances created (instantiate + init).
    pub resolver_instances: IntCounterVec,
    /// `orca_ssh_logins_total{method,result}`: SSH login attempts the resolvers answered, by
    /// method (`publickey`, `password`, `keyboard-interactive`) and result (`accepted`,
    /// `refused`).
    pub ssh_logins: IntCounterVec,
    /// `orca_ssh_sessions_total{end}`: SSH session channels by how they ended (`exited`,
    /// `ended`, `failed`, `cancelled`, `closed`).
    pub ssh_sessions: IntCounterVec,
    /// `orca_connections_total{listener}`: connections accepted (`https`, `http`, `ssh`,
    /// `admin`).
    pub connections: IntCounterVec,
    /// `orca_connections_open{listener}`: connections open now.
    pub connections_open: IntGaugeVec,
    /// `orca_http_requests_total{listener,code}`: HTTP responses by status class (`2xx` …),
    /// whether the container or the gateway wrote them.
    pub http_requests: IntCounterVec,
    /// `orca_proxied_bytes_total{image,direction}`: bytes relayed between users and
    /// containers (`to_container`, `to_client`), over HTTPS and SSH.
    pub proxied_bytes: IntCounterVec,
    /// `orca_reloads_total{result}`: SIGHUP reloads (`ok`, `failed`).
    pub reloads: IntCounterVec,
    /// `orca_audit_write_errors_total{}`: audit records that could not be written.
    pub audit_write_errors: IntCounterVec,
}

/// A listener's connection counters, resolved once so that accepting costs two atomic updates.
#[derive(Debug, Clone)]
pub struct ConnectionMetrics {
    accepted: IntCounter,
    open: IntGauge,
}

impl ConnectionMetrics {
    /// Counts a connection accepted; it counts as open until the returned guard is dropped.
    pub fn opened(&self) -> OpenConnection {
        self.accepted.inc();
        self.open.inc();
        OpenConnection(self.open.clone())
    }

    /// Counters that belong to no registry (tests, servers run without a gateway).
    pub fn unregistered() -> Self {
        Self {
            accepted: IntCounter::new("unregistered", "unregistered")
                .expect("a static name is valid"),
            open: IntGauge::new("unregistered", "unregistered").expect("a static name is valid"),
        }
    }
}

/// One open connection in `orca_connections_open`.
#[derive(Debug)]
pub struct OpenConnection(IntGauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// An image's byte counters, resolved once per binding so that relaying costs atomic adds.
#[derive(Debug, Clone)]
pub struct ByteCounters {
    /// Bytes from users to the image's containers.
    pub to_container: IntCounter,
    /// Bytes from the image's containers to users.
    pub to_client: IntCounter,
}

impl Metrics {
    /// Registers every family in a fresh registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)
                .expect("metric names and labels are static and valid");
            registry
                .register(Box::new(g.clone()))
                .expect("each family is registered once");
            g
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)
                .expect("metric names and labels are static and valid");
            registry
                .register(Box::new(c.clone()))
                .expect("each family is registered once");
            c
        };
        let containers = gauge(
            "orca_containers",
            "Managed containers by image and lifecycle state.",
            &["image", "state"],
        );
        let users = gauge(
            "orca_users",
            "Users bound to a container, by image.",
            &["image"],
        );
        let starts = counter(
            "orca_container_starts_total",
            "Container launches by image and result.",
            &["image", "result"],
        );
        let stops = counter(
            "orca_container_stops_total",
            "Container stops by image and reason.",
            &["image", "reason"],
        );
        let kicks = counter(
            "orca_user_kicks_total",
            "Users removed from their container, by image and reason.",
            &["image", "reason"],
        );
        let images = gauge(
            "orca_images",
            "Images seen, by state (ok, error).",
            &["state"],
        );
        let image_label_errors = gauge(
            "orca_image_label_errors",
            "Label errors of each image disabled by a bad label.",
            &["image"],
        );
        let runtime_errors = counter(
            "orca_runtime_errors_total",
            "Failed container engine requests, by operation.",
            &["operation"],
        );
        let state_write_errors = counter(
            "orca_state_write_errors_total",
            "Failures to persist bindings to the state directory.",
            &[],
        );
        let resolver_calls = counter(
            "orca_resolver_calls_total",
            "Resolver answers by resolver, interface and result.",
            &["resolver", "interface", "result"],
        );
        let resolver_failures = counter(
            "orca_resolver_failures_total",
            "Resolver calls turned into a deny by a failure, by kind.",
            &["resolver", "kind"],
        );
        let resolver_instances = counter(
            "orca_resolver_instances_total",
            "Resolver instances created.",
            &["resolver"],
        );
        let ssh_logins = counter(
            "orca_ssh_logins_total",
            "SSH login attempts answered by the resolvers, by method and result.",
            &["method", "result"],
        );
        let ssh_sessions = counter(
            "orca_ssh_sessions_total",
            "SSH session channels by how they ended.",
            &["end"],
        );
        let connections = counter(
            "orca_connections_total",
            "Connections accepted, by listener.",
            &["listener"],
        );
        let connections_open = gauge(
            "orca_connections_open",
            "Connections open now, by listener.",
            &["listener"],
        );
        let http_requests = counter(
            "orca_http_requests_total",
            "HTTP responses by listener and status class.",
            &["listener", "code"],
        );
        let proxied_bytes = counter(
            "orca_proxied_bytes_total",
            "Bytes relayed between users and containers, by image and direction.",
            &["image", "direction"],
        );
        let reloads = counter(
            "orca_reloads_total",
            "Configuration reloads (SIGHUP), by result.",
            &["result"],
        );
        let audit_write_errors = counter(
            "orca_audit_write_errors_total",
            "Audit records that could not be written.",
            &[],
        );
        let resolver_duration = HistogramVec::new(
            HistogramOpts::new(
                "orca_resolver_call_duration_seconds",
                "Time per resolver call, including any instantiation it needed.",
            )
            .buckets(RESOLVER_BUCKETS.to_vec()),
            &["resolver", "interface"],
        )
        .expect("metric names and labels are static and valid");
        registry
            .register(Box::new(resolver_duration.clone()))
            .expect("each family is registered once");
        let start_duration = HistogramVec::new(
            HistogramOpts::new(
                "orca_container_start_duration_seconds",
                "Time spent in each phase of a container launch.",
            )
            .buckets(START_BUCKETS.to_vec()),
            &["phase"],
        )
        .expect("metric names and labels are static and valid");
        registry
            .register(Box::new(start_duration.clone()))
            .expect("each family is registered once");
        // A family shows in the exposition once it has a child: create those whose label
        // values are known in advance, so dashboards and alerts see zeros, not absences.
        for method in ["publickey", "password", "keyboard-interactive"] {
            for result in ["accepted", "refused"] {
                ssh_logins.with_label_values(&[method, result]);
            }
        }
        for end in ["exited", "ended", "failed", "cancelled", "closed"] {
            ssh_sessions.with_label_values(&[end]);
        }
        for result in ["ok", "failed"] {
            reloads.with_label_values(&[result]);
        }
        for phase in ["queue", "create", "start", "ready", "total"] {
            start_duration.with_label_values(&[phase]);
        }
        state_write_errors.with_label_values::<&str>(&[]);
        audit_write_errors.with_label_values::<&str>(&[]);
        Self {
            registry,
            containers,
            users,
            starts,
            start_duration,
            stops,
            kicks,
            images,
            image_label_errors,
            runtime_errors,
            state_write_errors,
            resolver_calls,
            resolver_duration,
            resolver_failures,
            resolver_instances,
            ssh_logins,
            ssh_sessions,
            connections,
            connections_open,
            http_requests,
            proxied_bytes,
            reloads,
            audit_write_errors,
        }
    }

    /// The connection counters of `listener` (`https`, `http`, `ssh`, `admin`).
    pub fn connections_of(&self, listener: &str) -> ConnectionMetrics {
        ConnectionMetrics {
            accepted: self.connections.with_label_values(&[listener]),
            open: self.connections_open.with_label_values(&[listener]),
        }
    }

    /// The byte counters of `image`.
    pub fn bytes_of(&self, image: &str) -> ByteCounters {
        ByteCounters {
            to_container: self
                .proxied_bytes
                .with_label_values(&[image, "to_container"]),
            to_client: self.proxied_bytes.with_label_values(&[image, "to_client"]),
        }
    }

    /// The response counters of `listener`, one per status class from `1xx` to `5xx`.
    pub fn responses_of(&self, listener: &str) -> [IntCounter; 5] {
        ["1xx", "2xx", "3xx", "4xx", "5xx"]
            .map(|class| self.http_requests.with_label_values(&[listener, class]))
    }

    /// The text exposition format of every family.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# encoding metrics failed: {e}\n"))
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_with_known_labels_are_exported_at_zero_before_anything_happens() {
        let text = Metrics::new().render();
        for line in [
            "orca_ssh_logins_total{method=\"password\",result=\"refused\"} 0",
            "orca_ssh_sessions_total{end=\"closed\"} 0",
            "orca_reloads_total{result=\"failed\"} 0",
            "orca_container_start_duration_seconds_count{phase=\"create\"} 0",
            "orca_state_write_errors_total 0",
            "orca_audit_write_errors_total 0",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn every_family_is_documented_in_docs_metrics_md() {
        let doc = include_str!("../../docs/metrics.md");
        let m = Metrics::new();
        // Touch every vector so that it is rendered.
        m.containers.with_label_values(&["x", "ready"]).set(1);
        m.users.with_label_values(&["x"]).set(1);
        m.starts.with_label_values(&["x", "ok"]).inc();
        m.start_duration.with_label_values(&["total"]).observe(1.0);
        m.stops.with_label_values(&["x", "linger"]).inc();
        m.kicks.with_label_values(&["x", "inactive"]).inc();
        m.images.with_label_values(&["ok"]).set(1);
        m.image_label_errors.with_label_values(&["x"]).set(1);
        m.runtime_errors.with_label_values(&["create"]).inc();
        m.state_write_errors.with_label_values::<&str>(&[]).inc();
        m.resolver_calls
            .with_label_values(&["r", "http", "allow"])
            .inc();
        m.resolver_duration
            .with_label_values(&["r", "http"])
            .observe(0.001);
        m.resolver_failures.with_label_values(&["r", "trap"]).inc();
        m.resolver_instances.with_label_values(&["r"]).inc();
        m.ssh_logins
            .with_label_values(&["publickey", "accepted"])
            .inc();
        m.ssh_sessions.with_label_values(&["exited"]).inc();
        let _open = m.connections_of("https").opened();
        m.responses_of("https")[1].inc();
        m.bytes_of("x").to_client.inc_by(5);
        m.reloads.with_label_values(&["ok"]).inc();
        m.audit_write_errors.with_label_values::<&str>(&[]).inc();
        let families: Vec<String> = m
            .registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        assert_eq!(families.len(), 22);
        for name in &families {
            assert!(
                doc.contains(&format!("| `{name}` |")),
                "{name} is missing from docs/metrics.md"
            );
        }
        let documented = doc.lines().filter(|l| l.starts_with("| `orca_")).count();
        assert_eq!(
            documented,
            families.len(),
            "docs/metrics.md lists families the code does not have"
        );
        let text = m.render();
        assert!(text.contains("orca_container_stops_total{image=\"x\",reason=\"linger\"} 1"));
        assert!(text.contains("orca_connections_open{listener=\"https\"} 1"));
        assert!(text.contains("orca_http_requests_total{code=\"2xx\",listener=\"https\"} 1"));
        assert!(text.contains("orca_proxied_bytes_total{direction=\"to_client\",image=\"x\"} 5"));
        drop(_open);
        assert!(
            m.render()
                .contains("orca_connections_open{listener=\"https\"} 0")
        );
    }
}
