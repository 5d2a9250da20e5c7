//! `IPAMConfig`: cluster-wide allocation settings, stored at
//! [`keys::CONFIG`](crate::keys::CONFIG). A missing key means the defaults.

use serde::{Deserialize, Serialize};

/// Calico's default cap on blocks per host when `maxBlocksPerHost` is 0
/// (libcalico-go `ipam.go`).
pub const DEFAULT_MAX_BLOCKS_PER_HOST: u32 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpamConfig {
    /// Never borrow addresses from other nodes' blocks.
    #[serde(default)]
    pub strict_affinity: bool,
    /// Claim new blocks when the affine ones are full.
    #[serde(default = "yes")]
    pub auto_allocate_blocks: bool,
    /// 0 = Calico's default of 20.
    #[serde(default)]
    pub max_blocks_per_host: u32,
}

fn yes() -> bool {
    true
}

impl Default for IpamConfig {
    fn default() -> IpamConfig {
        IpamConfig {
            strict_affinity: false,
            auto_allocate_blocks: true,
            max_blocks_per_host: 0,
        }
    }
}

/// A refused `IPAMConfig`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("IPAMConfig is not valid JSON: {0}")]
    Json(String),
    #[error("spec.autoAllocateBlocks: cannot be false while spec.strictAffinity is false")]
    NoBlocksNoBorrowing,
    #[error("spec.maxBlocksPerHost: a limit requires spec.strictAffinity=true")]
    LimitWithoutStrictAffinity,
}

impl IpamConfig {
    pub fn from_json(bytes: &[u8]) -> Result<IpamConfig, ConfigError> {
        let c: IpamConfig =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;
        c.validate()
    }

    /// Calico's cross-field rules (ipam-core-library.md, IPAMConfig).
    pub fn validate(self) -> Result<IpamConfig, ConfigError> {
        if !self.strict_affinity && !self.auto_allocate_blocks {
            return Err(ConfigError::NoBlocksNoBorrowing);
        }
        if self.max_blocks_per_host > 0 && !self.strict_affinity {
            return Err(ConfigError::LimitWithoutStrictAffinity);
        }
        Ok(self)
    }

    /// The effective cap on affine blocks per host.
    pub fn block_limit(&self) -> u32 {
        match self.max_blocks_per_host {
            0 => DEFAULT_MAX_BLOCKS_PER_HOST,
            n => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_cross_field_rules() {
        let c = IpamConfig::from_json(b"{}").unwrap();
        assert_eq!(c, IpamConfig::default());
        assert_eq!(c.block_limit(), 20);
        let c = IpamConfig::from_json(br#"{"strictAffinity":true,"maxBlocksPerHost":4}"#).unwrap();
        assert_eq!(c.block_limit(), 4);
        assert_eq!(
            IpamConfig::from_json(br#"{"autoAllocateBlocks":false}"#),
            Err(ConfigError::NoBlocksNoBorrowing)
        );
        assert_eq!(
            IpamConfig::from_json(br#"{"maxBlocksPerHost":3}"#),
            Err(ConfigError::LimitWithoutStrictAffinity)
        );
        assert!(matches!(
            IpamConfig::from_json(br#"{"strict":true}"#),
            Err(ConfigError::Json(_))
        ));
    }
}
