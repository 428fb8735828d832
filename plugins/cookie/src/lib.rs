//! `cookie`: Orca's bundled session resolver.
//!
//! It issues signed session cookies after a login (`session.issue`), recognises them on later
//! requests (`http.resolve`) and forgets them at logout (`session.revoke`). Optionally it turns
//! an external token (a cookie set by another system) into a session by asking an HTTP checker,
//! and gives visitors without a session an anonymous id.
//!
//! ```text
//! HttpRequest ─▶ session cookie valid? ──yes──▶ allow(identity in the cookie)
//!                     │ no (absent, tampered, expired, revoked)
//!                     ▼
//!                token cookie + token_url? ──yes──▶ checker: 200 allow + our cookie │ else deny
//!                     │ no
//!                     ▼
//!                anonymous? ──yes──▶ allow(anon-…) + our cookie
//!                     │ no
//!                     ▼
//!                    pass
//! ```
//!
//! Modules in flow order: `config` (settings), `value` (the signed cookie format),
//! `checker` (the token checker's HTTP client), `session` (the decisions). `env` is the
//! host boundary: only this file talks to the SDK's host imports, so everything else is tested
//! natively against an in-memory host.

/// The external token checker.
mod checker;
/// The settings, checked once.
mod config;
/// The host boundary: store, log, clock.
mod env;
/// The decisions.
mod session;
/// The signed cookie value.
mod value;

/// The cookie format for `fuzz/`'s `cookie_value` target, which forges, alters and replays
/// values against the code that verifies them.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use orca_sdk::Identity;

    use crate::value::{Claims, Codec};

    /// The value the plugin would set for `who`, valid from `now` for `ttl` seconds.
    pub fn seal(key: &[u8], who: &Identity, now: u64, ttl: u32) -> Result<String, String> {
        Codec::new(key)?.seal(&Claims::new(who, now, ttl, "fuzz-session".to_string()))
    }

    /// The identity in `value` if it was signed with `key` and has not expired at `now`.
    pub fn open(key: &[u8], value: &str, now: u64) -> Result<Identity, String> {
        let claims = Codec::new(key)?
            .open(value, now)
            .map_err(|e| e.to_string())?;
        Ok(claims.identity())
    }
}

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orca_sdk::{Http, HttpRequest, Identity, Issued, Resolver, Session, Settings, Verdict};

use crate::config::Config;
use crate::env::Env;
use crate::session::Sessions;

/// The resolver: one per instance, made by `init`.
#[derive(Debug)]
pub struct Cookie {
    sessions: Sessions,
}

impl Resolver for Cookie {
    fn init(settings: Settings) -> Result<Self, String> {
        let config = Config::from_settings(&settings, &Host, &orca_sdk::files::read_to_string)?;
        Ok(Cookie {
            sessions: Sessions::new(config)?,
        })
    }
}

impl Http for Cookie {
    fn resolve(&self, request: HttpRequest) -> Verdict {
        self.sessions.resolve(&request, &Host)
    }
}

impl Session for Cookie {
    fn issue(&self, who: Identity) -> Result<Issued, String> {
        self.sessions.issue(&who, &Host)
    }

    fn revoke(&self, request: HttpRequest) -> Vec<String> {
        self.sessions.revoke(&request, &Host)
    }
}

// Only for the component: a native `cdylib` cannot carry the WIT export names (`:` and `@`
// break the linker's version script), and native builds exist only for the unit tests.
#[cfg(target_family = "wasm")]
orca_sdk::export!(Cookie: http, session);

/// The gateway, through the SDK's host imports.
struct Host;

impl Env for Host {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        orca_sdk::store::get(key)
    }

    fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) {
        orca_sdk::store::set(key, value, ttl);
    }

    fn delete(&self, key: &str) {
        orca_sdk::store::delete(key);
    }

    fn get_or_add(&self, key: &str, make: &mut dyn FnMut() -> Vec<u8>) -> Vec<u8> {
        orca_sdk::store::get_or_add(key, make)
    }

    fn debug(&self, message: &str) {
        orca_sdk::log::debug(message);
    }

    fn warn(&self, message: &str) {
        orca_sdk::log::warn(message);
    }

    fn now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}
