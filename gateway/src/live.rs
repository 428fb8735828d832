//! A value that a reload (SIGHUP) replaces while it is in use: the resolver chain, the login
//! page, the SSH settings. Readers take the value in force with one atomic load, never a lock
//! on the request path; a reader that took the old value finishes with it.

use std::sync::Arc;

use arc_swap::ArcSwap;

/// A cheap handle to a value in force; clones share it.
#[derive(Debug)]
pub struct Live<T>(Arc<ArcSwap<T>>);

impl<T> Live<T> {
    /// `value` in force.
    pub fn new(value: T) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(value)))
    }

    /// The value in force now.
    pub fn get(&self) -> Arc<T> {
        self.0.load_full()
    }

    /// Puts `value` in force for whoever reads next.
    pub fn replace(&self, value: T) {
        self.0.store(Arc::new(value));
    }
}

impl<T> Clone for Live<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> From<T> for Live<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T> From<Arc<T>> for Live<T> {
    fn from(value: Arc<T>) -> Self {
        Self(Arc::new(ArcSwap::new(value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_is_seen_by_every_clone_and_old_readers_keep_theirs() {
        let live = Live::new(String::from("old"));
        let other = live.clone();
        let held = live.get();
        other.replace("new".into());
        assert_eq!(*live.get(), "new");
        assert_eq!(*held, "old");
    }
}
