//! The resolver's private key-value store (the host `store` import): shared by all its
//! instances, kept across gateway restarts, entries optionally expiring.
//!
//! Limits (enforced by the gateway): keys up to 256 bytes, values up to 64 KiB, 10,000 live
//! entries per resolver.

use std::time::Duration;

use crate::bindings::orca::identity::store as host;

fn seconds(ttl: Option<Duration>) -> Option<u32> {
    ttl.map(|d| u32::try_from(d.as_secs().max(1)).unwrap_or(u32::MAX))
}

/// The value under `key`, if present and not expired.
pub fn get(key: &str) -> Option<Vec<u8>> {
    host::get(key)
}

/// Stores `value` under `key`, replacing any value, expiring after `ttl` (rounded up to whole
/// seconds) if given.
pub fn set(key: &str, value: &[u8], ttl: Option<Duration>) {
    host::set(key, value, seconds(ttl));
}

/// Stores `value` only if `key` holds nothing; true when it was stored.
pub fn add(key: &str, value: &[u8], ttl: Option<Duration>) -> bool {
    host::add(key, value, seconds(ttl))
}

/// Removes `key`.
pub fn delete(key: &str) {
    host::delete(key);
}

/// Adds `delta` to the counter under `key` and returns the new value; `ttl` applies only when
/// the key is created.
pub fn increment(key: &str, delta: i64, ttl: Option<Duration>) -> i64 {
    host::increment(key, delta, seconds(ttl))
}

/// The value under `key`, creating it with `make()` if absent. Instances racing to create it
/// agree on the first one stored (for generated secrets).
pub fn get_or_add(key: &str, make: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
    if let Some(v) = get(key) {
        return v;
    }
    let fresh = make();
    if add(key, &fresh, None) {
        return fresh;
    }
    get(key).unwrap_or(fresh)
}
