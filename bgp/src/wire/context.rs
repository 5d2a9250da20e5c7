//! The negotiated decode/encode context (RFC 4271 §4.2, RFC 5492).
//!
//! Owns what both OPENs decided and the codec must know: 4-octet AS numbers
//! (RFC 6793), ADD-PATH per address family and direction (RFC 7911),
//! extended messages (RFC 8654) and enhanced route refresh (RFC 7313).
//! It is built once, from our OPEN and the peer's, by [`Context::negotiate`],
//! and then passed by reference to every decode and encode call.

use super::capability::{AddPathMode, Afi, Capability, Safi};
use super::header::{MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN};
use super::open::Open;

/// The address families whose NLRI this codec parses (RFC 4760 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// AFI 1, SAFI 1.
    Ipv4Unicast,
    /// AFI 2, SAFI 1.
    Ipv6Unicast,
}

impl Family {
    /// Every family the codec knows.
    pub const ALL: [Family; 2] = [Family::Ipv4Unicast, Family::Ipv6Unicast];

    /// The family for an AFI/SAFI pair, if the codec parses its NLRI.
    pub const fn from_afi_safi(afi: Afi, safi: Safi) -> Option<Self> {
        match (afi, safi) {
            (Afi::IPV4, Safi::UNICAST) => Some(Self::Ipv4Unicast),
            (Afi::IPV6, Safi::UNICAST) => Some(Self::Ipv6Unicast),
            _ => None,
        }
    }

    /// The AFI of this family.
    pub const fn afi(self) -> Afi {
        match self {
            Self::Ipv4Unicast => Afi::IPV4,
            Self::Ipv6Unicast => Afi::IPV6,
        }
    }

    /// The SAFI of this family.
    pub const fn safi(self) -> Safi {
        Safi::UNICAST
    }

    const fn bit(self) -> u8 {
        match self {
            Self::Ipv4Unicast => 1,
            Self::Ipv6Unicast => 2,
        }
    }
}

/// A small set of [`Family`] values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Families(u8);

impl Families {
    /// No family.
    pub const NONE: Families = Families(0);

    /// Whether `family` is in the set.
    pub const fn contains(self, family: Family) -> bool {
        self.0 & family.bit() != 0
    }

    /// Adds `family` to the set.
    pub fn insert(&mut self, family: Family) {
        self.0 |= family.bit();
    }

    /// Removes `family` from the set.
    pub fn remove(&mut self, family: Family) {
        self.0 &= !family.bit();
    }

    /// The set holding the given families.
    pub fn of(families: &[Family]) -> Self {
        let mut set = Self::NONE;
        for f in families {
            set.insert(*f);
        }
        set
    }
}

/// ADD-PATH as negotiated (RFC 7911 §4): per family and per direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AddPath {
    /// Families whose NLRI we receive with a Path Identifier.
    pub receive: Families,
    /// Families whose NLRI we send with a Path Identifier.
    pub send: Families,
}

/// What the codec must know about a session, negotiated from both OPENs.
///
/// [`Context::default`] is the state before the OPENs are exchanged: 2-octet
/// AS numbers, no ADD-PATH, 4096-octet messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Context {
    /// Both sides advertised the 4-octet AS capability (RFC 6793 §3):
    /// AS_PATH and AGGREGATOR carry 4-octet AS numbers.
    pub four_octet_as: bool,
    /// Both sides advertised the extended message capability (RFC 8654 §3):
    /// messages other than OPEN and KEEPALIVE may be up to 65535 octets.
    pub extended_message: bool,
    /// Both sides advertised enhanced route refresh (RFC 7313 §3).
    pub enhanced_route_refresh: bool,
    /// Path Identifiers per family and direction (RFC 7911).
    pub add_path: AddPath,
}

impl Context {
    /// The largest Length a message may have on this session.
    pub const fn max_message_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }

    /// The context the peer uses for the same session: send and receive
    /// swapped. What we encode with `ctx`, the peer decodes with
    /// `ctx.mirror()`.
    pub const fn mirror(&self) -> Context {
        Context {
            add_path: AddPath {
                receive: self.add_path.send,
                send: self.add_path.receive,
            },
            ..*self
        }
    }

    /// Whether NLRI of `family` we receive carry a Path Identifier.
    pub const fn add_path_receive(&self, family: Family) -> bool {
        self.add_path.receive.contains(family)
    }

    /// Whether NLRI of `family` we send carry a Path Identifier.
    pub const fn add_path_send(&self, family: Family) -> bool {
        self.add_path.send.contains(family)
    }

    /// Builds the context from our OPEN (`local`) and the peer's (`remote`).
    ///
    /// A capability counts when both advertised it (RFC 5492 §3). ADD-PATH
    /// is decided per family (RFC 7911 §4): we receive Path Identifiers when
    /// we advertised Receive and the peer advertised Send, and the other way
    /// round for sending.
    pub fn negotiate(local: &Open, remote: &Open) -> Context {
        let both = |pred: fn(&Capability) -> bool| {
            local.capabilities.iter().any(pred) && remote.capabilities.iter().any(pred)
        };
        let mut add_path = AddPath::default();
        for family in Family::ALL {
            let ours = add_path_mode(local, family);
            let theirs = add_path_mode(remote, family);
            if ours.is_some_and(AddPathMode::receives) && theirs.is_some_and(AddPathMode::sends) {
                add_path.receive.insert(family);
            }
            if ours.is_some_and(AddPathMode::sends) && theirs.is_some_and(AddPathMode::receives) {
                add_path.send.insert(family);
            }
        }
        Context {
            four_octet_as: both(|c| matches!(c, Capability::FourOctetAs(_))),
            extended_message: both(|c| matches!(c, Capability::ExtendedMessage)),
            enhanced_route_refresh: both(|c| matches!(c, Capability::EnhancedRouteRefresh)),
            add_path,
        }
    }
}

/// The ADD-PATH Send/Receive value an OPEN advertises for `family`.
fn add_path_mode(open: &Open, family: Family) -> Option<AddPathMode> {
    open.capabilities.iter().find_map(|c| match c {
        Capability::AddPath(entries) => entries
            .iter()
            .find(|e| e.afi == family.afi() && e.safi == family.safi())
            .map(|e| e.mode),
        _ => None,
    })
}
