//! The operator's settings, checked once in `init`.

use std::collections::BTreeMap;
use std::time::Duration;

use orca_sdk::Settings;

use crate::keys::check_user;

/// Where the keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// `<user>.pub` per user.
    PerUser,
    /// One `authorized_keys`-style file whose lines name their users with `user="…"`.
    AuthorizedKeys(String),
}

/// The resolver's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// Where the keys are.
    pub(crate) source: Source,
    /// Groups per user (`groups:<user>`).
    pub(crate) groups: BTreeMap<String, Vec<String>>,
    /// How long the gateway may reuse an `allow` (`cache`).
    pub(crate) cache_seconds: u32,
}

/// The longest `cache`: a day. Longer would keep a removed key working for too long.
const MAX_CACHE: Duration = Duration::from_secs(86_400);

impl Config {
    /// Checks `settings`.
    pub(crate) fn from_settings(settings: &Settings) -> Result<Config, String> {
        settings.only_with_prefixes(&["authorized_keys", "cache"], &["groups:"])?;
        let source = match settings.get("authorized_keys") {
            None => Source::PerUser,
            Some(name) => {
                orca_sdk::files::path(name)
                    .map_err(|e| format!("setting `authorized_keys` = `{name}`: {e}"))?;
                Source::AuthorizedKeys(name.to_string())
            }
        };
        let mut groups = BTreeMap::new();
        for (user, list) in settings.with_prefix("groups:") {
            check_user(user).map_err(|e| format!("setting `groups:{user}`: {e}"))?;
            let list = list
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect();
            groups.insert(user.to_string(), list);
        }
        Ok(Config {
            source,
            groups,
            cache_seconds: cache_seconds(settings)?,
        })
    }
}

/// `cache` as whole seconds: a duration (`30s`, `5m`) or a bare number of seconds.
fn cache_seconds(settings: &Settings) -> Result<u32, String> {
    let Some(text) = settings.get("cache") else {
        return Ok(0);
    };
    let duration = match text.trim().parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => settings.duration("cache", Duration::ZERO)?,
    };
    if duration > MAX_CACHE {
        return Err(format!(
            "setting `cache` = `{text}` is too long: use at most 1d, or 0 to ask every time"
        ));
    }
    u32::try_from(duration.as_secs()).map_err(|_| format!("setting `cache` = `{text}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, String> {
        Config::from_settings(&Settings::new(
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        ))
    }

    #[test]
    fn defaults_read_one_file_per_user_and_cache_nothing() {
        let c = config(&[]).unwrap();
        assert_eq!(c.source, Source::PerUser);
        assert!(c.groups.is_empty());
        assert_eq!(c.cache_seconds, 0);
    }

    #[test]
    fn all_settings() {
        let c = config(&[
            ("authorized_keys", "authorized_keys"),
            ("cache", "5m"),
            ("groups:alice", "staff, admins,,"),
            ("groups:bob", ""),
        ])
        .unwrap();
        assert_eq!(c.source, Source::AuthorizedKeys("authorized_keys".into()));
        assert_eq!(c.cache_seconds, 300);
        assert_eq!(c.groups["alice"], ["staff", "admins"]);
        assert!(c.groups["bob"].is_empty());
        assert_eq!(config(&[("cache", "45")]).unwrap().cache_seconds, 45);
    }

    #[test]
    fn bad_settings_are_named() {
        for (pairs, expected) in [
            (vec![("authorized", "x")], "unknown setting `authorized`"),
            (
                vec![("authorized_keys", "../etc/passwd")],
                "`authorized_keys` = `../etc/passwd`",
            ),
            (
                vec![("authorized_keys", "/etc/ssh/keys")],
                "`authorized_keys` = `/etc/ssh/keys`",
            ),
            (vec![("cache", "soon")], "`cache` = `soon`"),
            (vec![("cache", "2d")], "at most 1d"),
            (vec![("groups:../x", "a")], "setting `groups:../x`"),
        ] {
            let e = config(&pairs).unwrap_err();
            assert!(e.contains(expected), "{pairs:?}: {e}");
        }
    }
}
