//! The session cookie as an attacker meets it: a value made up from nothing, a real one with
//! one byte altered, one signed with another key, one replayed after it expired. None opens;
//! the real one opens to exactly the identity it was sealed for, until it expires.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orca_plugin_cookie::fuzzing::{open, seal};
use orca_sdk::Identity;

const KEY: &[u8; 32] = b"orca fuzz key, thirty-two bytes!";
const OTHER_KEY: &[u8; 32] = b"another key, also 32 bytes long!";

fuzz_target!(|input: (&str, &str, Vec<String>, u64, u32, usize, u8)| {
    let (forged, id, groups, now, ttl, at, byte) = input;
    let now = now % (1 << 40);
    // Nothing an attacker writes opens without the key.
    assert!(open(KEY, forged, now).is_err(), "{forged:?} opened");

    let who = Identity {
        id: id.to_string(),
        display_name: None,
        groups,
        images: None,
    };
    let Ok(value) = seal(KEY, &who, now, ttl) else {
        return;
    };
    // The SDK's identity has no `PartialEq` (generated bindings); compare its fields.
    let fields = |w: &Identity| {
        (
            w.id.clone(),
            w.display_name.clone(),
            w.groups.clone(),
            w.images.clone(),
        )
    };
    if ttl > 0 {
        let opened = open(KEY, &value, now).expect("a fresh value opens");
        assert_eq!(fields(&opened), fields(&who));
    }
    assert!(open(KEY, &value, now.saturating_add(u64::from(ttl))).is_err());
    assert!(open(OTHER_KEY, &value, now).is_err());

    let mut altered = value.clone().into_bytes();
    let at = at % altered.len();
    if altered[at] != byte {
        altered[at] = byte;
        if let Ok(altered) = String::from_utf8(altered) {
            assert!(
                open(KEY, &altered, now).is_err(),
                "{value:?} altered at {at} to {altered:?} still opens"
            );
        }
    }
});
