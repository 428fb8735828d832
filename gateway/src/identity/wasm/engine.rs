//! The one wasmtime `Engine` every resolver runs on, and the clock that enforces deadlines.
//!
//! Choices, and why:
//! - The pooling allocator: instances are created per call or per few calls, and pooling makes
//!   that a matter of microseconds (slots are reused, memory is reset copy-on-write).
//! - Epoch interruption, ticked by one thread every [`TICK`]: a running call yields to tokio at
//!   every tick (a busy plugin never holds a worker thread for long) and traps once past its
//!   deadline.
//! - wasmtime's compilation cache in `<state_dir>/cache/wasmtime`, keyed by the content hash of
//!   the component and the engine's settings: a Python or JavaScript component takes seconds to
//!   compile, and a restart must not pay that again.

use std::path::Path;
use std::time::Duration;

use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};

/// How often the epoch advances; the granularity of deadlines and of yielding.
pub(crate) const TICK: Duration = Duration::from_millis(5);

/// Instances alive at once across all resolvers (in calls or kept for reuse).
pub(crate) const MAX_INSTANCES: u32 = 256;

/// Builds the engine. `max_memory` is the largest `memory_mb` of any resolver, in bytes: the
/// pool's memory slots are sized for it, and each store's limiter applies the resolver's own.
pub(crate) fn build(
    cache_dir: Option<&Path>,
    max_memory: usize,
) -> wasmtime::Result<(Engine, Option<Cache>)> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);

    let mut pool = PoolingAllocationConfig::default();
    // Generous per-component shapes: componentize-py and componentize-js components hold
    // dozens of core instances and large tables; Rust and C ones a handful.
    pool.total_component_instances(MAX_INSTANCES);
    pool.total_stacks(MAX_INSTANCES);
    pool.max_core_instances_per_component(64);
    pool.total_core_instances(MAX_INSTANCES * 16);
    pool.max_memories_per_component(8);
    pool.total_memories(MAX_INSTANCES * 4);
    pool.max_tables_per_component(16);
    pool.total_tables(MAX_INSTANCES * 8);
    pool.table_elements(200_000);
    pool.max_component_instance_size(1 << 20);
    pool.max_core_instance_size(1 << 20);
    pool.max_memory_size(max_memory);
    // Keep a few MiB of each recycled slot resident so the next instance skips page faults.
    pool.linear_memory_keep_resident(1 << 20);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));

    let cache = match cache_dir {
        Some(dir) => {
            let mut cache = CacheConfig::new();
            cache.with_directory(dir);
            Some(Cache::new(cache)?)
        }
        None => None,
    };
    config.cache(cache.clone());
    Ok((Engine::new(&config)?, cache))
}

/// Advances the engine's epoch every [`TICK`] until the engine is dropped.
pub(crate) fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("orca-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        });
    if let Err(e) = spawned {
        // Without the ticker no deadline fires; every call would still be bounded by the
        // tokio timeout around it, so this is degraded, not unsafe.
        tracing::error!("cannot start the resolver epoch thread: {e}");
    }
}
