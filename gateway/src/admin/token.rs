//! The admin API's bearer token: read from `[admin] token_file`, swappable at run time (a
//! SIGHUP re-reads the file), compared in constant time.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper::header::HeaderValue;

use crate::config::AdminConfig;
use crate::live::Live;

/// Why the token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file cannot be read.
    #[error(
        "cannot read the admin token file `{path}`: {source}; write the token into it or point `[admin] token_file` at a readable file"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file holds only whitespace.
    #[error(
        "the admin token file `{path}` is empty; write a long random token into it (such as the output of `openssl rand -hex 32`) or point `[admin] token_file` at another file"
    )]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The token holds characters an `Authorization` header cannot carry.
    #[error(
        "the admin token in `{path}` holds spaces or characters outside printable ASCII, which an `Authorization` header cannot carry; use letters, digits and punctuation (such as the output of `openssl rand -hex 32`) in `[admin] token_file`"
    )]
    Unprintable {
        /// The file.
        path: PathBuf,
    },
}

/// Reads the token in `path`: its contents with surrounding whitespace (a trailing newline)
/// trimmed. Refuses an empty file, which would otherwise let anyone in with an empty token.
pub fn read_token_file(path: &Path) -> Result<String, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenError::Empty {
            path: path.to_path_buf(),
        });
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenError::Unprintable {
            path: path.to_path_buf(),
        });
    }
    Ok(token.to_string())
}

/// The token of `[admin] token_file`, or `None` when it is unset: what the gateway checks
/// requests against and what `orca status` sends.
pub fn configured_token(config: &AdminConfig) -> Result<Option<String>, TokenError> {
    config
        .token_file
        .as_deref()
        .map(read_token_file)
        .transpose()
}

/// The token every admin request but `/healthz` must carry, or none. A cheap handle: clones
/// share the value, so a SIGHUP handler can [`set`](AdminToken::set) a new one while the
/// listener serves.
#[derive(Clone)]
pub struct AdminToken(Live<Option<Arc<str>>>);

impl Default for AdminToken {
    fn default() -> Self {
        Self::new(None)
    }
}

impl AdminToken {
    /// A handle holding `token` (`None`: requests need no token).
    pub fn new(token: Option<String>) -> Self {
        Self(Live::new(token.map(Arc::from)))
    }

    /// The token of `[admin] token_file`, or none when it is unset.
    pub fn from_config(config: &AdminConfig) -> Result<Self, TokenError> {
        configured_token(config).map(Self::new)
    }

    /// Replaces the token; requests from now on are checked against the new one.
    pub fn set(&self, token: Option<String>) {
        self.0.replace(token.map(Arc::from));
    }

    /// Whether requests need a token.
    pub fn is_set(&self) -> bool {
        self.current().is_some()
    }

    /// Whether a request with this `Authorization` header may pass.
    pub(crate) fn check(&self, authorization: Option<&HeaderValue>) -> Check {
        let Some(expected) = self.current() else {
            return Check::Allowed;
        };
        let Some(presented) = authorization.and_then(bearer) else {
            return Check::Missing;
        };
        if constant_time_eq(presented, expected.as_bytes()) {
            Check::Allowed
        } else {
            Check::Wrong
        }
    }

    fn current(&self) -> Option<Arc<str>> {
        (*self.0.get()).clone()
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token itself: handles end up in debug logs.
        let state = if self.is_set() { "set" } else { "none" };
        write!(f, "AdminToken({state})")
    }
}

/// What [`AdminToken::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// No token is needed, or the right one came.
    Allowed,
    /// No bearer token came.
    Missing,
    /// A bearer token came, not the right one.
    Wrong,
}

/// The credentials of an `Authorization: Bearer <token>` header (the scheme is
/// case-insensitive, RFC 7235 §2.1).
fn bearer(value: &HeaderValue) -> Option<&[u8]> {
    let value = value.as_bytes();
    let scheme = b"bearer ";
    if value.len() <= scheme.len() || !value[..scheme.len()].eq_ignore_ascii_case(scheme) {
        return None;
    }
    Some(value[scheme.len()..].trim_ascii())
}

/// Compares without stopping at the first difference, so the time taken does not tell an
/// attacker how much of a guess was right. The length of the guess is the attacker's own.
fn constant_time_eq(presented: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(presented.len() != expected.len());
    for (i, &byte) in presented.iter().enumerate() {
        let want = expected.get(i).copied().unwrap_or(!byte);
        diff |= std::hint::black_box(byte ^ want);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(v: &str) -> HeaderValue {
        HeaderValue::from_str(v).unwrap()
    }

    #[test]
    fn a_token_file_is_trimmed_and_an_empty_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        std::fs::write(&path, "  s3cret-token\n").unwrap();
        assert_eq!(read_token_file(&path).unwrap(), "s3cret-token");

        std::fs::write(&path, " \n\t").unwrap();
        let e = read_token_file(&path).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(
            e.contains("is empty") && e.contains("[admin] token_file"),
            "{e}"
        );

        std::fs::write(&path, "two words\n").unwrap();
        let e = read_token_file(&path).unwrap_err().to_string();
        assert!(e.contains("printable ASCII"), "{e}");

        let missing = dir.path().join("nope");
        let e = read_token_file(&missing).unwrap_err().to_string();
        assert!(e.contains("cannot read") && e.contains("nope"), "{e}");
    }

    #[test]
    fn the_bearer_scheme_is_checked_and_the_token_compared() {
        let token = AdminToken::new(Some("abc".into()));
        assert_eq!(token.check(None), Check::Missing);
        assert_eq!(token.check(Some(&header("Basic abc"))), Check::Missing);
        assert_eq!(token.check(Some(&header("Bearer"))), Check::Missing);
        assert_eq!(token.check(Some(&header("Bearer abd"))), Check::Wrong);
        assert_eq!(token.check(Some(&header("Bearer ab"))), Check::Wrong);
        assert_eq!(token.check(Some(&header("Bearer abcd"))), Check::Wrong);
        assert_eq!(token.check(Some(&header("Bearer abc"))), Check::Allowed);
        assert_eq!(token.check(Some(&header("bearer  abc "))), Check::Allowed);
        token.set(None);
        assert_eq!(token.check(None), Check::Allowed);
        assert_eq!(format!("{token:?}"), "AdminToken(none)");
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let token = AdminToken::new(Some("hunter2".into()));
        assert_eq!(format!("{token:?}"), "AdminToken(set)");
    }

    #[test]
    fn the_comparison_needs_every_byte() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"same", b"same"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(!constant_time_eq(b"x", b""));
        assert!(!constant_time_eq(b"samf", b"same"));
        assert!(!constant_time_eq(b"same\0", b"same"));
    }
}
