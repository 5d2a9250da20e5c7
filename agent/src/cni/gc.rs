//! GC and STATUS (spec 1.1.0).
//!
//! GC gets the attachments the runtime still knows
//! (`cni.dev/valid-attachments`). Every WorkloadEndpoint of this node and
//! network whose container is not among them loses its host veth and its
//! record; every IPAM handle of this network allocated for this node whose
//! container is not among them is released (or GC goes to the delegated
//! IPAM plugin). Other nodes' endpoints and handles are never touched.
//!
//! STATUS answers whether an ADD could succeed now: the datastore answers
//! and the node agent has registered this node. Otherwise code 50.

use ipam::Datastore;

use super::add::{NETWORK_LABEL, with_host_handle};
use super::endpoint;
use super::env::Command;
use super::error::CniError;
use super::ipam_role;
use super::session::Session;
use crate::dataplane::veth;
use crate::resources;

pub async fn gc<S: Datastore>(s: &Session<S>) -> Result<(), CniError> {
    let valid = s.conf.valid_container_ids()?;
    for (key, wep) in endpoint::endpoints_of_node(s.store(), &s.node).await? {
        let network = wep.metadata.labels.get(NETWORK_LABEL);
        if network != Some(&s.conf.name) || valid.contains(&wep.spec.container_id) {
            continue;
        }
        let name = wep.spec.interface_name.clone();
        with_host_handle(|h| async move { veth::delete(&h, &name).await })
            .await?
            .map_err(|e| CniError::dataplane("deleting a stale veth", e))?;
        endpoint::delete_endpoint_of(s.store(), &key, &wep.spec.container_id).await?;
        s.log
            .info(&format!("GC: removed {key} ({})", wep.spec.interface_name));
    }
    if s.conf.ipam.is_tabby() {
        let released = ipam_role::gc(&s.ipam, &s.conf, &s.node, &valid).await?;
        s.log.info(&format!("GC: released {released:?}"));
        Ok(())
    } else {
        s.delegate(Command::Gc).map(drop)
    }
}

pub async fn status<S: Datastore>(s: &Session<S>) -> Result<(), CniError> {
    let key = resources::node_key(&s.node);
    match s.store().get(&key).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(CniError::NotAvailable(format!(
                "node {:?} is not registered ({key} is absent); is tabby-node running?",
                s.node
            )));
        }
        Err(e) => return Err(CniError::NotAvailable(e.to_string())),
    }
    if !s.conf.ipam.is_tabby() {
        s.delegate(Command::Status)?;
    }
    Ok(())
}
