//! The listeners: where connections arrive. HTTPS presents certificates from [`tls`].

pub mod tls;

mod san;
