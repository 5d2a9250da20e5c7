//! The tabby lab: nodes running `tabby-node` in namespaces, etcd beside
//! them, two subnets joined by a router.
//!
//! ```text
//!  subnet A 10.200.0.0/24 (switch)          subnet B 10.201.0.0/24 (switch)
//!    n1 .1   n2 .2   etcd .100   router .254 ─── router .254   n3 .3   (n4 .4, ...)
//!  fd00:200::/64: n1 ::1, n2 ::2, router ::fe    fd00:201::/64: router ::fe, n3 ::3
//! ```
//! Dual stack by default: every node also has `IP6`, and pods get an
//! IPv6 address from the IPv6 pool as well (VXLAN CrossSubnet too, over
//! the one IPv4 VXLAN device).
//! Nodes 1 and 2 share subnet A; node 3 (and any later ones) sit on B, so
//! the pool's CrossSubnet VXLAN carries their traffic. Every node's default
//! route points at the router, which also gives proxy ARP a route for the
//! pods' 169.254.1.1 gateway. Each agent's socket, state dir and log are in
//! the lab's temp dir. Dropping the lab stops every agent by PID, then
//! etcd, then removes the namespaces.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::daemon::Daemon;
use crate::{Etcd, Netns, Router, Switch, wait_until};

/// Where each agent serves /liveness, /readiness and /metrics (on its
/// node address).
pub const HEALTH_PORT: u16 = 9099;

/// The etcd address every agent uses.
pub const ETCD_ADDR: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 100);

/// How the lab is built.
#[derive(Debug, Clone)]
pub struct LabOptions {
    pub nodes: u8,
    pub pool: String,
    /// IPv4 pool VXLAN and IPIP modes: Never, Always, CrossSubnet.
    pub vxlan: String,
    pub ipip: String,
    /// The IPv6 pool (and with it `IP6` on every node and an IPv6 address
    /// for every pod); `None`: IPv4 only.
    pub pool6: Option<String>,
    /// IPv6 pool VXLAN mode.
    pub vxlan6: String,
    /// BGP hold time of the agents, seconds.
    pub hold_time: u16,
    /// More environment for every agent; it wins over the lab's own.
    pub extra_env: Vec<(String, String)>,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            nodes: 3,
            pool: "10.0.0.0/16".into(),
            vxlan: "CrossSubnet".into(),
            ipip: "Never".into(),
            pool6: Some("fd00:10::/48".into()),
            vxlan6: "CrossSubnet".into(),
            hold_time: 9,
            extra_env: Vec::new(),
        }
    }
}

/// A pod made through tabby-cni.
#[derive(Debug)]
pub struct Pod {
    pub name: String,
    pub container: String,
    pub ip: IpAddr,
    /// The IPv6 address, when the lab is dual stack.
    pub ip6: Option<IpAddr>,
    pub ns: Netns,
}

/// One lab node. Field order is drop order: pods, the agent, the node.
#[derive(Debug)]
pub struct LabNode {
    pub name: String,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    /// `IP6` (with /64), when dual stack.
    pub address6: Option<std::net::Ipv6Addr>,
    pub pods: Vec<Pod>,
    agent: Option<Daemon>,
    pub dir: PathBuf,
    pub ns: Netns,
}

/// The running lab. Field order is drop order: agents (in nodes) first,
/// then etcd, then the namespaces.
#[derive(Debug)]
pub struct Lab {
    pub opts: LabOptions,
    pub nodes: Vec<LabNode>,
    pub etcd: Etcd,
    pub etcd_ns: Netns,
    pub router: Router,
    pub subnet_a: Switch,
    pub subnet_b: Switch,
    pub dir: TempDir,
}

/// A binary of this workspace, next to the running test or program
/// (`target/<profile>/<name>`).
pub fn workspace_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    for dir in exe.ancestors().skip(1).take(3) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "{name} is not built next to {} (cargo build -p tabby-agent --bins)",
        exe.display()
    )
}

impl Lab {
    /// Build the topology, start etcd and an agent on every node, and wait
    /// until each agent answers on its control socket.
    pub fn start(tag: &str, opts: LabOptions) -> Result<Lab> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("tabby-lab-{}-", std::process::id()))
            .tempdir()?;
        let subnet_a = Switch::new(&format!("{tag}a"))?;
        let subnet_b = Switch::new(&format!("{tag}b"))?;
        let router = Router::new(
            tag,
            &[
                (&subnet_a, "10.200.0.254/24"),
                (&subnet_b, "10.201.0.254/24"),
            ],
        )?;
        for (leg, subnet) in [("eth0", 200), ("eth1", 201)] {
            router.netns().ip(&[
                "addr",
                "add",
                &format!("fd00:{subnet}::fe/64"),
                "dev",
                leg,
                "nodad",
            ])?;
        }
        let etcd_ns = Netns::new(&format!("{tag}-etcd"))?;
        subnet_a.attach(&etcd_ns, "eth0", &format!("{ETCD_ADDR}/24"))?;
        etcd_ns.ip(&["route", "add", "default", "via", "10.200.0.254"])?;
        let etcd = Etcd::start_in(&etcd_ns, ETCD_ADDR.into())?;
        let mut lab = Lab {
            opts,
            nodes: Vec::new(),
            etcd,
            etcd_ns,
            router,
            subnet_a,
            subnet_b,
            dir,
        };
        for i in 1..=lab.opts.nodes {
            lab.add_node(tag, i)?;
        }
        Ok(lab)
    }

    /// Create node `i` (1-based) and start its agent.
    pub fn add_node(&mut self, tag: &str, i: u8) -> Result<()> {
        let (switch, subnet) = if i <= 2 {
            (&self.subnet_a, 200)
        } else {
            (&self.subnet_b, 201)
        };
        let address = Ipv4Addr::new(10, subnet, 0, i);
        let ns = Netns::new(&format!("{tag}-n{i}"))?;
        switch.attach(&ns, "eth0", &format!("{address}/24"))?;
        ns.ip(&[
            "route",
            "add",
            "default",
            "via",
            &format!("10.{subnet}.0.254"),
        ])?;
        ns.sysctl("net.ipv4.ip_forward", "1")?;
        let address6 = if self.opts.pool6.is_some() {
            let a6: std::net::Ipv6Addr = format!("fd00:{subnet}::{i}").parse()?;
            // nodad: usable at once (the agent binds its BGP port on it).
            ns.ip(&["addr", "add", &format!("{a6}/64"), "dev", "eth0", "nodad"])?;
            ns.ip(&[
                "-6",
                "route",
                "add",
                "default",
                "via",
                &format!("fd00:{subnet}::fe"),
            ])?;
            Some(a6)
        } else {
            None
        };
        let dir = self.dir.path().join(format!("n{i}"));
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let mut node = LabNode {
            name: format!("n{i}"),
            address,
            prefix_len: 24,
            address6,
            pods: Vec::new(),
            agent: None,
            dir,
            ns,
        };
        self.start_agent(&mut node)?;
        self.nodes.push(node);
        Ok(())
    }

    fn start_agent(&self, node: &mut LabNode) -> Result<()> {
        let bin = workspace_binary("tabby-node")?;
        let env: Vec<(String, String)> = [
            ("NODENAME", node.name.clone()),
            ("IP", format!("{}/{}", node.address, node.prefix_len)),
            ("ETCD_ENDPOINTS", self.etcd.endpoint()),
            ("TABBY_IPV4POOL_CIDR", self.opts.pool.clone()),
            ("TABBY_IPV4POOL_VXLAN", self.opts.vxlan.clone()),
            ("TABBY_IPV4POOL_IPIP", self.opts.ipip.clone()),
            ("TABBY_BGP_HOLD_TIME", self.opts.hold_time.to_string()),
            ("TABBY_CONTROL_SOCKET", node.socket().display().to_string()),
            ("TABBY_STATE_DIR", node.dir.display().to_string()),
            ("TABBY_LOG", "info".to_string()),
            (
                "TABBY_HEALTH_ADDR",
                format!("{}:{HEALTH_PORT}", node.address),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(node.address6.iter().flat_map(|a6| {
            [
                ("IP6".to_string(), format!("{a6}/64")),
                (
                    "TABBY_IPV6POOL_CIDR".to_string(),
                    self.opts.pool6.clone().unwrap_or_default(),
                ),
                ("TABBY_IPV6POOL_VXLAN".to_string(), self.opts.vxlan6.clone()),
            ]
        }))
        .chain(self.opts.extra_env.iter().cloned())
        .collect();
        let label = format!("tabby-node-{}", node.name);
        let agent = Daemon::spawn_env(
            &label,
            &node.ns,
            &bin.to_string_lossy(),
            &[],
            &env,
            &node.dir,
            vec![],
        )?;
        node.agent = Some(agent);
        let socket = node.socket();
        let a = node.agent.as_mut().context("agent")?;
        a.wait_ready(|| {
            if socket.exists() {
                Ok(())
            } else {
                bail!("{} not there yet", socket.display())
            }
        })?;
        Ok(())
    }

    /// Run `routectl <args>` against node `i`'s agent.
    pub fn routectl(&self, i: usize, args: &[&str]) -> Result<String> {
        let node = self.nodes.get(i).context("no such node")?;
        let bin = workspace_binary("routectl")?;
        let socket = node.socket();
        let mut all = vec!["--socket", socket.to_str().context("socket path")?];
        all.extend_from_slice(args);
        crate::run(&bin.to_string_lossy(), &all)
    }

    /// The plugin config containerd would pass for the `tabby` network.
    fn cni_config(&self, node: &LabNode) -> serde_json::Value {
        serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "k8s-pod-network",
            "type": "tabby",
            "etcd_endpoints": self.etcd.endpoint(),
            "nodename": node.name,
            "ipam_lock_file": node.dir.join("cni.lock"),
            // what the agent writes into its state dir
            "mtu_file": node.dir.join("mtu"),
            "nodename_file": node.dir.join("nodename"),
            "node_wait_seconds": 10,
            "ipam": {
                "type": "tabby-ipam",
                "assign_ipv6": if self.opts.pool6.is_some() { "true" } else { "false" },
            },
        })
    }

    /// A CNI_PATH with `tabby` and `tabby-ipam` (the one binary, installed
    /// under both names, as the DaemonSet's installer does).
    fn cni_path(&self) -> Result<PathBuf> {
        let dir = self.dir.path().join("cni-bin");
        if !dir.exists() {
            std::fs::create_dir_all(&dir)?;
            let bin = workspace_binary("tabby-cni")?;
            for name in ["tabby", "tabby-ipam"] {
                std::os::unix::fs::symlink(&bin, dir.join(name))?;
            }
        }
        Ok(dir)
    }

    /// Run tabby-cni `command` for `pod` on node `i`, as containerd does;
    /// its stdout (the result or the CNI error JSON).
    pub fn cni(
        &self,
        i: usize,
        command: &str,
        pod: &str,
        container: &str,
        netns: &Netns,
    ) -> Result<serde_json::Value> {
        use std::io::Write;
        let node = self.nodes.get(i).context("no such node")?;
        let path = self.cni_path()?;
        let mut child = node
            .ns
            .command(&path.join("tabby").to_string_lossy())
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", container)
            .env("CNI_NETNS", netns.path())
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", format!("{}:/usr/lib/cni", path.display()))
            .env(
                "CNI_ARGS",
                format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};K8S_POD_INFRA_CONTAINER_ID={container}"),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(&serde_json::to_vec(&self.cni_config(node))?)?;
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "tabby-cni {command} {pod} on {} failed: {text} {}",
                node.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(if text.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }

    /// Create pod `name` on node `i` through tabby-cni ADD; its address.
    pub fn add_pod(&mut self, i: usize, name: &str) -> Result<IpAddr> {
        let ns = Netns::new(&format!("pod-{name}"))?;
        let container = format!("c-{name}");
        let result = self.cni(i, "ADD", name, &container, &ns)?;
        let mut ip = None;
        let mut ip6 = None;
        for entry in result["ips"]
            .as_array()
            .context("no ips in the CNI result")?
        {
            let a: ipnet::IpNet = entry["address"]
                .as_str()
                .context("an ips entry without address")?
                .parse()?;
            match a.addr() {
                IpAddr::V4(_) => ip = ip.or(Some(a.addr())),
                IpAddr::V6(_) => ip6 = ip6.or(Some(a.addr())),
            }
        }
        let ip = ip.context("no IPv4 address in the CNI result")?;
        if self.opts.pool6.is_some() && ip6.is_none() {
            bail!("no IPv6 address in the CNI result of a dual-stack pod: {result}");
        }
        let node = self.nodes.get_mut(i).context("no such node")?;
        node.pods.push(Pod {
            name: name.into(),
            container,
            ip,
            ip6,
            ns,
        });
        Ok(ip)
    }

    /// Every pod pinging every other pod once, at each of its addresses
    /// (IPv4, and IPv6 when dual stack): (from, to, reached), where `to`
    /// is the pod's name for IPv4 and `name/v6` for IPv6.
    pub fn ping_matrix(&self) -> Vec<(String, String, bool)> {
        let pods: Vec<&Pod> = self.nodes.iter().flat_map(|n| n.pods.iter()).collect();
        let mut out = Vec::new();
        for from in &pods {
            for to in &pods {
                if from.name == to.name {
                    continue;
                }
                let targets = std::iter::once((to.name.clone(), to.ip))
                    .chain(to.ip6.map(|a| (format!("{}/v6", to.name), a)));
                for (label, addr) in targets {
                    let ok = from
                        .ns
                        .exec("ping", &["-c", "1", "-W", "2", &addr.to_string()])
                        .is_ok();
                    out.push((from.name.clone(), label, ok));
                }
            }
        }
        out
    }

    /// `GET <path>` from node `i`'s health endpoint: (status line, body).
    pub fn http_get(&self, i: usize, path: &str) -> Result<(String, String)> {
        use std::io::{Read, Write};
        let node = self.nodes.get(i).context("no such node")?;
        let addr = std::net::SocketAddr::new(node.address.into(), HEALTH_PORT);
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        let handle = node.ns.spawn(move || {
            let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(request.as_bytes())?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })?;
        let text = handle
            .join()
            .map_err(|_| anyhow::anyhow!("http thread panicked"))??;
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        Ok((
            head.lines().next().unwrap_or_default().to_string(),
            body.to_string(),
        ))
    }

    /// Wait until every node has every other node's session Established.
    pub fn wait_mesh(&self, timeout: Duration) -> Result<()> {
        let want = self.nodes.len().saturating_sub(1);
        wait_until("the node-to-node mesh", timeout, || {
            for i in 0..self.nodes.len() {
                let out = self.routectl(i, &["peers", "-o", "json"])?;
                let rows: serde_json::Value = serde_json::from_str(&out)?;
                let up = rows.as_array().map_or(0, |r| {
                    r.iter().filter(|p| p["state"] == "Established").count()
                });
                if up != want {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }

    /// Stop node `i`'s agent: SIGTERM (graceful) or SIGKILL.
    pub fn stop_agent(&mut self, i: usize, kill: bool) {
        if let Some(a) = self.nodes.get_mut(i).and_then(|n| n.agent.as_mut()) {
            a.stop(if kill {
                None
            } else {
                Some(Duration::from_secs(5))
            });
        }
    }

    /// Start node `i`'s agent again.
    pub fn restart_agent(&mut self, i: usize) -> Result<()> {
        let mut node = self.nodes.remove(i);
        let result = self.start_agent(&mut node);
        self.nodes.insert(i, node);
        result
    }
}

impl LabNode {
    /// The agent's control socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("tabby-node.sock")
    }

    /// The agent's log.
    pub fn log(&self) -> PathBuf {
        self.dir.join(format!("tabby-node-{}.out", self.name))
    }
}

impl Drop for LabNode {
    fn drop(&mut self) {
        if let Some(mut a) = self.agent.take() {
            a.stop(Some(Duration::from_secs(3)));
        }
    }
}
