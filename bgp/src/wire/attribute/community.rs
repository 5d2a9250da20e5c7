//! Communities: COMMUNITIES (RFC 1997), EXTENDED_COMMUNITIES (RFC 4360)
//! and LARGE_COMMUNITY (RFC 8092).
//!
//! Owns the value types and their fixed-size encodings; the attribute
//! framing and RFC 7606 length checks are in [`super`].

use std::fmt;

/// A community (RFC 1997 §3): conventionally `AS:value`, 2 octets each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    /// GRACEFUL_SHUTDOWN (RFC 8326).
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);
    /// ACCEPT_OWN (RFC 7611).
    pub const ACCEPT_OWN: Community = Community(0xFFFF_0001);
    /// LLGR_STALE (RFC 9494 §4.3).
    pub const LLGR_STALE: Community = Community(0xFFFF_0006);
    /// NO_LLGR (RFC 9494 §4.3).
    pub const NO_LLGR: Community = Community(0xFFFF_0007);
    /// BLACKHOLE (RFC 7999).
    pub const BLACKHOLE: Community = Community(0xFFFF_029A);
    /// NO_EXPORT (RFC 1997).
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    /// NO_ADVERTISE (RFC 1997).
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
    /// NO_EXPORT_SUBCONFED (RFC 1997).
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);
    /// NOPEER (RFC 3765).
    pub const NOPEER: Community = Community(0xFFFF_FF04);

    /// The community `asn:value`.
    pub const fn new(asn: u16, value: u16) -> Self {
        Self((asn as u32) << 16 | value as u32)
    }

    /// The high-order 2 octets (conventionally an AS).
    pub const fn asn(self) -> u16 {
        (self.0 >> 16) as u16
    }

    /// The low-order 2 octets.
    pub const fn value(self) -> u16 {
        self.0 as u16
    }

    /// The IANA name of a well-known community.
    pub const fn well_known_name(self) -> Option<&'static str> {
        Some(match self {
            Self::GRACEFUL_SHUTDOWN => "GRACEFUL_SHUTDOWN",
            Self::ACCEPT_OWN => "ACCEPT_OWN",
            Self::LLGR_STALE => "LLGR_STALE",
            Self::NO_LLGR => "NO_LLGR",
            Self::BLACKHOLE => "BLACKHOLE",
            Self::NO_EXPORT => "NO_EXPORT",
            Self::NO_ADVERTISE => "NO_ADVERTISE",
            Self::NO_EXPORT_SUBCONFED => "NO_EXPORT_SUBCONFED",
            Self::NOPEER => "NOPEER",
            _ => return None,
        })
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.well_known_name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}:{}", self.asn(), self.value()),
        }
    }
}

/// An extended community (RFC 4360 §2), kept as its 8 octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtendedCommunity(pub [u8; 8]);

impl ExtendedCommunity {
    /// A two-octet-AS-specific Route Target (RFC 4360 §4: type 0x00,
    /// subtype 0x02).
    pub fn route_target(asn: u16, local_admin: u32) -> Self {
        let [a, b] = asn.to_be_bytes();
        let [c, d, e, f] = local_admin.to_be_bytes();
        Self([0x00, 0x02, a, b, c, d, e, f])
    }

    /// The Type high octet.
    pub const fn type_high(&self) -> u8 {
        self.0[0]
    }

    /// The Sub-Type octet (meaningful for extended types).
    pub const fn subtype(&self) -> u8 {
        self.0[1]
    }

    /// Whether the community may cross AS boundaries (RFC 4360 §2: the
    /// Transitive bit is 0).
    pub const fn is_transitive(&self) -> bool {
        self.0[0] & 0x40 == 0
    }
}

/// A large community (RFC 8092 §3): three 4-octet fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    /// Global Administrator (an AS).
    pub global_admin: u32,
    /// Local Data Part 1.
    pub local_data_1: u32,
    /// Local Data Part 2.
    pub local_data_2: u32,
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.global_admin, self.local_data_1, self.local_data_2
        )
    }
}
