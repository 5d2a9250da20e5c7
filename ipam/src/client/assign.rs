//! Handing out addresses: auto-assign (affine blocks, then a new claim, then
//! borrowing), a specific address, and a node's tunnel address.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use ipnet::IpNet;

use super::claim::Claim;
use super::{Context, Ipam, ReleaseRequest, check_name};
use crate::affinity::AffinityState;
use crate::block::{ATTR_NODE, ATTR_TYPE, Attrs};
use crate::error::IpamError;
use crate::handle::IpamHandle;
use crate::pool::{AllowedUse, Family, Pool};
use crate::state::Versioned;
use crate::store::Datastore;

/// What to allocate, for whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignArgs {
    /// The owner, e.g. `k8s-pod-network.<containerID>`.
    pub handle: String,
    /// The node the addresses are for (its affine blocks are used first).
    pub node: String,
    pub num_v4: usize,
    pub num_v6: usize,
    /// Owner attributes (`pod`, `namespace`, ...); `node` is always added.
    pub attrs: Attrs,
    /// The node's labels, matched against each pool's `nodeSelector`.
    pub node_labels: BTreeMap<String, String>,
    pub usage: AllowedUse,
    /// Requested IPv4 pools, by name or CIDR (CNI `ipam.ipv4_pools`). When
    /// any are given, only they are used, whatever their `nodeSelector` and
    /// `assignmentMode` (as Calico's `AutoAssign` with `IPv4Pools`); each
    /// must exist, be enabled and allow `usage`.
    pub v4_pools: Vec<String>,
    /// Requested IPv6 pools, likewise (`ipam.ipv6_pools`).
    pub v6_pools: Vec<String>,
}

impl AssignArgs {
    /// One IPv4 workload address for `handle` on `node`.
    pub fn new(handle: impl Into<String>, node: impl Into<String>) -> AssignArgs {
        AssignArgs {
            handle: handle.into(),
            node: node.into(),
            num_v4: 1,
            num_v6: 0,
            attrs: Attrs::new(),
            node_labels: BTreeMap::new(),
            usage: AllowedUse::Workload,
            v4_pools: Vec::new(),
            v6_pools: Vec::new(),
        }
    }
}

/// One allocated address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Assigned {
    pub ip: IpAddr,
    /// The block it came from (Calico returns `ip/blockSize`).
    pub block: IpNet,
    /// The block is not affine to the node: the agent must advertise the /32.
    pub borrowed: bool,
}

/// Tunnel devices that need a node address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelKind {
    Ipip,
    Vxlan,
    VxlanV6,
}

impl TunnelKind {
    /// Calico's handle for the node's tunnel address.
    pub fn handle(self, node: &str) -> String {
        match self {
            TunnelKind::Ipip => format!("ipip-tunnel-addr-{node}"),
            TunnelKind::Vxlan => format!("vxlan-tunnel-addr-{node}"),
            TunnelKind::VxlanV6 => format!("vxlan-v6-tunnel-addr-{node}"),
        }
    }

    /// The `type` attribute Calico records on the allocation.
    pub fn attr_type(self) -> &'static str {
        match self {
            TunnelKind::Ipip => "ipipTunnelAddress",
            TunnelKind::Vxlan => "vxlanTunnelAddress",
            TunnelKind::VxlanV6 => "vxlanV6TunnelAddress",
        }
    }

    pub fn is_tunnel_type(attr: &str) -> bool {
        attr.ends_with("TunnelAddress")
    }

    fn family(self) -> Family {
        match self {
            TunnelKind::VxlanV6 => Family::V6,
            _ => Family::V4,
        }
    }
}

/// A stable per-node starting point, so nodes spread over a pool instead of
/// all racing for its first free block (Calico seeds from the hostname too).
pub(crate) fn node_seed(node: &str) -> u128 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    node.hash(&mut h);
    u128::from(h.finish())
}

/// The pools `args` may take `family` addresses from: the requested ones
/// when the request names any for `family`, else every usable pool that
/// selects the node.
fn candidate_pools<'a>(
    all: &'a [Pool],
    args: &AssignArgs,
    family: Family,
) -> Result<Vec<&'a Pool>, IpamError> {
    let requested = match family {
        Family::V4 => &args.v4_pools,
        Family::V6 => &args.v6_pools,
    };
    if requested.is_empty() {
        return Ok(all
            .iter()
            .filter(|p| p.family() == family && p.usable(&args.node_labels, args.usage))
            .collect());
    }
    let refuse = |pool: &str, reason: String| IpamError::RequestedPool {
        pool: pool.to_string(),
        family,
        reason,
    };
    let mut out: Vec<&Pool> = Vec::new();
    for wanted in requested {
        let cidr = wanted.parse::<IpNet>().ok();
        let Some(pool) = all
            .iter()
            .find(|p| p.name == *wanted || cidr == Some(p.cidr))
        else {
            return Err(refuse(wanted, "does not exist".into()));
        };
        if pool.family() != family {
            return Err(refuse(wanted, format!("is an {} pool", pool.family())));
        }
        if pool.disabled {
            return Err(refuse(wanted, "is disabled".into()));
        }
        if !pool.allowed_uses.contains(&args.usage) {
            return Err(refuse(
                wanted,
                format!("does not allow {:?} addresses", args.usage),
            ));
        }
        if !out.iter().any(|p| p.cidr == pool.cidr) {
            out.push(pool);
        }
    }
    Ok(out)
}

fn in_pools(cidr: &IpNet, pools: &[&Pool]) -> bool {
    pools.iter().any(|p| p.cidr.contains(&cidr.network()))
}

impl<S: Datastore> Ipam<S> {
    /// Allocate `num_v4` IPv4 and `num_v6` IPv6 addresses for `args.handle`.
    /// All or nothing: if not every address can be found, the ones this call
    /// took are released again and [`IpamError::Exhausted`] is returned.
    pub async fn auto_assign(&self, args: &AssignArgs) -> Result<Vec<Assigned>, IpamError> {
        check_name("handle", &args.handle)?;
        check_name("node", &args.node)?;
        let ctx = self.context(false).await?;
        let mut attrs = args.attrs.clone();
        attrs.insert(ATTR_NODE.into(), args.node.clone());
        // Assume a new handle; a conflict tells us otherwise at no extra cost.
        let mut handle = Versioned {
            value: IpamHandle::default(),
            revision: 0,
        };
        let mut out = Vec::new();
        for (family, want) in [(Family::V4, args.num_v4), (Family::V6, args.num_v6)] {
            if want == 0 {
                continue;
            }
            let result = self
                .assign_family(&ctx, args, &attrs, family, want, &mut handle)
                .await;
            let got = match result {
                Ok(got) => got,
                Err(e) => {
                    self.undo(&args.handle, &out).await;
                    return Err(e);
                }
            };
            let found = got.len();
            out.extend(got);
            if found < want {
                self.undo(&args.handle, &out).await;
                return Err(IpamError::Exhausted {
                    node: args.node.clone(),
                    family,
                    wanted: want,
                    found,
                });
            }
        }
        Ok(out)
    }

    /// Best-effort release of what a failed call took. If this fails too,
    /// the addresses stay indexed under the handle, so the caller's DEL (or
    /// `check`) frees them: nothing is ever lost or doubly owned.
    async fn undo(&self, handle: &str, taken: &[Assigned]) {
        if taken.is_empty() {
            return;
        }
        let reqs: Vec<_> = taken
            .iter()
            .map(|a| ReleaseRequest {
                ip: a.ip,
                sequence_number: None,
                handle: Some(handle.into()),
            })
            .collect();
        let _ = self.release_ips(&reqs).await;
    }

    async fn assign_family(
        &self,
        ctx: &Context,
        args: &AssignArgs,
        attrs: &Attrs,
        family: Family,
        want: usize,
        handle: &mut Versioned<IpamHandle>,
    ) -> Result<Vec<Assigned>, IpamError> {
        let pools = candidate_pools(&ctx.pools, args, family)?;
        if pools.is_empty() {
            return Err(IpamError::NoPool {
                node: args.node.clone(),
                family,
                usage: args.usage,
            });
        }
        let node = args.node.as_str();
        let mut out: Vec<Assigned> = Vec::new();
        // 1. The node's own blocks (the affinity list is re-read after the
        //    cache TTL): from the cache first, then those not confirmed
        //    within the TTL re-read, since another process may have freed
        //    addresses in a block we think full.
        for fresh in [false, true] {
            let affinities = self.affinities(node, false).await?;
            for entry in affinities.iter().filter(|e| in_pools(&e.cidr, &pools)) {
                let cidr = entry.cidr;
                match entry.affinity.value.state {
                    AffinityState::Confirmed => {}
                    // A claim that did not finish (crash, or a sibling process
                    // mid-claim): complete it.
                    AffinityState::Pending => {
                        if !matches!(self.claim_cidr(node, cidr).await?, Claim::Ours(_)) {
                            continue;
                        }
                    }
                    AffinityState::PendingDeletion => continue,
                }
                if fresh && self.block_is_stale(&cidr) {
                    self.block(cidr, true).await?;
                }
                let ips = self
                    .assign_in_block(
                        cidr,
                        want - out.len(),
                        &args.handle,
                        attrs,
                        Some(node),
                        handle,
                    )
                    .await?;
                out.extend(ips.into_iter().map(|ip| Assigned {
                    ip,
                    block: cidr,
                    borrowed: false,
                }));
                if out.len() == want {
                    return Ok(out);
                }
            }
        }
        // 2. Claim new blocks, up to the per-host limit.
        if ctx.config.auto_allocate_blocks {
            while out.len() < want {
                // Step 1 read the list fresh and claims keep it current.
                let owned = self.affinities(node, false).await?.len();
                if owned >= ctx.config.block_limit() as usize {
                    break;
                }
                let Some(block) = self.claim_new_block(node, &pools).await? else {
                    break;
                };
                let cidr = block.value.cidr();
                let ips = self
                    .assign_in_block(
                        cidr,
                        want - out.len(),
                        &args.handle,
                        attrs,
                        Some(node),
                        handle,
                    )
                    .await?;
                out.extend(ips.into_iter().map(|ip| Assigned {
                    ip,
                    block: cidr,
                    borrowed: false,
                }));
            }
        }
        // 3. Borrow from other nodes' blocks.
        if !ctx.config.strict_affinity && out.len() < want {
            let range = self.store.range(&crate::keys::block_family(family)).await?;
            let mut blocks = Vec::new();
            for kv in &range.kvs {
                let b = crate::state::decode_block(kv)?;
                let cidr = b.value.cidr();
                if in_pools(&cidr, &pools) && !b.value.is_affine_to(node) && b.value.free() > 0 {
                    blocks.push(cidr);
                }
                self.remember_block(cidr, Some(b));
            }
            if !blocks.is_empty() {
                let start = (node_seed(node) % blocks.len() as u128) as usize;
                blocks.rotate_left(start);
            }
            for cidr in blocks {
                let ips = self
                    .assign_in_block(cidr, want - out.len(), &args.handle, attrs, None, handle)
                    .await?;
                out.extend(ips.into_iter().map(|ip| Assigned {
                    ip,
                    block: cidr,
                    borrowed: true,
                }));
                if out.len() == want {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Allocate exactly `ip` for `handle` on `node`. If its block does not
    /// exist yet, it is claimed for `node` first (as Calico's `AssignIP`).
    pub async fn assign_ip(
        &self,
        ip: IpAddr,
        handle_id: &str,
        node: &str,
        attrs: &Attrs,
    ) -> Result<Assigned, IpamError> {
        check_name("handle", handle_id)?;
        check_name("node", node)?;
        let ctx = self.context(false).await?;
        let pool = ctx
            .pools
            .iter()
            .find(|p| p.cidr.contains(&ip))
            .ok_or(IpamError::NotInPool { ip })?;
        let cidr = pool.block_for(ip).ok_or(IpamError::NotInPool { ip })?;
        let mut attrs = attrs.clone();
        attrs.insert(ATTR_NODE.into(), node.into());
        let mut block = self.block(cidr, false).await?;
        if block.is_none() {
            block = match self.claim_cidr(node, cidr).await? {
                Claim::Ours(b) => Some(b),
                Claim::Taken => self.block(cidr, true).await?,
            };
        }
        let handle_key = crate::keys::handle(handle_id);
        let block_key = crate::keys::block(&cidr);
        let mut handle = self.handle(handle_id).await?;
        for _ in 0..self.attempts() {
            let Some(current) = &block else {
                return Err(IpamError::NotInPool { ip });
            };
            let mut next = current.value.clone();
            next.assign_ip(ip, handle_id, &attrs)
                .map_err(|_| IpamError::AlreadyAllocated { ip })?;
            let mut h = handle.as_ref().map(|h| h.value.clone()).unwrap_or_default();
            h.add(cidr, 1);
            let compares = vec![
                crate::store::Compare::at(&block_key, current.revision),
                Self::handle_key_compare(handle_id, &handle),
            ];
            let ops = vec![
                crate::store::Op::put(&block_key, next.to_json()),
                crate::store::Op::put(&handle_key, super::encode_json(&h)),
            ];
            match self.store.txn(compares, ops).await? {
                crate::store::TxnOutcome::Committed { revision } => {
                    let borrowed = !next.is_affine_to(node);
                    self.remember_block(
                        cidr,
                        Some(Versioned {
                            value: next,
                            revision,
                        }),
                    );
                    return Ok(Assigned {
                        ip,
                        block: cidr,
                        borrowed,
                    });
                }
                crate::store::TxnOutcome::Conflict { current } => {
                    let mut current = current.into_iter();
                    block = self.remember_block_kv(cidr, current.next().flatten().as_ref())?;
                    handle = current
                        .next()
                        .flatten()
                        .as_ref()
                        .map(crate::state::decode_handle)
                        .transpose()?;
                }
            }
        }
        Err(IpamError::Contention {
            key: block_key,
            attempts: self.attempts(),
        })
    }

    /// The node's tunnel address (handle `ipip-tunnel-addr-<node>` etc.):
    /// the existing one if the node has it, else a new one from a pool that
    /// allows `Tunnel` use. Idempotent.
    pub async fn assign_tunnel_address(
        &self,
        node: &str,
        kind: TunnelKind,
        node_labels: &BTreeMap<String, String>,
    ) -> Result<Assigned, IpamError> {
        check_name("node", node)?;
        let handle = kind.handle(node);
        if let Some(h) = self.handle(&handle).await? {
            for cidr in h.value.block.keys() {
                if let Some(b) = self.block(*cidr, true).await?
                    && let Some(a) = b
                        .value
                        .allocations()
                        .find(|a| a.handle == Some(handle.as_str()))
                {
                    return Ok(Assigned {
                        ip: a.ip,
                        block: *cidr,
                        borrowed: !b.value.is_affine_to(node),
                    });
                }
            }
        }
        let mut args = AssignArgs::new(handle, node);
        (args.num_v4, args.num_v6) = match kind.family() {
            Family::V4 => (1, 0),
            Family::V6 => (0, 1),
        };
        args.usage = AllowedUse::Tunnel;
        args.node_labels = node_labels.clone();
        args.attrs.insert(ATTR_TYPE.into(), kind.attr_type().into());
        let got = self.auto_assign(&args).await?;
        got.into_iter().next().ok_or(IpamError::Exhausted {
            node: node.into(),
            family: kind.family(),
            wanted: 1,
            found: 0,
        })
    }
}
