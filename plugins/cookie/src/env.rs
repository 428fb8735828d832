//! What the resolver needs from its host, behind one trait: the store, the log and the clock.
//!
//! `lib.rs` implements it with the SDK's host imports; tests implement it in memory, because the
//! host imports exist only inside the gateway.

use std::time::Duration;

/// The host as the session logic sees it.
pub(crate) trait Env {
    /// The store's value under `key`, if present and not expired.
    fn get(&self, key: &str) -> Option<Vec<u8>>;
    /// Stores `value` under `key`, expiring after `ttl` if given.
    fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>);
    /// Removes `key` from the store.
    fn delete(&self, key: &str);
    /// The value under `key`, created with `make()` if absent; racing instances agree on one.
    fn get_or_add(&self, key: &str, make: &mut dyn FnMut() -> Vec<u8>) -> Vec<u8>;
    /// A debug line in the gateway's log.
    fn debug(&self, message: &str);
    /// A warning in the gateway's log.
    fn warn(&self, message: &str);
    /// Seconds since the Unix epoch.
    fn now(&self) -> u64;
}

/// `n` random bytes from the host's secure source (`wasi:random` inside the gateway).
pub(crate) fn random_bytes(n: usize) -> Result<Vec<u8>, String> {
    let mut bytes = vec![0; n];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random bytes from the host: {e}"))?;
    Ok(bytes)
}

#[cfg(test)]
pub(crate) mod fake {
    //! An in-memory host with a clock the test moves.

    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;
    use std::time::Duration;

    use super::Env;

    /// A stored value and when it expires (Unix seconds), if ever.
    type Entry = (Vec<u8>, Option<u64>);

    /// Store entries with their expiry, a settable clock and the log lines written.
    #[derive(Debug, Default)]
    pub(crate) struct FakeEnv {
        entries: RefCell<HashMap<String, Entry>>,
        pub(crate) clock: Cell<u64>,
        pub(crate) lines: RefCell<Vec<String>>,
    }

    impl FakeEnv {
        /// A host whose clock reads a fixed, realistic time.
        pub(crate) fn new() -> Self {
            let env = FakeEnv::default();
            env.clock.set(1_750_000_000);
            env
        }

        /// Moves the clock forward.
        pub(crate) fn advance(&self, by: Duration) {
            self.clock.set(self.clock.get() + by.as_secs());
        }

        /// Keys currently live, sorted.
        pub(crate) fn keys(&self) -> Vec<String> {
            let now = self.clock.get();
            let mut keys: Vec<String> = self
                .entries
                .borrow()
                .iter()
                .filter(|(_, (_, until))| until.is_none_or(|t| t > now))
                .map(|(k, _)| k.clone())
                .collect();
            keys.sort();
            keys
        }

        /// The remaining lifetime of `key`, in seconds.
        pub(crate) fn ttl(&self, key: &str) -> Option<u64> {
            let entries = self.entries.borrow();
            let (_, until) = entries.get(key)?;
            until.map(|t| t.saturating_sub(self.clock.get()))
        }
    }

    impl Env for FakeEnv {
        fn get(&self, key: &str) -> Option<Vec<u8>> {
            let now = self.clock.get();
            let entries = self.entries.borrow();
            match entries.get(key) {
                Some((value, until)) if until.is_none_or(|t| t > now) => Some(value.clone()),
                _ => None,
            }
        }

        fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) {
            // Like the SDK: a TTL is rounded up to at least one second.
            let until = ttl.map(|d| self.clock.get() + d.as_secs().max(1));
            self.entries
                .borrow_mut()
                .insert(key.to_string(), (value.to_vec(), until));
        }

        fn delete(&self, key: &str) {
            self.entries.borrow_mut().remove(key);
        }

        fn get_or_add(&self, key: &str, make: &mut dyn FnMut() -> Vec<u8>) -> Vec<u8> {
            if let Some(value) = self.get(key) {
                return value;
            }
            let value = make();
            self.set(key, &value, None);
            value
        }

        fn debug(&self, message: &str) {
            self.lines.borrow_mut().push(format!("debug: {message}"));
        }

        fn warn(&self, message: &str) {
            self.lines.borrow_mut().push(format!("warn: {message}"));
        }

        fn now(&self) -> u64 {
            self.clock.get()
        }
    }
}
