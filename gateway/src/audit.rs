//! The audit log: one JSON object per line, appended, for each login and each session's start
//! and end (who, image, container, protocol, client address, bytes, why it ended).
//!
//! A session here is what the scheduler calls a binding: a user on one image's container,
//! shared by all their HTTPS requests and SSH channels, from the arrival that placed them to
//! the moment they leave it (disconnect, a limit, a stop, an operator). It is what
//! `/api/v1/sessions` lists and ends, so the two tell the same story.
//!
//! Records are encoded and written by one thread of their own: the scheduler emits them under
//! its lock, which must cost no more than a channel send, never an encoding or a disk. The file is opened in append mode (a restart, even after
//! `kill -9`, carries on in the same file) and reopened on SIGHUP, for logrotate. A failed
//! write is counted in `orca_audit_write_errors_total` and logged once per failure streak.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::SystemTime;

use prometheus::IntCounter;
use serde::Serialize;

use crate::units::rfc3339;

/// One audit record; `event` names its kind in the JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Record {
    /// A login attempt the resolvers answered.
    Login {
        /// `ssh` or `https`.
        protocol: &'static str,
        /// The user name given (SSH: without `+image`), or the identity allowed.
        user: String,
        /// `publickey`, `password`, `keyboard-interactive` (SSH) or `form` (HTTPS).
        method: &'static str,
        /// `accepted` or `refused`.
        result: &'static str,
        /// The client's address.
        client: Option<SocketAddr>,
        /// The resolver that decided, when one did.
        #[serde(skip_serializing_if = "Option::is_none")]
        resolver: Option<String>,
    },
    /// A user was placed on a container for an image.
    SessionStart {
        /// The user id.
        user: String,
        /// The image.
        image: String,
        /// The container's name.
        container: String,
        /// What the user arrived over: `https` or `ssh`.
        protocol: &'static str,
        /// The client's address.
        client: Option<SocketAddr>,
    },
    /// A user left a container, or was made to.
    SessionEnd {
        /// The user id.
        user: String,
        /// The image.
        image: String,
        /// The container's name.
        container: String,
        /// What the session started over.
        protocol: &'static str,
        /// The client that started it.
        client: Option<SocketAddr>,
        /// Bytes from the user to the container over the whole session.
        bytes_in: u64,
        /// Bytes from the container to the user.
        bytes_out: u64,
        /// How long it lasted, in seconds.
        seconds: u64,
        /// Why it ended, as the user was told.
        reason: String,
    },
}

/// Where the audit log goes: a cheap handle to the writer thread, or nowhere.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    tx: Option<mpsc::Sender<Command>>,
}

#[derive(Debug)]
enum Command {
    Write(SystemTime, Record),
    Reopen,
    Flush(mpsc::Sender<()>),
}

impl Audit {
    /// No audit log (`[log] audit = ""`, and tests that need none).
    pub fn off() -> Self {
        Self { tx: None }
    }

    /// Appends to `path` (created with its directory when missing) from a writer thread.
    /// Fails when the file cannot be opened: a gateway that should audit must not run blind.
    pub fn open(path: &Path, errors: IntCounter) -> io::Result<Self> {
        let file = append(path)?;
        let (tx, rx) = mpsc::channel();
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("orca-audit".into())
            .spawn(move || write_loop(rx, path, file, errors))?;
        Ok(Self { tx: Some(tx) })
    }

    /// Records `record` now (stamped with the wall clock); never blocks.
    pub fn record(&self, record: Record) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Command::Write(SystemTime::now(), record));
        }
    }

    /// Closes and opens the file again (after logrotate moved it).
    pub fn reopen(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Command::Reopen);
        }
    }

    /// Waits until every record sent so far is written to the file.
    pub fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = mpsc::channel();
        if tx.send(Command::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}

fn append(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

fn write_loop(rx: mpsc::Receiver<Command>, path: PathBuf, file: File, errors: IntCounter) {
    let mut w = Writer {
        out: Some(BufWriter::new(file)),
        path,
        errors,
        failing: false,
    };
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        // Write what is queued, then flush once: one write(2) per burst, not per record.
        while let Some(command) = next.take() {
            match command {
                Command::Write(at, record) => w.write(at, &record),
                Command::Reopen => w.reopen(),
                Command::Flush(done) => {
                    w.flush();
                    let _ = done.send(());
                }
            }
            next = rx.try_recv().ok();
        }
        w.flush();
    }
}

/// The writer thread's file and its failure state.
struct Writer {
    out: Option<BufWriter<File>>,
    path: PathBuf,
    errors: IntCounter,
    /// Whether the last operation failed: a full disk is logged once, not per record.
    failing: bool,
}

impl Writer {
    /// One line: the time the record was made, then its fields.
    fn write(&mut self, at: SystemTime, record: &Record) {
        #[derive(Serialize)]
        struct Line<'a> {
            time: String,
            #[serde(flatten)]
            record: &'a Record,
        }
        let line = Line {
            time: rfc3339(at),
            record,
        };
        let result = match self.out.as_mut() {
            Some(w) => serde_json::to_writer(&mut *w, &line)
                .map_err(io::Error::from)
                .and_then(|()| w.write_all(b"\n")),
            None => Err(io::Error::other("the file could not be reopened")),
        };
        self.outcome("write", result);
    }

    fn flush(&mut self) {
        if let Some(w) = self.out.as_mut() {
            let result = w.flush();
            self.outcome("write", result);
        }
    }

    fn reopen(&mut self) {
        self.flush();
        self.out = None;
        let result = append(&self.path).map(|file| self.out = Some(BufWriter::new(file)));
        self.outcome("reopen", result);
    }

    fn outcome(&mut self, what: &str, result: io::Result<()>) {
        match result {
            Ok(()) => self.failing = false,
            Err(e) => {
                self.errors.inc();
                if !self.failing {
                    tracing::error!(file = %self.path.display(), "cannot {what} the audit log: {e}");
                }
                self.failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn counter() -> IntCounter {
        IntCounter::new("errors", "errors").unwrap()
    }

    #[test]
    fn records_are_appended_as_json_lines_across_reopens_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/audit.log");
        let audit = Audit::open(&path, counter()).unwrap();
        audit.record(Record::Login {
            protocol: "ssh",
            user: "alice".into(),
            method: "publickey",
            result: "accepted",
            client: Some("127.0.0.1:5000".parse().unwrap()),
            resolver: Some("keys".into()),
        });
        audit.flush();
        // logrotate: the file is moved away, SIGHUP reopens a fresh one at the path.
        std::fs::rename(&path, dir.path().join("sub/audit.log.1")).unwrap();
        audit.reopen();
        audit.record(Record::SessionEnd {
            user: "alice".into(),
            image: "shell".into(),
            container: "orca-shell-1".into(),
            protocol: "ssh",
            client: None,
            bytes_in: 10,
            bytes_out: 20,
            seconds: 3,
            reason: "you disconnected".into(),
        });
        audit.flush();
        let old = lines(&dir.path().join("sub/audit.log.1"));
        assert_eq!(old.len(), 1);
        assert_eq!(old[0]["event"], "login");
        assert_eq!(old[0]["client"], "127.0.0.1:5000");
        assert_eq!(old[0]["resolver"], "keys");
        assert!(old[0]["time"].as_str().unwrap().ends_with('Z'));
        let new = lines(&path);
        assert_eq!(new[0]["event"], "session_end");
        assert_eq!(new[0]["bytes_out"], 20);
        assert_eq!(new[0]["reason"], "you disconnected");

        // A second gateway on the same file (a restart) appends.
        drop(audit);
        let again = Audit::open(&path, counter()).unwrap();
        again.record(Record::SessionStart {
            user: "bob".into(),
            image: "web".into(),
            container: "orca-web-2".into(),
            protocol: "https",
            client: None,
        });
        again.flush();
        let all = lines(&path);
        assert_eq!(all.len(), 2);
        assert_eq!(all[1]["event"], "session_start");
        assert_eq!(all[1]["user"], "bob");
    }

    #[test]
    fn an_unwritable_file_is_an_error_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"").unwrap();
        assert!(Audit::open(&blocker.join("audit.log"), counter()).is_err());
    }

    #[test]
    fn off_records_nothing_and_never_blocks() {
        let audit = Audit::off();
        audit.record(Record::SessionStart {
            user: "a".into(),
            image: "b".into(),
            container: "c".into(),
            protocol: "ssh",
            client: None,
        });
        audit.flush();
        audit.reopen();
    }
}
