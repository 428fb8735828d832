//! One loaded resolver: its compiled component, its sandbox, and the instances answering its
//! calls.
//!
//! Instance policy (measured, see BENCHMARKS.md): an instance answers up to `reuse` calls and
//! is then dropped; a fresh one is made when no idle one is left. A call that fails in any way
//! drops its instance, so a trapped or half-finished guest never answers again.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, InstancePre, Linker};
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use super::bindings::Resolver;
use super::bindings::exports::orca::identity::{http, lifecycle, password, session, ssh};
use super::bindings::orca::identity::log::Level;
use super::bindings::orca::identity::types::{
    Client, HttpRequest, Identity, Issued, SshAttempt, Verdict,
};
use super::{LogStream, State};
use crate::identity::kv::Namespace;
use crate::identity::{Failure, Interface, LoadError};

/// Where a resolver's component appears inside the guest for `files`.
pub const FILES_GUEST_PATH: &str = "/files";

/// The interfaces a component exports, detected from the component itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exports {
    /// `orca:identity/http`
    pub http: bool,
    /// `orca:identity/ssh`
    pub ssh: bool,
    /// `orca:identity/password`
    pub password: bool,
    /// `orca:identity/session`
    pub session: bool,
}

impl Exports {
    /// Whether the component exports `interface`.
    pub fn has(&self, interface: Interface) -> bool {
        match interface {
            Interface::Http => self.http,
            Interface::Ssh => self.ssh,
            Interface::Password => self.password,
            Interface::Session => self.session,
        }
    }

    /// The exported interfaces by name, in WIT order.
    pub fn names(&self) -> Vec<&'static str> {
        Interface::ALL
            .iter()
            .filter(|i| self.has(**i))
            .map(|i| i.as_str())
            .collect()
    }
}

/// What a resolver is allowed, from its `[[resolver]]`.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// Addresses the plugin may connect to (names resolved at load).
    pub connect: Vec<SocketAddr>,
    /// Whether any `connect` entry was a name (the plugin then may resolve names).
    pub name_lookup: bool,
    /// Host directory shown read-only at [`FILES_GUEST_PATH`].
    pub files: Option<PathBuf>,
    /// Memory cap of one instance, in bytes.
    pub memory_bytes: usize,
    /// Deadline of one call, instantiation included.
    pub timeout: Duration,
    /// Calls one instance may answer before it is replaced.
    pub reuse: u32,
    /// Instances alive at once for this resolver; more calls wait (within their deadline).
    pub concurrency: u32,
}

/// A question for a resolver.
#[derive(Debug, Clone)]
pub enum Question {
    /// `http.resolve`
    Http(HttpRequest),
    /// `ssh.resolve`
    Ssh(SshAttempt),
    /// `password.check`
    Password {
        /// User name.
        user: String,
        /// Password.
        password: String,
        /// Peer.
        client: Client,
    },
    /// `session.issue`
    Issue(Identity),
    /// `session.revoke`
    Revoke(HttpRequest),
}

impl Question {
    /// The interface that answers it.
    pub fn interface(&self) -> Interface {
        match self {
            Question::Http(_) => Interface::Http,
            Question::Ssh(_) => Interface::Ssh,
            Question::Password { .. } => Interface::Password,
            Question::Issue(_) | Question::Revoke(_) => Interface::Session,
        }
    }
}

/// A resolver's raw answer, before the chain interprets it.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// From `http`, `ssh` or `password`.
    Verdict(Verdict),
    /// From `session.issue`.
    Issued(Result<Issued, String>),
    /// From `session.revoke`: cookies to clear.
    Revoked(Vec<String>),
}

/// The typed handles of one instance's exports.
struct Guests {
    http: Option<http::Guest>,
    ssh: Option<ssh::Guest>,
    password: Option<password::Guest>,
    session: Option<session::Guest>,
}

/// An instance with its store, ready for calls.
struct Live {
    store: Store<State>,
    guests: Guests,
    calls: u32,
}

/// Export indices looked up once per component.
struct Indices {
    lifecycle: lifecycle::GuestIndices,
    http: Option<http::GuestIndices>,
    ssh: Option<ssh::GuestIndices>,
    password: Option<password::GuestIndices>,
    session: Option<session::GuestIndices>,
}

/// A loaded resolver.
pub struct Plugin {
    name: Arc<str>,
    exports: Exports,
    pre: InstancePre<State>,
    indices: Indices,
    settings: Vec<(String, String)>,
    sandbox: Sandbox,
    kv: Namespace,
    idle: Mutex<Vec<Live>>,
    permits: Semaphore,
    metrics: crate::metrics::Metrics,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("exports", &self.exports)
            .field("sandbox", &self.sandbox)
            .finish_non_exhaustive()
    }
}

/// The WIT name of an interface in the package this gateway speaks.
pub(crate) fn export_name(interface: &str) -> String {
    format!("orca:identity/{interface}@0.1.0")
}

/// A linker with WASI (nothing granted beyond what each store's context allows) and the
/// `orca:identity` host imports.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<State>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Resolver::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// Which of the four interfaces the component exports (by name; types are checked when an
/// instance loads them).
pub(crate) fn detect(component: &Component) -> Exports {
    let has = |i: &str| component.get_export_index(None, export_name(i)).is_some();
    Exports {
        http: has("http"),
        ssh: has("ssh"),
        password: has("password"),
        session: has("session"),
    }
}

impl Plugin {
    /// Prepares `component` for calls and proves it works: one instance is made and `init`
    /// runs with the settings, so a bad setting or a component that does not fit stops the
    /// gateway at start with the plugin's own words.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn load(
        name: &str,
        component: &Component,
        linker: &Linker<State>,
        settings: Vec<(String, String)>,
        sandbox: Sandbox,
        kv: Namespace,
        metrics: crate::metrics::Metrics,
    ) -> Result<Plugin, LoadError> {
        let fit = |e: wasmtime::Error| LoadError::Fit {
            resolver: name.to_string(),
            reason: format!("{e:#}"),
        };
        let exports = detect(component);
        if exports == Exports::default() {
            return Err(LoadError::Fit {
                resolver: name.to_string(),
                reason: "it exports none of orca:identity/http, ssh, password or session \
                         @0.1.0"
                    .to_string(),
            });
        }
        if exports.session && !exports.http {
            return Err(LoadError::Fit {
                resolver: name.to_string(),
                reason: "it exports `session` without `http`: the resolver that issues a \
                         cookie must also recognise it"
                    .to_string(),
            });
        }
        let pre = linker.instantiate_pre(component).map_err(fit)?;
        let lifecycle_indices = lifecycle::GuestIndices::new(&pre).map_err(fit)?;
        let indices = Indices {
            lifecycle: lifecycle_indices,
            http: exports
                .http
                .then(|| http::GuestIndices::new(&pre))
                .transpose()
                .map_err(fit)?,
            ssh: exports
                .ssh
                .then(|| ssh::GuestIndices::new(&pre))
                .transpose()
                .map_err(fit)?,
            password: exports
                .password
                .then(|| password::GuestIndices::new(&pre))
                .transpose()
                .map_err(fit)?,
            session: exports
                .session
                .then(|| session::GuestIndices::new(&pre))
                .transpose()
                .map_err(fit)?,
        };
        let concurrency = sandbox.concurrency.max(1);
        let plugin = Plugin {
            name: Arc::from(name),
            exports,
            pre,
            indices,
            settings,
            sandbox,
            kv,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(concurrency as usize),
            metrics,
        };
        let deadline = Instant::now() + plugin.sandbox.timeout;
        let first = tokio::time::timeout_at(deadline.into(), plugin.instantiate(deadline))
            .await
            .map_err(|_| Failure::Timeout(plugin.sandbox.timeout))
            .and_then(|r| r);
        match first {
            Ok(live) => {
                plugin.keep(live);
                Ok(plugin)
            }
            Err(Failure::Init(message)) => Err(LoadError::Init {
                resolver: name.to_string(),
                message,
            }),
            Err(other) => Err(LoadError::Fit {
                resolver: name.to_string(),
                reason: other.to_string(),
            }),
        }
    }

    /// The resolver's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it exports.
    pub fn exports(&self) -> Exports {
        self.exports
    }

    /// Its store namespace.
    pub fn kv(&self) -> &Namespace {
        &self.kv
    }

    fn wasi(&self) -> Result<WasiCtx, Failure> {
        let mut b = WasiCtxBuilder::new();
        b.stdout(LogStream {
            plugin: self.name.clone(),
            level: Level::Info,
        });
        b.stderr(LogStream {
            plugin: self.name.clone(),
            level: Level::Warn,
        });
        b.allow_udp(false);
        b.allow_tcp(!self.sandbox.connect.is_empty());
        b.allow_ip_name_lookup(self.sandbox.name_lookup);
        let allowed = Arc::new(self.sandbox.connect.clone());
        let name = self.name.clone();
        let refused = self
            .metrics
            .resolver_failures
            .with_label_values(&[&*self.name, "socket"]);
        b.socket_addr_check(move |addr, usage| {
            let ok = match usage {
                // wasmtime-wasi binds a connecting socket to the wildcard address first; only
                // that implicit bind is allowed, never a chosen address or port.
                SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
                SocketAddrUse::TcpConnect => allowed.contains(&addr),
                _ => false,
            };
            if !ok {
                // The plugin sees the refusal as an error and answers for itself (usually a
                // deny); the operator learns here what it tried.
                refused.inc();
                tracing::warn!(
                    resolver = %name,
                    "refused a socket {usage:?} to {addr}: not in the resolver's `connect` list"
                );
            }
            Box::pin(async move { ok })
        });
        if let Some(dir) = &self.sandbox.files {
            b.preopened_dir(dir, FILES_GUEST_PATH, FsPerms::ReadOnly)
                .map_err(|e| {
                    Failure::Instantiate(format!("cannot open `files` {}: {e}", dir.display()))
                })?;
        }
        Ok(b.build())
    }

    /// A new instance, initialised.
    async fn instantiate(&self, deadline: Instant) -> Result<Live, Failure> {
        let state = State::new(
            self.wasi()?,
            self.name.clone(),
            self.kv.clone(),
            self.sandbox.memory_bytes,
        );
        let mut store = super::new_store(self.pre.engine(), state, deadline);
        self.metrics
            .resolver_instances
            .with_label_values(&[&*self.name])
            .inc();
        let instance = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| classify(e, &store, true, self.sandbox.timeout))?;
        let lifecycle = self
            .indices
            .lifecycle
            .load(&mut store, &instance)
            .map_err(|e| Failure::Instantiate(format!("{e:#}")))?;
        let bad = |e: wasmtime::Error| Failure::Instantiate(format!("{e:#}"));
        let ix = &self.indices;
        let guests = Guests {
            http: ix
                .http
                .as_ref()
                .map(|i| i.load(&mut store, &instance))
                .transpose()
                .map_err(bad)?,
            ssh: ix
                .ssh
                .as_ref()
                .map(|i| i.load(&mut store, &instance))
                .transpose()
                .map_err(bad)?,
            password: ix
                .password
                .as_ref()
                .map(|i| i.load(&mut store, &instance))
                .transpose()
                .map_err(bad)?,
            session: ix
                .session
                .as_ref()
                .map(|i| i.load(&mut store, &instance))
                .transpose()
                .map_err(bad)?,
        };
        match lifecycle.call_init(&mut store, &self.settings).await {
            Ok(Ok(())) => Ok(Live {
                store,
                guests,
                calls: 0,
            }),
            Ok(Err(message)) => Err(Failure::Init(message)),
            Err(e) => Err(classify(e, &store, false, self.sandbox.timeout)),
        }
    }

    fn take_idle(&self) -> Option<Live> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn keep(&self, live: Live) {
        if live.calls < self.sandbox.reuse {
            self.idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(live);
        }
    }

    /// Drops every idle instance (a reload, or a test measuring fresh instances).
    pub fn drain_idle(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Asks the resolver one question under its deadline and memory cap.
    pub async fn ask(&self, question: Question) -> Result<Answer, Failure> {
        let timeout = self.sandbox.timeout;
        let deadline = Instant::now() + timeout;
        let _permit = tokio::time::timeout_at(deadline.into(), self.permits.acquire())
            .await
            .map_err(|_| Failure::Busy(timeout))?
            .map_err(|_| Failure::Busy(timeout))?;
        // The epoch callback traps a guest that computes past the deadline; the timeout here
        // also ends a guest waiting in the host (a socket that never answers).
        let call = async {
            let mut live = match self.take_idle() {
                Some(live) => live,
                None => self.instantiate(deadline).await?,
            };
            live.store.data_mut().deadline = deadline;
            live.store.set_epoch_deadline(1);
            let answer = run(&mut live, question).await;
            match answer {
                Ok(answer) => {
                    live.calls += 1;
                    self.keep(live);
                    Ok(answer)
                }
                Err(e) => Err(classify(e, &live.store, false, timeout)),
            }
        };
        match tokio::time::timeout_at((deadline + engine_slack()).into(), call).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Timeout(timeout)),
        }
    }
}

/// A little slack after the deadline for the epoch callback to trap first (its message is
/// more precise), before the outer timeout drops the call.
fn engine_slack() -> Duration {
    super::engine::TICK * 4
}

async fn run(live: &mut Live, question: Question) -> wasmtime::Result<Answer> {
    let store = &mut live.store;
    let missing = |i: &str| wasmtime::format_err!("the component does not export `{i}`");
    Ok(match question {
        Question::Http(req) => {
            let g = live.guests.http.as_ref().ok_or_else(|| missing("http"))?;
            Answer::Verdict(g.call_resolve(&mut *store, &req).await?)
        }
        Question::Ssh(attempt) => {
            let g = live.guests.ssh.as_ref().ok_or_else(|| missing("ssh"))?;
            Answer::Verdict(g.call_resolve(&mut *store, &attempt).await?)
        }
        Question::Password {
            user,
            password,
            client,
        } => {
            let g = live
                .guests
                .password
                .as_ref()
                .ok_or_else(|| missing("password"))?;
            Answer::Verdict(g.call_check(&mut *store, &user, &password, &client).await?)
        }
        Question::Issue(who) => {
            let g = live
                .guests
                .session
                .as_ref()
                .ok_or_else(|| missing("session"))?;
            Answer::Issued(g.call_issue(&mut *store, &who).await?)
        }
        Question::Revoke(req) => {
            let g = live
                .guests
                .session
                .as_ref()
                .ok_or_else(|| missing("session"))?;
            Answer::Revoked(g.call_revoke(&mut *store, &req).await?)
        }
    })
}

/// Names what went wrong in a call from wasmtime's error and what the store saw.
fn classify(
    e: wasmtime::Error,
    store: &Store<State>,
    instantiating: bool,
    timeout: Duration,
) -> Failure {
    let detail = format!("{e:#}");
    if store.data().limits.hit {
        return Failure::Memory(store.data().limits.cap_mib());
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Failure::Timeout(timeout),
        Some(_) => Failure::Trap(detail),
        None if instantiating => Failure::Instantiate(detail),
        // Not a trap: the answer could not be lifted (bad UTF-8, a bad discriminant, a
        // pointer out of bounds) or the call failed in the host.
        None => Failure::Malformed(detail),
    }
}
