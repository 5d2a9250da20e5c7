//! The result JSON of ADD (and the `prevResult` of later calls), with the
//! spec's field names (SPEC §"Success"): `interfaces` (the host side with
//! no `sandbox`, the pod side with `sandbox` = CNI_NETNS), `ips` (with the
//! index of their interface), `routes`, `dns`. An IPAM result is the same
//! without `interfaces` and without `ips[].interface`.
//!
//! [`CniResult::render`] writes the shape a version wants: before 1.0.0
//! every IP carries `"version": "4"|"6"`, and `interfaces[].mtu` exists
//! only from 1.1.0. Parsing accepts all of them.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::CniError;
use super::version::CniVersion;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CniResult {
    #[serde(default)]
    pub cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub dns: Dns,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The netns path for an interface inside the container; absent on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// CIDR notation: the address and its prefix (`10.0.1.5/32`).
    pub address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl CniResult {
    /// Parse a `prevResult` (or a delegated plugin's output). A result that
    /// does not fit the spec's shape is code 7 naming `field`.
    pub fn from_value(value: &Value, field: &str) -> Result<CniResult, CniError> {
        let result =
            CniResult::deserialize(value).map_err(|e| CniError::config(field, e.to_string()))?;
        if let Some(bad) = result
            .ips
            .iter()
            .filter_map(|ip| ip.interface)
            .find(|i| *i >= result.interfaces.len() && !result.interfaces.is_empty())
        {
            return Err(CniError::config(
                format!("{field}.ips[].interface"),
                format!(
                    "index {bad} is past the {} interfaces",
                    result.interfaces.len()
                ),
            ));
        }
        Ok(result)
    }

    /// The JSON for `version`.
    pub fn render(&self, version: CniVersion) -> Value {
        let mut copy = self.clone();
        copy.cni_version = version.as_str().to_string();
        if !version.interfaces_carry_mtu() {
            for i in &mut copy.interfaces {
                i.mtu = None;
            }
        }
        let mut value = serde_json::to_value(&copy).unwrap_or(Value::Null);
        if version.ips_carry_version()
            && let Some(ips) = value.get_mut("ips").and_then(Value::as_array_mut)
        {
            for (ip, conf) in ips.iter_mut().zip(&self.ips) {
                let family = if conf.address.addr().is_ipv4() {
                    "4"
                } else {
                    "6"
                };
                ip["version"] = Value::from(family);
            }
        }
        value
    }

    /// Append `other` (this plugin's part) after what an earlier plugin in
    /// the chain returned, shifting its interface indexes.
    pub fn chain(mut self, other: CniResult) -> CniResult {
        let base = self.interfaces.len();
        self.interfaces.extend(other.interfaces);
        self.ips.extend(other.ips.into_iter().map(|mut ip| {
            ip.interface = ip.interface.map(|i| i + base);
            ip
        }));
        self.routes.extend(other.routes);
        if self.dns == Dns::default() {
            self.dns = other.dns;
        }
        self
    }

    /// The addresses on interface `index`.
    pub fn ips_on(&self, index: usize) -> impl Iterator<Item = IpNet> + '_ {
        self.ips
            .iter()
            .filter(move |ip| ip.interface == Some(index))
            .map(|ip| ip.address)
    }
}

/// A MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> CniResult {
        CniResult {
            cni_version: String::new(),
            interfaces: vec![
                Interface {
                    name: "calic440f455693".into(),
                    ..Interface::default()
                },
                Interface {
                    name: "eth0".into(),
                    mac: Some("8e:d4:60:ca:14:fd".into()),
                    mtu: Some(1440),
                    sandbox: Some("/var/run/netns/cni-1".into()),
                },
            ],
            ips: vec![IpConfig {
                address: "10.0.1.5/32".parse().unwrap(),
                gateway: None,
                interface: Some(1),
            }],
            routes: vec![Route {
                dst: "0.0.0.0/0".parse().unwrap(),
                gw: None,
            }],
            dns: Dns::default(),
        }
    }

    #[test]
    fn renders_the_spec_shape_per_version() {
        let v1 = sample().render(CniVersion::V1_0_0);
        assert_eq!(
            v1,
            json!({
                "cniVersion": "1.0.0",
                "interfaces": [
                    {"name": "calic440f455693"},
                    {"name": "eth0", "mac": "8e:d4:60:ca:14:fd", "sandbox": "/var/run/netns/cni-1"}
                ],
                "ips": [{"address": "10.0.1.5/32", "interface": 1}],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dns": {}
            })
        );
        let v11 = sample().render(CniVersion::V1_1_0);
        assert_eq!(v11["interfaces"][1]["mtu"], 1440);
        let v04 = sample().render(CniVersion::V0_4_0);
        assert_eq!(v04["ips"][0]["version"], "4");
        // and every shape parses back
        for v in [v1, v11, v04] {
            let back = CniResult::from_value(&v, "prevResult").unwrap();
            assert_eq!(back.ips, sample().ips);
        }
    }

    #[test]
    fn bad_prev_results_name_the_field() {
        let e = CniResult::from_value(&json!({"ips": [{"address": "nope"}]}), "prevResult")
            .unwrap_err();
        assert_eq!(e.code(), 7);
        assert!(e.to_string().contains("prevResult"), "{e}");
        let e = CniResult::from_value(
            &json!({"interfaces": [{"name": "a"}], "ips": [{"address": "10.0.0.1/32", "interface": 3}]}),
            "prevResult",
        )
        .unwrap_err();
        assert!(e.to_string().contains("prevResult.ips[].interface"), "{e}");
    }

    #[test]
    fn chaining_shifts_interface_indexes() {
        let first = CniResult {
            interfaces: vec![Interface {
                name: "br0".into(),
                ..Interface::default()
            }],
            ..CniResult::default()
        };
        let chained = first.chain(sample());
        assert_eq!(chained.interfaces.len(), 3);
        assert_eq!(chained.ips[0].interface, Some(2));
        assert_eq!(chained.ips_on(2).count(), 1);
        assert_eq!(format_mac(&[0xee; 6]), "ee:ee:ee:ee:ee:ee");
    }
}
