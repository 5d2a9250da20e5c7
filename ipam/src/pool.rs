//! IP pools: the `IPPool` resource as operators write it, and [`Pool`], the
//! validated form that allocation works with.
//!
//! Field names are Calico v3's (`cidr`, `blockSize`, `ipipMode`,
//! `vxlanMode`, `natOutgoing`, `disabled`, `disableBGPExport`,
//! `nodeSelector`, `allowedUses`, `assignmentMode`), so a Calico manifest
//! parses unchanged. Validation follows Calico: the CIDR must be masked,
//! must not overlap link-local space (169.254.0.0/16, fe80::/10) or another
//! pool, the block size must be 20–32 (IPv4) or 116–128 (IPv6) and the pool
//! must hold at least one block; IPIP and VXLAN cannot both be on. Every
//! error names the field it is about.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::keys;
use crate::selector::{Selector, SelectorError};

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

impl Family {
    pub fn of(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }
}

/// Encapsulation mode for `ipipMode` / `vxlanMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum EncapMode {
    #[default]
    Never,
    Always,
    CrossSubnet,
}

/// What addresses of a pool may be used for (`allowedUses`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AllowedUse {
    Workload,
    Tunnel,
    LoadBalancer,
}

/// `assignmentMode`: `Manual` pools are never used by auto-assign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum AssignmentMode {
    #[default]
    Automatic,
    Manual,
}

/// The `IPPool` resource as stored and as written in manifests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpPool {
    #[serde(default = "api_version")]
    pub api_version: String,
    #[serde(default = "kind")]
    pub kind: String,
    pub metadata: Metadata,
    pub spec: IpPoolSpec,
}

fn api_version() -> String {
    "projectcalico.org/v3".into()
}
fn kind() -> String {
    "IPPool".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Metadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpPoolSpec {
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u8>,
    #[serde(default)]
    pub ipip_mode: EncapMode,
    #[serde(default)]
    pub vxlan_mode: EncapMode,
    #[serde(default)]
    pub nat_outgoing: bool,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default, rename = "disableBGPExport")]
    pub disable_bgp_export: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    /// Accepted for Calico compatibility; IPAM does not see namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_uses: Option<Vec<AllowedUse>>,
    #[serde(default)]
    pub assignment_mode: AssignmentMode,
}

/// A pool that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    pub cidr: IpNet,
    pub block_size: u8,
    pub ipip_mode: EncapMode,
    pub vxlan_mode: EncapMode,
    pub nat_outgoing: bool,
    pub disabled: bool,
    pub disable_bgp_export: bool,
    pub node_selector: Selector,
    pub allowed_uses: Vec<AllowedUse>,
    pub assignment_mode: AssignmentMode,
}

/// Why a pool was refused. [`PoolError::field`] names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("IPPool is not valid JSON: {0}")]
    Json(String),
    #[error("kind: expected IPPool, got {0:?}")]
    Kind(String),
    #[error("metadata.name: {0:?} is not a valid name")]
    Name(String),
    #[error("spec.cidr: {0:?} is not a CIDR")]
    Cidr(String),
    #[error("spec.cidr: {cidr} has host bits set (did you mean {masked}?)")]
    NotMasked { cidr: String, masked: IpNet },
    #[error("spec.cidr: {cidr} overlaps link-local range {range}")]
    LinkLocal { cidr: IpNet, range: IpNet },
    #[error("spec.cidr: {cidr} overlaps pool {other} ({other_cidr})")]
    Overlap {
        cidr: IpNet,
        other: String,
        other_cidr: IpNet,
    },
    #[error("spec.blockSize: {value} is outside {min}..={max}")]
    BlockSize { value: u8, min: u8, max: u8 },
    #[error("spec.blockSize: /{block_size} blocks do not fit in pool {cidr}")]
    SmallerThanBlock { cidr: IpNet, block_size: u8 },
    #[error("spec.vxlanMode: cannot be enabled together with spec.ipipMode")]
    BothEncapsulations,
    #[error("spec.nodeSelector: {0}")]
    Selector(#[from] SelectorError),
    #[error("spec.allowedUses: must not be empty")]
    NoUses,
    #[error("{0}: cannot be changed on an existing pool")]
    Immutable(&'static str),
}

impl PoolError {
    /// The field the error is about, as a path into the resource.
    pub fn field(&self) -> &'static str {
        match self {
            PoolError::Json(_) => "",
            PoolError::Kind(_) => "kind",
            PoolError::Name(_) => "metadata.name",
            PoolError::Cidr(_)
            | PoolError::NotMasked { .. }
            | PoolError::LinkLocal { .. }
            | PoolError::Overlap { .. } => "spec.cidr",
            PoolError::BlockSize { .. } | PoolError::SmallerThanBlock { .. } => "spec.blockSize",
            PoolError::BothEncapsulations => "spec.vxlanMode",
            PoolError::Selector(_) => "spec.nodeSelector",
            PoolError::NoUses => "spec.allowedUses",
            PoolError::Immutable(field) => field,
        }
    }
}

impl IpPool {
    /// A pool resource with Calico's defaults.
    pub fn new(name: &str, cidr: &str) -> IpPool {
        IpPool {
            api_version: api_version(),
            kind: kind(),
            metadata: Metadata {
                name: name.into(),
                labels: BTreeMap::new(),
            },
            spec: IpPoolSpec {
                cidr: cidr.into(),
                ..IpPoolSpec::default()
            },
        }
    }

    pub fn from_json(bytes: &[u8]) -> Result<IpPool, PoolError> {
        serde_json::from_slice(bytes).map_err(|e| PoolError::Json(e.to_string()))
    }

    /// Validate against the other pools already stored.
    pub fn validate(&self, others: &[Pool]) -> Result<Pool, PoolError> {
        if self.kind != "IPPool" {
            return Err(PoolError::Kind(self.kind.clone()));
        }
        let name = &self.metadata.name;
        if !keys::is_segment(name) {
            return Err(PoolError::Name(name.clone()));
        }
        let s = &self.spec;
        let cidr: IpNet = s
            .cidr
            .parse()
            .map_err(|_| PoolError::Cidr(s.cidr.clone()))?;
        if cidr.trunc() != cidr {
            return Err(PoolError::NotMasked {
                cidr: s.cidr.clone(),
                masked: cidr.trunc(),
            });
        }
        let link_local: IpNet = match cidr {
            IpNet::V4(_) => IpNet::V4(ipnet::Ipv4Net::new_assert([169, 254, 0, 0].into(), 16)),
            IpNet::V6(_) => IpNet::V6(ipnet::Ipv6Net::new_assert(
                [0xfe80, 0, 0, 0, 0, 0, 0, 0].into(),
                10,
            )),
        };
        if overlaps(&cidr, &link_local) {
            return Err(PoolError::LinkLocal {
                cidr,
                range: link_local,
            });
        }
        let (min, max, default) = match cidr {
            IpNet::V4(_) => (20, 32, 26),
            IpNet::V6(_) => (116, 128, 122),
        };
        let block_size = s.block_size.unwrap_or(default);
        if !(min..=max).contains(&block_size) {
            return Err(PoolError::BlockSize {
                value: block_size,
                min,
                max,
            });
        }
        if block_size < cidr.prefix_len() {
            return Err(PoolError::SmallerThanBlock { cidr, block_size });
        }
        if s.ipip_mode != EncapMode::Never && s.vxlan_mode != EncapMode::Never {
            return Err(PoolError::BothEncapsulations);
        }
        let node_selector = Selector::parse(s.node_selector.as_deref().unwrap_or("all()"))?;
        let allowed_uses = s
            .allowed_uses
            .clone()
            .unwrap_or_else(|| vec![AllowedUse::Workload, AllowedUse::Tunnel]);
        if allowed_uses.is_empty() {
            return Err(PoolError::NoUses);
        }
        if let Some(other) = others
            .iter()
            .find(|o| o.name != *name && overlaps(&o.cidr, &cidr))
        {
            return Err(PoolError::Overlap {
                cidr,
                other: other.name.clone(),
                other_cidr: other.cidr,
            });
        }
        Ok(Pool {
            name: name.clone(),
            cidr,
            block_size,
            ipip_mode: s.ipip_mode,
            vxlan_mode: s.vxlan_mode,
            nat_outgoing: s.nat_outgoing,
            disabled: s.disabled,
            disable_bgp_export: s.disable_bgp_export,
            node_selector,
            allowed_uses,
            assignment_mode: s.assignment_mode,
        })
    }
}

pub(crate) fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// `base + offset` in `base`'s family. Callers keep the offset inside a
/// network they hold, so the V4 conversion cannot truncate.
pub(crate) fn offset_ip(base: IpAddr, offset: u128) -> IpAddr {
    let n = to_u128(base).wrapping_add(offset);
    match base {
        IpAddr::V4(_) => IpAddr::V4(u32::try_from(n).unwrap_or(u32::MAX).into()),
        IpAddr::V6(_) => IpAddr::V6(n.into()),
    }
}

impl Pool {
    pub fn family(&self) -> Family {
        Family::of(&self.cidr)
    }

    fn block_span(&self) -> u128 {
        1u128 << (self.cidr.max_prefix_len() - self.block_size)
    }

    /// How many blocks the pool holds (saturating for huge IPv6 pools).
    pub fn block_count(&self) -> u128 {
        let bits = u32::from(self.block_size - self.cidr.prefix_len());
        1u128.checked_shl(bits).unwrap_or(u128::MAX)
    }

    /// The `index`-th block of the pool (`index < block_count()`).
    pub fn block_at(&self, index: u128) -> IpNet {
        let start = offset_ip(self.cidr.network(), index.wrapping_mul(self.block_span()));
        IpNet::new(start, self.block_size).unwrap_or(self.cidr)
    }

    /// The block of this pool that holds `ip`, if the pool holds it.
    pub fn block_for(&self, ip: IpAddr) -> Option<IpNet> {
        if !self.cidr.contains(&ip) {
            return None;
        }
        IpNet::new(ip, self.block_size).ok().map(|n| n.trunc())
    }

    /// Whether auto-assign may use this pool for `node` and `usage`.
    pub fn usable(&self, labels: &BTreeMap<String, String>, usage: AllowedUse) -> bool {
        !self.disabled
            && self.assignment_mode == AssignmentMode::Automatic
            && self.allowed_uses.contains(&usage)
            && self.node_selector.matches(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(cidr: &str) -> IpPool {
        IpPool::new("p", cidr)
    }

    #[test]
    fn defaults_follow_calico() {
        let p = pool("10.0.0.0/16").validate(&[]).unwrap();
        assert_eq!(
            (p.block_size, p.ipip_mode, p.block_count()),
            (26, EncapMode::Never, 1024)
        );
        assert_eq!(p.allowed_uses, [AllowedUse::Workload, AllowedUse::Tunnel]);
        assert_eq!(p.block_at(1).to_string(), "10.0.0.64/26");
        assert_eq!(
            p.block_for("10.0.3.77".parse().unwrap())
                .unwrap()
                .to_string(),
            "10.0.3.64/26"
        );
        let p6 = pool("fd00::/112").validate(&[]).unwrap();
        assert_eq!(
            (p6.block_size, p6.block_at(2).to_string().as_str()),
            (122, "fd00::80/122")
        );
    }

    #[test]
    fn calico_manifest_spec_parses_unchanged() {
        let json = br#"{"apiVersion":"projectcalico.org/v3","kind":"IPPool",
            "metadata":{"name":"default-ipv4-ippool"},
            "spec":{"cidr":"192.168.0.0/16","blockSize":24,"ipipMode":"CrossSubnet",
            "vxlanMode":"Never","natOutgoing":true,"disableBGPExport":true,
            "nodeSelector":"rack == 'r1'","allowedUses":["Workload"]}}"#;
        let p = IpPool::from_json(json).unwrap().validate(&[]).unwrap();
        assert_eq!(
            (p.block_size, p.ipip_mode, p.nat_outgoing),
            (24, EncapMode::CrossSubnet, true)
        );
        assert!(p.disable_bgp_export);
        // round trip keeps the Calico field names
        let back = serde_json::to_string(&IpPool::from_json(json).unwrap()).unwrap();
        assert!(back.contains("\"disableBGPExport\":true") && back.contains("\"blockSize\":24"));
    }

    #[test]
    fn each_invalid_pool_names_its_field() {
        let other = pool("10.1.0.0/16").validate(&[]).unwrap();
        let other = Pool {
            name: "other".into(),
            ..other
        };
        let cases: Vec<(IpPool, &str)> = vec![
            (pool("10.0.0.1/16"), "spec.cidr"),
            (pool("nonsense"), "spec.cidr"),
            (pool("169.254.0.0/20"), "spec.cidr"),
            (pool("fe80::/64"), "spec.cidr"),
            (pool("10.1.128.0/17"), "spec.cidr"),
            (pool("10.0.0.0/28"), "spec.blockSize"),
            (IpPool::new("a/b", "10.0.0.0/16"), "metadata.name"),
            (
                IpPool {
                    spec: IpPoolSpec {
                        block_size: Some(19),
                        ..pool("10.0.0.0/8").spec
                    },
                    ..pool("10.0.0.0/8")
                },
                "spec.blockSize",
            ),
            (
                IpPool {
                    spec: IpPoolSpec {
                        block_size: Some(115),
                        ..pool("fd00::/64").spec
                    },
                    ..pool("x")
                },
                "spec.blockSize",
            ),
            (
                IpPool {
                    spec: IpPoolSpec {
                        ipip_mode: EncapMode::Always,
                        vxlan_mode: EncapMode::Always,
                        ..pool("10.0.0.0/16").spec
                    },
                    ..pool("x")
                },
                "spec.vxlanMode",
            ),
            (
                IpPool {
                    spec: IpPoolSpec {
                        node_selector: Some("a ==".into()),
                        ..pool("10.0.0.0/16").spec
                    },
                    ..pool("x")
                },
                "spec.nodeSelector",
            ),
            (
                IpPool {
                    spec: IpPoolSpec {
                        allowed_uses: Some(vec![]),
                        ..pool("10.0.0.0/16").spec
                    },
                    ..pool("x")
                },
                "spec.allowedUses",
            ),
        ];
        for (p, field) in cases {
            let e = p.validate(std::slice::from_ref(&other)).unwrap_err();
            assert_eq!(e.field(), field, "{p:?} -> {e}");
            assert!(e.to_string().starts_with(field), "{e}");
        }
        let e = IpPool::from_json(
            br#"{"metadata":{"name":"x"},"spec":{"cidr":"10.0.0.0/16","blokSize":26}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("blokSize"), "{e}");
    }
}
