//! `orca serve`: assemble the stages and run until shutdown.
//!
//! The gateway opens its audit log, loads its identity resolvers, runs the image catalogue,
//! the scheduler and the container lifecycle, and serves HTTPS (and plain HTTP when
//! configured), SSH and the admin API. [`Control`] carries what the process's signals ask:
//! shut down (SIGTERM/SIGINT, with or without cleanup) and reload (SIGHUP, `reload.rs`).

mod nofile;
mod reload;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::admin::{Admin, AdminToken, TokenError};
use crate::audit::Audit;

use crate::config::{Config, HttpMode};
use crate::front::Front;
use crate::front::redirect::Redirect;
use crate::identity::{Current, Identities, LoadError};
use crate::listeners::host_keys::{self, HostKeyError};
use crate::listeners::https::{self, ServeOptions};
use crate::listeners::ssh;
use crate::listeners::tls::{self, Certificates, TlsError};
use crate::listeners::workers::Workers;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::proxy::{Proxy, ProxyOptions};
use crate::runtime::RuntimeError;
use crate::runtime::docker::DockerRuntime;
use crate::scheduler::{Options, Scheduler};
use crate::ssh::server::SshFront;
use crate::ssh::session::{Sessions, SshSettings};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The state directory cannot be created.
    #[error(
        "cannot create the state directory `{path}`: {source}; create it or set `state_dir` to a writable directory"
    )]
    StateDir {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The container engine is unreachable or refused the start-up requests.
    #[error("{0}")]
    Runtime(#[from] RuntimeError),
    /// A resolver could not be loaded.
    #[error("{0}")]
    Identity(#[from] LoadError),
    /// The certificate could not be read or made.
    #[error("{0}")]
    Tls(#[from] TlsError),
    /// An SSH host key could not be read or made.
    #[error("{0}")]
    HostKeys(#[from] HostKeyError),
    /// The connection worker threads could not be started.
    #[error(
        "cannot start {count} connection worker threads: {source}; lower `[https] workers` or raise the process's thread limit"
    )]
    Workers {
        /// How many were to start.
        count: usize,
        /// The OS error.
        source: std::io::Error,
    },
    /// The audit log cannot be opened.
    #[error(
        "cannot open the audit log `{path}`: {source}; make it writable, or set `[log] audit` to another file (\"\" turns it off)"
    )]
    Audit {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The admin token file cannot be used.
    #[error("{0}")]
    AdminToken(#[from] TokenError),
    /// A listen address could not be bound.
    #[error(
        "cannot listen on {addr} (`{key}`): {source}; choose a free address or stop what holds it"
    )]
    Bind {
        /// The configuration key.
        key: &'static str,
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The listening sockets, bound before anything else starts so a taken port fails fast.
#[derive(Debug)]
pub struct Listeners {
    /// `[https] listen`.
    pub https: tokio::net::TcpListener,
    /// `[http] listen`, when the table is present.
    pub http: Option<tokio::net::TcpListener>,
    /// `[ssh] listen`.
    pub ssh: tokio::net::TcpListener,
    /// `[admin] listen`.
    pub admin: tokio::net::TcpListener,
}

/// What the process asks of a running gateway.
#[derive(Debug, Clone, Default)]
pub struct Control {
    /// Cancelled to shut down: stop accepting, drain for `shutdown_grace`, stop.
    pub shutdown: CancellationToken,
    /// Notified to reload the configuration (SIGHUP).
    pub reload: Arc<Notify>,
    /// Stop and remove this instance's containers at shutdown instead of keeping them.
    pub cleanup: bool,
}

impl Listeners {
    /// Binds every configured listener.
    pub async fn bind(config: &Config) -> Result<Self, ServeError> {
        let https = bind("https.listen", config.https.listen).await?;
        let http = match &config.http {
            Some(h) => Some(bind("http.listen", h.listen).await?),
            None => None,
        };
        let ssh = bind("ssh.listen", config.ssh.listen).await?;
        let admin = bind("admin.listen", config.admin.listen).await?;
        Ok(Listeners {
            https,
            http,
            ssh,
            admin,
        })
    }
}

/// Binds `addr`, the value of configuration key `key`.
async fn bind(
    key: &'static str,
    addr: std::net::SocketAddr,
) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { key, addr, source })
}

/// Binds the configured listeners and runs the gateway until `control.shutdown` is
/// cancelled. Containers are left running for the next start unless `control.cleanup`.
pub async fn run(config: Config, control: Control) -> Result<(), ServeError> {
    nofile::raise_and_log();
    let listeners = Listeners::bind(&config).await?;
    run_on(config, listeners, control).await
}

/// Runs the gateway on already-bound listeners (tests bind port 0) until `control.shutdown`.
pub async fn run_on(
    config: Config,
    listeners: Listeners,
    control: Control,
) -> Result<(), ServeError> {
    let Control {
        shutdown,
        reload,
        cleanup,
    } = control;
    std::fs::create_dir_all(&config.state_dir).map_err(|source| ServeError::StateDir {
        path: config.state_dir.display().to_string(),
        source,
    })?;
    let certificates =
        Certificates::load(config.https.tls.as_ref(), &config.domain, &config.state_dir)?;
    let host_keys = host_keys::load(&config.ssh.host_keys, &config.state_dir)?;
    let runtime =
        DockerRuntime::connect(config.docker.host.as_deref(), &config.docker.network).await?;
    // Granted directories inside the state directory (the embedded SSH keys directory) are
    // Orca's own to create; any other must exist.
    for dir in config.resolvers.iter().filter_map(|r| r.files.as_ref()) {
        if dir.starts_with(&config.state_dir) {
            std::fs::create_dir_all(dir).map_err(|source| ServeError::StateDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
    }
    let metrics = Arc::new(Metrics::new());
    let audit = match &config.log.audit {
        Some(path) => Audit::open(
            path,
            metrics.audit_write_errors.with_label_values::<&str>(&[]),
        )
        .map_err(|source| ServeError::Audit {
            path: path.clone(),
            source,
        })?,
        None => Audit::off(),
    };
    let admin_token = AdminToken::from_config(&config.admin)?;
    // Resolvers first: a plugin that does not load is a configuration error, reported before
    // anything touches the container engine.
    let identities = Current::new(
        Identities::load(&config.resolvers, &config.state_dir, (*metrics).clone()).await?,
    );
    let scheduler = Scheduler::start(
        Arc::new(runtime),
        Options {
            audit: audit.clone(),
            ..Options::from_config(&config)
        },
        metrics.clone(),
    )
    .await?;
    let login_url = Live::new(config.https.login_url.clone());
    let ssh_settings = Live::new(SshSettings::of(&config.ssh));
    let front = Front::new(
        &config.domain,
        identities.clone(),
        scheduler.clone(),
        Proxy::new(ProxyOptions {
            response_timeout: config.https.response_timeout,
            ..ProxyOptions::default()
        }),
        config.scheduler.ready_timeout,
    )
    .with_login_url(login_url.clone());
    let count = config.https.workers.unwrap_or_else(Workers::per_core);
    let workers = Workers::start(count).map_err(|source| ServeError::Workers { count, source })?;
    let options = ServeOptions {
        workers: Some(workers.clone()),
        drain_timeout: config.shutdown_grace,
        connections: metrics.connections_of("https"),
        ..ServeOptions::default()
    };
    let https_addr = listeners.https.local_addr().ok();
    let http_addr = listeners.http.as_ref().and_then(|l| l.local_addr().ok());
    let http_task = listeners
        .http
        .zip(config.http.as_ref())
        .map(|(listener, http)| {
            let options = ServeOptions {
                connections: metrics.connections_of("http"),
                ..options.clone()
            };
            let shutdown = shutdown.clone();
            match http.mode {
                HttpMode::Redirect => {
                    let port = https_addr.map_or(config.https.listen.port(), |a| a.port());
                    let redirect = Arc::new(Redirect::new(&config.domain, port));
                    tokio::spawn(https::serve(listener, None, redirect, options, shutdown))
                }
                HttpMode::Serve => {
                    let plain = Arc::new(front.behind_balancer(http.trusted_proxies.clone()));
                    tokio::spawn(https::serve(listener, None, plain, options, shutdown))
                }
            }
        });
    let front = Arc::new(front);
    let https_task = tokio::spawn(https::serve(
        listeners.https,
        Some(tls::server_config(&certificates)),
        front,
        options,
        shutdown.clone(),
    ));
    let ssh_addr = listeners.ssh.local_addr().ok();
    let ssh_front = SshFront::new(
        identities.clone(),
        Sessions {
            scheduler: scheduler.clone(),
            settings: ssh_settings.clone(),
            ready_timeout: config.scheduler.ready_timeout,
            shutdown: shutdown.clone(),
        },
    );
    let ssh_task = tokio::spawn(ssh::serve(
        listeners.ssh,
        Arc::new(ssh::server_config(host_keys)),
        ssh_front.clone(),
        ssh::ServeOptions {
            login_grace: config.ssh.login_grace,
            connections: metrics.connections_of("ssh"),
            ..ssh::ServeOptions::default()
        },
        shutdown.clone(),
    ));
    let admin_addr = listeners.admin.local_addr().ok();
    // The admin listener outlives the drain: `/healthz` says 503 meanwhile, so balancers stop
    // sending, and the metrics stay scrapeable until the end.
    let admin_stop = CancellationToken::new();
    let admin_task = tokio::spawn(https::serve(
        listeners.admin,
        None,
        Arc::new(Admin::new(
            scheduler.clone(),
            metrics.clone(),
            admin_token.clone(),
            shutdown.clone(),
        )),
        ServeOptions {
            // Scrapes and API calls are short: the admin listener needs no long drain.
            drain_timeout: std::time::Duration::from_secs(1),
            connections: metrics.connections_of("admin"),
            ..ServeOptions::default()
        },
        admin_stop.clone(),
    ));
    let reloader = reload::Reloader {
        source: config.source.clone(),
        started: config.clone(),
        certificates,
        identities: identities.clone(),
        admin_token,
        login_url,
        ssh_settings,
        audit: audit.clone(),
        metrics: metrics.clone(),
    };
    let reloads = tokio::spawn(reload_when_asked(reloader, reload, shutdown.clone()));
    let rows = scheduler.catalogue().rows();
    let usable = rows
        .iter()
        .filter(|r| r.spec.is_ok() && r.shadowed_by.is_none())
        .count();
    tracing::info!(
        images = usable,
        disabled = rows.iter().filter(|r| r.spec.is_err()).count(),
        containers = scheduler.status().containers.len(),
        instance = %config.instance,
        resolvers = identities.get().plugins().len(),
        https = ?https_addr,
        http = ?http_addr,
        ssh = ?ssh_addr,
        admin = ?admin_addr,
        http_mode = config.http.as_ref().map(|h| h.mode.as_str()),
        workers = workers.count(),
        "orca is running"
    );
    shutdown.cancelled().await;
    tracing::info!(cleanup, "shutting down");
    reloads.abort();
    // The listener drains its connections (bounded) before the containers are let go.
    if let Err(e) = https_task.await {
        tracing::error!("the https listener task failed: {e}");
    }
    if let Some(task) = http_task
        && let Err(e) = task.await
    {
        tracing::error!("the http listener task failed: {e}");
    }
    if let Err(e) = ssh_task.await {
        tracing::error!("the ssh listener task failed: {e}");
    }
    // Sessions ended with the shutdown; their tasks finish telling their users.
    if tokio::time::timeout(ssh::DEFAULT_DRAIN_TIMEOUT, ssh_front.drained())
        .await
        .is_err()
    {
        tracing::warn!("ssh sessions still open at shutdown are cut");
    }
    admin_stop.cancel();
    if let Err(e) = admin_task.await {
        tracing::error!("the admin listener task failed: {e}");
    }
    scheduler.shutdown(cleanup).await;
    identities.get().flush();
    audit.flush();
    Ok(())
}

/// Reloads each time `reload` is notified, one reload at a time, until shutdown.
async fn reload_when_asked(
    reloader: reload::Reloader,
    reload: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = reload.notified() => reloader.run().await,
        }
    }
}
