//! The routes this node wants in its kernel, from what it knows.
//!
//! Sans-IO: the daemon gathers the inputs (own blocks from IPAM, routes
//! learned over BGP, pools, nodes, local pods) and calls [`desired`].
//! - Own blocks get a blackhole, so unused addresses are never forwarded.
//! - Local pods get `<ip>/32 dev caliXXXX` (the routes tabby-cni added are
//!   thereby adopted, not removed).
//! - Learned prefixes are imported only if inside an enabled pool and not
//!   inside one of our own blocks; they are routed per the pool's IPIP /
//!   VXLAN mode ([`remote_block_target`]).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipam::{EncapMode as PoolMode, Pool};
use ipnet::IpNet;

use super::cluster::{NodeInfo, node_at};
use crate::dataplane::encap::{EncapMode, LocalLinks, PoolEncap, RemoteNode, remote_block_target};
use crate::dataplane::route::{RouteSet, Target};

/// A prefix a peer announced, with its next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Learned {
    pub prefix: IpNet,
    pub next_hop: IpAddr,
}

/// Why a learned prefix was not installed (counted, not logged per route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refused {
    OutsidePools,
    OwnBlock,
    NoRoute,
}

/// The pool's modes as the dataplane names them.
pub fn pool_encap(pool: &Pool) -> PoolEncap {
    let m = |m: PoolMode| match m {
        PoolMode::Never => EncapMode::Never,
        PoolMode::Always => EncapMode::Always,
        PoolMode::CrossSubnet => EncapMode::CrossSubnet,
    };
    PoolEncap {
        ipip: m(pool.ipip_mode),
        vxlan: m(pool.vxlan_mode),
    }
}

/// The enabled pool containing `prefix`, if any.
pub fn pool_for<'a>(pools: &'a [Pool], prefix: &IpNet) -> Option<&'a Pool> {
    pools
        .iter()
        .find(|p| !p.disabled && p.cidr.contains(prefix))
}

/// Everything the desired routes depend on.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub own_blocks: &'a [IpNet],
    pub learned: &'a [Learned],
    pub pools: &'a [Pool],
    pub nodes: &'a [NodeInfo],
    pub links: &'a LocalLinks,
    /// Local pod addresses and their host interface.
    pub pods: &'a [(IpNet, u32)],
}

/// The desired routes, and how many learned prefixes were refused and why.
pub fn desired(inputs: &Inputs<'_>) -> (RouteSet, BTreeMap<Refused, usize>) {
    let mut routes = RouteSet::new();
    let mut refused = BTreeMap::new();
    for block in inputs.own_blocks {
        routes.insert(*block, Target::Blackhole);
    }
    for (ip, ifindex) in inputs.pods {
        routes.insert(*ip, Target::Device { ifindex: *ifindex });
    }
    for l in inputs.learned {
        let outcome = (|| {
            let pool = pool_for(inputs.pools, &l.prefix).ok_or(Refused::OutsidePools)?;
            // Our own blocks (or anything covering one) never come from
            // elsewhere; a host route inside one is an address another
            // node borrowed from it, and goes there.
            if inputs.own_blocks.iter().any(|b| l.prefix.contains(b)) {
                return Err(Refused::OwnBlock);
            }
            // The tunnel address of the prefix's family: IPv6 pods are
            // reached through the remote's IPv6 tunnel address.
            let node = node_at(inputs.nodes, l.next_hop);
            let remote = RemoteNode {
                address: l.next_hop,
                vxlan_tunnel: match l.prefix {
                    IpNet::V4(_) => node.and_then(|n| n.vxlan_tunnel).map(IpAddr::V4),
                    IpNet::V6(_) => node.and_then(|n| n.vxlan_tunnel6).map(IpAddr::V6),
                },
            };
            remote_block_target(pool_encap(pool), inputs.links, &remote)
                .map_err(|_| Refused::NoRoute)
        })();
        match outcome {
            Ok(target) => {
                routes.entry(l.prefix).or_insert(target);
            }
            Err(why) => *refused.entry(why).or_default() += 1,
        }
    }
    (routes, refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::route::NextHop;

    fn pool(name: &str, cidr: &str, vxlan: &str) -> Pool {
        let mut p = ipam::IpPool::new(name, cidr);
        p.spec.vxlan_mode = serde_json::from_value(vxlan.into()).unwrap();
        p.validate(&[]).unwrap()
    }

    fn node(name: &str, v4: &str, v6: &str, tunnel: &str, tunnel6: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            address: v4.parse().unwrap(),
            address6: Some(v6.parse().unwrap()),
            asn: 64512,
            vxlan_tunnel: Some(tunnel.parse().unwrap()),
            vxlan_tunnel6: Some(tunnel6.parse().unwrap()),
            vtep_mac: Some([2, 0, 0, 0, 0, 1]),
            labels: Default::default(),
            rr_cluster_id: None,
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn learned(prefix: &str, next_hop: &str) -> Learned {
        Learned {
            prefix: net(prefix),
            next_hop: next_hop.parse().unwrap(),
        }
    }

    fn hop(gateway: &str, ifindex: u32, onlink: bool) -> Target {
        Target::Gateway(NextHop {
            gateway: gateway.parse().unwrap(),
            ifindex,
            onlink,
        })
    }

    #[test]
    fn dual_stack_blocks_go_direct_on_the_subnet_and_over_vxlan_across() {
        let pools = [
            pool("v4", "10.0.0.0/16", "CrossSubnet"),
            pool("v6", "fd00:10::/48", "CrossSubnet"),
        ];
        let nodes = [
            node(
                "n2",
                "10.200.0.2/24",
                "fd00:200::2/64",
                "10.0.2.0",
                "fd00:10:0:2::",
            ),
            node(
                "n3",
                "10.201.0.3/24",
                "fd00:201::3/64",
                "10.0.3.0",
                "fd00:10:0:3::",
            ),
        ];
        let links = LocalLinks {
            node_subnet: net("10.200.0.1/24"),
            node_subnet6: Some(net("fd00:200::1/64")),
            uplink: 2,
            ipip: None,
            vxlan: Some(7),
        };
        let own = [net("10.0.1.0/26"), net("fd00:10:0:1::/122")];
        let pods = [(net("10.0.1.5/32"), 40), (net("fd00:10:0:1::5/128"), 40)];
        let learned = [
            learned("10.0.2.0/26", "10.200.0.2"),
            learned("fd00:10:0:2::/122", "fd00:200::2"),
            learned("10.0.3.0/26", "10.201.0.3"),
            learned("fd00:10:0:3::/122", "fd00:201::3"),
            // not ours to take: outside the pools, and our own block
            learned("192.168.9.0/24", "10.200.0.2"),
            learned("fd00:10:0:1::/122", "fd00:200::2"),
        ];
        let (routes, refused) = desired(&Inputs {
            own_blocks: &own,
            learned: &learned,
            pools: &pools,
            nodes: &nodes,
            links: &links,
            pods: &pods,
        });
        assert_eq!(
            routes.get(&net("fd00:10:0:1::/122")),
            Some(&Target::Blackhole)
        );
        assert_eq!(
            routes.get(&net("fd00:10:0:1::5/128")),
            Some(&Target::Device { ifindex: 40 })
        );
        assert_eq!(
            routes.get(&net("10.0.2.0/26")),
            Some(&hop("10.200.0.2", 2, false))
        );
        assert_eq!(
            routes.get(&net("fd00:10:0:2::/122")),
            Some(&hop("fd00:200::2", 2, false))
        );
        assert_eq!(
            routes.get(&net("10.0.3.0/26")),
            Some(&hop("10.0.3.0", 7, true))
        );
        assert_eq!(
            routes.get(&net("fd00:10:0:3::/122")),
            Some(&hop("fd00:10:0:3::", 7, true)),
            "IPv6 crosses subnets through the remote's IPv6 tunnel address"
        );
        assert_eq!(refused.get(&Refused::OutsidePools), Some(&1));
        assert_eq!(refused.get(&Refused::OwnBlock), Some(&1));
        assert_eq!(routes.len(), 8);
    }
}
