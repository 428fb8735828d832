//! A complete resolver in a few lines: trust a header set by a front proxy.
//!
//! Build: `cargo build -p orca-sdk --example header --release --target wasm32-wasip2`, then name
//! `target/wasm32-wasip2/release/examples/header.wasm` in a `[[resolver]]`.

use orca_sdk::{Http, HttpRequest, Identity, Resolver, Settings, Verdict};

/// Believes `header` (default `x-user`) on every request.
struct Header {
    name: String,
}

impl Resolver for Header {
    fn init(settings: Settings) -> Result<Self, String> {
        settings.only(&["header"])?;
        Ok(Header {
            name: settings.get_or("header", "x-user").to_ascii_lowercase(),
        })
    }
}

impl Http for Header {
    fn resolve(&self, request: HttpRequest) -> Verdict {
        match request.header(&self.name) {
            Some(user) if !user.is_empty() => Verdict::allow(Identity::new(user)),
            _ => Verdict::Pass,
        }
    }
}

orca_sdk::export!(Header: http);
