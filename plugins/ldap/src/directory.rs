//! The decisions: who a login name is in the directory, whether a password or an SSH key proves
//! it, and which groups the user is in, asked of each configured server in turn until one
//! answers.
//!
//! ```text
//! password ─▶ locate the DN ─▶ bind as the user ─▶ success ─▶ groups ─▶ Allow(User)
//!   (empty: Deny)   │ unknown: Pass      │ invalidCredentials: Deny
//!                   │                    │ (bind_dn mode: Pass if the service account
//!                   │                    │  finds no such entry)
//! ssh key  ─▶ find the entry ─▶ an sshPublicKey value matches ─▶ groups ─▶ Allow(User)
//!                   │ unknown: Pass          │ none matches: Deny
//! any server failing (connect, timeout, TLS, protocol, busy/unavailable) ─▶ next server;
//! all failing ─▶ Unavailable (a deny)
//! ```

use std::time::Instant;

use crate::config::{Config, Locate, Service, fill_filter};
use crate::conn::{Connection, Error};
use crate::dn;
use crate::filter::Filter;
use crate::proto::{Code, Entry, Scope, Search};
use crate::sshkey::{self, Stored};

/// Longest user id the gateway accepts (WIT `identity.id`).
const MAX_ID_BYTES: usize = 256;
/// Server-side time limit asked for each search, in seconds; the client's deadline is the
/// real bound, this only spares the server work nobody waits for.
const SEARCH_TIME_LIMIT: i32 = 10;

/// A user the directory vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The identity's id: the `id_attr` value, else the login name.
    pub id: String,
    /// The entry's DN.
    pub dn: String,
    /// The `display_name_attr` value, if any.
    pub display_name: Option<String>,
    /// Group names, sorted, without duplicates.
    pub groups: Vec<String>,
}

/// The answer to one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The credential proves this user.
    Allow(User),
    /// The credential is wrong, or the directory cannot be asked; the reason is for the log.
    Deny(String),
    /// The directory does not know this user; the reason is for the log.
    Pass(String),
    /// No server could be asked (each failed or missed its deadline): a deny, with the
    /// failures for the log.
    Unavailable(String),
}

/// An outcome and what happened on the way (servers that failed, unusable key values), for
/// the gateway's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The decision.
    pub outcome: Outcome,
    /// Warnings worth logging, in order.
    pub notes: Vec<String>,
}

/// The resolver's view of the directory: the settings and the questions.
#[derive(Debug, Clone)]
pub struct Directory {
    config: Config,
}

/// Who the connection is currently authenticated as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    Anonymous,
    Service,
    User,
}

/// A connection and its authentication state.
struct Session<'a> {
    conn: Connection,
    bound: Bound,
    service: Option<&'a Service>,
}

/// The result of looking a login name up.
enum Lookup {
    Unknown,
    Found(Entry),
    Ambiguous(usize),
}

impl Directory {
    /// A directory with these settings.
    pub fn new(config: Config) -> Directory {
        Directory { config }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Checks a password: allow when right, deny when wrong (or empty), pass when the user is
    /// unknown.
    pub fn check_password(&self, user: &str, password: &str) -> Answer {
        if let Some(why) = unusable_login(user) {
            return Answer::quiet(Outcome::Pass(why));
        }
        if password.is_empty() {
            // An empty password makes a simple bind "unauthenticated" (RFC 4513 §5.1.2), which
            // many servers answer with success: it must never count as proof.
            return Answer::quiet(Outcome::Deny(format!("empty password for `{user}`")));
        }
        self.ask(|s| self.password_on(s, user, password))
    }

    /// Checks an SSH public key (wire encoding, signature already verified by the gateway):
    /// allow when one of the user's keys is this one, deny when none is, pass when the user is
    /// unknown.
    pub fn check_key(&self, user: &str, blob: &[u8]) -> Answer {
        if let Some(why) = unusable_login(user) {
            return Answer::quiet(Outcome::Pass(why));
        }
        self.ask(|s| self.key_on(s, user, blob))
    }

    /// Runs `question` against each server in order until one answers.
    fn ask(
        &self,
        question: impl Fn(&mut Session<'_>) -> Result<(Outcome, Vec<String>), Error>,
    ) -> Answer {
        let mut notes = Vec::new();
        let mut failures = Vec::new();
        for server in &self.config.servers {
            let deadline = Instant::now() + self.config.timeout;
            let conn = match Connection::open(server, self.config.tls.as_ref(), deadline) {
                Ok(c) => c,
                Err(e) => {
                    notes.push(format!("{}: {e}; trying the next server", server.url));
                    failures.push(format!("{}: {e}", server.url));
                    continue;
                }
            };
            let mut session = Session {
                conn,
                bound: Bound::Anonymous,
                service: self.config.service.as_ref(),
            };
            match question(&mut session) {
                Ok((outcome, more)) => {
                    session.conn.close();
                    notes.extend(more);
                    return Answer { outcome, notes };
                }
                Err(e) => {
                    notes.push(format!("{}: {e}; trying the next server", server.url));
                    failures.push(format!("{}: {e}", server.url));
                }
            }
        }
        Answer {
            outcome: Outcome::Unavailable(format!(
                "no directory server answered: {}",
                failures.join("; ")
            )),
            notes,
        }
    }

    fn password_on(
        &self,
        s: &mut Session<'_>,
        user: &str,
        password: &str,
    ) -> Result<(Outcome, Vec<String>), Error> {
        let mut notes = Vec::new();
        let (dn, found) = match &self.config.locate {
            Locate::Template(t) => (t.replace("{user}", &dn::escape(user)), None),
            Locate::Search { .. } => match self.lookup(s, user, false)? {
                Lookup::Unknown => return Ok((unknown(user), notes)),
                Lookup::Ambiguous(n) => return Ok((ambiguous(user, n), notes)),
                Lookup::Found(entry) => (entry.dn.clone(), Some(entry)),
            },
        };
        let outcome = s.conn.bind(&dn, password)?;
        s.bound = Bound::Anonymous;
        match outcome.code {
            Code::SUCCESS => s.bound = Bound::User,
            Code::INVALID_CREDENTIALS => {
                // In bind_dn mode a missing entry and a wrong password look the same to a bind;
                // the service account can tell them apart. Without one, deny: a wrong password
                // must never become a pass.
                if found.is_none()
                    && s.service.is_some()
                    && let Lookup::Unknown = self.lookup(s, user, false)?
                {
                    return Ok((unknown(user), notes));
                }
                return Ok((
                    Outcome::Deny(format!("wrong password for `{user}` ({dn}): {outcome}")),
                    notes,
                ));
            }
            code if code.is_server_trouble() => return Err(Error::Refused("user bind", outcome)),
            _ => {
                return Ok((
                    Outcome::Deny(format!("the directory refused the bind of {dn}: {outcome}")),
                    notes,
                ));
            }
        }
        let entry = match found {
            Some(e) => e,
            // bind_dn mode: read the entry as the user, who may normally read their own.
            None => match self.read(s, &dn, false)? {
                Some(e) => e,
                None => {
                    notes.push(format!(
                        "{dn} bound but cannot read its own entry; no display name or memberOf"
                    ));
                    Entry {
                        dn: dn.clone(),
                        attributes: Vec::new(),
                    }
                }
            },
        };
        let user = self.user(s, user, entry, &mut notes)?;
        Ok((Outcome::Allow(user), notes))
    }

    fn key_on(
        &self,
        s: &mut Session<'_>,
        user: &str,
        blob: &[u8],
    ) -> Result<(Outcome, Vec<String>), Error> {
        let mut notes = Vec::new();
        let entry = match self.lookup(s, user, true)? {
            Lookup::Unknown => return Ok((unknown(user), notes)),
            Lookup::Ambiguous(n) => return Ok((ambiguous(user, n), notes)),
            Lookup::Found(e) => e,
        };
        let attr = &self.config.ssh_key_attr;
        let mut matched = false;
        let mut count = 0;
        for value in entry.values(attr) {
            count += 1;
            match sshkey::compare(value, blob) {
                Stored::Matches => matched = true,
                Stored::Differs => {}
                Stored::Unusable(why) => {
                    notes.push(format!("{}: an `{attr}` value is ignored: {why}", entry.dn))
                }
            }
        }
        if !matched {
            let dn = entry.dn;
            return Ok((
                Outcome::Deny(format!(
                    "none of the {count} `{attr}` values of {dn} is the offered key"
                )),
                notes,
            ));
        }
        let user = self.user(s, user, entry, &mut notes)?;
        Ok((Outcome::Allow(user), notes))
    }

    /// Finds the entry for a login name with the service account (or anonymously).
    fn lookup(&self, s: &mut Session<'_>, user: &str, keys: bool) -> Result<Lookup, Error> {
        self.bind_service(s)?;
        match &self.config.locate {
            Locate::Template(t) => {
                let dn = t.replace("{user}", &dn::escape(user));
                Ok(match self.read(s, &dn, keys)? {
                    Some(e) => Lookup::Found(e),
                    None => Lookup::Unknown,
                })
            }
            Locate::Search {
                base,
                filter,
                scope,
            } => {
                let search = Search {
                    base: base.clone(),
                    scope: *scope,
                    filter: parse(&fill_filter(filter, &[("user", user)]))?,
                    attributes: self.user_attributes(keys),
                    size_limit: 2,
                    time_limit: SEARCH_TIME_LIMIT,
                };
                let (mut entries, outcome) = s.conn.search(&search)?;
                match outcome.code {
                    Code::SUCCESS | Code::SIZE_LIMIT_EXCEEDED => {}
                    _ => return Err(Error::Refused("the user search", outcome)),
                }
                Ok(match entries.len() {
                    0 => Lookup::Unknown,
                    1 => Lookup::Found(entries.remove(0)),
                    n => Lookup::Ambiguous(n),
                })
            }
        }
    }

    /// Reads one entry by DN; `None` when it does not exist (or is hidden from this bind).
    fn read(&self, s: &mut Session<'_>, dn: &str, keys: bool) -> Result<Option<Entry>, Error> {
        let search = Search {
            base: dn.to_string(),
            scope: Scope::Base,
            filter: Filter::Present("objectClass".into()),
            attributes: self.user_attributes(keys),
            size_limit: 1,
            time_limit: SEARCH_TIME_LIMIT,
        };
        let (mut entries, outcome) = s.conn.search(&search)?;
        match outcome.code {
            Code::SUCCESS => Ok((!entries.is_empty()).then(|| entries.remove(0))),
            // Also what servers say for a DN whose syntax the escaped name made odd.
            Code::NO_SUCH_OBJECT | Code(34) => Ok(None),
            _ => Err(Error::Refused("reading the user's entry", outcome)),
        }
    }

    fn bind_service(&self, s: &mut Session<'_>) -> Result<(), Error> {
        let Some(service) = s.service else {
            return Ok(());
        };
        if s.bound == Bound::Service {
            return Ok(());
        }
        let outcome = s.conn.bind(&service.dn, &service.password)?;
        if outcome.code != Code::SUCCESS {
            s.bound = Bound::Anonymous;
            return Err(Error::Refused("the service account's bind", outcome));
        }
        s.bound = Bound::Service;
        Ok(())
    }

    fn user_attributes(&self, keys: bool) -> Vec<String> {
        let c = &self.config;
        let mut attrs = vec![c.id_attr.clone()];
        attrs.extend(c.display_name_attr.clone());
        attrs.extend(c.member_of_attr.clone());
        if keys {
            attrs.push(c.ssh_key_attr.clone());
        }
        attrs
    }

    /// The user an entry describes, with groups.
    fn user(
        &self,
        s: &mut Session<'_>,
        login: &str,
        entry: Entry,
        notes: &mut Vec<String>,
    ) -> Result<User, Error> {
        let c = &self.config;
        let id = match entry.first_text(&c.id_attr) {
            Some(id) if unusable_login(&id).is_none() => id,
            Some(id) => {
                notes.push(format!(
                    "{}: `{}` = {id:?} cannot be an id; using the login name",
                    entry.dn, c.id_attr
                ));
                login.to_string()
            }
            None => login.to_string(),
        };
        let display_name = c
            .display_name_attr
            .as_ref()
            .and_then(|a| entry.first_text(a))
            .filter(|d| !d.trim().is_empty());
        let mut groups: Vec<String> = Vec::new();
        if let Some(attr) = &c.member_of_attr {
            for value in entry.values(attr) {
                let text = String::from_utf8_lossy(value);
                match dn::first_value(&text) {
                    Some(name) => push_unique(&mut groups, name),
                    None => notes.push(format!("{}: `{attr}` = {text:?} names no group", entry.dn)),
                }
            }
        }
        if let Some(g) = &c.groups {
            self.bind_service(s)?;
            let search = Search {
                base: g.base.clone(),
                scope: g.scope,
                filter: parse(&fill_filter(
                    &g.filter,
                    &[("dn", entry.dn.as_str()), ("user", login)],
                ))?,
                attributes: vec![g.attr.clone()],
                size_limit: 0,
                time_limit: SEARCH_TIME_LIMIT,
            };
            let (entries, outcome) = s.conn.search(&search)?;
            match outcome.code {
                Code::SUCCESS => {}
                Code::SIZE_LIMIT_EXCEEDED => notes.push(format!(
                    "the group search for {} hit the server's size limit; groups may be missing",
                    entry.dn
                )),
                _ => return Err(Error::Refused("the group search", outcome)),
            }
            for group in &entries {
                for value in group.values(&g.attr) {
                    push_unique(&mut groups, String::from_utf8_lossy(value).into_owned());
                }
            }
        }
        // Servers return groups in no particular order; a sorted list keeps identities equal.
        groups.sort();
        Ok(User {
            id,
            dn: entry.dn,
            display_name,
            groups,
        })
    }
}

impl Answer {
    fn quiet(outcome: Outcome) -> Answer {
        Answer {
            outcome,
            notes: Vec::new(),
        }
    }
}

/// Why a login name cannot be a user of this directory, if it cannot.
fn unusable_login(user: &str) -> Option<String> {
    if user.is_empty() {
        Some("empty user name".into())
    } else if user.len() > MAX_ID_BYTES {
        Some(format!("a user name of {} bytes", user.len()))
    } else if user.chars().any(char::is_control) {
        Some(format!("the user name {user:?} has control characters"))
    } else {
        None
    }
}

fn unknown(user: &str) -> Outcome {
    Outcome::Pass(format!("no directory entry for `{user}`"))
}

fn ambiguous(user: &str, n: usize) -> Outcome {
    Outcome::Deny(format!(
        "the user search for `{user}` found {n} or more entries; make `search_filter` match one"
    ))
}

fn parse(filter: &str) -> Result<Filter, Error> {
    Filter::parse(filter).map_err(|e| Error::Protocol(format!("filter {filter}: {e}")))
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}
