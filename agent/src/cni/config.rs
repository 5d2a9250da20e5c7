//! The network configuration on stdin: one plugin object of a conflist,
//! plus the `cniVersion`, `name`, `prevResult`, `runtimeConfig` and
//! `cni.dev/valid-attachments` the runtime adds. Sans-IO: bytes in, a
//! validated [`NetConf`] or a [`CniError`] naming the bad field out.
//!
//! Field names are those of Calico's `calico` plugin entry, so an
//! operator's 10-calico.conflist (etcd flavour) works with `type` changed:
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `etcd_endpoints` | comma-separated `http(s)://` URLs (required) | |
//! | `etcd_ca_cert_file`, `etcd_cert_file`, `etcd_key_file` | TLS to etcd | none |
//! | `datastore_type` | only `etcdv3` | `etcdv3` |
//! | `nodename` | this node's name | `nodename_file`, then the hostname |
//! | `nodename_file` | file the node agent writes its name to | `/var/lib/tabby/nodename` |
//! | `mtu` | MTU of both veth ends; 0 = `mtu_file`, then 1500 | 0 |
//! | `log_level` | `error`, `warning`, `info`, `debug` | `info` |
//! | `log_file_path` | log file (stderr when absent) | none |
//! | `ipam_lock_file` | host-wide flock serialising ADD/DEL/GC | `/var/run/tabby/cni.lock` |
//! | `ipam.type` | `tabby-ipam` (in-process) or any IPAM plugin in `CNI_PATH` | required |
//! | `ipam.assign_ipv4`, `ipam.assign_ipv6` | bool or `"true"`/`"false"` | true, false |
//! | `ipam.ipv4_pools`, `ipam.ipv6_pools` | pools (names or CIDRs) to allocate from, whatever their `nodeSelector`, as Calico; each must exist, be enabled and allow workloads | all pools selecting the node |
//! | `dns` | copied into the ADD result | none |
//! | `kubernetes.kubeconfig` | read the pod's `cni.projectcalico.org/` annotations (pools, fixed addresses) with this kubeconfig; see [`super::annotations`] | not read |
//!
//! tabby's own keys: `mtu_file` (`/var/lib/tabby/mtu`), `interface_prefix`
//! (`cali`), `node_wait_seconds` (10: how long ADD waits for the node agent
//! to register the node before failing with code 11), `lock_timeout_seconds`
//! (60), `etcd_timeout_seconds` (5, per request). Unknown keys are ignored,
//! as the spec requires of plugin-defined keys.

use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::CniError;
use super::result::{Dns, Route};
use super::version::CniVersion;

/// The IPAM type served in-process by this binary.
pub const TABBY_IPAM: &str = "tabby-ipam";

/// A validated plugin configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    pub cni_version: CniVersion,
    /// The network name (part of every IPAM handle: `<name>.<containerID>`).
    pub name: String,
    pub plugin_type: String,
    pub ipam: IpamConf,
    pub etcd: EtcdConf,
    pub nodename: Option<String>,
    pub nodename_file: PathBuf,
    /// `None`: read `mtu_file`, else 1500.
    pub mtu: Option<u32>,
    pub mtu_file: PathBuf,
    pub log_level: LogLevel,
    pub log_file_path: Option<PathBuf>,
    pub lock_file: PathBuf,
    pub lock_timeout: Duration,
    pub node_wait: Duration,
    pub interface_prefix: String,
    pub dns: Dns,
    /// The previous plugin's result (ADD in a chain; DEL and CHECK).
    pub prev_result: Option<Value>,
    /// GC only: the attachments that must be kept.
    pub valid_attachments: Option<Vec<Attachment>>,
    /// `kubernetes.kubeconfig`: read the pod's annotations with it
    /// ([`super::annotations`]); `None`: annotations are not read.
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamConf {
    pub plugin_type: String,
    pub assign_ipv4: bool,
    pub assign_ipv6: bool,
    /// Routes handed out with the addresses (host-local's `ipam.routes`).
    pub routes: Vec<Route>,
    /// `ipam.ipv4_pools`: the pools (names or CIDRs) to allocate from.
    pub ipv4_pools: Vec<String>,
    /// `ipam.ipv6_pools`, likewise.
    pub ipv6_pools: Vec<String>,
}

impl IpamConf {
    /// Whether the IPAM part is served in-process.
    pub fn is_tabby(&self) -> bool {
        self.plugin_type == TABBY_IPAM
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConf {
    pub endpoints: Vec<String>,
    pub ca_cert_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warning,
    Info,
    Debug,
}

/// One entry of `cni.dev/valid-attachments`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// The `cniVersion` of a config, for commands (VERSION) and error replies
/// that need it before or without full validation.
pub fn peek_version(bytes: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    v.get("cniVersion")?.as_str().map(str::to_string)
}

/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`: network names and container IDs.
pub fn is_cni_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl NetConf {
    /// Parse and validate the stdin config. Bad JSON (or a `cniVersion` that
    /// is not a string) is code 6; a field of
    /// the wrong type or value is code 7 naming it; an unsupported version
    /// is code 1; a feature tabby does not have is code 2.
    pub fn parse(bytes: &[u8]) -> Result<NetConf, CniError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| CniError::Decode(e.to_string()))?;
        let Value::Object(obj) = value else {
            return Err(CniError::Decode("the config is not a JSON object".into()));
        };
        // A `cniVersion` that is not a string is undecodable (6), as in
        // libcni's version decoder, which reads it before anything else.
        let version = match obj.get("cniVersion") {
            Some(Value::String(v)) => v.clone(),
            Some(other) => {
                return Err(CniError::Decode(format!(
                    "cniVersion: {other} is not a version string"
                )));
            }
            None => return Err(CniError::config("cniVersion", "required")),
        };
        let cni_version = CniVersion::parse(&version)?;
        let name: String = required(&obj, "", "name")?;
        if !is_cni_name(&name) {
            return Err(CniError::config(
                "name",
                format!("{name:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"),
            ));
        }
        let plugin_type: String = required(&obj, "", "type")?;
        if plugin_type.is_empty() || plugin_type.contains('/') {
            return Err(CniError::config(
                "type",
                "must be a binary name without '/'",
            ));
        }
        if let Some(ds) = optional::<String>(&obj, "", "datastore_type")?
            && ds != "etcdv3"
        {
            return Err(CniError::unsupported(
                "datastore_type",
                ds,
                "tabby keeps its state in etcd (etcdv3) only",
            ));
        }
        let ipam = parse_ipam(&obj)?;
        let etcd = parse_etcd(&obj)?;
        let nodename = optional::<String>(&obj, "", "nodename")?.filter(|n| !n.is_empty());
        if let Some(n) = &nodename
            && !ipam::keys::is_segment(n)
        {
            return Err(CniError::config(
                "nodename",
                format!("{n:?} is not a node name"),
            ));
        }
        let mtu = match optional::<u32>(&obj, "", "mtu")? {
            None | Some(0) => None,
            Some(m @ 68..=65535) => Some(m),
            Some(m) => return Err(CniError::config("mtu", format!("{m} is not in 68..=65535"))),
        };
        let log_level = match optional::<String>(&obj, "", "log_level")?.as_deref() {
            None | Some("") => LogLevel::Info,
            Some(l) => match l.to_ascii_lowercase().as_str() {
                "error" | "fatal" | "panic" => LogLevel::Error,
                "warning" | "warn" => LogLevel::Warning,
                "info" => LogLevel::Info,
                "debug" | "trace" => LogLevel::Debug,
                _ => {
                    return Err(CniError::config(
                        "log_level",
                        format!("unknown level {l:?}"),
                    ));
                }
            },
        };
        let interface_prefix = optional::<String>(&obj, "", "interface_prefix")?
            .unwrap_or_else(|| crate::dataplane::workload::DEFAULT_PREFIX.to_string());
        if interface_prefix.is_empty() || interface_prefix.len() > 8 {
            return Err(CniError::config(
                "interface_prefix",
                "must be 1 to 8 characters",
            ));
        }
        let valid_attachments = optional(&obj, "", "cni.dev/valid-attachments")?;
        let kubeconfig = match obj.get("kubernetes") {
            None | Some(Value::Null) => None,
            Some(Value::Object(k)) => optional::<PathBuf>(k, "kubernetes.", "kubeconfig")?
                .filter(|p| !p.as_os_str().is_empty()),
            Some(_) => return Err(CniError::config("kubernetes", "must be an object")),
        };
        Ok(NetConf {
            cni_version,
            name,
            plugin_type,
            ipam,
            etcd,
            nodename,
            nodename_file: path_or(&obj, "nodename_file", "/var/lib/tabby/nodename")?,
            mtu,
            mtu_file: path_or(&obj, "mtu_file", "/var/lib/tabby/mtu")?,
            log_level,
            log_file_path: optional::<PathBuf>(&obj, "", "log_file_path")?
                .filter(|p| !p.as_os_str().is_empty()),
            lock_file: path_or(&obj, "ipam_lock_file", "/var/run/tabby/cni.lock")?,
            lock_timeout: seconds(&obj, "lock_timeout_seconds", 60)?,
            node_wait: seconds(&obj, "node_wait_seconds", 10)?,
            interface_prefix,
            dns: optional(&obj, "", "dns")?.unwrap_or_default(),
            prev_result: obj.get("prevResult").filter(|v| !v.is_null()).cloned(),
            valid_attachments,
            kubeconfig,
        })
    }

    /// GC's `cni.dev/valid-attachments` as container IDs (required for GC).
    pub fn valid_container_ids(&self) -> Result<std::collections::BTreeSet<String>, CniError> {
        Ok(self
            .valid_attachments
            .as_ref()
            .ok_or_else(|| CniError::config("cni.dev/valid-attachments", "required for GC"))?
            .iter()
            .map(|a| a.container_id.clone())
            .collect())
    }

    /// The IPAM handle of an attachment: `<network>.<containerID>`.
    pub fn handle(&self, container_id: &str) -> String {
        format!("{}.{container_id}", self.name)
    }
}

fn parse_ipam(obj: &Map<String, Value>) -> Result<IpamConf, CniError> {
    let Some(ipam) = obj.get("ipam") else {
        return Err(CniError::config("ipam", "required"));
    };
    let Value::Object(ipam) = ipam else {
        return Err(CniError::config("ipam", "must be an object"));
    };
    let plugin_type: String = required(ipam, "ipam.", "type")?;
    if plugin_type.is_empty() || plugin_type.contains('/') {
        return Err(CniError::config(
            "ipam.type",
            "must be a binary name without '/'",
        ));
    }
    let ipv4_pools = pool_list(ipam, "ipv4_pools")?;
    let ipv6_pools = pool_list(ipam, "ipv6_pools")?;
    let assign_ipv4 = flag(ipam, "assign_ipv4")?.unwrap_or(true);
    let assign_ipv6 = flag(ipam, "assign_ipv6")?.unwrap_or(false);
    if plugin_type == TABBY_IPAM && !assign_ipv4 && !assign_ipv6 {
        return Err(CniError::config(
            "ipam.assign_ipv4",
            "assign_ipv4 and assign_ipv6 are both false: nothing to allocate",
        ));
    }
    Ok(IpamConf {
        plugin_type,
        assign_ipv4,
        assign_ipv6,
        routes: optional(ipam, "ipam.", "routes")?.unwrap_or_default(),
        ipv4_pools,
        ipv6_pools,
    })
}

/// `ipam.<key>`: a list of pool names or CIDRs; whether each exists is
/// checked at allocation time, against the pools then in the datastore.
fn pool_list(ipam: &Map<String, Value>, key: &str) -> Result<Vec<String>, CniError> {
    let list = optional::<Vec<String>>(ipam, "ipam.", key)?.unwrap_or_default();
    if let Some(bad) = list.iter().find(|p| p.trim().is_empty()) {
        return Err(CniError::config(
            format!("ipam.{key}"),
            format!("{bad:?} is not a pool name or CIDR"),
        ));
    }
    Ok(list.iter().map(|p| p.trim().to_string()).collect())
}

fn parse_etcd(obj: &Map<String, Value>) -> Result<EtcdConf, CniError> {
    let list: String = required(obj, "", "etcd_endpoints")?;
    let endpoints: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect();
    if endpoints.is_empty() {
        return Err(CniError::config("etcd_endpoints", "no endpoint given"));
    }
    if let Some(bad) = endpoints
        .iter()
        .find(|e| !(e.starts_with("http://") || e.starts_with("https://")))
    {
        return Err(CniError::config(
            "etcd_endpoints",
            format!("{bad:?} is not an http:// or https:// URL"),
        ));
    }
    let file =
        |key| optional::<PathBuf>(obj, "", key).map(|p| p.filter(|p| !p.as_os_str().is_empty()));
    Ok(EtcdConf {
        endpoints,
        ca_cert_file: file("etcd_ca_cert_file")?,
        cert_file: file("etcd_cert_file")?,
        key_file: file("etcd_key_file")?,
        timeout: seconds(obj, "etcd_timeout_seconds", 5)?,
    })
}

/// `key` decoded as `T`; absent or null is `None`; a wrong type is code 7
/// naming `<prefix><key>`.
fn optional<T: DeserializeOwned>(
    obj: &Map<String, Value>,
    prefix: &str,
    key: &str,
) -> Result<Option<T>, CniError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => T::deserialize(v)
            .map(Some)
            .map_err(|e| CniError::config(format!("{prefix}{key}"), e.to_string())),
    }
}

fn required<T: DeserializeOwned>(
    obj: &Map<String, Value>,
    prefix: &str,
    key: &str,
) -> Result<T, CniError> {
    optional(obj, prefix, key)?
        .ok_or_else(|| CniError::config(format!("{prefix}{key}"), "required"))
}

fn path_or(obj: &Map<String, Value>, key: &str, default: &str) -> Result<PathBuf, CniError> {
    Ok(optional::<PathBuf>(obj, "", key)?
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(default)))
}

fn seconds(obj: &Map<String, Value>, key: &str, default: u64) -> Result<Duration, CniError> {
    match optional::<f64>(obj, "", key)? {
        None => Ok(Duration::from_secs(default)),
        Some(s) if s.is_finite() && (0.0..=3600.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(CniError::config(
            key,
            format!("{s} is not in 0..=3600 seconds"),
        )),
    }
}

/// Calico writes these flags as strings (`"assign_ipv6": "true"`); JSON
/// booleans are accepted too.
fn flag(ipam: &Map<String, Value>, key: &str) -> Result<Option<bool>, CniError> {
    match ipam.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s == "true" => Ok(Some(true)),
        Some(Value::String(s)) if s == "false" => Ok(Some(false)),
        Some(other) => Err(CniError::config(
            format!("ipam.{key}"),
            format!("{other} is not true or false"),
        )),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
