//! Per-pod address requests from Kubernetes annotations, with Calico's
//! names so existing manifests keep working:
//!
//! | annotation | on | effect |
//! |---|---|---|
//! | `cni.projectcalico.org/ipv4pools` | pod, else its namespace | JSON list of pool names or CIDRs; replaces `ipam.ipv4_pools` |
//! | `cni.projectcalico.org/ipv6pools` | pod, else its namespace | likewise for IPv6 |
//! | `cni.projectcalico.org/ipAddrs` | pod | JSON list of at most one IPv4 and one IPv6 address, assigned exactly (Calico's `AssignIP`) |
//!
//! They are read only when the conflist names a kubeconfig
//! (`kubernetes.kubeconfig`, as in Calico's conflist) and the runtime says
//! which pod this is (`K8S_POD_NAMESPACE`, `K8S_POD_NAME` in CNI_ARGS).
//! tabby-node keeps that kubeconfig current from its service account. An
//! API server that cannot be reached is code 11 (try again later): a pod
//! must not get an address from the wrong pool because of an outage. A
//! malformed annotation is code 7 naming it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::error::CniError;

pub const IPV4_POOLS: &str = "cni.projectcalico.org/ipv4pools";
pub const IPV6_POOLS: &str = "cni.projectcalico.org/ipv6pools";
pub const IP_ADDRS: &str = "cni.projectcalico.org/ipAddrs";

/// What the annotations ask for; empty when there are none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRequest {
    /// `Some`: these pools instead of `ipam.ipv4_pools`.
    pub ipv4_pools: Option<Vec<String>>,
    pub ipv6_pools: Option<Vec<String>>,
    /// Exact addresses; when set, no pool choice applies.
    pub ip_addrs: Vec<IpAddr>,
}

type Annotations = BTreeMap<String, String>;

fn list<T: serde::de::DeserializeOwned>(key: &str, text: &str) -> Result<T, CniError> {
    serde_json::from_str(text).map_err(|e| {
        CniError::config(
            format!("annotation {key}"),
            format!("{text:?} is not a JSON list of the right kind: {e}"),
        )
    })
}

/// The request the namespace's and the pod's annotations make (the pod's
/// win, as in Calico).
pub fn request(namespace: &Annotations, pod: &Annotations) -> Result<PodRequest, CniError> {
    let pools = |key: &str| -> Result<Option<Vec<String>>, CniError> {
        match pod.get(key).or_else(|| namespace.get(key)) {
            None => Ok(None),
            Some(text) => {
                let v: Vec<String> = list(key, text)?;
                if v.iter().any(|p| p.trim().is_empty()) {
                    return Err(CniError::config(
                        format!("annotation {key}"),
                        format!("{text:?} has an empty pool name"),
                    ));
                }
                Ok(Some(v))
            }
        }
    };
    let ip_addrs: Vec<IpAddr> = match pod.get(IP_ADDRS) {
        None => Vec::new(),
        Some(text) => list(IP_ADDRS, text)?,
    };
    let v4 = ip_addrs.iter().filter(|ip| ip.is_ipv4()).count();
    if v4 > 1 || ip_addrs.len() - v4 > 1 {
        return Err(CniError::config(
            format!("annotation {IP_ADDRS}"),
            "at most one IPv4 and one IPv6 address",
        ));
    }
    let out = PodRequest {
        ipv4_pools: pools(IPV4_POOLS)?,
        ipv6_pools: pools(IPV6_POOLS)?,
        ip_addrs,
    };
    if !out.ip_addrs.is_empty() && (pod.contains_key(IPV4_POOLS) || pod.contains_key(IPV6_POOLS)) {
        return Err(CniError::config(
            format!("annotation {IP_ADDRS}"),
            "cannot be combined with ipv4pools/ipv6pools on the same pod",
        ));
    }
    Ok(out)
}

/// A client from the kubeconfig file the conflist names.
pub async fn client(kubeconfig: &Path) -> Result<kube::Client, CniError> {
    let unreadable = |e: String| {
        CniError::TryAgainLater(format!(
            "kubeconfig {}: {e} (tabby-node writes it once it runs)",
            kubeconfig.display()
        ))
    };
    let file = Kubeconfig::read_from(kubeconfig).map_err(|e| unreadable(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .map_err(|e| unreadable(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| unreadable(e.to_string()))
}

fn api_error(what: &str, e: kube::Error) -> CniError {
    CniError::TryAgainLater(format!("reading {what} from Kubernetes: {e}"))
}

/// Read the pod's and its namespace's annotations and make the request.
pub async fn read(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
) -> Result<PodRequest, CniError> {
    let ns = Api::<Namespace>::all(client.clone())
        .get(namespace)
        .await
        .map_err(|e| api_error(&format!("namespace {namespace}"), e))?;
    let p = Api::<Pod>::namespaced(client.clone(), namespace)
        .get(pod)
        .await
        .map_err(|e| api_error(&format!("pod {namespace}/{pod}"), e))?;
    request(
        &ns.metadata.annotations.unwrap_or_default(),
        &p.metadata.annotations.unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(pairs: &[(&str, &str)]) -> Annotations {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_pods_pools_win_over_the_namespaces() {
        let ns = a(&[(IPV4_POOLS, r#"["ns-pool"]"#), (IPV6_POOLS, r#"["ns6"]"#)]);
        let r = request(&ns, &a(&[(IPV4_POOLS, r#"["pod-pool","10.1.0.0/16"]"#)])).unwrap();
        assert_eq!(r.ipv4_pools.unwrap(), ["pod-pool", "10.1.0.0/16"]);
        assert_eq!(r.ipv6_pools.unwrap(), ["ns6"]);
        assert_eq!(request(&a(&[]), &a(&[])).unwrap(), PodRequest::default());
    }

    #[test]
    fn fixed_addresses_are_one_per_family_and_alone() {
        let r = request(&a(&[]), &a(&[(IP_ADDRS, r#"["10.0.0.7","fd00::7"]"#)])).unwrap();
        assert_eq!(r.ip_addrs.len(), 2);
        for (bad, says) in [
            (r#"["10.0.0.7","10.0.0.8"]"#, "at most one"),
            (r#"["10.0.0.300"]"#, "not a JSON list"),
            (r#""10.0.0.7""#, "not a JSON list"),
        ] {
            let e = request(&a(&[]), &a(&[(IP_ADDRS, bad)])).unwrap_err();
            assert_eq!(e.code(), 7);
            assert!(
                e.to_string().contains(IP_ADDRS) && e.to_string().contains(says),
                "{e}"
            );
        }
        let both = a(&[(IP_ADDRS, r#"["10.0.0.7"]"#), (IPV4_POOLS, r#"["p"]"#)]);
        assert!(
            request(&a(&[]), &both)
                .unwrap_err()
                .to_string()
                .contains("combined")
        );
        let e = request(&a(&[(IPV4_POOLS, "[1]")]), &a(&[])).unwrap_err();
        assert!(e.to_string().contains(IPV4_POOLS), "{e}");
    }
}
