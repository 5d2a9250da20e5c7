//! The deploy/ manifests, parsed with serde-saphyr, against the contract of
//! the calico-node DaemonSet they replace; and the two scripts the
//! DaemonSet runs from its ConfigMap, run for real with `sh` on temp dirs.
//! (Schema validation is deploy/validate.sh's job: kubernetes-validate.)
//!
//! - `the_manifest_set_is_complete_and_kubectl_apply_f_safe`: the objects
//!   and their namespace; the `Kustomization` lists exactly deploy/*.yaml;
//!   no kustomization.yaml that `kubectl apply -f deploy/` would choke on.
//! - `daemonset_runs_privileged_on_the_host_network_of_every_node`:
//!   hostNetwork, privileged, system-node-critical, tolerations `Exists`
//!   for every NoSchedule and NoExecute taint, RollingUpdate with
//!   maxUnavailable 1, the ServiceAccount.
//! - `daemonset_mounts_the_host_paths`: each host path, in the container
//!   that needs it, read-only where it should be; no dangling volume.
//! - `probes_and_prestop_match_the_agent`: /liveness and /readiness on
//!   TABBY_HEALTH_ADDR; a preStop sleep shorter than the grace period.
//! - `tabby_node_env_is_what_tabby_node_reads`: every env var name of the
//!   tabby-node container (and the two start-node.sh exports) is one that
//!   `tabby-node --help` documents, each required one is set as expected,
//!   and every ConfigMap reference resolves.
//! - `rbac_is_least_privilege`: exactly the rules tabby-node needs.
//! - `conflist_template_chains_tabby_and_portmap`.
//! - `install_cni_installs_the_plugin_and_renames_the_conflist_into_place`:
//!   placeholders filled, binaries installed, and the conflist only ever
//!   appears under its final name by `mv` of a complete temp file (a `mv`
//!   shim records the files at the moment of the rename; a reader thread
//!   never sees a partial file); the result is accepted by tabby-cni's
//!   config parser and its cniVersion by `tabby-cni` VERSION.
//! - `install_cni_copies_tls_files_and_refuses_bad_input`.
//! - `start_node_maps_encapsulation_and_execs_tabby_node`.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

/// One YAML document of deploy/*.yaml, with the file it came from.
#[derive(Debug)]
struct Doc {
    file: String,
    value: Value,
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn yaml_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(deploy_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn docs() -> Vec<Doc> {
    let mut out = Vec::new();
    for path in yaml_files() {
        let text = fs::read_to_string(&path).unwrap();
        let values: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        out.extend(values.into_iter().map(|value| Doc {
            file: file.clone(),
            value,
        }));
    }
    out
}

fn object(kind: &str, name: &str) -> Value {
    let all = docs();
    let found: Vec<&Doc> = all
        .iter()
        .filter(|d| d.value["kind"] == kind && d.value["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "exactly one {kind}/{name} in deploy/");
    found[0].value.clone()
}

fn daemonset() -> Value {
    object("DaemonSet", "tabby-node")
}

fn pod_spec() -> Value {
    daemonset()["spec"]["template"]["spec"].clone()
}

fn container(spec: &Value, list: &str, name: &str) -> Value {
    spec[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list} is a list"))
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{list} has {name}"))
        .clone()
}

fn agent_container() -> Value {
    container(&pod_spec(), "containers", "tabby-node")
}

fn init_container() -> Value {
    container(&pod_spec(), "initContainers", "install-cni")
}

/// name -> the env entry.
fn env_of(c: &Value) -> BTreeMap<String, Value> {
    c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

fn config_data() -> serde_json::Map<String, Value> {
    object("ConfigMap", "tabby-config")["data"]
        .as_object()
        .unwrap()
        .clone()
}

fn config_value(key: &str) -> String {
    config_data()[key]
        .as_str()
        .unwrap_or_else(|| panic!("tabby-config data.{key} is a string"))
        .to_string()
}

fn str_set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_manifest_set_is_complete_and_kubectl_apply_f_safe() {
    let all = docs();
    let mut objects = BTreeSet::new();
    for d in &all {
        let v = &d.value;
        let kind = v["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: kind", d.file));
        assert!(v["apiVersion"].is_string(), "{}: apiVersion", d.file);
        let name = v["metadata"]["name"].as_str().unwrap().to_string();
        let cluster_scoped = matches!(kind, "Namespace" | "ClusterRole" | "ClusterRoleBinding");
        if cluster_scoped {
            assert!(v["metadata"]["namespace"].is_null(), "{kind}/{name}");
        } else {
            assert_eq!(v["metadata"]["namespace"], "tabby-system", "{kind}/{name}");
        }
        assert!(objects.insert((kind.to_string(), name)), "duplicate");
    }
    let expected: BTreeSet<(String, String)> = [
        ("Namespace", "tabby-system"),
        ("ServiceAccount", "tabby-node"),
        ("ClusterRole", "tabby-node"),
        ("ClusterRoleBinding", "tabby-node"),
        ("Role", "tabby-node"),
        ("RoleBinding", "tabby-node"),
        ("ConfigMap", "tabby-config"),
        ("Secret", "tabby-etcd-secrets"),
        ("DaemonSet", "tabby-node"),
    ]
    .iter()
    .map(|(k, n)| (k.to_string(), n.to_string()))
    .collect();
    assert_eq!(objects, expected);
    // `kubectl apply -f` reads files in name order: the Namespace first.
    assert_eq!(all[0].value["kind"], "Namespace", "{}", all[0].file);

    // The kustomize base lists every manifest, and is not a *.yaml that
    // `kubectl apply -f deploy/` would send to the API server.
    for name in ["kustomization.yaml", "kustomization.yml"] {
        assert!(!deploy_dir().join(name).exists(), "deploy/{name}");
    }
    let k: Value =
        serde_saphyr::from_str(&fs::read_to_string(deploy_dir().join("Kustomization")).unwrap())
            .unwrap();
    assert_eq!(k["kind"], "Kustomization");
    let listed = str_set(&k["resources"]);
    let files: BTreeSet<String> = yaml_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(listed, files);
}

#[test]
fn daemonset_runs_privileged_on_the_host_network_of_every_node() {
    let ds = daemonset();
    let spec = pod_spec();
    assert_eq!(spec["hostNetwork"], true);
    assert_eq!(spec["priorityClassName"], "system-node-critical");
    assert_eq!(agent_container()["securityContext"]["privileged"], true);
    assert_eq!(spec["serviceAccountName"], "tabby-node");
    object("ServiceAccount", "tabby-node");

    let tolerations = spec["tolerations"].as_array().unwrap();
    for t in tolerations {
        assert_eq!(t["operator"], "Exists", "{t}");
        assert!(t.get("value").is_none(), "{t}");
    }
    // A toleration with no key and operator Exists matches every taint of
    // its effect.
    for effect in ["NoSchedule", "NoExecute"] {
        assert!(
            tolerations
                .iter()
                .any(|t| t["effect"] == effect && t.get("key").is_none()),
            "a keyless Exists toleration for {effect}: {tolerations:?}"
        );
    }

    let strategy = &ds["spec"]["updateStrategy"];
    assert_eq!(strategy["type"], "RollingUpdate");
    assert_eq!(strategy["rollingUpdate"]["maxUnavailable"], json!(1));
    let selector = &ds["spec"]["selector"]["matchLabels"];
    let labels = &ds["spec"]["template"]["metadata"]["labels"];
    for (k, v) in selector.as_object().unwrap() {
        assert_eq!(&labels[k], v, "the selector matches the pod labels");
    }
}

#[test]
fn daemonset_mounts_the_host_paths() {
    let spec = pod_spec();
    let volumes: BTreeMap<String, Value> = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap().to_string(), v.clone()))
        .collect();
    let host_volume = |path: &str| -> (String, Value) {
        let (name, v) = volumes
            .iter()
            .find(|(_, v)| v["hostPath"]["path"] == path)
            .unwrap_or_else(|| panic!("a hostPath volume for {path}"));
        (name.clone(), v.clone())
    };
    let mount = |c: &Value, volume: &str| -> Value {
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == volume)
            .unwrap_or_else(|| panic!("{} mounts {volume}", c["name"]))
            .clone()
    };
    let agent = agent_container();
    let init = init_container();
    // (host path, container, mount path, read-only)
    let expected = [
        ("/lib/modules", &agent, "/lib/modules", true),
        ("/var/run/tabby", &agent, "/var/run/tabby", false),
        ("/var/lib/tabby", &agent, "/var/lib/tabby", false),
        ("/run/xtables.lock", &agent, "/run/xtables.lock", false),
        ("/opt/cni/bin", &init, "/host/opt/cni/bin", false),
        ("/etc/cni/net.d", &init, "/host/etc/cni/net.d", false),
        ("/etc/cni/net.d", &agent, "/etc/cni/net.d", false),
    ];
    for (host, c, at, ro) in expected {
        let (name, v) = host_volume(host);
        let m = mount(c, &name);
        assert_eq!(m["mountPath"], at, "{host}");
        assert_eq!(m["readOnly"].as_bool().unwrap_or(false), ro, "{host}");
        if host == "/run/xtables.lock" {
            assert_eq!(v["hostPath"]["type"], "FileOrCreate");
        }
    }
    // The init container writes where the script is told to.
    let env = env_of(&init);
    assert_eq!(env["CNI_BIN_DIR"]["value"], "/host/opt/cni/bin");
    assert_eq!(env["CNI_NET_DIR"]["value"], "/host/etc/cni/net.d");
    assert_eq!(env["HOST_CNI_NET_DIR"]["value"], "/etc/cni/net.d");
    assert_eq!(env["CNI_CONF_NAME"]["value"], "10-tabby.conflist");

    // The scripts and the TLS files are mounted where the commands and the
    // ConfigMap's comments say.
    assert_eq!(mount(&agent, "tabby-config")["mountPath"], "/etc/tabby");
    assert_eq!(mount(&init, "tabby-config")["mountPath"], "/etc/tabby");
    assert_eq!(volumes["tabby-config"]["configMap"]["name"], "tabby-config");
    for c in [&agent, &init] {
        assert_eq!(mount(c, "etcd-certs")["mountPath"], "/tabby-secrets");
        assert_eq!(mount(c, "etcd-certs")["readOnly"], true);
    }
    let secret = &volumes["etcd-certs"]["secret"];
    assert_eq!(secret["secretName"], "tabby-etcd-secrets");
    assert_eq!(secret["defaultMode"], json!(0o400));
    assert_eq!(
        init["command"],
        json!(["/bin/sh", "/etc/tabby/install-cni.sh"])
    );
    assert_eq!(
        agent["command"],
        json!([
            "/bin/sh",
            "/etc/tabby/start-node.sh",
            "/usr/local/bin/tabby-node"
        ])
    );

    // Every mount names a declared volume, and every volume is mounted.
    let mut used = BTreeSet::new();
    for c in [&agent, &init] {
        for m in c["volumeMounts"].as_array().unwrap() {
            let name = m["name"].as_str().unwrap();
            assert!(volumes.contains_key(name), "undeclared volume {name}");
            used.insert(name.to_string());
        }
    }
    assert_eq!(used, volumes.keys().cloned().collect::<BTreeSet<_>>());
}

#[test]
fn probes_and_prestop_match_the_agent() {
    let agent = agent_container();
    let env = env_of(&agent);
    let health = env["TABBY_HEALTH_ADDR"]["value"].as_str().unwrap();
    for (probe, path) in [
        ("livenessProbe", "/liveness"),
        ("readinessProbe", "/readiness"),
    ] {
        let get = &agent[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        let addr = format!("{}:{}", get["host"].as_str().unwrap(), get["port"]);
        assert_eq!(addr, health, "{probe} probes TABBY_HEALTH_ADDR");
    }
    let command = str_set(&agent["lifecycle"]["preStop"]["exec"]["command"]);
    let sleep = command
        .iter()
        .find_map(|c| c.strip_prefix("sleep "))
        .expect("preStop sleeps");
    let sleep: u64 = sleep.trim().parse().unwrap();
    let grace = pod_spec()["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(
        sleep > 0 && sleep + 10 <= grace,
        "sleep {sleep}, grace {grace}"
    );
}

/// The env var names `tabby-node --help` documents (`[env: NAME=]`).
fn documented_env() -> BTreeSet<String> {
    let bin = harness::lab::workspace_binary("tabby-node").unwrap();
    let out = Command::new(&bin).arg("--help").output().unwrap();
    assert!(out.status.success(), "{} --help", bin.display());
    let help = String::from_utf8(out.stdout).unwrap();
    let names: BTreeSet<String> = help
        .split("[env: ")
        .skip(1)
        .map(|rest| rest.split('=').next().unwrap().to_string())
        .collect();
    assert!(names.contains("NODENAME"), "{help}");
    names
}

#[test]
fn tabby_node_env_is_what_tabby_node_reads() {
    let documented = documented_env();
    let env = env_of(&agent_container());
    for name in env.keys() {
        assert!(
            documented.contains(name),
            "{name} is not an env var of tabby-node --help: {documented:?}"
        );
    }
    let script = config_value("start-node.sh");
    for name in ["TABBY_IPV4POOL_IPIP", "TABBY_IPV4POOL_VXLAN"] {
        assert!(documented.contains(name), "{name}");
        assert!(
            script
                .lines()
                .any(|l| l.trim_start().starts_with("export ") && l.contains(name)),
            "start-node.sh exports {name}"
        );
    }

    let literal = |name: &str| env[name]["value"].as_str().unwrap_or_default().to_string();
    let config_key = |name: &str| {
        let r = &env[name]["valueFrom"]["configMapKeyRef"];
        assert_eq!(r["name"], "tabby-config", "{name}");
        (
            r["key"].as_str().unwrap().to_string(),
            r["optional"].as_bool().unwrap_or(false),
        )
    };
    assert_eq!(
        env["NODENAME"]["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    assert_eq!(
        env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.namespace",
        "the GC Lease lives in the agent's own namespace"
    );
    literal("TABBY_IPAM_GC_GRACE_SECONDS")
        .parse::<u64>()
        .unwrap();
    // The kubeconfig the agent writes is the one the conflist names, in
    // the host directory the agent mounts.
    let template = config_value("cni_network_config");
    assert!(
        template.contains(&format!(
            "\"kubeconfig\": \"{}\"",
            literal("TABBY_CNI_KUBECONFIG")
        )),
        "{template}"
    );
    assert_eq!(literal("IP"), "autodetect");
    assert!(!literal("IP_AUTODETECTION_METHOD").is_empty());
    assert!(
        !env.contains_key("AS"),
        "the AS comes from the BGPConfiguration, as in Calico's manifest"
    );
    assert_eq!(
        literal("TABBY_CONTROL_SOCKET"),
        "/var/run/tabby/tabby-node.sock"
    );
    assert_eq!(literal("TABBY_STATE_DIR"), "/var/lib/tabby");
    assert_eq!(
        config_key("ETCD_ENDPOINTS"),
        ("etcd_endpoints".into(), false)
    );
    assert_eq!(
        config_key("TABBY_IPV4POOL_CIDR"),
        ("ipv4_pool_cidr".into(), false)
    );
    assert_eq!(
        config_key("TABBY_IPV4POOL_BLOCK_SIZE"),
        ("ipv4_pool_block_size".into(), false)
    );
    assert_eq!(config_key("TABBY_MTU"), ("veth_mtu".into(), false));
    // tabby-node refuses an empty file path, so the TLS vars are optional
    // references to keys that are absent until the operator enables TLS.
    for (name, key) in [
        ("ETCD_CA_CERT_FILE", "etcd_ca"),
        ("ETCD_CERT_FILE", "etcd_cert"),
        ("ETCD_KEY_FILE", "etcd_key"),
    ] {
        assert_eq!(config_key(name), (key.into(), true));
        assert!(
            !config_data().contains_key(key),
            "{key} is unset by default"
        );
    }

    // Every non-optional ConfigMap reference, in both containers, resolves.
    let data = config_data();
    for c in [agent_container(), init_container()] {
        for (name, e) in env_of(&c) {
            let r = &e["valueFrom"]["configMapKeyRef"];
            if r.is_null() || r["optional"] == true {
                continue;
            }
            let key = r["key"].as_str().unwrap();
            assert!(data.contains_key(key), "{name}: tabby-config has no {key}");
        }
    }
    // Values tabby-node parses as numbers or CIDRs.
    config_value("ipv4_pool_block_size").parse::<u8>().unwrap();
    config_value("veth_mtu").parse::<u32>().unwrap();
    config_value("ipv4_pool_cidr")
        .parse::<ipnet::Ipv4Net>()
        .unwrap();

    let secret = object("Secret", "tabby-etcd-secrets");
    let keys: BTreeSet<String> = secret["data"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, set(&["etcd-ca", "etcd-cert", "etcd-key"]));
    for v in secret["data"].as_object().unwrap().values() {
        assert_eq!(v, "", "the Secret ships empty placeholders");
    }
}

#[test]
fn rbac_is_least_privilege() {
    let rules = |kind: &str| -> BTreeSet<(String, String, BTreeSet<String>, BTreeSet<String>)> {
        let role = object(kind, "tabby-node");
        let mut out = BTreeSet::new();
        for r in role["rules"].as_array().unwrap() {
            let verbs = str_set(&r["verbs"]);
            let names = if r["resourceNames"].is_null() {
                BTreeSet::new()
            } else {
                str_set(&r["resourceNames"])
            };
            for g in str_set(&r["apiGroups"]) {
                for res in str_set(&r["resources"]) {
                    assert!(!verbs.contains("*") && res != "*" && g != "*", "{r}");
                    out.insert((g.clone(), res, verbs.clone(), names.clone()));
                }
            }
        }
        out
    };
    let rule = |g: &str, r: &str, verbs: &[&str], names: &[&str]| {
        (g.to_string(), r.to_string(), set(verbs), set(names))
    };
    assert_eq!(
        rules("ClusterRole"),
        [
            rule("", "nodes", &["get", "list", "watch", "patch"], &[]),
            rule("", "nodes/status", &["patch"], &[]),
            rule("", "pods", &["get", "list", "watch"], &[]),
            rule("", "namespaces", &["get"], &[]),
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(
        rules("Role"),
        [
            rule(
                "coordination.k8s.io",
                "leases",
                &["get", "update"],
                &["tabby-ipam-gc"]
            ),
            rule("coordination.k8s.io", "leases", &["create"], &[]),
        ]
        .into_iter()
        .collect()
    );
    for (binding, role) in [
        ("ClusterRoleBinding", "ClusterRole"),
        ("RoleBinding", "Role"),
    ] {
        let b = object(binding, "tabby-node");
        assert_eq!(b["roleRef"]["kind"], role);
        assert_eq!(b["roleRef"]["name"], "tabby-node");
        assert_eq!(
            b["subjects"],
            json!([{"kind": "ServiceAccount", "name": "tabby-node", "namespace": "tabby-system"}])
        );
    }
}

const PLACEHOLDERS: &[&str] = &[
    "__ETCD_ENDPOINTS__",
    "__ETCD_CA_CERT_FILE__",
    "__ETCD_CERT_FILE__",
    "__ETCD_KEY_FILE__",
    "__KUBERNETES_NODE_NAME__",
    "__CNI_MTU__",
];

/// The `__X__` placeholders of a text.
fn placeholders(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("__") {
        let after = &rest[i + 2..];
        match after.find("__") {
            Some(j)
                if j > 0
                    && after[..j]
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') =>
            {
                out.insert(format!("__{}__", &after[..j]));
                rest = &after[j + 2..];
            }
            _ => rest = after,
        }
    }
    out
}

/// Checks a conflist's plugin chain: tabby with tabby-ipam, then portmap.
fn check_chain(conflist: &Value) {
    let plugins = conflist["plugins"].as_array().unwrap();
    assert_eq!(plugins[0]["type"], "tabby", "{conflist}");
    assert_eq!(plugins[0]["ipam"], json!({"type": "tabby-ipam"}));
    let portmap: Vec<&Value> = plugins.iter().filter(|p| p["type"] == "portmap").collect();
    assert_eq!(portmap.len(), 1, "{conflist}");
    assert_eq!(portmap[0]["capabilities"]["portMappings"], true);
}

#[test]
fn conflist_template_chains_tabby_and_portmap() {
    let template = config_value("cni_network_config");
    assert_eq!(placeholders(&template), set(PLACEHOLDERS));
    let mut filled = template.clone();
    for p in PLACEHOLDERS {
        filled = filled.replace(p, if *p == "__CNI_MTU__" { "0" } else { "x" });
    }
    let conflist: Value = serde_json::from_str(&filled).unwrap();
    check_chain(&conflist);
    assert_eq!(conflist["name"], "k8s-pod-network");
    // The runtime loads only the first file by name: 10-tabby.conflist.
    assert!(config_value("install-cni.sh").contains("10-tabby.conflist"));
}

/// One `mv` the shim saw: the source and destination, the source's content
/// and what was under the destination name just before the rename.
#[derive(Debug)]
struct Rename {
    src: PathBuf,
    dst: PathBuf,
    content: Vec<u8>,
    before: Option<Vec<u8>>,
}

/// Extra environment for one install-cni.sh run (`None` unsets).
type Env<'a> = Vec<(&'a str, Option<&'a str>)>;

/// A scratch host: bin/ and net/ stand in for /opt/cni/bin and
/// /etc/cni/net.d, with a fake tabby-cni and a `mv` shim that records
/// every rename it performs.
#[derive(Debug)]
struct Host {
    _dir: tempfile::TempDir,
    root: PathBuf,
    script: PathBuf,
    fake: PathBuf,
    shim: PathBuf,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        for d in ["bin", "net", "shim", "log", "src"] {
            fs::create_dir(root.join(d)).unwrap();
        }
        let script = root.join("src/install-cni.sh");
        fs::write(&script, config_value("install-cni.sh")).unwrap();
        let fake = root.join("src/tabby-cni");
        fs::write(&fake, "#!/bin/sh\necho fake tabby-cni\n").unwrap();
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o700)).unwrap();
        let real_mv = ["/usr/bin/mv", "/bin/mv"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap();
        // Before each rename: a copy of the source and of what is under the
        // destination name at that moment (if anything), then the real mv.
        let shim = root.join("shim");
        fs::write(
            shim.join("mv"),
            format!(
                "#!/bin/sh\n\
                 log={log}\n\
                 n=$(ls \"$log\" | grep -c '^call' || true)\n\
                 for last; do :; done\n\
                 for src; do case $src in -*) ;; *) break ;; esac; done\n\
                 printf '%s\\n%s\\n' \"$src\" \"$last\" >\"$log/call$n\"\n\
                 cp \"$src\" \"$log/src$n\"\n\
                 if [ -e \"$last\" ]; then cp \"$last\" \"$log/before$n\"; fi\n\
                 exec {real_mv} \"$@\"\n",
                log = root.join("log").display()
            ),
        )
        .unwrap();
        fs::set_permissions(shim.join("mv"), fs::Permissions::from_mode(0o755)).unwrap();
        Host {
            _dir: dir,
            root,
            script,
            fake,
            shim,
        }
    }

    fn bin(&self) -> PathBuf {
        self.root.join("bin")
    }

    fn net(&self) -> PathBuf {
        self.root.join("net")
    }

    fn conflist(&self) -> PathBuf {
        self.net().join("10-tabby.conflist")
    }

    /// Runs install-cni.sh with the DaemonSet's template and `env` on top
    /// of a working base environment (a `None` value removes a variable).
    fn install(&self, env: &[(&str, Option<&str>)]) -> Output {
        let mut base: BTreeMap<String, String> = [
            ("CNI_NETWORK_CONFIG", config_value("cni_network_config")),
            ("CNI_CONF_NAME", "10-tabby.conflist".into()),
            (
                "ETCD_ENDPOINTS",
                "http://10.0.0.1:2379,https://10.0.0.2:2379".into(),
            ),
            ("KUBERNETES_NODE_NAME", "node-a".into()),
            ("CNI_MTU", "1440".into()),
            ("CNI_BIN_DIR", self.bin().display().to_string()),
            ("CNI_NET_DIR", self.net().display().to_string()),
            ("HOST_CNI_NET_DIR", "/etc/cni/net.d".into()),
            ("TABBY_CNI_BINARY", self.fake.display().to_string()),
            (
                "PATH",
                format!(
                    "{}:{}",
                    self.shim.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in env {
            match v {
                Some(v) => base.insert(k.to_string(), v.to_string()),
                None => base.remove(*k),
            };
        }
        Command::new("sh")
            .arg(&self.script)
            .env_clear()
            .envs(&base)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The renames the shim saw, in order.
    fn renames(&self) -> Vec<Rename> {
        let log = self.root.join("log");
        let mut out = Vec::new();
        for n in 0.. {
            let Ok(call) = fs::read_to_string(log.join(format!("call{n}"))) else {
                break;
            };
            let mut lines = call.lines();
            out.push(Rename {
                src: PathBuf::from(lines.next().unwrap()),
                dst: PathBuf::from(lines.next().unwrap()),
                content: fs::read(log.join(format!("src{n}"))).unwrap(),
                before: fs::read(log.join(format!("before{n}"))).ok(),
            });
        }
        out
    }

    fn clear_log(&self) {
        let log = self.root.join("log");
        fs::remove_dir_all(&log).unwrap();
        fs::create_dir(&log).unwrap();
    }

    /// Files whose name starts with a dot in bin/ and net/.
    fn leftovers(&self) -> Vec<PathBuf> {
        [self.bin(), self.net()]
            .iter()
            .flat_map(|d| fs::read_dir(d).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect()
    }
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "install-cni.sh failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// The renames onto `dst`.
fn renames_onto(host: &Host, dst: &Path) -> Vec<Rename> {
    host.renames()
        .into_iter()
        .filter(|r| r.dst == dst)
        .collect()
}

#[test]
fn install_cni_installs_the_plugin_and_renames_the_conflist_into_place() {
    let host = Host::new();
    ok(&host.install(&[]));

    // The plugin, under both names, executable.
    let fake = fs::read(&host.fake).unwrap();
    for name in ["tabby", "tabby-ipam"] {
        let p = host.bin().join(name);
        assert_eq!(fs::read(&p).unwrap(), fake, "{name}");
        assert_eq!(mode(&p), 0o755, "{name}");
    }

    // The conflist: every placeholder filled, the chain intact.
    let written = fs::read_to_string(host.conflist()).unwrap();
    assert!(placeholders(&written).is_empty(), "{written}");
    assert_eq!(mode(&host.conflist()), 0o600);
    let conflist: Value = serde_json::from_str(&written).unwrap();
    check_chain(&conflist);
    let tabby = &conflist["plugins"][0];
    assert_eq!(
        tabby["etcd_endpoints"],
        "http://10.0.0.1:2379,https://10.0.0.2:2379"
    );
    assert_eq!(tabby["nodename"], "node-a");
    assert_eq!(tabby["mtu"], json!(1440));
    for k in ["etcd_ca_cert_file", "etcd_cert_file", "etcd_key_file"] {
        assert_eq!(tabby[k], "", "{k}: no TLS configured");
    }

    // It got there by one rename of a complete temp file in the same
    // directory, and nothing was under the final name before that.
    let onto = renames_onto(&host, &host.conflist());
    assert_eq!(onto.len(), 1, "{onto:?}");
    let rename = &onto[0];
    assert_eq!(rename.src, host.net().join(".10-tabby.conflist.tmp"));
    assert_eq!(
        rename.content,
        written.as_bytes(),
        "the temp file was complete"
    );
    assert!(
        rename.before.is_none(),
        "no file under the final name before the rename"
    );
    // The binaries too are renamed into place from a dot file beside them.
    for name in ["tabby", "tabby-ipam"] {
        let onto = renames_onto(&host, &host.bin().join(name));
        assert_eq!(onto.len(), 1, "{name}");
        assert_eq!(onto[0].src, host.bin().join(format!(".{name}.tmp")));
    }
    assert!(host.leftovers().is_empty(), "{:?}", host.leftovers());

    // Reinstall with another MTU: the old file stays whole under the final
    // name until the rename, and the binaries are replaced (new inode),
    // never rewritten in place (a running plugin would make that fail).
    let inode = fs::metadata(host.bin().join("tabby")).unwrap().ino();
    host.clear_log();
    ok(&host.install(&[("CNI_MTU", Some("1400"))]));
    let onto = renames_onto(&host, &host.conflist());
    assert_eq!(onto.len(), 1);
    assert_eq!(onto[0].before.as_deref(), Some(written.as_bytes()));
    let rewritten: Value =
        serde_json::from_str(&fs::read_to_string(host.conflist()).unwrap()).unwrap();
    assert_eq!(rewritten["plugins"][0]["mtu"], json!(1400));
    assert_ne!(fs::metadata(host.bin().join("tabby")).unwrap().ino(), inode);

    // A reader polling the final name while the script runs again and again
    // only ever sees a whole conflist.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = Arc::clone(&stop);
        let path = host.conflist();
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(text) = fs::read_to_string(&path) {
                    let v: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("partial conflist seen ({e}): {text:?}"));
                    check_chain(&v);
                    reads += 1;
                }
            }
            reads
        })
    };
    for mtu in 1300..1320 {
        ok(&host.install(&[("CNI_MTU", Some(&mtu.to_string()))]));
    }
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);

    // What the plugin makes of it: tabby-cni's own config parser accepts
    // each plugin object of the written conflist as the runtime sends it,
    // and the binary supports the conflist's cniVersion.
    let conflist: Value =
        serde_json::from_str(&fs::read_to_string(host.conflist()).unwrap()).unwrap();
    let mut request = conflist["plugins"][0].clone();
    request["name"] = conflist["name"].clone();
    request["cniVersion"] = conflist["cniVersion"].clone();
    let conf = agent::cni::NetConf::parse(request.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("tabby-cni refuses the written conflist: {e:?}"));
    assert!(conf.ipam.is_tabby());
    assert_eq!(conf.nodename.as_deref(), Some("node-a"));
    assert_eq!(conf.mtu, Some(1319));
    assert_eq!(conf.etcd.endpoints.len(), 2);
    assert!(conf.etcd.ca_cert_file.is_none());
    let cni = harness::lab::workspace_binary("tabby-cni").unwrap();
    let mut child = Command::new(&cni)
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(request.to_string().as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let version: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        str_set(&version["supportedVersions"]).contains(conflist["cniVersion"].as_str().unwrap()),
        "{version}"
    );
}

#[test]
fn install_cni_copies_tls_files_and_refuses_bad_input() {
    // TLS: the files are copied beside the conflist (the plugin runs on the
    // host) and the conflist names them by their host path.
    let host = Host::new();
    let secrets = host.root.join("secrets");
    fs::create_dir(&secrets).unwrap();
    for key in ["etcd-ca", "etcd-cert", "etcd-key"] {
        fs::write(secrets.join(key), format!("-----PEM {key}-----\n")).unwrap();
    }
    let path = |key: &str| secrets.join(key).display().to_string();
    let (ca, cert, key) = (path("etcd-ca"), path("etcd-cert"), path("etcd-key"));
    ok(&host.install(&[
        ("ETCD_CA_CERT_FILE", Some(&ca)),
        ("ETCD_CERT_FILE", Some(&cert)),
        ("ETCD_KEY_FILE", Some(&key)),
    ]));
    let tls = host.net().join("tabby-tls");
    assert_eq!(mode(&tls), 0o700);
    for name in ["etcd-ca", "etcd-cert", "etcd-key"] {
        assert_eq!(
            fs::read(tls.join(name)).unwrap(),
            fs::read(secrets.join(name)).unwrap()
        );
        assert_eq!(mode(&tls.join(name)), 0o600, "{name}");
    }
    let conflist: Value =
        serde_json::from_str(&fs::read_to_string(host.conflist()).unwrap()).unwrap();
    let tabby = &conflist["plugins"][0];
    assert_eq!(
        tabby["etcd_ca_cert_file"],
        "/etc/cni/net.d/tabby-tls/etcd-ca"
    );
    assert_eq!(
        tabby["etcd_cert_file"],
        "/etc/cni/net.d/tabby-tls/etcd-cert"
    );
    assert_eq!(tabby["etcd_key_file"], "/etc/cni/net.d/tabby-tls/etcd-key");

    // Bad input: a non-zero exit with a message, and no conflist written.
    let empty = host.root.join("empty");
    fs::write(&empty, "").unwrap();
    let empty = empty.display().to_string();
    let bad_template = config_value("cni_network_config").replace("k8s-pod-network", "__FOO__");
    let cases: Vec<(&str, Env, &str)> = vec![
        (
            "no endpoints",
            vec![("ETCD_ENDPOINTS", None)],
            "ETCD_ENDPOINTS",
        ),
        (
            "no node name",
            vec![("KUBERNETES_NODE_NAME", Some(""))],
            "KUBERNETES_NODE_NAME",
        ),
        (
            "no template",
            vec![("CNI_NETWORK_CONFIG", None)],
            "CNI_NETWORK_CONFIG",
        ),
        (
            "MTU not a number",
            vec![("CNI_MTU", Some("15x0"))],
            "CNI_MTU",
        ),
        (
            "a quote in a value",
            vec![("ETCD_ENDPOINTS", Some("http://a\",\"x\":\"y"))],
            "ETCD_ENDPOINTS",
        ),
        (
            "an empty TLS file",
            vec![("ETCD_CA_CERT_FILE", Some(&empty))],
            "missing or empty",
        ),
        (
            "an unknown placeholder",
            vec![("CNI_NETWORK_CONFIG", Some(&bad_template))],
            "__FOO__",
        ),
    ];
    for (what, env, message) in cases {
        let host = Host::new();
        let out = host.install(&env);
        assert!(!out.status.success(), "{what}: exit 0");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{what}: {stderr}");
        assert!(!host.conflist().exists(), "{what}: conflist written");
        assert!(
            host.leftovers().iter().all(|p| !p.starts_with(host.net())),
            "{what}: {:?}",
            host.leftovers()
        );
    }
}

#[test]
fn start_node_maps_encapsulation_and_execs_tabby_node() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("start-node.sh");
    fs::write(&script, config_value("start-node.sh")).unwrap();
    // A stand-in for tabby-node: prints its pid, the pool modes and args.
    let fake = dir.path().join("tabby-node");
    fs::write(
        &fake,
        "#!/bin/sh\necho \"$$ ${TABBY_IPV4POOL_IPIP:-unset} ${TABBY_IPV4POOL_VXLAN:-unset} $*\"\n",
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let run = |encapsulation: Option<&str>, env: &[(&str, &str)]| -> (bool, String, String) {
        let conf = dir.path().join("encapsulation");
        match encapsulation {
            Some(e) => fs::write(&conf, e).unwrap(),
            None => {
                let _ = fs::remove_file(&conf);
            }
        }
        let child = Command::new("sh")
            .arg(&script)
            .arg(&fake)
            .arg("--flag")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() {
            // exec: tabby-node is the process the kubelet started (PID 1
            // in the container), so SIGTERM reaches it.
            assert!(
                stdout.starts_with(&format!("{pid} ")),
                "{stdout} (pid {pid})"
            );
        }
        let rest = stdout
            .split_once(' ')
            .map(|(_, r)| r.to_string())
            .unwrap_or_default();
        (
            out.status.success(),
            rest,
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let cases = [
        (Some("IPIP"), "Always Never --flag"),
        (Some("IPIPCrossSubnet"), "CrossSubnet Never --flag"),
        (Some("VXLAN"), "Never Always --flag"),
        (Some("VXLANCrossSubnet"), "Never CrossSubnet --flag"),
        (Some("None"), "Never Never --flag"),
        (None, "Never Never --flag"),
    ];
    for (enc, expected) in cases {
        let (success, out, err) = run(enc, &[]);
        assert!(success, "{enc:?}: {err}");
        assert_eq!(out, expected, "{enc:?}");
    }
    // An explicit env var wins over the ConfigMap.
    let (success, out, _) = run(Some("VXLAN"), &[("TABBY_IPV4POOL_VXLAN", "CrossSubnet")]);
    assert!(success);
    assert_eq!(out, "Never CrossSubnet --flag");
    // A typo stops the container with a message instead of guessing.
    let (success, out, err) = run(Some("vxlan-always"), &[]);
    assert!(!success);
    assert!(out.is_empty(), "tabby-node must not start: {out}");
    assert!(err.contains("vxlan-always"), "{err}");
    // The shipped default is one of the accepted values.
    let default = config_value("encapsulation");
    let (success, _, err) = run(Some(&default), &[]);
    assert!(success, "{default}: {err}");
}
