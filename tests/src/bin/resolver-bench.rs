//! Resolver call cost through the gateway's real host (`bench/resolvers`): per-call latency
//! p50/p99 of the bundled cookie resolver and of the Python example, with a fresh instance per
//! call (`reuse = 1`) and with reused instances, instantiation cost, and calls per second on
//! one core (a current-thread runtime). The native peer is the same HMAC-SHA256 check and JSON
//! parse done in Rust without WebAssembly.
//!
//! Usage: resolver-bench [calls-per-case]   (prints a Markdown table)

use std::path::PathBuf;
use std::time::{Duration, Instant};

use orca::config::{PluginSource, ResolverConfig};
use orca::identity::{Decision, HttpRequest, Identities, Identity};
use orca::metrics::Metrics;
use sha2::{Digest, Sha256};

fn resolver(
    name: &str,
    plugin: PluginSource,
    config: &[(&str, &str)],
    reuse: u32,
) -> ResolverConfig {
    let mut r = orca_tests::identity::resolver(name, plugin, config);
    r.timeout = Duration::from_secs(5);
    r.memory_mb = 128;
    r.reuse = reuse;
    r.cache_max = Duration::ZERO;
    r
}

fn request(headers: &[(&str, &str)], cookies: &[(&str, &str)]) -> HttpRequest {
    orca_tests::identity::http_request("10.0.0.5", headers, cookies)
}

struct Row {
    case: String,
    p50: Duration,
    p99: Duration,
    per_second: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

async fn measure(
    ids: &Identities,
    req: &HttpRequest,
    calls: usize,
    expect: &str,
) -> (Vec<Duration>, Duration) {
    // Warm up: compile caches, first instances, allocator.
    for _ in 0..calls.min(200) {
        check(ids.http(req).await, expect);
    }
    let mut samples = Vec::with_capacity(calls);
    let started = Instant::now();
    for _ in 0..calls {
        let t = Instant::now();
        let d = ids.http(req).await;
        samples.push(t.elapsed());
        check(d, expect);
    }
    let total = started.elapsed();
    samples.sort();
    (samples, total)
}

fn check(d: Decision, expect: &str) {
    match d {
        Decision::Allow { identity, .. } if identity.id == expect => {}
        other => panic!("benchmark call answered {other:?}, expected allow {expect}"),
    }
}

fn row(case: &str, samples: &[Duration], total: Duration) -> Row {
    Row {
        case: case.to_string(),
        p50: percentile(samples, 0.50),
        p99: percentile(samples, 0.99),
        per_second: samples.len() as f64 / total.as_secs_f64(),
    }
}

/// The work the cookie resolver does, natively: split, HMAC-SHA256 verify, JSON parse.
fn native_cookie_check(value: &str, key: &[u8]) -> bool {
    let mut parts = value.splitn(3, '.');
    let (Some(v), Some(payload), Some(mac)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    // HMAC-SHA256 by its definition (RFC 2104), to avoid another dependency in the tests.
    let mut k = [0u8; 64];
    k[..key.len().min(64)].copy_from_slice(&key[..key.len().min(64)]);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(v.as_bytes())
        .chain_update(b".")
        .chain_update(payload.as_bytes())
        .finalize();
    let outer = Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize();
    let json = serde_json::from_slice::<serde_json::Value>(payload.as_bytes());
    std::hint::black_box((outer, json, mac)).0.len() == 32
}

fn example_wasm(name: &str) -> PathBuf {
    orca_tests::plugins::example(name).unwrap_or_else(|e| panic!("building {name}: {e:#}"))
}

async fn run(calls: usize) -> Vec<Row> {
    let state = orca_tests::plugins::repo_root().join("target/bench-state/resolvers");
    std::fs::create_dir_all(&state).expect("target/ is writable");
    let key = "c2VjcmV0LWtleS1mb3ItdGhlLWJlbmNobWFyay0wMTIzNDU2Nzg5";
    let mut rows = Vec::new();

    for (reuse, label) in [(1u32, "fresh instance per call"), (1000, "reused instance")] {
        let ids = Identities::load(
            &[resolver(
                "cookie",
                PluginSource::Bundled("cookie".into()),
                &[("key", key)],
                reuse,
            )],
            &state,
            Metrics::new(),
        )
        .await
        .expect("bundled cookie loads");
        let who = Identity {
            id: "alice".into(),
            display_name: Some("Alice".into()),
            groups: vec!["devs".into(), "ops".into()],
            images: None,
        };
        let (_, issued) = ids.issue(&who).await.expect("issue");
        let req = request(&[("user-agent", "bench")], &[(&issued.name, &issued.value)]);
        let (samples, total) = measure(&ids, &req, calls, "alice").await;
        rows.push(row(&format!("cookie, {label}"), &samples, total));
        if reuse == 1 {
            let mut native = Vec::with_capacity(calls);
            let started = Instant::now();
            for _ in 0..calls {
                let t = Instant::now();
                assert!(native_cookie_check(&issued.value, key.as_bytes()));
                native.push(t.elapsed());
            }
            let total = started.elapsed();
            native.sort();
            rows.push(row(
                "native peer: HMAC-SHA256 + JSON in Rust",
                &native,
                total,
            ));
        }
    }

    let py = example_wasm("python-header");
    for (reuse, label) in [(1u32, "fresh instance per call"), (1000, "reused instance")] {
        let ids = Identities::load(
            &[resolver(
                "sso",
                PluginSource::Path(py.clone()),
                &[("trusted", "10.0.0.5")],
                reuse,
            )],
            &state,
            Metrics::new(),
        )
        .await
        .expect("python example loads");
        let req = request(&[("x-remote-user", "dave")], &[]);
        let n = if reuse == 1 { calls / 10 } else { calls };
        let (samples, total) = measure(&ids, &req, n.max(100), "dave").await;
        rows.push(row(&format!("Python example, {label}"), &samples, total));
    }
    rows
}

fn main() {
    let calls: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    // One core: every call and every instantiation on this one thread.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rows = rt.block_on(run(calls));
    println!("| case | p50 | p99 | calls/s (one core) |");
    println!("|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {:.1} µs | {:.1} µs | {:.0} |",
            r.case,
            r.p50.as_secs_f64() * 1e6,
            r.p99.as_secs_f64() * 1e6,
            r.per_second
        );
    }
}
