//! The resolver's decisions against a real OpenLDAP slapd (started per test by
//! `tests/ldap/start-slapd`), over plain LDAP, StartTLS and LDAPS, with failover past a
//! server that is down and one that accepts connections but never answers.
//!
//! Needs Debian's `slapd ldap-utils openssl openssh-client` (installed by `scripts/setup`).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use orca_plugin_ldap::{Answer, Config, Directory, Outcome, User};
use orca_sdk::Settings;

const BASE: &str = "dc=example,dc=org";
const SERVICE_DN: &str = "cn=orca,ou=services,dc=example,dc=org";

/// A private slapd for one test, stopped and removed on drop.
struct Slapd {
    dir: PathBuf,
    port: u16,
    ldaps_port: u16,
}

impl Slapd {
    fn start() -> Slapd {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "orca-ldap-test-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/ldap/start-slapd");
        // slapd needs fixed port numbers: take free ones from the kernel and hand them over.
        // Another process could take one in between; a retry with fresh ports covers that.
        for _ in 0..3 {
            let (port, ldaps_port) = (free_port(), free_port());
            let out = Command::new(&script)
                .arg(&dir)
                .arg(port.to_string())
                .args(["--ldaps", &ldaps_port.to_string()])
                .output()
                .expect("run tests/ldap/start-slapd (needs bash)");
            if out.status.success() {
                return Slapd {
                    dir,
                    port,
                    ldaps_port,
                };
            }
            eprintln!(
                "start-slapd failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            stop(&dir);
            let _ = std::fs::remove_dir_all(&dir);
        }
        panic!(
            "slapd did not start; install Debian's slapd ldap-utils openssl openssh-client \
             (scripts/setup does)"
        );
    }

    fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port)
    }

    /// A public key made by the script, as the gateway hands it over: the wire blob.
    fn key(&self, user: &str) -> Vec<u8> {
        let line = std::fs::read_to_string(self.dir.join("keys").join(format!("{user}.pub")))
            .expect("the script wrote the key");
        let b64 = line.split_whitespace().nth(1).expect("a key line");
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64")
    }

    /// Builds a directory from settings, reading `ca_file` from the fixture's `tls/`.
    fn directory(&self, pairs: &[(&str, &str)]) -> Directory {
        Directory::new(self.config(pairs).expect("valid settings"))
    }

    fn config(&self, pairs: &[(&str, &str)]) -> Result<Config, String> {
        let tls = self.dir.join("tls");
        let read = move |name: &str| match std::fs::read_to_string(tls.join(name)) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        };
        let settings = Settings::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_settings(&settings, &read)
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        stop(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn stop(dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/ldap/stop-slapd");
    let _ = Command::new(script).arg(dir).status();
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local address").port()
}

/// Search-then-bind with the service account and a group search.
fn search_settings(servers: &str) -> Vec<(&'static str, String)> {
    vec![
        ("servers", servers.to_string()),
        ("search_base", format!("ou=people,{BASE}")),
        ("service_dn", SERVICE_DN.to_string()),
        ("service_password", "service-password".to_string()),
        ("group_base", format!("ou=groups,{BASE}")),
    ]
}

fn refs<'a>(pairs: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn allowed(answer: &Answer) -> &User {
    match &answer.outcome {
        Outcome::Allow(u) => u,
        other => panic!("expected allow, got {other:?} (notes: {:?})", answer.notes),
    }
}

fn denied(answer: &Answer) -> &str {
    match &answer.outcome {
        Outcome::Deny(why) => why,
        other => panic!("expected deny, got {other:?} (notes: {:?})", answer.notes),
    }
}

fn unavailable(answer: &Answer) -> &str {
    match &answer.outcome {
        Outcome::Unavailable(why) => why,
        other => panic!(
            "expected unavailable, got {other:?} (notes: {:?})",
            answer.notes
        ),
    }
}

fn passed(answer: &Answer) {
    assert!(
        matches!(answer.outcome, Outcome::Pass(_)),
        "expected pass, got {:?}",
        answer.outcome
    );
}

#[test]
fn search_then_bind_allows_the_right_password_with_groups() {
    let slapd = Slapd::start();
    let settings = search_settings(&slapd.url());
    let dir = slapd.directory(&refs(&settings));

    let alice = dir.check_password("alice", "alice-password");
    assert_eq!(
        allowed(&alice),
        &User {
            id: "alice".into(),
            dn: format!("uid=alice,ou=people,{BASE}"),
            display_name: Some("Alice Liddell".into()),
            groups: vec!["devs".into(), "ops".into()],
        }
    );
    assert!(alice.notes.is_empty(), "{:?}", alice.notes);
    assert_eq!(
        allowed(&dir.check_password("bob", "bob-password")).groups,
        ["devs"]
    );
    assert!(
        allowed(&dir.check_password("carol", "carol-password"))
            .groups
            .is_empty()
    );
}

#[test]
fn wrong_password_denies_unknown_user_passes_empty_password_denies() {
    let slapd = Slapd::start();
    let settings = search_settings(&slapd.url());
    let dir = slapd.directory(&refs(&settings));

    let why = denied(&dir.check_password("alice", "bob-password")).to_string();
    assert!(
        why.contains("wrong password") && why.contains("alice"),
        "{why}"
    );
    passed(&dir.check_password("mallory", "anything"));
    // An empty password is an unauthenticated bind, which slapd answers with success.
    assert!(denied(&dir.check_password("alice", "")).contains("empty password"));
    passed(&dir.check_password("", "x"));
}

#[test]
fn filter_syntax_in_user_names_stays_a_value() {
    let slapd = Slapd::start();
    let settings = search_settings(&slapd.url());
    let dir = slapd.directory(&refs(&settings));
    // Unescaped, `*` would match every user (an ambiguous search, denied) and the others would
    // find alice; escaped, no entry has these names.
    for name in ["*", "alice)(uid=*", "a*", "alice\\", "(uid=alice)"] {
        passed(&dir.check_password(name, "alice-password"));
    }
}

#[test]
fn bind_dn_template_with_and_without_a_service_account() {
    let slapd = Slapd::start();
    let template = format!("uid={{user}},ou=people,{BASE}");
    let with_service = slapd.directory(&[
        ("servers", &slapd.url()),
        ("bind_dn", &template),
        ("service_dn", SERVICE_DN),
        ("service_password", "service-password"),
        ("member_of_attr", "memberOf"),
        ("display_name_attr", "displayName"),
    ]);
    let alice = with_service.check_password("alice", "alice-password");
    let user = allowed(&alice);
    assert_eq!(user.display_name.as_deref(), Some("Alice"));
    assert_eq!(user.groups, ["devs", "ops"], "from memberOf");
    denied(&with_service.check_password("alice", "nope"));
    passed(&with_service.check_password("mallory", "nope"));
    // DN syntax in the name is escaped: this is not alice's DN with extra RDNs.
    passed(&with_service.check_password("alice,ou=people", "alice-password"));

    // Without a service account a missing entry and a wrong password look alike: deny both.
    let alone = slapd.directory(&[
        ("servers", &slapd.url()),
        ("bind_dn", &template),
        ("member_of_attr", "memberOf"),
    ]);
    let bob = alone.check_password("bob", "bob-password");
    assert_eq!(allowed(&bob).groups, ["devs"], "bob reads his own memberOf");
    assert_eq!(allowed(&bob).display_name.as_deref(), Some("Bob Builder"));
    denied(&alone.check_password("bob", "nope"));
    denied(&alone.check_password("mallory", "nope"));
}

#[test]
fn group_filter_and_attribute_are_configurable() {
    let slapd = Slapd::start();
    let mut settings = search_settings(&slapd.url());
    settings.push((
        "group_filter",
        "(&(objectClass=groupOfNames)(member={dn}))".into(),
    ));
    settings.push(("group_attr", "cn".into()));
    settings.push(("id_attr", "cn".into()));
    settings.push(("display_name_attr", "".into()));
    let dir = slapd.directory(&refs(&settings));
    let user = allowed(&dir.check_password("bob", "bob-password")).clone();
    assert_eq!(user.id, "Bob Builder", "the id comes from id_attr");
    assert_eq!(user.display_name, None);
    assert_eq!(user.groups, ["devs"]);
}

#[test]
fn ssh_keys_match_the_users_ssh_public_key() {
    let slapd = Slapd::start();
    let settings = search_settings(&slapd.url());
    let dir = slapd.directory(&refs(&settings));
    let alice_key = slapd.key("alice");

    let alice = dir.check_key("alice", &alice_key);
    assert_eq!(allowed(&alice).groups, ["devs", "ops"]);
    let why = denied(&dir.check_key("bob", &alice_key)).to_string();
    assert!(why.contains("1 `sshPublicKey`"), "{why}");
    assert!(allowed(&dir.check_key("bob", &slapd.key("bob"))).id == "bob");
    denied(&dir.check_key("carol", &alice_key));
    passed(&dir.check_key("mallory", &alice_key));
}

#[test]
fn ssh_keys_in_bind_dn_mode_are_read_with_the_service_account() {
    let slapd = Slapd::start();
    let template = format!("uid={{user}},ou=people,{BASE}");
    let dir = slapd.directory(&[
        ("servers", &slapd.url()),
        ("bind_dn", &template),
        ("service_dn", SERVICE_DN),
        ("service_password", "service-password"),
    ]);
    allowed(&dir.check_key("alice", &slapd.key("alice")));
    denied(&dir.check_key("alice", &slapd.key("bob")));
    passed(&dir.check_key("mallory", &slapd.key("bob")));
}

#[test]
fn a_server_that_is_down_fails_over_to_the_next() {
    let slapd = Slapd::start();
    let down = format!("ldap://127.0.0.1:{}", free_port());
    let settings = search_settings(&format!("{down},{}", slapd.url()));
    let dir = slapd.directory(&refs(&settings));
    let answer = dir.check_password("alice", "alice-password");
    allowed(&answer);
    assert_eq!(answer.notes.len(), 1, "{:?}", answer.notes);
    assert!(answer.notes[0].starts_with(&down), "{:?}", answer.notes);
    assert!(
        answer.notes[0].contains("cannot connect"),
        "{:?}",
        answer.notes
    );
}

#[test]
fn a_server_that_never_answers_costs_one_deadline_then_fails_over() {
    let slapd = Slapd::start();
    // Accepts connections and keeps them open without a byte in reply.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_url = format!("ldap://{}", silent.local_addr().expect("address"));
    let holder = std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for conn in silent.incoming().take(4) {
            match conn {
                Ok(c) => held.push(c),
                Err(_) => break,
            }
        }
        std::thread::sleep(Duration::from_secs(2));
        drop(held);
    });
    let mut settings = search_settings(&format!("{silent_url},{}", slapd.url()));
    settings.push(("timeout", "400ms".into()));
    let dir = slapd.directory(&refs(&settings));

    let started = Instant::now();
    let answer = dir.check_password("alice", "alice-password");
    let took = started.elapsed();
    allowed(&answer);
    assert!(
        answer.notes[0].contains("no answer in time"),
        "{:?}",
        answer.notes
    );
    assert!(
        took >= Duration::from_millis(400),
        "gave up early: {took:?}"
    );
    assert!(
        took < Duration::from_millis(1400),
        "waited too long: {took:?}"
    );
    eprintln!("silent server, then a real one: {took:?}");

    // Every server silent: a deny naming each, after one deadline per server.
    let mut settings = search_settings(&format!("{silent_url},{silent_url}"));
    settings.push(("timeout", "300ms".into()));
    let dir = slapd.directory(&refs(&settings));
    let started = Instant::now();
    let answer = dir.check_password("alice", "alice-password");
    let took = started.elapsed();
    let why = unavailable(&answer);
    assert!(why.starts_with("no directory server answered"), "{why}");
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    drop(holder);
}

#[test]
fn a_server_that_speaks_something_else_fails_over() {
    let slapd = Slapd::start();
    // Answers every connection with one well-framed message that is not LDAP, then closes.
    let odd = TcpListener::bind("127.0.0.1:0").expect("bind");
    let odd_url = format!("ldap://{}", odd.local_addr().expect("address"));
    std::thread::spawn(move || {
        for conn in odd.incoming().take(2) {
            let Ok(mut conn) = conn else { break };
            let mut request = [0u8; 512];
            let _ = std::io::Read::read(&mut conn, &mut request);
            let _ =
                std::io::Write::write_all(&mut conn, &[0x30, 0x05, 0x02, 0x01, 0x01, 0x99, 0x00]);
        }
    });
    let settings = search_settings(&format!("{odd_url},{}", slapd.url()));
    let answer = slapd
        .directory(&refs(&settings))
        .check_password("alice", "alice-password");
    allowed(&answer);
    assert!(
        answer.notes[0].contains("not understood"),
        "{:?}",
        answer.notes
    );
}

#[test]
fn starttls_and_ldaps_verify_the_server_against_ca_file() {
    let slapd = Slapd::start();
    let mut starttls = search_settings(&slapd.url());
    starttls.push(("starttls", "true".into()));
    starttls.push(("ca_file", "ca.pem".into()));
    let dir = slapd.directory(&refs(&starttls));
    assert_eq!(
        allowed(&dir.check_password("alice", "alice-password")).groups,
        ["devs", "ops"]
    );
    allowed(&dir.check_key("alice", &slapd.key("alice")));
    denied(&dir.check_password("alice", "wrong"));

    let mut ldaps = search_settings(&slapd.ldaps_url());
    ldaps.push(("ca_file", "ca.pem".into()));
    let dir = slapd.directory(&refs(&ldaps));
    allowed(&dir.check_password("bob", "bob-password"));

    // A CA that did not sign the server's certificate: no server is usable.
    let mut untrusted = search_settings(&slapd.ldaps_url());
    untrusted.push(("ca_file", "other-ca.pem".into()));
    let answer = slapd
        .directory(&refs(&untrusted))
        .check_password("bob", "bob-password");
    let why = unavailable(&answer);
    assert!(why.contains("TLS failed"), "{why}");

    // The certificate names 127.0.0.1 and localhost, not this.
    let mut misnamed = search_settings(&slapd.url());
    misnamed.push(("starttls", "true".into()));
    misnamed.push(("ca_file", "ca.pem".into()));
    misnamed.push(("tls_server_name", "ldap.example.net".into()));
    let answer = slapd
        .directory(&refs(&misnamed))
        .check_password("bob", "bob-password");
    assert!(unavailable(&answer).contains("TLS failed"), "{answer:?}");
}

#[test]
fn a_wrong_service_password_is_reported_not_taken_for_an_unknown_user() {
    let slapd = Slapd::start();
    let mut settings = search_settings(&slapd.url());
    settings.retain(|(k, _)| *k != "service_password");
    settings.push(("service_password", "not-it".into()));
    let answer = slapd
        .directory(&refs(&settings))
        .check_password("alice", "alice-password");
    let why = unavailable(&answer);
    assert!(
        why.contains("service account") && why.contains("invalidCredentials"),
        "{why}"
    );
}

#[test]
fn settings_errors_name_the_file_in_files() {
    let slapd = Slapd::start();
    let e = slapd
        .config(&[
            ("servers", &slapd.ldaps_url()),
            ("bind_dn", "uid={user},dc=x"),
            ("ca_file", "missing.pem"),
        ])
        .unwrap_err();
    assert!(e.contains("`ca_file`") && e.contains("missing.pem"), "{e}");
}
