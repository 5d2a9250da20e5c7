//! tabby's router as a route reflector (RFC 4456) between real daemons,
//! all iBGP in AS 64512 on one switch:
//!
//! ```text
//!  10.200.0.1 BIRD   client      originates 172.31.1.0/24
//!  10.200.0.3 FRR    client      originates 172.31.3.0/24
//!  10.200.0.2 GoBGP  non-client  originates 172.31.2.0/24
//!  10.200.0.5 BIRD   non-client  originates nothing
//!  10.200.0.4 tabby  route reflector, CLUSTER_ID 10.200.255.4
//! ```
//!
//! A client's route reaches the other client and the non-clients with
//! ORIGINATOR_ID = the originator's router id and CLUSTER_LIST = [tabby's
//! cluster id] (read in FRR's JSON and BIRD's `show route all`), and is
//! not sent back to its originator; a non-client's route reaches the
//! clients but not the other non-client (RFC 4456 §8).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bgp::rib::IpPrefix;
use bgp::speaker::SpeakerConfig;
use harness::bgp_lab::{self, Nodes, TABBY, wait_output};
use harness::speaker::SpeakerInNs;
use harness::{Bird, Frr, GoBgp, require_live, wait_until};

const AS: u32 = 64512;
const CLIENT_BIRD: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const NON_CLIENT_GOBGP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
const CLIENT_FRR: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 3);
const NON_CLIENT_BIRD: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 5);
const CLUSTER: Ipv4Addr = Ipv4Addr::new(10, 200, 255, 4);
const WAIT: Duration = Duration::from_secs(30);

/// A BIRD that peers only with tabby (passively), originating `statics`.
fn bird_config(me: Ipv4Addr, statics: &[&str]) -> String {
    let mut c = format!(
        "router id {me};\n\
         protocol device {{ scan time 10; }}\n\
         protocol direct {{ ipv4; interface \"eth0\"; }}\n\
         protocol kernel {{ ipv4 {{ import none; export none; }}; }}\n"
    );
    for (i, net) in statics.iter().enumerate() {
        c.push_str(&format!(
            "protocol static s{i} {{ ipv4; route {net} blackhole; }}\n"
        ));
    }
    c.push_str(&format!(
        "protocol bgp tabby {{\n  local {me} as {AS};\n  neighbor {TABBY} as {AS};\n  direct;\n  \
         passive on;\n  connect delay time 1; connect retry time 5; error wait time 1, 10;\n  \
         ipv4 {{ import all; export where source = RTS_STATIC; gateway direct; }};\n}}\n"
    ));
    c
}

fn frr_config() -> String {
    format!(
        "frr defaults traditional\nhostname rrc\nrouter bgp {AS}\n bgp router-id {CLIENT_FRR}\n \
         no bgp ebgp-requires-policy\n no bgp network import-check\n \
         neighbor {TABBY} remote-as {AS}\n neighbor {TABBY} passive\n \
         neighbor {TABBY} timers connect 5\n \
         address-family ipv4 unicast\n  network 172.31.3.0/24\n exit-address-family\n"
    )
}

fn gobgp_config() -> String {
    format!(
        "[global.config]\n  as = {AS}\n  router-id = \"{NON_CLIENT_GOBGP}\"\n  \
         local-address-list = [\"{NON_CLIENT_GOBGP}\"]\n\
         [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{TABBY}\"\n    peer-as = {AS}\n  \
         [neighbors.timers.config]\n    connect-retry = 5\n  \
         [neighbors.transport.config]\n    passive-mode = true\n  \
         [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n"
    )
}

/// The CLUSTER_LIST of an FRR path, as strings.
fn cluster_list(path: &serde_json::Value) -> Vec<String> {
    path["clusterList"]["list"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The prefixes BIRD holds from its protocol `tabby`.
fn bird_from_tabby(bird: &Bird) -> anyhow::Result<String> {
    bird.birdc("show route protocol tabby")
}

#[test]
fn tabby_reflects_between_clients_and_from_non_clients_to_clients_only() {
    if !require_live(
        "tabby_reflects_between_clients_and_from_non_clients_to_clients_only",
        &[
            "bird",
            "birdc",
            "/usr/lib/frr/bgpd",
            "vtysh",
            "gobgpd",
            "gobgp",
        ],
    ) {
        return;
    }
    let lab = Nodes::new(
        "rr",
        &[
            ("bc", CLIENT_BIRD),
            ("gn", NON_CLIENT_GOBGP),
            ("fc", CLIENT_FRR),
            ("bn", NON_CLIENT_BIRD),
            ("t", TABBY),
        ],
    )
    .unwrap();
    let client_bird =
        Bird::start(&lab.nodes[0], &bird_config(CLIENT_BIRD, &["172.31.1.0/24"])).unwrap();
    let gobgp = GoBgp::start(&lab.nodes[1], &gobgp_config()).unwrap();
    gobgp
        .gobgp(&["global", "rib", "add", "-a", "ipv4", "172.31.2.0/24"])
        .unwrap();
    let frr = Frr::start(&lab.nodes[2], &frr_config(), false).unwrap();
    let non_client_bird = Bird::start(&lab.nodes[3], &bird_config(NON_CLIENT_BIRD, &[])).unwrap();

    let cfg = SpeakerConfig {
        listen: vec![SocketAddr::new(IpAddr::V4(TABBY), 179)],
        ..Default::default()
    };
    let routing = bgp_lab::router_config(AS, TABBY, Some(CLUSTER));
    let t = SpeakerInNs::start_routing(&lab.nodes[4], cfg, routing).unwrap();
    let peers = [
        (CLIENT_BIRD, true),
        (NON_CLIENT_GOBGP, false),
        (CLIENT_FRR, true),
        (NON_CLIENT_BIRD, false),
    ];
    for (addr, client) in peers {
        let mut p = bgp_lab::routed_peer(addr, TABBY, bgp_lab::session_config(AS, AS, TABBY));
        p.rib.rr_client = client;
        t.block_on(t.router().add_peer(p)).unwrap();
    }
    let addrs: Vec<IpAddr> = peers.iter().map(|(a, _)| IpAddr::V4(*a)).collect();
    t.wait_established(&addrs, WAIT).unwrap();
    wait_until("the three origins in tabby's Loc-RIB", WAIT, || {
        let rib = t.block_on(t.router().loc_rib())?;
        Ok(rib.len() == 3)
    })
    .unwrap();

    // Client BIRD's route at client FRR: reflected, attributes set.
    let mut paths = Vec::new();
    wait_until("BIRD's route at FRR", WAIT, || {
        paths = frr.paths("172.31.1.0/24")?;
        Ok(!paths.is_empty())
    })
    .unwrap();
    let path = &paths[0];
    assert_eq!(path["originatorId"], CLIENT_BIRD.to_string(), "{path}");
    assert_eq!(cluster_list(path), [CLUSTER.to_string()], "{path}");
    assert_eq!(path["nexthops"][0]["ip"], CLIENT_BIRD.to_string(), "{path}");
    assert_eq!(path["peer"]["peerId"], TABBY.to_string(), "{path}");

    // Non-client GoBGP's route at client FRR: reflected to a client.
    wait_until("GoBGP's route at FRR", WAIT, || {
        paths = frr.paths("172.31.2.0/24")?;
        Ok(!paths.is_empty())
    })
    .unwrap();
    assert_eq!(
        paths[0]["originatorId"],
        NON_CLIENT_GOBGP.to_string(),
        "{}",
        paths[0]
    );
    assert_eq!(cluster_list(&paths[0]), [CLUSTER.to_string()]);

    // Client BIRD's route at the non-client BIRD, as BIRD shows it.
    let out = wait_output(
        "BIRD's route at the non-client BIRD",
        WAIT,
        || non_client_bird.birdc("show route 172.31.1.0/24 all"),
        |o| o.contains("BGP.cluster_list"),
    )
    .unwrap();
    assert!(
        out.contains(&format!("BGP.originator_id: {CLIENT_BIRD}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("BGP.cluster_list: {CLUSTER}")),
        "{out}"
    );

    // Client BIRD gets the other two origins, reflected, but never its
    // own route back: tabby's Adj-RIB-Out for it holds exactly two.
    let out = wait_output(
        "FRR's and GoBGP's routes at client BIRD",
        WAIT,
        || bird_from_tabby(&client_bird),
        |o| o.contains("172.31.2.0/24") && o.contains("172.31.3.0/24"),
    )
    .unwrap();
    assert!(!out.contains("172.31.1.0/24"), "{out}");
    let to_bird = t
        .block_on(t.router().peer_routes(IpAddr::V4(CLIENT_BIRD)))
        .unwrap()
        .unwrap();
    assert_eq!((to_bird.advertised, to_bird.pending), (2, 0), "{to_bird:?}");
    let own: IpPrefix = "172.31.1.0/24".parse().unwrap();
    assert!(!t.block_on(t.router().best(own)).unwrap().is_empty());

    // Non-client to non-client: GoBGP's route, which the clients have,
    // does not reach the non-client BIRD; the clients' routes do.
    let out = wait_output(
        "the clients' routes at the non-client BIRD",
        WAIT,
        || bird_from_tabby(&non_client_bird),
        |o| o.contains("172.31.1.0/24") && o.contains("172.31.3.0/24"),
    )
    .unwrap();
    assert!(!out.contains("172.31.2.0/24"), "{out}");
    let to_non_client = t
        .block_on(t.router().peer_routes(IpAddr::V4(NON_CLIENT_BIRD)))
        .unwrap()
        .unwrap();
    assert_eq!(to_non_client.advertised, 2, "{to_non_client:?}");
    // And GoBGP gets the clients' routes, not its own back.
    wait_output(
        "the clients' routes at GoBGP",
        WAIT,
        || gobgp.gobgp(&["global", "rib", "-a", "ipv4"]),
        |o| o.contains("172.31.1.0/24") && o.contains("172.31.3.0/24"),
    )
    .unwrap();
    let to_gobgp = t
        .block_on(t.router().peer_routes(IpAddr::V4(NON_CLIENT_GOBGP)))
        .unwrap()
        .unwrap();
    assert_eq!(to_gobgp.advertised, 2, "{to_gobgp:?}");
}
