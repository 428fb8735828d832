//! The resolver chain of SPEC §5: resolvers in configured order; for each question only those
//! exporting the matching interface are asked; the first `allow` or `deny` decides, `pass`
//! moves on, and when all pass the caller is unknown. A failed call is a deny.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::kv::{self, Namespace};
use super::wasm::engine;
use super::wasm::plugin::{Answer, Plugin, Question, Sandbox};
use super::{
    Client, Credential, Failure, HttpRequest, Identity, Interface, Issued, LoadError, SshAttempt,
    Verdict, bundled,
};
use crate::config::{PluginSource, ResolverConfig};
use crate::metrics::Metrics;

/// Limits on what a resolver may answer; beyond them the answer is malformed (a deny).
mod limits {
    pub(super) const ID: usize = 256;
    pub(super) const NAME: usize = 256;
    pub(super) const GROUPS: usize = 256;
    pub(super) const GROUP: usize = 256;
    pub(super) const IMAGES: usize = 1024;
    pub(super) const REASON: usize = 2048;
    pub(super) const COOKIE_NAME: usize = 64;
    pub(super) const COOKIE_VALUE: usize = 3000;
}

/// Cached answers kept at most.
const CACHE_ENTRIES: usize = 10_000;
/// How often dirty store namespaces are written to the state directory.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// What the chain decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The caller is `identity`, according to `resolver`.
    Allow {
        /// Who.
        identity: Identity,
        /// The resolver that allowed.
        resolver: String,
        /// A cookie to set on the response (HTTP only).
        set_cookie: Option<Issued>,
    },
    /// The caller is refused by `resolver` (also when the resolver failed).
    Deny {
        /// The resolver that denied or failed.
        resolver: String,
        /// For the log.
        reason: String,
        /// For the user, when the resolver chose to say more.
        message: Option<String>,
    },
    /// Every resolver passed: no identity.
    Unknown,
}

/// Why no cookie could be issued after a login.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// No resolver exports `session`.
    #[error(
        "no resolver exports `session`: add one (such as bundled:cookie) to keep users logged in"
    )]
    NoSession,
    /// The session resolver refused or failed.
    #[error("resolver `{resolver}` could not issue a session: {reason}")]
    Failed {
        /// The session resolver.
        resolver: String,
        /// Its words, or the failure.
        reason: String,
    },
}

#[derive(Debug, Clone)]
struct Cached {
    identity: Identity,
    until: Instant,
    /// `resolver_calls{…, result="cached"}` for the question the resolver answered: a hit
    /// counts on the handle instead of looking the label set up again.
    hits: IntCounter,
}

/// The loaded resolvers, in order.
#[derive(Debug)]
pub struct Identities {
    plugins: Vec<Arc<Plugin>>,
    cache_max: Vec<Duration>,
    cache: Mutex<HashMap<(usize, [u8; 32]), Cached>>,
    metrics: Metrics,
    flusher: tokio::task::JoinHandle<()>,
    compile_cache: Option<wasmtime::Cache>,
    session_cookies: Vec<String>,
}

impl Drop for Identities {
    fn drop(&mut self) {
        self.flusher.abort();
        self.flush();
    }
}

/// Reads a resolver's component bytes and a name to show for them.
fn component_bytes(r: &ResolverConfig) -> Result<(Vec<u8>, String), LoadError> {
    match &r.plugin {
        PluginSource::Path(path) => std::fs::read(path)
            .map(|b| (b, path.display().to_string()))
            .map_err(|e| LoadError::Read {
                resolver: r.name.clone(),
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        PluginSource::Bundled(name) => bundled::get(name)
            .map(|b| (b.to_vec(), format!("bundled:{name}")))
            .ok_or_else(|| LoadError::Read {
                resolver: r.name.clone(),
                path: format!("bundled:{name}"),
                reason: format!(
                    "this build of orca has no bundled `{name}`; bundled: {}",
                    bundled::names().join(", ")
                ),
            }),
    }
}

async fn resolve_connect(
    r: &ResolverConfig,
) -> Result<(Vec<std::net::SocketAddr>, bool), LoadError> {
    let mut addrs = Vec::new();
    let mut names = false;
    for entry in &r.connect {
        if let Ok(a) = entry.parse::<std::net::SocketAddr>() {
            addrs.push(a);
            continue;
        }
        names = true;
        let found =
            tokio::net::lookup_host(entry.as_str())
                .await
                .map_err(|e| LoadError::Connect {
                    resolver: r.name.clone(),
                    address: entry.clone(),
                    reason: e.to_string(),
                })?;
        addrs.extend(found);
    }
    Ok((addrs, names))
}

impl Identities {
    /// Compiles (or takes from the cache in `state_dir`) and loads every resolver, running each
    /// one's `init` once. Any failure names the resolver and stops the load.
    pub async fn load(
        resolvers: &[ResolverConfig],
        state_dir: &Path,
        metrics: Metrics,
    ) -> Result<Self, LoadError> {
        Self::load_with(resolvers, state_dir, metrics, &HashMap::new()).await
    }

    /// Loads `resolvers` afresh (SIGHUP) for the calls to come. A resolver keeping its name
    /// keeps its store: the same namespace, shared with the calls still running on `self`, so
    /// nothing either writes is lost (the cookie resolver's signing key lives there).
    pub async fn reload(
        &self,
        resolvers: &[ResolverConfig],
        state_dir: &Path,
    ) -> Result<Self, LoadError> {
        let stores = self
            .plugins
            .iter()
            .map(|p| (p.name().to_string(), p.kv().clone()))
            .collect();
        Self::load_with(resolvers, state_dir, self.metrics.clone(), &stores).await
    }

    async fn load_with(
        resolvers: &[ResolverConfig],
        state_dir: &Path,
        metrics: Metrics,
        stores: &HashMap<String, Namespace>,
    ) -> Result<Self, LoadError> {
        let max_memory = resolvers.iter().map(|r| r.memory_mb).max().unwrap_or(64);
        let max_memory = usize::try_from(max_memory).unwrap_or(4096) << 20;
        // wasmtime's cache wants an absolute directory; `state_dir` may be relative (`.orca`).
        let cache_dir =
            std::path::absolute(state_dir.join("cache").join("wasmtime")).map_err(|e| {
                LoadError::Engine(format!(
                    "cannot resolve the state directory {}: {e}",
                    state_dir.display()
                ))
            })?;
        let (engine, compile_cache) = engine::build(Some(&cache_dir), max_memory)
            .map_err(|e| LoadError::Engine(format!("cannot start wasmtime: {e:#}")))?;
        engine::start_ticker(&engine);
        let linker = super::wasm::plugin::linker(&engine)
            .map_err(|e| LoadError::Engine(format!("cannot link host imports: {e:#}")))?;

        let mut plugins = Vec::new();
        let mut cache_max = Vec::new();
        for r in resolvers {
            let (bytes, source_name) = component_bytes(r)?;
            let compile_engine = engine.clone();
            let component =
                tokio::task::spawn_blocking(move || Component::new(&compile_engine, &bytes))
                    .await
                    .map_err(|e| LoadError::Engine(format!("compiler task failed: {e}")))?
                    .map_err(|e| LoadError::Compile {
                        resolver: r.name.clone(),
                        source_name,
                        reason: format!("{e:#}"),
                    })?;
            if let Some(dir) = &r.files
                && !dir.is_dir()
            {
                return Err(LoadError::Files {
                    resolver: r.name.clone(),
                    path: dir.display().to_string(),
                });
            }
            let (connect, name_lookup) = resolve_connect(r).await?;
            let sandbox = Sandbox {
                connect,
                name_lookup,
                files: r.files.clone(),
                memory_bytes: usize::try_from(r.memory_mb).unwrap_or(4096) << 20,
                timeout: r.timeout,
                reuse: r.reuse,
                concurrency: r.concurrency,
            };
            let kv_file = state_dir.join("resolvers").join(format!("{}.kv", r.name));
            let kv = match stores.get(&r.name) {
                Some(kv) => kv.clone(),
                None => Namespace::open(kv_file.clone()).map_err(|e| {
                    LoadError::Engine(format!(
                        "cannot read the store of resolver `{}` at {}: {e}",
                        r.name,
                        kv_file.display()
                    ))
                })?,
            };
            let settings = r
                .config
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let plugin = Plugin::load(
                &r.name,
                &component,
                &linker,
                settings,
                sandbox,
                kv,
                metrics.clone(),
            )
            .await?;
            tracing::info!(
                resolver = %r.name,
                exports = %plugin.exports().names().join(","),
                "resolver loaded"
            );
            plugins.push(Arc::new(plugin));
            cache_max.push(r.cache_max);
        }
        let namespaces = plugins
            .iter()
            .map(|p| (p.name().to_string(), p.kv().clone()))
            .collect();
        let mut ids = Identities {
            plugins,
            cache_max,
            cache: Mutex::new(HashMap::new()),
            metrics,
            flusher: kv::spawn_flusher(namespaces, FLUSH_EVERY),
            compile_cache,
            session_cookies: Vec::new(),
        };
        // Session resolvers name their cookies in answer to a logout without cookies; the
        // proxy strips those names from every request it forwards.
        let nobody = HttpRequest {
            method: "GET".into(),
            host: String::new(),
            image: None,
            path: "/".into(),
            headers: Vec::new(),
            cookies: Vec::new(),
            client: Client {
                address: "0.0.0.0".into(),
                port: 0,
            },
        };
        ids.session_cookies = ids.revoke(&nobody).await;
        Ok(ids)
    }

    /// The loaded resolvers, in order.
    pub fn plugins(&self) -> &[Arc<Plugin>] {
        &self.plugins
    }

    /// Components taken from the compile cache in the state directory instead of compiled,
    /// and components compiled, during the load.
    pub fn compile_cache_stats(&self) -> (usize, usize) {
        self.compile_cache
            .as_ref()
            .map_or((0, 0), |c| (c.cache_hits(), c.cache_misses()))
    }

    /// The cookies the session resolvers use: never forwarded to a container.
    pub fn session_cookie_names(&self) -> &[String] {
        &self.session_cookies
    }

    /// Whether some resolver checks passwords (the HTTPS login form is offered then).
    pub fn has_password(&self) -> bool {
        self.plugins.iter().any(|p| p.exports().password)
    }

    /// Writes every resolver's store to the state directory now.
    pub fn flush(&self) {
        for p in &self.plugins {
            if let Err(e) = p.kv().flush() {
                tracing::warn!(resolver = %p.name(), "cannot write the resolver store: {e}");
            }
        }
    }

    /// Who sent this HTTPS request.
    pub async fn http(&self, request: &HttpRequest) -> Decision {
        let credential = HttpCredential::new(
            request
                .cookies
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str())),
            request.header("authorization"),
        );
        self.http_with(credential, || request.clone()).await
    }

    /// Who sent an HTTPS request carrying `credential`. `view` builds the resolvers' copy of
    /// the request; only a cache miss calls it (once), since the copy of every header it
    /// makes was most of what a cache hit cost.
    pub async fn http_with(
        &self,
        credential: HttpCredential,
        view: impl Fn() -> HttpRequest,
    ) -> Decision {
        let built = std::sync::OnceLock::new();
        self.decide(Interface::Http, credential.0, |_| {
            Some(Question::Http(built.get_or_init(&view).clone()))
        })
        .await
    }

    /// Who is making this SSH attempt. Resolvers exporting `ssh` are asked the attempt;
    /// for a password, resolvers exporting only `password` are asked to check it.
    pub async fn ssh(&self, attempt: &SshAttempt) -> Decision {
        let credential: Vec<u8> = match &attempt.credential {
            Credential::PublicKey(k) => [b"key:".as_slice(), &k.blob].concat(),
            Credential::Password(p) => [b"pw:".as_slice(), p.as_bytes()].concat(),
        };
        let key = digest([
            b"ssh".as_slice(),
            attempt.user.as_bytes(),
            attempt.image.as_deref().unwrap_or("").as_bytes(),
            &credential,
        ]);
        self.decide(Interface::Ssh, key, |plugin| {
            if plugin.exports().ssh {
                Some(Question::Ssh(attempt.clone()))
            } else {
                match &attempt.credential {
                    Credential::Password(p) if plugin.exports().password => {
                        Some(Question::Password {
                            user: attempt.user.clone(),
                            password: p.clone(),
                            client: attempt.client.clone(),
                        })
                    }
                    _ => None,
                }
            }
        })
        .await
    }

    /// Checks a user name and password (the HTTPS login form).
    pub async fn password(&self, user: &str, password: &str, client: &Client) -> Decision {
        let key = digest([
            b"password".as_slice(),
            user.as_bytes(),
            b"\0",
            password.as_bytes(),
        ]);
        self.decide(Interface::Password, key, |_| {
            Some(Question::Password {
                user: user.to_string(),
                password: password.to_string(),
                client: client.clone(),
            })
        })
        .await
    }

    /// A session cookie for `who`, from the first resolver exporting `session`.
    pub async fn issue(&self, who: &Identity) -> Result<(String, Issued), IssueError> {
        let plugin = self
            .plugins
            .iter()
            .find(|p| p.exports().session)
            .ok_or(IssueError::NoSession)?;
        let failed = |reason: String| IssueError::Failed {
            resolver: plugin.name().to_string(),
            reason,
        };
        match self.call(plugin, Question::Issue(who.clone())).await {
            Ok(Answer::Issued(Ok(issued))) => {
                check_issued(&issued).map_err(&failed)?;
                Ok((plugin.name().to_string(), issued))
            }
            Ok(Answer::Issued(Err(reason))) => Err(failed(reason)),
            Ok(other) => Err(failed(format!("unexpected answer {other:?}"))),
            Err(f) => Err(failed(f.to_string())),
        }
    }

    /// Logs out the session `request` carries: every session resolver forgets it, the answer
    /// cache drops it, and the cookie names to clear are returned.
    pub async fn revoke(&self, request: &HttpRequest) -> Vec<String> {
        // Every cached answer goes, not only this request's: the same session cookie may have
        // been cached under other keys (other cookies beside it), and logouts are rare enough
        // that asking the resolvers again afterwards costs nothing worth keeping them for.
        self.lock_cache().clear();
        let mut names = Vec::new();
        for plugin in self.plugins.iter().filter(|p| p.exports().session) {
            match self.call(plugin, Question::Revoke(request.clone())).await {
                Ok(Answer::Revoked(list)) => {
                    names.extend(list.into_iter().filter(|n| valid_cookie_name(n)))
                }
                Ok(_) => {}
                Err(f) => tracing::warn!(resolver = %plugin.name(), "revoke failed: {f}"),
            }
        }
        names.sort();
        names.dedup();
        names
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<(usize, [u8; 32]), Cached>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks each resolver that can answer, in order, until one decides.
    async fn decide(
        &self,
        interface: Interface,
        key: [u8; 32],
        question: impl Fn(&Plugin) -> Option<Question>,
    ) -> Decision {
        for (index, plugin) in self.plugins.iter().enumerate() {
            // The cache first: an entry exists only where this resolver answered this very
            // credential, and a hit must not pay for the question (a copy of the request).
            if let Some(identity) = self.cached(index, key) {
                return Decision::Allow {
                    identity,
                    resolver: plugin.name().to_string(),
                    set_cookie: None,
                };
            }
            let Some(q) = (if interface == Interface::Ssh || plugin.exports().has(interface) {
                question(plugin)
            } else {
                None
            }) else {
                continue;
            };
            let asked = q.interface();
            let verdict = match self.call(plugin, q).await {
                Ok(Answer::Verdict(v)) => check_verdict(v, asked, plugin.exports().session),
                Ok(other) => Err(format!("answered {other:?} to a verdict question")),
                Err(f) => Err(f.to_string()),
            };
            match verdict {
                Ok(Verdict::Pass) => continue,
                Ok(Verdict::Allow(grant)) => {
                    let keep = Duration::from_secs(u64::from(grant.cache_seconds))
                        .min(self.cache_max.get(index).copied().unwrap_or_default());
                    if !keep.is_zero() && grant.set_cookie.is_none() {
                        let hits = self.metrics.resolver_calls.with_label_values(&[
                            plugin.name(),
                            asked.as_str(),
                            "cached",
                        ]);
                        self.remember(index, key, &grant.who, hits, keep);
                    }
                    return Decision::Allow {
                        identity: grant.who,
                        resolver: plugin.name().to_string(),
                        set_cookie: grant.set_cookie,
                    };
                }
                Ok(Verdict::Deny(d)) => {
                    return Decision::Deny {
                        resolver: plugin.name().to_string(),
                        reason: d.reason,
                        message: d.message,
                    };
                }
                Err(reason) => {
                    if reason.starts_with("answered something malformed") {
                        self.metrics
                            .resolver_failures
                            .with_label_values(&[plugin.name(), "malformed"])
                            .inc();
                        tracing::warn!(resolver = %plugin.name(), "resolver {reason}; answering deny");
                    }
                    return Decision::Deny {
                        resolver: plugin.name().to_string(),
                        reason,
                        message: None,
                    };
                }
            }
        }
        Decision::Unknown
    }

    /// One call with its metrics and, on failure, its log line.
    async fn call(&self, plugin: &Plugin, question: Question) -> Result<Answer, Failure> {
        let interface = question.interface();
        let started = Instant::now();
        let answer = plugin.ask(question).await;
        self.metrics
            .resolver_duration
            .with_label_values(&[plugin.name(), interface.as_str()])
            .observe(started.elapsed().as_secs_f64());
        let result = match &answer {
            Ok(Answer::Verdict(Verdict::Allow(_))) => "allow",
            Ok(Answer::Verdict(Verdict::Deny(_))) => "deny",
            Ok(Answer::Verdict(Verdict::Pass)) => "pass",
            Ok(Answer::Issued(Ok(_)) | Answer::Revoked(_)) => "allow",
            Ok(Answer::Issued(Err(_))) => "deny",
            Err(f) => {
                self.metrics
                    .resolver_failures
                    .with_label_values(&[plugin.name(), f.kind()])
                    .inc();
                tracing::warn!(
                    resolver = %plugin.name(),
                    interface = interface.as_str(),
                    "resolver call {f}; answering deny"
                );
                "error"
            }
        };
        self.count(plugin, interface, result);
        answer
    }

    fn count(&self, plugin: &Plugin, interface: Interface, result: &str) {
        self.metrics
            .resolver_calls
            .with_label_values(&[plugin.name(), interface.as_str(), result])
            .inc();
    }

    /// The answer cached for this credential, counted as a `cached` call.
    fn cached(&self, index: usize, key: [u8; 32]) -> Option<Identity> {
        let mut cache = self.lock_cache();
        match cache.get(&(index, key)) {
            Some(c) if c.until > Instant::now() => {
                c.hits.inc();
                Some(c.identity.clone())
            }
            Some(_) => {
                cache.remove(&(index, key));
                None
            }
            None => None,
        }
    }

    fn remember(
        &self,
        index: usize,
        key: [u8; 32],
        identity: &Identity,
        hits: IntCounter,
        keep: Duration,
    ) {
        let mut cache = self.lock_cache();
        if cache.len() >= CACHE_ENTRIES {
            let now = Instant::now();
            cache.retain(|_, c| c.until > now);
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(
            (index, key),
            Cached {
                identity: identity.clone(),
                until: Instant::now() + keep,
                hits,
            },
        );
    }
}

impl HttpRequest {
    /// The first header named `name` (names are lower case in the request view).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The cache key of an HTTP credential: the cookies and the `Authorization` header (what a
/// plugin's `cache-seconds` promises its answer depends on), hashed so that the cache does not
/// keep the credential itself in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpCredential([u8; 32]);

impl HttpCredential {
    /// The key of a request with these cookies (name, value; in order) and `Authorization`.
    /// Read straight from the headers, so that a cached answer needs no copy of them.
    pub fn new<'a>(
        cookies: impl IntoIterator<Item = (&'a str, &'a str)>,
        authorization: Option<&str>,
    ) -> Self {
        // Fixed fields first, then the pairs to the end.
        let fixed = [b"http".as_slice(), authorization.unwrap_or("").as_bytes()];
        let pairs = cookies
            .into_iter()
            .flat_map(|(name, value)| [name.as_bytes(), value.as_bytes()]);
        Self(digest(fixed.into_iter().chain(pairs)))
    }
}

/// A cache key that does not keep the credential itself in memory. Each part is
/// length-prefixed, so no two different lists of parts hash the same input.
fn digest<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

fn clean(text: &str, what: &str, max: usize) -> Result<(), String> {
    if text.len() > max {
        return Err(format!("{what} of {} bytes (at most {max})", text.len()));
    }
    if text.chars().any(char::is_control) {
        return Err(format!("{what} {text:?} holds control characters"));
    }
    Ok(())
}

fn check_identity(who: &Identity) -> Result<(), String> {
    if who.id.is_empty() {
        return Err("an identity with an empty id".to_string());
    }
    clean(&who.id, "identity id", limits::ID)?;
    if let Some(name) = &who.display_name {
        clean(name, "display name", limits::NAME)?;
    }
    if who.groups.len() > limits::GROUPS {
        return Err(format!(
            "{} groups (at most {})",
            who.groups.len(),
            limits::GROUPS
        ));
    }
    for g in &who.groups {
        clean(g, "group", limits::GROUP)?;
    }
    if let Some(images) = &who.images {
        if images.len() > limits::IMAGES {
            return Err(format!(
                "{} images (at most {})",
                images.len(),
                limits::IMAGES
            ));
        }
        for i in images {
            clean(i, "image", limits::NAME)?;
        }
    }
    Ok(())
}

fn valid_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= limits::COOKIE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_issued(issued: &Issued) -> Result<(), String> {
    if !valid_cookie_name(&issued.name) {
        return Err(format!(
            "cookie name {:?} (letters, digits, `-` and `_`, at most {} bytes)",
            issued.name,
            limits::COOKIE_NAME
        ));
    }
    let safe = |b: u8| b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\');
    if issued.value.is_empty()
        || issued.value.len() > limits::COOKIE_VALUE
        || !issued.value.bytes().all(safe)
    {
        return Err(format!(
            "cookie value of {} bytes that is empty, too long (at most {}) or not cookie-safe",
            issued.value.len(),
            limits::COOKIE_VALUE
        ));
    }
    if issued.max_age_seconds == 0 {
        return Err("a cookie with max-age 0".to_string());
    }
    Ok(())
}

/// Whether a group survives the trip to the container: `X-Orca-Groups` (and the image label
/// `orca.access.groups`) list groups separated by commas, read with surrounding blanks trimmed,
/// so a group with a comma, outer blanks or no text at all would reach the container as other
/// groups than the resolver meant.
fn carried_group(group: &str) -> bool {
    !group.is_empty() && !group.contains(',') && group.trim() == group
}

/// Holds a verdict to the contract; a breach is a deny with the breach as the reason.
///
/// Groups the headers cannot carry (see [`carried_group`]; a directory may well have a group
/// named `Smith, John`) are dropped with a warning rather than refusing the user: the gateway's
/// access checks and the container then see the same groups. Public for `fuzz/`'s
/// `wit_answers` target, which holds every accepted answer to what the proxy must send.
pub fn check_verdict(mut v: Verdict, asked: Interface, session: bool) -> Result<Verdict, String> {
    let malformed = |what: String| format!("answered something malformed: {what}");
    if let Verdict::Allow(grant) = &mut v
        && !grant.who.groups.iter().all(|g| carried_group(g))
    {
        let (kept, dropped): (Vec<String>, Vec<String>) =
            grant.who.groups.drain(..).partition(|g| carried_group(g));
        tracing::warn!(
            user = %grant.who.id,
            ?dropped,
            "groups with a comma, outer blanks or no text cannot be told apart in X-Orca-Groups \
             or orca.access.groups; dropped for this login"
        );
        grant.who.groups = kept;
    }
    match &v {
        Verdict::Allow(grant) => {
            check_identity(&grant.who).map_err(malformed)?;
            if let Some(cookie) = &grant.set_cookie {
                if asked != Interface::Http || !session {
                    return Err(malformed(
                        "set-cookie from a resolver that does not export both http and session"
                            .to_string(),
                    ));
                }
                check_issued(cookie).map_err(malformed)?;
            }
        }
        Verdict::Deny(d) => {
            if d.reason.len() > limits::REASON {
                return Err(malformed(format!(
                    "a deny reason of {} bytes (at most {})",
                    d.reason.len(),
                    limits::REASON
                )));
            }
            if let Some(m) = &d.message
                && m.len() > limits::REASON
            {
                return Err(malformed(format!("a deny message of {} bytes", m.len())));
            }
        }
        Verdict::Pass => {}
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Grant;

    fn grant(id: &str) -> Verdict {
        Verdict::Allow(Grant {
            who: Identity {
                id: id.to_string(),
                display_name: None,
                groups: vec![],
                images: None,
            },
            cache_seconds: 0,
            set_cookie: None,
        })
    }

    #[test]
    fn answers_are_held_to_the_contract() {
        assert!(check_verdict(grant("alice"), Interface::Http, false).is_ok());
        for bad in ["", "al\nice", &"x".repeat(300)] {
            let e = check_verdict(grant(bad), Interface::Http, false).unwrap_err();
            assert!(e.contains("malformed"), "{e}");
        }
        let mut with_cookie = grant("alice");
        if let Verdict::Allow(g) = &mut with_cookie {
            g.set_cookie = Some(Issued {
                name: "orca_session".into(),
                value: "v1.abc".into(),
                max_age_seconds: 60,
            });
        }
        assert!(check_verdict(with_cookie.clone(), Interface::Http, true).is_ok());
        assert!(check_verdict(with_cookie.clone(), Interface::Http, false).is_err());
        assert!(check_verdict(with_cookie, Interface::Ssh, true).is_err());
        let huge = Verdict::Deny(super::super::Denial {
            reason: "x".repeat(limits::REASON + 1),
            message: None,
        });
        assert!(check_verdict(huge, Interface::Http, false).is_err());
    }

    #[test]
    fn groups_the_headers_cannot_carry_are_dropped_not_the_user() {
        let mut v = grant("alice");
        if let Verdict::Allow(g) = &mut v {
            g.who.groups = ["dev", "Smith, John", " ops", "", "staff"]
                .map(String::from)
                .to_vec();
        }
        let Ok(Verdict::Allow(g)) = check_verdict(v, Interface::Password, false) else {
            panic!("alice is still allowed");
        };
        assert_eq!(g.who.groups, ["dev", "staff"]);
    }

    #[test]
    fn cookies_must_be_safe() {
        let issued = |name: &str, value: &str| Issued {
            name: name.into(),
            value: value.into(),
            max_age_seconds: 1,
        };
        assert!(check_issued(&issued("s", "abc.DEF-_=")).is_ok());
        assert!(check_issued(&issued("s;x", "abc")).is_err());
        assert!(check_issued(&issued("s", "a b")).is_err());
        assert!(check_issued(&issued("s", "a;b")).is_err());
        assert!(check_issued(&issued("s", &"a".repeat(3001))).is_err());
    }
}
