//! The real `tabby-cni` binary, driven as containerd drives it, against a
//! real etcd and real pod namespaces (see `cni_support` for the lab).
//!
//! - `add_gives_working_pods_and_del_removes_everything`: the ADD result has
//!   the spec's shape (host `cali…` without sandbox, eth0 with sandbox, a
//!   /32 on interface 1); host→pod and pod→pod ping; the host route is
//!   `<ip> dev cali… proto 95`; the WorkloadEndpoint and the IPAM handle
//!   exist; CHECK passes, and fails with 103 once the host route is gone;
//!   DEL removes veth, endpoint and addresses; a second DEL succeeds.
//! - `del_succeeds_when_the_netns_is_gone`: DEL with a deleted netns, and
//!   DEL without CNI_NETNS, succeed and release everything.
//! - `bad_input_gets_its_code_on_stdout_and_allocates_nothing`: not JSON
//!   (6), a 5 MiB input (6), a wrong field type (7, named), an unsupported
//!   version (1), a missing variable (4, named); VERSION lists the versions.
//! - `a_failed_add_rolls_back_and_leaks_nothing`: CNI_IFNAME already in the
//!   pod makes ADD fail after allocation; no address, endpoint or veth is
//!   left, and a DEL afterwards succeeds.
//! - `an_add_whose_netns_vanishes_after_allocation_leaks_nothing`: the pod
//!   netns is deleted while ADD waits for the Node; ADD allocates, fails to
//!   wire, rolls back; IPAM's leak check is clean and no veth is left.
//! - `fifty_concurrent_adds_get_fifty_distinct_addresses`: 50 plugin
//!   processes at once on one node (serialised by the host lock) give 50
//!   distinct, reachable addresses; 50 concurrent DELs release them all.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod cni_support;

use std::collections::BTreeSet;

use std::time::Duration;

use agent::resources::workload_endpoint_key;
use cni_support::{Lab, pod_ip, with_prev};
use harness::{Netns, require_live};
use serde_json::json;

const BINS: &[&str] = &["ip", "ping", "etcd", "etcdctl"];

/// Plugin processes started at once on one node (the figure).
const CONCURRENT: usize = 50;

#[test]
fn add_gives_working_pods_and_del_removes_everything() {
    if !require_live("add_gives_working_pods_and_del_removes_everything", BINS) {
        return;
    }
    let lab = Lab::new("cni-add", true);
    let pod = Netns::new("cni-add-pod").unwrap();
    let other = Netns::new("cni-add-other").unwrap();
    let conf = lab.config("1.0.0");
    let result = lab
        .run("tabby", "ADD", "c1", Some((&pod, "web-1")), &conf)
        .result();

    // The result, field by field.
    assert_eq!(result["cniVersion"], "1.0.0");
    let host = result["interfaces"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        host,
        agent::dataplane::workload::host_interface_name("cali", "default", "web-1")
    );
    assert!(result["interfaces"][0].get("sandbox").is_none(), "{result}");
    assert_eq!(result["interfaces"][1]["name"], "eth0");
    assert_eq!(
        result["interfaces"][1]["sandbox"],
        pod.path().to_str().unwrap()
    );
    let mac = result["interfaces"][1]["mac"].as_str().unwrap().to_string();
    assert_eq!(mac.len(), 17, "{result}");
    assert_eq!(result["ips"].as_array().unwrap().len(), 1, "{result}");
    assert_eq!(result["ips"][0]["interface"], 1);
    let address = result["ips"][0]["address"].as_str().unwrap();
    assert!(
        address.starts_with("10.244.") && address.ends_with("/32"),
        "{result}"
    );
    assert_eq!(
        result["routes"][0],
        json!({"dst": "0.0.0.0/0", "gw": "169.254.1.1"})
    );
    let ip = pod_ip(&result);

    // The kernel: a working pod.
    let routes = lab.node.ip(&["route", "show", "proto", "95"]).unwrap();
    assert!(routes.contains(&format!("{ip} dev {host}")), "{routes}");
    lab.node.exec("ping", &["-c", "1", "-W", "2", &ip]).unwrap();
    let eth0 = pod.ip(&["addr", "show", "eth0"]).unwrap();
    assert!(
        eth0.contains(&format!("{ip}/32")) && eth0.contains("mtu 1450"),
        "{eth0}"
    );
    let second = lab
        .run("tabby", "ADD", "c2", Some((&other, "web-2")), &conf)
        .result();
    other.exec("ping", &["-c", "1", "-W", "2", &ip]).unwrap();
    pod.exec("ping", &["-c", "1", "-W", "2", &pod_ip(&second)])
        .unwrap();

    // The datastore: endpoint and handle.
    let key = workload_endpoint_key(&lab.name, "default", "web-1", "eth0");
    let wep = lab.stored(&key).unwrap();
    assert_eq!(wep["kind"], "WorkloadEndpoint");
    assert_eq!(wep["spec"]["containerID"], "c1");
    assert_eq!(wep["spec"]["interfaceName"], host.as_str());
    assert_eq!(wep["spec"]["mac"], mac.as_str());
    assert_eq!(wep["spec"]["node"], lab.name.as_str());
    assert_eq!(wep["spec"]["ipNetworks"], json!([format!("{ip}/32")]));
    assert_eq!(lab.held("c1"), [ip.parse::<std::net::IpAddr>().unwrap()]);

    // CHECK with the cached result passes, and notices a missing route.
    let prev = with_prev(&conf, &result);
    lab.run("tabby", "CHECK", "c1", Some((&pod, "web-1")), &prev)
        .quiet();
    lab.node.ip(&["route", "del", &format!("{ip}/32")]).unwrap();
    let e = lab
        .run("tabby", "CHECK", "c1", Some((&pod, "web-1")), &prev)
        .error(103);
    assert!(e["msg"].as_str().unwrap().contains(&ip), "{e}");

    // DEL removes everything, twice.
    for _ in 0..2 {
        lab.run("tabby", "DEL", "c1", Some((&pod, "web-1")), &prev)
            .quiet();
    }
    assert!(lab.host_links(&host).is_empty());
    assert!(
        pod.ip(&["link", "show", "eth0"]).is_err(),
        "eth0 left in the pod"
    );
    assert!(lab.stored(&key).is_none(), "the endpoint is left");
    assert!(lab.held("c1").is_empty());
    let c2 = with_prev(&conf, &second);
    lab.run("tabby", "DEL", "c2", Some((&other, "web-2")), &c2)
        .quiet();
    assert_eq!(lab.allocations(), 0);
}

#[test]
fn del_succeeds_when_the_netns_is_gone() {
    if !require_live("del_succeeds_when_the_netns_is_gone", BINS) {
        return;
    }
    let lab = Lab::new("cni-gone", true);
    let conf = lab.config("1.0.0");
    let pod = Netns::new("cni-gone-pod").unwrap();
    let path = pod.path();
    let result = lab
        .run("tabby", "ADD", "g1", Some((&pod, "p1")), &conf)
        .result();
    let host = result["interfaces"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    drop(pod);
    assert!(!path.exists());
    // containerd still names the old path.
    let mut cmd = lab
        .node
        .command(lab.dir.path().join("tabby").to_str().unwrap());
    cmd.env("CNI_COMMAND", "DEL")
        .env("CNI_CONTAINERID", "g1")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_NETNS", &path)
        .env("CNI_ARGS", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=p1");
    let out = pipe(cmd, &conf);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(lab.host_links(&host).is_empty());
    assert!(lab.held("g1").is_empty());
    let key = workload_endpoint_key(&lab.name, "default", "p1", "eth0");
    assert!(lab.stored(&key).is_none());

    // An ADD then a DEL without any CNI_NETNS at all.
    let pod = Netns::new("cni-gone-pod2").unwrap();
    lab.run("tabby", "ADD", "g2", Some((&pod, "p2")), &conf)
        .result();
    let mut cmd = lab
        .node
        .command(lab.dir.path().join("tabby").to_str().unwrap());
    cmd.env("CNI_COMMAND", "DEL")
        .env("CNI_CONTAINERID", "g2")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_ARGS", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=p2");
    assert!(pipe(cmd, &conf).status.success());
    assert_eq!(lab.allocations(), 0);
}

fn pipe(mut cmd: std::process::Command, conf: &serde_json::Value) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CNI_")) {
        if !matches!(k.as_str(), "CNI_COMMAND" | "CNI_CONTAINERID" | "CNI_IFNAME") {
            cmd.env_remove(&k);
        }
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(conf).unwrap())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn bad_input_gets_its_code_on_stdout_and_allocates_nothing() {
    if !require_live(
        "bad_input_gets_its_code_on_stdout_and_allocates_nothing",
        BINS,
    ) {
        return;
    }
    let lab = Lab::new("cni-bad", true);
    let pod = Netns::new("cni-bad-pod").unwrap();
    let netns = pod.path();
    let netns = netns.to_str().unwrap();
    let add = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "b1"),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=bad"),
    ];
    let conf = lab.config("1.0.0");
    lab.run_raw(&add, b"{\"cniVersion\": nope").error(6);
    lab.run_raw(&add, &vec![b' '; 5 << 20]).error(6);
    let mut wrong = conf.clone();
    wrong["mtu"] = json!("1450");
    let e = lab
        .run_raw(&add, &serde_json::to_vec(&wrong).unwrap())
        .error(7);
    assert!(e["msg"].as_str().unwrap().contains("mtu"), "{e}");
    let mut wrong = conf.clone();
    wrong["ipam"] = json!({"type": "tabby-ipam", "assign_ipv4": "maybe"});
    let e = lab
        .run_raw(&add, &serde_json::to_vec(&wrong).unwrap())
        .error(7);
    assert!(
        e["msg"].as_str().unwrap().contains("ipam.assign_ipv4"),
        "{e}"
    );
    let mut old = conf.clone();
    old["cniVersion"] = json!("0.2.0");
    lab.run_raw(&add, &serde_json::to_vec(&old).unwrap())
        .error(1);
    let e = lab
        .run_raw(&add[..2], &serde_json::to_vec(&conf).unwrap())
        .error(4);
    assert!(
        e["msg"].as_str().unwrap().contains("CNI_NETNS, CNI_IFNAME"),
        "{e}"
    );
    let e = lab.run_raw(&[], b"{}").error(4);
    assert!(e["msg"].as_str().unwrap().contains("CNI_COMMAND"), "{e}");
    assert!(pod.ip(&["link", "show", "eth0"]).is_err());
    assert_eq!(lab.allocations(), 0, "a refused ADD allocated something");

    // libcni's VERSION probe.
    let probe = [
        ("CNI_COMMAND", "VERSION"),
        ("CNI_NETNS", "dummy"),
        ("CNI_IFNAME", "dummy"),
        ("CNI_PATH", "dummy"),
    ];
    let v = lab.run_raw(&probe, b"{\"cniVersion\":\"1.0.0\"}").result();
    assert_eq!(v["cniVersion"], "1.0.0");
    assert_eq!(
        v["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
}

#[test]
fn a_failed_add_rolls_back_and_leaks_nothing() {
    if !require_live("a_failed_add_rolls_back_and_leaks_nothing", BINS) {
        return;
    }
    let lab = Lab::new("cni-roll", true);
    let pod = Netns::new("cni-roll-pod").unwrap();
    // CNI_IFNAME is already taken in the pod: wiring fails after IPAM.
    pod.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ])
    .unwrap();
    let conf = lab.config("1.0.0");
    let e = lab
        .run("tabby", "ADD", "r1", Some((&pod, "roll")), &conf)
        .error(102);
    assert!(e["msg"].as_str().unwrap().contains("eth0"), "{e}");
    assert!(lab.held("r1").is_empty(), "the address leaked");
    assert_eq!(lab.allocations(), 0);
    let report = lab.leak_check();
    assert!(report.is_clean(), "{report:#?}");
    assert!(lab.host_links("cali").is_empty());
    let key = workload_endpoint_key(&lab.name, "default", "roll", "eth0");
    assert!(lab.stored(&key).is_none());
    // The runtime sends DEL after a failed ADD: it succeeds.
    lab.run("tabby", "DEL", "r1", Some((&pod, "roll")), &conf)
        .quiet();
    assert_eq!(lab.allocations(), 0);
}

#[test]
fn an_add_whose_netns_vanishes_after_allocation_leaks_nothing() {
    if !require_live(
        "an_add_whose_netns_vanishes_after_allocation_leaks_nothing",
        BINS,
    ) {
        return;
    }
    // The node is not registered yet: ADD checks the netns, then waits for
    // the Node. The netns is deleted while it waits; then the Node appears,
    // ADD allocates, and wiring finds the netns gone.
    let lab = Lab::new("cni-vanish", false);
    let pod = Netns::new("cni-vanish-pod").unwrap();
    let log = lab.dir.path().join("plugin.log");
    let mut conf = lab.config("1.0.0");
    conf["node_wait_seconds"] = json!(30);
    conf["log_file_path"] = json!(log);
    let child = lab.spawn("tabby", "ADD", "v1", Some((&pod, "vanish")), &conf);
    harness::wait_until(
        "the plugin to wait for the Node",
        Duration::from_secs(20),
        || Ok(std::fs::read_to_string(&log).is_ok_and(|l| l.contains("waiting up to"))),
    )
    .unwrap();
    drop(pod);
    lab.register_node();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "ADD succeeded: {stdout}");
    let e: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(e["code"].as_u64().is_some_and(|c| c != 0), "{e}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("allocated"),
        "it failed before allocating:\n{log}"
    );
    assert!(log.contains("rolling back"), "{log}");
    let report = lab.leak_check();
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!(lab.allocations(), 0);
    assert!(lab.host_links("cali").is_empty());
    let key = workload_endpoint_key(&lab.name, "default", "vanish", "eth0");
    assert!(lab.stored(&key).is_none());
}

#[test]
fn fifty_concurrent_adds_get_fifty_distinct_addresses() {
    if !require_live("fifty_concurrent_adds_get_fifty_distinct_addresses", BINS) {
        return;
    }
    let lab = Lab::new("cni-many", true);
    let conf = lab.config("1.0.0");
    let pods: Vec<Netns> = (0..CONCURRENT)
        .map(|i| Netns::new(&format!("cni-many-{i}")).unwrap())
        .collect();
    let names: Vec<String> = (0..CONCURRENT).map(|i| format!("pod-{i}")).collect();
    let children: Vec<_> = (0..CONCURRENT)
        .map(|i| {
            lab.spawn(
                "tabby",
                "ADD",
                &format!("m{i}"),
                Some((&pods[i], &names[i])),
                &conf,
            )
        })
        .collect();
    let mut ips = BTreeSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        ips.insert(pod_ip(&result));
    }
    assert_eq!(ips.len(), CONCURRENT, "{ips:?}");
    for ip in &ips {
        lab.node.exec("ping", &["-c", "1", "-W", "2", ip]).unwrap();
    }
    let children: Vec<_> = (0..CONCURRENT)
        .map(|i| {
            lab.spawn(
                "tabby",
                "DEL",
                &format!("m{i}"),
                Some((&pods[i], &names[i])),
                &conf,
            )
        })
        .collect();
    for child in children {
        assert!(child.wait_with_output().unwrap().status.success());
    }
    assert_eq!(lab.allocations(), 0);
    assert!(lab.host_links("cali").is_empty());
}
