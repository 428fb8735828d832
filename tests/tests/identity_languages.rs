//! Resolvers written in Python, JavaScript and C, built from `plugins/examples/` by their own
//! scripts, loaded from their real `.wasm` through the chain like the bundled ones.
//!
//! Python and JavaScript components take tens of seconds to compile; the state directory (and
//! so wasmtime's compile cache) lives under `target/` so later runs load them from the cache.

use std::path::PathBuf;
use std::time::Duration;

use orca::config::{PluginSource, ResolverConfig};
use orca::identity::{
    Client, Credential, Decision, HttpRequest, Identities, PublicKey, SshAttempt,
};
use orca::metrics::Metrics;
use orca_tests::{identity, plugins};

fn resolver(name: &str, plugin: PathBuf, config: &[(&str, &str)]) -> ResolverConfig {
    let mut r = identity::resolver(name, PluginSource::Path(plugin), config);
    r.timeout = Duration::from_secs(5);
    r.memory_mb = 128;
    r
}

fn state_dir() -> PathBuf {
    let dir = plugins::repo_root().join("target/test-state/identity-languages");
    std::fs::create_dir_all(&dir).expect("target/ is writable");
    dir
}

fn request(client: &str, headers: &[(&str, &str)]) -> HttpRequest {
    identity::http_request(client, headers, &[])
}

fn who(d: &Decision) -> Option<(&str, &[String], &str)> {
    match d {
        Decision::Allow {
            identity, resolver, ..
        } => Some((&identity.id, &identity.groups, resolver)),
        _ => None,
    }
}

fn deny_reason(d: &Decision) -> (&str, &str) {
    match d {
        Decision::Deny {
            resolver, reason, ..
        } => (resolver, reason),
        other => panic!("expected a deny, got {other:?}"),
    }
}

/// JavaScript first, Python second: pass moves on, deny stops, allow decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_resolvers_share_one_chain() {
    let js = plugins::example("js-bearer").expect("js-bearer builds");
    let py = plugins::example("python-header").expect("python-header builds");
    let ids = Identities::load(
        &[
            resolver("bearer", js, &[("tokens", "t0ken=carol:ops|devs")]),
            resolver("sso", py, &[("trusted", "10.0.0.5")]),
        ],
        &state_dir(),
        Metrics::new(),
    )
    .await
    .expect("both components load");

    let bearer = request("192.0.2.1", &[("authorization", "Bearer t0ken")]);
    let d = ids.http(&bearer).await;
    assert_eq!(
        who(&d),
        Some((
            "carol",
            ["ops".to_string(), "devs".to_string()].as_slice(),
            "bearer"
        ))
    );

    let sso = request(
        "10.0.0.5",
        &[("x-remote-user", "dave"), ("x-remote-groups", "staff, ops")],
    );
    let d = ids.http(&sso).await;
    assert_eq!(
        who(&d),
        Some((
            "dave",
            ["staff".to_string(), "ops".to_string()].as_slice(),
            "sso"
        ))
    );

    // A wrong token is a deny from the first resolver: the second is never asked.
    let both = request(
        "10.0.0.5",
        &[("authorization", "Bearer nope"), ("x-remote-user", "dave")],
    );
    assert_eq!(
        deny_reason(&ids.http(&both).await),
        ("bearer", "unknown bearer token")
    );

    // The trusted proxy forgot the header: Python denies.
    let bare = request("10.0.0.5", &[]);
    assert_eq!(
        deny_reason(&ids.http(&bare).await),
        ("sso", "trusted proxy sent no x-remote-user")
    );

    // Neither knows an untrusted client without a token.
    assert_eq!(
        ids.http(&request("192.0.2.1", &[])).await,
        Decision::Unknown
    );

    // Python's store import counts allowed requests; the store persists in the state
    // directory (kept between runs for the compile cache), so count from here.
    let sso_ns = ids.plugins()[1].kv();
    let count = || {
        sso_ns
            .get("allowed:dave")
            .map_or(0, |v| i64::from_le_bytes(v.try_into().unwrap()))
    };
    let before = count();
    assert!(before >= 1, "the allowed request above was not counted");
    assert!(who(&ids.http(&sso).await).is_some());
    assert_eq!(count(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_resolver_answers_ssh_attempts() {
    let c = plugins::example("c-fingerprint").expect("c-fingerprint builds");
    let fp = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
    let metrics = Metrics::new();
    let ids = Identities::load(
        &[resolver(
            "fingerprints",
            c,
            &[("user:alice", fp), ("groups:alice", "devs,ops")],
        )],
        &state_dir(),
        metrics.clone(),
    )
    .await
    .expect("the C component loads");
    let attempt = |user: &str, fingerprint: &str| SshAttempt {
        user: user.into(),
        image: Some("shell".into()),
        credential: Credential::PublicKey(PublicKey {
            algorithm: "ssh-ed25519".into(),
            // The gateway derives the fingerprint from the blob; keep them paired.
            blob: fingerprint.as_bytes().to_vec(),
            fingerprint: fingerprint.into(),
            openssh: "ssh-ed25519 AAAA".into(),
        }),
        client: Client {
            address: "127.0.0.1".into(),
            port: 50000,
        },
    };
    let d = ids.ssh(&attempt("alice", fp)).await;
    assert_eq!(
        who(&d),
        Some((
            "alice",
            ["devs".to_string(), "ops".to_string()].as_slice(),
            "fingerprints"
        ))
    );
    // The plugin allows caching for 60 s: the same key again is answered by the gateway.
    let again = ids.ssh(&attempt("alice", fp)).await;
    assert_eq!(who(&again).map(|w| w.0), Some("alice"));
    assert!(
        metrics.render().contains(
            "orca_resolver_calls_total{interface=\"ssh\",resolver=\"fingerprints\",result=\"cached\"} 1"
        ),
        "{}",
        metrics.render()
    );
    let other = "SHA256:AAAAztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
    let d = ids.ssh(&attempt("alice", other)).await;
    assert_eq!(
        deny_reason(&d).1,
        format!("key {other} is not listed for alice")
    );
    assert_eq!(ids.ssh(&attempt("bob", fp)).await, Decision::Unknown);
    let password = SshAttempt {
        credential: Credential::Password("secret".into()),
        ..attempt("alice", fp)
    };
    assert_eq!(ids.ssh(&password).await, Decision::Unknown);
}
