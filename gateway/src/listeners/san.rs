//! The DNS names a certificate is for, read from its subjectAltName extension.
//!
//! SNI selection needs to know which names each configured certificate covers, and rustls only
//! answers "does this certificate cover that name" without saying whether an exact name or a
//! wildcard matched. This is a minimal DER walk down to the extension; it reads certificates the
//! operator supplied or Orca generated, never bytes from a client.

/// DER tag of a SEQUENCE.
const SEQUENCE: u8 = 0x30;
/// DER tag of an OBJECT IDENTIFIER.
const OID: u8 = 0x06;
/// DER tag of a BOOLEAN (an extension's `critical` flag).
const BOOLEAN: u8 = 0x01;
/// DER tag of an OCTET STRING (an extension's value).
const OCTET_STRING: u8 = 0x04;
/// Context tag `[3]` that wraps the extensions of a v3 TBSCertificate.
const EXTENSIONS: u8 = 0xa3;
/// Context tag `[2]` of a `dNSName` GeneralName.
const DNS_NAME: u8 = 0x82;
/// The subjectAltName OID, 2.5.29.17, as DER content bytes.
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// The lowercased `dNSName` entries of the certificate's subjectAltName; empty when the
/// certificate has none or cannot be read (it then serves only as the fallback).
pub(crate) fn dns_names(cert_der: &[u8]) -> Vec<String> {
    read_dns_names(cert_der).unwrap_or_default()
}

/// Whether `name` (a lowercased SNI host name) is covered by the certificate name `pattern`:
/// equal, or `*.rest` where `name` is one label followed by `.rest` (RFC 6125 §6.4.3: the
/// wildcard stands for exactly one whole label).
pub(crate) fn covers(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(rest) => name
            .split_once('.')
            .is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
        None => pattern == name,
    }
}

fn read_dns_names(der: &[u8]) -> Option<Vec<String>> {
    let (cert, _) = element(der, SEQUENCE)?;
    let (tbs, _) = element(cert, SEQUENCE)?;
    // Skip version, serial, signature algorithm, issuer, validity, subject and key info, and
    // the optional unique ids, until the `[3]` extensions wrapper.
    let mut rest = tbs;
    let extensions = loop {
        let (tag, content, next) = any(rest)?;
        if tag == EXTENSIONS {
            break content;
        }
        rest = next;
    };
    let (mut list, _) = element(extensions, SEQUENCE)?;
    while !list.is_empty() {
        let (extension, next) = element(list, SEQUENCE)?;
        list = next;
        let (oid, mut fields) = element(extension, OID)?;
        if oid != SUBJECT_ALT_NAME {
            continue;
        }
        if let Some((_, after)) = element(fields, BOOLEAN) {
            fields = after;
        }
        let (value, _) = element(fields, OCTET_STRING)?;
        let (mut names, _) = element(value, SEQUENCE)?;
        let mut out = Vec::new();
        while !names.is_empty() {
            let (tag, content, next) = any(names)?;
            names = next;
            if tag == DNS_NAME {
                // dNSName is IA5String: ASCII; anything else is not a name we could match.
                if let Ok(name) = std::str::from_utf8(content) {
                    out.push(name.to_ascii_lowercase());
                }
            }
        }
        return Some(out);
    }
    Some(Vec::new())
}

/// The element at the start of `input` if its tag is `tag`: its content and what follows it.
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, content, rest) = any(input)?;
    (found == tag).then_some((content, rest))
}

/// The element at the start of `input`: tag, content and what follows it. Only single-byte
/// tags, which is all a certificate uses down to the names.
fn any(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (content, rest) = rest.split_at(len);
    Some((tag, content, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_names_rcgen_wrote() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![
            "Example.com".to_string(),
            "*.example.com".to_string(),
            "127.0.0.1".to_string(),
        ])
        .unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(dns_names(cert.der()), ["example.com", "*.example.com"]);
    }

    #[test]
    fn garbage_has_no_names() {
        assert!(dns_names(b"").is_empty());
        assert!(dns_names(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_empty());
        assert!(dns_names(&[0x30, 0x03, 0x30, 0x01]).is_empty());
    }

    #[test]
    fn wildcards_cover_exactly_one_label() {
        assert!(covers("*.example.com", "a.example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", ".example.com"));
        assert!(covers("example.com", "example.com"));
        assert!(!covers("example.com", "a.example.com"));
    }
}
