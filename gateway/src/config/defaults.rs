//! Every default of the configuration, named, and the embedded configuration of SPEC §2.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    AdminConfig, Config, DockerConfig, HttpsConfig, LogConfig, LogFormat, PluginSource,
    ResolverConfig, SchedulerConfig, SshConfig,
};

/// Images are served at `<image>.localhost`, which browsers and curl resolve to loopback.
pub const DEFAULT_DOMAIN: &str = "localhost";
/// State lives in `./.orca` unless configured (relative to the config file's directory).
pub const DEFAULT_STATE_DIR: &str = ".orca";
/// The gateway's name on the Docker engine.
pub const DEFAULT_INSTANCE: &str = "orca";
/// HTTPS on loopback port 8443.
pub const DEFAULT_HTTPS_LISTEN: SocketAddr = loopback(8443);
/// `[https] response_timeout`: how long a container may take to answer a whole request; the
/// proxy's own default, so that the two cannot drift.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = crate::proxy::DEFAULT_RESPONSE_TIMEOUT;
/// The plain HTTP listener, when an `[http]` table is present without `listen`.
pub const DEFAULT_HTTP_LISTEN: SocketAddr = loopback(8080);
/// SSH on loopback port 2222.
pub const DEFAULT_SSH_LISTEN: SocketAddr = loopback(2222);
/// Variables an SSH client may pass into exec sessions: its locale and time zone (OpenSSH's
/// `SendEnv` default set, as Debian's sshd accepts them), never `PATH` or `LD_*`.
pub const DEFAULT_SSH_ENV: &[&str] = &["LANG", "LC_*", "TZ"];
/// How long an SSH connection has from connecting to logging in (OpenSSH's `LoginGraceTime`).
pub const DEFAULT_SSH_LOGIN_GRACE: Duration = Duration::from_secs(60);
/// Metrics, health and the admin API on loopback port 9090.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr = loopback(9090);
/// After SIGTERM/SIGINT, how long open connections get to finish (a request in flight, a
/// download); WebSockets and SSH sessions are told and closed at its end.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// The audit log's file name in the state directory.
pub const DEFAULT_AUDIT_FILE: &str = "audit.log";
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
/// Calls one resolver instance answers before a fresh one replaces it (see BENCHMARKS.md:
/// reuse makes slow-to-instantiate languages cheap; a bound keeps a leak in a plugin bounded).
pub const DEFAULT_RESOLVER_REUSE: u32 = 1000;
/// Instances of one resolver alive at once.
pub const DEFAULT_RESOLVER_CONCURRENCY: u32 = 16;
/// Longest reuse of a cached resolver answer.
pub const DEFAULT_RESOLVER_CACHE_MAX: Duration = Duration::from_secs(300);
/// Name of the embedded HTTPS resolver (bundled `cookie`).
pub const DEFAULT_SESSION_RESOLVER: &str = "sessions";
/// Cookie the embedded session resolver sets for the domain.
pub const DEFAULT_SESSION_COOKIE: &str = "orca_session";
/// Lifetime of a session cookie set by the embedded resolver.
pub const DEFAULT_SESSION_TTL: &str = "12h";
/// Name of the embedded SSH resolver (bundled `ssh-key`).
pub const DEFAULT_SSH_KEYS_RESOLVER: &str = "ssh-keys";
/// Directory under `state_dir` holding `<user>.pub` files for the embedded SSH resolver.
pub const DEFAULT_SSH_KEYS_DIR: &str = "keys";

const fn loopback(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// The `[scheduler]` table when no key of it is set.
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

/// The resolvers used when no `[[resolver]]` is configured: a signed session cookie with an
/// anonymous id as fallback for HTTPS, and `<state_dir>/keys/<user>.pub` for SSH.
pub(super) fn resolvers(state_dir: &Path) -> Vec<ResolverConfig> {
    vec![
        ResolverConfig {
            config: BTreeMap::from([
                ("cookie".to_string(), DEFAULT_SESSION_COOKIE.to_string()),
                ("ttl".to_string(), DEFAULT_SESSION_TTL.to_string()),
                ("anonymous".to_string(), "true".to_string()),
            ]),
            ..ResolverConfig::new(
                DEFAULT_SESSION_RESOLVER,
                PluginSource::Bundled("cookie".to_string()),
            )
        },
        ResolverConfig {
            files: Some(state_dir.join(DEFAULT_SSH_KEYS_DIR)),
            ..ResolverConfig::new(
                DEFAULT_SSH_KEYS_RESOLVER,
                PluginSource::Bundled("ssh-key".to_string()),
            )
        },
    ]
}

/// What `orca serve` runs on without a file (SPEC §2).
pub(super) fn embedded() -> Config {
    let state_dir = PathBuf::from(DEFAULT_STATE_DIR);
    Config {
        domain: DEFAULT_DOMAIN.to_string(),
        instance: DEFAULT_INSTANCE.to_string(),
        shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        https: HttpsConfig {
            listen: DEFAULT_HTTPS_LISTEN,
            tls: None,
            login_url: None,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            workers: None,
        },
        http: None,
        ssh: SshConfig {
            listen: DEFAULT_SSH_LISTEN,
            host_keys: Vec::new(),
            default_image: None,
            env: DEFAULT_SSH_ENV.iter().map(ToString::to_string).collect(),
            login_grace: DEFAULT_SSH_LOGIN_GRACE,
        },
        admin: AdminConfig {
            listen: DEFAULT_ADMIN_LISTEN,
            token_file: None,
        },
        log: LogConfig {
            format: LogFormat::Human,
            audit: Some(state_dir.join(DEFAULT_AUDIT_FILE)),
        },
        docker: DockerConfig {
            host: None,
            network: DEFAULT_NETWORK.to_string(),
        },
        scheduler: scheduler(),
        resolvers: resolvers(&state_dir),
        state_dir,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_match_spec_section_2() {
        let c = embedded();
        assert_eq!(c.domain, "localhost");
        assert_eq!(c.instance, "orca");
        assert_eq!(c.state_dir, PathBuf::from(".orca"));
        assert_eq!(c.https.listen.to_string(), "127.0.0.1:8443");
        assert!(c.https.tls.is_none(), "self-signed by default");
        assert!(c.http.is_none(), "no plain listener by default");
        assert_eq!(c.ssh.listen.to_string(), "127.0.0.1:2222");
        assert!(
            c.ssh.host_keys.is_empty(),
            "host key generated into state_dir"
        );
        assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9090");
        assert_eq!(c.admin.token_file, None);
        assert_eq!(c.log.format, LogFormat::Human);
        assert_eq!(c.log.audit, Some(PathBuf::from(".orca/audit.log")));
        assert_eq!(c.shutdown_grace, Duration::from_secs(10));
        assert_eq!(c.docker.host, None, "DOCKER_HOST or the local socket");
        assert_eq!(c.docker.network, "bridge");
        assert_eq!(c.source, None);

        let s = &c.scheduler;
        assert_eq!(s.launch_parallelism, 4);
        assert_eq!(s.launch_attempts, 5);
        assert_eq!(s.launch_retry_delay, Duration::from_millis(500));
        assert_eq!(s.ready_timeout, Duration::from_secs(60));
        assert_eq!(s.max_containers, 200);
        assert_eq!(s.restart_grace, Duration::from_secs(120));

        let [cookie, keys] = c.resolvers.as_slice() else {
            panic!("two embedded resolvers expected: {:?}", c.resolvers);
        };
        assert_eq!(cookie.name, "sessions");
        assert_eq!(cookie.plugin, PluginSource::Bundled("cookie".into()));
        let pairs: Vec<(&str, &str)> = cookie
            .config
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("anonymous", "true"),
                ("cookie", "orca_session"),
                ("ttl", "12h")
            ]
        );
        assert_eq!(cookie.files, None);
        assert_eq!(keys.name, "ssh-keys");
        assert_eq!(keys.plugin, PluginSource::Bundled("ssh-key".into()));
        assert_eq!(keys.files, Some(PathBuf::from(".orca/keys")));
        for r in &c.resolvers {
            assert!(r.connect.is_empty(), "bundled resolvers open no sockets");
            assert_eq!(r.timeout, Duration::from_secs(2));
            assert_eq!(r.memory_mb, 64);
        }
    }
}
