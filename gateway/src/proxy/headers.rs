//! Header rewriting between the client and the container.
//!
//! The container must never see what Orca uses to authenticate (its cookies, client-forged
//! `X-Orca-*` headers) and must learn who the user is only from the headers Orca sets. Hop-by-hop
//! headers describe one connection, so they are dropped on each side of the proxy (RFC 9110
//! §7.6.1) except the `Upgrade` pair of an upgrade that is passed through.

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::{Forwarded, ProxyError};

/// Headers set by Orca for the container; anything a client sends under this prefix is forged.
const ORCA_PREFIX: &str = "x-orca-";
const X_ORCA_USER: HeaderName = HeaderName::from_static("x-orca-user");
const X_ORCA_GROUPS: HeaderName = HeaderName::from_static("x-orca-groups");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The protocol a request asks to switch to, when it is a valid HTTP/1.1 upgrade request: an
/// `Upgrade` header and the `upgrade` token in `Connection` (without the token a proxy must
/// ignore `Upgrade`, RFC 9110 §7.8).
pub(super) fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let asked = connection_tokens(headers)
        .iter()
        .any(|token| token == "upgrade");
    if !asked {
        return None;
    }
    headers.get(header::UPGRADE).cloned()
}

/// Rewrites a client's request headers for the container.
///
/// `Host` and `X-Forwarded-Host` are the host the front routed on ([`Forwarded::host`]: the
/// request's authority, HTTP/2 `:authority` or an absolute-form target, before its `Host`
/// header, RFC 9112 §3.2.2, RFC 9113 §8.3.1): a client sending a different `Host` beside it
/// must not make the container believe it was asked for another host than the one that chose
/// it. `upgrade` is the protocol to keep asking for when the request is an upgrade.
pub(super) fn rewrite_request(
    headers: &mut HeaderMap,
    fwd: &Forwarded<'_>,
    upgrade: Option<HeaderValue>,
) -> Result<(), ProxyError> {
    let host = value("Host", fwd.host)?;
    // Read before stripping: a trusted chain is extended, not replaced.
    let prior_for = if fwd.trust_forwarded {
        join_values(headers, &X_FORWARDED_FOR)
    } else {
        None
    };

    strip_hop_by_hop(headers);
    remove_prefixed(headers, ORCA_PREFIX);
    strip_cookies(headers, fwd.strip_cookies);
    if !fwd.trust_forwarded {
        // `Forwarded` (RFC 7239) and nginx's `X-Real-IP` make the same claims as the
        // `X-Forwarded-*` set below, and many apps believe them first: from a client they are
        // forged. Only a trusted balancer's are passed on.
        headers.remove(header::FORWARDED);
        headers.remove(X_REAL_IP);
    }

    headers.insert(header::HOST, host.clone());
    if let Some(protocol) = upgrade {
        headers.insert(header::UPGRADE, protocol);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }

    headers.insert(X_ORCA_USER, value("X-Orca-User", fwd.user)?);
    headers.insert(
        X_ORCA_GROUPS,
        value("X-Orca-Groups", &fwd.groups.join(","))?,
    );
    let chain = match prior_for {
        Some(prior) => {
            let client = String::from_utf8_lossy(fwd.client.as_bytes());
            value("X-Forwarded-For", &format!("{prior}, {client}"))?
        }
        None => fwd.client.clone(),
    };
    headers.insert(X_FORWARDED_FOR, chain);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(fwd.proto));
    headers.insert(X_FORWARDED_HOST, host);
    Ok(())
}

/// Rewrites a container's response headers for the client. A `101` keeps its `Upgrade` header
/// and says `Connection: upgrade`, which the client needs to complete the switch.
pub(super) fn rewrite_response(headers: &mut HeaderMap, switching: bool) {
    let upgrade = headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(headers);
    if switching {
        if let Some(protocol) = upgrade {
            headers.insert(header::UPGRADE, protocol);
        }
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// The lowercase tokens listed in every `Connection` header.
fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .filter(|token| !token.is_empty())
        .collect()
}

/// Removes the headers that belong to one connection, including those `Connection` names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Without a `Connection` header (the common case) nothing is collected, and an empty
    // `Vec` allocates nothing.
    let named: Vec<HeaderName> = connection_tokens(headers)
        .iter()
        .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        KEEP_ALIVE,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    remove_prefixed(headers, "proxy-");
}

/// Removes every header whose (lower-case) name starts with `prefix`.
fn remove_prefixed(headers: &mut HeaderMap, prefix: &str) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(prefix))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// Drops the named cookies from every `Cookie` header and folds the survivors into one header
/// (HTTP/2 clients may split cookies over several; HTTP/1.1 wants one, RFC 9113 §8.2.3).
fn strip_cookies(headers: &mut HeaderMap, names: &[String]) {
    if names.is_empty() || !headers.contains_key(header::COOKIE) {
        return;
    }
    let mut kept: Vec<&[u8]> = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        for pair in value.as_bytes().split(|b| *b == b';') {
            let pair = pair.trim_ascii();
            if pair.is_empty() {
                continue;
            }
            let name = pair
                .split(|b| *b == b'=')
                .next()
                .unwrap_or(pair)
                .trim_ascii();
            if !names.iter().any(|n| n.as_bytes() == name) {
                kept.push(pair);
            }
        }
    }
    let folded = kept.join(&b"; "[..]);
    // The pieces came from valid header values and are joined by "; ", so this cannot fail;
    // should it, dropping the header only loses cookies, never leaks Orca's.
    let folded = HeaderValue::from_bytes(&folded).ok();
    headers.remove(header::COOKIE);
    if let Some(folded) = folded.filter(|v| !v.is_empty()) {
        headers.insert(header::COOKIE, folded);
    }
}

/// Every value of a header joined by ", ", or `None` when it is absent or not text.
fn join_values(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

fn value(name: &'static str, text: &str) -> Result<HeaderValue, ProxyError> {
    HeaderValue::from_str(text).map_err(|_| ProxyError::InvalidHeader {
        name,
        value: text.escape_debug().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use super::*;

    static GROUPS: LazyLock<Vec<String>> = LazyLock::new(|| vec!["dev".into(), "ops".into()]);
    static STRIP: LazyLock<Vec<String>> = LazyLock::new(|| vec!["orca_session".into()]);
    static CLIENT: HeaderValue = HeaderValue::from_static("10.0.0.7");

    fn fwd(trust: bool) -> Forwarded<'static> {
        Forwarded {
            user: "alice",
            groups: &GROUPS,
            client: &CLIENT,
            proto: "https",
            host: "app.example",
            strip_cookies: &STRIP,
            trust_forwarded: trust,
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    fn all(headers: &HeaderMap, name: &str) -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn request_loses_forgeries_hops_and_orca_cookie() {
        let mut headers = map(&[
            ("x-orca-user", "mallory"),
            ("X-Orca-Anything", "1"),
            ("connection", "keep-alive, X-Hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic x"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("upgrade", "websocket"),
            ("cookie", "orca_session=abc; theme=dark"),
            ("cookie", "lang=en;orca_session=def"),
            ("accept", "*/*"),
        ]);
        rewrite_request(&mut headers, &fwd(false), None).unwrap();
        for gone in [
            "x-orca-anything",
            "connection",
            "x-hop",
            "keep-alive",
            "proxy-authorization",
            "te",
            "trailer",
            "upgrade",
        ] {
            assert!(!headers.contains_key(gone), "{gone} survived");
        }
        assert_eq!(all(&headers, "x-orca-user"), ["alice"]);
        assert_eq!(all(&headers, "x-orca-groups"), ["dev,ops"]);
        assert_eq!(all(&headers, "cookie"), ["theme=dark; lang=en"]);
        assert_eq!(all(&headers, "accept"), ["*/*"]);
        assert_eq!(all(&headers, "host"), ["app.example"]);
        assert_eq!(all(&headers, "x-forwarded-for"), ["10.0.0.7"]);
        assert_eq!(all(&headers, "x-forwarded-proto"), ["https"]);
        assert_eq!(all(&headers, "x-forwarded-host"), ["app.example"]);
    }

    #[test]
    fn only_orca_cookies_means_no_cookie_header() {
        let mut headers = map(&[("cookie", "orca_session=abc")]);
        strip_cookies(&mut headers, &["orca_session".into()]);
        assert!(!headers.contains_key("cookie"));
    }

    #[test]
    fn cookie_with_orca_prefix_but_other_name_is_kept() {
        let mut headers = map(&[("cookie", "orca_session_x=1; orca_session=2")]);
        strip_cookies(&mut headers, &["orca_session".into()]);
        assert_eq!(all(&headers, "cookie"), ["orca_session_x=1"]);
    }

    #[test]
    fn forwarded_for_is_extended_only_when_trusted() {
        let original = [
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "5.6.7.8"),
        ];

        let mut trusted = map(&original);
        rewrite_request(&mut trusted, &fwd(true), None).unwrap();
        assert_eq!(
            all(&trusted, "x-forwarded-for"),
            ["1.2.3.4, 5.6.7.8, 10.0.0.7"]
        );

        let mut untrusted = map(&original);
        rewrite_request(&mut untrusted, &fwd(false), None).unwrap();
        assert_eq!(all(&untrusted, "x-forwarded-for"), ["10.0.0.7"]);
    }

    #[test]
    fn a_clients_forwarded_and_x_real_ip_are_dropped_a_balancers_kept() {
        let claims = [
            (
                "forwarded",
                "for=198.51.100.9;host=other.example;proto=http",
            ),
            ("x-real-ip", "198.51.100.9"),
        ];

        let mut client = map(&claims);
        rewrite_request(&mut client, &fwd(false), None).unwrap();
        assert!(!client.contains_key("forwarded") && !client.contains_key("x-real-ip"));

        let mut balancer = map(&claims);
        rewrite_request(&mut balancer, &fwd(true), None).unwrap();
        assert_eq!(
            all(&balancer, "forwarded"),
            ["for=198.51.100.9;host=other.example;proto=http"]
        );
        assert_eq!(all(&balancer, "x-real-ip"), ["198.51.100.9"]);
    }

    #[test]
    fn upgrade_needs_the_connection_token() {
        let asked = map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(upgrade_protocol(&asked).unwrap(), "websocket");
        let bare = map(&[("upgrade", "websocket")]);
        assert!(upgrade_protocol(&bare).is_none());
    }

    #[test]
    fn upgrade_request_keeps_upgrade_pair() {
        let mut headers = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        let protocol = upgrade_protocol(&headers);
        rewrite_request(&mut headers, &fwd(false), protocol).unwrap();
        assert_eq!(all(&headers, "upgrade"), ["websocket"]);
        assert_eq!(all(&headers, "connection"), ["upgrade"]);
    }

    #[test]
    fn response_hops_are_stripped_unless_switching() {
        let pairs = [
            ("connection", "upgrade, x-hop"),
            ("upgrade", "websocket"),
            ("x-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("sec-websocket-accept", "abc"),
        ];
        let mut plain = map(&pairs);
        rewrite_response(&mut plain, false);
        assert!(!plain.contains_key("upgrade") && !plain.contains_key("connection"));
        assert!(!plain.contains_key("x-hop") && !plain.contains_key("transfer-encoding"));

        let mut switching = map(&pairs);
        rewrite_response(&mut switching, true);
        assert_eq!(all(&switching, "upgrade"), ["websocket"]);
        assert_eq!(all(&switching, "connection"), ["upgrade"]);
        assert_eq!(all(&switching, "sec-websocket-accept"), ["abc"]);
        assert!(!switching.contains_key("x-hop"));
    }

    #[test]
    fn the_container_is_told_the_routed_host_not_a_clients_other_host() {
        let mut headers = map(&[("host", "bob.example"), ("x-forwarded-host", "bob.example")]);
        rewrite_request(&mut headers, &fwd(false), None).unwrap();
        assert_eq!(all(&headers, "host"), ["app.example"]);
        assert_eq!(all(&headers, "x-forwarded-host"), ["app.example"]);
    }

    #[test]
    fn user_with_control_characters_is_refused() {
        let mut bad = fwd(false);
        bad.user = "alice\r\nx-orca-user: root";
        let err = rewrite_request(&mut HeaderMap::new(), &bad, None).unwrap_err();
        assert!(matches!(
            err,
            ProxyError::InvalidHeader {
                name: "X-Orca-User",
                ..
            }
        ));
    }
}
