//! One line of an `authorized_keys` or `.pub` file:
//! `[options] keytype base64-blob [comment]`.
//!
//! The options field is a comma-separated list of `name` or `name="value"` items whose quoted
//! values may hold spaces, commas and `\"`; it ends at the first white space outside quotes.
//! Whether a line starts with options is decided the robust way: the first field is the key
//! type only when the next field is base64 whose decoded blob names that same type. So any key
//! type works (Ed25519, ECDSA, RSA, security keys) without a list to keep up to date.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Base64 as OpenSSH writes it, with or without the padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A public key line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The options before the key, in order.
    pub(crate) options: Vec<KeyOption>,
    /// The key type named in the blob (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, …).
    pub(crate) key_type: String,
    /// The key in SSH wire encoding: what the gateway hands over as the attempt's `blob`.
    pub(crate) blob: Vec<u8>,
    /// Whatever follows the key.
    pub(crate) comment: String,
}

/// One item of the options field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyOption {
    /// Lower-cased name (`user`, `no-pty`).
    pub(crate) name: String,
    /// The unquoted value, for `name="value"`.
    pub(crate) value: Option<String>,
}

impl Entry {
    /// The users this line grants the key to (its `user="…"` options).
    pub(crate) fn users(&self) -> impl Iterator<Item = &str> {
        self.options
            .iter()
            .filter(|o| o.name == "user")
            .filter_map(|o| o.value.as_deref())
    }
}

/// The key on `line`, `Ok(None)` for a blank line or a `#` comment, or why the line is not a
/// key.
pub(crate) fn parse_line(line: &str) -> Result<Option<Entry>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    if let Some(entry) = parse_key(line, Vec::new()) {
        return Ok(Some(entry));
    }
    let (options, rest) = split_options(line)?;
    let options = parse_options(options)?;
    match parse_key(rest.trim_start(), options) {
        Some(entry) => Ok(Some(entry)),
        None => Err(describe_bad_key(rest.trim_start())),
    }
}

/// `keytype blob [comment]`, when the blob decodes and names the same key type.
fn parse_key(text: &str, options: Vec<KeyOption>) -> Option<Entry> {
    let (key_type, rest) = split_field(text);
    let (encoded, comment) = split_field(rest);
    let blob = BASE64.decode(encoded).ok()?;
    let inner = blob_type(&blob)?;
    if canonical_type(key_type) != inner {
        return None;
    }
    Some(Entry {
        options,
        key_type: inner.to_string(),
        blob,
        comment: comment.trim().to_string(),
    })
}

/// Why `text` (what follows the options) is not a key, for the operator.
fn describe_bad_key(text: &str) -> String {
    let (key_type, rest) = split_field(text);
    let (encoded, _) = split_field(rest);
    if key_type.is_empty() {
        return "no key after the options".to_string();
    }
    let Ok(blob) = BASE64.decode(encoded) else {
        return format!("the key after `{key_type}` is not base64");
    };
    match blob_type(&blob) {
        Some(inner) => format!("the line says `{key_type}` but the key is `{inner}`"),
        None => format!("the key after `{key_type}` is not an SSH public key"),
    }
}

/// The key type a line names, as the blob names it: signature algorithms of RSA keys
/// (`rsa-sha2-256`, `rsa-sha2-512`) are keys of type `ssh-rsa`.
fn canonical_type(name: &str) -> &str {
    match name {
        "rsa-sha2-256" | "rsa-sha2-512" => "ssh-rsa",
        other => other,
    }
}

/// The first SSH `string` of a key blob: its type.
pub(crate) fn blob_type(blob: &[u8]) -> Option<&str> {
    let len_bytes: [u8; 4] = blob.get(..4)?.try_into().ok()?;
    let len = usize::try_from(u32::from_be_bytes(len_bytes)).ok()?;
    let name = blob.get(4..4usize.checked_add(len)?)?;
    if name.is_empty() || blob.len() == 4 + len {
        // A type and no key material is not a key.
        return None;
    }
    std::str::from_utf8(name).ok()
}

/// The first white-space-separated field and the rest.
fn split_field(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    match text.find(char::is_whitespace) {
        Some(i) => (text.get(..i).unwrap_or(""), text.get(i..).unwrap_or("")),
        None => (text, ""),
    }
}

/// The options field (up to the first white space outside quotes) and the rest.
fn split_options(line: &str) -> Result<(&str, &str), String> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                return Ok((line.get(..i).unwrap_or(""), line.get(i..).unwrap_or("")));
            }
            _ => {}
        }
    }
    if quoted {
        Err("a quoted option value is not closed".to_string())
    } else {
        Err("no key on the line".to_string())
    }
}

/// `a,b="x, \"y\"",c` into its items.
fn parse_options(field: &str) -> Result<Vec<KeyOption>, String> {
    let mut options = Vec::new();
    let mut chars = field.chars().peekable();
    loop {
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            name.push(c);
            chars.next();
        }
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '@' || c == '.');
        if !valid_name {
            return Err(format!("`{name}` is not an option name"));
        }
        let mut value = None;
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.next() != Some('"') {
                return Err(format!(
                    "the value of option `{name}` must be in double quotes"
                ));
            }
            let mut text = String::new();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' if matches!(chars.peek(), Some('"') | Some('\\')) => {
                        text.extend(chars.next());
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => text.push(c),
                }
            }
            if !closed {
                return Err(format!("the value of option `{name}` is not closed"));
            }
            value = Some(text);
        }
        options.push(KeyOption {
            name: name.to_ascii_lowercase(),
            value,
        });
        match chars.next() {
            None => return Ok(options),
            Some(',') => {}
            Some(c) => return Err(format!("unexpected `{c}` after option `{name}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A syntactically valid Ed25519 key blob (32 bytes of key material).
    fn ed25519_blob() -> Vec<u8> {
        let mut blob = Vec::new();
        blob.extend_from_slice(&11u32.to_be_bytes());
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&32u32.to_be_bytes());
        blob.extend_from_slice(&[7; 32]);
        blob
    }

    fn key_text() -> String {
        format!("ssh-ed25519 {}", BASE64.encode(ed25519_blob()))
    }

    fn option(name: &str, value: Option<&str>) -> KeyOption {
        KeyOption {
            name: name.into(),
            value: value.map(Into::into),
        }
    }

    #[test]
    fn plain_keys_with_and_without_comments() {
        let e = parse_line(&format!("{}  alice@laptop  (work)", key_text()))
            .unwrap()
            .unwrap();
        assert_eq!(e.key_type, "ssh-ed25519");
        assert_eq!(e.blob, ed25519_blob());
        assert_eq!(e.comment, "alice@laptop  (work)");
        assert!(e.options.is_empty());
        let e = parse_line(&format!("\t{}\r", key_text())).unwrap().unwrap();
        assert_eq!(e.comment, "");
    }

    #[test]
    fn blank_lines_and_comments_are_skipped() {
        for line in ["", "   ", "# a comment", "  # indented ssh-ed25519 AAAA"] {
            assert_eq!(parse_line(line), Ok(None), "{line:?}");
        }
    }

    #[test]
    fn options_with_quoted_values() {
        let line = format!(
            r#"user="alice",no-pty,command="echo \"hi, there\" \\o/",from="10.0.0.0/8,192.0.2.1" {} c"#,
            key_text()
        );
        let e = parse_line(&line).unwrap().unwrap();
        assert_eq!(
            e.options,
            [
                option("user", Some("alice")),
                option("no-pty", None),
                option("command", Some(r#"echo "hi, there" \o/"#)),
                option("from", Some("10.0.0.0/8,192.0.2.1")),
            ]
        );
        assert_eq!(e.users().collect::<Vec<_>>(), ["alice"]);
        assert_eq!(e.blob, ed25519_blob());
        assert_eq!(e.comment, "c");
    }

    #[test]
    fn a_line_may_name_several_users_and_option_names_ignore_case() {
        let line = format!(r#"USER="alice",user="bob" {}"#, key_text());
        let e = parse_line(&line).unwrap().unwrap();
        assert_eq!(e.users().collect::<Vec<_>>(), ["alice", "bob"]);
    }

    #[test]
    fn a_quoted_value_containing_a_key_type_is_not_the_key() {
        let line = format!(r#"command="ssh-ed25519 AAAA",user="carol" {}"#, key_text());
        let e = parse_line(&line).unwrap().unwrap();
        assert_eq!(e.users().collect::<Vec<_>>(), ["carol"]);
    }

    #[test]
    fn bad_lines_say_why() {
        let blob = BASE64.encode(ed25519_blob());
        let cases = [
            (format!(r#"user="alice {}"#, key_text()), "not closed"),
            (format!(r#"user=alice {}"#, key_text()), "double quotes"),
            (format!(r#"user="a"x {}"#, key_text()), "unexpected `x`"),
            (format!(r#",user="a" {}"#, key_text()), "not an option name"),
            (
                format!(r#"user="a" ssh-rsa {blob}"#),
                "says `ssh-rsa` but the key is `ssh-ed25519`",
            ),
            (r#"user="a" ssh-ed25519 !!!"#.to_string(), "not base64"),
            (
                r#"user="a" ssh-ed25519 AAAA"#.to_string(),
                "not an SSH public key",
            ),
            (r#"user="a""#.to_string(), "no key on the line"),
            ("ssh-ed25519".to_string(), "no key on the line"),
        ];
        for (line, expected) in cases {
            let e = parse_line(&line).unwrap_err();
            assert!(e.contains(expected), "{line:?}: {e}");
        }
    }

    #[test]
    fn rsa_signature_names_stand_for_ssh_rsa_keys() {
        assert_eq!(canonical_type("rsa-sha2-512"), "ssh-rsa");
        assert_eq!(canonical_type("ssh-ed25519"), "ssh-ed25519");
    }

    #[test]
    fn random_lines_never_panic() {
        let alphabet = "ab =\",\\#\t-ssh-ed25519 AAAAC3Nz/+user\u{e9}";
        let chars: Vec<char> = alphabet.chars().collect();
        let mut seed: u32 = 0x1234_5678;
        for round in 0..20_000 {
            let mut line = String::new();
            for _ in 0..(round % 60) {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                line.push(chars[seed as usize % chars.len()]);
            }
            let _ = parse_line(&line);
        }
        for bytes in [
            &[0, 0, 0][..],
            &[0, 0, 0, 5, b'a'],
            &[255, 255, 255, 255, 1, 2],
            &[],
        ] {
            assert_eq!(blob_type(bytes), None);
        }
    }
}
