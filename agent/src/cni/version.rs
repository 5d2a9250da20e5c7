//! CNI specification versions: which ones tabby speaks, and what each
//! allows (GC and STATUS exist from 1.1.0; results before 1.0.0 carry
//! `ips[].version`).

use super::error::CniError;

/// Every version tabby accepts, oldest first (what VERSION reports).
pub const SUPPORTED: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The newest version, used when the runtime does not say.
pub const LATEST: &str = "1.1.0";

/// A supported CNI version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CniVersion {
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

impl CniVersion {
    /// Parse a `cniVersion`; an unsupported one is error code 1.
    pub fn parse(s: &str) -> Result<CniVersion, CniError> {
        Ok(match s {
            "0.3.0" => CniVersion::V0_3_0,
            "0.3.1" => CniVersion::V0_3_1,
            "0.4.0" => CniVersion::V0_4_0,
            "1.0.0" => CniVersion::V1_0_0,
            "1.1.0" => CniVersion::V1_1_0,
            other => {
                return Err(CniError::IncompatibleVersion {
                    version: other.to_string(),
                    supported: SUPPORTED,
                });
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V0_3_0 => "0.3.0",
            CniVersion::V0_3_1 => "0.3.1",
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }

    /// Whether GC and STATUS may be called (spec 1.1.0).
    pub fn has_gc_and_status(self) -> bool {
        self >= CniVersion::V1_1_0
    }

    /// Whether results carry `ips[].version` (dropped in 1.0.0).
    pub fn ips_carry_version(self) -> bool {
        self < CniVersion::V1_0_0
    }

    /// Whether results may carry `interfaces[].mtu` (added in 1.1.0).
    pub fn interfaces_carry_mtu(self) -> bool {
        self >= CniVersion::V1_1_0
    }
}

/// The VERSION answer for a config that asked in `version`.
pub fn version_answer(version: &str) -> serde_json::Value {
    serde_json::json!({"cniVersion": version, "supportedVersions": SUPPORTED})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_supported_and_refuses_the_rest_with_code_1() {
        for v in SUPPORTED {
            assert_eq!(CniVersion::parse(v).unwrap().as_str(), *v);
        }
        for bad in ["0.2.0", "1.2.0", "", "1.0"] {
            assert_eq!(CniVersion::parse(bad).unwrap_err().code(), 1, "{bad}");
        }
        assert!(CniVersion::V1_1_0.has_gc_and_status());
        assert!(!CniVersion::V1_0_0.has_gc_and_status());
        assert!(CniVersion::V0_4_0.ips_carry_version());
    }
}
