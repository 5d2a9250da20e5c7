//! The etcd key layout: every IPAM key lives under [`PREFIX`].
//!
//! ```text
//! /tabby/v1/resources/ippools/<name>                           IPPool (v3 resource JSON)
//! /tabby/v1/ipam/v2/config                                     IPAMConfig
//! /tabby/v1/ipam/v2/assignment/ipv4/block/10.0.1.64-26         AllocationBlock
//! /tabby/v1/ipam/v2/assignment/ipv6/block/fd00::40-122         AllocationBlock
//! /tabby/v1/ipam/v2/host/<node>/ipv4/block/10.0.1.64-26        BlockAffinity
//! /tabby/v1/ipam/v2/handle/<handle id>                         IpamHandle
//! ```
//!
//! This is Calico's `/calico/ipam/v2/...` layout (libcalico-go
//! `model/block.go`, `block_affinity.go`, `ipam_handle.go`) moved under
//! `/tabby/v1/`, with the CIDR's `/` written as `-`. Node names and handle
//! ids are checked to contain no `/`, so every key parses back.

use std::net::IpAddr;

use ipnet::IpNet;

/// The one prefix under which tabby keeps its state.
pub const PREFIX: &str = "/tabby/v1/";
/// Everything IPAM owns (blocks, affinities, handles, config).
pub const IPAM: &str = "/tabby/v1/ipam/v2/";
pub const POOLS: &str = "/tabby/v1/resources/ippools/";
pub const CONFIG: &str = "/tabby/v1/ipam/v2/config";
pub const BLOCKS: &str = "/tabby/v1/ipam/v2/assignment/";
pub const HOSTS: &str = "/tabby/v1/ipam/v2/host/";
pub const HANDLES: &str = "/tabby/v1/ipam/v2/handle/";

fn family(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "ipv4",
        IpNet::V6(_) => "ipv6",
    }
}

fn cidr_segment(net: &IpNet) -> String {
    format!("{}-{}", net.network(), net.prefix_len())
}

fn parse_cidr_segment(s: &str) -> Option<IpNet> {
    let (addr, len) = s.rsplit_once('-')?;
    let addr: IpAddr = addr.parse().ok()?;
    IpNet::new(addr, len.parse().ok()?).ok()
}

pub fn pool(name: &str) -> String {
    format!("{POOLS}{name}")
}

/// All blocks of one family.
pub fn block_family(family: crate::pool::Family) -> String {
    match family {
        crate::pool::Family::V4 => format!("{BLOCKS}ipv4/block/"),
        crate::pool::Family::V6 => format!("{BLOCKS}ipv6/block/"),
    }
}

pub fn block(cidr: &IpNet) -> String {
    format!("{BLOCKS}{}/block/{}", family(cidr), cidr_segment(cidr))
}

/// All affinities of `node`.
pub fn host(node: &str) -> String {
    format!("{HOSTS}{node}/")
}

pub fn affinity(node: &str, cidr: &IpNet) -> String {
    format!(
        "{HOSTS}{node}/{}/block/{}",
        family(cidr),
        cidr_segment(cidr)
    )
}

pub fn handle(id: &str) -> String {
    format!("{HANDLES}{id}")
}

/// The block CIDR named by a block key.
pub fn parse_block(key: &str) -> Option<IpNet> {
    let rest = key.strip_prefix(BLOCKS)?;
    let (fam, rest) = rest.split_once("/block/")?;
    let net = parse_cidr_segment(rest)?;
    (fam == family(&net)).then_some(net)
}

/// The (node, block CIDR) named by an affinity key.
pub fn parse_affinity(key: &str) -> Option<(String, IpNet)> {
    let rest = key.strip_prefix(HOSTS)?;
    let (node, rest) = rest.split_once('/')?;
    let (fam, rest) = rest.split_once("/block/")?;
    let net = parse_cidr_segment(rest)?;
    (fam == family(&net)).then(|| (node.to_string(), net))
}

pub fn parse_handle(key: &str) -> Option<&str> {
    key.strip_prefix(HANDLES).filter(|id| !id.is_empty())
}

/// A name usable as one key segment: non-empty, no `/`, no control chars.
pub fn is_segment(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && !name.chars().any(|c| c == '/' || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_the_documented_layout_and_parse_back() {
        let v4: IpNet = "10.0.1.64/26".parse().unwrap();
        let v6: IpNet = "fd00::40/122".parse().unwrap();
        assert_eq!(
            block(&v4),
            "/tabby/v1/ipam/v2/assignment/ipv4/block/10.0.1.64-26"
        );
        assert_eq!(
            block(&v6),
            "/tabby/v1/ipam/v2/assignment/ipv6/block/fd00::40-122"
        );
        assert_eq!(
            affinity("n1", &v4),
            "/tabby/v1/ipam/v2/host/n1/ipv4/block/10.0.1.64-26"
        );
        assert_eq!(
            handle("k8s-pod-network.abc"),
            "/tabby/v1/ipam/v2/handle/k8s-pod-network.abc"
        );
        assert_eq!(parse_block(&block(&v4)), Some(v4));
        assert_eq!(parse_block(&block(&v6)), Some(v6));
        assert_eq!(
            parse_affinity(&affinity("n1", &v6)),
            Some(("n1".into(), v6))
        );
        assert_eq!(parse_handle(&handle("h")), Some("h"));
        // a family that disagrees with the address is not a block key
        assert_eq!(
            parse_block("/tabby/v1/ipam/v2/assignment/ipv6/block/10.0.1.64-26"),
            None
        );
        assert!(block(&v4).starts_with(PREFIX) && block(&v4).starts_with(IPAM));
        assert!(!is_segment("a/b") && !is_segment("") && is_segment("node-1.example"));
    }
}
