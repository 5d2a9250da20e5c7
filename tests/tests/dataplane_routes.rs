//! The route reconciler against a real kernel, in a namespace.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use agent::dataplane::reconciler::{RouteCommand, RouteReconciler};
use agent::dataplane::route::{NextHop, RouteSet, Target};
use agent::dataplane::route_table::{Change, RouteTable};
use harness::{Netns, require_live, veth};
use ipnet::IpNet;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// A namespace with a veth pair r0/r1 and addresses to route through.
fn host(tag: &str) -> (Netns, u32, u32) {
    let ns = Netns::new(tag).unwrap();
    veth(&ns, "r0", &ns, "r1").unwrap();
    ns.ip(&["addr", "add", "172.31.255.1/24", "dev", "r0"])
        .unwrap();
    ns.ip(&["-6", "addr", "add", "fd00:ff::1/64", "dev", "r0", "nodad"])
        .unwrap();
    let r0 = ifindex(&ns, "r0");
    let r1 = ifindex(&ns, "r1");
    (ns, r0, r1)
}

fn ifindex(ns: &Netns, name: &str) -> u32 {
    let out = ns
        .exec("cat", &[&format!("/sys/class/net/{name}/ifindex")])
        .unwrap();
    out.trim().parse().unwrap()
}

/// `ip [-6] route show <args>`: `args` may start with "-6".
fn routes(ns: &Netns, args: &[&str]) -> String {
    let (family, rest) = match args.first() {
        Some(&"-6") => ("-6", &args[1..]),
        _ => ("-4", args),
    };
    let mut all = vec![family, "route", "show"];
    all.extend_from_slice(rest);
    ns.ip(&all).unwrap()
}

fn hop(gw: &str, ifindex: u32, onlink: bool) -> NextHop {
    NextHop {
        gateway: gw.parse().unwrap(),
        ifindex,
        onlink,
    }
}

/// Run `f` with a fresh RouteTable opened inside `ns` (a fresh socket each
/// time, as after an agent restart).
fn in_ns<T: Send + 'static>(
    ns: &Netns,
    f: impl FnOnce(&mut RouteTable) -> T + Send + 'static,
) -> T {
    ns.spawn(move || {
        let mut table = RouteTable::open()?;
        Ok(f(&mut table))
    })
    .unwrap()
    .join()
    .unwrap()
    .unwrap()
}

#[test]
fn reconciler_programs_adopts_repairs_and_never_touches_foreign_routes() {
    if !require_live(
        "reconciler_programs_adopts_repairs_and_never_touches_foreign_routes",
        &["ip"],
    ) {
        return;
    }
    let (ns, r0, r1) = host("routes");
    // Routes of other owners: BIRD's protocol 12 and a static route.
    ns.ip(&[
        "route",
        "add",
        "10.9.0.0/26",
        "via",
        "172.31.255.2",
        "proto",
        "12",
    ])
    .unwrap();
    ns.ip(&[
        "route",
        "add",
        "10.0.5.0/26",
        "via",
        "172.31.255.3",
        "proto",
        "static",
    ])
    .unwrap();
    let foreign_before = routes(&ns, &["proto", "12"]) + &routes(&ns, &["proto", "static"]);

    let desired: RouteSet = [
        (net("10.0.1.0/26"), Target::Blackhole),
        (net("10.0.1.1/32"), Target::Device { ifindex: r0 }),
        (
            net("10.0.2.0/26"),
            Target::Gateway(hop("172.31.255.2", r0, false)),
        ),
        (
            net("10.0.3.0/26"),
            Target::Gateway(hop("10.200.9.9", r0, true)),
        ),
        (
            net("10.0.4.0/26"),
            Target::multipath(vec![
                hop("172.31.255.2", r0, false),
                hop("172.31.255.3", r0, false),
            ]),
        ),
        (
            net("fd00:10::/122"),
            Target::Gateway(hop("fd00:ff::2", r0, false)),
        ),
        (net("fd00:10::1/128"), Target::Device { ifindex: r0 }),
        (net("fd00:11::/122"), Target::Blackhole),
    ]
    .into();

    // First run: everything is added.
    let d = desired.clone();
    let (plan, report) = in_ns(&ns, move |t| t.sync(&d).unwrap());
    assert_eq!(
        (plan.add.len(), plan.replace.len(), plan.delete.len()),
        (8, 0, 0)
    );
    assert_eq!(report.added, 8, "{:?}", report.failed);
    assert!(report.failed.is_empty());
    let v4 = routes(&ns, &["proto", "95"]);
    assert!(v4.contains("blackhole 10.0.1.0/26"), "{v4}");
    assert!(v4.contains("10.0.1.1 dev r0 scope link"), "{v4}");
    assert!(v4.contains("10.0.2.0/26 via 172.31.255.2 dev r0"), "{v4}");
    assert!(
        v4.contains("10.0.3.0/26 via 10.200.9.9 dev r0 onlink"),
        "{v4}"
    );
    assert!(v4.contains("nexthop via 172.31.255.3 dev r0"), "{v4}");
    let v6 = routes(&ns, &["-6", "proto", "95"]);
    assert!(v6.contains("fd00:10::/122 via fd00:ff::2 dev r0"), "{v6}");
    assert!(v6.contains("blackhole fd00:11::/122"), "{v6}");

    // Restart: a new socket reads back exactly what it wants; nothing sent.
    let d = desired.clone();
    let (owned, (plan, report)) = in_ns(&ns, move |t| (t.owned().unwrap(), t.sync(&d).unwrap()));
    assert_eq!(
        owned, desired,
        "the kernel's routes read back as the desired ones"
    );
    assert!(plan.is_empty());
    assert_eq!(
        report.requests, 0,
        "adoption must not delete or re-add anything"
    );

    // Drift: one route deleted by hand, one changed by hand.
    ns.ip(&["route", "del", "10.0.2.0/26", "proto", "95"])
        .unwrap();
    ns.ip(&[
        "route",
        "replace",
        "10.0.1.1/32",
        "dev",
        "r1",
        "proto",
        "95",
    ])
    .unwrap();
    let d = desired.clone();
    let (plan, report) = in_ns(&ns, move |t| t.sync(&d).unwrap());
    assert_eq!(
        plan.add,
        vec![(net("10.0.2.0/26"), desired[&net("10.0.2.0/26")].clone())]
    );
    assert_eq!(
        plan.replace,
        vec![(net("10.0.1.1/32"), Target::Device { ifindex: r0 })]
    );
    assert_eq!(
        (
            report.added,
            report.replaced,
            report.deleted,
            report.requests
        ),
        (1, 1, 0, 2)
    );
    assert!(routes(&ns, &["proto", "95"]).contains("10.0.1.1 dev r0 scope link"));
    let _ = r1;

    // A destination held by another owner is reported, not taken over.
    let mut with_conflict = desired.clone();
    with_conflict.insert(
        net("10.0.5.0/26"),
        Target::Gateway(hop("172.31.255.2", r0, false)),
    );
    let (_, report) = in_ns(&ns, move |t| t.sync(&with_conflict).unwrap());
    assert_eq!(report.failed.len(), 1);
    let (change, dst, err) = &report.failed[0];
    assert_eq!((*change, *dst), (Change::Add, net("10.0.5.0/26")));
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);

    // Nothing wanted any more: tabby's routes go, the others stay as they were.
    let (_, report) = in_ns(&ns, |t| t.sync(&BTreeMap::new()).unwrap());
    assert_eq!(report.deleted, 8, "{:?}", report.failed);
    assert_eq!(routes(&ns, &["proto", "95"]), "");
    assert_eq!(routes(&ns, &["-6", "proto", "95"]), "");
    let foreign_after = routes(&ns, &["proto", "12"]) + &routes(&ns, &["proto", "static"]);
    assert_eq!(foreign_before, foreign_after);
}

#[test]
fn ten_thousand_routes_in_batches() {
    if !require_live("ten_thousand_routes_in_batches", &["ip"]) {
        return;
    }
    let (ns, r0, _) = host("routes-bulk");
    let desired: RouteSet = (0..10_000u32)
        .map(|i| {
            let base = 0x0a00_0000 + (i << 6);
            let dst = IpNet::new(std::net::Ipv4Addr::from(base).into(), 26).unwrap();
            (dst, Target::Gateway(hop("172.31.255.2", r0, false)))
        })
        .collect();
    let d = desired.clone();
    let (_, report) = in_ns(&ns, move |t| t.sync(&d).unwrap());
    assert_eq!(report.added, 10_000);
    let count = routes(&ns, &["proto", "95"]).lines().count();
    assert_eq!(count, 10_000);
    let (owned, _) = in_ns(&ns, |t| (t.owned().unwrap(), ()));
    assert_eq!(owned, desired);
}

#[test]
fn a_route_deleted_by_hand_comes_back_within_the_resync_interval() {
    if !require_live(
        "a_route_deleted_by_hand_comes_back_within_the_resync_interval",
        &["ip"],
    ) {
        return;
    }
    let (ns, r0, _) = host("routes-drift");
    let desired: RouteSet = [
        (net("10.0.1.0/26"), Target::Blackhole),
        (
            net("10.0.2.0/26"),
            Target::Gateway(hop("172.31.255.2", r0, false)),
        ),
    ]
    .into();
    let (tx, rx) = std::sync::mpsc::channel();
    let (events_tx, events) = std::sync::mpsc::channel();
    let server = ns
        .spawn(move || {
            let reconciler = RouteReconciler::start()?;
            reconciler.serve(&rx, Duration::from_millis(200), |outcome| {
                let _ = events_tx.send(format!("{outcome:?}"));
            })?;
            Ok(())
        })
        .unwrap();
    tx.send(RouteCommand::Desired(desired)).unwrap();
    let has_both = || {
        let v4 = routes(&ns, &["proto", "95"]);
        Ok(v4.contains("blackhole 10.0.1.0/26") && v4.contains("10.0.2.0/26 via 172.31.255.2"))
    };
    harness::wait_until("routes programmed", Duration::from_secs(10), has_both).unwrap();
    ns.ip(&["route", "del", "10.0.2.0/26", "proto", "95"])
        .unwrap();
    assert!(!routes(&ns, &["proto", "95"]).contains("10.0.2.0/26"));
    harness::wait_until(
        "the deleted route is back",
        Duration::from_secs(10),
        has_both,
    )
    .unwrap();
    drop(tx);
    server.join().unwrap().unwrap();
    let log: Vec<String> = events.try_iter().collect();
    assert!(
        log.iter()
            .any(|e| e.starts_with("Resynced") && e.contains("added: 1")),
        "{log:?}"
    );
    assert!(!log.iter().any(|e| e.starts_with("Failed")), "{log:?}");
}

#[test]
fn routes_taken_down_with_their_link_come_back_with_it() {
    if !require_live(
        "routes_taken_down_with_their_link_come_back_with_it",
        &["ip"],
    ) {
        return;
    }
    let (ns, r0, _) = host("routes-link");
    let desired: RouteSet = [
        (net("10.0.1.1/32"), Target::Device { ifindex: r0 }),
        (
            net("10.0.2.0/26"),
            Target::Gateway(hop("172.31.255.2", r0, false)),
        ),
    ]
    .into();
    let (tx, rx) = std::sync::mpsc::channel();
    // A resync interval far longer than the test: only the link event can
    // bring the routes back.
    let server = ns
        .spawn(move || {
            RouteReconciler::start()?.serve(&rx, Duration::from_secs(3600), |_| {})?;
            Ok(())
        })
        .unwrap();
    tx.send(RouteCommand::Desired(desired)).unwrap();
    let count = || routes(&ns, &["proto", "95"]).lines().count();
    harness::wait_until("routes programmed", Duration::from_secs(10), || {
        Ok(count() == 2)
    })
    .unwrap();
    ns.ip(&["link", "set", "r0", "down"]).unwrap();
    // The kernel drops routes through a link that goes down.
    harness::wait_until("routes gone with the link", Duration::from_secs(10), || {
        Ok(count() == 0)
    })
    .unwrap();
    ns.ip(&["link", "set", "r0", "up"]).unwrap();
    harness::wait_until("routes back with the link", Duration::from_secs(10), || {
        Ok(count() == 2)
    })
    .unwrap();
    drop(tx);
    server.join().unwrap().unwrap();
}
