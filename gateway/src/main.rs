//! The `orca` binary: parse the command line, set up logging and signals, run.

use std::process::ExitCode;

use clap::Parser;
use orca::cli::{self, Cli, Command, PluginCommand};
use tokio_util::sync::CancellationToken;

/// mimalloc rather than glibc's malloc: a proxy allocates and frees many small, short-lived
/// buffers per request on two threads, and under load glibc's malloc (arena locks, chunk
/// consolidation) took about a quarter of the gateway's user time (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // rustls warns about what clients send (an IP address as SNI, say): any client
                // could fill the log at WARN, one line per connection. Its errors still show.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rustls=error")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli.command))
}

async fn run(command: Command) -> ExitCode {
    let (text, code) = match command {
        Command::CheckConfig { file } => cli::check_config(&file),
        Command::Labels => (cli::labels(), 0),
        Command::Plugin {
            command: PluginCommand::Check { file },
        } => cli::plugin_check(&file).await,
        Command::Images { config } => match cli::load_config(config.as_deref()) {
            Ok(c) => cli::images(&c).await,
            Err(e) => (e, 1),
        },
        Command::Status { config } => match cli::load_config(config.as_deref()) {
            Ok(c) => cli::status(&c).await,
            Err(e) => (e, 1),
        },
        Command::Serve {
            config,
            cleanup_on_exit,
        } => {
            let config = match cli::load_config(config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let shutdown = CancellationToken::new();
            tokio::spawn(forward_signals(shutdown.clone()));
            match orca::serve::run(config, shutdown, cleanup_on_exit).await {
                Ok(()) => (String::new(), 0),
                Err(e) => (format!("error: {e}\n"), 1),
            }
        }
    };
    if code == 0 {
        print!("{text}");
    } else {
        eprint!("{text}");
    }
    ExitCode::from(code as u8)
}

/// SIGTERM and SIGINT begin a graceful shutdown.
async fn forward_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop orca with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    shutdown.cancel();
}
