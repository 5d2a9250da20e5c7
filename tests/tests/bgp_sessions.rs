//! tabby's speaker holds sessions with real BIRD 2, FRR and GoBGP.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bgp::session::{SessionConfig, State};
use bgp::speaker::{PeerConfig, SpeakerConfig};
use bgp::wire::{Afi, Capability, Safi};
use harness::mesh::{Guest, MESH_AS, Members, Mesh, MeshOptions, node_addr};
use harness::speaker::SpeakerInNs;
use harness::{Netns, require_live};

const TABBY: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 4);
const DAEMONS: [&str; 6] = [
    "bird",
    "birdc",
    "gobgpd",
    "gobgp",
    "/usr/lib/frr/bgpd",
    "vtysh",
];

/// tabby's peer config towards mesh node `i`: hold time 9 s so a few hold
/// times pass quickly; IdleHold short so restarts in tests are quick.
fn peer(i: u8, local_as: u32, remote_as: u32) -> PeerConfig {
    let mut session = SessionConfig::new(local_as, remote_as, TABBY);
    session.hold_time = Duration::from_secs(9);
    session.connect_retry = Duration::from_secs(2);
    session.idle_hold = Duration::from_millis(200);
    session.idle_hold_max = Duration::from_secs(2);
    session.capabilities = vec![
        Capability::Multiprotocol {
            afi: Afi::IPV4,
            safi: Safi::UNICAST,
        },
        Capability::RouteRefresh,
        Capability::FourOctetAs(local_as),
    ];
    let mut p = PeerConfig::new(IpAddr::V4(node_addr(i)), session);
    p.local_address = Some(IpAddr::V4(TABBY));
    p
}

/// The mesh plus n4 (tabby's namespace) on the same switch.
fn lab(tag: &str, opts: MeshOptions) -> (Mesh, Netns) {
    let mesh = Mesh::start(tag, &opts).unwrap();
    let n4 = Netns::new(&format!("{tag}-n4")).unwrap();
    mesh.switch
        .attach(&n4, "eth0", &format!("{TABBY}/24"))
        .unwrap();
    (mesh, n4)
}

fn speaker(n4: &Netns) -> SpeakerInNs {
    let cfg = SpeakerConfig {
        listen: vec![SocketAddr::new(IpAddr::V4(TABBY), 179)],
        ..Default::default()
    };
    SpeakerInNs::start(n4, cfg).unwrap()
}

fn addr(i: u8) -> IpAddr {
    IpAddr::V4(node_addr(i))
}

#[test]
fn ibgp_with_bird_frr_and_gobgp_at_once_stays_established_over_hold_times() {
    if !require_live(
        "ibgp_with_bird_frr_and_gobgp_at_once_stays_established_over_hold_times",
        &DAEMONS,
    ) {
        return;
    }
    let opts = MeshOptions {
        guests: vec![Guest::ibgp(TABBY)],
        ..Default::default()
    };
    let (mesh, n4) = lab("ibgp", opts);
    let tabby = speaker(&n4);
    for i in 1..=3 {
        tabby
            .block_on(tabby.handle.add_peer(peer(i, MESH_AS, MESH_AS)))
            .unwrap();
    }
    let all = [addr(1), addr(2), addr(3)];
    tabby
        .wait_established(&all, Duration::from_secs(30))
        .unwrap();
    mesh.wait_established(3, Duration::from_secs(30)).unwrap();

    // Three hold times (27 s) later nothing has flapped.
    std::thread::sleep(Duration::from_secs(28));
    for p in tabby.peers().unwrap() {
        assert_eq!(p.state, State::Established, "{p:?}");
        assert_eq!(p.counters.established, 1, "{} flapped: {p:?}", p.address);
        let neg = p.negotiated.as_ref().unwrap();
        assert_eq!(neg.hold_time, Duration::from_secs(9));
        assert!(neg.context.four_octet_as);
        assert!(p.counters.messages_in >= 9, "keepalives arrive: {p:?}");
    }
    mesh.wait_established(3, Duration::from_secs(1)).unwrap();
    // Each daemon's own view of the session and its capabilities.
    let bird = mesh
        .bird
        .as_ref()
        .unwrap()
        .birdc("show protocols all p2")
        .unwrap();
    assert!(
        bird.contains("Established") && bird.contains("Neighbor address: 10.200.0.4"),
        "{bird}"
    );
    assert!(bird.contains("AS4") && bird.contains("refresh"), "{bird}");
    assert!(bird.contains("Hold timer") && bird.contains("/9"), "{bird}");
    let gobgp = mesh
        .gobgp
        .as_ref()
        .unwrap()
        .gobgp(&["neighbor", "10.200.0.4"])
        .unwrap();
    assert!(
        gobgp.contains("BGP state = ESTABLISHED") || gobgp.contains("BGP state = established"),
        "{gobgp}"
    );
    assert!(
        gobgp.contains("4-octet-as:") && gobgp.contains("advertised and received"),
        "{gobgp}"
    );
    let frr = mesh
        .frr
        .as_ref()
        .unwrap()
        .vtysh("show bgp neighbors 10.200.0.4 json")
        .unwrap();
    assert!(frr.contains("\"bgpState\":\"Established\""), "{frr}");
    assert!(
        frr.contains("\"4byteAs\":\"advertisedAndReceived\""),
        "{frr}"
    );
}

#[test]
fn ebgp_with_frr() {
    if !require_live("ebgp_with_frr", &DAEMONS) {
        return;
    }
    let members = Members {
        bird: false,
        gobgp: false,
        frr: true,
    };
    let guest = Guest {
        asn: 65001,
        ..Guest::ibgp(TABBY)
    };
    let (mesh, n4) = lab(
        "ebgp",
        MeshOptions {
            members,
            guests: vec![guest],
            zebra: false,
        },
    );
    let tabby = speaker(&n4);
    tabby
        .block_on(tabby.handle.add_peer(peer(3, 65001, MESH_AS)))
        .unwrap();
    tabby
        .wait_established(&[addr(3)], Duration::from_secs(30))
        .unwrap();
    let frr = mesh.frr.as_ref().unwrap();
    let json = frr.vtysh("show bgp neighbors 10.200.0.4 json").unwrap();
    assert!(json.contains("\"bgpState\":\"Established\""), "{json}");
    assert!(
        json.contains("\"remoteAs\":65001") && json.contains("\"nbrExternalLink\":true"),
        "{json}"
    );
    assert_eq!(
        tabby.peer(addr(3)).unwrap().negotiated.unwrap().peer_as,
        MESH_AS
    );
}

#[test]
fn passive_tabby_and_a_collision_with_bird_both_end_in_one_stable_session() {
    if !require_live(
        "passive_tabby_and_a_collision_with_bird_both_end_in_one_stable_session",
        &DAEMONS,
    ) {
        return;
    }
    for tabby_passive in [true, false] {
        let members = Members {
            bird: true,
            gobgp: false,
            frr: false,
        };
        // BIRD connects too: with tabby passive that is the only way up;
        // with both active the connections collide.
        let guest = Guest {
            passive: false,
            ..Guest::ibgp(TABBY)
        };
        let (mesh, n4) = lab(
            "coll",
            MeshOptions {
                members,
                guests: vec![guest],
                zebra: false,
            },
        );
        let tabby = speaker(&n4);
        let mut p = peer(1, MESH_AS, MESH_AS);
        p.session.passive = tabby_passive;
        tabby.block_on(tabby.handle.add_peer(p)).unwrap();
        tabby
            .wait_established(&[addr(1)], Duration::from_secs(30))
            .unwrap();
        mesh.wait_established(1, Duration::from_secs(10)).unwrap();
        // Two hold times later: still the one session.
        std::thread::sleep(Duration::from_secs(19));
        let status = tabby.peer(addr(1)).unwrap();
        assert_eq!(
            status.state,
            State::Established,
            "passive={tabby_passive}: {status:?}"
        );
        assert_eq!(
            status.counters.established, 1,
            "passive={tabby_passive}: {status:?}"
        );
        mesh.wait_established(1, Duration::from_secs(1)).unwrap();
    }
}

#[test]
fn md5_right_password_comes_up_wrong_or_missing_never_does() {
    if !require_live(
        "md5_right_password_comes_up_wrong_or_missing_never_does",
        &DAEMONS,
    ) {
        return;
    }
    let members = Members {
        bird: true,
        gobgp: false,
        frr: true,
    };
    let guest = Guest {
        password: Some("labsecret".into()),
        ..Guest::ibgp(TABBY)
    };
    for (password, expect_up) in [
        (Some("labsecret"), true),
        (Some("wrongpass"), false),
        (None, false),
    ] {
        let (mesh, n4) = lab(
            "md5",
            MeshOptions {
                members: members.clone(),
                guests: vec![guest.clone()],
                zebra: false,
            },
        );
        let tabby = speaker(&n4);
        for i in [1, 3] {
            let mut p = peer(i, MESH_AS, MESH_AS);
            p.password = password.map(str::to_string);
            tabby.block_on(tabby.handle.add_peer(p)).unwrap();
        }
        if expect_up {
            tabby
                .wait_established(&[addr(1), addr(3)], Duration::from_secs(30))
                .unwrap();
            mesh.wait_established(2, Duration::from_secs(10)).unwrap();
        } else {
            // Several connect retries (2 s each) pass without a session.
            std::thread::sleep(Duration::from_secs(8));
            for p in tabby.peers().unwrap() {
                assert_ne!(p.state, State::Established, "{password:?}: {p:?}");
                assert_eq!(
                    p.counters.messages_in, 0,
                    "{password:?}: nothing gets through"
                );
            }
            let bird = mesh.bird.as_ref().unwrap().birdc("show protocols").unwrap();
            assert!(
                !bird
                    .lines()
                    .any(|l| l.starts_with("p1") && l.contains("Established")),
                "{bird}"
            );
        }
    }
}
