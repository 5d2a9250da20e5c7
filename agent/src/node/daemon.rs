//! The node daemon's main loop; see the module diagram in [`super`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bgp::rib::{DecisionConfig, IpPrefix, LocalConfig, PeerConfig as RibPeer, PeerKind, Rib};
use bgp::session::Negotiated;
use bgp::speaker::{self, PeerConfig, PeerStatus, SessionEvent, SpeakerConfig, SpeakerHandle};
use bgp::wire::{Message, RouteRefreshSubtype};
use ipam::{AffinityState, EtcdStore, Ipam};
use ipnet::IpNet;
use tokio::sync::{broadcast, watch};

use super::cluster::{MeshPeer, NodeInfo, external_peers, mesh};
use super::config::NodeConfig;
use super::control::{self, PeerRow, RouteRow, View};
use super::export;
use super::health::{Health, PeerMetrics, Timings, timed};
use super::registration::{bgp_peers, nodes, register};
use super::routes::{Inputs, Learned, desired};
use super::startup;
use crate::dataplane::autodetect::host_addresses;
use crate::dataplane::encap::{LocalLinks, check_kernel_support, kernel_has_ipip};
use crate::dataplane::reconciler::RouteCommand;
use crate::dataplane::route::{RouteSet, Target};
use crate::dataplane::route_table::RouteTable;
use crate::dataplane::veth::link_index;
use crate::dataplane::vxlan;
use crate::dataplane::workload::is_workload_interface;

/// How soon after a received UPDATE its routes are programmed (the
/// coalescing window of a burst).
const UPDATE_ROUND_DELAY: Duration = Duration::from_millis(50);
/// How long a peer's routes stay stale after its BoRR if no EoRR comes
/// (RFC 7313 §4 lets the receiver bound the wait), or after its session
/// is back from a restart we helped with if no End-of-RIB comes (RFC 4724
/// §4.2): FRR's stale-path-time.
const STALE_PATH_TIME: Duration = Duration::from_secs(360);
/// Calico's default AS for nodes and the cluster.
const DEFAULT_ASN: u32 = 64512;

/// How often the remote VTEP entries are re-installed when nothing changed.
const VTEP_REFRESH: Duration = Duration::from_secs(30);

/// How long after start the agent only adds routes, if not every peer has
/// sent its End-of-RIB by then.
const STARTUP_GRACE: Duration = Duration::from_secs(30);

/// The daemon's own state, owned by its task.
struct Daemon {
    cfg: NodeConfig,
    me: NodeInfo,
    store: Arc<EtcdStore>,
    ipam: Ipam<Arc<EtcdStore>>,
    speaker: SpeakerHandle,
    links: LocalLinks,
    mesh: BTreeMap<IpAddr, MeshPeer>,
    /// Adj-RIBs-In/Out, Loc-RIB, decision process, graceful restart.
    rib: Rib,
    /// What each Established peer's session negotiated.
    sessions: BTreeMap<IpAddr, Negotiated>,
    /// The blocks we originate.
    originated: BTreeSet<IpNet>,
    /// The remote VTEP entries last installed, and when.
    vteps: Vec<vxlan::RemoteVtep>,
    vteps_at: Option<std::time::Instant>,
    /// Peers whose End-of-RIB arrived since they came up.
    eor_received: BTreeSet<IpAddr>,
    /// Until every mesh peer sent its End-of-RIB (or the grace period is
    /// over), routes are only added, never removed: after a restart the
    /// kernel still holds the last run's routes and keeps forwarding.
    converging_until: Option<std::time::Instant>,
    routes: std::sync::mpsc::Sender<RouteCommand>,
    view: watch::Sender<View>,
    health: watch::Sender<Health>,
    started: std::time::Instant,
    failed_rounds: u64,
    last_round_ok: bool,
    /// The cluster, when running in one; `NetworkUnavailable=False` is
    /// sent once, the first time the agent is ready.
    kube: Option<super::kubernetes::KubeLink>,
    announced_up: bool,
    /// A previous run left its routes in the kernel: this start is a
    /// restart (graceful restart's R bit).
    restarted: bool,
    /// The `natOutgoing` table, and the last error applying it (logged
    /// once, not every round).
    nat: crate::dataplane::nat::NatOutgoing,
    nat_error: Option<String>,
    /// The agent's IPAM operations, for the metrics.
    ipam_timings: BTreeMap<&'static str, Timings>,
    /// Failed datastore reads of the rounds.
    datastore_errors: u64,
    /// Route programming as the dataplane thread measured it: when the
    /// oldest unapplied desired set was handed over, and the timings.
    programming: Arc<std::sync::Mutex<super::programming::Programming>>,
}

/// Run the agent until SIGTERM or SIGINT.
pub async fn run(cfg: NodeConfig) -> Result<()> {
    let kube = super::kubernetes::connect(&cfg).await?;
    let address = startup::node_address(&cfg, kube.as_ref().map(|k| &k.facts))?;
    let address6 = startup::node_address6(&cfg)?;
    if cfg.etcd_endpoints.is_empty() {
        bail!("ETCD_ENDPOINTS is required");
    }
    let store = Arc::new(
        EtcdStore::connect(&startup::etcd_config(&cfg))
            .await
            .context("etcd")?,
    );
    let ipam = Ipam::new(store.clone());
    startup::ensure_default_pool(&cfg, &ipam).await?;
    let pools = ipam.pools().await?;
    for pool in &pools {
        let encap = super::routes::pool_encap(pool);
        check_kernel_support(encap, kernel_has_ipip())
            .map_err(|e| anyhow!("pool {} ({}): {e}", pool.name, pool.cidr))?;
    }

    // The uplink: the interface holding the node address.
    let host = host_addresses()?;
    let uplink_name = host
        .iter()
        .find(|a| a.address.addr() == IpAddr::V4(address.addr()))
        .map(|a| a.interface.clone())
        .ok_or_else(|| anyhow!("no interface has {address}"))?;
    if let Some(a6) = address6 {
        // Dual stack: IPv6 routes to other nodes leave by the same uplink.
        let on_uplink = host
            .iter()
            .any(|a| a.address.addr() == IpAddr::V6(a6.addr()) && a.interface == uplink_name);
        if !on_uplink {
            bail!(
                "IP6 {a6} must be an address of {uplink_name}, the interface holding IP {address}"
            );
        }
        // Pods' IPv6 traffic is forwarded (Felix sets this too).
        std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1")
            .context("enabling IPv6 forwarding")?;
    }
    let (conn, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(conn);
    let uplink = link_index(&handle, &uplink_name)
        .await?
        .ok_or_else(|| anyhow!("{uplink_name} vanished"))?;
    let uplink_mtu = crate::dataplane::veth::link_mtu(&handle, &uplink_name)
        .await?
        .unwrap_or(1500);
    let mtu = startup::pod_mtu(cfg.mtu, uplink_mtu, &pools);
    startup::write_state_files(&cfg, mtu)?;
    tracing::info!(uplink = %uplink_name, uplink_mtu, pod_mtu = mtu, "state files written");

    // The labels pool nodeSelectors match: the Kubernetes Node's when in a
    // cluster, else those already on the Node resource.
    let node_labels = match &kube {
        Some(link) => link.facts.labels.clone(),
        None => super::registration::labels(store.as_ref(), &cfg.nodename)
            .await
            .unwrap_or_default(),
    };
    let mut ipam_timings = BTreeMap::new();
    let tunnels = super::tunnels::set_up(&mut super::tunnels::Setup {
        node: &cfg.nodename,
        ipam: &ipam,
        handle: &handle,
        pools: &pools,
        address,
        address6,
        uplink,
        uplink_mtu,
        node_labels: &node_labels,
        timings: &mut ipam_timings,
    })
    .await?;
    let super::tunnels::Tunnels {
        vxlan4,
        vxlan6,
        mac,
        vxlan_index,
        ipip: ipip_tunnel,
        ipip_index,
    } = tunnels;
    let labels = kube.as_ref().map(|k| &k.facts.labels);
    // The AS: `AS`, else the cluster's BGPConfiguration, else 64512.
    let asn = match cfg.asn {
        Some(a) => a,
        None => super::registration::bgp_configuration(store.as_ref())
            .await?
            .and_then(|c| c.spec.as_number)
            .unwrap_or(DEFAULT_ASN),
    };
    register(
        store.as_ref(),
        &cfg.nodename,
        &super::registration::Registration {
            address,
            address6,
            asn,
            vxlan: vxlan4,
            vxlan6,
            vtep_mac: mac,
            ipip: ipip_tunnel,
            labels,
        },
    )
    .await?;
    match address6 {
        Some(a6) => {
            tracing::info!(node = %cfg.nodename, %address, address6 = %a6, asn, "registered (dual stack)")
        }
        None => tracing::info!(node = %cfg.nodename, %address, asn, "registered"),
    }
    if let Some(link) = &kube {
        let vxlan = vxlan4
            .zip(mac)
            .map(|(t, mac)| (t, super::registration::mac_text(mac)));
        super::kubernetes::annotate(link, address, asn, vxlan, ipip_tunnel).await;
        super::kubernetes::spawn_gc(link, store.clone(), &cfg);
        super::kubernetes::spawn_cni_kubeconfig(&cfg);
    }

    // Ourselves as the datastore has us: labels and route-reflector
    // cluster ID are set there by the operator (or from Kubernetes).
    let stored = nodes(store.as_ref())
        .await?
        .into_iter()
        .find(|n| n.name == cfg.nodename);
    let me = NodeInfo {
        name: cfg.nodename.clone(),
        address,
        address6,
        asn,
        vxlan_tunnel: vxlan4,
        vxlan_tunnel6: vxlan6,
        vtep_mac: mac,
        labels: stored
            .as_ref()
            .map(|n| n.labels.clone())
            .unwrap_or_default(),
        rr_cluster_id: stored.and_then(|n| n.rr_cluster_id),
    };
    if let Some(id) = me.rr_cluster_id {
        tracing::info!(cluster_id = %id, "route reflector");
    }
    // Mesh sessions run over IPv4 and carry IPv6 too (MP-BGP); an IPv6
    // BGPPeer connects to the IPv6 address.
    let mut listen = vec![SocketAddr::new(IpAddr::V4(address.addr()), cfg.bgp_port)];
    if let Some(a6) = address6 {
        listen.push(SocketAddr::new(IpAddr::V6(a6.addr()), cfg.bgp_port));
    }
    let speaker = speaker::start(SpeakerConfig {
        listen,
        event_buffer: 1 << 16,
    })
    .await?;
    let events = speaker.subscribe();

    // A previous run's routes in the kernel mean this start is a restart.
    let restarted = !RouteTable::open()?.owned()?.is_empty();
    if restarted {
        tracing::info!("restarting: the kernel holds the last run's routes");
    }
    // The dataplane thread: adopts what a previous run left, then serves.
    let (routes_tx, programming) = super::programming::spawn(cfg.interface_prefix.clone())?;

    let (view, view_rx) = watch::channel(View::default());
    control::serve(&cfg.control_socket, view_rx)?;
    let (health, health_rx) = watch::channel(Health::default());
    if let Some(addr) = cfg.health_addr {
        super::health::serve(addr, health_rx)
            .await
            .with_context(|| format!("health endpoint {addr}"))?;
    }

    let links = LocalLinks {
        node_subnet: IpNet::V4(address),
        node_subnet6: address6.map(IpNet::V6),
        uplink,
        ipip: ipip_index,
        vxlan: vxlan_index,
    };
    let (me_asn, me_id, me_cluster) = (me.asn, me.address.addr(), me.rr_cluster_id);
    let mut daemon = Daemon {
        cfg,
        me,
        store,
        ipam,
        speaker,
        links,
        mesh: BTreeMap::new(),
        rib: Rib::new(LocalConfig {
            asn: me_asn,
            router_id: me_id,
            cluster_id: me_cluster,
            decision: DecisionConfig::default(),
        }),
        sessions: BTreeMap::new(),
        originated: BTreeSet::new(),
        eor_received: BTreeSet::new(),
        vteps: Vec::new(),
        vteps_at: None,
        converging_until: Some(std::time::Instant::now() + STARTUP_GRACE),
        restarted,
        routes: routes_tx,
        view,
        health,
        started: std::time::Instant::now(),
        failed_rounds: 0,
        last_round_ok: false,
        kube,
        announced_up: false,
        nat: Default::default(),
        nat_error: None,
        ipam_timings,
        datastore_errors: 0,
        programming,
    };
    daemon.serve(events).await
}

impl Daemon {
    async fn serve(&mut self, mut events: broadcast::Receiver<SessionEvent>) -> Result<()> {
        let mut tick = tokio::time::interval(Duration::from_millis(self.cfg.resync_ms));
        let changed = super::watch::spawn(self.store.clone(), &self.cfg.nodename);
        // A round soon after received UPDATEs (learned routes are
        // programmed by rounds), at most one per UPDATE_ROUND_DELAY, so a
        // burst of UPDATEs makes one round, not one each.
        let mut round_soon: Option<tokio::time::Instant> = None;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                () = changed.notified() => {
                    // A watched resource changed: a round now (and the
                    // periodic one as usual).
                    tick.reset_immediately();
                }
                _ = tick.tick() => {
                    round_soon = None;
                    let outcome = self.round().await;
                    self.last_round_ok = outcome.is_ok();
                    if let Err(e) = outcome {
                        self.failed_rounds += 1;
                        tracing::warn!("round failed: {e:#}");
                        let statuses = self.speaker.peers().await.unwrap_or_default();
                        self.refresh_health(&statuses, None);
                    }
                }
                ev = events.recv() => match ev {
                    Ok(ev) => {
                        // A session that came up or went down changes what
                        // a round sends and shows: one now.
                        let up_or_down =
                            matches!(ev, SessionEvent::Up { .. } | SessionEvent::Down { .. });
                        let received = matches!(ev, SessionEvent::Received { .. });
                        if let Err(e) = self.event(ev).await {
                            tracing::warn!("session event: {e:#}");
                        }
                        if up_or_down {
                            tick.reset_immediately();
                        } else if received && round_soon.is_none() {
                            let at = tokio::time::Instant::now() + UPDATE_ROUND_DELAY;
                            round_soon = Some(at);
                            tick.reset_at(at);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        // Missed UPDATEs cannot be recovered without the RIB:
                        // reset the sessions so peers send their tables again.
                        tracing::warn!("missed {n} session events; resetting sessions");
                        let peers: Vec<MeshPeer> = self.mesh.values().cloned().collect();
                        for p in peers {
                            let _ = self.speaker.update_peer(self.peer_config(&p)).await;
                        }
                        self.sessions.clear();
                    }
                    Err(broadcast::error::RecvError::Closed) => bail!("speaker stopped"),
                },
                _ = term.recv() => {
                    tracing::info!("SIGTERM: stopping, kernel routes stay");
                    if let Some(link) = &self.kube {
                        super::kubernetes::announce_down(link).await;
                    }
                    return Ok(());
                }
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
    }

    async fn event(&mut self, ev: SessionEvent) -> Result<()> {
        match ev {
            SessionEvent::Up { peer, negotiated } => {
                tracing::info!(%peer, "session established");
                self.rib.peer_up(
                    peer,
                    negotiated.peer_id,
                    negotiated.families,
                    bgp::session::graceful::long_lived(&negotiated),
                )?;
                // Back from a restart we helped with (RFC 4724 §4.2, RFC
                // 9494 §4.2): what it no longer preserves goes now, the
                // rest waits for its End-of-RIB, at most the stale-path
                // time, and no longer turns long-lived.
                if let Some(adj) = self.rib.adj_rib_in(&peer).filter(|a| a.stale_count() > 0) {
                    let preserved =
                        bgp::session::graceful::preserved(&negotiated, adj.long_lived());
                    let until = std::time::Instant::now() + STALE_PATH_TIME;
                    self.rib.peer_restarted(&peer, preserved, until)?;
                }
                self.sessions.insert(peer, *negotiated);
                self.eor_received.remove(&peer);
                // The table (and End-of-RIB) goes out from the next round,
                // after this agent has originated its blocks: an early,
                // empty End-of-RIB would make a restarting peer's helpers
                // drop our routes.
            }
            SessionEvent::Down { peer, reason } => {
                tracing::info!(%peer, reason = %bgp::speaker::describe(&reason), "session down");
                // RFC 4724: a peer that announced graceful restart keeps
                // its routes (stale) for its restart time when the
                // connection drops without a NOTIFICATION; with
                // long-lived graceful restart (RFC 9494) then for its
                // long-lived stale time, at most ours, least preferred.
                let graceful = self.sessions.get(&peer).and_then(|n| {
                    bgp::session::graceful::helper_keeps(
                        n,
                        &reason,
                        std::time::Instant::now(),
                        Duration::from_secs(u64::from(self.cfg.bgp_llgr_stale_time)),
                    )
                });
                self.sessions.remove(&peer);
                self.eor_received.remove(&peer);
                if self.mesh.contains_key(&peer) {
                    self.rib.peer_down(&peer, graceful.as_ref())?;
                }
            }
            SessionEvent::Received { peer, message } => match *message {
                Message::RouteRefresh(rr) => {
                    let Some(family) = bgp::wire::Family::from_afi_safi(rr.afi, rr.safi) else {
                        return Ok(());
                    };
                    if rr.subtype == RouteRefreshSubtype::Request {
                        // RFC 2918: our whole table of that family again.
                        self.rib.resend(&peer, family)?;
                        self.flush(peer).await?;
                    } else {
                        // The peer's BoRR / EoRR (RFC 7313 §4).
                        let until = std::time::Instant::now() + STALE_PATH_TIME;
                        self.rib.refresh_marker(&peer, family, rr.subtype, until)?;
                    }
                }
                Message::Update(u) => {
                    if u.end_of_rib_family().is_some() {
                        self.eor_received.insert(peer);
                    }
                    if let Err(e) = self.rib.receive(&peer, &u) {
                        tracing::warn!(%peer, "UPDATE not applied: {e}");
                    }
                    if let Some(over) = self.rib.check_max_prefix(&peer) {
                        tracing::warn!(%peer, "{over:?}: closing the session (Cease 6/1)");
                        if let bgp::rib::MaxPrefixAction::Cease { restart_after } = over.action {
                            self.speaker
                                .automatic_stop(peer, over.notification(), restart_after)
                                .await?;
                        }
                    }
                }
                _ => {}
            },
            SessionEvent::StateChanged { .. } => {}
        }
        Ok(())
    }

    /// Send `peer` whatever its Adj-RIB-Out still lacks.
    async fn flush(&mut self, peer: IpAddr) -> Result<()> {
        let Some(ctx) = self.sessions.get(&peer).map(|n| n.context) else {
            return Ok(());
        };
        let out = self.rib.flush(&peer, &ctx)?;
        // An answer to an enhanced route refresh goes between BoRR and
        // EoRR (RFC 7313 §4).
        self.speaker
            .send_refresh_markers(
                peer,
                &out.refreshed,
                RouteRefreshSubtype::BeginningOfRouteRefresh,
            )
            .await?;
        for u in out.updates(&ctx)? {
            self.speaker.send_update(peer, u).await?;
        }
        self.speaker
            .send_refresh_markers(peer, &out.refreshed, RouteRefreshSubtype::EndOfRouteRefresh)
            .await?;
        Ok(())
    }

    fn peer_config(&self, p: &MeshPeer) -> PeerConfig {
        super::peering::session(
            &super::peering::Local {
                me: &self.me,
                hold_time: self.cfg.bgp_hold_time,
                bgp_port: self.cfg.bgp_port,
                restarting: self.restarted && self.converging_until.is_some(),
                restart_time: self.cfg.bgp_restart_time,
                llgr_stale_time: self.cfg.bgp_llgr_stale_time,
            },
            p,
        )
    }

    fn rib_peer(&self, p: &MeshPeer, pools: &[ipam::Pool]) -> RibPeer {
        super::peering::rib_peer(&self.me, p, pools, &self.originated)
    }

    /// One reconciliation round: mesh, export, import, view.
    async fn round(&mut self) -> Result<()> {
        // Stale routes turn long-lived or go on time, before anything
        // that needs the datastore: an etcd outage must not keep a
        // restarting peer's routes past their restart time.
        self.rib.expire(std::time::Instant::now());
        let nodes = self.counted(nodes(self.store.as_ref()).await)?;
        let state = timed(&mut self.ipam_timings, "snapshot", self.ipam.snapshot()).await;
        let state = self.counted(state)?;
        // Sessions: the mesh (unless a node is one of our BGPPeers), plus
        // the BGPPeers that apply to this node.
        // `nodeToNodeMeshEnabled: false` in the default BGPConfiguration
        // leaves peering to the BGPPeers (reflectors, ToRs).
        let mesh_on = self
            .counted(super::registration::bgp_configuration(self.store.as_ref()).await)?
            .is_none_or(|c| c.mesh_enabled());
        let mut want: BTreeMap<IpAddr, MeshPeer> = if mesh_on {
            mesh(&self.me, &nodes)
        } else {
            Vec::new()
        }
        .into_iter()
        .map(|p| (p.address, p))
        .collect();
        if let Some(mine) = nodes.iter().find(|n| n.name == self.me.name) {
            self.me.labels = mine.labels.clone();
            if mine.rr_cluster_id != self.me.rr_cluster_id {
                tracing::warn!(
                    "routeReflectorClusterID changed to {:?}: restart the agent to apply it",
                    mine.rr_cluster_id
                );
            }
        }
        let bgp_peers = self.counted(bgp_peers(self.store.as_ref()).await)?;
        for p in external_peers(&self.me, &nodes, &bgp_peers) {
            want.insert(p.address, p);
        }
        for (addr, p) in &want {
            if self.mesh.get(addr) != Some(p) {
                if self.mesh.contains_key(addr) {
                    let _ = self.speaker.remove_peer(*addr).await;
                }
                self.rib.set_peer(self.rib_peer(p, &state.pools));
                self.speaker.add_peer(self.peer_config(p)).await?;
            }
        }
        let gone: Vec<IpAddr> = self
            .mesh
            .keys()
            .filter(|a| !want.contains_key(a))
            .copied()
            .collect();
        for addr in gone {
            let _ = self.speaker.remove_peer(addr).await;
            self.rib.remove_peer(&addr);
            self.sessions.remove(&addr);
        }
        self.mesh = want;

        // Our blocks, from IPAM.
        let own: Vec<IpNet> = state
            .affinities
            .iter()
            .filter(|((node, _), a)| {
                node == &self.me.name && a.value.state == AffinityState::Confirmed
            })
            .map(|((_, cidr), _)| *cidr)
            .filter(|cidr| state.blocks.contains_key(cidr))
            .collect();
        // One dump of the kernel's tabby routes serves the pod routes (for
        // borrowed addresses and import) and, while converging, the
        // routes to keep.
        let kernel = RouteTable::open()?.owned()?;
        let pods = self.local_pods(&kernel);
        let pod_prefixes: Vec<IpNet> = pods.iter().map(|(p, _)| *p).collect();
        let exported = export::exported(&own, &pod_prefixes, &state.pools);
        let nh4 = bgp::wire::NextHop::V4(self.me.address.addr());
        let nh6 = self.me.address6.map(|a| bgp::wire::NextHop::V6 {
            global: a.addr(),
            link_local: None,
        });
        for block in exported.difference(&self.originated) {
            // An IPv6 block needs our IPv6 address as its next hop.
            let nh = match block {
                IpNet::V4(_) => Some(nh4),
                IpNet::V6(_) => nh6,
            };
            if let (Some(prefix), Some(nh)) = (IpPrefix::new(block.addr(), block.prefix_len()), nh)
            {
                self.rib
                    .originate(prefix, export::attributes(self.me.address.addr()), nh);
            }
        }
        for block in self.originated.difference(&exported) {
            if let Some(prefix) = IpPrefix::new(block.addr(), block.prefix_len()) {
                self.rib.withdraw(prefix);
            }
        }
        let changed = self.originated != exported;
        self.originated = exported;
        if changed {
            // External peers' export policy names our blocks.
            let external: Vec<MeshPeer> =
                self.mesh.values().filter(|p| !p.is_node).cloned().collect();
            for p in external {
                self.rib.set_peer(self.rib_peer(&p, &state.pools));
            }
        }
        let peers: Vec<IpAddr> = self.sessions.keys().copied().collect();
        for peer in peers {
            self.flush(peer).await?;
        }

        // Import and program.
        let learned: Vec<Learned> = self
            .rib
            .loc_rib()
            .iter_best()
            .filter_map(|(prefix, best)| {
                let path = best.first().filter(|p| p.source.kind != PeerKind::Local)?;
                let next_hop = match path.next_hop() {
                    bgp::wire::NextHop::V4(a) => IpAddr::V4(a),
                    bgp::wire::NextHop::V6 { global, .. } => IpAddr::V6(global),
                };
                let prefix = IpNet::new(prefix.addr(), prefix.prefix_len()).ok()?;
                Some(Learned { prefix, next_hop })
            })
            .collect();
        let inputs = Inputs {
            own_blocks: &own,
            learned: &learned,
            pools: &state.pools,
            nodes: &nodes,
            links: &self.links,
            pods: &pods,
        };
        let (mut routes, _refused) = desired(&inputs);
        self.program_vxlan(&nodes).await?;
        self.program_nat(&state.pools);
        if let Some(until) = self.converging_until {
            let all_eor =
                !self.mesh.is_empty() && self.mesh.keys().all(|p| self.eor_received.contains(p));
            if all_eor || std::time::Instant::now() >= until {
                tracing::info!("initial convergence done; stale routes may now be removed");
                self.converging_until = None;
            } else {
                // Keep what the kernel holds (a previous run's routes)
                // until the table is complete: add, never remove.
                for (dst, target) in &kernel {
                    routes.entry(*dst).or_insert_with(|| target.clone());
                }
            }
        }
        if let Ok(mut p) = self.programming.lock() {
            p.handing_over();
        }
        let _ = self.routes.send(RouteCommand::Desired(routes.clone()));
        let statuses = self.speaker.peers().await.unwrap_or_default();
        self.refresh_view(&statuses, &routes);
        self.last_round_ok = true;
        self.refresh_health(&statuses, Some(routes.len()));
        Ok(())
    }

    /// A datastore read's result, counted for the metrics when it failed.
    fn counted<T, E>(&mut self, result: Result<T, E>) -> Result<T, E> {
        if result.is_err() {
            self.datastore_errors += 1;
        }
        result
    }

    /// Masquerade traffic from `natOutgoing` pools to outside every pool.
    fn program_nat(&mut self, pools: &[ipam::Pool]) {
        let masq: Vec<IpNet> = pools
            .iter()
            .filter(|p| p.nat_outgoing && !p.disabled)
            .map(|p| p.cidr)
            .collect();
        let all: Vec<IpNet> = pools.iter().map(|p| p.cidr).collect();
        match self.nat.sync(&masq, &all) {
            Ok(changed) => {
                if changed && self.nat_error.take().is_some() {
                    tracing::info!("natOutgoing table applied again");
                }
            }
            Err(e) => {
                let e = e.to_string();
                if self.nat_error.as_deref() != Some(e.as_str()) {
                    tracing::error!("natOutgoing: {e}");
                    self.nat_error = Some(e);
                }
            }
        }
    }

    /// Pods on this node: the host routes on workload interfaces that
    /// tabby-cni installed (protocol 95, `dev cali…`).
    fn local_pods(&self, kernel: &RouteSet) -> Vec<(IpNet, u32)> {
        let prefix = &self.cfg.interface_prefix;
        kernel
            .iter()
            .filter_map(|(dst, t)| match t {
                Target::Device { ifindex } if is_workload_interface(*ifindex, prefix) => {
                    Some((*dst, *ifindex))
                }
                _ => None,
            })
            .collect()
    }

    /// Install the remote VTEP entries and remove those of nodes that are
    /// gone: when the set of remote VTEPs changes, and otherwise every [`VTEP_REFRESH`] to repair drift (not
    /// every round: that was a netlink connection and two requests per
    /// node each 500 ms).
    async fn program_vxlan(&mut self, nodes: &[NodeInfo]) -> Result<()> {
        let Some(index) = self.links.vxlan else {
            return Ok(());
        };
        let vteps: Vec<vxlan::RemoteVtep> = nodes
            .iter()
            .filter(|n| n.name != self.me.name)
            .flat_map(|n| {
                // One neighbour entry per tunnel address; both map to the
                // node's IPv4 address in the FDB.
                // (IPv6 ones only when this node is dual stack itself: a
                // host with IPv6 off would refuse them.)
                let tunnels = [
                    n.vxlan_tunnel.map(IpAddr::V4),
                    n.vxlan_tunnel6
                        .filter(|_| self.me.address6.is_some())
                        .map(IpAddr::V6),
                ];
                tunnels.into_iter().flatten().filter_map(|tunnel_address| {
                    Some(vxlan::RemoteVtep {
                        node_address: IpAddr::V4(n.address.addr()),
                        tunnel_address,
                        mac: n.vtep_mac?,
                    })
                })
            })
            .collect();
        let due = self.vteps_at.is_none_or(|t| t.elapsed() >= VTEP_REFRESH);
        if vteps == self.vteps && !due {
            return Ok(());
        }
        let (conn, handle, _) = rtnetlink::new_connection()?;
        let conn = tokio::spawn(conn);
        // A node that left (its Node resource deleted) or changed its
        // tunnel: its old entries go first, then the current ones are
        // (re)installed — which restores an FDB entry two tunnel
        // addresses of one node share.
        for gone in self.vteps.iter().filter(|v| !vteps.contains(v)) {
            vxlan::remove_remote(&handle, index, gone).await?;
        }
        for vtep in &vteps {
            vxlan::set_remote(&handle, index, vtep).await?;
        }
        conn.abort();
        self.vteps = vteps;
        self.vteps_at = Some(std::time::Instant::now());
        Ok(())
    }

    /// How `routectl peers` and the metrics name a peer's type.
    fn peer_type(&self, addr: &IpAddr) -> String {
        self.mesh
            .get(addr)
            .map_or("node-to-node mesh", |p| p.kind.label())
            .into()
    }

    /// (prefixes received, prefixes sent) of a peer, from the RIB.
    fn prefix_counts(&self, addr: &IpAddr) -> (usize, usize) {
        (
            self.rib.adj_rib_in(addr).map_or(0, |t| t.len()),
            self.rib.adj_rib_out(addr).map_or(0, |t| t.len()),
        )
    }

    /// While we help a restarting peer (down, or back and not yet done
    /// with its End-of-RIB): how many of its routes we keep stale, and
    /// whether they are long-lived stale (RFC 9494).
    fn kept_stale(&self, addr: &IpAddr) -> Option<String> {
        let adj = self.rib.adj_rib_in(addr).filter(|a| a.stale_count() > 0)?;
        let long = if adj.long_lived() == bgp::wire::Families::NONE {
            ""
        } else {
            " (long-lived)"
        };
        Some(format!("keeping {} stale routes{long}", adj.stale_count()))
    }

    fn refresh_view(&self, statuses: &[PeerStatus], routes: &RouteSet) {
        let peers = statuses
            .iter()
            .map(|s| PeerRow {
                address: s.address.to_string(),
                peer_type: self.peer_type(&s.address),
                state: s.state.to_string(),
                since_secs: s.since.as_secs(),
                info: {
                    let state = match &s.negotiated {
                        Some(n) => {
                            Some(format!("hold {}s, AS {}", n.hold_time.as_secs(), n.peer_as))
                        }
                        None => s.last_error.clone(),
                    };
                    [state, self.kept_stale(&s.address)]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join("; ")
                },
                prefixes_received: self.prefix_counts(&s.address).0,
                prefixes_sent: self.prefix_counts(&s.address).1,
            })
            .collect();
        let routes = routes
            .iter()
            .map(|(p, t)| RouteRow {
                prefix: p.to_string(),
                target: format!("{t:?}"),
            })
            .collect();
        self.view.send_replace(View { peers, routes });
    }

    /// Health and metrics, from the speaker's counters and this round.
    fn refresh_health(&mut self, statuses: &[PeerStatus], routes: Option<usize>) {
        let accepted = self.rib.loc_rib().accepted_by_peer();
        let peers: Vec<PeerMetrics> = statuses
            .iter()
            .map(|s| PeerMetrics {
                address: s.address.to_string(),
                peer_type: self.peer_type(&s.address),
                state: match s.state {
                    bgp::session::State::Idle => 1,
                    bgp::session::State::Connect => 2,
                    bgp::session::State::Active => 3,
                    bgp::session::State::OpenSent => 4,
                    bgp::session::State::OpenConfirm => 5,
                    bgp::session::State::Established => 6,
                },
                uptime_secs: s.since.as_secs(),
                established_total: s.counters.established,
                messages_in: s.counters.messages_in,
                messages_out: s.counters.messages_out,
                updates_in: s.counters.updates_in,
                updates_out: s.counters.updates_out,
                prefixes_received: self.prefix_counts(&s.address).0,
                prefixes_accepted: accepted.get(&s.address).copied().unwrap_or(0),
                prefixes_sent: self.prefix_counts(&s.address).1,
            })
            .collect();
        let up = peers.iter().filter(|p| p.state == 6).count();
        let sessions_ok = if self.started.elapsed() < super::health::STARTUP {
            up == peers.len()
        } else {
            peers.is_empty() || up > 0
        };
        let previous = self.health.borrow().routes_programmed;
        let programming = self
            .programming
            .lock()
            .map(|p| (p.timings.clone(), p.last_seconds))
            .unwrap_or_default();
        let ready = self.last_round_ok && sessions_ok;
        if ready && !self.announced_up {
            self.announced_up = true;
            if let Some(link) = &self.kube {
                super::kubernetes::announce_up(link);
            }
        }
        self.health.send_replace(Health {
            alive: true,
            ready,
            peers,
            routes_programmed: routes.unwrap_or(previous),
            failed_rounds: self.failed_rounds,
            programming: programming.0,
            programming_last_seconds: programming.1,
            ipam: self
                .ipam_timings
                .iter()
                .map(|(op, t)| (op.to_string(), t.clone()))
                .collect(),
            datastore_errors: self.datastore_errors,
        });
    }
}
