//! The TOML mirror of the configuration (SPEC §3), and reading it.
//!
//! Reading goes in three passes so that one run reports every mistake in the file:
//! 1. TOML syntax: `toml`'s recoverable parser reports each syntax error with its position;
//! 2. structure (`structure.rs`): serde fills [`FileConfig`], whose tables all
//!    `deny_unknown_fields`; every unknown key and wrong type is reported, not just the first;
//! 3. values (`validate.rs`): one conversion turns what fitted into a [`Config`].
//!
//! Errors are then sorted into file order.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::DeTable;

use super::structure::{self, KeyLines, lowercase_first};
use super::{Config, validate};

/// One configuration error: which key, its value, and what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key such as `https.listen` or `resolver[1].timeout`; empty for errors that
    /// belong to no key (TOML syntax, an unreadable file).
    pub key: String,
    /// The offending value as written (a string without its quotes); empty when missing.
    pub value: String,
    /// Why it is wrong and what would be accepted, lowercase; ends with `(line N)` when the
    /// key is in the file.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = shown(&self.value);
        match (self.key.is_empty(), self.value.is_empty()) {
            (false, false) => write!(f, "key `{}` = `{value}`: {}", self.key, self.reason),
            (false, true) => write!(f, "key `{}`: {}", self.key, self.reason),
            (true, false) => write!(f, "`{value}`: {}", self.reason),
            (true, true) => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every error of one configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The file, when there is one.
    pub source: Option<PathBuf>,
    /// The errors in file order; errors about no line of the file come last.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(path) => write!(f, "{}", path.display())?,
            None => f.write_str("configuration")?,
        }
        let n = self.errors.len();
        write!(f, ": {n} error{}", if n == 1 { "" } else { "s" })?;
        for e in &self.errors {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The whole file. Every key is optional; absent keys take the defaults of `defaults.rs`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) domain: Option<String>,
    pub(super) state_dir: Option<String>,
    pub(super) instance: Option<String>,
    pub(super) shutdown_grace: Option<String>,
    pub(super) https: Option<FileHttps>,
    pub(super) http: Option<FileHttp>,
    pub(super) ssh: Option<FileSsh>,
    pub(super) admin: Option<FileAdmin>,
    pub(super) docker: Option<FileDocker>,
    pub(super) scheduler: Option<FileScheduler>,
    pub(super) log: Option<FileLog>,
    pub(super) resolver: Option<Vec<FileResolver>>,
}

/// `[https]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileHttps {
    pub(super) listen: Option<String>,
    pub(super) cert: Option<String>,
    pub(super) key: Option<String>,
    pub(super) login_url: Option<String>,
    pub(super) response_timeout: Option<String>,
    pub(super) workers: Option<i64>,
}

/// `[http]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileHttp {
    pub(super) listen: Option<String>,
    pub(super) mode: Option<String>,
    pub(super) trusted_proxies: Option<Vec<String>>,
}

/// `[ssh]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSsh {
    pub(super) listen: Option<String>,
    pub(super) host_keys: Option<Vec<String>>,
    pub(super) default_image: Option<String>,
    pub(super) env: Option<Vec<String>>,
    pub(super) login_grace: Option<String>,
}

/// `[admin]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAdmin {
    pub(super) listen: Option<String>,
    pub(super) token_file: Option<String>,
}

/// `[log]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLog {
    pub(super) format: Option<String>,
    pub(super) audit: Option<String>,
}

/// `[docker]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileDocker {
    pub(super) host: Option<String>,
    pub(super) network: Option<String>,
}

/// `[scheduler]`; durations are strings such as `"500ms"`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileScheduler {
    pub(super) launch_parallelism: Option<i64>,
    pub(super) launch_attempts: Option<i64>,
    pub(super) launch_retry_delay: Option<String>,
    pub(super) ready_timeout: Option<String>,
    pub(super) max_containers: Option<i64>,
    pub(super) restart_grace: Option<String>,
}

/// One `[[resolver]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileResolver {
    pub(super) name: Option<String>,
    pub(super) plugin: Option<String>,
    pub(super) config: Option<toml::Table>,
    pub(super) connect: Option<Vec<String>>,
    pub(super) files: Option<String>,
    pub(super) timeout: Option<String>,
    pub(super) memory_mb: Option<i64>,
    pub(super) reuse: Option<i64>,
    pub(super) concurrency: Option<i64>,
    pub(super) cache_max: Option<String>,
}

/// Reads and validates a file; relative paths in it are relative to its directory.
pub(super) fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        source: Some(path.to_path_buf()),
        errors: vec![ConfigError {
            key: String::new(),
            value: path.display().to_string(),
            reason: format!(
                "cannot be read: {}; check the path and its permissions",
                lowercase_first(&e.to_string())
            ),
        }],
    })?;
    let base = path.parent().unwrap_or(Path::new(""));
    parse(&text, base, Some(path.to_path_buf()))
}

/// Parses and validates TOML text; relative paths are resolved against `base_dir`.
pub(super) fn parse(
    text: &str,
    base_dir: &Path,
    source: Option<PathBuf>,
) -> Result<Config, ConfigErrors> {
    let fail = |errors| ConfigErrors {
        source: source.clone(),
        errors,
    };
    let (root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        return Err(fail(
            syntax
                .iter()
                .map(|e| structure::syntax_error(text, e))
                .collect(),
        ));
    }
    let lines = KeyLines::of(text, root.get_ref());
    let (file, mut errors) = structure::deserialize(text, root);
    if let Some(file) = file {
        match validate::config(file, base_dir, source.clone()) {
            Ok(config) if errors.is_empty() => return Ok(config),
            Ok(_) => {}
            Err(more) => errors.extend(more.into_iter().map(|e| lines.annotate(e))),
        }
    }
    errors.sort_by_key(|(line, _)| line.unwrap_or(usize::MAX));
    Err(fail(errors.into_iter().map(|(_, e)| e).collect()))
}

/// A value as printed in an error: control characters escaped, long values cut.
fn shown(value: &str) -> String {
    const MAX: usize = 80;
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::config::PluginSource;

    /// SPEC §3, verbatim.
    const SPEC_EXAMPLE: &str = r#"
domain = "localhost"            # images are served at <image>.<domain>
state_dir = ".orca"             # signing keys, SSH host key, generated certificate, persisted bindings

[https]
listen = "127.0.0.1:8443"
cert = "tls.crt"                # PEM chain; with `key`. Absent: self-signed for *.<domain>
key  = "tls.key"                # reloaded on SIGHUP without dropping connections

[http]                          # optional plain listener: redirects to https
listen = "127.0.0.1:8080"

[ssh]
listen = "127.0.0.1:2222"
host_keys = ["ssh_host_ed25519_key"]   # absent: generated once into state_dir and kept
default_image = "shell"         # for `ssh host cmd`, scp, sftp when the login names no image
env = ["LANG", "LC_*", "TZ"]    # variables a client may pass into exec sessions
login_grace = "60s"             # time from connecting to logging in

[admin]
listen = "127.0.0.1:9090"       # /metrics, /healthz, /api/v1/...

[docker]
host = "unix:///var/run/docker.sock"
network = "bridge"              # network that launched containers join; Orca reaches them on it

[[resolver]]                    # tried in order for each protocol they export
name = "sessions"
plugin = "plugins/cookie.wasm"  # a path, or a bundled name such as "bundled:cookie"
config = { cookie = "orca_session", ttl = "12h" }   # handed to the plugin's init as key/values
connect = ["127.0.0.1:389"]     # the only addresses the plugin may open sockets to
files = "/etc/orca/keys"        # optional read-only directory the plugin may read
timeout = "2s"                  # per call; memory_mb = 64 likewise
"#;

    fn parse_at(text: &str) -> Result<Config, ConfigErrors> {
        parse(
            text,
            Path::new("/etc/orca"),
            Some(PathBuf::from("/etc/orca/orca.toml")),
        )
    }

    fn errors(text: &str) -> Vec<ConfigError> {
        match parse_at(text) {
            Ok(c) => panic!("expected errors, got {c:?}"),
            Err(e) => e.errors,
        }
    }

    #[test]
    fn the_spec_example_parses() {
        let c = parse_at(SPEC_EXAMPLE).unwrap();
        assert_eq!(c.source, Some(PathBuf::from("/etc/orca/orca.toml")));
        assert_eq!(c.domain, "localhost");
        assert_eq!(c.state_dir, PathBuf::from("/etc/orca/.orca"));
        let tls = c.https.tls.as_ref().unwrap();
        assert_eq!(tls.cert, PathBuf::from("/etc/orca/tls.crt"));
        assert_eq!(tls.key, PathBuf::from("/etc/orca/tls.key"));
        assert_eq!(
            c.http.as_ref().unwrap().listen.to_string(),
            "127.0.0.1:8080"
        );
        assert_eq!(
            c.ssh.host_keys,
            [PathBuf::from("/etc/orca/ssh_host_ed25519_key")]
        );
        assert_eq!(
            c.docker.host.as_deref(),
            Some("unix:///var/run/docker.sock")
        );
        let [r] = c.resolvers.as_slice() else {
            panic!("one resolver expected: {:?}", c.resolvers);
        };
        assert_eq!(r.name, "sessions");
        assert_eq!(
            r.plugin,
            PluginSource::Path("/etc/orca/plugins/cookie.wasm".into())
        );
        assert_eq!(r.config.len(), 2);
        assert_eq!(r.config["ttl"], "12h");
        assert_eq!(r.connect, ["127.0.0.1:389"]);
        assert_eq!(r.files, Some(PathBuf::from("/etc/orca/keys")));
        assert_eq!(r.timeout, Duration::from_secs(2));
        assert_eq!(r.memory_mb, 64);
    }

    #[test]
    fn an_empty_file_is_the_embedded_configuration() {
        assert_eq!(parse("", Path::new(""), None).unwrap(), Config::embedded());
    }

    #[test]
    fn structure_and_value_errors_are_reported_together() {
        let errs = errors(
            "domain = \"Orca.example\"\ncolour = \"blue\"\n[ssh]\nlisten = 22\nport = 22\n[admin]\nlisten = \"nowhere\"\n",
        );
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            ["domain", "colour", "ssh.listen", "ssh.port", "admin.listen"],
            "file order"
        );
        let shown = ConfigErrors {
            source: Some("/etc/orca/orca.toml".into()),
            errors: errs,
        }
        .to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines[0], "/etc/orca/orca.toml: 5 errors");
        assert_eq!(lines.len(), 6, "{shown}");
        assert!(
            lines[1].starts_with("  - key `domain` = `Orca.example`: "),
            "{shown}"
        );
        assert!(lines[5].ends_with("(line 7)"), "{shown}");
    }

    #[test]
    fn an_unreadable_file_is_one_error_naming_it() {
        let e = load(Path::new("/nonexistent/orca.toml")).unwrap_err();
        assert_eq!(e.errors.len(), 1);
        let shown = e.to_string();
        assert!(
            shown.starts_with("/nonexistent/orca.toml: 1 error\n"),
            "{shown}"
        );
        assert!(
            shown.contains("`/nonexistent/orca.toml`: cannot be read: no such file"),
            "{shown}"
        );
    }

    #[test]
    fn a_file_resolves_paths_against_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orca.toml");
        std::fs::write(
            &path,
            "state_dir = \"state\"\n[ssh]\nhost_keys = [\"/abs/key\", \"rel/key\"]\n",
        )
        .unwrap();
        let c = load(&path).unwrap();
        assert_eq!(c.state_dir, dir.path().join("state"));
        assert_eq!(
            c.ssh.host_keys,
            [PathBuf::from("/abs/key"), dir.path().join("rel/key")]
        );
        assert_eq!(c.resolvers[1].files, Some(dir.path().join("state/keys")));
        assert_eq!(c.source, Some(path));
    }

    #[test]
    fn values_are_shown_escaped_and_cut() {
        let e = ConfigError {
            key: "domain".into(),
            value: format!("a\nb{}", "x".repeat(100)),
            reason: "bad".into(),
        };
        let shown = e.to_string();
        assert!(shown.starts_with("key `domain` = `a\\nbxxx"), "{shown}");
        assert!(shown.ends_with("x…`: bad"), "{shown}");
    }

    /// Any TOML value, as text.
    fn toml_value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            ".{0,20}".prop_map(|s| toml::Value::String(s).to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|x| toml::Value::Float(x).to_string()),
            any::<bool>().prop_map(|b| b.to_string()),
            Just("1979-05-27T07:32:00Z".to_string()),
            Just("\"bundled:cookie\"".to_string()),
            Just("\"127.0.0.1:389\"".to_string()),
            Just("\"90.5s\"".to_string()),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(", "))),
                prop::collection::vec(("[a-z_]{1,8}", inner), 0..3).prop_map(|kv| {
                    let kv: Vec<String> = kv.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                    format!("{{ {} }}", kv.join(", "))
                }),
            ]
        })
    }

    /// Every key of the format, as (table header, key).
    #[rustfmt::skip]
    const KEYS: &[(&str, &str)] = &[
        ("", "domain"), ("", "state_dir"), ("", "instance"), ("", "shutdown_grace"), ("", "resolver"),
        ("[https]", "listen"), ("[https]", "cert"), ("[https]", "key"), ("[https]", "login_url"), ("[https]", "response_timeout"), ("[https]", "workers"),
        ("[http]", "listen"), ("[http]", "mode"), ("[http]", "trusted_proxies"),
        ("[ssh]", "listen"), ("[ssh]", "host_keys"), ("[ssh]", "default_image"), ("[ssh]", "env"), ("[ssh]", "login_grace"),
        ("[admin]", "listen"), ("[admin]", "token_file"),
        ("[log]", "format"), ("[log]", "audit"),
        ("[docker]", "host"), ("[docker]", "network"),
        ("[scheduler]", "launch_parallelism"), ("[scheduler]", "launch_attempts"),
        ("[scheduler]", "launch_retry_delay"), ("[scheduler]", "ready_timeout"),
        ("[scheduler]", "max_containers"), ("[scheduler]", "restart_grace"),
        ("[[resolver]]", "name"), ("[[resolver]]", "plugin"), ("[[resolver]]", "config"),
        ("[[resolver]]", "connect"), ("[[resolver]]", "files"), ("[[resolver]]", "timeout"),
        ("[[resolver]]", "memory_mb"), ("[[resolver]]", "unknown"),
    ];

    /// A valid file with `value` (raw text) put at the `at`-th key of [`KEYS`].
    fn skeleton(at: usize, value: &str) -> String {
        let (table, key) = KEYS[at % KEYS.len()];
        let entry = format!("{key} = {value}\n");
        let mut text = String::new();
        if key != "domain" {
            text.push_str("domain = \"orca.test\"\n");
        }
        if table.is_empty() {
            text.push_str(&entry);
        }
        text.push_str("[ssh]\nlisten = \"127.0.0.1:2022\"\n");
        if !table.is_empty() && table != "[[resolver]]" {
            text.push_str(&format!("{table}\n{entry}"));
        }
        if key != "resolver" {
            text.push_str("[[resolver]]\nname = \"keys\"\nplugin = \"bundled:ssh-key\"\n");
        }
        if table == "[[resolver]]" {
            text.push_str(&entry);
        }
        text
    }

    fn check_round_trip(config: &Config) {
        let again = parse(
            &super::super::render::render(config),
            Path::new("/elsewhere"),
            config.source.clone(),
        );
        assert_eq!(again.as_ref(), Ok(config));
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_any_text(text in "(?s).{0,300}") {
            if let Ok(config) = parse(&text, Path::new("/etc/orca"), None) {
                check_round_trip(&config);
            }
        }

        #[test]
        fn parse_never_panics_on_any_value_in_a_valid_file(at in 0..KEYS.len(), value in toml_value()) {
            match parse(&skeleton(at, &value), Path::new("/etc/orca"), None) {
                Ok(config) => check_round_trip(&config),
                Err(e) => prop_assert!(e.errors.iter().all(|e| !e.reason.is_empty())),
            }
        }

        #[test]
        fn parse_never_panics_on_any_text_as_a_value(at in 0..KEYS.len(), value in "(?s).{0,40}") {
            let _ = parse(&skeleton(at, &value), Path::new("/etc/orca"), None).map_err(|e| e.to_string());
        }
    }
}
