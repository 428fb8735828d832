//! The configuration file (SPEC §3), parsed once into a typed, validated [`Config`].
//!
//! `file.rs` holds the serde mirror of the TOML (`deny_unknown_fields`) and reads it;
//! `structure.rs` turns serde's first-error-only failures into one error per unknown key or
//! wrong type; one conversion in `validate.rs` turns the mirror into a `Config`, collecting
//! every error with its key, value and fix; `render.rs` writes a `Config` back as TOML.
//! Defaults are the named constants in `defaults.rs`. Nothing else in Orca reads TOML or
//! environment variables for settings.

mod defaults;
mod file;
mod render;
mod structure;
mod validate;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use defaults::*;
pub use file::{ConfigError, ConfigErrors};

/// The whole effective configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Images are served at `<image>.<domain>`.
    pub domain: String,
    /// Signing keys, SSH host keys, generated certificate, persisted bindings.
    pub state_dir: PathBuf,
    /// Name of this gateway on the Docker engine: containers carry it, and a gateway only
    /// adopts or removes containers of its own instance. Several gateways sharing one engine
    /// must use different names.
    pub instance: String,
    /// After SIGTERM/SIGINT: how long open connections get to finish before they are closed.
    pub shutdown_grace: Duration,
    /// The HTTPS listener.
    pub https: HttpsConfig,
    /// The optional plain HTTP listener.
    pub http: Option<HttpConfig>,
    /// The SSH listener.
    pub ssh: SshConfig,
    /// The admin listener (metrics, health, API).
    pub admin: AdminConfig,
    /// How to reach the container engine.
    pub docker: DockerConfig,
    /// Placement and launch tuning.
    pub scheduler: SchedulerConfig,
    /// Logging and the audit log.
    pub log: LogConfig,
    /// Identity resolvers, tried in order.
    pub resolvers: Vec<ResolverConfig>,
    /// The file this was read from; `None` for the embedded defaults.
    pub source: Option<PathBuf>,
}

/// `[https]`
#[derive(Debug, Clone, PartialEq)]
pub struct HttpsConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// PEM certificate chain and key; `None` means self-signed for `*.<domain>`.
    pub tls: Option<TlsFiles>,
    /// An external login page for browsers with no identity: `{url}` in it is replaced by the
    /// percent-encoded URL they asked for; without `{url}`, `redirect=<url>` is appended.
    pub login_url: Option<String>,
    /// Longest wait for a container's response once it has the whole request (then 504).
    pub response_timeout: Duration,
    /// Threads serving client connections (of this listener and `[http]`'s); `None`: one per
    /// CPU core.
    pub workers: Option<usize>,
}

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// `[http]`
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// What the plain listener does with requests.
    pub mode: HttpMode,
    /// Peers whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed (`mode = "serve"`).
    pub trusted_proxies: Vec<Cidr>,
}

/// `[http] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpMode {
    /// Send every request to the same URL over HTTPS.
    #[default]
    Redirect,
    /// Serve like the HTTPS listener: for a gateway behind a load balancer that ends TLS.
    Serve,
}

impl HttpMode {
    /// The word used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMode::Redirect => "redirect",
            HttpMode::Serve => "serve",
        }
    }
}

/// An address block such as `10.0.0.0/8` or a single address (`/32`, `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The first address of the block.
    pub network: IpAddr,
    /// Leading bits that must match.
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in the block; an IPv4-mapped IPv6 address counts as its IPv4 form.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        // Both sides cut to the prefix by the one masking rule, `normalise`.
        self.network.is_ipv4() == ip.is_ipv4()
            && Cidr::normalise(ip, self.prefix) == Cidr::normalise(self.network, self.prefix)
    }

    /// The longest prefix for `ip`'s family: 32 or 128.
    fn max_prefix(ip: IpAddr) -> u8 {
        if ip.is_ipv4() { 32 } else { 128 }
    }

    /// `ip` with every bit past `prefix` cleared.
    fn normalise(ip: IpAddr, prefix: u8) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    /// `ip` or `ip/prefix`; host bits set under the prefix are refused, since `10.1.2.3/8`
    /// usually means a typo.
    fn from_str(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{addr}` is not an IP address"))?;
        let max = Cidr::max_prefix(network);
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`/{p}` is not a prefix length from 0 to {max}"))?,
        };
        let cidr = Cidr { network, prefix };
        let normal = Cidr::normalise(network, prefix);
        if normal != network {
            return Err(format!(
                "`{text}` has host bits set under its /{prefix}; write `{normal}/{prefix}`"
            ));
        }
        Ok(cidr)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix == Cidr::max_prefix(self.network) {
            write!(f, "{}", self.network)
        } else {
            write!(f, "{}/{}", self.network, self.prefix)
        }
    }
}

/// `[ssh]`
#[derive(Debug, Clone, PartialEq)]
pub struct SshConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Host key files; empty means one ed25519 key generated once into `state_dir`.
    pub host_keys: Vec<PathBuf>,
    /// The image of sessions whose login name names none and that get no menu (a command,
    /// scp, sftp, or a shell without a terminal); `None` asks the user to name one.
    pub default_image: Option<String>,
    /// Environment variables a client may pass into `exec` sessions: names, or prefixes
    /// ending in `*` (`LC_*`).
    pub env: Vec<String>,
    /// How long a connection has from connecting to logging in.
    pub login_grace: Duration,
}

/// `[admin]`
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// A file holding the bearer token every admin request but `/healthz` must carry;
    /// `None`: no token (allowed only on a loopback address).
    pub token_file: Option<PathBuf>,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// How log lines are written to stderr.
    pub format: LogFormat,
    /// The audit log (JSON lines, appended); `None` when turned off with `audit = ""`.
    pub audit: Option<PathBuf>,
}

/// `[log] format`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Lines for people (the default).
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// The word in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        }
    }
}

/// `[docker]`
#[derive(Debug, Clone, PartialEq)]
pub struct DockerConfig {
    /// Engine address (`unix:///…`, `tcp://…`); `None` means `DOCKER_HOST` or the local socket.
    pub host: Option<String>,
    /// Network that launched containers join.
    pub network: String,
}

/// `[scheduler]` (an extension of SPEC §3: every key optional).
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    /// Container launches in flight at once, across all images; more wait in a queue.
    pub launch_parallelism: usize,
    /// Attempts to create and start a container before giving up (Orca: 5).
    pub launch_attempts: u32,
    /// Pause between attempts (Orca: 500 ms).
    pub launch_retry_delay: Duration,
    /// How long a new container may take to become ready.
    pub ready_timeout: Duration,
    /// Containers managed at once, across all images; beyond it users get 503.
    pub max_containers: usize,
    /// After a restart, how long a user restored without an open session keeps their
    /// container when the image does not persist users between reconnects.
    pub restart_grace: Duration,
}

/// One `[[resolver]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolverConfig {
    /// Name used in logs and metrics; unique.
    pub name: String,
    /// Where the component comes from.
    pub plugin: PluginSource,
    /// Handed to the plugin's `init` as key/values.
    pub config: BTreeMap<String, String>,
    /// The only addresses (`host:port`) the plugin may open sockets to.
    pub connect: Vec<String>,
    /// Read-only directory the plugin may read.
    pub files: Option<PathBuf>,
    /// Deadline per call.
    pub timeout: Duration,
    /// Memory cap per instance, in MiB.
    pub memory_mb: u32,
    /// Calls one instance answers before it is replaced by a fresh one (1: a fresh instance
    /// per call).
    pub reuse: u32,
    /// Instances of this resolver alive at once; further calls wait within their deadline.
    pub concurrency: u32,
    /// Longest time an answer may be reused when the plugin allows caching (`0s`: never).
    pub cache_max: Duration,
}

impl ResolverConfig {
    /// A resolver with no settings, no grants, and the default limits (what a `[[resolver]]`
    /// with only `name` and `plugin` means).
    pub fn new(name: &str, plugin: PluginSource) -> Self {
        ResolverConfig {
            name: name.to_string(),
            plugin,
            config: BTreeMap::new(),
            connect: Vec::new(),
            files: None,
            timeout: DEFAULT_RESOLVER_TIMEOUT,
            memory_mb: DEFAULT_RESOLVER_MEMORY_MB,
            reuse: DEFAULT_RESOLVER_REUSE,
            concurrency: DEFAULT_RESOLVER_CONCURRENCY,
            cache_max: DEFAULT_RESOLVER_CACHE_MAX,
        }
    }
}

/// Where a resolver's component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// A `.wasm` file.
    Path(PathBuf),
    /// A resolver bundled with Orca (`bundled:cookie`, `bundled:ssh-key`, `bundled:ldap`).
    Bundled(String),
}

impl Config {
    /// The embedded defaults of SPEC §2 (what `orca serve` runs on with no file).
    pub fn embedded() -> Self {
        defaults::embedded()
    }

    /// Reads and validates a TOML file; every error is reported, not just the first.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        file::load(path)
    }

    /// Parses TOML text; relative paths are resolved against `base_dir`.
    pub fn parse(
        text: &str,
        base_dir: &Path,
        source: Option<PathBuf>,
    ) -> Result<Self, ConfigErrors> {
        file::parse(text, base_dir, source)
    }

    /// The effective configuration as TOML, every key spelled out (for `orca check-config`).
    pub fn to_toml(&self) -> String {
        render::render(self)
    }
}
