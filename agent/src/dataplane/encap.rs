//! How a route to another node's block is sent: direct, IPIP or VXLAN.
//!
//! This is the pool's `ipipMode` / `vxlanMode` (`Never`, `Always`,
//! `CrossSubnet`) applied to one remote node, as Felix applies it:
//! CrossSubnet tunnels only when the remote node's address lies outside the
//! local node's subnet. Sans-IO: the caller supplies the interface indexes.

use std::net::IpAddr;

use ipnet::IpNet;

use super::route::{NextHop, Target};

/// A pool's encapsulation mode for one tunnel type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncapMode {
    #[default]
    Never,
    Always,
    CrossSubnet,
}

/// Which encapsulation a pool asks for. Calico forbids enabling both; the
/// IP pool validation refuses that, so here VXLAN simply wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolEncap {
    pub ipip: EncapMode,
    pub vxlan: EncapMode,
}

/// The local node's interfaces and subnet, as the decision needs them.
#[derive(Debug, Clone, Copy)]
pub struct LocalLinks {
    /// The node's own address with its subnet, e.g. 10.200.0.1/24.
    pub node_subnet: IpNet,
    /// The node's IPv6 address with its subnet (`IP6`), when dual stack:
    /// CrossSubnet for IPv6 pools compares remote IPv6 addresses with it.
    pub node_subnet6: Option<IpNet>,
    /// The uplink the node address is on.
    pub uplink: u32,
    /// `tunl0`, when IPIP is available.
    pub ipip: Option<u32>,
    /// `vxlan.tabby`, when VXLAN is set up.
    pub vxlan: Option<u32>,
}

/// A remote node as the route to its block needs it.
#[derive(Debug, Clone, Copy)]
pub struct RemoteNode {
    /// The node's address (BGP next hop).
    pub address: IpAddr,
    /// Its VXLAN tunnel address, if it has one.
    pub vxlan_tunnel: Option<IpAddr>,
}

/// Why a route to a remote block cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncapError {
    #[error("pool needs IPIP but this kernel has no ipip support (CONFIG_NET_IPIP)")]
    NoIpip,
    #[error("pool needs VXLAN but the VXLAN device is not set up")]
    NoVxlanDevice,
    #[error("remote node {0} has no VXLAN tunnel address yet")]
    NoRemoteVtep(IpAddr),
}

fn tunnels(mode: EncapMode, links: &LocalLinks, remote: IpAddr) -> bool {
    let subnet = match remote {
        IpAddr::V4(_) => Some(links.node_subnet),
        IpAddr::V6(_) => links.node_subnet6,
    };
    match mode {
        EncapMode::Never => false,
        EncapMode::Always => true,
        EncapMode::CrossSubnet => !subnet.is_some_and(|s| s.contains(&remote)),
    }
}

/// The target for a block on `remote`, per the pool's `encap`.
pub fn remote_block_target(
    encap: PoolEncap,
    links: &LocalLinks,
    remote: &RemoteNode,
) -> Result<Target, EncapError> {
    if tunnels(encap.vxlan, links, remote.address) {
        let ifindex = links.vxlan.ok_or(EncapError::NoVxlanDevice)?;
        let gateway = remote
            .vxlan_tunnel
            .ok_or(EncapError::NoRemoteVtep(remote.address))?;
        return Ok(Target::Gateway(NextHop {
            gateway,
            ifindex,
            onlink: true,
        }));
    }
    if tunnels(encap.ipip, links, remote.address) {
        let ifindex = links.ipip.ok_or(EncapError::NoIpip)?;
        return Ok(Target::Gateway(NextHop {
            gateway: remote.address,
            ifindex,
            onlink: true,
        }));
    }
    Ok(Target::Gateway(NextHop {
        gateway: remote.address,
        ifindex: links.uplink,
        onlink: false,
    }))
}

/// Pod MTU for an uplink MTU: minus 20 for IPIP, 50 for VXLAN over IPv4,
/// 70 for VXLAN over IPv6, as Calico computes it. The uplink's MTU comes
/// from configuration or from [`link_mtu`](super::veth::link_mtu).
pub fn pod_mtu(uplink_mtu: u32, encap: PoolEncap, vxlan_over_ipv6: bool) -> u32 {
    if encap.vxlan != EncapMode::Never {
        uplink_mtu.saturating_sub(if vxlan_over_ipv6 { 70 } else { 50 })
    } else if encap.ipip != EncapMode::Never {
        uplink_mtu.saturating_sub(20)
    } else {
        uplink_mtu
    }
}

/// Refuse, before anything is programmed, a pool this kernel cannot carry.
pub fn check_kernel_support(encap: PoolEncap, has_ipip: bool) -> Result<(), EncapError> {
    if encap.ipip != EncapMode::Never && encap.vxlan == EncapMode::Never && !has_ipip {
        return Err(EncapError::NoIpip);
    }
    Ok(())
}

/// Whether the running kernel can do IPIP: the `ipip` module creates the
/// fallback device `tunl0` in every namespace once it is loaded.
pub fn kernel_has_ipip() -> bool {
    std::path::Path::new("/sys/module/ipip").exists()
        || std::path::Path::new("/sys/class/net/tunl0").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> LocalLinks {
        LocalLinks {
            node_subnet: "10.200.0.1/24".parse().unwrap(),
            node_subnet6: Some("fd00:200::1/64".parse().unwrap()),
            uplink: 2,
            ipip: Some(5),
            vxlan: Some(6),
        }
    }

    fn remote(addr: &str) -> RemoteNode {
        RemoteNode {
            address: addr.parse().unwrap(),
            vxlan_tunnel: Some("10.0.9.0".parse().unwrap()),
        }
    }

    fn hop(gw: &str, ifindex: u32, onlink: bool) -> Target {
        Target::Gateway(NextHop {
            gateway: gw.parse().unwrap(),
            ifindex,
            onlink,
        })
    }

    #[test]
    fn never_is_direct_via_the_uplink() {
        let t = remote_block_target(PoolEncap::default(), &links(), &remote("10.201.0.9")).unwrap();
        assert_eq!(t, hop("10.201.0.9", 2, false));
    }

    #[test]
    fn ipip_always_is_onlink_through_tunl0() {
        let encap = PoolEncap {
            ipip: EncapMode::Always,
            ..Default::default()
        };
        let t = remote_block_target(encap, &links(), &remote("10.200.0.9")).unwrap();
        assert_eq!(t, hop("10.200.0.9", 5, true));
    }

    #[test]
    fn cross_subnet_tunnels_only_outside_the_subnet() {
        let encap = PoolEncap {
            vxlan: EncapMode::CrossSubnet,
            ..Default::default()
        };
        let same = remote_block_target(encap, &links(), &remote("10.200.0.9")).unwrap();
        assert_eq!(same, hop("10.200.0.9", 2, false));
        let other = remote_block_target(encap, &links(), &remote("10.201.0.9")).unwrap();
        assert_eq!(other, hop("10.0.9.0", 6, true));
        let encap = PoolEncap {
            ipip: EncapMode::CrossSubnet,
            ..Default::default()
        };
        let other = remote_block_target(encap, &links(), &remote("10.201.0.9")).unwrap();
        assert_eq!(other, hop("10.201.0.9", 5, true));
    }

    #[test]
    fn cross_subnet_for_ipv6_compares_with_the_ipv6_subnet() {
        let encap = PoolEncap {
            vxlan: EncapMode::CrossSubnet,
            ..Default::default()
        };
        let r6 = |addr: &str| RemoteNode {
            address: addr.parse().unwrap(),
            vxlan_tunnel: Some("fd00:10::9".parse().unwrap()),
        };
        let same = remote_block_target(encap, &links(), &r6("fd00:200::9")).unwrap();
        assert_eq!(same, hop("fd00:200::9", 2, false));
        let other = remote_block_target(encap, &links(), &r6("fd00:201::9")).unwrap();
        assert_eq!(other, hop("fd00:10::9", 6, true));
        // without an IPv6 subnet of our own, every IPv6 node is "across"
        let v4_only = LocalLinks {
            node_subnet6: None,
            ..links()
        };
        let t = remote_block_target(encap, &v4_only, &r6("fd00:200::9")).unwrap();
        assert_eq!(t, hop("fd00:10::9", 6, true));
    }

    #[test]
    fn missing_tunnel_pieces_are_errors_not_direct_routes() {
        let no_ipip = LocalLinks {
            ipip: None,
            ..links()
        };
        let encap = PoolEncap {
            ipip: EncapMode::Always,
            ..Default::default()
        };
        assert_eq!(
            remote_block_target(encap, &no_ipip, &remote("10.1.1.1")),
            Err(EncapError::NoIpip)
        );
        let encap = PoolEncap {
            vxlan: EncapMode::Always,
            ..Default::default()
        };
        let r = RemoteNode {
            vxlan_tunnel: None,
            ..remote("10.1.1.1")
        };
        assert_eq!(
            remote_block_target(encap, &links(), &r),
            Err(EncapError::NoRemoteVtep("10.1.1.1".parse().unwrap()))
        );
    }

    #[test]
    fn an_ipip_pool_is_refused_on_a_kernel_without_ipip() {
        let ipip = PoolEncap {
            ipip: EncapMode::CrossSubnet,
            ..Default::default()
        };
        assert_eq!(check_kernel_support(ipip, false), Err(EncapError::NoIpip));
        assert!(EncapError::NoIpip.to_string().contains("CONFIG_NET_IPIP"));
        assert_eq!(check_kernel_support(ipip, true), Ok(()));
        assert_eq!(check_kernel_support(PoolEncap::default(), false), Ok(()));
    }

    #[test]
    fn mtu_overheads() {
        let vx = PoolEncap {
            vxlan: EncapMode::Always,
            ..Default::default()
        };
        let ip = PoolEncap {
            ipip: EncapMode::CrossSubnet,
            ..Default::default()
        };
        assert_eq!(pod_mtu(1500, vx, false), 1450);
        assert_eq!(pod_mtu(1500, vx, true), 1430);
        assert_eq!(pod_mtu(1500, ip, false), 1480);
        assert_eq!(pod_mtu(9000, PoolEncap::default(), false), 9000);
    }
}
