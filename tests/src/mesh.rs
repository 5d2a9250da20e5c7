//! The reference mesh: BIRD 2, GoBGP and FRR peering on one subnet.
//!
//! This is the interop fixture of `shared/reference/lab-facts.md` §2, as
//! code: a switch with `n1` 10.200.0.1 (BIRD), `n2` 10.200.0.2 (GoBGP) and
//! `n3` 10.200.0.3 (FRR), a full iBGP mesh in AS 64512, and one originated
//! route each, `172.31.{1,2,3}.0/24`. Each daemon also has a *passive*
//! neighbor slot for every address in [`MeshOptions::guests`], so a speaker
//! under test (tabby's) placed there gets three real peers.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::Result;

use crate::{Bird, Frr, GoBgp, Netns, Switch, wait_until};

/// The AS every mesh member is in.
pub const MESH_AS: u32 = 64512;

/// What to build besides the three daemons.
#[derive(Debug, Default, Clone)]
pub struct MeshOptions {
    /// Which reference daemons to run (all three by default).
    pub members: Members,
    /// Speakers under test on the subnet (e.g. 10.200.0.4) that every
    /// daemon configures as a neighbor.
    pub guests: Vec<Guest>,
    /// Run zebra with FRR so FRR's routes reach n3's kernel.
    pub zebra: bool,
}

/// A neighbor slot for a speaker under test.
#[derive(Debug, Clone)]
pub struct Guest {
    pub address: Ipv4Addr,
    /// The guest's AS: [`MESH_AS`] for iBGP, another for eBGP.
    pub asn: u32,
    /// Whether the daemons wait for the guest to connect (the default) or
    /// also connect themselves.
    pub passive: bool,
    /// TCP MD5 password the daemons use with the guest.
    pub password: Option<String>,
}

impl Guest {
    /// A passive iBGP slot at `address`.
    pub fn ibgp(address: Ipv4Addr) -> Guest {
        Guest {
            address,
            asn: MESH_AS,
            passive: true,
            password: None,
        }
    }
}

/// One neighbor line of a daemon's config.
#[derive(Debug, Clone)]
pub struct Neighbor {
    pub address: Ipv4Addr,
    pub asn: u32,
    pub passive: bool,
    pub password: Option<String>,
}

/// Which of the reference daemons take part.
#[derive(Debug, Clone)]
pub struct Members {
    pub bird: bool,
    pub gobgp: bool,
    pub frr: bool,
}

impl Default for Members {
    fn default() -> Self {
        Members {
            bird: true,
            gobgp: true,
            frr: true,
        }
    }
}

/// The running mesh. Field order is drop order: daemons, then nodes, then
/// the switch.
#[derive(Debug)]
pub struct Mesh {
    pub bird: Option<Bird>,
    pub gobgp: Option<GoBgp>,
    pub frr: Option<Frr>,
    /// n1, n2, n3 in that order (a node exists even if its daemon is off).
    pub nodes: Vec<Netns>,
    /// The switch's port for each node, for captures.
    pub ports: Vec<String>,
    pub switch: Switch,
}

/// Address of mesh node `i` (1-based): 10.200.0.i.
pub fn node_addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 200, 0, i)
}

/// The route mesh node `i` originates: 172.31.i.0/24.
pub fn origin_prefix(i: u8) -> String {
    format!("172.31.{i}.0/24")
}

impl Mesh {
    /// Build the topology and start the chosen daemons (it does not wait
    /// for sessions; see [`Mesh::wait_established`]).
    pub fn start(tag: &str, opts: &MeshOptions) -> Result<Mesh> {
        Ok(Mesh::start_with(tag, opts, |_| Ok(()))?.0)
    }

    /// Like [`Mesh::start`], running `before` on the switch once the links
    /// exist and before any daemon starts (to begin a capture, say).
    pub fn start_with<T>(
        tag: &str,
        opts: &MeshOptions,
        before: impl FnOnce(&Switch) -> Result<T>,
    ) -> Result<(Mesh, T)> {
        let switch = Switch::new(tag)?;
        let mut nodes = Vec::new();
        let mut ports = Vec::new();
        for i in 1..=3u8 {
            let ns = Netns::new(&format!("{tag}-n{i}"))?;
            ports.push(switch.attach(&ns, "eth0", &format!("{}/24", node_addr(i)))?);
            nodes.push(ns);
        }
        let early = before(&switch)?;
        let m = &opts.members;
        let peers = |me: u8| -> Vec<Neighbor> {
            let mut v: Vec<Neighbor> = [(1, m.bird), (2, m.gobgp), (3, m.frr)]
                .into_iter()
                .filter(|&(i, on)| i != me && on)
                .map(|(i, _)| Neighbor {
                    address: node_addr(i),
                    asn: MESH_AS,
                    passive: false,
                    password: None,
                })
                .collect();
            v.extend(opts.guests.iter().map(|g| Neighbor {
                address: g.address,
                asn: g.asn,
                passive: g.passive,
                password: g.password.clone(),
            }));
            v
        };
        let bird = if m.bird {
            Some(Bird::start(&nodes[0], &bird_config(&peers(1)))?)
        } else {
            None
        };
        let gobgp = if m.gobgp {
            let g = GoBgp::start(&nodes[1], &gobgp_config(&peers(2)))?;
            g.gobgp(&["global", "rib", "add", "-a", "ipv4", &origin_prefix(2)])?;
            Some(g)
        } else {
            None
        };
        let frr = if m.frr {
            Some(Frr::start(&nodes[2], &frr_config(&peers(3)), opts.zebra)?)
        } else {
            None
        };
        Ok((
            Mesh {
                bird,
                gobgp,
                frr,
                nodes,
                ports,
                switch,
            },
            early,
        ))
    }

    /// Wait until every running daemon has `per_daemon` Established sessions.
    pub fn wait_established(&self, per_daemon: usize, timeout: Duration) -> Result<()> {
        wait_until("mesh sessions Established", timeout, || {
            let bird = self
                .bird
                .as_ref()
                .map_or(Ok(per_daemon), Bird::established)?;
            let gobgp = self
                .gobgp
                .as_ref()
                .map_or(Ok(per_daemon), GoBgp::established)?;
            let frr = self.frr.as_ref().map_or(Ok(per_daemon), Frr::established)?;
            Ok(bird == per_daemon && gobgp == per_daemon && frr == per_daemon)
        })
    }
}

/// BIRD config for n1.
pub fn bird_config(peers: &[Neighbor]) -> String {
    let me = node_addr(1);
    let mut c = format!(
        "router id {me};\n\
         protocol device {{ scan time 10; }}\n\
         protocol direct {{ ipv4; interface \"eth0\"; }}\n\
         protocol kernel {{ ipv4 {{ import none; export none; }}; }}\n\
         protocol static {{ ipv4; route {} blackhole; }}\n\
         template bgp mesh {{\n  local {me} as {MESH_AS};\n  direct;\n  \
         connect delay time 1; connect retry time 5; error wait time 1, 10;\n  \
         ipv4 {{ import all; export where source = RTS_STATIC || source = RTS_BGP; gateway direct; }};\n}}\n",
        origin_prefix(1)
    );
    for (i, n) in peers.iter().enumerate() {
        let passive = if n.passive { " passive on;" } else { "" };
        let password = n
            .password
            .as_ref()
            .map(|p| format!(" password \"{p}\";"))
            .unwrap_or_default();
        c.push_str(&format!(
            "protocol bgp p{i} from mesh {{ neighbor {} as {};{passive}{password} }}\n",
            n.address, n.asn
        ));
    }
    c
}

/// GoBGP config for n2.
pub fn gobgp_config(peers: &[Neighbor]) -> String {
    let me = node_addr(2);
    let mut c = format!(
        "[global.config]\n  as = {MESH_AS}\n  router-id = \"{me}\"\n  local-address-list = [\"{me}\"]\n"
    );
    for n in peers {
        let (addr, passive, asn) = (n.address, n.passive, n.asn);
        let password = n
            .password
            .as_ref()
            .map(|p| format!("    auth-password = \"{p}\"\n"))
            .unwrap_or_default();
        c.push_str(&format!(
            "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{addr}\"\n    peer-as = {asn}\n{password}  \
             [neighbors.timers.config]\n    connect-retry = 5\n  \
             [neighbors.transport.config]\n    passive-mode = {passive}\n  \
             [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n"
        ));
    }
    c
}

/// FRR bgpd config for n3.
pub fn frr_config(peers: &[Neighbor]) -> String {
    let me = node_addr(3);
    let mut c = format!(
        "frr defaults traditional\nhostname n3\nrouter bgp {MESH_AS}\n bgp router-id {me}\n \
         no bgp ebgp-requires-policy\n no bgp network import-check\n"
    );
    for n in peers {
        let addr = n.address;
        c.push_str(&format!(
            " neighbor {addr} remote-as {}\n neighbor {addr} timers connect 5\n",
            n.asn
        ));
        if n.passive {
            c.push_str(&format!(" neighbor {addr} passive\n"));
        }
        if let Some(p) = &n.password {
            c.push_str(&format!(" neighbor {addr} password {p}\n"));
        }
    }
    c.push_str(&format!(
        " address-family ipv4 unicast\n  network {}\n exit-address-family\n",
        origin_prefix(3)
    ));
    c
}
