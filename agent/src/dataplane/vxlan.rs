//! The VXLAN device and the per-node entries that replace flooding.
//!
//! Like Felix's VXLAN manager: one device, `vxlan.tabby` (VNI 4096, UDP
//! port 4789, learning off, on top of the uplink with the node address as
//! source), carrying the node's tunnel address as a /32. For each remote
//! node two permanent entries tell the kernel where to send, so nothing is
//! ever flooded or learned: a neighbour entry (remote tunnel IP → remote
//! VTEP MAC) and a bridge FDB entry (remote VTEP MAC → remote node IP).
//! Routes to remote blocks then go `via <remote tunnel IP> dev vxlan.tabby
//! onlink` (see [`super::encap`]).

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkInfo};
use rtnetlink::packet_route::neighbour::{NeighbourFlags, NeighbourState};
use rtnetlink::{Handle, LinkUnspec, LinkVxlan};
use sha1::{Digest, Sha1};

use super::veth::{VethError, link_index};

/// Calico's defaults, kept so mixed clusters and firewalls need no change.
pub const DEFAULT_DEVICE: &str = "vxlan.tabby";
pub const DEFAULT_VNI: u32 = 4096;
pub const DEFAULT_PORT: u16 = 4789;

/// The local VXLAN device.
#[derive(Debug, Clone)]
pub struct VxlanDevice {
    pub name: String,
    pub vni: u32,
    pub port: u16,
    /// The uplink's ifindex (the device's parent).
    pub uplink: u32,
    /// The node's address: the outer source.
    pub local: IpAddr,
    /// This node's VTEP MAC.
    pub mac: [u8; 6],
    pub mtu: u32,
    /// The node's tunnel address, as a host prefix.
    pub tunnel_address: Option<IpNet>,
}

/// What a remote node's VTEP needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteVtep {
    pub node_address: IpAddr,
    pub tunnel_address: IpAddr,
    pub mac: [u8; 6],
}

/// A stable VTEP MAC for `node`: the first six bytes of sha1(node name)
/// with the locally-administered bit set and the multicast bit clear.
pub fn vtep_mac(node: &str) -> [u8; 6] {
    let d = Sha1::digest(node.as_bytes());
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&d[..6]);
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac
}

/// Create the device, or recreate it if it exists with other parameters;
/// set its tunnel address and bring it up. Returns its ifindex.
pub async fn ensure_device(handle: &Handle, dev: &VxlanDevice) -> Result<u32, VethError> {
    if let Some(index) = link_index(handle, &dev.name).await? {
        if matches_device(handle, index, dev).await? {
            return finish(handle, index, dev).await;
        }
        handle.link().del(index).execute().await?;
    }
    let mut builder = LinkVxlan::new(&dev.name, dev.vni)
        .dev(dev.uplink)
        .port(dev.port)
        .learning(false)
        .address(dev.mac.to_vec())
        .mtu(dev.mtu);
    builder = match dev.local {
        IpAddr::V4(a) => builder.local(a),
        IpAddr::V6(a) => builder.local6(a),
    };
    handle.link().add(builder.build()).execute().await?;
    let index = link_index(handle, &dev.name)
        .await?
        .ok_or_else(|| VethError::Vanished(dev.name.clone()))?;
    finish(handle, index, dev).await
}

async fn finish(handle: &Handle, index: u32, dev: &VxlanDevice) -> Result<u32, VethError> {
    if let Some(addr) = dev.tunnel_address {
        handle
            .address()
            .add(index, addr.addr(), addr.prefix_len())
            .replace()
            .execute()
            .await?;
    }
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).mtu(dev.mtu).up().build())
        .execute()
        .await?;
    Ok(index)
}

async fn matches_device(handle: &Handle, index: u32, dev: &VxlanDevice) -> Result<bool, VethError> {
    let mut links = handle.link().get().match_index(index).execute();
    let Some(link) = links.try_next().await? else {
        return Ok(false);
    };
    let mut kind_ok = false;
    let (mut vni, mut port, mut mac) = (None, None, None);
    for attr in &link.attributes {
        match attr {
            LinkAttribute::Address(m) => mac = Some(m.clone()),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(InfoKind::Vxlan) => kind_ok = true,
                        LinkInfo::Data(InfoData::Vxlan(data)) => {
                            for d in data {
                                match d {
                                    InfoVxlan::Id(v) => vni = Some(*v),
                                    InfoVxlan::Port(p) => port = Some(*p),
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(kind_ok
        && vni == Some(dev.vni)
        && port == Some(dev.port)
        && mac.as_deref() == Some(&dev.mac[..]))
}

/// Install (or refresh) the neighbour and FDB entries for one remote node.
pub async fn set_remote(handle: &Handle, index: u32, vtep: &RemoteVtep) -> Result<(), VethError> {
    handle
        .neighbours()
        .add(index, vtep.tunnel_address)
        .link_layer_address(&vtep.mac)
        .state(NeighbourState::Permanent)
        .replace()
        .execute()
        .await?;
    handle
        .neighbours()
        .add_bridge(index, &vtep.mac)
        .destination(vtep.node_address)
        .flags(NeighbourFlags::Own)
        .state(NeighbourState::Permanent)
        .replace()
        .execute()
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vtep_mac_is_stable_unicast_and_local() {
        let a = vtep_mac("node-a");
        assert_eq!(a, vtep_mac("node-a"));
        assert_ne!(a, vtep_mac("node-b"));
        assert_eq!(a[0] & 0x01, 0, "unicast");
        assert_eq!(a[0] & 0x02, 0x02, "locally administered");
    }
}
