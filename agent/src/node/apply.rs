//! `routectl apply -f`: Calico v3 resources (YAML or JSON) into etcd.
//!
//! Accepts `apiVersion: projectcalico.org/v3` manifests as they are, and
//! tabby's own `tabby.dev/v1`. Kinds: IPPool (validated by `ipam`, which
//! names the bad field) and BGPPeer. Unknown fields are refused, naming
//! them, rather than silently dropped: an operator's typo must not turn
//! into a default.

use std::net::IpAddr;

use serde::Deserialize;

use crate::resources::{BgpPeer, bgp_peer_key};

/// The API versions tabby accepts.
pub const API_VERSIONS: [&str; 2] = ["projectcalico.org/v3", "tabby.dev/v1"];

/// One resource from a manifest, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    IpPool(Box<ipam::IpPool>),
    BgpPeer(Box<BgpPeer>),
}

/// Why a manifest is refused; every variant names what is wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApplyError {
    #[error("document {doc}: not valid YAML or JSON: {reason}")]
    Syntax { doc: usize, reason: String },
    #[error("document {doc}: apiVersion {found:?} is not one of {expected:?}")]
    ApiVersion {
        doc: usize,
        found: String,
        expected: [&'static str; 2],
    },
    #[error("document {doc}: kind {0:?} is not supported (IPPool, BGPPeer)", .kind)]
    Kind { doc: usize, kind: String },
    #[error("document {doc} ({kind}): {reason}")]
    Field {
        doc: usize,
        kind: String,
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
}

/// Parse every document of `text` (YAML, or JSON, which is YAML).
pub fn parse(text: &str) -> Result<Vec<Resource>, ApplyError> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(text).map_err(|e| ApplyError::Syntax {
            doc: 1,
            reason: e.to_string(),
        })?;
    let mut out = Vec::new();
    for (i, value) in docs.into_iter().enumerate() {
        let doc = i + 1;
        if value.is_null() {
            continue;
        }
        let header: Header =
            serde_json::from_value(value.clone()).map_err(|e| ApplyError::Syntax {
                doc,
                reason: e.to_string(),
            })?;
        if !API_VERSIONS.contains(&header.api_version.as_str()) {
            return Err(ApplyError::ApiVersion {
                doc,
                found: header.api_version,
                expected: API_VERSIONS,
            });
        }
        let field = |reason: String| ApplyError::Field {
            doc,
            kind: header.kind.clone(),
            reason,
        };
        let bytes = serde_json::to_vec(&value).map_err(|e| field(e.to_string()))?;
        match header.kind.as_str() {
            "IPPool" => {
                let pool = ipam::IpPool::from_json(&bytes).map_err(|e| field(e.to_string()))?;
                pool.validate(&[]).map_err(|e| field(e.to_string()))?;
                out.push(Resource::IpPool(Box::new(pool)));
            }
            "BGPPeer" => {
                let peer: BgpPeer =
                    serde_json::from_slice(&bytes).map_err(|e| field(e.to_string()))?;
                peer.spec.peer_ip.parse::<IpAddr>().map_err(|_| {
                    field(format!(
                        "spec.peerIP {:?} is not an IP address",
                        peer.spec.peer_ip
                    ))
                })?;
                if peer.spec.as_number == 0 {
                    return Err(field("spec.asNumber must be 1..=4294967295".into()));
                }
                out.push(Resource::BgpPeer(Box::new(peer)));
            }
            other => {
                return Err(ApplyError::Kind {
                    doc,
                    kind: other.into(),
                });
            }
        }
    }
    Ok(out)
}

/// Store `resources`: pools through IPAM (overlap and immutability checks),
/// BGPPeers under their key. Returns one line per resource.
pub async fn apply<S: ipam::Datastore>(
    ipam: &ipam::Ipam<S>,
    resources: &[Resource],
) -> Result<Vec<String>, String> {
    let mut done = Vec::new();
    for r in resources {
        match r {
            Resource::IpPool(pool) => {
                ipam.apply_pool(pool)
                    .await
                    .map_err(|e| format!("IPPool {}: {e}", pool.metadata.name))?;
                done.push(format!("IPPool {} applied", pool.metadata.name));
            }
            Resource::BgpPeer(peer) => {
                let key = bgp_peer_key(&peer.metadata.name);
                let value = serde_json::to_vec(peer).map_err(|e| e.to_string())?;
                let store = ipam.store();
                let current = store.get(&key).await.map_err(|e| e.to_string())?;
                let compares = match &current {
                    Some(kv) => vec![ipam::store::Compare::at(&key, kv.mod_revision)],
                    None => vec![ipam::store::Compare::absent(&key)],
                };
                match store
                    .txn(compares, vec![ipam::store::Op::put(&key, value)])
                    .await
                {
                    Ok(ipam::store::TxnOutcome::Committed { .. }) => {
                        done.push(format!("BGPPeer {} applied", peer.metadata.name))
                    }
                    Ok(_) => {
                        return Err(format!(
                            "BGPPeer {}: changed concurrently, try again",
                            peer.metadata.name
                        ));
                    }
                    Err(e) => return Err(format!("BGPPeer {}: {e}", peer.metadata.name)),
                }
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALICO: &str = "apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: default-ipv4-ippool
spec:
  cidr: 192.168.0.0/16
  blockSize: 26
  ipipMode: Never
  vxlanMode: CrossSubnet
  natOutgoing: true
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: tor
spec:
  peerIP: 10.200.0.50
  asNumber: 65000
";

    #[test]
    fn calico_manifests_are_accepted_as_they_are() {
        let r = parse(CALICO).unwrap();
        assert_eq!(r.len(), 2);
        assert!(matches!(&r[0], Resource::IpPool(p) if p.spec.cidr == "192.168.0.0/16"));
        assert!(matches!(&r[1], Resource::BgpPeer(p) if p.spec.as_number == 65000));
    }

    #[test]
    fn bad_input_is_refused_naming_the_field() {
        let typo = CALICO.replace("blockSize", "blokSize");
        let e = parse(&typo).unwrap_err().to_string();
        assert!(e.contains("blokSize") && e.contains("document 1"), "{e}");
        let bad_ip = CALICO.replace("10.200.0.50", "10.200.0.500");
        let e = parse(&bad_ip).unwrap_err().to_string();
        assert!(e.contains("spec.peerIP") && e.contains("document 2"), "{e}");
        let bad_cidr = CALICO.replace("192.168.0.0/16", "192.168.0.1/16");
        let e = parse(&bad_cidr).unwrap_err().to_string();
        assert!(e.contains("cidr"), "{e}");
        let e = parse("apiVersion: v1\nkind: IPPool\n").unwrap_err();
        assert!(matches!(e, ApplyError::ApiVersion { .. }), "{e}");
        let e = parse("apiVersion: projectcalico.org/v3\nkind: Felix\n").unwrap_err();
        assert!(matches!(e, ApplyError::Kind { .. }), "{e}");
        assert!(matches!(parse("a: [1, 2"), Err(ApplyError::Syntax { .. })));
        // A password tabby cannot read is refused, not dropped.
        let secret = format!(
            "{CALICO}  password:\n    secretKeyRef:\n      name: bgp-secrets\n      key: tor\n"
        );
        let e = parse(&secret).unwrap_err().to_string();
        assert!(
            e.contains("secretKeyRef") && e.contains("document 2"),
            "{e}"
        );
        let inline = format!("{CALICO}  password:\n    value: s3cret\n");
        let r = parse(&inline).unwrap();
        assert!(matches!(&r[1], Resource::BgpPeer(p)
            if p.spec.password.as_ref().and_then(|p| p.value.as_deref()) == Some("s3cret")));
    }
}
