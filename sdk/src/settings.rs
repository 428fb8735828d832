//! The operator's settings for a resolver, with the parsing every resolver needs.

use std::collections::BTreeMap;
use std::time::Duration;

/// The `config` table of a resolver's `[[resolver]]`, as strings.
///
/// Every accessor that can fail returns an error naming the setting, the value and what would
/// be accepted, ready to return from [`crate::Resolver::init`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    values: BTreeMap<String, String>,
}

impl Settings {
    /// Settings from key/value pairs (a later duplicate replaces an earlier one).
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Settings {
            values: pairs.into_iter().collect(),
        }
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// The value of `key`, or `default` when it is not set.
    pub fn get_or<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.get(key).unwrap_or(default)
    }

    /// The value of `key`, or an error saying it is required and what it is for.
    pub fn require(&self, key: &str, what: &str) -> Result<&str, String> {
        match self.get(key) {
            Some(v) if !v.trim().is_empty() => Ok(v),
            Some(_) => Err(format!("setting `{key}` is empty: set it to {what}")),
            None => Err(format!("setting `{key}` is missing: set it to {what}")),
        }
    }

    /// Every setting, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Settings whose key starts with `prefix`, with the prefix removed (`user:alice` →
    /// `alice` for prefix `user:`).
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.iter()
            .filter_map(move |(k, v)| k.strip_prefix(prefix).map(|rest| (rest, v)))
    }

    /// An error for the first key not in `known` (nor starting with one of `prefixes`), so a
    /// misspelt setting is reported instead of silently ignored.
    pub fn only(&self, known: &[&str]) -> Result<(), String> {
        self.only_with_prefixes(known, &[])
    }

    /// Like [`Settings::only`], also accepting keys that start with one of `prefixes`.
    pub fn only_with_prefixes(&self, known: &[&str], prefixes: &[&str]) -> Result<(), String> {
        for key in self.values.keys() {
            let fits = known.contains(&key.as_str()) || prefixes.iter().any(|p| key.starts_with(p));
            if !fits {
                let mut accepted: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
                accepted.extend(prefixes.iter().map(|p| format!("`{p}…`")));
                return Err(format!(
                    "unknown setting `{key}`: this resolver accepts {}",
                    accepted.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// A boolean (`true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`).
    pub fn bool(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Ok(true),
                "false" | "no" | "off" | "0" => Ok(false),
                _ => Err(format!(
                    "setting `{key}` = `{v}` is not a boolean: use true or false"
                )),
            },
        }
    }

    /// A whole number within `min..=max`.
    pub fn number(&self, key: &str, default: u64, min: u64, max: u64) -> Result<u64, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(format!(
                    "setting `{key}` = `{v}` is not a whole number from {min} to {max}"
                )),
            },
        }
    }

    /// A duration such as `90s`, `15m`, `12h`, `7d` or `1h30m`.
    pub fn duration(&self, key: &str, default: Duration) -> Result<Duration, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => parse_duration(v).ok_or_else(|| {
                format!(
                    "setting `{key}` = `{v}` is not a duration: write a number and a unit \
                     (ms, s, m, h, d), as in `30s`, `15m` or `12h`"
                )
            }),
        }
    }

    /// A comma-separated list, items trimmed, empty items dropped.
    pub fn list(&self, key: &str) -> Vec<&str> {
        split_list(self.get(key).unwrap_or(""))
    }
}

/// Splits `a, b,,c` into `["a", "b", "c"]`.
pub(crate) fn split_list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Parses `1h30m`, `15m`, `500ms`, `2d`; `None` for anything else (including no unit).
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest.get(..digits)?.parse().ok()?;
        rest = rest.get(digits..)?;
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = rest.get(..unit_len)?;
        rest = rest.get(unit_len..)?;
        let step = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            "d" => Duration::from_secs(n.checked_mul(86_400)?),
            _ => return None,
        };
        total = total.checked_add(step)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn durations_parse_like_the_gateway_config() {
        let s = settings(&[("a", "1h30m"), ("b", "500ms"), ("c", "15"), ("d", "2x")]);
        assert_eq!(
            s.duration("a", Duration::ZERO),
            Ok(Duration::from_secs(5400))
        );
        assert_eq!(
            s.duration("b", Duration::ZERO),
            Ok(Duration::from_millis(500))
        );
        assert!(
            s.duration("c", Duration::ZERO)
                .unwrap_err()
                .contains("`c` = `15`")
        );
        assert!(s.duration("d", Duration::ZERO).is_err());
        assert_eq!(
            s.duration("z", Duration::from_secs(7)),
            Ok(Duration::from_secs(7))
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let s = settings(&[("cookie", "x"), ("tll", "1h"), ("user:bob", "k")]);
        let e = s
            .only_with_prefixes(&["cookie", "ttl"], &["user:"])
            .unwrap_err();
        assert!(e.contains("`tll`") && e.contains("`ttl`"), "{e}");
        assert!(
            settings(&[("user:bob", "k")])
                .only_with_prefixes(&[], &["user:"])
                .is_ok()
        );
    }

    #[test]
    fn numbers_booleans_and_lists() {
        let s = settings(&[("n", "70000"), ("b", "maybe"), ("l", " a, b,,c ")]);
        assert!(
            s.number("n", 1, 1, 65535)
                .unwrap_err()
                .contains("from 1 to 65535")
        );
        assert!(s.bool("b", false).unwrap_err().contains("`maybe`"));
        assert_eq!(s.list("l"), vec!["a", "b", "c"]);
        assert_eq!(
            s.require("x", "a URL").unwrap_err(),
            "setting `x` is missing: set it to a URL"
        );
    }
}
