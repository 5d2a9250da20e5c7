//! A fresh capture of BIRD 2, GoBGP and FRR talking to each other decodes
//! completely, and their OPENs are byte for byte the ones committed as
//! golden fixtures (`bgp/tests/fixtures/peers.txt`, checked value by value
//! in `bgp/tests/peer_fixtures.rs`): the fixtures are what these daemons
//! really send.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use bgp::wire::{Context, decode};
use harness::capture::{capture_reference_mesh, hex};
use harness::require_live;

#[test]
fn fresh_capture_decodes_and_matches_the_committed_fixtures() {
    let bins = [
        "bird",
        "birdc",
        "gobgpd",
        "gobgp",
        "/usr/lib/frr/bgpd",
        "vtysh",
        "tshark",
    ];
    if !require_live(
        "fresh_capture_decodes_and_matches_the_committed_fixtures",
        &bins,
    ) {
        return;
    }
    let fixtures = include_str!("../../bgp/tests/fixtures/peers.txt");
    let captured = capture_reference_mesh("realpeers").unwrap();
    assert_eq!(
        captured.len(),
        6,
        "six directions in a three-node mesh: {:?}",
        captured.keys()
    );
    let mut opens = 0;
    for ((from, to), msgs) in &captured {
        for m in msgs {
            let ctx = if m[18] == 1 {
                Context::default()
            } else {
                Context {
                    four_octet_as: true,
                    ..Context::default()
                }
            };
            let r = decode(m, &ctx).unwrap_or_else(|e| panic!("{from} -> {to}: {e}: {}", hex(m)));
            assert!(r.errors.is_empty(), "{from} -> {to}: {:?}", r.errors);
            if m[18] == 1 {
                opens += 1;
                let line = format!("{from} {to} {}", hex(m));
                assert!(
                    fixtures.contains(&line),
                    "OPEN {from} -> {to} differs from the fixture:\n{line}"
                );
            }
        }
    }
    assert_eq!(opens, 6);
}
