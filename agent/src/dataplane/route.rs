//! Routes as tabby wants them, and the plan that gets the kernel there.
//!
//! This module is sans-IO: [`Plan::between`] compares the desired routes
//! with the routes tabby owns in the kernel (those with
//! [`ROUTE_PROTOCOL`](super::ROUTE_PROTOCOL) in the main table) and lists
//! the smallest set of changes. The same function serves start-up (adopt
//! what a previous run left: equal routes produce no operation), steady
//! state and drift repair. The kernel side lives in [`super::route_table`].

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

/// What happens to packets for a destination.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// Drop them here: the unused addresses of one of our own blocks, so
    /// they are never forwarded elsewhere (`blackhole 10.0.1.64/26`).
    Blackhole,
    /// Deliver on a local interface: a pod's host-side veth
    /// (`10.0.1.65/32 dev caliXXXX scope link`).
    Device { ifindex: u32 },
    /// Forward to one next hop: a block on another node, direct or through a
    /// tunnel (`10.0.2.0/26 via 10.200.0.2 dev eth0`).
    Gateway(NextHop),
    /// Forward to several equal-cost next hops (ECMP), kept sorted.
    Multipath(Vec<NextHop>),
}

/// One next hop of a forwarded route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NextHop {
    /// The next router's address.
    pub gateway: IpAddr,
    /// The interface to send through.
    pub ifindex: u32,
    /// Treat the gateway as on-link even without a covering subnet route
    /// (tunnel routes: `via <node> dev tunl0 onlink`).
    pub onlink: bool,
}

impl Target {
    /// ECMP with next hops in canonical order; one hop is a plain gateway.
    pub fn multipath(mut hops: Vec<NextHop>) -> Target {
        hops.sort();
        hops.dedup();
        match hops.as_slice() {
            [one] => Target::Gateway(*one),
            _ => Target::Multipath(hops),
        }
    }
}

/// The routes tabby wants (or owns), one per destination.
pub type RouteSet = BTreeMap<IpNet, Target>;

/// The changes that turn the kernel's routes into the desired ones.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Destinations tabby does not have in the kernel yet: create them.
    pub add: Vec<(IpNet, Target)>,
    /// Destinations tabby owns with another target: replace them in place
    /// (no delete-then-add, so traffic never sees a gap).
    pub replace: Vec<(IpNet, Target)>,
    /// Destinations tabby owns but no longer wants: delete them.
    pub delete: Vec<(IpNet, Target)>,
}

impl Plan {
    /// The plan from `kernel` (what tabby owns now) to `desired`.
    pub fn between(desired: &RouteSet, kernel: &RouteSet) -> Plan {
        let mut plan = Plan::default();
        for (dst, want) in desired {
            match kernel.get(dst) {
                None => plan.add.push((*dst, want.clone())),
                Some(have) if have != want => plan.replace.push((*dst, want.clone())),
                Some(_) => {}
            }
        }
        for (dst, have) in kernel {
            if !desired.contains_key(dst) {
                plan.delete.push((*dst, have.clone()));
            }
        }
        plan
    }

    /// Whether the kernel already matches.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.replace.is_empty() && self.delete.is_empty()
    }

    /// Number of kernel operations the plan takes.
    pub fn len(&self) -> usize {
        self.add.len() + self.replace.len() + self.delete.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn via(gw: &str, ifindex: u32) -> Target {
        Target::Gateway(NextHop {
            gateway: gw.parse().unwrap(),
            ifindex,
            onlink: false,
        })
    }

    #[test]
    fn equal_routes_are_adopted_without_any_operation() {
        let set: RouteSet = [
            (net("10.0.1.0/26"), Target::Blackhole),
            (net("10.0.1.1/32"), Target::Device { ifindex: 7 }),
            (net("10.0.2.0/26"), via("10.200.0.2", 2)),
        ]
        .into();
        assert!(Plan::between(&set, &set.clone()).is_empty());
    }

    #[test]
    fn adds_replaces_and_deletes_only_the_difference() {
        let kernel: RouteSet = [
            (net("10.0.2.0/26"), via("10.200.0.2", 2)),
            (net("10.0.3.0/26"), via("10.200.0.3", 2)),
            (net("10.0.9.0/26"), via("10.200.0.9", 2)),
        ]
        .into();
        let desired: RouteSet = [
            (net("10.0.2.0/26"), via("10.200.0.2", 2)),
            (net("10.0.3.0/26"), via("10.200.0.4", 2)),
            (net("10.0.4.0/26"), via("10.200.0.4", 2)),
        ]
        .into();
        let plan = Plan::between(&desired, &kernel);
        assert_eq!(plan.add, vec![(net("10.0.4.0/26"), via("10.200.0.4", 2))]);
        assert_eq!(
            plan.replace,
            vec![(net("10.0.3.0/26"), via("10.200.0.4", 2))]
        );
        assert_eq!(
            plan.delete,
            vec![(net("10.0.9.0/26"), via("10.200.0.9", 2))]
        );
        assert_eq!(plan.len(), 3);
    }

    #[test]
    fn multipath_is_canonical_and_one_hop_is_a_gateway() {
        let a = NextHop {
            gateway: "10.200.0.2".parse().unwrap(),
            ifindex: 2,
            onlink: false,
        };
        let b = NextHop {
            gateway: "10.200.0.3".parse().unwrap(),
            ifindex: 2,
            onlink: false,
        };
        assert_eq!(
            Target::multipath(vec![b, a, b]),
            Target::Multipath(vec![a, b])
        );
        assert_eq!(Target::multipath(vec![a]), Target::Gateway(a));
    }
}
