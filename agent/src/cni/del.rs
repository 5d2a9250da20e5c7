//! DEL for the network half: idempotent and best effort (SPEC §"DEL").
//!
//! It succeeds when the netns is gone, the interface is gone, the
//! endpoint or the addresses are gone, on a second DEL, and after a failed
//! ADD. Order, as in Calico: the endpoint (deleted only if it records this
//! container ID; a DEL for an old sandbox of a pod that was re-created
//! keeps the new sandbox's endpoint), then the interface, then IPAM.
//!
//! A datastore that cannot be read fails the DEL (code 11) without
//! touching anything, so an etcd outage never causes a half DEL that the
//! runtime believes complete; the runtime retries.

use ipam::Datastore;

use super::add::{endpoint_key, host_ifname, with_host_handle};
use super::endpoint;
use super::env::Attach;
use super::error::CniError;
use super::session::Session;
use crate::dataplane::netns::with_handle_in;
use crate::dataplane::veth;

pub async fn del<S: Datastore>(s: &Session<S>, attach: &Attach) -> Result<(), CniError> {
    let key = endpoint_key(s, attach);
    let ours = match endpoint::endpoint(s.store(), &key).await? {
        Some((wep, _)) if wep.spec.container_id == attach.container_id => true,
        Some((wep, _)) => {
            s.log.info(&format!(
                "{key} belongs to container {}, not {}: kept",
                wep.spec.container_id, attach.container_id
            ));
            false
        }
        None => false,
    };
    remove_pod_interface(s, attach);
    if ours {
        // The pod side may be gone with its namespace while the host side
        // lingers (a namespace kept alive by a process): remove it by name.
        let name = host_ifname(s, attach);
        match with_host_handle(|h| async move { veth::delete(&h, &name).await }).await? {
            Ok(true) => s.log.info("deleted the host side of the veth"),
            Ok(false) => {}
            Err(e) => return Err(CniError::dataplane("deleting the veth", e)),
        }
        endpoint::delete_endpoint_of(s.store(), &key, &attach.container_id).await?;
    }
    s.deallocate(&attach.container_id).await
}

/// Delete `CNI_IFNAME` inside `CNI_NETNS` (the pair goes with it). No
/// netns, a netns that is gone, or no such interface: nothing to do.
fn remove_pod_interface<S>(s: &Session<S>, attach: &Attach) {
    let Some(netns) = attach.netns.as_deref().filter(|p| p.exists()) else {
        return;
    };
    let ifname = attach.ifname.clone();
    let outcome = with_handle_in(netns, |h| async move {
        match veth::link_index(&h, &ifname).await? {
            Some(index) => h
                .link()
                .del(index)
                .execute()
                .await
                .map(|()| true)
                .map_err(Into::into),
            None => Ok::<bool, veth::VethError>(false),
        }
    });
    match outcome {
        Ok(Ok(true)) => s
            .log
            .info(&format!("deleted {} in {}", attach.ifname, netns.display())),
        Ok(Ok(false)) => {}
        Ok(Err(e)) => s
            .log
            .warn(&format!("deleting {} in the pod: {e}", attach.ifname)),
        // not a namespace (any more): the interface went with it
        Err(e) => s.log.warn(&format!("entering {}: {e}", netns.display())),
    }
}
