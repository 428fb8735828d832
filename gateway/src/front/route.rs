//! Which image a request is for, from its `Host` (or HTTP/2 `:authority`).
//!
//! `https://<image>.<domain>/` selects an image (case-insensitive, port and a trailing dot
//! ignored); the bare domain serves the index of images; anything else is not ours.

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `<image>.<domain>`: the image's name, lower case.
    Image(String),
    /// The bare domain: the index of images the user may use.
    Index,
    /// A host outside the domain, several labels deep, or malformed.
    Foreign,
}

/// Longest DNS label; an image name longer cannot be a subdomain.
const MAX_LABEL: usize = 63;

/// Routes `host` (as the client sent it, possibly with a port) for `domain`.
pub fn route(host: &str, domain: &str) -> Route {
    let Some(name) = valid_host(host) else {
        return Route::Foreign;
    };
    // Compared without case and without copying: this runs on every request.
    let domain = domain.trim_end_matches('.');
    if name.eq_ignore_ascii_case(domain) {
        return Route::Index;
    }
    let Some(dot) = name.len().checked_sub(domain.len() + 1) else {
        return Route::Foreign;
    };
    let (label, rest) = name.split_at(dot);
    if !rest.starts_with('.') || !rest[1..].eq_ignore_ascii_case(domain) {
        return Route::Foreign;
    }
    let valid = !label.is_empty()
        && label.len() <= MAX_LABEL
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Route::Image(label.to_ascii_lowercase())
    } else {
        Route::Foreign
    }
}

/// The host name of a `Host` value, lower case, without port or trailing dot; `None` when
/// malformed (empty, bad port, IPv6 literal — images are never served on an address).
pub fn host_name(host: &str) -> Option<String> {
    valid_host(host).map(str::to_ascii_lowercase)
}

/// [`host_name`] in the case the client wrote it.
fn valid_host(host: &str) -> Option<&str> {
    let host = host.trim();
    if host.is_empty() || host.starts_with('[') {
        return None;
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) => {
            port.parse::<u16>().ok()?;
            name
        }
        None => host,
    };
    let name = name.trim_end_matches('.');
    if name.is_empty() || name.len() > 253 || name.contains(':') {
        return None;
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return None;
    }
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn images_index_and_foreign_hosts() {
        let d = "localhost";
        assert_eq!(
            route("shell.localhost:8443", d),
            Route::Image("shell".into())
        );
        assert_eq!(route("Shell.LOCALHOST", d), Route::Image("shell".into()));
        assert_eq!(
            route("shell.localhost.:8443", d),
            Route::Image("shell".into())
        );
        assert_eq!(route("localhost:8443", d), Route::Index);
        assert_eq!(route("a.b.localhost", d), Route::Foreign);
        assert_eq!(route("shelllocalhost", d), Route::Foreign);
        assert_eq!(route("evil.com", d), Route::Foreign);
        assert_eq!(route("shell.localhost.evil.com", d), Route::Foreign);
        assert_eq!(route("shell.localhost:99999", d), Route::Foreign);
        assert_eq!(route("[::1]:8443", d), Route::Foreign);
        assert_eq!(route("", d), Route::Foreign);
        assert_eq!(route("-x.localhost", d), Route::Foreign);
        assert_eq!(route("sh ell.localhost", d), Route::Foreign);
        assert_eq!(
            route("notebook.orca.example.org", "orca.example.org"),
            Route::Image("notebook".into())
        );
        assert_eq!(
            route("NoteBook.orca.example.org", "Orca.Example.ORG."),
            Route::Image("notebook".into())
        );
        assert_eq!(route("ORCA.example.org.", "orca.example.org"), Route::Index);
        assert_eq!(
            route("x.rca.example.org", "orca.example.org"),
            Route::Foreign
        );
    }

    proptest! {
        #[test]
        fn routing_never_panics_and_only_accepts_one_label(host in ".{0,80}") {
            match route(&host, "localhost") {
                Route::Image(name) => {
                    prop_assert!(!name.contains('.'));
                    prop_assert!(!name.is_empty() && name.len() <= MAX_LABEL);
                }
                Route::Index | Route::Foreign => {}
            }
        }
    }
}
