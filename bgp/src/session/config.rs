//! Per-peer session configuration (RFC 4271 §8.1 optional attributes).

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::wire::{Afi, Capability, Safi};

/// What the operator configures for one peer.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Our AS.
    pub local_as: u32,
    /// The AS the peer must be in (its OPEN is refused with 2/2 otherwise).
    pub remote_as: u32,
    /// Our BGP Identifier.
    pub local_id: Ipv4Addr,
    /// Hold Time we offer; the session uses the smaller of both (§4.2).
    pub hold_time: Duration,
    /// ConnectRetryTime (§10: 120 s suggested; tabby defaults to 5 s, as
    /// BIRD's `connect retry` in the lab).
    pub connect_retry: Duration,
    /// DelayOpenTime, when DelayOpen is on (§8.1.1).
    pub delay_open: Option<Duration>,
    /// PassiveTcpEstablishment: never connect, only accept (§8.1.1).
    pub passive: bool,
    /// First IdleHold after an error, doubled per error up to
    /// `idle_hold_max` (DampPeerOscillations, §8.1.1).
    pub idle_hold: Duration,
    pub idle_hold_max: Duration,
    /// How long Established must last before the back-off resets.
    pub stable_after: Duration,
    /// Capabilities we announce in our OPEN.
    pub capabilities: Vec<Capability>,
    /// Capability codes the peer must announce, or its OPEN is refused
    /// with 2/7 Unsupported Capability (RFC 5492 §5).
    pub required_capabilities: Vec<u8>,
}

impl SessionConfig {
    /// A configuration with tabby's defaults: hold time 90 s (keepalive
    /// 30 s), connect retry 5 s, no DelayOpen, active, IdleHold 1 s → 120 s,
    /// and the capabilities every peer of a Calico node expects: IPv4
    /// unicast (multiprotocol), route refresh (also enhanced, RFC 7313)
    /// and 4-octet AS. BIRD refuses
    /// an OPEN without the multiprotocol capability for its channel (2/7).
    pub fn new(local_as: u32, remote_as: u32, local_id: Ipv4Addr) -> SessionConfig {
        SessionConfig {
            local_as,
            remote_as,
            local_id,
            hold_time: Duration::from_secs(90),
            connect_retry: Duration::from_secs(5),
            delay_open: None,
            passive: false,
            idle_hold: Duration::from_secs(1),
            idle_hold_max: Duration::from_secs(120),
            stable_after: Duration::from_secs(60),
            capabilities: vec![
                Capability::Multiprotocol {
                    afi: Afi::IPV4,
                    safi: Safi::UNICAST,
                },
                Capability::RouteRefresh,
                Capability::EnhancedRouteRefresh,
                Capability::FourOctetAs(local_as),
            ],
            required_capabilities: Vec::new(),
        }
    }

    /// Whether the peer is in our AS.
    pub fn is_ibgp(&self) -> bool {
        self.local_as == self.remote_as
    }
}
