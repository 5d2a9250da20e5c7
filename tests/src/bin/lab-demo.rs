//! The lab demo (the README's main job): three tabby nodes in network
//! namespaces — n1 and n2 on 10.200.0.0/24, n3 on 10.201.0.0/24 behind a
//! router — with a private etcd, `tabby-node` on each, two pods per node
//! made through `tabby-cni` exactly as containerd calls it, then
//! `routectl peers` for each node and the pod-to-pod ping matrices, IPv4
//! and IPv6 (dual stack; cross-subnet traffic goes over VXLAN).
//!
//! It stays up until Ctrl-C (or SIGTERM), then removes everything it made.
//! `--once` tears down right after the matrix (for scripts and CI).
//! `--ipip` carries the cross-subnet IPv4 traffic over IPIP instead of
//! VXLAN (the IPv6 pool stays on VXLAN); it needs the kernel's `ipip`
//! module.

use std::io::Write;
use std::time::{Duration, Instant};

/// `println!` that ignores a closed stdout (`lab-demo | head`): a panic
/// there would skip tearing the lab down.
macro_rules! out {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

use anyhow::{Context, Result, ensure};
use harness::lab::{Lab, LabOptions};

fn main() -> Result<()> {
    // Ctrl-C or SIGTERM at any moment removes what was built so far: the
    // guards cannot drop when a signal ends the process, so a watcher
    // thread sweeps everything this process created, by name and PID.
    std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        if let Ok(rt) = rt {
            rt.block_on(async {
                if let Ok(mut term) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                    out!("\ninterrupted: removing the lab");
                    harness::netns::remove_everything_of(std::process::id());
                    std::process::exit(130);
                }
            });
        }
    });
    demo()
}

fn demo() -> Result<()> {
    ensure!(
        harness::require_live("lab-demo", &["ip", "ping", "etcd", "etcdctl"]),
        "needs root, iproute2, ping and etcd"
    );
    let once = std::env::args().any(|a| a == "--once");
    let ipip = std::env::args().any(|a| a == "--ipip");
    let has_ipip = agent::dataplane::encap::kernel_has_ipip();
    ensure!(
        !ipip || has_ipip,
        "--ipip: this kernel has no ipip module (CONFIG_NET_IPIP); run without --ipip for VXLAN"
    );
    let mut opts = LabOptions::default();
    if ipip {
        opts.vxlan = "Never".into();
        opts.ipip = "CrossSubnet".into();
    }
    out!(
        "IPv4 pool {} (vxlanMode {}, ipipMode {}); IPv6 pool {} (vxlanMode {}){}",
        opts.pool,
        opts.vxlan,
        opts.ipip,
        opts.pool6.as_deref().unwrap_or("-"),
        opts.vxlan6,
        if has_ipip || ipip {
            ""
        } else {
            "; IPIP: not available on this kernel (no ipip module)"
        }
    );
    let start = Instant::now();
    out!(
        "building the lab: n1, n2 on 10.200.0.0/24 + fd00:200::/64; n3 on 10.201.0.0/24 + fd00:201::/64 behind a router; etcd at 10.200.0.100"
    );
    let mut lab = Lab::start("demo", opts)?;
    lab.wait_mesh(Duration::from_secs(60))
        .context("node-to-node mesh")?;
    out!("mesh Established after {:.1?}", start.elapsed());
    for i in 0..lab.nodes.len() {
        for pod in ["a", "b"] {
            let name = format!("{}{pod}", lab.nodes[i].name);
            let ip = lab.add_pod(i, &name)?;
            let ip6 = lab.nodes[i]
                .pods
                .last()
                .and_then(|p| p.ip6)
                .map_or(String::new(), |a| format!(" and {a}"));
            out!(
                "pod {name:<4} on {} got {ip}{ip6} (tabby-cni ADD)",
                lab.nodes[i].name
            );
        }
    }
    let mut matrix = Vec::new();
    let converged = harness::wait_until("the ping matrix", Duration::from_secs(30), || {
        matrix = lab.ping_matrix();
        Ok(matrix.iter().all(|(_, _, ok)| *ok))
    });
    let names: Vec<String> = lab
        .nodes
        .iter()
        .flat_map(|n| n.pods.iter().map(|p| p.name.clone()))
        .collect();
    for (family, suffix) in [("IPv4", ""), ("IPv6", "/v6")] {
        if !matrix.iter().any(|(_, t, _)| t.ends_with(suffix)) {
            continue;
        }
        out!("{family} ping matrix (from \\ to):");
        out!(
            "      {}",
            names.iter().map(|n| format!("{n:>5}")).collect::<String>()
        );
        for from in &names {
            let row: String = names
                .iter()
                .map(|to| {
                    let to = format!("{to}{suffix}");
                    let cell = if *from == to.trim_end_matches("/v6") {
                        "-"
                    } else if matrix.iter().any(|(f, t, ok)| f == from && *t == to && *ok) {
                        "ok"
                    } else {
                        "FAIL"
                    };
                    format!("{cell:>5}")
                })
                .collect();
            out!("{from:>5} {row}");
        }
    }
    for i in 0..lab.nodes.len() {
        out!(
            "\n== {}: routectl peers ==\n{}",
            lab.nodes[i].name,
            lab.routectl(i, &["peers"])?
        );
    }
    converged.context("some pods cannot reach each other")?;
    out!(
        "\nall {} pod-to-address pings succeed ({:.1?} since start)",
        matrix.len(),
        start.elapsed()
    );
    if !once {
        out!("the lab stays up; Ctrl-C removes it");
        loop {
            std::thread::park();
        }
    }
    drop(lab);
    out!("lab removed");
    Ok(())
}
