//! A strict DER reader for untrusted bytes: definite, minimal lengths; one-byte tags; nothing left
//! over. Every index is checked, so no input can make it panic.
//!
//! It reads only what certboot needs from a PKCS#10 request ([`super::csr_der`]); anything it
//! does not accept is an error, never skipped, so no other parser (Go's) can read a part certboot
//! did not see.

/// How the bytes break DER.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DerError {
    #[error("the data ends inside an element")]
    Truncated,
    #[error("a multi-byte tag (not used by PKCS#10)")]
    LongTag,
    #[error("an indefinite length (BER, not DER)")]
    IndefiniteLength,
    #[error("a length not in its shortest form (BER, not DER)")]
    NonMinimalLength,
    #[error("expected tag 0x{expected:02x}, found 0x{found:02x}")]
    UnexpectedTag { expected: u8, found: u8 },
    #[error("{0} bytes after the end of an element")]
    TrailingBytes(usize),
    #[error("an object identifier is malformed")]
    BadOid,
    #[error("a BOOLEAN is not 0x00 or 0xff")]
    BadBoolean,
    #[error("an INTEGER is malformed, negative or too large")]
    BadInteger,
    #[error("a BIT STRING is malformed")]
    BadBitString,
    #[error("a string has characters its type does not allow")]
    BadString,
    #[error("an element that must not be empty is empty")]
    Empty,
}

pub const SEQUENCE: u8 = 0x30;
pub const SET: u8 = 0x31;
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;
pub const BOOLEAN: u8 = 0x01;
pub const OID: u8 = 0x06;
pub const UTF8_STRING: u8 = 0x0c;
pub const NUMERIC_STRING: u8 = 0x12;
pub const PRINTABLE_STRING: u8 = 0x13;
pub const IA5_STRING: u8 = 0x16;

/// One element: its tag, its content, and its whole encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub raw: &'a [u8],
}

/// Reads consecutive elements from a slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next element's tag, without reading it.
    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next element, whatever its tag.
    pub fn read(&mut self) -> Result<Tlv<'a>, DerError> {
        let tag = *self.rest.first().ok_or(DerError::Truncated)?;
        if tag & 0x1f == 0x1f {
            return Err(DerError::LongTag);
        }
        let first = *self.rest.get(1).ok_or(DerError::Truncated)?;
        let (len, header) = match first {
            0..=0x7f => (usize::from(first), 2),
            0x80 => return Err(DerError::IndefiniteLength),
            _ => {
                let count = usize::from(first & 0x7f);
                // 4 bytes of length are 4 GiB, far beyond anything certboot reads.
                if count > 4 {
                    return Err(DerError::NonMinimalLength);
                }
                let bytes = self.rest.get(2..2 + count).ok_or(DerError::Truncated)?;
                if bytes.first() == Some(&0) {
                    return Err(DerError::NonMinimalLength);
                }
                let len = bytes
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
                if len < 0x80 {
                    return Err(DerError::NonMinimalLength);
                }
                (len, 2 + count)
            }
        };
        let end = header.checked_add(len).ok_or(DerError::Truncated)?;
        let raw = self.rest.get(..end).ok_or(DerError::Truncated)?;
        let content = raw.get(header..).ok_or(DerError::Truncated)?;
        self.rest = self.rest.get(end..).unwrap_or_default();
        Ok(Tlv { tag, content, raw })
    }

    /// The next element, which must have `tag`.
    pub fn expect(&mut self, tag: u8) -> Result<Tlv<'a>, DerError> {
        let tlv = self.read()?;
        if tlv.tag != tag {
            return Err(DerError::UnexpectedTag {
                expected: tag,
                found: tlv.tag,
            });
        }
        Ok(tlv)
    }

    /// Reads the next element if it has `tag`.
    pub fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, DerError> {
        if self.peek_tag() == Some(tag) {
            self.expect(tag).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Nothing may follow.
    pub fn finish(&self) -> Result<(), DerError> {
        match self.rest.len() {
            0 => Ok(()),
            n => Err(DerError::TrailingBytes(n)),
        }
    }
}

/// `bytes` is exactly one element with `tag`; returns its content.
pub fn single(bytes: &[u8], tag: u8) -> Result<&[u8], DerError> {
    let mut reader = Reader::new(bytes);
    let tlv = reader.expect(tag)?;
    reader.finish()?;
    Ok(tlv.content)
}

/// An OBJECT IDENTIFIER's content, checked to be a minimal encoding (compare these bytes).
pub fn oid(content: &[u8]) -> Result<&[u8], DerError> {
    let Some(last) = content.last() else {
        return Err(DerError::BadOid);
    };
    if last & 0x80 != 0 {
        return Err(DerError::BadOid);
    }
    let mut start = true;
    for b in content {
        if start && *b == 0x80 {
            return Err(DerError::BadOid);
        }
        start = b & 0x80 == 0;
    }
    Ok(content)
}

/// An OID in dotted form, for messages (at most 60 characters).
pub fn oid_text(content: &[u8]) -> String {
    let mut arcs: Vec<String> = Vec::new();
    let mut value: u64 = 0;
    for b in content {
        value = match value.checked_mul(128) {
            Some(v) => v | u64::from(b & 0x7f),
            None => return "(an OID with an oversized arc)".into(),
        };
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first.to_string());
                arcs.push((value - first * 40).to_string());
            } else {
                arcs.push(value.to_string());
            }
            value = 0;
        }
    }
    let text = arcs.join(".");
    if text.len() > 60 {
        format!("{}...", text.get(..57).unwrap_or_default())
    } else {
        text
    }
}

/// A DER BOOLEAN.
pub fn boolean(content: &[u8]) -> Result<bool, DerError> {
    match content {
        [0x00] => Ok(false),
        [0xff] => Ok(true),
        _ => Err(DerError::BadBoolean),
    }
}

/// A small non-negative INTEGER (at most 8 bytes), minimally encoded.
pub fn small_uint(content: &[u8]) -> Result<u64, DerError> {
    match content {
        [] => Err(DerError::BadInteger),
        [first, ..] if first & 0x80 != 0 => Err(DerError::BadInteger),
        [0, second, ..] if second & 0x80 == 0 => Err(DerError::BadInteger),
        _ if content.len() > 8 => Err(DerError::BadInteger),
        _ => Ok(content
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))),
    }
}

/// A BIT STRING: its bytes, the unused (padding) bits of the last byte zero.
pub fn bit_string(content: &[u8]) -> Result<&[u8], DerError> {
    let (unused, bits) = content.split_first().ok_or(DerError::BadBitString)?;
    let padding_ok = match bits.last() {
        None => *unused == 0,
        Some(last) => *unused < 8 && last & ((1u8 << unused) - 1) == 0,
    };
    if padding_ok {
        Ok(bits)
    } else {
        Err(DerError::BadBitString)
    }
}

/// An IA5String as SAN names use it: printable ASCII only (no controls, no NUL).
pub fn ia5(content: &[u8]) -> Result<&str, DerError> {
    if content.iter().all(|b| (0x20..0x7f).contains(b)) {
        std::str::from_utf8(content).map_err(|_| DerError::BadString)
    } else {
        Err(DerError::BadString)
    }
}

/// A directory string certboot reads (UTF8String, PrintableString, IA5String, NumericString).
pub fn directory_string(tag: u8, content: &[u8]) -> Result<&str, DerError> {
    let allowed = |b: &u8| match tag {
        // Go also accepts '*' and '&' in PrintableString; so does certboot (read, then judged).
        PRINTABLE_STRING => b.is_ascii_alphanumeric() || b" '()+,-./:=?*&".contains(b),
        NUMERIC_STRING => b.is_ascii_digit() || *b == b' ',
        IA5_STRING => b.is_ascii(),
        _ => true,
    };
    if !matches!(
        tag,
        UTF8_STRING | PRINTABLE_STRING | IA5_STRING | NUMERIC_STRING
    ) || !content.iter().all(allowed)
    {
        return Err(DerError::BadString);
    }
    std::str::from_utf8(content).map_err(|_| DerError::BadString)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_must_be_definite_minimal_and_inside_the_input() {
        assert_eq!(
            Reader::new(&[0x04, 0x01, 0xaa]).read().unwrap().content,
            &[0xaa]
        );
        let long: Vec<u8> = [vec![0x04, 0x81, 0x80], vec![0; 0x80]].concat();
        assert_eq!(Reader::new(&long).read().unwrap().content.len(), 0x80);
        for (bad, err) in [
            (&[0x04, 0x80, 0x00, 0x00][..], DerError::IndefiniteLength),
            (&[0x04, 0x81, 0x01, 0xaa], DerError::NonMinimalLength),
            (&[0x04, 0x82, 0x00, 0x81], DerError::NonMinimalLength),
            (&[0x04, 0x85, 1, 1, 1, 1, 1], DerError::NonMinimalLength),
            (&[0x04, 0x02, 0xaa], DerError::Truncated),
            (&[0x04, 0x84, 0xff, 0xff, 0xff, 0xff], DerError::Truncated),
            (&[0x1f, 0x81, 0x01, 0x00], DerError::LongTag),
            (&[0x04], DerError::Truncated),
            (&[], DerError::Truncated),
        ] {
            assert_eq!(Reader::new(bad).read(), Err(err), "{bad:02x?}");
        }
        assert_eq!(
            single(&[0x04, 0x00, 0x00], OCTET_STRING),
            Err(DerError::TrailingBytes(1))
        );
        assert_eq!(
            single(&[0x24, 0x00], OCTET_STRING),
            Err(DerError::UnexpectedTag {
                expected: 0x04,
                found: 0x24
            })
        );
    }

    #[test]
    fn primitives_are_strict() {
        assert_eq!(oid(&[0x55, 0x1d, 0x11]), Ok(&[0x55, 0x1d, 0x11][..]));
        assert_eq!(oid_text(&[0x55, 0x1d, 0x11]), "2.5.29.17");
        assert_eq!(
            oid_text(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e]),
            "1.2.840.113549.1.9.14"
        );
        assert!(oid_text(&[0xff; 40]).contains("oversized"));
        assert!(oid_text(&[0x01; 100]).len() <= 60);
        for bad in [&[][..], &[0x55, 0x81], &[0x55, 0x80, 0x01]] {
            assert_eq!(oid(bad), Err(DerError::BadOid), "{bad:02x?}");
        }
        assert_eq!(boolean(&[0xff]), Ok(true));
        assert_eq!(boolean(&[0x01]), Err(DerError::BadBoolean));
        assert_eq!(small_uint(&[0x00, 0x80]), Ok(128));
        for bad in [&[][..], &[0x80], &[0x00, 0x01], &[1; 9]] {
            assert_eq!(small_uint(bad), Err(DerError::BadInteger), "{bad:02x?}");
        }
        assert_eq!(bit_string(&[0x05, 0xa0]), Ok(&[0xa0][..]));
        for bad in [&[][..], &[0x01], &[0x08, 0x00], &[0x05, 0xa1]] {
            assert_eq!(bit_string(bad), Err(DerError::BadBitString), "{bad:02x?}");
        }
        assert_eq!(ia5(b"web.shop.svc"), Ok("web.shop.svc"));
        assert_eq!(ia5(b"a\0b"), Err(DerError::BadString));
        assert_eq!(ia5("\u{e9}".as_bytes()), Err(DerError::BadString));
        assert_eq!(directory_string(PRINTABLE_STRING, b"*.a-b"), Ok("*.a-b"));
        assert_eq!(
            directory_string(PRINTABLE_STRING, b"a@b"),
            Err(DerError::BadString)
        );
        assert_eq!(directory_string(0x1e, b"\0a"), Err(DerError::BadString));
        assert_eq!(
            directory_string(UTF8_STRING, &[0xc3]),
            Err(DerError::BadString)
        );
    }
}
