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
