//! The plugin's datastore records: waiting for this node's `Node`, and
//! writing, reading and deleting `WorkloadEndpoint`s. Every write is a
//! compare-and-swap on the key's revision, retried on conflict.

use std::time::{Duration, Instant};

use ipam::Datastore;
use ipam::store::{Revision, TxnOutcome};

use super::error::CniError;
use crate::resources::{self, Node, WorkloadEndpoint};

/// Attempts per CAS write before giving up with code 11.
const ATTEMPTS: u32 = 20;

/// This node's `Node`, waiting up to `bound` for the node agent to
/// register it. Past the bound: code 11, try again later.
pub async fn wait_for_node<S: Datastore>(
    store: &S,
    node: &str,
    bound: Duration,
) -> Result<Node, CniError> {
    let key = resources::node_key(node);
    let deadline = Instant::now() + bound;
    loop {
        let last = match store.get(&key).await {
            Ok(Some(kv)) => {
                return Node::from_json(&kv.value)
                    .map_err(|e| CniError::Datastore(format!("{key} does not decode: {e}")));
            }
            Ok(None) => format!("node {node:?} is not registered ({key} is absent)"),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(CniError::TryAgainLater(format!(
                "{last} after waiting {bound:?}; is tabby-node running on this node?"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The endpoint stored at `key`, with its revision.
pub async fn endpoint<S: Datastore>(
    store: &S,
    key: &str,
) -> Result<Option<(WorkloadEndpoint, Revision)>, CniError> {
    match store.get(key).await? {
        None => Ok(None),
        Some(kv) => WorkloadEndpoint::from_json(&kv.value)
            .map(|w| Some((w, kv.mod_revision)))
            .map_err(|e| CniError::Datastore(format!("{key} does not decode: {e}"))),
    }
}

/// Create or replace `wep` (a re-ADD of the same pod under a new sandbox
/// replaces the old sandbox's record, as in Calico). Returns the revision.
pub async fn put_endpoint<S: Datastore>(
    store: &S,
    wep: &WorkloadEndpoint,
) -> Result<Revision, CniError> {
    let key = wep.key();
    for _ in 0..ATTEMPTS {
        let rev = store.get(&key).await?.map_or(0, |kv| kv.mod_revision);
        if let TxnOutcome::Committed { revision } = store.update(&key, wep.to_json(), rev).await? {
            return Ok(revision);
        }
    }
    Err(CniError::TryAgainLater(format!(
        "{key}: {ATTEMPTS} conflicting writes"
    )))
}

/// Delete the endpoint at `key` if it belongs to `container_id`. `Ok(true)`
/// if it was deleted; `Ok(false)` if absent or another sandbox's.
pub async fn delete_endpoint_of<S: Datastore>(
    store: &S,
    key: &str,
    container_id: &str,
) -> Result<bool, CniError> {
    for _ in 0..ATTEMPTS {
        let Some((wep, rev)) = endpoint(store, key).await? else {
            return Ok(false);
        };
        if wep.spec.container_id != container_id {
            return Ok(false);
        }
        if let TxnOutcome::Committed { .. } = store.delete(key, rev).await? {
            return Ok(true);
        }
    }
    Err(CniError::TryAgainLater(format!(
        "{key}: {ATTEMPTS} conflicting deletes"
    )))
}

/// Every endpoint recorded for `node`, with its key.
pub async fn endpoints_of_node<S: Datastore>(
    store: &S,
    node: &str,
) -> Result<Vec<(String, WorkloadEndpoint)>, CniError> {
    let range = store.range(&resources::node_endpoints_prefix(node)).await?;
    range
        .kvs
        .into_iter()
        .map(|kv| {
            WorkloadEndpoint::from_json(&kv.value)
                .map(|w| (kv.key.clone(), w))
                .map_err(|e| CniError::Datastore(format!("{} does not decode: {e}", kv.key)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use ipam::MemoryStore;

    use super::*;
    use crate::resources::WorkloadEndpointSpec;

    fn wep(container: &str) -> WorkloadEndpoint {
        WorkloadEndpoint::new(
            "default",
            WorkloadEndpointSpec {
                orchestrator: "k8s".into(),
                node: "n1".into(),
                container_id: container.into(),
                pod: "p".into(),
                endpoint: "eth0".into(),
                interface_name: "cali1".into(),
                ..WorkloadEndpointSpec::default()
            },
        )
    }

    #[tokio::test]
    async fn the_endpoint_is_removed_only_by_its_own_container() {
        let store = MemoryStore::new();
        put_endpoint(&store, &wep("old")).await.unwrap();
        put_endpoint(&store, &wep("new")).await.unwrap();
        let key = wep("new").key();
        assert!(!delete_endpoint_of(&store, &key, "old").await.unwrap());
        assert_eq!(endpoints_of_node(&store, "n1").await.unwrap().len(), 1);
        assert!(delete_endpoint_of(&store, &key, "new").await.unwrap());
        assert!(!delete_endpoint_of(&store, &key, "new").await.unwrap());
        assert!(endpoint(&store, &key).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_unregistered_node_is_code_11_after_the_bound() {
        let store = MemoryStore::new();
        let e = wait_for_node(&store, "n1", Duration::from_millis(10))
            .await
            .unwrap_err();
        assert_eq!(e.code(), 11, "{e}");
        store
            .create(
                &resources::node_key("n1"),
                br#"{"metadata":{"name":"n1"}}"#.to_vec(),
            )
            .await
            .unwrap();
        let node = wait_for_node(&store, "n1", Duration::ZERO).await.unwrap();
        assert_eq!(node.metadata.name, "n1");
    }
}
