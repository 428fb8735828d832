//! The `store` import: the resolver's namespace of [`crate::identity::kv`]; a refused write
//! (too large, namespace full) is a warning under the resolver's name, never a trap.

use super::State;
use super::bindings::orca::identity::store;

impl State {
    fn refused(&self, e: crate::identity::kv::KvError) {
        tracing::warn!(resolver = %self.plugin, "{e}");
    }
}

impl store::Host for State {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        self.kv.get(&key)
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_seconds: Option<u32>) {
        if let Err(e) = self.kv.set(&key, value, ttl_seconds) {
            self.refused(e);
        }
    }

    fn add(&mut self, key: String, value: Vec<u8>, ttl_seconds: Option<u32>) -> bool {
        self.kv.add(&key, value, ttl_seconds).unwrap_or_else(|e| {
            self.refused(e);
            false
        })
    }

    fn delete(&mut self, key: String) {
        self.kv.delete(&key);
    }

    fn increment(&mut self, key: String, delta: i64, ttl_seconds: Option<u32>) -> i64 {
        self.kv
            .increment(&key, delta, ttl_seconds)
            .unwrap_or_else(|e| {
                self.refused(e);
                0
            })
    }
}
