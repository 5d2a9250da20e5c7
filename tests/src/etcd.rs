//! A real etcd server (Debian `etcd-server`, 3.4) per test.
//!
//! [`Etcd::start`] picks two free loopback ports, keeps its data under
//! `/dev/shm` (etcd 3.4 fsyncs every write and has no `--unsafe-no-fsync`),
//! waits until the server answers, and stops it by PID on drop. It never
//! mistakes someone else's etcd for its own: readiness means the member list
//! served on the port names this instance's unique member name *and* the
//! child process is still alive, so a server that lost the port race and
//! died is detected and restarted on other ports.
//!
//! [`Etcd::start_tls`] serves HTTPS with client-certificate authentication:
//! a throw-away CA, server and client certificates are made with the
//! `openssl` command in the server's directory ([`TlsFiles`]).

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::Netns;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The certificates of a TLS etcd: the CA, the server's (SAN 127.0.0.1)
/// and a client's, each with its key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TlsFiles {
    /// Make a CA and, signed by it, a server certificate for `host` and a
    /// client certificate, in `dir` (P-256 keys, valid one day).
    pub fn generate(dir: &std::path::Path, host: IpAddr) -> Result<TlsFiles> {
        std::fs::create_dir_all(dir)?;
        let p = |name: &str| dir.join(name);
        let s = |path: &PathBuf| path.to_string_lossy().into_owned();
        let files = TlsFiles {
            ca: p("ca.crt"),
            server_cert: p("server.crt"),
            server_key: p("server.key"),
            client_cert: p("client.crt"),
            client_key: p("client.key"),
        };
        let ca_key = p("ca.key");
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        let mut ca = vec!["req", "-x509", "-nodes", "-days", "1"];
        ca.extend(ec);
        let (ca_key_s, ca_s) = (s(&ca_key), s(&files.ca));
        ca.extend([
            "-keyout",
            &ca_key_s,
            "-out",
            &ca_s,
            "-subj",
            "/CN=tabby-test-ca",
        ]);
        crate::run("openssl", &ca)?;
        for (name, cert, key, ext) in [
            (
                "server",
                &files.server_cert,
                &files.server_key,
                format!("subjectAltName=IP:{host}\nextendedKeyUsage=serverAuth\n"),
            ),
            (
                "client",
                &files.client_cert,
                &files.client_key,
                "extendedKeyUsage=clientAuth\n".to_string(),
            ),
        ] {
            let csr = p(&format!("{name}.csr"));
            let extfile = p(&format!("{name}.ext"));
            std::fs::write(&extfile, ext)?;
            let (key_s, csr_s, cert_s, ext_s) = (s(key), s(&csr), s(cert), s(&extfile));
            let subj = format!("/CN=tabby-test-{name}");
            let mut req = vec!["req", "-nodes"];
            req.extend(ec);
            req.extend(["-keyout", &key_s, "-out", &csr_s, "-subj", &subj]);
            crate::run("openssl", &req)?;
            crate::run(
                "openssl",
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr_s,
                    "-CA",
                    &ca_s,
                    "-CAkey",
                    &ca_key_s,
                    "-CAcreateserial",
                    "-days",
                    "1",
                    "-out",
                    &cert_s,
                    "-extfile",
                    &ext_s,
                ],
            )?;
        }
        Ok(files)
    }
}

/// A running etcd server owned by the test.
#[derive(Debug)]
pub struct Etcd {
    member: String,
    host: IpAddr,
    client_port: u16,
    peer_port: u16,
    netns: Option<String>,
    dir: PathBuf,
    /// Set: HTTPS with client-certificate authentication.
    tls: Option<TlsFiles>,
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

    /// Start etcd on free ports of 127.0.0.1 serving HTTPS only, and
    /// requiring a client certificate signed by its CA ([`Etcd::tls`]).
    pub fn start_tls() -> Result<Etcd> {
        let mut last = None;
        for _ in 0..5 {
            let (client_port, peer_port) = free_port_pair()?;
            let mut etcd = Etcd::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                client_port,
                peer_port,
                None,
            );
            etcd.tls = Some(TlsFiles::generate(&etcd.dir.join("tls"), etcd.host)?);
            match etcd.start_again() {
                Ok(()) => return Ok(etcd),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("etcd did not start")))
    }

    /// The certificates, for an etcd started with [`Etcd::start_tls`].
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
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
            tls: None,
            child: None,
        }
    }

    /// The client URL, e.g. `http://127.0.0.1:40123` (`https://` with TLS).
    pub fn endpoint(&self) -> String {
        let plain = url(self.host, self.client_port);
        match self.tls {
            Some(_) => plain.replacen("http://", "https://", 1),
            None => plain,
        }
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
            .args(self.tls.iter().flat_map(|t| {
                [
                    "--cert-file".into(),
                    t.server_cert.clone().into_os_string(),
                    "--key-file".into(),
                    t.server_key.clone().into_os_string(),
                    "--client-cert-auth".into(),
                    "--trusted-ca-file".into(),
                    t.ca.clone().into_os_string(),
                ]
            }))
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
        let tls: Vec<String> = self
            .tls
            .iter()
            .flat_map(|t| {
                [
                    format!("--cacert={}", t.ca.display()),
                    format!("--cert={}", t.client_cert.display()),
                    format!("--key={}", t.client_key.display()),
                ]
            })
            .collect();
        let mut all = vec!["--endpoints", &endpoint, "--dial-timeout", "1s"];
        all.extend(tls.iter().map(String::as_str));
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
