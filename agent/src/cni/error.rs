//! The CNI plugin's error type: every failure knows the CNI error code it
//! is reported with (CNI SPEC §"Error", codes 1–11 and 50/51 are the
//! spec's, 100 and up are tabby's own).
//!
//! The plugin prints the error as JSON on **stdout** and exits 1, as the Go
//! skel and libcni's `pluginErr` expect. The text always names the field,
//! variable or resource at fault.

use ipam::IpamError;
use ipam::store::StoreError;
use serde_json::json;

/// tabby's plugin-specific codes (the spec reserves 100+ for plugins).
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO: u32 = 5;
    pub const DECODE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    /// The datastore refused a request or holds something undecodable.
    pub const DATASTORE: u32 = 100;
    /// IPAM could not allocate (no pool for the node, pools exhausted).
    pub const IPAM: u32 = 101;
    /// The kernel refused part of the pod's wiring.
    pub const DATAPLANE: u32 = 102;
    /// CHECK found the attachment different from what ADD made.
    pub const CHECK_FAILED: u32 = 103;
    /// A delegated plugin could not be run or answered nonsense.
    pub const DELEGATE: u32 = 104;
}

/// Everything that can make a CNI invocation fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CniError {
    #[error("incompatible CNI version: config is {version:?}, plugin supports {supported:?}")]
    IncompatibleVersion {
        version: String,
        supported: &'static [&'static str],
    },
    #[error("unsupported field {field}={value}: {reason}")]
    UnsupportedField {
        field: String,
        value: String,
        reason: String,
    },
    #[error("container unknown or does not exist: {0}")]
    UnknownContainer(String),
    #[error("invalid environment variable {var}: {reason}")]
    InvalidEnv { var: String, reason: String },
    #[error("{what}: {detail}")]
    Io { what: String, detail: String },
    #[error("cannot decode the network config: {0}")]
    Decode(String),
    #[error("invalid network config, {field}: {reason}")]
    InvalidConfig { field: String, reason: String },
    #[error("try again later: {0}")]
    TryAgainLater(String),
    #[error("not available: {0}")]
    NotAvailable(String),
    #[error("datastore: {0}")]
    Datastore(String),
    #[error("IPAM: {0}")]
    Ipam(String),
    #[error("dataplane: {0}")]
    Dataplane(String),
    #[error("check failed: {0}")]
    CheckFailed(String),
    /// An error a delegated plugin reported, passed on with its own code.
    #[error("{plugin}: {msg}")]
    Delegate {
        plugin: String,
        code: u32,
        msg: String,
        details: String,
    },
}

impl CniError {
    /// The CNI error code this failure is reported with.
    pub fn code(&self) -> u32 {
        match self {
            CniError::IncompatibleVersion { .. } => code::INCOMPATIBLE_VERSION,
            CniError::UnsupportedField { .. } => code::UNSUPPORTED_FIELD,
            CniError::UnknownContainer(_) => code::UNKNOWN_CONTAINER,
            CniError::InvalidEnv { .. } => code::INVALID_ENV,
            CniError::Io { .. } => code::IO,
            CniError::Decode(_) => code::DECODE,
            CniError::InvalidConfig { .. } => code::INVALID_CONFIG,
            CniError::TryAgainLater(_) => code::TRY_AGAIN_LATER,
            CniError::NotAvailable(_) => code::NOT_AVAILABLE,
            CniError::Datastore(_) => code::DATASTORE,
            CniError::Ipam(_) => code::IPAM,
            CniError::Dataplane(_) => code::DATAPLANE,
            CniError::CheckFailed(_) => code::CHECK_FAILED,
            CniError::Delegate { code, .. } => *code,
        }
    }

    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> CniError {
        CniError::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn env(var: impl Into<String>, reason: impl Into<String>) -> CniError {
        CniError::InvalidEnv {
            var: var.into(),
            reason: reason.into(),
        }
    }

    pub fn unsupported(
        field: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> CniError {
        CniError::UnsupportedField {
            field: field.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }

    pub fn dataplane(what: &str, e: impl std::fmt::Display) -> CniError {
        CniError::Dataplane(format!("{what}: {e}"))
    }

    /// The error JSON, as printed on stdout.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        match self {
            CniError::Delegate {
                code, msg, details, ..
            } => {
                let mut v = json!({"cniVersion": cni_version, "code": code, "msg": msg});
                if !details.is_empty() {
                    v["details"] = json!(details);
                }
                v
            }
            other => json!({
                "cniVersion": cni_version,
                "code": other.code(),
                "msg": other.to_string(),
            }),
        }
    }
}

impl From<StoreError> for CniError {
    fn from(e: StoreError) -> CniError {
        match e {
            StoreError::Unavailable { .. } | StoreError::Timeout { .. } => {
                CniError::TryAgainLater(e.to_string())
            }
            StoreError::Tls(_) => CniError::config("etcd_*_file", e.to_string()),
            other => CniError::Datastore(other.to_string()),
        }
    }
}

impl From<IpamError> for CniError {
    fn from(e: IpamError) -> CniError {
        match e {
            IpamError::Store(s) => s.into(),
            IpamError::Contention { .. } => CniError::TryAgainLater(e.to_string()),
            IpamError::Corrupt { .. } => CniError::Datastore(e.to_string()),
            other => CniError::Ipam(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_spec() {
        assert_eq!(CniError::Decode("x".into()).code(), 6);
        assert_eq!(CniError::config("mtu", "bad").code(), 7);
        assert_eq!(CniError::env("CNI_NETNS", "missing").code(), 4);
        assert_eq!(CniError::TryAgainLater("node".into()).code(), 11);
        let unavailable = StoreError::Unavailable {
            endpoints: "http://127.0.0.1:2379".into(),
            detail: "refused".into(),
        };
        assert_eq!(CniError::from(unavailable).code(), 11);
    }

    #[test]
    fn json_names_the_field_and_carries_the_code() {
        let v = CniError::config("ipam.assign_ipv4", "expected a boolean").to_json("1.0.0");
        assert_eq!(v["code"], 7);
        assert_eq!(v["cniVersion"], "1.0.0");
        assert!(v["msg"].as_str().unwrap().contains("ipam.assign_ipv4"));
        let d = CniError::Delegate {
            plugin: "host-local".into(),
            code: 999,
            msg: "no IP addresses available".into(),
            details: String::new(),
        };
        assert_eq!(d.to_json("1.0.0")["code"], 999);
        assert!(d.to_json("1.0.0").get("details").is_none());
    }
}
