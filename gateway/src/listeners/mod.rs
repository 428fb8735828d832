//! The listeners: where connections arrive. HTTPS (and the optional plain HTTP listener) is
//! served by [`https::serve`] with certificates from [`tls`].

pub mod https;
pub mod tls;
pub mod workers;

mod prefixed;
mod san;
