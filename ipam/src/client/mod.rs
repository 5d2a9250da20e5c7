//! [`Ipam`]: the allocation operations the CNI plugin and the node agent
//! call, over any [`Datastore`].
//!
//! Every write is a compare-and-swap transaction on the mod_revision of each
//! key it touches, retried at most [`IpamOptions::max_attempts`] times; a
//! conflict returns the current values, so a retry costs no extra read. A
//! block and the handle index entries it affects are written in **one**
//! transaction, so they can never disagree, and an allocation from a block
//! this client has already seen costs exactly one transaction.
//!
//! The client caches what it read (pools and IPAM config, each node's
//! affinities, blocks, which blocks exist). The cache only ever saves reads:
//! every write is conditioned on the revision the cached value was read at
//! (a claim on the block being absent), so a stale entry costs a failed CAS,
//! never a wrong allocation. Pools, affinities and the list of existing
//! blocks are re-read after [`IpamOptions::cache_ttl`]; a claim whose cached
//! list leaves no block free re-reads it before giving up.
//!
//! Submodules: `assign` (auto-assign, specific address, tunnel address),
//! `claim` (the two-phase block claim and the release of empty blocks),
//! `release` (by address, by handle, node removal), `repair` (acting on a
//! leak [`Report`](crate::check::Report)).

mod assign;
mod claim;
mod release;
mod repair;

pub use assign::{AssignArgs, Assigned, TunnelKind};
pub use release::{NodeRemoval, ReleaseRequest};
pub use repair::Repair;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use crate::affinity::BlockAffinity;
use crate::block::{AllocationBlock, Attrs};
use crate::config::IpamConfig;
use crate::error::IpamError;
use crate::handle::IpamHandle;
use crate::keys;
use crate::pool::{Family, IpPool, Pool, PoolError};
use crate::state::{self, IpamState, Versioned};
use crate::store::{Compare, Datastore, KeyValue, Op, Revision, TxnOutcome};

/// Tuning of an [`Ipam`] client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpamOptions {
    /// CAS attempts per key before [`IpamError::Contention`] (Calico: 100).
    pub max_attempts: u32,
    /// How long pools, IPAM config and a node's affinity list are reused.
    pub cache_ttl: Duration,
}

impl Default for IpamOptions {
    fn default() -> IpamOptions {
        IpamOptions {
            max_attempts: 100,
            cache_ttl: Duration::from_secs(1),
        }
    }
}

/// Pools and IPAM config, read together.
#[derive(Debug)]
pub(crate) struct Context {
    pub pools: Vec<Pool>,
    pub config: IpamConfig,
}

/// One of a node's affinities.
#[derive(Debug, Clone)]
pub(crate) struct AffinityEntry {
    pub cidr: IpNet,
    pub affinity: Versioned<BlockAffinity>,
}

#[derive(Debug, Default)]
struct Cache {
    context: Option<(Instant, Arc<Context>)>,
    affinities: HashMap<String, (Instant, Arc<Vec<AffinityEntry>>)>,
    /// Each block with when its value was last confirmed by the store.
    blocks: HashMap<IpNet, (Instant, Versioned<AllocationBlock>)>,
    /// Which blocks of a family exist, with when the list was read (kept
    /// up to date with what this client sees in between); steers claims.
    block_keys: HashMap<Family, (Instant, HashSet<IpNet>)>,
}

/// The IPAM client.
#[derive(Debug)]
pub struct Ipam<S> {
    store: S,
    options: IpamOptions,
    cache: Mutex<Cache>,
}

/// Wall-clock seconds, for claim times. The only clock read in IPAM.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn check_name(what: &'static str, value: &str) -> Result<(), IpamError> {
    if keys::is_segment(value) {
        Ok(())
    } else {
        Err(IpamError::InvalidName {
            what,
            value: value.to_string(),
        })
    }
}

pub(crate) fn encode_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Plain data with string keys: serialisation cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

impl<S: Datastore> Ipam<S> {
    pub fn new(store: S) -> Ipam<S> {
        Ipam::with_options(store, IpamOptions::default())
    }

    pub fn with_options(store: S, options: IpamOptions) -> Ipam<S> {
        Ipam {
            store,
            options,
            cache: Mutex::new(Cache::default()),
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drop everything cached (tests; after an operator changed pools).
    pub fn forget(&self) {
        *self.cache() = Cache::default();
    }

    // ---- pools and config ------------------------------------------------

    /// All stored pools, validated.
    pub async fn pools(&self) -> Result<Vec<Pool>, IpamError> {
        Ok(self.context(true).await?.pools.clone())
    }

    /// Create or update a pool. `cidr` and `blockSize` are immutable.
    pub async fn apply_pool(&self, pool: &IpPool) -> Result<Pool, IpamError> {
        let key = keys::pool(&pool.metadata.name);
        for _ in 0..self.options.max_attempts {
            let range = self.store.range(keys::POOLS).await?;
            let others = state::decode_pools(&range.kvs)?;
            let others: Vec<Pool> = others
                .into_iter()
                .filter(|p| p.name != pool.metadata.name)
                .collect();
            let valid = pool.validate(&others)?;
            let existing = range.kvs.iter().find(|kv| kv.key == key);
            if let Some(kv) = existing {
                let old = IpPool::from_json(&kv.value)?.validate(&[])?;
                if old.cidr != valid.cidr {
                    return Err(PoolError::Immutable("spec.cidr").into());
                }
                if old.block_size != valid.block_size {
                    return Err(PoolError::Immutable("spec.blockSize").into());
                }
            }
            let rev = existing.map_or(0, |kv| kv.mod_revision);
            if let TxnOutcome::Committed { .. } =
                self.store.update(&key, encode_json(pool), rev).await?
            {
                self.cache().context = None;
                return Ok(valid);
            }
        }
        Err(IpamError::Contention {
            key,
            attempts: self.options.max_attempts,
        })
    }

    pub async fn config(&self) -> Result<IpamConfig, IpamError> {
        Ok(self.context(true).await?.config)
    }

    pub async fn set_config(&self, config: IpamConfig) -> Result<(), IpamError> {
        let config = config.validate()?;
        for _ in 0..self.options.max_attempts {
            let rev = self
                .store
                .get(keys::CONFIG)
                .await?
                .map_or(0, |kv| kv.mod_revision);
            if let TxnOutcome::Committed { .. } = self
                .store
                .update(keys::CONFIG, encode_json(&config), rev)
                .await?
            {
                self.cache().context = None;
                return Ok(());
            }
        }
        Err(IpamError::Contention {
            key: keys::CONFIG.into(),
            attempts: self.options.max_attempts,
        })
    }

    pub(crate) async fn context(&self, fresh: bool) -> Result<Arc<Context>, IpamError> {
        if !fresh
            && let Some((at, ctx)) = &self.cache().context
            && at.elapsed() < self.options.cache_ttl
        {
            return Ok(ctx.clone());
        }
        let pools = state::decode_pools(&self.store.range(keys::POOLS).await?.kvs)?;
        let config = state::decode_config(self.store.get(keys::CONFIG).await?.as_ref())?;
        let ctx = Arc::new(Context { pools, config });
        self.cache().context = Some((Instant::now(), ctx.clone()));
        Ok(ctx)
    }

    // ---- affinities and blocks -------------------------------------------

    /// The node's affinities (all states), from cache or the store.
    pub(crate) async fn affinities(
        &self,
        node: &str,
        fresh: bool,
    ) -> Result<Arc<Vec<AffinityEntry>>, IpamError> {
        if !fresh
            && let Some((at, list)) = self.cache().affinities.get(node)
            && at.elapsed() < self.options.cache_ttl
        {
            return Ok(list.clone());
        }
        let range = self.store.range(&keys::host(node)).await?;
        let mut list = Vec::new();
        for kv in &range.kvs {
            let (_, cidr, affinity) = state::decode_affinity(kv)?;
            list.push(AffinityEntry { cidr, affinity });
        }
        let list = Arc::new(list);
        self.cache()
            .affinities
            .insert(node.to_string(), (Instant::now(), list.clone()));
        Ok(list)
    }

    pub(crate) fn forget_affinities(&self, node: &str) {
        self.cache().affinities.remove(node);
    }

    /// Record in the cached affinity list of `node` (if there is one) that
    /// the store now holds `affinity` for `cidr`, so a claim does not cost
    /// the next call a re-read. Keeps the list's read time: the TTL still
    /// bounds how long other processes' changes go unseen.
    pub(crate) fn remember_affinity(
        &self,
        node: &str,
        cidr: IpNet,
        affinity: Versioned<BlockAffinity>,
    ) {
        let mut cache = self.cache();
        if let Some((_, list)) = cache.affinities.get_mut(node) {
            let list = Arc::make_mut(list);
            match list.iter_mut().find(|e| e.cidr == cidr) {
                Some(e) => e.affinity = affinity,
                None => list.push(AffinityEntry { cidr, affinity }),
            }
        }
    }

    /// The cached set of existing blocks of `family`, if read within the TTL.
    pub(crate) fn cached_block_keys(&self, family: Family) -> Option<HashSet<IpNet>> {
        self.cache()
            .block_keys
            .get(&family)
            .filter(|(at, _)| at.elapsed() < self.options.cache_ttl)
            .map(|(_, set)| set.clone())
    }

    pub(crate) fn remember_block_keys(&self, family: Family, set: HashSet<IpNet>) {
        self.cache()
            .block_keys
            .insert(family, (Instant::now(), set));
    }

    /// This client saw `cidr`'s block exist (claimed it, or lost it).
    pub(crate) fn note_block_exists(&self, family: Family, cidr: IpNet) {
        if let Some((_, set)) = self.cache().block_keys.get_mut(&family) {
            set.insert(cidr);
        }
    }

    /// This client deleted `cidr`'s block.
    pub(crate) fn note_block_gone(&self, cidr: IpNet) {
        for (_, set) in self.cache().block_keys.values_mut() {
            set.remove(&cidr);
        }
    }

    /// Whether the cached copy of a block is older than the cache TTL.
    pub(crate) fn block_is_stale(&self, cidr: &IpNet) -> bool {
        self.cache()
            .blocks
            .get(cidr)
            .is_none_or(|(at, _)| at.elapsed() >= self.options.cache_ttl)
    }

    pub(crate) fn cached_block(&self, cidr: &IpNet) -> Option<Versioned<AllocationBlock>> {
        self.cache().blocks.get(cidr).map(|(_, b)| b.clone())
    }

    /// Record what the store now holds for a block key.
    pub(crate) fn remember_block(&self, cidr: IpNet, block: Option<Versioned<AllocationBlock>>) {
        let mut cache = self.cache();
        match block {
            Some(b) => cache.blocks.insert(cidr, (Instant::now(), b)),
            None => cache.blocks.remove(&cidr),
        };
    }

    pub(crate) fn remember_block_kv(
        &self,
        cidr: IpNet,
        kv: Option<&KeyValue>,
    ) -> Result<Option<Versioned<AllocationBlock>>, IpamError> {
        let block = kv.map(state::decode_block).transpose()?;
        self.remember_block(cidr, block.clone());
        Ok(block)
    }

    /// A block, from the cache unless `fresh`.
    pub(crate) async fn block(
        &self,
        cidr: IpNet,
        fresh: bool,
    ) -> Result<Option<Versioned<AllocationBlock>>, IpamError> {
        if !fresh && let Some(b) = self.cached_block(&cidr) {
            return Ok(Some(b));
        }
        let kv = self.store.get(&keys::block(&cidr)).await?;
        self.remember_block_kv(cidr, kv.as_ref())
    }

    pub(crate) async fn handle(
        &self,
        id: &str,
    ) -> Result<Option<Versioned<IpamHandle>>, IpamError> {
        self.store
            .get(&keys::handle(id))
            .await?
            .as_ref()
            .map(state::decode_handle)
            .transpose()
    }

    /// The addresses `handle` holds, found through the handle index.
    pub async fn ips_by_handle(&self, handle: &str) -> Result<Vec<IpAddr>, IpamError> {
        check_name("handle", handle)?;
        let Some(h) = self.handle(handle).await? else {
            return Ok(Vec::new());
        };
        let mut ips = Vec::new();
        for cidr in h.value.block.keys() {
            if let Some(b) = self.block(*cidr, true).await? {
                ips.extend(
                    b.value
                        .allocations()
                        .filter(|a| a.handle == Some(handle))
                        .map(|a| a.ip),
                );
            }
        }
        Ok(ips)
    }

    /// Allocate `need` addresses for `handle` in one block: one transaction
    /// over the block and the handle. `affine_to` restricts it to blocks
    /// confirmed for that node; `None` allows borrowing from any block.
    /// `handle` carries the handle's last known value (revision 0 = absent)
    /// and is updated to what was written.
    pub(crate) async fn assign_in_block(
        &self,
        cidr: IpNet,
        need: usize,
        handle_id: &str,
        attrs: &Attrs,
        affine_to: Option<&str>,
        handle: &mut Versioned<IpamHandle>,
    ) -> Result<Vec<IpAddr>, IpamError> {
        let block_key = keys::block(&cidr);
        let handle_key = keys::handle(handle_id);
        // Take the cached block out rather than cloning it: this is the hot
        // path. It goes back in with whatever the store answered.
        let cached = self.cache().blocks.remove(&cidr).map(|(_, b)| b);
        let mut block = match cached {
            Some(b) => Some(b),
            None => self.block(cidr, true).await?,
        };
        for _ in 0..self.options.max_attempts {
            let Some(current) = block else {
                return Ok(Vec::new());
            };
            if affine_to.is_some_and(|n| !current.value.is_affine_to(n))
                || current.value.free() == 0
            {
                self.remember_block(cidr, Some(current));
                return Ok(Vec::new());
            }
            let revision_seen = current.revision;
            let mut next = current.value;
            let ips = next.assign(need, handle_id, attrs);
            let mut next_handle = handle.value.clone();
            next_handle.add(cidr, u32::try_from(ips.len()).unwrap_or(u32::MAX));
            let compares = vec![
                Compare::at(&block_key, revision_seen),
                Compare::at(&handle_key, handle.revision),
            ];
            let ops = vec![
                Op::put(&block_key, next.to_json()),
                Op::put(&handle_key, encode_json(&next_handle)),
            ];
            match self.store.txn(compares, ops).await? {
                TxnOutcome::Committed { revision } => {
                    self.remember_block(
                        cidr,
                        Some(Versioned {
                            value: next,
                            revision,
                        }),
                    );
                    *handle = Versioned {
                        value: next_handle,
                        revision,
                    };
                    return Ok(ips);
                }
                TxnOutcome::Conflict { current } => {
                    let mut current = current.into_iter();
                    block = self.remember_block_kv(cidr, current.next().flatten().as_ref())?;
                    *handle = match current.next().flatten() {
                        Some(kv) => state::decode_handle(&kv)?,
                        None => Versioned {
                            value: IpamHandle::default(),
                            revision: 0,
                        },
                    };
                }
            }
        }
        Err(IpamError::Contention {
            key: block_key,
            attempts: self.options.max_attempts,
        })
    }

    /// Everything IPAM stores, read at one revision.
    pub async fn snapshot(&self) -> Result<IpamState, IpamError> {
        let ipam = self.store.range(keys::IPAM).await?;
        let pools = self.store.range(keys::POOLS).await?;
        Ok(IpamState::decode(&ipam, &pools))
    }

    pub(crate) fn attempts(&self) -> u32 {
        self.options.max_attempts
    }

    pub(crate) fn handle_key_compare(id: &str, h: &Option<Versioned<IpamHandle>>) -> Compare {
        Compare::at(
            keys::handle(id),
            h.as_ref().map_or(0 as Revision, |h| h.revision),
        )
    }
}
