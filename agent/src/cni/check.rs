//! CHECK for the network half (SPEC §"CHECK"): the attachment is still as
//! ADD made it. From `prevResult`: the host interface (no sandbox) and the
//! pod interface (sandbox = CNI_NETNS) exist, the pod interface holds every
//! address of its `ips`, the pod has its default route via the gateway,
//! and the host has tabby's route to each address on the host interface.
//! From the datastore: the WorkloadEndpoint records this container and
//! these addresses, and IPAM holds them for the handle (or the delegated
//! IPAM plugin's CHECK passes). Later plugins in the chain may have added
//! things; only what tabby made is checked.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use futures::TryStreamExt;
use ipam::Datastore;
use ipnet::IpNet;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};

use super::add::{endpoint_key, host_ifname, host_prefix, with_host_handle};
use super::endpoint;
use super::env::{Attach, Command};
use super::error::CniError;
use super::result::CniResult;
use super::session::Session;
use crate::dataplane::netns::with_handle_in;
use crate::dataplane::route::Target;
use crate::dataplane::route_table::RouteTable;
use crate::dataplane::veth::{self, POD_GATEWAY_V4};

fn failed(msg: String) -> CniError {
    CniError::CheckFailed(msg)
}

pub async fn check<S: Datastore>(s: &Session<S>, attach: &Attach) -> Result<(), CniError> {
    let prev = s
        .conf
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::config("prevResult", "required for CHECK"))?;
    let prev = CniResult::from_value(prev, "prevResult")?;
    let netns = attach
        .netns
        .as_deref()
        .ok_or_else(|| CniError::env("CNI_NETNS", "required for CHECK"))?;
    let host = host_ifname(s, attach);
    let netns_text = netns.display().to_string();
    let pod_index = prev
        .interfaces
        .iter()
        .position(|i| i.name == attach.ifname && i.sandbox.as_deref() == Some(&netns_text))
        .ok_or_else(|| {
            failed(format!(
                "prevResult has no {} in {netns_text}",
                attach.ifname
            ))
        })?;
    if !prev
        .interfaces
        .iter()
        .any(|i| i.name == host && i.sandbox.is_none())
    {
        return Err(failed(format!("prevResult has no host interface {host}")));
    }
    let want: BTreeSet<IpNet> = prev.ips_on(pod_index).map(|a| host_prefix(&a)).collect();
    if want.is_empty() {
        return Err(failed(format!(
            "prevResult has no address on {}",
            attach.ifname
        )));
    }

    let name = host.clone();
    let host_index = with_host_handle(|h| async move { veth::link_index(&h, &name).await })
        .await?
        .map_err(|e| CniError::dataplane("reading links", e))?
        .ok_or_else(|| failed(format!("host interface {host} is missing")))?;
    check_pod_side(netns, &attach.ifname, &want)?;
    let owned = RouteTable::open()
        .and_then(|mut t| t.owned())
        .map_err(|e| CniError::dataplane("reading routes", e))?;
    for ip in &want {
        if owned.get(ip)
            != Some(&Target::Device {
                ifindex: host_index,
            })
        {
            return Err(failed(format!(
                "no tabby route {ip} dev {host} on the host"
            )));
        }
    }

    let key = endpoint_key(s, attach);
    let (wep, _) = endpoint::endpoint(s.store(), &key)
        .await?
        .ok_or_else(|| failed(format!("no WorkloadEndpoint at {key}")))?;
    if wep.spec.container_id != attach.container_id {
        return Err(failed(format!(
            "{key} records container {}, not {}",
            wep.spec.container_id, attach.container_id
        )));
    }
    let recorded: BTreeSet<IpNet> = wep.spec.ip_networks.iter().copied().collect();
    if recorded != want {
        return Err(failed(format!(
            "{key} records {recorded:?}, prevResult {want:?}"
        )));
    }
    if s.conf.ipam.is_tabby() {
        let handle = s.conf.handle(&attach.container_id);
        let held: BTreeSet<IpNet> = s
            .ipam
            .ips_by_handle(&handle)
            .await?
            .into_iter()
            .map(IpNet::from)
            .collect();
        if held != want {
            return Err(failed(format!(
                "IPAM holds {held:?} for {handle}, prevResult {want:?}"
            )));
        }
    } else {
        s.delegate(Command::Check)?;
    }
    Ok(())
}

/// The pod interface exists, holds `want`, and the pod routes by default
/// via 169.254.1.1 when it has an IPv4 address.
fn check_pod_side(netns: &Path, ifname: &str, want: &BTreeSet<IpNet>) -> Result<(), CniError> {
    let name = ifname.to_string();
    let found = with_handle_in(netns, |h| async move {
        let Some(index) = veth::link_index(&h, &name)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let mut have = BTreeSet::new();
        let mut addrs = h.address().get().set_link_index_filter(index).execute();
        while let Some(msg) = addrs.try_next().await.map_err(|e| e.to_string())? {
            for a in &msg.attributes {
                if let AddressAttribute::Address(ip) = a
                    && let Ok(net) = IpNet::new(*ip, msg.header.prefix_len)
                {
                    have.insert(net);
                }
            }
        }
        let mut default_v4 = false;
        let mut routes = h
            .route()
            .get(rtnetlink::RouteMessageBuilder::<std::net::Ipv4Addr>::new().build())
            .execute();
        while let Some(r) = routes.try_next().await.map_err(|e| e.to_string())? {
            let gw = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Gateway(RouteAddress::Inet(g)) => Some(*g),
                _ => None,
            });
            default_v4 |= r.header.destination_prefix_length == 0 && gw == Some(POD_GATEWAY_V4);
        }
        Ok::<_, String>(Some((have, default_v4)))
    })
    .map_err(|e| CniError::UnknownContainer(format!("{}: {e}", netns.display())))?
    .map_err(|e| CniError::dataplane("reading the pod", e))?;
    let Some((have, default_v4)) = found else {
        return Err(failed(format!(
            "{ifname} is missing in {}",
            netns.display()
        )));
    };
    if let Some(missing) = want.iter().find(|w| !have.contains(w)) {
        return Err(failed(format!("{ifname} lacks {missing} (has {have:?})")));
    }
    if want.iter().any(|w| matches!(w.addr(), IpAddr::V4(_))) && !default_v4 {
        return Err(failed(format!(
            "the pod has no default route via {POD_GATEWAY_V4}"
        )));
    }
    Ok(())
}
