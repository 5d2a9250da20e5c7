//! Property test: random batches of concurrent operations from several
//! simulated allocator processes (two of them for the same node), with a
//! random schedule and injected datastore failures (before or after the
//! write lands), keep every invariant:
//!
//! - no address is ever handed to two live owners (checked against what
//!   the operations returned, not only against the store);
//! - the store holds exactly the allocations the callers were told about
//!   (plus, after a failed call, what its handle shows) — nothing invisible;
//! - `check::invariants`: handle index = blocks, blocks inside pools and
//!   disjoint, affinities and blocks agree;
//! - at the end, releasing every handle leaves zero allocations.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipam::check;
use ipam::{AssignArgs, Attrs, IpPool, Ipam, IpamConfig, IpamOptions, ReleaseRequest, TunnelKind};
use proptest::prelude::*;
use support::{Chaos, Probe, rt};

const NODES: usize = 4;
const CLIENTS: usize = 6; // clients 4 and 5 are second processes for nodes 0 and 1

#[derive(Debug, Clone)]
enum Action {
    Assign { client: usize, n: usize },
    AssignIp { client: usize, offset: u8 },
    ReleaseHandle { pick: usize },
    ReleaseIp { pick: usize },
    ReleaseEmpty { client: usize },
    RemoveNode { client: usize },
    Tunnel { client: usize },
    Strict(bool),
}

fn action() -> impl Strategy<Value = Action> {
    let c = 0..CLIENTS;
    prop_oneof![
        6 => (c.clone(), 1usize..4).prop_map(|(client, n)| Action::Assign { client, n }),
        2 => (c.clone(), any::<u8>()).prop_map(|(client, offset)| Action::AssignIp { client, offset }),
        4 => any::<usize>().prop_map(|pick| Action::ReleaseHandle { pick }),
        2 => any::<usize>().prop_map(|pick| Action::ReleaseIp { pick }),
        1 => c.clone().prop_map(|client| Action::ReleaseEmpty { client }),
        1 => c.clone().prop_map(|client| Action::RemoveNode { client }),
        1 => c.prop_map(|client| Action::Tunnel { client }),
        1 => any::<bool>().prop_map(Action::Strict),
    ]
}

fn node(client: usize) -> String {
    format!("n{}", client % NODES)
}

/// What the callers believe: handle → (node, addresses).
#[derive(Debug, Default)]
struct Model {
    handles: BTreeMap<String, (String, BTreeSet<IpAddr>)>,
}

impl Model {
    fn owner(&self, ip: IpAddr) -> Option<&str> {
        self.handles
            .iter()
            .find(|(_, (_, ips))| ips.contains(&ip))
            .map(|(h, _)| h.as_str())
    }
    fn give(&mut self, handle: &str, node: &str, ip: IpAddr) -> Result<(), TestCaseError> {
        if let Some(other) = self.owner(ip).filter(|o| *o != handle) {
            return Err(TestCaseError::fail(format!(
                "{ip} handed to {handle} while {other} holds it"
            )));
        }
        self.handles
            .entry(handle.into())
            .or_insert_with(|| (node.into(), BTreeSet::new()))
            .1
            .insert(ip);
        Ok(())
    }
}

enum Done {
    Assigned(String, String, Result<Vec<IpAddr>, ipam::IpamError>),
    Released(String, bool),
    Removed(String),
    Other,
}

async fn run_case(
    batches: Vec<Vec<Action>>,
    seed: u64,
    fail_before: u64,
    fail_after: u64,
) -> Result<(), TestCaseError> {
    let store = Arc::new(Probe::new());
    let setup = Ipam::new(store.clone());
    let mut pool = IpPool::new("p", "10.0.0.0/27");
    pool.spec.block_size = Some(29); // four blocks of eight: claims race, pools fill, borrowing happens
    setup.apply_pool(&pool).await.unwrap();
    let options = IpamOptions {
        max_attempts: 100,
        cache_ttl: std::time::Duration::from_secs(3600),
    };
    let clients: Vec<Arc<Ipam<Arc<Probe>>>> = (0..CLIENTS)
        .map(|_| Arc::new(Ipam::with_options(store.clone(), options)))
        .collect();
    let mut model = Model::default();
    let mut next_handle = 0;
    store.set_chaos(Some(Chaos::new(seed, fail_before, fail_after)));
    for batch in batches {
        let mut tasks = tokio::task::JoinSet::new();
        let mut resync: BTreeSet<String> = BTreeSet::new();
        let handles: Vec<String> = model.handles.keys().cloned().collect();
        let held: Vec<(String, IpAddr)> = model
            .handles
            .iter()
            .flat_map(|(h, (_, ips))| ips.iter().map(move |ip| (h.clone(), *ip)))
            .collect();
        for act in batch {
            match act {
                Action::Assign { client, n } => {
                    next_handle += 1;
                    let h = format!("pod-{next_handle}");
                    let ipam = clients[client].clone();
                    tasks.spawn(async move {
                        let mut args = AssignArgs::new(h.clone(), node(client));
                        args.num_v4 = n;
                        let r = ipam
                            .auto_assign(&args)
                            .await
                            .map(|v| v.into_iter().map(|a| a.ip).collect());
                        Done::Assigned(h, node(client), r)
                    });
                }
                Action::AssignIp { client, offset } => {
                    next_handle += 1;
                    let h = format!("pod-{next_handle}");
                    let ipam = clients[client].clone();
                    let ip: IpAddr = format!("10.0.0.{}", offset % 32).parse().unwrap();
                    tasks.spawn(async move {
                        let r = ipam
                            .assign_ip(ip, &h, &node(client), &Attrs::new())
                            .await
                            .map(|a| vec![a.ip]);
                        Done::Assigned(h, node(client), r)
                    });
                }
                Action::Tunnel { client } => {
                    let ipam = clients[client].clone();
                    tasks.spawn(async move {
                        let n = node(client);
                        let r = ipam
                            .assign_tunnel_address(&n, TunnelKind::Ipip, &BTreeMap::new())
                            .await
                            .map(|a| vec![a.ip]);
                        Done::Assigned(TunnelKind::Ipip.handle(&n), n, r)
                    });
                }
                Action::ReleaseHandle { pick } if !handles.is_empty() => {
                    let h = handles[pick % handles.len()].clone();
                    let ipam = clients[pick % CLIENTS].clone();
                    tasks.spawn(async move {
                        let ok = ipam.release_by_handle(&h).await.is_ok();
                        Done::Released(h, ok)
                    });
                }
                Action::ReleaseIp { pick } if !held.is_empty() => {
                    let (h, ip) = held[pick % held.len()].clone();
                    let ipam = clients[pick % CLIENTS].clone();
                    tasks.spawn(async move {
                        let req = ReleaseRequest {
                            ip,
                            sequence_number: None,
                            handle: Some(h.clone()),
                        };
                        let _ = ipam.release_ips(&[req]).await;
                        Done::Released(h, false)
                    });
                }
                Action::ReleaseEmpty { client } => {
                    let ipam = clients[client].clone();
                    tasks.spawn(async move {
                        let _ = ipam.release_empty_blocks(&node(client), 0).await;
                        Done::Other
                    });
                }
                Action::RemoveNode { client } => {
                    let ipam = clients[client].clone();
                    tasks.spawn(async move {
                        let n = node(client);
                        let _ = ipam.remove_node(&n).await;
                        Done::Removed(n)
                    });
                }
                Action::Strict(strict) => {
                    let ipam = clients[0].clone();
                    tasks.spawn(async move {
                        let _ = ipam
                            .set_config(IpamConfig {
                                strict_affinity: strict,
                                ..IpamConfig::default()
                            })
                            .await;
                        Done::Other
                    });
                }
                _ => {}
            }
        }
        let mut done = Vec::new();
        while let Some(d) = tasks.join_next().await {
            done.push(d.unwrap());
        }
        store.set_chaos(None);
        // Releases and removals first, re-read from the store (exact, since
        // handles are unique); then assignments: an address freed in this
        // batch may legitimately have been handed out again in it.
        let verify = Ipam::new(store.clone());
        let batch_nodes: BTreeSet<String> = done
            .iter()
            .filter_map(|d| {
                if let Done::Removed(n) = d {
                    Some(n.clone())
                } else {
                    None
                }
            })
            .collect();
        for d in &done {
            match d {
                Done::Released(h, true) => {
                    model.handles.remove(h);
                }
                Done::Released(h, false) => {
                    resync.insert(h.clone());
                }
                Done::Removed(n) => {
                    resync.extend(
                        model
                            .handles
                            .iter()
                            .filter(|(_, (hn, _))| hn == n)
                            .map(|(h, _)| h.clone()),
                    );
                }
                _ => {}
            }
        }
        // A handle released and (idempotently) assigned in the same batch is
        // the caller's race: its outcome is whatever the store says.
        let released: BTreeSet<String> = done
            .iter()
            .filter_map(|d| {
                if let Done::Released(h, _) = d {
                    Some(h.clone())
                } else {
                    None
                }
            })
            .collect();
        for h in std::mem::take(&mut resync) {
            resync_handle(&verify, &mut model, &h).await?;
        }
        for d in &done {
            if let Done::Assigned(h, n, r) = d {
                match r {
                    Ok(ips) if !batch_nodes.contains(n) && !released.contains(h) => {
                        for ip in ips {
                            model.give(h, n, *ip)?;
                        }
                    }
                    _ => {
                        model
                            .handles
                            .entry(h.clone())
                            .or_insert_with(|| (n.clone(), BTreeSet::new()));
                        resync.insert(h.clone());
                    }
                }
            }
        }
        for h in resync {
            resync_handle(&verify, &mut model, &h).await?;
        }
        model.handles.retain(|_, (_, ips)| !ips.is_empty());
        let state = verify.snapshot().await.unwrap();
        let violations = check::invariants(&state);
        prop_assert!(violations.is_empty(), "{violations:?}");
        let stored: BTreeMap<IpAddr, String> = state
            .blocks
            .values()
            .flat_map(|b| {
                b.value
                    .allocations()
                    .map(|a| (a.ip, a.handle.unwrap_or("").to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let believed: BTreeMap<IpAddr, String> = model
            .handles
            .iter()
            .flat_map(|(h, (_, ips))| ips.iter().map(move |ip| (*ip, h.clone())))
            .collect();
        prop_assert_eq!(&stored, &believed);
        store.set_chaos(Some(Chaos::new(
            seed.wrapping_add(next_handle as u64),
            fail_before,
            fail_after,
        )));
    }
    store.set_chaos(None);
    let verify = Ipam::new(store.clone());
    for h in model.handles.keys() {
        verify.release_by_handle(h).await.unwrap();
    }
    for n in 0..NODES {
        verify.remove_node(&node(n)).await.unwrap();
    }
    let state = verify.snapshot().await.unwrap();
    prop_assert!(check::invariants(&state).is_empty());
    prop_assert_eq!(
        state
            .blocks
            .values()
            .map(|b| b.value.in_use())
            .sum::<usize>(),
        0
    );
    prop_assert!(state.handles.is_empty(), "{:?}", state.handles);
    prop_assert!(
        state
            .affinities
            .values()
            .all(|a| a.value.state == ipam::AffinityState::Pending)
    );
    Ok(())
}

/// Make the model's view of `h` what the store's handle index says.
async fn resync_handle(
    verify: &Ipam<Arc<Probe>>,
    model: &mut Model,
    h: &str,
) -> Result<(), TestCaseError> {
    let ips = verify.ips_by_handle(h).await.unwrap();
    let node = model
        .handles
        .get(h)
        .map(|(n, _)| n.clone())
        .unwrap_or_default();
    model.handles.remove(h);
    for ip in ips {
        model.give(h, &node, ip)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn concurrent_operations_keep_the_invariants(
        batches in prop::collection::vec(prop::collection::vec(action(), 1..5), 1..10),
        seed in any::<u64>(),
    ) {
        rt().block_on(run_case(batches, seed, 0, 0))?;
    }

    #[test]
    fn failures_before_and_after_writes_keep_the_invariants(
        batches in prop::collection::vec(prop::collection::vec(action(), 1..5), 1..10),
        seed in any::<u64>(),
        fail_before in 0u64..150,
        fail_after in 0u64..150,
    ) {
        rt().block_on(run_case(batches, seed, fail_before, fail_after))?;
    }
}
