//! `tabby-cni` against Debian's reference plugins (`/usr/lib/cni/ptp` with
//! `host-local`), driven by the same harness with the same inputs, and
//! against stdin no runtime should send.
//!
//! - `results_have_the_reference_shape_in_every_version`: for cniVersion
//!   0.3.1, 0.4.0 and 1.0.0 (ptp 1.1.1 stops at 1.0.0), ADD through both
//!   plugins into two pods gives results with the same key paths and JSON
//!   types, except the documented differences below; in both, `ips[i].
//!   interface` points at the interface whose `sandbox` is CNI_NETNS, the
//!   result echoes the config's version, and DEL leaves nothing behind.
//! - `bad_configs_and_versions_get_the_reference_codes`: not JSON, a JSON
//!   array, a non-string cniVersion (6), a missing name (7), an unsupported
//!   version (1), a missing CNI_NETNS and an unknown command (4) get the
//!   same code from both, as a JSON error on stdout and a non-zero exit.
//! - `malformed_stdin_never_panics` (proptest): random bytes, truncated
//!   configs and configs with one field replaced by an arbitrary JSON value
//!   always get a JSON error on stdout with a code from the spec's table
//!   (or tabby's 100+), exit 1, and no panic.
//!
//! Where tabby differs from ptp on purpose (as Calico does):
//! - no `ips[].gateway`: a tabby pod has a /32 and reaches everything
//!   through 169.254.1.1 (proxy ARP on the host veth), which is therefore
//!   `routes[].gw` of the default route rather than an address gateway;
//! - tabby reports the host side's MTU only from 1.1.0 (the spec's field).
//!
//! For wrongly typed plugin fields (`"mtu": "big"`), ptp answers 999 (its
//! catch-all); tabby answers 7 naming the field, as the spec asks.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod cni_support;

use std::collections::BTreeSet;

use cni_support::{Lab, NETWORK};
use harness::{Netns, require_live};
use proptest::prelude::*;
use serde_json::{Value, json};

const BINS: &[&str] = &[
    "ip",
    "etcd",
    "etcdctl",
    "/usr/lib/cni/ptp",
    "/usr/lib/cni/host-local",
];
const PTP: &str = "/usr/lib/cni/ptp";

/// Key paths with JSON types: `ips[].address: string`.
fn shape(v: &Value) -> BTreeSet<String> {
    fn walk(v: &Value, at: &str, out: &mut BTreeSet<String>) {
        let kind = match v {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(a) => {
                for x in a {
                    walk(x, &format!("{at}[]"), out);
                }
                "array"
            }
            Value::Object(m) => {
                for (k, x) in m {
                    let at = if at.is_empty() {
                        k.clone()
                    } else {
                        format!("{at}.{k}")
                    };
                    walk(x, &at, out);
                }
                "object"
            }
        };
        if !at.is_empty() {
            out.insert(format!("{at}: {kind}"));
        }
    }
    let mut out = BTreeSet::new();
    walk(v, "", &mut out);
    out
}

/// The reference plugin's config for the same network.
fn ptp_config(lab: &Lab, version: &str) -> Value {
    json!({
        "cniVersion": version,
        "name": NETWORK,
        "type": "ptp",
        "mtu": 1450,
        "ipam": {
            "type": "host-local",
            "subnet": "10.9.0.0/24",
            "dataDir": lab.dir.path().join("host-local"),
            "routes": [{"dst": "0.0.0.0/0"}],
        },
    })
}

/// What both plugins' results must say, whatever their differences.
fn assert_well_formed(who: &str, r: &Value, version: &str, pod: &Netns) {
    assert_eq!(r["cniVersion"], version, "{who}: {r}");
    let interfaces = r["interfaces"].as_array().unwrap();
    let sandbox = pod.path().display().to_string();
    for ip in r["ips"].as_array().unwrap() {
        let i = ip["interface"].as_u64().unwrap() as usize;
        assert_eq!(interfaces[i]["sandbox"], sandbox.as_str(), "{who}: {r}");
        let addr = ip["address"].as_str().unwrap();
        addr.parse::<ipnet::IpNet>()
            .unwrap_or_else(|e| panic!("{who}: {addr}: {e}"));
    }
    assert!(
        r["routes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["dst"] == "0.0.0.0/0"),
        "{who}: no default route in {r}"
    );
}

#[test]
fn results_have_the_reference_shape_in_every_version() {
    if !require_live("results_have_the_reference_shape_in_every_version", BINS) {
        return;
    }
    let lab = Lab::new("cni-conf", true);
    // ptp adds /24 routes towards its pods; both plugins share the node.
    for version in ["0.3.1", "0.4.0", "1.0.0"] {
        let ours_pod = Netns::new("cni-conf-t").unwrap();
        let ref_pod = Netns::new("cni-conf-r").unwrap();
        let conf = lab.config(version);
        let ref_conf = ptp_config(&lab, version);
        let ours = lab
            .run("tabby", "ADD", "t1", Some((&ours_pod, "t1")), &conf)
            .result();
        let reference = lab
            .run(PTP, "ADD", "r1", Some((&ref_pod, "r1")), &ref_conf)
            .result();
        assert_well_formed("tabby", &ours, version, &ours_pod);
        assert_well_formed("ptp", &reference, version, &ref_pod);

        let ours_shape = shape(&ours);
        let ref_shape = shape(&reference);
        let only_ref: BTreeSet<&String> = ref_shape.difference(&ours_shape).collect();
        let only_ours: BTreeSet<&String> = ours_shape.difference(&ref_shape).collect();
        let expected_ref: BTreeSet<String> = ["ips[].gateway: string".to_string()].into();
        let expected_ours: BTreeSet<String> = ["routes[].gw: string".to_string()].into();
        assert_eq!(
            only_ref,
            expected_ref.iter().collect(),
            "{version}: fields only ptp gives\nptp: {reference:#}\ntabby: {ours:#}"
        );
        assert_eq!(
            only_ours,
            expected_ours.iter().collect(),
            "{version}: fields only tabby gives\nptp: {reference:#}\ntabby: {ours:#}"
        );

        lab.run("tabby", "DEL", "t1", Some((&ours_pod, "t1")), &conf)
            .quiet();
        lab.run(PTP, "DEL", "r1", Some((&ref_pod, "r1")), &ref_conf)
            .quiet();
        assert_eq!(lab.allocations(), 0, "{version}: tabby kept an address");
        let leases = lab.dir.path().join("host-local").join(NETWORK);
        let held: Vec<_> = std::fs::read_dir(&leases)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("10.9."))
                    .collect()
            })
            .unwrap_or_default();
        assert!(held.is_empty(), "{version}: host-local kept {held:?}");
        assert!(lab.host_links("cali").is_empty());
        assert!(lab.host_links("veth").is_empty());
    }
}

/// One bad invocation, given to both plugins.
struct Case {
    name: &'static str,
    /// stdin for tabby, and the same for ptp (its own `type` and IPAM)
    stdin: (Vec<u8>, Vec<u8>),
    command: &'static str,
    /// whether CNI_NETNS is set
    netns: bool,
    code: u64,
}

impl Case {
    fn add(name: &'static str, stdin: (Vec<u8>, Vec<u8>), code: u64) -> Case {
        Case {
            name,
            stdin,
            command: "ADD",
            netns: true,
            code,
        }
    }
}

#[test]
fn bad_configs_and_versions_get_the_reference_codes() {
    if !require_live("bad_configs_and_versions_get_the_reference_codes", BINS) {
        return;
    }
    let lab = Lab::new("cni-codes", true);
    let pod = Netns::new("cni-codes-pod").unwrap();
    let netns = pod.path().display().to_string();
    let ours = lab.config("1.0.0");
    let reference = ptp_config(&lab, "1.0.0");
    let mut no_name = ours.clone();
    no_name.as_object_mut().unwrap().remove("name");
    let mut version_number = ours.clone();
    version_number["cniVersion"] = json!(1);
    let mut future = ours.clone();
    future["cniVersion"] = json!("9.9.9");
    let bytes = |v: &Value| serde_json::to_vec(v).unwrap();
    let ptp_like = |v: &Value| {
        // the same change on ptp's own config
        let mut r = reference.clone();
        for k in ["cniVersion", "name"] {
            match v.get(k) {
                Some(x) if *x != ours[k] => r[k] = x.clone(),
                None => {
                    r.as_object_mut().unwrap().remove(k);
                }
                _ => {}
            }
        }
        bytes(&r)
    };
    let raw = |b: &[u8]| (b.to_vec(), b.to_vec());
    let same = |v: &Value| (bytes(v), ptp_like(v));
    let cases = [
        Case::add("not JSON", raw(b"not json"), 6),
        Case::add("a JSON array", raw(b"[1,2]"), 6),
        Case::add("cniVersion a number", same(&version_number), 6),
        Case::add("no name", same(&no_name), 7),
        Case::add("unsupported version", same(&future), 1),
        Case {
            netns: false,
            ..Case::add("no CNI_NETNS", same(&ours), 4)
        },
        Case {
            command: "BOGUS",
            ..Case::add("unknown command", same(&ours), 4)
        },
    ];
    for Case {
        name: case,
        stdin: (tabby_stdin, ptp_stdin),
        command,
        netns: with_netns,
        code,
    } in cases
    {
        let mut vars = vec![
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/usr/lib/cni"),
        ];
        if with_netns {
            vars.push(("CNI_NETNS", netns.as_str()));
        }
        let t = lab.run_raw(&vars, &tabby_stdin);
        let r = lab.run_raw_with(PTP, &vars, &ptp_stdin);
        let tv = t.error(code);
        let rv = r.error(code);
        assert!(
            tv["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "{case}: tabby gave no message: {tv}"
        );
        eprintln!(
            "{case}: both {code} (tabby {:?}, ptp {:?})",
            tv["msg"], rv["msg"]
        );
    }
    assert_eq!(lab.allocations(), 0);
    assert!(pod.ip(&["link", "show", "eth0"]).is_err());
}

/// The codes tabby may answer with: the spec's table and tabby's own 100+.
fn is_known_code(code: u64) -> bool {
    matches!(code, 1..=7 | 11 | 50 | 51) || (100..=199).contains(&code)
}

/// Inputs no runtime should send: random bytes, a config cut short, a
/// config with one field replaced by an arbitrary JSON value.
fn malformed() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    let value = leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let fields = [
        "cniVersion",
        "name",
        "type",
        "mtu",
        "ipam",
        "etcd_endpoints",
        "nodename",
        "log_level",
        "dns",
        "prevResult",
        "runtimeConfig",
        "node_wait_seconds",
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        (0usize..400).prop_map(|cut| {
            let full = serde_json::to_vec(&base_config()).unwrap();
            full[..cut.min(full.len() - 1)].to_vec()
        }),
        (prop::sample::select(fields.to_vec()), value).prop_map(|(field, v)| {
            let mut c = base_config();
            c[field] = v;
            serde_json::to_vec(&c).unwrap()
        }),
    ]
}

/// A valid config whose datastore is a closed loopback port: a mutation
/// that stays valid fails fast at the datastore, never touches a real one.
fn base_config() -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": NETWORK,
        "type": "tabby",
        "etcd_endpoints": "http://127.0.0.1:9",
        "etcd_timeout_seconds": 1,
        "nodename": "fuzz",
        "node_wait_seconds": 1,
        "ipam": {"type": "tabby-ipam"},
    })
}

#[test]
fn malformed_stdin_never_panics() {
    if !require_live("malformed_stdin_never_panics", BINS) {
        return;
    }
    let lab = Lab::new("cni-fuzz", false);
    let pod = Netns::new("cni-fuzz-pod").unwrap();
    let netns = pod.path().display().to_string();
    let lock = lab.dir.path().join("fuzz.lock").display().to_string();
    let config = ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(stdin in malformed())| {
        // a valid lock path in the lab, so a mutation that stays valid
        // does not need /var/run/tabby
        let stdin = match serde_json::from_slice::<Value>(&stdin) {
            Ok(Value::Object(mut m)) if !m.contains_key("ipam_lock_file") => {
                m.insert("ipam_lock_file".into(), lock.clone().into());
                serde_json::to_vec(&m).unwrap()
            }
            _ => stdin,
        };
        let vars = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "f1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", netns.as_str()),
            ("CNI_PATH", "/usr/lib/cni"),
        ];
        let run = lab.run_raw(&vars, &stdin);
        prop_assert!(!run.ok, "accepted {:?}", String::from_utf8_lossy(&stdin));
        prop_assert!(!run.stderr.contains("panicked"), "panic:\n{}", run.stderr);
        let reply: Value = serde_json::from_str(&run.stdout)
            .map_err(|e| TestCaseError::fail(format!("no JSON on stdout ({e}): {:?}", run.stdout)))?;
        let code = reply["code"].as_u64().unwrap_or(0);
        prop_assert!(is_known_code(code), "code {code}: {reply}");
        prop_assert!(reply["msg"].as_str().is_some_and(|m| !m.is_empty()), "{reply}");
    });
    assert!(lab.host_links("cali").is_empty());
}
