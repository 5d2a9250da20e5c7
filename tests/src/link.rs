//! Links between namespaces: veth pairs, a switch, a router.
//!
//! A [`Switch`] is a namespace holding one bridge, `br0`; attaching a node
//! creates a veth pair whose switch end is a bridge port (`p0`, `p1`, ...),
//! so N nodes share one L2 segment and one subnet. A [`Router`] is a
//! namespace with IP forwarding on and one leg on each of several switches.

use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Result;

use crate::Netns;

/// Create a veth pair `a_name` in `a` ↔ `b_name` in `b`, both ends up.
pub fn veth(a: &Netns, a_name: &str, b: &Netns, b_name: &str) -> Result<()> {
    a.ip(&[
        "link",
        "add",
        a_name,
        "type",
        "veth",
        "peer",
        "name",
        b_name,
        "netns",
        b.name(),
    ])?;
    a.ip(&["link", "set", a_name, "up"])?;
    b.ip(&["link", "set", b_name, "up"])?;
    Ok(())
}

/// An L2 switch: a namespace with the bridge `br0`.
#[derive(Debug)]
pub struct Switch {
    ns: Netns,
    ports: AtomicU32,
}

impl Switch {
    /// A new switch for the test tagged `tag`.
    pub fn new(tag: &str) -> Result<Switch> {
        let ns = Netns::new(&format!("{tag}-sw"))?;
        ns.ip(&["link", "add", "br0", "type", "bridge"])?;
        ns.ip(&["link", "set", "br0", "up"])?;
        Ok(Switch {
            ns,
            ports: AtomicU32::new(0),
        })
    }

    /// Plug `node` into the switch through its interface `ifname`, with
    /// `cidr` (e.g. `10.200.0.1/24`) on it; returns the switch port's name,
    /// where a capture sees all of that node's traffic.
    pub fn attach(&self, node: &Netns, ifname: &str, cidr: &str) -> Result<String> {
        let port = format!("p{}", self.ports.fetch_add(1, Ordering::Relaxed));
        veth(&self.ns, &port, node, ifname)?;
        self.ns.ip(&["link", "set", &port, "master", "br0"])?;
        node.ip(&["addr", "add", cidr, "dev", ifname])?;
        Ok(port)
    }

    /// The switch's own namespace (to capture on a port, for instance).
    pub fn netns(&self) -> &Netns {
        &self.ns
    }
}

/// A router joining several subnets.
#[derive(Debug)]
pub struct Router {
    ns: Netns,
}

impl Router {
    /// A router with one leg per `(switch, cidr)`: interface `eth<i>` on
    /// that switch with that address. IPv4 and IPv6 forwarding are on.
    pub fn new(tag: &str, legs: &[(&Switch, &str)]) -> Result<Router> {
        let ns = Netns::new(&format!("{tag}-rt"))?;
        ns.sysctl("net.ipv4.ip_forward", "1")?;
        ns.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        for (i, (switch, cidr)) in legs.iter().enumerate() {
            switch.attach(&ns, &format!("eth{i}"), cidr)?;
        }
        Ok(Router { ns })
    }

    /// The router's namespace.
    pub fn netns(&self) -> &Netns {
        &self.ns
    }
}
