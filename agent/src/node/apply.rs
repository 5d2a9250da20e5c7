//! `routectl apply -f`: Calico v3 resources (YAML or JSON) into etcd.
//!
//! Accepts `apiVersion: projectcalico.org/v3` manifests as they are, and
//! tabby's own `tabby.dev/v1`. Kinds: IPPool (validated by `ipam`, which
//! names the bad field), BGPPeer, BGPConfiguration, Node and IPAMConfig
//! (`IPAMConfiguration`, name `default`), and the `<Kind>List` documents
//! `routectl get -o yaml|json` prints. Unknown fields are refused, naming
//! them, rather than silently dropped: an operator's typo must not turn
//! into a default. Server-side metadata (`resourceVersion`, `uid`, ...) and
//! `status` are ignored.
//!
//! IPPool, BGPPeer and BGPConfiguration replace what is stored, as
//! `calicoctl apply` does. A **Node is merged**, unlike calicoctl (which
//! replaces `spec`): the agent writes its own addresses, tunnel addresses
//! and MAC into its Node, and an operator applying labels or an AS number
//! must not erase them. The manifest's `metadata.labels` and `spec` are
//! applied as a JSON merge patch (RFC 7386) onto the stored Node: keys given
//! replace, keys absent are kept, a key set to `null` is removed, lists
//! (`addresses`, `orchRefs`) are replaced whole.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::node::ctl_error::CtlError;
use crate::node::kind::Kind;
use crate::resources::{
    BgpConfiguration, BgpPeer, Node, bgp_configuration_key, bgp_peer_key, node_key,
};

/// The API versions tabby accepts.
pub const API_VERSIONS: [&str; 2] = ["projectcalico.org/v3", "tabby.dev/v1"];

/// One resource from a manifest, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    IpPool(Box<ipam::IpPool>),
    BgpPeer(Box<BgpPeer>),
    BgpConfiguration(Box<BgpConfiguration>),
    /// The node as the manifest states it, and the merge patch
    /// (`metadata.labels`, `spec`) applied onto the stored one.
    Node {
        node: Box<Node>,
        patch: Value,
    },
    IpamConfig(ipam::IpamConfig),
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
    #[error(
        "document {doc}: kind {0:?} is not supported (IPPool, BGPPeer, BGPConfiguration, Node, IPAMConfiguration)",
        .kind
    )]
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
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| ApplyError::Syntax {
        doc: 1,
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    for (i, value) in docs.into_iter().enumerate() {
        let doc = i + 1;
        if value.is_null() {
            continue;
        }
        let header = header(doc, &value)?;
        if header.kind == "List" || Kind::from_list_kind(&header.kind).is_some() {
            let Some(items) = value.get("items").and_then(Value::as_array) else {
                return Err(ApplyError::Field {
                    doc,
                    kind: header.kind,
                    reason: "items: a list is required".into(),
                });
            };
            for item in items {
                out.push(parse_one(doc, item.clone())?);
            }
        } else {
            out.push(parse_one(doc, value)?);
        }
    }
    Ok(out)
}

fn header(doc: usize, value: &Value) -> Result<Header, ApplyError> {
    let header: Header = serde_json::from_value(value.clone()).map_err(|e| ApplyError::Syntax {
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
    Ok(header)
}

fn parse_one(doc: usize, value: Value) -> Result<Resource, ApplyError> {
    let header = header(doc, &value)?;
    let field = |reason: String| ApplyError::Field {
        doc,
        kind: header.kind.clone(),
        reason,
    };
    let Some(kind) = Kind::from_manifest(&header.kind) else {
        return Err(ApplyError::Kind {
            doc,
            kind: header.kind,
        });
    };
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !ipam::keys::is_segment(name) {
        return Err(field(format!(
            "metadata.name {name:?} must be non-empty, without '/' or control characters"
        )));
    }
    let bytes = serde_json::to_vec(&value).map_err(|e| field(e.to_string()))?;
    match kind {
        Kind::IpPool => {
            let pool = ipam::IpPool::from_json(&bytes).map_err(|e| field(e.to_string()))?;
            pool.validate(&[]).map_err(|e| field(e.to_string()))?;
            Ok(Resource::IpPool(Box::new(pool)))
        }
        Kind::BgpPeer => {
            let peer: BgpPeer = serde_json::from_slice(&bytes).map_err(|e| field(e.to_string()))?;
            for (name, sel) in [
                ("spec.nodeSelector", &peer.spec.node_selector),
                ("spec.peerSelector", &peer.spec.peer_selector),
            ] {
                if let Some(sel) = sel {
                    ipam::selector::Selector::parse(sel)
                        .map_err(|e| field(format!("{name} {sel:?}: {e}")))?;
                }
            }
            match (&peer.spec.peer_selector, peer.spec.peer_ip.is_empty()) {
                (Some(_), false) => {
                    return Err(field(
                        "spec.peerIP and spec.peerSelector: give one, not both".into(),
                    ));
                }
                (Some(_), true) => {}
                (None, _) => {
                    peer.spec.peer_ip.parse::<IpAddr>().map_err(|_| {
                        field(format!(
                            "spec.peerIP {:?} is not an IP address",
                            peer.spec.peer_ip
                        ))
                    })?;
                }
            }
            if peer.spec.node.is_some() && peer.spec.node_selector.is_some() {
                return Err(field(
                    "spec.node and spec.nodeSelector: give one, not both".into(),
                ));
            }
            if peer.spec.as_number == 0 {
                return Err(field("spec.asNumber must be 1..=4294967295".into()));
            }
            Ok(Resource::BgpPeer(Box::new(peer)))
        }
        Kind::BgpConfiguration => {
            let config: BgpConfiguration =
                serde_json::from_slice(&bytes).map_err(|e| field(e.to_string()))?;
            if config.spec.as_number == Some(0) {
                return Err(field("spec.asNumber must be 1..=4294967295".into()));
            }
            Ok(Resource::BgpConfiguration(Box::new(config)))
        }
        Kind::Node => parse_node(&value).map_err(field),
        Kind::IpamConfig => {
            if name != "default" {
                return Err(field(format!(
                    "metadata.name {name:?}: the only IPAMConfiguration is \"default\""
                )));
            }
            let spec = value
                .get("spec")
                .cloned()
                .unwrap_or(Value::Object(Map::new()));
            let bytes = serde_json::to_vec(&spec).map_err(|e| field(e.to_string()))?;
            let config =
                ipam::IpamConfig::from_json(&bytes).map_err(|e| field(format!("spec: {e}")))?;
            Ok(Resource::IpamConfig(config))
        }
    }
}

/// A Node manifest: strict on `spec` (Node itself ignores unknown fields on
/// read, so the agent and plugin may grow first; an operator's manifest may
/// not), and the merge patch it makes.
fn parse_node(value: &Value) -> Result<Resource, String> {
    for key in value.as_object().map(Map::keys).into_iter().flatten() {
        if !["apiVersion", "kind", "metadata", "spec", "status"].contains(&key.as_str()) {
            return Err(format!("unknown field `{key}`"));
        }
    }
    let stripped = without_nulls(value);
    let node: Node = serde_json::from_value(stripped.clone()).map_err(|e| e.to_string())?;
    let read_back = serde_json::to_value(&node.spec).map_err(|e| e.to_string())?;
    if let Some(spec) = stripped.get("spec")
        && let Some(path) = unknown_field("spec", spec, &read_back)
    {
        return Err(format!("unknown field `{path}`"));
    }
    if let Some(bgp) = &node.spec.bgp {
        for (path, addr) in [
            ("spec.bgp.ipv4Address", &bgp.ipv4_address),
            ("spec.bgp.ipv6Address", &bgp.ipv6_address),
        ] {
            if let Some(a) = addr
                && a.parse::<IpNet>().is_err()
                && a.parse::<IpAddr>().is_err()
            {
                return Err(format!("{path} {a:?} is not an address (ip/len)"));
            }
        }
        if bgp.as_number == Some(0) {
            return Err("spec.bgp.asNumber must be 1..=4294967295".into());
        }
    }
    let mut patch = Map::new();
    if let Some(labels) = value.pointer("/metadata/labels") {
        patch.insert(
            "metadata".into(),
            Value::Object(Map::from_iter([("labels".to_string(), labels.clone())])),
        );
    }
    if let Some(spec) = value.get("spec") {
        patch.insert("spec".into(), spec.clone());
    }
    Ok(Resource::Node {
        node: Box::new(node),
        patch: Value::Object(patch),
    })
}

/// `value` with every `null` member removed (they are merge-patch deletes).
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// The first member of `given` that did not survive parsing into `parsed`
/// (an empty list or map may be dropped as a default).
fn unknown_field(path: &str, given: &Value, parsed: &Value) -> Option<String> {
    match (given, parsed) {
        (Value::Object(g), Value::Object(p)) => g.iter().find_map(|(k, v)| {
            let here = format!("{path}.{k}");
            match p.get(k) {
                Some(pv) => unknown_field(&here, v, pv),
                None if is_empty(v) => None,
                None => Some(here),
            }
        }),
        (Value::Array(g), Value::Array(p)) => g
            .iter()
            .zip(p)
            .enumerate()
            .find_map(|(i, (gv, pv))| unknown_field(&format!("{path}[{i}]"), gv, pv)),
        _ => None,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// RFC 7386 JSON merge patch: `patch` onto `target`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Store `resources`: pools through IPAM (overlap and immutability checks),
/// the IPAM config through IPAM (its cross-field rules), the others under
/// their keys, each write conditioned on the revision read. Returns one
/// line per resource.
pub async fn apply<S: ipam::Datastore>(
    ipam: &ipam::Ipam<S>,
    resources: &[Resource],
) -> Result<Vec<String>, CtlError> {
    let mut done = Vec::new();
    for r in resources {
        let name = match r {
            Resource::IpPool(pool) => {
                ipam.apply_pool(pool).await?;
                format!("IPPool {}", pool.metadata.name)
            }
            Resource::BgpPeer(peer) => {
                let what = format!("BGPPeer {}", peer.metadata.name);
                let value = serde_json::to_vec(peer).map_err(|e| CtlError::corrupt(&what, e))?;
                replace(
                    ipam.store(),
                    &bgp_peer_key(&peer.metadata.name),
                    value,
                    &what,
                )
                .await?;
                what
            }
            Resource::BgpConfiguration(config) => {
                let what = format!("BGPConfiguration {}", config.metadata.name);
                let value = serde_json::to_vec(config).map_err(|e| CtlError::corrupt(&what, e))?;
                let key = bgp_configuration_key(&config.metadata.name);
                replace(ipam.store(), &key, value, &what).await?;
                what
            }
            Resource::Node { node, patch } => {
                apply_node(ipam.store(), node, patch).await?;
                format!("Node {}", node.metadata.name)
            }
            Resource::IpamConfig(config) => {
                ipam.set_config(*config).await?;
                "IPAMConfiguration default".to_string()
            }
        };
        done.push(format!("{name} applied"));
    }
    Ok(done)
}

/// Put `value` at `key`, if nobody wrote it since it was read.
async fn replace<S: ipam::Datastore>(
    store: &S,
    key: &str,
    value: Vec<u8>,
    what: &str,
) -> Result<(), CtlError> {
    let current = store.get(key).await?;
    let outcome = match &current {
        Some(kv) => store.update(key, value, kv.mod_revision).await?,
        None => store.create(key, value).await?,
    };
    match outcome {
        ipam::store::TxnOutcome::Committed { .. } => Ok(()),
        _ => Err(CtlError::Conflict { what: what.into() }),
    }
}

/// Merge the manifest into the stored Node (see the module docs), keeping
/// every field the agent wrote, known to this version or not.
async fn apply_node<S: ipam::Datastore>(
    store: &S,
    node: &Node,
    patch: &Value,
) -> Result<(), CtlError> {
    let key = node_key(&node.metadata.name);
    let what = format!("Node {}", node.metadata.name);
    let current = store.get(&key).await?;
    let merged = match &current {
        Some(kv) => {
            let mut stored: Value =
                serde_json::from_slice(&kv.value).map_err(|e| CtlError::corrupt(&key, e))?;
            merge_patch(&mut stored, patch);
            // What the agents read must still be a Node.
            serde_json::from_value::<Node>(stored.clone())
                .map_err(|e| CtlError::corrupt(&key, format!("after the merge: {e}")))?;
            stored
        }
        None => serde_json::to_value(node).map_err(|e| CtlError::corrupt(&key, e))?,
    };
    let value = serde_json::to_vec(&merged).map_err(|e| CtlError::corrupt(&key, e))?;
    let outcome = match &current {
        Some(kv) => store.update(&key, value, kv.mod_revision).await?,
        None => store.create(&key, value).await?,
    };
    match outcome {
        ipam::store::TxnOutcome::Committed { .. } => Ok(()),
        _ => Err(CtlError::Conflict { what }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipam::Datastore;

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
    fn reflector_peers_take_selectors_instead_of_an_address() {
        let rr = "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: rr\nspec:\n  nodeSelector: all()\n  peerSelector: route-reflector == 'true'\n  asNumber: 64512\n";
        assert!(
            matches!(&parse(rr).unwrap()[0], Resource::BgpPeer(p) if p.spec.peer_selector.is_some())
        );
        let both = rr.replace("  asNumber", "  peerIP: 10.0.0.1\n  asNumber");
        assert!(
            parse(&both)
                .unwrap_err()
                .to_string()
                .contains("spec.peerSelector")
        );
        let bad = rr.replace("route-reflector == 'true'", "route-reflector ==");
        assert!(
            parse(&bad)
                .unwrap_err()
                .to_string()
                .contains("spec.peerSelector")
        );
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

    const MORE: &str = "apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  nodeToNodeMeshEnabled: false
  asNumber: 64513
---
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: n1
  labels:
    rack: r1
    old: null
spec:
  bgp:
    asNumber: 65001
---
apiVersion: projectcalico.org/v3
kind: IPAMConfiguration
metadata:
  name: default
spec:
  strictAffinity: true
  maxBlocksPerHost: 4
";

    #[test]
    fn bgp_configuration_node_and_ipam_config_parse_and_refuse_by_field() {
        let r = parse(MORE).unwrap();
        assert!(matches!(&r[0], Resource::BgpConfiguration(c) if !c.mesh_enabled()));
        assert!(matches!(&r[1], Resource::Node { node, .. }
            if node.metadata.labels.get("rack").map(String::as_str) == Some("r1")));
        assert!(matches!(&r[2], Resource::IpamConfig(c)
            if c.strict_affinity && c.max_blocks_per_host == 4 && c.auto_allocate_blocks));
        for (typo, field, doc) in [
            (
                "nodeToNodeMeshEnabled",
                "nodeToNodeMeshEnabld",
                "document 1",
            ),
            ("    asNumber: 65001", "    asNumbr: 65001", "document 2"),
            ("strictAffinity", "strictAfinity", "document 3"),
        ] {
            let bad = MORE.replace(typo, field);
            let e = parse(&bad).unwrap_err().to_string();
            let named = field.trim().split(':').next().unwrap_or_default();
            assert!(e.contains(named) && e.contains(doc), "{e}");
        }
        let e = parse(&MORE.replace("  strictAffinity: true\n", ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("spec.maxBlocksPerHost"), "{e}");
        let e = parse(&MORE.replace("asNumber: 65001", "asNumber: 0"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("spec.bgp.asNumber"), "{e}");
        let e = parse(&MORE.replace("name: n1", "name: a/b"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("metadata.name"), "{e}");
        let ipam_name = MORE.replace(
            "kind: IPAMConfiguration\nmetadata:\n  name: default",
            "kind: IPAMConfig\nmetadata:\n  name: other",
        );
        let e = parse(&ipam_name).unwrap_err().to_string();
        assert!(
            e.contains("metadata.name") && e.contains("document 3"),
            "{e}"
        );
    }

    #[test]
    fn a_node_is_merged_keeping_what_the_agent_wrote() {
        let r = parse(MORE).unwrap();
        let Resource::Node { patch, .. } = &r[1] else {
            panic!("{r:?}");
        };
        let mut stored = serde_json::json!({
            "apiVersion": "projectcalico.org/v3", "kind": "Node",
            "metadata": {"name": "n1", "labels": {"zone": "a", "old": "x"}},
            "spec": {"bgp": {"ipv4Address": "192.0.2.11/24"},
                     "vxlanTunnelMACAddr": "66:00:00:00:00:01"},
            "status": {"written": "by the agent"}
        });
        merge_patch(&mut stored, patch);
        assert_eq!(
            stored["metadata"]["labels"],
            serde_json::json!({"zone": "a", "rack": "r1"})
        );
        assert_eq!(stored["spec"]["bgp"]["ipv4Address"], "192.0.2.11/24");
        assert_eq!(stored["spec"]["bgp"]["asNumber"], 65001);
        assert_eq!(stored["spec"]["vxlanTunnelMACAddr"], "66:00:00:00:00:01");
        assert_eq!(stored["status"]["written"], "by the agent");
    }

    #[test]
    fn apply_stores_every_kind_in_memory() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let ipam = ipam::Ipam::new(ipam::MemoryStore::new());
            let mut all = parse(CALICO).unwrap();
            all.extend(parse(MORE).unwrap());
            let lines = apply(&ipam, &all).await.unwrap();
            assert_eq!(lines.len(), 5, "{lines:?}");
            assert!(lines.iter().all(|l| l.ends_with(" applied")), "{lines:?}");
            assert!(ipam.config().await.unwrap().strict_affinity);
            let kv = ipam.store().get(&node_key("n1")).await.unwrap().unwrap();
            let node = Node::from_json(&kv.value).unwrap();
            assert_eq!(node.spec.bgp.and_then(|b| b.as_number), Some(65001));
            // Applying again is idempotent.
            assert_eq!(apply(&ipam, &all).await.unwrap().len(), 5);
        });
    }
}
