//! The three bundled resolvers (`cookie`, `ssh-key`, `ldap`), embedded in the gateway binary,
//! through the resolver chain against real peers: a token checker on loopback, keys made by
//! `ssh-keygen`, and a private OpenLDAP `slapd` per test (`tests/ldap/start-slapd`).
//!
//! Needs `ssh-keygen` (openssh-client) and, for the LDAP tests, Debian's `slapd ldap-utils
//! openssl` (installed by `scripts/setup`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use orca::config::{PluginSource, ResolverConfig};
use orca::identity::{
    Client, Credential, Decision, HttpRequest, Identities, Identity, Issued, PublicKey, SshAttempt,
};
use orca::metrics::Metrics;
use orca_tests::ldap::{Slapd, free_port, ldap};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// Chain helpers

/// A bundled resolver with the gateway's defaults (2 s, 64 MiB, reuse 1000, 16 instances).
fn bundled(name: &str, plugin: &str, config: &[(&str, &str)]) -> ResolverConfig {
    orca_tests::identity::resolver(name, PluginSource::Bundled(plugin.into()), config)
}

async fn load(resolvers: &[ResolverConfig], state: &Path) -> Identities {
    Identities::load(resolvers, state, Metrics::new())
        .await
        .expect("the bundled resolvers load")
}

fn client() -> Client {
    orca_tests::identity::client("192.0.2.7")
}

fn request(cookies: &[(&str, &str)]) -> HttpRequest {
    orca_tests::identity::http_request(
        "192.0.2.7",
        &[("user-agent", "identity-bundled-test")],
        cookies,
    )
}

fn identity(id: &str, name: Option<&str>, groups: &[&str]) -> Identity {
    Identity {
        id: id.into(),
        display_name: name.map(str::to_string),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        images: None,
    }
}

/// The allowed identity, its resolver and the cookie to set; panics on anything else.
fn allowed(d: &Decision) -> (&Identity, &str, Option<&Issued>) {
    match d {
        Decision::Allow {
            identity,
            resolver,
            set_cookie,
        } => (identity, resolver, set_cookie.as_ref()),
        other => panic!("expected an allow, got {other:?}"),
    }
}

/// The denying resolver, the reason and the message; panics on anything else.
fn denied(d: &Decision) -> (&str, &str, Option<&str>) {
    match d {
        Decision::Deny {
            resolver,
            reason,
            message,
        } => (resolver, reason, message.as_deref()),
        other => panic!("expected a deny, got {other:?}"),
    }
}

fn groups(who: &Identity) -> Vec<&str> {
    who.groups.iter().map(String::as_str).collect()
}

// ---------------------------------------------------------------------------------------------
// cookie

/// `value` with the character at `index` replaced by another base64url character.
fn flip(value: &str, index: usize) -> String {
    let mut bytes = value.as_bytes().to_vec();
    bytes[index] = if bytes[index] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("still ASCII")
}

/// The parts of a `v1.<payload>.<mac>` value.
fn parts(value: &str) -> (&str, &str) {
    let rest = value.strip_prefix("v1.").expect("a v1 cookie value");
    rest.split_once('.').expect("payload and MAC")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_issue_then_recognise_tamper_and_revoke() {
    let state = tempfile::tempdir().unwrap();
    let metrics = Metrics::new();
    let ids = Identities::load(
        &[bundled("sessions", "cookie", &[("ttl", "1h")])],
        state.path(),
        metrics.clone(),
    )
    .await
    .expect("the bundled resolvers load");
    let alice = identity("alice", Some("Alice Liddell"), &["devs", "ops"]);

    let (resolver, issued) = ids.issue(&alice).await.expect("a session is issued");
    assert_eq!(resolver, "sessions");
    assert_eq!(issued.name, "orca_session");
    assert_eq!(issued.max_age_seconds, 3600);
    assert!(issued.value.starts_with("v1."), "{}", issued.value);

    // The cookie comes back: the same identity, and no new cookie.
    let d = ids.http(&request(&[("orca_session", &issued.value)])).await;
    let (who, by, set) = allowed(&d);
    assert_eq!(who, &alice);
    assert_eq!(by, "sessions");
    assert!(set.is_none());
    // The plugin lets the gateway reuse that answer (session_cache): the same cookie again is
    // answered without a call into the component.
    let cached = |m: &Metrics| {
        m.render()
            .lines()
            .find(|l| l.starts_with("orca_resolver_calls_total") && l.contains("result=\"cached\""))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert_eq!(cached(&metrics), 0);
    let again = ids.http(&request(&[("orca_session", &issued.value)])).await;
    assert_eq!(allowed(&again).0, &alice);
    assert_eq!(cached(&metrics), 1, "{}", metrics.render());
    // Among other cookies and a stale one of the same name it is still found.
    let d = ids
        .http(&request(&[
            ("theme", "dark"),
            ("orca_session", "v1.stale.value"),
            ("orca_session", &issued.value),
        ]))
        .await;
    assert_eq!(allowed(&d).0.id, "alice");

    // Tampering: one character of the payload, one of the MAC, a payload claiming another user
    // under the old MAC, truncation, another version prefix. With `anonymous` off each is
    // simply not a session.
    let (payload, mac) = parts(&issued.value);
    let payload_at = "v1.".len() + payload.len() / 2;
    let mac_at = "v1.".len() + payload.len() + 1 + mac.len() / 2;
    let json = URL_SAFE_NO_PAD.decode(payload).unwrap();
    let json = String::from_utf8(json).unwrap();
    assert!(json.contains("\"id\":\"alice\""), "{json}");
    let forged = format!(
        "v1.{}.{mac}",
        URL_SAFE_NO_PAD.encode(json.replace("\"id\":\"alice\"", "\"id\":\"admin\""))
    );
    for bad in [
        flip(&issued.value, payload_at),
        flip(&issued.value, mac_at),
        forged,
        issued.value[..issued.value.len() - 4].to_string(),
        issued.value.replacen("v1.", "v2.", 1),
    ] {
        assert_ne!(bad, issued.value);
        let d = ids.http(&request(&[("orca_session", &bad)])).await;
        assert_eq!(d, Decision::Unknown, "{bad}");
    }
    // A cookie under another name is not ours.
    let d = ids.http(&request(&[("session", &issued.value)])).await;
    assert_eq!(d, Decision::Unknown);

    // A cookie signed by another gateway's (generated) key is refused.
    let other_state = tempfile::tempdir().unwrap();
    let other = load(&[bundled("sessions", "cookie", &[])], other_state.path()).await;
    let (_, foreign) = other.issue(&alice).await.unwrap();
    assert_eq!(
        allowed(
            &other
                .http(&request(&[("orca_session", &foreign.value)]))
                .await
        )
        .0
        .id,
        "alice"
    );
    let d = ids
        .http(&request(&[("orca_session", &foreign.value)]))
        .await;
    assert_eq!(d, Decision::Unknown);

    // Logout: the cookie name comes back to be cleared, and the session is never accepted
    // again, though it has not expired. Another session of the same user is untouched.
    let (_, second) = ids.issue(&alice).await.unwrap();
    assert_ne!(second.value, issued.value, "every session is its own");
    // The logout request carries another cookie beside the session: the answer cached for the
    // session cookie alone must go as well.
    let logout = request(&[("orca_session", &issued.value)]);
    let logout_with_theme = request(&[("theme", "light"), ("orca_session", &issued.value)]);
    assert_eq!(ids.revoke(&logout_with_theme).await, ["orca_session"]);
    assert_eq!(ids.http(&logout).await, Decision::Unknown);
    assert_eq!(ids.http(&logout_with_theme).await, Decision::Unknown);
    let d = ids.http(&request(&[("orca_session", &second.value)])).await;
    assert_eq!(allowed(&d).0, &alice);

    // The revocation is a store entry, not a guest global: a fresh instance sees it too.
    ids.plugins()[0].drain_idle();
    assert_eq!(ids.http(&logout).await, Decision::Unknown);

    // An identity that cannot be a cookie is refused with the plugin's words.
    let err = ids
        .issue(&identity("", None, &[]))
        .await
        .expect_err("an empty id is not a session");
    let text = err.to_string();
    assert!(
        text.contains("resolver `sessions`") && text.contains("the user id is empty"),
        "{text}"
    );
}

/// Sleeps until the wall clock is at most `within` past a whole second.
async fn align_to_second(within: Duration) {
    let now = unix_now();
    let into = Duration::from_nanos(u64::from(now.subsec_nanos()));
    if into > within {
        tokio::time::sleep(Duration::from_secs(1) - into + Duration::from_millis(20)).await;
    }
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_expires_after_its_ttl() {
    let state = tempfile::tempdir().unwrap();
    let ids = load(
        &[bundled("sessions", "cookie", &[("ttl", "1s")])],
        state.path(),
    )
    .await;
    let bob = identity("bob", None, &["devs"]);

    // Expiry is in whole Unix seconds (`exp` = the issue second + ttl), so a 1 s cookie is
    // valid only until the next second starts: issue early in a second, and count the check
    // only when it finished before `exp` (a loaded machine may need another try).
    let mut valid_seen = None;
    for _ in 0..3 {
        align_to_second(Duration::from_millis(300)).await;
        let (_, issued) = ids.issue(&bob).await.unwrap();
        assert_eq!(issued.max_age_seconds, 1);
        let json = URL_SAFE_NO_PAD.decode(parts(&issued.value).0).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let exp = Duration::from_secs(claims["exp"].as_u64().expect("exp"));
        assert_eq!(
            claims["exp"].as_u64(),
            claims["iat"].as_u64().map(|t| t + 1)
        );
        let with = request(&[("orca_session", &issued.value)]);
        let d = ids.http(&with).await;
        if unix_now() < exp {
            assert_eq!(allowed(&d).0, &bob, "a fresh 1 s session is valid");
            valid_seen = Some((with, exp));
            break;
        }
    }
    let (with, exp) = valid_seen.expect("a session checked within its second");

    // Past `exp`: refused.
    let now = unix_now();
    if exp > now {
        tokio::time::sleep(exp - now + Duration::from_millis(50)).await;
    }
    assert_eq!(ids.http(&with).await, Decision::Unknown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_key_and_revocations_survive_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let resolvers = [bundled("sessions", "cookie", &[])];
    let carol = identity("carol", Some("Carol"), &["staff"]);

    let ids = load(&resolvers, state.path()).await;
    let (_, kept) = ids.issue(&carol).await.unwrap();
    let (_, logged_out) = ids.issue(&carol).await.unwrap();
    let out = request(&[("orca_session", &logged_out.value)]);
    assert_eq!(ids.revoke(&out).await, ["orca_session"]);
    ids.flush();
    assert!(
        state.path().join("resolvers").join("sessions.kv").is_file(),
        "the store is written to the state directory"
    );
    drop(ids);

    // The gateway restarts on the same state directory: the generated key was kept, so the
    // session issued before still works; the logged-out one stays logged out.
    let ids = load(&resolvers, state.path()).await;
    let d = ids.http(&request(&[("orca_session", &kept.value)])).await;
    assert_eq!(allowed(&d).0, &carol);
    assert_eq!(ids.http(&out).await, Decision::Unknown);
    drop(ids);

    // Losing the state directory's store logs everyone out (a new key is generated).
    std::fs::remove_file(state.path().join("resolvers").join("sessions.kv")).unwrap();
    let ids = load(&resolvers, state.path()).await;
    let d = ids.http(&request(&[("orca_session", &kept.value)])).await;
    assert_eq!(d, Decision::Unknown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_gives_anonymous_visitors_an_id_that_sticks() {
    let state = tempfile::tempdir().unwrap();
    let ids = load(
        &[bundled(
            "sessions",
            "cookie",
            &[("anonymous", "true"), ("anonymous_groups", "guests, demo")],
        )],
        state.path(),
    )
    .await;

    let d = ids.http(&request(&[])).await;
    let (who, by, set) = allowed(&d);
    assert_eq!(by, "sessions");
    let anon = who.id.clone();
    let suffix = anon.strip_prefix("anon-").expect("an anonymous id");
    assert_eq!(suffix.len(), 22, "{anon}");
    assert!(URL_SAFE_NO_PAD.decode(suffix).is_ok(), "{anon}");
    assert_eq!(groups(who), ["guests", "demo"]);
    let cookie = set.expect("the anonymous id is set as a cookie").clone();
    assert_eq!(cookie.name, "orca_session");
    assert_eq!(cookie.max_age_seconds, 12 * 3600);

    // The cookie comes back: the same id, nothing new to set.
    let d = ids.http(&request(&[("orca_session", &cookie.value)])).await;
    let (who, _, set) = allowed(&d);
    assert_eq!(who.id, anon);
    assert_eq!(groups(who), ["guests", "demo"]);
    assert!(set.is_none());

    // Another visitor gets another id; a tampered cookie is a new visitor, never the old id.
    let d = ids.http(&request(&[])).await;
    assert_ne!(allowed(&d).0.id, anon);
    let (payload, _) = parts(&cookie.value);
    let tampered = flip(&cookie.value, 3 + payload.len() / 2);
    let d = ids.http(&request(&[("orca_session", &tampered)])).await;
    let (who, _, set) = allowed(&d);
    assert!(who.id.starts_with("anon-") && who.id != anon, "{}", who.id);
    assert!(set.is_some());

    // After a logout the old id is gone for good: the next request is a new visitor.
    let back = request(&[("orca_session", &cookie.value)]);
    assert_eq!(ids.revoke(&back).await, ["orca_session"]);
    let d = ids.http(&back).await;
    let (who, _, set) = allowed(&d);
    assert_ne!(who.id, anon);
    assert!(set.is_some());
}

/// A token checker on loopback: `POST /check` with `token=good` is `200 alice`, `token=bad` is
/// `403`, anything else `400`. Records every request line and body.
struct Checker {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Checker {
    fn start() -> Checker {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the checker");
        listener.set_nonblocking(true).expect("non-blocking accept");
        let addr = listener.local_addr().expect("checker address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (seen, stop) = (seen.clone(), stop.clone());
            move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => Checker::answer(stream, &seen),
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            }
        });
        Checker {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn answer(mut stream: TcpStream, seen: &Mutex<Vec<String>>) {
        stream.set_nonblocking(false).expect("blocking stream");
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("read timeout");
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        let (head, body) = loop {
            let n = stream.read(&mut buf).unwrap_or(0);
            if n == 0 {
                return;
            }
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    break (head.to_string(), body.to_string());
                }
            }
        };
        let line = head.lines().next().unwrap_or("").to_string();
        seen.lock()
            .expect("checker log")
            .push(format!("{line} {body}"));
        let answer = match (line.starts_with("POST /check "), body.as_str()) {
            (true, "token=good") => "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nalice\n",
            (true, "token=bad") => "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
            _ => "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
        };
        let _ = stream.write_all(answer.as_bytes());
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("checker log").clone()
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_turns_a_checked_token_into_a_session() {
    let checker = Checker::start();
    let url = format!("http://{}/check", checker.addr);
    let settings = [("token_url", url.as_str())];
    let mut r = bundled("sessions", "cookie", &settings);
    r.connect = vec![checker.addr.to_string()];
    let state = tempfile::tempdir().unwrap();
    let ids = load(&[r.clone()], state.path()).await;

    // A good token: alice, and a session cookie of our own to set.
    let d = ids.http(&request(&[("token", "good")])).await;
    let (who, by, set) = allowed(&d);
    assert_eq!((who.id.as_str(), by), ("alice", "sessions"));
    let session = set.expect("a session for the checked token").clone();
    assert_eq!(session.name, "orca_session");
    assert_eq!(
        checker.seen(),
        ["POST /check HTTP/1.1 token=good"],
        "the checker is asked once, with the token form-encoded"
    );
    // That session is recognised without asking the checker again.
    let d = ids
        .http(&request(&[("orca_session", &session.value)]))
        .await;
    let (who, _, set) = allowed(&d);
    assert_eq!(who.id, "alice");
    assert!(set.is_none());
    // The same token again within `token_cache` (60 s): answered from the store.
    assert_eq!(
        allowed(&ids.http(&request(&[("token", "good")])).await)
            .0
            .id,
        "alice"
    );
    assert_eq!(checker.seen().len(), 1, "{:?}", checker.seen());

    // A bad token is a deny naming the checker.
    let d = ids.http(&request(&[("token", "bad")])).await;
    let (by, reason, _) = denied(&d);
    assert_eq!(by, "sessions");
    assert_eq!(reason, format!("token rejected by {url}"));
    // An empty token cookie is no token.
    assert_eq!(
        ids.http(&request(&[("token", "")])).await,
        Decision::Unknown
    );

    // Logout clears both cookies.
    let both = request(&[("orca_session", &session.value), ("token", "good")]);
    assert_eq!(ids.revoke(&both).await, ["orca_session", "token"]);
    let d = ids
        .http(&request(&[("orca_session", &session.value)]))
        .await;
    assert_eq!(d, Decision::Unknown);
    let asked = checker.seen().len();

    // The same settings without the checker in `connect`: the sandbox refuses the socket, and
    // the deny says where to look.
    r.connect.clear();
    let state = tempfile::tempdir().unwrap();
    let fenced = load(&[r], state.path()).await;
    let d = fenced.http(&request(&[("token", "good")])).await;
    let (by, reason, _) = denied(&d);
    assert_eq!(by, "sessions");
    assert!(
        reason.starts_with(&format!("token checker {url} failed:")),
        "{reason}"
    );
    assert!(reason.contains("`connect` list"), "{reason}");
    assert_eq!(
        checker.seen().len(),
        asked,
        "no request reached the checker"
    );
}

// ---------------------------------------------------------------------------------------------
// ssh-key

/// Makes a key pair with `ssh-keygen` in `dir` and returns the public key line.
fn keygen(dir: &Path, name: &str, kind: &str) -> String {
    let file = dir.join(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", "", "-C"])
        .arg(format!("{name}@test"))
        .arg("-f")
        .arg(&file);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    let out = cmd
        .output()
        .expect("run ssh-keygen (Debian: openssh-client)");
    assert!(
        out.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(file.with_extension("pub"))
        .expect("ssh-keygen wrote the public key")
        .trim()
        .to_string()
}

/// What `ssh-keygen -l` says the key's SHA-256 fingerprint is.
fn keygen_fingerprint(dir: &Path, line: &str) -> String {
    let file = dir.join("fingerprint-me.pub");
    std::fs::write(&file, format!("{line}\n")).expect("write a key file");
    let out = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(&file)
        .output()
        .expect("run ssh-keygen -l");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("bits, fingerprint, comment")
        .to_string()
}

/// The key as the gateway's SSH front hands it over: wire blob, `SHA256:` fingerprint,
/// `type base64` without the comment.
fn public_key(line: &str) -> PublicKey {
    let mut fields = line.split_whitespace();
    let algorithm = fields.next().expect("a key type").to_string();
    let encoded = fields.next().expect("a base64 key");
    let blob = STANDARD.decode(encoded).expect("base64 key");
    let fingerprint = format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(&blob)));
    PublicKey {
        openssh: format!("{algorithm} {encoded}"),
        algorithm,
        blob,
        fingerprint,
    }
}

fn ssh(user: &str, credential: Credential) -> SshAttempt {
    SshAttempt {
        user: user.into(),
        image: Some("shell".into()),
        credential,
        client: client(),
    }
}

fn with_key(user: &str, line: &str) -> SshAttempt {
    ssh(user, Credential::PublicKey(public_key(line)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_key_files_per_user_and_authorized_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("private");
    let files = tmp.path().join("files");
    let shared = tmp.path().join("shared");
    for d in [&keys, &files, &shared] {
        std::fs::create_dir(d).unwrap();
    }
    let alice_ed = keygen(&keys, "alice-ed", "ed25519");
    let alice_ec = keygen(&keys, "alice-ec", "ecdsa");
    let bob_rsa = keygen(&keys, "bob-rsa", "rsa");
    let stranger = keygen(&keys, "stranger", "ed25519");

    // The fingerprint helper agrees with OpenSSH, and the gateway's SSH front describes each
    // key as the helper does.
    for line in [&alice_ed, &alice_ec, &bob_rsa] {
        assert_eq!(
            public_key(line).fingerprint,
            keygen_fingerprint(&keys, line)
        );
        let encoded = line.split_whitespace().nth(1).expect("a base64 key");
        let parsed = russh::keys::parse_public_key_base64(encoded).expect("OpenSSH's key parses");
        assert_eq!(
            orca::ssh::auth::public_key(&parsed),
            public_key(line),
            "{line}"
        );
    }

    // alice: two keys in alice.pub, with a comment line and a blank line.
    std::fs::write(
        files.join("alice.pub"),
        format!("# alice's keys\n{alice_ed}\n\n{alice_ec}\n"),
    )
    .unwrap();
    // bob: a line of a shared authorized_keys with options, beside someone else's.
    std::fs::write(
        shared.join("authorized_keys"),
        format!(
            "no-pty,user=\"bob\",command=\"echo \\\"hi, there\\\"\" {bob_rsa}\n\
             user=\"dave\" {stranger}\n"
        ),
    )
    .unwrap();
    // A key file outside the granted directory that a path-traversing name would reach.
    std::fs::write(tmp.path().join("evil.pub"), format!("{stranger}\n")).unwrap();
    std::fs::write(tmp.path().join("passwd.pub"), format!("{stranger}\n")).unwrap();

    let mut per_user = bundled("keys", "ssh-key", &[("groups:alice", "devs,ops")]);
    per_user.files = Some(files.clone());
    let mut authorized = bundled(
        "shared-keys",
        "ssh-key",
        &[
            ("authorized_keys", "authorized_keys"),
            ("groups:bob", "devs"),
        ],
    );
    authorized.files = Some(shared.clone());
    let state = tempfile::tempdir().unwrap();
    let ids = load(&[per_user, authorized], state.path()).await;

    // Each of alice's keys: allowed by the per-user resolver, with her groups.
    for line in [&alice_ed, &alice_ec] {
        let d = ids.ssh(&with_key("alice", line)).await;
        let (who, by, set) = allowed(&d);
        assert_eq!((who.id.as_str(), by), ("alice", "keys"), "{line}");
        assert_eq!(groups(who), ["devs", "ops"]);
        assert!(set.is_none());
    }

    // alice offering bob's key: her file is found and the key is not in it.
    let d = ids.ssh(&with_key("alice", &bob_rsa)).await;
    let (by, reason, _) = denied(&d);
    assert_eq!(by, "keys");
    assert_eq!(
        reason,
        format!(
            "key {} is not authorized for alice",
            public_key(&bob_rsa).fingerprint
        )
    );

    // bob has no .pub: the first resolver passes, the authorized_keys one allows, for the key
    // offered with either the `ssh-rsa` or an `rsa-sha2-512` signature.
    let d = ids.ssh(&with_key("bob", &bob_rsa)).await;
    let (who, by, _) = allowed(&d);
    assert_eq!((who.id.as_str(), by), ("bob", "shared-keys"));
    assert_eq!(groups(who), ["devs"]);
    let mut sha512 = public_key(&bob_rsa);
    sha512.algorithm = "rsa-sha2-512".into();
    let d = ids.ssh(&ssh("bob", Credential::PublicKey(sha512))).await;
    assert_eq!(allowed(&d).0.id, "bob");
    let d = ids.ssh(&with_key("bob", &alice_ed)).await;
    assert_eq!(denied(&d).0, "shared-keys");

    // Nobody knows mallory; neither resolver answers passwords.
    assert_eq!(
        ids.ssh(&with_key("mallory", &stranger)).await,
        Decision::Unknown
    );
    let d = ids
        .ssh(&ssh("alice", Credential::Password("alice-password".into())))
        .await;
    assert_eq!(d, Decision::Unknown);
    assert_eq!(
        ids.password("alice", "alice-password", &client()).await,
        Decision::Unknown
    );

    // Names that would leave the directory are not looked up (and the sandbox would refuse
    // anyway): `../evil.pub` and `../passwd.pub` hold a key, yet nothing is allowed.
    for user in [
        "../etc/passwd",
        "../evil",
        "../passwd",
        "..",
        ".alice",
        "alice/../alice",
        "/alice",
        "alice\\x",
        "al\0ice",
        "",
    ] {
        let d = ids.ssh(&with_key(user, &stranger)).await;
        assert_eq!(d, Decision::Unknown, "user {user:?}");
    }
    // The resolvers still answer after all that.
    assert_eq!(
        allowed(&ids.ssh(&with_key("alice", &alice_ed)).await).0.id,
        "alice"
    );

    // Files are read on every call: a key removed from alice.pub stops working at once.
    std::fs::write(files.join("alice.pub"), format!("{alice_ec}\n")).unwrap();
    let d = ids.ssh(&with_key("alice", &alice_ed)).await;
    assert_eq!(denied(&d).0, "keys");
    assert_eq!(
        allowed(&ids.ssh(&with_key("alice", &alice_ec)).await).0.id,
        "alice"
    );
}

// ---------------------------------------------------------------------------------------------
// ldap

/// A key pair for alice made in `dir`: (public key file, line).
fn alice_key(dir: &Path) -> (PathBuf, String) {
    let line = keygen(dir, "alice", "ecdsa");
    (dir.join("alice.pub"), line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_passwords_groups_and_ssh_keys_against_slapd() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice_pub, alice_line) = alice_key(tmp.path());
    let slapd = Slapd::start(&alice_pub);
    let state = tempfile::tempdir().unwrap();
    let ids = load(
        &[ldap(
            &format!("ldap://{}", slapd.addr()),
            &[slapd.addr()],
            &[],
        )],
        state.path(),
    )
    .await;
    assert!(ids.has_password());

    // The login form: the right password is alice with her directory groups.
    let d = ids.password("alice", "alice-password", &client()).await;
    let (who, by, set) = allowed(&d);
    assert_eq!(by, "directory");
    assert_eq!(
        who,
        &identity("alice", Some("Alice Liddell"), &["devs", "ops"])
    );
    assert!(set.is_none());
    let d = ids.password("bob", "bob-password", &client()).await;
    assert_eq!(groups(allowed(&d).0), ["devs"]);

    // Wrong password: deny naming the user; empty password: deny without a bind.
    let d = ids.password("alice", "bob-password", &client()).await;
    let (by, reason, _) = denied(&d);
    assert_eq!(by, "directory");
    assert!(reason.starts_with("wrong password for `alice`"), "{reason}");
    let d = ids.password("alice", "", &client()).await;
    assert!(denied(&d).1.contains("empty password"), "{d:?}");
    // Unknown users, filter syntax included, are no one's.
    for user in ["mallory", "*", "alice)(uid=*"] {
        let d = ids.password(user, "alice-password", &client()).await;
        assert_eq!(d, Decision::Unknown, "{user}");
    }

    // SSH with alice's real key (her `sshPublicKey`), and with bob's.
    let d = ids.ssh(&with_key("alice", &alice_line)).await;
    let (who, by, _) = allowed(&d);
    assert_eq!(by, "directory");
    assert_eq!(who.id, "alice");
    assert_eq!(groups(who), ["devs", "ops"]);
    let d = ids.ssh(&with_key("alice", &slapd.bob_key())).await;
    let (_, reason, _) = denied(&d);
    assert!(
        reason.contains("is the offered key") && reason.contains("uid=alice"),
        "{reason}"
    );
    assert_eq!(
        allowed(&ids.ssh(&with_key("bob", &slapd.bob_key())).await)
            .0
            .id,
        "bob"
    );
    assert_eq!(
        ids.ssh(&with_key("mallory", &alice_line)).await,
        Decision::Unknown
    );
    // carol has no key at all: deny, not pass (she is a known user).
    let d = ids.ssh(&with_key("carol", &alice_line)).await;
    assert!(denied(&d).1.contains("none of the 0"), "{d:?}");

    // SSH passwords go to the resolver's `ssh` export.
    let d = ids
        .ssh(&ssh("alice", Credential::Password("alice-password".into())))
        .await;
    let (who, by, _) = allowed(&d);
    assert_eq!((who.id.as_str(), by), ("alice", "directory"));
    assert_eq!(groups(who), ["devs", "ops"]);
    let d = ids
        .ssh(&ssh("alice", Credential::Password("nope".into())))
        .await;
    assert!(denied(&d).1.starts_with("wrong password"), "{d:?}");
    let d = ids
        .ssh(&ssh("mallory", Credential::Password("nope".into())))
        .await;
    assert_eq!(d, Decision::Unknown);
}

/// A login through the whole default-like chain: SSH keys from files first, then LDAP; the
/// HTTPS login form's password checked by LDAP and turned into a cookie session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_login_becomes_a_cookie_session() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice_pub, alice_line) = alice_key(tmp.path());
    let slapd = Slapd::start(&alice_pub);
    let files = tmp.path().join("keys");
    std::fs::create_dir(&files).unwrap();
    let mut keys = bundled("keys", "ssh-key", &[]);
    keys.files = Some(files);
    let state = tempfile::tempdir().unwrap();
    let ids = load(
        &[
            bundled("sessions", "cookie", &[]),
            keys,
            ldap(&format!("ldap://{}", slapd.addr()), &[slapd.addr()], &[]),
        ],
        state.path(),
    )
    .await;

    let d = ids.password("alice", "alice-password", &client()).await;
    let (who, by, _) = allowed(&d);
    assert_eq!(by, "directory");
    let (by, cookie) = ids.issue(who).await.expect("a session after the login");
    assert_eq!(by, "sessions");
    let d = ids.http(&request(&[(&cookie.name, &cookie.value)])).await;
    let (who, by, _) = allowed(&d);
    assert_eq!(by, "sessions");
    assert_eq!(
        who,
        &identity("alice", Some("Alice Liddell"), &["devs", "ops"])
    );

    // No alice.pub in the key files: `keys` passes and the directory's key decides.
    let d = ids.ssh(&with_key("alice", &alice_line)).await;
    assert_eq!(allowed(&d).1, "directory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_fails_over_past_a_server_that_is_down() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice_pub, _) = alice_key(tmp.path());
    let slapd = Slapd::start(&alice_pub);
    let down = format!("127.0.0.1:{}", free_port());
    let state = tempfile::tempdir().unwrap();
    let ids = load(
        &[ldap(
            &format!("ldap://{down},ldap://{}", slapd.addr()),
            &[down.clone(), slapd.addr()],
            &[],
        )],
        state.path(),
    )
    .await;
    let d = ids.password("alice", "alice-password", &client()).await;
    assert_eq!(groups(allowed(&d).0), ["devs", "ops"]);
    let d = ids.password("alice", "wrong", &client()).await;
    assert!(denied(&d).1.starts_with("wrong password"), "{d:?}");
}

/// Accepts connections and never says a byte; holds them until dropped.
struct Silent {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<usize>>,
}

impl Silent {
    fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the silent server");
        listener.set_nonblocking(true).expect("non-blocking accept");
        let addr = listener.local_addr().expect("silent address");
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let mut held = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => held.push(stream),
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
                held.len()
            }
        });
        Silent {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops accepting; the number of connections it held.
    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("silent server thread")
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_fails_over_past_a_server_that_never_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice_pub, _) = alice_key(tmp.path());
    let slapd = Slapd::start(&alice_pub);
    let silent = Silent::start();
    let state = tempfile::tempdir().unwrap();
    let ids = load(
        &[ldap(
            &format!("ldap://{},ldap://{}", silent.addr, slapd.addr()),
            &[silent.addr.to_string(), slapd.addr()],
            &[("timeout", "500ms")],
        )],
        state.path(),
    )
    .await;

    let started = Instant::now();
    let d = ids.password("alice", "alice-password", &client()).await;
    let took = started.elapsed();
    assert_eq!(groups(allowed(&d).0), ["devs", "ops"]);
    assert!(
        took >= Duration::from_millis(500),
        "the silent server was not waited for: {took:?}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "failover took too long: {took:?}"
    );
    assert_eq!(silent.finish(), 1, "the silent server was tried once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_over_ldaps_and_starttls_with_the_ca_in_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice_pub, alice_line) = alice_key(tmp.path());
    let slapd = Slapd::start(&alice_pub);
    let files = slapd.ca_files(tmp.path());

    let mut ldaps = ldap(
        &format!("ldaps://{}", slapd.ldaps_addr()),
        &[slapd.ldaps_addr()],
        &[("ca_file", "ca.pem")],
    );
    ldaps.files = Some(files.clone());
    let mut starttls = ldap(
        &format!("ldap://{}", slapd.addr()),
        &[slapd.addr()],
        &[("ca_file", "ca.pem"), ("starttls", "true")],
    );
    starttls.name = "directory-starttls".into();
    starttls.files = Some(files.clone());

    for r in [ldaps, starttls] {
        let name = r.name.clone();
        let state = tempfile::tempdir().unwrap();
        let ids = load(&[r], state.path()).await;
        let d = ids.password("alice", "alice-password", &client()).await;
        let (who, by, _) = allowed(&d);
        assert_eq!(by, name);
        assert_eq!(groups(who), ["devs", "ops"], "{name}");
        let d = ids.password("alice", "wrong", &client()).await;
        assert!(denied(&d).1.starts_with("wrong password"), "{name}: {d:?}");
        let d = ids.ssh(&with_key("alice", &alice_line)).await;
        assert_eq!(allowed(&d).0.id, "alice", "{name}");
    }

    // A CA that signed nothing here: TLS fails, so no server is usable.
    std::fs::copy(slapd.dir.join("tls/other-ca.pem"), files.join("other.pem")).unwrap();
    let mut untrusted = ldap(
        &format!("ldaps://{}", slapd.ldaps_addr()),
        &[slapd.ldaps_addr()],
        &[("ca_file", "other.pem")],
    );
    untrusted.files = Some(files);
    let state = tempfile::tempdir().unwrap();
    let ids = load(&[untrusted], state.path()).await;
    let d = ids.password("alice", "alice-password", &client()).await;
    let (_, reason, message) = denied(&d);
    assert!(reason.contains("TLS failed"), "{reason}");
    assert_eq!(
        message,
        Some("the directory cannot be reached; try again later")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_outside_the_connect_list_is_refused_by_the_sandbox() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice_pub, alice_line) = alice_key(tmp.path());
    let slapd = Slapd::start(&alice_pub);
    let url = format!("ldap://{}", slapd.addr());
    let elsewhere = format!("127.0.0.1:{}", free_port());

    // Some other address granted (sockets on, this one refused), and none at all.
    for connect in [vec![elsewhere], Vec::new()] {
        let state = tempfile::tempdir().unwrap();
        let ids = load(&[ldap(&url, &connect, &[])], state.path()).await;
        let d = ids.password("alice", "alice-password", &client()).await;
        let (by, reason, message) = denied(&d);
        assert_eq!(by, "directory");
        assert!(
            reason.starts_with(&format!(
                "no directory server answered: {url}: cannot connect"
            )),
            "{connect:?}: {reason}"
        );
        assert!(
            reason.contains("not permitted; is the address in the resolver's `connect` list?"),
            "{connect:?}: the reason should point at the sandbox: {reason}"
        );
        assert_eq!(
            message,
            Some("the directory cannot be reached; try again later")
        );
        let d = ids.ssh(&with_key("alice", &alice_line)).await;
        assert!(denied(&d).1.contains("cannot connect"), "{d:?}");
    }
}

/// The proxy strips the session resolvers' cookies from every forwarded request: the names are
/// learnt at load from each session resolver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cookie_names_are_known_from_the_start() {
    let state = tempfile::tempdir().unwrap();
    let plain = load(&[bundled("sessions", "cookie", &[])], state.path()).await;
    assert_eq!(
        plain.session_cookie_names(),
        vec!["orca_session".to_string()]
    );
    let state = tempfile::tempdir().unwrap();
    let with_token = load(
        &[bundled(
            "sessions",
            "cookie",
            &[
                ("cookie", "sid"),
                ("token_url", "http://127.0.0.1:9/check"),
                ("token_cookie", "orca_token"),
            ],
        )],
        state.path(),
    )
    .await;
    assert_eq!(
        with_token.session_cookie_names(),
        vec!["orca_token".to_string(), "sid".to_string()]
    );
}
