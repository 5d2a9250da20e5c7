//! What wakes the daemon between its periodic rounds: etcd watches on the
//! resources a round reads — Nodes, IPPools, BGPPeers, BGPConfigurations
//! (everything under `/tabby/v1/resources/`), this node's block affinities
//! and its WorkloadEndpoints. A change starts a round at once, so the
//! agent reacts in milliseconds while `TABBY_RESYNC_MS` only bounds how
//! stale it can get if a watch is lost (the periodic round is the repair).
//!
//! A watch that fails (etcd down, compaction) is opened again after a
//! second, with a round triggered then too, since changes may have been
//! missed meanwhile.

use std::sync::Arc;
use std::time::Duration;

use ipam::Datastore;
use tokio::sync::Notify;

use crate::resources::{NODES, WORKLOAD_ENDPOINTS};

/// The prefixes whose changes start a round for `node`.
pub fn prefixes(node: &str) -> Vec<String> {
    vec![
        NODES.to_string(),
        "/tabby/v1/resources/".to_string(),
        ipam::keys::host(node),
        format!("{WORKLOAD_ENDPOINTS}{node}/"),
    ]
}

/// Watch every prefix in the background; the returned `Notify` fires on
/// each change (bursts collapse into one wake-up).
pub fn spawn<S: Datastore + Send + Sync + 'static>(store: Arc<S>, node: &str) -> Arc<Notify> {
    let changed = Arc::new(Notify::new());
    for prefix in prefixes(node) {
        let (store, changed) = (store.clone(), changed.clone());
        tokio::spawn(async move {
            loop {
                match store.watch(&prefix, 0).await {
                    Ok(mut events) => {
                        while let Some(ev) = events.next().await {
                            if ev.is_err() {
                                break;
                            }
                            changed.notify_one();
                        }
                    }
                    Err(e) => tracing::debug!(%prefix, "watch: {e}"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                changed.notify_one();
            }
        });
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_reads_nothing_that_is_not_watched() {
        let p = prefixes("n1");
        for key in [
            crate::resources::node_key("n2"),
            ipam::keys::POOLS.to_string(),
            crate::resources::bgp_peer_key("tor"),
            crate::resources::bgp_configuration_key("default"),
            crate::resources::workload_endpoint_key("n1", "default", "web", "eth0"),
        ] {
            assert!(p.iter().any(|pre| key.starts_with(pre.as_str())), "{key}");
        }
        assert!(!p.iter().any(|pre| {
            crate::resources::workload_endpoint_key("n2", "d", "w", "eth0")
                .starts_with(pre.as_str())
        }));
    }
}
