//! Benchmark: programming routes with tabby's route table vs `ip -batch`.
//!
//! In one run, in one fresh namespace per measurement (a veth pair stands
//! in for the uplink), it adds then deletes N routes of the BGP-learned
//! shape `10.x/26 via 172.31.255.2 dev r0` with `ip -batch` (one request,
//! one ACK wait at a time) and with `RouteReconciler::set` (batched requests),
//! and prints the times and the ratio. Usage: `bench-routes [--short]`
//! (`--short`: 10k routes, one round; default 10k and 100k, median of 3).

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use agent::dataplane::reconciler::RouteReconciler;
use agent::dataplane::route::{NextHop, RouteSet, Target};
use anyhow::{Context, Result, ensure};
use harness::{Netns, veth};
use ipnet::IpNet;

fn prefixes(n: u32) -> impl Iterator<Item = String> {
    (0..n).map(|i| format!("{}/26", Ipv4Addr::from(0x0a00_0000 + (i << 6))))
}

fn uplink() -> Result<(Netns, u32)> {
    let ns = Netns::new("bench")?;
    veth(&ns, "r0", &ns, "r1")?;
    ns.ip(&["addr", "add", "172.31.255.1/24", "dev", "r0"])?;
    let idx = ns
        .exec("cat", &["/sys/class/net/r0/ifindex"])?
        .trim()
        .parse()?;
    Ok((ns, idx))
}

fn count(ns: &Netns, proto: &str) -> Result<usize> {
    Ok(ns
        .ip(&["-4", "route", "show", "proto", proto])?
        .lines()
        .count())
}

/// (add, delete) with `ip -batch`.
fn ip_batch(n: u32) -> Result<(Duration, Duration)> {
    let (ns, _) = uplink()?;
    let dir = tempfile::tempdir()?;
    let (mut add, mut del) = (String::new(), String::new());
    for p in prefixes(n) {
        writeln!(add, "route add {p} via 172.31.255.2 dev r0 proto 250")?;
        writeln!(del, "route del {p} via 172.31.255.2 dev r0 proto 250")?;
    }
    let (add_f, del_f) = (dir.path().join("add"), dir.path().join("del"));
    std::fs::write(&add_f, add)?;
    std::fs::write(&del_f, del)?;
    let t = Instant::now();
    ns.ip(&["-batch", &add_f.to_string_lossy()])?;
    let add_t = t.elapsed();
    ensure!(
        count(&ns, "250")? == n as usize,
        "ip -batch did not add {n} routes"
    );
    let t = Instant::now();
    ns.ip(&["-batch", &del_f.to_string_lossy()])?;
    let del_t = t.elapsed();
    ensure!(
        count(&ns, "250")? == 0,
        "ip -batch did not delete every route"
    );
    Ok((add_t, del_t))
}

/// (add, delete) with tabby's route table.
fn tabby(n: u32) -> Result<(Duration, Duration)> {
    let (ns, r0) = uplink()?;
    let hop = NextHop {
        gateway: "172.31.255.2".parse()?,
        ifindex: r0,
        onlink: false,
    };
    let desired: RouteSet = prefixes(n)
        .map(|p| Ok((p.parse::<IpNet>()?, Target::Gateway(hop))))
        .collect::<Result<_>>()?;
    let times = ns
        .spawn(move || {
            let mut routes = RouteReconciler::start()?;
            let n = desired.len();
            let t = Instant::now();
            let added = routes.set(desired)?;
            let add_t = t.elapsed();
            ensure!(added.added == n, "added {} of {n}", added.added);
            let t = Instant::now();
            let deleted = routes.set(RouteSet::new())?;
            let del_t = t.elapsed();
            ensure!(deleted.deleted == n, "deleted {}", deleted.deleted);
            Ok((add_t, del_t))
        })?
        .join()
        .map_err(|_| anyhow::anyhow!("bench thread panicked"))??;
    ensure!(count(&ns, "95")? == 0, "routes left behind");
    Ok(times)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<()> {
    ensure!(
        harness::require_live("bench-routes", &["ip"]),
        "needs root and iproute2"
    );
    let short = std::env::args().any(|a| a == "--short");
    let (sizes, rounds): (&[u32], usize) = if short {
        (&[10_000], 1)
    } else {
        (&[10_000, 100_000], 3)
    };
    println!("routes  | ip -batch add / del      | tabby add / del          | speed-up add / del");
    for &n in sizes {
        let (mut ia, mut id, mut ta, mut td) = (vec![], vec![], vec![], vec![]);
        for _ in 0..rounds {
            let (a, d) = ip_batch(n).context("ip -batch")?;
            ia.push(a);
            id.push(d);
            let (a, d) = tabby(n).context("tabby")?;
            ta.push(a);
            td.push(d);
        }
        let (ia, id, ta, td) = (median(ia), median(id), median(ta), median(td));
        println!(
            "{n:>7} | {:>9.1} ms / {:>7.1} ms | {:>9.1} ms / {:>7.1} ms | {:.2}x / {:.2}x",
            ia.as_secs_f64() * 1e3,
            id.as_secs_f64() * 1e3,
            ta.as_secs_f64() * 1e3,
            td.as_secs_f64() * 1e3,
            ia.as_secs_f64() / ta.as_secs_f64(),
            id.as_secs_f64() / td.as_secs_f64(),
        );
    }
    Ok(())
}
