//! The SSH front: what an SSH login asks for, who it is (the resolver chain's `ssh` and
//! `password` interfaces), which image it lands in, and the bytes between the session's
//! channels and the container. The transport (russh, host keys) is in [`crate::listeners`].
//!
//! Built in steps (issue 5); so far: the login name ([`login`]), the credentials as the
//! resolvers see them ([`auth`]), and logins answered by the resolvers ([`server`]); sessions
//! are not served yet, and `orca serve` does not start the SSH listener.

pub mod auth;
mod bridge;
pub mod login;
pub mod menu;
pub mod server;
pub mod session;
