//! The TOML mirror of the configuration and its one conversion into a validated [`Config`].

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::defaults::{self, DEFAULT_RESOLVER_MEMORY_MB, DEFAULT_RESOLVER_TIMEOUT};
use super::{
    AdminConfig, Config, DockerConfig, HttpConfig, HttpsConfig, PluginSource, ResolverConfig,
    SchedulerConfig, SshConfig, TlsFiles,
};
use crate::units::{format_duration, parse_duration};

/// Resolvers bundled with Orca, usable as `plugin = "bundled:<name>"`.
const BUNDLED: &[&str] = &["cookie", "ssh-key", "ldap"];

/// One configuration error: which key, its value, and what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key (`https.listen`, `resolver[1].timeout`) or a position for syntax errors.
    pub key: String,
    /// The offending value as written.
    pub value: String,
    /// Why it is wrong and what would be accepted.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}: {}", self.key, self.reason)
        } else {
            write!(f, "key `{}` = `{}`: {}", self.key, self.value, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every error of one configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The file, when there is one.
    pub source: Option<PathBuf>,
    /// The errors, in file order.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self
            .source
            .as_ref()
            .map_or_else(|| "configuration".to_string(), |p| p.display().to_string());
        let n = self.errors.len();
        writeln!(f, "{name}: {n} error{}", if n == 1 { "" } else { "s" })?;
        for e in &self.errors {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    domain: Option<String>,
    state_dir: Option<String>,
    instance: Option<String>,
    https: Option<FileHttps>,
    http: Option<FileHttp>,
    ssh: Option<FileSsh>,
    admin: Option<FileAdmin>,
    docker: Option<FileDocker>,
    scheduler: Option<FileScheduler>,
    #[serde(default)]
    resolver: Option<Vec<FileResolver>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHttps {
    listen: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHttp {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSsh {
    listen: Option<String>,
    host_keys: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAdmin {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDocker {
    host: Option<String>,
    network: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileScheduler {
    launch_parallelism: Option<i64>,
    launch_attempts: Option<i64>,
    launch_retry_delay: Option<String>,
    ready_timeout: Option<String>,
    max_containers: Option<i64>,
    restart_grace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileResolver {
    name: Option<String>,
    plugin: Option<String>,
    config: Option<toml::Table>,
    connect: Option<Vec<String>>,
    files: Option<String>,
    timeout: Option<String>,
    memory_mb: Option<i64>,
}

/// Reads and validates a file.
pub(super) fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        source: Some(path.to_path_buf()),
        errors: vec![ConfigError {
            key: "file".to_string(),
            value: path.display().to_string(),
            reason: format!("cannot be read: {e}"),
        }],
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base, Some(path.to_path_buf()))
}

/// Parses and validates TOML text.
pub(super) fn parse(
    text: &str,
    base_dir: &Path,
    source: Option<PathBuf>,
) -> Result<Config, ConfigErrors> {
    let file: FileConfig = toml::from_str(text).map_err(|e| ConfigErrors {
        source: source.clone(),
        errors: vec![syntax_error(text, &e)],
    })?;
    let mut v = Validator {
        base: base_dir.to_path_buf(),
        errors: Vec::new(),
    };
    let config = v.config(file, source.clone());
    if v.errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors {
            source,
            errors: v.errors,
        })
    }
}

fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let position = e.span().map(|span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        format!("line {line}, column {col}")
    });
    let message = e.message().trim().to_string();
    let reason = if message.starts_with("unknown field") {
        format!("{message}; remove the key or fix its spelling")
    } else {
        message
    };
    ConfigError {
        key: position.unwrap_or_else(|| "file".to_string()),
        value: String::new(),
        reason,
    }
}

struct Validator {
    base: PathBuf,
    errors: Vec<ConfigError>,
}

impl Validator {
    fn err(&mut self, key: &str, value: &str, reason: impl Into<String>) {
        self.errors.push(ConfigError {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        });
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() || self.base.as_os_str().is_empty() || self.base == Path::new(".") {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn addr(&mut self, key: &str, value: Option<String>, default: SocketAddr) -> SocketAddr {
        let Some(v) = value else { return default };
        match v.parse() {
            Ok(a) => a,
            Err(_) => {
                self.err(
                    key,
                    &v,
                    "not a socket address: use ip:port such as `127.0.0.1:8443` or `[::1]:8443`",
                );
                default
            }
        }
    }

    fn duration(&mut self, key: &str, value: Option<String>, default: Duration) -> Duration {
        let Some(v) = value else { return default };
        match parse_duration(&v) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.err(key, &v, "must be longer than zero");
                default
            }
            Err(e) => {
                self.err(key, &v, e.to_string());
                default
            }
        }
    }

    fn count<T: TryFrom<i64> + Copy>(
        &mut self,
        key: &str,
        value: Option<i64>,
        default: T,
        max: i64,
    ) -> T {
        let Some(n) = value else { return default };
        match T::try_from(n) {
            Ok(t) if (1..=max).contains(&n) => t,
            _ => {
                self.err(
                    key,
                    &n.to_string(),
                    format!("must be a whole number from 1 to {max}"),
                );
                default
            }
        }
    }

    fn config(&mut self, f: FileConfig, source: Option<PathBuf>) -> Config {
        let d = defaults::embedded();
        let domain = match f.domain {
            Some(dom) => {
                if !is_domain(&dom) {
                    self.err("domain", &dom, "must be a lowercase DNS name such as `orca.example.org`, without scheme or port");
                }
                dom
            }
            None => d.domain,
        };
        let instance = match f.instance {
            Some(i) => {
                if !is_instance(&i) {
                    self.err("instance", &i, "must be 1-63 characters of lowercase letters, digits, `_`, `.`, `-`, starting with a letter or digit");
                }
                i
            }
            None => d.instance,
        };
        let state_dir = self.path(
            f.state_dir
                .as_deref()
                .unwrap_or(defaults::DEFAULT_STATE_DIR),
        );
        let https_file = f.https.unwrap_or_default();
        let tls = match (https_file.cert, https_file.key) {
            (Some(c), Some(k)) => Some(TlsFiles {
                cert: self.path(&c),
                key: self.path(&k),
            }),
            (None, None) => None,
            (Some(c), None) => {
                self.err("https.cert", &c, "is set without `https.key`: give both, or neither for a self-signed certificate");
                None
            }
            (None, Some(k)) => {
                self.err("https.key", &k, "is set without `https.cert`: give both, or neither for a self-signed certificate");
                None
            }
        };
        let https = HttpsConfig {
            listen: self.addr("https.listen", https_file.listen, d.https.listen),
            tls,
        };
        let http = f.http.map(|h| HttpConfig {
            listen: self.addr(
                "http.listen",
                h.listen,
                SocketAddr::from(([127, 0, 0, 1], 8080)),
            ),
        });
        let ssh_file = f.ssh.unwrap_or_default();
        let ssh = SshConfig {
            listen: self.addr("ssh.listen", ssh_file.listen, d.ssh.listen),
            host_keys: ssh_file
                .host_keys
                .unwrap_or_default()
                .iter()
                .map(|p| self.path(p))
                .collect(),
        };
        let admin = AdminConfig {
            listen: self.addr(
                "admin.listen",
                f.admin.unwrap_or_default().listen,
                d.admin.listen,
            ),
        };
        let docker_file = f.docker.unwrap_or_default();
        if let Some(h) = &docker_file.host
            && !["unix://", "tcp://", "http://", "https://"]
                .iter()
                .any(|p| h.starts_with(p))
        {
            self.err(
                "docker.host",
                h,
                "use `unix:///path/to/docker.sock`, `tcp://host:port`, `http://…` or `https://…`",
            );
        }
        let network = docker_file.network.unwrap_or(d.docker.network);
        if network.trim().is_empty() {
            self.err(
                "docker.network",
                &network,
                "must name a Docker network such as `bridge`",
            );
        }
        let docker = DockerConfig {
            host: docker_file.host,
            network,
        };
        let s = f.scheduler.unwrap_or_default();
        let ds = defaults::scheduler();
        let scheduler = SchedulerConfig {
            launch_parallelism: self.count(
                "scheduler.launch_parallelism",
                s.launch_parallelism,
                ds.launch_parallelism,
                1024,
            ),
            launch_attempts: self.count(
                "scheduler.launch_attempts",
                s.launch_attempts,
                ds.launch_attempts,
                100,
            ),
            launch_retry_delay: self.duration(
                "scheduler.launch_retry_delay",
                s.launch_retry_delay,
                ds.launch_retry_delay,
            ),
            ready_timeout: self.duration(
                "scheduler.ready_timeout",
                s.ready_timeout,
                ds.ready_timeout,
            ),
            max_containers: self.count(
                "scheduler.max_containers",
                s.max_containers,
                ds.max_containers,
                100_000,
            ),
            restart_grace: self.duration(
                "scheduler.restart_grace",
                s.restart_grace,
                ds.restart_grace,
            ),
        };
        let resolvers = match f.resolver {
            Some(list) => list
                .into_iter()
                .enumerate()
                .map(|(i, r)| self.resolver(i, r))
                .collect(),
            None => {
                // The embedded resolvers keep their keys under the configured state directory.
                let mut rs = d.resolvers;
                for r in &mut rs {
                    if r.files.is_some() {
                        r.files = Some(state_dir.join("keys"));
                    }
                }
                rs
            }
        };
        let mut seen = std::collections::BTreeSet::new();
        for (i, r) in resolvers.iter().enumerate() {
            if !seen.insert(r.name.clone()) {
                self.err(
                    &format!("resolver[{i}].name"),
                    &r.name,
                    "is used by an earlier resolver: names must be unique",
                );
            }
        }
        Config {
            domain,
            state_dir,
            instance,
            https,
            http,
            ssh,
            admin,
            docker,
            scheduler,
            resolvers,
            source,
        }
    }

    fn resolver(&mut self, i: usize, r: FileResolver) -> ResolverConfig {
        let key = |k: &str| format!("resolver[{i}].{k}");
        let name = r.name.unwrap_or_default();
        if name.trim().is_empty() {
            self.err(
                &key("name"),
                &name,
                "required: a short unique name used in logs and metrics",
            );
        }
        let plugin = match r.plugin {
            Some(p) => match p.strip_prefix("bundled:") {
                Some(b) if BUNDLED.contains(&b) => PluginSource::Bundled(b.to_string()),
                Some(_) => {
                    self.err(
                        &key("plugin"),
                        &p,
                        format!(
                            "unknown bundled resolver: use one of `bundled:{}`",
                            BUNDLED.join("`, `bundled:")
                        ),
                    );
                    PluginSource::Bundled(String::new())
                }
                None if p.ends_with(".wasm") => PluginSource::Path(self.path(&p)),
                None => {
                    self.err(
                        &key("plugin"),
                        &p,
                        "use a path to a `.wasm` component or `bundled:<name>`",
                    );
                    PluginSource::Path(PathBuf::from(p))
                }
            },
            None => {
                self.err(&key("plugin"), "", "required: a path to a `.wasm` component or `bundled:cookie`, `bundled:ssh-key`, `bundled:ldap`");
                PluginSource::Bundled(String::new())
            }
        };
        let mut config = BTreeMap::new();
        for (k, v) in r.config.unwrap_or_default() {
            let text = match &v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(x) => x.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    self.err(
                        &format!("resolver[{i}].config.{k}"),
                        &other.to_string(),
                        "plugin settings must be strings, numbers or booleans",
                    );
                    continue;
                }
            };
            config.insert(k, text);
        }
        let connect = r.connect.unwrap_or_default();
        for c in &connect {
            let ok = c
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                self.err(
                    &key("connect"),
                    c,
                    "each entry is `host:port`, such as `127.0.0.1:389` or `ldap.example.org:636`",
                );
            }
        }
        let memory_mb = match r.memory_mb {
            None => DEFAULT_RESOLVER_MEMORY_MB,
            Some(m) if (1..=4096).contains(&m) => m as u32,
            Some(m) => {
                self.err(
                    &key("memory_mb"),
                    &m.to_string(),
                    "must be from 1 to 4096 (MiB)",
                );
                DEFAULT_RESOLVER_MEMORY_MB
            }
        };
        ResolverConfig {
            name,
            plugin,
            config,
            connect,
            files: r.files.map(|p| self.path(&p)),
            timeout: self.duration(&key("timeout"), r.timeout, DEFAULT_RESOLVER_TIMEOUT),
            memory_mb,
        }
    }
}

fn is_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn is_instance(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_.-".contains(c))
}

fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn qp(p: &Path) -> String {
    q(&p.display().to_string())
}

/// The effective configuration as TOML with every key spelled out.
pub(super) fn render(c: &Config) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "domain = {}", q(&c.domain));
    let _ = writeln!(o, "state_dir = {}", qp(&c.state_dir));
    let _ = writeln!(o, "instance = {}", q(&c.instance));
    let _ = writeln!(o, "\n[https]\nlisten = {}", q(&c.https.listen.to_string()));
    match &c.https.tls {
        Some(t) => {
            let _ = writeln!(o, "cert = {}\nkey = {}", qp(&t.cert), qp(&t.key));
        }
        None => o.push_str(
            "# cert and key unset: a self-signed certificate is generated into state_dir\n",
        ),
    }
    match &c.http {
        Some(h) => {
            let _ = writeln!(o, "\n[http]\nlisten = {}", q(&h.listen.to_string()));
        }
        None => o.push_str("\n# [http] unset: no plain listener\n"),
    }
    let keys: Vec<String> = c.ssh.host_keys.iter().map(|p| qp(p)).collect();
    let _ = writeln!(
        o,
        "\n[ssh]\nlisten = {}\nhost_keys = [{}]",
        q(&c.ssh.listen.to_string()),
        keys.join(", ")
    );
    let _ = writeln!(o, "\n[admin]\nlisten = {}", q(&c.admin.listen.to_string()));
    o.push_str("\n[docker]\n");
    match &c.docker.host {
        Some(h) => {
            let _ = writeln!(o, "host = {}", q(h));
        }
        None => o.push_str("# host unset: DOCKER_HOST or the local socket\n"),
    }
    let _ = writeln!(o, "network = {}", q(&c.docker.network));
    let s = &c.scheduler;
    let _ = writeln!(
        o,
        "\n[scheduler]\nlaunch_parallelism = {}\nlaunch_attempts = {}\nlaunch_retry_delay = {}\nready_timeout = {}\nmax_containers = {}\nrestart_grace = {}",
        s.launch_parallelism,
        s.launch_attempts,
        q(&format_duration(s.launch_retry_delay)),
        q(&format_duration(s.ready_timeout)),
        s.max_containers,
        q(&format_duration(s.restart_grace)),
    );
    for r in &c.resolvers {
        let plugin = match &r.plugin {
            PluginSource::Bundled(b) => format!("bundled:{b}"),
            PluginSource::Path(p) => p.display().to_string(),
        };
        let _ = writeln!(
            o,
            "\n[[resolver]]\nname = {}\nplugin = {}",
            q(&r.name),
            q(&plugin)
        );
        let cfg: Vec<String> = r
            .config
            .iter()
            .map(|(k, v)| format!("{} = {}", q(k), q(v)))
            .collect();
        let _ = writeln!(o, "config = {{ {} }}", cfg.join(", "));
        let connect: Vec<String> = r.connect.iter().map(|c| q(c)).collect();
        let _ = writeln!(o, "connect = [{}]", connect.join(", "));
        if let Some(f) = &r.files {
            let _ = writeln!(o, "files = {}", qp(f));
        }
        let _ = writeln!(
            o,
            "timeout = {}\nmemory_mb = {}",
            q(&format_duration(r.timeout)),
            r.memory_mb
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FULL: &str = r#"
domain = "orca.example.org"
state_dir = "state"
instance = "edge-1"

[https]
listen = "0.0.0.0:443"
cert = "tls.crt"
key  = "tls.key"

[http]
listen = "0.0.0.0:80"

[ssh]
listen = "0.0.0.0:22"
host_keys = ["ssh_host_ed25519_key"]

[admin]
listen = "127.0.0.1:9090"

[docker]
host = "unix:///var/run/docker.sock"
network = "orca"

[scheduler]
launch_parallelism = 8
launch_attempts = 3
launch_retry_delay = "250ms"
ready_timeout = "2m"
max_containers = 500
restart_grace = "5m"

[[resolver]]
name = "sessions"
plugin = "plugins/cookie.wasm"
config = { cookie = "orca_session", ttl = "12h", anonymous = true, max = 3 }
connect = ["127.0.0.1:389"]
files = "/etc/orca/keys"
timeout = "2s"
memory_mb = 32
"#;

    fn parse_at(text: &str) -> Result<Config, ConfigErrors> {
        parse(
            text,
            Path::new("/etc/orca"),
            Some(PathBuf::from("/etc/orca/orca.toml")),
        )
    }

    fn keys(text: &str) -> Vec<String> {
        parse_at(text)
            .unwrap_err()
            .errors
            .into_iter()
            .map(|e| e.key)
            .collect()
    }

    #[test]
    fn embedded_defaults_match_spec_section_2() {
        let c = Config::embedded();
        assert_eq!(c.domain, "localhost");
        assert_eq!(c.https.listen.to_string(), "127.0.0.1:8443");
        assert_eq!(c.ssh.listen.to_string(), "127.0.0.1:2222");
        assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9090");
        assert_eq!(c.state_dir, PathBuf::from(".orca"));
        assert_eq!(c.docker.host, None);
        assert!(c.https.tls.is_none() && c.http.is_none());
        assert_eq!(
            c.resolvers[0].plugin,
            PluginSource::Bundled("cookie".into())
        );
        assert_eq!(
            c.resolvers[0].config.get("anonymous").map(String::as_str),
            Some("true")
        );
        assert_eq!(
            c.resolvers[1].plugin,
            PluginSource::Bundled("ssh-key".into())
        );
        assert_eq!(c.resolvers[1].files, Some(PathBuf::from(".orca/keys")));
        assert_eq!(parse("", Path::new("."), None).unwrap(), c);
        let in_srv = parse("", Path::new("/srv"), None).unwrap();
        assert_eq!(
            in_srv.state_dir,
            PathBuf::from("/srv/.orca"),
            "relative to the file's directory"
        );
        assert_eq!(
            in_srv.resolvers[1].files,
            Some(PathBuf::from("/srv/.orca/keys"))
        );
    }

    #[test]
    fn the_full_example_parses_with_paths_resolved() {
        let c = parse_at(FULL).unwrap();
        assert_eq!(c.domain, "orca.example.org");
        assert_eq!(c.instance, "edge-1");
        assert_eq!(c.state_dir, PathBuf::from("/etc/orca/state"));
        let tls = c.https.tls.clone().unwrap();
        assert_eq!(tls.cert, PathBuf::from("/etc/orca/tls.crt"));
        assert_eq!(c.http.as_ref().unwrap().listen.port(), 80);
        assert_eq!(
            c.ssh.host_keys,
            vec![PathBuf::from("/etc/orca/ssh_host_ed25519_key")]
        );
        assert_eq!(c.docker.network, "orca");
        assert_eq!(c.scheduler.launch_retry_delay, Duration::from_millis(250));
        assert_eq!(c.scheduler.ready_timeout, Duration::from_secs(120));
        let r = &c.resolvers[0];
        assert_eq!(
            r.plugin,
            PluginSource::Path(PathBuf::from("/etc/orca/plugins/cookie.wasm"))
        );
        assert_eq!(r.config.get("anonymous").map(String::as_str), Some("true"));
        assert_eq!(r.config.get("max").map(String::as_str), Some("3"));
        assert_eq!(r.files, Some(PathBuf::from("/etc/orca/keys")));
        assert_eq!(r.memory_mb, 32);
    }

    #[test]
    fn render_round_trips() {
        for c in [parse_at(FULL).unwrap(), Config::embedded()] {
            let text = render(&c);
            let again = parse(&text, Path::new("."), c.source.clone()).unwrap();
            assert_eq!(again, c, "{text}");
        }
    }

    #[test]
    fn every_bad_value_is_reported_with_key_and_value() {
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
restart_grace = "0s"
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
        let errs = parse_at(text).unwrap_err();
        let ks: Vec<&str> = errs.errors.iter().map(|e| e.key.as_str()).collect();
        for k in [
            "domain",
            "instance",
            "https.listen",
            "https.cert",
            "docker.host",
            "docker.network",
            "scheduler.launch_parallelism",
            "scheduler.ready_timeout",
            "scheduler.restart_grace",
            "resolver[0].plugin",
            "resolver[0].config.nested",
            "resolver[0].connect",
            "resolver[0].memory_mb",
            "resolver[0].timeout",
            "resolver[1].plugin",
            "resolver[1].name",
        ] {
            assert!(ks.contains(&k), "{k} missing from {ks:?}");
        }
        let shown = errs.to_string();
        assert!(
            shown.starts_with("/etc/orca/orca.toml: 16 errors"),
            "{shown}"
        );
        assert!(
            shown.contains("key `https.listen` = `nowhere`: not a socket address"),
            "{shown}"
        );
        assert!(
            shown.contains("key `scheduler.ready_timeout` = `soon`"),
            "{shown}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_position() {
        let errs =
            parse_at("[https]\nlisten = \"127.0.0.1:1\"\ncertificate = \"x\"\n").unwrap_err();
        let e = &errs.errors[0];
        assert!(e.key.starts_with("line 3"), "{e}");
        assert!(
            e.reason.contains("certificate") && e.reason.contains("cert"),
            "{e}"
        );
        assert_eq!(keys("colour = 1\n")[0], "line 1, column 1");
    }

    #[test]
    fn missing_file_is_one_clear_error() {
        let e = load(Path::new("/nonexistent/orca.toml")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/orca.toml"), "{e}");
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_any_text(text in ".{0,200}") {
            let _ = parse(&text, Path::new("/"), None);
        }

        #[test]
        fn parse_never_panics_on_any_value(key in prop::sample::select(vec![
            "domain", "state_dir", "instance",
        ]), section in prop::sample::select(vec![
            "https\nlisten", "ssh\nlisten", "scheduler\nready_timeout", "scheduler\nrestart_grace",
            "docker\nhost", "docker\nnetwork", "admin\nlisten",
        ]), value in ".{0,30}", number in any::<i64>()) {
            let v = q(&value);
            let _ = parse(&format!("{key} = {v}\n"), Path::new("/"), None);
            let (table, k) = section.split_once('\n').unwrap();
            let _ = parse(&format!("[{table}]\n{k} = {v}\n"), Path::new("/"), None);
            let _ = parse(&format!("[scheduler]\nmax_containers = {number}\n"), Path::new("/"), None);
            let _ = parse(&format!("[[resolver]]\nname = {v}\nplugin = {v}\nmemory_mb = {number}\nconnect = [{v}]\n"), Path::new("/"), None);
        }
    }
}
