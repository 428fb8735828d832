//! Connection workers: one single-threaded Tokio runtime per thread, each serving whole
//! client connections.
//!
//! Why not the process's multi-threaded runtime: a proxied request wakes several tasks (the
//! client's connection, the container's, their bodies), and on a work-stealing runtime those
//! wake-ups cross threads (a futex, another core's cache) many times per request. A connection
//! that lives on one thread for its whole life pays none of that: the same hyper and rustls
//! code served small requests about 1.35× faster this way on two cores (BENCHMARKS.md), as
//! fast as haproxy's thread-per-core event loops. Everything shared between connections (the
//! scheduler, resolvers, pools) is already `Send + Sync`, so only where connection tasks run
//! changes.
//!
//! The accept loop stays where it was and hands each accepted socket to the worker serving the
//! fewest connections; what a connection spawns (an upgraded stream's relay, HTTP/2 streams)
//! runs on its worker too.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::{Builder, Handle};
use tokio_util::sync::CancellationToken;

/// The worker threads; dropping the last handle stops them (tasks still on them are dropped).
pub struct Workers {
    workers: Vec<Worker>,
    stop: CancellationToken,
}

struct Worker {
    handle: Handle,
    /// Connections being served on this worker.
    load: Arc<AtomicUsize>,
}

impl Workers {
    /// The default number of workers: one per available CPU core.
    pub fn per_core() -> usize {
        std::thread::available_parallelism().map_or(1, usize::from)
    }

    /// Starts `count` worker threads (at least one).
    pub fn start(count: usize) -> io::Result<Arc<Self>> {
        let count = count.max(1);
        // Built up in place, so that a failure half way stops the threads already started
        // (dropping `this` cancels `stop`).
        let mut this = Self {
            workers: Vec::with_capacity(count),
            stop: CancellationToken::new(),
        };
        for i in 0..count {
            let runtime = Builder::new_current_thread().enable_all().build()?;
            let handle = runtime.handle().clone();
            let stopped = this.stop.clone();
            std::thread::Builder::new()
                .name(format!("orca-conn-{i}"))
                // The runtime is dropped on its own thread, outside any async context, once
                // the workers are stopped.
                .spawn(move || runtime.block_on(stopped.cancelled_owned()))?;
            this.workers.push(Worker {
                handle,
                load: Arc::default(),
            });
        }
        Ok(Arc::new(this))
    }

    /// How many worker threads run.
    pub fn count(&self) -> usize {
        self.workers.len()
    }

    /// Runs `connection` on the worker serving the fewest connections.
    pub fn spawn<F>(&self, connection: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(worker) = self
            .workers
            .iter()
            .min_by_key(|w| w.load.load(Ordering::Relaxed))
        else {
            return;
        };
        let load = Load::count(&worker.load);
        worker.handle.spawn(async move {
            let _load = load;
            connection.await;
        });
    }

    /// Connections being served on each worker, in worker order.
    pub fn loads(&self) -> Vec<usize> {
        self.workers
            .iter()
            .map(|w| w.load.load(Ordering::Relaxed))
            .collect()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The same workers, not workers alike: options holding them compare by identity.
impl PartialEq for Workers {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for Workers {}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("loads", &self.loads())
            .finish()
    }
}

/// Counts one connection on a worker while it lives.
struct Load(Arc<AtomicUsize>);

impl Load {
    fn count(load: &Arc<AtomicUsize>) -> Self {
        load.fetch_add(1, Ordering::Relaxed);
        Self(load.clone())
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Names of this process's threads, from /proc.
    fn thread_names() -> Vec<String> {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return Vec::new();
        };
        tasks
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|name| name.trim().to_string())
            .collect()
    }

    #[test]
    fn dropping_the_workers_stops_their_threads() {
        let workers = Workers::start(3).expect("worker threads start");
        assert_eq!(workers.count(), 3);
        let (done, finished) = std::sync::mpsc::channel();
        workers.spawn(async move {
            let _ = done.send(std::thread::current().name().map(str::to_string));
        });
        let ran_on = finished
            .recv_timeout(Duration::from_secs(5))
            .expect("the task ran");
        assert!(ran_on.is_some_and(|n| n.starts_with("orca-conn-")));
        drop(workers);
        // No other unit test starts workers: a third worker thread left means ours still run.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left = thread_names()
                .iter()
                .filter(|n| n.as_str() == "orca-conn-2")
                .count();
            if left == 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "worker threads still run"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
