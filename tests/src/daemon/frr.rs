//! FRR: `bgpd` alone (`-Z`, installs nothing) or with `zebra` (installs
//! routes into the namespace's kernel as `proto bgp`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use tempfile::TempDir;

use super::{Daemon, state_dir};
use crate::Netns;

/// An FRR instance inside a namespace. Field order is drop order: bgpd
/// stops before zebra, and the state dir goes last.
#[derive(Debug)]
pub struct Frr {
    bgpd: Daemon,
    zebra: Option<Daemon>,
    dir: TempDir,
}

impl Frr {
    /// Start FRR in `ns` with `bgpd_conf`; with `zebra`, start zebra first
    /// so bgpd's routes reach the kernel. Waits until vtysh answers.
    pub fn start(ns: &Netns, bgpd_conf: &str, zebra: bool) -> Result<Frr> {
        let dir = state_dir("frr")?;
        let d = dir.path();
        let vty = d.to_string_lossy().into_owned();
        let zebra = if zebra {
            Some(start_zebra(ns, d, &vty)?)
        } else {
            None
        };
        let conf = d.join("bgpd.conf");
        std::fs::write(&conf, bgpd_conf)?;
        let log = d.join("bgpd.log");
        let conf_s = conf.to_string_lossy().into_owned();
        let pid_s = d.join("bgpd.pid").to_string_lossy().into_owned();
        let log_s = format!("file:{}", log.display());
        let zserv = d.join("zserv.api").to_string_lossy().into_owned();
        let mut args = vec![
            "-S",
            "-f",
            &conf_s,
            "-i",
            &pid_s,
            "--vty_socket",
            &vty,
            "--log",
            &log_s,
        ];
        if zebra.is_some() {
            args.extend(["-z", zserv.as_str()]);
        } else {
            args.push("-Z");
        }
        let bgpd = Daemon::spawn("bgpd", ns, "/usr/lib/frr/bgpd", &args, d, vec![log])?;
        let mut frr = Frr { bgpd, zebra, dir };
        frr.bgpd
            .wait_ready(|| vtysh(Path::new(&vty), "show bgp summary json").map(drop))?;
        Ok(frr)
    }

    /// Run one vtysh command, e.g. `show bgp ipv4 unicast json`.
    pub fn vtysh(&self, command: &str) -> Result<String> {
        vtysh(self.dir.path(), command)
    }

    /// Run one vtysh command ending in `json` and parse its output.
    pub fn json(&self, command: &str) -> Result<serde_json::Value> {
        let out = self.vtysh(command)?;
        serde_json::from_str(&out).with_context(|| format!("`{command}` output: {out}"))
    }

    /// FRR's paths for the IPv4 unicast `prefix` (empty while it has
    /// none).
    pub fn paths(&self, prefix: &str) -> Result<Vec<serde_json::Value>> {
        let route = self.json(&format!("show bgp ipv4 unicast {prefix} json"))?;
        Ok(route["paths"].as_array().cloned().unwrap_or_default())
    }

    /// Apply configuration `lines` in one vtysh session (after
    /// `configure terminal`), e.g. `router bgp 64512`, `no network ...`.
    pub fn configure(&self, lines: &[&str]) -> Result<String> {
        let dir = self.dir.path().to_string_lossy().into_owned();
        let mut args = vec!["--vty_socket", dir.as_str(), "-c", "configure terminal"];
        for l in lines {
            args.extend(["-c", l]);
        }
        crate::run("vtysh", &args)
    }

    /// How many BGP neighbors are in state Established.
    pub fn established(&self) -> Result<usize> {
        let out = self.vtysh("show bgp summary json")?;
        Ok(out.matches("\"state\":\"Established\"").count())
    }

    /// The instance's state dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// bgpd's PID.
    pub fn pid(&self) -> Option<u32> {
        self.bgpd.pid()
    }

    /// zebra's PID, when this instance runs zebra.
    pub fn zebra_pid(&self) -> Option<u32> {
        self.zebra.as_ref().and_then(Daemon::pid)
    }
}

/// zebra runs as user frr (it has no `-S`), so the state dir must be frr's.
fn start_zebra(ns: &Netns, d: &Path, vty: &str) -> Result<Daemon> {
    crate::run("chown", &["frr:frr", &d.to_string_lossy()]).context("chown state dir to frr")?;
    let conf = d.join("zebra.conf");
    std::fs::write(&conf, "")?;
    crate::run("chown", &["frr:frr", &conf.to_string_lossy()])?;
    let zserv: PathBuf = d.join("zserv.api");
    let conf_s = conf.to_string_lossy().into_owned();
    let pid_s = d.join("zebra.pid").to_string_lossy().into_owned();
    let zserv_s = zserv.to_string_lossy().into_owned();
    let args = [
        "-u",
        "frr",
        "-g",
        "frr",
        "-f",
        &conf_s,
        "-i",
        &pid_s,
        "-z",
        &zserv_s,
        "--vty_socket",
        vty,
    ];
    let mut zebra = Daemon::spawn("zebra", ns, "/usr/lib/frr/zebra", &args, d, Vec::new())?;
    zebra.wait_ready(|| {
        if zserv.exists() {
            Ok(())
        } else {
            anyhow::bail!("{} not there yet", zserv.display())
        }
    })?;
    // zebra accepts clients once the socket exists; give it a moment to listen.
    std::thread::sleep(Duration::from_millis(50));
    Ok(zebra)
}

fn vtysh(dir: &Path, command: &str) -> Result<String> {
    crate::run(
        "vtysh",
        &["--vty_socket", &dir.to_string_lossy(), "-c", command],
    )
}
