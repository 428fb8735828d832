//! The SSH front: what an SSH login asks for, who it is (the resolver chain's `ssh` and
//! `password` interfaces), which image it lands in, and the bytes between the session's
//! channels and the container. The transport (russh, host keys) is in [`crate::listeners`].
//!
//! Files in flow order: the login name ([`login`]), the credentials as the resolvers see them
//! ([`auth`]), the connection's handler answering logins and requests ([`server`]), one session
//! channel from its requests to its exit status ([`session`]), the image menu ([`menu`]), and
//! the bytes between a channel and its container (`bridge`).

pub mod auth;
mod bridge;
pub mod login;
pub mod menu;
pub mod server;
pub mod session;
