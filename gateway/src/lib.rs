//! Orca: an edge gateway that gives every user a container of their own.
//!
//! The data path is the module list, in flow order:
//!
//! ```text
//!  listeners ──Conn──▶ identity ──Identity──▶ scheduler ──Lease──▶ proxy ──bytes──▶ container
//!                                               │
//!                                               └──▶ runtime (Docker: create, start, stop, events)
//! ```
//!
//! - [`identity`] asks the resolver plugins (WebAssembly components, loaded by wasmtime in a
//!   sandbox) who a request or an SSH attempt is, and answers a [`identity::Decision`]; its
//!   allowed identity's id becomes the [`scheduler::UserId`].
//! - [`scheduler`] decides which container serves a (user, image) pair: the user's bound
//!   container, else the fullest running one with a free slot, else a new one. It hands back a
//!   [`scheduler::Lease`]: the container's endpoint plus an activity handle. It is the only
//!   stage that calls [`runtime`].
//! - [`runtime`] is the container engine behind a trait; [`runtime::docker`] speaks the Docker
//!   API through bollard.
//! - [`front`] (HTTPS) and [`ssh`] (SSH) take a listener's connection through the stages: who
//!   it is, which container, then its bytes (SSH sessions reach a container's console or
//!   commands through the lease, never the engine).
//! - [`admin`] is the operator's front, on the admin listener: health, metrics, and the API
//!   that lists the scheduler's containers and sessions and ends them; `orca status` is its
//!   client.
//!
//! Leaves that import no stage: [`config`] (the TOML file, parsed once), [`images`] (image
//! labels parsed into an [`images::ImageSpec`]), [`metrics`], [`audit`] (the audit log),
//! [`clock`], [`live`] (values a reload replaces), [`signal`] and [`error`].

pub mod audit;
pub mod clock;
pub mod config;
pub mod error;
pub mod images;
pub mod live;
pub mod metrics;
pub mod signal;
pub mod units;
mod write_through;

pub mod listeners;

pub mod identity;
pub mod proxy;

pub mod front;
pub mod runtime;
pub mod scheduler;
pub mod ssh;

pub mod admin;

pub mod cli;
pub mod serve;
