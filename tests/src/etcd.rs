//! A real etcd server (Debian `etcd-server`, 3.4) per test.
//!
//! [`Etcd::start`] picks two free loopback ports, keeps its data under
//! `/dev/shm` (etcd 3.4 fsyncs every write and has no `--unsafe-no-fsync`),
//! waits until the server answers, and stops it by PID on drop. It never
//! mistakes someone else's etcd for its own: readiness means the member list
//! served on the port names this instance's unique member name *and* the
//! child process is still alive, so a server that lost the port race and
//! died is detected and restarted on other ports.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::Netns;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A running etcd server owned by the test.
#[derive(Debug)]
pub struct Etcd {
    member: String,
    host: IpAddr,
    client_port: u16,
    peer_port: u16,
    netns: Option<String>,
    dir: PathBuf,
    child: Option<Child>,
}

impl Etcd {
    /// Start etcd on free ports of 127.0.0.1.
    pub fn start() -> Result<Etcd> {
        let mut last = None;
        for _ in 0..5 {
            let (client_port, peer_port) = free_port_pair()?;
            match Etcd::start_on(client_port, peer_port) {
                Ok(etcd) => return Ok(etcd),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("etcd did not start")))
    }

    /// Start etcd on the given loopback ports, without retrying elsewhere.
    /// Fails if the ports are taken, including by another etcd.
    pub fn start_on(client_port: u16, peer_port: u16) -> Result<Etcd> {
        let mut etcd = Etcd::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            client_port,
            peer_port,
            None,
        );
        etcd.start_again()?;
        Ok(etcd)
    }

    /// Start etcd inside `ns`, listening on `host` (an address of the
    /// namespace) at ports 2379 (clients) and 2380 (peers), so that
    /// processes in other namespaces of the lab can reach it.
    pub fn start_in(ns: &Netns, host: IpAddr) -> Result<Etcd> {
        let mut etcd = Etcd::new(host, 2379, 2380, Some(ns.name().to_string()));
        etcd.start_again()?;
        Ok(etcd)
    }

    fn new(host: IpAddr, client_port: u16, peer_port: u16, netns: Option<String>) -> Etcd {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let member = format!("tb-{}-{n}", std::process::id());
        let dir = PathBuf::from(format!("/dev/shm/tabby-etcd-{}-{n}", std::process::id()));
        Etcd {
            member,
            host,
            client_port,
            peer_port,
            netns,
            dir,
            child: None,
        }
    }

    /// The client URL, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        url(self.host, self.client_port)
    }

    /// The server's PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// (Re)start the server with the same ports and data, and wait until it
    /// answers as itself. Used after [`Etcd::stop`] to end a simulated outage.
    pub fn start_again(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("etcd {} is already running", self.member);
        }
        std::fs::create_dir_all(&self.dir)?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let client = self.endpoint();
        let peer = url(self.host, self.peer_port);
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "etcd"]);
                c
            }
            None => Command::new("etcd"),
        };
        cmd.arg("--name")
            .arg(&self.member)
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .arg("--initial-cluster")
            .arg(format!("{}={peer}", self.member))
            .args([
                "--initial-cluster-token",
                &self.member,
                "--initial-cluster-state",
                "new",
            ])
            .args([
                "--logger",
                "zap",
                "--log-outputs",
                "stderr",
                "--log-level",
                "warn",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd
            .spawn()
            .context("cannot start etcd (is etcd-server installed?)")?;
        self.child = Some(child);
        if let Err(e) = self.wait_ready(Duration::from_secs(20)) {
            let log = self.log_tail();
            self.stop();
            bail!("{e:#}\netcd log:\n{log}");
        }
        Ok(())
    }

    /// Stop the server by PID (SIGTERM, then SIGKILL), keeping its data.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            crate::daemon::stop_child(child, Duration::from_secs(5));
        }
    }

    /// Run `etcdctl` against this server (in its namespace, if any).
    pub fn etcdctl(&self, args: &[&str]) -> Result<String> {
        let endpoint = self.endpoint();
        let mut all = vec!["--endpoints", &endpoint, "--dial-timeout", "1s"];
        all.extend_from_slice(args);
        match &self.netns {
            Some(ns) => {
                let mut cmd = vec!["netns", "exec", ns.as_str(), "etcdctl"];
                cmd.extend_from_slice(&all);
                crate::run("ip", &cmd)
            }
            None => crate::run("etcdctl", &all),
        }
    }

    /// Wait until our child answers on our port. Fails at once when the
    /// child exits (a port it could not bind) or when the server answering
    /// on the port is some other etcd.
    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let Some(child) = self.child.as_mut() else {
                bail!("etcd is not running");
            };
            if let Some(status) = child.try_wait()? {
                bail!("etcd exited early ({status})");
            }
            if let Ok(list) = self.etcdctl(&["member", "list", "-w", "json"]) {
                let json: serde_json::Value = serde_json::from_str(&list)?;
                let members = json["members"].as_array().cloned().unwrap_or_default();
                let names: Vec<&str> = members.iter().filter_map(|m| m["name"].as_str()).collect();
                if names == [self.member.as_str()] {
                    return Ok(());
                }
                if !names.is_empty() {
                    bail!(
                        "port {} is served by another etcd (members {names:?})",
                        self.client_port
                    );
                }
            }
            if Instant::now() >= deadline {
                bail!("etcd did not answer within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    fn log_tail(&self) -> String {
        crate::daemon::tail(&self.log_path(), 40)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- etcd {} log ---\n{}", self.member, self.log_tail());
        }
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn url(host: IpAddr, port: u16) -> String {
    match host {
        IpAddr::V4(a) => format!("http://{a}:{port}"),
        IpAddr::V6(a) => format!("http://[{a}]:{port}"),
    }
}

/// Two distinct ports that were free on 127.0.0.1 a moment ago.
fn free_port_pair() -> Result<(u16, u16)> {
    let a = TcpListener::bind("127.0.0.1:0")?;
    let b = TcpListener::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}
