//! Identity: who is at the door, decided by resolver plugins (WASI preview-2 components
//! implementing `wit/identity.wit`, SPEC §5).
//!
//! - [`chain`]: the resolvers in configured order, allow/deny/pass per protocol, answer cache.
//! - [`wasm`]: the wasmtime side — the one `bindgen!`, the engine (pooling allocator, epoch
//!   deadlines, compile cache), a plugin with its sandbox and instances
//!   ([`wasm::plugin`]), `orca plugin check` ([`wasm::check`]), and the host imports `log` and
//!   `store`.
//! - [`kv`]: the store namespaces behind the `store` import; [`bundled`]: the resolvers built
//!   into the binary.
//!
//! A plugin failure of any kind is a deny for that call, a log line naming the plugin, and a
//! metric; never a crash, and never a wait beyond the plugin's own deadline.

pub mod bundled;
pub mod chain;
pub mod kv;
pub mod wasm;

use std::time::Duration;

pub use chain::{Decision, HttpCredential, Identities};
pub use wasm::bindings::orca::identity::types::{
    Client, Credential, Denial, Grant, HttpRequest, Identity, Issued, PublicKey, SshAttempt,
    Verdict,
};

/// The resolver chain in force: every front shares it, a reload swaps the whole chain at
/// once, and a call in flight finishes on the chain it started with.
pub type Current = crate::live::Live<Identities>;

/// The four questions a resolver may answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interface {
    /// `orca:identity/http`
    Http,
    /// `orca:identity/ssh`
    Ssh,
    /// `orca:identity/password`
    Password,
    /// `orca:identity/session`
    Session,
}

impl Interface {
    /// Every interface, in WIT order.
    pub const ALL: [Interface; 4] = [
        Interface::Http,
        Interface::Ssh,
        Interface::Password,
        Interface::Session,
    ];

    /// The WIT name (`http`, …), also the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Interface::Http => "http",
            Interface::Ssh => "ssh",
            Interface::Password => "password",
            Interface::Session => "session",
        }
    }
}

/// Why a resolver could not be loaded; the gateway refuses to start (or keeps the previous
/// version on a reload) and prints this.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The component file could not be read.
    #[error("resolver `{resolver}`: cannot read `{path}`: {reason}; check the `plugin` path")]
    Read {
        /// Resolver name.
        resolver: String,
        /// The file.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The bytes are not a component wasmtime can compile.
    #[error(
        "resolver `{resolver}`: `{source_name}` is not a WebAssembly component: {reason}; build \
         it for wasm32-wasip2 (or with a componentize tool) against wit/identity.wit"
    )]
    Compile {
        /// Resolver name.
        resolver: String,
        /// Path or bundled name.
        source_name: String,
        /// Compiler's words.
        reason: String,
    },
    /// The component does not fit the `orca:identity@0.1.0` package.
    #[error("resolver `{resolver}` does not fit orca:identity@0.1.0: {reason}")]
    Fit {
        /// Resolver name.
        resolver: String,
        /// What does not fit.
        reason: String,
    },
    /// The plugin's `init` refused its settings.
    #[error("resolver `{resolver}` refused its settings: {message}; fix its `config` table")]
    Init {
        /// Resolver name.
        resolver: String,
        /// The plugin's message.
        message: String,
    },
    /// A `connect` entry could not be resolved.
    #[error("resolver `{resolver}`: connect address `{address}` does not resolve: {reason}")]
    Connect {
        /// Resolver name.
        resolver: String,
        /// The entry.
        address: String,
        /// Resolver error.
        reason: String,
    },
    /// The `files` directory does not exist.
    #[error(
        "resolver `{resolver}`: `files` directory `{path}` does not exist; create it or fix \
         the path"
    )]
    Files {
        /// Resolver name.
        resolver: String,
        /// The directory.
        path: String,
    },
    /// The engine or the state directory failed.
    #[error("resolvers: {0}")]
    Engine(String),
}

/// Why one call produced no answer; the chain turns it into a deny.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The guest trapped (a panic, `unreachable`, an out-of-bounds access).
    #[error("trapped: {0}")]
    Trap(String),
    /// The call ran past its deadline.
    #[error("ran past its {} deadline", crate::units::format_duration(*.0))]
    Timeout(Duration),
    /// The guest tried to grow past `memory_mb`.
    #[error("ran out of its {0} MiB memory cap")]
    Memory(u64),
    /// The answer could not be read or broke the contract (sizes, characters).
    #[error("answered something malformed: {0}")]
    Malformed(String),
    /// A new instance could not be made.
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
    /// `init` refused the settings on a new instance.
    #[error("init failed: {0}")]
    Init(String),
    /// Every instance slot stayed busy until the deadline.
    #[error("stayed busy with other calls for {}", crate::units::format_duration(*.0))]
    Busy(Duration),
}

impl Failure {
    /// The `kind` label of `orca_resolver_failures_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Trap(_) => "trap",
            Failure::Timeout(_) => "timeout",
            Failure::Memory(_) => "memory",
            Failure::Malformed(_) => "malformed",
            Failure::Instantiate(_) => "instantiate",
            Failure::Init(_) => "init",
            Failure::Busy(_) => "busy",
        }
    }
}
