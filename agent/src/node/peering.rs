//! How the agent configures each BGP session and its RIB peer, from the
//! node and the [`MeshPeer`] it talks to. Sans-IO.
//!
//! - Session: the node's AS and address, the agent's hold time; IPv6
//!   unicast too when dual stack (RFC 4760, one session for both
//!   families); graceful restart (RFC 4724) for every family with the F
//!   bit — the kernel keeps forwarding while the agent restarts — and the
//!   R bit while converging after a restart; long-lived graceful restart
//!   (RFC 9494) for the same families with the configured stale time
//!   (none when 0), so a peer keeps our routes, least preferred, while
//!   this agent stays down beyond the restart time; MD5 password; other tabby
//!   nodes on the agent's BGP port; BGPPeers (ToRs, reflectors) a few
//!   hops away (TTL 64, as Calico's BIRD `multihop`).
//! - RIB peer: next hop self (or keep, `keepOriginalNextHop`), max-prefix
//!   (Cease 6/1, restart after 30 s), reflection to clients; external
//!   peers (RFC 8212: explicit policies) get only our blocks and give only
//!   prefixes inside enabled pools.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use bgp::rib::{PeerConfig as RibPeer, Policy, PrefixSet};
use bgp::session::SessionConfig;
use bgp::speaker::PeerConfig;
use bgp::wire::capability::{
    GracefulRestart, GracefulRestartFamily, LongLivedGracefulRestartFamily,
};
use bgp::wire::{Afi, Capability, Safi};
use ipnet::IpNet;

use super::cluster::{MeshPeer, NodeInfo, PeerType};

/// How long a session closed for exceeding BGPPeer `maxPrefix` stays down.
pub const MAX_PREFIX_RESTART: Duration = Duration::from_secs(30);

/// This node, as its sessions need it.
#[derive(Debug, Clone, Copy)]
pub struct Local<'a> {
    pub me: &'a NodeInfo,
    /// BGP hold time, seconds (keepalive a third of it).
    pub hold_time: u16,
    /// Where other tabby nodes listen.
    pub bgp_port: u16,
    /// Converging after a restart that left routes in the kernel: the R
    /// bit of graceful restart.
    pub restarting: bool,
    /// Restart Time we announce (RFC 4724 §3), seconds.
    pub restart_time: u16,
    /// Long-lived Stale Time we announce (RFC 9494 §3), seconds; 0: no
    /// long-lived graceful restart capability.
    pub llgr_stale_time: u32,
}

/// The speaker's configuration of the session with `p`.
pub fn session(local: &Local<'_>, p: &MeshPeer) -> PeerConfig {
    let me = local.me;
    let mut session = SessionConfig::new(me.asn, p.asn, me.address.addr());
    session.hold_time = Duration::from_secs(u64::from(local.hold_time));
    session.passive = p.passive;
    session.connect_retry = Duration::from_secs(2);
    let gr_family = |afi| GracefulRestartFamily {
        afi,
        safi: Safi::UNICAST,
        forwarding_state: true,
    };
    let mut families = vec![gr_family(Afi::IPV4)];
    if me.address6.is_some() {
        session.capabilities.push(Capability::Multiprotocol {
            afi: Afi::IPV6,
            safi: Safi::UNICAST,
        });
        families.push(gr_family(Afi::IPV6));
    }
    if local.llgr_stale_time > 0 {
        // RFC 9494 §3: beside graceful restart, never alone.
        let llgr = families
            .iter()
            .map(|f| LongLivedGracefulRestartFamily {
                afi: f.afi,
                safi: f.safi,
                forwarding_state: f.forwarding_state,
                stale_time: local.llgr_stale_time,
            })
            .collect();
        session
            .capabilities
            .push(Capability::LongLivedGracefulRestart(llgr));
    }
    session
        .capabilities
        .push(Capability::GracefulRestart(GracefulRestart {
            // RFC 4724 §3: the R bit says "I have restarted" — set while
            // converging after a run that left routes behind, so peers
            // keep our stale routes until our End-of-RIB.
            restart_state: local.restarting,
            notification: false,
            restart_time: local.restart_time,
            families,
        }));
    let mut cfg = PeerConfig::new(p.address, session);
    cfg.local_address = match p.address {
        IpAddr::V4(_) => Some(IpAddr::V4(me.address.addr())),
        IpAddr::V6(_) => me.address6.map(|a| IpAddr::V6(a.addr())),
    };
    cfg.password = p.password.clone();
    if p.is_node {
        cfg.port = local.bgp_port;
    }
    if p.kind != PeerType::Mesh {
        cfg.ttl = Some(64);
    }
    cfg
}

/// The RIB's view of `p`; `originated` are the blocks we announce (an
/// external peer's export policy names them).
pub fn rib_peer(
    me: &NodeInfo,
    p: &MeshPeer,
    pools: &[ipam::Pool],
    originated: &BTreeSet<IpNet>,
) -> RibPeer {
    let mut rib_peer = RibPeer::new(p.address, p.asn);
    rib_peer.local_v4 = Some(me.address.addr());
    rib_peer.local_v6 = me.address6.map(|a| a.addr());
    if p.keep_original_next_hop {
        rib_peer.next_hop = bgp::rib::NextHopMode::Keep;
    }
    rib_peer.max_prefixes = p.max_prefix.map(|limit| bgp::rib::MaxPrefix {
        limit,
        warn_only: false,
        restart_after: Some(MAX_PREFIX_RESTART),
    });
    rib_peer.rr_client = p.rr_client;
    if !p.is_node {
        let ranges: Vec<String> = pools
            .iter()
            .filter(|p| !p.disabled)
            .map(|p| {
                let max = if p.cidr.addr().is_ipv6() { 128 } else { 32 };
                format!("{} le {max}", p.cidr)
            })
            .collect();
        let ours: Vec<String> = originated.iter().map(|b| b.to_string()).collect();
        let set = |v: &[String]| PrefixSet::parse(v.iter().map(String::as_str)).unwrap_or_default();
        rib_peer.import = Some(Policy::only(set(&ranges)));
        rib_peer.export = Some(Policy::only(set(&ours)));
    }
    rib_peer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(v6: bool) -> NodeInfo {
        NodeInfo {
            name: "n1".into(),
            address: "10.200.0.1/24".parse().unwrap(),
            address6: v6.then(|| "fd00:200::1/64".parse().unwrap()),
            asn: 64512,
            vxlan_tunnel: None,
            vxlan_tunnel6: None,
            vtep_mac: None,
            labels: Default::default(),
            rr_cluster_id: None,
        }
    }

    fn tor(address: &str) -> MeshPeer {
        MeshPeer {
            node: "tor".into(),
            address: address.parse().unwrap(),
            asn: 65000,
            passive: false,
            kind: PeerType::Global,
            password: None,
            max_prefix: Some(100),
            keep_original_next_hop: false,
            is_node: false,
            rr_client: false,
        }
    }

    #[test]
    fn a_dual_stack_session_carries_both_families_with_graceful_restart() {
        let me = node(true);
        let local = Local {
            me: &me,
            hold_time: 9,
            bgp_port: 1179,
            restarting: true,
            restart_time: 120,
            llgr_stale_time: 3600,
        };
        let cfg = session(&local, &tor("10.200.0.50"));
        let caps = &cfg.session.capabilities;
        assert!(caps.contains(&Capability::Multiprotocol {
            afi: Afi::IPV6,
            safi: Safi::UNICAST
        }));
        let gr = caps
            .iter()
            .find_map(|c| match c {
                Capability::GracefulRestart(g) => Some(g),
                _ => None,
            })
            .unwrap();
        assert!(gr.restart_state);
        assert_eq!(gr.restart_time, 120);
        assert_eq!(gr.families.len(), 2);
        assert!(gr.families.iter().all(|f| f.forwarding_state));
        let llgr = caps
            .iter()
            .find_map(|c| match c {
                Capability::LongLivedGracefulRestart(l) => Some(l),
                _ => None,
            })
            .unwrap();
        assert_eq!(llgr.len(), 2);
        assert!(
            llgr.iter()
                .all(|f| f.forwarding_state && f.stale_time == 3600)
        );
        // Stale time 0: no long-lived capability at all.
        let off = session(
            &Local {
                llgr_stale_time: 0,
                ..local
            },
            &tor("10.200.0.50"),
        );
        assert!(
            !off.session
                .capabilities
                .iter()
                .any(|c| matches!(c, Capability::LongLivedGracefulRestart(_)))
        );
        assert_eq!(cfg.ttl, Some(64), "a BGPPeer may be hops away");
        assert_eq!(cfg.local_address, Some("10.200.0.1".parse().unwrap()));
        // An IPv6 BGPPeer is reached from IP6.
        let v6 = session(&local, &tor("fd00:200::50"));
        assert_eq!(v6.local_address, Some("fd00:200::1".parse().unwrap()));
        // IPv4 only: no IPv6 family at all.
        let v4_only = node(false);
        let cfg = session(
            &Local {
                me: &v4_only,
                ..local
            },
            &tor("10.200.0.50"),
        );
        assert!(
            !cfg.session
                .capabilities
                .contains(&Capability::Multiprotocol {
                    afi: Afi::IPV6,
                    safi: Safi::UNICAST
                })
        );
    }

    #[test]
    fn an_external_peer_gets_only_our_blocks_and_gives_only_pool_prefixes() {
        let pool = ipam::IpPool::new("p", "10.0.0.0/16").validate(&[]).unwrap();
        let pool6 = ipam::IpPool::new("p6", "fd00:10::/48")
            .validate(&[])
            .unwrap();
        let ours: BTreeSet<IpNet> = ["10.0.1.0/26".parse().unwrap()].into();
        let r = rib_peer(&node(true), &tor("10.200.0.50"), &[pool, pool6], &ours);
        let import = r.import.unwrap();
        let export = r.export.unwrap();
        let p = |s: &str| s.parse::<bgp::rib::IpPrefix>().unwrap();
        let accepts = |policy: &Policy, prefix: &str| {
            let mut attrs = std::borrow::Cow::Owned(bgp::wire::PathAttributes::default());
            let mut nh = bgp::wire::NextHop::V4("10.200.0.50".parse().unwrap());
            policy.apply(&p(prefix), &mut attrs, &mut nh)
        };
        assert!(accepts(&import, "10.0.7.0/26") && accepts(&import, "10.0.7.9/32"));
        assert!(accepts(&import, "fd00:10::/122"), "IPv6 pools up to /128");
        assert!(!accepts(&import, "192.168.99.0/24"));
        assert!(accepts(&export, "10.0.1.0/26") && !accepts(&export, "10.0.7.0/26"));
        assert_eq!(r.max_prefixes.map(|m| m.limit), Some(100));
        assert_eq!(r.local_v6, Some("fd00:200::1".parse().unwrap()));
    }
}
