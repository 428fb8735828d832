//! The LDAPv3 operations this resolver uses (RFC 4511): bind, search, unbind and the StartTLS
//! extended operation, encoded into whole messages and decoded from whole messages.

use std::fmt;

use crate::ber::{
    BOOLEAN, DecodeError, ENUMERATED, INTEGER, OCTET_STRING, Reader, SEQUENCE, SET, Tlv, Writer,
};
use crate::filter::Filter;

/// The StartTLS extended operation (RFC 4511 §4.14).
pub(crate) const START_TLS_OID: &str = "1.3.6.1.4.1.1466.20037";
/// The unsolicited notice a server sends before it drops a connection (RFC 4511 §4.4.1).
const NOTICE_OF_DISCONNECTION_OID: &str = "1.3.6.1.4.1.1466.20036";

const BIND_REQUEST: u8 = 0x60;
const BIND_RESPONSE: u8 = 0x61;
const UNBIND_REQUEST: u8 = 0x42;
const SEARCH_REQUEST: u8 = 0x63;
const SEARCH_RESULT_ENTRY: u8 = 0x64;
const SEARCH_RESULT_DONE: u8 = 0x65;
const SEARCH_RESULT_REFERENCE: u8 = 0x73;
const EXTENDED_REQUEST: u8 = 0x77;
const EXTENDED_RESPONSE: u8 = 0x78;
/// `[0]` simple authentication in a bind request, and the request name of an extended request.
const CONTEXT_0: u8 = 0x80;
/// `[10]` response name of an extended response.
const RESPONSE_NAME: u8 = 0x8a;

/// A request the resolver sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request<'a> {
    /// A simple bind (RFC 4511 §4.2); an empty name and password is an anonymous bind.
    SimpleBind {
        /// The DN to authenticate as.
        dn: &'a str,
        /// The password.
        password: &'a [u8],
    },
    /// A search (RFC 4511 §4.5.1).
    Search(&'a Search),
    /// The end of the session (RFC 4511 §4.3).
    Unbind,
    /// Ask to start TLS on this connection (RFC 4511 §4.14).
    StartTls,
}

/// The parameters of a search request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Search {
    /// Where the search starts.
    pub(crate) base: String,
    /// How far below the base it looks.
    pub(crate) scope: Scope,
    /// Which entries match.
    pub(crate) filter: Filter,
    /// The attributes to return; empty asks for none but the DN (`1.1`).
    pub(crate) attributes: Vec<String>,
    /// At most this many entries (0: the server's limit).
    pub(crate) size_limit: i32,
    /// At most this many seconds of server time (0: the server's limit).
    pub(crate) time_limit: i32,
}

/// The scope of a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Only the base entry.
    Base,
    /// The base's immediate children.
    One,
    /// The base and everything below it.
    Sub,
}

impl Scope {
    /// The name used in settings.
    pub(crate) fn parse(text: &str) -> Option<Scope> {
        match text.trim().to_ascii_lowercase().as_str() {
            "base" => Some(Scope::Base),
            "one" | "onelevel" => Some(Scope::One),
            "sub" | "subtree" => Some(Scope::Sub),
            _ => None,
        }
    }
}

impl Request<'_> {
    /// The whole LDAPMessage with this id.
    pub(crate) fn encode(&self, id: i32) -> Vec<u8> {
        let mut w = Writer::default();
        w.constructed(SEQUENCE, |w| {
            w.integer(INTEGER, i64::from(id));
            match self {
                Request::SimpleBind { dn, password } => w.constructed(BIND_REQUEST, |w| {
                    w.integer(INTEGER, 3);
                    w.primitive(OCTET_STRING, dn.as_bytes());
                    w.primitive(CONTEXT_0, password);
                }),
                Request::Search(s) => w.constructed(SEARCH_REQUEST, |w| {
                    w.primitive(OCTET_STRING, s.base.as_bytes());
                    w.integer(
                        ENUMERATED,
                        match s.scope {
                            Scope::Base => 0,
                            Scope::One => 1,
                            Scope::Sub => 2,
                        },
                    );
                    // derefAliases: never, so that a search cannot leave the configured base.
                    w.integer(ENUMERATED, 0);
                    w.integer(INTEGER, i64::from(s.size_limit));
                    w.integer(INTEGER, i64::from(s.time_limit));
                    w.boolean(BOOLEAN, false);
                    s.filter.encode(w);
                    w.constructed(SEQUENCE, |w| {
                        if s.attributes.is_empty() {
                            w.primitive(OCTET_STRING, b"1.1");
                        }
                        for a in &s.attributes {
                            w.primitive(OCTET_STRING, a.as_bytes());
                        }
                    });
                }),
                Request::Unbind => w.primitive(UNBIND_REQUEST, &[]),
                Request::StartTls => w.constructed(EXTENDED_REQUEST, |w| {
                    w.primitive(CONTEXT_0, START_TLS_OID.as_bytes());
                }),
            }
        });
        w.finish()
    }
}

/// An LDAP result code (RFC 4511 Appendix A).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Code(pub(crate) i64);

impl Code {
    /// success
    pub(crate) const SUCCESS: Code = Code(0);
    /// sizeLimitExceeded
    pub(crate) const SIZE_LIMIT_EXCEEDED: Code = Code(4);
    /// noSuchObject
    pub(crate) const NO_SUCH_OBJECT: Code = Code(32);
    /// invalidCredentials
    pub(crate) const INVALID_CREDENTIALS: Code = Code(49);

    /// True for codes that say the server, not the request, is in trouble, so that another
    /// server should be asked: operationsError, protocolError, timeLimitExceeded,
    /// adminLimitExceeded, busy, unavailable, loopDetect and other. (unwillingToPerform is
    /// left out: it is also how a server refuses one request, such as a locked account.)
    pub(crate) fn is_server_trouble(self) -> bool {
        matches!(self.0, 1 | 2 | 3 | 11 | 51 | 52 | 54 | 80)
    }

    fn name(self) -> &'static str {
        match self.0 {
            0 => "success",
            1 => "operationsError",
            2 => "protocolError",
            3 => "timeLimitExceeded",
            4 => "sizeLimitExceeded",
            7 => "authMethodNotSupported",
            8 => "strongerAuthRequired",
            11 => "adminLimitExceeded",
            13 => "confidentialityRequired",
            19 => "constraintViolation",
            32 => "noSuchObject",
            34 => "invalidDNSyntax",
            48 => "inappropriateAuthentication",
            49 => "invalidCredentials",
            50 => "insufficientAccessRights",
            51 => "busy",
            52 => "unavailable",
            53 => "unwillingToPerform",
            54 => "loopDetect",
            80 => "other",
            _ => "result",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// The LDAPResult that ends an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The result code.
    pub(crate) code: Code,
    /// The server's diagnostic message, possibly empty.
    pub(crate) message: String,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{}: {}", self.code, self.message)
        }
    }
}

/// One entry of a search result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The entry's DN.
    pub(crate) dn: String,
    /// Attributes in the order the server sent them, names as sent.
    pub(crate) attributes: Vec<(String, Vec<Vec<u8>>)>,
}

impl Entry {
    /// The values of `name` (compared case-insensitively, options ignored).
    pub(crate) fn values(&self, name: &str) -> impl Iterator<Item = &[u8]> {
        self.attributes
            .iter()
            .filter(move |(n, _)| {
                let base = n.split(';').next().unwrap_or(n);
                base.eq_ignore_ascii_case(name)
            })
            .flat_map(|(_, vals)| vals.iter().map(Vec::as_slice))
    }

    /// The first value of `name` as text (invalid UTF-8 replaced).
    pub(crate) fn first_text(&self, name: &str) -> Option<String> {
        self.values(name)
            .next()
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// A response the server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Response {
    /// The end of a bind.
    Bind(Outcome),
    /// One search result entry.
    Entry(Entry),
    /// A continuation reference, which this resolver does not chase.
    Reference,
    /// The end of a search.
    SearchDone(Outcome),
    /// The end of an extended operation.
    Extended(Outcome),
    /// The server is closing the connection.
    Disconnect(Outcome),
}

impl Response {
    /// What kind of response this is, for error messages (no attribute values).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Response::Bind(_) => "bind response",
            Response::Entry(_) => "search entry",
            Response::Reference => "search reference",
            Response::SearchDone(_) => "search result",
            Response::Extended(_) => "extended response",
            Response::Disconnect(_) => "notice of disconnection",
        }
    }
}

/// A decoded LDAPMessage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// The id of the request this answers; 0 for unsolicited notifications.
    pub(crate) id: i32,
    /// What the server said.
    pub(crate) response: Response,
}

impl Message {
    /// Decodes one whole LDAPMessage.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        let mut outer = Reader::new(bytes);
        let message = outer.expect(SEQUENCE, "LDAPMessage")?;
        if !outer.is_empty() {
            return Err(DecodeError("bytes after the LDAPMessage".to_string()));
        }
        let mut r = message.children();
        let id = r.expect(INTEGER, "messageID")?.integer()?;
        let id =
            i32::try_from(id).map_err(|_| DecodeError(format!("message id {id} out of range")))?;
        let op = r.any()?;
        // Controls ([0]) may follow; none of them matters to a bind or a search here.
        let response = match op.tag {
            BIND_RESPONSE => Response::Bind(result(&op)?),
            SEARCH_RESULT_ENTRY => Response::Entry(entry(&op)?),
            SEARCH_RESULT_REFERENCE => Response::Reference,
            SEARCH_RESULT_DONE => Response::SearchDone(result(&op)?),
            EXTENDED_RESPONSE => {
                let outcome = result(&op)?;
                let mut rest = op.children();
                // Skip the LDAPResult's three components and an optional referral.
                for _ in 0..3 {
                    rest.any()?;
                }
                rest.optional(0xa3)?;
                let name = rest.optional(RESPONSE_NAME)?.map(|t| t.content);
                if id == 0 && name == Some(NOTICE_OF_DISCONNECTION_OID.as_bytes()) {
                    Response::Disconnect(outcome)
                } else {
                    Response::Extended(outcome)
                }
            }
            other => {
                return Err(DecodeError(format!(
                    "an unexpected operation with tag 0x{other:02x}"
                )));
            }
        };
        Ok(Message { id, response })
    }
}

fn text(tlv: Tlv<'_>) -> String {
    String::from_utf8_lossy(tlv.content).into_owned()
}

fn result(op: &Tlv<'_>) -> Result<Outcome, DecodeError> {
    let mut r = op.children();
    let code = Code(r.expect(ENUMERATED, "resultCode")?.integer()?);
    r.expect(OCTET_STRING, "matchedDN")?;
    let message = text(r.expect(OCTET_STRING, "diagnosticMessage")?);
    Ok(Outcome { code, message })
}

fn entry(op: &Tlv<'_>) -> Result<Entry, DecodeError> {
    let mut r = op.children();
    let dn = text(r.expect(OCTET_STRING, "objectName")?);
    let mut attributes = Vec::new();
    let mut list = r.expect(SEQUENCE, "attributes")?.children();
    while !list.is_empty() {
        let mut attr = list.expect(SEQUENCE, "PartialAttribute")?.children();
        let name = text(attr.expect(OCTET_STRING, "attribute type")?);
        let mut vals = attr.expect(SET, "attribute values")?.children();
        let mut values = Vec::new();
        while !vals.is_empty() {
            values.push(
                vals.expect(OCTET_STRING, "attribute value")?
                    .content
                    .to_vec(),
            );
        }
        attributes.push((name, values));
    }
    Ok(Entry { dn, attributes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_request_matches_a_known_encoding() {
        // As OpenLDAP's ldapwhoami sends it: message 1, version 3, "cn=x", password "pw".
        let bytes = Request::SimpleBind {
            dn: "cn=x",
            password: b"pw",
        }
        .encode(1);
        assert_eq!(
            bytes,
            [
                0x30, 0x12, 0x02, 0x01, 0x01, 0x60, 0x0d, 0x02, 0x01, 0x03, 0x04, 0x04, b'c', b'n',
                b'=', b'x', 0x80, 0x02, b'p', b'w'
            ]
        );
    }

    #[test]
    fn unbind_and_start_tls_encode() {
        assert_eq!(
            Request::Unbind.encode(3),
            [0x30, 0x05, 0x02, 0x01, 0x03, 0x42, 0x00]
        );
        let st = Request::StartTls.encode(1);
        assert_eq!(&st[5..7], &[0x77, 0x18]);
        assert!(st.ends_with(START_TLS_OID.as_bytes()));
    }

    #[test]
    fn decodes_responses() {
        // BindResponse, invalidCredentials, with a diagnostic message.
        let bind = [
            0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x31, 0x04, 0x00, 0x04, 0x00,
        ];
        let m = Message::decode(&bind).unwrap();
        assert_eq!(m.id, 1);
        assert_eq!(
            m.response,
            Response::Bind(Outcome {
                code: Code::INVALID_CREDENTIALS,
                message: String::new()
            })
        );

        let mut w = Writer::default();
        w.constructed(SEQUENCE, |w| {
            w.integer(INTEGER, 2);
            w.constructed(SEARCH_RESULT_ENTRY, |w| {
                w.primitive(OCTET_STRING, b"uid=a,dc=x");
                w.constructed(SEQUENCE, |w| {
                    w.constructed(SEQUENCE, |w| {
                        w.primitive(OCTET_STRING, b"cn;lang-en");
                        w.constructed(SET, |w| {
                            w.primitive(OCTET_STRING, b"A");
                            w.primitive(OCTET_STRING, b"B");
                        });
                    });
                });
            });
        });
        let m = Message::decode(&w.finish()).unwrap();
        let Response::Entry(e) = m.response else {
            panic!("not an entry")
        };
        assert_eq!(e.dn, "uid=a,dc=x");
        assert_eq!(e.values("CN").collect::<Vec<_>>(), [b"A", b"B"]);
        assert_eq!(e.first_text("cn").as_deref(), Some("A"));
    }

    #[test]
    fn notice_of_disconnection_is_recognised() {
        let mut w = Writer::default();
        w.constructed(SEQUENCE, |w| {
            w.integer(INTEGER, 0);
            w.constructed(EXTENDED_RESPONSE, |w| {
                w.integer(ENUMERATED, 52);
                w.primitive(OCTET_STRING, b"");
                w.primitive(OCTET_STRING, b"going down");
                w.primitive(RESPONSE_NAME, NOTICE_OF_DISCONNECTION_OID.as_bytes());
            });
        });
        let m = Message::decode(&w.finish()).unwrap();
        assert!(matches!(m.response, Response::Disconnect(o) if o.code == Code(52)));
    }

    proptest::proptest! {
        /// Whatever a server sends, decoding answers without panicking.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(0u8..=255, 0..200)) {
            let _ = Message::decode(&bytes);
            let _ = crate::ber::frame_len(&bytes);
        }

        /// Mutating a valid search entry never panics either (the interesting bytes are
        /// lengths and tags inside a well-formed frame).
        #[test]
        fn decoding_mutated_entries_never_panics(at in 0usize..64, value in 0u8..=255) {
            let mut w = Writer::default();
            w.constructed(SEQUENCE, |w| {
                w.integer(INTEGER, 7);
                w.constructed(SEARCH_RESULT_ENTRY, |w| {
                    w.primitive(OCTET_STRING, b"uid=a,dc=x");
                    w.constructed(SEQUENCE, |w| {
                        w.constructed(SEQUENCE, |w| {
                            w.primitive(OCTET_STRING, b"memberOf");
                            w.constructed(SET, |w| w.primitive(OCTET_STRING, b"cn=g,dc=x"));
                        });
                    });
                });
            });
            let mut bytes = w.finish();
            let i = at % bytes.len();
            bytes[i] = value;
            let _ = Message::decode(&bytes);
        }
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            &[][..],
            &[0x30, 0x03, 0x02, 0x01, 0x01][..],
            &[0x30, 0x05, 0x02, 0x01, 0x01, 0x99, 0x00][..],
            &[0x04, 0x00][..],
        ] {
            assert!(Message::decode(bad).is_err(), "{bad:?}");
        }
    }
}
