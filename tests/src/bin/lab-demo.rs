//! The lab demo: builds the reference mesh (BIRD 2, GoBGP and FRR on one
//! bridge, in network namespaces), waits for every session, prints what
//! each daemon learned, and tears everything down.
//!
//! Until tabby-node exists this shows the lab the end-to-end tests run on;
//! the node-agent work replaces it with three tabby nodes and their pods.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use harness::mesh::{Mesh, MeshOptions};

fn main() -> Result<()> {
    let bins = [
        "bird",
        "birdc",
        "gobgpd",
        "gobgp",
        "/usr/lib/frr/bgpd",
        "vtysh",
    ];
    if !harness::require_live("lab-demo", &bins) {
        anyhow::bail!("the lab needs root and the BGP daemons (run scripts/install-deps)");
    }
    let start = Instant::now();
    println!("building the lab: switch + n1 (BIRD 2), n2 (GoBGP), n3 (FRR) on 10.200.0.0/24");
    let mesh = Mesh::start(
        "demo",
        &MeshOptions {
            zebra: true,
            ..MeshOptions::default()
        },
    )?;
    mesh.wait_established(2, Duration::from_secs(30))
        .context("sessions")?;
    println!(
        "all 6 session ends Established after {:.2?}",
        start.elapsed()
    );
    let (bird, gobgp, frr) = (mesh.bird.as_ref(), mesh.gobgp.as_ref(), mesh.frr.as_ref());
    harness::wait_until("every route everywhere", Duration::from_secs(20), || {
        let n3 = mesh.nodes[2].ip(&["-4", "route", "show", "proto", "bgp"])?;
        let n1 = bird
            .map(|b| b.birdc("show route"))
            .transpose()?
            .unwrap_or_default();
        let n2 = gobgp
            .map(|g| g.gobgp(&["global", "rib", "-a", "ipv4"]))
            .transpose()?;
        let n2 = n2.unwrap_or_default();
        let all = |text: &str, ps: [&str; 2]| ps.iter().all(|p| text.contains(p));
        Ok(all(&n3, ["172.31.1.0/24", "172.31.2.0/24"])
            && all(&n1, ["172.31.2.0/24", "172.31.3.0/24"])
            && all(&n2, ["172.31.1.0/24", "172.31.3.0/24"]))
    })?;
    if let Some(bird) = bird {
        println!(
            "\n== n1: birdc show protocols ==\n{}",
            bird.birdc("show protocols")?
        );
        println!("== n1: birdc show route ==\n{}", bird.birdc("show route")?);
    }
    if let Some(gobgp) = gobgp {
        println!("== n2: gobgp neighbor ==\n{}", gobgp.gobgp(&["neighbor"])?);
        println!(
            "== n2: gobgp global rib ==\n{}",
            gobgp.gobgp(&["global", "rib", "-a", "ipv4"])?
        );
    }
    if let Some(frr) = frr {
        println!(
            "== n3: show bgp summary ==\n{}",
            frr.vtysh("show bgp summary")?
        );
    }
    println!(
        "== n3 kernel (FRR + zebra): ip route show proto bgp ==\n{}",
        mesh.nodes[2].ip(&["-4", "route", "show", "proto", "bgp"])?
    );
    drop(mesh);
    println!("lab torn down; total {:.2?}", start.elapsed());
    Ok(())
}
