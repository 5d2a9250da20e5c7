//! The resource kinds `routectl apply|get|delete` know, and the names an
//! operator may call them by: like `calicoctl`, case-insensitive, singular
//! or plural, with the usual short forms.

use std::fmt;
use std::str::FromStr;

/// A kind of datastore resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    IpPool,
    BgpPeer,
    BgpConfiguration,
    Node,
    IpamConfig,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::IpPool,
        Kind::BgpPeer,
        Kind::BgpConfiguration,
        Kind::Node,
        Kind::IpamConfig,
    ];

    /// The `kind:` written in manifests and in `get` output.
    pub fn manifest_kind(self) -> &'static str {
        match self {
            Kind::IpPool => "IPPool",
            Kind::BgpPeer => "BGPPeer",
            Kind::BgpConfiguration => "BGPConfiguration",
            Kind::Node => "Node",
            Kind::IpamConfig => "IPAMConfiguration",
        }
    }

    /// The kind named by a manifest's `kind:` (exact, as Calico spells it;
    /// `IPAMConfig` is accepted beside Calico's `IPAMConfiguration`).
    pub fn from_manifest(kind: &str) -> Option<Kind> {
        match kind {
            "IPPool" => Some(Kind::IpPool),
            "BGPPeer" => Some(Kind::BgpPeer),
            "BGPConfiguration" => Some(Kind::BgpConfiguration),
            "Node" => Some(Kind::Node),
            "IPAMConfiguration" | "IPAMConfig" => Some(Kind::IpamConfig),
            _ => None,
        }
    }

    /// The kind of a `get` list (`IPPoolList`), which `apply` reads back.
    pub fn from_list_kind(kind: &str) -> Option<Kind> {
        kind.strip_suffix("List").and_then(Kind::from_manifest)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.manifest_kind())
    }
}

/// A kind name `routectl` does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown resource kind {0:?} (ippool, bgppeer, bgpconfiguration, node, ipamconfig; singular or plural)"
)]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Kind, UnknownKind> {
        let kind = match s.to_ascii_lowercase().as_str() {
            "ippool" | "ippools" | "ipp" | "ipps" | "pool" | "pools" => Kind::IpPool,
            "bgppeer" | "bgppeers" | "bgpp" | "bgpps" | "bp" | "bps" => Kind::BgpPeer,
            "bgpconfiguration" | "bgpconfigurations" | "bgpconfig" | "bgpconfigs" | "bgpc" => {
                Kind::BgpConfiguration
            }
            "node" | "nodes" | "no" | "nos" => Kind::Node,
            "ipamconfig" | "ipamconfigs" | "ipamconfiguration" | "ipamconfigurations" => {
                Kind::IpamConfig
            }
            _ => return Err(UnknownKind(s.into())),
        };
        Ok(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_singular_or_plural() {
        assert_eq!("IPPools".parse(), Ok(Kind::IpPool));
        assert_eq!("ippool".parse(), Ok(Kind::IpPool));
        assert_eq!("BGPPeer".parse(), Ok(Kind::BgpPeer));
        assert_eq!("bgpconfigurations".parse(), Ok(Kind::BgpConfiguration));
        assert_eq!("Nodes".parse(), Ok(Kind::Node));
        assert_eq!("ipamConfiguration".parse(), Ok(Kind::IpamConfig));
        assert!("felixconfig".parse::<Kind>().is_err());
        for k in Kind::ALL {
            assert_eq!(Kind::from_manifest(k.manifest_kind()), Some(k));
            assert_eq!(
                Kind::from_list_kind(&format!("{}List", k.manifest_kind())),
                Some(k)
            );
            assert_eq!(k.manifest_kind().parse(), Ok(k));
        }
    }
}
