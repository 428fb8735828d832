//! Serve.
