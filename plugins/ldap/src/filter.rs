//! LDAP search filters: the string form of RFC 4515 parsed into the tree that RFC 4511 §4.5.1
//! puts on the wire, and the escaping that keeps user input a value and never syntax.

use crate::ber::{OCTET_STRING, Writer};

/// A search filter (RFC 4511 §4.5.1.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Filter {
    /// Every one of these.
    And(Vec<Filter>),
    /// Any one of these.
    Or(Vec<Filter>),
    /// Not this one.
    Not(Box<Filter>),
    /// `(attr=value)`.
    Equal(String, Vec<u8>),
    /// `(attr=in*ter*fin)`: initial, any parts, final.
    Substrings {
        /// The attribute description.
        attr: String,
        /// Before the first `*`, if anything.
        initial: Option<Vec<u8>>,
        /// Between stars.
        any: Vec<Vec<u8>>,
        /// After the last `*`, if anything.
        last: Option<Vec<u8>>,
    },
    /// `(attr>=value)`.
    GreaterOrEqual(String, Vec<u8>),
    /// `(attr<=value)`.
    LessOrEqual(String, Vec<u8>),
    /// `(attr=*)`.
    Present(String),
    /// `(attr~=value)`.
    Approx(String, Vec<u8>),
    /// `(attr:dn:rule:=value)` in its forms.
    Extensible {
        /// The matching rule, if named.
        rule: Option<String>,
        /// The attribute, if named.
        attr: Option<String>,
        /// The value to match.
        value: Vec<u8>,
        /// Also match the attributes of the entry's DN.
        dn_attributes: bool,
    },
}

/// Escapes `value` for use as an assertion value in a filter string (RFC 4515 §3): `*`, `(`,
/// `)`, `\` and NUL must be escaped; every other byte outside printable ASCII is escaped too so
/// that the filter stays readable in logs.
pub(crate) fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        match b {
            b'*' | b'(' | b')' | b'\\' => out.push_str(&format!("\\{b:02x}")),
            0x21..=0x7e | b' ' => out.push(char::from(b)),
            _ => out.push_str(&format!("\\{b:02x}")),
        }
    }
    out
}

impl Filter {
    /// Parses a filter string such as `(&(objectClass=person)(uid=alice))`. A bare item without
    /// the outer parentheses (`uid=alice`) is accepted, as OpenLDAP's tools do.
    pub(crate) fn parse(text: &str) -> Result<Filter, String> {
        let text = text.trim();
        let wrapped;
        let text = if text.starts_with('(') {
            text
        } else {
            wrapped = format!("({text})");
            &wrapped
        };
        let mut p = Parser {
            bytes: text.as_bytes(),
            at: 0,
        };
        let filter = p.filter()?;
        if p.at != p.bytes.len() {
            return Err(format!("unexpected text after the filter at byte {}", p.at));
        }
        Ok(filter)
    }

    /// Writes the filter's BER encoding.
    pub(crate) fn encode(&self, w: &mut Writer) {
        match self {
            Filter::And(items) => w.constructed(0xa0, |w| items.iter().for_each(|f| f.encode(w))),
            Filter::Or(items) => w.constructed(0xa1, |w| items.iter().for_each(|f| f.encode(w))),
            Filter::Not(inner) => w.constructed(0xa2, |w| inner.encode(w)),
            Filter::Equal(a, v) => assertion(w, 0xa3, a, v),
            Filter::Substrings {
                attr,
                initial,
                any,
                last,
            } => w.constructed(0xa4, |w| {
                w.primitive(OCTET_STRING, attr.as_bytes());
                w.constructed(0x30, |w| {
                    if let Some(i) = initial {
                        w.primitive(0x80, i);
                    }
                    for a in any {
                        w.primitive(0x81, a);
                    }
                    if let Some(f) = last {
                        w.primitive(0x82, f);
                    }
                });
            }),
            Filter::GreaterOrEqual(a, v) => assertion(w, 0xa5, a, v),
            Filter::LessOrEqual(a, v) => assertion(w, 0xa6, a, v),
            Filter::Present(a) => w.primitive(0x87, a.as_bytes()),
            Filter::Approx(a, v) => assertion(w, 0xa8, a, v),
            Filter::Extensible {
                rule,
                attr,
                value,
                dn_attributes,
            } => w.constructed(0xa9, |w| {
                if let Some(r) = rule {
                    w.primitive(0x81, r.as_bytes());
                }
                if let Some(a) = attr {
                    w.primitive(0x82, a.as_bytes());
                }
                w.primitive(0x83, value);
                if *dn_attributes {
                    w.boolean(0x84, true);
                }
            }),
        }
    }
}

fn assertion(w: &mut Writer, tag: u8, attr: &str, value: &[u8]) {
    w.constructed(tag, |w| {
        w.primitive(OCTET_STRING, attr.as_bytes());
        w.primitive(OCTET_STRING, value);
    });
}

/// A recursive-descent parser over the filter string's bytes.
struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// Deeper nesting than this is refused: no real filter needs it, and it bounds the recursion.
const MAX_DEPTH: usize = 32;

impl Parser<'_> {
    fn filter(&mut self) -> Result<Filter, String> {
        self.filter_at(0)
    }

    fn filter_at(&mut self, depth: usize) -> Result<Filter, String> {
        if depth > MAX_DEPTH {
            return Err(format!("filters nested deeper than {MAX_DEPTH}"));
        }
        self.eat(b'(')?;
        let filter = match self.peek() {
            Some(b'&') => {
                self.at += 1;
                Filter::And(self.list(depth)?)
            }
            Some(b'|') => {
                self.at += 1;
                Filter::Or(self.list(depth)?)
            }
            Some(b'!') => {
                self.at += 1;
                Filter::Not(Box::new(self.filter_at(depth + 1)?))
            }
            _ => self.item()?,
        };
        self.eat(b')')?;
        Ok(filter)
    }

    fn list(&mut self, depth: usize) -> Result<Vec<Filter>, String> {
        let mut items = Vec::new();
        while self.peek() == Some(b'(') {
            items.push(self.filter_at(depth + 1)?);
        }
        if items.is_empty() {
            return Err(format!("an empty `&` or `|` at byte {}", self.at));
        }
        Ok(items)
    }

    fn item(&mut self) -> Result<Filter, String> {
        let start = self.at;
        let end = self.bytes[start..]
            .iter()
            .position(|b| matches!(b, b'=' | b'~' | b'<' | b'>'))
            .map(|p| start + p)
            .ok_or_else(|| format!("no `=` in the item at byte {start}"))?;
        let left = std::str::from_utf8(&self.bytes[start..end])
            .map_err(|_| "an attribute name that is not UTF-8".to_string())?;
        let op_len = if self.bytes[end] == b'=' { 1 } else { 2 };
        // A two-byte operator may be cut short by the end of the text (`(a~`).
        let op_end = (end + op_len).min(self.bytes.len());
        let op = &self.bytes[end..op_end];
        self.at = op_end;
        let raw_start = self.at;
        while let Some(b) = self.peek() {
            if b == b')' || b == b'(' {
                break;
            }
            self.at += 1;
        }
        let raw = &self.bytes[raw_start..self.at];
        match op {
            b"=" if left.contains(':') => extensible(left, raw),
            b"=" => {
                let attr = attribute(left)?;
                if raw == b"*" {
                    return Ok(Filter::Present(attr));
                }
                if raw.contains(&b'*') {
                    return substrings(attr, raw);
                }
                Ok(Filter::Equal(attr, unescape(raw)?))
            }
            b"~=" => Ok(Filter::Approx(attribute(left)?, unescape(raw)?)),
            b">=" => Ok(Filter::GreaterOrEqual(attribute(left)?, unescape(raw)?)),
            b"<=" => Ok(Filter::LessOrEqual(attribute(left)?, unescape(raw)?)),
            _ => Err(format!(
                "unknown operator at byte {end}: use =, ~=, >= or <="
            )),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, want: u8) -> Result<(), String> {
        if self.peek() == Some(want) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!(
                "expected `{}` at byte {}",
                char::from(want),
                self.at
            ))
        }
    }
}

/// An attribute description: a name or OID, with options (`cn;lang-en`).
fn attribute(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b';');
    if ok {
        Ok(text.to_string())
    } else {
        Err(format!("`{text}` is not an attribute name"))
    }
}

fn substrings(attr: String, raw: &[u8]) -> Result<Filter, String> {
    let parts: Vec<&[u8]> = raw.split(|b| *b == b'*').collect();
    let (first, rest) = parts.split_first().ok_or("an empty substring filter")?;
    let (last, middle) = rest.split_last().ok_or("an empty substring filter")?;
    let mut any = Vec::new();
    for m in middle {
        if m.is_empty() {
            return Err("two `*` in a row in a substring filter".to_string());
        }
        any.push(unescape(m)?);
    }
    let initial = (!first.is_empty()).then(|| unescape(first)).transpose()?;
    let last = (!last.is_empty()).then(|| unescape(last)).transpose()?;
    Ok(Filter::Substrings {
        attr,
        initial,
        any,
        last,
    })
}

/// `attr:dn:rule:=value`, `attr:=value`, `:dn:rule:=value`, `:rule:=value` (RFC 4515 §3).
fn extensible(left: &str, raw: &[u8]) -> Result<Filter, String> {
    let Some(left) = left.strip_suffix(':') else {
        return Err(format!(
            "`{left}=` is not an extensible match: write `attr:rule:=value`"
        ));
    };
    let mut parts = left.split(':');
    let attr = match parts.next() {
        Some("") | None => None,
        Some(a) => Some(attribute(a)?),
    };
    let mut dn_attributes = false;
    let mut rule = None;
    for part in parts {
        if part.eq_ignore_ascii_case("dn") && !dn_attributes && rule.is_none() {
            dn_attributes = true;
        } else if rule.is_none() && !part.is_empty() {
            rule = Some(attribute(part)?);
        } else {
            return Err(format!("`{left}:=` is not an extensible match"));
        }
    }
    if attr.is_none() && rule.is_none() {
        return Err("an extensible match names neither an attribute nor a rule".to_string());
    }
    Ok(Filter::Extensible {
        rule,
        attr,
        value: unescape(raw)?,
        dn_attributes,
    })
}

/// Undoes `\XX` escapes; any other `\` is an error.
fn unescape(raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' {
            let hex = raw
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a `\\` not followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eq(a: &str, v: &str) -> Filter {
        Filter::Equal(a.to_string(), v.as_bytes().to_vec())
    }

    #[test]
    fn parses_the_forms_of_rfc_4515() {
        assert_eq!(Filter::parse("(uid=alice)").unwrap(), eq("uid", "alice"));
        assert_eq!(Filter::parse("uid=alice").unwrap(), eq("uid", "alice"));
        assert_eq!(
            Filter::parse("(&(objectClass=person)(|(uid=a)(!(cn=b))))").unwrap(),
            Filter::And(vec![
                eq("objectClass", "person"),
                Filter::Or(vec![eq("uid", "a"), Filter::Not(Box::new(eq("cn", "b")))]),
            ])
        );
        assert_eq!(
            Filter::parse("(cn=*)").unwrap(),
            Filter::Present("cn".into())
        );
        assert_eq!(
            Filter::parse("(cn=a*b*c)").unwrap(),
            Filter::Substrings {
                attr: "cn".into(),
                initial: Some(b"a".to_vec()),
                any: vec![b"b".to_vec()],
                last: Some(b"c".to_vec()),
            }
        );
        assert_eq!(
            Filter::parse("(cn=*x*)").unwrap(),
            Filter::Substrings {
                attr: "cn".into(),
                initial: None,
                any: vec![b"x".to_vec()],
                last: None,
            }
        );
        assert_eq!(
            Filter::parse("(n>=5)").unwrap(),
            Filter::GreaterOrEqual("n".into(), b"5".to_vec())
        );
        assert_eq!(
            Filter::parse("(n<=5)").unwrap(),
            Filter::LessOrEqual("n".into(), b"5".to_vec())
        );
        assert_eq!(
            Filter::parse("(n~=5)").unwrap(),
            Filter::Approx("n".into(), b"5".to_vec())
        );
        assert_eq!(
            Filter::parse("(member:1.2.840.113556.1.4.1941:=cn=x)").unwrap(),
            Filter::Extensible {
                rule: Some("1.2.840.113556.1.4.1941".into()),
                attr: Some("member".into()),
                value: b"cn=x".to_vec(),
                dn_attributes: false,
            }
        );
        assert_eq!(
            Filter::parse("(:dn:2.5.13.5:=x)").unwrap(),
            Filter::Extensible {
                rule: Some("2.5.13.5".into()),
                attr: None,
                value: b"x".to_vec(),
                dn_attributes: true,
            }
        );
    }

    #[test]
    fn rejects_broken_filters() {
        for bad in [
            "",
            "(",
            "(uid=a",
            "(uid=a))",
            "(&)",
            "(=a)",
            "(u id=a)",
            "(uid=a\\zz)",
            "(a=b**c)",
            "(a:=b)x",
            "(:=x)",
            "(a:r:s:=x)",
            "(a~",
            "(a>",
            "(a<=",
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad:?} parsed");
        }
        let deep = format!("{}(a=b){}", "(!".repeat(40), ")".repeat(40));
        assert!(Filter::parse(&deep).is_err());
    }

    #[test]
    fn escaped_input_stays_a_value() {
        for hostile in ["*", "a)(uid=*", "\\", "x\0y", "(|(a=b))", "é", "a*b"] {
            let text = format!("(uid={})", escape(hostile));
            assert_eq!(
                Filter::parse(&text).unwrap(),
                eq("uid", hostile),
                "{hostile:?} → {text}"
            );
        }
        assert_eq!(escape("a*(b)\\"), "a\\2a\\28b\\29\\5c");
    }

    proptest::proptest! {
        /// Any user name, escaped into a template, parses back to exactly that value.
        #[test]
        fn any_escaped_name_is_one_equality_value(name in "\\PC{0,40}") {
            let parsed = Filter::parse(&format!("(&(objectClass=person)(uid={}))", escape(&name)));
            proptest::prop_assert_eq!(
                parsed,
                Ok(Filter::And(vec![eq("objectClass", "person"), eq("uid", &name)]))
            );
        }

        /// Arbitrary filter text is parsed or refused, never a panic.
        #[test]
        fn parsing_arbitrary_text_never_panics(text in "[()&|!=*~<>:a-z0-9\\\\ ]{0,40}") {
            let _ = Filter::parse(&text);
        }
    }

    #[test]
    fn encodes_as_rfc_4511_says() {
        let mut w = Writer::default();
        Filter::parse("(&(uid=a)(cn=*))").unwrap().encode(&mut w);
        assert_eq!(
            w.finish(),
            [
                0xa0, 0x0e, 0xa3, 0x08, 0x04, 0x03, b'u', b'i', b'd', 0x04, 0x01, b'a', 0x87, 0x02,
                b'c', b'n'
            ]
        );
    }
}
