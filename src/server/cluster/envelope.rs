//! The messages instances exchange through Redis, one per Pub/Sub message on the document's
//! channel.
//!
//! ```text
//! b'T' version(1) kind(1) instance(u64 BE) seq(i64 BE) payload
//! ```
//! - `Stored`: the payload is the y-sync update frame of a change the instance stored at `seq`.
//! - `Presence`: the payload is an awareness frame the instance accepted from its editors.
//! - `WhoIsHere`: an instance just opened the document and asks for everyone's presence.
//! - `Claims`: the client ids the instance's connections write as in the document (u64 BE
//!   each), its whole set.
//! - `Links`: the instance took links of the document back (a reset, or the document deleted);
//!   no payload. The others read the document's links from the store and close what they no
//!   longer open: a message cannot take back more than the store did.
//!
//! Redis is trusted like the database (it must not be reachable by anyone else), yet a message
//! that does not decode is dropped with a log line, never relayed as it came: what reaches an
//! editor is what the receiving room re-encoded after applying it.

/// The first byte of every message, and the format's version.
const MAGIC: u8 = b'T';
const VERSION: u8 = 1;
const HEADER: usize = 3 + 8 + 8;

/// Largest payload accepted from Redis: a stored change is at most one WebSocket message
/// (4 MiB by default), and an awareness frame far less. Anything larger is not from Tandem.
pub const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stored,
    Presence,
    WhoIsHere,
    Claims,
    Links,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Stored => 1,
            Kind::Presence => 2,
            Kind::WhoIsHere => 3,
            Kind::Claims => 4,
            Kind::Links => 5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub kind: Kind,
    pub instance: u64,
    pub seq: i64,
    pub payload: &'a [u8],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("shorter than a header ({0} bytes)")]
    Short(usize),
    #[error("not a Tandem message, or another version of it")]
    Foreign,
    #[error("unknown kind {0}")]
    UnknownKind(u8),
    #[error("a change without a log position ({0})")]
    NoPosition(i64),
    #[error("payload of {0} bytes is too large")]
    TooLarge(usize),
}

impl Envelope<'_> {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.payload.len());
        out.extend_from_slice(&[MAGIC, VERSION, self.kind.byte()]);
        out.extend_from_slice(&self.instance.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(self.payload);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
        if bytes.len() < HEADER {
            return Err(EnvelopeError::Short(bytes.len()));
        }
        if bytes[0] != MAGIC || bytes[1] != VERSION {
            return Err(EnvelopeError::Foreign);
        }
        let kind = match bytes[2] {
            1 => Kind::Stored,
            2 => Kind::Presence,
            3 => Kind::WhoIsHere,
            4 => Kind::Claims,
            5 => Kind::Links,
            other => return Err(EnvelopeError::UnknownKind(other)),
        };
        let instance = u64::from_be_bytes(bytes[3..11].try_into().expect("8 bytes"));
        let seq = i64::from_be_bytes(bytes[11..19].try_into().expect("8 bytes"));
        let payload = &bytes[HEADER..];
        if payload.len() > MAX_PAYLOAD {
            return Err(EnvelopeError::TooLarge(payload.len()));
        }
        if kind == Kind::Stored && seq < 1 {
            return Err(EnvelopeError::NoPosition(seq));
        }
        Ok(Envelope {
            kind,
            instance,
            seq,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_encoded_decodes_to_itself() {
        for (kind, seq) in [
            (Kind::Stored, 1),
            (Kind::Presence, 0),
            (Kind::WhoIsHere, 0),
            (Kind::Claims, 0),
            (Kind::Links, 0),
        ] {
            let envelope = Envelope {
                kind,
                instance: 0xdead_beef_0123_4567,
                seq,
                payload: b"\x00\x02\x01\x00",
            };
            assert_eq!(Envelope::decode(&envelope.encode()).unwrap(), envelope);
        }
    }

    #[test]
    fn garbage_is_refused_with_its_reason() {
        assert_eq!(Envelope::decode(b""), Err(EnvelopeError::Short(0)));
        assert_eq!(Envelope::decode(&[b'T'; 18]), Err(EnvelopeError::Short(18)));
        let mut foreign = [0u8; HEADER];
        foreign[0] = b'X';
        assert_eq!(Envelope::decode(&foreign), Err(EnvelopeError::Foreign));
        let mut newer = [0u8; HEADER];
        newer[..3].copy_from_slice(&[MAGIC, VERSION + 1, 1]);
        assert_eq!(Envelope::decode(&newer), Err(EnvelopeError::Foreign));
        let mut unknown = [0u8; HEADER];
        unknown[..3].copy_from_slice(&[MAGIC, VERSION, 9]);
        assert_eq!(
            Envelope::decode(&unknown),
            Err(EnvelopeError::UnknownKind(9))
        );
        for seq in [0, -1, i64::MIN] {
            let bytes = Envelope {
                kind: Kind::Stored,
                instance: 1,
                seq,
                payload: b"",
            }
            .encode();
            assert_eq!(
                Envelope::decode(&bytes),
                Err(EnvelopeError::NoPosition(seq))
            );
        }
        let mut huge = Envelope {
            kind: Kind::Presence,
            instance: 1,
            seq: 0,
            payload: b"",
        }
        .encode();
        huge.resize(HEADER + MAX_PAYLOAD + 1, 0);
        assert_eq!(
            Envelope::decode(&huge),
            Err(EnvelopeError::TooLarge(MAX_PAYLOAD + 1))
        );
    }
}
