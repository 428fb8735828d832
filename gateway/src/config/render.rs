//! The effective configuration written back as TOML, every key spelled out.
//!
//! `orca check-config` prints it. Reading it back gives the same [`Config`] for any
//! configuration that came from a file: paths are written as resolved, durations exactly.

use std::path::Path;
use std::time::Duration;

use super::{Config, PluginSource};
use crate::units::{format_duration, parse_duration};

/// The effective configuration as TOML with every key spelled out.
pub(super) fn render(c: &Config) -> String {
    let mut o = String::new();
    let mut line = |text: String| {
        o.push_str(&text);
        o.push('\n');
    };
    line(format!("domain = {}", string(&c.domain)));
    line(format!("state_dir = {}", path(&c.state_dir)));
    line(format!("instance = {}", string(&c.instance)));
    line(format!("shutdown_grace = {}", duration(c.shutdown_grace)));
    if c.resolvers.is_empty() {
        // A top-level key must come before the first table.
        line("resolver = []  # no identity resolvers".to_string());
    }

    line(String::new());
    line("[https]".to_string());
    line(format!("listen = {}", string(&c.https.listen.to_string())));
    match &c.https.tls {
        Some(tls) => {
            line(format!("cert = {}", path(&tls.cert)));
            line(format!("key = {}", path(&tls.key)));
        }
        None => line(
            "# cert and key unset: a self-signed certificate is generated into state_dir".into(),
        ),
    }
    line(format!(
        "response_timeout = {}",
        duration(c.https.response_timeout)
    ));
    match c.https.workers {
        Some(n) => line(format!("workers = {n}")),
        None => line("# workers unset: one connection thread per CPU core".into()),
    }
    match &c.https.login_url {
        Some(url) => line(format!("login_url = {}", string(url))),
        None => line("# login_url unset: the login form, when a resolver checks passwords".into()),
    }

    line(String::new());
    match &c.http {
        Some(h) => {
            line("[http]".to_string());
            line(format!("listen = {}", string(&h.listen.to_string())));
            line(format!("mode = {}", string(h.mode.as_str())));
            line(format!(
                "trusted_proxies = {}",
                array(h.trusted_proxies.iter().map(|c| string(&c.to_string())))
            ));
        }
        None => line("# [http] unset: no plain listener".to_string()),
    }

    line(String::new());
    line("[ssh]".to_string());
    line(format!("listen = {}", string(&c.ssh.listen.to_string())));
    line(format!(
        "host_keys = {}",
        array(c.ssh.host_keys.iter().map(|p| path(p)))
    ));
    if c.ssh.host_keys.is_empty() {
        line("# host_keys empty: one ed25519 key is generated once into state_dir".into());
    }
    match &c.ssh.default_image {
        Some(image) => line(format!("default_image = {}", string(image))),
        None => line(
            "# default_image unset: commands, scp and sftp must name an image (user+image)".into(),
        ),
    }
    line(format!(
        "env = {}",
        array(c.ssh.env.iter().map(|v| string(v)))
    ));
    line(format!("login_grace = {}", duration(c.ssh.login_grace)));

    line(String::new());
    line("[admin]".to_string());
    line(format!("listen = {}", string(&c.admin.listen.to_string())));
    match &c.admin.token_file {
        Some(p) => line(format!("token_file = {}", path(p))),
        None => line("# token_file unset: no token (loopback only)".into()),
    }

    line(String::new());
    line("[log]".to_string());
    line(format!("format = {}", string(c.log.format.as_str())));
    match &c.log.audit {
        Some(p) => line(format!("audit = {}", path(p))),
        None => line("audit = \"\"  # no audit log".into()),
    }

    line(String::new());
    line("[docker]".to_string());
    match &c.docker.host {
        Some(h) => line(format!("host = {}", string(h))),
        None => line("# host unset: DOCKER_HOST or the local socket".to_string()),
    }
    line(format!("network = {}", string(&c.docker.network)));

    let s = &c.scheduler;
    line(String::new());
    line("[scheduler]".to_string());
    line(format!("launch_parallelism = {}", s.launch_parallelism));
    line(format!("launch_attempts = {}", s.launch_attempts));
    line(format!(
        "launch_retry_delay = {}",
        duration(s.launch_retry_delay)
    ));
    line(format!("ready_timeout = {}", duration(s.ready_timeout)));
    line(format!("max_containers = {}", s.max_containers));
    line(format!("restart_grace = {}", duration(s.restart_grace)));

    for r in &c.resolvers {
        line(String::new());
        line("[[resolver]]".to_string());
        line(format!("name = {}", string(&r.name)));
        let plugin = match &r.plugin {
            PluginSource::Bundled(name) => string(&format!("bundled:{name}")),
            PluginSource::Path(p) => path(p),
        };
        line(format!("plugin = {plugin}"));
        let config: Vec<String> = r
            .config
            .iter()
            .map(|(k, v)| format!("{} = {}", key(k), string(v)))
            .collect();
        line(if config.is_empty() {
            "config = {}".to_string()
        } else {
            format!("config = {{ {} }}", config.join(", "))
        });
        line(format!(
            "connect = {}",
            array(r.connect.iter().map(|c| string(c)))
        ));
        match &r.files {
            Some(f) => line(format!("files = {}", path(f))),
            None => line("# files unset: the plugin reads no files".to_string()),
        }
        line(format!("timeout = {}", duration(r.timeout)));
        line(format!("memory_mb = {}", r.memory_mb));
        line(format!("reuse = {}", r.reuse));
        line(format!("concurrency = {}", r.concurrency));
        line(format!("cache_max = {}", duration(r.cache_max)));
    }
    o
}

/// A TOML basic string, escaped as needed.
fn string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn path(p: &Path) -> String {
    string(&p.to_string_lossy())
}

/// A bare key when TOML allows one, else a quoted key.
fn key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare { k.to_string() } else { string(k) }
}

fn array(items: impl Iterator<Item = String>) -> String {
    let mut out = String::from("[");
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&item);
    }
    out.push(']');
    out
}

/// `format_duration`'s form when it reads back exactly, else whole milliseconds (it drops
/// the milliseconds of durations over a minute, such as `90.5s`).
fn duration(d: Duration) -> String {
    let short = format_duration(d);
    if parse_duration(&short) == Ok(d) {
        string(&short)
    } else {
        string(&format!("{}ms", d.as_millis()))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use proptest::prelude::*;

    use super::*;
    use crate::config::file::parse;

    fn round_trip(text: &str) -> (Config, String) {
        let c = parse(
            text,
            Path::new("/etc/orca"),
            Some("/etc/orca/orca.toml".into()),
        )
        .unwrap();
        let rendered = render(&c);
        let again = parse(&rendered, Path::new("/somewhere/else"), c.source.clone());
        assert_eq!(again.as_ref(), Ok(&c), "{rendered}");
        (c, rendered)
    }

    #[test]
    fn a_full_file_reads_back_the_same() {
        let (_, rendered) = round_trip(
            r#"
domain = "orca.example.org"
state_dir = "state"
instance = "edge-1"
[https]
listen = "0.0.0.0:443"
cert = "tls.crt"
key = "tls.key"
login_url = "https://sso.example.org/login?next={url}"
response_timeout = "5m"
workers = 4
[http]
listen = "[::]:80"
mode = "serve"
trusted_proxies = ["10.0.0.0/8", "fd00::/8", "192.0.2.1"]
[ssh]
listen = "0.0.0.0:22"
host_keys = ["ssh_host_ed25519_key", "/etc/ssh/rsa key"]
[admin]
listen = "127.0.0.1:9090"
[docker]
host = "tcp://docker:2375"
network = "orca"
[scheduler]
launch_parallelism = 8
launch_attempts = 3
launch_retry_delay = "250ms"
ready_timeout = "1m30.5s"
max_containers = 500
restart_grace = "1d2h"
[[resolver]]
name = "sessions \"main\""
plugin = "plugins/cookie.wasm"
config = { cookie = "orca_session", "odd key" = "a\"b\\c\n", anonymous = true, max = 3 }
connect = ["127.0.0.1:389", "ldap.example.org:636"]
files = "/etc/orca/keys"
timeout = "2s"
memory_mb = 32
[[resolver]]
name = "ldap"
plugin = "bundled:ldap"
"#,
        );
        assert!(
            rendered.contains("ready_timeout = \"90500ms\"\n"),
            "{rendered}"
        );
        assert!(
            rendered.contains("restart_grace = \"1d2h\"\n"),
            "{rendered}"
        );
        assert!(
            rendered.contains("plugin = \"bundled:ldap\"\n"),
            "{rendered}"
        );
        assert!(
            rendered.contains("plugin = \"/etc/orca/plugins/cookie.wasm\"\n"),
            "{rendered}"
        );
        assert!(
            rendered.contains("state_dir = \"/etc/orca/state\"\n"),
            "{rendered}"
        );
        assert!(rendered.contains("anonymous = \"true\""), "{rendered}");
    }

    #[test]
    fn defaults_and_empty_lists_read_back_the_same() {
        let (c, rendered) = round_trip("");
        assert_eq!(c.resolvers.len(), 2);
        for key in [
            "domain",
            "state_dir",
            "instance",
            "[https]",
            "listen",
            "[ssh]",
            "host_keys",
            "[admin]",
            "[docker]",
            "network",
            "[scheduler]",
            "launch_parallelism",
            "launch_attempts",
            "launch_retry_delay",
            "ready_timeout",
            "max_containers",
            "restart_grace",
            "[[resolver]]",
            "name",
            "plugin",
            "config",
            "connect",
            "files",
            "timeout",
            "memory_mb",
        ] {
            assert!(
                rendered.contains(&format!("\n{key}")) || rendered.starts_with(key),
                "{key} missing:\n{rendered}"
            );
        }
        let (c, rendered) = round_trip("resolver = []\n");
        assert!(c.resolvers.is_empty());
        assert!(rendered.contains("resolver = []"), "{rendered}");
    }

    #[test]
    fn the_embedded_configuration_reads_back_the_same() {
        let c = Config::embedded();
        let again = parse(&render(&c), Path::new(""), None).unwrap();
        assert_eq!(again, c);
        assert_eq!(again.resolvers[1].files, Some(PathBuf::from(".orca/keys")));
    }

    fn quoted(s: &str) -> String {
        toml::Value::String(s.to_string()).to_string()
    }

    /// A duration as an operator might write it: `250ms`, `90s`, `1m30.5s`, `1.25h`, `2d`.
    fn written_duration() -> impl Strategy<Value = String> {
        prop_oneof![
            (1u64..100_000).prop_map(|ms| format!("{ms}ms")),
            (1u64..100_000).prop_map(|s| format!("{s}s")),
            (0u64..600, 0u64..60, 0u64..1000).prop_map(|(m, s, ms)| format!("{m}m{s}.{ms:03}s1ms")),
            (1u64..48, 1u64..100).prop_map(|(h, f)| format!("{h}.{f}h")),
            (1u64..366).prop_map(|d| format!("{d}d")),
        ]
    }

    fn listen(port: u16) -> impl Strategy<Value = String> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(move |ip| format!("{}:{port}", std::net::Ipv4Addr::from(ip))),
            any::<[u16; 8]>()
                .prop_map(move |ip| format!("[{}]:{port}", std::net::Ipv6Addr::from(ip))),
        ]
    }

    /// Any text but blank.
    fn text(max: usize) -> impl Strategy<Value = String> {
        proptest::string::string_regex(&format!("(?s).{{1,{max}}}"))
            .unwrap()
            .prop_filter("blank", |s| !s.trim().is_empty())
    }

    fn resolver(i: usize) -> impl Strategy<Value = String> {
        let scalar = prop_oneof![
            text(12).prop_map(|s| quoted(&s)),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<bool>().prop_map(|b| b.to_string()),
            any::<f64>().prop_map(|x| toml::Value::Float(x).to_string()),
        ];
        (
            text(12),
            prop_oneof![
                prop::sample::select(BUNDLED).prop_map(|b| format!("bundled:{b}")),
                text(20).prop_map(|p| format!("{p}.wasm")),
            ],
            prop::collection::btree_map("[A-Za-z0-9_ .-]{1,8}", scalar, 0..4),
            prop::collection::vec((r"[a-z0-9.-]{1,12}|\[::1\]|10\.0\.0\.1", 1u16..), 0..3),
            prop::option::of(text(20)),
            written_duration(),
            1u32..=4096,
        )
            .prop_map(
                move |(name, plugin, config, connect, files, timeout, memory_mb)| {
                    let config: Vec<String> = config
                        .iter()
                        .map(|(k, v)| format!("{} = {v}", quoted(k)))
                        .collect();
                    let connect: Vec<String> = connect
                        .iter()
                        .map(|(h, p)| quoted(&format!("{h}:{p}")))
                        .collect();
                    let mut r = format!(
                        "[[resolver]]\nname = {}\nplugin = {}\nconfig = {{ {} }}\nconnect = [{}]\n",
                        quoted(&format!("{i}{name}")),
                        quoted(&plugin),
                        config.join(", "),
                        connect.join(", "),
                    );
                    if let Some(f) = files {
                        r.push_str(&format!("files = {}\n", quoted(&f)));
                    }
                    r.push_str(&format!(
                        "timeout = {}\nmemory_mb = {memory_mb}\n",
                        quoted(&timeout)
                    ));
                    r
                },
            )
    }

    const BUNDLED: &[&str] = &["cookie", "ssh-key", "ldap"];

    /// A valid file using every key, with values drawn widely.
    fn valid_file() -> impl Strategy<Value = String> {
        let top = (
            "[a-z0-9]{1,10}(\\.[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?){0,2}",
            text(20),
            "[a-z0-9][a-z0-9_.-]{0,20}",
            listen(1443),
            prop::option::of((text(20), text(20))),
            prop::option::of(listen(1080)),
            listen(1022),
            prop::collection::vec(text(20), 0..3),
            listen(1090),
        );
        let rest = (
            prop::option::of(
                ("unix|tcp|http|https", text(20)).prop_map(|(s, h)| format!("{s}://{h}")),
            ),
            text(12),
            (1usize..=1024, 1u32..=100, 1usize..=100_000),
            (written_duration(), written_duration(), written_duration()),
            (0usize..4).prop_flat_map(|n| (0..n).map(resolver).collect::<Vec<_>>()),
            (
                text(20),
                "human|json",
                prop::option::of(text(20)),
                written_duration(),
            ),
        );
        (top, rest).prop_map(|(top, rest)| {
            let (domain, state_dir, instance, https, tls, http, ssh, host_keys, admin) = top;
            let (
                host,
                network,
                (parallelism, attempts, max),
                (delay, ready, grace),
                resolvers,
                ops,
            ) = rest;
            let (token_file, log_format, audit, shutdown_grace) = ops;
            let mut t = format!(
                "domain = {}\nstate_dir = {}\ninstance = {}\nshutdown_grace = {}\n",
                quoted(&domain),
                quoted(&state_dir),
                quoted(&instance),
                quoted(&shutdown_grace)
            );
            if resolvers.is_empty() {
                t.push_str("resolver = []\n");
            }
            t.push_str(&format!("[https]\nlisten = {}\n", quoted(&https)));
            if let Some((cert, key)) = tls {
                t.push_str(&format!(
                    "cert = {}\nkey = {}\n",
                    quoted(&cert),
                    quoted(&key)
                ));
            }
            if let Some(http) = http {
                t.push_str(&format!("[http]\nlisten = {}\n", quoted(&http)));
            }
            let keys: Vec<String> = host_keys.iter().map(|k| quoted(k)).collect();
            t.push_str(&format!(
                "[ssh]\nlisten = {}\nhost_keys = [{}]\n[admin]\nlisten = {}\ntoken_file = {}\n\
                 [log]\nformat = {}\naudit = {}\n[docker]\nnetwork = {}\n",
                quoted(&ssh),
                keys.join(", "),
                quoted(&admin),
                quoted(&token_file),
                quoted(&log_format),
                quoted(audit.as_deref().unwrap_or("")),
                quoted(&network)
            ));
            if let Some(host) = host {
                t.push_str(&format!("host = {}\n", quoted(&host)));
            }
            t.push_str(&format!(
                "[scheduler]\nlaunch_parallelism = {parallelism}\nlaunch_attempts = {attempts}\n\
                 max_containers = {max}\nlaunch_retry_delay = {}\nready_timeout = {}\n\
                 restart_grace = {}\n",
                quoted(&delay),
                quoted(&ready),
                quoted(&grace)
            ));
            t + &resolvers.concat()
        })
    }

    proptest! {
        #[test]
        fn any_valid_file_parses_and_reads_back_the_same(file in valid_file()) {
            let c = parse(&file, Path::new("/etc/orca"), None);
            prop_assert!(c.is_ok(), "{file}\n{}", c.unwrap_err());
            if let Ok(c) = c {
                let rendered = render(&c);
                let again = parse(&rendered, Path::new("/elsewhere"), None);
                prop_assert_eq!(again.as_ref(), Ok(&c), "{}", rendered);
            }
        }
    }
}
