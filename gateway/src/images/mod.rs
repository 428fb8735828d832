//! Image labels parsed into a typed [`ImageSpec`].
//!
//! An image opts in to Orca with `orca.*` labels (SPEC §4, compatible with the original Orca's
//! label set and per-kind defaults). Parsing is pure: raw labels in, an `ImageSpec` or a list
//! of [`LabelError`]s out. A bad label makes that one image unavailable with a precise reason;
//! it never stops the gateway.

mod labels;

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

pub use labels::{LABEL_PREFIX, label_table, parse_labels, repo_name};

/// Everything Orca needs to know about one image, from its labels and per-kind defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSpec {
    /// Name used in the subdomain and the SSH menu (`orca.name`, default the repository name).
    pub name: String,
    /// The image's content id (`sha256:…`); containers are created from exactly this id.
    pub image_id: String,
    /// The tag the image was found under (`repo:tag`), for operators.
    pub reference: String,
    /// Protocols the image serves (`orca.kind`).
    pub kinds: Kinds,
    /// TCP port inside the container (`orca.port`): HTTP for web, the target of `connect`.
    pub port: Option<u16>,
    /// Maximum container lifespan (`orca.timeout.session`); `None` means no limit.
    pub lifespan: Option<Duration>,
    /// A user inactive this long is kicked out of the container (`orca.timeout.inactive`).
    pub inactive: Duration,
    /// How long an empty container waits for a new user before stopping (`orca.timeout.linger`).
    pub linger: Duration,
    /// Grace between the stop signal and the kill (`orca.timeout.stop`).
    pub stop_grace: Duration,
    /// Users served over the container's life (`orca.users.total`).
    pub users_total: UserLimit,
    /// Users at once (`orca.users.concurrent`).
    pub users_concurrent: UserLimit,
    /// How SSH sessions reach the container (`orca.connection.method`); `None` for web-only.
    pub method: Option<ConnectionMethod>,
    /// Signal used to stop the container (`orca.container.stopsignal`), such as `SIGINT`.
    pub stop_signal: Option<String>,
    /// Whether the user stays bound after their last connection closes
    /// (`orca.container.persistBetweenReconnects`).
    pub persist_between_reconnects: bool,
    /// Command run by the `exec` method (`orca.exec.command`); `None` means `/bin/sh`.
    pub exec_command: Option<Vec<String>>,
    /// What "ready" means before traffic is sent (`orca.ready`).
    pub ready: ReadyCheck,
    /// Resource limits applied at creation (`orca.limits.*`).
    pub limits: ResourceLimits,
    /// Groups allowed to use the image (`orca.access.groups`); empty means everyone.
    pub access_groups: BTreeSet<String>,
    /// Containers kept started and unassigned (`orca.pool.warm`).
    pub pool_warm: u32,
}

impl ImageSpec {
    /// A stable hash of the image id and every effective setting that shapes a container.
    ///
    /// Launched containers carry it in a label; after a restart a container whose hash no
    /// longer matches its image's is kept for its users but takes no new ones.
    pub fn spec_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        // Debug output of the whole spec is stable for a given build and covers every field.
        h.update(format!("{self:?}").as_bytes());
        let digest = h.finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether a user with these groups may use the image.
    pub fn allows_groups<'a>(&self, groups: impl IntoIterator<Item = &'a str>) -> bool {
        self.access_groups.is_empty() || groups.into_iter().any(|g| self.access_groups.contains(g))
    }

    /// Why a user may not use the image, if not: `images` is the list the resolver that
    /// identified them gave (`None`: no restriction), `groups` theirs.
    pub fn refusal<'a>(
        &self,
        images: Option<&[String]>,
        groups: impl IntoIterator<Item = &'a str>,
    ) -> Option<&'static str> {
        if let Some(images) = images
            && !images.iter().any(|i| i.eq_ignore_ascii_case(&self.name))
        {
            return Some("the resolver that identified you does not list this image for you");
        }
        (!self.allows_groups(groups))
            .then_some("the image is limited to groups you are not in (orca.access.groups)")
    }

    /// Whether SSH sessions can use the image (`ssh`, or `tcp` through `connect`).
    pub fn serves_ssh(&self) -> bool {
        self.kinds.ssh || self.kinds.tcp
    }
}

/// The protocols an image serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Kinds {
    /// Served over HTTPS at `<name>.<domain>`.
    pub web: bool,
    /// Served over SSH.
    pub ssh: bool,
    /// A raw TCP port reached through SSH `connect`.
    pub tcp: bool,
}

impl fmt::Display for Kinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [(self.web, "web"), (self.ssh, "ssh"), (self.tcp, "tcp")]
            .into_iter()
            .filter_map(|(on, n)| on.then_some(n))
            .collect();
        f.write_str(&names.join(","))
    }
}

/// A user-count limit: a positive number, or unlimited (`-1` in labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserLimit {
    /// No limit.
    Unlimited,
    /// At most this many (always at least 1).
    AtMost(u32),
}

impl UserLimit {
    /// Whether `count` users leave room for one more.
    pub fn has_room(self, count: usize) -> bool {
        match self {
            UserLimit::Unlimited => true,
            UserLimit::AtMost(n) => count < n as usize,
        }
    }
}

impl fmt::Display for UserLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserLimit::Unlimited => f.write_str("-1"),
            UserLimit::AtMost(n) => write!(f, "{n}"),
        }
    }
}

/// How an SSH session reaches its container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionMethod {
    /// `docker attach` to the container's main process (Orca's method).
    Attach,
    /// One `docker exec` per session channel.
    Exec,
    /// The channel is bridged to a TCP port in the container.
    Connect,
}

impl fmt::Display for ConnectionMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectionMethod::Attach => "attach",
            ConnectionMethod::Exec => "exec",
            ConnectionMethod::Connect => "connect",
        })
    }
}

/// What "ready" means before traffic is sent to a new container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyCheck {
    /// Ready as soon as it runs.
    None,
    /// Ready when the port accepts a TCP connection.
    Tcp,
    /// Ready when `GET <path>` on the port answers with a status below 500.
    Http(String),
}

impl fmt::Display for ReadyCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadyCheck::None => f.write_str("none"),
            ReadyCheck::Tcp => f.write_str("tcp"),
            ReadyCheck::Http(p) => write!(f, "http:{p}"),
        }
    }
}

/// Resource limits applied when a container is created.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ResourceLimits {
    /// Memory limit in bytes (`orca.limits.memory`, such as `512m`).
    pub memory_bytes: Option<u64>,
    /// CPU limit in billionths of a CPU (`orca.limits.cpus`, such as `0.5`).
    pub nano_cpus: Option<u64>,
    /// Maximum number of processes (`orca.limits.pids`).
    pub pids: Option<u32>,
}

/// One bad label: which, its value, and what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelError {
    /// The label key, such as `orca.users.total`.
    pub label: String,
    /// The value found on the image.
    pub value: String,
    /// Why it is wrong and what would be accepted.
    pub reason: String,
}

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "label `{}` = `{}`: {}",
            self.label, self.value, self.reason
        )
    }
}
