//! The decision: is this key one of this user's authorized keys?
//!
//! Files are read again on every call rather than cached: they are small, an operator expects
//! an added or removed key to count at once, and a read is cheaper than the signature check the
//! gateway already did. (The gateway's own answer cache, the `cache` setting, is the knob for
//! busy servers.)

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use orca_sdk::{Credential, Identity, PublicKey, SshAttempt, Verdict};

use crate::authorized::{Entry, parse_line};
use crate::config::{Config, Source};

/// The longest user name looked up.
const MAX_USER_LEN: usize = 64;
/// The largest key file read: far beyond any real list of keys.
const MAX_FILE_LEN: u64 = 1024 * 1024;

/// Where log lines go: the gateway's log, or a test's list.
pub(crate) trait Log {
    /// Detail for debugging.
    fn debug(&self, message: &str);
    /// Something the operator should fix.
    fn warn(&self, message: &str);
}

/// A read-only directory of key files: `/files` inside the gateway, a scratch directory in
/// tests.
#[derive(Debug, Clone)]
pub(crate) struct Dir {
    root: PathBuf,
}

impl Dir {
    /// The directory at `root`.
    pub(crate) fn new(root: impl Into<PathBuf>) -> Self {
        Dir { root: root.into() }
    }

    /// The text of `name`, `Ok(None)` when it does not exist. `name` is checked by the caller.
    fn read(&self, name: &str) -> io::Result<Option<String>> {
        let path = self.root.join(name);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut text = String::new();
        file.take(MAX_FILE_LEN + 1).read_to_string(&mut text)?;
        if text.len() as u64 > MAX_FILE_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("it is larger than {MAX_FILE_LEN} bytes"),
            ));
        }
        Ok(Some(text))
    }

    /// `name` as the operator knows it, for messages.
    fn show(&self, name: &str) -> String {
        self.root.join(name).display().to_string()
    }
}

/// The configured resolver.
#[derive(Debug)]
pub(crate) struct Keys {
    config: Config,
    dir: Dir,
}

impl Keys {
    /// A resolver reading key files from `dir`.
    pub(crate) fn new(config: Config, dir: Dir) -> Self {
        Keys { config, dir }
    }

    /// `ssh.resolve`.
    pub(crate) fn resolve(&self, attempt: &SshAttempt, log: &dyn Log) -> Verdict {
        let Credential::PublicKey(key) = &attempt.credential else {
            return Verdict::Pass;
        };
        let user = attempt.user.as_str();
        if let Err(e) = check_user(user) {
            log.debug(&format!("user {user:?} not looked up: {e}"));
            return Verdict::Pass;
        }
        let entries = match self.entries(user, log) {
            Ok(Some(entries)) => entries,
            Ok(None) => return Verdict::Pass,
            Err(e) => {
                log.warn(&e);
                return Verdict::deny(e);
            }
        };
        if entries.iter().any(|entry| entry.blob == key.blob) {
            let who = Identity::new(user)
                .with_groups(self.config.groups.get(user).into_iter().flatten().cloned());
            return Verdict::allow_cached(who, self.config.cache_seconds);
        }
        Verdict::deny(format!(
            "key {} is not authorized for {user}",
            fingerprint(key)
        ))
    }

    /// The user's keys; `None` when this resolver does not know the user.
    fn entries(&self, user: &str, log: &dyn Log) -> Result<Option<Vec<Entry>>, String> {
        match &self.config.source {
            Source::PerUser => {
                let name = format!("{user}.pub");
                let Some(text) = self.read(&name)? else {
                    return Ok(None);
                };
                Ok(Some(self.parse(&name, &text, log).collect()))
            }
            Source::AuthorizedKeys(name) => {
                let Some(text) = self.read(name)? else {
                    log.warn(&format!(
                        "{} does not exist: no user has a key here",
                        self.dir.show(name)
                    ));
                    return Ok(None);
                };
                let entries: Vec<Entry> = self
                    .parse(name, &text, log)
                    .filter(|entry| entry.users().any(|u| u == user))
                    .collect();
                Ok((!entries.is_empty()).then_some(entries))
            }
        }
    }

    fn read(&self, name: &str) -> Result<Option<String>, String> {
        self.dir
            .read(name)
            .map_err(|e| format!("cannot read {}: {e}", self.dir.show(name)))
    }

    /// The keys in a file; a line that is not a key is skipped with a warning naming it.
    fn parse<'t>(
        &'t self,
        name: &'t str,
        text: &'t str,
        log: &'t dyn Log,
    ) -> impl Iterator<Item = Entry> + 't {
        text.lines()
            .enumerate()
            .filter_map(move |(i, line)| match parse_line(line) {
                Ok(entry) => entry,
                Err(e) => {
                    log.warn(&format!(
                        "{} line {}: skipped, {e}",
                        self.dir.show(name),
                        i + 1
                    ));
                    None
                }
            })
    }
}

/// The key's fingerprint as the gateway computed it, or its type when missing.
fn fingerprint(key: &PublicKey) -> &str {
    if key.fingerprint.is_empty() {
        &key.algorithm
    } else {
        &key.fingerprint
    }
}

/// A user name that is safe as a file name: not empty, at most 64 bytes, no `/`, `\`, `..`,
/// NUL or other control characters, and no leading dot.
pub(crate) fn check_user(user: &str) -> Result<(), String> {
    if user.is_empty() {
        return Err("the name is empty".to_string());
    }
    if user.len() > MAX_USER_LEN {
        return Err(format!("the name is longer than {MAX_USER_LEN} bytes"));
    }
    if user.starts_with('.') {
        return Err("the name starts with a dot".to_string());
    }
    if user.contains("..") || user.contains(['/', '\\']) {
        return Err("the name contains a path separator or `..`".to_string());
    }
    if user.chars().any(char::is_control) {
        return Err("the name contains NUL or control characters".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::fs;
    use std::path::Path;
    use std::process::Command;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use orca_sdk::{Client, Grant, Settings};
    use tempfile::TempDir;

    use super::*;

    #[derive(Default)]
    struct Lines(RefCell<Vec<String>>);

    impl Log for Lines {
        fn debug(&self, message: &str) {
            self.0.borrow_mut().push(format!("debug: {message}"));
        }
        fn warn(&self, message: &str) {
            self.0.borrow_mut().push(format!("warn: {message}"));
        }
    }

    /// A key made by `ssh-keygen`, as the gateway would hand it over.
    struct Generated {
        line: String,
        key: PublicKey,
    }

    fn keygen(dir: &Path, name: &str, kind: &str, bits: Option<&str>) -> Generated {
        let path = dir.join(name);
        let mut command = Command::new("ssh-keygen");
        command.args([
            "-q",
            "-N",
            "",
            "-C",
            &format!("{name}@test"),
            "-t",
            kind,
            "-f",
        ]);
        command.arg(&path);
        if let Some(bits) = bits {
            command.args(["-b", bits]);
        }
        let status = command
            .status()
            .expect("ssh-keygen runs (install openssh-client)");
        assert!(status.success(), "ssh-keygen -t {kind} failed");
        let line = fs::read_to_string(path.with_extension("pub")).unwrap();
        let line = line.trim().to_string();
        let output = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(path.with_extension("pub"))
            .output()
            .unwrap();
        let listing = String::from_utf8(output.stdout).unwrap();
        let fingerprint = listing.split_whitespace().nth(1).unwrap().to_string();
        assert!(fingerprint.starts_with("SHA256:"), "{listing}");
        let mut fields = line.split_whitespace();
        let algorithm = fields.next().unwrap().to_string();
        let encoded = fields.next().unwrap();
        Generated {
            key: PublicKey {
                algorithm: algorithm.clone(),
                blob: STANDARD.decode(encoded).unwrap(),
                fingerprint,
                openssh: format!("{algorithm} {encoded}"),
            },
            line,
        }
    }

    fn attempt(user: &str, key: &PublicKey) -> SshAttempt {
        SshAttempt {
            user: user.into(),
            image: None,
            credential: Credential::PublicKey(key.clone()),
            client: Client {
                address: "192.0.2.7".into(),
                port: 50000,
            },
        }
    }

    fn keys(dir: &Path, pairs: &[(&str, &str)]) -> Keys {
        let settings = Settings::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Keys::new(Config::from_settings(&settings).unwrap(), Dir::new(dir))
    }

    fn allowed(verdict: Verdict) -> Grant {
        match verdict {
            Verdict::Allow(grant) => grant,
            other => panic!("expected allow, got {other:?}"),
        }
    }

    fn denied(verdict: Verdict) -> String {
        match verdict {
            Verdict::Deny(denial) => denial.reason,
            other => panic!("expected deny, got {other:?}"),
        }
    }

    fn passed(verdict: Verdict) {
        assert!(
            matches!(verdict, Verdict::Pass),
            "expected pass, got {verdict:?}"
        );
    }

    /// One key of every type the gateway accepts, generated once per test that needs them.
    fn all_kinds(scratch: &Path) -> Vec<Generated> {
        vec![
            keygen(scratch, "ed", "ed25519", None),
            keygen(scratch, "p256", "ecdsa", Some("256")),
            keygen(scratch, "p384", "ecdsa", Some("384")),
            keygen(scratch, "p521", "ecdsa", Some("521")),
            keygen(scratch, "rsa", "rsa", Some("2048")),
        ]
    }

    #[test]
    fn every_key_type_in_a_pub_file_is_recognised() {
        let scratch = TempDir::new().unwrap();
        let files = TempDir::new().unwrap();
        let generated = all_kinds(scratch.path());
        let mut text = String::from("# alice's keys\n\n");
        for g in &generated {
            text.push_str(&g.line);
            text.push('\n');
        }
        fs::write(files.path().join("alice.pub"), text).unwrap();
        let resolver = keys(
            files.path(),
            &[("groups:alice", "staff,admins"), ("cache", "30s")],
        );
        let log = Lines::default();
        for g in &generated {
            let grant = allowed(resolver.resolve(&attempt("alice", &g.key), &log));
            assert_eq!(grant.who.id, "alice");
            assert_eq!(grant.who.groups, ["staff", "admins"]);
            assert_eq!(grant.cache_seconds, 30);
        }
        assert_eq!(generated[0].key.algorithm, "ssh-ed25519");
        assert_eq!(generated[1].key.algorithm, "ecdsa-sha2-nistp256");
        assert_eq!(generated[2].key.algorithm, "ecdsa-sha2-nistp384");
        assert_eq!(generated[3].key.algorithm, "ecdsa-sha2-nistp521");
        assert_eq!(generated[4].key.algorithm, "ssh-rsa");
        // An RSA key offered with an SHA-2 signature algorithm is the same key.
        for algorithm in ["rsa-sha2-256", "rsa-sha2-512"] {
            let mut rsa = generated[4].key.clone();
            rsa.algorithm = algorithm.into();
            allowed(resolver.resolve(&attempt("alice", &rsa), &log));
        }
        assert!(log.0.borrow().is_empty(), "{:?}", log.0.borrow());
    }

    #[test]
    fn a_known_user_with_another_key_is_denied_with_its_fingerprint() {
        let scratch = TempDir::new().unwrap();
        let files = TempDir::new().unwrap();
        let hers = keygen(scratch.path(), "hers", "ed25519", None);
        let other = keygen(scratch.path(), "other", "ecdsa", Some("256"));
        fs::write(files.path().join("alice.pub"), format!("{}\n", hers.line)).unwrap();
        let resolver = keys(files.path(), &[]);
        let reason = denied(resolver.resolve(&attempt("alice", &other.key), &Lines::default()));
        assert_eq!(
            reason,
            format!("key {} is not authorized for alice", other.key.fingerprint)
        );
        // A file without keys still makes the user known.
        fs::write(files.path().join("bob.pub"), "# no keys yet\n").unwrap();
        denied(resolver.resolve(&attempt("bob", &hers.key), &Lines::default()));
    }

    #[test]
    fn unknown_users_and_passwords_pass() {
        let scratch = TempDir::new().unwrap();
        let files = TempDir::new().unwrap();
        let key = keygen(scratch.path(), "k", "ed25519", None);
        fs::write(files.path().join("alice.pub"), &key.line).unwrap();
        let resolver = keys(files.path(), &[]);
        passed(resolver.resolve(&attempt("carol", &key.key), &Lines::default()));
        let mut password = attempt("alice", &key.key);
        password.credential = Credential::Password("hunter2".into());
        passed(resolver.resolve(&password, &Lines::default()));
    }

    #[test]
    fn files_are_read_again_on_every_call() {
        let scratch = TempDir::new().unwrap();
        let files = TempDir::new().unwrap();
        let key = keygen(scratch.path(), "k", "ed25519", None);
        let resolver = keys(files.path(), &[]);
        let log = Lines::default();
        passed(resolver.resolve(&attempt("alice", &key.key), &log));
        fs::write(files.path().join("alice.pub"), &key.line).unwrap();
        allowed(resolver.resolve(&attempt("alice", &key.key), &log));
        fs::write(files.path().join("alice.pub"), "").unwrap();
        denied(resolver.resolve(&attempt("alice", &key.key), &log));
    }

    #[test]
    fn an_authorized_keys_file_names_users_in_options() {
        let scratch = TempDir::new().unwrap();
        let files = TempDir::new().unwrap();
        let alice = keygen(scratch.path(), "alice", "ed25519", None);
        let bob = keygen(scratch.path(), "bob", "rsa", Some("2048"));
        let shared = keygen(scratch.path(), "shared", "ecdsa", Some("384"));
        let nobody = keygen(scratch.path(), "nobody", "ecdsa", Some("521"));
        let text = format!(
            "# team keys\n\
             user=\"alice\",no-pty {}\n\
             command=\"echo \\\"hi, there\\\"\",user=\"bob\" {}\n\
             user=\"alice\",user=\"bob\" {}\n\
             {}\n\
             user=\"dave\" garbage here\n",
            alice.line, bob.line, shared.line, nobody.line
        );
        fs::write(files.path().join("authorized_keys"), text).unwrap();
        let resolver = keys(
            files.path(),
            &[
                ("authorized_keys", "authorized_keys"),
                ("groups:bob", "ops"),
            ],
        );
        let log = Lines::default();
        assert_eq!(
            allowed(resolver.resolve(&attempt("alice", &alice.key), &log))
                .who
                .id,
            "alice"
        );
        assert!(
            allowed(resolver.resolve(&attempt("alice", &alice.key), &log))
                .who
                .groups
                .is_empty()
        );
        allowed(resolver.resolve(&attempt("alice", &shared.key), &log));
        let grant = allowed(resolver.resolve(&attempt("bob", &bob.key), &log));
        assert_eq!(grant.who.groups, ["ops"]);
        allowed(resolver.resolve(&attempt("bob", &shared.key), &log));
        assert_eq!(
            denied(resolver.resolve(&attempt("alice", &bob.key), &log)),
            format!("key {} is not authorized for alice", bob.key.fingerprint)
        );
        // A key without `user=` belongs to nobody; a user with no line is not known here.
        passed(resolver.resolve(&attempt("carol", &nobody.key), &log));
        passed(resolver.resolve(&attempt("dave", &alice.key), &log));
        let lines = log.0.borrow();
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("warn: ") && l.contains("authorized_keys line 6: skipped")),
            "{lines:?}"
        );
    }

    #[test]
    fn a_missing_authorized_keys_file_passes_with_a_warning() {
        let scratch = TempDir::new().unwrap();
        let files = TempDir::new().unwrap();
        let key = keygen(scratch.path(), "k", "ed25519", None);
        let resolver = keys(files.path(), &[("authorized_keys", "authorized_keys")]);
        let log = Lines::default();
        passed(resolver.resolve(&attempt("alice", &key.key), &log));
        assert!(log.0.borrow()[0].contains("does not exist"));
    }

    #[test]
    fn path_traversal_is_refused_before_touching_files() {
        let outside = TempDir::new().unwrap();
        let scratch = TempDir::new().unwrap();
        let key = keygen(scratch.path(), "k", "ed25519", None);
        // A readable key file just outside the granted directory, and hidden ones inside.
        let files = outside.path().join("files");
        fs::create_dir(&files).unwrap();
        fs::write(outside.path().join("secret.pub"), &key.line).unwrap();
        fs::write(files.join(".pub"), &key.line).unwrap();
        fs::write(files.join("..pub"), &key.line).unwrap();
        fs::create_dir(files.join("sub")).unwrap();
        fs::write(files.join("sub/alice.pub"), &key.line).unwrap();
        let resolver = keys(&files, &[]);
        let log = Lines::default();
        for user in [
            "../secret",
            "..",
            ".",
            "",
            "sub/alice",
            "sub\\alice",
            "a\0b",
            "a\nb",
            &"a".repeat(65),
        ] {
            passed(resolver.resolve(&attempt(user, &key.key), &log));
        }
        assert!(log.0.borrow().iter().all(|l| l.starts_with("debug: user ")));
        assert!(check_user(&"a".repeat(64)).is_ok());
        assert!(check_user("alice.smith").is_ok());
        assert!(check_user("alice..smith").is_err());
    }

    #[test]
    fn an_unreadable_key_file_is_a_denial_naming_it() {
        let scratch = TempDir::new().unwrap();
        let files = TempDir::new().unwrap();
        let key = keygen(scratch.path(), "k", "ed25519", None);
        // A directory where the file should be: it exists but cannot be read as text.
        fs::create_dir(files.path().join("alice.pub")).unwrap();
        fs::write(files.path().join("bob.pub"), [0xff, 0xfe, 0x00]).unwrap();
        let resolver = keys(files.path(), &[]);
        for user in ["alice", "bob"] {
            let reason = denied(resolver.resolve(&attempt(user, &key.key), &Lines::default()));
            assert!(
                reason.starts_with(&format!(
                    "cannot read {}",
                    files.path().join(format!("{user}.pub")).display()
                )),
                "{reason}"
            );
        }
    }
}
