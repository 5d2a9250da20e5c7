//! Names of workload (pod) interfaces on the host.
//!
//! Calico names the host side of a pod's veth pair `cali` followed by the
//! first 11 hex digits of `sha1("<namespace>.<pod>")`, so the name is stable
//! across CNI ADD retries and fits the kernel's 15-byte `IFNAMSIZ` limit.
//! tabby keeps that scheme so operators' tooling and habits carry over.

use sha1::{Digest, Sha1};

/// The interface-name prefix Calico uses, and tabby's default.
pub const DEFAULT_PREFIX: &str = "cali";

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// Host-side interface name for the pod `namespace/pod`.
///
/// The result is `prefix` followed by as many hex digits of
/// sha1("namespace.pod") as fit in [`MAX_IFNAME_LEN`] (11 for `cali`).
pub fn host_interface_name(prefix: &str, namespace: &str, pod: &str) -> String {
    let digest = Sha1::digest(format!("{namespace}.{pod}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let room = MAX_IFNAME_LEN.saturating_sub(prefix.len());
    let mut name = String::with_capacity(MAX_IFNAME_LEN);
    name.push_str(prefix);
    name.push_str(&hex[..room.min(hex.len())]);
    name
}

/// Whether `ifindex` is a workload interface (its name starts with
/// `prefix`) in the calling process's namespace, read from /sys/class/net.
pub fn is_workload_interface(ifindex: u32, prefix: &str) -> bool {
    // /sys/class/net is right here: the agent runs in its node's namespace
    // with its own /sys (as under `ip netns exec` or in a pod).
    std::fs::read_dir("/sys/class/net")
        .map(|dir| {
            dir.filter_map(|e| e.ok()).any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with(prefix)
                    && std::fs::read_to_string(e.path().join("ifindex"))
                        .is_ok_and(|i| i.trim().parse::<u32>().ok() == Some(ifindex))
            })
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_calico_scheme() {
        // `printf default.nginx | sha1sum` = c440f455693b69cd...
        let name = host_interface_name(DEFAULT_PREFIX, "default", "nginx");
        assert_eq!(name, "calic440f455693");
    }

    #[test]
    fn stable_and_distinct() {
        let a = host_interface_name("cali", "ns", "a");
        assert_eq!(a, host_interface_name("cali", "ns", "a"));
        assert_ne!(a, host_interface_name("cali", "ns", "b"));
    }

    #[test]
    fn other_prefix_still_fills_ifnamsiz() {
        let name = host_interface_name("tabby", "default", "nginx");
        assert_eq!(name, "tabbyc440f45569");
    }
}
