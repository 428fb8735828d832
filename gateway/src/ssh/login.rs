//! The SSH login name: `alice` logs in as `alice` and chooses an image afterwards (a menu, or
//! the default image); `alice+shell` picks image `shell` at once, as the original Orca did.

/// Longest login name accepted, in bytes (OpenSSH's own limit on user names is lower).
const MAX_NAME: usize = 256;
/// Longest image name: a DNS label, since the same name is a subdomain over HTTPS.
const MAX_IMAGE: usize = 63;

/// What a login name asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The user name handed to the resolvers (the part before `+`).
    pub user: String,
    /// The image named after `+`, lower case.
    pub image: Option<String>,
}

/// Why a login name is refused, said to the client before authentication fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// Nothing before `+`, or an empty name.
    #[error("the login name has no user; log in as `user` or `user+image`")]
    NoUser,
    /// `alice+` names no image.
    #[error("`{0}` names no image after `+`; log in as `{1}` for the menu, or `{1}+image`")]
    NoImage(String, String),
    /// The image part cannot be an image name.
    #[error(
        "`{0}` is not an image name: use letters, digits, `-` and `_` (at most {MAX_IMAGE}), \
         as in `user+shell`"
    )]
    BadImage(String),
    /// Control characters, or too long.
    #[error("the login name is not usable: {0}")]
    Unusable(&'static str),
}

/// Reads a login name. The image follows the last `+`: `a+b+shell` is user `a+b` on image
/// `shell`. A user name holding a `+` must therefore always name an image (`a+b` alone reads
/// as user `a` on image `b`), as with the original Orca.
pub fn parse(name: &str) -> Result<Login, LoginError> {
    if name.len() > MAX_NAME {
        return Err(LoginError::Unusable("longer than 256 bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err(LoginError::Unusable("it holds control characters"));
    }
    let Some((user, image)) = name.rsplit_once('+') else {
        return if name.is_empty() {
            Err(LoginError::NoUser)
        } else {
            Ok(Login {
                user: name.to_string(),
                image: None,
            })
        };
    };
    if user.is_empty() {
        return Err(LoginError::NoUser);
    }
    if image.is_empty() {
        return Err(LoginError::NoImage(name.to_string(), user.to_string()));
    }
    let valid = image.len() <= MAX_IMAGE
        && !image.starts_with('-')
        && !image.ends_with('-')
        && image
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(LoginError::BadImage(image.to_string()));
    }
    Ok(Login {
        user: user.to_string(),
        image: Some(image.to_ascii_lowercase()),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ok(user: &str, image: Option<&str>) -> Result<Login, LoginError> {
        Ok(Login {
            user: user.into(),
            image: image.map(Into::into),
        })
    }

    #[test]
    fn a_user_with_or_without_an_image() {
        assert_eq!(parse("alice"), ok("alice", None));
        assert_eq!(parse("alice+shell"), ok("alice", Some("shell")));
        assert_eq!(parse("alice+Shell"), ok("alice", Some("shell")));
        assert_eq!(parse("a+b+shell"), ok("a+b", Some("shell")));
        assert_eq!(
            parse("alice@example.org+db_1"),
            ok("alice@example.org", Some("db_1"))
        );
    }

    #[test]
    fn refusals_say_what_to_type() {
        assert_eq!(parse(""), Err(LoginError::NoUser));
        assert_eq!(parse("+shell"), Err(LoginError::NoUser));
        let no_image = parse("alice+").unwrap_err().to_string();
        assert!(no_image.contains("`alice+image`"), "{no_image}");
        let bad = parse("alice+../etc").unwrap_err().to_string();
        assert!(
            bad.contains("`../etc`") && bad.contains("user+shell"),
            "{bad}"
        );
        assert!(matches!(parse("alice+-x"), Err(LoginError::BadImage(_))));
        assert!(matches!(
            parse(&format!("alice+{}", "x".repeat(64))),
            Err(LoginError::BadImage(_))
        ));
        assert!(matches!(parse("ali\u{1b}ce"), Err(LoginError::Unusable(_))));
        assert!(matches!(
            parse(&"a".repeat(257)),
            Err(LoginError::Unusable(_))
        ));
    }

    proptest! {
        #[test]
        fn any_name_parses_or_is_refused_and_an_image_is_one_label(name in ".{0,80}") {
            if let Ok(login) = parse(&name) {
                prop_assert!(!login.user.is_empty());
                match login.image {
                    Some(image) => {
                        prop_assert!(!image.is_empty() && image.len() <= MAX_IMAGE);
                        prop_assert!(!image.contains('.') && !image.contains('+'));
                        // Nothing of the name is lost or invented: user, `+`, image.
                        let head = format!("{}+", login.user);
                        prop_assert!(name.starts_with(&head));
                        prop_assert_eq!(name[login.user.len() + 1..].to_ascii_lowercase(), image);
                    }
                    None => prop_assert_eq!(login.user, name),
                }
            }
        }
    }
}
