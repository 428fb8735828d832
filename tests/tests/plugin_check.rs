//! `orca plugin check FILE.wasm` (through `orca::cli::plugin_check`, what the subcommand runs)
//! on real components: one that fits, one built against another version of the package, and
//! bytes that are not a component.

use orca::cli::plugin_check;
use orca_tests::plugins;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fitting_component_lists_its_interfaces() {
    let wasm = plugins::rust_plugin("orca-fixture-hostile").unwrap();
    let (text, code) = plugin_check(&wasm).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("fits orca:identity@0.1.0"), "{text}");
    assert!(text.contains("resolver interfaces: http\n"), "{text}");
    assert!(text.contains("orca:identity/lifecycle@0.1.0"), "{text}");
    assert!(text.contains("init with no settings: ok"), "{text}");

    let c = plugins::example("c-fingerprint").unwrap();
    let (text, code) = plugin_check(&c).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("resolver interfaces: ssh\n"), "{text}");
    // Its init needs `user:<name>` settings, and says so.
    assert!(text.contains("init with no settings: refused:"), "{text}");
    assert!(text.contains("user:"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_of_another_version_is_explained() {
    let wasm = plugins::rust_plugin("orca-fixture-misfit").unwrap();
    let (text, code) = plugin_check(&wasm).await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("does not fit orca:identity@0.1.0"), "{text}");
    assert!(
        text.contains(
            "it exports `orca:identity/http@0.2.0`, a version this gateway does not speak"
        ),
        "{text}"
    );
    assert!(
        text.contains("does not export `orca:identity/lifecycle@0.1.0`"),
        "{text}"
    );
    assert!(text.contains("resolver interfaces: none"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_a_component_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A valid core module (magic and version only) is still not a component.
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let (text, code) = plugin_check(&core).await;
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("not a WebAssembly component"), "{text}");

    let missing = dir.path().join("missing.wasm");
    let (text, code) = plugin_check(&missing).await;
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("cannot read"), "{text}");
}
