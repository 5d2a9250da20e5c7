//! Kubernetes, when tabby-node runs in a cluster. This module owns every
//! call to the API server:
//!
//! | module | owns |
//! |---|---|
//! | [`node`] | reading this node's Node (labels, InternalIP, podCIDRs), its `NetworkUnavailable` condition, tabby's Node annotations |
//! | [`lease`] | leader election through a `coordination.k8s.io/v1` Lease (client-go's rules, sans-IO decision) |
//! | [`gc`] | the IPAM garbage collector: live owners from the pod and node lists, two observations a grace period apart |
//!
//! Every function takes a [`kube::Client`]; in a pod it comes from the
//! service account ([`client`]), in tests from a tower-test mock service
//! (kube's mock-service pattern), which checks each request exactly.
//! Decisions (who leads, what is leaked) are plain functions with the time
//! passed in. The datastore stays etcd: Kubernetes is asked only for what
//! only it knows (the Node object, which pods and nodes exist).

pub mod gc;
pub mod lease;
pub mod node;

/// The field manager tabby's writes are recorded under.
pub const FIELD_MANAGER: &str = "tabby-node";

/// tabby's annotation prefix (Calico's is `projectcalico.org/`).
pub const ANNOTATION_PREFIX: &str = "tabby.dev/";

/// Whether this process runs in a pod (the kubelet sets
/// `KUBERNETES_SERVICE_HOST` in every container). Outside a cluster the
/// agent never talks to Kubernetes.
pub fn in_cluster() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
}

/// A client from the pod's service account (or `KUBECONFIG`, for running
/// the agent by hand against a cluster).
pub async fn client() -> Result<kube::Client, kube::Error> {
    kube::Client::try_default().await
}

/// `true` when `e` is the API server's 404.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

/// `true` when `e` is the API server's 409 (stale resourceVersion, or
/// created by someone else first).
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_conflict() || s.is_already_exists())
}
