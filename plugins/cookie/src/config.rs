//! The operator's settings, checked once in `init` and turned into a typed [`Config`].

use std::io;
use std::time::Duration;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use orca_sdk::Settings;

use crate::checker::Url;
use crate::env::{Env, random_bytes};
use crate::value::MIN_KEY_LEN;

/// Every setting this resolver reads.
const KNOWN: &[&str] = &[
    "cookie",
    "ttl",
    "session_cache",
    "key",
    "key_file",
    "anonymous",
    "anonymous_groups",
    "token_url",
    "token_cookie",
    "token_cache",
    "token_timeout",
];

/// The session cookie's name when `cookie` is not set.
pub(crate) const DEFAULT_COOKIE: &str = "orca_session";
/// How long a session lasts when `ttl` is not set.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(12 * 3600);
/// How long the gateway may reuse a verified session's answer when `session_cache` is not set.
pub(crate) const DEFAULT_SESSION_CACHE: Duration = Duration::from_secs(30);
/// The longest `session_cache`.
const MAX_SESSION_CACHE: Duration = Duration::from_secs(3600);
/// The longest `ttl`: browsers cap a cookie's `Max-Age` at 400 days.
const MAX_TTL: Duration = Duration::from_secs(400 * 86_400);
/// The store key of the generated signing key, shared by every instance and kept across
/// restarts.
pub(crate) const GENERATED_KEY: &str = "hmac-key";
/// The cookie carrying an external token when `token_cookie` is not set.
pub(crate) const DEFAULT_TOKEN_COOKIE: &str = "token";
/// How long a token checker's positive answer is reused when `token_cache` is not set.
pub(crate) const DEFAULT_TOKEN_CACHE: Duration = Duration::from_secs(60);
/// How long a negative answer (a rejection or a failure) is reused, at most.
pub(crate) const NEGATIVE_TOKEN_CACHE: Duration = Duration::from_secs(10);
/// How long one call of the token checker may take when `token_timeout` is not set.
pub(crate) const DEFAULT_TOKEN_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest `token_timeout`: far beyond any sensible per-call deadline of the gateway.
const MAX_TOKEN_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest cookie name the WIT `issued` record accepts.
const MAX_COOKIE_NAME: usize = 64;

/// The resolver's configuration, ready to use.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Name of the session cookie.
    pub(crate) cookie: String,
    /// Session lifetime, whole seconds.
    pub(crate) ttl_seconds: u32,
    /// How long the gateway may reuse the answer for a verified session cookie, whole seconds.
    pub(crate) session_cache_seconds: u32,
    /// The HMAC key (never logged: see `Codec`'s `Debug`).
    pub(crate) key: Key,
    /// Give visitors without a session an anonymous id.
    pub(crate) anonymous: bool,
    /// Groups of anonymous visitors.
    pub(crate) anonymous_groups: Vec<String>,
    /// The external token checker, if configured.
    pub(crate) token: Option<TokenConfig>,
}

/// The external token checker's settings.
#[derive(Debug, Clone)]
pub(crate) struct TokenConfig {
    /// Where to POST tokens.
    pub(crate) url: Url,
    /// The cookie holding the token.
    pub(crate) cookie: String,
    /// How long a positive answer is reused.
    pub(crate) cache: Duration,
    /// Deadline for one check.
    pub(crate) timeout: Duration,
}

/// Key bytes whose `Debug` shows only the length.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Key(pub(crate) Vec<u8>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({} bytes)", self.0.len())
    }
}

impl Config {
    /// Checks `settings`; `read_file` reads a file of the granted `/files` directory
    /// (`Ok(None)` when absent) and `env` holds the generated key when none is configured.
    pub(crate) fn from_settings(
        settings: &Settings,
        env: &dyn Env,
        read_file: &dyn Fn(&str) -> io::Result<Option<String>>,
    ) -> Result<Config, String> {
        settings.only(KNOWN)?;
        let cookie = cookie_name(settings, "cookie", DEFAULT_COOKIE)?;
        let ttl = settings.duration("ttl", DEFAULT_TTL)?;
        if ttl < Duration::from_secs(1) || ttl > MAX_TTL {
            return Err(format!(
                "setting `ttl` = `{}` is out of range: use from 1s to 400d",
                settings.get_or("ttl", "")
            ));
        }
        let ttl_seconds = u32::try_from(ttl.as_secs())
            .map_err(|_| "setting `ttl` does not fit in seconds".to_string())?;
        let session_cache = settings.duration("session_cache", DEFAULT_SESSION_CACHE)?;
        if session_cache > MAX_SESSION_CACHE {
            return Err(format!(
                "setting `session_cache` = `{}` is too long: use from 0s (check every request) \
                 to 1h",
                settings.get_or("session_cache", "")
            ));
        }
        let session_cache_seconds = u32::try_from(session_cache.as_secs()).unwrap_or(u32::MAX);
        let key = key(settings, env, read_file)?;
        let anonymous = settings.bool("anonymous", false)?;
        let anonymous_groups = settings
            .list("anonymous_groups")
            .into_iter()
            .map(str::to_string)
            .collect();
        let token = match settings.get("token_url") {
            None => {
                for dependent in ["token_cookie", "token_cache", "token_timeout"] {
                    if settings.get(dependent).is_some() {
                        return Err(format!(
                            "setting `{dependent}` needs `token_url`: set `token_url` to the \
                             checker's `http://host:port/path`, or remove `{dependent}`"
                        ));
                    }
                }
                None
            }
            Some(text) => Some(TokenConfig {
                url: Url::parse(text)
                    .map_err(|e| format!("setting `token_url` = `{text}`: {e}"))?,
                cookie: cookie_name(settings, "token_cookie", DEFAULT_TOKEN_COOKIE)?,
                cache: settings.duration("token_cache", DEFAULT_TOKEN_CACHE)?,
                timeout: token_timeout(settings)?,
            }),
        };
        Ok(Config {
            cookie,
            ttl_seconds,
            session_cache_seconds,
            key,
            anonymous,
            anonymous_groups,
            token,
        })
    }
}

/// A cookie name as the WIT `issued` record accepts it.
fn cookie_name(settings: &Settings, setting: &str, default: &str) -> Result<String, String> {
    let name = settings.get_or(setting, default);
    let fits = !name.is_empty()
        && name.len() <= MAX_COOKIE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if fits {
        Ok(name.to_string())
    } else {
        Err(format!(
            "setting `{setting}` = `{name}` is not a cookie name: use 1 to {MAX_COOKIE_NAME} \
             letters, digits, `-` or `_`"
        ))
    }
}

fn token_timeout(settings: &Settings) -> Result<Duration, String> {
    let timeout = settings.duration("token_timeout", DEFAULT_TOKEN_TIMEOUT)?;
    if timeout.is_zero() || timeout > MAX_TOKEN_TIMEOUT {
        return Err(format!(
            "setting `token_timeout` = `{}` is out of range: use from 1ms to 60s",
            settings.get_or("token_timeout", "")
        ));
    }
    Ok(timeout)
}

/// The signing key: `key`, or the file `key_file`, or one generated once and kept in the store.
fn key(
    settings: &Settings,
    env: &dyn Env,
    read_file: &dyn Fn(&str) -> io::Result<Option<String>>,
) -> Result<Key, String> {
    match (settings.get("key"), settings.get("key_file")) {
        (Some(_), Some(_)) => Err(
            "settings `key` and `key_file` are both set: keep one (or neither, to use a key \
             generated once and kept in the state directory)"
                .to_string(),
        ),
        (Some(text), None) => decode_key(text).map_err(|e| format!("setting `key`: {e}")),
        (None, Some(name)) => {
            let text = match read_file(name) {
                Ok(Some(text)) => text,
                Ok(None) => {
                    return Err(format!(
                        "setting `key_file` = `{name}`: no such file in the resolver's `files` \
                         directory; create it, or grant the directory that holds it"
                    ));
                }
                Err(e) => return Err(format!("setting `key_file` = `{name}`: {e}")),
            };
            decode_key(&text).map_err(|e| format!("setting `key_file` = `{name}`: {e}"))
        }
        (None, None) => {
            let mut failure = None;
            let bytes = env.get_or_add(GENERATED_KEY, &mut || {
                random_bytes(MIN_KEY_LEN).unwrap_or_else(|e| {
                    failure = Some(e);
                    Vec::new()
                })
            });
            if let Some(e) = failure {
                return Err(format!("cannot generate a signing key: {e}"));
            }
            if bytes.len() < MIN_KEY_LEN {
                return Err(format!(
                    "the stored signing key `{GENERATED_KEY}` is {} bytes, fewer than \
                     {MIN_KEY_LEN}: remove it from this resolver's store in the state \
                     directory so a new one is generated, or set `key`",
                    bytes.len()
                ));
            }
            Ok(Key(bytes))
        }
    }
}

/// Standard or URL-safe base64, padded or not, surrounding white space ignored.
fn decode_key(text: &str) -> Result<Key, String> {
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let text = text.trim();
    let bytes = GeneralPurpose::new(&alphabet::STANDARD, config)
        .decode(text)
        .or_else(|_| GeneralPurpose::new(&alphabet::URL_SAFE, config).decode(text))
        .map_err(|_| {
            "the key is not base64: make one with `openssl rand -base64 32`".to_string()
        })?;
    if bytes.len() < MIN_KEY_LEN {
        return Err(format!(
            "the key is {} bytes; it needs at least {MIN_KEY_LEN}: make one with \
             `openssl rand -base64 32`",
            bytes.len()
        ));
    }
    Ok(Key(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::fake::FakeEnv;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    fn no_files(_: &str) -> io::Result<Option<String>> {
        Ok(None)
    }

    fn config(pairs: &[(&str, &str)]) -> Result<Config, String> {
        Config::from_settings(&settings(pairs), &FakeEnv::new(), &no_files)
    }

    const KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.cookie, "orca_session");
        assert_eq!(c.ttl_seconds, 12 * 3600);
        assert!(!c.anonymous);
        assert!(c.anonymous_groups.is_empty());
        assert!(c.token.is_none());
        assert_eq!(c.key.0.len(), 32);
    }

    #[test]
    fn the_generated_key_is_made_once_and_shared() {
        let env = FakeEnv::new();
        let a = Config::from_settings(&settings(&[]), &env, &no_files).unwrap();
        let b = Config::from_settings(&settings(&[]), &env, &no_files).unwrap();
        assert_eq!(a.key, b.key);
        assert_eq!(env.keys(), ["hmac-key"]);
        assert_eq!(env.ttl("hmac-key"), None, "the key must not expire");
    }

    #[test]
    fn a_short_stored_key_is_an_error() {
        let env = FakeEnv::new();
        env.set("hmac-key", b"short", None);
        let e = Config::from_settings(&settings(&[]), &env, &no_files).unwrap_err();
        assert!(e.contains("`hmac-key` is 5 bytes"), "{e}");
    }

    #[test]
    fn keys_from_settings_and_files() {
        let c = config(&[("key", KEY_B64)]).unwrap();
        assert_eq!(c.key.0, b"0123456789abcdef0123456789abcdef");
        // URL-safe and unpadded is accepted too.
        let url_safe = config(&[("key", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY")]).unwrap();
        assert_eq!(url_safe.key, c.key);

        let read = |name: &str| -> io::Result<Option<String>> {
            Ok((name == "cookie.key").then(|| format!("{KEY_B64}\n")))
        };
        let env = FakeEnv::new();
        let from_file =
            Config::from_settings(&settings(&[("key_file", "cookie.key")]), &env, &read).unwrap();
        assert_eq!(from_file.key, c.key);
        assert!(
            env.keys().is_empty(),
            "no key is generated when one is configured"
        );

        let e =
            Config::from_settings(&settings(&[("key_file", "other")]), &env, &read).unwrap_err();
        assert!(
            e.contains("`key_file` = `other`") && e.contains("no such file"),
            "{e}"
        );
    }

    #[test]
    fn bad_keys_are_refused() {
        let e = config(&[("key", "c2hvcnQ=")]).unwrap_err();
        assert!(e.contains("`key`") && e.contains("5 bytes"), "{e}");
        let e = config(&[("key", "not base64!")]).unwrap_err();
        assert!(e.contains("not base64"), "{e}");
        let e = config(&[("key", KEY_B64), ("key_file", "k")]).unwrap_err();
        assert!(e.contains("both"), "{e}");
    }

    #[test]
    fn unknown_and_bad_settings_are_named() {
        assert!(config(&[("tll", "1h")]).unwrap_err().contains("`tll`"));
        assert!(
            config(&[("cookie", "a b")])
                .unwrap_err()
                .contains("`cookie` = `a b`")
        );
        assert!(config(&[("cookie", "")]).is_err());
        assert!(
            config(&[("ttl", "0s")])
                .unwrap_err()
                .contains("`ttl` = `0s`")
        );
        assert!(config(&[("ttl", "500d")]).is_err());
        assert!(config(&[("anonymous", "sometimes")]).is_err());
        assert!(
            config(&[("session_cache", "2h")])
                .unwrap_err()
                .contains("`session_cache` = `2h` is too long")
        );
        assert_eq!(
            config(&[("session_cache", "0s")])
                .unwrap()
                .session_cache_seconds,
            0
        );
        let e = config(&[("token_cookie", "t")]).unwrap_err();
        assert!(e.contains("needs `token_url`"), "{e}");
    }

    #[test]
    fn token_settings() {
        let c = config(&[
            ("token_url", "http://127.0.0.1:8000/check"),
            ("token_cookie", "jhub"),
            ("token_cache", "5m"),
            ("token_timeout", "500ms"),
            ("anonymous", "true"),
            ("anonymous_groups", "guests, demo"),
        ])
        .unwrap();
        let t = c.token.unwrap();
        assert_eq!(t.url.to_string(), "http://127.0.0.1:8000/check");
        assert_eq!(t.cookie, "jhub");
        assert_eq!(t.cache, Duration::from_secs(300));
        assert_eq!(t.timeout, Duration::from_millis(500));
        assert!(c.anonymous);
        assert_eq!(c.anonymous_groups, ["guests", "demo"]);

        let d = config(&[("token_url", "http://checker/")])
            .unwrap()
            .token
            .unwrap();
        assert_eq!(d.cookie, "token");
        assert_eq!(d.cache, Duration::from_secs(60));
        assert_eq!(d.timeout, Duration::from_secs(2));

        let e = config(&[("token_url", "https://checker/")]).unwrap_err();
        assert!(
            e.contains("`token_url` = `https://checker/`") && e.contains("plain HTTP"),
            "{e}"
        );
        assert!(config(&[("token_url", "http://c/"), ("token_timeout", "0s")]).is_err());
    }
}
