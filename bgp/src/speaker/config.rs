//! What the speaker and each peer are configured with.

use std::net::{IpAddr, SocketAddr};

use crate::session::SessionConfig;

/// The BGP port (RFC 4271 §8.2.1).
pub const BGP_PORT: u16 = 179;

/// The speaker as a whole.
#[derive(Debug, Clone)]
pub struct SpeakerConfig {
    /// Addresses to accept connections on (e.g. `0.0.0.0:179`, `[::]:179`);
    /// empty for a speaker that only connects out.
    pub listen: Vec<SocketAddr>,
    /// How many session events a slow subscriber may fall behind by.
    pub event_buffer: usize,
}

impl Default for SpeakerConfig {
    fn default() -> Self {
        SpeakerConfig {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], BGP_PORT))],
            event_buffer: 1024,
        }
    }
}

/// One configured peer.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The peer's address: where we connect, and the only source address
    /// accepted for it.
    pub address: IpAddr,
    /// The peer's port (179).
    pub port: u16,
    /// Source address for outgoing connections (the node address).
    pub local_address: Option<IpAddr>,
    /// TCP MD5 signature key (RFC 2385), at most 80 octets.
    pub password: Option<String>,
    /// TTL of outgoing packets. `None`: 1 for eBGP (directly connected,
    /// as BIRD and FRR default), 64 for iBGP.
    pub ttl: Option<u8>,
    /// GTSM (RFC 5082): send with TTL 255 and accept only TTL ≥ 255 - hops + 1.
    pub gtsm_hops: Option<u8>,
    /// The session itself.
    pub session: SessionConfig,
}

impl PeerConfig {
    /// A peer at `address` on port 179 with `session`.
    pub fn new(address: IpAddr, session: SessionConfig) -> PeerConfig {
        PeerConfig {
            address,
            port: BGP_PORT,
            local_address: None,
            password: None,
            ttl: None,
            gtsm_hops: None,
            session,
        }
    }

    /// The TTL outgoing packets carry.
    pub fn outgoing_ttl(&self) -> u8 {
        match (self.gtsm_hops, self.ttl) {
            (Some(_), _) => 255,
            (None, Some(ttl)) => ttl,
            (None, None) if self.session.is_ibgp() => 64,
            (None, None) => 1,
        }
    }
}
