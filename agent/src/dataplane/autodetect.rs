//! Choosing the node's address, like calico-node's `IP_AUTODETECTION_METHOD`.
//!
//! Methods (the same strings Calico accepts):
//! - `first-found`: the first global address on an interface that is not
//!   one of the well-known virtual ones (docker, cali, tunl, vxlan, ...);
//! - `interface=<regex>[,<regex>]`: the first address on an interface whose
//!   name matches;
//! - `skip-interface=<regex>[,<regex>]`: first-found, also skipping these;
//! - `can-reach=<address>`: the source address the kernel picks to reach
//!   that address (a UDP `connect`, which sends nothing);
//! - `cidr=<cidr>[,<cidr>]`: the first address inside one of the ranges.
//!
//! The choice itself is a plain function over a list of interface
//! addresses ([`choose`]); only [`host_addresses`] and `can-reach` look at
//! the running system.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use ipnet::IpNet;
use regex_lite::Regex;

/// Interfaces first-found never picks (Calico's default exclusion list,
/// with tabby's own devices added).
pub const DEFAULT_EXCLUDES: &[&str] = &[
    "^docker.*",
    "^cbr.*",
    "^dummy.*",
    "^virbr.*",
    "^lxcbr.*",
    "^veth.*",
    "^lo$",
    "^cali.*",
    "^tunl.*",
    "^flannel.*",
    "^kube-ipvs.*",
    "^cni.*",
    "^vxlan.*",
    "^wireguard.*",
    "^wg-.*",
    "^nodelocaldns.*",
];

/// One address on one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub interface: String,
    /// The address with its subnet, e.g. 10.200.0.1/24.
    pub address: IpNet,
}

/// A parsed `IP_AUTODETECTION_METHOD`.
#[derive(Debug, Clone)]
pub enum Method {
    FirstFound,
    Interface(Vec<Regex>),
    SkipInterface(Vec<Regex>),
    CanReach(IpAddr),
    Cidr(Vec<IpNet>),
    /// `kubernetes-internal-ip`: the host address equal to one of the Node
    /// object's InternalIPs, filled in by [`Method::with_internal_ips`].
    KubernetesInternalIp(Vec<IpAddr>),
}

/// Why a method string or its outcome is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AutodetectError {
    #[error(
        "IP_AUTODETECTION_METHOD {0:?}: unknown method (expected first-found, kubernetes-internal-ip, interface=, skip-interface=, can-reach= or cidr=)"
    )]
    UnknownMethod(String),
    #[error("IP_AUTODETECTION_METHOD {method:?}: bad value {value:?}: {reason}")]
    BadValue {
        method: String,
        value: String,
        reason: String,
    },
    #[error("no {family} address found by {method}")]
    NotFound {
        family: &'static str,
        method: String,
    },
    #[error("cannot list interface addresses: {0}")]
    System(String),
}

impl Method {
    /// Parse Calico's syntax, e.g. `interface=eth.*,ens.*`.
    pub fn parse(text: &str) -> Result<Method, AutodetectError> {
        let text = text.trim();
        if text.is_empty() || text == "first-found" {
            return Ok(Method::FirstFound);
        }
        if text == "kubernetes-internal-ip" {
            return Ok(Method::KubernetesInternalIp(Vec::new()));
        }
        let (name, value) = text
            .split_once('=')
            .ok_or_else(|| AutodetectError::UnknownMethod(text.into()))?;
        let bad = |value: &str, reason: String| AutodetectError::BadValue {
            method: name.into(),
            value: value.into(),
            reason,
        };
        let regexes = |v: &str| {
            v.split(',')
                .map(|r| Regex::new(r.trim()).map_err(|e| bad(r, e.to_string())))
                .collect::<Result<Vec<_>, _>>()
        };
        match name {
            "interface" => Ok(Method::Interface(regexes(value)?)),
            "skip-interface" => Ok(Method::SkipInterface(regexes(value)?)),
            "can-reach" => {
                let addr = value
                    .trim()
                    .parse()
                    .map_err(|e| bad(value, format!("{e}")))?;
                Ok(Method::CanReach(addr))
            }
            "cidr" => value
                .split(',')
                .map(|c| {
                    c.trim()
                        .parse::<IpNet>()
                        .map_err(|e| bad(c, format!("{e}")))
                })
                .collect::<Result<_, _>>()
                .map(Method::Cidr),
            _ => Err(AutodetectError::UnknownMethod(text.into())),
        }
    }
}

impl Method {
    /// The method with the Node's InternalIPs, for `kubernetes-internal-ip`
    /// (other methods are returned as they are).
    pub fn with_internal_ips(self, ips: &[IpAddr]) -> Method {
        match self {
            Method::KubernetesInternalIp(_) => Method::KubernetesInternalIp(ips.to_vec()),
            other => other,
        }
    }
}

fn usable(addr: &IpNet, want_v6: bool) -> bool {
    let ip = addr.addr();
    if ip.is_ipv6() != want_v6 || ip.is_loopback() || ip.is_multicast() || ip.is_unspecified() {
        return false;
    }
    match ip {
        IpAddr::V4(a) => !a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) != 0xfe80,
    }
}

/// Apply `method` to the host's `addresses` for one family. `can_reach`
/// resolves the source address for `can-reach` (see [`source_for`]).
pub fn choose(
    method: &Method,
    addresses: &[InterfaceAddress],
    ipv6: bool,
    can_reach: impl Fn(IpAddr) -> Option<IpAddr>,
) -> Result<InterfaceAddress, AutodetectError> {
    let excluded: Vec<Regex> = DEFAULT_EXCLUDES
        .iter()
        .filter_map(|r| Regex::new(r).ok())
        .collect();
    let candidates = addresses.iter().filter(|a| usable(&a.address, ipv6));
    let matches_any = |res: &[Regex], name: &str| res.iter().any(|r| r.is_match(name));
    let found = match method {
        Method::FirstFound => candidates
            .clone()
            .find(|a| !matches_any(&excluded, &a.interface)),
        Method::SkipInterface(skip) => candidates
            .clone()
            .find(|a| !matches_any(&excluded, &a.interface) && !matches_any(skip, &a.interface)),
        Method::Interface(want) => candidates.clone().find(|a| matches_any(want, &a.interface)),
        Method::Cidr(ranges) => candidates
            .clone()
            .find(|a| ranges.iter().any(|r| r.contains(&a.address.addr()))),
        Method::KubernetesInternalIp(ips) => {
            candidates.clone().find(|a| ips.contains(&a.address.addr()))
        }
        Method::CanReach(dest) => {
            can_reach(*dest).and_then(|src| candidates.clone().find(|a| a.address.addr() == src))
        }
    };
    found.cloned().ok_or(AutodetectError::NotFound {
        family: if ipv6 { "IPv6" } else { "IPv4" },
        method: format!("{method:?}"),
    })
}

/// The source address the kernel would use towards `dest`. A UDP socket's
/// `connect` only selects a route and a source; no packet is sent.
pub fn source_for(dest: IpAddr) -> Option<IpAddr> {
    let bind: SocketAddr = match dest {
        IpAddr::V4(_) => "0.0.0.0:0".parse().ok()?,
        IpAddr::V6(_) => "[::]:0".parse().ok()?,
    };
    let sock = UdpSocket::bind(bind).ok()?;
    sock.connect(SocketAddr::new(dest, 9)).ok()?;
    sock.local_addr().ok().map(|a| a.ip())
}

/// Every address on every interface of the calling thread's namespace.
pub fn host_addresses() -> Result<Vec<InterfaceAddress>, AutodetectError> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| AutodetectError::System(e.to_string()))?;
    let mut out = Vec::new();
    for ifa in addrs {
        let (Some(addr), Some(mask)) = (ifa.address, ifa.netmask) else {
            continue;
        };
        let pair = match (addr.as_sockaddr_in(), mask.as_sockaddr_in()) {
            (Some(a), Some(m)) => {
                let len = u32::from(m.ip()).count_ones() as u8;
                IpNet::new(IpAddr::V4(a.ip()), len).ok()
            }
            _ => match (addr.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
                (Some(a), Some(m)) => {
                    let len = u128::from(m.ip()).count_ones() as u8;
                    IpNet::new(IpAddr::V6(a.ip()), len).ok()
                }
                _ => None,
            },
        };
        if let Some(address) = pair {
            out.push(InterfaceAddress {
                interface: ifa.interface_name,
                address,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Vec<InterfaceAddress> {
        [
            ("lo", "127.0.0.1/8"),
            ("docker0", "172.17.0.1/16"),
            ("cali1234", "169.254.1.1/32"),
            ("eth0", "fe80::1/64"),
            ("eth0", "10.200.0.1/24"),
            ("eth1", "192.0.2.10/24"),
            ("eth1", "2001:db8::10/64"),
            ("vxlan.tabby", "10.0.1.0/32"),
        ]
        .iter()
        .map(|(i, a)| InterfaceAddress {
            interface: i.to_string(),
            address: a.parse().unwrap(),
        })
        .collect()
    }

    fn pick(method: &str, v6: bool) -> Result<String, AutodetectError> {
        let m = Method::parse(method)?;
        choose(&m, &host(), v6, |_| "192.0.2.10".parse().ok()).map(|a| a.address.to_string())
    }

    #[test]
    fn first_found_skips_virtual_and_link_local() {
        assert_eq!(pick("first-found", false).unwrap(), "10.200.0.1/24");
        assert_eq!(pick("", false).unwrap(), "10.200.0.1/24");
        assert_eq!(pick("first-found", true).unwrap(), "2001:db8::10/64");
    }

    #[test]
    fn interface_skip_cidr_and_can_reach() {
        assert_eq!(pick("interface=eth1", false).unwrap(), "192.0.2.10/24");
        assert_eq!(
            pick("interface=ens.*, eth.*", false).unwrap(),
            "10.200.0.1/24"
        );
        assert_eq!(pick("skip-interface=eth0", false).unwrap(), "192.0.2.10/24");
        assert_eq!(pick("cidr=192.0.2.0/24", false).unwrap(), "192.0.2.10/24");
        assert_eq!(pick("can-reach=192.0.2.1", false).unwrap(), "192.0.2.10/24");
    }

    #[test]
    fn bad_methods_name_the_bad_part() {
        let e = Method::parse("interface=(").unwrap_err();
        assert!(
            matches!(&e, AutodetectError::BadValue { value, .. } if value == "("),
            "{e}"
        );
        assert!(matches!(
            Method::parse("magic"),
            Err(AutodetectError::UnknownMethod(_))
        ));
        assert!(matches!(
            Method::parse("cidr=10.0.0.0/33"),
            Err(AutodetectError::BadValue { .. })
        ));
        assert!(matches!(
            pick("interface=wlan0", false),
            Err(AutodetectError::NotFound { .. })
        ));
    }
}
