//! The three-node lab with real tabby-node agents.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::time::Duration;

use harness::lab::{Lab, LabOptions};
use harness::{require_live, wait_until};
use ipam::{AssignArgs, EtcdConfig, EtcdStore, Ipam};

/// Allocate one address for `handle` on `node` through IPAM, from inside a
/// lab namespace (etcd is only reachable there).
fn allocate(lab: &Lab, via: usize, node: &str, handle: &str) -> std::net::IpAddr {
    let endpoint = lab.etcd.endpoint();
    let (node, handle) = (node.to_string(), handle.to_string());
    lab.nodes[via]
        .ns
        .block_on(move || async move {
            let store = EtcdStore::connect(&EtcdConfig::new(vec![endpoint]))
                .await
                .unwrap();
            let ipam = Ipam::new(store);
            let mut args = AssignArgs::new(handle, node);
            args.num_v4 = 1;
            ipam.auto_assign(&args).await.unwrap()[0].ip
        })
        .unwrap()
}

#[test]
fn agents_form_the_mesh_and_distribute_blocks_directly_and_over_vxlan() {
    if !require_live(
        "agents_form_the_mesh_and_distribute_blocks_directly_and_over_vxlan",
        &["ip", "etcd"],
    ) {
        return;
    }
    let lab = Lab::start("lab", LabOptions::default()).unwrap();
    lab.wait_mesh(Duration::from_secs(60)).unwrap();
    let peers = lab.routectl(0, &["peers"]).unwrap();
    assert!(
        peers.contains("PEER ADDRESS") && peers.contains("node-to-node mesh"),
        "{peers}"
    );
    assert_eq!(peers.matches("Established").count(), 2, "{peers}");

    // A pod address on n1 claims a block; n2 (same subnet) routes it via n1
    // directly, n3 (other subnet) through the VXLAN device.
    let ip = allocate(&lab, 0, "n1", "lab.pod-a");
    let block = format!(
        "{}/26",
        ipnet::Ipv4Net::new(
            match ip {
                std::net::IpAddr::V4(a) => a,
                _ => unreachable!(),
            },
            26
        )
        .unwrap()
        .network()
    );
    wait_until("n1's block on n2 and n3", Duration::from_secs(20), || {
        let n2 = lab.nodes[1].ns.ip(&["route", "show", &block])?;
        let n3 = lab.nodes[2].ns.ip(&["route", "show", &block])?;
        Ok(n2.contains("via 10.200.0.1 dev eth0")
            && n3.contains("dev vxlan.tabby")
            && n3.contains("onlink"))
    })
    .unwrap();
    let n1 = lab.nodes[0].ns.ip(&["route", "show", &block]).unwrap();
    assert!(
        n1.contains("blackhole"),
        "own block is a blackhole on n1: {n1}"
    );
    // One IPv4 and one IPv6 block (the VXLAN tunnel addresses claimed
    // them; the pod's address is in the IPv4 one), over one session.
    let sent = lab.routectl(0, &["peers", "-o", "json"]).unwrap();
    assert!(sent.contains("\"prefixes_sent\":2"), "{sent}");
}

#[test]
fn an_agent_refuses_to_start_with_an_ipip_pool_on_a_kernel_without_ipip() {
    if !require_live(
        "an_agent_refuses_to_start_with_an_ipip_pool_on_a_kernel_without_ipip",
        &["ip", "etcd"],
    ) {
        return;
    }
    if agent::dataplane::encap::kernel_has_ipip() {
        // Nothing to refuse here; the live IPIP test in dataplane_tunnels
        // covers a kernel that has it.
        return;
    }
    let opts = LabOptions {
        nodes: 1,
        vxlan: "Never".into(),
        ipip: "Always".into(),
        ..LabOptions::default()
    };
    let err = Lab::start("noipip", opts).expect_err("the agent must refuse an IPIP pool");
    let text = format!("{err:#}");
    assert!(text.contains("exited"), "the agent exits: {text}");
    assert!(
        text.contains("CONFIG_NET_IPIP") && text.contains("default-ipv4-ippool"),
        "{text}"
    );
}

#[test]
fn every_pod_reaches_every_other_pod_across_both_subnets() {
    if !require_live(
        "every_pod_reaches_every_other_pod_across_both_subnets",
        &["ip", "ping", "etcd"],
    ) {
        return;
    }
    let mut lab = Lab::start("ping", LabOptions::default()).unwrap();
    lab.wait_mesh(Duration::from_secs(60)).unwrap();
    for i in 0..3 {
        for pod in ["a", "b"] {
            lab.add_pod(i, &format!("n{}{pod}", i + 1)).unwrap();
        }
    }
    let mut last = Vec::new();
    let all = wait_until("the full ping matrix", Duration::from_secs(30), || {
        last = lab.ping_matrix();
        Ok(last.iter().all(|(_, _, ok)| *ok))
    });
    assert!(
        all.is_ok(),
        "unreachable: {:?}",
        last.iter().filter(|(_, _, ok)| !ok).collect::<Vec<_>>()
    );
    assert_eq!(
        last.len(),
        60,
        "6 pods, each to 5 others, at their IPv4 and their IPv6 address"
    );
    // IPv6 went over BGP too (MP-BGP on the IPv4 mesh sessions): n2's
    // IPv6 block directly via its IPv6 address, n3's (the other subnet)
    // through the VXLAN device to n3's IPv6 tunnel address; our own block
    // is a blackhole.
    let v6 = lab.nodes[0]
        .ns
        .ip(&["-6", "route", "show", "proto", "95"])
        .unwrap();
    let block_of = |i: usize| {
        let a: ipnet::Ipv6Net = format!("{}/122", lab.nodes[i].pods[0].ip6.unwrap())
            .parse()
            .unwrap();
        a.trunc().to_string()
    };
    let line = |block: &str| {
        v6.lines()
            .find(|l| l.contains(block))
            .unwrap_or_else(|| panic!("no route for {block}:\n{v6}"))
            .to_string()
    };
    assert!(line(&block_of(0)).starts_with("blackhole"), "{v6}");
    assert!(
        line(&block_of(1)).contains("via fd00:200::2 dev eth0"),
        "{v6}"
    );
    let n3 = line(&block_of(2));
    assert!(
        n3.contains("dev vxlan.tabby") && n3.contains("onlink"),
        "{v6}"
    );
    let n3_tunnel = lab.nodes[2]
        .ns
        .ip(&[
            "-6",
            "addr",
            "show",
            "dev",
            "vxlan.tabby",
            "scope",
            "global",
        ])
        .unwrap();
    let via = n3.split_whitespace().nth(2).unwrap();
    assert!(
        n3_tunnel.contains(&format!("{via}/128")),
        "{n3} / {n3_tunnel}"
    );
    // The agent's MTU (uplink 1500 minus VXLAN's 50) reached the pods
    // through its state dir and tabby-cni.
    let pod = &lab.nodes[0].pods[0];
    let link = pod.ns.ip(&["-o", "link", "show", "eth0"]).unwrap();
    assert!(link.contains("mtu 1450"), "{link}");
    let state = std::fs::read_to_string(lab.nodes[0].dir.join("nodename")).unwrap();
    assert_eq!(state.trim(), "n1");

    // routectl ipam show, from a node (etcd is reachable there).
    let routectl = harness::lab::workspace_binary("routectl").unwrap();
    let endpoint = lab.etcd.endpoint();
    let args = [
        "ipam",
        "show",
        "--show-blocks",
        "--etcd-endpoints",
        endpoint.as_str(),
    ];
    let table = lab.nodes[0]
        .ns
        .exec(&routectl.to_string_lossy(), &args)
        .unwrap();
    assert!(
        table.contains("GROUPING") && table.contains("IPS IN USE"),
        "{table}"
    );
    let pool = table.lines().find(|l| l.contains("IP Pool")).unwrap();
    // 6 pods and 3 VXLAN tunnel addresses (one per node), as Calico counts them.
    assert!(
        pool.contains("10.0.0.0/16") && pool.contains("65536") && pool.contains("| 9 (0%)"),
        "{table}"
    );
    let pool6 = table
        .lines()
        .find(|l| l.contains("IP Pool") && l.contains("fd00:10::/48"))
        .unwrap_or_else(|| panic!("no IPv6 pool row:\n{table}"));
    assert!(pool6.contains("| 9 ("), "6 pods and 3 tunnels:\n{table}");
    assert_eq!(
        table.lines().filter(|l| l.contains("| Block ")).count(),
        6,
        "one block per node and family:\n{table}"
    );
    // Every address has its owner: the pods' (IPv4 and IPv6) their
    // WorkloadEndpoints, the tunnel addresses (both families) their Nodes.
    let check = lab.nodes[0]
        .ns
        .exec(
            &routectl.to_string_lossy(),
            &["ipam", "check", "--etcd-endpoints", endpoint.as_str()],
        )
        .unwrap();
    assert!(check.contains("found 0 problems"), "{check}");
}

/// `ping -i 0.1 -c N` from `from` to `to`; (transmitted, received).
fn ping_count(from: &harness::Netns, to: std::net::IpAddr, n: u32) -> (u32, u32) {
    let out = from
        .output(
            "ping",
            &[
                "-i",
                "0.1",
                "-c",
                &n.to_string(),
                "-W",
                "1",
                &to.to_string(),
            ],
        )
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_default();
    let nums: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (
        nums.first().copied().unwrap_or(0),
        nums.get(1).copied().unwrap_or(0),
    )
}

#[test]
fn sigkill_and_restart_of_an_agent_loses_no_ping() {
    if !require_live(
        "sigkill_and_restart_of_an_agent_loses_no_ping",
        &["ip", "ping", "etcd"],
    ) {
        return;
    }
    let mut lab = Lab::start("gr", LabOptions::default()).unwrap();
    lab.wait_mesh(Duration::from_secs(60)).unwrap();
    let target = lab.add_pod(0, "n1a").unwrap();
    lab.add_pod(1, "n2a").unwrap();
    lab.add_pod(2, "n3a").unwrap();
    wait_until("pods reach each other", Duration::from_secs(30), || {
        Ok(lab.ping_matrix().iter().all(|(_, _, ok)| *ok))
    })
    .unwrap();
    let routes = |lab: &Lab| {
        let v4 = lab.nodes[1].ns.ip(&["route", "show", "proto", "95"]);
        let v6 = lab.nodes[1].ns.ip(&["-6", "route", "show", "proto", "95"]);
        Ok::<_, anyhow::Error>(format!("{}{}", v4?, v6?))
    };
    let routes_before = routes(&lab).unwrap();

    // Pods on n2 (direct) and n3 (VXLAN) ping n1's pod, at its IPv4 and
    // its IPv6 address, for 8 s while n1's agent is killed and, 2 s
    // later, started again.
    let n2_pod = lab.nodes[1].pods[0].ns.name().to_string();
    let n3_pod = lab.nodes[2].pods[0].ns.name().to_string();
    let target6 = lab.nodes[0].pods[0].ip6.unwrap();
    let pingers: Vec<_> = [
        (n2_pod.clone(), target),
        (n3_pod.clone(), target),
        (n2_pod, target6),
        (n3_pod, target6),
    ]
    .into_iter()
    .map(|(ns, target)| {
        std::thread::spawn(move || {
            let out = std::process::Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns,
                    "ping",
                    "-i",
                    "0.1",
                    "-c",
                    "80",
                    "-W",
                    "1",
                    &target.to_string(),
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    })
    .collect();
    std::thread::sleep(Duration::from_secs(1));
    lab.stop_agent(0, true);
    std::thread::sleep(Duration::from_secs(2));
    lab.restart_agent(0).unwrap();
    // It knows it restarted (its routes were still in the kernel), so its
    // OPENs carry graceful restart's R bit until it has converged.
    wait_until("the restart to be noticed", Duration::from_secs(10), || {
        Ok(std::fs::read_to_string(lab.nodes[0].log())?.contains("restarting: the kernel holds"))
    })
    .unwrap();
    for p in pingers {
        let text = p.join().unwrap();
        let line = text
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .unwrap()
            .to_string();
        assert!(
            line.starts_with("80 packets transmitted, 80 received"),
            "lost pings: {line}"
        );
    }
    lab.wait_mesh(Duration::from_secs(30)).unwrap();
    // Nothing duplicated or lost on the other nodes once it settles.
    wait_until("n2's routes as before", Duration::from_secs(20), || {
        Ok(routes(&lab)? == routes_before)
    })
    .unwrap();
    let (sent, got) = ping_count(&lab.nodes[1].pods[0].ns, target, 5);
    assert_eq!((sent, got), (5, 5));
}

#[test]
fn an_agent_down_past_its_restart_time_keeps_its_routes_long_lived_and_its_pods_reachable() {
    if !require_live(
        "an_agent_down_past_its_restart_time_keeps_its_routes_long_lived_and_its_pods_reachable",
        &["ip", "ping", "etcd"],
    ) {
        return;
    }
    // A 2 s restart time, then 60 s long-lived (RFC 9494).
    let opts = LabOptions {
        extra_env: vec![
            ("TABBY_BGP_RESTART_TIME".into(), "2".into()),
            ("TABBY_BGP_LLGR_STALE_TIME".into(), "60".into()),
        ],
        ..LabOptions::default()
    };
    let mut lab = Lab::start("llgr", opts).unwrap();
    lab.wait_mesh(Duration::from_secs(60)).unwrap();
    let target = lab.add_pod(0, "n1a").unwrap();
    lab.add_pod(1, "n2a").unwrap();
    wait_until("n2a reaches n1a", Duration::from_secs(30), || {
        Ok(ping_count(&lab.nodes[1].pods[0].ns, target, 1) == (1, 1))
    })
    .unwrap();
    let block = match target {
        std::net::IpAddr::V4(a) => ipnet::Ipv4Net::new(a, 26).unwrap().trunc().to_string(),
        _ => unreachable!(),
    };
    let n1 = lab.nodes[0].address.to_string();

    // n1's agent dies and stays down well past its 2 s: n2 keeps its
    // routes, long-lived stale, and says so in `routectl peers`; n1's
    // kernel still forwards, so its pod stays reachable.
    lab.stop_agent(0, true);
    let mut last = String::new();
    let kept = wait_until(
        "n2 to keep n1's routes long-lived",
        Duration::from_secs(30),
        || {
            last = lab.routectl(1, &["peers"])?;
            Ok(last
                .lines()
                .any(|l| l.contains(&n1) && l.contains("stale routes (long-lived)")))
        },
    );
    assert!(kept.is_ok(), "{kept:?}; routectl peers on n2:\n{last}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !lab.nodes[1]
            .ns
            .ip(&["route", "show", &block])
            .unwrap()
            .trim()
            .is_empty(),
        "n1's block still routed on n2"
    );
    assert_eq!(ping_count(&lab.nodes[1].pods[0].ns, target, 5), (5, 5));

    // Back: fresh routes, nothing kept stale any more.
    lab.restart_agent(0).unwrap();
    lab.wait_mesh(Duration::from_secs(60)).unwrap();
    wait_until(
        "n2 to stop keeping stale routes",
        Duration::from_secs(30),
        || Ok(!lab.routectl(1, &["peers"])?.contains("stale routes")),
    )
    .unwrap();
    assert_eq!(ping_count(&lab.nodes[1].pods[0].ns, target, 5), (5, 5));
}

/// The control case of the test above: without long-lived graceful
/// restart, n1's routes stay on n2 through its 4 s restart time, and
/// leave once it is over.
#[test]
fn without_long_lived_restart_an_agents_routes_leave_after_its_restart_time() {
    if !require_live(
        "without_long_lived_restart_an_agents_routes_leave_after_its_restart_time",
        &["ip", "etcd"],
    ) {
        return;
    }
    let opts = LabOptions {
        extra_env: vec![
            ("TABBY_BGP_RESTART_TIME".into(), "4".into()),
            ("TABBY_BGP_LLGR_STALE_TIME".into(), "0".into()),
        ],
        ..LabOptions::default()
    };
    let mut lab = Lab::start("nollgr", opts).unwrap();
    lab.wait_mesh(Duration::from_secs(60)).unwrap();
    let target = lab.add_pod(0, "n1a").unwrap();
    let block = match target {
        std::net::IpAddr::V4(a) => ipnet::Ipv4Net::new(a, 26).unwrap().trunc().to_string(),
        _ => unreachable!(),
    };
    let routed = |lab: &Lab| -> anyhow::Result<bool> {
        Ok(!lab.nodes[1]
            .ns
            .ip(&["route", "show", &block])?
            .trim()
            .is_empty())
    };
    wait_until("n1's block on n2", Duration::from_secs(30), || routed(&lab)).unwrap();
    lab.stop_agent(0, true);
    // Kept through the restart time (graceful restart alone)...
    let n1 = lab.nodes[0].address.to_string();
    wait_until(
        "n2 to keep n1's routes stale",
        Duration::from_secs(30),
        || {
            let peers = lab.routectl(1, &["peers"])?;
            let kept = peers
                .lines()
                .any(|l| l.contains(&n1) && l.contains("keeping") && !l.contains("long-lived"));
            Ok(kept && routed(&lab)?)
        },
    )
    .unwrap();
    // ...and gone after it, never long-lived.
    wait_until("n1's block gone from n2", Duration::from_secs(30), || {
        Ok(!routed(&lab)?)
    })
    .unwrap();
}

#[test]
fn a_fourth_node_joins_live_and_a_dead_nodes_routes_leave_within_the_hold_time() {
    if !require_live(
        "a_fourth_node_joins_live_and_a_dead_nodes_routes_leave_within_the_hold_time",
        &["ip", "ping", "etcd"],
    ) {
        return;
    }
    let mut lab = Lab::start("join", LabOptions::default()).unwrap();
    lab.wait_mesh(Duration::from_secs(60)).unwrap();
    lab.add_pod(0, "n1a").unwrap();
    // n4 joins subnet B; nobody else restarts.
    lab.add_node("join", 4).unwrap();
    lab.wait_mesh(Duration::from_secs(60)).unwrap();
    let n4_pod = lab.add_pod(3, "n4a").unwrap();
    wait_until("n1a reaches n4a", Duration::from_secs(30), || {
        Ok(lab.nodes[0].pods[0]
            .ns
            .exec("ping", &["-c", "1", "-W", "1", &n4_pod.to_string()])
            .is_ok())
    })
    .unwrap();
    let block = match n4_pod {
        std::net::IpAddr::V4(a) => ipnet::Ipv4Net::new(a, 26).unwrap().trunc().to_string(),
        _ => unreachable!(),
    };
    assert!(
        lab.nodes[0]
            .ns
            .ip(&["route", "show", &block])
            .unwrap()
            .contains("vxlan.tabby")
    );

    // n4 dies (its link goes down, no TCP close reaches anyone): the others'
    // hold timers (9 s) expire, and with a hold-timer expiry graceful
    // restart does not apply, so its block leaves their tables.
    lab.nodes[3]
        .ns
        .ip(&["link", "set", "eth0", "down"])
        .unwrap();
    let gone = std::time::Instant::now();
    wait_until("n4's block gone from n1", Duration::from_secs(20), || {
        Ok(lab.nodes[0]
            .ns
            .ip(&["route", "show", &block])?
            .trim()
            .is_empty())
    })
    .unwrap();
    let took = gone.elapsed();
    assert!(
        took >= Duration::from_secs(5),
        "removed before the hold time could expire: {took:?}"
    );

    // The operator deletes n4 for good: the others drop its VTEP (both
    // tunnel addresses' neighbour entries and the FDB entry).
    let vtep = |lab: &Lab| {
        let neigh = lab.nodes[0]
            .ns
            .ip(&["neigh", "show", "dev", "vxlan.tabby"])?;
        let fdb = lab.nodes[0]
            .ns
            .exec("bridge", &["fdb", "show", "dev", "vxlan.tabby"])?;
        Ok::<_, anyhow::Error>((neigh, fdb))
    };
    let (neigh, fdb) = vtep(&lab).unwrap();
    assert_eq!(
        neigh.lines().count(),
        6,
        "n2, n3, n4, two families:\n{neigh}"
    );
    assert!(fdb.contains("dst 10.201.0.4"), "{fdb}");
    let routectl = harness::lab::workspace_binary("routectl").unwrap();
    let endpoint = lab.etcd.endpoint();
    let deleted = lab.nodes[0]
        .ns
        .exec(
            &routectl.to_string_lossy(),
            &[
                "delete",
                "node",
                "n4",
                "--force",
                "--etcd-endpoints",
                &endpoint,
            ],
        )
        .unwrap();
    assert!(deleted.contains("n4"), "{deleted}");
    wait_until("n4's VTEP gone from n1", Duration::from_secs(20), || {
        let (neigh, fdb) = vtep(&lab)?;
        Ok(neigh.lines().count() == 4 && !fdb.contains("dst 10.201.0.4"))
    })
    .unwrap();
    let (_, fdb) = vtep(&lab).unwrap();
    assert!(fdb.contains("dst 10.201.0.3"), "n3's entry stays: {fdb}");
}

#[test]
fn an_etcd_outage_keeps_pods_connected_and_refuses_new_pods_with_code_11() {
    if !require_live(
        "an_etcd_outage_keeps_pods_connected_and_refuses_new_pods_with_code_11",
        &["ip", "ping", "etcd"],
    ) {
        return;
    }
    let mut lab = Lab::start("outage", LabOptions::default()).unwrap();
    lab.wait_mesh(Duration::from_secs(60)).unwrap();
    for i in 0..3 {
        lab.add_pod(i, &format!("n{}a", i + 1)).unwrap();
    }
    wait_until("full matrix", Duration::from_secs(30), || {
        Ok(lab.ping_matrix().iter().all(|x| x.2))
    })
    .unwrap();
    lab.etcd.stop();
    let down = std::time::Instant::now();
    let pod = harness::Netns::new("outage-pod").unwrap();
    let err = lab.cni(0, "ADD", "late", "c-late", &pod).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("\"code\":11") || text.contains("\"code\": 11"),
        "{text}"
    );
    // 30 s without etcd: every pod still reaches every other.
    while down.elapsed() < Duration::from_secs(30) {
        let m = lab.ping_matrix();
        assert!(
            m.iter().all(|x| x.2),
            "lost connectivity during the outage: {m:?}"
        );
        std::thread::sleep(Duration::from_secs(5));
    }
    lab.etcd.start_again().unwrap();
    wait_until(
        "a new pod once etcd is back",
        Duration::from_secs(30),
        || Ok(lab.cni(0, "ADD", "late", "c-late", &pod).is_ok()),
    )
    .unwrap();
    lab.wait_mesh(Duration::from_secs(30)).unwrap();
}

#[test]
fn bird_as_a_global_bgp_peer_learns_every_block_and_its_foreign_prefix_is_not_installed() {
    if !require_live(
        "bird_as_a_global_bgp_peer_learns_every_block_and_its_foreign_prefix_is_not_installed",
        &["ip", "etcd", "bird", "birdc"],
    ) {
        return;
    }
    let mut lab = Lab::start("tor", LabOptions::default()).unwrap();
    lab.wait_mesh(Duration::from_secs(60)).unwrap();
    let mut blocks = Vec::new();
    for i in 0..3 {
        let ip = lab.add_pod(i, &format!("n{}a", i + 1)).unwrap();
        let std::net::IpAddr::V4(a) = ip else {
            unreachable!()
        };
        blocks.push(ipnet::Ipv4Net::new(a, 26).unwrap().trunc().to_string());
    }
    let blocks6: Vec<String> = (0..3)
        .map(|i| {
            let a6 = lab.nodes[i].pods[0].ip6.unwrap();
            format!("{}/122", a6)
                .parse::<ipnet::IpNet>()
                .unwrap()
                .trunc()
                .to_string()
        })
        .collect();
    // A top-of-rack router: BIRD on subnet A, AS 65000, announcing a
    // prefix outside every pool.
    let tor_ns = harness::Netns::new("tor-bird").unwrap();
    lab.subnet_a
        .attach(&tor_ns, "eth0", "10.200.0.50/24")
        .unwrap();
    tor_ns
        .ip(&["route", "add", "default", "via", "10.200.0.254"])
        .unwrap();
    tor_ns
        .ip(&["addr", "add", "fd00:200::50/64", "dev", "eth0", "nodad"])
        .unwrap();
    let config = "router id 10.200.0.50;\n\
        protocol device { scan time 10; }\n\
        protocol kernel { ipv4 { import none; export none; }; }\n\
        protocol direct { ipv6; }\n\
        protocol static { ipv4; route 192.168.99.0/24 blackhole; }\n\
        template bgp tor { local 10.200.0.50 as 65000; multihop 4; connect delay time 1; connect retry time 2;\n\
          ipv4 { import all; export where source = RTS_STATIC; };\n\
          ipv6 { import all; export none; }; }\n\
        protocol bgp n1 from tor { neighbor 10.200.0.1 as 64512; }\n\
        protocol bgp n2 from tor { neighbor 10.200.0.2 as 64512; }\n\
        protocol bgp n3 from tor { neighbor 10.201.0.3 as 64512; }\n";
    let bird = harness::Bird::start(&tor_ns, config).unwrap();
    // The global BGPPeer, applied with routectl as a Calico v3 manifest
    // (from a node: etcd is reachable there). A typo is refused first,
    // naming the field, and stores nothing.
    let routectl = harness::lab::workspace_binary("routectl")
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let endpoint = lab.etcd.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let manifest = "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: tor\nspec:\n  peerIP: 10.200.0.50\n  asNumber: 65000\n";
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, manifest.replace("asNumber", "asNumbr")).unwrap();
    let out = lab.nodes[0]
        .ns
        .output(
            &routectl,
            &[
                "apply",
                "-f",
                &bad.to_string_lossy(),
                "--etcd-endpoints",
                &endpoint,
            ],
        )
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("asNumbr"),
        "{out:?}"
    );
    let good = dir.path().join("tor.yaml");
    std::fs::write(&good, manifest).unwrap();
    let applied = lab.nodes[0]
        .ns
        .exec(
            &routectl,
            &[
                "apply",
                "-f",
                &good.to_string_lossy(),
                "--etcd-endpoints",
                &endpoint,
            ],
        )
        .unwrap();
    assert!(applied.contains("BGPPeer tor applied"), "{applied}");
    wait_until(
        "BIRD Established with all three nodes",
        Duration::from_secs(60),
        || Ok(bird.established()? == 3),
    )
    .unwrap();
    wait_until("BIRD learned every block", Duration::from_secs(30), || {
        let routes = bird.birdc("show route")?;
        Ok(blocks.iter().all(|b| routes.contains(b.as_str())))
    })
    .unwrap();
    // Dual stack: the IPv6 blocks come over the same IPv4 sessions
    // (MP-BGP), each with its node's IPv6 address as next hop.
    wait_until(
        "BIRD learned every IPv6 block",
        Duration::from_secs(30),
        || {
            let routes = bird.birdc("show route table master6")?;
            Ok(blocks6.iter().all(|b| routes.contains(b.as_str())))
        },
    )
    .unwrap();
    let n1_v6 = bird
        .birdc(&format!("show route table master6 {} all", blocks6[0]))
        .unwrap();
    assert!(n1_v6.contains("BGP.next_hop: fd00:200::1"), "{n1_v6}");
    let all = bird.birdc("show route all").unwrap();
    assert!(
        all.contains("BGP.as_path: 64512"),
        "eBGP: the nodes prepend their AS: {all}"
    );
    let peers = lab.routectl(0, &["peers"]).unwrap();
    assert!(
        peers.contains("10.200.0.50") && peers.contains("global"),
        "{peers}"
    );
    // Give the foreign prefix time to arrive, then check no node took it.
    std::thread::sleep(Duration::from_secs(2));
    for node in &lab.nodes {
        let routes = node.ns.ip(&["route", "show"]).unwrap();
        assert!(
            !routes.contains("192.168.99.0"),
            "{} installed a prefix outside the pools:\n{routes}",
            node.name
        );
    }
    let rows: serde_json::Value =
        serde_json::from_str(&lab.routectl(0, &["peers", "-o", "json"]).unwrap()).unwrap();
    let tor = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "10.200.0.50")
        .unwrap()
        .clone();
    assert_eq!(tor["state"], "Established");
    assert_eq!(
        tor["prefixes_sent"], 2,
        "only n1's own blocks (IPv4 and IPv6) go to the ToR: {tor}"
    );
}

/// The value of metric `name` for `peer` in a Prometheus scrape.
fn peer_metric(body: &str, name: &str, peer: &str) -> Option<f64> {
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && s.labels.get("peer") == Some(peer))
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

#[test]
fn health_and_metrics_follow_the_sessions() {
    if !require_live("health_and_metrics_follow_the_sessions", &["ip", "etcd"]) {
        return;
    }
    let mut lab = Lab::start("metrics", LabOptions::default()).unwrap();
    lab.wait_mesh(Duration::from_secs(60)).unwrap();
    wait_until("n1 ready", Duration::from_secs(20), || {
        Ok(lab.http_get(0, "/readiness")?.0.contains("200"))
    })
    .unwrap();
    assert!(lab.http_get(0, "/liveness").unwrap().0.contains("200"));
    let (status, body) = lab.http_get(0, "/metrics").unwrap();
    assert!(status.contains("200"), "{status}");
    assert_eq!(
        peer_metric(&body, "tabby_bgp_peer_state", "10.200.0.2"),
        Some(6.0),
        "{body}"
    );
    assert_eq!(
        peer_metric(&body, "tabby_bgp_peer_established", "10.201.0.3"),
        Some(1.0)
    );
    assert!(peer_metric(&body, "tabby_bgp_messages_received_total", "10.200.0.2").unwrap() >= 2.0);
    // n2's blocks (IPv4 and IPv6, claimed by its tunnel addresses) pass
    // n1's import: accepted, not only received.
    wait_until(
        "n2's blocks accepted by n1",
        Duration::from_secs(20),
        || {
            let (_, body) = lab.http_get(0, "/metrics")?;
            Ok(peer_metric(&body, "tabby_bgp_prefixes_accepted", "10.200.0.2") == Some(2.0))
        },
    )
    .unwrap();
    // Route programming, the agent's IPAM reads and datastore errors.
    let (_, body) = lab.http_get(0, "/metrics").unwrap();
    let value = |line_start: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(line_start))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {line_start}:\n{body}"))
    };
    assert!(body.contains("# TYPE tabby_route_programming_seconds summary"));
    assert!(
        value("tabby_route_programming_seconds_count ") >= 1.0,
        "{body}"
    );
    assert!(
        value("tabby_route_programming_seconds_sum ") > 0.0,
        "{body}"
    );
    assert!(
        value("tabby_ipam_operation_seconds_count{operation=\"snapshot\"} ") >= 1.0,
        "{body}"
    );
    assert!(
        value("tabby_ipam_operation_seconds_count{operation=\"assign_tunnel_address\"} ") >= 2.0,
        "VXLAN IPv4 and IPv6 tunnel addresses: {body}"
    );
    assert_eq!(value("tabby_datastore_errors_total "), 0.0);
    // n2's agent stops: n1's metric for it leaves Established.
    lab.stop_agent(1, false);
    wait_until("n1 sees n2 down", Duration::from_secs(20), || {
        let (_, body) = lab.http_get(0, "/metrics")?;
        Ok(peer_metric(&body, "tabby_bgp_peer_state", "10.200.0.2").is_some_and(|v| v < 6.0))
    })
    .unwrap();
    assert_eq!(
        lab.http_get(0, "/nope")
            .unwrap()
            .0
            .split_whitespace()
            .nth(1),
        Some("404")
    );
}

#[test]
fn the_bgp_configuration_sets_the_as_and_turns_the_mesh_off() {
    if !require_live(
        "the_bgp_configuration_sets_the_as_and_turns_the_mesh_off",
        &["ip", "etcd", "etcdctl"],
    ) {
        return;
    }
    let opts = LabOptions {
        nodes: 0,
        ..LabOptions::default()
    };
    let mut lab = Lab::start("bgpc", opts).unwrap();
    let put = |lab: &Lab, spec: serde_json::Value| {
        let value = serde_json::json!({
            "apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration",
            "metadata": {"name": "default"}, "spec": spec});
        lab.etcd
            .etcdctl(&[
                "put",
                "/tabby/v1/resources/bgpconfigurations/default",
                &value.to_string(),
            ])
            .unwrap();
    };
    put(&lab, serde_json::json!({"asNumber": 64600}));
    lab.add_node("bgpc", 1).unwrap();
    lab.add_node("bgpc", 2).unwrap();
    lab.wait_mesh(Duration::from_secs(60)).unwrap();
    let node = lab
        .etcd
        .etcdctl(&["get", "--print-value-only", "/tabby/v1/nodes/n1"])
        .unwrap();
    assert!(node.contains("\"asNumber\":64600"), "{node}");

    // Mesh off: the sessions go, without a restart.
    put(
        &lab,
        serde_json::json!({"asNumber": 64600, "nodeToNodeMeshEnabled": false}),
    );
    wait_until("the mesh sessions to go", Duration::from_secs(30), || {
        let out = lab.routectl(0, &["peers", "-o", "json"])?;
        let rows: serde_json::Value = serde_json::from_str(&out)?;
        Ok(rows.as_array().is_some_and(|r| r.is_empty()))
    })
    .unwrap();
    // and back on
    put(
        &lab,
        serde_json::json!({"asNumber": 64600, "nodeToNodeMeshEnabled": true}),
    );
    lab.wait_mesh(Duration::from_secs(60)).unwrap();
}

#[test]
fn a_bgp_peer_over_its_max_prefix_is_closed_with_cease_6_1() {
    if !require_live(
        "a_bgp_peer_over_its_max_prefix_is_closed_with_cease_6_1",
        &["ip", "etcd", "etcdctl", "bird", "birdc"],
    ) {
        return;
    }
    let opts = LabOptions {
        nodes: 1,
        ..LabOptions::default()
    };
    let lab = Lab::start("maxp", opts).unwrap();
    let tor_ns = harness::Netns::new("maxp-bird").unwrap();
    lab.subnet_a
        .attach(&tor_ns, "eth0", "10.200.0.50/24")
        .unwrap();
    // Three prefixes (inside the pool, so import would take them) against
    // a limit of two.
    let config = "router id 10.200.0.50;\n\
        protocol device { scan time 10; }\n\
        protocol static { ipv4; route 10.0.200.0/26 blackhole; route 10.0.200.64/26 blackhole; route 10.0.200.128/26 blackhole; }\n\
        protocol bgp n1 { local 10.200.0.50 as 65000; neighbor 10.200.0.1 as 64512; connect delay time 1; connect retry time 2;\n\
          ipv4 { import all; export where source = RTS_STATIC; }; }\n";
    let bird = harness::Bird::start(&tor_ns, config).unwrap();
    let peer = serde_json::json!({
        "apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
        "metadata": {"name": "tor"},
        "spec": {"peerIP": "10.200.0.50", "asNumber": 65000, "node": "n1", "maxPrefix": 2}});
    lab.etcd
        .etcdctl(&["put", "/tabby/v1/resources/bgppeers/tor", &peer.to_string()])
        .unwrap();
    wait_until(
        "BIRD to be told the limit was reached",
        Duration::from_secs(60),
        || {
            let proto = bird.birdc("show protocols all n1")?;
            Ok(proto.contains("Maximum number of prefixes reached"))
        },
    )
    .unwrap();
    let log = std::fs::read_to_string(lab.nodes[0].log()).unwrap();
    assert!(log.contains("Cease 6/1"), "{log}");
    // None of the three was installed: the session's routes went with it.
    let routes = lab.nodes[0].ns.ip(&["route", "show"]).unwrap();
    assert!(!routes.contains("10.0.200."), "{routes}");
}

#[test]
fn a_borrowed_address_is_announced_as_a_host_route_and_reached() {
    if !require_live(
        "a_borrowed_address_is_announced_as_a_host_route_and_reached",
        &["ip", "ping", "etcd"],
    ) {
        return;
    }
    // One /26 pool, one block: n1's first pod claims it, so n2's pod
    // borrows an address from n1's block (strictAffinity is off).
    let opts = LabOptions {
        nodes: 2,
        pool: "10.0.0.0/26".into(),
        vxlan: "Never".into(),
        ..LabOptions::default()
    };
    let mut lab = Lab::start("borrow", opts).unwrap();
    lab.wait_mesh(Duration::from_secs(60)).unwrap();
    let a = lab.add_pod(0, "ba").unwrap();
    let b = lab.add_pod(1, "bb").unwrap();
    assert!(a.to_string().starts_with("10.0.0.") && b.to_string().starts_with("10.0.0."));
    // n1 owns the block (blackhole) and routes the borrowed /32 to n2.
    wait_until(
        "n1 to route the borrowed address to n2",
        Duration::from_secs(30),
        || {
            let r = lab.nodes[0].ns.ip(&["route", "show", &format!("{b}/32")])?;
            Ok(r.contains("via 10.200.0.2"))
        },
    )
    .unwrap();
    let mut last = Vec::new();
    wait_until(
        "both pods to reach each other",
        Duration::from_secs(30),
        || {
            last = lab.ping_matrix();
            Ok(last.iter().all(|(_, _, ok)| *ok))
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {last:?}"));
    let table = lab.nodes[0].ns.ip(&["route", "show"]).unwrap();
    assert!(table.contains("blackhole 10.0.0.0/26"), "{table}");
}

#[test]
fn pods_of_a_nat_outgoing_pool_reach_outside_masqueraded() {
    if !require_live(
        "pods_of_a_nat_outgoing_pool_reach_outside_masqueraded",
        &["ip", "ping", "etcd", "nft"],
    ) {
        return;
    }
    // The lab's default pool has natOutgoing: true (as tabby-node creates
    // it, like calico-node). "Outside" is a namespace on subnet A with no
    // route to the pods: only masqueraded traffic can be answered.
    // The IPv6 default pool gets natOutgoing too (off by default, as
    // Calico's CALICO_IPV6POOL_NAT_OUTGOING).
    let opts = LabOptions {
        nodes: 2,
        extra_env: vec![("TABBY_IPV6POOL_NAT_OUTGOING".into(), "true".into())],
        ..LabOptions::default()
    };
    let mut lab = Lab::start("nat", opts).unwrap();
    lab.wait_mesh(Duration::from_secs(60)).unwrap();
    let outside = harness::Netns::new("nat-out").unwrap();
    lab.subnet_a
        .attach(&outside, "eth0", "10.200.0.77/24")
        .unwrap();
    outside
        .ip(&["addr", "add", "fd00:200::77/64", "dev", "eth0", "nodad"])
        .unwrap();
    lab.add_pod(0, "na").unwrap();
    lab.add_pod(1, "nb").unwrap();
    let pod = &lab.nodes[0].pods[0];
    wait_until("the pod to reach outside", Duration::from_secs(30), || {
        Ok(pod
            .ns
            .exec("ping", &["-c", "1", "-W", "1", "10.200.0.77"])
            .is_ok())
    })
    .unwrap();
    // The rule's packet counter: connections it translated on node `i`.
    let translated = |i: usize| -> u64 {
        let table = lab.nodes[i]
            .ns
            .exec("nft", &["list", "table", "ip", "tabby-nat"])
            .unwrap();
        assert!(
            table.contains("ip saddr @masq-pools ip daddr != @all-pools counter packets")
                && table.contains("10.0.0.0/16"),
            "{table}"
        );
        let after = table.split("counter packets ").nth(1).unwrap();
        after.split_whitespace().next().unwrap().parse().unwrap()
    };
    assert!(translated(0) > 0);
    // IPv6 likewise, through the ip6 table.
    wait_until(
        "the pod to reach outside over IPv6",
        Duration::from_secs(30),
        || {
            Ok(pod
                .ns
                .exec("ping", &["-c", "1", "-W", "1", "fd00:200::77"])
                .is_ok())
        },
    )
    .unwrap();
    let table6 = lab.nodes[0]
        .ns
        .exec("nft", &["list", "table", "ip6", "tabby-nat"])
        .unwrap();
    assert!(
        table6.contains("ip6 saddr @masq-pools ip6 daddr != @all-pools counter packets")
            && table6.contains("fd00:10::/48")
            && !table6.contains("counter packets 0 "),
        "{table6}"
    );
    // Pod to pod is never translated.
    let mut all = Vec::new();
    wait_until("pod to pod both ways", Duration::from_secs(30), || {
        all = lab.ping_matrix();
        Ok(all.iter().all(|(_, _, ok)| *ok))
    })
    .unwrap_or_else(|e| panic!("{e}: {all:?}"));
    let before = (translated(0), translated(1));
    assert!(lab.ping_matrix().iter().all(|(_, _, ok)| *ok));
    assert_eq!(
        (translated(0), translated(1)),
        before,
        "pod-to-pod traffic was masqueraded"
    );
}

#[test]
fn json_logs_are_one_object_per_line_and_never_one_per_route() {
    if !require_live(
        "json_logs_are_one_object_per_line_and_never_one_per_route",
        &["ip", "etcd"],
    ) {
        return;
    }
    let opts = LabOptions {
        nodes: 2,
        extra_env: vec![("TABBY_LOG_FORMAT".into(), "json".into())],
        ..LabOptions::default()
    };
    let mut lab = Lab::start("jlog", opts).unwrap();
    lab.wait_mesh(Duration::from_secs(60)).unwrap();
    let mut ips = Vec::new();
    for i in 0..6 {
        ips.push(lab.add_pod(i % 2, &format!("jl{i}")).unwrap().to_string());
    }
    wait_until("the pods' routes", Duration::from_secs(30), || {
        Ok(lab.ping_matrix().iter().all(|(_, _, ok)| *ok))
    })
    .unwrap();
    let log = std::fs::read_to_string(lab.nodes[0].log()).unwrap();
    let mut lines = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{line}"
        );
        if v["level"] == "INFO" {
            for ip in &ips {
                assert!(
                    !line.contains(ip.as_str()),
                    "an info line per route: {line}"
                );
            }
        }
        lines += 1;
    }
    assert!(lines > 3, "{log}");
}

#[test]
fn watches_drive_the_agents_without_waiting_for_the_periodic_round() {
    if !require_live(
        "watches_drive_the_agents_without_waiting_for_the_periodic_round",
        &["ip", "ping", "etcd"],
    ) {
        return;
    }
    // A periodic round only every 10 minutes: everything below has to
    // come from etcd watches and session events.
    let opts = LabOptions {
        extra_env: vec![("TABBY_RESYNC_MS".into(), "600000".into())],
        ..LabOptions::default()
    };
    let mut lab = Lab::start("watch", opts).unwrap();
    lab.wait_mesh(Duration::from_secs(30)).unwrap();
    // n1's new block reaches n3 as an UPDATE only: nothing in etcd that
    // n3 watches changes, so n3 programs it because the UPDATE came.
    let a = lab.add_pod(0, "wa").unwrap();
    wait_until("n3 to route n1's block", Duration::from_secs(20), || {
        let r = lab.nodes[2].ns.ip(&["route", "get", &a.to_string()])?;
        Ok(r.contains("dev vxlan.tabby"))
    })
    .unwrap();
    lab.add_pod(2, "wc").unwrap();
    lab.add_pod(0, "wa2").unwrap();
    let mut last = Vec::new();
    wait_until("pods to reach each other", Duration::from_secs(30), || {
        last = lab.ping_matrix();
        Ok(last.iter().all(|(_, _, ok)| *ok))
    })
    .unwrap_or_else(|e| panic!("{e}: {last:?}"));
}

#[test]
fn a_route_reflector_node_replaces_the_mesh() {
    if !require_live(
        "a_route_reflector_node_replaces_the_mesh",
        &["ip", "ping", "etcd", "etcdctl"],
    ) {
        return;
    }
    // Calico's route-reflector setup: no mesh, n1 labelled and given a
    // cluster ID, one BGPPeer "every node peers with the reflectors".
    let opts = LabOptions {
        nodes: 0,
        ..LabOptions::default()
    };
    let mut lab = Lab::start("rr", opts).unwrap();
    let put = |key: &str, value: serde_json::Value| {
        lab.etcd.etcdctl(&["put", key, &value.to_string()]).unwrap();
    };
    put(
        "/tabby/v1/resources/bgpconfigurations/default",
        serde_json::json!({"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration",
            "metadata": {"name": "default"}, "spec": {"nodeToNodeMeshEnabled": false}}),
    );
    put(
        "/tabby/v1/nodes/n1",
        serde_json::json!({"apiVersion": "projectcalico.org/v3", "kind": "Node",
            "metadata": {"name": "n1", "labels": {"route-reflector": "true"}},
            "spec": {"bgp": {"routeReflectorClusterID": "244.0.0.1"}}}),
    );
    put(
        "/tabby/v1/resources/bgppeers/peer-with-route-reflectors",
        serde_json::json!({"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
            "metadata": {"name": "peer-with-route-reflectors"},
            "spec": {"nodeSelector": "all()", "peerSelector": "route-reflector == 'true'",
                     "asNumber": 64512}}),
    );
    for i in 1..=3 {
        lab.add_node("rr", i).unwrap();
    }
    // n1 has a session with each client; the clients only with n1.
    let sessions = |i: usize| -> Vec<String> {
        let out = lab.routectl(i, &["peers", "-o", "json"]).unwrap();
        let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["state"] == "Established")
            .map(|r| r["address"].as_str().unwrap().to_string())
            .collect()
    };
    wait_until("the reflector sessions", Duration::from_secs(60), || {
        Ok(
            sessions(0).len() == 2
                && sessions(1) == ["10.200.0.1"]
                && sessions(2) == ["10.200.0.1"],
        )
    })
    .unwrap_or_else(|e| panic!("{e}: {:?} {:?} {:?}", sessions(0), sessions(1), sessions(2)));
    // n2's block reaches n3 only through the reflector, next hop n2
    // (over VXLAN: another subnet).
    for i in 0..3 {
        lab.add_pod(i, &format!("r{i}")).unwrap();
    }
    let mut last = Vec::new();
    wait_until(
        "every pod to reach every other",
        Duration::from_secs(30),
        || {
            last = lab.ping_matrix();
            Ok(last.iter().all(|(_, _, ok)| *ok))
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {last:?}"));
}

#[test]
fn pods_across_subnets_reach_each_other_over_ipip_where_the_kernel_has_it() {
    let test = "pods_across_subnets_reach_each_other_over_ipip_where_the_kernel_has_it";
    if !agent::dataplane::encap::kernel_has_ipip() {
        harness::skip_for_kernel_feature(test, "ipip (CONFIG_NET_IPIP)");
        return;
    }
    if !require_live(test, &["ip", "ping", "etcd"]) {
        return;
    }
    let opts = LabOptions {
        vxlan: "Never".into(),
        ipip: "CrossSubnet".into(),
        pool6: None,
        ..LabOptions::default()
    };
    let mut lab = Lab::start("ipip", opts).unwrap();
    lab.wait_mesh(Duration::from_secs(60)).unwrap();
    for i in 0..3 {
        lab.add_pod(i, &format!("n{}a", i + 1)).unwrap();
    }
    let mut last = Vec::new();
    let all = wait_until("the IPIP ping matrix", Duration::from_secs(30), || {
        last = lab.ping_matrix();
        Ok(last.iter().all(|(_, _, ok)| *ok))
    });
    assert!(all.is_ok(), "unreachable: {last:?}");
    // n3 (other subnet) through tunl0 onlink, n2 (same subnet) directly.
    let block_of = |i: usize| match lab.nodes[i].pods[0].ip {
        std::net::IpAddr::V4(a) => ipnet::Ipv4Net::new(a, 26).unwrap().trunc().to_string(),
        _ => unreachable!(),
    };
    let n3 = lab.nodes[0]
        .ns
        .ip(&["route", "show", &block_of(2)])
        .unwrap();
    assert!(
        n3.contains("via 10.201.0.3 dev tunl0") && n3.contains("onlink"),
        "{n3}"
    );
    let n2 = lab.nodes[0]
        .ns
        .ip(&["route", "show", &block_of(1)])
        .unwrap();
    assert!(n2.contains("via 10.200.0.2 dev eth0"), "{n2}");
    let tunl0 = lab.nodes[0]
        .ns
        .ip(&["-o", "addr", "show", "dev", "tunl0"])
        .unwrap();
    assert!(
        tunl0.contains("/32"),
        "the node's IPIP tunnel address: {tunl0}"
    );
}
