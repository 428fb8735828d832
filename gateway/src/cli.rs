//! The command line of SPEC §2, as plain functions that return the text to print and the exit
//! code, so tests call them directly.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::images::label_table;
use crate::metrics::Metrics;
use crate::runtime::Runtime as _;
use crate::runtime::docker::DockerRuntime;
use crate::scheduler::{Catalogue, CatalogueRow};
use crate::units::format_duration;

/// Orca: an edge gateway that gives every user a container of their own.
#[derive(Debug, Parser)]
#[command(name = "orca", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// Configuration file (TOML); embedded defaults when absent.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Stop and remove this instance's containers on exit instead of keeping them for
        /// the next start.
        #[arg(long)]
        cleanup_on_exit: bool,
    },
    /// List the images Orca sees, their effective settings, and every label error.
    Images {
        /// Configuration file (for the Docker address); embedded defaults when absent.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Show a running gateway's containers, their users and sessions, why each container is
    /// still up, and recent stops (asks the admin listener).
    Status {
        /// Configuration file (for the admin address and token); embedded defaults when absent.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file and print the effective configuration.
    CheckConfig {
        /// The file.
        file: PathBuf,
    },
    /// Print the table of image labels Orca understands.
    Labels,
    /// Work with identity resolver plugins.
    Plugin {
        /// What to do with a plugin.
        #[command(subcommand)]
        command: PluginCommand,
    },
}

/// `orca plugin …`
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Say which orca:identity interfaces a component exports, or exactly why it does not fit.
    Check {
        /// The component (`.wasm`).
        file: PathBuf,
    },
}

/// `orca plugin check FILE.wasm`: exit 0 when the component fits, 1 when it does not, 2 when
/// the file cannot be read or is not a component.
pub async fn plugin_check(file: &Path) -> (String, i32) {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => return (format!("{}: cannot read: {e}\n", file.display()), 2),
    };
    match crate::identity::wasm::check::check(&bytes).await {
        Ok(report) => {
            let code = if report.fits() { 0 } else { 1 };
            (format!("{}: {report}", file.display()), code)
        }
        Err(e) => (format!("{}: {e}\n", file.display()), 2),
    }
}

/// Loads the config named on the command line, or the embedded defaults.
pub fn load_config(path: Option<&Path>) -> Result<Config, String> {
    match path {
        Some(p) => Config::load(p).map_err(|e| e.to_string()),
        None => Ok(Config::embedded()),
    }
}

/// `orca check-config FILE`: the effective config, or every error.
pub fn check_config(path: &Path) -> (String, i32) {
    match Config::load(path) {
        Ok(config) => (
            format!(
                "# {} is valid; effective configuration:\n{}",
                path.display(),
                config.to_toml()
            ),
            0,
        ),
        Err(errors) => (errors.to_string(), 1),
    }
}

/// `orca images`: reads the engine's labelled images into a table.
pub async fn images(config: &Config) -> (String, i32) {
    let runtime =
        match DockerRuntime::connect(config.docker.host.as_deref(), &config.docker.network).await {
            Ok(r) => r,
            Err(e) => return (format!("error: {e}\n"), 1),
        };
    match runtime.list_images().await {
        Ok(list) => {
            let catalogue = Catalogue::default();
            let rows = catalogue.replace(&list, &Metrics::new());
            (render_images(&rows, &config.domain), 0)
        }
        Err(e) => (format!("error: {e}\n"), 1),
    }
}

/// Renders catalogue rows as the `orca images` table, then every error.
pub fn render_images(rows: &[CatalogueRow], domain: &str) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("no images with orca.* labels; label an image with `orca.kind=web` (or ssh) to serve it\n");
        return out;
    }
    let header = [
        "NAME", "STATUS", "KIND", "IMAGE", "PORT", "USERS", "CONC", "LIFESPAN", "INACTIVE",
        "LINGER", "METHOD", "READY", "PERSIST", "WARM",
    ];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        let status = match (&r.spec, &r.shadowed_by) {
            (_, Some(by)) => format!("shadowed by {by}"),
            (Ok(_), None) => "ok".to_string(),
            (Err(e), None) => format!(
                "disabled ({} label error{})",
                e.len(),
                if e.len() == 1 { "" } else { "s" }
            ),
        };
        let mut row = vec![r.name.clone(), status];
        match &r.spec {
            Ok(s) => row.extend([
                s.kinds.to_string(),
                r.reference.clone(),
                s.port.map_or("-".into(), |p| p.to_string()),
                s.users_total.to_string(),
                s.users_concurrent.to_string(),
                s.lifespan.map_or("none".into(), format_duration),
                format_duration(s.inactive),
                format_duration(s.linger),
                s.method.map_or("-".into(), |m| m.to_string()),
                s.ready.to_string(),
                s.persist_between_reconnects.to_string(),
                s.pool_warm.to_string(),
            ]),
            Err(_) => {
                row.push("-".into());
                row.push(r.reference.clone());
                row.extend(std::iter::repeat_n("-".to_string(), 10));
            }
        }
        table.push(row);
    }
    out.push_str(&crate::admin::table::table(&table));
    let usable: Vec<&CatalogueRow> = rows
        .iter()
        .filter(|r| r.spec.is_ok() && r.shadowed_by.is_none())
        .collect();
    for r in usable {
        if let Ok(s) = &r.spec
            && s.kinds.web
        {
            let _ = writeln!(out, "\n{}: https://{}.{domain}/", r.name, r.name);
        }
    }
    for r in rows {
        if let Err(errors) = &r.spec {
            let _ = writeln!(
                out,
                "\n{} ({}, {}) is unavailable:",
                r.name,
                r.reference,
                short(&r.image_id)
            );
            for e in errors {
                let _ = writeln!(out, "  - {e}");
            }
        }
    }
    out
}

/// `orca status`: the running gateway's containers, users and recent stops, asked of the
/// admin listener of `config`; exit 1 when it cannot be reached or answers an error.
pub async fn status(config: &Config) -> (String, i32) {
    match crate::admin::client::status(&config.admin).await {
        Ok(text) => (text, 0),
        Err(e) => (format!("error: {e}\n"), 1),
    }
}

/// `orca labels`: the label table with per-kind defaults.
pub fn labels() -> String {
    let mut out = String::new();
    let w = label_table().iter().map(|r| r.0.len()).max().unwrap_or(0);
    let _ = writeln!(out, "{:<w$}  {:<9}  {:<9}  MEANING", "LABEL", "WEB", "SSH");
    for (label, web, ssh, meaning) in label_table() {
        let _ = writeln!(out, "{label:<w$}  {web:<9}  {ssh:<9}  {meaning}");
    }
    out
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn status_without_a_running_gateway_exits_1_and_says_why() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let mut config = Config::embedded();
        config.admin.listen = addr;
        let (text, code) = status(&config).await;
        assert_eq!(code, 1);
        assert_eq!(
            text,
            format!(
                "error: cannot reach orca's admin listener at {addr}: connection refused; \
                 is `orca serve` running with this configuration?\n"
            )
        );
    }

    #[tokio::test]
    async fn status_with_an_unreadable_token_file_names_it() {
        let mut config = Config::embedded();
        config.admin.token_file = Some(PathBuf::from("/nonexistent/orca/admin.token"));
        let (text, code) = status(&config).await;
        assert_eq!(code, 1);
        assert!(
            text.starts_with(
                "error: cannot read the admin token file `/nonexistent/orca/admin.token`"
            ),
            "{text}"
        );
        assert!(text.contains("[admin] token_file"), "{text}");
    }
}
