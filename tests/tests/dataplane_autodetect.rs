//! Node-address autodetection against a real namespace's interfaces.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use agent::dataplane::autodetect::{Method, choose, host_addresses, source_for};
use harness::{Netns, Switch, require_live, veth};

#[test]
fn autodetection_reads_the_namespace_and_follows_the_method() {
    if !require_live(
        "autodetection_reads_the_namespace_and_follows_the_method",
        &["ip"],
    ) {
        return;
    }
    let lan = Switch::new("auto").unwrap();
    let node = Netns::new("auto-node").unwrap();
    let peer = Netns::new("auto-peer").unwrap();
    // A docker-like bridge first, then the real uplink on the lab subnet.
    veth(&node, "docker0", &node, "docker1").unwrap();
    node.ip(&["addr", "add", "172.17.0.1/16", "dev", "docker0"])
        .unwrap();
    lan.attach(&node, "eth0", "10.200.0.1/24").unwrap();
    lan.attach(&peer, "eth0", "10.200.0.2/24").unwrap();
    veth(&node, "ens5", &node, "ens6").unwrap();
    node.ip(&["addr", "add", "10.202.0.1/24", "dev", "ens5"])
        .unwrap();

    node.ip(&["link", "set", "eth0", "mtu", "9000"]).unwrap();
    let vxlan = agent::dataplane::encap::PoolEncap {
        vxlan: agent::dataplane::encap::EncapMode::Always,
        ..Default::default()
    };
    let picked = node
        .spawn(move || {
            let addrs = host_addresses()?;
            let pick = |m: &str| {
                choose(&Method::parse(m).unwrap(), &addrs, false, source_for)
                    .map(|a| format!("{} {}", a.interface, a.address))
            };
            Ok([
                pick("first-found"),
                pick("interface=ens.*"),
                pick("can-reach=10.200.0.2"),
                pick("cidr=10.202.0.0/16"),
                pick("skip-interface=eth0"),
                {
                    let mtu = agent::dataplane::netns::block_on_here(async {
                        let (conn, handle, _) = rtnetlink::new_connection().unwrap();
                        tokio::spawn(conn);
                        agent::dataplane::veth::link_mtu(&handle, "eth0").await
                    });
                    let mtu = mtu.unwrap().unwrap().unwrap();
                    Ok(agent::dataplane::encap::pod_mtu(mtu, vxlan, false).to_string())
                },
            ])
        })
        .unwrap()
        .join()
        .unwrap()
        .unwrap();
    let picked: Vec<String> = picked.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(
        picked,
        [
            "eth0 10.200.0.1/24",
            "ens5 10.202.0.1/24",
            "eth0 10.200.0.1/24",
            "ens5 10.202.0.1/24",
            "ens5 10.202.0.1/24",
            "8950",
        ]
    );
}
