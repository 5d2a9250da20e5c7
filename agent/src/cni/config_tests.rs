//! Unit tests of [`super`]: every parse error names its field.

use super::*;

const GOOD: &str = r#"{
    "cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "tabby",
    "log_level": "info", "log_file_path": "/var/log/tabby/cni.log",
    "datastore_type": "etcdv3", "nodename": "node-1", "mtu": 1440,
    "etcd_endpoints": "http://10.0.0.1:2379, http://10.0.0.2:2379",
    "ipam": {"type": "tabby-ipam", "assign_ipv6": "true"},
    "policy": {"type": "k8s"},
    "kubernetes": {"kubeconfig": "/etc/cni/net.d/calico-kubeconfig"},
    "capabilities": {"portMappings": true}
}"#;

fn with(key: &str, value: Value) -> Vec<u8> {
    let mut v: Value = serde_json::from_str(GOOD).unwrap();
    match key.strip_prefix("ipam.") {
        Some(inner) => v["ipam"][inner] = value,
        None => v[key] = value,
    }
    serde_json::to_vec(&v).unwrap()
}

fn without(key: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_str(GOOD).unwrap();
    match key.strip_prefix("ipam.") {
        Some(inner) => v["ipam"].as_object_mut().unwrap().remove(inner),
        None => v.as_object_mut().unwrap().remove(key),
    };
    serde_json::to_vec(&v).unwrap()
}

/// The error names `field` and has `code`.
fn refused(bytes: &[u8], code: u32, field: &str) {
    let e = NetConf::parse(bytes).unwrap_err();
    assert_eq!(e.code(), code, "{e}");
    assert!(e.to_string().contains(field), "{e} does not name {field}");
}

#[test]
fn a_calico_conflist_entry_parses_with_calicos_field_names() {
    let c = NetConf::parse(GOOD.as_bytes()).unwrap();
    assert_eq!(c.cni_version, CniVersion::V1_0_0);
    assert_eq!(c.name, "k8s-pod-network");
    assert_eq!(
        c.etcd.endpoints,
        ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
    );
    assert_eq!(c.mtu, Some(1440));
    assert!(c.ipam.is_tabby() && c.ipam.assign_ipv4 && c.ipam.assign_ipv6);
    assert_eq!(c.nodename.as_deref(), Some("node-1"));
    assert_eq!(c.lock_file, PathBuf::from("/var/run/tabby/cni.lock"));
    assert_eq!(c.node_wait, Duration::from_secs(10));
    assert_eq!(c.handle("abc"), "k8s-pod-network.abc");
    assert_eq!(c.prev_result, None);
}

#[test]
fn older_and_newer_versions_are_accepted() {
    for v in ["0.3.1", "0.4.0", "1.1.0"] {
        NetConf::parse(&with("cniVersion", v.into())).unwrap();
    }
    refused(&with("cniVersion", "0.2.0".into()), 1, "0.2.0");
    refused(&with("cniVersion", "2.0.0".into()), 1, "2.0.0");
}

#[test]
fn bad_json_is_code_6() {
    refused(b"{not json", 6, "decode");
    refused(b"", 6, "decode");
    refused(b"[1,2]", 6, "object");
}

#[test]
fn every_bad_field_is_code_7_naming_it() {
    refused(&without("cniVersion"), 7, "cniVersion");
    refused(&with("cniVersion", 1.into()), 6, "cniVersion");
    refused(&without("name"), 7, "name");
    refused(&with("name", "bad name!".into()), 7, "name");
    refused(&without("type"), 7, "type");
    refused(&with("type", "../x".into()), 7, "type");
    refused(&without("ipam"), 7, "ipam");
    refused(&with("ipam", "tabby-ipam".into()), 7, "ipam");
    refused(&without("ipam.type"), 7, "ipam.type");
    refused(
        &with("ipam.assign_ipv4", "yes".into()),
        7,
        "ipam.assign_ipv4",
    );
    refused(&with("ipam.assign_ipv6", 1.into()), 7, "ipam.assign_ipv6");
    refused(&with("ipam.routes", "x".into()), 7, "ipam.routes");
    refused(&without("etcd_endpoints"), 7, "etcd_endpoints");
    refused(&with("etcd_endpoints", "".into()), 7, "etcd_endpoints");
    refused(
        &with("etcd_endpoints", "10.0.0.1:2379".into()),
        7,
        "etcd_endpoints",
    );
    refused(&with("etcd_endpoints", 5.into()), 7, "etcd_endpoints");
    refused(
        &with("etcd_ca_cert_file", true.into()),
        7,
        "etcd_ca_cert_file",
    );
    refused(&with("mtu", "1500".into()), 7, "mtu");
    refused(&with("mtu", 40.into()), 7, "mtu");
    refused(&with("mtu", (-1).into()), 7, "mtu");
    refused(&with("nodename", "a/b".into()), 7, "nodename");
    refused(&with("nodename", 3.into()), 7, "nodename");
    refused(&with("log_level", "loud".into()), 7, "log_level");
    refused(&with("log_file_path", 1.into()), 7, "log_file_path");
    refused(&with("ipam_lock_file", 1.into()), 7, "ipam_lock_file");
    refused(
        &with("node_wait_seconds", (-2).into()),
        7,
        "node_wait_seconds",
    );
    refused(&with("interface_prefix", "".into()), 7, "interface_prefix");
    refused(&with("dns", "8.8.8.8".into()), 7, "dns");
    refused(
        &with("cni.dev/valid-attachments", "x".into()),
        7,
        "cni.dev/valid-attachments",
    );
    let nothing = with(
        "ipam",
        serde_json::json!({"type": "tabby-ipam", "assign_ipv4": false}),
    );
    refused(&nothing, 7, "ipam.assign_ipv4");
}

#[test]
fn features_tabby_lacks_are_code_2_naming_key_and_value() {
    refused(
        &with("datastore_type", "kubernetes".into()),
        2,
        "datastore_type=kubernetes",
    );
}

#[test]
fn pool_lists_are_kept_and_blank_entries_refused() {
    let c = NetConf::parse(&with(
        "ipam.ipv4_pools",
        serde_json::json!(["pool-a", " 10.1.0.0/16 "]),
    ))
    .unwrap();
    assert_eq!(c.ipam.ipv4_pools, ["pool-a", "10.1.0.0/16"]);
    assert!(c.ipam.ipv6_pools.is_empty());
    // empty lists are what Calico's templates often carry: accepted
    NetConf::parse(&with("ipam.ipv4_pools", serde_json::json!([]))).unwrap();
    refused(
        &with("ipam.ipv6_pools", serde_json::json!([""])),
        7,
        "ipam.ipv6_pools",
    );
    refused(
        &with("ipam.ipv4_pools", serde_json::json!("pool-a")),
        7,
        "ipam.ipv4_pools",
    );
}

#[test]
fn gc_attachments_and_prev_result_are_kept() {
    let mut v: Value = serde_json::from_str(GOOD).unwrap();
    v["cniVersion"] = "1.1.0".into();
    v["cni.dev/valid-attachments"] = serde_json::json!([{"containerID": "c1", "ifname": "eth0"}]);
    v["prevResult"] = serde_json::json!({"cniVersion": "1.1.0", "ips": []});
    let c = NetConf::parse(&serde_json::to_vec(&v).unwrap()).unwrap();
    assert_eq!(
        c.valid_attachments.unwrap(),
        [Attachment {
            container_id: "c1".into(),
            ifname: "eth0".into()
        }]
    );
    assert!(c.prev_result.is_some());
    assert_eq!(
        peek_version(&serde_json::to_vec(&v).unwrap()).as_deref(),
        Some("1.1.0")
    );
}

#[test]
fn names_follow_the_spec_pattern() {
    assert!(is_cni_name("k8s-pod-network") && is_cni_name("a.b_c-1"));
    assert!(!is_cni_name("") && !is_cni_name("-a") && !is_cni_name("a/b"));
}
