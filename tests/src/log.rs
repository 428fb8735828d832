//! The gateway's log during a test: kept with the test's own output, so a failing test prints
//! what the gateway did (cargo shows a test's output only when it fails).
//!
//! The harnesses run the gateway inside the test process. Its tasks run on the threads of the
//! test's own runtime, which inherit the test's output capture, so each test gets the lines of
//! its own gateway. `ORCA_TEST_LOG` takes a filter (`orca=debug`); the default is Orca's `info`
//! and everyone's warnings.

use tracing_subscriber::EnvFilter;

/// Installs the capturing subscriber once per test process; later calls do nothing.
pub fn capture() {
    let filter = EnvFilter::try_from_env("ORCA_TEST_LOG")
        .unwrap_or_else(|_| EnvFilter::new("warn,orca=info"));
    // Another subscriber already set (a test of its own) is left in place.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}
