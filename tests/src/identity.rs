//! Building blocks for the identity tests: a `[[resolver]]` as the gateway's defaults make it,
//! and an HTTPS request as the gateway's front will hand it to the resolvers.

use std::collections::BTreeMap;

use orca::config::{PluginSource, ResolverConfig};
use orca::identity::{Client, HttpRequest};

/// A resolver with the gateway's default limits; tests change the fields they exercise.
pub fn resolver(name: &str, plugin: PluginSource, settings: &[(&str, &str)]) -> ResolverConfig {
    ResolverConfig {
        config: settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..ResolverConfig::new(name, plugin)
    }
}

/// A client at `address`.
pub fn client(address: &str) -> Client {
    Client {
        address: address.to_string(),
        port: 40000,
    }
}

/// `GET /` for image `shell` from `address`, with these headers (lower-case names) and cookies.
pub fn http_request(
    address: &str,
    headers: &[(&str, &str)],
    cookies: &[(&str, &str)],
) -> HttpRequest {
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    HttpRequest {
        method: "GET".into(),
        host: "shell.localhost".into(),
        image: Some("shell".into()),
        path: "/".into(),
        headers: pairs(headers),
        cookies: pairs(cookies),
        client: client(address),
    }
}
