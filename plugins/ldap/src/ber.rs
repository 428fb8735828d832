//! The subset of BER (X.690) that LDAPv3 uses (RFC 4511 §5.1): one-byte tags, definite lengths,
//! and the universal types INTEGER, ENUMERATED, BOOLEAN, OCTET STRING, NULL, SEQUENCE and SET.
//!
//! Sans-io: [`Writer`] builds bytes, [`Reader`] walks a complete buffer, and [`frame_len`] tells
//! the connection how many bytes one message needs before it can be decoded.

use std::fmt;

/// Universal BOOLEAN.
pub(crate) const BOOLEAN: u8 = 0x01;
/// Universal INTEGER.
pub(crate) const INTEGER: u8 = 0x02;
/// Universal OCTET STRING.
pub(crate) const OCTET_STRING: u8 = 0x04;
/// Universal ENUMERATED.
pub(crate) const ENUMERATED: u8 = 0x0a;
/// Universal SEQUENCE (constructed).
pub(crate) const SEQUENCE: u8 = 0x30;
/// Universal SET (constructed).
pub(crate) const SET: u8 = 0x31;

/// Bit that marks a constructed encoding.
const CONSTRUCTED: u8 = 0x20;
/// Low bits of a tag byte that announce a multi-byte tag number.
const LONG_TAG: u8 = 0x1f;
/// The largest length this codec accepts in a header: 4 length octets.
const MAX_LENGTH_OCTETS: usize = 4;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError(pub(crate) String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad<T>(what: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(what.into()))
}

/// Builds a BER encoding front to back; nested values are written through closures.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    out: Vec<u8>,
}

impl Writer {
    /// The bytes written so far.
    pub(crate) fn finish(self) -> Vec<u8> {
        self.out
    }

    /// A primitive value with this tag and these content bytes.
    pub(crate) fn primitive(&mut self, tag: u8, content: &[u8]) {
        self.out.push(tag);
        push_length(&mut self.out, content.len());
        self.out.extend_from_slice(content);
    }

    /// A constructed value with this tag whose content `body` writes.
    pub(crate) fn constructed(&mut self, tag: u8, body: impl FnOnce(&mut Writer)) {
        let mut inner = Writer::default();
        body(&mut inner);
        self.primitive(tag | CONSTRUCTED, &inner.out);
    }

    /// An INTEGER (or an ENUMERATED, or an implicitly tagged integer) in the fewest octets.
    pub(crate) fn integer(&mut self, tag: u8, value: i64) {
        let bytes = value.to_be_bytes();
        // Drop leading octets that only repeat the sign of the next one.
        let mut start = 0;
        while start < bytes.len() - 1 {
            let (this, next) = (bytes[start], bytes[start + 1]);
            let redundant =
                (this == 0x00 && next & 0x80 == 0) || (this == 0xff && next & 0x80 != 0);
            if !redundant {
                break;
            }
            start += 1;
        }
        self.primitive(tag, &bytes[start..]);
    }

    /// A BOOLEAN (DER form: `0xff` for true).
    pub(crate) fn boolean(&mut self, tag: u8, value: bool) {
        self.primitive(tag, &[if value { 0xff } else { 0x00 }]);
    }
}

fn push_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let significant = &bytes[skip..];
    out.push(0x80 | significant.len() as u8);
    out.extend_from_slice(significant);
}

/// One decoded tag-length-value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tlv<'a> {
    /// The tag byte, class and constructed bit included.
    pub(crate) tag: u8,
    /// The content octets.
    pub(crate) content: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// A reader over the content of a constructed value.
    pub(crate) fn children(&self) -> Reader<'a> {
        Reader::new(self.content)
    }

    /// The content as a signed integer (INTEGER, ENUMERATED, or implicitly tagged ones).
    pub(crate) fn integer(&self) -> Result<i64, DecodeError> {
        let c = self.content;
        if c.is_empty() || c.len() > 8 {
            return bad(format!("an integer of {} octets", c.len()));
        }
        let mut value: i64 = if c[0] & 0x80 != 0 { -1 } else { 0 };
        for b in c {
            value = (value << 8) | i64::from(*b);
        }
        Ok(value)
    }
}

/// Walks consecutive TLVs in a buffer.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    /// True when every value was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The tag of the next value, if any.
    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next value, whatever its tag.
    pub(crate) fn any(&mut self) -> Result<Tlv<'a>, DecodeError> {
        let (header, len) = match header(self.rest)? {
            Some(h) => h,
            None => return bad("a value cut short in its header"),
        };
        let Some(end) = header
            .checked_add(len)
            .filter(|end| *end <= self.rest.len())
        else {
            return bad(format!("a value of {len} octets with fewer left"));
        };
        let tlv = Tlv {
            tag: self.rest[0],
            content: &self.rest[header..end],
        };
        self.rest = &self.rest[end..];
        Ok(tlv)
    }

    /// The next value, which must carry `tag`.
    pub(crate) fn expect(&mut self, tag: u8, what: &str) -> Result<Tlv<'a>, DecodeError> {
        let tlv = self.any()?;
        if tlv.tag != tag {
            return bad(format!(
                "{what}: expected tag 0x{tag:02x}, found 0x{:02x}",
                tlv.tag
            ));
        }
        Ok(tlv)
    }

    /// The next value if it carries `tag`, else nothing (for OPTIONAL components).
    pub(crate) fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, DecodeError> {
        if self.peek_tag() == Some(tag) {
            self.any().map(Some)
        } else {
            Ok(None)
        }
    }
}

/// The header length and the content length at the start of `bytes`; `None` while the header
/// is incomplete.
fn header(bytes: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let Some(&tag) = bytes.first() else {
        return Ok(None);
    };
    if tag & LONG_TAG == LONG_TAG {
        return bad(format!(
            "multi-byte tag 0x{tag:02x}, which LDAP does not use"
        ));
    }
    let Some(&first) = bytes.get(1) else {
        return Ok(None);
    };
    if first < 0x80 {
        return Ok(Some((2, usize::from(first))));
    }
    let octets = usize::from(first & 0x7f);
    if octets == 0 {
        return bad("an indefinite length, which LDAP forbids");
    }
    if octets > MAX_LENGTH_OCTETS {
        return bad(format!("a length in {octets} octets"));
    }
    let Some(len_bytes) = bytes.get(2..2 + octets) else {
        return Ok(None);
    };
    let len = len_bytes
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    Ok(Some((2 + octets, len)))
}

/// The total length of the first value in `bytes` (header and content) once its header has
/// arrived; `Ok(None)` while more bytes are needed to know.
pub(crate) fn frame_len(bytes: &[u8]) -> Result<Option<usize>, DecodeError> {
    Ok(header(bytes)?.map(|(h, len)| h + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int_bytes(v: i64) -> Vec<u8> {
        let mut w = Writer::default();
        w.integer(INTEGER, v);
        w.finish()
    }

    #[test]
    fn integers_use_the_fewest_octets_and_round_trip() {
        assert_eq!(int_bytes(0), [0x02, 0x01, 0x00]);
        assert_eq!(int_bytes(3), [0x02, 0x01, 0x03]);
        assert_eq!(int_bytes(128), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(int_bytes(-1), [0x02, 0x01, 0xff]);
        assert_eq!(int_bytes(-129), [0x02, 0x02, 0xff, 0x7f]);
        for v in [
            0,
            1,
            127,
            128,
            255,
            256,
            65_535,
            i32::MAX as i64,
            -1,
            -128,
            -129,
            i64::MIN,
        ] {
            let bytes = int_bytes(v);
            let tlv = Reader::new(&bytes).any().unwrap();
            assert_eq!(tlv.integer().unwrap(), v, "{v}");
        }
    }

    #[test]
    fn long_lengths_round_trip() {
        for len in [0usize, 127, 128, 255, 256, 70_000] {
            let mut w = Writer::default();
            w.primitive(OCTET_STRING, &vec![7u8; len]);
            let bytes = w.finish();
            assert_eq!(frame_len(&bytes).unwrap(), Some(bytes.len()));
            let tlv = Reader::new(&bytes).any().unwrap();
            assert_eq!(tlv.content.len(), len);
        }
    }

    #[test]
    fn frame_len_waits_for_the_whole_header() {
        let mut w = Writer::default();
        w.primitive(OCTET_STRING, &[1u8; 300]);
        let bytes = w.finish();
        assert_eq!(frame_len(&bytes[..1]).unwrap(), None);
        assert_eq!(frame_len(&bytes[..3]).unwrap(), None);
        assert_eq!(frame_len(&bytes[..4]).unwrap(), Some(304));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert!(frame_len(&[0x30, 0x80]).is_err(), "indefinite length");
        assert!(frame_len(&[0x1f, 0x01]).is_err(), "multi-byte tag");
        assert!(frame_len(&[0x30, 0x89, 1, 2, 3, 4, 5, 6, 7, 8, 9]).is_err());
        assert!(
            Reader::new(&[0x04, 0x05, 1, 2]).any().is_err(),
            "content cut short"
        );
        assert!(Reader::new(&[0x02, 0x00]).any().unwrap().integer().is_err());
        assert!(
            Reader::new(&[0x04, 0x84, 0xff, 0xff, 0xff, 0xff])
                .any()
                .is_err()
        );
    }

    #[test]
    fn constructed_values_nest() {
        let mut w = Writer::default();
        w.constructed(SEQUENCE, |w| {
            w.integer(INTEGER, 5);
            w.boolean(BOOLEAN, true);
        });
        let bytes = w.finish();
        assert_eq!(bytes, [0x30, 0x06, 0x02, 0x01, 0x05, 0x01, 0x01, 0xff]);
        let seq = Reader::new(&bytes).expect(SEQUENCE, "seq").unwrap();
        let mut inner = seq.children();
        assert_eq!(inner.expect(INTEGER, "n").unwrap().integer().unwrap(), 5);
        assert_eq!(inner.expect(BOOLEAN, "b").unwrap().content, [0xff]);
        assert!(inner.is_empty());
    }
}
