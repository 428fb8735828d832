//! The Rust SDK for Orca identity resolvers.
//!
//! Resolvers are WASI preview-2 components implementing the `orca:identity` WIT package in
//! `wit/`. This crate will hold the traits, types and export macro that make a resolver a few
//! lines; the WIT package and the host land with the identity issue, and this crate fills in
//! with them. Until then it is an empty member of the workspace so that its place is fixed.
#![deny(missing_docs)]
