//! `routectl delete <kind> <name>`: remove one resource from etcd, each
//! delete conditioned on the revision read.
//!
//! - **IPPool**: refused while addresses are allocated in the pool's blocks
//!   (the message says how many), unless `--force`. calicoctl does not
//!   refuse; tabby does, because a pool deleted under live pods leaves
//!   blocks outside every pool (`ipam check` reports them) and their
//!   routes unannounced. After the pool key is gone (no new allocations
//!   come from it), the affinities of its empty blocks are released; with
//!   `--force`, blocks still holding addresses stay until those are
//!   released with their pods.
//! - **Node**: refused while WorkloadEndpoints exist on the node, unless
//!   `--force` (which deletes them too). Like `calicoctl delete node`, the
//!   node's IPAM data goes with it: its addresses (tunnel and, with
//!   `--force`, workload ones) are released and its blocks returned. A
//!   tabby-node still running there registers the node again.
//! - **IPAMConfiguration** `default`: back to the defaults.
//! - **BGPPeer**, **BGPConfiguration**: the key.

use ipam::Datastore;
use ipam::store::{Compare, Op, TxnOutcome};

use crate::node::ctl_error::CtlError;
use crate::node::get::{IPAM_CONFIG_NAME, key, not_found};
use crate::node::kind::Kind;
use crate::resources::node_endpoints_prefix;

/// Delete `kind` `name`; one line per thing done.
pub async fn delete<S: Datastore>(
    ipam: &ipam::Ipam<S>,
    kind: Kind,
    name: &str,
    force: bool,
) -> Result<Vec<String>, CtlError> {
    let store = ipam.store();
    if kind == Kind::IpamConfig && name != IPAM_CONFIG_NAME {
        return Err(not_found(kind, name));
    }
    let key = key(kind, name);
    let Some(kv) = store.get(&key).await? else {
        return match kind {
            Kind::IpamConfig => Ok(vec![format!(
                "IPAMConfiguration {name}: not set, already the defaults"
            )]),
            _ => Err(not_found(kind, name)),
        };
    };
    let what = format!("{kind} {name}");
    let mut lines = Vec::new();
    let mut ops = vec![Op::delete(&key)];
    match kind {
        Kind::IpPool => {
            let pool = ipam::IpPool::from_json(&kv.value)
                .and_then(|p| p.validate(&[]))
                .map_err(|e| CtlError::corrupt(&key, e))?;
            let state = ipam.snapshot().await?;
            let used: usize = state
                .blocks
                .values()
                .filter(|b| pool.cidr.contains(&b.value.cidr()))
                .map(|b| b.value.allocations().count())
                .sum();
            if used > 0 && !force {
                return Err(CtlError::InUse {
                    kind: "IPPool",
                    name: name.into(),
                    reason: format!("{used} addresses are still allocated in {}", pool.cidr),
                });
            }
            if used > 0 {
                lines.push(format!(
                    "{used} addresses stay allocated in {}'s blocks until released",
                    pool.cidr
                ));
            }
        }
        Kind::Node => {
            let endpoints = store.range(&node_endpoints_prefix(name)).await?;
            let n = endpoints.kvs.len();
            if n > 0 && !force {
                return Err(CtlError::InUse {
                    kind: "Node",
                    name: name.into(),
                    reason: format!("{n} workload endpoints are on it"),
                });
            }
            ops.extend(endpoints.kvs.iter().map(|e| Op::delete(&e.key)));
            if n > 0 {
                lines.push(format!("{n} workload endpoints deleted"));
            }
        }
        _ => {}
    }
    match store
        .txn(vec![Compare::at(&key, kv.mod_revision)], ops)
        .await?
    {
        TxnOutcome::Committed { .. } => {}
        _ => return Err(CtlError::Conflict { what }),
    }
    ipam.forget();
    lines.insert(0, format!("{what} deleted"));
    match kind {
        Kind::IpPool => {
            let pool = ipam::IpPool::from_json(&kv.value)
                .and_then(|p| p.validate(&[]))
                .map_err(|e| CtlError::corrupt(&key, e))?;
            let state = ipam.snapshot().await?;
            for (node, cidr) in state.affinities.keys() {
                if !pool.cidr.contains(cidr) {
                    continue;
                }
                match ipam.release_block_affinity(node, *cidr).await {
                    Ok(true) => lines.push(format!("block {cidr} of node {node} released")),
                    Ok(false) | Err(ipam::IpamError::BlockNotEmpty { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Kind::Node => {
            let removed = ipam.remove_node(name).await?;
            for ip in &removed.released {
                lines.push(format!("address {ip} released"));
            }
            for b in &removed.blocks_released {
                lines.push(format!("block {b} released"));
            }
            for b in &removed.blocks_orphaned {
                lines.push(format!(
                    "block {b} kept: it still holds other nodes' addresses"
                ));
            }
        }
        _ => {}
    }
    Ok(lines)
}
