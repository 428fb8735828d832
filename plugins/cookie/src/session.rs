//! The resolver's decisions: recognise a session, ask the token checker, admit an anonymous
//! visitor, issue and revoke sessions.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use orca_sdk::{HttpRequest, Identity, Issued, Verdict};
use sha2::{Digest, Sha256};

use crate::checker::{self, Outcome};
use crate::config::{Config, NEGATIVE_TOKEN_CACHE, TokenConfig};
use crate::env::{Env, random_bytes};
use crate::value::{Claims, Codec, Rejected};

/// Random bytes in a session id and an anonymous id (22 base64url characters).
const ID_BYTES: usize = 16;
/// What anonymous ids start with.
const ANONYMOUS_PREFIX: &str = "anon-";

/// The configured resolver.
#[derive(Debug)]
pub(crate) struct Sessions {
    config: Config,
    codec: Codec,
}

impl Sessions {
    /// A resolver for `config`; an error when its settings cannot produce a cookie.
    pub(crate) fn new(config: Config) -> Result<Self, String> {
        let codec = Codec::new(&config.key.0)?;
        let sessions = Sessions { config, codec };
        if sessions.config.anonymous {
            // Fail at start-up, not on the first visitor, when the groups make cookies too big.
            let sample = sessions.anonymous_identity("A".repeat(22));
            let claims = Claims::new(&sample, 0, sessions.config.ttl_seconds, "A".repeat(22));
            sessions
                .codec
                .seal(&claims)
                .map_err(|e| format!("setting `anonymous_groups`: {e}"))?;
        }
        Ok(sessions)
    }

    /// `http.resolve`: our session, else the token checker, else an anonymous id, else pass.
    pub(crate) fn resolve(&self, request: &HttpRequest, env: &dyn Env) -> Verdict {
        if let Some(claims) = self.session(request, env) {
            // Checking a session is a MAC and a revocation lookup, but it runs on every request
            // of every page: the gateway may reuse the answer for the same cookies a little
            // while (never past the session's end). Its logout drops what it cached.
            // `now` is whole seconds, so up to a second has passed of it already: count one
            // second less, or a cached answer could outlive the cookie's `exp`.
            let left = claims.exp.saturating_sub(env.now()).saturating_sub(1);
            let seconds = u64::from(self.config.session_cache_seconds).min(left);
            return Verdict::allow_cached(
                claims.identity(),
                u32::try_from(seconds).unwrap_or(u32::MAX),
            );
        }
        if let Some(token) = &self.config.token
            && let Some(value) = request.cookie(&token.cookie).filter(|v| !v.is_empty())
        {
            return self.check_token(token, value, env);
        }
        if self.config.anonymous {
            return self.anonymous(env);
        }
        Verdict::Pass
    }

    /// `session.issue`: a fresh session for `who`.
    pub(crate) fn issue(&self, who: &Identity, env: &dyn Env) -> Result<Issued, String> {
        let sid = random_id()?;
        let claims = Claims::new(who, env.now(), self.config.ttl_seconds, sid);
        Ok(Issued {
            name: self.config.cookie.clone(),
            value: self.codec.seal(&claims)?,
            max_age_seconds: self.config.ttl_seconds,
        })
    }

    /// `session.revoke`: the request's sessions are never recognised again; a cached token
    /// answer is forgotten. Returns the cookies the browser should drop.
    pub(crate) fn revoke(&self, request: &HttpRequest, env: &dyn Env) -> Vec<String> {
        let now = env.now();
        for (_, value) in own_cookies(request, &self.config.cookie) {
            if let Ok(claims) = self.open(value, env) {
                // The entry only has to outlive the cookie: after that the MAC check refuses it.
                let left = Duration::from_secs(claims.exp.saturating_sub(now).max(1));
                env.set(&revoked_key(&claims.sid), b"1", Some(left));
                env.debug(&format!(
                    "session {} of `{}` revoked",
                    claims.sid, claims.id
                ));
            }
        }
        let mut names = vec![self.config.cookie.clone()];
        if let Some(token) = &self.config.token {
            if let Some(value) = request.cookie(&token.cookie) {
                env.delete(&token_key(value));
            }
            names.push(token.cookie.clone());
        }
        names
    }

    /// The first of the request's session cookies that is ours, intact, current and not
    /// revoked; the others are logged and ignored.
    fn session(&self, request: &HttpRequest, env: &dyn Env) -> Option<Claims> {
        for (name, value) in own_cookies(request, &self.config.cookie) {
            match self.open(value, env) {
                Ok(claims) => return Some(claims),
                Err(why) => env.debug(&format!("cookie `{name}` ignored: {why}")),
            }
        }
        None
    }

    fn open(&self, value: &str, env: &dyn Env) -> Result<Claims, Rejected> {
        let claims = self.codec.open(value, env.now())?;
        if env.get(&revoked_key(&claims.sid)).is_some() {
            return Err(Rejected::Revoked);
        }
        Ok(claims)
    }

    /// The checker's answer for `value`, from the store when asked recently.
    fn check_token(&self, token: &TokenConfig, value: &str, env: &dyn Env) -> Verdict {
        let key = token_key(value);
        let outcome = match env.get(&key).and_then(|bytes| decode_outcome(&bytes)) {
            Some(Outcome::User(user)) => Outcome::User(user),
            Some(Outcome::Denied(reason)) => Outcome::Denied(format!("{reason} (answer cached)")),
            Some(Outcome::Failed(reason)) => Outcome::Failed(format!("{reason} (answer cached)")),
            None => {
                let outcome = checker::check(&token.url, value, token.timeout);
                if let Outcome::Failed(reason) = &outcome {
                    env.warn(reason);
                }
                let ttl = match outcome {
                    Outcome::User(_) => token.cache,
                    Outcome::Denied(_) | Outcome::Failed(_) => {
                        token.cache.min(NEGATIVE_TOKEN_CACHE)
                    }
                };
                if !ttl.is_zero() {
                    env.set(&key, &encode_outcome(&outcome), Some(ttl));
                }
                outcome
            }
        };
        match outcome {
            Outcome::User(user) => {
                let who = Identity::new(user);
                match self.issue(&who, env) {
                    Ok(cookie) => Verdict::allow_with_cookie(who, cookie),
                    Err(e) => Verdict::deny(format!(
                        "cannot start a session for `{}` after {}: {e}",
                        who.id, token.url
                    )),
                }
            }
            Outcome::Denied(reason) | Outcome::Failed(reason) => Verdict::deny(reason),
        }
    }

    /// A new anonymous visitor, with a cookie so the id sticks.
    fn anonymous(&self, env: &dyn Env) -> Verdict {
        let issued = random_id().and_then(|id| {
            let who = self.anonymous_identity(id);
            self.issue(&who, env).map(|cookie| (who, cookie))
        });
        match issued {
            Ok((who, cookie)) => Verdict::allow_with_cookie(who, cookie),
            Err(e) => Verdict::deny(format!("cannot give an anonymous visitor an id: {e}")),
        }
    }

    fn anonymous_identity(&self, random: String) -> Identity {
        Identity::new(format!("{ANONYMOUS_PREFIX}{random}"))
            .with_groups(self.config.anonymous_groups.iter().cloned())
    }
}

/// The request's cookies named `name` (a browser may send several, from different domains).
fn own_cookies<'r>(
    request: &'r HttpRequest,
    name: &'r str,
) -> impl Iterator<Item = (&'r str, &'r str)> {
    request
        .cookies
        .iter()
        .filter(move |(n, _)| n == name)
        .map(|(n, v)| (n.as_str(), v.as_str()))
}

/// 22 base64url characters of fresh randomness.
fn random_id() -> Result<String, String> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes(ID_BYTES)?))
}

fn revoked_key(sid: &str) -> String {
    format!("revoked:{sid}")
}

/// The store key of a token's cached answer: a hash, so the store never holds tokens.
fn token_key(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut key = String::with_capacity(6 + 64);
    key.push_str("token:");
    for byte in digest {
        key.push_str(&format!("{byte:02x}"));
    }
    key
}

fn encode_outcome(outcome: &Outcome) -> Vec<u8> {
    match outcome {
        Outcome::User(user) => format!("user:{user}").into_bytes(),
        Outcome::Denied(reason) => format!("deny:{reason}").into_bytes(),
        Outcome::Failed(reason) => format!("fail:{reason}").into_bytes(),
    }
}

fn decode_outcome(bytes: &[u8]) -> Option<Outcome> {
    let text = std::str::from_utf8(bytes).ok()?;
    if let Some(user) = text.strip_prefix("user:") {
        Some(Outcome::User(user.to_string()))
    } else if let Some(reason) = text.strip_prefix("deny:") {
        Some(Outcome::Denied(reason.to_string()))
    } else {
        text.strip_prefix("fail:")
            .map(|reason| Outcome::Failed(reason.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use orca_sdk::{Client, Grant, Settings};

    use super::*;
    use crate::checker::tests::serve;
    use crate::env::fake::FakeEnv;

    const KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    fn sessions(env: &FakeEnv, pairs: &[(&str, &str)]) -> Sessions {
        let settings = Settings::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::from_settings(&settings, env, &|_| Ok(None)).unwrap();
        Sessions::new(config).unwrap()
    }

    fn request(cookies: &[(&str, &str)]) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            host: "shell.localhost".into(),
            image: Some("shell".into()),
            path: "/".into(),
            headers: vec![("user-agent".into(), "test".into())],
            cookies: cookies
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            client: Client {
                address: "192.0.2.7".into(),
                port: 40000,
            },
        }
    }

    fn allowed(verdict: Verdict) -> Grant {
        match verdict {
            Verdict::Allow(grant) => grant,
            other => panic!("expected allow, got {other:?}"),
        }
    }

    fn denied(verdict: Verdict) -> String {
        match verdict {
            Verdict::Deny(denial) => denial.reason,
            other => panic!("expected deny, got {other:?}"),
        }
    }

    fn passed(verdict: Verdict) {
        assert!(
            matches!(verdict, Verdict::Pass),
            "expected pass, got {verdict:?}"
        );
    }

    fn alice() -> Identity {
        Identity::new("alice")
            .with_display_name("Alice")
            .with_groups(["staff"])
            .with_images(["shell", "notebook"])
    }

    #[test]
    fn an_issued_cookie_is_recognised() {
        let env = FakeEnv::new();
        let s = sessions(&env, &[("ttl", "1h")]);
        let issued = s.issue(&alice(), &env).unwrap();
        assert_eq!(issued.name, "orca_session");
        assert_eq!(issued.max_age_seconds, 3600);
        let grant = allowed(s.resolve(&request(&[("orca_session", &issued.value)]), &env));
        assert_eq!(grant.who.id, "alice");
        assert_eq!(grant.who.display_name.as_deref(), Some("Alice"));
        assert_eq!(grant.who.groups, ["staff"]);
        assert_eq!(
            grant.who.images,
            Some(vec!["shell".into(), "notebook".into()])
        );
        assert_eq!(grant.cache_seconds, 30, "the default session_cache");
        assert!(grant.set_cookie.is_none());
    }

    #[test]
    fn a_session_answer_is_cacheable_but_never_past_its_end_nor_when_disabled() {
        let env = FakeEnv::new();
        let s = sessions(&env, &[("ttl", "20s"), ("session_cache", "1m")]);
        let issued = s.issue(&alice(), &env).unwrap();
        let grant = allowed(s.resolve(&request(&[("orca_session", &issued.value)]), &env));
        assert_eq!(
            grant.cache_seconds, 19,
            "capped by the session's remaining life, less the second already begun"
        );
        let s = sessions(&env, &[("session_cache", "0s")]);
        let issued = s.issue(&alice(), &env).unwrap();
        let grant = allowed(s.resolve(&request(&[("orca_session", &issued.value)]), &env));
        assert_eq!(grant.cache_seconds, 0);
    }

    #[test]
    fn no_cookie_passes_and_a_bad_one_is_logged_and_ignored() {
        let env = FakeEnv::new();
        let s = sessions(&env, &[]);
        passed(s.resolve(&request(&[]), &env));
        passed(s.resolve(&request(&[("other", "x")]), &env));
        passed(s.resolve(&request(&[("orca_session", "v1.garbage.here")]), &env));
        let lines = env.lines.borrow();
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("debug: cookie `orca_session` ignored:")),
            "{lines:?}"
        );
    }

    #[test]
    fn a_valid_cookie_among_stale_ones_is_found() {
        let env = FakeEnv::new();
        let s = sessions(&env, &[]);
        let issued = s.issue(&alice(), &env).unwrap();
        let r = request(&[("orca_session", "stale"), ("orca_session", &issued.value)]);
        assert_eq!(allowed(s.resolve(&r, &env)).who.id, "alice");
    }

    #[test]
    fn sessions_expire_after_ttl() {
        let env = FakeEnv::new();
        let s = sessions(&env, &[("ttl", "30m")]);
        let issued = s.issue(&alice(), &env).unwrap();
        let r = request(&[("orca_session", &issued.value)]);
        env.advance(Duration::from_secs(29 * 60));
        allowed(s.resolve(&r, &env));
        env.advance(Duration::from_secs(60));
        passed(s.resolve(&r, &env));
        assert!(env.lines.borrow().iter().any(|l| l.contains("expired")));
    }

    #[test]
    fn a_cookie_from_another_key_is_ignored() {
        let env = FakeEnv::new();
        let generated = sessions(&env, &[]);
        let configured = sessions(&env, &[("key", KEY_B64)]);
        let issued = configured.issue(&alice(), &env).unwrap();
        let r = request(&[("orca_session", &issued.value)]);
        allowed(configured.resolve(&r, &env));
        passed(generated.resolve(&r, &env));
        assert!(
            env.lines
                .borrow()
                .iter()
                .any(|l| l.contains("signature does not match"))
        );
    }

    #[test]
    fn instances_sharing_a_store_share_the_generated_key() {
        let env = FakeEnv::new();
        let issuer = sessions(&env, &[]);
        let other_instance = sessions(&env, &[]);
        let issued = issuer.issue(&alice(), &env).unwrap();
        allowed(other_instance.resolve(&request(&[("orca_session", &issued.value)]), &env));
    }

    #[test]
    fn a_revoked_session_is_refused_until_it_would_have_expired() {
        let env = FakeEnv::new();
        let s = sessions(&env, &[("ttl", "2h")]);
        let first = s.issue(&alice(), &env).unwrap();
        let second = s.issue(&alice(), &env).unwrap();
        env.advance(Duration::from_secs(1800));
        let logout = request(&[("orca_session", &first.value)]);
        assert_eq!(s.revoke(&logout, &env), ["orca_session"]);
        let revoked: Vec<String> = env
            .keys()
            .into_iter()
            .filter(|k| k.starts_with("revoked:"))
            .collect();
        assert_eq!(revoked.len(), 1);
        assert_eq!(
            env.ttl(&revoked[0]),
            Some(5400),
            "kept exactly as long as the cookie lives"
        );
        passed(s.resolve(&logout, &env));
        assert!(env.lines.borrow().iter().any(|l| l.contains("logged out")));
        // Another session of the same user is untouched.
        allowed(s.resolve(&request(&[("orca_session", &second.value)]), &env));
        // Revoking garbage or nothing still names the cookie to clear.
        assert_eq!(
            s.revoke(&request(&[("orca_session", "junk")]), &env),
            ["orca_session"]
        );
        assert_eq!(s.revoke(&request(&[]), &env), ["orca_session"]);
    }

    #[test]
    fn anonymous_visitors_get_an_id_that_sticks() {
        let env = FakeEnv::new();
        let s = sessions(
            &env,
            &[("anonymous", "true"), ("anonymous_groups", "guests,demo")],
        );
        let grant = allowed(s.resolve(&request(&[]), &env));
        let id = grant.who.id.clone();
        let random = id.strip_prefix("anon-").unwrap();
        assert_eq!(random.len(), 22);
        assert!(
            random
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(grant.who.groups, ["guests", "demo"]);
        let cookie = grant.set_cookie.unwrap();
        assert_eq!(cookie.name, "orca_session");
        assert_eq!(cookie.max_age_seconds, 12 * 3600);

        let again = allowed(s.resolve(&request(&[("orca_session", &cookie.value)]), &env));
        assert_eq!(again.who.id, id);
        assert_eq!(again.who.groups, ["guests", "demo"]);
        assert!(again.set_cookie.is_none());

        let other = allowed(s.resolve(&request(&[("orca_session", "tampered")]), &env));
        assert_ne!(other.who.id, id);
        assert!(other.set_cookie.is_some());
    }

    #[test]
    fn anonymous_groups_too_large_for_a_cookie_fail_at_init() {
        let env = FakeEnv::new();
        let groups: Vec<String> = (0..300).map(|i| format!("group{i}")).collect();
        let settings = Settings::new([
            ("anonymous".to_string(), "true".to_string()),
            ("anonymous_groups".to_string(), groups.join(",")),
        ]);
        let config = Config::from_settings(&settings, &env, &|_| Ok(None)).unwrap();
        let e = Sessions::new(config).unwrap_err();
        assert!(
            e.starts_with("setting `anonymous_groups`:") && e.contains("3000-byte"),
            "{e}"
        );
    }

    #[test]
    fn issue_refuses_what_cannot_be_a_cookie() {
        let env = FakeEnv::new();
        let s = sessions(&env, &[]);
        let groups: Vec<String> = (0..500).map(|i| format!("g{i}")).collect();
        let e = s
            .issue(&Identity::new("bob").with_groups(groups), &env)
            .unwrap_err();
        assert!(e.contains("3000-byte"), "{e}");
        assert!(s.issue(&Identity::new(""), &env).is_err());
    }

    #[test]
    fn random_cookie_values_never_panic_the_resolver() {
        let env = FakeEnv::new();
        let s = sessions(&env, &[]);
        let valid = s.issue(&alice(), &env).unwrap().value;
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 7;
            seed ^= seed >> 9;
            seed
        };
        for round in 0..5000 {
            let len = (next() % 120) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 2 == 0 {
                // Mutations of a valid value reach the deeper checks.
                bytes = valid.clone().into_bytes();
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
                bytes.truncate(bytes.len() - (next() as usize % 3));
            }
            let value = String::from_utf8_lossy(&bytes).into_owned();
            if value == valid {
                continue;
            }
            passed(s.resolve(&request(&[("orca_session", &value)]), &env));
            s.revoke(&request(&[("orca_session", &value)]), &env);
        }
    }

    #[test]
    fn a_good_token_becomes_our_session_and_is_cached() {
        // One reply only: a second connection would be refused, so the cache must answer.
        let (url, seen, server) = serve(vec![Some(
            b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nalice\n",
        )]);
        let env = FakeEnv::new();
        let s = sessions(
            &env,
            &[("token_url", &url.to_string()), ("token_cookie", "jhub")],
        );
        let r = request(&[("jhub", "secret token")]);
        let grant = allowed(s.resolve(&r, &env));
        assert_eq!(grant.who.id, "alice");
        let cookie = grant.set_cookie.unwrap();
        assert_eq!(cookie.name, "orca_session");
        assert!(seen.recv().unwrap().ends_with("token=secret+token"));
        server.join().unwrap();

        let key = token_key("secret token");
        assert_eq!(env.ttl(&key), Some(60));
        assert!(
            !env.keys().iter().any(|k| k.contains("secret")),
            "tokens are stored hashed"
        );
        assert_eq!(allowed(s.resolve(&r, &env)).who.id, "alice");

        // The session now stands on its own, without asking the checker.
        let with_session = request(&[("jhub", "secret token"), ("orca_session", &cookie.value)]);
        let grant = allowed(s.resolve(&with_session, &env));
        assert!(grant.set_cookie.is_none());

        // Logging out drops the session and the cached answer, and clears both cookies.
        assert_eq!(s.revoke(&with_session, &env), ["orca_session", "jhub"]);
        assert!(!env.keys().contains(&key));
    }

    #[test]
    fn a_rejected_token_is_denied_and_remembered_briefly() {
        let (url, _seen, server) = serve(vec![
            Some(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"),
            Some(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbob"),
        ]);
        let env = FakeEnv::new();
        let s = sessions(
            &env,
            &[("token_url", &url.to_string()), ("anonymous", "true")],
        );
        let r = request(&[("token", "t1")]);
        assert_eq!(
            denied(s.resolve(&r, &env)),
            format!("token rejected by {url}")
        );
        assert_eq!(env.ttl(&token_key("t1")), Some(10));
        assert_eq!(
            denied(s.resolve(&r, &env)),
            format!("token rejected by {url} (answer cached)")
        );
        env.advance(Duration::from_secs(11));
        assert_eq!(allowed(s.resolve(&r, &env)).who.id, "bob");
        server.join().unwrap();
        // No token cookie: the anonymous fallback.
        assert!(
            allowed(s.resolve(&request(&[]), &env))
                .who
                .id
                .starts_with("anon-")
        );
    }

    #[test]
    fn checker_errors_and_timeouts_are_denials_naming_the_url() {
        let (url, _seen, server) = serve(vec![
            Some(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"),
            None,
        ]);
        let env = FakeEnv::new();
        let s = sessions(
            &env,
            &[
                ("token_url", &url.to_string()),
                ("token_cache", "0s"),
                ("token_timeout", "200ms"),
            ],
        );
        let r = request(&[("token", "t")]);
        assert_eq!(
            denied(s.resolve(&r, &env)),
            format!("token checker {url} answered HTTP 500")
        );
        assert_eq!(
            denied(s.resolve(&r, &env)),
            format!("token checker {url} failed: no answer within 200ms")
        );
        assert_eq!(env.keys(), ["hmac-key"], "token_cache = 0s caches nothing");
        server.join().unwrap();
    }

    #[test]
    fn without_a_token_cookie_the_checker_is_not_asked() {
        // Nothing listens here: asking would be a denial, not a pass.
        let env = FakeEnv::new();
        let s = sessions(&env, &[("token_url", "http://127.0.0.1:9/")]);
        passed(s.resolve(&request(&[]), &env));
        passed(s.resolve(&request(&[("token", "")]), &env));
    }
}
