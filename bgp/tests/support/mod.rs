//! Helpers shared by the wire integration tests: hex fixtures and message
//! builders that write the header and length fields independently of the
//! codec under test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod corpus;
pub mod expect;
pub mod strategy;

/// Bytes from hex; spaces and newlines are ignored.
pub fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len().is_multiple_of(2), "odd hex fixture {s:?}");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// Lower-case hex of `b`.
pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A whole message: marker, computed length, type, body.
pub fn message(message_type: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&u16::try_from(19 + body.len()).unwrap().to_be_bytes());
    m.push(message_type);
    m.extend_from_slice(body);
    m
}

/// One path attribute, with the Extended Length flag when needed.
pub fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut a = Vec::new();
    if value.len() > 255 {
        a.extend_from_slice(&[flags | 0x10, code]);
        a.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
    } else {
        a.extend_from_slice(&[flags, code, u8::try_from(value.len()).unwrap()]);
    }
    a.extend_from_slice(value);
    a
}

/// An UPDATE from its three fields.
pub fn update(withdrawn: &[u8], attributes: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&u16::try_from(withdrawn.len()).unwrap().to_be_bytes());
    b.extend_from_slice(withdrawn);
    b.extend_from_slice(&u16::try_from(attributes.len()).unwrap().to_be_bytes());
    b.extend_from_slice(attributes);
    b.extend_from_slice(nlri);
    message(2, &b)
}

/// The Calico-like good attribute set of lab-facts §7: ORIGIN IGP, empty
/// AS_PATH, NEXT_HOP 10.200.0.4, LOCAL_PREF 100.
pub fn good_attributes() -> Vec<u8> {
    [
        attr(0x40, 1, &[0]),
        attr(0x40, 2, &[]),
        attr(0x40, 3, &[10, 200, 0, 4]),
        attr(0x40, 5, &[0, 0, 0, 100]),
    ]
    .concat()
}

/// NLRI 172.31.9.0/24.
pub const GOOD_NLRI: [u8; 4] = [24, 172, 31, 9];
