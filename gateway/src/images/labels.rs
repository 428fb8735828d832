//! Raw `orca.*` labels → [`ImageSpec`], with every error collected and per-kind defaults.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use super::{
    ConnectionMethod, ImageSpec, Kinds, LabelError, ReadyCheck, ResourceLimits, UserLimit,
};
use crate::runtime::MANAGED_LABEL_PREFIX;
use crate::units::{parse_duration, parse_size};

/// Prefix of Orca's image labels.
pub const LABEL_PREFIX: &str = "orca.";

const KIND: &str = "orca.kind";
const NAME: &str = "orca.name";
const PORT: &str = "orca.port";
const SESSION: &str = "orca.timeout.session";
const INACTIVE: &str = "orca.timeout.inactive";
const LINGER: &str = "orca.timeout.linger";
const STOP: &str = "orca.timeout.stop";
const TOTAL: &str = "orca.users.total";
const CONCURRENT: &str = "orca.users.concurrent";
const METHOD: &str = "orca.connection.method";
const STOPSIGNAL: &str = "orca.container.stopsignal";
const PERSIST: &str = "orca.container.persistBetweenReconnects";
const EXEC: &str = "orca.exec.command";
const READY: &str = "orca.ready";
const MEMORY: &str = "orca.limits.memory";
const CPUS: &str = "orca.limits.cpus";
const PIDS: &str = "orca.limits.pids";
const GROUPS: &str = "orca.access.groups";
const WARM: &str = "orca.pool.warm";

/// Every label, its web and ssh defaults, and its meaning (for `orca labels` and the README).
const TABLE: &[(&str, &str, &str, &str)] = &[
    (
        KIND,
        "",
        "",
        "`web`, `ssh`, `tcp`, or a comma list (`web,ssh`); required",
    ),
    (
        NAME,
        "repo name",
        "repo name",
        "name used in the subdomain and the SSH menu",
    ),
    (
        PORT,
        "80",
        "",
        "TCP port inside the container (HTTP for web; target of `connect`)",
    ),
    (
        SESSION,
        "24h",
        "24h",
        "maximum container lifespan: then it takes no new users and stops when its users have left (`0`: none)",
    ),
    (
        INACTIVE,
        "15m",
        "15m",
        "a user inactive this long is kicked out of the container",
    ),
    (
        TOTAL,
        "-1",
        "1",
        "users served over the container's life (-1: unlimited)",
    ),
    (CONCURRENT, "-1", "1", "users at once (-1: unlimited)"),
    (
        METHOD,
        "",
        "attach",
        "`attach`, `exec` (one docker exec per session) or `connect` (a TCP port)",
    ),
    (
        STOPSIGNAL,
        "",
        "",
        "signal used to stop the container (`SIGINT`, `TERM`, `15`)",
    ),
    (
        PERSIST,
        "true",
        "false",
        "whether a user's last disconnect keeps them in the container",
    ),
    (
        LINGER,
        "30s",
        "30s",
        "how long an empty container waits for a new user before stopping",
    ),
    (
        STOP,
        "10s",
        "10s",
        "grace between the stop signal and the kill",
    ),
    (
        EXEC,
        "",
        "/bin/sh",
        "command run by the `exec` method (JSON array or words)",
    ),
    (
        READY,
        "tcp",
        "none",
        "what ready means before traffic is sent: `tcp`, `http:/path`, `none`",
    ),
    (MEMORY, "", "", "memory limit, such as `512m`"),
    (CPUS, "", "", "CPU limit, such as `0.5`"),
    (PIDS, "", "", "process limit"),
    (
        GROUPS,
        "",
        "",
        "comma list of groups allowed to use the image (empty: everyone)",
    ),
    (
        WARM,
        "0",
        "0",
        "containers kept started and unassigned, ready for new users",
    ),
];

/// Every label with its web default, ssh default and meaning.
pub fn label_table() -> &'static [(&'static str, &'static str, &'static str, &'static str)] {
    TABLE
}

/// The repository name of a reference: `registry:5000/team/Shell:v2` → `shell`.
pub fn repo_name(reference: &str) -> String {
    let no_digest = reference.split('@').next().unwrap_or("");
    let last = no_digest.rsplit('/').next().unwrap_or("");
    let repo = last.split(':').next().unwrap_or("");
    repo.to_ascii_lowercase()
}

/// Parses an image's labels into its spec; every bad label is reported.
pub fn parse_labels(
    image_id: &str,
    reference: &str,
    labels: &HashMap<String, String>,
) -> Result<ImageSpec, Vec<LabelError>> {
    let mut p = Parser {
        labels,
        errors: Vec::new(),
    };
    p.unknown_labels();

    let kinds = p.kinds();
    let web = kinds.web;
    let multi_user_defaults = web;
    let name = p.name(reference);
    let method = p.method(kinds);
    let needs_port = kinds.tcp || method == Some(ConnectionMethod::Connect);
    let port = p.port(web, needs_port);
    let lifespan = p.lifespan();
    let inactive = p.duration(INACTIVE, Duration::from_secs(15 * 60), false);
    let linger = p.duration(LINGER, Duration::from_secs(30), true);
    let stop_grace = p.duration(STOP, Duration::from_secs(10), true);
    let default_users = if multi_user_defaults {
        UserLimit::Unlimited
    } else {
        UserLimit::AtMost(1)
    };
    let users_total = p.user_limit(TOTAL, default_users);
    let users_concurrent = p.user_limit(CONCURRENT, default_users);
    if let (UserLimit::AtMost(total), UserLimit::AtMost(conc)) = (users_total, users_concurrent)
        && conc > total
    {
        p.error(
                CONCURRENT,
                format!("must not exceed `{TOTAL}` ({total}): a container can never hold more users at once than it serves in all"),
            );
    }
    let stop_signal = p.stop_signal();
    let persist_between_reconnects = p.boolean(PERSIST, web);
    let exec_command = p.exec_command();
    let ready = p.ready(port);
    let limits = p.limits();
    let access_groups = p.groups();
    let pool_warm = p.warm();

    if !p.errors.is_empty() {
        return Err(p.errors);
    }
    Ok(ImageSpec {
        name: name.unwrap_or_default(),
        image_id: image_id.to_string(),
        reference: reference.to_string(),
        kinds,
        port,
        lifespan,
        inactive,
        linger,
        stop_grace,
        users_total,
        users_concurrent,
        method,
        stop_signal,
        persist_between_reconnects,
        exec_command,
        ready,
        limits,
        access_groups,
        pool_warm,
    })
}

struct Parser<'a> {
    labels: &'a HashMap<String, String>,
    errors: Vec<LabelError>,
}

impl Parser<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(|v| v.trim())
    }

    fn error(&mut self, label: &str, reason: impl Into<String>) {
        self.errors.push(LabelError {
            label: label.to_string(),
            value: self.labels.get(label).cloned().unwrap_or_default(),
            reason: reason.into(),
        });
    }

    fn unknown_labels(&mut self) {
        let mut keys: Vec<&String> = self.labels.keys().collect();
        keys.sort();
        for key in keys {
            if !key.starts_with(LABEL_PREFIX) || key.starts_with(MANAGED_LABEL_PREFIX) {
                continue;
            }
            if TABLE.iter().any(|(k, ..)| k == key) {
                continue;
            }
            let hint = suggestion(key)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_else(|| "; see `orca labels` for the labels orca reads".to_string());
            self.error(key, format!("unknown label{hint}"));
        }
    }

    fn kinds(&mut self) -> Kinds {
        let Some(v) = self.get(KIND) else {
            self.error(
                KIND,
                "required: set it to `web`, `ssh`, `tcp` or a comma list such as `web,ssh`",
            );
            return Kinds::default();
        };
        let mut kinds = Kinds::default();
        let mut bad = Vec::new();
        for word in v.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "web" => kinds.web = true,
                "ssh" => kinds.ssh = true,
                "tcp" => kinds.tcp = true,
                other => bad.push(other.to_string()),
            }
        }
        if !bad.is_empty() {
            self.error(
                KIND,
                format!(
                    "unknown kind `{}`: use `web`, `ssh`, `tcp` or a comma list of them",
                    bad.join("`, `")
                ),
            );
        } else if kinds == Kinds::default() {
            self.error(
                KIND,
                "empty: use `web`, `ssh`, `tcp` or a comma list of them",
            );
        }
        kinds
    }

    fn name(&mut self, reference: &str) -> Option<String> {
        let (name, explicit) = match self.get(NAME) {
            Some(n) => (n.to_string(), true),
            None => (repo_name(reference), false),
        };
        if name.is_empty() {
            self.error(
                NAME,
                "the image has no tag to take a name from: tag the image or set `orca.name`",
            );
            return None;
        }
        if explicit && name.chars().any(|c| c.is_ascii_uppercase()) {
            self.error(
                NAME,
                "use lowercase: the name is a DNS label (`<name>.<domain>`)",
            );
            return None;
        }
        if !is_dns_label(&name) {
            let reason = "must be a DNS label: lowercase letters, digits and `-`, at most 63, not starting or ending with `-`";
            if explicit {
                self.error(NAME, reason);
            } else {
                self.errors.push(LabelError {
                    label: NAME.to_string(),
                    value: format!("(from `{reference}`) {name}"),
                    reason: format!("the repository name {reason}; set `orca.name`"),
                });
            }
            return None;
        }
        Some(name)
    }

    fn method(&mut self, kinds: Kinds) -> Option<ConnectionMethod> {
        let default = match (kinds.web, kinds.ssh, kinds.tcp) {
            (_, true, _) if kinds.web => Some(ConnectionMethod::Exec),
            (_, true, _) => Some(ConnectionMethod::Attach),
            (false, false, true) => Some(ConnectionMethod::Connect),
            _ => None,
        };
        let Some(v) = self.get(METHOD).map(str::to_string) else {
            return default;
        };
        let parsed = match v.as_str() {
            "attach" => ConnectionMethod::Attach,
            "exec" => ConnectionMethod::Exec,
            "connect" => ConnectionMethod::Connect,
            _ => {
                self.error(METHOD, "use `attach`, `exec` or `connect`");
                return default;
            }
        };
        if kinds.web && !kinds.ssh && !kinds.tcp {
            self.error(METHOD, "only ssh and tcp images connect sessions this way; remove it or add `ssh` to `orca.kind`");
            return None;
        }
        Some(parsed)
    }

    fn port(&mut self, web: bool, required: bool) -> Option<u16> {
        match self.get(PORT) {
            Some(v) => match v.parse::<u16>() {
                Ok(p) if p > 0 => Some(p),
                _ => {
                    self.error(PORT, "must be a TCP port number from 1 to 65535");
                    None
                }
            },
            None if web => Some(80),
            None => {
                if required {
                    self.errors.push(LabelError {
                        label: PORT.to_string(),
                        value: String::new(),
                        reason: "required for `tcp` images and the `connect` method: set the port to connect to".to_string(),
                    });
                }
                None
            }
        }
    }

    fn lifespan(&mut self) -> Option<Duration> {
        match self.get(SESSION) {
            None => Some(Duration::from_secs(24 * 3600)),
            Some("0" | "-1" | "none") => None,
            Some(v) => match parse_duration(v) {
                Ok(d) if !d.is_zero() => Some(d),
                Ok(_) => None,
                Err(e) => {
                    self.error(SESSION, format!("{e}, or `0` for no limit"));
                    None
                }
            },
        }
    }

    fn duration(&mut self, key: &str, default: Duration, zero_ok: bool) -> Duration {
        let Some(v) = self.get(key) else {
            return default;
        };
        match parse_duration(v) {
            Ok(d) if d.is_zero() && !zero_ok => {
                self.error(key, "must be longer than zero");
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.error(key, e.to_string());
                default
            }
        }
    }

    fn user_limit(&mut self, key: &str, default: UserLimit) -> UserLimit {
        let Some(v) = self.get(key) else {
            return default;
        };
        match v.parse::<i64>() {
            Ok(-1) => UserLimit::Unlimited,
            Ok(n) if n >= 1 && n <= i64::from(u32::MAX) => UserLimit::AtMost(n as u32),
            _ => {
                self.error(key, "must be -1 (unlimited) or a positive integer");
                default
            }
        }
    }

    fn stop_signal(&mut self) -> Option<String> {
        let v = self.get(STOPSIGNAL)?.to_string();
        if let Ok(n) = v.parse::<u32>() {
            if (1..=64).contains(&n) {
                return Some(n.to_string());
            }
            self.error(STOPSIGNAL, "signal numbers go from 1 to 64");
            return None;
        }
        let upper = v.to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        const SIGNALS: &[&str] = &[
            "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV",
            "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN",
            "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
        ];
        if SIGNALS.contains(&bare) {
            Some(format!("SIG{bare}"))
        } else {
            self.error(STOPSIGNAL, "unknown signal: use a name such as `SIGTERM`, `SIGINT`, `SIGQUIT`, `SIGHUP` or a number");
            None
        }
    }

    fn boolean(&mut self, key: &str, default: bool) -> bool {
        let Some(v) = self.get(key) else {
            return default;
        };
        match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => {
                self.error(key, "must be `true` or `false`");
                default
            }
        }
    }

    fn exec_command(&mut self) -> Option<Vec<String>> {
        let v = self.get(EXEC)?.to_string();
        let argv: Vec<String> = if v.starts_with('[') {
            match serde_json::from_str::<Vec<String>>(&v) {
                Ok(a) => a,
                Err(_) => {
                    self.error(
                        EXEC,
                        "a JSON array must hold strings only, such as `[\"/bin/bash\", \"-l\"]`",
                    );
                    return None;
                }
            }
        } else {
            v.split_whitespace().map(String::from).collect()
        };
        if argv.is_empty() || argv[0].is_empty() {
            self.error(
                EXEC,
                "empty: give a command such as `/bin/bash -l` or `[\"/bin/bash\", \"-l\"]`",
            );
            return None;
        }
        Some(argv)
    }

    fn ready(&mut self, port: Option<u16>) -> ReadyCheck {
        let default = if port.is_some() {
            ReadyCheck::Tcp
        } else {
            ReadyCheck::None
        };
        let Some(v) = self.get(READY).map(str::to_string) else {
            return default;
        };
        let check = match v.as_str() {
            "none" => return ReadyCheck::None,
            "tcp" => ReadyCheck::Tcp,
            other => match other.strip_prefix("http:") {
                Some(path) if path.starts_with('/') && !path.chars().any(char::is_whitespace) => {
                    ReadyCheck::Http(path.to_string())
                }
                _ => {
                    self.error(READY, "use `tcp`, `none` or `http:/path` (the path starts with `/` and has no spaces)");
                    return default;
                }
            },
        };
        if port.is_none() {
            self.error(READY, "needs `orca.port` to know where to check");
            return ReadyCheck::None;
        }
        check
    }

    fn limits(&mut self) -> ResourceLimits {
        let mut limits = ResourceLimits::default();
        if let Some(v) = self.get(MEMORY) {
            match parse_size(v) {
                Ok(b) if b >= 6 << 20 => limits.memory_bytes = Some(b),
                Ok(_) => self.error(MEMORY, "Docker needs at least 6m of memory for a container"),
                Err(e) => self.error(MEMORY, e.to_string()),
            }
        }
        if let Some(v) = self.get(CPUS) {
            match v.parse::<f64>() {
                Ok(c) if c.is_finite() && c > 0.0 && c <= 1024.0 => {
                    limits.nano_cpus = Some((c * 1e9).round() as u64)
                }
                _ => self.error(
                    CPUS,
                    "must be a positive number of CPUs such as `0.5` or `2` (at most 1024)",
                ),
            }
        }
        if let Some(v) = self.get(PIDS) {
            match v.parse::<u32>() {
                Ok(n) if n > 0 => limits.pids = Some(n),
                _ => self.error(PIDS, "must be a positive integer"),
            }
        }
        limits
    }

    fn groups(&mut self) -> BTreeSet<String> {
        let Some(v) = self.get(GROUPS).map(str::to_string) else {
            return BTreeSet::new();
        };
        let groups: BTreeSet<String> = v
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(String::from)
            .collect();
        if groups.iter().any(|g| g.chars().any(char::is_whitespace)) {
            self.error(
                GROUPS,
                "group names cannot contain spaces; separate groups with commas",
            );
        }
        groups
    }

    fn warm(&mut self) -> u32 {
        let Some(v) = self.get(WARM) else { return 0 };
        match v.parse::<u32>() {
            Ok(n) if n <= 100 => n,
            _ => {
                self.error(WARM, "must be an integer from 0 to 100");
                0
            }
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// The known label closest to a mistyped one, when it is close enough to be a typo.
fn suggestion(key: &str) -> Option<&'static str> {
    let lower = key.to_ascii_lowercase();
    TABLE
        .iter()
        .map(|(k, ..)| *k)
        .map(|k| {
            let d = if k.to_ascii_lowercase() == lower {
                0
            } else {
                edit_distance(&lower, &k.to_ascii_lowercase())
            };
            (d, k)
        })
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<ImageSpec, Vec<LabelError>> {
        parse_labels("sha256:1", "registry:5000/team/app:v1", &labels(pairs))
    }

    fn errors(pairs: &[(&str, &str)]) -> Vec<LabelError> {
        parse(pairs).expect_err("should be refused")
    }

    #[test]
    fn web_defaults_match_the_spec_table() {
        let s = parse(&[("orca.kind", "web")]).unwrap();
        assert_eq!(s.name, "app");
        assert_eq!(s.port, Some(80));
        assert_eq!(s.lifespan, Some(Duration::from_secs(86_400)));
        assert_eq!(s.inactive, Duration::from_secs(900));
        assert_eq!(s.users_total, UserLimit::Unlimited);
        assert_eq!(s.users_concurrent, UserLimit::Unlimited);
        assert_eq!(s.method, None);
        assert!(s.persist_between_reconnects);
        assert_eq!(s.linger, Duration::from_secs(30));
        assert_eq!(s.stop_grace, Duration::from_secs(10));
        assert_eq!(s.ready, ReadyCheck::Tcp);
        assert_eq!(s.pool_warm, 0);
        assert!(s.access_groups.is_empty());
    }

    #[test]
    fn ssh_defaults_match_the_spec_table() {
        let s = parse(&[("orca.kind", "ssh")]).unwrap();
        assert_eq!(s.port, None);
        assert_eq!(s.lifespan, Some(Duration::from_secs(86_400)));
        assert_eq!(s.inactive, Duration::from_secs(900));
        assert_eq!(s.users_total, UserLimit::AtMost(1));
        assert_eq!(s.users_concurrent, UserLimit::AtMost(1));
        assert_eq!(s.method, Some(ConnectionMethod::Attach));
        assert!(!s.persist_between_reconnects);
        assert_eq!(s.ready, ReadyCheck::None);
    }

    #[test]
    fn mixed_and_tcp_kinds() {
        let s = parse(&[("orca.kind", "web, ssh")]).unwrap();
        assert!(s.kinds.web && s.kinds.ssh);
        assert_eq!(
            s.method,
            Some(ConnectionMethod::Exec),
            "users must not share the main TTY"
        );
        assert_eq!(s.users_concurrent, UserLimit::Unlimited);
        let t = parse(&[("orca.kind", "tcp"), ("orca.port", "5432")]).unwrap();
        assert_eq!(t.method, Some(ConnectionMethod::Connect));
        assert_eq!(t.users_total, UserLimit::AtMost(1));
        let e = errors(&[("orca.kind", "tcp")]);
        assert_eq!(e[0].label, "orca.port");
    }

    #[test]
    fn every_label_is_read() {
        let s = parse(&[
            ("orca.kind", "ssh"),
            ("orca.name", "shell"),
            ("orca.port", "8080"),
            ("orca.timeout.session", "2h"),
            ("orca.timeout.inactive", "5m"),
            ("orca.timeout.linger", "0"),
            ("orca.timeout.stop", "3s"),
            ("orca.users.total", "10"),
            ("orca.users.concurrent", "2"),
            ("orca.connection.method", "exec"),
            ("orca.container.stopsignal", "int"),
            ("orca.container.persistBetweenReconnects", "yes"),
            ("orca.exec.command", "[\"/bin/bash\", \"-l\"]"),
            ("orca.ready", "http:/healthz"),
            ("orca.limits.memory", "512m"),
            ("orca.limits.cpus", "0.5"),
            ("orca.limits.pids", "100"),
            ("orca.access.groups", "staff, students,,"),
            ("orca.pool.warm", "2"),
            ("maintainer", "ignored"),
            ("orca.gateway.instance", "ignored too"),
        ])
        .unwrap();
        assert_eq!(s.name, "shell");
        assert_eq!(s.port, Some(8080));
        assert_eq!(s.lifespan, Some(Duration::from_secs(7200)));
        assert_eq!(s.inactive, Duration::from_secs(300));
        assert_eq!(s.linger, Duration::ZERO);
        assert_eq!(s.stop_grace, Duration::from_secs(3));
        assert_eq!(s.users_total, UserLimit::AtMost(10));
        assert_eq!(s.users_concurrent, UserLimit::AtMost(2));
        assert_eq!(s.method, Some(ConnectionMethod::Exec));
        assert_eq!(s.stop_signal.as_deref(), Some("SIGINT"));
        assert!(s.persist_between_reconnects);
        assert_eq!(s.exec_command, Some(vec!["/bin/bash".into(), "-l".into()]));
        assert_eq!(s.ready, ReadyCheck::Http("/healthz".into()));
        assert_eq!(s.limits.memory_bytes, Some(512 << 20));
        assert_eq!(s.limits.nano_cpus, Some(500_000_000));
        assert_eq!(s.limits.pids, Some(100));
        assert_eq!(
            s.access_groups.iter().cloned().collect::<Vec<_>>(),
            vec!["staff", "students"]
        );
        assert_eq!(s.pool_warm, 2);
        assert_eq!(
            parse(&[("orca.kind", "ssh"), ("orca.timeout.session", "0")])
                .unwrap()
                .lifespan,
            None
        );
        assert_eq!(
            parse(&[("orca.kind", "ssh"), ("orca.exec.command", "bash -l")])
                .unwrap()
                .exec_command,
            Some(vec!["bash".into(), "-l".into()])
        );
    }

    #[test]
    fn each_bad_value_names_label_value_and_fix() {
        let cases: &[(&str, &str, &str)] = &[
            ("orca.kind", "webb", "unknown kind"),
            ("orca.name", "My App", "lowercase"),
            ("orca.name", "-x", "DNS label"),
            ("orca.port", "0", "1 to 65535"),
            ("orca.port", "http", "1 to 65535"),
            ("orca.timeout.session", "forever", "not a duration"),
            ("orca.timeout.inactive", "0", "longer than zero"),
            (
                "orca.users.total",
                "0",
                "-1 (unlimited) or a positive integer",
            ),
            (
                "orca.users.concurrent",
                "-2",
                "-1 (unlimited) or a positive integer",
            ),
            (
                "orca.connection.method",
                "telnet",
                "`attach`, `exec` or `connect`",
            ),
            ("orca.container.stopsignal", "SIGFOO", "unknown signal"),
            (
                "orca.container.persistBetweenReconnects",
                "maybe",
                "`true` or `false`",
            ),
            ("orca.exec.command", "[1,2]", "strings only"),
            ("orca.ready", "http:healthz", "http:/path"),
            ("orca.limits.memory", "1k", "at least 6m"),
            ("orca.limits.cpus", "-1", "positive number"),
            ("orca.limits.pids", "many", "positive integer"),
            ("orca.access.groups", "a b", "spaces"),
            ("orca.pool.warm", "1000", "0 to 100"),
        ];
        for (label, value, fix) in cases {
            let kind = if label.starts_with("orca.connection") {
                "ssh"
            } else {
                "web"
            };
            let e = errors(&[("orca.kind", kind), (label, value)]);
            assert_eq!(e.len(), 1, "{label}={value}: {e:?}");
            assert_eq!(e[0].label, *label);
            assert_eq!(e[0].value, *value);
            assert!(e[0].to_string().contains(fix), "{label}={value}: {}", e[0]);
        }
    }

    #[test]
    fn all_errors_are_collected_at_once() {
        let e = errors(&[
            ("orca.kind", "web"),
            ("orca.port", "x"),
            ("orca.users.total", "2"),
            ("orca.users.concurrent", "3"),
            ("orca.pool.warm", "-1"),
        ]);
        let labels: Vec<&str> = e.iter().map(|e| e.label.as_str()).collect();
        assert_eq!(
            labels,
            vec!["orca.port", "orca.users.concurrent", "orca.pool.warm"],
            "{e:?}"
        );
        assert_eq!(errors(&[]).first().unwrap().label, "orca.kind");
    }

    #[test]
    fn unknown_labels_get_a_did_you_mean() {
        let e = errors(&[
            ("orca.kind", "web"),
            ("orca.container.persistbetweenreconnects", "true"),
        ]);
        assert!(
            e[0].reason
                .contains("did you mean `orca.container.persistBetweenReconnects`"),
            "{}",
            e[0]
        );
        let e = errors(&[("orca.kind", "web"), ("orca.timout.session", "1h")]);
        assert!(e[0].reason.contains("`orca.timeout.session`"), "{}", e[0]);
        let e = errors(&[("orca.kind", "web"), ("orca.frobnicate", "1")]);
        assert!(e[0].reason.contains("orca labels"), "{}", e[0]);
    }

    #[test]
    fn names_come_from_references() {
        for (reference, name) in [
            ("shell", "shell"),
            ("shell:latest", "shell"),
            ("library/shell:1", "shell"),
            ("registry:5000/team/Shell:v2", "shell"),
            ("img@sha256:abcd", "img"),
        ] {
            assert_eq!(repo_name(reference), name, "{reference}");
            let s = parse_labels("sha256:1", reference, &labels(&[("orca.kind", "web")])).unwrap();
            assert_eq!(s.name, name);
        }
        let e = parse_labels("sha256:1", "", &labels(&[("orca.kind", "web")])).unwrap_err();
        assert!(
            e[0].reason.contains("tag the image or set `orca.name`"),
            "{}",
            e[0]
        );
        let e = parse_labels("sha256:1", "my_app:1", &labels(&[("orca.kind", "web")])).unwrap_err();
        assert!(e[0].reason.contains("set `orca.name`"), "{}", e[0]);
    }

    #[test]
    fn the_table_covers_every_label_the_parser_reads() {
        assert_eq!(label_table().len(), 19);
        let unknown: Vec<_> = label_table()
            .iter()
            .filter(|(k, ..)| {
                errors(&[("orca.kind", "nope"), (k, "x")])
                    .iter()
                    .any(|e| e.reason.contains("unknown label"))
            })
            .collect();
        assert!(unknown.is_empty(), "{unknown:?}");
    }

    proptest! {
        #[test]
        fn never_panics_on_any_labels(
            reference in ".{0,40}",
            pairs in proptest::collection::vec(("(orca\\.[a-zA-Z.]{0,30})|.{0,20}", ".{0,30}"), 0..12),
        ) {
            let map: HashMap<String, String> = pairs.into_iter().collect();
            let _ = parse_labels("sha256:x", &reference, &map);
        }

        #[test]
        fn known_labels_with_any_values_never_panic(values in proptest::collection::vec(".{0,24}", 19)) {
            let map: HashMap<String, String> = label_table()
                .iter()
                .zip(values)
                .map(|((k, ..), v)| (k.to_string(), v))
                .collect();
            let _ = parse_labels("sha256:x", "img:1", &map);
        }

        #[test]
        fn a_valid_kind_alone_always_parses(kind in "(web|ssh)(, ?(web|ssh))?") {
            let s = parse_labels("sha256:x", "img:1", &labels(&[("orca.kind", &kind)])).unwrap();
            prop_assert_eq!(s.name, "img");
            prop_assert_eq!(s.persist_between_reconnects, s.kinds.web);
        }
    }
}
