//! The resolver's settings, parsed and checked once in `init`: every error names the setting,
//! the bad value and what would be accepted.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use orca_sdk::Settings;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::filter::{self, Filter};
use crate::proto::Scope;

/// Deadline for the whole exchange with one server (connect, TLS, binds, searches). Short,
/// because the gateway's default deadline for a whole resolver call is 2 s and a second
/// server must still have time to answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest accepted `timeout`.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// Filter of the user search in search-then-bind mode.
pub const DEFAULT_SEARCH_FILTER: &str = "(uid={user})";
/// Filter of the group search.
pub const DEFAULT_GROUP_FILTER: &str = "(member={dn})";
/// Attribute of a group entry that names the group.
pub const DEFAULT_GROUP_ATTR: &str = "cn";
/// Attribute of the user entry that becomes the identity's id.
pub const DEFAULT_ID_ATTR: &str = "uid";
/// Attribute of the user entry that becomes the display name.
pub const DEFAULT_DISPLAY_NAME_ATTR: &str = "cn";
/// Attribute of the user entry holding OpenSSH public keys (openssh-lpk schema).
pub const DEFAULT_SSH_KEY_ATTR: &str = "sshPublicKey";
/// Longest accepted `cache_seconds`: one day.
const MAX_CACHE_SECONDS: u64 = 86_400;

/// Every setting this resolver accepts.
const KNOWN: &[&str] = &[
    "servers",
    "timeout",
    "starttls",
    "ca_file",
    "tls_server_name",
    "bind_dn",
    "search_base",
    "search_filter",
    "search_scope",
    "service_dn",
    "service_password",
    "service_password_file",
    "id_attr",
    "display_name_attr",
    "ssh_key_attr",
    "group_base",
    "group_filter",
    "group_scope",
    "group_attr",
    "member_of_attr",
    "cache_seconds",
];

/// The validated settings.
#[derive(Clone)]
pub struct Config {
    /// Servers in the order they are tried.
    pub(crate) servers: Vec<Server>,
    /// Deadline per server.
    pub(crate) timeout: Duration,
    /// TLS client settings when any server uses TLS.
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    /// How a login name becomes a DN.
    pub(crate) locate: Locate,
    /// Who searches, when searches need a bind of their own.
    pub(crate) service: Option<Service>,
    /// Attribute for the identity's id; the login name when the entry lacks it.
    pub(crate) id_attr: String,
    /// Attribute for the display name, if any.
    pub(crate) display_name_attr: Option<String>,
    /// Attribute holding OpenSSH public keys.
    pub(crate) ssh_key_attr: String,
    /// The group search, if configured.
    pub(crate) groups: Option<GroupSearch>,
    /// Attribute of the user entry listing group DNs (`memberOf`), if configured.
    pub(crate) member_of_attr: Option<String>,
    /// Returned in every grant.
    pub(crate) cache_seconds: u32,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("servers", &self.servers)
            .field("timeout", &self.timeout)
            .field("tls", &self.tls.is_some())
            .field("locate", &self.locate)
            .field("service", &self.service.as_ref().map(|s| &s.dn))
            .field("groups", &self.groups)
            .field("cache_seconds", &self.cache_seconds)
            .finish_non_exhaustive()
    }
}

/// One directory server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Server {
    /// The URL as configured, for logs.
    pub(crate) url: String,
    /// Host name or IP address.
    pub(crate) host: String,
    /// TCP port.
    pub(crate) port: u16,
    /// Whether and how the connection is encrypted.
    pub(crate) security: Security,
    /// The name the certificate must carry.
    pub(crate) tls_name: Option<ServerName<'static>>,
}

/// How a connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Security {
    /// Plain LDAP: passwords cross the network in the clear.
    None,
    /// `ldaps://`: TLS from the first byte.
    Ldaps,
    /// `ldap://` upgraded with the StartTLS operation before any bind.
    StartTls,
}

/// How a login name is turned into the DN to bind as.
#[derive(Debug, Clone)]
pub(crate) enum Locate {
    /// `bind_dn`: the template with `{user}` replaced by the escaped name.
    Template(String),
    /// `search_base` + `search_filter`: search, then bind as the one entry found.
    Search {
        /// Where to search.
        base: String,
        /// The filter with `{user}`.
        filter: String,
        /// How deep.
        scope: Scope,
    },
}

/// The service account used for searches.
#[derive(Clone)]
pub(crate) struct Service {
    /// Its DN.
    pub(crate) dn: String,
    /// Its password.
    pub(crate) password: String,
}

/// The group search.
#[derive(Debug, Clone)]
pub(crate) struct GroupSearch {
    /// Where groups live.
    pub(crate) base: String,
    /// Filter with `{dn}` and/or `{user}`.
    pub(crate) filter: String,
    /// How deep.
    pub(crate) scope: Scope,
    /// The attribute naming a group.
    pub(crate) attr: String,
}

impl Config {
    /// Checks `settings`. `read_file` reads a file named relative to the resolver's read-only
    /// `files` directory (`Ok(None)` when it does not exist).
    pub fn from_settings(
        settings: &Settings,
        read_file: &dyn Fn(&str) -> io::Result<Option<String>>,
    ) -> Result<Config, String> {
        settings.only(KNOWN)?;
        let starttls = settings.bool("starttls", false)?;
        let tls_name_override = settings
            .get("tls_server_name")
            .map(|v| server_name("tls_server_name", v))
            .transpose()?;
        let servers = servers(settings, starttls, tls_name_override)?;
        let timeout = settings.duration("timeout", DEFAULT_TIMEOUT)?;
        if timeout.is_zero() || timeout > MAX_TIMEOUT {
            return Err(format!(
                "setting `timeout` = `{}` is out of range: use a duration above 0 and at most 60s, \
                 such as `1s` (the deadline for the whole exchange with one server)",
                settings.get_or("timeout", "")
            ));
        }
        let uses_tls = servers.iter().any(|s| s.security != Security::None);
        let tls = match (settings.get("ca_file"), uses_tls) {
            (Some(name), true) => Some(Arc::new(tls_config(name, read_file)?)),
            (None, true) => {
                return Err(
                    "setting `ca_file` is missing: servers use TLS (ldaps:// or \
                            starttls = true), so name the PEM file of the CA that signed their \
                            certificates, relative to the resolver's `files` directory"
                        .to_string(),
                );
            }
            (Some(name), false) => {
                return Err(format!(
                    "setting `ca_file` = `{name}` has no use: no server uses TLS; write \
                     ldaps:// URLs in `servers` or set starttls = true, or remove `ca_file`"
                ));
            }
            (None, false) => None,
        };
        if settings.get("tls_server_name").is_some() && !uses_tls {
            return Err("setting `tls_server_name` has no use: no server uses TLS".to_string());
        }
        let locate = locate(settings)?;
        let service = service(settings, read_file)?;
        let groups = match settings.get("group_base") {
            None => {
                for key in ["group_filter", "group_scope", "group_attr"] {
                    if settings.get(key).is_some() {
                        return Err(format!(
                            "setting `{key}` has no use without `group_base`: set `group_base` \
                             to the DN under which groups live"
                        ));
                    }
                }
                None
            }
            Some(base) => Some(GroupSearch {
                base: non_empty(settings, "group_base", base)?,
                filter: template(
                    "group_filter",
                    settings.get_or("group_filter", DEFAULT_GROUP_FILTER),
                    &["dn", "user"],
                )?,
                scope: scope(settings, "group_scope")?,
                attr: attribute(settings, "group_attr", DEFAULT_GROUP_ATTR)?,
            }),
        };
        let member_of_attr = settings
            .get("member_of_attr")
            .map(|_| attribute(settings, "member_of_attr", ""))
            .transpose()?;
        let display_name_attr = match settings.get("display_name_attr") {
            Some(v) if v.trim().is_empty() => None,
            _ => Some(attribute(
                settings,
                "display_name_attr",
                DEFAULT_DISPLAY_NAME_ATTR,
            )?),
        };
        Ok(Config {
            servers,
            timeout,
            tls,
            locate,
            service,
            id_attr: attribute(settings, "id_attr", DEFAULT_ID_ATTR)?,
            display_name_attr,
            ssh_key_attr: attribute(settings, "ssh_key_attr", DEFAULT_SSH_KEY_ATTR)?,
            groups,
            member_of_attr,
            cache_seconds: settings.number("cache_seconds", 0, 0, MAX_CACHE_SECONDS)? as u32,
        })
    }

    /// Seconds the gateway may reuse an allow (`cache_seconds`).
    pub fn cache_seconds(&self) -> u32 {
        self.cache_seconds
    }

    /// True when some server is reached without TLS, so passwords cross the network in clear.
    pub fn has_plaintext_server(&self) -> bool {
        self.servers.iter().any(|s| s.security == Security::None)
    }
}

fn servers(
    settings: &Settings,
    starttls: bool,
    tls_name: Option<ServerName<'static>>,
) -> Result<Vec<Server>, String> {
    settings.require(
        "servers",
        "a comma-separated list of LDAP URLs such as `ldap://127.0.0.1:389,ldaps://ldap2:636`",
    )?;
    let list = settings.list("servers");
    if list.is_empty() {
        return Err(format!(
            "setting `servers` = `{}` is empty: list LDAP URLs such as `ldap://127.0.0.1:389`",
            settings.get_or("servers", "")
        ));
    }
    list.into_iter()
        .map(|url| server(url, starttls, tls_name.clone()))
        .collect()
}

fn server(
    url: &str,
    starttls: bool,
    tls_name: Option<ServerName<'static>>,
) -> Result<Server, String> {
    let err = |why: &str| {
        format!(
            "setting `servers`: `{url}` {why}: write ldap://HOST[:PORT] or ldaps://HOST[:PORT], \
             as in `ldap://127.0.0.1:389`"
        )
    };
    let (security, default_port, rest) = if let Some(rest) = strip_scheme(url, "ldap://") {
        let security = if starttls {
            Security::StartTls
        } else {
            Security::None
        };
        (security, 389, rest)
    } else if let Some(rest) = strip_scheme(url, "ldaps://") {
        (Security::Ldaps, 636, rest)
    } else {
        return Err(err("has no ldap:// or ldaps:// scheme"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '@', ' ']) {
        return Err(err(
            "has a path, query, user or space, which are not supported",
        ));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| err("has an unclosed `[`"))?;
        match after {
            "" => (host, None),
            p => (
                host,
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| err("has text after `]`"))?,
                ),
            ),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(err("has no host"));
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| err("has a port that is not a number from 1 to 65535"))?,
    };
    let tls_name = match (security, tls_name) {
        (Security::None, _) => None,
        (_, Some(name)) => Some(name),
        (_, None) => Some(
            ServerName::try_from(host.to_string())
                .map_err(|_| err("has a host that cannot be checked against a certificate"))?,
        ),
    };
    Ok(Server {
        url: url.to_string(),
        host: host.to_string(),
        port,
        security,
        tls_name,
    })
}

fn strip_scheme<'a>(url: &'a str, scheme: &str) -> Option<&'a str> {
    let head = url.get(..scheme.len())?;
    head.eq_ignore_ascii_case(scheme)
        .then(|| url.get(scheme.len()..))
        .flatten()
}

fn server_name(key: &str, value: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(value.trim().to_string()).map_err(|_| {
        format!(
            "setting `{key}` = `{value}` is not a DNS name or IP address: write the name the \
             servers' certificates carry, such as `ldap.example.org`"
        )
    })
}

fn tls_config(
    name: &str,
    read_file: &dyn Fn(&str) -> io::Result<Option<String>>,
) -> Result<rustls::ClientConfig, String> {
    let pem = match read_file(name) {
        Ok(Some(pem)) => pem,
        Ok(None) => {
            return Err(format!(
                "setting `ca_file` = `{name}`: no such file in the resolver's `files` directory; \
                 put the CA's PEM file there or fix the name"
            ));
        }
        Err(e) => return Err(format!("setting `ca_file` = `{name}`: cannot read it: {e}")),
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| {
            format!("setting `ca_file` = `{name}`: not a PEM certificate file: {e}")
        })?;
        roots.add(cert).map_err(|e| {
            format!("setting `ca_file` = `{name}`: a certificate in it is not a usable CA: {e}")
        })?;
    }
    if roots.is_empty() {
        return Err(format!(
            "setting `ca_file` = `{name}` holds no certificate: give a PEM file with one or more \
             `-----BEGIN CERTIFICATE-----` blocks"
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

fn locate(settings: &Settings) -> Result<Locate, String> {
    match (settings.get("bind_dn"), settings.get("search_base")) {
        (Some(t), None) => {
            for key in ["search_filter", "search_scope"] {
                if settings.get(key).is_some() {
                    return Err(format!(
                        "setting `{key}` has no use with `bind_dn`: users are bound directly; \
                         remove it, or replace `bind_dn` with `search_base`"
                    ));
                }
            }
            let t = template("bind_dn", t, &["user"])?;
            if !t.contains("{user}") {
                return Err(format!(
                    "setting `bind_dn` = `{t}` does not contain `{{user}}`: write a DN template \
                     such as `uid={{user}},ou=people,dc=example,dc=org`"
                ));
            }
            Ok(Locate::Template(t))
        }
        (None, Some(base)) => {
            let filter = template(
                "search_filter",
                settings.get_or("search_filter", DEFAULT_SEARCH_FILTER),
                &["user"],
            )?;
            if !filter.contains("{user}") {
                return Err(format!(
                    "setting `search_filter` = `{filter}` does not contain `{{user}}`: write a \
                     filter such as `(uid={{user}})`"
                ));
            }
            Ok(Locate::Search {
                base: non_empty(settings, "search_base", base)?,
                filter,
                scope: scope(settings, "search_scope")?,
            })
        }
        (Some(_), Some(_)) => Err("settings `bind_dn` and `search_base` exclude each other: \
                                   keep `bind_dn` to bind with a DN template, or `search_base` \
                                   (with `search_filter`) to search for the user first"
            .to_string()),
        (None, None) => Err("set `bind_dn` (a DN template such as \
                             `uid={user},ou=people,dc=example,dc=org`) or `search_base` (where \
                             to search for users, with `search_filter`, default `(uid={user})`)"
            .to_string()),
    }
}

fn service(
    settings: &Settings,
    read_file: &dyn Fn(&str) -> io::Result<Option<String>>,
) -> Result<Option<Service>, String> {
    let password = match (
        settings.get("service_password"),
        settings.get("service_password_file"),
    ) {
        (Some(_), Some(_)) => {
            return Err(
                "settings `service_password` and `service_password_file` exclude each \
                        other: keep one"
                    .to_string(),
            );
        }
        (Some(p), None) => Some(p.to_string()),
        (None, Some(name)) => match read_file(name) {
            Ok(Some(text)) => Some(text.trim_end_matches(['\r', '\n']).to_string()),
            Ok(None) => {
                return Err(format!(
                    "setting `service_password_file` = `{name}`: no such file in the \
                     resolver's `files` directory"
                ));
            }
            Err(e) => {
                return Err(format!(
                    "setting `service_password_file` = `{name}`: cannot read it: {e}"
                ));
            }
        },
        (None, None) => None,
    };
    match (settings.get("service_dn"), password) {
        (None, None) => Ok(None),
        (Some(dn), Some(password)) => {
            let dn = non_empty(settings, "service_dn", dn)?;
            if password.is_empty() {
                return Err(
                    "the service account's password is empty: an empty password is an \
                            unauthenticated bind, which proves nothing; set the real password"
                        .to_string(),
                );
            }
            Ok(Some(Service { dn, password }))
        }
        (Some(dn), None) => Err(format!(
            "setting `service_dn` = `{dn}` needs `service_password` or `service_password_file`"
        )),
        (None, Some(_)) => Err("a service password is set without `service_dn`: set \
                                `service_dn` to the DN of the account that searches"
            .to_string()),
    }
}

fn non_empty(settings: &Settings, key: &str, value: &str) -> Result<String, String> {
    settings.require(key, "a DN such as `ou=people,dc=example,dc=org`")?;
    Ok(value.trim().to_string())
}

fn scope(settings: &Settings, key: &str) -> Result<Scope, String> {
    match settings.get(key) {
        None => Ok(Scope::Sub),
        Some(v) => Scope::parse(v).ok_or_else(|| {
            format!("setting `{key}` = `{v}` is not a scope: use `sub`, `one` or `base`")
        }),
    }
}

fn attribute(settings: &Settings, key: &str, default: &str) -> Result<String, String> {
    let value = settings.get_or(key, default).trim();
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b';');
    if ok {
        Ok(value.to_string())
    } else {
        Err(format!(
            "setting `{key}` = `{value}` is not an attribute name: use letters, digits and `-`, \
             such as `{}`",
            if default.is_empty() {
                "memberOf"
            } else {
                default
            }
        ))
    }
}

/// Checks that `value` uses only the placeholders in `allowed` and, for filters, that it parses
/// once they are filled in.
fn template(key: &str, value: &str, allowed: &[&str]) -> Result<String, String> {
    let value = value.trim();
    let mut rest = value;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("setting `{key}` = `{value}` has a `{{` without `}}`"))?;
        let name = &after[..close];
        if !allowed.contains(&name) {
            let names: Vec<String> = allowed.iter().map(|a| format!("`{{{a}}}`")).collect();
            return Err(format!(
                "setting `{key}` = `{value}` has the unknown placeholder `{{{name}}}`: use {}",
                names.join(" or ")
            ));
        }
        rest = &after[close + 1..];
    }
    if key.ends_with("filter") {
        let sample = fill(value, &[("user", "x"), ("dn", "cn=x")]);
        Filter::parse(&sample).map_err(|e| {
            format!(
                "setting `{key}` = `{value}` is not an LDAP filter ({e}): write one such as \
                 `(uid={{user}})`"
            )
        })?;
    }
    Ok(value.to_string())
}

/// Replaces each `{name}` with its value, escaped for a filter.
pub(crate) fn fill_filter(template: &str, values: &[(&str, &str)]) -> String {
    let escaped: Vec<(&str, String)> = values
        .iter()
        .map(|(k, v)| (*k, filter::escape(v)))
        .collect();
    let refs: Vec<(&str, &str)> = escaped.iter().map(|(k, v)| (*k, v.as_str())).collect();
    fill(template, &refs)
}

fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    fn no_files(_: &str) -> io::Result<Option<String>> {
        Ok(None)
    }

    fn check(pairs: &[(&str, &str)]) -> Result<Config, String> {
        Config::from_settings(&settings(pairs), &no_files)
    }

    const BASE: &[(&str, &str)] = &[
        ("servers", "ldap://127.0.0.1:3890"),
        ("bind_dn", "uid={user},ou=people,dc=example,dc=org"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<_> = BASE.to_vec();
        for (k, val) in extra {
            v.retain(|(key, _)| key != k);
            v.push((k, val));
        }
        v
    }

    #[test]
    fn minimal_settings_take_the_defaults() {
        let c = check(BASE).unwrap();
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.cache_seconds, 0);
        assert_eq!(c.id_attr, "uid");
        assert_eq!(c.display_name_attr.as_deref(), Some("cn"));
        assert_eq!(c.ssh_key_attr, "sshPublicKey");
        assert!(c.groups.is_none() && c.service.is_none() && c.tls.is_none());
        assert!(c.has_plaintext_server());
        assert_eq!(
            c.servers,
            [Server {
                url: "ldap://127.0.0.1:3890".into(),
                host: "127.0.0.1".into(),
                port: 3890,
                security: Security::None,
                tls_name: None,
            }]
        );
    }

    #[test]
    fn server_urls_parse() {
        let c = check(&with(&[(
            "servers",
            "ldap://a, LDAP://[::1]:1389/, ldap://b.example:10389",
        )]))
        .unwrap();
        let hosts: Vec<_> = c
            .servers
            .iter()
            .map(|s| (s.host.as_str(), s.port))
            .collect();
        assert_eq!(hosts, [("a", 389), ("::1", 1389), ("b.example", 10389)]);
    }

    #[test]
    fn every_error_names_the_setting_and_the_value() {
        /// Settings added to `BASE`, and words the error must contain.
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: &[Case<'_>] = &[
            (
                &[("servers", "http://x")],
                &["`servers`", "http://x", "ldap://HOST"],
            ),
            (
                &[("servers", "ldap://x:99999")],
                &["`servers`", "ldap://x:99999", "port"],
            ),
            (&[("servers", "ldap://:389")], &["`servers`", "no host"]),
            (&[("servers", " , ")], &["`servers`", "empty"]),
            (&[("timeout", "soon")], &["`timeout`", "soon", "30s"]),
            (&[("timeout", "0s")], &["`timeout`", "0s", "above 0"]),
            (&[("timeout", "2m")], &["`timeout`", "2m", "60s"]),
            (
                &[("starttls", "maybe")],
                &["`starttls`", "maybe", "true or false"],
            ),
            (
                &[("cache_seconds", "-1")],
                &["`cache_seconds`", "-1", "0 to 86400"],
            ),
            (
                &[("bind_dn", "cn=fixed")],
                &["`bind_dn`", "cn=fixed", "{user}"],
            ),
            (
                &[("bind_dn", "uid={name}")],
                &["`bind_dn`", "{name}", "`{user}`"],
            ),
            (
                &[("search_base", "dc=x")],
                &["`bind_dn`", "`search_base`", "exclude"],
            ),
            (
                &[("search_filter", "(uid={user})")],
                &["`search_filter`", "no use"],
            ),
            (&[("group_attr", "cn")], &["`group_attr`", "`group_base`"]),
            (
                &[("group_base", "ou=g"), ("group_filter", "(member={dn}")],
                &["`group_filter`", "(member={dn}", "not an LDAP filter"],
            ),
            (
                &[("group_base", "ou=g"), ("group_scope", "deep")],
                &["`group_scope`", "deep", "sub"],
            ),
            (
                &[("id_attr", "u id")],
                &["`id_attr`", "u id", "attribute name"],
            ),
            (
                &[("service_dn", "cn=svc")],
                &["`service_dn`", "cn=svc", "service_password"],
            ),
            (&[("service_password", "x")], &["`service_dn`"]),
            (
                &[("service_dn", "cn=svc"), ("service_password", "")],
                &["empty password"],
            ),
            (
                &[("service_password_file", "pw")],
                &["`service_password_file`", "pw", "no such"],
            ),
            (&[("ca_file", "ca.pem")], &["`ca_file`", "ca.pem", "no use"]),
            (&[("starttls", "true")], &["`ca_file`", "missing"]),
            (
                &[("servers", "ldaps://x"), ("ca_file", "ca.pem")],
                &["`ca_file`", "ca.pem", "no such file"],
            ),
            (&[("tls_server_name", "x y")], &["`tls_server_name`", "x y"]),
            (&[("colour", "blue")], &["`colour`", "`servers`"]),
        ];
        for (extra, wanted) in cases {
            let e = check(&with(extra)).expect_err(&format!("{extra:?} accepted"));
            for w in *wanted {
                assert!(e.contains(w), "{extra:?}: `{e}` lacks `{w}`");
            }
        }
        let e = check(&[("bind_dn", "uid={user}")]).unwrap_err();
        assert!(e.contains("`servers`") && e.contains("missing"), "{e}");
        let e = check(&[("servers", "ldap://x")]).unwrap_err();
        assert!(
            e.contains("`bind_dn`") && e.contains("`search_base`"),
            "{e}"
        );
    }

    #[test]
    fn a_ca_file_that_is_not_pem_is_refused() {
        let read = |_: &str| Ok(Some("hello".to_string()));
        let e = Config::from_settings(
            &settings(&with(&[("servers", "ldaps://x"), ("ca_file", "ca.pem")])),
            &read,
        )
        .unwrap_err();
        assert!(
            e.contains("`ca_file`") && e.contains("no certificate"),
            "{e}"
        );
    }

    #[test]
    fn search_mode_and_groups_take_their_defaults() {
        let c = check(&[
            ("servers", "ldap://x"),
            ("search_base", "ou=people,dc=example,dc=org"),
            ("group_base", "ou=groups,dc=example,dc=org"),
            ("service_dn", "cn=svc"),
            ("service_password", "s3cret"),
            ("display_name_attr", ""),
            ("cache_seconds", "60"),
        ])
        .unwrap();
        assert!(matches!(
            &c.locate,
            Locate::Search { filter, scope: Scope::Sub, .. } if filter == DEFAULT_SEARCH_FILTER
        ));
        let g = c.groups.unwrap();
        assert_eq!(
            (g.filter.as_str(), g.attr.as_str()),
            ("(member={dn})", "cn")
        );
        assert_eq!(c.display_name_attr, None);
        assert_eq!(c.cache_seconds, 60);
        assert_eq!(c.service.unwrap().password, "s3cret");
    }

    #[test]
    fn filled_templates_escape_the_user() {
        assert_eq!(
            fill_filter("(&(uid={user})(x={user}))", &[("user", "a*)(")]),
            "(&(uid=a\\2a\\29\\28)(x=a\\2a\\29\\28))"
        );
    }
}
