//! Matching an offered SSH public key against the `sshPublicKey` values of a user entry
//! (openssh-lpk schema: one `authorized_keys`-style line per value).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// How a stored value compares with the offered key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stored {
    /// The same key.
    Matches,
    /// Another key.
    Differs,
    /// Not a key line this resolver can compare, with the reason (for the log).
    Unusable(String),
}

/// Compares one stored value with the offered key blob (SSH wire encoding). The algorithm is
/// compared as the key type named inside the blob against the line's type field; comments are
/// ignored. Lines carrying `authorized_keys` options (`from=…`, `command=…`) are unusable:
/// honouring a key while dropping its restrictions would grant more than the directory says.
pub(crate) fn compare(stored: &[u8], offered: &[u8]) -> Stored {
    let Ok(line) = std::str::from_utf8(stored) else {
        return Stored::Unusable("not UTF-8".into());
    };
    let mut fields = line.split_ascii_whitespace();
    let (Some(kind), Some(data)) = (fields.next(), fields.next()) else {
        return Stored::Unusable("not `TYPE BASE64 [COMMENT]`".into());
    };
    if !looks_like_key_type(kind) {
        return Stored::Unusable(format!(
            "starts with `{}`, not a key type (options are not supported)",
            kind.chars().take(40).collect::<String>()
        ));
    }
    let Ok(blob) = STANDARD.decode(data) else {
        return Stored::Unusable(format!("the key data of a `{kind}` line is not base64"));
    };
    if blob_type(&blob) != Some(kind.as_bytes()) {
        return Stored::Unusable(format!("a `{kind}` line whose key data is another type"));
    }
    if blob == offered {
        Stored::Matches
    } else {
        Stored::Differs
    }
}

/// The key type written at the start of an SSH wire-format key (a length-prefixed string).
fn blob_type(blob: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    blob.get(4..4 + len)
}

fn looks_like_key_type(field: &str) -> bool {
    ["ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-"]
        .iter()
        .any(|p| field.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real ed25519 public key line (generated for these tests; no private key is kept).
    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILPzCmVCe58tlAeeEzVcFYzgJ5Mlxmal0RXw8favjkjK";

    fn blob(line: &str) -> Vec<u8> {
        STANDARD.decode(line.split(' ').nth(1).unwrap()).unwrap()
    }

    #[test]
    fn the_same_key_matches_whatever_the_comment() {
        let offered = blob(ED);
        assert_eq!(compare(ED.as_bytes(), &offered), Stored::Matches);
        let commented = format!("{ED} alice@laptop with spaces");
        assert_eq!(compare(commented.as_bytes(), &offered), Stored::Matches);
        let spaced = format!("  {}\t{}  ", "ssh-ed25519", ED.split(' ').nth(1).unwrap());
        assert_eq!(compare(spaced.as_bytes(), &offered), Stored::Matches);
    }

    #[test]
    fn another_key_differs() {
        let mut other = blob(ED);
        let last = other.len() - 1;
        other[last] ^= 1;
        assert_eq!(compare(ED.as_bytes(), &other), Stored::Differs);
    }

    #[test]
    fn odd_values_are_unusable_not_matches() {
        let offered = blob(ED);
        for bad in [
            "".to_string(),
            "ssh-ed25519".to_string(),
            format!("from=\"10.0.0.1\" {ED}"),
            format!("ssh-rsa {}", ED.split(' ').nth(1).unwrap()),
            "ssh-ed25519 !!!notbase64".to_string(),
        ] {
            assert!(
                matches!(compare(bad.as_bytes(), &offered), Stored::Unusable(_)),
                "{bad:?}"
            );
        }
        assert!(matches!(
            compare(&[0xff, 0xfe], &offered),
            Stored::Unusable(_)
        ));
    }
}
