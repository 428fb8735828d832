//! The resolver host against real components: the SDK example, and a hostile fixture whose
//! every misbehaviour must be contained (a deny within the plugin's limits, a metric, and other
//! calls still answered).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use orca::config::{PluginSource, ResolverConfig};
use orca::identity::{Decision, HttpRequest, Identities};
use orca::metrics::Metrics;
use orca_tests::{identity, plugins};

fn resolver(name: &str, plugin: PathBuf, config: &[(&str, &str)]) -> ResolverConfig {
    identity::resolver(name, PluginSource::Path(plugin), config)
}

fn request(headers: &[(&str, &str)]) -> HttpRequest {
    identity::http_request("127.0.0.1", headers, &[])
}

fn allowed(d: &Decision) -> Option<&str> {
    match d {
        Decision::Allow { identity, .. } => Some(&identity.id),
        _ => None,
    }
}

fn denied(d: &Decision) -> String {
    match d {
        Decision::Deny { reason, .. } => reason.clone(),
        other => panic!("expected a deny, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_example_resolves_through_the_chain() {
    let wasm = plugins::sdk_example().expect("SDK example builds for wasm32-wasip2");
    let state = tempfile::tempdir().unwrap();
    let ids = Identities::load(
        &[resolver("header", wasm, &[("header", "x-forwarded-user")])],
        state.path(),
        Metrics::new(),
    )
    .await
    .expect("the example loads");
    let d = ids.http(&request(&[("x-forwarded-user", "alice")])).await;
    assert_eq!(allowed(&d), Some("alice"));
    assert_eq!(ids.http(&request(&[])).await, Decision::Unknown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_setting_stops_the_load_with_the_plugins_words() {
    let wasm = plugins::sdk_example().unwrap();
    let state = tempfile::tempdir().unwrap();
    let err = Identities::load(
        &[resolver("header", wasm, &[("heder", "x")])],
        state.path(),
        Metrics::new(),
    )
    .await
    .expect_err("an unknown setting is refused by init");
    let text = err.to_string();
    assert!(
        text.contains("resolver `header` refused its settings"),
        "{text}"
    );
    assert!(text.contains("unknown setting `heder`"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_misbehaviour_is_contained() {
    let wasm = plugins::rust_plugin("orca-fixture-hostile").expect("fixture builds");
    let state = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("granted.txt"), "yes").unwrap();
    // A peer that accepts and never answers, the only address the plugin may reach.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    // A listening peer the plugin was not granted.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other_addr = other.local_addr().unwrap().to_string();

    let mut r = resolver("hostile", wasm, &[("mode", "ok")]);
    r.timeout = Duration::from_millis(500);
    r.memory_mb = 32;
    r.connect = vec![silent_addr.clone()];
    r.files = Some(files.path().to_path_buf());
    let metrics = Metrics::new();
    let ids = Identities::load(&[r], state.path(), metrics.clone())
        .await
        .unwrap();
    let ok = || request(&[("x-user", "alice")]);
    let bad = |mode: &str| request(&[("x-mode", mode)]);

    assert_eq!(allowed(&ids.http(&ok()).await), Some("alice"));

    let started = Instant::now();
    let reason = denied(&ids.http(&bad("loop")).await);
    assert!(reason.contains("deadline"), "{reason}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let reason = denied(&ids.http(&bad("memory")).await);
    assert!(reason.contains("32 MiB memory cap"), "{reason}");

    let reason = denied(&ids.http(&bad("trap")).await);
    assert!(reason.contains("trapped"), "{reason}");

    let reason = denied(&ids.http(&bad("huge")).await);
    assert!(
        reason.contains("malformed") && reason.contains("deny reason"),
        "{reason}"
    );

    let reason = denied(&ids.http(&bad("bad-id")).await);
    assert!(reason.contains("empty id"), "{reason}");

    // Sockets: the granted address connects, any other is refused inside the plugin.
    let granted = request(&[("x-mode", "socket"), ("x-target", &silent_addr)]);
    assert_eq!(allowed(&ids.http(&granted).await), Some("socket-opened"));
    let refused = request(&[("x-mode", "socket"), ("x-target", &other_addr)]);
    let reason = denied(&ids.http(&refused).await);
    assert!(reason.starts_with("connect refused"), "{reason}");

    // Files: the grant is readable at /files, nothing else is.
    let inside = request(&[("x-mode", "file"), ("x-path", "/files/granted.txt")]);
    assert_eq!(allowed(&ids.http(&inside).await), Some("file-read"));
    for path in ["/etc/passwd", "/files/../etc/passwd", "granted.txt"] {
        let outside = request(&[("x-mode", "file"), ("x-path", path)]);
        let reason = denied(&ids.http(&outside).await);
        assert!(reason.starts_with("read refused"), "{path}: {reason}");
    }

    // The grant is read-only.
    let write = request(&[("x-mode", "write"), ("x-path", "/files/granted.txt")]);
    let reason = denied(&ids.http(&write).await);
    assert!(reason.starts_with("write refused"), "{reason}");
    assert_eq!(
        std::fs::read_to_string(files.path().join("granted.txt")).unwrap(),
        "yes"
    );

    // A plugin waiting on a peer that never answers is cut at its deadline, and meanwhile
    // other calls are answered at once.
    let hang = request(&[("x-mode", "hang"), ("x-target", &silent_addr)]);
    let started = Instant::now();
    let (hung, quick) = tokio::join!(ids.http(&hang), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t = Instant::now();
        let d = ids.http(&ok()).await;
        (d, t.elapsed())
    });
    assert!(denied(&hung).contains("deadline"));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(allowed(&quick.0), Some("alice"));
    assert!(
        quick.1 < Duration::from_millis(400),
        "an ok call waited {:?}",
        quick.1
    );

    // A spinning call does not stall other calls either (the guest yields at each epoch).
    let spin = bad("loop");
    let (spun, quick) = tokio::join!(ids.http(&spin), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t = Instant::now();
        let d = ids.http(&ok()).await;
        (d, t.elapsed())
    });
    assert!(denied(&spun).contains("deadline"));
    assert_eq!(allowed(&quick.0), Some("alice"));
    assert!(
        quick.1 < Duration::from_millis(400),
        "an ok call waited {:?}",
        quick.1
    );

    assert_eq!(allowed(&ids.http(&ok()).await), Some("alice"));
    let text = metrics.render();
    for kind in ["timeout", "memory", "trap", "malformed", "socket"] {
        let line = format!("orca_resolver_failures_total{{kind=\"{kind}\",resolver=\"hostile\"}}");
        assert!(text.contains(&line), "no {line} in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_components_are_cached_in_the_state_directory() {
    let wasm = plugins::sdk_example().unwrap();
    let state = tempfile::tempdir().unwrap();
    let first = Identities::load(
        &[resolver("h", wasm.clone(), &[])],
        state.path(),
        Metrics::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        first.compile_cache_stats(),
        (0, 1),
        "a fresh state directory compiles"
    );
    drop(first);
    // The cache is written by a background worker: wait for it to land.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let second = Identities::load(
            &[resolver("h", wasm.clone(), &[])],
            state.path(),
            Metrics::new(),
        )
        .await
        .unwrap();
        if second.compile_cache_stats() == (1, 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second load never used the cache"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Captures log lines written while it is the thread's default subscriber.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One thread (current-thread runtime), so the calls log to this test's subscriber.
#[tokio::test]
async fn plugin_output_goes_to_the_log_under_its_name() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let wasm = plugins::rust_plugin("orca-fixture-hostile").unwrap();
    let state = tempfile::tempdir().unwrap();
    let ids = Identities::load(
        &[resolver("noisy", wasm, &[("mode", "print")])],
        state.path(),
        Metrics::new(),
    )
    .await
    .unwrap();
    // A plugin's lines reach the log inside its write call. This subscriber is the thread's
    // default only; tracing caches each call site's interest globally, and another test of this
    // binary registering the same `warn!` site at the same moment (with no subscriber on its
    // thread) can leave it cached as "never" (a race in tracing-core; seen in CI). So the
    // cache is rebuilt before each call, and the call made again if a line is missing.
    let logged = || String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for _ in 0..5 {
        tracing::callsite::rebuild_interest_cache();
        assert_eq!(ids.http(&request(&[])).await, Decision::Unknown);
        let text = logged();
        let ours = |needle: &str| {
            text.lines()
                .any(|l| l.contains(needle) && l.contains("resolver=\"noisy\""))
        };
        if ours("hello on stdout") && ours("hello on stderr") {
            break;
        }
    }
    drop(ids);
    let text = logged();
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle) && l.contains("resolver=\"noisy\""))
            .unwrap_or_else(|| panic!("no log line with {needle:?} in:\n{text}"))
            .to_string()
    };
    let out = line("hostile fixture says hello on stdout");
    assert!(
        out.contains("INFO") && out.contains("resolver=\"noisy\""),
        "{out}"
    );
    let err = line("hostile fixture says hello on stderr");
    assert!(
        err.contains("WARN") && err.contains("resolver=\"noisy\""),
        "{err}"
    );
}

/// Regression: `orca serve` on the embedded defaults (`state_dir = ".orca"`, relative) failed
/// to start because wasmtime's compile cache wants an absolute directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_state_dir_loads_and_caches() {
    let wasm = plugins::sdk_example().unwrap();
    // Tests run in the package directory; this path is relative to it.
    let relative = PathBuf::from(format!(
        "../target/test-state/relative-{}",
        std::process::id()
    ));
    let ids = Identities::load(&[resolver("h", wasm, &[])], &relative, Metrics::new())
        .await
        .expect("a relative state directory works");
    assert_eq!(ids.compile_cache_stats().0 + ids.compile_cache_stats().1, 1);
    drop(ids);
    let _ = std::fs::remove_dir_all(&relative);
}
