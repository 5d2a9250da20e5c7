//! RIB pipeline benchmark: N routes from an eBGP peer through Adj-RIB-In,
//! import policy, the decision process (against a second, worse copy of
//! every route from an iBGP peer), export to an iBGP peer's Adj-RIB-Out
//! and UPDATE packing. Prints routes/s per stage and, as the reference
//! measured in the same run, the cost of only decoding the same UPDATEs.
//! Then the first table and its withdrawal alone, each the median of 15
//! fresh RIBs (one pass swings ±25 % on a VM), and the same table
//! announced again into the emptied RIB (a long-running daemon's case:
//! its tables keep their room): the figures to compare two builds by,
//! alternating runs of each.
//!
//! `cargo run --release -p tabby-bgp --example rib_bench -- 100000`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use bgp::rib::{DecisionConfig, LocalConfig, PeerConfig, Policy, PrefixSet, Rib};
use bgp::wire::pack::{announce_ipv4, withdraw_ipv4};
use bgp::wire::{
    AsPath, Context, Families, Family, Ipv4Prefix, Message, Nlri, Origin, PathAttributes, Update,
    decode, frame,
};

fn updates(n: u32, path: &[u32], next_hop: Ipv4Addr, ctx: &Context) -> (Vec<u8>, Vec<Update>) {
    let nlri: Vec<_> = (0..n).map(nlri_of).collect();
    let mut bytes = Vec::new();
    // Four attribute sets, as from a few origin ASes.
    for (k, chunk) in nlri.chunks(nlri.len().div_ceil(4).max(1)).enumerate() {
        let mut p = path.to_vec();
        p.push(65100 + u32::try_from(k).unwrap());
        let attrs = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(p)),
            next_hop: Some(next_hop),
            ..PathAttributes::default()
        };
        announce_ipv4(&attrs, chunk, ctx, &mut bytes).unwrap();
    }
    (bytes.clone(), decode_all(&bytes, ctx))
}

fn decode_all(mut bytes: &[u8], ctx: &Context) -> Vec<Update> {
    let mut out = Vec::new();
    while let Ok(Some(n)) = frame(bytes, ctx) {
        if let Ok(r) = decode(&bytes[..n], ctx)
            && let Message::Update(u) = r.message
        {
            out.push(u);
        }
        bytes = &bytes[n..];
    }
    out
}

/// The median of `v` (not empty).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The first table and its withdrawal alone, into `REPEATS` fresh RIBs
/// with three established iBGP peers, the table from the first (as
/// bench-convergence's receiver, which peers with the origin and the two
/// other receivers): medians in seconds.
/// One pass swings ±25 % on a VM; a median of many moves much less.
fn first_table_repeated(n: u32, ctx: &Context) -> (f64, f64, f64) {
    const REPEATS: usize = 15;
    let peer: IpAddr = "192.0.2.2".parse().unwrap();
    let (_, announce) = updates(n, &[65001], Ipv4Addr::new(192, 0, 2, 2), ctx);
    // Withdrawn in another order than announced (a peer's table order
    // need not be its announcement order), so the refill meets a table
    // that was emptied out of order.
    let mut order: Vec<u32> = (0..n).collect();
    order.sort_by_key(|i| u64::from(*i).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32);
    let nlri: Vec<_> = order.into_iter().map(nlri_of).collect();
    let mut bytes = Vec::new();
    withdraw_ipv4(&nlri, ctx, &mut bytes).unwrap();
    let withdraw = decode_all(&bytes, ctx);
    let (mut first, mut gone, mut again) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..REPEATS {
        let mut rib = Rib::new(local());
        let v4 = Families::of(&[Family::Ipv4Unicast]);
        for (i, p) in [
            peer,
            "192.0.2.3".parse().unwrap(),
            "192.0.2.4".parse().unwrap(),
        ]
        .into_iter()
        .enumerate()
        {
            rib.set_peer(PeerConfig::new(p, 64512));
            let id = Ipv4Addr::new(10, 0, 0, 2 + u8::try_from(i).unwrap());
            rib.peer_up(p, id, v4, Families::NONE).unwrap();
        }
        let t0 = Instant::now();
        let added: usize = announce
            .iter()
            .map(|u| rib.receive(&peer, u).unwrap().len())
            .sum();
        first.push(t0.elapsed().as_secs_f64());
        let t0 = Instant::now();
        let removed: usize = withdraw
            .iter()
            .map(|u| rib.receive(&peer, u).unwrap().len())
            .sum();
        gone.push(t0.elapsed().as_secs_f64());
        assert_eq!((added, removed), (n as usize, n as usize));
        let t0 = Instant::now();
        let refilled: usize = announce
            .iter()
            .map(|u| rib.receive(&peer, u).unwrap().len())
            .sum();
        again.push(t0.elapsed().as_secs_f64());
        assert_eq!(refilled, n as usize);
    }
    (median(first), median(gone), median(again))
}

fn nlri_of(i: u32) -> Nlri<Ipv4Prefix> {
    Nlri::new(Ipv4Prefix::new(Ipv4Addr::from_bits(0x0a00_0000 | i << 6), 26).unwrap())
}

fn local() -> LocalConfig {
    LocalConfig {
        asn: 64512,
        router_id: Ipv4Addr::new(10, 0, 0, 1),
        cluster_id: None,
        decision: DecisionConfig::default(),
    }
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let ctx = Context {
        four_octet_as: true,
        ..Context::default()
    };
    let tor: IpAddr = "198.51.100.1".parse().unwrap();
    let rr: IpAddr = "192.0.2.2".parse().unwrap();
    let node: IpAddr = "192.0.2.3".parse().unwrap();
    let mut rib = Rib::new(local());
    let mut t = PeerConfig::new(tor, 65001);
    t.import = Some(Policy::only(
        PrefixSet::parse(["10.0.0.0/8 le 32"]).unwrap(),
    ));
    t.export = Some(Policy::reject_all());
    rib.set_peer(t);
    rib.set_peer(PeerConfig::new(rr, 64512));
    rib.set_peer(PeerConfig::new(node, 64512));
    let v4 = Families::of(&[Family::Ipv4Unicast]);
    rib.peer_up(tor, Ipv4Addr::new(10, 9, 9, 9), v4, Families::NONE)
        .unwrap();
    rib.peer_up(rr, Ipv4Addr::new(10, 0, 0, 2), v4, Families::NONE)
        .unwrap();
    rib.peer_up(node, Ipv4Addr::new(10, 0, 0, 3), v4, Families::NONE)
        .unwrap();

    let (tor_bytes, tor_updates) = updates(n, &[65001], Ipv4Addr::new(198, 51, 100, 1), &ctx);
    let (_, rr_updates) = updates(n, &[65001, 65002], Ipv4Addr::new(192, 0, 2, 2), &ctx);

    let t0 = Instant::now();
    let decoded = decode_all(&tor_bytes, &ctx);
    let decode_s = t0.elapsed().as_secs_f64();
    assert_eq!(decoded.len(), tor_updates.len());

    let t0 = Instant::now();
    let mut changes = 0;
    for u in &rr_updates {
        changes += rib.receive(&rr, u).unwrap().len();
    }
    let first_s = t0.elapsed().as_secs_f64();
    for u in &tor_updates {
        changes += rib.receive(&tor, u).unwrap().len();
    }
    let receive_s = t0.elapsed().as_secs_f64();
    assert_eq!(rib.loc_rib().len(), n as usize);

    let t0 = Instant::now();
    let out = rib.flush(&node, &ctx).unwrap();
    let flush_s = t0.elapsed().as_secs_f64();
    assert_eq!(out.announced, n as usize);

    let routes = f64::from(n) * 2.0;
    println!("rib_bench: {n} prefixes, 2 paths each ({routes} routes), 4 attribute sets per peer");
    println!(
        "  decode only (reference): {:>10.0} routes/s",
        f64::from(n) / decode_s
    );
    println!(
        "  Adj-RIB-In + import + decision + Adj-RIB-Out: {:>10.0} routes/s ({changes} best-path changes)",
        routes / receive_s
    );
    println!(
        "  of which the first table (iBGP, into an empty Loc-RIB, as bench-convergence's receive): {:>10.0} routes/s",
        f64::from(n) / first_s
    );
    println!(
        "  UPDATE generation: {:>10.0} routes/s ({} UPDATEs, {} octets)",
        f64::from(n) / flush_s,
        out.messages,
        out.bytes.len()
    );
    println!(
        "  end to end: {:>10.0} routes/s; ratio to decode only: {:.1}x",
        routes / (receive_s + flush_s),
        (receive_s + flush_s) / (decode_s * 2.0)
    );
    println!("  attribute sets interned: {}", rib.attribute_sets());
    let (first, gone, again) = first_table_repeated(n, &ctx);
    println!(
        "  first table alone, median of 15 fresh RIBs: {:.1} ms ({:.0} routes/s); its withdrawal: {:.1} ms ({:.0} routes/s); announced again: {:.1} ms",
        first * 1e3,
        f64::from(n) / first,
        gone * 1e3,
        f64::from(n) / gone,
        again * 1e3
    );
}
