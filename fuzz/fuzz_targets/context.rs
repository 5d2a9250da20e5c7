//! The decode context, taken from the input's first octet so that every
//! target explores all negotiated combinations: bit 0 4-octet AS, bit 1
//! extended message, bit 2 enhanced route refresh, bits 3-4 ADD-PATH
//! receive (IPv4, IPv6), bits 5-6 ADD-PATH send (IPv4, IPv6).

use bgp::wire::{AddPath, Context, Families, Family};

fn families(bits: u8) -> Families {
    let mut f = Families::NONE;
    if bits & 1 != 0 {
        f.insert(Family::Ipv4Unicast);
    }
    if bits & 2 != 0 {
        f.insert(Family::Ipv6Unicast);
    }
    f
}

/// Splits `data` into a context and the rest.
pub fn split(data: &[u8]) -> Option<(Context, &[u8])> {
    let (&b, rest) = data.split_first()?;
    let ctx = Context {
        four_octet_as: b & 1 != 0,
        extended_message: b & 2 != 0,
        enhanced_route_refresh: b & 4 != 0,
        add_path: AddPath {
            receive: families(b >> 3),
            send: families(b >> 5),
        },
    };
    Some((ctx, rest))
}
