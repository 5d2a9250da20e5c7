//! Self-tests of the lab harness: each piece is real and cleans up.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use harness::mesh::{Mesh, MeshOptions, origin_prefix};
use harness::{Bird, Etcd, Netns, Router, Switch, require_live};

fn namespace_exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn three_nodes_on_a_bridge_ping_each_other() {
    if !require_live("three_nodes_on_a_bridge_ping_each_other", &["ip", "ping"]) {
        return;
    }
    let switch = Switch::new("ping").unwrap();
    let nodes: Vec<Netns> = (1..=3).map(|_| Netns::new("ping").unwrap()).collect();
    for (i, node) in nodes.iter().enumerate() {
        switch
            .attach(node, "eth0", &format!("10.200.0.{}/24", i + 1))
            .unwrap();
    }
    for (i, node) in nodes.iter().enumerate() {
        for j in 1..=3 {
            if j == i + 1 {
                continue;
            }
            let to = format!("10.200.0.{j}");
            node.exec("ping", &["-c", "1", "-W", "2", &to])
                .unwrap_or_else(|e| panic!("n{} cannot ping {to}: {e:#}", i + 1));
        }
    }
}

#[test]
fn router_joins_two_subnets() {
    if !require_live("router_joins_two_subnets", &["ip", "ping"]) {
        return;
    }
    let a = Switch::new("rta").unwrap();
    let b = Switch::new("rtb").unwrap();
    let _router = Router::new("rt", &[(&a, "10.201.1.254/24"), (&b, "10.201.2.254/24")]).unwrap();
    let left = Netns::new("rt-left").unwrap();
    let right = Netns::new("rt-right").unwrap();
    a.attach(&left, "eth0", "10.201.1.1/24").unwrap();
    b.attach(&right, "eth0", "10.201.2.1/24").unwrap();
    left.ip(&["route", "add", "default", "via", "10.201.1.254"])
        .unwrap();
    right
        .ip(&["route", "add", "default", "via", "10.201.2.254"])
        .unwrap();
    left.exec("ping", &["-c", "1", "-W", "2", "10.201.2.1"])
        .unwrap();
    let trace = left.exec("ip", &["route", "get", "10.201.2.1"]).unwrap();
    assert!(trace.contains("via 10.201.1.254"), "{trace}");
}

#[test]
fn threads_and_async_code_run_inside_the_namespace() {
    if !require_live("threads_and_async_code_run_inside_the_namespace", &["ip"]) {
        return;
    }
    let switch = Switch::new("tcp").unwrap();
    let server_ns = Netns::new("tcp-srv").unwrap();
    let client_ns = Netns::new("tcp-cli").unwrap();
    switch.attach(&server_ns, "eth0", "10.200.0.1/24").unwrap();
    switch.attach(&client_ns, "eth0", "10.200.0.2/24").unwrap();

    // A blocking TCP echo server on a thread inside server_ns: it can only
    // bind 10.200.0.1 because that address exists only there.
    let server = server_ns
        .spawn(|| {
            let listener = TcpListener::bind("10.200.0.1:1790")?;
            let (mut conn, peer) = listener.accept()?;
            let mut buf = [0u8; 5];
            conn.read_exact(&mut buf)?;
            conn.write_all(&buf)?;
            Ok(peer.ip().to_string())
        })
        .unwrap();

    // Async code inside client_ns: a tokio TCP client.
    let echoed = client_ns
        .block_on(|| async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut last = None;
            for _ in 0..100 {
                match tokio::net::TcpStream::connect("10.200.0.1:1790").await {
                    Ok(mut s) => {
                        s.write_all(b"hello").await?;
                        let mut buf = [0u8; 5];
                        s.read_exact(&mut buf).await?;
                        return Ok::<_, std::io::Error>(buf);
                    }
                    Err(e) => last = Some(e),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(last.unwrap())
        })
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"hello");
    assert_eq!(server.join().unwrap().unwrap(), "10.200.0.2");

    // The thread's network namespace is the namespace's, by inode, so any
    // socket it opens (netlink included) is bound there; the test thread's
    // own namespace is not.
    let path = client_ns.path();
    let inside = client_ns.spawn(move || same_netns_as(&path)).unwrap();
    assert!(inside.join().unwrap().unwrap());
    assert!(!same_netns_as(&client_ns.path()).unwrap());
}

fn same_netns_as(path: &std::path::Path) -> anyhow::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let here = std::fs::metadata("/proc/thread-self/ns/net")?;
    let there = std::fs::metadata(path)?;
    Ok(here.ino() == there.ino() && here.dev() == there.dev())
}

#[test]
fn a_panicking_test_leaves_no_namespace_and_no_daemon() {
    if !require_live(
        "a_panicking_test_leaves_no_namespace_and_no_daemon",
        &["ip", "bird", "birdc"],
    ) {
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::panic::catch_unwind(move || {
        let ns = Netns::new("panic").unwrap();
        let bird = Bird::start(&ns, "router id 10.9.9.9;\nprotocol device {}\n").unwrap();
        tx.send((
            ns.name().to_string(),
            bird.pid().unwrap(),
            bird.dir().to_path_buf(),
        ))
        .unwrap();
        panic!("deliberate failure in the middle of a test");
    });
    assert!(outcome.is_err());
    let (name, pid, dir) = rx.recv().unwrap();
    assert!(!namespace_exists(&name), "{name} survived the panic");
    assert!(!pid_alive(pid), "BIRD {pid} survived the panic");
    assert!(!dir.exists(), "{} survived the panic", dir.display());
}

#[test]
fn etcd_answers_put_and_get() {
    if !require_live("etcd_answers_put_and_get", &["etcd", "etcdctl"]) {
        return;
    }
    let etcd = Etcd::start().unwrap();
    etcd.etcdctl(&["put", "/tabby/selftest", "hello"]).unwrap();
    let got = etcd
        .etcdctl(&["get", "--print-value-only", "/tabby/selftest"])
        .unwrap();
    assert_eq!(got.trim(), "hello");
    let pid = etcd.pid().unwrap();
    drop(etcd);
    assert!(!pid_alive(pid), "etcd {pid} still runs after drop");
}

#[test]
fn etcd_never_mistakes_another_etcd_for_its_own() {
    if !require_live(
        "etcd_never_mistakes_another_etcd_for_its_own",
        &["etcd", "etcdctl"],
    ) {
        return;
    }
    let first = Etcd::start().unwrap();
    let url = first.endpoint();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    // Same client port, a fresh peer port: the second server cannot bind,
    // and the first one, which answers on the port, is not taken for it.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = free.local_addr().unwrap().port();
    drop(free);
    let err = Etcd::start_on(port, peer).expect_err("a second etcd on a taken port");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("exited early") || msg.contains("another etcd"),
        "{msg}"
    );
    first.etcdctl(&["put", "k", "v"]).unwrap();
}

#[test]
fn etcd_outage_and_restart_keep_the_data() {
    if !require_live(
        "etcd_outage_and_restart_keep_the_data",
        &["etcd", "etcdctl"],
    ) {
        return;
    }
    let mut etcd = Etcd::start().unwrap();
    etcd.etcdctl(&["put", "k", "before"]).unwrap();
    etcd.stop();
    assert!(
        etcd.etcdctl(&["--command-timeout", "1s", "get", "k"])
            .is_err()
    );
    etcd.start_again().unwrap();
    let got = etcd.etcdctl(&["get", "--print-value-only", "k"]).unwrap();
    assert_eq!(got.trim(), "before");
}

/// BIRD 2, GoBGP and FRR in three namespaces reach Established with each
/// other and each learns the other two's routes. With
/// `TABBY_HARNESS_FAIL_DEMO=1` the test fails once everything is up, to
/// show that a failing test leaves nothing behind.
#[test]
fn bird_gobgp_and_frr_mesh_exchange_routes() {
    let bins = [
        "bird",
        "birdc",
        "gobgpd",
        "gobgp",
        "/usr/lib/frr/bgpd",
        "vtysh",
    ];
    if !require_live("bird_gobgp_and_frr_mesh_exchange_routes", &bins) {
        return;
    }
    let mesh = Mesh::start("mesh", &MeshOptions::default()).unwrap();
    mesh.wait_established(2, Duration::from_secs(30)).unwrap();
    let bird = mesh.bird.as_ref().unwrap();
    let frr = mesh.frr.as_ref().unwrap();
    let gobgp = mesh.gobgp.as_ref().unwrap();
    harness::wait_until("routes everywhere", Duration::from_secs(20), || {
        let b = bird.birdc("show route")?;
        let f = frr.vtysh("show bgp ipv4 unicast json")?;
        let g = gobgp.gobgp(&["global", "rib", "-a", "ipv4"])?;
        let has = |text: &str, i: u8| text.contains(&origin_prefix(i));
        Ok(has(&b, 2) && has(&b, 3) && has(&f, 1) && has(&f, 2) && has(&g, 1) && has(&g, 3))
    })
    .unwrap();
    // BIRD learned FRR's route from FRR itself, with FRR as next hop.
    let detail = bird.birdc("show route 172.31.3.0/24 all").unwrap();
    assert!(detail.contains("10.200.0.3"), "{detail}");
    if std::env::var_os("TABBY_HARNESS_FAIL_DEMO").is_some() {
        panic!("TABBY_HARNESS_FAIL_DEMO: failing on purpose with the mesh up");
    }
}
