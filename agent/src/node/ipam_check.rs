//! `routectl ipam check` and `routectl ipam release --from-report`, like
//! `calicoctl ipam check` and `calicoctl ipam release --from-report`.
//!
//! The live owners are read from etcd *after* the IPAM snapshot, so every
//! allocation in the snapshot whose pod was already recorded is seen as
//! owned:
//!
//! - every WorkloadEndpoint (`/tabby/v1/workloadendpoints/`) owns the
//!   handle `<network>.<containerID>` (the network from its
//!   `tabby.dev/network` label). An endpoint without the label owns every
//!   handle ending in `.<containerID>`: when unsure, keep.
//! - every Node key owns its node's tunnel addresses.
//!
//! A WorkloadEndpoint that does not decode makes the check fail: its pod's
//! addresses would otherwise look leaked.
//!
//! The report is [`ipam::Report`] as JSON. `release` takes a fresh report
//! and releases only what both list identically (same address, handle and
//! sequence number; [`ipam::Ipam::release_leaks`] re-validates each write),
//! so an address re-allocated since the report is left alone.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use ipam::check::{LeakedAddress, LiveOwners};
use ipam::{Datastore, IpamState, Report};

use crate::cni::add::NETWORK_LABEL;
use crate::node::ctl_error::CtlError;
use crate::resources::{NODES, WORKLOAD_ENDPOINTS, WorkloadEndpoint};

/// Who owns addresses, read from etcd, for the handles in `state`.
pub async fn live_owners<S: Datastore>(
    store: &S,
    state: &IpamState,
) -> Result<LiveOwners, CtlError> {
    let mut live = LiveOwners::default();
    let handles: BTreeSet<&str> = state
        .handles
        .keys()
        .map(String::as_str)
        .chain(
            state
                .blocks
                .values()
                .flat_map(|b| b.value.allocations().filter_map(|a| a.handle)),
        )
        .collect();
    for kv in store.range(WORKLOAD_ENDPOINTS).await?.kvs {
        let wep = WorkloadEndpoint::from_json(&kv.value)
            .map_err(|e| CtlError::corrupt(&kv.key, format!("{e}; cannot tell its owner")))?;
        let cid = &wep.spec.container_id;
        match wep.metadata.labels.get(NETWORK_LABEL) {
            Some(network) => {
                live.workloads.insert(format!("{network}.{cid}"));
            }
            None => {
                let suffix = format!(".{cid}");
                live.workloads.extend(
                    handles
                        .iter()
                        .filter(|h| h.ends_with(&suffix))
                        .map(|h| h.to_string()),
                );
            }
        }
    }
    for key in store.keys(NODES).await? {
        if let Some(node) = key.strip_prefix(NODES).filter(|n| !n.contains('/')) {
            live.nodes.insert(node.to_string());
        }
    }
    Ok(live)
}

/// A fresh report, and the owners it was made against.
pub async fn check<S: Datastore>(ipam: &ipam::Ipam<S>) -> Result<(Report, LiveOwners), CtlError> {
    let state = ipam.snapshot().await?;
    let live = live_owners(ipam.store(), &state).await?;
    Ok((ipam::check::check(&state, &live), live))
}

/// The report as the JSON file `-o` writes.
pub fn to_json(report: &Report) -> String {
    // Plain data with string keys: serialisation cannot fail.
    serde_json::to_string_pretty(report).unwrap_or_default()
}

/// A report file read back.
pub fn from_json(path: &str, text: &str) -> Result<Report, CtlError> {
    serde_json::from_str(text).map_err(|e| CtlError::BadReport {
        path: path.into(),
        reason: e.to_string(),
    })
}

fn leak_line(l: &LeakedAddress) -> String {
    format!(
        "  {}  handle {}  node {}  (block {}, sequence {})\n",
        l.ip,
        l.handle.as_deref().unwrap_or("(none)"),
        l.node.as_deref().unwrap_or("(none)"),
        l.block,
        l.sequence_number
    )
}

/// What `ipam check` prints.
pub fn summary(report: &Report) -> String {
    let mut out = format!(
        "Checking IPAM for inconsistencies (etcd revision {})...\n\nFound {} IP allocations.\n",
        report.revision, report.allocations
    );
    let _ = writeln!(
        out,
        "Found {} leaked IP addresses (no WorkloadEndpoint or Node owns them):",
        report.leaked.len()
    );
    for l in &report.leaked {
        out += &leak_line(l);
    }
    let _ = writeln!(
        out,
        "Found {} orphaned handles (index disagrees with the blocks):",
        report.orphaned_handles.len()
    );
    for h in &report.orphaned_handles {
        let _ = writeln!(
            out,
            "  {}  indexed {:?}  in blocks {:?}",
            h.handle, h.indexed, h.actual
        );
    }
    let _ = writeln!(
        out,
        "Found {} affinities without blocks:",
        report.affinities_without_blocks.len()
    );
    for a in &report.affinities_without_blocks {
        let _ = writeln!(out, "  node {}  block {}  ({:?})", a.node, a.block, a.state);
    }
    let _ = writeln!(
        out,
        "Found {} blocks without affinities:",
        report.blocks_without_affinities.len()
    );
    for b in &report.blocks_without_affinities {
        let _ = writeln!(out, "  block {}  affine to {}", b.block, b.node);
    }
    if !report.violations.is_empty() {
        let _ = writeln!(out, "Found {} other problems:", report.violations.len());
        for v in &report.violations {
            let _ = writeln!(out, "  {v}");
        }
    }
    let problems = report.leaked.len()
        + report.orphaned_handles.len()
        + report.affinities_without_blocks.len()
        + report.blocks_without_affinities.len()
        + report.violations.len();
    let _ = writeln!(out, "\nCheck complete; found {problems} problems.");
    out
}

/// Release what `earlier` (the file) and a fresh report both list; what
/// `release` prints.
pub async fn release<S: Datastore>(
    ipam: &ipam::Ipam<S>,
    earlier: &Report,
) -> Result<String, CtlError> {
    let (later, live) = check(ipam).await?;
    let repair = ipam.release_leaks(earlier, &later, &live).await?;
    let now: BTreeSet<&LeakedAddress> = later.leaked.iter().collect();
    let mut out = String::new();
    let _ = writeln!(out, "Released {} addresses:", repair.released.len());
    for ip in &repair.released {
        let _ = writeln!(out, "  {ip}");
    }
    let stale: Vec<&LeakedAddress> = earlier.leaked.iter().filter(|l| !now.contains(l)).collect();
    let skipped = stale.len() + repair.skipped.len();
    let _ = writeln!(out, "Skipped {skipped}:");
    for l in stale {
        let _ = write!(
            out,
            "  not leaked as reported any more (owned, released or re-allocated):\n  {}",
            leak_line(l).trim_start()
        );
    }
    for (what, why) in &repair.skipped {
        let _ = writeln!(out, "  {what}: {why}");
    }
    for (node, block) in &repair.affinities_removed {
        let _ = writeln!(out, "Removed the affinity of node {node} for block {block}");
    }
    for b in &repair.blocks_fixed {
        let _ = writeln!(out, "Fixed the affinity of block {b}");
    }
    for h in &repair.handles_fixed {
        let _ = writeln!(out, "Fixed handle {h}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{WorkloadEndpointSpec, node_key};
    use ipam::{AssignArgs, IpPool, Ipam, MemoryStore};

    fn wep(cid: &str, network: Option<&str>) -> WorkloadEndpoint {
        let mut w = WorkloadEndpoint::new(
            "default",
            WorkloadEndpointSpec {
                orchestrator: "cni".into(),
                node: "n1".into(),
                container_id: cid.into(),
                pod: cid.into(),
                endpoint: "eth0".into(),
                interface_name: "cali0".into(),
                ..WorkloadEndpointSpec::default()
            },
        );
        if let Some(n) = network {
            w.metadata.labels.insert(NETWORK_LABEL.into(), n.into());
        }
        w
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn only_unowned_addresses_are_leaked_and_released_after_two_reports() {
        rt().block_on(async {
            let ipam = Ipam::new(MemoryStore::new());
            ipam.apply_pool(&IpPool::new("p", "10.0.0.0/24"))
                .await
                .unwrap();
            let store = ipam.store();
            store
                .create(
                    &node_key("n1"),
                    b"{\"metadata\":{\"name\":\"n1\"}}".to_vec(),
                )
                .await
                .unwrap();
            for h in ["net.live", "net.gone", "other.unlabelled"] {
                let mut args = AssignArgs::new(h, "n1");
                args.num_v4 = 1;
                ipam.auto_assign(&args).await.unwrap();
            }
            for w in [wep("live", Some("net")), wep("unlabelled", None)] {
                store.create(&w.key(), w.to_json()).await.unwrap();
            }
            let (report, _) = check(&ipam).await.unwrap();
            assert_eq!(report.allocations, 3);
            assert_eq!(report.leaked.len(), 1, "{report:?}");
            assert_eq!(report.leaked[0].handle.as_deref(), Some("net.gone"));
            let text = summary(&report);
            assert!(
                text.contains("Found 1 leaked") && text.contains("net.gone"),
                "{text}"
            );
            let file = to_json(&report);
            let back = from_json("r.json", &file).unwrap();
            assert_eq!(back, report);
            let out = release(&ipam, &back).await.unwrap();
            assert!(out.contains("Released 1 addresses"), "{out}");
            assert!(ipam.ips_by_handle("net.gone").await.unwrap().is_empty());
            assert_eq!(ipam.ips_by_handle("net.live").await.unwrap().len(), 1);
            assert_eq!(
                ipam.ips_by_handle("other.unlabelled").await.unwrap().len(),
                1
            );
            assert!(matches!(
                from_json("r.json", "{\"leaked\": 3}"),
                Err(CtlError::BadReport { .. })
            ));
        });
    }

    #[test]
    fn an_undecodable_endpoint_fails_the_check() {
        rt().block_on(async {
            let ipam = Ipam::new(MemoryStore::new());
            let key = format!("{WORKLOAD_ENDPOINTS}n1/default/p/eth0");
            ipam.store().create(&key, b"{".to_vec()).await.unwrap();
            let e = check(&ipam).await.unwrap_err();
            assert!(e.to_string().contains(&key) && e.exit_code() == 1, "{e}");
        });
    }
}
