//! Pod wiring against a real kernel: veth pairs into pod namespaces.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use agent::dataplane::netns::with_handle_in;
use agent::dataplane::route::{RouteSet, Target};
use agent::dataplane::route_table::RouteTable;
use agent::dataplane::veth::{self, VethSpec, WiredVeth};
use agent::dataplane::workload::host_interface_name;
use harness::{Netns, require_live};
use ipnet::IpNet;

fn wire(host: &Netns, spec: &VethSpec) -> WiredVeth {
    let spec = spec.clone();
    with_handle_in(
        &host.path(),
        |h| async move { veth::create(&h, &spec).await },
    )
    .unwrap()
    .unwrap()
}

fn unwire(host: &Netns, name: &str) -> bool {
    let name = name.to_string();
    with_handle_in(
        &host.path(),
        |h| async move { veth::delete(&h, &name).await },
    )
    .unwrap()
    .unwrap()
}

fn spec(pod: &Netns, name: &str, addrs: &[&str]) -> VethSpec {
    VethSpec {
        host_ifname: host_interface_name("cali", "default", name),
        pod_netns: pod.path(),
        pod_ifname: "eth0".into(),
        addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        mtu: 1450,
    }
}

fn sysctl(ns: &Netns, key: &str) -> String {
    ns.exec("cat", &[&format!("/proc/sys/net/{key}")])
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn two_pods_on_one_host_reach_each_other_over_ipv4_and_ipv6() {
    if !require_live(
        "two_pods_on_one_host_reach_each_other_over_ipv4_and_ipv6",
        &["ip", "ping"],
    ) {
        return;
    }
    let host = Netns::new("pods-host").unwrap();
    host.sysctl("net.ipv4.ip_forward", "1").unwrap();
    host.sysctl("net.ipv6.conf.all.forwarding", "1").unwrap();
    // Proxy ARP answers for 169.254.1.1 only if the host routes it out of
    // another interface, as a real node's default route does: give the
    // host an uplink (a veth pair within the host namespace) and a default.
    harness::veth(&host, "up0", &host, "up1").unwrap();
    host.ip(&["addr", "add", "172.31.255.1/24", "dev", "up0"])
        .unwrap();
    host.ip(&["route", "add", "default", "via", "172.31.255.2"])
        .unwrap();
    let pod_a = Netns::new("pods-a").unwrap();
    let pod_b = Netns::new("pods-b").unwrap();
    let a = spec(&pod_a, "a", &["10.0.1.1/32", "fd00:10::1/128"]);
    let b = spec(&pod_b, "b", &["10.0.1.2/32", "fd00:10::2/128"]);
    let wired_a = wire(&host, &a);
    let wired_b = wire(&host, &b);

    // Host side as Calico sets it.
    let host_link = host.ip(&["link", "show", &a.host_ifname]).unwrap();
    assert!(
        host_link.contains("link/ether ee:ee:ee:ee:ee:ee"),
        "{host_link}"
    );
    assert!(host_link.contains("mtu 1450"), "{host_link}");
    assert_eq!(
        sysctl(&host, &format!("ipv4/conf/{}/proxy_arp", a.host_ifname)),
        "1"
    );
    assert_eq!(
        sysctl(&host, &format!("ipv4/neigh/{}/proxy_delay", a.host_ifname)),
        "0"
    );
    assert_eq!(
        sysctl(
            &host,
            &format!("ipv4/conf/{}/route_localnet", a.host_ifname)
        ),
        "1"
    );
    assert_eq!(
        sysctl(&host, &format!("ipv6/conf/{}/proxy_ndp", a.host_ifname)),
        "1"
    );
    assert_eq!(
        sysctl(&host, &format!("ipv6/conf/{}/accept_ra", a.host_ifname)),
        "0"
    );
    // Pod side.
    let pod_routes = pod_a.ip(&["-4", "route", "show"]).unwrap();
    let has = |prefix: &str, suffix: &str| {
        pod_routes
            .lines()
            .any(|l| l.starts_with(prefix) && l.contains(suffix))
    };
    assert!(
        has("default via 169.254.1.1 dev eth0", "proto 95"),
        "{pod_routes}"
    );
    assert!(has("169.254.1.1 dev eth0", "scope link"), "{pod_routes}");
    let pod6 = pod_a.ip(&["-6", "route", "show", "default"]).unwrap();
    assert!(
        pod6.contains("via fe80::ecee:eeff:feee:eeee dev eth0"),
        "{pod6}"
    );
    let addrs = pod_a.ip(&["addr", "show", "eth0"]).unwrap();
    assert!(
        addrs.contains("10.0.1.1/32") && addrs.contains("fd00:10::1/128"),
        "{addrs}"
    );

    // Host routes to the pods, owned by the route table.
    let routes: RouteSet = [
        ("10.0.1.1/32", wired_a.host_ifindex),
        ("10.0.1.2/32", wired_b.host_ifindex),
        ("fd00:10::1/128", wired_a.host_ifindex),
        ("fd00:10::2/128", wired_b.host_ifindex),
    ]
    .iter()
    .map(|(dst, i)| {
        (
            dst.parse::<IpNet>().unwrap(),
            Target::Device { ifindex: *i },
        )
    })
    .collect();
    host.spawn(move || Ok(RouteTable::open()?.sync(&routes)?.1.added))
        .unwrap()
        .join()
        .unwrap()
        .map(|added| assert_eq!(added, 4))
        .unwrap();

    pod_a
        .exec("ping", &["-c", "1", "-W", "2", "10.0.1.2"])
        .unwrap();
    pod_b
        .exec("ping", &["-c", "1", "-W", "2", "10.0.1.1"])
        .unwrap();
    pod_a
        .exec("ping", &["-6", "-c", "1", "-W", "2", "fd00:10::2"])
        .unwrap();
    // The pod's gateway is answered by the host's proxy ARP with ee:ee:...
    let neigh = pod_a.ip(&["neigh", "show", "169.254.1.1"]).unwrap();
    assert!(neigh.contains("ee:ee:ee:ee:ee:ee"), "{neigh}");

    // A create whose pod already has an eth0 of someone else's fails and
    // leaves the live host interface of the same name alone.
    let intruder = Netns::new("pods-intruder").unwrap();
    harness::veth(&intruder, "eth0", &intruder, "other").unwrap();
    let clash = VethSpec {
        pod_netns: intruder.path(),
        ..a.clone()
    };
    let err = with_handle_in(
        &host.path(),
        |h| async move { veth::create(&h, &clash).await },
    )
    .unwrap()
    .unwrap_err();
    assert!(
        matches!(err, veth::VethError::PodInterfaceExists(_)),
        "{err}"
    );
    assert!(
        host.ip(&["link", "show", &a.host_ifname]).is_ok(),
        "the live pair survives"
    );
    pod_a
        .exec("ping", &["-c", "1", "-W", "2", "10.0.1.2"])
        .unwrap();

    // Repeating create replaces the stale pair; delete is idempotent.
    let again = wire(&host, &a);
    assert_ne!(again.host_ifindex, wired_a.host_ifindex);
    assert!(unwire(&host, &a.host_ifname));
    assert!(!unwire(&host, &a.host_ifname));
    assert!(
        pod_a.ip(&["link", "show", "eth0"]).is_err(),
        "the pod side goes with the host side"
    );
    assert!(unwire(&host, &b.host_ifname));
}
