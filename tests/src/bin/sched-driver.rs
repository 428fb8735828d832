//! A gateway process stripped to its scheduler, for the `kill -9` adoption test: it places
//! the users named on the command line, prints their containers, and waits to be killed.
//!
//! Usage: `sched-driver INSTANCE STATE_DIR IMAGE USER...`

use std::sync::Arc;

use orca::config::Config;
use orca::metrics::Metrics;
use orca::runtime::docker::DockerRuntime;
use orca::scheduler::{Options, Scheduler, SessionKind, UserId};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [instance, state_dir, image, users @ ..] = args.as_slice() else {
        anyhow::bail!("usage: sched-driver INSTANCE STATE_DIR IMAGE USER...");
    };
    let mut config = Config::embedded();
    config.instance = instance.clone();
    config.state_dir = state_dir.into();
    let runtime = DockerRuntime::connect(None, &config.docker.network).await?;
    let scheduler = Scheduler::start(
        Arc::new(runtime),
        Options::from_config(&config),
        Arc::new(Metrics::new()),
    )
    .await?;
    let mut leases = Vec::new();
    for user in users {
        let lease = scheduler
            .acquire(&UserId::new(user.as_str()), image, SessionKind::Traffic)
            .await?;
        println!("CONTAINER {user} {}", lease.container);
        leases.push(lease);
    }
    // Let the persister write the bindings before announcing readiness.
    let file = std::path::Path::new(state_dir).join("scheduler.json");
    for _ in 0..100 {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if users
            .iter()
            .all(|u| text.contains(&format!("\"user\": \"{u}\"")))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    println!("READY");
    std::future::pending::<()>().await;
    Ok(())
}
