//! A private OpenLDAP `slapd` per test (`tests/ldap/start-slapd`) and the bundled `ldap`
//! resolver configured against it, for the identity and SSH tests.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use orca::config::{PluginSource, ResolverConfig};

use crate::plugins::repo_root;

/// The directory's suffix.
pub const BASE: &str = "dc=example,dc=org";

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local address").port()
}

/// A private slapd for one test (`tests/ldap/start-slapd`), stopped on drop even when the test
/// fails.
#[derive(Debug)]
pub struct Slapd {
    /// Where everything of this slapd lives (`tls/`, `keys/`, its log).
    pub dir: PathBuf,
    port: u16,
    ldaps_port: u16,
    _tmp: tempfile::TempDir,
}

impl Slapd {
    /// Starts slapd with `alice_key` as alice's `sshPublicKey`.
    pub fn start(alice_key: &Path) -> Slapd {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let script = repo_root().join("tests/ldap/start-slapd");
        // slapd needs port numbers up front: take free ones and retry if another process
        // grabbed one in between.
        for attempt in 0..3 {
            let dir = tmp.path().join(format!("slapd-{attempt}"));
            let (port, ldaps_port) = (free_port(), free_port());
            let out = Command::new(&script)
                .arg(&dir)
                .arg(port.to_string())
                .args(["--ldaps", &ldaps_port.to_string()])
                .arg("--alice-key")
                .arg(alice_key)
                .output()
                .expect("run tests/ldap/start-slapd (needs bash)");
            if out.status.success() {
                return Slapd {
                    dir,
                    port,
                    ldaps_port,
                    _tmp: tmp,
                };
            }
            eprintln!(
                "start-slapd failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            stop_slapd(&dir);
        }
        panic!(
            "slapd did not start; install Debian's slapd ldap-utils openssl openssh-client \
             (scripts/setup does)"
        );
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn ldaps_addr(&self) -> String {
        format!("127.0.0.1:{}", self.ldaps_port)
    }

    /// bob's public key line, made by the script.
    pub fn bob_key(&self) -> String {
        std::fs::read_to_string(self.dir.join("keys/bob.pub"))
            .expect("the script made bob's key")
            .trim()
            .to_string()
    }

    /// A `files` directory holding only the CA certificate, as an operator would grant.
    pub fn ca_files(&self, into: &Path) -> PathBuf {
        let files = into.join("ldap-files");
        std::fs::create_dir_all(&files).expect("create the files directory");
        std::fs::copy(self.dir.join("tls/ca.pem"), files.join("ca.pem")).expect("copy ca.pem");
        files
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        stop_slapd(&self.dir);
    }
}

fn stop_slapd(dir: &Path) {
    let _ = Command::new(repo_root().join("tests/ldap/stop-slapd"))
        .arg(dir)
        .status();
}

/// Search-then-bind with the service account and a group search, against `servers`, allowed
/// to reach `connect`.
pub fn ldap(servers: &str, connect: &[String], extra: &[(&str, &str)]) -> ResolverConfig {
    let search_base = format!("ou=people,{BASE}");
    let group_base = format!("ou=groups,{BASE}");
    let service_dn = format!("cn=orca,ou=services,{BASE}");
    let mut settings = vec![
        ("servers", servers),
        ("search_base", search_base.as_str()),
        ("service_dn", service_dn.as_str()),
        ("service_password", "service-password"),
        ("group_base", group_base.as_str()),
    ];
    settings.extend_from_slice(extra);
    let mut r =
        crate::identity::resolver("directory", PluginSource::Bundled("ldap".into()), &settings);
    r.connect = connect.to_vec();
    r.timeout = Duration::from_secs(5);
    r
}
