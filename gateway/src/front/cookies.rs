//! `Cookie` request headers, read leniently: browsers and HTTP/2 clients may send several
//! headers or one with many pairs; a malformed pair is skipped, never an error.

use hyper::header::{COOKIE, HeaderMap};

/// Every `name=value` pair of every `Cookie` header, in order; quotes around a value removed.
pub fn parse(headers: &HeaderMap) -> Vec<(String, String)> {
    pairs(headers)
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// [`parse`] without copying: the pairs borrowed from the headers.
pub fn pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let name = name.trim();
            if name.is_empty() || name.bytes().any(|b| b.is_ascii_control() || b == b' ') {
                return None;
            }
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            Some((name, value))
        })
}

/// A `Set-Cookie` value for the whole domain, with the attributes SPEC §6 fixes.
pub fn set(name: &str, value: &str, max_age: u32, domain: &str) -> String {
    format!(
        "{name}={value}; Max-Age={max_age}{}; Path=/; Secure; HttpOnly; SameSite=Lax",
        domain_attribute(domain)
    )
}

/// A `Set-Cookie` value that clears `name` in the browser.
pub fn clear(name: &str, domain: &str) -> String {
    format!(
        "{name}=; Max-Age=0{}; Path=/; Secure; HttpOnly; SameSite=Lax",
        domain_attribute(domain)
    )
}

/// `; Domain=<domain>` so the cookie reaches every `<image>.<domain>`. A single-label domain
/// (`localhost`) gets none: browsers refuse a `Domain` attribute naming one, so there the
/// cookie stays with the host that set it.
fn domain_attribute(domain: &str) -> String {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if domain.contains('.') {
        format!("; Domain={domain}")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn pairs_from_several_headers_skip_garbage() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; b=\"two\"; junk; =x"));
        h.append(COOKIE, HeaderValue::from_static("orca_session=v1.x.y"));
        assert_eq!(
            parse(&h),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "two".into()),
                ("orca_session".into(), "v1.x.y".into()),
            ]
        );
    }

    #[test]
    fn set_cookie_has_the_fixed_attributes() {
        let s = set("orca_session", "v", 60, "Orca.Example.org.");
        assert_eq!(
            s,
            "orca_session=v; Max-Age=60; Domain=orca.example.org; Path=/; Secure; HttpOnly; SameSite=Lax"
        );
        let c = clear("orca_session", "localhost");
        assert!(c.contains("Max-Age=0") && !c.contains("Domain"), "{c}");
    }
}
