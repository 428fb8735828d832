//! Distinguished names as strings (RFC 4514): escaping a user name into a DN template, and
//! reading the value of a DN's first RDN (the group name in `cn=devs,ou=groups,…`).

/// Escapes `value` for use as an attribute value inside a DN string (RFC 4514 §2.4): the
/// special characters get a backslash, a leading `#` or space and a trailing space are escaped,
/// and NUL and other control bytes become `\XX`.
pub(crate) fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.len().saturating_sub(1);
    for (i, ch) in value.char_indices() {
        match ch {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=' => {
                out.push('\\');
                out.push(ch);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// The value of the first attribute of the first RDN, unescaped: `devs` for
/// `cn=devs,ou=groups,dc=example,dc=org`. `None` when the DN does not start with
/// `type=value`, or the value is a `#`-hex BER encoding.
pub(crate) fn first_value(dn: &str) -> Option<String> {
    let (_, rest) = dn.split_once('=')?;
    let bytes = rest.as_bytes();
    if bytes.first() == Some(&b'#') {
        return None;
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b',' | b'+' => break,
            b'\\' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match (hex, bytes.get(i + 1)) {
                    (Some(b), _) => {
                        out.push(b);
                        i += 3;
                    }
                    (None, Some(&c)) => {
                        out.push(c);
                        i += 2;
                    }
                    (None, None) => return None,
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    let value = String::from_utf8(out).ok()?;
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_rfc_4514_requires() {
        assert_eq!(escape("alice"), "alice");
        assert_eq!(escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape("x=y;z"), "x\\=y\\;z");
        assert_eq!(escape("<\"\\>"), "\\<\\\"\\\\\\>");
        assert_eq!(escape("#lead"), "\\#lead");
        assert_eq!(escape("mid#dle"), "mid#dle");
        assert_eq!(escape(" pad "), "\\ pad\\ ");
        assert_eq!(escape("nul\0"), "nul\\00");
        assert_eq!(escape("Zoë"), "Zoë");
    }

    #[test]
    fn escaped_values_read_back_as_the_first_rdn() {
        for v in ["alice", "a,b", "o=x,dc=evil", "#h", " s ", "q\"\\<>;+"] {
            let dn = format!("uid={},ou=people,dc=example,dc=org", escape(v));
            assert_eq!(first_value(&dn).as_deref(), Some(v.trim()), "{dn}");
        }
    }

    #[test]
    fn first_value_reads_group_names() {
        assert_eq!(
            first_value("cn=devs,ou=groups,dc=example,dc=org").as_deref(),
            Some("devs")
        );
        assert_eq!(
            first_value("CN=Domain Users,CN=Users,DC=corp").as_deref(),
            Some("Domain Users")
        );
        assert_eq!(first_value("cn=a\\2cb,dc=x").as_deref(), Some("a,b"));
        assert_eq!(first_value("cn=x+uid=y,dc=z").as_deref(), Some("x"));
        assert_eq!(first_value("cn=#04024869,dc=z"), None);
        assert_eq!(first_value("nothing"), None);
        assert_eq!(first_value("cn=,dc=z"), None);
    }
}
