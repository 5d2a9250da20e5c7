//! Golden fixtures from real peers: BGP messages that BIRD 2 (10.200.0.1),
//! GoBGP (10.200.0.2) and FRR (10.200.0.3) sent each other in the lab,
//! captured with tshark by `cargo run -p tabby-tests --bin capture-fixtures`
//! (see `fixtures/peers.txt`). Each decodes to the values written out here,
//! and encoding the values gives the captured bytes back wherever the
//! sender's encoding is the canonical one.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)] // tests

use std::net::Ipv4Addr;

use bgp::wire::{Capability, Context, Message, Origin, decode, encode};

const BIRD: &str = "10.200.0.1";
const GOBGP: &str = "10.200.0.2";
const FRR: &str = "10.200.0.3";

struct Captured {
    from: &'static str,
    to: &'static str,
    bytes: Vec<u8>,
}

fn captured() -> Vec<Captured> {
    include_str!("fixtures/peers.txt")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split_whitespace();
            let (from, to, hex) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            Captured { from, to, bytes }
        })
        .collect()
}

/// Every session in the lab negotiated 4-octet AS numbers and nothing else
/// that changes the codec.
fn ctx(bytes: &[u8]) -> Context {
    if bytes[18] == 1 {
        Context::default()
    } else {
        Context {
            four_octet_as: true,
            ..Context::default()
        }
    }
}

fn decoded(c: &Captured) -> Message {
    let r =
        decode(&c.bytes, &ctx(&c.bytes)).unwrap_or_else(|e| panic!("{} -> {}: {e}", c.from, c.to));
    assert!(
        r.errors.is_empty(),
        "{} -> {}: {:?}",
        c.from,
        c.to,
        r.errors
    );
    r.message
}

fn opens_from(from: &str) -> Vec<bgp::wire::Open> {
    captured()
        .iter()
        .filter(|c| c.from == from)
        .filter_map(|c| match decoded(c) {
            Message::Open(o) => Some(o),
            _ => None,
        })
        .collect()
}

fn updates_from(from: &str) -> Vec<bgp::wire::Update> {
    captured()
        .iter()
        .filter(|c| c.from == from)
        .filter_map(|c| match decoded(c) {
            Message::Update(u) => Some(u),
            _ => None,
        })
        .collect()
}

#[test]
fn every_captured_message_decodes_and_every_kind_is_there() {
    let all = captured();
    assert!(all.len() >= 20, "{} messages", all.len());
    for from in [BIRD, GOBGP, FRR] {
        let kinds: Vec<u8> = all
            .iter()
            .filter(|c| c.from == from)
            .map(|c| c.bytes[18])
            .collect();
        for kind in [1, 2, 4] {
            assert!(
                kinds.contains(&kind),
                "{from} sent no message of type {kind}"
            );
        }
    }
    for c in &all {
        decoded(c);
    }
}

#[test]
fn opens_carry_each_daemons_as_identifier_hold_time_and_capabilities() {
    let ipv4 = Capability::Multiprotocol {
        afi: bgp::wire::Afi::IPV4,
        safi: bgp::wire::Safi::UNICAST,
    };
    for (from, id, hold) in [
        (BIRD, [10, 200, 0, 1], 240),
        (GOBGP, [10, 200, 0, 2], 90),
        (FRR, [10, 200, 0, 3], 180),
    ] {
        let opens = opens_from(from);
        assert_eq!(opens.len(), 2, "{from}: one OPEN per session");
        for o in opens {
            assert_eq!(o.asn(), 64512, "{from}");
            assert_eq!(o.my_as, 64512, "{from}");
            assert_eq!(o.bgp_identifier, Ipv4Addr::from(id), "{from}");
            assert_eq!(o.hold_time, hold, "{from}");
            assert!(
                o.capabilities.contains(&ipv4),
                "{from}: {:?}",
                o.capabilities
            );
            assert!(
                o.capabilities.contains(&Capability::FourOctetAs(64512)),
                "{from}"
            );
            assert!(o.capabilities.contains(&Capability::RouteRefresh), "{from}");
        }
    }
    // FRR names itself (FQDN capability) with the config's hostname.
    let frr = &opens_from(FRR)[0];
    assert!(
        frr.capabilities
            .iter()
            .any(|c| matches!(c, Capability::Fqdn { hostname, .. } if hostname == b"n3")),
        "{:?}",
        frr.capabilities
    );
}

#[test]
fn updates_carry_each_daemons_route_and_attributes() {
    for (from, prefix, next_hop) in [
        (BIRD, "172.31.1.0/24", [10, 200, 0, 1]),
        (GOBGP, "172.31.2.0/24", [10, 200, 0, 2]),
        (FRR, "172.31.3.0/24", [10, 200, 0, 3]),
    ] {
        let ups = updates_from(from);
        let with = ups
            .iter()
            .find(|u| u.nlri.iter().any(|n| n.prefix.to_string() == prefix))
            .unwrap_or_else(|| panic!("{from} never announced {prefix}: {ups:?}"));
        let a = &with.attributes;
        assert_eq!(a.next_hop, Some(Ipv4Addr::from(next_hop)), "{from}");
        assert!(
            a.as_path.as_ref().is_some_and(|p| p.segments.is_empty()),
            "{from}: iBGP-originated"
        );
        assert_eq!(a.local_pref, Some(100), "{from}");
        // BIRD's static route is IGP; GoBGP's CLI route is INCOMPLETE; FRR's
        // `network` route is IGP.
        let origin = if from == GOBGP {
            Origin::Incomplete
        } else {
            Origin::Igp
        };
        assert_eq!(a.origin, Some(origin), "{from}");
        // End-of-RIB: an UPDATE with nothing in it, BIRD and FRR after
        // their table.
        if from != GOBGP {
            assert!(
                ups.iter().any(|u| u.end_of_rib_family().is_some()),
                "{from}: no End-of-RIB"
            );
        }
    }
    let rich = updates_from(GOBGP)
        .into_iter()
        .find(|u| {
            u.nlri
                .iter()
                .any(|n| n.prefix.to_string() == "172.31.20.0/24")
        })
        .unwrap();
    let a = &rich.attributes;
    assert_eq!(a.multi_exit_disc, Some(10));
    let communities: Vec<u32> = a.communities.iter().map(|c| c.0).collect();
    assert_eq!(
        communities,
        [64512 << 16 | 100, 0xFFFF_FF01],
        "64512:100 and NO_EXPORT"
    );
    assert_eq!(a.large_communities.len(), 1);
    let lc = a.large_communities[0];
    assert_eq!(
        (lc.global_admin, lc.local_data_1, lc.local_data_2),
        (64512, 1, 2)
    );
}

/// Encoding the decoded value gives the captured bytes, except where the
/// sender chose one of two equally valid forms that tabby does not use:
/// FRR puts each capability in an optional parameter of its own (RFC 5492
/// §4 allows one parameter for all, which tabby sends), and sets the
/// Extended Length flag on every attribute, however short (RFC 4271 §4.3;
/// tabby sets it only on values over 255 octets). For those messages the
/// value still survives the round trip and tabby's form is shorter.
#[test]
fn encoding_gives_the_captured_bytes_back_where_canonical() {
    let mut identical = 0;
    for c in captured() {
        let m = decoded(&c);
        let ctx = ctx(&c.bytes);
        let mut out = Vec::new();
        encode(&m, &ctx, &mut out).unwrap();
        if out == c.bytes {
            identical += 1;
            continue;
        }
        let frr_form = matches!(&m, Message::Update(_) | Message::Open(_)) && c.from == FRR;
        assert!(
            frr_form,
            "{} -> {} not canonical?\n got {out:02x?}\nwant {:02x?}",
            c.from, c.to, c.bytes
        );
        assert_eq!(
            decode(&out, &ctx).unwrap().message,
            m,
            "{} -> {}: value changed",
            c.from,
            c.to
        );
        assert!(out.len() < c.bytes.len(), "tabby's form is the compact one");
    }
    assert!(
        identical >= 16,
        "only {identical} messages re-encoded byte for byte"
    );
}
