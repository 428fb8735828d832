//! The `store` import: one key-value namespace per resolver, with TTLs, kept across restarts.
//!
//! Resolvers keep generated secrets (the cookie signing key), revocations and caches here, so
//! it must survive a restart: a namespace is written to `<state_dir>/resolvers/<name>.kv`
//! (atomically, by a background flusher and at shutdown), and read back at start. Expiry is
//! wall-clock time for the same reason. Limits keep a plugin from using the gateway's memory
//! as its own: 256-byte keys, 64 KiB values, 10,000 live entries.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest key, in bytes.
pub const MAX_KEY: usize = 256;
/// Largest value, in bytes.
pub const MAX_VALUE: usize = 64 * 1024;
/// Live entries per namespace.
pub const MAX_ENTRIES: usize = 10_000;

const MAGIC: &[u8; 8] = b"orcakv01";

/// Why a write was refused; the host logs it under the resolver's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The key is longer than [`MAX_KEY`].
    #[error("store key of {0} bytes refused: keys are at most {MAX_KEY} bytes")]
    KeyTooLong(usize),
    /// The value is larger than [`MAX_VALUE`].
    #[error("store value of {0} bytes refused: values are at most {MAX_VALUE} bytes")]
    ValueTooLarge(usize),
    /// The namespace is full.
    #[error("store is full ({MAX_ENTRIES} live entries): new key `{0}` dropped")]
    Full(String),
}

#[derive(Debug, Clone)]
struct Entry {
    value: Vec<u8>,
    /// Unix time in milliseconds after which the entry is gone.
    expires: Option<u64>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    dirty: bool,
}

/// One resolver's namespace. Cheap to clone; all clones share the entries.
#[derive(Debug, Clone)]
pub struct Namespace {
    inner: Arc<Mutex<Inner>>,
    /// Held by a flush from its snapshot to the file's rename. Without it, a flush that found
    /// nothing dirty (another had just taken the changes) returned before they were on disk,
    /// and two flushes could rename their snapshots in the wrong order, the older last.
    writing: Arc<Mutex<()>>,
    file: Option<PathBuf>,
    now: fn() -> u64,
}

fn wall_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Namespace {
    /// A namespace kept only in memory (tests, `orca plugin check`).
    pub fn in_memory() -> Self {
        Namespace {
            inner: Arc::default(),
            writing: Arc::default(),
            file: None,
            now: wall_millis,
        }
    }

    /// The namespace persisted at `file`, loading what an earlier run left there. A file that
    /// cannot be parsed is moved aside (`.corrupt`) and the namespace starts empty: losing a
    /// cache is better than refusing to start.
    pub fn open(file: PathBuf) -> io::Result<Self> {
        let ns = Namespace {
            inner: Arc::default(),
            writing: Arc::default(),
            file: Some(file.clone()),
            now: wall_millis,
        };
        match std::fs::read(&file) {
            Ok(bytes) => match decode(&bytes) {
                Some(entries) => {
                    let now = (ns.now)();
                    ns.lock().entries = entries
                        .into_iter()
                        .filter(|(_, e)| e.expires.is_none_or(|t| t > now))
                        .collect();
                }
                None => {
                    let aside = file.with_extension("kv.corrupt");
                    tracing::warn!(
                        file = %file.display(),
                        "resolver store file is unreadable; moved to {} and starting empty",
                        aside.display()
                    );
                    std::fs::rename(&file, &aside)?;
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(ns)
    }

    #[cfg(test)]
    fn with_clock(mut self, now: fn() -> u64) -> Self {
        self.now = now;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-updated (every update is
        // one insert or remove), so a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn expiry(&self, ttl_seconds: Option<u32>) -> Option<u64> {
        ttl_seconds.map(|s| (self.now)().saturating_add(u64::from(s) * 1000))
    }

    /// The live value under `key`.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let now = (self.now)();
        let mut inner = self.lock();
        match inner.entries.get(key) {
            Some(e) if e.expires.is_none_or(|t| t > now) => Some(e.value.clone()),
            Some(_) => {
                inner.entries.remove(key);
                inner.dirty = true;
                None
            }
            None => None,
        }
    }

    fn check(key: &str, value: &[u8]) -> Result<(), KvError> {
        if key.len() > MAX_KEY {
            return Err(KvError::KeyTooLong(key.len()));
        }
        if value.len() > MAX_VALUE {
            return Err(KvError::ValueTooLarge(value.len()));
        }
        Ok(())
    }

    /// Makes room for a new key: drops expired entries when the namespace is full.
    fn room(&self, inner: &mut Inner, key: &str) -> Result<(), KvError> {
        if inner.entries.contains_key(key) || inner.entries.len() < MAX_ENTRIES {
            return Ok(());
        }
        let now = (self.now)();
        inner
            .entries
            .retain(|_, e| e.expires.is_none_or(|t| t > now));
        if inner.entries.len() < MAX_ENTRIES {
            Ok(())
        } else {
            Err(KvError::Full(key.chars().take(64).collect()))
        }
    }

    /// Stores `value` under `key`.
    pub fn set(&self, key: &str, value: Vec<u8>, ttl_seconds: Option<u32>) -> Result<(), KvError> {
        Self::check(key, &value)?;
        let expires = self.expiry(ttl_seconds);
        let mut inner = self.lock();
        self.room(&mut inner, key)?;
        inner
            .entries
            .insert(key.to_string(), Entry { value, expires });
        inner.dirty = true;
        Ok(())
    }

    /// Stores `value` only if `key` holds no live value; true when stored.
    pub fn add(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl_seconds: Option<u32>,
    ) -> Result<bool, KvError> {
        Self::check(key, &value)?;
        let now = (self.now)();
        let expires = self.expiry(ttl_seconds);
        let mut inner = self.lock();
        if let Some(e) = inner.entries.get(key)
            && e.expires.is_none_or(|t| t > now)
        {
            return Ok(false);
        }
        self.room(&mut inner, key)?;
        inner
            .entries
            .insert(key.to_string(), Entry { value, expires });
        inner.dirty = true;
        Ok(true)
    }

    /// Removes `key`.
    pub fn delete(&self, key: &str) {
        let mut inner = self.lock();
        if inner.entries.remove(key).is_some() {
            inner.dirty = true;
        }
    }

    /// Adds `delta` to the little-endian i64 under `key` (absent or not 8 bytes counts as 0).
    pub fn increment(
        &self,
        key: &str,
        delta: i64,
        ttl_seconds: Option<u32>,
    ) -> Result<i64, KvError> {
        Self::check(key, &[])?;
        let now = (self.now)();
        let mut inner = self.lock();
        let live = inner
            .entries
            .get(key)
            .filter(|e| e.expires.is_none_or(|t| t > now))
            .cloned();
        let (old, expires) = match live {
            Some(e) => {
                let old = <[u8; 8]>::try_from(e.value.as_slice()).map_or(0, i64::from_le_bytes);
                (old, e.expires)
            }
            None => (0, self.expiry(ttl_seconds)),
        };
        let new = old.saturating_add(delta);
        self.room(&mut inner, key)?;
        inner.entries.insert(
            key.to_string(),
            Entry {
                value: new.to_le_bytes().to_vec(),
                expires,
            },
        );
        inner.dirty = true;
        Ok(new)
    }

    /// Writes the namespace to its file if it changed since the last write; when it returns,
    /// every change made before the call is on disk (or the error says why not).
    pub fn flush(&self) -> io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = {
            let mut inner = self.lock();
            if !inner.dirty {
                return Ok(());
            }
            inner.dirty = false;
            let now = (self.now)();
            encode(
                inner
                    .entries
                    .iter()
                    .filter(|(_, e)| e.expires.is_none_or(|t| t > now)),
            )
        };
        let written = write_atomically(file, &bytes);
        if written.is_err() {
            self.lock().dirty = true;
        }
        written
    }

    /// Live entries (for tests and status).
    pub fn len(&self) -> usize {
        let now = (self.now)();
        self.lock()
            .entries
            .values()
            .filter(|e| e.expires.is_none_or(|t| t > now))
            .count()
    }

    /// Whether the namespace holds no live entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Flushes namespaces every `every` until the returned handle is dropped or aborted.
pub fn spawn_flusher(
    namespaces: Vec<(String, Namespace)>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            for (name, ns) in &namespaces {
                let ns = ns.clone();
                let result = tokio::task::spawn_blocking(move || ns.flush()).await;
                if let Ok(Err(e)) = result {
                    tracing::warn!(resolver = %name, "cannot write the resolver store: {e}");
                }
            }
        }
    })
}

fn write_atomically(file: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension("kv.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, file)
}

fn encode<'a>(entries: impl Iterator<Item = (&'a String, &'a Entry)>) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for (key, e) in entries {
        // Lengths fit in u32: keys and values are bounded far below it.
        out.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(
            &u32::try_from(e.value.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        out.extend_from_slice(&e.value);
        out.extend_from_slice(&e.expires.unwrap_or(0).to_le_bytes());
    }
    out
}

fn decode(bytes: &[u8]) -> Option<HashMap<String, Entry>> {
    let mut rest = bytes.strip_prefix(MAGIC.as_slice())?;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = rest.split_at_checked(n)?;
        rest = tail;
        Some(head)
    };
    let mut entries = HashMap::new();
    while let Some(len) = take(4) {
        let klen = u32::from_le_bytes(len.try_into().ok()?) as usize;
        let key = String::from_utf8(take(klen)?.to_vec()).ok()?;
        let vlen = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        if klen > MAX_KEY || vlen > MAX_VALUE {
            return None;
        }
        let value = take(vlen)?.to_vec();
        let expires = u64::from_le_bytes(take(8)?.try_into().ok()?);
        let expires = (expires != 0).then_some(expires);
        entries.insert(key, Entry { value, expires });
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    static NOW: AtomicU64 = AtomicU64::new(1_000_000);
    fn fake_now() -> u64 {
        NOW.load(Ordering::SeqCst)
    }

    #[test]
    fn values_expire_and_counters_count() {
        let ns = Namespace::in_memory().with_clock(fake_now);
        let start = fake_now();
        ns.set("a", b"1".to_vec(), Some(10)).unwrap();
        assert_eq!(ns.increment("n", 2, Some(5)).unwrap(), 2);
        assert_eq!(ns.increment("n", 3, None).unwrap(), 5);
        assert!(!ns.add("a", b"2".to_vec(), None).unwrap());
        NOW.store(start + 6_000, Ordering::SeqCst);
        assert_eq!(
            ns.increment("n", 1, None).unwrap(),
            1,
            "the counter expired at 5 s"
        );
        assert_eq!(ns.get("a"), Some(b"1".to_vec()));
        NOW.store(start + 11_000, Ordering::SeqCst);
        assert_eq!(ns.get("a"), None);
        assert!(ns.add("a", b"2".to_vec(), None).unwrap());
        NOW.store(start, Ordering::SeqCst);
    }

    #[test]
    fn limits_are_enforced() {
        let ns = Namespace::in_memory();
        assert_eq!(
            ns.set(&"k".repeat(MAX_KEY + 1), vec![], None),
            Err(KvError::KeyTooLong(MAX_KEY + 1))
        );
        assert!(matches!(
            ns.set("v", vec![0; MAX_VALUE + 1], None),
            Err(KvError::ValueTooLarge(_))
        ));
        for i in 0..MAX_ENTRIES {
            ns.set(&format!("k{i}"), vec![], None).unwrap();
        }
        assert!(matches!(
            ns.set("one-more", vec![], None),
            Err(KvError::Full(_))
        ));
        ns.set("k0", b"replace".to_vec(), None).unwrap();
    }

    /// The background flusher and an explicit flush (at shutdown, or a test's) race: each
    /// explicit flush must find its own change on disk when it returns.
    #[test]
    fn a_flush_returns_only_once_its_changes_are_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("resolvers/race.kv");
        let ns = Namespace::open(file.clone()).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let background = {
            let (ns, stop) = (ns.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    ns.flush().unwrap();
                }
            })
        };
        for i in 0..300u32 {
            ns.set("n", i.to_le_bytes().to_vec(), None).unwrap();
            ns.flush().unwrap();
            let on_disk = Namespace::open(file.clone()).unwrap().get("n");
            assert_eq!(on_disk, Some(i.to_le_bytes().to_vec()), "after flush {i}");
        }
        stop.store(true, Ordering::SeqCst);
        background.join().unwrap();
    }

    #[test]
    fn a_namespace_survives_a_restart_and_a_corrupt_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("resolvers/cookie.kv");
        let ns = Namespace::open(file.clone()).unwrap();
        ns.set("hmac-key", vec![7; 32], None).unwrap();
        ns.set("gone", vec![1], Some(0)).unwrap();
        ns.flush().unwrap();
        let again = Namespace::open(file.clone()).unwrap();
        assert_eq!(again.get("hmac-key"), Some(vec![7; 32]));
        assert_eq!(again.get("gone"), None);

        std::fs::write(&file, b"orcakv01\xff\xff\xff\xff").unwrap();
        let fresh = Namespace::open(file.clone()).unwrap();
        assert!(fresh.is_empty());
        assert!(file.with_extension("kv.corrupt").exists());
    }
}
