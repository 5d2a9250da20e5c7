//! tabby-node in a cluster, end to end: a real agent in a lab namespace
//! against a stand-in API server (`harness::apiserver`, plain HTTP inside
//! the lab; no real API server can be installed here) and a real etcd.
//!
//! - `an_agent_in_a_cluster_uses_its_node_object_reports_its_condition_and_collects_leaks`:
//!   with `TABBY_KUBERNETES=on` and `IP_AUTODETECTION_METHOD=
//!   kubernetes-internal-ip` the agent takes its address from the Node's
//!   InternalIP and its labels into its Node resource (a pool whose
//!   nodeSelector needs the label gives the pod its address), annotates the
//!   Node (`tabby.dev/IPv4Address`, `tabby.dev/ASNumber`), sets
//!   `NetworkUnavailable=False/TabbyIsUp` once ready, takes the
//!   `tabby-ipam-gc` Lease, releases an allocation whose pod does not exist
//!   (and not the running pod's), and on SIGTERM sets
//!   `NetworkUnavailable=True/TabbyIsDown`.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::time::Duration;

use harness::apiserver::{ApiServer, State, node_object, pod_object};
use harness::lab::{Lab, LabOptions};
use harness::{require_live, wait_until};
use ipam::{AssignArgs, Datastore, EtcdConfig, EtcdStore, IpPool, Ipam};

const API: &str = "10.200.0.100:6443";

/// Run `f` with an IPAM client on the lab's etcd, from the etcd namespace.
fn with_ipam<T: Send + 'static, Fut: std::future::Future<Output = T>>(
    lab: &Lab,
    f: impl FnOnce(Ipam<EtcdStore>) -> Fut + Send + 'static,
) -> T {
    let endpoint = lab.etcd.endpoint();
    lab.etcd_ns
        .block_on(move || async move {
            let store = EtcdStore::connect(&EtcdConfig::new(vec![endpoint]))
                .await
                .unwrap();
            f(Ipam::new(store)).await
        })
        .unwrap()
}

fn condition_reasons(api: &ApiServer) -> Vec<String> {
    api.requests("PATCH", "/api/v1/nodes/n1/status")
        .iter()
        .map(|r| {
            r.body["status"]["conditions"][0]["reason"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn an_agent_in_a_cluster_uses_its_node_object_reports_its_condition_and_collects_leaks() {
    if !require_live(
        "an_agent_in_a_cluster_uses_its_node_object_reports_its_condition_and_collects_leaks",
        &["ip", "etcd"],
    ) {
        return;
    }
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    let env = [
        ("TABBY_KUBERNETES", "on"),
        ("KUBECONFIG", kubeconfig.path().to_str().unwrap()),
        ("IP", "autodetect"),
        ("IP_AUTODETECTION_METHOD", "kubernetes-internal-ip"),
        ("POD_NAMESPACE", "tabby-system"),
        ("TABBY_IPAM_GC_GRACE_SECONDS", "4"),
        ("NO_PROXY", "*"),
    ];
    let opts = LabOptions {
        nodes: 0,
        extra_env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..LabOptions::default()
    };
    let mut lab = Lab::start("k8s", opts).unwrap();
    let mut state = State::default();
    state.nodes.insert(
        "n1".into(),
        node_object(
            "n1",
            "10.200.0.1",
            &[("rack", "r1"), ("kubernetes.io/os", "linux")],
        ),
    );
    state.pods.push(pod_object("default", "web", "n1"));
    let api = ApiServer::start(&lab.etcd_ns, API.parse().unwrap(), state).unwrap();
    api.write_kubeconfig(kubeconfig.path()).unwrap();
    // The only pool selects nodes labelled rack=r1: only the Node's labels
    // (from Kubernetes) make it this node's.
    with_ipam(&lab, |ipam| async move {
        let mut pool = IpPool::new("rack-pool", "10.0.0.0/16");
        pool.spec.node_selector = Some("rack == 'r1'".into());
        ipam.apply_pool(&pool).await.unwrap();
    });
    lab.add_node("k8s", 1).unwrap();

    // Address from the InternalIP, labels from the Node.
    let node = with_ipam(&lab, |ipam| async move {
        let kv = ipam
            .store()
            .get("/tabby/v1/nodes/n1")
            .await
            .unwrap()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&kv.value).unwrap()
    });
    assert_eq!(
        node["spec"]["bgp"]["ipv4Address"], "10.200.0.1/24",
        "{node}"
    );
    assert_eq!(node["metadata"]["labels"]["rack"], "r1", "{node}");
    let ip = lab.add_pod(0, "web").unwrap();
    assert!(ip.to_string().starts_with("10.0."), "{ip}");

    let annotations = api.requests("PATCH", "/api/v1/nodes/n1");
    let a = &annotations.first().expect("no annotation patch").body["metadata"]["annotations"];
    assert_eq!(a["tabby.dev/IPv4Address"], "10.200.0.1/24", "{a}");
    assert_eq!(a["tabby.dev/ASNumber"], "64512", "{a}");
    wait_until("NetworkUnavailable=False", Duration::from_secs(30), || {
        Ok(condition_reasons(&api) == ["TabbyIsUp"])
    })
    .unwrap();
    let up = &api.requests("PATCH", "/api/v1/nodes/n1/status")[0];
    assert_eq!(up.content_type, "application/strategic-merge-patch+json");
    assert_eq!(up.body["status"]["conditions"][0]["status"], "False");

    // A leaked allocation (its pod does not exist) goes; the pod's stays.
    with_ipam(&lab, |ipam| async move {
        let mut args = AssignArgs::new("k8s-pod-network.ghost", "n1");
        args.attrs.insert("namespace".into(), "default".into());
        args.attrs.insert("pod".into(), "ghost".into());
        args.node_labels.insert("rack".into(), "r1".into());
        ipam.auto_assign(&args).await.unwrap();
    });
    wait_until("the leak to be collected", Duration::from_secs(60), || {
        Ok(with_ipam(&lab, |ipam| async move {
            ipam.ips_by_handle("k8s-pod-network.ghost")
                .await
                .unwrap()
                .is_empty()
        }))
    })
    .unwrap();
    let held = with_ipam(&lab, |ipam| async move {
        ipam.ips_by_handle("k8s-pod-network.c-web").await.unwrap()
    });
    // Both of the dual-stack pod's addresses stay.
    let ip6 = lab.nodes[0].pods[0].ip6.expect("a dual-stack pod");
    assert_eq!(
        held,
        vec![ip, ip6],
        "the running pod's address was collected"
    );
    let lease = api
        .state
        .lock()
        .unwrap()
        .leases
        .get("tabby-ipam-gc")
        .cloned()
        .expect("no Lease");
    assert_eq!(lease["spec"]["holderIdentity"], "n1");
    assert_eq!(lease["metadata"]["namespace"], "tabby-system");

    lab.stop_agent(0, false);
    assert_eq!(condition_reasons(&api), ["TabbyIsUp", "TabbyIsDown"]);
}
