//! The `orca` binary: parse the command line, set up logging and signals, run.

use std::process::ExitCode;

use clap::Parser;
use orca::cli::{self, Cli, Command, PluginCommand};
use orca::config::{Config, LogFormat};
use orca::serve::Control;

/// mimalloc rather than glibc's malloc: a proxy allocates and frees many small, short-lived
/// buffers per request on two threads, and under load glibc's malloc (arena locks, chunk
/// consolidation) took about a quarter of the gateway's user time (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `orca serve` reads its configuration before logging starts: `[log] format` decides how
    // log lines are written.
    let serve_config = match &cli.command {
        Command::Serve { config, .. } => match cli::load_config(config.as_deref()) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    init_logging(
        serve_config
            .as_ref()
            .map_or(LogFormat::Human, |c| c.log.format),
    );
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
    runtime.block_on(run(cli.command, serve_config))
}

/// Log lines to stderr, for people or (`json`) one object per line for collectors.
/// `RUST_LOG` sets the levels.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // rustls warns about what clients send (an IP address as SNI, say): any client could
        // fill the log at WARN, one line per connection. Its errors still show.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rustls=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().with_current_span(false).init(),
    }
}

async fn run(command: Command, serve_config: Option<Config>) -> ExitCode {
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
            cleanup_on_exit, ..
        } => {
            let Some(config) = serve_config else {
                return ExitCode::FAILURE; // loaded in main for every `serve`
            };
            let control = Control {
                cleanup: cleanup_on_exit,
                ..Control::default()
            };
            tokio::spawn(forward_signals(control.clone()));
            match orca::serve::run(config, control).await {
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

/// SIGTERM and SIGINT begin a graceful shutdown; SIGHUP asks for a reload, as often as sent.
async fn forward_signals(control: Control) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers; stop orca with SIGKILL");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => control.reload.notify_one(),
        }
    }
    control.shutdown.cancel();
}
