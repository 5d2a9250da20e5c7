//! The node's tunnels, set up once at start: VXLAN and IPIP devices and
//! their tunnel addresses, as the pools ask for them.
//!
//! - VXLAN, if a pool wants it: tunnel addresses from IPAM (IPv4, and
//!   IPv6 when dual stack with a VXLAN IPv6 pool; handles
//!   `vxlan-tunnel-addr-<node>` / `vxlan-v6-tunnel-addr-<node>`), one
//!   device, `vxlan.tabby`, over the IPv4 uplink for both families, with
//!   the node's stable VTEP MAC.
//! - IPIP, if an IPv4 pool wants it and the kernel has `ipip` (start-up
//!   refuses the pool otherwise): `tunl0` with the node's IPIP tunnel
//!   address.
//!
//! The addresses and MAC go into the Node resource
//! ([`super::registration`]); the device indexes into the routes'
//! [`crate::dataplane::encap::LocalLinks`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use ipam::{EtcdStore, Ipam, TunnelKind};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rtnetlink::Handle;

use super::health::{Timings, timed};
use crate::dataplane::encap::kernel_has_ipip;
use crate::dataplane::vxlan::{self, VxlanDevice, vtep_mac};

/// What [`set_up`] needs.
#[derive(Debug)]
pub struct Setup<'a> {
    pub node: &'a str,
    pub ipam: &'a Ipam<Arc<EtcdStore>>,
    pub handle: &'a Handle,
    pub pools: &'a [ipam::Pool],
    pub address: Ipv4Net,
    pub address6: Option<Ipv6Net>,
    /// The uplink's ifindex and MTU.
    pub uplink: u32,
    pub uplink_mtu: u32,
    /// The labels pool nodeSelectors match.
    pub node_labels: &'a BTreeMap<String, String>,
    /// IPAM operation timings, for the metrics.
    pub timings: &'a mut BTreeMap<&'static str, Timings>,
}

/// The tunnels set up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tunnels {
    pub vxlan4: Option<Ipv4Addr>,
    pub vxlan6: Option<Ipv6Addr>,
    /// The VTEP MAC, when there is a VXLAN device.
    pub mac: Option<[u8; 6]>,
    pub vxlan_index: Option<u32>,
    pub ipip: Option<Ipv4Addr>,
    pub ipip_index: Option<u32>,
}

/// Set up the tunnels `s.pools` ask for.
pub async fn set_up(s: &mut Setup<'_>) -> Result<Tunnels> {
    let wants = |v6: bool, mode: fn(&ipam::Pool) -> ipam::EncapMode| {
        s.pools
            .iter()
            .any(|p| p.cidr.addr().is_ipv6() == v6 && mode(p) != ipam::EncapMode::Never)
    };
    let (vxlan4_wanted, vxlan6_wanted, ipip_wanted) = (
        wants(false, |p| p.vxlan_mode),
        s.address6.is_some() && wants(true, |p| p.vxlan_mode),
        wants(false, |p| p.ipip_mode) && kernel_has_ipip(),
    );
    let mut t = Tunnels::default();
    if vxlan4_wanted {
        let IpAddr::V4(a) = tunnel_address(s, TunnelKind::Vxlan).await? else {
            bail!("IPv4 tunnel address expected")
        };
        t.vxlan4 = Some(a);
    }
    if vxlan6_wanted {
        let IpAddr::V6(a) = tunnel_address(s, TunnelKind::VxlanV6).await? else {
            bail!("IPv6 tunnel address expected")
        };
        t.vxlan6 = Some(a);
    }
    if ipip_wanted {
        let IpAddr::V4(a) = tunnel_address(s, TunnelKind::Ipip).await? else {
            bail!("IPv4 tunnel address expected")
        };
        let index = crate::dataplane::ipip::ensure_tunl0(
            s.handle,
            s.uplink_mtu.saturating_sub(20),
            Some(IpNet::new(IpAddr::V4(a), 32)?),
        )
        .await?;
        tracing::info!(tunnel = %a, "tunl0 up");
        t.ipip = Some(a);
        t.ipip_index = Some(index);
    }
    if t.vxlan4.is_some() || t.vxlan6.is_some() {
        let mac = vtep_mac(s.node);
        let mut tunnel_addresses = Vec::new();
        if let Some(a) = t.vxlan4 {
            tunnel_addresses.push(IpNet::new(IpAddr::V4(a), 32)?);
        }
        if let Some(a) = t.vxlan6 {
            tunnel_addresses.push(IpNet::new(IpAddr::V6(a), 128)?);
        }
        let dev = VxlanDevice {
            name: vxlan::DEFAULT_DEVICE.into(),
            vni: vxlan::DEFAULT_VNI,
            port: vxlan::DEFAULT_PORT,
            uplink: s.uplink,
            local: IpAddr::V4(s.address.addr()),
            mac,
            mtu: s.uplink_mtu.saturating_sub(50),
            tunnel_addresses,
        };
        t.vxlan_index = Some(vxlan::ensure_device(s.handle, &dev).await?);
        t.mac = Some(mac);
    }
    Ok(t)
}

/// The node's tunnel address of `kind`, from IPAM (timed for metrics).
async fn tunnel_address(s: &mut Setup<'_>, kind: TunnelKind) -> Result<IpAddr> {
    timed(
        s.timings,
        "assign_tunnel_address",
        s.ipam.assign_tunnel_address(s.node, kind, s.node_labels),
    )
    .await
    .map(|a| a.ip)
    .with_context(|| format!("{kind:?} tunnel address"))
}
