//! Parse-speed benchmark for `bgp::wire`, side by side with zettabgp (an
//! established Rust BGP parser from crates.io) in the same run.
//!
//! Two streams, built once and parsed many times by both parsers:
//! * **calico**: 100k /26 blocks from 1000 nodes (100 each), packed by
//!   `bgp::wire::pack` into UPDATEs with Calico-like iBGP attributes
//!   (ORIGIN IGP, empty AS_PATH, NEXT_HOP = node, LOCAL_PREF 100);
//! * **full-table**: 100k prefixes of /16../24, 1-4 per UPDATE, with
//!   AS paths of 1-8 4-octet ASes, 0-6 communities, some large communities
//!   and MEDs, as on an eBGP full-table feed.
//!
//! Both parsers frame each message and decode it into owned values; the
//! prefix counts are checked to agree. The two parsers are timed
//! alternately and the best of N runs of each is reported.
//!
//! ```text
//! cargo run --release -p tabby-bgp --example wire_bench            # 30 runs
//! cargo run --release -p tabby-bgp --example wire_bench -- --short  # 3 runs (CI)
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bgp::wire::pack::announce_ipv4;
use bgp::wire::{
    AsPath, Community, Context, Ipv4Prefix, LargeCommunity, Message, Nlri, Origin, PathAttributes,
    decode, frame,
};
use zettabgp::prelude::{BgpMessage, BgpMessageType, BgpSessionParams, BgpTransportMode};

/// Deterministic xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn ctx() -> Context {
    Context {
        four_octet_as: true,
        ..Context::default()
    }
}

fn calico_stream() -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut prefixes = 0;
    for node in 0..1000u32 {
        let attrs = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            next_hop: Some(Ipv4Addr::from_bits(0x0ac8_0000 + node + 1)),
            local_pref: Some(100),
            ..PathAttributes::default()
        };
        let blocks: Vec<_> = (0..100u32)
            .map(|b| {
                let addr = Ipv4Addr::from_bits(0x0a00_0000 | (node * 100 + b) << 6);
                Nlri::new(Ipv4Prefix::new(addr, 26).unwrap())
            })
            .collect();
        prefixes += blocks.len();
        announce_ipv4(&attrs, &blocks, &ctx(), &mut out).unwrap();
    }
    (out, prefixes)
}

fn full_table_stream() -> (Vec<u8>, usize) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::new();
    let mut prefixes = 0;
    while prefixes < 100_000 {
        let path: Vec<u32> = (0..1 + rng.below(8))
            .map(|_| 1 + rng.below(400_000) as u32)
            .collect();
        let communities = (0..rng.below(7))
            .map(|_| Community::new(path[0] as u16, rng.below(1000) as u16))
            .collect();
        let large = if rng.below(4) == 0 {
            vec![LargeCommunity {
                global_admin: path[0],
                local_data_1: 1,
                local_data_2: rng.below(100) as u32,
            }]
        } else {
            Vec::new()
        };
        let attrs = PathAttributes {
            origin: Some(if rng.below(5) == 0 {
                Origin::Incomplete
            } else {
                Origin::Igp
            }),
            as_path: Some(AsPath::sequence(path)),
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
            multi_exit_disc: (rng.below(3) == 0).then(|| rng.below(1000) as u32),
            communities,
            large_communities: large,
            ..PathAttributes::default()
        };
        let nlri: Vec<_> = (0..1 + rng.below(4))
            .map(|_| {
                let len = 16 + rng.below(9) as u8;
                let addr = Ipv4Addr::from_bits((rng.next() >> 32) as u32 | 0x0100_0000);
                Nlri::new(Ipv4Prefix::new(addr, len).unwrap())
            })
            .collect();
        prefixes += nlri.len();
        announce_ipv4(&attrs, &nlri, &ctx(), &mut out).unwrap();
    }
    (out, prefixes)
}

fn parse_tabby(mut buf: &[u8], ctx: &Context) -> usize {
    let mut prefixes = 0;
    while let Ok(Some(n)) = frame(buf, ctx) {
        let (msg, rest) = buf.split_at(n);
        let received = decode(msg, ctx).unwrap();
        if let Message::Update(u) = &received.message {
            prefixes += u.nlri.len();
        }
        black_box(received);
        buf = rest;
    }
    prefixes
}

fn parse_zettabgp(mut buf: &[u8], params: &BgpSessionParams) -> usize {
    let mut prefixes = 0;
    while buf.len() >= 19 {
        let (kind, body_len) = params.decode_message_head(buf).unwrap();
        let (msg, rest) = buf.split_at(19 + body_len);
        if kind == BgpMessageType::Update {
            let mut u = zettabgp::prelude::BgpUpdateMessage::new();
            u.decode_from(params, &msg[19..]).unwrap();
            prefixes += u.updates.len();
            black_box(u);
        }
        buf = rest;
    }
    prefixes
}

/// Times `a` and `b` alternately, `runs` times each, and keeps the best
/// time of each: alternating spreads the machine's noise over both.
fn best_of(
    runs: usize,
    mut a: impl FnMut() -> usize,
    mut b: impl FnMut() -> usize,
) -> ((Duration, usize), (Duration, usize)) {
    let (mut ta, mut tb) = (Duration::MAX, Duration::MAX);
    let (mut na, mut nb) = (0, 0);
    for _ in 0..runs {
        let t = Instant::now();
        na = a();
        ta = ta.min(t.elapsed());
        let t = Instant::now();
        nb = b();
        tb = tb.min(t.elapsed());
    }
    ((ta, na), (tb, nb))
}

fn main() {
    let short = std::env::args().any(|a| a == "--short");
    let runs = if short { 3 } else { 30 };
    let mut params = BgpSessionParams::new(
        64512,
        180,
        BgpTransportMode::IPv4,
        Ipv4Addr::new(10, 200, 0, 4),
        Vec::new(),
    );
    params.has_as32bit = true;
    params.fuzzy_pathid = false;
    println!("bgp::wire parse benchmark, best of {runs} runs (release build)");
    println!(
        "{:<11} {:>8} {:>9} {:>9} {:>12} {:>10} {:>12} {:>10} {:>7}",
        "stream",
        "msgs",
        "prefixes",
        "MB",
        "tabby ns/pfx",
        "tabby MB/s",
        "zetta ns/pfx",
        "zetta MB/s",
        "ratio"
    );
    for (name, (stream, expected)) in [
        ("calico", calico_stream()),
        ("full-table", full_table_stream()),
    ] {
        let ctx = ctx();
        let msgs = {
            let mut n = 0;
            let mut b = &stream[..];
            while let Ok(Some(len)) = frame(b, &ctx) {
                n += 1;
                b = &b[len..];
            }
            n
        };
        let ((t_tabby, n_tabby), (t_zetta, n_zetta)) = best_of(
            runs,
            || parse_tabby(&stream, &ctx),
            || parse_zettabgp(&stream, &params),
        );
        assert_eq!(n_tabby, expected, "tabby prefix count");
        assert_eq!(n_zetta, expected, "zettabgp prefix count");
        let mb = stream.len() as f64 / 1e6;
        let ns = |t: Duration| t.as_nanos() as f64 / expected as f64;
        let mbs = |t: Duration| mb / t.as_secs_f64();
        println!(
            "{name:<11} {msgs:>8} {expected:>9} {mb:>9.2} {:>12.1} {:>10.0} {:>12.1} {:>10.0} {:>7.2}",
            ns(t_tabby),
            mbs(t_tabby),
            ns(t_zetta),
            mbs(t_zetta),
            t_tabby.as_secs_f64() / t_zetta.as_secs_f64(),
        );
    }
    println!("ratio = tabby time / zettabgp time (<= 1.0 means tabby is at least as fast)");
}
