//! `routectl`'s datastore verbs against a real etcd (started per test),
//! run as the operator runs them: the built binary, its stdout, stderr and
//! exit code.
//!
//! - `ipam_check_reports_leaks_and_release_frees_only_what_two_reports_agree_on`:
//!   an allocation whose handle no WorkloadEndpoint owns is reported and
//!   released by `check` + `release --from-report`; a live pod's is kept;
//!   a report taken before the address was re-allocated (new sequence
//!   number) releases nothing.
//! - `apply_get_delete_round_trip_every_kind`: IPPool, BGPPeer,
//!   BGPConfiguration, Node and IPAMConfiguration applied as Calico v3
//!   YAML; `get -o yaml|json` applies back unchanged; a Node keeps what the
//!   agent wrote; an IPPool in use is refused (5) until released; missing
//!   resources exit 4, bad input 3 naming the field, bad usage 2.
//!
//! Needs `cargo build -p tabby-agent --bins` first (the binary is found
//! next to the test executable).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use agent::cni::add::NETWORK_LABEL;
use agent::resources::{WorkloadEndpoint, WorkloadEndpointSpec, node_key};
use harness::{Etcd, require_live};
use ipam::{AssignArgs, Attrs, Datastore, EtcdConfig, EtcdStore, IpPool, Ipam};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

struct Ctl {
    bin: PathBuf,
    endpoint: String,
}

impl Ctl {
    fn new(etcd: &Etcd) -> Ctl {
        Ctl {
            bin: harness::lab::workspace_binary("routectl").unwrap(),
            endpoint: etcd.endpoint(),
        }
    }

    fn run_with(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(&self.bin)
            .args(args)
            .env("ETCD_ENDPOINTS", &self.endpoint)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Run, expect exit code `code`, return stdout + stderr.
    fn expect(&self, code: i32, args: &[&str], stdin: &str) -> String {
        let out = self.run_with(args, stdin);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(code), "routectl {args:?}: {text}");
        text
    }

    fn ok(&self, args: &[&str]) -> String {
        self.expect(0, args, "")
    }
}

async fn connect(endpoint: &str) -> Ipam<EtcdStore> {
    Ipam::new(
        EtcdStore::connect(&EtcdConfig::new([endpoint]))
            .await
            .unwrap(),
    )
}

fn wep(node: &str, network: &str, container_id: &str) -> WorkloadEndpoint {
    let mut w = WorkloadEndpoint::new(
        "default",
        WorkloadEndpointSpec {
            orchestrator: "cni".into(),
            node: node.into(),
            container_id: container_id.into(),
            pod: container_id.into(),
            endpoint: "eth0".into(),
            interface_name: "cali0123456789a".into(),
            ..WorkloadEndpointSpec::default()
        },
    );
    w.metadata
        .labels
        .insert(NETWORK_LABEL.into(), network.into());
    w
}

#[test]
fn ipam_check_reports_leaks_and_release_frees_only_what_two_reports_agree_on() {
    if !require_live(
        "ipam_check_reports_leaks_and_release_frees_only_what_two_reports_agree_on",
        &["etcd"],
    ) {
        return;
    }
    let etcd = Etcd::start().unwrap();
    let ctl = Ctl::new(&etcd);
    let dir = tempfile::tempdir().unwrap();
    let report = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let rt = rt();
    let ipam = rt.block_on(connect(&etcd.endpoint()));
    rt.block_on(async {
        ipam.apply_pool(&IpPool::new("pool", "10.77.0.0/24"))
            .await
            .unwrap();
        let node =
            br#"{"apiVersion":"projectcalico.org/v3","kind":"Node","metadata":{"name":"n1"}}"#;
        ipam.store()
            .create(&node_key("n1"), node.to_vec())
            .await
            .unwrap();
        for h in ["net.live", "net.gone"] {
            let mut args = AssignArgs::new(h, "n1");
            args.num_v4 = 1;
            ipam.auto_assign(&args).await.unwrap();
        }
        let live = wep("n1", "net", "live");
        ipam.store()
            .create(&live.key(), live.to_json())
            .await
            .unwrap();
    });
    let gone = rt.block_on(ipam.ips_by_handle("net.gone")).unwrap();
    assert_eq!(gone.len(), 1);

    let out = ctl.ok(&["ipam", "check", "-o", &report("r1.json")]);
    assert!(out.contains("Found 2 IP allocations"), "{out}");
    assert!(out.contains("Found 1 leaked"), "{out}");
    assert!(
        out.contains(&format!("{}  handle net.gone  node n1", gone[0])),
        "{out}"
    );
    assert!(!out.contains("net.live"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report("r1.json")).unwrap()).unwrap();
    assert_eq!(json["leaked"][0]["handle"], "net.gone");

    let out = ctl.ok(&["ipam", "release", "--from-report", &report("r1.json")]);
    assert!(
        out.contains("Released 1 addresses") && out.contains(&gone[0].to_string()),
        "{out}"
    );
    assert!(
        rt.block_on(ipam.ips_by_handle("net.gone"))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        rt.block_on(ipam.ips_by_handle("net.live")).unwrap().len(),
        1
    );
    let out = ctl.ok(&["ipam", "check"]);
    assert!(out.contains("Found 0 leaked"), "{out}");

    // A report older than a change: the leaked address is released and
    // allocated again (a new sequence number) before `release` runs.
    let ip: IpAddr = "10.77.0.200".parse().unwrap();
    rt.block_on(ipam.assign_ip(ip, "net.old", "n1", &Attrs::new()))
        .unwrap();
    let out = ctl.ok(&["ipam", "check", "-o", &report("r2.json")]);
    assert!(
        out.contains("Found 1 leaked") && out.contains("net.old"),
        "{out}"
    );
    rt.block_on(async {
        ipam.release_by_handle("net.old").await.unwrap();
        ipam.assign_ip(ip, "net.old", "n1", &Attrs::new())
            .await
            .unwrap();
    });
    let out = ctl.ok(&["ipam", "release", "--from-report", &report("r2.json")]);
    assert!(out.contains("Released 0 addresses"), "{out}");
    assert!(
        out.contains("Skipped 1") && out.contains("10.77.0.200"),
        "{out}"
    );
    assert_eq!(
        rt.block_on(ipam.ips_by_handle("net.old")).unwrap(),
        vec![ip]
    );

    // A file that is not a report is refused as invalid input.
    std::fs::write(report("bad.json"), "{\"leaked\": 1}").unwrap();
    let out = ctl.expect(
        3,
        &["ipam", "release", "--from-report", &report("bad.json")],
        "",
    );
    assert!(out.contains("not an `ipam check` report"), "{out}");
}

const MANIFEST: &str = "apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool-a
spec:
  cidr: 10.88.0.0/16
  blockSize: 26
  ipipMode: Never
  vxlanMode: CrossSubnet
  natOutgoing: true
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: tor
spec:
  peerIP: 10.200.0.50
  asNumber: 65000
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  nodeToNodeMeshEnabled: true
  asNumber: 64513
---
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: n1
  labels:
    rack: r1
spec:
  bgp:
    asNumber: 65001
---
apiVersion: projectcalico.org/v3
kind: IPAMConfiguration
metadata:
  name: default
spec:
  strictAffinity: true
  maxBlocksPerHost: 4
";

#[test]
fn apply_get_delete_round_trip_every_kind() {
    if !require_live("apply_get_delete_round_trip_every_kind", &["etcd"]) {
        return;
    }
    let etcd = Etcd::start().unwrap();
    let ctl = Ctl::new(&etcd);
    let rt = rt();
    let ipam = rt.block_on(connect(&etcd.endpoint()));
    // What an agent wrote into its Node before the operator applies.
    let agent_node = br#"{"apiVersion":"projectcalico.org/v3","kind":"Node",
        "metadata":{"name":"n1","labels":{"zone":"a"}},
        "spec":{"bgp":{"ipv4Address":"192.0.2.11/24"},"vxlanTunnelMACAddr":"66:00:00:00:00:01"}}"#;
    rt.block_on(ipam.store().create(&node_key("n1"), agent_node.to_vec()))
        .unwrap();

    let out = ctl.expect(0, &["apply", "-f", "-"], MANIFEST);
    for line in [
        "IPPool pool-a applied",
        "BGPPeer tor applied",
        "BGPConfiguration default applied",
        "Node n1 applied",
        "IPAMConfiguration default applied",
    ] {
        assert!(out.contains(line), "{out}");
    }

    // Tables: NAME and key columns.
    let t = ctl.ok(&["get", "IPPools"]);
    assert!(
        t.starts_with("NAME ") && t.contains("pool-a") && t.contains("10.88.0.0/16"),
        "{t}"
    );
    let t = ctl.ok(&["get", "bgppeer"]);
    assert!(
        t.contains("tor") && t.contains("10.200.0.50") && t.contains("65000"),
        "{t}"
    );
    let t = ctl.ok(&["get", "bgpconfigurations", "default"]);
    assert!(t.contains("default") && t.contains("64513"), "{t}");
    let t = ctl.ok(&["get", "nodes"]);
    assert!(
        t.contains("n1") && t.contains("65001") && t.contains("192.0.2.11/24"),
        "{t}"
    );
    let t = ctl.ok(&["get", "ipamconfig"]);
    assert!(t.contains("STRICTAFFINITY") && t.contains("true"), "{t}");

    // The Node was merged: the agent's fields and labels stay.
    let node = ctl.ok(&["get", "node", "n1", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&node).unwrap();
    assert_eq!(v["metadata"]["labels"]["zone"], "a");
    assert_eq!(v["metadata"]["labels"]["rack"], "r1");
    assert_eq!(v["spec"]["vxlanTunnelMACAddr"], "66:00:00:00:00:01");
    assert_eq!(v["spec"]["bgp"]["asNumber"], 65001);

    // get -o yaml|json applies back, changing nothing.
    let before: Vec<String> = [
        "ippools",
        "bgppeers",
        "bgpconfigurations",
        "nodes",
        "ipamconfig",
    ]
    .iter()
    .map(|k| ctl.ok(&["get", k, "-o", "json"]))
    .collect();
    for (k, json) in [
        "ippools",
        "bgppeers",
        "bgpconfigurations",
        "nodes",
        "ipamconfig",
    ]
    .iter()
    .zip(&before)
    {
        let yaml = ctl.ok(&["get", k, "-o", "yaml"]);
        ctl.expect(0, &["apply", "-f", "-"], &yaml);
        ctl.expect(0, &["apply", "-f", "-"], json);
        assert_eq!(&ctl.ok(&["get", k, "-o", "json"]), json, "{k}");
    }

    // Exit codes: 4 not found, 3 invalid input naming the field, 2 usage.
    let out = ctl.expect(4, &["get", "ippool", "nope"], "");
    assert!(out.contains("IPPool \"nope\" not found"), "{out}");
    ctl.expect(4, &["delete", "bgppeer", "nope"], "");
    let out = ctl.expect(2, &["get", "felixconfiguration"], "");
    assert!(out.contains("unknown resource kind"), "{out}");
    let out = ctl.expect(
        3,
        &["apply", "-f", "-"],
        &MANIFEST.replace("maxBlocksPerHost", "maxBlocksPerHst"),
    );
    assert!(
        out.contains("maxBlocksPerHst") && out.contains("document 5"),
        "{out}"
    );
    let out = ctl.expect(
        3,
        &["apply", "-f", "-"],
        &MANIFEST.replace("natOutgoing", "natOutgong"),
    );
    assert!(
        out.contains("natOutgong") && out.contains("document 1"),
        "{out}"
    );

    // An IPPool in use is refused, saying how many, until released.
    let mut args = AssignArgs::new("net.pod", "n1");
    args.num_v4 = 2;
    rt.block_on(ipam.auto_assign(&args)).unwrap();
    let out = ctl.expect(5, &["delete", "ippool", "pool-a"], "");
    assert!(
        out.contains("2 addresses are still allocated") && out.contains("--force"),
        "{out}"
    );
    rt.block_on(ipam.release_by_handle("net.pod")).unwrap();
    let out = ctl.ok(&["delete", "IPPool", "pool-a"]);
    assert!(out.contains("IPPool pool-a deleted"), "{out}");
    ctl.expect(4, &["get", "ippools", "pool-a"], "");
    let state = rt.block_on(ipam.snapshot()).unwrap();
    assert!(state.affinities.is_empty(), "{:?}", state.affinities);
    assert!(ctl.ok(&["ipam", "check"]).contains("found 0 problems"));

    ctl.ok(&["delete", "bgppeers", "tor"]);
    ctl.expect(4, &["get", "bgppeer", "tor"], "");
    ctl.ok(&["delete", "bgpconfiguration", "default"]);
    ctl.ok(&["delete", "ipamconfiguration", "default"]);
    let t = ctl.ok(&["get", "ipamconfig", "-o", "yaml"]);
    assert!(t.contains("strictAffinity: false"), "{t}");
    ctl.expect(4, &["delete", "ipamconfig", "other"], "");
    ctl.ok(&["delete", "node", "n1"]);
    ctl.expect(4, &["get", "node", "n1"], "");
}
