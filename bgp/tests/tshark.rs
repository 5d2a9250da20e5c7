//! Independent decoder: tshark decodes what our encoder writes.
//!
//! A broad set of messages is encoded, wrapped in fake TCP segments to port
//! 179 with text2pcap, and dissected by tshark offline (lab-facts §6). Every
//! field tshark reports must agree with the value we encoded, and tshark
//! must report no expert info of the Malformed group or of Error severity.
//! Without tshark the test prints `SKIP` to stderr, except under `CI`, where
//! a missing decoder is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;

use bgp::wire::capability::AddPathMode;
use bgp::wire::*;

/// The fields compared, in `-e` order.
const FIELDS: &[&str] = &[
    "bgp.type",
    "bgp.length",
    "bgp.open.myas",
    "bgp.open.holdtime",
    "bgp.open.identifier",
    "bgp.cap.type",
    "bgp.cap.4as",
    "bgp.cap.mp.afi",
    "bgp.cap.gr.timers.restart_time",
    "bgp.cap.ap.sendreceive",
    "bgp.cap.orf.fqdn.hostname",
    "bgp.withdrawn_prefix",
    "bgp.nlri_prefix",
    "bgp.nlri_path_id",
    "bgp.update.path_attribute.type_code",
    "bgp.update.path_attribute.origin",
    "bgp.update.path_attribute.next_hop",
    "bgp.update.path_attribute.multi_exit_disc",
    "bgp.update.path_attribute.local_pref",
    "bgp.update.path_attribute.as_path_segment.as4",
    "bgp.update.path_attribute.as_path_segment.as2",
    "bgp.update.path_attribute.aggregator_as",
    "bgp.update.path_attribute.community_as",
    "bgp.update.path_attribute.community_value",
    "bgp.update.path_attribute.originator_id",
    "bgp.path_attribute.cluster_id",
    "bgp.large_communities.ga",
    "bgp.update.path_attribute.mp_reach_nlri.afi",
    "bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6",
    "bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6.link_local",
    "bgp.mp_reach_nlri_ipv6_prefix",
    "bgp.mp_unreach_nlri_ipv6_prefix",
    "bgp.notify.major_error",
    "bgp.notify.communication",
    "bgp.route_refresh.afi",
    "bgp.route_refresh.subtype",
    "bgp.route_refresh.safi",
    "_ws.expert.message",
    "_ws.expert.group",
    "_ws.expert.severity",
];

type Fields = BTreeMap<&'static str, Vec<String>>;

fn join<T: ToString>(v: impl IntoIterator<Item = T>) -> Vec<String> {
    v.into_iter().map(|x| x.to_string()).collect()
}

/// What tshark should report for `m`, encoded as `len` octets.
fn expected(m: &Message, ctx: &Context, len: usize) -> Fields {
    let mut f = Fields::new();
    f.insert("bgp.type", vec![m.message_type().code().to_string()]);
    f.insert("bgp.length", vec![len.to_string()]);
    match m {
        Message::Open(o) => {
            f.insert("bgp.open.myas", join([o.my_as]));
            f.insert("bgp.open.holdtime", join([o.hold_time]));
            f.insert("bgp.open.identifier", join([o.bgp_identifier]));
            f.insert(
                "bgp.cap.type",
                join(o.capabilities.iter().map(Capability::code)),
            );
            for c in &o.capabilities {
                match c {
                    Capability::FourOctetAs(a) => {
                        f.entry("bgp.cap.4as").or_default().push(a.to_string())
                    }
                    Capability::Multiprotocol { afi, .. } => f
                        .entry("bgp.cap.mp.afi")
                        .or_default()
                        .push(afi.0.to_string()),
                    Capability::GracefulRestart(gr) => f
                        .entry("bgp.cap.gr.timers.restart_time")
                        .or_default()
                        .push(gr.restart_time.to_string()),
                    Capability::AddPath(v) => f
                        .entry("bgp.cap.ap.sendreceive")
                        .or_default()
                        .extend(v.iter().map(|e| match e.mode {
                            AddPathMode::Receive => "1".to_string(),
                            AddPathMode::Send => "2".into(),
                            AddPathMode::Both => "3".into(),
                        })),
                    Capability::Fqdn { hostname, .. } => f
                        .entry("bgp.cap.orf.fqdn.hostname")
                        .or_default()
                        .push(String::from_utf8(hostname.clone()).unwrap()),
                    _ => {}
                }
            }
        }
        Message::Update(u) => update_fields(u, ctx, &mut f),
        Message::Notification(n) => {
            f.insert("bgp.notify.major_error", join([n.code]));
            if let Some(text) = n.shutdown_communication() {
                f.insert("bgp.notify.communication", vec![text.to_string()]);
            }
        }
        Message::RouteRefresh(r) => {
            f.insert("bgp.route_refresh.afi", join([r.afi.0]));
            f.insert("bgp.route_refresh.subtype", join([r.subtype.code()]));
            f.insert("bgp.route_refresh.safi", join([r.safi.0]));
        }
        Message::Keepalive => {}
    }
    f.retain(|_, v| !v.is_empty());
    f
}

fn update_fields(u: &Update, ctx: &Context, f: &mut Fields) {
    let a = &u.attributes;
    f.insert(
        "bgp.withdrawn_prefix",
        join(u.withdrawn.iter().map(|n| n.prefix.addr())),
    );
    f.insert(
        "bgp.nlri_prefix",
        join(u.nlri.iter().map(|n| n.prefix.addr())),
    );
    if ctx.add_path_send(Family::Ipv4Unicast) {
        let ids = u
            .withdrawn
            .iter()
            .chain(&u.nlri)
            .map(|n| n.path_id.unwrap_or(0));
        f.insert("bgp.nlri_path_id", join(ids));
    }
    // The type codes in wire order, as our canonical encoding writes them.
    let mut codes = Vec::new();
    if a.mp_unreach.is_some() {
        codes.push(15u8);
    }
    if a.mp_reach.is_some() {
        codes.push(14);
    }
    let four = ctx.four_octet_as;
    let needs4 = a.as_path.as_ref().is_some_and(|p| {
        p.segments
            .iter()
            .any(|s| s.asns.iter().any(|x| *x > 0xffff))
    });
    let present = [
        (1, a.origin.is_some()),
        (2, a.as_path.is_some()),
        (3, a.next_hop.is_some()),
        (4, a.multi_exit_disc.is_some()),
        (5, a.local_pref.is_some()),
        (6, a.atomic_aggregate),
        (7, a.aggregator.is_some()),
        (8, !a.communities.is_empty()),
        (9, a.originator_id.is_some()),
        (10, !a.cluster_list.is_empty()),
        (16, !a.extended_communities.is_empty()),
        (17, !four && needs4),
        (
            18,
            !four && a.aggregator.is_some_and(|g| g.asn > 0xffff || needs4),
        ),
        (32, !a.large_communities.is_empty()),
    ];
    codes.extend(present.iter().filter(|(_, p)| *p).map(|(c, _)| *c));
    f.insert("bgp.update.path_attribute.type_code", join(codes));
    f.insert(
        "bgp.update.path_attribute.origin",
        join(a.origin.map(|o| o.code())),
    );
    f.insert("bgp.update.path_attribute.next_hop", join(a.next_hop));
    f.insert(
        "bgp.update.path_attribute.multi_exit_disc",
        join(a.multi_exit_disc),
    );
    f.insert("bgp.update.path_attribute.local_pref", join(a.local_pref));
    if let Some(p) = &a.as_path {
        let asns: Vec<u32> = p.segments.iter().flat_map(|s| s.asns.clone()).collect();
        if four {
            f.insert("bgp.update.path_attribute.as_path_segment.as4", join(asns));
        } else {
            let two = asns.iter().map(|x| if *x > 0xffff { 23456 } else { *x });
            f.insert("bgp.update.path_attribute.as_path_segment.as2", join(two));
            if needs4 {
                f.insert("bgp.update.path_attribute.as_path_segment.as4", join(asns));
            }
        }
    }
    if let Some(g) = a.aggregator {
        let mut v = Vec::new();
        if four {
            v.push(g.asn);
        } else if g.asn > 0xffff || needs4 {
            v.extend([23456, g.asn]);
        } else {
            v.push(g.asn);
        }
        f.insert("bgp.update.path_attribute.aggregator_as", join(v));
    }
    f.insert(
        "bgp.update.path_attribute.community_as",
        join(
            a.communities
                .iter()
                .filter(|c| c.well_known_name().is_none())
                .map(|c| c.asn()),
        ),
    );
    f.insert(
        "bgp.update.path_attribute.community_value",
        join(
            a.communities
                .iter()
                .filter(|c| c.well_known_name().is_none())
                .map(|c| c.value()),
        ),
    );
    f.insert(
        "bgp.update.path_attribute.originator_id",
        join(a.originator_id),
    );
    f.insert("bgp.path_attribute.cluster_id", join(a.cluster_list.iter()));
    f.insert(
        "bgp.large_communities.ga",
        join(a.large_communities.iter().map(|c| c.global_admin)),
    );
    if let Some(MpReach::Ipv6Unicast { next_hop, nlri }) = &a.mp_reach {
        f.insert(
            "bgp.update.path_attribute.mp_reach_nlri.afi",
            vec!["2".into()],
        );
        if let NextHop::V6 { global, link_local } = next_hop {
            f.insert(
                "bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6",
                join([global]),
            );
            f.insert(
                "bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6.link_local",
                join(link_local.iter()),
            );
        }
        f.insert(
            "bgp.mp_reach_nlri_ipv6_prefix",
            join(nlri.iter().map(|n| n.prefix.addr())),
        );
    }
    if let Some(MpUnreach::Ipv6Unicast(nlri)) = &a.mp_unreach {
        f.insert(
            "bgp.mp_unreach_nlri_ipv6_prefix",
            join(nlri.iter().map(|n| n.prefix.addr())),
        );
    }
}

/// Writes one text2pcap packet (offset 000000 starts it) per message.
fn hexdump(messages: &[Vec<u8>]) -> String {
    let mut s = String::new();
    for m in messages {
        for (i, chunk) in m.chunks(16).enumerate() {
            s.push_str(&format!("{:06x}", i * 16));
            for b in chunk {
                s.push_str(&format!(" {b:02x}"));
            }
            s.push('\n');
        }
    }
    s
}

fn skip_or_fail(why: &str) {
    assert!(std::env::var_os("CI").is_none(), "CI must not skip: {why}");
    let _ = writeln!(
        std::io::stderr(),
        "SKIP tshark_agrees_with_our_encoder: {why}"
    );
}

#[test]
fn tshark_agrees_with_our_encoder() {
    for tool in ["tshark", "text2pcap"] {
        if Command::new(tool).arg("--version").output().is_err() {
            return skip_or_fail(&format!("{tool} not found"));
        }
    }
    let corpus = support::corpus::corpus();
    let mut encoded = Vec::new();
    for (ctx, m) in &corpus {
        let mut out = Vec::new();
        encode(m, ctx, &mut out).unwrap();
        // Our own decoder agrees first.
        assert_eq!(&decode(&out, &ctx.mirror()).unwrap().message, m);
        encoded.push(out);
    }
    // Removed when the test ends, passed or failed.
    let dir = tempfile::Builder::new()
        .prefix("tabby-tshark-")
        .tempdir()
        .unwrap();
    let dump = dir.path().join("messages.txt");
    let pcap = dir.path().join("messages.pcap");
    std::fs::write(&dump, hexdump(&encoded)).unwrap();
    let st = Command::new("text2pcap")
        .args(["-q", "-T", "40000,179"])
        .arg(&dump)
        .arg(&pcap)
        .status()
        .unwrap();
    assert!(st.success(), "text2pcap failed");
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(&pcap);
    cmd.args(["-o", "tcp.desegment_tcp_streams:FALSE"]);
    cmd.args([
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), corpus.len(), "one packet per message:\n{text}");
    for (i, ((ctx, m), line)) in corpus.iter().zip(&lines).enumerate() {
        let cols: Vec<&str> = line.split('|').collect();
        assert_eq!(cols.len(), FIELDS.len(), "{line}");
        let mut got = Fields::new();
        for (name, col) in FIELDS.iter().zip(&cols) {
            if !col.is_empty() {
                got.insert(name, col.split(',').map(str::to_string).collect());
            }
        }
        let expert: Vec<String> = [
            "_ws.expert.message",
            "_ws.expert.group",
            "_ws.expert.severity",
        ]
        .iter()
        .filter_map(|k| got.remove(k).map(|v| format!("{k}={v:?}")))
        .collect();
        // Group 0x07000000 is Malformed; severity 0x00800000 is Error.
        let bad = cols
            .iter()
            .any(|c| c.contains("117440512") || c.contains("8388608"));
        assert!(!bad, "message {i} ({m:?}): tshark expert info {expert:?}");
        let want = expected(m, ctx, encoded[i].len());
        assert_eq!(got, want, "message {i}: {m:?}\nexpert: {expert:?}");
    }
}
