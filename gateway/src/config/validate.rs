//! The one conversion from the TOML mirror into a typed [`Config`], collecting every error.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::defaults::{
    self, DEFAULT_RESOLVER_CACHE_MAX, DEFAULT_RESOLVER_CONCURRENCY, DEFAULT_RESOLVER_MEMORY_MB,
    DEFAULT_RESOLVER_REUSE, DEFAULT_RESOLVER_TIMEOUT,
};
use super::file::{
    FileAdmin, FileConfig, FileDocker, FileHttp, FileHttps, FileLog, FileResolver, FileScheduler,
    FileSsh,
};
use super::{
    AdminConfig, Cidr, Config, ConfigError, DockerConfig, HttpConfig, HttpMode, HttpsConfig,
    LogConfig, LogFormat, PluginSource, ResolverConfig, SchedulerConfig, SshConfig, TlsFiles,
};
use crate::units::parse_duration;

/// Resolvers bundled with Orca, usable as `plugin = "bundled:<name>"`.
pub(super) const BUNDLED_RESOLVERS: &[&str] = &["cookie", "ssh-key", "ldap"];
/// Schemes `docker.host` may use, as the Docker CLI reads `DOCKER_HOST`.
const DOCKER_SCHEMES: &[&str] = &["unix://", "tcp://", "http://", "https://"];
/// Largest `memory_mb`: a resolver answers identity questions, it needs no more.
const MAX_RESOLVER_MEMORY_MB: i64 = 4096;
/// Largest `reuse` of a resolver instance.
const MAX_RESOLVER_REUSE: i64 = 1_000_000;
/// Largest `concurrency` of a resolver: the engine's instance pool is shared by all.
const MAX_RESOLVER_CONCURRENCY: i64 = 128;
/// Longest duration accepted anywhere: longer is a typo, and risks overflow in timer arithmetic.
const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);
/// Largest `launch_parallelism`.
const MAX_LAUNCH_PARALLELISM: i64 = 1024;
/// Largest `launch_attempts`.
const MAX_LAUNCH_ATTEMPTS: i64 = 100;
/// Largest `max_containers`.
const MAX_CONTAINERS: i64 = 100_000;
/// `[https] workers`: threads beyond the cores only add switching; 1024 is far past any host.
const MAX_WORKERS: i64 = 1024;

/// Turns what the file says into a [`Config`]: defaults for absent keys, relative paths
/// resolved against `base_dir`, and every bad value reported.
pub(super) fn config(
    file: FileConfig,
    base_dir: &Path,
    source: Option<PathBuf>,
) -> Result<Config, Vec<ConfigError>> {
    let mut check = Check {
        base: base_dir,
        errors: Vec::new(),
    };
    let config = check.config(file, source);
    if check.errors.is_empty() {
        Ok(config)
    } else {
        Err(check.errors)
    }
}

struct Check<'a> {
    base: &'a Path,
    errors: Vec<ConfigError>,
}

impl Check<'_> {
    fn error(&mut self, key: &str, value: &str, reason: impl Into<String>) {
        self.errors.push(ConfigError {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        });
    }

    fn config(&mut self, f: FileConfig, source: Option<PathBuf>) -> Config {
        let domain = f.domain.map_or_else(
            || defaults::DEFAULT_DOMAIN.to_string(),
            |d| {
                if let Some(reason) = domain_problem(&d) {
                    self.error("domain", &d, reason);
                }
                d
            },
        );
        let instance = f.instance.map_or_else(
            || defaults::DEFAULT_INSTANCE.to_string(),
            |i| {
                if !is_instance(&i) {
                    self.error(
                        "instance",
                        &i,
                        "must be 1 to 63 lowercase letters, digits, `_`, `.` or `-`, starting \
                         with a letter or digit, such as `orca` or `edge-1`",
                    );
                }
                i
            },
        );
        let state_dir = match f.state_dir {
            Some(p) => self.path("state_dir", p),
            None => self.resolve(defaults::DEFAULT_STATE_DIR),
        };
        let https = self.https(f.https.unwrap_or_default());
        let http = f.http.map(|h| self.http(h));
        let ssh = self.ssh(f.ssh.unwrap_or_default());
        let admin = self.admin(f.admin.unwrap_or_default());
        let log = self.log(f.log.unwrap_or_default(), &state_dir);
        let shutdown_grace = self.duration(
            "shutdown_grace",
            f.shutdown_grace,
            defaults::DEFAULT_SHUTDOWN_GRACE,
        );
        let docker = self.docker(f.docker.unwrap_or_default());
        let scheduler = self.scheduler(f.scheduler.unwrap_or_default());
        let resolvers = match f.resolver {
            Some(list) => self.resolvers(list),
            None => defaults::resolvers(&state_dir),
        };
        let config = Config {
            domain,
            state_dir,
            instance,
            shutdown_grace,
            https,
            http,
            ssh,
            admin,
            docker,
            scheduler,
            log,
            resolvers,
            source,
        };
        self.distinct_listeners(&config);
        config
    }

    fn https(&mut self, h: FileHttps) -> HttpsConfig {
        let pair = "give both `cert` and `key`, or neither for a self-signed certificate";
        let tls = match (h.cert, h.key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: self.path("https.cert", cert),
                key: self.path("https.key", key),
            }),
            (None, None) => None,
            (Some(cert), None) => {
                self.error(
                    "https.cert",
                    &cert,
                    format!("is set without `https.key`: {pair}"),
                );
                None
            }
            (None, Some(key)) => {
                self.error(
                    "https.key",
                    &key,
                    format!("is set without `https.cert`: {pair}"),
                );
                None
            }
        };
        let login_url = h.login_url.filter(|url| self.login_url(url));
        // `duration` refuses zero itself.
        let response_timeout = self.duration(
            "https.response_timeout",
            h.response_timeout,
            defaults::DEFAULT_RESPONSE_TIMEOUT,
        );
        let workers = h
            .workers
            .map(|n| self.count("https.workers", Some(n), 1, MAX_WORKERS));
        HttpsConfig {
            listen: self.listen("https.listen", h.listen, defaults::DEFAULT_HTTPS_LISTEN),
            tls,
            login_url,
            response_timeout,
            workers,
        }
    }

    /// An absolute http(s) URL a browser can be sent to, with at most one `{url}`.
    fn login_url(&mut self, url: &str) -> bool {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        let fix = "use an absolute URL such as `https://sso.example.org/login?next={url}`; \
                   `{url}` becomes the address the user asked for";
        let problem = match rest {
            None => Some("is not an absolute `https://` or `http://` URL"),
            Some(r) if r.is_empty() || r.starts_with('/') => Some("has no host"),
            Some(_)
                if url
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) =>
            {
                Some("contains spaces or control characters")
            }
            Some(_) if url.matches("{url}").count() > 1 => Some("has `{url}` more than once"),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            self.error("https.login_url", url, format!("{problem}: {fix}"));
        }
        problem.is_none()
    }

    fn http(&mut self, h: FileHttp) -> HttpConfig {
        let mode = match h.mode.as_deref() {
            None | Some("redirect") => HttpMode::Redirect,
            Some("serve") => HttpMode::Serve,
            Some(other) => {
                self.error(
                    "http.mode",
                    other,
                    "must be `redirect` (send browsers to https) or `serve` (serve like https, \
                     behind a load balancer that ends TLS)",
                );
                HttpMode::Redirect
            }
        };
        let mut trusted = Vec::new();
        for (i, text) in h.trusted_proxies.iter().flatten().enumerate() {
            match text.parse::<Cidr>() {
                Ok(c) => trusted.push(c),
                Err(why) => self.error(
                    &format!("http.trusted_proxies[{i}]"),
                    text,
                    format!("{why}: use an address or block such as `10.0.0.5` or `10.0.0.0/8`"),
                ),
            }
        }
        if mode == HttpMode::Redirect && !trusted.is_empty() {
            self.error(
                "http.trusted_proxies",
                &trusted
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                "only applies with `mode = \"serve\"`: a redirecting listener forwards \
                 nothing; set the mode or remove the list",
            );
        }
        HttpConfig {
            listen: self.listen("http.listen", h.listen, defaults::DEFAULT_HTTP_LISTEN),
            mode,
            trusted_proxies: trusted,
        }
    }

    fn ssh(&mut self, s: FileSsh) -> SshConfig {
        let host_keys = s.host_keys.unwrap_or_default();
        let default_image = s.default_image.filter(|name| {
            let ok = is_image_name(name);
            if !ok {
                self.error(
                    "ssh.default_image",
                    name,
                    "not an image name: use the name of an image as `orca images` lists it \
                     (lower-case letters, digits and `-`)",
                );
            }
            ok
        });
        let env = match s.env {
            None => defaults::DEFAULT_SSH_ENV
                .iter()
                .map(ToString::to_string)
                .collect(),
            Some(list) => list
                .into_iter()
                .enumerate()
                .filter(|(i, pattern)| {
                    let problem = env_pattern_problem(pattern);
                    if let Some(problem) = problem {
                        self.error(&format!("ssh.env[{i}]"), pattern, problem);
                    }
                    problem.is_none()
                })
                .map(|(_, pattern)| pattern)
                .collect(),
        };
        SshConfig {
            listen: self.listen("ssh.listen", s.listen, defaults::DEFAULT_SSH_LISTEN),
            host_keys: host_keys
                .into_iter()
                .enumerate()
                .map(|(i, p)| self.path(&format!("ssh.host_keys[{i}]"), p))
                .collect(),
            default_image,
            env,
            login_grace: self.duration(
                "ssh.login_grace",
                s.login_grace,
                defaults::DEFAULT_SSH_LOGIN_GRACE,
            ),
        }
    }

    fn admin(&mut self, a: FileAdmin) -> AdminConfig {
        let listen = self.listen("admin.listen", a.listen, defaults::DEFAULT_ADMIN_LISTEN);
        let token_file = a.token_file.map(|p| self.path("admin.token_file", p));
        // The API ends sessions and stops containers: open to the network, it must ask who.
        if token_file.is_none() && !listen.ip().is_loopback() {
            self.error(
                "admin.listen",
                &listen.to_string(),
                "is not a loopback address and `[admin] token_file` is unset: anyone who \
                 reaches it could end sessions and stop containers; set `token_file` or \
                 listen on 127.0.0.1",
            );
        }
        AdminConfig { listen, token_file }
    }

    fn log(&mut self, l: FileLog, state_dir: &Path) -> LogConfig {
        let format = match l.format.as_deref() {
            None | Some("human") => LogFormat::Human,
            Some("json") => LogFormat::Json,
            Some(other) => {
                self.error(
                    "log.format",
                    other,
                    "must be `human` (lines for people) or `json` (one object per line)",
                );
                LogFormat::Human
            }
        };
        let audit = match l.audit {
            None => Some(state_dir.join(defaults::DEFAULT_AUDIT_FILE)),
            Some(p) if p.is_empty() => None,
            Some(p) => Some(self.path("log.audit", p)),
        };
        LogConfig { format, audit }
    }

    fn docker(&mut self, d: FileDocker) -> DockerConfig {
        if let Some(host) = &d.host {
            let ok = DOCKER_SCHEMES
                .iter()
                .any(|s| host.strip_prefix(s).is_some_and(|rest| !rest.is_empty()));
            if !ok {
                self.error(
                    "docker.host",
                    host,
                    "must be an engine address: `unix:///var/run/docker.sock`, \
                     `tcp://host:2375`, `http://host:2375` or `https://host:2376`; \
                     leave it out to use `DOCKER_HOST` or the local socket",
                );
            }
        }
        let network = d
            .network
            .unwrap_or_else(|| defaults::DEFAULT_NETWORK.to_string());
        if network.trim().is_empty() {
            self.error(
                "docker.network",
                &network,
                "must not be empty: name the Docker network launched containers join, such \
                 as `bridge`",
            );
        }
        DockerConfig {
            host: d.host,
            network,
        }
    }

    fn scheduler(&mut self, s: FileScheduler) -> SchedulerConfig {
        let d = defaults::scheduler();
        SchedulerConfig {
            launch_parallelism: self.count(
                "scheduler.launch_parallelism",
                s.launch_parallelism,
                d.launch_parallelism,
                MAX_LAUNCH_PARALLELISM,
            ),
            launch_attempts: self.count(
                "scheduler.launch_attempts",
                s.launch_attempts,
                d.launch_attempts,
                MAX_LAUNCH_ATTEMPTS,
            ),
            launch_retry_delay: self.duration(
                "scheduler.launch_retry_delay",
                s.launch_retry_delay,
                d.launch_retry_delay,
            ),
            ready_timeout: self.duration(
                "scheduler.ready_timeout",
                s.ready_timeout,
                d.ready_timeout,
            ),
            max_containers: self.count(
                "scheduler.max_containers",
                s.max_containers,
                d.max_containers,
                MAX_CONTAINERS,
            ),
            restart_grace: self.duration(
                "scheduler.restart_grace",
                s.restart_grace,
                d.restart_grace,
            ),
        }
    }

    fn resolvers(&mut self, list: Vec<FileResolver>) -> Vec<ResolverConfig> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::with_capacity(list.len());
        for (i, r) in list.into_iter().enumerate() {
            let r = self.resolver(i, r);
            if !r.name.trim().is_empty() && !seen.insert(r.name.clone()) {
                self.error(
                    &format!("resolver[{i}].name"),
                    &r.name,
                    "is already the name of an earlier resolver: give each `[[resolver]]` its \
                     own name",
                );
            }
            out.push(r);
        }
        out
    }

    fn resolver(&mut self, i: usize, r: FileResolver) -> ResolverConfig {
        let key = |k: &str| format!("resolver[{i}].{k}");
        let name = match r.name {
            Some(name) if name.trim().is_empty() => {
                self.error(
                    &key("name"),
                    &name,
                    "must not be empty: give a short name used in logs and metrics, such as \
                     `sessions`",
                );
                name
            }
            Some(name) => name,
            None => {
                self.error(
                    &key("name"),
                    "",
                    "is missing: every `[[resolver]]` needs a name used in logs and metrics, \
                     such as `name = \"sessions\"`",
                );
                String::new()
            }
        };
        let plugin = self.plugin(&key("plugin"), r.plugin);
        let mut config = BTreeMap::new();
        for (k, v) in r.config.unwrap_or_default() {
            let text = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Datetime(d) => d.to_string(),
                v @ toml::Value::Float(_) => v.to_string(),
                v @ (toml::Value::Array(_) | toml::Value::Table(_)) => {
                    self.error(
                        &format!("resolver[{i}].config.{k}"),
                        &v.to_string(),
                        "plugin settings are strings, numbers or booleans: write this one as a \
                         single string the plugin understands",
                    );
                    continue;
                }
            };
            config.insert(k, text);
        }
        let connect = r.connect.unwrap_or_default();
        for (n, c) in connect.iter().enumerate() {
            if !is_host_port(c) {
                self.error(
                    &key(&format!("connect[{n}]")),
                    c,
                    "each entry is `host:port` with a port from 1 to 65535, such as \
                     `127.0.0.1:389`, `[::1]:389` or `ldap.example.org:636`",
                );
            }
        }
        let memory_mb = match r.memory_mb {
            None => DEFAULT_RESOLVER_MEMORY_MB,
            Some(m) => match u32::try_from(m) {
                Ok(mb) if (1..=MAX_RESOLVER_MEMORY_MB).contains(&m) => mb,
                _ => {
                    self.error(
                        &key("memory_mb"),
                        &m.to_string(),
                        format!(
                            "must be a whole number of MiB from 1 to {MAX_RESOLVER_MEMORY_MB}, \
                             such as `{DEFAULT_RESOLVER_MEMORY_MB}`"
                        ),
                    );
                    DEFAULT_RESOLVER_MEMORY_MB
                }
            },
        };
        ResolverConfig {
            name,
            plugin,
            config,
            connect,
            files: r.files.map(|p| self.path(&key("files"), p)),
            timeout: self.duration(&key("timeout"), r.timeout, DEFAULT_RESOLVER_TIMEOUT),
            memory_mb,
            reuse: self.count(
                &key("reuse"),
                r.reuse,
                DEFAULT_RESOLVER_REUSE,
                MAX_RESOLVER_REUSE,
            ),
            concurrency: self.count(
                &key("concurrency"),
                r.concurrency,
                DEFAULT_RESOLVER_CONCURRENCY,
                MAX_RESOLVER_CONCURRENCY,
            ),
            cache_max: self.duration(&key("cache_max"), r.cache_max, DEFAULT_RESOLVER_CACHE_MAX),
        }
    }

    fn plugin(&mut self, key: &str, plugin: Option<String>) -> PluginSource {
        let bundled = BUNDLED_RESOLVERS
            .iter()
            .map(|b| format!("`bundled:{b}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let Some(p) = plugin else {
            self.error(
                key,
                "",
                format!("is missing: set it to a path to a `.wasm` component or one of {bundled}"),
            );
            return PluginSource::Bundled(String::new());
        };
        if let Some(name) = p.strip_prefix("bundled:") {
            if BUNDLED_RESOLVERS.contains(&name) {
                return PluginSource::Bundled(name.to_string());
            }
            self.error(
                key,
                &p,
                format!("no such bundled resolver: use one of {bundled}"),
            );
            PluginSource::Bundled(name.to_string())
        } else if p.len() > ".wasm".len() && p.ends_with(".wasm") {
            PluginSource::Path(self.resolve(&p))
        } else {
            let reason = if BUNDLED_RESOLVERS.contains(&p.as_str()) {
                format!("a bundled resolver is written `bundled:{p}`")
            } else {
                format!("use a path to a `.wasm` component or one of {bundled}")
            };
            self.error(key, &p, reason);
            PluginSource::Path(PathBuf::from(p))
        }
    }

    /// A path from the file: not empty, and relative to the file's directory.
    fn path(&mut self, key: &str, value: String) -> PathBuf {
        if value.trim().is_empty() {
            self.error(
                key,
                &value,
                "must not be empty: give a path, absolute or relative to the config file's \
                 directory",
            );
            return PathBuf::from(value);
        }
        self.resolve(&value)
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        // A file in the working directory has the base "" (or "."): keep its paths as written.
        if p.is_absolute() || self.base.as_os_str().is_empty() || self.base == Path::new(".") {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn listen(&mut self, key: &str, value: Option<String>, default: SocketAddr) -> SocketAddr {
        let Some(v) = value else { return default };
        v.parse().unwrap_or_else(|_| {
            self.error(
                key,
                &v,
                "not a socket address: use `ip:port` such as `127.0.0.1:8443`, `0.0.0.0:443` \
                 or `[::]:443` (a host name is not accepted)",
            );
            default
        })
    }

    /// A duration, kept to the millisecond so that the rendered file reads back the same.
    fn duration(&mut self, key: &str, value: Option<String>, default: Duration) -> Duration {
        let Some(v) = value else { return default };
        // Rounded to the nearest millisecond, but never from above zero down to zero.
        let millis = parse_duration(&v).ok().and_then(|d| {
            let nanos = d.as_nanos();
            u64::try_from((nanos + 500_000) / 1_000_000)
                .ok()
                .map(|ms| if nanos > 0 { ms.max(1) } else { ms })
        });
        let Some(millis) = millis else {
            self.error(
                key,
                &v,
                "not a duration: use a number with a unit such as `500ms`, `30s`, `15m` or \
                 `1h30m`",
            );
            return default;
        };
        let d = Duration::from_millis(millis);
        if d.is_zero() {
            self.error(
                key,
                &v,
                "must be longer than zero, such as `500ms` or `30s`",
            );
            default
        } else if d > MAX_DURATION {
            self.error(key, &v, "must be at most 365 days");
            default
        } else {
            d
        }
    }

    fn count<T: TryFrom<i64>>(&mut self, key: &str, value: Option<i64>, default: T, max: i64) -> T {
        let Some(n) = value else { return default };
        match T::try_from(n) {
            Ok(t) if (1..=max).contains(&n) => t,
            _ => {
                self.error(
                    key,
                    &n.to_string(),
                    format!("must be a whole number from 1 to {max}"),
                );
                default
            }
        }
    }

    /// Two listeners on one address cannot both bind; blame the one the file set.
    fn distinct_listeners(&mut self, c: &Config) {
        let mut listeners = vec![("https.listen", c.https.listen)];
        listeners.extend(c.http.as_ref().map(|h| ("http.listen", h.listen)));
        listeners.push(("ssh.listen", c.ssh.listen));
        listeners.push(("admin.listen", c.admin.listen));
        for (i, (key, addr)) in listeners.iter().enumerate() {
            let earlier = listeners[..i]
                .iter()
                .find(|(_, other)| same_socket(*addr, *other));
            if let Some((other_key, _)) = earlier {
                self.error(
                    key,
                    &addr.to_string(),
                    format!(
                        "is also the address of `{other_key}`: give each listener its own port"
                    ),
                );
            }
        }
    }
}

fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Why `domain` is not a bare lowercase DNS name, if it is not.
fn domain_problem(d: &str) -> Option<&'static str> {
    if d.contains("://") {
        Some("remove the scheme: give the bare name such as `orca.example.org`")
    } else if d.contains(':') {
        Some("remove the port: ports are set by `https.listen`")
    } else if d.parse::<IpAddr>().is_ok() {
        Some("an IP address has no subdomains: give a DNS name, or `localhost` for local use")
    } else if d.bytes().any(|b| b.is_ascii_uppercase()) {
        Some("must be lowercase, such as `orca.example.org`")
    } else if !is_dns_name(d) {
        Some(
            "must be a DNS name such as `orca.example.org`: labels of letters, digits and `-`, \
             joined by dots",
        )
    } else {
        None
    }
}

fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// `[a-z0-9][a-z0-9_.-]{0,62}`
fn is_instance(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() <= 63
        && b.first()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_.-".contains(c))
}

/// `host:port` where host is an IP (IPv6 in brackets) or a host name.
fn is_host_port(s: &str) -> bool {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return addr.port() != 0;
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    port.parse::<u16>().is_ok_and(|p| p != 0)
        && !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

/// Whether `name` can be an image's name: what `orca.name` accepts, a lower-case DNS label.
fn is_image_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Why an `ssh.env` entry is not a variable name or a `PREFIX*` pattern, if it is not.
fn env_pattern_problem(pattern: &str) -> Option<&'static str> {
    let name = pattern.strip_suffix('*').unwrap_or(pattern);
    if name.is_empty() {
        return Some(
            "would let clients set any variable, `PATH` and `LD_PRELOAD` included: list the \
             names (`LANG`) or prefixes (`LC_*`) to accept",
        );
    }
    let valid = name
        .bytes()
        .enumerate()
        .all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()));
    (!valid).then_some(
        "not a variable name: use letters, digits and `_` (not first), optionally ending in `*` \
         for a prefix such as `LC_*`",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_at(text: &str) -> Result<Config, super::super::ConfigErrors> {
        super::super::file::parse(text, Path::new("/etc/orca"), None)
    }

    /// The single error of `text`, as (key, value).
    fn only_error(text: &str) -> ConfigError {
        let errs = parse_at(text).unwrap_err().errors;
        assert_eq!(errs.len(), 1, "{errs:#?}");
        errs.into_iter().next().unwrap()
    }

    const RESOLVER: &str = "[[resolver]]\nname = \"r\"\nplugin = \"bundled:ldap\"\n";

    /// (file, key, value, part of the reason): each file has exactly this one error.
    #[rustfmt::skip]
    const BAD_VALUES: &[(&str, &str, &str, &str)] = &[
        ("domain = \"https://orca.example\"", "domain", "https://orca.example", "remove the scheme"),
        ("domain = \"orca.example:8443\"", "domain", "orca.example:8443", "remove the port"),
        ("domain = \"Orca.example\"", "domain", "Orca.example", "lowercase"),
        ("domain = \"orca..example\"", "domain", "orca..example", "DNS name"),
        ("domain = \"10.0.0.1\"", "domain", "10.0.0.1", "IP address"),
        ("instance = \"Edge 1\"", "instance", "Edge 1", "1 to 63"),
        ("instance = \"-edge\"", "instance", "-edge", "starting with"),
        ("state_dir = \"\"", "state_dir", "", "must not be empty"),
        ("[https]\nlisten = \"localhost:8443\"", "https.listen", "localhost:8443", "not a socket address"),
        ("[https]\ncert = \"tls.crt\"", "https.cert", "tls.crt", "without `https.key`"),
        ("[https]\nkey = \"tls.key\"", "https.key", "tls.key", "without `https.cert`"),
        ("[http]\nlisten = \"80\"", "http.listen", "80", "not a socket address"),
        ("[http]\nmode = \"proxy\"", "http.mode", "proxy", "`redirect` (send browsers to https) or `serve`"),
        ("[http]\nmode = \"serve\"\ntrusted_proxies = [\"10.1.2.3/8\"]", "http.trusted_proxies[0]", "10.1.2.3/8", "write `10.0.0.0/8`"),
        ("[http]\nmode = \"serve\"\ntrusted_proxies = [\"lb.internal\"]", "http.trusted_proxies[0]", "lb.internal", "such as `10.0.0.5` or `10.0.0.0/8`"),
        ("[http]\ntrusted_proxies = [\"10.0.0.1\"]", "http.trusted_proxies", "10.0.0.1", "only applies with `mode = \"serve\"`"),
        ("[https]\nresponse_timeout = \"0s\"", "https.response_timeout", "0s", "longer than zero"),
        ("[https]\nworkers = 0", "https.workers", "0", "from 1 to 1024"),
        ("[https]\nworkers = \"auto\"", "https.workers", "auto", "a whole number"),
        ("[https]\nresponse_timeout = \"soon\"", "https.response_timeout", "soon", "not a duration"),
        ("[https]\nlogin_url = \"/login\"", "https.login_url", "/login", "not an absolute"),
        ("[https]\nlogin_url = \"https:///login\"", "https.login_url", "https:///login", "has no host"),
        ("[https]\nlogin_url = \"https://sso/a b\"", "https.login_url", "https://sso/a b", "spaces"),
        ("[https]\nlogin_url = \"https://sso/?a={url}&b={url}\"", "https.login_url", "https://sso/?a={url}&b={url}", "more than once"),
        ("[ssh]\nlisten = \"127.0.0.1\"", "ssh.listen", "127.0.0.1", "not a socket address"),
        ("[ssh]\nhost_keys = [\"\"]", "ssh.host_keys[0]", "", "must not be empty"),
        ("[ssh]\ndefault_image = \"Shell\"", "ssh.default_image", "Shell", "not an image name"),
        ("[ssh]\nenv = [\"LANG\", \"*\"]", "ssh.env[1]", "*", "LD_PRELOAD"),
        ("[ssh]\nenv = [\"LC-ALL\"]", "ssh.env[0]", "LC-ALL", "not a variable name"),
        ("[ssh]\nlogin_grace = \"soon\"", "ssh.login_grace", "soon", "not a duration"),
        ("[admin]\nlisten = \"127.0.0.1:99999\"", "admin.listen", "127.0.0.1:99999", "not a socket address"),
        ("[docker]\nhost = \"/var/run/docker.sock\"", "docker.host", "/var/run/docker.sock", "unix:///var/run/docker.sock"),
        ("[docker]\nhost = \"tcp://\"", "docker.host", "tcp://", "engine address"),
        ("[docker]\nnetwork = \" \"", "docker.network", " ", "must not be empty"),
        ("[scheduler]\nlaunch_parallelism = 0", "scheduler.launch_parallelism", "0", "from 1 to 1024"),
        ("[scheduler]\nlaunch_attempts = -1", "scheduler.launch_attempts", "-1", "from 1 to 100"),
        ("[scheduler]\nmax_containers = 0", "scheduler.max_containers", "0", "from 1 to"),
        ("[scheduler]\nlaunch_retry_delay = \"soon\"", "scheduler.launch_retry_delay", "soon", "not a duration"),
        ("[scheduler]\nready_timeout = \"0s\"", "scheduler.ready_timeout", "0s", "longer than zero"),
        ("[scheduler]\nrestart_grace = \"400d\"", "scheduler.restart_grace", "400d", "at most 365 days"),
        ("[[resolver]]\nplugin = \"bundled:ldap\"", "resolver[0].name", "", "is missing"),
        ("[[resolver]]\nname = \"\"\nplugin = \"bundled:ldap\"", "resolver[0].name", "", "must not be empty"),
        ("[[resolver]]\nname = \"r\"", "resolver[0].plugin", "", "is missing"),
        ("[[resolver]]\nname = \"r\"\nplugin = \"bundled:kerberos\"", "resolver[0].plugin", "bundled:kerberos", "`bundled:cookie`, `bundled:ssh-key`, `bundled:ldap`"),
        ("[[resolver]]\nname = \"r\"\nplugin = \"cookie\"", "resolver[0].plugin", "cookie", "written `bundled:cookie`"),
        ("[[resolver]]\nname = \"r\"\nplugin = \"plugins/auth.so\"", "resolver[0].plugin", "plugins/auth.so", "`.wasm`"),
    ];

    /// (line added to a valid resolver, key, value or "" to skip, part of the reason).
    #[rustfmt::skip]
    const BAD_RESOLVER_VALUES: &[(&str, &str, &str, &str)] = &[
        ("config = { groups = [\"a\"] }", "resolver[0].config.groups", "[\"a\"]", "strings, numbers or booleans"),
        ("config = { tls = { verify = true } }", "resolver[0].config.tls", "", "strings, numbers or booleans"),
        ("connect = [\"ldap.example.org\"]", "resolver[0].connect[0]", "ldap.example.org", "`host:port`"),
        ("connect = [\"::1:389\"]", "resolver[0].connect[0]", "::1:389", "`[::1]:389`"),
        ("connect = [\"ldap:0\"]", "resolver[0].connect[0]", "ldap:0", "from 1 to 65535"),
        ("memory_mb = 0", "resolver[0].memory_mb", "0", "from 1 to 4096"),
        ("memory_mb = 4097", "resolver[0].memory_mb", "4097", "from 1 to 4096"),
        ("timeout = \"fast\"", "resolver[0].timeout", "fast", "not a duration"),
        ("files = \"\"", "resolver[0].files", "", "must not be empty"),
    ];

    #[test]
    fn each_bad_value_is_reported_with_its_key_and_value() {
        for (text, key, value, reason) in BAD_VALUES {
            let e = only_error(text);
            assert_eq!((e.key.as_str(), e.value.as_str()), (*key, *value), "{text}");
            assert!(e.reason.contains(reason), "{text}: {e}");
            assert!(e.reason.contains("(line "), "{text}: {e}");
        }
        for (line, key, value, reason) in BAD_RESOLVER_VALUES {
            let text = format!("{RESOLVER}{line}\n");
            let e = only_error(&text);
            assert_eq!(e.key, *key, "{text}");
            if !value.is_empty() {
                assert_eq!(e.value, *value, "{text}");
            }
            assert!(e.reason.contains(reason), "{text}: {e}");
        }
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let text = r#"
domain = "https://Orca.example"
instance = "Bad Name"
[https]
listen = "nowhere"
cert = "only.crt"
[docker]
host = "docker.sock"
network = ""
[scheduler]
launch_parallelism = 0
ready_timeout = "soon"
[[resolver]]
name = "a"
plugin = "bundled:nope"
config = { nested = { x = 1 } }
connect = ["nohost"]
memory_mb = 0
timeout = "x"
[[resolver]]
name = "a"
plugin = "thing.so"
"#;
        let errs = parse_at(text).unwrap_err().errors;
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "domain",
                "instance",
                "https.listen",
                "https.cert",
                "docker.host",
                "docker.network",
                "scheduler.launch_parallelism",
                "scheduler.ready_timeout",
                "resolver[0].plugin",
                "resolver[0].config.nested",
                "resolver[0].connect[0]",
                "resolver[0].memory_mb",
                "resolver[0].timeout",
                "resolver[1].name",
                "resolver[1].plugin",
            ]
        );
        let lines: Vec<String> = errs
            .iter()
            .map(|e| e.reason.rsplit('(').next().unwrap_or_default().to_string())
            .collect();
        assert_eq!(lines[0], "line 2)");
        assert_eq!(lines[14], "line 22)");
    }

    #[test]
    fn listeners_must_not_share_an_address() {
        let e = only_error("[admin]\nlisten = \"0.0.0.0:8443\"\ntoken_file = \"t\"\n");
        assert_eq!(
            (e.key.as_str(), e.value.as_str()),
            ("admin.listen", "0.0.0.0:8443")
        );
        assert!(e.reason.contains("`https.listen`"), "{e}");
        let e = only_error("[https]\nlisten = \"127.0.0.1:2222\"\n");
        assert_eq!(e.key, "ssh.listen", "the default it collides with is named");
        assert!(
            parse_at("[https]\nlisten = \"127.0.0.1:0\"\n[ssh]\nlisten = \"127.0.0.1:0\"\n")
                .is_ok(),
            "port 0 picks a free port"
        );
        assert!(parse_at("[http]\nlisten = \"127.0.0.2:8443\"\n").is_ok());
    }

    #[test]
    fn an_admin_listener_beyond_loopback_needs_a_token() {
        let e = only_error("[admin]\nlisten = \"0.0.0.0:9090\"\n");
        assert_eq!(
            (e.key.as_str(), e.value.as_str()),
            ("admin.listen", "0.0.0.0:9090")
        );
        assert!(e.reason.contains("set `token_file`"), "{e}");
        let c =
            parse_at("[admin]\nlisten = \"0.0.0.0:9090\"\ntoken_file = \"admin.token\"\n").unwrap();
        assert_eq!(
            c.admin.token_file,
            Some(PathBuf::from("/etc/orca/admin.token"))
        );
        assert!(parse_at("[admin]\nlisten = \"[::1]:9090\"\n").is_ok());
    }

    #[test]
    fn log_format_and_audit_file() {
        let c = parse_at("state_dir = \"/var/lib/orca\"\n").unwrap();
        assert_eq!(c.log.audit, Some(PathBuf::from("/var/lib/orca/audit.log")));
        let c = parse_at("[log]\nformat = \"json\"\naudit = \"\"\n").unwrap();
        assert_eq!((c.log.format, c.log.audit), (LogFormat::Json, None));
        let e = only_error("[log]\nformat = \"xml\"\n");
        assert_eq!((e.key.as_str(), e.value.as_str()), ("log.format", "xml"));
    }

    #[test]
    fn relative_paths_resolve_against_the_file_directory() {
        let c = parse_at(
            "state_dir = \"var\"\n[https]\ncert = \"tls/crt.pem\"\nkey = \"/keys/tls.key\"\n\
             [ssh]\nhost_keys = [\"k1\", \"../k2\"]\n\
             [[resolver]]\nname = \"w\"\nplugin = \"plugins/x.wasm\"\nfiles = \"keys\"\n\
             [[resolver]]\nname = \"b\"\nplugin = \"bundled:ssh-key\"\nfiles = \"/srv/keys\"\n",
        )
        .unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/etc/orca/var"));
        let tls = c.https.tls.unwrap();
        assert_eq!(tls.cert, PathBuf::from("/etc/orca/tls/crt.pem"));
        assert_eq!(tls.key, PathBuf::from("/keys/tls.key"));
        assert_eq!(
            c.ssh.host_keys,
            [
                PathBuf::from("/etc/orca/k1"),
                PathBuf::from("/etc/orca/../k2")
            ]
        );
        assert_eq!(
            c.resolvers[0].plugin,
            PluginSource::Path("/etc/orca/plugins/x.wasm".into())
        );
        assert_eq!(c.resolvers[0].files, Some(PathBuf::from("/etc/orca/keys")));
        assert_eq!(c.resolvers[1].files, Some(PathBuf::from("/srv/keys")));

        let here = super::super::file::parse("state_dir = \"s\"\n", Path::new(""), None).unwrap();
        assert_eq!(
            here.state_dir,
            PathBuf::from("s"),
            "a file in the working directory"
        );
        assert_eq!(
            here.resolvers[1].files,
            Some(PathBuf::from("s/keys")),
            "embedded keys follow state_dir"
        );
    }

    #[test]
    fn partial_tables_keep_the_other_defaults() {
        let c =
            parse_at("[scheduler]\nmax_containers = 7\n[https]\nlisten = \"[::]:443\"\n[http]\n")
                .unwrap();
        assert_eq!(c.scheduler.max_containers, 7);
        assert_eq!(
            c.scheduler.launch_attempts,
            defaults::DEFAULT_LAUNCH_ATTEMPTS
        );
        assert_eq!(c.https.listen.to_string(), "[::]:443");
        assert_eq!(
            c.http.as_ref().map(|h| h.listen),
            Some(defaults::DEFAULT_HTTP_LISTEN)
        );
        assert_eq!(c.ssh.listen, defaults::DEFAULT_SSH_LISTEN);
        assert_eq!(
            c.http.as_ref().map(|h| (h.mode, h.trusted_proxies.len())),
            Some((HttpMode::Redirect, 0)),
            "a bare [http] redirects and trusts nobody"
        );
        let lb = parse_at(
            "[https]\nlogin_url = \"https://sso.example/login?next={url}\"\n\
             [http]\nmode = \"serve\"\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n",
        )
        .unwrap();
        let http = lb.http.unwrap();
        assert_eq!(http.mode, HttpMode::Serve);
        assert_eq!(
            http.trusted_proxies
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["10.0.0.0/8", "::1"]
        );
        assert_eq!(
            lb.https.login_url.as_deref(),
            Some("https://sso.example/login?next={url}")
        );
        let none = parse_at("resolver = []\n").unwrap();
        assert!(
            none.resolvers.is_empty(),
            "an explicit empty list means no resolvers"
        );
    }

    #[test]
    fn plugin_settings_are_stringified_and_durations_kept_to_the_millisecond() {
        let c = parse_at(&format!(
            "{RESOLVER}config = {{ s = \"x\", n = -3, f = 1.5, b = false, d = 1979-05-27 }}\ntimeout = \"1.2345s\"\n"
        ))
        .unwrap();
        let cfg: Vec<(&str, &str)> = c.resolvers[0]
            .config
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            cfg,
            [
                ("b", "false"),
                ("d", "1979-05-27"),
                ("f", "1.5"),
                ("n", "-3"),
                ("s", "x")
            ]
        );
        assert_eq!(c.resolvers[0].timeout, Duration::from_millis(1235));
        let bare = parse_at(&format!("{RESOLVER}timeout = \"2\"\n")).unwrap();
        assert_eq!(
            bare.resolvers[0].timeout,
            Duration::from_secs(2),
            "a bare number is seconds"
        );
        let tiny = parse_at(&format!("{RESOLVER}timeout = \"0.1ms\"\n")).unwrap();
        assert_eq!(
            tiny.resolvers[0].timeout,
            Duration::from_millis(1),
            "never rounded to zero"
        );
    }
}
