//! From TOML text to the [`FileConfig`] mirror, every mistake reported with its key and line.
//!
//! Serde stops at its first error, so the entry it rejects is located by its span, reported,
//! removed from the document, and deserialization runs again until the rest fits: one run
//! names every unknown key and every value of the wrong type.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::ConfigError;
use super::file::FileConfig;

/// An error and the line it is about, if any.
pub(super) type Located = (Option<usize>, ConfigError);

/// The line of every key in the file, to point value errors at it.
pub(super) struct KeyLines(BTreeMap<String, usize>);

impl KeyLines {
    pub(super) fn of(text: &str, root: &DeTable<'_>) -> Self {
        fn walk(text: &str, table: &DeTable<'_>, prefix: &str, out: &mut BTreeMap<String, usize>) {
            for (k, v) in table.iter() {
                let key = if prefix.is_empty() {
                    k.get_ref().to_string()
                } else {
                    format!("{prefix}.{}", k.get_ref())
                };
                out.entry(key.clone())
                    .or_insert(position(text, k.span().start).0);
                match v.get_ref() {
                    DeValue::Table(t) => walk(text, t, &key, out),
                    DeValue::Array(items) => {
                        for (i, item) in items.iter().enumerate() {
                            let element = format!("{key}[{i}]");
                            out.insert(element.clone(), position(text, item.span().start).0);
                            if let DeValue::Table(t) = item.get_ref() {
                                walk(text, t, &element, out);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(text, root, "", &mut out);
        Self(out)
    }

    /// Appends the line of the error's key, or of the nearest enclosing table in the file.
    pub(super) fn annotate(&self, mut e: ConfigError) -> Located {
        let mut key = e.key.as_str();
        loop {
            if let Some(&line) = self.0.get(key) {
                let _ = write!(e.reason, " (line {line})");
                return (Some(line), e);
            }
            match key.rfind(['.', '[']) {
                Some(cut) => key = &key[..cut],
                None => return (None, e),
            }
        }
    }
}

/// Serde, retried without each entry it rejects so that all of them are reported.
pub(super) fn deserialize(
    text: &str,
    mut root: Spanned<DeTable<'_>>,
) -> (Option<FileConfig>, Vec<Located>) {
    let mut errors = Vec::new();
    // Every failed attempt removes one entry, so this ends within one attempt per entry.
    for _ in 0..=count_entries(root.get_ref()) {
        let e = match FileConfig::deserialize(toml::de::Deserializer::from(root.clone())) {
            Ok(file) => return (Some(file), errors),
            Err(e) => e,
        };
        let Some(found) = e.span().and_then(|span| locate(root.get_ref(), &span)) else {
            let error = ConfigError {
                key: String::new(),
                value: String::new(),
                reason: lowercase_first(e.message()),
            };
            errors.push((None, error));
            return (None, errors);
        };
        errors.push(structure_error(text, &found, &e));
        let path = found.path;
        remove(root.get_mut(), &path);
    }
    (None, errors)
}

/// One step of a dotted key: a table key or an index into an array of tables.
#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

/// The entry a serde error points at.
struct Found<'a, 'i> {
    path: Vec<Seg>,
    key_span: Range<usize>,
    value: &'a Spanned<DeValue<'i>>,
}

/// The innermost entry whose key or value span holds `at`.
fn locate<'a, 'i>(table: &'a DeTable<'i>, at: &Range<usize>) -> Option<Found<'a, 'i>> {
    for (k, v) in table.iter() {
        let deeper = child_tables(v.get_ref())
            .into_iter()
            .find_map(|(index, t)| locate(t, at).map(|found| (index, found)));
        let key = Seg::Key(k.get_ref().to_string());
        if let Some((index, mut found)) = deeper {
            let mut path = vec![key];
            path.extend(index.map(Seg::Index));
            path.append(&mut found.path);
            found.path = path;
            return Some(found);
        }
        if holds(&k.span(), at) || holds(&v.span(), at) {
            return Some(Found {
                path: vec![key],
                key_span: k.span(),
                value: v,
            });
        }
    }
    None
}

fn holds(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start < outer.end && outer.start <= inner.start && inner.end <= outer.end
}

fn remove(table: &mut DeTable<'_>, path: &[Seg]) {
    let Some((Seg::Key(first), rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        table.remove(first.as_str());
        return;
    }
    let Some(value) = table.get_mut(first.as_str()) else {
        return;
    };
    match (value.get_mut(), rest) {
        (DeValue::Table(t), _) => remove(t, rest),
        (DeValue::Array(items), [Seg::Index(i), rest @ ..]) => {
            if let Some(DeValue::Table(t)) = items.get_mut(*i).map(Spanned::get_mut) {
                remove(t, rest);
            }
        }
        _ => {}
    }
}

fn count_entries(table: &DeTable<'_>) -> usize {
    table
        .iter()
        .map(|(_, v)| {
            let inner: usize = child_tables(v.get_ref())
                .into_iter()
                .map(|(_, t)| count_entries(t))
                .sum();
            1 + inner
        })
        .sum()
}

/// The tables directly inside a value: the value itself, or the elements of an array of tables.
fn child_tables<'a, 'i>(v: &'a DeValue<'i>) -> Vec<(Option<usize>, &'a DeTable<'i>)> {
    match v {
        DeValue::Table(t) => vec![(None, t)],
        DeValue::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match item.get_ref() {
                DeValue::Table(t) => Some((Some(i), t)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn dotted(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Seg::Index(i) => {
                let _ = write!(s, "[{i}]");
            }
        }
    }
    s
}

/// Rewrites serde's message for the entry it rejected in the words of this file format.
fn structure_error(text: &str, found: &Found<'_, '_>, e: &toml::de::Error) -> Located {
    let (line, _) = position(text, found.key_span.start);
    let value = match found.value.get_ref() {
        DeValue::String(s) => s.to_string(),
        _ => text.get(found.value.span()).unwrap_or_default().to_string(),
    };
    let message = e.message();
    let leaf = match found.path.last() {
        Some(Seg::Key(k)) => k.as_str(),
        _ => "",
    };
    let reason = if message.starts_with("unknown field") {
        // serde's message: unknown field `x`, expected one of `a`, `b`
        let names: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
        let accepted = names.get(1..).unwrap_or_default();
        let table = table_name(&found.path[..found.path.len() - 1]);
        let list = accepted
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        match closest(leaf, accepted) {
            Some(s) => format!("unknown key in {table}: did you mean `{s}`? accepted keys: {list}"),
            None => format!("unknown key in {table}: remove it; accepted keys: {list}"),
        }
    } else if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (serde_found, serde_expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let found_kind = if e.span() == Some(found.value.span()) {
            kind(found.value.get_ref()).to_string()
        } else {
            serde_found
                .replace("sequence", "an array")
                .replace("map", "a table")
        };
        let expected = example(leaf).unwrap_or(serde_expected);
        format!("wrong type: found {found_kind}, expected {expected}")
    } else {
        lowercase_first(message)
    };
    let error = ConfigError {
        key: dotted(&found.path),
        value,
        reason: format!("{reason} (line {line})"),
    };
    (Some(line), error)
}

fn table_name(path: &[Seg]) -> String {
    match path {
        [] => "the top level".to_string(),
        [Seg::Key(k), Seg::Index(_)] => format!("`[[{k}]]`"),
        _ => format!("`[{}]`", dotted(path)),
    }
}

fn kind(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// What a key holds, with an example to copy.
fn example(key: &str) -> Option<&'static str> {
    Some(match key {
        "domain" => r#"a string such as `"orca.example.org"`"#,
        "state_dir" | "cert" | "key" | "files" | "token_file" | "audit" => {
            r#"a path string such as `"/var/lib/orca"`"#
        }
        "instance" => r#"a string such as `"orca"`"#,
        "listen" => r#"a string such as `"127.0.0.1:8443"`"#,
        "host_keys" => r#"an array of paths such as `["ssh_host_ed25519_key"]`"#,
        "host" => r#"a string such as `"unix:///var/run/docker.sock"`"#,
        "network" => r#"a string such as `"bridge"`"#,
        "login_url" => r#"a string such as `"https://sso.example.org/login?next={url}"`"#,
        "mode" => r#"`"redirect"` or `"serve"`"#,
        "format" => r#"`"human"` or `"json"`"#,
        "trusted_proxies" => r#"an array of addresses or blocks such as `["10.0.0.0/8"]`"#,
        "launch_parallelism" | "launch_attempts" | "max_containers" | "workers" => {
            "a whole number such as `4`"
        }
        "memory_mb" => "a whole number such as `64`",
        "reuse" | "concurrency" => "a whole number such as `16`",
        "launch_retry_delay" | "ready_timeout" | "restart_grace" | "timeout" | "cache_max"
        | "response_timeout" | "shutdown_grace" => {
            r#"a duration string such as `"500ms"`, `"30s"` or `"2m"`"#
        }
        "https" | "http" | "ssh" | "admin" | "docker" | "scheduler" | "log" => {
            "a table: a `[name]` line followed by its keys"
        }
        "resolver" => "one `[[resolver]]` table per resolver",
        "name" => r#"a string such as `"sessions"`"#,
        "plugin" => r#"a string such as `"bundled:cookie"` or `"plugins/cookie.wasm"`"#,
        "config" => r#"an inline table such as `{ cookie = "orca_session" }`"#,
        "connect" => r#"an array of `host:port` strings such as `["127.0.0.1:389"]`"#,
        _ => return None,
    })
}

/// The accepted name a misspelt one was most likely meant to be.
fn closest<'a>(name: &str, accepted: &[&'a str]) -> Option<&'a str> {
    accepted
        .iter()
        .map(|a| (edit_distance(name, a), *a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 3) || a.contains(name) || name.contains(a))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// A TOML syntax error, with its line and column.
pub(super) fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let start = e.span().map_or(text.len(), |s| s.start);
    let (line, column) = position(text, start);
    ConfigError {
        key: String::new(),
        value: text
            .lines()
            .nth(line - 1)
            .unwrap_or_default()
            .trim()
            .to_string(),
        reason: format!(
            "not valid TOML at line {line}, column {column}: {}",
            lowercase_first(e.message())
        ),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

pub(super) fn lowercase_first(s: &str) -> String {
    let mut chars = s.trim().chars();
    chars
        .next()
        .map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn errors(text: &str) -> Vec<ConfigError> {
        match super::super::file::parse(text, Path::new("/etc/orca"), None) {
            Ok(c) => panic!("expected errors, got {c:?}"),
            Err(e) => e.errors,
        }
    }

    #[test]
    fn unknown_keys_are_named_with_their_table_line_and_accepted_keys() {
        let errs = errors(
            "domain = \"orca.test\"\n\n[https]\nlisten = \"127.0.0.1:1\"\ncertificate = \"x.crt\"\n",
        );
        let [e] = errs.as_slice() else {
            panic!("{errs:?}")
        };
        assert_eq!(e.key, "https.certificate");
        assert_eq!(e.value, "x.crt");
        assert_eq!(
            e.to_string(),
            "key `https.certificate` = `x.crt`: unknown key in `[https]`: did you mean `cert`? \
             accepted keys: `listen`, `cert`, `key`, `login_url`, `response_timeout`, `workers` (line 5)"
        );

        let e = &errors("colour = 1\n")[0];
        assert_eq!(e.key, "colour");
        assert!(
            e.reason.starts_with(
                "unknown key in the top level: remove it; accepted keys: `domain`, `state_dir`"
            ),
            "{e}"
        );
        assert!(e.reason.ends_with("(line 1)"), "{e}");

        let e = &errors(
            "[[resolver]]\nname = \"a\"\nplugin = \"bundled:cookie\"\n\n[[resolver]]\nname = \"b\"\nplugin = \"bundled:ldap\"\nmemory = 3\n",
        )[0];
        assert_eq!(e.key, "resolver[1].memory");
        assert!(
            e.reason
                .contains("`[[resolver]]`: did you mean `memory_mb`?"),
            "{e}"
        );
        assert!(e.reason.ends_with("(line 8)"), "{e}");

        let e = &errors("ssh.listen_on = \"127.0.0.1:22\"\n")[0];
        assert_eq!(e.key, "ssh.listen_on");

        let e = &errors("[schedular]\nmax_containers = 3\n")[0];
        assert_eq!(
            (e.key.as_str(), e.value.as_str()),
            ("schedular", "[schedular]")
        );
        assert!(e.reason.contains("did you mean `scheduler`?"), "{e}");
    }

    #[test]
    fn wrong_types_name_the_key_and_show_what_fits() {
        let e = &errors("[https]\nlisten = 8443\n")[0];
        assert_eq!((e.key.as_str(), e.value.as_str()), ("https.listen", "8443"));
        assert_eq!(
            e.reason,
            r#"wrong type: found an integer, expected a string such as `"127.0.0.1:8443"` (line 2)"#
        );
        let e = &errors(
            "[[resolver]]\nname = \"r\"\nplugin = \"bundled:ldap\"\nconnect = [\"a:1\", 389]\n",
        )[0];
        assert_eq!(e.key, "resolver[0].connect");
        assert!(
            e.reason
                .contains("found integer `389`, expected an array of `host:port`"),
            "{e}"
        );
        let e = &errors("https = 3\n")[0];
        assert!(e.reason.contains("expected a table"), "{e}");
        let e = &errors("[scheduler]\nready_timeout = 60\n")[0];
        assert!(
            e.reason.contains(r#"a duration string such as `"500ms"`"#),
            "{e}"
        );
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        let errs = errors("domain = \"a\"\n[https\nlisten = 1\n");
        let e = &errs[0];
        assert_eq!(e.key, "");
        assert_eq!(e.value, "[https");
        assert!(
            e.reason.starts_with("not valid TOML at line 2, column 7: "),
            "{e}"
        );
        assert!(
            e.to_string()
                .starts_with("`[https`: not valid TOML at line 2"),
            "{e}"
        );
        let e = &errors("a = 1\na = 2\n")[0];
        assert!(
            e.reason.contains("line 2") && e.reason.contains("duplicate key"),
            "{e}"
        );
    }
}
