//! Lab benchmark: how fast a new pod becomes reachable across the cluster.
//!
//! In the three-node lab (n1, n2 on one subnet; n3 behind a router, VXLAN),
//! for each of N rounds a pod is added on n1 with tabby-cni and the clock
//! runs until a pod on n3 can ping it; the CNI ADD's own duration is
//! measured in the same round as the reference, and the ratio printed.
//! Then n2's uplink is cut and the time until its block leaves n1's table
//! is measured (bounded by the 9 s BGP hold time: no TCP close reaches
//! anyone, so graceful restart does not keep it).
//! Usage: `bench-lab [--rounds N]` (default 5).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use harness::lab::{Lab, LabOptions};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<()> {
    ensure!(
        harness::require_live("bench-lab", &["ip", "ping", "etcd"]),
        "needs root, iproute2 and etcd"
    );
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(5);
    let mut lab = Lab::start("bench", LabOptions::default())?;
    lab.wait_mesh(Duration::from_secs(60))?;
    lab.add_pod(2, "watcher")?;
    let (mut add_times, mut reach_times) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let t = Instant::now();
        let ip = lab.add_pod(0, &format!("new{r}"))?;
        let added = t.elapsed();
        let watcher = &lab.nodes[2].pods[0].ns;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if watcher
                .exec("ping", &["-c", "1", "-W", "0.1", &ip.to_string()])
                .is_ok()
            {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "pod {ip} never became reachable from n3"
            );
        }
        add_times.push(added);
        reach_times.push(t.elapsed());
    }
    let first = reach_times[0];
    let (add, reach) = (median(add_times), median(reach_times));
    println!("pod ADD on n1 → pingable from a pod on n3 (over VXLAN), median of {rounds}:");
    println!(
        "  tabby-cni ADD itself : {:>8.1} ms",
        add.as_secs_f64() * 1e3
    );
    println!(
        "  ADD until reachable  : {:>8.1} ms  ({:.2}x the ADD time)",
        reach.as_secs_f64() * 1e3,
        reach.as_secs_f64() / add.as_secs_f64()
    );
    println!(
        "  first pod (a new block: claim, announce, route on n3): {:.1} ms",
        first.as_secs_f64() * 1e3
    );

    let n2_pod = lab.add_pod(1, "n2pod")?;
    let std::net::IpAddr::V4(a) = n2_pod else {
        anyhow::bail!("IPv4 pod expected")
    };
    let block = ipnet::Ipv4Net::new(a, 26)?.trunc().to_string();
    harness::wait_until("n2's block on n1", Duration::from_secs(20), || {
        Ok(!lab.nodes[0]
            .ns
            .ip(&["route", "show", &block])?
            .trim()
            .is_empty())
    })?;
    lab.nodes[1]
        .ns
        .ip(&["link", "set", "eth0", "down"])
        .context("cut n2")?;
    let t = Instant::now();
    harness::wait_until("n2's block gone from n1", Duration::from_secs(30), || {
        Ok(lab.nodes[0]
            .ns
            .ip(&["route", "show", &block])?
            .trim()
            .is_empty())
    })?;
    let gone = t.elapsed();
    println!(
        "node n2 cut off → its block leaves n1: {:.2} s ({:.2}x the 9 s hold time)",
        gone.as_secs_f64(),
        gone.as_secs_f64() / 9.0
    );
    Ok(())
}
