//! `ldap`: Orca's bundled LDAP resolver.
//!
//! It checks passwords by binding to the directory as the user (a DN template, or a search with
//! a service account first), reads the user's groups and display name, and answers SSH public
//! key attempts from the user's `sshPublicKey` values (openssh-lpk schema). It speaks LDAPv3
//! itself over `std::net::TcpStream` (wasi:sockets inside the component), with TLS by rustls
//! for `ldaps://` and StartTLS, and tries the configured servers in order under a deadline each.
//!
//! Modules in flow order: [`config`] (settings) → [`directory`] (the decisions, server
//! failover) → `conn` (one connection under a deadline, TLS) → `proto` (LDAP messages) →
//! `filter`, `dn`, `ber` (encodings), with `sshkey` (comparing keys). Only this file talks to
//! the SDK's host imports, so everything else is tested natively against a real slapd
//! (`tests/slapd.rs`).

mod ber;
pub mod config;
mod conn;
pub mod directory;
mod dn;
mod filter;
mod proto;
mod sshkey;

use orca_sdk::{
    Client, Credential, Identity, Password, Resolver, Settings, Ssh, SshAttempt, Verdict,
};

pub use crate::config::Config;
pub use crate::directory::{Answer, Directory, Outcome, User};

/// The resolver: one per instance, made by `init`.
#[derive(Debug)]
pub struct Ldap {
    directory: Directory,
}

impl Resolver for Ldap {
    fn init(settings: Settings) -> Result<Self, String> {
        let config = Config::from_settings(&settings, &orca_sdk::files::read_to_string)?;
        if config.has_plaintext_server() {
            orca_sdk::log::warn(
                "some servers are plain ldap:// without starttls: passwords cross the network \
                 in the clear",
            );
        }
        Ok(Ldap {
            directory: Directory::new(config),
        })
    }
}

impl Ssh for Ldap {
    fn resolve(&self, attempt: SshAttempt) -> Verdict {
        let answer = match &attempt.credential {
            Credential::PublicKey(key) => self.directory.check_key(&attempt.user, &key.blob),
            Credential::Password(password) => {
                self.directory.check_password(&attempt.user, password)
            }
        };
        self.verdict(answer)
    }
}

impl Password for Ldap {
    fn check(&self, user: String, password: String, _client: Client) -> Verdict {
        self.verdict(self.directory.check_password(&user, &password))
    }
}

impl Ldap {
    /// Logs what happened on the way and turns the answer into the WIT verdict.
    fn verdict(&self, answer: Answer) -> Verdict {
        for note in &answer.notes {
            orca_sdk::log::warn(note);
        }
        match answer.outcome {
            Outcome::Allow(user) => {
                orca_sdk::log::debug(&format!("allow {} ({})", user.id, user.dn));
                let mut who = Identity::new(user.id).with_groups(user.groups);
                if let Some(name) = user.display_name {
                    who = who.with_display_name(name);
                }
                Verdict::allow_cached(who, self.directory.config().cache_seconds())
            }
            Outcome::Deny(reason) => Verdict::deny(reason),
            Outcome::Unavailable(reason) => {
                orca_sdk::log::error(&reason);
                Verdict::deny_with_message(
                    reason,
                    "the directory cannot be reached; try again later",
                )
            }
            Outcome::Pass(reason) => {
                orca_sdk::log::debug(&format!("pass: {reason}"));
                Verdict::Pass
            }
        }
    }
}

// Only the component exports the interfaces: a native build (the tests) links as a shared
// library whose version script cannot name the component model's export symbols.
#[cfg(target_arch = "wasm32")]
orca_sdk::export!(Ldap: ssh, password);
