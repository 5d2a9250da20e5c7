//! The real `tabby-cni` binary beyond ADD/DEL: the node-registration wait,
//! GC and STATUS (spec 1.1.0), and chaining with Debian's reference plugins
//! (see `cni_support` for the lab).
//!
//! - `an_unregistered_node_gets_code_11_within_the_bound`: with no Node
//!   resource, ADD waits `node_wait_seconds` (1 s here) and fails with 11,
//!   allocating nothing; STATUS says 50; once the node is registered, ADD
//!   succeeds.
//! - `gc_releases_only_what_the_runtime_no_longer_knows_and_status_reports`:
//!   GC with one of two attachments valid removes the other's veth,
//!   endpoint and addresses and leaves the valid pod working; GC under
//!   1.0.0 is code 1; STATUS passes, and says 50 once etcd is down.
//! - `chains_with_portmap_and_the_halves_combine_with_reference_plugins`:
//!   `portmap` after `tabby` as containerd chains them (prevResult passed
//!   through, its DNAT rule installed, tabby's CHECK with the chained
//!   result, DEL in reverse order); Debian's `macvlan` with `tabby-ipam`
//!   gets a pool address and DEL releases it; `tabby` with
//!   `host-local` as its IPAM gets a host-local address, and DEL frees it.
//! - `ipam_pools_in_the_conflist_choose_the_pool`: `ipam.ipv4_pools` by
//!   name and by CIDR allocates from a pool whose nodeSelector does not
//!   select the node (as Calico); a pool that does not exist is code 101
//!   naming it, and allocates nothing.
//! - `pod_annotations_choose_fixed_addresses_and_pools`: with
//!   `kubernetes.kubeconfig` (a stand-in API server in the node), a pod
//!   annotated `cni.projectcalico.org/ipAddrs` gets exactly that address,
//!   one annotated `ipv4pools` gets its pool, a plain one the default; a
//!   kubeconfig that is not there yet is code 11 and allocates nothing.
//! - `the_deploy_conflist_adds_and_deletes_a_pod`: the conflist template
//!   of `deploy/20-config.yaml`, filled as install-cni.sh fills it, drives
//!   a real ADD (a working pod address) and DEL (everything released); only
//!   host paths are pointed into the lab (kubeconfig, lock file).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod cni_support;

use std::time::{Duration, Instant};

use agent::resources::workload_endpoint_key;
use cni_support::{Lab, PORTMAP, pod_ip, with_prev};
use harness::{Netns, require_live};
use serde_json::json;

const MACVLAN: &str = "/usr/lib/cni/macvlan";
const BINS: &[&str] = &["ip", "ping", "etcd", "etcdctl"];

#[test]
fn an_unregistered_node_gets_code_11_within_the_bound() {
    if !require_live("an_unregistered_node_gets_code_11_within_the_bound", BINS) {
        return;
    }
    let lab = Lab::new("cni-unreg", false);
    let pod = Netns::new("cni-unreg-pod").unwrap();
    let mut conf = lab.config("1.1.0");
    conf["node_wait_seconds"] = json!(1);
    let started = Instant::now();
    let e = lab
        .run("tabby", "ADD", "u1", Some((&pod, "u")), &conf)
        .error(11);
    // Bounded: it did not wait for etcd timeouts or the 10 s default.
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    assert!(e["msg"].as_str().unwrap().contains(&lab.name), "{e}");
    assert_eq!(lab.allocations(), 0);
    assert!(pod.ip(&["link", "show", "eth0"]).is_err());
    lab.run("tabby", "STATUS", "", None, &conf).error(50);

    lab.register_node();
    lab.run("tabby", "STATUS", "", None, &conf).quiet();
    let r = lab
        .run("tabby", "ADD", "u1", Some((&pod, "u")), &conf)
        .result();
    lab.run(
        "tabby",
        "DEL",
        "u1",
        Some((&pod, "u")),
        &with_prev(&conf, &r),
    )
    .quiet();
}

#[test]
fn gc_releases_only_what_the_runtime_no_longer_knows_and_status_reports() {
    if !require_live(
        "gc_releases_only_what_the_runtime_no_longer_knows_and_status_reports",
        BINS,
    ) {
        return;
    }
    let mut lab = Lab::new("cni-gc", true);
    let conf = lab.config("1.1.0");
    let keep = Netns::new("cni-gc-keep").unwrap();
    let gone = Netns::new("cni-gc-gone").unwrap();
    let kept = lab
        .run("tabby", "ADD", "keep1", Some((&keep, "keep")), &conf)
        .result();
    let lost = lab
        .run("tabby", "ADD", "gone1", Some((&gone, "gone")), &conf)
        .result();
    let lost_host = lost["interfaces"][0]["name"].as_str().unwrap().to_string();
    // An allocation of another node under the same network: never touched.
    lab.ipam(|ipam| async move {
        let args = ipam::AssignArgs::new("k8s-pod-network.elsewhere", "other-node");
        ipam.auto_assign(&args).await.unwrap();
    });

    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep1", "ifname": "eth0"}]);
    lab.run("tabby", "GC", "", None, &gc).quiet();
    assert!(
        lab.held("gone1").is_empty(),
        "GC kept an invalid attachment"
    );
    assert!(lab.host_links(&lost_host).is_empty());
    let key = workload_endpoint_key(&lab.name, "default", "gone", "eth0");
    assert!(lab.stored(&key).is_none());
    assert_eq!(lab.held("keep1").len(), 1);
    assert_eq!(
        lab.held("elsewhere").len(),
        1,
        "GC released another node's address"
    );
    lab.node
        .exec("ping", &["-c", "1", "-W", "2", &pod_ip(&kept)])
        .unwrap();
    let key = workload_endpoint_key(&lab.name, "default", "keep", "eth0");
    assert!(lab.stored(&key).is_some());

    let mut old = gc.clone();
    old["cniVersion"] = json!("1.0.0");
    lab.run("tabby", "GC", "", None, &old).error(1);

    lab.run("tabby", "STATUS", "", None, &conf).quiet();
    lab.etcd.stop();
    let mut quick = conf.clone();
    quick["etcd_timeout_seconds"] = json!(1);
    lab.run("tabby", "STATUS", "", None, &quick).error(50);
    lab.etcd.start_again().unwrap();
    lab.run(
        "tabby",
        "DEL",
        "keep1",
        Some((&keep, "keep")),
        &with_prev(&conf, &kept),
    )
    .quiet();
}

#[test]
fn chains_with_portmap_and_the_halves_combine_with_reference_plugins() {
    if !require_live(
        "chains_with_portmap_and_the_halves_combine_with_reference_plugins",
        &[
            "ip", "ping", "etcd", "etcdctl", "iptables", PORTMAP, MACVLAN,
        ],
    ) {
        return;
    }
    let lab = Lab::new("cni-chain", true);
    let pod = Netns::new("cni-chain-pod").unwrap();
    let conf = lab.config("1.0.0");
    let at = Some((&pod, "web"));
    let ours = lab.run("tabby", "ADD", "p1", at, &conf).result();

    // portmap as the second plugin, with the stdin libcni builds for it.
    let portmap = json!({
        "cniVersion": "1.0.0", "name": cni_support::NETWORK, "type": "portmap",
        "snat": true, "capabilities": {"portMappings": true},
        "runtimeConfig": {"portMappings": [
            {"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]},
        "prevResult": ours,
    });
    let passed = lab.run(PORTMAP, "ADD", "p1", at, &portmap).result();
    assert_eq!(passed["ips"], ours["ips"]);
    assert_eq!(passed["interfaces"], ours["interfaces"]);
    let nat = lab.node.exec("iptables", &["-t", "nat", "-S"]).unwrap();
    assert!(
        nat.contains("18080") && nat.contains(&format!("{}:80", pod_ip(&ours))),
        "{nat}"
    );
    // CHECK in order, then DEL in reverse order, each with the final result.
    // (portmap's own CHECK is not run: Debian's v1.1.1 with iptables-nft
    // fails it for an IPv4-only result, "could not check ipv6 dnat".)
    lab.run("tabby", "CHECK", "p1", at, &with_prev(&conf, &passed))
        .quiet();
    lab.run(PORTMAP, "DEL", "p1", at, &portmap).quiet();
    lab.run("tabby", "DEL", "p1", at, &with_prev(&conf, &passed))
        .quiet();
    assert!(lab.held("p1").is_empty());
    let nat = lab.node.exec("iptables", &["-t", "nat", "-S"]).unwrap();
    assert!(!nat.contains("18080"), "{nat}");

    // Debian's macvlan with tabby-ipam (the binary under its second name).
    // (Not ptp or bridge: they need an IPAM gateway, which calico-ipam and
    // tabby-ipam do not hand out.)
    let mv_pod = Netns::new("cni-chain-mv").unwrap();
    let mut mv = conf.clone();
    mv["type"] = json!("macvlan");
    mv["master"] = json!("up0");
    mv["mode"] = json!("bridge");
    let at = Some((&mv_pod, "mv"));
    let r = lab.run(MACVLAN, "ADD", "mv1", at, &mv).result();
    let address = r["ips"][0]["address"].as_str().unwrap();
    assert!(
        address.starts_with("10.244.") && address.ends_with("/26"),
        "{r}"
    );
    let eth0 = mv_pod.ip(&["addr", "show", "eth0"]).unwrap();
    assert!(eth0.contains(address), "{eth0}");
    assert_eq!(lab.held("mv1").len(), 1);
    lab.run(MACVLAN, "DEL", "mv1", at, &with_prev(&mv, &r))
        .quiet();
    assert!(lab.held("mv1").is_empty());

    // tabby with host-local as its IPAM (delegated through CNI_PATH).
    let hl_pod = Netns::new("cni-chain-hl").unwrap();
    let mut hl = conf.clone();
    let data = lab.dir.path().join("host-local");
    hl["ipam"] = json!({"type": "host-local", "dataDir": data,
                        "ranges": [[{"subnet": "10.99.0.0/24"}]]});
    let at = Some((&hl_pod, "hl"));
    let r = lab.run("tabby", "ADD", "hl1", at, &hl).result();
    let ip = pod_ip(&r);
    assert!(ip.starts_with("10.99.0."), "{r}");
    lab.node.exec("ping", &["-c", "1", "-W", "2", &ip]).unwrap();
    let lease = data.join(cni_support::NETWORK).join(&ip);
    assert!(
        lease.exists(),
        "host-local has no lease {}",
        lease.display()
    );
    lab.run("tabby", "DEL", "hl1", at, &with_prev(&hl, &r))
        .quiet();
    assert!(!lease.exists(), "DEL did not reach host-local");
    assert_eq!(lab.allocations(), 0);
}

#[test]
fn ipam_pools_in_the_conflist_choose_the_pool() {
    if !require_live("ipam_pools_in_the_conflist_choose_the_pool", BINS) {
        return;
    }
    let lab = Lab::new("cni-pools", true);
    lab.ipam(|ipam| async move {
        let mut rack = ipam::IpPool::new("rack-pool", "10.245.0.0/24");
        rack.spec.node_selector = Some("rack == 'elsewhere'".into());
        ipam.apply_pool(&rack).await.unwrap();
    });
    let pod = Netns::new("cni-pools-pod").unwrap();
    for (i, wanted) in ["rack-pool", "10.245.0.0/24"].into_iter().enumerate() {
        let container = format!("p{i}");
        let mut conf = lab.config("1.0.0");
        conf["ipam"]["ipv4_pools"] = json!([wanted]);
        let r = lab
            .run("tabby", "ADD", &container, Some((&pod, "pools")), &conf)
            .result();
        assert!(pod_ip(&r).starts_with("10.245.0."), "{wanted}: {r}");
        lab.run(
            "tabby",
            "DEL",
            &container,
            Some((&pod, "pools")),
            &with_prev(&conf, &r),
        )
        .quiet();
    }
    let mut conf = lab.config("1.0.0");
    conf["ipam"]["ipv4_pools"] = json!(["no-such-pool"]);
    let e = lab
        .run("tabby", "ADD", "p9", Some((&pod, "pools")), &conf)
        .error(101);
    assert!(e["msg"].as_str().unwrap().contains("no-such-pool"), "{e}");
    assert_eq!(lab.allocations(), 0);
    assert!(pod.ip(&["link", "show", "eth0"]).is_err());
}

#[test]
fn pod_annotations_choose_fixed_addresses_and_pools() {
    use harness::apiserver::{ApiServer, State, annotated_pod};
    if !require_live("pod_annotations_choose_fixed_addresses_and_pools", BINS) {
        return;
    }
    let lab = Lab::new("cni-annot", true);
    lab.ipam(|ipam| async move {
        let mut rack = ipam::IpPool::new("rack-pool", "10.245.0.0/24");
        rack.spec.node_selector = Some("rack == 'elsewhere'".into());
        ipam.apply_pool(&rack).await.unwrap();
    });
    let mut state = State::default();
    let node = lab.name.clone();
    state.pods = vec![
        annotated_pod(
            "default",
            "fixed",
            &node,
            &[("cni.projectcalico.org/ipAddrs", r#"["10.244.77.7"]"#)],
        ),
        annotated_pod(
            "default",
            "pooled",
            &node,
            &[("cni.projectcalico.org/ipv4pools", r#"["rack-pool"]"#)],
        ),
        annotated_pod("default", "plain", &node, &[]),
    ];
    let api = ApiServer::start(&lab.node, "127.0.0.1:6443".parse().unwrap(), state).unwrap();
    let kubeconfig = lab.dir.path().join("tabby-kubeconfig");
    api.write_kubeconfig(&kubeconfig).unwrap();
    let mut conf = lab.config("1.0.0");
    conf["kubernetes"] = json!({"kubeconfig": kubeconfig});
    for (pod, expect) in [
        ("fixed", "10.244.77.7"),
        ("pooled", "10.245.0."),
        ("plain", "10.244."),
    ] {
        let ns = Netns::new(&format!("cni-annot-{pod}")).unwrap();
        let r = lab
            .run("tabby", "ADD", pod, Some((&ns, pod)), &conf)
            .result();
        assert!(pod_ip(&r).starts_with(expect), "{pod}: {r}");
        lab.run("tabby", "DEL", pod, Some((&ns, pod)), &with_prev(&conf, &r))
            .quiet();
    }
    assert_eq!(
        api.requests("GET", "/api/v1/namespaces/default/pods/fixed")
            .len(),
        1
    );
    assert_eq!(lab.allocations(), 0);

    let mut missing = lab.config("1.0.0");
    missing["kubernetes"] = json!({"kubeconfig": lab.dir.path().join("not-yet")});
    let ns = Netns::new("cni-annot-missing").unwrap();
    let e = lab
        .run("tabby", "ADD", "m1", Some((&ns, "plain")), &missing)
        .error(11);
    assert!(e["msg"].as_str().unwrap().contains("not-yet"), "{e}");
    assert_eq!(lab.allocations(), 0);
}

#[test]
fn the_deploy_conflist_adds_and_deletes_a_pod() {
    use harness::apiserver::{ApiServer, State, pod_object};
    if !require_live("the_deploy_conflist_adds_and_deletes_a_pod", BINS) {
        return;
    }
    let lab = Lab::new("cni-deploy", true);
    let manifest = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/20-config.yaml"),
    )
    .unwrap();
    let config: serde_json::Value = serde_saphyr::from_str(&manifest).unwrap();
    let template = config["data"]["cni_network_config"].as_str().unwrap();
    // install-cni.sh's substitutions (etcd without TLS, the node's name,
    // MTU 0 = the agent's state file)
    let filled = template
        .replace("__ETCD_ENDPOINTS__", "http://127.0.0.1:2379")
        .replace("__ETCD_CA_CERT_FILE__", "")
        .replace("__ETCD_CERT_FILE__", "")
        .replace("__ETCD_KEY_FILE__", "")
        .replace("__KUBERNETES_NODE_NAME__", &lab.name)
        .replace("__CNI_MTU__", "0");
    let conflist: serde_json::Value = serde_json::from_str(&filled).unwrap();
    // what containerd sends for the first plugin of the list
    let mut conf = conflist["plugins"][0].clone();
    conf["name"] = conflist["name"].clone();
    conf["cniVersion"] = conflist["cniVersion"].clone();
    assert_eq!(conf["type"], "tabby");
    assert!(conf["kubernetes"]["kubeconfig"].is_string(), "{conf}");
    let mut state = State::default();
    state
        .pods
        .push(pod_object("default", "deployed", &lab.name));
    let api = ApiServer::start(&lab.node, "127.0.0.1:6443".parse().unwrap(), state).unwrap();
    let kubeconfig = lab.dir.path().join("tabby-kubeconfig");
    api.write_kubeconfig(&kubeconfig).unwrap();
    conf["kubernetes"]["kubeconfig"] = json!(kubeconfig);
    conf["ipam_lock_file"] = json!(lab.dir.path().join("cni.lock"));
    let pod = Netns::new("cni-deploy-pod").unwrap();
    let r = lab
        .run("tabby", "ADD", "d1", Some((&pod, "deployed")), &conf)
        .result();
    let ip = pod_ip(&r);
    assert!(ip.starts_with("10.244."), "{r}");
    assert!(pod.ip(&["addr", "show", "eth0"]).unwrap().contains(&ip));
    lab.node.exec("ping", &["-c", "1", "-W", "2", &ip]).unwrap();
    lab.run(
        "tabby",
        "DEL",
        "d1",
        Some((&pod, "deployed")),
        &with_prev(&conf, &r),
    )
    .quiet();
    assert_eq!(lab.allocations(), 0);
    assert!(lab.host_links("cali").is_empty());
}
