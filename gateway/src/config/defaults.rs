//! Every default of the configuration, named, and the embedded configuration of SPEC §2.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::{
    AdminConfig, Config, DockerConfig, HttpsConfig, PluginSource, ResolverConfig, SchedulerConfig,
    SshConfig,
};

/// Images are served at `<image>.localhost`, which browsers and curl resolve to loopback.
pub const DEFAULT_DOMAIN: &str = "localhost";
/// State lives in `./.orca` unless configured.
pub const DEFAULT_STATE_DIR: &str = ".orca";
/// The gateway's name on the Docker engine.
pub const DEFAULT_INSTANCE: &str = "orca";
/// HTTPS on loopback port 8443.
pub const DEFAULT_HTTPS_LISTEN: SocketAddr = loopback(8443);
/// SSH on loopback port 2222.
pub const DEFAULT_SSH_LISTEN: SocketAddr = loopback(2222);
/// Metrics, health and the admin API on loopback port 9090.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr = loopback(9090);
/// Launched containers join Docker's default bridge.
pub const DEFAULT_NETWORK: &str = "bridge";
/// Container launches in flight at once (a 2-core engine host creates about this many well).
pub const DEFAULT_LAUNCH_PARALLELISM: usize = 4;
/// Attempts per launch, as the original Orca made.
pub const DEFAULT_LAUNCH_ATTEMPTS: u32 = 5;
/// Pause between launch attempts, as the original Orca made.
pub const DEFAULT_LAUNCH_RETRY_DELAY: Duration = Duration::from_millis(500);
/// How long a new container may take to pass `orca.ready`.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Containers managed at once across all images.
pub const DEFAULT_MAX_CONTAINERS: usize = 200;
/// How long a restored user may take to reconnect after a gateway restart.
pub const DEFAULT_RESTART_GRACE: Duration = Duration::from_secs(120);
/// Deadline of one resolver call.
pub const DEFAULT_RESOLVER_TIMEOUT: Duration = Duration::from_secs(2);
/// Memory cap of one resolver instance, in MiB.
pub const DEFAULT_RESOLVER_MEMORY_MB: u32 = 64;

const fn loopback(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

pub(super) fn scheduler() -> SchedulerConfig {
    SchedulerConfig {
        launch_parallelism: DEFAULT_LAUNCH_PARALLELISM,
        launch_attempts: DEFAULT_LAUNCH_ATTEMPTS,
        launch_retry_delay: DEFAULT_LAUNCH_RETRY_DELAY,
        ready_timeout: DEFAULT_READY_TIMEOUT,
        max_containers: DEFAULT_MAX_CONTAINERS,
        restart_grace: DEFAULT_RESTART_GRACE,
    }
}

pub(super) fn embedded() -> Config {
    let state_dir = std::path::PathBuf::from(DEFAULT_STATE_DIR);
    Config {
        domain: DEFAULT_DOMAIN.to_string(),
        instance: DEFAULT_INSTANCE.to_string(),
        https: HttpsConfig {
            listen: DEFAULT_HTTPS_LISTEN,
            tls: None,
        },
        http: None,
        ssh: SshConfig {
            listen: DEFAULT_SSH_LISTEN,
            host_keys: Vec::new(),
        },
        admin: AdminConfig {
            listen: DEFAULT_ADMIN_LISTEN,
        },
        docker: DockerConfig {
            host: None,
            network: DEFAULT_NETWORK.to_string(),
        },
        scheduler: scheduler(),
        resolvers: vec![
            ResolverConfig {
                name: "sessions".to_string(),
                plugin: PluginSource::Bundled("cookie".to_string()),
                config: BTreeMap::from([
                    ("cookie".to_string(), "orca_session".to_string()),
                    ("ttl".to_string(), "12h".to_string()),
                    ("anonymous".to_string(), "true".to_string()),
                ]),
                connect: Vec::new(),
                files: None,
                timeout: DEFAULT_RESOLVER_TIMEOUT,
                memory_mb: DEFAULT_RESOLVER_MEMORY_MB,
            },
            ResolverConfig {
                name: "ssh-keys".to_string(),
                plugin: PluginSource::Bundled("ssh-key".to_string()),
                config: BTreeMap::new(),
                connect: Vec::new(),
                files: Some(state_dir.join("keys")),
                timeout: DEFAULT_RESOLVER_TIMEOUT,
                memory_mb: DEFAULT_RESOLVER_MEMORY_MB,
            },
        ],
        state_dir,
        source: None,
    }
}
