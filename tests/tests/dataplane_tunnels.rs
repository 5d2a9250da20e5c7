//! Pods on two hosts in different subnets reach each other over VXLAN;
//! on a shared subnet, over direct routes; over IPIP where the kernel has it.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::IpAddr;

use agent::dataplane::encap::{
    EncapMode, LocalLinks, PoolEncap, RemoteNode, kernel_has_ipip, remote_block_target,
};
use agent::dataplane::ipip;
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
            tunnel_addresses: vec![IpNet::new(me.tunnel, 32).unwrap()],
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
        node_subnet6: None,
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
fn pods_across_a_router_reach_each_other_over_ipip() {
    let test = "pods_across_a_router_reach_each_other_over_ipip";
    if !require_live(test, &["ip", "ping"]) {
        return;
    }
    if !kernel_has_ipip() {
        skip_for_kernel_feature(test, "ipip (CONFIG_NET_IPIP)");
        return;
    }
    let left = Switch::new("ipl").unwrap();
    let right = Switch::new("ipr").unwrap();
    let router = Router::new(
        "ip",
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
        ipip: EncapMode::Always,
        ..Default::default()
    };
    program(&a, &[&b], encap, "10.0.1.5");
    program(&b, &[&a], encap, "10.0.2.5");
    let route = a.host.ip(&["route", "show", "10.0.2.0/26"]).unwrap();
    assert!(
        route.contains("via 10.201.2.1 dev tunl0") && route.contains("onlink"),
        "{route}"
    );
    a.pod
        .exec("ping", &["-c", "1", "-W", "2", "10.0.2.5"])
        .unwrap();
    let rt = router.netns().ip(&["route", "show"]).unwrap();
    assert!(!rt.contains("10.0."), "{rt}");
}

#[test]
fn a_kernel_without_ipip_is_refused_by_name() {
    if kernel_has_ipip() {
        return; // the live IPIP test above covers this kernel
    }
    if !require_live("a_kernel_without_ipip_is_refused_by_name", &["ip"]) {
        return;
    }
    let ns = Netns::new("noipip").unwrap();
    let err = with_handle_in(&ns.path(), |h| async move {
        ipip::ensure_tunl0(&h, 1480, None).await
    })
    .unwrap()
    .unwrap_err();
    assert!(matches!(err, ipip::IpipError::Unsupported));
    assert!(err.to_string().contains("CONFIG_NET_IPIP"), "{err}");
}

#[test]
fn ipv6_pods_on_one_subnet_reach_each_other_over_direct_routes() {
    if !require_live(
        "ipv6_pods_on_one_subnet_reach_each_other_over_direct_routes",
        &["ip", "ping"],
    ) {
        return;
    }
    let lan = Switch::new("v6").unwrap();
    let mut hosts = Vec::new();
    for (i, name) in [(1u8, "a"), (2, "b")] {
        let host = Netns::new(&format!("v6-{name}")).unwrap();
        lan.attach(&host, "eth0", &format!("10.200.0.{i}/24"))
            .unwrap();
        host.ip(&[
            "-6",
            "addr",
            "add",
            &format!("fd00:200::{i}/64"),
            "dev",
            "eth0",
            "nodad",
        ])
        .unwrap();
        host.sysctl("net.ipv6.conf.all.forwarding", "1").unwrap();
        let pod = Netns::new(&format!("v6-{name}-pod")).unwrap();
        let spec = VethSpec {
            host_ifname: host_interface_name("cali", "default", name),
            pod_netns: pod.path(),
            pod_ifname: "eth0".into(),
            addresses: vec![format!("fd00:10:{i}::5/128").parse().unwrap()],
            mtu: 1500,
        };
        let wired = with_handle_in(
            &host.path(),
            |h| async move { veth::create(&h, &spec).await },
        )
        .unwrap()
        .unwrap();
        hosts.push((host, pod, wired.host_ifindex));
    }
    for (me, (host, _, pod_if)) in hosts.iter().enumerate() {
        let other = 2 - me as u8; // 1-based index of the other host
        let uplink = ifindex(host, "eth0");
        let routes: RouteSet = [
            (
                format!("fd00:10:{}::/122", me + 1)
                    .parse::<IpNet>()
                    .unwrap(),
                Target::Blackhole,
            ),
            (
                format!("fd00:10:{}::5/128", me + 1).parse().unwrap(),
                Target::Device { ifindex: *pod_if },
            ),
            (
                format!("fd00:10:{other}::/122").parse().unwrap(),
                Target::Gateway(agent::dataplane::route::NextHop {
                    gateway: format!("fd00:200::{other}").parse().unwrap(),
                    ifindex: uplink,
                    onlink: false,
                }),
            ),
        ]
        .into();
        let report = host
            .spawn(move || Ok(RouteTable::open()?.sync(&routes)?.1))
            .unwrap()
            .join()
            .unwrap()
            .unwrap();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
    }
    let (_, pod_a, _) = &hosts[0];
    pod_a
        .exec("ping", &["-6", "-c", "1", "-W", "3", "fd00:10:2::5"])
        .unwrap();
}
