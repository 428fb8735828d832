//! `ssh-key`: Orca's bundled SSH resolver: public keys per user, read from the resolver's
//! read-only `files` directory.
//!
//! ```text
//! SshAttempt ─▶ password? ──yes──▶ pass
//!                  │ public key (signature already verified by the gateway)
//!                  ▼
//!               user name safe as a file name? ──no──▶ pass
//!                  ▼
//!               <user>.pub, or the user's `user="…"` lines of `authorized_keys`
//!                  │ none ──▶ pass
//!                  ▼
//!               same key blob? ──yes──▶ allow(user, groups:<user>)   no ──▶ deny
//! ```
//!
//! Modules in flow order: `config` (settings), `authorized` (one key line), `keys` (the
//! decision, and the directory and log boundaries). Only this file talks to the SDK's host
//! imports, so everything else is tested natively.

/// One `authorized_keys` line.
mod authorized;
/// The settings, checked once.
mod config;
/// The decision, and the directory and log boundaries.
mod keys;

use orca_sdk::{Resolver, Settings, Ssh, SshAttempt, Verdict};

use crate::config::Config;
use crate::keys::{Dir, Keys, Log};

/// The resolver: one per instance, made by `init`.
#[derive(Debug)]
pub struct SshKey {
    keys: Keys,
}

impl Resolver for SshKey {
    fn init(settings: Settings) -> Result<Self, String> {
        let config = Config::from_settings(&settings)?;
        Ok(SshKey {
            keys: Keys::new(config, Dir::new(orca_sdk::files::ROOT)),
        })
    }
}

impl Ssh for SshKey {
    fn resolve(&self, attempt: SshAttempt) -> Verdict {
        self.keys.resolve(&attempt, &Host)
    }
}

// Only for the component: a native `cdylib` cannot carry the WIT export names (`:` and `@`
// break the linker's version script), and native builds exist only for the unit tests.
#[cfg(target_family = "wasm")]
orca_sdk::export!(SshKey: ssh);

/// The gateway's log, through the SDK's host import.
struct Host;

impl Log for Host {
    fn debug(&self, message: &str) {
        orca_sdk::log::debug(message);
    }

    fn warn(&self, message: &str) {
        orca_sdk::log::warn(message);
    }
}
