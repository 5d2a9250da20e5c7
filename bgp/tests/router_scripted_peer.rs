//! The router (speaker + RIB driver) against a scripted peer on loopback:
//! graceful restart as helper (RFC 4724 §4.2), ROUTE-REFRESH answered
//! with the whole table (RFC 2918 §4), and the max-prefix Cease 6/1 with
//! its RFC 4486 §4 data, read byte for byte by the peer.
//!
//! The scripted peer is this test: it speaks through `bgp::wire` on a
//! plain TCP socket to tabby's passive listener on 127.0.0.1, so it can
//! drop the connection without a NOTIFICATION as a restarting speaker
//! would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bgp::rib::{DecisionConfig, IpPrefix, LocalConfig, MaxPrefix, PeerConfig as RibPeer};
use bgp::session::{SessionConfig, State};
use bgp::speaker::router::{self, PeerRoutes, RoutedPeer, RouterConfig, RouterHandle};
use bgp::speaker::{self, PeerConfig, SpeakerConfig};
use bgp::wire::capability::{GracefulRestart, GracefulRestartFamily};
use bgp::wire::{
    Afi, AsPath, Capability, Context, Family, Message, NextHop, Nlri, Open, Origin, PathAttributes,
    RouteRefresh, RouteRefreshSubtype, Safi, Update, decode, encode, frame,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const AS: u32 = 64512;
const TABBY_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const WAIT: Duration = Duration::from_secs(10);
// Next hops are only data here; loopback ones would be refused (RFC 7606
// treat-as-withdraw), so they are documentation addresses.
const PEER_NEXT_HOP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const TABBY_NEXT_HOP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

fn p(s: &str) -> IpPrefix {
    s.parse().unwrap()
}

/// tabby, passive, with a router and the scripted peer configured.
async fn tabby(max_prefixes: Option<MaxPrefix>) -> (RouterHandle, SocketAddr) {
    let speaker = speaker::start(SpeakerConfig {
        listen: vec![SocketAddr::new(loopback(), 0)],
        ..Default::default()
    })
    .await
    .unwrap();
    let at = speaker.local_addrs()[0];
    let mut cfg = RouterConfig::new(LocalConfig {
        asn: AS,
        router_id: TABBY_ID,
        cluster_id: None,
        decision: DecisionConfig::default(),
    });
    cfg.coalesce = Duration::from_millis(5);
    cfg.stale_path_time = Duration::from_secs(60);
    let router = router::start(speaker, cfg);
    let mut session = SessionConfig::new(AS, AS, TABBY_ID);
    session.passive = true;
    session.idle_hold = Duration::from_millis(10);
    session.idle_hold_max = Duration::from_millis(10);
    let mut rib = RibPeer::new(loopback(), AS);
    rib.local_v4 = Some(TABBY_NEXT_HOP);
    rib.max_prefixes = max_prefixes;
    router
        .add_peer(RoutedPeer {
            session: PeerConfig::new(loopback(), session),
            rib,
        })
        .await
        .unwrap();
    (router, at)
}

/// What tabby originates in these tests: an iBGP route of its own.
fn local_attrs() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        local_pref: Some(100),
        ..PathAttributes::default()
    }
}

/// The scripted peer's side of one connection.
struct Scripted {
    stream: TcpStream,
    ctx: Context,
    buf: Vec<u8>,
}

fn gr(restart_state: bool, restart_time: u16, forwarding_state: bool) -> Capability {
    Capability::GracefulRestart(GracefulRestart {
        restart_state,
        notification: false,
        restart_time,
        families: vec![GracefulRestartFamily {
            afi: Afi::IPV4,
            safi: Safi::UNICAST,
            forwarding_state,
        }],
    })
}

impl Scripted {
    /// Connects and completes the OPEN / KEEPALIVE exchange, announcing
    /// `extra` capabilities; tries again while tabby refuses (its session
    /// is still Idle after the last one).
    async fn connect(at: SocketAddr, extra: Vec<Capability>) -> Scripted {
        let mut caps = vec![
            Capability::Multiprotocol {
                afi: Afi::IPV4,
                safi: Safi::UNICAST,
            },
            Capability::RouteRefresh,
            Capability::FourOctetAs(AS),
        ];
        caps.extend(extra);
        let ours = Open::new(AS, 90, PEER_ID, caps);
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(s) = Self::handshake(at, &ours).await {
                    return s;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("tabby accepts the scripted peer")
    }

    async fn handshake(at: SocketAddr, ours: &Open) -> Option<Scripted> {
        let stream = TcpStream::connect(at).await.ok()?;
        let mut s = Scripted {
            stream,
            ctx: Context::default(),
            buf: Vec::new(),
        };
        s.send(&Message::Open(ours.clone())).await;
        let Ok(Message::Open(theirs)) = s.try_recv().await else {
            return None;
        };
        s.ctx = Context::negotiate(ours, &theirs);
        if s.try_recv().await != Ok(Message::Keepalive) {
            return None;
        }
        s.send(&Message::Keepalive).await;
        Some(s)
    }

    async fn send(&mut self, m: &Message) {
        let mut out = Vec::new();
        encode(m, &self.ctx, &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    /// The next message.
    async fn recv(&mut self) -> Message {
        tokio::time::timeout(WAIT, self.try_recv())
            .await
            .expect("a message from tabby")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The next message, or why there is none.
    async fn try_recv(&mut self) -> Result<Message, String> {
        loop {
            if let Some(n) = frame(&self.buf, &self.ctx).map_err(|e| format!("{e:?}"))? {
                let msg: Vec<u8> = self.buf.drain(..n).collect();
                return decode(&msg, &self.ctx)
                    .map(|r| r.message)
                    .map_err(|e| format!("{e:?}"));
            }
            let mut chunk = [0u8; 4096];
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("tabby closed the connection".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next UPDATE (KEEPALIVEs skipped).
    async fn recv_update(&mut self) -> Update {
        loop {
            match self.recv().await {
                Message::Keepalive => {}
                Message::Update(u) => return u,
                other => panic!("expected an UPDATE, got {other:?}"),
            }
        }
    }

    async fn announce(&mut self, prefixes: &[&str]) {
        let update = Update {
            attributes: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::default()),
                next_hop: Some(PEER_NEXT_HOP),
                local_pref: Some(100),
                ..PathAttributes::default()
            },
            nlri: prefixes
                .iter()
                .map(|s| match p(s) {
                    IpPrefix::V4(x) => Nlri::new(x),
                    IpPrefix::V6(_) => panic!("v4 only"),
                })
                .collect(),
            ..Update::default()
        };
        self.send(&Message::Update(update)).await;
    }

    async fn end_of_rib(&mut self) {
        self.send(&Message::Update(Update::end_of_rib(Family::Ipv4Unicast)))
            .await;
    }
}

async fn wait_for(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !cond().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

async fn routes(r: &RouterHandle) -> PeerRoutes {
    r.peer_routes(loopback()).await.unwrap().unwrap()
}

async fn has(r: &RouterHandle, prefix: &str) -> bool {
    !r.best(p(prefix)).await.unwrap().is_empty()
}

async fn state(r: &RouterHandle) -> State {
    r.speaker().peer(loopback()).await.unwrap().unwrap().state
}

#[tokio::test]
async fn a_restarting_peer_keeps_its_routes_stale_until_its_end_of_rib() {
    let (r, at) = tabby(None).await;
    let mut peer = Scripted::connect(at, vec![gr(false, 120, true)]).await;
    peer.announce(&["10.1.0.0/24", "10.2.0.0/24"]).await;
    peer.end_of_rib().await;
    wait_for("both routes", async || routes(&r).await.received == 2).await;

    // The peer restarts: the connection drops without a NOTIFICATION.
    drop(peer);
    wait_for("the session to drop", async || {
        state(&r).await != State::Established
    })
    .await;
    assert_eq!(routes(&r).await.stale, 2, "kept, stale");
    assert!(has(&r, "10.1.0.0/24").await && has(&r, "10.2.0.0/24").await);

    // Back, forwarding state preserved; it sends only one route again.
    let mut peer = Scripted::connect(at, vec![gr(true, 120, true)]).await;
    wait_for("Established again", async || {
        state(&r).await == State::Established
    })
    .await;
    assert_eq!(routes(&r).await.stale, 2, "still stale before End-of-RIB");
    peer.announce(&["10.1.0.0/24"]).await;
    peer.end_of_rib().await;
    wait_for("the unrefreshed route flushed", async || {
        !has(&r, "10.2.0.0/24").await
    })
    .await;
    assert!(has(&r, "10.1.0.0/24").await);
    assert_eq!(routes(&r).await.stale, 0);
}

#[tokio::test]
async fn stale_routes_go_when_the_restart_time_passes_or_the_peer_forgets_them() {
    let (r, at) = tabby(None).await;
    // Restart Time 1 s, and the peer never comes back in time.
    let mut peer = Scripted::connect(at, vec![gr(false, 1, true)]).await;
    peer.announce(&["10.1.0.0/24"]).await;
    wait_for("the route", async || has(&r, "10.1.0.0/24").await).await;
    drop(peer);
    wait_for("the session to drop", async || {
        state(&r).await != State::Established
    })
    .await;
    assert_eq!(routes(&r).await.stale, 1);
    wait_for("the restart time to expire", async || {
        !has(&r, "10.1.0.0/24").await
    })
    .await;

    // Back without the F bit: stale routes go at once, not at End-of-RIB.
    let mut peer = Scripted::connect(at, vec![gr(false, 120, true)]).await;
    peer.announce(&["10.3.0.0/24"]).await;
    wait_for("the route", async || has(&r, "10.3.0.0/24").await).await;
    drop(peer);
    wait_for("the session to drop", async || {
        state(&r).await != State::Established
    })
    .await;
    assert_eq!(routes(&r).await.stale, 1);
    let _peer = Scripted::connect(at, vec![gr(true, 120, false)]).await;
    wait_for("stale routes flushed on the new OPEN", async || {
        !has(&r, "10.3.0.0/24").await
    })
    .await;

    // Without graceful restart the routes go with the session.
    drop(_peer);
    let mut peer = Scripted::connect(at, vec![]).await;
    peer.announce(&["10.4.0.0/24"]).await;
    wait_for("the route", async || has(&r, "10.4.0.0/24").await).await;
    drop(peer);
    wait_for("routes gone with the session", async || {
        !has(&r, "10.4.0.0/24").await
    })
    .await;
}

#[tokio::test]
async fn route_refresh_gets_the_whole_table_again() {
    let (r, at) = tabby(None).await;
    let attrs = local_attrs();
    for s in ["10.8.0.0/24", "10.9.0.0/24"] {
        r.originate(p(s), attrs.clone(), NextHop::V4(TABBY_NEXT_HOP))
            .await
            .unwrap();
    }
    let mut peer = Scripted::connect(at, vec![]).await;
    let table = peer.recv_update().await;
    assert_eq!(table.nlri.len(), 2, "{table:?}");
    assert_eq!(
        peer.recv_update().await.end_of_rib_family(),
        Some(Family::Ipv4Unicast)
    );
    peer.send(&Message::RouteRefresh(RouteRefresh {
        afi: Afi::IPV4,
        subtype: RouteRefreshSubtype::Request,
        safi: Safi::UNICAST,
    }))
    .await;
    let again = peer.recv_update().await;
    let mut got: Vec<String> = again.nlri.iter().map(|n| n.prefix.to_string()).collect();
    got.sort();
    assert_eq!(got, ["10.8.0.0/24", "10.9.0.0/24"]);

    // tabby asks too.
    assert!(r.refresh(loopback(), Family::Ipv4Unicast).await.unwrap());
    loop {
        match peer.recv().await {
            Message::Keepalive => {}
            Message::RouteRefresh(rr) => {
                assert_eq!((rr.afi, rr.safi), (Afi::IPV4, Safi::UNICAST));
                assert_eq!(rr.subtype, RouteRefreshSubtype::Request);
                break;
            }
            other => panic!("expected ROUTE-REFRESH, got {other:?}"),
        }
    }
}

/// The next message that is not a KEEPALIVE.
async fn next_non_keepalive(peer: &mut Scripted) -> Message {
    loop {
        match peer.recv().await {
            Message::Keepalive => {}
            other => return other,
        }
    }
}

fn refresh(subtype: RouteRefreshSubtype) -> Message {
    Message::RouteRefresh(RouteRefresh {
        afi: Afi::IPV4,
        subtype,
        safi: Safi::UNICAST,
    })
}

#[tokio::test]
async fn an_enhanced_route_refresh_answer_is_framed_by_borr_and_eorr() {
    let (r, at) = tabby(None).await;
    let attrs = local_attrs();
    r.originate(p("10.8.0.0/24"), attrs, NextHop::V4(TABBY_NEXT_HOP))
        .await
        .unwrap();
    let mut peer = Scripted::connect(at, vec![Capability::EnhancedRouteRefresh]).await;
    assert!(peer.ctx.enhanced_route_refresh, "both sides announce it");
    assert_eq!(peer.recv_update().await.nlri.len(), 1);
    assert!(peer.recv_update().await.end_of_rib_family().is_some());
    peer.send(&refresh(RouteRefreshSubtype::Request)).await;
    assert_eq!(
        next_non_keepalive(&mut peer).await,
        refresh(RouteRefreshSubtype::BeginningOfRouteRefresh)
    );
    let Message::Update(again) = next_non_keepalive(&mut peer).await else {
        panic!("the table between BoRR and EoRR")
    };
    assert_eq!(again.nlri[0].prefix.to_string(), "10.8.0.0/24");
    assert_eq!(
        next_non_keepalive(&mut peer).await,
        refresh(RouteRefreshSubtype::EndOfRouteRefresh)
    );
}

#[tokio::test]
async fn routes_missing_between_a_peers_borr_and_eorr_are_purged() {
    let (r, at) = tabby(None).await;
    let mut peer = Scripted::connect(at, vec![Capability::EnhancedRouteRefresh]).await;
    peer.announce(&["10.1.0.0/24", "10.2.0.0/24"]).await;
    peer.end_of_rib().await;
    wait_for("both routes", async || {
        has(&r, "10.1.0.0/24").await && has(&r, "10.2.0.0/24").await
    })
    .await;
    // tabby asks; the peer answers with only one of them.
    assert!(r.refresh(loopback(), Family::Ipv4Unicast).await.unwrap());
    loop {
        if let Message::RouteRefresh(_) = next_non_keepalive(&mut peer).await {
            break;
        }
    }
    peer.send(&refresh(RouteRefreshSubtype::BeginningOfRouteRefresh))
        .await;
    peer.announce(&["10.1.0.0/24"]).await;
    // Between BoRR and EoRR the old routes still forward.
    assert!(has(&r, "10.2.0.0/24").await, "kept until the EoRR");
    peer.send(&refresh(RouteRefreshSubtype::EndOfRouteRefresh))
        .await;
    wait_for("10.2.0.0/24 purged at EoRR", async || {
        !has(&r, "10.2.0.0/24").await
    })
    .await;
    assert!(has(&r, "10.1.0.0/24").await, "announced again: kept");
    assert_eq!(routes(&r).await.stale, 0);
}

#[tokio::test]
async fn max_prefix_closes_with_cease_6_1_carrying_afi_safi_and_the_bound() {
    let limit = MaxPrefix {
        restart_after: Some(Duration::from_millis(200)),
        ..MaxPrefix::new(2)
    };
    let (r, at) = tabby(Some(limit)).await;
    let mut peer = Scripted::connect(at, vec![]).await;
    // Skip tabby's (empty) table.
    assert!(peer.recv_update().await.end_of_rib_family().is_some());
    peer.announce(&["10.1.0.0/24", "10.2.0.0/24"]).await;
    peer.announce(&["10.3.0.0/24"]).await;
    let n = loop {
        match peer.recv().await {
            Message::Keepalive => {}
            Message::Notification(n) => break n,
            other => panic!("expected the Cease, got {other:?}"),
        }
    };
    assert_eq!((n.code, n.subcode), (6, 1));
    assert_eq!(n.data, [0, 1, 1, 0, 0, 0, 2], "AFI 1, SAFI 1, bound 2");
    wait_for("the routes gone", async || routes(&r).await.received == 0).await;
    // After the restart delay tabby accepts the peer again.
    drop(peer);
    let _again = Scripted::connect(at, vec![]).await;
    wait_for("Established again", async || {
        state(&r).await == State::Established
    })
    .await;
}
