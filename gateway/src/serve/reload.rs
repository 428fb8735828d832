//! SIGHUP: read the configuration again and put in force what can change under live
//! connections — certificates, resolvers (a changed `.wasm` answers the calls to come), the
//! admin token, `[https] login_url`, `[ssh] default_image` and `env` — and reopen the audit
//! log. Established HTTPS connections, WebSockets and SSH
//! sessions are untouched: they hold the certificate they were handshaken with, and their
//! identity was decided when they arrived.
//!
//! Everything new is loaded before anything is swapped, so a reload either takes whole or
//! leaves the gateway as it was (with the errors logged and `orca_reloads_total{result="failed"}`).
//! Keys that only a restart can change (listen addresses, the state directory, the engine…) are
//! named in a warning and left as they were.

use std::path::PathBuf;
use std::sync::Arc;

use crate::admin::{AdminToken, TokenError, configured_token};
use crate::audit::Audit;
use crate::config::{Config, ConfigErrors};
use crate::identity::{Current, LoadError};
use crate::listeners::tls::{Certificates, TlsError};
use crate::live::Live;
use crate::metrics::Metrics;
use crate::ssh::session::SshSettings;

/// Why a reload did not take; the gateway keeps what it had.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReloadError {
    /// The file has errors.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// A certificate could not be loaded.
    #[error("{0}")]
    Tls(#[from] TlsError),
    /// A resolver could not be loaded.
    #[error("{0}")]
    Identity(#[from] LoadError),
    /// The admin token file could not be read.
    #[error("{0}")]
    Token(#[from] TokenError),
}

/// What a reload replaces, and the configuration the gateway started with.
#[derive(Debug)]
pub(super) struct Reloader {
    /// The file to read again; `None`: the embedded defaults (certificates and plugins are
    /// still read again).
    pub(super) source: Option<PathBuf>,
    /// The configuration in force at start: keys only a restart applies are compared to it.
    pub(super) started: Config,
    pub(super) certificates: Certificates,
    pub(super) identities: Current,
    pub(super) admin_token: AdminToken,
    pub(super) login_url: Live<Option<String>>,
    pub(super) ssh_settings: Live<SshSettings>,
    pub(super) audit: Audit,
    pub(super) metrics: Arc<Metrics>,
}

impl Reloader {
    /// Reloads now, logging what happened.
    pub(super) async fn run(&self) {
        match self.reload().await {
            Ok(pending) => {
                self.metrics.reloads.with_label_values(&["ok"]).inc();
                tracing::info!(
                    "reload: certificates, resolvers, the admin token, login_url and the ssh settings in force"
                );
                if !pending.is_empty() {
                    tracing::warn!(
                        keys = %pending.join(", "),
                        "reload: these keys changed and take effect at the next restart"
                    );
                }
            }
            Err(e) => {
                self.metrics.reloads.with_label_values(&["failed"]).inc();
                tracing::error!("reload failed; the previous configuration stays in force: {e}");
            }
        }
    }

    /// Loads everything new, then swaps it in; returns the changed keys that need a restart.
    async fn reload(&self) -> Result<Vec<&'static str>, ReloadError> {
        let config = match &self.source {
            Some(path) => Config::load(path)?,
            None => Config::embedded(),
        };
        let identities = self
            .identities
            .get()
            .reload(&config.resolvers, &self.started.state_dir)
            .await?;
        let token = configured_token(&config.admin)?;
        // The last fallible step: after it nothing can fail, so nothing is half swapped.
        self.certificates.reload_from(
            config.https.tls.as_ref(),
            &self.started.domain,
            &self.started.state_dir,
        )?;
        self.identities.replace(identities);
        self.admin_token.set(token);
        self.login_url.replace(config.https.login_url.clone());
        self.ssh_settings.replace(SshSettings::of(&config.ssh));
        self.audit.reopen();
        Ok(restart_needed(&self.started, &config))
    }
}

/// The keys whose change only a restart applies.
pub(super) fn restart_needed(started: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut check = |key: &'static str, changed: bool| {
        if changed {
            keys.push(key);
        }
    };
    check("domain", started.domain != new.domain);
    check("state_dir", started.state_dir != new.state_dir);
    check("instance", started.instance != new.instance);
    check(
        "shutdown_grace",
        started.shutdown_grace != new.shutdown_grace,
    );
    check("https.listen", started.https.listen != new.https.listen);
    check("https.workers", started.https.workers != new.https.workers);
    check(
        "https.response_timeout",
        started.https.response_timeout != new.https.response_timeout,
    );
    check("http", started.http != new.http);
    check("ssh.listen", started.ssh.listen != new.ssh.listen);
    check("ssh.host_keys", started.ssh.host_keys != new.ssh.host_keys);
    check(
        "ssh.login_grace",
        started.ssh.login_grace != new.ssh.login_grace,
    );
    check("admin.listen", started.admin.listen != new.admin.listen);
    check("docker", started.docker != new.docker);
    check("scheduler", started.scheduler != new.scheduler);
    check("log", started.log != new.log);
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identities;

    /// A reloader over the file `dir/orca.toml` holding `text`, as `orca serve` builds it.
    async fn reloader(dir: &std::path::Path, text: &str) -> Reloader {
        let file = dir.join("orca.toml");
        std::fs::write(&file, text).unwrap();
        let config = Config::load(&file).unwrap();
        let metrics = Arc::new(Metrics::new());
        let identities = Identities::load(&config.resolvers, &config.state_dir, (*metrics).clone())
            .await
            .unwrap();
        Reloader {
            source: Some(file),
            certificates: Certificates::load(None, &config.domain, &config.state_dir).unwrap(),
            identities: Current::new(identities),
            admin_token: AdminToken::default(),
            login_url: Live::new(config.https.login_url.clone()),
            ssh_settings: Live::new(SshSettings::of(&config.ssh)),
            audit: Audit::off(),
            metrics,
            started: config,
        }
    }

    #[tokio::test]
    async fn a_reload_puts_the_new_settings_in_force_or_nothing_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let r = reloader(dir.path(), "resolver = []\n").await;
        assert_eq!(*r.login_url.get(), None);
        std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
        std::fs::write(
            dir.path().join("orca.toml"),
            "resolver = []\n[https]\nlogin_url = \"https://sso.test/login\"\n\
             [ssh]\ndefault_image = \"shell\"\nenv = [\"TZ\"]\nlisten = \"127.0.0.1:2022\"\n\
             [admin]\ntoken_file = \"token\"\n",
        )
        .unwrap();
        assert_eq!(r.reload().await.unwrap(), ["ssh.listen"]);
        assert_eq!(r.login_url.get().as_deref(), Some("https://sso.test/login"));
        let ssh = r.ssh_settings.get();
        assert_eq!(ssh.default_image.as_deref(), Some("shell"));
        assert_eq!(ssh.env, ["TZ"]);
        assert!(r.admin_token.is_set());

        // A file with an error changes nothing, and says why.
        std::fs::write(
            dir.path().join("orca.toml"),
            "resolver = []\n[https]\nlogin_url = \"elsewhere\"\n[ssh]\ndefault_image = \"other\"\n",
        )
        .unwrap();
        r.run().await;
        assert_eq!(r.login_url.get().as_deref(), Some("https://sso.test/login"));
        assert_eq!(r.ssh_settings.get().default_image.as_deref(), Some("shell"));
        let text = r.metrics.render();
        assert!(
            text.contains("orca_reloads_total{result=\"failed\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn only_keys_a_restart_applies_are_named() {
        let started = Config::embedded();
        let mut new = started.clone();
        assert!(restart_needed(&started, &new).is_empty());
        // Applied by the reload itself: not named.
        new.resolvers.pop();
        new.https.tls = Some(crate::config::TlsFiles {
            cert: "c.pem".into(),
            key: "k.pem".into(),
        });
        new.admin.token_file = Some("token".into());
        new.https.login_url = Some("https://sso.test/login".into());
        new.ssh.default_image = Some("shell".into());
        new.ssh.env.clear();
        assert!(restart_needed(&started, &new).is_empty());
        new.ssh.listen = "127.0.0.1:2022".parse().unwrap();
        new.scheduler.max_containers = 3;
        new.log.audit = None;
        assert_eq!(
            restart_needed(&started, &new),
            ["ssh.listen", "scheduler", "log"]
        );
    }
}
