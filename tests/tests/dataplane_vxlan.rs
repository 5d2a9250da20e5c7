//! Pods on two hosts in different subnets reach each other over VXLAN;
//! on a shared subnet, over direct routes; IPIP is checked for by name.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::IpAddr;

use agent::dataplane::encap::{
    EncapMode, LocalLinks, PoolEncap, RemoteNode, kernel_has_ipip, remote_block_target,
};
use agent::dataplane::netns::with_handle_in;
use agent::dataplane::route::{RouteSet, Target};
use agent::dataplane::route_table::RouteTable;
use agent::dataplane::veth::{self, VethSpec};
use agent::dataplane::vxlan::{self, RemoteVtep, VxlanDevice, vtep_mac};
use agent::dataplane::workload::host_interface_name;
use harness::{Netns, Router, Switch, require_live, skip_for_kernel_feature};
use ipnet::IpNet;

/// One node: its namespace, a pod in it, and what the others need to know.
struct Node {
    name: String,
    host: Netns,
    pod: Netns,
    address: IpAddr,
    subnet: IpNet,
    block: IpNet,
    tunnel: IpAddr,
    uplink: u32,
    pod_ifindex_host: u32,
}

fn ifindex(ns: &Netns, name: &str) -> u32 {
    ns.exec("cat", &[&format!("/sys/class/net/{name}/ifindex")])
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn node(
    switch: &Switch,
    name: &str,
    cidr: &str,
    gw: Option<&str>,
    block: &str,
    pod_ip: &str,
) -> Node {
    let host = Netns::new(&format!("vx-{name}")).unwrap();
    switch.attach(&host, "eth0", cidr).unwrap();
    match gw {
        Some(gw) => host.ip(&["route", "add", "default", "via", gw]).unwrap(),
        // On a shared subnet with no router, a default route out of eth0
        // still lets proxy ARP answer for the pods' 169.254.1.1.
        None => host
            .ip(&["route", "add", "default", "dev", "eth0"])
            .unwrap(),
    };
    host.sysctl("net.ipv4.ip_forward", "1").unwrap();
    let pod = Netns::new(&format!("vx-{name}-pod")).unwrap();
    let spec = VethSpec {
        host_ifname: host_interface_name("cali", "default", name),
        pod_netns: pod.path(),
        pod_ifname: "eth0".into(),
        addresses: vec![format!("{pod_ip}/32").parse().unwrap()],
        mtu: 1450,
    };
    let wired = with_handle_in(
        &host.path(),
        |h| async move { veth::create(&h, &spec).await },
    )
    .unwrap()
    .unwrap();
    let subnet: IpNet = cidr.parse().unwrap();
    let block: IpNet = block.parse().unwrap();
    Node {
        name: name.into(),
        uplink: ifindex(&host, "eth0"),
        host,
        pod,
        address: subnet.addr(),
        subnet,
        tunnel: block.addr(),
        block,
        pod_ifindex_host: wired.host_ifindex,
    }
}

/// Program `me` for pool mode `encap`, knowing `others`; returns the routes.
fn program(me: &Node, others: &[&Node], encap: PoolEncap, pod_ip: &str) -> RouteSet {
    let vxlan_index = if encap.vxlan != EncapMode::Never {
        let dev = VxlanDevice {
            name: vxlan::DEFAULT_DEVICE.into(),
            vni: vxlan::DEFAULT_VNI,
            port: vxlan::DEFAULT_PORT,
            uplink: me.uplink,
            local: me.address,
            mac: vtep_mac(&me.name),
            mtu: 1450,
            tunnel_address: Some(IpNet::new(me.tunnel, 32).unwrap()),
        };
        let remotes: Vec<RemoteVtep> = others
            .iter()
            .map(|o| RemoteVtep {
                node_address: o.address,
                tunnel_address: o.tunnel,
                mac: vtep_mac(&o.name),
            })
            .collect();
        let index = with_handle_in(&me.host.path(), |h| async move {
            let index = vxlan::ensure_device(&h, &dev).await?;
            // Twice: ensuring an existing, matching device changes nothing.
            assert_eq!(vxlan::ensure_device(&h, &dev).await?, index);
            for r in &remotes {
                vxlan::set_remote(&h, index, r).await?;
            }
            Ok::<_, veth::VethError>(index)
        })
        .unwrap()
        .unwrap();
        Some(index)
    } else {
        None
    };
    let links = LocalLinks {
        node_subnet: me.subnet,
        uplink: me.uplink,
        ipip: None,
        vxlan: vxlan_index,
    };
    let mut routes: RouteSet = others
        .iter()
        .map(|o| {
            let remote = RemoteNode {
                address: o.address,
                vxlan_tunnel: Some(o.tunnel),
            };
            (
                o.block,
                remote_block_target(encap, &links, &remote).unwrap(),
            )
        })
        .collect();
    routes.insert(me.block, Target::Blackhole);
    routes.insert(
        format!("{pod_ip}/32").parse().unwrap(),
        Target::Device {
            ifindex: me.pod_ifindex_host,
        },
    );
    let r = routes.clone();
    let added = me
        .host
        .spawn(move || Ok(RouteTable::open()?.sync(&r)?.1))
        .unwrap()
        .join()
        .unwrap()
        .unwrap();
    assert!(added.failed.is_empty(), "{:?}", added.failed);
    routes
}

#[test]
fn pods_across_a_router_reach_each_other_over_vxlan() {
    if !require_live(
        "pods_across_a_router_reach_each_other_over_vxlan",
        &["ip", "ping"],
    ) {
        return;
    }
    let left = Switch::new("vxl").unwrap();
    let right = Switch::new("vxr").unwrap();
    let _router = Router::new(
        "vx",
        &[(&left, "10.201.1.254/24"), (&right, "10.201.2.254/24")],
    )
    .unwrap();
    let a = node(
        &left,
        "a",
        "10.201.1.1/24",
        Some("10.201.1.254"),
        "10.0.1.0/26",
        "10.0.1.5",
    );
    let b = node(
        &right,
        "b",
        "10.201.2.1/24",
        Some("10.201.2.254"),
        "10.0.2.0/26",
        "10.0.2.5",
    );
    let encap = PoolEncap {
        vxlan: EncapMode::CrossSubnet,
        ..Default::default()
    };
    program(&a, &[&b], encap, "10.0.1.5");
    program(&b, &[&a], encap, "10.0.2.5");

    let route = a.host.ip(&["route", "show", "10.0.2.0/26"]).unwrap();
    assert!(
        route.contains("via 10.0.2.0 dev vxlan.tabby") && route.contains("onlink"),
        "{route}"
    );
    let fdb = a
        .host
        .exec("bridge", &["fdb", "show", "dev", "vxlan.tabby"])
        .unwrap();
    let mac_b = vtep_mac("b").map(|x| format!("{x:02x}")).join(":");
    assert!(
        fdb.contains(&format!("{mac_b} dst 10.201.2.1")) && fdb.contains("permanent"),
        "{fdb}"
    );
    let neigh = a.host.ip(&["neigh", "show", "dev", "vxlan.tabby"]).unwrap();
    assert!(
        neigh.contains(&format!("10.0.2.0 lladdr {mac_b} PERMANENT")),
        "{neigh}"
    );
    let dev = a.host.ip(&["-d", "link", "show", "vxlan.tabby"]).unwrap();
    assert!(
        dev.contains("vxlan id 4096") && dev.contains("dstport 4789"),
        "{dev}"
    );
    assert!(
        dev.contains("local 10.201.1.1") && dev.contains("nolearning"),
        "{dev}"
    );
    a.pod
        .exec("ping", &["-c", "2", "-W", "2", "10.0.2.5"])
        .unwrap();
    b.pod
        .exec("ping", &["-c", "1", "-W", "2", "10.0.1.5"])
        .unwrap();
    // The router saw only encapsulated traffic: it has no route to the pods.
    let rt = _router.netns().ip(&["route", "show"]).unwrap();
    assert!(!rt.contains("10.0."), "{rt}");
}

#[test]
fn pods_on_one_subnet_reach_each_other_over_direct_routes() {
    if !require_live(
        "pods_on_one_subnet_reach_each_other_over_direct_routes",
        &["ip", "ping"],
    ) {
        return;
    }
    let lan = Switch::new("direct").unwrap();
    let a = node(&lan, "a", "10.200.0.1/24", None, "10.0.1.0/26", "10.0.1.5");
    let b = node(&lan, "b", "10.200.0.2/24", None, "10.0.2.0/26", "10.0.2.5");
    // CrossSubnet on a shared subnet: the VXLAN device exists, but the
    // routes go direct.
    let encap = PoolEncap {
        vxlan: EncapMode::CrossSubnet,
        ..Default::default()
    };
    let routes = program(&a, &[&b], encap, "10.0.1.5");
    program(&b, &[&a], encap, "10.0.2.5");
    let to_b = &routes[&"10.0.2.0/26".parse::<IpNet>().unwrap()];
    assert!(
        matches!(to_b, Target::Gateway(h) if !h.onlink && h.gateway == b.address),
        "{to_b:?}"
    );
    a.pod
        .exec("ping", &["-c", "1", "-W", "2", "10.0.2.5"])
        .unwrap();
    b.pod
        .exec("ping", &["-c", "1", "-W", "2", "10.0.1.5"])
        .unwrap();
}

#[test]
fn ipip_live_test_needs_the_kernel_module() {
    if !kernel_has_ipip() {
        skip_for_kernel_feature(
            "ipip_live_test_needs_the_kernel_module",
            "ipip (CONFIG_NET_IPIP)",
        );
        return;
    }
    // With ipip present, tunl0 exists in every new namespace.
    let ns = Netns::new("ipip").unwrap();
    assert!(ns.ip(&["link", "show", "tunl0"]).is_ok());
}
