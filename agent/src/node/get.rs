//! `routectl get <kind> [name]`: resources read from etcd, printed as a
//! table (NAME and a few key columns, like `calicoctl get`) or as JSON or
//! YAML that `routectl apply -f` takes back: one resource when a name is
//! given, else a `<Kind>List` with `items`.
//!
//! The IPAM configuration always exists: without a stored one, `get
//! ipamconfig` shows the defaults IPAM uses.

use std::fmt::Write as _;

use ipam::Datastore;
use serde_json::{Value, json};

use crate::node::ctl_error::CtlError;
use crate::node::kind::Kind;
use crate::resources::{
    API_VERSION, BGP_CONFIGURATIONS, BGP_PEERS, BgpConfiguration, BgpPeer, NODES, Node,
};

/// One stored resource, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    IpPool(Box<ipam::IpPool>),
    BgpPeer(Box<BgpPeer>),
    BgpConfiguration(Box<BgpConfiguration>),
    Node(Box<Node>),
    IpamConfig(ipam::IpamConfig),
}

/// The name the only IPAM configuration has.
pub const IPAM_CONFIG_NAME: &str = "default";

/// The prefix `kind`'s resources are stored under, and the key of `name`.
pub fn key(kind: Kind, name: &str) -> String {
    match kind {
        Kind::IpPool => ipam::keys::pool(name),
        Kind::BgpPeer => crate::resources::bgp_peer_key(name),
        Kind::BgpConfiguration => crate::resources::bgp_configuration_key(name),
        Kind::Node => crate::resources::node_key(name),
        Kind::IpamConfig => ipam::keys::CONFIG.into(),
    }
}

fn prefix(kind: Kind) -> &'static str {
    match kind {
        Kind::IpPool => ipam::keys::POOLS,
        Kind::BgpPeer => BGP_PEERS,
        Kind::BgpConfiguration => BGP_CONFIGURATIONS,
        Kind::Node => NODES,
        Kind::IpamConfig => ipam::keys::CONFIG,
    }
}

fn decode(kind: Kind, key: &str, bytes: &[u8]) -> Result<Item, CtlError> {
    let bad = |e: &dyn std::fmt::Display| CtlError::corrupt(key, e);
    Ok(match kind {
        Kind::IpPool => Item::IpPool(Box::new(
            ipam::IpPool::from_json(bytes).map_err(|e| bad(&e))?,
        )),
        Kind::BgpPeer => Item::BgpPeer(Box::new(
            serde_json::from_slice(bytes).map_err(|e| bad(&e))?,
        )),
        Kind::BgpConfiguration => Item::BgpConfiguration(Box::new(
            serde_json::from_slice(bytes).map_err(|e| bad(&e))?,
        )),
        Kind::Node => Item::Node(Box::new(Node::from_json(bytes).map_err(|e| bad(&e))?)),
        Kind::IpamConfig => {
            Item::IpamConfig(ipam::IpamConfig::from_json(bytes).map_err(|e| bad(&e))?)
        }
    })
}

/// `kind`'s resources, or only `name` ([`CtlError::NotFound`] if absent).
pub async fn fetch<S: Datastore>(
    store: &S,
    kind: Kind,
    name: Option<&str>,
) -> Result<Vec<Item>, CtlError> {
    if kind == Kind::IpamConfig {
        if name.is_some_and(|n| n != IPAM_CONFIG_NAME) {
            return Err(not_found(kind, name.unwrap_or_default()));
        }
        let config = match store.get(ipam::keys::CONFIG).await? {
            Some(kv) => decode(kind, &kv.key, &kv.value)?,
            None => Item::IpamConfig(ipam::IpamConfig::default()),
        };
        return Ok(vec![config]);
    }
    if let Some(name) = name {
        let key = key(kind, name);
        return match store.get(&key).await? {
            Some(kv) => Ok(vec![decode(kind, &key, &kv.value)?]),
            None => Err(not_found(kind, name)),
        };
    }
    let range = store.range(prefix(kind)).await?;
    range
        .kvs
        .iter()
        // One segment after the prefix: a resource, not something below it.
        .filter(|kv| {
            kv.key
                .strip_prefix(prefix(kind))
                .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
        })
        .map(|kv| decode(kind, &kv.key, &kv.value))
        .collect()
}

pub(crate) fn not_found(kind: Kind, name: &str) -> CtlError {
    CtlError::NotFound {
        kind: kind.manifest_kind(),
        name: name.into(),
    }
}

impl Item {
    /// The resource as a manifest `apply` takes back.
    pub fn manifest(&self) -> Value {
        let v = match self {
            Item::IpPool(p) => serde_json::to_value(p),
            Item::BgpPeer(p) => serde_json::to_value(p),
            Item::BgpConfiguration(c) => serde_json::to_value(c),
            Item::Node(n) => serde_json::to_value(n),
            Item::IpamConfig(c) => serde_json::to_value(c).map(|spec| {
                json!({
                    "apiVersion": API_VERSION,
                    "kind": Kind::IpamConfig.manifest_kind(),
                    "metadata": { "name": IPAM_CONFIG_NAME },
                    "spec": spec,
                })
            }),
        };
        // Plain data with string keys: serialisation cannot fail.
        v.unwrap_or(Value::Null)
    }

    /// The table cells, in [`columns`] order.
    fn row(&self) -> Vec<String> {
        let or_dash = |o: Option<String>| o.unwrap_or_else(|| "-".into());
        match self {
            Item::IpPool(p) => vec![
                p.metadata.name.clone(),
                p.spec.cidr.clone(),
                p.spec
                    .node_selector
                    .clone()
                    .unwrap_or_else(|| "all()".into()),
                format!("{:?}", p.spec.ipip_mode),
                format!("{:?}", p.spec.vxlan_mode),
                p.spec.disabled.to_string(),
            ],
            Item::BgpPeer(p) => vec![
                p.metadata.name.clone(),
                p.spec.peer_ip.clone(),
                p.spec.node.clone().unwrap_or_else(|| "(global)".into()),
                p.spec.as_number.to_string(),
            ],
            Item::BgpConfiguration(c) => vec![
                c.metadata.name.clone(),
                or_dash(c.spec.log_severity_screen.clone()),
                c.mesh_enabled().to_string(),
                or_dash(c.spec.as_number.map(|a| a.to_string())),
            ],
            Item::Node(n) => {
                let bgp = n.spec.bgp.clone().unwrap_or_default();
                vec![
                    n.metadata.name.clone(),
                    or_dash(bgp.as_number.map(|a| a.to_string())),
                    or_dash(bgp.ipv4_address),
                    or_dash(bgp.ipv6_address),
                ]
            }
            Item::IpamConfig(c) => vec![
                IPAM_CONFIG_NAME.into(),
                c.strict_affinity.to_string(),
                c.auto_allocate_blocks.to_string(),
                c.max_blocks_per_host.to_string(),
            ],
        }
    }
}

fn columns(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::IpPool => &[
            "NAME",
            "CIDR",
            "SELECTOR",
            "IPIPMODE",
            "VXLANMODE",
            "DISABLED",
        ],
        Kind::BgpPeer => &["NAME", "PEERIP", "NODE", "ASN"],
        Kind::BgpConfiguration => &["NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"],
        Kind::Node => &["NAME", "ASN", "IPV4", "IPV6"],
        Kind::IpamConfig => &[
            "NAME",
            "STRICTAFFINITY",
            "AUTOALLOCATEBLOCKS",
            "MAXBLOCKSPERHOST",
        ],
    }
}

/// The table `calicoctl get` would print: columns three spaces apart.
pub fn table(kind: Kind, items: &[Item]) -> String {
    let heads = columns(kind);
    let rows: Vec<Vec<String>> = items.iter().map(Item::row).collect();
    let widths: Vec<usize> = (0..heads.len())
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(String::len)
                .chain([heads[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let heads: Vec<String> = heads.iter().map(|h| h.to_string()).collect();
    for cells in std::iter::once(&heads).chain(&rows) {
        let mut line = String::new();
        for (c, w) in cells.iter().zip(&widths) {
            let _ = write!(line, "{c:<w$}   ");
        }
        out += line.trim_end();
        out.push('\n');
    }
    out
}

/// One resource (`single`) or a `<Kind>List`, as a JSON value.
pub fn document(kind: Kind, items: &[Item], single: bool) -> Value {
    match (single, items) {
        (true, [one]) => one.manifest(),
        _ => json!({
            "apiVersion": API_VERSION,
            "kind": format!("{}List", kind.manifest_kind()),
            "items": items.iter().map(Item::manifest).collect::<Vec<_>>(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::apply::{Resource, parse};

    fn items() -> Vec<Item> {
        let mut pool = ipam::IpPool::new("default-ipv4-ippool", "10.0.0.0/16");
        pool.spec.node_selector = Some("zone == 'a'".into());
        let peer: BgpPeer = serde_json::from_value(json!({
            "metadata": {"name": "tor"},
            "spec": {"peerIP": "10.200.0.50", "asNumber": 65000, "password": {"value": "x"}}
        }))
        .unwrap();
        let mut node = Node::new("n1");
        node.metadata.labels.insert("zone".into(), "a".into());
        vec![
            Item::IpPool(Box::new(pool)),
            Item::BgpPeer(Box::new(peer)),
            Item::Node(Box::new(node)),
        ]
    }

    #[test]
    fn json_and_yaml_output_apply_back_to_the_same_resources() {
        for item in items() {
            let kind = match &item {
                Item::IpPool(_) => Kind::IpPool,
                Item::BgpPeer(_) => Kind::BgpPeer,
                _ => Kind::Node,
            };
            for single in [true, false] {
                let doc = document(kind, std::slice::from_ref(&item), single);
                let yaml = serde_saphyr::to_string(&doc).unwrap();
                for text in [doc.to_string(), yaml] {
                    let back = parse(&text).unwrap();
                    assert_eq!(back.len(), 1, "{text}");
                    match (&back[0], &item) {
                        (Resource::IpPool(a), Item::IpPool(b)) => assert_eq!(a, b),
                        (Resource::BgpPeer(a), Item::BgpPeer(b)) => assert_eq!(a, b),
                        (Resource::Node { node, .. }, Item::Node(b)) => assert_eq!(node, b),
                        other => panic!("{other:?}"),
                    }
                }
            }
        }
        let config = ipam::IpamConfig {
            strict_affinity: true,
            auto_allocate_blocks: false,
            max_blocks_per_host: 4,
        };
        let doc = document(Kind::IpamConfig, &[Item::IpamConfig(config)], true);
        assert_eq!(
            parse(&serde_saphyr::to_string(&doc).unwrap()).unwrap(),
            vec![Resource::IpamConfig(config)]
        );
    }

    #[test]
    fn tables_show_name_and_key_columns() {
        let items = items();
        let t = table(Kind::IpPool, &items[..1]);
        let mut lines = t.lines();
        let head = lines.next().unwrap();
        assert!(head.starts_with("NAME  ") && head.contains("CIDR"), "{t}");
        let row = lines.next().unwrap();
        assert!(
            row.starts_with("default-ipv4-ippool   10.0.0.0/16   zone == 'a'"),
            "{t}"
        );
        let t = table(Kind::BgpPeer, &items[1..2]);
        assert!(t.contains("tor    10.200.0.50   (global)   65000"), "{t}");
        let t = table(
            Kind::IpamConfig,
            &[Item::IpamConfig(ipam::IpamConfig::default())],
        );
        assert!(
            t.lines().nth(1).unwrap().starts_with("default   false"),
            "{t}"
        );
    }
}
