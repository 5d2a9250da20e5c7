//! The Kubernetes calls of `agent::k8s`, against kube's mock service
//! (tower-test): each test plays the API server, checks every request the
//! code makes (method, path, query, content type, exact body) and answers
//! it, within a timeout so a missing or extra call fails the test.
//!
//! - `reads_labels_internal_ip_and_pod_cidrs_of_its_node`
//! - `network_unavailable_patch_is_the_exact_strategic_merge_of_the_condition`
//! - `annotations_are_a_merge_patch_that_removes_what_no_longer_applies`
//! - `lease_is_created_renewed_followed_and_taken_over_by_client_go_rules`
//!   (sans-IO), and `a_lost_lease_race_is_not_leading_and_not_an_error`
//! - `gc_releases_only_what_two_scans_a_grace_period_apart_agree_on`
//! - `tabby_cni_reads_the_pod_and_namespace_annotations`
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use agent::k8s::gc::{self, Collector, PodRef};
use agent::k8s::lease::{Elector, LeaseConfig, Step};
use agent::k8s::node::{self, NodeAnnotations, NodeFacts};
use http::{Method, Request, Response, StatusCode};
use ipam::{AssignArgs, IpPool, Ipam, MemoryStore, TunnelKind};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

type ApiServer = Handle<Request<Body>, Response<Body>>;

fn mock_client() -> (kube::Client, ApiServer) {
    let (svc, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(svc, "default"), handle)
}

/// One request as the API server saw it.
#[derive(Debug)]
struct Seen {
    query: Vec<String>,
    content_type: String,
    body: Option<Value>,
}

/// Take the next request, check its method and path, answer `status` with
/// `reply`.
async fn serve(
    server: &mut ApiServer,
    method: Method,
    path: &str,
    status: u16,
    reply: Value,
) -> Seen {
    let (req, send) = server
        .next_request()
        .await
        .expect("the client made no request");
    assert_eq!(req.method(), method, "{}", req.uri());
    assert_eq!(req.uri().path(), path);
    // the query's parameters (kube writes `?&fieldManager=…`, which the
    // API server reads as one parameter)
    let seen_query: Vec<String> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    let content_type = req
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = req.into_body().collect_bytes().await.unwrap();
    let body = (!bytes.is_empty()).then(|| serde_json::from_slice(&bytes).unwrap());
    send.send_response(
        Response::builder()
            .status(StatusCode::from_u16(status).unwrap())
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap(),
    );
    Seen {
        query: seen_query,
        content_type,
        body,
    }
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
           "message": reason, "reason": reason, "code": code})
}

/// Run the client side and the API server side together, bounded.
async fn scenario<T, C, S>(client_side: C, server_side: S) -> T
where
    C: Future<Output = T>,
    S: Future<Output = ()> + Send + 'static,
{
    let server = tokio::spawn(server_side);
    let out = tokio::time::timeout(Duration::from_secs(5), client_side)
        .await
        .expect("the client side did not finish");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the API server side did not finish")
        .unwrap();
    out
}

fn node_json(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "resourceVersion": "7",
                     "labels": {"kubernetes.io/hostname": name, "rack": "r1"}},
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:244:1::/64"]},
        "status": {"addresses": [
            {"type": "Hostname", "address": name},
            {"type": "ExternalIP", "address": "203.0.113.9"},
            {"type": "InternalIP", "address": "fd00:200::1"},
            {"type": "InternalIP", "address": "10.200.0.1"}
        ]}
    })
}

#[tokio::test]
async fn reads_labels_internal_ip_and_pod_cidrs_of_its_node() {
    let (client, mut server) = mock_client();
    let facts = scenario(node::read(&client, "n1"), async move {
        serve(
            &mut server,
            Method::GET,
            "/api/v1/nodes/n1",
            200,
            node_json("n1"),
        )
        .await;
    })
    .await
    .unwrap();
    assert_eq!(
        facts,
        NodeFacts {
            name: "n1".into(),
            labels: [("kubernetes.io/hostname", "n1"), ("rack", "r1")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            internal_ips: vec![
                "fd00:200::1".parse().unwrap(),
                "10.200.0.1".parse().unwrap()
            ],
            pod_cidrs: vec!["10.244.1.0/24".into(), "fd00:244:1::/64".into()],
        }
    );
    assert_eq!(facts.internal_ipv4(), Some("10.200.0.1".parse().unwrap()));

    // A missing Node is the API's 404, reported as such.
    let (client, mut server) = mock_client();
    let e = scenario(node::read(&client, "gone"), async move {
        serve(
            &mut server,
            Method::GET,
            "/api/v1/nodes/gone",
            404,
            status(404, "NotFound"),
        )
        .await;
    })
    .await
    .unwrap_err();
    assert!(agent::k8s::is_not_found(&e), "{e}");
}

fn noon() -> Timestamp {
    "2026-12-01T12:00:00Z".parse().unwrap()
}

#[tokio::test]
async fn network_unavailable_patch_is_the_exact_strategic_merge_of_the_condition() {
    for (up, status_text, reason, message) in [
        (true, "False", "TabbyIsUp", "tabby is running on this node"),
        (
            false,
            "True",
            "TabbyIsDown",
            "tabby is shutting down on this node",
        ),
    ] {
        let (client, mut server) = mock_client();
        let seen = scenario(
            node::set_network_unavailable(&client, "n1", up, noon()),
            async move {
                let seen = serve(
                    &mut server,
                    Method::PATCH,
                    "/api/v1/nodes/n1/status",
                    200,
                    node_json("n1"),
                )
                .await;
                assert_eq!(seen.content_type, "application/strategic-merge-patch+json");
                assert_eq!(seen.query, ["fieldManager=tabby-node"]);
                assert_eq!(
                    seen.body.unwrap(),
                    json!({"status": {"conditions": [{
                        "type": "NetworkUnavailable",
                        "status": status_text,
                        "reason": reason,
                        "message": message,
                        "lastTransitionTime": "2026-12-01T12:00:00Z",
                        "lastHeartbeatTime": "2026-12-01T12:00:00Z",
                    }]}})
                );
            },
        )
        .await;
        seen.unwrap();
    }
}

#[tokio::test]
async fn annotations_are_a_merge_patch_that_removes_what_no_longer_applies() {
    let (client, mut server) = mock_client();
    let annotations = NodeAnnotations {
        ipv4_address: Some("10.200.0.1/24".parse().unwrap()),
        as_number: Some(64512),
        ipv4_vxlan_tunnel_addr: Some("10.0.12.0".parse().unwrap()),
        ipv4_ipip_tunnel_addr: None,
        vxlan_tunnel_mac_addr: Some("66:0a:01:02:03:04".into()),
    };
    scenario(
        async {
            node::annotate(&client, "n1", &annotations).await.unwrap();
        },
        async move {
            let seen = serve(
                &mut server,
                Method::PATCH,
                "/api/v1/nodes/n1",
                200,
                node_json("n1"),
            )
            .await;
            assert_eq!(seen.content_type, "application/merge-patch+json");
            assert_eq!(seen.query, ["fieldManager=tabby-node"]);
            assert_eq!(
                seen.body.unwrap(),
                json!({"metadata": {"annotations": {
                    "tabby.dev/IPv4Address": "10.200.0.1/24",
                    "tabby.dev/ASNumber": "64512",
                    "tabby.dev/IPv4VXLANTunnelAddr": "10.0.12.0",
                    "tabby.dev/IPv4IPIPTunnelAddr": null,
                    "tabby.dev/VXLANTunnelMACAddr": "66:0a:01:02:03:04",
                }}})
            );
        },
    )
    .await;
}

fn lease_config(identity: &str) -> LeaseConfig {
    LeaseConfig {
        name: "tabby-ipam-gc".into(),
        namespace: "tabby-system".into(),
        identity: identity.into(),
        duration: Duration::from_secs(15),
    }
}

fn held_by(holder: &str, renew: &str, version: &str) -> Lease {
    serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "tabby-ipam-gc", "namespace": "tabby-system", "resourceVersion": version},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                 "acquireTime": "2026-12-01T11:00:00.000000Z", "renewTime": renew,
                 "leaseTransitions": 3}
    }))
    .unwrap()
}

fn spec_of(step: &Step) -> Value {
    match step {
        Step::Create(l) | Step::Replace(l) => serde_json::to_value(l).unwrap()["spec"].clone(),
        Step::Follow { holder } => json!({"following": holder}),
    }
}

#[test]
fn lease_is_created_renewed_followed_and_taken_over_by_client_go_rules() {
    let t0 = Instant::now();
    let mut n1 = Elector::new(lease_config("n1"));
    // absent: create, held by us
    let create = n1.decide(None, t0, noon());
    assert!(matches!(create, Step::Create(_)));
    assert_eq!(
        spec_of(&create),
        json!({"holderIdentity": "n1", "leaseDurationSeconds": 15,
               "acquireTime": "2026-12-01T12:00:00.000000Z",
               "renewTime": "2026-12-01T12:00:00.000000Z", "leaseTransitions": 0})
    );
    // ours: renew only the renewTime, keep the resourceVersion
    let ours = held_by("n1", "2026-12-01T11:59:50.000000Z", "41");
    let renew = n1.decide(Some(&ours), t0, noon());
    let Step::Replace(l) = &renew else {
        panic!("{renew:?}")
    };
    assert_eq!(l.metadata.resource_version.as_deref(), Some("41"));
    assert_eq!(spec_of(&renew)["renewTime"], "2026-12-01T12:00:00.000000Z");
    assert_eq!(
        spec_of(&renew)["acquireTime"],
        "2026-12-01T11:00:00.000000Z"
    );
    assert_eq!(spec_of(&renew)["leaseTransitions"], 3);

    // someone else's: followed while it changes or until a full duration
    // of silence by our own clock, whatever the timestamps say
    let mut n2 = Elector::new(lease_config("n2"));
    let theirs = held_by("n1", "2020-01-01T00:00:00.000000Z", "41");
    assert_eq!(
        n2.decide(Some(&theirs), t0, noon()),
        Step::Follow {
            holder: "n1".into()
        }
    );
    let later = t0 + Duration::from_secs(14);
    assert_eq!(
        n2.decide(Some(&theirs), later, noon()),
        Step::Follow {
            holder: "n1".into()
        }
    );
    let renewed = held_by("n1", "2020-01-01T00:00:10.000000Z", "42");
    let much_later = t0 + Duration::from_secs(20);
    assert_eq!(
        n2.decide(Some(&renewed), much_later, noon()),
        Step::Follow {
            holder: "n1".into()
        },
        "a renewal restarts the silence"
    );
    let expired = n2.decide(Some(&renewed), much_later + Duration::from_secs(15), noon());
    let Step::Replace(l) = &expired else {
        panic!("{expired:?}")
    };
    assert_eq!(l.metadata.resource_version.as_deref(), Some("42"));
    assert_eq!(spec_of(&expired)["holderIdentity"], "n2");
    assert_eq!(spec_of(&expired)["leaseTransitions"], 4);
    assert_eq!(
        spec_of(&expired)["acquireTime"],
        "2026-12-01T12:00:00.000000Z"
    );

    // released (empty holder): taken at once
    let mut n3 = Elector::new(lease_config("n3"));
    let released = held_by("", "2026-12-01T11:59:59.000000Z", "43");
    assert!(matches!(
        n3.decide(Some(&released), t0, noon()),
        Step::Replace(_)
    ));
}

#[tokio::test]
async fn a_lost_lease_race_is_not_leading_and_not_an_error() {
    const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/tabby-system/leases";
    let (client, mut server) = mock_client();
    let mut elector = Elector::new(lease_config("n1"));
    let leading = scenario(elector.round(&client), async move {
        serve(
            &mut server,
            Method::GET,
            &format!("{PATH}/tabby-ipam-gc"),
            404,
            status(404, "NotFound"),
        )
        .await;
        let seen = serve(
            &mut server,
            Method::POST,
            PATH,
            409,
            status(409, "AlreadyExists"),
        )
        .await;
        let body = seen.body.unwrap();
        assert_eq!(body["metadata"]["name"], "tabby-ipam-gc");
        assert_eq!(body["spec"]["holderIdentity"], "n1");
    })
    .await
    .unwrap();
    assert!(!leading && !elector.is_leader());

    // the next round reads the winner's Lease and follows it
    let (client, mut server) = mock_client();
    let leading = scenario(elector.round(&client), async move {
        let winner =
            serde_json::to_value(held_by("n2", "2026-12-01T12:00:00.000000Z", "5")).unwrap();
        serve(
            &mut server,
            Method::GET,
            &format!("{PATH}/tabby-ipam-gc"),
            200,
            winner,
        )
        .await;
    })
    .await
    .unwrap();
    assert!(!leading);

    // once it is ours, a round renews it with the resourceVersion read
    let (client, mut server) = mock_client();
    let leading = scenario(elector.round(&client), async move {
        let ours = serde_json::to_value(held_by("n1", "2026-12-01T12:00:00.000000Z", "9")).unwrap();
        serve(
            &mut server,
            Method::GET,
            &format!("{PATH}/tabby-ipam-gc"),
            200,
            ours.clone(),
        )
        .await;
        let seen = serve(
            &mut server,
            Method::PUT,
            &format!("{PATH}/tabby-ipam-gc"),
            200,
            ours,
        )
        .await;
        assert_eq!(seen.body.unwrap()["metadata"]["resourceVersion"], "9");
    })
    .await
    .unwrap();
    assert!(leading && elector.is_leader());
}

fn pod_json(namespace: &str, name: &str, node: &str) -> Value {
    json!({"metadata": {"namespace": namespace, "name": name}, "spec": {"nodeName": node, "containers": []}})
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
}

/// One GC scan against the mock with these pods and nodes.
async fn scan(
    ipam: &Ipam<MemoryStore>,
    collector: &mut Collector,
    now: Instant,
    pods: Vec<Value>,
    nodes: &[&str],
) -> ipam::Repair {
    let (client, mut server) = mock_client();
    let nodes: Vec<Value> = nodes.iter().map(|n| node_json(n)).collect();
    scenario(gc::collect(&client, ipam, collector, now), async move {
        serve(
            &mut server,
            Method::GET,
            "/api/v1/pods",
            200,
            list("PodList", pods),
        )
        .await;
        serve(
            &mut server,
            Method::GET,
            "/api/v1/nodes",
            200,
            list("NodeList", nodes),
        )
        .await;
    })
    .await
    .unwrap()
}

async fn pod_address(ipam: &Ipam<MemoryStore>, handle: &str, node: &str, pod: &str, n: usize) {
    let mut args = AssignArgs::new(handle, node);
    args.num_v4 = n;
    args.attrs.insert("namespace".into(), "default".into());
    args.attrs.insert("pod".into(), pod.into());
    assert_eq!(ipam.auto_assign(&args).await.unwrap().len(), n);
}

fn held(state: &ipam::IpamState) -> BTreeSet<String> {
    state
        .blocks
        .values()
        .flat_map(|b| {
            b.value
                .allocations()
                .map(|a| a.handle.unwrap_or("-").to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn gc_releases_only_what_two_scans_a_grace_period_apart_agree_on() {
    let ipam = Ipam::new(MemoryStore::new());
    ipam.apply_pool(&IpPool::new("pool", "10.244.0.0/16"))
        .await
        .unwrap();
    pod_address(&ipam, "net.live", "n1", "live", 1).await;
    pod_address(&ipam, "net.deleted", "n1", "deleted", 2).await;
    pod_address(&ipam, "net.moved", "n1", "moved", 1).await;
    pod_address(&ipam, "net.on-gone-node", "n3", "orphan", 1).await;
    pod_address(&ipam, "net.later", "n2", "later", 1).await;
    ipam.assign_tunnel_address("n1", TunnelKind::Vxlan, &Default::default())
        .await
        .unwrap();
    ipam.assign_tunnel_address("n3", TunnelKind::Vxlan, &Default::default())
        .await
        .unwrap();
    let grace = Duration::from_secs(900);
    let mut collector = Collector::new(grace);
    let t0 = Instant::now();
    let pods_then = vec![
        pod_json("default", "live", "n1"),
        pod_json("default", "moved", "n2"),
        pod_json("default", "later", "n2"),
    ];
    // first observation: nothing is released, whatever it finds
    let r = scan(&ipam, &mut collector, t0, pods_then.clone(), &["n1", "n2"]).await;
    assert!(r.released.is_empty(), "{r:?}");
    // a second scan before the grace period has passed: still nothing
    let r = scan(
        &ipam,
        &mut collector,
        t0 + grace / 2,
        pods_then,
        &["n1", "n2"],
    )
    .await;
    assert!(r.released.is_empty(), "{r:?}");
    // a grace period later: "later" has gone meanwhile (seen leaked once,
    // so kept); the rest seen leaked twice is released, all of each handle
    let pods_now = vec![
        pod_json("default", "live", "n1"),
        pod_json("default", "moved", "n2"),
    ];
    let r = scan(&ipam, &mut collector, t0 + grace, pods_now, &["n1", "n2"]).await;
    assert_eq!(r.released.len(), 5, "{r:?}");
    let state = ipam.snapshot().await.unwrap();
    assert_eq!(
        held(&state),
        ["net.live", "net.later", "vxlan-tunnel-addr-n1"]
            .into_iter()
            .map(String::from)
            .collect::<BTreeSet<_>>()
    );
    assert_eq!(ipam::check::invariants(&state), vec![]);
    // the live pod's address is live by the rules themselves
    let live = gc::live_owners(
        &state,
        &[PodRef {
            namespace: "default".into(),
            name: "live".into(),
            node: Some("n1".into()),
        }],
        &["n1".to_string()].into(),
    );
    assert!(live.workloads.contains("net.live"));
    assert!(!live.workloads.contains("net.later"));
}

#[tokio::test]
async fn tabby_cni_reads_the_pod_and_namespace_annotations() {
    use agent::cni::annotations::{self, PodRequest};
    let (client, mut server) = mock_client();
    let request = scenario(annotations::read(&client, "shop", "web-1"), async move {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "shop", "annotations": {
                "cni.projectcalico.org/ipv4pools": "[\"shop-pool\"]",
                "cni.projectcalico.org/ipv6pools": "[\"shop-v6\"]"}}});
        serve(&mut server, Method::GET, "/api/v1/namespaces/shop", 200, ns).await;
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "shop", "annotations": {
                "cni.projectcalico.org/ipv4pools": "[\"10.9.0.0/24\"]"}}});
        serve(
            &mut server,
            Method::GET,
            "/api/v1/namespaces/shop/pods/web-1",
            200,
            pod,
        )
        .await;
    })
    .await
    .unwrap();
    assert_eq!(
        request,
        PodRequest {
            ipv4_pools: Some(vec!["10.9.0.0/24".into()]),
            ipv6_pools: Some(vec!["shop-v6".into()]),
            ip_addrs: vec![],
        }
    );

    // An API server that answers with an error is "try again later" (11).
    let (client, mut server) = mock_client();
    let e = scenario(annotations::read(&client, "shop", "web-1"), async move {
        serve(
            &mut server,
            Method::GET,
            "/api/v1/namespaces/shop",
            503,
            status(503, "ServiceUnavailable"),
        )
        .await;
    })
    .await
    .unwrap_err();
    assert_eq!(e.code(), 11, "{e}");
}
