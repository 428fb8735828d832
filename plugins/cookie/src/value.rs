//! The cookie value, version 1: `v1.<payload>.<mac>`.
//!
//! `payload` is the unpadded base64url of compact JSON [`Claims`]; `mac` is the unpadded
//! base64url of HMAC-SHA256 over the ASCII text `v1.<payload>`. Both parts use only
//! `A-Z a-z 0-9 - _`, and the separators are dots, so the value is cookie-safe as it stands.
//! A later format gets a new prefix (`v2.`) and this one keeps verifying until its cookies
//! have expired.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use orca_sdk::Identity;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The version prefix, with its separator.
const PREFIX: &str = "v1.";

/// The longest value the WIT `issued` record accepts, and so the longest one we ever make or
/// read.
pub(crate) const MAX_LEN: usize = 3000;

/// The shortest HMAC key accepted: the size of the SHA-256 output.
pub(crate) const MIN_KEY_LEN: usize = 32;

/// The longest user id the WIT `identity` record accepts.
const MAX_ID_LEN: usize = 256;

/// What a session cookie says, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Claims {
    /// The user id.
    pub(crate) id: String,
    /// The display name, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    /// Groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) groups: Vec<String>,
    /// Images the user may reach; absent means no restriction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) images: Option<Vec<String>>,
    /// Issued at, Unix seconds.
    pub(crate) iat: u64,
    /// Expires at, Unix seconds.
    pub(crate) exp: u64,
    /// A random session id: what `revoke` records.
    pub(crate) sid: String,
}

impl Claims {
    /// Claims for `who`, valid from `now` for `ttl_seconds`, under session id `sid`.
    pub(crate) fn new(who: &Identity, now: u64, ttl_seconds: u32, sid: String) -> Self {
        Claims {
            id: who.id.clone(),
            name: who.display_name.clone(),
            groups: who.groups.clone(),
            images: who.images.clone(),
            iat: now,
            exp: now.saturating_add(u64::from(ttl_seconds)),
            sid,
        }
    }

    /// The identity the claims describe.
    pub(crate) fn identity(&self) -> Identity {
        Identity {
            id: self.id.clone(),
            display_name: self.name.clone(),
            groups: self.groups.clone(),
            images: self.images.clone(),
        }
    }
}

/// Why a cookie value was not accepted; said in the debug log, never to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// Longer than [`MAX_LEN`].
    TooLong(usize),
    /// Not `v1.<payload>.<mac>` in base64url.
    Malformed(&'static str),
    /// The MAC does not match: tampered, or signed with another key.
    BadMac,
    /// The MAC matches but the payload is not the claims we write (a bug, or a reused key).
    BadPayload(String),
    /// Expired at this Unix time.
    Expired(u64),
    /// Logged out.
    Revoked,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejected::TooLong(n) => write!(f, "it is {n} bytes, over the {MAX_LEN}-byte limit"),
            Rejected::Malformed(what) => write!(f, "it is malformed ({what})"),
            Rejected::BadMac => {
                f.write_str("its signature does not match (tampered, or an old key)")
            }
            Rejected::BadPayload(e) => write!(f, "its signed payload does not parse ({e})"),
            Rejected::Expired(at) => write!(f, "it expired at Unix time {at}"),
            Rejected::Revoked => f.write_str("its session was logged out"),
        }
    }
}

/// Signs and verifies cookie values with one key.
#[derive(Clone)]
pub(crate) struct Codec {
    mac: Hmac<Sha256>,
}

impl Codec {
    /// A codec for `key`, at least [`MIN_KEY_LEN`] bytes.
    pub(crate) fn new(key: &[u8]) -> Result<Self, String> {
        if key.len() < MIN_KEY_LEN {
            return Err(format!(
                "the signing key is {} bytes; it needs at least {MIN_KEY_LEN}",
                key.len()
            ));
        }
        let mac = Hmac::<Sha256>::new_from_slice(key)
            .map_err(|e| format!("the signing key is not usable: {e}"))?;
        Ok(Codec { mac })
    }

    /// The signed value for `claims`, or why it cannot be a cookie.
    pub(crate) fn seal(&self, claims: &Claims) -> Result<String, String> {
        check_id(&claims.id)?;
        let json = serde_json::to_vec(claims)
            .map_err(|e| format!("cannot encode the session of `{}`: {e}", claims.id))?;
        let mut value = String::with_capacity(MAX_LEN);
        value.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(&json, &mut value);
        let tag = self.tag(value.as_bytes());
        value.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut value);
        if value.len() > MAX_LEN {
            return Err(format!(
                "the session cookie for `{}` would be {} bytes, over the {MAX_LEN}-byte limit: \
                 it carries {} groups and {} images; give the user fewer groups or images, or a \
                 shorter display name",
                claims.id,
                value.len(),
                claims.groups.len(),
                claims.images.as_ref().map_or(0, Vec::len)
            ));
        }
        Ok(value)
    }

    /// The claims of a value this codec signed and that has not expired at `now`. Revocation is
    /// the caller's to check: it needs the store.
    pub(crate) fn open(&self, value: &str, now: u64) -> Result<Claims, Rejected> {
        if value.len() > MAX_LEN {
            return Err(Rejected::TooLong(value.len()));
        }
        let rest = value
            .strip_prefix(PREFIX)
            .ok_or(Rejected::Malformed("no `v1.` prefix"))?;
        let (payload, mac) = rest
            .split_once('.')
            .ok_or(Rejected::Malformed("no `.` before the signature"))?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| Rejected::Malformed("the signature is not base64url"))?;
        let signed = value
            .get(..PREFIX.len() + payload.len())
            .ok_or(Rejected::Malformed("cut short"))?;
        let mut check = self.mac.clone();
        check.update(signed.as_bytes());
        check.verify_slice(&mac).map_err(|_| Rejected::BadMac)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| Rejected::Malformed("the payload is not base64url"))?;
        let claims: Claims =
            serde_json::from_slice(&json).map_err(|e| Rejected::BadPayload(e.to_string()))?;
        check_id(&claims.id).map_err(Rejected::BadPayload)?;
        if claims.exp <= now {
            return Err(Rejected::Expired(claims.exp));
        }
        Ok(claims)
    }

    fn tag(&self, signed: &[u8]) -> Vec<u8> {
        let mut mac = self.mac.clone();
        mac.update(signed);
        mac.finalize().into_bytes().to_vec()
    }
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of logs and panic messages.
        f.write_str("Codec(HMAC-SHA256, key hidden)")
    }
}

/// A user id as the WIT `identity` record accepts it.
pub(crate) fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("the user id is empty".to_string());
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!(
            "the user id is {} bytes, over the {MAX_ID_LEN}-byte limit",
            id.len()
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(format!("the user id {id:?} contains control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const KEY: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_750_000_000;

    fn claims() -> Claims {
        let who = Identity::new("alice")
            .with_display_name("Alice Liddell")
            .with_groups(["staff", "admins"])
            .with_images(["shell"]);
        Claims::new(&who, NOW, 3600, "c2lkc2lkc2lkc2lkc2lkcw".to_string())
    }

    fn sealed() -> String {
        Codec::new(KEY).unwrap().seal(&claims()).unwrap()
    }

    #[test]
    fn round_trip_keeps_every_claim() {
        let codec = Codec::new(KEY).unwrap();
        let value = codec.seal(&claims()).unwrap();
        assert!(value.starts_with("v1."));
        let opened = codec.open(&value, NOW + 10).unwrap();
        assert_eq!(opened, claims());
        let who = opened.identity();
        assert_eq!(who.id, "alice");
        assert_eq!(who.display_name.as_deref(), Some("Alice Liddell"));
        assert_eq!(who.groups, ["staff", "admins"]);
        assert_eq!(who.images, Some(vec!["shell".to_string()]));
    }

    #[test]
    fn values_are_cookie_safe() {
        let who = Identity::new("bob \"the; builder\\, ünïcode").with_groups(["a b", "c;d"]);
        let value = Codec::new(KEY)
            .unwrap()
            .seal(&Claims::new(&who, NOW, 60, "x".into()))
            .unwrap();
        let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        assert!(value.chars().all(safe), "{value}");
    }

    #[test]
    fn tampering_with_any_byte_is_refused() {
        let codec = Codec::new(KEY).unwrap();
        let value = sealed();
        let replacements = [b'A', b'B', b'-', b'_', b'.', b'0', b'z', b'=', b' '];
        for at in 0..value.len() {
            for &with in &replacements {
                let mut bytes = value.clone().into_bytes();
                if bytes[at] == with {
                    continue;
                }
                bytes[at] = with;
                let tampered = String::from_utf8(bytes).unwrap();
                assert!(
                    codec.open(&tampered, NOW).is_err(),
                    "byte {at} set to {:?} was accepted",
                    with as char
                );
            }
        }
    }

    #[test]
    fn tampering_with_each_part_names_the_reason() {
        let codec = Codec::new(KEY).unwrap();
        let value = sealed();
        let (version, rest) = value.split_once('.').unwrap();
        let (payload, mac) = rest.split_once('.').unwrap();
        assert_eq!(version, "v1");

        let v2 = format!("v2.{payload}.{mac}");
        assert_eq!(
            codec.open(&v2, NOW),
            Err(Rejected::Malformed("no `v1.` prefix"))
        );

        // A payload re-signed by nobody: the JSON says admin, the MAC is the old one.
        let mut forged = claims();
        forged.id = "root".into();
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            codec.open(&format!("v1.{forged}.{mac}"), NOW),
            Err(Rejected::BadMac)
        );

        let other_mac = URL_SAFE_NO_PAD.encode([0u8; 32]);
        assert_eq!(
            codec.open(&format!("v1.{payload}.{other_mac}"), NOW),
            Err(Rejected::BadMac)
        );
        let short_mac = &mac[..mac.len() - 2];
        assert!(
            codec
                .open(&format!("v1.{payload}.{short_mac}"), NOW)
                .is_err()
        );
        assert!(codec.open(&format!("v1.{payload}.{mac}A"), NOW).is_err());
        assert!(codec.open(&format!("v1.{payload}.{mac}.x"), NOW).is_err());
        assert!(codec.open(&format!("v1.{payload}"), NOW).is_err());
        assert!(codec.open(&format!("v1..{mac}"), NOW).is_err());
        assert!(codec.open(&format!("v1.{payload}."), NOW).is_err());
        assert!(codec.open("", NOW).is_err());
    }

    #[test]
    fn expired_values_are_refused() {
        let codec = Codec::new(KEY).unwrap();
        let value = sealed();
        assert!(codec.open(&value, NOW + 3599).is_ok());
        assert_eq!(
            codec.open(&value, NOW + 3600),
            Err(Rejected::Expired(NOW + 3600))
        );
        assert_eq!(
            codec.open(&value, NOW + 99_999),
            Err(Rejected::Expired(NOW + 3600))
        );
    }

    #[test]
    fn another_key_does_not_verify() {
        let value = sealed();
        let other = Codec::new(b"0123456789abcdef0123456789abcdeF").unwrap();
        assert_eq!(other.open(&value, NOW), Err(Rejected::BadMac));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(Codec::new(&[7; 31]).unwrap_err().contains("31 bytes"));
        assert!(Codec::new(&[7; 64]).is_ok());
    }

    #[test]
    fn too_many_groups_is_a_clear_error() {
        let groups: Vec<String> = (0..400).map(|i| format!("group-{i}")).collect();
        let who = Identity::new("carol").with_groups(groups);
        let e = Codec::new(KEY)
            .unwrap()
            .seal(&Claims::new(&who, NOW, 60, "s".into()))
            .unwrap_err();
        assert!(
            e.contains("`carol`") && e.contains("3000-byte") && e.contains("400 groups"),
            "{e}"
        );
    }

    #[test]
    fn bad_ids_are_not_sealed() {
        let codec = Codec::new(KEY).unwrap();
        for id in ["", "a\nb", &"x".repeat(257)] {
            let c = Claims::new(&Identity::new(id), NOW, 60, "s".into());
            assert!(codec.seal(&c).is_err(), "{id:?}");
        }
    }

    #[test]
    fn oversized_values_are_refused_before_any_work() {
        let codec = Codec::new(KEY).unwrap();
        let huge = format!("v1.{}.x", "A".repeat(4000));
        assert_eq!(codec.open(&huge, NOW), Err(Rejected::TooLong(huge.len())));
    }

    #[test]
    fn a_signed_payload_of_the_wrong_shape_is_refused() {
        // What a key reused by another program could produce: valid MAC, foreign JSON.
        let codec = Codec::new(KEY).unwrap();
        let payload = URL_SAFE_NO_PAD.encode(br#"{"id":"alice","exp":1,"admin":true}"#);
        let signed = format!("v1.{payload}");
        let tag = URL_SAFE_NO_PAD.encode(codec.tag(signed.as_bytes()));
        let e = codec.open(&format!("{signed}.{tag}"), NOW).unwrap_err();
        assert!(matches!(e, Rejected::BadPayload(_)), "{e:?}");
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(value in "\\PC{0,200}") {
            let codec = Codec::new(KEY).unwrap();
            prop_assert!(codec.open(&value, NOW).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let codec = Codec::new(KEY).unwrap();
            let value = String::from_utf8_lossy(&bytes);
            prop_assert!(codec.open(&value, NOW).is_err());
            let prefixed = format!("v1.{value}");
            prop_assert!(codec.open(&prefixed, NOW).is_err());
        }

        #[test]
        fn shaped_garbage_never_panics(payload in "[A-Za-z0-9_.=-]{0,120}", mac in "[A-Za-z0-9_=-]{0,60}") {
            let codec = Codec::new(KEY).unwrap();
            let value = format!("v1.{payload}.{mac}");
            prop_assert!(codec.open(&value, NOW).is_err());
        }
    }
}
