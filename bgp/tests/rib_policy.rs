//! Policy values: prefix ranges as operators write them, first-match rule
//! order, modifications, and the agent's two rules ("accept only prefixes
//! inside enabled IP pools, never our own blocks or a default route";
//! "export only our blocks") applied through the RIB.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::borrow::Cow;
use std::net::Ipv4Addr;

use bgp::rib::policy::PolicyParseError;
use bgp::rib::*;
use bgp::wire::*;

fn p(s: &str) -> IpPrefix {
    s.parse().unwrap()
}

#[test]
fn prefix_ranges_parse_and_match_like_bird_and_frr() {
    let le: PrefixRange = "10.0.0.0/8 le 26".parse().unwrap();
    assert!(le.matches(&p("10.0.0.0/8")));
    assert!(le.matches(&p("10.1.2.64/26")));
    assert!(!le.matches(&p("10.1.2.64/27")));
    assert!(!le.matches(&p("11.0.0.0/8")));
    assert!(!le.matches(&p("0.0.0.0/0")));
    let ge: PrefixRange = "10.0.0.0/8 ge 24 le 28".parse().unwrap();
    assert!(!ge.matches(&p("10.1.0.0/16")));
    assert!(ge.matches(&p("10.1.2.0/24")));
    assert!(ge.matches(&p("10.1.2.16/28")));
    let exact: PrefixRange = "fd00::/48".parse().unwrap();
    assert!(exact.matches(&p("fd00::/48")));
    assert!(!exact.matches(&p("fd00::/64")));
    assert!(!exact.matches(&p("10.0.0.0/8")), "families never mix");
    let ge_only: PrefixRange = "fd00::/48 ge 120".parse().unwrap();
    assert!(ge_only.matches(&p("fd00::100/128")));
}

#[test]
fn bad_prefix_ranges_are_refused_with_a_reason() {
    let err = |s: &str| s.parse::<PrefixRange>().unwrap_err();
    assert!(matches!(err("10.0.0.1/8"), PolicyParseError::Prefix(_)));
    assert!(matches!(err("10.0.0.0/33"), PolicyParseError::Prefix(_)));
    assert!(matches!(err(""), PolicyParseError::Prefix(_)));
    assert!(matches!(err("10.0.0.0/8 lt 9"), PolicyParseError::Range(_)));
    assert!(matches!(err("10.0.0.0/8 le"), PolicyParseError::Range(_)));
    assert!(matches!(
        err("10.0.0.0/8 le 9 le 10"),
        PolicyParseError::Range(_)
    ));
    assert!(matches!(err("10.0.0.0/8 le 7"), PolicyParseError::Empty(_)));
    assert!(matches!(
        err("10.0.0.0/8 ge 30 le 26"),
        PolicyParseError::Empty(_)
    ));
    assert!(matches!(
        err("10.0.0.0/8 le 33"),
        PolicyParseError::Empty(_)
    ));
}

fn base() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence([65001])),
        communities: vec![Community::new(65001, 1)],
        ..PathAttributes::default()
    }
}

#[test]
fn first_matching_rule_decides_after_modifications_accumulate() {
    let policy = Policy {
        rules: vec![
            Rule {
                matches: vec![Match::Community(Community::new(65001, 1))],
                set: vec![
                    Modify::LocalPref(250),
                    Modify::AddCommunity(Community::new(64512, 7)),
                    Modify::RemoveCommunity(Community::new(65001, 1)),
                ],
                then: Disposition::Continue,
            },
            // Sees the modified route: the community is gone now.
            Rule {
                matches: vec![Match::Community(Community::new(65001, 1))],
                set: vec![],
                then: Disposition::Reject,
            },
            Rule {
                matches: vec![Match::Family(Family::Ipv4Unicast)],
                set: vec![
                    Modify::Med(9),
                    Modify::NextHop("192.0.2.99".parse().unwrap()),
                ],
                then: Disposition::Accept,
            },
        ],
        default: Disposition::Reject,
    };
    let a = base();
    let mut attrs = Cow::Borrowed(&a);
    let mut nh = NextHop::V4(Ipv4Addr::new(192, 0, 2, 1));
    assert!(policy.apply(&p("10.0.0.0/24"), &mut attrs, &mut nh));
    assert_eq!(attrs.local_pref, Some(250));
    assert_eq!(attrs.multi_exit_disc, Some(9));
    assert_eq!(attrs.communities, vec![Community::new(64512, 7)]);
    assert_eq!(nh, NextHop::V4(Ipv4Addr::new(192, 0, 2, 99)));
    // IPv6: the first rule applies, nothing accepts, the default rejects.
    let mut attrs = Cow::Borrowed(&a);
    assert!(!policy.apply(&p("fd00::/64"), &mut attrs, &mut nh));
}

#[test]
fn an_accepting_policy_that_changes_nothing_does_not_copy() {
    let a = base();
    let mut attrs = Cow::Borrowed(&a);
    let mut nh = NextHop::V4(Ipv4Addr::LOCALHOST);
    let policy = Policy {
        rules: vec![Rule {
            matches: vec![],
            // Already so: no copy.
            set: vec![Modify::AddCommunity(Community::new(65001, 1))],
            then: Disposition::Accept,
        }],
        default: Disposition::Reject,
    };
    assert!(policy.apply(&p("10.0.0.0/24"), &mut attrs, &mut nh));
    assert!(matches!(attrs, Cow::Borrowed(_)));
}

const AS: u32 = 64512;

/// The agent's rules, as a Calico node would have them: pool
/// 10.244.0.0/16 with /26 blocks, our block 10.244.1.0/26.
fn agent_rib() -> (Rib, std::net::IpAddr) {
    let pools = PrefixSet::parse(["10.244.0.0/16 le 32"]).unwrap();
    let own = PrefixSet::parse(["10.244.1.0/26 le 32"]).unwrap();
    let import = Policy {
        rules: vec![
            Rule::reject(own.clone()),
            Rule::reject(PrefixSet::parse(["0.0.0.0/0", "::/0"]).unwrap()),
            Rule::accept(pools),
        ],
        default: Disposition::Reject,
    };
    let export = Policy::only(own);
    let tor = "198.51.100.1".parse().unwrap();
    let mut rib = Rib::new(LocalConfig {
        asn: AS,
        router_id: Ipv4Addr::new(10, 0, 0, 1),
        cluster_id: None,
        decision: DecisionConfig::default(),
    });
    let mut cfg = PeerConfig::new(tor, 65001);
    cfg.local_v4 = Some(Ipv4Addr::new(198, 51, 100, 254));
    cfg.import = Some(import);
    cfg.export = Some(export);
    rib.set_peer(cfg);
    rib.peer_up(
        tor,
        Ipv4Addr::new(10, 9, 9, 9),
        Families::of(&[Family::Ipv4Unicast]),
        Families::NONE,
    )
    .unwrap();
    (rib, tor)
}

#[test]
fn import_accepts_only_pool_prefixes_never_own_blocks_or_default() {
    let (mut rib, tor) = agent_rib();
    let prefixes = [
        "10.244.2.0/26",  // another node's block: accepted
        "10.244.1.0/26",  // ours: refused
        "10.244.1.5/32",  // borrowed from ours: refused
        "10.245.0.0/26",  // outside the pool: refused
        "0.0.0.0/0",      // default: refused
        "10.244.3.17/32", // a borrowed /32 in the pool: accepted
    ];
    let nlri = prefixes
        .iter()
        .map(|s| match p(s) {
            IpPrefix::V4(x) => Nlri::new(x),
            IpPrefix::V6(_) => unreachable!(),
        })
        .collect();
    let mut a = base();
    a.next_hop = Some("198.51.100.1".parse().unwrap());
    let ch = rib
        .receive(
            &tor,
            &Update {
                attributes: a,
                nlri,
                ..Update::default()
            },
        )
        .unwrap();
    let mut got: Vec<IpPrefix> = ch.iter().map(|c| c.prefix).collect();
    got.sort();
    assert_eq!(got, vec![p("10.244.2.0/26"), p("10.244.3.17/32")]);
    assert_eq!(rib.adj_rib_in(&tor).unwrap().len(), 6);
}

#[test]
fn export_sends_only_our_blocks_and_policy_changes_apply_at_once() {
    let (mut rib, tor) = agent_rib();
    let nh = NextHop::V4(Ipv4Addr::new(198, 51, 100, 254));
    for block in ["10.244.1.0/26", "10.244.7.0/26", "192.168.0.0/24"] {
        rib.originate(p(block), base(), nh);
    }
    let ctx = Context::default();
    let sent = |rib: &mut Rib| -> Vec<(Vec<Ipv4Prefix>, Vec<Ipv4Prefix>)> {
        let out = rib.flush(&tor, &ctx).unwrap();
        out.updates(&ctx)
            .unwrap()
            .into_iter()
            .map(|u| {
                (
                    u.nlri.iter().map(|n| n.prefix).collect(),
                    u.withdrawn.iter().map(|n| n.prefix).collect(),
                )
            })
            .filter(|(n, w): &(Vec<_>, Vec<_>)| !n.is_empty() || !w.is_empty())
            .collect()
    };
    let ours = |s| match p(s) {
        IpPrefix::V4(x) => x,
        IpPrefix::V6(_) => unreachable!(),
    };
    assert_eq!(sent(&mut rib), vec![(vec![ours("10.244.1.0/26")], vec![])]);
    // The node gains block 10.244.7.0/26: soft reconfiguration, no reset.
    let mut cfg = PeerConfig::new(tor, 65001);
    cfg.local_v4 = Some(Ipv4Addr::new(198, 51, 100, 254));
    cfg.import = Some(Policy::reject_all());
    cfg.export = Some(Policy::only(
        PrefixSet::parse(["10.244.7.0/26 le 32"]).unwrap(),
    ));
    rib.set_peer(cfg);
    assert_eq!(
        sent(&mut rib),
        vec![
            (vec![], vec![ours("10.244.1.0/26")]),
            (vec![ours("10.244.7.0/26")], vec![])
        ]
    );
}
