//! Shared by the `cni_*` tests: a "node" namespace with its own etcd and an
//! uplink, pods, and the real `tabby-cni` binary run exactly as containerd
//! runs a plugin: `ip netns exec <node>` (the plugin runs in the node's
//! host namespace), the CNI_* environment, the config on stdin.
//!
//! Where etcd runs: inside the node namespace on 127.0.0.1:2379
//! (`Etcd::start_in`), so the plugin reaches it on the node's own loopback
//! and every test has a private etcd. The test process talks to it from a
//! thread inside the namespace ([`Lab::ipam`]).
//!
//! The binary: a dependency's `CARGO_BIN_EXE_*` is not available to this
//! crate, so [`plugin_binary`] runs `cargo build -p tabby-agent --bin
//! tabby-cni` once per test process (a no-op when up to date) and takes it
//! from the profile directory this test binary runs from. It is linked into
//! a private CNI_PATH as `tabby` and `tabby-ipam`, as it is installed.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use agent::resources::{self, Node};
use harness::{Etcd, Netns};
use ipam::store::Datastore;
use ipam::{EtcdConfig, EtcdStore, IpPool, Ipam};
use serde_json::{Value, json};

pub const NETWORK: &str = "k8s-pod-network";
pub const POOL: &str = "10.244.0.0/16";
pub const PORTMAP: &str = "/usr/lib/cni/portmap";

/// The built plugin (see the module doc).
pub fn plugin_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            // <target>/<profile>/deps/<test>-<hash>
            let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "-q", "-p", "tabby-agent", "--bin", "tabby-cni"]);
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            let target_dir = profile_dir.parent().unwrap();
            cmd.env("CARGO_TARGET_DIR", target_dir);
            let status = cmd.status().unwrap();
            assert!(status.success(), "building tabby-cni failed");
            let bin = profile_dir.join("tabby-cni");
            assert!(bin.is_file(), "{} was not built", bin.display());
            bin
        })
        .clone()
}

/// What one plugin run gave.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The stdout JSON of a successful run.
    pub fn result(&self) -> Value {
        assert!(
            self.ok,
            "plugin failed: {}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        serde_json::from_str(&self.stdout).unwrap()
    }

    /// A failed run's error JSON (on stdout), checked to carry `code`.
    pub fn error(&self, code: u64) -> Value {
        assert!(!self.ok, "plugin succeeded: {}", self.stdout);
        let v: Value = serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("no error JSON on stdout ({e}): {:?}", self.stdout));
        assert_eq!(v["code"], code, "{v}\nstderr:\n{}", self.stderr);
        v
    }

    /// A successful run that printed nothing (DEL, CHECK, GC, STATUS).
    pub fn quiet(&self) {
        assert!(
            self.ok,
            "plugin failed: {}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert_eq!(self.stdout.trim(), "", "stderr:\n{}", self.stderr);
    }
}

/// A node namespace with etcd, a registered Node, a pool and an uplink.
pub struct Lab {
    pub node: Netns,
    pub etcd: Etcd,
    pub name: String,
    pub dir: tempfile::TempDir,
}

impl Lab {
    /// The lab; `register` says whether the Node resource is written.
    pub fn new(tag: &str, register: bool) -> Lab {
        let node = Netns::new(tag).unwrap();
        // Proxy ARP answers for 169.254.1.1 only when the node routes it out
        // of another interface: an uplink with a default route, as on a node.
        harness::veth(&node, "up0", &node, "up1").unwrap();
        node.ip(&["addr", "add", "172.31.255.1/24", "dev", "up0"])
            .unwrap();
        node.ip(&["route", "add", "default", "via", "172.31.255.2"])
            .unwrap();
        node.sysctl("net.ipv4.ip_forward", "1").unwrap();
        let etcd = Etcd::start_in(&node, "127.0.0.1".parse().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for name in ["tabby", "tabby-ipam"] {
            std::os::unix::fs::symlink(plugin_binary(), dir.path().join(name)).unwrap();
        }
        let lab = Lab {
            node,
            etcd,
            name: format!("node-{tag}"),
            dir,
        };
        lab.ipam(move |ipam| async move {
            ipam.apply_pool(&IpPool::new("default-ipv4-ippool", POOL))
                .await
                .unwrap();
        });
        if register {
            lab.register_node();
        }
        lab
    }

    /// Write this node's Node resource, as the node agent does at start.
    pub fn register_node(&self) {
        let name = self.name.clone();
        self.ipam(move |ipam| async move {
            let node = serde_json::to_vec(&Node::new(&name)).unwrap();
            ipam.store()
                .create(&resources::node_key(&name), node)
                .await
                .unwrap();
        });
    }

    /// Run `f` with an IPAM client on the lab's etcd (from inside the node).
    pub fn ipam<T, F, Fut>(&self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce(Ipam<EtcdStore>) -> Fut + Send + 'static,
        Fut: Future<Output = T>,
    {
        self.node
            .block_on(move || async move {
                let store = EtcdStore::connect(&EtcdConfig::new(["http://127.0.0.1:2379"]))
                    .await
                    .unwrap();
                f(Ipam::new(store)).await
            })
            .unwrap()
    }

    /// The addresses IPAM holds for the container's handle.
    pub fn held(&self, container: &str) -> Vec<std::net::IpAddr> {
        let handle = format!("{NETWORK}.{container}");
        self.ipam(move |ipam| async move { ipam.ips_by_handle(&handle).await.unwrap() })
    }

    /// Every allocation in every block (0 = nothing leaked).
    pub fn allocations(&self) -> usize {
        self.ipam(|ipam| async move {
            let snap = ipam.snapshot().await.unwrap();
            snap.blocks
                .values()
                .map(|b| b.value.in_use())
                .sum::<usize>()
                + snap.handles.len()
        })
    }

    /// IPAM's leak check with no live workload (and this node alive): a
    /// clean report means nothing is held for a pod that is not there.
    pub fn leak_check(&self) -> ipam::Report {
        let node = self.name.clone();
        self.ipam(move |ipam| async move {
            let state = ipam.snapshot().await.unwrap();
            let live = ipam::LiveOwners {
                workloads: Default::default(),
                nodes: [node].into(),
            };
            ipam::check::check(&state, &live)
        })
    }

    /// The stored value at `key`, as JSON.
    pub fn stored(&self, key: &str) -> Option<Value> {
        let key = key.to_string();
        self.ipam(move |ipam| async move {
            let kv = ipam.store().get(&key).await.unwrap()?;
            Some(serde_json::from_slice(&kv.value).unwrap())
        })
    }

    /// The plugin config (a conflist's `tabby` entry as containerd sends it).
    pub fn config(&self, version: &str) -> Value {
        json!({
            "cniVersion": version,
            "name": NETWORK,
            "type": "tabby",
            "log_level": "debug",
            "datastore_type": "etcdv3",
            "etcd_endpoints": "http://127.0.0.1:2379",
            "etcd_timeout_seconds": 2,
            "nodename": self.name,
            "mtu": 1450,
            "ipam_lock_file": self.dir.path().join("cni.lock"),
            "node_wait_seconds": 2,
            "ipam": {"type": "tabby-ipam"},
            "policy": {"type": "k8s"},
        })
    }

    /// CNI_PATH: our plugins, then Debian's.
    pub fn cni_path(&self) -> String {
        format!("{}:/usr/lib/cni", self.dir.path().display())
    }

    /// Start `plugin` (a name in CNI_PATH) inside the node for `command`.
    pub fn spawn(
        &self,
        plugin: &str,
        command: &str,
        container: &str,
        pod: Option<(&Netns, &str)>,
        config: &Value,
    ) -> std::process::Child {
        let bin = if plugin.starts_with('/') {
            PathBuf::from(plugin)
        } else {
            self.dir.path().join(plugin)
        };
        let mut cmd = self.node.command(bin.to_str().unwrap());
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CNI_")) {
            cmd.env_remove(k);
        }
        cmd.env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", container)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", self.cni_path());
        if let Some((netns, name)) = pod {
            cmd.env("CNI_NETNS", netns.path()).env(
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={name};\
                     K8S_POD_INFRA_CONTAINER_ID={container};K8S_POD_UID=uid-{name}"
                ),
            );
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = serde_json::to_vec(config).unwrap();
        child.stdin.take().unwrap().write_all(&stdin).unwrap();
        child
    }

    /// Run `plugin` to completion.
    pub fn run(
        &self,
        plugin: &str,
        command: &str,
        container: &str,
        pod: Option<(&Netns, &str)>,
        config: &Value,
    ) -> Run {
        Run::from(
            self.spawn(plugin, command, container, pod, config)
                .wait_with_output()
                .unwrap(),
        )
    }

    /// Run `tabby` with raw stdin bytes and exactly the env `vars`.
    pub fn run_raw(&self, vars: &[(&str, &str)], stdin: &[u8]) -> Run {
        let bin = self.dir.path().join("tabby");
        self.run_raw_with(bin.to_str().unwrap(), vars, stdin)
    }

    /// Run the plugin binary `bin` with raw stdin bytes and exactly `vars`.
    pub fn run_raw_with(&self, bin: &str, vars: &[(&str, &str)], stdin: &[u8]) -> Run {
        let mut cmd = self.node.command(bin);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CNI_")) {
            cmd.env_remove(k);
        }
        cmd.envs(vars.iter().copied());
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The plugin may refuse before reading all of a huge input.
        let _ = child.stdin.take().unwrap().write_all(stdin);
        Run::from(child.wait_with_output().unwrap())
    }

    /// Links in the node whose name starts with `prefix`.
    pub fn host_links(&self, prefix: &str) -> Vec<String> {
        self.node
            .ip(&["-o", "link", "show"])
            .unwrap()
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .filter(|n| n.starts_with(prefix))
            .collect()
    }
}

/// `config` with `prevResult` set (DEL and CHECK get the cached ADD result).
pub fn with_prev(config: &Value, prev: &Value) -> Value {
    let mut c = config.clone();
    c["prevResult"] = prev.clone();
    c
}

/// The pod address (without prefix) of an ADD result.
pub fn pod_ip(result: &Value) -> String {
    let addr = result["ips"][0]["address"].as_str().unwrap();
    addr.split('/').next().unwrap().to_string()
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
